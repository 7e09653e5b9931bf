//! The one place atomics come from.
//!
//! Every algorithm in this crate imports `AtomicU64`, `AtomicU32`, `fence`, `Ordering` and
//! [`spin_hint`] from here and nowhere else, so that the same source is compiled
//! against `core` atomics in production, against loom's model-checked atomics
//! under `--features loom`, and against shuttle's under `--features shuttle`.
//! Priority is loom > shuttle > core, so `--all-features` still builds.
//!
//! loom and shuttle atomics are not layout-compatible with `core` atomics (and loom's
//! have a non-const `new`), so code that casts mapped bytes to control blocks is
//! compiled only when neither checker is enabled (see [`crate::region::attach`]).

#[cfg(feature = "loom")]
pub use loom::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

#[cfg(all(feature = "shuttle", not(feature = "loom")))]
pub use shuttle::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

#[cfg(not(any(feature = "loom", feature = "shuttle")))]
pub use core::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

/// Called inside every retry loop. Under the checkers it yields to the scheduler, so
/// that a loop waiting for another thread does not explode the state space (loom) or
/// spin forever (shuttle); in production it is the CPU's spin-loop hint.
#[inline]
pub(crate) fn spin_hint() {
    #[cfg(feature = "loom")]
    loom::thread::yield_now();
    #[cfg(all(feature = "shuttle", not(feature = "loom")))]
    shuttle::thread::yield_now();
    #[cfg(not(any(feature = "loom", feature = "shuttle")))]
    core::hint::spin_loop();
}
