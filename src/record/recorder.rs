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
//! of its own, or none, as its family says). The families of `event`
//! probes attached to a process (the stream's `target` line lists them)
//! may add attributes to each span of that process, from the events of
//! theirs it encloses or their absence.
//!
//! A server span without the caller's trace context may have been caused
//! by a client span of the same recording (a program calling itself, or
//! another traced process): [`links`] holds it a moment and makes that
//! client span its parent when exactly one fits.
//!
//! A `sample` event (a CPU sample) waits the same way and is labelled with
//! the innermost span that encloses it and that span's local root; one
//! that nothing encloses is written without a span ([`crate::sample`]).

use std::collections::HashMap;

mod links;
mod waiting;

use links::{Links, Resolved};
use waiting::{Claimed, Pending, PendingRef};

use crate::catalog::{Catalog, CatalogError, Role};
use crate::clock::WallOffset;
use crate::probes::family::{EventParts, RecordingError, SpanParts};
use crate::probes::{self, Family};
use crate::sample::CpuSample;
use crate::span::{AttrValue, Attributes, Event, Span, SpanId, SpanKind, TraceId};
use crate::stream::{Line, RawEvent, TargetInfo};
use crate::tracecontext::{new_span_id, new_trace_id};

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
    /// Server spans made children of the client span that caused them.
    pub linked: u64,
    /// Server spans more than one client span could have caused (not linked).
    pub ambiguous_links: u64,
    /// CPU samples written, and of them those in a span.
    pub samples: u64,
    pub samples_in_spans: u64,
}

/// A span, the spans nested in it and the CPU samples taken in it.
struct Node {
    span: Span,
    children: Vec<Node>,
    samples: Vec<samples::Waiting>,
}

/// What waits for an enclosing span.
enum Item {
    /// A `client` span, with what it encloses.
    Span(Node),
    /// A span event of `probe`, and the span it becomes when nothing
    /// encloses it (none: it is then not written).
    Event {
        probe: String,
        event: Event,
        alone: Option<Span>,
    },
    /// A CPU sample.
    Sample(samples::Waiting),
}

/// Stateful converter from stream lines to spans.
pub struct Recorder {
    /// Catalog probe name -> its role and family.
    roles: HashMap<String, (Role, &'static dyn Family)>,
    /// The families of `event` probes, each with its probes, in catalog order.
    event_families: Vec<(&'static dyn Family, Vec<String>)>,
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
    links: Links,
    /// Of `pending`, how many are CPU samples (bounded on their own).
    samples_waiting: usize,
    stacks: samples::Stacks,
    /// Sample records completed, for [`Recorder::take_samples`].
    samples_out: Vec<CpuSample>,
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
        let mut event_families: Vec<(&'static dyn Family, Vec<String>)> = Vec::new();
        for p in catalog.probes.iter().filter(|p| p.role == Role::Event) {
            let Some(f) = probes::family(&p.family) else {
                continue;
            };
            match event_families
                .iter_mut()
                .find(|(g, _)| g.name() == f.name())
            {
                Some((_, names)) => names.push(p.name.clone()),
                None => event_families.push((f, vec![p.name.clone()])),
            }
        }
        Recorder {
            roles,
            event_families,
            offset: None,
            targets: HashMap::new(),
            default_target: None,
            parents: HashMap::new(),
            pending: HashMap::new(),
            index: HashMap::new(),
            next_id: 0,
            newest_ns: 0,
            events_since_expire: 0,
            links: Links::default(),
            samples_waiting: 0,
            stacks: samples::Stacks::default(),
            samples_out: Vec::new(),
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
            Line::Tick { monotonic_ns } => {
                self.newest_ns = self.newest_ns.max(monotonic_ns);
                self.release(Some(self.newest_ns), out);
            }
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
            Role::Sample => {
                self.note_parent(&ev);
                let parts = family.sample(&ev)?;
                let waiting = samples::Waiting {
                    time_unix_nano: self.wall(parts.time_ns),
                    cpu_nanos: parts.cpu_nanos,
                    attributes: parts.attributes,
                    stack: self.stacks.intern(parts.stack),
                    resource: self.resource(ev.pid),
                };
                self.samples_waiting += 1;
                self.wait(&ev, Item::Sample(waiting));
            }
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
                let alone = lone.map(|l| self.span_of(l, ev.pid, vec![event.clone()]));
                let probe = ev.probe.clone();
                self.wait(
                    &ev,
                    Item::Event {
                        probe,
                        event,
                        alone,
                    },
                );
            }
            Role::Client | Role::Server => {
                if role == Role::Client {
                    self.note_parent(&ev);
                }
                let Claimed {
                    probes,
                    events,
                    spans: children,
                    samples,
                } = self.claim(&ev);
                let mut parts = family.span(&ev, &events)?;
                self.annotate(&ev, &mut parts, &probes, &events);
                let (incoming, connection) = (parts.incoming, parts.connection);
                let (start, end) = (parts.start_ns, parts.end_ns);
                let span = self.span_of(parts, ev.pid, events);
                let node = |span| Node {
                    span,
                    children,
                    samples,
                };
                if role == Role::Client {
                    if let Some(c) = &connection {
                        self.links.add_client(span.span_id, c, start, end);
                    }
                    self.wait(&ev, Item::Span(node(span)));
                } else if let Some(c) = connection.filter(|c| c.peer.is_some()) {
                    // Held a moment: the client span that caused it may be
                    // in this recording too (see links).
                    self.links.hold(node(span), c, incoming, start, end);
                } else {
                    self.resolved(Resolved::AsItCame(node(span), incoming), out);
                }
            }
        }
        self.events_since_expire += 1;
        if self.events_since_expire >= 1024 || self.over_bounds() {
            self.events_since_expire = 0;
            self.expire(out);
        }
        self.release(Some(self.newest_ns), out);
        Ok(())
    }

    /// Sample records completed since the last call, in no particular order.
    pub fn take_samples(&mut self) -> Vec<CpuSample> {
        std::mem::take(&mut self.samples_out)
    }

    /// Write the held server spans whose wait for a client is over by
    /// `now_ns` (all of them with `None`).
    fn release(&mut self, now_ns: Option<u64>, out: &mut Vec<Span>) {
        for r in self.links.due(now_ns) {
            self.resolved(r, out);
        }
        self.stats.linked = self.links.linked;
        self.stats.ambiguous_links = self.links.ambiguous;
    }

    /// Write a server span as linking decided.
    fn resolved(&mut self, r: Resolved, out: &mut Vec<Span>) {
        match r {
            // The caller's trace context came with the request: it wins.
            Resolved::AsItCame(mut node, Some(t)) => {
                node.span.parent_span_id = Some(t.parent_id);
                node.span.trace_flags = Some(t.flags);
                self.emit(node, t.trace_id, None, out);
            }
            Resolved::AsItCame(node, None) => self.emit(node, new_trace_id(), None, out),
            Resolved::Under {
                mut node,
                parent,
                trace,
            } => {
                node.span.parent_span_id = Some(parent);
                self.emit(node, trace, None, out);
            }
        }
    }

    /// Let the families of the `event` probes attached to `ev`'s process
    /// add what they know to its span, from their events in it (`events`,
    /// of `probes`) or their absence.
    fn annotate(&self, ev: &RawEvent, parts: &mut SpanParts, probes: &[String], events: &[Event]) {
        let Some(attached) = self
            .targets
            .get(&ev.pid)
            .or(self.default_target.as_ref())
            .map(|t| &t.probes)
        else {
            return;
        };
        for (family, names) in &self.event_families {
            if !names.iter().any(|n| attached.contains(n)) {
                continue;
            }
            let mine: Vec<Event> = probes
                .iter()
                .zip(events)
                .filter(|(p, _)| names.contains(p))
                .map(|(_, e)| e.clone())
                .collect();
            for (k, v) in family.enclosing_attributes(&ev.probe, parts, &mine) {
                parts.attributes.entry(k).or_insert(v);
            }
        }
    }

    /// End of stream: everything still waiting becomes a root.
    pub fn finish(&mut self, out: &mut Vec<Span>) {
        // Every client span there will be is in: decide the held server
        // spans (those matched to a pending client go out with it).
        self.release(None, out);
        let mut rest: Vec<Pending> = self.pending.drain().map(|(_, p)| p).collect();
        self.index.clear();
        rest.sort_by_key(|p| p.start_ns);
        for p in rest {
            self.root(p.item, out);
        }
        for r in self.links.leftovers() {
            self.resolved(r, out);
        }
        self.stats.linked = self.links.linked;
    }

    /// A pending item nothing encloses, written in a trace of its own (a
    /// CPU sample: without a span).
    fn root(&mut self, item: Item, out: &mut Vec<Span>) {
        match item {
            Item::Span(node) => self.emit(node, new_trace_id(), None, out),
            Item::Event {
                alone: Some(alone), ..
            } => self.emit(
                Node {
                    span: alone,
                    children: Vec::new(),
                    samples: Vec::new(),
                },
                new_trace_id(),
                None,
                out,
            ),
            // Its family does not write it outside a span.
            Item::Event { alone: None, .. } => {}
            Item::Sample(s) => {
                self.samples_waiting -= 1;
                self.stats.samples += 1;
                self.samples_out.push(s.record(None));
            }
        }
    }

    /// Write a span and, after it, the spans nested in it (each a child of
    /// its enclosing span), all in `trace`, and the CPU samples taken in
    /// them. `root`: the local root of the tree (`None`: this span is it).
    fn emit(
        &mut self,
        node: Node,
        trace: TraceId,
        root: Option<&samples::Named>,
        out: &mut Vec<Span>,
    ) {
        let Node {
            mut span,
            mut children,
            samples,
        } = node;
        span.trace_id = trace;
        let id: SpanId = span.span_id;
        let me = samples::Named::of(&span);
        let root = root.cloned().unwrap_or_else(|| me.clone());
        for s in samples {
            let label = samples::Label {
                trace,
                span: &me,
                root: &root,
            };
            self.stats.samples += 1;
            self.stats.samples_in_spans += 1;
            self.samples_out.push(s.record(Some(&label)));
        }
        self.push(span, out);
        // Server spans this (client) span caused, waiting for its trace.
        let (caused, elsewhere) = self.links.written(id, trace);
        children.extend(caused);
        children.sort_by_key(|c| c.span.start_time_unix_nano);
        for mut c in children {
            c.span.parent_span_id = Some(id);
            self.emit(c, trace, Some(&root), out);
        }
        for r in elsewhere {
            self.resolved(r, out);
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

mod samples;
#[cfg(test)]
mod tests;
