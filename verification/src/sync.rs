//! The checker's fence for the broken peers, mirroring the core's private shim
//! (loom > shuttle > core).

#[cfg(feature = "loom")]
pub use loom::sync::atomic::fence;
#[cfg(all(feature = "shuttle", not(feature = "loom")))]
pub use shuttle::sync::atomic::fence;
#[cfg(not(any(feature = "loom", feature = "shuttle")))]
pub use std::sync::atomic::fence;
pub use std::sync::atomic::Ordering;
