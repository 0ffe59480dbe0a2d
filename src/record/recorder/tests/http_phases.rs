//! The recorder with the http_phases family on hand-made streams (here, not
//! in the family's own tests: probes must not use the recorder back).

use super::super::Recorder;
use crate::probes::http_phases::REUSED;
use crate::span::AttrValue;
use crate::stream::RawEvent;

/// Through the recorder: the phases, on the dial's goroutines, become
/// events of the client span; a call without them reused a connection
/// (when the probes were attached); a phase outside any span is dropped.
#[test]
fn client_spans_get_their_phases_and_say_whether_they_reused() {
    use crate::span::Span;
    use crate::stream::{Line, TargetInfo};
    let line = |probe: &str, g: u64, start: u64, end: u64, fields: serde_json::Value| {
        Line::Event(RawEvent {
            probe: probe.into(),
            pid: 7,
            tid: 8,
            goroutine: g,
            start_ns: start,
            end_ns: end,
            fields: fields.as_object().unwrap().clone().into_iter().collect(),
        })
    };
    let client = |g: u64, start: u64, end: u64, status: Option<i64>| {
        let mut f = serde_json::json!({"method": "GET", "scheme": "http", "host": "localhost:80", "path": "/"});
        if let Some(s) = status {
            f["status"] = s.into();
        }
        line("http.client", g, start, end, f)
    };
    let record = |probes: &[&str], lines: Vec<Line>| -> Vec<Span> {
        let mut r = Recorder::new().unwrap();
        let mut out = Vec::new();
        let target = TargetInfo {
            path: "/bin/svc".into(),
            pid: Some(7),
            go_version: "go1.26.6".into(),
            service_name: "svc".into(),
            probes: probes.iter().map(|p| p.to_string()).collect(),
        };
        r.line(Line::Target(target), &mut out).unwrap();
        for l in lines {
            r.line(l, &mut out).unwrap();
        }
        r.finish(&mut out);
        out
    };
    let attached = ["http.client", "http.phases", "http.exchange", "go.spawn"];
    // Goroutine 5 calls out (100..900); net/http dials on goroutine 9,
    // which it starts at 110, and writes and reads on 10 and 11, which
    // goroutine 9 starts at 300.
    let spawn = |child: u64, parent: u64, at: u64| {
        line(
            "go.spawn",
            child,
            at,
            at,
            serde_json::json!({"parent_goroutine": parent}),
        )
    };
    let fresh = vec![
        spawn(9, 5, 110),
        line(
            "http.phases",
            9,
            120,
            120,
            serde_json::json!({"phase": "dns", "host": "localhost"}),
        ),
        line(
            "http.phases",
            9,
            120,
            150,
            serde_json::json!({"phase": "dns", "end": true, "host": "localhost", "answers": 1}),
        ),
        line(
            "http.phases",
            9,
            160,
            160,
            serde_json::json!({"phase": "connect", "peer": "127.0.0.1", "peer_port": 80}),
        ),
        line(
            "http.phases",
            9,
            160,
            200,
            serde_json::json!({"phase": "connect", "end": true, "peer": "127.0.0.1", "peer_port": 80}),
        ),
        spawn(10, 9, 300),
        spawn(11, 9, 300),
        line(
            "http.exchange",
            11,
            400,
            400,
            serde_json::json!({"phase": "request_sent"}),
        ),
        line(
            "http.exchange",
            10,
            700,
            700,
            serde_json::json!({"phase": "first_byte"}),
        ),
        client(5, 100, 900, Some(200)),
        // The same goroutine again, on the pooled connection.
        client(5, 1_000, 1_100, Some(200)),
        // No response: whether it had a connection is unknown.
        client(5, 1_200, 1_300, None),
        // A dial no traced call made.
        line(
            "http.phases",
            77,
            2_000,
            2_000,
            serde_json::json!({"phase": "dns", "host": "pool.internal"}),
        ),
    ];
    let spans = record(&attached, fresh.clone());
    assert_eq!(spans.len(), 3, "{spans:#?}");
    let names: Vec<&str> = spans[0].events.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "dns.start",
            "dns.end",
            "connect.start",
            "connect.end",
            "request_sent",
            "first_byte"
        ]
    );
    assert_eq!(spans[0].attributes[REUSED], AttrValue::Bool(false));
    assert!(spans[1].events.is_empty());
    assert_eq!(spans[1].attributes[REUSED], AttrValue::Bool(true));
    assert!(!spans[2].attributes.contains_key(REUSED), "{:?}", spans[2]);
    // Streams that do not say these probes were attached: no claim.
    let spans = record(&["http.client", "go.spawn"], fresh);
    assert_eq!(spans[0].events.len(), 6);
    assert!(spans.iter().all(|s| !s.attributes.contains_key(REUSED)));
}
