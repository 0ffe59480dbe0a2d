//! The part of the offsets table one binary can use: the layout groups of
//! its Go minor release for its GOARCH, and the entries of the modules it
//! may hold. build.rs cuts the built-in table's JSON into these parts
//! (`$OUT_DIR/table_parts.rs`), so that a run parses only its binary's.
//!
//! Why: the built-in table is some 200 KB of JSON, and parsing all of it
//! into maps (thousands of strings) took a tenth of the CPU time of
//! `goprobe inspect` on a large binary, which asks the table about one
//! minor release, one GOARCH and a few modules. Every look-up that
//! [`Table`] answers for that binary ([`Table::stdlib`],
//! [`Table::stdlib_agreed`], [`Table::split_minor`], [`Table::module`])
//! answers the same from the part; [`Table::part`] cuts the same part from
//! the whole table, which is what the tests compare with.

use super::{ByArch, FORMAT, Layouts, Minor, Table, TableError, minor_of};

/// The built-in table's parts, as build.rs cut them.
mod builtin {
    #![allow(clippy::type_complexity)]
    include!(concat!(env!("OUT_DIR"), "/table_parts.rs"));
}

/// One part as build.rs writes it: (minor key, `verified` JSON, per GOARCH
/// the layouts JSON) or (module path, version, per GOARCH the layouts JSON).
type Part<'s> = (&'s str, &'s str, &'s [(&'s str, &'s str)]);

/// What one binary can ask the table.
#[derive(Debug, Clone, Copy)]
pub struct Wanted<'a> {
    /// The binary's Go version (`go1.22.10`): its minor's layout groups are
    /// kept (none for a version without one: a prerelease, a devel build).
    pub go_version: &'a str,
    pub goarch: &'a str,
    /// Module paths whose entries are kept (the replacements' paths
    /// included: those are the ones looked up).
    pub modules: &'a [&'a str],
}

impl Wanted<'_> {
    /// Whether the stdlib key `key` is one of the minor `minor`'s groups
    /// (the minor itself, or a group keyed by a patch release of it).
    fn keeps_minor(minor: Option<&str>, key: &str) -> bool {
        minor.is_some_and(|m| {
            key == m
                || key
                    .strip_prefix(m)
                    .is_some_and(|rest| rest.starts_with('.'))
        })
    }

    fn keeps_module(&self, path: &str) -> bool {
        self.modules.contains(&path)
    }
}

impl Table {
    /// The part of the built-in table `wanted` can use: only its parts are
    /// parsed. A table build.rs could not cut, or a part that does not
    /// parse, makes this read the whole table, so that it fails (or not)
    /// as [`Table::builtin`] does.
    pub fn builtin_for(wanted: &Wanted<'_>) -> Result<Table, TableError> {
        if builtin::SPLIT
            && builtin::FORMAT == u64::from(FORMAT)
            && let Ok(t) = Table::from_parts(builtin::STDLIB, builtin::MODULES, wanted)
        {
            return Ok(t);
        }
        Table::builtin().map(|t| t.part(wanted))
    }

    /// The parts `wanted` uses of a table cut as build.rs cuts it, parsed.
    fn from_parts(
        stdlib: &[Part<'_>],
        modules: &[Part<'_>],
        wanted: &Wanted<'_>,
    ) -> Result<Table, serde_json::Error> {
        let arch = |archs: &[(&str, &str)]| -> Result<ByArch, serde_json::Error> {
            let mut out = ByArch::new();
            for (a, layouts) in archs.iter().filter(|(a, _)| *a == wanted.goarch) {
                out.insert((*a).to_owned(), serde_json::from_str::<Layouts>(layouts)?);
            }
            Ok(out)
        };
        let minor = minor_of(wanted.go_version);
        let mut table = Table::default();
        for (key, verified, archs) in stdlib {
            if Wanted::keeps_minor(minor.as_deref(), key) {
                let m = Minor {
                    verified: serde_json::from_str(verified)?,
                    archs: arch(archs)?,
                };
                table.stdlib.insert((*key).to_owned(), m);
            }
        }
        for (path, version, archs) in modules {
            if wanted.keeps_module(path) {
                table
                    .modules
                    .entry((*path).to_owned())
                    .or_default()
                    .insert((*version).to_owned(), arch(archs)?);
            }
        }
        Ok(table)
    }

    /// The part of this table `wanted` can use (what [`Table::builtin_for`] keeps).
    pub fn part(&self, wanted: &Wanted<'_>) -> Table {
        let minor = minor_of(wanted.go_version);
        let arch_only = |archs: &ByArch| -> ByArch {
            archs
                .iter()
                .filter(|(a, _)| *a == wanted.goarch)
                .map(|(a, l)| (a.clone(), l.clone()))
                .collect()
        };
        Table {
            format: self.format,
            stdlib: self
                .stdlib
                .iter()
                .filter(|(k, _)| Wanted::keeps_minor(minor.as_deref(), k))
                .map(|(k, m)| {
                    let m = Minor {
                        verified: m.verified.clone(),
                        archs: arch_only(&m.archs),
                    };
                    (k.clone(), m)
                })
                .collect(),
            modules: self
                .modules
                .iter()
                .filter(|(p, _)| wanted.keeps_module(p))
                .map(|(p, versions)| {
                    let versions = versions
                        .iter()
                        .map(|(v, archs)| (v.clone(), arch_only(archs)))
                        .collect();
                    (p.clone(), versions)
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_parts(full: &Table, stdlib: &[Part<'_>], modules: &[Part<'_>], extra: &[&str]) {
        let mut versions: Vec<String> = full
            .stdlib
            .values()
            .flat_map(|m| m.verified.iter().cloned())
            .collect();
        versions.extend(["go1.99.1", "go1.23rc1", "", "devel go1.27-abc"].map(String::from));
        let mut paths: Vec<&str> = full.modules.keys().map(String::as_str).collect();
        paths.extend(extra);
        for go in &versions {
            for goarch in ["amd64", "arm64", "riscv64"] {
                for modules_wanted in [&[][..], &paths[..], &paths[paths.len() / 2..]] {
                    let w = Wanted {
                        go_version: go,
                        goarch,
                        modules: modules_wanted,
                    };
                    let part = Table::from_parts(stdlib, modules, &w).unwrap();
                    assert_eq!(part, full.part(&w), "{go}/{goarch} {modules_wanted:?}");
                    assert_eq!(part.split_minor(go), full.split_minor(go), "{go}");
                }
            }
        }
    }

    /// For every minor, GOARCH and module the built-in table holds (and a
    /// few it does not), the parts build.rs cut give the part cut from the
    /// whole table.
    #[test]
    fn builtin_parts_are_the_whole_tables_parts() {
        const {
            assert!(
                builtin::SPLIT,
                "build.rs could not cut src/offsets/table.json"
            )
        };
        let full = Table::builtin().unwrap();
        check_parts(
            &full,
            builtin::STDLIB,
            builtin::MODULES,
            &["google.golang.org/grpc", "example.com/none"],
        );
        let w = Wanted {
            go_version: "go1.22.10",
            goarch: "amd64",
            modules: &[],
        };
        assert_eq!(Table::builtin_for(&w).unwrap(), full.part(&w));
    }

    /// Module parts (the built-in table has none today).
    #[test]
    fn module_parts() {
        let text = r#"{"format": 2, "stdlib": {"go1.22": {"verified": ["go1.22.10"], "archs": {
              "amd64": {"fields": {"net/http.Request.Method": {"offset": 0, "size": 16}}, "types": {}}}}},
            "modules": {"example.com/a": {
              "v1.0.0": {"amd64": {"fields": {"example.com/a.T.x": {"offset": 8, "size": 8}}, "types": {"example.com/a.T": 16}},
                         "arm64": {"fields": {}, "types": {}}},
              "v1.1.0": {"arm64": {"fields": {}, "types": {}}}}}}"#;
        let full = Table::parse(text).unwrap();
        let stdlib: &[Part<'_>] = &[(
            "go1.22",
            r#"["go1.22.10"]"#,
            &[(
                "amd64",
                r#"{"fields": {"net/http.Request.Method": {"offset": 0, "size": 16}}, "types": {}}"#,
            )],
        )];
        let modules: &[Part<'_>] = &[
            (
                "example.com/a",
                "v1.0.0",
                &[
                    (
                        "amd64",
                        r#"{"fields": {"example.com/a.T.x": {"offset": 8, "size": 8}}, "types": {"example.com/a.T": 16}}"#,
                    ),
                    ("arm64", r#"{"fields": {}, "types": {}}"#),
                ],
            ),
            (
                "example.com/a",
                "v1.1.0",
                &[("arm64", r#"{"fields": {}, "types": {}}"#)],
            ),
        ];
        check_parts(&full, stdlib, modules, &["example.com/b"]);
        // A part that does not parse is an error (builtin_for then reads the whole table).
        let bad: &[Part<'_>] = &[("go1.22", "[", &[])];
        let w = Wanted {
            go_version: "go1.22.10",
            goarch: "amd64",
            modules: &[],
        };
        assert!(Table::from_parts(bad, &[], &w).is_err());
    }
}
