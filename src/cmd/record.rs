//! `goprobe record`: arguments, and the wiring of an attach session (or
//! `goprobe attach` NDJSON on stdin) into a [`crate::record::Recording`].

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;

use super::output::RecordFile;
use super::progress::Progress;
use super::target::{self, TargetArgs};
use crate::exit::Status;
use crate::record::{Output, Plain, Recording, SpanWriter};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Without BIN or --pid, `goprobe attach` NDJSON is read from stdin.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Stop after writing this many spans.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// Write spans here instead of stdout (`-` is stdout). An existing FILE
    /// is replaced only once the recording starts (a failure before leaves
    /// it as it was); lines are written whole, so a killed recording leaves
    /// no cut-off line.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Add to the end of the -o FILE instead of replacing it.
    #[arg(long, requires = "output")]
    pub append: bool,
    /// Keep `db.query.text` as the program sent it. By default its string
    /// and number literals become `?` (credentials in `url.full` and
    /// sensitive query parameters are redacted either way).
    #[arg(long)]
    pub raw_queries: bool,
    /// At the end, print a table per service and route on stderr (as `convert --to summary`).
    #[arg(long)]
    pub summary: bool,
}

pub fn run(args: Args) -> anyhow::Result<Status> {
    let to_file = args.output.as_ref().filter(|p| p.as_os_str() != "-");
    if args.append && to_file.is_none() {
        anyhow::bail!("--append needs -o FILE");
    }
    let progress = Progress::new(std::io::stderr().is_terminal());
    let out: Box<dyn Output> = match to_file {
        Some(p) => {
            let f = RecordFile::new(p, args.append)?;
            if let Some(note) = f.cut_off_note() {
                progress.note(&note);
            }
            Box::new(f)
        }
        None => Box::new(Plain(super::output::stdout_file()?)),
    };
    let (out, table) = if args.summary {
        let (tapped, table) = Tapped::new(out);
        (Box::new(tapped) as Box<dyn Output>, Some(table))
    } else {
        (out, None)
    };
    let shown = progress.clone();
    let writer = SpanWriter::new(out, args.limit).on_write(move |n, lost| shown.update(n, lost));
    let mut recording = Recording::new(writer)?.policy(crate::redact::Policy {
        raw_queries: args.raw_queries,
    });
    // Ctrl-C and SIGTERM stop the recording, which then flushes. Reading a
    // pipe, the producer (`goprobe attach`) gets the signal too, drains and
    // closes the pipe: the end of input ends the recording.
    let stop = target::stop_on_signals()?;
    let mut attached = None;
    let ended = if args.target.has_target() {
        let req = args.target.request(false)?;
        crate::attach::run(
            &req,
            &stop.flag,
            Some(stop.wake_fd()),
            &mut |msg| progress.note(msg),
            &mut |n| progress.note(&format!("attached {n} uprobes; recording (Ctrl-C to stop)")),
            |line| recording.line(line.clone()),
        )
        .map(|e| {
            let reason = e.summary.reason.to_owned();
            attached = Some(e);
            reason
        })
        .map_err(anyhow::Error::from)
    } else {
        recording
            .read(std::io::stdin().lock())
            .map_err(anyhow::Error::from)
    };
    let reason = match ended {
        Ok(r) => r,
        Err(_) if recording.limit_reached() => "limit reached".to_owned(),
        Err(e) => {
            progress.finish();
            return Err(e);
        }
    };
    let summary = recording.finish(reason);
    progress.finish();
    let summary = summary?;
    eprintln!("goprobe: {}", summary.line());
    eprintln!("goprobe: {}", summary.accounting());
    if let Some(table) = table {
        let rows = table.lock().map(|mut t| t.rows()).unwrap_or_default();
        crate::export::summary::write_table(&rows, &mut std::io::stderr().lock())
            .context("writing the summary")?;
    }
    // The recording is complete: the kernel's detaching (which can take a
    // while) delays only the exit.
    if let Some(e) = attached {
        e.detach();
    }
    Ok(Status::Success)
}

/// The output, with every line it is given also added to the `--summary`
/// table.
struct Tapped {
    out: Box<dyn Output>,
    tap: crate::export::summary::Tap<std::io::Sink>,
}

impl Tapped {
    fn new(out: Box<dyn Output>) -> (Tapped, SummaryTable) {
        let (tap, table) = crate::export::summary::Tap::new(std::io::sink());
        (Tapped { out, tap }, table)
    }
}

type SummaryTable = std::sync::Arc<std::sync::Mutex<crate::export::summary::RouteSummary>>;

impl Output for Tapped {
    fn start(&mut self) -> std::io::Result<()> {
        self.out.start()
    }
    fn write_lines(&mut self, lines: &[u8]) -> std::io::Result<()> {
        self.out.write_lines(lines)?;
        self.tap.write_all(lines)
    }
}
