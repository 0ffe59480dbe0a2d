//! The committed offsets table (src/offsets/table.json) is exactly what
//! scripts/gen-offsets-table.sh produces for every Go toolchain installed in
//! `$GOPROBE_CACHE/go` (in CI: the versions CI installs), and the generator is
//! deterministic.

#[path = "common/mod.rs"]
mod common;

use std::process::Command;

#[test]
fn committed_table_matches_generator_for_installed_toolchains() {
    let go_dir = common::cache_dir().join("go");
    assert!(
        go_dir.is_dir(),
        "no Go toolchains in {}: run tests/fixtures/build-corpus.sh (scripts/setup.sh does)",
        go_dir.display()
    );
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/gen-offsets-table.sh");
    let out = Command::new("bash")
        .arg(script)
        .arg("--check")
        .env("GOPROBE", env!("CARGO_BIN_EXE_goprobe"))
        .env("GOPROBE_CACHE", common::cache_dir())
        .output()
        .expect("running gen-offsets-table.sh");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "gen-offsets-table.sh --check failed:\n{err}"
    );
    assert!(
        err.contains("committed table matches the generator"),
        "{err}"
    );
}

#[test]
fn table_is_serialized_canonically() {
    // Regenerating gives byte-identical output: the committed file is already
    // in the canonical form the generator writes.
    let table = goprobe::offsets::table::Table::builtin().unwrap();
    assert_eq!(
        table.to_json_string(),
        goprobe::offsets::table::BUILTIN_TABLE_JSON
    );
}

#[test]
fn table_has_every_catalog_field_its_versions_need() {
    let table = goprobe::offsets::table::Table::builtin().unwrap();
    let catalog = goprobe::catalog::Catalog::builtin().unwrap();
    assert!(
        !table.stdlib.is_empty(),
        "empty offsets table: run scripts/gen-offsets-table.sh"
    );
    let none = |_: &str| None;
    let in_table = catalog.table_fields();
    for (go, arches) in &table.stdlib {
        for arch in ["amd64", "arm64"] {
            let layouts = arches
                .archs
                .get(arch)
                .unwrap_or_else(|| panic!("table: {go} lacks {arch}"));
            for f in catalog.fields_for(&goprobe::catalog::Target {
                go_version: go,
                module_version: &none,
            }) {
                if !in_table.contains(&f) {
                    continue;
                }
                assert!(
                    layouts.fields.contains_key(&f),
                    "table {go}/{arch} lacks catalog field {f}: add its type to reflectoffsets and regenerate"
                );
            }
        }
    }
}
