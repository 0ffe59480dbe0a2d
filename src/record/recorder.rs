//! Nesting events into spans by their probes' catalog roles, at any depth.
//!
//! A `server` event becomes a span that opens a scope: in the caller's trace
//! when the request carried a W3C `traceparent`, else in a new trace. A
//! `client` or `event` event on the same goroutine of the same process (or
//! on a goroutine it started: the event's `parent_goroutine`, read from
//! `runtime.g.parentGoid` since Go 1.21, and `internal` goroutine-creation
//! events for deeper lines and older Go),
//! inside an enclosing span's time, is nested in it: a client span becomes a
//! child span (and may itself enclose further client spans and events), an
//! event becomes a span event. Inner events arrive before their enclosing
//! one (the inner call returns first; attach's stream is in completion
//! order), so they wait in `pending` until it comes, or until the stream
//! ends, when the rest become roots (an event outside any span gets a span
//! of its own, as its family says).

use std::collections::HashMap;

use crate::catalog::{Catalog, CatalogError, Role};
use crate::clock::WallOffset;
use crate::probes::family::{EventParts, RecordingError, SpanParts};
use crate::probes::{self, Family};
use crate::span::{AttrValue, Attributes, Event, Span, SpanId, SpanKind, TraceId};
use crate::stream::{Line, RawEvent, TargetInfo};
use crate::tracecontext::{new_span_id, new_trace_id};

/// Pending events waiting longer than this (monotonic ns behind the newest
/// event) are given up on and written as roots, bounding memory.
const PENDING_HORIZON_NS: u64 = 120_000_000_000;
const PENDING_MAX: usize = 100_000;

/// How far up the goroutine family tree an event looks for its enclosing span.
const MAX_ANCESTORS: usize = 16;

/// Stands in for the trace id of a span not yet given its trace (set
/// before any span is written).
const NO_TRACE: TraceId = TraceId([0; 16]);

/// Counts for the summary line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecordStats {
    pub spans: u64,
    pub server: u64,
    /// Client spans: HTTP and database calls.
    pub client: u64,
    /// Of `client`, database calls (spans with `db.system.name`).
    pub db: u64,
    /// Every panic seen (`exception` events), recovered or not.
    pub panics: u64,
    /// Losses by reason, as the stream's `lost` lines counted them.
    pub lost: crate::loss::Losses,
}

/// A span and the spans nested in it.
struct Node {
    span: Span,
    children: Vec<Node>,
}

/// What waits for an enclosing span.
enum Item {
    /// A `client` span, with what it encloses.
    Span(Node),
    /// A span event, and the span it becomes when nothing encloses it.
    Event { event: Event, alone: Span },
}

struct Pending {
    start_ns: u64,
    end_ns: u64,
    item: Item,
}

/// A pending event's id, and when its goroutine line branched off the
/// indexed goroutine (None: it ran on that goroutine itself).
type PendingRef = (u64, Option<u64>);

/// Stateful converter from stream lines to spans.
pub struct Recorder {
    /// Catalog probe name -> its role and family.
    roles: HashMap<String, (Role, &'static dyn Family)>,
    offset: Option<i128>,
    targets: HashMap<u32, TargetInfo>,
    default_target: Option<TargetInfo>,
    /// (pid, child goroutine) -> (parent goroutine, creation time).
    parents: HashMap<(u32, u64), (u64, u64)>,
    pending: HashMap<u64, Pending>,
    /// (pid, goroutine) -> pending events that a span on that goroutine
    /// could enclose, with the time the event's goroutine line branched
    /// off it (None: the event ran on that goroutine itself).
    index: HashMap<(u32, u64), Vec<PendingRef>>,
    next_id: u64,
    newest_ns: u64,
    events_since_expire: u32,
    /// What spans leave out (secrets).
    pub policy: crate::redact::Policy,
    pub stats: RecordStats,
}

impl Recorder {
    /// A recorder for the built-in catalog's probes.
    pub fn new() -> Result<Recorder, CatalogError> {
        Ok(Recorder::with_catalog(Catalog::builtin()?))
    }

    pub fn with_catalog(catalog: &Catalog) -> Recorder {
        let roles = catalog
            .probes
            .iter()
            .filter_map(|p| Some((p.name.clone(), (p.role, probes::family(&p.family)?))))
            .collect();
        Recorder {
            roles,
            offset: None,
            targets: HashMap::new(),
            default_target: None,
            parents: HashMap::new(),
            pending: HashMap::new(),
            index: HashMap::new(),
            next_id: 0,
            newest_ns: 0,
            events_since_expire: 0,
            policy: crate::redact::Policy::default(),
            stats: RecordStats::default(),
        }
    }

    /// Feed one line; completed spans go to `out`. Events of probes the
    /// catalog does not know (a newer goprobe's) are ignored.
    pub fn line(&mut self, line: Line, out: &mut Vec<Span>) -> Result<(), RecordingError> {
        match line {
            Line::Target(t) => {
                if let Some(p) = t.pid {
                    self.targets.insert(p, t.clone());
                }
                if self.default_target.is_none() || t.pid.is_none() {
                    self.default_target = Some(TargetInfo { pid: None, ..t });
                }
            }
            Line::Clock {
                realtime_minus_monotonic_ns,
                ..
            } => self.offset = Some(i128::from(realtime_minus_monotonic_ns)),
            Line::Lost { reason, count, .. } => self.stats.lost.add(&reason, count),
            Line::Event(ev) => self.event(ev, out)?,
        }
        Ok(())
    }

    fn event(&mut self, ev: RawEvent, out: &mut Vec<Span>) -> Result<(), RecordingError> {
        self.newest_ns = self.newest_ns.max(ev.end_ns);
        let Some(&(role, family)) = self.roles.get(&ev.probe) else {
            return Ok(());
        };
        match role {
            Role::Internal => {
                let parent = family.spawned_by(&ev)?;
                self.parents
                    .insert((ev.pid, ev.goroutine), (parent, ev.start_ns));
            }
            Role::Event => {
                self.note_parent(&ev);
                let parts = family.event(&ev)?;
                if parts.name == "exception" {
                    self.stats.panics += 1;
                }
                let lone = family.lone_event_span(&parts);
                let event = self.event_of(parts);
                let alone = self.span_of(lone, ev.pid, vec![event.clone()]);
                self.wait(&ev, Item::Event { event, alone });
            }
            Role::Client | Role::Server => {
                if role == Role::Client {
                    self.note_parent(&ev);
                }
                let (events, children) = self.claim(&ev);
                let parts = family.span(&ev, &events)?;
                let incoming = parts.incoming;
                let mut span = self.span_of(parts, ev.pid, events);
                if role == Role::Client {
                    self.wait(&ev, Item::Span(Node { span, children }));
                } else {
                    let trace = incoming.map_or_else(new_trace_id, |t| t.trace_id);
                    if let Some(t) = incoming {
                        span.parent_span_id = Some(t.parent_id);
                        span.trace_flags = Some(t.flags);
                    }
                    self.emit(Node { span, children }, trace, out);
                }
            }
        }
        self.events_since_expire += 1;
        if self.events_since_expire >= 1024 || self.pending.len() > PENDING_MAX {
            self.events_since_expire = 0;
            self.expire(out);
        }
        Ok(())
    }

    /// An event that names the goroutine that started its own (Go 1.21+
    /// `runtime.g.parentGoid`) links the two like a goroutine-creation event,
    /// as created when the event started: a span on the parent encloses it
    /// when the event starts inside the span. A creation event seen before
    /// (go.spawn, with the real creation time) is kept.
    fn note_parent(&mut self, ev: &RawEvent) {
        if let Some(parent) = ev.parent_goroutine() {
            self.parents
                .entry((ev.pid, ev.goroutine))
                .or_insert((parent, ev.start_ns));
        }
    }

    /// Take the pending events `ev` encloses: on its goroutine inside its
    /// time, or on a goroutine that branched off it inside its time. Span
    /// events and spans, each in start order.
    fn claim(&mut self, ev: &RawEvent) -> (Vec<Event>, Vec<Node>) {
        let mut claimed: Vec<Pending> = Vec::new();
        if let Some(cands) = self.index.remove(&(ev.pid, ev.goroutine)) {
            let mut keep = Vec::new();
            for (id, branched) in cands {
                let Some(p) = self.pending.get(&id) else {
                    continue;
                };
                let inside = match branched {
                    None => p.start_ns >= ev.start_ns && p.end_ns <= ev.end_ns,
                    Some(ts) => ts >= ev.start_ns && ts <= ev.end_ns,
                };
                if inside {
                    if let Some(p) = self.pending.remove(&id) {
                        claimed.push(p);
                    }
                } else {
                    keep.push((id, branched));
                }
            }
            if !keep.is_empty() {
                self.index.insert((ev.pid, ev.goroutine), keep);
            }
        }
        claimed.sort_by_key(|p| p.start_ns);
        let mut events = Vec::new();
        let mut spans = Vec::new();
        for p in claimed {
            match p.item {
                Item::Event { event, .. } => events.push(event),
                Item::Span(node) => spans.push(node),
            }
        }
        (events, spans)
    }

    /// Keep `item` until a span encloses it: indexed under its goroutine
    /// and every ancestor.
    fn wait(&mut self, ev: &RawEvent, item: Item) {
        let id = self.next_id;
        self.next_id += 1;
        let mut g = ev.goroutine;
        let mut branched = None;
        for _ in 0..MAX_ANCESTORS {
            self.index
                .entry((ev.pid, g))
                .or_default()
                .push((id, branched));
            match self.parents.get(&(ev.pid, g)) {
                Some(&(parent, ts)) if parent != g => {
                    branched = Some(ts);
                    g = parent;
                }
                _ => break,
            }
        }
        self.pending.insert(
            id,
            Pending {
                start_ns: ev.start_ns,
                end_ns: ev.end_ns,
                item,
            },
        );
    }

    /// Write pending events that can no longer be enclosed as roots, and
    /// forget old goroutine creations.
    fn expire(&mut self, out: &mut Vec<Span>) {
        let horizon = self.newest_ns.saturating_sub(PENDING_HORIZON_NS);
        let force = self.pending.len() > PENDING_MAX;
        let ids: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| force || p.end_ns < horizon)
            .map(|(id, _)| *id)
            .collect();
        let mut old: Vec<Pending> = ids
            .iter()
            .filter_map(|id| self.pending.remove(id))
            .collect();
        let pending = &self.pending;
        self.index.retain(|_, v| {
            v.retain(|(id, _)| pending.contains_key(id));
            !v.is_empty()
        });
        self.parents.retain(|_, (_, ts)| *ts >= horizon);
        old.sort_by_key(|p| p.start_ns);
        for p in old {
            self.root(p.item, out);
        }
    }

    /// End of stream: everything still waiting becomes a root.
    pub fn finish(&mut self, out: &mut Vec<Span>) {
        let mut rest: Vec<Pending> = self.pending.drain().map(|(_, p)| p).collect();
        self.index.clear();
        rest.sort_by_key(|p| p.start_ns);
        for p in rest {
            self.root(p.item, out);
        }
    }

    /// A pending item nothing encloses, written in a trace of its own.
    fn root(&mut self, item: Item, out: &mut Vec<Span>) {
        match item {
            Item::Span(node) => self.emit(node, new_trace_id(), out),
            Item::Event { alone, .. } => self.emit(
                Node {
                    span: alone,
                    children: Vec::new(),
                },
                new_trace_id(),
                out,
            ),
        }
    }

    /// Write a span and, after it, the spans nested in it (each a child of
    /// its enclosing span), all in `trace`.
    fn emit(&mut self, node: Node, trace: TraceId, out: &mut Vec<Span>) {
        let Node {
            mut span,
            mut children,
        } = node;
        span.trace_id = trace;
        let id: SpanId = span.span_id;
        self.push(span, out);
        children.sort_by_key(|c| c.span.start_time_unix_nano);
        for mut c in children {
            c.span.parent_span_id = Some(id);
            self.emit(c, trace, out);
        }
    }

    fn push(&mut self, span: Span, out: &mut Vec<Span>) {
        self.stats.spans += 1;
        match span.kind {
            SpanKind::Server => self.stats.server += 1,
            SpanKind::Client => self.stats.client += 1,
            _ => {}
        }
        if span.attributes.contains_key("db.system.name") {
            self.stats.db += 1;
        }
        out.push(span);
    }

    fn span_of(&mut self, mut p: SpanParts, pid: u32, events: Vec<Event>) -> Span {
        crate::redact::scrub(&mut p.attributes, self.policy);
        Span {
            trace_id: NO_TRACE,
            span_id: new_span_id(),
            parent_span_id: None,
            name: p.name,
            kind: p.kind,
            start_time_unix_nano: self.wall(p.start_ns),
            end_time_unix_nano: self.wall(p.end_ns),
            attributes: p.attributes,
            status: p.status,
            events,
            resource: self.resource(pid),
            trace_flags: None,
        }
    }

    fn event_of(&mut self, p: EventParts) -> Event {
        Event {
            name: p.name,
            time_unix_nano: self.wall(p.time_ns),
            attributes: p.attributes,
        }
    }

    /// Wall-clock time of a CLOCK_MONOTONIC stamp, by the stream's clock line.
    pub fn wall_time(&mut self, mono: u64) -> u64 {
        self.wall(mono)
    }

    fn wall(&mut self, mono: u64) -> u64 {
        let off = *self
            .offset
            .get_or_insert_with(|| WallOffset::sample(16).realtime_minus_monotonic_ns);
        WallOffset {
            realtime_minus_monotonic_ns: off,
            uncertainty_ns: 0,
        }
        .to_unix_nanos(mono)
    }

    fn resource(&self, pid: u32) -> Attributes {
        let mut r = Attributes::new();
        let t = self.targets.get(&pid).or(self.default_target.as_ref());
        r.insert("process.pid".into(), AttrValue::Int(i64::from(pid)));
        if let Some(t) = t {
            r.insert("service.name".into(), t.service_name.clone().into());
            r.insert("process.executable.path".into(), t.path.clone().into());
            if !t.go_version.is_empty() {
                r.insert("process.runtime.name".into(), "go".into());
                r.insert(
                    "process.runtime.version".into(),
                    t.go_version.clone().into(),
                );
            }
        }
        r
    }
}

#[cfg(test)]
mod tests;
