//! `--to pprof`: a gzipped `profile.proto` (the format `go tool pprof`
//! reads): a CPU profile when the recording has CPU samples (see
//! [`super::cpu`]; the spans are then only their labels), else one sample
//! per span, as below.
//!
//! Each sample has the values [spans/count, wall/nanoseconds,
//! self/nanoseconds] and a stack built from the span's ancestry: the root
//! span's name at the bottom, the span's own name on top, one
//! location/function per distinct span name. String labels `trace_id`,
//! `service.name` and `http.route` let `-tagfocus` narrow to one trace or
//! route.
//!
//! The default sample type is self time: summed over stacks it gives where
//! request time went without counting children twice; `-sample_index=wall`
//! shows whole-span durations instead.
//!
//! Samples are encoded into the gzip stream as soon as their trace is
//! complete (protobuf concatenates repeated fields, so the samples may come
//! before the tables); only the string, function and location tables and the
//! open traces stay in memory.

use std::collections::HashMap;
use std::io::{BufRead, Write};

use flate2::Compression;
use flate2::write::GzEncoder;
use prost::Message;

use super::cpu::{CpuProfile, SampleFilter};
use super::reader::{Record, SpanReader};
use super::traces::{Trace, TraceGrouper};
use super::{ExportError, Summary};
use crate::span::AttrValue;

/// The messages of pprof's profile.proto (package perftools.profiles), with
/// their published field numbers.
pub mod proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Profile {
        #[prost(message, repeated, tag = "1")]
        pub sample_type: Vec<ValueType>,
        #[prost(message, repeated, tag = "2")]
        pub sample: Vec<Sample>,
        #[prost(message, repeated, tag = "3")]
        pub mapping: Vec<Mapping>,
        #[prost(message, repeated, tag = "4")]
        pub location: Vec<Location>,
        #[prost(message, repeated, tag = "5")]
        pub function: Vec<Function>,
        #[prost(string, repeated, tag = "6")]
        pub string_table: Vec<String>,
        #[prost(int64, tag = "7")]
        pub drop_frames: i64,
        #[prost(int64, tag = "8")]
        pub keep_frames: i64,
        #[prost(int64, tag = "9")]
        pub time_nanos: i64,
        #[prost(int64, tag = "10")]
        pub duration_nanos: i64,
        #[prost(message, optional, tag = "11")]
        pub period_type: Option<ValueType>,
        #[prost(int64, tag = "12")]
        pub period: i64,
        #[prost(int64, repeated, tag = "13")]
        pub comment: Vec<i64>,
        #[prost(int64, tag = "14")]
        pub default_sample_type: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ValueType {
        #[prost(int64, tag = "1")]
        pub r#type: i64,
        #[prost(int64, tag = "2")]
        pub unit: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Sample {
        #[prost(uint64, repeated, tag = "1")]
        pub location_id: Vec<u64>,
        #[prost(int64, repeated, tag = "2")]
        pub value: Vec<i64>,
        #[prost(message, repeated, tag = "3")]
        pub label: Vec<Label>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Label {
        #[prost(int64, tag = "1")]
        pub key: i64,
        #[prost(int64, tag = "2")]
        pub str: i64,
        #[prost(int64, tag = "3")]
        pub num: i64,
        #[prost(int64, tag = "4")]
        pub num_unit: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Mapping {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(uint64, tag = "2")]
        pub memory_start: u64,
        #[prost(uint64, tag = "3")]
        pub memory_limit: u64,
        #[prost(uint64, tag = "4")]
        pub file_offset: u64,
        #[prost(int64, tag = "5")]
        pub filename: i64,
        #[prost(int64, tag = "6")]
        pub build_id: i64,
        #[prost(bool, tag = "7")]
        pub has_functions: bool,
        #[prost(bool, tag = "8")]
        pub has_filenames: bool,
        #[prost(bool, tag = "9")]
        pub has_line_numbers: bool,
        #[prost(bool, tag = "10")]
        pub has_inline_frames: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Location {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(uint64, tag = "2")]
        pub mapping_id: u64,
        #[prost(uint64, tag = "3")]
        pub address: u64,
        #[prost(message, repeated, tag = "4")]
        pub line: Vec<Line>,
        #[prost(bool, tag = "5")]
        pub is_folded: bool,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Line {
        #[prost(uint64, tag = "1")]
        pub function_id: u64,
        #[prost(int64, tag = "2")]
        pub line: i64,
        #[prost(int64, tag = "3")]
        pub column: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Function {
        #[prost(uint64, tag = "1")]
        pub id: u64,
        #[prost(int64, tag = "2")]
        pub name: i64,
        #[prost(int64, tag = "3")]
        pub system_name: i64,
        #[prost(int64, tag = "4")]
        pub filename: i64,
        #[prost(int64, tag = "5")]
        pub start_line: i64,
    }
}

/// Field number of `Profile.sample`, for encoding samples one at a time.
const SAMPLE_FIELD: u32 = 2;
/// The only mapping: a stand-in for "spans", marked as already symbolized so
/// pprof never looks for a binary.
const MAPPING_ID: u64 = 1;

/// Label keys, in the order they are attached.
pub const LABEL_TRACE_ID: &str = "trace_id";
pub const LABEL_SERVICE: &str = "service.name";
pub const LABEL_ROUTE: &str = "http.route";

/// Tables shared by all samples.
struct Builder {
    strings: Vec<String>,
    string_index: HashMap<String, i64>,
    /// Location id (== function id) per span name.
    locations: HashMap<String, u64>,
    names: Vec<i64>,
    first_start: u64,
    last_end: u64,
    buf: Vec<u8>,
}

impl Builder {
    fn new() -> Builder {
        let mut b = Builder {
            strings: Vec::new(),
            string_index: HashMap::new(),
            locations: HashMap::new(),
            names: Vec::new(),
            first_start: u64::MAX,
            last_end: 0,
            buf: Vec::new(),
        };
        b.string(""); // index 0 is the empty string by definition
        b
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

    fn location(&mut self, name: &str) -> u64 {
        if let Some(&id) = self.locations.get(name) {
            return id;
        }
        let name_index = self.string(name);
        self.names.push(name_index);
        let id = self.names.len() as u64;
        self.locations.insert(name.to_owned(), id);
        id
    }

    fn trace<W: Write>(&mut self, trace: &Trace, out: &mut W) -> std::io::Result<()> {
        let self_times = trace.self_times();
        for (i, span) in trace.spans.iter().enumerate() {
            self.first_start = self.first_start.min(span.start_time_unix_nano);
            self.last_end = self.last_end.max(span.end_time_unix_nano);
            // pprof wants the leaf first.
            let location_id: Vec<u64> = trace
                .stack(i)
                .iter()
                .rev()
                .filter_map(|&j| trace.spans.get(j))
                .map(|s| self.location(&s.name))
                .collect();
            let mut label = Vec::with_capacity(3);
            let trace_hex = span.trace_id.to_string();
            label.push(string_label(
                self.string(LABEL_TRACE_ID),
                self.string(&trace_hex),
            ));
            if let Some(AttrValue::String(service)) = span.resource.get(LABEL_SERVICE) {
                label.push(string_label(
                    self.string(LABEL_SERVICE),
                    self.string(service),
                ));
            }
            if let Some(AttrValue::String(route)) = span.attributes.get(LABEL_ROUTE) {
                label.push(string_label(self.string(LABEL_ROUTE), self.string(route)));
            }
            let sample = proto::Sample {
                location_id,
                value: vec![
                    1,
                    clamp_i64(span.duration_nanos()),
                    clamp_i64(self_times.get(i).copied().unwrap_or(0)),
                ],
                label,
            };
            self.buf.clear();
            prost::encoding::message::encode(SAMPLE_FIELD, &sample, &mut self.buf);
            out.write_all(&self.buf)?;
        }
        Ok(())
    }

    /// Everything but the samples.
    fn tables(self) -> proto::Profile {
        let Builder {
            mut strings,
            mut string_index,
            names,
            first_start,
            last_end,
            ..
        } = self;
        let mut intern = |s: &str| -> i64 {
            if let Some(&i) = string_index.get(s) {
                return i;
            }
            let i = strings.len() as i64;
            strings.push(s.to_owned());
            string_index.insert(s.to_owned(), i);
            i
        };
        let vt = |t: i64, u: i64| proto::ValueType { r#type: t, unit: u };
        let (spans, count, wall, self_, ns) = (
            intern("spans"),
            intern("count"),
            intern("wall"),
            intern("self"),
            intern("nanoseconds"),
        );
        let mapping_name = intern("goprobe spans");
        let comment = intern("converted from span NDJSON by goprobe");
        let (time_nanos, duration_nanos) = if first_start <= last_end {
            (clamp_i64(first_start), clamp_i64(last_end - first_start))
        } else {
            (0, 0)
        };
        proto::Profile {
            sample_type: vec![vt(spans, count), vt(wall, ns), vt(self_, ns)],
            mapping: vec![proto::Mapping {
                id: MAPPING_ID,
                filename: mapping_name,
                has_functions: true,
                ..Default::default()
            }],
            location: (1..=names.len() as u64)
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
            function: names
                .iter()
                .enumerate()
                .map(|(i, &name)| proto::Function {
                    id: i as u64 + 1,
                    name,
                    system_name: name,
                    ..Default::default()
                })
                .collect(),
            string_table: strings,
            time_nanos,
            duration_nanos,
            period_type: Some(vt(wall, ns)),
            period: 1,
            comment: vec![comment],
            // Self time adds up along stacks (wall time counts a parent's
            // children again), so it is what a flame graph should show.
            default_sample_type: self_,
            ..Default::default()
        }
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

/// Where the span profile's samples wait until the input shows it has no
/// CPU samples (which would make it a CPU profile instead): an unnamed
/// temporary file, so memory stays bounded; memory where the file system
/// refuses one.
enum Spill {
    File(std::io::BufWriter<std::fs::File>),
    Memory(Vec<u8>),
}

impl Spill {
    fn new() -> Spill {
        use std::os::unix::fs::OpenOptionsExt;
        std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_TMPFILE)
            .open(std::env::temp_dir())
            .map_or_else(
                |_| Spill::Memory(Vec::new()),
                |f| Spill::File(std::io::BufWriter::new(f)),
            )
    }

    /// Everything written, into `out`.
    fn copy_to<W: Write>(self, out: &mut W) -> std::io::Result<()> {
        use std::io::{Seek, SeekFrom};
        match self {
            Spill::Memory(v) => out.write_all(&v),
            Spill::File(w) => {
                let mut f = w.into_inner().map_err(|e| e.into_error())?;
                f.seek(SeekFrom::Start(0))?;
                std::io::copy(&mut f, out).map(|_| ())
            }
        }
    }
}

impl Write for Spill {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Spill::File(w) => w.write(buf),
            Spill::Memory(v) => v.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Spill::File(w) => w.flush(),
            Spill::Memory(_) => Ok(()),
        }
    }
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
    let mut gz = GzEncoder::new(out, Compression::default());
    let mut builder = Builder::new();
    let mut grouper = TraceGrouper::new(window);
    let mut spill = Spill::new();
    let mut cpu: Option<CpuProfile> = None;
    let mut spans = 0u64;
    let peak;
    {
        let mut emit = |trace: Trace| builder.trace(&trace, &mut spill);
        while let Some(record) = reader.next_record()? {
            match record {
                Record::Span(span) => {
                    spans += 1;
                    if cpu.is_none() {
                        grouper.push(span, &mut emit)?;
                    }
                }
                Record::Sample(s) => {
                    let profile = cpu.get_or_insert_with(CpuProfile::new);
                    if filter.keeps(&s) {
                        profile.add(&s, &mut gz)?;
                    }
                }
            }
        }
        peak = grouper.peak_buffered();
        if cpu.is_none() {
            grouper.finish(&mut emit)?;
        }
    }
    let samples = match cpu {
        Some(profile) => {
            let n = profile.samples;
            gz.write_all(&profile.tables().encode_to_vec())?;
            n
        }
        None => {
            spill.copy_to(&mut gz)?;
            gz.write_all(&builder.tables().encode_to_vec())?;
            0
        }
    };
    gz.finish()?.flush()?;
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
            .find(|x| x.location_id.len() == 2)
            .expect("child sample");
        assert_eq!(
            child
                .location_id
                .iter()
                .map(|&l| name_of(l))
                .collect::<Vec<_>>(),
            ["child", "root"]
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
