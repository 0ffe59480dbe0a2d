//! The Go function table (`runtime.pclntab`): function names and entry
//! addresses, present even in stripped binaries.
//!
//! Formats, branched on the header magic (named by the Go release that
//! introduced them):
//! * Go 1.2 (`0xfffffffb`): `nfunc` then `(entry, funcoff)` word pairs right
//!   after the 8-byte header; `funcoff` and name offsets are relative to the
//!   table start.
//! * Go 1.16 (`0xfffffffa`): a header of words (`nfunc`, `nfiles`, then
//!   offsets of the name, CU, file, pc and func tables); `(entry, funcoff)`
//!   word pairs in the func table, `funcoff` relative to it, name offsets
//!   relative to the name table.
//! * Go 1.18 (`0xfffffff0`) and Go 1.20 (`0xfffffff1`, same table layout):
//!   `textStart` joins the header and the func table holds `u32` pairs of
//!   (entry offset from the text start, funcoff).
//!
//! Go 1.26 writes `textStart = 0`; the real text start is found by
//! [`super::moduledata`].

use super::PclntabVersion;
use super::elf::{Layout, SectionRange};
use super::read::{Words, cstr_at, slice_at, to_usize};

mod names;
pub(crate) use names::{NameSearch, confirm, has_functions, name_table};

pub(crate) const MAGIC_12: u32 = 0xffff_fffb;
pub(crate) const MAGIC_116: u32 = 0xffff_fffa;
pub(crate) const MAGIC_118: u32 = 0xffff_fff0;
pub(crate) const MAGIC_120: u32 = 0xffff_fff1;

/// The parsed table header, with offsets relative to the table start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub version: PclntabVersion,
    pub words: Words,
    pub nfunc: usize,
    /// The header's `textStart` (Go 1.18+; zero from Go 1.26 and in older formats).
    pub text_start: u64,
    /// Start of the function name table.
    pub funcname_off: usize,
    /// End of the function name table (the CU table's start; Go 1.16+,
    /// zero before, where names are spread over the table).
    pub funcname_end: usize,
    /// Start of the `(entry, funcoff)` table.
    pub functab_off: usize,
    /// What `funcoff` values are relative to.
    pub funcdata_off: usize,
}

impl Header {
    /// Whether function entries are offsets from the text start (Go 1.18+)
    /// rather than absolute addresses.
    pub fn relative_entries(&self) -> bool {
        matches!(self.version, PclntabVersion::Go118 | PclntabVersion::Go120)
    }

    /// Size of one field of a functab entry.
    fn field_size(&self) -> usize {
        if self.relative_entries() {
            4
        } else {
            usize::from(self.words.ptr_size)
        }
    }

    /// Bytes taken by the functab: `nfunc` pairs and the end entry.
    pub fn functab_len(&self) -> Option<usize> {
        self.nfunc
            .checked_mul(2)?
            .checked_add(1)?
            .checked_mul(self.field_size())
    }

    /// The `i`th functab field (`i = 2n` entry, `2n + 1` funcoff, `2 * nfunc` end).
    fn field(&self, tab: &[u8], i: usize) -> Option<u64> {
        let off = i
            .checked_mul(self.field_size())?
            .checked_add(self.functab_off)?;
        if self.relative_entries() {
            self.words.u32(tab, off).map(u64::from)
        } else {
            self.words.word(tab, off)
        }
    }

    /// The first entry and the end of text as stored (offsets from the text
    /// start for Go 1.18+, addresses before).
    pub fn entry_span(&self, tab: &[u8]) -> Option<(u64, u64)> {
        Some((self.field(tab, 0)?, self.field(tab, 2 * self.nfunc)?))
    }
}

/// Parse and bounds-check the header of a table that starts at `tab[0]`.
/// `big_endian` and `ptr_size` are the binary's; the header must agree.
pub(crate) fn parse_header(tab: &[u8], big_endian: bool, ptr_size: u8) -> Result<Header, String> {
    let probe = Words::new(big_endian, ptr_size);
    let magic = probe.u32(tab, 0).ok_or("pclntab header")?;
    let version = match magic {
        MAGIC_12 => PclntabVersion::Go12,
        MAGIC_116 => PclntabVersion::Go116,
        MAGIC_118 => PclntabVersion::Go118,
        MAGIC_120 => PclntabVersion::Go120,
        other => return Err(format!("pclntab magic {other:#x}")),
    };
    let head = slice_at(tab, 0, 8).ok_or("pclntab header")?;
    let (pad, min_lc, hdr_ptr) = ([head[4], head[5]], head[6], head[7]);
    if pad != [0, 0] || !matches!(min_lc, 1 | 2 | 4) || hdr_ptr != ptr_size {
        return Err(format!(
            "pclntab header (quantum {min_lc}, pointer size {hdr_ptr})"
        ));
    }
    let words = Words::new(big_endian, ptr_size);
    let word = |i: usize| -> Result<u64, String> {
        words
            .word_off(8, i)
            .and_then(|off| words.word(tab, off))
            .ok_or_else(|| "pclntab header".to_string())
    };
    let offset = |i: usize| -> Result<usize, String> {
        let v = word(i)?;
        to_usize(v)
            .filter(|&o| o <= tab.len())
            .ok_or_else(|| format!("pclntab header offset {v:#x}"))
    };
    let nfunc = to_usize(word(0)?).ok_or("pclntab function count")?;
    let (text_start, (funcname_off, funcname_end), functab_off, funcdata_off) = match version {
        PclntabVersion::Go12 => {
            let functab = 8 + usize::from(ptr_size);
            (0, (0, 0), functab, 0)
        }
        PclntabVersion::Go116 => (0, (offset(2)?, offset(3)?), offset(6)?, offset(6)?),
        PclntabVersion::Go118 | PclntabVersion::Go120 => {
            (word(2)?, (offset(3)?, offset(4)?), offset(7)?, offset(7)?)
        }
    };
    let header = Header {
        version,
        words,
        nfunc,
        text_start,
        funcname_off,
        funcname_end,
        functab_off,
        funcdata_off,
    };
    if nfunc == 0 {
        return Err("pclntab with no functions".into());
    }
    let end = header
        .functab_len()
        .and_then(|l| l.checked_add(functab_off));
    if end.is_none_or(|e| e > tab.len()) {
        return Err(format!(
            "pclntab function table ({nfunc} functions) beyond the table"
        ));
    }
    Ok(header)
}

/// One function as the table records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawFunc {
    pub name: String,
    pub entry: u64,
    /// Entry of the next function, or the end of text for the last one.
    pub end: u64,
}

/// Every function of the table. `text_start` is the resolved start of text
/// (used for Go 1.18+ relative entries, ignored before).
pub(crate) fn functions(tab: &[u8], h: &Header, text_start: u64) -> Result<Vec<RawFunc>, String> {
    let rel = h.relative_entries();
    let addr = |raw: u64| -> Result<u64, String> {
        if rel {
            text_start
                .checked_add(raw)
                .ok_or_else(|| "function address overflows".to_string())
        } else {
            Ok(raw)
        }
    };
    let mut out = Vec::with_capacity(h.nfunc);
    walk(tab, h, |i, name_at, entry_raw, next_raw| {
        let name = cstr_at(tab, name_at).ok_or_else(|| format!("pclntab function {i} name"))?;
        out.push(RawFunc {
            name: String::from_utf8_lossy(name).into_owned(),
            entry: addr(entry_raw)?,
            end: addr(next_raw)?,
        });
        Ok(true)
    })?;
    Ok(out)
}

/// Visit each function (its index, the offset of its NUL-terminated name in
/// `tab`, its raw table entry and the next one) in table order, checking the
/// table's consistency on the way; `visit` returns whether to go on.
fn walk(
    tab: &[u8],
    h: &Header,
    mut visit: impl FnMut(usize, usize, u64, u64) -> Result<bool, String>,
) -> Result<(), String> {
    let mut entry_raw = h.field(tab, 0).ok_or("pclntab function table")?;
    for i in 0..h.nfunc {
        let next_raw = h.field(tab, 2 * i + 2).ok_or("pclntab function table")?;
        if next_raw < entry_raw {
            return Err(format!("pclntab function table not sorted at entry {i}"));
        }
        let name_at = name_of(tab, h, i, entry_raw)?;
        if !visit(i, name_at, entry_raw, next_raw)? {
            return Ok(());
        }
        entry_raw = next_raw;
    }
    Ok(())
}

/// The offset in `tab` of function `i`'s name, `entry_raw` being its
/// functab entry; checked against the function's record.
fn name_of(tab: &[u8], h: &Header, i: usize, entry_raw: u64) -> Result<usize, String> {
    let funcoff = h.field(tab, 2 * i + 1).ok_or("pclntab function table")?;
    let func = to_usize(funcoff)
        .and_then(|f| f.checked_add(h.funcdata_off))
        .ok_or_else(|| format!("pclntab function {i} offset {funcoff:#x}"))?;
    // The _func record repeats the entry (an offset from Go 1.18 on), then
    // the name offset; a disagreement means we are not reading a real table.
    let (own_entry, name_field) = if h.relative_entries() {
        (h.words.u32(tab, func).map(u64::from), func.checked_add(4))
    } else {
        (
            h.words.word(tab, func),
            func.checked_add(usize::from(h.words.ptr_size)),
        )
    };
    if own_entry != Some(entry_raw) {
        return Err(format!(
            "pclntab function {i}: record entry does not match the table"
        ));
    }
    let name_off = name_field
        .and_then(|o| h.words.u32(tab, o))
        .ok_or_else(|| format!("pclntab function {i} record"))?;
    usize::try_from(name_off as i32)
        .ok()
        .and_then(|n| n.checked_add(h.funcname_off))
        .filter(|&n| n < tab.len())
        .ok_or_else(|| format!("pclntab function {i} name"))
}

/// Where the table is in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Located {
    /// File offset of the table start.
    pub offset: usize,
    /// Bytes available from there (section size, or to the end of the segment).
    pub len: usize,
    pub vaddr: u64,
    pub header: Header,
}

impl Located {
    pub fn bytes<'d>(&self, data: &'d [u8]) -> Option<&'d [u8]> {
        slice_at(data, self.offset, self.len)
    }
}

/// Find the table: by section name (`.gopclntab`; `.data.rel.ro.gopclntab`
/// in PIE builds up to Go 1.25), else by the `runtime.pclntab` /
/// `runtime.epclntab` symbols, else by scanning the segments for a header
/// that validates.
pub(crate) fn locate(
    data: &[u8],
    layout: &Layout,
    sections: &[SectionRange],
    symbols: Option<(u64, u64)>,
) -> Result<Option<Located>, String> {
    let words = layout.words;
    let mut first_err = None;
    let mut try_at = |offset: usize, len: usize, vaddr: u64| -> Option<Located> {
        let tab = slice_at(data, offset, len)?;
        match parse_header(tab, words.big_endian, words.ptr_size) {
            Ok(header) => Some(Located {
                offset,
                len,
                vaddr,
                header,
            }),
            Err(e) => {
                first_err.get_or_insert(e);
                None
            }
        }
    };
    for sec in sections {
        if let (Some(off), Some(len)) = (to_usize(sec.offset), to_usize(sec.size))
            && let Some(found) = try_at(off, len, sec.vaddr)
        {
            return Ok(Some(found));
        }
    }
    if let Some((start, end)) = symbols
        && let (Some(off), Some(len)) = (layout.vaddr_to_offset(start), end.checked_sub(start))
        && let (Some(off), Some(len)) = (to_usize(off), to_usize(len))
        && let Some(found) = try_at(off, len, start)
    {
        return Ok(Some(found));
    }
    // A named section or symbol that does not parse is an error, not a
    // reason to go looking elsewhere.
    if let Some(e) = first_err {
        return Err(e);
    }
    Ok(scan(data, layout))
}

/// Look through non-executable segments for a pointer-aligned header that
/// parses and whose functions all lie in an executable segment.
fn scan(data: &[u8], layout: &Layout) -> Option<Located> {
    let words = layout.words;
    let magics = [MAGIC_120, MAGIC_118, MAGIC_116, MAGIC_12];
    for seg in layout.segments.iter().filter(|s| !s.executable()) {
        let (Some(start), Some(end)) = (
            to_usize(seg.offset),
            seg.offset.checked_add(seg.filesz).and_then(to_usize),
        ) else {
            continue;
        };
        let Some(bytes) = data.get(start..end.min(data.len())) else {
            continue;
        };
        let step = usize::from(words.ptr_size);
        let mut i = 0;
        while i + 8 <= bytes.len() {
            if words.u32(bytes, i).is_some_and(|m| magics.contains(&m)) {
                let tab = &bytes[i..];
                if let Ok(header) = parse_header(tab, words.big_endian, words.ptr_size) {
                    let in_text = header.entry_span(tab).is_some_and(|(first, last)| {
                        if header.relative_entries() {
                            // Offsets: checked against text once the text start is known.
                            first <= last
                        } else {
                            layout.is_executable_range(first, last)
                        }
                    });
                    let vaddr = seg.vaddr.checked_add(i as u64);
                    if let Some(vaddr) = vaddr
                        .filter(|_| in_text && functions(tab, &header, header.text_start).is_ok())
                    {
                        return Some(Located {
                            offset: start + i,
                            len: tab.len(),
                            vaddr,
                            header,
                        });
                    }
                }
            }
            i += step;
        }
    }
    None
}

#[cfg(test)]
pub(crate) mod tests;
