//! `goprobe record`: arguments and glue into [`crate::attach`] and [`crate::record`].

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;

use super::attach::TargetArgs;
use crate::exit::Status;
use crate::record::{self, Source, SpanSink};

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
    let mut sink = SpanSink::new(out, args.limit, std::io::stderr().is_terminal());
    let summary = if args.target.has_target() {
        let req = args.target.request(false)?;
        record::record(Source::Attach(&req), &mut sink)?
    } else {
        record::record(Source::Stream(Box::new(std::io::stdin().lock())), &mut sink)?
    };
    eprintln!("goprobe: {}", summary.line());
    if let Some(table) = table {
        let rows = table.lock().map(|mut t| t.rows()).unwrap_or_default();
        crate::export::summary::write_table(&rows, &mut std::io::stderr().lock())
            .context("writing the summary")?;
    }
    Ok(Status::Success)
}
