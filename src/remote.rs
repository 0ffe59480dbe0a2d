//! Reading another process's memory, read-only: one [`RemoteMemory`] trait
//! that every reader of a running Go program's state takes its bytes
//! through, with a `process_vm_readv(2)` implementation ([`ProcessMemory`])
//! and one over byte buffers ([`BufferMemory`]) for tests and fuzzing.
//!
//! Nothing here writes to the target, stops it or changes its state; a read
//! of memory the target does not map is an error, never a crash, so readers
//! may follow untrusted pointers.

use std::io;

/// Largest single read: far above any runtime structure or goroutine stack
/// goprobe reads (stacks top out at 1 GiB only in theory; real ones are KiB),
/// and a bound on a length read from corrupt memory.
pub const MAX_READ: usize = 64 << 20;

/// Why target memory could not be read.
#[derive(Debug, thiserror::Error)]
pub enum MemError {
    #[error("address {addr:#x} (+{len} bytes) is not mapped in the target")]
    Unmapped { addr: u64, len: usize },
    #[error("process {0} has exited")]
    Gone(u32),
    #[error(
        "not allowed to read the memory of process {0} (run as root, as the process's user with \
         kernel.yama.ptrace_scope=0, or with CAP_SYS_PTRACE)"
    )]
    Denied(u32),
    #[error(
        "a read of {len} bytes at {addr:#x} is larger than the {MAX_READ} bytes goprobe reads at once"
    )]
    TooLarge { addr: u64, len: usize },
    #[error("reading process {pid} at {addr:#x}: {source}")]
    Io {
        pid: u32,
        addr: u64,
        #[source]
        source: io::Error,
    },
}

/// The target's memory, read by address.
pub trait RemoteMemory {
    /// Fill `buf` from `addr`; an error unless every byte was read.
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemError>;

    /// Whether `[addr, addr + len)` lies inside the target's mappings (for
    /// validating pointers before trusting them).
    fn is_mapped(&self, addr: u64, len: u64) -> bool;

    /// Several reads at once: `reqs` are (address, buffer) pairs, each with
    /// its own result. Implementations may batch them into fewer system calls.
    fn read_many(&self, reqs: &mut [(u64, &mut [u8])]) -> Vec<Result<(), MemError>> {
        reqs.iter_mut().map(|(a, b)| self.read(*a, b)).collect()
    }

    /// `len` bytes at `addr`.
    fn read_vec(&self, addr: u64, len: usize) -> Result<Vec<u8>, MemError> {
        if len > MAX_READ {
            return Err(MemError::TooLarge { addr, len });
        }
        let mut buf = vec![0u8; len];
        self.read(addr, &mut buf)?;
        Ok(buf)
    }

    /// A little-endian `u64` (the runtime readers handle amd64 and arm64 only).
    fn u64(&self, addr: u64) -> Result<u64, MemError> {
        let mut b = [0u8; 8];
        self.read(addr, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn u32(&self, addr: u64) -> Result<u32, MemError> {
        let mut b = [0u8; 4];
        self.read(addr, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }
}

/// One line of `/proc/PID/maps`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Mapping {
    pub start: u64,
    pub end: u64,
    pub readable: bool,
    pub writable: bool,
    pub executable: bool,
    /// Offset in the mapped file.
    pub offset: u64,
    /// The file, or a pseudo name (`[heap]`, `[stack]`); empty for anonymous memory.
    pub path: String,
}

impl Mapping {
    pub fn contains(&self, addr: u64, len: u64) -> bool {
        addr >= self.start && addr.checked_add(len).is_some_and(|e| e <= self.end)
    }
}

/// Parse `/proc/PID/maps` text; lines that do not parse are skipped.
pub fn parse_maps(text: &str) -> Vec<Mapping> {
    let mut out = Vec::new();
    for line in text.lines() {
        let mut it = line.split_ascii_whitespace();
        let (Some(range), Some(perms), Some(offset)) = (it.next(), it.next(), it.next()) else {
            continue;
        };
        let (_dev, _inode) = (it.next(), it.next());
        let path = it.collect::<Vec<_>>().join(" ");
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end), Ok(offset)) = (
            u64::from_str_radix(start, 16),
            u64::from_str_radix(end, 16),
            u64::from_str_radix(offset, 16),
        ) else {
            continue;
        };
        let p = perms.as_bytes();
        if p.len() < 3 || end <= start {
            continue;
        }
        out.push(Mapping {
            start,
            end,
            readable: p[0] == b'r',
            writable: p[1] == b'w',
            executable: p[2] == b'x',
            offset,
            path,
        });
    }
    out
}

/// A live process, read with `process_vm_readv(2)`.
#[derive(Debug)]
pub struct ProcessMemory {
    pid: u32,
    maps: Vec<Mapping>,
}

impl ProcessMemory {
    /// Open `pid` for reading: its mappings now, and one read to prove access.
    pub fn open(pid: u32) -> Result<ProcessMemory, MemError> {
        let text = match std::fs::read_to_string(format!("/proc/{pid}/maps")) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(MemError::Gone(pid)),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return Err(MemError::Denied(pid));
            }
            Err(source) => {
                return Err(MemError::Io {
                    pid,
                    addr: 0,
                    source,
                });
            }
        };
        let maps = parse_maps(&text);
        let mem = ProcessMemory { pid, maps };
        // A process that reads its own maps but may not be read (another
        // user's, under Yama) shows an empty or unreadable file, or fails here.
        let first = mem
            .maps
            .iter()
            .find(|m| m.readable)
            .ok_or(MemError::Denied(pid))?;
        let mut probe = [0u8; 1];
        mem.read(first.start, &mut probe)?;
        Ok(mem)
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The mappings as they were when the process was opened (or last refreshed).
    pub fn mappings(&self) -> &[Mapping] {
        &self.maps
    }

    /// Read the mappings again (after the heap grew, say).
    pub fn refresh(&mut self) -> Result<(), MemError> {
        let text = std::fs::read_to_string(format!("/proc/{}/maps", self.pid))
            .map_err(|_| MemError::Gone(self.pid))?;
        self.maps = parse_maps(&text);
        Ok(())
    }

    fn error(&self, addr: u64, len: usize, err: io::Error) -> MemError {
        match err.raw_os_error() {
            Some(libc::ESRCH) => MemError::Gone(self.pid),
            Some(libc::EPERM | libc::EACCES) => MemError::Denied(self.pid),
            Some(libc::EFAULT) => MemError::Unmapped { addr, len },
            _ => MemError::Io {
                pid: self.pid,
                addr,
                source: err,
            },
        }
    }
}

impl RemoteMemory for ProcessMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemError> {
        let len = buf.len();
        if len > MAX_READ {
            return Err(MemError::TooLarge { addr, len });
        }
        if len == 0 {
            return Ok(());
        }
        let local = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: len,
        };
        let remote = libc::iovec {
            iov_base: addr as usize as *mut libc::c_void,
            iov_len: len,
        };
        // SAFETY: `local` describes `buf`, exclusively borrowed for the call;
        // the remote address is only interpreted by the kernel.
        let n =
            unsafe { libc::process_vm_readv(self.pid as libc::pid_t, &local, 1, &remote, 1, 0) };
        if n < 0 {
            return Err(self.error(addr, len, io::Error::last_os_error()));
        }
        if n as usize != len {
            // Part of the range is mapped, the rest is not.
            return Err(MemError::Unmapped { addr, len });
        }
        Ok(())
    }

    fn is_mapped(&self, addr: u64, len: u64) -> bool {
        self.maps
            .iter()
            .any(|m| m.readable && m.contains(addr, len))
    }

    fn read_many(&self, reqs: &mut [(u64, &mut [u8])]) -> Vec<Result<(), MemError>> {
        // process_vm_readv takes at most IOV_MAX (1024) iovecs per side and
        // stops at the first remote iovec it cannot read; on a short read the
        // rest is retried one by one so each request gets its own answer.
        const CHUNK: usize = 1024;
        let mut results = Vec::with_capacity(reqs.len());
        for chunk in reqs.chunks_mut(CHUNK) {
            let local: Vec<libc::iovec> = chunk
                .iter_mut()
                .map(|(_, b)| libc::iovec {
                    iov_base: b.as_mut_ptr().cast(),
                    iov_len: b.len(),
                })
                .collect();
            let remote: Vec<libc::iovec> = chunk
                .iter()
                .map(|(a, b)| libc::iovec {
                    iov_base: *a as usize as *mut libc::c_void,
                    iov_len: b.len(),
                })
                .collect();
            let total: usize = chunk.iter().map(|(_, b)| b.len()).sum();
            // SAFETY: every local iovec points at a live, exclusively borrowed
            // buffer of the stated length; remote iovecs are only addresses
            // in the other process, which the kernel checks.
            let n = unsafe {
                libc::process_vm_readv(
                    self.pid as libc::pid_t,
                    local.as_ptr(),
                    local.len() as libc::c_ulong,
                    remote.as_ptr(),
                    remote.len() as libc::c_ulong,
                    0,
                )
            };
            if n >= 0 && n as usize == total {
                results.extend(chunk.iter().map(|_| Ok(())));
                continue;
            }
            for (addr, buf) in chunk.iter_mut() {
                results.push(self.read(*addr, buf));
            }
        }
        results
    }
}

/// Target memory made of byte buffers at given addresses: what tests and the
/// fuzz targets hand the readers.
#[derive(Debug, Default, Clone)]
pub struct BufferMemory {
    /// (start address, bytes), in address order, not overlapping.
    regions: Vec<(u64, Vec<u8>)>,
}

impl BufferMemory {
    pub fn new() -> BufferMemory {
        BufferMemory::default()
    }

    /// Map `bytes` at `addr`; a region overlapping an earlier one is ignored
    /// (fuzz inputs may ask for anything), as is one past the address space.
    pub fn map(&mut self, addr: u64, bytes: Vec<u8>) -> &mut BufferMemory {
        let Some(end) = addr.checked_add(bytes.len() as u64) else {
            return self;
        };
        let overlaps = self
            .regions
            .iter()
            .any(|(a, b)| addr < a + b.len() as u64 && *a < end);
        if !overlaps && !bytes.is_empty() {
            let at = self.regions.partition_point(|(a, _)| *a < addr);
            self.regions.insert(at, (addr, bytes));
        }
        self
    }

    fn region(&self, addr: u64) -> Option<&(u64, Vec<u8>)> {
        let at = self.regions.partition_point(|(a, _)| *a <= addr);
        let r = self.regions.get(at.checked_sub(1)?)?;
        (addr - r.0 < r.1.len() as u64).then_some(r)
    }
}

impl RemoteMemory for BufferMemory {
    fn read(&self, addr: u64, buf: &mut [u8]) -> Result<(), MemError> {
        let len = buf.len();
        if len > MAX_READ {
            return Err(MemError::TooLarge { addr, len });
        }
        if len == 0 {
            return Ok(());
        }
        // Reads may span adjacent regions, as they span adjacent mappings.
        let mut done = 0usize;
        while done < len {
            let at = addr
                .checked_add(done as u64)
                .ok_or(MemError::Unmapped { addr, len })?;
            let (start, bytes) = self.region(at).ok_or(MemError::Unmapped { addr, len })?;
            let from = (at - start) as usize;
            let n = (bytes.len() - from).min(len - done);
            buf[done..done + n].copy_from_slice(&bytes[from..from + n]);
            done += n;
        }
        Ok(())
    }

    fn is_mapped(&self, addr: u64, len: u64) -> bool {
        let Ok(len) = usize::try_from(len) else {
            return false;
        };
        if len > MAX_READ {
            return false;
        }
        let mut buf = vec![0u8; len];
        self.read(addr, &mut buf).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_read_within_and_across_regions() {
        let mut m = BufferMemory::new();
        m.map(0x1000, vec![1, 2, 3, 4]).map(0x1004, vec![5, 6]);
        m.map(0x1002, vec![9; 8]); // overlaps: ignored
        let mut b = [0u8; 6];
        m.read(0x1000, &mut b).unwrap();
        assert_eq!(b, [1, 2, 3, 4, 5, 6]);
        assert!(m.read(0x1001, &mut [0u8; 6]).is_err());
        assert!(m.read(0xfff, &mut [0u8; 1]).is_err());
        assert!(m.read(u64::MAX, &mut [0u8; 2]).is_err());
        assert_eq!(m.u32(0x1001).unwrap(), u32::from_le_bytes([2, 3, 4, 5]));
        assert!(m.is_mapped(0x1000, 6));
        assert!(!m.is_mapped(0x1000, 7));
        assert!(matches!(
            m.read_vec(0x1000, MAX_READ + 1),
            Err(MemError::TooLarge { .. })
        ));
    }

    #[test]
    fn maps_lines() {
        let text = "00400000-00452000 r-xp 00000000 08:02 173521 /usr/bin/dbus-daemon\n\
                    00e03000-00e24000 rw-p 00000000 00:00 0 [heap]\n\
                    7f0000000000-7f0000001000 ---p 00000000 00:00 0\n\
                    garbage\n";
        let maps = parse_maps(text);
        assert_eq!(maps.len(), 3);
        assert_eq!(maps[0].path, "/usr/bin/dbus-daemon");
        assert!(maps[0].executable && !maps[0].writable);
        assert_eq!(maps[1].path, "[heap]");
        assert!(maps[1].contains(0xe03000, 0x21000));
        assert!(!maps[1].contains(0xe03000, 0x21001));
        assert!(!maps[2].readable);
    }

    #[test]
    fn reads_this_process() {
        let value: u64 = 0x1122_3344_5566_7788;
        let mem = ProcessMemory::open(std::process::id()).unwrap();
        let addr = &value as *const u64 as u64;
        assert_eq!(mem.u64(addr).unwrap(), value);
        assert!(mem.is_mapped(addr, 8));
        let mut a = [0u8; 8];
        let mut z = [0u8; 8];
        let res = mem.read_many(&mut [(addr, &mut a[..]), (8, &mut z[..])]);
        assert!(res[0].is_ok());
        assert!(matches!(res[1], Err(MemError::Unmapped { .. })));
        assert_eq!(u64::from_le_bytes(a), value);
        assert!(matches!(
            ProcessMemory::open(u32::MAX >> 1),
            Err(MemError::Gone(_))
        ));
    }
}
