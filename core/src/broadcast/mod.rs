//! The broadcast ring: one producer, up to M subscribers, each with its own head.
//!
//! Lossless subscribers hold the producer back; lossy ones never do: they detect
//! that a slot was overwritten, skip forward and count what they missed.
//!
//! # Shared state
//! - `tail`: next position the producer writes (producer-owned);
//! - `epoch`: bumped by every lossless join (see *Joining* below);
//! - a subscriber table of M entries of 16 words: `state` (generation and one of
//!   FREE, JOINING, ACTIVE, EVICTED), `head`, `mode`, `max_lag`, `missed`, `owner`;
//! - C slots (C a power of two). Position `p` lives in slot `p & (C - 1)`; its stamp
//!   is `2p + 1` while the producer writes it and `2p + 2` once complete.
//!
//! # Publishing position P
//! 1. SeqCst fence, then load `epoch`. If it changed since the last scan, or if the
//!    cached minimum lossless head `m` has `P - m >= C`, rescan the table: the minimum
//!    head over ACTIVE lossless entries. A rescan for the second reason alone looks
//!    only at the entries up to the last ACTIVE lossless one the previous scan found:
//!    an entry becomes ACTIVE lossless only by a join, whose epoch bump forces a scan
//!    of the whole table. So in steady state a publish's work grows with the entries
//!    in use, not with the table's size. An ACTIVE lossless entry whose head is ahead
//!    of `P` is impossible: the scan evicts it (a compare-exchange against the state
//!    word it loaded, generation included), counts it
//!    ([`BroadcastProducer::evicted_corrupt`]) and goes on, so that one corrupt entry
//!    does not stop the producer. If some entry has `P - head >= C`, return
//!    [`PublishError::Full`] naming it; the producer remembers the state word the scan
//!    saw there for [`BroadcastProducer::evict_blocker`].
//! 2. Stamp `2P + 1`, release fence, length and payload (relaxed), stamp `2P + 2`
//!    (relaxed), `tail := P + 1` (release: it orders the item for every reader).
//!
//! Publishing reads no subscriber state unless the ring is nearly full or a lossless
//! subscriber joined, so its cost does not grow with the number of lossy subscribers.
//!
//! # Joining
//! A joiner takes a FREE entry (CAS to JOINING, next generation), writes mode and
//! `head := tail - history`, and stores ACTIVE (release). A lossless joiner then bumps
//! `epoch`, issues a SeqCst fence and reloads `tail = t`. The two SeqCst fences form a
//! store-buffering pair: either the producer's epoch load before writing position
//! `t + 1` sees the bump (and the rescan sees the new head), or the joiner's load saw
//! that later tail. So only position `t` can be written without regard to the new
//! head; it overwrites `t - C`, and the joiner moves its head up to `t - C + 1` if it
//! was lower (the lost history is reported).
//!
//! # Leaving and eviction
//! A subscriber leaves by storing FREE (release): the producer, which loads states with
//! acquire, then ignores the entry, and every read the subscriber made happens-before
//! the producer's later overwrites. A supervisor may [`Broadcast::evict`] an ACTIVE
//! subscriber (ACTIVE -> EVICTED): the producer stops waiting for it, and the evicted
//! subscriber, if it still runs, gets [`RecvError::Evicted`]. [`Broadcast::reclaim`]
//! frees an entry whose owner is known to be dead (JOINING, ACTIVE or EVICTED ->
//! FREE); the `_generation` variants act only if no one joined through the entry
//! since the caller looked at it.
//! Generations in the state word stop a stale subscriber from freeing an entry that
//! was reclaimed and reused.
//!
//! A producer held back by a subscriber whose owner turns out to be dead evicts it
//! with [`BroadcastProducer::evict_blocker`]: a compare-exchange against the state
//! word its scan saw, never a fresh load. Between the scan and the eviction a new
//! subscriber may take the entry's role lock, reclaim the entry and join through it;
//! its join changed the generation, so it is not evicted.
//!
//! # What a handle keeps from shared memory
//! A value loaded from shared memory is validated before a handle keeps it: the
//! lossless subscriber's cached tail (`head < tail <= head + C`, and dropped when a
//! slot's stamp refutes it), the lossy subscriber's head (moved only once a slot's
//! stamp confirmed the position it moves to), the producer's minimum head (impossible
//! heads are evicted, never cached). So after a corrupt word is reported and
//! restored, each handle resumes where it was.
//!
//! # Invariants
//! - A lossless subscriber that is not evicted receives every position from its join
//!   head on, once each, in order, untorn.
//! - A lossy subscriber receives strictly increasing positions, each untorn; every
//!   position it skipped is counted in its drop counter.
//! - Every read validates the slot stamp, so a lossy or evicted reader racing the
//!   producer discards its copy instead of returning torn data; payload words are
//!   relaxed atomics, so such a race is never a data race.
//! - Indices from shared memory are masked with the local capacity; impossible heads,
//!   tails, stamps and lengths are reported as [`Corruption`](crate::Corruption).
//!
//! # Files
//! This file holds the header, the entry layout, the stamps and the geometry;
//! `options.rs` how a subscriber asks to join; `table.rs` the [`Broadcast`] view
//! (inspection, joins, eviction, the producer's claim); `producer.rs` publishing and
//! the table scan; `subscriber.rs` receives, batches and leaving; `read.rs` the
//! validated copy of a slot that `read_at` and the subscribers make.
//!
//! # Example
//! ```
//! # #[cfg(not(any(feature = "loom", feature = "shuttle")))] {
//! use tensorlane_core::{
//!     Broadcast, BroadcastGeometry, BroadcastHeader, HeapRegion, Mode, RecvError,
//!     SubscribeOptions,
//! };
//! let geometry = BroadcastGeometry::new(4, 8, 16).unwrap();
//! let region = HeapRegion::<BroadcastHeader>::new(geometry.body_words());
//! let ring = Broadcast::new(&region, geometry).unwrap();
//! let mut producer = ring.producer(1).unwrap();
//! let mut logger = ring.subscribe(SubscribeOptions::lossless(), 2).unwrap();
//! let mut display = ring.subscribe(SubscribeOptions::lossy(1), 3).unwrap();
//!
//! for i in 0u64..3 {
//!     producer.publish(&i.to_le_bytes()).unwrap();
//! }
//! let mut buf = [0u8; 8];
//! // The lossy subscriber with max lag 1 skips to the newest item.
//! let got = display.recv(&mut buf).unwrap();
//! assert_eq!((got.position, got.missed), (2, 2));
//! // The lossless one sees everything, and holds the producer back.
//! assert_eq!(logger.recv(&mut buf).unwrap().position, 0);
//! producer.publish(b"3").unwrap();
//! producer.publish(b"4").unwrap();
//! assert!(producer.publish(b"5").is_err()); // full: the logger is 4 behind
//! assert_eq!(display.recv(&mut buf).unwrap().position, 4);
//! assert_eq!(display.recv(&mut buf), Err(RecvError::Empty));
//! # }
//! ```

use crate::error::{check_count, GeometryError};
use crate::line::{Line, LINE_WORDS};
use crate::region::{sealed, ControlBlock};
use crate::slot::{slot_stride, Slot};
use crate::sync::AtomicU64;

mod options;
mod producer;
mod read;
mod subscriber;
mod table;

pub use options::{Mode, SubscribeOptions};
pub use producer::{BroadcastProducer, PublishError};
pub use read::ReadAtError;
pub use subscriber::{BroadcastSubscriber, Received, RecvError};
pub use table::{Broadcast, EntryError, SubscribeError, SubscriberInfo};

/// Largest subscriber table.
pub const MAX_SUBSCRIBERS: usize = 4096;

/// Copies a lossy subscriber attempts per receive before [`RecvError::Stalled`].
pub const DEFAULT_RECV_ATTEMPTS: u32 = 64;

/// Words per subscriber table entry (one line).
pub const ENTRY_WORDS: usize = LINE_WORDS;

/// Word indices inside a subscriber table entry.
pub mod entry {
    /// Generation (bits 2..64) and state (bits 0..2).
    pub const STATE: usize = 0;
    /// The subscriber's next position.
    pub const HEAD: usize = 1;
    /// [`MODE_LOSSLESS`] or [`MODE_LOSSY`].
    pub const MODE: usize = 2;
    /// A lossy subscriber's lag bound.
    pub const MAX_LAG: usize = 3;
    /// Positions the subscriber missed (lossy skips, history lost at join).
    pub const MISSED: usize = 4;
    /// The subscriber's owner token.
    pub const OWNER: usize = 5;

    /// Entry unused.
    pub const FREE: u64 = 0;
    /// Entry claimed by a joiner that is not active yet.
    pub const JOINING: u64 = 1;
    /// Subscriber active.
    pub const ACTIVE: u64 = 2;
    /// Subscriber evicted by a supervisor; the producer ignores it.
    pub const EVICTED: u64 = 3;
    /// Mask of the state bits.
    pub const STATE_MASK: u64 = 3;

    /// Mode code of a lossless subscriber.
    pub const MODE_LOSSLESS: u64 = 1;
    /// Mode code of a lossy subscriber.
    pub const MODE_LOSSY: u64 = 2;
}

/// The broadcast control block: 384 bytes, zero when fresh.
#[repr(C)]
#[derive(Debug, Default)]
pub struct BroadcastHeader {
    /// Next position the producer writes.
    pub tail: Line<AtomicU64>,
    /// Count of lossless joins; a change tells the producer to rescan the table.
    pub epoch: Line<AtomicU64>,
    /// Owner token of the producer; 0 when free.
    pub producer: Line<AtomicU64>,
}

impl sealed::Sealed for BroadcastHeader {}
impl ControlBlock for BroadcastHeader {}

#[cfg(not(any(feature = "loom", feature = "shuttle")))]
const _: () = {
    assert!(core::mem::size_of::<BroadcastHeader>() == 384);
    assert!(core::mem::align_of::<BroadcastHeader>() == 128);
    assert!(core::mem::offset_of!(BroadcastHeader, tail) == 0);
    assert!(core::mem::offset_of!(BroadcastHeader, epoch) == 128);
    assert!(core::mem::offset_of!(BroadcastHeader, producer) == 256);
};

fn writing_stamp(position: u64) -> u64 {
    position.wrapping_mul(2).wrapping_add(1)
}

fn done_stamp(position: u64) -> u64 {
    position.wrapping_mul(2).wrapping_add(2)
}

/// `a` comes after `b` in wrapping order.
fn is_after(a: u64, b: u64) -> bool {
    (a.wrapping_sub(b) as i64) > 0
}

/// Capacity, slot size and subscriber table size of a broadcast ring, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BroadcastGeometry {
    capacity: usize,
    slot_bytes: usize,
    max_subscribers: usize,
    stride: usize,
    slots_base: usize,
    body_words: usize,
}

impl BroadcastGeometry {
    /// `capacity` slots (a power of two up to [`crate::MAX_RING_CAPACITY`]) of
    /// `slot_bytes` bytes, and a table of `max_subscribers` entries (1 to
    /// [`MAX_SUBSCRIBERS`]).
    pub fn new(
        capacity: usize,
        slot_bytes: usize,
        max_subscribers: usize,
    ) -> Result<Self, GeometryError> {
        check_count("ring capacity", capacity, crate::MAX_RING_CAPACITY)?;
        if !capacity.is_power_of_two() {
            return Err(GeometryError::NotPowerOfTwo {
                found: capacity as u64,
            });
        }
        check_count("subscribers", max_subscribers, MAX_SUBSCRIBERS)?;
        let stride = slot_stride(slot_bytes).ok_or(GeometryError::SlotTooLarge {
            found: slot_bytes as u64,
        })?;
        let slots_base = max_subscribers * ENTRY_WORDS;
        let body_words = stride
            .checked_mul(capacity)
            .and_then(|w| w.checked_add(slots_base))
            .ok_or(GeometryError::Overflow)?;
        body_words.checked_mul(8).ok_or(GeometryError::Overflow)?;
        Ok(BroadcastGeometry {
            capacity,
            slot_bytes,
            max_subscribers,
            stride,
            slots_base,
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

    /// Entries in the subscriber table.
    pub fn max_subscribers(&self) -> usize {
        self.max_subscribers
    }

    /// Words per slot.
    pub fn slot_stride(&self) -> usize {
        self.stride
    }

    /// Word offset of slot 0 in the body (the table comes first).
    pub fn slots_offset(&self) -> usize {
        self.slots_base
    }

    /// Words the body must hold.
    pub fn body_words(&self) -> usize {
        self.body_words
    }

    fn slot<'a>(&self, body: &'a [AtomicU64], position: u64) -> Slot<'a> {
        // Masked with the local capacity: in bounds whatever `position` is.
        let index = (position & (self.capacity as u64 - 1)) as usize;
        Slot::at(body, self.slots_base, self.stride, index)
    }

    /// Entry `index`; the caller guarantees `index < max_subscribers`.
    fn entry<'a>(&self, body: &'a [AtomicU64], index: usize) -> &'a [AtomicU64] {
        let start = index * ENTRY_WORDS;
        &body[start..start + ENTRY_WORDS]
    }
}
