//! The Go version of a binary whose build info was removed (some bundlers
//! ship binaries with a `.gopclntab` but no `.go.buildinfo`): the runtime's
//! own copy, `runtime.buildVersion`, a Go string the linker fills in every
//! binary.
//!
//! Found by the symbol when `.symtab` is there; otherwise as the one string
//! header (pointer, length) in writable data that points at a read-only
//! string shaped like a Go version (`go1.23.4`, `go1.24rc1`, with an
//! optional ` X:experiment,...` suffix). Two different candidates, or a
//! version whose release does not match the pclntab format, give no answer:
//! the version is then reported unknown, never guessed.

use super::PclntabVersion;
use super::elf::Layout;
use super::read::to_usize;

/// Longest version string accepted (`go1.23.4 X:a,b,c` fits easily).
const MAX_LEN: u64 = 96;

/// Whether `s` is shaped like a Go release version string.
fn is_version(s: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(s) else {
        return false;
    };
    let (v, exp) = match s.split_once(" X:") {
        Some((v, e)) => (v, Some(e)),
        None => (s, None),
    };
    if exp.is_some_and(|e| {
        e.is_empty()
            || !e
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b',' || b == b'_')
    }) {
        return false;
    }
    let Some(rest) = v.strip_prefix("go1.") else {
        return false;
    };
    // 23, 23.4, 24rc1, 24beta2
    let num_end = rest
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(rest.len());
    let (nums, pre) = rest.split_at(num_end);
    let nums_ok = !nums.is_empty()
        && nums
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && nums.split('.').count() <= 2;
    let pre_ok = pre.is_empty()
        || ["rc", "beta"].iter().any(|k| {
            pre.strip_prefix(k)
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        });
    nums_ok && pre_ok
}

/// Whether a version's minor release writes this pclntab format.
fn matches_pclntab(version: &str, pclntab: Option<PclntabVersion>) -> bool {
    let minor: Option<u32> = version
        .strip_prefix("go1.")
        .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|m| m.parse().ok());
    let Some(minor) = minor else { return false };
    match pclntab {
        Some(PclntabVersion::Go120) => minor >= 20,
        Some(PclntabVersion::Go118) => (18..=19).contains(&minor),
        Some(PclntabVersion::Go116) => (16..=17).contains(&minor),
        Some(PclntabVersion::Go12) => minor <= 15,
        None => true,
    }
}

/// The Go string whose header is at `addr`, when it is a version string.
fn version_at(data: &[u8], layout: &Layout, addr: u64) -> Option<String> {
    let words = layout.words;
    let ps = u64::from(words.ptr_size);
    let header = layout.read_vaddr(data, addr, 2 * ps)?;
    let ptr = words.word(header, 0)?;
    let len = words.word(header, usize::from(words.ptr_size))?;
    if !(4..=MAX_LEN).contains(&len) {
        return None;
    }
    let bytes = layout.read_vaddr(data, ptr, len)?;
    is_version(bytes).then(|| String::from_utf8_lossy(bytes).into_owned())
}

/// `runtime.buildVersion`, from its symbol (`symbol`: its address) or by a
/// scan of writable data, checked against the pclntab format.
pub(crate) fn runtime_version(
    data: &[u8],
    layout: &Layout,
    symbol: Option<u64>,
    pclntab: Option<PclntabVersion>,
) -> Option<String> {
    if let Some(addr) = symbol {
        return version_at(data, layout, addr).filter(|v| matches_pclntab(v, pclntab));
    }
    let step = usize::from(layout.words.ptr_size);
    let mut found: Option<String> = None;
    for seg in layout
        .segments
        .iter()
        .filter(|s| s.writable() && !s.executable())
    {
        let (Some(start), Some(len)) = (to_usize(seg.offset), to_usize(seg.filesz)) else {
            continue;
        };
        let end = start.saturating_add(len).min(data.len());
        let mut i = 0usize;
        while start + i + 2 * step <= end {
            // Cheap filter: a plausible length word after a pointer word.
            let len_at = start + i + step;
            let len_word = layout.words.word(data, len_at).unwrap_or(0);
            if (4..=MAX_LEN).contains(&len_word)
                && let Some(v) = version_at(data, layout, seg.vaddr + i as u64)
                && matches_pclntab(&v, pclntab)
            {
                match &found {
                    None => found = Some(v),
                    Some(f) if *f == v => {}
                    // Two different version strings: no answer.
                    Some(_) => return None,
                }
            }
            i += step;
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gobin::elf::Segment;
    use crate::gobin::read::Words;

    #[test]
    fn version_shapes() {
        for ok in [
            "go1.23.4",
            "go1.19",
            "go1.24rc1",
            "go1.22beta2",
            "go1.23.4 X:nocoverageredesign",
            "go1.24.0 X:noswissmap,aliastypeparams",
        ] {
            assert!(is_version(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "go1.",
            "go1.23.4.5",
            "go2.0",
            "go1.23x",
            "go1.23 X:",
            "go1.23.4 X:a b",
            "1.23",
            "go1.23rc",
        ] {
            assert!(!is_version(bad.as_bytes()), "{bad}");
        }
        assert!(matches_pclntab("go1.23.4", Some(PclntabVersion::Go120)));
        assert!(!matches_pclntab("go1.19.8", Some(PclntabVersion::Go120)));
        assert!(matches_pclntab("go1.19.8", Some(PclntabVersion::Go118)));
    }

    /// Writable data at 0x1000 holding string headers, read-only strings at 0x2000.
    fn image(headers: &[(u64, u64)], strings: &[u8]) -> (Vec<u8>, Layout) {
        let mut data = vec![0u8; 0x1000];
        for (i, (p, l)) in headers.iter().enumerate() {
            data[16 * i..16 * i + 8].copy_from_slice(&p.to_le_bytes());
            data[16 * i + 8..16 * i + 16].copy_from_slice(&l.to_le_bytes());
        }
        data.extend_from_slice(strings);
        let len = data.len() as u64;
        let layout = Layout {
            words: Words::new(false, 8),
            segments: vec![
                Segment {
                    vaddr: 0x1000,
                    memsz: 0x1000,
                    offset: 0,
                    filesz: 0x1000,
                    flags: 6,
                },
                Segment {
                    vaddr: 0x2000,
                    memsz: len - 0x1000,
                    offset: 0x1000,
                    filesz: len - 0x1000,
                    flags: 4,
                },
            ],
        };
        (data, layout)
    }

    #[test]
    fn finds_the_runtime_copy() {
        // "go1.23.4" packed among other string data, as the linker packs it.
        let strings = b"go1.2 nope go1.23.4net/http";
        let (data, layout) = image(&[(0x2000 + 11, 8), (0x2000, 27)], strings);
        let go120 = Some(PclntabVersion::Go120);
        assert_eq!(
            runtime_version(&data, &layout, None, go120).as_deref(),
            Some("go1.23.4")
        );
        assert_eq!(
            runtime_version(&data, &layout, Some(0x1000), go120).as_deref(),
            Some("go1.23.4")
        );
        // Wrong pclntab generation for the version: no answer.
        assert_eq!(
            runtime_version(&data, &layout, None, Some(PclntabVersion::Go118)),
            None
        );
        // Two different candidates: no answer.
        let strings = b"go1.23.4go1.22.1";
        let (data, layout) = image(&[(0x2000, 8), (0x2008, 8)], strings);
        assert_eq!(runtime_version(&data, &layout, None, go120), None);
    }
}
