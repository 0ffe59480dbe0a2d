//! Command-line tests: run the built `goprobe` binary as a user would and
//! check stdout, stderr and the exit status. One module per subcommand.

#[path = "../common/mod.rs"]
mod common;

mod convert;
mod inspect;
mod offsets;
