//! Reading span NDJSON: one span per line, owned ([`Span`]) or read in place
//! ([`SpanView`]), with the line number in every error, and `--skip-invalid`
//! counting instead of stopping.

use std::io::{self, BufRead};

use super::view::SpanView;
use crate::loss::{Losses, LostLine};
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
    #[error("line {line}: not a span nor a lost line: {source}")]
    BadLost {
        line: u64,
        source: serde_json::Error,
    },
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
    warnings: Vec<String>,
    losses: Losses,
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

    /// Read the next line into `buf`; false at the end of the input.
    fn read_line(&mut self) -> Result<bool, ReadError> {
        self.buf.clear();
        if self.input.read_until(b'\n', &mut self.buf)? == 0 {
            return Ok(false);
        }
        self.line += 1;
        Ok(true)
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

    /// The line in `buf` has no newline: it was the input's last, cut off.
    fn buf_cut_off(&self) -> bool {
        self.buf.last().is_some_and(|b| *b != b'\n')
    }

    /// The next span, `Ok(None)` at the end of the input.
    pub fn next_span(&mut self) -> Result<Option<Span>, ReadError> {
        while self.read_line()? {
            match parse_line(&self.buf, self.line, &mut self.losses) {
                None => {}
                Some(Ok(view)) => return Ok(Some(view.to_span())),
                Some(Err(err)) => {
                    let cut = self.buf_cut_off();
                    self.skip(err, cut)?;
                }
            }
        }
        Ok(None)
    }

    /// Call `f` on every span in turn, read in place (see [`SpanView`]):
    /// the streaming converters' loop, which copies nothing it does not
    /// keep. A line that lies whole in the input's buffer is parsed where it
    /// is; only one that crosses the buffer's end is copied out first.
    pub fn for_each_view<E: From<ReadError>>(
        &mut self,
        mut f: impl FnMut(SpanView<'_>) -> Result<(), E>,
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
            let bad = if let Some(end) = memchr::memchr(b'\n', available) {
                self.line += 1;
                let bad = match parse_line(&available[..=end], self.line, &mut self.losses) {
                    None => None,
                    Some(Ok(view)) => {
                        f(view)?;
                        None
                    }
                    Some(Err(err)) => Some((err, false)),
                };
                self.input.consume(end + 1);
                bad
            } else {
                if !self.read_line()? {
                    return Ok(());
                }
                let cut = self.buf_cut_off();
                match parse_line(&self.buf, self.line, &mut self.losses) {
                    None => None,
                    Some(Ok(view)) => {
                        f(view)?;
                        None
                    }
                    Some(Err(err)) => Some((err, cut)),
                }
            };
            if let Some((err, cut)) = bad {
                self.skip(err, cut)?;
            }
        }
    }
}

/// One line as a span; `None` for a blank line or a `lost` line (counted
/// into `losses`).
fn parse_line<'b>(
    buf: &'b [u8],
    line: u64,
    losses: &mut Losses,
) -> Option<Result<SpanView<'b>, ReadError>> {
    match LostLine::parse(buf) {
        None => {}
        Some(Ok(l)) => {
            losses.add(&l.reason, l.count);
            return None;
        }
        Some(Err(source)) => return Some(Err(ReadError::BadLost { line, source })),
    }
    match buf.iter().find(|b| !b.is_ascii_whitespace()) {
        None => return None,
        // Unicode whitespace (a blank line too) or not UTF-8 at all.
        Some(&b) if b >= 0x80 => match std::str::from_utf8(buf) {
            Err(_) => return Some(Err(ReadError::NotUtf8 { line })),
            Ok(text) if text.trim_start().is_empty() => return None,
            Ok(_) => {}
        },
        Some(_) => {}
    }
    Some(match SpanView::parse_bytes(buf) {
        Ok(view) => Ok(view),
        // serde_json reports bad UTF-8 inside a string in its own words.
        Err(_) if std::str::from_utf8(buf).is_err() => Err(ReadError::NotUtf8 { line }),
        Err(source) => Err(ReadError::Invalid { line, source }),
    })
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
    fn empty_input_is_no_spans() {
        let mut r = SpanReader::new(&b""[..], false);
        assert!(r.next_span().expect("ok").is_none());
    }
}
