//! The per-function records behind pclntab's function table (`runtime._func`)
//! and the pc-value tables they point at: line, file, SP delta and PCDATA
//! tables, each a stream of (value delta, pc delta) varint pairs.
//!
//! Formats, from the runtime's `symtab.go` of each release:
//! * the table header (`pcHeader`, Go 1.18+): magic, pad, quantum, pointer
//!   size, then the words `nfunc`, `nfiles`, `textStart`, and the offsets
//!   (from the header) of `funcnametab`, `cutab`, `filetab`, `pctab` and the
//!   function table;
//! * the function table: `nfunc + 1` pairs of `u32` (entry offset from the
//!   text start, `_func` offset from the function table);
//! * `_func` (Go 1.18, 1.19: magic `0xfffffff0`): `entryOff`, `nameOff`,
//!   `args`, `deferreturn`, `pcsp`, `pcfile`, `pcln`, `npcdata`, `cuOffset`
//!   (4 bytes each), then `funcID`, `flag`, a pad byte and `nfuncdata`; Go 1.20
//!   (magic `0xfffffff1`) put `startLine` (i32) before `funcID`. `npcdata`
//!   `u32` offsets into `pctab` follow, then `nfuncdata` `u32` offsets from
//!   `moduledata.gofunc` (`0xffffffff`: none);
//! * a pc-value table: starting at value -1 and pc = entry, a zig-zag
//!   uvarint value delta then a uvarint pc delta (times the quantum); a zero
//!   value delta after the first pair ends the table.
//!
//! Every read is bounds-checked: a malformed table gives `None`, never a panic.

use super::PclntabVersion;
use super::read::{Words, cstr_at, to_usize};

/// `funcFlag`/`abi.FuncFlag` bits (unchanged since Go 1.16).
pub const FLAG_TOPFRAME: u8 = 1 << 0;
pub const FLAG_SPWRITE: u8 = 1 << 1;
pub const FLAG_ASM: u8 = 1 << 2;

/// Most (value, pc) pairs read from one pc-value table: far above what a real
/// function has (one pair per instruction at worst), a bound on garbage.
const MAX_STEPS: usize = 1 << 20;

/// The function table of one binary, ready for look-ups by pc.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FuncTab<'d> {
    /// The whole pclntab, from its header.
    pub tab: &'d [u8],
    pub words: Words,
    pub version: PclntabVersion,
    pub nfunc: usize,
    /// Instruction size quantum (1 on amd64, 4 on arm64).
    pub quantum: u8,
    /// Resolved start of text (link-time address).
    pub text_start: u64,
    funcname_off: usize,
    cu_off: usize,
    filetab_off: usize,
    pctab_off: usize,
    functab_off: usize,
}

/// One `_func` record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FuncRec {
    /// Offset of the record in the pclntab.
    at: usize,
    pub entry: u64,
    /// Entry of the next function (or the end of text).
    pub end: u64,
    pub name_off: i32,
    pub args: i32,
    pub pcsp: u32,
    pub pcfile: u32,
    pub pcln: u32,
    pub npcdata: u32,
    pub cu_offset: u32,
    /// Go 1.20+.
    pub start_line: Option<i32>,
    pub func_id: u8,
    pub flag: u8,
    pub nfuncdata: u8,
}

impl<'d> FuncTab<'d> {
    /// Read the header of a Go 1.18+ table. `text_start` is the resolved text
    /// start (Go 1.26 leaves the header's zero).
    pub fn new(tab: &'d [u8], words: Words, text_start: u64) -> Result<FuncTab<'d>, String> {
        let magic = words.u32(tab, 0).ok_or("pclntab header")?;
        let version = match magic {
            super::pclntab::MAGIC_118 => PclntabVersion::Go118,
            super::pclntab::MAGIC_120 => PclntabVersion::Go120,
            other => {
                return Err(format!(
                    "pclntab magic {other:#x}: symbolization needs a Go 1.18 or later table"
                ));
            }
        };
        let quantum = *tab.get(6).ok_or("pclntab header")?;
        let word = |i: usize| -> Result<u64, String> {
            words
                .word_off(8, i)
                .and_then(|o| words.word(tab, o))
                .ok_or_else(|| "pclntab header".to_string())
        };
        let offset = |i: usize| -> Result<usize, String> {
            let v = word(i)?;
            to_usize(v)
                .filter(|&o| o <= tab.len())
                .ok_or_else(|| format!("pclntab header offset {v:#x}"))
        };
        let nfunc = to_usize(word(0)?).ok_or("pclntab function count")?;
        let ft = FuncTab {
            tab,
            words,
            version,
            nfunc,
            quantum,
            text_start,
            funcname_off: offset(3)?,
            cu_off: offset(4)?,
            filetab_off: offset(5)?,
            pctab_off: offset(6)?,
            functab_off: offset(7)?,
        };
        let pairs_end = nfunc
            .checked_mul(8)
            .and_then(|n| n.checked_add(4))
            .and_then(|n| n.checked_add(ft.functab_off));
        if nfunc == 0 || pairs_end.is_none_or(|e| e > tab.len()) {
            return Err(format!(
                "pclntab function table ({nfunc} functions) beyond the table"
            ));
        }
        Ok(ft)
    }

    /// The same table with function entries resolved against `text_start`.
    pub fn with_text_start(self, text_start: u64) -> FuncTab<'d> {
        FuncTab { text_start, ..self }
    }

    fn u32(&self, off: usize) -> Option<u32> {
        self.words.u32(self.tab, off)
    }

    /// Entry offset (from the text start) of function `i`; `i == nfunc` is the end of text.
    fn entry_off(&self, i: usize) -> Option<u32> {
        self.u32(self.functab_off.checked_add(i.checked_mul(8)?)?)
    }

    /// The function whose code holds `pc` (a link-time address).
    pub fn find(&self, pc: u64) -> Option<FuncRec> {
        let rel = u32::try_from(pc.checked_sub(self.text_start)?).ok()?;
        if rel >= self.entry_off(self.nfunc)? || rel < self.entry_off(0)? {
            return None;
        }
        // Largest i with entry_off(i) <= rel.
        let (mut lo, mut hi) = (0usize, self.nfunc);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if self.entry_off(mid)? <= rel {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        self.record(lo)
    }

    /// The record of function `i` of the table.
    pub fn record(&self, i: usize) -> Option<FuncRec> {
        if i >= self.nfunc {
            return None;
        }
        let pair = self.functab_off.checked_add(i.checked_mul(8)?)?;
        let entry_off = self.u32(pair)?;
        let funcoff = to_usize(u64::from(self.u32(pair.checked_add(4)?)?))?;
        let next_off = self.entry_off(i + 1)?;
        let at = self.functab_off.checked_add(funcoff)?;
        let f = |k: usize| self.u32(at.checked_add(4 * k)?);
        if f(0)? != entry_off || next_off < entry_off {
            return None;
        }
        let (start_line, tail) = match self.version {
            PclntabVersion::Go120 => (Some(f(9)? as i32), at.checked_add(40)?),
            _ => (None, at.checked_add(36)?),
        };
        let bytes = self.tab.get(tail..tail.checked_add(4)?)?;
        Some(FuncRec {
            at,
            entry: self.text_start.checked_add(u64::from(entry_off))?,
            end: self.text_start.checked_add(u64::from(next_off))?,
            name_off: f(1)? as i32,
            args: f(2)? as i32,
            pcsp: f(4)?,
            pcfile: f(5)?,
            pcln: f(6)?,
            npcdata: f(7)?,
            cu_offset: f(8)?,
            start_line,
            func_id: bytes[0],
            flag: bytes[1],
            nfuncdata: bytes[3],
        })
    }

    /// Offset of the `pcdata`/`funcdata` arrays after a record's fixed part.
    fn arrays_at(&self, f: &FuncRec) -> Option<usize> {
        f.at.checked_add(match self.version {
            PclntabVersion::Go120 => 44,
            _ => 40,
        })
    }

    /// A name from `funcnametab` (function names, inlined callees' names).
    pub fn name(&self, name_off: i32) -> Option<&'d str> {
        let at = self
            .funcname_off
            .checked_add(usize::try_from(name_off).ok()?)?;
        std::str::from_utf8(cstr_at(self.tab, at)?).ok()
    }

    /// The file of a function's `fileno` (a `pcfile` value): through the
    /// compilation unit's slice of `cutab` into `filetab`.
    pub fn file(&self, f: &FuncRec, fileno: i32) -> Option<&'d str> {
        let index = u64::from(f.cu_offset).checked_add(u64::try_from(fileno).ok()?)?;
        let at = self.cu_off.checked_add(to_usize(index.checked_mul(4)?)?)?;
        let file_off = self.u32(at)?;
        if file_off == u32::MAX {
            return None;
        }
        let at = self
            .filetab_off
            .checked_add(to_usize(u64::from(file_off))?)?;
        std::str::from_utf8(cstr_at(self.tab, at)?).ok()
    }

    /// The value of the pc-value table at `off` (in `pctab`) for `target`, or
    /// `None` when there is no table, it does not cover `target`, or it is malformed.
    pub fn pcvalue(&self, f: &FuncRec, off: u32, target: u64) -> Option<i32> {
        if off == 0 || target < f.entry {
            return None;
        }
        let mut p = self.pctab_off.checked_add(to_usize(u64::from(off))?)?;
        let mut pc = f.entry;
        let mut val: i32 = -1;
        for step in 0..MAX_STEPS {
            let (uvdelta, next) = varint32(self.tab, p)?;
            if uvdelta == 0 && step > 0 {
                return None;
            }
            let delta = (-((uvdelta & 1) as i32)) ^ ((uvdelta >> 1) as i32);
            val = val.wrapping_add(delta);
            let (pcdelta, next) = varint32(self.tab, next)?;
            p = next;
            pc = pc.checked_add(u64::from(pcdelta).checked_mul(u64::from(self.quantum))?)?;
            if target < pc {
                return Some(val);
            }
        }
        None
    }

    /// The start of PCDATA table `table` of a function, if it has one.
    pub fn pcdata_start(&self, f: &FuncRec, table: u32) -> Option<u32> {
        if table >= f.npcdata {
            return None;
        }
        let at = self
            .arrays_at(f)?
            .checked_add(to_usize(u64::from(table) * 4)?)?;
        self.u32(at).filter(|&o| o != 0)
    }

    /// PCDATA table `table`'s value at `target`.
    pub fn pcdata(&self, f: &FuncRec, table: u32, target: u64) -> Option<i32> {
        let off = self.pcdata_start(f, table)?;
        self.pcvalue(f, off, target)
    }

    /// FUNCDATA `i` of a function as an offset from `moduledata.gofunc`.
    pub fn funcdata_off(&self, f: &FuncRec, i: u8) -> Option<u32> {
        if i >= f.nfuncdata {
            return None;
        }
        let at = self
            .arrays_at(f)?
            .checked_add(to_usize(u64::from(f.npcdata) * 4)?)?
            .checked_add(usize::from(i) * 4)?;
        self.u32(at).filter(|&o| o != u32::MAX)
    }
}

/// A uvarint that must fit in 32 bits (the runtime's `readvarint`).
fn varint32(data: &[u8], mut off: usize) -> Option<(u32, usize)> {
    let mut v: u32 = 0;
    for shift in (0..35).step_by(7) {
        let b = *data.get(off)?;
        off += 1;
        v |= u32::from(b & 0x7f).checked_shl(shift)?;
        if b & 0x80 == 0 {
            return Some((v, off));
        }
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Encode a pc-value table: (value, pc after the run) pairs from `entry`.
    pub(crate) fn encode_pcvalue(runs: &[(i32, u64)], entry: u64, quantum: u64) -> Vec<u8> {
        let mut out = Vec::new();
        let (mut val, mut pc) = (-1i32, entry);
        let put = |out: &mut Vec<u8>, mut v: u32| loop {
            let b = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(b);
                break;
            }
            out.push(b | 0x80);
        };
        for &(v, end) in runs {
            let d = v - val;
            let zz = ((d << 1) ^ (d >> 31)) as u32;
            put(&mut out, zz);
            put(&mut out, ((end - pc) / quantum) as u32);
            val = v;
            pc = end;
        }
        out.push(0);
        out
    }

    #[test]
    fn varints() {
        assert_eq!(varint32(&[0x05], 0), Some((5, 1)));
        assert_eq!(varint32(&[0xac, 0x02], 0), Some((300, 2)));
        assert_eq!(varint32(&[0x80], 0), None);
        assert_eq!(varint32(&[0xff; 6], 0), None);
    }

    #[test]
    fn zigzag_runs_round_trip() {
        let enc = encode_pcvalue(&[(8, 0x1004), (24, 0x1010), (8, 0x1020)], 0x1000, 1);
        let mut tab = vec![0u8; 8];
        let pctab = tab.len();
        tab.extend_from_slice(&enc);
        let ft = FuncTab {
            tab: &tab,
            words: Words::new(false, 8),
            version: PclntabVersion::Go120,
            nfunc: 1,
            quantum: 1,
            text_start: 0x1000,
            funcname_off: 0,
            cu_off: 0,
            filetab_off: 0,
            pctab_off: pctab,
            functab_off: 0,
        };
        let f = FuncRec {
            at: 0,
            entry: 0x1000,
            end: 0x1020,
            name_off: 0,
            args: 0,
            pcsp: 0,
            pcfile: 0,
            pcln: 0,
            npcdata: 0,
            cu_offset: 0,
            start_line: None,
            func_id: 0,
            flag: 0,
            nfuncdata: 0,
        };
        // Offset 0 means "no table": the table goes one byte into pctab.
        assert_eq!(ft.pcvalue(&f, 0, 0x1000), None);
        let mut shifted = vec![0u8; pctab + 1];
        shifted.extend_from_slice(&enc);
        let ft2 = FuncTab {
            tab: &shifted,
            ..ft
        };
        let v2 = |pc| ft2.pcvalue(&f, 1, pc);
        assert_eq!(v2(0x1000), Some(8));
        assert_eq!(v2(0x1003), Some(8));
        assert_eq!(v2(0x1004), Some(24));
        assert_eq!(v2(0x101f), Some(8));
        assert_eq!(v2(0x1020), None);
        assert_eq!(v2(0xfff), None);
        // Cut anywhere: never a panic.
        for cut in 0..shifted.len() {
            let ft3 = FuncTab {
                tab: &shifted[..cut],
                ..ft
            };
            let _ = ft3.pcvalue(&f, 1, 0x101f);
        }
    }
}
