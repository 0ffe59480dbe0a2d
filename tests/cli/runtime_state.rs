//! `goprobe heap` and `goprobe goroutines` on bad input: a dead pid, a
//! process that is not Go, a process goprobe may not read (as a user other
//! than root), a binary whose runtime layout cannot be confirmed, a binary
//! that is not the one the process runs. Each gives exactly one `goprobe:`
//! line and exit status 2. A patch release the offsets table was not
//! generated from: the fields the table answers are named in a note. And a
//! Go program without memory profiling: an empty profile, exit 0, and a note
//! saying why.

use std::os::unix::process::CommandExt;
use std::process::{Command, Output, Stdio};

use crate::common::goruntime::GoRuntime;
use crate::common::{corpus_binary, require_root};

fn goprobe(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_goprobe"))
        .args(args)
        .output()
        .expect("running goprobe")
}

/// Exit 2 and exactly one stderr line, `goprobe: ...` containing every needle.
fn one_line_error(out: &Output, needles: &[&str]) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "panic: {err}");
    assert_eq!(out.status.code(), Some(2), "exit status; stderr: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "stderr lines: {lines:?}");
    assert!(lines[0].starts_with("goprobe: "), "{}", lines[0]);
    for n in needles {
        assert!(lines[0].contains(n), "{:?} should mention {n:?}", lines[0]);
    }
    assert!(out.stdout.is_empty(), "no data on stdout after an error");
}

fn both(args: &[&str], needles: &[&str]) {
    for cmd in ["heap", "goroutines"] {
        let mut a = vec![cmd];
        a.extend_from_slice(args);
        a.extend_from_slice(&["-o", "/dev/null"]);
        one_line_error(&goprobe(&a), needles);
    }
}

#[test]
fn dead_pid() {
    let mut child = Command::new("true").spawn().expect("true");
    let pid = child.id();
    child.wait().expect("wait");
    let p = pid.to_string();
    both(&["--pid", &p], &[&format!("no process with pid {pid}")]);
}

#[test]
fn not_a_go_process() {
    require_root();
    let mut child = Command::new("sleep").arg("60").spawn().expect("sleep");
    let p = child.id().to_string();
    both(&["--pid", &p], &["not a Go binary"]);
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn a_process_goprobe_may_not_read() {
    require_root();
    let e = corpus_binary("1.26", "goruntime", "default");
    let fx = GoRuntime::start(&e.binary, &[]);
    let p = fx.pid().to_string();
    for cmd in ["heap", "goroutines"] {
        // As nobody: another user's process.
        let out = Command::new(env!("CARGO_BIN_EXE_goprobe"))
            .args([cmd, "--pid", &p, "-o", "/dev/null"])
            .uid(65534)
            .gid(65534)
            .stdin(Stdio::null())
            .output()
            .expect("goprobe as nobody");
        one_line_error(
            &out,
            &[
                &format!("not allowed to read the memory of process {p}"),
                "run as root",
            ],
        );
    }
    // And --freeze, too, without ptrace rights.
    let out = Command::new(env!("CARGO_BIN_EXE_goprobe"))
        .args(["goroutines", "--pid", &p, "--freeze", "-o", "/dev/null"])
        .uid(65534)
        .gid(65534)
        .output()
        .expect("goprobe as nobody");
    one_line_error(&out, &["not allowed"]);
}

/// A copy of `e`'s binary whose build info claims Go `to` (a release of the
/// same length as the real one): what goprobe sees of a release it has not
/// seen. The code is unchanged, so it runs as before.
fn with_go_version(e: &crate::common::CorpusEntry, to: &str) -> std::path::PathBuf {
    let mut bytes = std::fs::read(&e.binary).expect("read fixture");
    let want = format!("go{}", e.go_version).into_bytes();
    assert_eq!(want.len(), to.len() + 2, "same length: {to}");
    let magic = b"\xff Go buildinf:";
    let info = bytes
        .windows(magic.len())
        .position(|w| w == magic)
        .expect("build info");
    let at = info
        + bytes[info..]
            .windows(want.len())
            .position(|w| w == want.as_slice())
            .expect("Go version in build info");
    bytes[at + 2..at + want.len()].copy_from_slice(to.as_bytes());
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-runtime-state");
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join(format!("goruntime-go{to}"));
    std::fs::write(&path, &bytes).expect("write");
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    path
}

/// A stripped fixture whose build info claims a Go release no table knows
/// (go1.26.6 -> go1.99.6, same length): nothing confirms its runtime layout.
#[test]
fn a_runtime_layout_that_cannot_be_confirmed() {
    require_root();
    let e = corpus_binary("1.26", "goruntime", "stripped");
    let path = with_go_version(&e, &format!("1.99{}", &e.go_version[4..]));
    let fx = GoRuntime::start(&path, &[]);
    let p = fx.pid().to_string();
    one_line_error(
        &goprobe(&["heap", "--pid", &p, "-o", "/dev/null"]),
        &[
            "runtime layout of this binary cannot be confirmed",
            "runtime.bucket.nstk",
            "runtime.memRecord.active.allocs",
            "go1.99/amd64 not in the offsets table",
        ],
    );
}

/// A stripped fixture claiming a patch release of its minor the table was
/// not generated from (go1.22.10 -> go1.22.19): `runtime.g` comes from the
/// binary's own type descriptors, `runtime.bucket` (which has none) from the
/// table's layouts for the minor, and goprobe says which and why.
#[test]
fn runtime_fields_from_another_patch_release_are_named() {
    require_root();
    let e = corpus_binary("1.22", "goruntime", "stripped");
    let minor_patch = |d: &str| format!("{}{d}", &e.go_version[..e.go_version.len() - 1]);
    let path = with_go_version(&e, &minor_patch("9"));
    let fx = GoRuntime::start(&path, &[]);
    let p = fx.pid().to_string();
    let out = goprobe(&["heap", "--pid", &p, "-o", "/dev/null"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let note = err
        .lines()
        .find(|l| l.contains("offsets table, verified on"))
        .unwrap_or_else(|| panic!("no note on the table's answers: {err}"));
    assert!(
        note.contains("runtime field(s) from the go1.22 offsets table")
            && note.contains(&format!("go{}", e.go_version))
            && note.ends_with(&format!("not on go{} itself", minor_patch("9"))),
        "{note}"
    );
    let out = goprobe(&["goroutines", "--pid", &p]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("verified on"), "{err}");
    let header = &crate::ndjson(&String::from_utf8_lossy(&out.stdout))[0];
    let layout = header["layout"].as_object().expect("layout");
    assert!(layout.len() >= 15, "{layout:?}");
    assert!(layout.values().all(|v| v == "rtype"), "{layout:?}");
    // The real release: every field the table gives was generated from it.
    let fx = GoRuntime::start(&e.binary, &[]);
    let p = fx.pid().to_string();
    let out = goprobe(&["heap", "--pid", &p, "-o", "/dev/null"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(!err.contains("verified on"), "{err}");
}

#[test]
fn a_binary_that_is_not_the_process() {
    require_root();
    let e = corpus_binary("1.26", "goruntime", "default");
    let other = corpus_binary("1.26", "hello", "default");
    let fx = GoRuntime::start(&e.binary, &[]);
    let p = fx.pid().to_string();
    let o = other.binary.to_str().expect("path").to_string();
    both(&["--pid", &p, &o], &["is not the program process", &p]);
}

/// A program that never calls runtime.MemProfile: the linker turned memory
/// profiling off, so the profile is empty; goprobe says why, exit 0.
#[test]
fn a_program_without_memory_profiling() {
    require_root();
    let e = corpus_binary("1.26", "httpserver", "stripped");
    let server = crate::common::Server::start(&e.binary);
    let p = server.pid().to_string();
    let out = goprobe(&["heap", "--pid", &p, "--json"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("MemProfileRate is 0"), "{err}");
    let lines = crate::ndjson(&String::from_utf8_lossy(&out.stdout));
    assert_eq!(lines[0]["memprofilerate"], 0);
    // At most what the runtime sampled while it started, before schedinit
    // turned profiling off: stacks of runtime frames only.
    for l in &lines[1..] {
        let frames = l["stack"].as_array().expect("stack");
        assert!(
            frames.iter().all(|f| f["function"]
                .as_str()
                .is_some_and(|n| n.starts_with("runtime."))),
            "a sample outside the runtime's start: {l}"
        );
    }
    assert!(lines.len() <= 4, "{lines:?}");
}

/// A binary profile is not written to a terminal; -o and pipes are fine.
#[test]
fn pprof_goes_to_files_and_pipes() {
    require_root();
    let e = corpus_binary("1.22", "goruntime", "pie-stripped");
    let fx = GoRuntime::start(&e.binary, &[]);
    let p = fx.pid().to_string();
    let out = goprobe(&["goroutines", "--pid", &p, "--to", "pprof"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(&out.stdout[..2], &[0x1f, 0x8b], "gzip on stdout");
    let text = goprobe(&["goroutines", "--pid", &p, "--to", "text"]);
    let t = String::from_utf8_lossy(&text.stdout);
    assert!(t.starts_with("goroutine 1 ["), "{t}");
    assert!(t.contains("created by main.main"), "{t}");
}
