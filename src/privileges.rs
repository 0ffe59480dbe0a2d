//! What attaching to a Go program needs, checked before anything is done,
//! so that a missing privilege is one line naming exactly what is missing
//! and how to get it.
//!
//! Found on Linux 6.18 by running `goprobe record` as an unprivileged user
//! with each subset of capabilities (tests/cli/privileges.rs does it):
//! * `CAP_BPF` (maps, programs) and `CAP_PERFMON` (tracing programs) to
//!   load and attach the eBPF uprobes; kernels before 5.8 know neither and
//!   need `CAP_SYS_ADMIN` instead;
//! * `CAP_SYS_PTRACE` as well for `--pid` of another user's process: its
//!   binary (`/proc/PID/exe`) and memory map are readable only by its owner
//!   or a tracer.
//!
//! Nothing else: kernels since 5.11 charge BPF memory to the memory cgroup,
//! not `RLIMIT_MEMLOCK`; uprobe_multi links need no tracefs.

use std::path::Path;

const CAP_SYS_PTRACE: u32 = 19;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// A privilege that is missing, said in one line with the remedy.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PrivilegeError(pub String);

/// The capabilities in this process's effective set (`CapEff`).
fn effective() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            let hex = s
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))?
                .trim()
                .to_owned();
            u64::from_str_radix(&hex, 16).ok()
        })
        .unwrap_or(0)
}

/// True when the running kernel knows `CAP_BPF` and `CAP_PERFMON` (5.8+).
fn kernel_has_bpf_caps() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .is_some_and(|last| last >= CAP_BPF)
}

/// What is missing to attach (to `pid`, or to every process running a
/// binary), given the effective capabilities `eff`; empty when nothing is.
/// `other_user`: `pid` is a process this user may not read.
fn missing(eff: u64, bpf_caps: bool, other_user: bool) -> Vec<&'static str> {
    let has = |c: u32| eff & (1 << c) != 0;
    let mut out = Vec::new();
    if bpf_caps {
        if !has(CAP_BPF) && !has(CAP_SYS_ADMIN) {
            out.push("CAP_BPF");
        }
        if !has(CAP_PERFMON) && !has(CAP_SYS_ADMIN) {
            out.push("CAP_PERFMON");
        }
    } else if !has(CAP_SYS_ADMIN) {
        out.push("CAP_SYS_ADMIN");
    }
    if other_user && !has(CAP_SYS_PTRACE) {
        out.push("CAP_SYS_PTRACE");
    }
    out
}

/// The one-line message for `missing`, with the full set that works.
fn message(missing: &[&str], bpf_caps: bool, pid: Option<u32>, other_user: bool) -> String {
    let mut set: Vec<&str> = if bpf_caps {
        vec!["CAP_BPF", "CAP_PERFMON"]
    } else {
        vec!["CAP_SYS_ADMIN"]
    };
    if other_user {
        set.push("CAP_SYS_PTRACE");
    }
    let why = match (pid, other_user) {
        (Some(p), true) => format!(" (process {p} belongs to another user)"),
        _ => String::new(),
    };
    let caps = set
        .iter()
        .map(|c| c.trim_start_matches("CAP_").to_ascii_lowercase())
        .collect::<Vec<_>>()
        .join(",");
    let exe = std::env::current_exe()
        .ok()
        .map_or_else(|| "goprobe".to_owned(), |p| p.display().to_string());
    format!(
        "attaching eBPF uprobes needs root or the capabilities {}{why}; missing {}: \
         run it with sudo, or grant them once with `sudo setcap cap_{caps}+ep {exe}`",
        set.join(" + "),
        missing.join(", "),
        caps = caps.replace(',', ",cap_"),
    )
}

/// True when process `pid` is not this user's to read without
/// CAP_SYS_PTRACE: its user and group ids (all of them, as the kernel's
/// ptrace check wants) are not ours, or reading its binary is refused.
fn other_users(pid: u32) -> bool {
    let dir = Path::new("/proc").join(pid.to_string());
    let refused = matches!(std::fs::read_link(dir.join("exe")),
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied);
    let Ok(status) = std::fs::read_to_string(dir.join("status")) else {
        return refused;
    };
    let ids = |key: &str| -> Vec<u32> {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| {
                v.split_whitespace()
                    .filter_map(|x| x.parse().ok())
                    .collect()
            })
            .unwrap_or_default()
    };
    // SAFETY: getuid and getgid have no preconditions and cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let mine = |v: Vec<u32>, me: u32| !v.is_empty() && v.iter().all(|x| *x == me);
    refused || !mine(ids("Uid:"), uid) || !mine(ids("Gid:"), gid)
}

/// Check, before anything is attached, that this process may attach to
/// `pid` (or, without one, to every process running a binary).
pub fn check_attach(pid: Option<u32>) -> Result<(), PrivilegeError> {
    let other_user = pid.is_some_and(other_users);
    let bpf_caps = kernel_has_bpf_caps();
    let m = missing(effective(), bpf_caps, other_user);
    if m.is_empty() {
        return Ok(());
    }
    Err(PrivilegeError(message(&m, bpf_caps, pid, other_user)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_sets() {
        let caps = |cs: &[u32]| cs.iter().fold(0u64, |m, c| m | 1 << c);
        assert_eq!(missing(0, true, false), ["CAP_BPF", "CAP_PERFMON"]);
        assert_eq!(
            missing(0, true, true),
            ["CAP_BPF", "CAP_PERFMON", "CAP_SYS_PTRACE"]
        );
        assert!(missing(caps(&[CAP_BPF, CAP_PERFMON]), true, false).is_empty());
        assert_eq!(
            missing(caps(&[CAP_BPF, CAP_PERFMON]), true, true),
            ["CAP_SYS_PTRACE"]
        );
        assert_eq!(missing(caps(&[CAP_BPF]), true, false), ["CAP_PERFMON"]);
        assert!(missing(caps(&[CAP_SYS_ADMIN]), true, false).is_empty());
        assert_eq!(missing(0, false, false), ["CAP_SYS_ADMIN"]);
        assert!(missing(u64::MAX, true, true).is_empty());
    }

    #[test]
    fn one_line_with_the_set_and_the_remedy() {
        let m = message(&["CAP_BPF", "CAP_SYS_PTRACE"], true, Some(7), true);
        assert!(!m.contains('\n'));
        assert!(
            m.starts_with(
                "attaching eBPF uprobes needs root or the capabilities CAP_BPF + CAP_PERFMON + \
                 CAP_SYS_PTRACE (process 7 belongs to another user); missing CAP_BPF, CAP_SYS_PTRACE: \
                 run it with sudo, or grant them once with `sudo setcap cap_bpf,cap_perfmon,cap_sys_ptrace+ep "
            ),
            "{m}"
        );
    }
}
