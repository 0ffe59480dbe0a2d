//! Runtime type descriptors and panic-value rendering against the Go
//! toolchain itself: the `panicvalues` fixture panics with many kinds of
//! values, recovers each and prints `%T`, `fmt.Sprint`, reflect's kind and
//! package path next to the raw eface words and the bytes a probe would
//! capture. For every Go version in the manifest and the amd64 variants
//! default, stripped, pie and pie-stripped, the test runs the program and
//! checks that `gobin::types` names every type exactly as `%T` does and that
//! `gobin::values` renders exactly the printed message, or `None` where the
//! message does not follow from the bytes.
//!
//! The arm64 variants are not run here: they would need qemu-user, and the
//! type and value layouts read are the same for both 64-bit targets (the
//! unit tests cover the decoding on byte slices).
// Corpus tests report what they measured.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use common::manifest;
use goprobe::gobin::GoBinary;
use goprobe::gobin::types::{TypeTable, load_bias, package_path_from_functions};
use goprobe::gobin::values::{Captured, panic_message};
use serde_json::Value;

/// The four the type reader must handle, plus trimpath and external linking.
const VARIANTS: [&str; 6] = [
    "default",
    "stripped",
    "pie",
    "pie-stripped",
    "trimpath",
    "cgo",
];

/// Cases whose message follows from the captured bytes: they must render.
const RENDERED: &[&str] = &[
    "string",
    "string-dynamic",
    "string-long",
    "string-empty",
    "errors-new",
    "errorf-plain",
    "errorf-wrap",
    "errorf-wrap2",
    "index",
    "index-negative",
    "index-unsigned",
    "slice-alen",
    "slice-acap",
    "slice-b",
    "slice-b-negative",
    "slice3-b",
    "slice3-c",
    "string-index",
    "convert",
    "nil-map",
    "divide",
    "nil-deref",
    "fault-address",
];
/// Cases whose message needs code the type's methods run: never rendered.
const UNKNOWN: &[&str] = &[
    "custom-error",
    "value-error",
    "string-kind-error",
    "int",
    "pointer-no-methods",
    "type-assertion",
];

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len().is_multiple_of(2), "odd hex {s:?}");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn u64_of(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

fn str_of<'v>(v: &'v Value, key: &str) -> &'v str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} missing in {v}"))
}

#[test]
fn types_and_panic_messages_match_go() {
    let entries: Vec<_> = manifest()
        .into_iter()
        .filter(|b| {
            b.program == "panicvalues" && b.goarch == "amd64" && VARIANTS.contains(&&*b.variant)
        })
        .collect();
    let versions: std::collections::BTreeSet<_> =
        manifest().into_iter().map(|b| b.go_version).collect();
    assert_eq!(
        entries.len(),
        versions.len() * VARIANTS.len(),
        "the corpus lacks panicvalues builds: run `GOPROBE_CACHE=... tests/fixtures/build-corpus.sh --all --programs panicvalues`"
    );
    for entry in &entries {
        check(entry);
    }
}

fn check(entry: &common::CorpusBinary) {
    let label = entry.label();
    let bin = GoBinary::open(&entry.path).unwrap_or_else(|e| panic!("{label}: {e}"));
    let table = TypeTable::new(&bin).unwrap_or_else(|e| panic!("{label}: {e}"));

    let mut child = Command::new(&entry.path)
        .arg("-wait")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{label}: run: {e}"));
    let mut lines = Vec::new();
    let mut reader = BufReader::new(child.stdout.take().expect("piped"));
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).expect("read fixture output");
        assert!(n > 0, "{label}: fixture exited before its marker line");
        let v: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("{label}: bad line {line:?}: {e}"));
        if v.get("marker").is_some() {
            lines.push(v);
            break;
        }
        lines.push(v);
    }
    // The process is waiting on stdin: its maps are there to read.
    let marker = lines.pop().expect("marker line");
    let func = bin
        .function(str_of(&marker, "marker"))
        .unwrap_or_else(|e| panic!("{label}: {e}"))
        .unwrap_or_else(|| panic!("{label}: no function {marker}"));
    let bias = u64_of(&marker, "marker_addr")
        .checked_sub(func.address)
        .unwrap_or_else(|| panic!("{label}: runtime address below link-time address"));
    let from_maps = load_bias(child.id(), &bin).unwrap_or_else(|e| panic!("{label}: {e}"));
    drop(child.stdin.take().map(|mut s| s.flush()));
    let status = child.wait().expect("wait");
    assert!(status.success(), "{label}: fixture failed: {status}");
    assert_eq!(from_maps, bias, "{label}: load bias from /proc/PID/maps");
    if bin.elf().pie {
        assert_ne!(bias, 0, "{label}: a PIE loaded at its link address?");
    } else {
        assert_eq!(bias, 0, "{label}");
    }

    // Addresses outside the type section are errors, not guesses.
    let (types, etypes) = table.range();
    for outside in [0, types - 8, etypes, func.address] {
        match table.resolve(outside) {
            Err(goprobe::gobin::types::TypeError::OutOfRange { .. }) => {}
            other => panic!("{label}: resolve({outside:#x}) = {other:?}"),
        }
    }

    // Every word of the section read as a descriptor: garbage is an error
    // or a nonsense name, never a panic.
    if entry.variant == "default" {
        let resolved = (types..etypes)
            .step_by(8)
            .filter(|&a| table.resolve(a).is_ok())
            .count();
        assert!(
            resolved > 0,
            "{label}: nothing in the type section resolves"
        );
    }

    let mut rendered = 0;
    let mut cases = 0;
    let mut by_functions = 0;
    for v in &lines {
        let case = str_of(v, "case");
        let want_type = str_of(v, "type");
        let message = str_of(v, "message");
        let ctx = format!("{label} case {case}");
        let addr = u64_of(v, "type_addr") - bias;
        let ty = table.resolve(addr).unwrap_or_else(|e| panic!("{ctx}: {e}"));
        assert_eq!(ty.name, want_type, "{ctx}: type string");
        assert_eq!(ty.kind.as_str(), str_of(v, "kind"), "{ctx}: kind");
        let pkg = str_of(v, "pkg");
        assert_eq!(
            ty.pkg_path.as_deref().unwrap_or(""),
            pkg,
            "{ctx}: package path"
        );
        if let Some(p) = package_path_from_functions(&bin, &ty.name) {
            assert_eq!(p, pkg, "{ctx}: package path from function names");
            by_functions += 1;
        }

        let data = unhex(str_of(v, "data"));
        let mut words = [0u64; 4];
        for (w, chunk) in words.iter_mut().zip(data.chunks_exact(8)) {
            *w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        }
        // Without a string first, the probe's read at words[0] fails: no text.
        let text = v.get("text").and_then(Value::as_str).map(unhex);
        let cap = Captured {
            data: u64_of(v, "data_addr"),
            words,
            text: text.as_deref().unwrap_or(&[]),
        };
        let got = panic_message(&ty, &cap);
        if RENDERED.contains(&case) {
            let got = got.unwrap_or_else(|| panic!("{ctx}: {want_type} not rendered"));
            if got.truncated {
                assert!(
                    message.starts_with(&got.text) && got.text.len() < message.len(),
                    "{ctx}: truncated {:?} is not a prefix of {message:?}",
                    got.text
                );
                assert_eq!(message.len() as u64, words[1], "{ctx}: real length");
            } else {
                assert_eq!(got.text, message, "{ctx}");
            }
            rendered += 1;
        } else {
            assert!(UNKNOWN.contains(&case), "{ctx}: case not classified");
            assert_eq!(got, None, "{ctx}: must not be rendered");
        }
        cases += 1;
    }
    assert_eq!(cases, RENDERED.len() + UNKNOWN.len(), "{label}: cases");
    assert_eq!(rendered, RENDERED.len(), "{label}: rendered cases");
    assert!(
        lines
            .iter()
            .any(|v| str_of(v, "case") == "string-long" && v["text"].as_str().unwrap().len() < 400),
        "{label}: the long string was not cut by the capture"
    );
    assert!(
        by_functions >= 5,
        "{label}: package paths from function names: {by_functions}"
    );
    eprintln!("{label}: {cases} types named, {rendered} messages rendered, bias {bias:#x}");
}
