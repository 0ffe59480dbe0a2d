//! `goprobe heap` and `goprobe goroutines` on a Go server nobody here
//! built: Debian's Prometheus (Go 1.19, stripped, -trimpath), which serves
//! its own profiles at /debug/pprof. Needs root and the package
//! (scripts/setup.sh installs it); fails, never skips, without them.
#![allow(clippy::print_stderr)] // the figures of each comparison, for the record

mod common;

use std::path::Path;
use std::process::Command;

use common::goruntime::{goprobe_ok, nonzero, parse_dump, pprof_raw, top};
use common::require_root;

/// GET `path` from `addr`; the body's bytes.
fn http_get(addr: &str, path: &str) -> Vec<u8> {
    use std::io::{Read, Write};
    let mut s =
        std::net::TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    s.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .expect("timeout");
    // HTTP/1.0: the body comes whole, not chunked.
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").expect("send");
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).expect("read");
    let at = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP header end");
    let head = String::from_utf8_lossy(&resp[..at]).to_string();
    assert!(
        head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"),
        "GET {path}: {head}"
    );
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "chunked body for {path}"
    );
    resp[at + 4..].to_vec()
}

/// Debian's Prometheus (Go 1.19, stripped, -trimpath; nobody here built
/// it) serves its own profiles at /debug/pprof: goprobe's reading from
/// outside equals them. The heap profile exactly, when no GC published a
/// cycle between the service's two own profiles around goprobe's read; the
/// dump goroutine for goroutine, but for the goroutines serving the
/// profile request (or accepting it) at that moment.
#[test]
fn debian_prometheus_equals_its_own_pprof() {
    require_root();
    let prom = Path::new("/usr/bin/prometheus");
    assert!(
        prom.is_file(),
        "Debian's prometheus is missing: run scripts/setup.sh"
    );
    let dir = std::env::temp_dir().join(format!("goprobe-prometheus-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    // No scrape jobs: a quiet server.
    std::fs::write(
        dir.join("prometheus.yml"),
        "global:\n  scrape_interval: 1h\n",
    )
    .expect("config");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let mut child = Command::new(prom)
        .arg(format!(
            "--config.file={}",
            dir.join("prometheus.yml").display()
        ))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start prometheus");
    struct Kill(std::process::Child, std::path::PathBuf);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
            let _ = std::fs::remove_dir_all(&self.1);
        }
    }
    let pid = child.id().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "prometheus did not listen"
        );
        assert!(
            child.try_wait().expect("wait").is_none(),
            "prometheus exited"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let guard = Kill(child, dir.clone());
    std::thread::sleep(std::time::Duration::from_secs(2));
    let v = "1.19";
    let mut checked = false;
    for _ in 0..5 {
        let own = dir.join("own.pb.gz");
        let own2 = dir.join("own2.pb.gz");
        let ours = dir.join("goprobe.pb.gz");
        std::fs::write(&own, http_get(&addr, "/debug/pprof/heap")).expect("write");
        goprobe_ok(&["heap", "--pid", &pid, "-o", ours.to_str().expect("path")]);
        std::fs::write(&own2, http_get(&addr, "/debug/pprof/heap")).expect("write");
        let (a, b) = (nonzero(pprof_raw(v, &own)), nonzero(pprof_raw(v, &own2)));
        if a != b {
            continue; // a GC published a cycle meanwhile: try again
        }
        assert_eq!(
            nonzero(pprof_raw(v, &ours)),
            a,
            "goprobe's heap profile of prometheus differs from its own"
        );
        assert_eq!(top(v, &ours, 5), top(v, &own, 5));
        eprintln!(
            "prometheus: top 5 by alloc_space, goprobe = /debug/pprof/heap: {:?}",
            top(v, &ours, 5)
        );
        checked = true;
        break;
    }
    assert!(
        checked,
        "prometheus never stood still between two of its own heap profiles"
    );
    let own = String::from_utf8(http_get(&addr, "/debug/pprof/goroutine?debug=2")).expect("dump");
    let text = goprobe_ok(&["goroutines", "--pid", &pid, "--to", "text"]);
    let (want, got) = (parse_dump(&own), parse_dump(&text));
    let serving = |d: &common::goruntime::DumpEntry| {
        d.functions.iter().any(|f| {
            f.starts_with("net/http.(*conn") || f.ends_with("Accept") || f.contains("pprof")
        })
    };
    let mut same = 0;
    for w in &want {
        match got.iter().find(|g| g.id == w.id) {
            Some(g) if serving(w) || serving(g) => {}
            Some(g) => {
                assert_eq!(
                    (&g.header, &g.functions),
                    (&w.header, &w.functions),
                    "prometheus goroutine {}",
                    w.id
                );
                same += 1;
            }
            None => assert!(
                serving(w),
                "goroutine {} missing from goprobe's dump: {w:?}",
                w.id
            ),
        }
    }
    assert!(same >= 15, "only {same} goroutines compared");
    eprintln!(
        "prometheus: {same} goroutines equal to /debug/pprof/goroutine?debug=2 ({} in its dump, {} in goprobe's)",
        want.len(),
        got.len()
    );
    drop(guard);
}
