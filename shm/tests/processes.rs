//! Cross-process property and crash tests of the shared-memory lanes.
//!
//! Every test runs real OS processes against real segments in `/dev/shm`, records what
//! each process observed, and checks the records with the history checkers of
//! `tensorlane-model`:
//!
//! - a stream written by one process as fast as it can and read by two others
//!   (`read`, `try_read_new`, `read_new_timeout`): [`check_register_reader`] per reader;
//! - a queue between two processes (copying and zero-copy push and pop):
//!   [`check_lossless_complete`]; ping-pong over two queues and over two streams,
//!   which must never deadlock, with every round trip within 1 s: both sides sleep
//!   without the futex's 100 ms slices, so a wake-up that a notify fails to deliver
//!   stalls its round and fails the test instead of costing 100 ms unnoticed;
//! - a topic with two lossless subscribers, a lossy one, a late joiner asking for
//!   history and a leaver: [`check_lossless_complete`], [`check_lossy`],
//!   [`check_lossless`]; the publisher is not held back by the leaver.
//!
//! The crash tests send SIGKILL at random points and check DESIGN §4's guarantees:
//!
//! - a stream writer killed while writing 1 MiB tensors: a reader gets the last
//!   complete value, untorn, and `read_new_timeout` reports `WriterGone` promptly; a new writer
//!   takes over and its write is the next sequence. One run in four uses a single
//!   slot, where a write cut short leaves no complete value: the reader must then get
//!   `WriterGone`, never torn data and never an endless spin;
//! - a lossless topic subscriber killed while (or before) the publisher is blocked on
//!   it: the publisher resumes within 2 s, counts one eviction, and the surviving
//!   lossless subscriber's history stays complete;
//! - a queue consumer killed at a random point and replaced by a new process: what the
//!   dead one released is never delivered again, what it held unreleased is, and the
//!   two histories together cover every item in order.
//! - end of stream: a queue producer or topic publisher process killed after its last
//!   item, before its reader drained the ring or while the reader waits on it: the
//!   reader gets every item in order, then `WriterGone` within 2 s of the kill (never
//!   a timeout).
//!
//! # Children
//! The test binary re-executes itself (`current_exe() --exact child_entry --nocapture
//! --test-threads=1`) with `TENSORLANE_CHILD_ROLE` naming the role,
//! `TENSORLANE_LANE`/`TENSORLANE_LANE2` the lanes and `TENSORLANE_CHILD_ARGS` its
//! numeric parameters (`key=value,...`). [`child_entry`] does nothing without a role;
//! with one it runs the role, writes its observations to stdout as lines starting with
//! `#tl# ` (`R` ready, `H` history, `P` progress, `S` summary, ...), and exits with
//! `std::process::exit`, so libtest's own output does not matter. A child reads "go"
//! lines from its stdin where the parent has to order events, dies with the thread that
//! spawned it (`PR_SET_PDEATHSIG`), and bounds every wait. The parent kills and reaps
//! any child still running when a test fails, and unlinks every lane it named.
//!
//! # Payloads
//! Every tensor is self-checking: word `j` of the item with sequence or position `k`
//! is `SALT ^ (k << 24) ^ j`. Readers check every word and record `k`, or `u64::MAX`
//! when any word disagrees (a torn, shifted or stale copy), so the checkers see a torn
//! read as a wrong value.
//!
//! # Long campaigns
//! The default run kills 20 stream writers, 5 topic subscribers and 5 queue consumers.
//! `TENSORLANE_CRASH_RUNS=N` sets the stream kills to N and the other two to N / 4 (at
//! least 5); `TENSORLANE_SEED=S` replays the random points of a run (each crash test
//! prints its seed):
//!
//! ```text
//! TENSORLANE_CRASH_RUNS=1000 cargo test --release -p tensorlane-shm --test processes -- --nocapture
//! ```
#![cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tensorlane_core::{SeqlockGeometry, SeqlockHeader, STAMP_WORD};
use tensorlane_model::{
    check_lossless, check_lossless_complete, check_lossy, check_register_reader, Delivery,
    RegisterObservation,
};
use tensorlane_shm::header::{Futex, FRAME_BYTES, HEADER_BYTES};
use tensorlane_shm::{
    segment, DType, LaneError, LaneName, QueueConsumer, QueueProducer, StreamReader, StreamWriter,
    SubscribeOptions, TensorSpec, TopicPublisher, TopicSubscriber,
};

const ROLE_VAR: &str = "TENSORLANE_CHILD_ROLE";
const LANE_VAR: &str = "TENSORLANE_LANE";
const LANE2_VAR: &str = "TENSORLANE_LANE2";
const ARGS_VAR: &str = "TENSORLANE_CHILD_ARGS";
const RUNS_VAR: &str = "TENSORLANE_CRASH_RUNS";
const SEED_VAR: &str = "TENSORLANE_SEED";

/// Prefix of the lines a child reports; anything else on its stdout is libtest's.
const MARK: &str = "#tl# ";
/// Value recorded for a tensor whose words disagree.
const TORN: u64 = u64::MAX;
/// Longest a child process may live.
const CHILD_LIMIT: Duration = Duration::from_secs(30);
/// Timeout of one blocking lane operation in a child or the parent.
const STEP: Duration = Duration::from_secs(10);

/// `push_with`, for this suite: every process writing its lanes is this test binary,
/// which follows docs/LAYOUT.md.
fn push_in_place<T>(
    producer: &mut QueueProducer,
    timeout: Duration,
    fill: impl FnOnce(&mut [u8]) -> T,
) -> Result<(u64, T), LaneError> {
    // SAFETY: every process that writes the suite's lanes runs this binary's code,
    // which follows docs/LAYOUT.md.
    unsafe { producer.push_with_timeout(timeout, fill) }
}

/// A non-blocking read's "nothing now" (`Empty`) as `Ok(None)`.
fn nothing_is_none(
    result: Result<tensorlane_shm::Frame, LaneError>,
) -> Result<Option<tensorlane_shm::Frame>, LaneError> {
    match result {
        Ok(frame) => Ok(Some(frame)),
        Err(LaneError::Empty) => Ok(None),
        Err(e) => Err(e),
    }
}

/// `pop_with`, for this suite (see `push_in_place`).
fn pop_in_place<T>(
    consumer: &mut QueueConsumer,
    timeout: Duration,
    read: impl FnOnce(&tensorlane_shm::Frame, &[u8]) -> T,
) -> Result<T, LaneError> {
    // SAFETY: as in `push_in_place`.
    unsafe { consumer.pop_with_timeout(timeout, read) }
}
/// How long a child may take to start and report ready.
const STARTUP: Duration = Duration::from_secs(10);
/// How long a child may take to finish its part of a test.
const RUN: Duration = Duration::from_secs(25);
/// Bound on the resumption of a publisher, or on `read_new_timeout` reporting a dead writer.
const PROMPT: Duration = Duration::from_secs(2);
/// Longest round trip of a ping-pong, generous for a loaded 2-core machine: round
/// trips take tens of microseconds. Both sides sleep without slices (see
/// [`no_sleep_slices`]), so a lost wake-up stalls its round until `STEP` instead of
/// being rescued after 100 ms, and fails the test either way.
const SLOW_ROUND_TRIP: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------------------------
// Self-checking payloads.

const SALT: u64 = 0x7e1a_5c00_0000_0000;

/// Word `j` of the tensor of sequence or position `k`.
fn word(k: u64, j: usize) -> u64 {
    SALT ^ (k << 24) ^ j as u64
}

fn fill_words(tensor: &mut [u64], k: u64) {
    for (j, w) in tensor.iter_mut().enumerate() {
        *w = word(k, j);
    }
}

fn fill_bytes(tensor: &mut [u8], k: u64) {
    for (j, w) in tensor.chunks_exact_mut(8).enumerate() {
        w.copy_from_slice(&word(k, j).to_le_bytes());
    }
}

/// The `k` whose tensor `words` is, or [`TORN`] if any word disagrees.
fn decode(words: impl IntoIterator<Item = u64>) -> u64 {
    let mut words = words.into_iter();
    let Some(first) = words.next() else {
        return TORN;
    };
    let x = first ^ SALT;
    if x & 0xff_ffff != 0 {
        return TORN;
    }
    let k = x >> 24;
    if words.enumerate().all(|(j, w)| w == word(k, j + 1)) {
        k
    } else {
        TORN
    }
}

fn decode_words(tensor: &[u64]) -> u64 {
    decode(tensor.iter().copied())
}

fn decode_bytes(tensor: &[u8]) -> u64 {
    if tensor.len() % 8 != 0 {
        return TORN;
    }
    decode(
        tensor
            .chunks_exact(8)
            .map(|w| u64::from_le_bytes(w.try_into().expect("8 bytes"))),
    )
}

fn spec(words: u64) -> TensorSpec {
    TensorSpec::new(DType::U64, &[words]).expect("valid tensor")
}

// ---------------------------------------------------------------------------------
// Randomness, run sizes, lane names.

/// splitmix64: small, seedable, good enough to pick delays.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn env_u64(var: &str) -> Option<u64> {
    let value = std::env::var(var).ok()?;
    Some(
        value
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{var}={value:?} is not a number")),
    )
}

/// Seed of a crash test: `TENSORLANE_SEED`, or the clock.
fn seed() -> u64 {
    env_u64(SEED_VAR).unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
    })
}

/// Stream writer kills per run (`TENSORLANE_CRASH_RUNS`, default 20).
fn crash_runs() -> usize {
    env_u64(RUNS_VAR).map_or(20, |n| n.max(1) as usize)
}

/// Subscriber and consumer kills per run: a quarter of the writer kills, at least 5.
fn minor_crash_runs() -> usize {
    (crash_runs() / 4).max(5)
}

static NEXT_LANE: AtomicU64 = AtomicU64::new(0);

/// Unique lane names, unlinked when dropped (also when a test fails).
struct Lanes(Vec<String>);

impl Lanes {
    fn new() -> Self {
        Lanes(Vec::new())
    }

    fn name(&mut self, tag: &str) -> String {
        let n = NEXT_LANE.fetch_add(1, Ordering::Relaxed);
        let name = format!("proc-{tag}-{}-{n}", std::process::id());
        self.0.push(name.clone());
        name
    }

    /// Unlinks `name` now (long campaigns would otherwise fill `/dev/shm`).
    fn release(&mut self, name: &str) {
        unlink(name);
        self.0.retain(|n| n != name);
    }
}

impl Drop for Lanes {
    fn drop(&mut self) {
        for name in &self.0 {
            unlink(name);
        }
    }
}

fn unlink(name: &str) {
    if let Ok(name) = LaneName::new(name) {
        // NotFound: the lane was never created (or already unlinked).
        let _ = segment::unlink(&name);
    }
}

// ---------------------------------------------------------------------------------
// Parent side: child processes and their reports.

/// A running child process and the lines it reported.
struct Proc {
    role: String,
    child: Child,
    stdin: Option<ChildStdin>,
    rx: Receiver<String>,
    stdout_thread: Option<JoinHandle<()>>,
    stderr: Arc<Mutex<String>>,
    stderr_thread: Option<JoinHandle<()>>,
    lines: Vec<String>,
    cursors: HashMap<String, usize>,
    exited: bool,
}

impl Proc {
    fn spawn(role: &str, lane: &str, lane2: Option<&str>, args: &[(&str, u64)]) -> Proc {
        let exe = std::env::current_exe().expect("path of the test binary");
        let args_text = args
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut command = Command::new(exe);
        command
            .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
            .env(ROLE_VAR, role)
            .env(LANE_VAR, lane)
            .env(LANE2_VAR, lane2.unwrap_or(""))
            .env(ARGS_VAR, args_text)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("spawning child {role}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        let stdout_thread = std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            while matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
                if let Some(at) = line.find(MARK) {
                    if tx
                        .send(line[at + MARK.len()..].trim_end().to_string())
                        .is_err()
                    {
                        break;
                    }
                }
                line.clear();
            }
        });
        let mut stderr_pipe = child.stderr.take().expect("piped stderr");
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        let stderr_thread = std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = stderr_pipe.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                let mut text = sink.lock().unwrap_or_else(|e| e.into_inner());
                if text.len() < 1 << 16 {
                    text.push_str(&String::from_utf8_lossy(&chunk[..n]));
                }
            }
        });
        Proc {
            role: role.to_string(),
            stdin: child.stdin.take(),
            child,
            rx,
            stdout_thread: Some(stdout_thread),
            stderr,
            stderr_thread: Some(stderr_thread),
            lines: Vec::new(),
            cursors: HashMap::new(),
            exited: false,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes one line to the child's stdin.
    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("child stdin");
        if writeln!(stdin, "{line}")
            .and_then(|_| stdin.flush())
            .is_err()
        {
            self.fail(&format!("could not send {line:?}"));
        }
    }

    fn drain(&mut self) {
        while let Ok(line) = self.rx.try_recv() {
            self.lines.push(line);
        }
    }

    /// Whether the child has reported a line with `tag` so far.
    fn has(&mut self, tag: &str) -> bool {
        self.drain();
        self.lines.iter().any(|l| tag_of(l) == tag)
    }

    /// Waits for the next line with `tag` (after those already returned) and returns
    /// its numeric fields.
    fn expect(&mut self, tag: &str, timeout: Duration) -> Vec<u64> {
        let deadline = Instant::now() + timeout;
        loop {
            let from = self.cursors.get(tag).copied().unwrap_or(0);
            if let Some(i) = (from..self.lines.len()).find(|&i| tag_of(&self.lines[i]) == tag) {
                self.cursors.insert(tag.to_string(), i + 1);
                return fields(&self.lines[i]);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => self.lines.push(line),
                Err(RecvTimeoutError::Timeout) => {
                    self.fail(&format!("no {tag:?} line within {timeout:?}"))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.fail(&format!("exited before reporting {tag:?}"))
                }
            }
        }
    }

    /// SIGKILL, then reap. Returns the instants just before the signal and after the
    /// reap (when the kernel has released everything the process held).
    fn kill(&mut self) -> (Instant, Instant) {
        let signalled = Instant::now();
        // Child::kill is SIGKILL on Unix.
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.exited = true;
        (signalled, Instant::now())
    }

    /// Waits for the child to exit successfully; returns every line it reported.
    fn finish(&mut self, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.exited = true;
                    if !status.success() {
                        self.fail(&format!("exited with {status}"));
                    }
                    break;
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                Ok(None) => self.fail(&format!("still running after {timeout:?}")),
                Err(e) => self.fail(&format!("waiting for it: {e}")),
            }
        }
        self.collect()
    }

    /// Every line reported, once the child is gone.
    fn collect(&mut self) -> Vec<String> {
        if let Some(thread) = self.stdout_thread.take() {
            let _ = thread.join();
        }
        self.drain();
        self.lines.clone()
    }

    fn fail(&mut self, what: &str) -> ! {
        if !self.exited {
            self.kill();
        }
        if let Some(thread) = self.stderr_thread.take() {
            let _ = thread.join();
        }
        let stderr = self
            .stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let tail: Vec<&String> = self.lines.iter().rev().take(5).rev().collect();
        panic!(
            "child {} (pid {}): {what}\nlast lines: {tail:?}\nstderr:\n{stderr}",
            self.role,
            self.pid()
        );
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if !self.exited {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn tag_of(line: &str) -> &str {
    line.split_whitespace().next().unwrap_or("")
}

fn fields(line: &str) -> Vec<u64> {
    line.split_whitespace()
        .skip(1)
        .map(|f| {
            f.parse()
                .unwrap_or_else(|_| panic!("bad field {f:?} in {line:?}"))
        })
        .collect()
}

/// Numeric fields of every line with `tag`, in order.
fn records(lines: &[String], tag: &str) -> Vec<Vec<u64>> {
    lines
        .iter()
        .filter(|l| tag_of(l) == tag)
        .map(|l| fields(l))
        .collect()
}

/// `H position frame_id value missed` lines as deliveries of `(frame_id, value)`.
fn deliveries(lines: &[String]) -> Vec<Delivery<(u64, u64)>> {
    records(lines, "H")
        .into_iter()
        .map(|f| Delivery {
            position: f[0],
            value: (f[1], f[2]),
            missed: f[3],
        })
        .collect()
}

/// Item at position `p` of a fresh queue or topic: frame id `p + 1`, payload `p`.
fn ring_value_ok(position: u64, &(frame_id, value): &(u64, u64)) -> bool {
    frame_id == position + 1 && value == position
}

fn micros(d: Duration) -> u128 {
    d.as_micros()
}

// ---------------------------------------------------------------------------------
// Child side.

/// A child's lanes and numeric parameters, from its environment.
struct ChildArgs {
    lane: String,
    lane2: String,
    values: HashMap<String, u64>,
}

impl ChildArgs {
    fn from_env() -> Self {
        let values = std::env::var(ARGS_VAR)
            .unwrap_or_default()
            .split(',')
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                let (k, v) = kv.split_once('=').expect("key=value");
                (k.to_string(), v.parse().expect("numeric parameter"))
            })
            .collect();
        ChildArgs {
            lane: std::env::var(LANE_VAR).expect("lane name"),
            lane2: std::env::var(LANE2_VAR).unwrap_or_default(),
            values,
        }
    }

    fn get(&self, key: &str) -> u64 {
        *self
            .values
            .get(key)
            .unwrap_or_else(|| panic!("missing child parameter {key}"))
    }

    fn or(&self, key: &str, default: u64) -> u64 {
        self.values.get(key).copied().unwrap_or(default)
    }
}

/// Reports one line at once (one `write` to the pipe: it survives a later SIGKILL).
fn emit(line: &str) {
    println!("{MARK}{line}");
}

/// Lines kept in memory and reported together when the role ends.
#[derive(Default)]
struct Report(String);

impl Report {
    fn line(&mut self, line: std::fmt::Arguments<'_>) {
        let _ = writeln!(self.0, "{MARK}{line}");
    }

    fn flush(&mut self) {
        let mut out = std::io::stdout().lock();
        out.write_all(self.0.as_bytes()).expect("stdout");
        out.flush().expect("stdout");
        self.0.clear();
    }
}

/// Blocks until the parent sends a line (or closes stdin).
fn wait_for_parent() -> String {
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    line.trim().to_string()
}

/// Makes this thread's futex sleeps last until their deadline (no 100 ms slices), so
/// that a wake-up the notifier fails to deliver shows as a stall; restores the
/// slice when dropped.
struct NoSleepSlices(Duration);

fn no_sleep_slices() -> NoSleepSlices {
    NoSleepSlices(Futex::set_thread_sleep_slice(Duration::from_secs(3600)))
}

impl Drop for NoSleepSlices {
    fn drop(&mut self) {
        Futex::set_thread_sleep_slice(self.0);
    }
}

fn sleep_micros(us: u64) {
    if us > 0 {
        std::thread::sleep(Duration::from_micros(us));
    }
}

/// The child process's entry point: without `TENSORLANE_CHILD_ROLE`, an empty test.
#[test]
fn child_entry() {
    let Ok(role) = std::env::var(ROLE_VAR) else {
        return;
    };
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes plain integers and only sets the signal
    // this process receives when the thread that spawned it exits.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
    let args = ChildArgs::from_env();
    // Ends libtest's "test child_entry ... " line.
    println!();
    match role.as_str() {
        "stream-writer" => stream_writer(&args),
        "stream-writer-forever" => stream_writer_forever(&args),
        "stream-reader" => stream_reader(&args),
        "stream-pong" => stream_pong(&args),
        "queue-producer" => queue_producer(&args),
        "queue-consumer" => queue_consumer(&args),
        "queue-pong" => queue_pong(&args),
        "topic-publisher" => topic_publisher(&args),
        "topic-subscriber" => topic_subscriber(&args),
        other => panic!("unknown child role {other:?}"),
    }
    let _ = std::io::stdout().flush();
    std::process::exit(0);
}

/// Creates a stream, waits for "go", writes `count` values as fast as it can.
fn stream_writer(args: &ChildArgs) {
    let words = args.get("words");
    let count = args.get("count");
    let mut writer =
        StreamWriter::create(&args.lane, &spec(words), args.get("slots") as usize).unwrap();
    emit("R");
    wait_for_parent();
    let mut tensor = vec![0u64; words as usize];
    for k in 1..=count {
        fill_words(&mut tensor, k);
        let seq = if k % 2 == 0 {
            writer.write_elements(&tensor)
        } else {
            writer.write(bytemuck::cast_slice(&tensor))
        }
        .unwrap();
        assert_eq!(seq, k, "sequence of write {k}");
    }
    emit(&format!("S {count}"));
}

/// Creates a stream, writes one value, reports ready, then writes until killed.
fn stream_writer_forever(args: &ChildArgs) {
    let words = args.get("words");
    let mut writer =
        StreamWriter::create(&args.lane, &spec(words), args.get("slots") as usize).unwrap();
    let mut tensor = vec![0u64; words as usize];
    fill_words(&mut tensor, 1);
    writer.write_elements(&tensor).unwrap();
    emit("R");
    let started = Instant::now();
    for k in 2.. {
        fill_words(&mut tensor, k);
        writer.write_elements(&tensor).unwrap();
        if k % 64 == 0 && started.elapsed() > CHILD_LIMIT {
            break;
        }
    }
}

/// Reads a stream with `read`, `try_read_new` and `read_new_timeout` in turn until it has seen
/// sequence `count`; reports `H seq frame_id value missed` for every value returned.
fn stream_reader(args: &ChildArgs) {
    let words = args.get("words");
    let count = args.get("count");
    let mut reader = StreamReader::open_expect(&args.lane, &spec(words)).unwrap();
    emit("R");
    let mut tensor = vec![0u64; words as usize];
    let mut report = Report::default();
    let (mut nones, mut stalls, mut gone) = (0u64, 0u64, 0u64);
    let mut last = 0;
    let started = Instant::now();
    let mut op = 0u64;
    while last < count {
        assert!(started.elapsed() < CHILD_LIMIT, "reader ran out of time");
        op += 1;
        let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut tensor);
        let result = match op % 3 {
            0 => nothing_is_none(reader.read(bytes)),
            1 => nothing_is_none(reader.try_read_new(bytes)),
            _ => match reader.read_new_timeout(bytes, STEP) {
                Ok(frame) => Ok(Some(frame)),
                // The writer finished: the last value stays readable.
                Err(LaneError::WriterGone) => {
                    gone += 1;
                    nothing_is_none(reader.try_read_new(bytes))
                }
                Err(e) => Err(e),
            },
        };
        match result {
            Ok(Some(frame)) => {
                let value = decode_words(&tensor);
                report.line(format_args!(
                    "H {} {} {value} {}",
                    frame.seq, frame.frame_id, frame.missed
                ));
                last = frame.seq;
            }
            Ok(None) => nones += 1,
            // Lapped on every retry: allowed, counted.
            Err(LaneError::Stalled) => stalls += 1,
            Err(e) => panic!("stream read failed: {e}"),
        }
    }
    report.line(format_args!("S {nones} {stalls} {gone}"));
    report.flush();
}

/// Answers each value of stream `lane` with the same value on stream `lane2`.
fn stream_pong(args: &ChildArgs) {
    let rounds = args.get("rounds");
    let words = args.get("words");
    let mut writer = StreamWriter::create(&args.lane2, &spec(words), 2).unwrap();
    let mut reader = StreamReader::open_expect(&args.lane, &spec(words)).unwrap();
    let _slices = no_sleep_slices();
    emit("R");
    let mut tensor = vec![0u64; words as usize];
    for r in 1..=rounds {
        let frame = reader
            .read_new_timeout(bytemuck::cast_slice_mut(&mut tensor), STEP)
            .unwrap_or_else(|e| panic!("round {r}: read_new_timeout: {e}"));
        assert_eq!((frame.seq, frame.missed), (r, 0), "round {r}");
        assert_eq!(decode_words(&tensor), r, "round {r}");
        writer.write_elements(&tensor).unwrap();
    }
    emit(&format!("S {rounds}"));
}

/// Creates a queue and pushes `count` items, copying and zero-copy in turn.
fn queue_producer(args: &ChildArgs) {
    let words = args.get("words");
    let count = args.get("count");
    let mut producer =
        QueueProducer::create(&args.lane, &spec(words), args.get("capacity") as usize).unwrap();
    emit("R");
    let mut tensor = vec![0u64; words as usize];
    for k in 0..count {
        let position = if k % 3 == 1 {
            push_in_place(&mut producer, STEP, |bytes| fill_bytes(bytes, k))
                .map(|(position, ())| position)
        } else {
            fill_words(&mut tensor, k);
            producer.push_timeout(bytemuck::cast_slice(&tensor), STEP)
        }
        .unwrap_or_else(|e| panic!("push {k}: {e}"));
        assert_eq!(position, k + 1, "sequence of push {k}");
    }
    emit(&format!("S {count}"));
    if args.or("hold", 0) == 1 {
        // Stays alive (its role held) until killed.
        wait_for_parent();
    }
}

/// Consumes a queue until position `count - 1`.
///
/// With `crash=0` it pops (copying) and pops in place in turn and reports `H position
/// frame_id value 0` lines when done. With `crash=1` (a consumer to be killed) it only
/// pops in place and reports at once: `B position frame_id value 0` when it holds an
/// item, `E position` at the end of its use of the loan (the item is not yet released),
/// `A position` after the pop returned (the item is released).
fn queue_consumer(args: &ChildArgs) {
    let words = args.get("words");
    let count = args.get("count");
    let crash = args.or("crash", 0) == 1;
    let jitter = args.or("jitter_us", 0);
    let mut rng = Rng::new(args.or("seed", 1));
    let mut consumer = QueueConsumer::open_expect(&args.lane, &spec(words)).unwrap();
    emit("R");
    let mut tensor = vec![0u64; words as usize];
    let mut report = Report::default();
    let mut k = 0u64;
    loop {
        k += 1;
        let position = if crash {
            // Pause inside the loan (item held) or after the release, at random.
            let pause = rng.below(jitter.max(1));
            let (hold, after) = if rng.below(2) == 0 {
                (pause, 0)
            } else {
                (0, pause)
            };
            let position = pop_in_place(&mut consumer, STEP, |frame, bytes| {
                let value = decode_bytes(bytes);
                emit(&format!("B {} {} {value} 0", frame.seq - 1, frame.frame_id));
                sleep_micros(hold);
                emit(&format!("E {}", frame.seq - 1));
                frame.seq - 1
            })
            .unwrap_or_else(|e| panic!("pop_with: {e}"));
            emit(&format!("A {position}"));
            sleep_micros(after);
            position
        } else if k % 2 == 0 {
            pop_in_place(&mut consumer, STEP, |frame, bytes| {
                let value = decode_bytes(bytes);
                report.line(format_args!(
                    "H {} {} {value} 0",
                    frame.seq - 1,
                    frame.frame_id
                ));
                frame.seq - 1
            })
            .unwrap_or_else(|e| panic!("pop_with: {e}"))
        } else {
            let frame = consumer
                .pop_timeout(bytemuck::cast_slice_mut(&mut tensor), STEP)
                .unwrap_or_else(|e| panic!("pop: {e}"));
            let value = decode_words(&tensor);
            report.line(format_args!(
                "H {} {} {value} 0",
                frame.seq - 1,
                frame.frame_id
            ));
            frame.seq - 1
        };
        if position + 1 >= count {
            break;
        }
    }
    report.flush();
}

/// Answers each item of queue `lane` with its value plus one on queue `lane2`.
fn queue_pong(args: &ChildArgs) {
    let rounds = args.get("rounds");
    let words = args.get("words");
    let mut producer = QueueProducer::create(&args.lane2, &spec(words), 2).unwrap();
    let mut consumer = QueueConsumer::open_expect(&args.lane, &spec(words)).unwrap();
    let _slices = no_sleep_slices();
    emit("R");
    let mut tensor = vec![0u64; words as usize];
    for r in 0..rounds {
        let value = if r % 2 == 0 {
            pop_in_place(&mut consumer, STEP, |_, bytes| decode_bytes(bytes))
        } else {
            consumer
                .pop_timeout(bytemuck::cast_slice_mut(&mut tensor), STEP)
                .map(|_| decode_words(&tensor))
        }
        .unwrap_or_else(|e| panic!("round {r}: pop: {e}"));
        assert_eq!(value, r, "round {r}");
        if r % 2 == 0 {
            fill_words(&mut tensor, r + 1);
            producer.push_timeout(bytemuck::cast_slice(&tensor), STEP)
        } else {
            push_in_place(&mut producer, STEP, |bytes| fill_bytes(bytes, r + 1))
                .map(|(position, ())| position)
        }
        .unwrap_or_else(|e| panic!("round {r}: push: {e}"));
    }
    emit(&format!("S {rounds}"));
}

/// Creates a topic, waits for "go", publishes `count` items; before position
/// `pause_at` it reports `P position` and waits for another "go".
fn topic_publisher(args: &ChildArgs) {
    let words = args.get("words");
    let count = args.get("count");
    let pause_at = args.or("pause_at", u64::MAX);
    let mut publisher = TopicPublisher::create(
        &args.lane,
        &spec(words),
        args.get("capacity") as usize,
        args.get("subscribers") as usize,
    )
    .unwrap();
    emit("R");
    wait_for_parent();
    let mut tensor = vec![0u64; words as usize];
    let started = Instant::now();
    for k in 0..count {
        if k == pause_at {
            emit(&format!("P {k}"));
            wait_for_parent();
        }
        fill_words(&mut tensor, k);
        let position = if k % 2 == 0 {
            publisher.publish_elements_timeout(&tensor, STEP)
        } else {
            publisher.publish_timeout(bytemuck::cast_slice(&tensor), STEP)
        }
        .unwrap_or_else(|e| panic!("publish {k}: {e}"));
        assert_eq!(position, k + 1, "sequence of publish {k}");
    }
    emit(&format!(
        "S {count} {} {}",
        publisher.evicted(),
        started.elapsed().as_micros()
    ));
    if args.or("hold", 0) == 1 {
        // Stays alive (its role held) until killed.
        wait_for_parent();
    }
}

/// Joins a topic and receives until position `count - 1`.
///
/// Parameters: `lossy` (0 or 1) with `max_lag`, `history`, `leave_after` (leave after
/// that many items, report, then wait for the parent), `stall_after` (stop receiving
/// after that many items, report `P`, and wait to be killed), `jitter_us` (random
/// pause per item), `slow_every` (1 ms pause every that many items), `immediate`
/// (report each item at once, for a subscriber to be killed).
/// Reports `R head lost_at_join index` after joining, then `H position frame_id value
/// missed` per item.
fn topic_subscriber(args: &ChildArgs) {
    let words = args.get("words");
    let count = args.get("count");
    let options = if args.or("lossy", 0) == 1 {
        SubscribeOptions::lossy(args.get("max_lag"))
    } else {
        SubscribeOptions::lossless()
    }
    .with_history(args.or("history", 0));
    let leave_after = args.or("leave_after", u64::MAX);
    let stall_after = args.or("stall_after", u64::MAX);
    let jitter = args.or("jitter_us", 0);
    let slow_every = args.or("slow_every", 0);
    let immediate = args.or("immediate", 0) == 1;
    let mut rng = Rng::new(args.or("seed", 1));
    let mut subscriber = TopicSubscriber::open_expect(&args.lane, &spec(words), options).unwrap();
    let index = subscriber.index();
    // Before any receive, the entry's head is where this subscriber starts and its drop
    // count is the history lost at join.
    let head = subscriber.entry(index).expect("own entry").head;
    emit(&format!("R {head} {} {index}", subscriber.missed()));
    let mut tensor = vec![0u64; words as usize];
    let mut report = Report::default();
    let mut received = 0u64;
    let started = Instant::now();
    loop {
        if received == stall_after {
            emit(&format!("P {received}"));
            std::thread::sleep(CHILD_LIMIT);
            std::process::exit(3);
        }
        if received == leave_after {
            drop(subscriber);
            report.flush();
            emit("L");
            wait_for_parent();
            return;
        }
        assert!(
            started.elapsed() < CHILD_LIMIT,
            "subscriber ran out of time"
        );
        let frame = subscriber
            .recv_elements_timeout(&mut tensor, STEP)
            .unwrap_or_else(|e| panic!("recv after {received} items: {e}"));
        let value = decode_words(&tensor);
        let line = format!(
            "H {} {} {value} {}",
            frame.seq - 1,
            frame.frame_id,
            frame.missed
        );
        if immediate {
            emit(&line);
        } else {
            report.line(format_args!("{line}"));
        }
        received += 1;
        if frame.seq >= count {
            break;
        }
        if jitter > 0 {
            sleep_micros(rng.below(jitter));
        }
        if slow_every > 0 && received % slow_every == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    report.flush();
}

// ---------------------------------------------------------------------------------
// 1. Streams.

#[test]
fn stream_readers_histories_check_against_the_register_model() {
    const WORDS: u64 = 8192; // 64 KiB
    const WRITES: u64 = 10_000;
    let mut lanes = Lanes::new();
    let lane = lanes.name("stream");
    let mut writer = Proc::spawn(
        "stream-writer",
        &lane,
        None,
        &[("words", WORDS), ("slots", 3), ("count", WRITES)],
    );
    writer.expect("R", STARTUP);
    let mut readers: Vec<Proc> = (0..2)
        .map(|_| {
            Proc::spawn(
                "stream-reader",
                &lane,
                None,
                &[("words", WORDS), ("count", WRITES)],
            )
        })
        .collect();
    for reader in &mut readers {
        reader.expect("R", STARTUP);
    }
    let started = Instant::now();
    writer.send("go");
    writer.finish(RUN);
    let mut summary = Vec::new();
    for (i, reader) in readers.iter_mut().enumerate() {
        let lines = reader.finish(RUN);
        let observations: Vec<RegisterObservation<(u64, u64)>> = records(&lines, "H")
            .into_iter()
            .map(|f| RegisterObservation {
                seq: f[0],
                value: (f[1], f[2]),
                missed: f[3],
            })
            .collect();
        if let Err(e) = check_register_reader(&observations, |seq, &(frame_id, value)| {
            frame_id == seq && value == seq
        }) {
            panic!("stream reader {i}: {e}");
        }
        let last = observations.last().map_or(0, |o| o.seq);
        assert_eq!(last, WRITES, "reader {i} never saw the last write");
        let mut distinct = observations.iter().map(|o| o.seq).collect::<Vec<_>>();
        distinct.dedup();
        let missed: u64 = observations.iter().map(|o| o.missed).sum();
        let stats = records(&lines, "S").pop().unwrap_or_default();
        summary.push(format!(
            "reader {i}: {} reads, {} distinct, {missed} missed, {} empty, {} stalled",
            observations.len(),
            distinct.len(),
            stats.first().unwrap_or(&0),
            stats.get(1).unwrap_or(&0),
        ));
    }
    eprintln!(
        "stream: {WRITES} writes of 64 KiB over 3 slots in {:?}; {}",
        started.elapsed(),
        summary.join("; ")
    );
}

#[test]
fn stream_ping_pong_never_deadlocks() {
    const ROUNDS: u64 = 1000;
    const WORDS: u64 = 8;
    let mut lanes = Lanes::new();
    let (ping, pong) = (lanes.name("sping"), lanes.name("spong"));
    let mut writer = StreamWriter::create(&ping, &spec(WORDS), 2).unwrap();
    let mut child = Proc::spawn(
        "stream-pong",
        &ping,
        Some(&pong),
        &[("rounds", ROUNDS), ("words", WORDS)],
    );
    child.expect("R", STARTUP);
    let mut reader = StreamReader::open_expect(&pong, &spec(WORDS)).unwrap();
    let mut tensor = vec![0u64; WORDS as usize];
    let mut rtts = Vec::with_capacity(ROUNDS as usize);
    let _slices = no_sleep_slices();
    for r in 1..=ROUNDS {
        let t = Instant::now();
        fill_words(&mut tensor, r);
        assert_eq!(writer.write_elements(&tensor).unwrap(), r);
        let frame = reader
            .read_new_timeout(bytemuck::cast_slice_mut(&mut tensor), STEP)
            .unwrap_or_else(|e| panic!("round {r}: read_new_timeout: {e}"));
        rtts.push(t.elapsed());
        check_round_trip(r, t.elapsed());
        assert_eq!((frame.seq, frame.missed), (r, 0), "round {r}");
        assert_eq!(decode_words(&tensor), r, "round {r}");
    }
    child.finish(RUN);
    eprintln!("stream ping-pong: {}", latency_summary(ROUNDS, &mut rtts));
}

/// Fails the round whose round trip took longer than [`SLOW_ROUND_TRIP`].
fn check_round_trip(round: u64, rtt: Duration) {
    assert!(
        rtt <= SLOW_ROUND_TRIP,
        "round {round}: round trip of {rtt:?}, over {SLOW_ROUND_TRIP:?}: a late or lost \
         wake-up"
    );
}

/// Median, 99th percentile, maximum, and round trips over 50 ms (diagnostics; a lost
/// wake-up fails [`check_round_trip`]).
fn latency_summary(rounds: u64, rtts: &mut [Duration]) -> String {
    rtts.sort();
    let at = |q: f64| rtts[((rtts.len() - 1) as f64 * q) as usize];
    let slow = rtts
        .iter()
        .filter(|d| **d > Duration::from_millis(50))
        .count();
    format!(
        "{rounds} round trips, median {} us, p99 {} us, max {} us, {slow} over 50 ms",
        micros(at(0.5)),
        micros(at(0.99)),
        micros(at(1.0))
    )
}

// ---------------------------------------------------------------------------------
// 2. Queues.

#[test]
fn queue_delivers_every_item_once_in_order() {
    const WORDS: u64 = 512; // 4 KiB
    const ITEMS: u64 = 3000;
    let mut lanes = Lanes::new();
    let lane = lanes.name("queue");
    let mut producer = Proc::spawn(
        "queue-producer",
        &lane,
        None,
        &[("words", WORDS), ("count", ITEMS), ("capacity", 8)],
    );
    producer.expect("R", STARTUP);
    let mut consumer = Proc::spawn(
        "queue-consumer",
        &lane,
        None,
        &[("words", WORDS), ("count", ITEMS)],
    );
    let started = Instant::now();
    producer.finish(RUN);
    let items = deliveries(&consumer.finish(RUN));
    if let Err(e) = check_lossless_complete(0, 0, ITEMS, &items, ring_value_ok) {
        panic!("queue consumer: {e}");
    }
    eprintln!(
        "queue: {ITEMS} items of 4 KiB, capacity 8, copying and zero-copy, delivered once in order in {:?}",
        started.elapsed()
    );
}

#[test]
fn queue_ping_pong_never_deadlocks() {
    const ROUNDS: u64 = 1000;
    const WORDS: u64 = 8;
    let mut lanes = Lanes::new();
    let (request, response) = (lanes.name("qping"), lanes.name("qpong"));
    let mut producer = QueueProducer::create(&request, &spec(WORDS), 2).unwrap();
    let mut child = Proc::spawn(
        "queue-pong",
        &request,
        Some(&response),
        &[("rounds", ROUNDS), ("words", WORDS)],
    );
    child.expect("R", STARTUP);
    let mut consumer = QueueConsumer::open_expect(&response, &spec(WORDS)).unwrap();
    let mut tensor = vec![0u64; WORDS as usize];
    let mut rtts = Vec::with_capacity(ROUNDS as usize);
    let _slices = no_sleep_slices();
    for r in 0..ROUNDS {
        let t = Instant::now();
        if r % 2 == 0 {
            push_in_place(&mut producer, STEP, |bytes| fill_bytes(bytes, r))
                .map(|(position, ())| position)
        } else {
            fill_words(&mut tensor, r);
            producer.push_timeout(bytemuck::cast_slice(&tensor), STEP)
        }
        .unwrap_or_else(|e| panic!("round {r}: push: {e}"));
        let (position, value) = if r % 2 == 0 {
            consumer
                .pop_timeout(bytemuck::cast_slice_mut(&mut tensor), STEP)
                .map(|frame| (frame.seq - 1, decode_words(&tensor)))
        } else {
            pop_in_place(&mut consumer, STEP, |frame, bytes| {
                (frame.seq - 1, decode_bytes(bytes))
            })
        }
        .unwrap_or_else(|e| panic!("round {r}: pop: {e}"));
        rtts.push(t.elapsed());
        check_round_trip(r, t.elapsed());
        assert_eq!((position, value), (r, r + 1), "round {r}");
    }
    child.finish(RUN);
    eprintln!("queue ping-pong: {}", latency_summary(ROUNDS, &mut rtts));
}

// ---------------------------------------------------------------------------------
// 3. Topics.

#[test]
fn topic_subscribers_join_leave_and_keep_their_guarantees() {
    const WORDS: u64 = 512; // 4 KiB
    const ITEMS: u64 = 3000;
    const CAPACITY: u64 = 8;
    const PAUSE_AT: u64 = ITEMS / 3;
    const HISTORY: u64 = 4;
    const LEAVE_AFTER: u64 = 200;
    let mut lanes = Lanes::new();
    let lane = lanes.name("topic");
    let base = [("words", WORDS), ("count", ITEMS)];
    let with = |extra: &[(&'static str, u64)]| {
        let mut all = base.to_vec();
        all.extend_from_slice(extra);
        all
    };
    let mut publisher = Proc::spawn(
        "topic-publisher",
        &lane,
        None,
        &with(&[
            ("capacity", CAPACITY),
            ("subscribers", 8),
            ("pause_at", PAUSE_AT),
        ]),
    );
    publisher.expect("R", STARTUP);
    let spawn = |extra: &[(&'static str, u64)]| {
        let mut proc = Proc::spawn("topic-subscriber", &lane, None, &with(extra));
        let joined = proc.expect("R", STARTUP);
        (proc, joined[0], joined[1])
    };
    let mut lossless = [spawn(&[]), spawn(&[])];
    let mut lossy = spawn(&[("lossy", 1), ("max_lag", 2), ("slow_every", 8)]);
    let mut leaver = spawn(&[("leave_after", LEAVE_AFTER)]);
    let started = Instant::now();
    publisher.send("go");
    assert_eq!(publisher.expect("P", RUN), [PAUSE_AT]);
    let mut late = spawn(&[("history", HISTORY)]);
    publisher.send("go");
    let stats = publisher.expect("S", RUN);
    publisher.finish(RUN);
    assert_eq!(&stats[..2], &[ITEMS, 0], "published, evicted");
    // The leaver left after LEAVE_AFTER items and is still alive: the publisher went
    // on without it and evicted nobody.
    leaver.0.expect("L", RUN);
    leaver.0.send("exit");

    let mut summary = Vec::new();
    for (i, (proc, head, lost)) in lossless.iter_mut().enumerate() {
        let items = deliveries(&proc.finish(RUN));
        if let Err(e) = check_lossless_complete(*head, *lost, ITEMS, &items, ring_value_ok) {
            panic!("lossless subscriber {i}: {e}");
        }
        summary.push(format!("lossless {i}: {} items", items.len()));
    }
    let (proc, head, lost) = &mut late;
    let items = deliveries(&proc.finish(RUN));
    assert_eq!(
        (*head, *lost),
        (PAUSE_AT - HISTORY, 0),
        "late joiner's start"
    );
    if let Err(e) = check_lossless_complete(*head, *lost, ITEMS, &items, ring_value_ok) {
        panic!("late joiner: {e}");
    }
    summary.push(format!(
        "late joiner from {head} (history {HISTORY}): {} items",
        items.len()
    ));
    let (proc, head, lost) = &mut leaver;
    let items = deliveries(&proc.finish(RUN));
    if let Err(e) = check_lossless(*head, *lost, &items, ring_value_ok) {
        panic!("leaver: {e}");
    }
    assert_eq!(items.len() as u64, LEAVE_AFTER, "leaver's items");
    summary.push(format!("leaver: {} items then left", items.len()));
    let (proc, head, _) = &mut lossy;
    let items = deliveries(&proc.finish(RUN));
    if let Err(e) = check_lossy(*head, &items, ring_value_ok) {
        panic!("lossy subscriber: {e}");
    }
    assert_eq!(items.last().map(|d| d.position), Some(ITEMS - 1));
    let missed: u64 = items.iter().map(|d| d.missed).sum();
    summary.push(format!(
        "lossy (lag 2): {} items, {missed} missed",
        items.len()
    ));
    eprintln!(
        "topic: {ITEMS} items of 4 KiB, capacity {CAPACITY}, published in {} ms, 0 evicted, \
         test {:?}; {}",
        stats[2] / 1000,
        started.elapsed(),
        summary.join("; ")
    );
}

// ---------------------------------------------------------------------------------
// 4. Killing a stream writer.

/// What a killed writer left in the register, read from the segment's bytes: the
/// published sequence and the stamp of the slot the next write goes to.
fn register_state(lane: &str, slots: usize, tensor_bytes: usize) -> (u64, u64) {
    let name = LaneName::new(lane).unwrap();
    let path = format!("/dev/shm{}", name.object_name().to_str().unwrap());
    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let geometry = SeqlockGeometry::new(slots, FRAME_BYTES + tensor_bytes).unwrap();
    let read = |offset: usize| {
        let mut word = [0u8; 8];
        file.read_exact_at(&mut word, offset as u64).unwrap();
        u64::from_le_bytes(word)
    };
    // The register's header starts with `published`; the slots follow it.
    let published = read(HEADER_BYTES);
    let body = HEADER_BYTES + std::mem::size_of::<SeqlockHeader>();
    let slot = ((published + 1) % slots as u64) as usize;
    let stamp = read(body + (slot * geometry.slot_stride() + STAMP_WORD) * 8);
    (published, stamp)
}

/// Reads stream `lane` with `read_new` until `stop`, checking every value; returns the
/// values read and the reads that stalled (allowed with one slot only).
fn read_until(
    lane: &str,
    tensor_spec: &TensorSpec,
    slots: usize,
    stop: &AtomicBool,
    context: &str,
) -> (u64, u64) {
    let mut reader = StreamReader::open_expect(lane, tensor_spec).unwrap();
    let mut tensor = vec![0u64; tensor_spec.byte_len() / 8];
    let (mut reads, mut stalls) = (0, 0);
    while !stop.load(Ordering::Relaxed) {
        match nothing_is_none(reader.try_read_new(bytemuck::cast_slice_mut(&mut tensor))) {
            Ok(Some(frame)) => {
                assert_eq!(
                    (decode_words(&tensor), frame.frame_id),
                    (frame.seq, frame.seq),
                    "{context}: live read"
                );
                reads += 1;
            }
            Ok(None) => {}
            // With one slot, a reader racing a writer that never pauses may fail.
            Err(LaneError::Stalled) if slots == 1 => stalls += 1,
            // Only after the kill: the writer lives until then.
            Err(LaneError::WriterGone) => break,
            Err(e) => panic!("{context}: live read: {e}"),
        }
    }
    (reads, stalls)
}

#[derive(Default, Debug)]
struct KillCounts {
    kills: usize,
    mid_write: usize,
    unpublished: usize,
    between_writes: usize,
    nothing_complete: usize,
    one_slot: usize,
    one_slot_gone: usize,
    live_reads: u64,
    live_stalls: u64,
    checks: usize,
    max_gone: Duration,
}

#[test]
fn stream_writer_killed_at_random_points() {
    const WORDS: u64 = 131_072; // 1 MiB
    let runs = crash_runs();
    let seed = seed();
    let mut rng = Rng::new(seed);
    let mut lanes = Lanes::new();
    let tensor_spec = spec(WORDS);
    let tensor_bytes = tensor_spec.byte_len();
    let mut tensor = vec![0u64; WORDS as usize];
    let mut c = KillCounts::default();
    let started = Instant::now();
    for run in 0..runs {
        let slots = if run % 4 == 3 { 1 } else { 2 };
        let lane = lanes.name("kill-writer");
        let mut child = Proc::spawn(
            "stream-writer-forever",
            &lane,
            None,
            &[("words", WORDS), ("slots", slots as u64)],
        );
        child.expect("R", STARTUP);
        let mut reader = StreamReader::open_expect(&lane, &tensor_spec).unwrap();
        let context = format!("run {run} (seed {seed}, {slots} slot(s))");
        assert!(
            matches!(
                StreamWriter::take_over(&lane),
                Err(LaneError::RoleTaken { .. })
            ),
            "{context}: a live writer was taken over"
        );
        // A second reader reads while the writer writes; the kill comes at a random
        // instant, independent of its reads.
        let delay = Duration::from_micros(rng.below(3000));
        let stop = AtomicBool::new(false);
        let (reads, stalls) = std::thread::scope(|scope| {
            let live = scope.spawn(|| read_until(&lane, &tensor_spec, slots, &stop, &context));
            std::thread::sleep(delay);
            child.kill();
            stop.store(true, Ordering::Relaxed);
            live.join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        });
        c.live_reads += reads;
        c.live_stalls += stalls;
        c.kills += 1;
        let (published, stamp) = register_state(&lane, slots, tensor_bytes);
        let next = published + 1;
        let mid_write = stamp == 2 * next + 1;
        if mid_write {
            c.mid_write += 1;
        } else if stamp == 2 * next {
            c.unpublished += 1; // complete, killed before `published` moved
        } else {
            c.between_writes += 1;
        }
        if slots == 1 {
            c.one_slot += 1;
        }

        // The last complete value, untorn; with one slot and a write cut short there is
        // none, and the reader must say the writer is gone.
        let got = nothing_is_none(reader.read(bytemuck::cast_slice_mut(&mut tensor)));
        match got {
            Ok(Some(frame)) => {
                assert!(
                    !(slots == 1 && mid_write),
                    "{context}: read a value from a slot left mid-write"
                );
                assert_eq!(
                    (frame.seq, frame.frame_id, decode_words(&tensor)),
                    (published, published, published),
                    "{context}: last complete value"
                );
            }
            Ok(None) => {
                assert_eq!(
                    published, 0,
                    "{context}: no value although one was published"
                );
                c.nothing_complete += 1;
            }
            Err(LaneError::WriterGone) if slots == 1 && mid_write => c.one_slot_gone += 1,
            Err(e) => {
                panic!("{context}: read after the kill: {e} (published {published}, stamp {stamp})")
            }
        }
        c.checks += 1;

        // Nothing newer will come: a prompt WriterGone, not a hang.
        let t = Instant::now();
        let waited = reader.read_new_timeout(bytemuck::cast_slice_mut(&mut tensor), STEP);
        let took = t.elapsed();
        assert!(
            matches!(waited, Err(LaneError::WriterGone)),
            "{context}: read_new_timeout after the kill returned {waited:?}"
        );
        assert!(took < PROMPT, "{context}: WriterGone took {took:?}");
        c.max_gone = c.max_gone.max(took);
        c.checks += 1;

        // A new writer takes over; its write is the next sequence, and readable.
        let mut writer =
            StreamWriter::take_over(&lane).unwrap_or_else(|e| panic!("{context}: take over: {e}"));
        fill_words(&mut tensor, next);
        assert_eq!(
            writer.write_elements(&tensor).unwrap(),
            next,
            "{context}: sequence after take-over"
        );
        tensor.fill(0);
        let frame = reader
            .read_new_timeout(bytemuck::cast_slice_mut(&mut tensor), PROMPT)
            .unwrap_or_else(|e| panic!("{context}: read after take-over: {e}"));
        assert_eq!(
            (frame.seq, decode_words(&tensor)),
            (next, next),
            "{context}: value after take-over"
        );
        // Frame ids go on from the last complete value's (with one slot and a write
        // cut short there is none left to go on from).
        if !(slots == 1 && mid_write) {
            assert_eq!(frame.frame_id, next, "{context}: frame id after take-over");
        }
        c.checks += 1;
        drop((writer, reader));
        lanes.release(&lane);
    }
    eprintln!(
        "stream writer kill -9 (seed {seed}): {} kills in {:?}: {} mid-write, {} complete but \
         unpublished, {} between writes, {} before any complete write; {} one-slot runs, {} of \
         them left mid-write (read gave WriterGone); {} checks passed (last value untorn, \
         WriterGone within {} us at most, take-over writes the next sequence); {} untorn live \
         reads, {} live stalls (one slot)",
        c.kills,
        started.elapsed(),
        c.mid_write,
        c.unpublished,
        c.between_writes,
        c.nothing_complete,
        c.one_slot,
        c.one_slot_gone,
        c.checks,
        micros(c.max_gone),
        c.live_reads,
        c.live_stalls,
    );
}

// ---------------------------------------------------------------------------------
// 5. Killing a lossless topic subscriber.

#[test]
fn topic_publisher_resumes_after_lossless_subscriber_killed() {
    const WORDS: u64 = 1024; // 8 KiB
    const ITEMS: u64 = 300;
    const CAPACITY: u64 = 4;
    let runs = minor_crash_runs();
    let seed = seed();
    let mut rng = Rng::new(seed);
    let mut lanes = Lanes::new();
    let tensor_spec = spec(WORDS);
    let mut tensor = vec![0u64; WORDS as usize];
    let (mut blocked_at_kill, mut killed_stalled, mut max_resume) = (0, 0, Duration::ZERO);
    let started = Instant::now();
    for run in 0..runs {
        let context = format!("run {run} (seed {seed})");
        let lane = lanes.name("kill-sub");
        let mut publisher =
            TopicPublisher::create(&lane, &tensor_spec, CAPACITY as usize, 4).unwrap();
        let base = [("words", WORDS), ("count", ITEMS)];
        let mut survivor = Proc::spawn("topic-subscriber", &lane, None, &base);
        let survivor_join = survivor.expect("R", STARTUP);
        // Even runs: the victim stops receiving after `stall` items, blocking the
        // publisher, and is killed a while after that. Odd runs: it receives everything
        // with random pauses and is killed at a random instant.
        let after_stall = run % 2 == 0;
        let stall = if after_stall {
            rng.below(3 * CAPACITY)
        } else {
            u64::MAX
        };
        let mut victim = Proc::spawn(
            "topic-subscriber",
            &lane,
            None,
            &[
                base[0],
                base[1],
                ("stall_after", stall),
                ("jitter_us", 300),
                ("immediate", 1),
                ("seed", rng.next()),
            ],
        );
        let victim_join = victim.expect("R", STARTUP);
        let delay = Duration::from_micros(rng.below(if after_stall { 20_000 } else { 10_000 }));
        let killer = std::thread::spawn(move || {
            if after_stall {
                victim.expect("P", RUN);
            }
            std::thread::sleep(delay);
            let stalled = victim.has("P");
            let (signalled, _) = victim.kill();
            (victim, signalled, stalled)
        });
        let mut spans = Vec::with_capacity(ITEMS as usize);
        for k in 0..ITEMS {
            fill_words(&mut tensor, k);
            let t = Instant::now();
            let position = publisher
                .publish_elements_timeout(&tensor, STEP)
                .unwrap_or_else(|e| panic!("{context}: publish {k}: {e}"));
            spans.push((t, Instant::now()));
            assert_eq!(position, k + 1, "{context}");
        }
        let (mut victim, signalled, stalled) = killer
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        assert_eq!(publisher.evicted(), 1, "{context}: evictions");
        // After the kill, no publish waited longer than PROMPT.
        let resume = spans
            .iter()
            .filter(|(_, end)| *end > signalled)
            .map(|(start, end)| end.duration_since((*start).max(signalled)))
            .max()
            .unwrap_or_default();
        assert!(
            resume < PROMPT,
            "{context}: publisher resumed after {resume:?}"
        );
        max_resume = max_resume.max(resume);
        if stalled {
            killed_stalled += 1;
            // The live, stalled victim held position stall + CAPACITY back until it died.
            let (start, end) = spans[(stall + CAPACITY) as usize];
            assert!(
                end > signalled,
                "{context}: position {} published past a live lossless subscriber",
                stall + CAPACITY
            );
            if start < signalled {
                blocked_at_kill += 1;
            }
        }
        let items = deliveries(&survivor.finish(RUN));
        if let Err(e) = check_lossless_complete(
            survivor_join[0],
            survivor_join[1],
            ITEMS,
            &items,
            ring_value_ok,
        ) {
            panic!("{context}: surviving subscriber: {e}");
        }
        let seen = deliveries(&victim.collect());
        if let Err(e) = check_lossless(victim_join[0], victim_join[1], &seen, ring_value_ok) {
            panic!("{context}: killed subscriber: {e}");
        }
        drop(publisher);
        lanes.release(&lane);
    }
    eprintln!(
        "topic subscriber kill -9 (seed {seed}): {runs} kills in {:?}: {killed_stalled} of a \
         stalled subscriber ({blocked_at_kill} with the publisher blocked on it), {} while \
         receiving; 1 eviction each, publisher resumed within {} us of the kill at most, \
         survivor's history complete every run",
        started.elapsed(),
        runs - killed_stalled,
        micros(max_resume)
    );
}

// ---------------------------------------------------------------------------------
// 6. Killing a queue consumer.

#[test]
fn queue_consumer_killed_and_taken_over() {
    const WORDS: u64 = 2048; // 16 KiB
    const ITEMS: u64 = 600;
    let runs = minor_crash_runs();
    let seed = seed();
    let mut rng = Rng::new(seed);
    let mut lanes = Lanes::new();
    let (mut inside, mut released, mut ambiguous, mut redelivered) = (0, 0, 0, 0);
    let started = Instant::now();
    for run in 0..runs {
        let context = format!("run {run} (seed {seed})");
        let lane = lanes.name("kill-consumer");
        let base = [("words", WORDS), ("count", ITEMS)];
        let mut producer = Proc::spawn(
            "queue-producer",
            &lane,
            None,
            &[base[0], base[1], ("capacity", 8)],
        );
        producer.expect("R", STARTUP);
        let mut first = Proc::spawn(
            "queue-consumer",
            &lane,
            None,
            &[
                base[0],
                base[1],
                ("crash", 1),
                ("jitter_us", 400),
                ("seed", rng.next()),
            ],
        );
        first.expect("R", STARTUP);
        std::thread::sleep(Duration::from_micros(1000 + rng.below(30_000)));
        first.kill();
        let lines = first.collect();
        let mut second = Proc::spawn("queue-consumer", &lane, None, &base);
        let took_over = second.finish(RUN);
        producer.finish(RUN);

        // What the dead consumer held, in order from 0.
        let held: Vec<Delivery<(u64, u64)>> = records(&lines, "B")
            .into_iter()
            .map(|f| Delivery {
                position: f[0],
                value: (f[1], f[2]),
                missed: f[3],
            })
            .collect();
        if let Err(e) = check_lossless(0, 0, &held, ring_value_ok) {
            panic!("{context}: killed consumer: {e}");
        }
        let items = deliveries(&took_over);
        let restart = items.first().map_or(ITEMS, |d| d.position);
        // The new consumer's items: contiguous, once each, to the end.
        if let Err(e) = check_lossless_complete(restart, 0, ITEMS, &items, ring_value_ok) {
            panic!("{context}: new consumer: {e}");
        }
        // Where it starts: right after the last item the dead one released; at the item
        // it held if it had not released it.
        let last = held.last().map(|d| d.position);
        let expected = match last {
            None => vec![0],
            Some(last) => {
                let ended = records(&lines, "E").iter().any(|f| f[0] == last);
                let popped = records(&lines, "A").iter().any(|f| f[0] == last);
                if popped {
                    released += 1;
                    vec![last + 1]
                } else if !ended {
                    inside += 1;
                    vec![last]
                } else {
                    // Between the end of the loan's use and the report of the release.
                    ambiguous += 1;
                    vec![last, last + 1]
                }
            }
        };
        assert!(
            expected.contains(&restart),
            "{context}: new consumer started at {restart}, expected one of {expected:?} \
             (dead consumer's last item {last:?})"
        );
        if last == Some(restart) {
            redelivered += 1;
        }
        lanes.release(&lane);
    }
    eprintln!(
        "queue consumer kill -9 (seed {seed}): {runs} kills in {:?}: {inside} while holding an \
         item (delivered again), {released} after releasing it (not delivered again), \
         {ambiguous} in between ({redelivered} re-deliveries in all); every item seen, in order",
        started.elapsed()
    );
}

/// How a writer side's death meets its reader in the end-of-stream tests.
#[derive(Debug, Clone, Copy)]
enum Death {
    /// Killed with every item still in the ring: the reader drains them afterwards.
    BeforeTheDrain,
    /// Killed while the reader, having drained the ring, sleeps in a timed wait.
    DuringTheWait,
}

/// Receives `count` items in order with `next` (the item with value `k` has seq
/// `k + 1`), kills `writer` as `death` says, and checks that the next wait ends with
/// `WriterGone` within [`PROMPT`] of the kill (of the call, for a writer already dead),
/// not with a timeout after [`STEP`].
fn drain_then_writer_gone(
    what: &str,
    mut writer: Proc,
    death: Death,
    count: u64,
    out: &mut [u8],
    mut next: impl FnMut(&mut [u8]) -> Result<tensorlane_shm::Frame, LaneError>,
) {
    if let Death::BeforeTheDrain = death {
        writer.kill();
        assert!(!is_alive(writer.pid()), "{what}: killed writer still alive");
    }
    for k in 0..count {
        let frame = next(out).unwrap_or_else(|e| panic!("{what} ({death:?}): item {k}: {e}"));
        assert_eq!(frame.seq, k + 1, "{what} ({death:?}): seq of item {k}");
        assert_eq!(
            frame.frame_id,
            k + 1,
            "{what} ({death:?}): frame id of item {k}"
        );
        assert_eq!(
            decode_bytes(out),
            k,
            "{what} ({death:?}): value of item {k}"
        );
    }
    let (killed, killer) = match death {
        Death::BeforeTheDrain => (Instant::now(), None),
        Death::DuringTheWait => {
            let (send, signalled) = mpsc::channel();
            let killer = std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                let (at, _) = writer.kill();
                let _ = send.send(at);
                writer
            });
            (Instant::now(), Some((killer, signalled)))
        }
    };
    let started = Instant::now();
    let end = next(out);
    let ended = Instant::now();
    let killed = match killer {
        None => killed,
        Some((killer, signalled)) => {
            drop(killer.join());
            signalled.recv().expect("the kill's instant")
        }
    };
    assert!(
        matches!(end, Err(LaneError::WriterGone)),
        "{what} ({death:?}): after the last item: {end:?}"
    );
    let late = ended.saturating_duration_since(killed.max(started));
    assert!(
        late < PROMPT,
        "{what} ({death:?}): WriterGone {late:?} after the kill"
    );
    eprintln!(
        "{what} ({death:?}): {count} items in order, then WriterGone {late:?} after the kill"
    );
}

/// Whether process `pid` exists (a reaped child does not).
fn is_alive(pid: u32) -> bool {
    // SAFETY: kill with signal 0 sends nothing; it only checks the pid.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

/// End of stream across processes: a queue producer process that pushed its items and
/// is killed (SIGKILL), before the consumer drains them or while the consumer waits
/// on an empty ring: the consumer in this process gets every item in order, then
/// `WriterGone` promptly, never a timeout.
#[test]
fn a_killed_producer_s_queue_is_drained_then_ends_with_writer_gone() {
    const WORDS: u64 = 512;
    const ITEMS: u64 = 12;
    for death in [Death::BeforeTheDrain, Death::DuringTheWait] {
        let mut lanes = Lanes::new();
        let lane = lanes.name("queue-eos");
        let mut producer = Proc::spawn(
            "queue-producer",
            &lane,
            None,
            &[
                ("words", WORDS),
                ("count", ITEMS),
                ("capacity", 16),
                ("hold", 1),
            ],
        );
        producer.expect("R", STARTUP);
        let mut consumer = QueueConsumer::open(&lane).unwrap();
        producer.expect("S", RUN);
        let mut out = vec![0u8; WORDS as usize * 8];
        drain_then_writer_gone("queue consumer", producer, death, ITEMS, &mut out, |out| {
            consumer.pop_timeout(out, STEP)
        });
        // Ended for good: a later wait says so at once too.
        assert!(matches!(
            consumer.pop_deadline(&mut out, Instant::now() + STEP),
            Err(LaneError::WriterGone)
        ));
    }
}

/// End of stream across processes, for a topic: a publisher process killed (SIGKILL)
/// after publishing, before a lossless subscriber drains the ring or while it waits
/// on it: the subscriber gets every item in order, then `WriterGone` promptly.
#[test]
fn a_killed_publisher_s_topic_is_drained_then_ends_with_writer_gone() {
    const WORDS: u64 = 512;
    const ITEMS: u64 = 12;
    for death in [Death::BeforeTheDrain, Death::DuringTheWait] {
        let mut lanes = Lanes::new();
        let lane = lanes.name("topic-eos");
        let mut publisher = Proc::spawn(
            "topic-publisher",
            &lane,
            None,
            &[
                ("words", WORDS),
                ("count", ITEMS),
                ("capacity", 16),
                ("subscribers", 2),
                ("hold", 1),
            ],
        );
        publisher.expect("R", STARTUP);
        let mut subscriber = TopicSubscriber::open(&lane, SubscribeOptions::lossless()).unwrap();
        publisher.send("go");
        publisher.expect("S", RUN);
        let mut out = vec![0u8; WORDS as usize * 8];
        drain_then_writer_gone(
            "topic subscriber",
            publisher,
            death,
            ITEMS,
            &mut out,
            |out| subscriber.recv_timeout(out, STEP),
        );
        assert!(matches!(
            subscriber.recv_deadline(&mut out, Instant::now() + STEP),
            Err(LaneError::WriterGone)
        ));
    }
}
