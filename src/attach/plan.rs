//! What to attach to a binary: for each probe family, the catalog hooks the
//! binary has (where each function is, its code, its register table) and
//! the family's configuration (the target's field offsets in the family's
//! order, its switches), with the probes skipped and why.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{AttachError, Offsets};
use crate::bpf::abi::{self, GpConfig, GpHook};
use crate::catalog::{self, Catalog, HookPoint, Role};
use crate::probes::family::{ConfigInput, HookInfo};
use crate::probes::{self, Family};
use crate::stream::TargetInfo;

/// Where to attach: the binary, and optionally one process running it.
#[derive(Debug, Clone)]
pub struct Target {
    pub binary: PathBuf,
    pub pid: Option<u32>,
}

/// One function of the target to hook: where it is, its code, and what
/// the eBPF program there reads (from the catalog).
#[derive(Debug, Clone)]
pub struct Hook {
    /// The catalog probe it belongs to.
    pub probe: String,
    /// The function, as pclntab names it.
    pub function: String,
    /// eBPF program at the entry (`<program>_entry`), if the hook fires there.
    pub entry_program: Option<String>,
    /// eBPF program at every RET (`<program>_return`), if it fires there.
    pub return_program: Option<String>,
    /// Register slots and flags for the program.
    pub gp: GpHook,
    /// Fixed operation name (database/sql COMMIT, ROLLBACK).
    pub operation: Option<String>,
    /// Virtual address of the entry (for messages and decoding).
    pub address: u64,
    /// File offset of the entry.
    pub file_offset: u64,
    /// The function's bytes.
    pub code: Vec<u8>,
}

/// A family fired by the cpu-clock perf event of every CPU instead of
/// uprobes (catalog `attach = "cpu-clock"`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PerfAttach {
    /// The catalog probe.
    pub probe: String,
    /// CPU time between two samples of one CPU.
    pub period_ns: u64,
}

/// The sampling period of `hz` samples per second of CPU time.
pub fn period_of_hz(hz: u32) -> u64 {
    1_000_000_000 / u64::from(hz.max(1))
}

/// One family's part of a plan: its object is loaded, configured and
/// attached on its own.
pub struct FamilyPlan {
    pub family: &'static dyn Family,
    /// The family's hooks; a hook's index here is its uprobe cookie.
    pub hooks: Vec<Hook>,
    pub config: GpConfig,
    /// For a perf-event family (no hooks): what it samples.
    pub perf: Option<PerfAttach>,
}

impl FamilyPlan {
    /// The catalog probes these hooks (or this perf event) serve, each once.
    pub fn probes(&self) -> Vec<&str> {
        let mut out: Vec<&str> = self.perf.iter().map(|p| p.probe.as_str()).collect();
        for h in &self.hooks {
            if !out.contains(&h.probe.as_str()) {
                out.push(&h.probe);
            }
        }
        out
    }

    /// What the family's decoder needs to know of each hook.
    pub fn hook_infos(&self) -> Vec<HookInfo> {
        self.hooks
            .iter()
            .map(|h| HookInfo {
                function: h.function.clone(),
                operation: h.operation.clone(),
            })
            .collect()
    }
}

/// Everything needed to start a session on a binary or a process: open
/// it, resolve offsets (given, or from its DWARF / the offsets table) and
/// the catalog's hooks, family by family.
pub struct Plan {
    pub target: Target,
    pub info: TargetInfo,
    pub offsets: Offsets,
    pub families: Vec<FamilyPlan>,
    /// Probes that cannot be instrumented, with why.
    pub skipped: Vec<String>,
    /// What an attached probe will not report, with why (optional fields unknown).
    pub notes: Vec<String>,
    /// Every family's ring buffer size, instead of its default (tests of
    /// loss accounting make it tiny).
    pub ring_buffer_bytes: Option<u32>,
}

impl Plan {
    pub fn new(
        bin: &crate::gobin::GoBinary,
        pid: Option<u32>,
        probes: &[String],
        offsets: Option<Offsets>,
    ) -> Result<Plan, AttachError> {
        let catalog = Catalog::builtin()?;
        let mut skipped = Vec::new();
        let mut probes = probes.to_vec();
        let given = offsets.is_some();
        let offsets = offsets.unwrap_or_else(|| Offsets::resolved(bin, catalog));
        if !given {
            // Same verdicts (and reasons) as `goprobe inspect`, from the
            // probe catalog, with offsets from DWARF or the offsets table.
            let verdicts = crate::verdict::assess_binary(bin);
            probes.retain(|p| match verdicts.iter().find(|v| &v.probe == p) {
                Some(v) if !v.instrumentable => {
                    skipped.push(format!("{p}: {}", short_reasons(&v.reasons)));
                    false
                }
                _ => true,
            });
        }
        // After the verdicts: only probes that really attach ask for lineage.
        add_lineage(catalog, &mut probes, &offsets.fields);
        let (hooks, perf, reasons) = hooks_from_binary(bin, catalog, &probes, &offsets)?;
        skipped.extend(reasons);
        // Internal probes only support the others.
        if perf.is_empty()
            && !hooks
                .iter()
                .any(|h| catalog.probe(&h.probe).is_some_and(|p| !p.internal))
        {
            return Err(AttachError::NothingToAttach(skipped.join("; ")));
        }
        let mut families: Vec<FamilyPlan> = Vec::new();
        for (probe, family) in perf {
            families.push(FamilyPlan {
                family,
                hooks: Vec::new(),
                config: family_config(catalog, family.name(), &offsets.fields),
                perf: Some(PerfAttach {
                    probe,
                    period_ns: period_of_hz(super::DEFAULT_CPU_HZ),
                }),
            });
        }
        for h in hooks {
            let name = catalog
                .probe(&h.probe)
                .map(|p| p.family.as_str())
                .unwrap_or_default();
            let i = match families.iter().position(|f| f.family.name() == name) {
                Some(i) => i,
                None => {
                    let family = probes::family(name).ok_or_else(|| {
                        AttachError::BadCatalog(format!(
                            "{}: family {name:?} is not in the registry (src/probes/mod.rs)",
                            h.probe
                        ))
                    })?;
                    families.push(FamilyPlan {
                        family,
                        hooks: Vec::new(),
                        config: family_config(catalog, name, &offsets.fields),
                        perf: None,
                    });
                    families.len() - 1
                }
            };
            families[i].hooks.push(h);
        }
        let mut notes = Vec::new();
        for f in &mut families {
            let c = f.family.configure(&ConfigInput {
                offsets: &offsets.fields,
                sizes: &offsets.sizes,
                type_sizes: &offsets.type_sizes,
                binary: bin,
            });
            f.config.mode = c.modes;
            notes.extend(c.notes);
        }
        let binary = match pid {
            // The kernel resolves the link to the process's own inode, even
            // when the file was replaced on disk.
            Some(p) => PathBuf::from(format!("/proc/{p}/exe")),
            None => bin.path().to_owned(),
        };
        let bi = bin.build_info();
        let info = TargetInfo {
            path: bin.path().display().to_string(),
            pid,
            go_version: bi.go_version.clone(),
            service_name: service_name(bi.path.as_deref(), bin.path()),
            // Known once the session has attached them.
            probes: Vec::new(),
        };
        Ok(Plan {
            target: Target { binary, pid },
            info,
            offsets,
            families,
            skipped,
            notes,
            ring_buffer_bytes: None,
        })
    }

    /// Every hook of every family.
    pub fn hooks(&self) -> impl Iterator<Item = &Hook> {
        self.families.iter().flat_map(|f| &f.hooks)
    }

    /// Sample the CPU `hz` times per second of CPU time (perf-event families).
    pub fn set_cpu_hz(&mut self, hz: u32) {
        for f in &mut self.families {
            if let Some(p) = &mut f.perf {
                p.period_ns = period_of_hz(hz);
            }
        }
    }
}

/// The field a goroutine records its creator in (Go 1.21+).
pub const PARENT_GOID: &str = "runtime.g.parentGoid";

/// Goroutine lineage: calls and events on goroutines a handler started
/// join the handler's span. Where the target's goroutines record their
/// creator (`runtime.g.parentGoid`, Go 1.21+, offset known) the client and
/// event programs read it, one goroutine deep, at no extra trap; otherwise
/// the internal goroutine-creation probes (go.spawn: two traps on every
/// goroutine creation, net/http alone starts one per request) are added,
/// when a client or event probe is selected. Naming go.spawn attaches it
/// anyway, for lineage at any depth.
fn add_lineage(catalog: &Catalog, probes: &mut Vec<String>, offsets: &BTreeMap<String, u64>) {
    // A probe whose events nest in spans of other goroutines needs to know
    // who started its goroutine: from its own events' parent goroutine
    // (Go 1.21+, when the probe reads it), else from goroutine creations.
    let known = offsets.contains_key(PARENT_GOID);
    let needs_creations = probes.iter().any(|p| {
        catalog.probe(p).is_some_and(|p| {
            matches!(p.role, Role::Client | Role::Event)
                && !(known && p.fields.iter().any(|f| f.field == PARENT_GOID))
        })
    });
    if !needs_creations {
        return;
    }
    for p in catalog.probes.iter().filter(|p| p.internal) {
        if !probes.contains(&p.name) {
            probes.push(p.name.clone());
        }
    }
}

/// A family's offset array: the known offsets of the fields its probes
/// name, in `Catalog::family_fields` order (the order build.rs gave its C
/// file's `GP_F_*` indexes).
pub fn family_config(catalog: &Catalog, family: &str, offsets: &BTreeMap<String, u64>) -> GpConfig {
    let mut c = GpConfig::default();
    for (slot, f) in c.off.iter_mut().zip(catalog.family_fields(family)) {
        if let Some(&o) = offsets.get(f) {
            *slot = o;
        }
    }
    c
}

/// A probe's reasons for a one-line note: when its functions are not in
/// the binary at all (an HTTP service without database/sql), that is the
/// whole story; the offsets those functions would need are left out.
fn short_reasons(reasons: &[String]) -> String {
    let missing: Vec<&str> = reasons
        .iter()
        .filter_map(|r| {
            r.strip_prefix("function ")?
                .strip_suffix(" not in the binary")
        })
        .collect();
    if missing.is_empty() {
        reasons.join("; ")
    } else {
        format!("not in the binary: {}", missing.join(", "))
    }
}

/// The register table for one catalog hook on amd64: each argument's words
/// go to consecutive slots from its `slot`; flags as the family spells them.
fn gp_hook(family: &dyn Family, probe: &str, hook: &catalog::Hook) -> Result<GpHook, AttachError> {
    let bad = |what: String| AttachError::BadCatalog(format!("{probe}: {}: {what}", hook.function));
    let mut gp = GpHook::default();
    for f in &hook.flags {
        gp.flags |= family
            .hook_flag(f)
            .ok_or_else(|| bad(format!("unknown flag {f:?} for family {}", family.name())))?;
    }
    for a in &hook.args {
        let Some(first) = a.slot else { continue };
        for (i, &w) in a.words.iter().enumerate() {
            let s = usize::from(first) + i;
            let reg = u8::try_from(w)
                .ok()
                .filter(|_| w < catalog::AMD64_INT_REGS.len())
                .ok_or_else(|| {
                    bad(format!(
                        "argument {} word {w} has no amd64 register",
                        a.name
                    ))
                })?;
            let cell = gp
                .reg
                .get_mut(s)
                .ok_or_else(|| bad(format!("argument {} slot {s} out of range", a.name)))?;
            if *cell != abi::REG_NONE {
                return Err(bad(format!("slot {s} used twice")));
            }
            *cell = reg;
        }
    }
    Ok(gp)
}

/// The perf-event probes a plan attaches, with their families.
pub type PerfProbes = Vec<(String, &'static dyn Family)>;

/// Resolve the catalog hooks of each probe in the binary. Returns the
/// hooks, the perf-event probes (which have none) and, for probes that
/// cannot be instrumented, the reason. A probe is attached whole or not at
/// all: a missing required hook or field skips it.
pub fn hooks_from_binary(
    bin: &crate::gobin::GoBinary,
    catalog: &Catalog,
    probes: &[String],
    offsets: &Offsets,
) -> Result<(Vec<Hook>, PerfProbes, Vec<String>), AttachError> {
    let mut hooks = Vec::new();
    let mut perf: PerfProbes = Vec::new();
    let mut reasons = Vec::new();
    let goarch = String::from(bin.elf().arch.clone());
    let key = crate::offsets::Key::for_binary(bin, &goarch);
    let lookup = |m: &str| key.module_version(m);
    let target = catalog::Target {
        go_version: &key.go_version,
        module_version: &lookup,
    };
    'probes: for name in probes {
        let Some(probe) = catalog.probe(name) else {
            reasons.push(format!("{name}: not in the catalog"));
            continue;
        };
        if !probe.archs.contains(&goarch) {
            reasons.push(format!(
                "{name}: unsupported architecture {goarch} (supported: {})",
                probe.archs.join(", ")
            ));
            continue;
        }
        let Some(family) = probes::family(&probe.family) else {
            return Err(AttachError::BadCatalog(format!(
                "{name}: family {:?} is not in the registry (src/probes/mod.rs)",
                probe.family
            )));
        };
        let present = |h: &catalog::Hook| matches!(bin.function(&h.function), Ok(Some(_)));
        let missing = offsets.missing(probe, &target, &present);
        if !missing.is_empty() {
            reasons.push(format!(
                "{name}: offsets unknown for {}",
                missing.join(", ")
            ));
            continue;
        }
        if probe.attach != catalog::Attach::Uprobes {
            perf.push((name.clone(), family));
            continue;
        }
        let mut mine = Vec::new();
        for h in probe.hooks_for(&target) {
            let f = match bin.function(&h.function) {
                Ok(Some(f)) => f,
                Ok(None) if h.optional => continue,
                Ok(None) => {
                    reasons.push(format!("{name}: function {} not in the binary", h.function));
                    continue 'probes;
                }
                Err(e) => {
                    reasons.push(format!("{name}: {e}"));
                    continue 'probes;
                }
            };
            let code = usize::try_from(f.offset)
                .ok()
                .zip(usize::try_from(f.offset.saturating_add(f.size)).ok())
                .and_then(|(a, b)| bin.data().get(a..b));
            let Some(code) = code else {
                reasons.push(format!("{name}: {} lies outside the file", h.function));
                continue 'probes;
            };
            let program = |at: HookPoint, suffix: &str| {
                h.at.contains(&at)
                    .then(|| format!("{}_{suffix}", h.program))
            };
            mine.push(Hook {
                probe: name.clone(),
                function: h.function.clone(),
                entry_program: program(HookPoint::Entry, "entry"),
                return_program: program(HookPoint::Return, "return"),
                gp: gp_hook(family, name, h)?,
                operation: h.operation.clone(),
                address: f.address,
                file_offset: f.offset,
                code: code.to_vec(),
            });
        }
        if mine.is_empty() {
            reasons.push(format!("{name}: no function it hooks is in the binary"));
        }
        hooks.extend(mine);
    }
    Ok((hooks, perf, reasons))
}

/// The service name spans use: the last element of the main module path,
/// else the binary's file name.
pub fn service_name(main_path: Option<&str>, binary: &Path) -> String {
    main_path
        .and_then(|p| p.rsplit('/').next())
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .or_else(|| binary.file_name().map(|f| f.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every catalog hook turns into a register table its family's programs
    /// can use, and the offsets land at the family's indexes.
    #[test]
    fn catalog_hooks_become_register_tables() {
        let catalog = Catalog::builtin().expect("catalog");
        for p in &catalog.probes {
            let family = probes::family(&p.family).expect("registered family");
            for h in &p.hooks {
                gp_hook(family, &p.name, h).unwrap_or_else(|e| panic!("{e}"));
            }
        }
        let server = catalog.probe("http.server").expect("probe");
        let g = gp_hook(
            probes::family("http_server").unwrap(),
            "http.server",
            &server.hooks[0],
        )
        .expect("hook");
        assert_eq!(&g.reg[..3], &[1, 2, 3], "rw itab RBX, rw data RCX, req RDI");
        let db = catalog.probe("db.sql").expect("probe");
        let family = probes::family("db_sql").unwrap();
        let q = db
            .hooks
            .iter()
            .find(|h| h.function.ends_with("queryDC"))
            .expect("queryDC");
        let g = gp_hook(family, "db.sql", q).expect("hook");
        assert_eq!(
            &g.reg[..5],
            &[0, 7, 8, 1, 2],
            "db RAX, query R10/R11, error RBX/RCX"
        );
        let st = db
            .hooks
            .iter()
            .find(|h| h.function.ends_with("(*Stmt).ExecContext"))
            .expect("stmt");
        assert_eq!(
            gp_hook(family, "db.sql", st).expect("hook").flags,
            family.hook_flag("receiver_is_stmt").unwrap()
        );
        let offsets: BTreeMap<String, u64> = [("runtime.g.goid".to_owned(), 152)].into();
        let fields = catalog.family_fields("db_sql");
        let i = fields.iter().position(|f| *f == "runtime.g.goid").unwrap();
        let c = family_config(catalog, "db_sql", &offsets);
        assert_eq!(c.off[i], 152);
        assert!(
            c.off
                .iter()
                .enumerate()
                .all(|(j, &o)| j == i || o == abi::NO_OFFSET)
        );
    }

    /// Go 1.21+ (the parent goroutine's offset known): every client and
    /// event probe reads its goroutine's creator, so no selection brings the
    /// goroutine-creation probes with their two traps per goroutine; without
    /// the offset (Go 1.19, 1.20) any client or event probe brings them.
    #[test]
    fn lineage_needs_goroutine_creations_only_without_parent_goid() {
        let catalog = Catalog::builtin().expect("catalog");
        let linked: Vec<&catalog::Probe> = catalog
            .probes
            .iter()
            .filter(|p| matches!(p.role, Role::Client | Role::Event))
            .collect();
        assert!(linked.iter().any(|p| p.name == "grpc.client"));
        let spawn: Vec<&str> = catalog
            .probes
            .iter()
            .filter(|p| p.internal)
            .map(|p| p.name.as_str())
            .collect();
        assert!(spawn.contains(&"go.spawn"), "{spawn:?}");
        let with: BTreeMap<String, u64> = [(PARENT_GOID.to_owned(), 272)].into();
        let without = BTreeMap::new();
        for p in &linked {
            let mut probes = vec!["http.server".to_owned(), p.name.clone()];
            add_lineage(catalog, &mut probes, &with);
            assert_eq!(
                probes,
                ["http.server", p.name.as_str()],
                "{} on Go 1.21+",
                p.name
            );
            let mut probes = vec![p.name.clone()];
            add_lineage(catalog, &mut probes, &without);
            for s in &spawn {
                assert!(
                    probes.iter().any(|x| x == s),
                    "{} before Go 1.21: {probes:?}",
                    p.name
                );
            }
        }
        let mut servers = vec!["http.server".to_owned(), "grpc.server".to_owned()];
        add_lineage(catalog, &mut servers, &without);
        assert_eq!(
            servers,
            ["http.server", "grpc.server"],
            "servers alone need no lineage"
        );
    }

    #[test]
    fn service_names() {
        assert_eq!(
            service_name(Some("example.com/httpserver"), Path::new("/x/y")),
            "httpserver"
        );
        assert_eq!(service_name(None, Path::new("/x/y")), "y");
    }
}
