//! Loading eBPF objects (one per probe family, each loaded on its own so
//! that a rejection disables that family alone), attaching their programs
//! to a Go binary's functions (uprobes) or to the cpu-clock perf event of
//! every CPU, and reading what they report: ring-buffer records and per-CPU
//! lost-event counters, polled together over every loaded object.
//!
//! The programs themselves are C in `ebpf/`, compiled by `build.rs`; this
//! module knows nothing of what any family reads.

pub mod abi;
mod multi;
pub mod rets;
mod ring;
mod system;

pub use multi::{KernelUprobes, kernel_uprobes};
pub use ring::{Ring, Waiter};
pub use system::prepare_system;

use std::num::NonZeroU32;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use aya::maps::{Array, MapData, PerCpuArray, RingBuf};
use aya::programs::perf_event::{PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent};
use aya::programs::uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeLink, UProbeScope};
use aya::programs::{Program, UProbe};
use aya::{Ebpf, EbpfLoader};

use abi::{GpConfig, GpHook};

/// The do-nothing program of `attach --baseline-empty`. aya needs objects
/// 8-byte aligned.
pub static BASELINE_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/baseline.bpf.o"));

#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    #[error("{0}")]
    Privileges(String),
    #[error("loading the eBPF object failed: {0}")]
    Load(#[source] aya::EbpfError),
    #[error("the kernel's verifier rejected eBPF program {program}: {reason}")]
    Rejected { program: String, reason: String },
    /// The kernel stops verifying a program when a signal is pending (its
    /// load returns EAGAIN): Ctrl-C while the probes load, not a rejection.
    #[error(
        "loading eBPF program {0} was interrupted by a signal (Ctrl-C while the probes were loading)"
    )]
    Interrupted(String),
    #[error("eBPF program {0} missing from the object")]
    MissingProgram(String),
    #[error("{0} hooks exceed the {max} the eBPF hooks map holds", max = abi::HOOKS_MAX)]
    TooManyHooks(usize),
    #[error("eBPF map {0} missing from the object")]
    MissingMap(&'static str),
    #[error("eBPF program {name}: {source}")]
    Program {
        name: String,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("eBPF map {name}: {source}")]
    Map {
        name: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("attaching a uprobe to {path} at file offset {offset:#x}: {source}")]
    Attach {
        path: PathBuf,
        offset: u64,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("attaching {program} to {points} points of {path}: {source}")]
    AttachMulti {
        path: PathBuf,
        program: String,
        points: usize,
        #[source]
        source: std::io::Error,
    },
    #[error("preparing the eBPF programs: {0}")]
    Relocate(String),
    #[error("polling the ring buffers: {0}")]
    Poll(#[source] std::io::Error),
    #[error("eBPF program {0} is neither a uprobe nor a perf_event program")]
    ProgramType(String),
    #[error("listing the online CPUs ({what}): {source}")]
    Cpus {
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "attaching eBPF program {program} to the cpu-clock perf event of CPU {cpu}: {source} (needs root or CAP_PERFMON+CAP_BPF)"
    )]
    PerfEvent {
        program: String,
        cpu: u32,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("ring buffer size {bytes}: must be a power of two and at least the page size ({page})")]
    RingSize { bytes: u32, page: u64 },
    #[error("reading the kernel's information on eBPF program {0}: {1}")]
    ProgInfo(String, #[source] std::io::Error),
}

/// The kernel's `bpf_prog_info` of the program `fd` (BPF_OBJ_GET_INFO_BY_FD).
fn prog_info(
    fd: std::os::fd::BorrowedFd<'_>,
) -> std::io::Result<aya_obj::generated::bpf_prog_info> {
    // SAFETY: bpf_prog_info and bpf_attr are plain integers, valid when zeroed.
    let mut info: aya_obj::generated::bpf_prog_info = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut attr: aya_obj::generated::bpf_attr = unsafe { std::mem::zeroed() };
    attr.info.bpf_fd = fd.as_raw_fd() as u32;
    attr.info.info_len = std::mem::size_of_val(&info) as u32;
    attr.info.info = std::ptr::addr_of_mut!(info) as u64;
    // SAFETY: attr is a valid bpf_attr for BPF_OBJ_GET_INFO_BY_FD, pointing
    // at a writable info buffer of info_len bytes.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            aya_obj::generated::bpf_cmd::BPF_OBJ_GET_INFO_BY_FD as libc::c_long,
            std::ptr::addr_of_mut!(attr),
            std::mem::size_of_val(&attr),
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(info)
}

fn page_size() -> u64 {
    // SAFETY: sysconf has no memory preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(n).unwrap_or(4096)
}

/// The program in [`BASELINE_OBJECT`].
pub const EMPTY_PROGRAM: &str = "empty_probe";

/// One loaded object: its maps and programs, and the uprobes attached.
pub struct Object {
    ebpf: Ebpf,
    /// The programs by name, loaded for uprobe_multi links (see
    /// [`multi`]); `None` where the kernel has none: aya's programs and
    /// perf-event uprobes, one per attach point.
    multi: Option<std::collections::HashMap<String, OwnedFd>>,
    links: Vec<Link>,
    /// Perf events the object's perf_event programs are attached to (aya
    /// keeps their links with the programs).
    perf_events: usize,
}

/// Attached uprobes: one perf event each, or many in one uprobe_multi link.
pub enum Link {
    Perf(UProbeLink),
    Multi { fd: OwnedFd, uprobes: usize },
}

impl Link {
    fn uprobes(&self) -> usize {
        match self {
            Link::Perf(_) => 1,
            Link::Multi { uprobes, .. } => *uprobes,
        }
    }
}

/// Loads objects one at a time, with the kernel's BTF read once for all
/// of them (aya's loader reads it when created).
pub struct Loader {
    inner: EbpfLoader<'static>,
}

impl Default for Loader {
    fn default() -> Self {
        Loader::new()
    }
}

impl Loader {
    pub fn new() -> Loader {
        Loader {
            inner: EbpfLoader::new(),
        }
    }

    /// Give every object's ring buffer (`events`) this many bytes instead of
    /// its family's default: a power of two, a multiple of the page size.
    pub fn ring_buffer_bytes(&mut self, bytes: u32) -> Result<(), BpfError> {
        let page = page_size();
        if !bytes.is_power_of_two() || u64::from(bytes) < page {
            return Err(BpfError::RingSize { bytes, page });
        }
        self.inner.map_max_entries("events", bytes);
        Ok(())
    }

    /// Load an object and every program in it. When the object has them,
    /// `config` goes into its one-entry `config` map and each hook's
    /// register table into its `hooks` map (index = the attach cookie of
    /// that hook's uprobes). A program the verifier refuses is
    /// [`BpfError::Rejected`], with the verifier's reason.
    pub fn load(
        &mut self,
        object: &[u8],
        config: &GpConfig,
        hooks: &[GpHook],
    ) -> Result<Object, BpfError> {
        load(&mut self.inner, object, config, hooks)
    }
}

fn load(
    loader: &mut EbpfLoader<'_>,
    object: &[u8],
    config: &GpConfig,
    hooks: &[GpHook],
) -> Result<Object, BpfError> {
    let mut ebpf = loader.load(object).map_err(|e| match &e {
        aya::EbpfError::MapError(aya::maps::MapError::CreateError { io_error, .. })
        | aya::EbpfError::BtfError(aya::BtfError::FileError { error: io_error, .. })
            if io_error.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            BpfError::Privileges(format!("creating eBPF maps was refused ({io_error}); BPF may be disabled (kernel.unprivileged_bpf_disabled, lockdown) or privileges are missing"))
        }
        _ => BpfError::Load(e),
    })?;
    if let Some(map) = ebpf.map_mut("config") {
        let mut array: Array<&mut MapData, GpConfig> =
            Array::try_from(map).map_err(|source| BpfError::Map {
                name: "config",
                source,
            })?;
        array.set(0, config, 0).map_err(|source| BpfError::Map {
            name: "config",
            source,
        })?;
    }
    if hooks.len() > abi::HOOKS_MAX {
        return Err(BpfError::TooManyHooks(hooks.len()));
    }
    if let Some(map) = ebpf.map_mut("hooks") {
        let mut array: Array<&mut MapData, GpHook> =
            Array::try_from(map).map_err(|source| BpfError::Map {
                name: "hooks",
                source,
            })?;
        for (i, h) in hooks.iter().enumerate() {
            array.set(i as u32, h, 0).map_err(|source| BpfError::Map {
                name: "hooks",
                source,
            })?;
        }
    }
    // A perf_event program (cpu_sample) is loaded and attached through aya.
    let perf = ebpf
        .programs()
        .any(|(_, p)| matches!(p, Program::PerfEvent(_)));
    if multi::supported() && !perf {
        let programs = multi::load_programs(object, &ebpf)?;
        return Ok(Object {
            ebpf,
            multi: Some(programs),
            links: Vec::new(),
            perf_events: 0,
        });
    }
    let names: Vec<String> = ebpf.programs().map(|(n, _)| n.to_owned()).collect();
    for name in names {
        let loaded = match ebpf.program_mut(&name) {
            Some(Program::UProbe(p)) => retry_interrupted(|| p.load(), load_errno),
            Some(Program::PerfEvent(p)) => retry_interrupted(|| p.load(), load_errno),
            Some(_) => return Err(BpfError::ProgramType(name)),
            None => return Err(BpfError::MissingProgram(name)),
        };
        loaded.map_err(|source| match source {
            aya::programs::ProgramError::LoadError { io_error, .. } if interrupted(&io_error) => {
                BpfError::Interrupted(name.clone())
            }
            aya::programs::ProgramError::LoadError {
                io_error,
                verifier_log,
            } => BpfError::Rejected {
                program: name.clone(),
                reason: verifier_reason(&verifier_log.to_string(), &io_error),
            },
            source => BpfError::Program {
                name: name.clone(),
                source,
            },
        })?;
    }
    Ok(Object {
        ebpf,
        multi: None,
        links: Vec::new(),
        perf_events: 0,
    })
}

/// How many times a program's load is tried when a signal interrupts the
/// verifier: the handler has run by the next try (a Ctrl-C is seen by the
/// command's stop flag once the probes are in), so a second signal in a
/// row is the user's.
const LOAD_TRIES: u32 = 3;

/// The kernel's verifier gives up with EAGAIN when a signal is pending.
fn interrupted(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EAGAIN)
}

/// `load()`, tried again (LOAD_TRIES in all) while its error, whose errno
/// `errno` gives, says a signal interrupted the verifier.
fn retry_interrupted<T, E>(
    mut load: impl FnMut() -> Result<T, E>,
    errno: impl Fn(&E) -> Option<&std::io::Error>,
) -> Result<T, E> {
    let mut result = load();
    for _ in 1..LOAD_TRIES {
        match &result {
            Err(e) if errno(e).is_some_and(interrupted) => result = load(),
            _ => break,
        }
    }
    result
}

/// The errno of a failed program load.
fn load_errno(e: &aya::programs::ProgramError) -> Option<&std::io::Error> {
    match e {
        aya::programs::ProgramError::LoadError { io_error, .. } => Some(io_error),
        _ => None,
    }
}

/// The one line of a verifier log that says why: the last one before the
/// statistics the kernel appends ("processed N insns ..."), with the errno.
fn verifier_reason(log: &str, io_error: &std::io::Error) -> String {
    let stats = |l: &str| {
        l.starts_with("processed ")
            || l.starts_with("verification time")
            || l.starts_with("stack depth")
            || l.starts_with("-- END PROG LOAD LOG --")
    };
    let why = log
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .rev()
        .find(|l| !stats(l));
    match why {
        Some(w) => format!("{w} ({io_error})"),
        None => io_error.to_string(),
    }
}

/// One function to probe: where its entry and RETs are in the file, and
/// which programs run there.
#[derive(Debug, Clone)]
pub struct FunctionProbe {
    /// Program at the entry, if the hook fires there.
    pub entry: Option<String>,
    /// Program at every RET, if it fires there.
    pub ret: Option<String>,
    /// The hook's index in the object's hooks map, passed as the attach cookie.
    pub cookie: u64,
    /// File offset of the function's first instruction.
    pub file_offset: u64,
    pub points: rets::ProbePoints,
}

impl Object {
    /// Attach the entry program and one return program per RET.
    /// `pid` limits the probes to one process; `None` catches every process
    /// running `binary`, including ones started later (uprobes live on the
    /// file's inode).
    pub fn attach(
        &mut self,
        binary: &Path,
        pid: Option<u32>,
        f: &FunctionProbe,
    ) -> Result<(), BpfError> {
        let scope = match pid.and_then(NonZeroU32::new) {
            Some(p) => UProbeScope::OneProcess(p),
            None => UProbeScope::AllProcesses,
        };
        let mut links = Vec::new();
        let mut one = |name: &str, offset: u64| -> Result<(), BpfError> {
            let prog: &mut UProbe = self
                .ebpf
                .program_mut(name)
                .ok_or_else(|| BpfError::MissingProgram(name.to_owned()))?
                .try_into()
                .map_err(|source| BpfError::Program {
                    name: name.to_owned(),
                    source,
                })?;
            let point = UProbeAttachPoint {
                location: UProbeAttachLocation::AbsoluteOffset(offset),
                cookie: Some(f.cookie),
            };
            let id = prog
                .attach(point, binary, scope)
                .map_err(|source| BpfError::Attach {
                    path: binary.to_owned(),
                    offset,
                    source,
                })?;
            // Owned here, not by the program, so that they can be detached
            // all at once (see `detach`).
            links.push(Link::Perf(prog.take_link(id).map_err(|source| {
                BpfError::Program {
                    name: name.to_owned(),
                    source,
                }
            })?));
            Ok(())
        };
        if let Some(entry) = &f.entry {
            one(entry, f.file_offset + f.points.entry)?;
        }
        if let Some(ret) = &f.ret {
            for r in &f.points.rets {
                one(ret, f.file_offset + r)?;
            }
        }
        self.links.extend(links);
        Ok(())
    }

    /// Attach every function's programs: with uprobe_multi, one link per
    /// program for all its points; else one perf-event uprobe per point.
    pub fn attach_all<'f>(
        &mut self,
        binary: &Path,
        pid: Option<u32>,
        functions: &'f [FunctionProbe],
    ) -> Result<(), BpfError> {
        let Some(programs) = &self.multi else {
            for f in functions {
                self.attach(binary, pid, f)?;
            }
            return Ok(());
        };
        // Program -> (file offsets, cookies), in a stable order.
        let mut points: Vec<(&str, Vec<u64>, Vec<u64>)> = Vec::new();
        let mut add = |prog: &'f str, offset: u64, cookie: u64| match points
            .iter_mut()
            .find(|(p, _, _)| *p == prog)
        {
            Some((_, o, c)) => {
                o.push(offset);
                c.push(cookie);
            }
            None => points.push((prog, vec![offset], vec![cookie])),
        };
        for f in functions {
            if let Some(entry) = &f.entry {
                add(entry, f.file_offset + f.points.entry, f.cookie);
            }
            if let Some(ret) = &f.ret {
                for r in &f.points.rets {
                    add(ret, f.file_offset + r, f.cookie);
                }
            }
        }
        let path = multi::c_path(binary)?;
        let mut links = Vec::new();
        for (prog, offsets, cookies) in &points {
            let fd = programs
                .get(*prog)
                .ok_or_else(|| BpfError::MissingProgram((*prog).to_owned()))?;
            let link = multi::link(fd.as_fd(), &path, offsets, cookies, pid).map_err(|e| {
                BpfError::AttachMulti {
                    path: binary.to_owned(),
                    program: (*prog).to_owned(),
                    points: offsets.len(),
                    source: e,
                }
            })?;
            links.push(Link::Multi {
                fd: link,
                uprobes: offsets.len(),
            });
        }
        self.links.extend(links);
        Ok(())
    }

    /// Attach the object's perf_event programs to the software cpu-clock
    /// event of every online CPU, sampling each CPU every `period_ns` of
    /// CPU time (all processes: the programs filter them). Returns how
    /// many perf events were opened.
    pub fn attach_cpu_clock(&mut self, period_ns: u64) -> Result<usize, BpfError> {
        let cpus =
            aya::util::online_cpus().map_err(|(what, source)| BpfError::Cpus { what, source })?;
        let mut opened = 0;
        for (name, prog) in self.ebpf.programs_mut() {
            let Program::PerfEvent(prog) = prog else {
                continue;
            };
            for &cpu in &cpus {
                prog.attach(
                    PerfEventConfig::Software(SoftwareEvent::CpuClock),
                    PerfEventScope::AllProcessesOneCpu { cpu },
                    SamplePolicy::Period(period_ns.max(1)),
                    false,
                )
                .map_err(|source| BpfError::PerfEvent {
                    program: name.to_owned(),
                    cpu,
                    source,
                })?;
                opened += 1;
            }
        }
        if opened == 0 {
            return Err(BpfError::MissingProgram("a perf_event program".into()));
        }
        self.perf_events += opened;
        Ok(opened)
    }

    /// Make the `u32` keys of hash map `name` exactly `keys` (a program's
    /// set of process ids to watch).
    pub fn set_keys(&mut self, name: &'static str, keys: &[u32]) -> Result<(), BpfError> {
        let map = self.ebpf.map_mut(name).ok_or(BpfError::MissingMap(name))?;
        let mut hash: aya::maps::HashMap<&mut MapData, u32, u32> =
            aya::maps::HashMap::try_from(map).map_err(|source| BpfError::Map { name, source })?;
        let old: Vec<u32> = hash.keys().filter_map(Result::ok).collect();
        for k in old.iter().filter(|k| !keys.contains(k)) {
            // Already gone is fine.
            let _ = hash.remove(k);
        }
        for k in keys.iter().filter(|k| !old.contains(k)) {
            hash.insert(k, 1, 0)
                .map_err(|source| BpfError::Map { name, source })?;
        }
        Ok(())
    }

    /// How many uprobes (and perf events) are attached.
    pub fn links(&self) -> usize {
        self.links.iter().map(Link::uprobes).sum::<usize>() + self.perf_events
    }

    /// How many times the kernel skipped one of the object's programs
    /// (`bpf_prog_info.recursion_misses`, summed over its programs).
    pub fn program_misses(&self) -> Result<u64, BpfError> {
        let mut total = 0;
        if let Some(programs) = &self.multi {
            for (name, fd) in programs {
                total += prog_info(fd.as_fd())
                    .map_err(|e| BpfError::ProgInfo(name.clone(), e))?
                    .recursion_misses;
            }
            return Ok(total);
        }
        for (name, prog) in self.ebpf.programs() {
            let fd = prog.fd().map_err(|source| BpfError::Program {
                name: name.to_owned(),
                source,
            })?;
            total += prog_info(fd.as_fd())
                .map_err(|e| BpfError::ProgInfo(name.to_owned(), e))?
                .recursion_misses;
        }
        Ok(total)
    }

    /// Take the object's uprobes out, to detach them with [`detach`].
    pub fn take_links(&mut self) -> Vec<Link> {
        std::mem::take(&mut self.links)
    }

    /// The object's ring buffer (`events`) and lost counters (`lost`), if it
    /// has them. Call once.
    pub fn take_ring(&mut self) -> Result<Option<Ring>, BpfError> {
        let (Some(events), Some(lost)) = (self.ebpf.take_map("events"), self.ebpf.take_map("lost"))
        else {
            return Ok(None);
        };
        Ok(Some(Ring {
            ring: RingBuf::try_from(events).map_err(|source| BpfError::Map {
                name: "events",
                source,
            })?,
            lost: PerCpuArray::try_from(lost).map_err(|source| BpfError::Map {
                name: "lost",
                source,
            })?,
        }))
    }

    /// Every value in the hash map `name` (entries that vanish while
    /// iterating are skipped).
    pub fn hash_values<K: aya::Pod, V: aya::Pod>(
        &self,
        name: &'static str,
    ) -> Result<Vec<V>, BpfError> {
        let map = self.ebpf.map(name).ok_or(BpfError::MissingMap(name))?;
        let hash: aya::maps::HashMap<&MapData, K, V> =
            aya::maps::HashMap::try_from(map).map_err(|source| BpfError::Map { name, source })?;
        Ok(hash.iter().filter_map(Result::ok).map(|(_, v)| v).collect())
    }
}

/// Detach uprobes. A uprobe_multi link goes at once. Perf-event uprobes
/// are removed by the kernel one at a time under a global mutex, waiting
/// for RCU grace periods each (about 100 ms apiece on this VM); dropped
/// from several threads, their BPF links at least go in parallel (about
/// 20% faster measured).
pub fn detach(links: Vec<Link>) {
    const THREADS: usize = 8;
    if links.len() <= 1 {
        drop(links);
        return;
    }
    let per = links.len().div_ceil(THREADS);
    let mut links = links;
    std::thread::scope(|s| {
        while !links.is_empty() {
            let chunk: Vec<Link> = links.drain(..per.min(links.len())).collect();
            s.spawn(move || drop(chunk));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verifier_reason_is_the_line_before_the_statistics() {
        let log = "0: R1=ctx() R10=fp0\n; *n += 1;\n3: (79) r1 = *(u64 *)(r0 +0)\nR0 invalid mem access 'map_value_or_null'\nprocessed 4 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0\n\n";
        let e = std::io::Error::from_raw_os_error(libc::EACCES);
        let r = verifier_reason(log, &e);
        assert!(
            r.starts_with("R0 invalid mem access 'map_value_or_null' ("),
            "{r}"
        );
        assert_eq!(verifier_reason("", &e), e.to_string());
    }
}
