//! Whole files through GoBinary::from_bytes: ELF, build info, pclntab, text start.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    goprobe::gobin::fuzz::binary(data);
});
