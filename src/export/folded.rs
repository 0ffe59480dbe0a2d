//! `--to folded` (Brendan Gregg's folded stacks: `root;child;span N`, with N
//! the self time in nanoseconds summed over every span with that stack) and
//! `--to flamegraph` (the same stacks drawn as an SVG by inferno).
//!
//! Stacks come from span ancestry under the span's service (see
//! [`super::stacks`]), so the spans of a trace are grouped first (see
//! [`super::traces`]); only the per-stack totals are kept after that.
//!
//! A recording with CPU samples folds those instead: CPU nanoseconds per Go
//! stack, under the name of the span (the request) each ran in
//! ([`super::cpu::FoldedCpu`]). `--span-name` and `--trace-id` narrow
//! either to one span name or one trace.

use std::collections::HashMap;
use std::io::{BufRead, Write};

use super::cpu::{FoldedCpu, SampleFilter};
use super::reader::{RecordView, SpanReader};
use super::stacks::{self, Names, StackSpan, frame};
use super::traces::{Trace, TraceGrouper};
use super::{ExportError, Summary};

/// Self time per folded stack, in nanoseconds.
#[derive(Debug, Default)]
pub struct FoldedStacks {
    names: Names,
    /// Keyed by the frames (indices into `names`), root first.
    totals: HashMap<Vec<u32>, u64>,
}

/// Adds each trace's self time per stack to `totals`.
struct Folder<'t> {
    totals: &'t mut HashMap<Vec<u32>, u64>,
    path: Vec<usize>,
    frames: Vec<u32>,
}

impl Folder<'_> {
    fn add_trace(&mut self, trace: &Trace<StackSpan>) {
        let self_times = trace.self_times();
        for (i, &self_ns) in self_times.iter().enumerate() {
            if self_ns == 0 {
                continue;
            }
            stacks::frames(trace, i, &mut self.path, &mut self.frames);
            match self.totals.get_mut(self.frames.as_slice()) {
                Some(total) => *total += self_ns,
                None => {
                    self.totals.insert(self.frames.clone(), self_ns);
                }
            }
        }
    }
}

impl FoldedStacks {
    /// `stack N` lines, sorted by stack.
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .totals
            .iter()
            .map(|(frames, n)| {
                let mut line = String::new();
                for (i, &f) in frames.iter().enumerate() {
                    if i > 0 {
                        line.push(';');
                    }
                    line.push_str(self.names.name(f));
                }
                line.push(' ');
                line.push_str(&n.to_string());
                line
            })
            .collect();
        lines.sort();
        lines
    }
}

/// What a recording folds into: CPU samples when it has any, else spans.
pub struct Folded {
    pub lines: Vec<String>,
    /// The lines are CPU samples' stacks (nanoseconds of CPU).
    pub cpu: bool,
}

/// Read every record and fold the stacks (see the module docs).
pub fn fold<R: BufRead>(
    reader: &mut SpanReader<R>,
    window: u64,
    filter: &SampleFilter,
) -> Result<(Folded, Summary), ExportError> {
    let mut names = Names::default();
    // The frame of the wanted span name, interned first so that traces can
    // be matched on it while `names` is lent to the reading loop.
    let wanted = filter.span_name.as_deref().map(|n| names.id(&frame(n)));
    let mut totals = HashMap::new();
    let mut folder = Folder {
        totals: &mut totals,
        path: Vec::new(),
        frames: Vec::new(),
    };
    let mut cpu = FoldedCpu::default();
    let mut any_sample = false;
    let mut grouper = TraceGrouper::new(window);
    let mut spans = 0u64;
    let mut emit = |trace: Trace<StackSpan>| -> Result<(), ExportError> {
        if wanted.is_none_or(|n| trace.spans.iter().any(|s| s.name == n)) {
            folder.add_trace(&trace);
        }
        Ok(())
    };
    reader.for_each_record(|record| match record {
        RecordView::Span(span) => {
            spans += 1;
            if !any_sample && filter.trace_id.is_none_or(|t| t == span.trace_id) {
                grouper.push(StackSpan::new(&span, &mut names, frame, false), &mut emit)?;
            }
            Ok::<(), ExportError>(())
        }
        RecordView::Sample(s) => {
            any_sample = true;
            if filter.keeps(&s) {
                cpu.add(&s);
            }
            Ok(())
        }
    })?;
    let peak = grouper.peak_buffered();
    if !any_sample {
        grouper.finish(&mut emit)?;
    }
    let lines = if any_sample {
        cpu.lines()
    } else {
        FoldedStacks { names, totals }.lines()
    };
    Ok((
        Folded {
            lines,
            cpu: any_sample,
        },
        Summary {
            spans,
            samples: cpu.samples,
            skipped: reader.skipped(),
            peak_buffered_spans: peak,
            ..Default::default()
        },
    ))
}

/// `--to folded`.
pub fn convert_folded<R: BufRead, W: Write>(
    reader: &mut SpanReader<R>,
    out: &mut W,
    window: u64,
    filter: &SampleFilter,
) -> Result<Summary, ExportError> {
    let (folded, summary) = fold(reader, window, filter)?;
    for line in &folded.lines {
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(summary)
}

/// The SVG written when there is nothing to draw (inferno refuses empty input).
const EMPTY_SVG: &str = concat!(
    r#"<?xml version="1.0" standalone="no"?>"#,
    "\n",
    r#"<svg version="1.1" width="1200" height="60" xmlns="http://www.w3.org/2000/svg">"#,
    r#"<text x="600" y="35" text-anchor="middle" font-family="Verdana" font-size="14">no spans</text></svg>"#,
    "\n"
);

/// `--to flamegraph`.
pub fn convert_flamegraph<R: BufRead, W: Write>(
    reader: &mut SpanReader<R>,
    out: &mut W,
    window: u64,
    filter: &SampleFilter,
) -> Result<Summary, ExportError> {
    let (folded, summary) = fold(reader, window, filter)?;
    let lines = &folded.lines;
    if lines.is_empty() {
        out.write_all(EMPTY_SVG.as_bytes())?;
    } else {
        let mut options = inferno::flamegraph::Options::default();
        if folded.cpu {
            options.title = "goprobe CPU samples (CPU time)".to_owned();
            options.name_type = "Function:".to_owned();
        } else {
            options.title = "goprobe spans (self time)".to_owned();
            options.name_type = "Span:".to_owned();
        }
        options.count_name = "ns".to_owned();
        inferno::flamegraph::from_lines(&mut options, lines.iter().map(String::as_str), &mut *out)?;
    }
    out.flush()?;
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::reader::tests::line;

    fn input() -> String {
        [
            line(1, 2, Some(1), "db;query", 10, 40),
            line(1, 1, None, "GET /a", 0, 100),
            line(2, 1, None, "GET /a", 0, 50),
            line(3, 5, Some(4), "orphan", 0, 7),
        ]
        .join("\n")
    }

    #[test]
    fn folds_self_time_per_stack() {
        let mut out = Vec::new();
        let summary = convert_folded(
            &mut SpanReader::new(input().as_bytes(), false),
            &mut out,
            10,
            &SampleFilter::default(),
        )
        .expect("convert");
        assert_eq!(summary.spans, 4);
        assert_eq!(
            String::from_utf8(out).expect("utf8"),
            "svc;GET /a 120\nsvc;GET /a;db:query 30\nsvc;orphan 7\n"
        );
    }

    #[test]
    fn span_name_and_trace_filters_keep_whole_traces() {
        let run = |filter: SampleFilter| {
            let mut out = Vec::new();
            convert_folded(
                &mut SpanReader::new(input().as_bytes(), false),
                &mut out,
                10,
                &filter,
            )
            .expect("convert");
            String::from_utf8(out).expect("utf8")
        };
        let named = run(SampleFilter {
            span_name: Some("db;query".to_owned()),
            trace_id: None,
        });
        assert_eq!(named, "svc;GET /a 70\nsvc;GET /a;db:query 30\n");
        let one = run(SampleFilter {
            span_name: None,
            trace_id: Some(crate::span::TraceId::from_hex(&format!("{:032x}", 2)).expect("id")),
        });
        assert_eq!(one, "svc;GET /a 50\n");
    }

    /// inferno's SVG carries a DOCTYPE, so DTDs must be allowed.
    fn parse_svg(svg: &str) {
        let options = roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        };
        let doc = roxmltree::Document::parse_with_options(svg, options).expect("well-formed");
        assert_eq!(doc.root_element().tag_name().name(), "svg");
    }

    #[test]
    fn flamegraph_is_svg_even_when_empty() {
        let mut out = Vec::new();
        convert_flamegraph(
            &mut SpanReader::new(input().as_bytes(), false),
            &mut out,
            10,
            &SampleFilter::default(),
        )
        .expect("convert");
        let svg = String::from_utf8(out).expect("utf8");
        parse_svg(&svg);
        assert!(svg.contains("db:query"));
        let mut empty = Vec::new();
        convert_flamegraph(
            &mut SpanReader::new(&b""[..], false),
            &mut empty,
            10,
            &SampleFilter::default(),
        )
        .expect("convert");
        parse_svg(std::str::from_utf8(&empty).expect("utf8"));
    }
}
