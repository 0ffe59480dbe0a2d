//! Turning attach's raw event stream into spans (`crate::span` schema):
//! [`Recorder`] nests events by their probes' catalog roles; a
//! [`Recording`] feeds it stream lines and writes the spans it completes
//! through a [`SpanWriter`] (with the `--limit`), and the CPU samples it
//! labels (`crate::sample` records) beside them.

mod recorder;

pub use recorder::{RecordStats, Recorder};

use crate::probes::family::RecordingError;
use crate::sample::CpuSample;
use crate::span::Span;
use crate::stream::Line;

/// Where recorded spans go: the output stream and the `--limit`; `on_write`
/// hears the counts after each write (the command's progress line).
pub struct SpanWriter {
    out: Box<dyn std::io::Write>,
    limit: Option<u64>,
    written: u64,
    on_write: Option<Box<dyn FnMut(u64, u64)>>,
}

impl SpanWriter {
    pub fn new(out: Box<dyn std::io::Write>, limit: Option<u64>) -> SpanWriter {
        SpanWriter {
            out,
            limit,
            written: 0,
            on_write: None,
        }
    }

    /// Call `f(spans written, events lost)` after every write.
    pub fn on_write(mut self, f: impl FnMut(u64, u64) + 'static) -> SpanWriter {
        self.on_write = Some(Box::new(f));
        self
    }

    /// Spans written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    pub fn limit_reached(&self) -> bool {
        self.limit.is_some_and(|l| self.written >= l)
    }

    /// Write (and drain) `samples`: CPU sample records, which the limit
    /// does not count (they stop with the spans).
    pub fn write_samples(&mut self, samples: Vec<CpuSample>) -> std::io::Result<()> {
        use std::io::Write;
        if self.limit_reached() {
            return Ok(());
        }
        for s in &samples {
            serde_json::to_writer(&mut self.out, s)?;
            self.out.write_all(b"\n")?;
        }
        Ok(())
    }

    /// Write (and drain) `spans`, up to the limit, then flush so a pipe sees
    /// them promptly. Past the limit it writes nothing and returns
    /// [`LimitReached`] wrapped in an `io::Error`, which stops the stream.
    pub fn write(&mut self, spans: &mut Vec<Span>, lost: u64) -> std::io::Result<()> {
        use std::io::Write;
        for s in spans.drain(..) {
            if self.limit_reached() {
                return Err(std::io::Error::other(LimitReached));
            }
            serde_json::to_writer(&mut self.out, &s)?;
            self.out.write_all(b"\n")?;
            self.written += 1;
        }
        self.out.flush()?;
        if let Some(f) = &mut self.on_write {
            f(self.written, lost);
        }
        if self.limit_reached() {
            return Err(std::io::Error::other(LimitReached));
        }
        Ok(())
    }
}

/// The `--limit` was reached: a normal end of the recording, not a failure.
#[derive(Debug, thiserror::Error)]
#[error("span limit reached")]
pub struct LimitReached;

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Catalog(#[from] crate::catalog::CatalogError),
    #[error("writing spans: {0}")]
    Write(#[source] std::io::Error),
    #[error("input line {line}: {source}")]
    BadFields {
        line: usize,
        #[source]
        source: RecordingError,
    },
    #[error("reading input: {0}")]
    Read(#[source] std::io::Error),
    #[error("input line {line}: not goprobe attach output: {source}")]
    BadLine {
        line: usize,
        #[source]
        source: serde_json::Error,
    },
}

/// How a recording ended.
#[derive(Debug, Clone)]
pub struct RecordSummary {
    pub written: u64,
    pub stats: RecordStats,
    /// Why it stopped: a signal, the duration, the target's exit, end of input, the limit.
    pub reason: String,
}

impl RecordSummary {
    /// The one-line summary `goprobe record` prints on stderr.
    pub fn line(&self) -> String {
        let st = &self.stats;
        let samples = if st.samples > 0 {
            format!(
                ", {} CPU samples ({} in spans)",
                st.samples, st.samples_in_spans
            )
        } else {
            String::new()
        };
        format!(
            "{} spans ({} server, {} client of which {} database) written{samples}, {} panics, {} events lost ({})",
            self.written, st.server, st.client, st.db, st.panics, st.lost, self.reason
        )
    }
}

/// A recording: stream lines in, spans out through a [`SpanWriter`].
pub struct Recording {
    rec: Recorder,
    writer: SpanWriter,
    spans: Vec<Span>,
}

impl Recording {
    pub fn new(writer: SpanWriter) -> Result<Recording, RecordError> {
        Ok(Recording {
            rec: Recorder::new()?,
            writer,
            spans: Vec::new(),
        })
    }

    /// Feed one line and write the spans it completes. An error (the
    /// output closed, [`LimitReached`], or an event whose fields do not fit
    /// its probe's schema) means: stop feeding.
    pub fn line(&mut self, line: Line) -> std::io::Result<()> {
        self.rec
            .line(line, &mut self.spans)
            .map_err(std::io::Error::other)?;
        self.writer.write_samples(self.rec.take_samples())?;
        self.writer.write(&mut self.spans, self.rec.stats.lost)
    }

    pub fn limit_reached(&self) -> bool {
        self.writer.limit_reached()
    }

    /// Read `goprobe attach` NDJSON until end of input or the limit; the
    /// reason it stopped.
    pub fn read(&mut self, input: impl std::io::BufRead) -> Result<String, RecordError> {
        for (i, line) in input.lines().enumerate() {
            let line = line.map_err(RecordError::Read)?;
            if line.trim().is_empty() {
                continue;
            }
            let parsed: Line =
                serde_json::from_str(&line).map_err(|source| RecordError::BadLine {
                    line: i + 1,
                    source,
                })?;
            self.rec
                .line(parsed, &mut self.spans)
                .map_err(|source| RecordError::BadFields {
                    line: i + 1,
                    source,
                })?;
            let written = self
                .writer
                .write_samples(self.rec.take_samples())
                .and_then(|()| self.writer.write(&mut self.spans, self.rec.stats.lost));
            if let Err(e) = written {
                if self.limit_reached() {
                    break;
                }
                return Err(RecordError::Write(e));
            }
        }
        Ok(if self.limit_reached() {
            "limit reached"
        } else {
            "end of input"
        }
        .to_owned())
    }

    /// The source ended for `reason`: write the spans still waiting for a
    /// parent (unless the limit was reached) and sum up.
    pub fn finish(mut self, reason: String) -> Result<RecordSummary, RecordError> {
        if !self.writer.limit_reached() {
            self.rec.finish(&mut self.spans);
            let lost = self.rec.stats.lost;
            let samples = self.rec.take_samples();
            let written = self
                .writer
                .write_samples(samples)
                .and_then(|()| self.writer.write(&mut self.spans, lost));
            match written {
                Err(_) if self.writer.limit_reached() => {}
                other => other.map_err(RecordError::Write)?,
            }
        }
        let reason = if self.writer.limit_reached() {
            "limit reached".to_owned()
        } else {
            reason
        };
        Ok(RecordSummary {
            written: self.writer.written(),
            stats: self.rec.stats.clone(),
            reason,
        })
    }
}
