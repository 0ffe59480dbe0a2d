//! Shared test helpers: the Go fixture corpus (built by
//! tests/fixtures/build-corpus.sh) and its toolchains.
//!
//! The corpus lives in `$GOPROBE_CACHE` (default `<repo>/.cache`). Tests that
//! need it fail with a message saying how to build it; they never skip.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// One line of `corpus/manifest.tsv`.
#[derive(Debug, Clone)]
pub struct CorpusBinary {
    /// e.g. `1.22.10` (the toolchain directory name).
    pub go_version: String,
    pub program: String,
    pub variant: String,
    pub path: PathBuf,
    /// The same build without `-s -w` (the binary itself when not stripped).
    pub twin: PathBuf,
    pub goarch: String,
}

impl CorpusBinary {
    pub fn stripped(&self) -> bool {
        self.variant.contains("stripped")
    }
    pub fn label(&self) -> String {
        format!("go{} {} {}", self.go_version, self.program, self.variant)
    }
}

/// `$GOPROBE_CACHE`, or `<repo>/.cache`.
pub fn cache_dir() -> PathBuf {
    match std::env::var_os("GOPROBE_CACHE") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache"),
    }
}

/// Every corpus binary in the manifest. Panics (failing the test) when the
/// manifest is missing, empty or names a file that does not exist.
pub fn manifest() -> Vec<CorpusBinary> {
    let path = cache_dir().join("corpus/manifest.tsv");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "Go fixture corpus missing ({}: {e}). Build it with \
             `GOPROBE_CACHE={} tests/fixtures/build-corpus.sh` (scripts/setup.sh does).",
            path.display(),
            cache_dir().display()
        )
    });
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split('\t').collect();
        let [go_version, program, variant, bin, twin, goarch] = cols.as_slice() else {
            panic!("{}:{}: expected 6 tab-separated columns: {line:?}", path.display(), i + 1);
        };
        let entry = CorpusBinary {
            go_version: go_version.to_string(),
            program: program.to_string(),
            variant: variant.to_string(),
            path: PathBuf::from(bin),
            twin: PathBuf::from(twin),
            goarch: goarch.to_string(),
        };
        assert!(entry.path.is_file(), "{}: manifest names missing file {}", entry.label(), entry.path.display());
        assert!(entry.twin.is_file(), "{}: manifest names missing twin {}", entry.label(), entry.twin.display());
        out.push(entry);
    }
    assert!(!out.is_empty(), "{} lists no binaries: rebuild the corpus", path.display());
    out
}

/// The `go` command of a corpus toolchain, with the environment every test
/// run needs (no toolchain switching, no module proxy).
pub fn go(version: &str) -> Command {
    let bin = cache_dir().join("go").join(version).join("go/bin/go");
    assert!(bin.is_file(), "Go toolchain {version} missing at {}: run tests/fixtures/build-corpus.sh", bin.display());
    let mut cmd = Command::new(bin);
    cmd.env("GOTOOLCHAIN", "local").env("GOFLAGS", "-mod=mod").env("GOPROXY", "off");
    cmd
}

/// Run a command, panic with its stderr unless it succeeds, return stdout.
pub fn output(mut cmd: Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap_or_else(|e| panic!("{cmd:?}: output not UTF-8: {e}"))
}
