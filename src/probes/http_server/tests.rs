//! Unit tests of the http_server family.

use super::*;
use crate::probes::family::HookInfo;
use crate::probes::symbols::Symbols;

const SOURCE: &str = include_str!("../../../ebpf/probes/http_server.bpf.c");

#[test]
fn constants_match_the_c_file() {
    for (name, value) in [
        ("GP_FLAG_UNWOUND", u64::from(FLAG_UNWOUND)),
        ("GP_FLAG_MAP_TOO_BIG", u64::from(FLAG_MAP_TOO_BIG)),
        ("GP_FLAG_XNET", u64::from(FLAG_XNET)),
        ("GP_FLAG_PREFACE", u64::from(FLAG_PREFACE)),
        ("GP_FLAG_DONE", u64::from(FLAG_DONE)),
        ("GP_HOOK_XNET_RUNHANDLER", u64::from(HOOK_XNET_RUNHANDLER)),
        ("GP_FLAG_TLS", u64::from(FLAG_TLS)),
        ("GP_FLAG_TLS_KNOWN", u64::from(FLAG_TLS_KNOWN)),
        ("GP_MODE_ROUTE", MODE_ROUTE as u64),
        ("GP_ROUTE_NONE", u64::from(ROUTE_NONE)),
        ("GP_ROUTE_PATTERN", u64::from(ROUTE_PATTERN)),
        ("GP_ROUTE_PAT_PTR", u64::from(ROUTE_PAT_PTR)),
        ("GP_MODE_MAP", MODE_MAP as u64),
        ("GP_MAP_NONE", u64::from(MAP_NONE)),
        ("GP_MAP_BUCKETS", u64::from(MAP_BUCKETS)),
        ("GP_MAP_SWISS", u64::from(MAP_SWISS)),
        ("GP_METHOD_MAX", METHOD_MAX as u64),
        ("GP_SHORT_MAX", SHORT_MAX as u64),
        ("GP_LONG_MAX", LONG_MAX as u64),
        ("GP_TRACEPARENT_MAX", TRACEPARENT_MAX as u64),
        ("GP_USER_AGENT_MAX", USER_AGENT_MAX as u64),
        ("GP_AT_HOST", AT_HOST as u64),
        ("GP_AT_PATH", AT_PATH as u64),
        ("GP_AT_QUERY", AT_QUERY as u64),
        ("GP_AT_USER_AGENT", AT_USER_AGENT as u64),
        ("GP_AT_TRACEPARENT", AT_TRACEPARENT as u64),
        ("GP_AT_ROUTE", AT_ROUTE as u64),
        ("GP_AT_N", AT_N as u64),
    ] {
        assert_eq!(abi::c_define(SOURCE, name), Some(value), "{name}");
    }
    assert!(SOURCE.contains(&format!(
        "sizeof(struct gp_server_event) == {}",
        size_of::<ServerEvent>()
    )));
    assert!(SOURCE.contains(&format!("GP_EVENT_FIXED == {EVENT_FIXED}")));
}

#[test]
fn route_and_map_modes_follow_the_offsets() {
    let o: BTreeMap<String, u64> = [
        ("runtime.g.goid", 152),
        ("net/http.Request.Pattern", 256),
        ("net/http.Request.Header", 56),
        ("runtime.hmap.B", 9),
        ("runtime.hmap.buckets", 16),
        ("runtime.hmap.oldbuckets", 24),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let m = modes(&o, false);
    assert_eq!(m[MODE_ROUTE], ROUTE_PATTERN);
    assert_eq!(m[MODE_MAP], MAP_BUCKETS);
    // A Go 1.24+ target needs the Swiss-table fields, not the hmap ones.
    assert_eq!(modes(&o, true)[MODE_MAP], MAP_NONE);
    let mut go122 = o.clone();
    go122.remove("net/http.Request.Pattern");
    go122.insert("net/http.Request.pat".into(), 8);
    assert_eq!(modes(&go122, false)[MODE_ROUTE], ROUTE_NONE);
    go122.insert("net/http.pattern.str".into(), 0);
    assert_eq!(modes(&go122, false)[MODE_ROUTE], ROUTE_PAT_PTR);
}

/// Appends `bytes` (cut at `max`) to ev's packed strings as string `i`, as
/// the programs do; returns the real length.
fn append(ev: &mut ServerEvent, i: usize, bytes: &[u8], max: usize) -> u32 {
    let n = bytes.len().min(max);
    let at = usize::from(ev.used);
    ev.at[i] = ev.used;
    ev.buf[at..at + n].copy_from_slice(&bytes[..n]);
    ev.used += u16::try_from(n).unwrap();
    u32::try_from(bytes.len()).unwrap()
}

/// The record the programs send for ev: its fixed part and the used bytes.
fn record(ev: &ServerEvent) -> Vec<u8> {
    let mut bytes = vec![0u8; size_of::<ServerEvent>()];
    // SAFETY: writing one ServerEvent into bytes of its size.
    unsafe { std::ptr::write_unaligned(bytes.as_mut_ptr().cast::<ServerEvent>(), *ev) };
    bytes.truncate(EVENT_FIXED + usize::from(ev.used));
    bytes
}

#[test]
fn decodes_records_into_stream_fields() {
    let zeros = vec![0u8; size_of::<ServerEvent>()];
    let mut ev = ServerEvent::read(&zeros).expect("long enough");
    ev.pid = 42;
    ev.goid = 7;
    ev.start_ns = 1;
    ev.end_ns = 2;
    ev.method[..3].copy_from_slice(b"GET");
    ev.method_len = 3;
    ev.host_len = append(&mut ev, AT_HOST, b"example.com", SHORT_MAX);
    ev.path_len = append(&mut ev, AT_PATH, &[b'a'; 300], LONG_MAX);
    ev.status = 503;
    ev.user_agent_len = append(&mut ev, AT_USER_AGENT, &[b'u'; 400], USER_AGENT_MAX);
    ev.flags = FLAG_UNWOUND | abi::FLAG_READ_FAILED;
    ev.unwound_by = 1;
    let bytes = record(&ev);
    assert_eq!(bytes.len(), EVENT_FIXED + 11 + LONG_MAX + USER_AGENT_MAX);
    let hooks = [
        HookInfo {
            function: "net/http.serverHandler.ServeHTTP".into(),
            operation: None,
        },
        HookInfo {
            function: "net/http.(*conn).serve.func1".into(),
            operation: None,
        },
    ];
    let mut symbols = Symbols::new(None);
    let mut ctx = Decode {
        hooks: &hooks,
        symbols: &mut symbols,
    };
    let raw = FAMILY.decode(&bytes, &mut ctx).expect("decodes");
    assert_eq!((raw.probe.as_str(), raw.pid, raw.goroutine), (PROBE, 42, 7));
    let keys: Vec<&str> = raw.fields.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "host",
            "method",
            "panic_recovered_by",
            "path",
            "path_len",
            "read_failed",
            "status",
            "user_agent",
            "user_agent_len"
        ]
    );
    assert_eq!(
        raw.fields["panic_recovered_by"],
        "net/http.(*conn).serve.func1"
    );
    assert_eq!(raw.fields["path"].as_str().map(str::len), Some(LONG_MAX));
    assert_eq!(raw.fields["status"], 503);
    assert_eq!(raw.fields["host"], "example.com");
    assert!(FAMILY.decode(&bytes[..100], &mut ctx).is_none());
    // A record cut inside the packed strings it says it has is no event.
    assert!(FAMILY.decode(&bytes[..bytes.len() - 1], &mut ctx).is_none());
    let back: Fields = raw.fields_as().unwrap();
    assert_eq!(back.method.as_deref(), Some("GET"));
    assert_eq!(back.path_len, Some(300));
    assert_eq!(back.user_agent_len, Some(400));
    let span = FAMILY.span(&raw, &[]).expect("span");
    assert_eq!(
        span.attributes["user_agent.original"],
        AttrValue::from("u".repeat(USER_AGENT_MAX).as_str())
    );
}

#[test]
fn packed_strings_past_the_used_bytes_are_not_read() {
    let zeros = vec![0u8; size_of::<ServerEvent>()];
    let mut ev = ServerEvent::read(&zeros).expect("long enough");
    ev.method[..3].copy_from_slice(b"GET");
    ev.method_len = 3;
    ev.path_len = append(&mut ev, AT_PATH, b"/hello", LONG_MAX);
    // A route said to start past the bytes used: no route, read_failed.
    ev.at[AT_ROUTE] = 100;
    ev.route_len = 4;
    let hooks = [HookInfo {
        function: "net/http.serverHandler.ServeHTTP".into(),
        operation: None,
    }];
    let mut symbols = Symbols::new(None);
    let mut ctx = Decode {
        hooks: &hooks,
        symbols: &mut symbols,
    };
    let raw = FAMILY.decode(&record(&ev), &mut ctx).expect("decodes");
    assert_eq!(raw.fields["path"], "/hello");
    assert!(!raw.fields.contains_key("route"));
    assert_eq!(raw.fields["read_failed"], true);
    // Whole in-flight entries (unfinished calls) decode the same way.
    ev.at[AT_ROUTE] = 0;
    ev.route_len = 0;
    let whole = {
        let mut b = vec![0u8; size_of::<ServerEvent>()];
        // SAFETY: writing one ServerEvent into bytes of its size.
        unsafe { std::ptr::write_unaligned(b.as_mut_ptr().cast::<ServerEvent>(), ev) };
        b
    };
    let raw = FAMILY.decode(&whole, &mut ctx).expect("decodes");
    assert_eq!(raw.fields["path"], "/hello");
    assert!(!raw.fields.contains_key("read_failed"));
}
