//! Events waiting for the span that encloses them: indexed under their
//! goroutine and its ancestors, claimed by an enclosing span when it
//! arrives, given up on (written as roots) past a time horizon or a count
//! bound, so a recording's memory stays bounded however long it runs.

use super::{Item, Node, Recorder, samples};
use crate::span::{Event, Span};
use crate::stream::RawEvent;

/// Pending events waiting longer than this (monotonic ns behind the newest
/// event) are given up on and written as roots, bounding memory.
const PENDING_HORIZON_NS: u64 = 120_000_000_000;
const PENDING_MAX: usize = 100_000;

/// How far up the goroutine family tree an event looks for its enclosing span.
const MAX_ANCESTORS: usize = 16;

pub(super) struct Pending {
    pub start_ns: u64,
    pub end_ns: u64,
    pub item: Item,
}

/// A pending event's id, and when its goroutine line branched off the
/// indexed goroutine (None: it ran on that goroutine itself).
pub(super) type PendingRef = (u64, Option<u64>);

/// What an enclosing span takes from the waiting events: span events
/// (with the probe of each), child spans and CPU samples, each in start order.
pub(super) struct Claimed {
    pub probes: Vec<String>,
    pub events: Vec<Event>,
    pub spans: Vec<Node>,
    pub samples: Vec<samples::Waiting>,
}

impl Recorder {
    /// More waits than the bounds allow (span events and CPU samples, each).
    pub(super) fn over_bounds(&self) -> bool {
        self.pending.len() - self.samples_waiting > PENDING_MAX
            || self.samples_waiting > samples::SAMPLES_MAX
    }

    /// An event that names the goroutine that started its own (Go 1.21+
    /// `runtime.g.parentGoid`) links the two like a goroutine-creation event,
    /// as created when the event started: a span on the parent encloses it
    /// when the event starts inside the span. A creation event seen before
    /// (go.spawn, with the real creation time) is kept.
    pub(super) fn note_parent(&mut self, ev: &RawEvent) {
        if let Some(parent) = ev.parent_goroutine() {
            self.parents
                .entry((ev.pid, ev.goroutine))
                .or_insert((parent, ev.start_ns));
        }
    }

    /// Take the pending events `ev` encloses: on its goroutine inside its
    /// time, or on a goroutine that branched off it inside its time. Span
    /// events (with the probe of each), spans and CPU samples, each in
    /// start order.
    pub(super) fn claim(&mut self, ev: &RawEvent) -> Claimed {
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
        let mut probes = Vec::new();
        let mut events = Vec::new();
        let mut spans = Vec::new();
        let mut samples = Vec::new();
        for p in claimed {
            match p.item {
                Item::Event { probe, event, .. } => {
                    probes.push(probe);
                    events.push(event);
                }
                Item::Span(node) => spans.push(node),
                Item::Sample(s) => {
                    self.samples_waiting -= 1;
                    samples.push(s);
                }
            }
        }
        Claimed {
            probes,
            events,
            spans,
            samples,
        }
    }

    /// Keep `item` until a span encloses it: indexed under its goroutine
    /// and every ancestor.
    pub(super) fn wait(&mut self, ev: &RawEvent, item: Item) {
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
    /// forget old goroutine creations. Over a bound, every wait of that kind
    /// is given up (span events), or the older half (CPU samples).
    pub(super) fn expire(&mut self, out: &mut Vec<Span>) {
        let horizon = self.newest_ns.saturating_sub(PENDING_HORIZON_NS);
        let force = self.pending.len() - self.samples_waiting > PENDING_MAX;
        let sample_cut = if self.samples_waiting > samples::SAMPLES_MAX {
            let mut times: Vec<u64> = self
                .pending
                .values()
                .filter(|p| matches!(p.item, Item::Sample(_)))
                .map(|p| p.end_ns)
                .collect();
            let half = times.len() / 2;
            times.select_nth_unstable(half);
            times[half]
        } else {
            0
        };
        let ids: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| match p.item {
                Item::Sample(_) => p.end_ns < horizon.max(sample_cut),
                _ => force || p.end_ns < horizon,
            })
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
        for r in self.links.prune(self.newest_ns) {
            self.resolved(r, out);
        }
    }
}
