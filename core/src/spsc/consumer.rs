//! The consumer: pops (into one buffer, or into parts), the peek that lends the next
//! item in place, and giving the role back.
//!
//! Invariants kept here:
//! - a slot is read only below a `tail` loaded with Acquire and checked
//!   (`tail - head <= C`);
//! - `head` is stored (Release) only after the slot's reads;
//! - an item whose length exceeds the slot size is removed and reported, by `pop` and
//!   `peek` alike;
//! - the cached tail is replaced only by a tail found possible.

use super::{Spsc, SpscHeader, CONSUMER};
use crate::claim;
use crate::error::Corruption;
use crate::region::{Exclusive, Region};
use crate::slot::{load_bytes, load_parts, parts_len, Slot};
use crate::sync::{AtomicU64, Ordering};
use crate::words::ReadWords;

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
    pub(super) ring: Spsc<R>,
    pub(super) token: u64,
    pub(super) head: u64,
    pub(super) cached_tail: u64,
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
    pub(super) fn reload_tail(&mut self) -> Result<u64, PopError> {
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
