//! Instrumentability verdicts: for each catalog probe, can goprobe attach it
//! to this binary, and if not, why (unsupported architecture, Go before the
//! register ABI, a hooked function missing, a needed offset unknown).
//!
//! `goprobe inspect` shows these and `inspect --require` gates on them;
//! `goprobe attach` uses the same reasons to skip a probe.

use serde::Serialize;

mod report;

pub use report::{refusal_line, remedy, required_failures, table_provenance};

use crate::catalog::{Catalog, FieldNeed, Hook, Probe, Target};
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

/// The fields `probe` needs for this target given which of its hooks are in
/// the binary: a field reached (through `from`, possibly via other fields)
/// from an argument that only absent hooks have is not needed; one reached
/// from `g` always is. A prepared-statement field is not needed by a program
/// that never prepares a statement.
pub fn needed_fields<'p>(
    probe: &'p Probe,
    target: &Target<'_>,
    present: &dyn Fn(&Hook) -> bool,
) -> Vec<&'p FieldNeed> {
    let args: Vec<&str> = probe
        .hooks_for(target)
        .filter(|h| present(h))
        .flat_map(|h| h.args.iter().map(|a| a.name.as_str()))
        .collect();
    let all: Vec<&FieldNeed> = probe.fields_for(target).collect();
    // The argument a field is reached from, following field-to-field links.
    let root = |f: &'p FieldNeed| -> &'p str {
        let mut from = f.from.as_str();
        for _ in 0..16 {
            match all.iter().find(|x| x.field == from) {
                Some(x) => from = x.from.as_str(),
                None => break,
            }
        }
        from
    };
    all.iter()
        .copied()
        .filter(|f| {
            let r = root(f);
            r == "g" || args.contains(&r)
        })
        .collect()
}

/// Whether optional field `need` is missing from a type that has another
/// optional field, reached from the same place, which is known: the two
/// are one version's field and another's.
fn has_alternative(need: &FieldNeed, needed: &[&FieldNeed], facts: &Facts<'_>) -> bool {
    let Some((ty, _)) = need.field.rsplit_once('.') else {
        return false;
    };
    needed.iter().any(|other| {
        other.optional
            && other.field != need.field
            && other.from == need.from
            && other.field.rsplit_once('.').is_some_and(|(t, _)| t == ty)
            && facts.resolver.resolvable(&other.field).is_known()
    })
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
            reasons.push(format!(
                "Go version {} (no build info and no runtime.buildVersion): pass --go-version",
                if key.go_version.is_empty() {
                    "unknown"
                } else {
                    key.go_version.as_str()
                }
            ));
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
    // Hooks attach one by one: a required hook must be there, an optional
    // one (a code path such as prepared statements) may be absent, and at
    // least one hook must be there for the probe to see anything.
    let mut present_hooks: Vec<&str> = Vec::new();
    let mut absent_optional = Vec::new();
    let mut functions_missing = false;
    let mut unreadable = None;
    for hook in probe.hooks_for(&target) {
        match (facts.has_function)(&hook.function) {
            Ok(true) => present_hooks.push(&hook.function),
            Ok(false) if hook.optional => absent_optional.push(hook.function.as_str()),
            Ok(false) => {
                functions_missing = true;
                reasons.push(format!("function {} not in the binary", hook.function));
            }
            Err(e) => unreadable = Some(format!("function table unreadable: {e}")),
        }
    }
    if let Some(e) = unreadable {
        functions_missing = true;
        reasons.push(e);
    } else if present_hooks.is_empty()
        && !functions_missing
        && probe.attach == crate::catalog::Attach::Uprobes
    {
        // (A perf-event probe such as cpu.sample hooks no function.)
        functions_missing = true;
        let more = match absent_optional.len() {
            0 | 1 => String::new(),
            n => format!(" and {} more", n - 1),
        };
        reasons.push(format!(
            "no function it hooks is in the binary ({}{more})",
            absent_optional.first().copied().unwrap_or("none")
        ));
    } else if !functions_missing {
        // Only where the probe attaches: "the others are traced" would be
        // untrue of a probe a required function keeps out.
        for f in &absent_optional {
            notes.push(format!(
                "optional function {f} not in the binary (the program does not use that path; the others are traced)"
            ));
        }
    }
    // With the hooked functions missing the offsets do not matter, and the
    // binary would not have the types anyway: one reason is enough.
    let present = |h: &Hook| present_hooks.contains(&h.function.as_str());
    let mut inexact = Vec::new();
    let needed = needed_fields(probe, &target, &present);
    for need in &needed {
        if functions_missing {
            break;
        }
        let r = facts.resolver.resolvable(&need.field);
        if r.is_known() {
            if r.is_inexact_table() {
                inexact.push(r);
            }
            continue;
        }
        let problem = if r.source == crate::offsets::Source::Conflict {
            format!(
                "offset of {} refused: {}",
                need.field,
                r.reason.as_deref().unwrap_or("sources disagree")
            )
        } else {
            format!(
                "offset of {} unknown for {}/{} ({})",
                need.field,
                key.go_version,
                key.goarch,
                r.reason.as_deref().unwrap_or("not found")
            )
        };
        // A conflict is a reason even for an optional field: one of
        // goprobe's readers is wrong about this binary.
        if need.optional && r.source != crate::offsets::Source::Conflict {
            // A field this version of the type does not have, where the
            // probe reads the version's own field instead (gRPC's
            // status.Error held `e *spb.Status` before `s *Status`): the
            // way the type is, not something lost.
            if !has_alternative(need, &needed, facts) {
                notes.push(format!("optional {problem}"));
            }
        } else {
            reasons.push(problem);
        }
    }
    if let Some(first) = inexact.first().and_then(|r| r.table.as_ref()) {
        notes.push(format!(
            "{} offset(s) ({}) from the {} table, verified on {} but not on {} itself (--strict-offsets refuses this)",
            inexact.len(),
            inexact
                .iter()
                .map(|r| r.field.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            first.key,
            first.verified.join(" "),
            key.go_version
        ));
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
    assess_binary_with(bin, false)
}

/// [`assess_binary`], and the modules the verdicts took from the binary
/// itself because its build info does not list them
/// ([`crate::gobin::evidence`]: a GOPATH build's gRPC).
pub fn assess_binary_seen(bin: &GoBinary) -> (Vec<Verdict>, Vec<crate::gobin::Module>) {
    assess_opened(bin, false)
}

/// [`assess_binary`]; `strict`: a table answer for a Go patch release the
/// table was not generated from counts as unknown (`--strict-offsets`).
pub fn assess_binary_with(bin: &GoBinary, strict: bool) -> Vec<Verdict> {
    assess_opened(bin, strict).0
}

fn assess_opened(bin: &GoBinary, strict: bool) -> (Vec<Verdict>, Vec<crate::gobin::Module>) {
    let catalog = match Catalog::builtin() {
        Ok(c) => c,
        Err(e) => {
            let v = Verdict {
                probe: "*".into(),
                instrumentable: false,
                reasons: vec![e.to_string()],
                notes: Vec::new(),
                internal: false,
            };
            return (vec![v], Vec::new());
        }
    };
    let goarch = String::from(bin.elf().arch.clone());
    let bi = bin.build_info();
    // Only the table entries this binary can use are read: its Go minor's
    // for its GOARCH, and those of the modules its build info lists (under
    // their own paths and their replacements') or evidence can show.
    let mut module_paths: Vec<&str> = bi
        .main
        .iter()
        .chain(&bi.deps)
        .flat_map(|m| std::iter::once(&m.path).chain(m.replace.iter().map(|r| &r.path)))
        .map(String::as_str)
        .collect();
    for path in crate::gobin::evidence::module_paths() {
        module_paths.push(path);
    }
    let wanted = crate::offsets::table::Wanted {
        go_version: &bi.go_version,
        goarch: &goarch,
        modules: &module_paths,
    };
    // The hooked functions' look-up in pclntab and the module evidence (a
    // pass over the string literals: 8.5 MB of a 50 MB binary) are
    // one survey, on two threads for a large binary; the table is read
    // meanwhile. Evidence is never used for a module the build info names,
    // so it is not looked for either (as in `Key::for_binary`).
    let names = hooked_names(catalog);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let mut key = crate::offsets::Key::from_build_info(bi, &goarch);
    let named = |path: &str| key.modules.iter().any(|k| k.path == path);
    let (survey, table) =
        bin.survey(
            &refs,
            named,
            || match crate::offsets::table::Table::builtin_for(&wanted) {
                Ok(t) => t,
                Err(e) => crate::offsets::table::Table::default_with_warning(&e),
            },
        );
    let has_function = function_lookup(names, survey.functions.map_err(|e| e.to_string()));
    key.modules.extend(survey.modules);
    let seen: Vec<crate::gobin::Module> = key
        .modules
        .iter()
        .filter(|m| !bi.main.iter().chain(&bi.deps).any(|b| b.path == m.path))
        .cloned()
        .collect();
    let resolver = Resolver::for_binary_with_key(bin, &table, key).strict(strict);
    let verdicts = assess(
        catalog,
        &Facts {
            goarch: &goarch,
            has_function: &has_function,
            resolver: &resolver,
        },
    );
    (verdicts, seen)
}

/// Every function a catalog probe hooks, sorted, each once.
fn hooked_names(catalog: &Catalog) -> Vec<String> {
    let mut names: Vec<String> = catalog
        .probes
        .iter()
        .flat_map(|p| p.hooks.iter().map(|h| h.function.clone()))
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

/// A lookup of `names` in what [`GoBinary::has_functions`] answered for them.
fn function_lookup(
    names: Vec<String>,
    present: Result<Vec<bool>, String>,
) -> impl Fn(&str) -> Result<bool, String> + use<> {
    move |name: &str| match &present {
        Ok(found) => Ok(names.iter().zip(found).any(|(n, &f)| f && n == name)),
        Err(e) => Err(e.clone()),
    }
}

/// Which of the catalog's hooked functions `bin` has, looked up in one pass
/// over pclntab: a lookup answering `Err` when the function table is unreadable.
pub fn hooked_functions(
    catalog: &Catalog,
    bin: &GoBinary,
) -> impl Fn(&str) -> Result<bool, String> + use<> {
    let names = hooked_names(catalog);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let present = bin.has_functions(&refs).map_err(|e| e.to_string());
    function_lookup(names, present)
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

#[cfg(test)]
mod tests;
