//! Stopping a process for the length of a read, for an exact picture:
//! every thread `PTRACE_SEIZE`d and `PTRACE_INTERRUPT`ed (no signal reaches
//! the program, unlike `SIGSTOP`), its registers taken, and every thread
//! detached again, which resumes it. [`Frozen`] detaches on drop too, so an
//! error or an early return never leaves the target stopped; if goprobe
//! itself dies, the kernel detaches the threads (and they run on).
//!
//! Signals that arrive for the target while it is stopped are handed back
//! to it on detach.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::goroutines::Regs;

/// Why the process could not be stopped.
#[derive(Debug, thiserror::Error)]
pub enum FreezeError {
    #[error("process {0} has exited")]
    Gone(u32),
    #[error(
        "not allowed to stop process {pid} with ptrace ({why}): run as root or with CAP_SYS_PTRACE, \
         or read it without --freeze"
    )]
    Denied { pid: u32, why: String },
    #[error("stopping process {pid}, thread {tid}: {why}")]
    Failed { pid: u32, tid: u32, why: String },
}

/// A stopped process. Dropping it resumes every thread.
#[derive(Debug)]
pub struct Frozen {
    pid: u32,
    /// Seized threads, with a signal to hand back on detach (0: none).
    threads: Vec<(u32, i32)>,
    regs: HashMap<u32, Regs>,
    started: Instant,
    stopped_for: Option<Duration>,
}

fn tids(pid: u32) -> Result<Vec<u32>, FreezeError> {
    let dir = std::fs::read_dir(format!("/proc/{pid}/task")).map_err(|_| FreezeError::Gone(pid))?;
    let mut out: Vec<u32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    out.sort_unstable();
    Ok(out)
}

fn errno() -> std::io::Error {
    std::io::Error::last_os_error()
}

impl Frozen {
    /// Stop every thread of `pid`; threads the process starts meanwhile are
    /// seized too (the thread list is read until it no longer grows).
    pub fn freeze(pid: u32) -> Result<Frozen, FreezeError> {
        let mut f = Frozen {
            pid,
            threads: Vec::new(),
            regs: HashMap::new(),
            started: Instant::now(),
            stopped_for: None,
        };
        loop {
            let mut added = false;
            for tid in tids(pid)? {
                if f.threads.iter().any(|(t, _)| *t == tid) {
                    continue;
                }
                // SAFETY: PTRACE_SEIZE takes no pointers (addr and data 0);
                // the kernel checks the tid.
                let r =
                    unsafe { libc::ptrace(libc::PTRACE_SEIZE, tid as libc::pid_t, 0usize, 0usize) };
                if r != 0 {
                    let e = errno();
                    match e.raw_os_error() {
                        // The thread exited between the listing and now.
                        Some(libc::ESRCH) => continue,
                        Some(libc::EPERM | libc::EACCES) if f.threads.is_empty() => {
                            return Err(FreezeError::Denied {
                                pid,
                                why: e.to_string(),
                            });
                        }
                        _ => {
                            return Err(FreezeError::Failed {
                                pid,
                                tid,
                                why: e.to_string(),
                            });
                        }
                    }
                }
                f.threads.push((tid, 0));
                // SAFETY: as above, no pointers.
                let r = unsafe {
                    libc::ptrace(libc::PTRACE_INTERRUPT, tid as libc::pid_t, 0usize, 0usize)
                };
                if r != 0 && errno().raw_os_error() != Some(libc::ESRCH) {
                    return Err(FreezeError::Failed {
                        pid,
                        tid,
                        why: errno().to_string(),
                    });
                }
                f.wait_stop(tid)?;
                added = true;
            }
            if !added {
                break;
            }
        }
        if f.threads.is_empty() {
            return Err(FreezeError::Gone(pid));
        }
        for &(tid, _) in &f.threads {
            if let Some(r) = regs(tid) {
                f.regs.insert(tid, r);
            }
        }
        Ok(f)
    }

    /// Wait until `tid` is in a ptrace stop; a signal that stopped it instead
    /// of our interrupt is kept to hand back on detach.
    fn wait_stop(&mut self, tid: u32) -> Result<(), FreezeError> {
        loop {
            let mut status: libc::c_int = 0;
            // SAFETY: `status` is a valid, exclusively borrowed c_int.
            let r = unsafe { libc::waitpid(tid as libc::pid_t, &mut status, libc::__WALL) };
            if r < 0 {
                if errno().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                // Exited meanwhile: forget it.
                self.threads.retain(|(t, _)| *t != tid);
                return Ok(());
            }
            if libc::WIFEXITED(status) || libc::WIFSIGNALED(status) {
                self.threads.retain(|(t, _)| *t != tid);
                return Ok(());
            }
            if libc::WIFSTOPPED(status) {
                let sig = libc::WSTOPSIG(status);
                let event = (status >> 16) & 0xff;
                if event == libc::PTRACE_EVENT_STOP || sig == libc::SIGTRAP {
                    return Ok(());
                }
                // A signal-delivery stop: the signal was for the program.
                // Keep it, and let the interrupt we asked for arrive.
                if let Some(t) = self.threads.iter_mut().find(|(t, _)| *t == tid) {
                    t.1 = sig;
                }
                // SAFETY: no pointers; resume without the signal, which is
                // re-delivered on detach, then wait for the interrupt stop.
                unsafe {
                    libc::ptrace(libc::PTRACE_CONT, tid as libc::pid_t, 0usize, 0usize);
                    libc::ptrace(libc::PTRACE_INTERRUPT, tid as libc::pid_t, 0usize, 0usize);
                }
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Registers (pc, sp, bp) of each stopped thread.
    pub fn regs(&self) -> &HashMap<u32, Regs> {
        &self.regs
    }

    /// Resume every thread; how long the process was stopped.
    pub fn thaw(mut self) -> Duration {
        self.detach_all();
        self.stopped_for.unwrap_or_default()
    }

    fn detach_all(&mut self) {
        for (tid, sig) in self.threads.drain(..) {
            // SAFETY: no pointers; `data` is the signal to deliver (0: none).
            unsafe {
                libc::ptrace(
                    libc::PTRACE_DETACH,
                    tid as libc::pid_t,
                    0usize,
                    sig as usize,
                )
            };
        }
        if self.stopped_for.is_none() {
            self.stopped_for = Some(self.started.elapsed());
        }
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        self.detach_all();
    }
}

/// pc, sp, bp of a stopped thread.
fn regs(tid: u32) -> Option<Regs> {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: user_regs_struct is plain old data; zeroed is a valid value.
        let mut r: libc::user_regs_struct = unsafe { std::mem::zeroed() };
        // SAFETY: PTRACE_GETREGS writes one user_regs_struct to `data`, which
        // points at `r`, valid and exclusively borrowed.
        let ok = unsafe {
            libc::ptrace(
                libc::PTRACE_GETREGS,
                tid as libc::pid_t,
                0usize,
                &mut r as *mut libc::user_regs_struct,
            )
        };
        (ok == 0).then_some((r.rip, r.rsp, r.rbp))
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = tid;
        None
    }
}
