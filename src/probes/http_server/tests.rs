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
    ] {
        assert_eq!(abi::c_define(SOURCE, name), Some(value), "{name}");
    }
    assert!(SOURCE.contains(&format!(
        "sizeof(struct gp_server_event) == {}",
        size_of::<ServerEvent>()
    )));
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

#[test]
fn decodes_records_into_stream_fields() {
    let mut bytes = vec![0u8; size_of::<ServerEvent>()];
    let mut ev = ServerEvent::read(&bytes).expect("long enough");
    ev.pid = 42;
    ev.goid = 7;
    ev.start_ns = 1;
    ev.end_ns = 2;
    ev.method[..3].copy_from_slice(b"GET");
    ev.method_len = 3;
    ev.path = [b'a'; LONG_MAX];
    ev.path_len = 300;
    ev.status = 503;
    ev.user_agent = [b'u'; USER_AGENT_MAX];
    ev.user_agent_len = 400;
    ev.flags = FLAG_UNWOUND | abi::FLAG_READ_FAILED;
    ev.unwound_by = 1;
    // SAFETY: as above, writing one ServerEvent into its own bytes.
    unsafe { std::ptr::write_unaligned(bytes.as_mut_ptr().cast::<ServerEvent>(), ev) };
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
    assert!(FAMILY.decode(&bytes[..100], &mut ctx).is_none());
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
