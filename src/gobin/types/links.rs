//! The moduledata's `typelinks`: offsets (from `types`) of the descriptors
//! the linker lists for reflect, sorted by type string, so that a type
//! string is found by binary search, as `reflect.typesByString` finds it,
//! reading a few dozen descriptors instead of the whole type section.
//!
//! Which types are listed: the compiler marks every unnamed pointer, array,
//! chan, func, map, slice and struct type for the list
//! (`cmd/compile/internal/reflectdata.writeType`, except types without
//! equality or hash functions), so `*T` is listed whenever the program holds
//! a descriptor of `*T` (as a field type, an itab's concrete type, a method
//! receiver). The linker sorts the list by type string with the extra star
//! stripped (`decodetypeStr`, `cmd/link/internal/ld/data.go`), which is what
//! [`TypeTable::type_string_bytes`] reads.
//!
//! Where the slice lies in `runtime.moduledata`, by release (word index of
//! its pointer; length and capacity follow): Go 1.19 `types, etypes,
//! rodata, gofunc, textsectmap[3]` then `typelinks` at 42; Go 1.20 added
//! `covctrs, ecovctrs` earlier (44); Go 1.26 added `epclntab` after `gofunc`
//! (45). Go 1.27 has no `typelinks` (the listed descriptors lie sorted at
//! the start of the section, up to `typedesclen`); Go 1.17 and 1.18 are not
//! checked against a binary here. For those releases the list is empty and
//! every look-up falls back to the scan of the section.

use super::{TFLAG_EXTRA_STAR, TypeTable};
use crate::gobin::read::to_usize;

/// Word index of the `typelinks` slice in `runtime.moduledata`.
pub(crate) fn typelinks_word(release: super::GoRelease) -> Option<usize> {
    if release.major != 1 || !release.at_least(19) || release.at_least(27) {
        return None;
    }
    Some(if release.at_least(26) {
        45
    } else if release.at_least(20) {
        44
    } else {
        42
    })
}

impl<'b> TypeTable<'b> {
    /// The type string of the descriptor at `addr` as the linker sorted it
    /// (extra star stripped), borrowed from the section; `None` when the
    /// descriptor or its name does not read.
    pub(super) fn type_string_bytes(&self, addr: u64) -> Option<&'b [u8]> {
        let h = self.header(addr).ok()?;
        let at = self.types.checked_add(u64::try_from(h.str_off).ok()?)?;
        let (_, name) = self.name_bytes_at_addr(at)?;
        if h.tflag & TFLAG_EXTRA_STAR != 0 {
            return name.strip_prefix(b"*");
        }
        Some(name)
    }

    /// Number of entries in the typelinks list.
    pub(super) fn typelink_count(&self) -> usize {
        self.typelinks.len() / 4
    }

    /// The descriptor address of typelinks entry `i`.
    fn typelink(&self, i: usize) -> Option<u64> {
        let at = i.checked_mul(4)?;
        let raw = self.typelinks.get(at..at.checked_add(4)?)?;
        let off = self.layout.words.u32(raw, 0)? as i32;
        self.types.checked_add(u64::try_from(off).ok()?)
    }

    /// The descriptors the typelinks list under the type string `s`, in
    /// list order. A list that is not sorted (a damaged file) can only make
    /// this miss entries, never return one whose string differs.
    pub(crate) fn linked_by_string(&self, s: &[u8]) -> Vec<u64> {
        let key = |i: usize| self.typelink(i).and_then(|a| self.type_string_bytes(a));
        // Lower bound: the first entry whose string is not below `s`
        // (an unreadable entry counts as below everything).
        let (mut lo, mut hi) = (0, self.typelink_count());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if key(mid).is_none_or(|k| k < s) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let mut out = Vec::new();
        for i in lo..self.typelink_count() {
            match (self.typelink(i), key(i)) {
                (Some(addr), Some(k)) if k == s => out.push(addr),
                _ => break,
            }
        }
        out
    }

    /// Read the typelinks slice from the moduledata words at `md` (pointer,
    /// length, capacity at `word`): empty unless it lies in the file whole.
    pub(crate) fn read_typelinks(&self, md: u64, word: usize) -> &'b [u8] {
        let words = self.layout.words;
        let ps = self.ptr_size();
        let read = |i: usize| -> Option<u64> {
            let at = md.checked_add(ps.checked_mul(u64::try_from(word + i).ok()?)?)?;
            words.word(self.layout.read_vaddr(self.data, at, ps)?, 0)
        };
        let (Some(ptr), Some(len), Some(cap)) = (read(0), read(1), read(2)) else {
            return &[];
        };
        // One entry per descriptor at most: a longer list is no list.
        let most = self.etypes.saturating_sub(self.types) / self.header_size();
        if len > cap || len > most || to_usize(len).is_none() {
            return &[];
        }
        self.layout
            .read_vaddr(self.data, ptr, len * 4)
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::super::GoRelease;
    use super::super::tests::{TYPES, descriptor_sized, layout_for, name, table};
    use super::*;

    #[test]
    fn typelinks_words() {
        let r = |s| GoRelease::parse(s).unwrap();
        assert_eq!(typelinks_word(r("go1.19.8")), Some(42));
        assert_eq!(typelinks_word(r("go1.20.1")), Some(44));
        assert_eq!(typelinks_word(r("go1.25.1")), Some(44));
        assert_eq!(typelinks_word(r("go1.26.6")), Some(45));
        assert_eq!(typelinks_word(r("go1.27.3")), None);
        assert_eq!(typelinks_word(r("go1.18.10")), None);
    }

    /// Descriptors whose strings are `names` (in this order), then the
    /// names, then a typelinks list of the descriptors in `order`.
    fn section(names: &[&str], order: &[usize]) -> (Vec<u8>, usize) {
        let names_at = 8 + 48 * names.len();
        let mut d = vec![0u8; 8];
        let mut blob = Vec::new();
        for n in names {
            let off = names_at + blob.len();
            d.extend(descriptor_sized(8, 0, 22, off as i32));
            blob.extend(name(n));
        }
        d.extend(blob);
        d.resize(d.len().next_multiple_of(8), 0);
        let links_at = d.len();
        for &i in order {
            d.extend(((8 + 48 * i) as u32).to_le_bytes());
        }
        (d, links_at)
    }

    #[test]
    fn binary_search_by_type_string() {
        let names = ["*a.T", "*b.U", "*b.U", "*c.V", "[]a.T"];
        let (data, links_at) = section(&names, &[0, 1, 2, 3, 4]);
        let layout = layout_for(&data);
        let mut t = table(&data, &layout, 22);
        t.typelinks = &data[links_at..];
        let at = |i: u64| TYPES + 8 + 48 * i;
        assert_eq!(t.linked_by_string(b"*a.T"), vec![at(0)]);
        assert_eq!(t.linked_by_string(b"*b.U"), vec![at(1), at(2)]);
        assert_eq!(t.linked_by_string(b"[]a.T"), vec![at(4)]);
        assert!(t.linked_by_string(b"*b.T").is_empty());
        assert!(t.linked_by_string(b"zzz").is_empty());
        assert!(t.linked_by_string(b"").is_empty());

        // An unsorted or damaged list misses entries, never returns a wrong one.
        let (mut data, links_at) = section(&names, &[4, 3, 2, 1, 0]);
        data.extend(0x7fff_fff0u32.to_le_bytes());
        let layout = layout_for(&data);
        let mut t = table(&data, &layout, 22);
        t.typelinks = &data[links_at..];
        for n in names {
            for a in t.linked_by_string(n.as_bytes()) {
                assert_eq!(t.type_string_bytes(a), Some(n.as_bytes()));
            }
        }
        // No list: nothing.
        let t = table(&data, &layout, 22);
        assert!(t.linked_by_string(b"*a.T").is_empty());
    }
}
