//! `--format prometheus`: the Prometheus text exposition format (0.0.4), as
//! a scrape target or node_exporter's textfile collector serves it.
//!
//! Names follow the OpenTelemetry-to-Prometheus translation: dots become
//! underscores, the unit becomes a suffix, counters end in `_total`
//! (`http.server.request.duration` → `http_server_request_duration_seconds`,
//! `goprobe.panics` → `goprobe_panics_total`). Prometheus wants base units,
//! so the RPC instruments (milliseconds in OTLP) are written in seconds.
//! Each resource becomes the `job` (`service.namespace/service.name`) and
//! `instance` (`service.instance.id`, else `process.pid`) labels, and its
//! other attributes a `target_info` series. Series that end up with the same
//! labels (two resources with one job and instance) are added together, so
//! an exposition never repeats a series.

use std::collections::BTreeMap;
use std::io::{self, Write};

use super::{
    Aggregator, Histogram, Instrument, LOSS_EFFECT, LOSS_REASON, LOST, LOST_DESCRIPTION, LabelSet,
    PANICS, PANICS_DESCRIPTION, SKIPPED, SKIPPED_DESCRIPTION,
};
use crate::span::{AttrValue, Attributes};

type Labels = Vec<(String, String)>;

/// A metric or label name from an OpenTelemetry name.
pub fn sanitize(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "key_");
    }
    // Names starting with "__" are reserved for Prometheus itself.
    if out.starts_with("__") {
        out.insert_str(0, "key");
    }
    out
}

fn text(v: &AttrValue) -> String {
    match v {
        AttrValue::String(s) => s.clone(),
        AttrValue::Int(n) => n.to_string(),
        AttrValue::Bool(b) => b.to_string(),
        AttrValue::Double(d) => d.to_string(),
        AttrValue::Array(_) => serde_json::to_string(v).unwrap_or_default(),
    }
}

/// The `job` and `instance` labels of a resource.
pub fn job_instance(resource: &Attributes) -> Labels {
    let name = resource
        .get("service.name")
        .map(text)
        .unwrap_or_else(|| "unknown_service".to_owned());
    let job = match resource.get("service.namespace") {
        Some(ns) => format!("{}/{name}", text(ns)),
        None => name,
    };
    let mut labels = vec![("job".to_owned(), job)];
    if let Some(i) = resource
        .get("service.instance.id")
        .or_else(|| resource.get("process.pid"))
    {
        labels.push(("instance".to_owned(), text(i)));
    }
    labels
}

fn series_labels(resource: &Attributes, attrs: &LabelSet) -> Labels {
    let mut labels = job_instance(resource);
    labels.extend(attrs.iter().map(|(k, v)| (sanitize(k), v.text())));
    labels
}

fn escape_label(v: &str) -> String {
    v.replace('\\', r"\\")
        .replace('"', "\\\"")
        .replace('\n', r"\n")
}

fn escape_help(v: &str) -> String {
    v.replace('\\', r"\\").replace('\n', r"\n")
}

fn write_labels(out: &mut impl Write, labels: &Labels, le: Option<&str>) -> io::Result<()> {
    if labels.is_empty() && le.is_none() {
        return Ok(());
    }
    out.write_all(b"{")?;
    let mut first = true;
    let le = le.map(|v| ("le".to_owned(), v.to_owned()));
    for (k, v) in labels.iter().chain(le.as_ref()) {
        if !first {
            out.write_all(b",")?;
        }
        first = false;
        write!(out, "{k}=\"{}\"", escape_label(v))?;
    }
    out.write_all(b"}")
}

/// Nanoseconds as seconds, exact to the nanosecond up to 2^53 ns (104 days).
fn seconds(ns: u128) -> f64 {
    let s = 1_000_000_000u128;
    (ns / s) as f64 + (ns % s) as f64 / 1e9
}

fn header(out: &mut impl Write, name: &str, kind: &str, help: &str) -> io::Result<()> {
    writeln!(out, "# HELP {name} {}", escape_help(help))?;
    writeln!(out, "# TYPE {name} {kind}")
}

fn histogram_family(
    out: &mut impl Write,
    agg: &Aggregator,
    instrument: Instrument,
) -> io::Result<()> {
    let info = instrument.info();
    let mut series: BTreeMap<Labels, Histogram> = BTreeMap::new();
    for ((_, resource, attrs), h) in agg
        .histograms
        .iter()
        .filter(|((inst, _, _), _)| *inst == instrument)
    {
        let labels = series_labels(&agg.resources()[*resource], attrs);
        match series.get_mut(&labels) {
            Some(existing) => existing.merge(h),
            None => {
                series.insert(labels, h.clone());
            }
        }
    }
    if series.is_empty() {
        return Ok(());
    }
    let name = format!("{}_seconds", sanitize(info.name));
    header(out, &name, "histogram", info.description)?;
    let les: Vec<String> = info
        .bounds_ns
        .iter()
        .map(|&b| seconds(u128::from(b)).to_string())
        .chain(std::iter::once("+Inf".to_owned()))
        .collect();
    for (labels, h) in &series {
        let mut cumulative = 0u64;
        for (count, le) in h.buckets.iter().zip(&les) {
            cumulative += count;
            write!(out, "{name}_bucket")?;
            write_labels(out, labels, Some(le))?;
            writeln!(out, " {cumulative}")?;
        }
        write!(out, "{name}_sum")?;
        write_labels(out, labels, None)?;
        writeln!(out, " {}", seconds(h.sum_ns))?;
        write!(out, "{name}_count")?;
        write_labels(out, labels, None)?;
        writeln!(out, " {}", h.count)?;
    }
    Ok(())
}

/// Write one exposition of everything aggregated so far.
pub fn write(agg: &Aggregator, out: &mut impl Write) -> io::Result<()> {
    for instrument in Instrument::ALL {
        histogram_family(out, agg, instrument)?;
    }
    let mut panics: BTreeMap<Labels, u64> = BTreeMap::new();
    for ((resource, attrs), n) in &agg.panics {
        *panics
            .entry(series_labels(&agg.resources()[*resource], attrs))
            .or_insert(0) += n;
    }
    if !panics.is_empty() {
        let name = format!("{}_total", sanitize(PANICS));
        header(out, &name, "counter", PANICS_DESCRIPTION)?;
        for (labels, n) in &panics {
            write!(out, "{name}")?;
            write_labels(out, labels, None)?;
            writeln!(out, " {n}")?;
        }
    }
    // Always present, so that a rule can watch it from the first scrape.
    let name = format!("{}_total", sanitize(SKIPPED));
    header(out, &name, "counter", SKIPPED_DESCRIPTION)?;
    writeln!(out, "{name}{{job=\"goprobe\"}} {}", agg.skipped)?;
    // The reasons the recording reported (none: no lost line was read).
    if agg.lost.iter().next().is_some() {
        let name = format!("{}_total", sanitize(LOST));
        header(out, &name, "counter", LOST_DESCRIPTION)?;
        for (reason, n) in agg.lost.iter() {
            let labels: Labels = vec![
                ("job".to_owned(), "goprobe".to_owned()),
                (
                    sanitize(LOSS_EFFECT),
                    crate::loss::effect(reason).as_str().to_owned(),
                ),
                (sanitize(LOSS_REASON), reason.to_owned()),
            ];
            write!(out, "{name}")?;
            write_labels(out, &labels, None)?;
            writeln!(out, " {n}")?;
        }
    }
    let mut targets: BTreeMap<Labels, ()> = BTreeMap::new();
    for resource in agg.resources() {
        let mut labels = job_instance(resource);
        for (k, v) in resource {
            if !matches!(
                k.as_str(),
                "service.name" | "service.namespace" | "service.instance.id"
            ) {
                labels.push((sanitize(k), text(v)));
            }
        }
        targets.insert(labels, ());
    }
    if !targets.is_empty() {
        header(out, "target_info", "gauge", "Target metadata")?;
        for labels in targets.keys() {
            write!(out, "target_info")?;
            write_labels(out, labels, None)?;
            writeln!(out, " 1")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::Span;

    fn spans() -> Vec<Span> {
        let line = |id: u8, kind: &str, attrs: &str, ns: u64, pid: u32| {
            format!(
                r#"{{"trace_id":"{:032x}","span_id":"{:016x}","name":"n","kind":"{kind}","start_time_unix_nano":1000,"end_time_unix_nano":{},"attributes":{{{attrs}}},"resource":{{"service.name":"svc","process.pid":{pid},"process.runtime.version":"go1.26"}}}}"#,
                u32::from(id) + 1,
                id + 1,
                1000 + ns
            )
        };
        [
            line(1, "server", r#""http.request.method":"GET","http.route":"/a\"b","http.response.status_code":200"#, 5_000_000, 7),
            line(2, "server", r#""http.request.method":"GET","http.route":"/a\"b","http.response.status_code":200"#, 7_000_000, 7),
            line(3, "server", r#""rpc.system":"grpc","rpc.method":"Get""#, 1_500_000, 7),
            line(4, "server", r#""http.request.method":"GET","http.route":"/a\"b","http.response.status_code":200"#, 1, 8),
        ]
        .iter()
        .map(|l| Span::from_json_line(l).expect("span"))
        .collect()
    }

    #[test]
    fn writes_histograms_counters_and_target_info() {
        let mut agg = Aggregator::new();
        for s in spans() {
            agg.add(&s);
        }
        let mut out = Vec::new();
        write(&agg, &mut out).expect("write");
        let text = String::from_utf8(out).expect("utf8");
        let name = "http_server_request_duration_seconds";
        assert!(
            text.contains(&format!("# TYPE {name} histogram\n")),
            "{text}"
        );
        let labels = r#"job="svc",instance="7",http_request_method="GET",http_response_status_code="200",http_route="/a\"b""#;
        assert!(
            text.contains(&format!("{name}_bucket{{{labels},le=\"0.005\"}} 1\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("{name}_bucket{{{labels},le=\"0.01\"}} 2\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("{name}_bucket{{{labels},le=\"+Inf\"}} 2\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("{name}_sum{{{labels}}} 0.012\n")),
            "{text}"
        );
        assert!(
            text.contains(&format!("{name}_count{{{labels}}} 2\n")),
            "{text}"
        );
        assert!(text.contains(r#"rpc_server_duration_seconds_bucket{job="svc",instance="7",rpc_method="Get",rpc_system="grpc",le="0.0025"} 0"#) || text.contains(r#"rpc_server_duration_seconds_bucket{job="svc",instance="7",rpc_method="Get",rpc_system="grpc",le="0.005"} 1"#), "{text}");
        assert!(text.contains("goprobe_convert_skipped_lines_total{job=\"goprobe\"} 0\n"));
        assert!(text.contains(r#"target_info{job="svc",instance="8",process_pid="8",process_runtime_version="go1.26"} 1"#), "{text}");
        assert!(
            !text.contains("goprobe_panics_total"),
            "no panics, no series"
        );
    }

    #[test]
    fn names_are_sanitized() {
        assert_eq!(sanitize("http.route"), "http_route");
        assert_eq!(sanitize("2x"), "key_2x");
        assert_eq!(sanitize("__x"), "key__x");
        assert_eq!(escape_label("a\\b\"c\nd"), r#"a\\b\"c\nd"#);
    }
}
