//! The names and numbers goprobe's OTLP output uses, in one place for the
//! three encoders (opentelemetry-proto messages in `otlp_json`, direct
//! OTLP/JSON in `otlp_encode`, protobuf in `otlp_wire`): the scope, its
//! version, span flags, and the enum numbers of span kinds and status codes.

use super::view::SpanView;
use crate::span::{SpanKind, StatusCode};

/// The instrumentation scope every goprobe span is reported under.
pub const SCOPE_NAME: &str = "goprobe";

/// W3C trace flags "sampled": goprobe records every call it sees.
pub(crate) const FLAG_SAMPLED: u32 = 1;
/// OTLP span flags: whether the parent is known to be remote (bit 8), and
/// that it is (bit 9).
pub(crate) const FLAG_HAS_IS_REMOTE: u32 = 0x100;
pub(crate) const FLAG_IS_REMOTE: u32 = 0x200;

/// The scope version: goprobe's own.
pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");

pub(crate) fn kind_number(kind: SpanKind) -> i32 {
    use opentelemetry_proto::tonic::trace::v1::span::SpanKind as K;
    (match kind {
        SpanKind::Internal => K::Internal,
        SpanKind::Server => K::Server,
        SpanKind::Client => K::Client,
        SpanKind::Producer => K::Producer,
        SpanKind::Consumer => K::Consumer,
    }) as i32
}

pub(crate) fn code_number(code: StatusCode) -> i32 {
    use opentelemetry_proto::tonic::trace::v1::status::StatusCode as C;
    (match code {
        StatusCode::Unset => C::Unset,
        StatusCode::Ok => C::Ok,
        StatusCode::Error => C::Error,
    }) as i32
}

/// OTLP span flags of a span view, as `otlp_json::proto_span` sets them.
pub(crate) fn flags(span: &SpanView<'_>) -> u32 {
    match span.trace_flags {
        Some(f) => u32::from(f) | FLAG_HAS_IS_REMOTE | FLAG_IS_REMOTE,
        None => FLAG_SAMPLED,
    }
}
