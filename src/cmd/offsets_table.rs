//! `goprobe offsets-table` (hidden): the maintainer tool behind
//! `scripts/gen-offsets-table.sh`. `entry` reads one purpose-built binary's
//! DWARF with goprobe's own reader; `build` writes a table's standard-library
//! part afresh from entries and `merge` adds entries to it, both failing when
//! two patch releases of one minor disagree; `check` compares entries with it.

use std::path::PathBuf;

use anyhow::Context;

use crate::catalog::Catalog;
use crate::dwarf::DwarfTypes;
use crate::exit::Status;
use crate::offsets::table::{Entry, Table, check_entries, layouts_from_dwarf};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, clap::Subcommand)]
pub enum Action {
    /// Print one table entry (JSON) read from a binary's DWARF: every catalog field it has.
    Entry {
        /// The exact Go version that built BIN (`go env GOVERSION`).
        #[arg(long = "go", value_name = "V")]
        go: String,
        /// GOARCH of BIN.
        #[arg(long, value_name = "ARCH")]
        goarch: String,
        /// Extra fields to include besides the catalog's.
        #[arg(long = "field", value_name = "F")]
        fields: Vec<String>,
        bin: PathBuf,
    },
    /// Write TABLE's standard-library layouts afresh from ENTRY files (its
    /// module layouts are kept); exit 1 if patch releases of a minor disagree.
    Build {
        #[arg(long, value_name = "TABLE")]
        table: PathBuf,
        /// Record patch releases whose layouts differ from their minor's as
        /// layout groups of their own instead of failing.
        #[arg(long)]
        split: bool,
        entries: Vec<PathBuf>,
    },
    /// Add ENTRY files to TABLE; exit 1 if one disagrees with its minor.
    Merge {
        #[arg(long, value_name = "TABLE")]
        table: PathBuf,
        /// As for `build`.
        #[arg(long)]
        split: bool,
        entries: Vec<PathBuf>,
    },
    /// Exit 1 unless TABLE holds exactly these ENTRY files' layouts.
    Check {
        #[arg(long, value_name = "TABLE")]
        table: PathBuf,
        entries: Vec<PathBuf>,
    },
}

fn read_entries(paths: &[PathBuf]) -> anyhow::Result<Vec<Entry>> {
    paths
        .iter()
        .map(|p| {
            let text =
                std::fs::read_to_string(p).with_context(|| format!("reading {}", p.display()))?;
            serde_json::from_str(&text).with_context(|| format!("parsing {}", p.display()))
        })
        .collect()
}

fn read_table(path: &PathBuf) -> anyhow::Result<Table> {
    if !path.exists() {
        return Ok(Table::default());
    }
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    Table::parse(&text).with_context(|| format!("reading {}", path.display()))
}

/// Add `entries` to `t` and write it to `path`; nothing is written when an
/// entry disagrees with its minor (the error names both values).
fn write_merged(
    mut t: Table,
    path: &PathBuf,
    entries: &[PathBuf],
    split: bool,
) -> anyhow::Result<Status> {
    for (e, p) in read_entries(entries)?.into_iter().zip(entries) {
        t.insert_with(e, split)
            .with_context(|| format!("adding {}", p.display()))?;
    }
    for (k, m) in &t.stdlib {
        if crate::offsets::table::minor_of(k).as_deref() != Some(k.as_str()) {
            eprintln!(
                "offsets table: {k} ({}) has layouts of its own, unlike its minor's",
                m.verified.join(" ")
            );
        }
    }
    std::fs::write(path, t.to_json_string())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(Status::Success)
}

pub fn run(args: Args) -> anyhow::Result<Status> {
    match args.action {
        Action::Entry {
            go,
            goarch,
            fields,
            bin,
        } => {
            let data = std::fs::read(&bin).with_context(|| format!("reading {}", bin.display()))?;
            let types =
                DwarfTypes::from_elf(&data).with_context(|| format!("{}", bin.display()))?;
            let mut wanted = Catalog::builtin()?.table_fields();
            wanted.extend(fields);
            let entry = Entry {
                go: Some(go),
                module: None,
                version: None,
                goarch,
                layouts: layouts_from_dwarf(&types, &wanted),
            };
            println!("{}", serde_json::to_string(&entry)?);
            Ok(Status::Success)
        }
        Action::Build {
            table,
            split,
            entries,
        } => {
            let mut t = read_table(&table)?;
            t.stdlib.clear();
            write_merged(t, &table, &entries, split)
        }
        Action::Merge {
            table,
            split,
            entries,
        } => write_merged(read_table(&table)?, &table, &entries, split),
        Action::Check { table, entries } => {
            let t = read_table(&table)?;
            let problems = check_entries(&t, &read_entries(&entries)?);
            for p in &problems {
                eprintln!("offsets table: {p}");
            }
            Ok(if problems.is_empty() {
                Status::Success
            } else {
                Status::CheckFailed
            })
        }
    }
}
