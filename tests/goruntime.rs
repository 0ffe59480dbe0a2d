//! `goprobe heap` and `goprobe goroutines` against the runtime's own view of
//! the same moment, on the goruntime fixture built by Go 1.19, 1.22, 1.26 and
//! 1.27 (default, stripped, PIE, PIE stripped): the fixture writes its heap
//! profile with runtime/pprof and its goroutine dump (debug=2), then goprobe
//! reads the process from outside.
//!
//! * heap: the fixture has published its profile and turned GC off, so the
//!   profile cannot move: every sample of `go tool pprof -raw` (all four
//!   values, every frame with file and line, inlined ones included) equals
//!   the fixture's own, and so do the top 5 by alloc_space; a busy fixture
//!   (GC on, allocating) agrees within what moved between the two reads;
//! * goroutines: the text equals the fixture's dump goroutine for goroutine
//!   (id, state, every frame), but for the goroutine that wrote the dump; the
//!   NDJSON has each parked goroutine with its state, wait reason and
//!   innermost function; the pprof profile counts them by stack;
//! * --freeze reports how long the process was stopped, gives a running
//!   goroutine its stack, and leaves the process running.
//!
//! Needs root (reading another process's memory), the corpus and Go; fails,
//! never skips, without them.
#![allow(clippy::print_stderr)] // the figures of each comparison, for the record

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::goruntime::{
    GoRuntime, RawSample, goprobe, goprobe_ok, nonzero, parse_dump, pprof_raw, top,
};
use common::{CorpusEntry, corpus_binary, require_root};

const VERSIONS: [&str; 4] = ["1.19", "1.22", "1.26", "1.27"];
const VARIANTS: [&str; 4] = ["default", "stripped", "pie", "pie-stripped"];

fn fixture(version: &str, variant: &str) -> CorpusEntry {
    corpus_binary(version, "goruntime", variant)
}

#[test]
fn heap_equals_runtime_pprof() {
    require_root();
    for v in VERSIONS {
        for variant in VARIANTS {
            let e = fixture(v, variant);
            let label = format!("go{} {variant}", e.go_version);
            let mut fx = GoRuntime::start(&e.binary, &[]);
            let own = fx.own_snapshot("own");
            let ours = fx.path("goprobe.heap.pb.gz");
            goprobe_ok(&[
                "heap",
                "--pid",
                &fx.pid().to_string(),
                "-o",
                ours.to_str().expect("path"),
            ]);
            let (want, got) = (
                nonzero(pprof_raw(&e.go_version, &own.heap)),
                nonzero(pprof_raw(&e.go_version, &ours)),
            );
            assert!(
                want.len() >= 5,
                "{label}: the fixture's own profile has {} samples",
                want.len()
            );
            assert_eq!(
                got, want,
                "{label}: goprobe's heap profile differs from runtime/pprof's"
            );
            let (want_top, got_top) = (
                top(&e.go_version, &own.heap, 5),
                top(&e.go_version, &ours, 5),
            );
            assert_eq!(got_top, want_top, "{label}: top 5 by alloc_space");
            // The fixture's known amounts: 128, 64 and 32 MiB in the top three
            // (hundreds of samples each, far apart); 16 MiB through an inlined
            // call and 8 MiB retained (a few dozen samples: their order can
            // flip with the sampling) in the rest of the top five.
            let names: Vec<&str> = got_top.iter().map(|(f, _)| f.as_str()).collect();
            assert_eq!(
                names[..3],
                ["main.allocBig", "main.allocMedium", "main.allocSmall"],
                "{label}: {names:?}"
            );
            for f in ["main.allocInlined (inline)", "main.allocRetained"] {
                assert!(
                    names.contains(&f),
                    "{label}: {f} not in the top 5: {names:?}"
                );
            }
            eprintln!("{label}: top 5 by alloc_space, goprobe = runtime/pprof: {got_top:?}");
        }
    }
}

#[test]
fn heap_of_a_busy_process_agrees_within_what_moved() {
    require_root();
    let e = fixture("1.26", "default");
    let mut fx = GoRuntime::start(&e.binary, &["-busy"]);
    let ours = fx.path("busy.heap.pb.gz");
    goprobe_ok(&[
        "heap",
        "--pid",
        &fx.pid().to_string(),
        "-o",
        ours.to_str().expect("path"),
    ]);
    let own = fx.own_snapshot("busy");
    let flat = |samples: Vec<RawSample>| -> BTreeMap<String, i64> {
        let mut m = BTreeMap::new();
        for (v, frames) in samples {
            if let Some(f) = frames.first() {
                *m.entry(f.split(' ').next().expect("name").to_string())
                    .or_insert(0) += v[1];
            }
        }
        m
    };
    let (got, want) = (
        flat(pprof_raw(&e.go_version, &ours)),
        flat(pprof_raw(&e.go_version, &own.heap)),
    );
    // Allocations finished before "ready" are published and final: equal.
    for f in [
        "main.allocBig",
        "main.allocMedium",
        "main.allocSmall",
        "main.allocRetained",
    ] {
        assert_eq!(got.get(f), want.get(f), "{f}");
    }
    // main.churn keeps allocating; the two reads are a few GC cycles apart at most.
    let (g, w) = (
        got.get("main.churn").copied().unwrap_or(0),
        want["main.churn"],
    );
    assert!(
        g <= w && w - g <= (w / 2).max(8 << 20),
        "main.churn: goprobe {g}, runtime/pprof a moment later {w}"
    );
}

/// Goroutines by their outermost `main.` frame (the function they were started with).
fn parked(dump: &[common::goruntime::DumpEntry]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for d in dump {
        if let Some(f) = d.functions.iter().rev().find(|f| f.starts_with("main.")) {
            *m.entry(f.clone()).or_insert(0) += 1;
        }
    }
    m
}

#[test]
fn goroutines_equal_the_runtime_dump() {
    require_root();
    for v in VERSIONS {
        for variant in VARIANTS {
            let e = fixture(v, variant);
            let label = format!("go{} {variant}", e.go_version);
            let mut fx = GoRuntime::start(&e.binary, &[]);
            let own = fx.own_snapshot("own");
            let pid = fx.pid().to_string();
            let text = goprobe_ok(&["goroutines", "--pid", &pid, "--to", "text"]);
            let (want, got) = (parse_dump(&own.goroutines), parse_dump(&text));
            assert_eq!(
                got.len(),
                want.len(),
                "{label}: goroutine count\n--- goprobe\n{text}\n--- runtime\n{}",
                own.goroutines
            );
            // The goroutine that wrote the dump was running then; now it reads stdin.
            let writer = want[0].id;
            assert!(
                want[0].header.starts_with("running"),
                "{label}: dump writer"
            );
            for (g, w) in got.iter().zip(&want) {
                assert_eq!(g.id, w.id, "{label}: goroutine order");
                if g.id == writer {
                    continue;
                }
                assert_eq!(g.header, w.header, "{label}: goroutine {} header", g.id);
                assert_eq!(
                    g.functions, w.functions,
                    "{label}: goroutine {} frames",
                    g.id
                );
                assert_eq!(
                    g.created_by, w.created_by,
                    "{label}: goroutine {} creator",
                    g.id
                );
            }
            // What the fixture parks, by function.
            let counts = parked(&got);
            for (f, n) in [
                ("main.chanWaiter", 3),
                ("main.parent.func1", 1),
                ("main.mutexWaiter", 2),
                ("main.sleeper", 2),
                ("main.netReader", 2),
                ("main.selectForever", 1),
                ("main.condWaiter", 1),
                ("main.parent", 1),
            ] {
                assert_eq!(
                    counts.get(f),
                    Some(&n),
                    "{label}: goroutines in {f}: {counts:?}"
                );
            }
            eprintln!(
                "{label}: {} goroutines, each one's state and frames equal to the runtime's debug=2 dump (but goroutine {writer}, which wrote it)",
                got.len()
            );
            check_ndjson(&label, &pid, &want);
            check_pprof(&label, &e, &pid, &fx.path("g.pb.gz"));
        }
    }
}

/// NDJSON: each parked goroutine's state, wait reason and innermost shown frame.
fn check_ndjson(label: &str, pid: &str, want: &[common::goruntime::DumpEntry]) {
    let out = goprobe_ok(&["goroutines", "--pid", pid]);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("NDJSON"))
        .collect();
    assert_eq!(lines[0]["type"], "snapshot");
    assert_eq!(lines[0]["kind"], "goroutines");
    let gs: Vec<&serde_json::Value> = lines[1..].iter().collect();
    assert_eq!(lines[0]["goroutines"].as_u64(), Some(gs.len() as u64));
    for w in want.iter().skip(1) {
        let g = gs
            .iter()
            .find(|g| g["id"].as_u64() == Some(w.id))
            .unwrap_or_else(|| panic!("{label}: goroutine {} missing from NDJSON", w.id));
        assert_eq!(
            g["state"],
            w.state.as_str(),
            "{label}: goroutine {} state",
            w.id
        );
        assert_eq!(g["status"], "waiting", "{label}: goroutine {} status", w.id);
        assert_eq!(
            g["wait_reason"],
            w.state.as_str(),
            "{label}: goroutine {} wait reason",
            w.id
        );
        assert_eq!(g["stack_state"], "complete", "{label}: goroutine {}", w.id);
        assert_eq!(g["system"], false);
        let innermost_shown = g["frames"]
            .as_array()
            .expect("frames")
            .iter()
            .map(|f| f["function"].as_str().expect("function"))
            .find(|f| !f.starts_with("runtime.") || f.starts_with("runtime.Gosched"));
        assert_eq!(
            innermost_shown,
            w.functions.first().map(String::as_str),
            "{label}: goroutine {} innermost",
            w.id
        );
        if w.id != 1 {
            assert!(
                g["created_by"]["function"].is_string(),
                "{label}: creator of {}",
                w.id
            );
        }
    }
}

/// pprof: one sample per distinct stack, counts adding up to the user goroutines.
fn check_pprof(label: &str, e: &CorpusEntry, pid: &str, path: &Path) {
    goprobe_ok(&[
        "goroutines",
        "--pid",
        pid,
        "--to",
        "pprof",
        "-o",
        path.to_str().expect("path"),
    ]);
    let samples = pprof_raw(&e.go_version, path);
    let total: i64 = samples.iter().map(|(v, _)| v[0]).sum();
    let chan: i64 = samples
        .iter()
        .filter(|(_, f)| {
            f.iter().any(|x| x.starts_with("main.chanWaiter "))
                && !f.iter().any(|x| x.starts_with("main.parent"))
        })
        .map(|(v, _)| v[0])
        .sum();
    assert_eq!(
        total, 14,
        "{label}: user goroutines in the profile: {samples:?}"
    );
    assert_eq!(
        chan, 3,
        "{label}: goroutines in main.chanWaiter started by main"
    );
    assert!(
        samples.iter().all(
            |(_, f)| f.first().is_some_and(|x| x.starts_with("runtime.gopark ")
                || x.starts_with("syscall.")
                || x.starts_with("internal/runtime/syscall")
                || x.starts_with("runtime.goparkunlock"))
        ),
        "{label}: every parked stack starts in the scheduler or a system call: {samples:?}"
    );
}

#[test]
fn freeze_stops_reads_and_resumes() {
    require_root();
    let e = fixture("1.26", "stripped");
    let mut fx = GoRuntime::start(&e.binary, &["-spin"]);
    let pid = fx.pid().to_string();
    let out = goprobe_ok(&["goroutines", "--pid", &pid, "--freeze"]);
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("NDJSON"))
        .collect();
    let stopped = lines[0]["stopped_ns"]
        .as_u64()
        .expect("stopped_ns with --freeze");
    assert!(
        stopped > 0 && stopped < 5_000_000_000,
        "stopped {stopped} ns"
    );
    let spinner = lines
        .iter()
        .find(|g| g["start_function"] == "main.spinLoop")
        .expect("the spinning goroutine");
    let frames: Vec<&str> = spinner["frames"]
        .as_array()
        .expect("frames")
        .iter()
        .map(|f| f["function"].as_str().expect("fn"))
        .collect();
    if spinner["status"] == "running" {
        assert_eq!(spinner["stack_state"], "complete", "{spinner}");
        assert!(spinner["thread"].as_u64().is_some(), "{spinner}");
    }
    assert_eq!(frames.first(), Some(&"main.spinLoop"), "{spinner}");
    // The process runs on: it still answers.
    let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let state = state
        .rsplit_once(')')
        .expect("stat")
        .1
        .split_whitespace()
        .next()
        .expect("state")
        .to_string();
    assert!(
        state == "R" || state == "S",
        "process state {state} after --freeze"
    );
    let _ = fx.own_snapshot("after");
    // Without --freeze the spinner is running on a thread: no stack, said so.
    let (_, out, err) = goprobe(&["goroutines", "--pid", &pid]);
    let spinner_line = out
        .lines()
        .find(|l| l.contains("main.spinLoop\""))
        .unwrap_or("");
    if spinner_line.contains("\"status\":\"running\"") {
        assert!(
            spinner_line.contains("\"stack_state\":\"unavailable\""),
            "{spinner_line}"
        );
        assert!(
            err.contains("running on a thread without a stack (use --freeze)"),
            "{err}"
        );
    }
}

#[test]
fn freeze_resumes_a_process_when_goprobe_is_killed() {
    require_root();
    let e = fixture("1.26", "default");
    let mut fx = GoRuntime::start(&e.binary, &[]);
    let pid = fx.pid().to_string();
    let mut gp = Command::new(env!("CARGO_BIN_EXE_goprobe"))
        .args([
            "heap",
            "--pid",
            &pid,
            "--json",
            "--freeze",
            "--freeze-hold",
            "5s",
            "-o",
            "/dev/null",
        ])
        .spawn()
        .expect("goprobe");
    let stat = || {
        let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
        s.rsplit_once(')')
            .expect("stat")
            .1
            .split_whitespace()
            .next()
            .expect("state")
            .to_string()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while stat() != "t" {
        assert!(
            std::time::Instant::now() < deadline,
            "the process never stopped"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // SIGKILL: goprobe cannot clean up; the kernel detaches its tracees.
    gp.kill().expect("kill goprobe");
    let _ = gp.wait();
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_ne!(stat(), "t", "the process stayed stopped after goprobe died");
    let _ = fx.own_snapshot("alive");
}
