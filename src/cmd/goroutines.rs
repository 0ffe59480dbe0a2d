//! `goprobe goroutines`: arguments and glue into [`crate::goruntime`].

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use super::heap::{FreezeArgs, ms, output};
use crate::exit::Status;
use crate::goruntime::dump;
use crate::goruntime::profile::{self, When};
use crate::goruntime::records::{Detail, GoroutineLine, Header};
use crate::goruntime::session::{self, Session};
use crate::goruntime::snapshot::{self, StackState};

/// Output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum To {
    /// A `snapshot` line, then one `goroutine` object per line.
    Ndjson,
    /// A gzipped pprof goroutine profile (counts by stack, like /debug/pprof/goroutine).
    Pprof,
    /// Go's own dump format (/debug/pprof/goroutine?debug=2).
    Text,
}

/// `goprobe goroutines --help` and its man page.
pub const LONG_ABOUT: &str =
    "Every goroutine of a running Go program, read from outside: id, state, wait reason, how \
long it has waited (where the runtime records it: from the first GC that found it blocked), the \
goroutine and the `go` statement that created it, and its stack, walked from the registers the \
scheduler saved, inlined calls included.

  goprobe goroutines --pid 1234 --to text | less          # as /debug/pprof/goroutine?debug=2
  goprobe goroutines --pid 1234 --to pprof -o g.pb.gz     # as /debug/pprof/goroutine
  goprobe goroutines --pid 1234 | jq -c 'select(.state == \"chan receive\")'

NDJSON (the default): a `snapshot` line, then one `goroutine` line each: id, status, state, \
wait_reason, waited_ns, wait_minutes, parent_id, created_by, start_function, locked_to_thread, \
system, stack_state (complete, incomplete, unavailable), frames (function, file, line, inlined, \
pc, args). Runtime-internal goroutines and frames are left out of the text and the profile as the \
runtime's own dump leaves them out (--all keeps them); the NDJSON has everything, marked. A \
goroutine running on a thread at the moment of the read has no saved stack: --freeze stops the \
process (ptrace) and takes its thread's registers instead, and says how long it was stopped.";

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The process to read.
    #[arg(long, value_name = "N")]
    pub pid: u32,
    /// A build of the process's executable to take symbols and struct
    /// offsets from (e.g. the unstripped twin of a stripped binary); default /proc/N/exe.
    #[arg(value_name = "BIN")]
    pub binary: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "ndjson")]
    pub to: To,
    /// Where to write (`-`: stdout).
    #[arg(short, long, value_name = "FILE", default_value = "-")]
    pub output: PathBuf,
    /// Keep runtime-internal goroutines and frames in text and pprof (like GOTRACEBACK=system).
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub freeze: FreezeArgs,
}

pub fn run(args: Args) -> anyhow::Result<Status> {
    let s = Session::open(args.pid, args.binary.as_deref())?;
    let rt = s.runtime()?;
    let taken = session::timed(args.pid, args.freeze.freeze, args.freeze.hold(), |regs| {
        snapshot::read_goroutines(&rt, &s.mem, regs)
    })?;
    let snap = &taken.value;
    let gs = &snap.goroutines;
    let running = gs
        .iter()
        .filter(|g| g.stack == StackState::Running && g.frames.is_empty())
        .count();
    let incomplete = gs
        .iter()
        .filter(|g| matches!(g.stack, StackState::Incomplete(_)))
        .count();
    let torn = gs.iter().filter(|g| g.torn).count();
    let system = gs.iter().filter(|g| g.system).count();
    let mut out = output(&args.output, args.to == To::Pprof)?;
    match args.to {
        To::Ndjson => {
            let header = Header::new(
                "goroutines",
                &rt,
                args.pid,
                taken.time_unix_nano,
                (taken.read.as_nanos() as u64, taken.cpu.as_nanos() as u64),
                taken.stopped.map(|d| d.as_nanos() as u64),
                &snap.globals,
                &snap.layout,
                Detail::Goroutines {
                    goroutines: gs.len(),
                    system,
                    running_without_stack: running,
                    incomplete_stacks: incomplete,
                    torn,
                },
            );
            serde_json::to_writer(&mut out, &header)?;
            out.write_all(b"\n")?;
            for g in gs {
                serde_json::to_writer(&mut out, &GoroutineLine::new(&rt, g))?;
                out.write_all(b"\n")?;
            }
        }
        To::Text => dump::write(&mut out, &rt, gs, args.all)?,
        To::Pprof => {
            let when = When {
                time_nanos: taken.time_unix_nano,
                duration_nanos: 0,
            };
            profile::write_goroutines(
                &mut out,
                &rt,
                gs,
                args.all,
                s.mem.mappings(),
                &s.exe_path(),
                when,
            )
            .context("writing the profile")?;
        }
    }
    out.flush().context("writing output")?;
    let stopped = taken
        .stopped
        .map_or(String::new(), |d| format!(", process stopped {}", ms(d)));
    let mut notes = Vec::new();
    if running > 0 {
        notes.push(format!(
            "{running} running on a thread without a stack (use --freeze)"
        ));
    }
    if incomplete > 0 {
        notes.push(format!("{incomplete} with stacks cut short"));
    }
    if torn > 0 {
        notes.push(format!("{torn} changed while read"));
    }
    eprintln!(
        "goprobe: {} goroutines of pid {} ({}; {system} runtime-internal){}; read in {} ({} CPU){stopped}",
        gs.len(),
        args.pid,
        rt.bin.build_info().go_version,
        if notes.is_empty() {
            String::new()
        } else {
            format!(", {}", notes.join(", "))
        },
        ms(taken.read),
        ms(taken.cpu),
    );
    if let Some(note) = rt.inexact_table_note(&snap.layout) {
        eprintln!("goprobe: {note}");
    }
    Ok(Status::Success)
}
