//! `goprobe convert --to metrics` and `--to otlp --signal metrics`: the
//! Prometheus exposition checked by `promtool check metrics` and read back
//! with the `prometheus_client` parser, OTLP/JSON decoded strictly with the
//! official protobufs, the push against a loopback receiver — each compared
//! with counts, sums and buckets computed here from what the generator says
//! each span is. The live form (`--interval`) is in metrics_live.rs.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use prost::Message;
use serde_json::Value;

use crate::synth::{self, Synth, assert_ok, convert, python, stdout};

const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;

/// The semantic conventions' advised bucket bounds (SDK defaults for RPC), in ns.
fn bounds(instrument: &str) -> Vec<u64> {
    match instrument {
        "http.server.request.duration" | "http.client.request.duration" => vec![
            5 * MS,
            10 * MS,
            25 * MS,
            50 * MS,
            75 * MS,
            100 * MS,
            250 * MS,
            500 * MS,
            750 * MS,
            S,
            2500 * MS,
            5 * S,
            7500 * MS,
            10 * S,
        ],
        "db.client.operation.duration" => {
            vec![
                MS,
                5 * MS,
                10 * MS,
                50 * MS,
                100 * MS,
                500 * MS,
                S,
                5 * S,
                10 * S,
            ]
        }
        "rpc.server.duration" | "rpc.client.duration" => vec![
            0,
            5 * MS,
            10 * MS,
            25 * MS,
            50 * MS,
            75 * MS,
            100 * MS,
            250 * MS,
            500 * MS,
            750 * MS,
            S,
            2500 * MS,
            5 * S,
            7500 * MS,
            10 * S,
        ],
        other => panic!("unknown instrument {other}"),
    }
}

/// One expected histogram series: count, sum and cumulative bucket counts.
#[derive(Debug, Default, Clone, PartialEq)]
struct Series {
    count: u64,
    sum_ns: u128,
    min_ns: u64,
    max_ns: u64,
    durations: Vec<u64>,
}

impl Series {
    /// Cumulative counts at each bound and at +Inf.
    fn cumulative(&self, bounds: &[u64]) -> Vec<u64> {
        let mut out: Vec<u64> = bounds
            .iter()
            .map(|&b| self.durations.iter().filter(|&&d| d <= b).count() as u64)
            .collect();
        out.push(self.count);
        out
    }
}

type Key = (String, BTreeMap<String, String>);

fn label_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Expected Prometheus histograms, keyed by metric name and labels.
fn expected_prometheus(s: &Synth) -> BTreeMap<Key, (String, Series)> {
    let mut out: BTreeMap<Key, (String, Series)> = BTreeMap::new();
    for m in &s.measured {
        let mut labels: BTreeMap<String, String> = m
            .attributes
            .iter()
            .map(|(k, v)| (k.replace('.', "_"), label_text(v)))
            .collect();
        labels.insert("job".into(), m.service.clone());
        labels.insert("instance".into(), m.pid.to_string());
        let name = format!("{}_seconds", m.instrument.replace('.', "_"));
        let entry = out
            .entry((name, labels))
            .or_insert_with(|| (m.instrument.to_owned(), Series::default()));
        add(&mut entry.1, m.duration_ns);
    }
    out
}

fn add(series: &mut Series, ns: u64) {
    if series.count == 0 {
        series.min_ns = ns;
    }
    series.count += 1;
    series.sum_ns += u128::from(ns);
    series.min_ns = series.min_ns.min(ns);
    series.max_ns = series.max_ns.max(ns);
    series.durations.push(ns);
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn with_invalid_lines(s: &Synth) -> String {
    let mut text = s.ndjson();
    text.push_str("not json\n{\"trace_id\": 1}\n");
    text.insert_str(0, "garbage\n");
    text
}

#[test]
fn prometheus_passes_promtool_and_matches_the_spans() {
    let s = synth::spans(900, 5);
    let out = convert(
        &["--to", "metrics", "--skip-invalid"],
        &with_invalid_lines(&s),
    );
    assert_ok(&out);
    let text = stdout(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains("3 invalid lines skipped"));

    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is required (scripts/setup.sh installs Debian's prometheus package)");
    promtool
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let checked = promtool.wait_with_output().expect("promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );
    assert!(
        checked.status.success() && said.trim().is_empty(),
        "promtool: {said}"
    );

    let parsed: Vec<Value> = python("metrics_check.py", &["prom"], &text)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let labels_of = |v: &Value| -> BTreeMap<String, String> {
        v["labels"]
            .as_object()
            .expect("labels")
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().expect("label text").to_owned()))
            .collect()
    };
    let expected = expected_prometheus(&s);
    let histograms: Vec<&Value> = parsed.iter().filter(|v| v["type"] == "histogram").collect();
    assert_eq!(
        histograms.len(),
        expected.len(),
        "one series per distinct label set"
    );
    for h in histograms {
        let key = (h["metric"].as_str().expect("name").to_owned(), labels_of(h));
        let (instrument, want) = expected
            .get(&key)
            .unwrap_or_else(|| panic!("unexpected series {key:?}"));
        assert_eq!(h["count"].as_f64(), Some(want.count as f64), "{key:?}");
        let sum = want.sum_ns as f64 / 1e9;
        assert!(
            close(h["sum"].as_f64().expect("sum"), sum),
            "{key:?}: sum {} vs {sum}",
            h["sum"]
        );
        let mut got: Vec<(f64, f64)> = h["buckets"]
            .as_object()
            .expect("buckets")
            .iter()
            .map(|(le, n)| (le.parse::<f64>().expect("le"), n.as_f64().expect("n")))
            .collect();
        got.sort_by(|a, b| a.0.total_cmp(&b.0));
        let bounds = bounds(instrument);
        let les: Vec<f64> = bounds
            .iter()
            .map(|&b| b as f64 / 1e9)
            .chain([f64::INFINITY])
            .collect();
        let want_buckets: Vec<(f64, f64)> = les
            .into_iter()
            .zip(want.cumulative(&bounds))
            .map(|(le, n)| (le, n as f64))
            .collect();
        assert_eq!(got, want_buckets, "{key:?}");
    }
    // The panic counter, by exception type and whether it was recovered.
    let mut want_panics: BTreeMap<BTreeMap<String, String>, f64> = BTreeMap::new();
    for p in &s.panics {
        let mut labels = BTreeMap::from([
            ("job".to_owned(), p.service.clone()),
            ("instance".to_owned(), p.pid.to_string()),
        ]);
        if let Some(t) = &p.exception_type {
            labels.insert("exception_type".into(), t.clone());
        }
        if let Some(r) = p.recovered {
            labels.insert("goprobe_panic_recovered".into(), r.to_string());
        }
        *want_panics.entry(labels).or_insert(0.0) += 1.0;
    }
    let got_panics: BTreeMap<BTreeMap<String, String>, f64> = parsed
        .iter()
        .filter(|v| v["metric"] == "goprobe_panics_total")
        .map(|v| (labels_of(v), v["value"].as_f64().expect("value")))
        .collect();
    assert!(want_panics.len() >= 4, "the input has every kind of panic");
    assert_eq!(got_panics, want_panics);
    let skipped: Vec<&Value> = parsed
        .iter()
        .filter(|v| v["metric"] == "goprobe_convert_skipped_lines_total")
        .collect();
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0]["value"].as_f64(), Some(3.0));
    let targets = parsed
        .iter()
        .filter(|v| v["metric"] == "target_info")
        .count();
    assert_eq!(targets, 3, "one target_info per process");
    for forbidden in ["url_path", "db_query_text", "network_peer_port"] {
        assert!(!text.contains(forbidden), "{forbidden} must not be a label");
    }
}

/// Expected OTLP histograms: instrument, resource (service, pid), attributes.
fn expected_otlp(s: &Synth) -> BTreeMap<(String, String, i64, String), Series> {
    let mut out = BTreeMap::new();
    for m in &s.measured {
        let attrs = serde_json::to_string(&m.attributes).expect("json");
        add(
            out.entry((m.instrument.to_owned(), m.service.clone(), m.pid, attrs))
                .or_default(),
            m.duration_ns,
        );
    }
    out
}

fn check_otlp_points(s: &Synth, points: &[Value]) {
    let expected = expected_otlp(s);
    let histograms: Vec<&Value> = points.iter().filter(|p| p["type"] == "histogram").collect();
    assert_eq!(histograms.len(), expected.len());
    for p in histograms {
        let instrument = p["metric"].as_str().expect("name");
        let attrs: BTreeMap<String, Value> =
            serde_json::from_value(p["labels"].clone()).expect("attrs");
        let key = (
            instrument.to_owned(),
            p["resource"]["service.name"]
                .as_str()
                .expect("service")
                .to_owned(),
            p["resource"]["process.pid"].as_i64().expect("pid"),
            serde_json::to_string(&attrs).expect("json"),
        );
        let want = expected
            .get(&key)
            .unwrap_or_else(|| panic!("unexpected point {key:?}"));
        let unit_ns = if instrument.starts_with("rpc.") {
            MS
        } else {
            S
        };
        assert_eq!(p["unit"], if unit_ns == MS { "ms" } else { "s" });
        assert_eq!(p["temporality"], "AGGREGATION_TEMPORALITY_CUMULATIVE");
        assert_eq!(p["count"].as_u64(), Some(want.count), "{key:?}");
        let in_unit = |ns: u128| ns as f64 / unit_ns as f64;
        assert!(
            close(p["sum"].as_f64().expect("sum"), in_unit(want.sum_ns)),
            "{key:?}"
        );
        assert!(close(
            p["min"].as_f64().expect("min"),
            in_unit(want.min_ns.into())
        ));
        assert!(close(
            p["max"].as_f64().expect("max"),
            in_unit(want.max_ns.into())
        ));
        let mut got: Vec<(f64, u64)> = p["buckets"]
            .as_object()
            .expect("buckets")
            .iter()
            .map(|(b, n)| (b.parse::<f64>().expect("bound"), n.as_u64().expect("n")))
            .collect();
        got.sort_by(|a, b| a.0.total_cmp(&b.0));
        let bounds = bounds(instrument);
        let want_buckets: Vec<(f64, u64)> = bounds
            .iter()
            .map(|&b| in_unit(b.into()))
            .chain([f64::INFINITY])
            .zip(want.cumulative(&bounds))
            .collect();
        assert_eq!(got, want_buckets, "{key:?}");
    }
    let panics: u64 = points
        .iter()
        .filter(|p| p["metric"] == "goprobe.panics")
        .map(|p| {
            assert_eq!(p["monotonic"], true);
            p["value"].as_u64().expect("value")
        })
        .sum();
    assert_eq!(panics, s.panics.len() as u64);
    let escaped = points
        .iter()
        .filter(|p| {
            p["metric"] == "goprobe.panics" && p["labels"]["goprobe.panic.recovered"] == false
        })
        .map(|p| p["value"].as_u64().expect("value"))
        .sum::<u64>();
    assert_eq!(
        escaped,
        s.panics
            .iter()
            .filter(|p| p.recovered == Some(false))
            .count() as u64
    );
}

#[test]
fn otlp_json_metrics_decode_strictly_and_match_the_spans() {
    let s = synth::spans(600, 9);
    let out = convert(&["--to", "metrics", "--format", "otlp-json"], &s.ndjson());
    assert_ok(&out);
    let text = stdout(&out);
    assert_eq!(
        text.lines().count(),
        1,
        "cumulative over the input: one request"
    );
    let points: Vec<Value> = python("metrics_check.py", &["otlp"], &text)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    check_otlp_points(&s, &points);
    // Cumulative from the first span's start to the last span's end.
    let first = s
        .spans
        .iter()
        .map(|v| v["start_time_unix_nano"].as_u64().expect("t"))
        .min();
    let last = s
        .spans
        .iter()
        .map(|v| v["end_time_unix_nano"].as_u64().expect("t"))
        .max();
    for p in &points {
        if p["type"] == "histogram" {
            assert_eq!(p["start"].as_u64(), first);
            assert_eq!(p["time"].as_u64(), last);
        }
    }
}

/// A loopback OTLP/HTTP receiver for metrics.
fn metrics_receiver() -> (String, Arc<Mutex<Vec<ExportMetricsServiceRequest>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let got = Arc::clone(&requests);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().expect("clone"));
            let (mut head, mut length) = (String::new(), 0usize);
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.split_once(':')
                    && k.eq_ignore_ascii_case("content-length")
                {
                    length = v.trim().parse().unwrap_or(0);
                }
                head.push_str(&line);
            }
            assert!(head.starts_with("POST /v1/metrics "), "{head}");
            let mut body = vec![0; length];
            reader.read_exact(&mut body).expect("body");
            got.lock()
                .expect("lock")
                .push(ExportMetricsServiceRequest::decode(body.as_slice()).expect("protobuf"));
            let payload = ExportMetricsServiceResponse::default().encode_to_vec();
            let header = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                payload.len()
            );
            let _ = stream.write_all(header.as_bytes());
            let _ = stream.write_all(&payload);
        }
    });
    (url, requests)
}

#[test]
fn otlp_push_sends_the_same_metrics_as_otlp_json() {
    let s = synth::spans(300, 13);
    let (url, requests) = metrics_receiver();
    let out = convert(
        &["--to", "otlp", "--signal", "metrics", "--endpoint", &url],
        &s.ndjson(),
    );
    assert_ok(&out);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/v1/metrics") && err.contains("data points accepted, 0 rejected"),
        "{err}"
    );
    let json = stdout(&convert(
        &["--to", "metrics", "--format", "otlp-json"],
        &s.ndjson(),
    ));
    let from_file: ExportMetricsServiceRequest = serde_json::from_str(json.trim()).expect("decode");
    let pushed = requests.lock().expect("lock").clone();
    assert_eq!(pushed, vec![from_file]);
}

#[test]
fn metrics_flags_are_checked() {
    for (args, says) in [
        (
            &["--to", "summary", "--interval", "1s"][..],
            "--interval only applies",
        ),
        (
            &["--to", "otlp-json", "--signal", "metrics"][..],
            "--signal only applies",
        ),
        (
            &["--to", "chrome", "--format", "otlp-json"][..],
            "--format only applies",
        ),
        (
            &["--to", "metrics", "--interval", "0s"][..],
            "longer than zero",
        ),
        (&["--to", "otlp", "--signal", "metrics"][..], "--endpoint"),
    ] {
        let out = convert(args, "");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // Empty input is a valid exposition (the skipped-lines counter alone).
    let out = convert(&["--to", "metrics"], "");
    assert_ok(&out);
    assert!(stdout(&out).contains("goprobe_convert_skipped_lines_total{job=\"goprobe\"} 0"));
}

/// The recording's in-band `lost` lines (what `record` writes when the
/// kernel side dropped something) become `goprobe.events.lost`, by reason
/// and effect, summed over the lines, in both formats; the spans are
/// measured as without them.
#[test]
fn lost_lines_become_a_counter_by_reason() {
    let s = synth::spans(200, 11);
    let lost = |reason: &str, effect: &str, count: u64| {
        format!(
            r#"{{"type":"lost","reason":"{reason}","effect":"{effect}","count":{count},"time_unix_nano":1}}"#
        )
    };
    let mut input = String::new();
    for (i, line) in s.ndjson().lines().enumerate() {
        input.push_str(line);
        input.push('\n');
        match i {
            10 => input.push_str(&(lost("ringbuf_full", "span_lost", 3) + "\n")),
            50 => input.push_str(&(lost("read_failed", "span_incomplete", 1) + "\n")),
            120 => input.push_str(&(lost("ringbuf_full", "span_lost", 2) + "\n")),
            _ => {}
        }
    }
    input.push_str(&(lost("unpaired_return", "not_lost", 4) + "\n"));

    let out = convert(&["--to", "metrics"], &input);
    assert_ok(&out);
    let text = stdout(&out);
    let parsed: Vec<Value> = python("metrics_check.py", &["prom"], &text)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let mut got: BTreeMap<(String, String), f64> = BTreeMap::new();
    for v in parsed
        .iter()
        .filter(|v| v["metric"] == "goprobe_events_lost_total")
    {
        got.insert(
            (
                v["labels"]["goprobe_loss_reason"]
                    .as_str()
                    .expect("reason")
                    .to_owned(),
                v["labels"]["goprobe_loss_effect"]
                    .as_str()
                    .expect("effect")
                    .to_owned(),
            ),
            v["value"].as_f64().expect("value"),
        );
    }
    let want: BTreeMap<(String, String), f64> = [
        ("read_failed", "span_incomplete", 1.0),
        ("ringbuf_full", "span_lost", 5.0),
        ("unpaired_return", "not_lost", 4.0),
    ]
    .into_iter()
    .map(|(r, e, n)| ((r.to_owned(), e.to_owned()), n))
    .collect();
    assert_eq!(got, want, "{text}");
    // The spans are all measured, no line was taken for invalid.
    assert!(text.contains("goprobe_convert_skipped_lines_total{job=\"goprobe\"} 0"));
    let without = stdout(&convert(&["--to", "metrics"], &s.ndjson()));
    let strip = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| !l.contains("goprobe_events_lost"))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(strip(&text), strip(&without));
    assert!(
        !without.contains("goprobe_events_lost"),
        "no lost line, no series"
    );

    let out = convert(&["--to", "metrics", "--format", "otlp-json"], &input);
    assert_ok(&out);
    let points: Vec<Value> = python("metrics_check.py", &["otlp"], &stdout(&out))
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let mut got: BTreeMap<(String, String), f64> = BTreeMap::new();
    for p in points
        .iter()
        .filter(|p| p["metric"] == "goprobe.events.lost")
    {
        assert_eq!(p["type"], "counter");
        assert_eq!(p["monotonic"], true);
        got.insert(
            (
                p["labels"]["goprobe.loss.reason"]
                    .as_str()
                    .expect("reason")
                    .to_owned(),
                p["labels"]["goprobe.loss.effect"]
                    .as_str()
                    .expect("effect")
                    .to_owned(),
            ),
            p["value"].as_f64().expect("value"),
        );
    }
    assert_eq!(got, want);
}
