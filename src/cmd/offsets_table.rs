//! `goprobe offsets-table` (hidden): the maintainer tool behind
//! `scripts/gen-offsets-table.sh`. `entry` reads one purpose-built binary's
//! DWARF with goprobe's own reader; `merge` writes entries into the table
//! file; `check` compares them with it.

use std::path::PathBuf;

use anyhow::Context;

use crate::catalog::Catalog;
use crate::dwarf::DwarfTypes;
use crate::exit::Status;
use crate::offsets::table::{Entry, Table, compare_slots, layouts_from_dwarf};

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
    /// Write ENTRY files into TABLE (replacing their slots, keeping the others).
    Merge {
        #[arg(long, value_name = "TABLE")]
        table: PathBuf,
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
            let mut wanted = Catalog::builtin()?.all_fields();
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
        Action::Merge { table, entries } => {
            let mut t = read_table(&table)?;
            for e in read_entries(&entries)? {
                t.insert(e);
            }
            std::fs::write(&table, t.to_json_string())
                .with_context(|| format!("writing {}", table.display()))?;
            Ok(Status::Success)
        }
        Action::Check { table, entries } => {
            let t = read_table(&table)?;
            let problems = compare_slots(&t, &read_entries(&entries)?);
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
