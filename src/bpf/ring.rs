//! Reading what the programs report: each object's ring buffer and
//! per-CPU lost counters, and one wait over every ring buffer at once.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use aya::maps::{MapData, PerCpuArray, RingBuf};

use super::BpfError;
use super::abi::LOST_MAX;

/// One object's ring buffer and lost counters.
pub struct Ring {
    pub(super) ring: RingBuf<MapData>,
    pub(super) lost: PerCpuArray<MapData, u64>,
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
        let w = Waiter { epoll };
        for r in rings {
            w.watch(r.ring.as_fd())?;
        }
        Ok(w)
    }

    /// Also wake up when `fd` is readable. The caller keeps `fd` open
    /// while waiting (the kernel drops a closed fd from the set by itself).
    pub fn watch(&self, fd: std::os::fd::BorrowedFd<'_>) -> Result<(), BpfError> {
        let mut ev = libc::epoll_event {
            events: libc::EPOLLIN as u32,
            u64: fd.as_raw_fd() as u64,
        };
        // SAFETY: both fds are open and ev is a valid epoll_event.
        let rc = unsafe {
            libc::epoll_ctl(
                self.epoll.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                fd.as_raw_fd(),
                &mut ev,
            )
        };
        if rc != 0 {
            return Err(BpfError::Poll(std::io::Error::last_os_error()));
        }
        Ok(())
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
