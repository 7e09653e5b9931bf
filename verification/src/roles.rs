//! Fixtures and the roles a scenario plays, with their real implementations.
//!
//! A scenario takes a factory per role it may replace (`fn(&Fixture) -> Role`); the
//! suites pass the `real_*` factories below, the canary tests a broken one from
//! [`crate::canaries`].

use std::sync::Arc;
use tensorlane_core::{
    Broadcast, BroadcastGeometry, BroadcastHeader, BroadcastProducer, BroadcastSubscriber,
    HeapRegion, PublishError, PushError, ReadError, ReadInfo, Seqlock, SeqlockGeometry,
    SeqlockHeader, SeqlockReader, SeqlockWriter, Spsc, SpscGeometry, SpscHeader, SpscProducer,
    SubscribeOptions,
};
use tensorlane_gpu::protocol::{self, EventCounters, EventView};

/// A register on the heap, shared by the threads of a scenario.
#[derive(Clone)]
pub struct RegisterFixture {
    /// The region (broken peers write it directly, by the layout).
    pub region: Arc<HeapRegion<SeqlockHeader>>,
    /// Its geometry.
    pub geometry: SeqlockGeometry,
}

/// The register type of the fixtures.
pub type RegisterLane = Seqlock<Arc<HeapRegion<SeqlockHeader>>>;

impl RegisterFixture {
    /// A fresh register.
    pub fn new(slots: usize, slot_bytes: usize) -> Self {
        let geometry = SeqlockGeometry::new(slots, slot_bytes).expect("valid geometry");
        RegisterFixture {
            region: Arc::new(HeapRegion::new(geometry.body_words())),
            geometry,
        }
    }

    /// The register over the fixture's region.
    pub fn lane(&self) -> RegisterLane {
        Seqlock::new(self.region.clone(), self.geometry).expect("body matches geometry")
    }
}

/// An SPSC ring on the heap.
#[derive(Clone)]
pub struct QueueFixture {
    /// The region.
    pub region: Arc<HeapRegion<SpscHeader>>,
    /// Its geometry.
    pub geometry: SpscGeometry,
}

/// The ring type of the fixtures.
pub type QueueRing = Spsc<Arc<HeapRegion<SpscHeader>>>;

impl QueueFixture {
    /// A fresh ring.
    pub fn new(capacity: usize, slot_bytes: usize) -> Self {
        let geometry = SpscGeometry::new(capacity, slot_bytes).expect("valid geometry");
        QueueFixture {
            region: Arc::new(HeapRegion::new(geometry.body_words())),
            geometry,
        }
    }

    /// The ring over the fixture's region.
    pub fn ring(&self) -> QueueRing {
        Spsc::new(self.region.clone(), self.geometry).expect("body matches geometry")
    }
}

/// A broadcast ring on the heap.
#[derive(Clone)]
pub struct BroadcastFixture {
    /// The region.
    pub region: Arc<HeapRegion<BroadcastHeader>>,
    /// Its geometry.
    pub geometry: BroadcastGeometry,
}

/// The broadcast type of the fixtures.
pub type BroadcastRing = Broadcast<Arc<HeapRegion<BroadcastHeader>>>;

/// A subscriber of a fixture ring.
pub type Subscriber = BroadcastSubscriber<Arc<HeapRegion<BroadcastHeader>>>;

impl BroadcastFixture {
    /// A fresh ring.
    pub fn new(capacity: usize, slot_bytes: usize, subscribers: usize) -> Self {
        let geometry =
            BroadcastGeometry::new(capacity, slot_bytes, subscribers).expect("valid geometry");
        BroadcastFixture {
            region: Arc::new(HeapRegion::new(geometry.body_words())),
            geometry,
        }
    }

    /// The ring over the fixture's region.
    pub fn ring(&self) -> BroadcastRing {
        Broadcast::new(self.region.clone(), self.geometry).expect("body matches geometry")
    }
}

/// Writes values to a register.
pub trait RegisterWriterRole: Send + 'static {
    /// Publishes `value`.
    fn write(&mut self, value: &[u8]);
}

/// Reads a register.
pub trait RegisterReaderRole: Send + 'static {
    /// Reads the latest value into `buf`.
    fn read(&mut self, buf: &mut [u8]) -> Result<ReadInfo, ReadError>;
}

/// Pushes items into an SPSC ring.
pub trait QueueProducerRole: Send + 'static {
    /// Pushes `item`, or says why not.
    fn push(&mut self, item: &[u8]) -> Result<(), PushError>;
}

/// Publishes items into a broadcast ring.
pub trait BroadcastProducerRole: Send + 'static {
    /// Publishes `item`, or says why not.
    fn publish(&mut self, item: &[u8]) -> Result<u64, PublishError>;
}

impl BroadcastProducerRole for BroadcastProducer<Arc<HeapRegion<BroadcastHeader>>> {
    fn publish(&mut self, item: &[u8]) -> Result<u64, PublishError> {
        BroadcastProducer::publish(self, item)
    }
}

/// The real broadcast producer.
pub fn real_broadcast_producer(fixture: &BroadcastFixture) -> impl BroadcastProducerRole {
    fixture.ring().producer(1).expect("producer role is free")
}

impl RegisterWriterRole for SeqlockWriter<Arc<HeapRegion<SeqlockHeader>>> {
    fn write(&mut self, value: &[u8]) {
        SeqlockWriter::write(self, value).expect("value fits the slot");
    }
}

impl RegisterReaderRole for SeqlockReader<Arc<HeapRegion<SeqlockHeader>>> {
    fn read(&mut self, buf: &mut [u8]) -> Result<ReadInfo, ReadError> {
        SeqlockReader::read(self, buf)
    }
}

/// The real producer alternates copying pushes and loans filled word by word, so
/// that both paths run under every checker.
pub struct RealQueueProducer {
    producer: SpscProducer<Arc<HeapRegion<SpscHeader>>>,
    use_loan: bool,
}

impl QueueProducerRole for RealQueueProducer {
    fn push(&mut self, item: &[u8]) -> Result<(), PushError> {
        if !self.use_loan {
            self.producer.push(item)?;
        } else {
            let loan = self.producer.loan()?;
            tensorlane_model::words::store_le(loan.words(), item);
            loan.commit(item.len())?;
        }
        self.use_loan = !self.use_loan;
        Ok(())
    }
}

/// The real register writer.
pub fn real_register_writer(fixture: &RegisterFixture) -> impl RegisterWriterRole {
    fixture.lane().writer(1).expect("writer role is free")
}

/// The real register reader.
pub fn real_register_reader(fixture: &RegisterFixture) -> impl RegisterReaderRole {
    let mut reader = fixture.lane().reader();
    // Checkers explore every retry; the scenarios treat `Stalled` as "try later".
    reader.set_max_attempts(2);
    reader
}

/// The real SPSC producer.
pub fn real_queue_producer(fixture: &QueueFixture) -> RealQueueProducer {
    RealQueueProducer {
        producer: fixture.ring().producer(1).expect("producer role is free"),
        use_loan: false,
    }
}

/// The real lossless join, asking for one item of history.
pub fn real_lossless_join(fixture: &BroadcastFixture, token: u64) -> Subscriber {
    fixture
        .ring()
        .subscribe(SubscribeOptions::lossless().with_history(1), token)
        .expect("a free table entry")
}

/// Lag bound the inspection scenario's lossy joiner asks for.
pub const INSPECTED_MAX_LAG: u64 = 1;

/// The real lossy join (lag bound [`INSPECTED_MAX_LAG`]), leaving again at once.
pub fn real_lossy_join(fixture: &BroadcastFixture, token: u64) {
    let subscriber = fixture
        .ring()
        .subscribe(SubscribeOptions::lossy(INSPECTED_MAX_LAG), token)
        .expect("a free table entry");
    drop(subscriber);
}

/// Device slots of a GPU lane (tensorlane-gpu), as its host backend maps them.
pub const GPU_SLOTS: u64 = 2;
/// Words of each modelled device slot.
pub const GPU_SLOT_WORDS: usize = 2;

/// A GPU lane's slot protocol over the real core and the shipped protocol steps of
/// tensorlane-gpu (`tensorlane_gpu::protocol`, the module its lanes and host backend
/// call, and the only part of that crate built under the checkers): the record lane is
/// a register, the device slots are atomic words, as the host backend maps them.
/// Copies complete at once (the inline host backend) or on a stream thread (the
/// delayed mode).
#[derive(Clone)]
pub struct GpuFixture {
    /// The record lane.
    pub records: RegisterFixture,
    /// `GPU_SLOTS` slots of `GPU_SLOT_WORDS` words.
    pub slots: Arc<[tensorlane_core::AtomicU64]>,
    /// One slot's host-backend event: records issued (word 0) and completed (word 1).
    pub event: Arc<[tensorlane_core::AtomicU64]>,
}

impl GpuFixture {
    /// A fresh lane.
    pub fn new() -> Self {
        GpuFixture {
            records: RegisterFixture::new(2, 8),
            slots: (0..GPU_SLOTS as usize * GPU_SLOT_WORDS)
                .map(|_| tensorlane_core::AtomicU64::new(0))
                .collect(),
            event: (0..2).map(|_| tensorlane_core::AtomicU64::new(0)).collect(),
        }
    }

    /// The words of device slot `slot`.
    pub fn slot(&self, slot: u64) -> &[tensorlane_core::AtomicU64] {
        let start = (slot % GPU_SLOTS) as usize * GPU_SLOT_WORDS;
        &self.slots[start..start + GPU_SLOT_WORDS]
    }

    /// The writer's side of the event (`Slots::event` in gpu/src/host.rs).
    pub fn event_counters(&self) -> EventCounters<'_> {
        EventCounters::new(&self.event[0], &self.event[1])
    }

    /// A reader's side of the event (`Slots::event_view`).
    pub fn event_view(&self) -> EventView<'_> {
        EventView::new(tensorlane_core::ReadWords::new(&self.event), 0)
    }
}

impl Default for GpuFixture {
    fn default() -> Self {
        Self::new()
    }
}

/// The bytes of write `k` in a slot: every word holds `k`.
pub fn gpu_write_bytes(k: u64) -> [u8; GPU_SLOT_WORDS * 8] {
    let mut bytes = [0u8; GPU_SLOT_WORDS * 8];
    for word in bytes.chunks_exact_mut(8) {
        word.copy_from_slice(&k.to_le_bytes());
    }
    bytes
}

/// Writes a GPU lane.
pub trait GpuWriterRole: Send + 'static {
    /// Writes write `k` (1, 2, ...): every word of slot `k mod GPU_SLOTS` holds `k`.
    fn write(&mut self, k: u64);
}

/// The real GPU writer: the steps of `GpuStreamWriter::write` on the inline host
/// backend, each through the shipped code.
pub struct RealGpuWriter {
    fixture: GpuFixture,
    records: SeqlockWriter<Arc<HeapRegion<SeqlockHeader>>>,
}

/// The real GPU writer.
pub fn real_gpu_writer(fixture: &GpuFixture) -> RealGpuWriter {
    RealGpuWriter {
        fixture: fixture.clone(),
        records: fixture
            .records
            .lane()
            .writer(1)
            .expect("writer role is free"),
    }
}

impl GpuWriterRole for RealGpuWriter {
    fn write(&mut self, k: u64) {
        // Step 1 (`Exporter::before_slot_write`).
        protocol::before_slot_write();
        // Step 2: the copy into the slot (`Slots::store` of the inline host backend).
        tensorlane_core::store_bytes(self.fixture.slot(k), &gpu_write_bytes(k));
        // Step 3: the record (the slot index), through the record lane.
        self.records
            .write(&(k % GPU_SLOTS).to_le_bytes())
            .expect("record fits");
    }
}

/// The stream thread of the host backend's delayed mode (gpu/src/host.rs): runs an
/// enqueued copy into a slot, then the event record enqueued after it.
pub trait GpuStreamThreadRole: Send + 'static {
    /// Copies write `k` into its slot, then completes record `count` of the event.
    fn copy_and_complete(&self, fixture: &GpuFixture, k: u64, count: u64);
}

/// The real stream thread: `run_stream` in gpu/src/host.rs, through the shipped code.
pub struct RealGpuStreamThread;

impl GpuStreamThreadRole for RealGpuStreamThread {
    fn copy_and_complete(&self, fixture: &GpuFixture, k: u64, count: u64) {
        // Job::Copy.
        protocol::stream_copy(fixture.slot(k), &gpu_write_bytes(k));
        // Job::Record (`Slots::complete`).
        fixture.event_counters().complete(count);
    }
}

// Batches and range reads.

/// Pushes several items into an SPSC ring with one store of the tail.
pub trait QueueBatchProducerRole: Send + 'static {
    /// Pushes as many of `items` as fit; returns how many, or says why none.
    fn push_batch(&mut self, items: &[[u8; 16]]) -> Result<usize, PushError>;
}

impl QueueBatchProducerRole for SpscProducer<Arc<HeapRegion<SpscHeader>>> {
    fn push_batch(&mut self, items: &[[u8; 16]]) -> Result<usize, PushError> {
        SpscProducer::push_batch(self, items)
    }
}

/// The real SPSC producer, pushing batches.
pub fn real_batch_producer(fixture: &QueueFixture) -> impl QueueBatchProducerRole {
    fixture.ring().producer(1).expect("producer role is free")
}
