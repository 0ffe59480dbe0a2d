//! `goprobe inspect`: arguments and glue into [`crate::inspect`].

use std::path::PathBuf;

use crate::exit::Status;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Go binaries to inspect.
    #[arg(value_name = "BIN", required_unless_present = "pid")]
    pub bins: Vec<PathBuf>,
    /// Inspect the executable of a running process.
    #[arg(long, value_name = "N")]
    pub pid: Option<u32>,
    /// One JSON object per binary (NDJSON).
    #[arg(long)]
    pub json: bool,
    /// List functions from pclntab instead of the summary.
    #[arg(long)]
    pub functions: bool,
    /// With --functions: only names containing this substring.
    #[arg(long = "match", value_name = "SUBSTRING", requires = "functions")]
    pub matching: Option<String>,
}

pub fn run(args: Args) -> anyhow::Result<Status> {
    let _ = args;
    todo!()
}
