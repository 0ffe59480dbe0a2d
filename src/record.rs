//! Turning attach's raw event stream into spans (`crate::span` schema).
//!
//! A server event becomes a server span: in the caller's trace when the
//! request carried a W3C `traceparent` header, else in a new trace. An
//! HTTP client or database/sql event on the same goroutine of the same
//! process (or on a goroutine it started), inside the server call's time
//! span, is a call the handler made: it becomes a child span in the server
//! span's trace. A panic inside it becomes an `exception` event of the
//! server span. These inner events arrive before their server event (the
//! inner call returns first), so they wait in `pending` until the
//! enclosing server event comes, or until the stream ends, when the rest
//! become root spans (a panic outside any server span gets a span of its own).

use std::collections::{BTreeMap, HashMap};

use serde_json::Value;

use crate::clock::WallOffset;
use crate::otel::split_host_port;
use crate::span::{
    AttrValue, Attributes, Event, Span, SpanId, SpanKind, Status, StatusCode, TraceId,
};
use crate::stream::{Line, RawEvent, TargetInfo};
use crate::tracecontext::{new_span_id, new_trace_id, parse_traceparent};

/// Client events waiting longer than this (monotonic ns behind the newest
/// event) are given up on and written as roots, bounding memory.
const PENDING_HORIZON_NS: u64 = 120_000_000_000;
const PENDING_MAX: usize = 100_000;

/// Counts for the summary line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecordStats {
    pub spans: u64,
    pub server: u64,
    /// Client spans: HTTP and database calls.
    pub client: u64,
    /// Of `client`, database calls.
    pub db: u64,
    /// Every panic seen (runtime.gopanic), recovered or not.
    pub panics: u64,
    pub lost: u64,
}

/// How far up the goroutine family tree a client call looks for its server span.
const MAX_ANCESTORS: usize = 16;

/// A client call waiting for the server span that encloses it.
struct PendingClient {
    ev: RawEvent,
}

/// A pending event's id, and when its goroutine line branched off the
/// indexed goroutine (None: it ran on that goroutine itself).
type PendingRef = (u64, Option<u64>);

/// Stateful converter from stream lines to spans.
pub struct Recorder {
    offset: Option<i128>,
    targets: HashMap<u32, TargetInfo>,
    default_target: Option<TargetInfo>,
    /// (pid, child goroutine) -> (parent goroutine, creation time), from go.spawn events.
    parents: HashMap<(u32, u64), (u64, u64)>,
    pending: HashMap<u64, PendingClient>,
    /// (pid, goroutine) -> pending clients that a server span on that
    /// goroutine could enclose, with the time the client's goroutine line
    /// branched off it (None: the client ran on that goroutine itself).
    index: HashMap<(u32, u64), Vec<PendingRef>>,
    next_id: u64,
    newest_ns: u64,
    events_since_expire: u32,
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
            parents: HashMap::new(),
            pending: HashMap::new(),
            index: HashMap::new(),
            next_id: 0,
            newest_ns: 0,
            events_since_expire: 0,
            stats: RecordStats::default(),
        }
    }

    /// Feed one line; completed spans go to `out`.
    pub fn line(&mut self, line: Line, out: &mut Vec<Span>) {
        match line {
            Line::Target(t) => {
                if let Some(p) = t.pid {
                    self.targets.insert(p, t.clone());
                }
                if self.default_target.is_none() || t.pid.is_none() {
                    self.default_target = Some(TargetInfo { pid: None, ..t });
                }
            }
            Line::Clock {
                realtime_minus_monotonic_ns,
                ..
            } => self.offset = Some(i128::from(realtime_minus_monotonic_ns)),
            Line::Lost { count, .. } => self.stats.lost += count,
            Line::Event(ev) => self.event(ev, out),
        }
    }

    fn event(&mut self, ev: RawEvent, out: &mut Vec<Span>) {
        self.newest_ns = self.newest_ns.max(ev.end_ns);
        match ev.probe.as_str() {
            "go.spawn" => {
                if let Some(parent) = ev.fields.get("parent_goroutine").and_then(Value::as_u64) {
                    self.parents
                        .insert((ev.pid, ev.goroutine), (parent, ev.start_ns));
                }
            }
            "http.client" | "db.sql" | "go.panic" => {
                if ev.probe == "go.panic" {
                    self.stats.panics += 1;
                }
                let id = self.next_id;
                self.next_id += 1;
                // Index the call under its goroutine and every ancestor.
                let mut g = ev.goroutine;
                let mut branched = None;
                for _ in 0..MAX_ANCESTORS {
                    self.index
                        .entry((ev.pid, g))
                        .or_default()
                        .push((id, branched));
                    match self.parents.get(&(ev.pid, g)) {
                        Some(&(parent, ts)) if parent != g => {
                            branched = Some(ts);
                            g = parent;
                        }
                        _ => break,
                    }
                }
                self.pending.insert(id, PendingClient { ev });
            }
            "http.server" => {
                let incoming = str_field(&ev.fields, "traceparent").and_then(parse_traceparent);
                let trace = incoming.map_or_else(|| new_trace_id(), |t| t.trace_id);
                let server_id = new_span_id();
                let mut children = Vec::new();
                if let Some(cands) = self.index.remove(&(ev.pid, ev.goroutine)) {
                    let mut keep = Vec::new();
                    for (id, branched) in cands {
                        let Some(p) = self.pending.get(&id) else {
                            continue;
                        };
                        let inside = match branched {
                            None => p.ev.start_ns >= ev.start_ns && p.ev.end_ns <= ev.end_ns,
                            Some(ts) => ts >= ev.start_ns && ts <= ev.end_ns,
                        };
                        if inside {
                            if let Some(p) = self.pending.remove(&id) {
                                children.push(p.ev);
                            }
                        } else {
                            keep.push((id, branched));
                        }
                    }
                    if !keep.is_empty() {
                        self.index.insert((ev.pid, ev.goroutine), keep);
                    }
                }
                children.sort_by_key(|c| c.start_ns);
                let (panics, calls): (Vec<RawEvent>, Vec<RawEvent>) =
                    children.into_iter().partition(|c| c.probe == "go.panic");
                let mut span = self.server_span(&ev, trace, server_id);
                if let Some(t) = incoming {
                    span.parent_span_id = Some(t.parent_id);
                    span.trace_flags = Some(t.flags);
                }
                for p in &panics {
                    let e = self.exception_event(p);
                    span.events.push(e);
                }
                // ServeHTTP never returned: the process died while serving
                // the request, or a panic escaped the handler and net/http
                // caught it. The last panic seen on the request says why.
                let last = panics.last();
                let ty = last.and_then(|p| str_field(&p.fields, "type"));
                let msg = last.and_then(|p| str_field(&p.fields, "message"));
                let why = if ev.fields.contains_key("unfinished") {
                    if let Some(t) = ty {
                        span.attributes.insert("error.type".into(), t.into());
                    }
                    Some(match msg {
                        Some(m) => format!("process exited while serving the request (panic: {m})"),
                        None => "process exited while serving the request".to_owned(),
                    })
                } else if ev.fields.contains_key("panic_recovered_by") {
                    span.attributes
                        .insert("error.type".into(), ty.unwrap_or("_OTHER").into());
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
                    span.status = Status {
                        code: StatusCode::Error,
                        message: Some(message),
                    };
                }
                self.push(span, out);
                for c in calls {
                    let span = self.child_span(&c, trace, Some(server_id));
                    self.push(span, out);
                }
            }
            _ => {}
        }
        self.events_since_expire += 1;
        if self.events_since_expire >= 1024 || self.pending.len() > PENDING_MAX {
            self.events_since_expire = 0;
            self.expire(out);
        }
    }

    /// Write client spans that can no longer get a parent as roots, and
    /// forget old goroutine creations.
    fn expire(&mut self, out: &mut Vec<Span>) {
        let horizon = self.newest_ns.saturating_sub(PENDING_HORIZON_NS);
        let force = self.pending.len() > PENDING_MAX;
        let mut old: Vec<RawEvent> = Vec::new();
        self.pending.retain(|_, p| {
            let keep = !force && p.ev.end_ns >= horizon;
            if !keep {
                old.push(p.ev.clone());
            }
            keep
        });
        let pending = &self.pending;
        self.index.retain(|_, v| {
            v.retain(|(id, _)| pending.contains_key(id));
            !v.is_empty()
        });
        self.parents.retain(|_, (_, ts)| *ts >= horizon);
        old.sort_by_key(|e| e.start_ns);
        for c in old {
            let span = self.child_span(&c, new_trace_id(), None);
            self.push(span, out);
        }
    }

    /// End of stream: every waiting client span becomes a root.
    pub fn finish(&mut self, out: &mut Vec<Span>) {
        let mut rest: Vec<RawEvent> = self.pending.drain().map(|(_, p)| p.ev).collect();
        self.index.clear();
        rest.sort_by_key(|e| e.start_ns);
        for c in rest {
            let span = self.child_span(&c, new_trace_id(), None);
            self.push(span, out);
        }
    }

    /// A span for an event that waited for a server span: an HTTP client
    /// call, a database call, or (with no span around it) a panic.
    fn child_span(&mut self, ev: &RawEvent, trace: TraceId, parent: Option<SpanId>) -> Span {
        match ev.probe.as_str() {
            "db.sql" => self.db_span(ev, trace, parent),
            "go.panic" => {
                let e = self.exception_event(ev);
                Span {
                    trace_id: trace,
                    span_id: new_span_id(),
                    parent_span_id: parent,
                    name: "panic".to_owned(),
                    kind: SpanKind::Internal,
                    start_time_unix_nano: e.time_unix_nano,
                    end_time_unix_nano: e.time_unix_nano,
                    attributes: Attributes::new(),
                    status: Status::default(),
                    events: vec![e],
                    resource: self.resource(ev.pid),
                    trace_flags: None,
                }
            }
            _ => self.client_span(ev, trace, parent),
        }
    }

    /// A panic as an OpenTelemetry `exception` span event.
    fn exception_event(&mut self, ev: &RawEvent) -> Event {
        let mut a = Attributes::new();
        // Unknown means unknown: a type goprobe could not name is left out.
        if let Some(t) = str_field(&ev.fields, "type") {
            a.insert("exception.type".into(), t.into());
        }
        if let Some(m) = str_field(&ev.fields, "message") {
            a.insert("exception.message".into(), m.into());
        }
        a.insert(
            "goroutine.id".into(),
            AttrValue::Int(i64::try_from(ev.goroutine).unwrap_or(i64::MAX)),
        );
        Event {
            name: "exception".to_owned(),
            time_unix_nano: self.wall(ev.start_ns),
            attributes: a,
        }
    }

    fn db_span(&mut self, ev: &RawEvent, trace: TraceId, parent: Option<SpanId>) -> Span {
        let f = &ev.fields;
        let mut a = Attributes::new();
        let system = str_field(f, "db_system").unwrap_or("other_sql");
        a.insert("db.system.name".into(), system.into());
        let query = str_field(f, "query");
        let shape = query.map(crate::dbsql::query_shape);
        let operation = str_field(f, "operation")
            .map(str::to_owned)
            .or_else(|| shape.as_ref().and_then(|s| s.operation.clone()));
        let collection = shape.as_ref().and_then(|s| s.collection.clone());
        if let Some(q) = query {
            a.insert("db.query.text".into(), q.into());
            if let Some(n) = f.get("query_len").and_then(Value::as_i64) {
                // Cut at the probe's limit; the real length says by how much.
                a.insert("goprobe.db.query.length".into(), AttrValue::Int(n));
            }
        }
        if let Some(op) = &operation {
            a.insert("db.operation.name".into(), op.clone().into());
        }
        if let Some(c) = &collection {
            a.insert("db.collection.name".into(), c.clone().into());
        }
        if let Some(h) = str_field(f, "server_address") {
            a.insert("server.address".into(), h.into());
        }
        if let Some(p) = f.get("server_port").and_then(Value::as_i64) {
            a.insert("server.port".into(), AttrValue::Int(p));
        }
        if let Some(func) = str_field(f, "function") {
            a.insert("code.function.name".into(), func.into());
        }
        let failed = f.get("error").and_then(Value::as_bool).unwrap_or(false);
        let status = if failed {
            a.insert(
                "error.type".into(),
                str_field(f, "error_type").unwrap_or("_OTHER").into(),
            );
            Status {
                code: StatusCode::Error,
                message: Some("database/sql call returned an error".into()),
            }
        } else {
            Status::default()
        };
        // Semantic conventions: "{operation} {target}", else the operation,
        // else the database system.
        let name = match (&operation, &collection) {
            (Some(op), Some(c)) => format!("{op} {c}"),
            (Some(op), None) => op.clone(),
            _ => system.to_owned(),
        };
        Span {
            trace_id: trace,
            span_id: new_span_id(),
            parent_span_id: parent,
            name,
            kind: SpanKind::Client,
            start_time_unix_nano: self.wall(ev.start_ns),
            end_time_unix_nano: self.wall(ev.end_ns.max(ev.start_ns)),
            attributes: a,
            status,
            events: Vec::new(),
            resource: self.resource(ev.pid),
            trace_flags: None,
        }
    }

    fn push(&mut self, span: Span, out: &mut Vec<Span>) {
        self.stats.spans += 1;
        match span.kind {
            SpanKind::Server => self.stats.server += 1,
            SpanKind::Client => self.stats.client += 1,
            _ => {}
        }
        if span.attributes.contains_key("db.system.name") {
            self.stats.db += 1;
        }
        out.push(span);
    }

    fn wall(&mut self, mono: u64) -> u64 {
        let off = *self
            .offset
            .get_or_insert_with(|| WallOffset::sample(16).realtime_minus_monotonic_ns);
        WallOffset {
            realtime_minus_monotonic_ns: off,
            uncertainty_ns: 0,
        }
        .to_unix_nanos(mono)
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
                r.insert(
                    "process.runtime.version".into(),
                    t.go_version.clone().into(),
                );
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
        // A handler that writes nothing gets an implicit 200 after ServeHTTP
        // returns (HTTP/1.x). The status of HTTP/2 responses is not read yet.
        // A panic that escaped the handler: net/http closes the connection
        // without a response, so there is no status to report.
        let http1 = str_field(f, "proto").is_some_and(|p| p.starts_with("HTTP/1"))
            && !f.contains_key("panic_recovered_by")
            && !f.contains_key("unfinished");
        let status = f
            .get("status")
            .and_then(Value::as_i64)
            .or(http1.then_some(200))
            .unwrap_or(0);
        if status != 0 {
            a.insert("http.response.status_code".into(), AttrValue::Int(status));
        }
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
        // Semantic conventions: an unknown method names the span `HTTP`.
        let shown = if method == "_OTHER" {
            "HTTP"
        } else {
            method.as_str()
        };
        let name = match route {
            Some(r) if r.contains(' ') => r.to_owned(),
            Some(r) => format!("{shown} {r}"),
            None => shown.to_owned(),
        };
        let status_obj = if status >= 500 {
            Status {
                code: StatusCode::Error,
                message: None,
            }
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
            trace_flags: None,
        }
    }

    fn client_span(&mut self, ev: &RawEvent, trace: TraceId, parent: Option<SpanId>) -> Span {
        let f = &ev.fields;
        // net/http: "For client requests, an empty string means GET." A
        // method that could not be read is unknown, not GET (semantic
        // conventions: `_OTHER`, and the span is named `HTTP`).
        let method = match str_field(f, "method") {
            Some("") => "GET".to_owned(),
            Some(m) => m.to_owned(),
            None => "_OTHER".to_owned(),
        };
        let scheme = str_field(f, "scheme").unwrap_or("");
        let host = str_field(f, "host").unwrap_or("");
        let mut a = Attributes::new();
        a.insert("http.request.method".into(), method.clone().into());
        // url.full only from what was read: no scheme or host is guessed.
        if !scheme.is_empty() && !host.is_empty() {
            let mut url = format!("{scheme}://{host}{}", str_field(f, "path").unwrap_or(""));
            if let Some(q) = str_field(f, "query").filter(|q| !q.is_empty()) {
                url.push('?');
                url.push_str(q);
            }
            a.insert("url.full".into(), url.into());
        }
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
            Status {
                code: StatusCode::Error,
                message: Some("round trip returned an error".into()),
            }
        } else if status.is_some_and(|s| s >= 400) {
            Status {
                code: StatusCode::Error,
                message: None,
            }
        } else {
            Status::default()
        };
        Span {
            trace_id: trace,
            span_id: new_span_id(),
            parent_span_id: parent,
            name: if method == "_OTHER" {
                "HTTP".to_owned()
            } else {
                method
            },
            kind: SpanKind::Client,
            start_time_unix_nano: self.wall(ev.start_ns),
            end_time_unix_nano: self.wall(ev.end_ns.max(ev.start_ns)),
            attributes: a,
            status: status_obj,
            events: Vec::new(),
            resource: self.resource(ev.pid),
            trace_flags: None,
        }
    }
}

fn str_field<'a>(f: &'a BTreeMap<String, Value>, k: &str) -> Option<&'a str> {
    f.get(k).and_then(Value::as_str)
}

/// Where recorded spans go: the output stream and the `--limit`; `on_write`
/// hears the counts after each write (the command's progress line).
pub struct SpanWriter {
    out: Box<dyn std::io::Write>,
    limit: Option<u64>,
    written: u64,
    on_write: Option<Box<dyn FnMut(u64, u64)>>,
}

impl SpanWriter {
    pub fn new(out: Box<dyn std::io::Write>, limit: Option<u64>) -> SpanWriter {
        SpanWriter {
            out,
            limit,
            written: 0,
            on_write: None,
        }
    }

    /// Call `f(spans written, events lost)` after every write.
    pub fn on_write(mut self, f: impl FnMut(u64, u64) + 'static) -> SpanWriter {
        self.on_write = Some(Box::new(f));
        self
    }

    /// Spans written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    pub fn limit_reached(&self) -> bool {
        self.limit.is_some_and(|l| self.written >= l)
    }

    /// Write (and drain) `spans`, up to the limit, then flush so a pipe sees
    /// them promptly. Past the limit it writes nothing and returns
    /// [`LimitReached`] wrapped in an `io::Error`, which stops the stream.
    pub fn write(&mut self, spans: &mut Vec<Span>, lost: u64) -> std::io::Result<()> {
        use std::io::Write;
        for s in spans.drain(..) {
            if self.limit_reached() {
                return Err(std::io::Error::other(LimitReached));
            }
            serde_json::to_writer(&mut self.out, &s)?;
            self.out.write_all(b"\n")?;
            self.written += 1;
        }
        self.out.flush()?;
        if let Some(f) = &mut self.on_write {
            f(self.written, lost);
        }
        if self.limit_reached() {
            return Err(std::io::Error::other(LimitReached));
        }
        Ok(())
    }
}

/// The `--limit` was reached: a normal end of the recording, not a failure.
#[derive(Debug, thiserror::Error)]
#[error("span limit reached")]
pub struct LimitReached;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("writing spans: {0}")]
    Write(#[source] std::io::Error),
    #[error("reading input: {0}")]
    Read(#[source] std::io::Error),
    #[error("input line {line}: not goprobe attach output: {source}")]
    BadLine {
        line: usize,
        #[source]
        source: serde_json::Error,
    },
}

/// How a recording ended.
#[derive(Debug, Clone)]
pub struct RecordSummary {
    pub written: u64,
    pub stats: RecordStats,
    /// Why it stopped: a signal, the duration, the target's exit, end of input, the limit.
    pub reason: String,
}

impl RecordSummary {
    /// The one-line summary `goprobe record` prints on stderr.
    pub fn line(&self) -> String {
        let st = &self.stats;
        format!(
            "{} spans ({} server, {} client of which {} database) written, {} panics, {} events lost ({})",
            self.written, st.server, st.client, st.db, st.panics, st.lost, self.reason
        )
    }
}

/// A recording: stream lines in, spans out through a [`SpanWriter`].
pub struct Recording {
    rec: Recorder,
    writer: SpanWriter,
    spans: Vec<Span>,
}

impl Recording {
    pub fn new(writer: SpanWriter) -> Recording {
        Recording {
            rec: Recorder::new(),
            writer,
            spans: Vec::new(),
        }
    }

    /// Feed one line and write the spans it completes. An error (the
    /// output closed, or [`LimitReached`]) means: stop feeding.
    pub fn line(&mut self, line: Line) -> std::io::Result<()> {
        self.rec.line(line, &mut self.spans);
        self.writer.write(&mut self.spans, self.rec.stats.lost)
    }

    pub fn limit_reached(&self) -> bool {
        self.writer.limit_reached()
    }

    /// Read `goprobe attach` NDJSON until end of input or the limit; the
    /// reason it stopped.
    pub fn read(&mut self, input: impl std::io::BufRead) -> Result<String, RecordError> {
        for (i, line) in input.lines().enumerate() {
            let line = line.map_err(RecordError::Read)?;
            if line.trim().is_empty() {
                continue;
            }
            let parsed: Line =
                serde_json::from_str(&line).map_err(|source| RecordError::BadLine {
                    line: i + 1,
                    source,
                })?;
            if let Err(e) = self.line(parsed) {
                if self.limit_reached() {
                    break;
                }
                return Err(RecordError::Write(e));
            }
        }
        Ok(if self.limit_reached() {
            "limit reached"
        } else {
            "end of input"
        }
        .to_owned())
    }

    /// The source ended for `reason`: write the spans still waiting for a
    /// parent (unless the limit was reached) and sum up.
    pub fn finish(mut self, reason: String) -> Result<RecordSummary, RecordError> {
        if !self.writer.limit_reached() {
            self.rec.finish(&mut self.spans);
            let lost = self.rec.stats.lost;
            match self.writer.write(&mut self.spans, lost) {
                Err(_) if self.writer.limit_reached() => {}
                other => other.map_err(RecordError::Write)?,
            }
        }
        let reason = if self.writer.limit_reached() {
            "limit reached".to_owned()
        } else {
            reason
        };
        Ok(RecordSummary {
            written: self.writer.written(),
            stats: self.rec.stats.clone(),
            reason,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(probe: &str, g: u64, start: u64, end: u64, fields: serde_json::Value) -> Line {
        let fields = fields
            .as_object()
            .expect("object")
            .clone()
            .into_iter()
            .collect();
        Line::Event(RawEvent {
            probe: probe.into(),
            pid: 7,
            tid: 8,
            goroutine: g,
            start_ns: start,
            end_ns: end,
            fields,
        })
    }

    #[test]
    fn client_becomes_child_of_enclosing_server_span() {
        let mut r = Recorder::new();
        let mut out = Vec::new();
        r.line(
            Line::Target(TargetInfo {
                path: "/bin/svc".into(),
                pid: Some(7),
                go_version: "go1.22.10".into(),
                service_name: "svc".into(),
            }),
            &mut out,
        );
        r.line(
            Line::Clock {
                realtime_minus_monotonic_ns: 1_000_000_000_000,
                uncertainty_ns: 10,
            },
            &mut out,
        );
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
        assert_eq!(
            server.attributes["http.route"],
            AttrValue::from("/users/{id}")
        );
        assert_eq!(server.attributes["network.peer.port"], AttrValue::Int(5000));
        assert_eq!(
            server.attributes["network.protocol.version"],
            AttrValue::from("1.1")
        );
        assert_eq!(server.resource["service.name"], AttrValue::from("svc"));
        assert_eq!(client.trace_id, server.trace_id);
        assert_eq!(client.parent_span_id, Some(server.span_id));
        assert_eq!(
            client.attributes["url.full"],
            AttrValue::from("http://127.0.0.1:8080/hello")
        );
        r.finish(&mut out);
        assert_eq!(out.len(), 3);
        assert!(out[..2].iter().all(|s| s.trace_id == out[0].trace_id));
        let orphan = &out[2];
        assert!(orphan.parent_span_id.is_none());
        assert_eq!(orphan.status.code, StatusCode::Error);
        assert_eq!(orphan.attributes["server.port"], AttrValue::Int(443));
        assert_eq!(
            orphan.attributes["url.full"],
            AttrValue::from("https://api.example/x?a=1")
        );
        assert_eq!(
            r.stats,
            RecordStats {
                spans: 3,
                server: 1,
                client: 2,
                ..RecordStats::default()
            }
        );
        for s in &out {
            let line = serde_json::to_string(s).expect("ser");
            Span::from_json_line(&line).expect("valid span");
        }
    }

    /// A call made on a goroutine the handler started (directly or two
    /// levels down) is a child of the handler's span, even when it outlives it.
    /// A method or scheme the probe could not read is reported as unknown,
    /// never guessed; an empty client method is GET (net/http's rule).
    #[test]
    fn unread_client_fields_are_not_guessed() {
        let mut r = Recorder::new();
        let mut out = Vec::new();
        r.line(
            ev(
                "http.client",
                7,
                10,
                20,
                serde_json::json!({"host":"x:1","path":"/a"}),
            ),
            &mut out,
        );
        r.line(
            ev(
                "http.client",
                8,
                30,
                40,
                serde_json::json!({"method":"","scheme":"http","host":"x:1","path":"/b"}),
            ),
            &mut out,
        );
        r.finish(&mut out);
        assert_eq!(out.len(), 2, "{out:?}");
        let unknown = out
            .iter()
            .find(|s| !s.attributes.contains_key("url.full"))
            .expect("span without url.full");
        assert_eq!(unknown.name, "HTTP");
        assert_eq!(
            unknown.attributes["http.request.method"],
            AttrValue::from("_OTHER")
        );
        let empty = out
            .iter()
            .find(|s| s.attributes.contains_key("url.full"))
            .expect("span with url.full");
        assert_eq!(empty.name, "GET");
        assert_eq!(
            empty.attributes["url.full"],
            AttrValue::from("http://x:1/b")
        );
    }

    #[test]
    fn client_on_spawned_goroutine_is_child() {
        let mut r = Recorder::new();
        let mut out = Vec::new();
        let spawn = |child: u64, parent: u64, ts: u64| {
            Line::Event(RawEvent {
                probe: "go.spawn".into(),
                pid: 7,
                tid: 1,
                goroutine: child,
                start_ns: ts,
                end_ns: ts,
                fields: [("parent_goroutine".to_owned(), serde_json::json!(parent))]
                    .into_iter()
                    .collect(),
            })
        };
        r.line(spawn(10, 1, 50), &mut out); // conn goroutine 10, from the accept loop
        r.line(spawn(11, 10, 120), &mut out); // handler starts 11
        r.line(spawn(12, 11, 130), &mut out); // which starts 12
        r.line(
            ev(
                "http.client",
                12,
                140,
                400,
                serde_json::json!({"method":"GET","scheme":"http","host":"x:1","path":"/a"}),
            ),
            &mut out,
        );
        r.line(
            ev(
                "http.client",
                10,
                20,
                30,
                serde_json::json!({"method":"GET","scheme":"http","host":"x:1","path":"/before"}),
            ),
            &mut out,
        );
        r.line(
            ev(
                "http.server",
                10,
                100,
                300,
                serde_json::json!({"method":"GET","path":"/h"}),
            ),
            &mut out,
        );
        assert_eq!(out.len(), 2, "{out:?}");
        assert_eq!(out[1].parent_span_id, Some(out[0].span_id));
        assert_eq!(
            out[1].attributes["url.full"],
            AttrValue::from("http://x:1/a")
        );
        r.finish(&mut out);
        assert_eq!(out.len(), 3);
        assert!(
            out[2].parent_span_id.is_none(),
            "a call before the handler started is not its child"
        );
    }
}
