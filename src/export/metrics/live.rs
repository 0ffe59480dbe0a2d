//! Writing metrics: once at the end of the input, or once per interval while
//! spans keep arriving (`--interval`, for `record | convert`), to a stream,
//! a file replaced atomically each time (what node_exporter's textfile
//! collector reads), or an OTLP/HTTP receiver.
//!
//! Live, the spans are read on a thread of their own so that an interval
//! ends on time whether or not a span arrives; the values stay cumulative,
//! so every counter in one exposition is at least what it was in the one
//! before.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prost::Message;

use super::{Aggregator, otlp, prometheus};
use crate::export::otlp_http::Pusher;
use crate::export::reader::{ReadError, SpanReader};
use crate::export::{ExportError, Summary};
use crate::loss::Losses;
use crate::span::Span;

/// The text encodings (a push is always protobuf).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Prometheus,
    OtlpJson,
}

/// Where each exposition goes.
pub enum Sink {
    /// One after another. Prometheus expositions are separated by an empty
    /// line; OTLP/JSON requests are one per line.
    Stream(Box<dyn Write>),
    /// The file is replaced (written beside it, then renamed) each time.
    Replace(PathBuf),
    Push(Pusher),
}

/// Encodes and delivers expositions, counting what receivers accepted.
pub struct Emitter {
    pub encoding: Encoding,
    pub sink: Sink,
    /// Start of every cumulative stream (OTLP `start_time_unix_nano`).
    pub start_ns: Option<u64>,
    emitted: u64,
    summary: Summary,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

impl Emitter {
    pub fn new(encoding: Encoding, sink: Sink) -> Emitter {
        Emitter {
            encoding,
            sink,
            start_ns: None,
            emitted: 0,
            summary: Summary::default(),
        }
    }

    /// Expositions written so far.
    pub fn emitted(&self) -> u64 {
        self.emitted
    }

    /// Write one exposition of `agg` as observed at `time_ns`.
    pub fn emit(&mut self, agg: &Aggregator, time_ns: u64) -> Result<(), ExportError> {
        let start = self
            .start_ns
            .or(agg.first_start_ns)
            .unwrap_or(time_ns)
            .min(time_ns);
        match &mut self.sink {
            Sink::Push(pusher) => {
                let request = otlp::request(agg, start, time_ns);
                let n = otlp::data_points(&request);
                let outcome = pusher.send(&request.encode_to_vec())?;
                let rejected = outcome.rejected.min(n);
                self.summary.rejected += rejected;
                self.summary.accepted += n - rejected;
                if outcome.message.is_some() {
                    self.summary.rejected_message = outcome.message;
                }
            }
            Sink::Stream(out) => {
                if self.encoding == Encoding::Prometheus && self.emitted > 0 {
                    out.write_all(b"\n")?;
                }
                encode(self.encoding, agg, start, time_ns, out)?;
                out.flush()?;
            }
            Sink::Replace(path) => {
                let mut body = Vec::new();
                encode(self.encoding, agg, start, time_ns, &mut body)?;
                let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
                let tmp = path.with_file_name(format!(
                    ".{}.tmp{}",
                    name.unwrap_or_default(),
                    std::process::id()
                ));
                std::fs::write(&tmp, &body)?;
                std::fs::rename(&tmp, path)?;
            }
        }
        self.emitted += 1;
        Ok(())
    }

    fn finish(self, agg: &Aggregator) -> Summary {
        Summary {
            spans: agg.spans,
            skipped: agg.skipped,
            ..self.summary
        }
    }
}

fn encode(
    encoding: Encoding,
    agg: &Aggregator,
    start_ns: u64,
    time_ns: u64,
    out: &mut dyn Write,
) -> Result<(), ExportError> {
    let mut out = out;
    match encoding {
        Encoding::Prometheus => prometheus::write(agg, &mut out)?,
        Encoding::OtlpJson => {
            serde_json::to_writer(&mut out, &otlp::request(agg, start_ns, time_ns))
                .map_err(std::io::Error::from)?;
            out.write_all(b"\n")?;
        }
    }
    Ok(())
}

/// Read all spans, then write one exposition, observed at the end of the
/// last span (so the same input always gives the same output).
pub fn convert<R: BufRead>(
    reader: &mut SpanReader<R>,
    mut emitter: Emitter,
) -> Result<Summary, ExportError> {
    let mut agg = Aggregator::new();
    while let Some(span) = reader.next_span()? {
        agg.add(&span);
    }
    agg.skipped = reader.skipped();
    agg.lost = reader.losses().clone();
    let time = agg.last_end_ns.max(agg.first_start_ns.unwrap_or(0));
    emitter.emit(&agg, time)?;
    Ok(emitter.finish(&agg))
}

enum Msg {
    Span(Box<Span>, u64),
    /// The recording's lost lines so far (sent when they change).
    Lost(Losses),
    End(Result<(), ReadError>, u64, Vec<String>, Losses),
}

/// How a live conversion ended.
pub struct LiveEnd {
    pub summary: Summary,
    /// The reader's descriptions of skipped lines (when it reached the end).
    pub warnings: Vec<String>,
}

/// How often a live loop looks at the stop flag while no span arrives.
const POLL: Duration = Duration::from_millis(100);

/// Read spans as they come and write an exposition every `every`, and a
/// last one when the input ends. Once `stop` is set, the input gets `grace`
/// to end by itself (a `record` upstream flushing its last spans) before
/// the last exposition is written anyway.
pub fn run_intervals<R: BufRead + Send + 'static>(
    mut reader: SpanReader<R>,
    every: Duration,
    stop: &AtomicBool,
    grace: Duration,
    mut emitter: Emitter,
) -> Result<LiveEnd, ExportError> {
    emitter.start_ns.get_or_insert_with(now_ns);
    let (tx, rx) = mpsc::sync_channel::<Msg>(4096);
    thread::spawn(move || {
        let mut lost_seen = Losses::default();
        loop {
            let next = reader.next_span();
            // Lost lines come between spans: pass them on as they change.
            if *reader.losses() != lost_seen {
                lost_seen = reader.losses().clone();
                if tx.send(Msg::Lost(lost_seen.clone())).is_err() {
                    return;
                }
            }
            let msg = match next {
                Ok(Some(span)) => Msg::Span(Box::new(span), reader.skipped()),
                Ok(None) => Msg::End(
                    Ok(()),
                    reader.skipped(),
                    reader.take_warnings(),
                    lost_seen.clone(),
                ),
                Err(e) => Msg::End(
                    Err(e),
                    reader.skipped(),
                    reader.take_warnings(),
                    lost_seen.clone(),
                ),
            };
            let end = matches!(msg, Msg::End(..));
            if tx.send(msg).is_err() || end {
                return;
            }
        }
    });
    let mut agg = Aggregator::new();
    let every = every.max(Duration::from_millis(1));
    let mut next = Instant::now() + every;
    let mut deadline: Option<Instant> = None;
    let (result, warnings) = loop {
        let now = Instant::now();
        if deadline.is_none() && stop.load(Ordering::Relaxed) {
            deadline = Some(now + grace);
        }
        if deadline.is_some_and(|d| now >= d) {
            break (Ok(()), Vec::new());
        }
        if now >= next {
            emitter.emit(&agg, now_ns())?;
            next += every;
            if next <= now {
                // Fell behind (a slow receiver): skip the missed ticks.
                next = now + every;
            }
            continue;
        }
        let wake = deadline.map_or(next, |d| d.min(next)).min(now + POLL);
        match rx.recv_timeout(wake.saturating_duration_since(now)) {
            Ok(Msg::Span(span, skipped)) => {
                agg.add(&span);
                agg.skipped = skipped;
            }
            Ok(Msg::Lost(lost)) => agg.lost = lost,
            Ok(Msg::End(result, skipped, warnings, lost)) => {
                agg.skipped = skipped;
                agg.lost = lost;
                break (result.map_err(ExportError::from), warnings);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                break (
                    Err(ExportError::Other("the span reader stopped".into())),
                    Vec::new(),
                );
            }
        }
    };
    // The last values, also when reading failed: what was measured is kept.
    emitter.emit(&agg, now_ns())?;
    let summary = emitter.finish(&agg);
    result?;
    Ok(LiveEnd { summary, warnings })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// A writer the test can read while the emitter owns it.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn emits_per_interval_until_the_input_ends() {
        let (r, mut w) = std::io::pipe().expect("pipe");
        let out = Shared::default();
        let emitter = Emitter::new(Encoding::Prometheus, Sink::Stream(Box::new(out.clone())));
        let stop = AtomicBool::new(false);
        let feeder = thread::spawn(move || {
            for i in 0..3u8 {
                let line = crate::export::reader::tests::line(i + 1, 1, None, "a", 1, 2);
                let line = line.replace(
                    r#""attributes":{"#,
                    r#""attributes":{"http.request.method":"GET","#,
                );
                writeln!(w, "{line}").expect("write");
                thread::sleep(Duration::from_millis(120));
            }
        });
        let reader = SpanReader::new(std::io::BufReader::new(r), false);
        let end = run_intervals(
            reader,
            Duration::from_millis(50),
            &stop,
            Duration::ZERO,
            emitter,
        )
        .expect("run");
        feeder.join().expect("feeder");
        assert_eq!(end.summary.spans, 3);
        let text = String::from_utf8(out.0.lock().expect("lock").clone()).expect("utf8");
        let counts: Vec<u64> = text
            .split("\n\n")
            .map(|e| {
                e.lines()
                    .find(|l| l.starts_with("http_server_request_duration_seconds_count"))
                    .map_or(0, |l| {
                        l.rsplit(' ').next().expect("value").parse().expect("n")
                    })
            })
            .collect();
        assert!(counts.len() >= 5, "{} expositions", counts.len());
        assert!(counts.windows(2).all(|w| w[0] <= w[1]), "{counts:?}");
        assert_eq!(counts.last(), Some(&3));
    }

    #[test]
    fn stop_ends_after_the_grace_period() {
        let (r, _w) = std::io::pipe().expect("pipe");
        let stop = AtomicBool::new(true);
        let out = Shared::default();
        let emitter = Emitter::new(Encoding::OtlpJson, Sink::Stream(Box::new(out.clone())));
        let started = Instant::now();
        run_intervals(
            SpanReader::new(std::io::BufReader::new(r), false),
            Duration::from_secs(10),
            &stop,
            Duration::from_millis(200),
            emitter,
        )
        .expect("run");
        assert!(started.elapsed() < Duration::from_secs(5));
        let text = String::from_utf8(out.0.lock().expect("lock").clone()).expect("utf8");
        assert_eq!(text.lines().count(), 1, "one last request");
    }
}
