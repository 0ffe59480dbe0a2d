//! Unit tests of the pclntab reader on hand-built tables of every format.

use super::*;

/// Build a table in `version`'s format. `funcs` are (name, entry) with
/// entries absolute for Go 1.2/1.16 and offsets from the text start for
/// Go 1.18+ (where `text_start` goes in the header).
pub(crate) fn build(
    version: PclntabVersion,
    ptr_size: u8,
    big: bool,
    funcs: &[(&str, u64)],
    end: u64,
    text_start: u64,
) -> Vec<u8> {
    let ps = usize::from(ptr_size);
    let put = |b: &mut Vec<u8>, v: u64, size: usize| {
        let bytes = if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        if big {
            b.extend_from_slice(&bytes[8 - size..])
        } else {
            b.extend_from_slice(&bytes[..size])
        }
    };
    let magic = match version {
        PclntabVersion::Go12 => MAGIC_12,
        PclntabVersion::Go116 => MAGIC_116,
        PclntabVersion::Go118 => MAGIC_118,
        PclntabVersion::Go120 => MAGIC_120,
    };
    let mut t = Vec::new();
    put(&mut t, u64::from(magic), 4);
    t.extend_from_slice(&[0, 0, 1, ptr_size]);
    // Names: a NUL-terminated blob; offsets relative to its start.
    let mut names = Vec::new();
    let mut name_offs = Vec::new();
    for (n, _) in funcs {
        name_offs.push(names.len() as u64);
        names.extend_from_slice(n.as_bytes());
        names.push(0);
    }
    let rel = matches!(version, PclntabVersion::Go118 | PclntabVersion::Go120);
    let field = if rel { 4 } else { ps };
    let rec_len = if rel { 8 } else { ps + 4 };
    let functab_len = (2 * funcs.len() + 1) * field;
    let functab = |t: &mut Vec<u8>, funcoff_base: u64| {
        for (i, (_, entry)) in funcs.iter().enumerate() {
            put(t, *entry, field);
            put(t, funcoff_base + (i * rec_len) as u64, field);
        }
        put(t, end, field);
    };
    let records = |t: &mut Vec<u8>, name_base: u64| {
        for (i, (_, entry)) in funcs.iter().enumerate() {
            put(t, *entry, if rel { 4 } else { ps });
            put(t, name_base + name_offs[i], 4);
        }
    };
    match version {
        PclntabVersion::Go12 => {
            put(&mut t, funcs.len() as u64, ps);
            let functab_start = t.len();
            let records_start = functab_start + functab_len + 4;
            let names_start = records_start + funcs.len() * rec_len;
            functab(&mut t, records_start as u64);
            put(&mut t, 0, 4); // filetab offset (unused here)
            records(&mut t, names_start as u64);
            t.extend_from_slice(&names);
        }
        _ => {
            let nwords = if rel { 8 } else { 7 };
            let names_start = 8 + nwords * ps;
            let pcln_start = names_start + names.len();
            put(&mut t, funcs.len() as u64, ps); // nfunc
            put(&mut t, 0, ps); // nfiles
            if rel {
                put(&mut t, text_start, ps);
            }
            put(&mut t, names_start as u64, ps); // funcname
            for _ in 0..3 {
                put(&mut t, pcln_start as u64, ps); // cu, file, pc tables (empty)
            }
            put(&mut t, pcln_start as u64, ps); // pcln / functab
            t.extend_from_slice(&names);
            functab(&mut t, functab_len as u64);
            records(&mut t, 0);
        }
    }
    t
}

const FUNCS_ABS: [(&str, u64); 3] = [
    ("main.main", 0x401000),
    ("runtime.morestack", 0x401040),
    ("net/http.(*Server).Serve", 0x401100),
];
const FUNCS_REL: [(&str, u64); 3] = [
    ("main.main", 0),
    ("runtime.morestack", 0x40),
    ("net/http.(*Server).Serve", 0x100),
];

fn expect(fs: &[RawFunc]) {
    let got: Vec<(&str, u64, u64)> = fs
        .iter()
        .map(|f| (f.name.as_str(), f.entry, f.end))
        .collect();
    assert_eq!(
        got,
        vec![
            ("main.main", 0x401000, 0x401040),
            ("runtime.morestack", 0x401040, 0x401100),
            ("net/http.(*Server).Serve", 0x401100, 0x401180)
        ]
    );
}

fn all_formats() -> Vec<(PclntabVersion, u8, bool, Vec<u8>, u64)> {
    let mut v = Vec::new();
    for (ps, big) in [(8u8, false), (4, false), (8, true), (4, true)] {
        v.push((
            PclntabVersion::Go12,
            ps,
            big,
            build(PclntabVersion::Go12, ps, big, &FUNCS_ABS, 0x401180, 0),
            0,
        ));
        v.push((
            PclntabVersion::Go116,
            ps,
            big,
            build(PclntabVersion::Go116, ps, big, &FUNCS_ABS, 0x401180, 0),
            0,
        ));
        for ver in [PclntabVersion::Go118, PclntabVersion::Go120] {
            v.push((
                ver,
                ps,
                big,
                build(ver, ps, big, &FUNCS_REL, 0x180, 0x401000),
                0x401000,
            ));
        }
    }
    v
}

#[test]
fn every_format_both_orders_both_sizes() {
    for (ver, ps, big, tab, text) in all_formats() {
        let h = parse_header(&tab, big, ps).unwrap_or_else(|e| panic!("{ver:?} {ps} {big}: {e}"));
        assert_eq!(h.version, ver);
        assert_eq!(h.nfunc, 3);
        assert_eq!(h.text_start, text);
        expect(&functions(&tab, &h, text).unwrap());
    }
}

#[test]
fn go126_zero_text_start_uses_the_given_start() {
    let tab = build(PclntabVersion::Go120, 8, false, &FUNCS_REL, 0x180, 0);
    let h = parse_header(&tab, false, 8).unwrap();
    assert_eq!(h.text_start, 0);
    assert_eq!(h.entry_span(&tab), Some((0, 0x180)));
    expect(&functions(&tab, &h, 0x401000).unwrap());
}

#[test]
fn every_truncation_is_an_error() {
    for (_, ps, big, tab, text) in all_formats() {
        for cut in 0..tab.len() {
            let short = &tab[..cut];
            if let Ok(h) = parse_header(short, big, ps) {
                assert!(functions(short, &h, text).is_err(), "cut {cut} parsed");
            }
        }
    }
}

#[test]
fn rejects_inconsistent_tables() {
    // Wrong pointer size, byte order, magic, padding.
    let tab = build(PclntabVersion::Go120, 8, false, &FUNCS_REL, 0x180, 0x401000);
    assert!(parse_header(&tab, false, 4).is_err());
    assert!(parse_header(&tab, true, 8).is_err());
    let mut bad = tab.clone();
    bad[0] = 0xf2;
    assert!(parse_header(&bad, false, 8).is_err());
    let mut bad = tab.clone();
    bad[4] = 1;
    assert!(parse_header(&bad, false, 8).is_err());
    // Unsorted entries.
    let unsorted = build(
        PclntabVersion::Go120,
        8,
        false,
        &[("a", 0x40), ("b", 0)],
        0x80,
        0x401000,
    );
    let h = parse_header(&unsorted, false, 8).unwrap();
    assert!(functions(&unsorted, &h, 0x401000).is_err());
    // A record whose entry disagrees with the table.
    let mut mismatch = tab.clone();
    let h = parse_header(&mismatch, false, 8).unwrap();
    let rec = h.funcdata_off + 7 * 4;
    mismatch[rec] ^= 1;
    assert!(functions(&mismatch, &h, 0x401000).is_err());
    // Zero functions, or more than fit.
    let mut none = tab.clone();
    none[8..16].copy_from_slice(&0u64.to_le_bytes());
    assert!(parse_header(&none, false, 8).is_err());
    let mut huge = tab.clone();
    huge[8..16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(parse_header(&huge, false, 8).is_err());
    // Text start so high that addresses overflow.
    let h = parse_header(&tab, false, 8).unwrap();
    assert!(functions(&tab, &h, u64::MAX).is_err());
}

#[test]
fn locate_by_section_symbol_and_scan() {
    use crate::gobin::elf::Segment;
    let tab = build(PclntabVersion::Go116, 8, false, &FUNCS_ABS, 0x401180, 0);
    let mut data = vec![0u8; 0x1000];
    data.extend_from_slice(&[0u8; 0x200]);
    data.extend_from_slice(&tab);
    let layout = Layout {
        words: Words::new(false, 8),
        segments: vec![
            Segment {
                vaddr: 0x401000,
                memsz: 0x1000,
                offset: 0,
                filesz: 0x1000,
                flags: 5,
            },
            Segment {
                vaddr: 0x500000,
                memsz: (data.len() - 0x1000) as u64,
                offset: 0x1000,
                filesz: (data.len() - 0x1000) as u64,
                flags: 4,
            },
        ],
    };
    let sec = SectionRange {
        vaddr: 0x500200,
        offset: 0x1200,
        size: tab.len() as u64,
    };
    let by_section = locate(&data, &layout, &[sec], None).unwrap().unwrap();
    assert_eq!((by_section.offset, by_section.vaddr), (0x1200, 0x500200));
    let by_symbol = locate(
        &data,
        &layout,
        &[],
        Some((0x500200, 0x500200 + tab.len() as u64)),
    )
    .unwrap()
    .unwrap();
    assert_eq!(by_symbol.offset, 0x1200);
    let by_scan = locate(&data, &layout, &[], None).unwrap().unwrap();
    assert_eq!((by_scan.offset, by_scan.vaddr), (0x1200, 0x500200));
    // A section that is not a table is an error, not a reason to scan.
    let wrong = SectionRange {
        vaddr: 0x500000,
        offset: 0x1000,
        size: 0x100,
    };
    assert!(locate(&data, &layout, &[wrong], None).is_err());
}

#[test]
fn has_functions_in_every_format() {
    let names = [
        "runtime.morestack",
        "main.main",
        "main.absent",
        "net/http.(*Server).Serve",
        "main.main",
        "",
        "main",
    ];
    for (ver, ps, big, tab, _) in all_formats() {
        let h = parse_header(&tab, big, ps).unwrap();
        assert_eq!(
            has_functions(&tab, &h, &names).unwrap(),
            [true, true, false, true, true, false, false],
            "{ver:?} {ps} {big}"
        );
    }
}

#[test]
fn a_name_no_function_has_is_not_a_function() {
    // Function 1 renamed to function 0's name: "runtime.morestack" stays in
    // the name table (as an inlined function's name would) but names nothing.
    let mut tab = build(PclntabVersion::Go120, 8, false, &FUNCS_REL, 0x180, 0x401000);
    let h = parse_header(&tab, false, 8).unwrap();
    let name_field = h.functab_off + h.functab_len().unwrap() + 8 + 4;
    tab[name_field..name_field + 4].copy_from_slice(&0u32.to_le_bytes());
    let h = parse_header(&tab, false, 8).unwrap();
    assert_eq!(
        has_functions(&tab, &h, &["runtime.morestack", "main.main"]).unwrap(),
        [false, true]
    );
    assert_eq!(functions(&tab, &h, 0x401000).unwrap()[1].name, "main.main");
}

#[test]
fn every_nul_is_found() {
    let bytes: Vec<u8> = (0..300u32)
        .map(|i| {
            if i % 7 == 0 || i % 11 == 3 {
                0
            } else {
                (i % 255 + 1) as u8
            }
        })
        .chain([0x80, 0x00, 0xff, 0x01, 0x00])
        .collect();
    for len in 0..bytes.len() {
        let mut got = Vec::new();
        names::for_each_nul(&bytes[..len], |i| got.push(i));
        let want: Vec<usize> = (0..len).filter(|&i| bytes[i] == 0).collect();
        assert_eq!(got, want, "len {len}");
    }
}

#[test]
fn a_function_named_out_of_order_is_found() {
    // Names in the table in the reverse of function order (as when each
    // function was inlined into an earlier one first): the binary search
    // misses some, the walk finds them.
    let funcs = [
        ("c.c", 0u64),
        ("b.b", 0x40),
        ("a.a", 0x80),
        ("z.z", 0xc0),
        ("y.y", 0x100),
    ];
    let tab = build(PclntabVersion::Go120, 8, false, &funcs, 0x180, 0x401000);
    let h = parse_header(&tab, false, 8).unwrap();
    // Reverse the name offsets in the records.
    let mut tab = tab;
    let recs = h.functab_off + h.functab_len().unwrap();
    let offs: Vec<[u8; 4]> = (0..5)
        .map(|i| tab[recs + 8 * i + 4..recs + 8 * i + 8].try_into().unwrap())
        .collect();
    let mut names_order = Vec::new();
    for (i, off) in offs.iter().rev().enumerate() {
        tab[recs + 8 * i + 4..recs + 8 * i + 8].copy_from_slice(off);
        names_order.push(funcs[4 - i].0);
    }
    let h = parse_header(&tab, false, 8).unwrap();
    let got: Vec<String> = functions(&tab, &h, 0x401000)
        .unwrap()
        .into_iter()
        .map(|f| f.name)
        .collect();
    assert_eq!(got, names_order);
    let want = ["a.a", "b.b", "c.c", "y.y", "z.z", "x.x"];
    assert_eq!(
        has_functions(&tab, &h, &want).unwrap(),
        [true, true, true, true, true, false]
    );
}
