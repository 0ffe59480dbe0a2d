//! User stacks of a Go process as the eBPF programs capture them (the
//! kernel's frame-pointer walk from the user registers), turned into Go's
//! own frames: functions, files and lines from the binary's pclntab,
//! inlined calls included, for stripped binaries too.
//!
//! A frame-pointer walk starts at the sampled pc, then follows the saved
//! frame pointers from `rbp`. A function that has not set up its frame
//! pointer at that pc (a frameless leaf: Go gives functions without a frame
//! no `PUSHQ BP`; or the first instructions of any function, before its
//! `PUSHQ BP; MOVQ SP, BP`, where a uprobe at entry stops) leaves `rbp`
//! pointing at its caller's frame, so the walk skips the caller. pclntab's
//! SP delta at the pc says whether the frame is set up
//! (`rbp == sp + delta - 8`); when it is not, the caller's return address is
//! the word at `sp + delta` (captured for delta 0 and 8) and is put back in.
//!
//! Return addresses stand for the call before them: they are looked up at
//! `pc - 1`, as the runtime does, except after `runtime.sigpanic`, whose
//! "return address" is the faulting instruction itself.

use std::collections::HashMap;
use std::sync::Arc;

use crate::gobin::GoBinary;
use crate::gobin::symbolize::Symbolizer;
use crate::sample::StackFrame;

/// What an eBPF program captured of a user stack.
#[derive(Debug, Clone, Copy)]
pub struct Captured<'a> {
    /// The kernel's walk: the pc at the sample (or probe) first, then
    /// return addresses, as runtime addresses.
    pub pcs: &'a [u64],
    pub sp: u64,
    pub bp: u64,
    /// The words at `sp` and `sp + 8`.
    pub sp_words: [u64; 2],
}

/// One logical frame (a function, inlined or not) at one pc of a stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logical {
    pub function: String,
    pub file: String,
    pub line: u32,
    pub inlined: bool,
    /// Link-time entry of the physical function (0 outside the binary).
    pub entry: u64,
    /// A compiler-generated wrapper, left out of Go's own tracebacks.
    pub wrapper: bool,
}

/// One physical frame of a stack: a pc and the logical frames at it,
/// innermost first (the physical function last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhysFrame {
    /// As captured: the sampled pc, or a return address (runtime address).
    pub pc: u64,
    /// The link-time address looked up: `pc - bias`, minus 1 for a return address.
    pub lookup: u64,
    /// The captured pc was a return address.
    pub is_return: bool,
    pub frames: Arc<[Logical]>,
}

impl PhysFrame {
    /// The physical function's name (`?` when the pc is in no function).
    pub fn function(&self) -> &str {
        self.frames.last().map_or("?", |f| f.function.as_str())
    }

    /// The link-time address of the captured pc itself (the return address
    /// for a caller frame: Go prints `+0x` from it).
    pub fn link_pc(&self) -> u64 {
        self.lookup + u64::from(self.is_return)
    }
}

/// The frames of a stack as sample-record frames (innermost first).
pub fn stack_frames(stack: &[PhysFrame]) -> Vec<StackFrame> {
    let mut out = Vec::new();
    for p in stack {
        for f in p.frames.iter() {
            out.push(StackFrame {
                function: f.function.clone(),
                file: f.file.clone(),
                line: f.line,
                pc: p.lookup,
                inlined: f.inlined,
            });
        }
    }
    out
}

/// Frames by link-time lookup address, so each pc is symbolized once, and
/// SP deltas at the pcs stacks start at.
#[derive(Default)]
pub struct FrameCache {
    frames: HashMap<u64, Arc<[Logical]>>,
    deltas: HashMap<u64, Option<i32>>,
    /// The binary cannot be symbolized (said once, not retried).
    unusable: bool,
}

/// Entries kept before the cache starts over (a long recording of a big
/// program touches many pcs; each is cheap to look up again).
const CACHE_MAX: usize = 1 << 18;

/// The binary's symbolizer, made on first use (most stacks are all cached).
struct Lazy<'b> {
    bin: Option<&'b GoBinary>,
    sym: Option<Option<Symbolizer<'b>>>,
}

impl<'b> Lazy<'b> {
    fn get(&mut self, unusable: &mut bool) -> Option<&Symbolizer<'b>> {
        if *unusable {
            return None;
        }
        let bin = self.bin;
        let s = self
            .sym
            .get_or_insert_with(|| bin.and_then(|b| Symbolizer::new(b).ok()));
        if s.is_none() {
            *unusable = true;
        }
        s.as_ref()
    }
}

impl FrameCache {
    /// Symbolize a captured stack of `bin` (`None`: nothing is named).
    /// `bias` is the process's load bias (0 for position-dependent
    /// binaries); `outside` names a pc that is in no function of the binary
    /// (a vDSO, a shared library), by its mapping.
    pub fn stack(
        &mut self,
        bin: Option<&GoBinary>,
        bias: u64,
        cap: &Captured<'_>,
        outside: &mut dyn FnMut(u64) -> String,
    ) -> Vec<PhysFrame> {
        if self.frames.len() + self.deltas.len() > CACHE_MAX {
            self.frames.clear();
            self.deltas.clear();
        }
        let mut lazy = Lazy { bin, sym: None };
        let pcs = self.repaired(cap, bias, &mut lazy);
        let mut out: Vec<PhysFrame> = Vec::with_capacity(pcs.len());
        let mut after_sigpanic = false;
        for (i, &pc) in pcs.iter().enumerate() {
            let p = self.phys(&mut lazy, bias, pc, i > 0 && !after_sigpanic, outside);
            after_sigpanic = p.function() == "runtime.sigpanic";
            out.push(p);
        }
        out
    }

    /// The frame at one return address (`g.gopc`, say).
    pub fn return_frame(
        &mut self,
        bin: Option<&GoBinary>,
        bias: u64,
        ret: u64,
        outside: &mut dyn FnMut(u64) -> String,
    ) -> PhysFrame {
        let mut lazy = Lazy { bin, sym: None };
        self.phys(&mut lazy, bias, ret, true, outside)
    }

    fn phys(
        &mut self,
        lazy: &mut Lazy<'_>,
        bias: u64,
        pc: u64,
        is_return: bool,
        outside: &mut dyn FnMut(u64) -> String,
    ) -> PhysFrame {
        let lookup = pc.wrapping_sub(bias).wrapping_sub(u64::from(is_return));
        let frames = match self.frames.get(&lookup) {
            Some(f) => f.clone(),
            None => {
                let found = lazy
                    .get(&mut self.unusable)
                    .map(|s| logical(s, lookup))
                    .filter(|f| !f.is_empty());
                let f: Arc<[Logical]> = match found {
                    Some(f) => f.into(),
                    None => vec![Logical {
                        function: outside(pc),
                        file: "?".into(),
                        line: 0,
                        inlined: false,
                        entry: 0,
                        wrapper: false,
                    }]
                    .into(),
                };
                self.frames.insert(lookup, f.clone());
                f
            }
        };
        PhysFrame {
            pc,
            lookup,
            is_return,
            frames,
        }
    }

    /// The captured pcs with a frameless leaf's caller put back (see the
    /// module docs). Only the first pc can be in such a frame: every other
    /// one is a return address into a function that made a call, so has
    /// its frame.
    fn repaired(&mut self, cap: &Captured<'_>, bias: u64, lazy: &mut Lazy<'_>) -> Vec<u64> {
        let mut pcs: Vec<u64> = cap.pcs.to_vec();
        let Some(&first) = pcs.first() else {
            return pcs;
        };
        let link = first.wrapping_sub(bias);
        let delta = match self.deltas.get(&link) {
            Some(d) => *d,
            None => {
                let d = lazy
                    .get(&mut self.unusable)
                    .and_then(|s| s.func(link).and_then(|f| f.sp_delta(link)));
                self.deltas.insert(link, d);
                d
            }
        };
        let Some(delta) = delta.and_then(|d| u64::try_from(d).ok()) else {
            return pcs;
        };
        if delta >= 8 && cap.bp == cap.sp.wrapping_add(delta - 8) {
            return pcs;
        }
        let ret = match delta {
            0 => cap.sp_words[0],
            8 => cap.sp_words[1],
            // Deeper without a frame pointer: only assembly does that, and
            // where its caller's return address is cannot be told.
            _ => return pcs,
        };
        // The word must be a return address into a function of the binary
        // (a frame that is set up after all, mid-epilogue, leaves anything
        // there).
        let into_binary = lazy
            .get(&mut self.unusable)
            .is_some_and(|s| s.func(ret.wrapping_sub(bias).wrapping_sub(1)).is_some());
        if ret != 0 && into_binary && pcs.get(1) != Some(&ret) {
            pcs.insert(1, ret);
        }
        pcs
    }
}

/// The logical frames at a link-time pc.
fn logical(sym: &Symbolizer<'_>, pc: u64) -> Vec<Logical> {
    sym.frames(pc)
        .into_iter()
        .map(|f| Logical {
            function: f.function.to_owned(),
            file: f.file.to_owned(),
            line: f.line,
            inlined: f.inlined,
            entry: f.entry,
            wrapper: sym.is_wrapper(f.func_id).unwrap_or(false),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stack_frames_keep_inlined_calls_before_their_caller() {
        let frames: Arc<[Logical]> = vec![
            Logical {
                function: "main.inner".into(),
                file: "/m.go".into(),
                line: 3,
                inlined: true,
                entry: 0x1000,
                wrapper: false,
            },
            Logical {
                function: "main.outer".into(),
                file: "/m.go".into(),
                line: 9,
                inlined: false,
                entry: 0x1000,
                wrapper: false,
            },
        ]
        .into();
        let p = PhysFrame {
            pc: 0x401010,
            lookup: 0x100f,
            is_return: true,
            frames,
        };
        assert_eq!(p.function(), "main.outer");
        assert_eq!(p.link_pc(), 0x1010);
        let s = stack_frames(&[p]);
        assert_eq!(s.len(), 2);
        assert!(s[0].inlined && !s[1].inlined);
        assert_eq!((s[0].pc, s[1].pc), (0x100f, 0x100f));
    }
}
