//! Struct-field offsets for one Go binary: from its DWARF when it has the
//! type, else from the embedded [`table`] keyed by the exact Go (or module)
//! version and GOARCH, else reported as unknown — never guessed.
//!
//! The NDJSON form ([`Resolved`], one object per line) is what
//! `goprobe offsets --json` prints and what `goprobe attach --offsets` reads
//! back with [`parse_ndjson`].

pub mod table;

use std::collections::BTreeMap;
use std::io::BufRead;

use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, Probe, Target, WantedField};
use crate::dwarf::DwarfTypes;
use crate::gobin::{BuildInfo, GoBinary, Module};
use table::{Layouts, Table, is_stdlib_package, package_of};

/// Where an offset came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The binary's own DWARF.
    Dwarf,
    /// The embedded offsets table.
    Table,
    /// Neither: the field is unknown.
    Unknown,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::Dwarf => "dwarf",
            Source::Table => "table",
            Source::Unknown => "unknown",
        })
    }
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
    /// Why the field is unknown.
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
    pub fn for_binary(bin: &GoBinary, goarch: &str) -> Key {
        let mut key = Key::from_build_info(bin.build_info(), goarch);
        for m in crate::gobin::evidence::module_versions(bin.data()) {
            if !key.modules.iter().any(|k| k.path == m.path) {
                key.modules.push(m);
            }
        }
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

/// Resolves fields for one binary.
pub struct Resolver<'a> {
    /// The binary's DWARF types, indexed on first use (or why there are
    /// none): indexing costs tens of milliseconds on a large binary, and a
    /// verdict answered by the table never needs it.
    dwarf: std::cell::OnceCell<Result<DwarfTypes, String>>,
    /// The ELF file to index DWARF from when `dwarf` is still empty.
    elf: Option<&'a [u8]>,
    table: &'a Table,
    key: Key,
}

impl<'a> Resolver<'a> {
    /// A resolver over already-indexed DWARF (or none) and a table.
    pub fn new(dwarf: Result<DwarfTypes, String>, table: &'a Table, key: Key) -> Resolver<'a> {
        Resolver {
            dwarf: std::cell::OnceCell::from(dwarf),
            elf: None,
            table,
            key,
        }
    }

    /// A resolver for an opened Go binary: indexes its DWARF when it has some.
    /// `go_version` overrides the build info's version for table look-ups.
    pub fn for_binary(
        bin: &'a GoBinary,
        table: &'a Table,
        go_version: Option<&str>,
    ) -> Resolver<'a> {
        let goarch = String::from(bin.elf().arch.clone());
        let mut key = Key::for_binary(bin, &goarch);
        if let Some(v) = go_version {
            key.go_version = normalize_go_version(v);
        }
        if bin.elf().dwarf {
            Resolver {
                dwarf: std::cell::OnceCell::new(),
                elf: Some(bin.data()),
                table,
                key,
            }
        } else {
            Resolver::new(Err("no DWARF".to_string()), table, key)
        }
    }

    /// The DWARF types, indexed now if this is the first use.
    fn dwarf(&self) -> Result<&DwarfTypes, &str> {
        self.dwarf
            .get_or_init(|| match self.elf {
                Some(data) => {
                    DwarfTypes::from_elf(data).map_err(|e| format!("DWARF unreadable: {e}"))
                }
                None => Err("no DWARF".to_string()),
            })
            .as_ref()
            .map_err(String::as_str)
    }

    pub fn key(&self) -> &Key {
        &self.key
    }

    pub fn has_dwarf(&self) -> bool {
        self.dwarf().is_ok()
    }

    /// The catalog fields this binary needs (per its Go and module versions).
    pub fn catalog_fields(&self, catalog: &Catalog) -> Vec<String> {
        let lookup = |m: &str| self.key.module_version(m);
        catalog.fields_for(&Target {
            go_version: &self.key.go_version,
            module_version: &lookup,
        })
    }

    /// The fields `probes` need for this binary's Go and module versions.
    pub fn wanted_fields(&self, probes: &[&Probe]) -> Vec<WantedField> {
        let lookup = |m: &str| self.key.module_version(m);
        Catalog::wanted_fields(
            probes,
            &Target {
                go_version: &self.key.go_version,
                module_version: &lookup,
            },
        )
    }

    /// Resolve each wanted field, marking the optional ones.
    pub fn resolve_wanted(&self, wanted: &[WantedField]) -> Vec<Resolved> {
        wanted
            .iter()
            .map(|w| Resolved {
                optional: w.optional,
                ..self.resolve(&w.field)
            })
            .collect()
    }

    /// Resolve one `PKG.Type.field`: DWARF when it describes the type, else the table.
    pub fn resolve(&self, field: &str) -> Resolved {
        let unknown = |reason: String| Resolved {
            field: field.to_string(),
            offset: None,
            size: None,
            type_size: None,
            source: Source::Unknown,
            reason: Some(reason),
            optional: false,
        };
        let Some(pkg) = package_of(field) else {
            return unknown(format!("`{field}` is not of the form PKG.Type.field"));
        };
        let dwarf_reason = match self.dwarf() {
            Err(why) => why.to_string(),
            Ok(types) => match types.field(field) {
                Ok(l) => {
                    return Resolved {
                        field: field.to_string(),
                        offset: Some(l.offset),
                        size: l.size,
                        type_size: l.type_size,
                        source: Source::Dwarf,
                        reason: None,
                        optional: false,
                    };
                }
                // DWARF has the type but not the field: the field does not
                // exist in this version; the table cannot know better.
                Err(e @ crate::dwarf::FieldError::NoField { .. }) => return unknown(e.to_string()),
                Err(e) => e.to_string(),
            },
        };
        self.lookup_table(field, pkg, Some(dwarf_reason))
    }

    /// Whether `field` can be resolved, asking the cheapest source first: the
    /// table (exact for the Go or module version it was generated from, so
    /// it never disagrees with that version's DWARF), then DWARF. For
    /// verdicts, which need a yes or no and not the value's source.
    pub fn resolvable(&self, field: &str) -> Resolved {
        if let Some(pkg) = package_of(field) {
            let from_table = self.lookup_table(field, pkg, None);
            if from_table.is_known() {
                return from_table;
            }
        }
        self.resolve(field)
    }

    /// `field` from the offsets table; `dwarf_reason` says why DWARF did not answer.
    fn lookup_table(&self, field: &str, pkg: &str, dwarf_reason: Option<String>) -> Resolved {
        let unknown = |reason: String| Resolved {
            field: field.to_string(),
            offset: None,
            size: None,
            type_size: None,
            source: Source::Unknown,
            reason: Some(reason),
            optional: false,
        };
        let (layouts, slot): (Option<&Layouts>, String) = if is_stdlib_package(pkg) {
            (
                self.table.stdlib(&self.key.go_version, &self.key.goarch),
                format!("{}/{}", self.key.go_version, self.key.goarch),
            )
        } else {
            match self.key.module_for(pkg) {
                Ok((path, version)) => (
                    self.table.module(&path, &version, &self.key.goarch),
                    format!("{path}@{version}/{}", self.key.goarch),
                ),
                Err(why) => return unknown(join_reasons(dwarf_reason, why)),
            }
        };
        let Some(layouts) = layouts else {
            return unknown(join_reasons(
                dwarf_reason,
                format!("offsets table has no entry for {slot}"),
            ));
        };
        let Some(entry) = layouts.fields.get(field) else {
            return unknown(join_reasons(
                dwarf_reason,
                format!("offsets table entry {slot} lacks this field"),
            ));
        };
        let type_size = crate::dwarf::split_field_name(field)
            .and_then(|(ty, _)| layouts.types.get(ty).copied());
        Resolved {
            field: field.to_string(),
            offset: Some(entry.offset),
            size: Some(entry.size),
            type_size,
            source: Source::Table,
            reason: None,
            optional: false,
        }
    }

    pub fn resolve_all(&self, fields: &[String]) -> Vec<Resolved> {
        fields.iter().map(|f| self.resolve(f)).collect()
    }
}

fn join_reasons(first: Option<String>, second: String) -> String {
    match first {
        Some(f) => format!("{f}; {second}"),
        None => second,
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
    use super::table::{Entry, FieldEntry};
    use super::*;

    fn module(path: &str, version: &str, replace: Option<Module>) -> Module {
        Module {
            path: path.into(),
            version: version.into(),
            sum: String::new(),
            replace: replace.map(Box::new),
        }
    }

    fn table() -> Table {
        let mut t = Table::default();
        let mut l = Layouts::default();
        l.fields.insert(
            "net/http.Request.Method".into(),
            FieldEntry {
                offset: 0,
                size: 16,
            },
        );
        l.types.insert("net/http.Request".into(), 248);
        t.insert(Entry {
            go: Some("go1.22.10".into()),
            module: None,
            version: None,
            goarch: "amd64".into(),
            layouts: l,
        });
        let mut m = Layouts::default();
        m.fields.insert(
            "example.com/greet.Greeter.name".into(),
            FieldEntry {
                offset: 8,
                size: 16,
            },
        );
        for v in ["v1.3.0", "v0.0.0-20240102030405-abcdef123456"] {
            t.insert(Entry {
                go: None,
                module: Some("example.com/greet".into()),
                version: Some(v.into()),
                goarch: "amd64".into(),
                layouts: m.clone(),
            });
        }
        t
    }

    fn key(go: &str, modules: Vec<Module>) -> Key {
        Key {
            go_version: go.into(),
            goarch: "amd64".into(),
            modules,
        }
    }

    #[test]
    fn stdlib_from_table_exact_version_only() {
        let t = table();
        let r = Resolver::new(Err("no DWARF".into()), &t, key("go1.22.10", vec![]));
        let got = r.resolve("net/http.Request.Method");
        assert_eq!(
            (got.offset, got.size, got.type_size, got.source),
            (Some(0), Some(16), Some(248), Source::Table)
        );
        let r = Resolver::new(Err("no DWARF".into()), &t, key("go1.22.11", vec![]));
        let got = r.resolve("net/http.Request.Method");
        assert_eq!(got.source, Source::Unknown);
        assert_eq!(got.offset, None);
        assert!(got.reason.unwrap().contains("no entry for go1.22.11/amd64"));
    }

    #[test]
    fn modules_use_replacement_and_exact_pseudo_versions() {
        let t = table();
        // Required v1.2.0 but replaced by v1.3.0: the replacement's layout is used.
        let k = key(
            "go1.22.10",
            vec![module(
                "example.com/greet",
                "v1.2.0",
                Some(module("example.com/greet", "v1.3.0", None)),
            )],
        );
        let r = Resolver::new(Err("no DWARF".into()), &t, k);
        assert_eq!(r.resolve("example.com/greet.Greeter.name").offset, Some(8));
        // Not replaced: v1.2.0 is not in the table.
        let k = key(
            "go1.22.10",
            vec![module("example.com/greet", "v1.2.0", None)],
        );
        let r = Resolver::new(Err("no DWARF".into()), &t, k);
        assert_eq!(
            r.resolve("example.com/greet.Greeter.name").source,
            Source::Unknown
        );
        // Pseudo-versions match exactly, not by their base version.
        let k = key(
            "go1.22.10",
            vec![module(
                "example.com/greet",
                "v0.0.0-20240102030405-abcdef123456",
                None,
            )],
        );
        let r = Resolver::new(Err("no DWARF".into()), &t, k);
        assert_eq!(r.resolve("example.com/greet.Greeter.name").offset, Some(8));
        let k = key(
            "go1.22.10",
            vec![module(
                "example.com/greet",
                "v0.0.0-20240102030405-abcdef000000",
                None,
            )],
        );
        let r = Resolver::new(Err("no DWARF".into()), &t, k);
        assert_eq!(
            r.resolve("example.com/greet.Greeter.name").source,
            Source::Unknown
        );
        // A directory replacement has no version.
        let k = key(
            "go1.22.10",
            vec![module(
                "example.com/greet",
                "v1.3.0",
                Some(module("../greet", "", None)),
            )],
        );
        let r = Resolver::new(Err("no DWARF".into()), &t, k);
        let got = r.resolve("example.com/greet.Greeter.name");
        assert!(got.reason.unwrap().contains("local directory"));
        // Subpackages belong to the longest matching module path.
        let k = key(
            "go1.22.10",
            vec![
                module("example.com", "v9.0.0", None),
                module("example.com/greet", "v1.3.0", None),
            ],
        );
        assert_eq!(
            k.module_for("example.com/greet/sub").unwrap(),
            ("example.com/greet".into(), "v1.3.0".into())
        );
        assert_eq!(
            k.module_version("example.com/greet").as_deref(),
            Some("v1.3.0")
        );
    }

    #[test]
    fn bad_names_are_unknown() {
        let t = table();
        let r = Resolver::new(Err("no DWARF".into()), &t, key("go1.22.10", vec![]));
        assert_eq!(r.resolve("Method").source, Source::Unknown);
        assert_eq!(r.resolve("net/http.Request.Nope").source, Source::Unknown);
    }

    #[test]
    fn ndjson_round_trip() {
        let t = table();
        let r = Resolver::new(Err("no DWARF".into()), &t, key("go1.22.10", vec![]));
        let all = r.resolve_all(&["net/http.Request.Method".into(), "runtime.g.goid".into()]);
        let text: String = all
            .iter()
            .map(|x| serde_json::to_string(x).unwrap() + "\n")
            .collect();
        assert!(text.contains("\"offset\":null"));
        let back = parse_ndjson(text.as_bytes()).unwrap();
        assert_eq!(back["net/http.Request.Method"], all[0]);
        assert_eq!(back["runtime.g.goid"], all[1]);
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
