//! `--to metrics`: what alerting systems read, computed from spans — request
//! rate, errors and duration per route (RED), and a panic counter.
//!
//! Every span that the OpenTelemetry semantic conventions measure becomes one
//! measurement of its instrument, with the attributes the conventions list
//! for it (and that the span has):
//!
//! | spans | instrument | unit | attributes |
//! | --- | --- | --- | --- |
//! | server, `http.request.method` | `http.server.request.duration` | s | method, route, status code, `error.type`, protocol, scheme |
//! | client, `http.request.method` | `http.client.request.duration` | s | method, `server.address`/`port`, status code, `error.type`, protocol, scheme |
//! | client, `db.system.name` | `db.client.operation.duration` | s | system, namespace, operation, collection, status, server, `error.type` |
//! | server / client, `rpc.system` | `rpc.server.duration` / `rpc.client.duration` | ms | system, service, method, gRPC status, `error.type` |
//!
//! as explicit-bucket histograms with the conventions' advised boundaries
//! (for RPC, which has none, the SDK default). A bucket holds values up to
//! and including its upper bound; boundaries are compared in integer
//! nanoseconds, so no rounding moves a span to a neighbouring bucket.
//!
//! `goprobe.panics` counts the `exception` events goprobe records for Go
//! panics, by `exception.type` and `goprobe.panic.recovered` (see
//! [`panic_outcomes`]). `goprobe.convert.skipped_lines` counts input lines
//! skipped as invalid. `goprobe.events.lost` counts what the recording
//! itself says it could not record (`record`'s in-band `lost` lines), by
//! `goprobe.loss.reason` and `goprobe.loss.effect` (see [`crate::loss`]). All values are cumulative over the input (or, live,
//! since the converter started); [`live`] emits them per interval.

pub mod live;
pub mod otlp;
pub mod prometheus;

use std::collections::BTreeMap;

use crate::span::{AttrValue, Attributes, Span, SpanKind, StatusCode};

/// A data point attribute value: the kinds the conventions use for
/// low-cardinality attributes (strings, integers, booleans).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Label {
    Str(String),
    Int(i64),
    Bool(bool),
}

impl Label {
    fn from_attr(v: &AttrValue) -> Label {
        match v {
            AttrValue::String(s) => Label::Str(s.clone()),
            AttrValue::Int(n) => Label::Int(*n),
            AttrValue::Bool(b) => Label::Bool(*b),
            // Not a type these attributes have; kept, as text, rather than dropped.
            other => Label::Str(serde_json::to_string(other).unwrap_or_default()),
        }
    }

    /// The value as text (Prometheus label values are strings).
    pub fn text(&self) -> String {
        match self {
            Label::Str(s) => s.clone(),
            Label::Int(n) => n.to_string(),
            Label::Bool(b) => b.to_string(),
        }
    }
}

/// A data point's attributes, sorted by key.
pub type LabelSet = Vec<(&'static str, Label)>;

/// The duration instruments, in output order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Instrument {
    HttpServer,
    HttpClient,
    DbClient,
    RpcServer,
    RpcClient,
}

/// What the conventions say about an instrument.
#[derive(Debug)]
pub struct InstrumentInfo {
    pub name: &'static str,
    pub description: &'static str,
    /// UCUM unit, as OTLP carries it.
    pub unit: &'static str,
    /// Nanoseconds per unit.
    pub unit_ns: u64,
    /// Bucket upper bounds in nanoseconds (exact), ascending.
    pub bounds_ns: &'static [u64],
    /// Attributes copied from the span when present.
    attributes: &'static [&'static str],
}

const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;

/// `http.server.request.duration` and `http.client.request.duration`:
/// [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10] s.
const HTTP_BOUNDS: &[u64] = &[
    5 * MS,
    10 * MS,
    25 * MS,
    50 * MS,
    75 * MS,
    100 * MS,
    250 * MS,
    500 * MS,
    750 * MS,
    S,
    2500 * MS,
    5 * S,
    7500 * MS,
    10 * S,
];
/// `db.client.operation.duration`: [0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10] s.
const DB_BOUNDS: &[u64] = &[
    MS,
    5 * MS,
    10 * MS,
    50 * MS,
    100 * MS,
    500 * MS,
    S,
    5 * S,
    10 * S,
];
/// The RPC duration conventions advise no boundaries: the SDK's default
/// explicit buckets, in their unit (ms): [0, 5, 10, 25, 50, 75, 100, 250,
/// 500, 750, 1000, 2500, 5000, 7500, 10000].
const RPC_BOUNDS: &[u64] = &[
    0,
    5 * MS,
    10 * MS,
    25 * MS,
    50 * MS,
    75 * MS,
    100 * MS,
    250 * MS,
    500 * MS,
    750 * MS,
    S,
    2500 * MS,
    5 * S,
    7500 * MS,
    10 * S,
];

impl Instrument {
    pub const ALL: [Instrument; 5] = [
        Instrument::HttpServer,
        Instrument::HttpClient,
        Instrument::DbClient,
        Instrument::RpcServer,
        Instrument::RpcClient,
    ];

    pub fn info(self) -> &'static InstrumentInfo {
        static HTTP_SERVER: InstrumentInfo = InstrumentInfo {
            name: "http.server.request.duration",
            description: "Duration of HTTP server requests.",
            unit: "s",
            unit_ns: S,
            bounds_ns: HTTP_BOUNDS,
            attributes: &[
                "http.request.method",
                "http.response.status_code",
                "http.route",
                "network.protocol.name",
                "network.protocol.version",
                "url.scheme",
            ],
        };
        static HTTP_CLIENT: InstrumentInfo = InstrumentInfo {
            name: "http.client.request.duration",
            description: "Duration of HTTP client requests.",
            unit: "s",
            unit_ns: S,
            bounds_ns: HTTP_BOUNDS,
            attributes: &[
                "http.request.method",
                "http.response.status_code",
                "network.protocol.name",
                "network.protocol.version",
                "server.address",
                "server.port",
                "url.scheme",
            ],
        };
        static DB_CLIENT: InstrumentInfo = InstrumentInfo {
            name: "db.client.operation.duration",
            description: "Duration of database client operations.",
            unit: "s",
            unit_ns: S,
            bounds_ns: DB_BOUNDS,
            attributes: &[
                "db.collection.name",
                "db.namespace",
                "db.operation.name",
                "db.response.status_code",
                "db.system.name",
                "server.address",
                "server.port",
            ],
        };
        static RPC_SERVER: InstrumentInfo = InstrumentInfo {
            name: "rpc.server.duration",
            description: "Measures the duration of inbound RPC.",
            unit: "ms",
            unit_ns: MS,
            bounds_ns: RPC_BOUNDS,
            attributes: &[
                "rpc.grpc.status_code",
                "rpc.method",
                "rpc.service",
                "rpc.system",
            ],
        };
        static RPC_CLIENT: InstrumentInfo = InstrumentInfo {
            name: "rpc.client.duration",
            description: "Measures the duration of outbound RPC.",
            unit: "ms",
            unit_ns: MS,
            bounds_ns: RPC_BOUNDS,
            attributes: &[
                "rpc.grpc.status_code",
                "rpc.method",
                "rpc.service",
                "rpc.system",
                "server.address",
                "server.port",
            ],
        };
        match self {
            Instrument::HttpServer => &HTTP_SERVER,
            Instrument::HttpClient => &HTTP_CLIENT,
            Instrument::DbClient => &DB_CLIENT,
            Instrument::RpcServer => &RPC_SERVER,
            Instrument::RpcClient => &RPC_CLIENT,
        }
    }

    /// The instrument that measures a span, if any.
    pub fn of(span: &Span) -> Option<Instrument> {
        let has = |k: &str| span.attributes.contains_key(k);
        match span.kind {
            SpanKind::Server if has("rpc.system") => Some(Instrument::RpcServer),
            SpanKind::Client if has("rpc.system") => Some(Instrument::RpcClient),
            SpanKind::Client if has("db.system.name") || has("db.system") => {
                Some(Instrument::DbClient)
            }
            SpanKind::Server if has("http.request.method") => Some(Instrument::HttpServer),
            SpanKind::Client if has("http.request.method") => Some(Instrument::HttpClient),
            _ => None,
        }
    }
}

/// The `goprobe.panics` counter.
pub const PANICS: &str = "goprobe.panics";
pub const PANICS_DESCRIPTION: &str =
    "Go panics seen in the target, recovered or not (exception events on spans).";
/// The counter of events the recording could not record.
pub const LOST: &str = "goprobe.events.lost";
pub const LOST_DESCRIPTION: &str = "Events goprobe could not record, as the recording's lost lines count them, by reason and by what it means for the spans (span_lost: a call has no span; span_incomplete: a span lacks fields or its parent; not_lost: a call already running when the probes attached).";
/// Its attributes.
pub const LOSS_REASON: &str = "goprobe.loss.reason";
pub const LOSS_EFFECT: &str = "goprobe.loss.effect";

/// The attribute saying whether a panic was recovered by the code that raised it.
pub const RECOVERED: &str = "goprobe.panic.recovered";
/// The skipped-lines counter.
pub const SKIPPED: &str = "goprobe.convert.skipped_lines";
pub const SKIPPED_DESCRIPTION: &str = "Input lines skipped as not a valid span (convert --skip-invalid); their measurements are missing.";

/// An explicit-bucket histogram of durations in nanoseconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Histogram {
    /// Per-bucket counts, `bounds.len() + 1` of them (the last is +Inf).
    pub buckets: Vec<u64>,
    pub count: u64,
    pub sum_ns: u128,
    pub min_ns: u64,
    pub max_ns: u64,
}

impl Histogram {
    fn new(bounds: &[u64]) -> Histogram {
        Histogram {
            buckets: vec![0; bounds.len() + 1],
            count: 0,
            sum_ns: 0,
            min_ns: u64::MAX,
            max_ns: 0,
        }
    }

    fn record(&mut self, bounds: &[u64], ns: u64) {
        // The first bucket whose upper bound is >= ns (bounds are inclusive).
        let i = bounds.partition_point(|&b| b < ns);
        self.buckets[i] += 1;
        self.count += 1;
        self.sum_ns += u128::from(ns);
        self.min_ns = self.min_ns.min(ns);
        self.max_ns = self.max_ns.max(ns);
    }

    /// Add another histogram over the same bounds.
    pub fn merge(&mut self, other: &Histogram) {
        for (a, b) in self.buckets.iter_mut().zip(&other.buckets) {
            *a += b;
        }
        self.count += other.count;
        self.sum_ns += other.sum_ns;
        self.min_ns = self.min_ns.min(other.min_ns);
        self.max_ns = self.max_ns.max(other.max_ns);
    }
}

/// Cumulative metrics over the spans added so far.
#[derive(Debug, Default)]
pub struct Aggregator {
    resources: Vec<Attributes>,
    last_resource: usize,
    /// (instrument, resource index, attributes) -> histogram.
    pub histograms: BTreeMap<(Instrument, usize, LabelSet), Histogram>,
    /// (resource index, attributes) -> panics.
    pub panics: BTreeMap<(usize, LabelSet), u64>,
    /// Spans added.
    pub spans: u64,
    /// Input lines skipped as invalid.
    pub skipped: u64,
    /// What the recording's `lost` lines counted.
    pub lost: crate::loss::Losses,
    /// Earliest span start and latest span end seen.
    pub first_start_ns: Option<u64>,
    pub last_end_ns: u64,
}

impl Aggregator {
    pub fn new() -> Aggregator {
        Aggregator::default()
    }

    /// The resource (service, process) of each index used in the maps.
    pub fn resources(&self) -> &[Attributes] {
        &self.resources
    }

    fn resource_index(&mut self, resource: &Attributes) -> usize {
        // Spans of one process arrive together: check the last one first.
        if self.resources.get(self.last_resource) == Some(resource) {
            return self.last_resource;
        }
        let i = match self.resources.iter().position(|r| r == resource) {
            Some(i) => i,
            None => {
                self.resources.push(resource.clone());
                self.resources.len() - 1
            }
        };
        self.last_resource = i;
        i
    }

    /// Measure one span.
    pub fn add(&mut self, span: &Span) {
        self.spans += 1;
        self.first_start_ns = Some(self.first_start_ns.map_or(span.start_time_unix_nano, |t| {
            t.min(span.start_time_unix_nano)
        }));
        self.last_end_ns = self.last_end_ns.max(span.end_time_unix_nano);
        let instrument = Instrument::of(span);
        let outcomes = panic_outcomes(span);
        if instrument.is_none() && outcomes.is_empty() {
            return;
        }
        let resource = self.resource_index(&span.resource);
        if let Some(instrument) = instrument {
            let info = instrument.info();
            let labels = labels(span, instrument);
            self.histograms
                .entry((instrument, resource, labels))
                .or_insert_with(|| Histogram::new(info.bounds_ns))
                .record(info.bounds_ns, span.duration_nanos());
        }
        for (ty, recovered) in outcomes {
            let mut labels: LabelSet = Vec::with_capacity(2);
            if let Some(t) = ty {
                labels.push(("exception.type", Label::Str(t)));
            }
            if let Some(r) = recovered {
                labels.push((RECOVERED, Label::Bool(r)));
            }
            *self.panics.entry((resource, labels)).or_insert(0) += 1;
        }
    }
}

/// The attributes of a span's measurement: the instrument's list, plus
/// `error.type` as the conventions define it (the span's own, else the
/// status code of a failed HTTP response, else `_OTHER` for a span whose
/// status is an error).
pub fn labels(span: &Span, instrument: Instrument) -> LabelSet {
    let info = instrument.info();
    let mut out: LabelSet = Vec::with_capacity(info.attributes.len() + 1);
    for &key in info.attributes {
        if let Some(v) = span.attributes.get(key) {
            out.push((key, Label::from_attr(v)));
        }
    }
    if instrument == Instrument::DbClient && !span.attributes.contains_key("db.system.name") {
        // Conventions before 1.26 called it db.system.
        if let Some(v) = span.attributes.get("db.system") {
            out.push(("db.system.name", Label::from_attr(v)));
        }
    }
    if matches!(instrument, Instrument::HttpClient | Instrument::HttpServer)
        && !span.attributes.contains_key("url.scheme")
        && let Some(AttrValue::String(url)) = span.attributes.get("url.full")
        && let Some((scheme, _)) = url.split_once("://")
    {
        out.push(("url.scheme", Label::Str(scheme.to_owned())));
    }
    if let Some(e) = error_type(span, instrument) {
        out.push(("error.type", Label::Str(e)));
    }
    out.sort_by(|a, b| a.0.cmp(b.0));
    out
}

fn error_type(span: &Span, instrument: Instrument) -> Option<String> {
    if let Some(v) = span.attributes.get("error.type") {
        return Some(Label::from_attr(v).text());
    }
    let status = match span.attributes.get("http.response.status_code") {
        Some(AttrValue::Int(n)) => Some(*n),
        _ => None,
    };
    let failed_status = match instrument {
        Instrument::HttpServer => status.filter(|&s| s >= 500),
        Instrument::HttpClient => status.filter(|&s| s >= 400),
        _ => None,
    };
    if let Some(s) = failed_status {
        return Some(s.to_string());
    }
    (span.status.code == StatusCode::Error).then(|| "_OTHER".to_owned())
}

/// The panics recorded on a span — its `exception` events — each with its
/// `exception.type` and whether it was recovered, as far as the span tells:
///
/// - On a server span, a panic that escaped the handler leaves the request
///   without a response: goprobe then marks the span an error with no
///   `http.response.status_code` (net/http's safety net closed the
///   connection, or the process died). The last panic of such a span was
///   not recovered (`false`); every other panic on a server span was
///   recovered by the handler, which went on to answer (`true`).
/// - On any other span (a panic outside every request) goprobe cannot
///   tell: the attribute is left out.
pub fn panic_outcomes(span: &Span) -> Vec<(Option<String>, Option<bool>)> {
    let exceptions: Vec<&crate::span::Event> = span
        .events
        .iter()
        .filter(|e| e.name == "exception")
        .collect();
    if exceptions.is_empty() {
        return Vec::new();
    }
    let server = span.kind == SpanKind::Server;
    let escaped = server
        && span.status.code == StatusCode::Error
        && !span.attributes.contains_key("http.response.status_code");
    let last = exceptions.len() - 1;
    exceptions
        .into_iter()
        .enumerate()
        .map(|(i, e)| {
            let ty = e.attributes.get("exception.type").map(|v| match v {
                AttrValue::String(s) => s.clone(),
                other => Label::from_attr(other).text(),
            });
            let recovered = server.then_some(!(escaped && i == last));
            (ty, recovered)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(json: serde_json::Value) -> Span {
        let mut base = serde_json::json!({
            "trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "b7ad6b7169203331",
            "name": "GET /x", "kind": "server",
            "start_time_unix_nano": 1_000, "end_time_unix_nano": 5_000_001_000u64,
            "resource": {"service.name": "svc"}
        });
        for (k, v) in json.as_object().expect("object") {
            base[k] = v.clone();
        }
        Span::from_json_line(&base.to_string()).expect("span")
    }

    #[test]
    fn buckets_are_upper_inclusive_in_exact_nanoseconds() {
        let mut h = Histogram::new(HTTP_BOUNDS);
        for ns in [0, 5 * MS, 5 * MS + 1, 10 * S, 10 * S + 1, u64::MAX] {
            h.record(HTTP_BOUNDS, ns);
        }
        assert_eq!(h.buckets[0], 2, "0 and exactly 5ms");
        assert_eq!(h.buckets[1], 1);
        assert_eq!(h.buckets[13], 1, "exactly 10s");
        assert_eq!(h.buckets[14], 2, "+Inf");
        assert_eq!(h.count, 6);
        assert_eq!(h.min_ns, 0);
        assert_eq!(h.max_ns, u64::MAX);
    }

    #[test]
    fn picks_instruments_and_their_attributes() {
        let s = span(
            serde_json::json!({"attributes": {"http.request.method": "GET",
            "http.route": "/x", "http.response.status_code": 503, "url.path": "/x/1"}}),
        );
        assert_eq!(Instrument::of(&s), Some(Instrument::HttpServer));
        let l = labels(&s, Instrument::HttpServer);
        let keys: Vec<_> = l.iter().map(|(k, _)| *k).collect();
        assert_eq!(
            keys,
            [
                "error.type",
                "http.request.method",
                "http.response.status_code",
                "http.route"
            ]
        );
        assert_eq!(l[0].1, Label::Str("503".into()));
        assert_eq!(l[2].1, Label::Int(503));
        let c = span(serde_json::json!({"kind": "client", "attributes": {
            "http.request.method": "GET", "url.full": "https://b:8443/p", "http.response.status_code": 404}}));
        let l = labels(&c, Instrument::HttpClient);
        assert!(l.contains(&("url.scheme", Label::Str("https".into()))));
        assert!(l.contains(&("error.type", Label::Str("404".into()))));
        let db = span(serde_json::json!({"kind": "client", "attributes": {
            "db.system": "postgresql", "db.operation.name": "SELECT", "db.query.text": "SELECT 1"},
            "status": {"code": "error"}}));
        assert_eq!(Instrument::of(&db), Some(Instrument::DbClient));
        let l = labels(&db, Instrument::DbClient);
        assert_eq!(
            l,
            vec![
                ("db.operation.name", Label::Str("SELECT".into())),
                ("db.system.name", Label::Str("postgresql".into())),
                ("error.type", Label::Str("_OTHER".into())),
            ]
        );
        let rpc = span(
            serde_json::json!({"attributes": {"rpc.system": "grpc", "http.request.method": "POST"}}),
        );
        assert_eq!(Instrument::of(&rpc), Some(Instrument::RpcServer));
        let internal = span(serde_json::json!({"kind": "internal"}));
        assert_eq!(Instrument::of(&internal), None);
    }

    #[test]
    fn panic_outcomes_follow_how_the_request_ended() {
        let ev = |ty: &str| serde_json::json!({"name": "exception", "time_unix_nano": 2000, "attributes": {"exception.type": ty}});
        // The handler recovered and answered.
        let ok = span(
            serde_json::json!({"attributes": {"http.response.status_code": 200, "http.request.method": "GET"},
            "events": [ev("*errors.errorString")]}),
        );
        assert_eq!(
            panic_outcomes(&ok),
            vec![(Some("*errors.errorString".into()), Some(true))]
        );
        // Two panics, the second escaped: no response.
        let escaped = span(
            serde_json::json!({"attributes": {"error.type": "string", "http.request.method": "GET"},
            "status": {"code": "error", "message": "panic: x"}, "events": [ev("runtime.Error"), ev("string")]}),
        );
        assert_eq!(
            panic_outcomes(&escaped),
            vec![
                (Some("runtime.Error".into()), Some(true)),
                (Some("string".into()), Some(false))
            ]
        );
        let orphan = span(serde_json::json!({"kind": "internal", "name": "panic",
            "events": [{"name": "exception", "time_unix_nano": 1, "attributes": {}}]}));
        assert_eq!(panic_outcomes(&orphan), vec![(None, None)]);
        let mut agg = Aggregator::new();
        for s in [&ok, &escaped, &orphan, &ok] {
            agg.add(s);
        }
        assert_eq!(agg.panics.values().sum::<u64>(), 5);
        assert_eq!(agg.resources().len(), 1);
        assert_eq!(agg.histograms.values().map(|h| h.count).sum::<u64>(), 3);
    }
}
