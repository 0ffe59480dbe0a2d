//! The `.go.buildinfo` blob: the Go version and module info the toolchain
//! records in every binary (what `go version -m` prints).
//!
//! Layout: a 32-byte header, 16-byte aligned, opening with the 14-byte magic
//! `"\xff Go buildinf:"`, then the pointer size and a flags byte (bit 0: big
//! endian, bit 1: strings inline). Go 1.18 and later write the two strings
//! inline after the header, each prefixed by its uvarint length. Earlier
//! releases store two pointers at offset 16 to Go string headers
//! (`runtime.buildVersion`, `runtime.modinfo`), which are followed here
//! through the segment table.

use super::BuildInfo;
use super::elf::{Layout, SectionRange};
use super::modinfo;
use super::read::{Words, slice_at, to_usize, uvarint};

pub(crate) const MAGIC: &[u8; 14] = b"\xff Go buildinf:";
const HEADER_LEN: usize = 32;
const FLAG_BIG_ENDIAN: u8 = 1;
const FLAG_INLINE: u8 = 2;
/// Sanity limit on the two strings (Go refuses absurd sizes as well).
const MAX_STRING: u64 = 16 << 20;

/// Where the header is: its file offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Found {
    pub offset: usize,
}

/// Find the build info header: the `.go.buildinfo` section when section
/// headers exist, otherwise the first 16-byte aligned magic in a writable
/// `PT_LOAD` segment.
pub(crate) fn find(data: &[u8], layout: &Layout, section: Option<SectionRange>) -> Option<Found> {
    if let Some(sec) = section {
        let offset = to_usize(sec.offset)?;
        if data.get(offset..)?.starts_with(MAGIC) {
            return Some(Found { offset });
        }
    }
    for seg in layout
        .segments
        .iter()
        .filter(|s| s.writable() && !s.executable())
    {
        let (Some(start), Some(len)) = (to_usize(seg.offset), to_usize(seg.filesz)) else {
            continue;
        };
        let Some(bytes) = slice_at(data, start, len).or_else(|| data.get(start..)) else {
            continue;
        };
        // Alignment is of the virtual address; file offset and address agree modulo the page size.
        let skew = usize::try_from((16 - seg.vaddr % 16) % 16).unwrap_or(0);
        let mut i = skew;
        while let Some(window) = bytes.get(i..i + MAGIC.len()) {
            if window == MAGIC {
                return Some(Found { offset: start + i });
            }
            i += 16;
        }
    }
    None
}

/// Parse the build info at `found`.
pub(crate) fn parse(data: &[u8], layout: &Layout, found: Found) -> Result<BuildInfo, String> {
    let header = slice_at(data, found.offset, HEADER_LEN).ok_or("build info header")?;
    let ptr_size = header[14];
    let flags = header[15];
    let (version, modinfo_raw) = if flags & FLAG_INLINE != 0 {
        // Go 1.18+: two uvarint-prefixed strings right after the header.
        let (version, next) =
            inline_string(data, found.offset + HEADER_LEN).ok_or("build info Go version")?;
        let (modinfo, _) = inline_string(data, next).ok_or("build info module info")?;
        (version, modinfo)
    } else {
        // Before Go 1.18: pointers to string headers, in the binary's own
        // byte order (the flag) and pointer size.
        if ptr_size != 4 && ptr_size != 8 {
            return Err(format!("build info pointer size {ptr_size}"));
        }
        let words = Words::new(flags & FLAG_BIG_ENDIAN != 0, ptr_size);
        let version_ptr = words.word(header, 16).ok_or("build info header")?;
        let modinfo_ptr = words
            .word(header, 16 + usize::from(ptr_size))
            .ok_or("build info header")?;
        let version = pointed_string(data, layout, words, version_ptr)
            .ok_or("build info Go version (pointer)")?;
        let modinfo = pointed_string(data, layout, words, modinfo_ptr)
            .ok_or("build info module info (pointer)")?;
        (version, modinfo)
    };
    if version.is_empty() {
        return Err("build info: empty Go version".into());
    }
    let go_version = String::from_utf8_lossy(version).into_owned();
    let text = String::from_utf8_lossy(modinfo::unframe(modinfo_raw)).into_owned();
    let info = modinfo::parse(&text)?;
    Ok(BuildInfo {
        go_version,
        present: true,
        path: info.path,
        main: info.main,
        deps: info.deps,
        settings: info.settings,
    })
}

fn inline_string(data: &[u8], off: usize) -> Option<(&[u8], usize)> {
    let (len, start) = uvarint(data, off)?;
    if len > MAX_STRING {
        return None;
    }
    let len = to_usize(len)?;
    Some((slice_at(data, start, len)?, start + len))
}

/// A Go string whose header (data pointer, length) is at virtual address `ptr`.
fn pointed_string<'d>(data: &'d [u8], layout: &Layout, words: Words, ptr: u64) -> Option<&'d [u8]> {
    let ps = u64::from(words.ptr_size);
    let header = layout.read_vaddr(data, ptr, 2 * ps)?;
    let str_ptr = words.word(header, 0)?;
    let len = words.word(header, usize::from(words.ptr_size))?;
    if len > MAX_STRING {
        return None;
    }
    if len == 0 {
        return Some(&[]);
    }
    layout.read_vaddr(data, str_ptr, len)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::gobin::elf::Segment;

    pub(crate) const MODINFO: &str = "path\texample.com/hello\nmod\texample.com/hello\t(devel)\t\ndep\texample.com/greet\tv1.2.0\n=>\texample.com/greet\tv1.3.0\th1:abc=\n\ndep\texample.com/local\tv0.0.0\n=>\t./local\t\t\nbuild\t-ldflags=\"-s -w\"\nbuild\tGOARCH=amd64\n";

    fn framed(text: &str) -> Vec<u8> {
        let mut v = vec![0x30u8; 16];
        v.extend_from_slice(text.as_bytes());
        v.extend_from_slice(&[0xf9; 16]);
        v
    }

    fn uvarint_bytes(mut v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        while v >= 0x80 {
            out.push((v as u8) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
        out
    }

    /// A Go 1.18+ inline build info blob.
    pub(crate) fn inline_blob(version: &str, modinfo: &str) -> Vec<u8> {
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&[8, FLAG_INLINE]);
        b.resize(32, 0);
        let m = framed(modinfo);
        b.extend(uvarint_bytes(version.len() as u64));
        b.extend_from_slice(version.as_bytes());
        b.extend(uvarint_bytes(m.len() as u64));
        b.extend_from_slice(&m);
        b
    }

    fn one_segment(len: usize, base: u64, words: Words) -> Layout {
        Layout {
            words,
            segments: vec![Segment {
                vaddr: base,
                memsz: len as u64,
                offset: 0,
                filesz: len as u64,
                flags: 6,
            }],
        }
    }

    /// A pre-1.18 pointer build info blob: header, then two string headers,
    /// then the string bytes, all in one segment at `base`.
    pub(crate) fn pointer_blob(
        version: &str,
        modinfo: &str,
        ptr_size: u8,
        big: bool,
        base: u64,
    ) -> Vec<u8> {
        let put = |b: &mut Vec<u8>, v: u64| {
            let bytes = if big {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            };
            if ptr_size == 8 {
                b.extend_from_slice(&bytes);
            } else if big {
                b.extend_from_slice(&bytes[4..]);
            } else {
                b.extend_from_slice(&bytes[..4]);
            }
        };
        let ps = u64::from(ptr_size);
        let m = framed(modinfo);
        let hdr1 = base + 32;
        let hdr2 = hdr1 + 2 * ps;
        let vstr = hdr2 + 2 * ps;
        let mstr = vstr + version.len() as u64;
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&[ptr_size, if big { FLAG_BIG_ENDIAN } else { 0 }]);
        put(&mut b, hdr1);
        put(&mut b, hdr2);
        b.resize(32, 0);
        put(&mut b, vstr);
        put(&mut b, version.len() as u64);
        put(&mut b, mstr);
        put(&mut b, m.len() as u64);
        b.extend_from_slice(version.as_bytes());
        b.extend_from_slice(&m);
        b
    }

    fn check(info: &BuildInfo, version: &str) {
        assert_eq!(info.go_version, version);
        assert_eq!(info.path.as_deref(), Some("example.com/hello"));
        assert_eq!(info.main.as_ref().unwrap().version, "(devel)");
        assert_eq!(info.deps.len(), 2);
        assert_eq!(info.deps[0].replace.as_ref().unwrap().version, "v1.3.0");
        assert_eq!(info.deps[1].replace.as_ref().unwrap().path, "./local");
        assert_eq!(
            info.settings[0],
            ("-ldflags".to_string(), "-s -w".to_string())
        );
    }

    #[test]
    fn inline_layout() {
        let blob = inline_blob("go1.22.10", MODINFO);
        let layout = one_segment(blob.len(), 0x500000, Words::new(false, 8));
        let found = find(&blob, &layout, None).unwrap();
        check(&parse(&blob, &layout, found).unwrap(), "go1.22.10");
    }

    #[test]
    fn pointer_layout_all_sizes_and_orders() {
        for (ptr_size, big) in [(8, false), (8, true), (4, false), (4, true)] {
            let base = 0x0808_0000;
            let blob = pointer_blob("go1.16.15", MODINFO, ptr_size, big, base);
            let layout = one_segment(blob.len(), base, Words::new(big, ptr_size));
            let found = find(&blob, &layout, None).unwrap();
            check(&parse(&blob, &layout, found).unwrap(), "go1.16.15");
        }
    }

    #[test]
    fn section_and_aligned_scan() {
        let mut data = vec![0u8; 48];
        data.extend(inline_blob("go1.26.6", MODINFO));
        let layout = one_segment(data.len(), 0x600000, Words::new(false, 8));
        assert_eq!(find(&data, &layout, None), Some(Found { offset: 48 }));
        let sec = SectionRange {
            vaddr: 0x600030,
            offset: 48,
            size: 64,
        };
        assert_eq!(find(&data, &layout, Some(sec)), Some(Found { offset: 48 }));
        // A magic that is not 16-byte aligned is not build info.
        let mut skewed = vec![0u8; 8];
        skewed.extend(inline_blob("go1.26.6", MODINFO));
        assert_eq!(
            find(
                &skewed,
                &one_segment(skewed.len(), 0x600000, Words::new(false, 8)),
                None
            ),
            None
        );
        // Without a writable segment nothing is found.
        let mut ro = one_segment(data.len(), 0x600000, Words::new(false, 8));
        ro.segments[0].flags = 4;
        assert_eq!(find(&data, &ro, None), None);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let base = 0x1000;
        for blob in [
            inline_blob("go1.22.10", MODINFO),
            pointer_blob("go1.16.15", MODINFO, 8, false, base),
        ] {
            for cut in 0..blob.len() {
                let short = &blob[..cut];
                let layout = one_segment(short.len(), base, Words::new(false, 8));
                if let Some(found) = find(short, &layout, None) {
                    assert!(parse(short, &layout, found).is_err(), "cut at {cut} parsed");
                }
            }
        }
    }

    #[test]
    fn bad_pointers_and_sizes() {
        let base = 0x1000;
        let mut blob = pointer_blob("go1.16.15", MODINFO, 8, false, base);
        let layout = one_segment(blob.len(), base, Words::new(false, 8));
        blob[16..24].copy_from_slice(&0xdead_beefu64.to_le_bytes());
        assert!(parse(&blob, &layout, Found { offset: 0 }).is_err());
        blob[14] = 3;
        assert!(parse(&blob, &layout, Found { offset: 0 }).is_err());
        let mut huge = inline_blob("go1.22.10", MODINFO);
        huge.truncate(32);
        huge.extend(uvarint_bytes(u64::MAX));
        assert!(parse(&huge, &layout, Found { offset: 0 }).is_err());
    }
}
