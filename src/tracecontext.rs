//! W3C Trace Context: parsing an incoming `traceparent` header, and new
//! trace and span ids.

use crate::span::{SpanId, TraceId};

/// An incoming W3C trace context.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: TraceId,
    pub parent_id: SpanId,
    pub flags: u8,
}

/// Parse a `traceparent` header value (W3C Trace Context level 1):
/// `version-traceid-parentid-flags`, lowercase hex, all-zero ids invalid,
/// version `ff` invalid; a future version may append fields after the flags.
pub fn parse_traceparent(v: &str) -> Option<TraceParent> {
    let v = v.trim();
    let mut parts = v.split('-');
    let version = parts.next()?;
    let trace = parts.next()?;
    let parent = parts.next()?;
    let flags = parts.next()?;
    let hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if !hex(version, 2) || version == "ff" || !hex(trace, 32) || !hex(parent, 16) || !hex(flags, 2)
    {
        return None;
    }
    if version == "00" && parts.next().is_some() {
        return None;
    }
    let mut t = [0u8; 16];
    let mut p = [0u8; 8];
    for (i, b) in t.iter_mut().enumerate() {
        *b = u8::from_str_radix(trace.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    for (i, b) in p.iter_mut().enumerate() {
        *b = u8::from_str_radix(parent.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    if t.iter().all(|&b| b == 0) || p.iter().all(|&b| b == 0) {
        return None;
    }
    Some(TraceParent {
        trace_id: TraceId(t),
        parent_id: SpanId(p),
        flags: u8::from_str_radix(flags, 16).ok()?,
    })
}

/// A new random trace id.
pub fn new_trace_id() -> TraceId {
    TraceId(random_bytes())
}

/// A new random span id.
pub fn new_span_id() -> SpanId {
    SpanId(random_bytes())
}

/// Random, never all-zero ids (as W3C trace context requires).
fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    loop {
        // SAFETY: b is a valid writable buffer of N bytes.
        let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), N, 0) };
        if n == N as isize && b.iter().any(|&x| x != 0) {
            return b;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents() {
        let t = parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
            .expect("valid");
        assert_eq!(t.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(t.parent_id.to_string(), "00f067aa0ba902b7");
        assert_eq!(t.flags, 1);
        // A future version may add fields; version 00 may not.
        assert!(
            parse_traceparent("01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-x")
                .is_some()
        );
        for bad in [
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-zz-00f067aa0ba902b7-01",
            "",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
        }
        assert_ne!(new_span_id(), new_span_id());
    }
}
