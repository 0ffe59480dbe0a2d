//! Turning attach's raw event stream into spans (`crate::span` schema):
//! [`Recorder`] nests events by their probes' catalog roles; a
//! [`Recording`] feeds it stream lines and writes the spans it completes
//! through a [`SpanWriter`] (with the `--limit`).

mod recorder;

pub use recorder::{RecordStats, Recorder};

use crate::loss::{Effect, LostLine};
use crate::probes::family::RecordingError;
use crate::span::Span;
use crate::stream::Line;

/// Where a recording's lines go.
pub trait Output {
    /// The recording really started (its first input line came). A file
    /// is created or truncated only now, so that a recording that never
    /// starts (a dead pid, missing privileges, input that is not attach's)
    /// leaves an existing file as it was.
    fn start(&mut self) -> std::io::Result<()>;
    /// Write whole lines (each ending in `\n`) at once, unbuffered: a
    /// recording killed at any moment leaves every line it wrote whole.
    fn write_lines(&mut self, lines: &[u8]) -> std::io::Result<()>;
}

/// Any writer, used from the start (stdout, a pipe, a test's buffer).
pub struct Plain<W>(pub W);

impl<W: std::io::Write> Output for Plain<W> {
    fn start(&mut self) -> std::io::Result<()> {
        Ok(())
    }
    fn write_lines(&mut self, lines: &[u8]) -> std::io::Result<()> {
        self.0.write_all(lines)?;
        self.0.flush()
    }
}

/// Where recorded spans go: the output and the `--limit`; `on_write`
/// hears the counts after each write (the command's progress line).
pub struct SpanWriter {
    out: Box<dyn Output>,
    buf: Vec<u8>,
    limit: Option<u64>,
    written: u64,
    started: bool,
    on_write: Option<Box<dyn FnMut(u64, u64)>>,
}

impl SpanWriter {
    pub fn new(out: Box<dyn Output>, limit: Option<u64>) -> SpanWriter {
        SpanWriter {
            out,
            buf: Vec::new(),
            limit,
            written: 0,
            started: false,
            on_write: None,
        }
    }

    /// Call `f(spans written, spans lost)` after every write.
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

    /// The recording starts: open the output (once).
    fn start(&mut self) -> std::io::Result<()> {
        if !self.started {
            self.out.start()?;
            self.started = true;
        }
        Ok(())
    }

    /// Write (and drain) `spans`, up to the limit, in one write of whole
    /// lines. Past the limit it writes nothing and returns [`LimitReached`]
    /// wrapped in an `io::Error`, which stops the stream.
    pub fn write(&mut self, spans: &mut Vec<Span>, lost: u64) -> std::io::Result<()> {
        self.buf.clear();
        let mut over = false;
        for s in spans.drain(..) {
            if self.limit.is_some_and(|l| self.written >= l) {
                over = true;
                break;
            }
            serde_json::to_writer(&mut self.buf, &s)?;
            self.buf.push(b'\n');
            self.written += 1;
        }
        if !self.buf.is_empty() {
            self.out.write_lines(&self.buf)?;
        }
        if let Some(f) = &mut self.on_write {
            f(self.written, lost);
        }
        if over || self.limit_reached() {
            return Err(std::io::Error::other(LimitReached));
        }
        Ok(())
    }

    /// Write `lost` lines in-band, among the spans.
    pub fn write_lost(&mut self, lines: &[LostLine]) -> std::io::Result<()> {
        if lines.is_empty() || self.limit_reached() {
            return Ok(());
        }
        self.buf.clear();
        for l in lines {
            serde_json::to_writer(&mut self.buf, l)?;
            self.buf.push(b'\n');
        }
        self.out.write_lines(&self.buf)
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
        format!(
            "{} spans ({} server, {} client of which {} database) written, {} panics, {} events lost ({})",
            self.written,
            st.server,
            st.client,
            st.db,
            st.panics,
            st.lost.total(Effect::SpanLost),
            self.reason
        )
    }

    /// Every loss reason with its count (zeros too), grouped by what it
    /// means for the recording: the second line of the summary.
    pub fn accounting(&self) -> String {
        self.stats.lost.accounting()
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

    /// Feed one line and write the spans it completes, and a `lost` line
    /// for a loss. An error (the output closed, [`LimitReached`], or an
    /// event whose fields do not fit its probe's schema) means: stop feeding.
    pub fn line(&mut self, line: Line) -> std::io::Result<()> {
        self.writer.start()?;
        let lost = self.feed(line).map_err(std::io::Error::other)?;
        self.write(lost)
    }

    /// Feed one line; the `lost` line to write for it, if it is a loss.
    fn feed(&mut self, line: Line) -> Result<Option<LostLine>, RecordingError> {
        let lost = match &line {
            Line::Lost {
                reason,
                count,
                at_ns,
            } => {
                let mono = at_ns.unwrap_or_else(crate::clock::monotonic_now_ns);
                Some(LostLine::new(reason, *count, self.rec.wall_time(mono)))
            }
            _ => None,
        };
        self.rec.line(line, &mut self.spans)?;
        Ok(lost)
    }

    /// Write the spans completed so far, then the loss seen after them.
    fn write(&mut self, lost: Option<LostLine>) -> std::io::Result<()> {
        let n = self.rec.stats.lost.total(Effect::SpanLost);
        self.writer.write(&mut self.spans, n)?;
        match lost {
            Some(l) => self.writer.write_lost(&[l]),
            None => Ok(()),
        }
    }

    /// What spans leave out (default: secrets; see [`crate::redact`]).
    pub fn policy(mut self, policy: crate::redact::Policy) -> Recording {
        self.rec.policy = policy;
        self
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
            self.writer.start().map_err(RecordError::Write)?;
            let lost = self.feed(parsed).map_err(|source| RecordError::BadFields {
                line: i + 1,
                source,
            })?;
            if let Err(e) = self.write(lost) {
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
            match self.write(None) {
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
