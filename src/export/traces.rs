//! Grouping spans by trace with bounded memory, and the span tree of one
//! trace: parents, root-to-span stacks, and self time.
//!
//! `goprobe record` writes a span when it ends, so the spans of one trace
//! arrive close together (children before their parent) but interleaved
//! with other traces. [`TraceGrouper`] keeps a trace open until no span of it
//! has been seen for `window` spans, then hands it out whole. A span whose
//! parent never arrived (recording started mid-request, or the parent came
//! after its trace was handed out) is treated as a root.

use std::collections::{HashMap, VecDeque};

use crate::span::{Span, SpanId, TraceId};

/// Default idle window, in spans, after which an untouched trace is complete.
pub const DEFAULT_WINDOW: u64 = 100_000;

/// What grouping and the span tree need to know of a span: a converter
/// groups whatever it keeps of each span (the whole [`Span`], or a few
/// numbers when that is all it needs, which bounds its memory far lower).
pub trait TreeNode {
    fn trace_id(&self) -> TraceId;
    fn span_id(&self) -> SpanId;
    fn parent_span_id(&self) -> Option<SpanId>;
    fn start_time_unix_nano(&self) -> u64;
    fn end_time_unix_nano(&self) -> u64;
}

impl TreeNode for Span {
    fn trace_id(&self) -> TraceId {
        self.trace_id
    }
    fn span_id(&self) -> SpanId {
        self.span_id
    }
    fn parent_span_id(&self) -> Option<SpanId> {
        self.parent_span_id
    }
    fn start_time_unix_nano(&self) -> u64 {
        self.start_time_unix_nano
    }
    fn end_time_unix_nano(&self) -> u64 {
        self.end_time_unix_nano
    }
}

/// Collects spans into traces; see the module docs.
pub struct TraceGrouper<T = Span> {
    window: u64,
    seq: u64,
    open: HashMap<TraceId, Pending<T>>,
    touches: VecDeque<(u64, TraceId)>,
    buffered: u64,
    peak: u64,
}

struct Pending<T> {
    last: u64,
    spans: Vec<T>,
}

impl<T: TreeNode> TraceGrouper<T> {
    pub fn new(window: u64) -> Self {
        TraceGrouper {
            window: window.max(1),
            seq: 0,
            open: HashMap::new(),
            touches: VecDeque::new(),
            buffered: 0,
            peak: 0,
        }
    }

    /// The most spans held at once so far.
    pub fn peak_buffered(&self) -> u64 {
        self.peak
    }

    /// Add a span; traces that went idle are passed to `done`.
    pub fn push<E>(
        &mut self,
        span: T,
        done: &mut impl FnMut(Trace<T>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.seq += 1;
        let seq = self.seq;
        let id = span.trace_id();
        let pending = self.open.entry(id).or_insert_with(|| Pending {
            last: seq,
            spans: Vec::new(),
        });
        pending.last = seq;
        pending.spans.push(span);
        self.touches.push_back((seq, id));
        self.buffered += 1;
        self.peak = self.peak.max(self.buffered);
        while let Some(&(touched, id)) = self.touches.front() {
            if touched + self.window > seq {
                break;
            }
            self.touches.pop_front();
            // Only the trace's latest touch decides; older entries are stale.
            if self.open.get(&id).is_some_and(|p| p.last == touched)
                && let Some(p) = self.open.remove(&id)
            {
                self.buffered -= p.spans.len() as u64;
                done(Trace::new(p.spans))?;
            }
        }
        Ok(())
    }

    /// Hand out every trace still open, oldest first.
    pub fn finish<E>(mut self, done: &mut impl FnMut(Trace<T>) -> Result<(), E>) -> Result<(), E> {
        let mut rest: Vec<Pending<T>> = self.open.drain().map(|(_, p)| p).collect();
        rest.sort_by_key(|p| p.last);
        for p in rest {
            done(Trace::new(p.spans))?;
        }
        Ok(())
    }
}

/// The spans of one trace (as far as they were seen) and their tree.
pub struct Trace<T = Span> {
    pub spans: Vec<T>,
    /// Index of each span's parent within `spans`, `None` for roots (including
    /// spans whose parent is missing or that sit on a parent cycle).
    pub parents: Vec<Option<usize>>,
}

impl<T: TreeNode> Trace<T> {
    pub fn new(spans: Vec<T>) -> Trace<T> {
        let index: HashMap<_, _> = spans
            .iter()
            .enumerate()
            .map(|(i, s)| (s.span_id(), i))
            .collect();
        let mut parents: Vec<Option<usize>> = spans
            .iter()
            .enumerate()
            .map(|(i, s)| {
                s.parent_span_id()
                    .and_then(|p| index.get(&p).copied())
                    .filter(|&p| p != i)
            })
            .collect();
        // Malformed input can make parents form a cycle; a walk longer than
        // the trace proves one, and the span that closes it becomes a root.
        for i in 0..spans.len() {
            let mut at = i;
            let mut steps = 0;
            while let Some(p) = parents.get(at).copied().flatten() {
                steps += 1;
                if steps > spans.len() {
                    parents[at] = None;
                    break;
                }
                at = p;
            }
        }
        Trace { spans, parents }
    }

    /// Span indices from the root down to span `i`.
    pub fn stack(&self, i: usize) -> Vec<usize> {
        let mut out = Vec::new();
        self.stack_into(i, &mut out);
        out
    }

    /// [`Trace::stack`] into a buffer the caller reuses.
    pub fn stack_into(&self, i: usize, out: &mut Vec<usize>) {
        out.clear();
        out.push(i);
        let mut at = i;
        while let Some(p) = self.parents.get(at).copied().flatten() {
            out.push(p);
            at = p;
        }
        out.reverse();
    }

    /// Each span's self time: its duration minus the part of it covered by
    /// its children (the union of their intervals clipped to the span, so
    /// children running in parallel are not subtracted twice).
    pub fn self_times(&self) -> Vec<u64> {
        // Every child's interval, sorted by parent and then by time, so each
        // parent's children are one run.
        let mut kids: Vec<(usize, u64, u64)> = self
            .parents
            .iter()
            .zip(&self.spans)
            .filter_map(|(parent, s)| {
                parent.map(|p| (p, s.start_time_unix_nano(), s.end_time_unix_nano()))
            })
            .collect();
        kids.sort_unstable();
        let mut covered = vec![0u64; self.spans.len()];
        let mut run = kids.as_slice();
        while let Some(&(parent, _, _)) = run.first() {
            let len = run.iter().take_while(|k| k.0 == parent).count();
            let (these, rest) = run.split_at(len);
            run = rest;
            let Some(span) = self.spans.get(parent) else {
                continue;
            };
            let (lo, hi) = (span.start_time_unix_nano(), span.end_time_unix_nano());
            let mut total = 0u64;
            let mut cursor = lo;
            for &(_, s, e) in these {
                let (s, e) = (s.max(cursor), e.min(hi));
                if e > s {
                    total += e - s;
                    cursor = e;
                }
            }
            covered[parent] = total;
        }
        self.spans
            .iter()
            .zip(covered)
            .map(|(span, covered)| {
                span.end_time_unix_nano()
                    .saturating_sub(span.start_time_unix_nano())
                    .saturating_sub(covered)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::reader::tests::line;

    fn span(trace: u8, id: u8, parent: Option<u8>, name: &str, start: u64, end: u64) -> Span {
        Span::from_json_line(&line(trace, id, parent, name, start, end)).expect("valid")
    }

    #[test]
    fn stacks_self_times_and_missing_parents() {
        let t = Trace::new(vec![
            span(1, 2, Some(1), "child-a", 10, 40),
            span(1, 3, Some(1), "child-b", 30, 60), // overlaps child-a
            span(1, 1, None, "root", 0, 100),
            span(1, 4, Some(9), "orphan", 5, 7),
        ]);
        assert_eq!(t.parents, vec![Some(2), Some(2), None, None]);
        assert_eq!(t.stack(1), vec![2, 1]);
        assert_eq!(t.stack(3), vec![3]);
        assert_eq!(t.self_times(), vec![30, 30, 50, 2]);
    }

    #[test]
    fn parent_cycles_are_broken() {
        let t = Trace::new(vec![
            span(1, 1, Some(2), "a", 0, 10),
            span(1, 2, Some(1), "b", 0, 10),
        ]);
        assert!(t.parents.iter().any(Option::is_none));
        assert!(t.stack(0).len() <= 2 && t.stack(1).len() <= 2);
    }

    #[test]
    fn idle_traces_are_flushed_within_the_window() {
        let mut g = TraceGrouper::new(2);
        let mut out = Vec::new();
        let mut done = |t: Trace| -> Result<(), ()> {
            out.push(t.spans.len());
            Ok(())
        };
        for (trace, id) in [(1, 1), (1, 2), (2, 1), (3, 1), (3, 2), (3, 3)] {
            g.push(span(trace, id, None, "x", 0, 1), &mut done)
                .expect("push");
        }
        assert_eq!(g.peak_buffered(), 4);
        g.finish(&mut done).expect("finish");
        assert_eq!(out, vec![2, 1, 3]);
    }
}
