//! The `goprobe` executable: parse arguments, run, map the outcome to an exit status.
#![allow(clippy::print_stderr)]

use std::process::ExitCode;

use clap::Parser;
use goprobe::cmd::Cli;
use goprobe::exit;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // clap prints help/version on stdout and usage errors on stderr.
            let code = if err.use_stderr() {
                exit::ERROR
            } else {
                exit::SUCCESS
            };
            let _ = err.print();
            return ExitCode::from(code);
        }
    };
    match goprobe::cmd::run(cli) {
        Ok(status) => ExitCode::from(status.code()),
        Err(err) if exit::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("goprobe: {}", exit::one_line(&err));
            ExitCode::from(exit::ERROR)
        }
    }
}
