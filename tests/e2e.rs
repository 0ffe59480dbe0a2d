//! End to end, as root: attach goprobe's eBPF programs to real Go HTTP
//! servers from the fixture corpus and check every call comes back with the
//! right facts. Fails (never skips) without root, eBPF or the corpus.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use goprobe::attach::{FamilyPlan, Hook, Offsets, Plan, Session};
use goprobe::bpf::abi::GpConfig;
use goprobe::probes::Family;
use goprobe::probes::family::Decode;
use goprobe::stream::RawEvent;

/// Attach both HTTP probes (and goroutine creation) to the binary, with
/// offsets from the unstripped twin's DWARF. The hooks come from the
/// catalog; a test below checks their addresses against the symbol table.
fn session(entry: &common::CorpusEntry, pid: Option<u32>) -> Session {
    let (plan, bin) = plan(entry, pid);
    let mut warnings = Vec::new();
    Session::start(&plan, Some(bin), false, &mut warnings).expect("attach")
}

fn plan(entry: &common::CorpusEntry, pid: Option<u32>) -> (Plan, goprobe::gobin::GoBinary) {
    common::require_root();
    let offsets = Offsets::from_ndjson(&common::dwarf_offsets(
        &entry.unstripped,
        common::HTTP_FIELDS,
    ))
    .expect("offsets");
    let bin = goprobe::gobin::GoBinary::open(&entry.binary).expect("open");
    let probes: Vec<String> = ["http.server", "http.client", "go.spawn"]
        .map(String::from)
        .to_vec();
    let plan = Plan::new(&bin, pid, &probes, Some(offsets)).expect("plan");
    assert!(plan.skipped.is_empty(), "{:?}", plan.skipped);
    for h in plan.hooks() {
        let (address, file_offset, _, _) = common::symbol_function(&entry.unstripped, &h.function);
        assert_eq!(
            (h.address, h.file_offset),
            (address, file_offset),
            "{}",
            h.function
        );
    }
    (plan, bin)
}

/// Poll until `n` events of `probe` arrived or `timeout` passed.
fn collect(s: &mut Session, probe: &str, n: usize, timeout: Duration) -> Vec<RawEvent> {
    let deadline = Instant::now() + timeout;
    let mut out = Vec::new();
    while out.iter().filter(|e: &&RawEvent| e.probe == probe).count() < n
        && Instant::now() < deadline
    {
        s.poll(Duration::from_millis(50), |e| out.push(e))
            .expect("poll");
    }
    // Anything else that is already there (extra events would be a bug).
    std::thread::sleep(Duration::from_millis(100));
    s.drain(|e| out.push(e));
    out
}

fn server_calls_are_seen_once_with_fields(go: &str, variant: &str) {
    let entry = common::corpus_binary(go, "httpserver", variant);
    let server = common::Server::start(&entry.binary);
    let mut s = session(&entry, Some(server.pid()));
    let cases = [
        ("/hello", 200),
        ("/fail", 500),
        ("/missing", 404),
        ("/sleep?ms=50", 200),
    ];
    for (path, want) in cases {
        assert_eq!(common::get(&server.addr, path), want, "{path}");
    }
    let events = collect(&mut s, "http.server", cases.len(), Duration::from_secs(10));
    let servers: Vec<&RawEvent> = events.iter().filter(|e| e.probe == "http.server").collect();
    assert_eq!(
        servers.len(),
        cases.len(),
        "one server event per request: {events:#?}"
    );
    for ((path, want), ev) in cases.iter().zip(&servers) {
        let p = path.split('?').next().unwrap_or(path);
        assert_eq!(ev.pid, server.pid());
        assert_eq!(ev.fields["method"], "GET");
        assert_eq!(ev.fields["path"], p, "{ev:?}");
        assert_eq!(ev.fields["proto"], "HTTP/1.1");
        assert_eq!(ev.fields["host"], server.addr.as_str());
        assert!(
            ev.fields["peer"]
                .as_str()
                .is_some_and(|s| s.starts_with("127.0.0.1:")),
            "{ev:?}"
        );
        let status = ev
            .fields
            .get("status")
            .and_then(|v| v.as_i64())
            .unwrap_or(200);
        assert_eq!(status, *want as i64, "{ev:?}");
        assert!(ev.goroutine > 0 && ev.end_ns > ev.start_ns);
        assert!(!ev.fields.contains_key("read_failed"), "{ev:?}");
    }
    let sleep = servers[3];
    let ms = (sleep.end_ns - sleep.start_ns) / 1_000_000;
    assert!((50..1000).contains(&ms), "/sleep?ms=50 took {ms} ms");
    let lost: HashMap<_, _> = s.lost_totals().into_iter().collect();
    assert_eq!(lost["ringbuf_full"] + lost["inflight_map_full"], 0);
}

#[test]
fn server_go119_default() {
    server_calls_are_seen_once_with_fields("1.19", "default");
}

#[test]
fn server_go121_pie() {
    server_calls_are_seen_once_with_fields("1.21", "pie");
}

#[test]
fn server_go126_stripped() {
    server_calls_are_seen_once_with_fields("1.26", "stripped");
}

/// /call makes an outgoing request on the handler's goroutine: one client
/// event inside the server event of the same goroutine.
#[test]
fn client_call_inside_server_call() {
    let entry = common::corpus_binary("1.26", "httpserver", "default");
    let server = common::Server::start_env(&entry.binary, &[("GODEBUG", "httpmuxgo121=0")]);
    let mut s = session(&entry, Some(server.pid()));
    assert_eq!(common::get(&server.addr, "/call"), 200);
    let events = collect(&mut s, "http.server", 2, Duration::from_secs(10));
    let client: Vec<_> = events.iter().filter(|e| e.probe == "http.client").collect();
    assert_eq!(client.len(), 1, "{events:#?}");
    let c = client[0];
    assert_eq!(c.fields["method"], "GET");
    assert_eq!(c.fields["scheme"], "http");
    assert_eq!(c.fields["host"], server.addr.as_str());
    assert_eq!(c.fields["path"], "/hello");
    assert_eq!(c.fields["status"], 200);
    let outer = events
        .iter()
        .find(|e| e.probe == "http.server" && e.fields["path"] == "/call")
        .expect("server event for /call");
    assert_eq!(outer.goroutine, c.goroutine);
    assert!(outer.start_ns <= c.start_ns && c.end_ns <= outer.end_ns);
    assert_eq!(
        outer.fields.get("route").and_then(|r| r.as_str()),
        Some("/call"),
        "{outer:?}"
    );
}

/// TEST ONLY: a family whose object the kernel's verifier rejects
/// (`ebpf/test/broken.bpf.c`, compiled by build.rs; goprobe never embeds
/// it, and only this test can add it to a plan).
struct Broken;

static BROKEN_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/test_broken.bpf.o"));

impl Family for Broken {
    fn name(&self) -> &'static str {
        "test_broken"
    }
    fn probes(&self) -> &'static [&'static str] {
        &["test.broken"]
    }
    fn object(&self) -> &'static [u8] {
        BROKEN_OBJECT
    }
    fn decode(&self, _record: &[u8], _ctx: &mut Decode<'_>) -> Option<RawEvent> {
        None
    }
}

static BROKEN: Broken = Broken;

/// A family the verifier rejects is reported once, naming the family and
/// the verifier's reason; the families after it still attach and record.
#[test]
fn a_rejected_family_leaves_the_others_recording() {
    let entry = common::corpus_binary("1.26", "httpserver", "default");
    let server = common::Server::start(&entry.binary);
    let (mut plan, bin) = plan(&entry, Some(server.pid()));
    let serve: &Hook = plan
        .hooks()
        .find(|h| h.probe == "http.server")
        .expect("ServeHTTP hook");
    let broken = FamilyPlan {
        family: &BROKEN,
        hooks: vec![Hook {
            probe: "test.broken".into(),
            entry_program: Some("broken_entry".into()),
            return_program: None,
            ..serve.clone()
        }],
        config: GpConfig::default(),
        perf: None,
    };
    // First, so that the others load after the rejection.
    plan.families.insert(0, broken);
    let mut warnings = Vec::new();
    let mut s = Session::start(&plan, Some(bin), false, &mut warnings).expect("attach");
    let about: Vec<&String> = warnings
        .iter()
        .filter(|w| w.contains("test_broken"))
        .collect();
    assert_eq!(about.len(), 1, "{warnings:#?}");
    let w = about[0];
    assert!(!w.contains('\n'), "one line: {w}");
    assert!(
        w.contains("verifier rejected eBPF program broken_entry")
            && w.contains("invalid bpf_context access"),
        "names the program and the verifier's reason: {w}"
    );
    assert!(
        s.probes.iter().any(|p| p == "http.server"),
        "{:?}",
        s.probes
    );
    assert!(!s.probes.iter().any(|p| p == "test.broken"));
    for _ in 0..3 {
        assert_eq!(common::get(&server.addr, "/hello"), 200);
    }
    let events = collect(&mut s, "http.server", 3, Duration::from_secs(10));
    assert_eq!(
        events.iter().filter(|e| e.probe == "http.server").count(),
        3,
        "{events:#?}"
    );
}
