//! The importer of one key expression: decodes each sample, creates (or takes over)
//! the local lane named by the key's last chunk, and writes the item into it. It runs
//! in the subscriber's callback, on the Zenoh task that reads the link, so a sample
//! reaches its lane without waking another thread.
//!
//! - Stream: `StreamWriter::write_frame` with the source frame id; an item whose
//!   source sequence is not above the last one written is dropped as stale.
//! - Queue: `QueueProducer::push`, waiting for space as long as it takes (checking
//!   the stop flag every 100 ms). While it waits Zenoh stops reading the link, and
//!   the exporter's `Block` puts wait: backpressure from the local consumer on host B
//!   to the producer on host A.
//! - Topic: `TopicPublisher::publish`, likewise (a lossless local subscriber that
//!   falls behind holds the bridge back).
//!
//! Queue and topic items keep the source frame ids (`set_next_frame`). Timestamps on
//! the local lane are local write times (the two hosts' monotonic clocks are not
//! comparable); the source timestamp travels in the message (docs/BRIDGE.md).
//!
//! Invariant: nothing reaches a local lane unless [`wire::decode`] accepted the
//! sample and its lane description (kind, tensor, geometry, clock, metadata) equals
//! the one the local lane was made from; every refusal is logged and counted.

use crate::config::Options;
use crate::stats::Counters;
use crate::wire::{self, DecodeError, LaneDesc};
use crate::{log, Imported, POLL};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tensorlane_shm::{
    CreateOptions, Kind, LaneError, LaneName, OpenOptions, QueueProducer, StreamWriter,
    TopicPublisher, Wait,
};
use zenoh::bytes::ZBytes;
use zenoh::sample::Sample;

/// Refusals logged in full per lane before the log thins out to one in 1000.
const LOGGED_REFUSALS: u64 = 10;

enum Writer {
    Stream(StreamWriter),
    Queue(QueueProducer),
    Topic(TopicPublisher),
}

/// One imported lane.
struct Local {
    desc: LaneDesc,
    writer: Writer,
    /// Source sequence of the last item written.
    last: Option<u64>,
}

/// The state of one `--import` key expression: the local lanes its samples go into.
/// Zenoh calls [`Importer::receive`] for each sample, one at a time, on the task that
/// reads the link: a sample is written into its local lane before the next one is
/// read, with no thread hand-over in between.
pub(crate) struct Importer {
    lanes: BTreeMap<String, Local>,
    local_prefix: String,
    /// The largest lane it creates (`--max-lane-bytes`).
    max_lane_bytes: u64,
    /// How many lanes this bridge imports at most (`--max-lanes`).
    max_lanes: usize,
    stop: Arc<AtomicBool>,
    counters: Counters,
    imported: Imported,
    /// Queues are written in place (`--zero-copy`).
    zero_copy: bool,
    /// A sample whose prefix arrived split, joined (kept between samples: no
    /// allocation per sample once it has grown).
    joined: Vec<u8>,
    /// A payload in pieces, joined for a lane written by copy.
    gathered: Vec<u8>,
}

/// A decoded sample: its head, and its payload in the pieces it arrived in (a sample
/// larger than a Zenoh batch arrives in fragments).
struct Received<'a> {
    head: wire::Head,
    pieces: Vec<&'a [u8]>,
}

impl Received<'_> {
    /// The payload in one slice: the only piece, or the pieces joined in `gathered`.
    fn contiguous<'b>(&'b self, gathered: &'b mut Vec<u8>) -> &'b [u8] {
        match self.pieces[..] {
            [one] => one,
            _ => {
                gathered.clear();
                for piece in &self.pieces {
                    gathered.extend_from_slice(piece);
                }
                gathered
            }
        }
    }
}

/// Decodes a sample from its pieces; joins them into `joined` only if the first
/// piece does not hold the whole prefix.
fn decode<'a>(payload: &'a ZBytes, joined: &'a mut Vec<u8>) -> Result<Received<'a>, String> {
    let total = payload.len();
    let mut slices = payload.slices();
    let first = slices.next().unwrap_or(&[]);
    match wire::decode_head(first, total as u64) {
        Ok(head) => {
            let mut pieces = vec![&first[head.prefix..]];
            pieces.extend(slices);
            Ok(Received { head, pieces })
        }
        // Only the prefix is split (a valid one can be longer than a Zenoh batch):
        // join; a sample that is short of what it states is refused without a copy.
        Err(DecodeError::Truncated { needed, found })
            if found == first.len() as u64
                && needed <= total as u64
                && needed <= wire::MAX_PREFIX as u64 =>
        {
            joined.clear();
            for slice in payload.slices() {
                joined.extend_from_slice(slice);
            }
            let head = wire::decode_head(joined, total as u64).map_err(|e| e.to_string())?;
            let pieces = vec![&joined[head.prefix..]];
            Ok(Received { head, pieces })
        }
        Err(e) => Err(e.to_string()),
    }
}

impl Importer {
    pub(crate) fn new(
        options: &Options,
        stop: Arc<AtomicBool>,
        counters: Counters,
        imported: Imported,
    ) -> Importer {
        Importer {
            lanes: BTreeMap::new(),
            local_prefix: options.local_prefix.clone(),
            max_lane_bytes: options.max_lane_bytes,
            max_lanes: options.max_lanes,
            stop,
            counters,
            imported,
            zero_copy: options.zero_copy,
            joined: Vec::new(),
            gathered: Vec::new(),
        }
    }

    /// Imports one sample, or counts and logs why it was refused.
    pub(crate) fn receive(&mut self, sample: &Sample) {
        let key = sample.key_expr().as_str();
        let payload = sample.payload();
        let mut joined = std::mem::take(&mut self.joined);
        let result =
            decode(payload, &mut joined).and_then(|received| import_one(key, &received, self));
        self.joined = joined;
        if let Err(why) = result {
            let name = format!("import {key}");
            let mut refused = 0;
            self.counters.update(&name, |c| {
                c.refused += 1;
                refused = c.refused;
            });
            if refused <= LOGGED_REFUSALS || refused % 1000 == 0 {
                log(format_args!(
                    "refused a sample on {key} ({} bytes, refusal {refused}): {why}",
                    payload.len()
                ));
            }
        }
    }
}

/// Imports one sample; `Err` is the reason it was refused.
fn import_one(key: &str, received: &Received<'_>, importer: &mut Importer) -> Result<(), String> {
    let Importer {
        lanes,
        local_prefix,
        max_lane_bytes,
        max_lanes,
        stop,
        counters,
        imported,
        zero_copy,
        gathered,
        ..
    } = importer;
    let head = &received.head;
    let chunk = key.rsplit('/').next().unwrap_or(key);
    let lane = format!("{local_prefix}{chunk}");
    LaneName::new(&lane).map_err(|e| e.to_string())?;
    let local = match lanes.entry(key.to_string()) {
        std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::btree_map::Entry::Vacant(e) => {
            let bytes = lane_bytes(&head.desc);
            if bytes.is_none_or(|b| b > *max_lane_bytes) {
                return Err(format!(
                    "the lane would hold {} slots of {} bytes and {SLOT_OVERHEAD} bytes \
                     of frame, above --max-lane-bytes {}",
                    head.desc.count,
                    head.desc.spec.byte_len(),
                    max_lane_bytes
                ));
            }
            let created = imported.lock().map_or(0, |set| set.len());
            if created >= *max_lanes {
                return Err(format!(
                    "this bridge imports {created} lanes already, --max-lanes {max_lanes}"
                ));
            }
            // Claimed before the lane exists, so a scan never exports it.
            if let Ok(mut set) = imported.lock() {
                set.insert(lane.clone());
            }
            let local = open_local(&lane, &head.desc)
                .map_err(|e| format!("cannot create or take over local lane {lane}: {e}"))?;
            log(format_args!(
                "importing {key} into {} {lane} ({})",
                head.desc.kind.name(),
                head.desc.spec
            ));
            e.insert(local)
        }
    };
    if !same_lane(&local.desc, &head.desc) {
        return Err(format!(
            "lane description differs from local lane {lane}: {} {} count {} \
             subscribers {}, local {} {} count {} subscribers {}",
            head.desc.kind.name(),
            head.desc.spec,
            head.desc.count,
            head.desc.subscribers,
            local.desc.kind.name(),
            local.desc.spec,
            local.desc.count,
            local.desc.subscribers,
        ));
    }
    let name = format!("import {key}");
    let seq = head.item.seq;
    if local.last.is_some_and(|last| seq <= last) {
        counters.update(&name, |c| c.stale += 1);
        return Ok(());
    }
    // Items missing between the last one written and this one, beyond those the
    // source reported skipped.
    let gap = local.last.map_or(0, |last| seq - last - 1);
    let lost = gap.saturating_sub(head.item.missed);
    let written = match &mut local.writer {
        Writer::Queue(w) if *zero_copy => {
            w.set_next_frame(head.item.frame_id);
            push_pieces(w, &received.pieces, stop)
        }
        writer => write(writer, head, received.contiguous(gathered), stop),
    };
    written.map_err(|e| format!("local lane {lane}: {e}"))?;
    local.last = Some(seq);
    counters.update(&name, |c| {
        c.forwarded += 1;
        c.missed = c.missed.saturating_add(head.item.missed);
        c.lost = c.lost.saturating_add(lost);
    });
    Ok(())
}

/// What `--max-lane-bytes` counts per slot beyond the tensor: about a slot's frame
/// prefix, stamp and length words.
const SLOT_OVERHEAD: u64 = 64;

/// Bytes a lane of `desc` holds, counted for `--max-lane-bytes`: its slots, each
/// with its tensor and `SLOT_OVERHEAD` (None if beyond u64).
fn lane_bytes(desc: &LaneDesc) -> Option<u64> {
    u64::try_from(desc.spec.byte_len())
        .ok()?
        .checked_add(SLOT_OVERHEAD)?
        .checked_mul(u64::from(desc.count))
}

/// Whether two descriptions name the same lane (the lossless flag says how the
/// exporter reads, not what the lane is).
fn same_lane(a: &LaneDesc, b: &LaneDesc) -> bool {
    a.kind == b.kind
        && a.spec == b.spec
        && a.count == b.count
        && a.subscribers == b.subscribers
        && a.clock == b.clock
        && a.metadata == b.metadata
}

/// Creates lane `lane` from `desc`, or takes over an existing one whose writer is
/// gone and whose header matches `desc`.
fn open_local(lane: &str, desc: &LaneDesc) -> Result<Local, LaneError> {
    let create = CreateOptions::new()
        .clock(desc.clock)
        .metadata(desc.metadata.iter());
    let open = OpenOptions::new().expect(&desc.spec);
    let (count, subscribers) = (desc.count as usize, desc.subscribers as usize);
    let writer = match desc.kind {
        Kind::Stream => Writer::Stream(
            match StreamWriter::create_with(lane, &desc.spec, count, create) {
                Err(LaneError::Exists(_)) => StreamWriter::take_over_with(lane, open)?,
                other => other?,
            },
        ),
        Kind::Queue => Writer::Queue(
            match QueueProducer::create_with(lane, &desc.spec, count, create) {
                Err(LaneError::Exists(_)) => QueueProducer::take_over_with(lane, open)?,
                other => other?,
            },
        ),
        Kind::Topic => Writer::Topic(
            match TopicPublisher::create_with(lane, &desc.spec, count, subscribers, create) {
                Err(LaneError::Exists(_)) => TopicPublisher::take_over_with(lane, open)?,
                other => other?,
            },
        ),
    };
    let info = match &writer {
        Writer::Stream(w) => w.info(),
        Writer::Queue(w) => w.info(),
        Writer::Topic(w) => w.info(),
    };
    let found = LaneDesc {
        kind: info.kind,
        spec: info.spec.clone(),
        count: u32::try_from(info.count).unwrap_or(u32::MAX),
        subscribers: u32::try_from(info.subscribers).unwrap_or(u32::MAX),
        clock: info.clock,
        metadata: info.metadata.clone(),
        lossless: desc.lossless,
    };
    if !same_lane(&found, desc) {
        return Err(LaneError::WrongSpec {
            name: lane.to_string(),
            expected: format!(
                "{} {} count {} subscribers {} (with the source's clock and metadata)",
                desc.kind.name(),
                desc.spec,
                desc.count,
                desc.subscribers
            ),
            found: format!(
                "{} {} count {} subscribers {}",
                found.kind.name(),
                found.spec,
                found.count,
                found.subscribers
            ),
        });
    }
    Ok(Local {
        desc: desc.clone(),
        writer,
        last: None,
    })
}

/// Writes the item into the local lane, waiting (with stop checks) for space.
fn write(
    writer: &mut Writer,
    head: &wire::Head,
    payload: &[u8],
    stop: &AtomicBool,
) -> Result<(), LaneError> {
    let frame_id = head.item.frame_id;
    match writer {
        Writer::Stream(w) => w.write_frame(payload, frame_id).map(|_| ()),
        Writer::Queue(w) => {
            w.set_next_frame(frame_id);
            retry(stop, || w.push_timeout(payload, POLL))
        }
        Writer::Topic(w) => {
            w.set_next_frame(frame_id);
            retry(stop, || w.publish_timeout(payload, POLL))
        }
    }
}

/// Copies the pieces straight into the queue's next slot and pushes it: one copy,
/// no joined payload first (`--zero-copy`). Waits, with stop checks, for a free slot.
fn push_pieces(
    w: &mut QueueProducer,
    pieces: &[&[u8]],
    stop: &AtomicBool,
) -> Result<(), LaneError> {
    let held = loop {
        // SAFETY: `--zero-copy` is the operator's statement that every process that
        // can write this lane follows docs/LAYOUT.md, the promise `hold_slot` asks
        // for; the address is written below only, from this thread, before
        // `commit_held`.
        match unsafe { w.hold_slot(Wait::timeout(POLL)) } {
            Ok(held) => break held,
            Err(LaneError::Timeout) if !stop.load(Ordering::Relaxed) => {}
            Err(e) => return Err(e),
        }
    };
    let total = pieces.iter().map(|p| p.len()).sum();
    if total != held.len() {
        // Dropping `held` leaves the slot free.
        return Err(LaneError::WrongSize {
            expected: held.len(),
            found: total,
        });
    }
    let mut at = 0;
    for piece in pieces {
        // SAFETY: `held` lends this handle a free slot of `held.len()` bytes, mapped
        // while `held` lives; `at + piece.len() <= total == held.len()` keeps the copy
        // inside it. A piece never overlaps the slot: it is received memory, or (from
        // a publisher of this process, such as an in-place exporter) an item pushed
        // to some queue, never a free slot held by this producer.
        unsafe {
            std::ptr::copy_nonoverlapping(piece.as_ptr(), held.as_ptr().add(at), piece.len())
        };
        at += piece.len();
    }
    w.commit_held(held).map(|_| ())
}

fn retry(
    stop: &AtomicBool,
    mut attempt: impl FnMut() -> Result<u64, LaneError>,
) -> Result<(), LaneError> {
    loop {
        match attempt() {
            Ok(_) => return Ok(()),
            Err(LaneError::Timeout) if !stop.load(Ordering::Relaxed) => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tensorlane_shm::{Clock, Metadata, TensorSpec};

    fn desc() -> LaneDesc {
        LaneDesc {
            kind: Kind::Queue,
            spec: TensorSpec::bytes(40).unwrap(),
            count: 4,
            subscribers: 0,
            clock: Clock::Monotonic,
            metadata: Metadata::new([("unit", "m")]).unwrap(),
            lossless: false,
        }
    }

    fn message() -> (Vec<u8>, Vec<u8>) {
        let payload: Vec<u8> = (0..40).collect();
        let item = wire::ItemInfo {
            seq: 3,
            frame_id: 9,
            timestamp_ns: 1,
            missed: 0,
        };
        (wire::encode(&desc(), &item, &payload), payload)
    }

    /// A sample in the given pieces, as Zenoh hands over a fragmented one.
    fn in_pieces(parts: &[&[u8]]) -> ZBytes {
        let mut writer = ZBytes::writer();
        for part in parts {
            writer.append(ZBytes::from(part.to_vec()));
        }
        writer.finish()
    }

    #[test]
    fn a_sample_decodes_wherever_it_was_cut() {
        let (bytes, payload) = message();
        let prefix = wire::prefix_len(&desc());
        for cut in 1..bytes.len() {
            let sample = in_pieces(&[&bytes[..cut], &bytes[cut..]]);
            assert_eq!(sample.slices().count(), 2);
            let mut joined = Vec::new();
            let received = decode(&sample, &mut joined).unwrap();
            assert_eq!(received.head.desc, desc(), "cut at {cut}");
            let mut gathered = Vec::new();
            assert_eq!(received.contiguous(&mut gathered), &payload[..]);
            // Joined only when the cut falls inside the prefix.
            assert_eq!(joined.is_empty(), cut >= prefix, "cut at {cut}");
        }
    }

    #[test]
    fn a_sample_short_of_its_stated_length_is_refused_without_a_join() {
        let (bytes, _) = message();
        let prefix = wire::prefix_len(&desc());
        let sample = in_pieces(&[&bytes[..prefix + 4], &bytes[prefix + 4..bytes.len() - 1]]);
        let mut joined = Vec::new();
        assert!(decode(&sample, &mut joined).is_err());
        assert!(joined.is_empty(), "a short sample was copied");
    }
}
