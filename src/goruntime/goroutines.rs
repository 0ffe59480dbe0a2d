//! Every goroutine of a live process, from the runtime's `allgs` slice: id,
//! state, wait reason, how long it has waited (where the runtime recorded
//! it), its creator, and its stack walked from the registers the scheduler
//! saved (`g.sched`, or `g.syscallsp`/`syscallpc` in a system call).
//!
//! A goroutine that runs while it is read can change under the reader: each
//! `g` is read again after its stack, and read anew (a few times) when its
//! status or saved registers moved. A goroutine running on a thread has no
//! saved registers worth the name; unless the caller hands in the thread's
//! registers (a frozen process), its stack is reported as unavailable, as the
//! runtime's own dump does ("goroutine running on other thread").

use super::layout::GLayout;
use super::unwind::{self, Stack, Walk};
use crate::gobin::symbolize::Symbolizer;
use crate::remote::{MAX_READ, MemError, RemoteMemory};

/// `_Gscan`: the bit the GC sets over a status while it scans the stack (Go 1.0 through 1.27).
pub const G_SCAN: u32 = 0x1000;
/// Most goroutines read: a bound on a corrupt `allgs` length.
pub const MAX_GOROUTINES: u64 = 1 << 24;
/// Most reads of one goroutine that keeps changing.
pub const ATTEMPTS: usize = 4;

/// Why goroutines could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GoroutineError {
    #[error(transparent)]
    Mem(#[from] MemError),
    #[error("runtime.allgs at {addr:#x} is not the goroutine list ({why})")]
    NotAllgs { addr: u64, why: String },
    #[error("{what} at {addr:#x} is not the runtime's string array ({why})")]
    NotStrings {
        what: &'static str,
        addr: u64,
        why: String,
    },
}

/// The runtime's own names: `gStatusStrings` and `waitReasonStrings`, read
/// from the target (so the numbering is the binary's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    pub status: Vec<String>,
    pub wait: Vec<String>,
}

impl Names {
    /// The status value named `name` (`waiting`, `syscall`, ...).
    pub fn status_value(&self, name: &str) -> Option<u32> {
        self.status.iter().position(|s| s == name).map(|i| i as u32)
    }
}

/// Read `[N]string` at `addr` (runtime address).
pub fn read_strings(
    mem: &dyn RemoteMemory,
    what: &'static str,
    addr: u64,
    n: u64,
) -> Result<Vec<String>, GoroutineError> {
    let bad = |why: String| GoroutineError::NotStrings { what, addr, why };
    if n == 0 || n > 256 {
        return Err(bad(format!("{n} entries")));
    }
    let headers = mem.read_vec(addr, (n * 16) as usize)?;
    let mut out = Vec::with_capacity(n as usize);
    for i in 0..n as usize {
        let ptr = u64::from_le_bytes(headers[16 * i..16 * i + 8].try_into().expect("8 bytes"));
        let len = u64::from_le_bytes(
            headers[16 * i + 8..16 * i + 16]
                .try_into()
                .expect("8 bytes"),
        );
        if len == 0 {
            out.push(String::new());
            continue;
        }
        if len > 256 {
            return Err(bad(format!("entry {i} is {len} bytes long")));
        }
        let bytes = mem
            .read_vec(ptr, len as usize)
            .map_err(|e| bad(format!("entry {i}: {e}")))?;
        let s = String::from_utf8(bytes).map_err(|_| bad(format!("entry {i} is not text")))?;
        if !s.chars().all(|c| c.is_ascii_graphic() || c == ' ') {
            return Err(bad(format!("entry {i} ({s:?}) is not a name")));
        }
        out.push(s);
    }
    Ok(out)
}

/// The fields of one `g`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GRecord {
    pub addr: u64,
    pub goid: u64,
    /// `atomicstatus`, scan bit included.
    pub status: u32,
    pub wait_reason: u8,
    pub wait_since: i64,
    pub gopc: u64,
    pub startpc: u64,
    pub parent_goid: Option<u64>,
    pub locked_m: u64,
    pub m: u64,
    pub stack_lo: u64,
    pub stack_hi: u64,
    pub sched_sp: u64,
    pub sched_pc: u64,
    pub sched_bp: u64,
    pub syscall_sp: u64,
    pub syscall_pc: u64,
}

impl GRecord {
    fn parse(addr: u64, b: &[u8], l: &GLayout) -> GRecord {
        let w = |o: u64| {
            let o = o as usize;
            b.get(o..o + 8)
                .map_or(0, |s| u64::from_le_bytes(s.try_into().expect("8 bytes")))
        };
        let status = b
            .get(l.atomicstatus as usize..l.atomicstatus as usize + 4)
            .map_or(0, |s| u32::from_le_bytes(s.try_into().expect("4 bytes")));
        GRecord {
            addr,
            goid: w(l.goid),
            status,
            wait_reason: b.get(l.waitreason as usize).copied().unwrap_or(0),
            wait_since: w(l.waitsince) as i64,
            gopc: w(l.gopc),
            startpc: w(l.startpc),
            parent_goid: l.parent_goid.map(w),
            locked_m: w(l.lockedm),
            m: w(l.m),
            stack_lo: w(l.stack_lo),
            stack_hi: w(l.stack_hi),
            sched_sp: w(l.sched_sp),
            sched_pc: w(l.sched_pc),
            sched_bp: w(l.sched_bp),
            syscall_sp: w(l.syscallsp),
            syscall_pc: w(l.syscallpc),
        }
    }

    /// What a re-read must agree on for the stack read in between to count.
    fn same_place(&self, o: &GRecord) -> bool {
        (
            self.status,
            self.sched_sp,
            self.sched_pc,
            self.syscall_sp,
            self.syscall_pc,
            self.goid,
        ) == (
            o.status,
            o.sched_sp,
            o.sched_pc,
            o.syscall_sp,
            o.syscall_pc,
            o.goid,
        )
    }
}

/// Read the `allgs` slice header at `addr` and the `g` pointers it holds.
pub fn read_allgs(mem: &dyn RemoteMemory, addr: u64) -> Result<Vec<u64>, GoroutineError> {
    let bad = |why: String| GoroutineError::NotAllgs { addr, why };
    // Two reads that agree: `allgadd` writes the header's words one by one.
    let mut header = [0u8; 24];
    let mut last = None;
    for _ in 0..ATTEMPTS {
        mem.read(addr, &mut header)?;
        if last == Some(header) {
            break;
        }
        last = Some(header);
    }
    let w = |i: usize| u64::from_le_bytes(header[8 * i..8 * i + 8].try_into().expect("8 bytes"));
    let (ptr, len, cap) = (w(0), w(1), w(2));
    if len == 0 || len > cap || cap > MAX_GOROUTINES {
        return Err(bad(format!("length {len}, capacity {cap}")));
    }
    if !mem.is_mapped(ptr, cap * 8) {
        return Err(bad(format!(
            "its array at {ptr:#x} ({cap} pointers) is not mapped"
        )));
    }
    let bytes = mem.read_vec(ptr, (len * 8) as usize)?;
    let gs: Vec<u64> = bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect();
    if let Some(g) = gs.iter().find(|&&g| g == 0 || !mem.is_mapped(g, 8)) {
        return Err(bad(format!(
            "element {g:#x} is not a pointer into the process"
        )));
    }
    Ok(gs)
}

/// Registers to start a walk from: pc, sp, bp.
pub type Regs = (u64, u64, u64);

/// One goroutine as read, with its stack walk.
#[derive(Debug, Clone)]
pub struct Read {
    pub g: GRecord,
    /// None: running on a thread, no registers to start from.
    pub walk: Option<Walk>,
    /// The stack bytes the walk read (for argument values).
    pub stack: Option<Stack>,
    /// The record kept changing while it was read.
    pub torn: bool,
}

/// Read every `g` at `addrs`, then each live one's stack, then each `g`
/// again to confirm it did not move. `dead` tells which statuses have no
/// goroutine behind them; `running` which mean "on a thread now";
/// `thread_regs` gives a running goroutine's registers (frozen processes)
/// by the `g`'s `m` pointer.
#[allow(clippy::too_many_arguments)]
pub fn read_all(
    mem: &dyn RemoteMemory,
    l: &GLayout,
    sym: &Symbolizer<'_>,
    bias: u64,
    addrs: &[u64],
    dead: &dyn Fn(u32) -> bool,
    running: &dyn Fn(u32) -> bool,
    thread_regs: &dyn Fn(&GRecord) -> Option<Regs>,
) -> Result<Vec<Read>, GoroutineError> {
    let len = l.read_len as usize;
    let read_gs = |addrs: &[u64]| -> Vec<Result<GRecord, MemError>> {
        let mut bufs: Vec<Vec<u8>> = addrs.iter().map(|_| vec![0u8; len]).collect();
        let mut reqs: Vec<(u64, &mut [u8])> = addrs
            .iter()
            .copied()
            .zip(bufs.iter_mut().map(|b| b.as_mut_slice()))
            .collect();
        let res = mem.read_many(&mut reqs);
        res.into_iter()
            .zip(addrs.iter().zip(&bufs))
            .map(|(r, (&a, b))| r.map(|()| GRecord::parse(a, b, l)))
            .collect()
    };
    let mut out = Vec::with_capacity(addrs.len());
    let mut pending: Vec<u64> = addrs.to_vec();
    let mut first = read_gs(&pending)
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    for attempt in 0..ATTEMPTS {
        let live: Vec<GRecord> = first
            .into_iter()
            .filter(|g| !dead(g.status & !G_SCAN))
            .collect();
        // (registers, whether the pc is a stopped thread's rather than a return address)
        let starts: Vec<Option<(Regs, bool)>> = live
            .iter()
            .map(|g| {
                if g.syscall_sp != 0 {
                    Some(((g.syscall_pc, g.syscall_sp, 0), false))
                } else if running(g.status & !G_SCAN) {
                    thread_regs(g).map(|r| (r, true))
                } else {
                    Some(((g.sched_pc, g.sched_sp, g.sched_bp), false))
                }
            })
            .collect();
        let stacks = read_stacks(mem, &live, &starts);
        let again = read_gs(&live.iter().map(|g| g.addr).collect::<Vec<_>>());
        let mut retry = Vec::new();
        for ((g, start), (stack, after)) in live
            .into_iter()
            .zip(starts)
            .zip(stacks.into_iter().zip(again))
        {
            let moved = !matches!(&after, Ok(a) if a.same_place(&g));
            if moved && attempt + 1 < ATTEMPTS {
                retry.push(g.addr);
                continue;
            }
            let walk = match (start, &stack) {
                (Some(((pc, sp, bp), trap)), Some(stack)) => {
                    Some(unwind::walk(sym, bias, stack, pc, sp, bp, trap))
                }
                (Some(_), None) => Some(Walk {
                    frames: Vec::new(),
                    end: unwind::End::Incomplete(
                        "stack pointer outside the goroutine's stack".into(),
                    ),
                    fp_mismatch: false,
                }),
                (None, _) => None,
            };
            out.push(Read {
                g,
                walk,
                stack,
                torn: moved,
            });
        }
        if retry.is_empty() {
            break;
        }
        pending = retry;
        // A goroutine may have exited (its g reused or dead) meanwhile:
        // a failed re-read drops it.
        first = read_gs(&pending)
            .into_iter()
            .filter_map(Result::ok)
            .collect();
    }
    // allgs order, as the runtime's dump has it.
    let order: std::collections::HashMap<u64, usize> =
        addrs.iter().enumerate().map(|(i, &a)| (a, i)).collect();
    out.sort_by_key(|r| order.get(&r.g.addr).copied().unwrap_or(usize::MAX));
    Ok(out)
}

/// Each goroutine's stack from its start SP to the top, one batched read.
fn read_stacks(
    mem: &dyn RemoteMemory,
    gs: &[GRecord],
    starts: &[Option<(Regs, bool)>],
) -> Vec<Option<Stack>> {
    let spans: Vec<Option<(u64, usize)>> = gs
        .iter()
        .zip(starts)
        .map(|(g, s)| {
            let ((_, sp, _), _) = (*s)?;
            let ok = g.stack_lo <= sp && sp < g.stack_hi && g.stack_hi - sp <= MAX_READ as u64;
            ok.then(|| (sp, (g.stack_hi - sp) as usize))
        })
        .collect();
    let mut bufs: Vec<Vec<u8>> = spans
        .iter()
        .map(|s| vec![0u8; s.map_or(0, |(_, n)| n)])
        .collect();
    let mut reqs: Vec<(u64, &mut [u8])> = spans
        .iter()
        .zip(bufs.iter_mut())
        .filter_map(|(s, b)| s.map(|(a, _)| (a, b.as_mut_slice())))
        .collect();
    let mut results = mem.read_many(&mut reqs).into_iter();
    drop(reqs);
    spans
        .iter()
        .zip(bufs)
        .map(|(s, bytes)| {
            let (base, _) = (*s)?;
            results.next()?.ok()?;
            Some(Stack { base, bytes })
        })
        .collect()
}
