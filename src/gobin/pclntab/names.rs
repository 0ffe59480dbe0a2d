//! Which of some wanted function names the table has functions for, found
//! without reading a string per function: the function name table (Go
//! 1.16+) is searched for the names, in one pass or in chunks that several
//! threads take ([`NameSearch`]), and each name found is then confirmed by
//! a function record that points at it ([`confirm`]).

use super::{Header, walk};
use crate::gobin::read::cstr_at;

/// Which of `names` the table has functions for (exactly named). Needs
/// neither the text start nor a string per function, so it is cheap enough
/// for verdicts on binaries with tens of thousands of functions: each name
/// is looked up by a key (its length and last bytes) among the wanted
/// names, instead of being compared with every one of them.
pub(crate) fn has_functions(tab: &[u8], h: &Header, names: &[&str]) -> Result<Vec<bool>, String> {
    match name_table(tab, h) {
        Some(names_table) => {
            let search = NameSearch::new(names);
            let mut matched = Vec::new();
            search.search(names_table, h.funcname_off, h.funcname_off, h, &mut matched);
            confirm(tab, h, matched, names.len())
        }
        // Go 1.2 format (names spread over the table), or a header whose
        // name table is out of order.
        None => has_functions_by_walk(tab, h, names),
    }
}

/// The function name table (Go 1.16+), when the header places one.
pub(crate) fn name_table<'t>(tab: &'t [u8], h: &Header) -> Option<&'t [u8]> {
    tab.get(h.funcname_off..h.funcname_end)
        .filter(|_| h.funcname_off < h.funcname_end)
}

/// The search of the name table for the wanted names, a chunk at a time:
/// a name matches where its NUL lies in the chunk, and the bytes before the
/// chunk that a wanted name can span ([`NameSearch::margin`]) are read with
/// it, so that chunks cut anywhere find what one pass finds.
pub(crate) struct NameSearch<'n> {
    names: &'n [&'n str],
    filter: NameFilter,
    /// The longest wanted name plus its NUL.
    margin: usize,
}

impl<'n> NameSearch<'n> {
    pub fn new(names: &'n [&'n str]) -> NameSearch<'n> {
        NameSearch {
            names,
            filter: NameFilter::new(names),
            margin: names.iter().map(|n| n.len()).max().unwrap_or(0) + 1,
        }
    }

    /// How many bytes before a chunk must be read with it.
    pub fn margin(&self) -> usize {
        self.margin
    }

    /// Add to `out` (offset of the name in the table, index into the
    /// names) each wanted name whose NUL lies in `bytes[core_at - at..]`,
    /// `bytes` being the table's bytes from offset `at` and `start` the
    /// name table's offset. A name needs the NUL before it in `bytes`
    /// (unless it is the first of the name table): one that starts earlier
    /// is longer than every wanted name.
    pub fn search(
        &self,
        bytes: &[u8],
        at: usize,
        core_at: usize,
        h: &Header,
        out: &mut Vec<(usize, usize)>,
    ) {
        debug_assert!(at >= h.funcname_off && core_at >= at);
        let core = core_at - at;
        let mut start = (at == h.funcname_off).then_some(0);
        for_each_nul(bytes, |nul| {
            if nul >= core
                && let Some(s) = start
            {
                for i in self.filter.matches(&bytes[s..nul], self.names) {
                    out.push((at + s, i));
                }
            }
            start = Some(nul + 1);
        });
    }
}

/// The wanted names (`n` of them) that have a function, from what
/// [`NameSearch::search`] found: each matched name is confirmed by a
/// function record that names it. A name in the table is not yet a function
/// (the table names inlined functions too), and one not in it is none.
///
/// The linker writes the names in function order, each the first time it
/// is met (as a function or as a function inlined into an earlier one), so
/// name offsets mostly grow with the function index: a binary search finds
/// most functions by their name's offset in a few records. The ones it
/// misses (a function inlined before its own turn puts its name out of
/// order) are looked for in a walk over every record.
pub(crate) fn confirm(
    tab: &[u8],
    h: &Header,
    mut matched: Vec<(usize, usize)>,
    n: usize,
) -> Result<Vec<bool>, String> {
    // In offset order (chunks may have been searched in any order).
    matched.sort_unstable();
    let mut found = vec![false; n];
    // Binary search by name offset, checking every record it reads.
    let mut missed = Vec::new();
    for &(at, i) in &matched {
        if found[i] {
            continue;
        }
        let (mut lo, mut hi) = (0, h.nfunc);
        let mut hit = false;
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let entry_raw = h.field(tab, 2 * mid).ok_or("pclntab function table")?;
            let name_at = super::name_of(tab, h, mid, entry_raw)?;
            if name_at == at {
                hit = true;
                break;
            }
            if name_at < at {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        if hit {
            found[i] = true;
        } else {
            missed.push((at, i));
        }
    }
    missed.retain(|&(_, i)| !found[i]);
    if missed.is_empty() {
        return Ok(found);
    }
    let mut left = missed.len();
    let mut confirmed = vec![false; missed.len()];
    walk(tab, h, |_, name_at, _, _| {
        let from = missed.partition_point(|&(at, _)| at < name_at);
        for (j, &(at, i)) in missed.iter().enumerate().skip(from) {
            if at != name_at {
                break;
            }
            if !confirmed[j] {
                confirmed[j] = true;
                found[i] = true;
                left -= 1;
            }
        }
        Ok(left > 0)
    })?;
    Ok(found)
}

/// Call `f` with the index of every NUL byte of `bytes`, in order: 32
/// bytes a step with SSE2 (every x86-64 has it), the NULs of a step taken
/// from one mask. Over the 4.3 MB name table of Debian's prometheus, with
/// the name look-up of [`NameSearch::search`] per NUL: 0.75 ms, against 1.2
/// with a call of memchr's iterator per NUL and 1.5 eight bytes a step.
pub(super) fn for_each_nul(bytes: &[u8], mut f: impl FnMut(usize)) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{
            __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_setzero_si128,
        };
        let nuls = |half: &[u8; 16]| -> u32 {
            // SAFETY: the unaligned load reads the 16 bytes of `half`; SSE2
            // is part of x86-64 itself, so every x86-64 CPU has these
            // instructions.
            let mask = unsafe {
                let v = _mm_loadu_si128(half.as_ptr().cast::<__m128i>());
                _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_setzero_si128()))
            };
            // One bit per byte, 16 bits: the high half is zero.
            mask as u32
        };
        let (chunks, rest) = bytes.as_chunks::<32>();
        for (i, chunk) in chunks.iter().enumerate() {
            let (halves, _) = chunk.as_chunks::<16>();
            let mut zeros = 0;
            for (k, half) in halves.iter().enumerate() {
                zeros |= nuls(half) << (16 * k);
            }
            while zeros != 0 {
                f(32 * i + zeros.trailing_zeros() as usize);
                zeros &= zeros - 1;
            }
        }
        let base = 32 * chunks.len();
        for (k, &b) in rest.iter().enumerate() {
            if b == 0 {
                f(base + k);
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    for nul in memchr::memchr_iter(0, bytes) {
        f(nul);
    }
}

/// The wanted names, looked up by a cheap key (see [`name_key`]) behind a
/// 64 Kbit filter of the keys' low bits: most names are turned away by one bit.
struct NameFilter {
    /// (key, index into the names), sorted.
    keys: Vec<(u64, usize)>,
    bits: Vec<u64>,
}

impl NameFilter {
    fn new(names: &[&str]) -> NameFilter {
        let mut keys: Vec<(u64, usize)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (name_key(n.as_bytes()), i))
            .collect();
        keys.sort_unstable();
        let mut bits = vec![0u64; 1 << 10];
        for &(k, _) in &keys {
            let b = Self::bit(k);
            bits[b >> 6] |= 1 << (b & 63);
        }
        NameFilter { keys, bits }
    }

    fn bit(key: u64) -> usize {
        (key ^ (key >> 16) ^ (key >> 32) ^ (key >> 48)) as usize & 0xffff
    }

    /// The indexes of the `names` (those [`NameFilter::new`] had) equal to `name`.
    fn matches<'s>(
        &'s self,
        name: &'s [u8],
        names: &'s [&str],
    ) -> impl Iterator<Item = usize> + 's {
        let key = name_key(name);
        let b = Self::bit(key);
        let from = if self.bits[b >> 6] & (1 << (b & 63)) == 0 {
            self.keys.len()
        } else {
            self.keys.partition_point(|&(k, _)| k < key)
        };
        self.keys[from..]
            .iter()
            .take_while(move |&&(k, _)| k == key)
            .map(|&(_, i)| i)
            .filter(move |&i| names[i].as_bytes() == name)
    }
}

/// [`has_functions`] by reading each function's name (the Go 1.2 format).
fn has_functions_by_walk(tab: &[u8], h: &Header, names: &[&str]) -> Result<Vec<bool>, String> {
    let filter = NameFilter::new(names);
    let mut found = vec![false; names.len()];
    let mut left = names.len();
    walk(tab, h, |_, name_at, _, _| {
        // A name without its NUL is no name (and matches nothing).
        if let Some(name) = cstr_at(tab, name_at) {
            for i in filter.matches(name, names) {
                if !found[i] {
                    found[i] = true;
                    left -= 1;
                }
            }
        }
        Ok(left > 0)
    })?;
    Ok(found)
}

/// A cheap lookup key of a function name: its length and its last 8 bytes
/// (where Go names differ most: the method or function itself).
fn name_key(name: &[u8]) -> u64 {
    let tail = &name[name.len().saturating_sub(8)..];
    // One load for the usual name of 8 bytes or more (the same value as
    // the bytes folded in order).
    let last = match <[u8; 8]>::try_from(tail) {
        Ok(eight) => u64::from_be_bytes(eight),
        Err(_) => tail.iter().fold(0u64, |k, &b| (k << 8) | u64::from(b)),
    };
    last ^ (name.len() as u64).rotate_right(8)
}
