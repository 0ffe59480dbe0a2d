//! `--to text`: spans for a person to read, one block per span in input
//! order, each value written the way a person would write it (`GET`,
//! `200`, `0.5`, `true`, `["a", "b"]`), times in UTC with every nanosecond,
//! durations in the unit that reads best. A resource block comes before
//! the first span of each run of spans from one resource.
//!
//! The OpenTelemetry SDK's stdout exporter, used before, printed values in
//! their Rust debug form (`String(Owned("go"))`) and times to the
//! microsecond, and could only print to the process's stdout.

use std::io::{self, BufRead, Write};

use chrono::{DateTime, SecondsFormat};

use super::reader::SpanReader;
use super::view::{Attrs, SpanView, Value};
use super::{ExportError, Summary};
use crate::span::{SpanKind, StatusCode};

/// Output is built here and handed to the writer in chunks of about this size.
const CHUNK: usize = 1 << 16;

/// A string as it reads on its own: bare, unless bare would hide something
/// (empty, surrounding space, control characters), then quoted and escaped.
fn string(out: &mut Vec<u8>, s: &str) -> io::Result<()> {
    let plain = !s.is_empty()
        && !s.starts_with(char::is_whitespace)
        && !s.ends_with(char::is_whitespace)
        && !s.contains(char::is_control);
    if plain {
        out.extend_from_slice(s.as_bytes());
        Ok(())
    } else {
        serde_json::to_writer(out, s).map_err(io::Error::from)
    }
}

/// An attribute value; array items are separated by `, ` and their strings
/// always quoted, so items with commas stay apart.
fn value(out: &mut Vec<u8>, v: &Value<'_>, in_array: bool) -> io::Result<()> {
    match v {
        Value::String(s) if in_array => serde_json::to_writer(out, s.as_ref())?,
        Value::String(s) => string(out, s)?,
        Value::Bool(b) => write!(out, "{b}")?,
        Value::Int(n) => write!(out, "{n}")?,
        // Shortest form that reads back as the same number (0.5, 1e+300).
        Value::Double(d) => serde_json::to_writer(&mut *out, d)?,
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.extend_from_slice(b", ");
                }
                value(out, item, true)?;
            }
            out.push(b']');
        }
    }
    Ok(())
}

/// Nanoseconds since the epoch as RFC 3339 UTC with nine fraction digits.
fn time(out: &mut Vec<u8>, ns: u64) -> io::Result<()> {
    match i64::try_from(ns) {
        Ok(ns) => {
            let t = DateTime::from_timestamp_nanos(ns);
            out.extend_from_slice(t.to_rfc3339_opts(SecondsFormat::Nanos, true).as_bytes());
        }
        // Past 2262: beyond what the calendar type holds.
        Err(_) => write!(out, "{ns} ns after the Unix epoch")?,
    }
    Ok(())
}

/// A duration in ns, µs, ms or s, exact (trailing zeros dropped).
fn duration(out: &mut Vec<u8>, ns: u64) -> io::Result<()> {
    let (unit, scale) = match ns {
        0..1_000 => return Ok(write!(out, "{ns}ns")?),
        1_000..1_000_000 => ("µs", 1_000),
        1_000_000..1_000_000_000 => ("ms", 1_000_000),
        _ => ("s", 1_000_000_000),
    };
    write!(out, "{}", ns / scale)?;
    let frac = ns % scale;
    if frac != 0 {
        let digits = scale.ilog10() as usize;
        let text = format!("{frac:0digits$}");
        write!(out, ".{}", text.trim_end_matches('0'))?;
    }
    out.extend_from_slice(unit.as_bytes());
    Ok(())
}

fn attributes(out: &mut Vec<u8>, attrs: &Attrs<'_>, indent: &str) -> io::Result<()> {
    for (key, v) in attrs.iter() {
        out.extend_from_slice(indent.as_bytes());
        string(out, key)?;
        out.extend_from_slice(b": ");
        value(out, v, false)?;
        out.push(b'\n');
    }
    Ok(())
}

fn resource(out: &mut Vec<u8>, resource: &Attrs<'_>) -> io::Result<()> {
    out.extend_from_slice(b"Resource\n");
    if resource.is_empty() {
        out.extend_from_slice(b"  (no attributes)\n");
    }
    attributes(out, resource, "  ")?;
    out.push(b'\n');
    Ok(())
}

fn kind_name(kind: SpanKind) -> &'static str {
    match kind {
        SpanKind::Internal => "internal",
        SpanKind::Server => "server",
        SpanKind::Client => "client",
        SpanKind::Producer => "producer",
        SpanKind::Consumer => "consumer",
    }
}

fn span(out: &mut Vec<u8>, span: &SpanView<'_>) -> io::Result<()> {
    out.extend_from_slice(b"Span ");
    string(out, &span.name)?;
    writeln!(out, "\n  Kind:        {}", kind_name(span.kind))?;
    writeln!(out, "  Trace ID:    {}", span.trace_id)?;
    writeln!(out, "  Span ID:     {}", span.span_id)?;
    match (span.parent_span_id, span.trace_flags) {
        (Some(parent), Some(_)) => writeln!(out, "  Parent ID:   {parent} (remote caller)")?,
        (Some(parent), None) => writeln!(out, "  Parent ID:   {parent}")?,
        (None, _) => out.extend_from_slice(b"  Parent ID:   none (root span)\n"),
    }
    if let Some(flags) = span.trace_flags {
        let sampled = if flags & 1 == 1 {
            "sampled"
        } else {
            "not sampled"
        };
        writeln!(out, "  Trace flags: {flags:02x} ({sampled})")?;
    }
    out.extend_from_slice(b"  Start:       ");
    time(out, span.start_time_unix_nano)?;
    out.extend_from_slice(b"\n  End:         ");
    time(out, span.end_time_unix_nano)?;
    out.extend_from_slice(b"\n  Duration:    ");
    duration(out, span.duration_nanos())?;
    out.extend_from_slice(b"\n  Status:      ");
    out.extend_from_slice(match span.status.code {
        StatusCode::Unset => b"unset",
        StatusCode::Ok => b"ok",
        StatusCode::Error => b"error",
    });
    if let Some(message) = &span.status.message {
        out.extend_from_slice(b": ");
        string(out, message)?;
    }
    out.push(b'\n');
    if !span.attributes.is_empty() {
        out.extend_from_slice(b"  Attributes:\n");
        attributes(out, &span.attributes, "    ")?;
    }
    if !span.events.is_empty() {
        out.extend_from_slice(b"  Events:\n");
        for event in &span.events {
            out.extend_from_slice(b"    ");
            time(out, event.time_unix_nano)?;
            out.push(b' ');
            string(out, &event.name)?;
            out.push(b'\n');
            attributes(out, &event.attributes, "      ")?;
        }
    }
    out.push(b'\n');
    Ok(())
}

/// Write every span, streaming.
pub fn convert<R: BufRead, W: Write>(
    reader: &mut SpanReader<R>,
    mut out: W,
) -> Result<Summary, ExportError> {
    let mut buf = Vec::with_capacity(2 * CHUNK);
    let mut last_resource: Option<Attrs<'static>> = None;
    let mut spans = 0u64;
    reader.for_each_view(|view| {
        spans += 1;
        if last_resource
            .as_ref()
            .is_none_or(|r| !r.identical(&view.resource))
        {
            resource(&mut buf, &view.resource)?;
            last_resource = Some(view.resource.to_static());
        }
        span(&mut buf, &view)?;
        if buf.len() >= CHUNK {
            out.write_all(&buf)?;
            buf.clear();
        }
        Ok::<(), ExportError>(())
    })?;
    out.write_all(&buf)?;
    out.flush()?;
    Ok(Summary {
        spans,
        skipped: reader.skipped(),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(f: impl FnOnce(&mut Vec<u8>) -> io::Result<()>) -> String {
        let mut out = Vec::new();
        f(&mut out).expect("write");
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn values_read_as_written_by_hand() {
        let line = r#"{"trace_id":"0af7651916cd43dd8448eb211c80319c","span_id":"b7ad6b7169203331","name":"GET /x","kind":"client","start_time_unix_nano":1700000000000000001,"end_time_unix_nano":1700000000003318145,"attributes":{"s":"go","i":-3,"d":0.5,"e":1e300,"b":true,"a":["a, b",1,2.5,false],"blank":"","padded":" x","nl":"a\nb"},"status":{"code":"error","message":"bad"},"trace_flags":1,"parent_span_id":"00f067aa0ba902b7"}"#;
        let view = SpanView::parse(line).expect("span");
        let out = text(|o| span(o, &view));
        for expected in [
            "Span GET /x\n",
            "  Kind:        client\n",
            "  Parent ID:   00f067aa0ba902b7 (remote caller)\n",
            "  Trace flags: 01 (sampled)\n",
            "  Start:       2023-11-14T22:13:20.000000001Z\n",
            "  Duration:    3.318144ms\n",
            "  Status:      error: bad\n",
            "    s: go\n",
            "    i: -3\n",
            "    d: 0.5\n",
            "    e: 1e+300\n",
            "    b: true\n",
            "    a: [\"a, b\", 1, 2.5, false]\n",
            "    blank: \"\"\n",
            "    padded: \" x\"\n",
            "    nl: \"a\\nb\"\n",
        ] {
            assert!(out.contains(expected), "{expected:?} missing in\n{out}");
        }
    }

    #[test]
    fn durations_in_the_unit_that_reads_best() {
        let d = |ns| text(|o| duration(o, ns));
        assert_eq!(d(0), "0ns");
        assert_eq!(d(999), "999ns");
        assert_eq!(d(1_500), "1.5µs");
        assert_eq!(d(2_000_000), "2ms");
        assert_eq!(d(1_000_000_001), "1.000000001s");
        assert_eq!(d(u64::MAX), "18446744073.709551615s");
    }

    #[test]
    fn times_beyond_the_calendar_still_print() {
        assert_eq!(text(|o| time(o, 0)), "1970-01-01T00:00:00.000000000Z");
        assert!(text(|o| time(o, u64::MAX)).ends_with("ns after the Unix epoch"));
    }
}
