//! The [`Broadcast`] view of a region: inspection (tail, history, `read_at`, snapshots
//! of table entries), the producer's claim and take-over, joins, and a supervisor's
//! eviction and reclaim of table entries, with their errors.
//!
//! Invariants kept here:
//! - a view exists only over a body whose length was checked against the geometry;
//! - a table entry's state word changes by a compare-exchange against the word read
//!   before (generation included), except under the joiner that claimed the entry
//!   (ACTIVE, or FREE again when the join fails); so a stale caller never frees or
//!   evicts an entry that someone joined through since;
//! - a joiner or a new producer keeps the shared tail only once the slot before it
//!   confirms it (`confirmed_tail`), and a lossless joiner moves its head past every
//!   position the producer may overwrite without having seen the join (*Joining* in
//!   `mod.rs`).

use super::read::{read_slot, Extent, ReadAtError, SlotRead};
use super::{
    done_stamp, entry, is_after, BroadcastGeometry, BroadcastHeader, BroadcastProducer,
    BroadcastSubscriber, Mode, SubscribeOptions, DEFAULT_RECV_ATTEMPTS,
};
use crate::claim::{self, ClaimError};
use crate::error::{check_body, Corruption, GeometryError};
use crate::region::Region;
use crate::sync::{fence, spin_hint, Ordering};
use core::ops::Range;

/// States `reclaim` frees.
const RECLAIMABLE: [u64; 3] = [entry::JOINING, entry::ACTIVE, entry::EVICTED];

/// A snapshot of one subscriber table entry, for inspection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriberInfo {
    /// State code (`entry::FREE` ..= `entry::EVICTED`).
    pub state: u64,
    /// Generation of the entry (bumped by each join).
    pub generation: u64,
    /// Mode code (`entry::MODE_LOSSLESS` or `entry::MODE_LOSSY`).
    pub mode: u64,
    /// Head (next position).
    pub head: u64,
    /// Lossy lag bound.
    pub max_lag: u64,
    /// Positions missed (lossy skips, history lost at join).
    pub missed: u64,
    /// Owner token.
    pub owner: u64,
}

/// Why a subscriber could not join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubscribeError {
    /// Owner tokens must be non-zero.
    ZeroToken,
    /// Every table entry is taken.
    TableFull,
    /// `subscribe_at`: no such entry.
    OutOfRange {
        /// The index given.
        index: usize,
    },
    /// `subscribe_at`: the entry is not free.
    EntryTaken {
        /// The index given.
        index: usize,
    },
    /// The producer's tail kept naming a position whose slot was never published;
    /// the entry was given back.
    Corrupt(Corruption),
}

/// Why a supervisor operation on a table entry was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EntryError {
    /// No such entry.
    OutOfRange {
        /// The index given.
        index: usize,
    },
    /// The entry is not in a state the operation applies to.
    WrongState {
        /// Its state word.
        state: u64,
    },
}

impl core::fmt::Display for SubscribeError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            SubscribeError::ZeroToken => f.write_str("owner token must be non-zero"),
            SubscribeError::TableFull => f.write_str("subscriber table is full"),
            SubscribeError::OutOfRange { index } => write!(f, "no subscriber entry {index}"),
            SubscribeError::EntryTaken { index } => write!(f, "subscriber entry {index} is taken"),
            SubscribeError::Corrupt(c) => write!(f, "cannot join: {c}"),
        }
    }
}

impl core::error::Error for SubscribeError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            SubscribeError::Corrupt(c) => Some(c),
            _ => None,
        }
    }
}

impl core::fmt::Display for EntryError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            EntryError::OutOfRange { index } => write!(f, "no subscriber entry {index}"),
            EntryError::WrongState { state } => {
                write!(f, "entry is in state {}", state & entry::STATE_MASK)
            }
        }
    }
}

impl core::error::Error for EntryError {}

/// A broadcast ring over a region whose body length was checked against the geometry.
#[derive(Debug, Clone)]
pub struct Broadcast<R> {
    pub(super) region: R,
    pub(super) geometry: BroadcastGeometry,
}

impl<R: Region<Header = BroadcastHeader>> Broadcast<R> {
    /// Validates the region's body against `geometry`.
    pub fn new(region: R, geometry: BroadcastGeometry) -> Result<Self, GeometryError> {
        check_body(geometry.body_words, region.body().len())?;
        Ok(Broadcast { region, geometry })
    }

    /// The geometry.
    pub fn geometry(&self) -> BroadcastGeometry {
        self.geometry
    }

    /// Next position the producer will write.
    pub fn tail(&self) -> u64 {
        // Acquire pairs with the producer's Release store of `tail`.
        self.region.header().tail.load(Ordering::Acquire)
    }

    /// Token of the producer, 0 if none.
    pub fn producer_owner(&self) -> u64 {
        // Relaxed: an inspection value and the `previous` input of a take-over's
        // compare-exchange, which does its own ordering; nothing is read on the strength
        // of it.
        self.region.header().producer.load(Ordering::Relaxed)
    }

    /// Positions of the last `k` items (at most the capacity), oldest first. Read
    /// them with [`read_at`](Self::read_at); some may be overwritten meanwhile.
    pub fn history(&self, k: u64) -> Range<u64> {
        let tail = self.tail();
        let k = k.min(self.geometry.capacity as u64).min(tail);
        tail - k..tail
    }

    /// Copies the item at `position` into `buf`, if it is still in the ring. Writes
    /// nothing to shared memory.
    pub fn read_at(&self, position: u64, buf: &mut [u8]) -> Result<usize, ReadAtError> {
        self.read_at_with(position, buf, Extent::Whole)
    }

    /// Copies the first `buf.len()` bytes of the item at `position` (all of it if it
    /// is shorter), untorn as [`read_at`](Self::read_at), and returns the item's whole
    /// length: a frame prefix without a buffer the size of the item.
    pub fn read_prefix_at(&self, position: u64, buf: &mut [u8]) -> Result<usize, ReadAtError> {
        self.read_at_with(position, buf, Extent::Prefix)
    }

    fn read_at_with(
        &self,
        position: u64,
        buf: &mut [u8],
        extent: Extent,
    ) -> Result<usize, ReadAtError> {
        // Positions are plain counters from 0 (a tail cannot wrap in 2^64 publishes),
        // so a position at or beyond the tail was never published.
        if position >= self.tail() {
            return Err(ReadAtError::NotPublished);
        }
        let slot = self.geometry.slot(self.region.body(), position);
        match read_slot(&self.geometry, slot, position, &mut [buf], extent) {
            SlotRead::Ok(len) => Ok(len),
            SlotRead::Overwritten => Err(ReadAtError::Overwritten),
            SlotRead::TooSmall(needed) => Err(ReadAtError::BufferTooSmall { needed }),
            SlotRead::Corrupt(c) => Err(ReadAtError::Corrupt(c)),
        }
    }

    /// A snapshot of table entry `index`.
    pub fn subscriber(&self, index: usize) -> Option<SubscriberInfo> {
        if index >= self.geometry.max_subscribers {
            return None;
        }
        let e = self.geometry.entry(self.region.body(), index);
        // Acquire pairs with the joiner's Release store of ACTIVE: a snapshot that shows
        // the entry ACTIVE shows that join's mode, lag bound and owner (loom
        // `broadcast_inspection_races_a_join` fails without it).
        let state = e[entry::STATE].load(Ordering::Acquire);
        Some(SubscriberInfo {
            state: state & entry::STATE_MASK,
            generation: state >> 2,
            mode: e[entry::MODE].load(Ordering::Relaxed),
            head: e[entry::HEAD].load(Ordering::Relaxed),
            max_lag: e[entry::MAX_LAG].load(Ordering::Relaxed),
            missed: e[entry::MISSED].load(Ordering::Relaxed),
            owner: e[entry::OWNER].load(Ordering::Relaxed),
        })
    }

    /// Evicts the ACTIVE subscriber at `index`: the producer stops waiting for it. If
    /// it still runs, its next receive reports
    /// [`RecvError::Evicted`](super::RecvError::Evicted). The entry stays taken until
    /// the subscriber drops its handle or [`reclaim`](Self::reclaim).
    pub fn evict(&self, index: usize) -> Result<(), EntryError> {
        self.transition(index, None, &[entry::ACTIVE], entry::EVICTED)
    }

    /// Frees entry `index` (JOINING, ACTIVE or EVICTED) whose owner the caller knows
    /// is dead. Freeing the entry of a live subscriber breaks its guarantees.
    pub fn reclaim(&self, index: usize) -> Result<(), EntryError> {
        self.transition(index, None, &RECLAIMABLE, entry::FREE)
    }

    /// [`evict`](Self::evict), only if the entry still holds `generation` (as seen in
    /// [`subscriber`](Self::subscriber) before deciding its owner was dead): a
    /// subscriber that joined through the entry since then is left alone.
    pub fn evict_generation(&self, index: usize, generation: u64) -> Result<(), EntryError> {
        self.transition(index, Some(generation), &[entry::ACTIVE], entry::EVICTED)
    }

    /// [`reclaim`](Self::reclaim), only if the entry still holds `generation`.
    pub fn reclaim_generation(&self, index: usize, generation: u64) -> Result<(), EntryError> {
        self.transition(index, Some(generation), &RECLAIMABLE, entry::FREE)
    }

    fn transition(
        &self,
        index: usize,
        generation: Option<u64>,
        from: &[u64],
        to: u64,
    ) -> Result<(), EntryError> {
        if index >= self.geometry.max_subscribers {
            return Err(EntryError::OutOfRange { index });
        }
        let word = &self.geometry.entry(self.region.body(), index)[entry::STATE];
        // Relaxed: only the expected value of the compare-exchange below, which fails
        // if the word changed since; nothing of the entry is read after it.
        let state = word.load(Ordering::Relaxed);
        if !from.contains(&(state & entry::STATE_MASK))
            || generation.is_some_and(|g| g != state >> 2)
        {
            return Err(EntryError::WrongState { state });
        }
        // Release, for a reclaim (to FREE): the dead owner's stores to the entry, which
        // happen-before this call by the caller's knowledge of its death (the shm layer
        // holds the entry's kernel-released lock), happen-before the next occupant's.
        // Partner: the Acquire compare-exchange of `claim_entry`. It guards only against
        // the load-buffering shape (the joiner's stores taking effect before its claim
        // reads FREE, and the dead owner's landing after them), which loom does not
        // model: its modification order follows execution order. An eviction hands
        // nothing over (the evicted subscriber and the producer only read the state
        // bits). No Acquire: nothing of the entry is read after the change. The
        // generation bits are kept.
        word.compare_exchange(
            state,
            (state & !entry::STATE_MASK) | to,
            Ordering::Release,
            Ordering::Relaxed,
        )
        .map(|_| ())
        .map_err(|state| EntryError::WrongState { state })
    }

    /// Claims the producer role for the non-zero `token`.
    pub fn producer(&self, token: u64) -> Result<BroadcastProducer<R>, ClaimError>
    where
        R: Clone,
    {
        self.producer_takeover(0, token)
    }

    /// Takes the producer role over from `previous`, which the caller knows is gone.
    /// A position it was writing but had not published is written again.
    ///
    /// The caller must know that `previous`'s last store happens-before this call:
    /// the claim word cannot order it, because a dead owner never released it (the
    /// shm layer takes over only while holding the role's kernel-released lock). The
    /// producer touches slots only through atomic words, so breaking this is no
    /// undefined behaviour, but a previous producer still writing makes subscribers'
    /// items torn or lost; hence the requirement.
    pub fn producer_takeover(
        &self,
        previous: u64,
        token: u64,
    ) -> Result<BroadcastProducer<R>, ClaimError>
    where
        R: Clone,
    {
        claim::takeover(&self.region.header().producer, previous, token)?;
        // Our own counter, as the previous producer left it (its stores are ordered
        // before ours by the caller's contract), kept only if the slot before it
        // confirms it: a tail ahead of what was published would skip positions that
        // lossless subscribers wait for.
        let tail = match self.confirmed_tail() {
            Ok(tail) => tail,
            Err(corruption) => {
                claim::undo_takeover(&self.region.header().producer, previous, token);
                return Err(ClaimError::Corrupt(corruption));
            }
        };
        Ok(BroadcastProducer {
            ring: self.clone(),
            token,
            tail,
            epoch_seen: None,
            min_head: None,
            scan_end: self.geometry.max_subscribers,
            blocker: None,
            evicted_corrupt: 0,
            last_corrupt: None,
        })
    }

    /// Joins as a subscriber owned by the non-zero `token`.
    pub fn subscribe(
        &self,
        options: SubscribeOptions,
        token: u64,
    ) -> Result<BroadcastSubscriber<R>, SubscribeError>
    where
        R: Clone,
    {
        if token == 0 {
            return Err(SubscribeError::ZeroToken);
        }
        let (index, generation) = (0..self.geometry.max_subscribers)
            .find_map(|i| self.claim_entry(i).map(|generation| (i, generation)))
            .ok_or(SubscribeError::TableFull)?;
        self.join(index, generation, options, token)
    }

    /// Joins through table entry `index`, which must be FREE. The shm layer uses this
    /// to join through the entry whose ownership lock it already holds.
    pub fn subscribe_at(
        &self,
        index: usize,
        options: SubscribeOptions,
        token: u64,
    ) -> Result<BroadcastSubscriber<R>, SubscribeError>
    where
        R: Clone,
    {
        if token == 0 {
            return Err(SubscribeError::ZeroToken);
        }
        if index >= self.geometry.max_subscribers {
            return Err(SubscribeError::OutOfRange { index });
        }
        let generation = self
            .claim_entry(index)
            .ok_or(SubscribeError::EntryTaken { index })?;
        self.join(index, generation, options, token)
    }

    /// Moves entry `index` from FREE to JOINING with the next generation.
    fn claim_entry(&self, index: usize) -> Option<u64> {
        let state = &self.geometry.entry(self.region.body(), index)[entry::STATE];
        let seen = state.load(Ordering::Relaxed);
        if seen & entry::STATE_MASK != entry::FREE {
            return None;
        }
        let generation = (seen >> 2).wrapping_add(1);
        // Acquire pairs with the Release of the previous occupant's leave (or of
        // `reclaim`, `evict_blocker`'s freeing, a failed join's give-back): its writes
        // to the entry happen-before ours. The joiner reads nothing of the entry, so
        // this guards only against the load-buffering shape (our stores to the entry
        // taking effect before this claim reads FREE, the previous occupant's landing
        // after them), which loom does not model; it stays.
        state
            .compare_exchange(
                seen,
                (generation << 2) | entry::JOINING,
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .ok()
            .map(|_| generation)
    }

    /// Completes a join through the JOINING entry `index` (see *Joining* in `mod.rs`).
    fn join(
        &self,
        index: usize,
        generation: u64,
        options: SubscribeOptions,
        token: u64,
    ) -> Result<BroadcastSubscriber<R>, SubscribeError>
    where
        R: Clone,
    {
        let geometry = &self.geometry;
        let body = self.region.body();
        let capacity = geometry.capacity as u64;
        let e = geometry.entry(body, index);
        // The tail becomes our head: keep it only once its slot confirms it.
        let start = match self.confirmed_tail() {
            Ok(start) => start,
            Err(corruption) => {
                // Give the entry back, as a leave does. Release pairs with the
                // Acquire of the next joiner's claim: the previous occupant's stores,
                // which our claim acquired, stay ordered before the next one's (a plain
                // store ends the release sequence our claim continued). As in
                // `claim_entry`, a guard against the load-buffering shape only.
                e[entry::STATE].store((generation << 2) | entry::FREE, Ordering::Release);
                return Err(SubscribeError::Corrupt(corruption));
            }
        };
        let (mode_code, max_lag) = match options.mode {
            Mode::Lossless => (entry::MODE_LOSSLESS, capacity),
            Mode::Lossy { max_lag } => (entry::MODE_LOSSY, max_lag.clamp(1, capacity)),
        };
        e[entry::OWNER].store(token, Ordering::Relaxed);
        e[entry::MODE].store(mode_code, Ordering::Relaxed);
        e[entry::MAX_LAG].store(max_lag, Ordering::Relaxed);
        e[entry::MISSED].store(0, Ordering::Relaxed);
        let header = self.region.header();
        let mut head = start.saturating_sub(options.history.min(capacity));
        e[entry::HEAD].store(head, Ordering::Relaxed);
        let active = (generation << 2) | entry::ACTIVE;
        // Release: owner, mode, lag bound and head are visible to whoever sees ACTIVE.
        // Partners: the Acquire load of the state in `subscriber` (an inspector's
        // snapshot) and in the producer's table scan (for a lossless join the epoch
        // pair below orders the same stores for the producer).
        e[entry::STATE].store(active, Ordering::Release);
        let mut lost = 0;
        if mode_code == entry::MODE_LOSSLESS {
            // Release: a producer that sees the new epoch (Acquire) sees ACTIVE.
            header.epoch.fetch_add(1, Ordering::Release);
            // SeqCst fence, store-buffering partner of the producer's SeqCst fence
            // between its store of `tail` and its load of `epoch`: either the producer
            // sees our epoch before writing position `now + 1`, or we see `tail` past
            // `now`. Forbids both loads missing the other side's store.
            fence(Ordering::SeqCst);
            // The tail again (Acquire loads, partner the producer's Release store),
            // kept only if its slot confirms it: an unconfirmed tail moves nothing
            // (the first receive then finds out what is wrong).
            let now = self.confirmed_tail().unwrap_or(head);
            // Position `now` may be written without regard to us: it overwrites
            // `now - C`. Everything from `now - C + 1` on is protected.
            if now.wrapping_sub(head) >= capacity && !is_after(head, now) {
                // Wrapping: `now` comes from shared memory and may be anything.
                let safe = now.wrapping_sub(capacity).wrapping_add(1);
                lost = safe.wrapping_sub(head);
                head = safe;
                // Relaxed: the producer uses only the value. The Release of the other
                // head stores orders a subscriber's slot reads before the producer's
                // overwrites; no slot has been read yet here (the stamp load of
                // `confirmed_tail` decides nothing an overwrite could change: a later
                // stamp confirms the tail as well).
                e[entry::HEAD].store(head, Ordering::Relaxed);
            }
        }
        Ok(BroadcastSubscriber {
            ring: self.clone(),
            index,
            active,
            lossless: mode_code == entry::MODE_LOSSLESS,
            max_lag,
            head,
            cached_tail: head,
            missed: lost,
            reported: 0,
            lost_at_join: lost,
            max_attempts: DEFAULT_RECV_ATTEMPTS,
        })
    }

    /// The shared `tail`, confirmed by the slot before it. A correct producer stores
    /// the done stamp of position `t - 1` (Relaxed) before its Release store of
    /// `tail = t`, so after an Acquire load of `t` that slot holds the done stamp of
    /// `t - 1` or a later stamp. A tail ahead of what was published (a corrupt word,
    /// even one restored since) fails this: it is loaded again a bounded number of
    /// times, then reported. A tail behind the truth passes, and a joiner treats it as
    /// a stale load (see `join`).
    fn confirmed_tail(&self) -> Result<u64, Corruption> {
        let header = self.region.header();
        let body = self.region.body();
        let mut refuted = None;
        for attempt in 0..TAIL_ATTEMPTS {
            if attempt > 0 {
                spin_hint();
            }
            // Acquire pairs with the producer's Release store of `tail`: the done
            // stamp of position `tail - 1`, stored before it, is visible below.
            let tail = header.tail.load(Ordering::Acquire);
            if tail == 0 {
                return Ok(0);
            }
            let last = tail - 1;
            let stamp = self
                .geometry
                .slot(body, last)
                .stamp()
                .load(Ordering::Relaxed);
            if stamp == done_stamp(last) || is_after(stamp, done_stamp(last)) {
                return Ok(tail);
            }
            refuted = Some(Corruption::Stamp {
                expected: last,
                found: stamp,
            });
        }
        Err(refuted.expect("TAIL_ATTEMPTS > 0"))
    }
}

/// Loads of the tail a join or a take-over makes before reporting one its slot
/// refutes (a producer publishing concurrently never makes a load fail: see
/// `confirmed_tail`).
const TAIL_ATTEMPTS: u32 = 4;
