//! No module cycles: fails when a module under `src/` uses one that uses it
//! back, directly or around a longer loop.
//!
//! Every `crate::…`, `super::…` and `self::…` path in each file (in `use`
//! trees and inline, test code included) is resolved to the module file it
//! names. Two graphs are checked:
//! * top-level modules (`attach`, `record`, `probes`, …): an edge A → B when
//!   a file of A names something in B;
//! * the files of one directory: an edge between two files (or
//!   subdirectories) it declares when one names something in the other. The
//!   directory's own `mod.rs` is its face, not one of its files: it declares
//!   and re-exports them, and they may use what it defines.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A module path from the crate root: `["probes", "http_server"]`.
type ModPath = Vec<String>;

#[test]
fn src_has_no_module_cycles() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    collect(&root, &root, &mut files);
    assert!(
        files.len() > 20,
        "found only {} files under src/",
        files.len()
    );
    let cycles = cycles(&files);
    assert!(
        cycles.is_empty(),
        "module cycles (each: a -> b -> ... -> a):\n{}",
        cycles.join("\n")
    );
}

/// The checker itself finds cycles, also through `super::` and `use` groups,
/// and not where there are none.
#[test]
fn the_checker_finds_cycles() {
    let f = |path: &str, src: &str| -> (ModPath, String) {
        (
            path.split('/')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            src.to_owned(),
        )
    };
    let clean = vec![
        f(
            "a",
            "use crate::b::X; // crate::c::Y in a comment\nfn f() { let s = \"crate::c\"; }",
        ),
        f("b", "pub struct X;"),
        f("c", "use crate::{a::f, b::X};"),
    ];
    assert!(cycles(&clean).is_empty(), "{:?}", cycles(&clean));
    let top = vec![
        f("a", "use crate::b::X;"),
        f("b", "pub fn g() { crate::c::h() }"),
        f("c", "use crate::{self as k, a::{self, f}};"),
    ];
    let found = cycles(&top);
    assert!(
        found.iter().any(|c| c.contains("a -> b -> c -> a")),
        "{found:?}"
    );
    let siblings = vec![
        f("d", "mod x; mod y; pub struct Face;"),
        f("d/x", "use super::Face; use super::y::Y; pub struct X;"),
        f("d/y", "pub struct Y; fn g() -> super::x::X { todo_free() }"),
        f("d/z", "use super::Face;"),
    ];
    let found = cycles(&siblings);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("d/x -> d/y -> d/x"), "{found:?}");
    // A test module's `use super::*` is its own file.
    let tests = vec![f(
        "e",
        "pub fn e() {}\n#[cfg(test)]\nmod tests {\n use super::*;\n}",
    )];
    assert!(cycles(&tests).is_empty());
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<(ModPath, String)>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read src/")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for p in entries {
        let rel = p.strip_prefix(root).expect("under src");
        if rel.starts_with("bin") {
            continue; // the binary is another crate: `goprobe::`, not `crate::`
        }
        if p.is_dir() {
            collect(root, &p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            let mut m: ModPath = rel
                .with_extension("")
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if m.last().is_some_and(|l| l == "mod" || l == "lib") {
                m.pop();
            }
            out.push((m, std::fs::read_to_string(&p).expect("read")));
        }
    }
}

/// Every cycle found, as `a -> b -> a` lines.
fn cycles(files: &[(ModPath, String)]) -> Vec<String> {
    let modules: BTreeSet<ModPath> = files.iter().map(|(m, _)| m.clone()).collect();
    // file -> modules it names (resolved to the deepest module file).
    let mut uses: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
    for (m, src) in files {
        let set = uses.entry(m.clone()).or_default();
        for path in paths(m, &strip(src)) {
            let target = (0..=path.len())
                .rev()
                .map(|n| path[..n].to_vec())
                .find(|p| modules.contains(p));
            if let Some(t) = target
                && t != *m
            {
                set.insert(t);
            }
        }
    }
    let mut out = Vec::new();
    // Top-level modules.
    let mut top: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (from, targets) in &uses {
        let Some(a) = from.first() else { continue };
        for t in targets {
            if let Some(b) = t.first()
                && a != b
            {
                top.entry(a.clone()).or_default().insert(b.clone());
            }
        }
    }
    out.extend(find_cycles(&top));
    // Files of one directory: the node of a file is its own path, of a
    // subdirectory's file that subdirectory's module.
    let dirs: BTreeSet<ModPath> = modules
        .iter()
        .filter(|m| !m.is_empty())
        .map(|m| m[..m.len() - 1].to_vec())
        .collect();
    for dir in dirs {
        let child = |m: &ModPath| -> Option<String> {
            (m.len() > dir.len() && m[..dir.len()] == dir[..]).then(|| m[..=dir.len()].join("/"))
        };
        let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, targets) in &uses {
            let Some(a) = child(from) else { continue };
            for t in targets {
                if let Some(b) = child(t)
                    && a != b
                {
                    g.entry(a.clone()).or_default().insert(b);
                }
            }
        }
        out.extend(find_cycles(&g));
    }
    out.sort();
    out.dedup();
    out
}

/// One cycle per strongly connected loop found by depth-first search.
fn find_cycles(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
        out: &mut Vec<String>,
    ) {
        if let Some(i) = stack.iter().position(|s| s == n) {
            let mut c = stack[i..].to_vec();
            c.push(n.to_owned());
            out.push(c.join(" -> "));
            return;
        }
        if done.contains(n) {
            return;
        }
        stack.push(n.to_owned());
        for m in g.get(n).into_iter().flatten() {
            visit(m, g, stack, done, out);
        }
        stack.pop();
        done.insert(n.to_owned());
    }
    let mut out = Vec::new();
    let mut done = BTreeSet::new();
    for n in g.keys() {
        visit(n, g, &mut Vec::new(), &mut done, &mut out);
    }
    out
}

/// The source without comments, string and char literals.
fn strip(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let mut depth = 0;
                while i < b.len() {
                    if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                        depth += 1;
                        i += 2;
                    } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        i += 1;
                    }
                }
            }
            b'r' if matches!(b.get(i + 1), Some(b'"' | b'#'))
                && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_')) =>
            {
                let mut j = i + 1;
                let mut hashes = 0;
                while b.get(j) == Some(&b'#') {
                    hashes += 1;
                    j += 1;
                }
                if b.get(j) != Some(&b'"') {
                    out.push('r');
                    i += 1;
                    continue;
                }
                j += 1;
                let close: Vec<u8> = std::iter::once(b'"')
                    .chain(std::iter::repeat_n(b'#', hashes))
                    .collect();
                while j < b.len() && !b[j..].starts_with(&close) {
                    j += 1;
                }
                i = j + close.len();
                out.push_str("\"\"");
            }
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                out.push_str("\"\"");
            }
            // Char literals that would open a string: '"' and '\"'.
            b'\'' if b.get(i + 1) == Some(&b'"') && b.get(i + 2) == Some(&b'\'') => i += 3,
            b'\'' if b.get(i + 1) == Some(&b'\\') && b.get(i + 3) == Some(&b'\'') => i += 4,
            c => {
                out.push(c as char);
                i += 1;
            }
        }
    }
    out
}

/// Every absolute module path named in `src` (already stripped), a file of
/// module `file`. Inline `mod name { … }` blocks are followed so that
/// `super::` inside them resolves right.
fn paths(file: &ModPath, src: &str) -> Vec<ModPath> {
    let toks = tokens(src);
    let mut out = Vec::new();
    // Inline modules: (name, brace depth inside it).
    let mut inline: Vec<(String, usize)> = Vec::new();
    let mut depth = 0usize;
    let mut i = 0;
    while i < toks.len() {
        let t = toks[i].as_str();
        match t {
            "{" => depth += 1,
            "}" => {
                depth = depth.saturating_sub(1);
                if inline.last().is_some_and(|(_, d)| *d > depth) {
                    inline.pop();
                }
            }
            "mod" if toks.get(i + 2).is_some_and(|t| t == "{") => {
                inline.push((toks[i + 1].clone(), depth + 1));
            }
            "crate" | "super" | "self" if toks.get(i + 1).is_some_and(|t| t == "::") => {
                // Not the tail of a longer path (`foo::self::`).
                let prev_sep = i > 0 && toks[i - 1] == "::";
                if !prev_sep {
                    let mut here = file.clone();
                    here.extend(inline.iter().map(|(n, _)| n.clone()));
                    let mut base = here.clone();
                    let mut j = i;
                    loop {
                        match toks.get(j).map(String::as_str) {
                            Some("crate") => base.clear(),
                            Some("super") => {
                                base.pop();
                            }
                            Some("self") => {}
                            _ => break,
                        }
                        if toks.get(j + 1).is_some_and(|t| t == "::") {
                            j += 2;
                        } else {
                            break;
                        }
                    }
                    let (trees, next) = use_tree(&toks, j);
                    for t in trees {
                        let mut p = base.clone();
                        p.extend(t);
                        out.push(p);
                    }
                    i = next.max(i + 1);
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    out
}

/// Parse a use tree starting at `toks[i]` (after the leading `crate::` …):
/// the paths it names, relative, and the index after it.
fn use_tree(toks: &[String], mut i: usize) -> (Vec<ModPath>, usize) {
    let mut prefix = Vec::new();
    loop {
        match toks.get(i).map(String::as_str) {
            Some("{") => {
                let mut out = Vec::new();
                i += 1;
                loop {
                    match toks.get(i).map(String::as_str) {
                        Some("}") => return (out, i + 1),
                        Some(",") => i += 1,
                        None => return (out, i),
                        _ => {
                            let (sub, next) = use_tree(toks, i);
                            for s in sub {
                                let mut p = prefix.clone();
                                p.extend(s);
                                out.push(p);
                            }
                            // Skip `as name`.
                            i = next;
                            if toks.get(i).is_some_and(|t| t == "as") {
                                i += 2;
                            }
                        }
                    }
                }
            }
            Some("self") if !prefix.is_empty() => return (vec![prefix], i + 1),
            Some(t)
                if t.chars()
                    .next()
                    .is_some_and(|c| c.is_alphabetic() || c == '_') =>
            {
                if t != "self" {
                    prefix.push(t.to_owned());
                }
                i += 1;
                if toks.get(i).is_some_and(|t| t == "::") {
                    i += 1;
                    continue;
                }
                return (vec![prefix], i);
            }
            Some("*") => return (vec![prefix], i + 1),
            _ => return (vec![prefix], i),
        }
    }
}

/// Identifiers, `::`, and single punctuation characters.
fn tokens(src: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = src.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c.is_alphanumeric() || c == '_' {
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = chars.peek() {
                if d.is_alphanumeric() || d == '_' {
                    end = j + d.len_utf8();
                    chars.next();
                } else {
                    break;
                }
            }
            out.push(src[i..end].to_owned());
        } else if c == ':' && chars.peek().is_some_and(|&(_, d)| d == ':') {
            chars.next();
            out.push("::".to_owned());
        } else if !c.is_whitespace() {
            out.push(c.to_string());
        }
    }
    out
}
