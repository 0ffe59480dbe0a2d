//! The span record: goprobe's NDJSON span schema, written by `goprobe record`
//! and read by `goprobe convert`.
//!
//! One JSON object per line:
//!
//! ```text
//! {"trace_id":"<32 hex>","span_id":"<16 hex>","parent_span_id":"<16 hex>" (absent for roots),
//!  "name":"GET /users/{id}","kind":"server"|"client"|"internal"|"producer"|"consumer",
//!  "start_time_unix_nano":N,"end_time_unix_nano":N,
//!  "attributes":{"http.request.method":"GET",...},
//!  "status":{"code":"unset"|"ok"|"error","message":"..." (optional)},
//!  "events":[{"name":"exception","time_unix_nano":N,"attributes":{...}}],
//!  "resource":{"service.name":"...","process.pid":N,...}}
//! ```
//!
//! Attribute values are JSON strings, integers (i64), floats, booleans, or
//! arrays of those. Times are wall-clock nanoseconds since the Unix epoch.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A span as one NDJSON line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Span {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_span_id: Option<SpanId>,
    pub name: String,
    pub kind: SpanKind,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    #[serde(default)]
    pub attributes: Attributes,
    #[serde(default)]
    pub status: Status,
    #[serde(default)]
    pub events: Vec<Event>,
    #[serde(default)]
    pub resource: Attributes,
    /// W3C trace flags (bit 0: sampled) a server span received in an
    /// incoming `traceparent`, kept as the caller sent them; its parent is
    /// then the remote caller. Absent on every other span.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_flags: Option<u8>,
}

/// Attributes keyed by OpenTelemetry semantic-convention names, sorted so
/// output is deterministic.
pub type Attributes = BTreeMap<String, AttrValue>;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum AttrValue {
    Bool(bool),
    Int(i64),
    Double(f64),
    String(String),
    Array(Vec<AttrValue>),
}

/// Deserialized by JSON type directly: serde's `untagged` would try each
/// variant in turn and build (then drop) an error message for every miss,
/// which dominated the cost of reading spans.
impl<'de> Deserialize<'de> for AttrValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = AttrValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, integer, float, boolean or array of those")
            }
            fn visit_bool<E>(self, v: bool) -> Result<AttrValue, E> {
                Ok(AttrValue::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<AttrValue, E> {
                Ok(AttrValue::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<AttrValue, E> {
                // Beyond i64 an integer cannot be an OTLP intValue: keep it as a double.
                Ok(i64::try_from(v).map_or(AttrValue::Double(v as f64), AttrValue::Int))
            }
            fn visit_f64<E>(self, v: f64) -> Result<AttrValue, E> {
                Ok(AttrValue::Double(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<AttrValue, E> {
                Ok(AttrValue::String(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> Result<AttrValue, E> {
                Ok(AttrValue::String(v))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<AttrValue, A::Error> {
                let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(AttrValue::Array(items))
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl From<&str> for AttrValue {
    fn from(s: &str) -> Self {
        AttrValue::String(s.to_owned())
    }
}
impl From<String> for AttrValue {
    fn from(s: String) -> Self {
        AttrValue::String(s)
    }
}
impl From<i64> for AttrValue {
    fn from(n: i64) -> Self {
        AttrValue::Int(n)
    }
}
impl From<bool> for AttrValue {
    fn from(b: bool) -> Self {
        AttrValue::Bool(b)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SpanKind {
    Internal,
    Server,
    Client,
    Producer,
    Consumer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusCode {
    #[default]
    Unset,
    Ok,
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Status {
    pub code: StatusCode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    pub name: String,
    pub time_unix_nano: u64,
    #[serde(default)]
    pub attributes: Attributes,
}

/// Hex digit values by byte; 0xff for bytes that are not hex digits.
const HEX_VALUE: [u8; 256] = {
    let mut table = [0xff; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        table[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// `N` bytes from `2 * N` hex digits (a table lookup per digit:
/// `u8::from_str_radix` per pair was a measurable part of reading spans).
fn decode_hex<const N: usize>(s: &str, what: &str) -> Result<[u8; N], String> {
    if s.len() != 2 * N {
        return Err(format!("{what} must be {} hex digits, got {s:?}", 2 * N));
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(s.as_bytes().chunks_exact(2)) {
        let (hi, lo) = (
            HEX_VALUE[usize::from(pair[0])],
            HEX_VALUE[usize::from(pair[1])],
        );
        if (hi | lo) & 0xf0 != 0 {
            return Err(format!("{what} is not hex: {s:?}"));
        }
        *byte = (hi << 4) | lo;
    }
    if out.iter().all(|&b| b == 0) {
        return Err(format!("{what} is all zeros"));
    }
    Ok(out)
}

/// Lowercase hex of `bytes` into `out` (which holds two digits per byte).
fn encode_hex<'a>(bytes: &[u8], out: &'a mut [u8]) -> &'a str {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for (pair, &b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 15)];
    }
    // Only ASCII digits were written.
    std::str::from_utf8(out).unwrap_or_default()
}

/// A fixed-size id written as lowercase hex; all-zero ids are invalid (as in W3C trace context).
macro_rules! hex_id {
    ($name:ident, $len:expr, $what:expr) => {
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            pub fn from_hex(s: &str) -> Result<Self, String> {
                decode_hex::<$len>(s, $what).map($name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut buf = [0u8; 2 * $len];
                f.write_str(encode_hex(&self.0, &mut buf))
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                // A visitor rather than a `Cow<str>`, which serde always
                // deserializes as an owned copy.
                struct Hex;
                impl serde::de::Visitor<'_> for Hex {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str("a string")
                    }
                    fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<$name, E> {
                        $name::from_hex(s).map_err(E::custom)
                    }
                }
                d.deserialize_str(Hex)
            }
        }
    };
}

hex_id!(TraceId, 16, "trace_id");
hex_id!(SpanId, 8, "span_id");

/// Why a span line was rejected.
#[derive(Debug, thiserror::Error)]
pub enum SpanError {
    #[error("invalid span JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("end_time_unix_nano {end} is before start_time_unix_nano {start}")]
    EndBeforeStart { start: u64, end: u64 },
}

impl Span {
    /// Parse and validate one NDJSON line.
    pub fn from_json_line(line: &str) -> Result<Span, SpanError> {
        let span: Span = serde_json::from_str(line)?;
        if span.end_time_unix_nano < span.start_time_unix_nano {
            return Err(SpanError::EndBeforeStart {
                start: span.start_time_unix_nano,
                end: span.end_time_unix_nano,
            });
        }
        Ok(span)
    }

    pub fn duration_nanos(&self) -> u64 {
        self.end_time_unix_nano - self.start_time_unix_nano
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINE: &str = r#"{"trace_id":"0af7651916cd43dd8448eb211c80319c","span_id":"b7ad6b7169203331","parent_span_id":"00f067aa0ba902b7","name":"GET /users/{id}","kind":"server","start_time_unix_nano":1700000000000000000,"end_time_unix_nano":1700000000005000000,"attributes":{"http.request.method":"GET","http.response.status_code":200,"sampled":true,"ratio":0.5},"status":{"code":"unset"},"events":[],"resource":{"service.name":"hello","process.pid":42}}"#;

    #[test]
    fn round_trips() {
        let span = Span::from_json_line(LINE).expect("valid");
        assert_eq!(span.kind, SpanKind::Server);
        assert_eq!(
            span.attributes["http.response.status_code"],
            AttrValue::Int(200)
        );
        assert_eq!(span.attributes["ratio"], AttrValue::Double(0.5));
        assert_eq!(span.duration_nanos(), 5_000_000);
        let again = serde_json::to_string(&span).expect("serialize");
        assert_eq!(Span::from_json_line(&again).expect("reparse"), span);
    }

    #[test]
    fn rejects_bad_ids_and_times() {
        let short = LINE.replace("0af7651916cd43dd8448eb211c80319c", "0af7");
        assert!(
            Span::from_json_line(&short)
                .unwrap_err()
                .to_string()
                .contains("trace_id must be 32 hex digits")
        );
        // Same length in bytes, but not hex digits (one of them not even
        // ASCII, which must not split a character) or with a sign.
        for bad in ["b7ad6b71692033\u{e9}", "+7ad6b7169203331"] {
            let line = LINE.replace("b7ad6b7169203331", bad);
            assert!(
                Span::from_json_line(&line)
                    .unwrap_err()
                    .to_string()
                    .contains("span_id is not hex"),
                "{bad}"
            );
        }
        let zero = LINE.replace("b7ad6b7169203331", "0000000000000000");
        assert!(
            Span::from_json_line(&zero)
                .unwrap_err()
                .to_string()
                .contains("all zeros")
        );
        let backwards = LINE.replace("1700000000005000000", "1");
        assert!(matches!(
            Span::from_json_line(&backwards),
            Err(SpanError::EndBeforeStart { .. })
        ));
        let unknown = LINE.replace("\"events\"", "\"evnts\"");
        assert!(Span::from_json_line(&unknown).is_err());
    }

    #[test]
    fn attribute_values_by_json_type() {
        let attrs: Attributes = serde_json::from_str(
            r#"{"b":true,"i":-3,"u":18446744073709551615,"f":1.5,"s":"x","a":[1,"y",false],"n":[]}"#,
        )
        .expect("valid attributes");
        assert_eq!(attrs["b"], AttrValue::Bool(true));
        assert_eq!(attrs["i"], AttrValue::Int(-3));
        assert_eq!(attrs["u"], AttrValue::Double(18446744073709551615.0));
        assert_eq!(attrs["f"], AttrValue::Double(1.5));
        assert_eq!(attrs["s"], AttrValue::from("x"));
        assert_eq!(
            attrs["a"],
            AttrValue::Array(vec![
                AttrValue::Int(1),
                AttrValue::from("y"),
                AttrValue::Bool(false)
            ])
        );
        assert_eq!(attrs["n"], AttrValue::Array(vec![]));
        assert!(
            serde_json::from_str::<Attributes>(r#"{"o":{"k":1}}"#).is_err(),
            "objects are not attribute values"
        );
        assert!(
            serde_json::from_str::<Attributes>(r#"{"z":null}"#).is_err(),
            "null is not an attribute value"
        );
    }

    #[test]
    fn root_has_no_parent_field() {
        let root = LINE.replace(r#""parent_span_id":"00f067aa0ba902b7","#, "");
        let span = Span::from_json_line(&root).expect("valid");
        assert!(span.parent_span_id.is_none());
        assert!(
            !serde_json::to_string(&span)
                .expect("ser")
                .contains("parent_span_id")
        );
    }
}
