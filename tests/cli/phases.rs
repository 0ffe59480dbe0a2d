//! `goprobe record` of outgoing calls that open a connection (probes
//! `http.phases` and `http.exchange`) against the corpus httpserver, which
//! calls itself over plain HTTP and over HTTPS (a TLS server it runs beside,
//! with a certificate made at start-up), on new and on pooled connections:
//! the phases are events of the client span, in order, inside its time, with
//! their facts; a pooled connection has none and the span says it was reused.

use std::time::Duration;

use goprobe::span::{AttrValue, Event, Span, SpanKind};

use crate::common;
use crate::{spans, start};

const REUSED: &str = "goprobe.http.connection.reused";

/// One call `/out` makes, and what its span must show.
struct Case {
    query: &'static str,
    /// A new connection (else a pooled one).
    fresh: bool,
    /// By name (localhost: a DNS lookup) rather than by address.
    dns: bool,
    /// `tls.protocol.version` when HTTPS.
    tls: Option<&'static str>,
}

const CASES: &[Case] = &[
    Case {
        query: "to=http&conn=fresh",
        fresh: true,
        dns: true,
        tls: None,
    },
    Case {
        query: "to=https&conn=fresh",
        fresh: true,
        dns: true,
        tls: Some("1.3"),
    },
    Case {
        query: "to=https&conn=fresh&tls=1.2",
        fresh: true,
        dns: true,
        tls: Some("1.2"),
    },
    Case {
        query: "to=http&conn=fresh&host=127.0.0.1",
        fresh: true,
        dns: false,
        tls: None,
    },
    // The keep-alive client's first call to each server opens the
    // connection its second call reuses.
    Case {
        query: "to=http&conn=reuse",
        fresh: true,
        dns: true,
        tls: None,
    },
    Case {
        query: "to=http&conn=reuse",
        fresh: false,
        dns: true,
        tls: None,
    },
    Case {
        query: "to=https&conn=reuse",
        fresh: true,
        dns: true,
        tls: Some("1.3"),
    },
    Case {
        query: "to=https&conn=reuse",
        fresh: false,
        dns: true,
        tls: Some("1.3"),
    },
];

fn attr<'a>(e: &'a Event, key: &str) -> Option<&'a AttrValue> {
    e.attributes.get(key)
}

/// The events of a fresh connection's call: dns.start, dns.end (when by
/// name), one or more connect.start/connect.end (a dual-stack localhost may
/// try ::1 first), tls.start, tls.end (HTTPS), and with the opt-in
/// `http.exchange` request_sent, first_byte.
fn check_fresh(case: &Case, span: &Span, port: i64, exchange: bool) {
    let what = format!("/out?{}: {:#?}", case.query, span.events);
    let names: Vec<&str> = span.events.iter().map(|e| e.name.as_str()).collect();
    let mut want: Vec<&str> = Vec::new();
    if case.dns {
        want.extend(["dns.start", "dns.end"]);
    }
    let connects = names.iter().filter(|n| **n == "connect.start").count();
    assert!(connects >= 1, "{what}");
    for _ in 0..connects {
        want.extend(["connect.start", "connect.end"]);
    }
    if case.tls.is_some() {
        want.extend(["tls.start", "tls.end"]);
    }
    if exchange {
        want.extend(["request_sent", "first_byte"]);
    }
    assert_eq!(names, want, "{what}");
    // In order, inside the client span's time.
    let mut t = span.start_time_unix_nano;
    for e in &span.events {
        assert!(e.time_unix_nano >= t, "out of order: {what}");
        t = e.time_unix_nano;
    }
    assert!(t <= span.end_time_unix_nano, "after the span's end: {what}");
    let find = |name: &str| {
        span.events
            .iter()
            .rev()
            .find(|e| e.name == name)
            .expect(name)
    };
    if case.dns {
        for name in ["dns.start", "dns.end"] {
            assert_eq!(
                attr(find(name), "dns.question.name"),
                Some(&AttrValue::from("localhost")),
                "{what}"
            );
        }
        let n = attr(find("dns.end"), "goprobe.dns.answer_count");
        assert!(matches!(n, Some(AttrValue::Int(n)) if *n >= 1), "{what}");
    }
    // The last attempt connected, to the loopback address the servers listen on.
    let connected = find("connect.end");
    assert_eq!(
        attr(connected, "network.peer.address"),
        Some(&AttrValue::from("127.0.0.1")),
        "{what}"
    );
    assert_eq!(
        attr(connected, "network.peer.port"),
        Some(&AttrValue::Int(port)),
        "{what}"
    );
    assert_eq!(
        attr(connected, "network.type"),
        Some(&AttrValue::from("ipv4")),
        "{what}"
    );
    assert!(attr(connected, "error.type").is_none(), "{what}");
    if let Some(v) = case.tls {
        let end = find("tls.end");
        assert_eq!(
            attr(end, "tls.protocol.version"),
            Some(&AttrValue::from(v)),
            "{what}"
        );
        assert_eq!(
            attr(end, "tls.protocol.name"),
            Some(&AttrValue::from("tls")),
            "{what}"
        );
        assert!(attr(end, "error.type").is_none(), "{what}");
    }
    if exchange {
        assert!(attr(find("request_sent"), "error.type").is_none(), "{what}");
    }
    assert_eq!(span.attributes[REUSED], AttrValue::Bool(false), "{what}");
}

/// `exchange`: attach the opt-in `http.exchange` too (else the default set,
/// which must give no request_sent or first_byte).
fn phases_on_client_spans(go: &str, variant: &str, exchange: bool) {
    let entry = common::corpus_binary(go, "httpserver", variant);
    let server = common::Server::start(&entry.binary);
    let pid = server.pid().to_string();
    let mut args = vec!["record", "--pid", &pid];
    if exchange {
        args.extend(["--probes", "default,http.exchange"]);
    }
    let run = start(&args);
    for case in CASES {
        assert_eq!(
            common::get(&server.addr, &format!("/out?{}", case.query)),
            200,
            "{}",
            case.query
        );
    }
    std::thread::sleep(Duration::from_millis(300));
    run.interrupt();
    let (code, out, err) = run.finish();
    assert_eq!(code, 0, "{err}");
    let all = spans(&out);
    // The calls were made one after the other: their client spans, in
    // time order, are the cases'.
    let mut clients: Vec<&Span> = all.iter().filter(|s| s.kind == SpanKind::Client).collect();
    clients.sort_by_key(|s| s.start_time_unix_nano);
    assert_eq!(clients.len(), CASES.len(), "{out}");
    for (case, span) in CASES.iter().zip(&clients) {
        let url = match &span.attributes["url.full"] {
            AttrValue::String(u) => u.clone(),
            other => panic!("url.full {other:?}"),
        };
        let https = case.tls.is_some();
        let host = if case.dns { "localhost" } else { "127.0.0.1" };
        let prefix = format!("{}://{host}:", if https { "https" } else { "http" });
        assert!(
            url.starts_with(&prefix) && url.ends_with("/hello"),
            "{}: {url}",
            case.query
        );
        let port: i64 = url[prefix.len()..url.len() - "/hello".len()]
            .parse()
            .expect("port");
        if case.fresh {
            check_fresh(case, span, port, exchange);
        } else {
            assert!(
                span.events.is_empty(),
                "/out?{}: {:#?}",
                case.query,
                span.events
            );
            assert_eq!(
                span.attributes[REUSED],
                AttrValue::Bool(true),
                "/out?{}",
                case.query
            );
        }
        // The client span is the child of the /out request's.
        let parent = all
            .iter()
            .find(|s| Some(s.span_id) == span.parent_span_id)
            .expect("a parent");
        assert_eq!(parent.attributes["url.path"], AttrValue::from("/out"));
    }
    // Phase events only ever sit on client spans.
    assert!(
        all.iter()
            .filter(|s| s.kind != SpanKind::Client)
            .all(|s| s.events.is_empty()),
        "{out}"
    );
    assert!(err.contains(" 0 events lost"), "{err}");
}

/// Every hooked function is in every amd64 httpserver build of the corpus
/// (each CI Go version; stripped and PIE too: pclntab names them, the
/// offsets table has the fields), so both probes are instrumentable; and
/// each is called, not inlined, where net/http calls it: the end-to-end
/// tests see every one of them fire.
#[test]
fn hooked_functions_are_in_every_build() {
    let bins: Vec<common::CorpusBinary> = common::manifest()
        .into_iter()
        .filter(|b| b.program == "httpserver" && b.goarch == "amd64")
        .collect();
    assert!(bins.iter().any(|b| b.variant == "pie-stripped"));
    for b in &bins {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_goprobe"))
            .args(["inspect", "--require", "http.phases,http.exchange"])
            .arg(&b.path)
            .output()
            .expect("goprobe inspect");
        assert!(
            out.status.success(),
            "{}: {}",
            b.label(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn phases_go119_default() {
    phases_on_client_spans("1.19", "default", true);
}

#[test]
fn phases_go123_stripped() {
    phases_on_client_spans("1.23", "stripped", true);
}

#[test]
fn phases_go126_pie() {
    phases_on_client_spans("1.26", "pie", true);
}

/// The default probe set: the phases and the reused attribute, no
/// request_sent or first_byte.
#[test]
fn phases_go127_pie_stripped_default_probes() {
    phases_on_client_spans("1.27", "pie-stripped", false);
}
