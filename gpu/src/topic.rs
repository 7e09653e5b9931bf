//! GPU topics: every tensor, in device memory, from one publisher process to lossless
//! and lossy subscriber processes.
//!
//! The record lane is an ordinary shm topic of capacity `C`; the publisher has
//! `D = C + 2` device slots, so that a lossless subscriber holds its slot for as long
//! as it copies or views it (see [`crate::lane`] for the argument): a lossless
//! subscriber's copies are always whole, and it holds the publisher back as in a shm
//! topic. A lossy subscriber whose copy raced the publisher reusing the slot skips to
//! a later item and counts it as missed.

use crate::backend::{Backend, DevicePtr, SlotReader, SlotWriter};
use crate::error::GpuError;
use crate::lane::{
    mirror_name, record_lane, record_spec, Exporter, GpuLaneOptions, Importer,
    DEFAULT_EVENT_TIMEOUT,
};
use crate::table::RECORD_WORDS;
use crate::wait::{Wait, WaitOn};
use std::time::{Duration, Instant};
use tensorlane_shm::{Frame, Kind, SubscribeOptions, TensorSpec, TopicPublisher, TopicSubscriber};

/// The error of an item published as `seq` whose mirror failed.
fn mirrored(seq: u64, source: GpuError) -> GpuError {
    GpuError::Mirror {
        seq,
        source: Box::new(source),
    }
}

/// The publisher of a GPU topic. It owns the device slots and serves them to
/// subscribers until dropped.
#[derive(Debug)]
pub struct GpuTopicPublisher<B: Backend> {
    lane: TopicPublisher,
    mirror: Option<TopicPublisher>,
    exporter: Exporter<B>,
    staging: Vec<u8>,
}

impl<B: Backend> GpuTopicPublisher<B> {
    /// Creates GPU topic `name` of tensors `spec`, holding `capacity` items (a power of
    /// two, at most 128) for up to `max_subscribers` subscribers.
    pub fn create(
        backend: &B,
        name: &str,
        spec: &TensorSpec,
        capacity: usize,
        max_subscribers: usize,
        options: GpuLaneOptions,
    ) -> Result<Self, GpuError> {
        let slots = capacity.saturating_add(2);
        let exporter = Exporter::create(backend, name, Kind::Topic, spec, slots, options)?;
        let mirror = if options.mirror {
            Some(TopicPublisher::create_with(
                &mirror_name(name),
                spec,
                capacity,
                max_subscribers,
                options.shm(),
            )?)
        } else {
            None
        };
        let lane = record_lane(name, mirror.is_some(), || {
            TopicPublisher::create_with(
                name,
                &record_spec(),
                capacity,
                max_subscribers,
                options.shm(),
            )
        })?;
        Ok(GpuTopicPublisher {
            lane,
            mirror,
            exporter,
            staging: Vec::new(),
        })
    }

    /// The tensor each item carries.
    pub fn spec(&self) -> &TensorSpec {
        &self.exporter.table.spec
    }

    /// Waits until every copy this writer enqueued has completed (for example before
    /// reusing device memory given to a `*_from_device` call).
    pub fn synchronize(&mut self) -> Result<(), GpuError> {
        self.exporter.slots.synchronize()
    }

    /// The backend's side of the slots.
    pub fn slots(&self) -> &B::Writer {
        &self.exporter.slots
    }

    /// Dead subscribers evicted so far.
    pub fn evicted(&self) -> u64 {
        self.lane.evicted()
    }

    /// Publishes `tensor` (host memory), waiting without limit while a live lossless
    /// subscriber is a full ring behind. Returns the item's seq (the n-th item
    /// published has seq n). The mirror, if any, is published after the record; if
    /// only the mirror fails, the error is [`GpuError::Mirror`] with the seq (do not
    /// publish the item again).
    pub fn publish(&mut self, tensor: &[u8]) -> Result<u64, GpuError> {
        self.publish_inner(tensor, Wait::Until(None))
    }

    /// [`publish`](Self::publish) without waiting: `Full` if a live lossless
    /// subscriber is a full ring behind (nothing is published then).
    pub fn try_publish(&mut self, tensor: &[u8]) -> Result<u64, GpuError> {
        self.publish_inner(tensor, Wait::Never)
    }

    /// [`publish`](Self::publish), waiting at most `timeout` for room (`Timeout`);
    /// the record and the mirror share the time.
    pub fn publish_timeout(&mut self, tensor: &[u8], timeout: Duration) -> Result<u64, GpuError> {
        self.publish_inner(tensor, Wait::timeout(timeout))
    }

    /// [`publish`](Self::publish), waiting for room until `deadline` (`Timeout`); one
    /// attempt is made even if the deadline has passed.
    pub fn publish_deadline(&mut self, tensor: &[u8], deadline: Instant) -> Result<u64, GpuError> {
        self.publish_inner(tensor, Wait::Until(Some(deadline)))
    }

    /// Publishes the tensor at `src` (device memory of the backend's device), waiting
    /// as [`publish`](Self::publish) does.
    ///
    /// # Safety
    /// `src` must be valid device memory of this backend for `src.len` bytes, not
    /// written until the item's event fires.
    pub unsafe fn publish_from_device(&mut self, src: DevicePtr) -> Result<u64, GpuError> {
        // SAFETY: the caller's guarantee on `src`.
        unsafe { self.publish_from_device_inner(src, Wait::Until(None)) }
    }

    /// [`publish_from_device`](Self::publish_from_device) without waiting (`Full`).
    ///
    /// # Safety
    /// As [`publish_from_device`](Self::publish_from_device).
    pub unsafe fn try_publish_from_device(&mut self, src: DevicePtr) -> Result<u64, GpuError> {
        // SAFETY: the caller's guarantee on `src`.
        unsafe { self.publish_from_device_inner(src, Wait::Never) }
    }

    /// [`publish_from_device`](Self::publish_from_device), waiting at most `timeout`
    /// (`Timeout`).
    ///
    /// # Safety
    /// As [`publish_from_device`](Self::publish_from_device).
    pub unsafe fn publish_from_device_timeout(
        &mut self,
        src: DevicePtr,
        timeout: Duration,
    ) -> Result<u64, GpuError> {
        // SAFETY: the caller's guarantee on `src`.
        unsafe { self.publish_from_device_inner(src, Wait::timeout(timeout)) }
    }

    /// [`publish_from_device`](Self::publish_from_device), waiting until `deadline`
    /// (`Timeout`).
    ///
    /// # Safety
    /// As [`publish_from_device`](Self::publish_from_device).
    pub unsafe fn publish_from_device_deadline(
        &mut self,
        src: DevicePtr,
        deadline: Instant,
    ) -> Result<u64, GpuError> {
        // SAFETY: the caller's guarantee on `src`.
        unsafe { self.publish_from_device_inner(src, Wait::Until(Some(deadline))) }
    }

    fn publish_inner(&mut self, tensor: &[u8], wait: Wait) -> Result<u64, GpuError> {
        self.exporter.check_size(tensor.len())?;
        let (write, slot) = self.next_slot();
        self.exporter.before_slot_write();
        self.exporter.slots.copy_from_host(slot, tensor)?;
        self.exporter.slots.record(slot)?;
        let seq = self.publish_record(write, wait)?;
        if let Some(mirror) = &mut self.mirror {
            wait.publish(mirror, tensor)
                .map_err(|e| mirrored(seq, e.into()))?;
        }
        Ok(seq)
    }

    /// # Safety
    /// As [`publish_from_device`](Self::publish_from_device).
    unsafe fn publish_from_device_inner(
        &mut self,
        src: DevicePtr,
        wait: Wait,
    ) -> Result<u64, GpuError> {
        self.exporter.check_size(src.len)?;
        let (write, slot) = self.next_slot();
        self.exporter.before_slot_write();
        // SAFETY: the caller's guarantee on `src`.
        unsafe { self.exporter.slots.copy_from_device(slot, src)? };
        self.exporter.slots.record(slot)?;
        let seq = self.publish_record(write, wait)?;
        if let Some(mirror) = &mut self.mirror {
            self.staging.resize(src.len, 0);
            self.exporter
                .slots
                .copy_to_host(slot, &mut self.staging)
                .and_then(|()| Ok(wait.publish(mirror, &self.staging)?))
                .map_err(|e| mirrored(seq, e))?;
        }
        Ok(seq)
    }

    /// The next item's write number (position + 1) and device slot.
    fn next_slot(&self) -> (u64, usize) {
        let write = self.lane.next_position().wrapping_add(1);
        (write, (write % self.exporter.table.slots as u64) as usize)
    }

    fn publish_record(&mut self, write: u64, wait: Wait) -> Result<u64, GpuError> {
        let seq = wait.publish(&mut self.lane, &self.exporter.record(write))?;
        if seq != write {
            return Err(GpuError::Corrupt(format!(
                "item {write} was published as item {seq}"
            )));
        }
        Ok(seq)
    }
}

/// A subscriber of a GPU topic, in another process than the publisher.
#[derive(Debug)]
pub struct GpuTopicSubscriber<B: Backend> {
    lane: TopicSubscriber,
    importer: Importer<B>,
    record: [u8; RECORD_WORDS * 8],
    /// Items missed because their slot was overwritten while this (lossy) subscriber
    /// read it.
    overwritten: u64,
    /// Drops not yet reported in a returned frame's `missed`.
    unreported: u64,
}

impl<B: Backend> GpuTopicSubscriber<B> {
    /// Joins GPU topic `name` and imports its slots with `backend`.
    pub fn open(backend: &B, name: &str, options: SubscribeOptions) -> Result<Self, GpuError> {
        Self::open_with_timeout(backend, name, options, DEFAULT_EVENT_TIMEOUT)
    }

    /// [`open`](Self::open), waiting at most `timeout` for the publisher's hand-off
    /// and, later, for each item's completion event.
    pub fn open_with_timeout(
        backend: &B,
        name: &str,
        options: SubscribeOptions,
        timeout: Duration,
    ) -> Result<Self, GpuError> {
        let lane = TopicSubscriber::open_expect(name, &record_spec(), options)?;
        let importer =
            Importer::open(backend, name, Kind::Topic, lane.info().creator_pid, timeout)?;
        Ok(GpuTopicSubscriber {
            lane,
            importer,
            record: [0; RECORD_WORDS * 8],
            overwritten: 0,
            unreported: 0,
        })
    }

    /// The tensor each item carries.
    pub fn spec(&self) -> &TensorSpec {
        &self.importer.table.spec
    }

    /// The backend's side of the slots.
    pub fn slots(&self) -> &B::Reader {
        &self.importer.slots
    }

    /// Items missed so far: the record lane's lossy skips plus items whose slot was
    /// overwritten while this (lossy) subscriber copied it.
    pub fn missed(&self) -> u64 {
        self.lane.missed() + self.overwritten
    }

    /// Whether this subscriber is lossless.
    pub fn is_lossless(&self) -> bool {
        self.lane.is_lossless()
    }

    /// Position of the next item this subscriber expects.
    pub fn head(&self) -> u64 {
        self.lane.head()
    }

    /// History positions asked for at join that were already overwritten.
    pub fn lost_at_join(&self) -> u64 {
        self.lane.lost_at_join()
    }

    /// Whether the publisher's process is alive.
    pub fn publisher_alive(&self) -> bool {
        self.lane.publisher_alive()
    }

    /// Receives the next item into `out` (host memory), waiting without limit. Once
    /// the publisher is gone and this subscriber received everything it published:
    /// `WriterGone`.
    pub fn recv(&mut self, out: &mut [u8]) -> Result<Frame, GpuError> {
        self.recv_host(out, Wait::Until(None))
    }

    /// [`recv`](Self::recv) without waiting for an item: `Empty` if none is waiting
    /// now.
    pub fn try_recv(&mut self, out: &mut [u8]) -> Result<Frame, GpuError> {
        self.recv_host(out, Wait::Never)
    }

    /// [`recv`](Self::recv), waiting at most `timeout` (`Timeout`).
    pub fn recv_timeout(&mut self, out: &mut [u8], timeout: Duration) -> Result<Frame, GpuError> {
        self.recv_host(out, Wait::timeout(timeout))
    }

    /// [`recv`](Self::recv), waiting until `deadline` (`Timeout`); one attempt is made
    /// even if the deadline has passed.
    pub fn recv_deadline(&mut self, out: &mut [u8], deadline: Instant) -> Result<Frame, GpuError> {
        self.recv_host(out, Wait::Until(Some(deadline)))
    }

    /// Receives the next item into device memory `dst`, waiting as
    /// [`recv`](Self::recv) does.
    ///
    /// # Safety
    /// `dst` must be valid device memory of this backend for writes of `dst.len`
    /// bytes, unused by anything else until this returns.
    pub unsafe fn recv_into_device(&mut self, dst: DevicePtr) -> Result<Frame, GpuError> {
        // SAFETY: the caller's guarantee on `dst`.
        unsafe { self.recv_device(dst, Wait::Until(None)) }
    }

    /// [`recv_into_device`](Self::recv_into_device) without waiting (`Empty`).
    ///
    /// # Safety
    /// As [`recv_into_device`](Self::recv_into_device).
    pub unsafe fn try_recv_into_device(&mut self, dst: DevicePtr) -> Result<Frame, GpuError> {
        // SAFETY: the caller's guarantee on `dst`.
        unsafe { self.recv_device(dst, Wait::Never) }
    }

    /// [`recv_into_device`](Self::recv_into_device), waiting at most `timeout`
    /// (`Timeout`).
    ///
    /// # Safety
    /// As [`recv_into_device`](Self::recv_into_device).
    pub unsafe fn recv_into_device_timeout(
        &mut self,
        dst: DevicePtr,
        timeout: Duration,
    ) -> Result<Frame, GpuError> {
        // SAFETY: the caller's guarantee on `dst`.
        unsafe { self.recv_device(dst, Wait::timeout(timeout)) }
    }

    /// [`recv_into_device`](Self::recv_into_device), waiting until `deadline`
    /// (`Timeout`).
    ///
    /// # Safety
    /// As [`recv_into_device`](Self::recv_into_device).
    pub unsafe fn recv_into_device_deadline(
        &mut self,
        dst: DevicePtr,
        deadline: Instant,
    ) -> Result<Frame, GpuError> {
        // SAFETY: the caller's guarantee on `dst`.
        unsafe { self.recv_device(dst, Wait::Until(Some(deadline))) }
    }

    /// Receives the next item as a zero-copy view of its device slot, ready when this
    /// returns, waiting as [`recv`](Self::recv) does. For a lossless subscriber the
    /// slot stays whole until the view is released (the publisher cannot reach it); a
    /// lossy one learns at [`TopicView::release`] whether it did.
    pub fn recv_view(&mut self) -> Result<TopicView<'_, B>, GpuError> {
        self.recv_view_inner(Wait::Until(None))
    }

    /// [`recv_view`](Self::recv_view) without waiting for an item (`Empty`).
    pub fn try_recv_view(&mut self) -> Result<TopicView<'_, B>, GpuError> {
        self.recv_view_inner(Wait::Never)
    }

    /// [`recv_view`](Self::recv_view), waiting at most `timeout` (`Timeout`).
    pub fn recv_view_timeout(&mut self, timeout: Duration) -> Result<TopicView<'_, B>, GpuError> {
        self.recv_view_inner(Wait::timeout(timeout))
    }

    /// [`recv_view`](Self::recv_view), waiting until `deadline` (`Timeout`).
    pub fn recv_view_deadline(&mut self, deadline: Instant) -> Result<TopicView<'_, B>, GpuError> {
        self.recv_view_inner(Wait::Until(Some(deadline)))
    }

    fn recv_host(&mut self, out: &mut [u8], wait: Wait) -> Result<Frame, GpuError> {
        self.recv_into(out.len(), wait, |slots, slot| slots.copy_to_host(slot, out))
    }

    /// # Safety
    /// As [`recv_into_device`](Self::recv_into_device).
    unsafe fn recv_device(&mut self, dst: DevicePtr, wait: Wait) -> Result<Frame, GpuError> {
        self.recv_into(dst.len, wait, |slots, slot| {
            // SAFETY: the caller's guarantee on `dst`.
            unsafe { slots.copy_to_device(slot, dst) }
        })
    }

    fn recv_view_inner(&mut self, wait: Wait) -> Result<TopicView<'_, B>, GpuError> {
        loop {
            let (frame, slot, write) = self.next_record(wait)?;
            if self.wait(slot, write, frame)? {
                return Ok(TopicView {
                    ptr: self.importer.slots.slot_ptr(slot),
                    slot,
                    write,
                    frame,
                    subscriber: self,
                });
            }
        }
    }

    /// Waits for item `write`'s event: `false` if a lossy subscriber lost the item to
    /// an overwrite (counted as missed).
    fn wait(&mut self, slot: usize, write: u64, frame: Frame) -> Result<bool, GpuError> {
        let lane = &self.lane;
        match self
            .importer
            .wait(slot, write, || lane.publisher_alive(), || lane.published())
        {
            Ok(()) => Ok(true),
            Err(GpuError::Overwritten) => {
                self.overwritten_under(frame)?;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// An item whose slot was overwritten under this subscriber: missed (lossy), or
    /// corruption (lossless: the publisher cannot get that far ahead of it).
    fn overwritten_under(&mut self, frame: Frame) -> Result<(), GpuError> {
        if self.lane.is_lossless() {
            return Err(GpuError::Corrupt(format!(
                "item {} was overwritten under a lossless subscriber",
                frame.seq
            )));
        }
        self.overwritten += 1;
        self.unreported += frame.missed + 1;
        Ok(())
    }

    fn next_record(&mut self, wait: Wait) -> Result<(Frame, usize, u64), GpuError> {
        let frame = wait.recv(&mut self.lane, &mut self.record)?;
        // Lane sequences count from 1, as the device slots' write numbers do.
        let write = frame.seq;
        let slot = self.importer.slot_of(&self.record, write)?;
        Ok((frame, slot, write))
    }

    fn recv_into(
        &mut self,
        len: usize,
        wait: Wait,
        mut copy: impl FnMut(&mut B::Reader, usize) -> Result<(), GpuError>,
    ) -> Result<Frame, GpuError> {
        if len != self.spec().byte_len() {
            return Err(GpuError::WrongSize {
                expected: self.spec().byte_len(),
                found: len,
            });
        }
        loop {
            let (frame, slot, write) = self.next_record(wait)?;
            if !self.wait(slot, write, frame)? {
                continue;
            }
            copy(&mut self.importer.slots, slot)?;
            let lane = &self.lane;
            if self.importer.intact(write, || lane.published()) {
                return Ok(self.returned(frame));
            }
            self.overwritten_under(frame)?;
        }
    }

    /// Adds the drops not yet reported to the frame returned.
    fn returned(&mut self, mut frame: Frame) -> Frame {
        frame.missed += std::mem::take(&mut self.unreported);
        frame
    }
}

/// A zero-copy view of one item's device slot.
///
/// The item counts as received once the view exists. Dropping the view without
/// [`release`](Self::release) loses its frame (and the missed count in it) and
/// never learns whether the slot stayed whole while it was read (lossy subscribers).
#[derive(Debug)]
#[must_use = "only `release` says whether the slot stayed whole while it was read"]
pub struct TopicView<'a, B: Backend> {
    subscriber: &'a mut GpuTopicSubscriber<B>,
    ptr: DevicePtr,
    slot: usize,
    write: u64,
    frame: Frame,
}

impl<B: Backend> TopicView<'_, B> {
    /// The slot's device memory (one tensor's bytes are valid).
    pub fn ptr(&self) -> DevicePtr {
        DevicePtr {
            addr: self.ptr.addr,
            len: self.subscriber.spec().byte_len(),
        }
    }

    /// The device slot.
    pub fn slot(&self) -> usize {
        self.slot
    }

    /// The item's frame.
    pub fn frame(&self) -> Frame {
        self.frame
    }

    /// The subscriber's backend side (for the host backend, `slot_words` reads the
    /// view).
    pub fn slots(&self) -> &B::Reader {
        &self.subscriber.importer.slots
    }

    /// Ends the view after the subscriber's work on it has completed: the frame if the
    /// slot stayed whole, `Overwritten` if not (lossy subscribers only).
    pub fn release(self) -> Result<Frame, GpuError> {
        self.subscriber.importer.slots.synchronize()?;
        let lane = &self.subscriber.lane;
        if self
            .subscriber
            .importer
            .intact(self.write, || lane.published())
        {
            Ok(self.subscriber.returned(self.frame))
        } else {
            self.subscriber.overwritten_under(self.frame)?;
            Err(GpuError::Overwritten)
        }
    }
}
