//! goprobe: look inside running Go programs from the outside.
//!
//! The library holds all real work; `src/bin/goprobe.rs` is a thin `main`
//! and `cmd` only turns command-line arguments into calls into the modules
//! below.

pub mod attach;
pub mod bpf;
pub mod catalog;
pub mod clock;
pub mod cmd;
pub mod dwarf;
pub mod exit;
pub mod export;
pub mod gobin;
pub mod goruntime;
pub mod inspect;
pub mod loss;
pub mod offsets;
pub mod otel;
pub mod privileges;
pub mod probes;
pub mod record;
pub mod redact;
pub mod remote;
pub mod span;
pub mod sql;
pub mod stream;
pub mod tracecontext;
pub mod verdict;
