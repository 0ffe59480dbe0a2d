//! The `go_spawn` family (catalog probe `go.spawn`, role `internal`):
//! goroutine creation (`runtime.newproc1`), so that calls made on
//! goroutines a handler starts are nested in the handler's span.
//!
//! Stream fields: `parent_goroutine` (the event's `goroutine` is the new one).

use std::mem::size_of;

use serde::{Deserialize, Serialize};

use super::family::{Decode, Family, RecordingError};
use crate::bpf::abi::Plain;
use crate::stream::RawEvent;

pub struct GoSpawn;

pub static FAMILY: GoSpawn = GoSpawn;

const PROBE: &str = "go.spawn";

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/go_spawn.bpf.o"));

/// `struct gp_spawn`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spawn {
    pub pid: u32,
    pub tid: u32,
    pub parent_goid: u64,
    pub child_goid: u64,
    pub ts_ns: u64,
}
const _: () = assert!(size_of::<Spawn>() == 32);

// SAFETY: repr(C), integers only, no padding (size checked above).
unsafe impl Plain for Spawn {}

/// The stream fields of a `go.spawn` event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fields {
    /// The goroutine that ran the `go` statement.
    pub parent_goroutine: u64,
}

impl Family for GoSpawn {
    fn name(&self) -> &'static str {
        "go_spawn"
    }

    fn probes(&self) -> &'static [&'static str] {
        &[PROBE]
    }

    fn object(&self) -> &'static [u8] {
        OBJECT
    }

    fn decode(&self, record: &[u8], _ctx: &mut Decode<'_>) -> Option<RawEvent> {
        let sp = Spawn::read(record)?;
        Some(RawEvent {
            probe: PROBE.to_owned(),
            pid: sp.pid,
            tid: sp.tid,
            goroutine: sp.child_goid,
            start_ns: sp.ts_ns,
            end_ns: sp.ts_ns,
            fields: RawEvent::fields_from(&Fields {
                parent_goroutine: sp.parent_goid,
            }),
        })
    }

    fn spawned_by(&self, ev: &RawEvent) -> Result<u64, RecordingError> {
        Ok(ev.fields_as::<Fields>()?.parent_goroutine)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probes::symbols::Symbols;

    #[test]
    fn decodes_and_matches_the_c_file() {
        let source = include_str!("../../ebpf/probes/go_spawn.bpf.c");
        assert!(source.contains(&format!(
            "sizeof(struct gp_spawn) == {}",
            size_of::<Spawn>()
        )));
        let mut bytes = vec![0u8; size_of::<Spawn>()];
        bytes[8] = 7; // parent_goid
        bytes[16] = 9; // child_goid
        let mut symbols = Symbols::new(None);
        let mut ctx = Decode {
            hooks: &[],
            symbols: &mut symbols,
        };
        let ev = FAMILY.decode(&bytes, &mut ctx).expect("decodes");
        assert_eq!(ev.goroutine, 9);
        assert_eq!(ev.fields["parent_goroutine"], 7);
        assert_eq!(FAMILY.spawned_by(&ev).unwrap(), 7);
        assert!(FAMILY.decode(&bytes[..20], &mut ctx).is_none());
    }
}
