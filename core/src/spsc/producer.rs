//! The producer: pushes (one item, or one item from parts), the loan of a free slot
//! to fill in place, and giving the role back.
//!
//! Invariants kept here:
//! - a slot is written only once the consumer's `head`, loaded with Acquire and
//!   checked, shows it free (`tail - head < C`);
//! - `tail` is stored (Release) only after the slot's length and payload;
//! - the cached head is replaced only by a head found possible.

use super::{Spsc, SpscHeader, PRODUCER};
use crate::claim;
use crate::error::Corruption;
use crate::region::{Exclusive, Region};
use crate::slot::{parts_len, store_parts, Slot};
use crate::sync::{AtomicU64, Ordering};

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
    pub(super) ring: Spsc<R>,
    pub(super) token: u64,
    pub(super) tail: u64,
    pub(super) cached_head: u64,
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
    pub(super) fn reload_head(&mut self) -> Result<u64, PushError> {
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
