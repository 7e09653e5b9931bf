//! Batches: several items handed over with one store of a counter.
//!
//! A batch moves `tail` (push) or `head` (pop) once for all its items. The counter's
//! Release store covers every slot written (or read) before it, so the consumer sees
//! either none of a batch's items or all of those below the tail it loaded; this is
//! the per-item protocol with the intermediate stores left out.
//!
//! This file holds the batch push and pop, the stores of the counters that every
//! push and pop ends with (`publish_to`, `release_to`), and the drain that lends the
//! waiting items one at a time.

use super::{PopError, Popped, PushError, SpscConsumer, SpscHeader, SpscProducer};
use crate::error::Corruption;
use crate::region::Region;
use crate::slot::{parts_len, store_parts};
use crate::sync::{AtomicU64, Ordering};
use crate::words::ReadWords;

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

    pub(super) fn publish_to(&mut self, tail: u64) {
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

    pub(super) fn release_to(&mut self, head: u64) {
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
