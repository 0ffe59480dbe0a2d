//! Go and module versions as the catalog's ranges compare them: numbers
//! compared numerically, pre-releases before their release.

/// A Go or module version, compared numerically; a pre-release (`rc1`,
/// `-pre`, a pseudo-version's `-2024...`) sorts before its release.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    nums: [u64; 3],
    /// `true` for a release; pre-releases compare lower.
    release: bool,
    pre: String,
}

impl Version {
    /// Parse `go1.22.10`, `1.22`, `v1.60.0`, `v0.0.0-20240102030405-abcdef123456`, `go1.23rc1`.
    pub fn parse(s: &str) -> Option<Version> {
        let s = s.trim();
        let s = s
            .strip_prefix("go")
            .or_else(|| s.strip_prefix('v'))
            .unwrap_or(s);
        let num_end = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(s.len());
        let (nums_str, rest) = s.split_at(num_end);
        let mut nums = [0u64; 3];
        let parts: Vec<&str> = nums_str.split('.').collect();
        if parts.is_empty() || parts.len() > 3 || parts.iter().any(|p| p.is_empty()) {
            return None;
        }
        for (slot, part) in nums.iter_mut().zip(&parts) {
            *slot = part.parse().ok()?;
        }
        let pre = rest.trim_start_matches(['-', '+']).to_string();
        Some(Version {
            nums,
            release: rest.is_empty() || rest.starts_with('+'),
            pre,
        })
    }
}

/// A comma-separated list of comparisons (`>=1.22, <1.23`), all of which must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionReq(Vec<(Op, Version)>);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Ge,
    Gt,
    Le,
    Lt,
    Eq,
}

impl VersionReq {
    pub fn parse(s: &str) -> Option<VersionReq> {
        let mut out = Vec::new();
        for part in s.split(',') {
            let part = part.trim();
            let (op, rest) = if let Some(r) = part.strip_prefix(">=") {
                (Op::Ge, r)
            } else if let Some(r) = part.strip_prefix("<=") {
                (Op::Le, r)
            } else if let Some(r) = part.strip_prefix('>') {
                (Op::Gt, r)
            } else if let Some(r) = part.strip_prefix('<') {
                (Op::Lt, r)
            } else if let Some(r) = part.strip_prefix('=') {
                (Op::Eq, r)
            } else {
                return None;
            };
            out.push((op, Version::parse(rest)?));
        }
        Some(VersionReq(out))
    }

    pub fn matches(&self, v: &Version) -> bool {
        self.0.iter().all(|(op, bound)| match op {
            Op::Ge => v >= bound,
            Op::Gt => v > bound,
            Op::Le => v <= bound,
            Op::Lt => v < bound,
            Op::Eq => v == bound,
        })
    }

    /// False for an unparsable version.
    pub fn matches_str(&self, v: &str) -> bool {
        Version::parse(v).is_some_and(|v| self.matches(&v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically_and_prereleases_first() {
        let v = |s: &str| Version::parse(s).unwrap();
        assert!(v("go1.22.10") > v("go1.22.9"));
        assert!(v("go1.23rc1") < v("go1.23"));
        assert!(v("1.23") == v("go1.23.0"));
        assert!(v("v0.0.0-20240102030405-abcdef123456") < v("v0.0.0"));
        assert!(Version::parse("go").is_none());
        assert!(Version::parse("1..2").is_none());
        let r = VersionReq::parse(">=1.22, <1.23").unwrap();
        assert!(r.matches_str("go1.22.10"));
        assert!(!r.matches_str("go1.23.0"));
        assert!(!r.matches_str("go1.21.13"));
        assert!(!r.matches_str("garbage"));
        assert!(VersionReq::parse("~1.2").is_none());
    }
}
