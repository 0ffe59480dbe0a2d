//! Rust mirrors of what every family's eBPF object shares with user space
//! (`ebpf/lib/abi.h`): the configuration and hook tables written into its
//! maps, the in-flight key, the lost-counter indexes and common event
//! flags. Every struct is `#[repr(C)]` with a compile-time size check
//! against the C definition (which has a `_Static_assert` of its own). A
//! family's event structs are mirrored in its own module under `src/probes/`.

use std::mem::size_of;

pub const FLAG_ERROR: u32 = 1;
pub const FLAG_READ_FAILED: u32 = 2;

pub const LOST_RINGBUF: u32 = 0;
pub const LOST_INFLIGHT: u32 = 1;
pub const LOST_READ: u32 = 2;
pub const LOST_UNPAIRED: u32 = 3;
pub const LOST_MAX: u32 = 4;

/// Names of the `lost` counters, indexed like `GP_LOST_*`.
pub const LOST_NAMES: [&str; LOST_MAX as usize] = [
    crate::loss::RINGBUF_FULL,
    crate::loss::INFLIGHT_MAP_FULL,
    crate::loss::READ_FAILED,
    crate::loss::UNPAIRED_RETURN,
];

/// `GP_NO_OFFSET`: a field the programs must not read.
pub const NO_OFFSET: u64 = u64::MAX;

/// `GP_OFF_MAX`: slots in a family's offset array (`gp_config.off`).
pub const OFF_MAX: usize = 32;
/// `GP_MODES`: a family's switches (`gp_config.mode`).
pub const MODES: usize = 4;

/// `struct gp_config`: one family's field offsets, in the order of
/// `Catalog::family_fields`, and its switches.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpConfig {
    pub off: [u64; OFF_MAX],
    pub mode: [u32; MODES],
}
const _: () = assert!(size_of::<GpConfig>() == 8 * OFF_MAX + 4 * MODES);

// SAFETY: GpConfig is repr(C), made only of integers, with no implicit
// padding (size checked above), so every bit pattern is valid.
unsafe impl aya::Pod for GpConfig {}

impl Default for GpConfig {
    fn default() -> Self {
        GpConfig {
            off: [NO_OFFSET; OFF_MAX],
            mode: [0; MODES],
        }
    }
}

pub const SLOTS: usize = 8;
pub const REG_NONE: u8 = 0xff;
pub const HOOKS_MAX: usize = 64;

/// `struct gp_hook`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpHook {
    pub flags: u32,
    pub _pad: u32,
    pub reg: [u8; SLOTS],
}
const _: () = assert!(size_of::<GpHook>() == 16);

// SAFETY: repr(C), integers only, no padding (size checked above).
unsafe impl aya::Pod for GpHook {}

impl Default for GpHook {
    fn default() -> Self {
        GpHook {
            flags: 0,
            _pad: 0,
            reg: [REG_NONE; SLOTS],
        }
    }
}

/// `struct gp_call_key`: the key of a family's in-flight map.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GpCallKey {
    pub tgid: u32,
    pub _pad: u32,
    pub g: u64,
}
const _: () = assert!(size_of::<GpCallKey>() == 16);

// SAFETY: repr(C), integers only, no padding (size checked above).
unsafe impl aya::Pod for GpCallKey {}

/// Plain-old-data records that may be copied out of ring-buffer bytes.
///
/// # Safety
/// Implementors are `repr(C)` structs of integers and byte arrays, valid
/// for every bit pattern.
pub unsafe trait Plain: Sized {
    /// Copy one record out of `bytes`; `None` when it is too short.
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

/// A record whose last `packed_bytes` bytes are a buffer of packed strings
/// (`APPEND_GO_STRING`, ebpf/lib/goread.h), sent only up to the bytes used:
/// the fixed part and what it carries of the buffer, the rest zeros. `None`
/// when it is shorter than the fixed part, longer than the struct, or when
/// `used` says it filled more of the buffer than it carries.
pub fn read_packed<T: Plain>(
    bytes: &[u8],
    packed_bytes: usize,
    used: impl Fn(&T) -> u16,
) -> Option<T> {
    let fixed = size_of::<T>().checked_sub(packed_bytes)?;
    if bytes.len() < fixed || bytes.len() > size_of::<T>() {
        return None;
    }
    let mut v = std::mem::MaybeUninit::<T>::zeroed();
    // SAFETY: at most size_of::<T>() bytes are copied (checked above) into
    // a zeroed T, which is plain old data valid for any bit pattern (trait
    // contract), zeros included; the source is bytes, the target a local.
    let ev = unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), v.as_mut_ptr().cast::<u8>(), bytes.len());
        v.assume_init()
    };
    (usize::from(used(&ev)) <= bytes.len() - fixed).then_some(ev)
}

/// Packed string `at` of a buffer filled up to `used`, of real length `len`
/// and cut at `max` bytes: its bytes, `None` when they lie past the bytes
/// used (the record is then not what the programs write).
pub fn packed(buf: &[u8], used: u16, at: u16, len: u32, max: usize) -> Option<&[u8]> {
    let n = (len as usize).min(max);
    let at = usize::from(at);
    let end = at.checked_add(n)?;
    if end > usize::from(used) {
        return None;
    }
    buf.get(at..end)
}

/// The packed strings of one record, read as stream fields
/// ([`str_and_len`]); `bad` is set once one lies past the bytes used (that
/// field is then absent, and the event should say its reads failed).
pub struct PackedStrs<'a> {
    buf: &'a [u8],
    used: u16,
    at: &'a [u16],
    pub bad: bool,
}

impl<'a> PackedStrs<'a> {
    pub fn new(buf: &'a [u8], used: u16, at: &'a [u16]) -> PackedStrs<'a> {
        PackedStrs {
            buf,
            used,
            at,
            bad: false,
        }
    }

    /// Packed string `i` of real length `len`, cut at `max` bytes.
    pub fn field(&mut self, i: usize, len: u32, max: usize) -> (Option<String>, Option<u32>) {
        let bytes = self
            .at
            .get(i)
            .and_then(|&at| packed(self.buf, self.used, at, len, max));
        match bytes {
            Some(b) => str_and_len(b, len),
            None => {
                self.bad = true;
                (None, None)
            }
        }
    }
}

/// The first `min(len, buf.len())` bytes of a string field, lossily as UTF-8.
pub fn field_str(buf: &[u8], len: u32) -> String {
    let n = (len as usize).min(buf.len());
    String::from_utf8_lossy(buf.get(..n).unwrap_or_default()).into_owned()
}

/// A string field for a family's typed stream fields: absent when empty;
/// the real length beside it only when the buffer cut it short.
pub fn str_and_len(buf: &[u8], len: u32) -> (Option<String>, Option<u32>) {
    if len == 0 {
        return (None, None);
    }
    (
        Some(field_str(buf, len)),
        (len as usize > buf.len()).then_some(len),
    )
}

/// The value of `#define NAME VALUE` in C source `text`, if it is a plain
/// integer (decimal, hex, or `(a << b)`); for tests comparing constants.
pub fn c_define(text: &str, name: &str) -> Option<u64> {
    let line = text
        .lines()
        .find(|l| l.starts_with(&format!("#define {name} ")))?;
    let value = line
        .split_once(name)?
        .1
        .split("/*")
        .next()?
        .trim()
        .trim_start_matches('(')
        .trim_end_matches(')');
    let num = |s: &str| {
        let s = s.trim().trim_end_matches("ULL");
        s.strip_prefix("0x")
            .map_or_else(|| s.parse().ok(), |h| u64::from_str_radix(h, 16).ok())
    };
    match value.split_once("<<") {
        Some((a, b)) => Some(num(a)? << num(b)?),
        None => num(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_truncate() {
        assert_eq!(field_str(b"GETxxxx", 3), "GET");
        assert_eq!(field_str(b"GET", 1000), "GET");
        assert_eq!(str_and_len(b"GET", 0), (None, None));
        assert_eq!(str_and_len(b"GET", 3), (Some("GET".into()), None));
        assert_eq!(str_and_len(b"GET", 9), (Some("GET".into()), Some(9)));
    }

    /// A struct with a 4-byte fixed part and an 8-byte packed buffer.
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Packed {
        used: u16,
        at: [u16; 1],
        buf: [u8; 8],
    }
    // SAFETY: repr(C), integers and byte arrays only, no padding (12 bytes).
    unsafe impl Plain for Packed {}

    #[test]
    fn packed_records_carry_only_the_bytes_used() {
        let used = |p: &Packed| p.used;
        // used 3, string 0 at 0: "abc", and nothing past it.
        let rec = [3, 0, 0, 0, b'a', b'b', b'c'];
        let p = read_packed(&rec, 8, used).expect("decodes");
        assert_eq!(packed(&p.buf, p.used, p.at[0], 3, 8), Some(&b"abc"[..]));
        // Cut at the buffer's size: the bytes kept, not the real length.
        assert_eq!(packed(&p.buf, p.used, p.at[0], 300, 2), Some(&b"ab"[..]));
        // Past the used bytes, or from past them: not what the programs write.
        assert_eq!(packed(&p.buf, p.used, p.at[0], 4, 8), None);
        assert_eq!(packed(&p.buf, p.used, 7, 1, 8), None);
        assert_eq!(packed(&p.buf, p.used, u16::MAX, 1, 8), None);
        // Shorter than the fixed part, shorter than it says, longer than the struct.
        assert!(read_packed(&rec[..3], 8, used).is_none());
        assert!(read_packed(&rec[..6], 8, used).is_none());
        assert!(read_packed(&[0u8; 13], 8, used).is_none());
        // A whole struct (an in-flight map entry) reads as one.
        let mut whole = [0u8; 12];
        whole[..7].copy_from_slice(&rec);
        assert!(read_packed(&whole, 8, used).is_some());
        assert!(read_packed(&whole, 13, used).is_none());
    }

    /// The constants here are the header's.
    #[test]
    fn constants_match_the_header() {
        let header = include_str!("../../ebpf/lib/abi.h");
        for (name, value) in [
            ("GP_FLAG_ERROR", u64::from(FLAG_ERROR)),
            ("GP_FLAG_READ_FAILED", u64::from(FLAG_READ_FAILED)),
            ("GP_LOST_RINGBUF", u64::from(LOST_RINGBUF)),
            ("GP_LOST_INFLIGHT", u64::from(LOST_INFLIGHT)),
            ("GP_LOST_READ", u64::from(LOST_READ)),
            ("GP_LOST_UNPAIRED", u64::from(LOST_UNPAIRED)),
            ("GP_LOST_MAX", u64::from(LOST_MAX)),
            ("GP_NO_OFFSET", NO_OFFSET),
            ("GP_OFF_MAX", OFF_MAX as u64),
            ("GP_MODES", MODES as u64),
            ("GP_SLOTS", SLOTS as u64),
            ("GP_REG_NONE", u64::from(REG_NONE)),
            ("GP_HOOKS_MAX", HOOKS_MAX as u64),
        ] {
            assert_eq!(c_define(header, name), Some(value), "{name}");
        }
        assert_eq!(c_define("#define X (8 << 20) /* c */", "X"), Some(8 << 20));
    }
}
