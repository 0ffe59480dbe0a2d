//! The goroutine dump in the format of Go's own `debug=2` dump
//! (`/debug/pprof/goroutine?debug=2`, `runtime.Stack(buf, true)`), as the
//! runtime's `goroutineheader` and `traceback` print it at the default
//! traceback level:
//!
//! ```text
//! goroutine 18 [chan receive, 3 minutes]:
//! main.worker(0xc000012345?)
//!     /src/main.go:30 +0x45
//! created by main.main in goroutine 1
//!     /src/main.go:20 +0x85
//! ```
//!
//! Position lines start with a tab. A stack goprobe could not walk to its
//! top ends where the walk stopped (the NDJSON form says why).
//! Runtime-internal frames and goroutines are left out as the runtime does
//! (`all` keeps them, like `GOTRACEBACK=system`); at most 100 frames per
//! goroutine, the middle ones elided (Go 1.21+: "...N frames elided...";
//! before: the first 100 and "...additional frames elided...").

use std::io::{self, Write};

use super::Runtime;
use super::snapshot::{Goroutine, StackState};
use super::stacks::{LogicalFrame, print_name, shown};
use crate::gobin::types::GoRelease;

/// `tracebackInnerFrames`, `tracebackOuterFrames` (Go 1.21+) and
/// `_TracebackMaxFrames` (before).
const INNER: usize = 50;
const OUTER: usize = 50;
const MAX_OLD: usize = 100;

/// The frames a traceback prints for `g`: shown ones, or all when none is
/// shown (the runtime's fallback) or when `all`.
fn printed(g: &Goroutine, all: bool) -> Vec<&LogicalFrame> {
    let pick = |all: bool| -> Vec<&LogicalFrame> {
        let mut n = 0;
        g.frames
            .iter()
            .filter(|f| {
                let keep = all || (!f.elided && shown(&f.function, n == 0));
                if keep {
                    n += 1;
                }
                keep
            })
            .collect()
    };
    let frames = pick(all);
    if frames.is_empty() {
        pick(true)
    } else {
        frames
    }
}

fn write_frame(w: &mut dyn Write, f: &LogicalFrame) -> io::Result<()> {
    let args = if f.inlined {
        "..."
    } else {
        f.args.as_deref().unwrap_or("")
    };
    writeln!(w, "{}({args})", print_name(&f.function))?;
    write!(w, "\t{}:{}", f.file, f.line)?;
    if !f.inlined && f.frame_pc > f.entry {
        write!(w, " +{:#x}", f.frame_pc - f.entry)?;
    }
    writeln!(w)
}

/// The header line: `goroutine N [state, M minutes, locked to thread]:`.
pub fn header(g: &Goroutine) -> String {
    let mut h = format!("goroutine {} [{}", g.id, g.state());
    if g.status == "leaked" {
        h.push_str(" (leaked)");
    }
    if g.scan {
        h.push_str(" (scan)");
    }
    if g.wait_minutes() >= 1 {
        h.push_str(&format!(", {} minutes", g.wait_minutes()));
    }
    if g.locked_to_thread {
        h.push_str(", locked to thread");
    }
    h.push_str("]:");
    h
}

/// One goroutine's entry.
pub fn write_goroutine(
    w: &mut dyn Write,
    rt: &Runtime<'_>,
    g: &Goroutine,
    all: bool,
) -> io::Result<()> {
    writeln!(w, "{}", header(g))?;
    match &g.stack {
        StackState::Running if g.frames.is_empty() => {
            writeln!(w, "\tgoroutine running on other thread; stack unavailable")?;
        }
        _ => {
            let frames = printed(g, all);
            let new_style = rt.release.is_none_or(|r| {
                r >= GoRelease {
                    major: 1,
                    minor: 21,
                }
            });
            if new_style && frames.len() > INNER + OUTER {
                for f in &frames[..INNER] {
                    write_frame(w, f)?;
                }
                writeln!(w, "...{} frames elided...", frames.len() - INNER - OUTER)?;
                for f in &frames[frames.len() - OUTER..] {
                    write_frame(w, f)?;
                }
            } else if !new_style && frames.len() >= MAX_OLD {
                for f in &frames[..MAX_OLD] {
                    write_frame(w, f)?;
                }
                writeln!(w, "...additional frames elided...")?;
            } else {
                for f in frames {
                    write_frame(w, f)?;
                }
            }
        }
    }
    write_created_by(w, rt, g, all)
}

/// `created by F in goroutine P` and the `go` statement's position (not for
/// the main goroutine, nor when the creator is hidden).
fn write_created_by(
    w: &mut dyn Write,
    rt: &Runtime<'_>,
    g: &Goroutine,
    all: bool,
) -> io::Result<()> {
    if g.id == 1 || g.gopc == 0 {
        return Ok(());
    }
    let Some(f) = g.gopc.checked_sub(rt.bias).and_then(|pc| rt.sym.func(pc)) else {
        return Ok(());
    };
    let name = f.name();
    if !(all || shown(name, false)) {
        return Ok(());
    }
    write!(w, "created by {}", print_name(name))?;
    if let Some(p) = g.parent_id {
        write!(w, " in goroutine {p}")?;
    }
    writeln!(w)?;
    let entry = f.entry() + rt.bias;
    let at = if g.gopc > entry { g.gopc - 1 } else { g.gopc };
    let (file, line) = f.file_line(at - rt.bias);
    write!(w, "\t{file}:{line}")?;
    if g.gopc > entry {
        write!(w, " +{:#x}", g.gopc - entry)?;
    }
    writeln!(w)
}

/// Every goroutine the runtime's dump would show (system goroutines only
/// with `all`), separated by blank lines.
pub fn write(w: &mut dyn Write, rt: &Runtime<'_>, gs: &[Goroutine], all: bool) -> io::Result<()> {
    let mut first = true;
    for g in gs.iter().filter(|g| all || !g.system) {
        if !first {
            writeln!(w)?;
        }
        first = false;
        write_goroutine(w, rt, g, all)?;
    }
    Ok(())
}
