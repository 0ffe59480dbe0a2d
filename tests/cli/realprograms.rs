//! `goprobe record` on Go programs nobody here wrote, as Debian ships them
//! (Go 1.19, stripped): Prometheus scraping itself (an HTTP/1 client span
//! and the server span it causes, in one process, through go-conntrack's
//! connection wrapper), and etcd's gRPC gateway (an HTTP request, the gRPC
//! call the gateway makes to etcd's own gRPC server, and that server's
//! span, one trace), and Caddy's reverse proxy in front of the node
//! exporter (two processes in one recording, the proxy forwarding the
//! caller's `traceparent` as it is). Needs root and Debian's prometheus,
//! etcd-server, caddy and prometheus-node-exporter (scripts/setup.sh
//! installs them).

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{ndjson, spans, start};

/// A port free on loopback now (the program binds it soon after).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind")
        .port()
}

/// A program started with its data under a temporary directory, killed on drop.
struct Daemon {
    child: Child,
    dir: std::path::PathBuf,
}

impl Daemon {
    fn start(bin: &str, args: &[String], dir: std::path::PathBuf, ready_port: u16) -> Daemon {
        assert!(
            Path::new(bin).exists(),
            "{bin} missing: install Debian's package (scripts/setup.sh does)"
        );
        let log = std::fs::File::create(dir.join("log")).expect("log");
        let child = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start {bin}: {e}"));
        let d = Daemon { child, dir };
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", ready_port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "{bin} did not listen on {ready_port}: {}",
                std::fs::read_to_string(d.dir.join("log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        d
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn scratch(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("goprobe-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

/// Prometheus scrapes its own /metrics every second: each scrape's client
/// span is the parent of the /metrics server span it caused.
#[test]
fn prometheus_scraping_itself_links() {
    let port = free_port();
    let dir = scratch("prometheus");
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: self\n    \
             static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        ),
    )
    .expect("config");
    let prom = Daemon::start(
        "/usr/bin/prometheus",
        &[
            format!("--config.file={}", config.display()),
            format!("--storage.tsdb.path={}", dir.join("data").display()),
            format!("--web.listen-address=127.0.0.1:{port}"),
        ],
        dir,
        port,
    );
    let run = start(&[
        "record",
        "--pid",
        &prom.pid(),
        "--probes",
        "http.server,http.client",
        "--duration",
        "6s",
    ]);
    let (code, out, err) = run.finish();
    assert_eq!(code, 0, "{err}");
    spans(&out);
    let all = ndjson(&out);
    let url = format!("http://127.0.0.1:{port}/metrics");
    let clients: Vec<&Value> = all
        .iter()
        .filter(|x| s(x, "kind") == "client" && x["attributes"]["url.full"] == url.as_str())
        .collect();
    assert!(clients.len() >= 3, "scrapes: {clients:#?}\n{err}");
    let mut linked = 0;
    for srv in all.iter().filter(|x| s(x, "kind") == "server") {
        assert_eq!(srv["attributes"]["url.path"], "/metrics", "{srv}");
        assert_eq!(
            srv["attributes"]["network.protocol.version"], "1.1",
            "{srv}"
        );
        let Some(parent) = srv["parent_span_id"].as_str() else {
            continue;
        };
        let cli = clients
            .iter()
            .find(|c| s(c, "span_id") == parent)
            .unwrap_or_else(|| panic!("parent {parent} is no scrape: {srv}"));
        assert_eq!(s(srv, "trace_id"), s(cli, "trace_id"));
        // The server starts inside the client span (the client's round trip
        // ends with the response's headers, the server may still be
        // writing the body).
        let start = srv["start_time_unix_nano"].as_u64();
        assert!(
            cli["start_time_unix_nano"].as_u64() <= start
                && start <= cli["end_time_unix_nano"].as_u64(),
            "server span starts outside its client's: {srv} {cli}"
        );
        linked += 1;
    }
    // Scrapes in flight when the recording starts or stops have one side only.
    assert!(
        linked + 2 >= clients.len() && linked >= 2,
        "{linked} of {} scrapes linked: {err}",
        clients.len()
    );
    assert!(
        err.contains(&format!("{linked} server spans linked")),
        "{err}"
    );
}

/// etcd's HTTP gateway calls etcd's own gRPC server: the HTTP server span,
/// the gateway's gRPC client span and the gRPC server span form one trace,
/// each the parent of the next; an empty key is gRPC's InvalidArgument (3),
/// an error on the client span.
#[test]
fn etcd_gateway_links_http_and_grpc() {
    let (client_port, peer_port) = (free_port(), free_port());
    let dir = scratch("etcd");
    let client_url = format!("http://127.0.0.1:{client_port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let etcd = Daemon::start(
        "/usr/bin/etcd",
        &[
            format!("--data-dir={}", dir.join("data").display()),
            format!("--listen-client-urls={client_url}"),
            format!("--advertise-client-urls={client_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=default={peer_url}"),
        ],
        dir,
        client_port,
    );
    let run = start(&[
        "record",
        "--pid",
        &etcd.pid(),
        "--probes",
        "http.server,grpc.server,grpc.client",
    ]);
    let post = |path: &str, body: &str| {
        let out = Command::new("curl")
            .args([
                "-s",
                "-X",
                "POST",
                &format!("{client_url}{path}"),
                "-d",
                body,
            ])
            .output()
            .expect("curl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert!(post("/v3/kv/put", r#"{"key":"Zm9v","value":"YmFy"}"#).contains("revision"));
    assert!(post("/v3/kv/range", r#"{"key":"Zm9v"}"#).contains("YmFy"));
    assert!(post("/v3/kv/put", r#"{"value":"YmFy"}"#).contains("key is not provided"));
    std::thread::sleep(Duration::from_millis(1800));
    run.interrupt();
    let (code, out, err) = run.finish();
    assert_eq!(code, 0, "{err}");
    spans(&out);
    let all = ndjson(&out);
    let by_id = |id: &str| all.iter().find(|x| s(x, "span_id") == id);
    let mut grpc_servers: Vec<&Value> = all
        .iter()
        .filter(|x| s(x, "kind") == "server" && x["attributes"]["rpc.system.name"] == "grpc")
        .collect();
    grpc_servers.sort_by_key(|x| x["start_time_unix_nano"].as_u64());
    let names: Vec<&str> = grpc_servers.iter().map(|x| s(x, "name")).collect();
    assert_eq!(
        names,
        [
            "etcdserverpb.KV/Put",
            "etcdserverpb.KV/Range",
            "etcdserverpb.KV/Put"
        ],
        "{err}"
    );
    for (srv, (code, http)) in grpc_servers.iter().zip([(0, 200), (0, 200), (3, 400)]) {
        assert_eq!(srv["attributes"]["rpc.grpc.status_code"], code, "{srv}");
        assert_eq!(srv["attributes"]["rpc.service"], "etcdserverpb.KV", "{srv}");
        let cli = by_id(s(srv, "parent_span_id"))
            .unwrap_or_else(|| panic!("gRPC server span without its client: {srv}"));
        assert_eq!(s(cli, "kind"), "client", "{cli}");
        assert_eq!(s(cli, "name"), s(srv, "name"), "{cli}");
        assert_eq!(cli["attributes"]["rpc.grpc.status_code"], code, "{cli}");
        assert_eq!(cli["attributes"]["server.port"], client_port, "{cli}");
        let http_span = by_id(s(cli, "parent_span_id"))
            .unwrap_or_else(|| panic!("gateway call without its HTTP request: {cli}"));
        assert_eq!(s(http_span, "kind"), "server", "{http_span}");
        assert_eq!(http_span["attributes"]["http.response.status_code"], http);
        assert!(http_span["parent_span_id"].is_null(), "{http_span}");
        for x in [cli, *srv] {
            assert_eq!(s(x, "trace_id"), s(http_span, "trace_id"));
        }
        if code != 0 {
            // InvalidArgument is the caller's error: the client span's
            // status is error, the server's stays unset (the semantic
            // conventions' gRPC server rule).
            assert_eq!(cli["status"]["code"], "error", "{cli}");
            assert_eq!(cli["status"]["message"], "etcdserver: key is not provided");
            assert_eq!(cli["attributes"]["error.type"], "INVALID_ARGUMENT");
            assert_eq!(srv["status"]["code"], "unset", "{srv}");
        }
    }
}

/// Caddy's reverse proxy in front of the node exporter, both Debian's, both
/// in one recording. Caddy is not instrumented: it forwards the
/// `traceparent` it received as it is. Each request is three spans in the
/// caller's trace, each the parent of the next: Caddy's server span (under
/// the caller the header names), Caddy's client span, and the node
/// exporter's server span (under Caddy's client span, not beside Caddy's
/// server span as the forwarded header alone would have it). Without a
/// header, the same three spans in a trace of their own.
#[test]
fn caddy_proxy_forwarding_traceparent_links_to_its_upstream() {
    let (proxy_port, upstream_port) = (free_port(), free_port());
    let exporter = Daemon::start(
        "/usr/bin/prometheus-node-exporter",
        &[format!("--web.listen-address=127.0.0.1:{upstream_port}")],
        scratch("node-exporter"),
        upstream_port,
    );
    let dir = scratch("caddy");
    let caddyfile = dir.join("Caddyfile");
    std::fs::write(
        &caddyfile,
        format!(
            "{{\n\tadmin off\n\tauto_https off\n}}\n:{proxy_port} {{\n\t\
             reverse_proxy 127.0.0.1:{upstream_port}\n}}\n"
        ),
    )
    .expect("Caddyfile");
    let caddy = Daemon::start(
        "/usr/bin/caddy",
        &[
            "run".into(),
            "--config".into(),
            caddyfile.display().to_string(),
            "--adapter".into(),
            "caddyfile".into(),
        ],
        dir,
        proxy_port,
    );
    let run = start(&[
        "record",
        "--pid",
        &caddy.pid(),
        "--pid",
        &exporter.pid(),
        "--probes",
        "http.server,http.client",
    ]);
    let (trace, caller) = ("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7");
    let get = |path: &str, header: bool| {
        let url = format!("http://127.0.0.1:{proxy_port}{path}");
        let mut args = vec!["-s", "-o", "/dev/null", "-w", "%{http_code}"];
        let tp = format!("traceparent: 00-{trace}-{caller}-01");
        if header {
            args.extend(["-H", tp.as_str()]);
        }
        args.push(&url);
        let out = Command::new("curl").args(&args).output().expect("curl");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "{url}");
    };
    get("/metrics", true);
    get("/metrics", true);
    get("/", false);
    // Held server spans wait a second for the client span that caused them.
    std::thread::sleep(Duration::from_millis(1500));
    run.interrupt();
    let (code, out, err) = run.finish();
    assert_eq!(code, 0, "{err}");
    spans(&out);
    let all = ndjson(&out);
    let pid_of = |x: &Value| x["resource"]["process.pid"].to_string();
    let by_id = |id: &str| all.iter().find(|x| s(x, "span_id") == id);
    let upstream: Vec<&Value> = all
        .iter()
        .filter(|x| pid_of(x) == exporter.pid() && s(x, "kind") == "server")
        .collect();
    assert_eq!(upstream.len(), 3, "{all:#?}\n{err}");
    let mut traces = std::collections::BTreeSet::new();
    for u in &upstream {
        let cli = by_id(s(u, "parent_span_id"))
            .unwrap_or_else(|| panic!("upstream span not under the proxy's call: {u}\n{err}"));
        assert_eq!(s(cli, "kind"), "client", "{cli}");
        assert_eq!(pid_of(cli), caddy.pid(), "{cli}");
        assert_eq!(cli["attributes"]["server.port"], upstream_port, "{cli}");
        assert_eq!(
            cli["attributes"]["url.full"],
            format!(
                "http://127.0.0.1:{upstream_port}{}",
                u["attributes"]["url.path"].as_str().unwrap_or("?")
            ),
            "{cli}"
        );
        let srv = by_id(s(cli, "parent_span_id"))
            .unwrap_or_else(|| panic!("proxy call outside its request: {cli}"));
        assert_eq!(s(srv, "kind"), "server", "{srv}");
        assert_eq!(pid_of(srv), caddy.pid(), "{srv}");
        assert_eq!(srv["attributes"]["server.port"], proxy_port, "{srv}");
        for x in [cli, *u] {
            assert_eq!(s(x, "trace_id"), s(srv, "trace_id"), "{x}");
        }
        if srv["attributes"]["url.path"] == "/metrics" {
            assert_eq!(s(srv, "trace_id"), trace, "{srv}");
            assert_eq!(s(srv, "parent_span_id"), caller, "{srv}");
        } else {
            assert_ne!(s(srv, "trace_id"), trace, "{srv}");
            assert!(srv["parent_span_id"].is_null(), "{srv}");
        }
        traces.insert(s(srv, "trace_id").to_owned());
    }
    assert_eq!(traces.len(), 2, "the header's trace and one of its own");
    assert!(err.contains("3 server spans linked"), "{err}");
}

/// Debian builds etcd in GOPATH mode: its build info lists no modules, but
/// the binary names its gRPC (1.33.3, in its user agent), whose offsets and
/// hooks the verdicts use; `inspect` says so, in text and JSON.
#[test]
fn inspect_shows_modules_the_build_info_does_not_list() {
    let bin = "/usr/bin/etcd";
    assert!(
        Path::new(bin).exists(),
        "{bin} missing: install Debian's etcd-server (scripts/setup.sh does)"
    );
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_goprobe"))
            .args(args)
            .output()
            .expect("goprobe");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let json: Value = serde_json::from_str(&run(&["inspect", "--json", bin])).expect("json");
    assert_eq!(json["deps"], serde_json::json!([]), "{json}");
    assert_eq!(json["modules_seen"][0]["path"], "google.golang.org/grpc");
    assert_eq!(json["modules_seen"][0]["version"], "v1.33.3");
    let text = run(&["inspect", bin]);
    assert!(
        text.contains("seen in the binary, not in its build info (the verdicts use them)\n    google.golang.org/grpc v1.33.3\n"),
        "{text}"
    );
}
