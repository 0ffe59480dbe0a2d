//! CPU samples in the recorder: while they wait for the span that encloses
//! them (like span events, by goroutine and time), their stacks are shared
//! (a busy loop is sampled with the same stack over and over), and their
//! number is bounded on its own, so a high sampling rate never pushes span
//! events out early.

use std::collections::HashSet;
use std::sync::Arc;

use crate::sample::{CpuSample, SampleTag, StackFrame};
use crate::span::{AttrValue, Attributes, Span, SpanId, TraceId};

/// Samples waiting for an enclosing span, at most; past it the oldest are
/// written without one.
pub(super) const SAMPLES_MAX: usize = 500_000;
/// Distinct stacks kept for sharing before the set starts over.
const STACKS_MAX: usize = 100_000;

/// A sample waiting for its span.
#[derive(Debug, Clone)]
pub(super) struct Waiting {
    pub time_unix_nano: u64,
    pub cpu_nanos: u64,
    pub attributes: Attributes,
    pub stack: Arc<[StackFrame]>,
    pub resource: Attributes,
}

/// Shares equal stacks.
#[derive(Default)]
pub(super) struct Stacks {
    set: HashSet<Arc<[StackFrame]>>,
}

impl Stacks {
    pub fn intern(&mut self, stack: Vec<StackFrame>) -> Arc<[StackFrame]> {
        if let Some(s) = self.set.get(stack.as_slice()) {
            return s.clone();
        }
        if self.set.len() >= STACKS_MAX {
            self.set.clear();
        }
        let s: Arc<[StackFrame]> = stack.into();
        self.set.insert(s.clone());
        s
    }
}

/// A span as samples name it: id, name, and `http.route`.
#[derive(Debug, Clone)]
pub(super) struct Named {
    pub id: SpanId,
    pub name: String,
    pub route: Option<String>,
}

impl Named {
    pub fn of(span: &Span) -> Named {
        Named {
            id: span.span_id,
            name: span.name.clone(),
            route: match span.attributes.get("http.route") {
                Some(AttrValue::String(r)) => Some(r.clone()),
                _ => None,
            },
        }
    }
}

/// The span a sample ran in, and the local root of that span's tree.
pub(super) struct Label<'a> {
    pub trace: TraceId,
    pub span: &'a Named,
    pub root: &'a Named,
}

impl Waiting {
    /// The sample record, in `label`'s span (none: it ran in no span).
    pub fn record(self, label: Option<&Label<'_>>) -> CpuSample {
        let mut attributes = self.attributes;
        let mut s = CpuSample {
            tag: SampleTag::CpuSample,
            time_unix_nano: self.time_unix_nano,
            cpu_nanos: self.cpu_nanos,
            trace_id: None,
            span_id: None,
            span_name: None,
            local_root_span_id: None,
            local_root_span_name: None,
            attributes: Attributes::new(),
            stack: self.stack.to_vec(),
            resource: self.resource,
        };
        if let Some(l) = label {
            s.trace_id = Some(l.trace);
            s.span_id = Some(l.span.id);
            s.span_name = Some(l.span.name.clone());
            s.local_root_span_id = Some(l.root.id);
            s.local_root_span_name = Some(l.root.name.clone());
            if let Some(route) = &l.root.route {
                attributes.insert("http.route".into(), route.clone().into());
            }
        }
        s.attributes = attributes;
        s
    }
}
