//! Named struct types by full name (`net/http.Request`, `runtime.g`), found
//! among the binary's own type descriptors, and field offsets read from them:
//! the `rtype` offsets source, exact for any Go or module version because it
//! is the binary's own layout.
//!
//! Finding descriptors: every descriptor lies in the moduledata's type
//! section, pointer-aligned. A look-up first asks the typelinks for the
//! pointer type `*pkgname.Type` ([`super::links`]: a binary search reading
//! a few dozen descriptors) and takes the pointer's element. The typelinks
//! reach only some structs: one the program never points to has no `*T`
//! (and Go 1.27 binaries and releases before 1.19 have no list read here).
//! In practice they reach every one the probes need: over the corpus and
//! Debian's Go servers, all 5104 catalog struct types that Go 1.19-1.26
//! binaries hold (tests/typelinks_corpus.rs), so the scan is left for types
//! a binary lacks (a program without `database/sql`) and for Go 1.27.
//! When that finds none, the index looks at every aligned word of the section
//! (once, on the first such look-up) and keeps the named struct descriptors
//! that hold up in full: a valid kind, a type string and package path, and a
//! field list whose names, field types and offsets are all consistent with
//! the struct's size (see [`TypeTable::struct_fields`]); the typelinks'
//! answers are checked the same way, so they are a subset of the scan's. Two
//! different descriptors under one name make that name ambiguous, never a
//! pick (the linker writes one descriptor per type; two arise from types
//! local to different functions, and only if both have pointer types listed
//! does the typelinks' answer see both: the corpus test compares the two
//! ways for every catalog type). A struct whose descriptor the binary lacks
//! is not here: that stays a matter for DWARF or the offsets table.

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;

use super::super::GoBinary;
use super::{Kind, TFLAG_EXTRA_STAR, TFLAG_NAMED, TFLAG_UNCOMMON, TypeError, TypeTable};
use crate::dwarf::split_field_name;

/// Why a field could not be answered from the type descriptors.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RtypeError {
    #[error("`{0}` is not a field name of the form PKG.Type.field")]
    BadName(String),
    #[error("type {0} has no descriptor in the binary")]
    NoType(String),
    #[error("type {ty} has {count} different descriptors in the binary")]
    Ambiguous { ty: String, count: usize },
    #[error("type {ty} has no field {field} (per its descriptor)")]
    NoField { ty: String, field: String },
    #[error("field {field} of {ty} is not a struct held by value, so {rest} cannot be reached")]
    NotStruct {
        ty: String,
        field: String,
        rest: String,
    },
    #[error("descriptor of {ty}: {what}")]
    Descriptor { ty: String, what: String },
}

/// A field's place in its outermost struct, per the descriptors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldLayout {
    pub offset: u64,
    /// Size of the field's type.
    pub size: u64,
    /// Size of the outermost struct.
    pub type_size: u64,
}

/// The named struct descriptors of one binary.
///
/// Scanning the section (only when the typelinks do not answer) sorts the section's candidate descriptors by a
/// key of the name their type string gives after the package name
/// (`Request` of `http.Request`: its length, first and last byte), without
/// decoding them further; a look-up checks in full only the candidates of
/// the name it asks for. An index that answers a few dozen fields costs a
/// pass over the section, not a decoding of every struct in it.
#[derive(Debug)]
pub struct StructIndex<'b> {
    table: TypeTable<'b>,
    /// ([`local_key`], descriptor address) of the named structs with an
    /// uncommon part whose type string reads, sorted (so section order
    /// within a key); not yet checked in full (see [`full_name`]). Filled
    /// by the scan, on the first look-up the typelinks do not answer.
    candidates: OnceCell<Vec<(u32, u64)>>,
    /// Each type's [`StructIndex::lookup`], once made: a probe's fields
    /// are mostly of a few types, and each look-up is a binary search of
    /// the typelinks that reads some 20 descriptors.
    lookups: RefCell<HashMap<String, Result<u64, RtypeError>>>,
}

impl<'b> StructIndex<'b> {
    /// Index the type section of `bin`.
    pub fn new(bin: &'b GoBinary) -> Result<StructIndex<'b>, TypeError> {
        Ok(StructIndex::from_table(TypeTable::new(bin)?))
    }

    /// Index an already located type section (nothing is read yet).
    pub fn from_table(table: TypeTable<'b>) -> StructIndex<'b> {
        StructIndex {
            table,
            candidates: OnceCell::new(),
            lookups: RefCell::default(),
        }
    }

    /// Whether the section has been scanned (a look-up the typelinks did
    /// not answer, or [`StructIndex::struct_count`]).
    pub fn scanned(&self) -> bool {
        self.candidates.get().is_some()
    }

    /// The scan's candidates, scanning now if this is the first use.
    fn candidates(&self) -> &[(u32, u64)] {
        self.candidates.get_or_init(|| scan(&self.table))
    }
}

/// The candidates of [`StructIndex::candidates`]: a pass over every aligned
/// word of the type section.
fn scan(table: &TypeTable<'_>) -> Vec<(u32, u64)> {
    let (types, etypes) = table.range();
    let ps = table.ptr_size();
    let hs = table.header_size();
    let mut candidates = Vec::new();
    let Some(section) = table.bytes(types, etypes.saturating_sub(types)) else {
        return candidates;
    };
    let ps = ps as usize;
    // `TFlag` and `Kind_` sit in one word of the descriptor (the third:
    // after `Size_` and `PtrBytes`, behind the 4-byte `Hash`), so the
    // section is read word by word and each word is the flags word of
    // the descriptor that would start `flags_word` words before it.
    let (tflag_at, kind_at) = (2 * ps + 4, 2 * ps + 7);
    let flags_word = tflag_at / ps;
    let (tflag_in, kind_in) = (tflag_at % ps, kind_at % ps);
    // Up to Go 1.25 the kind is `Kind_`'s low 5 bits (see [`TypeTable::kind_of`]).
    let kind_mask = if table.release().at_least(26) {
        0xff
    } else {
        0x1f
    };
    // The section start is pointer-aligned in every Go binary; be exact anyway.
    let first = (types.next_multiple_of(ps as u64) - types) as usize;
    let words = section.get(first..).unwrap_or_default().chunks_exact(ps);
    for (i, word) in words.enumerate().skip(flags_word) {
        // Cheap filter first: a named struct with an uncommon part.
        if word[kind_in] & kind_mask != Kind::Struct as u8
            || word[tflag_in] & (TFLAG_NAMED | TFLAG_UNCOMMON) != (TFLAG_NAMED | TFLAG_UNCOMMON)
        {
            continue;
        }
        let off = first + (i - flags_word) * ps;
        if off as u64 + hs > section.len() as u64 {
            break;
        }
        let addr = types + off as u64;
        if let Some(local) = local_name(table, addr) {
            candidates.push((local_key(local), addr));
        }
    }
    candidates.sort_unstable();
    candidates
}

impl<'b> StructIndex<'b> {
    /// Number of distinct named struct types found (every candidate checked
    /// in full: this decodes the whole section).
    pub fn struct_count(&self) -> usize {
        let mut names = std::collections::HashSet::new();
        for &(_, addr) in self.candidates() {
            if let Some(name) = full_name(&self.table, addr) {
                names.insert(name);
            }
        }
        names.len()
    }

    /// The descriptors named `ty` (`net/http.Request`) that hold up in full:
    /// those the typelinks reach, or when there are none, those the scan
    /// finds.
    fn descriptors(&self, ty: &str) -> Vec<u64> {
        let linked = self.linked_descriptors(ty);
        if !linked.is_empty() {
            return linked;
        }
        self.scanned_descriptors(ty)
    }

    /// The descriptors named `ty` that are the element of a pointer type
    /// the typelinks list as `*pkgname.Type`, in address order (the package
    /// name taken to be the last element of the path, without a `/vN` or
    /// `.vN` major version; a package named otherwise is left to the scan).
    pub fn linked_descriptors(&self, ty: &str) -> Vec<u64> {
        let mut out = Vec::new();
        if self.table.typelink_count() == 0 {
            return out;
        }
        for (i, _) in ty.match_indices('.') {
            let (path, local) = (&ty[..i], &ty[i + 1..]);
            if local.contains('/') {
                continue;
            }
            let mut s = Vec::with_capacity(ty.len() + 1);
            s.push(b'*');
            s.extend_from_slice(package_name(path).as_bytes());
            s.push(b'.');
            s.extend_from_slice(local.as_bytes());
            for ptr in self.table.linked_by_string(&s) {
                let Ok(elem) = self.table.pointer_elem(ptr) else {
                    continue;
                };
                if local_name(&self.table, elem) == Some(local.as_bytes())
                    && full_name(&self.table, elem).is_some_and(|n| n == ty)
                {
                    out.push(elem);
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The descriptors named `ty` that the scan of the section finds, in
    /// section order (scanning now if this is the first use). The package
    /// path may hold dots, so every split of `ty` into `PKGPATH.local` is
    /// asked for; [`full_name`] has the last word.
    pub fn scanned_descriptors(&self, ty: &str) -> Vec<u64> {
        let mut out = Vec::new();
        let candidates = self.candidates();
        for (i, _) in ty.match_indices('.') {
            let local = &ty.as_bytes()[i + 1..];
            let key = local_key(local);
            let from = candidates.partition_point(|&(k, _)| k < key);
            for &(k, addr) in &candidates[from..] {
                if k != key {
                    break;
                }
                if local_name(&self.table, addr) == Some(local)
                    && full_name(&self.table, addr).is_some_and(|n| n == ty)
                {
                    out.push(addr);
                }
            }
        }
        out.sort_unstable();
        out
    }

    /// The descriptor address of the named struct `ty` (`net/http.Request`).
    pub fn lookup(&self, ty: &str) -> Result<u64, RtypeError> {
        if let Some(r) = self.lookups.borrow().get(ty) {
            return r.clone();
        }
        let r = self.lookup_uncached(ty);
        self.lookups.borrow_mut().insert(ty.to_string(), r.clone());
        r
    }

    fn lookup_uncached(&self, ty: &str) -> Result<u64, RtypeError> {
        match self.descriptors(ty).as_slice() {
            [] => Err(RtypeError::NoType(ty.to_string())),
            [one] => Ok(*one),
            many => {
                // The same layout twice is no ambiguity for offsets (it does
                // not happen in one executable, but costs nothing to allow).
                let first = self.table.struct_fields(many[0]).ok();
                let same = many
                    .iter()
                    .all(|&a| self.table.struct_fields(a).ok() == first);
                if same && first.is_some() {
                    Ok(many[0])
                } else {
                    Err(RtypeError::Ambiguous {
                        ty: ty.to_string(),
                        count: many.len(),
                    })
                }
            }
        }
    }

    /// Offset and size of `PKG.Type.field[.sub...]`; each further element
    /// walks into a struct-valued field (an embedded struct is named by its
    /// type name, as reflect and DWARF name it).
    pub fn field(&self, full: &str) -> Result<FieldLayout, RtypeError> {
        let (ty, path) =
            split_field_name(full).ok_or_else(|| RtypeError::BadName(full.to_string()))?;
        let root = self.lookup(ty)?;
        let desc = |what: TypeError| RtypeError::Descriptor {
            ty: ty.to_string(),
            what: what.to_string(),
        };
        let type_size = self.table.type_size(root).map_err(desc)?;
        let mut current = root;
        let mut current_name = ty.to_string();
        let mut offset = 0u64;
        let mut size = 0u64;
        for (i, part) in path.iter().enumerate() {
            let fields = self.table.struct_fields(current).map_err(desc)?;
            let f = fields
                .iter()
                .find(|f| f.name == *part)
                .ok_or_else(|| RtypeError::NoField {
                    ty: current_name.clone(),
                    field: part.to_string(),
                })?;
            offset = offset.checked_add(f.offset).ok_or_else(|| {
                desc(TypeError::Malformed {
                    addr: current,
                    what: "offset overflows".into(),
                })
            })?;
            size = f.size;
            if i + 1 < path.len() {
                if f.kind != Kind::Struct {
                    return Err(RtypeError::NotStruct {
                        ty: current_name,
                        field: part.to_string(),
                        rest: path[i + 1..].join("."),
                    });
                }
                current = f.typ;
                current_name = format!("{current_name}.{part}");
            }
        }
        Ok(FieldLayout {
            offset,
            size,
            type_size,
        })
    }
}

/// The part after the package name of the type string of the descriptor at
/// `addr` (`Request` of `http.Request`), when it can be that of a named
/// struct (what [`full_name`] requires of the type string, checked without
/// decoding more). Borrowed from the section: indexing allocates no names.
fn local_name<'b>(table: &TypeTable<'b>, addr: u64) -> Option<&'b [u8]> {
    let h = table.header(addr).ok()?;
    let at = table.types.checked_add(u64::try_from(h.str_off).ok()?)?;
    let (_, mut name) = table.name_bytes_at_addr(at)?;
    if h.tflag & TFLAG_EXTRA_STAR != 0 {
        name = name.strip_prefix(b"*")?;
    }
    if name.starts_with(b"*") || name.starts_with(b"[") || name.starts_with(b" ") {
        return None;
    }
    let dot = memchr::memchr(b'.', name)?;
    let local = &name[dot + 1..];
    (!local.is_empty()).then_some(local)
}

/// The package name the type strings of package `path` are taken to use:
/// its last element, less a major-version suffix (`.../v8`, `yaml.v3`).
fn package_name(path: &str) -> &str {
    let is_major = |s: &str| {
        s.strip_prefix('v')
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
    };
    let mut parts = path.rsplit('/');
    let mut last = parts.next().unwrap_or(path);
    if is_major(last) {
        last = parts.next().unwrap_or(last);
    }
    match last.rsplit_once('.') {
        Some((name, v)) if is_major(v) => name,
        _ => last,
    }
}

/// The sort key of a local name: its length, first and last byte.
fn local_key(local: &[u8]) -> u32 {
    let len = u32::try_from(local.len()).unwrap_or(u32::MAX).min(0xffff);
    let (first, last) = (local.first(), local.last());
    (len << 16) | u32::from(*first.unwrap_or(&0)) << 8 | u32::from(*last.unwrap_or(&0))
}

/// `PKGPATH.Name` of the named struct descriptor at `addr`, when it is one
/// whose fields all check out.
fn full_name(table: &TypeTable<'_>, addr: u64) -> Option<String> {
    let h = table.header(addr).ok()?;
    let name = table.type_string(addr, &h).ok()?;
    let pkg = table.pkg_path(addr, h.tflag, h.kind, 1)?;
    // `pkgname.Type` (type arguments may hold dots of their own, after it).
    let (_, local) = name.split_once('.')?;
    if local.is_empty() || name.starts_with(['*', '[', ' ']) {
        return None;
    }
    table.struct_fields(addr).ok()?;
    Some(format!("{pkg}.{local}"))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{TYPES, descriptor_sized, layout_for, name, table};
    use super::*;

    /// A section with named structs: `example.com/p.Outer { a int; Inner
    /// p.Inner; z int }` and `example.com/p.Inner { x int; y int }`, plus a
    /// decoy: an unnamed struct and a word pattern that is no descriptor.
    fn section() -> Vec<u8> {
        // Offsets: Outer at 8 (48 + 32 + 16 uncommon = 96), Inner at 104 (96),
        // int at 200 (48), field arrays at 248 (3*24) and 320 (2*24), names at 368.
        let mut names = Vec::new();
        let at = |s: &str, names: &mut Vec<u8>| {
            let off = 368 + names.len() as u64;
            names.extend(name(s));
            off
        };
        let n_outer = at("*p.Outer", &mut names);
        let n_inner = at("*p.Inner", &mut names);
        let n_int = at("int", &mut names);
        let n_pkg = at("example.com/p", &mut names);
        let f: Vec<u64> = ["a", "Inner", "z", "x", "y"]
            .iter()
            .map(|s| at(s, &mut names))
            .collect();
        let flags = super::super::TFLAG_EXTRA_STAR | TFLAG_NAMED | TFLAG_UNCOMMON;
        let mut d = vec![0u8; 8];
        let strukt = |d: &mut Vec<u8>, size, name_off: u64, array: u64, n: u64| {
            d.extend(descriptor_sized(size, flags, 25, name_off as i32));
            for w in [0, TYPES + array, n, n] {
                d.extend(w.to_le_bytes());
            }
            // Uncommon: PkgPath name offset, no methods.
            d.extend((n_pkg as u32).to_le_bytes());
            d.extend([0u8; 12]);
        };
        strukt(&mut d, 40, n_outer, 248, 3);
        strukt(&mut d, 16, n_inner, 320, 2);
        d.extend(descriptor_sized(8, TFLAG_NAMED, 2, n_int as i32));
        for (name, typ, off) in [
            (f[0], 200, 0),
            (f[1], 104, 8),
            (f[2], 200, 24),
            (f[3], 200, 0),
            (f[4], 200, 8),
        ] {
            for w in [TYPES + name, TYPES + typ, off] {
                d.extend(w.to_le_bytes());
            }
        }
        assert_eq!(d.len(), 368);
        d.extend(names);
        d
    }

    #[test]
    fn finds_named_structs_and_fields() {
        let data = section();
        let layout = layout_for(&data);
        let idx = StructIndex::from_table(table(&data, &layout, 22));
        assert_eq!(idx.struct_count(), 2);
        assert_eq!(idx.lookup("example.com/p.Outer"), Ok(TYPES + 8));
        let f = |s: &str| idx.field(s);
        assert_eq!(
            f("example.com/p.Outer.z"),
            Ok(FieldLayout {
                offset: 24,
                size: 8,
                type_size: 40
            })
        );
        // Through a struct held by value.
        assert_eq!(f("example.com/p.Outer.Inner.y").map(|l| l.offset), Ok(16));
        assert_eq!(f("example.com/p.Inner.y").map(|l| l.type_size), Ok(16));
        assert!(matches!(
            f("example.com/p.Outer.nope"),
            Err(RtypeError::NoField { .. })
        ));
        assert!(matches!(
            f("example.com/p.Outer.a.b"),
            Err(RtypeError::NotStruct { .. })
        ));
        assert!(matches!(
            f("example.com/q.Outer.a"),
            Err(RtypeError::NoType(_))
        ));
        assert!(matches!(f("Outer"), Err(RtypeError::BadName(_))));
    }

    #[test]
    fn typelinks_answer_without_a_scan() {
        let mut data = section();
        // `*p.Outer` (sharing Outer's name data, no extra star) after the
        // names, and a typelinks list holding it alone.
        data.resize(data.len().next_multiple_of(8), 0);
        let ptr_at = data.len() as u64;
        let outer_str = i32::from_le_bytes(data[8 + 40..8 + 44].try_into().unwrap());
        data.extend(descriptor_sized(8, 0, 22, outer_str));
        data.extend((TYPES + 8).to_le_bytes());
        let links_at = data.len();
        data.extend((ptr_at as u32).to_le_bytes());
        let layout = layout_for(&data);
        let t = table(&data, &layout, 22).with_typelinks(&data[links_at..]);
        let idx = StructIndex::from_table(t);
        assert_eq!(
            idx.linked_descriptors("example.com/p.Outer"),
            vec![TYPES + 8]
        );
        assert_eq!(
            idx.field("example.com/p.Outer.Inner.y").map(|l| l.offset),
            Ok(16)
        );
        assert!(!idx.scanned(), "the typelinks answered");
        // Another package of the same name: the pointer matches, its
        // element's package path does not.
        assert!(idx.linked_descriptors("example.org/p.Outer").is_empty());
        // Inner has no pointer type: the scan answers, the same as it would.
        assert!(idx.linked_descriptors("example.com/p.Inner").is_empty());
        assert_eq!(idx.lookup("example.com/p.Inner"), Ok(TYPES + 104));
        assert!(idx.scanned());
        assert_eq!(
            idx.scanned_descriptors("example.com/p.Outer"),
            vec![TYPES + 8]
        );
    }

    #[test]
    fn package_names() {
        assert_eq!(package_name("net/http"), "http");
        assert_eq!(package_name("runtime"), "runtime");
        assert_eq!(package_name("github.com/redis/go-redis/v9"), "go-redis");
        assert_eq!(package_name("gopkg.in/yaml.v3"), "yaml");
        assert_eq!(package_name("example.com/v2x"), "v2x");
    }

    #[test]
    fn two_layouts_under_one_name_are_ambiguous() {
        let mut data = section();
        // Make Inner's descriptor claim Outer's name: two different layouts.
        let outer_str = data[8 + 40..8 + 44].to_vec();
        data[104 + 40..104 + 44].copy_from_slice(&outer_str);
        let layout = layout_for(&data);
        let idx = StructIndex::from_table(table(&data, &layout, 22));
        assert!(matches!(
            idx.field("example.com/p.Outer.a"),
            Err(RtypeError::Ambiguous { count: 2, .. })
        ));
    }
}
