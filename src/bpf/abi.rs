//! Rust mirrors of the structs in `ebpf/goprobe.h`, shared with the eBPF
//! programs through maps and the ring buffer. Every struct is `#[repr(C)]`
//! with a compile-time size check against the C definition.

use std::mem::size_of;

pub const KIND_HTTP_SERVER: u32 = 1;
pub const KIND_HTTP_CLIENT: u32 = 2;
pub const KIND_SPAWN: u32 = 3;
pub const KIND_DB: u32 = 4;
pub const KIND_PANIC: u32 = 5;

pub const FLAG_ERROR: u32 = 1;
pub const FLAG_READ_FAILED: u32 = 2;
pub const FLAG_NO_RESPONSE: u32 = 4;
pub const FLAG_UNWOUND: u32 = 8;
pub const FLAG_MAP_TOO_BIG: u32 = 16;

pub const LOST_RINGBUF: u32 = 0;
pub const LOST_INFLIGHT: u32 = 1;
pub const LOST_READ: u32 = 2;
pub const LOST_UNPAIRED: u32 = 3;
pub const LOST_MAX: u32 = 4;

/// Names of the `lost` counters, indexed like `GP_LOST_*`.
pub const LOST_NAMES: [&str; LOST_MAX as usize] = [
    "ringbuf_full",
    "inflight_map_full",
    "read_failed",
    "unpaired_return",
];

pub const ROUTE_NONE: u32 = 0;
pub const ROUTE_PATTERN: u32 = 1;
pub const ROUTE_PAT_PTR: u32 = 2;

pub const MAP_NONE: u32 = 0;
pub const MAP_BUCKETS: u32 = 1;
pub const MAP_SWISS: u32 = 2;

/// `GP_NO_OFFSET`: a field the programs must not read.
pub const NO_OFFSET: u64 = u64::MAX;

/// `GP_F_MAX`: slots in `gp_config.off`.
pub const F_MAX: usize = 32;

/// The field behind each `GP_F_*` index of `gp_config.off`, in the header's
/// order (a unit test reads `ebpf/goprobe.h` and compares).
pub const FIELDS: [&str; 31] = [
    "runtime.g.goid",
    "net/http.Request.Method",
    "net/http.Request.URL",
    "net/http.Request.Proto",
    "net/http.Request.Host",
    "net/http.Request.RemoteAddr",
    "net/http.Request.Pattern",
    "net/http.Request.pat",
    "net/http.pattern.str",
    "net/url.URL.Scheme",
    "net/url.URL.Host",
    "net/url.URL.Path",
    "net/url.URL.RawQuery",
    "net/http.response.status",
    "net/http.Response.StatusCode",
    "net/http.Request.Header",
    "runtime.hmap.B",
    "runtime.hmap.buckets",
    "runtime.hmap.oldbuckets",
    "internal/runtime/maps.Map.dirPtr",
    "internal/runtime/maps.Map.dirLen",
    "internal/runtime/maps.table.groups",
    "internal/runtime/maps.groupsReference.data",
    "internal/runtime/maps.groupsReference.lengthMask",
    "database/sql.DB.connector",
    "database/sql.Stmt.db",
    "database/sql.Stmt.query",
    "database/sql.Tx.db",
    "database/sql.dsnConnector.dsn",
    "database/sql.dsnConnector.driver",
    "database/sql.Tx.done",
];
const _: () = assert!(FIELDS.len() <= F_MAX);

/// Index of `field` in `gp_config.off`.
pub fn field_index(field: &str) -> Option<usize> {
    FIELDS.iter().position(|f| *f == field)
}

/// `struct gp_config`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpConfig {
    pub off: [u64; F_MAX],
    pub route_mode: u32,
    pub map_mode: u32,
}
const _: () = assert!(size_of::<GpConfig>() == 8 * F_MAX + 8);

// SAFETY: GpConfig is repr(C), made only of integers, with no implicit
// padding (size checked above), so every bit pattern is valid.
unsafe impl aya::Pod for GpConfig {}

impl Default for GpConfig {
    fn default() -> Self {
        GpConfig {
            off: [NO_OFFSET; F_MAX],
            route_mode: ROUTE_NONE,
            map_mode: MAP_NONE,
        }
    }
}

impl GpConfig {
    /// The offset configured for `field`, if it is one the programs read and known.
    pub fn get(&self, field: &str) -> Option<u64> {
        field_index(field)
            .and_then(|i| self.off.get(i).copied())
            .filter(|&o| o != NO_OFFSET)
    }
}

pub const SLOTS: usize = 8;
pub const REG_NONE: u8 = 0xff;
pub const HOOK_RECEIVER_IS_STMT: u32 = 1;
pub const HOOK_RECEIVER_IS_TX: u32 = 2;
pub const HOOK_SKIP_IF_TX_DONE: u32 = 4;
pub const HOOKS_MAX: usize = 64;

/// `GP_HOOK_*` flags by their catalog spelling.
pub fn hook_flag(name: &str) -> Option<u32> {
    match name {
        "receiver_is_stmt" => Some(HOOK_RECEIVER_IS_STMT),
        "receiver_is_tx" => Some(HOOK_RECEIVER_IS_TX),
        "skip_if_tx_done" => Some(HOOK_SKIP_IF_TX_DONE),
        _ => None,
    }
}

/// `struct gp_hook`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpHook {
    pub kind: u32,
    pub flags: u32,
    pub reg: [u8; SLOTS],
}
const _: () = assert!(size_of::<GpHook>() == 16);

// SAFETY: repr(C), integers only, no padding (size checked above).
unsafe impl aya::Pod for GpHook {}

impl Default for GpHook {
    fn default() -> Self {
        GpHook {
            kind: 0,
            flags: 0,
            reg: [REG_NONE; SLOTS],
        }
    }
}

pub const METHOD_MAX: usize = 16;
pub const SHORT_MAX: usize = 64;
pub const LONG_MAX: usize = 256;
pub const TRACEPARENT_MAX: usize = 64;
pub const QUERY_MAX: usize = 1024;
pub const DSN_MAX: usize = 128;
pub const PANIC_TEXT_MAX: usize = 128;

/// `struct gp_event`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct GpEvent {
    pub kind: u32,
    pub pid: u32,
    pub tid: u32,
    pub flags: u32,
    pub goid: u64,
    pub g: u64,
    pub start_ns: u64,
    pub end_ns: u64,
    pub status: i64,
    pub ptr_a: u64,
    pub ptr_b: u64,
    pub unwound_by: u64,
    pub method_len: u32,
    pub path_len: u32,
    pub host_len: u32,
    pub proto_len: u32,
    pub peer_len: u32,
    pub route_len: u32,
    pub scheme_len: u32,
    pub query_len: u32,
    pub traceparent_len: u32,
    pub _pad: u32,
    pub method: [u8; METHOD_MAX],
    pub scheme: [u8; METHOD_MAX],
    pub host: [u8; SHORT_MAX],
    pub proto: [u8; METHOD_MAX],
    pub peer: [u8; SHORT_MAX],
    pub path: [u8; LONG_MAX],
    pub route: [u8; LONG_MAX],
    pub query: [u8; LONG_MAX],
    pub traceparent: [u8; TRACEPARENT_MAX],
}
const _: () = assert!(size_of::<GpEvent>() == 1128);

// SAFETY: GpEvent is repr(C), integers and byte arrays only, no implicit
// padding (its fields are laid out to multiples of 8; size checked above),
// so every bit pattern is valid.
unsafe impl aya::Pod for GpEvent {}

/// `struct gp_inflight_key`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpInflightKey {
    pub tgid: u32,
    pub kind: u32,
    pub g: u64,
}
const _: () = assert!(size_of::<GpInflightKey>() == 16);

// SAFETY: repr(C), integers only, no padding (size checked above).
unsafe impl aya::Pod for GpInflightKey {}

/// `struct gp_db_event`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct GpDbEvent {
    pub kind: u32,
    pub pid: u32,
    pub tid: u32,
    pub flags: u32,
    pub goid: u64,
    pub g: u64,
    pub start_ns: u64,
    pub end_ns: u64,
    pub hook: u32,
    pub query_len: u32,
    pub connector_type: u64,
    pub driver_type: u64,
    pub error_type: u64,
    pub dsn_len: u32,
    pub _pad: u32,
    pub dsn: [u8; DSN_MAX],
    pub query: [u8; QUERY_MAX],
}
const _: () = assert!(size_of::<GpDbEvent>() == 1240);

/// `struct gp_panic_event`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct GpPanicEvent {
    pub kind: u32,
    pub pid: u32,
    pub tid: u32,
    pub flags: u32,
    pub goid: u64,
    pub g: u64,
    pub ts_ns: u64,
    pub type_ptr: u64,
    pub data_ptr: u64,
    pub word: [u64; 4],
    pub text_len: u32,
    pub _pad: u32,
    pub text: [u8; PANIC_TEXT_MAX],
}
const _: () = assert!(size_of::<GpPanicEvent>() == 224);

/// `struct gp_spawn`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpSpawn {
    pub kind: u32,
    pub pid: u32,
    pub tid: u32,
    pub flags: u32,
    pub parent_goid: u64,
    pub child_goid: u64,
    pub ts_ns: u64,
}
const _: () = assert!(size_of::<GpSpawn>() == 40);

/// Plain-old-data records that may be copied out of ring-buffer bytes.
///
/// # Safety
/// Implementors are `repr(C)` structs of integers and byte arrays, valid
/// for every bit pattern.
unsafe trait Plain: Sized {
    fn read(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < size_of::<Self>() {
            return None;
        }
        // SAFETY: the length was checked above, Self is plain old data valid
        // for any bit pattern (trait contract), and read_unaligned does not
        // require the ring buffer's 8-byte alignment.
        Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<Self>()) })
    }
}
// SAFETY: all four are repr(C) integers and byte arrays (see above).
unsafe impl Plain for GpEvent {}
// SAFETY: as above.
unsafe impl Plain for GpDbEvent {}
// SAFETY: as above.
unsafe impl Plain for GpPanicEvent {}
// SAFETY: as above.
unsafe impl Plain for GpSpawn {}

impl GpEvent {
    /// Decode one ring-buffer record; `None` when it is too short.
    pub fn from_bytes(bytes: &[u8]) -> Option<GpEvent> {
        GpEvent::read(bytes)
    }
}

/// One ring-buffer record, told apart by its leading `kind`.
#[derive(Clone)]
pub enum Record {
    Call(Box<GpEvent>),
    Spawn(GpSpawn),
    Db(Box<GpDbEvent>),
    Panic(Box<GpPanicEvent>),
}

impl Record {
    /// Decode a record; `None` for an unknown kind or a short record.
    pub fn from_bytes(bytes: &[u8]) -> Option<Record> {
        let kind = u32::from_ne_bytes(bytes.get(..4)?.try_into().ok()?);
        match kind {
            KIND_SPAWN => GpSpawn::read(bytes).map(Record::Spawn),
            KIND_DB => GpDbEvent::read(bytes).map(|e| Record::Db(Box::new(e))),
            KIND_PANIC => GpPanicEvent::read(bytes).map(|e| Record::Panic(Box::new(e))),
            KIND_HTTP_SERVER | KIND_HTTP_CLIENT => {
                GpEvent::read(bytes).map(|e| Record::Call(Box::new(e)))
            }
            _ => None,
        }
    }
}

/// The first `min(len, buf.len())` bytes of a string field, lossily as UTF-8.
pub fn field_str(buf: &[u8], len: u32) -> String {
    let n = (len as usize).min(buf.len());
    String::from_utf8_lossy(buf.get(..n).unwrap_or_default()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_and_truncates_strings() {
        let mut bytes = vec![0u8; size_of::<GpEvent>()];
        bytes[0] = KIND_HTTP_SERVER as u8;
        bytes[4] = 42;
        let ev = GpEvent::from_bytes(&bytes).expect("long enough");
        assert_eq!(ev.kind, KIND_HTTP_SERVER);
        assert_eq!(ev.pid, 42);
        assert!(GpEvent::from_bytes(&bytes[..100]).is_none());
        assert!(matches!(Record::from_bytes(&bytes), Some(Record::Call(_))));
        let mut spawn = vec![0u8; size_of::<GpSpawn>()];
        spawn[0] = KIND_SPAWN as u8;
        spawn[16] = 7;
        match Record::from_bytes(&spawn) {
            Some(Record::Spawn(s)) => assert_eq!(s.parent_goid, 7),
            _ => panic!("spawn record"),
        }
        assert!(Record::from_bytes(&spawn[..20]).is_none());
        assert_eq!(field_str(b"GETxxxx", 3), "GET");
        assert_eq!(field_str(b"GET", 1000), "GET");
        let mut db = vec![0u8; size_of::<GpDbEvent>()];
        db[0] = KIND_DB as u8;
        assert!(matches!(Record::from_bytes(&db), Some(Record::Db(_))));
        assert!(Record::from_bytes(&db[..100]).is_none());
        let mut p = vec![0u8; size_of::<GpPanicEvent>()];
        p[0] = KIND_PANIC as u8;
        assert!(matches!(Record::from_bytes(&p), Some(Record::Panic(_))));
        p[0] = 99;
        assert!(Record::from_bytes(&p).is_none());
    }

    /// `FIELDS` lists the header's `GP_F_*` indices in order, and the
    /// header's constants match the ones here.
    #[test]
    fn field_slots_match_the_header() {
        let header = include_str!("../../ebpf/goprobe.h");
        let mut seen = Vec::new();
        for line in header.lines() {
            let Some(rest) = line.strip_prefix("#define GP_F_") else {
                continue;
            };
            let mut parts = rest.split_whitespace();
            let name = parts.next().unwrap_or("");
            let value: usize = parts.next().and_then(|v| v.parse().ok()).expect("number");
            if name == "MAX" {
                assert_eq!(value, F_MAX);
                continue;
            }
            let field = rest
                .split("/*")
                .nth(1)
                .and_then(|c| c.split("*/").next())
                .map(str::trim)
                .expect("comment naming the field");
            seen.push((value, field.to_owned()));
        }
        let want: Vec<(usize, String)> = FIELDS
            .iter()
            .enumerate()
            .map(|(i, f)| (i, (*f).to_owned()))
            .collect();
        assert_eq!(seen, want);
        for (name, value) in [
            ("GP_SLOTS", SLOTS as u64),
            ("GP_HOOKS_MAX", HOOKS_MAX as u64),
            ("GP_QUERY_MAX", QUERY_MAX as u64),
            ("GP_KIND_DB", KIND_DB as u64),
            ("GP_KIND_PANIC", KIND_PANIC as u64),
            ("GP_FLAG_UNWOUND", FLAG_UNWOUND as u64),
            ("GP_MAP_SWISS", MAP_SWISS as u64),
            ("GP_HOOK_RECEIVER_IS_TX", HOOK_RECEIVER_IS_TX as u64),
        ] {
            let line = header
                .lines()
                .find(|l| l.starts_with(&format!("#define {name} ")))
                .unwrap_or_else(|| panic!("{name} missing from goprobe.h"));
            let v: u64 = line
                .split_whitespace()
                .nth(2)
                .and_then(|v| v.parse().ok())
                .expect("value");
            assert_eq!(v, value, "{name}");
        }
    }
}
