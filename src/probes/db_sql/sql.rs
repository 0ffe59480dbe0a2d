//! What the `db_sql` family knows about database/sql calls beyond the
//! bytes its programs read: which database system a driver talks to, and
//! where the server is (from a DSN). The operation and table a query names
//! are [`crate::sql`]'s.

/// `db.system.name` for a driver, from its Go type (`*pq.Driver`) and,
/// when known, the full import path of the type's package. Unknown drivers
/// are `other_sql`, as the semantic conventions say.
pub fn system_name(type_name: &str, package_path: Option<&str>) -> &'static str {
    let pkg = type_name
        .trim_start_matches('*')
        .rsplit_once('.')
        .map_or("", |(p, _)| p);
    let path = package_path.unwrap_or("");
    let known: &[(&str, &str, &str)] = &[
        // (import path, package name, system)
        ("github.com/lib/pq", "pq", "postgresql"),
        ("github.com/jackc/pgx", "stdlib", "postgresql"),
        ("github.com/mattn/go-sqlite3", "sqlite3", "sqlite"),
        ("modernc.org/sqlite", "sqlite", "sqlite"),
        ("github.com/go-sql-driver/mysql", "mysql", "mysql"),
        (
            "github.com/microsoft/go-mssqldb",
            "mssql",
            "microsoft.sql_server",
        ),
        (
            "github.com/denisenkom/go-mssqldb",
            "mssql",
            "microsoft.sql_server",
        ),
        ("github.com/sijms/go-ora", "go_ora", "oracle.db"),
        (
            "github.com/ClickHouse/clickhouse-go",
            "clickhouse",
            "clickhouse",
        ),
    ];
    for (import, name, system) in known {
        // The import path decides when it is known; otherwise the package
        // name must be distinctive on its own (not pgx's generic "stdlib").
        if !path.is_empty() {
            if path == *import || path.starts_with(&format!("{import}/")) {
                return system;
            }
        } else if pkg == *name && *name != "stdlib" {
            return system;
        }
    }
    "other_sql"
}

/// `server.address` and `server.port` from a data source name, in URL form
/// (`postgres://user:pass@host:5432/db?x=y`) or key/value form
/// (`host=h port=5432 user=u`). The DSN itself (it may hold a password) is
/// never returned.
pub fn server_from_dsn(dsn: &str) -> Option<(String, Option<u16>)> {
    let dsn = dsn.trim();
    if let Some((_, rest)) = dsn.split_once("://") {
        let authority = rest.split(['/', '?']).next().unwrap_or("");
        let hostport = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        // Several hosts (failover lists): the first one.
        let hostport = hostport.split(',').next().unwrap_or("");
        let (host, port) = crate::otel::split_host_port(hostport)?;
        return Some((host.to_owned(), port.and_then(|p| u16::try_from(p).ok())));
    }
    let mut host = None;
    let mut port = None;
    for kv in dsn.split_whitespace() {
        match kv.split_once('=') {
            Some(("host", v)) => host = Some(v.trim_matches('\'').to_owned()),
            Some(("port", v)) => port = v.trim_matches('\'').parse().ok(),
            _ => {}
        }
    }
    host.filter(|h| !h.is_empty()).map(|h| (h, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systems() {
        assert_eq!(
            system_name("*pq.Driver", Some("github.com/lib/pq")),
            "postgresql"
        );
        assert_eq!(system_name("*pq.Driver", None), "postgresql");
        assert_eq!(
            system_name("*stdlib.Driver", Some("github.com/jackc/pgx/v5/stdlib")),
            "postgresql"
        );
        assert_eq!(system_name("*stdlib.Driver", None), "other_sql");
        assert_eq!(system_name("*sqlite3.SQLiteDriver", None), "sqlite");
        assert_eq!(system_name("*main.fakeDriver", Some("main")), "other_sql");
        assert_eq!(
            system_name("*pq.Driver", Some("example.com/pq")),
            "other_sql"
        );
    }

    #[test]
    fn dsns() {
        assert_eq!(
            server_from_dsn("postgres://u:secret@127.0.0.1:5433/db?sslmode=disable"),
            Some(("127.0.0.1".into(), Some(5433)))
        );
        assert_eq!(
            server_from_dsn("postgres://db.example/x"),
            Some(("db.example".into(), None))
        );
        assert_eq!(
            server_from_dsn("postgresql://[::1]:5432/x"),
            Some(("::1".into(), Some(5432)))
        );
        assert_eq!(
            server_from_dsn("host=10.0.0.5 port=6432 user=u password=p dbname=d"),
            Some(("10.0.0.5".into(), Some(6432)))
        );
        assert_eq!(server_from_dsn("user=u dbname=d"), None);
        assert_eq!(server_from_dsn("postgres:///db"), None);
    }
}
