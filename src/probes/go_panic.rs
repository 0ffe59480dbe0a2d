//! The `go_panic` family (catalog probe `go.panic`): every panic
//! (`runtime.gopanic`), recovered or not, as an OpenTelemetry `exception`
//! event on the span it happened in.
//!
//! Stream fields: `type` (the panic value's Go type, as `%T` prints it),
//! `message` (where Go's own text can be read exactly) and
//! `message_truncated`, `read_failed`.

use std::mem::size_of;

use serde::{Deserialize, Serialize};

use super::family::{Decode, EventParts, Family, RecordingError, SpanParts, is_false};
use crate::bpf::abi::{self, Plain};
use crate::span::{AttrValue, Attributes, SpanKind, Status};
use crate::stream::RawEvent;

pub struct GoPanic;

pub static FAMILY: GoPanic = GoPanic;

const PROBE: &str = "go.panic";

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/go_panic.bpf.o"));

pub const PANIC_TEXT_MAX: usize = 128;

/// `struct gp_panic_event`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PanicEvent {
    pub pid: u32,
    pub tid: u32,
    pub flags: u32,
    pub text_len: u32,
    pub goid: u64,
    pub g: u64,
    pub parent_goid: u64,
    pub ts_ns: u64,
    pub type_ptr: u64,
    pub data_ptr: u64,
    pub word: [u64; 4],
    pub text: [u8; PANIC_TEXT_MAX],
}
const _: () = assert!(size_of::<PanicEvent>() == 224);

// SAFETY: repr(C), integers and byte arrays only, no implicit padding (size
// checked above), so every bit pattern is valid.
unsafe impl Plain for PanicEvent {}

/// The stream fields of a `go.panic` event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fields {
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub ty: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub message_truncated: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub read_failed: bool,
}

impl Family for GoPanic {
    fn name(&self) -> &'static str {
        "go_panic"
    }

    fn probes(&self) -> &'static [&'static str] {
        &[PROBE]
    }

    fn object(&self) -> &'static [u8] {
        OBJECT
    }

    fn decode(&self, record: &[u8], ctx: &mut Decode<'_>) -> Option<RawEvent> {
        let ev = PanicEvent::read(record)?;
        let mut f = Fields::default();
        if let Some(t) = ctx.symbols.type_name(ev.pid, ev.type_ptr) {
            let text_n = (ev.text_len as usize).min(ev.text.len());
            let captured = crate::gobin::values::Captured {
                data: ev.data_ptr,
                words: ev.word,
                text: ev.text.get(..text_n).unwrap_or_default(),
            };
            if let Some(m) = crate::gobin::values::panic_message(&t, &captured) {
                f.message = Some(m.text);
                f.message_truncated = m.truncated;
            }
            f.ty = Some(t.name);
        }
        f.read_failed = ev.flags & abi::FLAG_READ_FAILED != 0;
        Some(
            RawEvent {
                probe: PROBE.to_owned(),
                pid: ev.pid,
                tid: ev.tid,
                goroutine: ev.goid,
                start_ns: ev.ts_ns,
                end_ns: ev.ts_ns,
                fields: RawEvent::fields_from(&f),
            }
            .with_parent_goroutine(ev.parent_goid),
        )
    }

    fn event(&self, ev: &RawEvent) -> Result<EventParts, RecordingError> {
        let f: Fields = ev.fields_as()?;
        let mut a = Attributes::new();
        // Unknown means unknown: a type goprobe could not name is left out.
        if let Some(t) = f.ty {
            a.insert("exception.type".into(), t.into());
        }
        if let Some(m) = f.message {
            a.insert("exception.message".into(), m.into());
        }
        a.insert(
            "goroutine.id".into(),
            AttrValue::Int(i64::try_from(ev.goroutine).unwrap_or(i64::MAX)),
        );
        Ok(EventParts {
            name: "exception".to_owned(),
            time_ns: ev.start_ns,
            attributes: a,
        })
    }

    /// A panic outside any span gets a span of its own, named `panic`.
    fn lone_event_span(&self, ev: &EventParts) -> SpanParts {
        SpanParts {
            name: "panic".to_owned(),
            kind: SpanKind::Internal,
            start_ns: ev.time_ns,
            end_ns: ev.time_ns,
            attributes: Attributes::new(),
            status: Status::default(),
            incoming: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_c_file() {
        let source = include_str!("../../ebpf/probes/go_panic.bpf.c");
        assert_eq!(
            abi::c_define(source, "GP_PANIC_TEXT_MAX"),
            Some(PANIC_TEXT_MAX as u64)
        );
        assert!(source.contains(&format!(
            "sizeof(struct gp_panic_event) == {}",
            size_of::<PanicEvent>()
        )));
    }
}
