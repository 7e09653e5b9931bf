//! A valid register, SPSC ring or broadcast ring whose control and body words are
//! overwritten with arbitrary values between real operations: every operation must
//! return a value or a typed error. See
//! `tensorlane_verification::hostile::run_hostile`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = tensorlane_verification::hostile::run_hostile(data) {
        panic!("{violation}");
    }
});
