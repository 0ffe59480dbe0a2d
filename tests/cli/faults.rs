//! Faults, as tests (root, loopback only, bounded in time): goprobe killed
//! mid-recording, the target killed mid-request, a burst into a tiny ring
//! buffer, a long run compared byte for byte with an unrecorded one, two
//! recordings of one process.

// These tests report what they measured.
#![allow(clippy::print_stderr)]

use std::time::{Duration, Instant};

use goprobe::loss::LostLine;
use goprobe::span::{AttrValue, SpanKind, StatusCode};

use crate::common::{self, load};
use crate::{spans, start};

/// The `lost` lines of a recording, by reason.
fn lost(out: &str) -> goprobe::loss::Losses {
    let mut l = goprobe::loss::Losses::default();
    for line in out.lines() {
        if let Some(Ok(x)) = LostLine::parse(line.as_bytes()) {
            l.add(&x.reason, x.count);
        }
    }
    l
}

/// Where goprobe puts breakpoints in process `pid` (a position-dependent
/// binary: addresses are link-time ones), with the bytes there in the file.
fn probe_points(pid: u32) -> Vec<(u64, u8)> {
    let bin = goprobe::gobin::GoBinary::open_pid(pid).expect("open target");
    // What `record` attaches by default (opt-in probes left out).
    let probes = goprobe::attach::parse_probes(goprobe::attach::DEFAULT_PROBES).expect("probes");
    let plan = goprobe::attach::Plan::new(&bin, Some(pid), &probes, None).expect("plan");
    let mut out = Vec::new();
    for h in plan.hooks() {
        let p = goprobe::bpf::rets::probe_points(&h.code, h.address).expect("decode");
        let entry = h.entry_program.as_ref().map(|_| p.entry);
        let rets = h
            .return_program
            .as_ref()
            .map(|_| p.rets.clone())
            .unwrap_or_default();
        for off in entry.into_iter().chain(rets) {
            out.push((h.address + off, h.code[off as usize]));
        }
    }
    assert!(!out.is_empty());
    out
}

/// The bytes of process `pid`'s memory at `addrs`, as it executes them.
fn memory_at(pid: u32, addrs: &[(u64, u8)]) -> Vec<u8> {
    use std::os::unix::fs::FileExt;
    let mem = std::fs::File::open(format!("/proc/{pid}/mem")).expect("open mem");
    addrs
        .iter()
        .map(|(a, _)| {
            let mut b = [0u8];
            mem.read_exact_at(&mut b, *a).expect("read mem");
            b[0]
        })
        .collect()
}

/// BPF links on the machine holding uprobes in process `pid`.
fn uprobes_in(pid: u32) -> Vec<goprobe::bpf::KernelUprobes> {
    let exe = format!("/proc/{pid}/exe");
    let real = std::fs::read_link(&exe).expect("exe");
    goprobe::bpf::kernel_uprobes()
        .expect("list the kernel's BPF links")
        .into_iter()
        .filter(|u| u.pid == Some(pid) || (u.pid.is_none() && u.path == real.display().to_string()))
        .collect()
}

const PATHS: &[&str] = &["/hello", "/fail", "/call", "/sleep?ms=1"];

/// `kill -9` of goprobe mid-recording: the target keeps answering, byte
/// for byte as before, and the kernel holds no uprobe of goprobe's in it:
/// none of its BPF links, every breakpoint gone from the target's code.
#[test]
fn kill_9_leaves_the_target_serving_and_no_uprobe() {
    let entry = common::corpus_binary("1.26", "httpserver", "default");
    let server = common::Server::start_env(&entry.binary, &[("GODEBUG", "httpmuxgo121=0")]);
    let pid = server.pid();
    let points = probe_points(pid);
    let original: Vec<u8> = points.iter().map(|(_, b)| *b).collect();
    assert_eq!(memory_at(pid, &points), original, "no breakpoint before");
    let before = load::run(&server.addr, PATHS, 200, 2)
        .uniform()
        .expect("uniform");

    let run = start(&["record", "--pid", &pid.to_string()]);
    // The check itself: attached, every point is a breakpoint (int3).
    let mem = memory_at(pid, &points);
    assert!(mem.iter().all(|b| *b == 0xcc), "{mem:x?} at {points:x?}");
    assert!(!uprobes_in(pid).is_empty());
    let killer = {
        let id = run.child.id() as i32;
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            // SAFETY: kill with a valid pid and signal has no memory effects.
            unsafe { libc::kill(id, libc::SIGKILL) };
        })
    };
    let during = load::run(&server.addr, PATHS, 2000, 4);
    killer.join().expect("killer");
    let (code, out, _) = run.finish();
    assert_eq!(code, -1, "killed by a signal");
    // Every line it wrote is whole.
    spans(&out);
    for (path, seen) in &during.responses {
        assert_eq!(seen.keys().collect::<Vec<_>>(), [&before[path]], "{path}");
    }
    let after = load::run(&server.addr, PATHS, 200, 2)
        .uniform()
        .expect("uniform");
    assert_eq!(after, before);
    // The kernel removes the uprobes as the killed process's files close.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !uprobes_in(pid).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(uprobes_in(pid), []);
    assert_eq!(memory_at(pid, &points), original, "breakpoints removed");
    let tracefs = std::fs::read_to_string("/sys/kernel/tracing/uprobe_events").unwrap_or_default();
    assert!(
        !tracefs.contains(&entry.binary.display().to_string()),
        "{tracefs}"
    );
}

/// The target killed (SIGKILL) while serving a request: the request's span
/// is still written, marked unfinished, ended when the process died.
#[test]
fn target_killed_mid_request_leaves_its_span_marked() {
    let entry = common::corpus_binary("1.26", "httpserver", "default");
    let mut server = common::Server::start_env(&entry.binary, &[("GODEBUG", "httpmuxgo121=0")]);
    let pid = server.pid().to_string();
    let run = start(&["record", "--pid", &pid]);
    assert_eq!(common::get(&server.addr, "/hello"), 200);
    let addr = server.addr.clone();
    let slow = std::thread::spawn(move || common::get(&addr, "/sleep?ms=20000"));
    std::thread::sleep(Duration::from_millis(500));
    server.child.kill().expect("kill target");
    let _ = server.child.wait();
    assert_eq!(
        slow.join().expect("client"),
        0,
        "no answer from a killed server"
    );
    let (code, out, err) = run.finish();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("target exited"), "{err}");
    let all = spans(&out);
    assert_eq!(all.len(), 2, "{out}");
    let sleep = all
        .iter()
        .find(|s| s.attributes.get("url.path") == Some(&AttrValue::from("/sleep")))
        .expect("the unfinished request's span");
    assert_eq!(sleep.kind, SpanKind::Server);
    assert_eq!(sleep.status.code, StatusCode::Error);
    assert_eq!(
        sleep.status.message.as_deref(),
        Some("process exited while serving the request")
    );
    assert_eq!(
        sleep.attributes["goprobe.unfinished"],
        AttrValue::Bool(true)
    );
    assert!(!sleep.attributes.contains_key("http.response.status_code"));
    let took = sleep.end_time_unix_nano - sleep.start_time_unix_nano;
    assert!(
        (400_000_000..10_000_000_000).contains(&took),
        "ends when the process died: {took} ns"
    );
}

/// A burst into a deliberately tiny ring buffer: every request is a span
/// or a counted loss, exactly.
#[test]
fn tiny_ring_buffer_accounts_for_every_request() {
    let entry = common::corpus_binary("1.26", "httpserver", "default");
    let server = common::Server::start(&entry.binary);
    let pid = server.pid().to_string();
    // 4 KiB holds four server events; the reader wakes every 100 ms.
    let run = start(&[
        "record",
        "--pid",
        &pid,
        "--probes",
        "http.server",
        "--ring-buffer-size",
        "4096",
    ]);
    let sent = 3000;
    let burst = load::run(&server.addr, &["/hello"], sent, 8);
    assert_eq!(burst.answered, sent);
    std::thread::sleep(Duration::from_millis(300));
    run.interrupt();
    let (code, out, err) = run.finish();
    assert_eq!(code, 0, "{err}");
    let written = spans(&out).len() as u64;
    let l = lost(&out);
    let dropped = l.get(goprobe::loss::RINGBUF_FULL);
    eprintln!("tiny ring buffer: {sent} requests = {written} spans + {dropped} ringbuf_full");
    assert!(dropped > 0, "the burst must overflow 4 KiB: {err}");
    assert_eq!(l.total(goprobe::loss::Effect::SpanLost), dropped, "{l:?}");
    assert_eq!(written + dropped, sent, "{err}");
    assert_eq!(l.get(goprobe::loss::UNPAIRED_RETURN), 0);
    // The summary says the same.
    assert!(
        err.contains(&format!("{written} spans ("))
            && err.contains(&format!("{dropped} events lost")),
        "{err}"
    );
    assert!(err.contains(&format!("ringbuf_full {dropped}")), "{err}");
}

/// Requests while recording get byte-for-byte the answers of an unrecorded
/// run; record's memory stays bounded. `GOPROBE_VOLUME` sets the number of
/// requests (CI: 100,000; benches/faults.sh runs a million).
#[test]
fn volume_run_is_identical_and_bounded() {
    let n: u64 = std::env::var("GOPROBE_VOLUME")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let entry = common::corpus_binary("1.26", "httpserver", "default");
    let server = common::Server::start_env(&entry.binary, &[("GODEBUG", "httpmuxgo121=0")]);
    let pid = server.pid();
    let paths = &["/hello", "/fail", "/sleep?ms=0"];
    let plain = load::run(&server.addr, paths, n, 4);
    let reference = plain.uniform().expect("uniform without recording");
    let dir = std::env::temp_dir().join(format!("goprobe-volume-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("spans.ndjson");
    let run = start(&[
        "record",
        "--pid",
        &pid.to_string(),
        "-o",
        file.to_str().expect("utf-8"),
    ]);
    let recorded = load::run(&server.addr, paths, n, 4);
    std::thread::sleep(Duration::from_millis(300));
    let rss = load::peak_rss_kib(run.child.id()).expect("VmHWM");
    run.interrupt();
    let (code, _, err) = run.finish();
    assert_eq!(code, 0, "{err}");
    assert_eq!(recorded.answered, n);
    assert_eq!(
        recorded.uniform().expect("uniform while recording"),
        reference
    );
    let text = std::fs::read_to_string(&file).expect("spans");
    let _ = std::fs::remove_dir_all(&dir);
    let written = spans(&text).len() as u64;
    let l = lost(&text);
    let unfinished = spans(&text)
        .iter()
        .filter(|s| s.attributes.contains_key("goprobe.unfinished"))
        .count();
    eprintln!(
        "volume: {n} requests, unrecorded {:.1}s, recorded {:.1}s, {written} spans ({unfinished} unfinished), {}, record peak RSS {} MiB",
        plain.elapsed.as_secs_f64(),
        recorded.elapsed.as_secs_f64(),
        l.accounting(),
        rss / 1024
    );
    assert_eq!(
        written + l.total(goprobe::loss::Effect::SpanLost),
        n,
        "{err}"
    );
    assert!(rss < 200 * 1024, "record's peak RSS {rss} KiB");
}

/// Two recordings of one process at once: both see every request.
#[test]
fn two_recordings_of_one_pid_both_complete() {
    let entry = common::corpus_binary("1.21", "httpserver", "default");
    let server = common::Server::start(&entry.binary);
    let pid = server.pid().to_string();
    let a = start(&["record", "--pid", &pid]);
    let b = start(&["record", "--pid", &pid, "--duration", "30s"]);
    for _ in 0..20 {
        assert_eq!(common::get(&server.addr, "/call"), 200);
    }
    std::thread::sleep(Duration::from_millis(300));
    a.interrupt();
    b.interrupt();
    for run in [a, b] {
        let (code, out, err) = run.finish();
        assert_eq!(code, 0, "{err}");
        let all = spans(&out);
        // 20 × (/call, the /hello it makes, the client call between them).
        assert_eq!(all.len(), 60, "{err}");
        assert_eq!(
            all.iter().filter(|s| s.kind == SpanKind::Client).count(),
            20
        );
        assert!(err.contains("lost 0 "), "{err}");
    }
}
