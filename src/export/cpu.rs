//! CPU samples (`cpu_sample` records, [`crate::sample`]) in the profile
//! formats: a pprof CPU profile, and folded stacks for `--to folded` and
//! `--to flamegraph`, narrowed to one span name or one trace by a
//! [`SampleFilter`].
//!
//! The pprof profile is what `runtime/pprof` writes, in shape: sample
//! types `samples/count` and `cpu/nanoseconds` (the default), period type
//! `cpu/nanoseconds`, one location per pc of a stack with its inlined
//! calls as extra lines (innermost first, as profile.proto has them), one
//! function per name and file, all marked symbolized so pprof never looks
//! for the binary. String labels `trace_id`, `span_id` and `span_name`
//! (the keys Pyroscope's span profiles use, with its meaning: the local
//! root span, i.e. the request), `http.route` and `service.name`, so
//! `go tool pprof -tagfocus span_name='GET /report'` shows where a route
//! spends CPU. Samples are encoded as they are read; only the tables stay
//! in memory.

use std::collections::HashMap;
use std::io::Write;

use super::pprof_proto as proto;
use crate::sample::{CpuSample, StackFrame};
use crate::span::{AttrValue, TraceId};

/// Which samples a conversion keeps: `--span-name`, `--trace-id`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SampleFilter {
    /// Samples taken in a span of this name: the local root (the request,
    /// `GET /report`) or the innermost span.
    pub span_name: Option<String>,
    pub trace_id: Option<TraceId>,
}

impl SampleFilter {
    pub fn is_empty(&self) -> bool {
        self.span_name.is_none() && self.trace_id.is_none()
    }

    pub fn keeps(&self, s: &CpuSample) -> bool {
        let name_ok = self.span_name.as_ref().is_none_or(|n| {
            s.local_root_span_name.as_ref() == Some(n) || s.span_name.as_ref() == Some(n)
        });
        let trace_ok = self.trace_id.is_none_or(|t| s.trace_id == Some(t));
        name_ok && trace_ok
    }
}

/// Field number of `Profile.sample`, for encoding samples one at a time.
const SAMPLE_FIELD: u32 = 2;
const MAPPING_ID: u64 = 1;

/// The frames of a stack grouped by pc: each group is the inlined calls
/// at one pc (innermost first) and the function they were inlined into.
pub fn by_pc(stack: &[StackFrame]) -> Vec<&[StackFrame]> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, f) in stack.iter().enumerate() {
        if !f.inlined {
            out.push(&stack[start..=i]);
            start = i + 1;
        }
    }
    if start < stack.len() {
        // Inlined frames with nothing after them (a cut stack): their own group.
        out.push(&stack[start..]);
    }
    out
}

/// A pprof CPU profile being written.
pub struct CpuProfile {
    strings: Vec<String>,
    string_index: HashMap<String, i64>,
    functions: HashMap<(String, String), u64>,
    function_list: Vec<proto::Function>,
    locations: HashMap<(u64, Vec<(u64, i64)>), u64>,
    location_list: Vec<proto::Location>,
    first: u64,
    last: u64,
    period: u64,
    pub samples: u64,
    buf: Vec<u8>,
}

impl Default for CpuProfile {
    fn default() -> Self {
        CpuProfile::new()
    }
}

impl CpuProfile {
    pub fn new() -> CpuProfile {
        let mut p = CpuProfile {
            strings: Vec::new(),
            string_index: HashMap::new(),
            functions: HashMap::new(),
            function_list: Vec::new(),
            locations: HashMap::new(),
            location_list: Vec::new(),
            first: u64::MAX,
            last: 0,
            period: 0,
            samples: 0,
            buf: Vec::new(),
        };
        p.string("");
        p
    }

    fn string(&mut self, s: &str) -> i64 {
        if let Some(&i) = self.string_index.get(s) {
            return i;
        }
        let i = self.strings.len() as i64;
        self.strings.push(s.to_owned());
        self.string_index.insert(s.to_owned(), i);
        i
    }

    fn function(&mut self, f: &StackFrame) -> u64 {
        let key = (f.function.clone(), f.file.clone());
        if let Some(&id) = self.functions.get(&key) {
            return id;
        }
        let id = self.function_list.len() as u64 + 1;
        let name = self.string(&f.function);
        let filename = self.string(&f.file);
        self.function_list.push(proto::Function {
            id,
            name,
            system_name: name,
            filename,
            start_line: 0,
        });
        self.functions.insert(key, id);
        id
    }

    fn location(&mut self, group: &[StackFrame]) -> u64 {
        let pc = group.last().map_or(0, |f| f.pc);
        let lines: Vec<(u64, i64)> = group
            .iter()
            .map(|f| (self.function(f), i64::from(f.line)))
            .collect();
        let key = (pc, lines);
        if let Some(&id) = self.locations.get(&key) {
            return id;
        }
        let id = self.location_list.len() as u64 + 1;
        self.location_list.push(proto::Location {
            id,
            mapping_id: MAPPING_ID,
            address: pc,
            line: key
                .1
                .iter()
                .map(|&(function_id, line)| proto::Line {
                    function_id,
                    line,
                    column: 0,
                })
                .collect(),
            is_folded: false,
        });
        self.locations.insert(key, id);
        id
    }

    /// Encode one sample into `out` (the gzip stream of the profile).
    pub fn add<W: Write>(&mut self, s: &CpuSample, out: &mut W) -> std::io::Result<()> {
        self.first = self.first.min(s.time_unix_nano);
        self.last = self.last.max(s.time_unix_nano);
        if self.period == 0 {
            self.period = s.cpu_nanos;
        }
        let location_id: Vec<u64> = by_pc(&s.stack)
            .into_iter()
            .map(|g| self.location(g))
            .collect();
        let mut label = Vec::new();
        let mut put = |p: &mut CpuProfile, key: &str, value: &str| {
            let key = p.string(key);
            let str = p.string(value);
            label.push(proto::Label {
                key,
                str,
                ..Default::default()
            });
        };
        if let Some(t) = s.trace_id {
            put(self, "trace_id", &t.to_string());
        }
        if let Some(id) = s.local_root_span_id.or(s.span_id) {
            put(self, "span_id", &id.to_string());
        }
        if let Some(n) = s.local_root_span_name.as_ref().or(s.span_name.as_ref()) {
            put(self, "span_name", n);
        }
        if let Some(r) = s.attribute_str("http.route") {
            put(self, "http.route", r);
        }
        if let Some(AttrValue::String(svc)) = s.resource.get("service.name") {
            put(self, "service.name", svc);
        }
        let sample = proto::Sample {
            location_id,
            value: vec![1, i64::try_from(s.cpu_nanos).unwrap_or(i64::MAX)],
            label,
        };
        self.buf.clear();
        prost::encoding::message::encode(SAMPLE_FIELD, &sample, &mut self.buf);
        out.write_all(&self.buf)?;
        self.samples += 1;
        Ok(())
    }

    /// Everything but the samples.
    pub fn tables(mut self) -> proto::Profile {
        let vt = |t: i64, u: i64| proto::ValueType { r#type: t, unit: u };
        let (samples, count, cpu, ns) = (
            self.string("samples"),
            self.string("count"),
            self.string("cpu"),
            self.string("nanoseconds"),
        );
        let mapping_name = self.string("goprobe CPU samples");
        let comment = self.string("CPU samples recorded by goprobe (record --cpu)");
        let (time_nanos, duration_nanos) = if self.first <= self.last {
            (clamp(self.first), clamp(self.last - self.first))
        } else {
            (0, 0)
        };
        proto::Profile {
            sample_type: vec![vt(samples, count), vt(cpu, ns)],
            mapping: vec![proto::Mapping {
                id: MAPPING_ID,
                memory_limit: u64::MAX,
                filename: mapping_name,
                has_functions: true,
                has_filenames: true,
                has_line_numbers: true,
                has_inline_frames: true,
                ..Default::default()
            }],
            location: self.location_list,
            function: self.function_list,
            string_table: self.strings,
            time_nanos,
            duration_nanos,
            period_type: Some(vt(cpu, ns)),
            period: clamp(self.period),
            comment: vec![comment],
            default_sample_type: cpu,
            ..Default::default()
        }
    }
}

fn clamp(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// CPU nanoseconds per folded stack: `span;outer;...;leaf`, the local
/// root span's name (or `no span`) first, then the Go frames from the
/// outermost in, inlined calls as frames of their own.
#[derive(Debug, Default)]
pub struct FoldedCpu {
    totals: HashMap<String, u64>,
    pub samples: u64,
}

impl FoldedCpu {
    pub fn add(&mut self, s: &CpuSample) {
        let root = s
            .local_root_span_name
            .as_deref()
            .or(s.span_name.as_deref())
            .unwrap_or("no span");
        let mut stack = super::stacks::frame(root).into_owned();
        for f in s.stack.iter().rev() {
            stack.push(';');
            stack.push_str(&super::stacks::frame(&f.function));
        }
        *self.totals.entry(stack).or_insert(0) += s.cpu_nanos;
        self.samples += 1;
    }

    /// `stack N` lines, sorted by stack.
    pub fn lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .totals
            .iter()
            .map(|(stack, n)| format!("{stack} {n}"))
            .collect();
        lines.sort();
        lines
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn frame(function: &str, line: u32, pc: u64, inlined: bool) -> StackFrame {
        StackFrame {
            function: function.into(),
            file: "/src/main.go".into(),
            line,
            pc,
            inlined,
        }
    }

    pub(crate) fn sample(root: Option<&str>, stack: Vec<StackFrame>) -> CpuSample {
        let line = match root {
            Some(name) => format!(
                r#"{{"type":"cpu_sample","time_unix_nano":5,"cpu_nanos":10000000,"trace_id":"0af7651916cd43dd8448eb211c80319c","span_id":"00f067aa0ba902b7","span_name":"SELECT","local_root_span_id":"b7ad6b7169203331","local_root_span_name":"{name}","attributes":{{"http.route":"/report"}},"resource":{{"service.name":"svc"}}}}"#
            ),
            None => r#"{"type":"cpu_sample","time_unix_nano":5,"cpu_nanos":10000000}"#.into(),
        };
        let mut s = CpuSample::from_json_line(&line).expect("sample");
        s.stack = stack;
        s
    }

    #[test]
    fn groups_inlined_calls_with_their_caller() {
        let stack = vec![
            frame("main.inner", 3, 0x10, true),
            frame("main.outer", 9, 0x10, false),
            frame("main.main", 20, 0x40, false),
        ];
        let groups = by_pc(&stack);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].len(), 2);
        assert_eq!(groups[1][0].function, "main.main");
    }

    #[test]
    fn filters_by_span_name_and_trace() {
        let s = sample(Some("GET /report"), Vec::new());
        let by = |name: &str| SampleFilter {
            span_name: Some(name.into()),
            trace_id: None,
        };
        assert!(by("GET /report").keeps(&s));
        assert!(by("SELECT").keeps(&s), "the innermost span's name");
        assert!(!by("GET /other").keeps(&s));
        let t = TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").expect("id");
        let by_trace = SampleFilter {
            span_name: None,
            trace_id: Some(t),
        };
        assert!(by_trace.keeps(&s));
        assert!(!by_trace.keeps(&sample(None, Vec::new())));
        assert!(SampleFilter::default().keeps(&sample(None, Vec::new())));
    }

    #[test]
    fn folds_cpu_by_root_span_then_outermost_frame() {
        let mut f = FoldedCpu::default();
        let stack = vec![
            frame("main.burn", 5, 0x10, false),
            frame("main.handler", 9, 0x40, false),
        ];
        f.add(&sample(Some("GET /report"), stack.clone()));
        f.add(&sample(Some("GET /report"), stack.clone()));
        f.add(&sample(None, stack));
        assert_eq!(
            f.lines(),
            [
                "GET /report;main.handler;main.burn 20000000",
                "no span;main.handler;main.burn 10000000"
            ]
        );
    }
}
