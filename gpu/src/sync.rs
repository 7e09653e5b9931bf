//! The one place the slot protocol's fences and orderings come from: `std` in
//! production, loom's or shuttle's under `--features loom` / `--features shuttle`
//! (priority loom > shuttle > std, as in the core), so that [`crate::protocol`] is the
//! code the checkers explore. The atomic words themselves are the core's
//! ([`tensorlane_core::AtomicU64`]), which follow the same features.

#[cfg(feature = "loom")]
pub(crate) use loom::sync::atomic::{fence, Ordering};

#[cfg(all(feature = "shuttle", not(feature = "loom")))]
pub(crate) use shuttle::sync::atomic::{fence, Ordering};

#[cfg(not(any(feature = "loom", feature = "shuttle")))]
pub(crate) use std::sync::atomic::{fence, Ordering};
