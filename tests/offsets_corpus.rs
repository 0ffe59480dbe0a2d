//! Offsets against ground truth from the Go toolchain itself: for every Go
//! version in the corpus manifest, the `reflectoffsets` fixture (built by
//! that toolchain) prints reflect's offsets and sizes; goprobe's answers for
//! every corpus binary of that version and GOARCH must equal them exactly —
//! from DWARF on unstripped builds (cross-checked against the type
//! descriptors), from the type descriptors or the table on stripped ones —
//! and each source on its own must equal them too: the type descriptors
//! (rtype) for every field whose struct has a descriptor, the table for all.
//! arm64 ground truth comes from running the arm64 build under qemu.
//!
//! The runtime map internals (Traceparent lookup in Request.Header) are
//! unexported runtime types reflect cannot name: for those, reflectoffsets'
//! `mapcheck` mode walks real maps through goprobe's offsets and must find
//! every entry and the Traceparent value.
// Corpus tests report what they measured.
#![allow(clippy::print_stdout, clippy::print_stderr)]

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::process::Command;

use common::{CorpusBinary, manifest};
use goprobe::catalog::{Catalog, Target};
use goprobe::gobin::GoBinary;
use goprobe::gobin::types::StructIndex;
use goprobe::offsets::table::Table;
use goprobe::offsets::{Resolver, Source};

#[derive(Debug, serde::Deserialize)]
struct Truth {
    field: String,
    offset: u64,
    size: u64,
    type_size: Option<u64>,
}

/// Run a reflectoffsets build (natively or under qemu) and parse its output.
fn ground_truth(bin: &CorpusBinary) -> BTreeMap<String, Truth> {
    let mut cmd = if bin.goarch == "arm64" {
        let mut c = Command::new("qemu-aarch64-static");
        c.arg(&bin.path);
        c
    } else {
        Command::new(&bin.path)
    };
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("{}: running {cmd:?}: {e} (arm64 ground truth needs qemu-user-static: scripts/setup.sh)", bin.label())
    });
    assert!(
        out.status.success(),
        "{}: {}",
        bin.label(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut map = BTreeMap::new();
    for line in text.lines() {
        let t: Truth =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{}: {line:?}: {e}", bin.label()));
        map.insert(t.field.clone(), t);
    }
    assert!(
        map.contains_key("runtime.g.goid"),
        "{}: ground truth lacks runtime.g.goid",
        bin.label()
    );
    map
}

/// Versions (toolchain dir names) and their ground truth per GOARCH.
fn truths(all: &[CorpusBinary]) -> BTreeMap<(String, String), BTreeMap<String, Truth>> {
    let mut out = BTreeMap::new();
    let versions: std::collections::BTreeSet<&str> =
        all.iter().map(|b| b.go_version.as_str()).collect();
    for v in versions {
        for (arch, variant) in [("amd64", "default"), ("arm64", "arm64")] {
            let bin = all
                .iter()
                .find(|b| {
                    b.go_version == v && b.program == "reflectoffsets" && b.variant == variant
                })
                .unwrap_or_else(|| {
                    panic!(
                        "corpus has no reflectoffsets {variant} build for Go {v}: run \
                         `tests/fixtures/build-corpus.sh --versions {v} --programs reflectoffsets`"
                    )
                });
            out.insert((v.to_string(), arch.to_string()), ground_truth(bin));
        }
    }
    out
}

#[test]
fn offsets_equal_reflect_ground_truth_for_every_corpus_binary() {
    let all = manifest();
    let truths = truths(&all);
    let table = Table::builtin().unwrap();
    let catalog = Catalog::builtin().unwrap();
    let carried = catalog.table_fields();
    // The functions hooked by the probes that need a field.
    let reads_field = |field: &str| -> Vec<String> {
        catalog
            .probes
            .iter()
            .filter(|p| p.fields.iter().any(|f| f.field == field))
            .flat_map(|p| p.hooks.iter().map(|h| h.function.clone()))
            .collect()
    };
    let mut checked = 0;
    let mut covered: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut failures = Vec::new();
    for bin in &all {
        let truth = &truths[&(bin.go_version.clone(), bin.goarch.clone())];
        let go = GoBinary::open(&bin.path).unwrap_or_else(|e| panic!("{}: {e}", bin.label()));
        let resolver = Resolver::for_binary(&go, &table, None);
        // Every catalog field this version needs is in the ground truth, so the
        // catalog is fully checked against the toolchain.
        if bin.program == "reflectoffsets" && bin.variant == "default" {
            let none = |_: &str| None;
            for f in catalog
                .fields_for(&Target {
                    go_version: &go.build_info().go_version,
                    module_version: &none,
                })
                .into_iter()
                .filter(|f| !is_map_internal(f) && !without_reflect_truth(f))
            {
                assert!(
                    truth.contains_key(&f),
                    "go{}: catalog field {f} has no reflect ground truth",
                    bin.go_version
                );
            }
        }
        for t in truth.values() {
            let got = resolver.resolve(&t.field);
            // A field the offsets table does not carry (catalog `table =
            // false`) may be unknown in a program without the functions
            // that read it (no DWARF type, no descriptor: it never dials);
            // a known offset must still be reflect's.
            if got.offset.is_none()
                && !carried.contains(&t.field)
                && bin.program != "reflectoffsets"
                && !reads_field(&t.field)
                    .iter()
                    .any(|f| go.function(f).ok().flatten().is_some())
            {
                checked += 1;
                continue;
            }
            // Purpose-built programs use every type, so DWARF must answer
            // on their unstripped builds; elsewhere a source after DWARF may.
            let source_ok = if go.elf().dwarf && bin.program == "reflectoffsets" {
                got.source == Source::Dwarf
            } else if go.elf().dwarf {
                matches!(got.source, Source::Dwarf | Source::Rtype | Source::Table)
            } else {
                matches!(got.source, Source::Rtype | Source::Table)
            };
            let ok = got.offset == Some(t.offset)
                && got.size == Some(t.size)
                && (t.type_size.is_none() || got.type_size == t.type_size)
                && source_ok;
            if !ok {
                failures.push(format!(
                    "{}: {}: reflect {}+{} (struct {:?}), goprobe {:?}+{:?} (struct {:?}) from {} {}",
                    bin.label(),
                    t.field,
                    t.offset,
                    t.size,
                    t.type_size,
                    got.offset,
                    got.size,
                    got.type_size,
                    got.source,
                    got.reason.unwrap_or_default()
                ));
            }
            checked += 1;
        }
        covered
            .entry(format!("go{} {}", bin.go_version, bin.program))
            .or_default()
            .push(bin.variant.clone());
    }
    for (k, v) in &covered {
        eprintln!("checked {k}: {}", v.join(" "));
    }
    assert!(
        failures.is_empty(),
        "{} of {checked} field checks failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Runtime map internals: checked by walking real maps, not by reflect.
fn is_map_internal(field: &str) -> bool {
    field.starts_with("runtime.hmap.") || field.starts_with("internal/runtime/maps.")
}

/// Catalog fields the reflectoffsets fixture has no reflect ground truth
/// for yet: runtime.g/runtime.m fields the CPU sampler and panic stacks
/// read (reflect cannot reach the runtime's own structs), and the
/// connection and HTTP/2 fields of the client-server linking (unexported
/// types reached only through interface values at run time, or through
/// fields the fixture does not walk yet). They are checked against DWARF
/// by type_descriptor_offsets_equal_reflect_and_dwarf_on_every_corpus_binary
/// (type descriptors = DWARF wherever both answer) and by the end-to-end
/// tests that read them (tests/cli/cpu.rs, panics.rs, grpc.rs).
fn without_reflect_truth(field: &str) -> bool {
    const FIELDS: &[&str] = &[
        "runtime.g.gopc",
        "runtime.g.m",
        "runtime.m.curg",
        "runtime.m.g0",
        "runtime.m.procid",
        "crypto/tls.Conn.conn",
        "net.TCPConn.conn",
        "net.conn.fd",
        "net.netFD.laddr",
        "net.netFD.raddr",
        "net/http.persistConn.conn",
        "net/http.http2ClientConn.tconn",
        "net/http.http2responseWriter.rws",
        "net/http.http2responseWriterState.status",
        "net/http/internal/http2.ClientConn.tconn",
        "net/http/internal/http2.responseWriter.rws",
        "net/http/internal/http2.responseWriterState.status",
    ];
    FIELDS.contains(&field)
}

#[derive(Debug, serde::Deserialize)]
struct MapReport {
    map: String,
    len: usize,
    seen: usize,
    traceparent: Option<String>,
    buckets_log2: Option<u8>,
    dir_len: Option<i64>,
}

#[test]
fn runtime_map_offsets_find_every_entry_of_real_maps() {
    const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    let all = manifest();
    let table = Table::builtin().unwrap();
    let catalog = Catalog::builtin().unwrap();
    let server = catalog.probe("http.server").unwrap();
    let mut checked = Vec::new();
    for bin in all.iter().filter(|b| {
        b.program == "reflectoffsets" && (b.variant == "default" || b.variant == "arm64")
    }) {
        let go = GoBinary::open(&bin.path).unwrap_or_else(|e| panic!("{}: {e}", bin.label()));
        let none = |_: &str| None;
        let target = Target {
            go_version: &go.build_info().go_version,
            module_version: &none,
        };
        let fields: Vec<String> = server
            .fields_for(&target)
            .filter(|f| is_map_internal(&f.field) || f.field == "net/http.Request.Header")
            .map(|f| f.field.clone())
            .collect();
        assert!(fields.len() >= 4, "{}: {fields:?}", bin.label());
        // DWARF on this build; the table on its stripped twin must agree.
        let twin = if bin.variant == "default" {
            "stripped"
        } else {
            "arm64-stripped"
        };
        let stripped = all
            .iter()
            .find(|b| {
                b.go_version == bin.go_version && b.program == bin.program && b.variant == twin
            })
            .unwrap_or_else(|| panic!("{}: no stripped twin in the corpus", bin.label()));
        let stripped_go = GoBinary::open(&stripped.path).unwrap();
        let from_dwarf = Resolver::for_binary(&go, &table, None);
        let from_table = Resolver::for_binary(&stripped_go, &table, None);
        let mut args = vec!["mapcheck".to_string()];
        for f in &fields {
            let d = from_dwarf.resolve(f);
            let t = from_table.resolve(f);
            assert_eq!(d.source, Source::Dwarf, "{}: {f}: {d:?}", bin.label());
            assert!(
                matches!(t.source, Source::Rtype | Source::Table),
                "{}: {f}: {t:?}",
                stripped.label()
            );
            assert_eq!(
                (d.offset, d.size),
                (t.offset, t.size),
                "{}: {f}",
                bin.label()
            );
            args.push(format!("{f}={}", d.offset.unwrap()));
        }
        let mut cmd = if bin.goarch == "arm64" {
            let mut c = Command::new("qemu-aarch64-static");
            c.arg(&bin.path);
            c
        } else {
            Command::new(&bin.path)
        };
        let out = cmd.args(&args).output().unwrap_or_else(|e| {
            panic!(
                "{}: running {cmd:?}: {e} (arm64 needs qemu-user-static: scripts/setup.sh)",
                bin.label()
            )
        });
        assert!(
            out.status.success(),
            "{}: mapcheck {args:?}: {}",
            bin.label(),
            String::from_utf8_lossy(&out.stderr)
        );
        let reports: Vec<MapReport> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| {
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{}: {l}: {e}", bin.label()))
            })
            .collect();
        let labels: Vec<&str> = reports.iter().map(|r| r.map.as_str()).collect();
        assert_eq!(
            labels,
            [
                "request",
                "grown-1",
                "grown-8",
                "grown-9",
                "grown-100",
                "grown-3000"
            ],
            "{}",
            bin.label()
        );
        for r in &reports {
            assert_eq!(
                r.seen,
                r.len,
                "{}: {r:?}: walked a different number of entries",
                bin.label()
            );
            assert_eq!(
                r.traceparent.as_deref(),
                Some(TRACEPARENT),
                "{}: {r:?}",
                bin.label()
            );
        }
        // The big map really exercises several buckets / several Swiss tables.
        let big = reports.last().unwrap();
        let swiss = fields
            .iter()
            .any(|f| f.starts_with("internal/runtime/maps."));
        if swiss {
            assert!(
                big.dir_len.is_some_and(|d| d > 1),
                "{}: {big:?}",
                bin.label()
            );
        } else {
            assert!(
                big.buckets_log2.is_some_and(|b| b > 1),
                "{}: {big:?}",
                bin.label()
            );
        }
        checked.push(bin.label());
    }
    assert!(
        checked.len() >= 2,
        "no reflectoffsets builds checked: {checked:?}"
    );
    eprintln!("mapcheck passed on: {}", checked.join(", "));
}

#[test]
fn committed_table_covers_every_corpus_version() {
    let table = Table::builtin().unwrap();
    for bin in manifest() {
        let go = GoBinary::open(&bin.path).unwrap_or_else(|e| panic!("{}: {e}", bin.label()));
        let v = &go.build_info().go_version;
        assert!(
            table.stdlib(v, &bin.goarch).is_some_and(|m| m.exact),
            "{}: the offsets table was not generated from {v}/{}: run scripts/gen-offsets-table.sh and commit",
            bin.label(),
            bin.goarch
        );
    }
}

/// Each source on its own against reflect: the type descriptors of every
/// corpus binary (stripped, PIE, trimpath, cgo, arm64 alike) for every
/// ground-truth field whose struct has a descriptor there, and DWARF where
/// the binary has it; counts per source are printed for the closing note.
#[test]
fn type_descriptor_offsets_equal_reflect_and_dwarf_on_every_corpus_binary() {
    let all = manifest();
    let truths = truths(&all);
    let mut failures = Vec::new();
    let (mut rtype_checked, mut rtype_missing, mut dwarf_checked) = (0, 0, 0);
    let mut missing_types = std::collections::BTreeSet::new();
    for bin in &all {
        let truth = &truths[&(bin.go_version.clone(), bin.goarch.clone())];
        let go = GoBinary::open(&bin.path).unwrap_or_else(|e| panic!("{}: {e}", bin.label()));
        let index = StructIndex::new(&go).unwrap_or_else(|e| panic!("{}: {e}", bin.label()));
        let dwarf = go
            .elf()
            .dwarf
            .then(|| goprobe::dwarf::DwarfTypes::from_elf(go.data()).unwrap());
        for t in truth.values() {
            match index.field(&t.field) {
                Ok(l) => {
                    rtype_checked += 1;
                    if l.offset != t.offset
                        || l.size != t.size
                        || t.type_size.is_some_and(|ts| ts != l.type_size)
                    {
                        failures.push(format!(
                            "{}: {}: reflect {}+{}, rtype {}+{} (struct {})",
                            bin.label(),
                            t.field,
                            t.offset,
                            t.size,
                            l.offset,
                            l.size,
                            l.type_size
                        ));
                    }
                }
                Err(goprobe::gobin::types::RtypeError::NoType(ty)) => {
                    rtype_missing += 1;
                    missing_types.insert(format!("{ty} ({})", bin.program));
                }
                Err(e) => failures.push(format!("{}: {}: rtype: {e}", bin.label(), t.field)),
            }
            if let Some(d) = &dwarf
                && let Ok(l) = d.field(&t.field)
            {
                dwarf_checked += 1;
                if l.offset != t.offset || l.size != Some(t.size) {
                    failures.push(format!("{}: {}: DWARF disagrees", bin.label(), t.field));
                }
            }
        }
        // The purpose-built program reaches every type it prints through
        // reflect, so every one has a descriptor.
        if bin.program == "reflectoffsets" {
            for t in truth.values() {
                if let Err(e) = index.field(&t.field) {
                    failures.push(format!("{}: {}: {e}", bin.label(), t.field));
                }
            }
        }
    }
    eprintln!(
        "rtype: {rtype_checked} field checks equal to reflect, {rtype_missing} without a descriptor; DWARF: {dwarf_checked}"
    );
    eprintln!("structs without a descriptor in some binaries: {missing_types:?}");
    assert!(rtype_checked > 0);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
