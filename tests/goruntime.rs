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

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::goruntime::{GoRuntime, parse_dump};
use common::{CorpusEntry, corpus_binary, go, require_root};

const VERSIONS: [&str; 4] = ["1.19", "1.22", "1.26", "1.27"];
const VARIANTS: [&str; 4] = ["default", "stripped", "pie", "pie-stripped"];

fn goprobe(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_goprobe"))
        .args(args)
        .output()
        .expect("run goprobe");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn goprobe_ok(args: &[&str]) -> String {
    let (code, out, err) = goprobe(args);
    assert_eq!(code, 0, "goprobe {args:?} failed: {err}");
    out
}

/// One sample of `go tool pprof -raw`: values, then frames (function and
/// file:line, innermost first, inlined frames included).
type RawSample = (Vec<i64>, Vec<String>);

/// `go tool pprof -raw PROFILE`, parsed.
fn pprof_raw(version: &str, profile: &Path) -> Vec<RawSample> {
    let mut cmd = go(version);
    cmd.args(["tool", "pprof", "-raw"]).arg(profile);
    let text = common::output(cmd);
    let mut samples: Vec<(Vec<i64>, Vec<u64>)> = Vec::new();
    let mut locations: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let mut section = "";
    let mut current: Option<u64> = None;
    for line in text.lines() {
        match line.trim_end() {
            "Samples:" => {
                section = "types";
                continue;
            }
            "Locations" => {
                section = "locations";
                continue;
            }
            "Mappings" => {
                section = "mappings";
                continue;
            }
            _ => {}
        }
        match section {
            "types" => section = "samples",
            "samples" => {
                let Some((vals, locs)) = line.split_once(':') else {
                    continue;
                };
                if line.trim_start().starts_with("bytes:") || vals.trim().is_empty() {
                    continue;
                }
                let values = vals
                    .split_whitespace()
                    .map(|v| v.parse().expect("value"))
                    .collect();
                let ids = locs
                    .split_whitespace()
                    .map(|v| v.parse().expect("location id"))
                    .collect();
                samples.push((values, ids));
            }
            "locations" => {
                let t = line.trim_start();
                let frame = |s: &str| {
                    // `func file:line:col s=N` -> `func file:line`
                    let mut it = s.split_whitespace();
                    let f = it.next().unwrap_or("");
                    let pos = it.next().unwrap_or("");
                    let pos = pos.rsplit_once(':').map_or(pos, |(p, _)| p);
                    format!("{f} {pos}")
                };
                if let Some((id, rest)) = t
                    .split_once(": ")
                    .filter(|(id, _)| id.chars().all(|c| c.is_ascii_digit()))
                {
                    let id: u64 = id.parse().expect("id");
                    // `0xADDR M=1 func file:line:col s=N`
                    let rest: Vec<&str> = rest.splitn(3, ' ').collect();
                    locations.insert(id, vec![frame(rest.get(2).copied().unwrap_or(""))]);
                    current = Some(id);
                } else if let Some(id) = current {
                    locations.get_mut(&id).expect("location").push(frame(t));
                }
            }
            _ => {}
        }
    }
    samples
        .into_iter()
        .map(|(v, ids)| {
            let frames = ids.iter().flat_map(|id| locations[id].clone()).collect();
            (v, frames)
        })
        .collect()
}

/// The top `n` functions by flat alloc_space, as `go tool pprof -top` lists them.
fn top(version: &str, profile: &Path, n: usize) -> Vec<(String, String)> {
    let mut cmd = go(version);
    cmd.args([
        "tool",
        "pprof",
        "-top",
        "-sample_index=alloc_space",
        "-nodecount=20",
    ])
    .arg(profile);
    let text = common::output(cmd);
    text.lines()
        .skip_while(|l| !l.trim_start().starts_with("flat"))
        .skip(1)
        .take(n)
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols[5..].join(" "), cols[0].to_string())
        })
        .collect()
}

fn fixture(version: &str, variant: &str) -> CorpusEntry {
    corpus_binary(version, "goruntime", variant)
}

fn nonzero(samples: Vec<RawSample>) -> Vec<RawSample> {
    // Buckets created after the published GC cycle (the fixture's own
    // snapshot allocates) have all-zero counts: they exist for goprobe only.
    let mut s: Vec<RawSample> = samples
        .into_iter()
        .filter(|(v, _)| v.iter().any(|&x| x != 0))
        .collect();
    s.sort();
    s
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
            let names: Vec<&str> = got_top.iter().map(|(f, _)| f.as_str()).collect();
            assert_eq!(
                names,
                [
                    "main.allocBig",
                    "main.allocMedium",
                    "main.allocSmall",
                    "main.allocInlined (inline)",
                    "main.allocRetained"
                ],
                "{label}: the fixture's known allocation rates"
            );
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

/// GET `path` from `addr`; the body's bytes.
fn http_get(addr: &str, path: &str) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut s =
        std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .expect("timeout");
    // HTTP/1.0: the body comes whole, not chunked.
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("send");
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).expect("read");
    let at = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP header end");
    let head = String::from_utf8_lossy(&resp[..at]).to_string();
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "GET {path}: {head}"
    );
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "chunked body for {path}"
    );
    resp[at + 4..].to_vec()
}

/// Debian's Prometheus (Go 1.19, stripped, -trimpath; nobody here built
/// it) serves its own profiles at /debug/pprof: goprobe's reading from
/// outside equals them. The heap profile exactly, when no GC published a
/// cycle between the service's two own profiles around goprobe's read; the
/// dump goroutine for goroutine, but for the goroutines serving the
/// profile request (or accepting it) at that moment.
#[test]
fn debian_prometheus_equals_its_own_pprof() {
    require_root();
    let prom = Path::new("/usr/bin/prometheus");
    assert!(
        prom.is_file(),
        "Debian's prometheus is missing: run scripts/setup.sh"
    );
    let dir = std::env::temp_dir().join(format!("goprobe-prometheus-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    // No scrape jobs: a quiet server.
    std::fs::write(
        dir.join("prometheus.yml"),
        "global:\n  scrape_interval: 1h\n",
    )
    .expect("config");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = Command::new(prom)
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start prometheus");
    struct Kill(std::process::Child, std::path::PathBuf);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
            let _ = std::fs::remove_dir_all(&self.1);
        }
    }
    let pid = child.id().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "prometheus did not listen"
        );
        assert!(
            child.try_wait().expect("wait").is_none(),
            "prometheus exited"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let guard = Kill(child, dir.clone());
    std::thread::sleep(std::time::Duration::from_secs(2));
    let v = "1.19";
    let mut checked = false;
    for _ in 0..5 {
        let own = dir.join("own.pb.gz");
        let own2 = dir.join("own2.pb.gz");
        let ours = dir.join("goprobe.pb.gz");
        std::fs::write(&own, http_get(&addr, "/debug/pprof/heap")).expect("write");
        goprobe_ok(&["heap", "--pid", &pid, "-o", ours.to_str().expect("path")]);
        std::fs::write(&own2, http_get(&addr, "/debug/pprof/heap")).expect("write");
        let (a, b) = (nonzero(pprof_raw(v, &own)), nonzero(pprof_raw(v, &own2)));
        if a != b {
            continue; // a GC published a cycle meanwhile: try again
        }
        assert_eq!(
            nonzero(pprof_raw(v, &ours)),
            a,
            "goprobe's heap profile of prometheus differs from its own"
        );
        assert_eq!(top(v, &ours, 5), top(v, &own, 5));
        eprintln!(
            "prometheus: top 5 by alloc_space, goprobe = /debug/pprof/heap: {:?}",
            top(v, &ours, 5)
        );
        checked = true;
        break;
    }
    assert!(
        checked,
        "prometheus never stood still between two of its own heap profiles"
    );
    let own = String::from_utf8(http_get(&addr, "/debug/pprof/goroutine?debug=2")).expect("dump");
    let text = goprobe_ok(&["goroutines", "--pid", &pid, "--to", "text"]);
    let (want, got) = (parse_dump(&own), parse_dump(&text));
    let serving = |d: &common::goruntime::DumpEntry| {
        d.functions.iter().any(|f| {
            f.starts_with("net/http.(*conn") || f.ends_with("Accept") || f.contains("pprof")
        })
    };
    let mut same = 0;
    for w in &want {
        match got.iter().find(|g| g.id == w.id) {
            Some(g) if serving(w) || serving(g) => {}
            Some(g) => {
                assert_eq!(
                    (&g.header, &g.functions),
                    (&w.header, &w.functions),
                    "prometheus goroutine {}",
                    w.id
                );
                same += 1;
            }
            None => assert!(
                serving(w),
                "goroutine {} missing from goprobe's dump: {w:?}",
                w.id
            ),
        }
    }
    assert!(same >= 15, "only {same} goroutines compared");
    eprintln!(
        "prometheus: {same} goroutines equal to /debug/pprof/goroutine?debug=2 ({} in its dump, {} in goprobe's)",
        want.len(),
        got.len()
    );
    drop(guard);
}
