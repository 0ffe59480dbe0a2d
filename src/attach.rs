//! An attach session: the probes goprobe attaches to one Go binary (one
//! process or every process running it), and the raw NDJSON stream of
//! completed calls that `goprobe attach` writes and `goprobe record` reads.
//!
//! Stream lines (one JSON object each, tagged by `type`):
//! * `target`: the binary, Go version, service name, and pid when attached by pid;
//! * `clock`: REALTIME − MONOTONIC offset, so a reader can make wall times;
//! * `event`: one completed call: probe, pid, tid, goroutine, monotonic
//!   start/end and the fields read;
//! * `lost`: how many events a kernel counter says were dropped since the
//!   previous `lost` line for that reason.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::bpf::abi::{self, GpConfig, GpDbEvent, GpEvent, GpHook, GpPanicEvent};
use crate::bpf::{self, BpfError, FunctionProbe, Loaded, Reader, rets};
use crate::catalog::{self, Catalog, HookPoint};
use crate::clock::WallOffset;

/// The probes `goprobe attach` attaches when none are named: every probe in
/// the catalog; those the binary cannot support are skipped with a note.
pub const DEFAULT_PROBES: &str = "all";

#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("offsets line {line}: {msg}")]
    OffsetsSyntax { line: usize, msg: String },
    #[error("unknown probe {name:?} (known: {known})")]
    UnknownProbe { name: String, known: String },
    #[error("no probe can be attached: {0}")]
    NothingToAttach(String),
    #[error(transparent)]
    Catalog(#[from] catalog::CatalogError),
    #[error("catalog: {0}")]
    BadCatalog(String),
    #[error(transparent)]
    Bpf(#[from] BpfError),
}

/// Field offsets as `goprobe offsets --json` prints them: one object per
/// line with `field`, `offset` (null when unknown), `size`, `source`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Offsets {
    pub fields: BTreeMap<String, u64>,
}

#[derive(Deserialize)]
struct OffsetLine {
    field: String,
    offset: Option<u64>,
}

impl Offsets {
    pub fn from_ndjson(text: &str) -> Result<Offsets, AttachError> {
        let mut fields = BTreeMap::new();
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let parsed: OffsetLine =
                serde_json::from_str(line).map_err(|e| AttachError::OffsetsSyntax {
                    line: i + 1,
                    msg: e.to_string(),
                })?;
            if let Some(off) = parsed.offset {
                fields.insert(parsed.field, off);
            }
        }
        Ok(Offsets { fields })
    }

    /// The required (non-optional) fields `probe` needs for this target, with
    /// the hooks `present` says the binary has, that are unknown here.
    pub fn missing(
        &self,
        probe: &catalog::Probe,
        target: &catalog::Target<'_>,
        present: &dyn Fn(&catalog::Hook) -> bool,
    ) -> Vec<String> {
        crate::verdict::needed_fields(probe, target, present)
            .into_iter()
            .filter(|f| !f.optional && !self.fields.contains_key(&f.field))
            .map(|f| f.field.clone())
            .collect()
    }

    /// The programs' configuration. `swiss_maps`: the target's maps are
    /// Swiss tables (Go 1.24 and later, unless built with GOEXPERIMENT=noswissmap).
    pub fn config(&self, swiss_maps: bool) -> GpConfig {
        let mut c = GpConfig::default();
        for (i, f) in abi::FIELDS.iter().enumerate() {
            if let (Some(&o), Some(slot)) = (self.fields.get(*f), c.off.get_mut(i)) {
                *slot = o;
            }
        }
        // Go 1.23 exported Request.Pattern; Go 1.22 kept the matched
        // pattern only in the unexported Request.pat.
        let known = |f: &str| self.fields.contains_key(f);
        if known("net/http.Request.Pattern") {
            c.route_mode = abi::ROUTE_PATTERN;
        } else if known("net/http.Request.pat") && known("net/http.pattern.str") {
            c.route_mode = abi::ROUTE_PAT_PTR;
        }
        c.map_mode = if !header_map_fields(swiss_maps).iter().all(|f| known(f)) {
            abi::MAP_NONE
        } else if swiss_maps {
            abi::MAP_SWISS
        } else {
            abi::MAP_BUCKETS
        };
        c
    }
}

/// The fields the server program needs to find `Traceparent` in
/// Request.Header, for Swiss-table maps (Go 1.24+) or bucket maps.
fn header_map_fields(swiss_maps: bool) -> &'static [&'static str] {
    if swiss_maps {
        &[
            "net/http.Request.Header",
            "internal/runtime/maps.Map.dirPtr",
            "internal/runtime/maps.Map.dirLen",
            "internal/runtime/maps.table.groups",
            "internal/runtime/maps.groupsReference.data",
            "internal/runtime/maps.groupsReference.lengthMask",
        ]
    } else {
        &[
            "net/http.Request.Header",
            "runtime.hmap.B",
            "runtime.hmap.buckets",
            "runtime.hmap.oldbuckets",
        ]
    }
}

/// True when the binary was built with `GOEXPERIMENT` naming `experiment`.
fn goexperiment(bin: &crate::gobin::GoBinary, experiment: &str) -> bool {
    bin.build_info()
        .settings
        .iter()
        .any(|(k, v)| k == "GOEXPERIMENT" && v.split(',').any(|e| e == experiment))
}

/// True when the binary's maps are Swiss tables: Go 1.24 made them the
/// default; GOEXPERIMENT=noswissmap (1.24, 1.25) kept the bucket maps.
pub fn uses_swiss_maps(bin: &crate::gobin::GoBinary) -> bool {
    let new_enough = catalog::VersionReq::parse(">=1.24")
        .is_some_and(|r| r.matches_str(&bin.build_info().go_version));
    new_enough && !goexperiment(bin, "noswissmap")
}

/// Parse `--probes http.server,db.sql` (or `all`) against the catalog.
pub fn parse_probes(list: &str) -> Result<Vec<String>, AttachError> {
    let catalog = Catalog::builtin()?;
    let mut out: Vec<String> = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if name == "all" {
            for p in &catalog.probes {
                if !out.contains(&p.name) {
                    out.push(p.name.clone());
                }
            }
            continue;
        }
        if catalog.probe(name).is_none() {
            return Err(AttachError::UnknownProbe {
                name: name.to_owned(),
                known: catalog
                    .probes
                    .iter()
                    .map(|p| p.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        if !out.iter().any(|p| p == name) {
            out.push(name.to_owned());
        }
    }
    Ok(out)
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

/// Event kind of a catalog probe (what its programs send).
fn probe_kind(probe: &str) -> u32 {
    match probe {
        "http.server" => abi::KIND_HTTP_SERVER,
        "http.client" => abi::KIND_HTTP_CLIENT,
        "go.spawn" => abi::KIND_SPAWN,
        "db.sql" => abi::KIND_DB,
        "go.panic" => abi::KIND_PANIC,
        _ => 0,
    }
}

/// The register table for one catalog hook on amd64: each argument's words
/// go to consecutive slots from its `slot`.
fn gp_hook(probe: &str, hook: &catalog::Hook) -> Result<GpHook, AttachError> {
    let bad = |what: String| AttachError::BadCatalog(format!("{probe}: {}: {what}", hook.function));
    let mut gp = GpHook {
        kind: probe_kind(probe),
        ..GpHook::default()
    };
    for f in &hook.flags {
        gp.flags |= abi::hook_flag(f).ok_or_else(|| bad(format!("unknown flag {f:?}")))?;
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

/// Where to attach: the binary, and optionally one process running it.
#[derive(Debug, Clone)]
pub struct Target {
    pub binary: PathBuf,
    pub pid: Option<u32>,
}

/// One line of attach's NDJSON stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Line {
    Target(TargetInfo),
    Clock {
        realtime_minus_monotonic_ns: i64,
        uncertainty_ns: u64,
    },
    Event(RawEvent),
    Lost {
        reason: String,
        count: u64,
    },
}

/// Facts about the traced binary that spans' `resource` needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetInfo {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(default)]
    pub go_version: String,
    #[serde(default)]
    pub service_name: String,
}

/// One completed call (or, for `go.panic`, one panic: start = end).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawEvent {
    pub probe: String,
    pub pid: u32,
    pub tid: u32,
    pub goroutine: u64,
    pub start_ns: u64,
    pub end_ns: u64,
    #[serde(default)]
    pub fields: BTreeMap<String, serde_json::Value>,
}

/// Turns ring-buffer records into stream events: knows the hooks (for
/// database/sql operation names), the binary (to name Go types the programs
/// report by address) and each process's load address.
pub struct Decoder {
    hooks: Vec<(String, Option<String>)>,
    binary: Option<crate::gobin::GoBinary>,
    biases: HashMap<u32, Option<u64>>,
    /// Named types by link-time address (a process reports the same few
    /// connector and error types over and over).
    types: HashMap<u64, Option<crate::gobin::types::GoType>>,
}

impl Decoder {
    pub fn new(hooks: &[Hook], binary: Option<crate::gobin::GoBinary>) -> Decoder {
        Decoder {
            hooks: hooks
                .iter()
                .map(|h| (h.function.clone(), h.operation.clone()))
                .collect(),
            binary,
            biases: HashMap::new(),
            types: HashMap::new(),
        }
    }

    /// Load bias of `pid` (runtime address − link-time address); 0 for
    /// position-dependent binaries. `None` when it cannot be told (the
    /// process is gone).
    fn bias(&mut self, pid: u32) -> Option<u64> {
        let bin = self.binary.as_ref()?;
        if !bin.elf().pie {
            return Some(0);
        }
        *self
            .biases
            .entry(pid)
            .or_insert_with(|| crate::gobin::types::load_bias(pid, bin).ok())
    }

    /// The Go type at runtime address `addr` in process `pid`, named as `%T` prints it.
    fn type_name(&mut self, pid: u32, addr: u64) -> Option<crate::gobin::types::GoType> {
        if addr == 0 {
            return None;
        }
        let link = addr.checked_sub(self.bias(pid)?)?;
        let bin = self.binary.as_ref()?;
        self.types
            .entry(link)
            .or_insert_with(|| crate::gobin::types::resolve_type(bin, link).ok())
            .clone()
    }

    /// Any ring-buffer record as a stream event; `None` for a record of an
    /// unknown kind.
    pub fn event(&mut self, rec: &abi::Record) -> Option<RawEvent> {
        match rec {
            abi::Record::Call(ev) => self.http(ev),
            abi::Record::Spawn(sp) => {
                let mut fields = BTreeMap::new();
                fields.insert(
                    "parent_goroutine".to_owned(),
                    serde_json::Value::from(sp.parent_goid),
                );
                Some(RawEvent {
                    probe: "go.spawn".to_owned(),
                    pid: sp.pid,
                    tid: sp.tid,
                    goroutine: sp.child_goid,
                    start_ns: sp.ts_ns,
                    end_ns: sp.ts_ns,
                    fields,
                })
            }
            abi::Record::Db(ev) => Some(self.db(ev)),
            abi::Record::Panic(ev) => Some(self.panic(ev)),
        }
    }

    fn http(&mut self, ev: &GpEvent) -> Option<RawEvent> {
        let mut fields = BTreeMap::new();
        let mut put = |k: &str, buf: &[u8], len: u32| {
            if len > 0 {
                fields.insert(
                    k.to_owned(),
                    serde_json::Value::String(abi::field_str(buf, len)),
                );
                if len as usize > buf.len() {
                    fields.insert(format!("{k}_len"), serde_json::Value::from(len));
                }
            }
        };
        put("method", &ev.method, ev.method_len);
        put("path", &ev.path, ev.path_len);
        put("host", &ev.host, ev.host_len);
        let probe = match ev.kind {
            abi::KIND_HTTP_SERVER => {
                put("proto", &ev.proto, ev.proto_len);
                put("peer", &ev.peer, ev.peer_len);
                put("route", &ev.route, ev.route_len);
                put("traceparent", &ev.traceparent, ev.traceparent_len);
                "http.server"
            }
            abi::KIND_HTTP_CLIENT => {
                put("scheme", &ev.scheme, ev.scheme_len);
                put("query", &ev.query, ev.query_len);
                put("request_host", &ev.peer, ev.peer_len);
                "http.client"
            }
            _ => return None,
        };
        if ev.flags & abi::FLAG_UNWOUND != 0 {
            // ServeHTTP never returned: net/http's recovery ran instead.
            let by = usize::try_from(ev.unwound_by)
                .ok()
                .and_then(|i| self.hooks.get(i))
                .map_or_else(|| "net/http".to_owned(), |(f, _)| f.clone());
            fields.insert("panic_recovered_by".into(), serde_json::Value::String(by));
        }
        if ev.status != 0 {
            fields.insert("status".into(), serde_json::Value::from(ev.status));
        }
        if ev.flags & abi::FLAG_ERROR != 0 {
            fields.insert("error".into(), serde_json::Value::Bool(true));
        }
        if ev.flags & abi::FLAG_READ_FAILED != 0 {
            fields.insert("read_failed".into(), serde_json::Value::Bool(true));
        }
        if ev.flags & abi::FLAG_MAP_TOO_BIG != 0 {
            fields.insert("headers_not_searched".into(), serde_json::Value::Bool(true));
        }
        Some(RawEvent {
            probe: probe.to_owned(),
            pid: ev.pid,
            tid: ev.tid,
            goroutine: ev.goid,
            start_ns: ev.start_ns,
            end_ns: ev.end_ns,
            fields,
        })
    }

    fn db(&mut self, ev: &GpDbEvent) -> RawEvent {
        use serde_json::Value;
        let mut fields = BTreeMap::new();
        if let Some((function, operation)) = self.hooks.get(ev.hook as usize).cloned() {
            fields.insert("function".into(), Value::String(function));
            if let Some(op) = operation {
                fields.insert("operation".into(), Value::String(op));
            }
        }
        if ev.query_len > 0 {
            fields.insert(
                "query".into(),
                Value::String(abi::field_str(&ev.query, ev.query_len)),
            );
            if ev.query_len as usize > ev.query.len() {
                fields.insert("query_len".into(), Value::from(ev.query_len));
            }
        }
        let connector = self.type_name(ev.pid, ev.connector_type);
        // sql.Open's dsnConnector: the driver inside names the system, the
        // DSN gives the server. Other connectors are the driver's own.
        let is_dsn = connector
            .as_ref()
            .is_some_and(|t| t.name == "*sql.dsnConnector" || t.name == "sql.dsnConnector");
        let driver = if is_dsn {
            self.type_name(ev.pid, ev.driver_type)
        } else {
            connector
        };
        if let Some(d) = &driver {
            let path = d.pkg_path.clone().or_else(|| {
                self.binary
                    .as_ref()
                    .and_then(|b| crate::gobin::types::package_path_from_functions(b, &d.name))
            });
            fields.insert("driver".into(), Value::String(d.name.clone()));
            fields.insert(
                "db_system".into(),
                Value::String(crate::dbsql::system_name(&d.name, path.as_deref()).to_owned()),
            );
        }
        if is_dsn && ev.dsn_len > 0 && ev.dsn_len as usize <= ev.dsn.len() {
            let dsn = abi::field_str(&ev.dsn, ev.dsn_len);
            if let Some((host, port)) = crate::dbsql::server_from_dsn(&dsn) {
                fields.insert("server_address".into(), Value::String(host));
                if let Some(p) = port {
                    fields.insert("server_port".into(), Value::from(p));
                }
            }
        }
        if ev.flags & abi::FLAG_ERROR != 0 {
            fields.insert("error".into(), Value::Bool(true));
            if let Some(t) = self.type_name(ev.pid, ev.error_type) {
                fields.insert("error_type".into(), Value::String(t.name));
            }
        }
        if ev.flags & abi::FLAG_READ_FAILED != 0 {
            fields.insert("read_failed".into(), Value::Bool(true));
        }
        RawEvent {
            probe: "db.sql".to_owned(),
            pid: ev.pid,
            tid: ev.tid,
            goroutine: ev.goid,
            start_ns: ev.start_ns,
            end_ns: ev.end_ns,
            fields,
        }
    }

    fn panic(&mut self, ev: &GpPanicEvent) -> RawEvent {
        use serde_json::Value;
        let mut fields = BTreeMap::new();
        if let Some(t) = self.type_name(ev.pid, ev.type_ptr) {
            let text_n = (ev.text_len as usize).min(ev.text.len());
            let captured = crate::gobin::values::Captured {
                data: ev.data_ptr,
                words: ev.word,
                text: ev.text.get(..text_n).unwrap_or_default(),
            };
            if let Some(m) = crate::gobin::values::panic_message(&t, &captured) {
                fields.insert("message".into(), Value::String(m.text));
                if m.truncated {
                    fields.insert("message_truncated".into(), Value::Bool(true));
                }
            }
            fields.insert("type".into(), Value::String(t.name));
        }
        if ev.flags & abi::FLAG_READ_FAILED != 0 {
            fields.insert("read_failed".into(), Value::Bool(true));
        }
        RawEvent {
            probe: "go.panic".to_owned(),
            pid: ev.pid,
            tid: ev.tid,
            goroutine: ev.goid,
            start_ns: ev.ts_ns,
            end_ns: ev.ts_ns,
            fields,
        }
    }
}

/// Attached probes and their event stream.
pub struct Session {
    _loaded: Loaded,
    reader: Reader,
    decoder: Decoder,
    reported_lost: [u64; abi::LOST_MAX as usize],
    /// Uprobes attached (entry + returns over all functions).
    pub links: usize,
    /// Probes attached.
    pub probes: Vec<String>,
}

impl Session {
    /// Load the programs with `offsets`' configuration and attach every
    /// hook. Hooks whose code cannot be decoded are skipped with a warning;
    /// it is an error when none is left. `binary` (the target, opened)
    /// names the Go types events carry.
    pub fn start(
        target: &Target,
        config: &GpConfig,
        hooks: &[Hook],
        binary: Option<crate::gobin::GoBinary>,
        empty: bool,
        warnings: &mut Vec<String>,
    ) -> Result<Session, AttachError> {
        warnings.extend(bpf::prepare_system()?);
        let gp: Vec<GpHook> = hooks.iter().map(|h| h.gp).collect();
        let mut loaded = bpf::load(config, &gp)?;
        let mut probes: Vec<String> = Vec::new();
        let mut reasons = Vec::new();
        for (i, hook) in hooks.iter().enumerate() {
            let points = match rets::probe_points(&hook.code, hook.address) {
                Ok(p) => p,
                Err(e) => {
                    reasons.push(format!("{}: {}: {e}", hook.probe, hook.function));
                    continue;
                }
            };
            let pick = |p: &Option<String>| {
                p.as_ref().map(|p| {
                    if empty {
                        bpf::EMPTY_PROGRAM.to_owned()
                    } else {
                        p.clone()
                    }
                })
            };
            let f = FunctionProbe {
                entry: pick(&hook.entry_program),
                ret: pick(&hook.return_program),
                cookie: i as u64,
                file_offset: hook.file_offset,
                points,
            };
            loaded.attach(&target.binary, target.pid, &f)?;
            if !probes.contains(&hook.probe) {
                probes.push(hook.probe.clone());
            }
        }
        warnings.extend(reasons.iter().cloned());
        if probes.is_empty() {
            return Err(AttachError::NothingToAttach(if reasons.is_empty() {
                "no hooks".into()
            } else {
                reasons.join("; ")
            }));
        }
        let reader = loaded.reader()?;
        let links = loaded.links();
        Ok(Session {
            _loaded: loaded,
            reader,
            decoder: {
                let mut d = Decoder::new(hooks, binary);
                // Learn the load address now: a process that crashes may be
                // gone by the time its last events are read.
                if let Some(pid) = target.pid {
                    d.bias(pid);
                }
                d
            },
            reported_lost: [0; abi::LOST_MAX as usize],
            links,
            probes,
        })
    }

    /// Wait up to `timeout`, then pass every completed call to `f`.
    pub fn poll(
        &mut self,
        timeout: Duration,
        mut f: impl FnMut(RawEvent),
    ) -> Result<usize, AttachError> {
        let decoder = &mut self.decoder;
        Ok(self.reader.poll(timeout, |ev| {
            if let Some(raw) = decoder.event(&ev) {
                f(raw)
            }
        })?)
    }

    /// Read everything still in the ring buffer.
    pub fn drain(&mut self, mut f: impl FnMut(RawEvent)) -> usize {
        let decoder = &mut self.decoder;
        self.reader.drain(&mut |ev| {
            if let Some(raw) = decoder.event(&ev) {
                f(raw)
            }
        })
    }

    /// Server calls still in flight in processes that are gone: the
    /// requests a crash (say, a panic on a goroutine nobody recovers)
    /// killed. They end at `now_ns` with `unfinished: true`.
    pub fn unfinished(&mut self, now_ns: u64) -> Vec<RawEvent> {
        let mut out = Vec::new();
        for mut ev in self.reader.in_flight() {
            if ev.kind != abi::KIND_HTTP_SERVER || process_alive(ev.pid) {
                continue;
            }
            ev.end_ns = now_ns.max(ev.start_ns);
            if let Some(mut raw) = self.decoder.http(&ev) {
                raw.fields
                    .insert("unfinished".into(), serde_json::Value::Bool(true));
                out.push(raw);
            }
        }
        out.sort_by_key(|e| e.start_ns);
        out
    }

    /// Lost counts that grew since the last call, as `lost` lines.
    pub fn new_lost(&mut self) -> Result<Vec<Line>, AttachError> {
        let now = self.reader.lost()?;
        let mut out = Vec::new();
        for (i, (&n, old)) in now.iter().zip(self.reported_lost.iter_mut()).enumerate() {
            if n > *old {
                out.push(Line::Lost {
                    reason: abi::LOST_NAMES[i].to_owned(),
                    count: n - *old,
                });
                *old = n;
            }
        }
        Ok(out)
    }

    /// Lost totals so far, by reason.
    pub fn lost_totals(&self) -> Vec<(&'static str, u64)> {
        abi::LOST_NAMES
            .iter()
            .copied()
            .zip(self.reported_lost.iter().copied())
            .collect()
    }
}

/// The clock line for the start of a stream.
pub fn clock_line() -> Line {
    let off = WallOffset::sample(32);
    Line::Clock {
        realtime_minus_monotonic_ns: i64::try_from(off.realtime_minus_monotonic_ns).unwrap_or(0),
        uncertainty_ns: off.uncertainty_ns,
    }
}

/// True while the process exists (and is not a zombie).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Resolve the catalog hooks of each probe in the binary. Returns the hooks
/// and, for probes that cannot be instrumented, the reason. A probe is
/// attached whole or not at all: a missing required hook or field skips it.
pub fn hooks_from_binary(
    bin: &crate::gobin::GoBinary,
    probes: &[String],
    offsets: &Offsets,
) -> Result<(Vec<Hook>, Vec<String>), AttachError> {
    let mut hooks = Vec::new();
    let mut reasons = Vec::new();
    if bin.elf().arch != crate::gobin::Arch::Amd64 {
        reasons.push(format!(
            "{}: unsupported architecture (goprobe's uprobes support amd64)",
            bin.path().display()
        ));
        return Ok((hooks, reasons));
    }
    let catalog = Catalog::builtin()?;
    let key = crate::offsets::Key::from_build_info(
        bin.build_info(),
        &String::from(bin.elf().arch.clone()),
    );
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
        let present = |h: &catalog::Hook| matches!(bin.function(&h.function), Ok(Some(_)));
        let missing = offsets.missing(probe, &target, &present);
        if !missing.is_empty() {
            reasons.push(format!(
                "{name}: offsets unknown for {}",
                missing.join(", ")
            ));
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
                gp: gp_hook(name, h)?,
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
    Ok((hooks, reasons))
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

    #[test]
    fn offsets_parse_route_and_map_modes() {
        let text = "{\"field\":\"runtime.g.goid\",\"offset\":152,\"size\":8,\"source\":\"dwarf\"}\n\
                    {\"field\":\"net/http.Request.Pattern\",\"offset\":256,\"size\":16,\"source\":\"table\"}\n\
                    {\"field\":\"net/http.Request.Header\",\"offset\":56,\"size\":8,\"source\":\"table\"}\n\
                    {\"field\":\"runtime.hmap.B\",\"offset\":9,\"size\":1,\"source\":\"table\"}\n\
                    {\"field\":\"runtime.hmap.buckets\",\"offset\":16,\"size\":8,\"source\":\"table\"}\n\
                    {\"field\":\"runtime.hmap.oldbuckets\",\"offset\":24,\"size\":8,\"source\":\"table\"}\n\
                    {\"field\":\"net/http.Request.Method\",\"offset\":null,\"size\":null,\"source\":\"unknown\"}\n";
        let o = Offsets::from_ndjson(text).expect("parses");
        assert_eq!(o.fields["runtime.g.goid"], 152);
        assert!(!o.fields.contains_key("net/http.Request.Method"));
        let c = o.config(false);
        assert_eq!(c.get("runtime.g.goid"), Some(152));
        assert_eq!(c.route_mode, abi::ROUTE_PATTERN);
        assert_eq!(c.get("net/http.Request.Pattern"), Some(256));
        assert_eq!(c.get("net/http.Request.Method"), None);
        assert_eq!(c.map_mode, abi::MAP_BUCKETS);
        // A Go 1.24+ target needs the Swiss-table fields, not the hmap ones.
        assert_eq!(o.config(true).map_mode, abi::MAP_NONE);
        let catalog = Catalog::builtin().expect("catalog");
        let none = |_: &str| None;
        let target = catalog::Target {
            go_version: "go1.22.10",
            module_version: &none,
        };
        let missing = o.missing(
            catalog.probe("http.server").expect("probe"),
            &target,
            &|_| true,
        );
        assert!(missing.iter().any(|f| f == "net/http.Request.Method"));
        assert!(
            !missing.iter().any(|f| f.starts_with("runtime.hmap")),
            "optional fields are not required"
        );
        assert!(matches!(
            Offsets::from_ndjson("{"),
            Err(AttachError::OffsetsSyntax { line: 1, .. })
        ));
    }

    /// Every catalog hook turns into a register table the programs can use,
    /// and the programs it names exist in the eBPF object's source.
    #[test]
    fn catalog_hooks_become_register_tables() {
        let catalog = Catalog::builtin().expect("catalog");
        let source = include_str!("../ebpf/goprobe.bpf.c");
        for p in &catalog.probes {
            assert_ne!(probe_kind(&p.name), 0, "{} has no event kind", p.name);
            for h in &p.hooks {
                gp_hook(&p.name, h).unwrap_or_else(|e| panic!("{e}"));
                for at in &h.at {
                    let suffix = match at {
                        HookPoint::Entry => "entry",
                        HookPoint::Return => "return",
                    };
                    let prog = format!("int {}_{suffix}(void *ctx)", h.program);
                    assert!(source.contains(&prog), "{prog} missing from goprobe.bpf.c");
                }
            }
        }
        // The slots the C programs read (goprobe.h documents them).
        let server = catalog.probe("http.server").expect("probe");
        let g = gp_hook("http.server", &server.hooks[0]).expect("hook");
        assert_eq!(&g.reg[..3], &[1, 2, 3], "rw itab RBX, rw data RCX, req RDI");
        let db = catalog.probe("db.sql").expect("probe");
        let q = db
            .hooks
            .iter()
            .find(|h| h.function.ends_with("queryDC"))
            .expect("queryDC");
        let g = gp_hook("db.sql", q).expect("hook");
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
            gp_hook("db.sql", st).expect("hook").flags,
            abi::HOOK_RECEIVER_IS_STMT
        );
    }

    #[test]
    fn probes_list() {
        assert_eq!(
            parse_probes("http.client, http.server,http.client").expect("ok"),
            vec!["http.client".to_owned(), "http.server".to_owned()]
        );
        let all = parse_probes("all").expect("ok");
        for p in [
            "http.server",
            "http.client",
            "db.sql",
            "go.panic",
            "go.spawn",
        ] {
            assert!(all.iter().any(|x| x == p), "{p}");
        }
        let err = parse_probes("grpc").expect_err("unknown");
        assert!(err.to_string().contains("db.sql"), "{err}");
    }

    #[test]
    fn lines_round_trip() {
        let line = r#"{"type":"event","probe":"http.server","pid":1,"tid":2,"goroutine":3,"start_ns":4,"end_ns":5,"fields":{"method":"GET","status":200}}"#;
        let parsed: Line = serde_json::from_str(line).expect("parses");
        assert_eq!(serde_json::to_string(&parsed).expect("ser"), line);
        assert_eq!(
            service_name(Some("example.com/httpserver"), Path::new("/x/y")),
            "httpserver"
        );
        assert_eq!(service_name(None, Path::new("/x/y")), "y");
    }
}

/// Offsets the way `goprobe offsets` resolves them: the binary's DWARF
/// when it describes the type, else the embedded offsets table for its
/// exact Go version; unknown fields are left out. Every field the eBPF
/// programs can read is resolved.
pub fn offsets_resolved(bin: &crate::gobin::GoBinary) -> Offsets {
    let table = crate::offsets::table::Table::builtin()
        .unwrap_or_else(|e| crate::offsets::table::Table::default_with_warning(&e));
    let resolver = crate::offsets::Resolver::for_binary(bin, &table, None);
    let fields = abi::FIELDS
        .iter()
        .filter_map(|f| resolver.resolve(f).offset.map(|o| ((*f).to_owned(), o)))
        .collect();
    Offsets { fields }
}

/// Parse a duration written `500ms`, `30s`, `5m`, `1h` (or plain seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (use e.g. 500ms, 30s, 5m)"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "" | "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("invalid duration unit in {s:?} (ms, s, m, h)")),
    };
    if !secs.is_finite() || secs < 0.0 {
        return Err(format!("invalid duration {s:?}"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// When a stream stops.
pub struct StopWhen<'a> {
    /// Set by the Ctrl-C/SIGTERM handler.
    pub signal: &'a std::sync::atomic::AtomicBool,
    pub duration: Option<Duration>,
    /// Stop when this process exits (attach by pid).
    pub pid: Option<u32>,
}

/// Why the stream ended, and the totals for the summary.
#[derive(Debug, Default, Clone)]
pub struct StreamSummary {
    pub events: u64,
    pub lost: Vec<(&'static str, u64)>,
    pub reason: &'static str,
}

/// Stream the session's lines into `sink` until a stop condition holds;
/// then drain the ring buffer so no completed call is lost. A sink error
/// (e.g. a closed pipe) ends the stream and is returned.
pub fn stream(
    session: &mut Session,
    target: &TargetInfo,
    stop: &StopWhen<'_>,
    mut sink: impl FnMut(&Line) -> std::io::Result<()>,
) -> Result<StreamSummary, StreamError> {
    use std::sync::atomic::Ordering;
    let started = std::time::Instant::now();
    sink(&Line::Target(target.clone()))?;
    sink(&clock_line())?;
    let mut seen_pids = std::collections::BTreeSet::new();
    if let Some(p) = target.pid {
        seen_pids.insert(p);
    }
    let mut summary = StreamSummary::default();
    let mut pending: Vec<RawEvent> = Vec::new();
    let reason = loop {
        let reason = if stop.signal.load(Ordering::Relaxed) {
            Some("interrupted")
        } else if stop.duration.is_some_and(|d| started.elapsed() >= d) {
            Some("duration elapsed")
        } else if stop.pid.is_some_and(|p| !process_alive(p)) {
            Some("target exited")
        } else {
            None
        };
        if reason.is_some() {
            session.drain(|e| pending.push(e));
        } else {
            session.poll(Duration::from_millis(100), |e| pending.push(e))?;
        }
        for ev in pending.drain(..) {
            if seen_pids.insert(ev.pid) {
                sink(&Line::Target(TargetInfo {
                    pid: Some(ev.pid),
                    ..target.clone()
                }))?;
            }
            summary.events += 1;
            sink(&Line::Event(ev))?;
        }
        for l in session.new_lost()? {
            sink(&l)?;
        }
        if let Some(r) = reason {
            break r;
        }
    };
    // Requests a dying process never answered: they are data too.
    for ev in session.unfinished(crate::clock::monotonic_now_ns()) {
        summary.events += 1;
        sink(&Line::Event(ev))?;
    }
    summary.reason = reason;
    summary.lost = session.lost_totals();
    Ok(summary)
}

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error(transparent)]
    Attach(#[from] AttachError),
    #[error("writing output: {0}")]
    Io(#[from] std::io::Error),
}

impl From<BpfError> for StreamError {
    fn from(e: BpfError) -> Self {
        StreamError::Attach(AttachError::Bpf(e))
    }
}

/// Everything needed to start a session on a binary or a process: open
/// it, resolve offsets (given, or from its DWARF / the offsets table) and
/// the catalog's hooks.
pub struct Plan {
    pub target: Target,
    pub info: TargetInfo,
    pub offsets: Offsets,
    pub config: GpConfig,
    pub hooks: Vec<Hook>,
    /// Probes that cannot be instrumented, with why.
    pub skipped: Vec<String>,
    /// What an attached probe will not report, with why (optional fields unknown).
    pub notes: Vec<String>,
}

impl Plan {
    pub fn new(
        bin: &crate::gobin::GoBinary,
        pid: Option<u32>,
        probes: &[String],
        offsets: Option<Offsets>,
    ) -> Result<Plan, AttachError> {
        let mut skipped = Vec::new();
        let mut probes = probes.to_vec();
        let offsets = match offsets {
            Some(o) => o,
            None => {
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
                offsets_resolved(bin)
            }
        };
        let (hooks, reasons) = hooks_from_binary(bin, &probes, &offsets)?;
        skipped.extend(reasons);
        let catalog = Catalog::builtin()?;
        // Internal probes only support the others.
        if !hooks
            .iter()
            .any(|h| catalog.probe(&h.probe).is_some_and(|p| !p.internal))
        {
            return Err(AttachError::NothingToAttach(skipped.join("; ")));
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
        };
        let swiss = uses_swiss_maps(bin);
        let mut config = offsets.config(swiss);
        let mut notes = Vec::new();
        // Go 1.27's GOEXPERIMENT=mapsplitgroup stores a group's keys apart
        // from its values: a slot layout the programs do not walk.
        if goexperiment(bin, "mapsplitgroup") && config.map_mode != abi::MAP_NONE {
            config.map_mode = abi::MAP_NONE;
            notes.push("http.server: incoming trace context (traceparent) will not be read: built with GOEXPERIMENT=mapsplitgroup, a map layout goprobe does not read".into());
        } else if hooks.iter().any(|h| h.probe == "http.server") && config.map_mode == abi::MAP_NONE
        {
            let unknown: Vec<&str> = header_map_fields(swiss)
                .iter()
                .copied()
                .filter(|f| !offsets.fields.contains_key(*f))
                .collect();
            notes.push(format!(
                "http.server: incoming trace context (traceparent) will not be read: offsets unknown for {}",
                unknown.join(", ")
            ));
        }
        Ok(Plan {
            target: Target { binary, pid },
            info,
            offsets,
            config,
            hooks,
            skipped,
            notes,
        })
    }
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

/// What `goprobe attach` (and `goprobe record` when it attaches itself) was asked.
#[derive(Debug, Clone)]
pub struct Request {
    pub binary: Option<PathBuf>,
    pub pid: Option<u32>,
    /// Catalog probe names.
    pub probes: Vec<String>,
    pub offsets: Option<Offsets>,
    pub duration: Option<Duration>,
    /// Attach do-nothing programs instead (benchmark baseline).
    pub baseline_empty: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    GoBin(#[from] crate::gobin::GoBinError),
    #[error(transparent)]
    Attach(#[from] AttachError),
    #[error(transparent)]
    Stream(#[from] StreamError),
    #[error("installing the signal handler: {0}")]
    Signal(#[source] std::io::Error),
}

/// Open the target, attach, stream lines into `sink` until Ctrl-C, SIGTERM,
/// the duration, or the target's exit. `warn` gets human-readable notes
/// (skipped probes, system warnings) and `on_attached` the number of uprobes once they are live.
pub fn run(
    req: &Request,
    warn: &mut dyn FnMut(&str),
    on_attached: &mut dyn FnMut(usize),
    sink: impl FnMut(&Line) -> std::io::Result<()>,
) -> Result<StreamSummary, RunError> {
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    let bin = match (&req.binary, req.pid) {
        (_, Some(pid)) => crate::gobin::GoBinary::open_pid(pid)?,
        (Some(path), None) => crate::gobin::GoBinary::open(path)?,
        (None, None) => {
            return Err(AttachError::NothingToAttach("give a binary path or --pid".into()).into());
        }
    };
    let plan = Plan::new(&bin, req.pid, &req.probes, req.offsets.clone())?;
    for s in &plan.skipped {
        warn(&format!("not attaching {s}"));
    }
    for n in &plan.notes {
        warn(n);
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(RunError::Signal)?;
    }
    let mut warnings = Vec::new();
    let session = Session::start(
        &plan.target,
        &plan.config,
        &plan.hooks,
        Some(bin),
        req.baseline_empty,
        &mut warnings,
    );
    for w in &warnings {
        warn(w);
    }
    let mut session = session?;
    on_attached(session.links);
    let when = StopWhen {
        signal: &stop,
        duration: req.duration,
        pid: req.pid,
    };
    Ok(stream(&mut session, &plan.info, &when, sink)?)
}
