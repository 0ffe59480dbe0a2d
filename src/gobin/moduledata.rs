//! The start of the Go text segment, which Go 1.18+ function entries are
//! relative to.
//!
//! Up to Go 1.25 the pclntab header carries it (`textStart`). Go 1.26 writes
//! zero there; the runtime takes it from `runtime.firstmoduledata.text`
//! instead. goprobe finds it, in order: the `runtime.text` symbol; the
//! `runtime.firstmoduledata` symbol; the moduledata at the start of the
//! `.go.module` section (Go 1.26+); a moduledata found in writable data as a
//! word pointing at the pclntab; the `.text` section (internal linking only).
//! A moduledata is accepted only when its table pointers, function count and
//! `minpc`/`maxpc` agree with the pclntab, and any result must put the whole
//! function table inside an executable segment: an inconsistency is an
//! error, never a guess.

use super::elf::{Layout, SectionRange};
use super::pclntab::{Header, Located};
use super::read::{Words, to_usize};

/// Word indexes in `runtime.moduledata` (Go 1.16 through 1.27): `pcHeader`,
/// then six slices (`funcnametab`, `cutab`, `filetab`, `pctab`,
/// `pclntable`, `ftab`, three words each), `findfunctab`, `minpc`,
/// `maxpc`, `text`, `etext`.
const MD_PCHEADER: usize = 0;
const MD_FUNCNAMETAB: usize = 1;
const MD_FTAB: usize = 16;
const MD_FTAB_LEN: usize = 17;
const MD_MINPC: usize = 20;
const MD_MAXPC: usize = 21;
const MD_TEXT: usize = 22;
const MD_WORDS: usize = 24;

/// What the resolver may use besides the table itself.
pub(crate) struct Hints {
    pub runtime_text: Option<u64>,
    pub firstmoduledata: Option<u64>,
    pub go_module_section: Option<SectionRange>,
    pub text_section: Option<SectionRange>,
}

/// The validated start of text for a table at `loc`.
pub(crate) fn text_start(data: &[u8], layout: &Layout, loc: &Located, hints: &Hints) -> Result<u64, String> {
    let tab = loc.bytes(data).ok_or("pclntab")?;
    let h = &loc.header;
    if !h.relative_entries() {
        // Go 1.2/1.16 tables hold absolute entries.
        return Ok(0);
    }
    let (first, end) = h.entry_span(tab).ok_or("pclntab function table")?;
    let text = if h.text_start != 0 {
        h.text_start
    } else if let Some(text) = hints.runtime_text {
        text
    } else if let Some(md) = hints.firstmoduledata {
        moduledata_text(data, layout, loc, md, first, end)
            .ok_or("runtime.firstmoduledata does not match the pclntab")?
    } else if let Some(md) = hints.go_module_section.and_then(|s| moduledata_text(data, layout, loc, s.vaddr, first, end)) {
        md
    } else if let Some(text) = scan_moduledata(data, layout, loc, first, end) {
        text
    } else if let Some(sec) = hints.text_section {
        if end > sec.size {
            return Err("pclntab text start is zero and the functions do not fit the .text section".into());
        }
        sec.vaddr
    } else {
        return Err("pclntab text start is zero and no moduledata or .text section gives it".into());
    };
    let (lo, hi) = (text.checked_add(first), text.checked_add(end));
    match (lo, hi) {
        (Some(lo), Some(hi)) if layout.is_executable_range(lo, hi) => Ok(text),
        _ => Err(format!("pclntab functions at text start {text:#x} fall outside the executable segment")),
    }
}

/// Read the moduledata at `md` and return its `text` when it describes this table.
fn moduledata_text(data: &[u8], layout: &Layout, loc: &Located, md: u64, first: u64, end: u64) -> Option<u64> {
    let words = layout.words;
    let len = u64::from(words.ptr_size) * MD_WORDS as u64;
    let bytes = layout.read_vaddr(data, md, len)?;
    let w = |i: usize| words.word(bytes, i * usize::from(words.ptr_size));
    let h: &Header = &loc.header;
    let pcln = loc.vaddr;
    let ok = w(MD_PCHEADER)? == pcln
        && w(MD_FUNCNAMETAB)? == pcln.checked_add(h.funcname_off as u64)?
        && w(MD_FTAB)? == pcln.checked_add(h.functab_off as u64)?
        && to_usize(w(MD_FTAB_LEN)?)? == h.nfunc.checked_add(1)?;
    if !ok {
        return None;
    }
    let text = w(MD_TEXT)?;
    let (minpc, maxpc) = (w(MD_MINPC)?, w(MD_MAXPC)?);
    (minpc == text.checked_add(first)? && maxpc == text.checked_add(end)?).then_some(text)
}

/// Look for a pointer-aligned word equal to the pclntab address in writable
/// segments, and accept the first moduledata there that validates.
fn scan_moduledata(data: &[u8], layout: &Layout, loc: &Located, first: u64, end: u64) -> Option<u64> {
    let words: Words = layout.words;
    let step = usize::from(words.ptr_size);
    for seg in layout.segments.iter().filter(|s| s.writable()) {
        let start = to_usize(seg.offset)?;
        let stop = to_usize(seg.offset.checked_add(seg.filesz)?)?.min(data.len());
        let Some(bytes) = data.get(start..stop) else { continue };
        let mut i = 0;
        while i + step <= bytes.len() {
            if words.word(bytes, i) == Some(loc.vaddr) {
                if let Some(text) = moduledata_text(data, layout, loc, seg.vaddr + i as u64, first, end) {
                    return Some(text);
                }
            }
            i += step;
        }
    }
    None
}
