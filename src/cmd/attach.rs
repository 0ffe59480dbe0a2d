//! `goprobe attach`: arguments and glue into [`crate::attach`].

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::Context;

use crate::attach::{self, Offsets, Request};
use crate::exit::Status;

/// What to trace and how: shared by `attach` and `record`.
#[derive(Debug, Clone, clap::Args)]
pub struct TargetArgs {
    /// Go binary to trace: every process running it, including ones started later.
    #[arg(value_name = "BIN", conflicts_with = "pid")]
    pub binary: Option<PathBuf>,
    /// Trace only this process.
    #[arg(long, value_name = "N")]
    pub pid: Option<u32>,
    /// Comma-separated probes to attach, from the probe catalog: http.server,
    /// http.client, db.sql, go.panic, go.spawn (goroutine creation, so calls
    /// made on goroutines a handler starts join its trace), or `all`. Probes
    /// the binary cannot support (e.g. db.sql without database/sql) are
    /// skipped with a note on stderr; `goprobe inspect` says why.
    #[arg(long, value_name = "LIST", default_value = attach::DEFAULT_PROBES)]
    pub probes: String,
    /// Field offsets as NDJSON from `goprobe offsets --json` (`-` for stdin);
    /// default: read them from the binary's DWARF, else the offsets table.
    #[arg(long, value_name = "FILE")]
    pub offsets: Option<PathBuf>,
    /// Refuse a probe whose offsets only the offsets table knows for this
    /// binary's Go patch release, which the table was not generated from
    /// (by default the minor release's layouts are used, with a note).
    #[arg(long)]
    pub strict_offsets: bool,
    /// Stop after this long (e.g. 500ms, 30s, 5m); default: until Ctrl-C,
    /// SIGTERM, or the traced process exits.
    #[arg(long, value_name = "DURATION", value_parser = attach::parse_duration)]
    pub duration: Option<std::time::Duration>,
}

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub target: TargetArgs,
    /// Benchmark baseline: attach programs that do nothing at the same
    /// points (measures the cost of the uprobe traps alone; no events).
    #[arg(long, hide = true)]
    pub baseline_empty: bool,
}

impl TargetArgs {
    /// True when a binary or a pid was given.
    pub fn has_target(&self) -> bool {
        self.binary.is_some() || self.pid.is_some()
    }

    /// The library request these arguments describe.
    pub fn request(&self, baseline_empty: bool) -> anyhow::Result<Request> {
        let offsets = match &self.offsets {
            None => None,
            Some(p) => {
                let mut text = String::new();
                if p.as_os_str() == "-" {
                    std::io::stdin()
                        .read_to_string(&mut text)
                        .context("reading offsets from stdin")?;
                } else {
                    text = std::fs::read_to_string(p)
                        .with_context(|| format!("reading {}", p.display()))?;
                }
                Some(
                    Offsets::from_ndjson(&text)
                        .with_context(|| format!("parsing {}", p.display()))?,
                )
            }
        };
        let probes = attach::parse_probes(&self.probes)?;
        if offsets.is_none() {
            // Offsets from the binary: say where table answers are not exact,
            // and refuse them under --strict-offsets.
            let bin = match (&self.binary, self.pid) {
                (_, Some(pid)) => crate::gobin::GoBinary::open_pid(pid)?,
                (Some(path), None) => crate::gobin::GoBinary::open(path)?,
                (None, None) => anyhow::bail!("give a Go binary (BIN) or --pid N"),
            };
            let (notes, refusals) =
                crate::verdict::table_provenance(&bin, &probes, self.strict_offsets);
            for n in &notes {
                eprintln!("goprobe: note: {n}");
            }
            if !refusals.is_empty() {
                anyhow::bail!("{}", refusals.join("\ngoprobe: "));
            }
        }
        Ok(Request {
            binary: self.binary.clone(),
            pid: self.pid,
            probes,
            offsets,
            duration: self.duration,
            baseline_empty,
        })
    }
}

pub fn run(args: Args) -> anyhow::Result<Status> {
    if !args.target.has_target() {
        anyhow::bail!("give a Go binary (BIN) or --pid N to attach to");
    }
    let req = args.target.request(args.baseline_empty)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let summary = attach::run(
        &req,
        &mut |w| eprintln!("goprobe: {w}"),
        &mut |n| eprintln!("goprobe: attached {n} uprobes; streaming events (Ctrl-C to stop)"),
        |line| {
            serde_json::to_writer(&mut out, line)?;
            out.write_all(b"\n")?;
            // Events arrive in batches per poll; flush each so a pipe sees them promptly.
            if matches!(line, attach::Line::Event(_) | attach::Line::Lost { .. }) {
                out.flush()?;
            }
            Ok(())
        },
    )?;
    out.flush().context("writing output")?;
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
    Ok(Status::Success)
}
