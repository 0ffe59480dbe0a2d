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

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::bpf::abi::{self, GpConfig, GpEvent};
use crate::bpf::{self, BpfError, FunctionProbe, Loaded, Reader, rets};
use crate::clock::WallOffset;

/// A probe goprobe can attach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Probe {
    HttpServer,
    HttpClient,
    /// Goroutine creation (`runtime.newproc1`): lets `record` parent calls
    /// made on goroutines a handler started.
    GoSpawn,
}

impl Probe {
    pub const ALL: [Probe; 3] = [Probe::HttpServer, Probe::HttpClient, Probe::GoSpawn];

    pub fn name(self) -> &'static str {
        match self {
            Probe::HttpServer => "http.server",
            Probe::HttpClient => "http.client",
            Probe::GoSpawn => "go.spawn",
        }
    }

    pub fn from_name(name: &str) -> Option<Probe> {
        Probe::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The Go function the probe hooks (entry and every return).
    pub fn function(self) -> &'static str {
        match self {
            Probe::HttpServer => "net/http.serverHandler.ServeHTTP",
            Probe::HttpClient => "net/http.(*Transport).roundTrip",
            Probe::GoSpawn => "runtime.newproc1",
        }
    }

    fn programs(self) -> bpf::ProgramPair {
        match self {
            Probe::HttpServer => bpf::HTTP_SERVER,
            Probe::HttpClient => bpf::HTTP_CLIENT,
            Probe::GoSpawn => bpf::SPAWN,
        }
    }

    /// Struct fields the probe cannot work without.
    pub fn required_fields(self) -> &'static [&'static str] {
        match self {
            Probe::HttpServer => &[
                "runtime.g.goid",
                "net/http.Request.Method",
                "net/http.Request.URL",
                "net/http.Request.Proto",
                "net/http.Request.Host",
                "net/http.Request.RemoteAddr",
                "net/url.URL.Path",
                "net/http.response.status",
            ],
            Probe::HttpClient => &[
                "runtime.g.goid",
                "net/http.Request.Method",
                "net/http.Request.URL",
                "net/http.Request.Host",
                "net/url.URL.Scheme",
                "net/url.URL.Host",
                "net/url.URL.Path",
                "net/url.URL.RawQuery",
                "net/http.Response.StatusCode",
            ],
            Probe::GoSpawn => &["runtime.g.goid"],
        }
    }

    fn kind(self) -> u32 {
        match self {
            Probe::HttpServer => abi::KIND_HTTP_SERVER,
            Probe::HttpClient => abi::KIND_HTTP_CLIENT,
            Probe::GoSpawn => abi::KIND_SPAWN,
        }
    }

    fn from_kind(kind: u32) -> Option<Probe> {
        Probe::ALL.into_iter().find(|p| p.kind() == kind)
    }
}

/// Fields that improve a probe but are optional (the route is absent before Go 1.22).
pub const OPTIONAL_FIELDS: &[&str] = &[
    "net/http.Request.Pattern",
    "net/http.Request.pat",
    "net/http.pattern.str",
];

#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error("offsets line {line}: {msg}")]
    OffsetsSyntax { line: usize, msg: String },
    #[error("unknown probe {0:?} (known: http.server, http.client, go.spawn)")]
    UnknownProbe(String),
    #[error("no probe can be attached: {0}")]
    NothingToAttach(String),
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

    fn get(&self, field: &str) -> u64 {
        self.fields.get(field).copied().unwrap_or(abi::NO_OFFSET)
    }

    /// The fields `probe` needs that are unknown here.
    pub fn missing(&self, probe: Probe) -> Vec<&'static str> {
        probe
            .required_fields()
            .iter()
            .copied()
            .filter(|f| !self.fields.contains_key(*f))
            .collect()
    }

    /// The programs' configuration.
    pub fn config(&self) -> GpConfig {
        let mut c = GpConfig {
            g_goid: self.get("runtime.g.goid"),
            req_method: self.get("net/http.Request.Method"),
            req_url: self.get("net/http.Request.URL"),
            req_proto: self.get("net/http.Request.Proto"),
            req_host: self.get("net/http.Request.Host"),
            req_remote_addr: self.get("net/http.Request.RemoteAddr"),
            url_scheme: self.get("net/url.URL.Scheme"),
            url_host: self.get("net/url.URL.Host"),
            url_path: self.get("net/url.URL.Path"),
            url_raw_query: self.get("net/url.URL.RawQuery"),
            response_status: self.get("net/http.response.status"),
            resp_status_code: self.get("net/http.Response.StatusCode"),
            ..GpConfig::default()
        };
        // Go 1.23 exported Request.Pattern; Go 1.22 kept the matched
        // pattern only in the unexported Request.pat.
        if let Some(&off) = self.fields.get("net/http.Request.Pattern") {
            c.route_mode = abi::ROUTE_PATTERN;
            c.req_route = off;
        } else if let (Some(&pat), Some(&s)) = (
            self.fields.get("net/http.Request.pat"),
            self.fields.get("net/http.pattern.str"),
        ) {
            c.route_mode = abi::ROUTE_PAT_PTR;
            c.req_route = pat;
            c.pattern_str = s;
        }
        c
    }
}

/// Parse `--probes http.server,http.client`.
pub fn parse_probes(list: &str) -> Result<Vec<Probe>, AttachError> {
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let p = Probe::from_name(name).ok_or_else(|| AttachError::UnknownProbe(name.to_owned()))?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(out)
}

/// One function of the target to hook: where it is, and its code.
#[derive(Debug, Clone)]
pub struct Hook {
    pub probe: Probe,
    /// Virtual address of the entry (for messages and decoding).
    pub address: u64,
    /// File offset of the entry.
    pub file_offset: u64,
    /// The function's bytes.
    pub code: Vec<u8>,
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

/// One completed call.
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

impl RawEvent {
    /// Any ring-buffer record as a stream event.
    pub fn from_record(rec: &abi::Record) -> Option<RawEvent> {
        match rec {
            abi::Record::Call(ev) => RawEvent::from_gp(ev),
            abi::Record::Spawn(sp) => {
                let mut fields = BTreeMap::new();
                fields.insert(
                    "parent_goroutine".to_owned(),
                    serde_json::Value::from(sp.parent_goid),
                );
                Some(RawEvent {
                    probe: Probe::GoSpawn.name().to_owned(),
                    pid: sp.pid,
                    tid: sp.tid,
                    goroutine: sp.child_goid,
                    start_ns: sp.ts_ns,
                    end_ns: sp.ts_ns,
                    fields,
                })
            }
        }
    }

    /// The event's probe name and fields, or `None` for an unknown kind.
    pub fn from_gp(ev: &GpEvent) -> Option<RawEvent> {
        let probe = Probe::from_kind(ev.kind)?;
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
        match probe {
            Probe::HttpServer => {
                put("proto", &ev.proto, ev.proto_len);
                put("peer", &ev.peer, ev.peer_len);
                put("route", &ev.route, ev.route_len);
            }
            Probe::HttpClient => {
                put("scheme", &ev.scheme, ev.scheme_len);
                put("query", &ev.query, ev.query_len);
                put("request_host", &ev.peer, ev.peer_len);
            }
            Probe::GoSpawn => return None,
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
        Some(RawEvent {
            probe: probe.name().to_owned(),
            pid: ev.pid,
            tid: ev.tid,
            goroutine: ev.goid,
            start_ns: ev.start_ns,
            end_ns: ev.end_ns,
            fields,
        })
    }
}

/// Attached probes and their event stream.
pub struct Session {
    _loaded: Loaded,
    reader: Reader,
    reported_lost: [u64; abi::LOST_MAX as usize],
    /// Uprobes attached (entry + returns over all functions).
    pub links: usize,
    /// Probes attached.
    pub probes: Vec<Probe>,
}

impl Session {
    /// Load the programs with `offsets`' configuration and attach every
    /// hook. Hooks whose code cannot be decoded are skipped with a warning;
    /// it is an error when none is left.
    pub fn start(
        target: &Target,
        offsets: &Offsets,
        hooks: &[Hook],
        warnings: &mut Vec<String>,
    ) -> Result<Session, AttachError> {
        Session::start_with(target, offsets, hooks, false, warnings)
    }

    /// Like [`Session::start`]; with `empty`, attach programs that do
    /// nothing at the same points (the benchmark baseline: traps alone).
    pub fn start_with(
        target: &Target,
        offsets: &Offsets,
        hooks: &[Hook],
        empty: bool,
        warnings: &mut Vec<String>,
    ) -> Result<Session, AttachError> {
        warnings.extend(bpf::prepare_system()?);
        let mut loaded = bpf::load(&offsets.config())?;
        let mut probes = Vec::new();
        let mut reasons = Vec::new();
        for hook in hooks {
            let points = match rets::probe_points(&hook.code, hook.address) {
                Ok(p) => p,
                Err(e) => {
                    reasons.push(format!(
                        "{}: {}: {e}",
                        hook.probe.name(),
                        hook.probe.function()
                    ));
                    continue;
                }
            };
            let programs = if empty {
                bpf::EMPTY
            } else {
                hook.probe.programs()
            };
            let f = FunctionProbe {
                programs,
                file_offset: hook.file_offset,
                points,
            };
            loaded.attach(&target.binary, target.pid, &f)?;
            if !probes.contains(&hook.probe) {
                probes.push(hook.probe);
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
        Ok(self.reader.poll(timeout, |ev| {
            if let Some(raw) = RawEvent::from_record(&ev) {
                f(raw)
            }
        })?)
    }

    /// Read everything still in the ring buffer.
    pub fn drain(&mut self, mut f: impl FnMut(RawEvent)) -> usize {
        self.reader.drain(&mut |ev| {
            if let Some(raw) = RawEvent::from_record(&ev) {
                f(raw)
            }
        })
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

/// Resolve each probe's function in the binary. Returns the hooks and,
/// for probes that cannot be instrumented, the reason.
pub fn hooks_from_binary(
    bin: &crate::gobin::GoBinary,
    probes: &[Probe],
    offsets: &Offsets,
) -> (Vec<Hook>, Vec<String>) {
    let mut hooks = Vec::new();
    let mut reasons = Vec::new();
    if bin.elf().arch != crate::gobin::Arch::Amd64 {
        reasons.push(format!(
            "{}: unsupported architecture (goprobe's uprobes support amd64)",
            bin.path().display()
        ));
        return (hooks, reasons);
    }
    for &probe in probes {
        let missing = offsets.missing(probe);
        if !missing.is_empty() {
            reasons.push(format!(
                "{}: offsets unknown for {}",
                probe.name(),
                missing.join(", ")
            ));
            continue;
        }
        match bin.function(probe.function()) {
            Ok(Some(f)) => {
                let code = usize::try_from(f.offset)
                    .ok()
                    .zip(usize::try_from(f.offset.saturating_add(f.size)).ok())
                    .and_then(|(a, b)| bin.data().get(a..b));
                match code {
                    Some(code) => hooks.push(Hook {
                        probe,
                        address: f.address,
                        file_offset: f.offset,
                        code: code.to_vec(),
                    }),
                    None => reasons.push(format!(
                        "{}: {} lies outside the file",
                        probe.name(),
                        probe.function()
                    )),
                }
            }
            Ok(None) => reasons.push(format!(
                "{}: function {} missing",
                probe.name(),
                probe.function()
            )),
            Err(e) => reasons.push(format!("{}: {e}", probe.name())),
        }
    }
    (hooks, reasons)
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
    fn offsets_parse_and_route_modes() {
        let text = "{\"field\":\"runtime.g.goid\",\"offset\":152,\"size\":8,\"source\":\"dwarf\"}\n\
                    {\"field\":\"net/http.Request.Pattern\",\"offset\":256,\"size\":16,\"source\":\"table\"}\n\
                    {\"field\":\"net/http.Request.Method\",\"offset\":null,\"size\":null,\"source\":\"unknown\"}\n";
        let o = Offsets::from_ndjson(text).expect("parses");
        assert_eq!(o.fields["runtime.g.goid"], 152);
        assert!(!o.fields.contains_key("net/http.Request.Method"));
        let c = o.config();
        assert_eq!(
            (c.g_goid, c.route_mode, c.req_route),
            (152, abi::ROUTE_PATTERN, 256)
        );
        assert_eq!(c.req_method, abi::NO_OFFSET);
        assert!(
            o.missing(Probe::HttpServer)
                .contains(&"net/http.Request.Method")
        );
        assert!(matches!(
            Offsets::from_ndjson("{"),
            Err(AttachError::OffsetsSyntax { line: 1, .. })
        ));
    }

    /// The registers the eBPF programs read (ebpf/goprobe.bpf.c) are the ones
    /// the probe catalog assigns to each argument.
    #[test]
    fn programs_read_the_catalog_registers() {
        let catalog = crate::catalog::Catalog::builtin().expect("catalog");
        let reg = |probe: &str, arg: &str| -> Vec<&'static str> {
            let p = catalog.probe(probe).expect("probe");
            let a = p
                .hooks
                .iter()
                .flat_map(|h| h.args.iter())
                .find(|a| a.name == arg)
                .expect("arg");
            a.words
                .iter()
                .map(|&w| crate::catalog::register("amd64", w).expect("register"))
                .collect()
        };
        // http_server_entry: rw data in RCX (ptr_b), req in RDI.
        assert_eq!(reg("http.server", "response_writer"), ["rbx", "rcx"]);
        assert_eq!(reg("http.server", "request"), ["rdi"]);
        // http_client_entry: req in RBX; http_client_return: *Response in RAX, error in RBX/RCX.
        assert_eq!(reg("http.client", "request"), ["rbx"]);
        assert_eq!(reg("http.client", "response"), ["rax"]);
        assert_eq!(reg("http.client", "error"), ["rbx", "rcx"]);
        for p in [Probe::HttpServer, Probe::HttpClient] {
            let c = catalog.probe(p.name()).expect("in catalog");
            assert!(c.hooks.iter().any(|h| h.function == p.function()));
            for f in p
                .required_fields()
                .iter()
                .filter(|f| **f != "runtime.g.goid")
            {
                assert!(
                    catalog.all_fields().iter().any(|c| c == f),
                    "{f} not in the catalog"
                );
            }
        }
    }

    #[test]
    fn probes_list() {
        assert_eq!(
            parse_probes("http.client, http.server,http.client").expect("ok"),
            vec![Probe::HttpClient, Probe::HttpServer]
        );
        assert!(parse_probes("grpc").is_err());
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

/// Every field the probes read (required and optional).
pub fn wanted_fields() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for p in Probe::ALL {
        for f in p.required_fields() {
            if !out.contains(f) {
                out.push(f);
            }
        }
    }
    out.extend_from_slice(OPTIONAL_FIELDS);
    out
}

/// Offsets the way `goprobe offsets` resolves them: the binary's DWARF
/// when it describes the type, else the embedded offsets table for its
/// exact Go version; unknown fields are left out.
pub fn offsets_resolved(bin: &crate::gobin::GoBinary) -> Offsets {
    let table = crate::offsets::table::Table::builtin()
        .unwrap_or_else(|e| crate::offsets::table::Table::default_with_warning(&e));
    let resolver = crate::offsets::Resolver::for_binary(bin, &table, None);
    let fields = wanted_fields()
        .into_iter()
        .filter_map(|f| resolver.resolve(f).offset.map(|o| (f.to_owned(), o)))
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
/// it, resolve offsets (given, or from its DWARF) and functions.
pub struct Plan {
    pub target: Target,
    pub info: TargetInfo,
    pub offsets: Offsets,
    pub hooks: Vec<Hook>,
    /// Probes that cannot be instrumented, with why.
    pub skipped: Vec<String>,
}

impl Plan {
    pub fn new(
        bin: &crate::gobin::GoBinary,
        pid: Option<u32>,
        probes: &[Probe],
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
                probes.retain(|p| match verdicts.iter().find(|v| v.probe == p.name()) {
                    Some(v) if !v.instrumentable => {
                        skipped.push(format!("{}: {}", p.name(), v.reasons.join("; ")));
                        false
                    }
                    _ => true,
                });
                offsets_resolved(bin)
            }
        };
        let (hooks, reasons) = hooks_from_binary(bin, &probes, &offsets);
        skipped.extend(reasons);
        if !hooks.iter().any(|h| h.probe != Probe::GoSpawn) {
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
        Ok(Plan {
            target: Target { binary, pid },
            info,
            offsets,
            hooks,
            skipped,
        })
    }
}

/// What `goprobe attach` (and `goprobe record` when it attaches itself) was asked.
#[derive(Debug, Clone)]
pub struct Request {
    pub binary: Option<PathBuf>,
    pub pid: Option<u32>,
    pub probes: Vec<Probe>,
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
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).map_err(RunError::Signal)?;
    }
    let mut warnings = Vec::new();
    let session = Session::start_with(
        &plan.target,
        &plan.offsets,
        &plan.hooks,
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
