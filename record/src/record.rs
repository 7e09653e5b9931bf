//! Recording lanes into an MCAP file.
//!
//! One reader thread per lane sends encoded messages through a bounded channel to the
//! thread that writes the file. What the recorder does to a lane's writer:
//! - a topic is read by a lossy subscriber (lag bound: the topic's capacity, or
//!   `lag`): it never holds the publisher back; when the recorder falls a whole
//!   ring behind it skips, and the skips are counted in each frame's `missed`.
//!   With `lossless`, a lossless subscriber: every frame, and the publisher waits
//!   when the recorder (or the disk behind it) falls `capacity` frames behind;
//! - a stream is read with `read_new`, which never slows the writer; values
//!   overwritten before the recorder reads them are counted in `missed`;
//! - a queue has one consumer: recording it takes the consumer role and consumes.
//!
//! Invariants: every message is [`encoding::HEADER_BYTES`] plus the lane's tensor
//! bytes; the file is cut into a complete chunk at least every `chunk_interval`,
//! so a recorder killed mid-file leaves every message up to the last chunk readable.

use crate::encoding::{self, LaneDescription, HEADER_BYTES, MESSAGE_ENCODING};
use crate::image::{self, ImageLayout};
use crate::stop;
use mcap::records::MessageHeader;
use std::collections::BTreeMap;
use std::fmt;
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use tensorlane_shm::{
    Clock, Frame, HeaderInfo, Kind, LaneError, LaneName, QueueConsumer, Segment, StreamReader,
    SubscribeOptions, TopicSubscriber,
};

/// What to record and how.
#[derive(Debug, Clone)]
pub struct RecordOptions {
    /// Lane names.
    pub lanes: Vec<String>,
    /// The MCAP file to write.
    pub output: PathBuf,
    /// Topics: a lossless subscriber (the publisher waits for the recorder). Streams
    /// are read with `read_new` either way.
    pub lossless: bool,
    /// Topics: the lossy subscriber's lag bound (default: the topic's capacity).
    pub lag: Option<u64>,
    /// Stop after this long (default: on SIGINT/SIGTERM, or when every lane's
    /// writer side is gone).
    pub duration: Option<Duration>,
    /// Longest time between two complete chunks in the file.
    pub chunk_interval: Duration,
    /// Also write `u8` images as `foxglove.RawImage` channels.
    pub images: bool,
}

/// What was recorded of one lane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneStats {
    /// Lane name.
    pub name: String,
    /// Frames written to the file.
    pub frames: u64,
    /// Frames the recorder did not get (sum of the frames' `missed`).
    pub missed: u64,
    /// Why the lane's recording ended.
    pub end: String,
}

/// Why a recording failed.
#[derive(Debug)]
pub enum RecordError {
    /// The command line asks for something impossible.
    Usage(String),
    /// A lane could not be opened.
    Lane {
        /// Lane name.
        name: String,
        /// The error.
        error: LaneError,
    },
    /// Creating the file.
    Io(std::io::Error),
    /// Writing MCAP records.
    Mcap(mcap::McapError),
}

impl fmt::Display for RecordError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordError::Usage(s) => f.write_str(s),
            RecordError::Lane { name, error } => write!(f, "lane {name:?}: {error}"),
            RecordError::Io(e) => write!(f, "{e}"),
            RecordError::Mcap(e) => write!(f, "MCAP: {e}"),
        }
    }
}

impl std::error::Error for RecordError {}

impl From<mcap::McapError> for RecordError {
    fn from(e: mcap::McapError) -> Self {
        RecordError::Mcap(e)
    }
}

/// A lane opened for recording.
enum Source {
    Stream(StreamReader),
    Queue(QueueConsumer),
    Topic(Box<TopicSubscriber>),
}

impl Source {
    /// Opens `name` as its kind asks; returns the source and how it reads.
    fn open(name: &str, lossless: bool, lag: Option<u64>) -> Result<(Source, String), LaneError> {
        // The kind and capacity, read without taking a role.
        let (kind, count) = {
            let segment = Segment::open(&LaneName::new(name)?)?;
            (segment.info().kind, segment.info().count)
        };
        Ok(match kind {
            Kind::Stream => (
                Source::Stream(StreamReader::open(name)?),
                "stream reader".into(),
            ),
            Kind::Queue => (
                Source::Queue(QueueConsumer::open(name)?),
                "queue consumer".into(),
            ),
            Kind::Topic if lossless => (
                Source::Topic(Box::new(TopicSubscriber::open(
                    name,
                    SubscribeOptions::lossless(),
                )?)),
                "lossless subscriber".into(),
            ),
            Kind::Topic => {
                let lag = lag.unwrap_or(count as u64).max(1);
                (
                    Source::Topic(Box::new(TopicSubscriber::open(
                        name,
                        SubscribeOptions::lossy(lag),
                    )?)),
                    format!("lossy subscriber (lag {lag})"),
                )
            }
        })
    }

    fn info(&self) -> &HeaderInfo {
        match self {
            Source::Stream(s) => s.info(),
            Source::Queue(q) => q.info(),
            Source::Topic(t) => t.info(),
        }
    }

    /// The next frame: waiting at most `timeout`, or not at all with `None`.
    fn next(&mut self, out: &mut [u8], timeout: Option<Duration>) -> Result<Frame, LaneError> {
        match (self, timeout) {
            (Source::Stream(s), Some(t)) => s.read_new_timeout(out, t),
            (Source::Stream(s), None) => s.try_read_new(out),
            (Source::Queue(q), Some(t)) => q.pop_timeout(out, t),
            (Source::Queue(q), None) => q.try_pop(out),
            (Source::Topic(s), Some(t)) => s.recv_timeout(out, t),
            (Source::Topic(s), None) => s.try_recv(out),
        }
    }
}

/// One frame on its way to the file.
struct Item {
    lane: usize,
    log_time: u64,
    frame: Frame,
    message: Vec<u8>,
}

/// How long a reader waits for a frame before it looks at the stop flag again.
const POLL: Duration = Duration::from_millis(20);
/// Frames in flight between the readers and the file writer.
const IN_FLIGHT: usize = 256;

/// Reads `source` until `stop`, then drains what is pending (at most one ring's
/// worth), sending every frame to `items`. Returns why it ended.
fn read_lane(
    lane: usize,
    mut source: Source,
    stop: &AtomicBool,
    items: SyncSender<Item>,
) -> String {
    let tensor_bytes = source.info().spec.byte_len();
    let drain_limit = source.info().count.saturating_add(1);
    let mut drained = 0usize;
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        if stopping && drained >= drain_limit {
            return "stopped".into();
        }
        let mut message = vec![0u8; HEADER_BYTES + tensor_bytes];
        let wait = if stopping { None } else { Some(POLL) };
        match source.next(&mut message[HEADER_BYTES..], wait) {
            Ok(frame) => {
                let log_time = Clock::Realtime.now_ns();
                encoding::encode_header(&frame, &mut message);
                if stopping {
                    drained += 1;
                }
                let item = Item {
                    lane,
                    log_time,
                    frame,
                    message,
                };
                if items.send(item).is_err() {
                    return "the file writer stopped".into();
                }
            }
            Err(LaneError::Timeout | LaneError::Stalled) => {}
            Err(LaneError::Empty) if stopping => return "stopped".into(),
            Err(LaneError::Empty) => {}
            Err(LaneError::WriterGone) => return "writer gone".into(),
            Err(e) => return format!("error: {e}"),
        }
    }
}

/// A lane's channels in the file.
struct Channels {
    name: String,
    tensor: u16,
    image: Option<(u16, ImageLayout)>,
    stats: LaneStats,
}

/// Records as `options` say; prints one line on stdout once every lane is open
/// (`recording N lane(s) to PATH`), and returns each lane's statistics.
pub fn record(options: &RecordOptions) -> Result<Vec<LaneStats>, RecordError> {
    if options.lanes.is_empty() {
        return Err(RecordError::Usage("no lane to record".into()));
    }
    for (i, name) in options.lanes.iter().enumerate() {
        if options.lanes[..i].contains(name) {
            return Err(RecordError::Usage(format!("lane {name:?} given twice")));
        }
    }
    stop::install();
    let mut sources = Vec::new();
    for name in &options.lanes {
        let lane_error = |error| RecordError::Lane {
            name: name.clone(),
            error,
        };
        let (source, read_as) =
            Source::open(name, options.lossless, options.lag).map_err(lane_error)?;
        if options.lossless && source.info().kind == Kind::Stream {
            eprintln!(
                "tensorlane-record: lane {name:?} is a stream: read with read_new, which \
                 skips values overwritten before it reads them (--lossless applies to topics)"
            );
        }
        sources.push((name.clone(), source, read_as));
    }

    let file = File::create(&options.output).map_err(RecordError::Io)?;
    let mut writer = mcap::WriteOptions::new()
        .profile(encoding::PROFILE)
        .library(concat!("tensorlane-record ", env!("CARGO_PKG_VERSION")))
        .compression(None)
        .chunk_size(Some(1 << 20))
        .create(BufWriter::new(file))?;
    let schema = writer.add_schema(
        encoding::SCHEMA_NAME,
        encoding::SCHEMA_ENCODING,
        encoding::SCHEMA_TEXT.as_bytes(),
    )?;
    let mut image_schema = None;
    let mut channels = Vec::new();
    for (name, source, read_as) in &sources {
        let description = LaneDescription::from_info(name, source.info());
        let mut metadata = description.channel_metadata();
        metadata.insert(encoding::key::READ_AS.into(), read_as.clone());
        let tensor = writer.add_channel(schema, name, MESSAGE_ENCODING, &metadata)?;
        let image = match ImageLayout::of(&description.spec) {
            Some(layout) if options.images => {
                let schema = match image_schema {
                    Some(id) => id,
                    None => {
                        let id = writer.add_schema(
                            image::SCHEMA_NAME,
                            image::SCHEMA_ENCODING,
                            image::SCHEMA.as_bytes(),
                        )?;
                        image_schema = Some(id);
                        id
                    }
                };
                let topic = format!("{name}/image");
                let id = writer.add_channel(
                    schema,
                    &topic,
                    image::MESSAGE_ENCODING,
                    &BTreeMap::new(),
                )?;
                Some((id, layout))
            }
            _ => None,
        };
        channels.push(Channels {
            name: name.clone(),
            tensor,
            image,
            stats: LaneStats {
                name: name.clone(),
                frames: 0,
                missed: 0,
                end: String::new(),
            },
        });
    }
    // The schema and channels reach the file before any frame: a reader of a file cut
    // short finds them.
    writer.flush()?;

    let stop_flag = Arc::new(AtomicBool::new(false));
    let (items, received) = mpsc::sync_channel::<Item>(IN_FLIGHT);
    let mut readers = Vec::new();
    for (lane, (_, source, _)) in sources.into_iter().enumerate() {
        let stop_flag = stop_flag.clone();
        let items = items.clone();
        readers.push(thread::spawn(move || {
            read_lane(lane, source, &stop_flag, items)
        }));
    }
    drop(items);
    println!(
        "recording {} lane(s) to {}",
        channels.len(),
        options.output.display()
    );
    let started = Instant::now();
    let mut last_chunk = Instant::now();
    loop {
        if stop::requested() || options.duration.is_some_and(|d| started.elapsed() >= d) {
            // Relaxed: the readers only need to see the flag eventually.
            stop_flag.store(true, Ordering::Relaxed);
        }
        match received.recv_timeout(POLL) {
            Ok(item) => {
                let lane = &mut channels[item.lane];
                lane.stats.frames += 1;
                lane.stats.missed = lane.stats.missed.saturating_add(item.frame.missed);
                let header = MessageHeader {
                    channel_id: lane.tensor,
                    // MCAP's sequence is 32 bits: the low bits of `seq` (the whole
                    // `seq` is in the message).
                    sequence: item.frame.seq as u32,
                    log_time: item.log_time,
                    publish_time: item.frame.timestamp_ns,
                };
                writer.write_to_known_channel(&header, &item.message)?;
                if let Some((id, layout)) = lane.image {
                    let json =
                        layout.message(&lane.name, item.log_time, &item.message[HEADER_BYTES..]);
                    let header = MessageHeader {
                        channel_id: id,
                        ..header
                    };
                    writer.write_to_known_channel(&header, &json)?;
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if last_chunk.elapsed() >= options.chunk_interval {
            writer.flush()?;
            last_chunk = Instant::now();
        }
    }
    for (lane, reader) in readers.into_iter().enumerate() {
        channels[lane].stats.end = reader
            .join()
            .unwrap_or_else(|_| "reader thread panicked".into());
    }
    let stats: Vec<LaneStats> = channels.into_iter().map(|c| c.stats).collect();
    let mut summary = BTreeMap::new();
    for s in &stats {
        summary.insert(format!("{}.frames", s.name), s.frames.to_string());
        summary.insert(format!("{}.missed", s.name), s.missed.to_string());
        summary.insert(format!("{}.end", s.name), s.end.clone());
    }
    writer.write_metadata(&mcap::records::Metadata {
        name: "tensorlane.recording".into(),
        metadata: summary,
    })?;
    writer.finish()?;
    Ok(stats)
}
