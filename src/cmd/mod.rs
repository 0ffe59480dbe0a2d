//! Command-line definitions: one file per subcommand, each a `clap::Args`
//! struct and a `run` function that calls into the library. No real logic
//! lives here.

use clap::{Parser, Subcommand};

use crate::exit::{EXIT_STATUS_HELP, Status};

pub mod convert;
pub mod inspect;
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
    /// Convert span NDJSON into OTLP, pprof, folded stacks, flame graphs, Chrome traces or text.
    #[command(after_long_help = EXIT_STATUS_HELP)]
    Convert(convert::Args),
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
        Command::Convert(args) => convert::run(args),
        Command::Offsets(args) => offsets::run(args),
        Command::OffsetsTable(args) => offsets_table::run(args),
    }
}

/// The clap command tree, for man pages and shell completions.
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}
