//! tensorlane-benches: micro-benchmarks of the core and the cross-process comparison
//! harness (`compare`) that measures tensorlane against the physical floor and the
//! peers (iceoryx2, pyshmem) in one run.
//!
//! - [`clock`]: `CLOCK_MONOTONIC` nanoseconds, comparable between processes.
//! - [`cpu`]: pinning a process to one CPU.
//! - [`stats`]: percentiles and medians of samples.
//! - [`floor`]: the floors, a cache-line ping-pong between two processes over a
//!   shared mapping and `memcpy` of each payload size.
//! - [`link`]: one direction of a ping-pong (send a counter, poll for it), the
//!   interface every measured transport implements.
//! - [`lanes`]: tensorlane's transports (queue copy and loan, topic lossless and
//!   lossy), the stream's blocking wake-up, the stream's write+read throughput and
//!   the publish cost against the subscriber count.
//! - `ice` (feature `iceoryx2`): iceoryx2 publish-subscribe as a [`link`].
//! - [`pyshmem`]: runs the pyshmem measurements in a virtual environment.
//! - [`scan`]: the publish cost against the number of joined subscribers (the
//!   broadcast table scan).
//! - [`jitter`]: the 1 kHz control loop of the `jitter` harness (writer on
//!   deadlines, a blocked and a polling reader), `jitter_ice` (feature `iceoryx2`)
//!   its iceoryx2 transport, and [`histogram`] the latency histogram it draws.
//!
//! The crate compiles to nothing under the checker features (`loom`, `shuttle`),
//! like the shm layer it measures.
#![cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]

pub mod clock;
pub mod cpu;
pub mod floor;
pub mod histogram;
#[cfg(feature = "iceoryx2")]
pub mod ice;
pub mod jitter;
#[cfg(feature = "iceoryx2")]
pub mod jitter_ice;
pub mod lanes;
pub mod link;
pub mod pyshmem;
pub mod scan;
pub mod stats;
