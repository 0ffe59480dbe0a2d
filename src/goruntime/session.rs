//! Opening a running Go process for reading: its memory (proving access
//! first, so a process goprobe may not read fails with the remedy), its
//! executable (or a binary the user names, checked to be the same program),
//! its load bias, and the offsets table; then one timed read, stopped or not.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::freeze::{FreezeError, Frozen};
use super::goroutines::Regs;
use super::{Runtime, RuntimeError};
use crate::gobin::{GoBinError, GoBinary, types};
use crate::offsets::table::{Table, TableError};
use crate::remote::{MemError, ProcessMemory};

/// Why a process could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("no process with pid {0}")]
    NoProcess(u32),
    #[error(transparent)]
    Mem(#[from] MemError),
    #[error(transparent)]
    Binary(#[from] GoBinError),
    #[error(
        "{path} is not the program process {pid} runs (their function tables differ); give its exact build"
    )]
    Mismatch { path: String, pid: u32 },
    #[error("process {pid}: {why}")]
    Bias { pid: u32, why: String },
    #[error(transparent)]
    Table(#[from] TableError),
}

/// A process opened for reading.
pub struct Session {
    pub pid: u32,
    /// The binary symbols and offsets come from.
    pub bin: GoBinary,
    pub mem: ProcessMemory,
    pub table: Table,
    /// Load bias of the executable (0 unless PIE).
    pub bias: u64,
}

impl Session {
    /// Open `pid`; `binary` names a build of its executable with more in it
    /// (an unstripped twin with DWARF and symbols), else `/proc/PID/exe` is read.
    pub fn open(pid: u32, binary: Option<&Path>) -> Result<Session, SessionError> {
        if pid == 0 || !Path::new(&format!("/proc/{pid}")).exists() {
            return Err(SessionError::NoProcess(pid));
        }
        // Memory first: a process goprobe may not read fails here with the
        // remedy, before anything else about it is looked at.
        let mem = ProcessMemory::open(pid).map_err(|e| match e {
            MemError::Gone(p) => SessionError::NoProcess(p),
            e => SessionError::Mem(e),
        })?;
        let exe = GoBinary::open_pid(pid).map_err(|e| match e {
            GoBinError::NoSuchProcess(p) => SessionError::NoProcess(p),
            e => SessionError::Binary(e),
        })?;
        let bin = match binary {
            None => exe,
            Some(path) => {
                let given = GoBinary::open(path)?;
                let same = match (given.function_table(), exe.function_table()) {
                    (Ok(a), Ok(b)) => {
                        a.len() == b.len()
                            && a.iter()
                                .zip(b)
                                .all(|(x, y)| x.name == y.name && x.address == y.address)
                    }
                    _ => false,
                };
                if !same {
                    return Err(SessionError::Mismatch {
                        path: path.display().to_string(),
                        pid,
                    });
                }
                given
            }
        };
        let bias = types::load_bias(pid, &bin).map_err(|e| SessionError::Bias {
            pid,
            why: e.to_string(),
        })?;
        Ok(Session {
            pid,
            bin,
            mem,
            table: Table::builtin()?,
            bias,
        })
    }

    pub fn runtime(&self) -> Result<Runtime<'_>, RuntimeError> {
        Runtime::new(&self.bin, &self.table, self.bias)
    }

    /// The path of the process's executable as its mappings name it.
    pub fn exe_path(&self) -> String {
        std::fs::read_link(format!("/proc/{}/exe", self.pid))
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    }
}

/// A read and how it went.
#[derive(Debug)]
pub struct Timed<T> {
    pub value: T,
    /// Wall clock when the read started, ns since the epoch.
    pub time_unix_nano: i64,
    pub read: Duration,
    /// CPU time goprobe spent on the read (user and system): the cost of a
    /// read, whatever else the machine is doing.
    pub cpu: Duration,
    /// How long the process was stopped (`freeze`).
    pub stopped: Option<Duration>,
}

/// CPU time of this process so far.
fn process_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the valid, exclusively
    // borrowed `ts`.
    unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Why a timed read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Freeze(#[from] FreezeError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

/// Run `read`, with every thread of `pid` stopped around it when `freeze`
/// (it gets the stopped threads' registers), and time it. The process is
/// resumed before this returns, whatever `read` did.
pub fn timed<T>(
    pid: u32,
    freeze: bool,
    hold: Duration,
    read: impl FnOnce(&HashMap<u32, Regs>) -> Result<T, RuntimeError>,
) -> Result<Timed<T>, ReadError> {
    let time_unix_nano = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    let start = Instant::now();
    let cpu_start = process_cpu();
    let frozen = if freeze {
        Some(Frozen::freeze(pid)?)
    } else {
        None
    };
    let empty = HashMap::new();
    let value = read(frozen.as_ref().map_or(&empty, Frozen::regs));
    if frozen.is_some() && !hold.is_zero() {
        std::thread::sleep(hold);
    }
    let stopped = frozen.map(Frozen::thaw);
    let read = start.elapsed();
    let cpu = process_cpu().saturating_sub(cpu_start);
    Ok(Timed {
        value: value?,
        time_unix_nano,
        read,
        cpu,
        stopped,
    })
}
