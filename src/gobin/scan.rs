//! The two passes over large parts of a binary that its verdicts need: the
//! search of pclntab's function name table for the hooked functions
//! ([`super::pclntab::NameSearch`]) and the search of the program's string
//! literals for module evidence ([`super::evidence`]; only the part of the
//! file that holds them, [`super::literals`], when the moduledata bounds
//! it, else every data section): 12.8 MB of Debian's 48 MB prometheus, of
//! which 4.3 MB are names (the data sections alone are 13.5 MB).
//! [`GoBinary::survey`] makes both at once.
//!
//! Both are cut into chunks that one or two threads take in turn (a second
//! thread only for large binaries: starting one costs more than it saves
//! on a few MB), so the work is shared evenly whatever each pass's size.
//! The chunks are read through the file's mapping: reading them with
//! `pread` into a buffer instead, which spares the kernel mapping and
//! unmapping some 3,000 pages, took more CPU time in all on this 2-core VM
//! (Linux 6.18), the copies costing more than the page faults (measured
//! again over prometheus' 12.8 MB with one reused buffer of 32 KB to
//! 256 KB: 0.9 to 1.1 ms more CPU per run).

use std::sync::atomic::{AtomicUsize, Ordering};

use super::evidence::Search;
use super::pclntab::{self, NameSearch};
use super::{GoBinError, GoBinary, Module, read};

/// Bytes per chunk: small enough that the threads end close together,
/// large enough that a chunk's margin and its turn are little.
const CHUNK: usize = 256 << 10;

/// From how many bytes to search a second thread is used.
const THREAD_MIN: usize = 8 << 20;

/// What [`GoBinary::survey`] found.
#[derive(Debug)]
pub struct Survey {
    /// For each name asked for, whether pclntab has a function of that name.
    pub functions: Result<Vec<bool>, GoBinError>,
    /// The modules the data sections show a version of ([`super::evidence`]),
    /// among those asked for.
    pub modules: Vec<Module>,
}

/// Which pass a chunk belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pass {
    Names,
    Data,
}

/// One chunk: its part of the file and the bytes read with it.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    pass: Pass,
    /// File offsets: the bytes to read, and the chunk's own part (what its
    /// matches must start in, or for names end in) within them.
    read_from: usize,
    read_to: usize,
    core_from: usize,
    core_to: usize,
}

/// What one thread found in the chunks it took.
struct Found {
    /// (offset of the name in the pclntab, index into the names).
    names: Vec<(usize, usize)>,
    evidence: Option<Search>,
}

impl GoBinary {
    /// Which of `names` pclntab has functions for (exact names), in one
    /// pass; cheaper than [`GoBinary::function`] when the table has not been
    /// read yet.
    pub fn has_functions(&self, names: &[&str]) -> Result<Vec<bool>, GoBinError> {
        self.survey(names, |_| true, || ()).0.functions
    }

    /// Which of `names` pclntab has functions for (as
    /// [`GoBinary::has_functions`]) and the versions of the modules that
    /// `known` does not know that the program's string literals show
    /// ([`super::evidence::module_versions_unless`] over
    /// [`GoBinary::literal_range`], or [`GoBinary::data_parts`] when the
    /// binary gives no such bound), in one survey of the binary. `meanwhile`
    /// runs on this thread before it joins the survey (while a second
    /// thread, if any, has begun).
    pub fn survey<T>(
        &self,
        names: &[&str],
        known: impl Fn(&str) -> bool,
        meanwhile: impl FnOnce() -> T,
    ) -> (Survey, T) {
        let malformed = |what: String| GoBinError::Malformed {
            path: self.path.clone(),
            what,
        };
        let search = Search::new(known);
        let mut chunks = Vec::new();
        // The function names: looked up in the function table when it has
        // been read; else searched in pclntab's name table when it has one.
        let mut functions = None;
        let mut table = None;
        if names.is_empty() {
            functions = Some(Ok(Vec::new()));
        } else if let Some(fns) = self.functions.get() {
            let has = |n: &&str| fns.iter().any(|f| f.name == *n);
            functions = Some(Ok(names.iter().map(has).collect()));
        } else {
            match &self.pclntab {
                Err(e) => functions = Some(Err(malformed(e.clone()))),
                Ok(loc) => match loc.bytes(self.data()) {
                    None => functions = Some(Err(malformed("pclntab".into()))),
                    Some(tab) => match pclntab::name_table(tab, &loc.header) {
                        Some(_) => table = Some((loc, tab)),
                        None => {
                            functions = Some(
                                pclntab::has_functions(tab, &loc.header, names).map_err(malformed),
                            );
                        }
                    },
                },
            }
        }
        let name_search = NameSearch::new(names);
        if let Some((loc, _)) = table {
            let h = &loc.header;
            let (from, to) = (loc.offset + h.funcname_off, loc.offset + h.funcname_end);
            for core_from in (from..to).step_by(CHUNK) {
                let core_to = core_from.saturating_add(CHUNK).min(to);
                chunks.push(Chunk {
                    pass: Pass::Names,
                    read_from: core_from.saturating_sub(name_search.margin()).max(from),
                    read_to: core_to,
                    core_from,
                    core_to,
                });
            }
        }
        if !search.is_empty() {
            for (off, len) in self.literal_ranges() {
                let end = off.saturating_add(len);
                for core_from in (off..end).step_by(CHUNK) {
                    let core_to = core_from.saturating_add(CHUNK).min(end);
                    chunks.push(Chunk {
                        pass: Pass::Data,
                        read_from: core_from,
                        read_to: core_to.saturating_add(search.margin()).min(end),
                        core_from,
                        core_to,
                    });
                }
            }
        }

        let next = AtomicUsize::new(0);
        let work = || {
            let mut found = Found {
                names: Vec::new(),
                evidence: (!search.is_empty()).then(|| search.clone()),
            };
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(c) = chunks.get(i) else { break };
                // Chunks are cut from ranges checked to lie in the file.
                let Some(bytes) = self.data().get(c.read_from..c.read_to) else {
                    continue;
                };
                match (c.pass, table, &mut found.evidence) {
                    (Pass::Names, Some((loc, _)), _) => name_search.search(
                        bytes,
                        c.read_from - loc.offset,
                        c.core_from - loc.offset,
                        &loc.header,
                        &mut found.names,
                    ),
                    (Pass::Data, _, Some(evidence)) => {
                        evidence.search(bytes, c.core_to - c.core_from)
                    }
                    _ => {}
                }
            }
            found
        };
        let bytes: usize = chunks.iter().map(|c| c.read_to - c.read_from).sum();
        let two = bytes >= THREAD_MIN
            && chunks.len() > 1
            && std::thread::available_parallelism().is_ok_and(|n| n.get() > 1);
        let (mut found, other, value) = std::thread::scope(|s| {
            let helper = two
                .then(|| {
                    std::thread::Builder::new()
                        .name("inspect-survey".into())
                        .spawn_scoped(s, work)
                        .ok()
                })
                .flatten();
            let value = meanwhile();
            let found = work();
            let other = helper.map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            });
            (found, other, value)
        });
        if let Some(other) = other {
            found.names.extend(other.names);
            if let (Some(e), Some(more)) = (&mut found.evidence, other.evidence) {
                e.merge(more);
            }
        }
        let functions = functions.unwrap_or_else(|| match table {
            Some((loc, tab)) => {
                pclntab::confirm(tab, &loc.header, found.names, names.len()).map_err(malformed)
            }
            None => Ok(Vec::new()),
        });
        let modules = found.evidence.map(Search::finish).unwrap_or_default();
        (Survey { functions, modules }, value)
    }

    /// The parts of the file that can hold the program's data (string
    /// literals among it): its loaded, non-code sections other than the
    /// function table; the whole file when it has no section headers.
    pub fn data_parts(&self) -> Vec<&[u8]> {
        let data = self.data();
        self.data_ranges()
            .into_iter()
            // Every section was checked to lie inside the file when it opened.
            .filter_map(|(off, len)| read::slice_at(data, off, len))
            .collect()
    }

    /// Where the program's string literals lie, as (file offset, length)
    /// pairs: [`GoBinary::literal_range`] when the binary has one, else
    /// [`GoBinary::data_ranges`].
    fn literal_ranges(&self) -> Vec<(usize, usize)> {
        self.literal_range()
            .map_or_else(|| self.data_ranges(), |r| vec![r])
    }

    /// The part of the file (offset, length) that holds every string
    /// literal of the program, when the binary's moduledata bounds it
    /// ([`super::literals`]): where the survey looks for module evidence.
    pub fn literal_range(&self) -> Option<(usize, usize)> {
        let release = super::types::GoRelease::parse(&self.build_info.go_version)?;
        let md = self.moduledata_address().ok()?;
        let (data, layout) = (self.data(), &self.layout);
        super::literals::literal_range(data, layout, &self.data_sections, md, release)
    }

    /// [`GoBinary::data_parts`] as (file offset, length) pairs.
    fn data_ranges(&self) -> Vec<(usize, usize)> {
        if self.data_sections.is_empty() {
            return vec![(0, self.data().len())];
        }
        self.data_sections
            .iter()
            .filter_map(|&(off, len)| Some((read::to_usize(off)?, read::to_usize(len)?)))
            .collect()
    }
}
