//! tensorlane-shm: named tensor lanes between processes over POSIX shared memory.
//!
//! Three lane kinds, each one segment `/dev/shm/tensorlane.<name>` holding a header
//! (tensor metadata, geometry, checksum; see docs/LAYOUT.md) and one structure of
//! `tensorlane-core`:
//! - [`StreamWriter`] / [`StreamReader`]: the latest value (N-slot seqlock register);
//! - [`QueueProducer`] / [`QueueConsumer`]: a lossless queue, with zero-copy loans;
//! - [`TopicPublisher`] / [`TopicSubscriber`]: broadcast to lossless and lossy
//!   subscribers, with history.
//!
//! The README's Vocabulary table ties these names to the core's structures and states
//! the numbering (`Frame::seq` from 1 on every kind) and what `missed` counts.
//!
//! Everything read from a segment is untrusted: headers are validated with checked
//! arithmetic before use, and the core validates every shared index. Roles are owned
//! through kernel-released locks, so a crashed peer is detected without pid polling:
//! readers of a stream whose writer died get the last complete value and
//! [`LaneError::WriterGone`], a new writer can [`StreamWriter::take_over`], and a
//! publisher blocked by a dead lossless subscriber evicts it.
//!
//! Blocking operations (`read_new`, `push`, `pop`, `publish`, `recv`, and their
//! `_timeout` and `_deadline` forms; `try_` forms never block) spin briefly, then
//! sleep on a shared futex in the segment; a writer with nobody waiting makes no
//! system call.
#![cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]

#[cfg(feature = "ndarray")]
pub mod array;
mod clock;
pub mod conformance;
mod dtype;
mod element;
mod error;
mod futex;
pub mod header;
mod lane;
pub mod metadata;
mod name;
pub mod peek;
mod queue;
mod resident;
pub mod segment;
mod stream;
mod topic;

pub use clock::Clock;
pub use dtype::{DType, SpecError, TensorSpec, MAX_DIMS};
pub use element::Element;
pub use error::LaneError;
pub use header::{HeaderInfo, Kind};
pub use lane::{Frame, ShmRegion, Wait};
pub use metadata::{Metadata, MetadataError, MAX_METADATA_BYTES};
pub use name::{LaneName, NameError, MAX_NAME_LEN};
pub use queue::{HeldSlot, QueueConsumer, QueueProducer};
pub use segment::{CreateOptions, OpenOptions, Segment};
pub use stream::block::BlockError;
pub use stream::{StreamReader, StreamWriter};
pub use tensorlane_core::{Mode, SubscribeOptions};
pub use topic::{TopicPublisher, TopicSubscriber};

/// The examples of docs/REALTIME.md, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../../docs/REALTIME.md")]
struct RealtimeExamples;
