//! The `grpc_server` family (catalog probe `grpc.server`): calls served by
//! google.golang.org/grpc (`(*Server).handleStream`, unary and streaming),
//! with the status the server wrote (`http2Server.WriteStatus`, lower case
//! since gRPC 1.69) and an incoming `traceparent` from the request headers
//! (`http2Server.operateHeaders`).
//!
//! Stream fields: `method` (`/pkg.Service/Method`) and `method_len` when
//! cut, `code` and `message` (the status written; absent when none was),
//! `stream_id`, `peer` and `local` (the connection's two ends, `ip:port`,
//! only when the transport is gRPC's own HTTP/2 server and the addresses
//! are `*net.TCPAddr`), `traceparent`, `read_failed`.

use std::mem::size_of;

use serde::{Deserialize, Serialize};

use super::family::{
    ConfigInput, Configured, Connection, Decode, Family, RecordingError, SpanParts, is_false,
};
use super::netaddr::{self, TcpAddr};
use super::rpc::{self, Side};
use crate::bpf::abi::{self, MODES, Plain, str_and_len};
use crate::span::{AttrValue, Event, SpanKind};
use crate::stream::RawEvent;
use crate::tracecontext::parse_traceparent;

pub struct GrpcServer;

pub static FAMILY: GrpcServer = GrpcServer;

const PROBE: &str = "grpc.server";

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/grpc_server.bpf.o"));

/// `GP_FLAG_STATUS`: a status was written.
pub const FLAG_STATUS: u32 = 1 << 8;

/// `gp_config.mode` slots and values (`ebpf/probes/grpc_server.bpf.c`).
pub const MODE_STREAM: usize = 0;
pub const STREAM_PLAIN: u32 = 0;
pub const STREAM_EMBED_PTR: u32 = 1;
pub const STREAM_EMBED_VALUE: u32 = 2;
pub const MODE_PEER: usize = 1;
pub const PEER_NONE: u32 = 0;
pub const PEER_FIELDS: u32 = 1;
pub const PEER_STRUCT: u32 = 2;
pub const MODE_HEADERS: usize = 2;
pub const MODE_FIELD_SIZE: usize = 3;

pub const METHOD_MAX: usize = 128;
pub const MESSAGE_MAX: usize = 128;
pub const TRACEPARENT_MAX: usize = 64;
/// `GP_HEADER_FIELD_MAX`: the largest `hpack.HeaderField` the headers program walks.
pub const HEADER_FIELD_MAX: usize = 48;

/// The server transport whose structs the programs read.
const HTTP2_SERVER: &str = "*transport.http2Server";

/// `struct gp_grpc_server_event`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ServerEvent {
    pub pid: u32,
    pub tid: u32,
    pub flags: u32,
    pub code: i32,
    pub goid: u64,
    pub g: u64,
    pub start_ns: u64,
    pub end_ns: u64,
    pub transport_type: u64,
    pub stream_id: u32,
    pub method_len: u32,
    pub message_len: u32,
    pub traceparent_len: u32,
    pub peer: TcpAddr,
    pub local: TcpAddr,
    pub method: [u8; METHOD_MAX],
    pub message: [u8; MESSAGE_MAX],
    pub traceparent: [u8; TRACEPARENT_MAX],
}
const _: () = assert!(size_of::<ServerEvent>() == 456);

// SAFETY: repr(C), integers and byte arrays only, no implicit padding (size
// checked above), so every bit pattern is valid.
unsafe impl Plain for ServerEvent {}

/// The stream fields of a `grpc.server` event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method_len: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_len: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub read_failed: bool,
}

/// The fields whose offsets decide how the programs walk the structs.
const STREAM_EMBED: &str = "google.golang.org/grpc/internal/transport.ServerStream.Stream";
const REMOTE_ADDR: &str = "google.golang.org/grpc/internal/transport.http2Server.remoteAddr";
const PEER: &str = "google.golang.org/grpc/internal/transport.http2Server.peer";
const PEER_ADDR: &str = "google.golang.org/grpc/peer.Peer.Addr";
const HEADER_FIELD: &str = "golang.org/x/net/http2/hpack.HeaderField";
const HEADER_FIELDS: [&str; 6] = [
    "golang.org/x/net/http2.MetaHeadersFrame.HeadersFrame",
    "golang.org/x/net/http2.MetaHeadersFrame.Fields",
    "golang.org/x/net/http2.HeadersFrame.FrameHeader",
    "golang.org/x/net/http2.FrameHeader.StreamID",
    "golang.org/x/net/http2/hpack.HeaderField.Name",
    "golang.org/x/net/http2/hpack.HeaderField.Value",
];

/// The switches, from the offsets known: where the stream's transport.Stream
/// is (the size of `ServerStream.Stream` says pointer or value), where the
/// addresses are, and whether the headers can be searched.
pub fn modes(target: &ConfigInput<'_>) -> [u32; MODES] {
    let known = |f: &str| target.offsets.contains_key(f);
    let mut m = [0; MODES];
    m[MODE_STREAM] = match target.sizes.get(STREAM_EMBED) {
        // gRPC 1.69-1.76: ServerStream embeds *Stream.
        Some(8) if known(STREAM_EMBED) => STREAM_EMBED_PTR,
        // 1.77 and later embed the Stream itself.
        Some(_) if known(STREAM_EMBED) => STREAM_EMBED_VALUE,
        _ => STREAM_PLAIN,
    };
    m[MODE_PEER] = if known(REMOTE_ADDR) {
        PEER_FIELDS
    } else if known(PEER) && known(PEER_ADDR) {
        PEER_STRUCT
    } else {
        PEER_NONE
    };
    let stride = target.type_sizes.get(HEADER_FIELD).copied().unwrap_or(0);
    if HEADER_FIELDS.iter().all(|f| known(f)) && (32..=HEADER_FIELD_MAX as u64).contains(&stride) {
        m[MODE_HEADERS] = 1;
        m[MODE_FIELD_SIZE] = stride as u32;
    }
    m
}

impl Family for GrpcServer {
    fn name(&self) -> &'static str {
        "grpc_server"
    }

    fn probes(&self) -> &'static [&'static str] {
        &[PROBE]
    }

    fn object(&self) -> &'static [u8] {
        OBJECT
    }

    fn configure(&self, target: &ConfigInput<'_>) -> Configured {
        let modes = modes(target);
        let mut notes = Vec::new();
        if target.offsets.contains_key(STREAM_EMBED) && !target.sizes.contains_key(STREAM_EMBED) {
            notes.push(format!("{PROBE}: the size of {STREAM_EMBED} is unknown, so whether it is a pointer cannot be told: method names will be missing"));
        }
        if modes[MODE_HEADERS] == 0 {
            notes.push(format!("{PROBE}: incoming trace context (traceparent) will not be read: offsets unknown for the HTTP/2 header fields (golang.org/x/net/http2)"));
        }
        if modes[MODE_PEER] == PEER_NONE {
            notes.push(format!("{PROBE}: connection addresses (network.peer.*, server.*) will not be read, and calls not linked to their clients: offsets unknown for http2Server's addresses"));
        }
        Configured { modes, notes }
    }

    fn decode(&self, record: &[u8], ctx: &mut Decode<'_>) -> Option<RawEvent> {
        let ev = ServerEvent::read(record)?;
        let (method, method_len) = str_and_len(&ev.method, ev.method_len);
        let (message, message_len) = str_and_len(&ev.message, ev.message_len);
        let (traceparent, _) = str_and_len(&ev.traceparent, ev.traceparent_len);
        let status = ev.flags & FLAG_STATUS != 0;
        // The addresses were read as http2Server's: only trusted when the
        // transport is one.
        let ours = ctx
            .symbols
            .type_name(ev.pid, ev.transport_type)
            .is_some_and(|t| t.name == HTTP2_SERVER);
        let mut addr = |a: &TcpAddr| {
            ours.then(|| a.checked(ev.pid, ctx.symbols))
                .flatten()
                .map(|s| netaddr::join(&s))
        };
        let fields = Fields {
            method,
            method_len,
            code: status.then_some(ev.code),
            message: message.filter(|_| status),
            message_len: message_len.filter(|_| status),
            stream_id: (ev.stream_id != 0).then_some(ev.stream_id),
            peer: addr(&ev.peer),
            local: addr(&ev.local),
            traceparent,
            read_failed: ev.flags & abi::FLAG_READ_FAILED != 0,
        };
        Some(RawEvent {
            probe: PROBE.to_owned(),
            pid: ev.pid,
            tid: ev.tid,
            goroutine: ev.goid,
            start_ns: ev.start_ns,
            end_ns: ev.end_ns,
            fields: RawEvent::fields_from(&fields),
        })
    }

    fn span(&self, ev: &RawEvent, _nested: &[Event]) -> Result<SpanParts, RecordingError> {
        let f: Fields = ev.fields_as()?;
        Ok(server_span(ev, &f))
    }
}

fn server_span(ev: &RawEvent, f: &Fields) -> SpanParts {
    let (name, mut a, status) = rpc::span_basics(
        f.method.as_deref(),
        f.code,
        f.message.as_deref(),
        Side::Server,
    );
    let local = f.local.as_deref().and_then(netaddr::parse);
    let peer = f.peer.as_deref().and_then(netaddr::parse);
    if let Some(l) = local {
        a.insert("server.address".into(), l.ip().to_string().into());
        a.insert("server.port".into(), AttrValue::Int(i64::from(l.port())));
    }
    if let Some(p) = peer {
        a.insert("network.peer.address".into(), p.ip().to_string().into());
        a.insert(
            "network.peer.port".into(),
            AttrValue::Int(i64::from(p.port())),
        );
    }
    a.insert("network.protocol.name".into(), "http".into());
    a.insert("network.protocol.version".into(), "2".into());
    SpanParts {
        name,
        kind: SpanKind::Server,
        start_ns: ev.start_ns,
        end_ns: ev.end_ns.max(ev.start_ns),
        attributes: a,
        status,
        incoming: f.traceparent.as_deref().and_then(parse_traceparent),
        connection: peer.map(|p| Connection {
            local,
            peer: Some(p),
            stream: f.stream_id,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::symbols::Symbols;
    use crate::span::StatusCode;

    const SOURCE: &str = include_str!("../../ebpf/probes/grpc_server.bpf.c");

    #[test]
    fn constants_match_the_c_file() {
        for (name, value) in [
            ("GP_FLAG_STATUS", u64::from(FLAG_STATUS)),
            ("GP_MODE_STREAM", MODE_STREAM as u64),
            ("GP_STREAM_PLAIN", u64::from(STREAM_PLAIN)),
            ("GP_STREAM_EMBED_PTR", u64::from(STREAM_EMBED_PTR)),
            ("GP_STREAM_EMBED_VALUE", u64::from(STREAM_EMBED_VALUE)),
            ("GP_MODE_PEER", MODE_PEER as u64),
            ("GP_PEER_NONE", u64::from(PEER_NONE)),
            ("GP_PEER_FIELDS", u64::from(PEER_FIELDS)),
            ("GP_PEER_STRUCT", u64::from(PEER_STRUCT)),
            ("GP_MODE_HEADERS", MODE_HEADERS as u64),
            ("GP_MODE_FIELD_SIZE", MODE_FIELD_SIZE as u64),
            ("GP_METHOD_MAX", METHOD_MAX as u64),
            ("GP_MESSAGE_MAX", MESSAGE_MAX as u64),
            ("GP_TRACEPARENT_MAX", TRACEPARENT_MAX as u64),
            ("GP_HEADER_FIELD_MAX", HEADER_FIELD_MAX as u64),
        ] {
            assert_eq!(abi::c_define(SOURCE, name), Some(value), "{name}");
        }
        assert!(SOURCE.contains(&format!(
            "sizeof(struct gp_grpc_server_event) == {}",
            size_of::<ServerEvent>()
        )));
    }

    #[test]
    fn decodes_and_makes_a_server_span() {
        let mut bytes = vec![0u8; size_of::<ServerEvent>()];
        let mut ev = ServerEvent::read(&bytes).expect("long enough");
        ev.pid = 7;
        ev.goid = 3;
        ev.start_ns = 10;
        ev.end_ns = 20;
        let m = b"/helloworld.Greeter/SayGoodbye";
        ev.method[..m.len()].copy_from_slice(m);
        ev.method_len = m.len() as u32;
        let msg = b"unknown method SayGoodbye for service helloworld.Greeter";
        ev.message[..msg.len()].copy_from_slice(msg);
        ev.message_len = msg.len() as u32;
        ev.code = 12;
        ev.flags = FLAG_STATUS;
        ev.stream_id = 5;
        // Addresses without the binary's types are not trusted.
        ev.peer.ip_len = 4;
        ev.peer.type_addr = 0x1234;
        // SAFETY: writing one ServerEvent into its own bytes.
        unsafe { std::ptr::write_unaligned(bytes.as_mut_ptr().cast::<ServerEvent>(), ev) };
        let mut symbols = Symbols::new(None);
        let mut ctx = Decode {
            hooks: &[],
            symbols: &mut symbols,
        };
        let raw = FAMILY.decode(&bytes, &mut ctx).expect("decodes");
        let keys: Vec<&str> = raw.fields.keys().map(String::as_str).collect();
        assert_eq!(keys, ["code", "message", "method", "stream_id"]);
        assert!(FAMILY.decode(&bytes[..100], &mut ctx).is_none());
        let mut raw2 = raw.clone();
        raw2.fields.insert("peer".into(), "127.0.0.1:40000".into());
        raw2.fields.insert("local".into(), "127.0.0.1:50051".into());
        let s = FAMILY.span(&raw2, &[]).expect("span");
        assert_eq!(s.name, "helloworld.Greeter/SayGoodbye");
        assert_eq!(s.kind, SpanKind::Server);
        assert_eq!(s.status.code, StatusCode::Error);
        assert_eq!(s.attributes["rpc.grpc.status_code"], AttrValue::Int(12));
        assert_eq!(s.attributes["server.port"], AttrValue::Int(50051));
        assert_eq!(s.attributes["network.peer.port"], AttrValue::Int(40000));
        let c = s.connection.expect("connection");
        assert_eq!(c.peer, Some("127.0.0.1:40000".parse().unwrap()));
        assert_eq!(c.stream, Some(5));
        // No status written (the client went away): no code, no error.
        let mut raw3 = raw.clone();
        raw3.fields.remove("code");
        raw3.fields.remove("message");
        let s = FAMILY.span(&raw3, &[]).expect("span");
        assert!(!s.attributes.contains_key("rpc.grpc.status_code"));
        assert_eq!(s.status.code, StatusCode::Unset);
        assert!(s.connection.is_none());
    }
}
