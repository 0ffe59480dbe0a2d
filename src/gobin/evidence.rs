//! Module versions a binary shows when its build info does not list them:
//! a program built in GOPATH mode (Debian builds its Go packages so) records
//! no dependencies, but some modules write their own version into the
//! binary. Today: google.golang.org/grpc, whose user agent is
//! `grpc-go/<version>` (`grpc.Version`, a constant since gRPC 1.0). A version
//! is believed only when the binary holds exactly one; it is never used
//! when the build info names the module. The marker is part of a string
//! literal, so the survey searches only the part of the file that holds the
//! literals when the binary's moduledata bounds it
//! ([`super::GoBinary::literal_range`]), else every data section.

use super::Module;

/// (module path, the bytes that precede its version in the binary).
const MARKERS: [(&str, &[u8]); 1] = [("google.golang.org/grpc", b"grpc-go/")];

/// The paths of the modules whose versions evidence can show.
pub fn module_paths() -> impl Iterator<Item = &'static str> {
    MARKERS.iter().map(|(path, _)| *path)
}

/// The modules whose versions `data` shows, each as `v<version>`.
pub fn module_versions(data: &[u8]) -> Vec<Module> {
    module_versions_in(&[data])
}

/// [`module_versions`] over several parts of a file (its data sections,
/// [`super::GoBinary::data_parts`]), taken together.
pub fn module_versions_in(parts: &[&[u8]]) -> Vec<Module> {
    module_versions_unless(parts, |_| false)
}

/// [`module_versions_in`] for the modules `known` does not know already:
/// the others' markers are not searched for (on a 50 MB binary the search
/// is a pass over more than 10 MB of data sections).
pub fn module_versions_unless(parts: &[&[u8]], known: impl Fn(&str) -> bool) -> Vec<Module> {
    let mut search = Search::new(known);
    for data in parts {
        search.search(data, data.len());
    }
    search.finish()
}

/// The search for the markers of the modules not known already, a chunk
/// at a time: a marker counts in the chunk where it starts, and the bytes
/// after the chunk that its version can take ([`Search::margin`]) are read
/// with it, so that chunks cut anywhere (and searched in any order, by
/// several threads) find what one pass over each part finds. (That needs
/// markers that cannot overlap themselves, as `grpc-go/` cannot: a pass
/// finds matches left to right without overlaps, and one that began in the
/// chunk before could otherwise hide one that begins in this one.)
#[derive(Clone)]
pub(crate) struct Search {
    /// (module path, marker's finder, the distinct versions seen).
    markers: Vec<(&'static str, memchr::memmem::Finder<'static>, Vec<String>)>,
}

impl Search {
    /// A search for the markers of the modules `known` does not know.
    pub fn new(known: impl Fn(&str) -> bool) -> Search {
        let markers = MARKERS
            .iter()
            .filter(|(path, _)| !known(path))
            .map(|(path, marker)| (*path, memchr::memmem::Finder::new(*marker), Vec::new()))
            .collect();
        Search { markers }
    }

    /// Whether there is nothing to search for.
    pub fn is_empty(&self) -> bool {
        self.markers.is_empty()
    }

    /// How many bytes after a chunk must be read with it (to the end of the
    /// part at most): a marker starting in the chunk, and its version.
    pub fn margin(&self) -> usize {
        self.markers
            .iter()
            .map(|(_, f, _)| f.needle().len() + VERSION_BYTES)
            .max()
            .unwrap_or(0)
    }

    /// Search the markers that start in `bytes[..core]`; `bytes` goes on
    /// [`Search::margin`] bytes past `core`, or to the end of its part.
    pub fn search(&mut self, bytes: &[u8], core: usize) {
        for (_, finder, found) in &mut self.markers {
            let len = finder.needle().len();
            for at in finder.find_iter(bytes) {
                if at >= core {
                    break;
                }
                let Some(v) = version_at(&bytes[at + len..]) else {
                    continue;
                };
                if !found.contains(&v) {
                    found.push(v);
                }
            }
        }
    }

    /// Take in what another search of other chunks found.
    pub fn merge(&mut self, other: Search) {
        for ((_, _, found), (_, _, more)) in self.markers.iter_mut().zip(other.markers) {
            for v in more {
                if !found.contains(&v) {
                    found.push(v);
                }
            }
        }
    }

    /// The modules whose versions the chunks showed: those of which
    /// exactly one version was seen.
    pub fn finish(self) -> Vec<Module> {
        self.markers
            .into_iter()
            .filter_map(|(path, _, found)| match found.as_slice() {
                [v] => Some(Module::new(path, &format!("v{v}"), "")),
                _ => None,
            })
            .collect()
    }
}

/// The most bytes [`version_at`] reads: 32 of digits and dots, and `-dev`.
const VERSION_BYTES: usize = 32 + 4;

/// A release version (`1.33.3`, `1.86.0-dev`) at the start of `bytes`.
/// Go's linker packs string data end to end, so the version is whatever
/// digits and dots come first (and a `-dev` suffix), however the bytes go on.
fn version_at(bytes: &[u8]) -> Option<String> {
    let n = bytes
        .iter()
        .take(32)
        .position(|b| !(b.is_ascii_digit() || *b == b'.'))
        .unwrap_or(bytes.len().min(32));
    let v = std::str::from_utf8(bytes.get(..n)?).ok()?;
    let parts: Vec<&str> = v.split('.').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty() || p.len() > 5) {
        return None;
    }
    let dev = bytes.get(n..n + 4) == Some(b"-dev".as_slice());
    Some(if dev {
        format!("{v}-dev")
    } else {
        v.to_owned()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers_cannot_overlap_themselves() {
        for (_, m) in MARKERS {
            assert!((1..m.len()).all(|k| m[..k] != m[m.len() - k..]), "{m:?}");
        }
    }

    /// Searched in chunks of every size, as the chunks of
    /// [`crate::gobin::GoBinary::survey`] are, the parts give what one
    /// pass gives.
    #[test]
    fn chunks_find_what_one_pass_finds() {
        let parts: [&[u8]; 3] = [
            b"..grpc-go/1.33.3grpc-trace-bin..grpc-go/1.33.3",
            b"grpc-go/1.86.0-dev....grpc-go/1.40.0xgrpc-go/1.4",
            b"grpc-go/1.2.3",
        ];
        for take in [&parts[..1], &parts[..2], &parts[1..], &parts[2..]] {
            let whole = module_versions_in(take);
            for chunk in 1..50 {
                let mut s = Search::new(|_| false);
                for part in take {
                    let mut at = 0;
                    while at < part.len() {
                        let core = chunk.min(part.len() - at);
                        let end = (at + core + s.margin()).min(part.len());
                        let mut one = Search::new(|_| false);
                        one.search(&part[at..end], core);
                        s.merge(one);
                        at += core;
                    }
                }
                assert_eq!(s.finish(), whole, "chunks of {chunk}");
            }
        }
        assert!(Search::new(|p| p == "google.golang.org/grpc").is_empty());
    }

    #[test]
    fn versions_from_packed_strings() {
        let data = b"xxgrpc-go/1.33.3grpc-trace-binhealth...grpc-go/1.33.3";
        let m = module_versions(data);
        assert_eq!(m.len(), 1);
        assert_eq!(
            (m[0].path.as_str(), m[0].version.as_str()),
            ("google.golang.org/grpc", "v1.33.3")
        );
        assert_eq!(
            module_versions(b"grpc-go/1.86.0-devX")[0].version,
            "v1.86.0-dev"
        );
        // Two different versions: believe neither.
        assert!(module_versions(b"grpc-go/1.33.3 grpc-go/1.40.0").is_empty());
        // Not a version.
        assert!(module_versions(b"grpc-go/%s").is_empty());
        assert!(module_versions(b"grpc-go/1.2").is_empty());
        assert!(module_versions(b"").is_empty());
    }
}
