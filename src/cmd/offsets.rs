//! `goprobe offsets`: arguments and glue into [`crate::offsets`].

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;

use crate::catalog::Catalog;
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
    /// runtime.g.goid, net/http.Cookie.Expires.ext); repeatable. Default:
    /// every field the probe catalog needs for this binary.
    #[arg(long = "field", value_name = "F")]
    pub fields: Vec<String>,
    /// Look the offsets table up under this Go version instead of the one
    /// in the binary's build info (e.g. 1.22.10).
    #[arg(long, value_name = "V")]
    pub go_version: Option<String>,
    /// Use this offsets table (as written by scripts/gen-offsets-table.sh)
    /// instead of the one built into goprobe.
    #[arg(long, value_name = "FILE")]
    pub table: Option<PathBuf>,
    /// NDJSON: one object per field (field, offset, size, type_size, source, reason).
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: Args) -> anyhow::Result<Status> {
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
    let resolver = Resolver::for_binary(&bin, &table, args.go_version.as_deref());
    let fields = if args.fields.is_empty() {
        resolver.catalog_fields(&Catalog::builtin()?)
    } else {
        args.fields.clone()
    };
    let results = resolver.resolve_all(&fields);
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
    let unknown = results.iter().filter(|r| !r.is_known()).count();
    if unknown > 0 {
        eprintln!("goprobe: {unknown} of {} fields unknown", results.len());
        return Ok(Status::CheckFailed);
    }
    Ok(Status::Success)
}

fn text_line(r: &Resolved) -> String {
    let num = |v: Option<u64>| v.map_or("?".to_string(), |v| v.to_string());
    match r.offset {
        Some(off) => format!(
            "{}\toffset {off}\tsize {}\t{}",
            r.field,
            num(r.size),
            r.source
        ),
        None => format!(
            "{}\tunknown\t{}",
            r.field,
            r.reason.as_deref().unwrap_or("")
        ),
    }
}
