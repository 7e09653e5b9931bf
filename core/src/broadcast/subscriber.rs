//! A subscriber: lossless and lossy receives, batches, and leaving the ring.
//!
//! Invariants kept here:
//! - a lossless subscriber's cached tail satisfies `head < tail <= head + C` and is
//!   dropped as soon as a slot's stamp refutes it;
//! - a lossy subscriber's head moves (and the positions skipped count as missed) only
//!   once a slot's stamp confirmed the position it moves to;
//! - the head is shown in the table (Release) only after the slots below it were read;
//!   a lossless batch shows it once, after its last item;
//! - dropping the handle frees only this subscriber's own generation of its entry.

use super::read::{read_slot, Extent, SlotRead};
use super::{entry, is_after, Broadcast, BroadcastHeader};
use crate::error::Corruption;
use crate::region::Region;
use crate::slot::parts_len;
use crate::sync::{fence, spin_hint, AtomicU64, Ordering};

/// A received item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// Its position.
    pub position: u64,
    /// Its length; the item is `buf[..len]`.
    pub len: usize,
    /// Positions missed since the previous item this subscriber received (for the
    /// first item, including history lost at join).
    pub missed: u64,
}

/// Why a receive returned no item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RecvError {
    /// Nothing new.
    Empty,
    /// A supervisor evicted this subscriber.
    Evicted,
    /// The buffer is shorter than the next item, which is not consumed.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
    },
    /// (Lossy) every attempt raced the producer overwriting the slot being read.
    Stalled {
        /// Attempts made.
        attempts: u32,
    },
    /// Impossible shared state.
    Corrupt(Corruption),
}

impl core::fmt::Display for RecvError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RecvError::Empty => f.write_str("no new item"),
            RecvError::Evicted => f.write_str("subscriber was evicted"),
            RecvError::BufferTooSmall { needed } => {
                write!(f, "buffer too small: the item has {needed} bytes")
            }
            RecvError::Stalled { attempts } => {
                write!(f, "every one of {attempts} attempts raced the producer")
            }
            RecvError::Corrupt(c) => c.fmt(f),
        }
    }
}

impl core::error::Error for RecvError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            RecvError::Corrupt(e) => Some(e),
            _ => None,
        }
    }
}

/// A subscriber. Dropping it leaves the ring.
#[derive(Debug)]
pub struct BroadcastSubscriber<R: Region<Header = BroadcastHeader>> {
    pub(super) ring: Broadcast<R>,
    pub(super) index: usize,
    /// This subscriber's ACTIVE state word (generation included).
    pub(super) active: u64,
    pub(super) lossless: bool,
    pub(super) max_lag: u64,
    pub(super) head: u64,
    pub(super) cached_tail: u64,
    pub(super) missed: u64,
    pub(super) reported: u64,
    pub(super) lost_at_join: u64,
    pub(super) max_attempts: u32,
}

impl<R: Region<Header = BroadcastHeader>> BroadcastSubscriber<R> {
    /// Index of this subscriber's table entry.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Position of the next item this subscriber expects.
    pub fn head(&self) -> u64 {
        self.head
    }

    /// Positions missed so far (lossy skips and history lost at join).
    pub fn missed(&self) -> u64 {
        self.missed
    }

    /// History positions asked for at join that were already overwritten.
    pub fn lost_at_join(&self) -> u64 {
        self.lost_at_join
    }

    /// Whether this subscriber is lossless.
    pub fn is_lossless(&self) -> bool {
        self.lossless
    }

    /// Sets the copies a lossy receive attempts before [`RecvError::Stalled`].
    pub fn set_max_attempts(&mut self, attempts: u32) {
        self.max_attempts = attempts.max(1);
    }

    fn entry(&self) -> &[AtomicU64] {
        self.ring
            .geometry
            .entry(self.ring.region.body(), self.index)
    }

    /// Whether the entry no longer holds this subscriber's ACTIVE word.
    ///
    /// Relaxed: only the value counts, an eviction hands nothing over. Where an
    /// eviction must be seen (the producer ran past us, or overwrote our slot), an
    /// earlier Acquire (of `tail`, or the fence after the stamp load) made the
    /// producer's scan, which saw the eviction, happen-before this load.
    fn evicted(&self) -> bool {
        self.entry()[entry::STATE].load(Ordering::Relaxed) != self.active
    }

    /// Copies the next item into `buf`. On error the contents of `buf` are
    /// unspecified (a lossy copy that a newer write overtook may have landed there).
    pub fn recv(&mut self, buf: &mut [u8]) -> Result<Received, RecvError> {
        self.recv_parts(&mut [buf])
    }

    /// Copies the next item into `parts`, filling each before the next.
    ///
    /// # Panics
    /// If a part other than the last is not a multiple of 8 bytes long.
    pub fn recv_parts(&mut self, parts: &mut [&mut [u8]]) -> Result<Received, RecvError> {
        if self.evicted() {
            return Err(RecvError::Evicted);
        }
        if self.lossless {
            self.recv_lossless(parts)
        } else {
            self.recv_lossy(parts)
        }
    }

    fn recv_lossless(&mut self, buf: &mut [&mut [u8]]) -> Result<Received, RecvError> {
        let len = self.read_lossless(buf)?;
        Ok(self.deliver(len))
    }

    /// Copies the item at the head into `buf` and returns its length, without moving
    /// the head: the caller takes it ([`take`](Self::take)) and stores the head.
    fn read_lossless(&mut self, buf: &mut [&mut [u8]]) -> Result<usize, RecvError> {
        let geometry = self.ring.geometry;
        if self.head == self.cached_tail {
            // Acquire pairs with the producer's Release store of `tail`.
            let tail = self.ring.region.header().tail.load(Ordering::Acquire);
            let lag = tail.wrapping_sub(self.head);
            if lag > geometry.capacity as u64 {
                // The producer ran past us: only an eviction allows that. The Acquire
                // load of `tail` above makes the eviction its scan saw visible here.
                if self.evicted() {
                    return Err(RecvError::Evicted);
                }
                // Not cached: the next receive loads the tail again.
                return Err(RecvError::Corrupt(Corruption::Indices {
                    head: self.head,
                    tail,
                }));
            }
            if lag == 0 {
                return Err(RecvError::Empty);
            }
            // Validated: `head < tail <= head + capacity`.
            self.cached_tail = tail;
        }
        let slot = geometry.slot(self.ring.region.body(), self.head);
        let result = match read_slot(&geometry, slot, self.head, buf, Extent::Whole) {
            SlotRead::Ok(len) => return Ok(len),
            SlotRead::TooSmall(needed) => return Err(RecvError::BufferTooSmall { needed }),
            // The producer never overwrites what an active lossless subscriber has not
            // received: it was evicted meanwhile, or the memory is corrupt.
            SlotRead::Overwritten => {
                // Acquire fence: pairs with the producer's Release store of the stamp we
                // saw, so the eviction its scan saw is visible to `evicted` below.
                fence(Ordering::Acquire);
                if self.evicted() {
                    return Err(RecvError::Evicted);
                }
                RecvError::Corrupt(Corruption::Stamp {
                    expected: self.head,
                    found: slot.stamp().load(Ordering::Relaxed),
                })
            }
            SlotRead::Corrupt(c) => RecvError::Corrupt(c),
        };
        // The slot refuted the cached tail (a plausible tail that was never
        // published), or something else is corrupt: drop the cache, so that the next
        // receive starts from a fresh load of the tail.
        self.cached_tail = self.head;
        Err(result)
    }

    /// The head moves (and the skipped positions count as missed) only once a slot
    /// read confirmed the position it moves to: a tail that the stamps refute leaves
    /// no trace in this subscriber.
    fn recv_lossy(&mut self, buf: &mut [&mut [u8]]) -> Result<Received, RecvError> {
        let geometry = self.ring.geometry;
        // The candidate head: `self.head` plus the positions skipped in this call.
        let mut head = self.head;
        for attempt in 0..self.max_attempts {
            if attempt > 0 {
                spin_hint();
            }
            // Acquire pairs with the producer's Release store of `tail`.
            let tail = self.ring.region.header().tail.load(Ordering::Acquire);
            if is_after(head, tail) {
                return Err(RecvError::Corrupt(Corruption::Indices { head, tail }));
            }
            let lag = tail.wrapping_sub(head);
            if lag == 0 {
                return Err(RecvError::Empty);
            }
            if lag > self.max_lag {
                head = head.wrapping_add(lag - self.max_lag);
            }
            let slot = geometry.slot(self.ring.region.body(), head);
            match read_slot(&geometry, slot, head, buf, Extent::Whole) {
                SlotRead::Ok(len) => {
                    self.skip_to(head);
                    return Ok(self.deliver(len));
                }
                SlotRead::TooSmall(needed) => {
                    // The stamp confirmed `head`: the skip stands, the item stays.
                    self.skip_to(head);
                    return Err(RecvError::BufferTooSmall { needed });
                }
                SlotRead::Overwritten => head = head.wrapping_add(1),
                SlotRead::Corrupt(c) => return Err(RecvError::Corrupt(c)),
            }
        }
        Err(RecvError::Stalled {
            attempts: self.max_attempts,
        })
    }

    /// Moves the head up to `head`, counting the positions skipped as missed.
    fn skip_to(&mut self, head: u64) {
        let positions = head.wrapping_sub(self.head);
        self.head = head;
        self.missed = self.missed.wrapping_add(positions);
    }

    fn deliver(&mut self, len: usize) -> Received {
        let received = self.take(len);
        self.store_head();
        received
    }

    /// Moves the head past the item just read (of `len` bytes), in this process only.
    fn take(&mut self, len: usize) -> Received {
        let position = self.head;
        self.head = position.wrapping_add(1);
        let missed = self.missed.wrapping_sub(self.reported);
        self.reported = self.missed;
        Received {
            position,
            len,
            missed,
        }
    }

    /// Shows the head (and the missed count) in the table entry.
    fn store_head(&self) {
        let e = self.entry();
        e[entry::MISSED].store(self.missed, Ordering::Relaxed);
        // Release: our reads of every slot below the head happen-before the producer's
        // next write to them. Partner: the producer's Acquire load of heads in its scan
        // (lossless); for a lossy subscriber the head is only shown to inspectors.
        // This ordering guards against load buffering only (a read of a slot seeing
        // the producer's later overwrite), which loom does not model and x86 never
        // shows: no test fails without it, and it stays.
        e[entry::HEAD].store(self.head, Ordering::Release);
    }
}

// Batches: a lossless subscriber receives several items with one store of its head.
//
// A head shown late is safe: the producer's scan then sees the subscriber further
// behind than it is, which can only hold the producer back (`Full`) for longer; it
// never lets it overwrite an item not yet read. There is no batch publish: a
// lossless joiner counts every position above `tail - C` as protected, which holds
// only because the producer stores `tail` and checks the epoch for each position it
// writes (see *Joining*); one store for several positions would let it overwrite
// positions the joiner counts on.

impl<R: Region<Header = BroadcastHeader>> BroadcastSubscriber<R> {
    /// Receives up to `min(bufs.len(), received.len())` items, item `k` into `bufs[k]`
    /// and its position, length and missed count into `received[k]`; returns how
    /// many. A lossless subscriber shows its new head to the producer once, after the
    /// last item (one Release store); a lossy one receives item by item, as
    /// [`recv`](Self::recv).
    ///
    /// Stops before an item it cannot deliver (a buffer too small, an eviction, a
    /// corrupt slot, nothing more published); if that is the first item, the call
    /// returns the error [`recv`](Self::recv) would. [`RecvError::Empty`] if nothing
    /// is waiting (and there is room for at least one item).
    pub fn recv_batch<B: AsMut<[u8]>>(
        &mut self,
        bufs: &mut [B],
        received: &mut [Received],
    ) -> Result<usize, RecvError> {
        let want = bufs.len().min(received.len());
        self.batch(want, received, |sub, k| {
            let parts = &mut [bufs[k].as_mut()];
            sub.read_one(parts, None)
        })
    }

    /// [`recv_batch`](Self::recv_batch) where item `k` fills the parts `items[k]`, each
    /// before the next (as [`recv_parts`](Self::recv_parts)): a frame prefix and its
    /// tensor, say. For fixed-size items: on a lossless subscriber an item shorter
    /// than its parts ends the batch before it, and is received alone (its `len` says
    /// how short) when it comes first.
    ///
    /// # Panics
    /// If a part other than the last of an item is not a multiple of 8 bytes long.
    pub fn recv_batch_parts<'b, P: AsMut<[&'b mut [u8]]>>(
        &mut self,
        items: &mut [P],
        received: &mut [Received],
    ) -> Result<usize, RecvError> {
        let want = items.len().min(received.len());
        self.batch(want, received, |sub, k| {
            sub.read_one(items[k].as_mut(), Some(k))
        })
    }

    /// Receives up to `want` items through `read(self, k)`; a lossless subscriber
    /// stores its head once at the end.
    fn batch(
        &mut self,
        want: usize,
        received: &mut [Received],
        mut read: impl FnMut(&mut Self, usize) -> Result<Option<(Received, bool)>, RecvError>,
    ) -> Result<usize, RecvError> {
        if want == 0 {
            return Ok(0);
        }
        if self.lossless && self.evicted() {
            return Err(RecvError::Evicted);
        }
        let mut count = 0;
        while count < want {
            match read(self, count) {
                Ok(Some((got, last))) => {
                    received[count] = got;
                    if last {
                        count += 1;
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) if count == 0 => return Err(e),
                // Every item taken was confirmed by its slot's stamp: deliver them;
                // the next call meets the error again.
                Err(_) => break,
            }
            count += 1;
        }
        if self.lossless && count > 0 {
            self.store_head();
        }
        Ok(count)
    }

    /// One item of a batch into `parts`: taken without storing the head (lossless),
    /// or received as by `recv_parts` (lossy); with whether it ends the batch. With
    /// `fixed` (the item's index in a batch of fixed-size items), a lossless item
    /// shorter than `parts` is left untaken (`None`) unless it comes first, when it
    /// is taken and ends the batch.
    fn read_one(
        &mut self,
        parts: &mut [&mut [u8]],
        fixed: Option<usize>,
    ) -> Result<Option<(Received, bool)>, RecvError> {
        if !self.lossless {
            return self.recv_parts(parts).map(|got| Some((got, false)));
        }
        let total = parts_len(parts);
        let len = self.read_lossless(parts)?;
        let short = fixed.is_some() && len < total;
        if short && fixed != Some(0) {
            return Ok(None);
        }
        Ok(Some((self.take(len), short)))
    }
}

impl<R: Region<Header = BroadcastHeader>> Drop for BroadcastSubscriber<R> {
    fn drop(&mut self) {
        let evicted = (self.active & !entry::STATE_MASK) | entry::EVICTED;
        let free = self.active & !entry::STATE_MASK;
        let state = &self.entry()[entry::STATE];
        // Release pairs with the producer's Acquire load of the state: every read this
        // subscriber made happens-before the producer's later overwrites; and with the
        // next joiner's Acquire claim (our stores to the entry before its stores). Both
        // guard against load buffering only (a read seeing a later overwrite, a later
        // occupant's store taking effect before its claim), which loom does not model
        // and x86 never shows: no test fails without it, and it stays. Only this
        // subscriber's own generation is freed, never an entry reclaimed and reused.
        for from in [self.active, evicted] {
            if state
                .compare_exchange(from, free, Ordering::Release, Ordering::Relaxed)
                .is_ok()
            {
                break;
            }
        }
    }
}
