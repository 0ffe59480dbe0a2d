//! The runtime readers (heap buckets, goroutine records, stacks, and the
//! dump and profiles built on them) on pseudo-random target memory shaped
//! like the real thing — words that point back into it, pcs of the real
//! binary's functions, small counts — with a stripped corpus binary's code
//! and layouts: no panic, and every run ends (cycles cut, lengths bounded).
//! A deterministic, bounded companion of the `runtime_memory` fuzz target,
//! so CI checks it without cargo-fuzz; inputs the fuzzer once failed on
//! (`fuzz/regressions/runtime_memory-*`) are replayed too.

mod common;

use std::time::{Duration, Instant};

use goprobe::gobin::GoBinary;
use goprobe::goruntime::Runtime;
use goprobe::goruntime::fuzz::{BASE, BASE2, readers};
use goprobe::offsets::table::Table;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

#[test]
fn readers_survive_random_memory() {
    let e = common::corpus_binary("1.26", "goruntime", "stripped");
    let bin = GoBinary::open(&e.binary).expect("open");
    let table = Table::builtin().expect("table");
    let rt = Runtime::new(&bin, &table, 0).expect("runtime");
    let pcs: Vec<u64> = bin
        .function_table()
        .expect("functions")
        .iter()
        .map(|f| f.address + f.size / 2)
        .collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let start = Instant::now();
    let mut runs = 0;
    while runs < 3000 && start.elapsed() < Duration::from_secs(60) {
        let words = 16 + (rng.next() % 2048) as usize;
        let mut data = Vec::with_capacity(words * 8);
        for _ in 0..words {
            let w = match rng.next() % 8 {
                0 | 1 => BASE + (rng.next() % (words as u64 * 8)),
                2 => BASE2 + (rng.next() % (words as u64 * 8)),
                3 => pcs[(rng.next() % pcs.len() as u64) as usize],
                4 => rng.next() % 16,
                5 => 1,
                _ => rng.next(),
            };
            data.extend_from_slice(&w.to_le_bytes());
        }
        // Half the time, globals that look right: mbuckets and the allgs
        // elements pointing into the input, a sane slice header.
        if rng.next().is_multiple_of(2) {
            let n = 1 + rng.next() % 8;
            let put = |data: &mut Vec<u8>, at: usize, v: u64| {
                data[at..at + 8].copy_from_slice(&v.to_le_bytes())
            };
            put(
                &mut data,
                0,
                BASE + 64 + 8 * (rng.next() % (words as u64 - 8)),
            );
            put(&mut data, 16, BASE + 64);
            put(&mut data, 24, n);
            put(&mut data, 32, n + rng.next() % 4);
        }
        readers(&rt, &data);
        runs += 1;
    }
    assert!(runs >= 200, "only {runs} runs in a minute");
    // The fuzzer's regressions for this target.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    for entry in std::fs::read_dir(&dir).expect("fuzz/regressions") {
        let path = entry.expect("entry").path();
        if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("runtime_memory-"))
        {
            readers(&rt, &std::fs::read(&path).expect("read"));
        }
    }
}
