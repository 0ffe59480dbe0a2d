//! The `go_panic` family (catalog probe `go.panic`): every panic
//! (`runtime.gopanic`), recovered or not, as an OpenTelemetry `exception`
//! event on the span it happened in.
//!
//! Stream fields: `type` (the panic value's Go type, as `%T` prints it),
//! `message` (where Go's own text can be read exactly) and
//! `message_truncated`, `read_failed`, and `stacktrace`: the panicking
//! goroutine's stack at the panic, walked by frame pointers in the kernel
//! and symbolized from pclntab, in the format the runtime prints it when a
//! panic crashes the program ([`super::traceback`]), also for panics that
//! are recovered and for stripped binaries.

use std::mem::size_of;

use serde::{Deserialize, Serialize};

use super::family::{Decode, EventParts, Family, RecordingError, SpanParts, is_false};
use super::stacks::Captured;
use super::traceback::{self, CreatedBy};
use crate::bpf::abi::{self, Plain};
use crate::span::{AttrValue, Attributes, SpanKind, Status};
use crate::stream::RawEvent;

pub struct GoPanic;

pub static FAMILY: GoPanic = GoPanic;

const PROBE: &str = "go.panic";

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/go_panic.bpf.o"));

pub const PANIC_TEXT_MAX: usize = 128;
/// `GP_PANIC_STACK_MAX`.
pub const PANIC_STACK_MAX: usize = 127;

/// `struct gp_panic_event` up to its stack, which follows with `nframes`
/// entries (the record is cut after them).
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
    pub sp: u64,
    pub bp: u64,
    pub sp_words: [u64; 2],
    pub gopc: u64,
    pub nframes: u32,
    pub _pad: u32,
}
const HEADER: usize = size_of::<PanicEvent>();
const _: () = assert!(HEADER == 272);

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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stacktrace: Option<String>,
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
        f.stacktrace = stacktrace(&ev, record, ctx);
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
        if let Some(st) = f.stacktrace {
            a.insert("exception.stacktrace".into(), st.into());
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
    fn lone_event_span(&self, ev: &EventParts) -> Option<SpanParts> {
        Some(SpanParts {
            name: "panic".to_owned(),
            kind: SpanKind::Internal,
            start_ns: ev.time_ns,
            end_ns: ev.time_ns,
            attributes: Attributes::new(),
            status: Status::default(),
            incoming: None,
            connection: None,
        })
    }
}

/// The panicking goroutine's traceback, from the stack after the header
/// (none when nothing was captured).
fn stacktrace(ev: &PanicEvent, record: &[u8], ctx: &mut Decode<'_>) -> Option<String> {
    let room = record.len().saturating_sub(HEADER) / 8;
    let n = (ev.nframes as usize).min(PANIC_STACK_MAX).min(room);
    if n == 0 {
        return None;
    }
    let pcs: Vec<u64> = record[HEADER..HEADER + 8 * n]
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
        .collect();
    let stack = ctx.symbols.stack(
        ev.pid,
        &Captured {
            pcs: &pcs,
            sp: ev.sp,
            bp: ev.bp,
            sp_words: ev.sp_words,
        },
    );
    let at = (ev.gopc != 0)
        .then(|| ctx.symbols.return_frame(ev.pid, ev.gopc))
        .flatten();
    let created = at.as_ref().map(|at| CreatedBy {
        at,
        parent_goid: ev.parent_goid,
    });
    Some(traceback::format(
        ev.goid,
        &stack,
        created,
        n == PANIC_STACK_MAX,
    ))
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
        assert_eq!(
            abi::c_define(source, "GP_PANIC_STACK_MAX"),
            Some(PANIC_STACK_MAX as u64)
        );
        assert!(source.contains(&format!(
            "sizeof(struct gp_panic_event) == {HEADER} + 8 * GP_PANIC_STACK_MAX"
        )));
    }
}
