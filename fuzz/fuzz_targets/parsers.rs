//! Build info, module info and pclntab parsers on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    goprobe::gobin::fuzz::parsers(data);
});
