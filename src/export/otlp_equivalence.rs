//! Tests that the direct OTLP encoders (`otlp_encode`, `otlp_wire`) write
//! exactly the bytes serde and prost give for the opentelemetry-proto
//! messages `otlp_json::export_request` builds. Apart from the encoders so
//! that neither needs the other.

use prost::Message;

use super::otlp_encode::{Batch, Encoding};
use super::otlp_json::export_request;
use super::view::*;
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
