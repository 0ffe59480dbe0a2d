//! ELF facts goprobe needs from a Go binary, read with the `object` crate:
//! architecture, PIE, symbol table and DWARF presence, and the `PT_LOAD`
//! segments that map virtual addresses to file offsets.

use object::read::{Object, ObjectSection, ObjectSegment, ObjectSymbol};
use object::{Architecture, SectionFlags, SegmentFlags};

use super::Arch;
use super::read::{Words, slice_at, to_usize};

/// `PF_X`, `PF_W` from the ELF specification.
const PF_X: u32 = 1;
const PF_W: u32 = 2;
/// `SHF_COMPRESSED`, `SHF_ALLOC`, `SHF_EXECINSTR`.
const SHF_COMPRESSED: u64 = 0x800;
const SHF_ALLOC: u64 = 0x2;
const SHF_EXECINSTR: u64 = 0x4;

/// One `PT_LOAD` segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    pub vaddr: u64,
    pub memsz: u64,
    pub offset: u64,
    pub filesz: u64,
    /// `p_flags` (`PF_R`/`PF_W`/`PF_X`).
    pub flags: u32,
}

impl Segment {
    pub fn executable(&self) -> bool {
        self.flags & PF_X != 0
    }
    pub fn writable(&self) -> bool {
        self.flags & PF_W != 0
    }
    /// Whether `vaddr` lies in the part of the segment backed by the file.
    pub fn contains_file_backed(&self, vaddr: u64) -> bool {
        vaddr >= self.vaddr && vaddr - self.vaddr < self.filesz
    }
}

/// Address-space layout of a binary: byte order, pointer size and segments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    pub words: Words,
    pub segments: Vec<Segment>,
}

impl Layout {
    pub fn from_object(file: &object::File<'_>) -> Layout {
        let words = Words::new(!file.is_little_endian(), if file.is_64() { 8 } else { 4 });
        let segments = file
            .segments()
            .map(|s| {
                let (offset, filesz) = s.file_range();
                let flags = match s.flags() {
                    SegmentFlags::Elf { p_flags, .. } => p_flags,
                    _ => 0,
                };
                Segment {
                    vaddr: s.address(),
                    memsz: s.size(),
                    offset,
                    filesz,
                    flags,
                }
            })
            .collect();
        Layout { words, segments }
    }

    /// The `PT_LOAD` segment whose file-backed part holds `vaddr`.
    pub fn segment_of(&self, vaddr: u64) -> Option<&Segment> {
        self.segments.iter().find(|s| s.contains_file_backed(vaddr))
    }

    /// File offset of a virtual address (segment offset + distance into it).
    pub fn vaddr_to_offset(&self, vaddr: u64) -> Option<u64> {
        let seg = self.segment_of(vaddr)?;
        seg.offset.checked_add(vaddr - seg.vaddr)
    }

    /// `len` bytes of the file at virtual address `vaddr`, all within one segment.
    pub fn read_vaddr<'d>(&self, data: &'d [u8], vaddr: u64, len: u64) -> Option<&'d [u8]> {
        let seg = self.segment_of(vaddr)?;
        if len > seg.filesz - (vaddr - seg.vaddr) {
            return None;
        }
        slice_at(
            data,
            to_usize(seg.offset.checked_add(vaddr - seg.vaddr)?)?,
            to_usize(len)?,
        )
    }

    /// Whether `[start, end)` is inside one executable segment.
    pub fn is_executable_range(&self, start: u64, end: u64) -> bool {
        self.segments
            .iter()
            .any(|s| s.executable() && start >= s.vaddr && end >= start && end - s.vaddr <= s.memsz)
    }
}

/// Where a section lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SectionRange {
    pub vaddr: u64,
    pub offset: u64,
    pub size: u64,
}

/// The file range of the named section, if it exists and has file contents.
pub(crate) fn section(file: &object::File<'_>, name: &str) -> Option<SectionRange> {
    let s = file.section_by_name(name)?;
    let (offset, size) = s.file_range()?;
    Some(SectionRange {
        vaddr: s.address(),
        offset,
        size,
    })
}

/// File ranges (offset, size) of the sections that can hold the program's
/// string data: loaded, not code, with file contents, and not the function
/// table (names and file paths only). Go's linker writes string literals to
/// `.rodata`; the other data sections are kept so nothing depends on that.
/// Empty when the file has no section headers.
pub(crate) fn data_sections(file: &object::File<'_>) -> Vec<(u64, u64)> {
    file.sections()
        .filter(|s| {
            matches!(s.flags(), SectionFlags::Elf { sh_flags }
                if sh_flags & SHF_ALLOC != 0 && sh_flags & SHF_EXECINSTR == 0)
                && !s.name().is_ok_and(|n| n.ends_with(".gopclntab"))
        })
        .filter_map(|s| s.file_range())
        .collect()
}

/// The name of a section whose file contents do not fit in a file of
/// `len` bytes (a truncated file), if there is one.
pub(crate) fn section_past_end(file: &object::File<'_>, len: usize) -> Option<String> {
    file.sections().find_map(|s| {
        let (offset, size) = s.file_range()?;
        let fits = offset
            .checked_add(size)
            .is_some_and(|end| end <= len as u64);
        (!fits).then(|| s.name().unwrap_or("?").to_string())
    })
}

/// Addresses of the named symbols in `.symtab` (one pass over the table).
pub(crate) fn symbol_addresses<const N: usize>(
    file: &object::File<'_>,
    names: [&str; N],
) -> [Option<u64>; N] {
    let mut found = [None; N];
    for sym in file.symbols() {
        let Ok(name) = sym.name() else { continue };
        if let Some(i) = names.iter().position(|n| *n == name) {
            found[i] = Some(sym.address());
        }
    }
    found
}

/// Facts about the ELF file itself.
pub(crate) struct Facts {
    pub arch: Arch,
    pub pie: bool,
    pub stripped: bool,
    pub dwarf: bool,
    pub dwarf_compressed: bool,
}

pub(crate) fn facts(file: &object::File<'_>) -> Facts {
    let big = !file.is_little_endian();
    let arch = match file.architecture() {
        Architecture::X86_64 => Arch::Amd64,
        Architecture::Aarch64 => Arch::Arm64,
        Architecture::I386 => Arch::Other("386".into()),
        Architecture::Arm => Arch::Other("arm".into()),
        Architecture::Riscv64 => Arch::Other("riscv64".into()),
        Architecture::PowerPc64 => Arch::Other(if big { "ppc64" } else { "ppc64le" }.into()),
        Architecture::S390x => Arch::Other("s390x".into()),
        Architecture::Mips => Arch::Other(if big { "mips" } else { "mipsle" }.into()),
        Architecture::Mips64 => Arch::Other(if big { "mips64" } else { "mips64le" }.into()),
        Architecture::LoongArch64 => Arch::Other("loong64".into()),
        other => Arch::Other(format!("{other:?}").to_lowercase()),
    };
    let pie = file.kind() == object::ObjectKind::Dynamic;
    let stripped = file.section_by_name(".symtab").is_none();
    let debug_info = file
        .section_by_name(".debug_info")
        .or_else(|| file.section_by_name(".zdebug_info"));
    let dwarf = debug_info.is_some();
    let dwarf_compressed = debug_info.is_some_and(|s| {
        s.name().is_ok_and(|n| n.starts_with(".zdebug"))
            || matches!(s.flags(), SectionFlags::Elf { sh_flags, .. } if sh_flags & SHF_COMPRESSED != 0)
    });
    Facts {
        arch,
        pie,
        stripped,
        dwarf,
        dwarf_compressed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn layout() -> Layout {
        Layout {
            words: Words::new(false, 8),
            segments: vec![
                Segment {
                    vaddr: 0x400000,
                    memsz: 0x2000,
                    offset: 0,
                    filesz: 0x2000,
                    flags: PF_X | 4,
                },
                Segment {
                    vaddr: 0x403000,
                    memsz: 0x3000,
                    offset: 0x2000,
                    filesz: 0x1000,
                    flags: PF_W | 4,
                },
            ],
        }
    }

    #[test]
    fn maps_addresses_through_segments() {
        let l = layout();
        assert_eq!(l.vaddr_to_offset(0x400010), Some(0x10));
        assert_eq!(l.vaddr_to_offset(0x403010), Some(0x2010));
        // Beyond the file-backed part (.bss) and between segments: no offset.
        assert_eq!(l.vaddr_to_offset(0x404000), None);
        assert_eq!(l.vaddr_to_offset(0x402800), None);
        let data = vec![7u8; 0x3000];
        assert_eq!(
            l.read_vaddr(&data, 0x403ff0, 0x10).map(<[u8]>::len),
            Some(0x10)
        );
        assert_eq!(l.read_vaddr(&data, 0x403ff0, 0x11), None);
        assert_eq!(l.read_vaddr(&data, 0x403ff0, u64::MAX), None);
        assert!(l.is_executable_range(0x400000, 0x402000));
        assert!(!l.is_executable_range(0x400000, 0x402001));
        assert!(!l.is_executable_range(0x403000, 0x403001));
    }
}
