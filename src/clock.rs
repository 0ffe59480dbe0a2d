//! Converting the kernel's monotonic timestamps (`bpf_ktime_get_ns`, i.e.
//! CLOCK_MONOTONIC) to wall-clock time.
//!
//! The offset CLOCK_REALTIME − CLOCK_MONOTONIC is sampled several times by
//! reading MONOTONIC, REALTIME, MONOTONIC back to back; the sample whose two
//! MONOTONIC reads are closest together brackets the REALTIME read most
//! tightly and is kept.

/// Nanoseconds to add to a CLOCK_MONOTONIC time to get Unix time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WallOffset {
    pub realtime_minus_monotonic_ns: i128,
    /// Width of the sampling window, an upper bound on the error.
    pub uncertainty_ns: u64,
}

fn now_ns(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid timespec; both clocks always exist on Linux.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

/// CLOCK_MONOTONIC now, in nanoseconds: the clock the eBPF programs stamp
/// events with (`bpf_ktime_get_ns`).
pub fn monotonic_now_ns() -> u64 {
    u64::try_from(now_ns(libc::CLOCK_MONOTONIC)).unwrap_or(0)
}

impl WallOffset {
    /// Sample the offset `samples` times and keep the tightest.
    pub fn sample(samples: usize) -> WallOffset {
        let mut best = WallOffset {
            realtime_minus_monotonic_ns: 0,
            uncertainty_ns: u64::MAX,
        };
        for _ in 0..samples.max(1) {
            let m1 = now_ns(libc::CLOCK_MONOTONIC);
            let r = now_ns(libc::CLOCK_REALTIME);
            let m2 = now_ns(libc::CLOCK_MONOTONIC);
            let width = u64::try_from(m2 - m1).unwrap_or(u64::MAX);
            if width < best.uncertainty_ns {
                best = WallOffset {
                    realtime_minus_monotonic_ns: r - (m1 + (m2 - m1) / 2),
                    uncertainty_ns: width,
                };
            }
        }
        best
    }

    /// Unix time in nanoseconds of a CLOCK_MONOTONIC time.
    pub fn to_unix_nanos(&self, monotonic_ns: u64) -> u64 {
        u64::try_from(i128::from(monotonic_ns) + self.realtime_minus_monotonic_ns).unwrap_or(0)
    }

    /// CLOCK_MONOTONIC now, for comparing with event stamps.
    pub fn monotonic_now_ns() -> u64 {
        u64::try_from(now_ns(libc::CLOCK_MONOTONIC)).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_maps_monotonic_now_to_realtime_now() {
        let off = WallOffset::sample(16);
        assert!(
            off.uncertainty_ns < 10_000_000,
            "sampling window {} ns",
            off.uncertainty_ns
        );
        let wall = off.to_unix_nanos(WallOffset::monotonic_now_ns()) as i128;
        let real = now_ns(libc::CLOCK_REALTIME);
        assert!(
            (wall - real).abs() < 50_000_000,
            "wall {wall} vs realtime {real}"
        );
    }
}
