//! Reading a slot: the one validated copy of an item that `read_at` and both kinds of
//! subscriber make, and the error of `read_at`.
//!
//! Invariant: a copy counts only if the slot held the done stamp of the position both
//! before the payload loads and after them (an Acquire fence between), so a reader
//! racing the producer discards its copy instead of returning torn data. A stamp
//! older than a published position, or a length above the slot size, is reported as
//! corruption.

use super::{done_stamp, is_after, BroadcastGeometry};
use crate::error::Corruption;
use crate::slot::{load_parts, parts_len, Slot};
use crate::sync::{fence, Ordering};

/// Why [`Broadcast::read_at`](super::Broadcast::read_at) returned no item.
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

pub(super) enum SlotRead {
    Ok(usize),
    Overwritten,
    TooSmall(usize),
    Corrupt(Corruption),
}

/// How much of an item `read_slot` copies.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Extent {
    /// All of it; a buffer shorter than the item is `TooSmall`.
    Whole,
    /// As much as the buffer holds (the item's whole length is still returned).
    Prefix,
}

/// One validated copy of the item at `position`, which is below the tail loaded (with
/// Acquire) by the caller.
pub(super) fn read_slot(
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
