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

use crate::stats::Counters;
use crate::wire::{self, LaneDesc, Message};
use crate::{log, Imported, POLL};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tensorlane_shm::{
    CreateOptions, Kind, LaneError, LaneName, OpenOptions, QueueProducer, StreamWriter,
    TopicPublisher,
};
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
    /// The largest lane it creates (bytes of tensors).
    max_lane_bytes: u64,
    stop: Arc<AtomicBool>,
    counters: Counters,
    imported: Imported,
    /// A fragmented sample's bytes, joined (kept between samples: no allocation
    /// per sample once it has grown).
    joined: Vec<u8>,
}

impl Importer {
    pub(crate) fn new(
        local_prefix: String,
        max_lane_bytes: u64,
        stop: Arc<AtomicBool>,
        counters: Counters,
        imported: Imported,
    ) -> Importer {
        Importer {
            lanes: BTreeMap::new(),
            local_prefix,
            max_lane_bytes,
            stop,
            counters,
            imported,
            joined: Vec::new(),
        }
    }

    /// Imports one sample, or counts and logs why it was refused.
    pub(crate) fn receive(&mut self, sample: &Sample) {
        let key = sample.key_expr().as_str();
        let payload = sample.payload();
        // A large sample arrives in fragments; the decoder reads one contiguous message.
        let mut joined = std::mem::take(&mut self.joined);
        let mut slices = payload.slices();
        let bytes: &[u8] = match (slices.next(), slices.next()) {
            (Some(only), None) => only,
            (None, _) => &[],
            _ => {
                joined.clear();
                for slice in payload.slices() {
                    joined.extend_from_slice(slice);
                }
                &joined
            }
        };
        if let Err(why) = import_one(key, bytes, self) {
            let name = format!("import {key}");
            let mut refused = 0;
            self.counters.update(&name, |c| {
                c.refused += 1;
                refused = c.refused;
            });
            if refused <= LOGGED_REFUSALS || refused % 1000 == 0 {
                log(format_args!(
                    "refused a sample on {key} ({} bytes, refusal {refused}): {why}",
                    bytes.len()
                ));
            }
        }
        self.joined = joined;
    }
}

/// Imports one sample; `Err` is the reason it was refused.
fn import_one(key: &str, bytes: &[u8], importer: &mut Importer) -> Result<(), String> {
    let Importer {
        lanes,
        local_prefix,
        max_lane_bytes,
        stop,
        counters,
        imported,
        ..
    } = importer;
    let message = wire::decode(bytes).map_err(|e| e.to_string())?;
    let chunk = key.rsplit('/').next().unwrap_or(key);
    let lane = format!("{local_prefix}{chunk}");
    LaneName::new(&lane).map_err(|e| e.to_string())?;
    let local = match lanes.entry(key.to_string()) {
        std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::btree_map::Entry::Vacant(e) => {
            let bytes = lane_bytes(&message.desc);
            if bytes.is_none_or(|b| b > *max_lane_bytes) {
                return Err(format!(
                    "the lane would hold {} x {} bytes of tensors, above --max-lane-bytes {}",
                    message.desc.count,
                    message.desc.spec.byte_len(),
                    max_lane_bytes
                ));
            }
            // Claimed before the lane exists, so a scan never exports it.
            if let Ok(mut set) = imported.lock() {
                set.insert(lane.clone());
            }
            let local = open_local(&lane, &message.desc)
                .map_err(|e| format!("cannot create or take over local lane {lane}: {e}"))?;
            log(format_args!(
                "importing {key} into {} {lane} ({})",
                message.desc.kind.name(),
                message.desc.spec
            ));
            e.insert(local)
        }
    };
    if !same_lane(&local.desc, &message.desc) {
        return Err(format!(
            "lane description differs from local lane {lane}: {} {} count {} \
             subscribers {}, local {} {} count {} subscribers {}",
            message.desc.kind.name(),
            message.desc.spec,
            message.desc.count,
            message.desc.subscribers,
            local.desc.kind.name(),
            local.desc.spec,
            local.desc.count,
            local.desc.subscribers,
        ));
    }
    let name = format!("import {key}");
    let seq = message.item.seq;
    if local.last.is_some_and(|last| seq <= last) {
        counters.update(&name, |c| c.stale += 1);
        return Ok(());
    }
    // Items missing between the last one written and this one, beyond those the
    // source reported skipped.
    let gap = local.last.map_or(0, |last| seq - last - 1);
    let lost = gap.saturating_sub(message.item.missed);
    write(local, &message, stop).map_err(|e| format!("local lane {lane}: {e}"))?;
    local.last = Some(seq);
    counters.update(&name, |c| {
        c.forwarded += 1;
        c.missed = c.missed.saturating_add(message.item.missed);
        c.lost = c.lost.saturating_add(lost);
    });
    Ok(())
}

/// Bytes of tensors a lane of `desc` holds (None if beyond u64).
fn lane_bytes(desc: &LaneDesc) -> Option<u64> {
    u64::try_from(desc.spec.byte_len())
        .ok()?
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
fn write(local: &mut Local, message: &Message<'_>, stop: &AtomicBool) -> Result<(), LaneError> {
    let frame_id = message.item.frame_id;
    match &mut local.writer {
        Writer::Stream(w) => w.write_frame(message.payload, frame_id).map(|_| ()),
        Writer::Queue(w) => {
            w.set_next_frame(frame_id);
            retry(stop, || w.push_timeout(message.payload, POLL))
        }
        Writer::Topic(w) => {
            w.set_next_frame(frame_id);
            retry(stop, || w.publish_timeout(message.payload, POLL))
        }
    }
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
