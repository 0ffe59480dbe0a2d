//! Reading a recording's NDJSON: one [`Span`] per line, and beside the
//! spans records tagged with a `type` (CPU samples, [`crate::sample`]),
//! with the line number in every error, and `--skip-invalid` counting
//! instead of stopping. Formats made of spans alone read
//! [`SpanReader::next_span`], which passes the other records by (counted);
//! records of a `type` this goprobe does not know are passed by too.

use std::io::{self, BufRead};

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
}

/// One record of a recording.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Span(Span),
    Sample(CpuSample),
}

/// The `type` of a tagged record line, if it is one: `{"type":"..."`
/// first (as goprobe writes them), else any object with a string `type`.
fn record_type(text: &str) -> Option<std::borrow::Cow<'_, str>> {
    let t = text.trim_start();
    if let Some(rest) = t.strip_prefix(r#"{"type":""#) {
        return rest
            .split_once('"')
            .map(|(ty, _)| std::borrow::Cow::Borrowed(ty));
    }
    // Not written by goprobe: only pay for a full parse when a span does not fit.
    None
}

/// Iterates over the spans of an NDJSON stream. Blank lines are ignored.
/// With `skip_invalid`, malformed lines are counted in [`SpanReader::skipped`]
/// and the first few reported through [`SpanReader::take_warnings`].
pub struct SpanReader<R> {
    input: R,
    buf: Vec<u8>,
    line: u64,
    skip_invalid: bool,
    skipped: u64,
    /// Records that are not spans, passed by `next_span`.
    passed: u64,
    warnings: Vec<String>,
}

/// How many skipped lines are described individually; the rest are only counted.
const MAX_WARNINGS: u64 = 10;

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
        }
    }

    /// Lines skipped as invalid so far.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    /// Descriptions of the first skipped lines (`line N: ...`), drained.
    pub fn take_warnings(&mut self) -> Vec<String> {
        std::mem::take(&mut self.warnings)
    }

    /// Records other than spans that [`Self::next_span`] passed by.
    pub fn passed(&self) -> u64 {
        self.passed
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

    /// The next record, `Ok(None)` at the end of the input. Records of a
    /// `type` this goprobe does not know are passed by (counted in
    /// [`Self::passed`]).
    pub fn next_record(&mut self) -> Result<Option<Record>, ReadError> {
        loop {
            self.buf.clear();
            if self.input.read_until(b'\n', &mut self.buf)? == 0 {
                return Ok(None);
            }
            self.line += 1;
            let line = self.line;
            let parsed = match std::str::from_utf8(&self.buf) {
                Err(_) => Err(ReadError::NotUtf8 { line }),
                Ok(text) if text.trim().is_empty() => continue,
                Ok(text) => match record_type(text) {
                    Some(ty) if ty == RECORD_TYPE => CpuSample::from_json_line(text)
                        .map(|s| Some(Record::Sample(s)))
                        .map_err(|source| ReadError::InvalidSample { line, source }),
                    Some(_) => Ok(None),
                    None => match Span::from_json_line(text) {
                        Ok(span) => Ok(Some(Record::Span(span))),
                        Err(source) => match tagged_type(text) {
                            Some(ty) if ty == RECORD_TYPE => CpuSample::from_json_line(text)
                                .map(|s| Some(Record::Sample(s)))
                                .map_err(|source| ReadError::InvalidSample { line, source }),
                            Some(_) => Ok(None),
                            None => Err(ReadError::Invalid { line, source }),
                        },
                    },
                },
            };
            match parsed {
                Ok(Some(record)) => return Ok(Some(record)),
                Ok(None) => self.passed += 1,
                Err(err) if self.skip_invalid => {
                    self.skipped += 1;
                    if self.skipped <= MAX_WARNINGS {
                        self.warnings.push(err.to_string());
                    }
                }
                Err(err) => return Err(err),
            }
        }
    }
}

/// The `type` of a JSON object line written by hand (any key order, any
/// spacing); `None` when it has no string `type`.
fn tagged_type(text: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    v.get("type")?.as_str().map(str::to_owned)
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
    fn samples_and_unknown_records_are_passed_by_next_span() {
        let sample = r#"{"type":"cpu_sample","time_unix_nano":1,"cpu_nanos":2}"#;
        let by_hand = r#"{ "cpu_nanos": 2, "type": "cpu_sample", "time_unix_nano": 1 }"#;
        let other = r#"{"type":"lost","reason":"ringbuf_full","count":3}"#;
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
        let bad = r#"{"type":"cpu_sample","time_unix_nano":"x"}"#;
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
