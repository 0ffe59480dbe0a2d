//! Linking a client span to the server span it caused, when one recording
//! sees both ends of a call (one process calling itself, or several traced
//! processes), without writing anything into either: by what both ends
//! read from their own connection structs.
//!
//! A server span that knows its peer's address is held for
//! [`LINK_WAIT_NS`] after it ends (stream time: events and `tick` lines), so
//! the client span that caused it has time to arrive, in whichever order
//! the two came. Then it is matched against the client spans seen: the
//! client's local address equals the server's peer address (and the
//! client's peer the server's local address, and the HTTP/2 stream ids,
//! where both ends know them), and the server span starts inside the client
//! span. Exactly one match makes the client span its parent, in the
//! client's trace (the server span waits for the client span's trace when
//! that is not decided yet); none leaves it as it came (a root, or under
//! the caller its `traceparent` names); several link nothing and are
//! counted.
//!
//! A server span that came with a `traceparent` is linked too, when the
//! client span that caused it is in the same trace: a proxy that is not
//! instrumented (Caddy's or net/http/httputil's reverse proxy) forwards the
//! header it received as it is, so the header names the proxy's own caller
//! and the upstream's span would otherwise become the proxy's sibling. The
//! client span goprobe saw make the call is the nearer, true parent. In
//! another trace (a caller that started a trace of its own), the header
//! wins.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use super::Node;
use crate::probes::family::Connection;
use crate::span::{SpanId, TraceId};
use crate::tracecontext::TraceParent;

/// How long (monotonic ns, after it ended) a server span waits for the
/// client span that caused it. The client usually ends microseconds after
/// the server, and attach writes every completed call within about 150 ms.
pub const LINK_WAIT_NS: u64 = 1_000_000_000;

/// Client spans are remembered this long after they end: a server span
/// that outlives its client (a streamed response the client stopped
/// waiting for) still finds it.
const CLIENT_KEEP_NS: u64 = 30_000_000_000;

/// A client span, as a server span's candidate parent.
struct ClientRec {
    start_ns: u64,
    end_ns: u64,
    peer: Option<SocketAddr>,
    stream: Option<u32>,
    /// Set once the span is written (its trace is decided then).
    trace: Option<TraceId>,
}

/// A server span waiting for its client.
struct Held {
    node: Node,
    conn: Connection,
    /// The trace context its request carried.
    incoming: Option<TraceParent>,
    start_ns: u64,
}

/// A server span matched to a client span not written yet.
struct Awaiting {
    node: Node,
    incoming: Option<TraceParent>,
}

/// What to do with a server span whose wait is over.
pub enum Resolved {
    /// Write it as it came: a root in a trace of its own, or under the
    /// caller its request's trace context names.
    AsItCame(Node, Option<TraceParent>),
    /// Write it now under `parent`, in `trace`.
    Under {
        node: Node,
        parent: SpanId,
        trace: TraceId,
    },
}

/// The client spans of one local address (one connection), by end: a
/// keep-alive connection carries thousands in the time they are kept, and
/// a server span can only be caused by one that ends after it starts and
/// starts before it does, so it looks at those alone.
#[derive(Default)]
struct OnConnection {
    /// (end, id), in end order.
    by_end: Vec<(u64, SpanId)>,
    /// The longest client span seen on it: one ending later than a server
    /// span's start by more than this started after it.
    longest_ns: u64,
}

impl OnConnection {
    fn insert(&mut self, end_ns: u64, duration_ns: u64, id: SpanId) {
        // Spans come nearly in end order: the place is found from the back.
        let at = self.by_end.len()
            - self
                .by_end
                .iter()
                .rev()
                .take_while(|(e, _)| *e > end_ns)
                .count();
        self.by_end.insert(at, (end_ns, id));
        self.longest_ns = self.longest_ns.max(duration_ns);
    }

    /// The ids of the client spans that can enclose an instant `at_ns`.
    fn around(&self, at_ns: u64) -> impl Iterator<Item = SpanId> + '_ {
        let first = self.by_end.partition_point(|(e, _)| *e < at_ns);
        let last = at_ns.saturating_add(self.longest_ns);
        self.by_end[first..]
            .iter()
            .take_while(move |(e, _)| *e <= last)
            .map(|(_, id)| *id)
    }
}

#[derive(Default)]
pub struct Links {
    clients: HashMap<SpanId, ClientRec>,
    /// Client spans by their local address.
    by_local: HashMap<SocketAddr, OnConnection>,
    /// By (end, arrival): the ones due first come first, so deciding them
    /// touches only those (this runs after every event).
    held: BTreeMap<(u64, u64), Held>,
    held_seq: u64,
    /// Server spans matched to a client span not written yet.
    awaiting: HashMap<SpanId, Vec<Awaiting>>,
    /// Server spans given a client parent.
    pub linked: u64,
    /// Server spans more than one client span could have caused: not linked.
    pub ambiguous: u64,
}

impl Links {
    /// Remember client span `id` (not written yet) as a candidate parent.
    pub fn add_client(&mut self, id: SpanId, conn: &Connection, start_ns: u64, end_ns: u64) {
        let Some(local) = conn.local else { return };
        self.clients.insert(
            id,
            ClientRec {
                start_ns,
                end_ns,
                peer: conn.peer,
                stream: conn.stream,
                trace: None,
            },
        );
        self.by_local
            .entry(local)
            .or_default()
            .insert(end_ns, end_ns.saturating_sub(start_ns), id);
    }

    /// Span `id` was written in `trace`: if it is a client span, the server
    /// spans matched to it: those to be written under it in `trace`, and
    /// those whose request's trace context names another trace (written as
    /// they came).
    pub fn written(&mut self, id: SpanId, trace: TraceId) -> (Vec<Node>, Vec<Resolved>) {
        if let Some(c) = self.clients.get_mut(&id) {
            c.trace = Some(trace);
        }
        let mut under = Vec::new();
        let mut other = Vec::new();
        for a in self.awaiting.remove(&id).unwrap_or_default() {
            if names_another_trace(a.incoming, trace) {
                other.push(Resolved::AsItCame(a.node, a.incoming));
            } else {
                self.linked += 1;
                under.push(a.node);
            }
        }
        (under, other)
    }

    /// Hold server span `node`, whose request came with trace context
    /// `incoming` or none, to link it.
    pub fn hold(
        &mut self,
        node: Node,
        conn: Connection,
        incoming: Option<TraceParent>,
        start_ns: u64,
        end_ns: u64,
    ) {
        self.held_seq += 1;
        self.held.insert(
            (end_ns, self.held_seq),
            Held {
                node,
                conn,
                incoming,
                start_ns,
            },
        );
    }

    /// The held server spans whose wait is over by `now_ns` (all of them
    /// with `None`: the stream ended), decided, oldest first.
    pub fn due(&mut self, now_ns: Option<u64>) -> Vec<Resolved> {
        let mut due: Vec<Held> = Vec::new();
        while let Some(entry) = self.held.first_entry() {
            let end = entry.key().0;
            if now_ns.is_some_and(|n| end.saturating_add(LINK_WAIT_NS) > n) {
                break;
            }
            due.push(entry.remove());
        }
        if due.is_empty() {
            return Vec::new();
        }
        due.sort_by_key(|h| h.start_ns);
        let mut out = Vec::new();
        for h in due {
            let candidates = self.candidates(&h);
            match candidates.as_slice() {
                [] => out.push(Resolved::AsItCame(h.node, h.incoming)),
                [id] => match self.clients.get(id).and_then(|c| c.trace) {
                    Some(trace) if names_another_trace(h.incoming, trace) => {
                        out.push(Resolved::AsItCame(h.node, h.incoming));
                    }
                    Some(trace) => {
                        self.linked += 1;
                        out.push(Resolved::Under {
                            node: h.node,
                            parent: *id,
                            trace,
                        });
                    }
                    // Counted once written under it (see `written`).
                    None => {
                        self.awaiting.entry(*id).or_default().push(Awaiting {
                            node: h.node,
                            incoming: h.incoming,
                        });
                    }
                },
                _ => {
                    self.ambiguous += 1;
                    out.push(Resolved::AsItCame(h.node, h.incoming));
                }
            }
        }
        out
    }

    /// The client spans that could have caused held server span `h`.
    fn candidates(&self, h: &Held) -> Vec<SpanId> {
        let Some(peer) = h.conn.peer else {
            return Vec::new();
        };
        let Some(on) = self.by_local.get(&peer) else {
            return Vec::new();
        };
        on.around(h.start_ns)
            .filter(|id| {
                self.clients
                    .get(id)
                    .is_some_and(|c| matches(c, &h.conn, h.start_ns))
            })
            .collect()
    }

    /// Forget client spans that ended before `horizon_ns` less the keep
    /// time. Server spans still waiting for one of them (never written: a
    /// bug elsewhere) are handed back to be written as they came.
    pub fn prune(&mut self, newest_ns: u64) -> Vec<Resolved> {
        let horizon = newest_ns.saturating_sub(CLIENT_KEEP_NS);
        let old: Vec<SpanId> = self
            .clients
            .iter()
            .filter(|(_, c)| c.end_ns < horizon)
            .map(|(id, _)| *id)
            .collect();
        let mut orphans = Vec::new();
        for id in &old {
            self.clients.remove(id);
            orphans.extend(self.unawait(id));
        }
        let clients = &self.clients;
        self.by_local.retain(|_, on| {
            on.by_end.retain(|(_, id)| clients.contains_key(id));
            !on.by_end.is_empty()
        });
        orphans
    }

    /// End of stream, after every pending span was written: what still
    /// waits for a client span that never came, to be written as it came.
    pub fn leftovers(&mut self) -> Vec<Resolved> {
        let ids: Vec<SpanId> = self.awaiting.keys().copied().collect();
        ids.iter().flat_map(|id| self.unawait(id)).collect()
    }

    /// The server spans waiting for client span `id`, not to be linked.
    fn unawait(&mut self, id: &SpanId) -> Vec<Resolved> {
        let waiting = self.awaiting.remove(id).unwrap_or_default();
        waiting
            .into_iter()
            .map(|a| Resolved::AsItCame(a.node, a.incoming))
            .collect()
    }
}

/// Whether a request's trace context names another trace than `trace`
/// (its caller's own): then the header, not the client span, is the parent.
fn names_another_trace(incoming: Option<TraceParent>, trace: TraceId) -> bool {
    incoming.is_some_and(|t| t.trace_id != trace)
}

/// Could client `c` have caused the server span on `conn` starting at
/// `start_ns`? Same connection seen from both ends, same stream where both
/// know it, and the server span starts inside the client span (strictly
/// after it: a cause precedes its effect).
fn matches(c: &ClientRec, conn: &Connection, start_ns: u64) -> bool {
    if let (Some(cp), Some(sl)) = (c.peer, conn.local)
        && cp != sl
    {
        return false;
    }
    if let (Some(a), Some(b)) = (c.stream, conn.stream)
        && a != b
    {
        return false;
    }
    c.start_ns < start_ns && start_ns <= c.end_ns
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(local: &str, peer: &str, stream: Option<u32>) -> Connection {
        Connection {
            local: local.parse().ok(),
            peer: peer.parse().ok(),
            stream,
        }
    }

    /// `around` never misses a span that encloses the instant (checked
    /// against every span, on calls in sequence, overlapping, and out of
    /// end order), and on a connection of short calls in sequence it looks
    /// at a few, not at all of them.
    #[test]
    fn clients_around_an_instant() {
        let id = |n: u32| {
            let mut b = [0u8; 8];
            b[..4].copy_from_slice(&n.to_le_bytes());
            SpanId(b)
        };
        let mut spans: Vec<(u32, u64, u64)> = (0..1000u32)
            .map(|n| (n, 100 * u64::from(n), 100 * u64::from(n) + 90))
            .collect();
        // A long call overlapping many, and two ending out of order.
        spans.push((5000, 3_000, 60_000));
        spans.push((5001, 70_010, 70_095));
        spans.push((5002, 70_000, 70_099));
        let mut on = OnConnection::default();
        for &(n, start, end) in &spans {
            on.insert(end, end - start, id(n));
        }
        assert!(
            on.by_end.windows(2).all(|w| w[0].0 <= w[1].0),
            "in end order"
        );
        for t in (0..101_000).step_by(37) {
            let got: Vec<SpanId> = on.around(t).collect();
            for &(n, start, end) in &spans {
                if start < t && t <= end {
                    assert!(got.contains(&id(n)), "{n} ({start}-{end}) encloses {t}");
                }
            }
        }
        let mut short = OnConnection::default();
        for &(n, start, end) in &spans[..1000] {
            short.insert(end, end - start, id(n));
        }
        assert!(short.around(50_050).count() <= 2);
    }

    #[test]
    fn matching_rules() {
        let c = ClientRec {
            start_ns: 10,
            end_ns: 20,
            peer: "127.0.0.1:80".parse().ok(),
            stream: Some(3),
            trace: None,
        };
        let server = conn("127.0.0.1:80", "127.0.0.1:5000", Some(3));
        assert!(matches(&c, &server, 11));
        assert!(matches(&c, &server, 20));
        assert!(!matches(&c, &server, 10), "not before the client started");
        assert!(!matches(&c, &server, 21), "not after it ended");
        assert!(!matches(
            &c,
            &conn("127.0.0.1:81", "127.0.0.1:5000", Some(3)),
            11
        ));
        assert!(!matches(
            &c,
            &conn("127.0.0.1:80", "127.0.0.1:5000", Some(5)),
            11
        ));
        // Unknown on one side: not a reason to refuse.
        assert!(matches(&c, &conn("", "127.0.0.1:5000", None), 11));
    }
}
