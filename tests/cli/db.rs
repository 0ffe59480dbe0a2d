//! `goprobe record` on real Go services using database/sql: lib/pq against
//! a real PostgreSQL (dbserver), and an in-process driver (dbfake). Needs
//! root and PostgreSQL (scripts/setup.sh installs it).

use std::time::Duration;

use goprobe::span::{AttrValue, Span, SpanKind, StatusCode};

use crate::common;
use crate::{spans, start};

/// One database call: span name, operation, query text, hooked function.
type Call = (
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static str,
);

/// Each route, its status, and the database calls it makes, in order.
const ROUTES: &[(&str, u16, &[Call])] = &[
    ("/hello", 200, &[]),
    (
        "/db/query",
        200,
        &[(
            "SELECT users",
            "SELECT",
            Some("SELECT id, name FROM users WHERE id = $1"),
            "database/sql.(*DB).queryDC",
        )],
    ),
    (
        "/db/exec",
        200,
        &[(
            "INSERT users",
            "INSERT",
            Some("INSERT INTO users (name) VALUES ($1)"),
            "database/sql.(*DB).execDC",
        )],
    ),
    (
        "/db/prepared",
        200,
        &[(
            "SELECT users",
            "SELECT",
            Some("SELECT name FROM users WHERE id = $1"),
            "database/sql.(*Stmt).QueryContext",
        )],
    ),
    (
        "/db/tx",
        200,
        &[
            (
                "UPDATE users",
                "UPDATE",
                Some("UPDATE users SET name = $1 WHERE id = $2"),
                "database/sql.(*DB).execDC",
            ),
            (
                "SELECT users",
                "SELECT",
                Some("SELECT count(*) FROM users"),
                "database/sql.(*DB).queryDC",
            ),
            ("COMMIT", "COMMIT", None, "database/sql.(*Tx).Commit"),
        ],
    ),
    (
        "/db/rollback",
        200,
        &[
            (
                "DELETE users",
                "DELETE",
                Some("DELETE FROM users WHERE id = $1"),
                "database/sql.(*DB).execDC",
            ),
            ("ROLLBACK", "ROLLBACK", None, "database/sql.(*Tx).rollback"),
        ],
    ),
    (
        "/db/fail",
        500,
        &[(
            "SELECT no_such_table",
            "SELECT",
            Some("SELECT * FROM no_such_table"),
            "database/sql.(*DB).queryDC",
        )],
    ),
    (
        "/db/three",
        200,
        &[
            (
                "SELECT users",
                "SELECT",
                Some("SELECT id, name FROM users WHERE id = $1"),
                "database/sql.(*DB).queryDC",
            ),
            (
                "UPDATE users",
                "UPDATE",
                Some("UPDATE users SET name = $1 WHERE id = $2"),
                "database/sql.(*DB).execDC",
            ),
            (
                "SELECT users",
                "SELECT",
                Some("SELECT count(*) FROM users"),
                "database/sql.(*DB).queryDC",
            ),
        ],
    ),
];

/// Every call appears once, as a child of the server span of the request
/// that made it, with the semantic-convention attributes; the failing query
/// has status error and the driver's error type.
fn calls_are_children(program: &str, go: &str, variant: &str) {
    common::require_root();
    let pg = (program == "dbserver").then(common::Postgres::start);
    let entry = common::corpus_binary(go, program, variant);
    let dsn = pg
        .as_ref()
        .map(|p| p.dsn())
        .unwrap_or_else(|| "fakedb".into());
    let server = common::Server::start_args(&entry.binary, &["-dsn", &dsn]);
    let pid = server.pid().to_string();
    let run = start(&["record", "--pid", &pid]);
    for (path, status, _) in ROUTES {
        assert_eq!(common::get(&server.addr, path), *status, "{path}");
    }
    std::thread::sleep(Duration::from_millis(300));
    run.interrupt();
    let (code, out, err) = run.finish();
    assert_eq!(code, 0, "{err}");
    let all = spans(&out);
    let label = format!("{program} {go} {variant}");
    let want_calls: usize = ROUTES.iter().map(|r| r.2.len()).sum();
    assert_eq!(
        all.len(),
        ROUTES.len() + want_calls,
        "{label}: {out}\n{err}"
    );
    assert!(
        err.contains(&format!("of which {want_calls} database")),
        "{label}: {err}"
    );
    for (path, status, calls) in ROUTES {
        let server_span = all
            .iter()
            .find(|s| {
                s.kind == SpanKind::Server
                    && s.attributes.get("url.path") == Some(&AttrValue::from(*path))
            })
            .unwrap_or_else(|| panic!("{label}: no server span for {path}"));
        assert_eq!(
            server_span.attributes["http.response.status_code"],
            AttrValue::Int(i64::from(*status))
        );
        let mut children: Vec<&Span> = all
            .iter()
            .filter(|s| s.parent_span_id == Some(server_span.span_id))
            .collect();
        children.sort_by_key(|s| s.start_time_unix_nano);
        assert_eq!(children.len(), calls.len(), "{label} {path}: {children:?}");
        for (span, (name, op, query, function)) in children.iter().zip(calls.iter()) {
            let what = format!("{label} {path} {name}");
            assert_eq!(span.name, *name, "{what}");
            assert_eq!(span.kind, SpanKind::Client, "{what}");
            assert_eq!(span.trace_id, server_span.trace_id, "{what}");
            assert!(
                server_span.start_time_unix_nano <= span.start_time_unix_nano
                    && span.end_time_unix_nano <= server_span.end_time_unix_nano,
                "{what}"
            );
            let a = &span.attributes;
            assert_eq!(a["db.operation.name"], AttrValue::from(*op), "{what}");
            assert_eq!(
                a["code.function.name"],
                AttrValue::from(*function),
                "{what}"
            );
            match query {
                Some(q) => assert_eq!(a["db.query.text"], AttrValue::from(*q), "{what}"),
                None => assert!(!a.contains_key("db.query.text"), "{what}"),
            }
            match &pg {
                Some(pg) => {
                    assert_eq!(a["db.system.name"], AttrValue::from("postgresql"), "{what}");
                    assert_eq!(a["server.address"], AttrValue::from("127.0.0.1"), "{what}");
                    assert_eq!(
                        a["server.port"],
                        AttrValue::Int(i64::from(pg.port())),
                        "{what}"
                    );
                }
                None => {
                    assert_eq!(a["db.system.name"], AttrValue::from("other_sql"), "{what}");
                    assert!(!a.contains_key("server.address"), "{what}");
                }
            }
            if *path == "/db/fail" {
                assert_eq!(span.status.code, StatusCode::Error, "{what}");
                let ty = if pg.is_some() {
                    "*pq.Error"
                } else {
                    "*main.Error"
                };
                assert_eq!(a["error.type"], AttrValue::from(ty), "{what}");
            } else {
                assert_eq!(span.status.code, StatusCode::Unset, "{what}");
                assert!(!a.contains_key("error.type"), "{what}");
            }
        }
    }
}

#[test]
fn postgres_go119() {
    calls_are_children("dbserver", "1.19", "default");
}

#[test]
fn postgres_go122_stripped() {
    calls_are_children("dbserver", "1.22", "stripped");
}

#[test]
fn postgres_go126() {
    calls_are_children("dbserver", "1.26", "pie");
    calls_are_children("dbserver", "1.26", "pie-stripped");
}

/// The in-process driver: for toolchains where lib/pq might not build.
#[test]
fn in_process_driver_go127() {
    calls_are_children("dbfake", "1.27", "default");
    calls_are_children("dbfake", "1.27", "stripped");
}

/// `inspect --require db.sql` passes on the database services, stripped too.
#[test]
fn inspect_requires_db_probe() {
    for (program, go, variant) in [
        ("dbserver", "1.19", "stripped"),
        ("dbfake", "1.27", "pie-stripped"),
    ] {
        let entry = common::corpus_binary(go, program, variant);
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_goprobe"))
            .args(["inspect", "--require", "db.sql,go.panic,http.server"])
            .arg(&entry.binary)
            .output()
            .expect("run");
        assert!(out.status.success(), "{program} {go} {variant}: {out:?}");
    }
}
