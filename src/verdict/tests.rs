//! Verdicts on hand-made tables and function sets.

use super::*;
use crate::offsets::Key;
use crate::offsets::table::{Entry, FieldEntry, Layouts, Table};

fn full_table(go: &str, arch: &str) -> Table {
    table_without(go, arch, &[])
}

/// Every catalog field but those in `drop`.
fn table_without(go: &str, arch: &str, drop: &[&str]) -> Table {
    let catalog = Catalog::builtin().unwrap();
    let mut l = Layouts::default();
    for (i, f) in catalog.all_fields().into_iter().enumerate() {
        if drop.contains(&f.as_str()) {
            continue;
        }
        l.fields.insert(
            f,
            FieldEntry {
                offset: 8 * i as u64,
                size: 8,
            },
        );
    }
    let mut t = Table::default();
    t.insert(Entry {
        go: Some(go.into()),
        module: None,
        version: None,
        goarch: arch.into(),
        layouts: l,
    })
    .unwrap();
    t
}

fn verdicts(go: &str, arch: &str, table: &Table, functions: &[&str]) -> Vec<Verdict> {
    verdicts_with(go, arch, table, functions, vec![])
}

fn verdicts_with(
    go: &str,
    arch: &str,
    table: &Table,
    functions: &[&str],
    modules: Vec<crate::gobin::Module>,
) -> Vec<Verdict> {
    let key = Key {
        go_version: go.into(),
        goarch: arch.into(),
        modules,
    };
    let resolver = Resolver::new(Err("no DWARF".into()), table, key);
    let has = |n: &str| Ok(functions.contains(&n));
    assess(
        Catalog::builtin().unwrap(),
        &Facts {
            goarch: arch,
            has_function: &has,
            resolver: &resolver,
        },
    )
}

/// Every function the catalog hooks, so that a binary with all of them
/// has every probe (taken from the catalog: a new probe needs no edit here).
fn all_functions() -> Vec<&'static str> {
    let catalog = Catalog::builtin().unwrap();
    let mut out: Vec<&'static str> = Vec::new();
    for h in catalog.probes.iter().flat_map(|p| &p.hooks) {
        if !out.contains(&h.function.as_str()) {
            out.push(&h.function);
        }
    }
    out
}

/// An HTTP service's functions: no database/sql.
const HTTP_ONLY: [&str; 2] = [
    "net/http.serverHandler.ServeHTTP",
    "net/http.(*Transport).roundTrip",
];

#[test]
fn all_good() {
    let t = full_table("go1.22.10", "amd64");
    let v = verdicts("go1.22.10", "amd64", &t, &all_functions());
    assert!(
        v.iter().all(|v| v.instrumentable && v.reasons.is_empty()),
        "{v:?}"
    );
    // A program without gRPC: every other probe is instrumentable.
    let no_grpc: Vec<&str> = all_functions()
        .into_iter()
        .filter(|f| !f.starts_with("google.golang.org/grpc"))
        .collect();
    let v = verdicts("go1.22.10", "amd64", &t, &no_grpc);
    let (grpc, rest): (Vec<&Verdict>, Vec<&Verdict>) =
        v.iter().partition(|v| v.probe.starts_with("grpc."));
    assert!(
        rest.iter()
            .all(|v| v.instrumentable && v.reasons.is_empty()),
        "{v:?}"
    );
    assert!(
        grpc.iter()
            .all(|v| !v.instrumentable && v.reasons[0].ends_with("not in the binary")),
        "{grpc:?}"
    );
}

/// gRPC's status.Error has `e` in old versions and `s` in new ones: the
/// probe reads whichever the binary's version has, and the one it lacks
/// is no note; a binary with neither gets both.
#[test]
fn a_field_another_version_has_instead_is_no_note() {
    let e = "google.golang.org/grpc/internal/status.Error.e";
    let st = "google.golang.org/grpc/internal/status.Error.s";
    // The gRPC fields from a module entry of the table.
    let without = |drop: &[&str]| {
        let mut t = table_without("go1.22.10", "amd64", drop);
        let mut l = Layouts::default();
        for (i, f) in Catalog::builtin()
            .unwrap()
            .all_fields()
            .into_iter()
            .enumerate()
        {
            if f.starts_with("google.golang.org/grpc") && !drop.contains(&f.as_str()) {
                l.fields.insert(
                    f,
                    FieldEntry {
                        offset: 8 * i as u64,
                        size: 8,
                    },
                );
            }
        }
        t.insert(Entry {
            go: None,
            module: Some("google.golang.org/grpc".into()),
            version: Some("v1.33.3".into()),
            goarch: "amd64".into(),
            layouts: l,
        })
        .unwrap();
        t
    };
    let grpc = crate::gobin::Module {
        path: "google.golang.org/grpc".into(),
        version: "v1.33.3".into(),
        sum: String::new(),
        replace: None,
    };
    let notes = |t: &Table| {
        verdicts_with(
            "go1.22.10",
            "amd64",
            t,
            &all_functions(),
            vec![grpc.clone()],
        )
        .into_iter()
        .find(|v| v.probe == "grpc.client")
        .expect("grpc.client")
        .notes
    };
    for (drop, other) in [(st, e), (e, st)] {
        let n = notes(&without(&[drop]));
        assert!(
            !n.iter().any(|n| n.contains(drop) || n.contains(other)),
            "{n:?}"
        );
    }
    let n = notes(&without(&[e, st]));
    for f in [e, st] {
        assert!(n.iter().any(|n| n.contains(f)), "{f}: {n:?}");
    }
}

#[test]
fn each_reason() {
    let t = full_table("go1.22.10", "amd64");
    let v = verdicts("go1.22.10", "amd64", &t, &[]);
    // Only the CPU sampler hooks no function.
    assert!(
        v.iter()
            .all(|v| v.instrumentable == (v.probe == "cpu.sample")),
        "{v:?}"
    );
    assert!(
        v[0].reasons[0].contains("function net/http.serverHandler.ServeHTTP not in the binary"),
        "{v:?}"
    );
    let v = verdicts("go1.23.0", "amd64", &t, &all_functions());
    assert!(
        v[0].reasons
            .iter()
            .any(|r| r.contains("offset of net/http.Request.Method unknown for go1.23.0/amd64")),
        "{v:?}"
    );
    // Another patch release of a table minor: instrumentable, said in a note.
    let v = verdicts("go1.22.11", "amd64", &t, &all_functions());
    assert!(v[0].instrumentable, "{v:?}");
    assert!(
        v[0].notes.iter().any(
            |n| n.contains("from the go1.22 table, verified on go1.22.10 but not on go1.22.11")
        ),
        "{v:?}"
    );
    let t386 = full_table("go1.22.10", "386");
    let v = verdicts("go1.22.10", "386", &t386, &all_functions());
    assert_eq!(v[0].reasons.len(), 1, "{v:?}");
    assert!(v[0].reasons[0].starts_with("unsupported architecture 386"));
    let t16 = full_table("go1.16.15", "amd64");
    let v = verdicts("go1.16.15", "amd64", &t16, &all_functions());
    assert!(
        v[0].reasons.iter().any(|r| r.contains("register ABI")),
        "{v:?}"
    );
}

#[test]
fn optional_fields_are_notes_and_internal_probes_are_marked() {
    let catalog = Catalog::builtin().unwrap();
    let mut t = full_table("go1.22.10", "amd64");
    // The Traceparent map internals (optional in http.server) unknown.
    let l = t
        .stdlib
        .get_mut("go1.22")
        .and_then(|m| m.archs.get_mut("amd64"))
        .unwrap();
    l.fields.retain(|f, _| !f.starts_with("runtime.hmap."));
    let v = verdicts("go1.22.10", "amd64", &t, &all_functions());
    let server = v.iter().find(|v| v.probe == "http.server").unwrap();
    assert!(server.instrumentable, "{server:?}");
    assert_eq!(server.notes.len(), 3, "{server:?}");
    assert!(
        server.notes[0].starts_with("optional offset of runtime.hmap.B unknown"),
        "{server:?}"
    );
    let spawn = v.iter().find(|v| v.probe == "go.spawn").unwrap();
    assert!(spawn.internal && catalog.probe("go.spawn").unwrap().internal);
    assert!(!server.internal);
    // Without its functions, db.sql says so once, not per field.
    let v = verdicts(
        "go1.22.10",
        "amd64",
        &full_table("go1.22.10", "amd64"),
        &HTTP_ONLY,
    );
    let db = v.iter().find(|v| v.probe == "db.sql").unwrap();
    assert!(!db.instrumentable);
    assert!(
        db.reasons
            .iter()
            .all(|r| r.starts_with("no function it hooks is in the binary")),
        "{db:?}"
    );
    assert!(db.notes.is_empty(), "{db:?}");
}

#[test]
fn hooks_attach_one_by_one() {
    // Only DB.Query/DB.Exec: no Stmt or Tx methods (the linker dropped
    // them), and a table without the Stmt and Tx fields.
    let mut t = full_table("go1.23.4", "amd64");
    let l = t
        .stdlib
        .get_mut("go1.23")
        .and_then(|m| m.archs.get_mut("amd64"))
        .unwrap();
    l.fields
        .retain(|f, _| !f.starts_with("database/sql.Stmt") && !f.starts_with("database/sql.Tx"));
    let funcs = ["database/sql.(*DB).queryDC", "database/sql.(*DB).execDC"];
    let v = verdicts("go1.23.4", "amd64", &t, &funcs);
    let db = v.iter().find(|v| v.probe == "db.sql").unwrap();
    assert!(db.instrumentable, "{db:?}");
    assert_eq!(db.notes.len(), 4, "{db:?}");
    assert!(
        db.notes[0]
            .starts_with("optional function database/sql.(*Stmt).QueryContext not in the binary"),
        "{db:?}"
    );
    // With a Stmt hook present, its fields are needed again.
    let funcs = [
        "database/sql.(*DB).queryDC",
        "database/sql.(*Stmt).QueryContext",
    ];
    let v = verdicts("go1.23.4", "amd64", &t, &funcs);
    let db = v.iter().find(|v| v.probe == "db.sql").unwrap();
    assert!(!db.instrumentable);
    assert!(
        db.reasons
            .iter()
            .any(|r| r.starts_with("offset of database/sql.Stmt.query unknown")),
        "{db:?}"
    );
    assert!(
        !db.reasons.iter().any(|r| r.contains("database/sql.Tx.")),
        "{db:?}"
    );
    // An exec-only program.
    let v = verdicts(
        "go1.23.4",
        "amd64",
        &t,
        &funcs[..0]
            .iter()
            .chain(&["database/sql.(*DB).execDC"])
            .copied()
            .collect::<Vec<_>>(),
    );
    assert!(
        v.iter()
            .find(|v| v.probe == "db.sql")
            .unwrap()
            .instrumentable
    );
}
