//! A span line read in place: the same schema and checks as
//! [`crate::span::Span`], but strings borrow from the line and attributes
//! are a sorted vector instead of a map, so reading a span allocates two or
//! three small vectors instead of one string and one tree node per key and
//! value. The streaming converters work on these; [`SpanView::to_span`]
//! gives the owned form.
//!
//! The schema must stay the one `goprobe record` writes: the tests build a
//! `Span` with every field set (so a new field fails to compile there until
//! it is added here too) and check that both readers agree on good and bad
//! lines.

use std::borrow::Cow;
use std::fmt;
use std::io;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};

use crate::span::{
    AttrValue, Attributes, Event, Span, SpanError, SpanId, SpanKind, Status, StatusCode, TraceId,
};

/// Write a string read from span JSON as a JSON string. Strings borrow from
/// the line only when their source text had no escape (and serde_json
/// refuses raw control characters), so a borrowed string is already what
/// escaping would give and is copied as it is; only the others are escaped.
#[allow(clippy::ptr_arg, reason = "whether the string borrows is what decides")]
pub fn write_json_string(out: &mut Vec<u8>, s: &Cow<'_, str>) -> io::Result<()> {
    match s {
        Cow::Borrowed(raw) => {
            out.reserve(raw.len() + 2);
            out.push(b'"');
            out.extend_from_slice(raw.as_bytes());
            out.push(b'"');
            Ok(())
        }
        Cow::Owned(text) => serde_json::to_writer(out, text).map_err(io::Error::from),
    }
}

/// One span line; field meanings as in [`Span`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpanView<'a> {
    pub trace_id: TraceId,
    pub span_id: SpanId,
    #[serde(default)]
    pub parent_span_id: Option<SpanId>,
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    pub kind: SpanKind,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    #[serde(default, borrow)]
    pub attributes: Attrs<'a>,
    #[serde(default, borrow)]
    pub status: StatusView<'a>,
    #[serde(default, borrow)]
    pub events: Vec<EventView<'a>>,
    #[serde(default, borrow)]
    pub resource: Attrs<'a>,
    #[serde(default)]
    pub trace_flags: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusView<'a> {
    pub code: StatusCode,
    #[serde(default, borrow)]
    pub message: Option<Cow<'a, str>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventView<'a> {
    #[serde(borrow)]
    pub name: Cow<'a, str>,
    pub time_unix_nano: u64,
    #[serde(default, borrow)]
    pub attributes: Attrs<'a>,
}

/// An attribute value, as [`AttrValue`].
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Bool(bool),
    Int(i64),
    Double(f64),
    String(Cow<'a, str>),
    Array(Vec<Value<'a>>),
}

/// Attributes sorted by key, each key once (the last value given wins, as
/// in the map [`Attributes`] is), so they iterate in the same order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Attrs<'a>(Vec<(Cow<'a, str>, Value<'a>)>);

impl<'a> Attrs<'a> {
    /// Keys and values in key order; keys keep whether they borrow (see
    /// [`write_json_string`]).
    pub fn iter(&self) -> impl Iterator<Item = (&Cow<'a, str>, &Value<'a>)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        self.0
            .binary_search_by(|(k, _)| k.as_ref().cmp(key))
            .ok()
            .map(|i| &self.0[i].1)
    }

    /// A string attribute's value.
    pub fn get_str(&self, key: &str) -> Option<&str> {
        match self.get(key) {
            Some(Value::String(s)) => Some(s),
            _ => None,
        }
    }

    /// Whether both hold the same keys and values, doubles compared bit for
    /// bit (so `0.0` and `-0.0` differ, as their JSON does).
    pub fn identical(&self, other: &Attrs<'_>) -> bool {
        self.0.len() == other.0.len()
            && self
                .0
                .iter()
                .zip(&other.0)
                .all(|((ka, va), (kb, vb))| ka == kb && va.identical(vb))
    }

    /// A copy that borrows nothing, to keep beyond the line.
    pub fn to_static(&self) -> Attrs<'static> {
        Attrs(
            self.0
                .iter()
                .map(|(k, v)| (Cow::Owned(k.clone().into_owned()), v.to_static()))
                .collect(),
        )
    }

    /// Owned attributes (a CPU sample's, read whole) as a view.
    pub fn from_attributes(attributes: &Attributes) -> Attrs<'static> {
        // A map iterates in key order, each key once: already sorted.
        Attrs(
            attributes
                .iter()
                .map(|(k, v)| (Cow::Owned(k.clone()), Value::from_attr_value(v)))
                .collect(),
        )
    }

    pub fn to_attributes(&self) -> Attributes {
        self.0
            .iter()
            .map(|(k, v)| (k.clone().into_owned(), v.to_attr_value()))
            .collect()
    }
}

impl Value<'_> {
    /// Equality with doubles compared bit for bit.
    pub fn identical(&self, other: &Value<'_>) -> bool {
        match (self, other) {
            (Value::Double(a), Value::Double(b)) => a.to_bits() == b.to_bits(),
            (Value::Array(a), Value::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.identical(y))
            }
            (a, b) => a == b,
        }
    }

    pub fn to_static(&self) -> Value<'static> {
        match self {
            Value::Bool(b) => Value::Bool(*b),
            Value::Int(n) => Value::Int(*n),
            Value::Double(d) => Value::Double(*d),
            Value::String(s) => Value::String(Cow::Owned(s.clone().into_owned())),
            Value::Array(items) => Value::Array(items.iter().map(Value::to_static).collect()),
        }
    }

    pub fn from_attr_value(v: &AttrValue) -> Value<'static> {
        match v {
            AttrValue::Bool(b) => Value::Bool(*b),
            AttrValue::Int(n) => Value::Int(*n),
            AttrValue::Double(d) => Value::Double(*d),
            AttrValue::String(s) => Value::String(Cow::Owned(s.clone())),
            AttrValue::Array(items) => {
                Value::Array(items.iter().map(Value::from_attr_value).collect())
            }
        }
    }

    pub fn to_attr_value(&self) -> AttrValue {
        match self {
            Value::Bool(b) => AttrValue::Bool(*b),
            Value::Int(n) => AttrValue::Int(*n),
            Value::Double(d) => AttrValue::Double(*d),
            Value::String(s) => AttrValue::String(s.clone().into_owned()),
            Value::Array(items) => {
                AttrValue::Array(items.iter().map(Value::to_attr_value).collect())
            }
        }
    }
}

impl<'a> SpanView<'a> {
    /// Parse and validate one NDJSON line, with the errors of
    /// [`Span::from_json_line`].
    pub fn parse(line: &'a str) -> Result<SpanView<'a>, SpanError> {
        Self::parse_bytes(line.as_bytes())
    }

    /// [`SpanView::parse`] on bytes. The whole line is checked for UTF-8
    /// once and then parsed as a `str`: serde_json checks each string of a
    /// byte slice on its own, which cost more than one pass over the line.
    /// A line that is not UTF-8 is parsed as bytes for serde_json's error
    /// (whatever parses is valid UTF-8: serde_json checks every string,
    /// and other bytes must be ASCII).
    pub fn parse_bytes(line: &'a [u8]) -> Result<SpanView<'a>, SpanError> {
        let span: SpanView<'a> = match std::str::from_utf8(line) {
            Ok(text) => serde_json::from_str(text)?,
            Err(_) => serde_json::from_slice(line)?,
        };
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

    pub fn to_span(&self) -> Span {
        Span {
            trace_id: self.trace_id,
            span_id: self.span_id,
            parent_span_id: self.parent_span_id,
            name: self.name.clone().into_owned(),
            kind: self.kind,
            start_time_unix_nano: self.start_time_unix_nano,
            end_time_unix_nano: self.end_time_unix_nano,
            attributes: self.attributes.to_attributes(),
            status: Status {
                code: self.status.code,
                message: self.status.message.clone().map(Cow::into_owned),
            },
            events: self
                .events
                .iter()
                .map(|e| Event {
                    name: e.name.clone().into_owned(),
                    time_unix_nano: e.time_unix_nano,
                    attributes: e.attributes.to_attributes(),
                })
                .collect(),
            resource: self.resource.to_attributes(),
            trace_flags: self.trace_flags,
        }
    }
}

/// A string that borrows from the input when it has no escapes.
struct CowStr<'a>(Cow<'a, str>);

/// Visitors for data borrowed for `'a` from input that lives for `'de`.
struct Borrowing<'a, T>(PhantomData<&'a T>);

impl<T> Borrowing<'_, T> {
    fn new() -> Self {
        Borrowing(PhantomData)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for Borrowing<'a, CowStr<'a>> {
    type Value = CowStr<'a>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<CowStr<'a>, E> {
        Ok(CowStr(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<CowStr<'a>, E> {
        Ok(CowStr(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<CowStr<'a>, E> {
        Ok(CowStr(Cow::Owned(v)))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for CowStr<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(Borrowing::<CowStr<'a>>::new())
    }
}

/// By JSON type, as [`AttrValue`]'s `Deserialize` (same accepted values,
/// same messages).
impl<'de: 'a, 'a> Visitor<'de> for Borrowing<'a, Value<'a>> {
    type Value = Value<'a>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string, integer, float, boolean or array of those")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value<'a>, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value<'a>, E> {
        Ok(Value::Int(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value<'a>, E> {
        // Beyond i64 an integer cannot be an OTLP intValue: keep it as a double.
        Ok(i64::try_from(v).map_or(Value::Double(v as f64), Value::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value<'a>, E> {
        Ok(Value::Double(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Value<'a>, E> {
        Ok(Value::String(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value<'a>, E> {
        Ok(Value::String(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Value<'a>, E> {
        Ok(Value::String(Cow::Owned(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value<'a>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Value<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Borrowing::<Value<'a>>::new())
    }
}

impl<'de: 'a, 'a> Visitor<'de> for Borrowing<'a, Attrs<'a>> {
    type Value = Attrs<'a>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Attrs<'a>, A::Error> {
        let mut items: Vec<(Cow<'a, str>, Value<'a>)> =
            Vec::with_capacity(map.size_hint().unwrap_or(8));
        while let Some(CowStr(key)) = map.next_key()? {
            items.push((key, map.next_value()?));
        }
        // Writers emit keys sorted (goprobe record writes a BTreeMap), so
        // this is usually one pass over sorted data.
        items.sort_by(|a, b| a.0.cmp(&b.0));
        // Equal keys are adjacent and in input order; keep the last, as
        // inserting into a map would.
        items.dedup_by(|later, kept| {
            if later.0 == kept.0 {
                std::mem::swap(later, kept);
                true
            } else {
                false
            }
        });
        Ok(Attrs(items))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Attrs<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(Borrowing::<Attrs<'a>>::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field set, so adding a field to `Span` breaks this test's
    /// build until the view reads it too.
    fn full_span() -> Span {
        let mut attributes = Attributes::new();
        attributes.insert("s".into(), AttrValue::from("x \"quoted\" \u{e9}\n"));
        attributes.insert("i".into(), AttrValue::Int(-3));
        attributes.insert("d".into(), AttrValue::Double(0.25));
        attributes.insert("b".into(), AttrValue::Bool(true));
        attributes.insert(
            "a".into(),
            AttrValue::Array(vec![AttrValue::Int(1), AttrValue::from("y")]),
        );
        let mut resource = Attributes::new();
        resource.insert("service.name".into(), AttrValue::from("svc"));
        Span {
            trace_id: TraceId([7; 16]),
            span_id: SpanId([8; 8]),
            parent_span_id: Some(SpanId([9; 8])),
            name: "GET /x".into(),
            kind: SpanKind::Server,
            start_time_unix_nano: 10,
            end_time_unix_nano: 20,
            attributes: attributes.clone(),
            status: Status {
                code: StatusCode::Error,
                message: Some("boom".into()),
            },
            events: vec![Event {
                name: "exception".into(),
                time_unix_nano: 15,
                attributes,
            }],
            resource,
            trace_flags: Some(1),
        }
    }

    #[test]
    fn reads_what_record_writes() {
        let span = full_span();
        let line = serde_json::to_string(&span).expect("serialize");
        assert_eq!(SpanView::parse(&line).expect("view").to_span(), span);
        let minimal = r#"{"trace_id":"0af7651916cd43dd8448eb211c80319c","span_id":"b7ad6b7169203331","name":"n","kind":"client","start_time_unix_nano":1,"end_time_unix_nano":1}"#;
        assert_eq!(
            SpanView::parse(minimal).expect("view").to_span(),
            Span::from_json_line(minimal).expect("span")
        );
    }

    #[test]
    fn strings_without_escapes_borrow() {
        let line = serde_json::to_string(&full_span()).expect("serialize");
        let view = SpanView::parse(&line).expect("view");
        assert!(matches!(view.name, Cow::Borrowed(_)));
        assert!(matches!(
            view.resource.get("service.name"),
            Some(Value::String(Cow::Borrowed(_)))
        ));
        assert!(matches!(
            view.attributes.get("s"),
            Some(Value::String(Cow::Owned(_)))
        ));
    }

    #[test]
    fn strings_are_written_back_as_serde_json_escapes_them() {
        // JSON source text: escapes of every kind, and characters that need none.
        let texts = [
            r"plain",
            r"",
            r"caf\u00e9 \u2028",
            r#"q\"uote"#,
            r"back\\slash",
            r"nl\n",
            r"\u0001\u007f",
            r"\ud83d\ude00",
            "é€😀\u{7f}",
        ];
        for text in texts {
            let line = format!(
                r#"{{"trace_id":"0af7651916cd43dd8448eb211c80319c","span_id":"b7ad6b7169203331","name":"{text}","kind":"client","start_time_unix_nano":1,"end_time_unix_nano":1,"attributes":{{"{text}":"{text}"}}}}"#
            );
            let view = SpanView::parse(&line).expect("view");
            let mut out = Vec::new();
            write_json_string(&mut out, &view.name).expect("write");
            let expected = serde_json::to_string(view.name.as_ref()).expect("json");
            assert_eq!(String::from_utf8(out).expect("utf8"), expected, "{text}");
            let (key, value) = view.attributes.iter().next().expect("one");
            assert_eq!(*key, view.name);
            assert!(matches!(value, Value::String(v) if *v == view.name));
        }
    }

    #[test]
    fn unsorted_and_repeated_keys_read_as_a_map_would() {
        let line = r#"{"trace_id":"0af7651916cd43dd8448eb211c80319c","span_id":"b7ad6b7169203331","name":"n","kind":"client","start_time_unix_nano":1,"end_time_unix_nano":2,"attributes":{"z":1,"a":2,"m":3,"a":4,"z":"last","b":[1,2.5,true]},"resource":{"y":1,"x":2}}"#;
        let view = SpanView::parse(line).expect("view");
        let keys: Vec<&str> = view.attributes.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(keys, ["a", "b", "m", "z"]);
        assert_eq!(view.attributes.get("a"), Some(&Value::Int(4)));
        assert_eq!(view.attributes.get_str("z"), Some("last"));
        assert_eq!(view.to_span(), Span::from_json_line(line).expect("span"));
    }

    #[test]
    fn rejects_what_span_rejects_with_the_same_message() {
        let good = serde_json::to_string(&full_span()).expect("serialize");
        let bad = [
            good.replace("07070707070707070707070707070707", "0707"),
            good.replace("0808080808080808", "0000000000000000"),
            good.replace("\"end_time_unix_nano\":20", "\"end_time_unix_nano\":5"),
            good.replace("\"events\"", "\"evnts\""),
            good.replace("\"code\":\"error\"", "\"code\":\"bad\""),
            good.replace("\"message\":\"boom\"", "\"message\":\"boom\",\"x\":1"),
            good.replace("\"i\":-3", "\"i\":null"),
            good.replace("\"i\":-3", "\"i\":{\"k\":1}"),
            good.replace("\"attributes\":{", "\"attributes\":[{")
                .replacen("},\"events\"", "}],\"events\"", 1),
            good.replace("\"kind\":\"server\"", "\"kind\":\"sideways\""),
            good.replace("\"trace_flags\":1", "\"trace_flags\":300"),
            good.replace("\"name\":\"GET /x\",", ""),
            good.replace("\"name\":\"GET /x\"", "\"name\":\"a\",\"name\":\"b\""),
            "{}".to_owned(),
            "[1]".to_owned(),
            good[..good.len() - 3].to_owned(),
            format!("{good} trailing"),
        ];
        for line in &bad {
            let owned = Span::from_json_line(line).expect_err(line).to_string();
            let view = SpanView::parse(line).expect_err(line).to_string();
            assert_eq!(view, owned, "{line}");
        }
    }
}
