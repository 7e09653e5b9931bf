//! tensorlane-core: the lock-free algorithms of tensorlane over memory shared between
//! threads or processes.
//!
//! Three structures, each a `#[repr(C)]` control block plus a body of 64-bit words
//! placed in any memory ([`Region`]):
//! - [`Seqlock`]: an N-slot seqlock register holding the latest value of a stream;
//! - [`Spsc`]: a lossless single-producer single-consumer ring with zero-copy loans;
//! - [`Broadcast`]: one producer and up to M lossless or lossy subscribers, each
//!   with its own head, missed counter and lag bound.
//!
//! The shm layer names them by what they carry: a *stream* is a register, a *queue*
//! an SPSC ring, a *topic* a broadcast ring (the Vocabulary table of the project's
//! README ties every name together). Core positions count from 0; lanes number items
//! from 1 (`seq = position + 1`).
//!
//! # Rules every structure follows
//! - One writer per structure (producer, writer, consumer), enforced by a claim word:
//!   a second claimant gets an error.
//! - Geometry (slot count, slot size, capacity, subscriber count) is validated once,
//!   kept in process-local memory and never re-read from shared memory. Every index
//!   derived from a shared counter is masked or reduced with the local geometry, so
//!   nothing another process writes can make an operation touch memory outside the
//!   region. Impossible values are reported as [`Corruption`], never trusted.
//! - Payload that a reader may read while a writer writes it is accessed as relaxed
//!   atomic words ordered by fences around sequence stamps; plain byte slices are
//!   handed out only where the protocol excludes concurrent access (SPSC loans), and
//!   only over an [`Exclusive`] region, whose unsafe constructor is the caller's
//!   promise that nothing outside the protocol writes the memory.
//! - Operations return at once: `Full`, `Empty`, `Stalled` after a bounded number of
//!   attempts. Waiting is the caller's business.
//!
//! # Checkers
//! With feature `loom` (or `shuttle`) every atomic, fence and spin hint comes from that
//! checker (see `sync.rs`), and regions are built on the heap ([`HeapRegion`]); the
//! unsafe cast from mapped bytes ([`attach`]) exists only without them.
//!
//! The crate is `no_std` and does not allocate (feature `alloc` adds [`HeapRegion`]).

#![no_std]
#![cfg_attr(docsrs, feature(doc_auto_cfg))]

// The shared layout is little-endian: counters and stamps are stored as native words.
#[cfg(target_endian = "big")]
compile_error!(
    "tensorlane's shared-memory layout is little-endian; big-endian hosts are not supported"
);

// Every shared word is an `AtomicU64`: targets without 64-bit atomics cannot take part.
#[cfg(not(target_has_atomic = "64"))]
compile_error!(
    "tensorlane-core needs 64-bit atomics (`target_has_atomic = \"64\"`); this target has none"
);

#[cfg(feature = "alloc")]
extern crate alloc;
#[cfg(any(test, feature = "loom", feature = "shuttle"))]
extern crate std;

mod broadcast;
mod claim;
pub mod copy;
mod error;
pub mod futex;
mod line;
mod region;
mod seqlock;
mod slot;
mod spsc;
mod sync;
mod words;

#[cfg(all(test, not(any(feature = "loom", feature = "shuttle"))))]
mod tests;

#[cfg(all(test, not(any(feature = "loom", feature = "shuttle"))))]
mod broadcast_tests;

#[cfg(all(test, not(any(feature = "loom", feature = "shuttle"))))]
mod batch_tests;

#[cfg(all(test, not(miri), not(any(feature = "loom", feature = "shuttle"))))]
mod copy_tests;

#[cfg(all(test, not(any(feature = "loom", feature = "shuttle"))))]
mod futex_tests;

pub use broadcast::{
    entry, Broadcast, BroadcastGeometry, BroadcastHeader, BroadcastProducer, BroadcastSubscriber,
    EntryError, Mode, PublishError, ReadAtError, Received, RecvError, SubscribeError,
    SubscribeOptions, SubscriberInfo, DEFAULT_RECV_ATTEMPTS, ENTRY_WORDS, MAX_SUBSCRIBERS,
};
pub use claim::ClaimError;
pub use error::{Corruption, GeometryError};
pub use line::{Line, LINE_BYTES, LINE_WORDS};
#[cfg(not(any(feature = "loom", feature = "shuttle")))]
pub use region::attach;
#[cfg(feature = "alloc")]
pub use region::HeapRegion;
pub use region::{AttachError, ControlBlock, Exclusive, Parts, Region};
pub use seqlock::{
    RangeReadError, ReadError, ReadInfo, Seqlock, SeqlockGeometry, SeqlockHeader, SeqlockReader,
    SeqlockWriter, WriteError, DEFAULT_READ_ATTEMPTS, MAX_REGISTER_SLOTS,
};
/// The SPSC loans' byte views under loom and shuttle (backed by the slot's words).
#[cfg(any(feature = "loom", feature = "shuttle"))]
pub use slot::checked_view::{LoanBytes, LoanBytesMut};
pub use slot::{load_bytes, store_bytes, LENGTH_WORD, MAX_SLOT_BYTES, PAYLOAD_WORD, STAMP_WORD};
pub use spsc::{
    PopError, Popped, PushError, Spsc, SpscConsumer, SpscDrain, SpscDrained, SpscGeometry,
    SpscHeader, SpscLoan, SpscPeek, SpscProducer, MAX_RING_CAPACITY,
};

/// The futex word's atomic ([`futex`]): `core`'s `AtomicU32`, or the checker's.
pub use sync::AtomicU32;
/// The atomic word of every control block and body: `core`'s `AtomicU64`, or the
/// checker's under `loom` / `shuttle`.
pub use sync::AtomicU64;
pub use words::ReadWords;
