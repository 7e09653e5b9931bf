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
//!   [`Exclusive`] region (whose promise is that nothing outside the protocol writes
//!   the memory); over any other region they offer atomic words only.
//! - A `tail - head` outside `0..=C` is reported as [`Corruption`] and never used as
//!   an index, nor kept: a handle caches the other side's counter only after it was
//!   found possible, so a counter restored after a corruption resumes the ring.
//! - An item whose length word exceeds the slot size is removed and reported as
//!   [`Corruption`] by `pop` and `peek` alike: the ring moves past it.
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

use crate::claim::{self, ClaimError};
use crate::error::{check_body, check_count, Corruption, GeometryError};
use crate::line::Line;
use crate::region::{sealed, ControlBlock, Exclusive, Region};
use crate::slot::{load_bytes, load_parts, parts_len, slot_stride, store_parts, Slot};
use crate::sync::{AtomicU64, Ordering};
use crate::words::ReadWords;

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

/// A ring over a region whose body length was checked against the geometry.
#[derive(Debug, Clone)]
pub struct Spsc<R> {
    region: R,
    geometry: SpscGeometry,
}

impl<R: Region<Header = SpscHeader>> Spsc<R> {
    /// Validates the region's body against `geometry`.
    pub fn new(region: R, geometry: SpscGeometry) -> Result<Self, GeometryError> {
        check_body(geometry.body_words, region.body().len())?;
        Ok(Spsc { region, geometry })
    }

    /// The geometry.
    pub fn geometry(&self) -> SpscGeometry {
        self.geometry
    }

    /// Current `(head, tail)`, for inspection.
    pub fn positions(&self) -> (u64, u64) {
        // Relaxed: numbers to show, not a hand-over; no slot is read on their
        // strength (producer and consumer load the other side's counter Acquire).
        let header = self.region.header();
        (
            header.head.load(Ordering::Relaxed),
            header.tail.load(Ordering::Relaxed),
        )
    }

    /// Owner tokens of the producer and the consumer (0 when free).
    pub fn owners(&self) -> (u64, u64) {
        // Relaxed: tokens for inspection and for a take-over's compare-exchange,
        // which fails if the token changed; the take-over's ordering comes from the
        // claim and the caller's lock (crate::claim), not from these loads.
        let owners = &self.region.header().owners;
        (
            owners[PRODUCER].load(Ordering::Relaxed),
            owners[CONSUMER].load(Ordering::Relaxed),
        )
    }

    /// Claims the producer role for the non-zero `token`.
    pub fn producer(&self, token: u64) -> Result<SpscProducer<R>, ClaimError>
    where
        R: Clone,
    {
        // SAFETY: `previous == 0` only claims a free role; no producer is displaced.
        unsafe { self.producer_takeover(0, token) }
    }

    /// Takes the producer role over from `previous`. An item it was writing but had
    /// not pushed is discarded.
    ///
    /// # Safety
    /// The previous producer must be gone (its process exited, or its handle was
    /// dropped or forgotten and will never be used again) and its last access must
    /// happen-before this call: a live one could still be writing through a loan's
    /// byte slice while the new one writes the same slot, which is a data race. The
    /// claim word does not order a dead owner's stores (it never released the role);
    /// the shm layer gets the order from the kernel, by taking the role's lock, which
    /// the kernel releases only once the previous holder's process has stopped.
    pub unsafe fn producer_takeover(
        &self,
        previous: u64,
        token: u64,
    ) -> Result<SpscProducer<R>, ClaimError>
    where
        R: Clone,
    {
        let header = self.region.header();
        claim::takeover(&header.owners[PRODUCER], previous, token)?;
        // Own counter: the previous producer's last store of `tail`. Relaxed: the
        // claim's Acquire (a role given back) or the caller's contract (a dead owner)
        // orders that store before this load; an Acquire here would pair with nothing
        // more (weakening it was caught by no suite).
        let tail = header.tail.load(Ordering::Relaxed);
        Ok(SpscProducer {
            ring: self.clone(),
            token,
            tail,
            // Looks full, so the first push loads and validates the consumer's head.
            cached_head: tail.wrapping_sub(self.geometry.capacity as u64),
        })
    }

    /// Claims the consumer role for the non-zero `token`.
    pub fn consumer(&self, token: u64) -> Result<SpscConsumer<R>, ClaimError>
    where
        R: Clone,
    {
        // SAFETY: `previous == 0` only claims a free role; no consumer is displaced.
        unsafe { self.consumer_takeover(0, token) }
    }

    /// Takes the consumer role over from `previous`. An item it had peeked but not
    /// released is delivered again.
    ///
    /// # Safety
    /// The previous consumer must be gone and its last access must happen-before this
    /// call, as for [`producer_takeover`](Self::producer_takeover): a live one could
    /// still be reading a peeked slot's byte slice while the producer rewrites it.
    pub unsafe fn consumer_takeover(
        &self,
        previous: u64,
        token: u64,
    ) -> Result<SpscConsumer<R>, ClaimError>
    where
        R: Clone,
    {
        let header = self.region.header();
        claim::takeover(&header.owners[CONSUMER], previous, token)?;
        // Own counter; Relaxed for the reason given in `producer_takeover`.
        let head = header.head.load(Ordering::Relaxed);
        Ok(SpscConsumer {
            ring: self.clone(),
            token,
            head,
            // Looks empty, so the first pop loads and validates the producer's tail.
            cached_tail: head,
        })
    }
}

/// Why a push was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PushError {
    /// Every slot holds an item the consumer has not taken.
    Full,
    /// The item is larger than a slot.
    TooLarge {
        /// Bytes given.
        len: usize,
        /// Slot size.
        max: usize,
    },
    /// The consumer's counter is impossible.
    Corrupt(Corruption),
}

impl core::fmt::Display for PushError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PushError::Full => f.write_str("ring is full"),
            PushError::TooLarge { len, max } => {
                write!(
                    f,
                    "item of {len} bytes exceeds the slot size of {max} bytes"
                )
            }
            PushError::Corrupt(c) => c.fmt(f),
        }
    }
}

impl core::error::Error for PushError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            PushError::Corrupt(e) => Some(e),
            _ => None,
        }
    }
}

/// The ring's only producer. Dropping it gives the role back.
#[derive(Debug)]
pub struct SpscProducer<R: Region<Header = SpscHeader>> {
    ring: Spsc<R>,
    token: u64,
    tail: u64,
    cached_head: u64,
}

impl<R: Region<Header = SpscHeader>> SpscProducer<R> {
    /// Copies `item` into the ring and returns its position.
    pub fn push(&mut self, item: &[u8]) -> Result<u64, PushError> {
        self.push_parts(&[item])
    }

    /// Pushes the concatenation of `parts` as one item.
    ///
    /// # Panics
    /// If a part other than the last is not a multiple of 8 bytes long.
    pub fn push_parts(&mut self, parts: &[&[u8]]) -> Result<u64, PushError> {
        let max = self.ring.geometry.slot_bytes;
        let len = parts_len(parts);
        if len > max {
            return Err(PushError::TooLarge { len, max });
        }
        let slot = self.free_slot()?;
        slot.length().store(len as u64, Ordering::Relaxed);
        store_parts(slot.payload(), parts);
        Ok(self.publish())
    }

    /// Lends the next free slot for writing in place; [`SpscLoan::commit`] pushes it,
    /// dropping the loan pushes nothing.
    pub fn loan(&mut self) -> Result<SpscLoan<'_, R>, PushError> {
        self.free_slot()?;
        Ok(SpscLoan { producer: self })
    }

    /// Free slots, as far as this producer knows (reloads the consumer's counter).
    pub fn free(&mut self) -> Result<usize, PushError> {
        let used = self.reload_head()?;
        Ok(self.ring.geometry.capacity - used as usize)
    }

    /// Loads the consumer's `head`, checks it and only then caches it; returns the
    /// occupancy.
    fn reload_head(&mut self) -> Result<u64, PushError> {
        // Acquire pairs with the consumer's Release store of `head`: the consumer's
        // reads of every slot it released happen-before our next writes to them.
        // Guards against load buffering only (see the consumer's store of `head`):
        // no suite catches its removal, and it stays.
        let head = self.ring.region.header().head.load(Ordering::Acquire);
        let used = self
            .ring
            .geometry
            .occupancy(head, self.tail)
            .map_err(PushError::Corrupt)?;
        self.cached_head = head;
        Ok(used)
    }

    /// Position the next item will get.
    pub fn tail(&self) -> u64 {
        self.tail
    }

    fn free_slot(&mut self) -> Result<Slot<'_>, PushError> {
        // On success the slot at `tail` is free: the consumer released it.
        let capacity = self.ring.geometry.capacity as u64;
        if self.tail.wrapping_sub(self.cached_head) >= capacity && self.reload_head()? == capacity {
            return Err(PushError::Full);
        }
        Ok(self.ring.geometry.slot(self.ring.region.body(), self.tail))
    }

    fn publish(&mut self) -> u64 {
        let position = self.tail;
        self.publish_to(position.wrapping_add(1));
        position
    }
}

impl<R: Region<Header = SpscHeader>> Drop for SpscProducer<R> {
    fn drop(&mut self) {
        claim::release(&self.ring.region.header().owners[PRODUCER], self.token);
    }
}

/// A free slot lent to the producer. Only the producer can touch it until
/// [`commit`](Self::commit) hands it to the consumer; dropping the loan pushes
/// nothing (the slot stays free and the next loan gets it again).
///
/// The loan does not zero the slot: it lends the slot as it is, holding whatever item
/// last passed through it (zeros if none did). That memory is always initialised, so
/// there is no "uninitialised loan" to offer and no zeroing cost to avoid: fill the
/// bytes you commit and nothing else.
#[derive(Debug)]
#[must_use = "a loan pushes nothing unless it is committed"]
pub struct SpscLoan<'a, R: Region<Header = SpscHeader>> {
    producer: &'a mut SpscProducer<R>,
}

impl<R: Region<Header = SpscHeader>> SpscLoan<'_, R> {
    fn slot(&self) -> Slot<'_> {
        let ring = &self.producer.ring;
        ring.geometry.slot(ring.region.body(), self.producer.tail)
    }

    /// Slot size in bytes: the most the loan can hold.
    pub fn slot_bytes(&self) -> usize {
        self.producer.ring.geometry.slot_bytes
    }

    /// The slot as payload words (little-endian bytes), to fill in place.
    pub fn words(&self) -> &[AtomicU64] {
        self.slot().payload()
    }

    /// Pushes the first `len` bytes of the slot and returns their position.
    pub fn commit(self, len: usize) -> Result<u64, PushError> {
        let max = self.slot_bytes();
        if len > max {
            return Err(PushError::TooLarge { len, max });
        }
        self.slot().length().store(len as u64, Ordering::Relaxed);
        Ok(self.producer.publish())
    }
}

impl<R: Region<Header = SpscHeader>> SpscLoan<'_, Exclusive<R>> {
    /// The slot as bytes, to fill in place (a ring over an [`Exclusive`] region only).
    #[cfg(not(any(feature = "loom", feature = "shuttle")))]
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        let len = self.slot_bytes();
        // SAFETY: the slot at `tail` is free (the consumer released it: `head` was
        // loaded with Acquire and checked, `tail - head < C`) and is not visible to the
        // consumer until `commit` stores the new tail, so among this ring's handles
        // this loan is its only accessor, and `&mut self` keeps `words()` from being
        // used alongside. The `Exclusive` region promises that no one else writes or
        // views it while the slice lives. `len` bytes fit in the payload words
        // (geometry).
        unsafe { crate::slot::bytes_view::as_bytes_mut(self.slot().payload(), len) }
    }

    /// The slot as bytes, to fill in place: under the checkers, a view backed by the
    /// slot's words that stores them back when dropped (before the commit).
    #[cfg(any(feature = "loom", feature = "shuttle"))]
    pub fn bytes_mut(&mut self) -> crate::slot::checked_view::LoanBytesMut<'_> {
        let len = self.slot_bytes();
        crate::slot::checked_view::as_bytes_mut(self.slot().payload(), len)
    }
}

/// A popped item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Popped {
    /// The item's position (0 for the first item pushed).
    pub position: u64,
    /// Its length; the item is `buf[..len]`.
    pub len: usize,
}

/// Why a pop returned no item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PopError {
    /// No item is waiting.
    Empty,
    /// The buffer is shorter than the next item, which stays in the ring.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
    },
    /// The producer's counter is impossible (nothing was removed), or the next item's
    /// length is (that item was removed).
    Corrupt(Corruption),
}

impl core::fmt::Display for PopError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PopError::Empty => f.write_str("ring is empty"),
            PopError::BufferTooSmall { needed } => {
                write!(f, "buffer too small: the item has {needed} bytes")
            }
            PopError::Corrupt(c) => c.fmt(f),
        }
    }
}

impl core::error::Error for PopError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            PopError::Corrupt(e) => Some(e),
            _ => None,
        }
    }
}

/// The ring's only consumer. Dropping it gives the role back.
#[derive(Debug)]
pub struct SpscConsumer<R: Region<Header = SpscHeader>> {
    ring: Spsc<R>,
    token: u64,
    head: u64,
    cached_tail: u64,
}

impl<R: Region<Header = SpscHeader>> SpscConsumer<R> {
    /// Copies the next item into `buf` and removes it.
    pub fn pop(&mut self, buf: &mut [u8]) -> Result<Popped, PopError> {
        self.pop_parts(&mut [buf])
    }

    /// Copies the next item into `parts`, filling each before the next, and removes it.
    ///
    /// # Panics
    /// If a part other than the last is not a multiple of 8 bytes long.
    pub fn pop_parts(&mut self, parts: &mut [&mut [u8]]) -> Result<Popped, PopError> {
        let capacity = parts_len(parts);
        let (slot, len) = self.next_item()?;
        if len > capacity {
            return Err(PopError::BufferTooSmall { needed: len });
        }
        load_parts(slot.payload(), parts, len);
        let position = self.head;
        self.release_one();
        Ok(Popped { position, len })
    }

    /// Lends the next item for reading in place; [`SpscPeek::release`] removes it,
    /// dropping the guard leaves it in the ring. An item whose length is impossible
    /// is removed and reported, as by [`pop`](Self::pop).
    pub fn peek(&mut self) -> Result<SpscPeek<'_, R>, PopError> {
        let (_, len) = self.next_item()?;
        Ok(SpscPeek {
            consumer: self,
            len,
        })
    }

    /// Items waiting, as far as this consumer knows (reloads the producer's counter).
    pub fn available(&mut self) -> Result<usize, PopError> {
        Ok(self.reload_tail()? as usize)
    }

    /// Loads the producer's `tail`, checks it and only then caches it; returns the
    /// occupancy.
    fn reload_tail(&mut self) -> Result<u64, PopError> {
        // Acquire pairs with the producer's Release store of `tail`: the length and
        // payload of every slot up to it are visible to our loads.
        let tail = self.ring.region.header().tail.load(Ordering::Acquire);
        let used = self
            .ring
            .geometry
            .occupancy(self.head, tail)
            .map_err(PopError::Corrupt)?;
        self.cached_tail = tail;
        Ok(used)
    }

    /// Position of the next item.
    pub fn head(&self) -> u64 {
        self.head
    }

    /// The slot and length of the next item. An item with an impossible length is
    /// removed here and reported.
    fn next_item(&mut self) -> Result<(Slot<'_>, usize), PopError> {
        if self.head == self.cached_tail && self.reload_tail()? == 0 {
            return Err(PopError::Empty);
        }
        let geometry = self.ring.geometry;
        let slot = geometry.slot(self.ring.region.body(), self.head);
        let len = slot.length().load(Ordering::Relaxed);
        if len > geometry.slot_bytes as u64 {
            self.release_one();
            return Err(PopError::Corrupt(Corruption::Length {
                found: len,
                max: geometry.slot_bytes as u64,
            }));
        }
        Ok((
            geometry.slot(self.ring.region.body(), self.head),
            len as usize,
        ))
    }

    fn release_one(&mut self) {
        self.release_to(self.head.wrapping_add(1));
    }
}

impl<R: Region<Header = SpscHeader>> Drop for SpscConsumer<R> {
    fn drop(&mut self) {
        claim::release(&self.ring.region.header().owners[CONSUMER], self.token);
    }
}

/// The next item, lent to the consumer. The producer cannot overwrite it until
/// [`release`](Self::release); dropping the guard leaves the item in the ring (the
/// next peek or pop gets it again).
#[derive(Debug)]
#[must_use = "a peeked item stays in the ring unless it is released"]
pub struct SpscPeek<'a, R: Region<Header = SpscHeader>> {
    consumer: &'a mut SpscConsumer<R>,
    len: usize,
}

impl<R: Region<Header = SpscHeader>> SpscPeek<'_, R> {
    fn payload(&self) -> &[AtomicU64] {
        let ring = &self.consumer.ring;
        ring.geometry
            .slot(ring.region.body(), self.consumer.head)
            .payload()
    }

    /// The item's position.
    pub fn position(&self) -> u64 {
        self.consumer.head
    }

    /// The item's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the item is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The item's payload words (little-endian bytes), load-only: a byte view of the
    /// same item may be alive alongside.
    pub fn words(&self) -> ReadWords<'_> {
        ReadWords::new(self.payload())
    }

    /// Copies the item into `buf` (which must hold [`len`](Self::len) bytes).
    pub fn copy_to(&self, buf: &mut [u8]) -> Result<usize, PopError> {
        if buf.len() < self.len {
            return Err(PopError::BufferTooSmall { needed: self.len });
        }
        load_bytes(self.payload(), &mut buf[..self.len]);
        Ok(self.len)
    }

    /// Removes the item from the ring.
    pub fn release(self) {
        self.consumer.release_one();
    }
}

impl<R: Region<Header = SpscHeader>> SpscPeek<'_, Exclusive<R>> {
    /// The item's bytes, in place (a ring over an [`Exclusive`] region only).
    #[cfg(not(any(feature = "loom", feature = "shuttle")))]
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: the slot at `head` was published by the producer's Release store of
        // `tail` (loaded with Acquire and checked) and, among this ring's handles, the
        // producer cannot write it again until `release` stores a new head; the guard
        // hands out only load-only words besides. The `Exclusive` region promises that
        // no one else writes it while the slice lives. `len` was checked against the
        // slot size.
        unsafe { crate::slot::bytes_view::as_bytes(self.payload(), self.len) }
    }

    /// The item's bytes: under the checkers, loaded from the slot's words when the
    /// view is made (between the peek and its release).
    #[cfg(any(feature = "loom", feature = "shuttle"))]
    pub fn bytes(&self) -> crate::slot::checked_view::LoanBytes<'_> {
        crate::slot::checked_view::as_bytes(self.payload(), self.len)
    }
}

// Batches: several items handed over with one store of a counter.
//
// A batch moves `tail` (push) or `head` (pop) once for all its items. The counter's
// Release store covers every slot written (or read) before it, so the consumer sees
// either none of a batch's items or all of those below the tail it loaded; this is
// the per-item protocol with the intermediate stores left out.

impl<R: Region<Header = SpscHeader>> SpscProducer<R> {
    /// Pushes as many whole items of `items`, in order, as fit, with one store of
    /// `tail`; returns how many (their positions are `tail() - n .. tail()`).
    ///
    /// Stops before the first item larger than a slot; if that is the first item the
    /// call returns [`PushError::TooLarge`], as does the next call otherwise.
    /// [`PushError::Full`] if no slot is free and `items` is not empty; an empty
    /// `items` pushes nothing and returns `Ok(0)`.
    pub fn push_batch<I: AsRef<[u8]>>(&mut self, items: &[I]) -> Result<usize, PushError> {
        self.push_batch_with(
            items.len(),
            |k| items[k].as_ref().len(),
            |k, words| store_parts(words, &[items[k].as_ref()]),
        )
    }

    /// [`push_batch`](Self::push_batch) where item `k` is the concatenation of the
    /// parts `items[k]` (as [`push_parts`](Self::push_parts)): a frame prefix and its
    /// tensor, say, with no copy to join them first.
    ///
    /// # Panics
    /// If a part other than the last of an item is not a multiple of 8 bytes long.
    pub fn push_batch_parts<'b, P: AsRef<[&'b [u8]]>>(
        &mut self,
        items: &[P],
    ) -> Result<usize, PushError> {
        self.push_batch_with(
            items.len(),
            |k| parts_len(items[k].as_ref()),
            |k, words| store_parts(words, items[k].as_ref()),
        )
    }

    /// The batch push: `n` items, item `k` of `len(k)` bytes, written by `store(k, _)`
    /// into its slot's payload words.
    fn push_batch_with(
        &mut self,
        n: usize,
        len: impl Fn(usize) -> usize,
        store: impl Fn(usize, &[AtomicU64]),
    ) -> Result<usize, PushError> {
        if n == 0 {
            return Ok(0);
        }
        let max = self.ring.geometry.slot_bytes;
        let first = len(0);
        if first > max {
            return Err(PushError::TooLarge { len: first, max });
        }
        let capacity = self.ring.geometry.capacity as u64;
        let mut free = capacity - self.tail.wrapping_sub(self.cached_head).min(capacity);
        if free < n as u64 {
            free = capacity - self.reload_head()?;
        }
        if free == 0 {
            return Err(PushError::Full);
        }
        let count = (0..free.min(n as u64) as usize)
            .take_while(|&k| len(k) <= max)
            .count();
        let geometry = self.ring.geometry;
        let body = self.ring.region.body();
        for k in 0..count {
            // Every slot from `tail` to `tail + free - 1` is free: the consumer
            // released it (its head was loaded with Acquire and checked).
            let slot = geometry.slot(body, self.tail.wrapping_add(k as u64));
            slot.length().store(len(k) as u64, Ordering::Relaxed);
            store(k, slot.payload());
        }
        self.publish_to(self.tail.wrapping_add(count as u64));
        Ok(count)
    }

    fn publish_to(&mut self, tail: u64) {
        self.tail = tail;
        // Release: the lengths and payloads of every slot below the new tail (one item,
        // or a batch) are visible to whoever sees it. Partner: the consumer's Acquire
        // load of `tail` (`reload_tail`).
        self.ring
            .region
            .header()
            .tail
            .store(tail, Ordering::Release);
    }
}

impl<R: Region<Header = SpscHeader>> SpscConsumer<R> {
    /// Copies up to `min(bufs.len(), popped.len())` items, item `k` into `bufs[k]`
    /// and its position and length into `popped[k]`, and removes them with one store
    /// of `head`; returns how many.
    ///
    /// Stops before an item that does not fit its buffer and before an item whose
    /// length is impossible; if that is the first item, the call reports it as
    /// [`pop`](Self::pop) would ([`PopError::BufferTooSmall`] leaves it in the ring,
    /// [`PopError::Corrupt`] removes it). [`PopError::Empty`] if nothing is waiting
    /// (and there is room for at least one item).
    pub fn pop_batch<B: AsMut<[u8]>>(
        &mut self,
        bufs: &mut [B],
        popped: &mut [Popped],
    ) -> Result<usize, PopError> {
        let want = bufs.len().min(popped.len());
        if want == 0 {
            return Ok(0);
        }
        let mut drain = self.drain()?;
        let mut count = 0;
        while count < want {
            let Some(item) = drain.peek() else { break };
            let item = match item {
                Ok(item) => item,
                Err(corruption) if count == 0 => {
                    drain.skip();
                    return Err(PopError::Corrupt(corruption));
                }
                Err(_) => break,
            };
            let buf = bufs[count].as_mut();
            if item.len > buf.len() {
                if count == 0 {
                    return Err(PopError::BufferTooSmall { needed: item.len });
                }
                break;
            }
            item.words.load_bytes(&mut buf[..item.len]);
            popped[count] = Popped {
                position: item.position,
                len: item.len,
            };
            drain.skip();
            count += 1;
        }
        Ok(count)
    }

    /// Lends every item waiting now, one after the other ([`SpscDrain::next`]), and
    /// removes those it handed out with one store of `head` when the drain is dropped.
    /// Reloads the producer's counter once; [`PopError::Empty`] if nothing is waiting.
    pub fn drain(&mut self) -> Result<SpscDrain<'_, R>, PopError> {
        let used = self.reload_tail()?;
        if used == 0 {
            return Err(PopError::Empty);
        }
        Ok(SpscDrain {
            next: self.head,
            end: self.cached_tail,
            consumer: self,
        })
    }

    fn release_to(&mut self, head: u64) {
        self.head = head;
        // Release: our reads of every slot below `head` happen-before the producer's
        // next writes to them. Partner: the producer's Acquire load of `head`
        // (`reload_head`). This ordering guards against load buffering only (a read of
        // a slot seeing a later write to it), which loom does not model and x86 never
        // shows: no test fails without it, and it stays.
        self.ring
            .region
            .header()
            .head
            .store(head, Ordering::Release);
    }
}

/// The items waiting when [`SpscConsumer::drain`] was called, lent one at a time.
///
/// A lending iterator: each item borrows the drain, so no item outlives it. Dropping
/// the drain removes every item [`next`](Self::next) returned, with one store of
/// `head`; the items it did not return stay in the ring. The producer cannot
/// overwrite any of them while the drain lives.
#[derive(Debug)]
#[must_use = "a drain removes only the items it hands out"]
pub struct SpscDrain<'a, R: Region<Header = SpscHeader>> {
    consumer: &'a mut SpscConsumer<R>,
    /// Position of the next item to hand out.
    next: u64,
    /// The tail loaded (and checked) when the drain was made.
    end: u64,
}

/// An item lent by an [`SpscDrain`].
#[derive(Debug, Clone, Copy)]
pub struct SpscDrained<'a> {
    position: u64,
    len: usize,
    words: ReadWords<'a>,
}

impl SpscDrained<'_> {
    /// The item's position.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The item's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the item is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The slot's payload words (little-endian bytes), load-only; the item is the
    /// first [`len`](Self::len) bytes.
    pub fn words(&self) -> ReadWords<'_> {
        self.words
    }

    /// Copies the item into `buf` (which must hold [`len`](Self::len) bytes).
    pub fn copy_to(&self, buf: &mut [u8]) -> Result<usize, PopError> {
        if buf.len() < self.len {
            return Err(PopError::BufferTooSmall { needed: self.len });
        }
        self.words.load_bytes(&mut buf[..self.len]);
        Ok(self.len)
    }
}

impl<R: Region<Header = SpscHeader>> SpscDrain<'_, R> {
    /// Items not handed out yet.
    pub fn remaining(&self) -> usize {
        // `end - next <= capacity`: `end` was checked against the head.
        self.end.wrapping_sub(self.next) as usize
    }

    /// The next item, which the drain now counts as taken, or `None` when every item
    /// waiting at the start was handed out. An item whose length word exceeds the
    /// slot size is taken too and reported as [`Corruption::Length`].
    #[allow(clippy::should_implement_trait)] // lending: the item borrows the drain
    pub fn next(&mut self) -> Option<Result<SpscDrained<'_>, Corruption>> {
        let position = self.next;
        if position == self.end {
            return None;
        }
        self.next = position.wrapping_add(1);
        Some(self.item(position))
    }

    /// The next item without taking it (an item with an impossible length is
    /// reported and stays next); [`next`](Self::next) then takes it.
    pub fn peek(&self) -> Option<Result<SpscDrained<'_>, Corruption>> {
        if self.next == self.end {
            return None;
        }
        Some(self.item(self.next))
    }

    /// The item at `position`, which lies in `head .. end`.
    fn item(&self, position: u64) -> Result<SpscDrained<'_>, Corruption> {
        let ring = &self.consumer.ring;
        let geometry = ring.geometry;
        // Below the tail loaded with Acquire and at or above our head: published and
        // not yet released, so the producer does not write it.
        let slot = geometry.slot(ring.region.body(), position);
        let len = slot.length().load(Ordering::Relaxed);
        if len > geometry.slot_bytes as u64 {
            return Err(Corruption::Length {
                found: len,
                max: geometry.slot_bytes as u64,
            });
        }
        Ok(SpscDrained {
            position,
            len: len as usize,
            words: ReadWords::new(slot.payload()),
        })
    }

    fn skip(&mut self) {
        self.next = self.next.wrapping_add(1);
    }
}

impl<R: Region<Header = SpscHeader>> Drop for SpscDrain<'_, R> {
    fn drop(&mut self) {
        if self.next != self.consumer.head {
            let head = self.next;
            self.consumer.release_to(head);
        }
    }
}
