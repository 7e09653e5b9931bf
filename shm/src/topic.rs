//! Broadcast topics: one publisher, up to M subscribers, each lossless (holding the
//! publisher back) or lossy (skipping to stay within its lag bound).
//!
//! A subscriber owns its table entry through the role lock of that entry, taken
//! before it joins. When a lossless subscriber blocks the publisher, the publisher
//! checks that lock: if no live process holds it, the subscriber is dead, and the
//! publisher evicts it and frees its entry, then carries on.
//!
//! ```no_run
//! use std::time::Duration;
//! use tensorlane_shm::{DType, SubscribeOptions, TensorSpec, TopicPublisher, TopicSubscriber};
//! let spec = TensorSpec::new(DType::F64, &[6]).unwrap();
//! let mut publisher = TopicPublisher::create("pose", &spec, 64, 16).unwrap();
//!
//! // In other processes:
//! let mut logger = TopicSubscriber::open("pose", SubscribeOptions::lossless()).unwrap();
//! let mut display = TopicSubscriber::open("pose", SubscribeOptions::lossy(1)).unwrap();
//!
//! publisher.publish_elements_timeout(&[0.0f64; 6], Duration::from_millis(10)).unwrap();
//! let mut pose = [0f64; 6];
//! let frame = display.recv_elements_timeout(&mut pose, Duration::from_secs(1)).unwrap();
//! println!("pose {} ({} missed)", frame.seq, frame.missed);
//! ```

use crate::dtype::TensorSpec;
use crate::element::{self, Element};
use crate::error::{self, LaneError};
use crate::header::{Geometry, Kind, FRAME_BYTES};
use crate::lane::{self, wait, Frame, ShmRegion, Wait, POLLS_BEFORE_LIVENESS};
use crate::segment::{
    owner_token, CreateOptions, OpenOptions, Segment, SUBSCRIBER_ROLE_BASE, WRITER_ROLE,
};
use std::mem::ManuallyDrop;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tensorlane_core::{
    Broadcast, BroadcastHeader, BroadcastProducer, BroadcastSubscriber, ClaimError, PublishError,
    RecvError, SubscribeError, SubscribeOptions, SubscriberInfo,
};

mod batch;

type Region = ShmRegion<BroadcastHeader>;

fn ring(segment: &Arc<Segment>) -> Broadcast<Region> {
    let Geometry::Topic(geometry) = segment.info().geometry else {
        unreachable!("kind checked when the segment was opened")
    };
    // SAFETY: the segment's kind is Topic, whose core header is BroadcastHeader.
    let region = unsafe { ShmRegion::new(segment.clone()) };
    Broadcast::new(region, geometry).expect("segment size validated")
}

/// The publisher of a topic.
#[derive(Debug)]
pub struct TopicPublisher {
    producer: BroadcastProducer<Region>,
    segment: Arc<Segment>,
    next_frame: u64,
    evicted: u64,
}

impl TopicPublisher {
    /// Creates topic `name` of `capacity` tensors `spec` (a power of two) and a
    /// table of `max_subscribers` entries.
    pub fn create(
        name: &str,
        spec: &TensorSpec,
        capacity: usize,
        max_subscribers: usize,
    ) -> Result<Self, LaneError> {
        Self::create_with(
            name,
            spec,
            capacity,
            max_subscribers,
            CreateOptions::default(),
        )
    }

    /// [`create`](Self::create) with options.
    pub fn create_with(
        name: &str,
        spec: &TensorSpec,
        capacity: usize,
        max_subscribers: usize,
        options: CreateOptions,
    ) -> Result<Self, LaneError> {
        let segment =
            lane::create_segment(name, Kind::Topic, spec, capacity, max_subscribers, options)?;
        Self::claim(segment)
    }

    /// Becomes the publisher of existing topic `name`, whose previous publisher is gone.
    pub fn take_over(name: &str) -> Result<Self, LaneError> {
        Self::take_over_with(name, OpenOptions::new())
    }

    /// [`take_over`](Self::take_over) with options (an expected tensor; pre-faulting
    /// and locking the mapping for a real-time loop).
    pub fn take_over_with(name: &str, options: OpenOptions) -> Result<Self, LaneError> {
        Self::claim(lane::open_segment(name, Kind::Topic, &options)?)
    }

    fn claim(segment: Arc<Segment>) -> Result<Self, LaneError> {
        lane::lock_role(&segment, WRITER_ROLE, "publisher")?;
        let ring = ring(&segment);
        let previous = ring.producer_owner();
        let producer = ring
            .producer_takeover(previous, owner_token())
            .map_err(|e| match e {
                ClaimError::Corrupt(c) => LaneError::Corrupt(c),
                _ => LaneError::RoleTaken {
                    name: segment.name().to_string(),
                    role: "publisher",
                },
            })?;
        Ok(TopicPublisher {
            producer,
            segment,
            next_frame: 1,
            evicted: 0,
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

    /// Dead subscribers this publisher evicted so far.
    pub fn evicted(&self) -> u64 {
        self.evicted
    }

    /// Subscriber entries this publisher found impossible (a head ahead of the tail:
    /// a buggy or hostile peer) and evicted so far, and the last of them. Publishing
    /// goes on past such an entry.
    pub fn evicted_corrupt(&self) -> (u64, Option<tensorlane_core::Corruption>) {
        (
            self.producer.evicted_corrupt(),
            self.producer.last_corrupt_entry(),
        )
    }

    /// Position the next published item will have (the number published so far).
    pub fn next_position(&self) -> u64 {
        self.producer.tail()
    }

    /// Sets the frame id the next publish carries; later publishes count on from it
    /// (a replay of a recording keeps the recorded ids this way).
    pub fn set_next_frame(&mut self, frame_id: u64) {
        self.next_frame = frame_id;
    }

    /// Subscriber table entries that are joined now (lossless or lossy): a snapshot,
    /// stale as soon as it is returned.
    pub fn active_subscribers(&self) -> usize {
        let ring = ring(&self.segment);
        (0..self.segment.info().subscribers)
            .filter_map(|index| ring.subscriber(index))
            .filter(|entry| entry.state == tensorlane_core::entry::ACTIVE)
            .count()
    }

    /// Publishes `tensor` (exactly one tensor's bytes), waiting without limit while
    /// a live lossless subscriber holds the slot to overwrite. Dead subscribers in
    /// the way are evicted. Returns the item's sequence number (the n-th item
    /// published has n).
    pub fn publish(&mut self, tensor: &[u8]) -> Result<u64, LaneError> {
        self.publish_inner(tensor, Wait::Until(None))
    }

    /// [`publish`](Self::publish) without waiting: `Full` if a live lossless
    /// subscriber holds the slot now.
    pub fn try_publish(&mut self, tensor: &[u8]) -> Result<u64, LaneError> {
        self.publish_inner(tensor, Wait::Never)
    }

    /// [`publish`](Self::publish), waiting at most `timeout` (`Timeout`).
    pub fn publish_timeout(&mut self, tensor: &[u8], timeout: Duration) -> Result<u64, LaneError> {
        self.publish_inner(tensor, Wait::timeout(timeout))
    }

    /// [`publish`](Self::publish), waiting until `deadline` (`Timeout`); one attempt
    /// is made even if the deadline has passed.
    pub fn publish_deadline(&mut self, tensor: &[u8], deadline: Instant) -> Result<u64, LaneError> {
        self.publish_inner(tensor, Wait::Until(Some(deadline)))
    }

    /// [`publish`](Self::publish) from a slice of elements of the lane's dtype, as
    /// many as the tensor has (`WrongDType`, `WrongCount`).
    pub fn publish_elements<T: Element>(&mut self, tensor: &[T]) -> Result<u64, LaneError> {
        self.publish(element::as_bytes(self.spec(), tensor)?)
    }

    /// [`try_publish`](Self::try_publish) from a slice of elements of the lane's
    /// dtype.
    pub fn try_publish_elements<T: Element>(&mut self, tensor: &[T]) -> Result<u64, LaneError> {
        self.try_publish(element::as_bytes(self.spec(), tensor)?)
    }

    /// [`publish_timeout`](Self::publish_timeout) from a slice of elements of the
    /// lane's dtype.
    pub fn publish_elements_timeout<T: Element>(
        &mut self,
        tensor: &[T],
        timeout: Duration,
    ) -> Result<u64, LaneError> {
        self.publish_timeout(element::as_bytes(self.spec(), tensor)?, timeout)
    }

    fn publish_inner(&mut self, tensor: &[u8], wait_for: Wait) -> Result<u64, LaneError> {
        lane::check_size(self.spec(), tensor.len())?;
        let frame_id = self.next_frame;
        let prefix = lane::frame_prefix(frame_id, lane::now_ns(self.segment.info().clock));
        let segment = &self.segment;
        let (producer, evicted) = (&mut self.producer, &mut self.evicted);
        let position = wait(
            &segment.header().space,
            wait_for,
            LaneError::Full,
            || loop {
                match producer.publish_parts(&[&prefix, tensor]) {
                    Ok(position) => return Some(Ok(position)),
                    Err(PublishError::Full { subscriber }) => {
                        let role = SUBSCRIBER_ROLE_BASE + subscriber as u64;
                        match segment.role_alive(role) {
                            // Dead: evict and free its entry, then try again at once. Only
                            // the state word the scan saw is evicted: a subscriber that
                            // joined through this entry since then is spared.
                            Ok(false) => {
                                if producer.evict_blocker(subscriber).is_ok() {
                                    *evicted += 1;
                                }
                            }
                            Ok(true) => return None,
                            Err(e) => return Some(Err(e)),
                        }
                    }
                    Err(e) => return Some(Err(error::from_publish(e))),
                }
            },
        )?;
        self.next_frame = self.next_frame.wrapping_add(1);
        segment.header().data.notify();
        Ok(position.wrapping_add(1))
    }
}

/// A subscriber of a topic. Dropping it leaves the topic (and wakes a publisher it
/// was holding back).
#[derive(Debug)]
pub struct TopicSubscriber {
    subscriber: ManuallyDrop<BroadcastSubscriber<Region>>,
    ring: Broadcast<Region>,
    segment: Arc<Segment>,
    /// An error a lossy batch receive met after it had received items: the item it
    /// names was consumed, so the next receive reports it before anything else.
    pending: Option<LaneError>,
}

impl TopicSubscriber {
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

    /// Joins topic `name`.
    pub fn open(name: &str, options: SubscribeOptions) -> Result<Self, LaneError> {
        Self::open_with(name, options, OpenOptions::new())
    }

    /// Joins topic `name`, checking its tensor.
    pub fn open_expect(
        name: &str,
        spec: &TensorSpec,
        options: SubscribeOptions,
    ) -> Result<Self, LaneError> {
        Self::open_with(name, options, OpenOptions::new().expect(spec))
    }

    /// Joins topic `name` with open options (an expected tensor; pre-faulting and
    /// locking the mapping for a real-time loop).
    pub fn open_with(
        name: &str,
        options: SubscribeOptions,
        open: OpenOptions,
    ) -> Result<Self, LaneError> {
        Self::join(lane::open_segment(name, Kind::Topic, &open)?, options)
    }

    fn join(segment: Arc<Segment>, options: SubscribeOptions) -> Result<Self, LaneError> {
        let ring = ring(&segment);
        for index in 0..ring.geometry().max_subscribers() {
            // Own the entry first (the lock is what the publisher checks), then join.
            if !segment.lock_role(SUBSCRIBER_ROLE_BASE + index as u64)? {
                continue;
            }
            // Holding the lock, any occupant of the entry is a dead process's.
            let _ = ring.reclaim(index);
            match ring.subscribe_at(index, options, owner_token()) {
                Ok(subscriber) => {
                    // A join may have moved its head up past what a waiting publisher
                    // saw (lost history): let it look again.
                    segment.header().space.notify();
                    return Ok(TopicSubscriber {
                        subscriber: ManuallyDrop::new(subscriber),
                        ring,
                        segment,
                        pending: None,
                    });
                }
                Err(SubscribeError::EntryTaken { .. }) => {
                    segment.unlock_role(SUBSCRIBER_ROLE_BASE + index as u64);
                }
                Err(SubscribeError::Corrupt(c)) => {
                    segment.unlock_role(SUBSCRIBER_ROLE_BASE + index as u64);
                    return Err(LaneError::Corrupt(c));
                }
                // The index is in range and the token non-zero: nothing else can be
                // refused, but an error from a newer core is reported, not a panic.
                Err(e) => {
                    segment.unlock_role(SUBSCRIBER_ROLE_BASE + index as u64);
                    return Err(LaneError::Other(Box::new(e)));
                }
            }
        }
        Err(LaneError::TableFull(segment.name().to_string()))
    }

    /// The tensor each item carries.
    pub fn spec(&self) -> &TensorSpec {
        &self.segment.info().spec
    }

    /// The lane's metadata, written at create (empty if none was given).
    pub fn metadata(&self) -> &crate::metadata::Metadata {
        &self.segment.info().metadata
    }

    /// This subscriber's table entry.
    pub fn index(&self) -> usize {
        self.subscriber.index()
    }

    /// Items missed so far (lossy skips, history lost at join).
    pub fn missed(&self) -> u64 {
        self.subscriber.missed()
    }

    /// Whether this subscriber is lossless.
    pub fn is_lossless(&self) -> bool {
        self.subscriber.is_lossless()
    }

    /// Position of the next item this subscriber expects.
    pub fn head(&self) -> u64 {
        self.subscriber.head()
    }

    /// History positions asked for at join that were already overwritten.
    pub fn lost_at_join(&self) -> u64 {
        self.subscriber.lost_at_join()
    }

    /// The lane's validated header (creator, geometry, tensor).
    pub fn info(&self) -> &crate::header::HeaderInfo {
        self.segment.info()
    }

    /// Items published so far (the ring's tail), as this subscriber sees it now.
    pub fn published(&self) -> u64 {
        self.ring.tail()
    }

    /// Whether a live process holds the publisher role.
    pub fn publisher_alive(&self) -> bool {
        self.segment.role_alive(WRITER_ROLE).unwrap_or(false)
    }

    /// Receives the next item into `out` (exactly one tensor's bytes), waiting
    /// without limit. Once the publisher is gone and this subscriber received
    /// everything it published: `WriterGone`. On any error the contents of `out` are
    /// unspecified (a lossy copy a newer publish overtook).
    pub fn recv(&mut self, out: &mut [u8]) -> Result<Frame, LaneError> {
        self.recv_inner(out, Wait::Until(None))
    }

    /// [`recv`](Self::recv) without waiting: `Empty` if no item is waiting now.
    pub fn try_recv(&mut self, out: &mut [u8]) -> Result<Frame, LaneError> {
        self.recv_inner(out, Wait::Never)
    }

    /// [`recv`](Self::recv), waiting at most `timeout` (`Timeout`).
    pub fn recv_timeout(&mut self, out: &mut [u8], timeout: Duration) -> Result<Frame, LaneError> {
        self.recv_inner(out, Wait::timeout(timeout))
    }

    /// [`recv`](Self::recv), waiting until `deadline` (`Timeout`); one attempt is
    /// made even if the deadline has passed.
    pub fn recv_deadline(&mut self, out: &mut [u8], deadline: Instant) -> Result<Frame, LaneError> {
        self.recv_inner(out, Wait::Until(Some(deadline)))
    }

    /// [`recv`](Self::recv) into a slice of elements of the lane's dtype, as many as
    /// the tensor has (`WrongDType`, `WrongCount`; a `bool` lane's bytes other than
    /// 0 or 1 give `InvalidBool`, after the item was received).
    pub fn recv_elements<T: Element>(&mut self, out: &mut [T]) -> Result<Frame, LaneError> {
        self.read_elements_with(out, |lane, bytes| lane.recv(bytes))
    }

    /// [`try_recv`](Self::try_recv) into a slice of elements of the lane's dtype.
    pub fn try_recv_elements<T: Element>(&mut self, out: &mut [T]) -> Result<Frame, LaneError> {
        self.read_elements_with(out, |lane, bytes| lane.try_recv(bytes))
    }

    /// [`recv_timeout`](Self::recv_timeout) into a slice of elements of the lane's
    /// dtype.
    pub fn recv_elements_timeout<T: Element>(
        &mut self,
        out: &mut [T],
        timeout: Duration,
    ) -> Result<Frame, LaneError> {
        self.read_elements_with(out, |lane, bytes| lane.recv_timeout(bytes, timeout))
    }

    fn recv_inner(&mut self, out: &mut [u8], wait_for: Wait) -> Result<Frame, LaneError> {
        lane::check_size(self.spec(), out.len())?;
        if let Some(e) = self.pending.take() {
            return Err(e);
        }
        let mut prefix = [0u8; FRAME_BYTES];
        let segment = &self.segment;
        let subscriber = &mut *self.subscriber;
        let expected = FRAME_BYTES + out.len();
        let mut polls = 0u32;
        let received = wait(&segment.header().data, wait_for, LaneError::Empty, || {
            let mut gone = false;
            loop {
                match subscriber.recv_parts(&mut [&mut prefix, out]) {
                    Ok(received) if received.len == expected => return Some(Ok(received)),
                    Ok(received) => return Some(Err(error::wrong_length(received.len, expected))),
                    // Overwritten under every attempt (a lossy subscriber lapped):
                    // nothing yet, as for an empty ring.
                    Err(RecvError::Empty) | Err(RecvError::Stalled { .. }) => {}
                    Err(e) => return Some(Err(error::from_recv(e, expected))),
                }
                if gone {
                    return Some(Err(LaneError::WriterGone));
                }
                // Liveness costs a system call: only once the spin phase is over.
                polls += 1;
                let slow = matches!(wait_for, Wait::Until(_)) && polls > POLLS_BEFORE_LIVENESS;
                if !slow || segment.role_alive(WRITER_ROLE).unwrap_or(true) {
                    return None;
                }
                // The role lock was released after the publisher's last publish: look
                // once more, so an item published just before it died comes first.
                gone = true;
            }
        })?;
        if self.subscriber.is_lossless() {
            segment.header().space.notify();
        }
        let (frame_id, timestamp_ns) = lane::parse_prefix(&prefix);
        Ok(Frame {
            seq: received.position.wrapping_add(1),
            frame_id,
            timestamp_ns,
            missed: received.missed,
        })
    }

    /// Copies the last `k` items still in the ring (oldest first) into `out`, which
    /// must hold `k` tensors; returns the frames read. Items overwritten meanwhile
    /// are left out.
    pub fn last_k(&self, k: usize, out: &mut [u8]) -> Result<Vec<Frame>, LaneError> {
        let tensor = self.spec().byte_len();
        lane::check_size(self.spec(), out.len() / k.max(1))?;
        // At most the ring's capacity of items exists: clamp before allocating (with
        // zero-size tensors `out` bounds nothing, and `k` may be anything).
        let k = k.min(self.ring.geometry().capacity());
        let mut frames = Vec::with_capacity(k);
        let mut slot = vec![0u8; FRAME_BYTES + tensor];
        for position in self.ring.history(k as u64) {
            if let Ok(len) = self.ring.read_at(position, &mut slot) {
                if len != slot.len() {
                    continue;
                }
                let i = frames.len();
                out[i * tensor..(i + 1) * tensor].copy_from_slice(&slot[FRAME_BYTES..]);
                let prefix: [u8; FRAME_BYTES] = slot[..FRAME_BYTES].try_into().expect("16");
                let (frame_id, timestamp_ns) = lane::parse_prefix(&prefix);
                frames.push(Frame {
                    seq: position.wrapping_add(1),
                    frame_id,
                    timestamp_ns,
                    missed: 0,
                });
            }
        }
        Ok(frames)
    }

    /// A snapshot of the subscriber table entry `index`.
    pub fn entry(&self, index: usize) -> Option<SubscriberInfo> {
        self.ring.subscriber(index)
    }
}

impl Drop for TopicSubscriber {
    fn drop(&mut self) {
        // SAFETY: `subscriber` is dropped exactly once, here, and not used afterwards.
        unsafe { ManuallyDrop::drop(&mut self.subscriber) };
        // Leaving may release a publisher blocked on this subscriber.
        self.segment.header().space.notify();
    }
}
