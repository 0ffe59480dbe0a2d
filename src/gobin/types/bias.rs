//! The load bias of a running process: runtime address minus link-time
//! address, which turns an address an eBPF probe captured into one the type
//! table takes.

use super::super::GoBinary;
use super::TypeError;

/// The load bias of process `pid` running `bin`: runtime address minus
/// link-time address (0 for a non-PIE executable), from `/proc/PID/maps`.
pub fn load_bias(pid: u32, bin: &GoBinary) -> Result<u64, TypeError> {
    let perr = |what: String| TypeError::Process { pid, what };
    let maps_path = format!("/proc/{pid}/maps");
    let maps =
        std::fs::read_to_string(&maps_path).map_err(|e| perr(format!("{maps_path}: {e}")))?;
    if !bin.elf().pie {
        return Ok(0);
    }
    let exe = std::fs::read_link(format!("/proc/{pid}/exe")).ok();
    let inode = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(format!("/proc/{pid}/exe"))
            .ok()
            .map(|m| m.ino())
    };
    bias_from_maps(&maps, &bin.layout.segments, exe.as_deref(), inode)
        .ok_or_else(|| perr("no mapping of its executable matches the binary's segments".into()))
}

/// The bias from the text of a maps file: the first mapping of the
/// executable (by path or inode) whose file offset is a `PT_LOAD` segment's
/// page-aligned offset.
fn bias_from_maps(
    maps: &str,
    segments: &[crate::gobin::elf::Segment],
    exe: Option<&std::path::Path>,
    inode: Option<u64>,
) -> Option<u64> {
    const PAGE: u64 = 0x1000;
    for line in maps.lines() {
        let mut cols = line.split_whitespace();
        let (Some(range), Some(_perms), Some(off), Some(_dev), Some(ino)) = (
            cols.next(),
            cols.next(),
            cols.next(),
            cols.next(),
            cols.next(),
        ) else {
            continue;
        };
        let path: Vec<&str> = cols.collect();
        let path = path.join(" ");
        let path = path.strip_suffix(" (deleted)").unwrap_or(&path);
        let by_path = exe.is_some_and(|e| e.as_os_str() == path);
        let by_inode = inode.is_some_and(|i| ino.parse::<u64>().ok() == Some(i) && i != 0);
        if !by_path && !by_inode {
            continue;
        }
        let start = u64::from_str_radix(range.split('-').next()?, 16).ok()?;
        let off = u64::from_str_radix(off, 16).ok()?;
        for seg in segments {
            if seg.offset & !(PAGE - 1) == off {
                return start.checked_sub(seg.vaddr & !(PAGE - 1));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gobin::elf::Segment;

    #[test]
    fn bias_from_proc_maps() {
        let segs = [
            Segment {
                vaddr: 0x0,
                memsz: 0x1000,
                offset: 0,
                filesz: 0x1000,
                flags: 5,
            },
            Segment {
                vaddr: 0x2000,
                memsz: 0x1000,
                offset: 0x1000,
                filesz: 0x1000,
                flags: 4,
            },
        ];
        let maps = "\
55d0c0000000-55d0c0001000 r-xp 00000000 08:01 1234 /tmp/my prog (deleted)
55d0c0002000-55d0c0003000 r--p 00001000 08:01 1234 /tmp/my prog (deleted)
7fff00000000-7fff00001000 rw-p 00000000 00:00 0 [stack]
";
        let exe = std::path::Path::new("/tmp/my prog");
        assert_eq!(
            bias_from_maps(maps, &segs, Some(exe), None),
            Some(0x55d0c0000000)
        );
        assert_eq!(
            bias_from_maps(maps, &segs, None, Some(1234)),
            Some(0x55d0c0000000)
        );
        assert_eq!(bias_from_maps(maps, &segs, None, Some(99)), None);
        assert_eq!(bias_from_maps("garbage\n", &segs, Some(exe), None), None);
    }
}
