//! Batches on queues: several items pushed with one store of the ring's `tail`, or
//! popped with one store of its `head`, and one wake-up for all of them.
//!
//! Each item is still a frame of its own: its own sequence number, frame id and
//! timestamp, as [`QueueProducer::push`] gives it. A batch is not atomic for the
//! other side: the consumer sees none or all of the items below the tail it loads,
//! so it may see a batch in several parts.

use super::{QueueConsumer, QueueProducer, Region, FRAME_WORDS};
use crate::element::{self, Element};
use crate::error::{self, LaneError};
use crate::header::FRAME_BYTES;
use crate::lane::{self, wait, Frame, Wait, POLLS_BEFORE_LIVENESS};
use crate::segment::WRITER_ROLE;
use std::time::{Duration, Instant};
use tensorlane_core::{PopError, PushError, SpscConsumer};

impl QueueProducer {
    /// Pushes as many of `tensors` (each exactly one tensor's bytes), in order, as
    /// there is space for, waiting without limit until there is space for at least
    /// one. Returns how many were pushed: the first `n` of `tensors`, with sequence
    /// numbers following the previous push's. A tensor of the wrong size refuses the
    /// whole batch (`WrongSize`) before anything is pushed; an empty batch pushes
    /// nothing and returns 0.
    pub fn push_batch(&mut self, tensors: &[&[u8]]) -> Result<u64, LaneError> {
        self.push_batch_inner(tensors, Wait::Until(None))
    }

    /// [`push_batch`](Self::push_batch) without waiting: `Full` if there is no space
    /// for even one tensor now.
    pub fn try_push_batch(&mut self, tensors: &[&[u8]]) -> Result<u64, LaneError> {
        self.push_batch_inner(tensors, Wait::Never)
    }

    /// [`push_batch`](Self::push_batch), waiting at most `timeout` for space
    /// (`Timeout`).
    pub fn push_batch_timeout(
        &mut self,
        tensors: &[&[u8]],
        timeout: Duration,
    ) -> Result<u64, LaneError> {
        self.push_batch_inner(tensors, Wait::timeout(timeout))
    }

    /// [`push_batch`](Self::push_batch), waiting for space until `deadline`
    /// (`Timeout`); one attempt is made even if the deadline has passed.
    pub fn push_batch_deadline(
        &mut self,
        tensors: &[&[u8]],
        deadline: Instant,
    ) -> Result<u64, LaneError> {
        self.push_batch_inner(tensors, Wait::Until(Some(deadline)))
    }

    /// [`try_push_batch`](Self::try_push_batch) from slices of elements of the lane's
    /// dtype, each as many as the tensor has (`WrongDType`, `WrongCount`).
    pub fn try_push_batch_elements<T: Element>(
        &mut self,
        tensors: &[&[T]],
    ) -> Result<u64, LaneError> {
        let bytes = element::batch_as_bytes(self.spec(), tensors)?;
        self.try_push_batch(&bytes)
    }

    /// [`push_batch_timeout`](Self::push_batch_timeout) from slices of elements of
    /// the lane's dtype.
    pub fn push_batch_elements_timeout<T: Element>(
        &mut self,
        tensors: &[&[T]],
        timeout: Duration,
    ) -> Result<u64, LaneError> {
        let bytes = element::batch_as_bytes(self.spec(), tensors)?;
        self.push_batch_timeout(&bytes, timeout)
    }

    fn push_batch_inner(&mut self, tensors: &[&[u8]], wait_for: Wait) -> Result<u64, LaneError> {
        for tensor in tensors {
            lane::check_size(self.spec(), tensor.len())?;
        }
        if tensors.is_empty() {
            return Ok(0);
        }
        let clock = self.segment.info().clock;
        let prefixes: Vec<[u8; FRAME_BYTES]> = (0u64..)
            .zip(tensors)
            .map(|(k, _)| lane::frame_prefix(self.next_frame.wrapping_add(k), lane::now_ns(clock)))
            .collect();
        let items: Vec<[&[u8]; 2]> = prefixes
            .iter()
            .zip(tensors)
            .map(|(prefix, tensor)| [&prefix[..], tensor])
            .collect();
        let segment = &self.segment;
        let producer = &mut self.producer;
        let pushed = wait(
            &segment.header().space,
            wait_for,
            LaneError::Full,
            || match producer.push_batch_parts(&items) {
                Ok(pushed) => Some(Ok(pushed)),
                Err(PushError::Full) => None,
                Err(e) => Some(Err(error::from_push(e))),
            },
        )? as u64;
        self.next_frame = self.next_frame.wrapping_add(pushed);
        segment.header().data.notify();
        Ok(pushed)
    }
}

/// Copies the items waiting now, up to `frames.len()`, each tensor into its
/// `tensor`-byte chunk of `out` and its frame into `frames`, and removes them with
/// one store of `head`. Stops before an item that is not a frame of `expected`
/// bytes; if that is the first item, it is removed and reported, as `pop` does.
/// `Ok(0)` if nothing is waiting.
fn pop_into(
    consumer: &mut SpscConsumer<Region>,
    expected: usize,
    out: &mut [u8],
    frames: &mut [Frame],
) -> Result<usize, LaneError> {
    let tensor = expected - FRAME_BYTES;
    let mut drain = match consumer.drain() {
        Ok(drain) => drain,
        Err(PopError::Empty) => return Ok(0),
        Err(e) => return Err(error::from_pop(e, expected)),
    };
    let mut count = 0;
    while count < frames.len() {
        let bad = match drain.peek() {
            None => break,
            Some(Ok(item)) if item.len() == expected => {
                let words = item.words();
                let mut prefix = [0u8; FRAME_BYTES];
                words.load_bytes(&mut prefix);
                let (frame_id, timestamp_ns) = lane::parse_prefix(&prefix);
                frames[count] = Frame {
                    seq: item.position().wrapping_add(1),
                    frame_id,
                    timestamp_ns,
                    missed: 0,
                };
                words
                    .slice(FRAME_WORDS..words.len())
                    .expect("a slot holds its frame prefix")
                    .load_bytes(&mut out[count * tensor..(count + 1) * tensor]);
                None
            }
            Some(Ok(item)) => Some(error::wrong_length(item.len(), expected)),
            Some(Err(corruption)) => Some(LaneError::Corrupt(corruption)),
        };
        if let Some(e) = bad {
            if count == 0 {
                // Removed and reported, as `pop` does; the drain's drop releases it.
                let _ = drain.next();
                return Err(e);
            }
            // Left for the next call, which reports it.
            break;
        }
        let _ = drain.next();
        count += 1;
    }
    Ok(count)
}

impl QueueConsumer {
    /// Pops up to `frames.len()` items, waiting without limit for at least one:
    /// item `k`'s tensor goes to `out[k * t .. (k + 1) * t]` (`t` the tensor's byte
    /// size; `out` holds `frames.len()` tensors back to back, else `WrongSize`) and its
    /// frame to `frames[k]`. Returns how many were popped; they are removed with one
    /// store of the ring's counter and one wake-up of the producer.
    ///
    /// An item that is not a lane frame ends the batch before it; a later call
    /// removes it and reports it as `Corrupt`, as [`pop`](Self::pop) does. Once the
    /// producer is gone and every item it pushed was popped: `WriterGone`.
    pub fn pop_batch(&mut self, out: &mut [u8], frames: &mut [Frame]) -> Result<usize, LaneError> {
        self.pop_batch_inner(out, frames, Wait::Until(None))
    }

    /// [`pop_batch`](Self::pop_batch) without waiting: `Empty` if no item is waiting
    /// now.
    pub fn try_pop_batch(
        &mut self,
        out: &mut [u8],
        frames: &mut [Frame],
    ) -> Result<usize, LaneError> {
        self.pop_batch_inner(out, frames, Wait::Never)
    }

    /// [`pop_batch`](Self::pop_batch), waiting at most `timeout` for the first item
    /// (`Timeout`).
    pub fn pop_batch_timeout(
        &mut self,
        out: &mut [u8],
        frames: &mut [Frame],
        timeout: Duration,
    ) -> Result<usize, LaneError> {
        self.pop_batch_inner(out, frames, Wait::timeout(timeout))
    }

    /// [`pop_batch`](Self::pop_batch), waiting until `deadline` for the first item
    /// (`Timeout`); one attempt is made even if the deadline has passed.
    pub fn pop_batch_deadline(
        &mut self,
        out: &mut [u8],
        frames: &mut [Frame],
        deadline: Instant,
    ) -> Result<usize, LaneError> {
        self.pop_batch_inner(out, frames, Wait::Until(Some(deadline)))
    }

    /// [`try_pop_batch`](Self::try_pop_batch) into elements of the lane's dtype:
    /// `out` holds `frames.len()` tensors' elements (`WrongDType`, `WrongCount`; a
    /// `bool` lane's bytes other than 0 or 1 give `InvalidBool`, after the items were
    /// removed).
    pub fn try_pop_batch_elements<T: Element>(
        &mut self,
        out: &mut [T],
        frames: &mut [Frame],
    ) -> Result<usize, LaneError> {
        // The spec through a clone of the segment's `Arc`: cloning the spec would
        // allocate (its shape), and typed reads allocate nothing.
        let segment = self.segment.clone();
        let spec = &segment.info().spec;
        element::read_batch_into(spec, frames.len(), out, |bytes| {
            self.try_pop_batch(bytes, frames)
        })
    }

    /// [`pop_batch_timeout`](Self::pop_batch_timeout) into elements of the lane's
    /// dtype.
    pub fn pop_batch_elements_timeout<T: Element>(
        &mut self,
        out: &mut [T],
        frames: &mut [Frame],
        timeout: Duration,
    ) -> Result<usize, LaneError> {
        // The spec through a clone of the segment's `Arc`: cloning the spec would
        // allocate (its shape), and typed reads allocate nothing.
        let segment = self.segment.clone();
        let spec = &segment.info().spec;
        element::read_batch_into(spec, frames.len(), out, |bytes| {
            self.pop_batch_timeout(bytes, frames, timeout)
        })
    }

    fn pop_batch_inner(
        &mut self,
        out: &mut [u8],
        frames: &mut [Frame],
        wait_for: Wait,
    ) -> Result<usize, LaneError> {
        let tensor = self.spec().byte_len();
        lane::check_batch_size(self.spec(), frames.len(), out.len())?;
        if frames.is_empty() {
            return Ok(0);
        }
        let expected = FRAME_BYTES + tensor;
        let segment = &self.segment;
        let consumer = &mut self.consumer;
        let mut polls = 0u32;
        let popped = wait(&segment.header().data, wait_for, LaneError::Empty, || {
            // As `attempt_next`: once the spin phase is over, an empty ring whose
            // producer is gone ends the wait, after one more look.
            let mut gone = false;
            match consumer.available() {
                Ok(0) => {
                    polls += 1;
                    let slow = matches!(wait_for, Wait::Until(_)) && polls > POLLS_BEFORE_LIVENESS;
                    if !slow || segment.role_alive(WRITER_ROLE).unwrap_or(true) {
                        return None;
                    }
                    gone = true;
                }
                Ok(_) => {}
                Err(e) => return Some(Err(error::from_pop(e, expected))),
            }
            match pop_into(consumer, expected, out, frames) {
                Ok(0) if gone => Some(Err(LaneError::WriterGone)),
                Ok(0) => None,
                result => Some(result),
            }
        });
        super::notify_freed(segment, popped)
    }
}
