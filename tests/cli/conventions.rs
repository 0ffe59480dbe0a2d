//! Spans of real Go services follow the OpenTelemetry conventions:
//! `url.scheme`, `url.query` (redacted), `error.type` on server 5xx and on
//! client errors (the Go error's type), credentials never written.

use std::time::Duration;

use goprobe::span::{AttrValue, Span, SpanKind, StatusCode};

use crate::common;
use crate::{spans, start};

fn record_while(pid: u32, traffic: impl FnOnce()) -> Vec<Span> {
    let run = start(&["record", "--pid", &pid.to_string()]);
    traffic();
    std::thread::sleep(Duration::from_millis(300));
    run.interrupt();
    let (code, out, err) = run.finish();
    assert_eq!(code, 0, "{err}");
    spans(&out)
}

#[test]
fn server_spans_have_scheme_query_and_error_type() {
    let entry = common::corpus_binary("1.26", "httpserver", "stripped");
    let server = common::Server::start_env(&entry.binary, &[("GODEBUG", "httpmuxgo121=0")]);
    let all = record_while(server.pid(), || {
        assert_eq!(common::get(&server.addr, "/hello?page=2&token=abc123"), 200);
        assert_eq!(common::get(&server.addr, "/fail"), 500);
    });
    let hello = all
        .iter()
        .find(|s| s.name == "GET /hello")
        .expect("/hello span");
    let a = &hello.attributes;
    assert_eq!(a["url.scheme"], AttrValue::from("http"));
    assert_eq!(a["url.query"], AttrValue::from("page=2&token=REDACTED"));
    assert_eq!(a["network.peer.address"], AttrValue::from("127.0.0.1"));
    assert!(matches!(a["network.peer.port"], AttrValue::Int(p) if p > 0));
    assert!(!a.contains_key("error.type"));
    let fail = all.iter().find(|s| s.name == "GET /fail").expect("/fail");
    assert_eq!(fail.status.code, StatusCode::Error);
    assert_eq!(fail.attributes["error.type"], AttrValue::from("500"));
    assert!(!fail.attributes.contains_key("url.query"));
}

/// A refused connection: the client span's error.type is the Go error's
/// dynamic type, as net/http returned it.
#[test]
fn client_errors_name_the_go_error_type() {
    let entry = common::corpus_binary("1.26", "httpserver", "default");
    // Port 1 on loopback: nothing listens, the dial is refused.
    let server = common::Server::start_args(&entry.binary, &["-upstream", "http://127.0.0.1:1"]);
    let all = record_while(server.pid(), || {
        assert_eq!(common::get(&server.addr, "/call"), 502);
    });
    let client = all
        .iter()
        .find(|s| s.kind == SpanKind::Client)
        .expect("client span");
    assert_eq!(client.status.code, StatusCode::Error);
    assert_eq!(
        client.attributes["error.type"],
        AttrValue::from("*net.OpError")
    );
    assert_eq!(
        client.status.message.as_deref(),
        Some("roundTrip returned a *net.OpError")
    );
    assert!(!client.attributes.contains_key("http.response.status_code"));
}

/// A URL with credentials: url.full says so and nothing more.
#[test]
fn client_credentials_are_never_written() {
    let entry = common::corpus_binary("1.21", "httpserver", "default");
    let upstream = common::Server::start(&entry.binary);
    let base = format!("http://alice:hunter2@{}", upstream.addr);
    let server = common::Server::start_args(&entry.binary, &["-upstream", &base]);
    let run = start(&["record", "--pid", &server.pid().to_string()]);
    assert_eq!(common::get(&server.addr, "/call"), 200);
    std::thread::sleep(Duration::from_millis(300));
    run.interrupt();
    let (code, out, err) = run.finish();
    assert_eq!(code, 0, "{err}");
    assert!(!out.contains("hunter2") && !out.contains("alice"), "{out}");
    let client = spans(&out)
        .into_iter()
        .find(|s| s.kind == SpanKind::Client)
        .expect("client span");
    assert_eq!(
        client.attributes["url.full"],
        AttrValue::String(format!("http://REDACTED:REDACTED@{}/hello", upstream.addr))
    );
}
