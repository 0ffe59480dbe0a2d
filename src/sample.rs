//! The CPU sample record: one line of a recording (`goprobe record --cpu`)
//! for each CPU sample, beside the spans, and read back by `goprobe
//! convert`. It is tagged `"type":"cpu_sample"` (span lines have no
//! `type`), so a reader tells the two apart by that key.
//!
//! ```text
//! {"type":"cpu_sample","time_unix_nano":N,"cpu_nanos":10101010,
//!  "trace_id":"<32 hex>","span_id":"<16 hex>","span_name":"GET /report",
//!  "local_root_span_id":"<16 hex>","local_root_span_name":"GET /report",
//!  "attributes":{"http.route":"/report","goroutine.id":42,"goroutine.state":"running",
//!                "thread.id":4243,"cpu.id":1},
//!  "stack":[{"function":"main.burn","file":"/src/main.go","line":51,"pc":4719038},
//!           {"function":"main.handler","file":"/src/main.go","line":80,"pc":4719390,"inlined":true},...],
//!  "resource":{"service.name":"...","process.pid":N,...}}
//! ```
//!
//! * `cpu_nanos`: the CPU time the sample stands for (the sampling period).
//! * `trace_id`, `span_id`, `span_name`: the innermost span the sample ran
//!   in (on its goroutine, or on the goroutine that started it); absent
//!   when it ran in none. `local_root_span_*`: the outermost span of that
//!   tree in this process (the request's server span): what pprof's
//!   `span_id`/`span_name` labels carry, as Pyroscope's span profiles do.
//! * `attributes`: `http.route` (the local root's, when it has one),
//!   `goroutine.id` (absent when no goroutine could be told),
//!   `goroutine.state` (`running`: on the goroutine's own stack; `system`:
//!   the runtime working on its behalf on the system stack; `none`: the
//!   thread ran no goroutine, e.g. the scheduler; `unknown`), `thread.id`,
//!   `cpu.id`.
//! * `stack`: innermost frame first, inlined calls as frames of their own
//!   (`inlined: true`, the same `pc` as the frame they were inlined into,
//!   which follows them); `pc` is the link-time address (what `go tool nm`
//!   and `go tool addr2line` use, also for PIE).

use serde::{Deserialize, Serialize};

use crate::span::{Attributes, SpanId, TraceId};

/// The `type` of a CPU sample line.
pub const RECORD_TYPE: &str = "cpu_sample";

/// The one value `type` takes on a sample line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum SampleTag {
    #[default]
    #[serde(rename = "cpu_sample")]
    CpuSample,
}

/// One CPU sample, as one NDJSON line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CpuSample {
    #[serde(rename = "type")]
    pub tag: SampleTag,
    pub time_unix_nano: u64,
    pub cpu_nanos: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_id: Option<TraceId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_id: Option<SpanId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_root_span_id: Option<SpanId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_root_span_name: Option<String>,
    #[serde(default)]
    pub attributes: Attributes,
    #[serde(default)]
    pub stack: Vec<StackFrame>,
    #[serde(default)]
    pub resource: Attributes,
}

/// One logical frame of a sampled stack.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StackFrame {
    /// As the Go runtime names it (`main.(*T).m`); `?` when the pc is in
    /// no function of the binary (a vDSO, a C library).
    pub function: String,
    /// `?` when unknown.
    pub file: String,
    /// 0 when unknown.
    #[serde(default)]
    pub line: u32,
    /// Link-time address: the sampled pc for the innermost physical frame,
    /// the call instruction's for its callers.
    #[serde(default)]
    pub pc: u64,
    /// A call the compiler inlined into the frame that follows.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub inlined: bool,
}

/// Why a sample line was rejected.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    #[error("invalid cpu_sample JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl CpuSample {
    /// Parse one NDJSON line.
    pub fn from_json_line(line: &str) -> Result<CpuSample, SampleError> {
        Ok(serde_json::from_str(line)?)
    }

    /// A string attribute (`http.route`).
    pub fn attribute_str(&self, key: &str) -> Option<&str> {
        match self.attributes.get(key) {
            Some(crate::span::AttrValue::String(s)) => Some(s),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"type":"cpu_sample","time_unix_nano":1700000000000000000,"cpu_nanos":10101010,"trace_id":"0af7651916cd43dd8448eb211c80319c","span_id":"b7ad6b7169203331","span_name":"GET /burn","local_root_span_id":"b7ad6b7169203331","local_root_span_name":"GET /burn","attributes":{"goroutine.id":7,"http.route":"/burn"},"stack":[{"function":"main.burn","file":"/src/main.go","line":51,"pc":4719038},{"function":"main.main.func1","file":"/src/main.go","line":80,"pc":4719390,"inlined":true}],"resource":{"service.name":"cpuwork"}}"#;

    #[test]
    fn round_trips() {
        let s = CpuSample::from_json_line(LINE).expect("valid");
        assert_eq!(s.stack.len(), 2);
        assert!(s.stack[1].inlined && !s.stack[0].inlined);
        assert_eq!(s.attribute_str("http.route"), Some("/burn"));
        assert_eq!(serde_json::to_string(&s).expect("ser"), LINE);
    }

    #[test]
    fn rejects_other_types_and_unknown_fields() {
        let other = LINE.replace("\"cpu_sample\"", "\"lost\"");
        assert!(CpuSample::from_json_line(&other).is_err());
        let unknown = LINE.replace("\"stack\"", "\"stck\"");
        assert!(CpuSample::from_json_line(&unknown).is_err());
        let spanless = r#"{"type":"cpu_sample","time_unix_nano":1,"cpu_nanos":2}"#;
        let s = CpuSample::from_json_line(spanless).expect("a sample in no span");
        assert!(s.span_id.is_none() && s.stack.is_empty());
    }
}
