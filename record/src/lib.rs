//! tensorlane-record: lanes recorded into MCAP files, and replayed from them.
//!
//! - [`record::record`] opens lanes as a reader that never slows their writer (a
//!   lossy topic subscriber, a stream's `read_new`; lossless on request) and writes
//!   every frame it gets, with its sequence number, frame id, timestamp and missed
//!   count, as one MCAP message; the lane's description (kind, tensor, capacity,
//!   clock, metadata) is the channel's metadata.
//! - [`replay::replay`] creates the lanes again and writes the frames with their
//!   recorded frame ids at their recorded times (or scaled, looped, or at once).
//! - [`encoding`] is the message and channel encoding (docs/RECORDING.md);
//!   [`image`] the optional `foxglove.RawImage` channels of `u8` images.
//!
//! The file is written in uncompressed chunks, cut at least every chunk interval:
//! a recorder killed mid-file leaves a file whose complete chunks every MCAP reader
//! reads.
//!
//! When the workspace is built for a model checker (features `loom`, `shuttle`) the
//! lanes are compiled out, and so is this crate.
#![cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]

pub mod encoding;
pub mod image;
pub mod record;
pub mod replay;
pub mod stop;
