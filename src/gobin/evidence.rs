//! Module versions a binary shows when its build info does not list them:
//! a program built in GOPATH mode (Debian builds its Go packages so) records
//! no dependencies, but some modules write their own version into the
//! binary. Today: google.golang.org/grpc, whose user agent is
//! `grpc-go/<version>` (`grpc.Version`, a constant since gRPC 1.0). A version
//! is believed only when the binary holds exactly one; it is never used
//! when the build info names the module.

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
    let mut out = Vec::new();
    for (path, marker) in MARKERS {
        if known(path) {
            continue;
        }
        let finder = memchr::memmem::Finder::new(marker);
        let mut found: Vec<String> = Vec::new();
        for data in parts {
            for at in finder.find_iter(data) {
                let Some(v) = version_at(&data[at + marker.len()..]) else {
                    continue;
                };
                if !found.contains(&v) {
                    found.push(v);
                }
            }
        }
        if let [v] = found.as_slice() {
            out.push(Module::new(path, &format!("v{v}"), ""));
        }
    }
    out
}

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
