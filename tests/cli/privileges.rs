//! Privileges, said plainly: goprobe run as an unprivileged user (created
//! here) with and without capabilities (`setpriv`). Each failure is one
//! line naming what is missing and how to get it; the least set that works
//! on this kernel — CAP_BPF + CAP_PERFMON, and CAP_SYS_PTRACE for another
//! user's process — records.

use std::process::{Command, Stdio};
use std::time::Duration;

use crate::common;
use crate::{spans, start_command};

const USER: &str = "goprobe-test";

/// The unprivileged test user's uid and gid, creating the user when needed.
fn test_user() -> (u32, u32) {
    common::require_root();
    let id = |flag: &str| {
        Command::new("id")
            .args([flag, USER])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
    };
    if id("-u").is_none() {
        let out = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                USER,
            ])
            .output()
            .expect("useradd");
        // Another test may have created it meanwhile.
        assert!(
            out.status.success() || id("-u").is_some(),
            "useradd {USER}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (id("-u").expect("uid"), id("-g").expect("gid"))
}

/// `goprobe ARGS` as the test user with exactly `caps` (e.g. "+bpf,+perfmon";
/// "" for none), through setpriv.
fn as_user(caps: &str, args: &[&str]) -> Command {
    let (uid, gid) = test_user();
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg("--clear-groups");
    if caps.is_empty() {
        cmd.arg("--inh-caps=-all");
    } else {
        cmd.arg(format!("--inh-caps=-all,{caps}"))
            .arg(format!("--ambient-caps={caps}"));
    }
    cmd.arg("--").arg(env!("CARGO_BIN_EXE_goprobe")).args(args);
    cmd
}

/// Run to the end: (exit code, stderr).
fn fails(mut cmd: Command) -> (i32, String) {
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn one_line(err: &str) -> &str {
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    err.trim_end()
}

/// Missing privileges: one line each, naming exactly what is missing, the
/// set that works and how to get it; before anything is attached.
#[test]
fn missing_privileges_are_one_line_with_the_remedy() {
    let entry = common::corpus_binary("1.26", "httpserver", "default");
    let server = common::Server::start(&entry.binary);
    let pid = server.pid().to_string();

    let (code, err) = fails(as_user("", &["record", "--pid", &pid]));
    assert_eq!(code, 2);
    let line = one_line(&err);
    assert!(
        line.contains(
            "needs root or the capabilities CAP_BPF + CAP_PERFMON + CAP_SYS_PTRACE \
             (process "
        ) && line
            .contains("belongs to another user); missing CAP_BPF, CAP_PERFMON, CAP_SYS_PTRACE"),
        "{line}"
    );
    assert!(
        line.contains("sudo setcap cap_bpf,cap_perfmon,cap_sys_ptrace+ep "),
        "{line}"
    );
    assert!(!line.contains("os error"), "{line}");

    let (code, err) = fails(as_user("+bpf,+perfmon", &["record", "--pid", &pid]));
    assert_eq!(code, 2);
    assert!(
        one_line(&err).contains("; missing CAP_SYS_PTRACE:"),
        "{err}"
    );

    let (code, err) = fails(as_user("+perfmon,+sys_ptrace", &["attach", "--pid", &pid]));
    assert_eq!(code, 2);
    assert!(
        one_line(&err).contains("CAP_BPF + CAP_PERFMON + CAP_SYS_PTRACE (process")
            && err.contains("; missing CAP_BPF:"),
        "{err}"
    );

    // By path every process running the binary is traced: no ptrace needed.
    let bin = entry.binary.to_str().expect("utf-8");
    let (code, err) = fails(as_user("+bpf", &["record", bin, "--duration", "1s"]));
    assert_eq!(code, 2);
    assert!(
        one_line(&err)
            .contains("needs root or the capabilities CAP_BPF + CAP_PERFMON; missing CAP_PERFMON:"),
        "{err}"
    );

    // Reading another user's process for inspect: said the same way.
    let (code, err) = fails(as_user("", &["inspect", "--pid", &pid]));
    assert_eq!(code, 2);
    assert!(
        one_line(&err).contains(&format!("cannot read process {pid}'s binary"))
            && err.contains("CAP_SYS_PTRACE"),
        "{err}"
    );
}

/// The least set records: CAP_BPF + CAP_PERFMON + CAP_SYS_PTRACE for
/// another user's process, CAP_BPF + CAP_PERFMON for one's own.
#[test]
fn the_least_set_records() {
    let entry = common::corpus_binary("1.26", "httpserver", "default");
    let server = common::Server::start(&entry.binary);
    let pid = server.pid().to_string();
    let run = start_command(as_user(
        "+bpf,+perfmon,+sys_ptrace",
        &["record", "--pid", &pid],
    ));
    for _ in 0..3 {
        assert_eq!(common::get(&server.addr, "/hello"), 200);
    }
    std::thread::sleep(Duration::from_millis(300));
    run.interrupt();
    let (code, out, err) = run.finish();
    assert_eq!(code, 0, "{err}");
    assert_eq!(spans(&out).len(), 3, "{err}");

    // The user's own process: no ptrace capability needed.
    let (uid, gid) = test_user();
    let mut own = Command::new("setpriv");
    own.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg("--clear-groups")
        .arg("--")
        .arg(&entry.binary);
    let mut child = own
        .stdout(Stdio::piped())
        .spawn()
        .expect("start own server");
    let mut addr = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().expect("stdout")),
        &mut addr,
    )
    .expect("address");
    let addr = addr.trim().to_owned();
    let run = start_command(as_user(
        "+bpf,+perfmon",
        &["record", "--pid", &child.id().to_string()],
    ));
    assert_eq!(common::get(&addr, "/hello"), 200);
    std::thread::sleep(Duration::from_millis(300));
    run.interrupt();
    let (code, out, err) = run.finish();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(code, 0, "{err}");
    assert_eq!(spans(&out).len(), 1, "{err}");

    // The remedy the messages give: file capabilities on the binary.
    let dir = std::env::temp_dir().join(format!("goprobe-setcap-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let copy = dir.join("goprobe");
    std::fs::copy(env!("CARGO_BIN_EXE_goprobe"), &copy).expect("copy goprobe");
    let out = Command::new("setcap")
        .args([
            "cap_bpf,cap_perfmon,cap_sys_ptrace+ep",
            copy.to_str().expect("utf-8"),
        ])
        .output()
        .expect("setcap (scripts/setup.sh installs libcap2-bin)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={gid}"))
        .arg("--clear-groups")
        .arg("--")
        .arg(&copy)
        .args(["record", "--pid", &pid]);
    let run = start_command(cmd);
    assert_eq!(common::get(&server.addr, "/hello"), 200);
    std::thread::sleep(Duration::from_millis(300));
    run.interrupt();
    let (code, out, err) = run.finish();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, 0, "{err}");
    assert_eq!(spans(&out).len(), 1, "{err}");
}
