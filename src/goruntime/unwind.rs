//! Walking a goroutine's stack from its saved registers, as the runtime's own
//! unwinder does (amd64): each function's SP delta at the pc (pclntab's
//! `pcsp` table) gives the frame's top, the return address sits just below
//! it, and the walk ends at a function flagged top-of-stack
//! (`runtime.goexit`). The frame-pointer chain the saved `bp` starts is
//! checked along the way: Go keeps frame pointers on amd64, so a frame whose
//! saved BP disagrees with the SP-delta walk marks a stack that changed
//! under the read (or memory that is not a stack), and the walk stops there.
//!
//! Logical frames (inlined calls, wrapper elision) come from the
//! [`Symbolizer`] afterwards; this module deals in physical frames only.

use crate::gobin::symbolize::Symbolizer;

/// Most physical frames walked (the runtime's own tracebacks print at most
/// 100; profiles keep at most 1024 pcs).
pub const MAX_FRAMES: usize = 1024;

/// A goroutine's stack bytes, `[base, base + bytes.len())` in the target.
#[derive(Debug, Clone, Default)]
pub struct Stack {
    pub base: u64,
    pub bytes: Vec<u8>,
}

impl Stack {
    /// The word at `addr`, if it is in the bytes read.
    pub fn word(&self, addr: u64) -> Option<u64> {
        let off = usize::try_from(addr.checked_sub(self.base)?).ok()?;
        let b = self.bytes.get(off..off.checked_add(8)?)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }
}

/// One physical frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhysFrame {
    /// The pc in the target (runtime address): a return address, except
    /// for the innermost frame of an interrupted goroutine (`trap`).
    pub pc: u64,
    pub sp: u64,
    /// The caller's SP (the top of this frame).
    pub fp: u64,
    /// The pc is where the goroutine was interrupted, not a return address:
    /// it is looked up as is (others as `pc - 1`).
    pub trap: bool,
}

impl PhysFrame {
    /// The pc to symbolize (runtime address): the call instruction for a
    /// return address, as the runtime's `symPC` does.
    pub fn sym_pc(&self, entry: u64) -> u64 {
        if !self.trap && self.pc > entry {
            self.pc - 1
        } else {
            self.pc
        }
    }
}

/// How a walk ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// At the top of the stack (`runtime.goexit` and the like).
    Top,
    /// Stopped early, for this reason.
    Incomplete(String),
}

/// The result of a walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Walk {
    pub frames: Vec<PhysFrame>,
    pub end: End,
    /// A frame's saved frame pointer disagreed with the SP-delta walk.
    pub fp_mismatch: bool,
}

/// Functions after which the next frame's pc is an interrupted instruction,
/// not a return address (the runtime's `unwindTrap`).
const INJECTED: [&str; 3] = [
    "runtime.sigpanic",
    "runtime.asyncPreempt",
    "runtime.debugCallV2",
];

/// Walk from `pc`, `sp`, `bp` (runtime addresses; `bias` = runtime − link
/// address of the binary's code) over `stack`. `trap`: `pc` is where a
/// thread was stopped (registers of a running goroutine), not a return address.
pub fn walk(
    sym: &Symbolizer<'_>,
    bias: u64,
    stack: &Stack,
    pc: u64,
    sp: u64,
    bp: u64,
    trap: bool,
) -> Walk {
    let mut frames = Vec::new();
    let (mut pc, mut sp, mut bp) = (pc, sp, Some(bp));
    let mut trap = trap;
    let mut fp_mismatch = false;
    let stop = |frames: Vec<PhysFrame>, why: String, fp_mismatch: bool| Walk {
        frames,
        end: End::Incomplete(why),
        fp_mismatch,
    };
    for _ in 0..MAX_FRAMES {
        let Some(f) = pc.checked_sub(bias).and_then(|l| sym.func(l)) else {
            return stop(
                frames,
                format!("pc {pc:#x} is in no Go function"),
                fp_mismatch,
            );
        };
        let link_pc = pc - bias;
        if f.is_top_frame() {
            frames.push(PhysFrame {
                pc,
                sp,
                fp: sp,
                trap,
            });
            return Walk {
                frames,
                end: End::Top,
                fp_mismatch,
            };
        }
        let Some(delta) = f.sp_delta(link_pc).and_then(|d| u64::try_from(d).ok()) else {
            return stop(
                frames,
                format!("no SP delta for {} at {pc:#x}", f.name()),
                fp_mismatch,
            );
        };
        let Some(fp) = sp.checked_add(delta).and_then(|v| v.checked_add(8)) else {
            return stop(frames, "frame address overflows".into(), fp_mismatch);
        };
        frames.push(PhysFrame { pc, sp, fp, trap });
        if f.writes_sp() && frames.len() > 1 {
            return stop(
                frames,
                format!("{} writes SP: cannot unwind past it", f.name()),
                fp_mismatch,
            );
        }
        let Some(ret) = stack.word(fp - 8) else {
            return stop(
                frames,
                format!("return address at {:#x} is outside the stack", fp - 8),
                fp_mismatch,
            );
        };
        if ret == 0 {
            return Walk {
                frames,
                end: End::Top,
                fp_mismatch,
            };
        }
        // With frame pointers, a frame that saved BP has it at fp - 16, and
        // the saved value is the caller's frame pointer; a frame without a
        // frame (delta 0) keeps the caller's BP in the register.
        if delta >= 8 {
            if bp.is_some_and(|b| b != 0 && b != fp - 16) && !f.is_asm() {
                fp_mismatch = true;
            }
            bp = stack.word(fp - 16).or(Some(0));
        }
        trap = INJECTED.contains(&f.name());
        pc = ret;
        sp = fp;
    }
    stop(
        frames,
        format!("more than {MAX_FRAMES} frames"),
        fp_mismatch,
    )
}
