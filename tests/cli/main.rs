//! CLI tests: the built `goprobe` binary run as a user would, one module per subcommand.

mod convert;
