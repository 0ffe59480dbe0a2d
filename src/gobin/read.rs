//! Bounds-checked reads of integers and strings from untrusted bytes, in the
//! byte order and pointer size of the binary being read.
//!
//! Every accessor returns `None` when the read would leave the slice (or an
//! offset computation would overflow), so parsers turn short input into
//! errors with `?`/`ok_or` instead of panicking.

/// Byte order and pointer size of a target binary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Words {
    pub big_endian: bool,
    /// 4 or 8.
    pub ptr_size: u8,
}

impl Words {
    pub fn new(big_endian: bool, ptr_size: u8) -> Words {
        Words {
            big_endian,
            ptr_size,
        }
    }

    pub fn u32(self, data: &[u8], off: usize) -> Option<u32> {
        let b: [u8; 4] = bytes_at(data, off)?;
        Some(if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    pub fn u64(self, data: &[u8], off: usize) -> Option<u64> {
        let b: [u8; 8] = bytes_at(data, off)?;
        Some(if self.big_endian {
            u64::from_be_bytes(b)
        } else {
            u64::from_le_bytes(b)
        })
    }

    /// A pointer-sized unsigned word (Go's `uintptr`, `int` on 64-bit).
    pub fn word(self, data: &[u8], off: usize) -> Option<u64> {
        match self.ptr_size {
            4 => self.u32(data, off).map(u64::from),
            8 => self.u64(data, off),
            _ => None,
        }
    }

    /// Offset of the `index`th pointer-sized word after `base`.
    pub fn word_off(self, base: usize, index: usize) -> Option<usize> {
        index
            .checked_mul(usize::from(self.ptr_size))?
            .checked_add(base)
    }
}

/// `N` bytes at `off`, or `None` when they are not all there.
pub(crate) fn bytes_at<const N: usize>(data: &[u8], off: usize) -> Option<[u8; N]> {
    let end = off.checked_add(N)?;
    data.get(off..end)?.try_into().ok()
}

/// `len` bytes at `off`.
pub(crate) fn slice_at(data: &[u8], off: usize, len: usize) -> Option<&[u8]> {
    data.get(off..off.checked_add(len)?)
}

/// A NUL-terminated string starting at `off` (without the NUL).
pub(crate) fn cstr_at(data: &[u8], off: usize) -> Option<&[u8]> {
    let rest = data.get(off..)?;
    let end = memchr_nul(rest)?;
    rest.get(..end)
}

fn memchr_nul(b: &[u8]) -> Option<usize> {
    memchr::memchr(0, b)
}

/// A Go `uvarint` at `off`: the value and the offset just past it.
pub(crate) fn uvarint(data: &[u8], mut off: usize) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    for shift in (0..70).step_by(7) {
        let byte = *data.get(off)?;
        off += 1;
        // The 10th byte may only carry the top bit of a u64.
        if shift == 63 && byte > 1 {
            return None;
        }
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Some((value, off));
        }
    }
    None
}

/// Convert a target-sized value to `usize`, failing instead of truncating.
pub(crate) fn to_usize(v: u64) -> Option<usize> {
    usize::try_from(v).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_byte_orders() {
        let d = [1u8, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(Words::new(false, 8).u32(&d, 0), Some(0x0403_0201));
        assert_eq!(Words::new(true, 8).u32(&d, 0), Some(0x0102_0304));
        assert_eq!(Words::new(false, 4).word(&d, 4), Some(0x0807_0605));
        assert_eq!(Words::new(true, 8).word(&d, 0), Some(0x0102_0304_0506_0708));
    }

    #[test]
    fn short_reads_fail() {
        let d = [1u8, 2, 3];
        assert_eq!(Words::new(false, 8).u32(&d, 0), None);
        assert_eq!(Words::new(false, 8).u32(&d, usize::MAX), None);
        assert_eq!(Words::new(false, 8).word(&d, 0), None);
        assert_eq!(slice_at(&d, 2, usize::MAX), None);
        assert_eq!(cstr_at(&d, 0), None);
        assert_eq!(cstr_at(b"ab\0c", 0), Some(&b"ab"[..]));
        assert_eq!(cstr_at(b"ab\0c", 9), None);
    }

    #[test]
    fn uvarints() {
        assert_eq!(uvarint(&[0x05], 0), Some((5, 1)));
        assert_eq!(uvarint(&[0xac, 0x02], 0), Some((300, 2)));
        assert_eq!(uvarint(&[0xac], 0), None);
        assert_eq!(uvarint(&[0xff; 11], 0), None);
        assert_eq!(
            uvarint(
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
                0
            ),
            Some((u64::MAX, 10))
        );
    }
}
