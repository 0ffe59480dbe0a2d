//! The `inspect` report: what goprobe knows about a Go binary (build info,
//! ELF facts, function table), rendered for a person or as JSON.

use std::io::Write;

use serde::Serialize;
use serde::ser::SerializeMap;

use crate::gobin::{Function, GoBinError, GoBinary, Module};

/// The JSON object `goprobe inspect --json` prints per binary.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// Empty when unknown (no build info and no `runtime.buildVersion`).
    pub go_version: &'a str,
    /// Whether the binary has build info (`.go.buildinfo`); without it the
    /// Go version comes from the runtime's own copy, and there are no modules.
    pub build_info: bool,
    /// The main package's import path (the `path` line).
    pub main_package: Option<&'a str>,
    pub main: Option<&'a Module>,
    pub deps: &'a [Module],
    /// Modules the binary shows although its build info does not list them
    /// (a GOPATH build: Debian's), whose versions the verdicts and offsets
    /// use ([`crate::gobin::evidence`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub modules_seen: Vec<Module>,
    pub settings: Settings<'a>,
    pub arch: String,
    pub pie: bool,
    pub stripped: bool,
    pub dwarf: bool,
    pub dwarf_compressed: bool,
    pub pclntab_version: Option<&'static str>,
    /// Why the function table could not be read (only when it could not).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pclntab_error: Option<&'a str>,
    /// Each catalog probe's instrumentability verdict ([`crate::verdict`]).
    pub probes: Vec<crate::verdict::Verdict>,
}

/// Build settings, serialized as a JSON object in file order.
#[derive(Debug)]
pub struct Settings<'a>(pub &'a [(String, String)]);

impl Serialize for Settings<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (k, v) in self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

impl<'a> Report<'a> {
    pub fn new(bin: &'a GoBinary) -> Report<'a> {
        let bi = bin.build_info();
        let elf = bin.elf();
        let (probes, modules_seen) = crate::verdict::assess_binary_seen(bin);
        Report {
            path: bin.path().display().to_string(),
            pid: bin.pid(),
            go_version: &bi.go_version,
            build_info: bi.present,
            main_package: bi.path.as_deref(),
            main: bi.main.as_ref(),
            deps: &bi.deps,
            modules_seen,
            settings: Settings(&bi.settings),
            arch: elf.arch.clone().into(),
            pie: elf.pie,
            stripped: elf.stripped,
            dwarf: elf.dwarf,
            dwarf_compressed: elf.dwarf_compressed,
            pclntab_version: elf.pclntab_version.map(|v| v.as_str()),
            pclntab_error: bin.pclntab_error(),
            probes,
        }
    }
}

/// Write the report as one JSON line.
pub fn write_json(out: &mut impl Write, bin: &GoBinary) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, &Report::new(bin))?;
    out.write_all(b"\n")
}

fn module_text(m: &Module) -> String {
    let mut s = m.path.clone();
    for part in [&m.version, &m.sum] {
        if !part.is_empty() {
            s.push(' ');
            s.push_str(part);
        }
    }
    if let Some(r) = &m.replace {
        s.push_str(" => ");
        s.push_str(&module_text(r));
    }
    s
}

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// Write the summary for a person. The function table is read to count the
/// functions; if it cannot be read, the summary is still written and the
/// error returned so the caller reports it.
pub fn write_text(out: &mut impl Write, bin: &GoBinary) -> std::io::Result<Option<GoBinError>> {
    let r = Report::new(bin);
    match r.pid {
        Some(pid) => writeln!(out, "{} (pid {pid})", r.path)?,
        None => writeln!(out, "{}", r.path)?,
    }
    let version = if r.go_version.is_empty() {
        "unknown"
    } else {
        r.go_version
    };
    writeln!(out, "  go version    {version}")?;
    if !r.build_info {
        writeln!(
            out,
            "  build info    absent (no .go.buildinfo; Go version from runtime.buildVersion{})",
            if r.go_version.is_empty() {
                ", not found"
            } else {
                ""
            }
        )?;
    }
    if let Some(p) = r.main_package {
        writeln!(out, "  package       {p}")?;
    }
    if let Some(m) = r.main {
        writeln!(out, "  main module   {}", module_text(m))?;
    }
    writeln!(out, "  arch          {}", r.arch)?;
    writeln!(out, "  pie           {}", yes_no(r.pie))?;
    writeln!(
        out,
        "  stripped      {}",
        if r.stripped { "yes (no .symtab)" } else { "no" }
    )?;
    let dwarf = match (r.dwarf, r.dwarf_compressed) {
        (false, _) => "no",
        (true, true) => "yes (compressed)",
        (true, false) => "yes",
    };
    writeln!(out, "  dwarf         {dwarf}")?;
    let mut failure = None;
    match (r.pclntab_version, bin.function_table()) {
        (Some(v), Ok(fns)) => writeln!(
            out,
            "  pclntab       Go {v} format, {} functions",
            fns.len()
        )?,
        (_, Err(e)) => {
            writeln!(out, "  pclntab       unreadable")?;
            failure = Some(e);
        }
        (None, Ok(_)) => writeln!(out, "  pclntab       none")?,
    }
    writeln!(out, "  dependencies  {}", r.deps.len())?;
    for d in r.deps {
        writeln!(out, "    {}", module_text(d))?;
    }
    if !r.modules_seen.is_empty() {
        writeln!(
            out,
            "  seen in the binary, not in its build info (the verdicts use them)"
        )?;
        for m in &r.modules_seen {
            writeln!(out, "    {} {}", m.path, m.version)?;
        }
    }
    if !r.settings.0.is_empty() {
        writeln!(out, "  build settings")?;
        for (k, v) in r.settings.0 {
            writeln!(out, "    {k}={v}")?;
        }
    }
    writeln!(out, "  probes")?;
    for v in &r.probes {
        // Internal probes are goprobe's own bookkeeping, attached with the others.
        let internal = if v.internal { " (internal)" } else { "" };
        if v.instrumentable {
            writeln!(out, "    {:<14}instrumentable{internal}", v.probe)?;
        } else {
            writeln!(out, "    {:<14}not instrumentable{internal}", v.probe)?;
            for reason in &v.reasons {
                writeln!(out, "      - {reason}")?;
            }
        }
        for note in &v.notes {
            writeln!(out, "      note: {note}")?;
        }
    }
    Ok(failure)
}

/// One line of `inspect --functions --json`.
#[derive(Debug, Serialize)]
pub struct FunctionLine<'a> {
    /// The binary, when several were given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<&'a str>,
    pub name: &'a str,
    pub address: u64,
    pub offset: u64,
    pub size: u64,
}

/// Functions whose name contains `matching` (all when `None`), in address order.
pub fn matching_functions<'f>(
    fns: &'f [Function],
    matching: Option<&'f str>,
) -> impl Iterator<Item = &'f Function> {
    fns.iter()
        .filter(move |f| matching.is_none_or(|m| f.name.contains(m)))
}

/// Write the function list: `address offset size name` per line, or NDJSON.
/// `label` is added to each line (the binary's path) when several binaries are listed.
pub fn write_functions(
    out: &mut impl Write,
    fns: &[Function],
    matching: Option<&str>,
    json: bool,
    label: Option<&str>,
) -> std::io::Result<()> {
    for f in matching_functions(fns, matching) {
        if json {
            let line = FunctionLine {
                path: label,
                name: &f.name,
                address: f.address,
                offset: f.offset,
                size: f.size,
            };
            serde_json::to_writer(&mut *out, &line)?;
            out.write_all(b"\n")?;
        } else if let Some(label) = label {
            writeln!(
                out,
                "{label}\t{:#x}\t{:#x}\t{}\t{}",
                f.address, f.offset, f.size, f.name
            )?;
        } else {
            writeln!(
                out,
                "{:#x}\t{:#x}\t{}\t{}",
                f.address, f.offset, f.size, f.name
            )?;
        }
    }
    Ok(())
}
