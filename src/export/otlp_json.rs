//! Spans as OTLP: the mapping onto opentelemetry-proto's generated types,
//! shared by the protobuf push ([`super::otlp_http`]), and the OTLP/JSON
//! encoding (`--to otlp-json`): one `ExportTraceServiceRequest` per line, the
//! form the Collector's file exporter writes and its `otlpjsonfile` receiver
//! reads.
//!
//! The JSON is what opentelemetry-proto's serde support writes for the
//! messages built here, which follows the OTLP/JSON rules (lowerCamelCase
//! names, hex trace and span ids, enums as integers, 64-bit integers as
//! decimal strings); `otlp_encode` writes the same bytes straight
//! from the input, and the tests check them against the official protobuf
//! definitions in strict mode.

use std::io::{BufRead, Write};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{
    AnyValue, ArrayValue, InstrumentationScope, KeyValue, any_value,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1 as proto;

use super::otlp_encode::{Batch, Encoding, SpanEncoder, SpanResource};
use super::otlp_schema::{FLAG_HAS_IS_REMOTE, FLAG_IS_REMOTE, FLAG_SAMPLED, SCOPE_NAME};
use super::pipeline;
use super::reader::SpanReader;
use super::{ExportError, Summary};
use crate::span::{AttrValue, Attributes, Span, SpanKind, StatusCode};

pub fn any_value(value: AttrValue) -> AnyValue {
    let value = match value {
        AttrValue::Bool(b) => any_value::Value::BoolValue(b),
        AttrValue::Int(n) => any_value::Value::IntValue(n),
        AttrValue::Double(d) => any_value::Value::DoubleValue(d),
        AttrValue::String(s) => any_value::Value::StringValue(s),
        AttrValue::Array(items) => any_value::Value::ArrayValue(ArrayValue {
            values: items.into_iter().map(any_value).collect(),
        }),
    };
    AnyValue { value: Some(value) }
}

pub fn key_values(attrs: Attributes) -> Vec<KeyValue> {
    attrs
        .into_iter()
        .map(|(key, value)| KeyValue {
            key,
            value: Some(any_value(value)),
            ..Default::default()
        })
        .collect()
}

/// One goprobe span as an OTLP span (the resource is carried separately).
pub fn proto_span(span: Span) -> proto::Span {
    let kind = match span.kind {
        SpanKind::Internal => proto::span::SpanKind::Internal,
        SpanKind::Server => proto::span::SpanKind::Server,
        SpanKind::Client => proto::span::SpanKind::Client,
        SpanKind::Producer => proto::span::SpanKind::Producer,
        SpanKind::Consumer => proto::span::SpanKind::Consumer,
    };
    let code = match span.status.code {
        StatusCode::Unset => proto::status::StatusCode::Unset,
        StatusCode::Ok => proto::status::StatusCode::Ok,
        StatusCode::Error => proto::status::StatusCode::Error,
    };
    proto::Span {
        trace_id: span.trace_id.0.to_vec(),
        span_id: span.span_id.0.to_vec(),
        parent_span_id: span
            .parent_span_id
            .map(|p| p.0.to_vec())
            .unwrap_or_default(),
        // A span that joined an incoming trace keeps the caller's trace
        // flags, and its parent is remote; goprobe's own spans are sampled.
        flags: match span.trace_flags {
            Some(f) => u32::from(f) | FLAG_HAS_IS_REMOTE | FLAG_IS_REMOTE,
            None => FLAG_SAMPLED,
        },
        name: span.name,
        kind: kind as i32,
        start_time_unix_nano: span.start_time_unix_nano,
        end_time_unix_nano: span.end_time_unix_nano,
        attributes: key_values(span.attributes),
        events: span
            .events
            .into_iter()
            .map(|e| proto::span::Event {
                time_unix_nano: e.time_unix_nano,
                name: e.name,
                attributes: key_values(e.attributes),
                ..Default::default()
            })
            .collect(),
        status: Some(proto::Status {
            message: span.status.message.unwrap_or_default(),
            code: code as i32,
        }),
        ..Default::default()
    }
}

/// One export request for a batch of spans: grouped by resource, each under
/// the `goprobe` scope, spans in input order within their resource.
pub fn export_request(batch: Vec<Span>) -> ExportTraceServiceRequest {
    let mut groups: Vec<(Attributes, Vec<proto::Span>)> = Vec::new();
    for mut span in batch {
        let resource = std::mem::take(&mut span.resource);
        let spans = match groups.iter().position(|(r, _)| *r == resource) {
            Some(i) => &mut groups[i].1,
            None => {
                groups.push((resource, Vec::new()));
                &mut groups.last_mut().expect("just pushed").1
            }
        };
        spans.push(proto_span(span));
    }
    ExportTraceServiceRequest {
        resource_spans: groups
            .into_iter()
            .map(|(resource, spans)| proto::ResourceSpans {
                resource: Some(Resource {
                    attributes: key_values(resource),
                    ..Default::default()
                }),
                scope_spans: vec![proto::ScopeSpans {
                    scope: Some(InstrumentationScope {
                        name: SCOPE_NAME.to_owned(),
                        version: env!("CARGO_PKG_VERSION").to_owned(),
                        ..Default::default()
                    }),
                    spans,
                    schema_url: crate::otel::SCHEMA_URL.to_owned(),
                }],
                schema_url: crate::otel::SCHEMA_URL.to_owned(),
            })
            .collect(),
    }
}

/// Read spans in batches of `batch_size` and hand each batch to `sink`.
pub fn for_each_batch<R: BufRead>(
    reader: &mut SpanReader<R>,
    batch_size: usize,
    mut sink: impl FnMut(Vec<Span>) -> Result<(), ExportError>,
) -> Result<u64, ExportError> {
    let batch_size = batch_size.max(1);
    let mut count = 0u64;
    let mut batch = Vec::with_capacity(batch_size);
    while let Some(span) = reader.next_span()? {
        count += 1;
        batch.push(span);
        if batch.len() == batch_size {
            sink(std::mem::replace(
                &mut batch,
                Vec::with_capacity(batch_size),
            ))?;
        }
    }
    if !batch.is_empty() {
        sink(batch)?;
    }
    Ok(count)
}

/// Read spans in place and encode them in batches of `batch_size`, handing
/// each full batch (and the last) to `sink`, which writes it with
/// [`Batch::finish`]; returns the number of spans.
pub fn for_each_request<R: BufRead>(
    reader: &mut SpanReader<R>,
    encoding: Encoding,
    batch_size: usize,
    mut sink: impl FnMut(&mut Batch) -> Result<(), ExportError>,
) -> Result<u64, ExportError> {
    let batch_size = batch_size.max(1);
    let mut batch = Batch::new(encoding);
    let mut count = 0u64;
    let mut resource = None;
    pipeline::for_each_encoded(
        reader,
        pipeline::workers(),
        || SpanEncoder::new(encoding),
        |changed, encoded| {
            count += 1;
            if let SpanResource::Changed(r) = changed? {
                resource = Some(r);
            }
            // A block's first span always names its resource.
            let resource = resource
                .as_ref()
                .ok_or_else(|| ExportError::Other("a span came without its resource".to_owned()))?;
            batch.push(resource, encoded);
            if batch.len() == batch_size {
                sink(&mut batch)?;
            }
            Ok::<(), ExportError>(())
        },
    )?;
    if !batch.is_empty() {
        sink(&mut batch)?;
    }
    Ok(count)
}

/// `--to otlp-json`: one request per line. Empty input writes nothing (an
/// empty file is a valid, empty OTLP/JSON stream).
pub fn convert<R: BufRead, W: Write>(
    reader: &mut SpanReader<R>,
    out: &mut W,
    batch_size: usize,
) -> Result<Summary, ExportError> {
    let spans = for_each_request(reader, Encoding::Json, batch_size, |batch| {
        batch.finish(out)?;
        out.write_all(b"\n")?;
        Ok(())
    })?;
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

    const FULL: &str = r#"{"trace_id":"0af7651916cd43dd8448eb211c80319c","span_id":"b7ad6b7169203331","parent_span_id":"00f067aa0ba902b7","name":"GET /users/{id}","kind":"server","start_time_unix_nano":1700000000000000001,"end_time_unix_nano":1700000000005000000,"attributes":{"http.request.method":"GET","http.response.status_code":200,"big":9007199254740993,"ok":true,"ratio":0.25,"list":["a",1,false]},"status":{"code":"error","message":"boom"},"events":[{"name":"exception","time_unix_nano":1700000000004000000,"attributes":{"exception.message":"x"}}],"resource":{"service.name":"hello","process.pid":42}}"#;

    fn convert_str(input: &str, batch: usize) -> String {
        let mut reader = SpanReader::new(input.as_bytes(), false);
        let mut out = Vec::new();
        convert(&mut reader, &mut out, batch).expect("convert");
        String::from_utf8(out).expect("utf8")
    }

    #[test]
    fn follows_the_otlp_json_rules() {
        let out = convert_str(FULL, 10);
        let v: serde_json::Value = serde_json::from_str(out.trim()).expect("json");
        let rs = &v["resourceSpans"][0];
        assert_eq!(rs["scopeSpans"][0]["scope"]["name"], "goprobe");
        let span = &rs["scopeSpans"][0]["spans"][0];
        assert_eq!(span["traceId"], "0af7651916cd43dd8448eb211c80319c");
        assert_eq!(span["spanId"], "b7ad6b7169203331");
        assert_eq!(span["parentSpanId"], "00f067aa0ba902b7");
        assert_eq!(span["kind"], 2);
        assert_eq!(span["startTimeUnixNano"], "1700000000000000001");
        assert_eq!(span["status"]["code"], 2);
        assert_eq!(span["status"]["message"], "boom");
        let attr = |k: &str| {
            span["attributes"]
                .as_array()
                .expect("attrs")
                .iter()
                .find(|kv| kv["key"] == k)
                .expect(k)["value"]
                .clone()
        };
        assert_eq!(
            attr("big"),
            serde_json::json!({"intValue": "9007199254740993"})
        );
        assert_eq!(attr("ok"), serde_json::json!({"boolValue": true}));
        assert_eq!(attr("ratio"), serde_json::json!({"doubleValue": 0.25}));
        assert_eq!(
            attr("http.request.method"),
            serde_json::json!({"stringValue": "GET"})
        );
        assert_eq!(
            attr("list"),
            serde_json::json!({"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": "1"}, {"boolValue": false}]}})
        );
        assert_eq!(span["events"][0]["timeUnixNano"], "1700000000004000000");
    }

    #[test]
    fn round_trips_through_the_proto_types() {
        let out = convert_str(FULL, 10);
        let request: ExportTraceServiceRequest = serde_json::from_str(out.trim()).expect("decode");
        let expected = export_request(vec![Span::from_json_line(FULL).expect("span")]);
        assert_eq!(request, expected);
        let span = &request.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.trace_id, hex("0af7651916cd43dd8448eb211c80319c"));
        assert_eq!(span.start_time_unix_nano, 1700000000000000001);
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    #[test]
    fn batches_and_groups_by_resource() {
        let other = FULL.replace(r#""service.name":"hello""#, r#""service.name":"other""#);
        let input = [FULL, &other, FULL, FULL].join("\n");
        let out = convert_str(&input, 3);
        let lines: Vec<ExportTraceServiceRequest> = out
            .lines()
            .map(|l| serde_json::from_str(l).expect("decode"))
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].resource_spans.len(), 2);
        assert_eq!(lines[0].resource_spans[0].scope_spans[0].spans.len(), 2);
        assert_eq!(lines[1].resource_spans.len(), 1);
    }

    /// The spans encoded on worker threads give the bytes that encoding
    /// them one by one in order gives, for both encodings: over several
    /// blocks, resources that differ only in a zero's sign or an escape,
    /// samples and blank lines between.
    #[test]
    fn worker_threads_write_what_one_thread_writes() {
        let services = [
            r#""service.name":"a","z":0.0"#,
            r#""service.name":"a","z":-0.0"#,
            r#""service.name":"\u0062","z":0.0"#,
            r#""service.name":"b","z":0.0"#,
        ];
        let mut input = String::new();
        for i in 0..5000usize {
            let resource = services[(i / 7 + i % 3) % services.len()];
            input.push_str(&FULL.replace(r#""service.name":"hello","process.pid":42"#, resource));
            input.push('\n');
            if i % 1000 == 0 {
                input
                    .push_str("{\"type\":\"cpu_sample\",\"time_unix_nano\":1,\"cpu_nanos\":2}\n\n");
            }
        }
        for encoding in [Encoding::Json, Encoding::Protobuf] {
            let mut expected = Vec::new();
            let mut batch = Batch::new(encoding);
            let mut reader = SpanReader::new(input.as_bytes(), false);
            reader
                .for_each_view(|span| {
                    batch.add(&span)?;
                    if batch.len() == 300 {
                        batch.finish(&mut expected)?;
                    }
                    Ok::<(), ExportError>(())
                })
                .expect("one by one");
            batch.finish(&mut expected).expect("last");
            let mut got = Vec::new();
            let mut reader = SpanReader::new(input.as_bytes(), false);
            let spans = for_each_request(&mut reader, encoding, 300, |batch| {
                Ok(batch.finish(&mut got)?)
            })
            .expect("workers");
            assert_eq!(spans, 5000);
            assert_eq!(reader.passed(), 5);
            assert!(got == expected, "{encoding:?}");
        }
    }

    #[test]
    fn empty_input_is_empty_output() {
        assert_eq!(convert_str("", 10), "");
    }
}
