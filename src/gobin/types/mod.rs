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
//! * Go 1.19 through 1.26: `moduledata.typelinks` lists the unnamed
//!   composite types (`*T` among them) sorted by type string ([`links`]);
//!   Go 1.27 dropped the slice.

use std::path::PathBuf;

use super::GoBinary;
use super::elf::Layout;
use super::read::{to_usize, uvarint};

mod bias;
mod index;
mod links;
mod names;
mod release;
mod structs;

pub use bias::load_bias;
pub use index::{FieldLayout, RtypeError, StructIndex};
pub(crate) use links::typelinks_word;
pub use names::package_path_from_functions;
pub use release::{GoRelease, Kind};
pub use structs::StructField;

pub(super) const TFLAG_UNCOMMON: u8 = 1 << 0;
pub(super) const TFLAG_EXTRA_STAR: u8 = 1 << 1;
pub(super) const TFLAG_NAMED: u8 = 1 << 2;
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

/// The common part of a type descriptor, as [`TypeTable::header`] reads it.
#[derive(Debug, Clone, Copy)]
pub(super) struct Header {
    /// `Size_`: the size of a value of the type.
    pub size: u64,
    pub tflag: u8,
    pub kind: Kind,
    /// `Str`: the type string's name offset from `types`.
    pub str_off: i32,
}

/// The type section of one binary, ready to resolve descriptor addresses.
#[derive(Debug, Clone, Copy)]
pub struct TypeTable<'b> {
    data: &'b [u8],
    layout: &'b Layout,
    types: u64,
    etypes: u64,
    release: GoRelease,
    /// The moduledata's `typelinks` entries (`int32` offsets from `types`),
    /// empty when the release has none or they do not read ([`links`]).
    typelinks: &'b [u8],
}

/// Word indexes of `types` and `etypes` in `runtime.moduledata`.
fn types_words(release: GoRelease) -> Option<(usize, usize)> {
    // Go 1.17 introduced the uvarint name lengths this module reads (and the
    // register ABI the probes need); 1.17 and 1.18 moduledata matches 1.19's
    // (checked on binaries built by 1.17.13 and 1.18.10).
    if release.major != 1 || release.minor < 17 {
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
        let mut table = TypeTable::from_parts(bin.data(), &bin.layout, types, etypes, release);
        if let Some(at) = links::typelinks_word(release) {
            table.typelinks = table.read_typelinks(md, at);
        }
        Ok(table)
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
            typelinks: &[],
        }
    }

    /// This table with `typelinks` as its typelinks list (fuzzing and unit tests).
    pub(crate) fn with_typelinks(mut self, typelinks: &'b [u8]) -> TypeTable<'b> {
        self.typelinks = typelinks;
        self
    }

    /// `[types, etypes)`: where every type descriptor of the binary lies.
    pub fn range(&self) -> (u64, u64) {
        (self.types, self.etypes)
    }

    pub fn release(&self) -> GoRelease {
        self.release
    }

    pub(super) fn ptr_size(&self) -> u64 {
        u64::from(self.layout.words.ptr_size)
    }

    /// Size of the common descriptor (`abi.Type`).
    pub(super) fn header_size(&self) -> u64 {
        4 * self.ptr_size() + 16
    }

    /// `len` bytes at `addr`, all inside the type section.
    pub(super) fn bytes(&self, addr: u64, len: u64) -> Option<&'b [u8]> {
        let end = addr.checked_add(len)?;
        if addr < self.types || end > self.etypes {
            return None;
        }
        self.layout.read_vaddr(self.data, addr, len)
    }

    /// The common part of the descriptor at `addr`, checked: inside the
    /// section, pointer-aligned, a valid kind.
    pub(super) fn header(&self, addr: u64) -> Result<Header, TypeError> {
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
        let kind = self
            .kind_of(kind_byte)
            .ok_or_else(|| bad(&format!("kind byte {kind_byte:#x}")))?;
        let str_at = to_usize(4 * ps + 8).ok_or_else(|| bad("layout"))?;
        let str_off = words.u32(head, str_at).ok_or_else(|| bad("short"))? as i32;
        let size = words.word(head, 0).ok_or_else(|| bad("short"))?;
        Ok(Header {
            size,
            tflag,
            kind,
            str_off,
        })
    }

    /// The kind a `Kind_` byte encodes in this release.
    pub(super) fn kind_of(&self, kind_byte: u8) -> Option<Kind> {
        Kind::from_number(if self.release.at_least(26) {
            // Go 1.26: Kind_ holds the kind alone.
            kind_byte
        } else {
            kind_byte & 0x1f
        })
    }

    /// The type string of a descriptor whose header is `h`.
    pub(super) fn type_string(&self, addr: u64, h: &Header) -> Result<String, TypeError> {
        let bad = |what: &str| TypeError::Malformed {
            addr,
            what: what.to_string(),
        };
        let mut name = self
            .name_at(h.str_off)
            .ok_or_else(|| bad(&format!("name offset {:#x}", h.str_off)))?;
        if h.tflag & TFLAG_EXTRA_STAR != 0 {
            if !name.starts_with('*') {
                return Err(bad("extra-star name without a star"));
            }
            name.remove(0);
        }
        Ok(name)
    }

    /// Resolve the descriptor at link-time address `addr` (a runtime address
    /// minus the process's load bias).
    pub fn resolve(&self, addr: u64) -> Result<GoType, TypeError> {
        let h = self.header(addr)?;
        let name = self.type_string(addr, &h)?;
        let pkg_path = self.pkg_path(addr, h.tflag, h.kind, 0);
        Ok(GoType {
            addr,
            name,
            kind: h.kind,
            named: h.tflag & TFLAG_NAMED != 0,
            pkg_path,
            ptr_size: self.layout.words.ptr_size,
            release: self.release,
        })
    }

    /// The name whose data starts at link-time address `at` (a `Name`'s
    /// `Bytes` pointer): its flags byte and text.
    pub(super) fn name_at_addr(&self, at: u64) -> Option<(u8, String)> {
        let (flags, bytes) = self.name_bytes_at_addr(at)?;
        Some((flags, String::from_utf8(bytes.to_vec()).ok()?))
    }

    /// [`TypeTable::name_at_addr`] without the UTF-8 check and the copy.
    pub(super) fn name_bytes_at_addr(&self, at: u64) -> Option<(u8, &'b [u8])> {
        // Flags byte and at most a 10-byte uvarint, cut at the section end.
        let avail = self.etypes.checked_sub(at)?.min(11);
        let head = self.bytes(at, avail)?;
        let flags = *head.first()?;
        let (len, data_at) = uvarint(head, 1)?;
        if len > MAX_NAME {
            return None;
        }
        let bytes = self.bytes(at.checked_add(data_at as u64)?, len)?;
        Some((flags, bytes))
    }

    /// The name at `off` from `types`: flags byte, uvarint length, bytes.
    pub(super) fn name_at(&self, off: i32) -> Option<String> {
        let at = self.types.checked_add(u64::try_from(off).ok()?)?;
        self.name_at_addr(at).map(|(_, n)| n)
    }

    /// Offset of the `UncommonType` from the descriptor start, by kind: the
    /// size of the kind's descriptor struct (`abi.PtrType`, `abi.StructType`...).
    pub(super) fn uncommon_offset(&self, kind: Kind) -> Option<u64> {
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
    pub(super) fn pkg_path(&self, addr: u64, tflag: u8, kind: Kind, depth: u8) -> Option<String> {
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
            let eh = self.header(elem).ok()?;
            return self.pkg_path(elem, eh.tflag, eh.kind, 1);
        }
        None
    }
}

/// Resolve one type descriptor address (see [`TypeTable::resolve`]).
pub fn resolve_type(bin: &GoBinary, addr: u64) -> Result<GoType, TypeError> {
    TypeTable::new(bin)?.resolve(addr)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::gobin::elf::Segment;

    #[test]
    fn moduledata_words() {
        let r = |s| GoRelease::parse(s).unwrap();
        assert_eq!(types_words(r("go1.19.13")), Some((35, 36)));
        assert_eq!(types_words(r("go1.20")), Some((37, 38)));
        assert_eq!(types_words(r("go1.26.6")), Some((37, 38)));
        assert_eq!(types_words(r("go1.27.3")), Some((37, 39)));
        assert_eq!(types_words(r("go1.17.13")), Some((35, 36)));
        assert_eq!(types_words(r("go1.16.15")), None);
    }

    pub(crate) const TYPES: u64 = 0x500000;

    /// A file whose only segment is a type section at `TYPES` holding `bytes`.
    pub(crate) fn layout_for(bytes: &[u8]) -> Layout {
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
        descriptor_sized(0, tflag, kind, str_off)
    }

    /// [`descriptor`] with `Size_` set.
    pub(crate) fn descriptor_sized(size: u64, tflag: u8, kind: u8, str_off: i32) -> Vec<u8> {
        let mut d = vec![0u8; 48];
        d[..8].copy_from_slice(&size.to_le_bytes());
        d[20] = tflag;
        d[23] = kind;
        d[40..44].copy_from_slice(&str_off.to_le_bytes());
        d
    }

    /// A name: flags byte, uvarint length, bytes.
    pub(crate) fn name(s: &str) -> Vec<u8> {
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

    pub(crate) fn table<'a>(data: &'a [u8], layout: &'a Layout, minor: u32) -> TypeTable<'a> {
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
}
