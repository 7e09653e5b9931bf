//! The producer: publishing a position (*Publishing position P* in `mod.rs`),
//! the table scan for the slowest lossless subscriber, and the eviction of a subscriber
//! that holds it back and is known to be dead.
//!
//! Invariants kept here:
//! - a position's slot is overwritten only after a scan (or a cached minimum head that
//!   a completed scan found, with no join since) showed that no ACTIVE lossless
//!   subscriber still needs it; otherwise the publish returns `Full`;
//! - a slot's stamp is odd while the producer writes it and even once it is complete,
//!   and `tail` is stored (Release) only after the done stamp;
//! - an impossible head is evicted and counted, never cached; a scan cut short leaves
//!   the next publish to scan again.

use super::{done_stamp, entry, writing_stamp, Broadcast, BroadcastHeader, EntryError};
use crate::claim;
use crate::error::Corruption;
use crate::region::Region;
use crate::slot::{parts_len, store_parts};
use crate::sync::{fence, Ordering};

/// Compare-exchanges a scan tries on one impossible entry (whose state keeps
/// changing under it) before the publish reports [`PublishError::Corrupt`].
const SCAN_ENTRY_ATTEMPTS: u32 = 4;

/// Why a publish was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PublishError {
    /// A lossless subscriber has not received the item in the slot to overwrite.
    Full {
        /// Its index in the subscriber table.
        subscriber: usize,
    },
    /// The item is larger than a slot.
    TooLarge {
        /// Bytes given.
        len: usize,
        /// Slot size.
        max: usize,
    },
    /// An impossible subscriber entry kept changing under the scan's attempts to
    /// evict it (see [`BroadcastProducer::evicted_corrupt`]); nothing was written.
    Corrupt(Corruption),
}

impl core::fmt::Display for PublishError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            PublishError::Full { subscriber } => {
                write!(f, "ring is full: lossless subscriber {subscriber} lags")
            }
            PublishError::TooLarge { len, max } => {
                write!(
                    f,
                    "item of {len} bytes exceeds the slot size of {max} bytes"
                )
            }
            PublishError::Corrupt(c) => c.fmt(f),
        }
    }
}

impl core::error::Error for PublishError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            PublishError::Corrupt(e) => Some(e),
            _ => None,
        }
    }
}

/// The ring's only producer. Dropping it gives the role back.
#[derive(Debug)]
pub struct BroadcastProducer<R: Region<Header = BroadcastHeader>> {
    pub(super) ring: Broadcast<R>,
    pub(super) token: u64,
    pub(super) tail: u64,
    /// Epoch at the last table scan; `None` forces a scan.
    pub(super) epoch_seen: Option<u64>,
    /// Lowest lossless head at the last scan; `None` if there was none.
    pub(super) min_head: Option<u64>,
    /// Entries a rescan without an epoch change looks at: one past the last ACTIVE
    /// lossless entry the last completed scan found (every entry that became ACTIVE
    /// lossless since then bumped the epoch, which forces a scan of the whole table).
    pub(super) scan_end: usize,
    /// Entry index and state word (generation included) of the subscriber the last
    /// scan reported `Full` for.
    pub(super) blocker: Option<(usize, u64)>,
    /// Impossible entries the scans evicted.
    pub(super) evicted_corrupt: u64,
    /// The last of them.
    pub(super) last_corrupt: Option<Corruption>,
}

impl<R: Region<Header = BroadcastHeader>> BroadcastProducer<R> {
    /// Copies `item` into the ring and returns its position.
    pub fn publish(&mut self, item: &[u8]) -> Result<u64, PublishError> {
        self.publish_parts(&[item])
    }

    /// Publishes the concatenation of `parts` as one item.
    ///
    /// # Panics
    /// If a part other than the last is not a multiple of 8 bytes long.
    pub fn publish_parts(&mut self, parts: &[&[u8]]) -> Result<u64, PublishError> {
        let geometry = self.ring.geometry;
        let len = parts_len(parts);
        if len > geometry.slot_bytes {
            return Err(PublishError::TooLarge {
                len,
                max: geometry.slot_bytes,
            });
        }
        let position = self.tail;
        // SeqCst fence: store-buffering partner of the joiner's SeqCst fence. It sits
        // between our last store of `tail` (end of the previous publish) and the load
        // of `epoch` below, so a lossless joiner that missed that tail store is seen here.
        fence(Ordering::SeqCst);
        // Acquire pairs with the joiner's Release `fetch_add` of `epoch`: the scan below
        // then sees its ACTIVE entry.
        let epoch = self.ring.region.header().epoch.load(Ordering::Acquire);
        let near_full = self
            .min_head
            .is_some_and(|m| position.wrapping_sub(m) >= geometry.capacity as u64);
        let joined = self.epoch_seen != Some(epoch);
        if joined || near_full {
            // Until a scan completes, the next publish must scan again: a scan cut
            // short (`Full`, or an entry that kept changing) has not looked at every
            // entry after it.
            self.epoch_seen = None;
            // A join (or a first scan) walks the whole table; a rescan for a stale
            // minimum head only the entries up to the last lossless one.
            let end = if joined {
                geometry.max_subscribers
            } else {
                self.scan_end
            };
            self.scan(position, end)?;
            self.epoch_seen = Some(epoch);
        }
        let header = self.ring.region.header();
        let slot = geometry.slot(self.ring.region.body(), position);
        // Release: the table scan above (which may have seen an eviction) happens-before
        // any read that sees this stamp. Partner: a lossless subscriber's Acquire fence
        // after finding its slot overwritten; it then sees why (its eviction).
        slot.stamp()
            .store(writing_stamp(position), Ordering::Release);
        // Release fence: the odd stamp is visible no later than the payload stores.
        // Partner: a reader's Acquire fence before its second stamp load.
        fence(Ordering::Release);
        slot.length().store(len as u64, Ordering::Relaxed);
        store_parts(slot.payload(), parts);
        // Relaxed: no reader relies on the done stamp for the payload. Every reader of
        // position P loaded a tail above P with Acquire first (`read_at`, both kinds of
        // subscriber, `confirmed_tail`), and our Release store of the tail below (or
        // of a later tail) orders this store and the payload before it. An Acquire
        // fence after a load of this stamp (`read_lossless` on an overwritten slot)
        // still synchronizes with the Release fence above.
        slot.stamp().store(done_stamp(position), Ordering::Relaxed);
        self.tail = position.wrapping_add(1);
        // Release: a subscriber that sees the new tail sees the done stamp.
        // Partner: the subscribers' Acquire loads of `tail`.
        header.tail.store(self.tail, Ordering::Release);
        Ok(position)
    }

    /// Position the next item will get.
    pub fn tail(&self) -> u64 {
        self.tail
    }

    /// Lossless entries whose head the scan found impossible (ahead of the position
    /// being published) and evicted, counted over this handle's life.
    pub fn evicted_corrupt(&self) -> u64 {
        self.evicted_corrupt
    }

    /// The last impossible entry the scan evicted
    /// ([`Corruption::SubscriberHead`]: its index, its head and the position being
    /// published), if any.
    pub fn last_corrupt_entry(&self) -> Option<Corruption> {
        self.last_corrupt
    }

    /// Evicts and frees entry `subscriber`, which the last publish reported
    /// [`PublishError::Full`] for, if the entry still holds exactly the state word
    /// (generation included) that publish's table scan saw.
    ///
    /// Call it only once the entry's owner is known to be dead (its role lock is
    /// free, checked after the `Full`). A subscriber that reclaimed and joined through
    /// the entry since the scan has another generation and is left alone; so is an
    /// entry that changed in any other way (the next publish scans again). Whatever
    /// the result, the next publish scans the table.
    ///
    /// Returns `Ok` if this call evicted the entry; the entry is then freed (with the
    /// scanned generation), as it is if it was already EVICTED with that generation.
    /// [`EntryError::WrongState`] (with the state found) if the entry changed, or if
    /// the last publish did not report `Full` for `subscriber`.
    pub fn evict_blocker(&mut self, subscriber: usize) -> Result<(), EntryError> {
        let geometry = &self.ring.geometry;
        if subscriber >= geometry.max_subscribers {
            return Err(EntryError::OutOfRange { index: subscriber });
        }
        self.epoch_seen = None;
        let word = &geometry.entry(self.ring.region.body(), subscriber)[entry::STATE];
        let seen = match self.blocker {
            Some((index, seen)) if index == subscriber => seen,
            _ => {
                return Err(EntryError::WrongState {
                    state: word.load(Ordering::Relaxed),
                })
            }
        };
        self.blocker = None;
        let free = seen & !entry::STATE_MASK;
        let evicted = free | entry::EVICTED;
        // Compared with the scanned word, never with a fresh load: a join since the
        // scan changed the generation, a leave or reclaim the state bits. Relaxed: an
        // eviction hands nothing over (the subscriber only learns of it), and the
        // freeing below carries the Release for the next occupant.
        let result = word
            .compare_exchange(seen, evicted, Ordering::Relaxed, Ordering::Relaxed)
            .map(|_| ())
            .map_err(|state| EntryError::WrongState { state });
        // Free the dead owner's entry, only from EVICTED with the scanned generation.
        // Release pairs with the next joiner's Acquire CAS in `claim_entry` (the dead
        // owner's stores, ordered before this call by its role lock, before the
        // joiner's); a guard against the load-buffering shape only, as in
        // `Broadcast::transition`. No Acquire: nothing of the entry is read after it.
        let _ = word.compare_exchange(evicted, free, Ordering::Release, Ordering::Relaxed);
        result
    }

    /// Recomputes the lowest lossless head; `Full` if one is `capacity` behind.
    ///
    /// An ACTIVE lossless entry whose head is ahead of `position` is impossible (a
    /// subscriber's head never passes the tail it loaded): the scan evicts exactly
    /// the state it saw, counts it and goes on, so one corrupt entry does not stop
    /// the producer. If the entry changes under that compare-exchange every time,
    /// the scan gives up with `Corrupt`.
    ///
    /// Looks at entries `0..end` (`end` at most the table's size): lossless entries
    /// beyond the last one a previous scan found joined after it, and their join's
    /// epoch bump makes the caller scan the whole table.
    fn scan(&mut self, position: u64, end: usize) -> Result<(), PublishError> {
        let geometry = &self.ring.geometry;
        let body = self.ring.region.body();
        let capacity = geometry.capacity as u64;
        let mut slowest: Option<(u64, usize, u64, u64)> = None; // (lag, index, head, state)
        let mut last_lossless = None;
        self.blocker = None;
        for index in 0..end.min(geometry.max_subscribers) {
            let e = geometry.entry(body, index);
            let mut attempts = 0;
            let seen = loop {
                // Acquire pairs with the Release of a leave: the leaving subscriber's
                // reads of slots happen-before our overwrites. This guards against load
                // buffering only (its read seeing our later overwrite), which loom does
                // not model and x86 never shows; it stays. It also pairs with the
                // joiner's Release store of ACTIVE (mode and head visible), which for a
                // lossless join the epoch pair orders as well; a lossy entry is skipped.
                let state = e[entry::STATE].load(Ordering::Acquire);
                if state & entry::STATE_MASK != entry::ACTIVE
                    || e[entry::MODE].load(Ordering::Relaxed) != entry::MODE_LOSSLESS
                {
                    break None;
                }
                // Acquire pairs with the subscriber's Release store of its head
                // (`store_head`): its reads of the slots before `head` happen-before our
                // overwrites. A guard against load buffering only, which loom does not
                // model and x86 never shows; it stays.
                let head = e[entry::HEAD].load(Ordering::Acquire);
                // Plain comparison: positions never wrap (2^64 publishes), and a
                // correct subscriber's head is at most the position being published.
                // In wrapping order a head 2^63 or more ahead would look behind, hold
                // the producer as `Full` and never be evicted.
                if head <= position {
                    break Some((state, head));
                }
                let corruption = Corruption::SubscriberHead {
                    subscriber: index,
                    head,
                    tail: position,
                };
                let evicted = (state & !entry::STATE_MASK) | entry::EVICTED;
                // Only the state we saw (generation included): a subscriber that
                // joined since is examined afresh. Relaxed, as the eviction in
                // `evict_blocker`: it hands nothing over (the subscriber only learns of
                // it), and the entry stays taken.
                if e[entry::STATE]
                    .compare_exchange(state, evicted, Ordering::Relaxed, Ordering::Relaxed)
                    .is_ok()
                {
                    self.evicted_corrupt = self.evicted_corrupt.wrapping_add(1);
                    self.last_corrupt = Some(corruption);
                    break None;
                }
                attempts += 1;
                if attempts == SCAN_ENTRY_ATTEMPTS {
                    return Err(PublishError::Corrupt(corruption));
                }
            };
            let Some((state, head)) = seen else {
                continue;
            };
            last_lossless = Some(index);
            let lag = position.wrapping_sub(head);
            if slowest.is_none_or(|(worst, _, _, _)| lag > worst) {
                slowest = Some((lag, index, head, state));
            }
        }
        self.min_head = slowest.map(|(_, _, head, _)| head);
        self.scan_end = last_lossless.map_or(0, |index| index + 1);
        match slowest {
            // A lag above the capacity is a joiner that has not yet moved its head up.
            Some((lag, subscriber, _, state)) if lag >= capacity => {
                self.blocker = Some((subscriber, state));
                Err(PublishError::Full { subscriber })
            }
            _ => Ok(()),
        }
    }
}

impl<R: Region<Header = BroadcastHeader>> Drop for BroadcastProducer<R> {
    fn drop(&mut self) {
        claim::release(&self.ring.region.header().producer, self.token);
    }
}
