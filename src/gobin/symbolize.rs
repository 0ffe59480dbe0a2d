//! Program counters to functions, files and lines, inlined calls included,
//! from a Go binary's own tables (`.gopclntab` and the inline trees in
//! `go:func.*`): what the Go runtime's tracebacks and `runtime.CallersFrames`
//! print, for stripped binaries too, with no DWARF.
//!
//! API (other modules and helpers code against these names):
//! * [`Symbolizer::new`] over an opened [`GoBinary`];
//! * [`Symbolizer::frames`]: every logical frame at a pc, innermost first,
//!   the physical function last ([`Frame::inlined`] false);
//! * [`Symbolizer::frame`]: the innermost logical frame only;
//! * [`Symbolizer::func`]: the physical function holding a pc ([`Func`]:
//!   name, entry, flags, SP delta for unwinding, PCDATA/FUNCDATA);
//! * [`Symbolizer::is_wrapper`]: whether a frame is compiler-generated
//!   glue the runtime leaves out of tracebacks.
//!
//! Addresses are link-time addresses (what `go tool nm` prints): subtract a
//! PIE process's load bias first. A return address stands for the call
//! before it: look up `ret - 1` (the runtime does the same).
//!
//! Facts, from the runtime sources (`symtab.go`, `symtabinl.go`) of Go 1.19
//! through 1.27, checked against `go tool addr2line` over the corpus:
//! * an inlined call is found through PCDATA table 2 (`_PCDATA_InlTreeIndex`)
//!   at the pc: an index into the function's inline tree, FUNCDATA 3
//!   (`_FUNCDATA_InlTree`), at `moduledata.gofunc` plus the FUNCDATA offset;
//! * an inline-tree entry names the callee and the offset from the physical
//!   function's entry of an instruction at the call site (`parentPc`); the
//!   file and line of every logical frame come from the physical function's
//!   file and line tables at that frame's pc. Entries are 20 bytes up to
//!   Go 1.19 (`parent` i16, `funcID`, pad, `file`, `line`, `func_` name
//!   offset, `parentPc`) and 16 from Go 1.20 (`funcID`, 3 pad bytes,
//!   `nameOff`, `parentPc`, `startLine`);
//! * `moduledata.gofunc` is word 38 of `runtime.moduledata` in Go 1.18 and
//!   1.19, 40 from Go 1.20 (which added `covctrs, ecovctrs`), 43 from Go 1.27
//!   (`typedesclen`, `itaboffset`, `itabsize`);
//! * FuncIDs are renumbered between releases; `FuncIDWrapper` follows
//!   `FuncID_systemstack_switch` in every release (so it is read off the
//!   binary's own `runtime.systemstack_switch`).

use super::GoBinary;
use super::functab::{FLAG_ASM, FLAG_SPWRITE, FLAG_TOPFRAME, FuncRec, FuncTab};
use super::types::GoRelease;

/// `_PCDATA_InlTreeIndex`, `_FUNCDATA_InlTree`, `_FUNCDATA_ArgInfo`,
/// `_FUNCDATA_ArgLiveInfo`, `_PCDATA_ArgLiveIndex` (unchanged since Go 1.17).
pub const PCDATA_INL_TREE_INDEX: u32 = 2;
pub const PCDATA_ARG_LIVE_INDEX: u32 = 3;
pub const FUNCDATA_INL_TREE: u8 = 3;
pub const FUNCDATA_ARG_INFO: u8 = 5;
pub const FUNCDATA_ARG_LIVE_INFO: u8 = 6;
/// Deepest chain of inlined calls followed at one pc (the compiler's own
/// inlining budget keeps real chains far shorter; a cycle in a corrupt tree
/// stops here).
const MAX_INLINE_DEPTH: usize = 256;

/// Why a binary cannot be symbolized.
#[derive(Debug, thiserror::Error)]
pub enum SymbolizeError {
    #[error("{path}: no usable function table: {why}")]
    Pclntab { path: String, why: String },
    #[error("{path}: cannot find moduledata.gofunc (inline trees): {why}")]
    Gofunc { path: String, why: String },
}

/// One logical frame: a function as the source has it, inlined or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'b> {
    /// As the runtime names it: `main.(*T).m`, `net/http.HandlerFunc.ServeHTTP`.
    pub function: &'b str,
    /// `?` when the table has none (the runtime prints `?` too).
    pub file: &'b str,
    /// 0 when unknown.
    pub line: u32,
    /// Line of the function's `func` keyword (Go 1.20+ tables; pprof's
    /// `Function.start_line`).
    pub start_line: Option<u32>,
    /// True for a call the compiler inlined into [`Frame::entry`]'s function.
    pub inlined: bool,
    /// The pc this frame was resolved at: the looked-up pc for the innermost
    /// frame, the call site inside the physical function for the callers of
    /// inlined calls (the runtime's logical pc; `pc + 1` is what
    /// `runtime.Callers` reports for it).
    pub pc: u64,
    /// Entry of the physical function.
    pub entry: u64,
    /// The frame's FuncID (this binary's numbering).
    pub func_id: u8,
}

/// The physical function holding a pc.
#[derive(Debug, Clone, Copy)]
pub struct Func<'s, 'b> {
    sym: &'s Symbolizer<'b>,
    rec: FuncRec,
}

impl<'b> Func<'_, 'b> {
    pub fn name(&self) -> &'b str {
        self.sym.ft.name(self.rec.name_off).unwrap_or("?")
    }
    pub fn entry(&self) -> u64 {
        self.rec.entry
    }
    /// Entry of the next function.
    pub fn end(&self) -> u64 {
        self.rec.end
    }
    pub fn func_id(&self) -> u8 {
        self.rec.func_id
    }
    /// The stack ends at this function (`runtime.goexit`, `runtime.mstart`).
    pub fn is_top_frame(&self) -> bool {
        self.rec.flag & FLAG_TOPFRAME != 0
    }
    /// The function writes SP arbitrarily: unwinding cannot go past it.
    pub fn writes_sp(&self) -> bool {
        self.rec.flag & FLAG_SPWRITE != 0
    }
    pub fn is_asm(&self) -> bool {
        self.rec.flag & FLAG_ASM != 0
    }
    /// Bytes of arguments and results on the stack (`_func.args`).
    pub fn args_size(&self) -> i32 {
        self.rec.args
    }
    /// How far SP is below the frame's top at `pc` (pclntab's `pcsp`): the
    /// caller's SP is `sp + sp_delta + ptr_size` on amd64.
    pub fn sp_delta(&self, pc: u64) -> Option<i32> {
        if pc >= self.rec.end {
            return None;
        }
        self.sym.ft.pcvalue(&self.rec, self.rec.pcsp, pc)
    }
    /// File and line at `pc` in this function's own tables.
    pub fn file_line(&self, pc: u64) -> (&'b str, u32) {
        let ft = &self.sym.ft;
        let line = ft.pcvalue(&self.rec, self.rec.pcln, pc);
        let file = ft
            .pcvalue(&self.rec, self.rec.pcfile, pc)
            .and_then(|n| ft.file(&self.rec, n));
        match (file, line.and_then(|l| u32::try_from(l).ok())) {
            (Some(file), Some(line)) => (file, line),
            _ => ("?", 0),
        }
    }
    /// The value of PCDATA table `table` at `pc`.
    pub fn pcdata(&self, table: u32, pc: u64) -> Option<i32> {
        self.sym.ft.pcdata(&self.rec, table, pc)
    }
    /// Link-time address of FUNCDATA `i`.
    pub fn funcdata(&self, i: u8) -> Option<u64> {
        let off = self.sym.ft.funcdata_off(&self.rec, i)?;
        self.sym.gofunc.checked_add(u64::from(off))
    }
}

/// Resolves pcs of one binary.
pub struct Symbolizer<'b> {
    bin: &'b GoBinary,
    ft: FuncTab<'b>,
    gofunc: u64,
    /// Inline-tree entry size for this table format.
    inl_entry: u64,
    wrapper_id: Option<u8>,
}

impl std::fmt::Debug for Symbolizer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Symbolizer")
            .field("binary", &self.bin.path())
            .field("gofunc", &format_args!("{:#x}", self.gofunc))
            .finish_non_exhaustive()
    }
}

/// Word indexes `gofunc` may have in `runtime.moduledata`: by release when
/// the build info names a known one, every Go 1.20+ layout otherwise.
fn gofunc_words(release: Option<GoRelease>, go118_table: bool) -> Vec<usize> {
    let r = |minor| GoRelease { major: 1, minor };
    match release {
        // Go 1.18 and 1.19 tables.
        _ if go118_table => vec![38],
        Some(v) if v >= r(20) && v < r(27) => vec![40],
        Some(v) if v == r(27) => vec![43],
        _ => vec![40, 43],
    }
}

impl<'b> Symbolizer<'b> {
    pub fn new(bin: &'b GoBinary) -> Result<Symbolizer<'b>, SymbolizeError> {
        let path = bin.path().display().to_string();
        let pcln_err = |why: String| SymbolizeError::Pclntab {
            path: path.clone(),
            why,
        };
        let loc = bin.pclntab.as_ref().map_err(|e| pcln_err(e.clone()))?;
        let tab = loc
            .bytes(bin.data())
            .ok_or_else(|| pcln_err("pclntab outside the file".into()))?;
        // The text start: the first function's address (resolved by GoBinary,
        // Go 1.26's zero header included) minus its offset in the table.
        let functions = bin.function_table().map_err(|e| pcln_err(e.to_string()))?;
        let probe = FuncTab::new(tab, loc.header.words, 0).map_err(pcln_err)?;
        let first_off = probe
            .record(0)
            .map(|r| r.entry)
            .ok_or_else(|| pcln_err("pclntab function 0".into()))?;
        let text_start = functions
            .first()
            .and_then(|f| f.address.checked_sub(first_off))
            .ok_or_else(|| pcln_err("pclntab text start".into()))?;
        let ft = probe.with_text_start(text_start);
        let go118 = ft.version == super::PclntabVersion::Go118;
        let gofunc_err = |why: String| SymbolizeError::Gofunc {
            path: path.clone(),
            why,
        };
        let release = GoRelease::parse(&bin.build_info().go_version);
        let md = bin.moduledata_address().map_err(gofunc_err)?;
        let words = bin.layout.words;
        let ps = u64::from(words.ptr_size);
        let word = |i: usize| {
            md.checked_add(ps * i as u64)
                .and_then(|at| bin.layout.read_vaddr(bin.data(), at, ps))
                .and_then(|b| words.word(b, 0))
        };
        let inl_entry = if go118 { 20 } else { 16 };
        // Every layout the release may have; each candidate must decode the
        // inline trees of the binary's functions, and exactly one may.
        let mut good = Vec::new();
        let mut why = Vec::new();
        for at in gofunc_words(release, go118) {
            let (Some(rodata), Some(gofunc)) = (word(at - 1), word(at)) else {
                why.push(format!("moduledata at {md:#x} is cut short"));
                continue;
            };
            // `rodata` precedes `gofunc` in the same read-only data.
            if gofunc < rodata || bin.layout.segment_of(gofunc).is_none() {
                why.push(format!(
                    "word {at} ({gofunc:#x}) is not in the binary's read-only data"
                ));
                continue;
            }
            let candidate = Symbolizer {
                bin,
                ft,
                gofunc,
                inl_entry,
                wrapper_id: None,
            };
            match candidate.check_inline_trees() {
                Ok(()) => good.push(gofunc),
                Err(e) => why.push(format!("word {at}: {e}")),
            }
        }
        let gofunc = match good.as_slice() {
            [g] => *g,
            [] => return Err(gofunc_err(why.join("; "))),
            _ => return Err(gofunc_err("more than one moduledata word fits".into())),
        };
        let mut sym = Symbolizer {
            bin,
            ft,
            gofunc,
            inl_entry,
            wrapper_id: None,
        };
        sym.wrapper_id = sym.find_wrapper_id();
        Ok(sym)
    }

    /// Check `gofunc` against the binary: the inline trees of the first
    /// functions that have one (up to 64) decode to callee names in the
    /// name table and call sites inside their functions.
    fn check_inline_trees(&self) -> Result<(), String> {
        let mut checked = 0;
        for i in 0..self.ft.nfunc {
            let Some(rec) = self.ft.record(i) else {
                continue;
            };
            let f = Func { sym: self, rec };
            let Some(tree) = f.funcdata(FUNCDATA_INL_TREE) else {
                continue;
            };
            if self.bin.layout.segment_of(tree).is_none() {
                return Err(format!(
                    "{}'s inline tree at {tree:#x} is outside the file",
                    f.name()
                ));
            }
            // The first entry always exists where a tree does.
            let Some((name, _, parent_pc, _)) = self.inlined_call(&f, 0) else {
                return Err(format!("{}'s inline tree does not decode", f.name()));
            };
            let size = f.end() - f.entry();
            if name.is_empty() || u64::try_from(parent_pc).map_or(true, |p| p >= size) {
                return Err(format!(
                    "{}'s inline tree names {name:?} at +{parent_pc}",
                    f.name()
                ));
            }
            checked += 1;
            if checked == 64 {
                break;
            }
        }
        if checked == 0 {
            return Err("no function has an inline tree".into());
        }
        Ok(())
    }

    /// `FuncIDWrapper`: one past `runtime.systemstack_switch`'s FuncID,
    /// confirmed by `runtime.systemstack` sitting one before it.
    fn find_wrapper_id(&self) -> Option<u8> {
        let id = |name: &str| {
            let f = self.bin.function(name).ok()??;
            Some(self.func(f.address)?.func_id())
        };
        let switch = id("runtime.systemstack_switch")?;
        (id("runtime.systemstack")?.checked_add(1) == Some(switch))
            .then(|| switch.checked_add(1))
            .flatten()
    }

    pub fn binary(&self) -> &'b GoBinary {
        self.bin
    }

    /// Start of the text the function table covers.
    pub fn text_start(&self) -> u64 {
        self.ft.text_start
    }

    /// The physical function holding `pc`.
    pub fn func(&self, pc: u64) -> Option<Func<'_, 'b>> {
        Some(Func {
            sym: self,
            rec: self.ft.find(pc)?,
        })
    }

    /// Whether a FuncID is `FuncIDWrapper` (`None` when the binary's
    /// numbering could not be confirmed).
    pub fn is_wrapper(&self, func_id: u8) -> Option<bool> {
        self.wrapper_id.map(|w| w == func_id)
    }

    /// The inline-tree entry `ix` of `f`: (callee name, FuncID, parentPc, startLine).
    fn inlined_call(&self, f: &Func<'_, 'b>, ix: i32) -> Option<(&'b str, u8, i32, Option<u32>)> {
        let tree = f.funcdata(FUNCDATA_INL_TREE)?;
        let at = tree.checked_add(u64::try_from(ix).ok()?.checked_mul(self.inl_entry)?)?;
        let b = self
            .bin
            .layout
            .read_vaddr(self.bin.data(), at, self.inl_entry)?;
        let i32_at = |o: usize| Some(i32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?));
        if self.inl_entry == 20 {
            // Go 1.18/1.19: parent i16, funcID, pad, file, line, func_, parentPc.
            Some((self.ft.name(i32_at(12)?)?, b[2], i32_at(16)?, None))
        } else {
            let start = u32::try_from(i32_at(12)?).ok();
            Some((self.ft.name(i32_at(4)?)?, b[0], i32_at(8)?, start))
        }
    }

    /// Every logical frame at `pc`, innermost first; the last is the
    /// physical function. Empty when no function holds `pc`.
    pub fn frames(&self, pc: u64) -> Vec<Frame<'b>> {
        let mut out = Vec::new();
        self.walk_frames(pc, |f| {
            out.push(f);
            true
        });
        out
    }

    /// The innermost logical frame at `pc` (what `runtime.CallersFrames`
    /// gives for a one-pc list).
    pub fn frame(&self, pc: u64) -> Option<Frame<'b>> {
        let mut first = None;
        self.walk_frames(pc, |f| {
            first = Some(f);
            false
        });
        first
    }

    /// Visit the logical frames at `pc`, innermost first, while `visit` says so.
    pub fn walk_frames(&self, pc: u64, mut visit: impl FnMut(Frame<'b>) -> bool) {
        let Some(f) = self.func(pc) else { return };
        let mut at = pc;
        for _ in 0..MAX_INLINE_DEPTH {
            let (file, line) = f.file_line(at);
            let ix = f.pcdata(PCDATA_INL_TREE_INDEX, at).unwrap_or(-1);
            let inl = if ix >= 0 {
                self.inlined_call(&f, ix)
            } else {
                None
            };
            let Some((name, func_id, parent_pc, start_line)) = inl else {
                visit(Frame {
                    function: f.name(),
                    file,
                    line,
                    start_line: f.rec.start_line.and_then(|l| u32::try_from(l).ok()),
                    inlined: false,
                    pc: at,
                    entry: f.entry(),
                    func_id: f.func_id(),
                });
                return;
            };
            let frame = Frame {
                function: name,
                file,
                line,
                start_line,
                inlined: true,
                pc: at,
                entry: f.entry(),
                func_id,
            };
            if !visit(frame) {
                return;
            }
            let Some(next) = u64::try_from(parent_pc)
                .ok()
                .and_then(|p| f.entry().checked_add(p))
                .filter(|&n| n < f.end())
            else {
                return;
            };
            at = next;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gofunc_word_by_release() {
        let r = |minor| Some(GoRelease { major: 1, minor });
        assert_eq!(gofunc_words(r(19), true), [38]);
        assert_eq!(gofunc_words(r(20), false), [40]);
        assert_eq!(gofunc_words(r(26), false), [40]);
        assert_eq!(gofunc_words(r(27), false), [43]);
        assert_eq!(gofunc_words(r(99), false), [40, 43]);
        assert_eq!(gofunc_words(None, false), [40, 43]);
    }
}
