//! [`Resolver`]: one binary's field offsets from DWARF, its runtime type
//! descriptors and the table, cross-checked (by [`super::combine`]). The
//! DWARF and descriptor indexes are built on first use.

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;

use super::combine::{Answer, combine, unknown};
use super::table::{Table, is_stdlib_package, package_of};
use super::{Key, Resolved, Source, TableProvenance, normalize_go_version};
use crate::catalog::{Catalog, Probe, Target, WantedField};
use crate::dwarf::{DwarfTypes, FieldError};
use crate::gobin::GoBinary;
use crate::gobin::types::{RtypeError, StructIndex};

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
    /// Each field's answer, once resolved: the verdicts ask for some
    /// fields for several probes (`runtime.g.goid` for each), and each
    /// answer walks the type descriptors.
    resolved: RefCell<HashMap<String, Resolved>>,
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
            resolved: RefCell::default(),
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
        let mut key = Key::for_binary(bin, &goarch);
        if let Some(v) = go_version {
            key.go_version = normalize_go_version(v);
        }
        Resolver::for_binary_with_key(bin, table, key)
    }

    /// The type descriptor index of `bin`, as a resolver builds it on first use.
    fn index_types(bin: &'a GoBinary) -> Result<StructIndex<'a>, String> {
        StructIndex::new(bin).map_err(|e| format!("type descriptors unreadable: {e}"))
    }

    /// [`Resolver::for_binary`] with the key already made
    /// ([`Key::for_binary`], on another thread perhaps).
    pub fn for_binary_with_key(bin: &'a GoBinary, table: &'a Table, key: Key) -> Resolver<'a> {
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
            resolved: RefCell::default(),
        }
    }

    /// Refuse (as unknown, saying why) a table answer for a Go patch release
    /// the table was not generated from, instead of using its minor's layouts.
    pub fn strict(mut self, strict: bool) -> Resolver<'a> {
        self.strict = strict;
        self.resolved.get_mut().clear();
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
                Some(bin) => Resolver::index_types(bin),
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
        if let Some(r) = self.resolved.borrow().get(field) {
            return r.clone();
        }
        let r = self.resolve_uncached(field);
        self.resolved
            .borrow_mut()
            .insert(field.to_string(), r.clone());
        r
    }

    fn resolve_uncached(&self, field: &str) -> Resolved {
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
                    // A split minor's unseen patch release: the fields on
                    // which all its layout groups agree, marked inexact.
                    let ty = crate::dwarf::split_field_name(field).map(|(ty, _)| ty);
                    if let Some(a) = self.table.stdlib_agreed(go, arch, field, ty) {
                        return Answer::Known {
                            offset: a.entry.offset,
                            size: Some(a.entry.size),
                            type_size: a.type_size,
                            table: Some(TableProvenance {
                                key: a.minor,
                                verified: a.verified,
                                exact: false,
                            }),
                        };
                    }
                    return Answer::Unavailable(match super::table::minor_of(go) {
                        Some(minor) if self.table.split_minor(go).is_some() => format!(
                            "{minor} layouts changed between patch releases (this field among them) and the offsets table lists {go} in none of its groups: {}",
                            self.table.split_minor(go).unwrap_or_default()
                        ),
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

    /// A minor split by a patch release that moved one field: an unseen
    /// patch release of it gets the fields all groups agree on, inexact,
    /// and not the moved one.
    #[test]
    fn split_minor_answers_agreed_fields_for_unseen_releases() {
        let mut t = Table::default();
        for (go, moved) in [("go1.26.8", 200), ("go1.26.9", 192)] {
            let mut l = Layouts::default();
            l.fields.insert(
                "net/http.Request.Method".into(),
                FieldEntry {
                    offset: 0,
                    size: 16,
                },
            );
            l.fields.insert(
                "net/http.http2ClientConn.tconn".into(),
                FieldEntry {
                    offset: moved,
                    size: 16,
                },
            );
            let e = Entry {
                go: Some(go.into()),
                module: None,
                version: None,
                goarch: "amd64".into(),
                layouts: l,
            };
            t.insert_with(e, true).unwrap();
        }
        let r = Resolver::new(Err("no DWARF".into()), &t, key("go1.26.12", vec![]));
        let got = r.resolve("net/http.Request.Method");
        assert_eq!((got.offset, got.source), (Some(0), Source::Table));
        assert!(got.is_inexact_table());
        assert_eq!(got.table.unwrap().verified, ["go1.26.8", "go1.26.9"]);
        let got = r.resolve("net/http.http2ClientConn.tconn");
        assert_eq!(got.source, Source::Unknown);
        assert!(
            got.reason
                .unwrap()
                .contains("changed between patch releases")
        );
        // A release a group lists keeps its own group's offset, exactly.
        let r = Resolver::new(Err("no DWARF".into()), &t, key("go1.26.9", vec![]));
        let got = r.resolve("net/http.http2ClientConn.tconn");
        assert_eq!(got.offset, Some(192));
        assert!(!got.is_inexact_table());
        let strict = Resolver::new(Err("no DWARF".into()), &t, key("go1.26.12", vec![]));
        assert_eq!(
            strict
                .strict(true)
                .resolve("net/http.Request.Method")
                .source,
            Source::Unknown
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
