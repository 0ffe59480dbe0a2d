//! The system before loading: privileges, RLIMIT_MEMLOCK on old kernels,
//! tracefs mounted where the kernel needs it for uprobes.

use std::path::Path;

use super::BpfError;

/// Checks what loading eBPF needs and says plainly what is missing, then
/// raises RLIMIT_MEMLOCK (needed by kernels before 5.11, harmless after)
/// and mounts tracefs when it is not mounted. Returns warnings to print.
pub fn prepare_system() -> Result<Vec<String>, BpfError> {
    // Sessions of several targets start side by side: one at a time here,
    // so that tracefs is mounted once.
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut warnings = Vec::new();
    crate::privileges::check_attach(None).map_err(|e| BpfError::Privileges(e.0))?;
    if !Path::new("/sys/kernel/btf/vmlinux").exists() {
        warnings.push("kernel BTF (/sys/kernel/btf/vmlinux) is missing; continuing (goprobe's programs need no CO-RE)".into());
    }
    raise_memlock(&mut warnings);
    if !Path::new("/sys/bus/event_source/devices/uprobe/type").exists() && !tracefs_mounted() {
        mount_tracefs(&mut warnings);
    }
    Ok(warnings)
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK; later ones to
/// the memory cgroup. Raise the soft limit to the hard one (or to infinity
/// where allowed); warn only when the limit stays low on an old kernel.
fn raise_memlock(warnings: &mut Vec<String>) {
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into a valid rlimit struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut cur) } != 0 {
        return;
    }
    let want = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads a valid, initialized rlimit struct.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &want) } == 0 {
        return;
    }
    let soft = libc::rlimit {
        rlim_cur: cur.rlim_max,
        rlim_max: cur.rlim_max,
    };
    // SAFETY: as above.
    let raised = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &soft) } == 0;
    let limit = if raised { cur.rlim_max } else { cur.rlim_cur };
    if limit != libc::RLIM_INFINITY && limit < (64 << 20) && kernel_before_5_11() {
        warnings.push(format!("RLIMIT_MEMLOCK is {limit} bytes and cannot be raised; loading may fail on this kernel (before 5.11)"));
    }
}

fn kernel_before_5_11() -> bool {
    let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") else {
        return false;
    };
    let mut parts = release
        .trim()
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (major, minor) < (5, 11)
}

fn tracefs_mounted() -> bool {
    std::fs::read_to_string("/proc/mounts")
        .is_ok_and(|m| m.lines().any(|l| l.split(' ').nth(2) == Some("tracefs")))
}

fn mount_tracefs(warnings: &mut Vec<String>) {
    let (src, target, fstype) = (c"tracefs", c"/sys/kernel/tracing", c"tracefs");
    // SAFETY: all pointers are valid NUL-terminated strings; data may be null.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        warnings.push(format!(
            "could not mount tracefs on /sys/kernel/tracing: {}",
            std::io::Error::last_os_error()
        ));
    }
}
