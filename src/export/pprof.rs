//! `--to pprof`: a gzipped `profile.proto` (the format `go tool pprof`
//! reads): a CPU profile when the recording has CPU samples (see
//! [`super::cpu`]; the spans are then only their labels), else one sample
//! per span, as below.
//!
//! Each sample has the values [spans/count, wall/nanoseconds,
//! self/nanoseconds] and a stack built from the span's ancestry under its
//! service (see [`super::stacks`]): the service at the bottom, then the root
//! span's name, the span's own name on top, one location/function per
//! distinct name. String labels `trace_id`, `service.name` and `http.route`
//! let `-tagfocus` narrow to one trace, service or route.
//!
//! The default sample type is self time: summed over stacks it gives where
//! request time went without counting children twice; `-sample_index=wall`
//! shows whole-span durations instead.
//!
//! Samples are encoded into the gzip stream as soon as their trace is
//! complete, and strings as soon as they are first used (protobuf
//! concatenates repeated fields, so samples and strings may come before the
//! other tables); only the distinct names, the locations and the open traces
//! (a few numbers per span) stay in memory. Until the input shows it has
//! no CPU samples, the span profile goes to a [`Spill`] (a temporary file).

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::{BufRead, Write};

use flate2::Compression;
use flate2::write::GzEncoder;
use prost::Message;

use super::cpu::{CpuProfile, SampleFilter};
use super::reader::{RecordView, SpanReader};
use super::spill::Spill;
use super::stacks::{self, Names, StackSpan};
use super::traces::{Trace, TraceGrouper};
use super::{ExportError, Summary};

pub use super::pprof_proto as proto;

/// Field numbers of `Profile.sample` and `Profile.string_table`, for
/// writing samples and strings one at a time.
const SAMPLE_FIELD: u32 = 2;
const STRING_FIELD: u32 = 6;
/// The only mapping: a stand-in for "spans", marked as already symbolized so
/// pprof never looks for a binary.
const MAPPING_ID: u64 = 1;

/// Label keys, in the order they are attached.
pub const LABEL_TRACE_ID: &str = "trace_id";
pub const LABEL_SERVICE: &str = "service.name";
pub const LABEL_ROUTE: &str = "http.route";

/// Writes the profile as it goes: samples as their trace completes, and
/// each string the moment it is first used (the string table's order is the
/// order its entries appear in the stream), so what stays in memory is the
/// distinct names and the locations, not a string per trace.
struct Builder<W: Write> {
    out: GzEncoder<W>,
    buf: Vec<u8>,
    strings: HashMap<String, i64>,
    next_string: i64,
    /// String index of each name in [`Names`] (by its id), once written.
    name_strings: Vec<Option<i64>>,
    /// Location id (== function id) of each name in [`Names`], once used.
    locations: Vec<Option<u64>>,
    /// Function name (string index) per location id - 1.
    location_names: Vec<i64>,
    first_start: u64,
    last_end: u64,
    sample: proto::Sample,
    path: Vec<usize>,
    frames: Vec<u32>,
}

impl<W: Write> Builder<W> {
    fn new(out: W) -> std::io::Result<Builder<W>> {
        let mut b = Builder {
            // As Go's runtime/pprof does: profiles are written often and
            // read rarely, so speed over size.
            out: GzEncoder::new(out, Compression::fast()),
            buf: Vec::new(),
            strings: HashMap::new(),
            next_string: 0,
            name_strings: Vec::new(),
            locations: Vec::new(),
            location_names: Vec::new(),
            first_start: u64::MAX,
            last_end: 0,
            sample: proto::Sample::default(),
            path: Vec::new(),
            frames: Vec::new(),
        };
        b.string("")?; // index 0 is the empty string by definition
        Ok(b)
    }

    /// Append a string table entry; its index.
    fn new_string(&mut self, s: &str) -> std::io::Result<i64> {
        self.buf.clear();
        prost::encoding::encode_key(
            STRING_FIELD,
            prost::encoding::WireType::LengthDelimited,
            &mut self.buf,
        );
        prost::encoding::encode_varint(s.len() as u64, &mut self.buf);
        self.buf.extend_from_slice(s.as_bytes());
        self.out.write_all(&self.buf)?;
        let i = self.next_string;
        self.next_string += 1;
        Ok(i)
    }

    fn string(&mut self, s: &str) -> std::io::Result<i64> {
        if let Some(&i) = self.strings.get(s) {
            return Ok(i);
        }
        let i = self.new_string(s)?;
        self.strings.insert(s.to_owned(), i);
        Ok(i)
    }

    fn name_string(&mut self, names: &Names, id: u32) -> std::io::Result<i64> {
        let slot = id as usize;
        if self.name_strings.len() <= slot {
            self.name_strings.resize(slot + 1, None);
        }
        if let Some(i) = self.name_strings[slot] {
            return Ok(i);
        }
        let i = self.string(names.name(id))?;
        self.name_strings[slot] = Some(i);
        Ok(i)
    }

    fn location(&mut self, names: &Names, id: u32) -> std::io::Result<u64> {
        let slot = id as usize;
        if self.locations.len() <= slot {
            self.locations.resize(slot + 1, None);
        }
        if let Some(loc) = self.locations[slot] {
            return Ok(loc);
        }
        let name = self.name_string(names, id)?;
        self.location_names.push(name);
        let loc = self.location_names.len() as u64;
        self.locations[slot] = Some(loc);
        Ok(loc)
    }

    fn trace(&mut self, names: &Names, trace: &Trace<StackSpan>) -> std::io::Result<()> {
        let Some(first) = trace.spans.first() else {
            return Ok(());
        };
        let self_times = trace.self_times();
        let (trace_key, service_key, route_key) = (
            self.string(LABEL_TRACE_ID)?,
            self.string(LABEL_SERVICE)?,
            self.string(LABEL_ROUTE)?,
        );
        // One string per trace, not remembered: a trace's spans are written
        // together (a straggler after its trace was written gets a second,
        // equal entry, which pprof reads the same).
        let trace_hex = self.new_string(&first.trace_id.to_string())?;
        let mut frames = std::mem::take(&mut self.frames);
        for (i, span) in trace.spans.iter().enumerate() {
            self.first_start = self.first_start.min(span.start_time_unix_nano);
            self.last_end = self.last_end.max(span.end_time_unix_nano);
            stacks::frames(trace, i, &mut self.path, &mut frames);
            let mut sample = std::mem::take(&mut self.sample);
            // pprof wants the leaf first.
            sample.location_id.clear();
            for &f in frames.iter().rev() {
                sample.location_id.push(self.location(names, f)?);
            }
            sample.label.clear();
            sample.label.push(string_label(trace_key, trace_hex));
            sample.label.push(string_label(
                service_key,
                self.name_string(names, span.service)?,
            ));
            if let Some(route) = span.route {
                sample
                    .label
                    .push(string_label(route_key, self.name_string(names, route)?));
            }
            sample.value.clear();
            sample.value.extend_from_slice(&[
                1,
                clamp_i64(span.end_time_unix_nano - span.start_time_unix_nano),
                clamp_i64(self_times.get(i).copied().unwrap_or(0)),
            ]);
            self.buf.clear();
            prost::encoding::message::encode(SAMPLE_FIELD, &sample, &mut self.buf);
            self.out.write_all(&self.buf)?;
            self.sample = sample;
        }
        self.frames = frames;
        Ok(())
    }

    /// Write everything but the samples and the strings already written,
    /// and end the stream.
    fn finish(mut self) -> std::io::Result<W> {
        let vt = |t: i64, u: i64| proto::ValueType { r#type: t, unit: u };
        let (spans, count, wall, self_, ns) = (
            self.string("spans")?,
            self.string("count")?,
            self.string("wall")?,
            self.string("self")?,
            self.string("nanoseconds")?,
        );
        let mapping_name = self.string("goprobe spans")?;
        let comment = self.string("converted from span NDJSON by goprobe")?;
        let (time_nanos, duration_nanos) = if self.first_start <= self.last_end {
            (
                clamp_i64(self.first_start),
                clamp_i64(self.last_end - self.first_start),
            )
        } else {
            (0, 0)
        };
        let tables = proto::Profile {
            sample_type: vec![vt(spans, count), vt(wall, ns), vt(self_, ns)],
            mapping: vec![proto::Mapping {
                id: MAPPING_ID,
                filename: mapping_name,
                has_functions: true,
                ..Default::default()
            }],
            location: (1..=self.location_names.len() as u64)
                .map(|id| proto::Location {
                    id,
                    mapping_id: MAPPING_ID,
                    line: vec![proto::Line {
                        function_id: id,
                        ..Default::default()
                    }],
                    ..Default::default()
                })
                .collect(),
            function: self
                .location_names
                .iter()
                .enumerate()
                .map(|(i, &name)| proto::Function {
                    id: i as u64 + 1,
                    name,
                    system_name: name,
                    ..Default::default()
                })
                .collect(),
            time_nanos,
            duration_nanos,
            period_type: Some(vt(wall, ns)),
            period: 1,
            comment: vec![comment],
            // Self time adds up along stacks (wall time counts a parent's
            // children again), so it is what a flame graph should show.
            default_sample_type: self_,
            ..Default::default()
        };
        self.out.write_all(&tables.encode_to_vec())?;
        self.out.finish()
    }
}

fn string_label(key: i64, str: i64) -> proto::Label {
    proto::Label {
        key,
        str,
        ..Default::default()
    }
}

fn clamp_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Convert a recording; `window` is the trace grouping window (see
/// [`TraceGrouper`]); `filter` picks the CPU samples of one span name or
/// trace.
pub fn convert<R: BufRead, W: Write>(
    reader: &mut SpanReader<R>,
    out: W,
    window: u64,
    filter: &SampleFilter,
) -> Result<Summary, ExportError> {
    let mut builder = Builder::new(Spill::new())?;
    let mut names = Names::default();
    let mut grouper = TraceGrouper::new(window);
    // The output, until the first CPU sample makes this a CPU profile
    // written to it directly.
    let mut output = Some(out);
    let mut cpu: Option<(CpuProfile, GzEncoder<W>)> = None;
    let mut spans = 0u64;
    // Spans are turned into StackSpans (which interns their names) while
    // traces are written from the table filled so far; the two never run at
    // once, but both need `names`, so writing borrows it only for a trace.
    let mut done: Vec<Trace<StackSpan>> = Vec::new();
    reader.for_each_record(|record| {
        match record {
            RecordView::Span(span) => {
                spans += 1;
                if cpu.is_some() {
                    return Ok(());
                }
                let node = StackSpan::new(&span, &mut names, |s| Cow::Borrowed(s), true);
                grouper.push(node, &mut |trace| -> Result<(), ExportError> {
                    done.push(trace);
                    Ok(())
                })?;
                for trace in done.drain(..) {
                    builder.trace(&names, &trace)?;
                }
            }
            RecordView::Sample(s) => {
                if let (None, Some(out)) = (&cpu, output.take()) {
                    cpu = Some((CpuProfile::new(), GzEncoder::new(out, Compression::fast())));
                }
                if let Some((profile, gz)) = &mut cpu
                    && filter.keeps(&s)
                {
                    profile.add(&s, gz)?;
                }
            }
        }
        Ok::<(), ExportError>(())
    })?;
    let peak = grouper.peak_buffered();
    let samples = match cpu {
        Some((profile, mut gz)) => {
            let n = profile.samples;
            gz.write_all(&profile.tables().encode_to_vec())?;
            gz.finish()?.flush()?;
            n
        }
        None => {
            grouper.finish(&mut |trace| -> Result<(), ExportError> {
                builder.trace(&names, &trace)?;
                Ok(())
            })?;
            if let Some(mut out) = output {
                builder.finish()?.copy_to(&mut out)?;
                out.flush()?;
            }
            0
        }
    };
    Ok(Summary {
        spans,
        samples,
        skipped: reader.skipped(),
        peak_buffered_spans: peak,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;
    use crate::export::reader::tests::line;

    fn decode(bytes: &[u8]) -> proto::Profile {
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(bytes)
            .read_to_end(&mut raw)
            .expect("gzip");
        proto::Profile::decode(raw.as_slice()).expect("profile.proto")
    }

    #[test]
    fn one_sample_per_span_with_ancestry_stacks() {
        let input = [
            line(1, 2, Some(1), "child", 10, 40),
            line(1, 1, None, "root", 0, 100),
            line(2, 1, None, "root", 0, 5),
        ]
        .join("\n");
        let mut out = Vec::new();
        let summary = convert(
            &mut SpanReader::new(input.as_bytes(), false),
            &mut out,
            10,
            &SampleFilter::default(),
        )
        .expect("convert");
        assert_eq!(summary.spans, 3);
        let p = decode(&out);
        let s = |i: i64| p.string_table[i as usize].as_str();
        assert_eq!(s(0), "");
        assert_eq!(p.sample.len(), 3);
        let types: Vec<_> = p
            .sample_type
            .iter()
            .map(|t| (s(t.r#type), s(t.unit)))
            .collect();
        assert_eq!(
            types,
            [
                ("spans", "count"),
                ("wall", "nanoseconds"),
                ("self", "nanoseconds")
            ]
        );
        let name_of = |loc: u64| {
            let location = p.location.iter().find(|l| l.id == loc).expect("location");
            let f = p
                .function
                .iter()
                .find(|f| f.id == location.line[0].function_id)
                .expect("function");
            s(f.name).to_owned()
        };
        let child = p
            .sample
            .iter()
            .find(|x| x.location_id.len() == 3)
            .expect("child sample");
        assert_eq!(
            child
                .location_id
                .iter()
                .map(|&l| name_of(l))
                .collect::<Vec<_>>(),
            ["child", "root", "svc"]
        );
        assert_eq!(child.value, [1, 30, 30]);
        let root = p
            .sample
            .iter()
            .find(|x| x.value[1] == 100)
            .expect("root sample");
        assert_eq!(root.value, [1, 100, 70]);
        let labels: Vec<_> = root.label.iter().map(|l| (s(l.key), s(l.str))).collect();
        assert_eq!(
            labels,
            [
                ("trace_id", "00000000000000000000000000000001"),
                ("service.name", "svc"),
                ("http.route", "/r")
            ]
        );
        assert_eq!(p.duration_nanos, 100);
    }

    #[test]
    fn empty_input_is_a_valid_empty_profile() {
        let mut out = Vec::new();
        convert(
            &mut SpanReader::new(&b""[..], false),
            &mut out,
            10,
            &SampleFilter::default(),
        )
        .expect("convert");
        let p = decode(&out);
        assert!(p.sample.is_empty());
        assert_eq!(p.sample_type.len(), 3);
    }
}
