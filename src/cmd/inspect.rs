//! `goprobe inspect`: arguments and glue into [`crate::inspect`].

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use crate::exit::Status;
use crate::gobin::GoBinary;
use crate::inspect;

/// Show what is inside Go binaries: Go version, modules (with replacements),
/// build settings, architecture, PIE, symbols, DWARF and the pclntab
/// function table (also for stripped binaries).
///
/// With several inputs, each failure is reported on stderr as one
/// `goprobe: ...` line and the others are still inspected (exit status 2).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Go binaries to inspect.
    #[arg(value_name = "BIN", required_unless_present = "pid")]
    pub bins: Vec<PathBuf>,
    /// Inspect the executable of a running process (/proc/N/exe); the report carries the pid.
    #[arg(long, value_name = "N")]
    pub pid: Option<u32>,
    /// One JSON object per binary (NDJSON); with --functions one object per function
    /// (name, address, offset, size; plus path when several binaries are given).
    #[arg(long)]
    pub json: bool,
    /// List functions from pclntab instead of the summary: address, file offset, size, name.
    #[arg(long)]
    pub functions: bool,
    /// With --functions: only names containing this substring.
    #[arg(long = "match", value_name = "SUBSTRING", requires = "functions")]
    pub matching: Option<String>,
    /// Exit 1 unless every listed probe (comma-separated, e.g. http.server,http.client;
    /// see the `probes` section of the report) is instrumentable in every input; why not is printed on stderr.
    #[arg(long, value_name = "PROBE[,PROBE]", value_delimiter = ',')]
    pub require: Vec<String>,
    /// With --require: count an offset that only the offsets table knows,
    /// for a Go patch release the table was not generated from (it uses the
    /// minor release's layouts), as unknown.
    #[arg(long, requires = "require")]
    pub strict_offsets: bool,
}

enum Input {
    Path(PathBuf),
    Pid(u32),
}

pub fn run(args: Args) -> anyhow::Result<Status> {
    crate::verdict::check_probe_names(&args.require)?;
    let mut inputs: Vec<Input> = args.pid.map(Input::Pid).into_iter().collect();
    inputs.extend(args.bins.iter().cloned().map(Input::Path));
    let several = inputs.len() > 1;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut status = Status::Success;
    for input in inputs {
        let opened = match &input {
            Input::Path(p) => GoBinary::open(p),
            Input::Pid(pid) => GoBinary::open_pid(*pid),
        };
        let bin = match opened {
            Ok(bin) => bin,
            Err(err) => {
                out.flush().context("writing output")?;
                eprintln!("goprobe: {err}");
                status = Status::PartialError;
                continue;
            }
        };
        let failure = if args.functions {
            match bin.function_table() {
                Ok(fns) => {
                    let label = several.then(|| bin.path().display().to_string());
                    inspect::write_functions(
                        &mut out,
                        fns,
                        args.matching.as_deref(),
                        args.json,
                        label.as_deref(),
                    )
                    .context("writing output")?;
                    None
                }
                Err(err) => Some(err),
            }
        } else if args.json {
            inspect::write_json(&mut out, &bin).context("writing output")?;
            None
        } else {
            inspect::write_text(&mut out, &bin).context("writing output")?
        };
        if !args.require.is_empty() {
            out.flush().context("writing output")?;
            let failures =
                crate::verdict::required_failures(&bin, &args.require, args.strict_offsets);
            for f in &failures {
                eprintln!("goprobe: {f}");
            }
            if !failures.is_empty() {
                status = status.worst(Status::CheckFailed);
            }
        }
        if let Some(err) = failure {
            out.flush().context("writing output")?;
            eprintln!("goprobe: {err}");
            status = Status::PartialError;
        }
    }
    out.flush().context("writing output")?;
    Ok(status)
}
