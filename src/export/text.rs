//! `--to text`: spans for a person to read, printed by opentelemetry-stdout's
//! span exporter from the SDK's `SpanData`.
//!
//! That exporter prints with `println!` to the process's stdout, so this
//! format can only write to stdout; its `export` is an `async fn` that never
//! waits, so a single poll with a no-op waker drives it without a runtime.

use std::future::Future;
use std::io::BufRead;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::trace::{self as otel, SpanContext, TraceFlags, TraceState};
use opentelemetry::{Array, InstrumentationScope, KeyValue, StringValue, Value};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{SpanData, SpanEvents, SpanExporter as _, SpanLinks};

use super::otlp_json::for_each_batch;
use super::reader::SpanReader;
use super::{ExportError, Summary};
use crate::span::{AttrValue, Attributes, Span, SpanKind, StatusCode};

fn time(ns: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns)
}

fn value(v: AttrValue) -> Value {
    match v {
        AttrValue::Bool(b) => Value::Bool(b),
        AttrValue::Int(n) => Value::I64(n),
        AttrValue::Double(d) => Value::F64(d),
        AttrValue::String(s) => Value::String(s.into()),
        AttrValue::Array(items) => {
            // OpenTelemetry arrays are homogeneous; mixed ones are shown as strings.
            if let Some(bools) = items
                .iter()
                .map(|i| {
                    if let AttrValue::Bool(b) = i {
                        Some(*b)
                    } else {
                        None
                    }
                })
                .collect()
            {
                Value::Array(Array::Bool(bools))
            } else if let Some(ints) = items
                .iter()
                .map(|i| {
                    if let AttrValue::Int(n) = i {
                        Some(*n)
                    } else {
                        None
                    }
                })
                .collect()
            {
                Value::Array(Array::I64(ints))
            } else if let Some(fs) = items
                .iter()
                .map(|i| {
                    if let AttrValue::Double(d) = i {
                        Some(*d)
                    } else {
                        None
                    }
                })
                .collect()
            {
                Value::Array(Array::F64(fs))
            } else {
                let strings: Vec<StringValue> = items
                    .into_iter()
                    .map(|i| match i {
                        AttrValue::String(s) => s.into(),
                        other => serde_json::to_string(&other).unwrap_or_default().into(),
                    })
                    .collect();
                Value::Array(Array::String(strings))
            }
        }
    }
}

fn key_values(attrs: Attributes) -> Vec<KeyValue> {
    attrs
        .into_iter()
        .map(|(k, v)| KeyValue::new(k, value(v)))
        .collect()
}

/// One goprobe span as the SDK's `SpanData` (the resource is separate).
pub fn span_data(span: Span, scope: &InstrumentationScope) -> SpanData {
    let context = SpanContext::new(
        otel::TraceId::from_bytes(span.trace_id.0),
        otel::SpanId::from_bytes(span.span_id.0),
        TraceFlags::SAMPLED,
        false,
        TraceState::default(),
    );
    let span_kind = match span.kind {
        SpanKind::Internal => otel::SpanKind::Internal,
        SpanKind::Server => otel::SpanKind::Server,
        SpanKind::Client => otel::SpanKind::Client,
        SpanKind::Producer => otel::SpanKind::Producer,
        SpanKind::Consumer => otel::SpanKind::Consumer,
    };
    let status = match span.status.code {
        StatusCode::Unset => otel::Status::Unset,
        StatusCode::Ok => otel::Status::Ok,
        StatusCode::Error => otel::Status::error(span.status.message.unwrap_or_default()),
    };
    let events = span
        .events
        .into_iter()
        .map(|e| otel::Event::new(e.name, time(e.time_unix_nano), key_values(e.attributes), 0))
        .collect();
    SpanData {
        span_context: context,
        parent_span_id: span
            .parent_span_id
            .map(|p| otel::SpanId::from_bytes(p.0))
            .unwrap_or(otel::SpanId::INVALID),
        parent_span_is_remote: false,
        span_kind,
        name: span.name.into(),
        start_time: time(span.start_time_unix_nano),
        end_time: time(span.end_time_unix_nano),
        attributes: key_values(span.attributes),
        dropped_attributes_count: 0,
        events: {
            let mut list = SpanEvents::default();
            list.events = events;
            list
        },
        links: SpanLinks::default(),
        status,
        instrumentation_scope: scope.clone(),
    }
}

/// Make a closed stdout end the process quietly, as it does for classic
/// Unix filters: the stdout exporter's `println!` would otherwise panic on a
/// broken pipe (`goprobe convert --to text | head`).
pub fn die_quietly_on_broken_pipe() {
    // SAFETY: setting SIGPIPE's disposition to the default is async-signal-safe
    // and touches no Rust-managed state; it is done before any output.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Drive a future that completes without waiting (see the module docs).
fn block_on<F: Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::yield_now();
    }
}

/// Print all spans to stdout, batch by batch, one exporter per resource so
/// each group is headed by its resource.
pub fn convert<R: BufRead>(
    reader: &mut SpanReader<R>,
    batch_size: usize,
) -> Result<Summary, ExportError> {
    let scope = InstrumentationScope::builder(super::otlp_json::SCOPE_NAME)
        .with_version(env!("CARGO_PKG_VERSION"))
        .build();
    let spans = for_each_batch(reader, batch_size, |batch| {
        let mut groups: Vec<(Attributes, Vec<SpanData>)> = Vec::new();
        for mut span in batch {
            let resource = std::mem::take(&mut span.resource);
            let data = span_data(span, &scope);
            match groups.iter_mut().find(|(r, _)| *r == resource) {
                Some((_, list)) => list.push(data),
                None => groups.push((resource, vec![data])),
            }
        }
        for (resource, list) in groups {
            let mut exporter = opentelemetry_stdout::SpanExporter::default();
            exporter.set_resource(
                &Resource::builder_empty()
                    .with_attributes(key_values(resource))
                    .build(),
            );
            block_on(exporter.export(list))
                .map_err(|e| ExportError::Other(format!("text exporter: {e}")))?;
        }
        Ok(())
    })?;
    Ok(Summary {
        spans,
        skipped: reader.skipped(),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_spans_onto_span_data() {
        let line = r#"{"trace_id":"0af7651916cd43dd8448eb211c80319c","span_id":"b7ad6b7169203331","parent_span_id":"00f067aa0ba902b7","name":"GET /x","kind":"client","start_time_unix_nano":1000,"end_time_unix_nano":3000,"attributes":{"n":[1,2],"m":["a",1]},"status":{"code":"error","message":"bad"}}"#;
        let scope = InstrumentationScope::builder("goprobe").build();
        let data = span_data(Span::from_json_line(line).expect("span"), &scope);
        assert_eq!(
            data.span_context.trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert_eq!(data.parent_span_id.to_string(), "00f067aa0ba902b7");
        assert_eq!(data.span_kind, otel::SpanKind::Client);
        assert_eq!(
            data.end_time
                .duration_since(data.start_time)
                .expect("order"),
            Duration::from_nanos(2000)
        );
        assert_eq!(data.status, otel::Status::error("bad"));
        let n = data
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == "n")
            .expect("n");
        assert_eq!(n.value, Value::Array(Array::I64(vec![1, 2])));
        let m = data
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == "m")
            .expect("m");
        assert_eq!(
            m.value,
            Value::Array(Array::String(vec!["a".into(), "1".into()]))
        );
    }
}
