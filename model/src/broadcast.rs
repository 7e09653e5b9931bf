//! Sequential reference of the broadcast ring ([`tensorlane_core::Broadcast`]).
//!
//! # What this model guarantees
//! It is the ring as one thread sees it when it is the producer, every subscriber and
//! the supervisor at once, answering with the core's own types. It models the shared
//! subscriber table word for word (state with generation, mode, head, lag bound,
//! drop counter, owner), so that [`BroadcastModel::subscriber`] can be compared with
//! [`tensorlane_core::Broadcast::subscriber`].
//!
//! Ring:
//! - Positions count from 0; the ring keeps the last `capacity` items. `publish`
//!   refuses an item longer than the slot ([`PublishError::TooLarge`], checked first).
//! - `publish` at tail `t` is refused with [`PublishError::Full`] when some ACTIVE
//!   lossless subscriber has `t - head >= capacity`. The subscriber named is the one
//!   with the largest lag, the lowest table index among equals (the producer's scan
//!   order). Lossy, EVICTED, JOINING and FREE entries never hold the producer back.
//! - `read_at(p)`: [`ReadAtError::NotPublished`] for `p >= tail`,
//!   [`ReadAtError::Overwritten`] for `p < tail - capacity`, the item otherwise.
//!   Positions are absolute: a position "before 0" (near `u64::MAX`) is not
//!   published.
//! - `history(k)` is `tail - min(k, capacity, tail) .. tail`.
//!
//! Table:
//! - `subscribe` takes the FREE entry with the lowest index and bumps its generation
//!   ([`SubscribeError::TableFull`] if none; [`SubscribeError::ZeroToken`] for token 0).
//!   Its head is `tail - min(history, capacity)`, not below 0. A lossy subscriber's lag
//!   bound is clamped to `1..=capacity`; a lossless one records `capacity`.
//! - A lossless join cannot protect position `tail - capacity`: a producer racing the
//!   join may overwrite it while writing position `tail`. So when the requested head
//!   is `capacity` behind the tail, the head moves up to `tail - capacity + 1` and the
//!   one position lost is reported (`lost_at_join`, and in the first item's
//!   `missed`). The model applies this rule in single-threaded use too, as the core
//!   does.
//! - `evict(i)`: ACTIVE -> EVICTED; `reclaim(i)`: JOINING, ACTIVE or EVICTED -> FREE;
//!   both keep the generation, refuse other states with [`EntryError::WrongState`]
//!   (carrying the whole state word) and indices past the table with
//!   [`EntryError::OutOfRange`].
//! - `leave` frees the entry only if it still holds the subscriber's own generation
//!   (ACTIVE or EVICTED): an entry reclaimed and reused by another subscriber is left
//!   alone.
//!
//! Receiving:
//! - A subscriber whose entry no longer holds its own ACTIVE state word (evicted,
//!   reclaimed, or reclaimed and reused) gets [`RecvError::Evicted`].
//! - Lossless: the items from its head on, in order, once each;
//!   [`RecvError::Empty`] at the tail.
//! - Lossy: when `tail - head > max_lag` it first skips to `tail - max_lag`, counting
//!   the skipped positions as missed, then receives the item at its head.
//! - [`Received::missed`] counts the positions missed since the previous item
//!   received (for the first, since the join, including history lost at join).
//! - A buffer shorter than the item gives [`RecvError::BufferTooSmall`]; the item is
//!   not consumed (a lossy skip made before it stays made).
//! - Each delivery publishes the subscriber's head and total drop count to its entry;
//!   a skip alone does not.
//!
//! [`RecvError::Stalled`] and `Corrupt` results arise only from races or corrupt
//! memory and are not reported by the model.

use core::ops::Range;
use std::collections::VecDeque;
use tensorlane_core::{
    entry, BroadcastGeometry, Corruption, EntryError, Mode, PublishError, ReadAtError, Received,
    RecvError, SubscribeError, SubscribeOptions, SubscriberInfo,
};

/// One subscriber table entry, word for word.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Entry {
    /// Generation (bits 2..64) and state (bits 0..2).
    state: u64,
    head: u64,
    mode: u64,
    max_lag: u64,
    missed: u64,
    owner: u64,
}

/// The broadcast ring: the last `capacity` items and the subscriber table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BroadcastModel {
    capacity: u64,
    slot_bytes: usize,
    tail: u64,
    /// The last `min(tail, capacity)` items; the first is at `tail - items.len()`.
    items: VecDeque<Vec<u8>>,
    entries: Vec<Entry>,
}

/// One subscriber's private state (what the core keeps in its subscriber handle).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberModel {
    index: usize,
    active: u64,
    lossless: bool,
    max_lag: u64,
    head: u64,
    missed: u64,
    reported: u64,
    lost_at_join: u64,
}

impl SubscriberModel {
    /// Index of its table entry.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Position of the next item it expects.
    pub fn head(&self) -> u64 {
        self.head
    }

    /// Positions missed so far (lossy skips and history lost at join).
    pub fn missed(&self) -> u64 {
        self.missed
    }

    /// History positions asked for at join that could not be protected.
    pub fn lost_at_join(&self) -> u64 {
        self.lost_at_join
    }

    /// Whether it is lossless.
    pub fn is_lossless(&self) -> bool {
        self.lossless
    }

    /// Its lag bound (the capacity for a lossless subscriber).
    pub fn max_lag(&self) -> u64 {
        self.max_lag
    }

    /// Its ACTIVE state word (generation included), as stored at join.
    pub fn active_word(&self) -> u64 {
        self.active
    }
}

fn state_of(word: u64) -> u64 {
    word & entry::STATE_MASK
}

fn with_state(word: u64, state: u64) -> u64 {
    (word & !entry::STATE_MASK) | state
}

impl BroadcastModel {
    /// An empty ring with a free table, with the geometry's capacity, slot size and
    /// table size.
    pub fn new(geometry: BroadcastGeometry) -> Self {
        BroadcastModel {
            capacity: geometry.capacity() as u64,
            slot_bytes: geometry.slot_bytes(),
            tail: 0,
            items: VecDeque::with_capacity(geometry.capacity()),
            entries: vec![Entry::default(); geometry.max_subscribers()],
        }
    }

    /// Number of slots.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Payload bytes per slot.
    pub fn slot_bytes(&self) -> usize {
        self.slot_bytes
    }

    /// Entries in the subscriber table.
    pub fn max_subscribers(&self) -> usize {
        self.entries.len()
    }

    /// Next position the producer writes.
    pub fn tail(&self) -> u64 {
        self.tail
    }

    /// Oldest position still in the ring (equal to the tail when empty).
    pub fn oldest(&self) -> u64 {
        self.tail - self.items.len() as u64
    }

    fn item(&self, position: u64) -> Option<&[u8]> {
        let offset = position.checked_sub(self.oldest())?;
        self.items
            .get(usize::try_from(offset).ok()?)
            .map(Vec::as_slice)
    }

    /// Publishes `item` and returns its position.
    pub fn publish(&mut self, item: &[u8]) -> Result<u64, PublishError> {
        if item.len() > self.slot_bytes {
            return Err(PublishError::TooLarge {
                len: item.len(),
                max: self.slot_bytes,
            });
        }
        if let Some(subscriber) = self.blocking_subscriber() {
            return Err(PublishError::Full { subscriber });
        }
        let position = self.tail;
        if self.items.len() as u64 == self.capacity {
            self.items.pop_front();
        }
        self.items.push_back(item.to_vec());
        self.tail += 1;
        Ok(position)
    }

    /// The lossless subscriber that makes the next publish `Full`, if any: the ACTIVE
    /// lossless entry with the largest lag (lowest index among equals), if that lag is
    /// at least the capacity.
    pub fn blocking_subscriber(&self) -> Option<usize> {
        let mut slowest: Option<(u64, usize)> = None;
        for (index, e) in self.entries.iter().enumerate() {
            if state_of(e.state) != entry::ACTIVE || e.mode != entry::MODE_LOSSLESS {
                continue;
            }
            let lag = self.tail.saturating_sub(e.head);
            if slowest.is_none_or(|(worst, _)| lag > worst) {
                slowest = Some((lag, index));
            }
        }
        match slowest {
            Some((lag, index)) if lag >= self.capacity => Some(index),
            _ => None,
        }
    }

    /// Positions of the last `k` items (at most the capacity), oldest first.
    pub fn history(&self, k: u64) -> Range<u64> {
        let k = k.min(self.capacity).min(self.tail);
        self.tail - k..self.tail
    }

    /// The item at `position`, read into a buffer of `buf_len` bytes.
    pub fn read_at(&self, position: u64, buf_len: usize) -> Result<&[u8], ReadAtError> {
        if position >= self.tail {
            return Err(ReadAtError::NotPublished);
        }
        let item = self.item(position).ok_or(ReadAtError::Overwritten)?;
        if item.len() > buf_len {
            return Err(ReadAtError::BufferTooSmall { needed: item.len() });
        }
        Ok(item)
    }

    /// A snapshot of table entry `index` (`None` past the table).
    pub fn subscriber(&self, index: usize) -> Option<SubscriberInfo> {
        let e = self.entries.get(index)?;
        Some(SubscriberInfo {
            state: state_of(e.state),
            generation: e.state >> 2,
            mode: e.mode,
            head: e.head,
            max_lag: e.max_lag,
            missed: e.missed,
            owner: e.owner,
        })
    }

    /// Joins a subscriber owned by `token`.
    pub fn subscribe(
        &mut self,
        options: SubscribeOptions,
        token: u64,
    ) -> Result<SubscriberModel, SubscribeError> {
        if token == 0 {
            return Err(SubscribeError::ZeroToken);
        }
        let capacity = self.capacity;
        let tail = self.tail;
        let index = self
            .entries
            .iter()
            .position(|e| state_of(e.state) == entry::FREE)
            .ok_or(SubscribeError::TableFull)?;
        let (mode, max_lag) = match options.mode {
            Mode::Lossless => (entry::MODE_LOSSLESS, capacity),
            Mode::Lossy { max_lag } => (entry::MODE_LOSSY, max_lag.clamp(1, capacity)),
        };
        let mut head = tail.saturating_sub(options.history.min(capacity));
        let mut lost = 0;
        if mode == entry::MODE_LOSSLESS && tail - head >= capacity {
            let safe = tail - capacity + 1;
            lost = safe - head;
            head = safe;
        }
        let e = &mut self.entries[index];
        let generation = (e.state >> 2).wrapping_add(1);
        let active = (generation << 2) | entry::ACTIVE;
        *e = Entry {
            state: active,
            head,
            mode,
            max_lag,
            missed: 0,
            owner: token,
        };
        Ok(SubscriberModel {
            index,
            active,
            lossless: mode == entry::MODE_LOSSLESS,
            max_lag,
            head,
            missed: lost,
            reported: 0,
            lost_at_join: lost,
        })
    }

    /// Whether `subscriber`'s entry still holds its ACTIVE state word.
    pub fn is_active(&self, subscriber: &SubscriberModel) -> bool {
        self.entries
            .get(subscriber.index)
            .is_some_and(|e| e.state == subscriber.active)
    }

    /// Receives `subscriber`'s next item into a buffer of `buf_len` bytes.
    pub fn recv(
        &mut self,
        subscriber: &mut SubscriberModel,
        buf_len: usize,
    ) -> Result<(Received, &[u8]), RecvError> {
        if !self.is_active(subscriber) {
            return Err(RecvError::Evicted);
        }
        if subscriber.head >= self.tail {
            return Err(RecvError::Empty);
        }
        if !subscriber.lossless {
            let lag = self.tail - subscriber.head;
            if lag > subscriber.max_lag {
                skip(subscriber, lag - subscriber.max_lag);
            }
            // `max_lag <= capacity` keeps the head inside the ring; stay total anyway.
            let oldest = self.oldest();
            if subscriber.head < oldest {
                skip(subscriber, oldest - subscriber.head);
            }
        }
        let position = subscriber.head;
        let Some(len) = self.item(position).map(<[u8]>::len) else {
            // A lossless subscriber's items are never overwritten while it is active.
            return Err(RecvError::Corrupt(Corruption::Stamp {
                expected: position,
                found: 0,
            }));
        };
        if len > buf_len {
            return Err(RecvError::BufferTooSmall { needed: len });
        }
        subscriber.head = position + 1;
        let e = &mut self.entries[subscriber.index];
        e.missed = subscriber.missed;
        e.head = subscriber.head;
        let missed = subscriber.missed - subscriber.reported;
        subscriber.reported = subscriber.missed;
        let item = self.item(position).unwrap_or_default();
        Ok((
            Received {
                position,
                len,
                missed,
            },
            item,
        ))
    }

    /// `subscriber` leaves (drops its handle): its entry becomes FREE if it still holds
    /// the subscriber's generation, ACTIVE or EVICTED.
    pub fn leave(&mut self, subscriber: SubscriberModel) {
        let evicted = with_state(subscriber.active, entry::EVICTED);
        if let Some(e) = self.entries.get_mut(subscriber.index) {
            if e.state == subscriber.active || e.state == evicted {
                e.state = with_state(subscriber.active, entry::FREE);
            }
        }
    }

    /// Evicts the ACTIVE subscriber at `index`.
    pub fn evict(&mut self, index: usize) -> Result<(), EntryError> {
        self.transition(index, &[entry::ACTIVE], entry::EVICTED)
    }

    /// Frees entry `index` (JOINING, ACTIVE or EVICTED).
    pub fn reclaim(&mut self, index: usize) -> Result<(), EntryError> {
        self.transition(
            index,
            &[entry::JOINING, entry::ACTIVE, entry::EVICTED],
            entry::FREE,
        )
    }

    fn transition(&mut self, index: usize, from: &[u64], to: u64) -> Result<(), EntryError> {
        let e = self
            .entries
            .get_mut(index)
            .ok_or(EntryError::OutOfRange { index })?;
        if !from.contains(&state_of(e.state)) {
            return Err(EntryError::WrongState { state: e.state });
        }
        e.state = with_state(e.state, to);
        Ok(())
    }
}

fn skip(subscriber: &mut SubscriberModel, positions: u64) {
    subscriber.head += positions;
    subscriber.missed += positions;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(capacity: usize, slot_bytes: usize, subscribers: usize) -> BroadcastModel {
        BroadcastModel::new(BroadcastGeometry::new(capacity, slot_bytes, subscribers).unwrap())
    }

    #[test]
    fn lossless_holds_the_producer_lossy_skips() {
        let mut m = model(4, 8, 4);
        let mut logger = m.subscribe(SubscribeOptions::lossless(), 2).unwrap();
        let mut display = m.subscribe(SubscribeOptions::lossy(1), 3).unwrap();
        for i in 0u64..3 {
            m.publish(&i.to_le_bytes()).unwrap();
        }
        let (got, _) = m.recv(&mut display, 8).unwrap();
        assert_eq!((got.position, got.missed), (2, 2));
        assert_eq!(m.recv(&mut logger, 8).unwrap().0.position, 0);
        m.publish(b"3").unwrap();
        m.publish(b"4").unwrap();
        assert_eq!(m.publish(b"5"), Err(PublishError::Full { subscriber: 0 }));
        assert_eq!(m.recv(&mut display, 8).unwrap().0.position, 4);
        assert_eq!(m.recv(&mut display, 8), Err(RecvError::Empty));
        m.evict(0).unwrap();
        assert_eq!(m.publish(b"5"), Ok(5));
        assert_eq!(m.recv(&mut logger, 8), Err(RecvError::Evicted));
        m.leave(logger);
        assert_eq!(m.subscriber(0).unwrap().state, entry::FREE);
    }

    #[test]
    fn join_takes_lowest_free_entry_and_generations_protect_reuse() {
        let mut m = model(2, 8, 2);
        let a = m.subscribe(SubscribeOptions::lossy(1), 1).unwrap();
        let b = m.subscribe(SubscribeOptions::lossy(1), 2).unwrap();
        assert_eq!((a.index(), b.index()), (0, 1));
        assert_eq!(
            m.subscribe(SubscribeOptions::lossy(1), 3),
            Err(SubscribeError::TableFull)
        );
        assert_eq!(
            m.subscribe(SubscribeOptions::lossy(1), 0),
            Err(SubscribeError::ZeroToken)
        );
        m.reclaim(0).unwrap();
        let c = m.subscribe(SubscribeOptions::lossless(), 4).unwrap();
        assert_eq!((c.index(), m.subscriber(0).unwrap().generation), (0, 2));
        // The stale handle leaves: the reused entry stays taken.
        m.leave(a);
        assert_eq!(m.subscriber(0).unwrap().state, entry::ACTIVE);
        assert_eq!(
            m.evict(1).and_then(|()| m.evict(1)),
            Err(EntryError::WrongState {
                state: (1 << 2) | entry::EVICTED
            })
        );
        assert_eq!(m.evict(2), Err(EntryError::OutOfRange { index: 2 }));
    }

    #[test]
    fn history_clamps_and_lossless_join_loses_the_oldest_slot() {
        let mut m = model(4, 8, 4);
        for i in 0u8..6 {
            m.publish(&[i]).unwrap();
        }
        assert_eq!(m.history(100), 2..6);
        assert_eq!(m.read_at(1, 8), Err(ReadAtError::Overwritten));
        assert_eq!(m.read_at(6, 8), Err(ReadAtError::NotPublished));
        assert_eq!(m.read_at(u64::MAX, 8), Err(ReadAtError::NotPublished));
        assert_eq!(
            m.read_at(5, 0),
            Err(ReadAtError::BufferTooSmall { needed: 1 })
        );
        let lossy = m
            .subscribe(SubscribeOptions::lossy(9).with_history(9), 1)
            .unwrap();
        assert_eq!(
            (lossy.head(), lossy.max_lag(), lossy.lost_at_join()),
            (2, 4, 0)
        );
        let mut lossless = m
            .subscribe(SubscribeOptions::lossless().with_history(9), 2)
            .unwrap();
        assert_eq!((lossless.head(), lossless.lost_at_join()), (3, 1));
        let (got, item) = m.recv(&mut lossless, 8).unwrap();
        assert_eq!((got.position, got.missed, item), (3, 1, &[3u8][..]));
    }
}
