//! Reading a recording's NDJSON: one span per line, owned ([`Span`]) or read
//! in place ([`SpanView`]), and beside the spans records tagged with a
//! `type` (CPU samples, [`crate::sample`]), with the line number in every
//! error, and `--skip-invalid` counting instead of stopping. Formats made of
//! spans alone read [`SpanReader::next_span`] or [`SpanReader::for_each_view`],
//! which pass the other records by (counted in [`SpanReader::passed`]);
//! records of a `type` this goprobe does not know are passed by too.

use std::io::{self, BufRead};

use super::view::SpanView;
use crate::loss::{Losses, LostLine};
use crate::sample::{CpuSample, RECORD_TYPE, SampleError};
use crate::span::{Span, SpanError};

/// A line that could not be read as a span, or the input failing.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("reading input: {0}")]
    Io(#[from] io::Error),
    #[error("line {line}: {source}")]
    Invalid { line: u64, source: SpanError },
    #[error("line {line}: {source}")]
    InvalidSample { line: u64, source: SampleError },
    #[error("line {line}: not valid UTF-8")]
    NotUtf8 { line: u64 },
    #[error("line {line}: not a span nor a lost line: {source}")]
    BadLost {
        line: u64,
        source: serde_json::Error,
    },
}

/// One record of a recording.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Span(Span),
    Sample(CpuSample),
}

/// One record of a recording, its span read in place (samples are few
/// beside spans' attributes, so they are read whole).
pub enum RecordView<'a> {
    Span(SpanView<'a>),
    Sample(CpuSample),
}

/// Iterates over the spans of an NDJSON stream. Blank lines are ignored;
/// `record`'s `lost` lines are counted in [`SpanReader::losses`]. With
/// `skip_invalid`, malformed lines are counted in [`SpanReader::skipped`]
/// and the first few reported through [`SpanReader::take_warnings`]. A
/// malformed last line without a newline (a recording cut off mid-write)
/// is skipped with a warning either way.
pub struct SpanReader<R> {
    input: R,
    buf: Vec<u8>,
    line: u64,
    skip_invalid: bool,
    skipped: u64,
    /// Records that are not spans, passed by the span-only readers, and
    /// records of unknown types.
    passed: u64,
    warnings: Vec<String>,
    losses: Losses,
}

/// How many skipped lines are described individually; the rest are only counted.
const MAX_WARNINGS: u64 = 10;

/// What one line held.
pub(super) enum Line<'a> {
    Blank,
    Record(RecordView<'a>),
    /// A record of a `type` this goprobe does not know.
    Other,
    Bad(ReadError),
}

/// What is left to count of a line once its record (if any) was handed
/// on: nothing that borrows the line.
enum After {
    Nothing,
    Passed,
    /// And whether the line was the input's last, cut off.
    Bad(ReadError, bool),
}

impl After {
    fn of(line: Line<'_>, cut: bool) -> After {
        match line {
            Line::Other => After::Passed,
            Line::Bad(err) => After::Bad(err, cut),
            Line::Blank | Line::Record(_) => After::Nothing,
        }
    }
}

impl<R: BufRead> SpanReader<R> {
    pub fn new(input: R, skip_invalid: bool) -> Self {
        SpanReader {
            input,
            buf: Vec::with_capacity(1024),
            line: 0,
            skip_invalid,
            skipped: 0,
            passed: 0,
            warnings: Vec::new(),
            losses: Losses::default(),
        }
    }

    /// What the recording says it lost (its `lost` lines), by reason.
    pub fn losses(&self) -> &Losses {
        &self.losses
    }

    /// Lines skipped as invalid so far.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Descriptions of the first skipped lines (`line N: ...`), drained.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// Records other than spans that the span-only readers passed by, and
    /// records of unknown types.
    pub fn passed(&self) -> u64 {
        self.passed
    }

    /// The number of the last line read.
    pub(super) fn line_number(&self) -> u64 {
        self.line
    }

    /// For readers that read ahead ([`super::pipeline`]): the lines read.
    pub(super) fn set_line_number(&mut self, line: u64) {
        self.line = line;
    }

    /// The input, for readers that read it in blocks ([`super::pipeline`]).
    pub(super) fn input_mut(&mut self) -> &mut R {
        &mut self.input
    }

    /// Count a record passed by.
    pub(super) fn pass(&mut self) {
        self.passed += 1;
    }

    pub(super) fn losses_mut(&mut self) -> &mut Losses {
        &mut self.losses
    }

    /// [`SpanReader::skip`] for line `line`, read ahead of the others.
    pub(super) fn skip_at(
        &mut self,
        err: ReadError,
        line: u64,
        cut: bool,
    ) -> Result<(), ReadError> {
        self.line = line;
        self.skip(err, cut)
    }

    /// Read the next line into `buf`; false at the end of the input.
    fn read_line(&mut self) -> Result<bool, ReadError> {
        self.buf.clear();
        if self.input.read_until(b'\n', &mut self.buf)? == 0 {
            return Ok(false);
        }
        self.line += 1;
        Ok(true)
    }

    /// The line in `buf` has no newline: it was the input's last, cut off.
    fn buf_cut_off(&self) -> bool {
        self.buf.last().is_some_and(|b| *b != b'\n')
    }

    /// Count a bad line under `--skip-invalid`, or stop with it. A bad
    /// last line that has no newline is the end of a recording cut off
    /// mid-write: skipped either way.
    fn skip(&mut self, err: ReadError, cut_off: bool) -> Result<(), ReadError> {
        if cut_off {
            self.skipped += 1;
            self.warnings.push(format!(
                "line {}: cut off (the input ends inside it)",
                self.line
            ));
            return Ok(());
        }
        if !self.skip_invalid {
            return Err(err);
        }
        self.skipped += 1;
        if self.skipped <= MAX_WARNINGS {
            self.warnings.push(err.to_string());
        }
        Ok(())
    }

    /// The next span, `Ok(None)` at the end of the input; CPU samples and
    /// other records are passed by.
    pub fn next_span(&mut self) -> Result<Option<Span>, ReadError> {
        loop {
            match self.next_record()? {
                None => return Ok(None),
                Some(Record::Span(s)) => return Ok(Some(s)),
                Some(Record::Sample(_)) => self.passed += 1,
            }
        }
    }

    /// The next record, `Ok(None)` at the end of the input.
    pub fn next_record(&mut self) -> Result<Option<Record>, ReadError> {
        while self.read_line()? {
            let cut = self.buf_cut_off();
            match parse_line(&self.buf, self.line, &mut self.losses) {
                Line::Blank => {}
                Line::Record(RecordView::Span(view)) => {
                    return Ok(Some(Record::Span(view.to_span())));
                }
                Line::Record(RecordView::Sample(s)) => return Ok(Some(Record::Sample(s))),
                Line::Other => self.passed += 1,
                Line::Bad(err) => self.skip(err, cut)?,
            }
        }
        Ok(None)
    }

    /// Call `f` on every span in turn, read in place (see [`SpanView`]);
    /// CPU samples and other records are passed by.
    pub fn for_each_view<E: From<ReadError>>(
        &mut self,
        mut f: impl FnMut(SpanView<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut samples = 0;
        self.for_each_record(|record| match record {
            RecordView::Span(view) => f(view),
            RecordView::Sample(_) => {
                samples += 1;
                Ok(())
            }
        })?;
        self.passed += samples;
        Ok(())
    }

    /// Call `f` on every record in turn, spans read in place: the streaming
    /// converters' loop, which copies nothing it does not keep. A line that
    /// lies whole in the input's buffer is parsed where it is; only one that
    /// crosses the buffer's end is copied out first.
    pub fn for_each_record<E: From<ReadError>>(
        &mut self,
        mut f: impl FnMut(RecordView<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        loop {
            let available = match self.input.fill_buf() {
                Ok(bytes) => bytes,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(ReadError::Io(err).into()),
            };
            if available.is_empty() {
                return Ok(());
            }
            let outcome = if let Some(end) = memchr::memchr(b'\n', available) {
                self.line += 1;
                let outcome = match parse_line(&available[..=end], self.line, &mut self.losses) {
                    Line::Record(record) => {
                        f(record)?;
                        After::Nothing
                    }
                    other => After::of(other, false),
                };
                self.input.consume(end + 1);
                outcome
            } else {
                if !self.read_line()? {
                    return Ok(());
                }
                let cut = self.buf_cut_off();
                match parse_line(&self.buf, self.line, &mut self.losses) {
                    Line::Record(record) => {
                        f(record)?;
                        After::Nothing
                    }
                    other => After::of(other, cut),
                }
            };
            match outcome {
                After::Passed => self.passed += 1,
                After::Bad(err, cut) => self.skip(err, cut)?,
                After::Nothing => {}
            }
        }
    }
}

/// The `type` of a tagged record line as goprobe writes them (`{"type":"..."`
/// first); `None` otherwise.
fn record_type(buf: &[u8]) -> Option<&[u8]> {
    let start = buf.iter().position(|b| !b.is_ascii_whitespace())?;
    let rest = buf[start..].strip_prefix(br#"{"type":""#)?;
    let end = memchr::memchr(b'"', rest)?;
    Some(&rest[..end])
}

/// The `type` of a JSON object line written by hand (any key order, any
/// spacing); `None` when it has no string `type`.
fn tagged_type(buf: &[u8]) -> Option<String> {
    let v: serde_json::Value = serde_json::from_slice(buf).ok()?;
    v.get("type")?.as_str().map(str::to_owned)
}

/// A CPU sample line.
fn sample(buf: &[u8], line: u64) -> Line<'_> {
    match std::str::from_utf8(buf) {
        Err(_) => Line::Bad(ReadError::NotUtf8 { line }),
        Ok(text) => match CpuSample::from_json_line(text) {
            Ok(s) => Line::Record(RecordView::Sample(s)),
            Err(source) => Line::Bad(ReadError::InvalidSample { line, source }),
        },
    }
}

/// One line as a record; a `lost` line is counted into `losses`.
pub(super) fn parse_line<'b>(buf: &'b [u8], line: u64, losses: &mut Losses) -> Line<'b> {
    match buf.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return Line::Blank,
        // Unicode whitespace (a blank line too) or not UTF-8 at all.
        Some(&b) if b >= 0x80 => match std::str::from_utf8(buf) {
            Err(_) => return Line::Bad(ReadError::NotUtf8 { line }),
            Ok(text) if text.trim_start().is_empty() => return Line::Blank,
            Ok(_) => {}
        },
        Some(_) => {}
    }
    match record_type(buf) {
        Some(ty) if ty == RECORD_TYPE.as_bytes() => return sample(buf, line),
        Some(b"lost") | None => {}
        Some(_) => return Line::Other,
    }
    // `record`'s lost lines (tagged `{"type"` first, as any record).
    match LostLine::parse(buf) {
        None => {}
        Some(Ok(l)) => {
            losses.add(&l.reason, l.count);
            return Line::Blank;
        }
        Some(Err(source)) => return Line::Bad(ReadError::BadLost { line, source }),
    }
    match SpanView::parse_bytes(buf) {
        Ok(view) => Line::Record(RecordView::Span(view)),
        // serde_json reports bad UTF-8 inside a string in its own words.
        Err(_) if std::str::from_utf8(buf).is_err() => Line::Bad(ReadError::NotUtf8 { line }),
        // Not a span: a tagged record written by hand (other key order)?
        Err(source) => match tagged_type(buf) {
            Some(ty) if ty == RECORD_TYPE => sample(buf, line),
            Some(_) => Line::Other,
            None => Line::Bad(ReadError::Invalid { line, source }),
        },
    }
}

impl<R: BufRead> Iterator for SpanReader<R> {
    type Item = Result<Span, ReadError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.next_span().transpose()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn line(
        trace: u8,
        span: u8,
        parent: Option<u8>,
        name: &str,
        start: u64,
        end: u64,
    ) -> String {
        let parent = parent
            .map(|p| format!(r#""parent_span_id":"{:016x}","#, p))
            .unwrap_or_default();
        format!(
            r#"{{"trace_id":"{:032x}","span_id":"{:016x}",{parent}"name":"{name}","kind":"server","start_time_unix_nano":{start},"end_time_unix_nano":{end},"attributes":{{"http.route":"/r"}},"resource":{{"service.name":"svc"}}}}"#,
            trace, span
        )
    }

    #[test]
    fn reports_line_numbers_and_skips_blank_lines() {
        let input = format!("{}\n\n{{\"trace_id\":1}}\n", line(1, 1, None, "a", 1, 2));
        let mut r = SpanReader::new(input.as_bytes(), false);
        assert!(r.next_span().expect("first").is_some());
        let err = r.next_span().expect_err("bad line").to_string();
        assert!(err.starts_with("line 3: invalid span JSON"), "{err}");
    }

    #[test]
    fn skip_invalid_counts() {
        let input = format!("garbage\n{}\n\u{0}\n", line(1, 1, None, "a", 1, 2));
        let mut bytes = input.into_bytes();
        bytes.extend_from_slice(b"\xff\xfe\n");
        let mut r = SpanReader::new(&bytes[..], true);
        let spans: Vec<_> = (&mut r).collect::<Result<_, _>>().expect("skips");
        assert_eq!(spans.len(), 1);
        assert_eq!(r.skipped(), 3);
        let warnings = r.take_warnings();
        assert!(warnings[0].starts_with("line 1:"));
        assert_eq!(warnings[2], "line 4: not valid UTF-8");
    }

    #[test]
    fn lines_across_the_buffer_end_read_the_same() {
        let lines: Vec<String> = (1..=20)
            .map(|i| line(1, i, None, &format!("n{i}"), 1, 2))
            .collect();
        // Blank lines between, and a bad last line without a newline.
        let input = format!("{}\ngarbage", lines.join("\n\n"));
        let expected: Vec<String> = (1..=20).map(|i| format!("n{i}")).collect();
        for capacity in [1, 7, 64, 300, 1 << 16] {
            let buffered = io::BufReader::with_capacity(capacity, input.as_bytes());
            let mut r = SpanReader::new(buffered, true);
            let mut names = Vec::new();
            r.for_each_view(|span| {
                names.push(span.name.into_owned());
                Ok::<(), ReadError>(())
            })
            .expect("read");
            assert_eq!(names, expected, "buffer of {capacity}");
            assert_eq!(r.skipped(), 1);
            let warnings = r.take_warnings();
            assert!(warnings[0].starts_with("line 40: "), "{warnings:?}");
        }
    }

    #[test]
    fn bad_utf8_inside_a_string_and_unicode_blank_lines() {
        let good = line(1, 1, None, "a", 1, 2);
        // The span's name becomes one byte that is not UTF-8.
        let at = good.find("\"a\"").expect("name") + 1;
        let mut bytes = format!("{good}\n").into_bytes();
        bytes.extend_from_slice(&good.as_bytes()[..at]);
        bytes.push(0xff);
        bytes.extend_from_slice(&good.as_bytes()[at + 1..]);
        bytes.extend_from_slice("\n\u{a0}\u{2003}\n".as_bytes());
        let mut r = SpanReader::new(&bytes[..], true);
        let spans: Vec<_> = (&mut r).collect::<Result<_, _>>().expect("skips");
        assert_eq!(spans.len(), 1);
        assert_eq!(r.take_warnings(), ["line 2: not valid UTF-8"]);
    }

    #[test]
    fn samples_and_unknown_records_are_passed_by_next_span() {
        let sample = r#"{"type":"cpu_sample","time_unix_nano":1,"cpu_nanos":2}"#;
        let by_hand = r#"{ "cpu_nanos": 2, "type": "cpu_sample", "time_unix_nano": 1 }"#;
        let other = r#"{"type":"some_future_record","count":3}"#;
        let input = format!(
            "{sample}\n{}\n{other}\n{by_hand}\n",
            line(1, 1, None, "a", 1, 2)
        );
        let mut r = SpanReader::new(input.as_bytes(), false);
        assert!(matches!(r.next_record(), Ok(Some(Record::Sample(_)))));
        assert!(matches!(r.next_record(), Ok(Some(Record::Span(_)))));
        assert!(matches!(r.next_record(), Ok(Some(Record::Sample(_)))));
        assert!(r.next_record().expect("end").is_none());
        assert_eq!(r.passed(), 1, "the unknown record");
        let mut r = SpanReader::new(input.as_bytes(), false);
        let spans: Vec<_> = (&mut r).collect::<Result<_, _>>().expect("spans");
        assert_eq!(spans.len(), 1);
        assert_eq!(r.passed(), 3);
        // In place, through a buffer smaller than a line: the same records.
        for capacity in [7, 1 << 16] {
            let buffered = io::BufReader::with_capacity(capacity, input.as_bytes());
            let mut r = SpanReader::new(buffered, false);
            let mut kinds = Vec::new();
            r.for_each_record(|rec| {
                kinds.push(match rec {
                    RecordView::Span(v) => format!("span {}", v.name),
                    RecordView::Sample(s) => format!("sample {}", s.cpu_nanos),
                });
                Ok::<(), ReadError>(())
            })
            .expect("records");
            assert_eq!(
                kinds,
                ["sample 2", "span a", "sample 2"],
                "buffer of {capacity}"
            );
            assert_eq!(r.passed(), 1);
            let buffered = io::BufReader::with_capacity(capacity, input.as_bytes());
            let mut r = SpanReader::new(buffered, false);
            let mut spans = 0;
            r.for_each_view(|_| {
                spans += 1;
                Ok::<(), ReadError>(())
            })
            .expect("spans");
            assert_eq!((spans, r.passed()), (1, 3));
        }
        // With its newline: a last line cut off mid-write is skipped instead.
        let bad = "{\"type\":\"cpu_sample\",\"time_unix_nano\":\"x\"}\n";
        let err = SpanReader::new(bad.as_bytes(), false)
            .next_record()
            .expect_err("bad sample");
        assert!(
            err.to_string()
                .starts_with("line 1: invalid cpu_sample JSON"),
            "{err}"
        );
    }

    #[test]
    fn empty_input_is_no_spans() {
        let mut r = SpanReader::new(&b""[..], false);
        assert!(r.next_span().expect("ok").is_none());
    }
}
