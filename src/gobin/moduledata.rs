//! The start of the Go text segment, which Go 1.18+ function entries are
//! relative to.
//!
//! Up to Go 1.25 the pclntab header carries it (`textStart`). Go 1.26 writes
//! zero there; the runtime takes it from `runtime.firstmoduledata.text`
//! instead. goprobe finds it, in order: the `runtime.text` symbol; the
//! `runtime.firstmoduledata` symbol; the moduledata at the start of the
//! `.go.module` section (Go 1.26+); a moduledata found in writable data as a
//! word pointing at the pclntab; the `.text` section, only when the functions
//! fill it exactly (internal linking).
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
/// Most bytes the linker leaves in `.text` after the last Go function.
const TEXT_PADDING: u64 = 0x100;

/// What the resolver may use besides the table itself.
pub(crate) struct Hints {
    pub runtime_text: Option<u64>,
    pub firstmoduledata: Option<u64>,
    pub go_module_section: Option<SectionRange>,
    pub text_section: Option<SectionRange>,
}

/// The validated start of text for a table at `loc`.
pub(crate) fn text_start(
    data: &[u8],
    layout: &Layout,
    loc: &Located,
    hints: &Hints,
) -> Result<u64, String> {
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
    } else if let Some(md) = hints
        .go_module_section
        .and_then(|s| moduledata_text(data, layout, loc, s.vaddr, first, end))
    {
        md
    } else if let Some(text) = scan_moduledata(data, layout, loc, first, end) {
        text
    } else if let Some(sec) = hints.text_section {
        // Only an internally linked binary's .text is exactly Go's text: the
        // first function at its start and the table's end at its end (up to
        // alignment padding). With external linking (cgo) C code shares
        // .text, and its start would be a wrong guess.
        let fills = first == 0 && end <= sec.size && sec.size - end <= TEXT_PADDING;
        if !fills {
            return Err("pclntab text start is zero, no moduledata found, and the functions do not fill .text".into());
        }
        sec.vaddr
    } else {
        return Err(
            "pclntab text start is zero and no moduledata or .text section gives it".into(),
        );
    };
    let (lo, hi) = (text.checked_add(first), text.checked_add(end));
    match (lo, hi) {
        (Some(lo), Some(hi)) if layout.is_executable_range(lo, hi) => Ok(text),
        _ => Err(format!(
            "pclntab functions at text start {text:#x} fall outside the executable segment"
        )),
    }
}

/// The address of the moduledata that describes the table at `loc`, found
/// as for the text start (symbol, `.go.module` section, scan of writable
/// data) and accepted only when it validates against the table.
pub(crate) fn locate(data: &[u8], layout: &Layout, loc: &Located, hints: &Hints) -> Option<u64> {
    let tab = loc.bytes(data)?;
    let (first, end) = loc.header.entry_span(tab)?;
    let ok = |md: u64| moduledata_text(data, layout, loc, md, first, end).is_some();
    if let Some(md) = hints.firstmoduledata.filter(|&md| ok(md)) {
        return Some(md);
    }
    if let Some(md) = hints
        .go_module_section
        .map(|s| s.vaddr)
        .filter(|&md| ok(md))
    {
        return Some(md);
    }
    scan_moduledata_addr(data, layout, loc, first, end)
}

/// Read the moduledata at `md` and return its `text` when it describes this table.
fn moduledata_text(
    data: &[u8],
    layout: &Layout,
    loc: &Located,
    md: u64,
    first: u64,
    end: u64,
) -> Option<u64> {
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
    // Go 1.16/1.17 tables hold absolute entries; 1.18+ entries are text-relative.
    let base = if h.relative_entries() { text } else { 0 };
    (minpc == base.checked_add(first)? && maxpc == base.checked_add(end)?).then_some(text)
}

/// Look for a pointer-aligned word equal to the pclntab address in writable
/// segments, and accept the first moduledata there that validates.
fn scan_moduledata(
    data: &[u8],
    layout: &Layout,
    loc: &Located,
    first: u64,
    end: u64,
) -> Option<u64> {
    let md = scan_moduledata_addr(data, layout, loc, first, end)?;
    moduledata_text(data, layout, loc, md, first, end)
}

/// The address of the first moduledata in writable data that validates.
fn scan_moduledata_addr(
    data: &[u8],
    layout: &Layout,
    loc: &Located,
    first: u64,
    end: u64,
) -> Option<u64> {
    let words: Words = layout.words;
    let step = usize::from(words.ptr_size);
    for seg in layout.segments.iter().filter(|s| s.writable()) {
        let start = to_usize(seg.offset)?;
        let stop = to_usize(seg.offset.checked_add(seg.filesz)?)?.min(data.len());
        let Some(bytes) = data.get(start..stop) else {
            continue;
        };
        let mut i = 0;
        while i + step <= bytes.len() {
            if words.word(bytes, i) == Some(loc.vaddr) {
                let md = seg.vaddr.checked_add(i as u64);
                if let Some(md) =
                    md.filter(|&md| moduledata_text(data, layout, loc, md, first, end).is_some())
                {
                    return Some(md);
                }
            }
            i += step;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gobin::PclntabVersion;
    use crate::gobin::elf::Segment;
    use crate::gobin::pclntab::{self, tests::build};

    const TEXT: u64 = 0x401000;
    const PCLN: u64 = 0x500000;
    const DATA: u64 = 0x600000;

    /// A file with text at 0x401000 (file offset 0), a Go 1.26-style table
    /// (text start 0) at 0x500000 and writable data at 0x600000 holding a
    /// moduledata at `md_at` (bytes into the data) whose minpc is `minpc_delta`
    /// past the truth.
    fn image(md_at: usize, minpc_delta: u64) -> (Vec<u8>, Layout, Located) {
        let funcs = [("main.main", 0u64), ("main.f", 0x40)];
        let tab = build(PclntabVersion::Go120, 8, false, &funcs, 0x80, 0);
        let h = pclntab::parse_header(&tab, false, 8).unwrap();
        let mut data = vec![0xccu8; 0x1000];
        let pcln_off = data.len();
        data.extend_from_slice(&tab);
        data.resize(0x3000, 0);
        let data_off = data.len();
        data.resize(0x4000, 0);
        let mut md = [0u64; MD_WORDS];
        md[MD_PCHEADER] = PCLN;
        md[MD_FUNCNAMETAB] = PCLN + h.funcname_off as u64;
        md[MD_FTAB] = PCLN + h.functab_off as u64;
        md[MD_FTAB_LEN] = 3;
        md[MD_MINPC] = TEXT + minpc_delta;
        md[MD_MAXPC] = TEXT + 0x80;
        md[MD_TEXT] = TEXT;
        for (i, w) in md.iter().enumerate() {
            let at = data_off + md_at + 8 * i;
            data[at..at + 8].copy_from_slice(&w.to_le_bytes());
        }
        let layout = Layout {
            words: Words::new(false, 8),
            segments: vec![
                Segment {
                    vaddr: TEXT,
                    memsz: 0x1000,
                    offset: 0,
                    filesz: 0x1000,
                    flags: 5,
                },
                Segment {
                    vaddr: PCLN,
                    memsz: 0x2000,
                    offset: pcln_off as u64,
                    filesz: 0x2000,
                    flags: 4,
                },
                Segment {
                    vaddr: DATA,
                    memsz: 0x1000,
                    offset: data_off as u64,
                    filesz: 0x1000,
                    flags: 6,
                },
            ],
        };
        let loc = Located {
            offset: pcln_off,
            len: tab.len(),
            vaddr: PCLN,
            header: h,
        };
        (data, layout, loc)
    }

    fn no_hints() -> Hints {
        Hints {
            runtime_text: None,
            firstmoduledata: None,
            go_module_section: None,
            text_section: None,
        }
    }

    #[test]
    fn finds_text_through_moduledata() {
        let (data, layout, loc) = image(0x120, 0);
        // By symbol, by section, by scanning.
        let sym = Hints {
            firstmoduledata: Some(DATA + 0x120),
            ..no_hints()
        };
        assert_eq!(text_start(&data, &layout, &loc, &sym), Ok(TEXT));
        let sec = Hints {
            go_module_section: Some(SectionRange {
                vaddr: DATA + 0x120,
                offset: 0,
                size: 0,
            }),
            ..no_hints()
        };
        assert_eq!(text_start(&data, &layout, &loc, &sec), Ok(TEXT));
        assert_eq!(text_start(&data, &layout, &loc, &no_hints()), Ok(TEXT));
        // runtime.text wins when present, and is validated.
        let text = Hints {
            runtime_text: Some(TEXT),
            ..no_hints()
        };
        assert_eq!(text_start(&data, &layout, &loc, &text), Ok(TEXT));
        let outside = Hints {
            runtime_text: Some(DATA),
            ..no_hints()
        };
        assert!(text_start(&data, &layout, &loc, &outside).is_err());
    }

    #[test]
    fn rejects_a_moduledata_that_disagrees() {
        let (data, layout, loc) = image(0x120, 0x10);
        let sym = Hints {
            firstmoduledata: Some(DATA + 0x120),
            ..no_hints()
        };
        assert!(text_start(&data, &layout, &loc, &sym).is_err());
        // Scanning skips it; with no .text section there is no answer.
        assert!(text_start(&data, &layout, &loc, &no_hints()).is_err());
        // The .text section is used only when the functions fit in it.
        let fits = Hints {
            text_section: Some(SectionRange {
                vaddr: TEXT,
                offset: 0,
                size: 0x100,
            }),
            ..no_hints()
        };
        assert_eq!(text_start(&data, &layout, &loc, &fits), Ok(TEXT));
        let small = Hints {
            text_section: Some(SectionRange {
                vaddr: TEXT,
                offset: 0,
                size: 0x40,
            }),
            ..no_hints()
        };
        assert!(text_start(&data, &layout, &loc, &small).is_err());
        // A .text much larger than Go's functions (C code from external linking): no guess.
        let shared = Hints {
            text_section: Some(SectionRange {
                vaddr: TEXT,
                offset: 0,
                size: 0x800,
            }),
            ..no_hints()
        };
        assert!(text_start(&data, &layout, &loc, &shared).is_err());
        // A moduledata symbol pointing outside the file.
        let wild = Hints {
            firstmoduledata: Some(0xdead_0000),
            ..no_hints()
        };
        assert!(text_start(&data, &layout, &loc, &wild).is_err());
    }
}
