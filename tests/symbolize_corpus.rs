//! The pclntab symbolizer against the Go toolchain's own tools, over the
//! fixture corpus: for pcs spread over every function (entry, middle, last
//! byte), the physical function and the innermost file:line equal
//! `go tool addr2line` on the unstripped twin (which reads the same tables
//! through `debug/gosym`, with no inlining); the inlined frames equal the
//! chain `llvm-symbolizer` reads from the twin's DWARF
//! (`DW_TAG_inlined_subroutine`), a source that shares nothing with pclntab.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use common::{CorpusBinary, go, manifest};
use goprobe::gobin::GoBinary;
use goprobe::gobin::symbolize::Symbolizer;
use goprobe::goruntime::stacks::name_for_print;

/// pcs to check in one binary: three per function, at most `limit` functions
/// (evenly spread over the table).
fn sample_pcs(bin: &GoBinary, limit: usize) -> Vec<u64> {
    let fns = bin.function_table().expect("function table");
    let step = fns.len().div_ceil(limit).max(1);
    let mut pcs = Vec::new();
    for f in fns.iter().step_by(step) {
        // Linker markers (`go:textfipsstart`, `go:buildid`) have no line
        // table (offset 0): the runtime says `?:0`, debug/gosym decodes
        // whatever bytes start pctab.
        if f.size == 0 || f.name.starts_with("go:") {
            continue;
        }
        pcs.push(f.address);
        pcs.push(f.address + f.size / 2);
        pcs.push(f.address + f.size - 1);
    }
    pcs
}

/// `go tool addr2line BIN` on `pcs`: (function, file:line) per pc. The
/// newest corpus toolchain's: Go 1.19's own addr2line cannot read its PIE
/// binaries (it answers `?` for every pc), later ones read every format.
fn addr2line(twin: &Path, pcs: &[u64]) -> Vec<(String, String)> {
    let newest = manifest()
        .into_iter()
        .map(|b| b.go_version)
        .max_by(|a, b| version_key(a).cmp(&version_key(b)))
        .expect("corpus versions");
    let mut cmd = go(&newest);
    cmd.args(["tool", "addr2line"]).arg(twin);
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("go tool addr2line");
    let input: String = pcs.iter().map(|pc| format!("{pc:#x}\n")).collect();
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("addr2line output");
    writer.join().expect("writer").expect("write pcs");
    assert!(out.status.success(), "go tool addr2line failed");
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        2 * pcs.len(),
        "addr2line answers two lines per pc"
    );
    lines
        .chunks(2)
        .map(|c| (c[0].to_string(), c[1].to_string()))
        .collect()
}

fn version_key(v: &str) -> Vec<u32> {
    v.split('.').filter_map(|p| p.parse().ok()).collect()
}

fn check_addr2line(b: &CorpusBinary) {
    let bin = GoBinary::open(&b.path).expect("open");
    let sym = Symbolizer::new(&bin).unwrap_or_else(|e| panic!("{}: {e}", b.label()));
    let pcs = sample_pcs(&bin, 4000);
    let want = addr2line(&b.twin, &pcs);
    let mut bad = Vec::new();
    for (pc, (want_fn, want_pos)) in pcs.iter().zip(&want) {
        let frames = sym.frames(*pc);
        let (Some(inner), Some(outer)) = (frames.first(), frames.last()) else {
            bad.push(format!("{pc:#x}: no frames, addr2line says {want_fn}"));
            continue;
        };
        // Padding after a function's last instruction is in no line table:
        // addr2line says `:-1` where the runtime (and goprobe) say `?:0`.
        let pos = match (inner.file, inner.line) {
            ("?", 0) => ":-1".to_string(),
            (file, line) => format!("{file}:{line}"),
        };
        if outer.function != want_fn || &pos != want_pos {
            bad.push(format!(
                "{pc:#x}: {} {pos}, addr2line {want_fn} {want_pos}",
                outer.function
            ));
        }
    }
    assert!(
        bad.is_empty(),
        "{}: {} of {} pcs differ from go tool addr2line, e.g.:\n{}",
        b.label(),
        bad.len(),
        pcs.len(),
        bad.iter().take(10).cloned().collect::<Vec<_>>().join("\n")
    );
}

fn amd64_variants(b: &CorpusBinary) -> bool {
    matches!(
        b.variant.as_str(),
        "default" | "stripped" | "pie" | "pie-stripped" | "arm64-stripped"
    )
}

#[test]
fn symbolizer_equals_go_tool_addr2line() {
    let all: Vec<CorpusBinary> = manifest()
        .into_iter()
        .filter(|b| b.program == "httpserver" && amd64_variants(b))
        .collect();
    assert!(!all.is_empty(), "no httpserver binaries in the corpus");
    for b in &all {
        check_addr2line(b);
    }
}

/// `llvm-symbolizer` on the twin's DWARF: per pc, the chain of
/// (function, file:line), innermost first.
fn llvm_symbolizer(twin: &Path, pcs: &[u64]) -> Vec<Vec<(String, String)>> {
    let input: String = pcs.iter().map(|pc| format!("{pc:#x}\n")).collect();
    let mut child = Command::new("llvm-symbolizer-14")
        .args([
            "--inlining",
            "--functions=linkage",
            "--relativenames",
            "--obj",
        ])
        .arg(twin)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("llvm-symbolizer-14 (apt install llvm-14; scripts/setup.sh does)");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("llvm-symbolizer output");
    writer.join().expect("writer").expect("write pcs");
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    // One block per pc, blocks separated by an empty line; each frame two lines.
    text.split("\n\n")
        .filter(|b| !b.trim().is_empty())
        .map(|block| {
            block
                .lines()
                .collect::<Vec<_>>()
                .chunks(2)
                .map(|c| {
                    let pos = c.get(1).copied().unwrap_or("");
                    // file:line:column -> file:line
                    let pos = pos.rsplit_once(':').map_or(pos, |(fl, _)| fl);
                    (c[0].to_string(), pos.to_string())
                })
                .collect()
        })
        .collect()
}

/// A function name with generic type arguments written as `[...]`, as
/// pclntab and the runtime write them (DWARF names the shape:
/// `[go.shape.*uint8_0]`).
fn shape_free(name: &str) -> String {
    let mut out = String::new();
    let mut depth = 0;
    for c in name.chars() {
        match c {
            '[' => {
                if depth == 0 {
                    out.push_str("[...]");
                }
                depth += 1;
            }
            ']' => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

#[test]
fn inlined_frames_equal_dwarf() {
    let bins: Vec<CorpusBinary> = manifest()
        .into_iter()
        .filter(|b| b.program == "httpserver" && b.variant == "default")
        .collect();
    assert!(!bins.is_empty(), "no httpserver binaries in the corpus");
    for b in &bins {
        let bin = GoBinary::open(&b.path).expect("open");
        let sym = Symbolizer::new(&bin).expect("symbolizer");
        // pcs inside inlined calls: those with more than one frame. Not in
        // compiler-generated wrappers (`<autogenerated>`): the linker writes
        // their inlined calls into DWARF for some and not others (the
        // runtime's own frames are the oracle for those, below).
        let pcs: Vec<u64> = sample_pcs(&bin, 6000)
            .into_iter()
            .filter(|&pc| {
                let frames = sym.frames(pc);
                frames.len() > 1 && frames.last().is_some_and(|f| f.file != "<autogenerated>")
            })
            .take(1500)
            .collect();
        assert!(
            pcs.len() > 100,
            "{}: few inlined pcs ({})",
            b.label(),
            pcs.len()
        );
        let want = llvm_symbolizer(&b.twin, &pcs);
        assert_eq!(
            want.len(),
            pcs.len(),
            "{}: llvm-symbolizer blocks",
            b.label()
        );
        let mut bad = Vec::new();
        for (pc, want) in pcs.iter().zip(&want) {
            let frames = sym.frames(*pc);
            let got: Vec<(String, String)> = frames
                .iter()
                .map(|f| (shape_free(f.function), format!("{}:{}", f.file, f.line)))
                .collect();
            let want: Vec<(String, String)> = want
                .iter()
                .map(|(f, pos)| (shape_free(f), pos.clone()))
                .collect();
            if got != want {
                bad.push(format!("{pc:#x}:\n  goprobe {got:?}\n  dwarf   {want:?}"));
            }
        }
        // DWARF and pclntab are written by different parts of the linker;
        // allow no disagreement at all.
        assert!(
            bad.is_empty(),
            "{}: {} of {} inlined pcs differ from DWARF, e.g.:\n{}",
            b.label(),
            bad.len(),
            pcs.len(),
            bad.iter().take(8).cloned().collect::<Vec<_>>().join("\n")
        );
    }
}

/// The runtime's own frames for `pcs`, from the goruntime fixture's
/// `-frames` mode (`runtime.CallersFrames` in the very binary).
fn runtime_frames(bin: &Path, pcs: &[u64]) -> Vec<Vec<(String, String)>> {
    let input: String = pcs.iter().map(|pc| format!("{pc:x}\n")).collect();
    let mut child = Command::new(bin)
        .arg("-frames")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("goruntime -frames");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let out = child.wait_with_output().expect("output");
    writer.join().expect("writer").expect("write pcs");
    assert!(out.status.success(), "goruntime -frames failed");
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let mut blocks: Vec<Vec<(String, String)>> = vec![Vec::new()];
    for line in text.lines() {
        if line.is_empty() {
            blocks.push(Vec::new());
            continue;
        }
        let (f, pos) = line.split_once('\t').expect("function TAB file:line");
        blocks
            .last_mut()
            .expect("block")
            .push((f.to_string(), pos.to_string()));
    }
    blocks.pop();
    blocks
}

/// The symbolizer against `runtime.CallersFrames` of the binary itself:
/// every logical frame (function, file, line) at pcs spread over all
/// functions, the runtime's wrapper elision applied. Before Go 1.23
/// CallersFrames spells out only the innermost frame of a single pc, so
/// there only that is compared; from Go 1.21 it names functions as
/// tracebacks print them (`[...]` for bracketed parts).
#[test]
fn frames_equal_the_runtimes_own() {
    let bins: Vec<CorpusBinary> = manifest()
        .into_iter()
        .filter(|b| b.program == "goruntime" && b.variant == "default")
        .collect();
    assert!(!bins.is_empty(), "no goruntime binaries in the corpus");
    for b in &bins {
        let bin = GoBinary::open(&b.path).expect("open");
        let sym = Symbolizer::new(&bin).expect("symbolizer");
        let id = |name: &str| {
            let f = bin.function(name).expect("table").expect(name);
            sym.func(f.address).expect("func").func_id()
        };
        let panics = [
            id("runtime.gopanic"),
            id("runtime.sigpanic"),
            id("runtime.panicwrap"),
        ];
        // pcs with a line, whose pc + 1 (what the fixture hands
        // CallersFrames, which looks up pc + 1 - 1) is still in the same
        // function; not in the first function, which Go 1.19's runtime
        // itself does not resolve.
        let first = bin.function_table().expect("table")[0].address;
        let pcs: Vec<u64> = sample_pcs(&bin, 3000)
            .into_iter()
            .filter(|&pc| {
                sym.frame(pc).is_some_and(|f| f.line != 0)
                    && sym
                        .func(pc)
                        .is_some_and(|f| pc + 1 < f.end() && f.entry() != first)
            })
            .collect();
        let want = runtime_frames(&b.path, &pcs);
        assert_eq!(want.len(), pcs.len(), "{}: one block per pc", b.label());
        let minor: u32 = b
            .go_version
            .split('.')
            .nth(1)
            .and_then(|m| m.parse().ok())
            .expect("Go minor");
        let only_innermost = minor < 23;
        let mut bad = Vec::new();
        let mut inlined = 0;
        for (pc, want) in pcs.iter().zip(&want) {
            let frames = sym.frames(*pc);
            inlined += usize::from(frames.len() > 1);
            let mut got = Vec::new();
            let mut callee = None;
            for (i, f) in frames.iter().enumerate() {
                let elided = i > 0
                    && sym.is_wrapper(f.func_id) == Some(true)
                    && !callee.is_some_and(|c| panics.contains(&c));
                callee = Some(f.func_id);
                if !elided {
                    let name = if minor >= 21 {
                        name_for_print(f.function)
                    } else {
                        f.function.to_string()
                    };
                    got.push((name, format!("{}:{}", f.file, f.line)));
                }
            }
            if only_innermost {
                got.truncate(1);
            }
            if &got != want {
                bad.push(format!("{pc:#x}:\n  goprobe {got:?}\n  runtime {want:?}"));
            }
        }
        assert!(
            inlined > 100,
            "{}: only {inlined} pcs in inlined calls",
            b.label()
        );
        assert!(
            bad.is_empty(),
            "{}: {} of {} pcs differ from runtime.CallersFrames, e.g.:\n{}",
            b.label(),
            bad.len(),
            pcs.len(),
            bad.iter().take(8).cloned().collect::<Vec<_>>().join("\n")
        );
    }
}
