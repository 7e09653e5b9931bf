//! Sequential reference of the SPSC ring ([`tensorlane_core::Spsc`]).
//!
//! # What this model guarantees
//! It is the ring as one thread sees it when it is both producer and consumer,
//! answering with the core's own types ([`PushError`], [`PopError`], [`Popped`]):
//! - A bounded FIFO of `capacity` items. Positions count from 0: the item pushed
//!   `k`-th (0-based) has position `k`, whichever path (push or loan) pushed it.
//! - `push` refuses an item longer than the slot ([`PushError::TooLarge`], checked
//!   first) and refuses any item when `capacity` items wait ([`PushError::Full`]).
//! - `loan` refuses with [`PushError::Full`] when full and otherwise names the position
//!   the loaned slot will get; a loan that is dropped pushes nothing. `commit` pushes
//!   the slot's first `len` bytes, or refuses a `len` above the slot size with
//!   [`PushError::TooLarge`] (the loan is gone either way).
//! - `pop` returns the oldest item ([`PopError::Empty`] if none). A buffer shorter
//!   than the item gives [`PopError::BufferTooSmall`] and leaves the item in place.
//! - `peek` shows the oldest item without removing it; `release` removes it. A peek
//!   that is not released leaves the item, and the next pop or peek sees it again.
//!   The same holds across a consumer change (takeover or a new claim): the model
//!   keeps one queue, so a role change is invisible to it.
//!
//! Corruption ([`PushError::Corrupt`], [`PopError::Corrupt`]) cannot arise through the
//! API and is never reported.

use std::collections::VecDeque;
use tensorlane_core::{PopError, Popped, PushError, SpscGeometry};

/// The ring: a bounded FIFO of byte strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpscModel {
    capacity: usize,
    slot_bytes: usize,
    head: u64,
    items: VecDeque<Vec<u8>>,
}

impl SpscModel {
    /// An empty ring with the capacity and slot size of `geometry`.
    pub fn new(geometry: SpscGeometry) -> Self {
        SpscModel {
            capacity: geometry.capacity(),
            slot_bytes: geometry.slot_bytes(),
            head: 0,
            items: VecDeque::with_capacity(geometry.capacity()),
        }
    }

    /// Number of slots.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Payload bytes per slot.
    pub fn slot_bytes(&self) -> usize {
        self.slot_bytes
    }

    /// Position of the oldest waiting item (the next one popped).
    pub fn head(&self) -> u64 {
        self.head
    }

    /// Position the next pushed item gets.
    pub fn tail(&self) -> u64 {
        self.head + self.items.len() as u64
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether no item waits.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Free slots.
    pub fn free(&self) -> usize {
        self.capacity - self.items.len()
    }

    /// Appends `item` and returns its position.
    pub fn push(&mut self, item: &[u8]) -> Result<u64, PushError> {
        if item.len() > self.slot_bytes {
            return Err(PushError::TooLarge {
                len: item.len(),
                max: self.slot_bytes,
            });
        }
        if self.items.len() == self.capacity {
            return Err(PushError::Full);
        }
        let position = self.tail();
        self.items.push_back(item.to_vec());
        Ok(position)
    }

    /// Lends the next free slot: the position it will get when committed.
    pub fn loan(&self) -> Result<u64, PushError> {
        if self.items.len() == self.capacity {
            return Err(PushError::Full);
        }
        Ok(self.tail())
    }

    /// Commits a loan whose slot holds `item` (the first `len` bytes of the slot).
    /// The same as [`push`](Self::push): a loan taken by [`loan`](Self::loan) is never
    /// refused for lack of space.
    pub fn commit(&mut self, item: &[u8]) -> Result<u64, PushError> {
        self.push(item)
    }

    /// Removes the oldest item, read into a buffer of `buf_len` bytes.
    pub fn pop(&mut self, buf_len: usize) -> Result<(Popped, Vec<u8>), PopError> {
        let needed = match self.items.front() {
            None => return Err(PopError::Empty),
            Some(item) => item.len(),
        };
        if needed > buf_len {
            return Err(PopError::BufferTooSmall { needed });
        }
        let position = self.head;
        let item = self.items.pop_front().unwrap_or_default();
        self.head += 1;
        Ok((
            Popped {
                position,
                len: item.len(),
            },
            item,
        ))
    }

    /// The oldest item and its position, left in place.
    pub fn peek(&self) -> Result<(u64, &[u8]), PopError> {
        self.items
            .front()
            .map(|item| (self.head, item.as_slice()))
            .ok_or(PopError::Empty)
    }

    /// Removes the oldest item (the one [`peek`](Self::peek) shows).
    pub fn release(&mut self) -> Result<Popped, PopError> {
        let item = self.items.pop_front().ok_or(PopError::Empty)?;
        let position = self.head;
        self.head += 1;
        Ok(Popped {
            position,
            len: item.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(capacity: usize, slot_bytes: usize) -> SpscModel {
        SpscModel::new(SpscGeometry::new(capacity, slot_bytes).unwrap())
    }

    #[test]
    fn fifo_full_and_too_large() {
        let mut m = model(2, 4);
        assert_eq!(
            m.push(b"12345"),
            Err(PushError::TooLarge { len: 5, max: 4 })
        );
        assert_eq!(m.push(b"a"), Ok(0));
        assert_eq!(m.loan(), Ok(1));
        assert_eq!(m.commit(b"bc"), Ok(1));
        assert_eq!(m.push(b"d"), Err(PushError::Full));
        assert_eq!(m.loan(), Err(PushError::Full));
        // TooLarge is checked before Full.
        assert_eq!(
            m.push(b"12345"),
            Err(PushError::TooLarge { len: 5, max: 4 })
        );
        assert_eq!(m.pop(0), Err(PopError::BufferTooSmall { needed: 1 }));
        let (popped, item) = m.pop(4).unwrap();
        assert_eq!((popped.position, item.as_slice()), (0, &b"a"[..]));
        assert_eq!(m.free(), 1);
    }

    #[test]
    fn peek_without_release_leaves_the_item() {
        let mut m = model(4, 4);
        assert_eq!(m.peek(), Err(PopError::Empty));
        m.push(b"x").unwrap();
        assert_eq!(m.peek(), Ok((0, &b"x"[..])));
        assert_eq!(m.peek(), Ok((0, &b"x"[..])));
        assert_eq!(
            m.release(),
            Ok(Popped {
                position: 0,
                len: 1
            })
        );
        assert_eq!(m.release(), Err(PopError::Empty));
        assert_eq!((m.head(), m.tail()), (1, 1));
    }
}
