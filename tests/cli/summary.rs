//! `goprobe convert --to summary` and `record --summary`: the per-route
//! table, its percentiles against an independent nearest-rank computation
//! over known durations, its order and alignment, and the table a real
//! recording prints when it ends.

use std::time::Duration;

use serde_json::{Value, json};

use crate::synth::{Rng, assert_ok, convert, stdout};
use crate::{common, start};

/// The ⌈p·n/100⌉-th smallest of `values` (nearest rank), computed here.
fn nearest_rank(values: &[u64], p: f64) -> u64 {
    let mut v = values.to_vec();
    v.sort_unstable();
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.max(1) - 1]
}

struct Route {
    service: &'static str,
    kind: &'static str,
    name: &'static str,
    durations: Vec<u64>,
    errors: u64,
    panics: u64,
}

fn input() -> (String, Vec<Route>) {
    let mut rng = Rng(77);
    let mut routes = vec![
        // 1..=1000 ms in shuffled order: p50 = 500 ms, p90 = 900 ms, p99 = 990 ms.
        Route {
            service: "users",
            kind: "server",
            name: "GET /users/{id}",
            durations: (1..=1000).map(|i| i * 1_000_000).collect(),
            errors: 0,
            panics: 0,
        },
        // A few odd values, some errors and panics.
        Route {
            service: "users",
            kind: "server",
            name: "POST /orders",
            durations: vec![3, 1_000_000_007, 17, 250_000, 250_000, 9_999, 42],
            errors: 0,
            panics: 0,
        },
        Route {
            service: "orders",
            kind: "database",
            name: "SELECT users",
            durations: (0..137).map(|i| 10_000 + i * i * 997).collect(),
            errors: 0,
            panics: 0,
        },
        Route {
            service: "orders",
            kind: "client",
            name: "GET b:8080",
            durations: vec![5_000_000; 11],
            errors: 0,
            panics: 0,
        },
    ];
    let mut lines = Vec::new();
    let mut t = 1_700_000_000_000_000_000u64;
    for (r, route) in routes.iter_mut().enumerate() {
        let mut order: Vec<usize> = (0..route.durations.len()).collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        for (n, &i) in order.iter().enumerate() {
            let d = route.durations[i];
            t += 1000;
            let error = r == 1 && n % 3 == 0;
            let panic = r == 1 && n == 1;
            route.errors += u64::from(error);
            route.panics += u64::from(panic);
            let (kind, name, attributes) = match route.kind {
                "server" => {
                    let (method, path) = route.name.split_once(' ').expect("method route");
                    (
                        "server",
                        route.name.to_owned(),
                        json!({"http.request.method": method, "http.route": path, "url.path": format!("/x/{n}")}),
                    )
                }
                "database" => (
                    "client",
                    route.name.to_owned(),
                    json!({"db.system.name": "postgresql", "db.operation.name": "SELECT", "db.collection.name": "users"}),
                ),
                _ => (
                    "client",
                    "GET".to_owned(),
                    json!({"http.request.method": "GET", "server.address": "b", "server.port": 8080}),
                ),
            };
            let mut span = json!({"trace_id": format!("{:032x}", rng.next() | 1), "span_id": format!("{:016x}", rng.next() | 1),
                "name": name, "kind": kind, "start_time_unix_nano": t, "end_time_unix_nano": t + d,
                "attributes": attributes, "resource": {"service.name": route.service, "process.pid": 1}});
            if error {
                span["status"] = json!({"code": "error"});
            }
            if panic {
                span["events"] = json!([{"name": "exception", "time_unix_nano": t, "attributes": {"exception.type": "string"}}]);
            }
            lines.push(span.to_string());
        }
    }
    (lines.join("\n") + "\n", routes)
}

#[test]
fn percentiles_counts_and_order_match_an_independent_computation() {
    let (text, routes) = input();
    let out = convert(&["--to", "summary", "--json"], &text);
    assert_ok(&out);
    let doc: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let rows = doc["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), routes.len());
    assert_eq!(
        doc["spans"].as_u64(),
        Some(routes.iter().map(|r| r.durations.len() as u64).sum())
    );
    for route in &routes {
        let row = rows
            .iter()
            .find(|r| r["name"] == route.name && r["service"] == route.service)
            .unwrap_or_else(|| panic!("no row for {}", route.name));
        assert_eq!(row["kind"], route.kind);
        let n = route.durations.len() as u64;
        assert_eq!(row["count"].as_u64(), Some(n));
        assert_eq!(row["errors"].as_u64(), Some(route.errors));
        assert_eq!(row["panics"].as_u64(), Some(route.panics));
        assert_eq!(
            row["error_ratio"].as_f64(),
            Some(route.errors as f64 / n as f64)
        );
        for (field, p) in [("p50_ns", 50.0), ("p90_ns", 90.0), ("p99_ns", 99.0)] {
            assert_eq!(
                row[field].as_u64(),
                Some(nearest_rank(&route.durations, p)),
                "{} {field}",
                route.name
            );
        }
        assert_eq!(
            row["max_ns"].as_u64(),
            route.durations.iter().max().copied()
        );
        assert_eq!(row["total_ns"].as_u64(), Some(route.durations.iter().sum()));
        assert_eq!(row["exact"], true);
    }
    let first = &routes[0];
    assert_eq!(
        (
            nearest_rank(&first.durations, 50.0),
            nearest_rank(&first.durations, 99.0)
        ),
        (500_000_000, 990_000_000),
        "the known answer"
    );
    let totals: Vec<u64> = rows
        .iter()
        .map(|r| r["total_ns"].as_u64().expect("total"))
        .collect();
    assert!(
        totals.windows(2).all(|w| w[0] >= w[1]),
        "sorted by total time: {totals:?}"
    );
}

#[test]
fn table_is_aligned_for_a_terminal() {
    let (text, _) = input();
    let out = convert(&["--to", "summary"], &text);
    assert_ok(&out);
    let table = stdout(&out);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 5, "{table}");
    assert!(
        lines[0].starts_with("SERVICE") && lines[0].ends_with("PANICS"),
        "{table}"
    );
    // Numbers are right-aligned to the header: every line has the same width.
    let width = lines[0].chars().count();
    assert!(lines.iter().all(|l| l.chars().count() == width), "{table}");
    // The most total time first: 1..=1000 ms sums to 500.5 s.
    assert!(
        lines[1].contains("GET /users/{id}")
            && lines[1].contains("500ms")
            && lines[1].contains("1.00s"),
        "{table}"
    );
    let post = lines
        .iter()
        .find(|l| l.contains("POST /orders"))
        .expect("row");
    assert!(post.contains("42.9%"), "3 of 7 failed: {post}");
    let empty = convert(&["--to", "summary"], "");
    assert_ok(&empty);
    assert_eq!(stdout(&empty).lines().count(), 1, "header only");
}

/// `record --summary`: the table on stderr when the recording ends, spans unchanged on stdout.
#[test]
fn record_prints_the_table_at_the_end() {
    let entry = common::corpus_binary("1.26", "httpserver", "default");
    let server = common::Server::start_env(&entry.binary, &[("GODEBUG", "httpmuxgo121=0")]);
    let pid = server.pid().to_string();
    let run = start(&["record", "--pid", &pid, "--summary"]);
    for _ in 0..4 {
        assert_eq!(common::get(&server.addr, "/call"), 200);
    }
    assert_eq!(common::get(&server.addr, "/fail"), 500);
    std::thread::sleep(Duration::from_millis(300));
    run.interrupt();
    let (code, out, err) = run.finish();
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        crate::spans(&out).len(),
        13,
        "4 /call + 4 /hello + 4 clients + 1 /fail"
    );
    let header = err
        .lines()
        .position(|l| l.starts_with("SERVICE"))
        .expect("table header");
    let rows: Vec<&str> = err.lines().skip(header + 1).collect();
    let row = |name: &str| {
        rows.iter()
            .find(|l| l.contains(name))
            .unwrap_or_else(|| panic!("no {name} row in {err}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    // SERVICE KIND METHOD ROUTE COUNT ERRORS ERR% ...
    assert_eq!(
        row("GET /call")[..7],
        ["httpserver", "server", "GET", "/call", "4", "0", "0.0%"]
    );
    assert_eq!(row("GET /fail")[4..7], ["1", "1", "100.0%"]);
    assert_eq!(row("GET /hello")[4], "4");
    let client = row("GET 127.0.0.1:");
    assert_eq!(client[1], "client");
    assert_eq!(client[4], "4");
}
