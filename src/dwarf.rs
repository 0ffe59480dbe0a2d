//! Struct layouts from a Go binary's DWARF: the offset and size of a field
//! named `PKG.Type.field` (full package path, unexported fields included,
//! nested value fields as `PKG.Type.a.b`), and each struct's size.
//!
//! Go names DWARF types with the full package path (`net/http.Request`,
//! `runtime.g`); members carry a constant `DW_AT_data_member_location`.
//! [`DwarfTypes::from_elf`] walks `.debug_info` once and keeps only type
//! entries, so any number of look-ups afterwards are hash-map hits. Compressed
//! sections (`SHF_COMPRESSED`, Go's default) are inflated through `object`.
//!
//! The input is an untrusted file: malformed DWARF is a [`DwarfError`], and a
//! reference that points nowhere simply leaves a size unknown.

use std::borrow::Cow;
use std::collections::HashMap;

use gimli::{AttributeValue, DwTag, EndianSlice, RunTimeEndian, constants as dw};
use object::{Object, ObjectSection};

/// Why DWARF could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DwarfError {
    #[error("not an object file: {0}")]
    Object(#[from] object::Error),
    #[error("malformed DWARF: {0}")]
    Gimli(#[from] gimli::Error),
    #[error("no DWARF debug info (.debug_info) in the binary")]
    Missing,
}

/// Why one field could not be resolved from DWARF.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("`{0}` is not a field name of the form PKG.Type.field")]
    BadName(String),
    #[error("type {0} is not in this binary's DWARF")]
    NoType(String),
    #[error("type {ty} has no field {field}")]
    NoField { ty: String, field: String },
    #[error("field {field} of {ty} is not a struct held by value, so {rest} cannot be reached")]
    NotStruct {
        ty: String,
        field: String,
        rest: String,
    },
}

/// A field's place in its outermost struct.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldLayout {
    /// Byte offset from the start of the outermost struct.
    pub offset: u64,
    /// Size of the field's type in bytes, when DWARF says.
    pub size: Option<u64>,
    /// Size of the outermost struct, when DWARF says.
    pub type_size: Option<u64>,
}

/// `PKG.Type.field[.sub...]` split into the type name and the field chain.
///
/// The package path may itself contain dots (`google.golang.org/grpc`), but
/// only before its last `/`; after it come `pkgname.Type.field...`.
pub fn split_field_name(full: &str) -> Option<(&str, Vec<&str>)> {
    let tail_start = full.rfind('/').map_or(0, |i| i + 1);
    let tail = full.get(tail_start..)?;
    // tail = pkgname.Type.field[.more]
    let mut dots = tail.match_indices('.').map(|(i, _)| i);
    let _pkg_end = dots.next()?;
    let type_end = dots.next()?;
    let type_name = full.get(..tail_start + type_end)?;
    let fields: Vec<&str> = full.get(tail_start + type_end + 1..)?.split('.').collect();
    if fields.iter().any(|f| f.is_empty()) || type_name.ends_with('.') {
        return None;
    }
    Some((type_name, fields))
}

#[derive(Debug, Clone)]
struct Member {
    name: String,
    offset: Option<u64>,
    /// `.debug_info` offset of the member's type entry.
    ty: Option<usize>,
}

#[derive(Debug, Clone)]
struct TypeEntry {
    tag: DwTag,
    byte_size: Option<u64>,
    /// `DW_AT_type` target (typedefs, pointers, qualifiers).
    target: Option<usize>,
    address_size: u8,
    members: Vec<Member>,
}

/// Every type entry of one binary's DWARF, indexed by name and by offset.
#[derive(Debug, Default)]
pub struct DwarfTypes {
    entries: Vec<TypeEntry>,
    /// `.debug_info` offset -> index into `entries`.
    by_offset: HashMap<usize, u32>,
    /// Struct name -> index into `entries` (first definition wins).
    structs: HashMap<String, u32>,
}

fn is_type_tag(tag: DwTag) -> bool {
    matches!(
        tag,
        dw::DW_TAG_structure_type
            | dw::DW_TAG_typedef
            | dw::DW_TAG_pointer_type
            | dw::DW_TAG_base_type
            | dw::DW_TAG_array_type
            | dw::DW_TAG_subroutine_type
            | dw::DW_TAG_union_type
            | dw::DW_TAG_const_type
            | dw::DW_TAG_volatile_type
            | dw::DW_TAG_enumeration_type
            | dw::DW_TAG_unspecified_type
    )
}

impl DwarfTypes {
    /// Index the DWARF of an ELF image. [`DwarfError::Missing`] when it has none.
    pub fn from_elf(data: &[u8]) -> Result<DwarfTypes, DwarfError> {
        let file = object::File::parse(data)?;
        if file.section_by_name(".debug_info").is_none() {
            return Err(DwarfError::Missing);
        }
        let endian = if file.is_little_endian() {
            RunTimeEndian::Little
        } else {
            RunTimeEndian::Big
        };
        let load = |id: gimli::SectionId| -> Result<Cow<'_, [u8]>, object::Error> {
            use gimli::SectionId as S;
            // Location and range lists, address ranges, macros and name
            // indexes say nothing of types: left compressed, unread.
            if matches!(
                id,
                S::DebugLoc
                    | S::DebugLocLists
                    | S::DebugRanges
                    | S::DebugRngLists
                    | S::DebugAranges
                    | S::DebugMacinfo
                    | S::DebugMacro
                    | S::DebugNames
                    | S::DebugTypes
                    // Units are read from their headers and raw entries,
                    // not as `gimli::Unit`s, which would parse each one's
                    // line program and base address: the line table (as
                    // large as a third of the compressed DWARF) and the
                    // address table are not needed either.
                    | S::DebugLine
                    | S::DebugAddr
            ) {
                return Ok(Cow::Borrowed(&[][..]));
            }
            match file.section_by_name(id.name()) {
                Some(section) => section.uncompressed_data(),
                None => Ok(Cow::Borrowed(&[][..])),
            }
        };
        let sections = gimli::DwarfSections::load(load)?;
        let dwarf = sections.borrow(|s| EndianSlice::new(s, endian));
        let mut types = DwarfTypes::default();
        let mut units = dwarf.units();
        while let Some(header) = units.next()? {
            let abbreviations = dwarf.abbreviations(&header)?;
            types.index_unit(&dwarf, &header, &abbreviations)?;
        }
        Ok(types)
    }

    fn index_unit<'d>(
        &mut self,
        dwarf: &gimli::Dwarf<EndianSlice<'d, RunTimeEndian>>,
        header: &gimli::UnitHeader<EndianSlice<'d, RunTimeEndian>>,
        abbreviations: &gimli::Abbreviations,
    ) -> Result<(), DwarfError> {
        let unit_base = header
            .offset()
            .to_debug_info_offset(header)
            .map_or(0, |o| o.0);
        let address_size = header.address_size();
        // Where a unit's `DW_FORM_strx` names are indexed from (DWARF 5 C
        // units; Go writes its names inline): the unit entry's
        // `DW_AT_str_offsets_base`, as `gimli::Unit` reads it.
        let mut str_offsets_base = gimli::DebugStrOffsetsBase::default_for_encoding_and_file(
            header.encoding(),
            dwarf.file_type,
        );
        let string = |value: AttributeValue<EndianSlice<'d, RunTimeEndian>>,
                      base: gimli::DebugStrOffsetsBase<usize>|
         -> gimli::Result<EndianSlice<'d, RunTimeEndian>> {
            match value {
                AttributeValue::DebugStrOffsetsIndex(index) => dwarf
                    .debug_str_offsets
                    .get_str_offset(header.format(), base, index)
                    .and_then(|offset| dwarf.string(offset)),
                other => dwarf.attr_line_string(other),
            }
        };
        let mut raw = header.entries_raw(abbreviations, None)?;
        // Index (into `entries`) of the struct whose members are being read,
        // with the depth of its children.
        let mut open_struct: Option<(u32, isize)> = None;
        while !raw.is_empty() {
            let offset = unit_base + raw.next_offset().0;
            let depth = raw.next_depth();
            let Some(abbrev) = raw.read_abbreviation()? else {
                continue;
            };
            let tag = abbrev.tag();
            if depth == 0 && matches!(tag, dw::DW_TAG_compile_unit | dw::DW_TAG_partial_unit) {
                for spec in abbrev.attributes() {
                    let attr = raw.read_attribute(*spec)?;
                    if let (dw::DW_AT_str_offsets_base, AttributeValue::DebugStrOffsetsBase(base)) =
                        (attr.name(), attr.value())
                    {
                        str_offsets_base = base;
                    }
                }
                continue;
            }
            if let Some((_, d)) = open_struct
                && depth < d
            {
                open_struct = None;
            }
            let wanted_member =
                tag == dw::DW_TAG_member && open_struct.is_some_and(|(_, d)| d == depth);
            if !is_type_tag(tag) && !wanted_member {
                raw.skip_attributes(abbrev.attributes())?;
                continue;
            }
            // Only members and structs keep their names: no string is
            // made for the (many more) pointers, typedefs and base types.
            let named = wanted_member || tag == dw::DW_TAG_structure_type;
            let mut name = None;
            let mut byte_size = None;
            let mut target = None;
            let mut member_offset = None;
            for spec in abbrev.attributes() {
                let attr = raw.read_attribute(*spec)?;
                match attr.name() {
                    dw::DW_AT_name if named => {
                        if let Ok(s) = string(attr.value(), str_offsets_base) {
                            name = Some(String::from_utf8_lossy(s.slice()).into_owned());
                        }
                    }
                    dw::DW_AT_byte_size => byte_size = attr.udata_value(),
                    dw::DW_AT_type => {
                        target = match attr.value() {
                            AttributeValue::UnitRef(o) => Some(unit_base + o.0),
                            AttributeValue::DebugInfoRef(o) => Some(o.0),
                            _ => None,
                        }
                    }
                    dw::DW_AT_data_member_location => member_offset = attr.udata_value(),
                    _ => {}
                }
            }
            if wanted_member {
                if let (Some((idx, _)), Some(name)) = (open_struct, name)
                    && let Some(entry) = self.entries.get_mut(idx as usize)
                {
                    entry.members.push(Member {
                        name,
                        offset: member_offset,
                        ty: target,
                    });
                }
                continue;
            }
            let idx = self.entries.len() as u32;
            self.entries.push(TypeEntry {
                tag,
                byte_size,
                target,
                address_size,
                members: Vec::new(),
            });
            self.by_offset.insert(offset, idx);
            if tag == dw::DW_TAG_structure_type {
                if abbrev.has_children() {
                    open_struct = Some((idx, depth + 1));
                }
                if let Some(name) = name {
                    self.structs.entry(name).or_insert(idx);
                }
            }
        }
        Ok(())
    }

    /// Number of named struct types indexed.
    pub fn struct_count(&self) -> usize {
        self.structs.len()
    }

    /// Size of the named struct (e.g. `net/http.Request`), if DWARF has it.
    pub fn struct_size(&self, name: &str) -> Option<u64> {
        let idx = *self.structs.get(name)?;
        self.entries.get(idx as usize)?.byte_size
    }

    /// True when DWARF describes a struct of this name.
    pub fn has_struct(&self, name: &str) -> bool {
        self.structs.contains_key(name)
    }

    /// Offset and size of `PKG.Type.field[.sub...]`.
    pub fn field(&self, full: &str) -> Result<FieldLayout, FieldError> {
        let (type_name, path) =
            split_field_name(full).ok_or_else(|| FieldError::BadName(full.to_string()))?;
        let root = *self
            .structs
            .get(type_name)
            .ok_or_else(|| FieldError::NoType(type_name.to_string()))?;
        let type_size = self.entries.get(root as usize).and_then(|e| e.byte_size);
        let mut current = root as usize;
        let mut current_name = type_name.to_string();
        let mut offset = 0u64;
        let mut size = None;
        for (i, field) in path.iter().enumerate() {
            let entry = self
                .entries
                .get(current)
                .ok_or_else(|| FieldError::NoType(current_name.clone()))?;
            let member = entry
                .members
                .iter()
                .find(|m| m.name == *field)
                .ok_or_else(|| FieldError::NoField {
                    ty: current_name.clone(),
                    field: field.to_string(),
                })?;
            offset += member.offset.unwrap_or(0);
            size = member.ty.and_then(|t| self.size_of(t, 0));
            if i + 1 < path.len() {
                let next = member
                    .ty
                    .and_then(|t| self.resolve_struct(t, 0))
                    .ok_or_else(|| FieldError::NotStruct {
                        ty: current_name.clone(),
                        field: field.to_string(),
                        rest: path[i + 1..].join("."),
                    })?;
                current = next;
                current_name = format!("{current_name}.{field}");
            }
        }
        Ok(FieldLayout {
            offset,
            size,
            type_size,
        })
    }

    fn entry_at(&self, debug_info_offset: usize) -> Option<&TypeEntry> {
        let idx = *self.by_offset.get(&debug_info_offset)?;
        self.entries.get(idx as usize)
    }

    /// Byte size of the type at a `.debug_info` offset, following typedefs and
    /// qualifiers; pointers without `DW_AT_byte_size` take the address size.
    fn size_of(&self, at: usize, hops: u32) -> Option<u64> {
        if hops > 32 {
            return None;
        }
        let entry = self.entry_at(at)?;
        if let Some(size) = entry.byte_size {
            return Some(size);
        }
        match entry.tag {
            dw::DW_TAG_pointer_type => Some(u64::from(entry.address_size)),
            dw::DW_TAG_typedef | dw::DW_TAG_const_type | dw::DW_TAG_volatile_type => {
                self.size_of(entry.target?, hops + 1)
            }
            _ => None,
        }
    }

    /// Index of the struct at a `.debug_info` offset, through typedefs (not pointers).
    fn resolve_struct(&self, at: usize, hops: u32) -> Option<usize> {
        if hops > 32 {
            return None;
        }
        let idx = *self.by_offset.get(&at)? as usize;
        let entry = self.entries.get(idx)?;
        match entry.tag {
            dw::DW_TAG_structure_type => Some(idx),
            dw::DW_TAG_typedef | dw::DW_TAG_const_type | dw::DW_TAG_volatile_type => {
                self.resolve_struct(entry.target?, hops + 1)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_field_names() {
        assert_eq!(
            split_field_name("net/http.Request.Method"),
            Some(("net/http.Request", vec!["Method"]))
        );
        assert_eq!(
            split_field_name("runtime.g.goid"),
            Some(("runtime.g", vec!["goid"]))
        );
        assert_eq!(
            split_field_name("runtime.g.stack.lo"),
            Some(("runtime.g", vec!["stack", "lo"]))
        );
        assert_eq!(
            split_field_name("google.golang.org/grpc/internal/transport.Stream.method"),
            Some((
                "google.golang.org/grpc/internal/transport.Stream",
                vec!["method"]
            ))
        );
        assert_eq!(
            split_field_name("google.golang.org/grpc.Server.opts"),
            Some(("google.golang.org/grpc.Server", vec!["opts"]))
        );
        assert_eq!(split_field_name("net/http.Request"), None);
        assert_eq!(split_field_name("runtime"), None);
        assert_eq!(split_field_name("runtime.g."), None);
        assert_eq!(split_field_name(""), None);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(DwarfTypes::from_elf(b"not an elf").is_err());
        assert!(DwarfTypes::from_elf(&[0x7f, b'E', b'L', b'F', 2, 1, 1]).is_err());
    }
}
