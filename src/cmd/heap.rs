//! `goprobe heap`: arguments and glue into [`crate::goruntime`].

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;

use crate::exit::Status;
use crate::goruntime::profile::{self, When};
use crate::goruntime::records::{Detail, Header, HeapSample};
use crate::goruntime::session::{self, Session};
use crate::goruntime::snapshot;

/// `goprobe heap --help` and its man page.
pub const LONG_ABOUT: &str =
    "The allocation profile a running Go program keeps of itself, read from outside: \
no net/http/pprof, no restart, nothing written to the process.

The Go runtime samples allocations (one per runtime.MemProfileRate bytes, 512 KiB by default) into \
per-stack buckets. goprobe reads them as runtime.MemProfile reports them (the counts of the last \
completed GC cycle) and writes a gzipped pprof heap profile with runtime/pprof's four sample types \
(alloc_objects, alloc_space, inuse_objects, inuse_space; scaled as runtime/pprof scales them), \
symbolized from the binary's own tables, inlined calls included:

  goprobe heap --pid 1234 -o heap.pb.gz
  go tool pprof -sample_index=alloc_space -top heap.pb.gz

With --json: a `snapshot` line (pid, executable, Go version, time, how long the read took, \
MemProfileRate, GC cycle, where each runtime global and struct offset came from), then one \
`heap_sample` line per allocation site (sampled counts, scaled counts, size, stack).

The process keeps running: a GC that publishes a cycle during the read is detected (two reads must \
agree) and the read repeated; --freeze stops it for the read instead. A program that never links \
runtime.MemProfile (neither runtime/pprof nor net/http/pprof) has memory profiling turned off by \
the linker: its profile is empty, and goprobe says so. Needs the rights to read the process's \
memory (root, or its user under kernel.yama.ptrace_scope=0). amd64 processes.";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The process to read.
    #[arg(long, value_name = "N")]
    pub pid: u32,
    /// A build of the process's executable to take symbols and struct
    /// offsets from (e.g. the unstripped twin of a stripped binary); default /proc/N/exe.
    #[arg(value_name = "BIN")]
    pub binary: Option<PathBuf>,
    /// Where to write (`-`: stdout).
    #[arg(short, long, value_name = "FILE", default_value = "-")]
    pub output: PathBuf,
    /// NDJSON instead of pprof: a `snapshot` line, then one `heap_sample`
    /// per allocation site (sampled and scaled counts, stack).
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub freeze: FreezeArgs,
}

/// `--freeze`, shared by heap and goroutines.
#[derive(Debug, Clone, clap::Args)]
pub struct FreezeArgs {
    /// Stop the process (every thread, with ptrace) for the length of the
    /// read, for an exact picture; how long it was stopped goes to stderr.
    #[arg(long)]
    pub freeze: bool,
    /// Keep a frozen process stopped this much longer (tests, demos).
    #[arg(long, hide = true, value_name = "DURATION", value_parser = super::target::parse_duration, requires = "freeze")]
    pub freeze_hold: Option<Duration>,
}

impl FreezeArgs {
    pub fn hold(&self) -> Duration {
        self.freeze_hold.unwrap_or_default()
    }
}

/// Open `-o` (or stdout); refuses to put binary data on a terminal.
pub fn output(path: &PathBuf, binary: bool) -> anyhow::Result<Box<dyn Write>> {
    if path.as_os_str() == "-" {
        if binary && std::io::stdout().is_terminal() {
            anyhow::bail!(
                "not writing a binary profile to a terminal: give -o FILE or redirect stdout"
            );
        }
        return Ok(Box::new(std::io::BufWriter::new(std::io::stdout())));
    }
    let f = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    Ok(Box::new(std::io::BufWriter::new(f)))
}

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

pub fn run(args: Args) -> anyhow::Result<Status> {
    let s = Session::open(args.pid, args.binary.as_deref())?;
    let rt = s.runtime()?;
    let taken = session::timed(args.pid, args.freeze.freeze, args.freeze.hold(), |_| {
        snapshot::read_heap(&rt, &s.mem)
    })?;
    let snap = &taken.value;
    let mut out = output(&args.output, !args.json)?;
    let maps = s.mem.mappings();
    if args.json {
        let header = Header::new(
            "heap",
            &rt,
            args.pid,
            taken.time_unix_nano,
            (taken.read.as_nanos() as u64, taken.cpu.as_nanos() as u64),
            taken.stopped.map(|d| d.as_nanos() as u64),
            &snap.globals,
            &snap.layout,
            Detail::Heap {
                memprofilerate: snap.rate,
                gc_cycle: snap.profile.cycle,
                unpublished: snap.profile.unpublished,
                buckets: snap.profile.records.len(),
                reads: snap.reads,
                consistent: snap.consistent,
            },
        );
        serde_json::to_writer(&mut out, &header)?;
        out.write_all(b"\n")?;
        for r in &snap.profile.records {
            serde_json::to_writer(&mut out, &HeapSample::new(&rt, r, snap.rate))?;
            out.write_all(b"\n")?;
        }
    } else {
        let when = When {
            time_nanos: taken.time_unix_nano,
            duration_nanos: 0,
        };
        profile::write_heap(
            &mut out,
            &rt,
            &snap.profile.records,
            snap.rate,
            maps,
            &s.exe_path(),
            when,
        )
        .context("writing the profile")?;
    }
    out.flush().context("writing output")?;
    let stopped = taken
        .stopped
        .map_or(String::new(), |d| format!(", process stopped {}", ms(d)));
    eprintln!(
        "goprobe: heap profile of pid {} ({}): {} allocation sites, GC cycle {}, MemProfileRate {}; read in {} ({} CPU, {} reads{}){stopped}",
        args.pid,
        rt.bin.build_info().go_version,
        snap.profile.records.len(),
        snap.profile.cycle,
        snap.rate,
        ms(taken.read),
        ms(taken.cpu),
        snap.reads,
        if snap.consistent {
            " agreed"
        } else {
            ", never agreed: counts may mix two GC cycles; use --freeze"
        },
    );
    if let Some(note) = rt.inexact_table_note(&snap.layout) {
        eprintln!("goprobe: {note}");
    }
    if snap.rate == 0 {
        eprintln!(
            "goprobe: runtime.MemProfileRate is 0: the runtime samples no allocations (the linker turns memory \
             profiling off in programs that never call runtime.MemProfile, i.e. without runtime/pprof)"
        );
    } else if snap.profile.unpublished {
        eprintln!(
            "goprobe: no GC has completed yet: counts are every sampled allocation so far, with no frees"
        );
    }
    Ok(Status::Success)
}
