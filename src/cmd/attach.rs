//! `goprobe attach`: arguments and glue into [`crate::attach`].

use std::io::Write;

use anyhow::Context;

use super::target::{self, TargetArgs};
use crate::attach;
use crate::exit::Status;
use crate::stream::Line;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Benchmark baseline: attach programs that do nothing at the same
    /// points (measures the cost of the uprobe traps alone; no events).
    #[arg(long, hide = true)]
    pub baseline_empty: bool,
}

pub fn run(args: Args) -> anyhow::Result<Status> {
    if !args.target.has_target() {
        anyhow::bail!("give a Go binary (BIN) or --pid N to attach to");
    }
    let req = args.target.request(args.baseline_empty)?;
    let stop = target::stop_on_signals()?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let ended = attach::run(
        &req,
        &stop.flag,
        Some(stop.wake_fd()),
        &mut |w| eprintln!("goprobe: {w}"),
        &mut |n| eprintln!("goprobe: attached {n} uprobes; streaming events (Ctrl-C to stop)"),
        |line| {
            serde_json::to_writer(&mut out, line)?;
            out.write_all(b"\n")?;
            // Events arrive in batches per poll; flush each so a pipe sees them promptly.
            if matches!(line, Line::Event(_) | Line::Lost { .. }) {
                out.flush()?;
            }
            Ok(())
        },
    )?;
    out.flush().context("writing output")?;
    let summary = &ended.summary;
    let lost: Vec<String> = summary
        .lost
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(r, n)| format!("{n} {r}"))
        .collect();
    eprintln!(
        "goprobe: {} events ({}); lost: {}",
        summary.events,
        summary.reason,
        if lost.is_empty() {
            "none".to_owned()
        } else {
            lost.join(", ")
        }
    );
    ended.detach();
    Ok(Status::Success)
}
