//! `goprobe record`: arguments, and the wiring of an attach session (or
//! `goprobe attach` NDJSON on stdin) into a [`crate::record::Recording`].

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;

use super::progress::Progress;
use super::target::{self, TargetArgs};
use crate::exit::Status;
use crate::record::{Recording, SpanWriter};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Without BIN or --pid, `goprobe attach` NDJSON is read from stdin.
    #[command(flatten)]
    pub target: TargetArgs,
    /// Stop after writing this many spans.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// Write spans here instead of stdout (`-` is stdout).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// At the end, print a table per service and route on stderr (as `convert --to summary`).
    #[arg(long)]
    pub summary: bool,
}

pub fn run(args: Args) -> anyhow::Result<Status> {
    let out: Box<dyn Write> = match &args.output {
        Some(p) if p.as_os_str() != "-" => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        _ => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    let (out, table) = if args.summary {
        let (tap, table) = crate::export::summary::Tap::new(out);
        (Box::new(tap) as Box<dyn Write>, Some(table))
    } else {
        (out, None)
    };
    let progress = Progress::new(std::io::stderr().is_terminal());
    let shown = progress.clone();
    let writer = SpanWriter::new(out, args.limit).on_write(move |n, lost| shown.update(n, lost));
    let mut recording = Recording::new(writer)?;
    // Ctrl-C and SIGTERM stop the recording, which then flushes. Reading a
    // pipe, the producer (`goprobe attach`) gets the signal too, drains and
    // closes the pipe: the end of input ends the recording.
    let stop = target::stop_on_signals()?;
    let ended = if args.target.has_target() {
        let req = args.target.request(false)?;
        crate::attach::run(
            &req,
            &stop,
            &mut |msg| progress.note(msg),
            &mut |n| progress.note(&format!("attached {n} uprobes; recording (Ctrl-C to stop)")),
            |line| recording.line(line.clone()),
        )
        .map(|s| s.reason.to_owned())
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
    eprintln!("goprobe: {}", summary?.line());
    if let Some(table) = table {
        let rows = table.lock().map(|mut t| t.rows()).unwrap_or_default();
        crate::export::summary::write_table(&rows, &mut std::io::stderr().lock())
            .context("writing the summary")?;
    }
    Ok(Status::Success)
}
