//! Replaying a recording: the lanes are created again (same kind, tensor, capacity,
//! subscriber table, clock and metadata; names optionally prefixed) and the frames
//! are written with their recorded frame ids, at their recorded times.
//!
//! Timing: when every recorded lane has the same clock (not `none`), a frame's time
//! is its `timestamp_ns` (the write time on the original lane); otherwise it is the
//! MCAP `log_time` (when the recorder received it). Frame i is written at
//! `start + (t_i - t_0) / rate`; `as_fast_as_possible` writes without waiting.
//!
//! Invariants: everything read from the file is untrusted (typed errors, checked
//! lengths); a file cut short (a killed recorder) replays up to its last complete
//! chunk, and the shortfall is reported in [`Replayed::truncated`].

use crate::encoding::{self, DecodeError, LaneDescription, MESSAGE_ENCODING};
use crate::stop;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tensorlane_shm::{
    Clock, CreateOptions, Frame, Kind, LaneError, QueueProducer, StreamWriter, TopicPublisher,
};

/// What to replay and how.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    /// The MCAP file.
    pub input: PathBuf,
    /// Speed factor (2.0: twice as fast).
    pub rate: f64,
    /// Start again from the first frame after the last one, until stopped.
    pub looped: bool,
    /// Write every frame at once, without the recorded timing.
    pub as_fast_as_possible: bool,
    /// Prepended to every lane name (replay beside the live lanes).
    pub prefix: String,
    /// Before the first frame, wait until each topic has this many subscribers.
    pub wait_subscribers: usize,
    /// Run the replaying thread at this `SCHED_FIFO` priority (1 to 99; needs
    /// `CAP_SYS_NICE` or an `rtprio` limit), so that other processes cannot delay
    /// its writes.
    pub fifo_priority: Option<u8>,
}

/// What a replay did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replayed {
    /// The lanes created, with their names as created.
    pub lanes: Vec<String>,
    /// Frames written (all passes).
    pub frames: u64,
    /// Why the file's messages ended before its end, if they did.
    pub truncated: Option<String>,
}

/// Why a replay failed.
#[derive(Debug)]
pub enum ReplayError {
    /// Reading the file.
    Io(std::io::Error),
    /// The file is not MCAP, or its first messages cannot be read.
    Mcap(mcap::McapError),
    /// A channel or message does not follow docs/RECORDING.md.
    Decode {
        /// Channel topic.
        topic: String,
        /// The error.
        error: DecodeError,
    },
    /// The file holds no tensorlane channel.
    Empty,
    /// The file ends, or is damaged, before its first tensorlane message.
    Unreadable(String),
    /// A lane could not be created or written.
    Lane {
        /// Lane name.
        name: String,
        /// The error.
        error: LaneError,
    },
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplayError::Io(e) => write!(f, "{e}"),
            ReplayError::Mcap(e) => write!(f, "MCAP: {e}"),
            ReplayError::Decode { topic, error } => write!(f, "channel {topic:?}: {error}"),
            ReplayError::Empty => f.write_str("the file holds no tensorlane channel"),
            ReplayError::Unreadable(why) => {
                write!(f, "no tensorlane message could be read: {why}")
            }
            ReplayError::Lane { name, error } => write!(f, "lane {name:?}: {error}"),
        }
    }
}

impl std::error::Error for ReplayError {}

/// The magic bytes that end (and begin) an MCAP file.
const MAGIC: &[u8] = b"\x89MCAP0\r\n";

/// One recorded frame.
#[derive(Debug, Clone)]
pub struct RecordedFrame {
    /// Index into [`Recording::lanes`].
    pub lane: usize,
    /// The frame as recorded.
    pub frame: Frame,
    /// MCAP log time (the recorder's receive time, `CLOCK_REALTIME`).
    pub log_time: u64,
    /// The tensor.
    pub tensor: Vec<u8>,
}

/// The tensorlane channels of a file and their frames, in file order.
#[derive(Debug, Clone)]
pub struct Recording {
    /// The recorded lanes.
    pub lanes: Vec<LaneDescription>,
    /// Every frame.
    pub frames: Vec<RecordedFrame>,
    /// Why the messages ended before the file's end, if they did.
    pub truncated: Option<String>,
}

impl Recording {
    /// Reads the tensorlane channels of MCAP bytes (other channels, image channels
    /// among them, are skipped). A file without its end (a killed recorder) gives
    /// the messages of its complete chunks and says why it stopped.
    pub fn parse(bytes: &[u8]) -> Result<Recording, ReplayError> {
        let stream = mcap::MessageStream::new_with_options(
            bytes,
            mcap::read::Options::IgnoreEndMagic.into(),
        )
        .map_err(ReplayError::Mcap)?;
        let mut lanes: Vec<LaneDescription> = Vec::new();
        let mut by_channel: BTreeMap<u16, usize> = BTreeMap::new();
        let mut frames = Vec::new();
        let mut truncated = None;
        // The mcap crate's reader (0.26) panics on some damaged chunks (a record
        // length past the chunk's end underflows a counter): a panic while reading
        // ends the messages there, like a cut, with what was read before it.
        let read = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            for message in stream {
                let message = match message {
                    Ok(m) => m,
                    Err(e) => {
                        truncated = Some(e.to_string());
                        break;
                    }
                };
                let channel = &message.channel;
                if channel.message_encoding != MESSAGE_ENCODING {
                    continue;
                }
                let decode_error = |error| ReplayError::Decode {
                    topic: channel.topic.clone(),
                    error,
                };
                let lane = match by_channel.get(&channel.id) {
                    Some(&lane) => lane,
                    None => {
                        let description =
                            LaneDescription::from_channel(&channel.topic, &channel.metadata)
                                .map_err(decode_error)?;
                        lanes.push(description);
                        by_channel.insert(channel.id, lanes.len() - 1);
                        lanes.len() - 1
                    }
                };
                let (frame, tensor) = encoding::decode(&message.data, lanes[lane].spec.byte_len())
                    .map_err(decode_error)?;
                frames.push(RecordedFrame {
                    lane,
                    frame,
                    log_time: message.log_time,
                    tensor: tensor.to_vec(),
                });
            }
            Ok(())
        }));
        match read {
            Ok(result) => result?,
            Err(_) => {
                truncated = Some(format!(
                    "the MCAP reader failed on damaged data after {} messages",
                    frames.len()
                ))
            }
        }
        if truncated.is_none() && !bytes.ends_with(MAGIC) {
            truncated = Some(format!(
                "no MCAP footer after {} messages: the recorder did not finish",
                frames.len()
            ));
        }
        if lanes.is_empty() {
            return match truncated {
                Some(why) => Err(ReplayError::Unreadable(why)),
                None => Err(ReplayError::Empty),
            };
        }
        Ok(Recording {
            lanes,
            frames,
            truncated,
        })
    }

    /// The replay time of every frame (in file order), in nanoseconds from an
    /// arbitrary origin (see the module docs).
    pub fn times(&self) -> Vec<u64> {
        let clock = self.lanes.first().map_or(Clock::None, |l| l.clock);
        let stamped = clock != Clock::None && self.lanes.iter().all(|l| l.clock == clock);
        self.frames
            .iter()
            .map(|f| {
                if stamped {
                    f.frame.timestamp_ns
                } else {
                    f.log_time
                }
            })
            .collect()
    }
}

/// A created lane.
enum Sink {
    Stream(StreamWriter),
    Queue(QueueProducer),
    Topic(TopicPublisher),
}

impl Sink {
    fn create(name: &str, lane: &LaneDescription) -> Result<Sink, LaneError> {
        let options = CreateOptions::new()
            .clock(lane.clock)
            .metadata(lane.metadata.iter().cloned());
        Ok(match lane.kind {
            Kind::Stream => Sink::Stream(StreamWriter::create_with(
                name, &lane.spec, lane.count, options,
            )?),
            Kind::Queue => Sink::Queue(QueueProducer::create_with(
                name, &lane.spec, lane.count, options,
            )?),
            Kind::Topic => Sink::Topic(TopicPublisher::create_with(
                name,
                &lane.spec,
                lane.count,
                lane.subscribers,
                options,
            )?),
        })
    }

    /// Writes `tensor` with `frame_id`, waiting (in steps, so that a stop signal is
    /// seen) while a lossless reader holds the lane back.
    fn write(&mut self, tensor: &[u8], frame_id: u64) -> Result<(), LaneError> {
        const STEP: Duration = Duration::from_millis(50);
        loop {
            let result = match self {
                Sink::Stream(w) => w.write_frame(tensor, frame_id).map(drop),
                Sink::Queue(q) => {
                    q.set_next_frame(frame_id);
                    q.push_timeout(tensor, STEP).map(drop)
                }
                Sink::Topic(p) => {
                    p.set_next_frame(frame_id);
                    p.publish_timeout(tensor, STEP).map(drop)
                }
            };
            match result {
                Err(LaneError::Timeout) if !stop::requested() => continue,
                other => return other,
            }
        }
    }
}

/// Sleeps until `due`. A sleeping thread that wakes is scheduled ahead of busy
/// ones, where a yielding or spinning thread would queue behind them on a loaded
/// machine: the whole wait is a sleep (with the timer slack set to 1 us, see
/// [`tight_timers`]).
fn sleep_until(due: Instant) {
    while let Some(left) = due
        .checked_duration_since(Instant::now())
        .filter(|d| !d.is_zero())
    {
        std::thread::sleep(left);
    }
}

/// Asks the kernel to wake this thread's sleeps within 1 us of their end instead
/// of the default 50 us timer slack; failing to is harmless (coarser timing).
fn tight_timers() {
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument (the slack in ns) and
    // changes only this thread's timer slack; no memory is passed.
    let _ = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong) };
}

/// Switches this thread to `SCHED_FIFO` at `priority`.
fn set_fifo(priority: u8) -> std::io::Result<()> {
    let param = libc::sched_param {
        sched_priority: libc::c_int::from(priority),
    };
    // SAFETY: pid 0 is this thread; `param` is a valid sched_param that outlives the
    // call, which only reads it.
    if unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Replays as `options` say; prints `created N lane(s): NAMES` on stdout once the
/// lanes exist (before waiting for subscribers).
pub fn replay(options: &ReplayOptions) -> Result<Replayed, ReplayError> {
    let bytes = std::fs::read(&options.input).map_err(ReplayError::Io)?;
    let recording = Recording::parse(&bytes)?;
    drop(bytes);
    stop::install();
    let mut sinks = Vec::new();
    let mut names = Vec::new();
    for lane in &recording.lanes {
        let name = format!("{}{}", options.prefix, lane.name);
        let sink = Sink::create(&name, lane).map_err(|error| ReplayError::Lane {
            name: name.clone(),
            error,
        })?;
        sinks.push(sink);
        names.push(name);
    }
    println!("created {} lane(s): {}", names.len(), names.join(", "));
    if options.wait_subscribers > 0 {
        for sink in &sinks {
            if let Sink::Topic(p) = sink {
                while p.active_subscribers() < options.wait_subscribers {
                    if stop::requested() {
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
            }
        }
    }
    tight_timers();
    if let Some(priority) = options.fifo_priority {
        if let Err(e) = set_fifo(priority) {
            eprintln!("tensorlane-record: SCHED_FIFO {priority} refused ({e}); replaying at normal priority");
        }
    }
    let times = recording.times();
    // Replay order is time order (a stable sort: file order among equal times, which
    // is each lane's own order).
    let mut order: Vec<usize> = (0..times.len()).collect();
    order.sort_by_key(|&i| times[i]);
    let origin = order.first().map_or(0, |&i| times[i]);
    let rate = if options.rate.is_finite() && options.rate > 0.0 {
        options.rate
    } else {
        1.0
    };
    let mut written = 0u64;
    'passes: loop {
        let start = Instant::now();
        for &i in &order {
            let (recorded, time) = (&recording.frames[i], times[i]);
            if stop::requested() {
                break 'passes;
            }
            if !options.as_fast_as_possible {
                let offset_ns = time.saturating_sub(origin) as f64 / rate;
                // Far beyond any recording: an offset past the clock's range writes at once.
                if let Some(due) = start.checked_add(Duration::from_nanos(offset_ns as u64)) {
                    sleep_until(due);
                }
            }
            sinks[recorded.lane]
                .write(&recorded.tensor, recorded.frame.frame_id)
                .map_err(|error| ReplayError::Lane {
                    name: names[recorded.lane].clone(),
                    error,
                })?;
            written += 1;
        }
        if !options.looped || recording.frames.is_empty() {
            break;
        }
    }
    Ok(Replayed {
        lanes: names,
        frames: written,
        truncated: recording.truncated,
    })
}
