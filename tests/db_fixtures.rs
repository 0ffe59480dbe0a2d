//! The database/sql fixtures goprobe's db.sql end-to-end tests attach to,
//! checked without goprobe: dbserver (lib/pq against a throwaway PostgreSQL)
//! and dbfake (its own in-process driver) answer every route with the
//! status the e2e tests expect and really change the data, and their
//! binaries keep the database/sql functions the probes hook.
//!
//! Needs the corpus (`tests/fixtures/build-corpus.sh --all`) and PostgreSQL
//! (`scripts/setup.sh`); fails, never skips, when either is missing.

mod common;

use common::{Postgres, Server, corpus_binary, get_response, manifest};

/// Look up a user's name by id, through something other than the route
/// under test where possible.
type NameOf<'a> = &'a dyn Fn(i64) -> Option<String>;

/// GET `path`, assert the status, return the body.
fn expect(srv: &Server, path: &str, status: u16) -> String {
    expect_at(&srv.addr, path, status)
}

fn expect_at(addr: &str, path: &str, status: u16) -> String {
    let (got, resp) = get_response(addr, path);
    assert_eq!(got, status, "GET {path}: {resp}");
    resp.split_once("\r\n\r\n")
        .map(|(_, body)| body.to_owned())
        .unwrap_or_default()
}

/// Hit every route in the order an e2e test would and check each one's
/// status and effect. The fixture seeded row 1 with name "seed" on start.
fn check_routes(srv: &Server, name_of: NameOf) {
    assert_eq!(name_of(1).as_deref(), Some("seed"), "seed row");

    assert!(expect(srv, "/hello", 200).contains("hello"));

    let body = expect(srv, "/db/query?id=1", 200);
    assert!(body.contains("1\tseed\n"), "/db/query?id=1: {body}");
    assert!(body.contains("1 rows"), "/db/query?id=1: {body}");

    // The seed is row 1, so the first insert is row 2.
    assert_eq!(name_of(2), None);
    let body = expect(srv, "/db/exec?name=inserted", 200);
    assert!(body.contains("inserted 1"), "/db/exec: {body}");
    assert_eq!(
        name_of(2).as_deref(),
        Some("inserted"),
        "row /db/exec added"
    );

    let body = expect(srv, "/db/prepared?id=2", 200);
    assert!(body.contains("\"inserted\""), "/db/prepared?id=2: {body}");

    let body = expect(srv, "/db/tx?id=1&name=renamed", 200);
    assert!(body.contains("committed, 2 users"), "/db/tx: {body}");
    assert_eq!(name_of(1).as_deref(), Some("renamed"), "/db/tx committed");

    let body = expect(srv, "/db/rollback?id=1", 200);
    assert!(body.contains("rolled back"), "/db/rollback: {body}");
    assert_eq!(
        name_of(1).as_deref(),
        Some("renamed"),
        "/db/rollback deleted row 1 for good"
    );

    let body = expect(srv, "/db/fail", 500);
    assert!(body.contains("no_such_table"), "/db/fail: {body}");

    let body = expect(srv, "/db/three?id=2", 200);
    assert!(body.contains("2 users"), "/db/three: {body}");
    assert_eq!(name_of(2).as_deref(), Some("three"), "/db/three's UPDATE");

    // net/http recovers the panic and drops the connection unanswered.
    let (status, resp) = get_response(&srv.addr, "/panic");
    assert_eq!(status, 0, "/panic answered: {resp}");

    let body = expect(srv, "/recovered", 200);
    assert!(body.contains("recovered on purpose"), "/recovered: {body}");

    // Still serving after the panic.
    expect(srv, "/hello", 200);
}

/// dbserver of Go `go` in `variant` against a fresh PostgreSQL, checked
/// through psql.
fn dbserver(go: &str, variant: &str) {
    let pg = Postgres::start();
    let bin = corpus_binary(go, "dbserver", variant);
    let dsn = pg.dsn();
    let srv = Server::start_args(&bin.binary, &["-dsn", &dsn]);
    let name_of = |id: i64| {
        let out = pg.psql(&format!("SELECT name FROM users WHERE id = {id}"));
        (!out.is_empty()).then_some(out)
    };
    check_routes(&srv, &name_of);
    assert_eq!(pg.psql("SELECT count(*) FROM users"), "2");
}

/// dbfake of Go `go`: its data is only visible through its routes, so the
/// oracle is /db/query.
fn dbfake(go: &str, variant: &str) {
    let bin = corpus_binary(go, "dbfake", variant);
    let srv = Server::start(&bin.binary);
    let name_of = |id: i64| {
        let body = expect_at(&srv.addr, &format!("/db/query?id={id}"), 200);
        let prefix = format!("{id}\t");
        body.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map(str::to_owned)
    };
    check_routes(&srv, &name_of);
}

#[test]
fn dbserver_go1_19() {
    dbserver("1.19", "default");
}

#[test]
fn dbserver_go1_26() {
    dbserver("1.26", "default");
}

#[test]
fn dbserver_go1_26_pie_stripped() {
    dbserver("1.26", "pie-stripped");
}

#[test]
fn dbfake_go1_26() {
    dbfake("1.26", "default");
}

#[test]
fn dbfake_go1_27() {
    dbfake("1.27", "default");
}

#[test]
fn dbfake_go1_27_stripped() {
    dbfake("1.27", "stripped");
}

/// Two servers at once do not share a port, directory or data.
#[test]
fn postgres_instances_are_independent() {
    let a = Postgres::start();
    let b = Postgres::start();
    assert_ne!(a.port(), b.port());
    a.psql("CREATE TABLE only_in_a (x int)");
    assert_eq!(
        a.psql("SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'"),
        "1"
    );
    assert_eq!(
        b.psql("SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'"),
        "0"
    );
}

/// httpserver's /recovered: the handler's own recover turns the panic into
/// a normal 200.
#[test]
fn httpserver_recovered_route() {
    let bin = corpus_binary("1.26", "httpserver", "default");
    let srv = Server::start(&bin.binary);
    let body = expect(&srv, "/recovered", 200);
    assert!(body.contains("recovered on purpose"), "{body}");
    let (status, _) = get_response(&srv.addr, "/panic");
    assert_eq!(status, 0);
}

/// The two fixtures serve the same routes from the same source file.
#[test]
fn dbserver_and_dbfake_share_app_go() {
    let programs = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/programs");
    let read = |p: &str| {
        std::fs::read(format!("{programs}/{p}/app.go"))
            .unwrap_or_else(|e| panic!("{p}/app.go: {e}"))
    };
    assert!(
        read("dbserver") == read("dbfake"),
        "tests/fixtures/programs/dbserver/app.go and dbfake/app.go differ: keep them identical"
    );
}

/// Every database/sql fixture binary keeps, as symbols, the functions the
/// db.sql probes hook, and the corpus has dbfake wherever it has httpserver.
#[test]
fn db_fixtures_keep_hooked_functions() {
    use object::{Object, ObjectSymbol};
    const HOOKED: &[&str] = &[
        "database/sql.(*DB).queryDC",
        "database/sql.(*DB).execDC",
        "database/sql.(*Stmt).QueryContext",
        "database/sql.(*Stmt).ExecContext",
        "database/sql.(*Tx).Commit",
        "database/sql.(*Tx).rollback",
    ];
    let all = manifest();
    let mut checked = 0;
    for e in all
        .iter()
        .filter(|e| e.program == "dbserver" || e.program == "dbfake")
        .filter(|e| !e.stripped())
    {
        let data = std::fs::read(&e.path).expect("read binary");
        let file = object::File::parse(&*data).expect("ELF");
        let names: std::collections::HashSet<&str> =
            file.symbols().filter_map(|s| s.name().ok()).collect();
        for f in HOOKED {
            assert!(names.contains(f), "{}: no symbol {f}", e.label());
        }
        checked += 1;
    }
    for e in all.iter().filter(|e| e.program == "httpserver") {
        assert!(
            all.iter().any(|d| d.program == "dbfake"
                && d.go_version == e.go_version
                && d.variant == e.variant),
            "corpus has httpserver but no dbfake for go{} {}: rebuild it",
            e.go_version,
            e.variant
        );
    }
    assert!(checked > 0, "no dbserver or dbfake binaries in the corpus");
}
