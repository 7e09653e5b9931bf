//! Robustness against hostile segment contents.
//!
//! - `corrupted_segments_give_typed_errors`: a valid stream, queue and topic are
//!   copied byte for byte into fresh objects, one mutation each (a flipped bit, a
//!   zeroed word, a random or boundary value in a header field, a control word, a
//!   subscriber entry, a slot stamp or length; header mutations get a recomputed
//!   checksum half of the time so they reach the later checks), then opened and used
//!   through the public API and inspected with the CLI. Every outcome must be `Ok` or a
//!   typed [`LaneError`], and the CLI must exit 0 or 1, never panic or die by a signal.
//! - `truncated_objects_are_refused`, `unready_segment_is_refused`: objects cut short,
//!   and a header whose ready word never becomes `READY`, get a typed error at open.
//! - `misbehaving_peer_cannot_crash_well_behaved_processes`: a publisher, a lossless
//!   and a lossy subscriber run as separate processes while this process writes
//!   random values into the topic's control words through its own mapping. The
//!   well-behaved processes must report the damage as errors and exit normally.
//!
//! Children: the test binary re-executes itself (`current_exe() --exact
//! hostile_child_entry --nocapture --test-threads=1`) with `TENSORLANE_HOSTILE_ROLE`
//! naming the role and `TENSORLANE_HOSTILE_LANE` the lane. A child prints one
//! `#hostile# ` summary line and exits with `std::process::exit(0)`.
#![cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::ExitStatusExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tensorlane_shm::header::{self, field, HEADER_BYTES};
use tensorlane_shm::{
    segment, DType, LaneError, LaneName, QueueConsumer, QueueProducer, StreamReader, StreamWriter,
    SubscribeOptions, TensorSpec, TopicPublisher, TopicSubscriber,
};

const ROLE_VAR: &str = "TENSORLANE_HOSTILE_ROLE";
const LANE_VAR: &str = "TENSORLANE_HOSTILE_LANE";
const MARK: &str = "#hostile# ";
/// Mutations per lane kind.
const CASES: usize = 300;
/// Every `CLI_EVERY`-th case also runs `tensorlane inspect`; `list` runs a tenth as often.
const CLI_EVERY: usize = 10;
/// Topic control block size and table entry size (docs/LAYOUT.md, sections 8 and 9).
const QUEUE_TOPIC_CONTROL: usize = 384;
const STREAM_CONTROL: usize = 256;
const ENTRY_BYTES: usize = 128;
/// Payload salt of the peer test (see [`payload`]).
const SALT: u64 = 0x5eed_0f7e_5700_0000;
/// How long the peer test's children run.
const RUN_FOR: Duration = Duration::from_millis(1500);
/// How long the parent waits for them.
const CHILD_BOUND: Duration = Duration::from_secs(10);

/// Unlinks the named lanes when dropped.
struct Unlink(Vec<String>);

impl Drop for Unlink {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = segment::unlink(&LaneName::new(name).unwrap());
        }
    }
}

fn object_path(name: &str) -> String {
    format!("/dev/shm/tensorlane.{name}")
}

/// Writes `bytes` as a new shared-memory object for lane `name` (mode 0600).
fn write_object(name: &str, bytes: &[u8]) {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(object_path(name))
        .unwrap_or_else(|e| panic!("creating {}: {e}", object_path(name)));
    file.write_all(bytes).unwrap();
}

/// xorshift64*: deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// The variant name of an error (`Corrupt`, `Header`, ...).
fn variant(e: &LaneError) -> String {
    let debug = format!("{e:?}");
    debug
        .split(|c: char| !c.is_ascii_alphanumeric())
        .next()
        .unwrap_or("")
        .to_string()
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum LaneKind {
    Stream,
    Queue,
    Topic,
}

/// Word geometry of a segment, from its validated creation parameters.
struct Words {
    /// Word index of the control block.
    control: usize,
    /// Words of the control block.
    control_words: usize,
    /// Word index of the subscriber table (topics) or of slot 0.
    body: usize,
    /// Subscriber entries.
    entries: usize,
    /// Word index of slot 0.
    slots: usize,
    /// Slots.
    count: usize,
    /// Words per slot.
    stride: usize,
    /// Words of the whole segment.
    total: usize,
}

impl Words {
    fn new(kind: LaneKind, bytes: &[u8]) -> Words {
        let word = |i: usize| u64::from_le_bytes(bytes[8 * i..8 * i + 8].try_into().unwrap());
        let count = word(field::COUNT) as usize;
        let entries = word(field::SUBSCRIBERS) as usize;
        let total = bytes.len() / 8;
        let control_bytes = match kind {
            LaneKind::Stream => STREAM_CONTROL,
            LaneKind::Queue | LaneKind::Topic => QUEUE_TOPIC_CONTROL,
        };
        let control = HEADER_BYTES / 8;
        let body = control + control_bytes / 8;
        let slots = body + entries * ENTRY_BYTES / 8;
        let stride = (total - slots) / count;
        assert_eq!(slots + stride * count, total, "segment geometry");
        Words {
            control,
            control_words: control_bytes / 8,
            body,
            entries,
            slots,
            count,
            stride,
            total,
        }
    }

    /// Word indices of the control fields (docs/LAYOUT.md, section 8).
    fn control_fields(&self, kind: LaneKind) -> Vec<usize> {
        let offsets: &[usize] = match kind {
            LaneKind::Stream => &[0, 16],
            LaneKind::Queue => &[0, 16, 32, 33],
            LaneKind::Topic => &[0, 16, 32],
        };
        offsets.iter().map(|o| self.control + o).collect()
    }

    /// A word of the segment, chosen among the interesting places.
    fn pick(&self, kind: LaneKind, rng: &mut Rng) -> usize {
        match rng.below(10) {
            // Immutable header fields, checksum included.
            0..=2 => rng.below(field::COUNT_OF_FIELDS),
            // Reserved header words and futex words. The ready word is left alone:
            // an opener waits for a header that is not ready yet (see
            // `unready_segment_is_refused`).
            3 => [23, 31, 48, 49, 64, 65][rng.below(6)],
            // Control fields.
            4 | 5 => {
                let fields = self.control_fields(kind);
                fields[rng.below(fields.len())]
            }
            // Anywhere in the control block.
            6 => self.control + rng.below(self.control_words),
            // Subscriber entries (topics), else slot stamps and lengths.
            7 if self.entries > 0 => self.body + 16 * rng.below(self.entries) + rng.below(6),
            7 | 8 => self.slots + self.stride * rng.below(self.count) + rng.below(2),
            // Anywhere in the body.
            _ => self.body + rng.below(self.total - self.body),
        }
    }
}

/// Applies one mutation to `bytes`; returns its description.
fn mutate(kind: LaneKind, words: &Words, bytes: &mut [u8], rng: &mut Rng) -> String {
    let index = words.pick(kind, rng);
    let at = 8 * index;
    let old = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    let (how, new) = match rng.below(4) {
        0 => {
            let bit = rng.below(64);
            (format!("flip bit {bit}"), old ^ (1 << bit))
        }
        1 => ("zero".to_string(), 0),
        2 => {
            let v = rng.next();
            // Small values reach more checks than huge ones.
            let v = if rng.below(2) == 0 { v % 64 } else { v };
            (format!("set {v:#x}"), v)
        }
        _ => {
            let v = [
                0,
                1,
                u64::MAX,
                1 << 63,
                old.wrapping_add(1),
                old.wrapping_sub(1),
            ][rng.below(6)];
            (format!("set {v:#x}"), v)
        }
    };
    bytes[at..at + 8].copy_from_slice(&new.to_le_bytes());
    let mut description = format!("word {index} (offset {at}): {how} (was {old:#x})");
    if index < field::COUNT_OF_FIELDS && rng.below(2) == 0 {
        let fields: Vec<u64> = (0..field::CHECKSUM)
            .map(|i| u64::from_le_bytes(bytes[8 * i..8 * i + 8].try_into().unwrap()))
            .collect();
        let sum = header::checksum(&fields);
        let at = 8 * field::CHECKSUM;
        bytes[at..at + 8].copy_from_slice(&sum.to_le_bytes());
        description.push_str(", checksum recomputed");
    }
    description
}

#[derive(Default)]
struct Tally {
    opened: usize,
    open_errors: BTreeMap<String, usize>,
    op_ok: usize,
    op_errors: BTreeMap<String, usize>,
    cli_exits: BTreeMap<i32, usize>,
}

impl Tally {
    fn open<T>(&mut self, result: Result<T, LaneError>) -> Option<T> {
        match result {
            Ok(v) => {
                self.opened += 1;
                Some(v)
            }
            Err(e) => {
                *self.open_errors.entry(variant(&e)).or_default() += 1;
                None
            }
        }
    }

    fn op<T>(&mut self, result: Result<T, LaneError>) {
        match result {
            Ok(_) => self.op_ok += 1,
            Err(e) => *self.op_errors.entry(variant(&e)).or_default() += 1,
        }
    }
}

/// Opens lane `name` of `kind` every way and uses it; every outcome is recorded.
fn exercise(kind: LaneKind, name: &str, tally: &mut Tally) {
    match kind {
        LaneKind::Stream => {
            if let Some(mut reader) = tally.open(StreamReader::open(name)) {
                let mut out = vec![0u8; reader.spec().byte_len()];
                let read = reader.read(&mut out);
                tally.op(read);
                let read_new = reader.try_read_new(&mut out);
                tally.op(read_new);
                let wait = reader.read_new_timeout(&mut out, Duration::ZERO);
                tally.op(wait);
            }
        }
        LaneKind::Queue => {
            if let Some(mut consumer) = tally.open(QueueConsumer::open(name)) {
                let mut out = vec![0u8; consumer.spec().byte_len()];
                for _ in 0..5 {
                    let pop = consumer.try_pop(&mut out);
                    tally.op(pop);
                }
            }
        }
        LaneKind::Topic => {
            for options in [
                SubscribeOptions::lossless().with_history(4),
                SubscribeOptions::lossy(2).with_history(4),
                SubscribeOptions::lossless(),
            ] {
                if let Some(mut subscriber) = tally.open(TopicSubscriber::open(name, options)) {
                    let tensor = subscriber.spec().byte_len();
                    let mut out = vec![0u8; tensor];
                    for _ in 0..5 {
                        let recv = subscriber.try_recv(&mut out);
                        tally.op(recv);
                    }
                    let mut history = vec![0u8; 4 * tensor];
                    let last = subscriber.last_k(4, &mut history);
                    tally.op(last);
                }
            }
        }
    }
}

/// Runs the CLI; returns its exit code, failing on a panic or a signal.
fn cli(args: &[&str], case: &str) -> i32 {
    let output = Command::new(env!("CARGO_BIN_EXE_tensorlane"))
        .args(args)
        .output()
        .expect("run tensorlane");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let code = output.status.code().unwrap_or_else(|| {
        panic!(
            "tensorlane {args:?} died by signal {:?} on {case}:\n{stderr}",
            output.status.signal()
        )
    });
    assert!(
        (code == 0 || code == 1) && !stderr.contains("panicked"),
        "tensorlane {args:?} exited {code} on {case}:\n{stderr}"
    );
    code
}

/// Creates a valid lane of `kind` with a few items; returns its bytes.
fn original(kind: LaneKind, name: &str) -> Vec<u8> {
    let spec = TensorSpec::new(DType::F32, &[4]).unwrap();
    let tensor = |k: u32| -> Vec<u8> {
        (0..4u32)
            .flat_map(|j| ((k * 10 + j) as f32).to_le_bytes())
            .collect()
    };
    match kind {
        LaneKind::Stream => {
            let mut writer = StreamWriter::create(name, &spec, 3).unwrap();
            for k in 0..5 {
                writer.write(&tensor(k)).unwrap();
            }
            std::fs::read(object_path(name)).unwrap()
        }
        LaneKind::Queue => {
            let mut producer = QueueProducer::create(name, &spec, 4).unwrap();
            let mut consumer = QueueConsumer::open(name).unwrap();
            for k in 0..4 {
                producer.try_push(&tensor(k)).unwrap();
            }
            let mut out = vec![0u8; spec.byte_len()];
            consumer.try_pop(&mut out).unwrap();
            std::fs::read(object_path(name)).unwrap()
        }
        LaneKind::Topic => {
            let mut publisher = TopicPublisher::create(name, &spec, 4, 4).unwrap();
            let mut lossless = TopicSubscriber::open(name, SubscribeOptions::lossless()).unwrap();
            let _lossy = TopicSubscriber::open(name, SubscribeOptions::lossy(2)).unwrap();
            for k in 0..3 {
                publisher.try_publish(&tensor(k)).unwrap();
            }
            let mut out = vec![0u8; spec.byte_len()];
            lossless.try_recv(&mut out).unwrap();
            publisher.try_publish(&tensor(3)).unwrap();
            std::fs::read(object_path(name)).unwrap()
        }
    }
}

#[test]
fn corrupted_segments_give_typed_errors() {
    let started = Instant::now();
    let pid = std::process::id();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for kind in [LaneKind::Stream, LaneKind::Queue, LaneKind::Topic] {
        let tag = format!("{kind:?}").to_lowercase();
        let base = format!("hostile-{pid}-{tag}");
        let _guard = Unlink(vec![base.clone()]);
        let bytes = original(kind, &base);
        let words = Words::new(kind, &bytes);
        let mut tally = Tally::default();

        // The unmutated copy opens and reads.
        {
            let name = format!("{base}-copy");
            let _guard = Unlink(vec![name.clone()]);
            write_object(&name, &bytes);
            let mut check = Tally::default();
            exercise(kind, &name, &mut check);
            assert!(check.open_errors.is_empty(), "{kind:?} copy: open failed");
        }

        for case in 0..CASES {
            let mut mutated = bytes.clone();
            let description = mutate(kind, &words, &mut mutated, &mut rng);
            let description = format!("{kind:?} case {case}: {description}");
            let name = format!("{base}-{case}");
            let _guard = Unlink(vec![name.clone()]);
            write_object(&name, &mutated);
            let outcome = catch_unwind(AssertUnwindSafe(|| exercise(kind, &name, &mut tally)));
            assert!(outcome.is_ok(), "panic on {description}");
            if case % CLI_EVERY == 0 {
                let code = cli(&["inspect", &name], &description);
                *tally.cli_exits.entry(code).or_default() += 1;
            }
            if case % (CLI_EVERY * 10) == 0 {
                let code = cli(&["list"], &description);
                *tally.cli_exits.entry(code).or_default() += 1;
            }
        }

        eprintln!(
            "{tag}: {CASES} mutations: opened {}, open errors {:?}, operations ok {}, \
             operation errors {:?}, CLI exit codes {:?}",
            tally.opened, tally.open_errors, tally.op_ok, tally.op_errors, tally.cli_exits
        );
    }
    eprintln!("corrupted segments: {:?}", started.elapsed());
}

/// Truncated objects are refused at open, by the library and by the CLI. Below
/// `HEADER_BYTES` an opener first waits a bounded time for a creator to size the
/// object, so every size runs on its own thread.
#[test]
fn truncated_objects_are_refused() {
    let pid = std::process::id();
    let mut names = Vec::new();
    let mut threads = Vec::new();
    for kind in [LaneKind::Stream, LaneKind::Queue, LaneKind::Topic] {
        let base = format!("hostile-{pid}-{kind:?}-truncated").to_lowercase();
        names.push(base.clone());
        let bytes = original(kind, &base);
        let at = 8 * field::SEGMENT_BYTES;
        let declared = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap()) as usize;
        assert_eq!(declared, bytes.len());
        for size in [0, 100, HEADER_BYTES - 1, HEADER_BYTES, declared - 8] {
            let name = format!("{base}-{size}");
            names.push(name.clone());
            write_object(&name, &bytes[..size]);
            threads.push(std::thread::spawn(move || {
                let result = match kind {
                    LaneKind::Stream => StreamReader::open(&name).map(drop),
                    LaneKind::Queue => QueueConsumer::open(&name).map(drop),
                    LaneKind::Topic => {
                        TopicSubscriber::open(&name, SubscribeOptions::lossless()).map(drop)
                    }
                };
                let case = format!("{kind:?} truncated to {size} bytes");
                if size < HEADER_BYTES {
                    assert!(
                        matches!(result, Err(LaneError::Header { .. })),
                        "{case}: {result:?}"
                    );
                } else {
                    // A whole, valid header over too few bytes: the size it implies is
                    // checked before anything beyond the header is touched.
                    assert!(
                        matches!(
                            result,
                            Err(LaneError::Truncated { size: found, needed, .. })
                                if found == size as u64 && needed == declared as u64
                        ),
                        "{case}: {result:?}"
                    );
                }
                assert_eq!(cli(&["inspect", &name], &case), 1, "{case}: inspect");
                variant(&result.unwrap_err())
            }));
        }
    }
    let _guard = Unlink(names);
    let mut outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for thread in threads {
        *outcomes.entry(thread.join().unwrap()).or_default() += 1;
    }
    eprintln!("truncated objects: open errors {outcomes:?}");
}

/// A header whose ready word is not `READY` is refused with a typed error once the
/// opener's bounded wait for the creator ends (one case: the wait takes seconds).
#[test]
fn unready_segment_is_refused() {
    let name = format!("hostile-{}-unready", std::process::id());
    let copy = format!("{name}-copy");
    let _guard = Unlink(vec![name.clone(), copy.clone()]);
    let mut bytes = original(LaneKind::Stream, &name);
    bytes[256..264].copy_from_slice(&2u64.to_le_bytes());
    write_object(&copy, &bytes);
    let started = Instant::now();
    let result = StreamReader::open(&copy);
    assert!(
        matches!(result, Err(LaneError::Header { .. })),
        "unready header: {result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

// ---------------------------------------------------------------------------------
// A misbehaving peer.

/// The child process's entry point: without `TENSORLANE_HOSTILE_ROLE`, an empty test.
#[test]
fn hostile_child_entry() {
    let Ok(role) = std::env::var(ROLE_VAR) else {
        return;
    };
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes plain integers and only sets the signal
    // this process receives when the thread that spawned it exits.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
    let lane = std::env::var(LANE_VAR).expect("lane name");
    // Ends libtest's "test hostile_child_entry ... " line.
    println!();
    let deadline = Instant::now() + RUN_FOR;
    let mut ok = 0u64;
    let mut bad_payloads = 0u64;
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut count = |e: LaneError| *errors.entry(variant(&e)).or_default() += 1;
    match role.as_str() {
        "publisher" => {
            let mut publisher = None;
            let mut frame = 0u64;
            while Instant::now() < deadline {
                let Some(p) = publisher.as_mut() else {
                    match TopicPublisher::take_over(&lane) {
                        Ok(p) => publisher = Some(p),
                        Err(e) => {
                            count(e);
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    }
                    continue;
                };
                frame += 1;
                let tensor = payload(frame);
                match p.publish_elements_timeout(&tensor, Duration::from_millis(10)) {
                    Ok(_) => ok += 1,
                    Err(e) => {
                        count(e);
                        std::thread::sleep(Duration::from_micros(200));
                    }
                }
            }
        }
        "lossless" | "lossy" => {
            let options = if role == "lossless" {
                SubscribeOptions::lossless()
            } else {
                SubscribeOptions::lossy(4)
            };
            let mut subscriber = None;
            let mut tensor = [0u64; 8];
            while Instant::now() < deadline {
                let Some(s) = subscriber.as_mut() else {
                    match TopicSubscriber::open(&lane, options) {
                        Ok(s) => subscriber = Some(s),
                        Err(e) => {
                            count(e);
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    }
                    continue;
                };
                let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut tensor);
                match s.recv_timeout(bytes, Duration::from_millis(20)) {
                    Ok(_) => {
                        ok += 1;
                        // A damaged stamp or length can let a torn copy through.
                        if tensor != payload(tensor[0]) {
                            bad_payloads += 1;
                        }
                    }
                    Err(LaneError::Timeout) => count(LaneError::Timeout),
                    Err(e) => {
                        count(e);
                        // Rejoin: the subscription may be gone or its entry damaged.
                        subscriber = None;
                    }
                }
            }
        }
        other => panic!("unknown role {other}"),
    }
    println!("{MARK}{role}: ok {ok}, bad payloads {bad_payloads}, errors {errors:?}");
    std::io::stdout().flush().unwrap();
    std::process::exit(0);
}

/// Item `k` of the peer test: word 0 is `k`, word `j > 0` is `SALT ^ (k << 24) ^ j`.
fn payload(k: u64) -> [u64; 8] {
    std::array::from_fn(|j| {
        if j == 0 {
            k
        } else {
            SALT ^ (k << 24) ^ j as u64
        }
    })
}

fn spawn_child(role: &str, lane: &str) -> Child {
    Command::new(std::env::current_exe().expect("path of the test binary"))
        .args([
            "--exact",
            "hostile_child_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(ROLE_VAR, role)
        .env(LANE_VAR, lane)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawning child {role}: {e}"))
}

/// Kills the children still running when dropped (a failing test).
struct Children(Vec<(String, Child)>);

impl Drop for Children {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

#[test]
fn misbehaving_peer_cannot_crash_well_behaved_processes() {
    let lane = format!("hostile-peer-{}", std::process::id());
    let _guard = Unlink(vec![lane.clone()]);
    let spec = TensorSpec::new(DType::U64, &[8]).unwrap();
    // Created here and handed over, so that every child finds the lane.
    drop(TopicPublisher::create(&lane, &spec, 8, 4).unwrap());

    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(object_path(&lane))
        .unwrap();
    // SAFETY: the mapping is only ever accessed through `AtomicU64` views below,
    // because other processes write the same memory concurrently.
    let map = unsafe { memmap2::MmapMut::map_mut(&file) }.unwrap();
    let words = {
        let bytes: &[u8] = &map;
        Words::new(LaneKind::Topic, bytes)
    };
    assert_eq!(map.as_ptr() as usize % 8, 0);
    // SAFETY: the mapping is page-aligned, `map.len() / 8` words long and lives until
    // the end of this test; `AtomicU64` has the size and alignment of `u64`, and every
    // access from here on (ours and the other processes') is atomic.
    let shared: &[AtomicU64] =
        unsafe { std::slice::from_raw_parts(map.as_ptr().cast::<AtomicU64>(), map.len() / 8) };

    let mut children = Children(
        ["lossless", "lossy", "publisher"]
            .iter()
            .map(|role| (role.to_string(), spawn_child(role, &lane)))
            .collect(),
    );

    // The targets: tail, epoch, producer claim, subscriber entries, slot stamps and
    // lengths.
    let mut targets = words.control_fields(LaneKind::Topic);
    for i in 0..words.entries {
        targets.extend((0..6).map(|w| words.body + 16 * i + w));
    }
    for i in 0..words.count {
        targets.extend([
            words.slots + words.stride * i,
            words.slots + words.stride * i + 1,
        ]);
    }

    let mut rng = Rng(0xdead_beef_cafe_f00d);
    let started = Instant::now();
    let mut writes = 0u64;
    // Let the children start before damaging anything.
    std::thread::sleep(Duration::from_millis(300));
    loop {
        let running = children
            .0
            .iter_mut()
            .any(|(_, c)| matches!(c.try_wait(), Ok(None)));
        if !running {
            break;
        }
        assert!(
            started.elapsed() < CHILD_BOUND,
            "children still running after {CHILD_BOUND:?}"
        );
        if started.elapsed() < RUN_FOR + Duration::from_millis(500) {
            let word = &shared[targets[rng.below(targets.len())]];
            let old = word.load(Ordering::Relaxed);
            let new = match rng.below(4) {
                0 => old ^ (1 << rng.below(64)),
                1 => rng.next(),
                2 => old.wrapping_add(rng.next() % 16),
                _ => [0, 1, u64::MAX, 1 << 63][rng.below(4)],
            };
            word.store(new, Ordering::Relaxed);
            writes += 1;
            std::thread::sleep(Duration::from_micros(500));
            // Half of the damage is transient.
            if rng.below(2) == 0 {
                let _ = word.compare_exchange(new, old, Ordering::Relaxed, Ordering::Relaxed);
            }
        } else {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    eprintln!(
        "misbehaving peer: {writes} hostile writes in {:?}",
        started.elapsed()
    );
    for (role, child) in &mut children.0 {
        let status = child.wait().unwrap();
        let mut stdout = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        assert!(
            status.signal().is_none(),
            "{role} died by signal {:?}:\n{stderr}",
            status.signal()
        );
        assert_eq!(status.code(), Some(0), "{role} failed:\n{stdout}\n{stderr}");
        let summary = stdout
            .lines()
            .find_map(|l| l.strip_prefix(MARK))
            .unwrap_or_else(|| panic!("{role} printed no summary:\n{stdout}"));
        eprintln!("  {summary}");
    }
}
