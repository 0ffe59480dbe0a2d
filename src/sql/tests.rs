//! Statements as real programs send them — the PostgreSQL, MySQL and
//! SQLite manuals' examples, what lib/pq, pgx and database/sql programs
//! run, what ORMs (GORM, sqlx users) generate, what monitoring agents ask
//! — with the span name and collection each must get.

use super::*;

/// (statement, span name with db.system.name "postgresql", db.collection.name)
const STATEMENTS: &[(&str, &str, Option<&str>)] = &[
    // Plain DML, as written by hand.
    (
        "SELECT id, name FROM users WHERE id = $1",
        "SELECT users",
        Some("users"),
    ),
    (
        "select count(*) from public.users",
        "SELECT public.users",
        Some("public.users"),
    ),
    (
        "INSERT INTO users (name) VALUES ($1)",
        "INSERT users",
        Some("users"),
    ),
    (
        "UPDATE accounts SET balance = balance - 100.00 WHERE name = 'Alice'",
        "UPDATE accounts",
        Some("accounts"),
    ),
    (
        "DELETE FROM users WHERE id = $1",
        "DELETE users",
        Some("users"),
    ),
    // Functions in the select list: their FROM is not the query's.
    (
        "SELECT *, extract(epoch from now() - last_archived_time) AS age FROM pg_stat_archiver",
        "SELECT pg_stat_archiver",
        Some("pg_stat_archiver"),
    ),
    (
        "select substring(name from 1 for 3) from people",
        "SELECT people",
        Some("people"),
    ),
    (
        "SELECT trim(both 'x' from name) FROM people",
        "SELECT people",
        Some("people"),
    ),
    ("SELECT 'FROM users' AS x", "SELECT", None),
    // No table at all.
    ("SELECT 1", "SELECT", None),
    ("SELECT now()", "SELECT", None),
    (
        "SELECT current_setting('server_version_num')",
        "SELECT",
        None,
    ),
    ("SELECT pg_advisory_lock($1)", "SELECT", None),
    ("SELECT * FROM generate_series(1, 10)", "SELECT", None),
    // Quoted and schema-qualified names (GORM, MySQL, SQLite, SQL Server).
    (
        "SELECT * FROM \"users\" WHERE \"users\".\"deleted_at\" IS NULL ORDER BY \"users\".\"id\" LIMIT 1",
        "SELECT users",
        Some("users"),
    ),
    (
        "INSERT INTO \"users\" (\"created_at\",\"name\") VALUES ($1,$2) RETURNING \"id\"",
        "INSERT users",
        Some("users"),
    ),
    (
        "UPDATE \"users\" SET \"name\"=$1,\"updated_at\"=$2 WHERE \"id\" = $3",
        "UPDATE users",
        Some("users"),
    ),
    (
        "DELETE FROM \"users\" WHERE \"users\".\"id\" = $1",
        "DELETE users",
        Some("users"),
    ),
    (
        "SELECT * FROM \"public\".\"users\"",
        "SELECT public.users",
        Some("public.users"),
    ),
    (
        "SELECT `id`, `name` FROM `app`.`users` WHERE `id` = ?",
        "SELECT app.users",
        Some("app.users"),
    ),
    (
        "INSERT INTO 'contacts' (name) VALUES (?)",
        "INSERT contacts",
        Some("contacts"),
    ),
    (
        "SELECT * FROM [dbo].[Users] WHERE Id = @p1",
        "SELECT dbo.Users",
        Some("dbo.Users"),
    ),
    (
        "SELECT * FROM \"my table\"",
        "SELECT my table",
        Some("my table"),
    ),
    // DDL: the object type is part of the operation.
    (
        "DROP TABLE contacts",
        "DROP TABLE contacts",
        Some("contacts"),
    ),
    (
        "DROP TABLE IF EXISTS contacts CASCADE",
        "DROP TABLE contacts",
        Some("contacts"),
    ),
    (
        "CREATE INDEX idx_users_email ON users (email)",
        "CREATE INDEX users",
        Some("users"),
    ),
    (
        "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS idx ON ONLY public.users USING btree (email)",
        "CREATE INDEX public.users",
        Some("public.users"),
    ),
    (
        "CREATE TABLE IF NOT EXISTS \"public\".\"users\" (\"id\" bigserial,PRIMARY KEY (\"id\"))",
        "CREATE TABLE public.users",
        Some("public.users"),
    ),
    (
        "CREATE TABLE films (code char(5) CONSTRAINT firstkey PRIMARY KEY, title varchar(40) NOT NULL)",
        "CREATE TABLE films",
        Some("films"),
    ),
    (
        "CREATE TEMP TABLE tmp_x (id int)",
        "CREATE TABLE tmp_x",
        Some("tmp_x"),
    ),
    (
        "ALTER TABLE distributors ADD COLUMN address varchar(30)",
        "ALTER TABLE distributors",
        Some("distributors"),
    ),
    ("DROP INDEX IF EXISTS idx_users_email", "DROP INDEX", None),
    (
        "CREATE OR REPLACE VIEW comedies AS SELECT * FROM films WHERE kind = 'Comedy'",
        "CREATE VIEW comedies",
        Some("comedies"),
    ),
    ("CREATE SCHEMA IF NOT EXISTS audit", "CREATE SCHEMA", None),
    (
        "CREATE EXTENSION IF NOT EXISTS pg_trgm",
        "CREATE EXTENSION",
        None,
    ),
    (
        "TRUNCATE TABLE bigtable, fattable RESTART IDENTITY",
        "TRUNCATE bigtable",
        Some("bigtable"),
    ),
    (
        "TRUNCATE othertable CASCADE",
        "TRUNCATE othertable",
        Some("othertable"),
    ),
    // Joins, subqueries, CTEs, unions: the first table named.
    (
        "SELECT u.id, o.total FROM users u JOIN orders o ON o.user_id = u.id",
        "SELECT users",
        Some("users"),
    ),
    (
        "SELECT * FROM (SELECT id FROM events ORDER BY id DESC LIMIT 10) sub",
        "SELECT events",
        Some("events"),
    ),
    (
        "with recent as (select * from orders where created_at > now() - interval '1 day') select count(*) from recent",
        "SELECT orders",
        Some("orders"),
    ),
    (
        "(SELECT a FROM t1) UNION (SELECT a FROM t2)",
        "SELECT t1",
        Some("t1"),
    ),
    (
        "INSERT INTO events (kind, payload) SELECT kind, payload FROM staging_events",
        "INSERT events",
        Some("events"),
    ),
    (
        "INSERT INTO public.audit_log(ts, msg) VALUES (now(), 'x')",
        "INSERT public.audit_log",
        Some("public.audit_log"),
    ),
    (
        "UPDATE ONLY films SET kind = 'Dramatic' WHERE kind = 'Drama'",
        "UPDATE films",
        Some("films"),
    ),
    (
        "DELETE FROM ONLY films WHERE producer_id IN (SELECT id FROM producers WHERE name = 'foo')",
        "DELETE films",
        Some("films"),
    ),
    // MySQL and SQLite forms.
    (
        "REPLACE INTO kv (k, v) VALUES (?, ?)",
        "REPLACE kv",
        Some("kv"),
    ),
    (
        "INSERT INTO t1 (a,b,c) VALUES (1,2,3) ON DUPLICATE KEY UPDATE c=c+1",
        "INSERT t1",
        Some("t1"),
    ),
    (
        "INSERT IGNORE INTO logs (msg) VALUES (?)",
        "INSERT logs",
        Some("logs"),
    ),
    ("PRAGMA foreign_keys = ON", "PRAGMA", None),
    // MERGE (PostgreSQL 15, SQL Server).
    (
        "MERGE INTO customer_account ca USING recent_transactions t ON t.customer_id = ca.customer_id \
         WHEN MATCHED THEN UPDATE SET balance = balance + transaction_value",
        "MERGE customer_account",
        Some("customer_account"),
    ),
    // Maintenance and session statements.
    (
        "VACUUM (VERBOSE, ANALYZE) onek",
        "VACUUM onek",
        Some("onek"),
    ),
    (
        "EXPLAIN ANALYZE SELECT * FROM foo WHERE i = 4",
        "EXPLAIN foo",
        Some("foo"),
    ),
    (
        "COPY country TO STDOUT (DELIMITER '|')",
        "COPY country",
        Some("country"),
    ),
    (
        "COPY films (code, title) FROM '/tmp/films.csv'",
        "COPY films",
        Some("films"),
    ),
    (
        "LOCK TABLE films IN SHARE ROW EXCLUSIVE MODE",
        "LOCK films",
        Some("films"),
    ),
    ("SET search_path TO my_schema, public", "SET", None),
    ("SHOW server_version", "SHOW", None),
    ("LISTEN virtual", "LISTEN", None),
    ("NOTIFY virtual, 'This is the payload'", "NOTIFY", None),
    ("BEGIN", "BEGIN", None),
    ("COMMIT", "COMMIT", None),
    ("ROLLBACK", "ROLLBACK", None),
    ("SAVEPOINT my_savepoint", "SAVEPOINT", None),
    ("CALL do_db_maintenance()", "CALL", None),
    // Comments before the statement (sqlcommenter puts trace context there).
    (
        "-- fetch a user\nSELECT id FROM users",
        "SELECT users",
        Some("users"),
    ),
    (
        "/* traceparent='00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' */ SELECT * FROM orders",
        "SELECT orders",
        Some("orders"),
    ),
    // No keyword, no operation: the span is named after the system.
    ("SYNTAX ERROR HERE", "postgresql", None),
    ("selec * from users", "postgresql", None),
    ("   ", "postgresql", None),
    ("42", "postgresql", None),
];

#[test]
fn real_world_statements_get_their_names_and_collections() {
    assert!(STATEMENTS.len() >= 40);
    let mut wrong = Vec::new();
    for (q, name, collection) in STATEMENTS {
        let s = shape(q);
        let got = span_name(&s, "postgresql");
        if got != *name || s.collection.as_deref() != *collection {
            wrong.push(format!(
                "{q:?}: got {got:?} / {:?}, want {name:?} / {collection:?}",
                s.collection
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn literals_become_placeholders() {
    for (q, want) in [
        (
            "SELECT * FROM users WHERE email = 'a@b.c' AND age > 42",
            "SELECT * FROM users WHERE email = ? AND age > ?",
        ),
        (
            "UPDATE t SET pw = 'it''s secret', n = -1.5e3 WHERE id = $1",
            "UPDATE t SET pw = ?, n = -? WHERE id = $1",
        ),
        (
            "SELECT $tag$ secret $tag$, $$x$$, E'a\\'b'",
            "SELECT ?, ?, ?",
        ),
        (
            "SELECT x FROM t1 WHERE c IN (1, 2, 0x1F)",
            "SELECT x FROM t1 WHERE c IN (?, ?, ?)",
        ),
        (
            "SELECT \"col1\" FROM \"t\" WHERE a = :name AND b = @p1 AND c = ?",
            "SELECT \"col1\" FROM \"t\" WHERE a = :name AND b = @p1 AND c = ?",
        ),
        (
            "/* keep 'comments' */ SELECT 1 -- and 2\n",
            "/* keep 'comments' */ SELECT ? -- and 2\n",
        ),
        ("SELECT a::int FROM t", "SELECT a::int FROM t"),
        (
            "INSERT INTO t VALUES ('unterminated",
            "INSERT INTO t VALUES (?",
        ),
    ] {
        assert_eq!(sanitize(q, false), want, "{q}");
    }
    // MySQL: "x" is a string.
    assert_eq!(
        sanitize("SELECT * FROM `t` WHERE name = \"bob\"", true),
        "SELECT * FROM `t` WHERE name = ?"
    );
}

#[test]
fn tokens_never_panic_on_odd_input() {
    for q in [
        "'", "\"", "$", "$a", "$a$", "/*", "--", "[", "0x", "1e", "1e+", ".5", "é'ü'", "\u{0}",
    ] {
        let _ = shape(q);
        let _ = sanitize(q, true);
    }
}
