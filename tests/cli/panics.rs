//! `exception.stacktrace` against the Go runtime's own tracebacks, on the
//! cpuwork fixture's panics at a known depth.

// The test reports what it compared.
#![allow(clippy::print_stderr)]

use std::process::Command;

use crate::common;
use crate::cpu::{records, tmp};
use crate::start;

/// Frames of a Go traceback as (function without arguments, position line
/// without the tab), from its first `goroutine N [running]:` line on, up
/// to a blank line or the end.
fn traceback_frames(text: &str) -> Vec<(String, String)> {
    let mut lines = text
        .lines()
        .skip_while(|l| !(l.starts_with("goroutine ") && l.ends_with("[running]:")))
        .skip(1)
        .take_while(|l| !l.trim().is_empty() && !l.starts_with("---"))
        .peekable();
    let mut out = Vec::new();
    // Each frame is a line and a tab-indented position; anything else (the
    // next log line, another panic's output) ends the traceback.
    while let Some(f) = lines.next_if(|l| !l.starts_with('\t')) {
        let Some(pos) = lines.next_if(|l| l.starts_with('\t')) else {
            break;
        };
        out.push((strip_args(f), pos.trim_start_matches('\t').to_owned()));
    }
    out
}

/// `main.f(0x1, {0x2?})` -> `main.f`; `created by X in goroutine 1` as is.
fn strip_args(frame: &str) -> String {
    if frame.starts_with("created by ") || !frame.ends_with(')') {
        return frame.to_owned();
    }
    let mut depth = 0;
    for (i, c) in frame.char_indices().rev() {
        match c {
            ')' => depth += 1,
            '(' => {
                depth -= 1;
                if depth == 0 {
                    return frame[..i].to_owned();
                }
            }
            _ => {}
        }
    }
    frame.to_owned()
}

/// The frames after the `panic(...)` frame of a traceback printed from a
/// deferred call (debug.Stack in a recover, net/http's log): the panicking
/// goroutine's frames at the panic.
fn after_panic_frame(frames: &[(String, String)]) -> Vec<(String, String)> {
    let i = frames
        .iter()
        .position(|(f, _)| f == "panic")
        .unwrap_or_else(|| panic!("no panic( frame in {frames:?}"));
    frames[i + 1..].to_vec()
}

/// `exception.stacktrace` of panics recovered by the handler, recovered by
/// net/http, and one nobody recovers (which kills the process) is, frame
/// for frame (function, file:line, +0x offset), what the Go runtime prints
/// for the same panic.
#[test]
fn panic_stacks_are_what_the_runtime_prints() {
    for go in ["1.19", "1.23", "1.26"] {
        let entry = common::corpus_binary(go, "cpuwork", "pie-stripped");
        let errfile = tmp(&format!("panic-{go}.stderr"));
        let mut child = Command::new(&entry.binary)
            .env("GODEBUG", "httpmuxgo121=0")
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&errfile).expect("stderr file"))
            .spawn()
            .expect("start cpuwork");
        let mut addr = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
            &mut addr,
        )
        .expect("address");
        let addr = addr.trim().to_owned();
        let pid = child.id().to_string();
        let run = start(&["record", "--pid", &pid, "--probes", "http.server,go.panic"]);
        assert_eq!(common::get(&addr, "/panic/handler?depth=3"), 200);
        assert_eq!(common::get(&addr, "/panic/nethttp?depth=4"), 0);
        // The process dies; the recording ends with it.
        let _ = common::get(&addr, "/panic/crash?depth=2");
        let status = child.wait().expect("wait");
        assert!(!status.success());
        let (code, out, err) = run.finish();
        assert_eq!(code, 0, "{err}");
        let stderr = std::fs::read_to_string(&errfile).expect("stderr");
        let _ = std::fs::remove_file(&errfile);
        let (spans, _) = records(&out);
        let exceptions: Vec<(String, String)> = spans
            .iter()
            .flat_map(|s| &s.events)
            .filter(|e| e.name == "exception")
            .map(|e| {
                let msg = match e.attributes.get("exception.message") {
                    Some(goprobe::span::AttrValue::String(m)) => m.clone(),
                    _ => String::new(),
                };
                let st = match e.attributes.get("exception.stacktrace") {
                    Some(goprobe::span::AttrValue::String(s)) => s.clone(),
                    other => panic!("no exception.stacktrace: {other:?}"),
                };
                (msg, st)
            })
            .collect();
        let ours = |how: &str| {
            let (_, st) = exceptions
                .iter()
                .find(|(m, _)| m == &format!("{how} panic at the bottom"))
                .unwrap_or_else(|| panic!("no {how} exception in {exceptions:?}"));
            traceback_frames(st)
        };
        // Recovered by the handler: its debug.Stack, between the markers.
        let handler = stderr
            .split("--- stack\n")
            .nth(1)
            .and_then(|t| t.split("--- end").next())
            .unwrap_or_else(|| panic!("no handler stack in {stderr}"));
        // Recovered by net/http: the stack its log line carries.
        let nethttp = stderr
            .split("http: panic serving")
            .nth(1)
            .unwrap_or_else(|| panic!("no net/http log in {stderr}"));
        // Nobody recovers: the runtime's crash output.
        let crash = stderr
            .split("panic: crash panic at the bottom")
            .nth(1)
            .unwrap_or_else(|| panic!("no crash output in {stderr}"));
        let label = format!("go{}", entry.go_version);
        for (how, want) in [
            ("handler", after_panic_frame(&traceback_frames(handler))),
            ("nethttp", after_panic_frame(&traceback_frames(nethttp))),
            ("crash", traceback_frames(crash)),
        ] {
            let got = ours(how);
            assert!(got.len() >= 4, "{label} {how}: {got:?}");
            // The recovered ones printed from a deferred call end the same
            // way; the created-by line is there in all three.
            assert_eq!(got, want, "{label} {how}:\n{stderr}");
            eprintln!(
                "{label} {how}: {} frames as the runtime prints them",
                got.len()
            );
        }
    }
}
