//! The seqlock register against its sequential model: the input is decoded by
//! `tensorlane_model::decode_register_case` into a geometry and operations, which run
//! against the core and the model side by side. Any difference is a finding.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(mismatch) = tensorlane_model::run_register_bytes(data) {
        panic!("core and model disagree: {mismatch}");
    }
});
