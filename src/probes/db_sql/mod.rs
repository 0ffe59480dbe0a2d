//! The `db_sql` family (catalog probe `db.sql`): database/sql calls
//! (`(*DB).queryDC`, `(*DB).execDC`, prepared statements, `Commit`,
//! `rollback`).
//!
//! Stream fields: `function` (the hooked function), `operation` (the
//! catalog's fixed name: COMMIT, ROLLBACK), `query` (first 1024 bytes) and
//! `query_len` (when cut), `driver` (its Go type), `db_system`,
//! `server_address`/`server_port` (from the DSN, which is never written
//! out), `error`, `error_type`, `read_failed`.

pub mod sql;

use std::mem::size_of;

use serde::{Deserialize, Serialize};

use super::family::{Decode, Family, RecordingError, SpanParts, is_false};
use crate::bpf::abi::{self, Plain};
use crate::span::{AttrValue, Attributes, Event, SpanKind, Status, StatusCode};
use crate::stream::RawEvent;

pub struct DbSql;

pub static FAMILY: DbSql = DbSql;

const PROBE: &str = "db.sql";

static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/db_sql.bpf.o"));

/// `GP_HOOK_*` switches of the `db_call` programs, by catalog spelling.
pub const HOOK_FLAGS: [(&str, u32); 3] = [
    ("receiver_is_stmt", 1),
    ("receiver_is_tx", 2),
    ("skip_if_tx_done", 4),
];

pub const QUERY_MAX: usize = 1024;
pub const DSN_MAX: usize = 128;

/// `struct gp_db_event`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct DbEvent {
    pub pid: u32,
    pub tid: u32,
    pub flags: u32,
    pub hook: u32,
    pub goid: u64,
    pub g: u64,
    pub parent_goid: u64,
    pub start_ns: u64,
    pub end_ns: u64,
    pub connector_type: u64,
    pub driver_type: u64,
    pub error_type: u64,
    pub query_len: u32,
    pub dsn_len: u32,
    pub dsn: [u8; DSN_MAX],
    pub query: [u8; QUERY_MAX],
}
const _: () = assert!(size_of::<DbEvent>() == 1240);

// SAFETY: repr(C), integers and byte arrays only, no implicit padding (size
// checked above), so every bit pattern is valid.
unsafe impl Plain for DbEvent {}

/// The stream fields of a `db.sql` event.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_len: Option<u32>,
    /// The driver's Go type, as `%T` prints it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// `db.system.name` from the driver.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db_system: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_port: Option<u16>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub error: bool,
    /// The returned error's Go type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub read_failed: bool,
}

impl Family for DbSql {
    fn name(&self) -> &'static str {
        "db_sql"
    }

    fn probes(&self) -> &'static [&'static str] {
        &[PROBE]
    }

    fn object(&self) -> &'static [u8] {
        OBJECT
    }

    fn hook_flag(&self, flag: &str) -> Option<u32> {
        HOOK_FLAGS.iter().find(|(n, _)| *n == flag).map(|(_, b)| *b)
    }

    fn decode(&self, record: &[u8], ctx: &mut Decode<'_>) -> Option<RawEvent> {
        let ev = DbEvent::read(record)?;
        let mut f = Fields::default();
        if let Some(h) = ctx.hook(ev.hook) {
            f.function = Some(h.function.clone());
            f.operation.clone_from(&h.operation);
        }
        (f.query, f.query_len) = abi::str_and_len(&ev.query, ev.query_len);
        let connector = ctx.symbols.type_name(ev.pid, ev.connector_type);
        // sql.Open's dsnConnector: the driver inside names the system, the
        // DSN gives the server. Other connectors are the driver's own.
        let is_dsn = connector
            .as_ref()
            .is_some_and(|t| t.name == "*sql.dsnConnector" || t.name == "sql.dsnConnector");
        let driver = if is_dsn {
            ctx.symbols.type_name(ev.pid, ev.driver_type)
        } else {
            connector
        };
        if let Some(d) = &driver {
            let path = ctx.symbols.package_path(d);
            f.db_system = Some(sql::system_name(&d.name, path.as_deref()).to_owned());
            f.driver = Some(d.name.clone());
        }
        if is_dsn && ev.dsn_len > 0 && ev.dsn_len as usize <= ev.dsn.len() {
            let dsn = abi::field_str(&ev.dsn, ev.dsn_len);
            if let Some((host, port)) = sql::server_from_dsn(&dsn) {
                f.server_address = Some(host);
                f.server_port = port;
            }
        }
        if ev.flags & abi::FLAG_ERROR != 0 {
            f.error = true;
            f.error_type = ctx.symbols.type_name(ev.pid, ev.error_type).map(|t| t.name);
        }
        f.read_failed = ev.flags & abi::FLAG_READ_FAILED != 0;
        Some(
            RawEvent {
                probe: PROBE.to_owned(),
                pid: ev.pid,
                tid: ev.tid,
                goroutine: ev.goid,
                start_ns: ev.start_ns,
                end_ns: ev.end_ns,
                fields: RawEvent::fields_from(&f),
            }
            .with_parent_goroutine(ev.parent_goid),
        )
    }

    fn span(&self, ev: &RawEvent, _nested: &[Event]) -> Result<SpanParts, RecordingError> {
        let f: Fields = ev.fields_as()?;
        let mut a = Attributes::new();
        let system = f.db_system.as_deref().unwrap_or("other_sql");
        a.insert("db.system.name".into(), system.into());
        let mut shape = f.query.as_deref().map_or(
            crate::sql::QueryShape {
                operation: None,
                collection: None,
            },
            crate::sql::shape,
        );
        // The catalog's fixed operation (Commit: COMMIT) comes first.
        if let Some(op) = &f.operation {
            shape.operation = Some(op.clone());
        }
        let (operation, collection) = (shape.operation.clone(), shape.collection.clone());
        if let Some(q) = &f.query {
            a.insert("db.query.text".into(), q.as_str().into());
            if let Some(n) = f.query_len {
                // Cut at the probe's limit; the real length says by how much.
                a.insert(
                    "goprobe.db.query.length".into(),
                    AttrValue::Int(i64::from(n)),
                );
            }
        }
        if let Some(op) = &operation {
            a.insert("db.operation.name".into(), op.clone().into());
        }
        if let Some(c) = &collection {
            a.insert("db.collection.name".into(), c.clone().into());
        }
        if let Some(h) = &f.server_address {
            a.insert("server.address".into(), h.as_str().into());
        }
        if let Some(p) = f.server_port {
            a.insert("server.port".into(), AttrValue::Int(i64::from(p)));
        }
        if let Some(func) = &f.function {
            a.insert("code.function.name".into(), func.as_str().into());
        }
        let status = if f.error {
            a.insert(
                "error.type".into(),
                f.error_type.as_deref().unwrap_or("_OTHER").into(),
            );
            Status {
                code: StatusCode::Error,
                message: Some("database/sql call returned an error".into()),
            }
        } else {
            Status::default()
        };
        let name = crate::sql::span_name(&shape, system);
        Ok(SpanParts {
            name,
            kind: SpanKind::Client,
            start_ns: ev.start_ns,
            end_ns: ev.end_ns.max(ev.start_ns),
            attributes: a,
            status,
            incoming: None,
            connection: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constants_match_the_c_file() {
        let source = include_str!("../../../ebpf/probes/db_sql.bpf.c");
        for (name, value) in [
            (
                "GP_HOOK_RECEIVER_IS_STMT",
                FAMILY.hook_flag("receiver_is_stmt"),
            ),
            ("GP_HOOK_RECEIVER_IS_TX", FAMILY.hook_flag("receiver_is_tx")),
            (
                "GP_HOOK_SKIP_IF_TX_DONE",
                FAMILY.hook_flag("skip_if_tx_done"),
            ),
            ("GP_QUERY_MAX", Some(QUERY_MAX as u32)),
            ("GP_DSN_MAX", Some(DSN_MAX as u32)),
        ] {
            assert_eq!(abi::c_define(source, name), value.map(u64::from), "{name}");
        }
        assert_eq!(FAMILY.hook_flag("no_such_flag"), None);
        assert!(source.contains(&format!(
            "sizeof(struct gp_db_event) == {}",
            size_of::<DbEvent>()
        )));
    }

    #[test]
    fn spans_name_operation_and_table() {
        let ev = RawEvent {
            probe: PROBE.into(),
            pid: 1,
            tid: 1,
            goroutine: 1,
            start_ns: 10,
            end_ns: 20,
            fields: serde_json::from_value(serde_json::json!({
                "function": "database/sql.(*DB).queryDC",
                "query": "SELECT id FROM users WHERE id = $1",
                "query_len": 2000,
                "db_system": "postgresql",
                "server_address": "127.0.0.1",
                "server_port": 5432,
                "error": true,
                "error_type": "*pq.Error"
            }))
            .unwrap(),
        };
        let s = FAMILY.span(&ev, &[]).unwrap();
        assert_eq!(s.name, "SELECT users");
        assert_eq!(s.kind, SpanKind::Client);
        assert_eq!(s.status.code, StatusCode::Error);
        let a = &s.attributes;
        assert_eq!(a["db.system.name"], AttrValue::from("postgresql"));
        assert_eq!(a["goprobe.db.query.length"], AttrValue::Int(2000));
        assert_eq!(a["server.port"], AttrValue::Int(5432));
        assert_eq!(a["error.type"], AttrValue::from("*pq.Error"));
        assert_eq!(
            a["code.function.name"],
            AttrValue::from("database/sql.(*DB).queryDC")
        );
        let commit = RawEvent {
            fields: serde_json::from_value(serde_json::json!({"operation": "COMMIT"})).unwrap(),
            ..ev
        };
        let s = FAMILY.span(&commit, &[]).unwrap();
        assert_eq!(s.name, "COMMIT");
        assert_eq!(s.attributes["db.system.name"], AttrValue::from("other_sql"));
    }
}
