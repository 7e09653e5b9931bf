//! The real-time jitter measurement: a 1 kHz control loop of three threads over one
//! transport, run for a fixed time.
//!
//! - The *writer* sleeps until absolute `CLOCK_MONOTONIC` deadlines one period apart
//!   (`clock_nanosleep(TIMER_ABSTIME)`), and at each wake-up writes a 1 KiB sample
//!   carrying its send time and its deadline. Its wake-up latency is the time from
//!   the deadline to its wake-up (the timer's jitter); a wake-up one period or more
//!   late is a missed deadline, and the writer skips to the next deadline ahead.
//! - The *blocked reader* waits in the transport's blocking receive (tensorlane: the
//!   stream's `read_new_timeout`, a futex wait; iceoryx2: an event listener's
//!   `blocking_wait`, notified by the writer after each send). Its wake-up latency is
//!   the time from the writer's send to the reader having the sample.
//! - The *polling reader* sleeps until 200 us before the next deadline, then spins on
//!   the transport's non-blocking receive; its latency is measured the same way.
//!
//! Samples a reader did not get (overwritten before it read, or not there within
//! three periods) are counted as its misses. Threads are pinned (writer on CPU 0,
//! readers on CPU 1 when there are two) and run at `SCHED_FIFO` where permitted
//! (writer 80, blocked reader 79, poller 78), which [`ThreadSetup`] reports.
//!
//! Samples are kept in vectors allocated before the loop starts; the loop's threads
//! allocate nothing while it runs, on the tensorlane side (iceoryx2's calls are its
//! own).

use crate::clock::monotonic_ns;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Bytes of each sample: the send time, the deadline, then filler.
pub const SAMPLE_BYTES: usize = 1024;
/// How long before the next deadline the polling reader starts to spin.
pub const POLL_LEAD_NS: u64 = 200_000;
/// Periods at the start of each run that are sent but not counted (the caches, the
/// timer and the scheduler settle).
pub const WARM_UP_PERIODS: u64 = 100;

/// What a loop's thread got from the operating system.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThreadSetup {
    /// Pinned to its CPU.
    pub pinned: bool,
    /// Running at `SCHED_FIFO`.
    pub fifo: bool,
}

/// Pins the calling thread to `cpu` and asks for `SCHED_FIFO` at `priority`.
pub fn setup_thread(cpu: usize, priority: i32) -> ThreadSetup {
    // SAFETY: cpu_set_t is a plain bit set for which all-zero is a valid value.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU_SET only writes bit `cpu` of `set`.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: `set` is a valid cpu_set_t of the size passed; 0 is the calling thread.
    let pinned =
        unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } == 0;
    let param = libc::sched_param {
        sched_priority: priority,
    };
    // SAFETY: `param` is a valid sched_param; 0 is the calling thread.
    let fifo = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) } == 0;
    ThreadSetup { pinned, fifo }
}

/// Latencies and misses of one role.
#[derive(Debug, Clone, Default)]
pub struct Series {
    /// Latencies in nanoseconds.
    pub latencies_ns: Vec<u64>,
    /// Deadlines missed (writer) or samples not received (readers).
    pub missed: u64,
    /// Samples the writer sent, for the writer's series.
    pub sent: u64,
    /// How its thread was set up (of the last phase).
    pub setup: ThreadSetup,
}

impl Series {
    fn with_capacity(n: usize) -> Self {
        Series {
            latencies_ns: Vec::with_capacity(n),
            ..Series::default()
        }
    }

    /// Appends `other`'s samples and counts.
    pub fn merge(&mut self, other: Series) {
        self.latencies_ns.extend(other.latencies_ns);
        self.missed += other.missed;
        self.sent += other.sent;
        self.setup = other.setup;
    }
}

/// The three roles' series of one run.
#[derive(Debug, Clone, Default)]
pub struct LoopResult {
    /// The writer's wake-up latency (deadline to wake-up) and missed deadlines.
    pub writer: Series,
    /// The blocked reader's latency (send to receive) and samples it did not get.
    pub blocked: Series,
    /// The polling reader's latency and samples it did not get.
    pub polling: Series,
}

impl LoopResult {
    /// Appends `other`'s series.
    pub fn merge(&mut self, other: LoopResult) {
        self.writer.merge(other.writer);
        self.blocked.merge(other.blocked);
        self.polling.merge(other.polling);
    }
}

/// One transport's ends for the loop: each is created inside its own thread.
pub trait Transport: Send + Sync + 'static {
    /// The writer's end.
    type Writer: LoopWriter;
    /// A reader's end.
    type Reader: LoopReader;
    /// Creates the writer's end (before the readers).
    fn writer(&self) -> Self::Writer;
    /// Opens a reader's end (`blocking`: the one that waits).
    fn reader(&self, blocking: bool) -> Self::Reader;
}

/// Sends samples.
pub trait LoopWriter {
    /// Sends `sample` (its first 24 bytes are the send time, the deadline and the
    /// sequence number).
    fn send(&mut self, sample: &[u8]);
}

/// Receives samples into a caller's buffer.
pub trait LoopReader {
    /// Waits up to `timeout` for a sample newer than the last one returned and
    /// copies the newest into `out`; `false` if none came.
    fn wait(&mut self, out: &mut [u8], timeout: Duration) -> bool;
    /// Like [`wait`](Self::wait) without waiting.
    fn poll(&mut self, out: &mut [u8]) -> bool;
}

fn sleep_until(deadline_ns: u64) {
    let ts = libc::timespec {
        tv_sec: (deadline_ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (deadline_ns % 1_000_000_000) as libc::c_long,
    };
    // A signal interrupts the sleep (EINTR): sleep again until the deadline.
    loop {
        // SAFETY: `ts` is a valid timespec; the remaining-time pointer may be null
        // with TIMER_ABSTIME.
        let rc = unsafe {
            libc::clock_nanosleep(
                libc::CLOCK_MONOTONIC,
                libc::TIMER_ABSTIME,
                &ts,
                std::ptr::null_mut(),
            )
        };
        if rc != libc::EINTR {
            return;
        }
    }
}

/// The send time, deadline and sequence number (from 1) a sample carries.
fn stamp(sample: &[u8]) -> (u64, u64, u64) {
    let word = |i: usize| u64::from_le_bytes(sample[i * 8..i * 8 + 8].try_into().expect("8"));
    (word(0), word(1), word(2))
}

/// Runs the loop over `transport` for `duration` at `period`, on `cpus` CPUs.
pub fn run<T: Transport>(
    transport: Arc<T>,
    period: Duration,
    duration: Duration,
    cpus: usize,
) -> LoopResult {
    let period_ns = period.as_nanos() as u64;
    let samples = (duration.as_nanos() as u64 / period_ns.max(1)) as usize + 16;
    let reader_cpu = if cpus > 1 { 1 } else { 0 };
    let stop = Arc::new(AtomicBool::new(false));
    // Readers count themselves here once their ends are open.
    let ready = Arc::new(AtomicUsize::new(0));
    // Each end is made in the thread that uses it (iceoryx2's ports are not Send).
    let mut writer = transport.writer();

    let blocked_thread = {
        let (stop, transport, ready) = (stop.clone(), transport.clone(), ready.clone());
        std::thread::spawn(move || {
            let mut series = Series::with_capacity(samples);
            series.setup = setup_thread(reader_cpu, 79);
            let mut reader = transport.reader(true);
            ready.fetch_add(1, Ordering::Release);
            let mut buf = vec![0u8; SAMPLE_BYTES];
            let mut last_seq = 0;
            while !stop.load(Ordering::Relaxed) {
                if reader.wait(&mut buf, Duration::from_millis(20)) {
                    let now = monotonic_ns();
                    let (sent, _, seq) = stamp(&buf);
                    if seq > WARM_UP_PERIODS {
                        series.latencies_ns.push(now.saturating_sub(sent));
                        series.missed += seq.saturating_sub(last_seq.max(WARM_UP_PERIODS) + 1);
                    }
                    last_seq = seq;
                }
            }
            series
        })
    };
    let polling_thread = {
        let (stop, transport, ready) = (stop.clone(), transport.clone(), ready.clone());
        std::thread::spawn(move || {
            let mut series = Series::with_capacity(samples);
            series.setup = setup_thread(reader_cpu, 78);
            let mut reader = transport.reader(false);
            ready.fetch_add(1, Ordering::Release);
            let mut buf = vec![0u8; SAMPLE_BYTES];
            let mut next_deadline = 0u64;
            let mut last_seq = 0;
            while !stop.load(Ordering::Relaxed) {
                if next_deadline > POLL_LEAD_NS {
                    sleep_until(next_deadline - POLL_LEAD_NS);
                }
                // Spin until the sample of `next_deadline` (or any newer) is there, for
                // at most three periods.
                let give_up = monotonic_ns() + 3 * period_ns;
                loop {
                    if reader.poll(&mut buf) {
                        let now = monotonic_ns();
                        let (sent, deadline, seq) = stamp(&buf);
                        if seq > WARM_UP_PERIODS {
                            series.latencies_ns.push(now.saturating_sub(sent));
                            series.missed += seq.saturating_sub(last_seq.max(WARM_UP_PERIODS) + 1);
                        }
                        last_seq = seq;
                        next_deadline = deadline + period_ns;
                        break;
                    }
                    // Nothing for three periods: look again at the next deadline (the
                    // samples it did not get are counted from the sequence numbers).
                    if monotonic_ns() > give_up || stop.load(Ordering::Relaxed) {
                        if next_deadline != 0 {
                            next_deadline += period_ns;
                        }
                        break;
                    }
                    std::hint::spin_loop();
                }
            }
            series
        })
    };

    // The writer runs on this thread.
    let mut series = Series::with_capacity(samples);
    series.setup = setup_thread(0, 80);
    let mut sample = vec![0x5au8; SAMPLE_BYTES];
    // Wait for both readers' ends, then let them block.
    while ready.load(Ordering::Acquire) < 2 {
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(10));
    let start = monotonic_ns() + period_ns;
    let end = start + (WARM_UP_PERIODS * period_ns) + duration.as_nanos() as u64;
    let counted_from = start + WARM_UP_PERIODS * period_ns;
    let mut deadline = start;
    while deadline < end {
        sleep_until(deadline);
        let woke = monotonic_ns();
        let late = woke.saturating_sub(deadline);
        let skipped = late / period_ns;
        if deadline >= counted_from {
            series.latencies_ns.push(late);
            series.missed += skipped;
        }
        sample[8..16].copy_from_slice(&deadline.to_le_bytes());
        sample[16..24].copy_from_slice(&(series.sent + 1).to_le_bytes());
        sample[..8].copy_from_slice(&monotonic_ns().to_le_bytes());
        writer.send(&sample);
        series.sent += 1;
        deadline += (skipped + 1) * period_ns;
    }
    stop.store(true, Ordering::Relaxed);
    // Restore normal scheduling for the joins and the analysis.
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param; 0 is the calling thread.
    unsafe { libc::sched_setscheduler(0, libc::SCHED_OTHER, &param) };
    let blocked = blocked_thread.join().expect("blocked reader");
    let polling = polling_thread.join().expect("polling reader");
    drop(writer);
    LoopResult {
        writer: series,
        blocked,
        polling,
    }
}

/// tensorlane: a stream of 1 KiB samples (3 slots), created and opened pre-faulted
/// and locked.
pub struct Tensorlane {
    name: String,
}

impl Tensorlane {
    /// A transport over stream `name` (created by [`Transport::writer`]).
    pub fn new(name: &str) -> Self {
        Tensorlane {
            name: name.to_string(),
        }
    }
}

/// tensorlane's writer end; unlinks the lane when dropped.
pub struct TensorlaneWriter {
    writer: tensorlane_shm::StreamWriter,
    name: String,
}

impl Drop for TensorlaneWriter {
    fn drop(&mut self) {
        if let Ok(name) = tensorlane_shm::LaneName::new(&self.name) {
            let _ = tensorlane_shm::segment::unlink(&name);
        }
    }
}

impl LoopWriter for TensorlaneWriter {
    fn send(&mut self, sample: &[u8]) {
        self.writer.write(sample).expect("stream write");
    }
}

impl LoopReader for tensorlane_shm::StreamReader {
    fn wait(&mut self, out: &mut [u8], timeout: Duration) -> bool {
        self.read_new_timeout(out, timeout).is_ok()
    }
    fn poll(&mut self, out: &mut [u8]) -> bool {
        self.try_read_new(out).is_ok()
    }
}

impl Transport for Tensorlane {
    type Writer = TensorlaneWriter;
    type Reader = tensorlane_shm::StreamReader;
    fn writer(&self) -> TensorlaneWriter {
        use tensorlane_shm::{CreateOptions, StreamWriter, TensorSpec};
        let spec = TensorSpec::bytes(SAMPLE_BYTES as u64).expect("spec");
        let options = CreateOptions::new().prefault(true).lock_memory(true);
        let writer = StreamWriter::create_with(&self.name, &spec, 3, options)
            .or_else(|_| {
                // A lock refused by the limit: measure without it, and say so.
                eprintln!("jitter: the stream's mapping could not be locked; pre-faulted only");
                StreamWriter::create_with(&self.name, &spec, 3, CreateOptions::new().prefault(true))
            })
            .expect("create the stream");
        TensorlaneWriter {
            writer,
            name: self.name.clone(),
        }
    }
    fn reader(&self, _blocking: bool) -> tensorlane_shm::StreamReader {
        use tensorlane_shm::{OpenOptions, StreamReader};
        StreamReader::open_with(
            &self.name,
            OpenOptions::new().prefault(true).lock_memory(true),
        )
        .or_else(|_| StreamReader::open_with(&self.name, OpenOptions::new().prefault(true)))
        .expect("open the stream")
    }
}
