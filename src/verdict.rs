//! Instrumentability verdicts: for each catalog probe, can goprobe attach it
//! to this binary, and if not, why (unsupported architecture, Go before the
//! register ABI, a hooked function missing, a needed offset unknown).
//!
//! `goprobe inspect` shows these and `inspect --require` gates on them;
//! `goprobe attach` uses the same reasons to skip a probe.

use serde::Serialize;

use crate::catalog::{Catalog, Probe, Target};
use crate::gobin::GoBinary;
use crate::offsets::Resolver;

/// One probe's verdict for one binary.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    pub probe: String,
    pub instrumentable: bool,
    /// Why not, one reason per problem; empty when instrumentable.
    pub reasons: Vec<String>,
    /// What the probe will do without: an optional hook or field that is
    /// missing or unknown (e.g. no Traceparent map offsets). Never a reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// A probe goprobe attaches for its own bookkeeping (catalog
    /// `internal`): shown, but `inspect --require` only checks it when named.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub internal: bool,
}

/// What a verdict is decided from, so it can be computed without a binary in tests.
pub struct Facts<'a> {
    pub goarch: &'a str,
    /// Whether the binary has a function of this exact name; `Err` when the
    /// function table cannot be read.
    pub has_function: &'a dyn Fn(&str) -> Result<bool, String>,
    pub resolver: &'a Resolver<'a>,
}

/// The verdict for one probe.
pub fn assess_probe(probe: &Probe, facts: &Facts<'_>) -> Verdict {
    let key = facts.resolver.key();
    let mut reasons = Vec::new();
    let mut notes = Vec::new();
    if !probe.archs.iter().any(|a| a == facts.goarch) {
        reasons.push(format!(
            "unsupported architecture {} (supported: {})",
            facts.goarch,
            probe.archs.join(", ")
        ));
    }
    if !probe.supports_go(&key.go_version) {
        if crate::catalog::Version::parse(&key.go_version).is_none() {
            reasons.push(format!("unrecognised Go version {:?}", key.go_version));
        } else {
            // The only range the catalog's probes carry today is the register
            // ABI's (Go 1.17); say what the range is either way.
            reasons.push(format!(
                "Go version {} not supported: the probe needs Go {} (register ABI: before Go 1.17 arguments are passed on the stack)",
                key.go_version, probe.go
            ));
        }
    }
    let lookup = |m: &str| key.module_version(m);
    let target = Target {
        go_version: &key.go_version,
        module_version: &lookup,
    };
    let mut functions_missing = false;
    for hook in probe.hooks_for(&target) {
        let problem = match (facts.has_function)(&hook.function) {
            Ok(true) => continue,
            Ok(false) => format!("function {} not in the binary", hook.function),
            Err(e) => format!("function table unreadable: {e}"),
        };
        if hook.optional {
            notes.push(format!("optional {problem}"));
        } else {
            functions_missing = true;
            reasons.push(problem);
        }
    }
    // With a hooked function missing the offsets do not matter, and the
    // binary would not have the types anyway: one reason is enough.
    for need in probe.fields_for(&target) {
        if functions_missing && !need.optional {
            continue;
        }
        let r = facts.resolver.resolvable(&need.field);
        if r.is_known() {
            continue;
        }
        let problem = format!(
            "offset of {} unknown for {}/{}: {}",
            need.field,
            key.go_version,
            key.goarch,
            r.reason.as_deref().unwrap_or("not found")
        );
        if need.optional {
            if !functions_missing {
                notes.push(format!("optional {problem}"));
            }
        } else {
            reasons.push(problem);
        }
    }
    Verdict {
        probe: probe.name.clone(),
        instrumentable: reasons.is_empty(),
        reasons,
        notes,
        internal: probe.internal,
    }
}

/// Verdicts for every probe in `catalog`.
pub fn assess(catalog: &Catalog, facts: &Facts<'_>) -> Vec<Verdict> {
    catalog
        .probes
        .iter()
        .map(|p| assess_probe(p, facts))
        .collect()
}

/// Verdicts for every built-in probe on an opened binary, with the built-in
/// offsets table. Never fails: a problem becomes a reason.
pub fn assess_binary(bin: &GoBinary) -> Vec<Verdict> {
    let catalog = match Catalog::builtin() {
        Ok(c) => c,
        Err(e) => {
            return vec![Verdict {
                probe: "*".into(),
                instrumentable: false,
                reasons: vec![e.to_string()],
                notes: Vec::new(),
                internal: false,
            }];
        }
    };
    let table = match crate::offsets::table::Table::builtin() {
        Ok(t) => t,
        Err(e) => crate::offsets::table::Table::default_with_warning(&e),
    };
    let resolver = Resolver::for_binary(bin, &table, None);
    let goarch = String::from(bin.elf().arch.clone());
    let has_function = hooked_functions(catalog, bin);
    assess(
        catalog,
        &Facts {
            goarch: &goarch,
            has_function: &has_function,
            resolver: &resolver,
        },
    )
}

/// Which of the catalog's hooked functions `bin` has, looked up in one pass
/// over pclntab: a lookup answering `Err` when the function table is unreadable.
pub fn hooked_functions(
    catalog: &Catalog,
    bin: &GoBinary,
) -> impl Fn(&str) -> Result<bool, String> + use<> {
    let mut names: Vec<String> = catalog
        .probes
        .iter()
        .flat_map(|p| p.hooks.iter().map(|h| h.function.clone()))
        .collect();
    names.sort_unstable();
    names.dedup();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let present = bin.has_functions(&refs).map_err(|e| e.to_string());
    move |name: &str| match &present {
        Ok(found) => Ok(names.iter().zip(found).any(|(n, &f)| f && n == name)),
        Err(e) => Err(e.clone()),
    }
}

/// A `--require`/`--probes` list that cannot be checked.
#[derive(Debug, thiserror::Error)]
pub enum ProbeNameError {
    #[error("unknown probe {name} (known probes: {known})")]
    Unknown { name: String, known: String },
    #[error(transparent)]
    Catalog(#[from] crate::catalog::CatalogError),
}

/// Check that every name is a catalog probe.
pub fn check_probe_names(names: &[String]) -> Result<(), ProbeNameError> {
    let catalog = Catalog::builtin()?;
    for name in names {
        if catalog.probe(name).is_none() {
            let known = catalog
                .probes
                .iter()
                .map(|p| p.name.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            return Err(ProbeNameError::Unknown {
                name: name.clone(),
                known,
            });
        }
    }
    Ok(())
}

/// `inspect --require`: for each required probe that is not instrumentable
/// in `bin`, one line saying why (none when all are).
pub fn required_failures(bin: &GoBinary, required: &[String]) -> Vec<String> {
    let verdicts = assess_binary(bin);
    let mut out = Vec::new();
    for name in required {
        match verdicts.iter().find(|v| &v.probe == name) {
            Some(v) if v.instrumentable => {}
            Some(v) => out.push(format!(
                "{}: probe {name} is not instrumentable: {}",
                bin.path().display(),
                v.reasons.join("; ")
            )),
            None => out.push(format!(
                "{}: probe {name} has no verdict",
                bin.path().display()
            )),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::offsets::Key;
    use crate::offsets::table::{Entry, FieldEntry, Layouts, Table};

    fn full_table(go: &str, arch: &str) -> Table {
        let catalog = Catalog::builtin().unwrap();
        let mut l = Layouts::default();
        for (i, f) in catalog.all_fields().into_iter().enumerate() {
            l.fields.insert(
                f,
                FieldEntry {
                    offset: 8 * i as u64,
                    size: 8,
                },
            );
        }
        let mut t = Table::default();
        t.insert(Entry {
            go: Some(go.into()),
            module: None,
            version: None,
            goarch: arch.into(),
            layouts: l,
        });
        t
    }

    fn verdicts(go: &str, arch: &str, table: &Table, functions: &[&str]) -> Vec<Verdict> {
        let key = Key {
            go_version: go.into(),
            goarch: arch.into(),
            modules: vec![],
        };
        let resolver = Resolver::new(Err("no DWARF".into()), table, key);
        let has = |n: &str| Ok(functions.contains(&n));
        assess(
            Catalog::builtin().unwrap(),
            &Facts {
                goarch: arch,
                has_function: &has,
                resolver: &resolver,
            },
        )
    }

    const HTTP_FUNCS: [&str; 13] = [
        "net/http.serverHandler.ServeHTTP",
        "net/http.(*Transport).roundTrip",
        "database/sql.(*DB).queryDC",
        "database/sql.(*DB).execDC",
        "database/sql.(*Stmt).QueryContext",
        "database/sql.(*Stmt).ExecContext",
        "database/sql.(*Tx).Commit",
        "database/sql.(*Tx).rollback",
        "runtime.gopanic",
        "net/http.(*conn).serve.func1",
        "net/http.(*http2serverConn).runHandler.func1",
        "runtime.newproc1",
        "runtime.goexit",
    ];

    #[test]
    fn all_good() {
        let t = full_table("go1.22.10", "amd64");
        let v = verdicts("go1.22.10", "amd64", &t, &HTTP_FUNCS);
        assert!(
            v.iter().all(|v| v.instrumentable && v.reasons.is_empty()),
            "{v:?}"
        );
    }

    #[test]
    fn each_reason() {
        let t = full_table("go1.22.10", "amd64");
        let v = verdicts("go1.22.10", "amd64", &t, &[]);
        // Only the CPU sampler hooks no function.
        assert!(
            v.iter()
                .all(|v| v.instrumentable == (v.probe == "cpu.sample")),
            "{v:?}"
        );
        assert!(
            v[0].reasons[0].contains("function net/http.serverHandler.ServeHTTP not in the binary"),
            "{v:?}"
        );
        let v = verdicts("go1.22.11", "amd64", &t, &HTTP_FUNCS);
        assert!(
            v[0].reasons.iter().any(
                |r| r.contains("offset of net/http.Request.Method unknown for go1.22.11/amd64")
            ),
            "{v:?}"
        );
        let t386 = full_table("go1.22.10", "386");
        let v = verdicts("go1.22.10", "386", &t386, &HTTP_FUNCS);
        assert_eq!(v[0].reasons.len(), 1, "{v:?}");
        assert!(v[0].reasons[0].starts_with("unsupported architecture 386"));
        let t16 = full_table("go1.16.15", "amd64");
        let v = verdicts("go1.16.15", "amd64", &t16, &HTTP_FUNCS);
        assert!(
            v[0].reasons.iter().any(|r| r.contains("register ABI")),
            "{v:?}"
        );
    }

    #[test]
    fn optional_fields_are_notes_and_internal_probes_are_marked() {
        let catalog = Catalog::builtin().unwrap();
        let mut t = full_table("go1.22.10", "amd64");
        // The Traceparent map internals (optional in http.server) unknown.
        let l = t
            .stdlib
            .get_mut("go1.22.10")
            .and_then(|a| a.get_mut("amd64"))
            .unwrap();
        l.fields.retain(|f, _| !f.starts_with("runtime.hmap."));
        let v = verdicts("go1.22.10", "amd64", &t, &HTTP_FUNCS);
        let server = v.iter().find(|v| v.probe == "http.server").unwrap();
        assert!(server.instrumentable, "{server:?}");
        assert_eq!(server.notes.len(), 3, "{server:?}");
        assert!(
            server.notes[0].starts_with("optional offset of runtime.hmap.B unknown"),
            "{server:?}"
        );
        let spawn = v.iter().find(|v| v.probe == "go.spawn").unwrap();
        assert!(spawn.internal && catalog.probe("go.spawn").unwrap().internal);
        assert!(!server.internal);
        // Without its functions, db.sql says so once, not per field.
        let v = verdicts(
            "go1.22.10",
            "amd64",
            &full_table("go1.22.10", "amd64"),
            &HTTP_FUNCS[..2],
        );
        let db = v.iter().find(|v| v.probe == "db.sql").unwrap();
        assert!(!db.instrumentable);
        assert!(
            db.reasons.iter().all(|r| r.ends_with("not in the binary")),
            "{db:?}"
        );
        assert!(db.notes.is_empty(), "{db:?}");
    }
}
