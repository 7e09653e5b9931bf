//! tensorlane-gpu: GPU tensor lanes between processes.
#![cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]
