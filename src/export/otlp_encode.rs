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
use std::sync::Arc;

use super::otlp_schema::{SCOPE_NAME, VERSION, code_number, flags, kind_number};
use super::otlp_wire;
use super::pipeline::Encode;
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
    resource: Arc<Attrs<'static>>,
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

    /// The group of spans of `resource`, a new one (its resource made by
    /// `make`) when there is none yet.
    fn group_of(
        &mut self,
        resource: &Attrs<'_>,
        make: impl FnOnce() -> Arc<Attrs<'static>>,
    ) -> &mut Group {
        let at = if self
            .groups
            .get(self.last)
            .is_some_and(|g| *g.resource == *resource)
        {
            self.last
        } else if let Some(i) = self.groups.iter().position(|g| *g.resource == *resource) {
            i
        } else {
            let spans = self.spare.pop().unwrap_or_default();
            self.groups.push(Group {
                resource: make(),
                spans,
            });
            self.groups.len() - 1
        };
        self.last = at;
        self.spans += 1;
        &mut self.groups[at]
    }

    /// Add a span that a [`SpanEncoder`] of this batch's encoding encoded.
    pub fn push(&mut self, resource: &Arc<Attrs<'static>>, encoded: &[u8]) {
        let json = self.encoding == Encoding::Json;
        // Spans of one resource come in runs, mostly from one worker's cache.
        let group = match self.groups.get(self.last) {
            Some(g) if Arc::ptr_eq(&g.resource, resource) => {
                self.spans += 1;
                &mut self.groups[self.last]
            }
            _ => self.group_of(resource, || Arc::clone(resource)),
        };
        if json && !group.spans.is_empty() {
            group.spans.push(b',');
        }
        group.spans.extend_from_slice(encoded);
    }

    pub fn add(&mut self, span: &SpanView<'_>) -> io::Result<()> {
        let encoding = self.encoding;
        let mut scratch = std::mem::take(&mut self.scratch);
        let group = self.group_of(&span.resource, || Arc::new(span.resource.to_static()));
        let result = match encoding {
            Encoding::Json => {
                if !group.spans.is_empty() {
                    group.spans.push(b',');
                }
                json::span(&mut group.spans, span)
            }
            Encoding::Protobuf => {
                scratch.clear();
                otlp_wire::span(&mut scratch, span);
                otlp_wire::bytes_field(&mut group.spans, 2, &scratch);
                Ok(())
            }
        };
        self.scratch = scratch;
        result
    }

    /// Write the request holding every span added so far to `out`, and
    /// start the next batch. The spans are written as they were encoded,
    /// between framing built per group.
    pub fn finish(&mut self, out: &mut impl Write) -> io::Result<()> {
        match self.encoding {
            Encoding::Json => json::request(
                out,
                self.groups.iter().map(|g| (&*g.resource, &g.spans[..])),
                &mut self.scratch,
            )?,
            Encoding::Protobuf => otlp_wire::request(
                out,
                self.groups.iter().map(|g| (&*g.resource, &g.spans[..])),
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

/// Encodes spans one at a time for [`Batch::push`], on the
/// [`super::pipeline`]'s worker threads.
pub struct SpanEncoder {
    encoding: Encoding,
    /// The last few resources seen, so that spans of one resource share
    /// one copy (and the batch finds their group by pointer).
    recent: Vec<Arc<Attrs<'static>>>,
    /// The previous span's resource, in this block.
    last: Option<Arc<Attrs<'static>>>,
    scratch: Vec<u8>,
}

/// A span's resource as a [`SpanEncoder`] gives it: a new one only when it
/// changes within a block (an `Arc` handed across threads for every span
/// kept its count's cache line moving between cores).
pub enum SpanResource {
    /// The previous span's.
    Same,
    Changed(Arc<Attrs<'static>>),
}

/// Resources a [`SpanEncoder`] remembers.
const RECENT_RESOURCES: usize = 8;

impl SpanEncoder {
    pub fn new(encoding: Encoding) -> SpanEncoder {
        SpanEncoder {
            encoding,
            recent: Vec::new(),
            last: None,
            scratch: Vec::new(),
        }
    }

    /// The shared copy of `resource`: one remembered only when identical
    /// (doubles bit for bit), so it encodes to the same bytes.
    fn resource(&mut self, resource: &Attrs<'_>) -> Arc<Attrs<'static>> {
        if let Some(known) = self.recent.iter().find(|r| r.identical(resource)) {
            return Arc::clone(known);
        }
        if self.recent.len() == RECENT_RESOURCES {
            self.recent.remove(0);
        }
        let made = Arc::new(resource.to_static());
        self.recent.push(Arc::clone(&made));
        made
    }
}

impl Encode for SpanEncoder {
    type Out = io::Result<SpanResource>;

    /// The span's bytes as [`Batch::add`] writes them into its group (a
    /// JSON object; a protobuf `ScopeSpans.spans` field), and its resource.
    fn encode(&mut self, span: &SpanView<'_>, out: &mut Vec<u8>) -> Self::Out {
        match self.encoding {
            Encoding::Json => json::span(out, span)?,
            Encoding::Protobuf => {
                self.scratch.clear();
                otlp_wire::span(&mut self.scratch, span);
                otlp_wire::bytes_field(out, 2, &self.scratch);
            }
        }
        if let Some(last) = &self.last
            && last.identical(&span.resource)
        {
            return Ok(SpanResource::Same);
        }
        let resource = self.resource(&span.resource);
        self.last = Some(Arc::clone(&resource));
        Ok(SpanResource::Changed(resource))
    }

    fn start_block(&mut self) {
        self.last = None;
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
