//! tensorlane's transports, as measured by the harness.
//!
//! - [`Kind`]: the queue (copy: `push`/`pop`; loan: `push_with`/`pop_with` touching
//!   only the counter, the hand-over alone; loan-touched: writing and reading every
//!   byte in place) and the topic (one lossless or one lossy subscriber), each as a
//!   [`Tx`]/[`Rx`] pair polled with the non-blocking `try_*` calls.
//! - [`wake_sender`]/[`wake_receiver`]: the stream's blocking wake-up. The sender
//!   pauses before each write so that the reader is asleep on the futex in
//!   `read_new_timeout`; the payload carries the sender's `CLOCK_MONOTONIC` time, and
//!   the receiver subtracts it from its own after `read_new_timeout` returns (one way, no
//!   halving).
//! - [`stream_rw_ns`]: one writer and one reader of a stream in one process, a
//!   `write` then a `read` per operation.
//! - [`publish_ns`]: a topic publisher with `k` lossy subscribers that never read.
//! - [`queue_push_pop_ns`] (a diagnostic): `push` then `pop` of a queue whose
//!   producer and consumer are in one thread: the processor time of the two calls,
//!   without the cache-line transfers of two processes.

use crate::clock::monotonic_ns;
use crate::link::{fill_payload, get_counter, put_counter, read_payload, Rx, Tx};
use std::time::{Duration, Instant};
use tensorlane_shm::{
    LaneError, LaneName, QueueConsumer, QueueProducer, StreamReader, StreamWriter,
    SubscribeOptions, TensorSpec, TopicPublisher, TopicSubscriber,
};

/// Slots of every measured queue and topic (a ping-pong uses one at a time).
pub const CAPACITY: usize = 4;
/// Lag bound of the lossy subscribers.
pub const LOSSY_LAG: u64 = 2;
/// Slots of the measured streams.
pub const STREAM_SLOTS: usize = 3;

/// A tensorlane transport of the ping-pong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Queue, `push` and `pop` (one copy in, one copy out).
    QueueCopy,
    /// Queue, `push_with`/`pop_with` touching only the 8-byte counter.
    QueueLoan,
    /// Queue, `push_with`/`pop_with` writing and reading every byte in place.
    QueueLoanTouched,
    /// Topic with one lossless subscriber (`publish`/`recv`, copies).
    TopicLossless,
    /// Topic with one lossy subscriber (`publish`/`recv`, copies).
    TopicLossy,
}

impl Kind {
    /// Every kind, in table order.
    pub const ALL: [Kind; 5] = [
        Kind::QueueCopy,
        Kind::QueueLoan,
        Kind::QueueLoanTouched,
        Kind::TopicLossless,
        Kind::TopicLossy,
    ];

    /// Name used on the command line and in the report.
    pub fn name(self) -> &'static str {
        match self {
            Kind::QueueCopy => "spsc-copy",
            Kind::QueueLoan => "spsc-loan",
            Kind::QueueLoanTouched => "spsc-loan-touched",
            Kind::TopicLossless => "topic-lossless",
            Kind::TopicLossy => "topic-lossy",
        }
    }

    /// The kind called `name`.
    pub fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.name() == name)
    }
}

fn spec(size: usize) -> TensorSpec {
    TensorSpec::bytes(size as u64).expect("payload size within the lane limits")
}

struct QueueTx {
    producer: QueueProducer,
    buf: Vec<u8>,
    kind: Kind,
}

impl Tx for QueueTx {
    fn send(&mut self, counter: u64) {
        loop {
            let sent = match self.kind {
                Kind::QueueCopy => {
                    put_counter(&mut self.buf, counter);
                    self.producer.try_push(&self.buf).map(|_| ())
                }
                Kind::QueueLoan => {
                    // SAFETY: both ends of the benchmark's queue are this harness's own
                    // processes, which follow docs/LAYOUT.md.
                    let sent = unsafe { self.producer.try_push_with(|b| put_counter(b, counter)) };
                    sent.map(|_| ())
                }
                _ => {
                    // SAFETY: as above.
                    let sent = unsafe { self.producer.try_push_with(|b| fill_payload(b, counter)) };
                    sent.map(|_| ())
                }
            };
            match sent {
                Ok(()) => return,
                Err(LaneError::Full) => std::hint::spin_loop(),
                Err(e) => panic!("queue push: {e}"),
            }
        }
    }
}

struct QueueRx {
    consumer: QueueConsumer,
    buf: Vec<u8>,
    kind: Kind,
}

impl Rx for QueueRx {
    fn try_recv(&mut self) -> Option<u64> {
        let got = match self.kind {
            Kind::QueueCopy => self
                .consumer
                .try_pop(&mut self.buf)
                .map(|_| get_counter(&self.buf)),
            // SAFETY: both ends of the benchmark's queue are this harness's own
            // processes, which follow docs/LAYOUT.md.
            Kind::QueueLoan => unsafe { self.consumer.try_pop_with(|_, b| get_counter(b)) },
            // SAFETY: as above.
            _ => unsafe { self.consumer.try_pop_with(|_, b| read_payload(b)) },
        };
        match got {
            Ok(c) => Some(c),
            Err(LaneError::Empty) => None,
            Err(e) => panic!("queue pop: {e}"),
        }
    }
}

struct TopicTx {
    publisher: TopicPublisher,
    buf: Vec<u8>,
}

impl Tx for TopicTx {
    fn send(&mut self, counter: u64) {
        put_counter(&mut self.buf, counter);
        loop {
            match self.publisher.try_publish(&self.buf) {
                Ok(_) => return,
                Err(LaneError::Full) => std::hint::spin_loop(),
                Err(e) => panic!("topic publish: {e}"),
            }
        }
    }
}

struct TopicRx {
    subscriber: TopicSubscriber,
    buf: Vec<u8>,
}

impl Rx for TopicRx {
    fn try_recv(&mut self) -> Option<u64> {
        match self.subscriber.try_recv(&mut self.buf) {
            Ok(_) => Some(get_counter(&self.buf)),
            Err(LaneError::Empty) => None,
            Err(e) => panic!("topic recv: {e}"),
        }
    }
}

/// Creates lane `name` of `kind` carrying `size`-byte payloads, as its sender.
pub fn create_tx(kind: Kind, name: &str, size: usize) -> Result<Box<dyn Tx>, LaneError> {
    let spec = spec(size);
    Ok(match kind {
        Kind::QueueCopy | Kind::QueueLoan | Kind::QueueLoanTouched => Box::new(QueueTx {
            producer: QueueProducer::create(name, &spec, CAPACITY)?,
            buf: vec![0; size],
            kind,
        }),
        Kind::TopicLossless | Kind::TopicLossy => Box::new(TopicTx {
            publisher: TopicPublisher::create(name, &spec, CAPACITY, 2)?,
            buf: vec![0; size],
        }),
    })
}

/// Opens lane `name` of `kind` as its receiver, retrying for up to `timeout` while
/// it does not exist yet.
pub fn open_rx(
    kind: Kind,
    name: &str,
    size: usize,
    timeout: Duration,
) -> Result<Box<dyn Rx>, LaneError> {
    let spec = spec(size);
    retry(timeout, || -> Result<Box<dyn Rx>, LaneError> {
        Ok(match kind {
            Kind::QueueCopy | Kind::QueueLoan | Kind::QueueLoanTouched => Box::new(QueueRx {
                consumer: QueueConsumer::open_expect(name, &spec)?,
                buf: vec![0; size],
                kind,
            }),
            Kind::TopicLossless | Kind::TopicLossy => {
                let options = if kind == Kind::TopicLossless {
                    SubscribeOptions::lossless()
                } else {
                    SubscribeOptions::lossy(LOSSY_LAG)
                };
                Box::new(TopicRx {
                    subscriber: TopicSubscriber::open_expect(name, &spec, options)?,
                    buf: vec![0; size],
                })
            }
        })
    })
}

/// Runs `f` until it succeeds or `timeout` passes (then returns its last error).
pub fn retry<T, E>(timeout: Duration, mut f: impl FnMut() -> Result<T, E>) -> Result<T, E> {
    let start = Instant::now();
    loop {
        match f() {
            Ok(v) => return Ok(v),
            Err(e) if start.elapsed() > timeout => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

/// Removes lane `name`, ignoring a lane that does not exist.
pub fn unlink(name: &str) {
    if let Ok(name) = LaneName::new(name) {
        let _ = tensorlane_shm::segment::unlink(&name);
    }
}

/// Creates stream `name` and writes `count` payloads of `size` bytes, pausing `gap`
/// before each, each carrying the `CLOCK_MONOTONIC` time just before its write.
pub fn wake_sender(name: &str, size: usize, count: usize, gap: Duration) -> Result<(), LaneError> {
    let mut writer = StreamWriter::create(name, &spec(size), STREAM_SLOTS)?;
    let mut buf = vec![0u8; size];
    // Leave the reader time to open the stream before the first write.
    std::thread::sleep(Duration::from_millis(20));
    for _ in 0..count {
        std::thread::sleep(gap);
        put_counter(&mut buf, monotonic_ns());
        writer.write(&buf)?;
    }
    // Leave the reader time to read the last value before the writer role goes.
    std::thread::sleep(Duration::from_millis(50));
    Ok(())
}

/// Opens stream `name` (retrying up to 5 s) and receives with `read_new_timeout` until frame
/// `warmup + count` (frame ids count from 1); returns the one-way latencies in ns of
/// the frames after the first `warmup` (a frame that missed others, which only a
/// late start causes, is not counted).
pub fn wake_receiver(
    name: &str,
    size: usize,
    warmup: usize,
    count: usize,
) -> Result<Vec<f64>, LaneError> {
    let mut reader = retry(Duration::from_secs(5), || {
        StreamReader::open_expect(name, &spec(size))
    })?;
    let mut buf = vec![0u8; size];
    let mut out = Vec::with_capacity(count);
    let total = (warmup + count) as u64;
    loop {
        let frame = reader.read_new_timeout(&mut buf, Duration::from_secs(5))?;
        let now = monotonic_ns();
        if frame.frame_id > warmup as u64 && frame.missed == 0 {
            out.push(now.saturating_sub(get_counter(&buf)) as f64);
        }
        if frame.frame_id >= total {
            return Ok(out);
        }
    }
}

/// Median ns of one `write` plus one `read` of `size` bytes through stream `name`,
/// writer and reader in this process (see [`crate::floor::time_op`]).
pub fn stream_rw_ns(
    name: &str,
    size: usize,
    batches: usize,
    batch_time: Duration,
) -> Result<f64, LaneError> {
    let mut writer = StreamWriter::create(name, &spec(size), STREAM_SLOTS)?;
    let result = (|| {
        let mut reader = StreamReader::open(name)?;
        let src: Vec<u8> = (0..size).map(|i| i as u8).collect();
        let mut dst = vec![0u8; size];
        let mut failed = None;
        let ns = crate::floor::time_op(batches, batch_time, || {
            if let Err(e) = writer.write(std::hint::black_box(&src)) {
                failed = Some(e);
            }
            if let Err(e) = reader.read(&mut dst) {
                failed = Some(e);
            }
            std::hint::black_box(&mut dst);
        });
        failed.map_or(Ok(ns), Err)
    })();
    unlink(name);
    result
}

/// Median ns of one `publish` of `size` bytes to topic `name` with `lossy` lossy
/// subscribers in this process that never read.
pub fn publish_ns(
    name: &str,
    size: usize,
    lossy: usize,
    batches: usize,
    batch_time: Duration,
) -> Result<f64, LaneError> {
    let mut publisher = TopicPublisher::create(name, &spec(size), 64, lossy.max(1))?;
    let result = (|| {
        let subscribers = (0..lossy)
            .map(|_| TopicSubscriber::open(name, SubscribeOptions::lossy(LOSSY_LAG)))
            .collect::<Result<Vec<_>, _>>()?;
        let src = vec![7u8; size];
        let mut failed = None;
        let ns = crate::floor::time_op(batches, batch_time, || {
            if let Err(e) = publisher.try_publish(std::hint::black_box(&src)) {
                failed = Some(e);
            }
        });
        drop(subscribers);
        failed.map_or(Ok(ns), Err)
    })();
    unlink(name);
    result
}

/// Median ns of one `push` plus one `pop` of `size` bytes through queue `name`,
/// producer and consumer in this thread.
pub fn queue_push_pop_ns(
    name: &str,
    size: usize,
    batches: usize,
    batch_time: Duration,
) -> Result<f64, LaneError> {
    let mut producer = QueueProducer::create(name, &spec(size), CAPACITY)?;
    let result = (|| {
        let mut consumer = QueueConsumer::open(name)?;
        let src = vec![7u8; size];
        let mut dst = vec![0u8; size];
        let mut failed = None;
        let ns = crate::floor::time_op(batches, batch_time, || {
            if let Err(e) = producer.try_push(std::hint::black_box(&src)) {
                failed = Some(e);
            }
            if let Err(e) = consumer.try_pop(&mut dst) {
                failed = Some(e);
            }
            std::hint::black_box(&mut dst);
        });
        failed.map_or(Ok(ns), Err)
    })();
    unlink(name);
    result
}
