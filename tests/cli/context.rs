//! `goprobe record` on real Go servers: incoming W3C trace context and
//! panics (issue: database/sql, trace context, panics). Needs root.

use std::time::Duration;

use goprobe::span::{AttrValue, Span, SpanKind, StatusCode};

use crate::common;
use crate::{spans, start};

/// Record while `drive` sends requests to the server; returns the spans and stderr.
fn record(go: &str, variant: &str, drive: impl FnOnce(&str)) -> (Vec<Span>, String) {
    common::require_root();
    let entry = common::corpus_binary(go, "httpserver", variant);
    let server = common::Server::start_env(&entry.binary, &[("GODEBUG", "httpmuxgo121=0")]);
    let pid = server.pid().to_string();
    let run = start(&["record", "--pid", &pid]);
    drive(&server.addr);
    std::thread::sleep(Duration::from_millis(300));
    run.interrupt();
    let (code, out, err) = run.finish();
    assert_eq!(code, 0, "{err}");
    (spans(&out), err)
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

/// Requests carrying `traceparent` join the caller's trace (its trace id,
/// the caller's span as parent, the sampled flag kept); requests without one
/// (or with an invalid one) start new traces. Maps of every size the
/// probe searches are covered: a few headers (one bucket / one Swiss
/// group) and 40 (several buckets, a Swiss table). The same walk finds
/// User-Agent (`user_agent.original`, cut at 256 bytes).
fn joins_incoming_trace(go: &str, variant: &str) {
    let many: Vec<(String, String)> = (0..40)
        .map(|i| (format!("X-Extra-{i}"), format!("v{i}")))
        .collect();
    let long_agent = format!("long-agent/1.0 ({})", "x".repeat(300));
    let (all, err) = record(go, variant, |addr| {
        let tp = format!("00-{TRACE}-{PARENT}-01");
        assert_eq!(
            common::get_with(
                addr,
                "/hello?case=sampled",
                &[("User-Agent", "curl/8.5.0"), ("traceparent", &tp)]
            ),
            200
        );
        let tp0 = format!("00-{TRACE}-{PARENT}-00");
        assert_eq!(
            common::get_with(addr, "/hello?case=unsampled", &[("Traceparent", &tp0)]),
            200
        );
        let mut headers: Vec<(&str, &str)> =
            many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        headers.push(("traceparent", &tp));
        headers.push(("User-Agent", &long_agent));
        assert_eq!(common::get_with(addr, "/hello?case=many", &headers), 200);
        assert_eq!(common::get(addr, "/hello?case=none"), 200);
        assert_eq!(
            common::get_with(
                addr,
                "/hello?case=invalid",
                &[("traceparent", "00-zz-00f067aa0ba902b7-01")]
            ),
            200
        );
    });
    assert_eq!(all.len(), 5, "{err}");
    // Spans come out in request order (one connection at a time).
    let [sampled, unsampled, many, none, invalid] = &all[..] else {
        panic!("five spans: {all:?}")
    };
    for (s, flags) in [(sampled, 1), (unsampled, 0), (many, 1)] {
        assert_eq!(s.kind, SpanKind::Server);
        assert_eq!(s.trace_id.to_string(), TRACE, "{go} {variant}: {s:?}");
        assert_eq!(
            s.parent_span_id.map(|p| p.to_string()).as_deref(),
            Some(PARENT)
        );
        assert_eq!(s.trace_flags, Some(flags));
    }
    for s in [none, invalid] {
        assert_ne!(s.trace_id.to_string(), TRACE);
        assert!(s.parent_span_id.is_none());
        assert!(s.trace_flags.is_none());
    }
    assert_ne!(none.trace_id, invalid.trace_id);
    let agent = |s: &Span| s.attributes.get("user_agent.original").cloned();
    assert_eq!(
        agent(sampled),
        Some(AttrValue::from("curl/8.5.0")),
        "{go} {variant}"
    );
    assert_eq!(
        agent(many),
        Some(AttrValue::from(&long_agent[..256])),
        "{go} {variant}"
    );
    assert_eq!(agent(none), None, "{go} {variant}: no User-Agent header");
}

#[test]
fn trace_context_go119() {
    joins_incoming_trace("1.19", "default");
    joins_incoming_trace("1.19", "stripped");
}

#[test]
fn trace_context_go122() {
    joins_incoming_trace("1.22", "pie");
    joins_incoming_trace("1.22", "pie-stripped");
}

/// Go 1.24 replaced the bucket maps with Swiss tables.
#[test]
fn trace_context_go126_swiss_maps() {
    joins_incoming_trace("1.26", "default");
    joins_incoming_trace("1.26", "stripped");
}

/// A panic net/http recovers ends the server span with an error and an
/// `exception` event; a panic the handler recovers itself adds the event
/// but leaves the status unset; the summary counts both.
fn panics_become_events(go: &str, variant: &str) {
    let (all, err) = record(go, variant, |addr| {
        // net/http closes the connection without an answer.
        assert_eq!(common::get(addr, "/panic"), 0);
        assert_eq!(common::get(addr, "/recovered"), 200);
        assert_eq!(common::get(addr, "/hello"), 200);
    });
    assert_eq!(all.len(), 3, "{go} {variant}: {all:?}\n{err}");
    let by_path = |p: &str| {
        all.iter()
            .find(|s| s.attributes.get("url.path") == Some(&AttrValue::from(p)))
            .unwrap_or_else(|| panic!("no span for {p}: {all:?}"))
    };
    let escaped = by_path("/panic");
    assert_eq!(escaped.status.code, StatusCode::Error, "{escaped:?}");
    if go != "1.19" && go != "1.21" {
        // ServeMux patterns (Go 1.22+): the route is known when the panic escapes.
        assert_eq!(escaped.name, "GET /panic", "{escaped:?}");
    }
    assert_eq!(
        escaped.status.message.as_deref(),
        Some("panic: panic on purpose")
    );
    assert_eq!(escaped.attributes["error.type"], AttrValue::from("string"));
    assert!(
        !escaped.attributes.contains_key("http.response.status_code"),
        "no response was sent: {escaped:?}"
    );
    assert_eq!(escaped.events.len(), 1, "{escaped:?}");
    let e = &escaped.events[0];
    assert_eq!(e.name, "exception");
    assert_eq!(e.attributes["exception.type"], AttrValue::from("string"));
    assert_eq!(
        e.attributes["exception.message"],
        AttrValue::from("panic on purpose")
    );
    assert!(
        escaped.start_time_unix_nano <= e.time_unix_nano
            && e.time_unix_nano <= escaped.end_time_unix_nano
    );

    let recovered = by_path("/recovered");
    assert_eq!(recovered.status.code, StatusCode::Unset, "{recovered:?}");
    assert_eq!(
        recovered.attributes["http.response.status_code"],
        AttrValue::Int(200)
    );
    assert_eq!(recovered.events.len(), 1, "{recovered:?}");
    let e = &recovered.events[0];
    assert_eq!(
        e.attributes["exception.type"],
        AttrValue::from("*errors.errorString")
    );
    assert_eq!(
        e.attributes["exception.message"],
        AttrValue::from("recovered on purpose")
    );

    assert!(by_path("/hello").events.is_empty());
    assert!(err.contains(" 2 panics,"), "{err}");
}

#[test]
fn panics_go119() {
    panics_become_events("1.19", "default");
    panics_become_events("1.19", "stripped");
}

#[test]
fn panics_go122() {
    panics_become_events("1.22", "pie-stripped");
}

#[test]
fn panics_go126() {
    panics_become_events("1.26", "default");
    panics_become_events("1.26", "pie-stripped");
}

/// A panic nobody recovers kills the process mid-request: the request
/// still gets its server span (status error, ended at the exit), with the
/// panic as its exception event, and the recording ends by itself.
fn crash_keeps_the_request(go: &str, variant: &str) {
    common::require_root();
    let entry = common::corpus_binary(go, "httpserver", variant);
    let mut server = common::Server::start_env(&entry.binary, &[("GODEBUG", "httpmuxgo121=0")]);
    let pid = server.pid().to_string();
    let run = start(&["record", "--pid", &pid]);
    assert_eq!(common::get(&server.addr, "/hello"), 200);
    assert_eq!(
        common::get(&server.addr, "/crash"),
        0,
        "the process dies before answering"
    );
    let status = server.child.wait().expect("wait");
    assert_eq!(status.code(), Some(2), "Go exits 2 on an unrecovered panic");
    let (code, out, err) = run.finish();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("target exited"), "{err}");
    assert!(err.contains(" 1 panics,"), "{err}");
    let all = spans(&out);
    assert_eq!(all.len(), 2, "{go} {variant}: {out}");
    let crash = all
        .iter()
        .find(|s| s.attributes.get("url.path") == Some(&AttrValue::from("/crash")))
        .expect("the request that was being served");
    assert_eq!(crash.status.code, StatusCode::Error);
    assert_eq!(
        crash.status.message.as_deref(),
        Some("process exited while serving the request (panic: crash on purpose)")
    );
    assert!(!crash.attributes.contains_key("http.response.status_code"));
    assert_eq!(crash.events.len(), 1, "{crash:?}");
    assert_eq!(
        crash.events[0].attributes["exception.message"],
        AttrValue::from("crash on purpose")
    );
    assert_eq!(
        crash.events[0].attributes["exception.type"],
        AttrValue::from("string")
    );
}

#[test]
fn crash_go119() {
    crash_keeps_the_request("1.19", "default");
}

#[test]
fn crash_go126_pie_stripped() {
    // PIE: the panic's type is named with the process's load address,
    // learned at attach time (the process is gone when its last events are read).
    crash_keeps_the_request("1.26", "pie-stripped");
}

/// Go 1.27 emits closures as local symbols and moved the HTTP/2 server.
#[test]
fn panics_go127() {
    panics_become_events("1.27", "stripped");
}
