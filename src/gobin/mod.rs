//! Reading Go binaries: ELF facts, build info (`.go.buildinfo`) and the
//! function table (`.gopclntab`), for stripped and unstripped, PIE and
//! non-PIE, amd64 and arm64 binaries built by Go 1.16 and later.
//!
//! Everything here parses untrusted bytes: every read is bounds-checked and
//! failures are [`GoBinError`]s, never panics.
//!
//! API CONTRACT (other modules code against these names; keep them stable):
//! * [`GoBinary::open`] / [`GoBinary::open_pid`] / [`GoBinary::from_bytes`]
//! * [`GoBinary::path`], [`GoBinary::pid`], [`GoBinary::data`]
//! * [`GoBinary::build_info`] -> [`BuildInfo`] (go_version, path, main, deps, settings)
//! * [`GoBinary::elf`] -> [`ElfFacts`] (arch, pie, stripped, dwarf, pclntab_version)
//! * [`GoBinary::functions`] -> `Vec<Function>` (name, entry vaddr, size, file offset)
//! * [`GoBinary::function`] -> one function by exact name
//! * [`GoBinary::survey`] -> hooked functions and module evidence in one pass
//! * [`GoBinary::vaddr_to_file_offset`]
//! * [`types::TypeTable`] (runtime type descriptors -> `%T` names), [`types::load_bias`]
//! * [`values::panic_message`] (captured panic values -> the message Go prints)
//! * [`symbolize::Symbolizer`] (pc -> function, file, line, inlined frames included)

mod buildinfo;
mod elf;
pub mod evidence;
mod functab;
#[doc(hidden)]
pub mod fuzz;
mod literals;
mod modinfo;
mod moduledata;
mod pclntab;
mod read;
mod scan;
pub mod symbolize;
pub mod types;
pub mod values;
mod version;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use self::elf::Layout;
use self::pclntab::Located;
pub use self::scan::Survey;

/// Why a file could not be read as a Go binary. Each variant's message is one
/// line naming the problem, suitable for `goprobe: {err}`.
#[derive(Debug, thiserror::Error)]
pub enum GoBinError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}: not an ELF file")]
    NotElf(PathBuf),
    #[error("{0}: not a Go binary (no Go build info and no pclntab)")]
    NotGo(PathBuf),
    #[error("{path}: truncated or malformed {what}")]
    Malformed { path: PathBuf, what: String },
    #[error("no process with pid {0}")]
    NoSuchProcess(u32),
    #[error(
        "cannot read process {0}'s binary (/proc/{0}/exe): it belongs to another user; \
         run goprobe as that user, as root (sudo), or with CAP_SYS_PTRACE"
    )]
    ProcessUnreadable(u32),
}

/// CPU architecture of the binary, named as GOARCH names it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(into = "String")]
pub enum Arch {
    Amd64,
    Arm64,
    Other(String),
}

impl From<Arch> for String {
    fn from(a: Arch) -> String {
        match a {
            Arch::Amd64 => "amd64".into(),
            Arch::Arm64 => "arm64".into(),
            Arch::Other(s) => s,
        }
    }
}

/// One module as recorded in build info (`mod`, `dep` and `=>` lines).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Module {
    pub path: String,
    /// As recorded: a directory replacement (`=> ../local`) has `(devel)`
    /// (Go 1.18+) or an empty version.
    pub version: String,
    /// `h1:...`; empty when the line had none.
    pub sum: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replace: Option<Box<Module>>,
}

impl Module {
    pub fn new(path: &str, version: &str, sum: &str) -> Module {
        Module {
            path: path.into(),
            version: version.into(),
            sum: sum.into(),
            replace: None,
        }
    }
}

/// What `go version -m` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildInfo {
    /// e.g. `go1.22.10`; empty when unknown (no build info and no
    /// `runtime.buildVersion` found).
    pub go_version: String,
    /// The binary has a `.go.buildinfo` blob. Without one (stripped out by a
    /// bundler), the Go version comes from the runtime's own copy and there
    /// are no modules or settings.
    pub present: bool,
    /// The `path` line (main package path), if present.
    pub path: Option<String>,
    pub main: Option<Module>,
    pub deps: Vec<Module>,
    /// `build KEY=VALUE` lines in file order (keys can repeat in principle).
    pub settings: Vec<(String, String)>,
}

/// pclntab format, named by the first Go release that wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PclntabVersion {
    Go12,
    Go116,
    Go118,
    Go120,
}

impl PclntabVersion {
    /// The Go release that introduced the format, e.g. `"1.20"`.
    pub fn as_str(self) -> &'static str {
        match self {
            PclntabVersion::Go12 => "1.2",
            PclntabVersion::Go116 => "1.16",
            PclntabVersion::Go118 => "1.18",
            PclntabVersion::Go120 => "1.20",
        }
    }
}

impl std::fmt::Display for PclntabVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfFacts {
    pub arch: Arch,
    pub pie: bool,
    /// No `.symtab`.
    pub stripped: bool,
    /// `.debug_info` present.
    pub dwarf: bool,
    pub dwarf_compressed: bool,
    pub pclntab_version: Option<PclntabVersion>,
}

/// One function from pclntab.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Function {
    pub name: String,
    /// Virtual address of the entry, as `go tool nm` prints it.
    pub address: u64,
    /// Size in bytes (up to the next function's entry / end of text).
    pub size: u64,
    /// Offset of the entry in the file (what a uprobe takes).
    pub offset: u64,
}

/// The bytes of an opened binary.
enum Bytes {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

impl Bytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
}

/// An opened Go binary.
pub struct GoBinary {
    path: PathBuf,
    pid: Option<u32>,
    bytes: Bytes,
    build_info: BuildInfo,
    elf: ElfFacts,
    layout: Layout,
    /// The function table, or why it could not be found.
    pclntab: Result<Located, String>,
    /// Resolved on first use.
    functions: OnceLock<Vec<Function>>,
    /// [`GoBinary::moduledata_address`], found on first use.
    moduledata: OnceLock<Result<u64, String>>,
    /// File ranges of the data sections ([`elf::data_sections`]); empty
    /// without section headers.
    data_sections: Vec<(u64, u64)>,
}

impl std::fmt::Debug for GoBinary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoBinary")
            .field("path", &self.path)
            .field("pid", &self.pid)
            .finish_non_exhaustive()
    }
}

impl GoBinary {
    /// Open a file (memory-mapped).
    pub fn open(path: &Path) -> Result<GoBinary, GoBinError> {
        Self::open_file(path, path.to_path_buf(), None)
    }

    /// Open the executable of a running process through `/proc/N/exe`, which
    /// works even when the file on disk was replaced or deleted. The
    /// reported path is the link target.
    pub fn open_pid(pid: u32) -> Result<GoBinary, GoBinError> {
        let proc_dir = PathBuf::from(format!("/proc/{pid}"));
        if pid == 0 || !proc_dir.exists() {
            return Err(GoBinError::NoSuchProcess(pid));
        }
        let exe = proc_dir.join("exe");
        let shown = std::fs::read_link(&exe).unwrap_or_else(|_| exe.clone());
        match Self::open_file(&exe, shown, Some(pid)) {
            // The process can exit between the check and the open.
            Err(GoBinError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                Err(GoBinError::NoSuchProcess(pid))
            }
            // ptrace access to /proc/PID: another user's (or a non-dumpable) process.
            Err(GoBinError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::PermissionDenied
                    && std::fs::read_link(&exe).is_err() =>
            {
                Err(GoBinError::ProcessUnreadable(pid))
            }
            other => other,
        }
    }

    fn open_file(
        open_path: &Path,
        path: PathBuf,
        pid: Option<u32>,
    ) -> Result<GoBinary, GoBinError> {
        let io = |source: std::io::Error| GoBinError::Io {
            path: path.clone(),
            source,
        };
        let file = File::open(open_path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        if meta.is_dir() {
            return Err(io(std::io::Error::from(std::io::ErrorKind::IsADirectory)));
        }
        if !meta.is_file() {
            return Err(io(std::io::Error::other("not a regular file")));
        }
        let bytes = if meta.len() == 0 {
            Bytes::Owned(Vec::new())
        } else {
            // SAFETY: the map is read-only and private, and goprobe never
            // writes the file. The one hazard is another process truncating
            // the file while it is mapped (reads past the new end fault).
            // Binaries are replaced by rename in practice, which leaves the
            // mapped inode intact; the speed of not copying 20+ MB per
            // inspection is worth that.
            Bytes::Mapped(unsafe { memmap2::Mmap::map(&file) }.map_err(io)?)
        };
        Self::from_storage(path, pid, bytes)
    }

    /// Parse a binary already in memory (tests, fuzzing, other readers).
    pub fn from_bytes(path: PathBuf, data: Vec<u8>) -> Result<GoBinary, GoBinError> {
        Self::from_storage(path, None, Bytes::Owned(data))
    }

    fn from_storage(path: PathBuf, pid: Option<u32>, bytes: Bytes) -> Result<GoBinary, GoBinError> {
        let data = bytes.as_slice();
        let malformed = |what: String| GoBinError::Malformed {
            path: path.clone(),
            what,
        };
        match object::FileKind::parse(data) {
            Ok(object::FileKind::Elf32 | object::FileKind::Elf64) => {}
            _ => return Err(GoBinError::NotElf(path)),
        }
        let file = object::File::parse(data).map_err(|e| malformed(format!("ELF ({e})")))?;
        let layout = Layout::from_object(&file);
        if let Some(seg) = layout.segments.iter().find(|s| {
            s.offset
                .checked_add(s.filesz)
                .is_none_or(|end| end > data.len() as u64)
        }) {
            return Err(malformed(format!(
                "ELF: segment at {:#x} extends past the end of the file (truncated?)",
                seg.vaddr
            )));
        }
        if let Some(name) = elf::section_past_end(&file, data.len()) {
            return Err(malformed(format!(
                "ELF: section {name} extends past the end of the file (truncated?)"
            )));
        }
        let facts = elf::facts(&file);
        let data_sections = elf::data_sections(&file);

        let pclntab = {
            let sections: Vec<_> = [".gopclntab", ".data.rel.ro.gopclntab"]
                .iter()
                .filter_map(|n| elf::section(&file, n))
                .collect();
            let symbols = if sections.is_empty() {
                match elf::symbol_addresses(&file, ["runtime.pclntab", "runtime.epclntab"]) {
                    [Some(start), Some(end)] => Some((start, end)),
                    _ => None,
                }
            } else {
                None
            };
            match pclntab::locate(data, &layout, &sections, symbols) {
                Ok(Some(loc)) => Ok(loc),
                Ok(None) => Err("no pclntab".to_string()),
                Err(e) => Err(e),
            }
        };

        let found = buildinfo::find(data, &layout, elf::section(&file, ".go.buildinfo"));
        let build_info = match found {
            Some(found) => buildinfo::parse(data, &layout, found).map_err(malformed)?,
            // No build info but a function table: still a Go binary.
            None if pclntab.is_ok() => {
                let [symbol] = elf::symbol_addresses(&file, ["runtime.buildVersion"]);
                let pv = pclntab.as_ref().ok().map(|l| l.header.version);
                BuildInfo {
                    go_version: version::runtime_version(data, &layout, symbol, pv)
                        .unwrap_or_default(),
                    present: false,
                    path: None,
                    main: None,
                    deps: Vec::new(),
                    settings: Vec::new(),
                }
            }
            None => return Err(GoBinError::NotGo(path)),
        };

        let elf = ElfFacts {
            arch: facts.arch,
            pie: facts.pie,
            stripped: facts.stripped,
            dwarf: facts.dwarf,
            dwarf_compressed: facts.dwarf_compressed,
            pclntab_version: pclntab.as_ref().ok().map(|l| l.header.version),
        };
        Ok(GoBinary {
            path,
            pid,
            bytes,
            build_info,
            elf,
            layout,
            pclntab,
            functions: OnceLock::new(),
            moduledata: OnceLock::new(),
            data_sections,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
    pub fn pid(&self) -> Option<u32> {
        self.pid
    }
    pub fn data(&self) -> &[u8] {
        self.bytes.as_slice()
    }

    pub fn build_info(&self) -> &BuildInfo {
        &self.build_info
    }
    pub fn elf(&self) -> &ElfFacts {
        &self.elf
    }

    /// Why the function table could not be found or its header read, if so
    /// (the binary still opens: its build info is readable).
    pub fn pclntab_error(&self) -> Option<&str> {
        self.pclntab.as_ref().err().map(String::as_str)
    }

    /// Every function in pclntab, in address order.
    pub fn functions(&self) -> Result<Vec<Function>, GoBinError> {
        self.function_table().map(<[Function]>::to_vec)
    }

    /// The function table, read once and kept.
    pub fn function_table(&self) -> Result<&[Function], GoBinError> {
        if let Some(f) = self.functions.get() {
            return Ok(f);
        }
        let table = self
            .read_functions()
            .map_err(|what| GoBinError::Malformed {
                path: self.path.clone(),
                what,
            })?;
        Ok(self.functions.get_or_init(|| table))
    }

    /// One function by exact name.
    pub fn function(&self, name: &str) -> Result<Option<Function>, GoBinError> {
        Ok(self
            .function_table()?
            .iter()
            .find(|f| f.name == name)
            .cloned())
    }

    /// Address of a symbol in `.symtab` (none in stripped binaries).
    pub fn symbol(&self, name: &str) -> Option<u64> {
        let file = object::File::parse(self.data()).ok()?;
        let [addr] = elf::symbol_addresses(&file, [name]);
        addr
    }

    /// File offset of a virtual address, through the `PT_LOAD` segments.
    pub fn vaddr_to_file_offset(&self, vaddr: u64) -> Option<u64> {
        self.layout.vaddr_to_offset(vaddr)
    }

    /// Link-time address of the binary's `runtime.firstmoduledata`, found
    /// by symbol, by the `.go.module` section (Go 1.26+) or by scanning
    /// writable data, and validated against the pclntab; found once (the
    /// survey's literal bound and the type table both ask).
    pub(crate) fn moduledata_address(&self) -> Result<u64, String> {
        self.moduledata
            .get_or_init(|| self.find_moduledata())
            .clone()
    }

    fn find_moduledata(&self) -> Result<u64, String> {
        let loc = self.pclntab.as_ref().map_err(|e| e.clone())?;
        let data = self.data();
        let file = object::File::parse(data).map_err(|e| format!("ELF ({e})"))?;
        let [firstmoduledata] = elf::symbol_addresses(&file, ["runtime.firstmoduledata"]);
        let hints = moduledata::Hints {
            runtime_text: None,
            firstmoduledata,
            go_module_section: elf::section(&file, ".go.module"),
            text_section: None,
        };
        moduledata::locate(data, &self.layout, loc, &hints)
            .ok_or_else(|| "no runtime.firstmoduledata that matches the pclntab".to_string())
    }

    fn read_functions(&self) -> Result<Vec<Function>, String> {
        let loc = self.pclntab.as_ref().map_err(|e| e.clone())?;
        let data = self.data();
        let tab = loc.bytes(data).ok_or("pclntab")?;
        let text = if loc.header.relative_entries() && loc.header.text_start == 0 {
            // Go 1.26+: look further (object parsing is cheap; it only reads headers).
            let file = object::File::parse(data).map_err(|e| format!("ELF ({e})"))?;
            let [runtime_text, firstmoduledata] =
                elf::symbol_addresses(&file, ["runtime.text", "runtime.firstmoduledata"]);
            let hints = moduledata::Hints {
                runtime_text,
                firstmoduledata,
                go_module_section: elf::section(&file, ".go.module"),
                text_section: elf::section(&file, ".text"),
            };
            moduledata::text_start(data, &self.layout, loc, &hints)?
        } else {
            let hints = moduledata::Hints {
                runtime_text: None,
                firstmoduledata: None,
                go_module_section: None,
                text_section: None,
            };
            moduledata::text_start(data, &self.layout, loc, &hints)?
        };
        let raw = pclntab::functions(tab, &loc.header, text)?;
        let mut out = Vec::with_capacity(raw.len());
        for f in raw {
            let offset = self.layout.vaddr_to_offset(f.entry).ok_or_else(|| {
                format!(
                    "function {} at {:#x} is not in a file-backed segment",
                    f.name, f.entry
                )
            })?;
            out.push(Function {
                name: f.name,
                address: f.entry,
                size: f.end - f.entry,
                offset,
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_elf_inputs() {
        for data in [&b""[..], b"\x7fELF", b"#!/bin/sh\n", &[0u8; 64]] {
            let err = GoBinary::from_bytes("x".into(), data.to_vec()).unwrap_err();
            assert!(matches!(err, GoBinError::NotElf(_)), "{err}");
            assert_eq!(err.to_string(), "x: not an ELF file");
        }
    }

    #[test]
    fn elf_header_alone_is_malformed() {
        // A 64-bit little-endian ELF header claiming 5 program headers that are not there.
        let mut h = vec![0u8; 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2; // ELFCLASS64
        h[5] = 1; // little endian
        h[6] = 1; // EV_CURRENT
        h[16] = 2; // ET_EXEC
        h[18] = 62; // EM_X86_64
        h[20] = 1;
        h[32] = 64; // e_phoff
        h[52] = 64; // e_ehsize
        h[54] = 56; // e_phentsize
        h[56] = 5; // e_phnum
        let err = GoBinary::from_bytes("x".into(), h).unwrap_err();
        assert!(matches!(err, GoBinError::Malformed { .. }), "{err}");
    }

    #[test]
    fn missing_things_are_errors() {
        let err = GoBinary::open(Path::new("/nonexistent/goprobe")).unwrap_err();
        assert!(matches!(err, GoBinError::Io { .. }));
        assert!(err.to_string().starts_with("/nonexistent/goprobe: "));
        let err = GoBinary::open(Path::new("/")).unwrap_err();
        assert!(err.to_string().contains("directory"), "{err}");
        assert!(matches!(
            GoBinary::open_pid(0),
            Err(GoBinError::NoSuchProcess(0))
        ));
        assert_eq!(
            GoBinError::NoSuchProcess(7).to_string(),
            "no process with pid 7"
        );
    }

    #[test]
    fn pclntab_versions_are_named_by_release() {
        assert_eq!(PclntabVersion::Go12.to_string(), "1.2");
        assert_eq!(PclntabVersion::Go116.as_str(), "1.16");
        assert_eq!(PclntabVersion::Go118.as_str(), "1.18");
        assert_eq!(PclntabVersion::Go120.as_str(), "1.20");
    }
}
