//! The raw event stream: the NDJSON lines `goprobe attach` writes and
//! `goprobe record` reads. Both sides use these types and nothing else of
//! each other.
//!
//! Lines (one JSON object each, tagged by `type`):
//! * `target`: the binary, Go version, service name, pid when attached by
//!   pid, and the probes attached;
//! * `clock`: REALTIME − MONOTONIC offset, so a reader can make wall times;
//! * `event`: one completed call: probe, pid, tid, goroutine, monotonic
//!   start/end and the fields read (each probe family documents its own);
//! * `lost`: how many events a kernel counter says were dropped since the
//!   previous `lost` line for that reason (reasons: [`crate::loss`]);
//! * `tick`: the monotonic time by which every completed call has been
//!   written, sent a few times a second, so that a reader holding spans
//!   for a while (to link a client span to the server span it caused) can
//!   let them go when the traced programs are quiet.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// One line of the stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Line {
    Target(TargetInfo),
    Clock {
        realtime_minus_monotonic_ns: i64,
        uncertainty_ns: u64,
    },
    Event(RawEvent),
    Lost {
        reason: String,
        count: u64,
        /// CLOCK_MONOTONIC when the count was read (absent from older goprobes).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at_ns: Option<u64>,
    },
    Tick {
        monotonic_ns: u64,
    },
}

/// Facts about the traced binary that spans' `resource` needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetInfo {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default)]
    pub go_version: String,
    #[serde(default)]
    pub service_name: String,
    /// The catalog probes attached, so that a reader knows what the absence
    /// of a probe's events means. Empty when unknown (streams written
    /// before goprobe said).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probes: Vec<String>,
}

/// One completed call (or, for an instant such as a panic, start = end).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawEvent {
    pub probe: String,
    pub pid: u32,
    pub tid: u32,
    pub goroutine: u64,
    pub start_ns: u64,
    pub end_ns: u64,
    /// What the probe read, in the schema of the probe's family (a typed
    /// struct on both sides; a map here so that the stream stays readable
    /// by any JSON tool and by older or newer goprobes).
    #[serde(default)]
    pub fields: BTreeMap<String, serde_json::Value>,
}

/// The field naming the goroutine that started an event's goroutine.
pub const PARENT_GOROUTINE: &str = "parent_goroutine";

/// A family's fields did not fit its schema.
#[derive(Debug, thiserror::Error)]
#[error("{probe} event: {source}")]
pub struct FieldsError {
    pub probe: String,
    #[source]
    pub source: serde_json::Error,
}

impl RawEvent {
    /// The fields as the family's typed struct `T`. Fields `T` does not
    /// know are ignored (a newer goprobe may add some); a known field of the
    /// wrong type is an error.
    pub fn fields_as<T: DeserializeOwned>(&self) -> Result<T, FieldsError> {
        let pairs = self.fields.iter().map(|(k, v)| (k.as_str(), v));
        let de = serde::de::value::MapDeserializer::<_, serde_json::Error>::new(pairs);
        T::deserialize(de).map_err(|source| FieldsError {
            probe: self.probe.clone(),
            source,
        })
    }

    /// Records the goroutine that started this event's goroutine (the
    /// `parent_goroutine` field, which any family may carry: Go 1.21+ keeps
    /// it in `runtime.g.parentGoid`); 0, unknown, is left out.
    pub fn with_parent_goroutine(mut self, parent: u64) -> RawEvent {
        if parent != 0 {
            self.fields
                .insert(PARENT_GOROUTINE.to_owned(), serde_json::Value::from(parent));
        }
        self
    }

    /// The `parent_goroutine` field, when present and a number.
    pub fn parent_goroutine(&self) -> Option<u64> {
        self.fields
            .get(PARENT_GOROUTINE)?
            .as_u64()
            .filter(|&p| p != 0)
    }

    /// Typed fields as the stream's map. `fields` must serialize to a JSON
    /// object (a struct); anything else gives no fields.
    pub fn fields_from<T: Serialize>(fields: &T) -> BTreeMap<String, serde_json::Value> {
        match serde_json::to_value(fields) {
            Ok(serde_json::Value::Object(map)) => map.into_iter().collect(),
            _ => BTreeMap::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        let line = r#"{"type":"event","probe":"http.server","pid":1,"tid":2,"goroutine":3,"start_ns":4,"end_ns":5,"fields":{"method":"GET","status":200}}"#;
        let parsed: Line = serde_json::from_str(line).expect("parses");
        assert_eq!(serde_json::to_string(&parsed).expect("ser"), line);
    }

    /// A target line says which probes were attached; older streams did
    /// not, and read as "unknown" (empty).
    #[test]
    fn target_lines_with_and_without_probes() {
        let old = r#"{"type":"target","path":"/bin/svc","pid":7,"go_version":"go1.22.10","service_name":"svc"}"#;
        let Line::Target(t) = serde_json::from_str(old).expect("parses") else {
            panic!("not a target line");
        };
        assert!(t.probes.is_empty());
        assert_eq!(
            serde_json::to_string(&Line::Target(t.clone())).unwrap(),
            old
        );
        let new = TargetInfo {
            probes: vec!["http.client".into(), "go.spawn".into()],
            ..t
        };
        let line = serde_json::to_string(&Line::Target(new.clone())).unwrap();
        assert!(
            line.ends_with(r#","probes":["http.client","go.spawn"]}"#),
            "{line}"
        );
        assert_eq!(
            serde_json::from_str::<Line>(&line).unwrap(),
            Line::Target(new)
        );
    }

    #[test]
    fn typed_fields_both_ways() {
        #[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
        struct F {
            #[serde(default, skip_serializing_if = "Option::is_none")]
            method: Option<String>,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            status: Option<i64>,
        }
        let mut ev = RawEvent {
            probe: "p".into(),
            pid: 1,
            tid: 1,
            goroutine: 1,
            start_ns: 0,
            end_ns: 0,
            fields: RawEvent::fields_from(&F {
                method: Some("GET".into()),
                status: None,
            }),
        };
        assert_eq!(
            serde_json::to_string(&ev.fields).unwrap(),
            r#"{"method":"GET"}"#
        );
        ev.fields.insert("newer".into(), serde_json::json!([1]));
        let f: F = ev.fields_as().unwrap();
        assert_eq!(f.method.as_deref(), Some("GET"));
        ev.fields.insert("status".into(), serde_json::json!("x"));
        let err = ev.fields_as::<F>().unwrap_err();
        assert!(err.to_string().starts_with("p event: "), "{err}");
    }
}
