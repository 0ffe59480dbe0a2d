//! The bound on a binary's string literals (`GoBinary::literal_range`, where
//! the survey looks for module evidence) against the linker's own symbols,
//! on every corpus binary, the commands of each corpus toolchain and the
//! Debian-packaged Go servers present in /usr/bin:
//!
//! * every corpus binary (Go 1.19 and later) has a bound, and it holds the
//!   whole `go:string.*` block (`go.string.*` in Go 1.19) of its unstripped
//!   twin's symbol table: from that symbol to the next block the linker
//!   writes after it (`go:func.*` up to Go 1.25, `runtime.gcbits.*` from
//!   Go 1.26);
//! * on every binary, the module versions evidence shows are the same
//!   searched in the bound as in all the data sections.
#![allow(clippy::print_stderr)] // reports what it measured

mod common;

use std::path::{Path, PathBuf};

use common::{cache_dir, manifest};
use goprobe::gobin::GoBinary;
use goprobe::gobin::evidence::module_versions_in;
use object::{Object, ObjectSymbol};

const DEBIAN: [&str; 4] = [
    "/usr/bin/prometheus",
    "/usr/bin/caddy",
    "/usr/bin/etcd",
    "/usr/bin/etcd-server",
];

/// The `[start, end)` addresses of the string literal block in `twin`'s
/// symbol table: the `go:string.*` symbol, up to the nearest block symbol
/// above it.
fn literal_block(twin: &Path) -> (u64, u64) {
    let data = std::fs::read(twin).unwrap();
    let file = object::File::parse(&*data).unwrap();
    let addr = |names: &[&str]| -> Vec<u64> {
        file.symbols()
            .filter(|s| s.name().is_ok_and(|n| names.contains(&n)))
            .map(|s| s.address())
            .collect()
    };
    let start = *addr(&["go:string.*", "go.string.*"])
        .first()
        .unwrap_or_else(|| panic!("{}: no go:string.* symbol", twin.display()));
    let end = addr(&["go:func.*", "go.func.*", "runtime.gcbits.*"])
        .into_iter()
        .filter(|&a| a > start)
        .min()
        .unwrap_or_else(|| panic!("{}: nothing after go:string.*", twin.display()));
    (start, end)
}

#[test]
fn the_literal_bound_holds_every_literal() {
    let mut failures = Vec::new();
    let (mut checked, mut bounded, mut bytes_bound, mut bytes_all) = (0, 0, 0usize, 0usize);
    let corpus = manifest();
    let mut others: Vec<PathBuf> = DEBIAN.iter().map(PathBuf::from).collect();
    if let Ok(dirs) = std::fs::read_dir(cache_dir().join("go")) {
        for d in dirs.flatten() {
            for sub in ["go/bin", "go/pkg/tool/linux_amd64"] {
                if let Ok(tools) = std::fs::read_dir(d.path().join(sub)) {
                    others.extend(tools.flatten().map(|t| t.path()));
                }
            }
        }
    }
    let all = corpus
        .iter()
        .map(|b| (b.label(), b.path.clone(), Some(b.twin.clone())))
        .chain(
            others
                .into_iter()
                .filter(|p| p.is_file())
                .map(|p| (p.display().to_string(), p, None)),
        );
    for (label, path, twin) in all {
        let Ok(bin) = GoBinary::open(&path) else {
            continue;
        };
        checked += 1;
        let range = bin.literal_range();
        if let Some((off, len)) = range {
            let data = bin.data_parts();
            bounded += 1;
            bytes_bound += len;
            bytes_all += data.iter().map(|p| p.len()).sum::<usize>();
            // The same evidence as all the data sections give.
            let inside = module_versions_in(&[&bin.data()[off..off + len]]);
            let everywhere = module_versions_in(&data);
            if inside != everywhere {
                failures.push(format!(
                    "{label}: evidence {inside:?}, all data {everywhere:?}"
                ));
            }
        }
        let Some(twin) = twin else { continue };
        let Some((off, len)) = range else {
            failures.push(format!("{label}: no literal bound"));
            continue;
        };
        let (start, end) = literal_block(&twin);
        let at = |a: u64| bin.vaddr_to_file_offset(a).map(|o| o as usize);
        match (at(start), at(end - 1)) {
            (Some(s), Some(e)) if s >= off && e < off + len => {}
            got => failures.push(format!(
                "{label}: literals [{start:#x}, {end:#x}) at file {got:x?}, bound [{off:#x}, {:#x})",
                off + len
            )),
        }
    }
    eprintln!(
        "literals: {checked} binaries, {bounded} with a bound; their bounds {} MB of their data sections' {} MB",
        bytes_bound >> 20,
        bytes_all >> 20
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
