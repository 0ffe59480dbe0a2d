//! Struct-field offsets for one Go binary, from three sources in order: its
//! DWARF, its own runtime type descriptors (`rtype`, present in stripped
//! binaries too for every type that reaches an interface or reflection),
//! and the embedded [`table`] keyed by Go minor release (or exact module
//! version) and GOARCH. Every source that answers is compared with the
//! others: a disagreement is an error naming both values, never a pick; a
//! field no source knows is reported as unknown, never guessed.
//! [`Resolver`] is the single entry point through which every source flows.
//!
//! The NDJSON form ([`Resolved`], one object per line) is what
//! `goprobe offsets --json` prints and what `goprobe attach --offsets` reads
//! back with [`parse_ndjson`].

mod combine;
mod resolver;
pub mod table;

pub use resolver::Resolver;

use std::collections::BTreeMap;
use std::io::BufRead;

use serde::{Deserialize, Serialize};

use crate::gobin::{BuildInfo, Module};

/// Where an offset came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The binary's own DWARF.
    Dwarf,
    /// The binary's own runtime type descriptors.
    Rtype,
    /// The embedded offsets table.
    Table,
    /// No source knows the field.
    Unknown,
    /// Two sources disagree: the field is refused (the reason names both values).
    Conflict,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::Dwarf => "dwarf",
            Source::Rtype => "rtype",
            Source::Table => "table",
            Source::Unknown => "unknown",
            Source::Conflict => "conflict",
        })
    }
}

/// Which table slot an answer came from, and how closely it matches the binary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableProvenance {
    /// `go1.23`, or `MODULE@VERSION` for a third-party layout.
    pub key: String,
    /// The patch releases the table's layouts were generated from and found
    /// to agree (standard library only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verified: Vec<String>,
    /// The binary's own release (or module version) is one the table was
    /// generated from; false for another patch release of the same minor.
    pub exact: bool,
}

/// One field's answer: one NDJSON line of `goprobe offsets --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resolved {
    /// `PKG.Type.field`.
    pub field: String,
    /// Byte offset in the struct; `null` when unknown.
    pub offset: Option<u64>,
    /// Size of the field in bytes; `null` when unknown.
    pub size: Option<u64>,
    /// Size of the struct, when known.
    #[serde(default)]
    pub type_size: Option<u64>,
    pub source: Source,
    /// Other sources that gave the same answer (cross-checked).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checked: Vec<Source>,
    /// The table slot, when the table answered or agreed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<TableProvenance>,
    /// Why the field is unknown (or refused).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The probes asked about can do without this field (catalog
    /// `optional`): unknown, it does not make `goprobe offsets` fail.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
}

impl Resolved {
    pub fn is_known(&self) -> bool {
        self.offset.is_some()
    }

    /// An answer from the table for a patch release it was not generated from.
    pub fn is_inexact_table(&self) -> bool {
        self.source == Source::Table && self.table.as_ref().is_some_and(|t| !t.exact)
    }
}

/// What the table lookup is keyed by, taken from the binary (or overridden).
#[derive(Debug, Clone)]
pub struct Key {
    /// Exact Go version string, e.g. `go1.22.10`.
    pub go_version: String,
    pub goarch: String,
    /// Modules compiled in: main module and deps (with their replacements).
    pub modules: Vec<Module>,
}

impl Key {
    pub fn from_build_info(info: &BuildInfo, goarch: &str) -> Key {
        Key {
            go_version: info.go_version.clone(),
            goarch: goarch.to_string(),
            modules: info.main.iter().chain(info.deps.iter()).cloned().collect(),
        }
    }

    /// The key of an opened binary: its build info, and the versions of
    /// modules the build info does not list but the binary shows
    /// ([`crate::gobin::evidence`]: a GOPATH build of gRPC).
    pub fn for_binary(bin: &crate::gobin::GoBinary, goarch: &str) -> Key {
        let mut key = Key::from_build_info(bin.build_info(), goarch);
        // Evidence is never used for a module the build info names, so it
        // is not looked for either.
        let known = |path: &str| key.modules.iter().any(|k| k.path == path);
        let found = bin.survey(&[], known, || ()).0.modules;
        key.modules.extend(found);
        key
    }

    /// The module that provides package `pkg` (longest module path prefix),
    /// as (path, version) of the code actually compiled in: a `replace`d
    /// module's replacement. `Err` explains why there is no usable version.
    pub fn module_for(&self, pkg: &str) -> Result<(String, String), String> {
        let m = self
            .modules
            .iter()
            .filter(|m| pkg == m.path || pkg.starts_with(&format!("{}/", m.path)))
            .max_by_key(|m| m.path.len())
            .ok_or_else(|| format!("package {pkg} belongs to no module in the build info"))?;
        let (path, version) = match &m.replace {
            Some(r) => (r.path.clone(), r.version.clone()),
            None => (m.path.clone(), m.version.clone()),
        };
        if version.is_empty() || version == "(devel)" {
            return Err(match &m.replace {
                Some(r) => format!(
                    "module {} is replaced by local directory {}: no version to look up",
                    m.path, r.path
                ),
                None => format!(
                    "module {} has no version (main module or local build)",
                    m.path
                ),
            });
        }
        Ok((path, version))
    }

    /// Version of a module as compiled in (the replacement's when replaced).
    pub fn module_version(&self, module: &str) -> Option<String> {
        let m = self.modules.iter().find(|m| m.path == module)?;
        let v = m.replace.as_ref().map_or(&m.version, |r| &r.version);
        (!v.is_empty()).then(|| v.clone())
    }
}

/// Normalize a user-given Go version (`1.22.10` -> `go1.22.10`).
pub fn normalize_go_version(v: &str) -> String {
    let v = v.trim();
    if v.starts_with("go") {
        v.to_string()
    } else {
        format!("go{v}")
    }
}

/// Why a `goprobe offsets --json` stream could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("offsets line {line}: {source}")]
    Json {
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("reading offsets: {0}")]
    Io(#[from] std::io::Error),
}

/// Read `goprobe offsets --json` output back: field name -> answer (blank
/// lines skipped; a later line for the same field wins).
pub fn parse_ndjson(reader: impl BufRead) -> Result<BTreeMap<String, Resolved>, ParseError> {
    let mut out = BTreeMap::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let r: Resolved = serde_json::from_str(&line).map_err(|source| ParseError::Json {
            line: i + 1,
            source,
        })?;
        out.insert(r.field.clone(), r);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ndjson_round_trip() {
        let known = Resolved {
            field: "net/http.Request.Method".into(),
            offset: Some(0),
            size: Some(16),
            type_size: Some(248),
            source: Source::Rtype,
            checked: vec![Source::Table],
            table: Some(TableProvenance {
                key: "go1.22".into(),
                verified: vec!["go1.22.10".into()],
                exact: true,
            }),
            reason: None,
            optional: false,
        };
        let unknown = Resolved {
            field: "runtime.g.goid".into(),
            offset: None,
            size: None,
            type_size: None,
            source: Source::Unknown,
            checked: vec![],
            table: None,
            reason: Some("stripped".into()),
            optional: true,
        };
        let all = [known, unknown];
        let text: String = all
            .iter()
            .map(|x| serde_json::to_string(x).unwrap() + "\n")
            .collect();
        assert!(text.contains("\"offset\":null"));
        assert!(
            text.contains("\"source\":\"rtype\",\"checked\":[\"table\"]"),
            "{text}"
        );
        let back = parse_ndjson(text.as_bytes()).unwrap();
        assert_eq!(back["net/http.Request.Method"], all[0]);
        assert_eq!(back["runtime.g.goid"], all[1]);
        // Lines written before provenance existed still read.
        let old = "{\"field\":\"a.B.c\",\"offset\":8,\"size\":8,\"source\":\"table\"}\n";
        assert_eq!(
            parse_ndjson(old.as_bytes()).unwrap()["a.B.c"].offset,
            Some(8)
        );
        assert!(matches!(
            parse_ndjson("{\"field\":1}\n".as_bytes()),
            Err(ParseError::Json { line: 1, .. })
        ));
        assert!(parse_ndjson("\n".as_bytes()).unwrap().is_empty());
    }

    #[test]
    fn go_versions_normalize() {
        assert_eq!(normalize_go_version("1.22.10"), "go1.22.10");
        assert_eq!(normalize_go_version("go1.22.10"), "go1.22.10");
    }
}
