//! The probe catalog: every probe goprobe knows, as data (`src/catalog.toml`,
//! embedded at build time): the functions each hooks, the arguments it reads
//! under the Go register ABI, the struct fields it needs (each with the Go or
//! module version range where it applies), the probe family that serves it
//! and the role its events play in a recording.
//!
//! `offsets`, `inspect` verdicts, the offsets table, `attach` and `record`
//! all read the probes from here; nothing else lists them.
//!
//! Adding a probe:
//! 1. a `[[probe]]` in `src/catalog.toml`: hooks, argument registers and
//!    slots, fields, `family` and `role` (`opt_in` when its hooks trap on
//!    calls it does not need, so that only `--probes` naming it attaches it);
//! 2. for a field no probe read before: its type in the reflectoffsets
//!    fixture, and `table = false` when its struct always has a type
//!    descriptor where the hooks are (stripped binaries read it from their
//!    own metadata), else its offsets in `src/offsets/table.json`
//!    (`scripts/gen-offsets-table.sh --fresh --split-minors --versions ...`
//!    over the table's releases: a new table field changes every layout
//!    group), for stripped binaries whose type descriptors lack the struct;
//! 3. when no existing family reads what it needs, a family: its eBPF
//!    programs in `ebpf/probes/<family>.bpf.c` (shared helpers in
//!    `ebpf/lib/`; `build.rs` compiles one object per family named in the
//!    catalog, with the family's field indexes generated from this file), and
//!    `src/probes/<family>.rs`, which mirrors its event struct, decodes it
//!    into typed stream fields and builds what its role says (a span, a
//!    span event and what it says of the span around it, or a goroutine's
//!    creator);
//! 4. the registry, `src/probes/mod.rs`: the family's `pub mod` line and its
//!    entry in `crate::probes::FAMILIES`.
//!
//! Worked example: the `http_phases` family (probes `http.phases` and the
//! opt-in `http.exchange`), which adds connection phases as events of HTTP
//! client spans: its two `[[probe]]`s (three new fields, `table = false`),
//! two new types in reflectoffsets, `ebpf/probes/http_phases.bpf.c`, `src/probes/http_phases.rs` and
//! two registry lines (README, "Adding a probe").

use serde::{Deserialize, Serialize};

mod version;

pub use version::{Version, VersionReq};

/// The catalog as shipped with goprobe.
pub const CATALOG_TOML: &str = include_str!("catalog.toml");
/// [`CATALOG_TOML`] converted to JSON by the build script (the same
/// document; it parses several times faster, and goprobe parses it on every run).
const CATALOG_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/catalog.json"));

#[derive(Debug, Clone, thiserror::Error)]
pub enum CatalogError {
    #[error("catalog: {0}")]
    Parse(String),
    #[error("catalog: probe {probe}: {what}")]
    Invalid { probe: String, what: String },
}

/// Where a hook fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HookPoint {
    /// After the stack-growth prologue of the function.
    Entry,
    /// Every RET instruction of the function body.
    Return,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Arg {
    pub name: String,
    /// Arguments are read at entry, results at return.
    pub at: HookPoint,
    /// Register-ABI word indexes holding the value, in order.
    pub words: Vec<usize>,
    /// `pointer`, `string`, `int`, `interface`.
    pub kind: String,
    /// The Go type pointed to (for pointers) or expected behind an interface.
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub ty: Option<String>,
    /// Where the eBPF program finds this argument: the hook's register slot
    /// of its first word (further words take the next slots). Each program
    /// documents its slots in `ebpf/goprobe.h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Hook {
    /// Function name as pclntab spells it.
    pub function: String,
    pub at: Vec<HookPoint>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub go: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// A missing optional hook does not make the probe uninstrumentable.
    #[serde(default)]
    pub optional: bool,
    /// The eBPF programs `<program>_entry` / `<program>_return` in
    /// `ebpf/goprobe.bpf.c` that serve this hook.
    pub program: String,
    /// Hook-specific switches the program understands (`ebpf/goprobe.h`,
    /// `GP_HOOK_*`), e.g. `receiver_is_stmt`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flags: Vec<String>,
    /// A fixed operation name for calls that carry no query text (database/sql
    /// `COMMIT`, `ROLLBACK`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
    #[serde(default, rename = "arg")]
    pub args: Vec<Arg>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FieldNeed {
    /// `PKG.Type.field`.
    pub field: String,
    /// The argument (or `g`, or another field) the struct is reached through.
    pub from: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub go: Option<String>,
    /// For third-party types: the module that defines them, and its version range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub module: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default)]
    pub optional: bool,
    /// The embedded offsets table carries it (the default). `false` for a
    /// field of a struct that always has a type descriptor where the hooks
    /// are (a type the code converts to an interface, such as `*tls.Conn`
    /// to `net.Conn`), so that a stripped binary's own metadata answers:
    /// adding such a field needs no regeneration of the table over every Go
    /// release it lists. Without DWARF or a descriptor it is unknown, never
    /// guessed.
    #[serde(default = "in_table", skip_serializing_if = "is_in_table")]
    pub table: bool,
}

fn in_table() -> bool {
    true
}

fn is_in_table(table: &bool) -> bool {
    *table
}

/// What a probe's events are in a recording (see `src/catalog.toml`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// A span that opens a scope: a new trace, or the caller's.
    Server,
    /// A span, child of the span enclosing it; it may enclose others.
    Client,
    /// An event on the enclosing span.
    Event,
    /// goprobe's own bookkeeping (goroutine creation).
    Internal,
    /// CPU samples: each labelled with the span its goroutine was serving;
    /// opt-in (`--cpu`), never part of the default `all`.
    Sample,
}

/// What fires a probe's eBPF programs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Attach {
    /// Uprobes on the entries and RETs of the probe's hooked functions.
    #[default]
    Uprobes,
    /// The software `cpu-clock` perf event on every CPU (no hooks).
    CpuClock,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Probe {
    pub name: String,
    pub summary: String,
    /// Go versions the probe supports at all.
    pub go: String,
    pub archs: Vec<String>,
    /// The family serving it: `src/probes/<family>.rs`, `ebpf/probes/<family>.bpf.c`.
    pub family: String,
    pub role: Role,
    /// What fires its programs: uprobes on its hooks (the default), or a
    /// perf event (then it has no hooks and is present in every binary).
    #[serde(default)]
    pub attach: Attach,
    #[serde(default, rename = "hook")]
    pub hooks: Vec<Hook>,
    #[serde(default, rename = "field")]
    pub fields: Vec<FieldNeed>,
    /// Attached only when asked for by name (or `--probes all`), not by
    /// default: a probe whose hooks trap on calls its purpose does not need
    /// (`http.exchange` traps on every HTTP/1 request to time a
    /// connection's first one).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub opt_in: bool,
    /// `role == Internal`: probes goprobe attaches for its own bookkeeping
    /// (goroutine creation), not chosen by users.
    #[serde(skip)]
    pub internal: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Catalog {
    #[serde(rename = "probe")]
    pub probes: Vec<Probe>,
}

/// One field a selection of probes needs, and whether the probes can do
/// without it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedField {
    /// `PKG.Type.field`.
    pub field: String,
    /// True when every selected probe that names the field marks it
    /// `optional`: the probes work without it (e.g. the Traceparent map
    /// internals of `http.server`).
    pub optional: bool,
}

/// The facts about a binary that decide which catalog entries apply.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    /// e.g. `go1.22.10` or `1.22.10`.
    pub go_version: &'a str,
    /// Version of a module compiled into the binary (after `replace`), if any.
    pub module_version: &'a dyn Fn(&str) -> Option<String>,
}

impl Catalog {
    /// The catalog embedded in goprobe, parsed once per run.
    pub fn builtin() -> Result<&'static Catalog, CatalogError> {
        static BUILTIN: std::sync::OnceLock<Result<Catalog, CatalogError>> =
            std::sync::OnceLock::new();
        BUILTIN
            .get_or_init(|| {
                let catalog = serde_json::from_str(CATALOG_JSON)
                    .map_err(|e| CatalogError::Parse(e.to_string()))?;
                Catalog::checked(catalog)
            })
            .as_ref()
            .map_err(Clone::clone)
    }

    pub fn parse(text: &str) -> Result<Catalog, CatalogError> {
        let catalog: Catalog =
            toml::from_str(text).map_err(|e| CatalogError::Parse(e.to_string()))?;
        Catalog::checked(catalog)
    }

    /// A deserialized catalog, completed and validated.
    fn checked(mut catalog: Catalog) -> Result<Catalog, CatalogError> {
        for p in &mut catalog.probes {
            p.internal = p.role == Role::Internal;
        }
        catalog.validate()?;
        Ok(catalog)
    }

    fn validate(&self) -> Result<(), CatalogError> {
        for p in &self.probes {
            let bad = |what: String| CatalogError::Invalid {
                probe: p.name.clone(),
                what,
            };
            VersionReq::parse(&p.go).ok_or_else(|| bad(format!("bad go range {:?}", p.go)))?;
            if p.family.is_empty()
                || !p
                    .family
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
            {
                return Err(bad(format!("bad family name {:?}", p.family)));
            }
            match (p.attach, p.hooks.is_empty()) {
                (Attach::Uprobes, true) => return Err(bad("no hooks".into())),
                (Attach::CpuClock, false) => {
                    return Err(bad("a perf-event probe has no hooks".into()));
                }
                _ => {}
            }
            if (p.role == Role::Sample) != (p.attach == Attach::CpuClock) {
                return Err(bad(
                    "role \"sample\" goes with attach = \"cpu-clock\"".into()
                ));
            }
            for h in &p.hooks {
                for r in [&h.go, &h.version].into_iter().flatten() {
                    VersionReq::parse(r).ok_or_else(|| bad(format!("bad range {r:?}")))?;
                }
                for a in &h.args {
                    if a.words.is_empty() || a.words.iter().any(|w| *w >= AMD64_INT_REGS.len()) {
                        return Err(bad(format!(
                            "argument {} has no or out-of-range words",
                            a.name
                        )));
                    }
                }
            }
            for f in &p.fields {
                crate::dwarf::split_field_name(&f.field)
                    .ok_or_else(|| bad(format!("bad field name {}", f.field)))?;
                for r in [&f.go, &f.version].into_iter().flatten() {
                    VersionReq::parse(r).ok_or_else(|| bad(format!("bad range {r:?}")))?;
                }
            }
        }
        Ok(())
    }

    pub fn probe(&self, name: &str) -> Option<&Probe> {
        self.probes.iter().find(|p| p.name == name)
    }

    /// The families the probes name, each once, in catalog order.
    pub fn families(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for p in &self.probes {
            if !out.contains(&p.family.as_str()) {
                out.push(&p.family);
            }
        }
        out
    }

    /// The fields the probes of `family` name, each once, in catalog order:
    /// the order of the family's offset array (`gp_config.off`), which
    /// build.rs writes as the family's `GP_F_*` indexes by the same rule.
    pub fn family_fields(&self, family: &str) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for f in self
            .probes
            .iter()
            .filter(|p| p.family == family)
            .flat_map(|p| &p.fields)
        {
            if !out.contains(&f.field.as_str()) {
                out.push(&f.field);
            }
        }
        out
    }

    /// Every distinct field any probe needs for this target, in catalog order.
    pub fn fields_for(&self, target: &Target<'_>) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for p in &self.probes {
            for f in p.fields_for(target) {
                if !out.iter().any(|x| x == &f.field) {
                    out.push(f.field.clone());
                }
            }
        }
        out
    }

    /// The probes the binary contains: those with at least one hooked
    /// function (among the hooks that apply to this target) that
    /// `has_function` finds, and the perf-event probes, which need none.
    /// A plain HTTP service has no `db.sql`.
    pub fn probes_present<'c>(
        &'c self,
        target: &Target<'_>,
        has_function: &dyn Fn(&str) -> bool,
    ) -> Vec<&'c Probe> {
        self.probes
            .iter()
            .filter(|p| {
                p.attach != Attach::Uprobes
                    || p.hooks_for(target).any(|h| has_function(&h.function))
            })
            .collect()
    }

    /// Every distinct field `probes` need for this target, in catalog order.
    /// A field is optional only when every one of these probes that names it
    /// says so.
    pub fn wanted_fields(probes: &[&Probe], target: &Target<'_>) -> Vec<WantedField> {
        let mut out: Vec<WantedField> = Vec::new();
        for p in probes {
            for f in p.fields_for(target) {
                match out.iter_mut().find(|w| w.field == f.field) {
                    Some(w) => w.optional &= f.optional,
                    None => out.push(WantedField {
                        field: f.field.clone(),
                        optional: f.optional,
                    }),
                }
            }
        }
        out
    }

    /// Every distinct field named anywhere in the catalog, regardless of version.
    pub fn all_fields(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for f in self.probes.iter().flat_map(|p| &p.fields) {
            if !out.contains(&f.field) {
                out.push(f.field.clone());
            }
        }
        out
    }

    /// The fields the embedded offsets table carries: every field some need
    /// does not mark `table = false`.
    pub fn table_fields(&self) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for f in self.probes.iter().flat_map(|p| &p.fields) {
            if f.table && !out.contains(&f.field) {
                out.push(f.field.clone());
            }
        }
        out
    }
}

fn applies(
    go: &Option<String>,
    module: &Option<String>,
    version: &Option<String>,
    target: &Target<'_>,
) -> bool {
    if let Some(range) = go
        && !VersionReq::parse(range).is_some_and(|r| r.matches_str(target.go_version))
    {
        return false;
    }
    if let Some(module) = module {
        let Some(v) = (target.module_version)(module) else {
            return false;
        };
        if let Some(range) = version
            && !VersionReq::parse(range).is_some_and(|r| r.matches_str(&v))
        {
            return false;
        }
    }
    true
}

impl Probe {
    /// The hooks that apply to this target.
    pub fn hooks_for<'p>(&'p self, target: &Target<'_>) -> impl Iterator<Item = &'p Hook> {
        let target = *target;
        self.hooks
            .iter()
            .filter(move |h| applies(&h.go, &h.module, &h.version, &target))
    }

    /// The fields needed for this target.
    pub fn fields_for<'p>(&'p self, target: &Target<'_>) -> impl Iterator<Item = &'p FieldNeed> {
        let target = *target;
        self.fields
            .iter()
            .filter(move |f| applies(&f.go, &f.module, &f.version, &target))
    }

    /// True when the probe supports this Go version at all.
    pub fn supports_go(&self, go_version: &str) -> bool {
        VersionReq::parse(&self.go).is_some_and(|r| r.matches_str(go_version))
    }
}

/// Integer argument/result registers of the Go register ABI (Go >= 1.17), by word index.
pub const AMD64_INT_REGS: [&str; 9] = ["rax", "rbx", "rcx", "rdi", "rsi", "r8", "r9", "r10", "r11"];
pub const ARM64_INT_REGS: [&str; 16] = [
    "x0", "x1", "x2", "x3", "x4", "x5", "x6", "x7", "x8", "x9", "x10", "x11", "x12", "x13", "x14",
    "x15",
];

/// The register holding register-ABI word `word` on `goarch`.
pub fn register(goarch: &str, word: usize) -> Option<&'static str> {
    match goarch {
        "amd64" => AMD64_INT_REGS.get(word).copied(),
        "arm64" => ARM64_INT_REGS.get(word).copied(),
        _ => None,
    }
}

/// The register holding the current goroutine's `g` pointer.
pub fn g_register(goarch: &str) -> Option<&'static str> {
    match goarch {
        "amd64" => Some("r14"),
        "arm64" => Some("x28"),
        _ => None,
    }
}

#[cfg(test)]
mod tests;
