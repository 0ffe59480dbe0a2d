//! The recorder on hand-made streams: nesting by role, ancestry, roots.

use super::*;
use crate::span::StatusCode;

fn feed(r: &mut Recorder, line: Line, out: &mut Vec<Span>) {
    r.line(line, out).expect("records");
}

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
    let mut r = Recorder::new().expect("catalog");
    let mut out = Vec::new();
    feed(
        &mut r,
        Line::Target(TargetInfo {
            path: "/bin/svc".into(),
            pid: Some(7),
            go_version: "go1.22.10".into(),
            service_name: "svc".into(),
            probes: Vec::new(),
        }),
        &mut out,
    );
    feed(
        &mut r,
        Line::Clock {
            realtime_minus_monotonic_ns: 1_000_000_000_000,
            uncertainty_ns: 10,
        },
        &mut out,
    );
    feed(
        &mut r,
        ev(
            "http.client",
            5,
            150,
            250,
            serde_json::json!({"method":"GET","scheme":"http","host":"127.0.0.1:8080","path":"/hello","status":200}),
        ),
        &mut out,
    );
    feed(
        &mut r,
        ev(
            "http.client",
            6,
            150,
            250,
            serde_json::json!({"method":"POST","scheme":"https","host":"api.example","path":"/x","query":"a=1","error":true}),
        ),
        &mut out,
    );
    assert!(out.is_empty());
    feed(
        &mut r,
        ev(
            "http.server",
            5,
            100,
            300,
            serde_json::json!({"method":"GET","path":"/users/3","route":"/users/{id}","proto":"HTTP/1.1","host":"127.0.0.1:8080","peer":"127.0.0.1:5000","status":503}),
        ),
        &mut out,
    );
    // The server span waits a moment for a client span that caused it.
    assert!(out.is_empty());
    feed(
        &mut r,
        Line::Tick {
            monotonic_ns: 300 + links::LINK_WAIT_NS,
        },
        &mut out,
    );
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
    let mut r = Recorder::new().expect("catalog");
    let mut out = Vec::new();
    feed(
        &mut r,
        ev(
            "http.client",
            7,
            10,
            20,
            serde_json::json!({"host":"x:1","path":"/a"}),
        ),
        &mut out,
    );
    feed(
        &mut r,
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
    let mut r = Recorder::new().expect("catalog");
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
    feed(&mut r, spawn(10, 1, 50), &mut out); // conn goroutine 10, from the accept loop
    feed(&mut r, spawn(11, 10, 120), &mut out); // handler starts 11
    feed(&mut r, spawn(12, 11, 130), &mut out); // which starts 12
    feed(
        &mut r,
        ev(
            "http.client",
            12,
            140,
            400,
            serde_json::json!({"method":"GET","scheme":"http","host":"x:1","path":"/a"}),
        ),
        &mut out,
    );
    feed(
        &mut r,
        ev(
            "http.client",
            10,
            20,
            30,
            serde_json::json!({"method":"GET","scheme":"http","host":"x:1","path":"/before"}),
        ),
        &mut out,
    );
    feed(
        &mut r,
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

/// Go 1.21+: a client event naming its goroutine's parent (parentGoid) is
/// the child of a span on that parent when it starts inside the span; a
/// call on the same kind of goroutine that started outside is not.
#[test]
fn client_naming_its_parent_goroutine_is_child() {
    let mut r = Recorder::new().expect("catalog");
    let mut out = Vec::new();
    let call = |g: u64, start: u64, end: u64, path: &str| {
        ev(
            "http.client",
            g,
            start,
            end,
            serde_json::json!({"method":"GET","scheme":"http","host":"x:1","path": path,
                "parent_goroutine": 10}),
        )
    };
    feed(&mut r, call(11, 150, 250, "/inside"), &mut out);
    feed(&mut r, call(12, 20, 30, "/before"), &mut out);
    feed(
        &mut r,
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
    assert_eq!(out[1].trace_id, out[0].trace_id);
    assert_eq!(
        out[1].attributes["url.full"],
        AttrValue::from("http://x:1/inside")
    );
    r.finish(&mut out);
    assert_eq!(out.len(), 3);
    assert!(
        out[2].parent_span_id.is_none(),
        "started before the handler"
    );
}

/// Nesting by role at any depth: a database call and a panic inside an
/// outgoing call inside a request; the client span is the database
/// span's parent and carries the panic; a call outside stays out.
#[test]
fn client_spans_enclose_at_any_depth() {
    let mut r = Recorder::new().expect("catalog");
    let mut out = Vec::new();
    let db = serde_json::json!({"query": "SELECT 1", "db_system": "postgresql"});
    feed(&mut r, ev("db.sql", 5, 160, 170, db.clone()), &mut out);
    feed(
        &mut r,
        ev(
            "go.panic",
            5,
            180,
            180,
            serde_json::json!({"type": "string", "message": "boom"}),
        ),
        &mut out,
    );
    feed(
        &mut r,
        ev(
            "http.client",
            5,
            150,
            250,
            serde_json::json!({"method":"GET","scheme":"http","host":"x:1","path":"/a"}),
        ),
        &mut out,
    );
    feed(&mut r, ev("db.sql", 5, 260, 270, db), &mut out);
    assert!(out.is_empty(), "all wait for the request: {out:?}");
    feed(
        &mut r,
        ev(
            "http.server",
            5,
            100,
            300,
            serde_json::json!({"method":"GET","path":"/h","proto":"HTTP/1.1"}),
        ),
        &mut out,
    );
    assert_eq!(out.len(), 4, "{out:#?}");
    let (server, client) = (&out[0], &out[1]);
    assert_eq!(server.kind, SpanKind::Server);
    assert!(
        server.events.is_empty(),
        "the panic was inside the client call"
    );
    assert_eq!(client.kind, SpanKind::Client);
    assert_eq!(client.parent_span_id, Some(server.span_id));
    assert_eq!(client.events.len(), 1);
    assert_eq!(
        client.events[0].attributes["exception.message"],
        AttrValue::from("boom")
    );
    let inner = &out[2];
    assert_eq!(inner.name, "SELECT");
    assert_eq!(inner.parent_span_id, Some(client.span_id));
    assert_eq!(
        out[3].parent_span_id,
        Some(server.span_id),
        "after the client call"
    );
    assert!(out.iter().all(|s| s.trace_id == server.trace_id));
    assert_eq!(
        (r.stats.server, r.stats.client, r.stats.db, r.stats.panics),
        (1, 3, 2, 1)
    );
}

/// An event nothing encloses becomes a span of its own, as its family
/// says (a panic outside any request: a `panic` span); an unknown probe
/// is ignored; fields of the wrong type are an error naming the probe.
#[test]
fn lone_events_unknown_probes_and_bad_fields() {
    let mut r = Recorder::new().expect("catalog");
    let mut out = Vec::new();
    feed(
        &mut r,
        ev(
            "go.panic",
            9,
            50,
            50,
            serde_json::json!({"type": "runtime.Error"}),
        ),
        &mut out,
    );
    feed(
        &mut r,
        ev("grpc.someday", 9, 60, 70, serde_json::json!({})),
        &mut out,
    );
    r.finish(&mut out);
    assert_eq!(out.len(), 1, "{out:?}");
    assert_eq!(out[0].name, "panic");
    assert_eq!(out[0].kind, SpanKind::Internal);
    assert_eq!(out[0].events[0].name, "exception");
    let err = r
        .line(
            ev("http.server", 1, 1, 2, serde_json::json!({"status": "200"})),
            &mut out,
        )
        .expect_err("status is a number");
    assert!(err.to_string().starts_with("http.server event: "), "{err}");
}

mod http_phases;
mod linking;
