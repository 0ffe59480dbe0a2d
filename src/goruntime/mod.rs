//! A running Go program's own runtime state, read from outside, read-only:
//! its allocation profile (what `runtime.MemProfile` reports) and every
//! goroutine with its stack (what the runtime's goroutine dump prints).
//!
//! [`Runtime`] holds what is static for one binary (symbolizer, load bias,
//! struct layouts, where the globals are); [`Runtime::heap`] and
//! [`Runtime::goroutines`] read a live process through a
//! [`RemoteMemory`]. The process is not stopped here: [`freeze`] does that
//! for callers that ask, and the readers retry reads that tear.
//!
//! Modules: [`layout`] (struct offsets through the offsets resolver),
//! [`globals`] (finding `allgs`, `mbuckets`, ... by symbol or machine code),
//! [`heap`] (buckets), [`goroutines`] (`g` records), [`snapshot`] (one
//! validated reading of either), [`unwind`] (stack walks), [`stacks`] (logical frames), [`dump`] (the `debug=2` text),
//! [`profile`] (pprof), [`records`] (NDJSON), [`freeze`] (stopping a process),
//! [`session`] (opening a process, one timed read).

pub mod dump;
pub mod freeze;
#[doc(hidden)]
pub mod fuzz;
pub mod globals;
pub mod goroutines;
pub mod heap;
pub mod layout;
pub mod profile;
pub mod records;
pub mod session;
pub mod snapshot;
pub mod stacks;
pub mod unwind;

use std::cell::OnceCell;

use crate::gobin::GoBinary;
use crate::gobin::symbolize::{SymbolizeError, Symbolizer};
use crate::gobin::types::GoRelease;
use crate::offsets::Resolver;
use crate::offsets::table::Table;
use crate::remote::{MemError, RemoteMemory};
use globals::{Candidates, Found, Global, GlobalError};
use layout::{BucketLayout, GLayout, LayoutError};

/// Why runtime state could not be read. Each message is one line naming what
/// is missing or wrong.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(transparent)]
    Symbolize(#[from] SymbolizeError),
    #[error(transparent)]
    Layout(#[from] LayoutError),
    #[error(transparent)]
    Global(#[from] GlobalError),
    #[error(transparent)]
    Mem(#[from] MemError),
    #[error(transparent)]
    Heap(#[from] heap::HeapError),
    #[error(transparent)]
    Goroutines(#[from] goroutines::GoroutineError),
    #[error("{global}: {why}")]
    Invalid { global: &'static str, why: String },
    #[error("{0}")]
    Unsupported(String),
}

/// A global, located and validated in the process.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Located {
    pub global: Global,
    /// Runtime address.
    pub addr: u64,
    pub found: Found,
}

/// What is static about one binary for reading its runtime state.
pub struct Runtime<'b> {
    pub bin: &'b GoBinary,
    pub sym: Symbolizer<'b>,
    /// Runtime address minus link-time address (non-zero for PIE).
    pub bias: u64,
    pub release: Option<GoRelease>,
    resolver: Resolver<'b>,
    g_layout: OnceCell<Result<GLayout, LayoutError>>,
    bucket_layout: OnceCell<Result<BucketLayout, LayoutError>>,
}

impl<'b> Runtime<'b> {
    /// `bias`: the process's load bias (0 for non-PIE binaries).
    pub fn new(
        bin: &'b GoBinary,
        table: &'b Table,
        bias: u64,
    ) -> Result<Runtime<'b>, RuntimeError> {
        if !matches!(bin.elf().arch, crate::gobin::Arch::Amd64) {
            return Err(RuntimeError::Unsupported(format!(
                "{}: reading the runtime state of {} processes is not supported (amd64 only)",
                bin.path().display(),
                String::from(bin.elf().arch.clone())
            )));
        }
        Ok(Runtime {
            bin,
            sym: Symbolizer::new(bin)?,
            bias,
            release: GoRelease::parse(&bin.build_info().go_version),
            resolver: Resolver::for_binary(bin, table, None),
            g_layout: OnceCell::new(),
            bucket_layout: OnceCell::new(),
        })
    }

    pub fn g_layout(&self) -> Result<&GLayout, RuntimeError> {
        self.g_layout
            .get_or_init(|| GLayout::resolve(&self.resolver))
            .as_ref()
            .map_err(|e| RuntimeError::Layout(e.clone()))
    }

    pub fn bucket_layout(&self) -> Result<&BucketLayout, RuntimeError> {
        self.bucket_layout
            .get_or_init(|| BucketLayout::resolve(&self.resolver))
            .as_ref()
            .map_err(|e| RuntimeError::Layout(e.clone()))
    }

    /// A note when some of `layout`'s fields came from the offsets table
    /// for another patch release of the binary's minor (the table's layouts
    /// were proven for the releases it lists, not for this one): how many,
    /// the table key and the releases it was verified on.
    pub fn inexact_table_note(&self, layout: &layout::Sources) -> Option<String> {
        let inexact: Vec<_> = layout
            .iter()
            .map(|(f, _)| self.resolver.resolve(f))
            .filter(|r| r.is_inexact_table())
            .collect();
        let t = inexact.first()?.table.as_ref()?;
        Some(format!(
            "{} runtime field(s) from the {} offsets table, verified on {}, not on {} itself",
            inexact.len(),
            t.key,
            t.verified.join(" "),
            self.resolver.key().go_version
        ))
    }

    /// Whether a runtime address is inside the binary's Go code.
    pub fn is_code(&self, pc: u64) -> bool {
        pc.checked_sub(self.bias)
            .is_some_and(|l| self.sym.func(l).is_some())
    }

    /// Locate `global`, taking the first candidate `valid` accepts (it reads
    /// the candidate's memory); more than one accepted is an error.
    pub fn locate(
        &self,
        global: Global,
        valid: &dyn Fn(u64) -> Result<(), String>,
    ) -> Result<Located, RuntimeError> {
        let Candidates { addrs, found, .. } = globals::locate(self.bin, global)?;
        let mut ok = Vec::new();
        let mut why = Vec::new();
        for a in addrs {
            let addr = a.wrapping_add(self.bias);
            match valid(addr) {
                Ok(()) => ok.push(addr),
                Err(e) => why.push(format!("{addr:#x}: {e}")),
            }
        }
        let how = match &found {
            Found::Symbol => "its symbol".to_string(),
            Found::Code(f) => format!("the code of {f}"),
        };
        match ok.as_slice() {
            [addr] => Ok(Located {
                global,
                addr: *addr,
                found,
            }),
            [] => Err(RuntimeError::Invalid {
                global: global.symbol(),
                why: format!(
                    "found through {how}, but the process's memory does not confirm it: {}",
                    why.join("; ")
                ),
            }),
            many => Err(RuntimeError::Invalid {
                global: global.symbol(),
                why: format!(
                    "{} addresses found through {how} all look valid: cannot tell which",
                    many.len()
                ),
            }),
        }
    }

    /// The link-time address of the function `name`, if the binary has it.
    pub fn function_entry(&self, name: &str) -> Option<u64> {
        self.bin.function(name).ok()?.map(|f| f.address)
    }

    /// The FuncID of the function `name` (this binary's numbering).
    pub fn func_id(&self, name: &str) -> Option<u8> {
        Some(self.sym.func(self.function_entry(name)?)?.func_id())
    }
}

/// Read a `[N]string` global whose length `N` the code of `function`
/// checks, validating it with `check`.
fn string_array(
    rt: &Runtime<'_>,
    mem: &dyn RemoteMemory,
    global: Global,
    check: &dyn Fn(&[String]) -> Result<(), String>,
) -> Result<Vec<String>, RuntimeError> {
    let n = globals::array_bound_before(rt.bin, global.function()).ok_or_else(|| {
        RuntimeError::Invalid {
            global: global.symbol(),
            why: format!("no length check in the code of {}", global.function()),
        }
    })?;
    let read = |addr: u64| {
        goroutines::read_strings(mem, global.symbol(), addr, n).map_err(|e| e.to_string())
    };
    let loc = rt.locate(global, &|addr| check(&read(addr)?))?;
    read(loc.addr).map_err(|why| RuntimeError::Invalid {
        global: global.symbol(),
        why,
    })
}

/// The runtime's status and wait-reason names.
pub fn names(rt: &Runtime<'_>, mem: &dyn RemoteMemory) -> Result<goroutines::Names, RuntimeError> {
    let status = string_array(rt, mem, Global::GStatusStrings, &|s| {
        let want = ["idle", "runnable", "running", "syscall", "waiting"];
        if s.len() > 6 && s[..5] == want && s[6] == "dead" {
            Ok(())
        } else {
            Err(format!(
                "does not start idle, runnable, running, syscall, waiting ({:?})",
                &s[..s.len().min(5)]
            ))
        }
    })?;
    let wait = string_array(rt, mem, Global::WaitReasonStrings, &|s| {
        if s.first().is_some_and(String::is_empty) && s.iter().any(|w| w == "chan receive") {
            Ok(())
        } else {
            Err("not the wait reasons (no \"chan receive\")".into())
        }
    })?;
    Ok(goroutines::Names { status, wait })
}

/// `CLOCK_MONOTONIC` now, in nanoseconds: the clock of the runtime's `nanotime`.
pub fn monotonic_now() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the valid, exclusively
    // borrowed `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}
