//! The NDJSON form of a snapshot (`goprobe heap --json`, `goprobe
//! goroutines`): one `snapshot` line saying what was read, when, how and
//! from where, then one line per heap sample or goroutine.

use serde::Serialize;

use super::heap::Record;
use super::layout::Sources;
use super::profile::scale_heap_sample;
use super::snapshot::{Goroutine, StackState};
use super::{Located, Runtime};

/// How the read went: the first line of every snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct Header {
    /// Always `snapshot`.
    pub r#type: &'static str,
    /// `heap` or `goroutines`.
    pub kind: &'static str,
    pub pid: u32,
    pub executable: String,
    pub go_version: String,
    /// Wall clock at the start of the read.
    pub time_unix_nano: i64,
    /// How long the read took (wall clock).
    pub read_ns: u64,
    /// CPU time goprobe spent on it.
    pub read_cpu_ns: u64,
    /// How long the process was stopped (`--freeze`), else absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stopped_ns: Option<u64>,
    /// Where each global was found (runtime address, and how).
    pub globals: Vec<GlobalLine>,
    /// Where each struct offset came from.
    pub layout: std::collections::BTreeMap<String, String>,
    #[serde(flatten)]
    pub detail: Detail,
}

#[derive(Debug, Clone, Serialize)]
pub struct GlobalLine {
    pub name: &'static str,
    pub address: String,
    /// `symbol`, or `code:FUNCTION`.
    pub found: String,
}

/// Per-kind facts of the header.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Detail {
    Heap {
        /// `runtime.MemProfileRate`.
        memprofilerate: i64,
        /// The heap profile cycle (completed GC cycles, wrapped) the counts are as of.
        gc_cycle: u32,
        /// No GC had published a cycle: counts are every allocation so far, and no frees.
        unpublished: bool,
        buckets: usize,
        /// Reads it took for two to agree.
        reads: u32,
        /// False when no two reads agreed (use --freeze).
        consistent: bool,
    },
    Goroutines {
        goroutines: usize,
        /// Of which runtime-internal.
        system: usize,
        /// Goroutines running on a thread whose stack could not be read.
        running_without_stack: usize,
        /// Goroutines whose stack walk stopped early.
        incomplete_stacks: usize,
        /// Goroutines that kept changing while read.
        torn: usize,
    },
}

impl Header {
    /// The fields both kinds share.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        kind: &'static str,
        rt: &Runtime<'_>,
        pid: u32,
        time_unix_nano: i64,
        (read_ns, read_cpu_ns): (u64, u64),
        stopped_ns: Option<u64>,
        globals: &[Located],
        layout: &Sources,
        detail: Detail,
    ) -> Header {
        Header {
            r#type: "snapshot",
            kind,
            pid,
            executable: rt.bin.path().display().to_string(),
            go_version: rt.bin.build_info().go_version.clone(),
            time_unix_nano,
            read_ns,
            read_cpu_ns,
            stopped_ns,
            globals: globals
                .iter()
                .map(|g| GlobalLine {
                    name: g.global.symbol(),
                    address: format!("{:#x}", g.addr),
                    found: match &g.found {
                        super::globals::Found::Symbol => "symbol".into(),
                        super::globals::Found::Code(f) => format!("code:{f}"),
                    },
                })
                .collect(),
            layout: layout
                .iter()
                .map(|(f, s)| (f.clone(), s.to_string()))
                .collect(),
            detail,
        }
    }
}

/// One frame of a record's stack.
#[derive(Debug, Clone, Serialize)]
pub struct FrameLine {
    pub function: String,
    pub file: String,
    pub line: u32,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub inlined: bool,
    /// The pc (runtime address, hex).
    pub pc: String,
    /// The argument words a traceback prints (physical frames).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub args: Option<String>,
}

/// Scaled values, as the pprof profile has them.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Scaled {
    pub alloc_objects: i64,
    pub alloc_space: i64,
    pub inuse_objects: i64,
    pub inuse_space: i64,
}

/// One allocation site (a `MemProfileRecord`).
#[derive(Debug, Clone, Serialize)]
pub struct HeapSample {
    /// Always `heap_sample`.
    pub r#type: &'static str,
    /// Sampled counts, as the runtime keeps them.
    pub alloc_objects: u64,
    pub alloc_bytes: u64,
    pub free_objects: u64,
    pub free_bytes: u64,
    pub inuse_objects: i64,
    pub inuse_bytes: i64,
    /// The estimate of the real totals (`runtime/pprof`'s scaling at the rate).
    pub scaled: Scaled,
    /// The size class of the allocations.
    pub size: u64,
    /// Innermost first; one entry per logical frame.
    pub stack: Vec<FrameLine>,
}

impl HeapSample {
    pub fn new(rt: &Runtime<'_>, r: &Record, rate: i64) -> HeapSample {
        let c = r.counts;
        let inuse_objects = (c.allocs as i64).wrapping_sub(c.frees as i64);
        let inuse_bytes = (c.alloc_bytes as i64).wrapping_sub(c.free_bytes as i64);
        let (ao, asp) = scale_heap_sample(c.allocs as i64, c.alloc_bytes as i64, rate);
        let (io, isp) = scale_heap_sample(inuse_objects, inuse_bytes, rate);
        let stack = r
            .stack
            .iter()
            .filter_map(|&pc| {
                let link = pc.checked_sub(1)?.checked_sub(rt.bias)?;
                let f = rt.sym.frame(link)?;
                Some(FrameLine {
                    function: f.function.to_string(),
                    file: f.file.to_string(),
                    line: f.line,
                    inlined: f.inlined,
                    pc: format!("{pc:#x}"),
                    args: None,
                })
            })
            .collect();
        HeapSample {
            r#type: "heap_sample",
            alloc_objects: c.allocs,
            alloc_bytes: c.alloc_bytes,
            free_objects: c.frees,
            free_bytes: c.free_bytes,
            inuse_objects,
            inuse_bytes,
            scaled: Scaled {
                alloc_objects: ao,
                alloc_space: asp,
                inuse_objects: io,
                inuse_space: isp,
            },
            size: r.size,
            stack,
        }
    }
}

/// Where a goroutine was created.
#[derive(Debug, Clone, Serialize)]
pub struct CreatedBy {
    pub function: String,
    pub file: String,
    pub line: u32,
    pub pc: String,
}

/// One goroutine.
#[derive(Debug, Clone, Serialize)]
pub struct GoroutineLine {
    /// Always `goroutine`.
    pub r#type: &'static str,
    pub id: u64,
    /// The runtime's status name: `waiting`, `runnable`, `running`, `syscall`, ...
    pub status: String,
    /// What the dump header shows: the wait reason when waiting, else the status.
    pub state: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wait_reason: Option<String>,
    /// Nanoseconds since the runtime recorded it blocked (a lower bound: the
    /// runtime records the time at the first GC that finds it waiting).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waited_ns: Option<i64>,
    pub wait_minutes: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent_id: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created_by: Option<CreatedBy>,
    /// The goroutine's own function.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_function: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub locked_to_thread: bool,
    /// Runtime-internal (left out of dumps and profiles unless --all).
    pub system: bool,
    /// The thread it was running on (frozen reads).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thread: Option<u32>,
    /// `complete`, `incomplete` or `unavailable` (running, not frozen).
    pub stack_state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack_error: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub torn: bool,
    /// Innermost first, every logical frame (runtime ones included).
    pub frames: Vec<FrameLine>,
}

impl GoroutineLine {
    pub fn new(rt: &Runtime<'_>, g: &Goroutine) -> GoroutineLine {
        let created_by = g
            .gopc
            .checked_sub(rt.bias)
            .and_then(|pc| rt.sym.func(pc))
            .map(|f| {
                let entry = f.entry() + rt.bias;
                let at = if g.gopc > entry { g.gopc - 1 } else { g.gopc };
                let (file, line) = f.file_line(at - rt.bias);
                CreatedBy {
                    function: f.name().to_string(),
                    file: file.to_string(),
                    line,
                    pc: format!("{:#x}", g.gopc),
                }
            });
        let start_function = g
            .startpc
            .checked_sub(rt.bias)
            .and_then(|pc| rt.sym.func(pc))
            .map(|f| f.name().to_string());
        let (stack_state, stack_error) = match &g.stack {
            StackState::Complete => ("complete", None),
            StackState::Incomplete(why) => ("incomplete", Some(why.clone())),
            StackState::Running => ("unavailable", None),
        };
        GoroutineLine {
            r#type: "goroutine",
            id: g.id,
            status: g.status.clone(),
            state: g.state().to_string(),
            wait_reason: g.wait_reason.clone(),
            waited_ns: g.waited_ns,
            wait_minutes: g.wait_minutes(),
            parent_id: g.parent_id,
            created_by,
            start_function,
            locked_to_thread: g.locked_to_thread,
            system: g.system,
            thread: g.thread,
            stack_state,
            stack_error,
            torn: g.torn,
            frames: g
                .frames
                .iter()
                .map(|f| FrameLine {
                    function: f.function.clone(),
                    file: f.file.clone(),
                    line: f.line,
                    inlined: f.inlined,
                    pc: format!("{:#x}", f.pc),
                    args: f.args.clone(),
                })
                .collect(),
        }
    }
}
