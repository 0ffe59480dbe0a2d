//! `--to summary` (and `record --summary`): a table for a person in an
//! incident — one row per service and route (server spans) or span name
//! (clients, databases, the rest): count, errors, error share, p50/p90/p99
//! and max duration, total time and panics, the most expensive rows first.
//!
//! Percentiles are nearest-rank over the exact durations: the p-th
//! percentile of n durations is the ⌈p·n/100⌉-th smallest, a duration that
//! really occurred. To keep memory bounded on long recordings a row keeps
//! at most [`EXACT_LIMIT`] durations; past that it folds them into
//! logarithmic buckets 1% wide and reports each bucket's midpoint, within
//! 1% of the exact value (marked `~` in the table, `"exact": false` in
//! JSON). Counts, errors, max and total are always exact.

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufRead, Write};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use super::reader::SpanReader;
use super::{ExportError, Summary};
use crate::span::{AttrValue, Span, SpanKind, StatusCode};

/// Durations kept exactly per row before it switches to buckets.
pub const EXACT_LIMIT: usize = 1 << 16;

/// Relative half-width of a bucket once a row is approximated.
const ALPHA: f64 = 0.01;

/// A row's durations: exact, or in logarithmic buckets.
#[derive(Debug, Clone)]
enum Durations {
    Exact(Vec<u64>),
    /// Bucket index -> count; index i holds (γ^(i-1), γ^i], γ = (1+α)/(1-α).
    /// Zero-length spans are counted apart.
    Buckets {
        zero: u64,
        buckets: BTreeMap<i32, u64>,
    },
}

fn gamma() -> f64 {
    (1.0 + ALPHA) / (1.0 - ALPHA)
}

fn bucket_of(ns: u64) -> i32 {
    ((ns as f64).ln() / gamma().ln()).ceil() as i32
}

/// The value reported for a bucket: within α of every value in it.
fn bucket_value(i: i32) -> u64 {
    let g = gamma();
    (2.0 * g.powi(i) / (g + 1.0)).round() as u64
}

impl Durations {
    fn push(&mut self, ns: u64) {
        match self {
            Durations::Exact(v) => {
                v.push(ns);
                if v.len() > EXACT_LIMIT {
                    let mut zero = 0;
                    let mut buckets = BTreeMap::new();
                    for &d in v.iter() {
                        if d == 0 {
                            zero += 1;
                        } else {
                            *buckets.entry(bucket_of(d)).or_insert(0) += 1;
                        }
                    }
                    *self = Durations::Buckets { zero, buckets };
                }
            }
            Durations::Buckets { zero, buckets } => {
                if ns == 0 {
                    *zero += 1;
                } else {
                    *buckets.entry(bucket_of(ns)).or_insert(0) += 1;
                }
            }
        }
    }

    /// Nearest-rank percentiles for each `p` (in percent) of `n` values.
    fn percentiles(&mut self, ps: &[f64], n: u64) -> Vec<u64> {
        let rank = |p: f64| ((p / 100.0 * n as f64).ceil() as u64).clamp(1, n.max(1));
        match self {
            Durations::Exact(v) => {
                v.sort_unstable();
                ps.iter()
                    .map(|&p| v.get(rank(p) as usize - 1).copied().unwrap_or(0))
                    .collect()
            }
            Durations::Buckets { zero, buckets } => ps
                .iter()
                .map(|&p| {
                    let want = rank(p);
                    if want <= *zero {
                        return 0;
                    }
                    let mut seen = *zero;
                    for (&i, &c) in buckets.iter() {
                        seen += c;
                        if seen >= want {
                            return bucket_value(i);
                        }
                    }
                    0
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    service: String,
    kind: &'static str,
    name: String,
}

#[derive(Debug, Clone)]
struct Acc {
    count: u64,
    errors: u64,
    panics: u64,
    total_ns: u128,
    max_ns: u64,
    durations: Durations,
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub service: String,
    /// server, client, database, internal, producer or consumer.
    pub kind: &'static str,
    /// Route (servers), or span name (with the peer, for HTTP clients).
    pub name: String,
    pub count: u64,
    pub errors: u64,
    /// errors / count, 0 to 1.
    pub error_ratio: f64,
    pub p50_ns: u64,
    pub p90_ns: u64,
    pub p99_ns: u64,
    pub max_ns: u64,
    pub total_ns: u128,
    pub panics: u64,
    /// Whether the percentiles are exact (see the module docs).
    pub exact: bool,
}

/// Builds the table span by span.
#[derive(Debug, Default)]
pub struct RouteSummary {
    rows: HashMap<Key, Acc>,
    spans: u64,
}

fn text(v: Option<&AttrValue>) -> Option<String> {
    match v? {
        AttrValue::String(s) => Some(s.clone()),
        AttrValue::Int(n) => Some(n.to_string()),
        other => serde_json::to_string(other).ok(),
    }
}

fn key(span: &Span) -> Key {
    let service = text(span.resource.get("service.name")).unwrap_or_else(|| "?".to_owned());
    let a = &span.attributes;
    let db = a.contains_key("db.system.name") || a.contains_key("db.system");
    let kind = match span.kind {
        SpanKind::Server => "server",
        SpanKind::Client if db => "database",
        SpanKind::Client => "client",
        SpanKind::Internal => "internal",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
    };
    let name = match (span.kind, text(a.get("http.route"))) {
        (SpanKind::Server, Some(route)) => match text(a.get("http.request.method")).as_deref() {
            Some("_OTHER") => format!("HTTP {route}"),
            Some(m) => format!("{m} {route}"),
            None => span.name.clone(),
        },
        // An HTTP client span is named by its method only: add the peer.
        (SpanKind::Client, _) if !db && a.contains_key("http.request.method") => {
            match (text(a.get("server.address")), text(a.get("server.port"))) {
                (Some(h), Some(p)) => format!("{} {h}:{p}", span.name),
                (Some(h), None) => format!("{} {h}", span.name),
                _ => span.name.clone(),
            }
        }
        _ => span.name.clone(),
    };
    Key {
        service,
        kind,
        name,
    }
}

impl RouteSummary {
    pub fn new() -> RouteSummary {
        RouteSummary::default()
    }

    pub fn spans(&self) -> u64 {
        self.spans
    }

    pub fn add(&mut self, span: &Span) {
        self.spans += 1;
        let d = span.duration_nanos();
        let acc = self.rows.entry(key(span)).or_insert_with(|| Acc {
            count: 0,
            errors: 0,
            panics: 0,
            total_ns: 0,
            max_ns: 0,
            durations: Durations::Exact(Vec::new()),
        });
        acc.count += 1;
        if span.status.code == StatusCode::Error {
            acc.errors += 1;
        }
        acc.panics += span.events.iter().filter(|e| e.name == "exception").count() as u64;
        acc.total_ns += u128::from(d);
        acc.max_ns = acc.max_ns.max(d);
        acc.durations.push(d);
    }

    /// The rows, most total time first (then by service, kind and name).
    pub fn rows(&mut self) -> Vec<Row> {
        let mut rows: Vec<Row> = self
            .rows
            .iter_mut()
            .map(|(k, acc)| {
                let p = acc.durations.percentiles(&[50.0, 90.0, 99.0], acc.count);
                Row {
                    service: k.service.clone(),
                    kind: k.kind,
                    name: k.name.clone(),
                    count: acc.count,
                    errors: acc.errors,
                    error_ratio: acc.errors as f64 / acc.count.max(1) as f64,
                    p50_ns: p[0],
                    p90_ns: p[1],
                    p99_ns: p[2],
                    max_ns: acc.max_ns,
                    total_ns: acc.total_ns,
                    panics: acc.panics,
                    exact: matches!(acc.durations, Durations::Exact(_)),
                }
            })
            .collect();
        rows.sort_by(|a, b| {
            b.total_ns
                .cmp(&a.total_ns)
                .then_with(|| (&a.service, a.kind, &a.name).cmp(&(&b.service, b.kind, &b.name)))
        });
        rows
    }
}

/// A duration for a person: three significant digits, in ns, µs, ms or s.
pub fn human(ns: u128) -> String {
    let (value, unit) = match ns {
        0..1_000 => return format!("{ns}ns"),
        1_000..1_000_000 => (ns as f64 / 1e3, "µs"),
        1_000_000..1_000_000_000 => (ns as f64 / 1e6, "ms"),
        _ => (ns as f64 / 1e9, "s"),
    };
    let digits = if value >= 100.0 {
        0
    } else if value >= 10.0 {
        1
    } else {
        2
    };
    format!("{value:.digits$}{unit}")
}

/// The table, aligned for a terminal.
pub fn write_table(rows: &[Row], out: &mut impl Write) -> io::Result<()> {
    let header = [
        "SERVICE",
        "KIND",
        "ROUTE / NAME",
        "COUNT",
        "ERRORS",
        "ERR%",
        "P50",
        "P90",
        "P99",
        "MAX",
        "TOTAL",
        "PANICS",
    ];
    let approx = |r: &Row, ns: u64| {
        if r.exact {
            human(u128::from(ns))
        } else {
            format!("~{}", human(u128::from(ns)))
        }
    };
    let cells: Vec<[String; 12]> = rows
        .iter()
        .map(|r| {
            [
                r.service.clone(),
                r.kind.to_owned(),
                r.name.clone(),
                r.count.to_string(),
                r.errors.to_string(),
                format!("{:.1}%", r.error_ratio * 100.0),
                approx(r, r.p50_ns),
                approx(r, r.p90_ns),
                approx(r, r.p99_ns),
                human(u128::from(r.max_ns)),
                human(r.total_ns),
                r.panics.to_string(),
            ]
        })
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |out: &mut dyn Write, cols: &[&str]| -> io::Result<()> {
        let mut s = String::new();
        for (i, (c, w)) in cols.iter().zip(&widths).enumerate() {
            let pad = w.saturating_sub(c.chars().count());
            if i > 0 {
                s.push_str("  ");
            }
            // Text columns left-aligned, numbers right-aligned.
            if i < 3 {
                s.push_str(c);
                if i + 1 < cols.len() {
                    s.push_str(&" ".repeat(pad));
                }
            } else {
                s.push_str(&" ".repeat(pad));
                s.push_str(c);
            }
        }
        writeln!(out, "{}", s.trim_end())
    };
    line(out, &header)?;
    for row in &cells {
        let cols: Vec<&str> = row.iter().map(String::as_str).collect();
        line(out, &cols)?;
    }
    Ok(())
}

/// The rows as one JSON document: `{"spans": N, "rows": [...]}`.
pub fn write_json(spans: u64, rows: &[Row], out: &mut impl Write) -> io::Result<()> {
    #[derive(Serialize)]
    struct Doc<'a> {
        spans: u64,
        rows: &'a [Row],
    }
    serde_json::to_writer_pretty(&mut *out, &Doc { spans, rows }).map_err(io::Error::from)?;
    writeln!(out)
}

/// `--to summary`: read every span, then write the table (or JSON).
pub fn convert<R: BufRead, W: Write>(
    reader: &mut SpanReader<R>,
    out: &mut W,
    json: bool,
) -> Result<Summary, ExportError> {
    let mut table = RouteSummary::new();
    while let Some(span) = reader.next_span()? {
        table.add(&span);
    }
    let rows = table.rows();
    if json {
        write_json(table.spans(), &rows, out)?;
    } else {
        write_table(&rows, out)?;
    }
    out.flush()?;
    Ok(Summary {
        spans: table.spans(),
        skipped: reader.skipped(),
        ..Default::default()
    })
}

/// A writer that passes span NDJSON through to `inner` and adds every span
/// in it to a shared [`RouteSummary`]: how `record --summary` sees the spans
/// it writes without the recorder knowing. Lines that are not spans are
/// passed through and not counted.
pub struct Tap<W> {
    inner: W,
    partial: Vec<u8>,
    table: Arc<Mutex<RouteSummary>>,
}

impl<W: Write> Tap<W> {
    pub fn new(inner: W) -> (Tap<W>, Arc<Mutex<RouteSummary>>) {
        let table = Arc::new(Mutex::new(RouteSummary::new()));
        (
            Tap {
                inner,
                partial: Vec::new(),
                table: Arc::clone(&table),
            },
            table,
        )
    }

    fn take_lines(&mut self) {
        let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return;
        };
        let rest = self.partial.split_off(end + 1);
        let done = std::mem::replace(&mut self.partial, rest);
        let Ok(mut table) = self.table.lock() else {
            return;
        };
        for line in done.split(|&b| b == b'\n') {
            if let Ok(text) = std::str::from_utf8(line)
                && !text.trim().is_empty()
                && let Ok(span) = Span::from_json_line(text)
            {
                table.add(&span);
            }
        }
    }
}

impl<W: Write> Write for Tap<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.partial.extend_from_slice(&buf[..n]);
        self.take_lines();
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::reader::tests::line;

    fn summary_of(lines: &[String]) -> Vec<Row> {
        let mut t = RouteSummary::new();
        for l in lines {
            t.add(&Span::from_json_line(l).expect("span"));
        }
        t.rows()
    }

    #[test]
    fn nearest_rank_percentiles() {
        // Durations 1..=100 µs: p50 = 50th, p90 = 90th, p99 = 99th value.
        let lines: Vec<String> = (1..=100u64)
            .map(|i| line(i as u8, 1, None, "GET /r", 0, i * 1000))
            .collect();
        let rows = summary_of(&lines);
        assert_eq!(rows.len(), 1);
        let r = &rows[0];
        assert_eq!(
            (r.p50_ns, r.p90_ns, r.p99_ns, r.max_ns),
            (50_000, 90_000, 99_000, 100_000)
        );
        assert_eq!(r.count, 100);
        assert_eq!(r.total_ns, 5050 * 1000);
        assert!(r.exact);
        // One value: every percentile is it.
        let rows = summary_of(&[line(1, 1, None, "x", 5, 12)]);
        assert_eq!((rows[0].p50_ns, rows[0].p99_ns), (7, 7));
    }

    #[test]
    fn buckets_stay_within_one_percent() {
        let mut d = Durations::Exact(Vec::new());
        let mut exact: Vec<u64> = (0..EXACT_LIMIT as u64 + 1000)
            .map(|i| 1 + i * 7919 % 1_000_003)
            .collect();
        for &v in &exact {
            d.push(v);
        }
        assert!(matches!(d, Durations::Buckets { .. }));
        exact.sort_unstable();
        let n = exact.len() as u64;
        let got = d.percentiles(&[50.0, 90.0, 99.0], n);
        for (p, g) in [50.0, 90.0, 99.0].iter().zip(got) {
            let want = exact[((p / 100.0 * n as f64).ceil() as usize) - 1] as f64;
            assert!(
                (g as f64 - want).abs() <= want * ALPHA + 1.0,
                "p{p}: {g} vs {want}"
            );
        }
    }

    #[test]
    fn table_is_aligned_and_sorted_by_total_time() {
        let mut lines = vec![line(1, 1, None, "GET /slow", 0, 9_000_000)];
        lines.push(line(2, 1, None, "GET /fast", 0, 1_000).replace(r#""/r""#, r#""/fast""#));
        let rows = summary_of(&lines);
        let mut out = Vec::new();
        write_table(&rows, &mut out).expect("table");
        let text = String::from_utf8(out).expect("utf8");
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("SERVICE"));
        assert!(lines[1].contains("9.00ms"), "{text}");
        assert!(lines[2].contains("1.00µs"), "{text}");
        let col = |l: &str| l.find("PANICS").or_else(|| l.rfind('0'));
        assert_eq!(col(lines[0]).map(|c| c + 5), col(lines[1]));
    }

    #[test]
    fn tap_counts_what_passes_through() {
        let (mut tap, table) = Tap::new(Vec::new());
        let l = line(1, 1, None, "GET /r", 0, 10);
        let bytes = format!("{l}\n{l}\n");
        let (a, b) = bytes.as_bytes().split_at(10);
        tap.write_all(a).expect("write");
        tap.write_all(b).expect("write");
        assert_eq!(table.lock().expect("lock").spans(), 2);
        assert_eq!(tap.inner, bytes.as_bytes());
    }

    #[test]
    fn human_durations() {
        assert_eq!(human(999), "999ns");
        assert_eq!(human(1_234), "1.23µs");
        assert_eq!(human(12_345_678), "12.3ms");
        assert_eq!(human(123_456_789_000), "123s");
    }
}
