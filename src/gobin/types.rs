//! Go runtime type descriptors (`runtime._type`, `internal/abi.Type` since
//! Go 1.21), read from the ELF file: the type string `reflect.Type.String()`
//! and `fmt`'s `%T` print, the reflect kind, and the import path of a named
//! type's package. Also the load bias of a running process, which turns the
//! runtime address an eBPF probe captured into the link-time address this
//! module takes.
//!
//! Facts this relies on, checked against the runtime sources of Go 1.19,
//! 1.21 through 1.27 and the fixture corpus built by each of them:
//! * `moduledata.types`/`etypes` bound every type descriptor and the names
//!   they point at. Word index in `runtime.moduledata`: 35/36 up to Go 1.19;
//!   37/38 from Go 1.20 (which added `covctrs, ecovctrs` before them); Go
//!   1.27 inserted `typedesclen` between them (`etypes` at 39).
//! * The descriptor: `Size_`, `PtrBytes` (words), `Hash` (u32), `TFlag`,
//!   `Align_`, `FieldAlign_`, `Kind_` (u8 each), `Equal`, `GCData` (words),
//!   `Str` (i32 name offset from `types`), `PtrToThis` (i32); unchanged from
//!   Go 1.14 through 1.27.
//! * `Kind_`: up to Go 1.25 the low 5 bits are the kind (bit 5 is
//!   `KindDirectIface`, bit 6 `KindGCProg` until Go 1.24); Go 1.26 moved
//!   direct-interface to `TFlagDirectIface` and `Kind_` is the kind alone.
//! * `TFlagUncommon` (bit 0): an `UncommonType` (`PkgPath` name offset first)
//!   follows the kind-specific descriptor; `TFlagExtraStar` (bit 1): the name
//!   has a leading `*` that is not part of the type string.
//! * A name is a flags byte, a uvarint length, then the bytes (Go 1.17+).

use std::path::PathBuf;

use super::GoBinary;
use super::elf::Layout;
use super::read::{to_usize, uvarint};

const TFLAG_UNCOMMON: u8 = 1 << 0;
const TFLAG_EXTRA_STAR: u8 = 1 << 1;
const TFLAG_NAMED: u8 = 1 << 2;
/// Longest type name or package path accepted (a bound on untrusted lengths,
/// far above what the Go toolchain writes for real types).
const MAX_NAME: u64 = 1 << 20;

/// Why a type descriptor could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TypeError {
    #[error("{path}: cannot read runtime types: {what}")]
    Binary { path: PathBuf, what: String },
    #[error("{path}: runtime type layout of Go {version} is not known")]
    UnsupportedVersion { path: PathBuf, version: String },
    #[error("type address {addr:#x} is outside the type section [{types:#x}, {etypes:#x})")]
    OutOfRange { addr: u64, types: u64, etypes: u64 },
    #[error("malformed type descriptor at {addr:#x}: {what}")]
    Malformed { addr: u64, what: String },
    #[error("process {pid}: {what}")]
    Process { pid: u32, what: String },
}

/// A Go release as `major.minor` (the patch level never changes layouts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GoRelease {
    pub major: u32,
    pub minor: u32,
}

impl GoRelease {
    /// Parse `go1.22.10`, `go1.21rc2`, `devel go1.23-abc...` (as build info
    /// records them).
    pub fn parse(version: &str) -> Option<GoRelease> {
        let v = version.strip_prefix("devel ").unwrap_or(version);
        let rest = v.strip_prefix("go")?;
        let mut parts = rest.splitn(2, '.');
        let major = parts.next()?.parse().ok()?;
        let minor: String = parts
            .next()?
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        Some(GoRelease {
            major,
            minor: minor.parse().ok()?,
        })
    }

    fn at_least(self, minor: u32) -> bool {
        self.major > 1 || (self.major == 1 && self.minor >= minor)
    }
}

impl std::fmt::Display for GoRelease {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// reflect.Kind, numbered as Go numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Bool = 1,
    Int,
    Int8,
    Int16,
    Int32,
    Int64,
    Uint,
    Uint8,
    Uint16,
    Uint32,
    Uint64,
    Uintptr,
    Float32,
    Float64,
    Complex64,
    Complex128,
    Array,
    Chan,
    Func,
    Interface,
    Map,
    Pointer,
    Slice,
    String,
    Struct,
    UnsafePointer,
}

impl Kind {
    const ALL: [Kind; 26] = [
        Kind::Bool,
        Kind::Int,
        Kind::Int8,
        Kind::Int16,
        Kind::Int32,
        Kind::Int64,
        Kind::Uint,
        Kind::Uint8,
        Kind::Uint16,
        Kind::Uint32,
        Kind::Uint64,
        Kind::Uintptr,
        Kind::Float32,
        Kind::Float64,
        Kind::Complex64,
        Kind::Complex128,
        Kind::Array,
        Kind::Chan,
        Kind::Func,
        Kind::Interface,
        Kind::Map,
        Kind::Pointer,
        Kind::Slice,
        Kind::String,
        Kind::Struct,
        Kind::UnsafePointer,
    ];

    /// The kind numbered `n` (1..=26); 0 (`Invalid`) is never a descriptor's kind.
    pub fn from_number(n: u8) -> Option<Kind> {
        Kind::ALL.get(usize::from(n).checked_sub(1)?).copied()
    }

    /// As `reflect.Kind.String()` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Bool => "bool",
            Kind::Int => "int",
            Kind::Int8 => "int8",
            Kind::Int16 => "int16",
            Kind::Int32 => "int32",
            Kind::Int64 => "int64",
            Kind::Uint => "uint",
            Kind::Uint8 => "uint8",
            Kind::Uint16 => "uint16",
            Kind::Uint32 => "uint32",
            Kind::Uint64 => "uint64",
            Kind::Uintptr => "uintptr",
            Kind::Float32 => "float32",
            Kind::Float64 => "float64",
            Kind::Complex64 => "complex64",
            Kind::Complex128 => "complex128",
            Kind::Array => "array",
            Kind::Chan => "chan",
            Kind::Func => "func",
            Kind::Interface => "interface",
            Kind::Map => "map",
            Kind::Pointer => "ptr",
            Kind::Slice => "slice",
            Kind::String => "string",
            Kind::Struct => "struct",
            Kind::UnsafePointer => "unsafe.Pointer",
        }
    }
}

/// One resolved type descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoType {
    /// Link-time address of the descriptor.
    pub addr: u64,
    /// As `%T` prints it: `string`, `*errors.errorString`, `[]main.T`.
    pub name: String,
    pub kind: Kind,
    /// `TFlagNamed`: a defined type (or a predeclared one like `string`).
    pub named: bool,
    /// The import path of the package of the type (or, for a pointer, slice,
    /// array or channel of a named type, of that type), from the descriptor's
    /// uncommon part: `errors`, `github.com/lib/pq`, `main`. `None` when the
    /// descriptor records none (predeclared and unnamed types) or its place
    /// is not known for the kind (maps).
    pub pkg_path: Option<String>,
    /// The binary's pointer size (the size of the words the type's values hold).
    pub ptr_size: u8,
    pub release: GoRelease,
}

/// The type section of one binary, ready to resolve descriptor addresses.
#[derive(Debug)]
pub struct TypeTable<'b> {
    data: &'b [u8],
    layout: &'b Layout,
    types: u64,
    etypes: u64,
    release: GoRelease,
}

/// Word indexes of `types` and `etypes` in `runtime.moduledata`.
fn types_words(release: GoRelease) -> Option<(usize, usize)> {
    if release.major != 1 || release.minor < 19 {
        // Go 1.16-1.18 are believed to match 1.19 but were never checked.
        return None;
    }
    Some(if release.at_least(27) {
        // Go 1.27: `types, typedesclen, etypes`.
        (37, 39)
    } else if release.at_least(20) {
        // Go 1.20 added `covctrs, ecovctrs` before `end, gcdata, gcbss`.
        (37, 38)
    } else {
        (35, 36)
    })
}

impl<'b> TypeTable<'b> {
    /// Find the binary's moduledata and its type section.
    pub fn new(bin: &'b GoBinary) -> Result<TypeTable<'b>, TypeError> {
        let err = |what: String| TypeError::Binary {
            path: bin.path().to_path_buf(),
            what,
        };
        let version = &bin.build_info().go_version;
        let release = GoRelease::parse(version);
        let Some((types_at, etypes_at)) = release.and_then(types_words) else {
            return Err(TypeError::UnsupportedVersion {
                path: bin.path().to_path_buf(),
                version: version.clone(),
            });
        };
        let release = release.expect("types_words accepted it");
        let md = bin.moduledata_address().map_err(err)?;
        let words = bin.layout.words;
        let ps = u64::from(words.ptr_size);
        let word = |i: usize| -> Result<u64, TypeError> {
            let at = md
                .checked_add(ps * i as u64)
                .ok_or_else(|| err("moduledata address overflows".into()))?;
            bin.layout
                .read_vaddr(bin.data(), at, ps)
                .and_then(|b| words.word(b, 0))
                .ok_or_else(|| err(format!("moduledata at {md:#x} is cut short")))
        };
        let (types, etypes) = (word(types_at)?, word(etypes_at)?);
        // The whole section must be file-backed in one segment: every read
        // below then only needs the range check.
        let len = etypes.checked_sub(types).filter(|&l| l > 0);
        if len.is_none_or(|l| bin.layout.read_vaddr(bin.data(), types, l).is_none()) {
            return Err(err(format!(
                "moduledata type section [{types:#x}, {etypes:#x}) is not in the file"
            )));
        }
        Ok(TypeTable {
            data: bin.data(),
            layout: &bin.layout,
            types,
            etypes,
            release,
        })
    }

    /// A table over an explicit type section (fuzzing and unit tests).
    pub(crate) fn from_parts(
        data: &'b [u8],
        layout: &'b Layout,
        types: u64,
        etypes: u64,
        release: GoRelease,
    ) -> TypeTable<'b> {
        TypeTable {
            data,
            layout,
            types,
            etypes,
            release,
        }
    }

    /// `[types, etypes)`: where every type descriptor of the binary lies.
    pub fn range(&self) -> (u64, u64) {
        (self.types, self.etypes)
    }

    pub fn release(&self) -> GoRelease {
        self.release
    }

    fn ptr_size(&self) -> u64 {
        u64::from(self.layout.words.ptr_size)
    }

    /// Size of the common descriptor (`abi.Type`).
    fn header_size(&self) -> u64 {
        4 * self.ptr_size() + 16
    }

    /// `len` bytes at `addr`, all inside the type section.
    fn bytes(&self, addr: u64, len: u64) -> Option<&'b [u8]> {
        let end = addr.checked_add(len)?;
        if addr < self.types || end > self.etypes {
            return None;
        }
        self.layout.read_vaddr(self.data, addr, len)
    }

    /// Resolve the descriptor at link-time address `addr` (a runtime address
    /// minus the process's load bias).
    pub fn resolve(&self, addr: u64) -> Result<GoType, TypeError> {
        if addr < self.types || addr >= self.etypes {
            return Err(TypeError::OutOfRange {
                addr,
                types: self.types,
                etypes: self.etypes,
            });
        }
        let bad = |what: &str| TypeError::Malformed {
            addr,
            what: what.to_string(),
        };
        let ps = self.ptr_size();
        // Descriptors hold pointers (Equal, GCData), so they are pointer-aligned.
        if !addr.is_multiple_of(ps) {
            return Err(bad("not pointer-aligned"));
        }
        let head = self
            .bytes(addr, self.header_size())
            .ok_or_else(|| bad("runs past the end of the type section"))?;
        let words = self.layout.words;
        let flags_at = to_usize(2 * ps + 4).ok_or_else(|| bad("layout"))?;
        let (tflag, kind_byte) = (
            *head.get(flags_at).ok_or_else(|| bad("short"))?,
            *head.get(flags_at + 3).ok_or_else(|| bad("short"))?,
        );
        let kind_number = if self.release.at_least(26) {
            // Go 1.26: Kind_ holds the kind alone.
            kind_byte
        } else {
            kind_byte & 0x1f
        };
        let kind = Kind::from_number(kind_number)
            .ok_or_else(|| bad(&format!("kind byte {kind_byte:#x}")))?;
        let str_at = to_usize(4 * ps + 8).ok_or_else(|| bad("layout"))?;
        let str_off = words.u32(head, str_at).ok_or_else(|| bad("short"))? as i32;
        let mut name = self
            .name_at(str_off)
            .ok_or_else(|| bad(&format!("name offset {str_off:#x}")))?;
        if tflag & TFLAG_EXTRA_STAR != 0 {
            if !name.starts_with('*') {
                return Err(bad("extra-star name without a star"));
            }
            name.remove(0);
        }
        let pkg_path = self.pkg_path(addr, tflag, kind, 0);
        Ok(GoType {
            addr,
            name,
            kind,
            named: tflag & TFLAG_NAMED != 0,
            pkg_path,
            ptr_size: words.ptr_size,
            release: self.release,
        })
    }

    /// The name at `off` from `types`: flags byte, uvarint length, bytes.
    fn name_at(&self, off: i32) -> Option<String> {
        let at = self.types.checked_add(u64::try_from(off).ok()?)?;
        // Flags byte and at most a 10-byte uvarint, cut at the section end.
        let avail = self.etypes.checked_sub(at)?.min(11);
        let head = self.bytes(at, avail)?;
        let (len, data_at) = uvarint(head, 1)?;
        if len > MAX_NAME {
            return None;
        }
        let bytes = self.bytes(at.checked_add(data_at as u64)?, len)?;
        String::from_utf8(bytes.to_vec()).ok()
    }

    /// Offset of the `UncommonType` from the descriptor start, by kind: the
    /// size of the kind's descriptor struct (`abi.PtrType`, `abi.StructType`...).
    fn uncommon_offset(&self, kind: Kind) -> Option<u64> {
        let (t, ps) = (self.header_size(), self.ptr_size());
        Some(match kind {
            Kind::Array => t + 3 * ps,
            Kind::Chan => t + 2 * ps,
            // `InCount, OutCount uint16`, padded to pointer alignment.
            Kind::Func => (t + 4).next_multiple_of(ps),
            Kind::Interface | Kind::Struct => t + 4 * ps,
            Kind::Pointer | Kind::Slice => t + ps,
            // The map descriptor changed with Go 1.24's Swiss tables; not needed yet.
            Kind::Map => return None,
            _ => t,
        })
    }

    /// The package path recorded in the descriptor's uncommon part; for a
    /// pointer without one (no methods), that of the pointed-to type.
    fn pkg_path(&self, addr: u64, tflag: u8, kind: Kind, depth: u8) -> Option<String> {
        if tflag & TFLAG_UNCOMMON != 0 {
            let at = addr.checked_add(self.uncommon_offset(kind)?)?;
            let raw = self.bytes(at, 4)?;
            let off = self.layout.words.u32(raw, 0)? as i32;
            if off != 0 {
                return self.name_at(off).filter(|p| !p.is_empty());
            }
        }
        if kind == Kind::Pointer && depth == 0 {
            let ps = self.ptr_size();
            let raw = self.bytes(addr.checked_add(self.header_size())?, ps)?;
            let elem = self.layout.words.word(raw, 0)?;
            // Go's linker writes the pointer into PIE files too (checked on
            // the corpus); a file that leaves it to a dynamic relocation
            // (zero) gets no answer here.
            let head = self.bytes(elem, self.header_size())?;
            let flags_at = to_usize(2 * ps + 4)?;
            let (etflag, ekind) = (*head.get(flags_at)?, *head.get(flags_at + 3)?);
            let ekind = Kind::from_number(if self.release.at_least(26) {
                ekind
            } else {
                ekind & 0x1f
            })?;
            return self.pkg_path(elem, etflag, ekind, 1);
        }
        None
    }
}

/// Resolve one type descriptor address (see [`TypeTable::resolve`]).
pub fn resolve_type(bin: &GoBinary, addr: u64) -> Result<GoType, TypeError> {
    TypeTable::new(bin)?.resolve(addr)
}

/// The package import path of a named type given only its type string
/// (`*pq.Driver`, `pq.Error`, `[]pq.Error`), from the method names in the
/// function table (`github.com/lib/pq.(*Driver).Open`). `None` when no
/// method names the type or when packages of different paths match.
pub fn package_path_from_functions(bin: &GoBinary, type_string: &str) -> Option<String> {
    let fns = bin.function_table().ok()?;
    package_path_in(fns.iter().map(|f| f.name.as_str()), type_string)
}

/// [`package_path_from_functions`] over function names.
fn package_path_in<'n>(names: impl Iterator<Item = &'n str>, type_string: &str) -> Option<String> {
    let base = type_string.trim_start_matches(['*', '[', ']']);
    let (pkg, ty) = base.rsplit_once('.')?;
    if pkg.is_empty() || ty.is_empty() || pkg.contains(['/', ' ', '(', '[']) {
        return None;
    }
    let ptr_recv = format!(".(*{ty}).");
    let val_recv = format!(".{ty}.");
    let mut found: Option<&str> = None;
    for name in names {
        // Names keep a `vendor/` prefix: it is part of the import path of
        // the standard library's vendored packages, as reflect reports it.
        let Some(path) = name
            .find(&ptr_recv)
            .or_else(|| name.find(&val_recv))
            .map(|i| &name[..i])
        else {
            continue;
        };
        if !package_name_matches(path, pkg) {
            continue;
        }
        match found {
            None => found = Some(path),
            Some(p) if p == path => {}
            Some(_) => return None,
        }
    }
    found.map(str::to_string)
}

/// Whether a package at import `path` is conventionally named `name`: its
/// last element, without a `/vN` major-version element or a `.vN` suffix
/// (`gopkg.in/yaml.v3` is `yaml`).
fn package_name_matches(path: &str, name: &str) -> bool {
    let mut elems = path.rsplit('/');
    let Some(mut last) = elems.next() else {
        return false;
    };
    let is_major = |s: &str| {
        s.strip_prefix('v')
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    if is_major(last) {
        match elems.next() {
            Some(prev) => last = prev,
            None => return false,
        }
    }
    if let Some((stem, v)) = last.rsplit_once('.')
        && is_major(v)
    {
        last = stem;
    }
    last == name
}

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
    segments: &[super::elf::Segment],
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
    fn releases() {
        let r = |s| GoRelease::parse(s);
        assert_eq!(
            r("go1.22.10"),
            Some(GoRelease {
                major: 1,
                minor: 22
            })
        );
        assert_eq!(
            r("go1.21rc2"),
            Some(GoRelease {
                major: 1,
                minor: 21
            })
        );
        assert_eq!(
            r("devel go1.23-abc"),
            Some(GoRelease {
                major: 1,
                minor: 23
            })
        );
        assert_eq!(r("1.22"), None);
        assert_eq!(types_words(r("go1.19.13").unwrap()), Some((35, 36)));
        assert_eq!(types_words(r("go1.20").unwrap()), Some((37, 38)));
        assert_eq!(types_words(r("go1.26.6").unwrap()), Some((37, 38)));
        assert_eq!(types_words(r("go1.27.3").unwrap()), Some((37, 39)));
        assert_eq!(types_words(r("go1.18").unwrap()), None);
    }

    #[test]
    fn kinds_are_numbered_as_in_go() {
        assert_eq!(Kind::from_number(0), None);
        assert_eq!(Kind::from_number(24), Some(Kind::String));
        assert_eq!(Kind::from_number(22), Some(Kind::Pointer));
        assert_eq!(Kind::from_number(25), Some(Kind::Struct));
        assert_eq!(Kind::from_number(26), Some(Kind::UnsafePointer));
        assert_eq!(Kind::from_number(27), None);
        assert_eq!(Kind::Pointer.as_str(), "ptr");
    }

    const TYPES: u64 = 0x500000;

    /// A file whose only segment is a type section at `TYPES` holding `bytes`.
    fn layout_for(bytes: &[u8]) -> Layout {
        Layout {
            words: crate::gobin::read::Words::new(false, 8),
            segments: vec![Segment {
                vaddr: TYPES,
                memsz: bytes.len() as u64,
                offset: 0,
                filesz: bytes.len() as u64,
                flags: 4,
            }],
        }
    }

    /// A 48-byte descriptor with the given tflag, kind byte and name offset.
    fn descriptor(tflag: u8, kind: u8, str_off: i32) -> Vec<u8> {
        let mut d = vec![0u8; 48];
        d[20] = tflag;
        d[23] = kind;
        d[40..44].copy_from_slice(&str_off.to_le_bytes());
        d
    }

    /// A name: flags byte, uvarint length, bytes.
    fn name(s: &str) -> Vec<u8> {
        let mut n = vec![0u8];
        let mut len = s.len();
        loop {
            let b = (len & 0x7f) as u8;
            len >>= 7;
            if len == 0 {
                n.push(b);
                break;
            }
            n.push(b | 0x80);
        }
        n.extend_from_slice(s.as_bytes());
        n
    }

    fn table<'a>(data: &'a [u8], layout: &'a Layout, minor: u32) -> TypeTable<'a> {
        let end = TYPES + data.len() as u64;
        TypeTable::from_parts(data, layout, TYPES, end, GoRelease { major: 1, minor })
    }

    #[test]
    fn decodes_descriptors() {
        // Section: 8 bytes of padding, three descriptors, then the names.
        let long = format!("main.{}", "x".repeat(200));
        let mut data = vec![0u8; 8];
        let names_at = 8 + 3 * 48;
        let n1 = name("*errors.errorString");
        let n2 = name(&long);
        let d1 = descriptor(TFLAG_EXTRA_STAR | TFLAG_NAMED, 25 | 0x20, names_at);
        let d2 = descriptor(TFLAG_NAMED, 24, names_at + n1.len() as i32);
        let d3 = descriptor(0, 22, names_at);
        data.extend([d1, d2, d3].concat());
        data.extend(&n1);
        data.extend(&n2);
        let layout = layout_for(&data);

        let t = table(&data, &layout, 25);
        let a = t.resolve(TYPES + 8).unwrap();
        assert_eq!(a.name, "errors.errorString");
        assert_eq!(a.kind, Kind::Struct);
        assert!(a.named);
        assert_eq!(a.pkg_path, None);
        // A two-byte uvarint length.
        let b = t.resolve(TYPES + 56).unwrap();
        assert_eq!((b.name.as_str(), b.kind), (long.as_str(), Kind::String));
        let c = t.resolve(TYPES + 104).unwrap();
        assert_eq!(
            (c.name.as_str(), c.kind),
            ("*errors.errorString", Kind::Pointer)
        );

        // Go 1.26: Kind_ is the kind alone, so a set bit 5 is not a kind.
        let t26 = table(&data, &layout, 26);
        assert!(matches!(
            t26.resolve(TYPES + 8),
            Err(TypeError::Malformed { .. })
        ));
        assert_eq!(t26.resolve(TYPES + 56).unwrap().kind, Kind::String);

        // Outside [types, etypes), misaligned, too close to the end.
        let end = TYPES + data.len() as u64;
        for addr in [0, TYPES - 8, end, u64::MAX] {
            let e = t.resolve(addr).unwrap_err();
            assert!(matches!(e, TypeError::OutOfRange { .. }), "{e}");
        }
        assert!(t.resolve(TYPES + 9).is_err());
        assert!(t.resolve(end - 8).is_err());
    }

    #[test]
    fn rejects_bad_names() {
        let mut data = vec![0u8; 8];
        // Name offset past the section, negative, a length past the end, a
        // star flag on a name without one.
        let len = 8 + 4 * 48;
        data.extend(descriptor(0, 24, len + 100));
        data.extend(descriptor(0, 24, -8));
        data.extend(descriptor(0, 24, len));
        data.extend(descriptor(TFLAG_EXTRA_STAR, 24, len + 3));
        data.extend([0, 0x7f, b'a']);
        data.extend(name("int"));
        let layout = layout_for(&data);
        let t = table(&data, &layout, 22);
        for i in 0..4 {
            let e = t.resolve(TYPES + 8 + 48 * i).unwrap_err();
            assert!(matches!(e, TypeError::Malformed { .. }), "{i}: {e}");
        }
    }

    #[test]
    fn package_paths_from_method_names() {
        let names = [
            "github.com/lib/pq.(*Driver).Open",
            "github.com/lib/pq.Error.Error",
            "github.com/lib/pq.(*conn).query",
            "example.com/other/pq.(*Thing).Do",
            "example.com/fork/pq.(*Thing).Do",
            "gopkg.in/yaml.v3.(*Node).Decode",
            "main.main",
        ];
        let p = |t: &str| package_path_in(names.iter().copied(), t);
        assert_eq!(p("*pq.Driver").as_deref(), Some("github.com/lib/pq"));
        assert_eq!(p("pq.Error").as_deref(), Some("github.com/lib/pq"));
        assert_eq!(p("[]*pq.Error").as_deref(), Some("github.com/lib/pq"));
        assert_eq!(p("*yaml.Node").as_deref(), Some("gopkg.in/yaml.v3"));
        // Two packages named pq have a Thing: ambiguous.
        assert_eq!(p("*pq.Thing"), None);
        // No method names the type; not a named type.
        assert_eq!(p("*pq.Listener"), None);
        assert_eq!(p("string"), None);
        assert_eq!(p("map[string]pq.Error"), None);
    }

    #[test]
    fn package_names() {
        assert!(package_name_matches("github.com/lib/pq", "pq"));
        assert!(package_name_matches("gopkg.in/yaml.v3", "yaml"));
        assert!(package_name_matches("github.com/jackc/pgx/v5", "pgx"));
        assert!(package_name_matches("errors", "errors"));
        assert!(!package_name_matches("github.com/lib/pqx", "pq"));
        assert!(!package_name_matches("v2", "v2"));
    }

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
