//! Rust mirrors of the structs in `ebpf/goprobe.h`, shared with the eBPF
//! programs through maps and the ring buffer. Every struct is `#[repr(C)]`
//! with a compile-time size check against the C definition.

use std::mem::size_of;

pub const KIND_HTTP_SERVER: u32 = 1;
pub const KIND_HTTP_CLIENT: u32 = 2;
pub const KIND_SPAWN: u32 = 3;

pub const FLAG_ERROR: u32 = 1;
pub const FLAG_READ_FAILED: u32 = 2;
pub const FLAG_NO_RESPONSE: u32 = 4;

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

/// `GP_NO_OFFSET`: a field the programs must not read.
pub const NO_OFFSET: u64 = u64::MAX;

/// `struct gp_config`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpConfig {
    pub g_goid: u64,
    pub req_method: u64,
    pub req_url: u64,
    pub req_proto: u64,
    pub req_host: u64,
    pub req_remote_addr: u64,
    pub req_route: u64,
    pub pattern_str: u64,
    pub url_scheme: u64,
    pub url_host: u64,
    pub url_path: u64,
    pub url_raw_query: u64,
    pub response_status: u64,
    pub resp_status_code: u64,
    pub route_mode: u32,
    pub _pad: u32,
}
const _: () = assert!(size_of::<GpConfig>() == 120);

// SAFETY: GpConfig is repr(C), made only of integers, with no implicit
// padding (size checked above), so every bit pattern is valid.
unsafe impl aya::Pod for GpConfig {}

impl Default for GpConfig {
    fn default() -> Self {
        GpConfig {
            g_goid: NO_OFFSET,
            req_method: NO_OFFSET,
            req_url: NO_OFFSET,
            req_proto: NO_OFFSET,
            req_host: NO_OFFSET,
            req_remote_addr: NO_OFFSET,
            req_route: NO_OFFSET,
            pattern_str: NO_OFFSET,
            url_scheme: NO_OFFSET,
            url_host: NO_OFFSET,
            url_path: NO_OFFSET,
            url_raw_query: NO_OFFSET,
            response_status: NO_OFFSET,
            resp_status_code: NO_OFFSET,
            route_mode: ROUTE_NONE,
            _pad: 0,
        }
    }
}

pub const METHOD_MAX: usize = 16;
pub const SHORT_MAX: usize = 64;
pub const LONG_MAX: usize = 256;

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
    pub method_len: u32,
    pub path_len: u32,
    pub host_len: u32,
    pub proto_len: u32,
    pub peer_len: u32,
    pub route_len: u32,
    pub scheme_len: u32,
    pub query_len: u32,
    pub method: [u8; METHOD_MAX],
    pub scheme: [u8; METHOD_MAX],
    pub host: [u8; SHORT_MAX],
    pub proto: [u8; METHOD_MAX],
    pub peer: [u8; SHORT_MAX],
    pub path: [u8; LONG_MAX],
    pub route: [u8; LONG_MAX],
    pub query: [u8; LONG_MAX],
}
const _: () = assert!(size_of::<GpEvent>() == 1048);

impl GpEvent {
    /// Decode one ring-buffer record; `None` when it is too short.
    pub fn from_bytes(bytes: &[u8]) -> Option<GpEvent> {
        if bytes.len() < size_of::<GpEvent>() {
            return None;
        }
        // SAFETY: the length was checked above, GpEvent is repr(C) plain old
        // data for which every bit pattern is valid, and read_unaligned does
        // not require the ring buffer's 8-byte alignment.
        Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<GpEvent>()) })
    }
}

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

/// One ring-buffer record, told apart by its leading `kind`.
#[derive(Clone)]
pub enum Record {
    Call(Box<GpEvent>),
    Spawn(GpSpawn),
}

impl Record {
    /// Decode a record; `None` for an unknown kind or a short record.
    pub fn from_bytes(bytes: &[u8]) -> Option<Record> {
        let kind = u32::from_ne_bytes(bytes.get(..4)?.try_into().ok()?);
        if kind == KIND_SPAWN {
            if bytes.len() < size_of::<GpSpawn>() {
                return None;
            }
            // SAFETY: length checked; GpSpawn is repr(C) plain integers, any
            // bit pattern is valid; read_unaligned needs no alignment.
            return Some(Record::Spawn(unsafe {
                std::ptr::read_unaligned(bytes.as_ptr().cast::<GpSpawn>())
            }));
        }
        GpEvent::from_bytes(bytes).map(|e| Record::Call(Box::new(e)))
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
    }
}
