//! Attach sessions: the probes goprobe attaches to one Go binary (one
//! process or every process running it), family by family, streaming
//! completed calls as [`crate::stream`] lines; several sessions (one per
//! target) merged into one stream, so that one recording sees both ends of
//! a call between traced programs.
//!
//! [`plan`] decides what to attach (hooks and configuration per family),
//! [`session`] loads and attaches each family's object and merges their
//! events, [`streaming`] runs it until it should stop.

mod offsets;
pub mod plan;
pub mod session;
pub mod streaming;

use std::path::PathBuf;
use std::time::Duration;

pub use offsets::Offsets;
pub use plan::{FamilyPlan, Hook, Plan, Target};
pub use session::Session;
pub use streaming::{StopWhen, StreamError, StreamSummary, stream};

use crate::bpf::BpfError;
use crate::catalog::{self, Catalog};
use crate::stream::{Line, TargetInfo};

/// The probes `goprobe attach` attaches when none are named: every probe in
/// the catalog; those the binary cannot support are skipped with a note.
pub const DEFAULT_PROBES: &str = "default";

/// CPU samples per second of CPU time with `--cpu` and no rate: a prime
/// near 100, so sampling does not beat in step with periodic work (the
/// usual choice of profilers).
pub const DEFAULT_CPU_HZ: u32 = 99;

#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("offsets line {line}: {msg}")]
    OffsetsSyntax { line: usize, msg: String },
    #[error("unknown probe {name:?} (known: {known})")]
    UnknownProbe { name: String, known: String },
    #[error("no probe can be attached: {0}")]
    NothingToAttach(String),
    #[error(transparent)]
    Catalog(#[from] catalog::CatalogError),
    #[error("catalog: {0}")]
    BadCatalog(String),
    #[error(transparent)]
    Bpf(#[from] BpfError),
}

/// Parse `--probes http.server,db.sql` against the catalog; `default` is
/// every probe not marked `opt_in`, `all` every probe but the CPU sampler
/// (role `sample`: it samples the whole system, so `--cpu` or its name
/// adds it); neither has the internal ones, which the plan adds when the
/// target needs them.
pub fn parse_probes(list: &str) -> Result<Vec<String>, AttachError> {
    let catalog = Catalog::builtin()?;
    let mut out: Vec<String> = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if name == "all" || name == "default" {
            // Internal probes (goroutine creation) are added by the plan
            // when the target needs them; naming one attaches it anyway.
            for p in catalog.probes.iter().filter(|p| !p.internal) {
                let wanted = p.role != catalog::Role::Sample && (name == "all" || !p.opt_in);
                if wanted && !out.contains(&p.name) {
                    out.push(p.name.clone());
                }
            }
            continue;
        }
        if catalog.probe(name).is_none() {
            return Err(AttachError::UnknownProbe {
                name: name.to_owned(),
                known: catalog
                    .probes
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        if !out.iter().any(|p| p == name) {
            out.push(name.to_owned());
        }
    }
    Ok(out)
}

/// One thing to trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetSpec {
    /// Every process running this binary, including ones started later.
    Binary(PathBuf),
    /// One process.
    Pid(u32),
}

/// What `goprobe attach` (and `goprobe record` when it attaches itself) was asked.
#[derive(Debug, Clone)]
pub struct Request {
    /// One session each, their events merged.
    pub targets: Vec<TargetSpec>,
    /// Catalog probe names.
    pub probes: Vec<String>,
    pub offsets: Option<Offsets>,
    pub duration: Option<Duration>,
    /// Attach do-nothing programs instead (benchmark baseline).
    pub baseline_empty: bool,
    /// CPU samples per second (`--cpu`), when `cpu.sample` is among the probes.
    pub cpu_hz: Option<u32>,
    /// Every family's ring buffer size in bytes, instead of its default.
    pub ring_buffer_bytes: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    GoBin(#[from] crate::gobin::GoBinError),
    #[error(transparent)]
    Attach(#[from] AttachError),
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error(transparent)]
    Privileges(#[from] crate::privileges::PrivilegeError),
}

/// A stream that ended, its probes still attached: the caller finishes its
/// output first (so that the end of a recording is not delayed by the
/// kernel's detaching), then detaches them, or drops this.
pub struct Ended {
    pub summary: StreamSummary,
    sessions: Vec<Session>,
}

impl Ended {
    /// Detach the probes of every target; how long it took.
    pub fn detach(mut self) -> Duration {
        self.sessions.iter_mut().map(Session::detach).sum()
    }
}

/// Open the targets, attach, stream lines into `sink` until `stop` is set
/// (the command sets it on Ctrl-C or SIGTERM, and makes `wake` readable),
/// the duration passes, or every process traced by pid has exited. `warn`
/// gets human-readable notes (skipped probes, system warnings, a target
/// that could not be attached: the others still are) and `on_attached` the
/// number of uprobes once they are live. An error when no target could be
/// attached.
pub fn run(
    req: &Request,
    stop: &std::sync::atomic::AtomicBool,
    wake: Option<std::os::fd::BorrowedFd<'_>>,
    warn: &mut dyn FnMut(&str),
    on_attached: &mut dyn FnMut(usize),
    sink: impl FnMut(&Line) -> std::io::Result<()>,
) -> Result<Ended, RunError> {
    // Before anything else: a missing privilege is one line naming it.
    let pids: Vec<u32> = req
        .targets
        .iter()
        .filter_map(|t| match t {
            TargetSpec::Pid(p) => Some(*p),
            TargetSpec::Binary(_) => None,
        })
        .collect();
    if pids.is_empty() {
        crate::privileges::check_attach(None)?;
    }
    for &p in &pids {
        crate::privileges::check_attach(Some(p))?;
    }
    if req.targets.is_empty() {
        return Err(AttachError::NothingToAttach("give a binary path or --pid".into()).into());
    }
    let several = req.targets.len() > 1;
    let mut sessions: Vec<(Session, TargetInfo)> = Vec::new();
    let mut first_binary: Option<Vec<u8>> = None;
    let mut last_error = None;
    for (t, started) in start_all(req, warn, &mut first_binary) {
        match started {
            Ok(s) => sessions.push(s),
            // One target that cannot be traced is a note when others can.
            Err(e) if several => {
                warn(&format!("not tracing {}: {e}", describe(t)));
                last_error = Some(e);
            }
            Err(e) => return Err(e),
        }
    }
    if sessions.is_empty() {
        return Err(
            last_error.unwrap_or_else(|| AttachError::NothingToAttach("no target".into()).into())
        );
    }
    on_attached(sessions.iter().map(|(s, _)| s.links).sum());
    let when = StopWhen {
        signal: stop,
        wake,
        duration: req.duration,
        // Attached by binary too: then the binary's processes come and go.
        pids: if pids.len() == req.targets.len() {
            pids
        } else {
            Vec::new()
        },
    };
    let summary = stream(&mut sessions, &when, sink)?;
    Ok(Ended {
        summary,
        sessions: sessions.into_iter().map(|(s, _)| s).collect(),
    })
}

/// A target's session, started, with what the stream says of it.
type Started = Result<(Session, TargetInfo), RunError>;

/// Start every target's session, each with what `warn` gets about it in
/// target order. Loading a family's programs is mostly the kernel's
/// verifier (a second or more for http.server's entry program on a busy
/// machine), one object per target: several targets load side by side, one
/// thread each. With --offsets, one after the other (every target must run
/// the binary the file describes, checked against the first).
fn start_all<'t>(
    req: &'t Request,
    warn: &mut dyn FnMut(&str),
    first_binary: &mut Option<Vec<u8>>,
) -> Vec<(&'t TargetSpec, Started)> {
    if req.targets.len() < 2 || req.offsets.is_some() {
        return req
            .targets
            .iter()
            .map(|t| (t, start_one(req, t, warn, first_binary)))
            .collect();
    }
    let started: Vec<(Vec<String>, Started)> = std::thread::scope(|scope| {
        let handles: Vec<_> = req
            .targets
            .iter()
            .map(|t| {
                scope.spawn(move || {
                    let mut notes = Vec::new();
                    let r = start_one(req, t, &mut |w| notes.push(w.to_owned()), &mut None);
                    (notes, r)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| match h.join() {
                Ok(x) => x,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    });
    req.targets
        .iter()
        .zip(started)
        .map(|(t, (notes, r))| {
            for n in &notes {
                warn(n);
            }
            (t, r)
        })
        .collect()
}

fn describe(t: &TargetSpec) -> String {
    match t {
        TargetSpec::Binary(p) => p.display().to_string(),
        TargetSpec::Pid(p) => format!("process {p}"),
    }
}

/// Open one target, plan and start its session.
fn start_one(
    req: &Request,
    t: &TargetSpec,
    warn: &mut dyn FnMut(&str),
    first_binary: &mut Option<Vec<u8>>,
) -> Started {
    let (bin, pid) = match t {
        TargetSpec::Pid(pid) => (crate::gobin::GoBinary::open_pid(*pid)?, Some(*pid)),
        TargetSpec::Binary(path) => (crate::gobin::GoBinary::open(path)?, None),
    };
    // Offsets from a file describe one build: every target must run it.
    if req.offsets.is_some() {
        match first_binary {
            None => *first_binary = Some(bin.data().to_vec()),
            Some(first) if first.as_slice() != bin.data() => {
                return Err(AttachError::NothingToAttach(format!(
                    "{} is not the binary the other targets run, and --offsets describes one build: trace it in a recording of its own",
                    describe(t)
                ))
                .into());
            }
            Some(_) => {}
        }
    }
    let mut plan = Plan::new(&bin, pid, &req.probes, req.offsets.clone())?;
    if let Some(hz) = req.cpu_hz {
        plan.set_cpu_hz(hz);
    }
    plan.ring_buffer_bytes = req.ring_buffer_bytes;
    let prefix = if req.targets.len() > 1 {
        format!("{}: ", describe(t))
    } else {
        String::new()
    };
    for s in &plan.skipped {
        warn(&format!("{prefix}not attaching {s}"));
    }
    for n in &plan.notes {
        warn(&format!("{prefix}{n}"));
    }
    let mut warnings = Vec::new();
    let session = Session::start(&plan, Some(bin), req.baseline_empty, &mut warnings);
    for w in &warnings {
        warn(&format!("{prefix}{w}"));
    }
    let session = session?;
    // The stream's target line lists the probes really attached: event
    // families annotate spans by what was (or was not) attached.
    let info = TargetInfo {
        probes: session.probes.clone(),
        ..plan.info
    };
    Ok((session, info))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_list() {
        assert_eq!(
            parse_probes("http.client, http.server,http.client").expect("ok"),
            vec!["http.client".to_owned(), "http.server".to_owned()]
        );
        let all = parse_probes("all").expect("ok");
        for p in ["http.server", "http.client", "db.sql", "go.panic"] {
            assert!(all.iter().any(|x| x == p), "{p}");
        }
        // Opt-in probes are in `all` and by name, not in `default`.
        let opt_in: Vec<&str> = Catalog::builtin()
            .unwrap()
            .probes
            .iter()
            .filter(|p| p.opt_in && !p.internal && p.role != catalog::Role::Sample)
            .map(|p| p.name.as_str())
            .collect();
        let default = parse_probes(DEFAULT_PROBES).expect("ok");
        assert_eq!(default.len() + opt_in.len(), all.len());
        assert!(opt_in.iter().all(|p| !default.iter().any(|d| d == p)));
        let mut named = vec![DEFAULT_PROBES.to_owned()];
        named.extend(opt_in.iter().map(|p| p.to_string()));
        assert_eq!(parse_probes(&named.join(",")).expect("ok").len(), all.len());
        assert!(!all.iter().any(|x| x == "cpu.sample"), "sampling is opt-in");
        assert_eq!(
            parse_probes("all,cpu.sample")
                .expect("ok")
                .last()
                .map(String::as_str),
            Some("cpu.sample")
        );
        assert!(!all.iter().any(|x| x == "go.spawn"), "added by the plan");
        assert!(
            parse_probes("all,go.spawn")
                .expect("ok")
                .contains(&"go.spawn".to_owned())
        );
        let err = parse_probes("grpc").expect_err("unknown");
        assert!(err.to_string().contains("db.sql"), "{err}");
    }
}
