//! The Go binary reader against the Go toolchain's own tools, over every
//! binary of the fixture corpus (`$GOPROBE_CACHE/corpus/manifest.tsv`):
//!
//! * `goprobe inspect --json` equals `go version -m` of the matching
//!   toolchain field by field (and `go version -m -json` where the toolchain
//!   has it, Go 1.24+);
//! * `goprobe inspect --functions --json` equals `go tool nm` on the
//!   unstripped twin (names and addresses of every Go function), and each
//!   file offset agrees with the ELF segment mapping and points at the same
//!   code bytes as the twin's symbol;
//! * ELF facts match the variant (arch, PIE, stripped, DWARF, pclntab format);
//! * a corpus binary cut short anywhere is an error, never a panic.
// Corpus tests report what they measured.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use common::{CorpusBinary, go, manifest, output};
use object::{Object, ObjectSection, ObjectSegment};
use serde_json::Value;

fn goprobe() -> Command {
    Command::new(env!("CARGO_BIN_EXE_goprobe"))
}

/// A module as `go version -m` prints it: path, version, sum, replacement.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Module {
    path: String,
    version: String,
    sum: String,
    replace: Option<Box<Module>>,
}

#[derive(Debug, Default, PartialEq, Eq)]
struct GoVersionM {
    go_version: String,
    path: Option<String>,
    main: Option<Module>,
    deps: Vec<Module>,
    settings: Vec<(String, String)>,
}

/// Decode a Go-quoted build setting key or value as `go version -m` prints
/// it (strconv.Quote for values with spaces, tabs, quotes...). The corpus
/// only needs the escapes JSON shares with Go; anything else fails loudly.
fn go_unquote(s: &str) -> String {
    if let Some(raw) = s.strip_prefix('`').and_then(|r| r.strip_suffix('`')) {
        return raw.to_string();
    }
    if s.starts_with('"') {
        return serde_json::from_str::<String>(s)
            .unwrap_or_else(|e| panic!("test oracle cannot decode Go-quoted {s:?}: {e}"));
    }
    s.to_string()
}

fn split_setting(kv: &str) -> (String, String) {
    if kv.starts_with('"') {
        // A quoted key: find its closing quote (skipping escapes).
        let b = kv.as_bytes();
        let mut i = 1;
        while b[i] != b'"' {
            i += if b[i] == b'\\' { 2 } else { 1 };
        }
        let (k, rest) = kv.split_at(i + 1);
        return (
            go_unquote(k),
            go_unquote(rest.strip_prefix('=').expect("= after quoted key")),
        );
    }
    let (k, v) = kv
        .split_once('=')
        .unwrap_or_else(|| panic!("build line without '=': {kv:?}"));
    (k.to_string(), go_unquote(v))
}

fn module_cols(cols: &[&str]) -> Module {
    Module {
        path: cols[0].to_string(),
        version: cols.get(1).unwrap_or(&"").to_string(),
        sum: cols.get(2).unwrap_or(&"").to_string(),
        replace: None,
    }
}

/// Parse `go version -m BIN` text output.
fn parse_go_version_m(text: &str, bin: &Path) -> GoVersionM {
    let mut lines = text.lines();
    let first = lines.next().expect("go version -m printed nothing");
    let prefix = format!("{}: ", bin.display());
    let mut out = GoVersionM {
        go_version: first
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .to_string(),
        ..Default::default()
    };
    // Whether the last module line was the main module (for `=>`).
    let mut last_is_main = false;
    for line in lines {
        let line = line
            .strip_prefix('\t')
            .unwrap_or_else(|| panic!("unindented line {line:?}"));
        let cols: Vec<&str> = line.split('\t').collect();
        match cols[0] {
            "path" => out.path = Some(cols[1].to_string()),
            "mod" => {
                out.main = Some(module_cols(&cols[1..]));
                last_is_main = true;
            }
            "dep" => {
                out.deps.push(module_cols(&cols[1..]));
                last_is_main = false;
            }
            "=>" => {
                let r = Some(Box::new(module_cols(&cols[1..])));
                if last_is_main {
                    out.main.as_mut().expect("=> after mod").replace = r;
                } else {
                    out.deps.last_mut().expect("=> after dep").replace = r;
                }
            }
            "build" => out.settings.push(split_setting(&line["build\t".len()..])),
            "" => {}
            other => panic!("unexpected go version -m line kind {other:?}"),
        }
    }
    out
}

fn json_module(v: &Value) -> Module {
    let s = |k: &str| {
        v[k].as_str()
            .unwrap_or_else(|| panic!("module field {k} missing in {v}"))
            .to_string()
    };
    Module {
        path: s("path"),
        version: s("version"),
        sum: s("sum"),
        replace: v.get("replace").map(|r| Box::new(json_module(r))),
    }
}

fn inspect_json(bin: &Path) -> Value {
    let mut cmd = goprobe();
    cmd.args(["inspect", "--json"]).arg(bin);
    let text = output(cmd);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        1,
        "inspect --json printed {} lines",
        lines.len()
    );
    serde_json::from_str(lines[0]).expect("inspect --json output is JSON")
}

fn check_build_info(b: &CorpusBinary) {
    let mut cmd = go(&b.go_version);
    cmd.args(["version", "-m"]).arg(&b.path);
    let oracle = parse_go_version_m(&output(cmd), &b.path);
    let mine = inspect_json(&b.path);
    let label = b.label();

    assert_eq!(mine["path"], b.path.display().to_string(), "{label}");
    assert_eq!(mine["go_version"], oracle.go_version, "{label}: go version");
    // The manifest names the toolchain directory ("1.19" is Debian's go1.19.8).
    let v = mine["go_version"].as_str().unwrap_or_default();
    let manifest_v = format!("go{}", b.go_version);
    assert!(
        v == manifest_v || v.starts_with(&format!("{manifest_v}.")),
        "{label}: go version {v} vs manifest"
    );
    assert_eq!(
        mine["main_package"].as_str(),
        oracle.path.as_deref(),
        "{label}: path"
    );
    let main = (!mine["main"].is_null()).then(|| json_module(&mine["main"]));
    assert_eq!(main, oracle.main, "{label}: main module");
    let deps: Vec<Module> = mine["deps"]
        .as_array()
        .expect("deps")
        .iter()
        .map(json_module)
        .collect();
    assert_eq!(
        deps, oracle.deps,
        "{label}: deps (with versions, sums, replacements)"
    );
    assert!(
        deps.iter().any(|d| d.replace.is_some()) || b.program != "hello",
        "{label}: hello has replacements"
    );

    let keys: BTreeSet<&String> = oracle.settings.iter().map(|(k, _)| k).collect();
    assert_eq!(
        keys.len(),
        oracle.settings.len(),
        "{label}: repeated build setting keys"
    );
    let want: BTreeMap<String, String> = oracle.settings.iter().cloned().collect();
    let got: BTreeMap<String, String> = mine["settings"]
        .as_object()
        .expect("settings object")
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str().expect("setting value string").to_string(),
            )
        })
        .collect();
    assert_eq!(got, want, "{label}: build settings");
    assert!(
        !want.is_empty(),
        "{label}: Go 1.18+ binaries record build settings"
    );

    // Go 1.25+ can print the same as JSON: a second oracle that also decodes
    // Go's quoting itself.
    if go_minor(&b.go_version) >= 25 {
        let mut cmd = go(&b.go_version);
        cmd.args(["version", "-m", "-json"]).arg(&b.path);
        let j: Value = serde_json::from_str(&output(cmd)).expect("go version -m -json is JSON");
        assert_eq!(mine["go_version"], j["GoVersion"], "{label}");
        let settings: BTreeMap<String, String> = j["Settings"]
            .as_array()
            .expect("Settings")
            .iter()
            .map(|s| {
                (
                    s["Key"].as_str().unwrap().to_string(),
                    s["Value"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        assert_eq!(
            got, settings,
            "{label}: build settings vs go version -m -json"
        );
        let go_mod = |v: &Value| -> Module {
            let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
            Module {
                path: s("Path"),
                version: s("Version"),
                sum: s("Sum"),
                replace: None,
            }
        };
        let jdeps: Vec<Module> = j["Deps"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|d| Module {
                        replace: d.get("Replace").map(|r| Box::new(go_mod(r))),
                        ..go_mod(d)
                    })
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(deps, jdeps, "{label}: deps vs go version -m -json");
    }
}

fn go_minor(version: &str) -> u32 {
    version
        .split('.')
        .nth(1)
        .and_then(|m| m.parse().ok())
        .expect("Go version like 1.22.10")
}

fn check_elf_facts(b: &CorpusBinary) {
    let mine = inspect_json(&b.path);
    let label = b.label();
    assert_eq!(mine["arch"], b.goarch, "{label}: arch");
    assert_eq!(mine["pie"], b.variant.contains("pie"), "{label}: pie");
    assert_eq!(mine["stripped"], b.stripped(), "{label}: stripped");
    // -s already drops DWARF; the stripped variants use -s -w.
    assert_eq!(mine["dwarf"], !b.stripped(), "{label}: dwarf");
    let pclntab = if go_minor(&b.go_version) >= 20 {
        "1.20"
    } else {
        "1.18"
    };
    assert_eq!(mine["pclntab_version"], pclntab, "{label}: pclntab format");
}

/// Normalize a function name for comparing pclntab with the ELF symbol table:
/// * `·` -> `.`: older toolchains keep the middle dot in pclntab names, the
///   ELF symbol table spells it `.`;
/// * bracketed text -> `[...]`: pclntab (Go 1.18-1.21 here) names generic
///   instantiations and `type..eq.[N]T` functions with `[...]` where the
///   symbol table spells out the type arguments / array length.
fn normalize(name: &str) -> String {
    let name = name.replace('·', ".");
    let mut out = String::with_capacity(name.len());
    let mut depth = 0;
    for c in name.chars() {
        match c {
            '[' => {
                if depth == 0 {
                    out.push_str("[...]");
                }
                depth += 1;
            }
            ']' if depth > 0 => depth -= 1,
            _ if depth > 0 => {}
            c => out.push(c),
        }
    }
    out
}

/// Go functions from `go tool nm` on the unstripped twin, as (address,
/// normalized name). Text symbols (`T`, `t`) are kept when they lie in Go's
/// text, `[runtime.text, runtime.etext)`. Excluded, because pclntab does not
/// describe them:
/// * `runtime.text` and `runtime.etext` themselves: address markers, not functions;
/// * everything outside Go's text: in cgo (externally linked) builds the C
///   code — crt (`_start`, `_init`, `frame_dummy`, ...), libgcc, and cgo's C
///   side (`x_cgo_*`, `_cgo_*`, `crosscall*`) — which has no pclntab entries.
///   The `.abi0` suffix the linker puts on ABI0 (assembly) symbols is dropped:
///   pclntab names the function without it.
fn nm_functions(b: &CorpusBinary) -> BTreeSet<(u64, String)> {
    let mut cmd = go(&b.go_version);
    cmd.args(["tool", "nm"]).arg(&b.twin);
    let text = output(cmd);
    let mut syms = Vec::new();
    for line in text.lines() {
        // Undefined (dynamic) symbols have no address: `         U name@GLIBC`.
        if line.trim_start().starts_with("U ") {
            continue;
        }
        let mut parts = line.trim_start().splitn(3, ' ');
        let (Some(addr), Some(kind), Some(name)) = (parts.next(), parts.next(), parts.next())
        else {
            panic!("{}: odd nm line {line:?}", b.label());
        };
        let addr =
            u64::from_str_radix(addr, 16).unwrap_or_else(|e| panic!("nm address {addr:?}: {e}"));
        syms.push((addr, kind.to_string(), name.to_string()));
    }
    let find = |n: &str| {
        syms.iter()
            .find(|s| s.2 == n)
            .map(|s| s.0)
            .unwrap_or_else(|| panic!("{}: nm has no {n}", b.label()))
    };
    let (text_start, text_end) = (find("runtime.text"), find("runtime.etext"));
    syms.into_iter()
        .filter(|(a, k, n)| {
            (k == "T" || k == "t")
                && *a >= text_start
                && *a < text_end
                && n != "runtime.text"
                && n != "runtime.etext"
        })
        .map(|(a, _, n)| (a, normalize(n.strip_suffix(".abi0").unwrap_or(&n))))
        .collect()
}

/// File offset of `vaddr` from the executable ELF `PT_LOAD` program headers, via `object`.
fn segment_offset(file: &object::File<'_>, vaddr: u64) -> Option<u64> {
    file.segments().find_map(|s| {
        let (off, size) = s.file_range();
        let exec =
            matches!(s.flags(), object::SegmentFlags::Elf { p_flags, .. } if p_flags & 1 != 0);
        (exec && vaddr >= s.address() && vaddr - s.address() < size)
            .then(|| off + (vaddr - s.address()))
    })
}

fn check_functions(b: &CorpusBinary) {
    let label = b.label();
    let mut cmd = goprobe();
    cmd.args(["inspect", "--functions", "--json"]).arg(&b.path);
    let text = output(cmd);
    let fns: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("function line is JSON"))
        .collect();
    let want = nm_functions(b);
    let got: BTreeSet<(u64, String)> = fns
        .iter()
        .map(|f| {
            (
                f["address"].as_u64().unwrap(),
                normalize(f["name"].as_str().unwrap()),
            )
        })
        .collect();
    let missing: Vec<_> = want.difference(&got).take(10).collect();
    let extra: Vec<_> = got.difference(&want).take(10).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{label}: vs go tool nm: missing {missing:x?}, extra {extra:x?}"
    );
    assert!(want.len() > 1000, "{label}: only {} functions", want.len());

    // Offsets: the program headers (read here with `object`, not goprobe's
    // code) map each address to the reported offset, inside an executable
    // segment. (The code bytes themselves are not compared with the twin:
    // RIP-relative displacements differ because stripping moves data.)
    let data = std::fs::read(&b.path).unwrap();
    let elf = object::File::parse(&*data).unwrap();
    for f in &fns {
        let (addr, off) = (
            f["address"].as_u64().unwrap(),
            f["offset"].as_u64().unwrap(),
        );
        assert_eq!(
            Some(off),
            segment_offset(&elf, addr),
            "{label}: offset of {f}"
        );
    }
    // Sizes tile the text: each function ends where the next begins.
    for w in fns.windows(2) {
        assert_eq!(
            w[0]["address"].as_u64().unwrap() + w[0]["size"].as_u64().unwrap(),
            w[1]["address"].as_u64().unwrap(),
            "{label}: sizes"
        );
    }
}

/// Run `check` over every manifest binary, collecting failures so one run
/// reports all of them, and print the coverage.
fn over_corpus(
    what: &str,
    filter: impl Fn(&CorpusBinary) -> bool,
    check: impl Fn(&CorpusBinary) + std::panic::RefUnwindSafe,
) {
    let all = manifest();
    let mut failures = Vec::new();
    let mut covered = BTreeMap::<String, BTreeSet<String>>::new();
    for b in all.iter().filter(|b| filter(b)) {
        match std::panic::catch_unwind(|| check(b)) {
            Ok(()) => {
                covered
                    .entry(format!("go{}", b.go_version))
                    .or_default()
                    .insert(format!("{}/{}", b.program, b.variant));
            }
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()));
                failures.push(format!("{}: {}", b.label(), msg.unwrap_or_default()));
            }
        }
    }
    let n: usize = covered.values().map(BTreeSet::len).sum();
    eprintln!("{what}: {n} binaries passed");
    for (v, set) in &covered {
        eprintln!(
            "  {v}: {}",
            set.iter().cloned().collect::<Vec<_>>().join(" ")
        );
    }
    assert!(
        failures.is_empty(),
        "{what}: {} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(n > 0, "{what}: no corpus binaries checked");
}

#[test]
fn build_info_matches_go_version_m() {
    over_corpus("build info vs go version -m", |_| true, check_build_info);
}

#[test]
fn elf_facts_match_the_variant() {
    over_corpus("ELF facts", |_| true, check_elf_facts);
}

#[test]
fn functions_match_go_tool_nm() {
    // Every binary, not just the stripped ones: the unstripped ones (and cgo,
    // trimpath) are compared with their own symbol table.
    over_corpus("functions vs go tool nm", |_| true, check_functions);
}

#[test]
fn truncated_corpus_binaries_are_errors() {
    over_corpus(
        "truncation",
        |b| b.program == "hello" && (b.variant == "stripped" || b.variant == "pie"),
        |b| {
            let data = std::fs::read(&b.path).unwrap();
            // Cut inside the part of the file anything refers to: sections,
            // segments, section headers (the linker may pad the file after).
            let len = {
                let elf = object::File::parse(&*data).unwrap();
                let sections = elf
                    .sections()
                    .filter_map(|s| s.file_range())
                    .map(|(o, n)| o + n);
                let segments = elf.segments().map(|s| s.file_range()).map(|(o, n)| o + n);
                // ELF64 little-endian header: e_shoff at 0x28, e_shentsize 0x3a, e_shnum 0x3c.
                let shoff = u64::from_le_bytes(data[0x28..0x30].try_into().unwrap());
                let shentsize = u64::from(u16::from_le_bytes([data[0x3a], data[0x3b]]));
                let shnum = u64::from(u16::from_le_bytes([data[0x3c], data[0x3d]]));
                sections
                    .chain(segments)
                    .chain([shoff + shentsize * shnum])
                    .max()
                    .unwrap() as usize
            };
            let mut cuts: Vec<usize> = (0..64).map(|i| i * len / 64).collect();
            cuts.extend([1, 4, 16, 52, 63, 64, 65, 200, len - 1]);
            for cut in cuts {
                let r = goprobe::gobin::GoBinary::from_bytes(b.path.clone(), data[..cut].to_vec());
                assert!(
                    r.is_err(),
                    "{}: cut at {cut} of {len} was accepted",
                    b.label()
                );
            }
            // The whole file opens and lists functions.
            let whole = goprobe::gobin::GoBinary::from_bytes(b.path.clone(), data).unwrap();
            assert!(!whole.functions().unwrap().is_empty());
        },
    );
}

/// The one-pass name lookup behind verdicts agrees with the full function
/// table on every corpus binary: first, middle and last functions are found,
/// a name that is a prefix of a real one and an absent name are not.
#[test]
fn has_functions_agrees_with_the_function_table() {
    for b in manifest() {
        let label = format!("go{} {} {}", b.go_version, b.program, b.variant);
        let fns = goprobe::gobin::GoBinary::open(&b.path)
            .and_then(|bin| bin.functions())
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        assert!(fns.len() > 2, "{label}: too few functions");
        let first = fns[0].name.clone();
        let middle = fns[fns.len() / 2].name.clone();
        let last = fns[fns.len() - 1].name.clone();
        let prefix = "runtime.mallocgc"[..15].to_string(); // "runtime.mallocg": a prefix, not a function
        let names = [
            first.as_str(),
            middle.as_str(),
            last.as_str(),
            prefix.as_str(),
            "main.noSuchFunction",
        ];
        // A fresh GoBinary, so the lookup walks pclntab instead of the cached table.
        let fresh =
            goprobe::gobin::GoBinary::open(&b.path).unwrap_or_else(|e| panic!("{label}: {e}"));
        let found = fresh
            .has_functions(&names)
            .unwrap_or_else(|e| panic!("{label}: {e}"));
        let want: Vec<bool> = names
            .iter()
            .map(|n| fns.iter().any(|f| f.name == *n))
            .collect();
        assert_eq!(found, want, "{label}: has_functions({names:?})");
        assert_eq!(&found[..3], &[true, true, true], "{label}");
    }
}
