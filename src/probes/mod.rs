//! Probe families: each module serves one family of catalog probes, from
//! its eBPF object to its spans (see [`family::Family`]). This registry is
//! the one place that lists them; nothing outside `src/probes/` knows any
//! probe by name.

pub mod cpu_sample;
pub mod db_sql;
pub mod family;
pub mod go_panic;
pub mod go_spawn;
pub mod grpc_client;
pub mod grpc_server;
pub mod http_client;
pub mod http_phases;
pub mod http_server;
pub mod netaddr;
pub mod rpc;
pub mod stacks;
pub mod symbols;
pub mod traceback;

pub use family::Family;

/// Every probe family goprobe has, one line each.
pub static FAMILIES: &[&dyn Family] = &[
    &http_server::FAMILY,
    &http_client::FAMILY,
    &http_phases::FAMILY,
    &db_sql::FAMILY,
    &go_panic::FAMILY,
    &go_spawn::FAMILY,
    &grpc_server::FAMILY,
    &grpc_client::FAMILY,
    &cpu_sample::FAMILY,
];

/// The family named `name` (the catalog's `family`).
pub fn family(name: &str) -> Option<&'static dyn Family> {
    FAMILIES.iter().copied().find(|f| f.name() == name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{Catalog, HookPoint, Role};
    use crate::probes::family::RecordingError;
    use crate::span::Event;
    use crate::stream::RawEvent;

    /// The registry, the catalog and the C files agree: every family the
    /// catalog names is registered and serves exactly the probes that name
    /// it; every registered family is in the catalog; every program a hook
    /// names is in its family's C file; every hook flag is known.
    #[test]
    fn registry_catalog_and_c_files_agree() {
        let catalog = Catalog::builtin().expect("catalog");
        let mut names: Vec<&str> = FAMILIES.iter().map(|f| f.name()).collect();
        names.sort_unstable();
        let mut in_catalog = catalog.families();
        in_catalog.sort_unstable();
        assert_eq!(names, in_catalog, "registry vs catalog families");
        for f in FAMILIES {
            let mine: Vec<&str> = catalog
                .probes
                .iter()
                .filter(|p| p.family == f.name())
                .map(|p| p.name.as_str())
                .collect();
            assert_eq!(f.probes(), mine.as_slice(), "{}", f.name());
            let path = format!(
                "{}/ebpf/probes/{}.bpf.c",
                env!("CARGO_MANIFEST_DIR"),
                f.name()
            );
            let source = std::fs::read_to_string(&path).expect(&path);
            for p in catalog.probes.iter().filter(|p| p.family == f.name()) {
                for h in &p.hooks {
                    for at in &h.at {
                        let suffix = match at {
                            HookPoint::Entry => "entry",
                            HookPoint::Return => "return",
                        };
                        let prog = format!("int {}_{suffix}(void *ctx)", h.program);
                        assert!(source.contains(&prog), "{prog} missing from {path}");
                    }
                    for flag in &h.flags {
                        assert!(f.hook_flag(flag).is_some(), "{}: flag {flag}", p.name);
                    }
                }
            }
        }
    }

    /// Each family implements the record side of its probes' catalog role:
    /// it never answers that it makes no such thing. (It may refuse an
    /// event without fields it requires: this one has none of a family's.)
    #[test]
    fn families_make_what_their_role_says() {
        let catalog = Catalog::builtin().expect("catalog");
        for p in &catalog.probes {
            let f = family(&p.family).expect("registered");
            let ev = RawEvent {
                probe: p.name.clone(),
                pid: 1,
                tid: 1,
                goroutine: 2,
                start_ns: 10,
                end_ns: 20,
                fields: [("parent_goroutine".to_owned(), serde_json::json!(1))]
                    .into_iter()
                    .collect(),
            };
            let not_mine =
                |e: Option<RecordingError>| matches!(e, Some(RecordingError::Role { .. }));
            let refused = match p.role {
                Role::Server | Role::Client => not_mine(f.span(&ev, &[] as &[Event]).err()),
                Role::Event => not_mine(f.event(&ev).err()),
                Role::Internal => not_mine(f.spawned_by(&ev).err()),
                Role::Sample => not_mine(f.sample(&ev).err()),
            };
            assert!(!refused, "{} ({:?})", p.name, p.role);
        }
    }

    /// The family's field indexes build.rs generated for its C file are the
    /// order `Catalog::family_fields` gives the Rust side.
    #[test]
    fn generated_field_indexes_match_the_catalog() {
        let catalog = Catalog::builtin().expect("catalog");
        for f in FAMILIES {
            let path = format!("{}/ebpf/{}/fields.h", env!("OUT_DIR"), f.name());
            let header = std::fs::read_to_string(&path).expect(&path);
            let got: Vec<(usize, String)> = header
                .lines()
                .filter_map(|l| l.strip_prefix("#define GP_F_"))
                .filter(|l| !l.starts_with("COUNT "))
                .map(|l| {
                    let index = l.split_whitespace().nth(1).and_then(|v| v.parse().ok());
                    let field = l.split("/*").nth(1).and_then(|c| c.split("*/").next());
                    (
                        index.expect("index"),
                        field.expect("field").trim().to_owned(),
                    )
                })
                .collect();
            let want: Vec<(usize, String)> = catalog
                .family_fields(f.name())
                .into_iter()
                .enumerate()
                .map(|(i, s)| (i, s.to_owned()))
                .collect();
            assert_eq!(got, want, "{}", f.name());
            assert!(want.len() <= crate::bpf::abi::OFF_MAX);
        }
    }
}
