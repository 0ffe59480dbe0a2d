//! Command-line definitions: one file per subcommand, each a `clap::Args`
//! struct and a `run` function that calls into the library. No real logic
//! lives here.

use clap::{Parser, Subcommand};

use crate::exit::{EXIT_STATUS_HELP, Status};

pub mod attach;
pub mod inspect;
pub mod record;
pub mod offsets;
pub mod offsets_table;

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
    /// Attach eBPF probes to a Go binary or process and stream completed calls as NDJSON.
    #[command(after_long_help = EXIT_STATUS_HELP)]
    Attach(attach::Args),
    /// Record spans (NDJSON, goprobe's span schema) from a Go binary, a process, or attach's output on stdin.
    #[command(after_long_help = EXIT_STATUS_HELP)]
    Record(record::Args),
    /// Struct-field offsets a probe needs (from DWARF, else the offsets table), or any field given.
    #[command(after_long_help = EXIT_STATUS_HELP)]
    Offsets(offsets::Args),
    /// Maintainer tool behind scripts/gen-offsets-table.sh.
    #[command(hide = true, name = "offsets-table")]
    OffsetsTable(offsets_table::Args),
}

/// Run the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<Status> {
    match cli.command {
        Command::Inspect(args) => inspect::run(args),
        Command::Attach(args) => attach::run(args),
        Command::Record(args) => record::run(args),
        Command::Offsets(args) => offsets::run(args),
        Command::OffsetsTable(args) => offsets_table::run(args),
    }
}

/// The clap command tree, for man pages and shell completions.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}
