//! The `http_client` family (catalog probe `http.client`): outgoing HTTP
//! calls through `net/http.(*Transport).roundTrip` or
//! `golang.org/x/net/http2.(*Transport).RoundTripOpt`.
//!
//! Stream fields: `method`, `scheme`, `host` (URL.Host), `path`, `query`,
//! `request_host` (Request.Host), `proto` (Response.Proto) (each absent when
//! empty, with `<name>_len` when the probe cut it short), `userinfo` (the
//! URL carries credentials, never written out), `status`, `error` (the
//! round trip returned one), `error_type` (its Go type, as `%T` prints it),
//! `error_message` (its text, where Go's own text follows exactly from what
//! was read), `local` and `remote` (the connection's two ends, `ip:port`,
//! when it is a TCP connection, with or without TLS),
//! `read_failed`.

use std::mem::size_of;

use serde::{Deserialize, Serialize};

use super::family::{Connection, Decode, Family, RecordingError, SpanParts, is_false};
use super::netaddr::{self, TcpAddr};
use crate::bpf::abi::{self, Plain, str_and_len};
use crate::otel;
use crate::span::{AttrValue, Attributes, Event, SpanKind, Status, StatusCode};
use crate::stream::RawEvent;

pub struct HttpClient;

pub static FAMILY: HttpClient = HttpClient;

const PROBE: &str = "http.client";

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/http_client.bpf.o"));

/// `GP_FLAG_NO_RESPONSE`: no *Response to read a status from.
pub const FLAG_NO_RESPONSE: u32 = 1 << 8;
/// `GP_FLAG_USERINFO`: URL.User is set.
pub const FLAG_USERINFO: u32 = 1 << 9;

/// `GP_HOOK_*` switches of `http_client_conn`, by catalog spelling.
pub const HOOK_FLAGS: [(&str, u32); 3] = [("conn_persist", 1), ("conn_h2", 2), ("conn_xnet", 4)];

/// The net.Conn types whose ends the programs read, as `%T` names them.
const TCP_CONN: &str = "*net.TCPConn";
const TLS_CONN: (&str, &str) = ("*tls.Conn", "crypto/tls");
/// The interface a connection wrapper holds first.
const NET_CONN: &str = "net.Conn";

pub const METHOD_MAX: usize = 16;
pub const SHORT_MAX: usize = 64;
pub const LONG_MAX: usize = 256;
pub const ERROR_TEXT_MAX: usize = 128;

/// `GP_AT_*`: the packed strings of [`ClientEvent::buf`], by index in `at`.
pub const AT_HOST: usize = 0;
pub const AT_REQUEST_HOST: usize = 1;
pub const AT_PATH: usize = 2;
pub const AT_QUERY: usize = 3;
pub const AT_N: usize = 4;
/// `GP_PACKED_BYTES`: every packed string at its buffer size.
pub const PACKED_BYTES: usize = 2 * SHORT_MAX + 2 * LONG_MAX;

/// `struct gp_client_event`. A record is its fixed part ([`EVENT_FIXED`]
/// bytes) and the `used` bytes of `buf`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ClientEvent {
    pub pid: u32,
    pub tid: u32,
    pub flags: u32,
    pub _pad0: u32,
    pub goid: u64,
    pub g: u64,
    pub parent_goid: u64,
    pub start_ns: u64,
    pub end_ns: u64,
    pub status: i64,
    pub conn_type: u64,
    pub inner_type: u64,
    pub tcp_local: TcpAddr,
    pub tcp_peer: TcpAddr,
    pub tls_local: TcpAddr,
    pub tls_peer: TcpAddr,
    pub method_len: u32,
    pub scheme_len: u32,
    pub host_len: u32,
    pub request_host_len: u32,
    pub path_len: u32,
    pub query_len: u32,
    pub proto_len: u32,
    pub depth: u32,
    /// Where each packed string starts in `buf` (`GP_AT_*`).
    pub at: [u16; AT_N],
    /// Bytes of `buf` filled (and sent).
    pub used: u16,
    pub _pad2: [u16; 3],
    pub proto: [u8; METHOD_MAX],
    pub method: [u8; METHOD_MAX],
    pub scheme: [u8; METHOD_MAX],
    pub error_type: u64,
    pub error_data: u64,
    pub error_word: [u64; 4],
    pub error_text_len: u32,
    pub _pad1: u32,
    pub error_text: [u8; ERROR_TEXT_MAX],
    /// URL.Host, Request.Host, URL.Path and URL.RawQuery, packed.
    pub buf: [u8; PACKED_BYTES],
}
const _: () = assert!(size_of::<ClientEvent>() == 1128);
/// `GP_EVENT_FIXED`: the bytes of a record before its packed strings.
pub const EVENT_FIXED: usize = size_of::<ClientEvent>() - PACKED_BYTES;
const _: () = assert!(EVENT_FIXED == 488);

// SAFETY: repr(C), integers and byte arrays only, no implicit padding (size
// checked above), so every bit pattern is valid.
unsafe impl Plain for ClientEvent {}

/// The stream fields of an `http.client` event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method_len: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme_len: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_len: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_len: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_len: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_host_len: Option<u32>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub userinfo: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub error: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub read_failed: bool,
}

impl Family for HttpClient {
    fn name(&self) -> &'static str {
        "http_client"
    }

    fn probes(&self) -> &'static [&'static str] {
        &[PROBE]
    }

    fn object(&self) -> &'static [u8] {
        OBJECT
    }

    fn hook_flag(&self, flag: &str) -> Option<u32> {
        HOOK_FLAGS.iter().find(|(n, _)| *n == flag).map(|(_, b)| *b)
    }

    fn decode(&self, record: &[u8], ctx: &mut Decode<'_>) -> Option<RawEvent> {
        let ev = abi::read_packed(record, PACKED_BYTES, |ev: &ClientEvent| ev.used)?;
        let error = ev.flags & abi::FLAG_ERROR != 0;
        let mut error_type = None;
        let mut error_message = None;
        if error && let Some(t) = ctx.symbols.type_name(ev.pid, ev.error_type) {
            let n = (ev.error_text_len as usize).min(ev.error_text.len());
            let captured = crate::gobin::values::Captured {
                data: ev.error_data,
                words: ev.error_word,
                text: ev.error_text.get(..n).unwrap_or_default(),
            };
            // Only a whole message: a cut one is not what Go says.
            error_message = crate::gobin::values::error_message(&t, &captured)
                .filter(|m| !m.truncated)
                .map(|m| m.text);
            error_type = Some(t.name);
        }
        let (method, method_len) = str_and_len(&ev.method, ev.method_len);
        let (scheme, scheme_len) = str_and_len(&ev.scheme, ev.scheme_len);
        let mut packed = abi::PackedStrs::new(&ev.buf, ev.used, &ev.at);
        let (host, host_len) = packed.field(AT_HOST, ev.host_len, SHORT_MAX);
        let (path, path_len) = packed.field(AT_PATH, ev.path_len, LONG_MAX);
        let (query, query_len) = packed.field(AT_QUERY, ev.query_len, LONG_MAX);
        let (request_host, request_host_len) =
            packed.field(AT_REQUEST_HOST, ev.request_host_len, SHORT_MAX);
        let bad_layout = packed.bad;
        let (local, remote) = connection_ends(&ev, ctx);
        let fields = Fields {
            method,
            method_len,
            scheme,
            scheme_len,
            host,
            host_len,
            path,
            path_len,
            query,
            query_len,
            request_host,
            request_host_len,
            userinfo: ev.flags & FLAG_USERINFO != 0,
            proto: str_and_len(&ev.proto, ev.proto_len).0,
            status: (ev.status != 0).then_some(ev.status),
            local: local.map(|a| netaddr::join(&a)),
            remote: remote.map(|a| netaddr::join(&a)),
            error,
            error_type,
            error_message,
            read_failed: ev.flags & abi::FLAG_READ_FAILED != 0 || bad_layout,
        };
        Some(
            RawEvent {
                probe: PROBE.to_owned(),
                pid: ev.pid,
                tid: ev.tid,
                goroutine: ev.goid,
                start_ns: ev.start_ns,
                end_ns: ev.end_ns,
                fields: RawEvent::fields_from(&fields),
            }
            .with_parent_goroutine(ev.parent_goid),
        )
    }

    fn span(&self, ev: &RawEvent, _nested: &[Event]) -> Result<SpanParts, RecordingError> {
        let f: Fields = ev.fields_as()?;
        // net/http: "For client requests, an empty string means GET." A
        // method that could not be read is unknown, not GET (semantic
        // conventions: `_OTHER`, and the span is named `HTTP`).
        let method = match f.method.as_deref() {
            Some("") => "GET",
            Some(m) => m,
            None => "_OTHER",
        };
        let scheme = f.scheme.as_deref().unwrap_or("");
        let host = f.host.as_deref().unwrap_or("");
        let mut a = Attributes::new();
        a.insert("http.request.method".into(), method.into());
        // url.full only from what was read: no scheme or host is guessed.
        let path = f.path.as_deref().unwrap_or("");
        if let Some(url) = otel::url_full(scheme, host, path, f.query.as_deref()) {
            // The credentials themselves were never read.
            let url = if f.userinfo {
                url.replacen("://", "://REDACTED:REDACTED@", 1)
            } else {
                url
            };
            a.insert("url.full".into(), url.into());
        }
        if let Some((h, port)) = otel::split_host_port(host) {
            a.insert("server.address".into(), h.into());
            if let Some(p) = port.or(otel::default_port(scheme)) {
                a.insert("server.port".into(), AttrValue::Int(p));
            }
        }
        if let Some(s) = f.status {
            a.insert("http.response.status_code".into(), AttrValue::Int(s));
        }
        if let Some(p) = &f.proto {
            a.insert(
                "network.protocol.version".into(),
                otel::http_protocol_version(p).into(),
            );
        }
        let remote = f.remote.as_deref().and_then(netaddr::parse);
        if let Some(r) = remote {
            a.insert("network.peer.address".into(), r.ip().to_string().into());
            a.insert(
                "network.peer.port".into(),
                AttrValue::Int(i64::from(r.port())),
            );
        }
        let status = if f.error {
            // The Go error's dynamic type (`*net.OpError`), as the
            // conventions ask; `_OTHER` when it could not be named.
            let ty = f.error_type.as_deref().unwrap_or("_OTHER");
            a.insert("error.type".into(), ty.into());
            Status {
                code: StatusCode::Error,
                message: Some(match &f.error_message {
                    Some(m) => m.clone(),
                    None if f.error_type.is_some() => format!("roundTrip returned a {ty}"),
                    None => "roundTrip returned an error".to_owned(),
                }),
            }
        } else {
            let st = f
                .status
                .map_or_else(Status::default, |s| otel::http_status(s, SpanKind::Client));
            // A status code that is an error is the error type.
            if st.code == StatusCode::Error
                && let Some(code) = f.status
            {
                a.insert("error.type".into(), code.to_string().into());
            }
            st
        };
        Ok(SpanParts {
            name: if method == "_OTHER" {
                "HTTP".to_owned()
            } else {
                method.to_owned()
            },
            kind: SpanKind::Client,
            start_ns: ev.start_ns,
            end_ns: ev.end_ns.max(ev.start_ns),
            attributes: a,
            status,
            incoming: None,
            connection: f
                .local
                .as_deref()
                .and_then(netaddr::parse)
                .map(|l| Connection {
                    local: Some(l),
                    peer: remote,
                    stream: None,
                }),
        })
    }
}

/// The ends of the connection the call went out on: read as a
/// `*net.TCPConn`'s, or as those of the `*net.TCPConn` under a `*tls.Conn`,
/// whichever the net.Conn's type says it was.
fn connection_ends(
    ev: &ClientEvent,
    ctx: &mut Decode<'_>,
) -> (Option<std::net::SocketAddr>, Option<std::net::SocketAddr>) {
    let Some(outer) = ctx.symbols.type_name(ev.pid, ev.conn_type) else {
        return (None, None);
    };
    let (local, peer) = if outer.name == TCP_CONN {
        (ev.tcp_local, ev.tcp_peer)
    } else if (outer.name == TLS_CONN.0
        && ctx.symbols.package_path(&outer).as_deref() == Some(TLS_CONN.1)
        // The probe read the inner connection at tls.Conn.conn's offset,
        // 0 in every Go release: a wrapper holding its net.Conn first
        // (go-conntrack's, in Prometheus) was read the same way.
        || ctx
            .symbols
            .wraps_interface_first(ev.pid, ev.conn_type, NET_CONN))
        && ctx
            .symbols
            .type_name(ev.pid, ev.inner_type)
            .is_some_and(|t| t.name == TCP_CONN)
    {
        (ev.tls_local, ev.tls_peer)
    } else {
        return (None, None);
    };
    (
        local.checked(ev.pid, ctx.symbols),
        peer.checked(ev.pid, ctx.symbols),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::family::HookInfo;
    use crate::probes::symbols::Symbols;

    #[test]
    fn decodes_records_with_packed_strings() {
        let zeros = vec![0u8; size_of::<ClientEvent>()];
        let mut ev = ClientEvent::read(&zeros).expect("long enough");
        ev.pid = 42;
        ev.method[..3].copy_from_slice(b"GET");
        ev.method_len = 3;
        let mut append = |i: usize, s: &[u8]| {
            let at = usize::from(ev.used);
            ev.at[i] = ev.used;
            ev.buf[at..at + s.len()].copy_from_slice(s);
            ev.used += u16::try_from(s.len()).unwrap();
            u32::try_from(s.len()).unwrap()
        };
        let rh = append(AT_REQUEST_HOST, b"");
        let h = append(AT_HOST, b"example.com:8080");
        let p = append(AT_PATH, b"/v1/items");
        let q = append(AT_QUERY, b"a=1");
        (ev.request_host_len, ev.host_len, ev.path_len, ev.query_len) = (rh, h, p, q);
        ev.status = 204;
        let mut bytes = zeros.clone();
        // SAFETY: writing one ClientEvent into bytes of its size.
        unsafe { std::ptr::write_unaligned(bytes.as_mut_ptr().cast::<ClientEvent>(), ev) };
        bytes.truncate(EVENT_FIXED + usize::from(ev.used));
        let hooks = [HookInfo {
            function: "net/http.(*Client).do".into(),
            operation: None,
        }];
        let mut symbols = Symbols::new(None);
        let mut ctx = Decode {
            hooks: &hooks,
            symbols: &mut symbols,
        };
        let raw = FAMILY.decode(&bytes, &mut ctx).expect("decodes");
        assert_eq!(raw.fields["host"], "example.com:8080");
        assert_eq!(raw.fields["path"], "/v1/items");
        assert_eq!(raw.fields["query"], "a=1");
        assert_eq!(raw.fields["status"], 204);
        assert!(!raw.fields.contains_key("request_host"));
        assert!(!raw.fields.contains_key("read_failed"));
        assert!(FAMILY.decode(&bytes[..bytes.len() - 1], &mut ctx).is_none());
        assert!(FAMILY.decode(&bytes[..EVENT_FIXED - 1], &mut ctx).is_none());
    }

    #[test]
    fn constants_match_the_c_file() {
        let source = include_str!("../../ebpf/probes/http_client.bpf.c");
        for (name, value) in [
            ("GP_FLAG_NO_RESPONSE", u64::from(FLAG_NO_RESPONSE)),
            ("GP_HOOK_CONN_PERSIST", u64::from(HOOK_FLAGS[0].1)),
            ("GP_HOOK_CONN_H2", u64::from(HOOK_FLAGS[1].1)),
            ("GP_HOOK_CONN_XNET", u64::from(HOOK_FLAGS[2].1)),
            ("GP_FLAG_USERINFO", u64::from(FLAG_USERINFO)),
            ("GP_ERROR_TEXT_MAX", ERROR_TEXT_MAX as u64),
            ("GP_METHOD_MAX", METHOD_MAX as u64),
            ("GP_SHORT_MAX", SHORT_MAX as u64),
            ("GP_LONG_MAX", LONG_MAX as u64),
            ("GP_AT_HOST", AT_HOST as u64),
            ("GP_AT_REQUEST_HOST", AT_REQUEST_HOST as u64),
            ("GP_AT_PATH", AT_PATH as u64),
            ("GP_AT_QUERY", AT_QUERY as u64),
            ("GP_AT_N", AT_N as u64),
        ] {
            assert_eq!(abi::c_define(source, name), Some(value), "{name}");
        }
        assert!(source.contains(&format!(
            "sizeof(struct gp_client_event) == {}",
            size_of::<ClientEvent>()
        )));
        assert!(source.contains(&format!("GP_EVENT_FIXED == {EVENT_FIXED}")));
    }
}
