//! `goprobe offsets`: arguments and glue into [`crate::offsets`].

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use crate::catalog::{Catalog, Probe, Target, WantedField};
use crate::exit::Status;
use crate::gobin::GoBinary;
use crate::offsets::table::Table;
use crate::offsets::{Resolved, Resolver};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Go binary to read.
    #[arg(
        value_name = "BIN",
        required_unless_present = "pid",
        conflicts_with = "pid"
    )]
    pub bin: Option<PathBuf>,
    /// Read the executable of a running process.
    #[arg(long, value_name = "N")]
    pub pid: Option<u32>,
    /// A field to resolve, as PKG.Type.field (e.g. net/http.Request.Method,
    /// runtime.g.goid, net/http.Cookie.Expires.ext); repeatable. Any of these
    /// that is unknown makes the exit status 1.
    #[arg(long = "field", value_name = "F")]
    pub fields: Vec<String>,
    /// Resolve the fields this catalog probe needs for the binary's Go
    /// version (e.g. db.sql), whether or not the binary contains the probe's
    /// functions; repeatable, comma-separated. An unknown field the probe
    /// marks optional is reported but does not make the exit status 1.
    ///
    /// Without --field or --probe: the fields of every probe the binary
    /// contains (at least one of its hooked functions is in the binary), so a
    /// plain HTTP service is not asked for database/sql fields; again only
    /// unknown non-optional fields make the exit status 1, and a field only
    /// hooks the binary lacks would read (prepared statements in a program
    /// that never prepares one) counts as optional.
    #[arg(long = "probe", value_name = "PROBE", value_delimiter = ',')]
    pub probes: Vec<String>,
    /// Look the offsets table up under this Go version instead of the one
    /// in the binary's build info (e.g. 1.22.10).
    #[arg(long, value_name = "V")]
    pub go_version: Option<String>,
    /// Use this offsets table (as written by scripts/gen-offsets-table.sh)
    /// instead of the one built into goprobe.
    #[arg(long, value_name = "FILE")]
    pub table: Option<PathBuf>,
    /// Refuse (as unknown) an offset that only the offsets table knows for a
    /// Go patch release the table was not generated from, instead of using
    /// its minor release's layouts.
    #[arg(long)]
    pub strict_offsets: bool,
    /// NDJSON: one object per field: field, offset, size, type_size, source
    /// (dwarf, rtype = the binary's type descriptors, table, unknown,
    /// conflict), checked (other sources that agree), table (slot, the
    /// releases it was verified on, whether this release is one), reason.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<Status> {
    crate::verdict::check_probe_names(&args.probes)?;
    let table = match &args.table {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading {}", path.display()))?;
            Table::parse(&text).with_context(|| format!("reading {}", path.display()))?
        }
        None => Table::builtin()?,
    };
    let bin = match (&args.bin, args.pid) {
        (_, Some(pid)) => GoBinary::open_pid(pid)?,
        (Some(path), None) => GoBinary::open(path)?,
        (None, None) => anyhow::bail!("give a binary or --pid"),
    };
    let resolver =
        Resolver::for_binary(&bin, &table, args.go_version.as_deref()).strict(args.strict_offsets);
    let catalog = Catalog::builtin()?;
    let probes: Vec<&Probe> = if args.fields.is_empty() && args.probes.is_empty() {
        probes_in_binary(catalog, &bin, &resolver)
    } else {
        args.probes
            .iter()
            .filter_map(|name| catalog.probe(name))
            .collect()
    };
    // Explicitly named fields first, always required; then the probes'.
    let mut wanted: Vec<WantedField> = args
        .fields
        .iter()
        .map(|f| WantedField {
            field: f.clone(),
            optional: false,
        })
        .collect();
    for w in resolver.wanted_fields(&probes) {
        match wanted.iter_mut().find(|x| x.field == w.field) {
            Some(x) => x.optional &= w.optional,
            None => wanted.push(w),
        }
    }
    if args.fields.is_empty() && args.probes.is_empty() {
        // Fields reached only from hooks the binary lacks (prepared
        // statements in a program that never prepares one) are not needed.
        let lookup = crate::verdict::hooked_functions(catalog, &bin);
        let present = |h: &crate::catalog::Hook| lookup(&h.function).unwrap_or(true);
        let key = resolver.key();
        let modules = |m: &str| key.module_version(m);
        let target = Target {
            go_version: &key.go_version,
            module_version: &modules,
        };
        let needed: Vec<&str> = probes
            .iter()
            .flat_map(|p| crate::verdict::needed_fields(p, &target, &present))
            .map(|f| f.field.as_str())
            .collect();
        for w in wanted
            .iter_mut()
            .filter(|w| !needed.contains(&w.field.as_str()))
        {
            w.optional = true;
        }
    }
    let results = resolver.resolve_wanted(&wanted);
    let mut out = std::io::stdout().lock();
    for r in &results {
        if args.json {
            serde_json::to_writer(&mut out, r)?;
            writeln!(out)?;
        } else {
            writeln!(out, "{}", text_line(r))?;
        }
    }
    out.flush()?;
    // A conflict between sources fails even for an optional field.
    let conflict = |r: &&Resolved| r.source == crate::offsets::Source::Conflict;
    let unknown = results
        .iter()
        .filter(|r| !r.is_known() && (!r.optional || conflict(r)))
        .count();
    for r in results.iter().filter(conflict) {
        eprintln!(
            "goprobe: {}: {}",
            r.field,
            r.reason.as_deref().unwrap_or("sources disagree")
        );
    }
    if let Some(t) = results
        .iter()
        .find(|r| r.is_inexact_table())
        .and_then(|r| r.table.as_ref())
    {
        let n = results.iter().filter(|r| r.is_inexact_table()).count();
        eprintln!(
            "goprobe: {n} field(s) from the {} table, verified on {}, not on {} itself (--strict-offsets refuses them)",
            t.key,
            t.verified.join(" "),
            resolver.key().go_version
        );
    }
    let unknown_optional = results
        .iter()
        .filter(|r| !r.is_known() && r.optional && !conflict(r))
        .count();
    if unknown_optional > 0 {
        eprintln!(
            "goprobe: {unknown_optional} optional field(s) unknown (the probes work without them)"
        );
    }
    if unknown > 0 {
        eprintln!("goprobe: {unknown} of {} fields unknown", results.len());
        return Ok(Status::CheckFailed);
    }
    Ok(Status::Success)
}

/// The probes whose hooked functions (at least one) are in `bin`; every
/// probe, with a warning, when its function table cannot be read.
fn probes_in_binary<'c>(
    catalog: &'c Catalog,
    bin: &GoBinary,
    resolver: &Resolver<'_>,
) -> Vec<&'c Probe> {
    let lookup = crate::verdict::hooked_functions(catalog, bin);
    // The lookup answers Err for any name when pclntab is unreadable.
    if let Err(e) = lookup("") {
        eprintln!(
            "goprobe: warning: function table unreadable ({e}): resolving every probe's fields"
        );
        return catalog.probes.iter().collect();
    }
    let key = resolver.key();
    let modules = |m: &str| key.module_version(m);
    let target = Target {
        go_version: &key.go_version,
        module_version: &modules,
    };
    catalog.probes_present(&target, &|f| lookup(f).unwrap_or(false))
}

fn text_line(r: &Resolved) -> String {
    let num = |v: Option<u64>| v.map_or("?".to_string(), |v| v.to_string());
    match r.offset {
        Some(off) => {
            let mut line = format!(
                "{}\toffset {off}\tsize {}\t{}",
                r.field,
                num(r.size),
                r.source
            );
            for c in &r.checked {
                line.push_str(&format!(" = {c}"));
            }
            if let Some(t) = r.table.as_ref().filter(|t| !t.exact) {
                line.push_str(&format!(
                    " ({} layouts, verified on {}, not this release)",
                    t.key,
                    t.verified.join(" ")
                ));
            }
            line
        }
        None => format!(
            "{}\tunknown\t{}",
            r.field,
            r.reason.as_deref().unwrap_or("")
        ),
    }
}
