//! `goprobe convert`: arguments and glue into [`crate::export`].

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};

use crate::exit::Status;
use crate::export::{
    self, ExportError, Summary, chrome, cpu::SampleFilter, folded, otlp_http, otlp_json, pprof,
    reader::SpanReader, text,
};
use crate::span::TraceId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// OTLP/JSON, one ExportTraceServiceRequest per line (Collector file exporter format).
    OtlpJson,
    /// OTLP/HTTP protobuf pushed to --endpoint.
    Otlp,
    /// Gzipped pprof profile.proto for `go tool pprof`: a CPU profile when
    /// the recording has CPU samples (`record --cpu`), else span times.
    Pprof,
    /// Folded stacks: CPU nanoseconds per Go stack under its span's name
    /// when there are CPU samples, else span self time (`root;child;span NANOS`).
    Folded,
    /// Flame graph SVG of the folded stacks.
    Flamegraph,
    /// Trace Event Format JSON for Perfetto and chrome://tracing (CPU
    /// samples as instant events on their trace's track).
    Chrome,
    /// Human-readable listing (opentelemetry-stdout; stdout only).
    Text,
}

/// Convert span NDJSON (as `goprobe record` writes it) into other formats.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Output format.
    #[arg(long = "to", value_enum, value_name = "FORMAT")]
    pub to: Format,
    /// Span NDJSON to read; `-` or absent for stdin.
    #[arg(value_name = "INPUT")]
    pub input: Option<PathBuf>,
    /// Where to write; `-` or absent for stdout.
    #[arg(short = 'o', long = "output", value_name = "OUTPUT")]
    pub output: Option<PathBuf>,
    /// OTLP/HTTP collector base URL (spans go to URL/v1/traces); required with --to otlp.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Skip malformed lines (counted on stderr) instead of stopping at the first.
    #[arg(long)]
    pub skip_invalid: bool,
    /// Spans per OTLP request / OTLP-JSON line.
    #[arg(long, value_name = "N", default_value_t = export::DEFAULT_BATCH)]
    pub batch_size: usize,
    /// pprof/folded/flamegraph: a trace is complete once none of its spans was
    /// seen in this many spans (bounds memory; later stragglers become roots).
    #[arg(long, value_name = "SPANS", default_value_t = export::traces::DEFAULT_WINDOW)]
    pub group_window: u64,
    /// otlp: attempts per batch, including the first.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub max_tries: u32,
    /// pprof/folded/flamegraph: only the CPU samples taken in a span of this
    /// name (the request's, e.g. 'GET /report', or the innermost span's);
    /// without samples, the traces with a span of this name.
    #[arg(long, value_name = "NAME")]
    pub span_name: Option<String>,
    /// pprof/folded/flamegraph: only this trace's CPU samples (or spans).
    #[arg(long, value_name = "TRACE_ID", value_parser = parse_trace_id)]
    pub trace_id: Option<TraceId>,
}

fn parse_trace_id(s: &str) -> Result<TraceId, String> {
    TraceId::from_hex(s)
}

fn is_dash(path: &Option<PathBuf>) -> bool {
    path.as_ref().is_none_or(|p| p.as_os_str() == "-")
}

pub fn run(args: Args) -> anyhow::Result<Status> {
    if args.to == Format::Otlp && args.endpoint.is_none() {
        bail!("--to otlp needs --endpoint URL");
    }
    if args.to != Format::Otlp && args.endpoint.is_some() {
        bail!("--endpoint only applies to --to otlp");
    }
    if args.to == Format::Text && !is_dash(&args.output) {
        bail!(
            "--to text prints to stdout only (opentelemetry-stdout writes there); redirect it instead of -o"
        );
    }
    let filter = SampleFilter {
        span_name: args.span_name.clone(),
        trace_id: args.trace_id,
    };
    if !filter.is_empty() && !matches!(args.to, Format::Pprof | Format::Folded | Format::Flamegraph)
    {
        bail!("--span-name and --trace-id apply to --to pprof, folded and flamegraph");
    }
    let input: Box<dyn BufRead> = if is_dash(&args.input) {
        Box::new(io::stdin().lock())
    } else {
        let path = args.input.as_deref().unwrap_or_else(|| "-".as_ref());
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        Box::new(BufReader::with_capacity(1 << 16, file))
    };
    let mut reader = SpanReader::new(input, args.skip_invalid);
    let output = || -> anyhow::Result<Box<dyn Write>> {
        Ok(if is_dash(&args.output) {
            Box::new(BufWriter::with_capacity(1 << 16, io::stdout().lock()))
        } else {
            let path = args.output.as_deref().unwrap_or_else(|| "-".as_ref());
            let file =
                File::create(path).with_context(|| format!("creating {}", path.display()))?;
            Box::new(BufWriter::with_capacity(1 << 16, file))
        })
    };
    let result: Result<Summary, ExportError> = match args.to {
        Format::OtlpJson => otlp_json::convert(&mut reader, &mut output()?, args.batch_size),
        Format::Otlp => {
            let endpoint = args.endpoint.as_deref().unwrap_or_default();
            let policy = otlp_http::RetryPolicy {
                max_tries: args.max_tries.max(1),
                ..Default::default()
            };
            let pusher = otlp_http::Pusher::new(endpoint, policy);
            otlp_http::convert(&mut reader, &pusher, args.batch_size)
        }
        Format::Pprof => pprof::convert(&mut reader, output()?, args.group_window, &filter),
        Format::Folded => {
            folded::convert_folded(&mut reader, &mut output()?, args.group_window, &filter)
        }
        Format::Flamegraph => {
            folded::convert_flamegraph(&mut reader, &mut output()?, args.group_window, &filter)
        }
        Format::Chrome => chrome::convert(&mut reader, output()?),
        Format::Text => {
            text::die_quietly_on_broken_pipe();
            text::convert(&mut reader, args.batch_size)
        }
    };
    for warning in reader.take_warnings() {
        eprintln!("goprobe convert: skipped {warning}");
    }
    let summary = result?;
    let mut line = format!("goprobe convert: {} spans", summary.spans);
    if summary.samples > 0 {
        line.push_str(&format!(", {} CPU samples", summary.samples));
    }
    if summary.skipped > 0 {
        line.push_str(&format!(", {} invalid lines skipped", summary.skipped));
    }
    if summary.peak_buffered_spans > 0 {
        line.push_str(&format!(
            ", at most {} spans held while grouping by trace",
            summary.peak_buffered_spans
        ));
    }
    eprintln!("{line}");
    if args.to == Format::Otlp {
        let mut line = format!(
            "goprobe convert: OTLP {}: {} spans accepted, {} rejected",
            otlp_http::traces_url(args.endpoint.as_deref().unwrap_or_default()),
            summary.accepted,
            summary.rejected
        );
        if let Some(message) = &summary.rejected_message {
            line.push_str(&format!(" ({message})"));
        }
        eprintln!("{line}");
        if summary.rejected > 0 {
            return Ok(Status::PartialError);
        }
    }
    Ok(Status::Success)
}
