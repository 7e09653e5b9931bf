//! Loans that span calls: a queue slot held between two calls instead of inside one
//! closure, for bindings whose loans are scopes of another language (a Python `with`
//! block, a C pair of calls).
//!
//! [`QueueProducer::hold_slot`] waits for a free slot and hands out where its tensor
//! bytes are; [`QueueProducer::commit_held`] pushes it. [`QueueConsumer::hold_item`]
//! hands out the next item in place; [`QueueConsumer::release_held`] removes it.
//! Dropping a [`HeldSlot`] instead gives it up: a held free slot stays free, a held
//! item stays at the head of the queue.
//!
//! # Invariants
//! - A held slot is the ring's slot at the handle's current position (`tail` for the
//!   producer, `head` for the consumer), and only the handle that holds it moves that
//!   position: the finishing call re-derives the slot from the ring and refuses a
//!   [`HeldSlot`] whose position or segment is not the handle's (`LaneError::Other`),
//!   so a stale or foreign address is never committed or released.
//! - The address stays mapped while the [`HeldSlot`] lives: it owns a clone of the
//!   segment's `Arc`, whatever happens to the handle.
//! - The consumer's view is read-only: nothing writes through a held item.

use super::{frame_of, next_frame, QueueConsumer, QueueProducer};
use crate::error::{self, LaneError};
use crate::header::FRAME_BYTES;
use crate::lane::{self, wait, Frame, Wait};
use crate::segment::Segment;
use std::ptr::NonNull;
use std::sync::Arc;

/// A queue slot held across calls: the tensor bytes of a free slot lent to the
/// producer, or of the item at the head lent to the consumer.
///
/// It is an address, not a borrow: reading or writing through it is `unsafe`, and
/// sound while the [`HeldSlot`] lives, has not been finished, and every other process
/// writing the lane follows docs/LAYOUT.md (the promise made to
/// [`QueueProducer::hold_slot`] or [`QueueConsumer::hold_item`]).
#[derive(Debug)]
pub struct HeldSlot {
    bytes: NonNull<u8>,
    len: usize,
    position: u64,
    segment: Arc<Segment>,
}

// SAFETY: a `HeldSlot` is an address into a shared mapping, owned (through the
// `Arc`) by the value itself, and a position; it holds no reference into the handle
// and no thread-local state. Access through the address is `unsafe` and governed by
// the hold's promise, from whichever thread the owner uses it.
unsafe impl Send for HeldSlot {}

impl HeldSlot {
    /// Address of the tensor bytes (after the frame prefix).
    pub fn as_ptr(&self) -> *mut u8 {
        self.bytes.as_ptr()
    }

    /// Tensor bytes: the lane's tensor size.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the lane's tensor has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sequence number of the item: the one a commit gives it (producer), or the
    /// one it was pushed with (consumer).
    pub fn seq(&self) -> u64 {
        self.position.wrapping_add(1)
    }

    /// The segment the address points into, kept mapped by this value.
    pub fn segment(&self) -> &Arc<Segment> {
        &self.segment
    }
}

fn not_held(what: &str) -> LaneError {
    LaneError::Other(format!("{what} is not the slot this handle holds").into())
}

impl QueueProducer {
    /// Waits (as `wait_for` says) for a free slot and holds it for a zero-copy push that
    /// spans calls: write the tensor through [`HeldSlot::as_ptr`], then push it with
    /// [`commit_held`](Self::commit_held). The slot is not zeroed (see
    /// [`push_with`](Self::push_with)). Holding again before committing holds the same
    /// slot.
    ///
    /// # Safety
    /// As for [`push_with`](Self::push_with): every other process that can write this
    /// lane follows docs/LAYOUT.md. Writes through the address are sound only until
    /// the slot is committed or the [`HeldSlot`] dropped, and only from one thread at
    /// a time.
    pub unsafe fn hold_slot(&mut self, wait_for: Wait) -> Result<HeldSlot, LaneError> {
        let tensor_bytes = self.spec().byte_len();
        self.wait_for_room(wait_for)?;
        let position = self.producer.tail();
        let mut loan = self.producer.loan().map_err(error::from_push)?;
        // The caller's promise (above) is the part of the `Exclusive` contract this
        // process cannot keep by itself (see `ring`).
        let bytes = loan.bytes_mut();
        let tensor = &mut bytes[FRAME_BYTES..FRAME_BYTES + tensor_bytes];
        let address = NonNull::new(tensor.as_mut_ptr()).expect("a slice is never null");
        // Dropping the loan pushes nothing: the slot stays free and is this handle's
        // next, as `commit_held` checks.
        drop(loan);
        Ok(HeldSlot {
            bytes: address,
            len: tensor_bytes,
            position,
            segment: self.segment.clone(),
        })
    }

    /// Pushes the slot held by [`hold_slot`](Self::hold_slot), stamped now; returns its
    /// sequence number. Refuses (`LaneError::Other`) a slot this handle does not hold.
    pub fn commit_held(&mut self, held: HeldSlot) -> Result<u64, LaneError> {
        if !Arc::ptr_eq(&held.segment, &self.segment) || held.position != self.producer.tail() {
            return Err(not_held("the committed slot"));
        }
        let tensor_bytes = self.spec().byte_len();
        let frame_id = self.next_frame;
        let prefix = lane::frame_prefix(frame_id, lane::now_ns(self.segment.info().clock));
        let loan = self.producer.loan().map_err(error::from_push)?;
        let words = loan.words();
        words[..FRAME_BYTES / 8]
            .iter()
            .zip(prefix.chunks_exact(8))
            .for_each(|(word, bytes)| {
                let value = u64::from_le_bytes(bytes.try_into().expect("8 bytes"));
                // Relaxed: the commit's Release store of `tail` publishes the prefix
                // with the tensor bytes.
                word.store(value, std::sync::atomic::Ordering::Relaxed);
            });
        let position = loan
            .commit(FRAME_BYTES + tensor_bytes)
            .map_err(error::from_push)?;
        self.next_frame = self.next_frame.wrapping_add(1);
        self.segment.header().data.notify();
        Ok(position.wrapping_add(1))
    }
}

impl QueueConsumer {
    /// Waits (as `wait_for` says) for the next item and holds it in place for a
    /// zero-copy read that spans calls: read the tensor through [`HeldSlot::as_ptr`],
    /// then remove it with [`release_held`](Self::release_held). Holding again before
    /// releasing holds the same item. An item of the wrong length is removed and
    /// reported as `Corrupt`, as by [`pop`](Self::pop).
    ///
    /// # Safety
    /// As for [`pop_with`](Self::pop_with): every other process that can write this
    /// lane follows docs/LAYOUT.md. Reads through the address are sound only until
    /// the item is released or the [`HeldSlot`] dropped; nothing may write through it.
    pub unsafe fn hold_item(&mut self, wait_for: Wait) -> Result<(Frame, HeldSlot), LaneError> {
        let expected = FRAME_BYTES + self.spec().byte_len();
        let segment = self.segment.clone();
        let consumer = &mut self.consumer;
        let mut polls = 0;
        let held = wait(&segment.header().data, wait_for, LaneError::Empty, || {
            super::attempt_next(consumer, &segment, expected, &mut polls, wait_for).map(|peek| {
                let peek = peek?;
                let frame = frame_of(&peek);
                // The caller's promise (above) is the part of the `Exclusive` contract
                // this process cannot keep by itself (see `ring`).
                let bytes = peek.bytes();
                let address = NonNull::new(bytes[FRAME_BYTES..].as_ptr().cast_mut())
                    .expect("a slice is never null");
                // Not released: the item stays at the head until `release_held`.
                Ok((frame, address))
            })
        });
        // An item of the wrong length was removed (`Corrupt`): a slot was freed.
        let (frame, address) = match held {
            Err(e @ LaneError::Corrupt(_)) => {
                segment.header().space.notify();
                return Err(e);
            }
            other => other?,
        };
        let held = HeldSlot {
            bytes: address,
            len: expected - FRAME_BYTES,
            position: frame.seq.wrapping_sub(1),
            segment,
        };
        Ok((frame, held))
    }

    /// Removes the item held by [`hold_item`](Self::hold_item). Refuses
    /// (`LaneError::Other`) an item this handle does not hold.
    pub fn release_held(&mut self, held: HeldSlot) -> Result<(), LaneError> {
        if !Arc::ptr_eq(&held.segment, &self.segment) || held.position != self.consumer.head() {
            return Err(not_held("the released item"));
        }
        let expected = FRAME_BYTES + held.len;
        match next_frame(&mut self.consumer, expected)? {
            Some(peek) => peek.release(),
            None => return Err(not_held("the released item")),
        }
        self.segment.header().space.notify();
        Ok(())
    }
}
