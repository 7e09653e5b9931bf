//! The frame prefix (frame id and timestamp) of the newest item of a stream or a
//! topic, read without copying its tensor.
//!
//! Tools (`tensorlane inspect`, `watch`) and a stream writer taking over from a dead
//! one need only the 16-byte frame prefix of the newest item. Reading it through the
//! core's whole-value reads would take a buffer of one slot, an allocation whose size
//! comes from shared memory (a valid lane may carry a tensor of up to 1 TiB). These
//! reads follow the read procedures of docs/LAYOUT.md (section 11, *Read*, and
//! section 13, *Read-slot*) but load only the length word and the first two payload
//! words between the two stamp loads, so they cost the same whatever the tensor size,
//! allocate nothing and touch one page of the slot.
//!
//! Like every read of shared memory they validate what they load: an index is
//! reduced with the caller's validated geometry and looked up with a bounds check, a
//! length outside `FRAME_BYTES..=slot_bytes` is reported as corruption, and every
//! loop is bounded by the caller's attempt count. They store nothing.

use crate::header::FRAME_BYTES;
use std::sync::atomic::{fence, Ordering};
use tensorlane_core::{
    AtomicU64, BroadcastGeometry, BroadcastHeader, Corruption, Region, SeqlockGeometry,
    SeqlockHeader, LENGTH_WORD, PAYLOAD_WORD, STAMP_WORD,
};

/// The frame prefix of one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramePrefix {
    /// Sequence (streams) or position (topics) of the item.
    pub seq: u64,
    /// Frame id the writer gave the item.
    pub frame_id: u64,
    /// Write time, ns since the Unix epoch.
    pub timestamp_ns: u64,
}

/// Slot `index` of a slot array at word `base` with `stride` words per slot, if it
/// lies inside `body`.
fn slot(body: &[AtomicU64], base: usize, stride: usize, index: usize) -> Option<&[AtomicU64]> {
    let start = index.checked_mul(stride)?.checked_add(base)?;
    body.get(start..start.checked_add(stride)?)
}

/// What one attempt at a slot gave.
enum Attempt {
    Done(FramePrefix),
    /// The stamp changed under the copy, or the slot holds a later item.
    Raced,
    Corrupt(Corruption),
}

/// One seqlock-validated load of the length and the two prefix words of `slot`,
/// whose complete stamp for item `seq` is `expected` and which was loaded as
/// `before` (with Acquire) by the caller.
fn copy_prefix(slot: &[AtomicU64], seq: u64, before: u64, slot_bytes: usize) -> Attempt {
    let (Some(stamp), Some(length), Some(id), Some(time)) = (
        slot.get(STAMP_WORD),
        slot.get(LENGTH_WORD),
        slot.get(PAYLOAD_WORD),
        slot.get(PAYLOAD_WORD + 1),
    ) else {
        // A slot always has room for the frame prefix; a geometry without it is not
        // one the library validates.
        return Attempt::Corrupt(Corruption::Length {
            found: FRAME_BYTES as u64,
            max: slot_bytes as u64,
        });
    };
    let len = length.load(Ordering::Relaxed);
    let frame_id = id.load(Ordering::Relaxed);
    let timestamp_ns = time.load(Ordering::Relaxed);
    // Acquire fence: the loads above are ordered before the stamp reload below.
    // Partner: the writer's Release fence after its odd stamp (LAYOUT.md section 11,
    // write step 3; section 13, publish step 8): if a load above saw a later write's
    // data, the reload sees that write's odd stamp.
    fence(Ordering::Acquire);
    if stamp.load(Ordering::Relaxed) != before {
        return Attempt::Raced;
    }
    if len < FRAME_BYTES as u64 || len > slot_bytes as u64 {
        return Attempt::Corrupt(Corruption::Length {
            found: len,
            max: slot_bytes as u64,
        });
    }
    Attempt::Done(FramePrefix {
        seq,
        frame_id,
        timestamp_ns,
    })
}

/// The frame prefix of a stream's newest complete write: `Ok(None)` if nothing was
/// written yet or every one of `attempts` attempts raced a write.
pub fn stream_latest<R: Region<Header = SeqlockHeader>>(
    region: &R,
    geometry: &SeqlockGeometry,
    attempts: u32,
) -> Result<Option<FramePrefix>, Corruption> {
    let slots = geometry.slots() as u64;
    if slots == 0 {
        return Ok(None);
    }
    for attempt in 0..attempts {
        if attempt > 0 {
            std::hint::spin_loop();
        }
        // Acquire pairs with the writer's Release store of `published` (LAYOUT.md
        // section 11, write step 7): the slot's even stamp below is at least that
        // write's.
        let seq = region.header().published.load(Ordering::Acquire);
        if seq == 0 {
            return Ok(None);
        }
        let expected = seq.wrapping_mul(2);
        if expected == 0 {
            return Err(Corruption::Stamp {
                expected: seq,
                found: 0,
            });
        }
        // `seq % slots < slots`; the lookup is bounds-checked all the same.
        let index = (seq % slots) as usize;
        let Some(words) = slot(region.body(), 0, geometry.slot_stride(), index) else {
            return Ok(None);
        };
        // Acquire pairs with the writer's Release store of the even stamp (write step
        // 6): the loads in `copy_prefix` see write `seq` or a later one.
        let before = words[STAMP_WORD].load(Ordering::Acquire);
        if before != expected {
            // Lapped since `published` was loaded.
            continue;
        }
        match copy_prefix(words, seq, before, geometry.slot_bytes()) {
            Attempt::Done(prefix) => return Ok(Some(prefix)),
            Attempt::Raced => continue,
            Attempt::Corrupt(c) => return Err(c),
        }
    }
    Ok(None)
}

/// The frame prefix of a topic's newest item: `Ok(None)` if nothing was published
/// yet or every one of `attempts` attempts found the item overwritten.
pub fn topic_latest<R: Region<Header = BroadcastHeader>>(
    region: &R,
    geometry: &BroadcastGeometry,
    attempts: u32,
) -> Result<Option<FramePrefix>, Corruption> {
    let capacity = geometry.capacity() as u64;
    if !capacity.is_power_of_two() {
        return Ok(None);
    }
    for attempt in 0..attempts {
        if attempt > 0 {
            std::hint::spin_loop();
        }
        // Acquire pairs with the publisher's Release store of `tail`: the slot's done
        // stamp below is at least that of position `tail - 1`.
        let tail = region.header().tail.load(Ordering::Acquire);
        let Some(position) = tail.checked_sub(1) else {
            return Ok(None);
        };
        let expected = position.wrapping_mul(2).wrapping_add(2);
        if expected == 0 {
            return Err(Corruption::Stamp {
                expected: position,
                found: 0,
            });
        }
        let index = (position & (capacity - 1)) as usize;
        let Some(words) = slot(
            region.body(),
            geometry.slots_offset(),
            geometry.slot_stride(),
            index,
        ) else {
            return Ok(None);
        };
        // Acquire pairs with the publisher's Release store of the done stamp
        // (LAYOUT.md section 13, publish step 10).
        let before = words[STAMP_WORD].load(Ordering::Acquire);
        if before != expected {
            if (before.wrapping_sub(expected) as i64) > 0 {
                // Overwritten by a later position: look at the new tail.
                continue;
            }
            return Err(Corruption::Stamp {
                expected: position,
                found: before,
            });
        }
        match copy_prefix(words, position, before, geometry.slot_bytes()) {
            Attempt::Done(prefix) => return Ok(Some(prefix)),
            Attempt::Raced => continue,
            Attempt::Corrupt(c) => return Err(c),
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tensorlane_core::{Broadcast, HeapRegion, Seqlock};

    fn prefixed(frame_id: u64, timestamp_ns: u64, tensor: &[u8]) -> Vec<u8> {
        let mut item = frame_id.to_le_bytes().to_vec();
        item.extend_from_slice(&timestamp_ns.to_le_bytes());
        item.extend_from_slice(tensor);
        item
    }

    #[test]
    fn stream_prefix_of_the_newest_write() {
        let geometry = SeqlockGeometry::new(2, FRAME_BYTES + 40).unwrap();
        let region = HeapRegion::<SeqlockHeader>::new(geometry.body_words());
        let register = Seqlock::new(&region, geometry).unwrap();
        assert_eq!(stream_latest(&region, &geometry, 4), Ok(None));
        let mut writer = register.writer(1).unwrap();
        for (id, time) in [(7, 70), (8, 80), (9, 90)] {
            writer.write(&prefixed(id, time, &[5; 40])).unwrap();
        }
        let expected = FramePrefix {
            seq: 3,
            frame_id: 9,
            timestamp_ns: 90,
        };
        assert_eq!(stream_latest(&region, &geometry, 4), Ok(Some(expected)));
        // A length below the frame prefix is corruption, not a value.
        // Sequence 3 lives in slot 3 mod 2 = 1.
        region.body()[geometry.slot_stride() + LENGTH_WORD].store(3, Ordering::Relaxed);
        assert!(matches!(
            stream_latest(&region, &geometry, 4),
            Err(Corruption::Length { found: 3, .. })
        ));
    }

    #[test]
    fn topic_prefix_of_the_newest_item() {
        let geometry = BroadcastGeometry::new(4, FRAME_BYTES + 8, 1).unwrap();
        let region = HeapRegion::<BroadcastHeader>::new(geometry.body_words());
        let ring = Broadcast::new(&region, geometry).unwrap();
        assert_eq!(topic_latest(&region, &geometry, 4), Ok(None));
        let mut producer = ring.producer(1).unwrap();
        for id in 1..=6u64 {
            producer.publish(&prefixed(id, id * 10, &[1; 8])).unwrap();
        }
        let expected = FramePrefix {
            seq: 5,
            frame_id: 6,
            timestamp_ns: 60,
        };
        assert_eq!(topic_latest(&region, &geometry, 4), Ok(Some(expected)));
        // A tail beyond what the slot's stamp says was published is corruption.
        region.header().tail.store(11, Ordering::Relaxed);
        assert!(matches!(
            topic_latest(&region, &geometry, 4),
            Err(Corruption::Stamp { expected: 10, .. })
        ));
    }
}
