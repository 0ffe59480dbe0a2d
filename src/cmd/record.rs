//! `goprobe record`: arguments and glue into [`crate::attach`] and [`crate::record`].

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context;

use crate::attach::{self, Line};
use crate::exit::Status;
use crate::record::Recorder;
use crate::span::Span;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Go binary to trace (every process running it). Without BIN or
    /// --pid, read `goprobe attach` NDJSON from stdin.
    #[arg(value_name = "BIN", conflicts_with = "pid")]
    pub binary: Option<PathBuf>,
    /// Trace only this process.
    #[arg(long, value_name = "N")]
    pub pid: Option<u32>,
    /// Comma-separated probes to attach: http.server, http.client, and
    /// go.spawn (goroutine creation, so calls made on goroutines a handler
    /// starts are parented to its span).
    #[arg(long, value_name = "LIST", default_value = "http.server,http.client,go.spawn")]
    pub probes: String,
    /// Field offsets NDJSON from `goprobe offsets --json` (`-` for stdin).
    #[arg(long, value_name = "FILE")]
    pub offsets: Option<PathBuf>,
    /// Stop after this long (e.g. 500ms, 30s, 5m).
    #[arg(long, value_name = "DURATION", value_parser = attach::parse_duration)]
    pub duration: Option<std::time::Duration>,
    /// Stop after writing this many spans.
    #[arg(long, value_name = "N")]
    pub limit: Option<u64>,
    /// Write spans here instead of stdout (`-` is stdout).
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// A span sink with the --limit and the progress line.
struct Writer {
    out: Box<dyn Write>,
    limit: Option<u64>,
    written: u64,
    progress: Option<indicatif::ProgressBar>,
    started: std::time::Instant,
}

/// Returned through io::Error to stop the stream once --limit is reached.
const LIMIT_REACHED: &str = "goprobe: span limit reached";

impl Writer {
    fn write(&mut self, spans: &mut Vec<Span>, lost: u64) -> std::io::Result<()> {
        for s in spans.drain(..) {
            if self.limit.is_some_and(|l| self.written >= l) {
                return Err(std::io::Error::other(LIMIT_REACHED));
            }
            serde_json::to_writer(&mut self.out, &s)?;
            self.out.write_all(b"\n")?;
            self.written += 1;
        }
        self.out.flush()?;
        if let Some(p) = &self.progress {
            let secs = self.started.elapsed().as_secs_f64().max(0.001);
            p.set_message(format!("{} spans, {:.0}/s, lost {}", self.written, self.written as f64 / secs, lost));
        }
        if self.limit.is_some_and(|l| self.written >= l) {
            return Err(std::io::Error::other(LIMIT_REACHED));
        }
        Ok(())
    }
}

fn is_limit(err: &anyhow::Error) -> bool {
    err.chain().any(|c| c.to_string().contains(LIMIT_REACHED))
}

pub fn run(args: Args) -> anyhow::Result<Status> {
    let out: Box<dyn Write> = match &args.output {
        Some(p) if p.as_os_str() != "-" => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("creating {}", p.display()))?,
        )),
        _ => Box::new(std::io::BufWriter::new(std::io::stdout())),
    };
    let progress = std::io::stderr().is_terminal().then(|| {
        let p = indicatif::ProgressBar::new_spinner();
        p.enable_steady_tick(std::time::Duration::from_millis(200));
        p
    });
    let mut w = Writer { out, limit: args.limit, written: 0, progress, started: std::time::Instant::now() };
    let mut rec = Recorder::new();
    let mut spans = Vec::new();
    let attaching = args.binary.is_some() || args.pid.is_some();
    let result: anyhow::Result<String> = if attaching {
        let cmd_args = super::attach::Args {
            binary: args.binary.clone(),
            pid: args.pid,
            probes: args.probes.clone(),
            offsets: args.offsets.clone(),
            duration: args.duration,
            baseline_empty: false,
        };
        let req = cmd_args.request()?;
        let progress = w.progress.clone();
        let mut note = |msg: &str| match &progress {
            Some(p) => p.println(format!("goprobe: {msg}")),
            None => eprintln!("goprobe: {msg}"),
        };
        let mut attached = |n: usize| eprintln!("goprobe: attached {n} uprobes; recording (Ctrl-C to stop)");
        attach::run(&req, &mut note, &mut attached, |line| {
            rec.line(line.clone(), &mut spans);
            let lost = rec.stats.lost;
            w.write(&mut spans, lost)
        })
        .map(|s| s.reason.to_owned())
        .map_err(anyhow::Error::from)
    } else {
        // Stdin: ignore Ctrl-C here so the producer (`goprobe attach`) gets
        // it, drains, and closes the pipe; we then flush everything.
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(sig, std::sync::Arc::clone(&stop)).context("signal handler")?;
        }
        let stdin = std::io::stdin();
        let mut res = Ok("end of input".to_owned());
        for (i, line) in stdin.lock().lines().enumerate() {
            let line = line.context("reading stdin")?;
            if line.trim().is_empty() {
                continue;
            }
            let parsed: Line = serde_json::from_str(&line).with_context(|| format!("stdin line {}: not goprobe attach output", i + 1))?;
            rec.line(parsed, &mut spans);
            let lost = rec.stats.lost;
            if let Err(e) = w.write(&mut spans, lost) {
                res = Err(anyhow::Error::from(e));
                break;
            }
        }
        res
    };
    let reason = match result {
        Ok(r) => r,
        Err(e) if is_limit(&e) => "limit reached".to_owned(),
        Err(e) => return Err(e),
    };
    if !args.limit.is_some_and(|l| w.written >= l) {
        rec.finish(&mut spans);
        let lost = rec.stats.lost;
        match w.write(&mut spans, lost) {
            Err(e) if e.to_string().contains(LIMIT_REACHED) => {}
            other => other.context("writing spans")?,
        }
    }
    if let Some(p) = &w.progress {
        p.finish_and_clear();
    }
    let st = &rec.stats;
    eprintln!(
        "goprobe: {} spans ({} server, {} client) written, {} events lost ({reason})",
        w.written, st.server, st.client, st.lost
    );
    Ok(Status::Success)
}
