//! The typelinks look-up of named structs (`gobin::types` index: the
//! element of the listed pointer type `*pkgname.Type`) against the scan of
//! the whole type section, for every struct type the catalog names, on
//! every corpus binary and the Debian-packaged Go servers present in
//! /usr/bin: whatever the typelinks find must be exactly what the scan finds
//! (so the index's answers never change), and the test reports how often a
//! type the binary holds is left to the scan, and on how many binaries a
//! look-up of the types the binary's catalog fields need still scans.
#![allow(clippy::print_stderr)] // reports what it measured

mod common;

use std::collections::BTreeSet;
use std::path::PathBuf;

use common::manifest;
use goprobe::catalog::Catalog;
use goprobe::dwarf::split_field_name;
use goprobe::gobin::GoBinary;
use goprobe::gobin::types::StructIndex;
use goprobe::offsets::Resolver;
use goprobe::offsets::table::Table;

const DEBIAN: [&str; 6] = [
    "/usr/bin/prometheus",
    "/usr/bin/caddy",
    "/usr/bin/etcd",
    "/usr/bin/rclone",
    "/usr/bin/prometheus-alertmanager",
    "/usr/bin/prometheus-node-exporter",
];

fn types_of(fields: &[String]) -> BTreeSet<String> {
    fields
        .iter()
        .filter_map(|f| split_field_name(f).map(|(ty, _)| ty.to_string()))
        .collect()
}

#[test]
fn typelinks_find_what_the_scan_finds() {
    let catalog = Catalog::builtin().unwrap();
    let table = Table::builtin().unwrap();
    let all_types = types_of(&catalog.all_fields());
    let mut paths: Vec<(String, PathBuf)> = manifest()
        .into_iter()
        .map(|b| (b.label(), b.path))
        .collect();
    paths.extend(
        DEBIAN
            .iter()
            .map(PathBuf::from)
            .filter(|p| p.is_file())
            .map(|p| (p.display().to_string(), p)),
    );
    let (mut binaries, mut present, mut linked, mut scans) = (0, 0, 0, 0);
    let mut no_links = 0;
    let mut left_to_scan: BTreeSet<String> = BTreeSet::new();
    let mut failures = Vec::new();
    for (label, path) in &paths {
        let bin = GoBinary::open(path).unwrap_or_else(|e| panic!("{label}: {e}"));
        let Ok(index) = StructIndex::new(&bin) else {
            continue;
        };
        binaries += 1;
        // What a look-up of the binary's own catalog types does.
        let needed = types_of(&Resolver::for_binary(&bin, &table, None).catalog_fields(catalog));
        let unlinked: Vec<&String> = needed
            .iter()
            .filter(|ty| index.linked_descriptors(ty).is_empty())
            .collect();
        scans += usize::from(!unlinked.is_empty());
        if !unlinked.is_empty() && label.starts_with('/') {
            eprintln!("  {label}: needs the scan for {unlinked:?}");
        }
        let mut any_link = false;
        for ty in &all_types {
            let (l, s) = (index.linked_descriptors(ty), index.scanned_descriptors(ty));
            if !l.is_empty() && l != s {
                failures.push(format!("{label}: {ty}: typelinks {l:x?}, scan {s:x?}"));
            }
            if !s.is_empty() {
                present += 1;
                any_link |= !l.is_empty();
                if l.is_empty() {
                    left_to_scan.insert(format!("{ty} ({label})"));
                } else {
                    linked += 1;
                }
            }
        }
        no_links += usize::from(!any_link);
    }
    eprintln!(
        "typelinks: {binaries} binaries; catalog struct types present {present}, found through the typelinks {linked}; binaries with no typelinks answer (Go 1.27 among them) {no_links}; binaries whose own catalog types need the scan {scans}"
    );
    for t in &left_to_scan {
        eprintln!("  left to the scan: {t}");
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
