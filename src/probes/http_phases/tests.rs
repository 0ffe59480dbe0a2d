//! The http_phases family on hand-made records and streams.

use super::*;

#[test]
fn constants_match_the_c_file() {
    let source = include_str!("../../../ebpf/probes/http_phases.bpf.c");
    for (name, value) in [
        ("GP_PHASE_DNS", u64::from(PHASE_DNS)),
        ("GP_PHASE_CONNECT", u64::from(PHASE_CONNECT)),
        ("GP_PHASE_TLS", u64::from(PHASE_TLS)),
        ("GP_PHASE_REQUEST_SENT", u64::from(PHASE_REQUEST_SENT)),
        ("GP_PHASE_FIRST_BYTE", u64::from(PHASE_FIRST_BYTE)),
        ("GP_FLAG_END", u64::from(FLAG_END)),
        ("GP_HOST_MAX", HOST_MAX as u64),
        ("GP_ADDR_MAX", ADDR_MAX as u64),
    ] {
        assert_eq!(abi::c_define(source, name), Some(value), "{name}");
    }
    assert!(source.contains(&format!(
        "sizeof(struct gp_phase_event) == {}",
        size_of::<PhaseEvent>()
    )));
}

fn record(phase: u32, flags: u32) -> PhaseEvent {
    PhaseEvent {
        pid: 7,
        tid: 8,
        flags,
        phase,
        goid: 42,
        g: 0xc000_0001,
        parent_goid: 0,
        start_ns: 1_000,
        end_ns: if flags & FLAG_END != 0 { 5_000 } else { 1_000 },
        err_type: 0,
        obj: 0,
        answers: 0,
        port: 0,
        tls_version: 0,
        host_len: 0,
        addr_len: 0,
        _pad0: 0,
        host: [0; HOST_MAX],
        addr: [0; ADDR_MAX],
    }
}

fn bytes(ev: &PhaseEvent) -> Vec<u8> {
    // SAFETY: PhaseEvent is plain old data without padding (size checked).
    unsafe {
        std::slice::from_raw_parts(
            (ev as *const PhaseEvent).cast::<u8>(),
            size_of::<PhaseEvent>(),
        )
    }
    .to_vec()
}

fn try_decode(record: &[u8]) -> Option<RawEvent> {
    let mut symbols = crate::probes::symbols::Symbols::new(None);
    let mut ctx = Decode {
        hooks: &[],
        symbols: &mut symbols,
    };
    FAMILY.decode(record, &mut ctx)
}

fn decoded(ev: &PhaseEvent) -> RawEvent {
    try_decode(&bytes(ev)).expect("decodes")
}

#[test]
fn records_become_stream_events_and_span_events() {
    let mut dns = record(PHASE_DNS, FLAG_END);
    dns.host[..9].copy_from_slice(b"localhost");
    dns.host_len = 9;
    dns.answers = 2;
    let raw = decoded(&dns);
    assert_eq!(raw.probe, "http.phases");
    assert_eq!(
        (raw.goroutine, raw.start_ns, raw.end_ns),
        (42, 1_000, 5_000)
    );
    assert_eq!(
        serde_json::to_value(&raw.fields).unwrap(),
        serde_json::json!({"phase": "dns", "end": true, "host": "localhost", "answers": 2})
    );
    let e = FAMILY.event(&raw).unwrap();
    assert_eq!((e.name.as_str(), e.time_ns), ("dns.end", 5_000));
    assert_eq!(
        e.attributes["dns.question.name"],
        AttrValue::from("localhost")
    );
    assert_eq!(e.attributes["goprobe.dns.answer_count"], AttrValue::Int(2));

    let mut start = record(PHASE_DNS, 0);
    start.host[..4].copy_from_slice(b"a.io");
    start.host_len = 300;
    let raw = decoded(&start);
    assert_eq!(raw.fields["host_len"], 300, "cut short: the real length");
    let e = FAMILY.event(&raw).unwrap();
    assert_eq!((e.name.as_str(), e.time_ns), ("dns.start", 1_000));
    assert!(!e.attributes.contains_key("goprobe.dns.answer_count"));

    let mut tcp = record(PHASE_CONNECT, FLAG_END | abi::FLAG_ERROR);
    tcp.addr[10] = 0xff;
    tcp.addr[11] = 0xff;
    tcp.addr[12..].copy_from_slice(&[127, 0, 0, 1]);
    tcp.addr_len = 16;
    tcp.port = 8443;
    tcp.err_type = 0x1234;
    let e = FAMILY.event(&decoded(&tcp)).unwrap();
    assert_eq!(e.name, "connect.end");
    assert_eq!(
        e.attributes["network.peer.address"],
        AttrValue::from("127.0.0.1")
    );
    assert_eq!(e.attributes["network.peer.port"], AttrValue::Int(8443));
    assert_eq!(e.attributes["network.type"], AttrValue::from("ipv4"));
    assert_eq!(e.attributes["network.transport"], AttrValue::from("tcp"));
    // No binary to name the error's type with: unknown, not guessed.
    assert_eq!(e.attributes["error.type"], AttrValue::from("_OTHER"));

    let mut tls = record(PHASE_TLS, FLAG_END);
    tls.tls_version = 0x0304;
    let e = FAMILY.event(&decoded(&tls)).unwrap();
    assert_eq!(e.name, "tls.end");
    assert_eq!(e.attributes["tls.protocol.version"], AttrValue::from("1.3"));
    assert_eq!(e.attributes["tls.protocol.name"], AttrValue::from("tls"));

    let sent = decoded(&record(PHASE_REQUEST_SENT, 0));
    assert_eq!(sent.probe, "http.exchange");
    let e = FAMILY.event(&sent).unwrap();
    assert_eq!((e.name.as_str(), e.attributes.len()), ("request_sent", 0));
    let e = FAMILY
        .event(&decoded(&record(PHASE_FIRST_BYTE, 0)))
        .unwrap();
    assert_eq!(e.name, "first_byte");

    let mut bad = record(9, 0);
    assert!(try_decode(&bytes(&bad)).is_none(), "unknown phase");
    bad.phase = PHASE_DNS;
    assert!(try_decode(&bytes(&bad)[..100]).is_none(), "too short");
}

#[test]
fn addresses_and_versions() {
    assert_eq!(ip_text(&[127, 0, 0, 1]).unwrap().to_string(), "127.0.0.1");
    let mut mapped = [0u8; 16];
    mapped[10] = 0xff;
    mapped[11] = 0xff;
    mapped[12..].copy_from_slice(&[10, 1, 2, 3]);
    assert_eq!(ip_text(&mapped).unwrap().to_string(), "10.1.2.3");
    let mut lo6 = [0u8; 16];
    lo6[15] = 1;
    assert_eq!(ip_text(&lo6).unwrap().to_string(), "::1");
    assert_eq!(ip_text(&[1, 2, 3]), None);
    assert_eq!(tls_version_name(0x0304), Some("1.3"));
    assert_eq!(tls_version_name(0x0303), Some("1.2"));
    assert_eq!(tls_version_name(0x7f1c), None);
}

/// Only the probe whose hooks trap on pooled connections is opt-in: the
/// default probe set costs traps only when a connection is opened.
#[test]
fn only_the_exchange_probe_is_opt_in() {
    let catalog = crate::catalog::Catalog::builtin().unwrap();
    let opt_in = |name: &str| catalog.probe(name).expect(name).opt_in;
    assert!(opt_in(EXCHANGE));
    assert!(!opt_in(PHASES));
}

#[test]
fn address_literals_are_no_dns_phase() {
    for h in [
        "127.0.0.1",
        "::1",
        "fe80::1%eth0",
        "2001:db8::8a2e:370:7334",
    ] {
        assert!(is_address_literal(h), "{h}");
    }
    for h in ["localhost", "db.internal", "1.2.3", "127.0.0.1.nip.io", ""] {
        assert!(!is_address_literal(h), "{h}");
    }
    let mut ev = record(PHASE_DNS, 0);
    ev.host[..9].copy_from_slice(b"127.0.0.1");
    ev.host_len = 9;
    assert!(try_decode(&bytes(&ev)).is_none());
    ev.host[..9].copy_from_slice(b"localhost");
    assert!(try_decode(&bytes(&ev)).is_some());
}
