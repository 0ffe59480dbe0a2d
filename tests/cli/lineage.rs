//! Goroutine lineage: client calls made on goroutines a handler starts are
//! children of the handler's span. On Go 1.21+ the client program reads the
//! goroutine's recorded parent (`runtime.g.parentGoid`), one goroutine deep,
//! with no probe on goroutine creation; naming go.spawn follows any depth;
//! on Go 1.19 go.spawn is attached automatically.

use std::time::Duration;

use goprobe::span::{AttrValue, Span, SpanKind};

use crate::common;
use crate::{ndjson, spans, start};

/// `attach` with `probes` while the corpus httpserver of Go `go` serves
/// /async at depths 1 and 2 (each calls /hello from a goroutine that deep),
/// then `record` over attach's stream: the raw lines and the spans.
fn run(go: &str, probes: &str) -> (Vec<serde_json::Value>, Vec<Span>) {
    let entry = common::corpus_binary(go, "httpserver", "default");
    let server = common::Server::start(&entry.binary);
    let pid = server.pid().to_string();
    let run = start(&["attach", "--pid", &pid, "--probes", probes]);
    for depth in [1, 2] {
        assert_eq!(
            common::get(&server.addr, &format!("/async?depth={depth}")),
            200
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    run.interrupt();
    let (code, out, err) = run.finish();
    assert_eq!(code, 0, "{err}");
    let mut rec = std::process::Command::new(env!("CARGO_BIN_EXE_goprobe"))
        .arg("record")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("record");
    std::io::Write::write_all(&mut rec.stdin.take().expect("stdin"), out.as_bytes()).expect("feed");
    let res = rec.wait_with_output().expect("wait");
    assert_eq!(
        res.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&res.stderr)
    );
    (ndjson(&out), spans(&String::from_utf8_lossy(&res.stdout)))
}

fn probe_events<'a>(lines: &'a [serde_json::Value], probe: &str) -> Vec<&'a serde_json::Value> {
    lines
        .iter()
        .filter(|l| l["type"] == "event" && l["probe"] == probe)
        .collect()
}

/// The server span a client call made from /async at `depth` is nested in,
/// if any (each request's client span is told apart by its start).
fn parent_of_call(all: &[Span], depth: usize) -> Option<&Span> {
    let mut asyncs: Vec<&Span> = all
        .iter()
        .filter(|s| {
            s.kind == SpanKind::Server
                && s.attributes.get("url.path") == Some(&AttrValue::from("/async"))
        })
        .collect();
    asyncs.sort_by_key(|s| s.start_time_unix_nano);
    assert_eq!(asyncs.len(), 2, "{all:?}");
    let mut clients: Vec<&Span> = all.iter().filter(|s| s.kind == SpanKind::Client).collect();
    clients.sort_by_key(|s| s.start_time_unix_nano);
    assert_eq!(clients.len(), 2, "{all:?}");
    let call = clients[depth - 1];
    let request = asyncs[depth - 1];
    assert!(
        call.start_time_unix_nano >= request.start_time_unix_nano
            && call.end_time_unix_nano <= request.end_time_unix_nano,
        "the call is inside its request"
    );
    let parent = all
        .iter()
        .find(|s| Some(s.span_id) == call.parent_span_id)?;
    assert_eq!(parent.span_id, request.span_id, "{all:?}");
    assert_eq!(parent.trace_id, call.trace_id);
    Some(parent)
}

/// Go 1.21+ by default: no goroutine-creation probe (every probe that
/// nests, http.phases included, reads its goroutine's parent), the client
/// events carry their goroutine's parent, and a call one goroutine below the
/// handler is its child; two below is not followed (documented).
#[test]
fn one_goroutine_deep_without_a_creation_probe() {
    for go in ["1.23", "1.26"] {
        let (lines, all) = run(go, "all");
        assert!(
            probe_events(&lines, "go.spawn").is_empty(),
            "go {go}: no go.spawn by default"
        );
        let servers = probe_events(&lines, "http.server");
        for c in probe_events(&lines, "http.client") {
            let parent = c["fields"]["parent_goroutine"]
                .as_u64()
                .expect("parent_goroutine");
            assert_ne!(parent, c["goroutine"].as_u64().unwrap());
        }
        // Depth 1: the caller's parent is the goroutine that served /async.
        let depth1 = probe_events(&lines, "http.client")
            .into_iter()
            .min_by_key(|c| c["start_ns"].as_u64())
            .expect("a client event");
        assert!(
            servers.iter().any(|s| s["fields"]["path"] == "/async"
                && s["goroutine"] == depth1["fields"]["parent_goroutine"]),
            "go {go}: the depth-1 caller was started by the handler's goroutine"
        );
        assert!(parent_of_call(&all, 1).is_some(), "go {go}: depth 1 nested");
        assert!(
            parent_of_call(&all, 2).is_none(),
            "go {go}: depth 2 needs go.spawn"
        );
    }
}

/// Naming go.spawn on Go 1.21+, and by default on Go 1.19 (no parentGoid):
/// calls one and two goroutines below the handler are both its children.
#[test]
fn any_depth_with_the_creation_probe() {
    for (go, probes) in [("1.26", "all,go.spawn"), ("1.19", "all")] {
        let (lines, all) = run(go, probes);
        assert!(
            !probe_events(&lines, "go.spawn").is_empty(),
            "go {go} {probes}"
        );
        assert!(parent_of_call(&all, 1).is_some(), "go {go}: depth 1 nested");
        assert!(parent_of_call(&all, 2).is_some(), "go {go}: depth 2 nested");
    }
}
