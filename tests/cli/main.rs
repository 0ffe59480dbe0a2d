//! Command-line tests: run the built `goprobe` binary as a user would and
//! check stdout, stderr and the exit status. One module per subcommand.
//!
//! Tests of `attach` and `record` attach real eBPF uprobes and need root;
//! they fail (not skip) without it.

#[path = "../common/mod.rs"]
mod common;

mod attach;
mod collector;
mod context;
mod convert;
mod db;
mod dbonly;
mod html;
mod inspect;
mod lineage;
mod metrics;
mod metrics_live;
mod nobuildinfo;
mod offsets;
mod patches;
mod record;
mod summary;
mod synth;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A running `goprobe` with its stdout collected in the background.
pub struct Running {
    pub child: Child,
    stdout: mpsc::Receiver<String>,
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
}

/// Start `goprobe ARGS` (or `sh -c` a pipeline when `shell` is set) and wait
/// until it reports its uprobes are attached.
pub fn start(args: &[&str]) -> Running {
    common::require_root();
    let mut child = Command::new(env!("CARGO_BIN_EXE_goprobe"))
        .args(args)
        .env("GOPROBE_CACHE", common::cache_dir())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn goprobe");
    let mut out = child.stdout.take().expect("stdout");
    let (tx, stdout) = mpsc::channel();
    std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        let _ = tx.send(s);
    });
    let err = child.stderr.take().expect("stderr");
    let stderr = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let (ready_tx, ready) = mpsc::channel();
    let sink = std::sync::Arc::clone(&stderr);
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            if line.contains("attached") {
                let _ = ready_tx.send(());
            }
            let mut s = sink.lock().expect("lock");
            s.push_str(&line);
            s.push('\n');
        }
    });
    if ready.recv_timeout(Duration::from_secs(60)).is_err() {
        let _ = child.kill();
        panic!("goprobe did not attach: {}", stderr.lock().expect("lock"));
    }
    Running {
        child,
        stdout,
        stderr,
    }
}

impl Running {
    /// Send SIGINT (what Ctrl-C sends).
    pub fn interrupt(&self) {
        // SAFETY: kill with a valid pid and signal has no memory effects.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGINT) };
    }

    /// Wait for exit; returns (exit code, stdout, stderr).
    pub fn finish(mut self) -> (i32, String, String) {
        let status = self.child.wait().expect("wait");
        let out = self
            .stdout
            .recv_timeout(Duration::from_secs(30))
            .expect("stdout");
        std::thread::sleep(Duration::from_millis(50));
        let err = self.stderr.lock().expect("lock").clone();
        (status.code().unwrap_or(-1), out, err)
    }
}

/// Span NDJSON (`goprobe record` output), each line checked against the schema.
pub fn spans(out: &str) -> Vec<goprobe::span::Span> {
    out.lines()
        .map(|l| {
            goprobe::span::Span::from_json_line(l).unwrap_or_else(|e| panic!("bad span {l}: {e}"))
        })
        .collect()
}

/// Parse NDJSON into JSON values, failing on any bad line.
pub fn ndjson(text: &str) -> Vec<serde_json::Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad NDJSON line {l:?}: {e}")))
        .collect()
}
