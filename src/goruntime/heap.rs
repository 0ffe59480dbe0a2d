//! The runtime's allocation profile, read out of a live process the way
//! `runtime.MemProfile` (and so `runtime/pprof`'s heap profile) reports it.
//!
//! The runtime keeps one `bucket` per allocation call stack on the
//! `mbuckets` list (newest first, `allnext` links never rewritten), each
//! followed by its stack words and a `memRecord`: the published counts
//! (`active`) and three per-cycle ones (`future[3]`), indexed by the heap
//! profile cycle `mProfCycle` (stored shifted left by one, bit 0 the
//! "flushed" flag). `MemProfile` publishes what is due and then reports
//! `active`, which is what this reader computes without writing anything:
//! * `active + future[cycle % 3]` per bucket (the runtime flushes that cycle
//!   into `active` first, in case a GC's mark termination has advanced the
//!   cycle and not yet flushed it);
//! * if every bucket then has no allocations and no frees (no GC has
//!   completed yet), the sum of all three future cycles, as the runtime's
//!   fallback does;
//! * every bucket, frees equal to allocations or not (`runtime/pprof` asks
//!   for them all: `inuseZero`).

use std::collections::HashSet;

use super::layout::{BucketLayout, FUTURE_CYCLES};
use crate::remote::{MemError, RemoteMemory};

/// `bucketType` of memory-profile buckets (`memProfile = 1 + iota`, unchanged since Go 1.2).
pub const MEM_PROFILE: u64 = 1;
/// `maxProfStackDepth` (Go 1.23+; 32 before): no bucket records more.
pub const MAX_STACK: u64 = 1024;
/// Most buckets walked: a bound on a corrupt or cyclic list (a real profile
/// has one bucket per distinct allocation stack; millions would be extraordinary).
pub const MAX_BUCKETS: usize = 1 << 24;

/// The four counters of one cycle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    pub allocs: u64,
    pub frees: u64,
    pub alloc_bytes: u64,
    pub free_bytes: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.allocs = self.allocs.wrapping_add(o.allocs);
        self.frees = self.frees.wrapping_add(o.frees);
        self.alloc_bytes = self.alloc_bytes.wrapping_add(o.alloc_bytes);
        self.free_bytes = self.free_bytes.wrapping_add(o.free_bytes);
    }
    fn is_empty(&self) -> bool {
        self.allocs == 0 && self.frees == 0
    }
}

/// One `MemProfileRecord`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Address of the bucket in the target.
    pub bucket: u64,
    /// Size class of the allocations (`bucket.size`).
    pub size: u64,
    /// Return pcs as the runtime recorded them (runtime addresses), innermost first.
    pub stack: Vec<u64>,
    /// `active` as `MemProfile` would report it.
    pub counts: Counts,
}

/// What one read of the profile found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub records: Vec<Record>,
    /// `mProfCycle` (the heap profile cycle: completed GC cycles, wrapped).
    pub cycle: u32,
    /// The flag bit: the current cycle was already flushed into `active`.
    pub flushed: bool,
    /// True when no GC had published anything and all cycles were summed
    /// (allocations up to the moment of the read, no frees).
    pub unpublished: bool,
}

/// Why the profile could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HeapError {
    #[error(transparent)]
    Mem(#[from] MemError),
    #[error("runtime.mbuckets: bucket at {addr:#x} is not a memory-profile bucket ({why})")]
    NotABucket { addr: u64, why: String },
    #[error("runtime.mbuckets: more than {MAX_BUCKETS} buckets (a corrupt list?)")]
    TooMany,
}

/// Where the profile lives in the target (runtime addresses).
#[derive(Debug, Clone, Copy)]
pub struct Addrs {
    pub mbuckets: u64,
    pub mprof_cycle: u64,
}

fn word(b: &[u8], off: u64) -> u64 {
    let o = off as usize;
    b.get(o..o + 8)
        .and_then(|s| s.try_into().ok())
        .map_or(0, u64::from_le_bytes)
}

/// One cycle's counters at `at`; `size` is the bucket's object size, which
/// gives the byte counts where the runtime keeps none (Go 1.27).
fn counts(b: &[u8], l: &BucketLayout, at: u64, size: u64) -> Counts {
    let (allocs, frees) = (word(b, at + l.allocs), word(b, at + l.frees));
    Counts {
        allocs,
        frees,
        alloc_bytes: l
            .alloc_bytes
            .map_or(allocs.wrapping_mul(size), |o| word(b, at + o)),
        free_bytes: l
            .free_bytes
            .map_or(frees.wrapping_mul(size), |o| word(b, at + o)),
    }
}

/// One bucket as read: its stack and all four cycles.
struct RawBucket {
    addr: u64,
    size: u64,
    stack: Vec<u64>,
    active: Counts,
    future: [Counts; FUTURE_CYCLES as usize],
}

/// Read one bucket at `addr`; `is_code` vets its stack pcs (runtime addresses).
fn read_bucket(
    mem: &dyn RemoteMemory,
    l: &BucketLayout,
    addr: u64,
    is_code: &dyn Fn(u64) -> bool,
) -> Result<(RawBucket, u64), HeapError> {
    let bad = |why: String| HeapError::NotABucket { addr, why };
    let record_len = l.future + FUTURE_CYCLES * l.cycle;
    // One read for a bucket of up to GUESS stack words (most are: profiles
    // record up to 32 or 128 frames, real stacks are shorter); a bucket near
    // the end of its mapping, or deeper, takes a second.
    const GUESS: u64 = 24;
    let mut head = vec![0u8; (l.header + GUESS * 8 + record_len) as usize];
    if mem.read(addr, &mut head).is_err() {
        head.truncate(l.header as usize);
        mem.read(addr, &mut head)?;
    }
    let typ = word(&head, l.typ);
    let nstk = word(&head, l.nstk);
    if typ != MEM_PROFILE {
        return Err(bad(format!("type {typ}")));
    }
    if nstk == 0 || nstk > MAX_STACK {
        return Err(bad(format!("{nstk} stack words")));
    }
    let want = (nstk * 8 + record_len) as usize;
    let rest = match head.get(l.header as usize..l.header as usize + want) {
        Some(r) => r.to_vec(),
        None => mem.read_vec(addr + l.header, want)?,
    };
    let stack: Vec<u64> = (0..nstk).map(|i| word(&rest, i * 8)).collect();
    // Every pc of a real bucket is a return address in the binary's text.
    if let Some(pc) = stack.iter().find(|&&pc| !is_code(pc)) {
        return Err(bad(format!(
            "stack pc {pc:#x} is not in the program's code"
        )));
    }
    let rec = nstk * 8;
    let size = word(&head, l.size);
    let future = std::array::from_fn(|i| counts(&rest, l, rec + l.future_cycle(i as u64), size));
    Ok((
        RawBucket {
            addr,
            size,
            stack,
            active: counts(&rest, l, rec + l.active, size),
            future,
        },
        word(&head, l.allnext),
    ))
}

/// Check that `head` (the value of `mbuckets`) starts a list of
/// memory-profile buckets: its first few buckets read and validate. A nil
/// head is a valid, empty list.
pub fn check_list(
    mem: &dyn RemoteMemory,
    l: &BucketLayout,
    head: u64,
    is_code: &dyn Fn(u64) -> bool,
) -> Result<(), HeapError> {
    let mut next = head;
    for _ in 0..4 {
        if next == 0 {
            break;
        }
        let (_, after) = read_bucket(mem, l, next, is_code)?;
        next = after;
    }
    Ok(())
}

/// Read the whole profile once. `is_code` tells whether a runtime address is
/// in the program's code (bucket stacks must be).
pub fn read(
    mem: &dyn RemoteMemory,
    l: &BucketLayout,
    at: Addrs,
    is_code: &dyn Fn(u64) -> bool,
) -> Result<Profile, HeapError> {
    let raw_cycle = mem.u32(at.mprof_cycle)?;
    let cycle = raw_cycle >> 1;
    let index = (cycle % FUTURE_CYCLES as u32) as usize;
    let mut next = mem.u64(at.mbuckets)?;
    let mut seen = HashSet::new();
    let mut buckets = Vec::new();
    while next != 0 {
        // allnext links are never rewritten: a repeat means corrupt memory.
        if !seen.insert(next) {
            break;
        }
        if buckets.len() >= MAX_BUCKETS {
            return Err(HeapError::TooMany);
        }
        let (b, after) = read_bucket(mem, l, next, is_code)?;
        buckets.push(b);
        next = after;
    }
    let mut published: Vec<Counts> = buckets
        .iter()
        .map(|b| {
            let mut c = b.active;
            c.add(&b.future[index]);
            c
        })
        .collect();
    let unpublished = published.iter().all(Counts::is_empty);
    if unpublished {
        for (c, b) in published.iter_mut().zip(&buckets) {
            for f in &b.future {
                c.add(f);
            }
        }
    }
    let records = buckets
        .into_iter()
        .zip(published)
        .map(|(b, counts)| Record {
            bucket: b.addr,
            size: b.size,
            stack: b.stack,
            counts,
        })
        .collect();
    Ok(Profile {
        records,
        cycle,
        flushed: raw_cycle & 1 != 0,
        unpublished,
    })
}

/// Read until two reads agree (a GC publishing a cycle in between changes
/// the counts), at most `attempts` times. Returns the profile and how many
/// reads it took; `Err` when they never agreed is reported by the caller.
pub fn read_consistent(
    mem: &dyn RemoteMemory,
    l: &BucketLayout,
    at: Addrs,
    is_code: &dyn Fn(u64) -> bool,
    attempts: u32,
) -> Result<(Profile, u32, bool), HeapError> {
    let mut prev = read(mem, l, at, is_code)?;
    for n in 2..=attempts.max(2) {
        let cur = read(mem, l, at, is_code)?;
        // New buckets may have been prepended; compare what both saw. Before
        // the first GC the counts move with every allocation: then only the
        // cycle is compared.
        let same_cycle = cur.cycle == prev.cycle && cur.flushed == prev.flushed;
        let agree = same_cycle
            && (cur.unpublished
                || cur
                    .records
                    .iter()
                    .rev()
                    .zip(prev.records.iter().rev())
                    .all(|(a, b)| a == b));
        if agree {
            return Ok((cur, n, true));
        }
        prev = cur;
    }
    Ok((prev, attempts.max(2), false))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::remote::BufferMemory;

    pub(crate) fn layout() -> BucketLayout {
        BucketLayout {
            allnext: 8,
            typ: 16,
            size: 32,
            nstk: 40,
            header: 48,
            active: 0,
            future: 32,
            cycle: 32,
            allocs: 0,
            frees: 8,
            alloc_bytes: Some(16),
            free_bytes: Some(24),
            sources: Vec::new(),
        }
    }

    /// A bucket's bytes: header, stack, active, future[3].
    pub(crate) fn bucket(allnext: u64, stack: &[u64], cycles: [[u64; 4]; 4]) -> Vec<u8> {
        let mut b = vec![0u8; 48];
        b[8..16].copy_from_slice(&allnext.to_le_bytes());
        b[16..24].copy_from_slice(&MEM_PROFILE.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[40..48].copy_from_slice(&(stack.len() as u64).to_le_bytes());
        for pc in stack {
            b.extend_from_slice(&pc.to_le_bytes());
        }
        for c in cycles {
            for v in c {
                b.extend_from_slice(&v.to_le_bytes());
            }
        }
        b
    }

    fn code(pc: u64) -> bool {
        (0x40_0000..0x50_0000).contains(&pc)
    }

    #[test]
    fn published_counts_follow_memprofile() {
        let mut m = BufferMemory::new();
        // mProfCycle: cycle 4 (index 1), not flushed; mbuckets -> A -> B.
        m.map(0x1000, ((4u32 << 1) as u64).to_le_bytes().to_vec());
        m.map(0x2000, 0x10_000u64.to_le_bytes().to_vec());
        let a = bucket(
            0x20_000,
            &[0x40_1000, 0x40_2000],
            [[10, 2, 1000, 200], [0; 4], [1, 1, 100, 100], [5, 0, 500, 0]],
        );
        let b = bucket(0, &[0x40_3000], [[0; 4], [0; 4], [0; 4], [7, 0, 70, 0]]);
        m.map(0x10_000, a).map(0x20_000, b);
        let at = Addrs {
            mbuckets: 0x2000,
            mprof_cycle: 0x1000,
        };
        let p = read(&m, &layout(), at, &code).unwrap();
        assert_eq!((p.cycle, p.flushed, p.unpublished), (4, false, false));
        assert_eq!(p.records.len(), 2);
        // active + future[4 % 3 = 1]
        assert_eq!(
            p.records[0].counts,
            Counts {
                allocs: 11,
                frees: 3,
                alloc_bytes: 1100,
                free_bytes: 300
            }
        );
        assert_eq!(p.records[0].stack, [0x40_1000, 0x40_2000]);
        assert_eq!(p.records[1].counts, Counts::default());
        let (again, reads, agreed) = read_consistent(&m, &layout(), at, &code, 3).unwrap();
        assert_eq!((again, reads, agreed), (p, 2, true));
    }

    #[test]
    fn go127_counts_bytes_as_objects_times_size() {
        // Go 1.27: a cycle is (allocs, frees), 16 bytes.
        let l = BucketLayout {
            future: 16,
            cycle: 16,
            alloc_bytes: None,
            free_bytes: None,
            ..layout()
        };
        let mut b = vec![0u8; 48];
        b[16..24].copy_from_slice(&MEM_PROFILE.to_le_bytes());
        b[32..40].copy_from_slice(&64u64.to_le_bytes());
        b[40..48].copy_from_slice(&1u64.to_le_bytes());
        b.extend_from_slice(&0x40_1000u64.to_le_bytes());
        for v in [10u64, 4, 0, 0, 2, 1, 0, 0] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        let mut m = BufferMemory::new();
        m.map(0x1000, ((4u32 << 1) as u64).to_le_bytes().to_vec()); // cycle 4: future[1] is due
        m.map(0x2000, 0x10_000u64.to_le_bytes().to_vec());
        m.map(0x10_000, b);
        let at = Addrs {
            mbuckets: 0x2000,
            mprof_cycle: 0x1000,
        };
        let p = read(&m, &l, at, &code).unwrap();
        assert_eq!(
            p.records[0].counts,
            Counts {
                allocs: 12,
                frees: 5,
                alloc_bytes: 768,
                free_bytes: 320
            }
        );
    }

    #[test]
    fn before_any_gc_every_cycle_is_summed() {
        let mut m = BufferMemory::new();
        m.map(0x1000, 0u64.to_le_bytes().to_vec());
        m.map(0x2000, 0x10_000u64.to_le_bytes().to_vec());
        m.map(
            0x10_000,
            bucket(
                0,
                &[0x40_1000],
                [[0; 4], [0; 4], [2, 0, 20, 0], [3, 0, 30, 0]],
            ),
        );
        let at = Addrs {
            mbuckets: 0x2000,
            mprof_cycle: 0x1000,
        };
        let p = read(&m, &layout(), at, &code).unwrap();
        assert!(p.unpublished);
        assert_eq!(p.records[0].counts.allocs, 5);
    }

    #[test]
    fn bad_lists_are_errors_or_cut() {
        let at = Addrs {
            mbuckets: 0x2000,
            mprof_cycle: 0x1000,
        };
        let mut m = BufferMemory::new();
        m.map(0x1000, 0u64.to_le_bytes().to_vec());
        m.map(0x2000, 0x10_000u64.to_le_bytes().to_vec());
        // A bucket whose allnext points at itself: read once.
        m.map(
            0x10_000,
            bucket(
                0x10_000,
                &[0x40_1000],
                [[1, 0, 8, 0], [0; 4], [0; 4], [0; 4]],
            ),
        );
        assert_eq!(read(&m, &layout(), at, &code).unwrap().records.len(), 1);
        // A stack pc outside the code.
        let mut m2 = BufferMemory::new();
        m2.map(0x1000, 0u64.to_le_bytes().to_vec());
        m2.map(0x2000, 0x10_000u64.to_le_bytes().to_vec());
        m2.map(0x10_000, bucket(0, &[0x99], [[0; 4]; 4]));
        assert!(matches!(
            read(&m2, &layout(), at, &code),
            Err(HeapError::NotABucket { .. })
        ));
        // A dangling pointer.
        let mut m3 = BufferMemory::new();
        m3.map(0x1000, 0u64.to_le_bytes().to_vec());
        m3.map(0x2000, 0xdead_0000u64.to_le_bytes().to_vec());
        assert!(matches!(
            read(&m3, &layout(), at, &code),
            Err(HeapError::Mem(_))
        ));
        // No profile at all: mbuckets nil.
        let mut m4 = BufferMemory::new();
        m4.map(0x1000, 0u64.to_le_bytes().to_vec());
        m4.map(0x2000, 0u64.to_le_bytes().to_vec());
        let p = read(&m4, &layout(), at, &code).unwrap();
        assert!(p.records.is_empty() && p.unpublished);
    }
}
