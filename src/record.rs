//! Turning attach's raw event stream into spans (`crate::span` schema).
//!
//! A server event becomes a server span in a new trace. A client event on
//! the same goroutine of the same process, inside the server call's time
//! span, is the outgoing call the handler made: it becomes a child span in
//! the server span's trace. Client events arrive before their server event
//! (the inner call returns first), so they wait in `pending` until the
//! enclosing server event comes, or until the stream ends, when the rest
//! become root spans.

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::attach::{Line, RawEvent, TargetInfo};
use crate::clock::WallOffset;
use crate::span::{AttrValue, Attributes, Span, SpanId, SpanKind, Status, StatusCode, TraceId};

/// Client events waiting longer than this (monotonic ns behind the newest
/// event) are given up on and written as roots, bounding memory.
const PENDING_HORIZON_NS: u64 = 120_000_000_000;
const PENDING_MAX: usize = 100_000;

/// Counts for the summary line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecordStats {
    pub spans: u64,
    pub server: u64,
    pub client: u64,
    pub lost: u64,
}

/// Stateful converter from stream lines to spans.
pub struct Recorder {
    offset: Option<i128>,
    targets: HashMap<u32, TargetInfo>,
    default_target: Option<TargetInfo>,
    pending: HashMap<(u32, u64), Vec<RawEvent>>,
    pending_count: usize,
    newest_ns: u64,
    pub stats: RecordStats,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder {
            offset: None,
            targets: HashMap::new(),
            default_target: None,
            pending: HashMap::new(),
            pending_count: 0,
            newest_ns: 0,
            stats: RecordStats::default(),
        }
    }

    /// Feed one line; completed spans go to `out`.
    pub fn line(&mut self, line: Line, out: &mut Vec<Span>) {
        match line {
            Line::Target(t) => {
                match t.pid {
                    Some(p) => {
                        self.targets.insert(p, t.clone());
                    }
                    None => {}
                }
                if self.default_target.is_none() || t.pid.is_none() {
                    self.default_target = Some(TargetInfo { pid: None, ..t });
                }
            }
            Line::Clock { realtime_minus_monotonic_ns, .. } => self.offset = Some(i128::from(realtime_minus_monotonic_ns)),
            Line::Lost { count, .. } => self.stats.lost += count,
            Line::Event(ev) => self.event(ev, out),
        }
    }

    fn event(&mut self, ev: RawEvent, out: &mut Vec<Span>) {
        self.newest_ns = self.newest_ns.max(ev.end_ns);
        match ev.probe.as_str() {
            "http.client" => {
                self.pending.entry((ev.pid, ev.goroutine)).or_default().push(ev);
                self.pending_count += 1;
                self.expire(out);
            }
            "http.server" => {
                let trace = TraceId(random_bytes());
                let server_id = SpanId(random_bytes());
                let children: Vec<RawEvent> = match self.pending.get_mut(&(ev.pid, ev.goroutine)) {
                    Some(list) => {
                        let (inside, rest): (Vec<_>, Vec<_>) =
                            list.drain(..).partition(|c| c.start_ns >= ev.start_ns && c.end_ns <= ev.end_ns);
                        *list = rest;
                        inside
                    }
                    None => Vec::new(),
                };
                if self.pending.get(&(ev.pid, ev.goroutine)).is_some_and(Vec::is_empty) {
                    self.pending.remove(&(ev.pid, ev.goroutine));
                }
                self.pending_count -= children.len();
                let span = self.server_span(&ev, trace, server_id);
                self.push(span, out);
                for c in children {
                    let span = self.client_span(&c, trace, Some(server_id));
                    self.push(span, out);
                }
            }
            _ => {}
        }
    }

    /// Write client spans that can no longer get a parent as roots.
    fn expire(&mut self, out: &mut Vec<Span>) {
        if self.pending_count <= PENDING_MAX
            && !self.pending.values().flatten().any(|c| c.end_ns + PENDING_HORIZON_NS < self.newest_ns)
        {
            return;
        }
        let horizon = self.newest_ns.saturating_sub(PENDING_HORIZON_NS);
        let force = self.pending_count > PENDING_MAX;
        let mut old = Vec::new();
        for list in self.pending.values_mut() {
            let (o, keep): (Vec<_>, Vec<_>) = list.drain(..).partition(|c| force || c.end_ns < horizon);
            *list = keep;
            old.extend(o);
        }
        self.pending.retain(|_, l| !l.is_empty());
        self.pending_count -= old.len();
        for c in old {
            let span = self.client_span(&c, TraceId(random_bytes()), None);
            self.push(span, out);
        }
    }

    /// End of stream: every waiting client span becomes a root.
    pub fn finish(&mut self, out: &mut Vec<Span>) {
        let mut rest: Vec<RawEvent> = self.pending.drain().flat_map(|(_, v)| v).collect();
        rest.sort_by_key(|e| e.start_ns);
        self.pending_count = 0;
        for c in rest {
            let span = self.client_span(&c, TraceId(random_bytes()), None);
            self.push(span, out);
        }
    }

    fn push(&mut self, span: Span, out: &mut Vec<Span>) {
        self.stats.spans += 1;
        match span.kind {
            SpanKind::Server => self.stats.server += 1,
            SpanKind::Client => self.stats.client += 1,
            _ => {}
        }
        out.push(span);
    }

    fn wall(&mut self, mono: u64) -> u64 {
        let off = *self.offset.get_or_insert_with(|| WallOffset::sample(16).realtime_minus_monotonic_ns);
        WallOffset { realtime_minus_monotonic_ns: off, uncertainty_ns: 0 }.to_unix_nanos(mono)
    }

    fn resource(&self, pid: u32) -> Attributes {
        let mut r = Attributes::new();
        let t = self.targets.get(&pid).or(self.default_target.as_ref());
        r.insert("process.pid".into(), AttrValue::Int(i64::from(pid)));
        if let Some(t) = t {
            r.insert("service.name".into(), t.service_name.clone().into());
            r.insert("process.executable.path".into(), t.path.clone().into());
            if !t.go_version.is_empty() {
                r.insert("process.runtime.name".into(), "go".into());
                r.insert("process.runtime.version".into(), t.go_version.clone().into());
            }
        }
        r
    }

    fn server_span(&mut self, ev: &RawEvent, trace: TraceId, id: SpanId) -> Span {
        let f = &ev.fields;
        let method = str_field(f, "method").unwrap_or("_OTHER").to_owned();
        let mut a = Attributes::new();
        a.insert("http.request.method".into(), method.clone().into());
        if let Some(p) = str_field(f, "path") {
            a.insert("url.path".into(), p.into());
        }
        let route = str_field(f, "route").filter(|r| !r.is_empty());
        if let Some(r) = route {
            // Go 1.22 patterns may start with a method ("GET /users/{id}").
            let path_part = r.split_once(' ').map_or(r, |(_, p)| p);
            a.insert("http.route".into(), path_part.into());
        }
        let status = f.get("status").and_then(Value::as_i64).unwrap_or(200);
        a.insert("http.response.status_code".into(), AttrValue::Int(status));
        if let Some(proto) = str_field(f, "proto") {
            let v = match proto {
                "HTTP/1.0" => "1.0",
                "HTTP/1.1" => "1.1",
                "HTTP/2.0" => "2",
                other => other.strip_prefix("HTTP/").unwrap_or(other),
            };
            a.insert("network.protocol.version".into(), v.into());
        }
        if let Some((host, port)) = str_field(f, "host").and_then(split_host_port) {
            a.insert("server.address".into(), host.into());
            if let Some(p) = port {
                a.insert("server.port".into(), AttrValue::Int(p));
            }
        }
        if let Some((host, Some(port))) = str_field(f, "peer").and_then(split_host_port) {
            a.insert("network.peer.address".into(), host.into());
            a.insert("network.peer.port".into(), AttrValue::Int(port));
        }
        let name = match route {
            Some(r) if r.contains(' ') => r.to_owned(),
            Some(r) => format!("{method} {r}"),
            None => method.clone(),
        };
        let status_obj = if status >= 500 {
            Status { code: StatusCode::Error, message: None }
        } else {
            Status::default()
        };
        Span {
            trace_id: trace,
            span_id: id,
            parent_span_id: None,
            name,
            kind: SpanKind::Server,
            start_time_unix_nano: self.wall(ev.start_ns),
            end_time_unix_nano: self.wall(ev.end_ns.max(ev.start_ns)),
            attributes: a,
            status: status_obj,
            events: Vec::new(),
            resource: self.resource(ev.pid),
        }
    }

    fn client_span(&mut self, ev: &RawEvent, trace: TraceId, parent: Option<SpanId>) -> Span {
        let f = &ev.fields;
        let method = str_field(f, "method").unwrap_or("GET").to_owned();
        let scheme = str_field(f, "scheme").unwrap_or("http");
        let host = str_field(f, "host").unwrap_or("");
        let mut url = format!("{scheme}://{host}{}", str_field(f, "path").unwrap_or(""));
        if let Some(q) = str_field(f, "query").filter(|q| !q.is_empty()) {
            url.push('?');
            url.push_str(q);
        }
        let mut a = Attributes::new();
        a.insert("http.request.method".into(), method.clone().into());
        a.insert("url.full".into(), url.into());
        if let Some((h, port)) = split_host_port(host) {
            a.insert("server.address".into(), h.into());
            let port = port.or(match scheme {
                "http" => Some(80),
                "https" => Some(443),
                _ => None,
            });
            if let Some(p) = port {
                a.insert("server.port".into(), AttrValue::Int(p));
            }
        }
        let status = f.get("status").and_then(Value::as_i64);
        if let Some(s) = status {
            a.insert("http.response.status_code".into(), AttrValue::Int(s));
        }
        let failed = f.get("error").and_then(Value::as_bool).unwrap_or(false);
        let status_obj = if failed {
            a.insert("error.type".into(), "error".into());
            Status { code: StatusCode::Error, message: Some("round trip returned an error".into()) }
        } else if status.is_some_and(|s| s >= 400) {
            Status { code: StatusCode::Error, message: None }
        } else {
            Status::default()
        };
        Span {
            trace_id: trace,
            span_id: SpanId(random_bytes()),
            parent_span_id: parent,
            name: method,
            kind: SpanKind::Client,
            start_time_unix_nano: self.wall(ev.start_ns),
            end_time_unix_nano: self.wall(ev.end_ns.max(ev.start_ns)),
            attributes: a,
            status: status_obj,
            events: Vec::new(),
            resource: self.resource(ev.pid),
        }
    }
}

fn str_field<'a>(f: &'a BTreeMap<String, Value>, k: &str) -> Option<&'a str> {
    f.get(k).and_then(Value::as_str)
}

/// `host:port`, `[v6]:port` or `host` -> (host, port).
fn split_host_port(s: &str) -> Option<(&str, Option<i64>)> {
    if s.is_empty() {
        return None;
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (h, tail) = rest.split_once(']')?;
        return Some((h, tail.strip_prefix(':').and_then(|p| p.parse().ok())));
    }
    match s.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => Some((h, p.parse().ok())),
        _ => Some((s, None)),
    }
}

/// Random, never all-zero ids (as W3C trace context requires).
fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    loop {
        // SAFETY: b is a valid writable buffer of N bytes.
        let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), N, 0) };
        if n == N as isize && b.iter().any(|&x| x != 0) {
            return b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(probe: &str, g: u64, start: u64, end: u64, fields: serde_json::Value) -> Line {
        let fields = fields.as_object().expect("object").clone().into_iter().collect();
        Line::Event(RawEvent { probe: probe.into(), pid: 7, tid: 8, goroutine: g, start_ns: start, end_ns: end, fields })
    }

    #[test]
    fn client_becomes_child_of_enclosing_server_span() {
        let mut r = Recorder::new();
        let mut out = Vec::new();
        r.line(Line::Target(TargetInfo { path: "/bin/svc".into(), pid: Some(7), go_version: "go1.22.10".into(), service_name: "svc".into() }), &mut out);
        r.line(Line::Clock { realtime_minus_monotonic_ns: 1_000_000_000_000, uncertainty_ns: 10 }, &mut out);
        r.line(ev("http.client", 5, 150, 250, serde_json::json!({"method":"GET","scheme":"http","host":"127.0.0.1:8080","path":"/hello","status":200})), &mut out);
        r.line(ev("http.client", 6, 150, 250, serde_json::json!({"method":"POST","scheme":"https","host":"api.example","path":"/x","query":"a=1","error":true})), &mut out);
        assert!(out.is_empty());
        r.line(ev("http.server", 5, 100, 300, serde_json::json!({"method":"GET","path":"/users/3","route":"/users/{id}","proto":"HTTP/1.1","host":"127.0.0.1:8080","peer":"127.0.0.1:5000","status":503})), &mut out);
        assert_eq!(out.len(), 2);
        let (server, client) = (&out[0], &out[1]);
        assert_eq!(server.name, "GET /users/{id}");
        assert_eq!(server.kind, SpanKind::Server);
        assert_eq!(server.status.code, StatusCode::Error);
        assert_eq!(server.start_time_unix_nano, 1_000_000_000_100);
        assert_eq!(server.attributes["http.route"], AttrValue::from("/users/{id}"));
        assert_eq!(server.attributes["network.peer.port"], AttrValue::Int(5000));
        assert_eq!(server.attributes["network.protocol.version"], AttrValue::from("1.1"));
        assert_eq!(server.resource["service.name"], AttrValue::from("svc"));
        assert_eq!(client.trace_id, server.trace_id);
        assert_eq!(client.parent_span_id, Some(server.span_id));
        assert_eq!(client.attributes["url.full"], AttrValue::from("http://127.0.0.1:8080/hello"));
        r.finish(&mut out);
        assert_eq!(out.len(), 3);
        let orphan = &out[2];
        assert!(orphan.parent_span_id.is_none());
        assert_eq!(orphan.status.code, StatusCode::Error);
        assert_eq!(orphan.attributes["server.port"], AttrValue::Int(443));
        assert_eq!(orphan.attributes["url.full"], AttrValue::from("https://api.example/x?a=1"));
        assert_eq!(r.stats, RecordStats { spans: 3, server: 1, client: 2, lost: 0 });
        for s in &out {
            let line = serde_json::to_string(s).expect("ser");
            Span::from_json_line(&line).expect("valid span");
        }
    }

    #[test]
    fn host_port_forms() {
        assert_eq!(split_host_port("a:1"), Some(("a", Some(1))));
        assert_eq!(split_host_port("[::1]:8"), Some(("::1", Some(8))));
        assert_eq!(split_host_port("::1"), Some(("::1", None)));
        assert_eq!(split_host_port(""), None);
    }
}
