//! Command-line definitions: one file per subcommand, each a `clap::Args`
//! struct and a `run` function that calls into the library. No real logic
//! lives here.
//!
//! The commands talk to the person at the terminal: printing is theirs.
#![allow(clippy::print_stdout, clippy::print_stderr)]

use clap::{Parser, Subcommand};

use crate::exit::{EXIT_STATUS_HELP, Status};

pub mod attach;
pub mod convert;
pub mod goroutines;
pub mod heap;
pub mod inspect;
pub mod offsets;
pub mod offsets_table;
pub mod output;
pub mod progress;
pub mod record;
pub mod target;

/// Look inside Go programs from the outside: build info, functions, offsets, spans.
#[derive(Debug, Parser)]
#[command(name = "goprobe", version, about, long_about = None, after_long_help = EXIT_STATUS_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show a Go binary's build info, ELF facts and function table.
    #[command(after_long_help = EXIT_STATUS_HELP)]
    Inspect(inspect::Args),
    /// Struct-field offsets a probe needs (from DWARF, else the offsets table), or any field given.
    #[command(after_long_help = EXIT_STATUS_HELP)]
    Offsets(offsets::Args),
    /// Attach eBPF probes to a Go binary or process and stream completed calls as NDJSON.
    #[command(after_long_help = ATTACH_AFTER)]
    Attach(attach::Args),
    /// Record spans (NDJSON, goprobe's span schema) from a Go binary, a process, or attach's output on stdin.
    #[command(after_long_help = ATTACH_AFTER, long_about = RECORD_ABOUT)]
    Record(record::Args),
    /// Convert span NDJSON into OTLP, pprof, flame graphs, Chrome traces, text, metrics, a summary or an HTML waterfall.
    #[command(after_long_help = EXIT_STATUS_HELP)]
    Convert(convert::Args),
    /// A running Go program's own heap profile, read from outside, as pprof or NDJSON.
    #[command(after_long_help = EXIT_STATUS_HELP, long_about = heap::LONG_ABOUT)]
    Heap(heap::Args),
    /// Every goroutine of a running Go program with its state and stack: NDJSON, pprof or Go's dump text.
    #[command(after_long_help = EXIT_STATUS_HELP, long_about = goroutines::LONG_ABOUT)]
    Goroutines(goroutines::Args),
    /// Maintainer tool behind scripts/gen-offsets-table.sh.
    #[command(hide = true, name = "offsets-table")]
    OffsetsTable(offsets_table::Args),
}

/// Privileges and exit statuses, after `attach --help` and `record --help`.
const ATTACH_AFTER: &str =
    "Privileges (Linux 6.18, tested as an unprivileged user with each subset):
  root, or the capabilities CAP_BPF + CAP_PERFMON (load and attach the eBPF uprobes), and
  CAP_SYS_PTRACE as well for --pid of another user's process (its /proc/PID/exe and memory map).
  Kernels before 5.8 need CAP_SYS_ADMIN instead of CAP_BPF + CAP_PERFMON. Grant them once:
  sudo setcap cap_bpf,cap_perfmon,cap_sys_ptrace+ep $(command -v goprobe)
  or for one run: sudo setpriv --reuid=$USER --init-groups --inh-caps=+bpf,+perfmon,+sys_ptrace \
  --ambient-caps=+bpf,+perfmon,+sys_ptrace goprobe record --pid N
  A missing privilege is one line on stderr naming it, before anything is attached (exit 2).

Exit status:
  0  success
  1  a requested check failed (e.g. a probe is not instrumentable, an offset is unknown)
  2  error: bad usage, unreadable, truncated or non-Go input, dead pid, no privileges";

/// `goprobe record --help` and its man page: the span schema.
const RECORD_ABOUT: &str = "Record spans from a Go binary (every process running it, including later ones), \
one process (--pid), or `goprobe attach` NDJSON on stdin.

Output: one JSON object per line (stdout, or -o FILE):
  trace_id              32 lowercase hex digits: the caller's when the request carried a W3C traceparent
  span_id               16 hex digits
  parent_span_id        16 hex digits: the caller's span (traceparent) or the enclosing server span;
                        absent for root spans
  trace_flags           the W3C trace flags of an incoming traceparent (server spans that joined a trace)
  name                  \"GET /users/{id}\" (server, with route), \"GET\" (server without route, HTTP client),
                        \"SELECT users\" (database: operation and table, else the operation, else the system),
                        \"panic\" (a panic outside any server span)
  kind                  server | client | internal
  start_time_unix_nano  wall clock: kernel CLOCK_MONOTONIC stamps plus a sampled REALTIME-MONOTONIC offset
  end_time_unix_nano
  attributes            OpenTelemetry names (semantic conventions 1.37). Server: http.request.method,
                        url.scheme, url.path, url.query, http.route, http.response.status_code,
                        server.address, server.port, network.peer.address, network.peer.port,
                        network.protocol.version, error.type (the status code of a 5xx, or the panic that
                        escaped), goprobe.unfinished (the process died while serving). HTTP client:
                        http.request.method, url.full, server.address, server.port,
                        http.response.status_code, error.type (the Go error's type, e.g. *net.OpError, or
                        the 4xx/5xx status code). Database (database/sql): db.system.name (postgresql,
                        mysql, sqlite, ... or other_sql), db.query.text (the first 1024 bytes, literals
                        replaced by ?; goprobe.db.query.length gives the real length when cut),
                        db.operation.name (SELECT, CREATE TABLE, ...; none for a statement without a
                        known keyword), db.collection.name (the first table named), server.address,
                        server.port (from the DSN, never the DSN itself), code.function.name, error.type
  status                {\"code\": \"unset\"|\"error\", \"message\": optional}; error on server 5xx or an escaped
                        panic, HTTP client 4xx/5xx or error (message: Go's error text where it can be read
                        exactly), a database call returning an error
  events                list of {name, time_unix_nano, attributes}: every panic on the request's goroutines is
                        an `exception` event (exception.type, exception.message where Go's own text can be
                        read exactly, goroutine.id), recovered or not
  resource              service.name, process.pid, process.executable.path, process.runtime.name,
                        process.runtime.version

An outgoing call or database call made while serving a request (on the handler's goroutine, or a goroutine \
it started, seen through the go.spawn probe) is a child of that server span, in the same trace. \
A panic that net/http recovers ends the server span with status error (no status code: no response was sent). \
Not recorded, by default (recordings get pasted into incident channels): credentials in URLs \
(url.full says REDACTED:REDACTED@), the values of sensitive query parameters (AWSAccessKeyId, Signature, \
sig, X-Goog-Signature, and any parameter a word of whose name is token, password, passwd, pwd, secret, \
key, apikey, signature or sig: REDACTED), SQL literals (?; --raw-queries keeps them), DSNs, headers, \
bodies.

Losses are lines of their own among the spans: {\"type\":\"lost\",\"reason\":R,\"effect\":E,\"count\":N,\
\"time_unix_nano\":T}, when a count grew. Reasons: ringbuf_full (a finished call dropped: the reader fell \
behind), inflight_map_full, prog_run_missed (the kernel skipped a program) [effect span_lost]; read_failed \
(a span with fields missing), lineage_lost (a goroutine creation dropped: a call on it may be a root \
instead of a child) [span_incomplete]; unpaired_return (a call already running when the probes \
attached returned: nothing that happened while recording is missing) [not_lost]. The summary on stderr \
gives every count, zeros included.

A progress line goes to stderr when it is a terminal; a summary at the end (spans, database calls, panics, \
losses). Ctrl-C, SIGTERM, --duration (counted from the moment the probes are attached), --limit or the \
traced process's exit end the recording within milliseconds, every span flushed; the probes are detached \
after.";

/// Run the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<Status> {
    match cli.command {
        Command::Inspect(args) => inspect::run(args),
        Command::Offsets(args) => offsets::run(args),
        Command::Attach(args) => attach::run(args),
        Command::Record(args) => record::run(args),
        Command::Convert(args) => convert::run(args),
        Command::Heap(args) => heap::run(args),
        Command::Goroutines(args) => goroutines::run(args),
        Command::OffsetsTable(args) => offsets_table::run(args),
    }
}

/// The clap command tree, for man pages and shell completions.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}
