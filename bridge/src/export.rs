//! Exporters: one thread per exported lane, reading it as an ordinary reader,
//! consumer or subscriber and putting each item on `<prefix>/<lane>`.
//!
//! - Stream: a `StreamReader`; `read_new` gives the newest value, overwritten values
//!   are counted as missed. Congestion control `Drop`, express (no batching): a
//!   congested link loses values, never delays a newer one behind an older one. When
//!   the key gains its first matching subscriber the latest value is sent again, so
//!   an importer that (re)starts gets it without waiting for the next write.
//! - Queue: the queue's consumer. Items are popped only while a subscriber matches
//!   the key, and put with congestion control `Block`: a slow or absent remote side
//!   leaves the items in the local queue, whose producer then waits as it would for
//!   a slow local consumer.
//! - Topic: a lossless subscriber (`Block`) or a lossy one (`Drop`; its skips are
//!   counted), receiving only while a subscriber matches, as for a queue: a lossless
//!   one holds the publisher back meanwhile, a lossy one falls behind and skips.
//!
//! Reading: by copy into pooled message buffers; with `--zero-copy` a queue's items
//! are lent to Zenoh in place instead (see `source`).
//!
//! Waiting: an exporter sleeps on its lane (after the lane's own brief spin) until
//! the next item; with `--spin-us N` it polls instead for N microseconds after each
//! item, yielding the CPU between polls, so an item that follows closely is taken
//! without a wake-up from sleep, at the cost of a busy core while items flow (the
//! yield hands it to any other thread that is ready to run).
//!
//! Invariant: an exporter puts the items of its lane in the order the lane gave
//! them, each once, with the lane's own sequence number, frame id and timestamp.

use crate::config::Options;
use crate::source::{CopiedQueue, CopiedTopic, Copier, InPlace, Source};
use crate::stats::Counters;
use crate::wire::LaneDesc;
use crate::{log, zenoh_error, BridgeError, Imported, POLL};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tensorlane_shm::{
    segment, Frame, HeaderInfo, Kind, LaneError, LaneName, Mode, QueueConsumer, Segment,
    StreamReader, TopicSubscriber,
};
use zenoh::bytes::ZBytes;
use zenoh::pubsub::Publisher;
use zenoh::qos::CongestionControl;
use zenoh::{Session, Wait};

/// How long a failed exporter waits before the scan starts it again.
const RETRY: Duration = Duration::from_secs(1);
/// How often a matching status is asked while items flow.
const MATCH_CHECK: Duration = Duration::from_millis(100);

/// Scans the local lanes until `stop`, running an exporter for each lane that matches
/// an `--export` pattern (and that this bridge does not import).
pub(crate) fn scan(
    session: &Session,
    options: &Options,
    stop: &Arc<AtomicBool>,
    counters: &Counters,
    imported: &Imported,
) {
    let prefix = options.export_prefix();
    let mut running: BTreeMap<String, JoinHandle<Result<(), BridgeError>>> = BTreeMap::new();
    let mut retry_after: BTreeMap<String, (Instant, String)> = BTreeMap::new();
    while !stop.load(Ordering::Relaxed) {
        // Collect the exporters that ended, and say why.
        let ended: Vec<String> = running
            .iter()
            .filter(|(_, t)| t.is_finished())
            .map(|(n, _)| n.clone())
            .collect();
        for name in ended {
            let Some(thread) = running.remove(&name) else {
                continue;
            };
            let why = match thread.join() {
                Ok(Ok(())) => "ended".to_string(),
                Ok(Err(e)) => e.to_string(),
                Err(_) => "panicked".to_string(),
            };
            let repeated = retry_after.get(&name).is_some_and(|(_, w)| *w == why);
            if !repeated {
                log(format_args!("export {name}: {why}; retrying"));
            }
            retry_after.insert(name, (Instant::now() + RETRY, why));
        }
        let names = match segment::list() {
            Ok(names) => names,
            Err(e) => {
                log(format_args!("cannot list lanes: {e}"));
                Vec::new()
            }
        };
        for name in names {
            let name = name.as_str().to_string();
            if running.contains_key(&name)
                || !options
                    .export
                    .iter()
                    .any(|p| crate::config::matches(p, &name))
                || imported.lock().is_ok_and(|set| set.contains(&name))
                || retry_after
                    .get(&name)
                    .is_some_and(|(t, _)| Instant::now() < *t)
            {
                continue;
            }
            let key = format!("{prefix}/{name}");
            let (session, stop, counters) = (session.clone(), stop.clone(), counters.clone());
            let reading = Reading {
                subscribe: options.subscribe_options(),
                spin: Duration::from_micros(options.spin_us),
                zero_copy: options.zero_copy,
            };
            let lane = name.clone();
            running.insert(
                name,
                std::thread::spawn(move || {
                    export_lane(&session, &lane, &key, reading, &stop, &counters)
                }),
            );
        }
        std::thread::sleep(options.rescan());
    }
    for (_, thread) in running {
        let _ = thread.join();
    }
}

/// The lane description an exporter sends with every item.
fn describe(info: &HeaderInfo, lossless: bool) -> Result<LaneDesc, BridgeError> {
    let too_large = || BridgeError::Config("lane geometry beyond the bridge's limits".into());
    Ok(LaneDesc {
        kind: info.kind,
        spec: info.spec.clone(),
        count: u32::try_from(info.count).map_err(|_| too_large())?,
        subscribers: u32::try_from(info.subscribers).map_err(|_| too_large())?,
        clock: info.clock,
        metadata: info.metadata.clone(),
        lossless,
    })
}

/// How exporters read their lanes (from the options).
#[derive(Debug, Clone, Copy)]
struct Reading {
    /// How a topic is subscribed to.
    subscribe: tensorlane_shm::SubscribeOptions,
    /// `--spin-us`.
    spin: Duration,
    /// `--zero-copy`.
    zero_copy: bool,
}

/// One lane's exporter; returns when `stop` is set or the lane fails.
fn export_lane(
    session: &Session,
    lane: &str,
    key: &str,
    reading: Reading,
    stop: &AtomicBool,
    counters: &Counters,
) -> Result<(), BridgeError> {
    let kind = Segment::open(&LaneName::new(lane).map_err(LaneError::Name)?)?
        .info()
        .kind;
    let congestion = match kind {
        Kind::Stream => CongestionControl::Drop,
        Kind::Queue => CongestionControl::Block,
        Kind::Topic if matches!(reading.subscribe.mode, Mode::Lossless) => CongestionControl::Block,
        Kind::Topic => CongestionControl::Drop,
    };
    let publisher = session
        .declare_publisher(key.to_string())
        .congestion_control(congestion)
        .express(kind == Kind::Stream)
        .wait()
        .map_err(zenoh_error)?;
    let mut out = Exporter {
        publisher,
        name: format!("export {lane}"),
        counters,
        spin: reading.spin,
        busy_until: None,
        zero_copy: reading.zero_copy,
    };
    log(format_args!("exporting {} {lane} on {key}", kind.name()));
    match kind {
        Kind::Stream => export_stream(StreamReader::open(lane)?, &mut out, stop),
        Kind::Queue => export_queue(QueueConsumer::open(lane)?, &mut out, stop),
        Kind::Topic => export_topic(
            TopicSubscriber::open(lane, reading.subscribe)?,
            &mut out,
            stop,
        ),
    }
}

struct Exporter<'a> {
    publisher: Publisher<'static>,
    name: String,
    counters: &'a Counters,
    /// How long to poll the lane after an item before sleeping (`--spin-us`).
    spin: Duration,
    /// End of the current polling window.
    busy_until: Option<Instant>,
    /// Queues are lent to Zenoh in place (`--zero-copy`).
    zero_copy: bool,
}

impl Exporter<'_> {
    fn matching(&self) -> bool {
        // If Zenoh cannot tell, send: a lossy kind loses nothing it would keep.
        self.publisher
            .matching_status()
            .wait()
            .map(|m| m.matching())
            .unwrap_or(true)
    }

    /// Whether the next take should poll (not sleep): within `spin` of the last item.
    fn polling(&self) -> bool {
        self.busy_until.is_some_and(|t| Instant::now() < t)
    }

    fn put(&mut self, payload: ZBytes, frame: &Frame) -> Result<(), BridgeError> {
        self.publisher.put(payload).wait().map_err(zenoh_error)?;
        if !self.spin.is_zero() {
            self.busy_until = Instant::now().checked_add(self.spin);
        }
        self.counters.update(&self.name, |c| {
            c.forwarded += 1;
            c.missed = c.missed.saturating_add(frame.missed);
        });
        Ok(())
    }
}

fn export_stream(
    mut reader: StreamReader,
    out: &mut Exporter<'_>,
    stop: &AtomicBool,
) -> Result<(), BridgeError> {
    let copier = Copier::new(&describe(reader.info(), false)?);
    let mut matched = false;
    let mut checked: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        if checked.is_none_or(|t| t.elapsed() >= MATCH_CHECK) {
            checked = Some(Instant::now());
            let now = out.matching();
            if now && !matched {
                // A new importer: give it the latest value now.
                let latest =
                    copier.take(|buf| reader.read(buf).map(|frame| Frame { missed: 0, ..frame }));
                if let Ok((frame, message)) = latest {
                    out.put(message, &frame)?;
                }
            }
            matched = now;
        }
        let wait = !out.polling();
        match copier.read_new(&mut reader, wait) {
            Ok((frame, message)) => out.put(message, &frame)?,
            Err(e) => idle(e)?,
        }
    }
    Ok(())
}

/// What an exporter does when a take gave no item.
fn idle(e: LaneError) -> Result<(), BridgeError> {
    match e {
        // Polling (`--spin-us`): let any ready thread run, then poll again.
        LaneError::Empty => std::thread::yield_now(),
        LaneError::Timeout => {}
        // The writer is gone: a new one may take over; keep reading.
        LaneError::WriterGone => std::thread::sleep(POLL),
        e => return Err(e.into()),
    }
    Ok(())
}

/// Waits until a subscriber matches or `stop`; false on stop.
fn wait_for_match(out: &Exporter<'_>, stop: &AtomicBool) -> bool {
    while !stop.load(Ordering::Relaxed) {
        if out.matching() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

fn export_queue(
    consumer: QueueConsumer,
    out: &mut Exporter<'_>,
    stop: &AtomicBool,
) -> Result<(), BridgeError> {
    let desc = describe(consumer.info(), false)?;
    if out.zero_copy {
        // SAFETY: `--zero-copy` is the operator's statement that every process that
        // can write the lane follows docs/LAYOUT.md, the promise `InPlace` asks for.
        let mut source = unsafe { InPlace::new(consumer, &desc) };
        matched_loop(&mut source, out, stop)
    } else {
        matched_loop(&mut CopiedQueue(consumer, Copier::new(&desc)), out, stop)
    }
}

fn export_topic(
    subscriber: TopicSubscriber,
    out: &mut Exporter<'_>,
    stop: &AtomicBool,
) -> Result<(), BridgeError> {
    let desc = describe(subscriber.info(), subscriber.is_lossless())?;
    // A lossy subscriber that waits for a match lags, and skips what it must: counted.
    matched_loop(&mut CopiedTopic(subscriber, Copier::new(&desc)), out, stop)
}

/// Takes items from `source` only while a subscriber matches the key (checked every
/// `MATCH_CHECK`), and puts each with the publisher's congestion control.
fn matched_loop(
    source: &mut impl Source,
    out: &mut Exporter<'_>,
    stop: &AtomicBool,
) -> Result<(), BridgeError> {
    let mut checked: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        if checked.is_none_or(|t| t.elapsed() >= MATCH_CHECK) {
            if !wait_for_match(out, stop) {
                break;
            }
            checked = Some(Instant::now());
        }
        let wait = !out.polling();
        match source.take(wait) {
            Ok((frame, message)) => {
                let put = out.put(message, &frame);
                source.sent(put.is_ok(), stop)?;
                put?;
            }
            Err(e) => idle(e)?,
        }
    }
    Ok(())
}
