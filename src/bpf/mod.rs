//! Loading eBPF objects (one per probe family, each loaded on its own so
//! that a rejection disables that family alone), attaching their programs
//! to a Go binary's functions (uprobes) or to the cpu-clock perf event of
//! every CPU, and reading what they report: ring-buffer records and per-CPU
//! lost-event counters, polled together over every loaded object.
//!
//! The programs themselves are C in `ebpf/`, compiled by `build.rs`; this
//! module knows nothing of what any family reads.

pub mod abi;
pub mod rets;

use std::num::NonZeroU32;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

use aya::maps::{Array, MapData, PerCpuArray, RingBuf};
use aya::programs::perf_event::{PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent};
use aya::programs::uprobe::{UProbeAttachLocation, UProbeAttachPoint, UProbeScope};
use aya::programs::{Program, UProbe};
use aya::{Ebpf, EbpfLoader};

use abi::{GpConfig, GpHook, LOST_MAX};

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
}

/// The program in [`BASELINE_OBJECT`].
pub const EMPTY_PROGRAM: &str = "empty_probe";

/// Checks what loading eBPF needs and says plainly what is missing, then
/// raises RLIMIT_MEMLOCK (needed by kernels before 5.11, harmless after)
/// and mounts tracefs when it is not mounted. Returns warnings to print.
pub fn prepare_system() -> Result<Vec<String>, BpfError> {
    let mut warnings = Vec::new();
    // SAFETY: geteuid has no preconditions and cannot fail.
    let euid = unsafe { libc::geteuid() };
    if euid != 0 && !has_bpf_caps() {
        return Err(BpfError::Privileges(
            "attaching eBPF uprobes needs root or CAP_BPF+CAP_PERFMON (run with sudo)".into(),
        ));
    }
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        warnings.push("kernel BTF (/sys/kernel/btf/vmlinux) is missing; continuing (goprobe's programs need no CO-RE)".into());
    }
    raise_memlock(&mut warnings);
    if !Path::new("/sys/bus/event_source/devices/uprobe/type").exists() && !tracefs_mounted() {
        mount_tracefs(&mut warnings);
    }
    Ok(warnings)
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK; later ones to
/// the memory cgroup. Raise the soft limit to the hard one (or to infinity
/// where allowed); warn only when the limit stays low on an old kernel.
fn raise_memlock(warnings: &mut Vec<String>) {
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into a valid rlimit struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut cur) } != 0 {
        return;
    }
    let want = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads a valid, initialized rlimit struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &want) } == 0 {
        return;
    }
    let soft = libc::rlimit {
        rlim_cur: cur.rlim_max,
        rlim_max: cur.rlim_max,
    };
    // SAFETY: as above.
    let raised = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &soft) } == 0;
    let limit = if raised { cur.rlim_max } else { cur.rlim_cur };
    if limit != libc::RLIM_INFINITY && limit < (64 << 20) && kernel_before_5_11() {
        warnings.push(format!("RLIMIT_MEMLOCK is {limit} bytes and cannot be raised; loading may fail on this kernel (before 5.11)"));
    }
}

fn kernel_before_5_11() -> bool {
    let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") else {
        return false;
    };
    let mut parts = release
        .trim()
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) < (5, 11)
}

fn has_bpf_caps() -> bool {
    // CAP_PERFMON = 38, CAP_BPF = 39, CAP_SYS_ADMIN = 21, in /proc/self/status CapEff.
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return false;
    };
    let Some(eff) = status.lines().find_map(|l| l.strip_prefix("CapEff:")) else {
        return false;
    };
    let Ok(mask) = u64::from_str_radix(eff.trim(), 16) else {
        return false;
    };
    (mask & (1 << 38) != 0 && mask & (1 << 39) != 0) || mask & (1 << 21) != 0
}

fn tracefs_mounted() -> bool {
    std::fs::read_to_string("/proc/mounts")
        .is_ok_and(|m| m.lines().any(|l| l.split(' ').nth(2) == Some("tracefs")))
}

fn mount_tracefs(warnings: &mut Vec<String>) {
    let (src, target, fstype) = (c"tracefs", c"/sys/kernel/tracing", c"tracefs");
    // SAFETY: all pointers are valid NUL-terminated strings; data may be null.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        warnings.push(format!(
            "could not mount tracefs on /sys/kernel/tracing: {}",
            std::io::Error::last_os_error()
        ));
    }
}

/// One loaded object: its maps and programs, and the uprobes attached.
pub struct Object {
    ebpf: Ebpf,
    links: usize,
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
    let names: Vec<String> = ebpf.programs().map(|(n, _)| n.to_owned()).collect();
    for name in names {
        let loaded = match ebpf.program_mut(&name) {
            Some(Program::UProbe(p)) => p.load(),
            Some(Program::PerfEvent(p)) => p.load(),
            Some(_) => return Err(BpfError::ProgramType(name)),
            None => return Err(BpfError::MissingProgram(name)),
        };
        loaded.map_err(|source| match source {
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
    Ok(Object { ebpf, links: 0 })
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
        let mut links = 0;
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
            prog.attach(point, binary, scope)
                .map_err(|source| BpfError::Attach {
                    path: binary.to_owned(),
                    offset,
                    source,
                })?;
            links += 1;
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
        self.links += links;
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
        self.links += opened;
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
        self.links
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

/// One object's ring buffer and lost counters.
pub struct Ring {
    ring: RingBuf<MapData>,
    lost: PerCpuArray<MapData, u64>,
}

impl Ring {
    /// Hand every record waiting in the ring buffer to `f`, without waiting.
    pub fn drain(&mut self, f: &mut dyn FnMut(&[u8])) -> usize {
        let mut n = 0;
        while let Some(item) = self.ring.next() {
            f(&item);
            n += 1;
        }
        n
    }

    /// Totals of the lost counters over all CPUs, indexed like `abi::LOST_NAMES`.
    pub fn lost(&self) -> Result<[u64; LOST_MAX as usize], BpfError> {
        let mut out = [0u64; LOST_MAX as usize];
        for (i, slot) in out.iter_mut().enumerate() {
            let values = self
                .lost
                .get(&(i as u32), 0)
                .map_err(|source| BpfError::Map {
                    name: "lost",
                    source,
                })?;
            *slot = values.iter().sum();
        }
        Ok(out)
    }
}

/// Waits on several ring buffers at once (epoll over their fds).
pub struct Waiter {
    epoll: OwnedFd,
}

impl Waiter {
    pub fn new(rings: &[&Ring]) -> Result<Waiter, BpfError> {
        // SAFETY: epoll_create1 has no memory preconditions.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(BpfError::Poll(std::io::Error::last_os_error()));
        }
        // SAFETY: fd is a new, valid descriptor that nothing else owns.
        let epoll = unsafe { OwnedFd::from_raw_fd(fd) };
        for (i, r) in rings.iter().enumerate() {
            let mut ev = libc::epoll_event {
                events: libc::EPOLLIN as u32,
                u64: i as u64,
            };
            // SAFETY: both fds are open and ev is a valid epoll_event.
            let rc = unsafe {
                libc::epoll_ctl(
                    epoll.as_raw_fd(),
                    libc::EPOLL_CTL_ADD,
                    r.ring.as_fd().as_raw_fd(),
                    &mut ev,
                )
            };
            if rc != 0 {
                return Err(BpfError::Poll(std::io::Error::last_os_error()));
            }
        }
        Ok(Waiter { epoll })
    }

    /// Wait up to `timeout` for the kernel's wake-up on any ring buffer.
    /// Wake-ups are batched in the kernel, so the timeout bounds how stale
    /// a quiet stream can be.
    pub fn wait(&self, timeout: Duration) -> Result<(), BpfError> {
        let mut evs = [libc::epoll_event { events: 0, u64: 0 }; 8];
        let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
        // SAFETY: evs is a valid buffer of evs.len() epoll_events.
        let rc = unsafe {
            libc::epoll_wait(
                self.epoll.as_raw_fd(),
                evs.as_mut_ptr(),
                evs.len() as i32,
                ms,
            )
        };
        if rc < 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(BpfError::Poll(err));
            }
        }
        Ok(())
    }
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
