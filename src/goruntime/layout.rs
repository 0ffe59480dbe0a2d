//! Offsets of the runtime structures goprobe reads from a live process
//! (`runtime.g` and its `sched` gobuf, `runtime.m`, the memory-profile
//! `runtime.bucket` and `runtime.memRecord`), each through
//! [`crate::offsets::Resolver`]: the binary's DWARF, else the embedded table
//! (and whatever sources the resolver gains). Never a constant in this file:
//! a field the resolver cannot answer, or answers with an unexpected size,
//! makes the whole layout unconfirmed, and the error names every such field.

use crate::offsets::{Resolved, Resolver, Source};

/// A field that could not be confirmed, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    pub field: String,
    pub reason: String,
}

/// The runtime layout of a binary could not be confirmed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("runtime layout of this binary cannot be confirmed: {}", list(.0))]
pub struct LayoutError(pub Vec<Missing>);

/// Fields grouped by reason: `a, b (why); c (other reason)`.
fn list(m: &[Missing]) -> String {
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for x in m {
        match groups.iter_mut().find(|(r, _)| *r == x.reason) {
            Some((_, fields)) => fields.push(&x.field),
            None => groups.push((&x.reason, vec![&x.field])),
        }
    }
    groups
        .iter()
        .map(|(r, f)| format!("{} ({r})", f.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Where each field came from, for the snapshot's header.
pub type Sources = Vec<(String, Source)>;

/// Resolves a set of fields, collecting what is missing.
struct Collector<'r, 'a> {
    resolver: &'r Resolver<'a>,
    missing: Vec<Missing>,
    sources: Sources,
}

impl Collector<'_, '_> {
    /// Offset of `field`, whose size must be one of `sizes` (empty: any).
    fn field(&mut self, field: &str, sizes: &[u64]) -> Option<Resolved> {
        let r = self.resolver.resolve(field);
        match (r.offset, r.size) {
            (Some(_), Some(size)) if sizes.is_empty() || sizes.contains(&size) => {
                self.sources.push((field.to_string(), r.source));
                Some(r)
            }
            (Some(_), size) => {
                self.missing.push(Missing {
                    field: field.to_string(),
                    reason: format!(
                        "size {} from {}, expected {}",
                        size.map_or("unknown".into(), |s| s.to_string()),
                        r.source,
                        sizes
                            .iter()
                            .map(u64::to_string)
                            .collect::<Vec<_>>()
                            .join(" or ")
                    ),
                });
                None
            }
            (None, _) => {
                self.missing.push(Missing {
                    field: field.to_string(),
                    reason: r.reason.unwrap_or_else(|| "unknown".into()),
                });
                None
            }
        }
    }

    fn offset(&mut self, field: &str, sizes: &[u64]) -> u64 {
        self.field(field, sizes).and_then(|r| r.offset).unwrap_or(0)
    }

    fn finish(self) -> Result<Sources, LayoutError> {
        if self.missing.is_empty() {
            Ok(self.sources)
        } else {
            Err(LayoutError(self.missing))
        }
    }
}

const WORD: &[u64] = &[8];

/// `runtime.g` (and the `runtime.m` fields a running goroutine needs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GLayout {
    pub stack_lo: u64,
    pub stack_hi: u64,
    pub sched_sp: u64,
    pub sched_pc: u64,
    pub sched_bp: u64,
    pub syscallsp: u64,
    pub syscallpc: u64,
    pub atomicstatus: u64,
    pub goid: u64,
    pub waitsince: u64,
    pub waitreason: u64,
    pub gopc: u64,
    pub startpc: u64,
    /// Go 1.21+ (`created by ... in goroutine N`).
    pub parent_goid: Option<u64>,
    pub lockedm: u64,
    pub m: u64,
    /// `runtime.m.procid`: the thread id of the M running a goroutine.
    pub m_procid: Option<u64>,
    /// Bytes to read per `g` (up to the last field used).
    pub read_len: u64,
    pub sources: Sources,
}

impl GLayout {
    pub fn resolve(r: &Resolver<'_>) -> Result<GLayout, LayoutError> {
        let mut c = Collector {
            resolver: r,
            missing: Vec::new(),
            sources: Vec::new(),
        };
        let mut g = GLayout {
            stack_lo: c.offset("runtime.g.stack.lo", WORD),
            stack_hi: c.offset("runtime.g.stack.hi", WORD),
            sched_sp: c.offset("runtime.g.sched.sp", WORD),
            sched_pc: c.offset("runtime.g.sched.pc", WORD),
            sched_bp: c.offset("runtime.g.sched.bp", WORD),
            syscallsp: c.offset("runtime.g.syscallsp", WORD),
            syscallpc: c.offset("runtime.g.syscallpc", WORD),
            atomicstatus: c.offset("runtime.g.atomicstatus", &[4]),
            goid: c.offset("runtime.g.goid", WORD),
            waitsince: c.offset("runtime.g.waitsince", WORD),
            waitreason: c.offset("runtime.g.waitreason", &[1]),
            gopc: c.offset("runtime.g.gopc", WORD),
            startpc: c.offset("runtime.g.startpc", WORD),
            parent_goid: None,
            lockedm: c.offset("runtime.g.lockedm", WORD),
            m: c.offset("runtime.g.m", WORD),
            m_procid: None,
            read_len: 0,
            sources: Vec::new(),
        };
        // Optional: Go 1.21 added parentGoid; an M's thread id only matters
        // for goroutines running at the moment of a frozen read.
        g.parent_goid = optional(r, "runtime.g.parentGoid", &mut c.sources);
        g.m_procid = optional(r, "runtime.m.procid", &mut c.sources);
        let fields = [
            g.stack_lo,
            g.stack_hi,
            g.sched_sp,
            g.sched_pc,
            g.sched_bp,
            g.syscallsp,
            g.syscallpc,
            g.goid,
            g.waitsince,
            g.gopc,
            g.startpc,
            g.lockedm,
            g.m,
            g.parent_goid.unwrap_or(0),
        ];
        g.read_len = fields
            .iter()
            .map(|o| o + 8)
            .max()
            .unwrap_or(0)
            .max(g.atomicstatus + 4);
        g.sources = c.finish()?;
        Ok(g)
    }
}

fn optional(r: &Resolver<'_>, field: &str, sources: &mut Sources) -> Option<u64> {
    let got = r.resolve(field);
    (got.size == Some(8)).then(|| {
        sources.push((field.to_string(), got.source));
        got.offset
    })?
}

/// `runtime.bucket` followed by its stack and a `runtime.memRecord`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketLayout {
    pub allnext: u64,
    pub typ: u64,
    pub size: u64,
    pub nstk: u64,
    /// `sizeof(runtime.bucket)`: the stack words start here.
    pub header: u64,
    /// Offsets in `runtime.memRecord` of `active` and of `future[0]`.
    pub active: u64,
    pub future: u64,
    /// `sizeof(runtime.memRecordCycle)` and its fields' offsets.
    pub cycle: u64,
    pub allocs: u64,
    pub frees: u64,
    /// Byte counters: up to Go 1.26. Go 1.27 dropped them (a cycle is
    /// `allocs, frees` only, two words) and counts bytes as objects times
    /// the bucket's size, as the runtime does.
    pub alloc_bytes: Option<u64>,
    pub free_bytes: Option<u64>,
    pub sources: Sources,
}

/// `memRecord.future` has this many cycles (`[3]memRecordCycle`, Go 1.13 through 1.27).
pub const FUTURE_CYCLES: u64 = 3;

impl BucketLayout {
    pub fn resolve(r: &Resolver<'_>) -> Result<BucketLayout, LayoutError> {
        let mut c = Collector {
            resolver: r,
            missing: Vec::new(),
            sources: Vec::new(),
        };
        let header = c.field("runtime.bucket.allnext", WORD);
        let mut b = BucketLayout {
            allnext: header.as_ref().and_then(|h| h.offset).unwrap_or(0),
            typ: c.offset("runtime.bucket.typ", WORD),
            size: c.offset("runtime.bucket.size", WORD),
            nstk: c.offset("runtime.bucket.nstk", WORD),
            header: 0,
            active: 0,
            future: c.offset("runtime.memRecord.future", &[]),
            cycle: 0,
            allocs: c.offset("runtime.memRecord.active.allocs", WORD),
            frees: c.offset("runtime.memRecord.active.frees", WORD),
            alloc_bytes: None,
            free_bytes: None,
            sources: Vec::new(),
        };
        match header.map(|h| h.type_size) {
            Some(Some(size)) => b.header = size,
            Some(None) => c.missing.push(Missing {
                field: "runtime.bucket".into(),
                reason: "struct size unknown".into(),
            }),
            None => {}
        }
        if let Some(active) = c.field("runtime.memRecord.active", &[]) {
            b.active = active.offset.unwrap_or(0);
            b.cycle = active.size.unwrap_or(0);
        }
        // A cycle of two words holds the object counts and nothing else
        // (Go 1.27); four words, the byte counts too, which must then resolve.
        if c.missing.is_empty() && b.cycle != 16 {
            b.alloc_bytes = Some(c.offset("runtime.memRecord.active.alloc_bytes", WORD));
            b.free_bytes = Some(c.offset("runtime.memRecord.active.free_bytes", WORD));
        }
        // The counters sit inside `active`, which `future` repeats.
        let all = [
            ("allocs", Some(b.allocs)),
            ("frees", Some(b.frees)),
            ("alloc_bytes", b.alloc_bytes),
            ("free_bytes", b.free_bytes),
        ];
        for (name, off) in all.into_iter().filter_map(|(n, o)| Some((n, o?))) {
            if c.missing.is_empty() && (off < b.active || off + 8 > b.active + b.cycle) {
                c.missing.push(Missing {
                    field: format!("runtime.memRecord.active.{name}"),
                    reason: format!("offset {off} outside memRecord.active"),
                });
            }
        }
        if c.missing.is_empty() {
            // Relative to the start of a memRecordCycle from here on.
            b.allocs -= b.active;
            b.frees -= b.active;
            for off in [b.alloc_bytes.as_mut(), b.free_bytes.as_mut()]
                .into_iter()
                .flatten()
            {
                *off -= b.active;
            }
        }
        b.sources = c.finish()?;
        Ok(b)
    }

    /// Offset in a `memRecord` of future cycle `i`.
    pub fn future_cycle(&self, i: u64) -> u64 {
        self.future + i * self.cycle
    }
}
