//! Reading span NDJSON: one [`Span`] per line, with the line number in every
//! error, and `--skip-invalid` counting instead of stopping.

use std::io::{self, BufRead};

use crate::span::{Span, SpanError};

/// A line that could not be read as a span, or the input failing.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("reading input: {0}")]
    Io(#[from] io::Error),
    #[error("line {line}: {source}")]
    Invalid { line: u64, source: SpanError },
    #[error("line {line}: not valid UTF-8")]
    NotUtf8 { line: u64 },
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

    /// The next span, `Ok(None)` at the end of the input.
    pub fn next_span(&mut self) -> Result<Option<Span>, ReadError> {
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
                Ok(text) => {
                    Span::from_json_line(text).map_err(|source| ReadError::Invalid { line, source })
                }
            };
            match parsed {
                Ok(span) => return Ok(Some(span)),
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
    fn empty_input_is_no_spans() {
        let mut r = SpanReader::new(&b""[..], false);
        assert!(r.next_span().expect("ok").is_none());
    }
}
