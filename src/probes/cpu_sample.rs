//! The `cpu_sample` family (catalog probe `cpu.sample`, `--cpu`): CPU
//! samples from the software cpu-clock perf event on every CPU (no
//! uprobes), each with the user stack walked by frame pointers and the
//! goroutine running then (see `ebpf/probes/cpu_sample.bpf.c`). `record`
//! labels each with the span its goroutine was serving and writes it as a
//! [`crate::sample`] record.
//!
//! Stream fields: `cpu`, `period_ns`, `goroutine_state` (`running`,
//! `system`, `none`, `unknown`; see [`crate::sample`]), `parent_goroutine`
//! (Go 1.21+), `in_kernel` (the thread was in a syscall or fault: its user
//! stack is where it entered the kernel), `goroutine_from_m` (R14 did not
//! hold a g: the thread's m named the goroutine), `read_failed`, and
//! `stack` (frames as [`crate::sample::StackFrame`], innermost first).

use std::mem::size_of;

use serde::{Deserialize, Serialize};

use super::family::{Decode, Family, RecordingError, SampleParts, is_false};
use super::stacks::{Captured, stack_frames};
use crate::bpf::abi::{self, Plain};
use crate::sample::StackFrame;
use crate::span::{AttrValue, Attributes};
use crate::stream::RawEvent;

pub struct CpuSample;

pub static FAMILY: CpuSample = CpuSample;

pub const PROBE: &str = "cpu.sample";

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/cpu_sample.bpf.o"));

/// The program attached to the perf event of each CPU.
pub const PROGRAM: &str = "cpu_sample";
/// The map of the process ids to sample.
pub const TARGETS_MAP: &str = "targets";

/// `GP_STACK_MAX`.
pub const STACK_MAX: usize = 127;

pub const SAMPLE_KERNEL: u32 = 1 << 8;
pub const SAMPLE_G_FROM_M: u32 = 1 << 9;
pub const SAMPLE_SYSTEM: u32 = 1 << 10;
pub const SAMPLE_NO_G: u32 = 1 << 11;
pub const SAMPLE_UNKNOWN_G: u32 = 1 << 12;

/// `struct gp_cpu_sample` up to its stack, which follows with `nframes`
/// entries (the record is cut after them).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct SampleHeader {
    pub pid: u32,
    pub tid: u32,
    pub cpu: u32,
    pub flags: u32,
    pub ts_ns: u64,
    pub period_ns: u64,
    pub goid: u64,
    pub parent_goid: u64,
    pub ip: u64,
    pub sp: u64,
    pub bp: u64,
    pub sp_words: [u64; 2],
    pub nframes: u32,
    pub _pad: u32,
}
const HEADER: usize = size_of::<SampleHeader>();
const _: () = assert!(HEADER == 96);
/// `sizeof(struct gp_cpu_sample)`.
pub const SAMPLE_SIZE: usize = HEADER + 8 * STACK_MAX;

// SAFETY: repr(C), integers only, no implicit padding (size checked above),
// so every bit pattern is valid.
unsafe impl Plain for SampleHeader {}

/// Where a sampled thread was, goroutine-wise.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GoroutineState {
    /// On the goroutine's own stack.
    Running,
    /// The runtime on the system stack (g0), on the goroutine's behalf.
    System,
    /// The thread ran no goroutine (the scheduler, an idle spin).
    None,
    /// Which goroutine could not be told.
    #[default]
    Unknown,
}

impl GoroutineState {
    pub fn as_str(self) -> &'static str {
        match self {
            GoroutineState::Running => "running",
            GoroutineState::System => "system",
            GoroutineState::None => "none",
            GoroutineState::Unknown => "unknown",
        }
    }

    fn from_flags(flags: u32) -> GoroutineState {
        if flags & SAMPLE_UNKNOWN_G != 0 {
            GoroutineState::Unknown
        } else if flags & SAMPLE_NO_G != 0 {
            GoroutineState::None
        } else if flags & (SAMPLE_SYSTEM | SAMPLE_G_FROM_M) != 0 {
            // From the m: the thread was not running the goroutine's own
            // code with R14 = g (system stack, signal handler, vDSO, asm).
            GoroutineState::System
        } else {
            GoroutineState::Running
        }
    }
}

/// The stream fields of a `cpu.sample` event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fields {
    #[serde(default)]
    pub cpu: u32,
    #[serde(default)]
    pub period_ns: u64,
    #[serde(default)]
    pub goroutine_state: GoroutineState,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_goroutine: Option<u64>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub in_kernel: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub goroutine_from_m: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub read_failed: bool,
    #[serde(default)]
    pub stack: Vec<StackFrame>,
}

impl Family for CpuSample {
    fn name(&self) -> &'static str {
        "cpu_sample"
    }

    fn probes(&self) -> &'static [&'static str] {
        &[PROBE]
    }

    fn object(&self) -> &'static [u8] {
        OBJECT
    }

    fn decode(&self, record: &[u8], ctx: &mut Decode<'_>) -> Option<RawEvent> {
        let h = SampleHeader::read(record)?;
        let room = (record.len() - HEADER) / 8;
        let n = (h.nframes as usize).min(STACK_MAX).min(room);
        let pcs: Vec<u64> = record[HEADER..HEADER + 8 * n]
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()))
            .collect();
        let stack = ctx.symbols.stack(
            h.pid,
            &Captured {
                pcs: &pcs,
                sp: h.sp,
                bp: h.bp,
                sp_words: h.sp_words,
            },
        );
        let state = GoroutineState::from_flags(h.flags);
        let f = Fields {
            cpu: h.cpu,
            period_ns: h.period_ns,
            goroutine_state: state,
            parent_goroutine: (h.parent_goid != 0).then_some(h.parent_goid),
            in_kernel: h.flags & SAMPLE_KERNEL != 0,
            goroutine_from_m: h.flags & SAMPLE_G_FROM_M != 0,
            read_failed: h.flags & abi::FLAG_READ_FAILED != 0,
            stack: stack_frames(&stack),
        };
        Some(RawEvent {
            probe: PROBE.to_owned(),
            pid: h.pid,
            tid: h.tid,
            goroutine: h.goid,
            start_ns: h.ts_ns,
            end_ns: h.ts_ns,
            fields: RawEvent::fields_from(&f),
        })
    }

    fn sample(&self, ev: &RawEvent) -> Result<SampleParts, RecordingError> {
        let f: Fields = ev.fields_as()?;
        let mut a = Attributes::new();
        let known = matches!(
            f.goroutine_state,
            GoroutineState::Running | GoroutineState::System
        );
        if known && ev.goroutine != 0 {
            a.insert(
                "goroutine.id".into(),
                AttrValue::Int(i64::try_from(ev.goroutine).unwrap_or(i64::MAX)),
            );
        }
        a.insert("goroutine.state".into(), f.goroutine_state.as_str().into());
        a.insert("thread.id".into(), AttrValue::Int(i64::from(ev.tid)));
        a.insert("cpu.id".into(), AttrValue::Int(i64::from(f.cpu)));
        Ok(SampleParts {
            time_ns: ev.start_ns,
            cpu_nanos: f.period_ns,
            attributes: a,
            stack: f.stack,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_c_file() {
        let source = include_str!("../../ebpf/probes/cpu_sample.bpf.c");
        assert_eq!(
            abi::c_define(source, "GP_STACK_MAX"),
            Some(STACK_MAX as u64)
        );
        assert!(source.contains("sizeof(struct gp_cpu_sample) == 96 + 8 * GP_STACK_MAX"));
        for (name, value) in [
            ("GP_SAMPLE_KERNEL", SAMPLE_KERNEL),
            ("GP_SAMPLE_G_FROM_M", SAMPLE_G_FROM_M),
            ("GP_SAMPLE_SYSTEM", SAMPLE_SYSTEM),
            ("GP_SAMPLE_NO_G", SAMPLE_NO_G),
            ("GP_SAMPLE_UNKNOWN_G", SAMPLE_UNKNOWN_G),
        ] {
            assert_eq!(
                abi::c_define(source, name),
                Some(u64::from(value)),
                "{name}"
            );
        }
        assert!(source.contains(&format!("int {PROGRAM}(")));
        assert!(source.contains(&format!("}} {TARGETS_MAP} SEC(\".maps\")")));
    }

    #[test]
    fn states_from_flags() {
        assert_eq!(GoroutineState::from_flags(0), GoroutineState::Running);
        assert_eq!(
            GoroutineState::from_flags(SAMPLE_SYSTEM | SAMPLE_KERNEL),
            GoroutineState::System
        );
        assert_eq!(
            GoroutineState::from_flags(SAMPLE_G_FROM_M),
            GoroutineState::System
        );
        assert_eq!(
            GoroutineState::from_flags(SAMPLE_NO_G),
            GoroutineState::None
        );
        assert_eq!(
            GoroutineState::from_flags(SAMPLE_UNKNOWN_G | SAMPLE_NO_G),
            GoroutineState::Unknown
        );
    }

    /// A record cut short, or claiming more frames than it holds, decodes
    /// only what is there.
    #[test]
    fn decodes_only_the_frames_present() {
        let mut rec = vec![0u8; HEADER + 16];
        rec[0..4].copy_from_slice(&7u32.to_le_bytes());
        rec[88..92].copy_from_slice(&100u32.to_le_bytes());
        rec[HEADER..HEADER + 8].copy_from_slice(&0x1234u64.to_le_bytes());
        let mut symbols = crate::probes::symbols::Symbols::new(None);
        let mut ctx = Decode {
            hooks: &[],
            symbols: &mut symbols,
        };
        let ev = FAMILY.decode(&rec, &mut ctx).expect("decodes");
        let f: Fields = ev.fields_as().expect("fields");
        assert_eq!(ev.pid, 7);
        assert_eq!(f.stack.len(), 2);
        assert!(FAMILY.decode(&rec[..HEADER - 1], &mut ctx).is_none());
    }
}
