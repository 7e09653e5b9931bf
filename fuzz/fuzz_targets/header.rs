//! Untrusted shared memory at the boundary: segment header words through the
//! decoder (accept or reject, never panic; accepted headers re-encode to the same
//! words), and arbitrary bytes viewed as a whole region through `attach`, with a few
//! operations on it. See `tensorlane_verification::hostile::run_header`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = tensorlane_verification::hostile::run_header(data) {
        panic!("{violation}");
    }
});
