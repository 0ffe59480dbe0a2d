//! The goruntime fixture (tests/fixtures/programs/goruntime) as a running
//! process: started, waited for until everything is parked, asked to write
//! its own heap profile and goroutine dump, stopped on drop. And the
//! oracles the tests compare goprobe with: Go's dump text parsed, `go tool
//! pprof -raw` and `-top` parsed.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use super::go;
use std::sync::atomic::{AtomicU64, Ordering};

static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// A running goruntime fixture.
pub struct GoRuntime {
    pub child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    dir: PathBuf,
}

/// What the fixture wrote about itself.
pub struct OwnSnapshot {
    pub heap: PathBuf,
    pub goroutines: String,
}

impl GoRuntime {
    /// Start `bin` with `args` and wait for "ready".
    pub fn start(bin: &Path, args: &[&str]) -> GoRuntime {
        let dir = std::env::temp_dir().join(format!(
            "goprobe-goruntime-{}-{}",
            std::process::id(),
            UNIQUE.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let mut child = Command::new(bin)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("read ready");
        assert!(
            line.starts_with("ready "),
            "{}: said {line:?} instead of ready",
            bin.display()
        );
        GoRuntime {
            child,
            stdin,
            stdout,
            dir,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Have the fixture write its own heap profile and debug=2 dump now.
    pub fn own_snapshot(&mut self, name: &str) -> OwnSnapshot {
        let prefix = self.dir.join(name);
        writeln!(self.stdin, "snapshot {}", prefix.display()).expect("send snapshot");
        self.stdin.flush().expect("flush");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read ok");
        assert!(
            line.starts_with("ok "),
            "fixture did not write its snapshot: {line:?}"
        );
        let goroutines = std::fs::read_to_string(prefix.with_extension("goroutines.txt"))
            .expect("fixture's goroutine dump");
        OwnSnapshot {
            heap: prefix.with_extension("heap.pb.gz"),
            goroutines,
        }
    }

    /// A file path in the fixture's scratch directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for GoRuntime {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "exit");
        let _ = self.stdin.flush();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One goroutine of a debug=2 dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpEntry {
    pub id: u64,
    /// Inside the brackets: `chan receive, 2 minutes`.
    pub header: String,
    /// The state alone: `chan receive`.
    pub state: String,
    /// Function names of the frames, innermost first (no "created by").
    pub functions: Vec<String>,
    pub created_by: Option<String>,
}

/// Parse Go's `debug=2` goroutine dump text.
pub fn parse_dump(text: &str) -> Vec<DumpEntry> {
    let mut out = Vec::new();
    for block in text.split("\n\n").filter(|b| !b.trim().is_empty()) {
        let mut lines = block.lines();
        let head = lines.next().expect("header");
        let rest = head
            .strip_prefix("goroutine ")
            .unwrap_or_else(|| panic!("not a goroutine header: {head:?}"));
        let (id, bracket) = rest.split_once(" [").expect("id [state]");
        let header = bracket.strip_suffix("]:").expect("]:").to_string();
        let state = header.split(", ").next().expect("state").to_string();
        let mut functions = Vec::new();
        let mut created_by = None;
        for l in lines {
            if l.starts_with('\t') {
                continue;
            }
            if let Some(c) = l.strip_prefix("created by ") {
                created_by = Some(c.to_string());
                continue;
            }
            let f = l.rsplit_once('(').map_or(l, |(f, _)| f);
            functions.push(f.to_string());
        }
        out.push(DumpEntry {
            id: id.parse().expect("goroutine id"),
            header,
            state,
            functions,
            created_by,
        });
    }
    out
}

// ---- goprobe and `go tool pprof` as oracles.

pub fn goprobe(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_goprobe"))
        .args(args)
        .output()
        .expect("run goprobe");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn goprobe_ok(args: &[&str]) -> String {
    let (code, out, err) = goprobe(args);
    assert_eq!(code, 0, "goprobe {args:?} failed: {err}");
    out
}

/// One sample of `go tool pprof -raw`: values, then frames (function and
/// file:line, innermost first, inlined frames included).
pub type RawSample = (Vec<i64>, Vec<String>);

/// `go tool pprof -raw PROFILE`, parsed.
pub fn pprof_raw(version: &str, profile: &Path) -> Vec<RawSample> {
    let mut cmd = go(version);
    cmd.args(["tool", "pprof", "-raw"]).arg(profile);
    let text = super::output(cmd);
    let mut samples: Vec<(Vec<i64>, Vec<u64>)> = Vec::new();
    let mut locations: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let mut section = "";
    let mut current: Option<u64> = None;
    for line in text.lines() {
        match line.trim_end() {
            "Samples:" => {
                section = "types";
                continue;
            }
            "Locations" => {
                section = "locations";
                continue;
            }
            "Mappings" => {
                section = "mappings";
                continue;
            }
            _ => {}
        }
        match section {
            "types" => section = "samples",
            "samples" => {
                let Some((vals, locs)) = line.split_once(':') else {
                    continue;
                };
                if line.trim_start().starts_with("bytes:") || vals.trim().is_empty() {
                    continue;
                }
                let values = vals
                    .split_whitespace()
                    .map(|v| v.parse().expect("value"))
                    .collect();
                let ids = locs
                    .split_whitespace()
                    .map(|v| v.parse().expect("location id"))
                    .collect();
                samples.push((values, ids));
            }
            "locations" => {
                let t = line.trim_start();
                let frame = |s: &str| {
                    // `func file:line:col s=N` -> `func file:line`
                    let mut it = s.split_whitespace();
                    let f = it.next().unwrap_or("");
                    let pos = it.next().unwrap_or("");
                    let pos = pos.rsplit_once(':').map_or(pos, |(p, _)| p);
                    format!("{f} {pos}")
                };
                if let Some((id, rest)) = t
                    .split_once(": ")
                    .filter(|(id, _)| id.chars().all(|c| c.is_ascii_digit()))
                {
                    let id: u64 = id.parse().expect("id");
                    // `0xADDR M=1 func file:line:col s=N`
                    let rest: Vec<&str> = rest.splitn(3, ' ').collect();
                    locations.insert(id, vec![frame(rest.get(2).copied().unwrap_or(""))]);
                    current = Some(id);
                } else if let Some(id) = current {
                    locations.get_mut(&id).expect("location").push(frame(t));
                }
            }
            _ => {}
        }
    }
    samples
        .into_iter()
        .map(|(v, ids)| {
            let frames = ids.iter().flat_map(|id| locations[id].clone()).collect();
            (v, frames)
        })
        .collect()
}

/// The top `n` functions by flat alloc_space, as `go tool pprof -top` lists them.
pub fn top(version: &str, profile: &Path, n: usize) -> Vec<(String, String)> {
    let mut cmd = go(version);
    cmd.args([
        "tool",
        "pprof",
        "-top",
        "-sample_index=alloc_space",
        "-nodecount=20",
    ])
    .arg(profile);
    let text = super::output(cmd);
    text.lines()
        .skip_while(|l| !l.trim_start().starts_with("flat"))
        .skip(1)
        .take(n)
        .map(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            (cols[5..].join(" "), cols[0].to_string())
        })
        .collect()
}

pub fn nonzero(samples: Vec<RawSample>) -> Vec<RawSample> {
    // Buckets created after the published GC cycle (the fixture's own
    // snapshot allocates) have all-zero counts: they exist for goprobe only.
    let mut s: Vec<RawSample> = samples
        .into_iter()
        .filter(|(v, _)| v.iter().any(|&x| x != 0))
        .collect();
    s.sort();
    s
}
