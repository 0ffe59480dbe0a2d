//! Attached probes and their event stream: each family's object loaded,
//! configured and attached on its own (a family the kernel refuses is
//! reported and left out; the others still record), their ring buffers
//! polled together and merged into one stream in completion order.

use std::time::Duration;

use super::AttachError;
use super::plan::{FamilyPlan, Plan};
use crate::bpf::abi::{self, LOST_MAX};
use crate::bpf::{self, BpfError, FunctionProbe, Ring, Waiter, rets};
use crate::loss::Effect;
use crate::probes::Family;
use crate::probes::family::{Decode, HookInfo};
use crate::probes::symbols::Symbols;
use crate::stream::{Line, RawEvent};

/// How long after its end an event may still be in flight to its ring
/// buffer (between the program's timestamp and its ring-buffer commit).
/// Events are held this long so that the stream, merged from several ring
/// buffers, is in completion order: a call always before the call that
/// encloses it, as the recorder needs.
const ORDER_SLACK_NS: u64 = 50_000_000;

/// One family's loaded object and what its decoder needs.
struct Attached {
    family: &'static dyn Family,
    object: bpf::Object,
    hooks: Vec<HookInfo>,
}

/// Attached probes and their event stream.
pub struct Session {
    attached: Vec<Attached>,
    /// Each ring buffer, with the index in `attached` of its family.
    rings: Vec<(usize, Ring)>,
    waiter: Waiter,
    symbols: Symbols,
    /// Decoded events not yet old enough to be passed on in order.
    held: Vec<RawEvent>,
    reported_lost: [u64; LOST_MAX as usize],
    reported_missed: u64,
    reported_lineage: u64,
    /// Uprobes attached (entry + returns over all functions).
    pub links: usize,
    /// Probes attached.
    pub probes: Vec<String>,
}

impl Session {
    /// Load each family's object with its configuration and attach its
    /// hooks. A family that cannot be loaded (the verifier rejects a
    /// program) or attached is left out, with one warning naming it and
    /// why; it is an error when nothing is left. Hooks whose code cannot be
    /// decoded are skipped with a warning. `binary` (the target, opened)
    /// names the Go types events carry. `empty`: attach do-nothing programs
    /// at the same points instead (benchmark baseline).
    pub fn start(
        plan: &Plan,
        binary: Option<crate::gobin::GoBinary>,
        empty: bool,
        warnings: &mut Vec<String>,
    ) -> Result<Session, AttachError> {
        warnings.extend(bpf::prepare_system()?);
        let mut attached = Vec::new();
        let mut probes: Vec<String> = Vec::new();
        let mut failed = Vec::new();
        let mut loader = bpf::Loader::new();
        if let Some(bytes) = plan.ring_buffer_bytes {
            loader.ring_buffer_bytes(bytes)?;
        }
        for fp in &plan.families {
            let label = format!("{} ({})", fp.family.name(), fp.probes().join(", "));
            match attach_family(&mut loader, plan, fp, empty, warnings) {
                Ok(Some(object)) => {
                    for p in fp.probes() {
                        probes.push(p.to_owned());
                    }
                    attached.push(Attached {
                        family: fp.family,
                        object,
                        hooks: fp.hook_infos(),
                    });
                }
                Ok(None) => failed.push(format!("{label}: no hook could be attached")),
                // Without privileges no family loads: say it once, plainly.
                Err(AttachError::Bpf(e @ BpfError::Privileges(_))) => return Err(e.into()),
                Err(e) => {
                    warnings.push(format!("family {label} not attached: {e}"));
                    failed.push(format!("{label}: {e}"));
                }
            }
        }
        if attached.is_empty() {
            return Err(AttachError::NothingToAttach(if failed.is_empty() {
                "no hooks".into()
            } else {
                failed.join("; ")
            }));
        }
        let mut rings = Vec::new();
        if !empty {
            for (i, a) in attached.iter_mut().enumerate() {
                if let Some(r) = a.object.take_ring()? {
                    rings.push((i, r));
                }
            }
        }
        let waiter = Waiter::new(&rings.iter().map(|(_, r)| r).collect::<Vec<_>>())?;
        let mut symbols = Symbols::new(binary);
        // Learn the load address now: a process that crashes may be gone by
        // the time its last events are read.
        if let Some(pid) = plan.target.pid {
            symbols.bias(pid);
        }
        let links = attached.iter().map(|a| a.object.links()).sum();
        Ok(Session {
            attached,
            rings,
            waiter,
            symbols,
            held: Vec::new(),
            reported_lost: [0; LOST_MAX as usize],
            reported_missed: 0,
            reported_lineage: 0,
            links,
            probes,
        })
    }

    /// Wait up to `timeout`, then pass every completed call to `f`, in
    /// completion order (the most recent ones may wait for the next call).
    pub fn poll(
        &mut self,
        timeout: Duration,
        f: impl FnMut(RawEvent),
    ) -> Result<usize, AttachError> {
        self.waiter.wait(timeout)?;
        // Everything that ended before the cutoff has reached its ring
        // buffer by now, so it is all read below.
        let cutoff = crate::clock::monotonic_now_ns().saturating_sub(ORDER_SLACK_NS);
        self.read_rings();
        Ok(self.pass_on(Some(cutoff), f))
    }

    /// Also end [`Session::poll`]'s wait when `fd` becomes readable (a
    /// signal's self-pipe, a pidfd that says the target exited).
    pub fn wake_on(&self, fd: std::os::fd::BorrowedFd<'_>) -> Result<(), AttachError> {
        Ok(self.waiter.watch(fd)?)
    }

    /// Read everything still in the ring buffers and pass it all on, in
    /// completion order.
    pub fn drain(&mut self, f: impl FnMut(RawEvent)) -> usize {
        self.read_rings();
        self.pass_on(None, f)
    }

    fn read_rings(&mut self) {
        for (i, ring) in &mut self.rings {
            let a = &self.attached[*i];
            let mut ctx = Decode {
                hooks: &a.hooks,
                symbols: &mut self.symbols,
            };
            let family = a.family;
            let held = &mut self.held;
            ring.drain(&mut |bytes| {
                if let Some(ev) = family.decode(bytes, &mut ctx) {
                    held.push(ev);
                }
            });
        }
    }

    /// Pass on the held events that ended by `cutoff` (all without one),
    /// oldest end first.
    fn pass_on(&mut self, cutoff: Option<u64>, mut f: impl FnMut(RawEvent)) -> usize {
        self.held.sort_by_key(|e| e.end_ns);
        let n = match cutoff {
            Some(c) => self.held.partition_point(|e| e.end_ns <= c),
            None => self.held.len(),
        };
        for ev in self.held.drain(..n) {
            f(ev);
        }
        n
    }

    /// Calls still in flight in processes that are gone: say, the requests
    /// a crash (a panic on a goroutine nobody recovers) killed. They end at
    /// `now_ns`, marked unfinished by their family.
    pub fn unfinished(&mut self, now_ns: u64) -> Vec<RawEvent> {
        let mut out = Vec::new();
        for a in &self.attached {
            let mut ctx = Decode {
                hooks: &a.hooks,
                symbols: &mut self.symbols,
            };
            let gone = |pid: u32| !process_alive(pid);
            // A map that cannot be read leaves nothing to report.
            if let Ok(evs) = a.family.unfinished(&a.object, &mut ctx, now_ns, &gone) {
                out.extend(evs);
            }
        }
        out.sort_by_key(|e| e.start_ns);
        out
    }

    /// Lost counts that grew since the last call, summed over the families
    /// by reason, as `lost` lines: the families' own counters and the
    /// kernel's count of program runs it skipped.
    pub fn new_lost(&mut self) -> Result<Vec<Line>, AttachError> {
        let mut now = [0u64; LOST_MAX as usize];
        // Drops of goprobe's own bookkeeping (goroutine creations) lose no
        // span: counted apart, so that spans + losses = calls exactly.
        let mut lineage = 0;
        for (i, r) in &self.rings {
            let internal = is_internal(self.attached[*i].family);
            for (k, (sum, n)) in now.iter_mut().zip(r.lost()?).enumerate() {
                let lost_span = crate::loss::effect(abi::LOST_NAMES[k]) == Effect::SpanLost;
                if internal && lost_span {
                    lineage += n;
                } else {
                    *sum += n;
                }
            }
        }
        let mut missed = 0;
        for a in &self.attached {
            let n = a.object.program_misses()?;
            if is_internal(a.family) {
                lineage += n;
            } else {
                missed += n;
            }
        }
        let at = crate::clock::monotonic_now_ns();
        let mut out = Vec::new();
        let mut grew = |reason: &str, n: u64, old: &mut u64| {
            if n > *old {
                out.push(Line::Lost {
                    reason: reason.to_owned(),
                    count: n - *old,
                    at_ns: Some(at),
                });
                *old = n;
            }
        };
        for (i, (&n, old)) in now.iter().zip(self.reported_lost.iter_mut()).enumerate() {
            grew(abi::LOST_NAMES[i], n, old);
        }
        grew(
            crate::loss::PROG_RUN_MISSED,
            missed,
            &mut self.reported_missed,
        );
        grew(
            crate::loss::LINEAGE_LOST,
            lineage,
            &mut self.reported_lineage,
        );
        Ok(out)
    }

    /// Lost totals so far, by reason.
    pub fn lost_totals(&self) -> Vec<(&'static str, u64)> {
        abi::LOST_NAMES
            .iter()
            .copied()
            .zip(self.reported_lost.iter().copied())
            .chain([
                (crate::loss::PROG_RUN_MISSED, self.reported_missed),
                (crate::loss::LINEAGE_LOST, self.reported_lineage),
            ])
            .collect()
    }
}

/// A family of goprobe's own bookkeeping (catalog role `internal`), whose
/// events are not spans.
fn is_internal(family: &dyn Family) -> bool {
    let Ok(catalog) = crate::catalog::Catalog::builtin() else {
        return false;
    };
    family
        .probes()
        .iter()
        .all(|p| catalog.probe(p).is_some_and(|p| p.internal))
}

impl Session {
    /// Detach every uprobe now, all at once (see [`bpf::detach`]); how long it took.
    pub fn detach(&mut self) -> Duration {
        let t = std::time::Instant::now();
        let links = self
            .attached
            .iter_mut()
            .flat_map(|a| a.object.take_links())
            .collect();
        bpf::detach(links);
        t.elapsed()
    }
}

impl Drop for Session {
    /// Detaching one uprobe after the other takes seconds: all at once.
    fn drop(&mut self) {
        self.detach();
    }
}

/// Load one family's object (or the baseline's) and attach its hooks.
/// `None` when none of its hooks could be attached.
fn attach_family(
    loader: &mut bpf::Loader,
    plan: &Plan,
    fp: &FamilyPlan,
    empty: bool,
    warnings: &mut Vec<String>,
) -> Result<Option<bpf::Object>, AttachError> {
    let gp: Vec<abi::GpHook> = fp.hooks.iter().map(|h| h.gp).collect();
    let mut object = if empty {
        loader.load(bpf::BASELINE_OBJECT, &fp.config, &[])?
    } else {
        loader.load(fp.family.object(), &fp.config, &gp)?
    };
    let mut functions = Vec::new();
    for (i, hook) in fp.hooks.iter().enumerate() {
        let points = match rets::probe_points(&hook.code, hook.address) {
            Ok(p) => p,
            Err(e) => {
                warnings.push(format!("{}: {}: {e}", hook.probe, hook.function));
                continue;
            }
        };
        let pick = |p: &Option<String>| {
            p.as_ref().map(|p| {
                if empty {
                    bpf::EMPTY_PROGRAM.to_owned()
                } else {
                    p.clone()
                }
            })
        };
        functions.push(FunctionProbe {
            entry: pick(&hook.entry_program),
            ret: pick(&hook.return_program),
            cookie: i as u64,
            file_offset: hook.file_offset,
            points,
        });
    }
    if functions.is_empty() {
        return Ok(None);
    }
    object.attach_all(&plan.target.binary, plan.target.pid, &functions)?;
    Ok(Some(object))
}

/// True while the process exists (and is not a zombie).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}
