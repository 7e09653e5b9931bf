//! tensorlane-model: the executable specification of tensorlane's algorithms.
//!
//! The core crate (`tensorlane-core`) implements three lock-free structures over
//! shared memory. This crate says, in plain sequential code, what they must do, and
//! checks that they do it:
//!
//! - [`register`], [`spsc`], [`broadcast`]: sequential reference models of the N-slot
//!   seqlock register, the SPSC ring and the broadcast ring. Each one is what the
//!   structure looks like to a single thread that performs every operation itself.
//!   They use the core's own result and error types, so a model answer and a core
//!   answer compare with `==`.
//! - [`ops`]: an operation alphabet per structure and byte decoders that turn any
//!   byte string into a valid operation sequence (for proptest and cargo-fuzz).
//! - `harness` (not built with the `loom` or `shuttle` features): runs an operation
//!   sequence against a real core structure and its model side by side, in one
//!   thread, and reports the first difference as a `Mismatch`.
//! - [`history`]: checkers for histories observed in concurrent or cross-process
//!   runs (loom, shuttle, several OS processes), where no sequential model applies
//!   step by step but every observation must still be explainable.
//!
//! # Features
//! `loom` and `shuttle` build the core against the checkers' atomics. The models,
//! the operation alphabet and the history checkers stay available (they hold no
//! atomics); the harness is left out, because checker atomics panic when used
//! outside the checker's runtime.

pub mod broadcast;
pub mod cursor;
#[cfg(not(any(feature = "loom", feature = "shuttle")))]
pub mod harness;
pub mod history;
pub mod ops;
pub mod register;
pub mod spsc;
pub mod words;

pub use broadcast::{BroadcastModel, SubscriberModel};
pub use cursor::ByteCursor;
#[cfg(not(any(feature = "loom", feature = "shuttle")))]
pub use harness::{
    run_broadcast_bytes, run_broadcast_ops, run_register_bytes, run_register_ops, run_spsc_bytes,
    run_spsc_ops, run_spsc_ops_against, Mismatch, SpscSpec,
};
pub use history::{
    check_lossless, check_lossless_complete, check_lossy, check_register_reader, exact_values,
    Delivery, HistoryError, RegisterObservation,
};
pub use ops::{
    decode_broadcast_case, decode_broadcast_ops, decode_register_case, decode_register_ops,
    decode_spsc_case, decode_spsc_ops, BroadcastOp, BufLen, LoanAccess, PeekAccess, RegisterOp,
    SpscOp,
};
pub use register::{RegisterModel, RegisterReaderModel};
pub use spsc::SpscModel;
