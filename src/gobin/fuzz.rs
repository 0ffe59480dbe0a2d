//! Entry points for the cargo-fuzz targets in `fuzz/`: run every parser of
//! untrusted bytes over arbitrary input. They must return (with errors), never
//! panic. Not part of goprobe's API.

use super::elf::{Layout, Segment};
use super::read::Words;
use super::types::{GoRelease, StructIndex, TypeTable};
use super::{GoBinary, buildinfo, modinfo, moduledata, pclntab};

/// The build info, module info and pclntab parsers on raw bytes, as if the
/// bytes were one read-write segment at 0x10000 of a binary of each byte
/// order and pointer size.
pub fn parsers(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = modinfo::parse(&text);
    let _ = modinfo::unquote(&text);
    let _ = modinfo::unframe(data);
    for (big_endian, ptr_size) in [(false, 8), (true, 8), (false, 4), (true, 4)] {
        let len = data.len() as u64;
        let layout = Layout {
            words: Words::new(big_endian, ptr_size),
            segments: vec![
                Segment {
                    vaddr: 0x10000,
                    memsz: len,
                    offset: 0,
                    filesz: len,
                    flags: 6,
                },
                Segment {
                    vaddr: 0x40_0000,
                    memsz: 0x10_0000,
                    offset: 0,
                    filesz: len,
                    flags: 5,
                },
            ],
        };
        if let Some(found) = buildinfo::find(data, &layout, None) {
            let _ = buildinfo::parse(data, &layout, found);
        }
        let _ = buildinfo::parse(data, &layout, buildinfo::Found { offset: 0 });
        if let Ok(h) = pclntab::parse_header(data, big_endian, ptr_size) {
            let _ = pclntab::functions(data, &h, h.text_start);
            let _ = pclntab::functions(data, &h, 0x40_0000);
        }
        // The bytes as a type section, descriptors resolved at every word,
        // with the Go 1.25 and 1.26 kind encodings; struct descriptors read
        // at every word and indexed (through the typelinks, then the scan),
        // with the Go 1.18 (offsetEmbed) and 1.19+ field layouts.
        for minor in [18, 25, 26] {
            let release = GoRelease { major: 1, minor };
            let table = TypeTable::from_parts(data, &layout, 0x10000, 0x10000 + len, release);
            for at in (0..len.min(4096)).step_by(usize::from(ptr_size)) {
                let _ = table.resolve(0x10000 + at);
                let _ = table.struct_fields(0x10000 + at);
            }
            // The same bytes as the typelinks list too: binary searches
            // over garbage, then the scan's fallback.
            let index = StructIndex::from_table(table.with_typelinks(data));
            let _ = index.field("main.T.a.b");
            let _ = index.linked_descriptors("example.com/p/v2.T");
            let _ = index.struct_count();
        }
        if let Ok(Some(loc)) = pclntab::locate(data, &layout, &[], None) {
            let hints = moduledata::Hints {
                runtime_text: None,
                firstmoduledata: Some(0x10000),
                go_module_section: None,
                text_section: None,
            };
            let _ = moduledata::text_start(data, &layout, &loc, &hints);
            let none = moduledata::Hints {
                firstmoduledata: None,
                ..hints
            };
            let _ = moduledata::text_start(data, &layout, &loc, &none);
        }
    }
}

/// A whole file through [`GoBinary::from_bytes`] and everything it offers.
pub fn binary(data: &[u8]) {
    if let Ok(bin) = GoBinary::from_bytes("fuzz".into(), data.to_vec()) {
        let _ = bin.build_info();
        let _ = bin.elf();
        if let Ok(fns) = bin.functions() {
            for f in fns.iter().take(16) {
                let _ = bin.vaddr_to_file_offset(f.address);
            }
        }
        let _ = bin.function("main.main");
        if let Ok(table) = TypeTable::new(&bin) {
            let (types, etypes) = table.range();
            for at in [types, types + 8, etypes - 1, etypes] {
                let _ = table.resolve(at);
                let _ = table.struct_fields(at);
            }
            let index = StructIndex::from_table(table);
            for f in [
                "net/http.Request.ctx",
                "runtime.g.goid",
                "net/http.Cookie.Expires.ext",
            ] {
                let _ = index.field(f);
            }
        }
        let _ = bin.vaddr_to_file_offset(u64::MAX);
    }
}
