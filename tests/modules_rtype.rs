//! Third-party struct layouts from the binary's own type descriptors, at
//! module versions years apart: the `modreflect` fixture, built (stripped)
//! against google.golang.org/grpc v1.40.0 (2021), v1.56.3 (2023) and v1.71.0
//! (2025) and github.com/lib/pq v1.10.9 from the Go module proxy, prints
//! reflect's offsets of every field of the structs a probe would read (the
//! roots in tests/fixtures/modreflect/*.go and the module's structs reached
//! from them); goprobe's answers for the same binary must equal them, from
//! the type descriptors, with no table entry for any of these versions.
//! Needs the Go module proxy (downloads are cached in $GOPROBE_CACHE/gomodcache).
#![allow(clippy::print_stderr)] // reports what it measured

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::process::Command;

use goprobe::gobin::GoBinary;
use goprobe::offsets::table::Table;
use goprobe::offsets::{Resolver, Source};

#[derive(Debug, serde::Deserialize)]
struct Truth {
    field: String,
    offset: u64,
    size: u64,
    type_size: u64,
}

/// Build modreflect with `tag` against `module@version`; the binary's path.
fn build(tag: &str, module: &str, version: &str) -> std::path::PathBuf {
    let cache = common::cache_dir();
    let go_root = cache.join("go/1.26.6/go");
    let gobin = go_root.join("bin/go");
    assert!(
        gobin.is_file(),
        "Go 1.26.6 missing at {}: run tests/fixtures/build-corpus.sh",
        gobin.display()
    );
    let work = cache.join(format!("work/modreflect/{tag}-{version}"));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/modreflect");
    for e in std::fs::read_dir(src).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), work.join(e.file_name())).unwrap();
    }
    let go = |args: &[&str]| {
        let mut c = Command::new(&gobin);
        c.current_dir(&work)
            .args(args)
            .env("GOROOT", &go_root)
            .env("GOTOOLCHAIN", "local")
            .env("GOFLAGS", "-mod=mod")
            .env("GOSUMDB", "off")
            .env("GOMODCACHE", cache.join("gomodcache"))
            .env("GOCACHE", cache.join("gocache"))
            .env("CGO_ENABLED", "0");
        if std::env::var_os("GOPROXY").is_none() {
            c.env("GOPROXY", "https://proxy.golang.org");
        }
        common::output(c)
    };
    go(&["get", &format!("{module}@{version}")]);
    let out = work.join("modreflect");
    go(&[
        "build",
        "-tags",
        tag,
        "-ldflags=-s -w",
        "-o",
        out.to_str().unwrap(),
        ".",
    ]);
    out
}

#[test]
fn module_layouts_from_type_descriptors_equal_reflect() {
    let table = Table::builtin().unwrap();
    let mut summary = Vec::new();
    let mut failures = Vec::new();
    for (tag, module, version) in [
        ("grpc", "google.golang.org/grpc", "v1.40.0"),
        ("grpc", "google.golang.org/grpc", "v1.56.3"),
        ("grpc", "google.golang.org/grpc", "v1.71.0"),
        ("pq", "github.com/lib/pq", "v1.10.9"),
    ] {
        let bin = build(tag, module, version);
        let truth: Vec<Truth> = common::output(Command::new(&bin))
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(truth.len() >= 10, "{module}@{version}: {truth:?}");
        let go = GoBinary::open(&bin).unwrap();
        assert!(!go.elf().dwarf, "{}: not stripped", bin.display());
        let resolver = Resolver::for_binary(&go, &table, None);
        let mut sources: BTreeMap<String, usize> = BTreeMap::new();
        for t in &truth {
            let r = resolver.resolve(&t.field);
            *sources.entry(r.source.to_string()).or_default() += 1;
            if r.source != Source::Rtype
                || r.offset != Some(t.offset)
                || r.size != Some(t.size)
                || r.type_size != Some(t.type_size)
            {
                failures.push(format!(
                    "{module}@{version}: {}: reflect {}+{} (struct {}), goprobe {r:?}",
                    t.field, t.offset, t.size, t.type_size
                ));
            }
        }
        summary.push(format!(
            "{module}@{version}: {} fields {sources:?}",
            truth.len()
        ));
    }
    eprintln!("{}", summary.join("\n"));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
