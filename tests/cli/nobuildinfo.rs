//! Go binaries without build info but with a pclntab: corpus binaries with
//! `.go.buildinfo` removed by objcopy, and esbuild's npm binary, which ships
//! that way (fetched by scripts/setup.sh). `inspect`, `inspect --functions`
//! and `record` work; the report says build info is absent and takes the Go
//! version from the runtime's own copy.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use goprobe::span::{AttrValue, SpanKind};

use crate::common;
use crate::{ndjson, spans, start};

fn goprobe(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_goprobe"))
        .args(args)
        .output()
        .expect("run goprobe")
}

/// `bin` with `.go.buildinfo` removed, in a fresh temporary file.
fn without_build_info(bin: &Path, label: &str) -> PathBuf {
    let out = std::env::temp_dir().join(format!(
        "goprobe-nobuildinfo-{}-{label}",
        std::process::id()
    ));
    let st = Command::new("objcopy")
        .arg("--remove-section")
        .arg(".go.buildinfo")
        .arg(bin)
        .arg(&out)
        .status()
        .expect("objcopy (binutils: scripts/setup.sh installs it)");
    assert!(st.success(), "objcopy {}", bin.display());
    out
}

#[test]
fn inspect_and_functions_without_build_info() {
    for (go, variant) in [
        ("1.19", "stripped"),
        ("1.23", "pie-stripped"),
        ("1.27", "default"),
    ] {
        let entry = common::corpus_binary(go, "httpserver", variant);
        let label = format!("{go}-{variant}");
        let bin = without_build_info(&entry.binary, &label);
        let path = bin.to_str().unwrap();
        let orig = ndjson(&String::from_utf8_lossy(
            &goprobe(&["inspect", "--json", entry.binary.to_str().unwrap()]).stdout,
        ))
        .remove(0);
        let out = goprobe(&["inspect", "--json", path]);
        assert!(out.status.success(), "{label}: {out:?}");
        let r = ndjson(&String::from_utf8_lossy(&out.stdout)).remove(0);
        assert_eq!(r["build_info"], false, "{label}");
        assert_eq!(orig["build_info"], true, "{label}");
        assert_eq!(
            r["go_version"], orig["go_version"],
            "{label}: version from runtime.buildVersion"
        );
        assert_eq!(r["deps"].as_array().map(Vec::len), Some(0), "{label}");
        // The verdicts are those of the original binary.
        assert_eq!(r["probes"], orig["probes"], "{label}");
        let text = String::from_utf8_lossy(&goprobe(&["inspect", path]).stdout).into_owned();
        assert!(text.contains("build info    absent"), "{label}: {text}");
        let f = goprobe(&["inspect", "--functions", path]);
        let g = goprobe(&["inspect", "--functions", entry.binary.to_str().unwrap()]);
        assert!(f.status.success(), "{label}");
        assert_eq!(f.stdout, g.stdout, "{label}: same function table");
        let req = goprobe(&["inspect", "--require", "http.server,http.client", path]);
        assert!(req.status.success(), "{label}: {req:?}");
        let _ = std::fs::remove_file(&bin);
    }
}

#[test]
fn record_without_build_info() {
    common::require_root();
    let entry = common::corpus_binary("1.26", "httpserver", "stripped");
    let bin = without_build_info(&entry.binary, "record");
    let server = common::Server::start(&bin);
    let pid = server.pid().to_string();
    let run = start(&["record", "--pid", &pid]);
    for _ in 0..2 {
        assert_eq!(common::get(&server.addr, "/call"), 200);
    }
    std::thread::sleep(Duration::from_millis(300));
    run.interrupt();
    let (code, out, err) = run.finish();
    assert_eq!(code, 0, "{err}");
    let all = spans(&out);
    assert_eq!(
        all.iter().filter(|s| s.kind == SpanKind::Server).count(),
        4,
        "{out}"
    );
    assert_eq!(
        all.iter().filter(|s| s.kind == SpanKind::Client).count(),
        2,
        "{out}"
    );
    drop(server);
    let _ = std::fs::remove_file(&bin);
}

/// esbuild's npm package: a real bundler-built Go binary with no build info.
fn esbuild() -> PathBuf {
    let bin = common::cache_dir().join("thirdparty/esbuild/package/bin/esbuild");
    assert!(
        bin.is_file(),
        "{} missing: scripts/setup.sh fetches it (npm pack @esbuild/linux-x64)",
        bin.display()
    );
    bin
}

#[test]
fn esbuild_from_npm() {
    let bin = esbuild();
    let out = goprobe(&["inspect", "--json", bin.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    let r = ndjson(&String::from_utf8_lossy(&out.stdout)).remove(0);
    assert_eq!(r["build_info"], false);
    let v = r["go_version"].as_str().unwrap();
    assert!(v.starts_with("go1."), "{v}");
    let req = goprobe(&["inspect", "--require", "http.server", bin.to_str().unwrap()]);
    assert!(req.status.success(), "{req:?}");
}

/// Spans from esbuild's own HTTP server (`--serve`), traced from outside.
#[test]
fn record_esbuild_serve() {
    common::require_root();
    let bin = esbuild();
    let dir = std::env::temp_dir().join(format!("goprobe-esbuild-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("index.html"), "hi\n").unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let addr = format!("127.0.0.1:{port}");
    // esbuild stops serving when its stdin closes: keep a pipe open.
    let mut child = Command::new(&bin)
        .arg(format!("--servedir={}", dir.display()))
        .arg(format!("--serve={addr}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start esbuild");
    let up = (0..100).any(|_| {
        std::thread::sleep(Duration::from_millis(50));
        std::net::TcpStream::connect(&addr).is_ok()
    });
    assert!(up, "esbuild did not listen on {addr}");
    let pid = child.id().to_string();
    let run = start(&["record", "--pid", &pid, "--probes", "http.server"]);
    assert_eq!(common::get(&addr, "/index.html"), 200);
    assert_eq!(common::get(&addr, "/nope"), 404);
    std::thread::sleep(Duration::from_millis(300));
    run.interrupt();
    let (code, out, err) = run.finish();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, 0, "{err}");
    let all = spans(&out);
    let statuses: Vec<_> = all
        .iter()
        .filter(|s| s.kind == SpanKind::Server)
        .map(|s| {
            (
                s.attributes.get("url.path").cloned(),
                s.attributes.get("http.response.status_code").cloned(),
            )
        })
        .collect();
    assert!(
        statuses.contains(&(
            Some(AttrValue::from("/index.html")),
            Some(AttrValue::Int(200))
        )) && statuses.contains(&(Some(AttrValue::from("/nope")), Some(AttrValue::Int(404)))),
        "{statuses:?}\n{out}\n{err}"
    );
}
