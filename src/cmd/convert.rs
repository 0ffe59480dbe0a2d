//! `goprobe convert`: arguments and glue into [`crate::export`].

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};

use super::output::ReplaceFile;
use crate::exit::Status;
use crate::export::metrics::live::{self, Emitter, Encoding, Sink};
use crate::export::{
    self, ExportError, Summary, background::BackgroundWriter, chrome, folded, html, otlp_http,
    otlp_json, pprof, reader::SpanReader, summary, text,
};
use crate::loss::Losses;
use crate::span::TraceId;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// OTLP/JSON, one ExportTraceServiceRequest per line (Collector file exporter format).
    OtlpJson,
    /// OTLP/HTTP protobuf pushed to --endpoint.
    Otlp,
    /// Gzipped pprof profile.proto for `go tool pprof`.
    Pprof,
    /// Folded stacks (`service;root;child;span NANOS`, self time).
    Folded,
    /// Flame graph SVG of self time.
    Flamegraph,
    /// Trace Event Format JSON for Perfetto and chrome://tracing.
    Chrome,
    /// Human-readable listing.
    Text,
    /// RED metrics and a panic counter (--format prometheus or otlp-json).
    Metrics,
    /// A table per service and route: count, errors, p50/p90/p99/max, panics.
    Summary,
    /// A self-contained HTML page with a waterfall of one trace or the slowest.
    Html,
}

/// How `--to metrics` writes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MetricsFormat {
    /// Prometheus text exposition format 0.0.4.
    Prometheus,
    /// OTLP/JSON, one ExportMetricsServiceRequest per line.
    OtlpJson,
}

/// What `--to otlp` pushes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SignalArg {
    /// The spans themselves, to URL/v1/traces.
    Traces,
    /// Metrics computed from the spans (as --to metrics), to URL/v1/metrics.
    Metrics,
}

/// Convert span NDJSON (as `goprobe record` writes it) into other formats:
/// traces, profiles, metrics, a per-route summary, an HTML waterfall.
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
    /// OTLP/HTTP collector base URL (spans go to URL/v1/traces, metrics to
    /// URL/v1/metrics); required with --to otlp.
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Skip malformed lines (counted on stderr) instead of stopping at the first.
    #[arg(long)]
    pub skip_invalid: bool,
    /// Spans per OTLP request / OTLP-JSON line.
    #[arg(long, value_name = "N", default_value_t = export::DEFAULT_BATCH)]
    pub batch_size: usize,
    /// pprof/folded/flamegraph/html: a trace is complete once none of its spans was
    /// seen in this many spans (bounds memory; later stragglers become roots).
    #[arg(long, value_name = "SPANS", default_value_t = export::traces::DEFAULT_WINDOW)]
    pub group_window: u64,
    /// otlp: attempts per batch, including the first.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub max_tries: u32,
    /// metrics: the exposition format.
    #[arg(long, value_enum, value_name = "FORMAT", default_value = "prometheus")]
    pub format: Option<MetricsFormat>,
    /// otlp: push the spans (traces) or metrics computed from them.
    #[arg(long, value_enum, value_name = "SIGNAL", default_value = "traces")]
    pub signal: SignalArg,
    /// metrics (and otlp --signal metrics): write the cumulative values every
    /// DURATION while the input is open (for `record | convert`), and once
    /// more at its end; with -o FILE and Prometheus the file is replaced each time.
    #[arg(long, value_name = "DURATION", value_parser = super::target::parse_duration)]
    pub interval: Option<Duration>,
    /// summary: JSON instead of the table.
    #[arg(long)]
    pub json: bool,
    /// html: draw this trace (32 hex digits).
    #[arg(long, value_name = "ID", value_parser = TraceId::from_hex)]
    pub trace_id: Option<TraceId>,
    /// html: draw the N slowest traces (default 1), slowest first.
    #[arg(long, value_name = "N", conflicts_with = "trace_id")]
    pub slowest: Option<usize>,
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
    check_format_flags(&args)?;
    if args.interval.is_some() {
        return run_live(&args);
    }
    let input: Box<dyn BufRead> = if is_dash(&args.input) {
        Box::new(io::stdin().lock())
    } else {
        let path = args.input.as_deref().unwrap_or_else(|| "-".as_ref());
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        Box::new(BufReader::with_capacity(1 << 16, file))
    };
    let mut reader = SpanReader::new(input, args.skip_invalid);
    // An existing -o FILE is replaced only by a complete conversion.
    let mut replace = None;
    let mut output = || -> anyhow::Result<Box<dyn Write>> {
        let (out, guard) = open_output(&args)?;
        replace = guard;
        Ok(out)
    };
    let result: Result<Summary, ExportError> = match args.to {
        Format::OtlpJson => otlp_json::convert(&mut reader, &mut output()?, args.batch_size),
        Format::Otlp if args.signal == SignalArg::Metrics => live::convert(
            &mut reader,
            metrics_emitter(&args, Sink::Push(pusher(&args, otlp_http::Signal::Metrics))),
        ),
        Format::Otlp => {
            let pusher = pusher(&args, otlp_http::Signal::Traces);
            otlp_http::convert(&mut reader, &pusher, args.batch_size)
        }
        Format::Metrics => {
            live::convert(&mut reader, metrics_emitter(&args, Sink::Stream(output()?)))
        }
        Format::Summary => summary::convert(&mut reader, &mut output()?, args.json),
        Format::Html => {
            let selection = match args.trace_id {
                Some(id) => html::Selection::Trace(id),
                None => html::Selection::Slowest(args.slowest.unwrap_or(1)),
            };
            html::convert(&mut reader, &mut output()?, selection, args.group_window)
        }
        Format::Pprof => pprof::convert(&mut reader, output()?, args.group_window),
        Format::Folded => folded::convert_folded(&mut reader, &mut output()?, args.group_window),
        Format::Flamegraph => {
            folded::convert_flamegraph(&mut reader, &mut output()?, args.group_window)
        }
        Format::Chrome => chrome::convert(&mut reader, output()?),
        Format::Text => text::convert(&mut reader, output()?),
    };
    for warning in reader.take_warnings() {
        eprintln!("goprobe convert: skipped {warning}");
    }
    let summary = result?;
    if let Some(guard) = replace {
        guard.commit()?;
    }
    report(&args, &summary, Some(reader.losses()))
}

/// Standard output or the -o file (a temporary file beside it, which the
/// returned guard puts in its place), written by a background thread.
fn open_output(args: &Args) -> anyhow::Result<(Box<dyn Write>, Option<ReplaceFile>)> {
    let (file, guard) = if is_dash(&args.output) {
        // A duplicate of fd 1 rather than `io::stdout()`, which is line
        // buffered: it would scan every chunk for its last newline and
        // split the write there.
        (super::output::stdout_file()?, None)
    } else {
        let path = args.output.as_deref().unwrap_or_else(|| "-".as_ref());
        let (file, guard) = ReplaceFile::create(path)?;
        (file, Some(guard))
    };
    Ok((Box::new(BackgroundWriter::new(file)), guard))
}

/// The summary lines on stderr, and the exit status; `losses` are those
/// the recording itself reported (its lost lines).
fn report(args: &Args, summary: &Summary, losses: Option<&Losses>) -> anyhow::Result<Status> {
    let mut line = format!("goprobe convert: {} spans", summary.spans);
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
    if let Some(losses) = losses.filter(|l| l.iter().next().is_some()) {
        eprintln!(
            "goprobe convert: the recording says: {}",
            losses.accounting()
        );
    }
    if args.to == Format::Otlp {
        let (signal, what) = match args.signal {
            SignalArg::Traces => (otlp_http::Signal::Traces, "spans"),
            SignalArg::Metrics => (otlp_http::Signal::Metrics, "data points"),
        };
        let mut line = format!(
            "goprobe convert: OTLP {}: {} {what} accepted, {} rejected",
            otlp_http::signal_url(args.endpoint.as_deref().unwrap_or_default(), signal),
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

/// Flags that only mean something for some formats are refused elsewhere,
/// so that a typo'd combination never silently does something else.
fn check_format_flags(args: &Args) -> anyhow::Result<()> {
    let metrics = args.to == Format::Metrics
        || (args.to == Format::Otlp && args.signal == SignalArg::Metrics);
    if args.interval.is_some() && !metrics {
        bail!("--interval only applies to --to metrics and --to otlp --signal metrics");
    }
    if args.interval.is_some_and(|d| d.is_zero()) {
        bail!("--interval must be longer than zero");
    }
    if args.signal == SignalArg::Metrics && args.to != Format::Otlp {
        bail!("--signal only applies to --to otlp (for metrics in a file, use --to metrics)");
    }
    if args.json && args.to != Format::Summary {
        bail!("--json only applies to --to summary");
    }
    if (args.trace_id.is_some() || args.slowest.is_some()) && args.to != Format::Html {
        bail!("--trace-id and --slowest only apply to --to html");
    }
    if args.slowest == Some(0) {
        bail!("--slowest needs at least 1");
    }
    // clap fills in the default, so only a format other than it is a mistake.
    if args.to != Format::Metrics && args.format == Some(MetricsFormat::OtlpJson) {
        bail!("--format only applies to --to metrics (for OTLP/JSON traces, use --to otlp-json)");
    }
    Ok(())
}

fn pusher(args: &Args, signal: otlp_http::Signal) -> otlp_http::Pusher {
    let policy = otlp_http::RetryPolicy {
        max_tries: args.max_tries.max(1),
        ..Default::default()
    };
    otlp_http::Pusher::for_signal(args.endpoint.as_deref().unwrap_or_default(), signal, policy)
}

fn metrics_emitter(args: &Args, sink: Sink) -> Emitter {
    let encoding = match args.format.unwrap_or(MetricsFormat::Prometheus) {
        MetricsFormat::Prometheus => Encoding::Prometheus,
        MetricsFormat::OtlpJson => Encoding::OtlpJson,
    };
    Emitter::new(encoding, sink)
}

/// How long, after Ctrl-C or SIGTERM, the input gets to end by itself: a
/// `goprobe record` upstream got the same Ctrl-C and is flushing its last spans.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// `--interval`: metrics while the input is open.
fn run_live(args: &Args) -> anyhow::Result<Status> {
    let input: Box<dyn BufRead + Send> = if is_dash(&args.input) {
        Box::new(BufReader::with_capacity(1 << 16, io::stdin()))
    } else {
        let path = args.input.as_deref().unwrap_or_else(|| "-".as_ref());
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        Box::new(BufReader::with_capacity(1 << 16, file))
    };
    let reader = SpanReader::new(input, args.skip_invalid);
    // Prometheus to a file: replaced each time (textfile collectors);
    // otherwise one exposition after another.
    let sink = if args.to == Format::Otlp {
        Sink::Push(pusher(args, otlp_http::Signal::Metrics))
    } else if !is_dash(&args.output) && args.format != Some(MetricsFormat::OtlpJson) {
        Sink::Replace(args.output.clone().unwrap_or_default())
    } else if is_dash(&args.output) {
        Sink::Stream(open_output(args)?.0)
    } else {
        // A live stream of OTLP/JSON metrics is read while it grows, so it
        // is written in place, not renamed over FILE at the end.
        let path = args.output.as_deref().unwrap_or_else(|| "-".as_ref());
        super::output::check_writable(path)?;
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        Sink::Stream(Box::new(BackgroundWriter::new(file)))
    };
    let stop = super::target::stop_on_signals()?;
    let every = args.interval.unwrap_or(Duration::from_secs(10));
    let result = live::run_intervals(
        reader,
        every,
        &stop.flag,
        STOP_GRACE,
        metrics_emitter(args, sink),
    );
    let end = result?;
    for warning in end.warnings {
        eprintln!("goprobe convert: skipped {warning}");
    }
    report(args, &end.summary, None)
}
