//! `goprobe convert` end to end: every format from the same span NDJSON,
//! checked with outside tools (the official OTLP protobuf definitions in
//! Python, `go tool pprof`, an XML parser, a loopback OTLP/HTTP receiver).

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;

use goprobe::span::Span;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use serde_json::json;

fn goprobe() -> Command {
    Command::new(env!("CARGO_BIN_EXE_goprobe"))
}

fn tmpdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("goprobe-convert-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// Run `goprobe convert ARGS` with `input` on stdin.
fn convert(args: &[&str], input: &str) -> Output {
    let mut child = goprobe()
        .arg("convert")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run goprobe");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_owned();
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().expect("wait");
    writer.join().expect("writer");
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "goprobe convert failed: {:?}\n{}",
        out.status,
        stderr(out)
    );
}

/// A small deterministic generator (xorshift), so the tests need no crate.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `traces` traces of a server span with client and internal children,
/// written children first as `goprobe record` does, with every attribute
/// type, events, error statuses, and one span whose parent is missing.
fn spans(traces: usize, seed: u64) -> Vec<serde_json::Value> {
    let mut rng = Rng(seed | 1);
    let mut out = Vec::new();
    let mut t: u64 = 1_700_000_000_000_000_000;
    for n in 0..traces {
        let trace_id = format!("{:016x}{:016x}", rng.next() | 1, rng.next());
        let root = format!("{:016x}", rng.next() | 1);
        let service = ["users", "orders", "ünïcode svc"][n % 3];
        let resource = json!({"service.name": service, "process.pid": 4100 + (n % 3) as i64,
            "process.executable.path": "/srv/app", "process.runtime.version": "go1.22.10"});
        t += 1_000_000 + rng.below(1_000_000);
        let start = t;
        let dur = 10_000_000 + rng.below(20_000_000);
        let mut children = Vec::new();
        let mut cursor = start + 1_000;
        for c in 0..rng.below(4) {
            let id = format!("{:016x}", rng.next() | 1);
            let cdur = 1_000 + rng.below(dur / 5);
            // Every other child overlaps the previous one (parallel calls).
            let cstart = if c % 2 == 1 {
                cursor.saturating_sub(cdur / 2).max(start)
            } else {
                cursor
            };
            children.push(json!({"trace_id": trace_id, "span_id": id, "parent_span_id": root, "name": "GET",
                "kind": "client", "start_time_unix_nano": cstart, "end_time_unix_nano": cstart + cdur,
                "attributes": {"http.request.method": "GET", "url.full": format!("http://b:8080/x?n={n}"),
                    "server.port": 8080, "http.response.status_code": 200, "ratio": 0.5 + c as f64,
                    "tags": ["a", "b"], "ok": c % 2 == 0},
                "status": {"code": "unset"}, "events": [], "resource": resource}));
            cursor = cstart + cdur + 500;
        }
        let end = (start + dur).max(cursor);
        let error = n % 5 == 4;
        let mut root_span = json!({"trace_id": trace_id, "span_id": root, "name": format!("GET /users/{{id}} #{}", n % 4),
            "kind": "server", "start_time_unix_nano": start, "end_time_unix_nano": end,
            "attributes": {"http.request.method": "GET", "http.route": format!("/users/{{id}}/{}", n % 4),
                "http.response.status_code": if error { 500 } else { 200 }, "big": 9_007_199_254_740_993_i64, "neg": -7},
            "status": if error { json!({"code": "error", "message": "handler panicked"}) } else { json!({"code": "unset"}) },
            "events": [{"name": "exception", "time_unix_nano": start + 10, "attributes": {"exception.type": "panic"}}],
            "resource": resource});
        if n == 1 {
            // Recording started mid-request: this span's parent never arrives.
            root_span["parent_span_id"] = json!("00000000000000ff");
        }
        out.extend(children);
        out.push(root_span);
    }
    out
}

fn ndjson(spans: &[serde_json::Value]) -> String {
    spans.iter().map(|s| format!("{s}\n")).collect()
}

fn parsed(spans: &[serde_json::Value]) -> Vec<Span> {
    spans
        .iter()
        .map(|s| Span::from_json_line(&s.to_string()).expect("test span is valid"))
        .collect()
}

// ---------------------------------------------------------------- otlp-json

#[test]
fn otlp_json_decodes_strictly_with_the_official_definitions_and_round_trips() {
    let input = spans(40, 7);
    let out = convert(&["--to", "otlp-json", "--batch-size", "7"], &ndjson(&input));
    assert_ok(&out);
    let lines = String::from_utf8(out.stdout).expect("utf8");
    assert_eq!(
        lines.lines().count(),
        input.len().div_ceil(7),
        "one request per batch of 7"
    );
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cli/otlp_json_check.py");
    let mut child = Command::new("python3")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is required for this test (scripts/setup.sh installs it)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(lines.as_bytes())
        .expect("feed python");
    let checked = child.wait_with_output().expect("python3");
    let err = String::from_utf8_lossy(&checked.stderr);
    assert_ne!(
        checked.status.code(),
        Some(3),
        "the Python packages opentelemetry-proto and protobuf are missing (scripts/setup.sh installs them): {err}"
    );
    assert!(
        checked.status.success(),
        "strict OTLP/JSON parse failed: {err}"
    );
    let mut decoded: Vec<Span> = String::from_utf8(checked.stdout)
        .expect("utf8")
        .lines()
        .map(|l| Span::from_json_line(l).expect("decoded span in goprobe's schema"))
        .collect();
    let mut expected = parsed(&input);
    decoded.sort_by_key(|s| s.span_id);
    expected.sort_by_key(|s| s.span_id);
    assert_eq!(decoded.len(), expected.len());
    for (d, e) in decoded.iter().zip(&expected) {
        assert_eq!(d, e, "span changed on the round trip");
    }
}

#[test]
fn otlp_json_decodes_with_the_rust_proto_types() {
    let input = spans(10, 3);
    let out = convert(&["--to", "otlp-json"], &ndjson(&input));
    assert_ok(&out);
    let text = String::from_utf8(out.stdout).expect("utf8");
    let mut count = 0;
    for line in text.lines() {
        let request: ExportTraceServiceRequest = serde_json::from_str(line).expect("decodes");
        count += request
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum::<usize>();
        // Grouped by resource within the line.
        let mut services: Vec<_> = request
            .resource_spans
            .iter()
            .map(|r| format!("{:?}", r.resource))
            .collect();
        let n = services.len();
        services.dedup();
        assert_eq!(services.len(), n);
    }
    assert_eq!(count, input.len());
}

// ---------------------------------------------------------------- otlp push

/// How the loopback receiver answers: a list of statuses used in order, then 200.
struct Receiver {
    url: String,
    requests: Arc<Mutex<Vec<ExportTraceServiceRequest>>>,
    attempts: Arc<Mutex<usize>>,
}

fn read_request(stream: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut head = String::new();
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse().ok()?;
        }
        head.push_str(&line);
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).ok()?;
    Some((head, body))
}

fn receiver(script: Vec<(u16, i64)>) -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let attempts = Arc::new(Mutex::new(0));
    let (reqs, tries) = (requests.clone(), attempts.clone());
    thread::spawn(move || {
        let mut script = script.into_iter();
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let Some((head, body)) = read_request(&mut stream) else {
                continue;
            };
            assert!(head.starts_with("POST /v1/traces "), "{head}");
            assert!(
                head.to_ascii_lowercase()
                    .contains("content-type: application/x-protobuf"),
                "{head}"
            );
            *tries.lock().expect("lock") += 1;
            let (status, rejected) = script.next().unwrap_or((200, 0));
            let (reason, payload) = if status == 200 {
                let request =
                    ExportTraceServiceRequest::decode(body.as_slice()).expect("protobuf request");
                reqs.lock().expect("lock").push(request);
                let response = ExportTraceServiceResponse {
                    partial_success: (rejected > 0).then(|| ExportTracePartialSuccess {
                        rejected_spans: rejected,
                        error_message: "too old".to_owned(),
                    }),
                };
                ("OK", response.encode_to_vec())
            } else {
                ("Nope", b"go away\n".to_vec())
            };
            let header = format!(
                "HTTP/1.1 {status} {reason}\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\nRetry-After: 0\r\nConnection: close\r\n\r\n",
                payload.len()
            );
            let _ = stream.write_all(header.as_bytes());
            let _ = stream.write_all(&payload);
        }
    });
    Receiver {
        url,
        requests,
        attempts,
    }
}

fn received_span_ids(r: &Receiver) -> Vec<Vec<u8>> {
    let mut ids: Vec<Vec<u8>> = r
        .requests
        .lock()
        .expect("lock")
        .iter()
        .flat_map(|req| &req.resource_spans)
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans)
        .map(|s| s.span_id.clone())
        .collect();
    ids.sort();
    ids
}

fn input_span_ids(input: &[serde_json::Value]) -> Vec<Vec<u8>> {
    let mut ids: Vec<Vec<u8>> = parsed(input).iter().map(|s| s.span_id.0.to_vec()).collect();
    ids.sort();
    ids
}

#[test]
fn otlp_push_delivers_every_span() {
    let input = spans(60, 11);
    let r = receiver(vec![]);
    let out = convert(
        &["--to", "otlp", "--endpoint", &r.url, "--batch-size", "50"],
        &ndjson(&input),
    );
    assert_ok(&out);
    assert_eq!(received_span_ids(&r), input_span_ids(&input));
    assert_eq!(*r.attempts.lock().expect("lock"), input.len().div_ceil(50));
    assert!(
        stderr(&out).contains(&format!("{} spans accepted, 0 rejected", input.len())),
        "{}",
        stderr(&out)
    );
}

#[test]
fn otlp_push_retries_503_then_succeeds() {
    let input = spans(5, 13);
    let r = receiver(vec![(503, 0), (429, 0)]);
    let out = convert(
        &["--to", "otlp", "--endpoint", &format!("{}/", r.url)],
        &ndjson(&input),
    );
    assert_ok(&out);
    assert_eq!(
        received_span_ids(&r),
        input_span_ids(&input),
        "batch delivered exactly once"
    );
    assert_eq!(*r.attempts.lock().expect("lock"), 3);
}

#[test]
fn otlp_push_counts_partial_success() {
    let input = spans(5, 17);
    let r = receiver(vec![(200, 2)]);
    let out = convert(&["--to", "otlp", "--endpoint", &r.url], &ndjson(&input));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{} spans accepted, 2 rejected (too old)",
            input.len() - 2
        )),
        "{err}"
    );
}

#[test]
fn otlp_push_stops_on_a_permanent_refusal() {
    let r = receiver(vec![(400, 0)]);
    let out = convert(
        &["--to", "otlp", "--endpoint", &r.url],
        &ndjson(&spans(2, 19)),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("refused the batch: HTTP 400: go away"),
        "{err}"
    );
    assert_eq!(*r.attempts.lock().expect("lock"), 1, "a 400 is not retried");
}

#[test]
fn otlp_push_to_a_dead_endpoint_fails_clearly() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let out = convert(
        &["--to", "otlp", "--endpoint", &url, "--max-tries", "2"],
        &ndjson(&spans(2, 23)),
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    let first = err
        .lines()
        .find(|l| l.starts_with("goprobe:"))
        .unwrap_or_default();
    assert!(
        first.contains(&format!(
            "OTLP endpoint {url}/v1/traces unreachable after 2 tries"
        )),
        "{err}"
    );
}

#[test]
fn otlp_needs_an_endpoint() {
    let out = convert(&["--to", "otlp"], "");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--endpoint"));
}

// ---------------------------------------------------------------- pprof

/// A Go toolchain: `$GOPROBE_CACHE/go/1.26.6`, else any in the cache.
fn go() -> PathBuf {
    let cache = std::env::var_os("GOPROBE_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache"));
    let preferred = cache.join("go/1.26.6/go/bin/go");
    if preferred.exists() {
        return preferred;
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(cache.join("go"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("go/bin/go"))
        .filter(|p| p.exists())
        .collect();
    found.sort();
    found.pop().unwrap_or_else(|| {
        panic!(
            "no Go toolchain under {}/go: run tests/fixtures/build-corpus.sh (scripts/setup.sh)",
            cache.display()
        )
    })
}

fn pprof(args: &[&str], file: &Path) -> String {
    let out = Command::new(go())
        .args(["tool", "pprof"])
        .args(args)
        .arg(file)
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .env("PPROF_TMPDIR", std::env::temp_dir())
        .output()
        .expect("run go tool pprof");
    assert!(
        out.status.success(),
        "go tool pprof {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf8")
}

/// (sample count, sum of wall) from `pprof -raw`, whose sample lines read
/// `  spans  wall  self: loc...`.
fn raw_totals(raw: &str) -> (u64, u64) {
    let mut samples = raw
        .lines()
        .skip_while(|l| !l.starts_with("Samples:"))
        .skip(2);
    let (mut count, mut wall) = (0, 0);
    for line in samples.by_ref() {
        if line.starts_with("Locations") || line.starts_with("Mappings") {
            break;
        }
        let Some((values, _)) = line.split_once(':') else {
            continue;
        };
        let values: Vec<u64> = values
            .split_whitespace()
            .filter_map(|v| v.parse().ok())
            .collect();
        if values.len() == 3 {
            count += values[0];
            wall += values[1];
        }
    }
    (count, wall)
}

#[test]
fn pprof_opens_in_go_tool_pprof_with_matching_totals() {
    let input = spans(30, 29);
    let dir = tmpdir("pprof");
    let file = dir.join("spans.pb.gz");
    let out = convert(
        &["--to", "pprof", "-o", file.to_str().expect("path")],
        &ndjson(&input),
    );
    assert_ok(&out);
    let spans = parsed(&input);
    let raw = pprof(&["-raw"], &file);
    let wall: u64 = spans.iter().map(Span::duration_nanos).sum();
    assert_eq!(raw_totals(&raw), (spans.len() as u64, wall), "{raw}");
    assert!(raw.contains("trace_id:["), "labels present: {raw}");
    assert!(raw.contains("http.route:[/users/{id}/"), "{raw}");
    let top = pprof(&["-top", "-sample_index=spans"], &file);
    assert!(top.contains("GET /users/{id} #"), "{top}");
    // -tagfocus on one trace selects just its spans.
    let trace = spans[0].trace_id;
    let in_trace = spans
        .iter()
        .filter(|s| s.trace_id == trace)
        .collect::<Vec<_>>();
    let focused = pprof(&["-raw", &format!("-tagfocus=trace_id={trace}")], &file);
    let wall: u64 = in_trace.iter().map(|s| s.duration_nanos()).sum();
    assert_eq!(
        raw_totals(&focused),
        (in_trace.len() as u64, wall),
        "{focused}"
    );
}

// ---------------------------------------------------------------- folded, flamegraph

/// Self time computed here independently: duration minus the union of the
/// children's intervals clipped to the span; missing parents make roots.
fn self_times(spans: &[Span]) -> HashMap<(String, String), u64> {
    let ids: HashMap<_, _> = spans.iter().map(|s| ((s.trace_id, s.span_id), s)).collect();
    let mut kids: HashMap<_, Vec<(u64, u64)>> = HashMap::new();
    for s in spans {
        if let Some(p) = s
            .parent_span_id
            .filter(|p| ids.contains_key(&(s.trace_id, *p)))
        {
            kids.entry((s.trace_id, p))
                .or_default()
                .push((s.start_time_unix_nano, s.end_time_unix_nano));
        }
    }
    spans
        .iter()
        .map(|s| {
            let mut points: Vec<(u64, u64)> = kids
                .get(&(s.trace_id, s.span_id))
                .cloned()
                .unwrap_or_default();
            points.sort();
            let (lo, hi) = (s.start_time_unix_nano, s.end_time_unix_nano);
            let (mut covered, mut at) = (0, lo);
            for (a, b) in points {
                let (a, b) = (a.max(at), b.min(hi));
                if b > a {
                    covered += b - a;
                    at = b;
                }
            }
            (
                (s.trace_id.to_string(), s.span_id.to_string()),
                (hi - lo) - covered,
            )
        })
        .collect()
}

#[test]
fn folded_totals_equal_self_times() {
    let input = spans(50, 31);
    let out = convert(&["--to", "folded"], &ndjson(&input));
    assert_ok(&out);
    let text = String::from_utf8(out.stdout).expect("utf8");
    let mut per_stack: BTreeMap<String, u64> = BTreeMap::new();
    for line in text.lines() {
        let (stack, n) = line.rsplit_once(' ').expect("stack N");
        per_stack.insert(stack.to_owned(), n.parse().expect("count"));
    }
    let spans = parsed(&input);
    let expected: u64 = self_times(&spans).values().sum();
    assert_eq!(per_stack.values().sum::<u64>(), expected);
    // Every stack starts with its service, then the root span's name
    // (roots include the orphan).
    let below_service: Vec<&str> = per_stack
        .keys()
        .map(|k| {
            let (service, rest) = k.split_once(';').expect("service;stack");
            assert!(["users", "orders", "ünïcode svc"].contains(&service), "{k}");
            rest
        })
        .collect();
    assert!(
        below_service
            .iter()
            .any(|k| k.starts_with("GET /users/{id} #") && k.ends_with(";GET"))
    );
    assert!(
        below_service
            .iter()
            .all(|k| k.starts_with("GET /users/{id} #")),
        "client spans always under a server span"
    );
}

/// Two services whose spans have the same names: a route-less `GET` server
/// span each, with a `GET` client call under it, in interleaved traces.
/// Returns the NDJSON and each service's (spans, self time of the server
/// spans, self time of the client spans).
fn two_services() -> (String, BTreeMap<&'static str, (u64, u64, u64)>) {
    let mut lines = String::new();
    let mut totals = BTreeMap::new();
    for n in 0..12u64 {
        let service = ["alpha", "beta"][(n % 2) as usize];
        let resource = json!({"service.name": service, "process.pid": 10 + n % 2});
        let start = 1_700_000_000_000_000_000 + n * 1_000_000;
        let (dur, call) = (100_000 + n * 1_000, 30_000 + n * 100);
        let (trace, root, child) = (
            format!("{:032x}", n + 1),
            format!("{:016x}", 2 * n + 1),
            format!("{:016x}", 2 * n + 2),
        );
        let client = json!({"trace_id": trace, "span_id": child, "parent_span_id": root, "name": "GET",
            "kind": "client", "start_time_unix_nano": start + 10, "end_time_unix_nano": start + 10 + call,
            "attributes": {"http.request.method": "GET"}, "resource": resource});
        let server = json!({"trace_id": trace, "span_id": root, "name": "GET", "kind": "server",
            "start_time_unix_nano": start, "end_time_unix_nano": start + dur,
            "attributes": {"http.request.method": "GET"}, "resource": resource});
        lines.push_str(&format!("{client}\n{server}\n"));
        let t = totals.entry(service).or_insert((0, 0, 0));
        t.0 += 2;
        t.1 += dur - call;
        t.2 += call;
    }
    (lines, totals)
}

#[test]
fn stacks_start_with_the_service_so_services_never_merge() {
    let (input, totals) = two_services();
    let out = convert(&["--to", "folded"], &input);
    assert_ok(&out);
    let mut expected = String::new();
    for (service, (_, server, client)) in &totals {
        expected.push_str(&format!(
            "{service};GET {server}\n{service};GET;GET {client}\n"
        ));
    }
    assert_eq!(String::from_utf8(out.stdout).expect("utf8"), expected);

    let out = convert(&["--to", "flamegraph"], &input);
    assert_ok(&out);
    let svg = String::from_utf8(out.stdout).expect("utf8");
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(&svg, options).expect("well-formed XML");
    let titles: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("title"))
        .filter_map(|n| n.text())
        .collect();
    for service in totals.keys() {
        assert!(
            titles
                .iter()
                .any(|t| t.starts_with(&format!("{service} ("))),
            "no {service} frame in {titles:?}"
        );
    }

    // pprof: each service is a frame of its own whose cumulative span
    // count is that service's spans.
    let dir = tmpdir("services");
    let file = dir.join("spans.pb.gz");
    assert_ok(&convert(
        &["--to", "pprof", "-o", file.to_str().expect("path")],
        &input,
    ));
    let top = pprof(&["-top", "-sample_index=spans"], &file);
    for (service, (spans, _, _)) in &totals {
        let row = top
            .lines()
            .find(|l| l.split_whitespace().last() == Some(service))
            .unwrap_or_else(|| panic!("no {service} row in {top}"));
        let cum: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cum[3], spans.to_string(), "{top}");
    }
    let focused = pprof(&["-raw", "-tagfocus=service.name=alpha"], &file);
    assert_eq!(raw_totals(&focused).0, totals["alpha"].0, "{focused}");
}

#[test]
fn flamegraph_is_well_formed_svg() {
    let out = convert(&["--to", "flamegraph"], &ndjson(&spans(20, 37)));
    assert_ok(&out);
    let svg = String::from_utf8(out.stdout).expect("utf8");
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(&svg, options).expect("well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    assert!(
        doc.descendants()
            .any(|n| n.text().is_some_and(|t| t.contains("GET /users/{id} #")))
    );
}

// ---------------------------------------------------------------- chrome, text

#[test]
fn chrome_is_trace_event_format() {
    let input = spans(20, 41);
    let out = convert(&["--to", "chrome"], &ndjson(&input));
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let events = v["traceEvents"].as_array().expect("traceEvents");
    for e in events {
        for key in ["ph", "ts", "dur", "pid", "tid", "name"] {
            assert!(e.get(key).is_some(), "event without {key}: {e}");
        }
    }
    let complete: Vec<_> = events.iter().filter(|e| e["ph"] == "X").collect();
    assert_eq!(complete.len(), input.len());
    let traces: std::collections::HashSet<_> = parsed(&input).iter().map(|s| s.trace_id).collect();
    let threads = events
        .iter()
        .filter(|e| e["ph"] == "M" && e["name"] == "thread_name")
        .count();
    assert_eq!(threads, traces.len(), "one named track per trace");
    let root = complete
        .iter()
        .find(|e| e["args"]["http.route"].is_string())
        .expect("a server span");
    assert_eq!(root["args"]["http.request.method"], "GET");
}

#[test]
fn text_prints_spans_for_a_person() {
    let input = spans(2, 43);
    let out = convert(&["--to", "text"], &ndjson(&input));
    assert_ok(&out);
    let text = String::from_utf8(out.stdout).expect("utf8");
    for span in parsed(&input) {
        assert!(text.contains(&span.span_id.to_string()), "{text}");
    }
    assert!(text.contains("service.name"));
    // -o writes the same listing to a file.
    let dir = tmpdir("text");
    let file = dir.join("spans.txt");
    let written = convert(
        &["--to", "text", "-o", file.to_str().expect("path")],
        &ndjson(&input),
    );
    assert_ok(&written);
    assert!(written.stdout.is_empty());
    assert_eq!(std::fs::read_to_string(&file).expect("read"), text);
}

#[test]
fn text_prints_values_as_a_person_reads_them() {
    let span = json!({"trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "b7ad6b7169203331",
        "parent_span_id": "00f067aa0ba902b7", "name": "GET /users/{id}", "kind": "server",
        "start_time_unix_nano": 1_700_000_000_000_000_001_u64, "end_time_unix_nano": 1_700_000_000_012_500_001_u64,
        "attributes": {"http.request.method": "GET", "http.response.status_code": 200, "neg": -7,
            "ratio": 0.25, "ok": true, "no": false, "tags": ["a", "b c"], "codes": [200, 404],
            "weights": [0.5, 1.5], "flags": [true, false], "mixed": ["x", 1, 2.5, false]},
        "status": {"code": "error", "message": "handler panicked"},
        "events": [{"name": "exception", "time_unix_nano": 1_700_000_000_000_000_011_u64,
            "attributes": {"exception.type": "runtime.Error", "exception.escaped": true}}],
        "resource": {"service.name": "users", "process.pid": 4101, "process.runtime.version": "go1.22.10"}});
    let out = convert(&["--to", "text"], &format!("{span}\n"));
    assert_ok(&out);
    let text = String::from_utf8(out.stdout).expect("utf8");
    for line in [
        "  service.name: users",
        "  process.pid: 4101",
        "  process.runtime.version: go1.22.10",
        "Span GET /users/{id}",
        "  Kind:        server",
        "  Trace ID:    0af7651916cd43dd8448eb211c80319c",
        "  Parent ID:   00f067aa0ba902b7",
        "  Start:       2023-11-14T22:13:20.000000001Z",
        "  End:         2023-11-14T22:13:20.012500001Z",
        "  Duration:    12.5ms",
        "  Status:      error: handler panicked",
        "    http.request.method: GET",
        "    http.response.status_code: 200",
        "    neg: -7",
        "    ratio: 0.25",
        "    ok: true",
        "    no: false",
        "    tags: [\"a\", \"b c\"]",
        "    codes: [200, 404]",
        "    weights: [0.5, 1.5]",
        "    flags: [true, false]",
        "    mixed: [\"x\", 1, 2.5, false]",
        "    2023-11-14T22:13:20.000000011Z exception",
        "      exception.type: runtime.Error",
        "      exception.escaped: true",
    ] {
        assert!(
            text.lines().any(|l| l == line),
            "line {line:?} missing in\n{text}"
        );
    }
    for debug in [
        "String(",
        "Owned(",
        "Static(",
        "I64(",
        "F64(",
        "Bool(",
        "Array(",
        "TraceFlags(",
        "Some(",
    ] {
        assert!(
            !text.contains(debug),
            "Rust debug form {debug:?} in\n{text}"
        );
    }
}

// ---------------------------------------------------------------- bad and empty input

#[test]
fn malformed_line_stops_with_its_number() {
    let mut lines: Vec<String> = spans(3, 47).iter().map(|s| s.to_string()).collect();
    lines.insert(2, r#"{"trace_id":"zz"}"#.to_owned());
    let input = lines.join("\n");
    for format in [
        "otlp-json",
        "pprof",
        "folded",
        "flamegraph",
        "chrome",
        "text",
    ] {
        let out = convert(&["--to", format, "-o", "-"], &input);
        assert_eq!(out.status.code(), Some(2), "{format}");
        let err = stderr(&out);
        assert!(err.contains("line 3: invalid span JSON"), "{format}: {err}");
    }
    let out = convert(&["--to", "folded", "--skip-invalid"], &input);
    assert_ok(&out);
    let err = stderr(&out);
    assert!(err.contains("1 invalid lines skipped"), "{err}");
    assert!(err.contains("skipped line 3:"), "{err}");
}

#[test]
fn input_file_and_output_file() {
    let dir = tmpdir("files");
    let input = dir.join("spans.ndjson");
    std::fs::write(&input, ndjson(&spans(4, 53))).expect("write");
    let output = dir.join("out.json");
    let out = goprobe()
        .args(["convert", "--to", "chrome"])
        .arg(&input)
        .arg("-o")
        .arg(&output)
        .output()
        .expect("run");
    assert_ok(&out);
    assert!(out.stdout.is_empty());
    serde_json::from_slice::<serde_json::Value>(&std::fs::read(&output).expect("read"))
        .expect("JSON");
    let missing = goprobe()
        .args(["convert", "--to", "chrome", "/nonexistent/spans"])
        .output()
        .expect("run");
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn empty_input_gives_valid_empty_output_for_every_format() {
    let out = convert(&["--to", "otlp-json"], "");
    assert_ok(&out);
    assert!(out.stdout.is_empty());
    let out = convert(&["--to", "folded"], "");
    assert_ok(&out);
    assert!(out.stdout.is_empty());
    let out = convert(&["--to", "text"], "");
    assert_ok(&out);
    let out = convert(&["--to", "chrome"], "");
    assert_ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(v["traceEvents"].as_array().map(Vec::len), Some(0));
    let out = convert(&["--to", "flamegraph"], "\n");
    assert_ok(&out);
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    roxmltree::Document::parse_with_options(
        std::str::from_utf8(&out.stdout).expect("utf8"),
        options,
    )
    .expect("SVG");
    let dir = tmpdir("empty");
    let file = dir.join("empty.pb.gz");
    assert_ok(&convert(
        &["--to", "pprof", "-o", file.to_str().expect("path")],
        "",
    ));
    assert_eq!(raw_totals(&pprof(&["-raw"], &file)), (0, 0));
    let r = receiver(vec![]);
    assert_ok(&convert(&["--to", "otlp", "--endpoint", &r.url], ""));
    assert_eq!(*r.attempts.lock().expect("lock"), 0);
}
