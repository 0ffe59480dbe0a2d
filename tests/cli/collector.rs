//! A real OpenTelemetry Collector (OTLP receiver, file exporter; built by
//! scripts/otelcol.sh) on loopback: `convert --to otlp` traces and
//! `--signal metrics` metrics are accepted, and the file exporter's output
//! holds every span and every data point sent, with the values goprobe
//! computed. Beside the loopback receiver of convert.rs, not instead of it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;

use crate::common;
use crate::synth::{self, assert_ok, convert, stdout};

/// The Collector binary for the current manifest (see scripts/otelcol.sh).
fn collector_binary() -> PathBuf {
    let manifest =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/otelcol/builder.yaml");
    let sum = Command::new("sha256sum")
        .arg(&manifest)
        .output()
        .expect("sha256sum");
    let key: String = String::from_utf8_lossy(&sum.stdout)
        .chars()
        .take(16)
        .collect();
    let bin = common::cache_dir()
        .join("otelcol")
        .join(key)
        .join("otelcol-goprobe");
    assert!(
        bin.exists(),
        "the OpenTelemetry Collector is not built at {}: run scripts/otelcol.sh (scripts/setup.sh does)",
        bin.display()
    );
    bin
}

struct Collector {
    child: Child,
    endpoint: String,
    dir: PathBuf,
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Collector {
    /// Start on a free loopback port with a file exporter per signal.
    fn start() -> Collector {
        let bin = collector_binary();
        let dir = std::env::temp_dir().join(format!("goprobe-otelcol-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        // The Collector's own telemetry is off, so it listens on nothing else.
        let config = format!(
            r#"receivers:
  otlp:
    protocols:
      http:
        endpoint: 127.0.0.1:{port}
exporters:
  file/traces:
    path: {dir}/traces.jsonl
    flush_interval: 100ms
  file/metrics:
    path: {dir}/metrics.jsonl
    flush_interval: 100ms
service:
  telemetry:
    metrics:
      level: none
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [file/traces]
    metrics:
      receivers: [otlp]
      exporters: [file/metrics]
"#,
            dir = dir.display()
        );
        let config_path = dir.join("config.yaml");
        std::fs::write(&config_path, config).expect("config");
        let log = std::fs::File::create(dir.join("collector.log")).expect("log");
        let child = Command::new(&bin)
            .arg(format!("--config=file:{}", config_path.display()))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let mut collector = Collector {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(status)) = collector.child.try_wait() {
                panic!("the Collector exited ({status}): {}", collector.log());
            }
            assert!(
                Instant::now() < deadline,
                "the Collector did not listen: {}",
                collector.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        collector
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("collector.log")).unwrap_or_default()
    }

    /// The exporter's file, once `done` says it holds everything (or a minute passed).
    fn wait_for<T>(&self, file: &str, done: impl Fn(&[T]) -> bool) -> Vec<T>
    where
        T: serde::de::DeserializeOwned,
    {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let lines: Vec<T> = std::fs::File::open(self.dir.join(file))
                .map(|f| {
                    BufReader::new(f)
                        .lines()
                        .map_while(Result::ok)
                        .filter(|l| l.ends_with('}'))
                        .map(|l| {
                            serde_json::from_str(&l).unwrap_or_else(|e| panic!("{file}: {e}: {l}"))
                        })
                        .collect()
                })
                .unwrap_or_default();
            if done(&lines) || Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn span_ids(requests: &[ExportTraceServiceRequest]) -> BTreeSet<Vec<u8>> {
    requests
        .iter()
        .flat_map(|r| &r.resource_spans)
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| s.span_id.clone())
        .collect()
}

/// Every data point of some requests, by metric, resource and attributes
/// (order-free), with what it carries.
fn points(requests: &[ExportMetricsServiceRequest]) -> BTreeMap<String, String> {
    let kv = |attrs: &[KeyValue]| {
        let mut v: Vec<String> = attrs
            .iter()
            .map(|a| {
                format!(
                    "{}={:?}",
                    a.key,
                    a.value.as_ref().and_then(|v| v.value.clone())
                )
            })
            .collect();
        v.sort();
        v.join(",")
    };
    let mut out = BTreeMap::new();
    for r in requests {
        for rm in &r.resource_metrics {
            let resource = kv(&rm
                .resource
                .as_ref()
                .map(|r| r.attributes.clone())
                .unwrap_or_default());
            for m in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
                match &m.data {
                    Some(Data::Histogram(h)) => {
                        for p in &h.data_points {
                            out.insert(
                                format!("{} [{resource}] {{{}}}", m.name, kv(&p.attributes)),
                                format!("unit={} count={} sum={:?} buckets={:?} bounds={:?} min={:?} max={:?}",
                                    m.unit, p.count, p.sum, p.bucket_counts, p.explicit_bounds, p.min, p.max),
                            );
                        }
                    }
                    Some(Data::Sum(s)) => {
                        for p in &s.data_points {
                            out.insert(
                                format!("{} [{resource}] {{{}}}", m.name, kv(&p.attributes)),
                                format!(
                                    "unit={} monotonic={} value={:?}",
                                    m.unit, s.is_monotonic, p.value
                                ),
                            );
                        }
                    }
                    other => panic!("unexpected metric data {other:?}"),
                }
            }
        }
    }
    out
}

#[test]
fn the_collector_accepts_every_span_and_data_point() {
    let collector = Collector::start();
    let s = synth::spans(500, 31);
    let input = s.ndjson();

    let out = convert(
        &[
            "--to",
            "otlp",
            "--endpoint",
            &collector.endpoint,
            "--batch-size",
            "64",
        ],
        &input,
    );
    assert_ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("500 spans accepted, 0 rejected"),
        "{err}\n{}",
        collector.log()
    );
    let want_ids: BTreeSet<Vec<u8>> = s
        .spans
        .iter()
        .map(|v| {
            let h = v["span_id"].as_str().expect("id");
            (0..16)
                .step_by(2)
                .map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex"))
                .collect()
        })
        .collect();
    let traces = collector.wait_for::<ExportTraceServiceRequest>("traces.jsonl", |r| {
        span_ids(r).len() >= want_ids.len()
    });
    assert_eq!(
        span_ids(&traces),
        want_ids,
        "the file exporter has every span: {}",
        collector.log()
    );

    let out = convert(
        &[
            "--to",
            "otlp",
            "--signal",
            "metrics",
            "--endpoint",
            &collector.endpoint,
        ],
        &input,
    );
    assert_ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("data points accepted, 0 rejected"),
        "{err}\n{}",
        collector.log()
    );
    let ours: ExportMetricsServiceRequest = serde_json::from_str(
        stdout(&convert(
            &["--to", "metrics", "--format", "otlp-json"],
            &input,
        ))
        .trim(),
    )
    .expect("goprobe's OTLP/JSON");
    let want = points(std::slice::from_ref(&ours));
    assert!(want.len() > 20, "{} data points", want.len());
    let got = collector.wait_for::<ExportMetricsServiceRequest>("metrics.jsonl", |r| {
        points(r).len() >= want.len()
    });
    assert_eq!(
        points(&got),
        want,
        "the file exporter has every data point: {}",
        collector.log()
    );
}
