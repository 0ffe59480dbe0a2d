//! `--to html`: one self-contained HTML page with a waterfall (Gantt view)
//! of one trace (`--trace-id`) or of the slowest traces (`--slowest N`,
//! default 1), for incident rooms that may not upload production traces to
//! a web UI.
//!
//! The page is `waterfall.html` (beside this file) with the traces embedded
//! as JSON; its script draws one row per span, in tree order (a parent
//! before its children, siblings by start time), indented by depth, as a bar
//! on the trace's time axis, coloured by status, with span events as marks
//! and the attributes shown on click. A Content-Security-Policy forbids
//! every fetch, so opening the file makes no network access.
//!
//! Memory: the selected traces only. `--trace-id` keeps that trace's spans;
//! `--slowest` groups spans by trace with [`TraceGrouper`] (bounded by the
//! group window) and keeps the N longest complete traces.

use std::io::{BufRead, Write};

use serde::Serialize;

use super::reader::SpanReader;
use super::traces::{Trace, TraceGrouper};
use super::{ExportError, Summary};
use crate::span::{AttrValue, Attributes, SpanKind, StatusCode, TraceId};

const TEMPLATE: &str = include_str!("waterfall.html");

/// Which traces to draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Selection {
    Trace(TraceId),
    Slowest(usize),
}

#[derive(Serialize)]
struct PageSpan {
    id: String,
    parent: Option<String>,
    /// The span names a parent that is not in the trace.
    parent_missing: bool,
    depth: usize,
    name: String,
    kind: &'static str,
    service: String,
    /// Nanoseconds from the trace's start.
    start: u64,
    duration: u64,
    status: &'static str,
    status_message: Option<String>,
    attributes: Vec<(String, String)>,
    resource: Vec<(String, String)>,
    events: Vec<PageEvent>,
}

#[derive(Serialize)]
struct PageEvent {
    name: String,
    time: u64,
    attributes: Vec<(String, String)>,
}

#[derive(Serialize)]
struct PageTrace {
    trace_id: String,
    /// Wall-clock start, ns since the Unix epoch (a string: beyond 2^53).
    start_unix_nano: String,
    duration: u64,
    spans: Vec<PageSpan>,
}

#[derive(Serialize)]
struct Page<'a> {
    generator: &'a str,
    traces: Vec<PageTrace>,
}

fn shown(attrs: &Attributes) -> Vec<(String, String)> {
    attrs
        .iter()
        .map(|(k, v)| {
            let text = match v {
                AttrValue::String(s) => s.clone(),
                other => serde_json::to_string(other).unwrap_or_default(),
            };
            (k.clone(), text)
        })
        .collect()
}

fn kind_name(kind: SpanKind) -> &'static str {
    match kind {
        SpanKind::Internal => "internal",
        SpanKind::Server => "server",
        SpanKind::Client => "client",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
    }
}

/// Start and length of a trace: its earliest start to its latest end.
fn extent(trace: &Trace) -> (u64, u64) {
    let start = trace
        .spans
        .iter()
        .map(|s| s.start_time_unix_nano)
        .min()
        .unwrap_or(0);
    let end = trace
        .spans
        .iter()
        .map(|s| s.end_time_unix_nano)
        .max()
        .unwrap_or(0);
    (start, end.saturating_sub(start))
}

/// Span indices in tree order, each with its depth: roots by start time,
/// then each span's children by start time (ties in input order).
pub fn tree_order(trace: &Trace) -> Vec<(usize, usize)> {
    let n = trace.spans.len();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut roots = Vec::new();
    for (i, p) in trace.parents.iter().enumerate() {
        match p {
            Some(p) => children[*p].push(i),
            None => roots.push(i),
        }
    }
    let by_start = |v: &mut Vec<usize>| {
        v.sort_by_key(|&i| (trace.spans[i].start_time_unix_nano, i));
    };
    by_start(&mut roots);
    for c in &mut children {
        by_start(c);
    }
    let mut out = Vec::with_capacity(n);
    let mut stack: Vec<(usize, usize)> = roots.iter().rev().map(|&r| (r, 0)).collect();
    while let Some((i, depth)) = stack.pop() {
        out.push((i, depth));
        stack.extend(children[i].iter().rev().map(|&c| (c, depth + 1)));
    }
    out
}

fn page_trace(trace: &Trace) -> PageTrace {
    let (start, duration) = extent(trace);
    let spans = tree_order(trace)
        .into_iter()
        .map(|(i, depth)| {
            let s = &trace.spans[i];
            PageSpan {
                id: s.span_id.to_string(),
                parent: trace.parents[i].map(|p| trace.spans[p].span_id.to_string()),
                parent_missing: trace.parents[i].is_none() && s.parent_span_id.is_some(),
                depth,
                name: s.name.clone(),
                kind: kind_name(s.kind),
                service: match s.resource.get("service.name") {
                    Some(AttrValue::String(n)) => n.clone(),
                    _ => String::new(),
                },
                start: s.start_time_unix_nano - start,
                duration: s.duration_nanos(),
                status: match s.status.code {
                    StatusCode::Unset => "unset",
                    StatusCode::Ok => "ok",
                    StatusCode::Error => "error",
                },
                status_message: s.status.message.clone(),
                attributes: shown(&s.attributes),
                resource: shown(&s.resource),
                events: s
                    .events
                    .iter()
                    .map(|e| PageEvent {
                        name: e.name.clone(),
                        time: e.time_unix_nano.saturating_sub(start),
                        attributes: shown(&e.attributes),
                    })
                    .collect(),
            }
        })
        .collect();
    PageTrace {
        trace_id: trace
            .spans
            .first()
            .map(|s| s.trace_id.to_string())
            .unwrap_or_default(),
        start_unix_nano: start.to_string(),
        duration,
        spans,
    }
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The page for some traces (slowest first, as given).
fn render(traces: &[Trace], out: &mut impl Write) -> Result<(), ExportError> {
    let generator = concat!("goprobe ", env!("CARGO_PKG_VERSION"));
    let page = Page {
        generator,
        traces: traces.iter().map(page_trace).collect(),
    };
    // Inside <script>, "</script>" (or any "<") in a string would end the
    // element: JSON lets "<" be written as \u003c.
    let data = serde_json::to_string(&page)
        .map_err(std::io::Error::from)?
        .replace('<', "\\u003c");
    let title = match page.traces.as_slice() {
        [one] => format!("trace {} — goprobe waterfall", one.trace_id),
        many => format!("{} slowest traces — goprobe waterfall", many.len()),
    };
    let html = TEMPLATE
        .replace("{{TITLE}}", &escape_html(&title))
        .replacen("{{DATA}}", &data, 1);
    out.write_all(html.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Read spans, pick the traces, write the page.
pub fn convert<R: BufRead, W: Write>(
    reader: &mut SpanReader<R>,
    out: &mut W,
    selection: Selection,
    group_window: u64,
) -> Result<Summary, ExportError> {
    let mut spans = 0u64;
    let peak: u64;
    let traces: Vec<Trace> = match selection {
        Selection::Trace(id) => {
            let mut kept = Vec::new();
            while let Some(span) = reader.next_span()? {
                spans += 1;
                if span.trace_id == id {
                    kept.push(span);
                }
            }
            if kept.is_empty() {
                return Err(ExportError::Other(format!(
                    "trace {id} is not in the input ({spans} spans read): list the trace ids with `jq -r .trace_id | sort -u`"
                )));
            }
            peak = kept.len() as u64;
            vec![Trace::new(kept)]
        }
        Selection::Slowest(n) => {
            let n = n.max(1);
            let mut best: Vec<(u64, Trace)> = Vec::new();
            let mut keep = |t: Trace| -> Result<(), ExportError> {
                let d = extent(&t).1;
                if best.len() < n || best.last().is_some_and(|(min, _)| d > *min) {
                    let at = best.partition_point(|(x, _)| *x >= d);
                    best.insert(at, (d, t));
                    best.truncate(n);
                }
                Ok(())
            };
            let mut grouper = TraceGrouper::new(group_window);
            while let Some(span) = reader.next_span()? {
                spans += 1;
                grouper.push(span, &mut keep)?;
            }
            peak = grouper.peak_buffered();
            grouper.finish(&mut keep)?;
            best.into_iter().map(|(_, t)| t).collect()
        }
    };
    render(&traces, out)?;
    Ok(Summary {
        spans,
        skipped: reader.skipped(),
        peak_buffered_spans: peak,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::reader::tests::line;

    fn page_of(input: &str, selection: Selection) -> String {
        let mut out = Vec::new();
        convert(
            &mut SpanReader::new(input.as_bytes(), false),
            &mut out,
            selection,
            100,
        )
        .expect("convert");
        String::from_utf8(out).expect("utf8")
    }

    fn data(page: &str) -> serde_json::Value {
        let start = page.find(r#"id="goprobe-data">"#).expect("data") + 18;
        let end = start + page[start..].find("</script>").expect("end");
        serde_json::from_str(&page[start..end]).expect("json")
    }

    #[test]
    fn tree_order_is_parents_first_siblings_by_start() {
        let input = [
            line(1, 3, Some(1), "late child", 50, 60),
            line(1, 2, Some(1), "early child", 10, 20),
            line(1, 4, Some(2), "grandchild", 11, 12),
            line(1, 1, None, "root", 0, 100),
            line(2, 1, None, "other trace", 0, 1),
        ]
        .join("\n");
        let v = data(&page_of(&input, Selection::Slowest(1)));
        let names: Vec<(&str, u64)> = v["traces"][0]["spans"]
            .as_array()
            .expect("spans")
            .iter()
            .map(|s| {
                (
                    s["name"].as_str().expect("name"),
                    s["depth"].as_u64().expect("depth"),
                )
            })
            .collect();
        assert_eq!(
            names,
            [
                ("root", 0),
                ("early child", 1),
                ("grandchild", 2),
                ("late child", 1)
            ]
        );
        assert_eq!(v["traces"].as_array().map(Vec::len), Some(1));
        assert_eq!(v["traces"][0]["duration"], 100);
    }

    #[test]
    fn script_text_cannot_close_the_element() {
        let input = line(1, 1, None, "</script><b>x", 0, 1);
        let page = page_of(
            &input,
            Selection::Trace(TraceId::from_hex(&format!("{:032x}", 1)).expect("id")),
        );
        assert_eq!(
            page.matches("</script>").count(),
            TEMPLATE.matches("</script>").count()
        );
        assert_eq!(
            data(&page)["traces"][0]["spans"][0]["name"],
            "</script><b>x"
        );
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "no URLs in the page"
        );
    }

    #[test]
    fn slowest_keeps_the_longest_traces_first_and_reports_missing_ids() {
        let input = [
            line(1, 1, None, "a", 0, 10),
            line(2, 1, None, "b", 0, 30),
            line(3, 1, None, "c", 0, 20),
        ]
        .join("\n");
        let v = data(&page_of(&input, Selection::Slowest(2)));
        let names: Vec<&str> = v["traces"]
            .as_array()
            .expect("traces")
            .iter()
            .map(|t| t["spans"][0]["name"].as_str().expect("name"))
            .collect();
        assert_eq!(names, ["b", "c"]);
        let missing = TraceId::from_hex(&format!("{:032x}", 9)).expect("id");
        let err = convert(
            &mut SpanReader::new(input.as_bytes(), false),
            &mut Vec::new(),
            Selection::Trace(missing),
            100,
        )
        .expect_err("missing trace");
        assert!(
            err.to_string().contains("not in the input (3 spans read)"),
            "{err}"
        );
    }
}
