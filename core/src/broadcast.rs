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
//!   tails, stamps and lengths are reported as [`Corruption`].
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

use crate::claim::{self, ClaimError};
use crate::error::{check_body, check_count, Corruption, GeometryError};
use crate::line::{Line, LINE_WORDS};
use crate::region::{sealed, ControlBlock, Region};
use crate::slot::{load_parts, parts_len, slot_stride, store_parts, Slot};
use crate::sync::{fence, spin_hint, AtomicU64, Ordering};
use core::ops::Range;

/// Largest subscriber table.
pub const MAX_SUBSCRIBERS: usize = 4096;

/// States `reclaim` frees.
const RECLAIMABLE: [u64; 3] = [entry::JOINING, entry::ACTIVE, entry::EVICTED];

/// Compare-exchanges a scan tries on one impossible entry (whose state keeps
/// changing under it) before the publish reports [`PublishError::Corrupt`].
const SCAN_ENTRY_ATTEMPTS: u32 = 4;

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

/// How a subscriber treats a producer that runs ahead of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Receives everything; the producer waits for it (`Full`) instead of
    /// overwriting what it has not received.
    Lossless,
    /// Never holds the producer back; stays at most `max_lag` positions behind the
    /// tail (1 = only the newest), dropping and counting older ones.
    Lossy {
        /// Lag bound, clamped to `1..=capacity`.
        max_lag: u64,
    },
}

/// Options for [`Broadcast::subscribe`]: built with [`lossless`](Self::lossless),
/// [`lossy`](Self::lossy) or [`new`](Self::new), then
/// [`with_history`](Self::with_history).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscribeOptions {
    /// Lossless or lossy.
    pub mode: Mode,
    /// Ask to start this many positions before the current tail (clamped to the
    /// capacity and to what exists).
    pub history: u64,
}

impl SubscribeOptions {
    /// A subscriber in `mode`, starting at the tail.
    pub fn new(mode: Mode) -> Self {
        SubscribeOptions { mode, history: 0 }
    }

    /// A lossless subscriber starting at the tail.
    pub fn lossless() -> Self {
        SubscribeOptions {
            mode: Mode::Lossless,
            history: 0,
        }
    }

    /// A lossy subscriber with lag bound `max_lag`, starting at the tail.
    pub fn lossy(max_lag: u64) -> Self {
        SubscribeOptions {
            mode: Mode::Lossy { max_lag },
            history: 0,
        }
    }

    /// Starts `history` positions back.
    pub fn with_history(mut self, history: u64) -> Self {
        self.history = history;
        self
    }
}

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
    region: R,
    geometry: BroadcastGeometry,
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
    /// it still runs, its next receive reports [`RecvError::Evicted`]. The entry stays
    /// taken until the subscriber drops its handle or [`reclaim`](Self::reclaim).
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

    /// Completes a join through the JOINING entry `index` (see *Joining* above).
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
    ring: Broadcast<R>,
    token: u64,
    tail: u64,
    /// Epoch at the last table scan; `None` forces a scan.
    epoch_seen: Option<u64>,
    /// Lowest lossless head at the last scan; `None` if there was none.
    min_head: Option<u64>,
    /// Entries a rescan without an epoch change looks at: one past the last ACTIVE
    /// lossless entry the last completed scan found (every entry that became ACTIVE
    /// lossless since then bumped the epoch, which forces a scan of the whole table).
    scan_end: usize,
    /// Entry index and state word (generation included) of the subscriber the last
    /// scan reported `Full` for.
    blocker: Option<(usize, u64)>,
    /// Impossible entries the scans evicted.
    evicted_corrupt: u64,
    /// The last of them.
    last_corrupt: Option<Corruption>,
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

/// Why [`Broadcast::read_at`] returned no item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadAtError {
    /// The position is not published yet.
    NotPublished,
    /// The slot now holds a later position (or is being overwritten).
    Overwritten,
    /// The buffer is shorter than the item.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
    },
    /// Impossible shared state.
    Corrupt(Corruption),
}

impl core::fmt::Display for ReadAtError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ReadAtError::NotPublished => f.write_str("position not published yet"),
            ReadAtError::Overwritten => f.write_str("the slot now holds a later position"),
            ReadAtError::BufferTooSmall { needed } => {
                write!(f, "buffer too small: the item has {needed} bytes")
            }
            ReadAtError::Corrupt(c) => c.fmt(f),
        }
    }
}

impl core::error::Error for ReadAtError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            ReadAtError::Corrupt(e) => Some(e),
            _ => None,
        }
    }
}

enum SlotRead {
    Ok(usize),
    Overwritten,
    TooSmall(usize),
    Corrupt(Corruption),
}

/// One validated copy of the item at `position`, which is below the tail loaded (with
/// Acquire) by the caller.
/// How much of an item `read_slot` copies.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Extent {
    /// All of it; a buffer shorter than the item is `TooSmall`.
    Whole,
    /// As much as the buffer holds (the item's whole length is still returned).
    Prefix,
}

fn read_slot(
    geometry: &BroadcastGeometry,
    slot: Slot<'_>,
    position: u64,
    parts: &mut [&mut [u8]],
    extent: Extent,
) -> SlotRead {
    let capacity = parts_len(parts);
    let expected = done_stamp(position);
    if expected == 0 {
        // Only positions 2^63 - 1 and 2^64 - 1 map to the stamp of a never-written
        // slot; no producer gets there (2^63 publishes), so a tail there is corrupt.
        return SlotRead::Corrupt(Corruption::Stamp {
            expected: position,
            found: 0,
        });
    }
    // Relaxed: the caller loaded a tail above `position` with Acquire, partner of
    // the producer's Release store of that tail, which follows the payload and the
    // done stamp of `position`: they are visible, and this load sees that stamp or a
    // later one. The Acquire fence below orders the payload loads before the reload.
    let before = slot.stamp().load(Ordering::Relaxed);
    if before != expected {
        return if is_after(before, expected) {
            SlotRead::Overwritten
        } else {
            // Published (below the tail) but stamped as older: impossible.
            SlotRead::Corrupt(Corruption::Stamp {
                expected: position,
                found: before,
            })
        };
    }
    let len = slot.length().load(Ordering::Relaxed);
    let max = geometry.slot_bytes as u64;
    let fits = len <= max && (extent == Extent::Prefix || len <= capacity as u64);
    if fits {
        load_parts(slot.payload(), parts, (len as usize).min(capacity));
    }
    // Acquire fence: the payload loads are ordered before the stamp reload. Partner:
    // the producer's Release fence after the odd stamp of a later position.
    fence(Ordering::Acquire);
    if slot.stamp().load(Ordering::Relaxed) != before {
        return SlotRead::Overwritten;
    }
    if len > max {
        return SlotRead::Corrupt(Corruption::Length { found: len, max });
    }
    if !fits {
        return SlotRead::TooSmall(len as usize);
    }
    SlotRead::Ok(len as usize)
}

/// A subscriber. Dropping it leaves the ring.
#[derive(Debug)]
pub struct BroadcastSubscriber<R: Region<Header = BroadcastHeader>> {
    ring: Broadcast<R>,
    index: usize,
    /// This subscriber's ACTIVE state word (generation included).
    active: u64,
    lossless: bool,
    max_lag: u64,
    head: u64,
    cached_tail: u64,
    missed: u64,
    reported: u64,
    lost_at_join: u64,
    max_attempts: u32,
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
