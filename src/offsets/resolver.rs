//! [`Resolver`]: one binary's field offsets from DWARF, its runtime type
//! descriptors and the table, cross-checked.
//!
//! Each source gives one of three answers for a field: known (offset and
//! sizes), absent (the source describes the type and it has no such field:
//! authoritative for that version) or unavailable (the source cannot say).
//! The first known answer wins only when every other known answer is the
//! same; a known answer against another source's "absent", or two different
//! values, is a conflict. The DWARF and descriptor indexes are built on first
//! use, so a field the table answers for a stripped binary costs one scan of
//! the type section.

use std::cell::OnceCell;

use super::table::{Table, is_stdlib_package, package_of};
use super::{Key, Resolved, Source, TableProvenance, normalize_go_version};
use crate::catalog::{Catalog, Probe, Target, WantedField};
use crate::dwarf::{DwarfTypes, FieldError};
use crate::gobin::GoBinary;
use crate::gobin::types::{RtypeError, StructIndex};

/// One source's answer.
#[derive(Debug, Clone)]
enum Answer {
    Known {
        offset: u64,
        size: Option<u64>,
        type_size: Option<u64>,
        table: Option<TableProvenance>,
    },
    /// The source has the type and says the field does not exist.
    Absent(String),
    Unavailable(String),
}

/// Resolves fields for one binary.
pub struct Resolver<'a> {
    /// The binary's DWARF types, indexed on first use (or why there are none).
    dwarf: OnceCell<Result<DwarfTypes, String>>,
    /// The binary, to index DWARF and type descriptors from on first use.
    bin: Option<&'a GoBinary>,
    rtype: OnceCell<Result<StructIndex<'a>, String>>,
    table: &'a Table,
    key: Key,
    /// Refuse table answers for patch releases the table was not generated from.
    strict: bool,
}

impl<'a> Resolver<'a> {
    /// A resolver over already-indexed DWARF (or none), no type descriptors,
    /// and a table (tests, and callers that have no binary).
    pub fn new(dwarf: Result<DwarfTypes, String>, table: &'a Table, key: Key) -> Resolver<'a> {
        Resolver {
            dwarf: OnceCell::from(dwarf),
            bin: None,
            rtype: OnceCell::from(Err("no binary".to_string())),
            table,
            key,
            strict: false,
        }
    }

    /// A resolver for an opened Go binary: its DWARF when it has some, its
    /// type descriptors, and the table. `go_version` overrides the Go
    /// version for table look-ups (and for which catalog fields apply).
    pub fn for_binary(
        bin: &'a GoBinary,
        table: &'a Table,
        go_version: Option<&str>,
    ) -> Resolver<'a> {
        let goarch = String::from(bin.elf().arch.clone());
        let mut key = Key::from_build_info(bin.build_info(), &goarch);
        if let Some(v) = go_version {
            key.go_version = normalize_go_version(v);
        }
        let dwarf = OnceCell::new();
        if !bin.elf().dwarf {
            let _ = dwarf.set(Err("stripped (no DWARF)".to_string()));
        }
        Resolver {
            dwarf,
            bin: Some(bin),
            rtype: OnceCell::new(),
            table,
            key,
            strict: false,
        }
    }

    /// Refuse (as unknown, saying why) a table answer for a Go patch release
    /// the table was not generated from, instead of using its minor's layouts.
    pub fn strict(mut self, strict: bool) -> Resolver<'a> {
        self.strict = strict;
        self
    }

    /// The DWARF types, indexed now if this is the first use.
    fn dwarf(&self) -> Result<&DwarfTypes, &str> {
        self.dwarf
            .get_or_init(|| match self.bin {
                Some(bin) => {
                    DwarfTypes::from_elf(bin.data()).map_err(|e| format!("DWARF unreadable: {e}"))
                }
                None => Err("no DWARF".to_string()),
            })
            .as_ref()
            .map_err(String::as_str)
    }

    /// The type descriptor index, built now if this is the first use.
    fn rtype(&self) -> Result<&StructIndex<'a>, &str> {
        self.rtype
            .get_or_init(|| match self.bin {
                Some(bin) => {
                    StructIndex::new(bin).map_err(|e| format!("type descriptors unreadable: {e}"))
                }
                None => Err("no binary".to_string()),
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

    pub fn resolve_all(&self, fields: &[String]) -> Vec<Resolved> {
        fields.iter().map(|f| self.resolve(f)).collect()
    }

    /// Whether `field` can be resolved: the same answer as [`Resolver::resolve`]
    /// (every source is consulted, so a conflict is never hidden).
    pub fn resolvable(&self, field: &str) -> Resolved {
        self.resolve(field)
    }

    /// Resolve one `PKG.Type.field` from every source that can answer.
    pub fn resolve(&self, field: &str) -> Resolved {
        let Some(pkg) = package_of(field) else {
            return unknown(
                field,
                Source::Unknown,
                format!("`{field}` is not of the form PKG.Type.field"),
            );
        };
        let answers = [
            (Source::Dwarf, self.ask_dwarf(field)),
            (Source::Rtype, self.ask_rtype(field)),
            (Source::Table, self.ask_table(field, pkg)),
        ];
        let strict = self.strict.then_some(self.key.go_version.as_str());
        combine(field, &answers, strict)
    }

    fn ask_dwarf(&self, field: &str) -> Answer {
        match self.dwarf() {
            Err(why) => Answer::Unavailable(why.to_string()),
            Ok(types) => match types.field(field) {
                Ok(l) => Answer::Known {
                    offset: l.offset,
                    size: l.size,
                    type_size: l.type_size,
                    table: None,
                },
                Err(e @ FieldError::NoField { .. }) => Answer::Absent(format!("DWARF: {e}")),
                Err(FieldError::NoType(t)) => Answer::Unavailable(format!("DWARF lacks {t}")),
                Err(e) => Answer::Unavailable(format!("DWARF: {e}")),
            },
        }
    }

    fn ask_rtype(&self, field: &str) -> Answer {
        match self.rtype() {
            Err(why) => Answer::Unavailable(why.to_string()),
            Ok(index) => match index.field(field) {
                Ok(l) => Answer::Known {
                    offset: l.offset,
                    size: Some(l.size),
                    type_size: Some(l.type_size),
                    table: None,
                },
                Err(e @ RtypeError::NoField { .. }) => Answer::Absent(e.to_string()),
                Err(RtypeError::NoType(t)) => {
                    Answer::Unavailable(format!("no type descriptor for {t}"))
                }
                Err(e) => Answer::Unavailable(e.to_string()),
            },
        }
    }

    fn ask_table(&self, field: &str, pkg: &str) -> Answer {
        let arch = &self.key.goarch;
        let (layouts, prov) = if is_stdlib_package(pkg) {
            let go = &self.key.go_version;
            match self.table.stdlib(go, arch) {
                Some(m) => (
                    m.layouts,
                    TableProvenance {
                        key: m.minor.to_string(),
                        verified: m.verified.to_vec(),
                        exact: m.exact,
                    },
                ),
                None => {
                    return Answer::Unavailable(match super::table::minor_of(go) {
                        Some(minor) => format!("{minor}/{arch} not in the offsets table"),
                        None => format!(
                            "offsets table covers releases only, not {go:?} (prerelease, devel or GOEXPERIMENT build)"
                        ),
                    });
                }
            }
        } else {
            match self.key.module_for(pkg) {
                Ok((path, version)) => match self.table.module(&path, &version, arch) {
                    Some(l) => (
                        l,
                        TableProvenance {
                            key: format!("{path}@{version}"),
                            verified: Vec::new(),
                            exact: true,
                        },
                    ),
                    None => {
                        return Answer::Unavailable(format!(
                            "{path}@{version}/{arch} not in the offsets table"
                        ));
                    }
                },
                Err(why) => return Answer::Unavailable(why),
            }
        };
        let Some(entry) = layouts.fields.get(field) else {
            return Answer::Unavailable(format!("offsets table {} lacks it", prov.key));
        };
        let type_size = crate::dwarf::split_field_name(field)
            .and_then(|(ty, _)| layouts.types.get(ty).copied());
        Answer::Known {
            offset: entry.offset,
            size: Some(entry.size),
            type_size,
            table: Some(prov),
        }
    }
}

/// A field nobody can answer (or that is refused), with why.
fn unknown(field: &str, source: Source, reason: String) -> Resolved {
    Resolved {
        field: field.to_string(),
        offset: None,
        size: None,
        type_size: None,
        source,
        checked: Vec::new(),
        table: None,
        reason: Some(reason),
        optional: false,
    }
}

/// Combine the sources' answers (in order of preference): the first known
/// answer, provided every other known answer agrees and no source that has
/// the type says the field does not exist. `strict`: the binary's Go version,
/// when a table answer for a release the table was not generated from must
/// be refused.
fn combine(field: &str, answers: &[(Source, Answer)], strict: Option<&str>) -> Resolved {
    // The first known answer, checked against every other.
    let Some((
        source,
        Answer::Known {
            offset,
            size,
            type_size,
            table,
        },
    )) = answers
        .iter()
        .find(|(_, a)| matches!(a, Answer::Known { .. }))
        .cloned()
    else {
        // Nothing known: an authoritative "no such field" first, else every reason.
        if let Some((_, Answer::Absent(why))) =
            answers.iter().find(|(_, a)| matches!(a, Answer::Absent(_)))
        {
            return unknown(field, Source::Unknown, why.clone());
        }
        let reasons: Vec<&str> = answers
            .iter()
            .filter_map(|(_, a)| match a {
                Answer::Unavailable(why) => Some(why.as_str()),
                _ => None,
            })
            .collect();
        return unknown(field, Source::Unknown, reasons.join(", "));
    };
    let mut checked = Vec::new();
    let mut table_prov = table;
    let mut conflicts = Vec::new();
    let shown = |o: u64, s: Option<u64>, ts: Option<u64>| {
        let mut t = format!("offset {o}");
        if let Some(s) = s {
            t.push_str(&format!(" size {s}"));
        }
        if let Some(ts) = ts {
            t.push_str(&format!(" (struct {ts})"));
        }
        t
    };
    for (other, a) in answers {
        if *other == source {
            continue;
        }
        match a {
            Answer::Known {
                offset: o,
                size: s,
                type_size: ts,
                table: tp,
            } => {
                let same_size = size.is_none() || s.is_none() || size == *s;
                let same_ts = type_size.is_none() || ts.is_none() || type_size == *ts;
                if *o == offset && same_size && same_ts {
                    checked.push(*other);
                    if table_prov.is_none() {
                        table_prov = tp.clone();
                    }
                } else {
                    conflicts.push(format!(
                        "{source} says {}, {other} says {}",
                        shown(offset, size, type_size),
                        shown(*o, *s, *ts)
                    ));
                }
            }
            Answer::Absent(why) => conflicts.push(format!(
                "{source} says {}, {other} says {why}",
                shown(offset, size, type_size)
            )),
            Answer::Unavailable(_) => {}
        }
    }
    if !conflicts.is_empty() {
        return unknown(
            field,
            Source::Conflict,
            format!("sources disagree: {}", conflicts.join("; ")),
        );
    }
    if let Some(go) = strict
        && source == Source::Table
        && let Some(tp) = table_prov.as_ref().filter(|t| !t.exact)
    {
        return unknown(
            field,
            Source::Unknown,
            format!(
                "only the offsets table knows it, from {} releases {} but not {} (--strict-offsets)",
                tp.key,
                tp.verified.join(" "),
                go
            ),
        );
    }
    Resolved {
        field: field.to_string(),
        offset: Some(offset),
        size,
        type_size,
        source,
        checked,
        table: table_prov,
        reason: None,
        optional: false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::table::{Entry, FieldEntry, Layouts};
    use super::*;
    use crate::gobin::Module;

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
        for go in ["go1.22.9", "go1.22.10"] {
            t.insert(Entry {
                go: Some(go.into()),
                module: None,
                version: None,
                goarch: "amd64".into(),
                layouts: l.clone(),
            })
            .unwrap();
        }
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
            })
            .unwrap();
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
    fn stdlib_from_the_minor_with_provenance() {
        let t = table();
        let r = Resolver::new(Err("no DWARF".into()), &t, key("go1.22.10", vec![]));
        let got = r.resolve("net/http.Request.Method");
        assert_eq!(
            (got.offset, got.size, got.type_size, got.source),
            (Some(0), Some(16), Some(248), Source::Table)
        );
        let prov = got.table.unwrap();
        assert_eq!(
            (prov.key.as_str(), prov.exact, prov.verified.len()),
            ("go1.22", true, 2)
        );
        // Another patch release of the minor: the minor's layouts, marked inexact.
        let r = Resolver::new(Err("no DWARF".into()), &t, key("go1.22.11", vec![]));
        let got = r.resolve("net/http.Request.Method");
        assert_eq!((got.offset, got.source), (Some(0), Source::Table));
        assert!(got.is_inexact_table());
        // ...which --strict-offsets refuses.
        let strict = Resolver::new(Err("no DWARF".into()), &t, key("go1.22.11", vec![]));
        let got = strict.strict(true).resolve("net/http.Request.Method");
        assert_eq!((got.offset, got.source), (None, Source::Unknown));
        assert!(got.reason.unwrap().contains("--strict-offsets"));
        // An unknown minor and a prerelease stay unknown.
        for (go, why) in [
            ("go1.23.0", "go1.23/amd64 not in the offsets table"),
            ("go1.22rc1", "releases only"),
        ] {
            let r = Resolver::new(Err("no DWARF".into()), &t, key(go, vec![]));
            let got = r.resolve("net/http.Request.Method");
            assert_eq!(got.source, Source::Unknown);
            assert!(got.reason.as_deref().unwrap().contains(why), "{got:?}");
        }
    }

    #[test]
    fn modules_use_replacement_and_exact_pseudo_versions() {
        let t = table();
        let resolve = |modules: Vec<Module>| {
            let r = Resolver::new(Err("no DWARF".into()), &t, key("go1.22.10", modules));
            r.resolve("example.com/greet.Greeter.name")
        };
        // Required v1.2.0 but replaced by v1.3.0: the replacement's layout is used.
        let got = resolve(vec![module(
            "example.com/greet",
            "v1.2.0",
            Some(module("example.com/greet", "v1.3.0", None)),
        )]);
        assert_eq!(got.offset, Some(8));
        assert_eq!(got.table.unwrap().key, "example.com/greet@v1.3.0");
        // Not replaced: v1.2.0 is not in the table.
        let got = resolve(vec![module("example.com/greet", "v1.2.0", None)]);
        assert_eq!(got.source, Source::Unknown);
        // Pseudo-versions match exactly, not by their base version.
        let got = resolve(vec![module(
            "example.com/greet",
            "v0.0.0-20240102030405-abcdef123456",
            None,
        )]);
        assert_eq!(got.offset, Some(8));
        let got = resolve(vec![module(
            "example.com/greet",
            "v0.0.0-20240102030405-abcdef000000",
            None,
        )]);
        assert_eq!(got.source, Source::Unknown);
        // A directory replacement has no version.
        let got = resolve(vec![module(
            "example.com/greet",
            "v1.3.0",
            Some(module("../greet", "", None)),
        )]);
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

    fn known(offset: u64, size: u64) -> Answer {
        Answer::Known {
            offset,
            size: Some(size),
            type_size: Some(248),
            table: None,
        }
    }

    #[test]
    fn sources_are_cross_checked() {
        let f = "net/http.Request.ctx";
        let un = || Answer::Unavailable("stripped (no DWARF)".into());
        // Agreement: the first source answers, the others are listed as checks.
        let r = combine(
            f,
            &[
                (Source::Dwarf, known(232, 16)),
                (Source::Rtype, known(232, 16)),
                (Source::Table, un()),
            ],
            None,
        );
        assert_eq!((r.offset, r.source), (Some(232), Source::Dwarf));
        assert_eq!(r.checked, [Source::Rtype]);
        // Disagreement: an error naming both values, no offset.
        let r = combine(
            f,
            &[
                (Source::Dwarf, un()),
                (Source::Rtype, known(232, 16)),
                (Source::Table, known(240, 16)),
            ],
            None,
        );
        assert_eq!((r.offset, r.source), (None, Source::Conflict));
        assert_eq!(
            r.reason.as_deref(),
            Some(
                "sources disagree: rtype says offset 232 size 16 (struct 248), table says offset 240 size 16 (struct 248)"
            )
        );
        // A source that has the type but not the field contradicts one that has it.
        let r = combine(
            f,
            &[
                (
                    Source::Dwarf,
                    Answer::Absent("DWARF: type T has no field ctx".into()),
                ),
                (Source::Rtype, known(232, 16)),
                (Source::Table, un()),
            ],
            None,
        );
        assert_eq!(r.source, Source::Conflict);
        assert!(
            r.reason
                .unwrap()
                .contains("dwarf says DWARF: type T has no field ctx")
        );
        // Nothing known: every reason, or the authoritative absence alone.
        let r = combine(f, &[(Source::Dwarf, un()), (Source::Table, un())], None);
        assert_eq!(
            r.reason.as_deref(),
            Some("stripped (no DWARF), stripped (no DWARF)")
        );
        let r = combine(
            f,
            &[
                (Source::Dwarf, un()),
                (Source::Rtype, Answer::Absent("no field".into())),
            ],
            None,
        );
        assert_eq!(
            (r.source, r.reason.as_deref()),
            (Source::Unknown, Some("no field"))
        );
        // A size one source does not know is no disagreement.
        let r = combine(
            f,
            &[
                (
                    Source::Dwarf,
                    Answer::Known {
                        offset: 232,
                        size: None,
                        type_size: None,
                        table: None,
                    },
                ),
                (Source::Rtype, known(232, 16)),
            ],
            None,
        );
        assert_eq!(
            (r.source, r.checked.as_slice()),
            (Source::Dwarf, &[Source::Rtype][..])
        );
    }

    #[test]
    fn bad_names_are_unknown() {
        let t = table();
        let r = Resolver::new(Err("no DWARF".into()), &t, key("go1.22.10", vec![]));
        assert_eq!(r.resolve("Method").source, Source::Unknown);
        assert_eq!(r.resolve("net/http.Request.Nope").source, Source::Unknown);
    }
}
