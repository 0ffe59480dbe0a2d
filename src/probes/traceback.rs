//! A goroutine's stack in the format the Go runtime prints it when a panic
//! crashes the program (`runtime/traceback.go`, `GOTRACEBACK=single`, the
//! default), for `exception.stacktrace`:
//!
//! ```text
//! (each position line starts with a tab, shown here as spaces)
//! goroutine 7 [running]:
//! main.deep(...)
//!     /src/main.go:97
//! main.handler()
//!     /src/main.go:120 +0x2a
//! created by net/http.(*Server).Serve in goroutine 1
//!     /usr/lib/go/src/net/http/server.go:3285 +0x4b4
//! ```
//!
//! The runtime's rules, as of Go 1.19 through 1.27: unexported `runtime.`
//! functions are left out (exported ones, and `runtime.gopanic` — printed
//! `panic` — when it is not the first frame, are shown); so are
//! compiler-generated wrappers, unless they called `gopanic`, `sigpanic` or
//! `panicwrap`; an inlined call prints `(...)` and no offset; a physical
//! frame prints `+0x` and the distance of its pc (the return address) from
//! its function's entry. Arguments are not read: every frame prints `(...)`.
//! The "created by" line names the function with the `go` statement (its
//! physical function), and from Go 1.21 the goroutine that ran it.

use std::fmt::Write as _;

use super::stacks::{Logical, PhysFrame};

/// How the goroutine was started, for the "created by" line.
pub struct CreatedBy<'a> {
    /// The frame at `g.gopc` (a return address).
    pub at: &'a PhysFrame,
    /// `g.parentGoid` (0: not known, before Go 1.21).
    pub parent_goid: u64,
}

/// Go's traceback of goroutine `goid` from `stack` (the first frame is the
/// innermost; at a panic, `runtime.gopanic` itself). `truncated`: the
/// capture stopped at its depth limit.
pub fn format(
    goid: u64,
    stack: &[PhysFrame],
    created: Option<CreatedBy<'_>>,
    truncated: bool,
) -> String {
    let mut out = format!("goroutine {goid} [running]:\n");
    let mut printed = 0usize;
    let mut callee = "";
    for p in stack {
        for f in p.frames.iter() {
            let shown = show(f, printed == 0, callee);
            callee = &f.function;
            if !shown {
                continue;
            }
            printed += 1;
            let _ = writeln!(out, "{}(...)", print_name(&f.function));
            let _ = write!(out, "\t{}:{}", f.file, f.line);
            let pc = p.link_pc();
            if !f.inlined && f.entry != 0 && pc > f.entry {
                let _ = write!(out, " +{:#x}", pc - f.entry);
            }
            out.push('\n');
        }
    }
    if truncated {
        out.push_str("...additional frames elided...\n");
    }
    if let Some(c) = created
        && goid != 1
    {
        created_by(&mut out, &c);
    }
    out
}

fn created_by(out: &mut String, c: &CreatedBy<'_>) {
    let (Some(inner), Some(physical)) = (c.at.frames.first(), c.at.frames.last()) else {
        return;
    };
    if physical.entry == 0 || !show(physical, false, "") {
        return;
    }
    let _ = write!(out, "created by {}", print_name(&physical.function));
    if c.parent_goid != 0 {
        let _ = write!(out, " in goroutine {}", c.parent_goid);
    }
    // The file and line are the innermost frame's at the go statement (the
    // runtime reads the physical function's line table there).
    let _ = write!(out, "\n\t{}:{}", inner.file, inner.line);
    let pc = c.at.link_pc();
    if pc > physical.entry {
        let _ = write!(out, " +{:#x}", pc - physical.entry);
    }
    out.push('\n');
}

/// `printFuncName`.
fn print_name(name: &str) -> &str {
    if name == "runtime.gopanic" {
        "panic"
    } else {
        name
    }
}

/// `showfuncinfo` at the default traceback level.
fn show(f: &Logical, first: bool, callee: &str) -> bool {
    let calls_panic = matches!(
        callee,
        "runtime.gopanic" | "runtime.sigpanic" | "runtime.panicwrap"
    );
    if f.wrapper && !calls_panic {
        return false;
    }
    let name = f.function.as_str();
    if name == "runtime.runFinalizers" || name == "runtime.runCleanups" {
        return true;
    }
    if name == "runtime.gopanic" && !first {
        return true;
    }
    name.contains('.') && (!name.starts_with("runtime.") || exported_runtime(name))
}

/// `isExportedRuntime`: `runtime.F`, or an exported method of an exported
/// runtime type.
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn logical(function: &str, line: u32, inlined: bool, entry: u64) -> Logical {
        Logical {
            function: function.into(),
            file: "/src/main.go".into(),
            line,
            inlined,
            entry,
            wrapper: false,
        }
    }

    fn phys(pc: u64, is_return: bool, frames: Vec<Logical>) -> PhysFrame {
        PhysFrame {
            pc,
            lookup: pc - u64::from(is_return),
            is_return,
            frames: Arc::from(frames),
        }
    }

    #[test]
    fn prints_what_the_runtime_prints() {
        let stack = vec![
            phys(
                0x1000,
                false,
                vec![logical("runtime.gopanic", 700, false, 0x1000)],
            ),
            phys(
                0x2040,
                true,
                vec![
                    logical("main.deep", 97, true, 0x2000),
                    logical("main.handler", 120, false, 0x2000),
                ],
            ),
            phys(
                0x3010,
                true,
                vec![logical("runtime.goexit", 1700, false, 0x3000)],
            ),
        ];
        let gopc = phys(
            0x4080,
            true,
            vec![logical("net/http.(*Server).Serve", 3285, false, 0x4000)],
        );
        let text = format(
            7,
            &stack,
            Some(CreatedBy {
                at: &gopc,
                parent_goid: 1,
            }),
            false,
        );
        assert_eq!(
            text,
            "goroutine 7 [running]:\nmain.deep(...)\n\t/src/main.go:97\nmain.handler(...)\n\t/src/main.go:120 +0x40\ncreated by net/http.(*Server).Serve in goroutine 1\n\t/src/main.go:3285 +0x80\n"
        );
    }

    #[test]
    fn runtime_frames_by_the_runtime_rules() {
        assert!(!show(&logical("runtime.gopanic", 1, false, 1), true, ""));
        assert!(show(&logical("runtime.gopanic", 1, false, 1), false, ""));
        assert!(!show(&logical("runtime.goexit", 1, false, 1), false, ""));
        assert!(show(&logical("runtime.Goexit", 1, false, 1), false, ""));
        assert!(show(
            &logical("runtime.(*Func).Name", 1, false, 1),
            false,
            ""
        ));
        assert!(!show(
            &logical("runtime.(*mheap).alloc", 1, false, 1),
            false,
            ""
        ));
        assert!(show(
            &logical("runtime/debug.Stack", 1, false, 1),
            false,
            ""
        ));
        let mut w = logical("main.T.M", 1, false, 1);
        w.wrapper = true;
        assert!(!show(&w, false, "main.(*T).M"));
        assert!(show(&w, false, "runtime.gopanic"));
        assert_eq!(print_name("runtime.gopanic"), "panic");
    }
}
