//! Span exporters behind `goprobe convert`: one module per output format, a
//! shared NDJSON span reader, and the per-trace grouping that the formats
//! built on span ancestry (pprof, folded, flamegraph) need. CPU samples
//! recorded beside the spans become CPU profiles in those formats
//! ([`cpu`]) and instant events in `--to chrome`.
//!
//! Every exporter reads spans through [`reader::SpanReader`]: owned
//! ([`crate::span::Span`]) or, for the streaming converters, read in place
//! ([`view::SpanView`], the same schema and checks without copying).

pub mod background;
pub mod chrome;
pub mod cpu;
pub mod folded;
pub mod html;
pub mod metrics;
pub mod otlp_encode;
#[cfg(test)]
mod otlp_equivalence;
pub mod otlp_http;
pub mod otlp_json;
pub mod otlp_schema;
pub mod otlp_wire;
pub mod pipeline;
pub mod pprof;
pub mod pprof_proto;
pub mod reader;
pub mod spill;
pub mod stacks;
pub mod summary;
pub mod text;
pub mod traces;
pub mod view;

use std::io;

/// Spans per OTLP request or OTLP/JSON line: the OpenTelemetry batch span
/// processor's default export size, small enough for any collector's limits.
pub const DEFAULT_BATCH: usize = 512;

/// Why a conversion stopped.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Read(#[from] reader::ReadError),
    #[error("writing output: {0}")]
    Write(#[from] io::Error),
    #[error(transparent)]
    Send(#[from] otlp_http::SendError),
    #[error("{0}")]
    Other(String),
}

/// What a conversion did, for the summary on stderr.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Spans read and converted.
    pub spans: u64,
    /// CPU samples converted (after `--span-name`/`--trace-id`).
    pub samples: u64,
    /// Malformed lines skipped under `--skip-invalid`.
    pub skipped: u64,
    /// The most spans held in memory at once while grouping by trace (0 for
    /// formats that stream span by span or batch by batch).
    pub peak_buffered_spans: u64,
    /// OTLP push only: spans the receiver accepted and rejected.
    pub accepted: u64,
    pub rejected: u64,
    /// OTLP push only: the receiver's last partial-success message.
    pub rejected_message: Option<String>,
}
