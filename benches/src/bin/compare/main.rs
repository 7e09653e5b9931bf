//! `compare`: the cross-process comparison of tensorlane with the floor and the
//! peers, in one invocation (see benches/README.md for the method and results).
//!
//! ```text
//! cargo run --release -p tensorlane-benches --features iceoryx2 --bin compare -- --with-pyshmem
//! ```
//!
//! The second process of every two-process measurement is this same executable,
//! started again with a `--role` argument.
#[cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]
mod harness;

#[cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]
fn main() {
    std::process::exit(harness::main());
}

/// The checker builds (loom, shuttle) compile the harness out.
#[cfg(not(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle")))))]
fn main() {}
