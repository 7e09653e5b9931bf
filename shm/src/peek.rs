//! The frame prefix (frame id and timestamp) of the newest item of a stream or a
//! topic, read without copying its tensor.
//!
//! Tools (`tensorlane inspect`, `watch`) and a stream writer taking over from a dead
//! one need only the 16-byte frame prefix of the newest item. Reading it through the
//! core's whole-value reads would take a buffer of one slot, an allocation whose size
//! comes from shared memory (a valid lane may carry a tensor of up to 1 TiB). These
//! reads use the core's partial reads instead (`SeqlockReader::read_ranges`,
//! `Broadcast::read_prefix_at`): the same stamp-checked procedure as a whole read,
//! copying only the prefix, so they cost the same whatever the tensor size, allocate
//! nothing and store nothing. Every loop is bounded by the caller's attempt count,
//! and a value shorter than a frame prefix is reported as corruption.

use crate::header::FRAME_BYTES;
use tensorlane_core::{
    Broadcast, BroadcastGeometry, BroadcastHeader, Corruption, RangeReadError, ReadAtError,
    ReadError, Region, Seqlock, SeqlockGeometry, SeqlockHeader,
};

/// The frame prefix of one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramePrefix {
    /// The item's sequence number (from 1 on every lane kind, as `Frame::seq`).
    pub seq: u64,
    /// Frame id the writer gave the item.
    pub frame_id: u64,
    /// Write time, in the lane's clock (`HeaderInfo::clock`).
    pub timestamp_ns: u64,
}

impl FramePrefix {
    fn new(seq: u64, prefix: &[u8; FRAME_BYTES]) -> Self {
        let (frame_id, timestamp_ns) = crate::lane::parse_prefix(prefix);
        FramePrefix {
            seq,
            frame_id,
            timestamp_ns,
        }
    }
}

/// The frame prefix of a stream's newest complete write: `Ok(None)` if nothing was
/// written yet, the body does not fit the geometry, or every one of `attempts`
/// attempts raced a write.
pub fn stream_latest<R: Region<Header = SeqlockHeader>>(
    region: &R,
    geometry: &SeqlockGeometry,
    attempts: u32,
) -> Result<Option<FramePrefix>, Corruption> {
    if attempts == 0 {
        return Ok(None);
    }
    let Ok(register) = Seqlock::new(region, *geometry) else {
        return Ok(None);
    };
    let mut reader = register.reader();
    reader.set_max_attempts(attempts);
    let mut prefix = [0u8; FRAME_BYTES];
    let prefix_range = 0..FRAME_BYTES;
    match reader.read_ranges(
        core::slice::from_ref(&prefix_range),
        &mut [&mut prefix[..]],
        false,
    ) {
        Ok(info) => Ok(Some(FramePrefix::new(info.seq, &prefix))),
        Err(RangeReadError::Read(ReadError::Corrupt(c))) => Err(c),
        Err(RangeReadError::Outside { len, .. }) => Err(Corruption::Length {
            found: len as u64,
            max: geometry.slot_bytes() as u64,
        }),
        // Nothing written yet, or every attempt raced a write.
        Err(_) => Ok(None),
    }
}

/// The frame prefix of a topic's newest item: `Ok(None)` if nothing was published
/// yet, the body does not fit the geometry, or every one of `attempts` attempts found
/// the item overwritten.
pub fn topic_latest<R: Region<Header = BroadcastHeader>>(
    region: &R,
    geometry: &BroadcastGeometry,
    attempts: u32,
) -> Result<Option<FramePrefix>, Corruption> {
    let Ok(ring) = Broadcast::new(region, *geometry) else {
        return Ok(None);
    };
    let mut prefix = [0u8; FRAME_BYTES];
    for attempt in 0..attempts {
        if attempt > 0 {
            std::hint::spin_loop();
        }
        let Some(position) = ring.tail().checked_sub(1) else {
            return Ok(None);
        };
        match ring.read_prefix_at(position, &mut prefix) {
            Ok(len) if len >= FRAME_BYTES => {
                return Ok(Some(FramePrefix::new(position.wrapping_add(1), &prefix)))
            }
            Ok(len) => {
                return Err(Corruption::Length {
                    found: len as u64,
                    max: geometry.slot_bytes() as u64,
                })
            }
            Err(ReadAtError::Corrupt(c)) => return Err(c),
            // Overwritten by a later position (or the tail moved): look again.
            Err(_) => continue,
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
        region.body()[geometry.slot_stride() + tensorlane_core::LENGTH_WORD]
            .store(3, std::sync::atomic::Ordering::Relaxed);
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
            seq: 6,
            frame_id: 6,
            timestamp_ns: 60,
        };
        assert_eq!(topic_latest(&region, &geometry, 4), Ok(Some(expected)));
        // A tail beyond what the slot's stamp says was published is corruption.
        region
            .header()
            .tail
            .store(11, std::sync::atomic::Ordering::Relaxed);
        assert!(matches!(
            topic_latest(&region, &geometry, 4),
            Err(Corruption::Stamp { expected: 10, .. })
        ));
    }
}
