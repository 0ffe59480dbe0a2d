//! The `grpc_client` family (catalog probe `grpc.client`): calls made
//! through google.golang.org/grpc, unary and streaming, from
//! `grpc.newClientStream` to `(*clientStream).finish`, the stream named by
//! `newClientStreamWithParams` where it exists (see
//! `ebpf/probes/grpc_client.bpf.c`).
//!
//! Stream fields: `method` (`/pkg.Service/Method`) and `method_len` when
//! cut, `target` (what the program dialled), `code` and `message` (from a
//! `*status.Error`; `code` 0 for success), `error_type` (any other error's
//! Go type) and `error` (its text, when it is an `*errors.errorString`),
//! `stream_id`, `local` and `peer` (the connection's two ends, `ip:port`),
//! `no_stream` (the call failed before it had a stream), `read_failed`.

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

pub struct GrpcClient;

pub static FAMILY: GrpcClient = GrpcClient;

const PROBE: &str = "grpc.client";

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/grpc_client.bpf.o"));

/// `GP_FLAG_STATUS`: code and message were read as a `*status.Error`'s.
pub const FLAG_STATUS: u32 = 1 << 8;
/// `GP_FLAG_NO_STREAM`: newClientStream failed.
pub const FLAG_NO_STREAM: u32 = 1 << 9;

/// `gp_config.mode` slots and values (`ebpf/probes/grpc_client.bpf.c`).
pub const MODE_STREAM: usize = 0;
pub const STREAM_PLAIN: u32 = 0;
pub const STREAM_EMBED_PTR: u32 = 1;
pub const STREAM_EMBED_VALUE: u32 = 2;
pub const MODE_ERROR: usize = 1;
pub const ERROR_NONE: u32 = 0;
pub const ERROR_PROTO: u32 = 1;
pub const ERROR_STATUS: u32 = 2;
pub const MODE_ATTEMPT: usize = 2;

pub const METHOD_MAX: usize = 128;
pub const MESSAGE_MAX: usize = 128;
pub const TARGET_MAX: usize = 64;
pub const ERROR_TEXT_MAX: usize = 64;

/// `struct gp_grpc_client_event`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ClientEvent {
    pub pid: u32,
    pub tid: u32,
    pub flags: u32,
    pub code: i32,
    pub goid: u64,
    pub g: u64,
    pub start_ns: u64,
    pub end_ns: u64,
    pub error_type: u64,
    pub cs: u64,
    /// `runtime.g.parentGoid` (Go 1.21+), 0 when unknown.
    pub parent_goid: u64,
    pub stream_id: u32,
    pub method_len: u32,
    pub message_len: u32,
    pub target_len: u32,
    pub error_text_len: u32,
    pub _pad: u32,
    pub local: TcpAddr,
    pub peer: TcpAddr,
    pub method: [u8; METHOD_MAX],
    pub message: [u8; MESSAGE_MAX],
    pub target: [u8; TARGET_MAX],
    pub error_text: [u8; ERROR_TEXT_MAX],
}
const _: () = assert!(size_of::<ClientEvent>() == 544);

// SAFETY: repr(C), integers and byte arrays only, no implicit padding (size
// checked above), so every bit pattern is valid.
unsafe impl Plain for ClientEvent {}

/// The stream fields of a `grpc.client` event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method_len: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream_id: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub no_stream: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub read_failed: bool,
}

const STREAM_EMBED: &str = "google.golang.org/grpc/internal/transport.ClientStream.Stream";
const ERROR_E: &str = "google.golang.org/grpc/internal/status.Error.e";
const ERROR_S: &str = "google.golang.org/grpc/internal/status.Error.s";
const STATUS_S: &str = "google.golang.org/grpc/internal/status.Status.s";
const CODE: &str = "google.golang.org/genproto/googleapis/rpc/status.Status.Code";
const ATTEMPT: &str = "google.golang.org/grpc.clientStream.attempt";

/// The error types whose contents the programs read.
const STATUS_ERROR: &str = "*status.Error";
const STATUS_PKG: &str = "google.golang.org/grpc/internal/status";
const ERROR_STRING: &str = "*errors.errorString";

/// The switches, from the offsets known.
pub fn modes(target: &ConfigInput<'_>) -> [u32; MODES] {
    let known = |f: &str| target.offsets.contains_key(f);
    let mut m = [0; MODES];
    m[MODE_STREAM] = match target.sizes.get(STREAM_EMBED) {
        Some(8) if known(STREAM_EMBED) => STREAM_EMBED_PTR,
        Some(_) if known(STREAM_EMBED) => STREAM_EMBED_VALUE,
        _ => STREAM_PLAIN,
    };
    m[MODE_ERROR] = if !known(CODE) {
        ERROR_NONE
    } else if known(ERROR_E) {
        ERROR_PROTO
    } else if known(ERROR_S) && known(STATUS_S) {
        ERROR_STATUS
    } else {
        ERROR_NONE
    };
    m[MODE_ATTEMPT] = u32::from(known(ATTEMPT));
    m
}

impl Family for GrpcClient {
    fn name(&self) -> &'static str {
        "grpc_client"
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
            notes.push(format!("{PROBE}: the size of {STREAM_EMBED} is unknown, so whether it is a pointer cannot be told: stream ids will be missing"));
        }
        if modes[MODE_ERROR] == ERROR_NONE {
            notes.push(format!(
                "{PROBE}: status codes will not be read: offsets unknown for gRPC's status.Error"
            ));
        }
        if modes[MODE_ATTEMPT] == 0 {
            notes.push(format!("{PROBE}: connection addresses will not be read, and calls not linked to the server spans they cause: offset unknown for {ATTEMPT}"));
        }
        Configured { modes, notes }
    }

    fn decode(&self, record: &[u8], ctx: &mut Decode<'_>) -> Option<RawEvent> {
        let ev = ClientEvent::read(record)?;
        let (method, method_len) = str_and_len(&ev.method, ev.method_len);
        let (target, _) = str_and_len(&ev.target, ev.target_len);
        let mut f = Fields {
            method,
            method_len,
            target,
            stream_id: (ev.stream_id != 0).then_some(ev.stream_id),
            local: ev
                .local
                .checked(ev.pid, ctx.symbols)
                .map(|a| netaddr::join(&a)),
            peer: ev
                .peer
                .checked(ev.pid, ctx.symbols)
                .map(|a| netaddr::join(&a)),
            no_stream: ev.flags & FLAG_NO_STREAM != 0,
            read_failed: ev.flags & abi::FLAG_READ_FAILED != 0,
            ..Fields::default()
        };
        if ev.flags & abi::FLAG_ERROR == 0 {
            f.code = Some(0);
        } else if let Some(t) = ctx.symbols.type_name(ev.pid, ev.error_type) {
            let text = str_and_len(&ev.error_text, ev.error_text_len).0;
            let pkg = ctx.symbols.package_path(&t);
            if t.name == STATUS_ERROR && pkg.as_deref() == Some(STATUS_PKG) {
                if ev.flags & FLAG_STATUS != 0 {
                    f.code = Some(ev.code);
                    f.message = str_and_len(&ev.message, ev.message_len).0;
                } else {
                    // A status error whose status could not be read.
                    f.read_failed = true;
                }
            } else if t.name == ERROR_STRING && text.as_deref() == Some("EOF") {
                // io.EOF: a stream read to its end; finish treats it as nil.
                f.code = Some(0);
            } else {
                // gRPC reports an error that carries no status as Unknown.
                f.code = Some(rpc::UNKNOWN);
                if t.name == ERROR_STRING {
                    f.error = text;
                }
                f.error_type = Some(t.name);
            }
        }
        // An error whose type cannot be named has no code: nothing is guessed.
        Some(
            RawEvent {
                probe: PROBE.to_owned(),
                pid: ev.pid,
                tid: ev.tid,
                goroutine: ev.goid,
                start_ns: ev.start_ns,
                end_ns: ev.end_ns,
                fields: RawEvent::fields_from(&f),
            }
            .with_parent_goroutine(ev.parent_goid),
        )
    }

    fn span(&self, ev: &RawEvent, _nested: &[Event]) -> Result<SpanParts, RecordingError> {
        let f: Fields = ev.fields_as()?;
        let message = f.message.as_deref().or(f.error.as_deref());
        let (name, mut a, status) =
            rpc::span_basics(f.method.as_deref(), f.code, message, Side::Client);
        let local = f.local.as_deref().and_then(netaddr::parse);
        let peer = f.peer.as_deref().and_then(netaddr::parse);
        match f.target.as_deref().and_then(target_host_port) {
            Some((host, port)) => {
                a.insert("server.address".into(), host.into());
                if let Some(p) = port {
                    a.insert("server.port".into(), AttrValue::Int(p));
                }
            }
            None => {
                if let Some(p) = peer {
                    a.insert("server.address".into(), p.ip().to_string().into());
                    a.insert("server.port".into(), AttrValue::Int(i64::from(p.port())));
                }
            }
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
        Ok(SpanParts {
            name,
            kind: SpanKind::Client,
            start_ns: ev.start_ns,
            end_ns: ev.end_ns.max(ev.start_ns),
            attributes: a,
            status,
            incoming: None,
            connection: local.map(|l| Connection {
                local: Some(l),
                peer,
                stream: f.stream_id,
            }),
        })
    }
}

/// The host and port a gRPC target names: `host:port`, `dns:///host:port`,
/// `passthrough:///host:port`, `dns://resolver/host:port`; `None` for
/// targets that name no host (`unix:...`) or that do not parse.
pub fn target_host_port(target: &str) -> Option<(&str, Option<i64>)> {
    let rest = match target.split_once("://") {
        Some((scheme, rest)) => {
            if scheme == "unix" || scheme == "unix-abstract" {
                return None;
            }
            // Drop the authority (dns://8.8.8.8/host:port) up to the path.
            rest.split_once('/').map_or(rest, |(_, p)| p)
        }
        None => match target.split_once(':') {
            Some(("unix" | "unix-abstract", _)) => return None,
            _ => target,
        },
    };
    crate::otel::split_host_port(rest).filter(|(h, _)| !h.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::symbols::Symbols;
    use crate::span::StatusCode;

    const SOURCE: &str = include_str!("../../ebpf/probes/grpc_client.bpf.c");

    #[test]
    fn constants_match_the_c_file() {
        for (name, value) in [
            ("GP_FLAG_STATUS", u64::from(FLAG_STATUS)),
            ("GP_FLAG_NO_STREAM", u64::from(FLAG_NO_STREAM)),
            ("GP_MODE_STREAM", MODE_STREAM as u64),
            ("GP_STREAM_PLAIN", u64::from(STREAM_PLAIN)),
            ("GP_STREAM_EMBED_PTR", u64::from(STREAM_EMBED_PTR)),
            ("GP_STREAM_EMBED_VALUE", u64::from(STREAM_EMBED_VALUE)),
            ("GP_MODE_ERROR", MODE_ERROR as u64),
            ("GP_ERROR_NONE", u64::from(ERROR_NONE)),
            ("GP_ERROR_PROTO", u64::from(ERROR_PROTO)),
            ("GP_ERROR_STATUS", u64::from(ERROR_STATUS)),
            ("GP_MODE_ATTEMPT", MODE_ATTEMPT as u64),
            ("GP_METHOD_MAX", METHOD_MAX as u64),
            ("GP_MESSAGE_MAX", MESSAGE_MAX as u64),
            ("GP_TARGET_MAX", TARGET_MAX as u64),
            ("GP_ERROR_TEXT_MAX", ERROR_TEXT_MAX as u64),
        ] {
            assert_eq!(abi::c_define(SOURCE, name), Some(value), "{name}");
        }
        assert!(SOURCE.contains(&format!(
            "sizeof(struct gp_grpc_client_event) == {}",
            size_of::<ClientEvent>()
        )));
    }

    #[test]
    fn targets() {
        assert_eq!(
            target_host_port("127.0.0.1:50051"),
            Some(("127.0.0.1", Some(50051)))
        );
        assert_eq!(
            target_host_port("dns:///greeter.svc:443"),
            Some(("greeter.svc", Some(443)))
        );
        assert_eq!(
            target_host_port("passthrough:///[::1]:9"),
            Some(("::1", Some(9)))
        );
        assert_eq!(
            target_host_port("dns://8.8.8.8/example.com:8080"),
            Some(("example.com", Some(8080)))
        );
        assert_eq!(target_host_port("unix:///tmp/sock"), None);
        assert_eq!(target_host_port("unix:/tmp/sock"), None);
        assert_eq!(target_host_port("example.com"), Some(("example.com", None)));
    }

    #[test]
    fn client_spans_from_fields() {
        let mut bytes = vec![0u8; size_of::<ClientEvent>()];
        let mut ev = ClientEvent::read(&bytes).expect("long enough");
        ev.start_ns = 5;
        ev.end_ns = 9;
        let m = b"/helloworld.Greeter/SayHello";
        ev.method[..m.len()].copy_from_slice(m);
        ev.method_len = m.len() as u32;
        // SAFETY: writing one ClientEvent into its own bytes.
        unsafe { std::ptr::write_unaligned(bytes.as_mut_ptr().cast::<ClientEvent>(), ev) };
        let mut symbols = Symbols::new(None);
        let mut ctx = Decode {
            hooks: &[],
            symbols: &mut symbols,
        };
        let raw = FAMILY.decode(&bytes, &mut ctx).expect("decodes");
        assert_eq!(raw.fields["code"], 0, "no error is OK");
        assert_eq!(raw.parent_goroutine(), None, "0: creator not known");
        // Go 1.21+: the goroutine's creator, for lineage without go.spawn.
        let mut child = ev;
        child.parent_goid = 41;
        let mut cb = vec![0u8; size_of::<ClientEvent>()];
        // SAFETY: writing one ClientEvent into its own bytes.
        unsafe { std::ptr::write_unaligned(cb.as_mut_ptr().cast::<ClientEvent>(), child) };
        let linked = FAMILY.decode(&cb, &mut ctx).expect("decodes");
        assert_eq!(linked.parent_goroutine(), Some(41));
        let mut with = raw.clone();
        with.fields
            .insert("target".into(), "dns:///greeter:50051".into());
        with.fields.insert("local".into(), "127.0.0.1:40000".into());
        with.fields.insert("peer".into(), "127.0.0.1:50051".into());
        with.fields.insert("stream_id".into(), 3.into());
        let s = FAMILY.span(&with, &[]).expect("span");
        assert_eq!(s.name, "helloworld.Greeter/SayHello");
        assert_eq!(s.kind, SpanKind::Client);
        assert_eq!(s.attributes["server.address"], AttrValue::from("greeter"));
        assert_eq!(s.attributes["network.peer.port"], AttrValue::Int(50051));
        assert_eq!(s.status.code, StatusCode::Unset);
        let c = s.connection.expect("connection");
        assert_eq!(c.local, Some("127.0.0.1:40000".parse().unwrap()));
        assert_eq!(c.stream, Some(3));
        // An error that was not a status: Unknown, with its type and text.
        let mut other = raw.clone();
        other.fields.insert("code".into(), 2.into());
        other
            .fields
            .insert("error_type".into(), "*errors.errorString".into());
        other.fields.insert("error".into(), "boom".into());
        let s = FAMILY.span(&other, &[]).expect("span");
        assert_eq!(s.status.code, StatusCode::Error);
        assert_eq!(s.status.message.as_deref(), Some("boom"));
        assert_eq!(s.attributes["error.type"], AttrValue::from("UNKNOWN"));
        // An error of a type that could not be named: no code at all.
        bytes[8..12].copy_from_slice(&abi::FLAG_ERROR.to_ne_bytes());
        let raw = FAMILY.decode(&bytes, &mut ctx).expect("decodes");
        assert!(!raw.fields.contains_key("code"));
    }
}
