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
use std::io::{BufRead, Write};

use super::reader::{Record, SpanReader};
use super::{ExportError, Summary};
use crate::sample::CpuSample;
use crate::span::{AttrValue, Attributes, Span, SpanKind, StatusCode, TraceId};

/// Argument names goprobe sets itself; attributes with these names are left out.
const OWN_ARGS: [&str; 6] = [
    "trace_id",
    "span_id",
    "parent_span_id",
    "span.kind",
    "status.code",
    "status.message",
];

struct Writer<W> {
    out: W,
    first: bool,
    pids: HashMap<String, u64>,
    /// Track per trace; `None`: a process's samples in no span.
    tids: HashMap<(u64, Option<TraceId>), u64>,
}

fn micros(ns: u64) -> String {
    format!("{}.{:03}", ns / 1000, ns % 1000)
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

impl<W: Write> Writer<W> {
    fn sep(&mut self) -> std::io::Result<()> {
        if self.first {
            self.first = false;
            self.out.write_all(b"\n")
        } else {
            self.out.write_all(b",\n")
        }
    }

    fn json<T: serde::Serialize + ?Sized>(&mut self, value: &T) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.out, value).map_err(std::io::Error::from)
    }

    /// A metadata event naming a process or thread.
    fn metadata(
        &mut self,
        what: &str,
        pid: u64,
        tid: u64,
        ts: u64,
        name: &str,
    ) -> std::io::Result<()> {
        self.sep()?;
        write!(
            self.out,
            r#"{{"ph":"M","name":"{what}","ts":{},"dur":0,"pid":{pid},"tid":{tid},"args":{{"name":"#,
            micros(ts)
        )?;
        self.json(name)?;
        self.out.write_all(b"}}")
    }

    fn pid(&mut self, resource: &Attributes, ts: u64) -> std::io::Result<u64> {
        let key = serde_json::to_string(resource).map_err(std::io::Error::from)?;
        if let Some(&pid) = self.pids.get(&key) {
            return Ok(pid);
        }
        let pid = self.pids.len() as u64 + 1;
        self.pids.insert(key, pid);
        let service = match resource.get("service.name") {
            Some(AttrValue::String(s)) => s.clone(),
            _ => "unknown service".to_owned(),
        };
        let name = match resource.get("process.pid") {
            Some(AttrValue::Int(n)) => format!("{service} (pid {n})"),
            _ => service,
        };
        self.metadata("process_name", pid, 0, ts, &name)?;
        Ok(pid)
    }

    fn tid(&mut self, trace: Option<TraceId>, pid: u64, ts: u64) -> std::io::Result<u64> {
        if let Some(&tid) = self.tids.get(&(pid, trace)) {
            return Ok(tid);
        }
        let tid = self.tids.len() as u64 + 1;
        self.tids.insert((pid, trace), tid);
        let name = match trace {
            Some(t) => format!("trace {t}"),
            None => "CPU samples (no span)".to_owned(),
        };
        self.metadata("thread_name", pid, tid, ts, &name)?;
        Ok(tid)
    }

    /// A CPU sample: an instant event on its trace's track.
    fn sample(&mut self, s: &CpuSample) -> std::io::Result<()> {
        let pid = self.pid(&s.resource, s.time_unix_nano)?;
        let tid = self.tid(s.trace_id, pid, s.time_unix_nano)?;
        self.sep()?;
        let leaf = s.stack.first().map_or("?", |f| f.function.as_str());
        self.out.write_all(br#"{"ph":"i","s":"t","name":"#)?;
        self.json(&format!("cpu: {leaf}"))?;
        write!(
            self.out,
            r#","cat":"cpu","ts":{},"dur":0,"pid":{pid},"tid":{tid},"args":"#,
            micros(s.time_unix_nano)
        )?;
        let stack: Vec<String> = s
            .stack
            .iter()
            .map(|f| format!("{} {}:{}", f.function, f.file, f.line))
            .collect();
        let mut extra = vec![
            ("cpu_nanos", s.cpu_nanos.to_string()),
            ("stack", stack.join("\n")),
        ];
        if let Some(id) = s.span_id {
            extra.push(("span_id", id.to_string()));
        }
        if let Some(name) = &s.span_name {
            extra.push(("span_name", name.clone()));
        }
        self.args(&extra, &s.attributes)?;
        self.out.write_all(b"}")
    }

    fn args(&mut self, extra: &[(&str, String)], attributes: &Attributes) -> std::io::Result<()> {
        self.out.write_all(b"{")?;
        let mut first = true;
        for (key, value) in extra {
            if !first {
                self.out.write_all(b",")?;
            }
            first = false;
            self.json(key)?;
            self.out.write_all(b":")?;
            self.json(value)?;
        }
        for (key, value) in attributes {
            if OWN_ARGS.contains(&key.as_str()) {
                continue;
            }
            if !first {
                self.out.write_all(b",")?;
            }
            first = false;
            self.json(key)?;
            self.out.write_all(b":")?;
            self.json(value)?;
        }
        self.out.write_all(b"}")
    }

    fn span(&mut self, span: &Span) -> std::io::Result<()> {
        let pid = self.pid(&span.resource, span.start_time_unix_nano)?;
        let tid = self.tid(Some(span.trace_id), pid, span.start_time_unix_nano)?;
        self.sep()?;
        self.out.write_all(br#"{"ph":"X","name":"#)?;
        self.json(&span.name)?;
        write!(
            self.out,
            r#","cat":"{}","ts":{},"dur":{},"pid":{pid},"tid":{tid},"args":"#,
            kind_name(span.kind),
            micros(span.start_time_unix_nano),
            micros(span.duration_nanos()),
        )?;
        let mut extra = vec![
            ("trace_id", span.trace_id.to_string()),
            ("span_id", span.span_id.to_string()),
            ("span.kind", kind_name(span.kind).to_owned()),
        ];
        if let Some(parent) = span.parent_span_id {
            extra.push(("parent_span_id", parent.to_string()));
        }
        let code = match span.status.code {
            StatusCode::Unset => "unset",
            StatusCode::Ok => "ok",
            StatusCode::Error => "error",
        };
        extra.push(("status.code", code.to_owned()));
        if let Some(message) = &span.status.message {
            extra.push(("status.message", message.clone()));
        }
        self.args(&extra, &span.attributes)?;
        self.out.write_all(b"}")?;
        for event in &span.events {
            self.sep()?;
            self.out.write_all(br#"{"ph":"i","s":"t","name":"#)?;
            self.json(&event.name)?;
            write!(
                self.out,
                r#","ts":{},"dur":0,"pid":{pid},"tid":{tid},"args":"#,
                micros(event.time_unix_nano)
            )?;
            self.args(&[], &event.attributes)?;
            self.out.write_all(b"}")?;
        }
        Ok(())
    }
}

/// Convert all spans, streaming.
pub fn convert<R: BufRead, W: Write>(
    reader: &mut SpanReader<R>,
    out: W,
) -> Result<Summary, ExportError> {
    let mut w = Writer {
        out,
        first: true,
        pids: HashMap::new(),
        tids: HashMap::new(),
    };
    w.out
        .write_all(br#"{"displayTimeUnit":"ms","traceEvents":["#)?;
    let mut spans = 0u64;
    let mut samples = 0u64;
    while let Some(record) = reader.next_record()? {
        match record {
            Record::Span(span) => {
                spans += 1;
                w.span(&span)?;
            }
            Record::Sample(s) => {
                samples += 1;
                w.sample(&s)?;
            }
        }
    }
    w.out.write_all(b"\n]}\n")?;
    w.out.flush()?;
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

    #[test]
    fn empty_input_is_an_empty_trace() {
        let mut out = Vec::new();
        convert(&mut SpanReader::new(&b""[..], false), &mut out).expect("convert");
        let v: serde_json::Value = serde_json::from_slice(&out).expect("json");
        assert_eq!(v["traceEvents"].as_array().map(Vec::len), Some(0));
    }
}
