//! `goprobe attach` against real Go servers.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::common;
use crate::{ndjson, start};

fn events<'a>(lines: &'a [serde_json::Value], probe: &str) -> Vec<&'a serde_json::Value> {
    lines
        .iter()
        .filter(|l| l["type"] == "event" && l["probe"] == probe)
        .collect()
}

/// N requests -> exactly N server events with the right method, path and
/// status, for several Go versions and build variants. Stripped binaries
/// get their offsets through --offsets (from the unstripped twin's DWARF).
fn exact_server_events(go: &str, variant: &str) {
    exact_server_events_with(go, variant, true)
}

/// Without --offsets goprobe resolves offsets itself (DWARF, else the
/// embedded offsets table for stripped builds).
fn exact_server_events_with(go: &str, variant: &str, offsets_file: bool) {
    let entry = common::corpus_binary(go, "httpserver", variant);
    let server = common::Server::start(&entry.binary);
    let offsets = std::env::temp_dir().join(format!("goprobe-offsets-{go}-{variant}.ndjson"));
    std::fs::write(
        &offsets,
        common::dwarf_offsets(&entry.unstripped, common::HTTP_FIELDS),
    )
    .expect("write offsets");
    let pid = server.pid().to_string();
    let mut args = vec!["attach", "--pid", &pid];
    if offsets_file {
        args.extend(["--offsets", offsets.to_str().expect("utf8")]);
    }
    let run = start(&args);
    let mut want = BTreeMap::new();
    for i in 0..30 {
        let (path, code) = match i % 4 {
            0 => ("/hello", 200),
            1 => ("/fail", 500),
            2 => ("/nope", 404),
            _ => ("/sleep?ms=20", 200),
        };
        assert_eq!(common::get(&server.addr, path), code);
        *want
            .entry((
                path.split('?').next().unwrap_or(path).to_owned(),
                i64::from(code),
            ))
            .or_insert(0) += 1;
    }
    std::thread::sleep(Duration::from_millis(300));
    run.interrupt();
    let (code, out, err) = run.finish();
    assert_eq!(code, 0, "{err}");
    let lines = ndjson(&out);
    assert_eq!(lines[0]["type"], "target");
    // The probes attached, so a reader knows what missing events mean.
    let attached: Vec<&str> = lines[0]["probes"]
        .as_array()
        .expect("probes attached")
        .iter()
        .filter_map(|p| p.as_str())
        .collect();
    assert!(attached.contains(&"http.server"), "{attached:?}");
    // Goroutine creations only where the nesting probes cannot name their
    // goroutine's parent themselves: before Go 1.21, or when the offsets
    // given leave runtime.g.parentGoid out (the file written here does).
    if !offsets_file {
        let old_go = ["1.17", "1.18", "1.19", "1.20"]
            .iter()
            .any(|m| go == *m || go.starts_with(&format!("{m}.")));
        assert_eq!(
            attached.contains(&"go.spawn"),
            old_go,
            "go {go}: {attached:?}"
        );
    }
    assert!(
        !attached.contains(&"db.sql"),
        "no database/sql: {attached:?}"
    );
    assert!(lines.iter().any(|l| l["type"] == "clock"));
    let server_events = events(&lines, "http.server");
    let mut got = BTreeMap::new();
    for e in &server_events {
        assert_eq!(e["fields"]["method"], "GET");
        assert_eq!(e["pid"], server.pid());
        let status = e["fields"]["status"].as_i64().unwrap_or(200);
        *got.entry((
            e["fields"]["path"].as_str().expect("path").to_owned(),
            status,
        ))
        .or_insert(0) += 1;
        if e["fields"]["path"] == "/sleep" {
            let ms = (e["end_ns"].as_u64().expect("end") - e["start_ns"].as_u64().expect("start"))
                / 1_000_000;
            assert!((20..2000).contains(&ms), "/sleep?ms=20 took {ms} ms");
        }
    }
    assert_eq!(got, want, "{err}");
    assert!(!lines.iter().any(|l| l["type"] == "lost"), "{out}");
    assert!(err.contains("lost: none"), "{err}");
}

#[test]
fn exact_events_go119_default() {
    exact_server_events("1.19", "default");
}

#[test]
fn exact_events_go121_pie() {
    exact_server_events("1.21", "pie");
}

#[test]
fn exact_events_go126_stripped() {
    exact_server_events("1.26", "stripped");
}

#[test]
fn exact_events_go126_pie_stripped() {
    exact_server_events("1.26", "pie-stripped");
}

#[test]
fn exact_events_go122_stripped_own_offsets() {
    exact_server_events_with("1.22", "stripped", false);
}

#[test]
fn exact_events_go119_default_own_offsets() {
    exact_server_events_with("1.19", "default", false);
}

/// Attaching by path catches a process started afterwards.
#[test]
fn by_path_catches_a_later_process() {
    let entry = common::corpus_binary("1.21", "httpserver", "default");
    let run = start(&["attach", entry.binary.to_str().expect("utf8")]);
    let server = common::Server::start(&entry.binary);
    for _ in 0..3 {
        assert_eq!(common::get(&server.addr, "/hello"), 200);
    }
    std::thread::sleep(Duration::from_millis(300));
    run.interrupt();
    let (code, out, err) = run.finish();
    assert_eq!(code, 0, "{err}");
    let lines = ndjson(&out);
    let evs = events(&lines, "http.server");
    assert_eq!(
        evs.iter().filter(|e| e["pid"] == server.pid()).count(),
        3,
        "{out}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l["type"] == "target" && l["pid"] == server.pid()),
        "target line for the new pid"
    );
}

/// Attaching by pid ignores another process of the same binary.
#[test]
fn by_pid_ignores_other_processes() {
    let entry = common::corpus_binary("1.19", "httpserver", "default");
    let a = common::Server::start(&entry.binary);
    let b = common::Server::start(&entry.binary);
    let pid = a.pid().to_string();
    let run = start(&["attach", "--pid", &pid]);
    for _ in 0..3 {
        assert_eq!(common::get(&a.addr, "/hello"), 200);
        assert_eq!(common::get(&b.addr, "/hello"), 200);
    }
    std::thread::sleep(Duration::from_millis(300));
    run.interrupt();
    let (code, out, err) = run.finish();
    assert_eq!(code, 0, "{err}");
    let lines = ndjson(&out);
    let evs = events(&lines, "http.server");
    assert_eq!(evs.len(), 3, "{out}");
    assert!(evs.iter().all(|e| e["pid"] == a.pid()));
}

/// Ctrl-C in the middle of load: every request answered before the signal
/// has its event (the ring buffer is drained on the way out).
#[test]
fn ctrl_c_mid_load_loses_nothing() {
    let entry = common::corpus_binary("1.26", "httpserver", "default");
    let server = common::Server::start(&entry.binary);
    let pid = server.pid().to_string();
    let run = start(&["attach", "--pid", &pid]);
    let addr = server.addr.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loaders: Vec<_> = (0..4)
        .map(|_| {
            let (addr, stop) = (addr.clone(), std::sync::Arc::clone(&stop));
            std::thread::spawn(move || {
                let mut done = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    assert_eq!(common::get(&addr, "/hello"), 200);
                    done.push(Instant::now());
                }
                done
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    let signalled = Instant::now();
    run.interrupt();
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let done: Vec<Instant> = loaders
        .into_iter()
        .flat_map(|t| t.join().expect("loader"))
        .collect();
    let before = done.iter().filter(|t| **t < signalled).count();
    let (code, out, err) = run.finish();
    assert_eq!(code, 0, "{err}");
    let n = events(&ndjson(&out), "http.server").len();
    assert!(before > 50, "load too light: {before}");
    assert!(
        n >= before && n <= done.len(),
        "{n} events for {before} requests answered before Ctrl-C ({} in all); {err}",
        done.len()
    );
}

/// 1,000+ requests blocked in the handler at once are all paired.
#[test]
fn thousand_concurrent_calls_pair() {
    let entry = common::corpus_binary("1.22", "httpserver", "default");
    let server = common::Server::start(&entry.binary);
    let pid = server.pid().to_string();
    let run = start(&["attach", "--pid", &pid, "--probes", "http.server"]);
    const N: usize = 1200;
    let threads: Vec<_> = (0..N)
        .map(|_| {
            let addr = server.addr.clone();
            std::thread::Builder::new()
                .stack_size(64 << 10)
                .spawn(move || common::get(&addr, "/sleep?ms=2000"))
                .expect("thread")
        })
        .collect();
    let codes: Vec<u16> = threads
        .into_iter()
        .map(|t| t.join().expect("request"))
        .collect();
    assert!(codes.iter().all(|&c| c == 200));
    std::thread::sleep(Duration::from_millis(500));
    run.interrupt();
    let (code, out, err) = run.finish();
    assert_eq!(code, 0, "{err}");
    let lines = ndjson(&out);
    let evs = events(&lines, "http.server");
    assert_eq!(evs.len(), N, "{err}");
    let goroutines: std::collections::HashSet<u64> = evs
        .iter()
        .map(|e| e["goroutine"].as_u64().expect("g"))
        .collect();
    assert_eq!(goroutines.len(), N, "each call on its own goroutine");
    for e in &evs {
        let ms = (e["end_ns"].as_u64().expect("end") - e["start_ns"].as_u64().expect("start"))
            / 1_000_000;
        assert!((2000..10000).contains(&ms), "{ms} ms");
    }
    assert!(!lines.iter().any(|l| l["type"] == "lost"), "{err}");
}

/// Clear errors: not a Go binary, unknown probe.
#[test]
fn errors_are_clear() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_goprobe"))
        .args(["attach", "/bin/sh"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("not a Go binary"),
        "{out:?}"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_goprobe"))
        .args(["attach", "/bin/sh", "--probes", "redis.client"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("unknown probe"),
        "{out:?}"
    );
}

/// go.spawn (named: on Go 1.21+ it is not attached by default): every
/// connection's goroutine (where net/http runs the handler) is reported as
/// created, by the accept loop's goroutine.
#[test]
fn spawn_events_link_handlers_to_their_creator() {
    let entry = common::corpus_binary("1.23", "httpserver", "default");
    let server = common::Server::start(&entry.binary);
    let pid = server.pid().to_string();
    let run = start(&["attach", "--pid", &pid, "--probes", "all,go.spawn"]);
    for _ in 0..5 {
        assert_eq!(common::get(&server.addr, "/hello"), 200);
    }
    std::thread::sleep(Duration::from_millis(300));
    run.interrupt();
    let (code, out, err) = run.finish();
    assert_eq!(code, 0, "{err}");
    let lines = ndjson(&out);
    let spawns = events(&lines, "go.spawn");
    let servers = events(&lines, "http.server");
    assert_eq!(servers.len(), 5);
    let mut creators = std::collections::HashSet::new();
    for s in &servers {
        let g = &s["goroutine"];
        let sp = spawns
            .iter()
            .find(|sp| &sp["goroutine"] == g)
            .unwrap_or_else(|| panic!("no spawn for goroutine {g}: {out}"));
        assert!(sp["start_ns"].as_u64() <= s["start_ns"].as_u64());
        creators.insert(sp["fields"]["parent_goroutine"].as_u64().expect("parent"));
    }
    assert_eq!(
        creators.len(),
        1,
        "one accept loop created every connection goroutine"
    );
}

/// goprobe attaches to amd64 only: an arm64 binary is refused before any
/// eBPF is loaded, with the architecture named.
#[test]
fn arm64_binaries_are_refused_naming_the_architecture() {
    let bin = common::manifest()
        .into_iter()
        .find(|b| b.program == "httpserver" && b.goarch == "arm64")
        .expect("an arm64 httpserver in the corpus");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_goprobe"))
        .arg("attach")
        .arg(&bin.path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("http.server: unsupported architecture arm64 (supported: amd64)"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}
