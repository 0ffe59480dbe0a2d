//! The `http_phases` family (catalog probes `http.phases` and
//! `http.exchange`): the phases of an outgoing call that opens a new
//! connection, as events on the span that encloses them, the HTTP client
//! span above all (one span with events, not a span per phase):
//!
//! | event | when | attributes |
//! | --- | --- | --- |
//! | `dns.start`, `dns.end` | `net.(*Resolver).lookupIPAddr` | `dns.question.name`; at the end `goprobe.dns.answer_count`, `error.type` |
//! | `connect.start`, `connect.end` | `net.(*sysDialer).dialTCP`, per address tried | `network.peer.address`, `network.peer.port`, `network.type`, `network.transport`; at the end `error.type` |
//! | `tls.start`, `tls.end` | `crypto/tls.(*Conn).clientHandshake` | at the end `tls.protocol.name`, `tls.protocol.version`, `error.type` |
//! | `request_sent` | the first request on a new HTTP/1 connection is written | `error.type` |
//! | `first_byte` | its response's first byte is in | |
//!
//! An HTTP client span of a process these probes are attached to gets
//! `goprobe.http.connection.reused`: `false` when it encloses any of these
//! events, `true` when it encloses none but got a response (the call used
//! a pooled connection; net/http's own `httptrace.GotConnInfo.Reused` says
//! the same of a connection another call dialed). The semantic conventions
//! have no attribute for it, hence goprobe's namespace.
//!
//! Stream fields: `phase` (`dns`, `connect`, `tls`, `request_sent`,
//! `first_byte`), `end` (the record ends its phase; then `start_ns` is the
//! phase's start), `host` (`host_len` when cut short), `answers`, `peer`,
//! `peer_port`, `tls_version` (the wire value, `0x0304` for TLS 1.3),
//! `error`, `error_type` (the error's Go type), `read_failed`.

use std::mem::size_of;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use super::family::{Decode, EventParts, Family, RecordingError, SpanParts, is_false};
use crate::bpf::abi::{self, Plain, str_and_len};
use crate::span::{AttrValue, Attributes, Event};
use crate::stream::RawEvent;

pub struct HttpPhases;

pub static FAMILY: HttpPhases = HttpPhases;

/// DNS, connect and TLS: hooks that run only when a connection is opened.
const PHASES: &str = "http.phases";
/// request_sent and first_byte: hooks on every HTTP/1 request.
const EXCHANGE: &str = "http.exchange";

/// The span probe whose spans say whether their connection was reused.
const HTTP_CLIENT: &str = "http.client";

pub const REUSED: &str = "goprobe.http.connection.reused";

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/http_phases.bpf.o"));

pub const PHASE_DNS: u32 = 1;
pub const PHASE_CONNECT: u32 = 2;
pub const PHASE_TLS: u32 = 3;
pub const PHASE_REQUEST_SENT: u32 = 4;
pub const PHASE_FIRST_BYTE: u32 = 5;

/// `GP_FLAG_END`: the record ends its phase.
pub const FLAG_END: u32 = 1 << 8;

pub const HOST_MAX: usize = 128;
pub const ADDR_MAX: usize = 16;

/// `struct gp_phase_event`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct PhaseEvent {
    pub pid: u32,
    pub tid: u32,
    pub flags: u32,
    pub phase: u32,
    pub goid: u64,
    pub g: u64,
    pub parent_goid: u64,
    pub start_ns: u64,
    pub end_ns: u64,
    pub err_type: u64,
    pub obj: u64,
    pub answers: i64,
    pub port: i64,
    pub tls_version: u32,
    pub host_len: u32,
    pub addr_len: u32,
    pub _pad0: u32,
    pub host: [u8; HOST_MAX],
    pub addr: [u8; ADDR_MAX],
}
const _: () = assert!(size_of::<PhaseEvent>() == 248);

// SAFETY: repr(C), integers and byte arrays only, no implicit padding (size
// checked above), so every bit pattern is valid.
unsafe impl Plain for PhaseEvent {}

/// Which phase a record is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Dns,
    Connect,
    Tls,
    RequestSent,
    FirstByte,
}

impl Phase {
    fn from_c(v: u32) -> Option<Phase> {
        Some(match v {
            PHASE_DNS => Phase::Dns,
            PHASE_CONNECT => Phase::Connect,
            PHASE_TLS => Phase::Tls,
            PHASE_REQUEST_SENT => Phase::RequestSent,
            PHASE_FIRST_BYTE => Phase::FirstByte,
            _ => return None,
        })
    }

    /// The probe whose hook records it.
    fn probe(self) -> &'static str {
        match self {
            Phase::Dns | Phase::Connect | Phase::Tls => PHASES,
            Phase::RequestSent | Phase::FirstByte => EXCHANGE,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Phase::Dns => "dns",
            Phase::Connect => "connect",
            Phase::Tls => "tls",
            Phase::RequestSent => "request_sent",
            Phase::FirstByte => "first_byte",
        }
    }

    /// Phases with a duration get a start and an end event; the others are instants.
    fn has_duration(self) -> bool {
        matches!(self, Phase::Dns | Phase::Connect | Phase::Tls)
    }
}

/// The stream fields of an `http.phases` or `http.exchange` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fields {
    pub phase: Phase,
    #[serde(default, skip_serializing_if = "is_false")]
    pub end: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_len: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answers: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_port: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_version: Option<u32>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub error: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub read_failed: bool,
}

/// A `net.IP`'s bytes as text: 4 bytes, or 16 (IPv4 ones usually in their
/// v4-mapped form, which Go prints dotted too); `None` for other lengths.
pub fn ip_text(bytes: &[u8]) -> Option<IpAddr> {
    if let Ok(b) = <[u8; 4]>::try_from(bytes) {
        return Some(IpAddr::V4(Ipv4Addr::from(b)));
    }
    let v6 = Ipv6Addr::from(<[u8; 16]>::try_from(bytes).ok()?);
    Some(v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4))
}

/// An IP address (IPv6 with an optional `%zone`), which net's resolver
/// returns without a lookup.
pub fn is_address_literal(host: &str) -> bool {
    let addr = host.split('%').next().unwrap_or(host);
    addr.parse::<IpAddr>().is_ok()
}

/// `tls.protocol.version` of a TLS wire version (`tls.VersionTLS13` = 0x0304).
pub fn tls_version_name(v: u32) -> Option<&'static str> {
    Some(match v {
        0x0301 => "1.0",
        0x0302 => "1.1",
        0x0303 => "1.2",
        0x0304 => "1.3",
        _ => return None,
    })
}

impl Family for HttpPhases {
    fn name(&self) -> &'static str {
        "http_phases"
    }

    fn probes(&self) -> &'static [&'static str] {
        &[PHASES, EXCHANGE]
    }

    fn object(&self) -> &'static [u8] {
        OBJECT
    }

    fn decode(&self, record: &[u8], ctx: &mut Decode<'_>) -> Option<RawEvent> {
        let ev = PhaseEvent::read(record)?;
        let phase = Phase::from_c(ev.phase)?;
        let end = ev.flags & FLAG_END != 0;
        let mut f = Fields {
            phase,
            end,
            host: None,
            host_len: None,
            answers: None,
            peer: None,
            peer_port: None,
            tls_version: None,
            error: ev.flags & abi::FLAG_ERROR != 0,
            error_type: None,
            read_failed: ev.flags & abi::FLAG_READ_FAILED != 0,
        };
        match phase {
            Phase::Dns => {
                (f.host, f.host_len) = str_and_len(&ev.host, ev.host_len);
                // lookupIPAddr also "resolves" address literals: no DNS phase.
                if f.host.as_deref().is_some_and(is_address_literal) {
                    return None;
                }
                f.answers = (end && !f.error).then_some(ev.answers);
            }
            Phase::Connect => {
                let n = (ev.addr_len as usize).min(ADDR_MAX);
                f.peer = ev.addr.get(..n).and_then(ip_text).map(|ip| ip.to_string());
                f.peer_port = (1..=65535).contains(&ev.port).then_some(ev.port);
            }
            Phase::Tls => f.tls_version = (end && ev.tls_version != 0).then_some(ev.tls_version),
            Phase::RequestSent | Phase::FirstByte => {}
        }
        if f.error {
            f.error_type = ctx.symbols.type_name(ev.pid, ev.err_type).map(|t| t.name);
        }
        Some(
            RawEvent {
                probe: phase.probe().to_owned(),
                pid: ev.pid,
                tid: ev.tid,
                goroutine: ev.goid,
                start_ns: ev.start_ns,
                end_ns: ev.end_ns.max(ev.start_ns),
                fields: RawEvent::fields_from(&f),
            }
            .with_parent_goroutine(ev.parent_goid),
        )
    }

    fn event(&self, ev: &RawEvent) -> Result<EventParts, RecordingError> {
        let f: Fields = ev.fields_as()?;
        let mut a = Attributes::new();
        if let Some(h) = &f.host {
            a.insert("dns.question.name".into(), h.as_str().into());
        }
        if let Some(n) = f.answers {
            a.insert("goprobe.dns.answer_count".into(), AttrValue::Int(n));
        }
        if let Some(p) = &f.peer {
            a.insert("network.peer.address".into(), p.as_str().into());
            a.insert("network.transport".into(), "tcp".into());
            let v4 = p.parse::<IpAddr>().is_ok_and(|ip| ip.is_ipv4());
            a.insert(
                "network.type".into(),
                if v4 { "ipv4" } else { "ipv6" }.into(),
            );
        }
        if let Some(port) = f.peer_port {
            a.insert("network.peer.port".into(), AttrValue::Int(port));
        }
        if let Some(v) = f.tls_version {
            a.insert("tls.protocol.name".into(), "tls".into());
            if let Some(name) = tls_version_name(v) {
                a.insert("tls.protocol.version".into(), name.into());
            }
        }
        if f.error {
            // The Go type of the error (`*net.OpError`); `_OTHER` when it
            // could not be named.
            let t = f.error_type.unwrap_or_else(|| "_OTHER".to_owned());
            a.insert("error.type".into(), t.into());
        }
        let (name, time_ns) = match (f.phase.has_duration(), f.end) {
            (true, false) => (format!("{}.start", f.phase.name()), ev.start_ns),
            (true, true) => (format!("{}.end", f.phase.name()), ev.end_ns),
            (false, _) => (f.phase.name().to_owned(), ev.end_ns),
        };
        Ok(EventParts {
            name,
            time_ns,
            attributes: a,
        })
    }

    /// A phase of a connection no traced call opened (a pool refill, a
    /// background client) is not written.
    fn lone_event_span(&self, _ev: &EventParts) -> Option<SpanParts> {
        None
    }

    fn enclosing_attributes(
        &self,
        span_probe: &str,
        span: &SpanParts,
        mine: &[Event],
    ) -> Attributes {
        let mut a = Attributes::new();
        if span_probe != HTTP_CLIENT {
            return a;
        }
        if !mine.is_empty() {
            a.insert(REUSED.into(), AttrValue::Bool(false));
        } else if span.attributes.contains_key("http.response.status_code") {
            // A response came back over a connection this call did not
            // open. Without a response it may never have had one.
            a.insert(REUSED.into(), AttrValue::Bool(true));
        }
        a
    }
}

#[cfg(test)]
mod tests;
