//! Running a session: streaming its lines into a sink until a stop
//! condition holds, then draining so that no completed call is lost.

use std::time::Duration;

use super::AttachError;
use super::session::{Session, process_alive};
use crate::bpf::BpfError;
use crate::clock::WallOffset;
use crate::stream::{Line, RawEvent, TargetInfo};

/// When a stream stops.
pub struct StopWhen<'a> {
    /// Set by the Ctrl-C/SIGTERM handler.
    pub signal: &'a std::sync::atomic::AtomicBool,
    pub duration: Option<Duration>,
    /// Stop when this process exits (attach by pid).
    pub pid: Option<u32>,
}

/// Why the stream ended, and the totals for the summary.
#[derive(Debug, Default, Clone)]
pub struct StreamSummary {
    pub events: u64,
    pub lost: Vec<(&'static str, u64)>,
    pub reason: &'static str,
}

/// Stream the session's lines into `sink` until a stop condition holds;
/// then drain the ring buffer so no completed call is lost. A sink error
/// (e.g. a closed pipe) ends the stream and is returned.
pub fn stream(
    session: &mut Session,
    target: &TargetInfo,
    stop: &StopWhen<'_>,
    mut sink: impl FnMut(&Line) -> std::io::Result<()>,
) -> Result<StreamSummary, StreamError> {
    use std::sync::atomic::Ordering;
    let started = std::time::Instant::now();
    sink(&Line::Target(target.clone()))?;
    sink(&clock_line())?;
    let mut seen_pids = std::collections::BTreeSet::new();
    if let Some(p) = target.pid {
        seen_pids.insert(p);
    }
    let mut summary = StreamSummary::default();
    let mut pending: Vec<RawEvent> = Vec::new();
    let reason = loop {
        let reason = if stop.signal.load(Ordering::Relaxed) {
            Some("interrupted")
        } else if stop.duration.is_some_and(|d| started.elapsed() >= d) {
            Some("duration elapsed")
        } else if stop.pid.is_some_and(|p| !process_alive(p)) {
            Some("target exited")
        } else {
            None
        };
        if reason.is_some() {
            session.drain(|e| pending.push(e));
        } else {
            session.poll(Duration::from_millis(100), |e| pending.push(e))?;
        }
        for ev in pending.drain(..) {
            if seen_pids.insert(ev.pid) {
                sink(&Line::Target(TargetInfo {
                    pid: Some(ev.pid),
                    ..target.clone()
                }))?;
            }
            summary.events += 1;
            sink(&Line::Event(ev))?;
        }
        for l in session.new_lost()? {
            sink(&l)?;
        }
        if let Some(r) = reason {
            break r;
        }
    };
    // Requests a dying process never answered: they are data too.
    for ev in session.unfinished(crate::clock::monotonic_now_ns()) {
        summary.events += 1;
        sink(&Line::Event(ev))?;
    }
    summary.reason = reason;
    summary.lost = session.lost_totals();
    Ok(summary)
}

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error(transparent)]
    Attach(#[from] AttachError),
    #[error("writing output: {0}")]
    Io(#[from] std::io::Error),
}

impl From<BpfError> for StreamError {
    fn from(e: BpfError) -> Self {
        StreamError::Attach(AttachError::Bpf(e))
    }
}

/// The clock line for the start of a stream.
pub fn clock_line() -> Line {
    let off = WallOffset::sample(32);
    Line::Clock {
        realtime_minus_monotonic_ns: i64::try_from(off.realtime_minus_monotonic_ns).unwrap_or(0),
        uncertainty_ns: off.uncertainty_ns,
    }
}
