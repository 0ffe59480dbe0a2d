//! Entry point of the `runtime_memory` cargo-fuzz target: the readers of
//! heap buckets, `g` records and goroutine stacks, and everything built on
//! what they return (logical frames, argument words, the dump text, the
//! pprof profiles), fed arbitrary memory through [`RemoteMemory`]. They must
//! return, with errors, never panic or loop without end. Not part of
//! goprobe's API.
//!
//! The input is mapped at [`BASE`] (and, shifted by one word, at
//! [`BASE2`], so pointers into either look plausible). The globals sit at
//! fixed places in it: `mbuckets` at `BASE`, `mProfCycle` at `BASE + 8`,
//! the `allgs` slice header at `BASE + 16`. Code addresses come from a real
//! binary (its symbolizer and struct layouts), so stacks can unwind through
//! real functions when the input happens to hold their pcs.

use super::Runtime;
use super::goroutines::{self, G_SCAN};
use super::heap::{self, Addrs};
use super::snapshot::{Goroutine, StackState};
use super::{dump, profile, stacks};
use crate::remote::{BufferMemory, RemoteMemory};

pub const BASE: u64 = 0x10_0000;
pub const BASE2: u64 = 0x8000_0000;

/// Run every reader over `data` as target memory, with `rt`'s binary.
pub fn readers(rt: &Runtime<'_>, data: &[u8]) {
    let mut mem = BufferMemory::new();
    mem.map(BASE, data.to_vec());
    mem.map(BASE2, data.get(8..).unwrap_or_default().to_vec());
    let is_code = |pc: u64| rt.is_code(pc);
    let mut out = Vec::new();
    if let Ok(l) = rt.bucket_layout() {
        let at = Addrs {
            mbuckets: BASE,
            mprof_cycle: BASE + 8,
        };
        let _ = heap::check_list(&mem, l, mem.u64(BASE).unwrap_or(0), &is_code);
        if let Ok((p, _, _)) = heap::read_consistent(&mem, l, at, &is_code, 3) {
            let rate = mem.u64(BASE + 8).map_or(0, |v| v as i64);
            let when = profile::When {
                time_nanos: 0,
                duration_nanos: 0,
            };
            let _ = profile::write_heap(&mut out, rt, &p.records, rate, &[], "", when);
        }
    }
    for n in [1, 8, 40] {
        let _ = goroutines::read_strings(&mem, "fuzz", BASE + 24, n);
    }
    let Ok(l) = rt.g_layout() else { return };
    let Ok(addrs) = goroutines::read_allgs(&mem, BASE + 16) else {
        return;
    };
    // Registers for any "running" goroutine, from the input too.
    let regs = (
        mem.u64(BASE + 40).unwrap_or(0),
        mem.u64(BASE + 48).unwrap_or(0),
        0,
    );
    let reads = goroutines::read_all(
        &mem,
        l,
        &rt.sym,
        rt.bias,
        &addrs,
        &|s| s == 6,
        &|s| s == 2,
        &|_| Some(regs),
    );
    let Ok(reads) = reads else { return };
    let panics = stacks::PanicIds::of(rt);
    let gs: Vec<Goroutine> = reads
        .iter()
        .map(|r| {
            let mut frames = stacks::of_walk(rt, panics, r.walk.as_ref());
            if let Some(st) = &r.stack {
                for f in frames.iter_mut() {
                    f.args = stacks::args_text(rt, f, &|a| st.word(a));
                }
            }
            Goroutine {
                id: r.g.goid,
                addr: r.g.addr,
                status: "waiting".into(),
                scan: r.g.status & G_SCAN != 0,
                wait_reason: Some("chan receive".into()),
                waited_ns: Some(r.g.wait_since),
                parent_id: r.g.parent_goid,
                gopc: r.g.gopc,
                startpc: r.g.startpc,
                locked_to_thread: r.g.locked_m != 0,
                system: false,
                thread: None,
                frames,
                stack: match &r.walk {
                    None => StackState::Running,
                    Some(_) => StackState::Complete,
                },
                torn: r.torn,
            }
        })
        .collect();
    let _ = dump::write(&mut out, rt, &gs, true);
    let _ = dump::write(&mut out, rt, &gs, false);
    let when = profile::When {
        time_nanos: 0,
        duration_nanos: 0,
    };
    let _ = profile::write_goroutines(&mut out, rt, &gs, true, &[], "", when);
}
