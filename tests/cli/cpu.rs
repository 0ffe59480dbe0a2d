//! `record --cpu` against the cpuwork fixture: samples carry the span of
//! the route that burns the CPU, the converted profile shows where, it
//! agrees with the profile the program writes of itself (runtime/pprof),
//! and every sampled pc is symbolized as the Go toolchain does it. Panic
//! stacks of the same fixture: `panics.rs`.

// The tests report what they measured (attribution, top 5, symbolized pcs).
#![allow(clippy::print_stderr)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use goprobe::sample::CpuSample;
use goprobe::span::Span;

use crate::common;
use crate::start;

/// A recording's lines: spans and CPU samples.
pub fn records(out: &str) -> (Vec<Span>, Vec<CpuSample>) {
    let mut spans = Vec::new();
    let mut samples = Vec::new();
    for l in out.lines() {
        if l.starts_with(r#"{"type":"cpu_sample""#) {
            samples.push(CpuSample::from_json_line(l).unwrap_or_else(|e| panic!("{l}: {e}")));
        } else {
            spans.push(Span::from_json_line(l).unwrap_or_else(|e| panic!("{l}: {e}")));
        }
    }
    (spans, samples)
}

/// The cpuwork fixture of a Go version and variant, started with ServeMux
/// patterns on (its go.mod says 1.19), so spans are named by route.
pub fn cpuwork(go: &str, variant: &str) -> (common::CorpusEntry, common::Server) {
    let entry = common::corpus_binary(go, "cpuwork", variant);
    let server = common::Server::start_env(&entry.binary, &[("GODEBUG", "httpmuxgo121=0")]);
    (entry, server)
}

/// The newest corpus toolchain (its `go tool pprof`, `go tool addr2line`).
fn newest_go() -> String {
    let key = |v: &str| -> Vec<u32> { v.split('.').filter_map(|p| p.parse().ok()).collect() };
    common::manifest()
        .into_iter()
        .map(|b| b.go_version)
        .max_by(|a, b| key(a).cmp(&key(b)))
        .expect("corpus versions")
}

/// `go tool pprof -top` of a profile: the functions by flat value, largest first.
fn pprof_top(profile: &Path, extra: &[&str]) -> Vec<(String, f64)> {
    let mut cmd = common::go(&newest_go());
    cmd.args(["tool", "pprof", "-top", "-nodecount=20"])
        .args(extra)
        .arg(profile);
    let text = common::output(cmd);
    let mut rows = Vec::new();
    let mut in_table = false;
    for line in text.lines() {
        if line.trim_start().starts_with("flat") {
            in_table = true;
            continue;
        }
        if !in_table {
            continue;
        }
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.len() < 6 {
            continue;
        }
        let flat = cols[0].trim_end_matches(|c: char| c.is_ascii_alphabetic());
        let scale = if cols[0].ends_with("ms") { 1e-3 } else { 1.0 };
        let name = cols[5..].join(" ").trim_end_matches(" (inline)").to_owned();
        rows.push((name, flat.parse::<f64>().unwrap_or(0.0) * scale));
    }
    rows
}

fn convert(to: &str, input: &Path, output: &Path, extra: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_goprobe"))
        .args(["convert", "--to", to])
        .args(extra)
        .arg(input)
        .arg("-o")
        .arg(output)
        .output()
        .expect("goprobe convert");
    assert!(
        out.status.success(),
        "convert --to {to}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Record `server` with `--cpu` while `load` runs; the recording's lines.
fn record_cpu(server: &common::Server, hz: &str, load: impl FnOnce()) -> String {
    let pid = server.pid().to_string();
    let run = start(&["record", "--pid", &pid, &format!("--cpu={hz}")]);
    load();
    // Samples taken last are in the ring buffer a moment longer.
    std::thread::sleep(Duration::from_millis(300));
    run.interrupt();
    let (code, out, err) = run.finish();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("CPU samples"), "{err}");
    out
}

pub fn tmp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("goprobe-cpu-{}-{name}", std::process::id()))
}

/// While the CPU-heavy route runs, (nearly) every sample of the target
/// carries its span; the sleeping route and the idle period get (almost)
/// none; pprof narrowed to the route puts its burning function first.
#[test]
fn samples_carry_the_span_of_the_route_that_burns() {
    let (_entry, server) = cpuwork("1.26", "pie-stripped");
    let addr = server.addr.clone();
    let idle_start = std::sync::Mutex::new((0u64, 0u64));
    let out = record_cpu(&server, "99", || {
        let wall = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .expect("clock")
                .as_nanos() as u64
        };
        let t0 = wall();
        std::thread::sleep(Duration::from_millis(1000));
        *idle_start.lock().expect("lock") = (t0, wall());
        std::thread::scope(|s| {
            s.spawn(|| assert_eq!(common::get(&addr, "/sleep?ms=1500"), 200));
            s.spawn(|| assert_eq!(common::get(&addr, "/burn?units=800"), 200));
        });
        assert_eq!(common::get(&addr, "/burn-inline?units=400"), 200);
    });
    let (spans, samples) = records(&out);
    let span = |name: &str| {
        spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no {name} span in {out}"))
    };
    let burn = span("GET /burn");
    let sleep = span("GET /sleep");
    let inline = span("GET /burn-inline");
    let during = |s: &Span| {
        let (a, b) = (s.start_time_unix_nano, s.end_time_unix_nano);
        samples
            .iter()
            .filter(move |x| (a..=b).contains(&x.time_unix_nano))
    };
    let total = during(burn).count();
    let in_burn = during(burn)
        .filter(|x| x.span_id == Some(burn.span_id))
        .count();
    assert!(total >= 20, "{total} samples during GET /burn");
    let rate = in_burn as f64 / total as f64;
    eprintln!(
        "attribution: {in_burn} of {total} samples during GET /burn carry its span ({:.1}%)",
        100.0 * rate
    );
    assert!(
        rate >= 0.9,
        "only {in_burn} of {total} samples carry GET /burn"
    );
    let in_sleep = samples
        .iter()
        .filter(|x| x.span_id == Some(sleep.span_id))
        .count();
    assert!(in_sleep <= 2, "{in_sleep} samples in GET /sleep");
    let (i0, i1) = *idle_start.lock().expect("lock");
    let idle = samples
        .iter()
        .filter(|x| (i0..i1).contains(&x.time_unix_nano))
        .count();
    assert!(idle <= 5, "{idle} samples in the idle second");
    for x in samples.iter().filter(|x| x.span_id == Some(burn.span_id)) {
        assert_eq!(x.trace_id, Some(burn.trace_id));
        assert_eq!(x.local_root_span_name.as_deref(), Some("GET /burn"));
        assert_eq!(x.attribute_str("http.route"), Some("/burn"));
    }
    let inline_leaf = samples
        .iter()
        .filter(|x| x.span_id == Some(inline.span_id))
        .filter(|x| {
            x.stack
                .first()
                .is_some_and(|f| f.function == "main.burnInline" && f.inlined)
        })
        .count();
    assert!(
        inline_leaf >= 10,
        "{inline_leaf} inlined main.burnInline leaves"
    );
    let known: usize = samples
        .iter()
        .filter(|x| x.attributes.contains_key("goroutine.id"))
        .count();
    let states: BTreeMap<String, usize> = samples.iter().fold(BTreeMap::new(), |mut m, x| {
        let st = x.attribute_str("goroutine.state").unwrap_or("?").to_owned();
        *m.entry(st).or_insert(0) += 1;
        m
    });
    eprintln!(
        "goroutine known for {known} of {} samples; states {states:?}",
        samples.len()
    );

    let rec = tmp("burn.ndjson");
    std::fs::write(&rec, &out).expect("write recording");
    let pb = tmp("burn.pb.gz");
    convert("pprof", &rec, &pb, &[]);
    let top = pprof_top(&pb, &["-tagfocus", "span_name=GET /burn"]);
    assert_eq!(
        top.first().map(|t| t.0.as_str()),
        Some("main.burn"),
        "{top:?}"
    );
    let top = pprof_top(&pb, &["-tagfocus", "span_name=GET /burn-inline"]);
    assert_eq!(
        top.first().map(|t| t.0.as_str()),
        Some("main.burnInline"),
        "{top:?}"
    );
    let folded = tmp("burn.folded");
    convert("folded", &rec, &folded, &["--span-name", "GET /burn"]);
    let text = std::fs::read_to_string(&folded).expect("folded");
    assert!(!text.is_empty());
    for l in text.lines() {
        assert!(l.starts_with("GET /burn;"), "{l}");
    }
    assert!(text.contains(";main.main.func1;main.burn "), "{text}");
    let trace = burn.trace_id.to_string();
    convert("folded", &rec, &folded, &["--trace-id", &trace]);
    let one = std::fs::read_to_string(&folded).expect("folded");
    assert!(
        !one.is_empty() && one.lines().all(|l| l.starts_with("GET /burn;")),
        "{one}"
    );
    let svg = tmp("burn.svg");
    convert("flamegraph", &rec, &svg, &["--span-name", "GET /burn"]);
    assert!(
        std::fs::read_to_string(&svg)
            .expect("svg")
            .contains("main.burn")
    );
    let chrome = tmp("burn.json");
    convert("chrome", &rec, &chrome, &[]);
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&chrome).expect("chrome")).expect("json");
    let events = v["traceEvents"].as_array().expect("events");
    let burn_tid = events
        .iter()
        .find(|e| e["ph"] == "X" && e["name"] == "GET /burn")
        .expect("burn span")["tid"]
        .clone();
    assert!(
        events
            .iter()
            .filter(|e| e["cat"] == "cpu" && e["tid"] == burn_tid)
            .count()
            >= in_burn
    );
    for p in [rec, pb, folded, svg, chrome] {
        let _ = std::fs::remove_file(p);
    }
}

/// The five functions the profile names first are those of the profile
/// the program writes of itself with runtime/pprof over the same load.
///
/// With asynchronous preemption off: the runtime's own profile puts about
/// half the samples of a tight loop in `runtime.asyncPreempt` (its SIGPROF
/// lands where the preemption signal's handler has just sent the
/// goroutine), where the kernel's clock, sampling the pc itself, finds the
/// loop. Without preemption signals both profile the same code.
#[test]
fn top_five_agree_with_runtime_pprof() {
    let entry = common::corpus_binary("1.26", "cpuwork", "default");
    let server = common::Server::start_env(
        &entry.binary,
        &[("GODEBUG", "httpmuxgo121=0,asyncpreemptoff=1")],
    );
    let addr = server.addr.clone();
    let own = tmp("own.pb.gz");
    let own_s = own.display().to_string();
    // Both at 499 Hz over the ~3.7 s of CPU the load takes: ~1,800 samples
    // for goprobe, half that for the runtime (whose signals miss some at
    // this rate), so even the smallest of the five (1/31) gets ~30 there.
    let out = record_cpu(&server, "499", || {
        assert_eq!(
            common::get(&addr, &format!("/pprof/start?file={own_s}&hz=499")),
            200
        );
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    for _ in 0..4 {
                        assert_eq!(common::get(&addr, "/mix?units=12"), 200);
                    }
                });
            }
        });
        assert_eq!(common::get(&addr, "/pprof/stop"), 200);
    });
    let rec = tmp("mix.ndjson");
    std::fs::write(&rec, &out).expect("write recording");
    let pb = tmp("mix.pb.gz");
    convert("pprof", &rec, &pb, &[]);
    let ours = pprof_top(&pb, &[]);
    let theirs = pprof_top(&own, &[]);
    let names = |t: &[(String, f64)]| t.iter().take(5).map(|x| x.0.clone()).collect::<Vec<_>>();
    eprintln!("goprobe top 5:       {:?}", &ours[..ours.len().min(5)]);
    eprintln!("runtime/pprof top 5: {:?}", &theirs[..theirs.len().min(5)]);
    assert_eq!(names(&ours), names(&theirs));
    assert_eq!(
        names(&ours),
        [
            "main.mixA",
            "main.mixB",
            "main.mixC",
            "main.mixD",
            "main.mixE"
        ]
    );
    for p in [rec, pb, own] {
        let _ = std::fs::remove_file(p);
    }
}

/// `go tool addr2line BIN` on `pcs`: (function, file:line) per pc.
fn addr2line(bin: &Path, pcs: &[u64]) -> Vec<(String, String)> {
    use std::io::Write;
    let mut cmd = common::go(&newest_go());
    cmd.args(["tool", "addr2line"]).arg(bin);
    let mut child = cmd
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("go tool addr2line");
    let input: String = pcs.iter().map(|pc| format!("{pc:#x}\n")).collect();
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("addr2line");
    writer.join().expect("writer").expect("write pcs");
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2 * pcs.len(), "two lines per pc");
    lines
        .chunks(2)
        .map(|c| (c[0].to_owned(), c[1].to_owned()))
        .collect()
}

/// `llvm-symbolizer` on a binary's DWARF: per pc, the chain of
/// (function, file:line), innermost first.
fn dwarf_chains(bin: &Path, pcs: &[u64]) -> Vec<Vec<(String, String)>> {
    let input: String = pcs.iter().map(|pc| format!("{pc:#x}\n")).collect();
    let out = Command::new("llvm-symbolizer-14")
        .args([
            "--inlining",
            "--functions=linkage",
            "--relativenames",
            "--obj",
        ])
        .arg(bin)
        .args(input.split_whitespace())
        .output()
        .expect("llvm-symbolizer-14 (scripts/setup.sh installs llvm-14)");
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    text.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|block| {
            block
                .lines()
                .collect::<Vec<_>>()
                .chunks(2)
                .map(|c| {
                    let pos = c.get(1).copied().unwrap_or("");
                    let pos = pos.rsplit_once(':').map_or(pos, |(fl, _)| fl);
                    (c[0].to_owned(), pos.to_owned())
                })
                .collect()
        })
        .collect()
}

/// Every pc sampled in stripped and PIE builds of Go 1.19, 1.23 and 1.26
/// names the function and file:line `go tool addr2line` gives on the
/// unstripped twin (the physical function, the innermost position), and
/// the inlined calls at it are the chain the twin's DWARF describes.
#[test]
fn sampled_pcs_symbolize_as_the_go_toolchain_does() {
    for go in ["1.19", "1.23", "1.26"] {
        for variant in ["stripped", "pie-stripped"] {
            let (entry, server) = cpuwork(go, variant);
            let addr = server.addr.clone();
            let out = record_cpu(&server, "999", || {
                assert_eq!(common::get(&addr, "/burn?units=60"), 200);
                assert_eq!(common::get(&addr, "/burn-inline?units=60"), 200);
                assert_eq!(common::get(&addr, "/mix?units=2"), 200);
                assert_eq!(common::get(&addr, "/sleep?ms=20"), 200);
            });
            let (_, samples) = records(&out);
            let twin = goprobe::gobin::GoBinary::open(&entry.unstripped).expect("twin");
            let fns = twin.function_table().expect("functions");
            let lo = fns.iter().map(|f| f.address).min().unwrap_or(0);
            let hi = fns.iter().map(|f| f.address + f.size).max().unwrap_or(0);
            // Each pc once, with the frames goprobe gave it.
            let mut at: BTreeMap<u64, Vec<goprobe::sample::StackFrame>> = BTreeMap::new();
            for s in &samples {
                for g in goprobe::export::cpu::by_pc(&s.stack) {
                    let pc = g[0].pc;
                    if (lo..hi).contains(&pc) {
                        at.entry(pc).or_insert_with(|| g.to_vec());
                    }
                }
            }
            let label = format!("go{} cpuwork {variant}", entry.go_version);
            assert!(at.len() >= 20, "{label}: only {} distinct pcs", at.len());
            let pcs: Vec<u64> = at.keys().copied().collect();
            let want = addr2line(&entry.unstripped, &pcs);
            let mut bad = Vec::new();
            for (pc, (want_fn, want_pos)) in pcs.iter().zip(&want) {
                let g = &at[pc];
                let (inner, outer) = (&g[0], &g[g.len() - 1]);
                // No line table entry: addr2line says `:-1` where the
                // runtime (and goprobe) say `?:0`.
                let pos = match (inner.file.as_str(), inner.line) {
                    ("?", 0) => ":-1".to_owned(),
                    (file, line) => format!("{file}:{line}"),
                };
                if &outer.function != want_fn || &pos != want_pos {
                    bad.push(format!(
                        "{pc:#x}: {} {pos}; addr2line {want_fn} {want_pos}",
                        outer.function
                    ));
                }
            }
            let inlined: Vec<u64> = pcs
                .iter()
                .copied()
                .filter(|pc| {
                    at[pc].len() > 1 && at[pc].last().is_some_and(|f| f.file != "<autogenerated>")
                })
                .collect();
            let chains = dwarf_chains(&entry.unstripped, &inlined);
            assert_eq!(
                chains.len(),
                inlined.len(),
                "{label}: llvm-symbolizer blocks"
            );
            for (pc, chain) in inlined.iter().zip(&chains) {
                let got: Vec<(String, String)> = at[pc]
                    .iter()
                    .map(|f| (f.function.clone(), format!("{}:{}", f.file, f.line)))
                    .collect();
                if &got != chain {
                    bad.push(format!("{pc:#x}: inlined {got:?}; DWARF {chain:?}"));
                }
            }
            eprintln!(
                "{label}: {} sampled pcs ({} with inlined calls) as the toolchain says",
                pcs.len() - bad.len().min(pcs.len()),
                inlined.len()
            );
            assert!(bad.is_empty(), "{label}:\n{}", bad.join("\n"));
            assert!(!inlined.is_empty(), "{label}: no inlined frames sampled");
        }
    }
}

/// `attach --cpu=HZ` streams the raw samples (probe `cpu.sample`) with the
/// period HZ gives, the stack symbolized and the goroutine told; a rate out
/// of range is refused in one line with exit status 2.
#[test]
fn attach_streams_raw_samples_at_the_rate_asked() {
    let (_entry, server) = cpuwork("1.26", "stripped");
    let addr = server.addr.clone();
    let pid = server.pid().to_string();
    let run = start(&[
        "attach",
        "--pid",
        &pid,
        "--probes",
        "cpu.sample",
        "--cpu=199",
    ]);
    assert_eq!(common::get(&addr, "/burn?units=300"), 200);
    std::thread::sleep(Duration::from_millis(300));
    run.interrupt();
    let (code, out, err) = run.finish();
    assert_eq!(code, 0, "{err}");
    let samples: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .filter(|v: &serde_json::Value| v["type"] == "event" && v["probe"] == "cpu.sample")
        .collect();
    assert!(samples.len() >= 20, "{} samples: {err}", samples.len());
    let mut in_burn = 0;
    for s in &samples {
        assert_eq!(s["pid"].as_u64(), Some(u64::from(server.pid())), "{s}");
        assert_eq!(
            s["fields"]["period_ns"].as_u64(),
            Some(1_000_000_000 / 199),
            "{s}"
        );
        if s["fields"]["stack"][0]["function"] == "main.burn" {
            in_burn += 1;
            assert!(s["goroutine"].as_u64().is_some_and(|g| g > 0), "{s}");
            assert_eq!(s["fields"]["goroutine_state"], "running", "{s}");
        }
    }
    assert!(
        in_burn * 10 >= samples.len() * 8,
        "{in_burn} of {} in main.burn",
        samples.len()
    );

    let out = Command::new(env!("CARGO_BIN_EXE_goprobe"))
        .args(["attach", "--pid", &pid, "--cpu=0"])
        .output()
        .expect("goprobe");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("0 is not in 1..=10000"), "{err}");
}
