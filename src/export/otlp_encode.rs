//! OTLP written straight from span views: a batch of spans grouped by
//! resource, each span encoded as it is read, in either OTLP/JSON (here) or
//! the protobuf wire format ([`super::otlp_wire`]).
//!
//! The bytes are exactly what encoding the opentelemetry-proto messages
//! built by `otlp_json::export_request` gives (serde for JSON,
//! prost for protobuf), field for field and in the same order;
//! `otlp_equivalence` tests that. Writing them directly skips building those messages, which
//! costs an allocation per string and dominated the conversion.

use std::io::{self, Write};

use super::otlp_schema::{SCOPE_NAME, VERSION, code_number, flags, kind_number};
use super::otlp_wire;
use super::view::{Attrs, SpanView, Value, write_json_string};

/// The wire format of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// One `ExportTraceServiceRequest` as OTLP/JSON (no trailing newline).
    Json,
    /// One `ExportTraceServiceRequest` as protobuf.
    Protobuf,
}

/// The spans of one batch, grouped by resource in order of first
/// appearance, spans in input order within their group.
pub struct Batch {
    encoding: Encoding,
    groups: Vec<Group>,
    /// Emptied span buffers of earlier batches, reused.
    spare: Vec<Vec<u8>>,
    scratch: Vec<u8>,
    spans: usize,
    /// The group the previous span went to (spans of one service come in runs).
    last: usize,
}

struct Group {
    resource: Attrs<'static>,
    /// The encoded spans: comma-separated JSON objects, or protobuf
    /// `ScopeSpans.spans` fields.
    spans: Vec<u8>,
}

impl Batch {
    pub fn new(encoding: Encoding) -> Batch {
        Batch {
            encoding,
            groups: Vec::new(),
            spare: Vec::new(),
            scratch: Vec::new(),
            spans: 0,
            last: 0,
        }
    }

    /// Spans added since the last [`Batch::finish`].
    pub fn len(&self) -> usize {
        self.spans
    }

    pub fn is_empty(&self) -> bool {
        self.spans == 0
    }

    pub fn add(&mut self, span: &SpanView<'_>) -> io::Result<()> {
        let at = if self
            .groups
            .get(self.last)
            .is_some_and(|g| g.resource == span.resource)
        {
            self.last
        } else if let Some(i) = self.groups.iter().position(|g| g.resource == span.resource) {
            i
        } else {
            let spans = self.spare.pop().unwrap_or_default();
            self.groups.push(Group {
                resource: span.resource.to_static(),
                spans,
            });
            self.groups.len() - 1
        };
        self.last = at;
        self.spans += 1;
        let group = &mut self.groups[at];
        match self.encoding {
            Encoding::Json => {
                if !group.spans.is_empty() {
                    group.spans.push(b',');
                }
                json::span(&mut group.spans, span)
            }
            Encoding::Protobuf => {
                self.scratch.clear();
                otlp_wire::span(&mut self.scratch, span);
                otlp_wire::bytes_field(&mut group.spans, 2, &self.scratch);
                Ok(())
            }
        }
    }

    /// Write the request holding every span added so far to `out`, and
    /// start the next batch. The spans are written as they were encoded,
    /// between framing built per group.
    pub fn finish(&mut self, out: &mut impl Write) -> io::Result<()> {
        match self.encoding {
            Encoding::Json => json::request(
                out,
                self.groups.iter().map(|g| (&g.resource, &g.spans[..])),
                &mut self.scratch,
            )?,
            Encoding::Protobuf => otlp_wire::request(
                out,
                self.groups.iter().map(|g| (&g.resource, &g.spans[..])),
                &mut self.scratch,
            )?,
        }
        for mut group in self.groups.drain(..) {
            group.spans.clear();
            self.spare.push(group.spans);
        }
        self.spans = 0;
        self.last = 0;
        Ok(())
    }
}

/// Lowercase hex, as OTLP/JSON writes ids.
pub(crate) fn hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.push(DIGITS[usize::from(b >> 4)]);
        out.push(DIGITS[usize::from(b & 15)]);
    }
}

/// OTLP/JSON, in the field order and with the defaults opentelemetry-proto's
/// serde support writes.
mod json {
    use super::*;

    pub(super) fn string(out: &mut Vec<u8>, s: &str) -> io::Result<()> {
        serde_json::to_writer(out, s).map_err(io::Error::from)
    }

    fn number<T: serde::Serialize>(out: &mut Vec<u8>, n: T) -> io::Result<()> {
        serde_json::to_writer(out, &n).map_err(io::Error::from)
    }

    /// A 64-bit integer as a decimal string (the OTLP/JSON rule).
    fn quoted<T: serde::Serialize>(out: &mut Vec<u8>, n: T) -> io::Result<()> {
        out.push(b'"');
        number(out, n)?;
        out.push(b'"');
        Ok(())
    }

    fn id(out: &mut Vec<u8>, bytes: &[u8]) {
        out.push(b'"');
        hex(out, bytes);
        out.push(b'"');
    }

    fn any_value(out: &mut Vec<u8>, value: &Value<'_>) -> io::Result<()> {
        match value {
            Value::String(s) => {
                out.extend_from_slice(br#"{"stringValue":"#);
                write_json_string(out, s)?;
            }
            Value::Bool(b) => {
                out.extend_from_slice(br#"{"boolValue":"#);
                out.extend_from_slice(if *b { b"true" } else { b"false" });
            }
            Value::Int(n) => {
                out.extend_from_slice(br#"{"intValue":"#);
                quoted(out, *n)?;
            }
            Value::Double(d) => {
                out.extend_from_slice(br#"{"doubleValue":"#);
                number(out, *d)?;
            }
            Value::Array(items) => {
                out.extend_from_slice(br#"{"arrayValue":{"values":["#);
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    any_value(out, item)?;
                }
                out.extend_from_slice(b"]}");
            }
        }
        out.push(b'}');
        Ok(())
    }

    pub(super) fn attributes(out: &mut Vec<u8>, attrs: &Attrs<'_>) -> io::Result<()> {
        out.push(b'[');
        for (i, (key, value)) in attrs.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(br#"{"key":"#);
            write_json_string(out, key)?;
            out.extend_from_slice(br#","value":"#);
            any_value(out, value)?;
            out.push(b'}');
        }
        out.push(b']');
        Ok(())
    }

    pub(super) fn span(out: &mut Vec<u8>, span: &SpanView<'_>) -> io::Result<()> {
        out.extend_from_slice(br#"{"traceId":"#);
        id(out, &span.trace_id.0);
        out.extend_from_slice(br#","spanId":"#);
        id(out, &span.span_id.0);
        out.extend_from_slice(br#","traceState":"","parentSpanId":"#);
        id(
            out,
            span.parent_span_id.as_ref().map_or(&[][..], |p| &p.0[..]),
        );
        out.extend_from_slice(br#","flags":"#);
        number(out, flags(span))?;
        out.extend_from_slice(br#","name":"#);
        write_json_string(out, &span.name)?;
        out.extend_from_slice(br#","kind":"#);
        number(out, kind_number(span.kind))?;
        out.extend_from_slice(br#","startTimeUnixNano":"#);
        quoted(out, span.start_time_unix_nano)?;
        out.extend_from_slice(br#","endTimeUnixNano":"#);
        quoted(out, span.end_time_unix_nano)?;
        out.extend_from_slice(br#","attributes":"#);
        attributes(out, &span.attributes)?;
        out.extend_from_slice(br#","droppedAttributesCount":0,"events":["#);
        for (i, event) in span.events.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(br#"{"timeUnixNano":"#);
            quoted(out, event.time_unix_nano)?;
            out.extend_from_slice(br#","name":"#);
            write_json_string(out, &event.name)?;
            out.extend_from_slice(br#","attributes":"#);
            attributes(out, &event.attributes)?;
            out.extend_from_slice(br#","droppedAttributesCount":0}"#);
        }
        out.extend_from_slice(
            br#"],"droppedEventsCount":0,"links":[],"droppedLinksCount":0,"status":{"message":"#,
        );
        match &span.status.message {
            Some(message) => write_json_string(out, message)?,
            None => out.extend_from_slice(b"\"\""),
        }
        out.extend_from_slice(br#","code":"#);
        number(out, code_number(span.status.code))?;
        out.extend_from_slice(b"}}");
        Ok(())
    }

    pub(super) fn request<'g>(
        out: &mut impl Write,
        groups: impl Iterator<Item = (&'g Attrs<'static>, &'g [u8])>,
        frame: &mut Vec<u8>,
    ) -> io::Result<()> {
        frame.clear();
        frame.extend_from_slice(br#"{"resourceSpans":["#);
        for (i, (resource, spans)) in groups.enumerate() {
            if i > 0 {
                frame.push(b',');
            }
            frame.extend_from_slice(br#"{"resource":{"attributes":"#);
            attributes(frame, resource)?;
            frame.extend_from_slice(
                br#","droppedAttributesCount":0,"entityRefs":[]},"scopeSpans":[{"scope":{"name":"#,
            );
            string(frame, SCOPE_NAME)?;
            frame.extend_from_slice(br#","version":"#);
            string(frame, VERSION)?;
            frame.extend_from_slice(br#","attributes":[],"droppedAttributesCount":0},"spans":["#);
            out.write_all(frame)?;
            out.write_all(spans)?;
            frame.clear();
            frame.extend_from_slice(br#"],"schemaUrl":"#);
            string(frame, crate::otel::SCHEMA_URL)?;
            frame.extend_from_slice(br#"}],"schemaUrl":"#);
            string(frame, crate::otel::SCHEMA_URL)?;
            frame.push(b'}');
        }
        frame.extend_from_slice(b"]}");
        out.write_all(frame)
    }
}
