//! Take-overs: owners that die at a chosen step, and the successors that replace them.
//!
//! A dead owner is modelled as a peer that runs the real owner's procedure store by
//! store and load by load (by docs/LAYOUT.md, as another process would) and returns
//! after its `steps`-th shared-memory operation, never to run again. It holds its
//! role through the claim word and never gives it back, as a killed process would.
//! The scenarios join its thread before the successor takes the role over: the join
//! stands for the kernel-released role lock of the shm layer, which is what orders a
//! dead owner's last stores before its successor's first loads (see the take-over
//! contracts in core). Everything else (readers, the peer at the other end of a ring)
//! runs concurrently with both.
//!
//! Values carry the owner in their high half: word `i` of an item or write is
//! `sequence | owner << 32`, so a reader can tell the dead owner's bytes from its
//! successor's, and a mix of the two inside one value is a torn read.
//!
//! # Invariants the scenarios check
//! - Register: every value read is exactly one write, and one sequence is never read
//!   as two different values (a successor writes only sequences after the last one
//!   published).
//! - SPSC: every position arrives once, in order, untorn, whichever owner pushed it;
//!   an item the dead consumer read but did not release is delivered again.
//! - Broadcast: a lossless subscriber receives every position once, in order, untorn,
//!   and a lossy one increasing positions, untorn, whichever producer wrote them; a
//!   position the dead producer left unfinished is written again.

use crate::roles::{BroadcastFixture, QueueFixture, RegisterFixture};
use crate::sync::{fence, Ordering};
use std::sync::Arc;
use tensorlane_core::{
    BroadcastHeader, BroadcastProducer, HeapRegion, PopError, Popped, PublishError, PushError,
    Region, SeqlockHeader, SeqlockWriter, SpscConsumer, SpscHeader, SpscProducer, LENGTH_WORD,
    PAYLOAD_WORD, STAMP_WORD,
};

/// The owner token of the dead owner in every take-over scenario.
pub const DEAD: u64 = 1;
/// The owner token of its successor.
pub const SUCCESSOR: u64 = 2;

/// Payload word of sequence (or position tag) `value` written by `owner`.
pub fn tagged(value: u64, owner: u64) -> u64 {
    value | owner << 32
}

/// A two-word value whose words are both [`tagged`]`(value, owner)`.
pub fn tagged_value(value: u64, owner: u64) -> [u8; 16] {
    let word = tagged(value, owner).to_le_bytes();
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&word);
    bytes[8..].copy_from_slice(&word);
    bytes
}

/// Counts the shared-memory operations a dying owner may still make.
struct Budget(usize);

impl Budget {
    /// Whether one more operation may run (and counts it).
    fn step(&mut self) -> bool {
        if self.0 == 0 {
            return false;
        }
        self.0 -= 1;
        true
    }
}

/// Shared-memory operations in one register write: odd stamp, fence, length, two
/// payload words, even stamp, `published`.
pub const REGISTER_WRITE_STEPS: usize = 7;

/// Claims the role word `word` for [`DEAD`] (a plain claim that is never released);
/// `free` says what the failure means.
fn claim_as_dead(word: &tensorlane_core::AtomicU64, free: &str) {
    let claimed = word.compare_exchange(0, DEAD, Ordering::Acquire, Ordering::Relaxed);
    assert_eq!(claimed, Ok(0), "{free}");
}

/// Marks the register's writer role as held by [`DEAD`] (a plain claim that is never
/// released).
pub fn claim_register(fixture: &RegisterFixture) {
    claim_as_dead(&fixture.region.header().writer, "the writer role is free");
}

/// The register writer [`DEAD`]: makes `writes` two-word writes (sequences from 1) by
/// the register's write procedure and stops after its `steps`-th operation.
pub fn dying_register_writer(fixture: &RegisterFixture, writes: u64, steps: usize) {
    let mut budget = Budget(steps);
    let geometry = fixture.geometry;
    let body = fixture.region.body();
    for seq in 1..=writes {
        let start = (seq % geometry.slots() as u64) as usize * geometry.slot_stride();
        let slot = &body[start..start + geometry.slot_stride()];
        let word = tagged(seq, DEAD);
        if !budget.step() {
            return;
        }
        slot[STAMP_WORD].store(2 * seq + 1, Ordering::Relaxed);
        if !budget.step() {
            return;
        }
        fence(Ordering::Release);
        if !budget.step() {
            return;
        }
        slot[LENGTH_WORD].store(16, Ordering::Relaxed);
        for payload in &slot[PAYLOAD_WORD..PAYLOAD_WORD + 2] {
            if !budget.step() {
                return;
            }
            payload.store(word, Ordering::Relaxed);
        }
        if !budget.step() {
            return;
        }
        slot[STAMP_WORD].store(2 * seq, Ordering::Release);
        if !budget.step() {
            return;
        }
        fixture
            .region
            .header()
            .published
            .store(seq, Ordering::Release);
    }
}

/// A register writer that took the role over.
pub trait RegisterSuccessorRole: Send + 'static {
    /// The sequence its next write gets.
    fn next_seq(&self) -> u64;
    /// Writes `value`.
    fn write(&mut self, value: &[u8]);
}

impl RegisterSuccessorRole for SeqlockWriter<Arc<HeapRegion<SeqlockHeader>>> {
    fn next_seq(&self) -> u64 {
        SeqlockWriter::next_seq(self)
    }

    fn write(&mut self, value: &[u8]) {
        SeqlockWriter::write(self, value).expect("value fits the slot");
    }
}

/// The real take-over: [`SUCCESSOR`] replaces [`DEAD`].
pub fn real_register_successor(fixture: &RegisterFixture) -> impl RegisterSuccessorRole {
    fixture
        .lane()
        .takeover(DEAD, SUCCESSOR)
        .expect("the dead writer holds the role")
}

/// Shared-memory operations in one push of the dying producer: load of `head`,
/// length, two payload words, `tail`.
pub const QUEUE_PUSH_STEPS: usize = 5;

/// Shared-memory operations in one pop of the dying consumer: load of `tail`, length,
/// two payload words, `head`.
pub const QUEUE_POP_STEPS: usize = 5;

/// Marks the ring's producer (`role` 0) or consumer (`role` 1) as held by [`DEAD`].
pub fn claim_queue_role(fixture: &QueueFixture, role: usize) {
    claim_as_dead(&fixture.region.header().owners[role], "the role is free");
}

/// The SPSC producer [`DEAD`]: pushes items `0..items` (item `p` is
/// [`tagged_value`]`(p + 1, DEAD)`) by the push procedure and stops after its
/// `steps`-th operation. The ring must have room for all of them.
pub fn dying_queue_producer(fixture: &QueueFixture, items: u64, steps: usize) {
    let mut budget = Budget(steps);
    let header = fixture.region.header();
    let capacity = fixture.geometry.capacity() as u64;
    let stride = fixture.geometry.slot_stride();
    for tail in 0..items {
        if !budget.step() {
            return;
        }
        let head = header.head.load(Ordering::Acquire);
        assert!(
            tail - head < capacity,
            "the dying producer never finds the ring full"
        );
        let start = (tail % capacity) as usize * stride;
        let slot = &fixture.region.body()[start..start + stride];
        if !budget.step() {
            return;
        }
        slot[LENGTH_WORD].store(16, Ordering::Relaxed);
        let word = tagged(tail + 1, DEAD);
        for payload in &slot[PAYLOAD_WORD..PAYLOAD_WORD + 2] {
            if !budget.step() {
                return;
            }
            payload.store(word, Ordering::Relaxed);
        }
        if !budget.step() {
            return;
        }
        header.tail.store(tail + 1, Ordering::Release);
    }
}

/// The SPSC consumer [`DEAD`]: pops items by the pop procedure, checking each (as
/// [`check_queue_item`]), until it has taken `items` or its `steps` operations are
/// spent. Returns how many items it released (stored `head` past).
pub fn dying_queue_consumer(fixture: &QueueFixture, items: u64, steps: usize) -> u64 {
    let mut budget = Budget(steps);
    let header = fixture.region.header();
    let capacity = fixture.geometry.capacity() as u64;
    let stride = fixture.geometry.slot_stride();
    let mut head = 0;
    while head < items {
        if !budget.step() {
            return head;
        }
        if header.tail.load(Ordering::Acquire) == head {
            continue; // empty: the budget bounds the retries
        }
        let start = (head % capacity) as usize * stride;
        let slot = &fixture.region.body()[start..start + stride];
        if !budget.step() {
            return head;
        }
        let len = slot[LENGTH_WORD].load(Ordering::Relaxed);
        let mut words = [0u64; 2];
        for (word, payload) in words.iter_mut().zip(&slot[PAYLOAD_WORD..]) {
            if !budget.step() {
                return head;
            }
            *word = payload.load(Ordering::Relaxed);
        }
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&words[0].to_le_bytes());
        bytes[8..].copy_from_slice(&words[1].to_le_bytes());
        check_queue_item(head, len as usize, &bytes);
        if !budget.step() {
            return head;
        }
        head += 1;
        header.head.store(head, Ordering::Release);
    }
    head
}

/// Checks item `position` of a take-over scenario: 16 bytes, both words
/// [`tagged`]`(position + 1, owner)` for one owner.
pub fn check_queue_item(position: u64, len: usize, bytes: &[u8]) {
    if len != 16 {
        panic!("torn read: item {position} has length {len}");
    }
    let first = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    let second = u64::from_le_bytes(bytes[8..16].try_into().expect("8 bytes"));
    if first != second || first & 0xffff_ffff != position + 1 {
        panic!("torn read: item {position} holds words {first:#x} and {second:#x}");
    }
}

/// An SPSC producer that took the role over.
pub trait QueueProducerSuccessorRole: Send + 'static {
    /// The position its next push gets.
    fn tail(&self) -> u64;
    /// Pushes `item`, or says why not.
    fn push(&mut self, item: &[u8]) -> Result<u64, PushError>;
}

impl QueueProducerSuccessorRole for SpscProducer<Arc<HeapRegion<SpscHeader>>> {
    fn tail(&self) -> u64 {
        SpscProducer::tail(self)
    }

    fn push(&mut self, item: &[u8]) -> Result<u64, PushError> {
        SpscProducer::push(self, item)
    }
}

/// The real producer take-over: [`SUCCESSOR`] replaces [`DEAD`].
pub fn real_queue_producer_successor(fixture: &QueueFixture) -> impl QueueProducerSuccessorRole {
    // SAFETY: the scenario joined the dead producer's thread before this call, so its
    // last access happens-before it, and it never runs again.
    unsafe { fixture.ring().producer_takeover(DEAD, SUCCESSOR) }
        .expect("the dead producer holds the role")
}

/// An SPSC consumer that took the role over.
pub trait QueueConsumerSuccessorRole: Send + 'static {
    /// The position of the next item it takes.
    fn head(&self) -> u64;
    /// Copies the next item into `buf` and removes it.
    fn pop(&mut self, buf: &mut [u8]) -> Result<Popped, PopError>;
}

impl QueueConsumerSuccessorRole for SpscConsumer<Arc<HeapRegion<SpscHeader>>> {
    fn head(&self) -> u64 {
        SpscConsumer::head(self)
    }

    fn pop(&mut self, buf: &mut [u8]) -> Result<Popped, PopError> {
        SpscConsumer::pop(self, buf)
    }
}

/// The real consumer take-over: [`SUCCESSOR`] replaces [`DEAD`].
pub fn real_queue_consumer_successor(fixture: &QueueFixture) -> impl QueueConsumerSuccessorRole {
    // SAFETY: as for the producer: the dead consumer's thread was joined before.
    unsafe { fixture.ring().consumer_takeover(DEAD, SUCCESSOR) }
        .expect("the dead consumer holds the role")
}

/// Shared-memory stores in one publish of the dying broadcast producer: odd stamp,
/// length, two payload words, done stamp, `tail`. Its loads and fences are not stop
/// points of their own: stopping after one is stopping before the next store.
pub const BROADCAST_PUBLISH_STORES: usize = 6;

/// Marks the broadcast producer role as held by [`DEAD`].
pub fn claim_broadcast_producer(fixture: &BroadcastFixture) {
    claim_as_dead(
        &fixture.region.header().producer,
        "the producer role is free",
    );
}

/// The broadcast producer [`DEAD`]: publishes positions `0..items` (each the
/// position, twice, as `publish_all` does) by the publish procedure and stops after
/// its `stores`-th store. `items` must not exceed the capacity: then no subscriber
/// can hold it back, and the scan (loads only, which decide nothing here) is left out.
pub fn dying_broadcast_producer(fixture: &BroadcastFixture, items: u64, stores: usize) {
    let mut budget = Budget(stores);
    let geometry = fixture.geometry;
    let capacity = geometry.capacity() as u64;
    assert!(items <= capacity, "the dying producer never waits");
    let stride = geometry.slot_stride();
    for position in 0..items {
        let start = geometry.slots_offset() + (position % capacity) as usize * stride;
        let slot = &fixture.region.body()[start..start + stride];
        fence(Ordering::SeqCst);
        let _epoch = fixture.region.header().epoch.load(Ordering::Acquire);
        if !budget.step() {
            return;
        }
        slot[STAMP_WORD].store(2 * position + 1, Ordering::Release);
        fence(Ordering::Release);
        if !budget.step() {
            return;
        }
        slot[LENGTH_WORD].store(16, Ordering::Relaxed);
        for payload in &slot[PAYLOAD_WORD..PAYLOAD_WORD + 2] {
            if !budget.step() {
                return;
            }
            payload.store(position, Ordering::Relaxed);
        }
        if !budget.step() {
            return;
        }
        slot[STAMP_WORD].store(2 * position + 2, Ordering::Release);
        if !budget.step() {
            return;
        }
        fixture
            .region
            .header()
            .tail
            .store(position + 1, Ordering::Release);
    }
}

/// A broadcast producer that took the role over.
pub trait BroadcastSuccessorRole: Send + 'static {
    /// The position its next publish gets.
    fn tail(&self) -> u64;
    /// Publishes `item`, or says why not.
    fn publish(&mut self, item: &[u8]) -> Result<u64, PublishError>;
}

impl BroadcastSuccessorRole for BroadcastProducer<Arc<HeapRegion<BroadcastHeader>>> {
    fn tail(&self) -> u64 {
        BroadcastProducer::tail(self)
    }

    fn publish(&mut self, item: &[u8]) -> Result<u64, PublishError> {
        BroadcastProducer::publish(self, item)
    }
}

/// The real producer take-over: [`SUCCESSOR`] replaces [`DEAD`].
pub fn real_broadcast_successor(fixture: &BroadcastFixture) -> impl BroadcastSuccessorRole {
    fixture
        .ring()
        .producer_takeover(DEAD, SUCCESSOR)
        .expect("the dead producer holds the role")
}
