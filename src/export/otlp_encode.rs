//! OTLP written straight from span views: a batch of spans grouped by
//! resource, each span encoded as it is read, in either OTLP/JSON (here) or
//! the protobuf wire format ([`super::otlp_wire`]).
//!
//! The bytes are exactly what encoding the opentelemetry-proto messages
//! built by [`super::otlp_json::export_request`] gives (serde for JSON,
//! prost for protobuf), field for field and in the same order; the tests
//! check that. Writing them directly skips building those messages, which
//! costs an allocation per string and dominated the conversion.

use std::io::{self, Write};

use super::otlp_json::{FLAG_HAS_IS_REMOTE, FLAG_IS_REMOTE, FLAG_SAMPLED, SCOPE_NAME};
use super::otlp_wire;
use super::view::{Attrs, SpanView, Value, write_json_string};
use crate::span::{SpanKind, StatusCode};

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

pub(crate) const VERSION: &str = env!("CARGO_PKG_VERSION");

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

pub(crate) fn kind_number(kind: SpanKind) -> i32 {
    use opentelemetry_proto::tonic::trace::v1::span::SpanKind as K;
    (match kind {
        SpanKind::Internal => K::Internal,
        SpanKind::Server => K::Server,
        SpanKind::Client => K::Client,
        SpanKind::Producer => K::Producer,
        SpanKind::Consumer => K::Consumer,
    }) as i32
}

pub(crate) fn code_number(code: StatusCode) -> i32 {
    use opentelemetry_proto::tonic::trace::v1::status::StatusCode as C;
    (match code {
        StatusCode::Unset => C::Unset,
        StatusCode::Ok => C::Ok,
        StatusCode::Error => C::Error,
    }) as i32
}

/// OTLP span flags, as [`super::otlp_json::proto_span`] sets them.
pub(crate) fn flags(span: &SpanView<'_>) -> u32 {
    match span.trace_flags {
        Some(f) => u32::from(f) | FLAG_HAS_IS_REMOTE | FLAG_IS_REMOTE,
        None => FLAG_SAMPLED,
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

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::export::otlp_json::export_request;
    use crate::span::Span;

    /// Spans that exercise every field and value type, escapes, several
    /// resources (interleaved), roots, remote parents and events.
    fn lines() -> Vec<String> {
        let mut out = Vec::new();
        for i in 0..40u64 {
            let service = ["a", "b\u{e9}", "c \"q\""][(i % 3) as usize];
            let parent = if i % 4 == 0 {
                String::new()
            } else {
                format!(r#""parent_span_id":"{:016x}","#, i + 1000)
            };
            let flags = if i % 7 == 3 {
                format!(r#","trace_flags":{}"#, i % 2)
            } else {
                String::new()
            };
            let status = match i % 3 {
                0 => r#"{"code":"unset"}"#.to_owned(),
                1 => r#"{"code":"ok"}"#.to_owned(),
                _ => format!(r#"{{"code":"error","message":"boom {i}\n\u0001"}}"#),
            };
            let events = if i % 2 == 0 {
                format!(
                    r#"[{{"name":"exception","time_unix_nano":{},"attributes":{{"exception.message":"x","n":-1}}}},{{"name":"","time_unix_nano":0}}]"#,
                    5 + i
                )
            } else {
                "[]".to_owned()
            };
            let kind = ["internal", "server", "client", "producer", "consumer"][(i % 5) as usize];
            out.push(format!(
                r#"{{"trace_id":"{:032x}","span_id":"{:016x}",{parent}"name":"{}","kind":"{kind}","start_time_unix_nano":{},"end_time_unix_nano":{},"attributes":{{"s":"v{i}","e":"","big":9007199254740993,"neg":{},"huge":18446744073709551615,"d":{},"t":true,"f":false,"arr":["x",1,2.5,false,[]],"":"empty key"}},"status":{status},"events":{events},"resource":{{"service.name":"{}","process.pid":{}}}{flags}}}"#,
                i / 3 + 1,
                i + 1,
                if i == 5 { String::new() } else { format!("GET /r/{i} \\\"\\u00e9") },
                if i == 6 { 0 } else { 1_700_000_000_000_000_000 + i },
                1_700_000_000_000_000_100 + i,
                -(i as i64) - 1,
                [0.25, -0.0, 1e300, 3.0][(i % 4) as usize],
                service.replace('"', "\\\""),
                i % 2,
            ));
        }
        out
    }

    fn batches(encoding: Encoding, size: usize) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let lines = lines();
        let mut batch = Batch::new(encoding);
        let (mut ours, mut reference) = (Vec::new(), Vec::new());
        for chunk in lines.chunks(size) {
            for line in chunk {
                batch
                    .add(&SpanView::parse(line).expect("view"))
                    .expect("add");
            }
            let mut out = Vec::new();
            batch.finish(&mut out).expect("finish");
            ours.push(out);
            let spans: Vec<Span> = chunk
                .iter()
                .map(|l| Span::from_json_line(l).expect("span"))
                .collect();
            let request = export_request(spans);
            reference.push(match encoding {
                Encoding::Json => serde_json::to_vec(&request).expect("json"),
                Encoding::Protobuf => request.encode_to_vec(),
            });
        }
        (ours, reference)
    }

    #[test]
    fn json_is_what_serde_writes_for_the_proto_messages() {
        for size in [1, 7, 40] {
            let (ours, reference) = batches(Encoding::Json, size);
            for (a, b) in ours.iter().zip(&reference) {
                assert_eq!(String::from_utf8_lossy(a), String::from_utf8_lossy(b));
            }
        }
    }

    #[test]
    fn protobuf_is_what_prost_writes_for_the_proto_messages() {
        for size in [1, 7, 40] {
            let (ours, reference) = batches(Encoding::Protobuf, size);
            assert_eq!(ours, reference);
        }
    }

    #[test]
    fn empty_batch_is_an_empty_request() {
        let mut out = Vec::new();
        Batch::new(Encoding::Json).finish(&mut out).expect("finish");
        assert_eq!(out, br#"{"resourceSpans":[]}"#);
        let mut out = Vec::new();
        Batch::new(Encoding::Protobuf)
            .finish(&mut out)
            .expect("finish");
        assert!(out.is_empty());
    }
}
