//! Synthetic span NDJSON for the metrics, summary and Collector tests, with
//! what each span should count as written down by the generator itself —
//! the tests compare goprobe's output with these intentions, not with a
//! second copy of goprobe's rules.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::thread;

use serde_json::{Value, json};

pub fn goprobe() -> Command {
    Command::new(env!("CARGO_BIN_EXE_goprobe"))
}

/// Run `goprobe convert ARGS` with `input` on stdin.
pub fn convert(args: &[&str], input: &str) -> Output {
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

pub fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "goprobe failed: {:?}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8(out.stdout.clone()).expect("utf8 output")
}

/// Run a checker script of tests/cli with `input` on stdin; its stdout.
pub fn python(script: &str, args: &[&str], input: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/cli")
        .join(script);
    let mut child = Command::new("python3")
        .arg(&path)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 is required for this test (scripts/setup.sh installs it)");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_owned();
    let writer = thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let out = child.wait_with_output().expect("python3");
    writer.join().expect("writer");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_ne!(
        out.status.code(),
        Some(3),
        "Python packages missing (scripts/setup.sh installs them): {err}"
    );
    assert!(out.status.success(), "{script} {args:?} failed: {err}");
    String::from_utf8(out.stdout).expect("utf8")
}

/// A small deterministic generator (xorshift), so the tests need no crate.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// What one span should be measured as.
#[derive(Debug, Clone)]
pub struct Measured {
    /// The OpenTelemetry instrument name.
    pub instrument: &'static str,
    pub attributes: BTreeMap<String, Value>,
    pub service: String,
    pub pid: i64,
    pub duration_ns: u64,
}

/// One panic the counter should count.
#[derive(Debug, Clone)]
pub struct Panic {
    pub exception_type: Option<String>,
    pub recovered: Option<bool>,
    pub service: String,
    pub pid: i64,
}

pub struct Synth {
    pub spans: Vec<Value>,
    pub measured: Vec<Measured>,
    pub panics: Vec<Panic>,
}

impl Synth {
    pub fn ndjson(&self) -> String {
        self.spans.iter().map(|s| format!("{s}\n")).collect()
    }
}

const MS: u64 = 1_000_000;

/// `n` spans of every kind the metrics measure, with durations that hit
/// bucket bounds exactly, errors, panics recovered and not, and attributes
/// that must not become labels (`url.path`, `db.query.text`, peer ports).
pub fn spans(n: usize, seed: u64) -> Synth {
    let mut rng = Rng(seed | 1);
    let mut out = Synth {
        spans: Vec::new(),
        measured: Vec::new(),
        panics: Vec::new(),
    };
    let mut t: u64 = 1_700_000_000_000_000_000;
    // Bounds in ns of the HTTP and DB histograms, and values around them.
    let edges = [
        0,
        1,
        5 * MS,
        5 * MS + 1,
        10 * MS,
        100 * MS,
        1_000 * MS,
        10_000 * MS,
        10_000 * MS + 1,
    ];
    for i in 0..n {
        let (service, pid) = *rng.pick(&[("users", 4100i64), ("orders", 4101), ("orders", 4102)]);
        let resource = json!({"service.name": service, "process.pid": pid, "process.runtime.version": "go1.26.6"});
        let duration = if i % 7 == 0 {
            *rng.pick(&edges)
        } else {
            rng.below(300 * MS)
        };
        t += 1 + rng.below(MS);
        let id = |rng: &mut Rng| format!("{:016x}", rng.next() | 1);
        let mut span = json!({
            "trace_id": format!("{:016x}{:016x}", rng.next() | 1, rng.next()),
            "span_id": id(&mut rng), "start_time_unix_nano": t, "end_time_unix_nano": t + duration,
            "resource": resource, "status": {"code": "unset"}, "events": []
        });
        let mut attrs = BTreeMap::new();
        let put = |a: &mut BTreeMap<String, Value>, k: &str, v: Value| {
            a.insert(k.to_owned(), v);
        };
        let instrument = match i % 9 {
            0..=3 => {
                let method = *rng.pick(&["GET", "POST"]);
                let route = *rng.pick(&["/users/{id}", "/orders", "/"]);
                let status = *rng.pick(&[200i64, 200, 404, 500]);
                span["kind"] = json!("server");
                span["name"] = json!(format!("{method} {route}"));
                span["attributes"] = json!({"http.request.method": method, "http.route": route,
                    "http.response.status_code": status, "url.path": format!("/x/{i}"),
                    "network.peer.port": 40000 + i as i64, "network.protocol.version": "1.1"});
                put(&mut attrs, "http.request.method", json!(method));
                put(&mut attrs, "http.route", json!(route));
                put(&mut attrs, "http.response.status_code", json!(status));
                put(&mut attrs, "network.protocol.version", json!("1.1"));
                if status >= 500 {
                    span["status"] = json!({"code": "error"});
                    put(&mut attrs, "error.type", json!(status.to_string()));
                }
                if i % 18 == 2 {
                    // The handler recovered a panic and answered.
                    span["events"] = json!([{"name": "exception", "time_unix_nano": t,
                        "attributes": {"exception.type": "*errors.errorString", "exception.message": "x", "goroutine.id": 7}}]);
                    out.panics.push(Panic {
                        exception_type: Some("*errors.errorString".into()),
                        recovered: Some(true),
                        service: service.into(),
                        pid,
                    });
                }
                Some("http.server.request.duration")
            }
            4 => {
                // A panic escaped the handler: no response, no status code.
                span["kind"] = json!("server");
                span["name"] = json!("GET /panic");
                span["attributes"] = json!({"http.request.method": "GET", "http.route": "/panic", "error.type": "string"});
                span["status"] = json!({"code": "error", "message": "panic: boom"});
                span["events"] = json!([
                    {"name": "exception", "time_unix_nano": t, "attributes": {"exception.type": "runtime.boundsError"}},
                    {"name": "exception", "time_unix_nano": t + 1, "attributes": {"exception.type": "string", "exception.message": "boom"}}]);
                out.panics.push(Panic {
                    exception_type: Some("runtime.boundsError".into()),
                    recovered: Some(true),
                    service: service.into(),
                    pid,
                });
                out.panics.push(Panic {
                    exception_type: Some("string".into()),
                    recovered: Some(false),
                    service: service.into(),
                    pid,
                });
                put(&mut attrs, "http.request.method", json!("GET"));
                put(&mut attrs, "http.route", json!("/panic"));
                put(&mut attrs, "error.type", json!("string"));
                Some("http.server.request.duration")
            }
            5 => {
                let status = *rng.pick(&[200i64, 503]);
                span["kind"] = json!("client");
                span["name"] = json!("GET");
                span["attributes"] = json!({"http.request.method": "GET", "url.full": format!("http://b:8080/x?n={i}"),
                    "server.address": "b", "server.port": 8080, "http.response.status_code": status});
                put(&mut attrs, "http.request.method", json!("GET"));
                put(&mut attrs, "server.address", json!("b"));
                put(&mut attrs, "server.port", json!(8080));
                put(&mut attrs, "http.response.status_code", json!(status));
                put(&mut attrs, "url.scheme", json!("http"));
                if status >= 400 {
                    span["status"] = json!({"code": "error"});
                    put(&mut attrs, "error.type", json!(status.to_string()));
                }
                Some("http.client.request.duration")
            }
            6 => {
                let op = *rng.pick(&["SELECT", "INSERT"]);
                let failed = rng.below(4) == 0;
                span["kind"] = json!("client");
                span["name"] = json!(format!("{op} users"));
                span["attributes"] = json!({"db.system.name": "postgresql", "db.operation.name": op,
                    "db.collection.name": "users", "db.query.text": format!("{op} ... {i}"),
                    "server.address": "127.0.0.1", "server.port": 5432});
                put(&mut attrs, "db.system.name", json!("postgresql"));
                put(&mut attrs, "db.operation.name", json!(op));
                put(&mut attrs, "db.collection.name", json!("users"));
                put(&mut attrs, "server.address", json!("127.0.0.1"));
                put(&mut attrs, "server.port", json!(5432));
                if failed {
                    span["status"] =
                        json!({"code": "error", "message": "database/sql call returned an error"});
                    span["attributes"]["error.type"] = json!("*pq.Error");
                    put(&mut attrs, "error.type", json!("*pq.Error"));
                }
                Some("db.client.operation.duration")
            }
            7 => {
                let server = rng.below(2) == 0;
                span["kind"] = json!(if server { "server" } else { "client" });
                span["name"] = json!("helloworld.Greeter/SayHello");
                span["attributes"] = json!({"rpc.system": "grpc", "rpc.service": "helloworld.Greeter",
                    "rpc.method": "SayHello", "rpc.grpc.status_code": 0});
                for (k, v) in [
                    ("rpc.system", json!("grpc")),
                    ("rpc.service", json!("helloworld.Greeter")),
                    ("rpc.method", json!("SayHello")),
                    ("rpc.grpc.status_code", json!(0)),
                ] {
                    put(&mut attrs, k, v);
                }
                Some(if server {
                    "rpc.server.duration"
                } else {
                    "rpc.client.duration"
                })
            }
            _ => {
                if rng.below(2) == 0 {
                    // A panic outside every request: recovered or not is unknown.
                    span["kind"] = json!("internal");
                    span["name"] = json!("panic");
                    span["end_time_unix_nano"] = json!(t);
                    span["events"] =
                        json!([{"name": "exception", "time_unix_nano": t, "attributes": {}}]);
                    out.panics.push(Panic {
                        exception_type: None,
                        recovered: None,
                        service: service.into(),
                        pid,
                    });
                } else {
                    span["kind"] = json!("internal");
                    span["name"] = json!("work");
                }
                None
            }
        };
        if let Some(instrument) = instrument {
            out.measured.push(Measured {
                instrument,
                attributes: attrs,
                service: service.into(),
                pid,
                duration_ns: span["end_time_unix_nano"].as_u64().expect("end") - t,
            });
        }
        if i == 3 {
            span["parent_span_id"] = json!("00000000000000ff");
        }
        out.spans.push(span);
    }
    out
}
