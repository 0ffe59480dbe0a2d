//! `goprobe record` on a service that uses database/sql only through
//! DB.QueryContext and DB.ExecContext (the dbonly fixture): the linker drops
//! the (*Stmt) and (*Tx) methods, and db.sql attaches the hooks that are
//! there. Every call is one database span, stripped builds too. Needs root.

use std::time::Duration;

use goprobe::span::{AttrValue, SpanKind};

use crate::common;
use crate::{spans, start};

fn every_call_is_one_span(go: &str, variant: &str) {
    common::require_root();
    let entry = common::corpus_binary(go, "dbonly", variant);
    let label = format!("dbonly {go} {variant}");
    // The optional paths are absent from the binary, and the probe is still usable.
    let inspect = std::process::Command::new(env!("CARGO_BIN_EXE_goprobe"))
        .args(["inspect", "--require", "db.sql,http.server"])
        .arg(&entry.binary)
        .output()
        .expect("run inspect");
    let text = String::from_utf8_lossy(&inspect.stdout);
    assert!(inspect.status.success(), "{label}: {inspect:?}");
    assert!(
        text.contains(
            "note: optional function database/sql.(*Stmt).QueryContext not in the binary"
        ),
        "{label}: {text}"
    );
    let server = common::Server::start(&entry.binary);
    let pid = server.pid().to_string();
    let run = start(&["record", "--pid", &pid, "--probes", "http.server,db.sql"]);
    const N: usize = 3;
    for _ in 0..N {
        assert_eq!(common::get(&server.addr, "/query"), 200, "{label}");
        assert_eq!(common::get(&server.addr, "/exec"), 200, "{label}");
    }
    std::thread::sleep(Duration::from_millis(300));
    run.interrupt();
    let (code, out, err) = run.finish();
    assert_eq!(code, 0, "{label}: {err}");
    let all = spans(&out);
    let db: Vec<_> = all.iter().filter(|s| s.kind == SpanKind::Client).collect();
    let servers: Vec<_> = all.iter().filter(|s| s.kind == SpanKind::Server).collect();
    assert_eq!(servers.len(), 2 * N, "{label}: {out}\n{err}");
    assert_eq!(db.len(), 2 * N, "{label}: {out}\n{err}");
    for (text, function, count) in [
        (
            "SELECT id FROM users WHERE id = $1",
            "database/sql.(*DB).queryDC",
            N,
        ),
        (
            "UPDATE users SET name = $1 WHERE id = $2",
            "database/sql.(*DB).execDC",
            N,
        ),
    ] {
        let matching: Vec<_> = db
            .iter()
            .filter(|s| s.attributes.get("db.query.text") == Some(&AttrValue::from(text)))
            .collect();
        assert_eq!(matching.len(), count, "{label}: {text}: {db:?}");
        for s in matching {
            assert_eq!(
                s.attributes["code.function.name"],
                AttrValue::from(function),
                "{label}"
            );
            // Each call belongs to the request that made it.
            assert!(
                servers.iter().any(|p| Some(p.span_id) == s.parent_span_id),
                "{label}: {s:?}"
            );
        }
    }
}

#[test]
fn query_and_exec_only_go119() {
    every_call_is_one_span("1.19", "default");
    every_call_is_one_span("1.19", "stripped");
}

#[test]
fn query_and_exec_only_go122() {
    every_call_is_one_span("1.22", "stripped");
}

#[test]
fn query_and_exec_only_go127() {
    every_call_is_one_span("1.27", "default");
    every_call_is_one_span("1.27", "pie-stripped");
}
