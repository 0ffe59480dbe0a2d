//! Logical frames of a walked stack, as the runtime's tracebacks see them:
//! every physical frame expanded into its inlined calls (innermost first),
//! compiler-generated wrappers marked where the runtime leaves them out, and
//! the logical pc of each (`runtime.Callers` reports `pc + 1`).

use super::Runtime;
use super::unwind::{PhysFrame, Walk};

/// One logical frame, with runtime addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicalFrame {
    pub function: String,
    pub file: String,
    pub line: u32,
    pub start_line: Option<u32>,
    pub inlined: bool,
    /// The logical pc (runtime address); `pc + 1` is what profiles record.
    pub pc: u64,
    /// The physical frame's pc (a return address, or the interrupted pc).
    pub frame_pc: u64,
    /// Entry of the physical function (runtime address).
    pub entry: u64,
    /// A wrapper the runtime elides here (`runtime.Callers` and tracebacks
    /// skip it unless it called a panic).
    pub elided: bool,
    pub func_id: u8,
    /// Index of the physical frame this belongs to.
    pub physical: usize,
    /// The frame pointer of the physical frame (for argument reads).
    pub fp: u64,
    /// The argument list a traceback prints (physical frames; see [`args_text`]).
    pub args: Option<String>,
}

/// FuncIDs of the panic functions a wrapper may call and still be shown
/// (`elideWrapperCalling`): gopanic, sigpanic, panicwrap.
#[derive(Debug, Clone, Copy, Default)]
pub struct PanicIds {
    ids: [Option<u8>; 3],
}

impl PanicIds {
    pub fn of(rt: &Runtime<'_>) -> PanicIds {
        PanicIds {
            ids: [
                rt.func_id("runtime.gopanic"),
                rt.func_id("runtime.sigpanic"),
                rt.func_id("runtime.panicwrap"),
            ],
        }
    }

    /// Whether a wrapper whose callee has FuncID `callee` is left out.
    fn elides(&self, callee: u8) -> bool {
        !self.ids.contains(&Some(callee))
    }
}

/// Expand physical frames into logical ones.
pub fn logical(rt: &Runtime<'_>, panics: PanicIds, frames: &[PhysFrame]) -> Vec<LogicalFrame> {
    let mut out = Vec::new();
    // The runtime starts with FuncIDNormal (0) as the "callee" of the innermost frame.
    let mut callee: u8 = 0;
    for (i, pf) in frames.iter().enumerate() {
        let Some(link) = pf.pc.checked_sub(rt.bias) else {
            continue;
        };
        let Some(f) = rt.sym.func(link) else { continue };
        let entry = f.entry() + rt.bias;
        let sym_pc = pf.sym_pc(entry);
        rt.sym.walk_frames(sym_pc - rt.bias, |lf| {
            let wrapper = rt.sym.is_wrapper(lf.func_id) == Some(true);
            out.push(LogicalFrame {
                function: lf.function.to_string(),
                file: lf.file.to_string(),
                line: lf.line,
                start_line: lf.start_line,
                inlined: lf.inlined,
                pc: lf.pc + rt.bias,
                frame_pc: pf.pc,
                entry,
                elided: wrapper && panics.elides(callee),
                func_id: lf.func_id,
                physical: i,
                fp: pf.fp,
                args: None,
            });
            callee = lf.func_id;
            true
        });
    }
    out
}

/// The pcs `runtime.Callers` would give for these frames (logical pc + 1,
/// elided wrappers left out), innermost first.
pub fn callers_pcs(frames: &[LogicalFrame]) -> Vec<u64> {
    frames
        .iter()
        .filter(|f| !f.elided)
        .map(|f| f.pc + 1)
        .collect()
}

/// Bytes of the binary at a link-time address, if the file holds them.
fn file_bytes<'b>(rt: &Runtime<'b>, addr: u64, len: usize) -> Option<&'b [u8]> {
    let bin = rt.sym.binary();
    let off = usize::try_from(bin.vaddr_to_file_offset(addr)?).ok()?;
    bin.data().get(off..off.checked_add(len)?)
}

/// The argument list a traceback prints for a physical frame (`printArgs`):
/// the words the compiler's FUNCDATA `ArgInfo` program names, read from the
/// frame's argument area (its frame pointer, amd64) with `read`, `?` after
/// those the liveness map says may be stale, `{...}` for aggregates, `...`
/// where the compiler cut the list. Empty when the function has no
/// `ArgInfo`; `None` when the frame is inlined (the runtime prints `...`).
pub fn args_text(
    rt: &Runtime<'_>,
    frame: &LogicalFrame,
    read: &dyn Fn(u64) -> Option<u64>,
) -> Option<String> {
    use crate::gobin::symbolize::{
        FUNCDATA_ARG_INFO, FUNCDATA_ARG_LIVE_INFO, PCDATA_ARG_LIVE_INDEX,
    };
    // Encoding (cmd/compile's emitArgInfo, runtime's printArgs; Go 1.18+).
    const END_SEQ: u8 = 0xff;
    const START_AGG: u8 = 0xfe;
    const END_AGG: u8 = 0xfd;
    const DOTDOTDOT: u8 = 0xfc;
    const OFFSET_TOO_LARGE: u8 = 0xfb;
    const MAX_LEN: usize = (5 * 3 + 2) * 10 + 1;
    if frame.inlined {
        return None;
    }
    let f = rt.sym.func(frame.entry - rt.bias)?;
    let Some(info_at) = f.funcdata(FUNCDATA_ARG_INFO) else {
        return Some(String::new());
    };
    let prog = file_bytes(rt, info_at, MAX_LEN).or_else(|| {
        // Near the end of the section: take what there is.
        (1..MAX_LEN).rev().find_map(|n| file_bytes(rt, info_at, n))
    })?;
    let sym_pc = if frame.frame_pc > frame.entry {
        frame.frame_pc - 1
    } else {
        frame.frame_pc
    };
    let live_info = f.funcdata(FUNCDATA_ARG_LIVE_INFO);
    let live_idx = f
        .pcdata(PCDATA_ARG_LIVE_INDEX, sym_pc - rt.bias)
        .unwrap_or(-1);
    let start_offset = live_info
        .and_then(|a| file_bytes(rt, a, 1))
        .map_or(0xff, |b| b[0]);
    let is_live = |off: u8, slot: u8| -> bool {
        let Some(info) = live_info else { return true };
        if live_idx <= 0 || off < start_offset {
            return true;
        }
        let at = info.checked_add(live_idx as u64 + u64::from(slot / 8));
        at.and_then(|a| file_bytes(rt, a, 1))
            .is_some_and(|b| b[0] & (1 << (slot % 8)) != 0)
    };
    let mut out = String::new();
    let mut start = true;
    let mut slot: u8 = 0;
    let mut i = 0;
    let comma = |out: &mut String, start: bool| {
        if !start {
            out.push_str(", ");
        }
    };
    while let Some(&op) = prog.get(i) {
        i += 1;
        match op {
            END_SEQ => break,
            START_AGG => {
                comma(&mut out, start);
                out.push('{');
                start = true;
                continue;
            }
            END_AGG => out.push('}'),
            DOTDOTDOT => {
                comma(&mut out, start);
                out.push_str("...");
            }
            OFFSET_TOO_LARGE => {
                comma(&mut out, start);
                out.push('_');
            }
            off => {
                comma(&mut out, start);
                let size = *prog.get(i)?;
                i += 1;
                let mut x = read(frame.fp.checked_add(u64::from(off))?)?;
                if size < 8 {
                    let shift = 64 - u32::from(size) * 8;
                    x = (x << shift) >> shift;
                }
                out.push_str(&format!("{x:#x}"));
                if !is_live(off, slot) {
                    out.push('?');
                }
                if off >= start_offset {
                    slot = slot.wrapping_add(1);
                }
            }
        }
        start = false;
    }
    Some(out)
}

/// Logical frames of a walk (empty when there is none).
pub fn of_walk(rt: &Runtime<'_>, panics: PanicIds, walk: Option<&Walk>) -> Vec<LogicalFrame> {
    walk.map(|w| logical(rt, panics, &w.frames))
        .unwrap_or_default()
}

/// Whether the runtime's default traceback (GOTRACEBACK=single, as in
/// `runtime.Stack` and `debug=2` dumps) shows a frame (`showfuncinfo`):
/// exported runtime functions and everything outside the runtime; the
/// panic boundary `runtime.gopanic` except as the first frame; the finalizer
/// and cleanup runners (Go 1.26+) always.
pub fn shown(name: &str, first: bool) -> bool {
    if name == "runtime.gopanic" && !first {
        return true;
    }
    if name == "runtime.runFinalizers" || name == "runtime.runCleanups" {
        return true;
    }
    name.contains('.') && (!name.starts_with("runtime.") || exported_runtime(name))
}

/// `runtime.Foo` or `runtime.(*Foo).Bar`: exported functions and exported
/// methods of exported types of package runtime.
fn exported_runtime(name: &str) -> bool {
    let Some(rest) = name.strip_prefix("runtime.") else {
        return false;
    };
    let (rcvr, func) = match rest.rfind('.') {
        Some(i) => {
            let r = &rest[..i];
            let r = r
                .strip_prefix("(*")
                .and_then(|r| r.strip_suffix(')'))
                .unwrap_or(r);
            (r, &rest[i + 1..])
        }
        None => ("", rest),
    };
    let upper = |s: &str| s.chars().next().is_some_and(|c| c.is_ascii_uppercase());
    upper(func) && (rcvr.is_empty() || upper(rcvr))
}

/// A function name as tracebacks print it (`printFuncName`): as
/// [`name_for_print`], and `runtime.gopanic` as `panic`.
pub fn print_name(name: &str) -> String {
    if name == "runtime.gopanic" {
        return "panic".to_string();
    }
    name_for_print(name)
}

/// A function name with everything from its first `[` to its last `]` as
/// `[...]` (`funcNameForPrint`: generic type arguments; `runtime.Frame`
/// names functions this way from Go 1.21).
pub fn name_for_print(name: &str) -> String {
    match (name.find('['), name.rfind(']')) {
        (Some(a), Some(b)) if a < b => format!("{}[...]{}", &name[..a], &name[b + 1..]),
        _ => name.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_frames_shown_as_the_runtime_does() {
        assert!(!shown("runtime.gopark", false));
        assert!(!shown("runtime.chanrecv1", true));
        assert!(shown("runtime.Gosched", true));
        assert!(shown("runtime.(*Func).Name", false));
        assert!(!shown("runtime.(*mheap).alloc", false));
        assert!(shown("runtime.gopanic", false));
        assert!(!shown("runtime.gopanic", true));
        assert!(shown("main.main", true));
        assert!(shown("sync.runtime_SemacquireMutex", true));
        assert!(!shown("nodot", true));
    }

    #[test]
    fn names_print_like_tracebacks() {
        assert_eq!(print_name("main.F[go.shape.int]"), "main.F[...]");
        assert_eq!(print_name("main.(*T[...]).M"), "main.(*T[...]).M");
        assert_eq!(print_name("runtime.gopanic"), "panic");
        assert_eq!(print_name("main.main"), "main.main");
    }
}
