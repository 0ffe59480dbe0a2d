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
fn default_fields_from_dwarf_then_type_descriptors_when_stripped() {
    // Unstripped: DWARF, checked against the type descriptors; stripped: the
    // type descriptors (the binary's own metadata), checked against the table.
    for (variant, source, checked) in [
        ("default", Source::Dwarf, Source::Rtype),
        ("stripped", Source::Rtype, Source::Table),
        ("arm64-stripped", Source::Rtype, Source::Table),
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
            assert!(r.checked.contains(&checked), "{}: {r:?}", bin.label());
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
            && lines[0].ends_with("size 8\tdwarf = rtype = table"),
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
fn stripped_binary_of_a_version_not_in_the_table() {
    // The newest build whose minor is one layout group in the table: a minor
    // with patch releases split off it answers only the releases it lists.
    let table: serde_json::Value =
        serde_json::from_str(goprobe::offsets::table::BUILTIN_TABLE_JSON).unwrap();
    let groups: Vec<String> = table["stdlib"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    let bin = manifest()
        .into_iter()
        .rev()
        .find(|b| {
            let Some(minor) = goprobe::offsets::table::minor_of(&format!("go{}", b.go_version))
            else {
                return false;
            };
            b.program == "httpserver"
                && b.variant == "stripped"
                && !groups.iter().any(|g| g.starts_with(&format!("{minor}.")))
        })
        .expect("a stripped httpserver of a minor with one layout group");
    let minor = goprobe::offsets::table::minor_of(&format!("go{}", bin.go_version))
        .or_else(|| Some(format!("go{}", bin.go_version)))
        .unwrap();
    // 1) A table without the binary's minor: the type descriptors still
    // answer every field the probes need, unchecked by any table.
    let no_minor = edited_table("table-without-minor.json", |t| {
        drop_minor(t, &minor);
    });
    let out = goprobe(&["offsets", "--json", "--table", s(&no_minor), s(&bin.path)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let got = parse_ndjson(out.stdout.as_slice()).unwrap();
    assert!(got.len() >= 10);
    for r in got.values() {
        assert_eq!(
            (r.source, r.checked.as_slice()),
            (Source::Rtype, &[][..]),
            "{r:?}"
        );
    }
    // 2) A field whose struct has no descriptor in this binary (it uses no
    // database/sql): the table answers, for its minor...
    let field = "database/sql.Stmt.query";
    let out = goprobe(&["offsets", "--json", "--field", field, s(&bin.path)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = &parse_ndjson(out.stdout.as_slice()).unwrap()[field];
    assert_eq!(r.source, Source::Table, "{r:?}");
    assert!(r.table.as_ref().unwrap().exact, "{r:?}");
    // ...also for a patch release it was not generated from, saying so...
    let other = format!("{minor}.99");
    let out = goprobe(&[
        "offsets",
        "--json",
        "--go-version",
        &other,
        "--field",
        field,
        s(&bin.path),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let r = &parse_ndjson(out.stdout.as_slice()).unwrap()[field];
    let t = r.table.as_ref().unwrap();
    assert!(
        !t.exact && t.key == minor && !t.verified.is_empty(),
        "{r:?}"
    );
    assert!(
        stderr(&out).contains(&format!("from the {minor} table, verified on")),
        "{}",
        stderr(&out)
    );
    // ...which --strict-offsets refuses.
    let out = goprobe(&[
        "offsets",
        "--json",
        "--strict-offsets",
        "--go-version",
        &other,
        "--field",
        field,
        s(&bin.path),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let r = &parse_ndjson(out.stdout.as_slice()).unwrap()[field];
    assert_eq!((r.offset, r.source), (None, Source::Unknown));
    assert!(
        r.reason.as_deref().unwrap().contains("--strict-offsets"),
        "{r:?}"
    );
    // 3) An unknown minor (a future Go) stays unknown.
    let out = goprobe(&[
        "offsets",
        "--json",
        "--go-version",
        "1.99.0",
        "--field",
        field,
        s(&bin.path),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let r = &parse_ndjson(out.stdout.as_slice()).unwrap()[field];
    assert!(
        r.reason
            .as_deref()
            .unwrap()
            .contains("go1.99/amd64 not in the offsets table"),
        "{r:?}"
    );
}

#[test]
fn sources_that_disagree_are_refused() {
    // A table whose Request.Method is 8 bytes off: the stripped binary's type
    // descriptors say otherwise, and the field is refused, naming both values.
    let bin = corpus("httpserver", "stripped");
    let wrong = edited_table("table-wrong-method.json", |t| {
        for m in t["stdlib"].as_object_mut().unwrap().values_mut() {
            for l in m["archs"].as_object_mut().unwrap().values_mut() {
                l["fields"]["net/http.Request.Method"]["offset"] = serde_json::json!(8);
            }
        }
    });
    let out = goprobe(&["offsets", "--json", "--table", s(&wrong), s(&bin.path)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let r = &parse_ndjson(out.stdout.as_slice()).unwrap()["net/http.Request.Method"];
    assert_eq!((r.offset, r.source), (None, Source::Conflict), "{r:?}");
    let why = r.reason.as_deref().unwrap();
    assert!(
        why.starts_with("sources disagree: rtype says offset 0 size 16 (struct ")
            && why.contains(", table says offset 8 size 16 (struct "),
        "{why}"
    );
    assert!(
        stderr(&out).contains("net/http.Request.Method: sources disagree"),
        "{}",
        stderr(&out)
    );
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
    assert_eq!(got["runtime.g.goid"].source, Source::Rtype);
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
                    "http.server: unsupported architecture {} (supported: amd64)",
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
    let err = stderr(&out);
    assert!(err.contains(": http.server: function net/http.serverHandler.ServeHTTP not in the binary: the program does not use what the probe hooks"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");

    // A stripped HTTP server built by a patch release the table was not
    // generated from (same length: go1.26.6 -> go1.26.9): the type
    // descriptors answer, so it is instrumentable, even --strict-offsets.
    let bin = corpus("httpserver", "stripped");
    let fake = {
        let mut f = format!("go{}", bin.go_version).into_bytes();
        let last = f.len() - 1;
        f[last] = if f[last] == b'9' { b'8' } else { b'9' };
        String::from_utf8(f).unwrap()
    };
    let patched = with_fake_go_version(&bin, &fake);
    for extra in [&[][..], &["--strict-offsets"]] {
        let mut args = vec!["inspect", "--require", "http.server,http.client"];
        args.extend_from_slice(extra);
        args.push(s(&patched));
        let out = goprobe(&args);
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
    }
    // A future minor without descriptors for a needed struct (the table
    // alone would know it): refused in one short line naming the remedy.
    let no_table = edited_table("table-empty.json", |t| {
        t["stdlib"].as_object_mut().unwrap().clear();
    });
    let out = goprobe(&[
        "offsets",
        "--table",
        s(&no_table),
        "--probe",
        "db.sql",
        s(&bin.path),
    ]);
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

/// Remove every layout group of `minor` ("go1.27"): the minor's own and the
/// patch releases split off it ("go1.27.2").
fn drop_minor(table: &mut serde_json::Value, minor: &str) {
    let groups = table["stdlib"].as_object_mut().unwrap();
    let split = format!("{minor}.");
    groups.retain(|k, _| k != minor && !k.starts_with(&split));
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
        let key = goprobe::offsets::table::minor_of(&format!("go{}", http.go_version)).unwrap();
        drop_minor(t, &key);
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
    // DWARF, and from its type descriptors when stripped.
    for (variant, source) in [
        ("default", Source::Dwarf),
        ("stripped", Source::Rtype),
        ("arm64-stripped", Source::Rtype),
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
fn optional_fields_without_a_table_come_from_the_descriptors() {
    // The runtime's map internals (optional: the Traceparent lookup) are in
    // the table and, for a stripped binary, in its own type descriptors: a
    // table without them changes only what they are checked against.
    let bin = corpus("httpserver", "stripped");
    let no_maps = edited_table("table-no-map-internals.json", |t| {
        for m in t["stdlib"].as_object_mut().unwrap().values_mut() {
            for l in m["archs"].as_object_mut().unwrap().values_mut() {
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
        assert!(r.optional, "{r:?}");
        assert_eq!(
            (r.source, r.checked.as_slice()),
            (Source::Rtype, &[][..]),
            "{r:?}"
        );
    }
    // A field asked for by name that no source knows is required: exit 1.
    let out = goprobe(&[
        "offsets",
        "--field",
        "net/http.Request.NoSuchField",
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
                ": db.sql: no function it hooks is in the binary (database/sql.(*DB).queryDC and 5 more)"
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

/// The generator's last step: entries of two patch releases of one minor
/// that disagree make it fail, naming the field and both values, and leave
/// the table as it was.
#[test]
fn table_generator_fails_when_patch_releases_disagree() {
    let entry = |go: &str, off: u64| {
        serde_json::json!({
            "go": go,
            "goarch": "amd64",
            "layouts": {
                "fields": {"net/http.Request.ctx": {"offset": off, "size": 16}},
                "types": {"net/http.Request": 248}
            }
        })
        .to_string()
    };
    let a = scratch("entry-go1.23.1.json");
    let b = scratch("entry-go1.23.2.json");
    let c = scratch("entry-go1.23.3.json");
    std::fs::write(&a, entry("go1.23.1", 232)).unwrap();
    std::fs::write(&b, entry("go1.23.2", 232)).unwrap();
    std::fs::write(&c, entry("go1.23.3", 240)).unwrap();
    let table = scratch("generated-table.json");
    let _ = std::fs::remove_file(&table);
    let out = goprobe(&["offsets-table", "build", "--table", s(&table), s(&a), s(&b)]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let written = std::fs::read_to_string(&table).unwrap();
    assert!(
        written.contains("\"verified\": [\"go1.23.1\", \"go1.23.2\"]"),
        "{written}"
    );
    let out = goprobe(&["offsets-table", "merge", "--table", s(&table), s(&c)]);
    assert_ne!(out.status.code(), Some(0));
    let err = stderr(&out);
    assert!(
        err.contains("go1.23/amd64: go1.23.3 disagrees with go1.23.1, go1.23.2")
            && err.contains("net/http.Request.ctx: others 232+16, go1.23.3 240+16"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&table).unwrap(), written);
}

/// A patch release the generator did not see, of a minor whose later patch
/// releases moved some fields (the table splits it into layout groups): the
/// fields every group places alike come from the table, marked inexact with
/// every group's releases; a moved field is never answered by the table (here
/// the binary's own descriptors answer it).
#[test]
fn unseen_patch_release_of_a_split_minor_gets_the_agreed_fields() {
    let table: serde_json::Value =
        serde_json::from_str(goprobe::offsets::table::BUILTIN_TABLE_JSON).unwrap();
    let stdlib = table["stdlib"].as_object().unwrap();
    let groups_of = |minor: &str| -> Vec<&serde_json::Value> {
        stdlib
            .iter()
            .filter(|(k, _)| *k == minor || k.starts_with(&format!("{minor}.")))
            .map(|(_, v)| v)
            .collect()
    };
    let fields = |g: &serde_json::Value| g["archs"]["amd64"]["fields"].clone();
    // The fields some patch release of `minor` moved.
    let moved_in = |minor: &str| -> Vec<String> {
        let groups = groups_of(minor);
        let first = fields(groups[0]);
        first
            .as_object()
            .unwrap()
            .keys()
            .filter(|k| {
                groups
                    .iter()
                    .any(|g| fields(g)[k.as_str()] != first[k.as_str()])
            })
            .cloned()
            .collect()
    };
    // Stripped httpservers of split minors, newest first; one whose minor
    // moved fields (not only struct sizes) if there is one.
    let candidates: Vec<(CorpusBinary, String)> = manifest()
        .into_iter()
        .rev()
        .filter(|b| b.program == "httpserver" && b.variant == "stripped")
        .filter_map(|b| {
            let m = goprobe::offsets::table::minor_of(&format!("go{}", b.go_version))?;
            (groups_of(&m).len() > 1).then_some((b, m))
        })
        .collect();
    let (bin, minor) = candidates
        .iter()
        .find(|(_, m)| !moved_in(m).is_empty())
        .or(candidates.first())
        .cloned()
        .expect("a stripped httpserver of a split minor (go1.26 is split)");
    let groups = groups_of(&minor);
    let moved = moved_in(&minor);
    let unseen = format!("{minor}.99");
    let ask = |field: &str| {
        let out = goprobe(&[
            "offsets",
            "--json",
            "--go-version",
            &unseen,
            "--field",
            field,
            s(&bin.path),
        ]);
        (
            out.status.code(),
            parse_ndjson(out.stdout.as_slice()).unwrap()[field].clone(),
            stderr(&out),
        )
    };
    // No database/sql in this program: no descriptor, the table answers.
    let (code, r, err) = ask("database/sql.Stmt.query");
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(r.source, Source::Table, "{r:?}");
    let t = r.table.as_ref().unwrap();
    assert!(!t.exact && t.key == minor, "{r:?}");
    let all: usize = groups
        .iter()
        .map(|g| g["verified"].as_array().unwrap().len())
        .sum();
    assert_eq!(t.verified.len(), all, "every group's releases: {r:?}");
    for field in &moved {
        let (_, r, _) = ask(field);
        assert_ne!(
            r.source,
            Source::Table,
            "{field} moved between patch releases: {r:?}"
        );
        assert!(
            r.source == Source::Rtype
                || r.reason
                    .as_deref()
                    .unwrap_or("")
                    .contains("changed between patch releases"),
            "{field}: {r:?}"
        );
    }
}
