//! tensorlane-benches: micro-benchmarks and the cross-process comparison harness.
#![cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]
