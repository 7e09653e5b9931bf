//! The C ABI of tensorlane's shared-memory lanes: `libtensorlane.so` /
//! `libtensorlane.a` (installed by `capi/install.sh`), declared by `include/tensorlane.h` (generated from this crate by
//! cbindgen) and wrapped for C++17 by `include/tensorlane.hpp`.
//!
//! Every function forwards to `tensorlane-shm`; nothing of the protocol is
//! implemented twice. The rules of the boundary, each kept in one module:
//! - every `extern "C"` function runs inside `status::call`, which catches panics
//!   and records the message of a failure for `tl_last_error_message` (`status`);
//! - pointers from C are checked before use: null, alignment of typed pointers,
//!   buffer length equal to the lane's tensor bytes, UTF-8 names (`args`);
//! - handles are tokens looked up in a registry, never addresses: a closed handle
//!   is never reused, and a call on one is `TL_ERR_CLOSED`, not a use after free
//!   (`handle`);
//! - the C structs (`tl_spec`, `tl_frame`, `tl_subscribe_options`) and their
//!   conversions live in `types`, the create and open options (`tl_create_options`,
//!   `tl_open_options`, versioned by their `struct_size`) in `options`; the lanes'
//!   functions in `stream`, `queue` (with loans that span calls) and `topic`, and the
//!   metadata and clock every handle reads back in `metadata`.
//!
//! Under the checkers' features (`loom`, `shuttle`) the lanes are compiled out, and
//! so is this crate's content.
#![cfg(not(any(feature = "loom", feature = "shuttle")))]
#![allow(non_camel_case_types)]

mod args;
mod handle;
pub mod lanes;
pub mod metadata;
pub mod options;
pub mod queue;
pub mod status;
pub mod stream;
pub mod topic;
pub mod types;

pub use lanes::*;
pub use metadata::*;
pub use options::*;
pub use queue::*;
pub use status::*;
pub use stream::*;
pub use topic::*;
pub use types::*;
