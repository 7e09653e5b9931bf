//! Broken peers: each follows the binary layout but gets one protocol step wrong.
//!
//! They are deliberately small and deliberately wrong; the checker suites run the
//! ordinary scenarios with one of these in place of a real role and require the
//! checker to report the scenario as failing. Nothing in core refers to them.

use crate::roles::{
    BroadcastFixture, GpuFixture, GpuWriterRole, QueueFixture, QueueProducerRole, RegisterFixture,
    Subscriber, GPU_SLOTS,
};
use crate::roles::{
    BroadcastProducerRole, GpuStreamThreadRole, RegisterReaderRole, RegisterWriterRole,
};
use crate::sync::{fence, Ordering};
use tensorlane_core::{
    entry, AtomicU64, PublishError, PushError, ReadError, ReadInfo, Region, SubscribeOptions,
    LENGTH_WORD, PAYLOAD_WORD, STAMP_WORD,
};
use tensorlane_model::words::{load_le_into, store_le};

/// The published sequence and the words of its slot, read the way a reader starts.
fn published_slot(fixture: &RegisterFixture) -> Option<(u64, &[AtomicU64])> {
    let geometry = fixture.geometry;
    let seq = fixture.region.header().published.load(Ordering::Acquire);
    if seq == 0 {
        return None;
    }
    let start = (seq % geometry.slots() as u64) as usize * geometry.slot_stride();
    Some((
        seq,
        &fixture.region.body()[start..start + geometry.slot_stride()],
    ))
}

/// A register writer whose completing stores are Relaxed instead of Release: a
/// reader can see the new sequence and stamp without the payload behind them.
pub struct RelaxedPublishWriter {
    fixture: RegisterFixture,
    seq: u64,
}

/// Makes a [`RelaxedPublishWriter`].
pub fn relaxed_publish_writer(fixture: &RegisterFixture) -> RelaxedPublishWriter {
    RelaxedPublishWriter {
        fixture: fixture.clone(),
        seq: 0,
    }
}

impl RegisterWriterRole for RelaxedPublishWriter {
    fn write(&mut self, value: &[u8]) {
        self.seq += 1;
        let geometry = self.fixture.geometry;
        let body = self.fixture.region.body();
        let start = (self.seq % geometry.slots() as u64) as usize * geometry.slot_stride();
        let slot = &body[start..start + geometry.slot_stride()];
        slot[STAMP_WORD].store(2 * self.seq + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        slot[LENGTH_WORD].store(value.len() as u64, Ordering::Relaxed);
        store_le(&slot[PAYLOAD_WORD..], value);
        slot[STAMP_WORD].store(2 * self.seq, Ordering::Relaxed); // BUG: must be Release
        self.fixture
            .region
            .header()
            .published
            .store(self.seq, Ordering::Relaxed); // BUG: must be Release
    }
}

/// A register reader without the Acquire fence between copying the payload and
/// re-checking the stamp: the copy may include a later write while the stamp check
/// still passes.
pub struct UnfencedReader {
    fixture: RegisterFixture,
}

/// Makes an [`UnfencedReader`].
pub fn unfenced_reader(fixture: &RegisterFixture) -> UnfencedReader {
    UnfencedReader {
        fixture: fixture.clone(),
    }
}

impl RegisterReaderRole for UnfencedReader {
    fn read(&mut self, buf: &mut [u8]) -> Result<ReadInfo, ReadError> {
        let Some((seq, slot)) = published_slot(&self.fixture) else {
            return Err(ReadError::Empty);
        };
        let before = slot[STAMP_WORD].load(Ordering::Acquire);
        if before != 2 * seq {
            return Err(ReadError::Stalled { attempts: 1 });
        }
        let len = (slot[LENGTH_WORD].load(Ordering::Relaxed) as usize).min(buf.len());
        load_le_into(&slot[PAYLOAD_WORD..], &mut buf[..len]);
        // BUG: no `fence(Acquire)` here.
        if slot[STAMP_WORD].load(Ordering::Relaxed) != before {
            return Err(ReadError::Stalled { attempts: 1 });
        }
        Ok(ReadInfo {
            seq,
            len,
            missed: 0,
        })
    }
}

/// An SPSC producer that publishes the new tail before writing the slot.
pub struct EarlyTailProducer {
    fixture: QueueFixture,
    tail: u64,
}

/// Makes an [`EarlyTailProducer`].
pub fn early_tail_producer(fixture: &QueueFixture) -> EarlyTailProducer {
    EarlyTailProducer {
        fixture: fixture.clone(),
        tail: 0,
    }
}

impl QueueProducerRole for EarlyTailProducer {
    fn push(&mut self, item: &[u8]) -> Result<(), PushError> {
        let header = self.fixture.region.header();
        let capacity = self.fixture.geometry.capacity() as u64;
        if self.tail - header.head.load(Ordering::Acquire) == capacity {
            return Err(PushError::Full);
        }
        let stride = self.fixture.geometry.slot_stride();
        let start = (self.tail % capacity) as usize * stride;
        let slot = &self.fixture.region.body()[start..start + stride];
        self.tail += 1;
        header.tail.store(self.tail, Ordering::Release); // BUG: published before the write
        slot[LENGTH_WORD].store(item.len() as u64, Ordering::Relaxed);
        store_le(&slot[PAYLOAD_WORD..], item);
        Ok(())
    }
}

/// A lossless joiner that skips the epoch bump, the SeqCst fence and the tail
/// re-check: it joins as a lossy subscriber and then marks its entry lossless. A
/// producer whose cached view of the table predates the join never waits for it.
pub fn epochless_lossless_join(fixture: &BroadcastFixture, token: u64) -> Subscriber {
    let ring = fixture.ring();
    let capacity = fixture.geometry.capacity() as u64;
    let options = SubscribeOptions::lossy(capacity).with_history(1);
    let subscriber = ring.subscribe(options, token).expect("a free table entry");
    let start = subscriber.index() * tensorlane_core::ENTRY_WORDS;
    fixture.region.body()[start + entry::MODE].store(entry::MODE_LOSSLESS, Ordering::Release);
    subscriber
}

/// A lossy joiner that writes its entry's words (owner, mode, lag bound, missed,
/// head) and then stores ACTIVE Relaxed instead of Release: an inspector that sees
/// ACTIVE can read the words as they were before the join.
pub fn relaxed_active_lossy_join(fixture: &BroadcastFixture, token: u64) {
    let body = fixture.region.body();
    let e = &body[..tensorlane_core::ENTRY_WORDS];
    let joining = (1 << 2) | entry::JOINING;
    e[entry::STATE]
        .compare_exchange(entry::FREE, joining, Ordering::Acquire, Ordering::Relaxed)
        .expect("entry 0 is free");
    let tail = fixture.region.header().tail.load(Ordering::Acquire);
    e[entry::OWNER].store(token, Ordering::Relaxed);
    e[entry::MODE].store(entry::MODE_LOSSY, Ordering::Relaxed);
    e[entry::MAX_LAG].store(crate::roles::INSPECTED_MAX_LAG, Ordering::Relaxed);
    e[entry::MISSED].store(0, Ordering::Relaxed);
    e[entry::HEAD].store(tail, Ordering::Relaxed);
    e[entry::STATE].store((1 << 2) | entry::ACTIVE, Ordering::Relaxed);
}

/// A broadcast producer without the SeqCst fence between its store of `tail` and
/// its load of `epoch` (otherwise the real protocol): a lossless joiner whose own
/// fence is intact can then miss the producer's progress while the producer misses
/// the join, and a slot the joiner has not read is overwritten.
pub type UnfencedProducer = BrokenProducer;

/// Makes an [`UnfencedProducer`].
pub fn unfenced_producer(fixture: &BroadcastFixture) -> BrokenProducer {
    BrokenProducer::new(fixture, ProducerMistake::NoSeqCstFence)
}

/// A broadcast producer that keeps the head of the *least* lagging lossless
/// subscriber as its cached minimum (and decides `Full` on it): with two lossless
/// subscribers it overwrites slots the slower one has not read.
pub fn fastest_head_producer(fixture: &BroadcastFixture) -> BrokenProducer {
    BrokenProducer::new(fixture, ProducerMistake::FastestHead)
}

/// A broadcast producer without the Release fence after the odd stamp: a reader of
/// an older position in the slot (`read_at`, a subscriber) can copy bytes of the new
/// item while both of its stamp loads still see the old one.
pub fn unfenced_stamp_producer(fixture: &BroadcastFixture) -> BrokenProducer {
    BrokenProducer::new(fixture, ProducerMistake::NoReleaseFence)
}

/// The one protocol step a [`BrokenProducer`] gets wrong.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ProducerMistake {
    /// No `fence(SeqCst)` between the tail store and the epoch load.
    NoSeqCstFence,
    /// The scan keeps the fastest lossless subscriber instead of the slowest.
    FastestHead,
    /// No `fence(Release)` between the odd stamp and the payload stores.
    NoReleaseFence,
}

/// A broadcast producer that follows the protocol (docs/LAYOUT.md) except for one
/// [`ProducerMistake`].
pub struct BrokenProducer {
    fixture: BroadcastFixture,
    mistake: ProducerMistake,
    tail: u64,
    epoch_seen: Option<u64>,
    min_head: Option<u64>,
}

impl BrokenProducer {
    fn new(fixture: &BroadcastFixture, mistake: ProducerMistake) -> Self {
        BrokenProducer {
            fixture: fixture.clone(),
            mistake,
            tail: 0,
            epoch_seen: None,
            min_head: None,
        }
    }

    /// The real scan: lowest head of the ACTIVE lossless entries; `Full` at lag C.
    fn scan(&mut self, position: u64) -> Result<(), PublishError> {
        let geometry = self.fixture.geometry;
        let body = self.fixture.region.body();
        let capacity = geometry.capacity() as u64;
        let mut slowest: Option<(u64, usize, u64)> = None;
        for index in 0..geometry.max_subscribers() {
            let e = &body[index * tensorlane_core::ENTRY_WORDS..];
            let state = e[entry::STATE].load(Ordering::Acquire);
            if state & entry::STATE_MASK != entry::ACTIVE
                || e[entry::MODE].load(Ordering::Relaxed) != entry::MODE_LOSSLESS
            {
                continue;
            }
            let head = e[entry::HEAD].load(Ordering::Acquire);
            let lag = position.wrapping_sub(head);
            let keep = match self.mistake {
                // BUG (FastestHead): keeps the smallest lag.
                ProducerMistake::FastestHead => slowest.is_none_or(|(best, _, _)| lag < best),
                _ => slowest.is_none_or(|(worst, _, _)| lag > worst),
            };
            if keep {
                slowest = Some((lag, index, head));
            }
        }
        self.min_head = slowest.map(|(_, _, head)| head);
        match slowest {
            Some((lag, subscriber, _)) if lag >= capacity => Err(PublishError::Full { subscriber }),
            _ => Ok(()),
        }
    }
}

impl BroadcastProducerRole for BrokenProducer {
    fn publish(&mut self, item: &[u8]) -> Result<u64, PublishError> {
        let geometry = self.fixture.geometry;
        let position = self.tail;
        if self.mistake != ProducerMistake::NoSeqCstFence {
            fence(Ordering::SeqCst);
        } // BUG (NoSeqCstFence): no `fence(SeqCst)` here.
        let epoch = self.fixture.region.header().epoch.load(Ordering::Acquire);
        let near_full = self
            .min_head
            .is_some_and(|m| position.wrapping_sub(m) >= geometry.capacity() as u64);
        if self.epoch_seen != Some(epoch) || near_full {
            self.epoch_seen = None;
            self.scan(position)?;
            self.epoch_seen = Some(epoch);
        }
        let stride = geometry.slot_stride();
        let start =
            geometry.slots_offset() + (position % geometry.capacity() as u64) as usize * stride;
        let slot = &self.fixture.region.body()[start..start + stride];
        slot[STAMP_WORD].store(2 * position + 1, Ordering::Release);
        if self.mistake != ProducerMistake::NoReleaseFence {
            fence(Ordering::Release);
        } // BUG (NoReleaseFence): no `fence(Release)` here.
        slot[LENGTH_WORD].store(item.len() as u64, Ordering::Relaxed);
        store_le(&slot[PAYLOAD_WORD..], item);
        slot[STAMP_WORD].store(2 * position + 2, Ordering::Release);
        self.tail = position + 1;
        let header = self.fixture.region.header();
        header.tail.store(self.tail, Ordering::Release);
        Ok(position)
    }
}

/// A register reader that copies the payload with plain (non-atomic) loads: a data
/// race with the writer that Miri must report. Only meaningful with core atomics.
#[cfg(not(any(feature = "loom", feature = "shuttle")))]
pub struct PlainPayloadReader {
    fixture: RegisterFixture,
}

/// Makes a [`PlainPayloadReader`].
#[cfg(not(any(feature = "loom", feature = "shuttle")))]
pub fn plain_payload_reader(fixture: &RegisterFixture) -> PlainPayloadReader {
    PlainPayloadReader {
        fixture: fixture.clone(),
    }
}

#[cfg(not(any(feature = "loom", feature = "shuttle")))]
impl RegisterReaderRole for PlainPayloadReader {
    fn read(&mut self, buf: &mut [u8]) -> Result<ReadInfo, ReadError> {
        let Some((seq, slot)) = published_slot(&self.fixture) else {
            return Err(ReadError::Empty);
        };
        let before = slot[STAMP_WORD].load(Ordering::Acquire);
        let len = (slot[LENGTH_WORD].load(Ordering::Relaxed) as usize).min(buf.len());
        for (i, chunk) in buf[..len].chunks_mut(8).enumerate() {
            // SAFETY: deliberately unsound: a plain read racing the writer's atomic
            // stores. This canary exists so that Miri reports it.
            let word = unsafe { slot[PAYLOAD_WORD + i].as_ptr().read() };
            let n = chunk.len();
            chunk.copy_from_slice(&word.to_le_bytes()[..n]);
        }
        fence(Ordering::Acquire);
        if slot[STAMP_WORD].load(Ordering::Relaxed) != before || before != 2 * seq {
            return Err(ReadError::Stalled { attempts: 1 });
        }
        Ok(ReadInfo {
            seq,
            len,
            missed: 0,
        })
    }
}

/// A GPU lane writer that reuses a device slot without the release fence of step 1
/// (gpu/src/lane.rs): a reader's re-check after its copy may then see an old count of
/// published writes although its copy already holds bytes of the newer write.
pub struct UnfencedGpuWriter {
    fixture: GpuFixture,
    records: tensorlane_core::SeqlockWriter<
        std::sync::Arc<tensorlane_core::HeapRegion<tensorlane_core::SeqlockHeader>>,
    >,
}

/// The writer without the fence.
pub fn unfenced_gpu_writer(fixture: &GpuFixture) -> UnfencedGpuWriter {
    UnfencedGpuWriter {
        fixture: fixture.clone(),
        records: fixture
            .records
            .lane()
            .writer(1)
            .expect("writer role is free"),
    }
}

impl GpuWriterRole for UnfencedGpuWriter {
    fn write(&mut self, k: u64) {
        for word in self.fixture.slot(k) {
            word.store(k, Ordering::Relaxed);
        }
        self.records
            .write(&(k % GPU_SLOTS).to_le_bytes())
            .expect("record fits");
    }
}

/// A host-backend stream thread that completes an event record with a Relaxed store:
/// a reader that sees the record completed may still read the slot as it was before
/// the copy.
pub struct RelaxedCompletion;

impl GpuStreamThreadRole for RelaxedCompletion {
    fn copy_and_complete(&self, fixture: &GpuFixture, k: u64, count: u64) {
        for word in fixture.slot(k) {
            word.store(k, Ordering::Relaxed);
        }
        fixture.event[1].store(count, Ordering::Relaxed);
    }
}

/// An SPSC batch producer that stores the batch's tail before writing its last item.
pub struct EarlyBatchTailProducer {
    fixture: QueueFixture,
    tail: u64,
}

/// Makes an [`EarlyBatchTailProducer`].
pub fn early_batch_tail_producer(fixture: &QueueFixture) -> EarlyBatchTailProducer {
    EarlyBatchTailProducer {
        fixture: fixture.clone(),
        tail: 0,
    }
}

impl crate::roles::QueueBatchProducerRole for EarlyBatchTailProducer {
    fn push_batch(&mut self, items: &[[u8; 16]]) -> Result<usize, PushError> {
        let header = self.fixture.region.header();
        let capacity = self.fixture.geometry.capacity() as u64;
        let free = capacity - (self.tail - header.head.load(Ordering::Acquire));
        let count = (free as usize).min(items.len());
        if count == 0 {
            return Err(PushError::Full);
        }
        let stride = self.fixture.geometry.slot_stride();
        for (k, item) in items[..count].iter().enumerate() {
            if k + 1 == count {
                // BUG: the whole batch is published before its last item is written.
                header
                    .tail
                    .store(self.tail + count as u64, Ordering::Release);
            }
            let start = ((self.tail + k as u64) % capacity) as usize * stride;
            let slot = &self.fixture.region.body()[start..start + stride];
            slot[LENGTH_WORD].store(item.len() as u64, Ordering::Relaxed);
            store_le(&slot[PAYLOAD_WORD..], item);
        }
        self.tail += count as u64;
        Ok(count)
    }
}

// Take-over successors (see `crate::takeover`).

/// A register successor that continues at the last published sequence instead of
/// after it: its first write rewrites the slot readers are reading, under the same
/// even stamp, so a reader's stamp check passes on a copy mixing the two owners' bytes.
pub struct ReusingRegisterSuccessor {
    fixture: RegisterFixture,
    next: u64,
}

/// Takes the register over from [`crate::takeover::DEAD`] (claim word only) and
/// starts at `published`.
pub fn reusing_register_successor(fixture: &RegisterFixture) -> ReusingRegisterSuccessor {
    use crate::takeover::{DEAD, SUCCESSOR};
    let header = fixture.region.header();
    header
        .writer
        .compare_exchange(DEAD, SUCCESSOR, Ordering::Acquire, Ordering::Relaxed)
        .expect("the dead writer holds the role");
    ReusingRegisterSuccessor {
        fixture: fixture.clone(),
        // BUG: must be `published + 1`.
        next: header.published.load(Ordering::Acquire).max(1),
    }
}

impl crate::takeover::RegisterSuccessorRole for ReusingRegisterSuccessor {
    fn next_seq(&self) -> u64 {
        self.next
    }

    fn write(&mut self, value: &[u8]) {
        let seq = self.next;
        let geometry = self.fixture.geometry;
        let start = (seq % geometry.slots() as u64) as usize * geometry.slot_stride();
        let slot = &self.fixture.region.body()[start..start + geometry.slot_stride()];
        slot[STAMP_WORD].store(2 * seq + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        slot[LENGTH_WORD].store(value.len() as u64, Ordering::Relaxed);
        store_le(&slot[PAYLOAD_WORD..], value);
        slot[STAMP_WORD].store(2 * seq, Ordering::Release);
        self.fixture
            .region
            .header()
            .published
            .store(seq, Ordering::Release);
        self.next = seq + 1;
    }
}

/// An SPSC producer successor that assumes the ring it takes over is empty: it caches
/// `head = tail` and reloads the consumer's counter only once its cache says full, so
/// it overwrites items in flight that the consumer has not taken yet.
pub struct EmptyAssumingProducer {
    fixture: QueueFixture,
    tail: u64,
    cached_head: u64,
}

/// Takes the producer role over from [`crate::takeover::DEAD`].
pub fn empty_assuming_producer(fixture: &QueueFixture) -> EmptyAssumingProducer {
    use crate::takeover::{DEAD, SUCCESSOR};
    let header = fixture.region.header();
    header.owners[0]
        .compare_exchange(DEAD, SUCCESSOR, Ordering::Acquire, Ordering::Relaxed)
        .expect("the dead producer holds the role");
    let tail = header.tail.load(Ordering::Acquire);
    EmptyAssumingProducer {
        fixture: fixture.clone(),
        tail,
        cached_head: tail, // BUG: must look full (`tail - C`) so that head is loaded
    }
}

impl crate::takeover::QueueProducerSuccessorRole for EmptyAssumingProducer {
    fn tail(&self) -> u64 {
        self.tail
    }

    fn push(&mut self, item: &[u8]) -> Result<u64, PushError> {
        let header = self.fixture.region.header();
        let capacity = self.fixture.geometry.capacity() as u64;
        if self.tail - self.cached_head >= capacity {
            self.cached_head = header.head.load(Ordering::Acquire);
            if self.tail - self.cached_head >= capacity {
                return Err(PushError::Full);
            }
        }
        let stride = self.fixture.geometry.slot_stride();
        let start = (self.tail % capacity) as usize * stride;
        let slot = &self.fixture.region.body()[start..start + stride];
        slot[LENGTH_WORD].store(item.len() as u64, Ordering::Relaxed);
        store_le(&slot[PAYLOAD_WORD..], item);
        self.tail += 1;
        header.tail.store(self.tail, Ordering::Release);
        Ok(self.tail - 1)
    }
}

/// An SPSC consumer successor that assumes the ring it takes over is full: it caches
/// `tail = head + C` and so reads slots the producer has not published (without the
/// Acquire load of `tail` that would order the producer's writes before its reads).
pub struct FullAssumingConsumer {
    fixture: QueueFixture,
    head: u64,
    cached_tail: u64,
}

/// Takes the consumer role over from [`crate::takeover::DEAD`].
pub fn full_assuming_consumer(fixture: &QueueFixture) -> FullAssumingConsumer {
    use crate::takeover::{DEAD, SUCCESSOR};
    let header = fixture.region.header();
    header.owners[1]
        .compare_exchange(DEAD, SUCCESSOR, Ordering::Acquire, Ordering::Relaxed)
        .expect("the dead consumer holds the role");
    let head = header.head.load(Ordering::Acquire);
    FullAssumingConsumer {
        fixture: fixture.clone(),
        head,
        // BUG: must look empty (`head`) so that the producer's tail is loaded.
        cached_tail: head + fixture.geometry.capacity() as u64,
    }
}

impl crate::takeover::QueueConsumerSuccessorRole for FullAssumingConsumer {
    fn head(&self) -> u64 {
        self.head
    }

    fn pop(
        &mut self,
        buf: &mut [u8],
    ) -> Result<tensorlane_core::Popped, tensorlane_core::PopError> {
        let header = self.fixture.region.header();
        if self.head == self.cached_tail {
            self.cached_tail = header.tail.load(Ordering::Acquire);
            if self.head == self.cached_tail {
                return Err(tensorlane_core::PopError::Empty);
            }
        }
        let capacity = self.fixture.geometry.capacity() as u64;
        let stride = self.fixture.geometry.slot_stride();
        let start = (self.head % capacity) as usize * stride;
        let slot = &self.fixture.region.body()[start..start + stride];
        let len = (slot[LENGTH_WORD].load(Ordering::Relaxed) as usize).min(buf.len());
        load_le_into(&slot[PAYLOAD_WORD..], &mut buf[..len]);
        let position = self.head;
        self.head += 1;
        header.head.store(self.head, Ordering::Release);
        Ok(tensorlane_core::Popped { position, len })
    }
}

/// A supervisor that evicts and reclaims a table entry it believes dead without
/// checking the generation (it compares and swaps the state word by the layout, as
/// `evict` and `reclaim` would): a stale decision lands on a subscriber that joined
/// through the entry since, which is then evicted or loses its entry.
pub fn generationless_supervisor(fixture: &BroadcastFixture, index: usize, _generation: u64) {
    let state = &fixture.region.body()[index * tensorlane_core::ENTRY_WORDS + entry::STATE];
    for (from, to) in [
        (&[entry::ACTIVE][..], entry::EVICTED),
        (
            &[entry::JOINING, entry::ACTIVE, entry::EVICTED][..],
            entry::FREE,
        ),
    ] {
        let seen = state.load(Ordering::Acquire);
        // BUG: the generation (`seen >> 2`) is not compared with the one judged dead.
        if from.contains(&(seen & entry::STATE_MASK)) {
            let _ = state.compare_exchange(
                seen,
                (seen & !entry::STATE_MASK) | to,
                Ordering::AcqRel,
                Ordering::Relaxed,
            );
        }
    }
}

/// A broadcast producer successor that publishes the position the dead producer left
/// unfinished as it stands (done stamp, then `tail`), as if the dead producer had
/// completed it, instead of writing it again: subscribers receive a slot holding a
/// half-written or older item.
pub struct CompletingBroadcastSuccessor {
    producer: tensorlane_core::BroadcastProducer<
        std::sync::Arc<tensorlane_core::HeapRegion<tensorlane_core::BroadcastHeader>>,
    >,
}

/// Publishes the unfinished position by the layout, then takes the producer role over
/// from [`crate::takeover::DEAD`] with the real call (whose confirmed tail the done
/// stamp satisfies).
pub fn completing_broadcast_successor(fixture: &BroadcastFixture) -> CompletingBroadcastSuccessor {
    use crate::takeover::{DEAD, SUCCESSOR};
    let header = fixture.region.header();
    let tail = header.tail.load(Ordering::Acquire);
    let geometry = fixture.geometry;
    let start = geometry.slots_offset()
        + (tail % geometry.capacity() as u64) as usize * geometry.slot_stride();
    // BUG: the slot at `tail` was never completed by its writer; it must be rewritten.
    fixture.region.body()[start + STAMP_WORD].store(2 * tail + 2, Ordering::Release);
    header.tail.store(tail + 1, Ordering::Release);
    CompletingBroadcastSuccessor {
        producer: fixture
            .ring()
            .producer_takeover(DEAD, SUCCESSOR)
            .expect("the dead producer holds the role"),
    }
}

impl crate::takeover::BroadcastSuccessorRole for CompletingBroadcastSuccessor {
    fn tail(&self) -> u64 {
        self.producer.tail()
    }

    fn publish(&mut self, item: &[u8]) -> Result<u64, PublishError> {
        self.producer.publish(item)
    }
}
