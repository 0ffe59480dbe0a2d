//! Linking server spans to the client spans that caused them, on
//! hand-made streams.

use super::*;

fn grpc_server(start: u64, end: u64, peer: &str, stream: Option<u32>) -> Line {
    let mut f = serde_json::json!({"method":"/helloworld.Greeter/SayHello","code":0,
        "peer":peer,"local":"127.0.0.1:50051"});
    if let Some(s) = stream {
        f["stream_id"] = s.into();
    }
    ev("grpc.server", 40, start, end, f)
}

fn grpc_client(start: u64, end: u64, local: &str, stream: Option<u32>) -> Line {
    let mut f = serde_json::json!({"method":"/helloworld.Greeter/SayHello","code":0,
        "local":local,"peer":"127.0.0.1:50051","target":"127.0.0.1:50051"});
    if let Some(s) = stream {
        f["stream_id"] = s.into();
    }
    ev("grpc.client", 1, start, end, f)
}

/// A server span a client span of the same recording caused becomes that
/// client span's child, in its trace, whichever arrives first; alone, it
/// stays a root (written once its wait is over).
#[test]
fn server_spans_link_to_the_client_span_that_caused_them() {
    let ms = 1_000_000;
    // Server first (the usual order: the client returns after the server).
    let mut r = Recorder::new().expect("catalog");
    let mut out = Vec::new();
    feed(
        &mut r,
        grpc_server(11 * ms, 19 * ms, "127.0.0.1:40000", Some(1)),
        &mut out,
    );
    assert!(out.is_empty(), "held for its client");
    feed(
        &mut r,
        grpc_client(10 * ms, 20 * ms, "127.0.0.1:40000", Some(1)),
        &mut out,
    );
    // An unrelated client (another connection) does not fit.
    feed(
        &mut r,
        grpc_client(10 * ms, 21 * ms, "127.0.0.1:40001", Some(1)),
        &mut out,
    );
    feed(
        &mut r,
        Line::Tick {
            monotonic_ns: 2_000 * ms,
        },
        &mut out,
    );
    r.finish(&mut out);
    assert_eq!(out.len(), 3);
    let server = out
        .iter()
        .find(|s| s.kind == SpanKind::Server)
        .expect("server");
    let parent = out
        .iter()
        .find(|s| Some(s.span_id) == server.parent_span_id)
        .expect("the server span has a parent");
    assert_eq!(parent.kind, SpanKind::Client);
    assert_eq!(parent.trace_id, server.trace_id);
    // The client on port 40000, not the one on 40001.
    assert_eq!(parent.start_time_unix_nano, out[0].start_time_unix_nano);
    assert_eq!((r.stats.linked, r.stats.ambiguous_links), (1, 0));

    // Client first (a streamed response outlives it): the server span goes
    // out with the client span once that is written.
    let mut r = Recorder::new().expect("catalog");
    let mut out = Vec::new();
    feed(
        &mut r,
        grpc_client(10 * ms, 20 * ms, "127.0.0.1:40000", Some(3)),
        &mut out,
    );
    feed(
        &mut r,
        grpc_server(11 * ms, 25 * ms, "127.0.0.1:40000", Some(3)),
        &mut out,
    );
    feed(
        &mut r,
        Line::Tick {
            monotonic_ns: 2_000 * ms,
        },
        &mut out,
    );
    // The client span waits for a span enclosing it (none comes).
    assert!(out.is_empty(), "{out:?}");
    r.finish(&mut out);
    assert_eq!(out.len(), 2, "{out:?}");
    let (c, s) = (&out[0], &out[1]);
    assert_eq!((c.kind, s.kind), (SpanKind::Client, SpanKind::Server));
    assert_eq!(s.parent_span_id, Some(c.span_id));
    assert_eq!(s.trace_id, c.trace_id);

    // Another stream of the same connection is not the cause.
    let mut r = Recorder::new().expect("catalog");
    let mut out = Vec::new();
    feed(
        &mut r,
        grpc_client(10 * ms, 20 * ms, "127.0.0.1:40000", Some(3)),
        &mut out,
    );
    feed(
        &mut r,
        grpc_server(11 * ms, 19 * ms, "127.0.0.1:40000", Some(5)),
        &mut out,
    );
    r.finish(&mut out);
    let s = out
        .iter()
        .find(|s| s.kind == SpanKind::Server)
        .expect("server");
    assert!(s.parent_span_id.is_none());
    assert_eq!(r.stats.linked, 0);

    // Alone: a root, written once the wait is over (a tick says when).
    let mut r = Recorder::new().expect("catalog");
    let mut out = Vec::new();
    feed(
        &mut r,
        grpc_server(11 * ms, 19 * ms, "127.0.0.1:40000", Some(1)),
        &mut out,
    );
    feed(
        &mut r,
        Line::Tick {
            monotonic_ns: 500 * ms,
        },
        &mut out,
    );
    assert!(out.is_empty());
    feed(
        &mut r,
        Line::Tick {
            monotonic_ns: 1_100 * ms,
        },
        &mut out,
    );
    assert_eq!(out.len(), 1);
    assert!(out[0].parent_span_id.is_none());
}

/// Two client spans on one connection without stream ids, both around the
/// server span's start: it is not linked, and that is counted. A request
/// whose traceparent names another trace than its client span's keeps it.
#[test]
fn ambiguous_links_are_counted_and_traceparents_win() {
    let ms = 1_000_000;
    let mut r = Recorder::new().expect("catalog");
    let mut out = Vec::new();
    feed(
        &mut r,
        grpc_server(12 * ms, 19 * ms, "127.0.0.1:40000", None),
        &mut out,
    );
    feed(
        &mut r,
        grpc_client(10 * ms, 20 * ms, "127.0.0.1:40000", None),
        &mut out,
    );
    feed(
        &mut r,
        grpc_client(11 * ms, 21 * ms, "127.0.0.1:40000", None),
        &mut out,
    );
    r.finish(&mut out);
    let s = out
        .iter()
        .find(|s| s.kind == SpanKind::Server)
        .expect("server");
    assert!(s.parent_span_id.is_none());
    assert_eq!((r.stats.linked, r.stats.ambiguous_links), (0, 1));

    let mut r = Recorder::new().expect("catalog");
    let mut out = Vec::new();
    let Line::Event(mut e) = grpc_server(12 * ms, 19 * ms, "127.0.0.1:40000", Some(1)) else {
        unreachable!()
    };
    e.fields.insert(
        "traceparent".into(),
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
    );
    feed(&mut r, Line::Event(e), &mut out);
    // Held too: its caller might be in the recording.
    assert!(out.is_empty(), "{out:?}");
    // The client that made the call, in a trace of its own (not the one
    // the header names: a caller that started another trace).
    feed(
        &mut r,
        grpc_client(10 * ms, 20 * ms, "127.0.0.1:40000", Some(1)),
        &mut out,
    );
    r.finish(&mut out);
    assert_eq!(out.len(), 2, "{out:?}");
    let s = out
        .iter()
        .position(|s| s.kind == SpanKind::Server)
        .expect("server");
    out.swap(0, s);
    assert_eq!(
        out[0].trace_id.to_string(),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(
        out[0].parent_span_id.map(|p| p.to_string()).as_deref(),
        Some("00f067aa0ba902b7")
    );
    assert_eq!(r.stats.linked, 0);
}

/// A proxy that is not instrumented forwards the `traceparent` it received
/// as it is: the upstream's server span, whose header names the proxy's
/// caller, becomes the child of the proxy's client span (same trace), not
/// the sibling of the proxy's server span; whichever order the spans come.
#[test]
fn forwarded_traceparents_link_to_the_proxy_client_span() {
    let ms = 1_000_000;
    let header = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let with_header = |line: Line| {
        let Line::Event(mut e) = line else {
            unreachable!()
        };
        e.fields.insert("traceparent".into(), header.into());
        Line::Event(e)
    };
    // The proxy's server span (goroutine 1, like its client call), and the
    // upstream's (goroutine 40), both with the caller's header.
    let proxy = || {
        let Line::Event(mut e) =
            with_header(grpc_server(5 * ms, 30 * ms, "10.0.0.9:5555", Some(1)))
        else {
            unreachable!()
        };
        e.goroutine = 1;
        e.fields.insert("local".into(), "127.0.0.1:8080".into());
        Line::Event(e)
    };
    let upstream = || with_header(grpc_server(11 * ms, 19 * ms, "127.0.0.1:40000", Some(1)));
    let client = || grpc_client(10 * ms, 20 * ms, "127.0.0.1:40000", Some(1));
    for order in [
        [upstream(), client(), proxy()],
        [client(), upstream(), proxy()],
        [client(), proxy(), upstream()],
    ] {
        let mut r = Recorder::new().expect("catalog");
        let mut out = Vec::new();
        for l in order {
            feed(&mut r, l, &mut out);
        }
        feed(
            &mut r,
            Line::Tick {
                monotonic_ns: 2_000 * ms,
            },
            &mut out,
        );
        r.finish(&mut out);
        assert_eq!(out.len(), 3, "{out:?}");
        // By start: the proxy's server span, its client span, the upstream's.
        out.sort_by_key(|s| s.start_time_unix_nano);
        let (p, c, u) = (&out[0], &out[1], &out[2]);
        assert_eq!(
            (p.kind, c.kind, u.kind),
            (SpanKind::Server, SpanKind::Client, SpanKind::Server)
        );
        for s in [p, c, u] {
            assert_eq!(s.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        }
        assert_eq!(
            p.parent_span_id.map(|x| x.to_string()).as_deref(),
            Some("00f067aa0ba902b7")
        );
        assert_eq!(c.parent_span_id, Some(p.span_id));
        assert_eq!(u.parent_span_id, Some(c.span_id), "{out:?}");
        assert_eq!(r.stats.linked, 1);
    }
}
