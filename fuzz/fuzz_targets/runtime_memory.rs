//! The readers of heap buckets, goroutine records and stacks on arbitrary
//! target memory, with the code and struct layouts of a real Go binary
//! (`GOPROBE_FUZZ_BINARY`, set by scripts/fuzz.sh).
#![no_main]

use goprobe::gobin::GoBinary;
use goprobe::goruntime::Runtime;
use goprobe::offsets::table::Table;
use libfuzzer_sys::fuzz_target;

thread_local! {
    static RT: &'static Runtime<'static> = {
        let path = std::env::var("GOPROBE_FUZZ_BINARY")
            .expect("GOPROBE_FUZZ_BINARY names a Go binary (scripts/fuzz.sh sets it)");
        let bin: &'static GoBinary = Box::leak(Box::new(GoBinary::open(path.as_ref()).expect("open GOPROBE_FUZZ_BINARY")));
        let table: &'static Table = Box::leak(Box::new(Table::builtin().expect("offsets table")));
        Box::leak(Box::new(Runtime::new(bin, table, 0).expect("runtime of GOPROBE_FUZZ_BINARY")))
    };
}

fuzz_target!(|data: &[u8]| {
    RT.with(|rt| goprobe::goruntime::fuzz::readers(rt, data));
});
