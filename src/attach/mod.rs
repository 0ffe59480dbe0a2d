//! An attach session: the probes goprobe attaches to one Go binary (one
//! process or every process running it), family by family, streaming
//! completed calls as [`crate::stream`] lines.
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
use crate::stream::Line;

/// The probes `goprobe attach` attaches when none are named: every probe in
/// the catalog; those the binary cannot support are skipped with a note.
pub const DEFAULT_PROBES: &str = "all";

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

/// Parse `--probes http.server,db.sql` (or `all`) against the catalog.
pub fn parse_probes(list: &str) -> Result<Vec<String>, AttachError> {
    let catalog = Catalog::builtin()?;
    let mut out: Vec<String> = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if name == "all" {
            // Internal probes (goroutine creation) are added by the plan
            // when the target needs them; naming one attaches it anyway.
            for p in catalog.probes.iter().filter(|p| !p.internal) {
                if !out.contains(&p.name) {
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

/// What `goprobe attach` (and `goprobe record` when it attaches itself) was asked.
#[derive(Debug, Clone)]
pub struct Request {
    pub binary: Option<PathBuf>,
    pub pid: Option<u32>,
    /// Catalog probe names.
    pub probes: Vec<String>,
    pub offsets: Option<Offsets>,
    pub duration: Option<Duration>,
    /// Attach do-nothing programs instead (benchmark baseline).
    pub baseline_empty: bool,
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
    session: Session,
}

impl Ended {
    /// Detach the probes; how long it took.
    pub fn detach(mut self) -> Duration {
        self.session.detach()
    }
}

/// Open the target, attach, stream lines into `sink` until `stop` is set
/// (the command sets it on Ctrl-C or SIGTERM, and makes `wake` readable),
/// the duration passes, or the target exits. `warn` gets human-readable
/// notes (skipped probes, system warnings) and `on_attached` the number of
/// uprobes once they are live.
pub fn run(
    req: &Request,
    stop: &std::sync::atomic::AtomicBool,
    wake: Option<std::os::fd::BorrowedFd<'_>>,
    warn: &mut dyn FnMut(&str),
    on_attached: &mut dyn FnMut(usize),
    sink: impl FnMut(&Line) -> std::io::Result<()>,
) -> Result<Ended, RunError> {
    // Before anything else: a missing privilege is one line naming it.
    crate::privileges::check_attach(req.pid)?;
    let bin = match (&req.binary, req.pid) {
        (_, Some(pid)) => crate::gobin::GoBinary::open_pid(pid)?,
        (Some(path), None) => crate::gobin::GoBinary::open(path)?,
        (None, None) => {
            return Err(AttachError::NothingToAttach("give a binary path or --pid".into()).into());
        }
    };
    let mut plan = Plan::new(&bin, req.pid, &req.probes, req.offsets.clone())?;
    plan.ring_buffer_bytes = req.ring_buffer_bytes;
    for s in &plan.skipped {
        warn(&format!("not attaching {s}"));
    }
    for n in &plan.notes {
        warn(n);
    }
    let mut warnings = Vec::new();
    let session = Session::start(&plan, Some(bin), req.baseline_empty, &mut warnings);
    for w in &warnings {
        warn(w);
    }
    let mut session = session?;
    on_attached(session.links);
    let when = StopWhen {
        signal: stop,
        wake,
        duration: req.duration,
        pid: req.pid,
    };
    let summary = stream(&mut session, &plan.info, &when, sink)?;
    Ok(Ended { summary, session })
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
