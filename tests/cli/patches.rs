//! Binaries built with Go patch releases that are not the corpus's reference
//! releases (the patch-release sample, `build-corpus.sh --patches`),
//! stripped: `inspect --require` passes, their offsets equal reflect's from
//! the same toolchain, and `record` gives the same spans as on the reference
//! release. Real programs are built with every patch release; a table keyed
//! by exact version refused them all.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use goprobe::span::{AttrValue, Span};

use crate::common;
use crate::{spans, start};

fn goprobe(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_goprobe"))
        .args(args)
        .output()
        .expect("run goprobe")
}

/// The patch sample's binary of `program`/`variant` for each version.
fn sample(program: &str, variant: &str) -> Vec<common::CorpusBinary> {
    let all: Vec<_> = common::patch_manifest()
        .into_iter()
        .filter(|b| b.program == program && b.variant == variant)
        .collect();
    assert!(
        all.len() >= 3,
        "patch sample has {} {program} {variant} builds: run tests/fixtures/build-corpus.sh --patches",
        all.len()
    );
    all
}

#[test]
fn inspect_requires_every_probe_on_stripped_patch_releases() {
    for (program, probes) in [
        ("httpserver", "http.server,http.client,go.panic"),
        ("dbfake", "http.server,db.sql"),
    ] {
        for bin in sample(program, "stripped") {
            let path = bin.path.to_str().unwrap();
            // Every field from the binary itself: --strict-offsets passes as well.
            for strict in [false, true] {
                let mut args = vec!["inspect", "--require", probes];
                if strict {
                    args.push("--strict-offsets");
                }
                args.push(path);
                let out = goprobe(&args);
                assert!(
                    out.status.success(),
                    "{} {args:?}: {}",
                    bin.label(),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}

#[derive(Debug, serde::Deserialize)]
struct Truth {
    field: String,
    offset: u64,
    size: u64,
}

/// Offsets of the stripped patch-release binaries equal reflect's from the
/// same toolchain, field by field, with the source counted.
#[test]
fn offsets_of_patch_releases_equal_reflect() {
    let mut sources: BTreeMap<String, usize> = BTreeMap::new();
    let truths = sample("reflectoffsets", "default");
    for truth_bin in &truths {
        let out = Command::new(&truth_bin.path)
            .output()
            .expect("reflectoffsets");
        assert!(out.status.success(), "{}", truth_bin.label());
        let truth: Vec<Truth> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        for program in ["httpserver", "dbfake"] {
            let bin = common::patch_manifest()
                .into_iter()
                .find(|b| {
                    b.go_version == truth_bin.go_version
                        && b.program == program
                        && b.variant == "stripped"
                })
                .unwrap_or_else(|| panic!("no stripped {program} for {}", truth_bin.go_version));
            let mut args = vec!["offsets", "--json"];
            for t in &truth {
                args.push("--field");
                args.push(&t.field);
            }
            args.push(bin.path.to_str().unwrap());
            let out = goprobe(&args);
            let got = goprobe::offsets::parse_ndjson(&out.stdout[..]).expect("offsets NDJSON");
            for t in &truth {
                let r = &got[&t.field];
                // A struct the program never uses may be unknown; a known
                // offset must be reflect's.
                if let Some(off) = r.offset {
                    assert_eq!(
                        (off, r.size),
                        (t.offset, Some(t.size)),
                        "{}: {}: {r:?}",
                        bin.label(),
                        t.field
                    );
                }
                *sources.entry(r.source.to_string()).or_default() += 1;
            }
        }
    }
    #[allow(clippy::print_stderr)] // reports what it measured
    {
        eprintln!("patch-release sample: fields by source: {sources:?}");
    }
    assert!(!sources.contains_key("conflict"), "{sources:?}");
}

/// A span reduced to what does not depend on the run: kind, name, parent's
/// name, attributes without ports and with the server address replaced.
fn shape(s: &Span, all: &[Span], addr: &str) -> String {
    let parent = all
        .iter()
        .find(|p| Some(p.span_id) == s.parent_span_id)
        .map_or("-".to_string(), |p| p.name.clone());
    let attrs: Vec<String> = s
        .attributes
        .iter()
        .filter(|(k, _)| !k.ends_with(".port") && !k.starts_with("network.peer"))
        .map(|(k, v)| {
            let v = match v {
                AttrValue::String(t) => t.replace(addr, "ADDR"),
                other => format!("{other:?}"),
            };
            format!("{k}={v}")
        })
        .collect();
    format!(
        "{:?} {} <- {parent} [{}] {:?}",
        s.kind,
        s.name,
        attrs.join(" "),
        s.status.code
    )
}

/// Record a fixed request sequence on `bin` and return the span shapes, sorted.
fn recorded_shapes(bin: &std::path::Path) -> Vec<String> {
    let server = common::Server::start_env(bin, &[("GODEBUG", "httpmuxgo121=0")]);
    let pid = server.pid().to_string();
    let run = start(&["record", "--pid", &pid]);
    for path in ["/hello", "/call", "/fail", "/call"] {
        common::get(&server.addr, path);
    }
    std::thread::sleep(Duration::from_millis(300));
    run.interrupt();
    let (code, out, err) = run.finish();
    assert_eq!(code, 0, "{}: {err}", bin.display());
    let all = spans(&out);
    let mut shapes: Vec<String> = all.iter().map(|s| shape(s, &all, &server.addr)).collect();
    shapes.sort();
    shapes
}

#[test]
fn record_gives_the_same_spans_as_the_reference_release() {
    common::require_root();
    let reference = common::manifest();
    for bin in sample("httpserver", "stripped") {
        // The reference release of the same minor, else the newest reference.
        let minor = bin.go_version.rsplitn(2, '.').last().unwrap().to_string();
        let refs: Vec<_> = reference
            .iter()
            .filter(|r| r.program == "httpserver" && r.variant == "stripped")
            .collect();
        let reference_bin = refs
            .iter()
            .find(|r| r.go_version.starts_with(&format!("{minor}.")) || r.go_version == minor)
            .or(refs.last())
            .expect("a reference httpserver");
        let want = recorded_shapes(&reference_bin.path);
        let got = recorded_shapes(&bin.path);
        assert!(want.len() >= 7, "{}: {want:#?}", reference_bin.label());
        assert_eq!(
            got,
            want,
            "{} against {}",
            bin.label(),
            reference_bin.label()
        );
    }
}
