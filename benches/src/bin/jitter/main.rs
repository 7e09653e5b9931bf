//! The jitter harness: a 1 kHz control loop (writer on `CLOCK_MONOTONIC`
//! deadlines, a reader blocked in a wait, a polling reader; see
//! `tensorlane_benches::jitter`) over tensorlane and over iceoryx2, in alternating
//! phases of the same run, while `stress-ng` loads the CPUs, the memory bandwidth
//! and the caches. Reports p50, p99, p99.9, p99.99 and max latency and the missed
//! deadlines of each role, and writes `jitter-<date>.{txt,json,svg}`.
//!
//! ```sh
//! apt-get install -y stress-ng
//! cargo run --release -p tensorlane-benches --features iceoryx2 --bin jitter
//! ```
//!
//! Options: `--seconds N` (per transport, default 60), `--phase N` (seconds per
//! phase, default 10), `--period-us N` (default 1000), `--stress "ARGS"` (the
//! stress-ng arguments), `--no-stress`, `--out DIR` (default `benches/results`).
#[cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]
mod harness;

#[cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]
fn main() {
    harness::main();
}

/// The checker builds (loom, shuttle) compile the harness out.
#[cfg(not(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle")))))]
fn main() {}
