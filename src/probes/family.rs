//! The contract between goprobe and a probe family: what a family provides
//! to `attach` (its eBPF object, its hooks' switches and configuration, the
//! decoding of its ring-buffer records into typed stream fields) and to
//! `record` (its spans or span events, built from those fields). The
//! catalog says which probes a family serves and what role their events
//! play; [`super::FAMILIES`] lists the families.

use std::collections::BTreeMap;

use crate::bpf::{self, abi::MODES};
use crate::span::{Attributes, Event, SpanKind, Status};
use crate::stream::{FieldsError, RawEvent};
use crate::tracecontext::TraceParent;

use super::symbols::Symbols;

/// A probe family: one module under `src/probes/`, one eBPF object
/// (`ebpf/probes/<name>.bpf.c`), and the catalog probes naming it.
///
/// The record-side methods each serve one catalog role; a family implements
/// those of its probes' roles (the others report [`RecordingError::Role`]).
pub trait Family: Sync {
    /// The family's name: its module, its C file, the catalog's `family`.
    fn name(&self) -> &'static str;

    /// The catalog probes whose events this family decodes and records.
    fn probes(&self) -> &'static [&'static str];

    /// The compiled eBPF object, 8-byte aligned (`aya::include_bytes_aligned!`).
    fn object(&self) -> &'static [u8];

    /// The `GP_HOOK_*` bit of a catalog hook `flags` spelling, for this
    /// family's programs; `None` for a spelling it does not know.
    fn hook_flag(&self, _flag: &str) -> Option<u32> {
        None
    }

    /// The family's switches (`gp_config.mode`) for this target, and notes on
    /// what it will not report there (e.g. fields whose offsets are unknown).
    fn configure(&self, _target: &ConfigInput<'_>) -> Configured {
        Configured::default()
    }

    /// One ring-buffer record of the family's object as a stream event;
    /// `None` for a record too short to be one.
    fn decode(&self, record: &[u8], ctx: &mut Decode<'_>) -> Option<RawEvent>;

    /// At the end of a session: calls still in flight in processes that are
    /// `gone` (say, the requests a crash killed), ended at `now_ns`. Most
    /// families have none to report.
    fn unfinished(
        &self,
        _object: &bpf::Object,
        _ctx: &mut Decode<'_>,
        _now_ns: u64,
        _gone: &dyn Fn(u32) -> bool,
    ) -> Result<Vec<RawEvent>, bpf::BpfError> {
        Ok(Vec::new())
    }

    /// Role `server` or `client`: the span of one event; `nested` are the
    /// events of the probes nested in it (role `event`), in time order.
    fn span(&self, ev: &RawEvent, _nested: &[Event]) -> Result<SpanParts, RecordingError> {
        Err(RecordingError::role(self.name(), ev, "span"))
    }

    /// Role `event`: the span event one event becomes.
    fn event(&self, ev: &RawEvent) -> Result<EventParts, RecordingError> {
        Err(RecordingError::role(self.name(), ev, "span event"))
    }

    /// Role `event`: the span an event gets when no span encloses it; by
    /// default an internal span named after the event, at its time (the
    /// recorder adds the event itself). `None`: such an event is not
    /// written (it only means something on the span it belongs to, e.g.
    /// a phase of a connection no traced call opened).
    fn lone_event_span(&self, ev: &EventParts) -> Option<SpanParts> {
        Some(SpanParts {
            name: ev.name.clone(),
            kind: SpanKind::Internal,
            start_ns: ev.time_ns,
            end_ns: ev.time_ns,
            attributes: Attributes::new(),
            status: Status::default(),
            incoming: None,
            connection: None,
        })
    }

    /// Role `event`: attributes this family gives a span its events could
    /// nest in, from the events of this family the span does enclose
    /// (`mine`, in time order; often none). The recorder asks for every
    /// `server` or `client` span (`span_probe` is its probe) of a process
    /// the stream says this family's probes were attached to, so that the
    /// absence of events can mean something too: an HTTP call that opened
    /// no connection reused one. The span's own attributes win a clash.
    fn enclosing_attributes(
        &self,
        _span_probe: &str,
        _span: &SpanParts,
        _mine: &[Event],
    ) -> Attributes {
        Attributes::new()
    }

    /// Role `internal` (goroutine creation): the goroutine that created the
    /// event's goroutine.
    fn spawned_by(&self, ev: &RawEvent) -> Result<u64, RecordingError> {
        Err(RecordingError::role(self.name(), ev, "goroutine creation"))
    }

    /// Role `sample`: the CPU sample one event is (the recorder labels it
    /// with the span its goroutine was serving).
    fn sample(&self, ev: &RawEvent) -> Result<SampleParts, RecordingError> {
        Err(RecordingError::role(self.name(), ev, "CPU sample"))
    }
}

/// What a family's configuration is computed from.
pub struct ConfigInput<'a> {
    /// Known field offsets of the target (unknown fields are absent).
    pub offsets: &'a BTreeMap<String, u64>,
    /// Sizes of those fields, where known (a pointer or an embedded struct?).
    pub sizes: &'a BTreeMap<String, u64>,
    /// Sizes of the structs those fields belong to (`PKG.Type`), where known
    /// (the stride of a slice of them).
    pub type_sizes: &'a BTreeMap<String, u64>,
    /// The target binary.
    pub binary: &'a crate::gobin::GoBinary,
}

/// A family's switches and what it will not report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Configured {
    pub modes: [u32; MODES],
    pub notes: Vec<String>,
}

/// A hook of the family, by its index (the uprobe cookie).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookInfo {
    /// The function, as pclntab names it.
    pub function: String,
    /// The catalog's fixed operation name (database/sql COMMIT, ROLLBACK).
    pub operation: Option<String>,
}

/// What a family's decoder may ask while decoding: its hooks and the
/// traced binary's types.
pub struct Decode<'a> {
    pub hooks: &'a [HookInfo],
    pub symbols: &'a mut Symbols,
}

impl Decode<'_> {
    pub fn hook(&self, index: u32) -> Option<&HookInfo> {
        self.hooks.get(usize::try_from(index).ok()?)
    }
}

/// A span as a family builds it; the recorder gives it ids, a trace, a
/// parent, wall-clock times, events and the resource.
#[derive(Debug, Clone, PartialEq)]
pub struct SpanParts {
    pub name: String,
    pub kind: SpanKind,
    /// CLOCK_MONOTONIC, as in the stream.
    pub start_ns: u64,
    pub end_ns: u64,
    pub attributes: Attributes,
    pub status: Status,
    /// Role `server`: the caller's trace context, when the request carried one.
    pub incoming: Option<TraceParent>,
    /// Role `server` or `client`: the connection the call went over, so the
    /// recorder can make a client span the parent of the server span it
    /// caused when one recording sees both ends.
    pub connection: Option<Connection>,
}

/// A call's connection, as one end saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connection {
    /// This end: the client's local address, or the server's.
    pub local: Option<std::net::SocketAddr>,
    /// The other end.
    pub peer: Option<std::net::SocketAddr>,
    /// The HTTP/2 stream the call used, when known (gRPC): calls
    /// multiplexed on one connection are told apart by it.
    pub stream: Option<u32>,
}

/// A span event as a family builds it (the recorder makes the time wall-clock).
#[derive(Debug, Clone, PartialEq)]
pub struct EventParts {
    pub name: String,
    /// CLOCK_MONOTONIC.
    pub time_ns: u64,
    pub attributes: Attributes,
}

/// A CPU sample as a family builds it; the recorder gives it its span,
/// a wall-clock time and the resource.
#[derive(Debug, Clone, PartialEq)]
pub struct SampleParts {
    /// CLOCK_MONOTONIC.
    pub time_ns: u64,
    /// The CPU time it stands for.
    pub cpu_nanos: u64,
    /// `goroutine.id`, `goroutine.state`, `thread.id`, `cpu.id`.
    pub attributes: Attributes,
    /// Innermost frame first.
    pub stack: Vec<crate::sample::StackFrame>,
}

/// Why an event could not be recorded.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error(transparent)]
    Fields(#[from] FieldsError),
    #[error("{probe} event: family {family} makes no {what} (its catalog role says it should)")]
    Role {
        probe: String,
        family: &'static str,
        what: &'static str,
    },
}

impl RecordingError {
    fn role(family: &'static str, ev: &RawEvent, what: &'static str) -> RecordingError {
        RecordingError::Role {
            probe: ev.probe.clone(),
            family,
            what,
        }
    }
}

/// For typed stream fields: `skip_serializing_if` of flags that are only
/// written when set.
pub fn is_false(b: &bool) -> bool {
    !*b
}
