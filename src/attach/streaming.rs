//! Running a session: streaming its lines into a sink until a stop
//! condition holds, then draining so that no completed call is lost.

use std::time::Duration;

use super::AttachError;
use super::session::{Session, process_alive};
use crate::bpf::BpfError;
use crate::clock::WallOffset;
use crate::stream::{Line, RawEvent, TargetInfo};

/// How long the stream may wait for events before it looks at its stop
/// conditions again; the ring buffers' own wake-ups are batched, so this
/// also bounds how stale a quiet stream can be, and how many events are
/// still to be written when the recording ends (with 100 ms, a busy
/// recording ended 150 ms after its deadline on a loaded machine: the last
/// batch and the ordering slack were written after it). A wake-up costs
/// a few microseconds.
const POLL: Duration = Duration::from_millis(25);

/// When a stream stops.
pub struct StopWhen<'a> {
    /// Set by the Ctrl-C/SIGTERM handler.
    pub signal: &'a std::sync::atomic::AtomicBool,
    /// Readable once `signal` is set (the handler's self-pipe), so that the
    /// wait for events ends at once.
    pub wake: Option<std::os::fd::BorrowedFd<'a>>,
    /// Counted from the start of the stream (probes attached).
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
    let deadline = stop.duration.map(|d| started + d);
    if let Some(fd) = stop.wake {
        session.wake_on(fd)?;
    }
    // The target's exit wakes the wait too (a pidfd is readable once the
    // process is gone); without one it is noticed at the next poll.
    let pidfd = stop.pid.and_then(pidfd_open);
    if let Some(fd) = &pidfd {
        session.wake_on(std::os::fd::AsFd::as_fd(fd))?;
    }
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
        } else if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            Some("duration elapsed")
        } else if stop.pid.is_some_and(|p| !process_alive(p)) {
            Some("target exited")
        } else {
            None
        };
        if reason.is_some() {
            session.drain(|e| pending.push(e));
        } else {
            let left = deadline.map_or(POLL, |d| {
                d.saturating_duration_since(std::time::Instant::now())
            });
            session.poll(left.min(POLL), |e| pending.push(e))?;
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

/// A pidfd for `pid` (Linux 5.3+), readable once the process exits.
fn pidfd_open(pid: u32) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    let fd = i32::try_from(fd).ok().filter(|fd| *fd >= 0)?;
    // SAFETY: fd is a new descriptor that nothing else owns.
    Some(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
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
