//! `goprobe record` against real Go servers: spans, parent/child, endings.

use std::time::Duration;

use goprobe::span::{AttrValue, Span, SpanKind, StatusCode};

use crate::common;
use crate::{spans, start};

/// Server spans with attributes and route; client spans children of their
/// server span, in the same trace.
#[test]
fn spans_with_children_and_routes() {
    let entry = common::corpus_binary("1.26", "httpserver", "default");
    let server = common::Server::start_env(&entry.binary, &[("GODEBUG", "httpmuxgo121=0")]);
    let pid = server.pid().to_string();
    let run = start(&["record", "--pid", &pid]);
    for _ in 0..3 {
        assert_eq!(common::get(&server.addr, "/call"), 200);
    }
    assert_eq!(common::get(&server.addr, "/fail"), 500);
    std::thread::sleep(Duration::from_millis(300));
    run.interrupt();
    let (code, out, err) = run.finish();
    assert_eq!(code, 0, "{err}");
    let all = spans(&out);
    let servers: Vec<&Span> = all.iter().filter(|s| s.kind == SpanKind::Server).collect();
    let clients: Vec<&Span> = all.iter().filter(|s| s.kind == SpanKind::Client).collect();
    // 3 x /call, 3 x the /hello each /call makes, 1 x /fail.
    assert_eq!(servers.len(), 7, "{out}");
    assert_eq!(clients.len(), 3, "{out}");
    for c in &clients {
        let parent = servers
            .iter()
            .find(|s| Some(s.span_id) == c.parent_span_id)
            .expect("client has a server parent");
        assert_eq!(parent.name, "GET /call");
        assert_eq!(parent.trace_id, c.trace_id);
        assert!(
            parent.start_time_unix_nano <= c.start_time_unix_nano
                && c.end_time_unix_nano <= parent.end_time_unix_nano
        );
        assert_eq!(c.name, "GET");
        assert_eq!(
            c.attributes["url.full"],
            AttrValue::String(format!("http://{}/hello", server.addr))
        );
        assert_eq!(
            c.attributes["http.response.status_code"],
            AttrValue::Int(200)
        );
    }
    let fail = servers
        .iter()
        .find(|s| s.name == "GET /fail")
        .expect("/fail span");
    assert_eq!(fail.status.code, StatusCode::Error);
    assert_eq!(
        fail.attributes["http.response.status_code"],
        AttrValue::Int(500)
    );
    assert_eq!(fail.attributes["http.route"], AttrValue::from("/fail"));
    assert_eq!(
        fail.resource["process.pid"],
        AttrValue::Int(i64::from(server.pid()))
    );
    assert_eq!(fail.resource["service.name"], AttrValue::from("httpserver"));
    assert_eq!(
        fail.resource["process.runtime.version"],
        AttrValue::from("go1.26.6")
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("time")
        .as_nanos() as u64;
    assert!(
        fail.start_time_unix_nano < now && now - fail.start_time_unix_nano < 60_000_000_000,
        "wall clock times"
    );
    assert!(err.contains("7 server, 3 client"), "{err}");
}

/// `goprobe attach | goprobe record` gives the same spans as record alone.
#[test]
fn reads_attach_output_from_stdin() {
    let entry = common::corpus_binary("1.19", "httpserver", "default");
    let server = common::Server::start(&entry.binary);
    let pid = server.pid().to_string();
    let run = start(&["attach", "--pid", &pid]);
    assert_eq!(common::get(&server.addr, "/call"), 200);
    std::thread::sleep(Duration::from_millis(300));
    run.interrupt();
    let (_, out, _) = run.finish();
    let mut rec = std::process::Command::new(env!("CARGO_BIN_EXE_goprobe"))
        .arg("record")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("record");
    std::io::Write::write_all(&mut rec.stdin.take().expect("stdin"), out.as_bytes()).expect("feed");
    let res = rec.wait_with_output().expect("wait");
    assert_eq!(res.status.code(), Some(0));
    let all = spans(&String::from_utf8_lossy(&res.stdout));
    assert_eq!(all.len(), 3);
    let client = all
        .iter()
        .find(|s| s.kind == SpanKind::Client)
        .expect("client");
    let call = all
        .iter()
        .find(|s| s.attributes.get("url.path") == Some(&AttrValue::from("/call")))
        .expect("/call");
    assert_eq!(client.parent_span_id, Some(call.span_id));
    assert_eq!(
        call.resource["process.pid"],
        AttrValue::Int(i64::from(server.pid()))
    );
}

/// Killing the target ends the recording by itself, everything flushed.
#[test]
fn target_exit_ends_recording() {
    let entry = common::corpus_binary("1.21", "httpserver", "default");
    let mut server = common::Server::start(&entry.binary);
    let pid = server.pid().to_string();
    let run = start(&["record", "--pid", &pid]);
    for _ in 0..5 {
        assert_eq!(common::get(&server.addr, "/hello"), 200);
    }
    server.child.kill().expect("kill target");
    let _ = server.child.wait();
    let (code, out, err) = run.finish();
    assert_eq!(code, 0, "{err}");
    assert_eq!(spans(&out).len(), 5, "{err}");
    assert!(err.contains("target exited"), "{err}");
}

/// `record | head -1` exits quietly.
#[test]
fn record_into_head_exits_quietly() {
    common::require_root();
    let entry = common::corpus_binary("1.19", "httpserver", "default");
    let server = common::Server::start(&entry.binary);
    let cmd = format!(
        "{} record --pid {} | head -1",
        env!("CARGO_BIN_EXE_goprobe"),
        server.pid()
    );
    let mut child = std::process::Command::new("sh")
        .args(["-c", &cmd])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("sh");
    // Keep sending until the pipeline ends (attach takes a moment).
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() && std::time::Instant::now() < deadline {
        common::get(&server.addr, "/hello");
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    assert!(out.status.success(), "{out:?}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1);
    Span::from_json_line(stdout.trim()).expect("one span");
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("goprobe: writing"),
        "{out:?}"
    );
}

/// --limit stops after N spans.
#[test]
fn limit_stops_recording() {
    let entry = common::corpus_binary("1.26", "httpserver", "pie");
    let server = common::Server::start(&entry.binary);
    let pid = server.pid().to_string();
    let run = start(&["record", "--pid", &pid, "--limit", "2"]);
    for _ in 0..5 {
        common::get(&server.addr, "/hello");
    }
    let (code, out, err) = run.finish();
    assert_eq!(code, 0, "{err}");
    assert_eq!(spans(&out).len(), 2);
}
