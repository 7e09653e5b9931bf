//! Lossless queues: one producer, one consumer, over the core's SPSC ring.
//!
//! # Copies and loans
//! [`QueueProducer::push`] and [`QueueConsumer::pop`] copy through atomic words: no
//! process, whatever it writes into the lane, can make them misbehave beyond a
//! reported [`LaneError::Corrupt`]. The zero-copy loans ([`QueueProducer::push_with`],
//! [`QueueConsumer::pop_with`]) hand out plain `&mut [u8]` / `&[u8]` over the shared
//! slot, which is sound only while no other process writes that slot; they are
//! `unsafe` because that is a promise about the lane's other processes (they follow
//! docs/LAYOUT.md), which this process cannot check. See the threat model in the
//! README.
//!
//! An item whose length is not the lane's frame size is removed and reported as
//! `Corrupt` by both `pop` and `pop_with`, so neither wedges on it.
//!
//! ```no_run
//! use std::time::Duration;
//! use tensorlane_shm::{QueueConsumer, QueueProducer, TensorSpec};
//! let spec = TensorSpec::bytes(1 << 20).unwrap();
//! let mut producer = QueueProducer::create("jobs", &spec, 8).unwrap();
//! producer.push(&vec![7u8; 1 << 20], Some(Duration::from_secs(1))).unwrap();
//!
//! // In another process:
//! let mut consumer = QueueConsumer::open("jobs").unwrap();
//! // SAFETY: every process that writes this queue follows docs/LAYOUT.md.
//! let frame = unsafe {
//!     consumer.pop_with(Some(Duration::from_secs(1)), |frame, tensor| (frame.seq, tensor[0]))
//! }
//! .unwrap();
//! assert_eq!(frame, (0, 7));
//! ```

use crate::dtype::TensorSpec;
use crate::error::LaneError;
use crate::header::{Geometry, Kind, FRAME_BYTES};
use crate::lane::{self, wait, Frame, ShmRegion};
use crate::segment::{owner_token, CreateOptions, Segment, CONSUMER_ROLE, WRITER_ROLE};
use std::sync::Arc;
use std::time::Duration;
use tensorlane_core::{
    Exclusive, PopError, PushError, Spsc, SpscConsumer, SpscHeader, SpscPeek, SpscProducer,
};

type Region = Exclusive<ShmRegion<SpscHeader>>;

/// Words of the frame prefix at the start of every slot.
const FRAME_WORDS: usize = FRAME_BYTES / 8;

fn ring(segment: &Arc<Segment>) -> Spsc<Region> {
    let Geometry::Queue(geometry) = segment.info().geometry else {
        unreachable!("kind checked when the segment was opened")
    };
    // SAFETY: the segment's kind is Queue, whose core header is SpscHeader.
    let region = unsafe { ShmRegion::new(segment.clone()) };
    // SAFETY: the `Exclusive` promise. This process builds one ring per handle over
    // the segment and writes it only through that handle; the byte views the promise
    // unlocks are handed out only by `push_with` and `pop_with`, which are `unsafe`
    // and whose callers promise the rest, that every other process writing the lane
    // follows its protocol (docs/LAYOUT.md). The copy paths use atomic words only and
    // need no promise.
    let region = unsafe { Exclusive::new(region) };
    Spsc::new(region, geometry).expect("segment size validated")
}

/// The frame id and timestamp from the prefix words of an item.
fn frame_of(peek: &SpscPeek<'_, Region>) -> Frame {
    let mut prefix = [0u8; FRAME_BYTES];
    peek.words().load_bytes(&mut prefix);
    let (frame_id, timestamp_ns) = lane::parse_prefix(&prefix);
    Frame {
        seq: peek.position(),
        frame_id,
        timestamp_ns,
        skipped: 0,
    }
}

/// The next item, if one is waiting and is a frame of `expected` bytes. An item of
/// any other length is removed and reported: `pop` and `pop_with` treat it alike.
fn next_frame(
    consumer: &mut SpscConsumer<Region>,
    expected: usize,
) -> Option<Result<SpscPeek<'_, Region>, LaneError>> {
    match consumer.peek() {
        Ok(peek) if peek.len() == expected => Some(Ok(peek)),
        Ok(peek) => {
            let found = peek.len() as u64;
            peek.release();
            Some(Err(LaneError::Corrupt(
                tensorlane_core::Corruption::Length {
                    found,
                    max: expected as u64,
                },
            )))
        }
        Err(PopError::Empty) => None,
        Err(PopError::Corrupt(c)) => Some(Err(LaneError::Corrupt(c))),
        // A peek copies nothing, so it never needs a buffer.
        Err(PopError::BufferTooSmall { needed }) => Some(Err(LaneError::Corrupt(
            tensorlane_core::Corruption::Length {
                found: needed as u64,
                max: expected as u64,
            },
        ))),
    }
}

fn role_taken(segment: &Segment, role: &'static str) -> LaneError {
    LaneError::RoleTaken {
        name: segment.name().to_string(),
        role,
    }
}

/// The producer of a queue.
#[derive(Debug)]
pub struct QueueProducer {
    producer: SpscProducer<Region>,
    segment: Arc<Segment>,
    next_frame: u64,
}

impl QueueProducer {
    /// Creates queue `name` of `capacity` tensors `spec` (a power of two).
    pub fn create(name: &str, spec: &TensorSpec, capacity: usize) -> Result<Self, LaneError> {
        Self::create_with(name, spec, capacity, CreateOptions::default())
    }

    /// [`create`](Self::create) with options.
    pub fn create_with(
        name: &str,
        spec: &TensorSpec,
        capacity: usize,
        options: CreateOptions,
    ) -> Result<Self, LaneError> {
        let segment = lane::create_segment(name, Kind::Queue, spec, capacity, 0, options)?;
        Self::claim(segment)
    }

    /// Becomes the producer of existing queue `name`, whose previous producer is gone.
    pub fn take_over(name: &str) -> Result<Self, LaneError> {
        Self::claim(lane::open_segment(name, Kind::Queue, None)?)
    }

    fn claim(segment: Arc<Segment>) -> Result<Self, LaneError> {
        lane::lock_role(&segment, WRITER_ROLE, "producer")?;
        let ring = ring(&segment);
        // We hold the producer lock: whoever the claim word names is gone.
        let previous = ring.owners().0;
        // SAFETY: we hold the producer's role lock, which the kernel releases only when
        // its holder's descriptor is closed: whoever the claim word names is gone.
        let producer = unsafe { ring.producer_takeover(previous, owner_token()) }
            .map_err(|_| role_taken(&segment, "producer"))?;
        Ok(QueueProducer {
            producer,
            segment,
            next_frame: 1,
        })
    }

    /// The tensor each item carries.
    pub fn spec(&self) -> &TensorSpec {
        &self.segment.info().spec
    }

    /// The lane's validated header (creator, geometry, tensor, clock, metadata).
    pub fn info(&self) -> &crate::header::HeaderInfo {
        self.segment.info()
    }

    /// The lane's metadata, written at create (empty if none was given).
    pub fn metadata(&self) -> &crate::metadata::Metadata {
        &self.segment.info().metadata
    }

    /// Whether a live process holds the consumer role.
    pub fn consumer_alive(&self) -> bool {
        self.segment.role_alive(CONSUMER_ROLE).unwrap_or(false)
    }

    /// Pushes `tensor`; waits up to `timeout` for space (`None`: forever; zero: not at
    /// all). Returns the item's position.
    pub fn push(&mut self, tensor: &[u8], timeout: Option<Duration>) -> Result<u64, LaneError> {
        lane::check_size(self.spec(), tensor.len())?;
        let frame_id = self.next_frame;
        let prefix = lane::frame_prefix(frame_id, lane::now_ns(self.segment.info().clock));
        let segment = &self.segment;
        let producer = &mut self.producer;
        let position = wait(&segment.header().space, timeout, || {
            match producer.push_parts(&[&prefix, tensor]) {
                Ok(position) => Some(Ok(position)),
                Err(PushError::Full) => None,
                Err(PushError::Corrupt(c)) => Some(Err(LaneError::Corrupt(c))),
                Err(PushError::TooLarge { len, .. }) => Some(Err(LaneError::WrongSize {
                    expected: len,
                    found: len,
                })),
            }
        })?;
        self.next_frame += 1;
        segment.header().data.notify();
        Ok(position)
    }

    /// Pushes a tensor written in place by `fill` (zero-copy): `fill` gets the slot's
    /// tensor bytes, exclusively, and the item is pushed when it returns.
    ///
    /// # Safety
    /// Every other process that can write this lane follows docs/LAYOUT.md: in
    /// particular none writes a slot it does not own (the consumer never writes a
    /// slot the producer has not handed over). A process that does, such as a buggy
    /// or hostile peer with write access to the lane's object, makes this call
    /// undefined behaviour in this process. Where the peers are not trusted, use
    /// [`push`](Self::push), which copies through atomic words.
    pub unsafe fn push_with<T>(
        &mut self,
        timeout: Option<Duration>,
        fill: impl FnOnce(&mut [u8]) -> T,
    ) -> Result<(u64, T), LaneError> {
        let tensor_bytes = self.spec().byte_len();
        let segment = &self.segment;
        let producer = &mut self.producer;
        wait(&segment.header().space, timeout, || match producer.free() {
            Ok(0) => None,
            Ok(_) => Some(Ok(())),
            Err(PushError::Corrupt(c)) => Some(Err(LaneError::Corrupt(c))),
            Err(_) => None,
        })?;
        let frame_id = self.next_frame;
        let mut loan = self.producer.loan().map_err(|e| match e {
            PushError::Corrupt(c) => LaneError::Corrupt(c),
            _ => LaneError::Timeout,
        })?;
        // The caller's promise (above) is the part of the `Exclusive` contract this
        // process cannot keep by itself (see `ring`).
        let bytes = loan.bytes_mut();
        bytes[..FRAME_BYTES].copy_from_slice(&lane::frame_prefix(
            frame_id,
            lane::now_ns(self.segment.info().clock),
        ));
        let out = fill(&mut bytes[FRAME_BYTES..FRAME_BYTES + tensor_bytes]);
        let position = loan
            .commit(FRAME_BYTES + tensor_bytes)
            .expect("the frame fits the slot by construction");
        self.next_frame += 1;
        segment.header().data.notify();
        Ok((position, out))
    }
}

/// The consumer of a queue.
#[derive(Debug)]
pub struct QueueConsumer {
    consumer: SpscConsumer<Region>,
    segment: Arc<Segment>,
}

impl QueueConsumer {
    /// Opens queue `name` as its consumer. Fails with `RoleTaken` if a live process
    /// consumes it; takes over from a dead one (an item it had peeked but not
    /// released is delivered again).
    pub fn open(name: &str) -> Result<Self, LaneError> {
        Self::claim(lane::open_segment(name, Kind::Queue, None)?)
    }

    /// Like [`open`](Self::open), checking the tensor.
    pub fn open_expect(name: &str, spec: &TensorSpec) -> Result<Self, LaneError> {
        Self::claim(lane::open_segment(name, Kind::Queue, Some(spec))?)
    }

    fn claim(segment: Arc<Segment>) -> Result<Self, LaneError> {
        lane::lock_role(&segment, CONSUMER_ROLE, "consumer")?;
        let ring = ring(&segment);
        let previous = ring.owners().1;
        // SAFETY: we hold the consumer's role lock: whoever the claim word names is gone.
        let consumer = unsafe { ring.consumer_takeover(previous, owner_token()) }
            .map_err(|_| role_taken(&segment, "consumer"))?;
        Ok(QueueConsumer { consumer, segment })
    }

    /// The tensor each item carries.
    pub fn spec(&self) -> &TensorSpec {
        &self.segment.info().spec
    }

    /// The lane's validated header (creator, geometry, tensor, clock, metadata).
    pub fn info(&self) -> &crate::header::HeaderInfo {
        self.segment.info()
    }

    /// The lane's metadata, written at create (empty if none was given).
    pub fn metadata(&self) -> &crate::metadata::Metadata {
        &self.segment.info().metadata
    }

    /// Whether a live process holds the producer role.
    pub fn producer_alive(&self) -> bool {
        self.segment.role_alive(WRITER_ROLE).unwrap_or(false)
    }

    /// Pops the next item into `out`, waiting up to `timeout` (`None`: forever).
    /// Copies through atomic words: safe whatever other processes write.
    pub fn pop(&mut self, out: &mut [u8], timeout: Option<Duration>) -> Result<Frame, LaneError> {
        lane::check_size(self.spec(), out.len())?;
        let segment = &self.segment;
        let consumer = &mut self.consumer;
        let expected = FRAME_BYTES + out.len();
        let frame = wait(&segment.header().data, timeout, || {
            next_frame(consumer, expected).map(|peek| {
                let peek = peek?;
                let frame = frame_of(&peek);
                let words = peek.words();
                words
                    .slice(FRAME_WORDS..words.len())
                    .expect("a slot holds its frame prefix")
                    .load_bytes(out);
                peek.release();
                Ok(frame)
            })
        })?;
        segment.header().space.notify();
        Ok(frame)
    }

    /// Hands the next item to `read` in place (zero-copy), then removes it.
    ///
    /// # Safety
    /// Every other process that can write this lane follows docs/LAYOUT.md: none
    /// writes a slot it has handed over (the producer never writes an item the
    /// consumer has not released). A process that does, such as a buggy or hostile
    /// peer with write access to the lane's object, makes this call undefined
    /// behaviour in this process. Where the peers are not trusted, use
    /// [`pop`](Self::pop), which copies through atomic words.
    pub unsafe fn pop_with<T>(
        &mut self,
        timeout: Option<Duration>,
        read: impl FnOnce(&Frame, &[u8]) -> T,
    ) -> Result<T, LaneError> {
        let expected = FRAME_BYTES + self.spec().byte_len();
        let segment = &self.segment;
        let consumer = &mut self.consumer;
        let mut read = Some(read);
        let out = wait(&segment.header().data, timeout, || {
            next_frame(consumer, expected).map(|peek| {
                let peek = peek?;
                let frame = frame_of(&peek);
                // The caller's promise (above) is the part of the `Exclusive` contract
                // this process cannot keep by itself (see `ring`).
                let bytes = peek.bytes();
                // `wait` stops at the first `Some`, so `read` is taken once.
                let read = read.take().expect("an item is read once");
                let out = read(&frame, &bytes[FRAME_BYTES..]);
                peek.release();
                Ok(out)
            })
        })?;
        segment.header().space.notify();
        Ok(out)
    }
}
