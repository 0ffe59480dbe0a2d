//! The live progress line `record` shows on stderr when it is a terminal,
//! and notes printed above it so the line is not torn.

use std::time::{Duration, Instant};

/// A spinner with spans written, their rate, and events lost; absent when
/// stderr is not a terminal.
#[derive(Clone)]
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    started: Instant,
}

impl Progress {
    pub fn new(show: bool) -> Progress {
        let bar = show.then(|| {
            let p = indicatif::ProgressBar::new_spinner();
            p.enable_steady_tick(Duration::from_millis(200));
            p
        });
        Progress {
            bar,
            started: Instant::now(),
        }
    }

    /// Show the counts so far.
    pub fn update(&self, written: u64, lost: u64) {
        if let Some(p) = &self.bar {
            let secs = self.started.elapsed().as_secs_f64().max(0.001);
            p.set_message(format!(
                "{written} spans, {:.0}/s, lost {lost}",
                written as f64 / secs
            ));
        }
    }

    /// A note for the person at the terminal, as `goprobe: {msg}`.
    pub fn note(&self, msg: &str) {
        match &self.bar {
            Some(p) => p.println(format!("goprobe: {msg}")),
            None => eprintln!("goprobe: {msg}"),
        }
    }

    /// Clear the line (the summary follows).
    pub fn finish(&self) {
        if let Some(p) = &self.bar {
            p.finish_and_clear();
        }
    }
}
