//! `goprobe offsets` and the `inspect` probe verdicts (`probes`, `--require`):
//! sources, unknown versions, exit statuses, NDJSON read back by the library.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use goprobe::offsets::{Source, parse_ndjson};

use crate::common::{CorpusBinary, manifest};

fn goprobe(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_goprobe"))
        .args(args)
        .output()
        .expect("running goprobe")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("cli-offsets");
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

fn corpus(program: &str, variant: &str) -> CorpusBinary {
    manifest()
        .into_iter()
        .rev()
        .find(|b| b.program == program && b.variant == variant)
        .unwrap_or_else(|| {
            panic!("corpus has no {program} {variant} binary: run tests/fixtures/build-corpus.sh")
        })
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A copy of `bin` whose build info claims Go version `fake` (same length as
/// the real one): a binary "from a Go version the table was not built from".
fn with_fake_go_version(bin: &CorpusBinary, fake: &str) -> PathBuf {
    let data = std::fs::read(&bin.path).unwrap();
    let real = format!("go{}", bin.go_version);
    assert_eq!(real.len(), fake.len(), "fake version must keep the length");
    let magic = b"\xff Go buildinf:";
    let start = data
        .windows(magic.len())
        .position(|w| w == magic)
        .expect("build info magic");
    let at = start
        + data[start..]
            .windows(real.len())
            .position(|w| w == real.as_bytes())
            .expect("go version in build info");
    let mut patched = data.clone();
    patched[at..at + real.len()].copy_from_slice(fake.as_bytes());
    let path = scratch(&format!("{}-{}-{fake}", bin.program, bin.variant));
    std::fs::write(&path, patched).unwrap();
    path
}

#[test]
fn default_fields_from_dwarf_then_table_when_stripped() {
    for (variant, source) in [
        ("default", Source::Dwarf),
        ("stripped", Source::Table),
        ("arm64-stripped", Source::Table),
    ] {
        let bin = corpus("httpserver", variant);
        let out = goprobe(&["offsets", "--json", s(&bin.path)]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}",
            bin.label(),
            stderr(&out)
        );
        let got = parse_ndjson(out.stdout.as_slice()).unwrap();
        for f in [
            "net/http.Request.Method",
            "net/url.URL.Path",
            "net/http.response.status",
            "runtime.g.goid",
            "net/http.Response.StatusCode",
        ] {
            let r = got
                .get(f)
                .unwrap_or_else(|| panic!("{}: no {f} in {got:?}", bin.label()));
            assert_eq!(r.source, source, "{}: {f}", bin.label());
            assert!(
                r.offset.is_some() && r.size.is_some(),
                "{}: {r:?}",
                bin.label()
            );
        }
        // Each line is one object with the documented keys.
        for line in out.stdout.lines() {
            let v: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
            for key in ["field", "offset", "size", "source"] {
                assert!(v.get(key).is_some(), "{v} lacks {key}");
            }
        }
    }
}

#[test]
fn text_output_and_explicit_fields() {
    let bin = corpus("reflectoffsets", "default");
    let out = goprobe(&[
        "offsets",
        s(&bin.path),
        "--field",
        "net/http.Cookie.Expires.ext",
        "--field",
        "runtime.g.goid",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(
        lines[0].starts_with("net/http.Cookie.Expires.ext\toffset ")
            && lines[0].ends_with("size 8\tdwarf"),
        "{text}"
    );
    assert!(lines[1].starts_with("runtime.g.goid\toffset "), "{text}");
}

#[test]
fn unknown_field_exits_1() {
    let bin = corpus("httpserver", "default");
    let out = goprobe(&[
        "offsets",
        "--json",
        s(&bin.path),
        "--field",
        "net/http.Request.NoSuchField",
        "--field",
        "runtime.g.goid",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let got = parse_ndjson(out.stdout.as_slice()).unwrap();
    let r = &got["net/http.Request.NoSuchField"];
    assert_eq!((r.offset, r.source), (None, Source::Unknown));
    assert!(
        r.reason
            .as_deref()
            .unwrap()
            .contains("no field NoSuchField"),
        "{r:?}"
    );
    assert!(got["runtime.g.goid"].offset.is_some());
    assert!(stderr(&out).contains("1 of 2 fields unknown"));
}

#[test]
fn stripped_binary_of_a_version_not_in_the_table_is_unknown() {
    let bin = corpus("httpserver", "stripped");
    // 1) --go-version of a release the table was not built from.
    let out = goprobe(&["offsets", "--json", "--go-version", "1.18.10", s(&bin.path)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let got = parse_ndjson(out.stdout.as_slice()).unwrap();
    assert!(!got.is_empty());
    for r in got.values() {
        assert_eq!(
            (r.offset, r.size, r.source),
            (None, None, Source::Unknown),
            "{r:?}"
        );
        assert!(
            r.reason
                .as_deref()
                .unwrap()
                .contains("no entry for go1.18.10/amd64"),
            "{r:?}"
        );
    }
    // 2) The real version, but a table with that version removed.
    let mut table: serde_json::Value =
        serde_json::from_str(goprobe::offsets::table::BUILTIN_TABLE_JSON).unwrap();
    let key = format!("go{}", bin.go_version);
    let real_key = table["stdlib"]
        .as_object()
        .unwrap()
        .keys()
        .find(|k| k.starts_with(&key))
        .cloned()
        .expect("version in table");
    table["stdlib"].as_object_mut().unwrap().remove(&real_key);
    let path = scratch("table-without-version.json");
    std::fs::write(&path, table.to_string()).unwrap();
    let out = goprobe(&["offsets", "--json", "--table", s(&path), s(&bin.path)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        parse_ndjson(out.stdout.as_slice())
            .unwrap()
            .values()
            .all(|r| r.offset.is_none())
    );
    // The same table still resolves the unstripped twin from DWARF.
    let out = goprobe(&["offsets", "--json", "--table", s(&path), s(&bin.twin)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}

#[test]
fn errors_exit_2() {
    for args in [
        &["offsets", "/bin/true"][..],
        &["offsets", "/nonexistent/goprobe-test"],
        &["offsets"],
        &["offsets", "--pid", "999999999"],
    ] {
        let out = goprobe(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
    }
    let bin = corpus("httpserver", "default");
    let bad = scratch("bad-table.json");
    std::fs::write(&bad, "{").unwrap();
    let out = goprobe(&["offsets", "--table", s(&bad), s(&bin.path)]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

struct Kill(std::process::Child);
impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn by_pid() {
    let bin = corpus("httpserver", "stripped");
    let mut child = Kill(
        Command::new(&bin.path)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    // The server prints its address once listening.
    let mut line = String::new();
    std::io::BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let pid = child.0.id().to_string();
    let out = goprobe(&["offsets", "--json", "--pid", &pid]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let got = parse_ndjson(out.stdout.as_slice()).unwrap();
    assert_eq!(got["runtime.g.goid"].source, Source::Table);
}

/// Every amd64 HTTP server passes; arm64 ones (goprobe attaches to amd64
/// only) fail with a reason naming the architecture.
#[test]
fn inspect_require_passes_on_every_httpserver_binary() {
    for bin in manifest().iter().filter(|b| b.program == "httpserver") {
        let out = goprobe(&[
            "inspect",
            "--require",
            "http.server,http.client",
            s(&bin.path),
        ]);
        let amd64 = bin.goarch == "amd64";
        assert_eq!(
            out.status.code(),
            Some(if amd64 { 0 } else { 1 }),
            "{}: {}",
            bin.label(),
            stderr(&out)
        );
        if !amd64 {
            assert!(
                stderr(&out).contains(&format!(
                    "probe http.server is not instrumentable: unsupported architecture {} (supported: amd64)",
                    bin.goarch
                )),
                "{}: {}",
                bin.label(),
                stderr(&out)
            );
        }
        let json = goprobe(&["inspect", "--json", s(&bin.path)]);
        let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
        let probes = v["probes"].as_array().unwrap();
        assert!(
            probes
                .iter()
                .any(|p| p["probe"] == "http.server" && p["instrumentable"] == amd64),
            "{v}"
        );
    }
}

#[test]
fn inspect_require_fails_with_reasons() {
    // A Go program that serves no HTTP.
    let hello = corpus("hello", "default");
    let out = goprobe(&["inspect", "--require", "http.server", s(&hello.path)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("probe http.server is not instrumentable: function net/http.serverHandler.ServeHTTP not in the binary"), "{}", stderr(&out));

    // A stripped HTTP server from a Go version the table lacks.
    let bin = corpus("httpserver", "stripped");
    let fake = {
        // Same length, last digit changed (go1.26.6 -> go1.26.9): a release not in the table.
        let mut f = format!("go{}", bin.go_version).into_bytes();
        let last = f.len() - 1;
        f[last] = if f[last] == b'9' { b'8' } else { b'9' };
        String::from_utf8(f).unwrap()
    };
    let patched = with_fake_go_version(&bin, &fake);
    let json = goprobe(&["inspect", "--json", s(&patched)]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    // The directory name may be a prefix of the full version (1.19 -> go1.19.8).
    let full = v["go_version"].as_str().unwrap().to_string();
    assert!(full.starts_with(&fake), "{full} vs {fake}");
    assert!(
        goprobe::offsets::table::Table::builtin()
            .unwrap()
            .stdlib(&full, "amd64")
            .is_none()
    );
    assert_eq!(v["probes"][0]["instrumentable"], false);
    let out = goprobe(&["inspect", "--require", "http.server", s(&patched)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("offsets table has no entry for {full}/amd64")),
        "{err}"
    );
    // ...and offsets agrees: unknown, exit 1.
    let out = goprobe(&["offsets", s(&patched)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));

    // A non-Go binary is an error.
    let out = goprobe(&["inspect", "--require", "http.server", "/bin/true"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // So is an unknown probe name.
    let out = goprobe(&["inspect", "--require", "no.such.probe", s(&hello.path)]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("unknown probe no.such.probe"),
        "{}",
        stderr(&out)
    );
}

/// The built-in table, edited by `edit`, written to a scratch file.
fn edited_table(name: &str, edit: impl Fn(&mut serde_json::Value)) -> PathBuf {
    let mut table: serde_json::Value =
        serde_json::from_str(goprobe::offsets::table::BUILTIN_TABLE_JSON).unwrap();
    edit(&mut table);
    let path = scratch(name);
    std::fs::write(&path, table.to_string()).unwrap();
    path
}

fn is_map_internal(field: &str) -> bool {
    field.starts_with("runtime.hmap.") || field.starts_with("internal/runtime/maps.")
}

#[test]
fn default_fields_are_those_of_the_probes_in_the_binary() {
    // A plain HTTP service: no database/sql fields asked for, so a table
    // without its Go version still leaves nothing unknown (DWARF answers).
    let http = corpus("httpserver", "default");
    let no_version = edited_table("table-no-version-default.json", |t| {
        let key = format!("go{}", http.go_version);
        t["stdlib"]
            .as_object_mut()
            .unwrap()
            .retain(|k, _| !k.starts_with(&key));
    });
    let out = goprobe(&[
        "offsets",
        "--json",
        "--table",
        s(&no_version),
        s(&http.path),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let got = parse_ndjson(out.stdout.as_slice()).unwrap();
    assert!(got.contains_key("net/http.Request.Method"), "{got:?}");
    assert!(
        !got.keys().any(|f| f.starts_with("database/sql.")),
        "{:?}",
        got.keys()
    );
    // Naming the probe asks for its fields: DWARF lacks database/sql and the
    // table lacks the version, so they are unknown and the exit status is 1.
    let out = goprobe(&[
        "offsets",
        "--json",
        "--probe",
        "db.sql",
        "--table",
        s(&no_version),
        s(&http.path),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let got = parse_ndjson(out.stdout.as_slice()).unwrap();
    let r = &got["database/sql.Stmt.query"];
    assert_eq!(
        (r.offset, r.source, r.optional),
        (None, Source::Unknown, false)
    );
    // With the built-in table the standard library's layouts are known anyway.
    let out = goprobe(&["offsets", "--json", "--probe", "db.sql", s(&http.path)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let got = parse_ndjson(out.stdout.as_slice()).unwrap();
    assert_eq!(got["database/sql.Stmt.query"].source, Source::Table);
    assert!(
        !got.contains_key("net/http.Request.Method"),
        "only db.sql's fields"
    );
    let out = goprobe(&["offsets", "--probe", "no.such.probe", s(&http.path)]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("unknown probe no.such.probe"),
        "{}",
        stderr(&out)
    );

    // A binary that links database/sql gets its fields by default: from
    // DWARF, and from the table when stripped.
    for (variant, source) in [
        ("default", Source::Dwarf),
        ("stripped", Source::Table),
        ("arm64-stripped", Source::Table),
    ] {
        let bin = corpus("reflectoffsets", variant);
        let out = goprobe(&["offsets", "--json", s(&bin.path)]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}",
            bin.label(),
            stderr(&out)
        );
        let got = parse_ndjson(out.stdout.as_slice()).unwrap();
        for f in [
            "database/sql.DB.connector",
            "database/sql.Stmt.db",
            "database/sql.Stmt.query",
            "database/sql.Tx.db",
            "database/sql.dsnConnector.dsn",
            "database/sql.dsnConnector.driver",
        ] {
            let r = got
                .get(f)
                .unwrap_or_else(|| panic!("{}: no {f}", bin.label()));
            assert_eq!(r.source, source, "{}: {r:?}", bin.label());
        }
        assert!(got["database/sql.dsnConnector.dsn"].optional);
        assert!(!got["database/sql.Stmt.query"].optional);
    }
}

#[test]
fn unknown_optional_fields_are_reported_but_do_not_fail() {
    let bin = corpus("httpserver", "stripped");
    let no_maps = edited_table("table-no-map-internals.json", |t| {
        for arches in t["stdlib"].as_object_mut().unwrap().values_mut() {
            for l in arches.as_object_mut().unwrap().values_mut() {
                l["fields"]
                    .as_object_mut()
                    .unwrap()
                    .retain(|f, _| !is_map_internal(f));
            }
        }
    });
    let out = goprobe(&["offsets", "--json", "--table", s(&no_maps), s(&bin.path)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let got = parse_ndjson(out.stdout.as_slice()).unwrap();
    let maps: Vec<_> = got.values().filter(|r| is_map_internal(&r.field)).collect();
    assert!(maps.len() >= 3, "{got:?}");
    for r in maps {
        assert_eq!(
            (r.offset, r.source, r.optional),
            (None, Source::Unknown, true),
            "{r:?}"
        );
    }
    assert!(got["net/http.Request.Method"].offset.is_some());
    assert!(
        stderr(&out).contains("optional field(s) unknown"),
        "{}",
        stderr(&out)
    );
    // Asked for by name, the same field is required.
    let field = got.keys().find(|f| is_map_internal(f)).unwrap().clone();
    let out = goprobe(&[
        "offsets",
        "--table",
        s(&no_maps),
        "--field",
        &field,
        s(&bin.path),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
}

#[test]
fn db_sql_verdicts_follow_the_binary() {
    // reflectoffsets links database/sql: instrumentable in every amd64
    // variant, stripped ones through the offsets table.
    let bins: Vec<CorpusBinary> = manifest()
        .into_iter()
        .filter(|b| b.program == "reflectoffsets")
        .collect();
    assert!(bins.iter().any(|b| b.variant.ends_with("stripped")));
    for bin in &bins {
        let out = goprobe(&["inspect", "--require", "db.sql", s(&bin.path)]);
        // goprobe attaches to amd64 only: arm64 builds say so.
        let amd64 = bin.goarch == "amd64";
        assert_eq!(
            out.status.code(),
            Some(if amd64 { 0 } else { 1 }),
            "{}: {}",
            bin.label(),
            stderr(&out)
        );
        if !amd64 {
            assert!(
                stderr(&out).contains("unsupported architecture arm64 (supported: amd64)"),
                "{}: {}",
                bin.label(),
                stderr(&out)
            );
        }
    }
    let stripped = corpus("reflectoffsets", "stripped");
    let json = goprobe(&["inspect", "--json", s(&stripped.path)]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let probe = |name: &str| {
        v["probes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["probe"] == name)
            .unwrap_or_else(|| panic!("no {name} verdict: {v}"))
            .clone()
    };
    assert_eq!(probe("db.sql")["instrumentable"], true, "{v}");
    assert_eq!(probe("go.spawn")["internal"], true, "{v}");

    // A plain HTTP service has no database/sql.
    for variant in ["default", "stripped"] {
        let http = corpus("httpserver", variant);
        let out = goprobe(&["inspect", "--require", "db.sql", s(&http.path)]);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}: {}",
            http.label(),
            stderr(&out)
        );
        assert!(
            stderr(&out).contains(
                "probe db.sql is not instrumentable: function database/sql.(*DB).queryDC not in the binary"
            ),
            "{}",
            stderr(&out)
        );
        // ...which does not stop the probes it has from passing.
        let out = goprobe(&[
            "inspect",
            "--require",
            "http.server,go.panic",
            s(&http.path),
        ]);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}: {}",
            http.label(),
            stderr(&out)
        );
        let text = String::from_utf8(goprobe(&["inspect", s(&http.path)]).stdout).unwrap();
        assert!(
            text.contains("go.spawn      instrumentable (internal)"),
            "{text}"
        );
    }
}
