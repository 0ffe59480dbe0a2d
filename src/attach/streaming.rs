//! Running sessions: streaming their lines, merged in completion order,
//! into a sink until a stop condition holds, then draining so that no
//! completed call is lost.

use std::time::Duration;

use super::AttachError;
use super::session::{Session, order_cutoff, process_alive};
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
    /// Stop when all these processes have exited (attach by pid).
    pub pids: Vec<u32>,
}

/// Why the stream ended, and the totals for the summary.
#[derive(Debug, Default, Clone)]
pub struct StreamSummary {
    pub events: u64,
    pub lost: Vec<(&'static str, u64)>,
    pub reason: &'static str,
}

/// A `tick` line goes out at least this often, so a reader holding spans
/// for a while (to link them across processes) can let them go when the
/// traced programs fall quiet.
const TICK: Duration = Duration::from_millis(250);

/// Stream the sessions' lines into `sink` until a stop condition holds;
/// then drain the ring buffers so no completed call is lost. Each session
/// comes with the target it traces (its `target` line). A sink error (e.g.
/// a closed pipe) ends the stream and is returned.
pub fn stream(
    sessions: &mut [(Session, TargetInfo)],
    stop: &StopWhen<'_>,
    mut sink: impl FnMut(&Line) -> std::io::Result<()>,
) -> Result<StreamSummary, StreamError> {
    use std::sync::atomic::Ordering;
    let started = std::time::Instant::now();
    let deadline = stop.duration.map(|d| started + d);
    // The targets' exits wake the waits too (a pidfd is readable once the
    // process is gone); without one it is noticed at the next poll.
    let pidfds: Vec<std::os::fd::OwnedFd> =
        stop.pids.iter().filter_map(|&p| pidfd_open(p)).collect();
    for (s, _) in sessions.iter() {
        if let Some(fd) = stop.wake {
            s.wake_on(fd)?;
        }
        for fd in &pidfds {
            s.wake_on(std::os::fd::AsFd::as_fd(fd))?;
        }
    }
    let mut seen_pids = std::collections::BTreeSet::new();
    for (_, target) in sessions.iter() {
        sink(&Line::Target(target.clone()))?;
        if let Some(p) = target.pid {
            seen_pids.insert(p);
        }
    }
    sink(&clock_line())?;
    let mut summary = StreamSummary::default();
    // Events of one round, with the index of their session.
    let mut pending: Vec<(usize, RawEvent)> = Vec::new();
    let mut last_tick = std::time::Instant::now();
    let n_sessions = u32::try_from(sessions.len().max(1)).unwrap_or(1);
    let reason = loop {
        let reason = if stop.signal.load(Ordering::Relaxed) {
            Some("interrupted")
        } else if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
            Some("duration elapsed")
        } else if !stop.pids.is_empty() && stop.pids.iter().all(|p| !process_alive(*p)) {
            Some(if stop.pids.len() == 1 {
                "target exited"
            } else {
                "targets exited"
            })
        } else {
            None
        };
        if reason.is_some() {
            for (i, (s, _)) in sessions.iter_mut().enumerate() {
                s.drain(|e| pending.push((i, e)));
            }
        } else {
            let left = deadline.map_or(POLL, |d| {
                d.saturating_duration_since(std::time::Instant::now())
            });
            // The round's wait shared among the sessions.
            let each = left.min(POLL) / n_sessions;
            for (s, _) in sessions.iter_mut() {
                s.wait(each)?;
            }
            // One cutoff for all: the merged stream stays in completion order.
            let cutoff = order_cutoff();
            for (i, (s, _)) in sessions.iter_mut().enumerate() {
                s.pass_until(cutoff, |e| pending.push((i, e)));
            }
        }
        pending.sort_by_key(|(_, e)| e.end_ns);
        for (i, ev) in pending.drain(..) {
            if seen_pids.insert(ev.pid) {
                sink(&Line::Target(TargetInfo {
                    pid: Some(ev.pid),
                    ..sessions[i].1.clone()
                }))?;
            }
            summary.events += 1;
            sink(&Line::Event(ev))?;
        }
        for (s, _) in sessions.iter_mut() {
            for l in s.new_lost()? {
                sink(&l)?;
            }
        }
        if last_tick.elapsed() >= TICK {
            sink(&Line::Tick {
                monotonic_ns: order_cutoff(),
            })?;
            last_tick = std::time::Instant::now();
        }
        if let Some(r) = reason {
            break r;
        }
    };
    // Requests a dying process never answered: they are data too.
    let now = crate::clock::monotonic_now_ns();
    let mut unfinished: Vec<RawEvent> = sessions
        .iter_mut()
        .flat_map(|(s, _)| s.unfinished(now))
        .collect();
    unfinished.sort_by_key(|e| e.start_ns);
    for ev in unfinished {
        summary.events += 1;
        sink(&Line::Event(ev))?;
    }
    summary.reason = reason;
    let mut lost: Vec<(&'static str, u64)> = Vec::new();
    for (s, _) in sessions.iter() {
        for (name, n) in s.lost_totals() {
            match lost.iter_mut().find(|(l, _)| *l == name) {
                Some((_, sum)) => *sum += n,
                None => lost.push((name, n)),
            }
        }
    }
    summary.lost = lost;
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
