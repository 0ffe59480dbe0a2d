//! `convert --to metrics --interval`: expositions on time while the input
//! is open, counters that only grow — from a pipe, and from `record` on a
//! running service.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common;
use crate::synth::{self, assert_ok, stdout};

/// Prometheus expositions from a stream (separated by empty lines): the
/// value of every counter and histogram count series in each.
fn expositions(text: &str) -> Vec<BTreeMap<String, f64>> {
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            e.lines()
                .filter(|l| !l.starts_with('#') && (l.contains("_total") || l.contains("_count")))
                .map(|l| {
                    let (series, value) = l.rsplit_once(' ').expect("sample");
                    (series.to_owned(), value.parse().expect("value"))
                })
                .collect()
        })
        .collect()
}

fn assert_only_grow(list: &[BTreeMap<String, f64>]) {
    for w in list.windows(2) {
        for (series, before) in &w[0] {
            let after = w[1]
                .get(series)
                .unwrap_or_else(|| panic!("{series} disappeared"));
            assert!(after >= before, "{series} went from {before} to {after}");
        }
    }
}

/// `record | convert --to metrics --interval 1s` on a running service: an
/// exposition per second whose counters only grow, ending with every request.
#[test]
fn live_metrics_from_record_every_second() {
    common::require_root();
    let entry = common::corpus_binary("1.26", "httpserver", "default");
    let server = common::Server::start_env(&entry.binary, &[("GODEBUG", "httpmuxgo121=0")]);
    let goprobe = env!("CARGO_BIN_EXE_goprobe");
    let cmd = format!(
        "{goprobe} record --pid {} | {goprobe} convert --to metrics --interval 1s",
        server.pid()
    );
    let mut child = Command::new("sh")
        .args(["-c", &cmd])
        .env("GOPROBE_CACHE", common::cache_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("sh");
    let mut out = child.stdout.take().expect("stdout");
    let collected = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let err = child.stderr.take().expect("stderr");
    let (tx, attached) = std::sync::mpsc::channel();
    let err_text = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&err_text);
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if line.contains("attached") {
                let _ = tx.send(());
            }
            sink.lock().expect("lock").push_str(&format!("{line}\n"));
        }
    });
    if attached.recv_timeout(Duration::from_secs(60)).is_err() {
        let _ = child.kill();
        panic!("record did not attach: {}", err_text.lock().expect("lock"));
    }
    let started = Instant::now();
    let mut sent = 0u64;
    while started.elapsed() < Duration::from_millis(4500) {
        assert_eq!(common::get(&server.addr, "/hello"), 200);
        sent += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    // The target exits: record ends, convert reads EOF and writes its last exposition.
    drop(server);
    let status = child.wait().expect("wait");
    let text = collected.join().expect("stdout");
    let stderr = err_text.lock().expect("lock").clone();
    assert!(status.success(), "{status:?}: {stderr}");
    let list = expositions(&text);
    assert!(
        list.len() >= 4,
        "{} expositions in ~5 s: {stderr}",
        list.len()
    );
    assert_only_grow(&list);
    let hello = |e: &BTreeMap<String, f64>| -> f64 {
        e.iter()
            .filter(|(k, _)| {
                k.starts_with("http_server_request_duration_seconds_count")
                    && k.contains("http_route=\"/hello\"")
            })
            .map(|(_, v)| v)
            .sum()
    };
    assert_eq!(hello(list.last().expect("last")), sent as f64, "{text}");
    assert!(
        list.iter()
            .map(hello)
            .collect::<Vec<_>>()
            .windows(2)
            .any(|w| w[0] < w[1]),
        "values grew while requests came in"
    );
}

#[test]
fn interval_from_a_pipe_without_root() {
    // Spans trickle in on stdin; expositions come out on time regardless.
    let s = synth::spans(30, 21);
    let mut child = synth::goprobe()
        .args(["convert", "--to", "metrics", "--interval", "200ms"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("goprobe");
    let mut stdin = child.stdin.take().expect("stdin");
    for span in &s.spans {
        writeln!(stdin, "{span}").expect("write");
        std::thread::sleep(Duration::from_millis(40));
    }
    drop(stdin);
    let out = child.wait_with_output().expect("wait");
    assert_ok(&out);
    let list = expositions(&stdout(&out));
    assert!(list.len() >= 4, "{} expositions", list.len());
    assert_only_grow(&list);
    let total: f64 = list
        .last()
        .expect("last")
        .iter()
        .filter(|(k, _)| k.contains("_duration_seconds_count"))
        .map(|(_, v)| v)
        .sum();
    assert_eq!(total, s.measured.len() as f64);
}
