//! What `attach` and `record` share on the command line: the target and
//! probe arguments, duration parsing, and stopping on Ctrl-C or SIGTERM.

use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::Context;

use crate::attach::{self, Offsets, Request};
use crate::probes::cpu_sample::PROBE as CPU_PROBE;

/// What to trace and how: shared by `attach` and `record`.
#[derive(Debug, Clone, clap::Args)]
pub struct TargetArgs {
    /// Go binary to trace: every process running it, including ones started
    /// later. Several binaries (and --pid) are traced in one stream, so a
    /// call from one traced program to another links client and server.
    #[arg(value_name = "BIN")]
    pub binaries: Vec<PathBuf>,
    /// Trace this process; repeat for several (e.g. a client and its server).
    #[arg(long = "pid", value_name = "N")]
    pub pids: Vec<u32>,
    /// Comma-separated probes to attach, from the probe catalog: http.server,
    /// http.client, http.phases (connection phases of HTTP client calls),
    /// grpc.server, grpc.client, db.sql, go.panic, http.exchange (opt-in:
    /// request_sent and first_byte of a new connection's first request,
    /// two traps on every HTTP/1 client request); `default` is every probe
    /// but the opt-in ones, `all` every probe (e.g. `default,http.exchange`).
    /// Probes the binary cannot support (e.g. db.sql without database/sql)
    /// are skipped with a note on stderr; `goprobe inspect` says why. Calls
    /// made on a goroutine a handler starts join its trace: on Go 1.21+ from
    /// the goroutine's recorded parent, at no extra cost, one goroutine deep,
    /// for the probes that read it (http.client, http.phases, db.sql,
    /// go.panic); else through go.spawn (goroutine creation, two more uprobe
    /// hits per goroutine started), added automatically (for grpc.client,
    /// say). Name go.spawn to follow calls any number of goroutines deep.
    #[arg(long, value_name = "LIST", default_value = attach::DEFAULT_PROBES)]
    pub probes: String,
    /// Field offsets as NDJSON from `goprobe offsets --json` (`-` for stdin);
    /// default: read them from the binary's DWARF, else the offsets table.
    #[arg(long, value_name = "FILE")]
    pub offsets: Option<PathBuf>,
    /// Sample the CPU HZ times per second of CPU time (default 99) on every
    /// CPU, with the cpu-clock perf event: each sample of a target thread
    /// carries its user stack and goroutine, and `record` labels it with the
    /// span it ran in (`cpu_sample` records). Same as adding `cpu.sample` to
    /// --probes.
    #[arg(
        long,
        value_name = "HZ",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "99",
        value_parser = clap::value_parser!(u32).range(1..=10_000)
    )]
    pub cpu: Option<u32>,
    /// Refuse a probe whose offsets only the offsets table knows for this
    /// binary's Go patch release, which the table was not generated from
    /// (by default the minor release's layouts are used, with a note).
    #[arg(long)]
    pub strict_offsets: bool,
    /// Stop after this long (e.g. 500ms, 30s, 5m), counted from the moment
    /// the probes are attached; default: until Ctrl-C, SIGTERM, or the
    /// traced process exits.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub duration: Option<std::time::Duration>,
    /// Ring buffer of every probe family, in bytes (a power of two, at least
    /// the page size; `K` and `M` suffixes), instead of the family's default
    /// (1 to 8 MiB). Smaller buffers drop events sooner under bursts (each
    /// drop is counted as `ringbuf_full`).
    #[arg(long, value_name = "BYTES", value_parser = parse_bytes)]
    pub ring_buffer_size: Option<u32>,
}

impl TargetArgs {
    /// True when a binary or a pid was given.
    pub fn has_target(&self) -> bool {
        !self.binaries.is_empty() || !self.pids.is_empty()
    }

    /// The library request these arguments describe.
    pub fn request(&self, baseline_empty: bool) -> anyhow::Result<Request> {
        // Before the binary is read (which another user's process refuses
        // too): a missing privilege is one line naming the whole set.
        if self.pids.is_empty() && !self.binaries.is_empty() {
            crate::privileges::check_attach(None)?;
        }
        for &pid in &self.pids {
            crate::privileges::check_attach(Some(pid))?;
        }
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
        let mut probes = attach::parse_probes(&self.probes)?;
        if self.cpu.is_some() && !probes.iter().any(|p| p == CPU_PROBE) {
            probes.push(CPU_PROBE.to_owned());
        }
        if offsets.is_none() {
            // Offsets from each binary: say where table answers are not
            // exact, and refuse them under --strict-offsets.
            if !self.has_target() {
                anyhow::bail!("give a Go binary (BIN) or --pid N");
            }
            let bins = self
                .pids
                .iter()
                .map(|&pid| crate::gobin::GoBinary::open_pid(pid))
                .chain(
                    self.binaries
                        .iter()
                        .map(|p| crate::gobin::GoBinary::open(p)),
                );
            let mut refusals = Vec::new();
            for bin in bins {
                let (notes, refused) =
                    crate::verdict::table_provenance(&bin?, &probes, self.strict_offsets);
                for n in &notes {
                    eprintln!("goprobe: note: {n}");
                }
                refusals.extend(refused);
            }
            if !refusals.is_empty() {
                anyhow::bail!("{}", refusals.join("\ngoprobe: "));
            }
        }
        let targets = self
            .binaries
            .iter()
            .cloned()
            .map(attach::TargetSpec::Binary)
            .chain(self.pids.iter().copied().map(attach::TargetSpec::Pid))
            .collect();
        Ok(Request {
            targets,
            probes,
            offsets,
            duration: self.duration,
            baseline_empty,
            cpu_hz: self.cpu,
            ring_buffer_bytes: self.ring_buffer_size,
        })
    }
}

/// Ctrl-C (SIGINT) or SIGTERM, which then no longer end the process: the
/// recording stops and flushes instead.
pub struct Stop {
    /// Set by the signal.
    pub flag: Arc<AtomicBool>,
    /// Readable once the signal came (a self-pipe), so that a wait for
    /// events ends at once, whichever thread the signal interrupted.
    wake: UnixStream,
}

impl Stop {
    pub fn wake_fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
    }
}

pub fn stop_on_signals() -> anyhow::Result<Stop> {
    let flag = Arc::new(AtomicBool::new(false));
    let (wake, writer) = UnixStream::pair().context("creating the signal pipe")?;
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // The flag first: whoever wakes on the pipe finds it set.
        signal_hook::flag::register(sig, Arc::clone(&flag))
            .context("installing the signal handler")?;
        let w = writer.try_clone().context("creating the signal pipe")?;
        signal_hook::low_level::pipe::register(sig, w).context("installing the signal handler")?;
    }
    Ok(Stop { flag, wake })
}

/// Parse a duration written `500ms`, `30s`, `5m`, `1h` (or plain seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (use e.g. 500ms, 30s, 5m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("invalid duration unit in {s:?} (ms, s, m, h)")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("invalid duration {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// Parse a size written `4096`, `64K` or `8M`.
pub fn parse_bytes(s: &str) -> Result<u32, String> {
    let s = s.trim();
    let (num, mult) = match s.strip_suffix(['K', 'k']) {
        Some(n) => (n, 1u64 << 10),
        None => match s.strip_suffix(['M', 'm']) {
            Some(n) => (n, 1 << 20),
            None => (s, 1),
        },
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| format!("invalid size {s:?} (use e.g. 4096, 64K, 8M)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert!(parse_duration("5d").is_err());
        assert!(parse_duration("x").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("64K"), Ok(65536));
        assert_eq!(parse_bytes("8M"), Ok(8 << 20));
        assert!(parse_bytes("8G").is_err());
        assert!(parse_bytes("5000M").is_err());
    }
}
