//! Unit tests of the offsets table: parsing, lookups by minor, the generator's checks.

use super::*;

fn layouts(off: u64) -> Layouts {
    let mut l = Layouts::default();
    l.fields.insert(
        "net/http.Request.Method".into(),
        FieldEntry {
            offset: off,
            size: 16,
        },
    );
    l.types.insert("net/http.Request".into(), 248);
    l
}

fn entry(go: &str, arch: &str, off: u64) -> Entry {
    Entry {
        go: Some(go.into()),
        module: None,
        version: None,
        goarch: arch.into(),
        layouts: layouts(off),
    }
}

#[test]
fn builtin_table_parses() {
    let t = Table::builtin().unwrap();
    assert_eq!(t.format, FORMAT);
}

#[test]
fn minors() {
    assert_eq!(minor_of("go1.23.4").as_deref(), Some("go1.23"));
    assert_eq!(minor_of("go1.19").as_deref(), Some("go1.19"));
    assert_eq!(minor_of("go1.23rc1"), None);
    assert_eq!(minor_of("go1.23.4 X:nocoverageredesign"), None);
    assert_eq!(minor_of("devel go1.24-abc"), None);
    assert_eq!(minor_of("go1"), None);
    assert_eq!(minor_of("go1.2.3.4"), None);
    let mut v = vec!["go1.23.10".to_string(), "go1.23.2".into(), "go1.23".into()];
    sort_versions(&mut v);
    assert_eq!(v, ["go1.23", "go1.23.2", "go1.23.10"]);
}

#[test]
fn serialization_round_trips_and_is_stable() {
    let mut t = Table::default();
    for (go, arch) in [
        ("go1.22.10", "arm64"),
        ("go1.19.8", "amd64"),
        ("go1.22.10", "amd64"),
        ("go1.22.2", "amd64"),
    ] {
        t.insert(entry(go, arch, 0)).unwrap();
    }
    t.insert(Entry {
        go: None,
        module: Some("example.com/util".into()),
        version: Some("v0.0.0-20240102030405-abcdef123456".into()),
        goarch: "amd64".into(),
        layouts: layouts(8),
    })
    .unwrap();
    let text = t.to_json_string();
    let back = Table::parse(&text).unwrap();
    assert_eq!(back, t);
    assert_eq!(back.to_json_string(), text);
    assert_eq!(back.stdlib["go1.22"].verified, ["go1.22.2", "go1.22.10"]);
    // A verified release is exact; another patch release of the minor
    // gets the minor's layouts, flagged; other minors and prereleases nothing.
    let m = back.stdlib("go1.22.10", "arm64").unwrap();
    assert!(m.exact && m.minor == "go1.22");
    let m = back.stdlib("go1.22.1", "amd64").unwrap();
    assert!(!m.exact && m.minor == "go1.22");
    assert_eq!(m.layouts, &layouts(0));
    assert!(back.stdlib("go1.22rc1", "amd64").is_none());
    assert!(back.stdlib("go1.23.0", "amd64").is_none());
    assert!(back.stdlib("go1.19.8", "arm64").is_none());
    assert!(
        back.module(
            "example.com/util",
            "v0.0.0-20240102030405-abcdef123456",
            "amd64"
        )
        .is_some()
    );
    assert!(back.module("example.com/util", "v0.0.0", "amd64").is_none());
    assert!(Table::parse(&text.replace("\"format\": 2", "\"format\": 1")).is_err());
    assert!(Table::parse("{").is_err());
}

#[test]
fn patch_releases_that_disagree_fail_the_generator() {
    let mut t = Table::default();
    t.insert(entry("go1.23.0", "amd64", 0)).unwrap();
    t.insert(entry("go1.23.1", "amd64", 0)).unwrap();
    let e = t.insert(entry("go1.23.2", "amd64", 8)).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, TableError::Disagreement { .. }), "{msg}");
    assert!(
        msg.contains("go1.23/amd64: go1.23.2 disagrees with go1.23.0, go1.23.1")
            && msg.contains("net/http.Request.Method: others 0+16, go1.23.2 8+16"),
        "{msg}"
    );
    // The failed release is not recorded as verified.
    assert_eq!(t.stdlib["go1.23"].verified, ["go1.23.0", "go1.23.1"]);
    // Another arch of the same minor is its own slot.
    t.insert(entry("go1.23.2", "arm64", 8)).unwrap();
    assert!(t.insert(entry("go1.23rc1", "amd64", 0)).is_err());
}

#[test]
fn a_minor_whose_patch_releases_changed_layouts_is_split() {
    // Go 1.26.11 moved net/http.response fields: recorded as its own group.
    let mut t = Table::default();
    for (go, off) in [
        ("go1.26.1", 0),
        ("go1.26.10", 0),
        ("go1.26.11", 8),
        ("go1.26.12", 8),
    ] {
        for arch in ["amd64", "arm64"] {
            t.insert_with(entry(go, arch, off), true).unwrap();
        }
    }
    assert_eq!(t.stdlib["go1.26"].verified, ["go1.26.1", "go1.26.10"]);
    assert_eq!(t.stdlib["go1.26.11"].verified, ["go1.26.11", "go1.26.12"]);
    let m = t.stdlib("go1.26.12", "arm64").unwrap();
    assert!(m.exact && m.minor == "go1.26.11" && m.layouts == &layouts(8));
    let m = t.stdlib("go1.26.10", "amd64").unwrap();
    assert!(m.exact && m.layouts == &layouts(0));
    // A release in no group of a split minor: no answer, and why.
    assert!(t.stdlib("go1.26.5", "amd64").is_none());
    assert_eq!(
        t.split_minor("go1.26.5").as_deref(),
        Some("go1.26 (go1.26.1 go1.26.10), go1.26.11 (go1.26.11 go1.26.12)")
    );
    assert!(t.split_minor("go1.27.0").is_none());
    // A field every group places alike is known for the unseen release.
    let mut t2 = t.clone();
    for m in t2.stdlib.values_mut() {
        for l in m.archs.values_mut() {
            l.fields.insert(
                "net/url.URL.Path".into(),
                FieldEntry {
                    offset: 56,
                    size: 16,
                },
            );
            l.types.insert("net/url.URL".into(), 144);
        }
    }
    let a = t2
        .stdlib_agreed("go1.26.5", "amd64", "net/url.URL.Path", Some("net/url.URL"))
        .expect("agreed");
    assert_eq!(
        (a.entry.offset, a.type_size, a.minor.as_str()),
        (56, Some(144), "go1.26")
    );
    assert_eq!(
        a.verified,
        ["go1.26.1", "go1.26.10", "go1.26.11", "go1.26.12"]
    );
    // The struct size is left out where the groups differ on it.
    t2.stdlib
        .get_mut("go1.26.11")
        .unwrap()
        .archs
        .get_mut("amd64")
        .unwrap()
        .types
        .insert("net/url.URL".into(), 152);
    let a = t2
        .stdlib_agreed("go1.26.5", "amd64", "net/url.URL.Path", Some("net/url.URL"))
        .expect("agreed");
    assert_eq!(a.type_size, None);
    // The field that split the minor stays unknown, as does every field of
    // a minor that is not split (its single group answers instead).
    let moved = t.stdlib["go1.26"].archs["amd64"]
        .fields
        .keys()
        .next()
        .unwrap()
        .clone();
    assert!(
        t2.stdlib_agreed("go1.26.5", "amd64", &moved, None)
            .is_none()
    );
    assert!(
        t2.stdlib_agreed("go1.26.5", "riscv64", "net/url.URL.Path", None)
            .is_none()
    );
    let single = Table::default();
    assert!(
        single
            .stdlib_agreed("go1.26.5", "amd64", "net/url.URL.Path", None)
            .is_none()
    );
    // Round trip, and the check finds each release in its group.
    let back = Table::parse(&t.to_json_string()).unwrap();
    assert_eq!(back, t);
    assert!(check_entries(&back, &[entry("go1.26.11", "amd64", 8)]).is_empty());
    assert_eq!(
        check_entries(&back, &[entry("go1.26.11", "amd64", 0)]).len(),
        1
    );
    // Without split, the same entries fail.
    let mut strict = Table::default();
    strict.insert(entry("go1.26.10", "amd64", 0)).unwrap();
    assert!(strict.insert(entry("go1.26.11", "amd64", 8)).is_err());
}

#[test]
fn check_reports_differences_and_unverified_releases() {
    let mut committed = Table::default();
    committed.insert(entry("go1.19.8", "amd64", 0)).unwrap();
    committed.insert(entry("go1.27.3", "amd64", 0)).unwrap();
    assert!(check_entries(&committed, &[entry("go1.19.8", "amd64", 0)]).is_empty());
    let p = check_entries(&committed, &[entry("go1.19.8", "amd64", 8)]);
    assert_eq!(p.len(), 1);
    assert!(p[0].contains("committed 0+16, generated 8+16"), "{p:?}");
    assert_eq!(
        check_entries(&committed, &[entry("go1.22.10", "amd64", 0)]).len(),
        1
    );
    let p = check_entries(&committed, &[entry("go1.27.1", "amd64", 0)]);
    assert!(p[0].contains("not in its verified list"), "{p:?}");
}

#[test]
fn packages() {
    assert_eq!(package_of("net/http.Request.Method"), Some("net/http"));
    assert_eq!(package_of("runtime.g.goid"), Some("runtime"));
    assert_eq!(
        package_of("google.golang.org/grpc/internal/transport.Stream.method"),
        Some("google.golang.org/grpc/internal/transport")
    );
    assert!(is_stdlib_package("net/http"));
    assert!(is_stdlib_package("runtime"));
    assert!(!is_stdlib_package("google.golang.org/grpc"));
    assert!(!is_stdlib_package("example.com/util"));
}
