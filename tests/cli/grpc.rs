//! `goprobe record` on gRPC and HTTP/2: the Greeter fixture
//! (tests/fixtures/grpc/greeter) for every gRPC version × Go toolchain that
//! tests/fixtures/build-modules.sh builds, default and stripped, and the
//! HTTP/2 fixture (tests/fixtures/h2/h2server: TLS, x/net's h2c handler and
//! transport, Go 1.24's Server.Protocols); a program calling itself, and a
//! client and a server recorded together as two processes (the client span
//! becomes the server span's parent) or the server alone (its spans stay
//! roots). Needs root.

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::common;
use crate::{ndjson, spans, start};

/// The traceparent the fixture's "traced" call carries in its metadata.
const TRACEPARENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const TRACEPARENT_PARENT: &str = "00f067aa0ba902b7";

/// One line of `grpc/manifest.tsv`: (go, grpc version, variant, path).
fn grpc_manifest() -> Vec<(String, String, String, PathBuf)> {
    let path = common::cache_dir().join("grpc/manifest.tsv");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "gRPC fixtures missing ({}: {e}): run tests/fixtures/build-modules.sh (scripts/setup.sh does)",
            path.display()
        )
    });
    let rows: Vec<_> = text
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert!(f.len() >= 4, "bad manifest line {l:?}");
            let p = PathBuf::from(f[3]);
            assert!(p.exists(), "{} listed but missing", p.display());
            (f[0].to_owned(), f[1].to_owned(), f[2].to_owned(), p)
        })
        .collect();
    assert!(!rows.is_empty(), "{} is empty", path.display());
    rows
}

fn grpc_binary(go: &str, grpc: &str, variant: &str) -> PathBuf {
    grpc_manifest()
        .into_iter()
        .find(|(g, v, var, _)| g == go && v == grpc && var == variant)
        .unwrap_or_else(|| panic!("no go{go} grpc{grpc} {variant} in grpc/manifest.tsv"))
        .3
}

fn h2_binary(go: &str) -> PathBuf {
    let p = common::cache_dir().join(format!("h2/go{go}/h2server"));
    assert!(
        p.exists(),
        "{} missing: run tests/fixtures/build-modules.sh",
        p.display()
    );
    p
}

/// A fixture program driven through stdin: it prints one line (its
/// addresses, or "ready"), waits for a line, makes its calls and prints "done".
struct Program {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    first: String,
}

impl Program {
    fn start(bin: &PathBuf, args: &[&str], env: &[(&str, &str)]) -> Program {
        let mut child = Command::new(bin)
            .args(args)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
        let stdin = child.stdin.take();
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut first = String::new();
        stdout.read_line(&mut first).expect("first line");
        assert!(
            !first.trim().is_empty(),
            "{} {args:?} printed nothing",
            bin.display()
        );
        Program {
            child,
            stdin,
            stdout,
            first: first.trim().to_owned(),
        }
    }

    fn pid(&self) -> String {
        self.child.id().to_string()
    }

    /// Tell it to make its calls and wait until it says "done".
    fn run_calls(&mut self) {
        writeln!(self.stdin.as_mut().expect("stdin"), "go").expect("write stdin");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read");
        assert_eq!(line.trim(), "done", "the fixture did not finish its calls");
    }
}

impl Drop for Program {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Record `probes` from `pids` while `callers` make their calls; the spans
/// (schema-checked) as JSON, and goprobe's stderr.
fn record(probes: &str, pids: &[String], callers: &mut [&mut Program]) -> (Vec<Value>, String) {
    let mut args = vec!["record", "--probes", probes];
    for p in pids {
        args.push("--pid");
        args.push(p);
    }
    let run = start(&args);
    for c in callers.iter_mut() {
        c.run_calls();
    }
    // Server spans wait up to a second for the client span that caused them.
    std::thread::sleep(Duration::from_millis(1800));
    run.interrupt();
    let (code, out, err) = run.finish();
    assert_eq!(code, 0, "record failed: {err}");
    spans(&out);
    (ndjson(&out), err)
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

fn attr<'a>(v: &'a Value, key: &str) -> &'a Value {
    &v["attributes"][key]
}

/// The spans of `kind`, as "name code" lines in start order.
fn summary(spans: &[Value], kind: &str) -> Vec<String> {
    let mut v: Vec<&Value> = spans.iter().filter(|x| s(x, "kind") == kind).collect();
    v.sort_by_key(|x| x["start_time_unix_nano"].as_u64());
    v.iter()
        .map(|x| {
            format!(
                "{} {} {}",
                s(x, "name"),
                attr(x, "rpc.grpc.status_code"),
                x["status"]["code"].as_str().unwrap_or("")
            )
        })
        .collect()
}

fn by_start<'a>(spans: &'a [Value], kind: &str) -> Vec<&'a Value> {
    let mut v: Vec<&Value> = spans.iter().filter(|x| s(x, "kind") == kind).collect();
    v.sort_by_key(|x| x["start_time_unix_nano"].as_u64());
    v
}

/// The Greeter's spans: exact counts, names, codes, attributes, and the
/// links between them (`linked`: client and server recorded together).
/// `stopped`: the client also called after the server stopped.
fn check_greeter(label: &str, spans: &[Value], linked: bool, stopped: bool, server_port: &str) {
    let mut clients = vec![
        "helloworld.Greeter/SayHello 0 unset",
        "helloworld.Greeter/SayGoodbye 12 error",
        "helloworld.Greeter/SayHelloStream 0 unset",
        "helloworld.Greeter/SayHello 0 unset",
    ];
    if stopped {
        clients.push("helloworld.Greeter/SayHello 14 error");
    }
    let servers = &clients[..4];
    let client_spans = by_start(spans, "client");
    let server_spans = by_start(spans, "server");
    if linked || stopped {
        assert_eq!(summary(spans, "client"), clients, "{label}: client spans");
    } else {
        assert!(client_spans.is_empty(), "{label}: client spans recorded");
    }
    assert_eq!(summary(spans, "server"), servers, "{label}: server spans");
    for x in spans {
        assert_eq!(attr(x, "rpc.system.name"), "grpc", "{label}: {x}");
        assert_eq!(attr(x, "rpc.service"), "helloworld.Greeter", "{label}: {x}");
        let method = s(x, "name").rsplit('/').next().unwrap();
        assert_eq!(attr(x, "rpc.method"), method, "{label}: {x}");
        assert_eq!(attr(x, "server.address"), "127.0.0.1", "{label}: {x}");
        assert_eq!(
            attr(x, "server.port").to_string(),
            server_port,
            "{label}: {x}"
        );
        let code = attr(x, "rpc.grpc.status_code").as_i64().unwrap();
        if code != 0 {
            assert_eq!(
                attr(x, "error.type"),
                if code == 12 {
                    "UNIMPLEMENTED"
                } else {
                    "UNAVAILABLE"
                },
                "{label}: {x}"
            );
        }
    }
    // The message of the Unimplemented status, on both sides.
    for x in spans
        .iter()
        .filter(|x| s(x, "name").ends_with("SayGoodbye"))
    {
        assert_eq!(
            x["status"]["message"], "unknown method SayGoodbye for service helloworld.Greeter",
            "{label}: {x}"
        );
    }
    // The traced call joins the caller's trace, linked or not.
    let traced = server_spans[3];
    assert_eq!(
        s(traced, "trace_id"),
        TRACEPARENT_TRACE,
        "{label}: {traced}"
    );
    assert_eq!(
        s(traced, "parent_span_id"),
        TRACEPARENT_PARENT,
        "{label}: {traced}"
    );
    for (i, srv) in server_spans[..3].iter().enumerate() {
        if linked {
            let cli = client_spans[i];
            assert_eq!(
                s(srv, "parent_span_id"),
                s(cli, "span_id"),
                "{label}: server span {i} not linked to its client: {srv} {cli}"
            );
            assert_eq!(s(srv, "trace_id"), s(cli, "trace_id"), "{label}");
        } else {
            assert!(
                srv["parent_span_id"].is_null(),
                "{label}: an unlinked server span has a parent: {srv}"
            );
        }
    }
    for cli in &client_spans {
        assert!(cli["parent_span_id"].is_null(), "{label}: {cli}");
    }
}

/// A program that serves and calls itself: every gRPC version × Go
/// toolchain the build script makes, default and stripped. A recording
/// follows several of them at once (`--pid`, repeated), each program on
/// its own ports, so their spans are told apart by process.
#[test]
fn grpc_self_every_version() {
    let all = grpc_manifest();
    assert!(all.len() >= 20, "too few gRPC builds: {}", all.len());
    // Four programs per recording: attaching and detaching uprobes costs
    // the kernel the same per probe either way, and four keep the attach
    // well inside the harness's wait on a loaded machine.
    for group in all.chunks(4) {
        let mut programs: Vec<(String, Program)> = group
            .iter()
            .map(|(go, grpc, variant, bin)| {
                (
                    format!("go{go} grpc{grpc} {variant}"),
                    Program::start(bin, &["self"], &[]),
                )
            })
            .collect();
        let pids: Vec<String> = programs.iter().map(|(_, p)| p.pid()).collect();
        let mut callers: Vec<&mut Program> = programs.iter_mut().map(|(_, p)| p).collect();
        let (spans, err) = record("grpc.server,grpc.client", &pids, &mut callers);
        for (label, p) in &programs {
            let port = p.first.rsplit(':').next().unwrap();
            let mine: Vec<Value> = spans
                .iter()
                .filter(|x| x["resource"]["process.pid"].as_u64() == Some(u64::from(p.child.id())))
                .cloned()
                .collect();
            check_greeter(label, &mine, true, true, port);
        }
        let linked = format!("{} server spans linked", 3 * programs.len());
        assert!(err.contains(&linked), "summary: {err}");
    }
}

/// A client and a server, two processes recorded together, then the
/// server alone: Debian's gRPC on Go 1.19, and a module gRPC on a newer Go.
#[test]
fn grpc_two_processes() {
    for (go, grpc) in [("1.19", "1.33.3"), ("1.26.6", "1.85.0")] {
        let bin = grpc_binary(go, grpc, "default");
        let server = Program::start(&bin, &["serve"], &[]);
        let port = server.first.rsplit(':').next().unwrap().to_owned();
        let mut client = Program::start(&bin, &["call", &server.first], &[]);
        let label = format!("go{go} grpc{grpc} two processes");
        let (spans, _) = record(
            "grpc.server,grpc.client",
            &[server.pid(), client.pid()],
            &mut [&mut client],
        );
        check_greeter(&label, &spans, true, false, &port);
        for x in &spans {
            let want = if s(x, "kind") == "client" {
                client.pid()
            } else {
                server.pid()
            };
            assert_eq!(
                x["resource"]["process.pid"].to_string(),
                want,
                "{label}: {x}"
            );
        }
        drop(client);
        let mut client = Program::start(&bin, &["call", &server.first], &[]);
        let label = format!("go{go} grpc{grpc} server alone");
        let (spans, _) = record(
            "grpc.server,grpc.client",
            &[server.pid()],
            &mut [&mut client],
        );
        check_greeter(&label, &spans, false, false, &port);
    }
}

/// The HTTP/2 fixture's routes: path, status, route (when the mux gives one).
const H2_ROUTES: &[(&str, i64)] = &[("/hello", 200), ("/fail", 500), ("/missing", 404)];

/// The h2server's spans: per listener the three routes on both sides, the
/// protocol version, statuses and error statuses, no `PRI *`, and each
/// server span the child of its client span when `linked`.
fn check_h2(label: &str, spans: &[Value], addrs: &Value, linked: bool, patterns: bool) {
    let mut listeners = vec![
        ("plain", "1.1", "http"),
        ("tls", "2", "https"),
        ("h2c", "2", "http"),
    ];
    if addrs.get("h2c_std").is_some() {
        listeners.push(("h2c_std", "2", "http"));
    }
    for x in spans {
        assert!(!s(x, "name").starts_with("PRI"), "{label}: {x}");
        assert!(attr(x, "url.path") != "*", "{label}: {x}");
    }
    let servers = by_start(spans, "server");
    let clients = by_start(spans, "client");
    assert_eq!(
        servers.len(),
        listeners.len() * H2_ROUTES.len(),
        "{label}: server spans {servers:#?}"
    );
    assert_eq!(
        clients.len(),
        if linked { servers.len() } else { 0 },
        "{label}: client spans"
    );
    let mut i = 0;
    for (name, version, scheme) in &listeners {
        let port: i64 = s(addrs, name).rsplit(':').next().unwrap().parse().unwrap();
        for (path, status) in H2_ROUTES {
            let srv = servers[i];
            let what = format!("{label}: {name} {path}");
            assert_eq!(attr(srv, "url.path"), *path, "{what}: {srv}");
            assert_eq!(
                attr(srv, "http.response.status_code"),
                *status,
                "{what}: {srv}"
            );
            assert_eq!(
                attr(srv, "network.protocol.version"),
                *version,
                "{what}: {srv}"
            );
            assert_eq!(attr(srv, "server.port"), port, "{what}: {srv}");
            let srv_error = *status >= 500;
            assert_eq!(
                srv["status"]["code"] == "error",
                srv_error,
                "{what}: server status {srv}"
            );
            let route_named = patterns && *status != 404;
            if route_named {
                assert_eq!(attr(srv, "http.route"), *path, "{what}: {srv}");
                assert_eq!(s(srv, "name"), format!("GET {path}"), "{what}");
            } else {
                assert!(attr(srv, "http.route").is_null(), "{what}: {srv}");
                assert_eq!(s(srv, "name"), "GET", "{what}");
            }
            if linked {
                let cli = clients[i];
                assert_eq!(
                    attr(cli, "url.full"),
                    format!("{scheme}://127.0.0.1:{port}{path}").as_str(),
                    "{what}: {cli}"
                );
                assert_eq!(attr(cli, "http.response.status_code"), *status, "{what}");
                assert_eq!(
                    attr(cli, "network.protocol.version"),
                    *version,
                    "{what}: {cli}"
                );
                assert_eq!(cli["status"]["code"] == "error", *status >= 400, "{what}");
                assert!(cli["parent_span_id"].is_null(), "{what}: {cli}");
                assert_eq!(
                    s(srv, "parent_span_id"),
                    s(cli, "span_id"),
                    "{what}: not linked: {srv} {cli}"
                );
                assert_eq!(s(srv, "trace_id"), s(cli, "trace_id"), "{what}");
            } else {
                assert!(srv["parent_span_id"].is_null(), "{what}: {srv}");
            }
            i += 1;
        }
    }
}

/// HTTP/1.1, HTTP/2 over TLS, h2c (x/net's handler and transport; Go 1.24's
/// Server.Protocols on 1.26) in one program calling itself, on Go 1.19
/// (where h2c once gave one `PRI *` span per connection), 1.23 and 1.26.
#[test]
fn h2_self() {
    for go in ["1.19", "1.23.9", "1.26.6"] {
        // ServeMux patterns (Request.Pattern, the route) need Go 1.22's mux,
        // which a go.mod saying 1.19 keeps off unless asked.
        let patterns = go != "1.19";
        let env: &[(&str, &str)] = if patterns {
            &[("GODEBUG", "httpmuxgo121=0")]
        } else {
            &[]
        };
        let mut p = Program::start(&h2_binary(go), &["self"], env);
        let addrs: Value = serde_json::from_str(&p.first).expect("addresses");
        let label = format!("go{go} h2server self");
        assert_eq!(addrs.get("h2c_std").is_some(), go == "1.26.6", "{label}");
        let pid = p.pid();
        let (spans, err) = record("http.server,http.client", &[pid], &mut [&mut p]);
        check_h2(&label, &spans, &addrs, true, patterns);
        let n = spans.len() / 2;
        assert!(
            err.contains(&format!("{n} server spans linked")),
            "{label}: {err}"
        );
    }
}

/// The h2server as two processes recorded together, then the server alone.
#[test]
fn h2_two_processes() {
    let go = "1.26.6";
    let env = [("GODEBUG", "httpmuxgo121=0")];
    let bin = h2_binary(go);
    let server = Program::start(&bin, &["serve"], &env);
    let addrs: Value = serde_json::from_str(&server.first).expect("addresses");
    let mut client = Program::start(&bin, &["call", &server.first], &env);
    let (spans, _) = record(
        "http.server,http.client",
        &[server.pid(), client.pid()],
        &mut [&mut client],
    );
    check_h2("h2server two processes", &spans, &addrs, true, true);
    drop(client);
    let mut client = Program::start(&bin, &["call", &server.first], &env);
    let (spans, _) = record(
        "http.server,http.client",
        &[server.pid()],
        &mut [&mut client],
    );
    check_h2("h2server server alone", &spans, &addrs, false, true);
}
