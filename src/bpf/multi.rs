//! uprobe_multi links (Linux 6.6+): one link per program for all its
//! attach points, instead of one perf event per uprobe.
//!
//! Why: the kernel removes a perf-event uprobe under a global mutex, waiting
//! for RCU grace periods each time (about 100 ms apiece on this VM, longer
//! on a loaded machine): two dozen uprobes took 2–3 s to detach, one after
//! the other, and every other goprobe on the machine waited in line. A
//! uprobe_multi link removes all its uprobes and then waits once.
//!
//! aya (0.14) loads programs without the attach type such links need, so
//! the programs of an object are loaded here: the object is parsed again
//! with aya-obj, its instructions relocated against the maps aya created
//! (the programs and aya's handles share those maps), and each program
//! loaded with `expected_attach_type = BPF_TRACE_UPROBE_MULTI`. Kernels
//! without uprobe_multi use aya's perf-event uprobes instead.

use std::collections::{HashMap, HashSet};
use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::sync::OnceLock;

use aya::Ebpf;
use aya::maps::Map;
use aya_obj::generated::{bpf_attach_type, bpf_attr, bpf_cmd, bpf_insn, bpf_prog_type};

use super::{BpfError, verifier_reason};

/// True when the kernel has uprobe_multi links (probed once, the way
/// libbpf does: a link on `/` fails with EBADF only where they exist).
pub fn supported() -> bool {
    static SUPPORTED: OnceLock<bool> = OnceLock::new();
    *SUPPORTED.get_or_init(|| {
        // r0 = 0; exit
        let insns = [
            bpf_insn {
                code: 0xb7,
                _bitfield_align_1: [],
                _bitfield_1: bpf_insn::new_bitfield_1(0, 0),
                off: 0,
                imm: 0,
            },
            bpf_insn {
                code: 0x95,
                _bitfield_align_1: [],
                _bitfield_1: bpf_insn::new_bitfield_1(0, 0),
                off: 0,
                imm: 0,
            },
        ];
        let Ok(prog) = prog_load("gp_probe_multi", &insns, c"GPL", None) else {
            return false;
        };
        match link(prog.as_fd(), c"/", &[0], &[0], None) {
            Ok(_) => false,
            Err(e) => e.raw_os_error() == Some(libc::EBADF),
        }
    })
}

/// Load every program of `object` (already loaded into `ebpf` by aya,
/// whose maps the programs use), by name.
pub fn load_programs(object: &[u8], ebpf: &Ebpf) -> Result<HashMap<String, OwnedFd>, BpfError> {
    let mut obj = aya_obj::Object::parse(object)
        .map_err(|e| BpfError::Relocate(format!("parsing the object: {e}")))?;
    let mut fds: HashMap<String, BorrowedFd<'_>> = HashMap::new();
    for (name, map) in ebpf.maps() {
        if let Some(fd) = map_fd(map) {
            fds.insert(name.to_owned(), fd);
        }
    }
    let text_sections: HashSet<usize> = obj.functions.keys().map(|(s, _)| *s).collect();
    let maps: Vec<(String, i32, aya_obj::Map)> = obj
        .maps
        .iter()
        .filter_map(|(name, m)| Some((name.clone(), fds.get(name)?.as_raw_fd(), m.clone())))
        .collect();
    obj.relocate_maps(
        maps.iter().map(|(n, fd, m)| (n.as_str(), *fd, m)),
        &text_sections,
    )
    .map_err(|e| BpfError::Relocate(e.to_string()))?;
    obj.relocate_calls(&text_sections)
        .map_err(|e| BpfError::Relocate(e.to_string()))?;
    let mut out = HashMap::new();
    for (name, prog) in &obj.programs {
        let Some(function) = obj.functions.get(&prog.function_key()) else {
            return Err(BpfError::MissingProgram(name.clone()));
        };
        let result = super::retry_interrupted(
            || prog_load(name, &function.instructions, &prog.license, None),
            |e: &std::io::Error| Some(e),
        );
        let fd = match result {
            Ok(fd) => fd,
            // EPERM is never the verifier's: privileges are missing, or BPF
            // is restricted (kernel lockdown).
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                return Err(BpfError::Privileges(format!(
                    "loading eBPF program {name} was refused ({e}): it needs root or CAP_BPF + \
                     CAP_PERFMON, and BPF must not be locked down (kernel lockdown=confidentiality)"
                )));
            }
            Err(e) if super::interrupted(&e) => {
                return Err(BpfError::Interrupted(name.clone()));
            }
            Err(first) => {
                // Again with the verifier's log, to say why.
                let mut log = vec![0u8; 16 << 20];
                let err = prog_load(name, &function.instructions, &prog.license, Some(&mut log))
                    .err()
                    .unwrap_or(first);
                let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
                let text = String::from_utf8_lossy(&log[..end]);
                return Err(BpfError::Rejected {
                    program: name.clone(),
                    reason: verifier_reason(&text, &err),
                });
            }
        };
        out.insert(name.clone(), fd);
    }
    Ok(out)
}

/// The fd of a map of a type goprobe's objects use.
fn map_fd(map: &Map) -> Option<BorrowedFd<'_>> {
    let data = match map {
        Map::Array(d)
        | Map::PerCpuArray(d)
        | Map::HashMap(d)
        | Map::LruHashMap(d)
        | Map::PerCpuHashMap(d)
        | Map::PerCpuLruHashMap(d)
        | Map::RingBuf(d)
        | Map::StackTraceMap(d)
        | Map::PerfEventArray(d)
        | Map::Queue(d)
        | Map::Stack(d) => d,
        _ => return None,
    };
    Some(data.fd().as_fd())
}

/// BPF_PROG_LOAD of a uprobe_multi program; with `log`, the verifier's log
/// is written there.
fn prog_load(
    name: &str,
    insns: &[bpf_insn],
    license: &CStr,
    log: Option<&mut [u8]>,
) -> std::io::Result<OwnedFd> {
    // SAFETY: bpf_attr is a union of plain integer structs, valid when zeroed.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    // SAFETY: writing the BPF_PROG_LOAD member of a zeroed union.
    let a = unsafe { &mut attr.__bindgen_anon_3 };
    a.prog_type = bpf_prog_type::BPF_PROG_TYPE_KPROBE as u32;
    a.expected_attach_type = bpf_attach_type::BPF_TRACE_UPROBE_MULTI as u32;
    a.insns = insns.as_ptr() as u64;
    a.insn_cnt = insns.len() as u32;
    a.license = license.as_ptr() as u64;
    // The kernel keeps 15 bytes of the name (bpftool, the kernel's lists).
    let cname = CString::new(
        name.as_bytes()
            .iter()
            .copied()
            .take(15)
            .collect::<Vec<u8>>(),
    )
    .unwrap_or_default();
    for (d, s) in a.prog_name.iter_mut().zip(cname.as_bytes()) {
        *d = *s as libc::c_char;
    }
    if let Some(buf) = log {
        a.log_level = 1;
        a.log_buf = buf.as_mut_ptr() as u64;
        a.log_size = buf.len() as u32;
    }
    sys_bpf(bpf_cmd::BPF_PROG_LOAD, &mut attr)
}

/// BPF_LINK_CREATE of a uprobe_multi link: `prog` at every file offset of
/// `path`, each with its cookie; only in process `pid` when given.
pub fn link(
    prog: BorrowedFd<'_>,
    path: &CStr,
    offsets: &[u64],
    cookies: &[u64],
    pid: Option<u32>,
) -> std::io::Result<OwnedFd> {
    assert_eq!(offsets.len(), cookies.len(), "one cookie per offset");
    // SAFETY: as in prog_load.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    // SAFETY: writing the BPF_LINK_CREATE member of a zeroed union.
    let l = unsafe { &mut attr.link_create };
    l.__bindgen_anon_1.prog_fd = prog.as_raw_fd() as u32;
    l.attach_type = bpf_attach_type::BPF_TRACE_UPROBE_MULTI as u32;
    // SAFETY: writing the uprobe_multi member of a zeroed union.
    let m = unsafe { &mut l.__bindgen_anon_3.uprobe_multi };
    m.path = path.as_ptr() as u64;
    m.offsets = offsets.as_ptr() as u64;
    m.cookies = cookies.as_ptr() as u64;
    m.cnt = offsets.len() as u32;
    m.pid = pid.unwrap_or(0);
    sys_bpf(bpf_cmd::BPF_LINK_CREATE, &mut attr)
}

/// A path as the kernel takes it.
pub fn c_path(path: &Path) -> Result<CString, BpfError> {
    CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| BpfError::Relocate(format!("{}: path with a NUL byte", path.display())))
}

/// The bpf(2) system call for a command that returns a new fd.
fn sys_bpf(cmd: bpf_cmd, attr: &mut bpf_attr) -> std::io::Result<OwnedFd> {
    // SAFETY: attr is a valid, initialized bpf_attr of the size given, and
    // every pointer in it points at memory that outlives the call.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            std::ptr::from_mut(attr),
            std::mem::size_of::<bpf_attr>(),
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: the command returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(rc as i32) })
}

/// Uprobes the kernel holds for BPF links, from its list of every BPF
/// link on the machine: for tests that check goprobe leaves none behind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KernelUprobes {
    /// The binary (uprobe_multi: the path resolved; perf event: as given).
    pub path: String,
    /// The process they are limited to, when the kernel says (uprobe_multi).
    pub pid: Option<u32>,
    pub count: u32,
}

/// Every BPF link that holds uprobes (uprobe_multi links, and perf-event
/// links of uprobes).
pub fn kernel_uprobes() -> std::io::Result<Vec<KernelUprobes>> {
    use aya_obj::generated::{bpf_link_info, bpf_link_type, bpf_perf_event_type};
    let mut out = Vec::new();
    let mut id = 0u32;
    loop {
        // SAFETY: as in prog_load.
        let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
        attr.__bindgen_anon_6.__bindgen_anon_1.start_id = id;
        match sys_bpf_int(bpf_cmd::BPF_LINK_GET_NEXT_ID, &mut attr) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => break,
            Err(e) => return Err(e),
        }
        // SAFETY: the kernel filled next_id.
        id = unsafe { attr.__bindgen_anon_6.next_id };
        // SAFETY: as above.
        let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
        attr.__bindgen_anon_6.__bindgen_anon_1.link_id = id;
        let fd = match sys_bpf(bpf_cmd::BPF_LINK_GET_FD_BY_ID, &mut attr) {
            Ok(fd) => fd,
            // Gone since it was listed.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(e) => return Err(e),
        };
        let mut path = vec![0u8; 4096];
        // SAFETY: bpf_link_info is plain integers, valid when zeroed.
        let mut info: bpf_link_info = unsafe { std::mem::zeroed() };
        let kind = link_info(fd.as_fd(), &mut info)?;
        let found = if kind == bpf_link_type::BPF_LINK_TYPE_UPROBE_MULTI as u32 {
            // SAFETY: the uprobe_multi member of a zeroed union.
            let m = unsafe { &mut info.__bindgen_anon_1.uprobe_multi };
            m.path = path.as_mut_ptr() as u64;
            m.path_size = path.len() as u32;
            link_info(fd.as_fd(), &mut info)?;
            // SAFETY: as above, filled by the kernel.
            let m = unsafe { info.__bindgen_anon_1.uprobe_multi };
            Some(((m.pid != 0).then_some(m.pid), m.count))
        } else if kind == bpf_link_type::BPF_LINK_TYPE_PERF_EVENT as u32 {
            // SAFETY: the perf_event member of a zeroed union.
            let p = unsafe { &mut info.__bindgen_anon_1.perf_event };
            // SAFETY: the uprobe member of the perf_event union.
            let u = unsafe { &mut p.__bindgen_anon_1.uprobe };
            u.file_name = path.as_mut_ptr() as u64;
            u.name_len = path.len() as u32;
            link_info(fd.as_fd(), &mut info)?;
            // SAFETY: filled by the kernel.
            let p = unsafe { info.__bindgen_anon_1.perf_event };
            (p.type_ == bpf_perf_event_type::BPF_PERF_EVENT_UPROBE as u32).then_some((None, 1))
        } else {
            None
        };
        if let Some((pid, count)) = found {
            let end = path.iter().position(|b| *b == 0).unwrap_or(0);
            out.push(KernelUprobes {
                path: String::from_utf8_lossy(&path[..end]).into_owned(),
                pid,
                count,
            });
        }
    }
    Ok(out)
}

/// BPF_OBJ_GET_INFO_BY_FD of a link into `info`; the link's type.
fn link_info(
    fd: BorrowedFd<'_>,
    info: &mut aya_obj::generated::bpf_link_info,
) -> std::io::Result<u32> {
    // SAFETY: as in prog_load.
    let mut attr: bpf_attr = unsafe { std::mem::zeroed() };
    attr.info.bpf_fd = fd.as_raw_fd() as u32;
    attr.info.info_len = std::mem::size_of_val(info) as u32;
    attr.info.info = std::ptr::from_mut(info) as u64;
    sys_bpf_int(bpf_cmd::BPF_OBJ_GET_INFO_BY_FD, &mut attr)?;
    Ok(info.type_)
}

/// The bpf(2) system call for a command that returns 0 on success.
fn sys_bpf_int(cmd: bpf_cmd, attr: &mut bpf_attr) -> std::io::Result<i64> {
    // SAFETY: as in sys_bpf.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            std::ptr::from_mut(attr),
            std::mem::size_of::<bpf_attr>(),
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(rc)
}
