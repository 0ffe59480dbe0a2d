//! `--to chrome`: the Trace Event Format JSON that Perfetto and
//! chrome://tracing open, as a Gantt view of what ran when.
//!
//! One process per resource (service and pid) and one track ("thread") per
//! trace, each named by a metadata event; every span is a complete event
//! (`ph: "X"`) with `ts`/`dur` in microseconds and its attributes as `args`;
//! span events are instant events on the same track. CPU samples
//! (`cpu_sample` records) are instant events too, named after their
//! innermost function, on the track of the trace they ran in (samples in
//! no span get a `CPU samples (no span)` track per process), with the span
//! and the whole stack as `args`. Timestamps are written as exact decimals
//! (microseconds with three fraction digits), so no nanosecond is rounded
//! away in the file. Records stream straight through; only the resource and
//! trace numbering stays in memory.

use std::collections::HashMap;
use std::io::{self, BufRead, Write};
use std::sync::Arc;

use super::otlp_encode::hex;
use super::pipeline::{self, Encode, Handed};
use super::reader::SpanReader;
use super::view::{Attrs, SpanView, Value, write_json_string};
use super::{ExportError, Summary};
use crate::sample::CpuSample;
use crate::span::{SpanKind, StatusCode, TraceId};

/// Argument names goprobe sets itself; attributes with these names are left out.
const OWN_ARGS: [&str; 6] = [
    "trace_id",
    "span_id",
    "parent_span_id",
    "span.kind",
    "status.code",
    "status.message",
];

/// Output is built here and handed to the writer in chunks of about this size.
const CHUNK: usize = 1 << 16;

/// How many resources are remembered as [`Writer::recent`].
const RECENT: usize = 8;

struct Writer {
    buf: Vec<u8>,
    first: bool,
    /// Process number per resource, keyed by the resource as JSON (so two
    /// resources are one process exactly when they read the same).
    pids: HashMap<Vec<u8>, u64>,
    /// The last few resources seen and their processes: most spans share
    /// one of them, and comparing is cheaper than encoding.
    recent: Vec<(Attrs<'static>, u64)>,
    /// Track per trace, and per process (`None`) for samples in no span.
    tids: HashMap<(Option<TraceId>, u64), u64>,
    scratch: Vec<u8>,
    /// The resource of the last span handed on.
    resource: Option<Arc<Attrs<'static>>>,
}

/// Nanoseconds as microseconds with three exact fraction digits.
fn micros(out: &mut Vec<u8>, ns: u64) -> io::Result<()> {
    number(out, ns / 1000)?;
    let frac = ns % 1000;
    out.extend_from_slice(&[
        b'.',
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ]);
    Ok(())
}

fn json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> io::Result<()> {
    serde_json::to_writer(out, value).map_err(io::Error::from)
}

fn number(out: &mut Vec<u8>, n: u64) -> io::Result<()> {
    json(out, &n)
}

/// An attribute value as plain JSON (strings, numbers, booleans, arrays).
fn value(out: &mut Vec<u8>, v: &Value<'_>) -> io::Result<()> {
    match v {
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Int(n) => json(out, n)?,
        Value::Double(d) => json(out, d)?,
        Value::String(s) => write_json_string(out, s)?,
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                value(out, item)?;
            }
            out.push(b']');
        }
    }
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

impl Writer {
    fn sep(&mut self) {
        if self.first {
            self.first = false;
            self.buf.push(b'\n');
        } else {
            self.buf.extend_from_slice(b",\n");
        }
    }

    /// A metadata event naming a process or thread.
    fn metadata(&mut self, what: &str, pid: u64, tid: u64, ts: u64, name: &str) -> io::Result<()> {
        self.sep();
        let out = &mut self.buf;
        out.extend_from_slice(br#"{"ph":"M","name":"#);
        json(out, what)?;
        out.extend_from_slice(br#","ts":"#);
        micros(out, ts)?;
        out.extend_from_slice(br#","dur":0,"pid":"#);
        number(out, pid)?;
        out.extend_from_slice(br#","tid":"#);
        number(out, tid)?;
        out.extend_from_slice(br#","args":{"name":"#);
        json(out, name)?;
        out.extend_from_slice(b"}}");
        Ok(())
    }

    fn pid(&mut self, resource: &Attrs<'_>, ts: u64) -> io::Result<u64> {
        if let Some((_, pid)) = self.recent.iter().find(|(r, _)| r.identical(resource)) {
            return Ok(*pid);
        }
        self.scratch.clear();
        self.scratch.push(b'{');
        for (i, (k, v)) in resource.iter().enumerate() {
            if i > 0 {
                self.scratch.push(b',');
            }
            write_json_string(&mut self.scratch, k)?;
            self.scratch.push(b':');
            value(&mut self.scratch, v)?;
        }
        self.scratch.push(b'}');
        let pid = match self.pids.get(&self.scratch) {
            Some(&pid) => pid,
            None => {
                let pid = self.pids.len() as u64 + 1;
                self.pids.insert(self.scratch.clone(), pid);
                let service = resource
                    .get_str("service.name")
                    .unwrap_or("unknown service");
                let name = match resource.get("process.pid") {
                    Some(Value::Int(n)) => format!("{service} (pid {n})"),
                    _ => service.to_owned(),
                };
                self.metadata("process_name", pid, 0, ts, &name)?;
                pid
            }
        };
        if self.recent.len() == RECENT {
            self.recent.remove(0);
        }
        self.recent.push((resource.to_static(), pid));
        Ok(pid)
    }

    /// The track of `trace`, or of `pid`'s samples in no span.
    fn tid(&mut self, trace: Option<TraceId>, pid: u64, ts: u64) -> io::Result<u64> {
        let key = (trace, if trace.is_some() { 0 } else { pid });
        if let Some(&tid) = self.tids.get(&key) {
            return Ok(tid);
        }
        let tid = self.tids.len() as u64 + 1;
        self.tids.insert(key, tid);
        let name = match trace {
            Some(t) => format!("trace {t}"),
            None => "CPU samples (no span)".to_owned(),
        };
        self.metadata("thread_name", pid, tid, ts, &name)?;
        Ok(tid)
    }

    /// A CPU sample: an instant event on its trace's track.
    fn sample(&mut self, s: &CpuSample) -> io::Result<()> {
        let resource = Attrs::from_attributes(&s.resource);
        let pid = self.pid(&resource, s.time_unix_nano)?;
        let tid = self.tid(s.trace_id, pid, s.time_unix_nano)?;
        self.sep();
        let leaf = s.stack.first().map_or("?", |f| f.function.as_str());
        let out = &mut self.buf;
        out.extend_from_slice(br#"{"ph":"i","s":"t","name":"#);
        json(out, &format!("cpu: {leaf}"))?;
        out.extend_from_slice(br#","cat":"cpu","ts":"#);
        micros(out, s.time_unix_nano)?;
        out.extend_from_slice(br#","dur":0,"pid":"#);
        number(out, pid)?;
        out.extend_from_slice(br#","tid":"#);
        number(out, tid)?;
        out.extend_from_slice(br#","args":{"cpu_nanos":"#);
        number(out, s.cpu_nanos)?;
        let stack: Vec<String> = s
            .stack
            .iter()
            .map(|f| format!("{} {}:{}", f.function, f.file, f.line))
            .collect();
        out.extend_from_slice(br#","stack":"#);
        json(out, &stack.join("\n"))?;
        if let Some(id) = s.span_id {
            out.extend_from_slice(br#","span_id":""#);
            hex(out, &id.0);
            out.push(b'"');
        }
        if let Some(name) = &s.span_name {
            out.extend_from_slice(br#","span_name":"#);
            json(out, name)?;
        }
        let attrs = Attrs::from_attributes(&s.attributes);
        attributes(&mut self.buf, &attrs, false)?;
        self.buf.extend_from_slice(b"}}");
        Ok(())
    }

    /// A span encoded by [`SpanEncoder`]: each of its trace events with
    /// its process and track put in.
    fn span(&mut self, span: &Encoded, bytes: &[u8]) -> io::Result<()> {
        if let Some(resource) = &span.resource {
            self.resource = Some(Arc::clone(resource));
        }
        // A block's first span always names its resource.
        let resource = self
            .resource
            .clone()
            .ok_or_else(|| io::Error::other("a span came without its resource"))?;
        let pid = self.pid(&resource, span.start)?;
        let tid = self.tid(Some(span.trace_id), pid, span.start)?;
        let mut at = 0;
        for &(ids, end) in std::iter::once(&span.first).chain(&span.events) {
            self.sep();
            let out = &mut self.buf;
            out.extend_from_slice(&bytes[at..ids]);
            number(out, pid)?;
            out.extend_from_slice(br#","tid":"#);
            number(out, tid)?;
            out.extend_from_slice(&bytes[ids..end]);
            at = end;
        }
        Ok(())
    }
}

/// `"key":value` pairs of attributes, each preceded by a comma unless it
/// is the first in the object.
fn attributes(out: &mut Vec<u8>, attributes: &Attrs<'_>, mut first: bool) -> io::Result<()> {
    for (key, v) in attributes.iter() {
        if OWN_ARGS.contains(&key.as_ref()) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        write_json_string(out, key)?;
        out.push(b':');
        value(out, v)?;
    }
    Ok(())
}

/// A span's trace events without their process and track, which depend on
/// the spans before it: each event's bytes up to `"pid":` and from after
/// its track number on, as offsets into the span's bytes.
struct Encoded {
    /// The span's resource, when it is not the previous span's in its block
    /// (an `Arc` handed across threads for every span kept its count's
    /// cache line moving between cores).
    resource: Option<Arc<Attrs<'static>>>,
    trace_id: TraceId,
    start: u64,
    /// Where the span's complete event takes its process and track, and
    /// where it ends.
    first: Cut,
    /// The same for each span event's instant event.
    events: Vec<Cut>,
}

/// Where a trace event's process and track go in its bytes, and where the
/// event ends.
type Cut = (usize, usize);

/// Encodes spans on the [`super::pipeline`]'s worker threads.
#[derive(Default)]
struct SpanEncoder {
    /// The last few resources seen, shared by the spans that have them.
    recent: Vec<Arc<Attrs<'static>>>,
    /// The previous span's resource, in this block.
    last: Option<Arc<Attrs<'static>>>,
}

impl SpanEncoder {
    /// The span's resource for [`Encoded::resource`].
    fn resource(&mut self, resource: &Attrs<'_>) -> Option<Arc<Attrs<'static>>> {
        if self.last.as_ref().is_some_and(|r| r.identical(resource)) {
            return None;
        }
        let shared = match self.recent.iter().find(|r| r.identical(resource)) {
            Some(known) => Arc::clone(known),
            None => {
                if self.recent.len() == RECENT {
                    self.recent.remove(0);
                }
                let made = Arc::new(resource.to_static());
                self.recent.push(Arc::clone(&made));
                made
            }
        };
        self.last = Some(Arc::clone(&shared));
        Some(shared)
    }

    /// The span's trace events into `out`, and where each takes its
    /// process and track and ends: the span's, and its events' (if any).
    fn events(&self, out: &mut Vec<u8>, span: &SpanView<'_>) -> io::Result<(Cut, Vec<Cut>)> {
        let base = out.len();
        out.extend_from_slice(br#"{"ph":"X","name":"#);
        write_json_string(out, &span.name)?;
        out.extend_from_slice(br#","cat":""#);
        out.extend_from_slice(kind_name(span.kind).as_bytes());
        out.extend_from_slice(br#"","ts":"#);
        micros(out, span.start_time_unix_nano)?;
        out.extend_from_slice(br#","dur":"#);
        micros(out, span.duration_nanos())?;
        out.extend_from_slice(br#","pid":"#);
        let mut ids = out.len() - base;
        out.extend_from_slice(br#","args":{"trace_id":""#);
        hex(out, &span.trace_id.0);
        out.extend_from_slice(br#"","span_id":""#);
        hex(out, &span.span_id.0);
        out.extend_from_slice(br#"","span.kind":""#);
        out.extend_from_slice(kind_name(span.kind).as_bytes());
        if let Some(parent) = &span.parent_span_id {
            out.extend_from_slice(br#"","parent_span_id":""#);
            hex(out, &parent.0);
        }
        let code = match span.status.code {
            StatusCode::Unset => "unset",
            StatusCode::Ok => "ok",
            StatusCode::Error => "error",
        };
        out.extend_from_slice(br#"","status.code":""#);
        out.extend_from_slice(code.as_bytes());
        out.push(b'"');
        if let Some(message) = &span.status.message {
            out.extend_from_slice(br#","status.message":"#);
            write_json_string(out, message)?;
        }
        attributes(out, &span.attributes, false)?;
        out.extend_from_slice(b"}}");
        let first = (ids, out.len() - base);
        let mut cuts = Vec::with_capacity(span.events.len());
        for event in &span.events {
            out.extend_from_slice(br#"{"ph":"i","s":"t","name":"#);
            write_json_string(out, &event.name)?;
            out.extend_from_slice(br#","ts":"#);
            micros(out, event.time_unix_nano)?;
            out.extend_from_slice(br#","dur":0,"pid":"#);
            ids = out.len() - base;
            out.extend_from_slice(br#","args":{"#);
            attributes(out, &event.attributes, true)?;
            out.extend_from_slice(b"}}");
            cuts.push((ids, out.len() - base));
        }
        Ok((first, cuts))
    }
}

impl Encode for SpanEncoder {
    type Out = io::Result<Encoded>;

    fn start_block(&mut self) {
        self.last = None;
    }

    fn encode(&mut self, span: &SpanView<'_>, out: &mut Vec<u8>) -> Self::Out {
        let (first, cuts) = self.events(out, span)?;
        Ok(Encoded {
            resource: self.resource(&span.resource),

            trace_id: span.trace_id,
            start: span.start_time_unix_nano,
            first,
            events: cuts,
        })
    }
}

/// Convert all spans, streaming.
pub fn convert<R: BufRead, W: Write>(
    reader: &mut SpanReader<R>,
    mut out: W,
) -> Result<Summary, ExportError> {
    let mut w = Writer {
        buf: Vec::with_capacity(2 * CHUNK),
        first: true,
        pids: HashMap::new(),
        recent: Vec::new(),
        tids: HashMap::new(),
        resource: None,
        scratch: Vec::new(),
    };
    w.buf
        .extend_from_slice(br#"{"displayTimeUnit":"ms","traceEvents":["#);
    let mut spans = 0u64;
    let mut samples = 0u64;
    pipeline::for_each_handed(
        reader,
        pipeline::workers(),
        SpanEncoder::default,
        true,
        |record| {
            match record {
                Handed::Span(span, bytes) => {
                    spans += 1;
                    w.span(&span?, bytes)?;
                }
                Handed::Sample(s) => {
                    samples += 1;
                    w.sample(&s)?;
                }
            }
            if w.buf.len() >= CHUNK {
                out.write_all(&w.buf)?;
                w.buf.clear();
            }
            Ok::<(), ExportError>(())
        },
    )?;
    w.buf.extend_from_slice(b"\n]}\n");
    out.write_all(&w.buf)?;
    out.flush()?;
    Ok(Summary {
        spans,
        samples,
        skipped: reader.skipped(),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::reader::tests::line;

    #[test]
    fn writes_trace_event_format() {
        let input = [
            line(1, 2, Some(1), "child", 1_500, 2_001),
            line(1, 1, None, "root", 1_000, 3_000),
            line(2, 1, None, "other", 0, 1),
        ]
        .join("\n");
        let mut out = Vec::new();
        convert(&mut SpanReader::new(input.as_bytes(), false), &mut out).expect("convert");
        let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
        let events = v["traceEvents"].as_array().expect("events");
        for e in events {
            for key in ["ph", "ts", "dur", "pid", "tid", "name"] {
                assert!(e.get(key).is_some(), "{key} missing in {e}");
            }
        }
        let complete: Vec<_> = events.iter().filter(|e| e["ph"] == "X").collect();
        assert_eq!(complete.len(), 3);
        assert_eq!(complete[0]["ts"].as_f64(), Some(1.5));
        assert_eq!(complete[0]["dur"].as_f64(), Some(0.501));
        assert_eq!(complete[0]["args"]["http.route"], "/r");
        assert_eq!(complete[0]["tid"], complete[1]["tid"]);
        assert_ne!(complete[0]["tid"], complete[2]["tid"]);
        assert_eq!(
            events.iter().filter(|e| e["name"] == "thread_name").count(),
            2
        );
        assert_eq!(
            events
                .iter()
                .filter(|e| e["name"] == "process_name")
                .count(),
            1
        );
    }

    #[test]
    fn samples_are_instant_events_on_their_trace_track() {
        let span = line(0x0a, 1, None, "root", 1_000, 3_000);
        let in_span = r#"{"type":"cpu_sample","time_unix_nano":2000,"cpu_nanos":10,"trace_id":"0000000000000000000000000000000a","span_id":"0000000000000001","span_name":"root","stack":[{"function":"main.burn","file":"/m.go","line":5,"pc":16}],"resource":{"service.name":"svc"}}"#;
        let alone = r#"{"type":"cpu_sample","time_unix_nano":2500,"cpu_nanos":10,"resource":{"service.name":"svc"}}"#;
        let input = [span.as_str(), in_span, alone].join("\n");
        let mut out = Vec::new();
        let summary =
            convert(&mut SpanReader::new(input.as_bytes(), false), &mut out).expect("convert");
        assert_eq!((summary.spans, summary.samples), (1, 2));
        let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
        let events = v["traceEvents"].as_array().expect("events");
        let span_tid = events.iter().find(|e| e["ph"] == "X").expect("span")["tid"].clone();
        let cpu: Vec<_> = events.iter().filter(|e| e["cat"] == "cpu").collect();
        assert_eq!(cpu.len(), 2);
        assert_eq!(cpu[0]["name"], "cpu: main.burn");
        assert_eq!(cpu[0]["tid"], span_tid);
        assert_eq!(cpu[0]["args"]["stack"], "main.burn /m.go:5");
        assert_ne!(cpu[1]["tid"], span_tid);
        assert!(
            events
                .iter()
                .any(|e| e["args"]["name"] == "CPU samples (no span)")
        );
    }

    /// Encoded on worker threads over many blocks, the events come out in
    /// input order, each on its trace's track and its service's process,
    /// numbered in order of first appearance.
    #[test]
    fn tracks_across_blocks_follow_the_input() {
        let sample = r#"{"type":"cpu_sample","time_unix_nano":5,"cpu_nanos":1,"resource":{"service.name":"svc"}}"#;
        let mut input = String::new();
        // Track numbers in order of first appearance, the samples' own too.
        let mut tracks: Vec<Option<u8>> = Vec::new();
        let mut expected = Vec::new();
        for i in 0..6000u32 {
            let trace = (i * 7 % 251 + 1) as u8;
            let mut l = line(trace, (i % 200 + 1) as u8, None, &format!("n{i}"), 1, 2);
            if i % 3 == 0 {
                l = l.replace(
                    r#""resource":"#,
                    r#""events":[{"name":"e","time_unix_nano":1,"attributes":{"k":"v"}}],"resource":"#,
                );
            }
            if i % 5 == 0 {
                l = l.replace(r#""service.name":"svc""#, r#""service.name":"other""#);
            }
            input.push_str(&l);
            input.push('\n');
            if !tracks.contains(&Some(trace)) {
                tracks.push(Some(trace));
            }
            let tid = tracks
                .iter()
                .position(|t| *t == Some(trace))
                .expect("known")
                + 1;
            // The first span is of "other".
            let pid = if i % 5 == 0 { 1 } else { 2 };
            expected.push((format!("n{i}"), pid, tid as u64, i % 3 == 0));
            if i == 1000 {
                input.push_str(sample);
                input.push('\n');
                tracks.push(None);
            }
        }
        let mut out = Vec::new();
        let summary =
            convert(&mut SpanReader::new(input.as_bytes(), false), &mut out).expect("convert");
        assert_eq!((summary.spans, summary.samples), (6000, 1));
        let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
        let events = v["traceEvents"].as_array().expect("events");
        let complete: Vec<_> = events.iter().filter(|e| e["ph"] == "X").collect();
        assert_eq!(complete.len(), 6000);
        for (e, (name, pid, tid, _)) in complete.iter().zip(&expected) {
            assert_eq!(e["name"], name.as_str());
            assert_eq!(e["tid"], *tid, "{name}");
            assert_eq!(e["pid"], *pid, "{name}");
        }
        // Each span event right after its span, on the same track.
        let mut with_event = 0;
        for pair in events.windows(2) {
            if pair[1]["ph"] == "i" && pair[1]["name"] == "e" {
                assert_eq!(pair[0]["ph"], "X");
                assert_eq!(
                    (&pair[0]["pid"], &pair[0]["tid"]),
                    (&pair[1]["pid"], &pair[1]["tid"])
                );
                assert_eq!(pair[1]["args"]["k"], "v");
                with_event += 1;
            }
        }
        assert_eq!(with_event, expected.iter().filter(|e| e.3).count());
        let names = |what: &str| events.iter().filter(|e| e["name"] == what).count();
        assert_eq!((names("process_name"), names("thread_name")), (2, 252));
    }

    #[test]
    fn empty_input_is_an_empty_trace() {
        let mut out = Vec::new();
        convert(&mut SpanReader::new(&b""[..], false), &mut out).expect("convert");
        let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(v["traceEvents"].as_array().map(Vec::len), Some(0));
    }
}
