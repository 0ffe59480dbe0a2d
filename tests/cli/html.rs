//! `goprobe convert --to html`: the waterfall page opened in headless
//! Chromium with networking disabled; one bar per span, in tree order with
//! the right nesting and positions, read back from the DOM the page's
//! script built; and a screenshot.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};

use crate::synth::{Rng, assert_ok, convert, goprobe};

/// A trace like a real request: a server span whose handler calls out
/// (some calls in parallel), database calls under a client span, events,
/// errors, and `fanout` extra leaf calls (to make it big).
fn trace(rng: &mut Rng, t0: u64, fanout: usize, slow: u64) -> Vec<Value> {
    let trace_id = format!("{:016x}{:016x}", rng.next() | 1, rng.next());
    let mut id = || format!("{:016x}", rng.next() | 1);
    let root = id();
    let mut spans = vec![
        json!({"trace_id": trace_id, "span_id": root, "name": "GET /checkout", "kind": "server",
        "start_time_unix_nano": t0, "end_time_unix_nano": t0 + slow,
        "attributes": {"http.request.method": "GET", "http.route": "/checkout", "http.response.status_code": 500},
        "status": {"code": "error"}, "resource": {"service.name": "shop", "process.pid": 10},
        "events": [{"name": "exception", "time_unix_nano": t0 + slow / 2, "attributes": {"exception.type": "string", "exception.message": "boom"}}]}),
    ];
    let call = id();
    spans.push(json!({"trace_id": trace_id, "span_id": call, "parent_span_id": root, "name": "GET", "kind": "client",
        "start_time_unix_nano": t0 + slow / 10, "end_time_unix_nano": t0 + slow / 2,
        "attributes": {"http.request.method": "GET", "url.full": "http://inventory:8080/stock"},
        "resource": {"service.name": "shop", "process.pid": 10}}));
    for k in 0..3u64 {
        spans.push(json!({"trace_id": trace_id, "span_id": id(), "parent_span_id": call, "name": "SELECT stock", "kind": "client",
            "start_time_unix_nano": t0 + slow / 10 + 1000 + k * (slow / 10), "end_time_unix_nano": t0 + slow / 10 + (k + 1) * (slow / 10),
            "attributes": {"db.system.name": "postgresql", "db.query.text": "SELECT n FROM stock WHERE id = $1"},
            "resource": {"service.name": "shop", "process.pid": 10}}));
    }
    for k in 0..fanout as u64 {
        // Parallel calls that overlap each other, written in no particular order.
        let start = t0 + slow / 2 + (k * 7919 % 1000) * (slow / 2000);
        spans.push(json!({"trace_id": trace_id, "span_id": id(), "parent_span_id": root, "name": format!("GET /part/{k}"), "kind": "client",
            "start_time_unix_nano": start, "end_time_unix_nano": start + slow / 5,
            "attributes": {"http.request.method": "GET"}, "status": {"code": if k % 17 == 3 { "error" } else { "unset" }},
            "resource": {"service.name": "shop", "process.pid": 10}}));
    }
    // goprobe writes children before their parent.
    spans.reverse();
    spans
}

/// Span ids in tree order with depths, computed here from the NDJSON: roots
/// by start time, each span followed by its children by start time.
fn expected_order(spans: &[Value]) -> Vec<(String, Option<String>, usize)> {
    let id = |s: &Value| s["span_id"].as_str().expect("id").to_owned();
    let ids: Vec<String> = spans.iter().map(id).collect();
    let mut children: HashMap<String, Vec<&Value>> = HashMap::new();
    let mut roots = Vec::new();
    for s in spans {
        match s["parent_span_id"]
            .as_str()
            .filter(|p| ids.iter().any(|i| i == p))
        {
            Some(p) => children.entry(p.to_owned()).or_default().push(s),
            None => roots.push(s),
        }
    }
    let start = |s: &&Value| s["start_time_unix_nano"].as_u64().expect("start");
    roots.sort_by_key(start);
    fn walk(
        s: &Value,
        parent: Option<String>,
        depth: usize,
        children: &mut HashMap<String, Vec<&Value>>,
        out: &mut Vec<(String, Option<String>, usize)>,
    ) {
        let id = s["span_id"].as_str().expect("id").to_owned();
        out.push((id.clone(), parent, depth));
        let mut kids = children.remove(&id).unwrap_or_default();
        kids.sort_by_key(|k| k["start_time_unix_nano"].as_u64().expect("start"));
        for k in kids {
            walk(k, Some(id.clone()), depth + 1, children, out);
        }
    }
    let mut out = Vec::new();
    for r in roots {
        walk(r, None, 0, &mut children, &mut out);
    }
    out
}

/// Headless Chromium, as root, with every way out to the network closed:
/// a dead proxy, a resolver that finds nothing, no background services.
fn chromium(extra: &[&str], page: &Path) -> (String, String) {
    // One profile per run: tests run in parallel, and Chromium refuses a
    // profile another instance holds.
    static RUNS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let profile = std::env::temp_dir().join(format!(
        "goprobe-chromium-{}-{}",
        std::process::id(),
        RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&profile);
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--proxy-server=127.0.0.1:9",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium is required (scripts/setup.sh installs Debian's chromium package)");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        out.status.success(),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The attributes of every tag of the DOM dump that has `class="span ..."`
/// (the rows), with the bar's style and the number of event marks after it.
struct Row {
    id: String,
    parent: String,
    depth: usize,
    left: f64,
    width: f64,
    marks: usize,
}

fn attr<'a>(tag: &'a str, name: &str) -> Option<&'a str> {
    let at = tag.find(&format!(" {name}=\""))? + name.len() + 3;
    Some(&tag[at..at + tag[at..].find('"')?])
}

fn percent(style: &str, prop: &str) -> f64 {
    let at = style
        .find(&format!("{prop}: "))
        .unwrap_or_else(|| panic!("{prop} in {style}"))
        + prop.len()
        + 2;
    style[at..at + style[at..].find('%').expect("%")]
        .parse()
        .expect("number")
}

fn rows(dom: &str) -> Vec<Row> {
    let mut out = Vec::new();
    let parts: Vec<&str> = dom.split("<div class=\"span ").skip(1).collect();
    for part in parts {
        let tag = &part[..part.find('>').expect("tag end")];
        let tag = format!(" class=\"span {tag}");
        let bar_at = part.find("class=\"bar\"").expect("bar");
        let bar_tag = &part[bar_at..bar_at + part[bar_at..].find('>').expect("bar end")];
        let bar_tag = format!(" {bar_tag}");
        let style = attr(&bar_tag, "style").expect("bar style");
        out.push(Row {
            id: attr(&tag, "data-span-id").expect("id").to_owned(),
            parent: attr(&tag, "data-parent-id").expect("parent").to_owned(),
            depth: attr(&tag, "data-depth")
                .expect("depth")
                .parse()
                .expect("depth"),
            left: percent(style, "left"),
            width: percent(style, "width"),
            marks: part.matches("class=\"mark").count(),
        });
    }
    out
}

fn tmp(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    std::fs::create_dir_all(&dir).expect("tmp dir");
    dir.join(name)
}

#[test]
fn waterfall_opens_offline_with_one_bar_per_span_in_tree_order() {
    let mut rng = Rng(3);
    let t0 = 1_700_000_000_000_000_000u64;
    let big = trace(&mut rng, t0, 2000, 800_000_000);
    let small = trace(&mut rng, t0 + 10_000_000_000, 3, 20_000_000);
    let mut lines: Vec<String> = Vec::new();
    // Interleave the two traces, as concurrent requests are recorded.
    let (mut a, mut b) = (big.iter(), small.iter());
    loop {
        match (a.next(), b.next()) {
            (None, None) => break,
            (x, y) => lines.extend(x.into_iter().chain(y).map(Value::to_string)),
        }
    }
    let input = lines.join("\n") + "\n";
    let trace_id = big[0]["trace_id"].as_str().expect("id");
    let page = tmp("waterfall-test.html");
    let out = convert(
        &[
            "--to",
            "html",
            "--trace-id",
            trace_id,
            "-o",
            page.to_str().expect("path"),
        ],
        &input,
    );
    assert_ok(&out);
    let html = std::fs::read_to_string(&page).expect("page");
    assert!(html.contains("Content-Security-Policy") && html.contains("default-src 'none'"));
    // The page itself (not the span data embedded in it) refers to nothing outside.
    let data_at = html.find("id=\"goprobe-data\">").expect("data");
    let data_end = data_at + html[data_at..].find("</script>").expect("end");
    let shell = format!("{}{}", &html[..data_at], &html[data_end..]);
    for external in [
        "http://", "https://", "src=\"", "href=\"", "@import", "url(",
    ] {
        assert!(
            !shell.contains(external),
            "the page refers to something outside it: {external}"
        );
    }
    let (dom, log) = chromium(&["--dump-dom"], &page);
    assert!(dom.contains("data-rendered=\"true\""), "the script ran");
    if let Some(line) = log.lines().find(|l| l.contains("CONSOLE")) {
        panic!("the page logged: {line}");
    }
    let got = rows(&dom);
    let want = expected_order(&big);
    assert_eq!(got.len(), big.len(), "one row per span of the trace");
    for (row, (id, parent, depth)) in got.iter().zip(&want) {
        assert_eq!(&row.id, id, "tree order");
        assert_eq!(row.parent, parent.clone().unwrap_or_default());
        assert_eq!(row.depth, *depth);
    }
    // Bars sit on the trace's time axis: left = start offset, width = duration
    // (Chromium writes percentages to six significant digits).
    let by_id: HashMap<&str, &Value> = big
        .iter()
        .map(|s| (s["span_id"].as_str().expect("id"), s))
        .collect();
    // The axis spans the trace: its first start to its last end.
    let end = big
        .iter()
        .map(|s| s["end_time_unix_nano"].as_u64().expect("end"))
        .max()
        .expect("spans");
    let total = (end - t0) as f64;
    for row in &got {
        let s = by_id[row.id.as_str()];
        let start = s["start_time_unix_nano"].as_u64().expect("start") - t0;
        let dur = s["end_time_unix_nano"].as_u64().expect("end")
            - s["start_time_unix_nano"].as_u64().expect("start");
        assert!(
            (row.left - 100.0 * start as f64 / total).abs() < 1e-3,
            "left of {}",
            row.id
        );
        assert!(
            (row.width - 100.0 * dur as f64 / total).abs() < 1e-3,
            "width of {}",
            row.id
        );
        assert_eq!(row.marks, s["events"].as_array().map_or(0, Vec::len));
    }
    // A #span=ID link opens the page on that span with its details panel,
    // what a click shows: the span's attributes, events and resource.
    let root = &big[big.len() - 1];
    assert_eq!(root["name"], "GET /checkout");
    let linked = format!(
        "{}#span={}",
        page.display(),
        root["span_id"].as_str().expect("id")
    );
    let (dom, _) = chromium(&["--dump-dom"], Path::new(&linked));
    let panel = &dom[dom.find("<aside id=\"details\"").expect("panel")..];
    let panel = &panel[..panel.find("</aside>").expect("panel end")];
    assert!(
        !panel.starts_with("<aside id=\"details\" hidden"),
        "the panel is shown"
    );
    for text in [
        "GET /checkout",
        "http.route",
        "/checkout",
        "exception.message",
        "boom",
        "service.name",
        "shop",
    ] {
        assert!(
            panel.contains(&format!(">{text}<")),
            "{text} in the details: {panel}"
        );
    }

    let shot = tmp("waterfall-test.png");
    let _ = std::fs::remove_file(&shot);
    let arg = format!("--screenshot={}", shot.display());
    let (_, log) = chromium(&[&arg, "--window-size=1400,900"], &page);
    let png = std::fs::read(&shot).unwrap_or_else(|e| panic!("screenshot: {e}: {log}"));
    assert_eq!(&png[1..4], b"PNG");
    assert!(
        png.len() > 20_000,
        "a screenshot with content, not a blank page ({} bytes)",
        png.len()
    );
}

#[test]
fn slowest_traces_by_default_and_a_missing_trace_is_an_error() {
    let mut rng = Rng(11);
    let t0 = 1_700_000_000_000_000_000u64;
    let mut input = String::new();
    for (k, slow) in [30_000_000u64, 90_000_000, 10_000_000, 60_000_000]
        .iter()
        .enumerate()
    {
        for s in trace(&mut rng, t0 + k as u64 * 1_000_000_000, 2, *slow) {
            input.push_str(&format!("{s}\n"));
        }
    }
    let page = tmp("waterfall-slowest.html");
    assert_ok(&convert(
        &[
            "--to",
            "html",
            "--slowest",
            "2",
            "-o",
            page.to_str().expect("path"),
        ],
        &input,
    ));
    let (dom, _) = chromium(&["--dump-dom"], &page);
    let sections: Vec<&str> = dom.split("<section class=\"trace\"").skip(1).collect();
    assert_eq!(sections.len(), 2);
    assert!(
        sections[0].contains("90.0ms") && sections[1].contains("60.0ms"),
        "slowest first"
    );
    assert_eq!(rows(&dom).len(), 2 * 7);
    let missing = convert(&["--to", "html", "--trace-id", &"ab".repeat(16)], &input);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("is not in the input"));
    let bad = goprobe()
        .args(["convert", "--to", "html", "--trace-id", "xyz"])
        .output()
        .expect("run");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("trace_id must be 32 hex digits"));
}
