//! Inputs the fuzzers once crashed on (`fuzz/regressions/`, named after the
//! target that found them) replayed on every test run, so a fixed panic
//! cannot come back unnoticed even where cargo-fuzz is not installed.

use std::fs;
use std::path::Path;

#[test]
fn fuzz_regressions_do_not_panic() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut replayed = 0;
    for entry in fs::read_dir(&dir).expect("fuzz/regressions exists") {
        let path = entry.expect("dir entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_owned();
        let data = fs::read(&path).expect("read regression input");
        match name.split('-').next() {
            Some("parsers") => goprobe::gobin::fuzz::parsers(&data),
            Some("binary") => goprobe::gobin::fuzz::binary(&data),
            // Needs a real binary: replayed by tests/runtime_memory.rs.
            Some("runtime_memory") => {}
            _ => panic!("{name}: regression inputs are named <target>-<what>"),
        }
        replayed += 1;
    }
    assert!(
        replayed > 0,
        "no regression inputs found in {}",
        dir.display()
    );
}
