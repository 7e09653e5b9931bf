//! What a GPU lane's writer process hands an opener: lane tables, CUDA export blobs,
//! host-backend descriptors with hostile sizes, and records, each accepted or refused
//! with a typed error, never a panic. See
//! `tensorlane_verification::hostile_gpu::run_gpu_handoff`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = tensorlane_verification::hostile_gpu::run_gpu_handoff(data) {
        panic!("{violation}");
    }
});
