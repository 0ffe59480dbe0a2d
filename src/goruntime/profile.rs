//! pprof profiles of a snapshot, built as `runtime/pprof` builds its own so
//! `go tool pprof` reads them the same way:
//! * heap (`/debug/pprof/heap`): sample types `alloc_objects`/count,
//!   `alloc_space`/bytes, `inuse_objects`/count, `inuse_space`/bytes, period
//!   type space/bytes with the sampling rate as the period, values scaled by
//!   `scaleHeapSample`, a `bytes` label with the average object size, the
//!   runtime's allocator frames at the top of each stack hidden;
//! * goroutine (`/debug/pprof/goroutine`): one sample per distinct stack,
//!   its count the goroutines on it, runtime frames kept.
//!
//! Locations follow `runtime/pprof`'s rules: one per run of logical pcs of
//! the same physical function, its lines the inlined calls innermost first,
//! its address the call's pc; functions are keyed by name. Every location
//! is symbolized from the binary's own tables, so the profile needs no
//! binary to be read.

use std::collections::HashMap;
use std::io::Write;

use flate2::Compression;
use flate2::write::GzEncoder;
use prost::Message;

use super::Runtime;
use super::heap::Record;
use super::snapshot::{Goroutine, StackState};
use super::stacks::callers_pcs;
use crate::export::pprof::proto;
use crate::remote::Mapping;

/// The innermost frame at one pc, as `runtime.CallersFrames` gives it for
/// a one-pc list.
#[derive(Debug, Clone)]
struct PcFrame {
    function: String,
    file: String,
    line: u32,
    start_line: Option<u32>,
    /// Entry of the physical function (runtime address; 0 when unknown).
    entry: u64,
    inlined: bool,
}

struct Builder<'r, 'b> {
    rt: &'r Runtime<'b>,
    p: proto::Profile,
    strings: HashMap<String, i64>,
    funcs: HashMap<String, u64>,
    /// First pc of a location -> (id, how many pcs it covers).
    locs: HashMap<u64, (u64, usize)>,
    /// Executable mappings, with their ids.
    maps: Vec<(u64, u64, u64)>,
}

impl<'r, 'b> Builder<'r, 'b> {
    fn new(rt: &'r Runtime<'b>, maps: &[Mapping], exe: &str) -> Builder<'r, 'b> {
        let mut b = Builder {
            rt,
            p: proto::Profile::default(),
            strings: HashMap::new(),
            funcs: HashMap::new(),
            locs: HashMap::new(),
            maps: Vec::new(),
        };
        b.string("");
        let build_id = build_id(rt);
        for m in maps.iter().filter(|m| m.executable) {
            let id = b.p.mapping.len() as u64 + 1;
            let main = m.path == exe;
            let mapping = proto::Mapping {
                id,
                memory_start: m.start,
                memory_limit: m.end,
                file_offset: m.offset,
                filename: b.string(&m.path),
                build_id: if main { b.string(&build_id) } else { 0 },
                has_functions: main,
                has_filenames: main,
                has_line_numbers: main,
                has_inline_frames: main,
            };
            b.p.mapping.push(mapping);
            b.maps.push((m.start, m.end, id));
        }
        b
    }

    fn string(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.strings.get(s) {
            return i;
        }
        let i = self.p.string_table.len() as i64;
        self.p.string_table.push(s.to_string());
        self.strings.insert(s.to_string(), i);
        i
    }

    fn value_type(&mut self, t: &str, unit: &str) -> proto::ValueType {
        proto::ValueType {
            r#type: self.string(t),
            unit: self.string(unit),
        }
    }

    /// The frame at return pc `pc` (looked up at `pc - 1`).
    fn frame(&self, pc: u64) -> Option<PcFrame> {
        let link = pc.checked_sub(1)?.checked_sub(self.rt.bias)?;
        let f = self.rt.sym.frame(link)?;
        Some(PcFrame {
            function: f.function.to_string(),
            file: f.file.to_string(),
            line: f.line,
            start_line: f.start_line,
            entry: f.entry + self.rt.bias,
            inlined: f.inlined,
        })
    }

    fn function(&mut self, f: &PcFrame) -> u64 {
        if let Some(&id) = self.funcs.get(&f.function) {
            return id;
        }
        let id = self.p.function.len() as u64 + 1;
        let name = self.string(&f.function);
        let filename = self.string(&f.file);
        self.p.function.push(proto::Function {
            id,
            name,
            system_name: name,
            filename,
            start_line: i64::from(f.start_line.unwrap_or(0)),
        });
        self.funcs.insert(f.function.clone(), id);
        id
    }

    /// Write out the location of the pcs in `deck` (frames innermost first).
    fn emit(&mut self, deck: &mut Vec<(u64, Option<PcFrame>)>) -> Option<u64> {
        if deck.is_empty() {
            return None;
        }
        let first = deck[0].0;
        let id = self.p.location.len() as u64 + 1;
        let mut lines = Vec::new();
        for (_, f) in deck.iter() {
            let line = match f {
                Some(f) => proto::Line {
                    function_id: self.function(f),
                    line: i64::from(f.line),
                    column: 0,
                },
                None => continue,
            };
            lines.push(line);
        }
        let mapping_id = self
            .maps
            .iter()
            .find(|(s, e, _)| (*s..*e).contains(&first))
            .map_or(0, |m| m.2);
        self.p.location.push(proto::Location {
            id,
            mapping_id,
            address: first.saturating_sub(1),
            line: lines,
            is_folded: false,
        });
        self.locs.insert(first, (id, deck.len()));
        deck.clear();
        Some(id)
    }

    /// `appendLocsForStack`: location ids for return pcs, innermost first.
    fn locations(&mut self, stk: &[u64]) -> Vec<u64> {
        let stk = self.expand_final_inline_frame(stk);
        let mut out = Vec::new();
        let mut deck: Vec<(u64, Option<PcFrame>)> = Vec::new();
        let mut i = 0;
        while i < stk.len() {
            let pc = stk[i];
            if let Some(&(id, n)) = self.locs.get(&pc) {
                // A known location, unless this pc continues the current deck.
                if !deck.is_empty() {
                    let f = self.frame(pc);
                    if can_add(&deck, f.as_ref()) {
                        deck.push((pc, f));
                        i += 1;
                        continue;
                    }
                }
                out.extend(self.emit(&mut deck));
                out.push(id);
                i += n.max(1);
                continue;
            }
            let f = self.frame(pc);
            if f.as_ref().is_some_and(|f| f.function == "runtime.goexit") {
                out.extend(self.emit(&mut deck));
                i += 1;
                continue;
            }
            if deck.is_empty() || can_add(&deck, f.as_ref()) {
                deck.push((pc, f));
                i += 1;
                continue;
            }
            out.extend(self.emit(&mut deck));
            // The location just written may start at this very pc (a
            // recursive call): reuse it.
            if let Some(&(id, n)) = self.locs.get(&pc) {
                out.push(id);
                i += n.max(1);
                continue;
            }
            deck.push((pc, f));
            i += 1;
        }
        out.extend(self.emit(&mut deck));
        out
    }

    /// `runtime_expandFinalInlineFrame`: a stack cut in the middle of inlined
    /// calls gets the callers of the last pc back.
    fn expand_final_inline_frame(&self, stk: &[u64]) -> Vec<u64> {
        let mut out = stk.to_vec();
        let Some(&last) = stk.last() else { return out };
        let Some(link) = last
            .checked_sub(1)
            .and_then(|p| p.checked_sub(self.rt.bias))
        else {
            return out;
        };
        let frames = self.rt.sym.frames(link);
        if frames.len() < 2 {
            return out;
        }
        out.pop();
        let mut callee = 0u8;
        for f in frames {
            let wrapper = self.rt.sym.is_wrapper(f.func_id) == Some(true);
            let panicky = ["runtime.gopanic", "runtime.sigpanic", "runtime.panicwrap"]
                .iter()
                .any(|n| self.rt.func_id(n) == Some(callee));
            if !wrapper || panicky {
                out.push(f.pc + self.rt.bias + 1);
            }
            callee = f.func_id;
        }
        out
    }

    fn sample(&mut self, locs: Vec<u64>, value: Vec<i64>, label: Vec<proto::Label>) {
        self.p.sample.push(proto::Sample {
            location_id: locs,
            value,
            label,
        });
    }

    fn write(self, out: &mut dyn Write) -> std::io::Result<()> {
        let mut gz = GzEncoder::new(out, Compression::default());
        gz.write_all(&self.p.encode_to_vec())?;
        gz.finish()?;
        Ok(())
    }
}

/// `pcDeck.tryAdd`: a pc joins the deck when the deck's last frame is an
/// inlined call in the same physical function (and not a recursion).
fn can_add(deck: &[(u64, Option<PcFrame>)], f: Option<&PcFrame>) -> bool {
    let (Some((_, Some(last))), Some(f)) = (deck.last(), f) else {
        return false;
    };
    last.inlined
        && last.entry != 0
        && f.entry != 0
        && last.entry == f.entry
        && last.function != f.function
}

/// The GNU build ID of the binary as hex (what `runtime/pprof` records), or empty.
fn build_id(rt: &Runtime<'_>) -> String {
    use object::Object;
    object::File::parse(rt.bin.data())
        .ok()
        .and_then(|f| {
            f.build_id()
                .ok()
                .flatten()
                .map(|id| id.iter().map(|b| format!("{b:02x}")).collect())
        })
        .unwrap_or_default()
}

/// `scaleHeapSample`: undo the sampling bias of an average object size at `rate`.
pub fn scale_heap_sample(count: i64, size: i64, rate: i64) -> (i64, i64) {
    if count == 0 || size == 0 {
        return (0, 0);
    }
    if rate <= 1 {
        return (count, size);
    }
    let avg = size as f64 / count as f64;
    let scale = 1.0 / (1.0 - (-avg / rate as f64).exp());
    ((count as f64 * scale) as i64, (size as f64 * scale) as i64)
}

/// What a profile says about when it was taken.
#[derive(Debug, Clone, Copy)]
pub struct When {
    /// Wall-clock time of the read, ns since the epoch.
    pub time_nanos: i64,
    /// How long the read took.
    pub duration_nanos: i64,
}

/// Write the heap profile (gzipped profile.proto) of `records` at `rate`.
pub fn write_heap(
    out: &mut dyn Write,
    rt: &Runtime<'_>,
    records: &[Record],
    rate: i64,
    maps: &[Mapping],
    exe: &str,
    when: When,
) -> std::io::Result<()> {
    let mut b = Builder::new(rt, maps, exe);
    b.p.period_type = Some(b.value_type("space", "bytes"));
    b.p.period = rate;
    b.p.sample_type = vec![
        b.value_type("alloc_objects", "count"),
        b.value_type("alloc_space", "bytes"),
        b.value_type("inuse_objects", "count"),
        b.value_type("inuse_space", "bytes"),
    ];
    b.p.time_nanos = when.time_nanos;
    b.p.duration_nanos = when.duration_nanos;
    let bytes_key = b.string("bytes");
    for r in records {
        let c = r.counts;
        let mut locs = Vec::new();
        for hide in [true, false] {
            let mut stk: &[u64] = &r.stack;
            if hide {
                // The allocator's own frames at the top: from the first pc
                // outside package runtime (looked up at the pc itself, as
                // `runtime.FuncForPC` does).
                let skip = stk
                    .iter()
                    .position(|&pc| {
                        let name = pc
                            .checked_sub(rt.bias)
                            .and_then(|l| rt.sym.frame(l))
                            .map(|f| f.function);
                        !name.is_some_and(|n| {
                            n.starts_with("runtime.") || n.starts_with("internal/runtime/")
                        })
                    })
                    .unwrap_or(stk.len());
                stk = &stk[skip..];
            }
            locs = b.locations(stk);
            if !locs.is_empty() {
                break;
            }
        }
        let (ao, ab) = scale_heap_sample(c.allocs as i64, c.alloc_bytes as i64, rate);
        let inuse_objects = (c.allocs as i64).wrapping_sub(c.frees as i64);
        let inuse_bytes = (c.alloc_bytes as i64).wrapping_sub(c.free_bytes as i64);
        let (io, ib) = scale_heap_sample(inuse_objects, inuse_bytes, rate);
        let mut label = Vec::new();
        if c.allocs > 0 {
            let block = c.alloc_bytes as i64 / c.allocs as i64;
            if block != 0 {
                label.push(proto::Label {
                    key: bytes_key,
                    str: 0,
                    num: block,
                    num_unit: 0,
                });
            }
        }
        b.sample(locs, vec![ao, ab, io, ib], label);
    }
    b.write(out)
}

/// The stack a goroutine profile records: `runtime.Callers`-style pcs, at
/// most `depth` of them.
pub fn goroutine_stack(g: &Goroutine, depth: usize) -> Vec<u64> {
    let mut pcs = callers_pcs(&g.frames);
    pcs.truncate(depth);
    pcs
}

/// Frames a goroutine profile keeps per stack: 32 up to Go 1.22, the
/// default `profstackdepth` (128) from Go 1.23.
pub fn goroutine_depth(rt: &Runtime<'_>) -> usize {
    match rt.release {
        Some(r)
            if r < (crate::gobin::types::GoRelease {
                major: 1,
                minor: 23,
            }) =>
        {
            32
        }
        _ => 128,
    }
}

/// Write the goroutine profile of the goroutines the runtime's own profile
/// would count (user goroutines); `all` adds the runtime's.
#[allow(clippy::too_many_arguments)]
pub fn write_goroutines(
    out: &mut dyn Write,
    rt: &Runtime<'_>,
    gs: &[Goroutine],
    all: bool,
    maps: &[Mapping],
    exe: &str,
    when: When,
) -> std::io::Result<()> {
    let mut b = Builder::new(rt, maps, exe);
    b.p.period_type = Some(b.value_type("goroutine", "count"));
    b.p.period = 1;
    b.p.sample_type = vec![b.value_type("goroutine", "count")];
    b.p.time_nanos = when.time_nanos;
    b.p.duration_nanos = when.duration_nanos;
    let depth = goroutine_depth(rt);
    let mut counts: Vec<(Vec<u64>, i64)> = Vec::new();
    let mut index: HashMap<Vec<u64>, usize> = HashMap::new();
    let mut running = 0i64;
    for g in gs.iter().filter(|g| all || !g.system) {
        if g.stack == StackState::Running && g.frames.is_empty() {
            running += 1;
            continue;
        }
        let stk = goroutine_stack(g, depth);
        match index.get(&stk) {
            Some(&i) => counts[i].1 += 1,
            None => {
                index.insert(stk.clone(), counts.len());
                counts.push((stk, 1));
            }
        }
    }
    counts.sort();
    for (stk, n) in counts {
        let locs = b.locations(&stk);
        b.sample(locs, vec![n], Vec::new());
    }
    if running > 0 {
        // Goroutines on a thread at the moment of an unfrozen read have no
        // stack to show: one sample says how many.
        let f = PcFrame {
            function: "(running on another thread: stack unavailable without --freeze)".into(),
            file: String::new(),
            line: 0,
            start_line: None,
            entry: 0,
            inlined: false,
        };
        let function_id = b.function(&f);
        let id = b.p.location.len() as u64 + 1;
        b.p.location.push(proto::Location {
            id,
            mapping_id: 0,
            address: 0,
            line: vec![proto::Line {
                function_id,
                line: 0,
                column: 0,
            }],
            is_folded: false,
        });
        b.sample(vec![id], vec![running], Vec::new());
    }
    b.write(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_matches_runtime_pprof() {
        assert_eq!(scale_heap_sample(0, 10, 512 << 10), (0, 0));
        assert_eq!(scale_heap_sample(10, 100, 1), (10, 100));
        // One 64 KiB object sampled at 512 KiB stands for 1/(1-e^-1/8) = 8.51
        // objects (the values Go computes for the same input).
        assert_eq!(scale_heap_sample(1, 64 << 10, 512 << 10), (8, 557_738));
    }
}
