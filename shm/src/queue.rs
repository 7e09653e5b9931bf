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
//! producer.push_timeout(&vec![7u8; 1 << 20], Duration::from_secs(1)).unwrap();
//!
//! // In another process:
//! let mut consumer = QueueConsumer::open("jobs").unwrap();
//! // SAFETY: every process that writes this queue follows docs/LAYOUT.md.
//! let frame = unsafe {
//!     consumer.pop_with_timeout(Duration::from_secs(1), |frame, tensor| (frame.seq, tensor[0]))
//! }
//! .unwrap();
//! assert_eq!(frame, (1, 7)); // the first item pushed has sequence 1
//! ```

use crate::dtype::TensorSpec;
use crate::element::{self, Element};
use crate::error::{self, LaneError};
use crate::header::{Geometry, Kind, FRAME_BYTES};
use crate::lane::{self, wait, Frame, ShmRegion, Wait, POLLS_BEFORE_LIVENESS};
use crate::segment::{
    owner_token, CreateOptions, OpenOptions, Segment, CONSUMER_ROLE, WRITER_ROLE,
};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tensorlane_core::{
    Exclusive, PopError, Spsc, SpscConsumer, SpscHeader, SpscPeek, SpscProducer,
};

mod batch;
mod held;

pub use held::HeldSlot;

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
        seq: peek.position().wrapping_add(1),
        frame_id,
        timestamp_ns,
        missed: 0,
    }
}

/// The next item, if one is waiting and is a frame of `expected` bytes. An item of
/// any other length is removed and reported: `pop` and `pop_with` treat it alike.
/// With nothing waiting, `Ok(None)`.
fn next_frame(
    consumer: &mut SpscConsumer<Region>,
    expected: usize,
) -> Result<Option<SpscPeek<'_, Region>>, LaneError> {
    match consumer.peek() {
        Ok(peek) if peek.len() == expected => Ok(Some(peek)),
        Ok(peek) => {
            let found = peek.len();
            peek.release();
            Err(error::wrong_length(found, expected))
        }
        Err(PopError::Empty) => Ok(None),
        Err(e) => Err(error::from_pop(e, expected)),
    }
}

/// One attempt of a consumer's wait: the next item (`Some(Ok)`), an error
/// (`Some(Err)`), or nothing yet (`None`). Once the spin phase is over, an empty ring
/// whose producer is gone ends the wait with `WriterGone`, after one more look: an
/// item pushed just before the producer died is delivered first.
fn attempt_next<'a>(
    consumer: &'a mut SpscConsumer<Region>,
    segment: &Segment,
    expected: usize,
    polls: &mut u32,
    wait: Wait,
) -> Option<Result<SpscPeek<'a, Region>, LaneError>> {
    let mut gone = false;
    match consumer.available() {
        Ok(0) => {
            *polls += 1;
            let slow = matches!(wait, Wait::Until(_)) && *polls > POLLS_BEFORE_LIVENESS;
            if !slow || segment.role_alive(WRITER_ROLE).unwrap_or(true) {
                return None;
            }
            // The role lock was released after the producer's last push: look again.
            gone = true;
        }
        Ok(_) => {}
        Err(e) => return Some(Err(error::from_pop(e, expected))),
    }
    match next_frame(consumer, expected) {
        Ok(Some(peek)) => Some(Ok(peek)),
        Ok(None) if gone => Some(Err(LaneError::WriterGone)),
        Ok(None) => None,
        Err(e) => Some(Err(e)),
    }
}

/// After a pop: wakes a producer waiting for room if a slot was freed, by an item
/// taken or by one of the wrong length removed (`Corrupt`).
fn notify_freed<T>(segment: &Segment, popped: Result<T, LaneError>) -> Result<T, LaneError> {
    if matches!(popped, Ok(_) | Err(LaneError::Corrupt(_))) {
        segment.header().space.notify();
    }
    popped
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
        Self::take_over_with(name, OpenOptions::new())
    }

    /// [`take_over`](Self::take_over) with options (an expected tensor; pre-faulting
    /// and locking the mapping for a real-time loop).
    pub fn take_over_with(name: &str, options: OpenOptions) -> Result<Self, LaneError> {
        Self::claim(lane::open_segment(name, Kind::Queue, &options)?)
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

    /// Sequence number the next push will have (the items pushed so far, plus 1). A
    /// producer that took over continues from the last item its predecessor pushed.
    pub fn next_seq(&self) -> u64 {
        self.producer.tail().wrapping_add(1)
    }

    /// Sets the frame id the next push carries; later pushes count on from it (a
    /// replay of a recording keeps the recorded ids this way).
    pub fn set_next_frame(&mut self, frame_id: u64) {
        self.next_frame = frame_id;
    }

    /// Whether a live process holds the consumer role.
    pub fn consumer_alive(&self) -> bool {
        self.segment.role_alive(CONSUMER_ROLE).unwrap_or(false)
    }

    /// Pushes `tensor` (exactly one tensor's bytes), waiting without limit for
    /// space. Returns the item's sequence number (the n-th item pushed has n).
    pub fn push(&mut self, tensor: &[u8]) -> Result<u64, LaneError> {
        self.push_inner(tensor, Wait::Until(None))
    }

    /// [`push`](Self::push) without waiting: `Full` if there is no space now.
    pub fn try_push(&mut self, tensor: &[u8]) -> Result<u64, LaneError> {
        self.push_inner(tensor, Wait::Never)
    }

    /// [`push`](Self::push), waiting at most `timeout` for space (`Timeout`).
    pub fn push_timeout(&mut self, tensor: &[u8], timeout: Duration) -> Result<u64, LaneError> {
        self.push_inner(tensor, Wait::timeout(timeout))
    }

    /// [`push`](Self::push), waiting for space until `deadline` (`Timeout`); one
    /// attempt is made even if the deadline has passed.
    pub fn push_deadline(&mut self, tensor: &[u8], deadline: Instant) -> Result<u64, LaneError> {
        self.push_inner(tensor, Wait::Until(Some(deadline)))
    }

    /// [`push`](Self::push) from a slice of elements of the lane's dtype, as many as
    /// the tensor has (`WrongDType`, `WrongCount`).
    pub fn push_elements<T: Element>(&mut self, tensor: &[T]) -> Result<u64, LaneError> {
        self.push(element::as_bytes(self.spec(), tensor)?)
    }

    /// [`try_push`](Self::try_push) from a slice of elements of the lane's dtype.
    pub fn try_push_elements<T: Element>(&mut self, tensor: &[T]) -> Result<u64, LaneError> {
        self.try_push(element::as_bytes(self.spec(), tensor)?)
    }

    /// [`push_timeout`](Self::push_timeout) from a slice of elements of the lane's
    /// dtype.
    pub fn push_elements_timeout<T: Element>(
        &mut self,
        tensor: &[T],
        timeout: Duration,
    ) -> Result<u64, LaneError> {
        self.push_timeout(element::as_bytes(self.spec(), tensor)?, timeout)
    }

    fn push_inner(&mut self, tensor: &[u8], wait_for: Wait) -> Result<u64, LaneError> {
        lane::check_size(self.spec(), tensor.len())?;
        let frame_id = self.next_frame;
        let prefix = lane::frame_prefix(frame_id, lane::now_ns(self.segment.info().clock));
        let segment = &self.segment;
        let producer = &mut self.producer;
        let position = wait(
            &segment.header().space,
            wait_for,
            LaneError::Full,
            || match producer.push_parts(&[&prefix, tensor]) {
                Ok(position) => Some(Ok(position)),
                Err(tensorlane_core::PushError::Full) => None,
                Err(e) => Some(Err(error::from_push(e))),
            },
        )?;
        self.next_frame = self.next_frame.wrapping_add(1);
        segment.header().data.notify();
        Ok(position.wrapping_add(1))
    }

    /// Pushes a tensor written in place by `fill` (zero-copy), waiting without limit
    /// for space: `fill` gets the slot's tensor bytes, exclusively, and the item is
    /// pushed when it returns. The slot is not zeroed first: `fill` sees whatever an
    /// earlier item left there and must write every byte it means to send. Returns
    /// the item's sequence number and what `fill` returned.
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
        fill: impl FnOnce(&mut [u8]) -> T,
    ) -> Result<(u64, T), LaneError> {
        // SAFETY: the caller's promise is this function's.
        unsafe { self.push_with_inner(Wait::Until(None), fill) }
    }

    /// [`push_with`](Self::push_with) without waiting: `Full` (and `fill` is not
    /// called) if there is no space now.
    ///
    /// # Safety
    /// As for [`push_with`](Self::push_with).
    pub unsafe fn try_push_with<T>(
        &mut self,
        fill: impl FnOnce(&mut [u8]) -> T,
    ) -> Result<(u64, T), LaneError> {
        // SAFETY: the caller's promise is this function's.
        unsafe { self.push_with_inner(Wait::Never, fill) }
    }

    /// [`push_with`](Self::push_with), waiting at most `timeout` for space.
    ///
    /// # Safety
    /// As for [`push_with`](Self::push_with).
    pub unsafe fn push_with_timeout<T>(
        &mut self,
        timeout: Duration,
        fill: impl FnOnce(&mut [u8]) -> T,
    ) -> Result<(u64, T), LaneError> {
        // SAFETY: the caller's promise is this function's.
        unsafe { self.push_with_inner(Wait::timeout(timeout), fill) }
    }

    /// [`push_with`](Self::push_with), waiting for space until `deadline`.
    ///
    /// # Safety
    /// As for [`push_with`](Self::push_with).
    pub unsafe fn push_with_deadline<T>(
        &mut self,
        deadline: Instant,
        fill: impl FnOnce(&mut [u8]) -> T,
    ) -> Result<(u64, T), LaneError> {
        // SAFETY: the caller's promise is this function's.
        unsafe { self.push_with_inner(Wait::Until(Some(deadline)), fill) }
    }

    /// Waits (as `wait_for` says) until the ring has a free slot (`Full` or
    /// `Timeout` if it does not come).
    fn wait_for_room(&mut self, wait_for: Wait) -> Result<(), LaneError> {
        let producer = &mut self.producer;
        wait(
            &self.segment.header().space,
            wait_for,
            LaneError::Full,
            || match producer.free() {
                Ok(0) | Err(tensorlane_core::PushError::Full) => None,
                Ok(_) => Some(Ok(())),
                Err(e) => Some(Err(error::from_push(e))),
            },
        )
    }

    /// # Safety
    /// As for [`push_with`](Self::push_with).
    unsafe fn push_with_inner<T>(
        &mut self,
        wait_for: Wait,
        fill: impl FnOnce(&mut [u8]) -> T,
    ) -> Result<(u64, T), LaneError> {
        let tensor_bytes = self.spec().byte_len();
        self.wait_for_room(wait_for)?;
        let frame_id = self.next_frame;
        let mut loan = self.producer.loan().map_err(error::from_push)?;
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
        self.next_frame = self.next_frame.wrapping_add(1);
        self.segment.header().data.notify();
        Ok((position.wrapping_add(1), out))
    }
}

/// The consumer of a queue.
#[derive(Debug)]
pub struct QueueConsumer {
    consumer: SpscConsumer<Region>,
    segment: Arc<Segment>,
}

impl QueueConsumer {
    /// Reads through `read` into `out`, elements of the lane's dtype. The spec is
    /// borrowed through a clone of the segment's `Arc`: cloning the spec would allocate
    /// (its shape), and typed reads allocate nothing.
    fn read_elements_with<T: Element>(
        &mut self,
        out: &mut [T],
        read: impl FnOnce(&mut Self, &mut [u8]) -> Result<Frame, LaneError>,
    ) -> Result<Frame, LaneError> {
        let segment = self.segment.clone();
        element::read_into(&segment.info().spec, out, |bytes| read(self, bytes))
    }

    /// Opens queue `name` as its consumer. Fails with `RoleTaken` if a live process
    /// consumes it; takes over from a dead one (an item it had peeked but not
    /// released is delivered again).
    pub fn open(name: &str) -> Result<Self, LaneError> {
        Self::open_with(name, OpenOptions::new())
    }

    /// Like [`open`](Self::open), checking the tensor.
    pub fn open_expect(name: &str, spec: &TensorSpec) -> Result<Self, LaneError> {
        Self::open_with(name, OpenOptions::new().expect(spec))
    }

    /// Like [`open`](Self::open), with options (an expected tensor; pre-faulting and
    /// locking the mapping for a real-time loop).
    pub fn open_with(name: &str, options: OpenOptions) -> Result<Self, LaneError> {
        Self::claim(lane::open_segment(name, Kind::Queue, &options)?)
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

    /// Pops the next item into `out` (exactly one tensor's bytes), waiting without
    /// limit. Copies through atomic words: safe whatever other processes write. Once
    /// the producer is gone and every item it pushed was popped: `WriterGone`.
    pub fn pop(&mut self, out: &mut [u8]) -> Result<Frame, LaneError> {
        self.pop_inner(out, Wait::Until(None))
    }

    /// [`pop`](Self::pop) without waiting: `Empty` if no item is waiting now.
    pub fn try_pop(&mut self, out: &mut [u8]) -> Result<Frame, LaneError> {
        self.pop_inner(out, Wait::Never)
    }

    /// [`pop`](Self::pop), waiting at most `timeout` (`Timeout`).
    pub fn pop_timeout(&mut self, out: &mut [u8], timeout: Duration) -> Result<Frame, LaneError> {
        self.pop_inner(out, Wait::timeout(timeout))
    }

    /// [`pop`](Self::pop), waiting until `deadline` (`Timeout`); one attempt is made
    /// even if the deadline has passed.
    pub fn pop_deadline(&mut self, out: &mut [u8], deadline: Instant) -> Result<Frame, LaneError> {
        self.pop_inner(out, Wait::Until(Some(deadline)))
    }

    /// [`pop`](Self::pop) into a slice of elements of the lane's dtype, as many as
    /// the tensor has (`WrongDType`, `WrongCount`; a `bool` lane's bytes other than
    /// 0 or 1 give `InvalidBool`, after the item was removed).
    pub fn pop_elements<T: Element>(&mut self, out: &mut [T]) -> Result<Frame, LaneError> {
        self.read_elements_with(out, |lane, bytes| lane.pop(bytes))
    }

    /// [`try_pop`](Self::try_pop) into a slice of elements of the lane's dtype.
    pub fn try_pop_elements<T: Element>(&mut self, out: &mut [T]) -> Result<Frame, LaneError> {
        self.read_elements_with(out, |lane, bytes| lane.try_pop(bytes))
    }

    /// [`pop_timeout`](Self::pop_timeout) into a slice of elements of the lane's
    /// dtype.
    pub fn pop_elements_timeout<T: Element>(
        &mut self,
        out: &mut [T],
        timeout: Duration,
    ) -> Result<Frame, LaneError> {
        self.read_elements_with(out, |lane, bytes| lane.pop_timeout(bytes, timeout))
    }

    fn pop_inner(&mut self, out: &mut [u8], wait_for: Wait) -> Result<Frame, LaneError> {
        lane::check_size(self.spec(), out.len())?;
        let segment = &self.segment;
        let consumer = &mut self.consumer;
        let expected = FRAME_BYTES + out.len();
        let mut polls = 0;
        let frame = wait(&segment.header().data, wait_for, LaneError::Empty, || {
            attempt_next(consumer, segment, expected, &mut polls, wait_for).map(|peek| {
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
        });
        notify_freed(segment, frame)
    }

    /// Hands the next item to `read` in place (zero-copy), then removes it; waits
    /// without limit (`WriterGone` once the producer is gone and the ring drained).
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
        read: impl FnOnce(&Frame, &[u8]) -> T,
    ) -> Result<T, LaneError> {
        // SAFETY: the caller's promise is this function's.
        unsafe { self.pop_with_inner(Wait::Until(None), read) }
    }

    /// [`pop_with`](Self::pop_with) without waiting: `Empty` (and `read` is not
    /// called) if no item is waiting now.
    ///
    /// # Safety
    /// As for [`pop_with`](Self::pop_with).
    pub unsafe fn try_pop_with<T>(
        &mut self,
        read: impl FnOnce(&Frame, &[u8]) -> T,
    ) -> Result<T, LaneError> {
        // SAFETY: the caller's promise is this function's.
        unsafe { self.pop_with_inner(Wait::Never, read) }
    }

    /// [`pop_with`](Self::pop_with), waiting at most `timeout`.
    ///
    /// # Safety
    /// As for [`pop_with`](Self::pop_with).
    pub unsafe fn pop_with_timeout<T>(
        &mut self,
        timeout: Duration,
        read: impl FnOnce(&Frame, &[u8]) -> T,
    ) -> Result<T, LaneError> {
        // SAFETY: the caller's promise is this function's.
        unsafe { self.pop_with_inner(Wait::timeout(timeout), read) }
    }

    /// [`pop_with`](Self::pop_with), waiting until `deadline`.
    ///
    /// # Safety
    /// As for [`pop_with`](Self::pop_with).
    pub unsafe fn pop_with_deadline<T>(
        &mut self,
        deadline: Instant,
        read: impl FnOnce(&Frame, &[u8]) -> T,
    ) -> Result<T, LaneError> {
        // SAFETY: the caller's promise is this function's.
        unsafe { self.pop_with_inner(Wait::Until(Some(deadline)), read) }
    }

    /// # Safety
    /// As for [`pop_with`](Self::pop_with).
    unsafe fn pop_with_inner<T>(
        &mut self,
        wait_for: Wait,
        read: impl FnOnce(&Frame, &[u8]) -> T,
    ) -> Result<T, LaneError> {
        let expected = FRAME_BYTES + self.spec().byte_len();
        let segment = &self.segment;
        let consumer = &mut self.consumer;
        let mut read = Some(read);
        let mut polls = 0;
        let out = wait(&segment.header().data, wait_for, LaneError::Empty, || {
            attempt_next(consumer, segment, expected, &mut polls, wait_for).map(|peek| {
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
        });
        notify_freed(segment, out)
    }
}
