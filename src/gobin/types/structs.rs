//! Struct descriptors (`runtime.structtype`, `internal/abi.StructType` since
//! Go 1.21): every field of a struct type, exported or not, with its name,
//! byte offset, whether it is embedded, and its type's descriptor (whose
//! `Size_` is the field's size).
//!
//! Layout after the common descriptor, unchanged from Go 1.17 through 1.27:
//! `PkgPath Name` (one pointer) and `Fields []StructField` (pointer, length,
//! capacity). A `StructField` is three words: `Name` (a pointer to name
//! data: flags byte, uvarint length, bytes), `Typ` (pointer to the field
//! type's descriptor) and the offset. What changed, by release:
//! * Go 1.17 and 1.18: the third word is `offsetEmbed`, the offset shifted
//!   left by one with the embedded flag in bit 0.
//! * Go 1.19: the third word is the plain offset; the embedded flag moved to
//!   bit 3 of the name's flags byte.
//! * Go 1.26: `Kind_` is the kind alone (read by [`TypeTable::kind_of`]).

use super::{Kind, TypeError, TypeTable};

/// Most fields accepted in one struct (a bound on untrusted lengths; the Go
/// toolchain's largest real structs have a few hundred).
const MAX_FIELDS: u64 = 1 << 14;
/// Name flag: the field is embedded (Go 1.19+).
const NAME_EMBEDDED: u8 = 1 << 3;

/// One field of a struct descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StructField {
    pub name: String,
    /// Byte offset in the struct.
    pub offset: u64,
    /// An embedded field (named by its type).
    pub embedded: bool,
    /// Link-time address of the field type's descriptor.
    pub typ: u64,
    /// Size of the field's type (its descriptor's `Size_`).
    pub size: u64,
    pub kind: Kind,
}

impl TypeTable<'_> {
    /// Every field of the struct descriptor at `addr`, checked: inside the
    /// type section, names readable, each field's type a descriptor, offsets
    /// in order and every field inside the struct's size.
    pub fn struct_fields(&self, addr: u64) -> Result<Vec<StructField>, TypeError> {
        let bad = |what: String| TypeError::Malformed { addr, what };
        let h = self.header(addr)?;
        if h.kind != Kind::Struct {
            return Err(bad(format!(
                "a {} descriptor, not a struct",
                h.kind.as_str()
            )));
        }
        let ps = self.ptr_size();
        let words = self.layout.words;
        let word_size = usize::from(words.ptr_size);
        // PkgPath, then the Fields slice header.
        let at = addr
            .checked_add(self.header_size())
            .ok_or_else(|| bad("address overflows".into()))?;
        let raw = self
            .bytes(at, 4 * ps)
            .ok_or_else(|| bad("struct descriptor runs past the type section".into()))?;
        let w = |i: usize| words.word(raw, i * word_size);
        let (ptr, len, cap) = match (w(1), w(2), w(3)) {
            (Some(p), Some(l), Some(c)) => (p, l, c),
            _ => return Err(bad("short struct descriptor".into())),
        };
        if len > cap || len > MAX_FIELDS {
            return Err(bad(format!("field slice of length {len}, capacity {cap}")));
        }
        if len == 0 {
            return Ok(Vec::new());
        }
        let stride = 3 * ps;
        let array = self.bytes(ptr, len * stride).ok_or_else(|| {
            bad(format!(
                "field array at {ptr:#x} is outside the type section"
            ))
        })?;
        // Go 1.19 moved the embedded flag from the offset word to the name.
        let offset_embed = !self.release.at_least(19);
        let mut fields = Vec::with_capacity(len as usize);
        let mut last_offset = 0;
        for i in 0..len as usize {
            let base = i * 3 * word_size;
            let (Some(name_ptr), Some(typ), Some(third)) = (
                words.word(array, base),
                words.word(array, base + word_size),
                words.word(array, base + 2 * word_size),
            ) else {
                return Err(bad(format!("field {i} is cut short")));
            };
            let (flags, name) = self
                .name_at_addr(name_ptr)
                .filter(|(_, n)| !n.is_empty())
                .ok_or_else(|| bad(format!("field {i}: name at {name_ptr:#x} unreadable")))?;
            let (offset, embedded) = if offset_embed {
                (third >> 1, third & 1 != 0)
            } else {
                (third, flags & NAME_EMBEDDED != 0)
            };
            let th = self
                .header(typ)
                .map_err(|e| bad(format!("field {name}: type: {e}")))?;
            let end = offset.checked_add(th.size);
            if offset < last_offset || end.is_none_or(|e| e > h.size) {
                return Err(bad(format!(
                    "field {name} at {offset} (size {}) is out of order or outside the struct's {} bytes",
                    th.size, h.size
                )));
            }
            last_offset = offset;
            fields.push(StructField {
                name,
                offset,
                embedded,
                typ,
                size: th.size,
                kind: th.kind,
            });
        }
        Ok(fields)
    }

    /// `Size_` of the descriptor at `addr`.
    pub fn type_size(&self, addr: u64) -> Result<u64, TypeError> {
        Ok(self.header(addr)?.size)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{TYPES, descriptor_sized, layout_for, name, table};
    use super::*;

    /// A type section holding one struct `main.T` of `size` bytes with the
    /// given fields (name, offset, embedded) of type `int` (8 bytes), laid out
    /// the way release `minor` lays it out.
    fn section(minor: u32, size: u64, fields: &[(&str, u64, bool)]) -> Vec<u8> {
        // [0, 8): padding; struct descriptor at 8 (48-byte header + 32);
        // int descriptor at 88 (48); field array at 136; names after it.
        let mut data = vec![0u8; 8];
        let array_at = 136u64;
        let names_at = array_at + 24 * fields.len() as u64;
        let mut names = Vec::new();
        let mut name_offsets = Vec::new();
        for (n, _, embedded) in fields {
            name_offsets.push(names_at + names.len() as u64);
            let mut nm = name(n);
            if *embedded && minor >= 19 {
                nm[0] |= NAME_EMBEDDED;
            }
            names.extend(nm);
        }
        let type_name_off = (names_at + names.len() as u64) as i32;
        names.extend(name("*main.T"));
        let int_name_off = (names_at + names.len() as u64) as i32;
        names.extend(name("int"));
        data.extend(descriptor_sized(
            size,
            super::super::TFLAG_EXTRA_STAR,
            25,
            type_name_off,
        ));
        for w in [
            0,
            TYPES + array_at,
            fields.len() as u64,
            fields.len() as u64,
        ] {
            data.extend(w.to_le_bytes());
        }
        data.extend(descriptor_sized(8, 0, 2, int_name_off));
        for (i, (_, off, embedded)) in fields.iter().enumerate() {
            let third = if minor < 19 {
                off << 1 | u64::from(*embedded)
            } else {
                *off
            };
            for w in [TYPES + name_offsets[i], TYPES + 88, third] {
                data.extend(w.to_le_bytes());
            }
        }
        data.extend(names);
        data
    }

    #[test]
    fn fields_by_release_layout() {
        let want = [("a", 0, false), ("Inner", 8, true), ("c", 16, false)];
        // Go 1.18: offset<<1 | embedded; Go 1.19 on: plain offset, flag in the name.
        for minor in [17, 18, 19, 22, 26, 27] {
            let data = section(minor, 24, &want);
            let layout = layout_for(&data);
            let t = table(&data, &layout, minor);
            let fields = t.struct_fields(TYPES + 8).unwrap();
            let got: Vec<(&str, u64, bool)> = fields
                .iter()
                .map(|f| (f.name.as_str(), f.offset, f.embedded))
                .collect();
            assert_eq!(got, want, "go1.{minor}");
            assert!(fields.iter().all(|f| f.size == 8 && f.kind == Kind::Int));
            assert_eq!(t.type_size(TYPES + 8).unwrap(), 24);
            // Read with the other release's rule, the offsets are wrong and caught.
            let other = if minor < 19 { 19 } else { 18 };
            let wrong = table(&data, &layout, other).struct_fields(TYPES + 8);
            assert_ne!(
                wrong
                    .ok()
                    .map(|f| f.iter().map(|f| f.offset).collect::<Vec<_>>()),
                Some(vec![0, 8, 16]),
                "go1.{minor} read as go1.{other}"
            );
        }
    }

    #[test]
    fn rejects_inconsistent_structs() {
        // A field past the struct's size, fields out of order.
        for fields in [
            &[("a", 0, false), ("b", 24, false)][..],
            &[("a", 8, false), ("b", 0, false)][..],
        ] {
            let data = section(22, 24, fields);
            let layout = layout_for(&data);
            let e = table(&data, &layout, 22)
                .struct_fields(TYPES + 8)
                .unwrap_err();
            assert!(matches!(e, TypeError::Malformed { .. }), "{e}");
        }
        // Not a struct: the int descriptor.
        let data = section(22, 24, &[("a", 0, false)]);
        let layout = layout_for(&data);
        let t = table(&data, &layout, 22);
        assert!(t.struct_fields(TYPES + 88).is_err());
        // A field count beyond the array: cut at the section end.
        let mut data = section(22, 24, &[("a", 0, false)]);
        data[8 + 48 + 16..8 + 48 + 24].copy_from_slice(&1000u64.to_le_bytes());
        data[8 + 48 + 24..8 + 48 + 32].copy_from_slice(&1000u64.to_le_bytes());
        let layout = layout_for(&data);
        assert!(table(&data, &layout, 22).struct_fields(TYPES + 8).is_err());
        // Length above capacity.
        let mut data = section(22, 24, &[("a", 0, false)]);
        data[8 + 48 + 24..8 + 48 + 32].copy_from_slice(&0u64.to_le_bytes());
        let layout = layout_for(&data);
        assert!(table(&data, &layout, 22).struct_fields(TYPES + 8).is_err());
    }
}
