//! `goprobe inspect`: success paths and every kind of bad input. Each failure
//! must give exactly one `goprobe: ...` line on stderr, exit status 2, and
//! never a panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::common::{CorpusBinary, manifest};

fn goprobe(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_goprobe"))
        .args(args)
        .output()
        .expect("running goprobe")
}

fn stderr_lines(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(str::to_string)
        .collect()
}

/// Exit 2, exactly `n` stderr lines each starting `goprobe: ` and
/// containing the matching needle, no panic.
fn assert_failures(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "panic: {err}");
    assert_eq!(out.status.code(), Some(2), "exit status; stderr: {err}");
    let lines = stderr_lines(out);
    assert_eq!(lines.len(), needles.len(), "stderr lines: {lines:?}");
    for (line, needle) in lines.iter().zip(needles) {
        assert!(line.starts_with("goprobe: "), "{line:?}");
        assert!(line.contains(needle), "{line:?} should mention {needle:?}");
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-inspect");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// A small amd64 corpus binary (hello, default variant) and an httpserver.
fn corpus(program: &str, variant: &str) -> CorpusBinary {
    let all = manifest();
    all.iter()
        .rev()
        .find(|b| b.program == program && b.variant == variant)
        .cloned()
        .unwrap_or_else(|| panic!("corpus has no {program} {variant} binary: rebuild it"))
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn summary_json_and_functions() {
    let hello = corpus("hello", "stripped");
    let p = path_str(&hello.path);

    let out = goprobe(&["inspect", p]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("go version    go1."), "{text}");
    assert!(
        text.contains("example.com/greet v1.2.0 => example.com/greet v1.3.0"),
        "{text}"
    );
    assert!(text.contains("stripped      yes"), "{text}");
    assert!(out.stderr.is_empty());

    let out = goprobe(&["inspect", "--json", p]);
    assert_eq!(out.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for key in [
        "path",
        "go_version",
        "main",
        "deps",
        "settings",
        "arch",
        "pie",
        "stripped",
        "dwarf",
        "pclntab_version",
    ] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    assert!(v.get("pid").is_none());
    assert_eq!(v["main"]["path"], "example.com/hello");

    let out = goprobe(&["inspect", "--functions", "--match", "main.", "--json", p]);
    assert_eq!(out.status.code(), Some(0));
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(
        lines.iter().any(|f| f["name"] == "main.main"),
        "no main.main"
    );
    assert!(
        lines
            .iter()
            .all(|f| f["name"].as_str().unwrap().contains("main."))
    );
    assert!(
        lines
            .iter()
            .all(|f| f["address"].as_u64().is_some() && f["offset"].is_u64() && f["size"].is_u64())
    );

    let out = goprobe(&["inspect", "--functions", "--match", "main.main", p]);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text
        .lines()
        .find(|l| l.ends_with("\tmain.main"))
        .expect("main.main line");
    let cols: Vec<&str> = line.split('\t').collect();
    assert_eq!(cols.len(), 4, "{line}");
    assert!(
        cols[0].starts_with("0x") && cols[1].starts_with("0x"),
        "{line}"
    );
}

#[test]
fn match_requires_functions() {
    let out = goprobe(&["inspect", "--match", "x", "/bin/true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(!String::from_utf8_lossy(&out.stderr).contains("panicked"));
}

#[test]
fn missing_file() {
    assert_failures(
        &goprobe(&["inspect", "/nonexistent/goprobe-test"]),
        &["No such file"],
    );
}

#[test]
fn directory() {
    assert_failures(
        &goprobe(&["inspect", env!("CARGO_MANIFEST_DIR")]),
        &["directory"],
    );
}

#[test]
fn empty_file() {
    let p = scratch("empty");
    std::fs::write(&p, b"").unwrap();
    assert_failures(&goprobe(&["inspect", path_str(&p)]), &["not an ELF file"]);
}

#[test]
fn text_file() {
    let p = scratch("text");
    std::fs::write(&p, b"#!/bin/sh\necho not a Go binary\n").unwrap();
    assert_failures(
        &goprobe(&["inspect", "--json", path_str(&p)]),
        &["not an ELF file"],
    );
}

#[test]
fn non_go_elf() {
    assert_failures(&goprobe(&["inspect", "/bin/true"]), &["not a Go binary"]);
    assert_failures(
        &goprobe(&["inspect", "--functions", "/bin/true"]),
        &["not a Go binary"],
    );
}

#[test]
fn truncated_go_binary() {
    let hello = corpus("hello", "default");
    let data = std::fs::read(&hello.path).unwrap();
    // Inside the ELF header, the program headers, text, pclntab, data and
    // near the end (the section contents and headers refer to all of it).
    for cut in [
        10,
        100,
        4096,
        data.len() / 4,
        data.len() / 2,
        data.len() * 3 / 4,
        data.len() - 100,
    ] {
        let p = scratch(&format!("truncated-{cut}"));
        std::fs::write(&p, &data[..cut]).unwrap();
        for args in [
            &["inspect"][..],
            &["inspect", "--json"],
            &["inspect", "--functions"],
        ] {
            let mut a = args.to_vec();
            a.push(path_str(&p));
            let out = goprobe(&a);
            assert_failures(&out, &[path_str(&p)]);
            let line = &stderr_lines(&out)[0];
            assert!(
                line.contains("not an ELF file") || line.contains("truncated"),
                "cut {cut}: {line}"
            );
        }
    }
}

#[test]
fn dead_pid() {
    let mut child = Command::new("true").spawn().unwrap();
    let pid = child.id();
    child.wait().unwrap();
    let out = goprobe(&["inspect", "--pid", &pid.to_string()]);
    assert_failures(&out, &[&format!("no process with pid {pid}")]);
}

/// Kills the fixture process even when an assertion fails.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn live_pid() {
    let server = corpus("httpserver", "default");
    let child = Command::new(&server.path)
        .args(["-addr", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("starting httpserver");
    let running = Running(child);
    let pid = running.0.id();
    // /proc/N/exe points at the binary as soon as exec has happened.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while std::fs::read_link(format!("/proc/{pid}/exe"))
        .ok()
        .as_deref()
        != Some(server.path.as_path())
    {
        assert!(
            std::time::Instant::now() < deadline,
            "httpserver did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = goprobe(&["inspect", "--json", "--pid", &pid.to_string()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["pid"], pid);
    assert_eq!(v["path"], path_str(&server.path));
    assert_eq!(v["main"]["path"], "example.com/httpserver");
    let text = goprobe(&["inspect", "--pid", &pid.to_string()]);
    assert_eq!(text.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&text.stdout).contains(&format!("(pid {pid})")));
    drop(running);
}

#[test]
fn several_inputs_one_bad() {
    let hello = corpus("hello", "default");
    let server = corpus("httpserver", "stripped");
    let (a, b) = (path_str(&hello.path), path_str(&server.path));
    let out = goprobe(&[
        "inspect",
        "--json",
        a,
        "/nonexistent/goprobe-test",
        "/bin/true",
        b,
    ]);
    assert_failures(
        &out,
        &["/nonexistent/goprobe-test", "/bin/true: not a Go binary"],
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let paths: Vec<String> = stdout
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["path"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(paths, vec![a.to_string(), b.to_string()]);

    // Functions of several binaries carry the path on each line.
    let out = goprobe(&[
        "inspect",
        "--functions",
        "--json",
        "--match",
        "main.main",
        a,
        "/bin/true",
        b,
    ]);
    assert_failures(&out, &["/bin/true"]);
    let lines: Vec<serde_json::Value> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|f| f["name"] == "main.main")
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0]["path"], a);
    assert_eq!(lines[1]["path"], b);
}

#[test]
fn all_good_inputs_exit_zero() {
    let hello = corpus("hello", "pie");
    let server = corpus("httpserver", "arm64-stripped");
    let out = goprobe(&["inspect", path_str(&hello.path), path_str(&server.path)]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stderr.is_empty());
}
