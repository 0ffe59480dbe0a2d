//! The `http_server` family (catalog probe `http.server`): requests served
//! by net/http (`serverHandler.ServeHTTP`; HTTP/1.x and HTTP/2, its own or
//! golang.org/x/net/http2's), by x/net's HTTP/2 server for a handler of its
//! own (`(*serverConn).runHandler`: the h2c handler, `ServeConn`), and
//! requests whose handler a panic escaped (net/http's recovery ran instead
//! of ServeHTTP's return). h2c's connection preface (`PRI *`) is no request.
//!
//! Stream fields: `method`, `path`, `query`, `host`, `proto`, `peer`,
//! `route`, `traceparent`, `user_agent` (each absent when empty, with
//! `<name>_len` when the probe cut it short), `tls` (whether the request
//! came over TLS, when known), `status`, `panic_recovered_by` (the recovery
//! function that ran), `read_failed`, `headers_not_searched` (Request.Header too big to
//! search), `unfinished` (the process died while serving).

use std::collections::BTreeMap;
use std::mem::size_of;

use serde::{Deserialize, Serialize};

use super::family::{
    ConfigInput, Configured, Connection, Decode, Family, RecordingError, SpanParts, is_false,
};
use super::netaddr;
use crate::bpf::abi::{self, GpCallKey, MODES, Plain, str_and_len};
use crate::bpf::{self, BpfError};
use crate::otel;
use crate::span::{AttrValue, Attributes, Event, SpanKind, Status, StatusCode};
use crate::stream::RawEvent;
use crate::tracecontext::parse_traceparent;

pub struct HttpServer;

pub static FAMILY: HttpServer = HttpServer;

const PROBE: &str = "http.server";

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/http_server.bpf.o"));

/// `GP_FLAG_UNWOUND`: ServeHTTP never returned; net/http's recovery ran instead.
pub const FLAG_UNWOUND: u32 = 1 << 8;
/// `GP_FLAG_MAP_TOO_BIG`: Request.Header too big to search for traceparent.
pub const FLAG_MAP_TOO_BIG: u32 = 1 << 9;
/// `GP_FLAG_TLS`: Request.TLS is set.
pub const FLAG_TLS: u32 = 1 << 10;
/// `GP_FLAG_TLS_KNOWN`: Request.TLS was read.
pub const FLAG_TLS_KNOWN: u32 = 1 << 11;
/// `GP_FLAG_XNET`: served by x/net's runHandler.
pub const FLAG_XNET: u32 = 1 << 12;
/// `GP_FLAG_PREFACE`: h2c's connection preface (never sent).
pub const FLAG_PREFACE: u32 = 1 << 13;
/// `GP_FLAG_DONE`: an in-flight map entry whose call ended (kept for the
/// goroutine's next request); never set on a sent event.
pub const FLAG_DONE: u32 = 1 << 14;
/// `GP_HOOK_XNET_RUNHANDLER`.
pub const HOOK_XNET_RUNHANDLER: u32 = 1;

/// The ResponseWriters whose HTTP/2 status the programs read, as `%T`
/// names them: net/http's own (bundled before Go 1.27, the wrapper of
/// net/http/internal/http2's since), and golang.org/x/net/http2's.
const STD_H2_WRITERS: [&str; 2] = ["*http.http2responseWriter", "http.http2ResponseWriter"];
const XNET_H2_WRITER: (&str, &str) = ("*http2.responseWriter", "golang.org/x/net/http2");

/// `gp_config.mode` slots and values (`ebpf/probes/http_server.bpf.c`).
pub const MODE_ROUTE: usize = 0;
pub const ROUTE_NONE: u32 = 0;
pub const ROUTE_PATTERN: u32 = 1;
pub const ROUTE_PAT_PTR: u32 = 2;
pub const MODE_MAP: usize = 1;
pub const MAP_NONE: u32 = 0;
pub const MAP_BUCKETS: u32 = 1;
pub const MAP_SWISS: u32 = 2;

pub const METHOD_MAX: usize = 16;
pub const SHORT_MAX: usize = 64;
pub const LONG_MAX: usize = 256;
pub const TRACEPARENT_MAX: usize = 64;
pub const USER_AGENT_MAX: usize = 256;

/// `GP_AT_*`: the packed strings of [`ServerEvent::buf`], by index in `at`.
pub const AT_HOST: usize = 0;
pub const AT_PATH: usize = 1;
pub const AT_QUERY: usize = 2;
pub const AT_USER_AGENT: usize = 3;
pub const AT_TRACEPARENT: usize = 4;
pub const AT_ROUTE: usize = 5;
pub const AT_N: usize = 6;
/// `GP_PACKED_BYTES`: every packed string at its buffer size.
pub const PACKED_BYTES: usize = SHORT_MAX + 3 * LONG_MAX + USER_AGENT_MAX + TRACEPARENT_MAX;

/// `struct gp_server_event`. A record is its fixed part ([`EVENT_FIXED`]
/// bytes) and the `used` bytes of `buf`; an in-flight map entry is whole.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ServerEvent {
    pub pid: u32,
    pub tid: u32,
    pub flags: u32,
    pub unwound_by: u32,
    pub goid: u64,
    pub g: u64,
    pub start_ns: u64,
    pub end_ns: u64,
    pub status: i64,
    pub req: u64,
    pub resp: u64,
    pub resp_type: u64,
    pub status_h2: i64,
    pub status_xnet: i64,
    pub peer_ptr: u64,
    pub hook: u32,
    pub depth: u32,
    pub method_len: u32,
    pub path_len: u32,
    pub host_len: u32,
    pub proto_len: u32,
    pub peer_len: u32,
    pub route_len: u32,
    pub traceparent_len: u32,
    pub query_len: u32,
    pub user_agent_len: u32,
    pub _pad2: u32,
    /// Where each packed string starts in `buf` (`GP_AT_*`).
    pub at: [u16; AT_N],
    /// Bytes of `buf` filled (and sent).
    pub used: u16,
    pub _pad3: u16,
    pub method: [u8; METHOD_MAX],
    pub proto: [u8; METHOD_MAX],
    pub peer: [u8; SHORT_MAX],
    /// Host, path, query, user agent, traceparent and route, packed.
    pub buf: [u8; PACKED_BYTES],
}
const _: () = assert!(size_of::<ServerEvent>() == 1416);
/// `GP_EVENT_FIXED`: the bytes of a record before its packed strings.
pub const EVENT_FIXED: usize = size_of::<ServerEvent>() - PACKED_BYTES;
const _: () = assert!(EVENT_FIXED == 264);

// SAFETY: repr(C), integers and byte arrays only, no implicit padding (its
// fields are laid out to multiples of 8; size checked above), so every bit
// pattern is valid.
unsafe impl Plain for ServerEvent {}
// SAFETY: as above.
unsafe impl aya::Pod for ServerEvent {}

impl ServerEvent {
    /// One ring-buffer record: the fixed part and the packed strings sent.
    pub fn from_record(record: &[u8]) -> Option<ServerEvent> {
        abi::read_packed(record, PACKED_BYTES, |ev: &ServerEvent| ev.used)
    }
}

/// The stream fields of an `http.server` event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method_len: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path_len: Option<u32>,
    /// URL.RawQuery, as received (redacted when spans are made).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_len: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_len: Option<u32>,
    /// Whether the request came over TLS (Request.TLS set); absent when unknown.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proto_len: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_len: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route_len: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent_len: Option<u32>,
    /// The first User-Agent header (cut at 256 bytes, `user_agent_len` then the real length).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent_len: Option<u32>,
    /// HTTP status code, when the probe read one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<i64>,
    /// ServeHTTP never returned: the net/http function whose recovery ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub panic_recovered_by: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub read_failed: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub headers_not_searched: bool,
    /// The process exited while the request was being served.
    #[serde(default, skip_serializing_if = "is_false")]
    pub unfinished: bool,
}

/// The status of an HTTP/2 response as read (-1: unread; 0: none written,
/// net/http then sends 200 unless the handler panicked).
fn h2_status(read: i64, unwound: bool) -> Option<i64> {
    match read {
        -1 => None,
        0 if unwound => None,
        0 => Some(200),
        s => Some(s),
    }
}

impl Fields {
    fn of(ev: &ServerEvent, ctx: &mut Decode<'_>) -> Fields {
        let mut packed = abi::PackedStrs::new(&ev.buf, ev.used, &ev.at);
        let (path, path_len) = packed.field(AT_PATH, ev.path_len, LONG_MAX);
        let (query, query_len) = packed.field(AT_QUERY, ev.query_len, LONG_MAX);
        let (host, host_len) = packed.field(AT_HOST, ev.host_len, SHORT_MAX);
        let (route, route_len) = packed.field(AT_ROUTE, ev.route_len, LONG_MAX);
        let (traceparent, traceparent_len) =
            packed.field(AT_TRACEPARENT, ev.traceparent_len, TRACEPARENT_MAX);
        let (user_agent, user_agent_len) =
            packed.field(AT_USER_AGENT, ev.user_agent_len, USER_AGENT_MAX);
        let bad_layout = packed.bad;
        let (method, method_len) = str_and_len(&ev.method, ev.method_len);
        let (proto, proto_len) = str_and_len(&ev.proto, ev.proto_len);
        let (peer, peer_len) = str_and_len(&ev.peer, ev.peer_len);
        Fields {
            method,
            method_len,
            path,
            path_len,
            query,
            query_len,
            host,
            host_len,
            tls: (ev.flags & FLAG_TLS_KNOWN != 0).then_some(ev.flags & FLAG_TLS != 0),
            proto,
            proto_len,
            peer,
            peer_len,
            route,
            route_len,
            traceparent,
            traceparent_len,
            user_agent,
            user_agent_len,
            status: Self::status(ev, ctx),
            panic_recovered_by: (ev.flags & FLAG_UNWOUND != 0).then(|| {
                // x/net's runHandler recovers the panic itself.
                let by = if ev.flags & FLAG_XNET != 0 {
                    ev.hook
                } else {
                    ev.unwound_by
                };
                ctx.hook(by)
                    .map_or_else(|| "net/http".to_owned(), |h| h.function.clone())
            }),
            read_failed: ev.flags & abi::FLAG_READ_FAILED != 0 || bad_layout,
            headers_not_searched: ev.flags & FLAG_MAP_TOO_BIG != 0,
            unfinished: false,
        }
    }
}

impl Fields {
    /// The status read for this request's server and protocol.
    fn status(ev: &ServerEvent, ctx: &mut Decode<'_>) -> Option<i64> {
        let unwound = ev.flags & FLAG_UNWOUND != 0;
        if ev.flags & FLAG_XNET != 0 {
            return h2_status(ev.status_xnet, unwound);
        }
        if ev.proto.starts_with(b"HTTP/2") {
            // Which HTTP/2 server answered: the ResponseWriter's type says.
            let ty = ctx.symbols.type_name(ev.pid, ev.resp_type)?;
            if STD_H2_WRITERS.contains(&ty.name.as_str()) {
                return h2_status(ev.status_h2, unwound);
            }
            if ty.name == XNET_H2_WRITER.0
                && ctx.symbols.package_path(&ty).as_deref() == Some(XNET_H2_WRITER.1)
            {
                return h2_status(ev.status_xnet, unwound);
            }
            return None;
        }
        (ev.status != 0).then_some(ev.status)
    }
}

fn raw(ev: &ServerEvent, fields: &Fields) -> RawEvent {
    RawEvent {
        probe: PROBE.to_owned(),
        pid: ev.pid,
        tid: ev.tid,
        goroutine: ev.goid,
        start_ns: ev.start_ns,
        end_ns: ev.end_ns,
        fields: RawEvent::fields_from(fields),
    }
}

/// The fields the server program needs to find `Traceparent` in
/// Request.Header, for Swiss-table maps (Go 1.24+) or bucket maps.
fn header_map_fields(swiss_maps: bool) -> &'static [&'static str] {
    if swiss_maps {
        &[
            "net/http.Request.Header",
            "internal/runtime/maps.Map.dirPtr",
            "internal/runtime/maps.Map.dirLen",
            "internal/runtime/maps.table.groups",
            "internal/runtime/maps.groupsReference.data",
            "internal/runtime/maps.groupsReference.lengthMask",
        ]
    } else {
        &[
            "net/http.Request.Header",
            "runtime.hmap.B",
            "runtime.hmap.buckets",
            "runtime.hmap.oldbuckets",
        ]
    }
}

/// True when the binary was built with `GOEXPERIMENT` naming `experiment`.
fn goexperiment(bin: &crate::gobin::GoBinary, experiment: &str) -> bool {
    bin.build_info()
        .settings
        .iter()
        .any(|(k, v)| k == "GOEXPERIMENT" && v.split(',').any(|e| e == experiment))
}

/// True when the binary's maps are Swiss tables: Go 1.24 made them the
/// default; GOEXPERIMENT=noswissmap (1.24, 1.25) kept the bucket maps.
pub fn uses_swiss_maps(bin: &crate::gobin::GoBinary) -> bool {
    let new_enough = crate::catalog::VersionReq::parse(">=1.24")
        .is_some_and(|r| r.matches_str(&bin.build_info().go_version));
    new_enough && !goexperiment(bin, "noswissmap")
}

/// The route and map switches, from the offsets known.
pub fn modes(offsets: &BTreeMap<String, u64>, swiss_maps: bool) -> [u32; MODES] {
    let known = |f: &str| offsets.contains_key(f);
    let mut m = [0; MODES];
    // Go 1.23 exported Request.Pattern; Go 1.22 kept the matched pattern
    // only in the unexported Request.pat.
    m[MODE_ROUTE] = if known("net/http.Request.Pattern") {
        ROUTE_PATTERN
    } else if known("net/http.Request.pat") && known("net/http.pattern.str") {
        ROUTE_PAT_PTR
    } else {
        ROUTE_NONE
    };
    m[MODE_MAP] = if !header_map_fields(swiss_maps).iter().all(|f| known(f)) {
        MAP_NONE
    } else if swiss_maps {
        MAP_SWISS
    } else {
        MAP_BUCKETS
    };
    m
}

impl Family for HttpServer {
    fn name(&self) -> &'static str {
        "http_server"
    }

    fn probes(&self) -> &'static [&'static str] {
        &[PROBE]
    }

    fn object(&self) -> &'static [u8] {
        OBJECT
    }

    fn hook_flag(&self, flag: &str) -> Option<u32> {
        (flag == "xnet_runhandler").then_some(HOOK_XNET_RUNHANDLER)
    }

    fn configure(&self, target: &ConfigInput<'_>) -> Configured {
        let swiss = uses_swiss_maps(target.binary);
        let mut c = Configured {
            modes: modes(target.offsets, swiss),
            notes: Vec::new(),
        };
        // Go 1.27's GOEXPERIMENT=mapsplitgroup stores a group's keys apart
        // from its values: a slot layout the programs do not walk.
        if goexperiment(target.binary, "mapsplitgroup") && c.modes[MODE_MAP] != MAP_NONE {
            c.modes[MODE_MAP] = MAP_NONE;
            c.notes.push(format!("{PROBE}: incoming trace context (traceparent) will not be read: built with GOEXPERIMENT=mapsplitgroup, a map layout goprobe does not read"));
        } else if c.modes[MODE_MAP] == MAP_NONE {
            let unknown: Vec<&str> = header_map_fields(swiss)
                .iter()
                .copied()
                .filter(|f| !target.offsets.contains_key(*f))
                .collect();
            c.notes.push(format!(
                "{PROBE}: incoming trace context (traceparent) will not be read: offsets unknown for {}",
                unknown.join(", ")
            ));
        }
        c
    }

    fn decode(&self, record: &[u8], ctx: &mut Decode<'_>) -> Option<RawEvent> {
        let ev = ServerEvent::from_record(record)?;
        Some(raw(&ev, &Fields::of(&ev, ctx)))
    }

    /// Requests a dying process never answered are data too: the server
    /// calls still in the in-flight map, for processes that are gone.
    fn unfinished(
        &self,
        object: &bpf::Object,
        ctx: &mut Decode<'_>,
        now_ns: u64,
        gone: &dyn Fn(u32) -> bool,
    ) -> Result<Vec<RawEvent>, BpfError> {
        let mut out = Vec::new();
        for mut ev in object.hash_values::<GpCallKey, ServerEvent>("inflight")? {
            if !gone(ev.pid) || ev.flags & (FLAG_PREFACE | FLAG_DONE) != 0 {
                continue;
            }
            ev.end_ns = now_ns.max(ev.start_ns);
            let mut fields = Fields::of(&ev, ctx);
            fields.unfinished = true;
            out.push(raw(&ev, &fields));
        }
        Ok(out)
    }

    fn span(&self, ev: &RawEvent, nested: &[Event]) -> Result<SpanParts, RecordingError> {
        let f: Fields = ev.fields_as()?;
        Ok(server_span(ev, &f, nested))
    }
}

fn server_span(ev: &RawEvent, f: &Fields, nested: &[Event]) -> SpanParts {
    let method = f.method.as_deref().unwrap_or("_OTHER");
    let mut a = Attributes::new();
    a.insert("http.request.method".into(), method.into());
    if let Some(p) = &f.path {
        a.insert("url.path".into(), p.as_str().into());
    }
    if let Some(q) = f.query.as_deref().filter(|q| !q.is_empty()) {
        // Sensitive values are redacted with every span (crate::redact).
        a.insert("url.query".into(), q.into());
    }
    if let Some(tls) = f.tls {
        a.insert(
            "url.scheme".into(),
            if tls { "https" } else { "http" }.into(),
        );
    }
    let route = f.route.as_deref().filter(|r| !r.is_empty());
    if let Some(r) = route {
        // Go 1.22 patterns may start with a method ("GET /users/{id}").
        let path_part = r.split_once(' ').map_or(r, |(_, p)| p);
        a.insert("http.route".into(), path_part.into());
    }
    let escaped = f.panic_recovered_by.is_some();
    // A handler that writes nothing gets an implicit 200 after ServeHTTP
    // returns (HTTP/1.x; HTTP/2's reading says so itself). A panic that
    // escaped the handler: net/http closes the connection (HTTP/2: resets
    // the stream) without a response, so there is no status to report.
    let http1 =
        f.proto.as_deref().is_some_and(|p| p.starts_with("HTTP/1")) && !escaped && !f.unfinished;
    let status = f.status.or(http1.then_some(200)).unwrap_or(0);
    if status != 0 {
        a.insert("http.response.status_code".into(), AttrValue::Int(status));
    }
    if let Some(proto) = &f.proto {
        a.insert(
            "network.protocol.version".into(),
            otel::http_protocol_version(proto).into(),
        );
    }
    if let Some((host, port)) = f.host.as_deref().and_then(otel::split_host_port) {
        a.insert("server.address".into(), host.into());
        if let Some(p) = port {
            a.insert("server.port".into(), AttrValue::Int(p));
        }
    }
    if let Some((host, Some(port))) = f.peer.as_deref().and_then(otel::split_host_port) {
        a.insert("network.peer.address".into(), host.into());
        a.insert("network.peer.port".into(), AttrValue::Int(port));
    }
    if let Some(ua) = f.user_agent.as_deref().filter(|u| !u.is_empty()) {
        // Cut at 256 bytes by the probe: the prefix is still the agent.
        a.insert("user_agent.original".into(), ua.into());
    }
    // Semantic conventions: an unknown method names the span `HTTP`.
    let shown = if method == "_OTHER" { "HTTP" } else { method };
    let name = match route {
        Some(r) if r.contains(' ') => r.to_owned(),
        Some(r) => format!("{shown} {r}"),
        None => shown.to_owned(),
    };
    let code = status;
    let mut status = otel::http_status(code, SpanKind::Server);
    // Semantic conventions: a status code that is an error is the error type.
    if status.code == StatusCode::Error {
        a.insert("error.type".into(), code.to_string().into());
    }
    // ServeHTTP never returned: the process died while serving the
    // request, or a panic escaped the handler and net/http caught it. The
    // last panic seen on the request says why.
    let last = nested.iter().rev().find(|e| e.name == "exception");
    let text = |k: &str| match last.and_then(|e| e.attributes.get(k)) {
        Some(AttrValue::String(s)) => Some(s.as_str()),
        _ => None,
    };
    let (ty, msg) = (text("exception.type"), text("exception.message"));
    let why = if f.unfinished {
        // Marked as such: its end is when goprobe saw the process gone.
        a.insert("goprobe.unfinished".into(), AttrValue::Bool(true));
        if let Some(t) = ty {
            a.insert("error.type".into(), t.into());
        }
        Some(match msg {
            Some(m) => format!("process exited while serving the request (panic: {m})"),
            None => "process exited while serving the request".to_owned(),
        })
    } else if escaped {
        a.insert("error.type".into(), ty.unwrap_or("_OTHER").into());
        Some(match (last, msg) {
            (_, Some(m)) => format!("panic: {m}"),
            (Some(_), None) => "panic escaped the handler".to_owned(),
            // No panic seen: runtime.Goexit, or a lost event.
            (None, None) => "the handler never returned".to_owned(),
        })
    } else {
        None
    };
    if let Some(message) = why {
        status = Status {
            code: StatusCode::Error,
            message: Some(message),
        };
    }
    SpanParts {
        name,
        kind: SpanKind::Server,
        start_ns: ev.start_ns,
        end_ns: ev.end_ns.max(ev.start_ns),
        attributes: a,
        status,
        incoming: f.traceparent.as_deref().and_then(parse_traceparent),
        // The client's end, as net/http saw it (Request.RemoteAddr).
        connection: f
            .peer
            .as_deref()
            .and_then(netaddr::parse)
            .map(|p| Connection {
                local: None,
                peer: Some(p),
                stream: None,
            }),
    }
}

#[cfg(test)]
mod tests;
