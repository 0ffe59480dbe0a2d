//! Where a Go binary's string literals lie, so that the search for module
//! versions they show ([`super::evidence`]) reads that part of the file
//! instead of every data section: 8.5 of the 13.5 MB of Debian's prometheus
//! (Go 1.19, types and literals), a few hundred KB of a Go 1.27 binary's
//! megabytes of type descriptors and data.
//!
//! What this relies on, read in `cmd/compile` and `cmd/link` of Go 1.19 and
//! 1.21 through 1.27, and checked on the corpus (and on Go 1.24.11 builds:
//! default, stripped, PIE, cgo, externally linked cgo PIE, arm64):
//! * The compiler writes the bytes of every string literal as a symbol named
//!   `go:string."…"` (`go.string.` up to Go 1.19; long ones by hash,
//!   `go:string.<len>.<hash>`; string-typed `//go:embed` files the same way),
//!   and the linker gives each the kind `SGOSTRING` (`ld/symtab.go`). They
//!   carry no relocations, so PIE's split of read-only data into
//!   `.data.rel.ro` leaves them in `.rodata`.
//! * `.rodata` takes the read-only kinds in `sym.ReadOnly` order: `STYPE`
//!   (not PIE), `SSTRING`, `SGOSTRING`, `SGOFUNC`, `SGCBITS`, `SRODATA`, …
//!   (Go 1.27 moved `STYPE` and `SGOFUNC` out). `runtime.rodata` is the
//!   section's start and `runtime.moduledata` records it as `rodata`, with
//!   `gofunc`, the start of the `SGOFUNC` symbols, right after it.
//! * Up to Go 1.25 `gofunc` lies in `.rodata`, after the literals; Go 1.26
//!   moved those symbols into `.gopclntab`, so from Go 1.26 the literals are
//!   bounded by the end of the section that holds `rodata`. (With external
//!   linking that section also holds the C objects' read-only data, which
//!   is then searched too.)
//! * Word indexes of `rodata` and `gofunc` in `runtime.moduledata`: 37 and
//!   38 in Go 1.19; 39 and 40 from Go 1.21 (`covctrs, ecovctrs` before
//!   them, since Go 1.20); 42 and 43 in Go 1.27 (`typedesclen`,
//!   `itaboffset, itabsize`).
//!
//! Go 1.17 records no `gofunc`, and Go 1.18 and 1.20 are not checked here
//! (no toolchain of theirs on this machine): for those,
//! for a release not known, and for a binary whose moduledata does not read
//! or whose words fail the checks, there is no bound and the whole data
//! sections are searched.

use super::elf::Layout;
use super::read::to_usize;
use super::types::{GoRelease, TypeTable};

/// Whether the literals end at `gofunc` (Go 1.19, 1.21 to 1.25) or at the end of
/// the section that holds `rodata` (Go 1.26 and 1.27).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Gofunc,
    Section,
}

/// Word indexes of `rodata` and `gofunc` in `runtime.moduledata`, and where
/// the literals end, for the releases this is known for.
fn words(release: GoRelease) -> Option<(usize, usize, End)> {
    if release.major != 1 {
        return None;
    }
    match release.minor {
        19 => Some((37, 38, End::Gofunc)),
        21..=25 => Some((39, 40, End::Gofunc)),
        26 => Some((39, 40, End::Section)),
        27 => Some((42, 43, End::Section)),
        _ => None,
    }
}

/// The file range (offset, length) that holds every string literal of the
/// binary whose moduledata is at `md`, within one of `sections` (the file
/// ranges of its data sections); `None` when the release, the moduledata
/// or the sections give no such bound.
pub(crate) fn literal_range(
    data: &[u8],
    layout: &Layout,
    sections: &[(u64, u64)],
    md: u64,
    release: GoRelease,
) -> Option<(usize, usize)> {
    let (rodata_at, gofunc_at, end) = words(release)?;
    let ps = u64::from(layout.words.ptr_size);
    let word = |i: usize| {
        let at = md.checked_add(ps.checked_mul(u64::try_from(i).ok()?)?)?;
        layout.words.word(layout.read_vaddr(data, at, ps)?, 0)
    };
    let (rodata, gofunc) = (word(rodata_at)?, word(gofunc_at)?);
    // Read-only data, in the file.
    let seg = layout.segment_of(rodata)?;
    if seg.writable() {
        return None;
    }
    let from = layout.vaddr_to_offset(rodata)?;
    // The data section that holds `rodata` (never the function table nor
    // code: those are not data sections).
    let (sec_from, sec_len) = sections
        .iter()
        .copied()
        .find(|&(off, len)| from >= off && from - off < len)?;
    let sec_to = sec_from.checked_add(sec_len)?;
    let to = match end {
        End::Section => sec_to,
        End::Gofunc => {
            // `gofunc` follows `rodata` in the same section and segment.
            let len = gofunc.checked_sub(rodata)?;
            if !seg.contains_file_backed(gofunc) || from.checked_add(len)? > sec_to {
                return None;
            }
            from + len
        }
    };
    let len = to.checked_sub(from)?;
    let skip = types_skipped(data, layout, md, &word, release, rodata_at, len).unwrap_or(0);
    Some((to_usize(from + skip)?, to_usize(len - skip)?))
}

/// How many bytes at the start of the literal range (`len` bytes from
/// `rodata`) are type descriptors for sure, so need no search: when the
/// type section starts the range (`types == rodata`, a binary not built as
/// PIE; PIE moves `STYPE` into `.data.rel.ro`), every descriptor lies
/// before the first literal (`STYPE` precedes `SGOSTRING`), so the
/// highest descriptor `typelinks` lists is still a type. `etypes` is no
/// bound here: the linker sets it to the end of the whole section. On the
/// corpus the highest listed descriptor lies 99% into the type area (Go
/// 1.19, 1.23, 1.25), about a third of the range. `None` (nothing
/// skipped) when `typelinks` does not read, or for releases without it
/// (Go 1.27).
fn types_skipped(
    data: &[u8],
    layout: &Layout,
    md: u64,
    word: &dyn Fn(usize) -> Option<u64>,
    release: GoRelease,
    rodata_at: usize,
    len: u64,
) -> Option<u64> {
    // `types, etypes` are the two words before `rodata` in every release
    // `words` knows.
    let links_at = crate::gobin::types::typelinks_word(release)?;
    let (types, etypes) = (word(rodata_at.checked_sub(2)?)?, word(rodata_at - 1)?);
    if types != word(rodata_at)? {
        return None;
    }
    // The type table's own reading of the list, with its checks.
    let table = TypeTable::from_parts(data, layout, types, etypes, release);
    let highest = table
        .read_typelinks(md, links_at)
        .chunks_exact(4)
        .filter_map(|c| layout.words.u32(c, 0))
        .filter_map(|o| u64::try_from(o.cast_signed()).ok())
        .max()?;
    (highest < len).then_some(highest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gobin::elf::Segment;
    use crate::gobin::read::Words;

    const RO: u64 = 0x400000;

    /// A file of one read-only segment at `RO` (file offset 0x1000) with a
    /// moduledata at 0x100 into it whose word `at` is each of `words`.
    fn image(words: &[(usize, u64)]) -> (Vec<u8>, Layout) {
        let mut data = vec![0u8; 0x3000];
        for &(i, w) in words {
            let at = 0x1100 + 8 * i;
            data[at..at + 8].copy_from_slice(&w.to_le_bytes());
        }
        let layout = Layout {
            words: Words::new(false, 8),
            segments: vec![Segment {
                vaddr: RO,
                memsz: 0x2000,
                offset: 0x1000,
                filesz: 0x2000,
                flags: 4,
            }],
        };
        (data, layout)
    }

    fn release(minor: u32) -> GoRelease {
        GoRelease { major: 1, minor }
    }

    #[test]
    fn bounded_by_gofunc_up_to_go_1_25() {
        // rodata at RO + 0x800, gofunc 0x400 further; the section 0x1800..0x3000.
        let (data, layout) = image(&[(37, RO + 0x800), (38, RO + 0xc00)]);
        let sections = [(0x1000, 0x600), (0x1800, 0x1800)];
        let md = RO + 0x100;
        assert_eq!(
            literal_range(&data, &layout, &sections, md, release(19)),
            Some((0x1800, 0x400))
        );
        // Another release reads other words.
        assert_eq!(
            literal_range(&data, &layout, &sections, md, release(21)),
            None
        );
        // Unknown releases: no bound.
        for minor in [17, 18, 20, 28] {
            assert_eq!(
                literal_range(&data, &layout, &sections, md, release(minor)),
                None
            );
        }
        // gofunc before rodata, or past its section: no bound.
        let (data, layout) = image(&[(39, RO + 0x800), (40, RO + 0x700)]);
        assert_eq!(
            literal_range(&data, &layout, &sections, md, release(24)),
            None
        );
        let short = [(0x1800, 0x200)];
        let (data, layout) = image(&[(39, RO + 0x800), (40, RO + 0xc00)]);
        assert_eq!(literal_range(&data, &layout, &short, md, release(24)), None);
        assert_eq!(
            literal_range(&data, &layout, &sections, md, release(24)),
            Some((0x1800, 0x400))
        );
        // rodata in no data section, or outside the file.
        assert_eq!(
            literal_range(&data, &layout, &[(0x1000, 0x600)], md, release(24)),
            None
        );
        let (data, layout) = image(&[(39, 0x9000_0000), (40, 0x9000_0400)]);
        assert_eq!(
            literal_range(&data, &layout, &sections, md, release(24)),
            None
        );
        // A moduledata outside the file.
        assert_eq!(
            literal_range(&data, &layout, &sections, 0x10, release(24)),
            None
        );
    }

    #[test]
    fn listed_type_descriptors_are_skipped_when_types_start_the_range() {
        // rodata at RO + 0x800 with 0x400 of literals up to gofunc; the
        // typelinks list (3 entries) at RO + 0x1800, file offset 0x2800.
        let sections = [(0x1800, 0x1800)];
        let md = RO + 0x100;
        let links = |data: &mut Vec<u8>, offs: &[i32]| {
            for (i, o) in offs.iter().enumerate() {
                data[0x2800 + 4 * i..0x2804 + 4 * i].copy_from_slice(&o.to_le_bytes());
            }
        };
        // etypes is the section's end, as the linker sets it; the list's
        // capacity equals its length.
        let words = |types: u64, n: u64| {
            vec![
                (35, types),
                (36, RO + 0x2000),
                (37, RO + 0x800),
                (38, RO + 0xc00),
                (42, RO + 0x1800),
                (43, n),
                (44, n),
            ]
        };
        let (mut data, layout) = image(&words(RO + 0x800, 3));
        links(&mut data, &[0x10, 0x180, -4]);
        assert_eq!(
            literal_range(&data, &layout, &sections, md, release(19)),
            Some((0x1980, 0x280))
        );
        // Types elsewhere (PIE): nothing skipped.
        let (mut data, layout) = image(&words(RO + 0x200, 3));
        links(&mut data, &[0x10, 0x180, 0x40]);
        assert_eq!(
            literal_range(&data, &layout, &sections, md, release(19)),
            Some((0x1800, 0x400))
        );
        // A listed offset past the range, a list longer than the type area
        // could hold, or one outside the file: nothing skipped.
        let (mut data, layout) = image(&words(RO + 0x800, 3));
        links(&mut data, &[0x10, 0x400, 0x40]);
        assert_eq!(
            literal_range(&data, &layout, &sections, md, release(19)),
            Some((0x1800, 0x400))
        );
        let (data, layout) = image(&words(RO + 0x800, 1 << 20));
        assert_eq!(
            literal_range(&data, &layout, &sections, md, release(19)),
            Some((0x1800, 0x400))
        );
        let mut outside = words(RO + 0x800, 3);
        outside[4] = (42, RO + 0x1ffc);
        let (data, layout) = image(&outside);
        assert_eq!(
            literal_range(&data, &layout, &sections, md, release(19)),
            Some((0x1800, 0x400))
        );
    }

    #[test]
    fn bounded_by_the_section_from_go_1_26() {
        let sections = [(0x1000, 0x600), (0x1800, 0x1000)];
        let md = RO + 0x100;
        // gofunc elsewhere (in .gopclntab): the section's end bounds.
        let (data, layout) = image(&[(39, RO + 0x900), (40, RO + 0x1f00)]);
        assert_eq!(
            literal_range(&data, &layout, &sections, md, release(26)),
            Some((0x1900, 0xf00))
        );
        let (data, layout) = image(&[(42, RO + 0x800), (43, 0)]);
        assert_eq!(
            literal_range(&data, &layout, &sections, md, release(27)),
            Some((0x1800, 0x1000))
        );
    }
}
