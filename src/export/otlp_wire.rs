//! OTLP trace messages in the protobuf wire format, written straight from
//! span views (see `otlp_encode`) as prost writes the
//! opentelemetry-proto messages: fields in tag order, proto3 defaults (zero,
//! empty) left out, oneof members and present sub-messages always written.

use std::io::{self, Write};

use super::otlp_schema::{SCOPE_NAME, VERSION, code_number, flags, kind_number};
use super::view::{Attrs, SpanView, Value};

const LEN: u64 = 2;
const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const FIXED32: u64 = 5;

pub(crate) fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn varint_len(v: u64) -> usize {
    // One byte per started group of 7 bits (at least one).
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn key(out: &mut Vec<u8>, tag: u32, wire: u64) {
    varint(out, (u64::from(tag) << 3) | wire);
}

fn key_len(tag: u32) -> usize {
    varint_len(u64::from(tag) << 3)
}

/// A length-delimited field (string, bytes or an encoded message).
pub(crate) fn bytes_field(out: &mut Vec<u8>, tag: u32, bytes: &[u8]) {
    key(out, tag, LEN);
    varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// A string or bytes field, left out when empty.
fn nonempty(out: &mut Vec<u8>, tag: u32, bytes: &[u8]) {
    if !bytes.is_empty() {
        bytes_field(out, tag, bytes);
    }
}

fn nonempty_len(tag: u32, len: usize) -> usize {
    if len == 0 { 0 } else { field_len(tag, len) }
}

fn field_len(tag: u32, len: usize) -> usize {
    key_len(tag) + varint_len(len as u64) + len
}

fn fixed64(out: &mut Vec<u8>, tag: u32, v: u64) {
    if v != 0 {
        key(out, tag, FIXED64);
        out.extend_from_slice(&v.to_le_bytes());
    }
}

fn enum_field(out: &mut Vec<u8>, tag: u32, v: i32) {
    if v != 0 {
        key(out, tag, VARINT);
        // Negative enum values take ten bytes, as int64 would.
        varint(out, v as i64 as u64);
    }
}

/// `AnyValue` body length.
fn any_value_len(value: &Value<'_>) -> usize {
    match value {
        Value::String(s) => field_len(1, s.len()),
        Value::Bool(_) => key_len(2) + 1,
        Value::Int(n) => key_len(3) + varint_len(*n as u64),
        Value::Double(_) => key_len(4) + 8,
        Value::Array(items) => field_len(5, array_len(items)),
    }
}

fn array_len(items: &[Value<'_>]) -> usize {
    items.iter().map(|v| field_len(1, any_value_len(v))).sum()
}

fn any_value(out: &mut Vec<u8>, value: &Value<'_>) {
    match value {
        Value::String(s) => bytes_field(out, 1, s.as_bytes()),
        Value::Bool(b) => {
            key(out, 2, VARINT);
            out.push(u8::from(*b));
        }
        Value::Int(n) => {
            key(out, 3, VARINT);
            varint(out, *n as u64);
        }
        Value::Double(d) => {
            key(out, 4, FIXED64);
            out.extend_from_slice(&d.to_le_bytes());
        }
        Value::Array(items) => {
            key(out, 5, LEN);
            varint(out, array_len(items) as u64);
            for item in items {
                key(out, 1, LEN);
                varint(out, any_value_len(item) as u64);
                any_value(out, item);
            }
        }
    }
}

fn key_value_len(k: &str, v: &Value<'_>) -> usize {
    nonempty_len(1, k.len()) + field_len(2, any_value_len(v))
}

/// Repeated `KeyValue` fields under `tag`.
fn attributes(out: &mut Vec<u8>, tag: u32, attrs: &Attrs<'_>) {
    for (k, v) in attrs.iter() {
        key(out, tag, LEN);
        varint(out, key_value_len(k, v) as u64);
        nonempty(out, 1, k.as_bytes());
        key(out, 2, LEN);
        varint(out, any_value_len(v) as u64);
        any_value(out, v);
    }
}

fn attributes_len(tag: u32, attrs: &Attrs<'_>) -> usize {
    attrs
        .iter()
        .map(|(k, v)| field_len(tag, key_value_len(k, v)))
        .sum()
}

/// One `Span` message body.
pub(crate) fn span(out: &mut Vec<u8>, span: &SpanView<'_>) {
    bytes_field(out, 1, &span.trace_id.0);
    bytes_field(out, 2, &span.span_id.0);
    if let Some(parent) = &span.parent_span_id {
        bytes_field(out, 4, &parent.0);
    }
    nonempty(out, 5, span.name.as_bytes());
    enum_field(out, 6, kind_number(span.kind));
    fixed64(out, 7, span.start_time_unix_nano);
    fixed64(out, 8, span.end_time_unix_nano);
    attributes(out, 9, &span.attributes);
    for event in &span.events {
        let len = if event.time_unix_nano != 0 {
            key_len(1) + 8
        } else {
            0
        } + nonempty_len(2, event.name.len())
            + attributes_len(3, &event.attributes);
        key(out, 11, LEN);
        varint(out, len as u64);
        fixed64(out, 1, event.time_unix_nano);
        nonempty(out, 2, event.name.as_bytes());
        attributes(out, 3, &event.attributes);
    }
    let message = span.status.message.as_deref().unwrap_or("");
    let code = code_number(span.status.code);
    let status_len = nonempty_len(2, message.len())
        + if code != 0 {
            key_len(3) + varint_len(code as u64)
        } else {
            0
        };
    key(out, 15, LEN);
    varint(out, status_len as u64);
    nonempty(out, 2, message.as_bytes());
    enum_field(out, 3, code);
    let flags = flags(span);
    if flags != 0 {
        key(out, 16, FIXED32);
        out.extend_from_slice(&flags.to_le_bytes());
    }
}

pub(crate) fn request<'g>(
    out: &mut impl Write,
    groups: impl Iterator<Item = (&'g Attrs<'static>, &'g [u8])>,
    frame: &mut Vec<u8>,
) -> io::Result<()> {
    let scope_len = nonempty_len(1, SCOPE_NAME.len()) + nonempty_len(2, VERSION.len());
    let schema = crate::otel::SCHEMA_URL.as_bytes();
    let schema_len = nonempty_len(3, schema.len());
    for (resource, spans) in groups {
        let resource_len = attributes_len(1, resource);
        let scope_spans_len = field_len(1, scope_len) + spans.len() + schema_len;
        let resource_spans_len =
            field_len(1, resource_len) + field_len(2, scope_spans_len) + schema_len;
        frame.clear();
        key(frame, 1, LEN);
        varint(frame, resource_spans_len as u64);
        // ResourceSpans.resource
        key(frame, 1, LEN);
        varint(frame, resource_len as u64);
        attributes(frame, 1, resource);
        // ResourceSpans.scope_spans, its scope, then its spans.
        key(frame, 2, LEN);
        varint(frame, scope_spans_len as u64);
        key(frame, 1, LEN);
        varint(frame, scope_len as u64);
        nonempty(frame, 1, SCOPE_NAME.as_bytes());
        nonempty(frame, 2, VERSION.as_bytes());
        out.write_all(frame)?;
        out.write_all(spans)?;
        // ScopeSpans.schema_url, then ResourceSpans.schema_url (in field
        // order, as protobuf encoders write them).
        frame.clear();
        nonempty(frame, 3, schema);
        nonempty(frame, 3, schema);
        out.write_all(frame)?;
    }
    Ok(())
}

#[cfg(test)]
#[test]
fn varint_lengths() {
    for v in [0u64, 1, 127, 128, 16383, 16384, u64::MAX >> 1, u64::MAX] {
        let mut b = Vec::new();
        varint(&mut b, v);
        assert_eq!(b.len(), varint_len(v), "{v}");
    }
}
