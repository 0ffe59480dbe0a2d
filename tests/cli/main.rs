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
mod conventions;
mod convert;
mod cpu;
mod db;
mod dbonly;
mod faults;
mod files;
mod grpc;
mod html;
mod inspect;
mod lineage;
mod metrics;
mod metrics_live;
mod nobuildinfo;
mod offsets;
mod panics;
mod patches;
mod phases;
mod privileges;
mod realprograms;
mod record;
mod runtime_state;
mod summary;
mod synth;
mod timing;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A running `goprobe` with its stdout collected in the background.
pub struct Running {
    pub child: Child,
    stdout: mpsc::Receiver<String>,
    pub stderr: std::sync::Arc<std::sync::Mutex<String>>,
    /// The stderr reader, done when goprobe closed stderr (exited).
    stderr_done: Option<std::thread::JoinHandle<()>>,
    /// When the line saying the uprobes are attached came.
    pub attached_at: Instant,
    /// When `record`'s summary line (the recording is complete) came.
    pub summary_at: std::sync::Arc<std::sync::Mutex<Option<Instant>>>,
}

/// Start `goprobe ARGS` (or `sh -c` a pipeline when `shell` is set) and wait
/// until it reports its uprobes are attached.
pub fn start(args: &[&str]) -> Running {
    common::require_root();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_goprobe"));
    cmd.args(args);
    start_command(cmd)
}

/// Start `cmd` (a goprobe, perhaps run through another program) and wait
/// until it reports its uprobes are attached.
pub fn start_command(mut cmd: Command) -> Running {
    let mut child = cmd
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
    let summary_at = std::sync::Arc::new(std::sync::Mutex::new(None));
    let summary_seen = std::sync::Arc::clone(&summary_at);
    let stderr_done = std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let now = Instant::now();
            if line.contains("attached") {
                let _ = ready_tx.send(now);
            }
            if line.contains(" spans (") && line.contains(" written, ") {
                summary_seen.lock().expect("lock").get_or_insert(now);
            }
            let mut s = sink.lock().expect("lock");
            s.push_str(&line);
            s.push('\n');
        }
    });
    let Ok(attached_at) = ready.recv_timeout(Duration::from_secs(60)) else {
        let _ = child.kill();
        panic!("goprobe did not attach: {}", stderr.lock().expect("lock"));
    };
    Running {
        child,
        stdout,
        stderr,
        stderr_done: Some(stderr_done),
        attached_at,
        summary_at,
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
        // The last lines (the summary) are read once stderr closes.
        if let Some(t) = self.stderr_done.take() {
            let _ = t.join();
        }
        let err = self.stderr.lock().expect("lock").clone();
        (status.code().unwrap_or(-1), out, err)
    }
}

/// Span NDJSON (`goprobe record` output), each line checked against the
/// schema; `lost` lines (checked too) are left out.
pub fn spans(out: &str) -> Vec<goprobe::span::Span> {
    out.lines()
        .filter(|l| match goprobe::loss::LostLine::parse(l.as_bytes()) {
            None => true,
            Some(parsed) => {
                parsed.unwrap_or_else(|e| panic!("bad lost line {l}: {e}"));
                false
            }
        })
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
