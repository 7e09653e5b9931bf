//! Verification of tensorlane's core: concurrency scenarios run under std threads,
//! loom, shuttle and Miri, and the *canaries* that prove each checker can fail.
//!
//! # Scenarios
//! `scenarios/mod.rs` holds the test bodies. Each suite (`tests/threads.rs`,
//! `tests/loom.rs`, `tests/shuttle.rs`) brings its own `thread` module into scope and
//! `include!`s the file, so one body runs under every checker. The bodies are generic
//! over the *roles* (writer, reader, producer, joiner) defined in [`roles`]; the suites
//! run them with the real core implementation, and the canary tests run the very same
//! bodies with one role replaced by a broken peer.
//!
//! # Canaries
//! A canary is a deliberately broken peer ([`canaries`]) that speaks to the real
//! structure through the binary layout, as another process would, with one protocol
//! step wrong. It lives here, not in core: the production code paths carry no mutants
//! and no mutation switches. Each checker must report the canary's scenario as failing;
//! a checker that stops seeing the bug fails the suite (`#[should_panic]` tests for
//! loom and shuttle, an expected-failure run for Miri in `.ci/miri-canary`).

pub mod canaries;
pub mod futex_canaries;
pub mod hostile;
pub mod hostile_gpu;
pub mod loans;
pub mod roles;
pub mod sync;
pub mod takeover;
