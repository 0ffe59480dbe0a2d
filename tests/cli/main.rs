//! Command-line tests: run the built `goprobe` binary and check stdout,
//! stderr and the exit status. One module per subcommand.

#[path = "../common/mod.rs"]
mod common;

mod inspect;
mod offsets;
