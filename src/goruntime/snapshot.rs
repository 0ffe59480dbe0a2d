//! One reading of a process's runtime state: the globals located and
//! validated, then the heap profile or the goroutines read, with what was
//! read, how often, and whether the reads agreed.

use std::collections::HashMap;

use super::globals::Global;
use super::goroutines::{self, G_SCAN, GRecord, Names, Regs};
use super::heap::{self, Addrs};
use super::layout::Sources;
use super::stacks::{self, LogicalFrame, PanicIds};
use super::unwind::End;
use super::{Located, Runtime, RuntimeError, monotonic_now, names};
use crate::remote::RemoteMemory;

/// `mProfCycleWrap`: `len(memRecord{}.future) * (2 << 24)` (Go 1.13 through 1.27).
const MPROF_CYCLE_WRAP: u32 = 3 * (2 << 24);
/// Most reads of a profile that keeps changing.
pub const HEAP_ATTEMPTS: u32 = 5;

/// The heap profile as `runtime.MemProfile` would report it now.
#[derive(Debug, Clone)]
pub struct HeapSnapshot {
    pub profile: heap::Profile,
    /// `runtime.MemProfileRate` (0: the runtime samples nothing).
    pub rate: i64,
    /// Reads it took for two to agree.
    pub reads: u32,
    /// False when no two reads agreed (a GC kept publishing cycles).
    pub consistent: bool,
    pub globals: Vec<Located>,
    pub layout: Sources,
}

/// Locate and validate the heap profile's globals, then read it.
pub fn read_heap(rt: &Runtime<'_>, mem: &dyn RemoteMemory) -> Result<HeapSnapshot, RuntimeError> {
    let l = rt.bucket_layout()?;
    let is_code = |pc: u64| rt.is_code(pc);
    let mbuckets = rt.locate(Global::Mbuckets, &|addr| {
        let head = mem.u64(addr).map_err(|e| e.to_string())?;
        heap::check_list(mem, l, head, &is_code).map_err(|e| e.to_string())
    })?;
    let cycle = rt.locate(Global::MProfCycle, &|addr| {
        let v = mem.u32(addr).map_err(|e| e.to_string())?;
        if v >> 1 < MPROF_CYCLE_WRAP {
            Ok(())
        } else {
            Err(format!(
                "cycle {} is past the runtime's wrap-around",
                v >> 1
            ))
        }
    })?;
    let rate_at = rt.locate(Global::MemProfileRate, &|addr| {
        let v = mem.u64(addr).map_err(|e| e.to_string())? as i64;
        if (0..1 << 40).contains(&v) {
            Ok(())
        } else {
            Err(format!("rate {v} is not a sampling rate"))
        }
    })?;
    let at = Addrs {
        mbuckets: mbuckets.addr,
        mprof_cycle: cycle.addr,
    };
    let (profile, reads, consistent) = heap::read_consistent(mem, l, at, &is_code, HEAP_ATTEMPTS)?;
    let rate = mem.u64(rate_at.addr)? as i64;
    Ok(HeapSnapshot {
        profile,
        rate,
        reads,
        consistent,
        globals: vec![mbuckets, cycle, rate_at],
        layout: l.sources.clone(),
    })
}

/// How far a goroutine's stack could be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StackState {
    /// Walked to its top.
    Complete,
    /// Walked part of the way; why it stopped.
    Incomplete(String),
    /// Running on a thread with no registers to start from.
    Running,
}

/// One goroutine.
#[derive(Debug, Clone)]
pub struct Goroutine {
    pub id: u64,
    /// Address of the `g`.
    pub addr: u64,
    /// The runtime's name for the status (`waiting`, `runnable`, ...).
    pub status: String,
    /// The GC is scanning its stack (`_Gscan`).
    pub scan: bool,
    /// The wait reason (`chan receive`, `IO wait`, ...), when waiting.
    pub wait_reason: Option<String>,
    /// Nanoseconds since the runtime recorded it blocked: set at the first
    /// GC that finds it waiting, so a lower bound, and absent until then.
    pub waited_ns: Option<i64>,
    pub parent_id: Option<u64>,
    /// The `go` statement that created it (runtime address; 0 for none).
    pub gopc: u64,
    /// The goroutine's function (runtime address).
    pub startpc: u64,
    pub locked_to_thread: bool,
    /// A runtime-internal goroutine (hidden from dumps and profiles by default).
    pub system: bool,
    /// The thread it runs on (frozen reads of running goroutines).
    pub thread: Option<u32>,
    pub frames: Vec<LogicalFrame>,
    pub stack: StackState,
    /// The goroutine kept changing while it was read.
    pub torn: bool,
}

impl Goroutine {
    /// The state the runtime's dump header shows: the wait reason for a
    /// waiting goroutine, else the status.
    pub fn state(&self) -> &str {
        self.wait_reason.as_deref().unwrap_or(&self.status)
    }

    /// Whole minutes waited, as the dump header counts them.
    pub fn wait_minutes(&self) -> i64 {
        self.waited_ns.map_or(0, |ns| ns / 60_000_000_000)
    }
}

/// Every goroutine, as read at one moment.
#[derive(Debug, Clone)]
pub struct GoroutineSnapshot {
    pub goroutines: Vec<Goroutine>,
    pub names: Names,
    pub globals: Vec<Located>,
    pub layout: Sources,
}

/// Locate and validate `allgs` and the name arrays, then read every goroutine.
/// `regs` holds the registers (pc, sp, bp) of each thread of a frozen process, by thread id.
pub fn read_goroutines(
    rt: &Runtime<'_>,
    mem: &dyn RemoteMemory,
    regs: &HashMap<u32, Regs>,
) -> Result<GoroutineSnapshot, RuntimeError> {
    let l = rt.g_layout()?;
    let names = names(rt, mem)?;
    let allgs = rt.locate(Global::Allgs, &|addr| {
        let gs = goroutines::read_allgs(mem, addr).map_err(|e| e.to_string())?;
        // The first goroutine ever added is the main goroutine, id 1.
        let goid = mem.u64(gs[0] + l.goid).map_err(|e| e.to_string())?;
        if goid == 1 {
            Ok(())
        } else {
            Err(format!("its first goroutine has id {goid}, not 1"))
        }
    })?;
    let value = |name: &str| names.status_value(name);
    let (waiting, syscall, running, leaked) = (
        value("waiting"),
        value("syscall"),
        value("running"),
        value("leaked"),
    );
    let dead: Vec<u32> = ["dead", "waiting for cgo callback"]
        .iter()
        .filter_map(|n| value(n))
        .collect();
    let addrs = goroutines::read_allgs(mem, allgs.addr)?;
    let thread_of = |g: &GRecord| -> Option<u32> {
        let procid = l.m_procid?;
        let at = g.m.checked_add(procid).filter(|_| g.m != 0)?;
        mem.u64(at).ok().map(|t| t as u32)
    };
    let reads = goroutines::read_all(
        mem,
        l,
        &rt.sym,
        rt.bias,
        &addrs,
        &|s| dead.contains(&s),
        &|s| Some(s) == running,
        &|g| regs.get(&thread_of(g)?).copied(),
    )?;
    let now = monotonic_now();
    let panics = PanicIds::of(rt);
    let mut out = Vec::with_capacity(reads.len());
    for r in reads {
        let g = r.g;
        let s = g.status & !G_SCAN;
        let status = names
            .status
            .get(s as usize)
            .cloned()
            .unwrap_or_else(|| "???".into());
        let wait_reason = ((Some(s) == waiting || (leaked.is_some() && Some(s) == leaked))
            && g.wait_reason != 0)
            .then(|| {
                names
                    .wait
                    .get(usize::from(g.wait_reason))
                    .cloned()
                    .unwrap_or_else(|| "unknown wait reason".into())
            });
        let waited_ns = ((Some(s) == waiting || Some(s) == syscall) && g.wait_since != 0)
            .then(|| now.saturating_sub(g.wait_since));
        let mut frames = stacks::of_walk(rt, panics, r.walk.as_ref());
        if let Some(st) = &r.stack {
            let read = |addr: u64| st.word(addr).or_else(|| mem.u64(addr).ok());
            for f in frames.iter_mut() {
                f.args = stacks::args_text(rt, f, &read);
            }
        }
        let stack = match &r.walk {
            None => StackState::Running,
            Some(w) => match &w.end {
                End::Top => StackState::Complete,
                End::Incomplete(why) => StackState::Incomplete(why.clone()),
            },
        };
        let thread = (Some(s) == running).then(|| thread_of(&g)).flatten();
        out.push(Goroutine {
            id: g.goid,
            addr: g.addr,
            system: is_system(rt, &g, wait_reason.as_deref()),
            status,
            scan: g.status & G_SCAN != 0,
            wait_reason,
            waited_ns,
            parent_id: g.parent_goid.filter(|&p| p != 0),
            gopc: g.gopc,
            startpc: g.startpc,
            locked_to_thread: g.locked_m != 0,
            thread,
            frames,
            stack,
            torn: r.torn,
        });
    }
    Ok(GoroutineSnapshot {
        goroutines: out,
        names,
        globals: vec![allgs],
        layout: l.sources.clone(),
    })
}

/// The runtime's `isSystemGoroutine`: goroutines started in package runtime,
/// except `runtime.main` (and the coroutine and wasm event starters); the
/// finalizer and cleanup goroutines count as user goroutines only while
/// they run user code, which shows as not being parked in their wait.
fn is_system(rt: &Runtime<'_>, g: &GRecord, wait: Option<&str>) -> bool {
    let Some(f) = g.startpc.checked_sub(rt.bias).and_then(|l| rt.sym.func(l)) else {
        return false;
    };
    match f.name() {
        "runtime.main" | "runtime.corostart" | "runtime.handleAsyncEvent" => false,
        "runtime.runfinq" | "runtime.runFinalizers" => wait == Some("finalizer wait"),
        "runtime.runCleanups" => wait == Some("cleanup wait"),
        name => name.starts_with("runtime."),
    }
}
