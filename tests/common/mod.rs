//! Shared test helpers: the Go fixture corpus (built by
//! tests/fixtures/build-corpus.sh) and its toolchains.
//!
//! The corpus lives in `$GOPROBE_CACHE` (default `<repo>/.cache`). Tests that
//! need it fail with a message saying how to build it; they never skip.
#![allow(dead_code)]

pub mod goruntime;
pub mod load;

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
    read_manifest("manifest.tsv", "")
}

/// The patch-release sample (`build-corpus.sh --patches`): binaries of Go
/// patch releases that are not the corpus's reference releases.
pub fn patch_manifest() -> Vec<CorpusBinary> {
    read_manifest("patches.tsv", " --patches")
}

fn read_manifest(name: &str, flag: &str) -> Vec<CorpusBinary> {
    let path = cache_dir().join("corpus").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "Go fixture corpus missing ({}: {e}). Build it with \
             `GOPROBE_CACHE={} tests/fixtures/build-corpus.sh{flag}` (scripts/setup.sh does).",
            path.display(),
            cache_dir().display()
        )
    });
    let mut out = Vec::new();
    for (i, line) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let cols: Vec<&str> = line.split('\t').collect();
        let [go_version, program, variant, bin, twin, goarch] = cols.as_slice() else {
            panic!(
                "{}:{}: expected 6 tab-separated columns: {line:?}",
                path.display(),
                i + 1
            );
        };
        let entry = CorpusBinary {
            go_version: go_version.to_string(),
            program: program.to_string(),
            variant: variant.to_string(),
            path: PathBuf::from(bin),
            twin: PathBuf::from(twin),
            goarch: goarch.to_string(),
        };
        assert!(
            entry.path.is_file(),
            "{}: manifest names missing file {}",
            entry.label(),
            entry.path.display()
        );
        assert!(
            entry.twin.is_file(),
            "{}: manifest names missing twin {}",
            entry.label(),
            entry.twin.display()
        );
        out.push(entry);
    }
    assert!(
        !out.is_empty(),
        "{} lists no binaries: rebuild the corpus",
        path.display()
    );
    out
}

/// The `go` command of a corpus toolchain, with the environment every test
/// run needs (no toolchain switching, no module proxy).
pub fn go(version: &str) -> Command {
    let bin = cache_dir().join("go").join(version).join("go/bin/go");
    assert!(
        bin.is_file(),
        "Go toolchain {version} missing at {}: run tests/fixtures/build-corpus.sh",
        bin.display()
    );
    let mut cmd = Command::new(bin);
    cmd.env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off");
    cmd
}

/// Run a command, panic with its stderr unless it succeeds, return stdout.
pub fn output(mut cmd: Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap_or_else(|e| panic!("{cmd:?}: output not UTF-8: {e}"))
}

// ---- Running fixture programs and test-only oracles (attach/record tests).
// Symbols via the `object` crate and offsets via llvm-dwarfdump are
// oracles independent of goprobe's own readers.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Distinguishes temporary files and directories of one test process.
static UNIQUE: AtomicU64 = AtomicU64::new(0);

/// One manifest row.
#[derive(Debug, Clone)]
pub struct CorpusEntry {
    pub go_version: String,
    pub program: String,
    pub variant: String,
    pub binary: PathBuf,
    pub unstripped: PathBuf,
    pub goarch: String,
}

/// Every corpus binary, as attach/record tests name them.
pub fn corpus() -> Vec<CorpusEntry> {
    manifest()
        .into_iter()
        .map(|b| CorpusEntry {
            go_version: b.go_version,
            program: b.program,
            variant: b.variant,
            binary: b.path,
            unstripped: b.twin,
            goarch: b.goarch,
        })
        .collect()
}

/// The corpus binary for (program, variant) of the Go version starting with `go`.
pub fn corpus_binary(go: &str, program: &str, variant: &str) -> CorpusEntry {
    let matches = |v: &str| v == go || v.starts_with(&format!("{go}."));
    if let Some(e) = corpus()
        .into_iter()
        .find(|e| matches(&e.go_version) && e.program == program && e.variant == variant)
    {
        return e;
    }
    // The manifest is rewritten while the corpus script runs; the binaries
    // follow a fixed layout, so look there too.
    let root = cache_dir().join("corpus");
    let dirs = std::fs::read_dir(&root).into_iter().flatten().flatten();
    for d in dirs {
        let name = d.file_name().to_string_lossy().into_owned();
        let Some(v) = name.strip_prefix("go") else {
            continue;
        };
        let bin = d.path().join(program).join(variant);
        if matches(v) && bin.is_file() {
            let twin = match variant {
                "stripped" => "default",
                "pie-stripped" => "pie",
                "arm64-stripped" => "arm64",
                other => other,
            };
            return CorpusEntry {
                go_version: v.to_owned(),
                program: program.to_owned(),
                variant: variant.to_owned(),
                unstripped: d.path().join(program).join(twin),
                binary: bin,
                goarch: if variant.starts_with("arm64") {
                    "arm64"
                } else {
                    "amd64"
                }
                .to_owned(),
            };
        }
    }
    panic!(
        "corpus has no {program}/{variant} for Go {go} under {}: run tests/fixtures/build-corpus.sh --all",
        root.display()
    )
}

/// Fail unless running as root (eBPF tests attach real uprobes).
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    let euid = unsafe { libc::geteuid() };
    assert_eq!(
        euid, 0,
        "this test attaches eBPF uprobes and must run as root"
    );
}

/// A running httpserver fixture.
pub struct Server {
    pub child: Child,
    pub addr: String,
}

impl Server {
    pub fn start(bin: &Path) -> Server {
        Server::start_with(bin, &[], &[])
    }

    /// Start with extra environment, e.g. `GODEBUG=httpmuxgo121=0`: the
    /// fixture's go.mod says `go 1.19`, so Go >= 1.22 keeps the old ServeMux
    /// (no patterns, no Request.Pattern) unless told otherwise.
    pub fn start_env(bin: &Path, env: &[(&str, &str)]) -> Server {
        Server::start_with(bin, &[], env)
    }

    /// Start with command-line arguments, e.g. `["-dsn", &pg.dsn()]`.
    pub fn start_args(bin: &Path, args: &[&str]) -> Server {
        Server::start_with(bin, args, &[])
    }

    /// Start with arguments and extra environment. Panics when the program
    /// exits before printing its address (e.g. dbserver cannot reach the
    /// database), with its stderr.
    pub fn start_with(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let stderr = std::env::temp_dir().join(format!(
            "goprobe-fixture-{}-{}.stderr",
            std::process::id(),
            UNIQUE.fetch_add(1, Ordering::Relaxed)
        ));
        let err_file = std::fs::File::create(&stderr)
            .unwrap_or_else(|e| panic!("create {}: {e}", stderr.display()));
        let mut child = Command::new(bin)
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(err_file)
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped"))
            .read_line(&mut line)
            .expect("server prints its address");
        let errors = std::fs::read_to_string(&stderr).unwrap_or_default();
        let _ = std::fs::remove_file(&stderr);
        if line.trim().is_empty() {
            let _ = child.kill();
            let status = child.wait();
            panic!(
                "{} {args:?} exited ({status:?}) without printing its address: {errors}",
                bin.display()
            );
        }
        Server {
            child,
            addr: line.trim().to_owned(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET `path` over a fresh HTTP/1.1 connection; returns the status code.
pub fn get(addr: &str, path: &str) -> u16 {
    get_with(addr, path, &[])
}

/// GET `path` with extra request headers; returns the status code (0 when
/// the server closed the connection without answering).
pub fn get_with(addr: &str, path: &str, headers: &[(&str, &str)]) -> u16 {
    get_response_with(addr, path, headers).0
}

/// GET `path` over a fresh HTTP/1.1 connection; returns the status code (0
/// when the server closed the connection without answering, as net/http does
/// after a handler panics) and the whole response, headers included.
pub fn get_response(addr: &str, path: &str) -> (u16, String) {
    get_response_with(addr, path, &[])
}

fn get_response_with(addr: &str, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let mut s = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{extra}Connection: close\r\n\r\n"
    )
    .expect("send");
    let mut resp = String::new();
    let _ = s.read_to_string(&mut resp);
    let status = resp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, resp)
}

/// Test-only oracle: a function's (vaddr, file offset, size, bytes) from
/// the symbol table of an unstripped binary.
pub fn symbol_function(bin: &Path, name: &str) -> (u64, u64, u64, Vec<u8>) {
    use object::{Object, ObjectSection, ObjectSymbol};
    let data = std::fs::read(bin).expect("read binary");
    let file = object::File::parse(&*data).expect("ELF");
    let sym = file
        .symbols()
        .find(|s| s.name() == Ok(name))
        .unwrap_or_else(|| panic!("no symbol {name}"));
    let sec = file
        .section_by_index(sym.section_index().expect("in a section"))
        .expect("section");
    let (sec_off, _) = sec.file_range().expect("file range");
    let off = sym.address() - sec.address() + sec_off;
    let code = data[off as usize..(off + sym.size()) as usize].to_vec();
    (sym.address(), off, sym.size(), code)
}

/// Test-only oracle: `goprobe offsets --json`-style NDJSON for `fields`
/// (`pkg.Type.field`), read from DWARF with llvm-dwarfdump.
pub fn dwarf_offsets(bin: &Path, fields: &[&str]) -> String {
    let mut out = String::new();
    for field in fields {
        let (ty, member) = field.rsplit_once('.').expect("pkg.Type.field");
        let dump = Command::new("llvm-dwarfdump-14")
            .args(["--name", ty, "--show-children"])
            .arg(bin)
            .output()
            .expect("llvm-dwarfdump-14 (apt install llvm-14)");
        let text = String::from_utf8_lossy(&dump.stdout);
        let mut offset = None;
        let mut lines = text.lines();
        while let Some(l) = lines.next() {
            if l.contains("DW_AT_name")
                && l.contains(&format!("(\"{member}\")"))
                && let Some(loc) = lines
                    .next()
                    .filter(|n| n.contains("DW_AT_data_member_location"))
            {
                offset = loc
                    .rsplit_once('(')
                    .and_then(|(_, v)| v.trim_end_matches(')').parse::<u64>().ok());
                break;
            }
        }
        match offset {
            Some(o) => out.push_str(&format!(
                "{{\"field\":\"{field}\",\"offset\":{o},\"size\":null,\"source\":\"dwarf\"}}\n"
            )),
            None => out.push_str(&format!(
                "{{\"field\":\"{field}\",\"offset\":null,\"size\":null,\"source\":\"unknown\"}}\n"
            )),
        }
    }
    out
}

/// Every field the HTTP probes use.
pub const HTTP_FIELDS: &[&str] = &[
    "runtime.g.goid",
    "net/http.Request.Method",
    "net/http.Request.URL",
    "net/http.Request.Proto",
    "net/http.Request.Host",
    "net/http.Request.RemoteAddr",
    "net/http.Request.Pattern",
    "net/http.Request.pat",
    "net/http.pattern.str",
    "net/url.URL.Scheme",
    "net/url.URL.Host",
    "net/url.URL.Path",
    "net/url.URL.RawQuery",
    "net/http.response.status",
    "net/http.Response.StatusCode",
];

// ---- PostgreSQL for the database/sql fixtures (dbserver).

/// A throwaway PostgreSQL server: its own data directory under the temp dir,
/// listening on 127.0.0.1 only, on a free port, with its unix socket in that
/// directory, so tests running in parallel each get their own. Trust auth;
/// role and database `goprobe` exist. Drop stops it and removes the
/// directory.
pub struct Postgres {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    /// Run server commands as the `postgres` OS user (the server refuses
    /// to run as root); None when not root.
    run_as: Option<(u32, u32)>,
}

impl Postgres {
    /// Start a fresh server. Panics with "PostgreSQL is missing: run
    /// scripts/setup.sh" when the server binaries are not installed.
    pub fn start() -> Postgres {
        let bin = postgres_bindir();
        // SAFETY: geteuid has no preconditions.
        let root = unsafe { libc::geteuid() } == 0;
        let run_as = root.then(|| {
            os_user("postgres").unwrap_or_else(|| {
                panic!("PostgreSQL is missing: run scripts/setup.sh (no `postgres` OS user)")
            })
        });
        let dir = std::env::temp_dir().join(format!(
            "goprobe-pg-{}-{}",
            std::process::id(),
            UNIQUE.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(&dir, Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("chown {} to postgres: {e}", dir.display()));
        }
        // From here on Drop cleans up, even when a step below panics.
        let mut pg = Postgres {
            dir,
            bin,
            port: 0,
            run_as,
        };
        let data = pg.dir.join("data");
        let mut initdb = pg.server_command("initdb");
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-locale"])
            .arg("--no-sync");
        output(initdb);

        // A port another test grabs between our probe and the server's bind
        // makes pg_ctl fail: try again with another.
        let mut last_error = String::new();
        for _ in 0..5 {
            pg.port = free_port();
            let mut start = pg.server_command("pg_ctl");
            start
                .arg("-D")
                .arg(&data)
                .arg("-l")
                .arg(pg.dir.join("server.log"))
                .args(["-w", "-t", "60", "-o"])
                .arg(format!(
                    "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off -c full_page_writes=off",
                    pg.port,
                    pg.dir.display()
                ))
                .arg("start");
            let out = start
                .output()
                .unwrap_or_else(|e| panic!("running pg_ctl: {e}"));
            if out.status.success() {
                last_error.clear();
                break;
            }
            last_error = format!(
                "{}{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                std::fs::read_to_string(pg.dir.join("server.log")).unwrap_or_default()
            );
        }
        assert!(
            last_error.is_empty(),
            "PostgreSQL did not start: {last_error}"
        );
        pg.psql_as(
            "postgres",
            "postgres",
            "CREATE ROLE goprobe LOGIN SUPERUSER",
        );
        pg.psql_as(
            "postgres",
            "postgres",
            "CREATE DATABASE goprobe OWNER goprobe",
        );
        pg
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://goprobe@127.0.0.1:PORT/goprobe?sslmode=disable`, the form
    /// dbserver's -dsn takes.
    pub fn dsn(&self) -> String {
        format!(
            "postgres://goprobe@127.0.0.1:{}/goprobe?sslmode=disable",
            self.port
        )
    }

    /// Run `sql` as role goprobe in database goprobe with psql; returns the
    /// unaligned, tuples-only output (`|` between columns), trimmed.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_as("goprobe", "goprobe", sql)
    }

    fn psql_as(&self, user: &str, db: &str, sql: &str) -> String {
        let mut cmd = Command::new(self.bin.join("psql"));
        cmd.args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
        ])
        .args([
            "-p",
            &self.port.to_string(),
            "-U",
            user,
            "-d",
            db,
            "-c",
            sql,
        ])
        .env("PGCONNECT_TIMEOUT", "10");
        output(cmd).trim().to_owned()
    }

    /// A server program (initdb, pg_ctl) as the postgres user when root.
    fn server_command(&self, program: &str) -> Command {
        let mut cmd = match self.run_as {
            Some((uid, gid)) => {
                use std::os::unix::process::CommandExt;
                // std also drops root's supplementary groups when it sets
                // the uid as root.
                let mut cmd = Command::new(self.bin.join(program));
                cmd.uid(uid).gid(gid);
                cmd
            }
            None => Command::new(self.bin.join(program)),
        };
        // initdb and pg_ctl chdir back to the cwd, which the postgres user
        // may not be allowed to read.
        cmd.current_dir(&self.dir)
            .env("LC_ALL", "C")
            .env_remove("PGDATA")
            .stdin(Stdio::null());
        cmd
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.dir.join("data");
        if data.join("postmaster.pid").exists() {
            let mut stop = self.server_command("pg_ctl");
            stop.arg("-D")
                .arg(&data)
                .args(["-m", "immediate", "-w", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let _ = stop.status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The newest /usr/lib/postgresql/<major>/bin with initdb, pg_ctl and psql.
fn postgres_bindir() -> PathBuf {
    let root = Path::new("/usr/lib/postgresql");
    let mut best: Option<(u32, PathBuf)> = None;
    for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
        let Ok(major) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let bin = entry.path().join("bin");
        let complete = ["initdb", "pg_ctl", "postgres", "psql"]
            .iter()
            .all(|p| bin.join(p).is_file());
        if complete && best.as_ref().is_none_or(|(m, _)| major > *m) {
            best = Some((major, bin));
        }
    }
    match best {
        Some((_, bin)) => bin,
        None => panic!(
            "PostgreSQL is missing: run scripts/setup.sh (no /usr/lib/postgresql/<version>/bin \
             with initdb, pg_ctl, postgres and psql)"
        ),
    }
}

/// (uid, gid) of an OS user.
fn os_user(name: &str) -> Option<(u32, u32)> {
    let cname = std::ffi::CString::new(name).ok()?;
    // SAFETY: cname is a valid C string; getpwnam returns NULL or a pointer to
    // static storage, read at once before any other getpw* call in this
    // thread.
    let pw = unsafe { libc::getpwnam(cname.as_ptr()) };
    if pw.is_null() {
        return None;
    }
    // SAFETY: pw is non-null and points to a valid passwd record.
    let pw = unsafe { &*pw };
    Some((pw.pw_uid, pw.pw_gid))
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind 127.0.0.1:0")
}
