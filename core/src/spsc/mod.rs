//! The SPSC ring: a lossless bounded queue with one producer and one consumer.
//!
//! # Protocol
//! Positions are unbounded `u64` counters; position `p` lives in slot `p & (C - 1)`.
//! The producer owns `tail` (next position to fill), the consumer owns `head` (next
//! position to take); each keeps a cached copy of the other's counter and reloads it
//! only when the cache says full or empty (the rtrb scheme).
//! - push: if `tail - head == C` the ring is full; otherwise write slot `tail`
//!   (length and payload), then `tail := tail + 1` with release;
//! - pop: if `head == tail` the ring is empty; otherwise load slot `head`, then
//!   `head := head + 1` with release.
//! - batches ([`SpscProducer::push_batch`], [`SpscConsumer::pop_batch`],
//!   [`SpscConsumer::drain`]): the same, for `n` slots, with one release store of
//!   `tail := tail + n` (or `head := head + n`) after all of them.
//!
//! # Invariants
//! - Items come out once each, in the order they went in; none is lost while the ring
//!   is used through this API.
//! - The producer never writes a slot the consumer may still read, and the consumer
//!   never reads a slot the producer may still write: a slot is handed over by the
//!   release store of a counter and taken by the acquire load of that counter. This
//!   exclusion is what lets the zero-copy loans ([`SpscProducer::loan`],
//!   [`SpscConsumer::peek`]) be plain byte slices on a ring built over an
//!   [`Exclusive`](crate::Exclusive) region (whose promise is that nothing outside
//!   the protocol writes the memory); over any other region they offer atomic words
//!   only.
//! - A `tail - head` outside `0..=C` is reported as [`Corruption`] and never used as
//!   an index, nor kept: a handle caches the other side's counter only after it was
//!   found possible, so a counter restored after a corruption resumes the ring.
//! - An item whose length word exceeds the slot size is removed and reported as
//!   [`Corruption`] by `pop` and `peek` alike: the ring moves past it.
//!
//! # Files
//! This file holds the header, the geometry and the re-exports; `ring.rs` the [`Spsc`]
//! view (inspection, the claims and take-overs of both roles); `producer.rs` pushes and
//! the producer's loan; `consumer.rs` pops and the consumer's peek; `batch.rs` the
//! batches (push and pop of several items with one store of a counter) and the drain.
//!
//! # Example
//! ```
//! # #[cfg(not(any(feature = "loom", feature = "shuttle")))] {
//! use tensorlane_core::{Exclusive, HeapRegion, Spsc, SpscGeometry, SpscHeader, PopError};
//! let geometry = SpscGeometry::new(4, 32).unwrap();
//! let region = HeapRegion::<SpscHeader>::new(geometry.body_words());
//! // SAFETY: this ring is the only user of `region`, through its handles.
//! let ring = Spsc::new(unsafe { Exclusive::new(&region) }, geometry).unwrap();
//! let mut producer = ring.producer(1).unwrap();
//! let mut consumer = ring.consumer(2).unwrap();
//!
//! producer.push(b"hello").unwrap();
//! let mut loan = producer.loan().unwrap();
//! loan.bytes_mut()[..5].copy_from_slice(b"world");
//! loan.commit(5).unwrap();
//!
//! let mut buf = [0u8; 32];
//! let item = consumer.pop(&mut buf).unwrap();
//! assert_eq!(&buf[..item.len], b"hello");
//! let peeked = consumer.peek().unwrap();
//! assert_eq!(peeked.bytes(), b"world");
//! peeked.release();
//! assert_eq!(consumer.pop(&mut buf), Err(PopError::Empty));
//! # }
//! ```

use crate::error::{check_count, Corruption, GeometryError};
use crate::line::Line;
use crate::region::{sealed, ControlBlock};
use crate::slot::{slot_stride, Slot};
use crate::sync::AtomicU64;

mod batch;
mod consumer;
mod producer;
mod ring;

pub use batch::{SpscDrain, SpscDrained};
pub use consumer::{PopError, Popped, SpscConsumer, SpscPeek};
pub use producer::{PushError, SpscLoan, SpscProducer};
pub use ring::Spsc;

/// Largest ring capacity.
pub const MAX_RING_CAPACITY: usize = 1 << 24;

/// The SPSC control block: 384 bytes, zero when fresh.
#[repr(C)]
#[derive(Debug, Default)]
pub struct SpscHeader {
    /// Next position the producer fills (producer-owned).
    pub tail: Line<AtomicU64>,
    /// Next position the consumer takes (consumer-owned).
    pub head: Line<AtomicU64>,
    /// Owner tokens: producer, consumer.
    pub owners: Line<[AtomicU64; 2]>,
}

impl sealed::Sealed for SpscHeader {}
impl ControlBlock for SpscHeader {}

#[cfg(not(any(feature = "loom", feature = "shuttle")))]
const _: () = {
    assert!(core::mem::size_of::<SpscHeader>() == 384);
    assert!(core::mem::align_of::<SpscHeader>() == 128);
    assert!(core::mem::offset_of!(SpscHeader, tail) == 0);
    assert!(core::mem::offset_of!(SpscHeader, head) == 128);
    assert!(core::mem::offset_of!(SpscHeader, owners) == 256);
};

const PRODUCER: usize = 0;
const CONSUMER: usize = 1;

/// Capacity and slot size of a ring, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpscGeometry {
    capacity: usize,
    slot_bytes: usize,
    stride: usize,
    body_words: usize,
}

impl SpscGeometry {
    /// `capacity` slots (a power of two, 1 to [`MAX_RING_CAPACITY`]) of `slot_bytes`
    /// payload bytes each.
    pub fn new(capacity: usize, slot_bytes: usize) -> Result<Self, GeometryError> {
        check_count("ring capacity", capacity, MAX_RING_CAPACITY)?;
        if !capacity.is_power_of_two() {
            return Err(GeometryError::NotPowerOfTwo {
                found: capacity as u64,
            });
        }
        let stride = slot_stride(slot_bytes).ok_or(GeometryError::SlotTooLarge {
            found: slot_bytes as u64,
        })?;
        let body_words = stride
            .checked_mul(capacity)
            .ok_or(GeometryError::Overflow)?;
        body_words.checked_mul(8).ok_or(GeometryError::Overflow)?;
        Ok(SpscGeometry {
            capacity,
            slot_bytes,
            stride,
            body_words,
        })
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Payload bytes per slot.
    pub fn slot_bytes(&self) -> usize {
        self.slot_bytes
    }

    /// Words per slot.
    pub fn slot_stride(&self) -> usize {
        self.stride
    }

    /// Words the body must hold.
    pub fn body_words(&self) -> usize {
        self.body_words
    }

    fn slot<'a>(&self, body: &'a [AtomicU64], position: u64) -> Slot<'a> {
        // Masked with the local capacity: in bounds whatever `position` is.
        let index = (position & (self.capacity as u64 - 1)) as usize;
        Slot::at(body, 0, self.stride, index)
    }

    /// `tail - head` if it lies in `0..=capacity`.
    fn occupancy(&self, head: u64, tail: u64) -> Result<u64, Corruption> {
        let used = tail.wrapping_sub(head);
        if used > self.capacity as u64 {
            return Err(Corruption::Indices { head, tail });
        }
        Ok(used)
    }
}
