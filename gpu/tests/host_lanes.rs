//! The GPU-lane protocol across real processes, on the host backend (no GPU needed).
//!
//! Each test runs the writer in the test process and readers in child processes (the
//! test binary re-executed with `TENSORLANE_GPU_ROLE` set; see [`child_entry`]), or the
//! other way round, over real shm lanes, memfd slots passed by `SCM_RIGHTS` and the
//! writer's hand-off socket. Tests run with the backend inline and in delayed mode,
//! where every copy is still in flight when its record is published, as an
//! asynchronous GPU copy is.
//!
//! Every tensor checks itself: word `j` of write `k` is `SALT ^ (k << 24) ^ j` (`k`
//! is a stream's sequence or a topic's position). Readers check every word of every
//! tensor they get and report `torn` (any word wrong: stale, torn or zero) and the
//! sequences they saw.
//!
//! Crashes: a writer killed with its copy in flight (readers get `WriterGone`), and a
//! lossless subscriber killed while it holds the publisher back (evicted; the
//! publisher resumes).
//!
//! Canaries: a writer that publishes a record before recording the slot's event (the
//! "notify before the copy finished" bug) and a reader that copies without waiting on
//! the event are built from the crate's public pieces; in delayed mode the same checks
//! must catch both.
#![cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]

mod common;

use common::{fill, unlink, whole, Cleanup, SALT};

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use tensorlane_gpu::backend::{Backend, SlotReader, SlotWriter};
use tensorlane_gpu::handoff::{self, Server};
use tensorlane_gpu::lane::record_spec;
use tensorlane_gpu::table::{LaneTable, Record, RECORD_WORDS};
use tensorlane_gpu::{
    mirror_name, BackendKind, GpuError, GpuLaneOptions, GpuStreamReader, GpuStreamWriter,
    GpuTopicPublisher, GpuTopicSubscriber, HostBackend,
};
use tensorlane_model::{
    check_lossless_complete, check_lossy, check_register_reader, Delivery, RegisterObservation,
};
use tensorlane_shm::{
    DType, Kind, LaneError, StreamReader, StreamWriter, SubscribeOptions, TensorSpec,
    TopicSubscriber,
};

const ROLE: &str = "TENSORLANE_GPU_ROLE";
const LANE: &str = "TENSORLANE_GPU_LANE";
const ARGS: &str = "TENSORLANE_GPU_ARGS";

/// Words of the test tensors (16 KiB).
const WORDS: usize = 2048;

fn spec() -> TensorSpec {
    TensorSpec::new(DType::U64, &[WORDS as u64]).unwrap()
}

fn backend_from(args: &BTreeMap<String, u64>) -> HostBackend {
    match args.get("delay_us") {
        Some(&us) if us > 0 => HostBackend::delayed(Duration::from_micros(us)),
        _ => HostBackend::new(),
    }
}

fn unique(tag: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "gpu-test-{}-{tag}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

// ---------------------------------------------------------------------------------
// Children

/// Runs a child role when `TENSORLANE_GPU_ROLE` is set; does nothing otherwise.
#[test]
fn child_entry() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    // SAFETY: prctl(PR_SET_PDEATHSIG) has no memory-safety preconditions.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    let lane = std::env::var(LANE).unwrap();
    let args: BTreeMap<String, u64> = std::env::var(ARGS)
        .unwrap_or_default()
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
        .collect();
    let result = match role.as_str() {
        "stream-reader" => stream_reader(&lane, &args),
        "stream-view" => stream_viewer(&lane, &args),
        "stream-mirror" => stream_mirror_reader(&lane, &args),
        "unwaiting-reader" => unwaiting_reader(&lane, &args),
        "topic-subscriber" => topic_subscriber(&lane, &args),
        "topic-mirror" => topic_mirror_subscriber(&lane, &args),
        "slow-writer" => slow_writer(&lane, &args),
        "racing-viewer" => racing_viewer(&lane, &args),
        "idle-subscriber" => idle_subscriber(&lane),
        "stepped-writer" => stepped_writer(&lane),
        "stepped-publisher" => stepped_publisher(&lane),
        other => Err(format!("unknown role {other}")),
    };
    match result {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            println!("#tl# error {e}");
            std::process::exit(2);
        }
    }
}

fn say(line: &str) {
    println!("#tl# {line}");
}

/// Tallies of a reader: tensors read, torn ones, sequences out of order, and the
/// history (sequence or position, missed count, value) for the model's checkers.
#[derive(Default)]
struct Tally {
    read: u64,
    torn: u64,
    backwards: u64,
    last: u64,
    overwritten: u64,
    history: Vec<(u64, u64, u64)>,
}

/// The write a tensor is (`k` of its first word), or `u64::MAX` if any word disagrees.
fn value_of(data: &[u8]) -> u64 {
    let k = (u64::from_le_bytes(data[..8].try_into().unwrap()) ^ SALT) >> 24;
    if whole(k, data) {
        k
    } else {
        u64::MAX
    }
}

impl Tally {
    fn see(&mut self, k: u64, missed: u64, data: &[u8]) {
        self.read += 1;
        if !whole(k, data) {
            self.torn += 1;
        }
        if k < self.last {
            self.backwards += 1;
        }
        self.last = k;
        self.history.push((k, missed, value_of(data)));
    }

    fn report(&self) {
        for (k, missed, value) in &self.history {
            say(&format!("h {k} {missed} {value}"));
        }
        say(&format!(
            "tally read={} torn={} backwards={} last={} overwritten={}",
            self.read, self.torn, self.backwards, self.last, self.overwritten
        ));
    }
}

fn stream_reader(lane: &str, args: &BTreeMap<String, u64>) -> Result<(), String> {
    let backend = backend_from(args);
    let mut reader = GpuStreamReader::open(&backend, lane).map_err(|e| e.to_string())?;
    say("ready");
    let total = args["writes"];
    let wait = args.get("wait") == Some(&1);
    let mut out = vec![0u8; WORDS * 8];
    let mut tally = Tally::default();
    let deadline = Instant::now() + Duration::from_secs(30);
    while tally.last < total && Instant::now() < deadline {
        let frame = if wait {
            match reader.read_new_timeout(&mut out, Duration::from_secs(5)) {
                Ok(frame) => Some(frame),
                Err(GpuError::Overwritten) => {
                    tally.overwritten += 1;
                    None
                }
                Err(e) => return Err(e.to_string()),
            }
        } else {
            match reader.try_read_new(&mut out) {
                Ok(frame) => Some(frame),
                Err(GpuError::Empty) => None,
                Err(GpuError::Overwritten) => {
                    tally.overwritten += 1;
                    None
                }
                Err(e) => return Err(e.to_string()),
            }
        };
        if let Some(frame) = frame {
            tally.see(frame.seq, frame.missed, &out);
        }
    }
    tally.report();
    Ok(())
}

fn stream_viewer(lane: &str, args: &BTreeMap<String, u64>) -> Result<(), String> {
    let backend = backend_from(args);
    let mut reader = GpuStreamReader::open(&backend, lane).map_err(|e| e.to_string())?;
    say("ready");
    let total = args["writes"];
    let mut tally = Tally::default();
    let mut copy = vec![0u8; WORDS * 8];
    let deadline = Instant::now() + Duration::from_secs(30);
    while tally.last < total && Instant::now() < deadline {
        let view = match reader.view() {
            Ok(view) => view,
            Err(GpuError::Empty) => continue,
            Err(e) => return Err(e.to_string()),
        };
        let words = view.slots().slot_words(view.slot()).ok_or("no slot")?;
        words.load_bytes(&mut copy);
        match view.release() {
            // Only a view that stayed whole counts; a torn one must have said so.
            Ok(frame) => tally.see(frame.seq, frame.missed, &copy),
            Err(GpuError::Overwritten) => tally.overwritten += 1,
            Err(e) => return Err(e.to_string()),
        }
    }
    tally.report();
    Ok(())
}

fn stream_mirror_reader(lane: &str, args: &BTreeMap<String, u64>) -> Result<(), String> {
    // A process without a GPU: the plain shm reader of `<name>.cpu`.
    let mut reader =
        StreamReader::open_expect(&mirror_name(lane), &spec()).map_err(|e| e.to_string())?;
    say("ready");
    let total = args["writes"];
    let mut out = vec![0u8; WORDS * 8];
    let mut tally = Tally::default();
    let deadline = Instant::now() + Duration::from_secs(30);
    while tally.last < total && Instant::now() < deadline {
        if let Ok(frame) = reader.read_new_timeout(&mut out, Duration::from_secs(5)) {
            tally.see(frame.seq, frame.missed, &out);
        }
    }
    tally.report();
    Ok(())
}

/// Canary: a reader that copies a slot as soon as it sees the record, without waiting
/// on the slot's event.
fn unwaiting_reader(lane: &str, args: &BTreeMap<String, u64>) -> Result<(), String> {
    let backend = HostBackend::new();
    let mut records = StreamReader::open_expect(lane, &record_spec()).map_err(|e| e.to_string())?;
    let pid = records.info().creator_pid as u32;
    let (bytes, fds) =
        handoff::fetch(lane, pid, Duration::from_secs(2)).map_err(|e| e.to_string())?;
    let table = LaneTable::decode(&bytes).map_err(|e| e.to_string())?;
    let export = tensorlane_gpu::Export {
        blob: Vec::new(),
        fds,
    };
    let mut slots = backend
        .import(
            BackendKind::Host,
            table.device,
            table.slots,
            table.spec.byte_len(),
            export,
        )
        .map_err(|e| e.to_string())?;
    say("ready");
    let total = args["writes"];
    let mut record = [0u8; RECORD_WORDS * 8];
    let mut out = vec![0u8; WORDS * 8];
    let mut tally = Tally::default();
    let deadline = Instant::now() + Duration::from_secs(30);
    while tally.last < total && Instant::now() < deadline {
        if let Ok(frame) = records.read_new_timeout(&mut record, Duration::from_secs(5)) {
            let slot = Record::check(&record, frame.seq, &table, table.checksum())
                .map_err(|e| e.to_string())?;
            slots
                .copy_to_host(slot, &mut out)
                .map_err(|e| e.to_string())?;
            tally.see(frame.seq, frame.missed, &out);
        }
    }
    tally.report();
    Ok(())
}

fn topic_subscriber(lane: &str, args: &BTreeMap<String, u64>) -> Result<(), String> {
    let backend = backend_from(args);
    let options = match args.get("lossy") {
        Some(&lag) if lag > 0 => SubscribeOptions::lossy(lag),
        _ => SubscribeOptions::lossless(),
    };
    let views = args.get("view") == Some(&1);
    let mut subscriber =
        GpuTopicSubscriber::open(&backend, lane, options).map_err(|e| e.to_string())?;
    let (join_head, lost) = (subscriber.head(), subscriber.lost_at_join());
    say("ready");
    let total = args["items"];
    let mut out = vec![0u8; WORDS * 8];
    let mut tally = Tally::default();
    let mut positions = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while positions.last().is_none_or(|&p| p + 1 < total) && Instant::now() < deadline {
        let timeout = Duration::from_secs(5);
        let frame = if views {
            let view = match subscriber.recv_view_timeout(timeout) {
                Ok(view) => view,
                Err(e) => return Err(e.to_string()),
            };
            let words = view.slots().slot_words(view.slot()).ok_or("no slot")?;
            words.load_bytes(&mut out);
            match view.release() {
                Ok(frame) => frame,
                Err(GpuError::Overwritten) => {
                    tally.overwritten += 1;
                    continue;
                }
                Err(e) => return Err(e.to_string()),
            }
        } else {
            subscriber
                .recv_timeout(&mut out, timeout)
                .map_err(|e| e.to_string())?
        };
        tally.see(frame.seq - 1, frame.missed, &out);
        positions.push(frame.seq - 1);
    }
    tally.report();
    let gaps = positions.windows(2).filter(|w| w[1] != w[0] + 1).count();
    say(&format!(
        "topic first={} count={} gaps={} missed={} join_head={join_head} lost={lost}",
        positions.first().copied().unwrap_or(u64::MAX),
        positions.len(),
        gaps,
        subscriber.missed()
    ));
    Ok(())
}

fn topic_mirror_subscriber(lane: &str, args: &BTreeMap<String, u64>) -> Result<(), String> {
    let mut subscriber =
        TopicSubscriber::open_expect(&mirror_name(lane), &spec(), SubscribeOptions::lossless())
            .map_err(|e| e.to_string())?;
    let (join_head, lost) = (subscriber.head(), subscriber.lost_at_join());
    say("ready");
    let total = args["items"];
    let mut out = vec![0u8; WORDS * 8];
    let mut tally = Tally::default();
    let mut count = 0;
    while count < total {
        let frame = subscriber
            .recv_timeout(&mut out, Duration::from_secs(5))
            .map_err(|e| e.to_string())?;
        tally.see(frame.seq - 1, frame.missed, &out);
        count += 1;
    }
    tally.report();
    say(&format!("topic join_head={join_head} lost={lost}"));
    Ok(())
}

/// Views the latest write for `ms` milliseconds while the writer races it; with
/// `check=1` counts only views that `release` says stayed whole (the real protocol),
/// with `check=0` trusts every view (canary: the reader that skips the re-check).
fn racing_viewer(lane: &str, args: &BTreeMap<String, u64>) -> Result<(), String> {
    let backend = HostBackend::new();
    let mut reader = GpuStreamReader::open(&backend, lane).map_err(|e| e.to_string())?;
    say("ready");
    let check = args["check"] == 1;
    let until = Instant::now() + Duration::from_millis(args["ms"]);
    let mut copy = vec![0u8; WORDS * 8];
    let mut tally = Tally::default();
    while Instant::now() < until {
        let view = match reader.view() {
            Ok(view) => view,
            Err(GpuError::Empty) => continue,
            Err(e) => return Err(e.to_string()),
        };
        let words = view.slots().slot_words(view.slot()).ok_or("no slot")?;
        words.load_bytes(&mut copy);
        let seq = view.frame().seq;
        if !check {
            tally.read += 1;
            tally.torn += u64::from(!whole(seq, &copy));
            continue;
        }
        match view.release() {
            Ok(frame) => {
                tally.read += 1;
                tally.torn += u64::from(!whole(frame.seq, &copy));
            }
            Err(GpuError::Overwritten) => tally.overwritten += 1,
            Err(e) => return Err(e.to_string()),
        }
    }
    say(&format!(
        "tally read={} torn={} overwritten={}",
        tally.read, tally.torn, tally.overwritten
    ));
    Ok(())
}

/// A lossless subscriber that never receives: it holds the publisher back until it
/// is killed.
fn idle_subscriber(lane: &str) -> Result<(), String> {
    let backend = HostBackend::new();
    let _subscriber = GpuTopicSubscriber::open(&backend, lane, SubscribeOptions::lossless())
        .map_err(|e| e.to_string())?;
    say("ready");
    std::thread::sleep(Duration::from_secs(30));
    Ok(())
}

/// A stream writer that writes one tensor (the next sequence's) per `write` line
/// from the parent and reports `written <seq>`.
fn stepped_writer(lane: &str) -> Result<(), String> {
    let backend = HostBackend::new();
    let mut writer = GpuStreamWriter::create(&backend, lane, &spec(), 3, GpuLaneOptions::default())
        .map_err(|e| e.to_string())?;
    say("ready");
    let mut data = vec![0u8; WORDS * 8];
    let mut seq = 0;
    for line in std::io::stdin().lines().map_while(Result::ok) {
        if line != "write" {
            break;
        }
        seq += 1;
        fill(seq, &mut data);
        let written = writer.write(&data).map_err(|e| e.to_string())?;
        writer.synchronize().map_err(|e| e.to_string())?;
        say(&format!("written {written}"));
    }
    Ok(())
}

/// A topic publisher (capacity 8) that publishes as many items as each line from the
/// parent says and reports `published <last seq>`; it waits for the next line (or to
/// be killed) after each batch.
fn stepped_publisher(lane: &str) -> Result<(), String> {
    let backend = HostBackend::new();
    let mut publisher =
        GpuTopicPublisher::create(&backend, lane, &spec(), 8, 4, GpuLaneOptions::default())
            .map_err(|e| e.to_string())?;
    say("ready");
    let mut data = vec![0u8; WORDS * 8];
    let mut seq = 0;
    for line in std::io::stdin().lines().map_while(Result::ok) {
        let count: u64 = line.trim().parse().map_err(|_| format!("count {line:?}"))?;
        for _ in 0..count {
            fill(seq, &mut data);
            seq = publisher
                .publish_timeout(&data, Duration::from_secs(10))
                .map_err(|e| e.to_string())?;
        }
        publisher.synchronize().map_err(|e| e.to_string())?;
        say(&format!("published {seq}"));
    }
    Ok(())
}

/// A writer whose one copy takes `delay_us`: killed while it is in flight.
fn slow_writer(lane: &str, args: &BTreeMap<String, u64>) -> Result<(), String> {
    let backend = backend_from(args);
    let mut writer = GpuStreamWriter::create(&backend, lane, &spec(), 3, GpuLaneOptions::default())
        .map_err(|e| e.to_string())?;
    say("ready");
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let mut data = vec![0u8; WORDS * 8];
    fill(1, &mut data);
    writer.write(&data).map_err(|e| e.to_string())?;
    say("written");
    std::thread::sleep(Duration::from_secs(30));
    Ok(())
}

// ---------------------------------------------------------------------------------
// Parent side

/// What a child reported, one (sequence or position, missed, value) per item.
type History = Vec<(u64, u64, u64)>;

struct Kid {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Kid {
    fn spawn(role: &str, lane: &str, args: &str) -> Kid {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
            .env(ROLE, role)
            .env(LANE, lane)
            .env(ARGS, args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // libtest may have printed "test child_entry ... " on the same line.
                if let Some(at) = line.find("#tl# ") {
                    let _ = send.send(line[at + 5..].to_string());
                }
            }
        });
        Kid {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for a line starting with `prefix`.
    fn expect(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(line) => {
                    assert!(!line.starts_with("error"), "child: {line}");
                    self.seen.push(line);
                }
                Err(_) => {
                    let _ = self.child.kill();
                    panic!("no `{prefix}` line from the child (saw {:?})", self.seen);
                }
            }
        }
    }

    fn tell(&mut self, line: &str) {
        use std::io::Write;
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{line}").unwrap();
    }

    /// Waits for the child's `prefix` line and its exit; returns the line's values and
    /// the history (`h` lines) the child reported before it.
    fn finish(mut self, prefix: &str) -> (BTreeMap<String, u64>, History) {
        let line = self.expect(prefix);
        let status = self.child.wait().unwrap();
        assert!(status.success(), "child exited with {status}");
        let history = self
            .seen
            .iter()
            .filter_map(|l| l.strip_prefix("h "))
            .map(|l| {
                let v: Vec<u64> = l.split(' ').map(|x| x.parse().unwrap()).collect();
                (v[0], v[1], v[2])
            })
            .collect();
        (parse(&line), history)
    }
}

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn parse(line: &str) -> BTreeMap<String, u64> {
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.parse().unwrap()))
        .collect()
}

/// Writes `writes` self-checking tensors from a scratch buffer that is scribbled over
/// right after each write (a host source may be reused when `write` returns).
fn write_all<B: Backend>(writer: &mut GpuStreamWriter<B>, writes: u64, pace: Duration) {
    let mut data = vec![0u8; WORDS * 8];
    for k in 1..=writes {
        fill(k, &mut data);
        assert_eq!(writer.write(&data).unwrap(), k);
        data.fill(0xff);
        std::thread::sleep(pace);
    }
}

fn stream_case(delay_us: u64) {
    let name = unique("stream");
    let _cleanup = Cleanup(name.clone());
    let writes = 400;
    let backend = backend_from(&parse(&format!("delay_us={delay_us}")));
    let options = GpuLaneOptions::new().mirror(true);
    let mut writer = GpuStreamWriter::create(&backend, &name, &spec(), 3, options).unwrap();
    let args = format!("delay_us={delay_us},writes={writes}");
    let mut kids = vec![
        Kid::spawn("stream-reader", &name, &args),
        Kid::spawn("stream-reader", &name, &format!("{args},wait=1")),
        Kid::spawn("stream-view", &name, &args),
        Kid::spawn("stream-mirror", &name, &args),
    ];
    for kid in &mut kids {
        kid.expect("ready");
    }
    write_all(
        &mut writer,
        writes,
        Duration::from_micros(delay_us.max(50) * 2),
    );
    for (i, kid) in kids.into_iter().enumerate() {
        let (tally, history) = kid.finish("tally");
        assert_eq!(tally["torn"], 0, "child {i}: {tally:?}");
        assert_eq!(tally["last"], writes, "child {i}: {tally:?}");
        let observations: Vec<_> = history
            .iter()
            .map(|&(seq, missed, value)| RegisterObservation { seq, value, missed })
            .collect();
        assert!(!observations.is_empty(), "child {i}");
        if let Err(e) = check_register_reader(&observations, |seq, &value| value == seq) {
            panic!("child {i}: {e:?}");
        }
        println!("stream (delay {delay_us} us) child {i}: {tally:?}");
    }
    drop(writer);
    unlink(&name);
}

#[test]
fn stream_to_reader_processes_inline() {
    stream_case(0);
}

#[test]
fn stream_to_reader_processes_with_copies_in_flight() {
    stream_case(300);
}

fn topic_case(delay_us: u64) {
    let name = unique("topic");
    let _cleanup = Cleanup(name.clone());
    let items = 300u64;
    let backend = backend_from(&parse(&format!("delay_us={delay_us}")));
    let options = GpuLaneOptions::new().mirror(true);
    let mut publisher = GpuTopicPublisher::create(&backend, &name, &spec(), 8, 8, options).unwrap();
    let args = format!("delay_us={delay_us},items={items}");
    let mut kids = vec![
        Kid::spawn("topic-subscriber", &name, &args),
        Kid::spawn("topic-subscriber", &name, &format!("{args},view=1")),
        Kid::spawn("topic-subscriber", &name, &format!("{args},lossy=2")),
        Kid::spawn("topic-mirror", &name, &args),
    ];
    for kid in &mut kids {
        kid.expect("ready");
    }
    let mut data = vec![0u8; WORDS * 8];
    for position in 0..items {
        fill(position, &mut data);
        let published = publisher
            .publish_timeout(&data, Duration::from_secs(10))
            .unwrap();
        assert_eq!(published, position + 1);
        data.fill(0xff);
    }
    for (i, mut kid) in kids.into_iter().enumerate() {
        let tally = parse(&kid.expect("tally"));
        let (summary, history) = kid.finish("topic");
        assert_eq!(tally["torn"], 0, "child {i}: {tally:?}");
        assert_eq!(tally["last"], items - 1, "child {i}: {tally:?}");
        let deliveries: Vec<_> = history
            .iter()
            .map(|&(position, missed, value)| Delivery {
                position,
                value,
                missed,
            })
            .collect();
        let (join_head, lost) = (summary["join_head"], summary["lost"]);
        let ok = |position: u64, value: &u64| *value == position;
        let checked = if i == 2 {
            check_lossy(join_head, &deliveries, ok)
        } else {
            check_lossless_complete(join_head, lost, items, &deliveries, ok)
        };
        if let Err(e) = checked {
            panic!("child {i}: {e:?} ({summary:?})");
        }
        println!("topic (delay {delay_us} us) child {i}: {tally:?} {summary:?}");
    }
    drop(publisher);
    unlink(&name);
}

#[test]
fn topic_to_lossless_and_lossy_processes_inline() {
    topic_case(0);
}

#[test]
fn topic_to_lossless_and_lossy_processes_with_copies_in_flight() {
    topic_case(200);
}

/// Canary writer: publishes each record *before* recording the slot's event, as a
/// protocol that notifies before its copy finished would. Built from public pieces.
struct PublishBeforeRecordWriter {
    slots: tensorlane_gpu::HostWriter,
    records: StreamWriter,
    table: LaneTable,
    _server: Server,
}

impl PublishBeforeRecordWriter {
    fn create(backend: &HostBackend, name: &str) -> Self {
        let (slots, export) = backend.create(3, WORDS * 8).unwrap();
        let table = LaneTable {
            kind: Kind::Stream,
            backend: BackendKind::Host,
            device: backend.device(),
            spec: spec(),
            slots: 3,
            slot_bytes: WORDS * 8,
            mirror: false,
            blob: Vec::new(),
            fds: export.fds.len(),
            writer_pid: std::process::id(),
        };
        let server = Server::start(name, table.encode(), export.fds).unwrap();
        let records = StreamWriter::create(name, &record_spec(), 4).unwrap();
        PublishBeforeRecordWriter {
            slots,
            records,
            table,
            _server: server,
        }
    }

    fn write(&mut self, data: &[u8]) {
        let seq = self.records.next_seq();
        let slot = (seq % 3) as usize;
        self.slots.copy_from_host(slot, data).unwrap();
        let record = Record {
            slot: slot as u64,
            len: data.len() as u64,
            table: self.table.checksum(),
        };
        self.records.write(&record.encode()).unwrap();
        // The step out of order: the event is recorded after the record is out.
        std::thread::sleep(Duration::from_millis(1));
        self.slots.record(slot).unwrap();
    }
}

#[test]
fn canary_publishing_before_the_event_is_caught() {
    let name = unique("canary-writer");
    let _cleanup = Cleanup(name.clone());
    let backend = HostBackend::delayed(Duration::from_millis(3));
    let mut writer = PublishBeforeRecordWriter::create(&backend, &name);
    let writes = 30;
    let mut kid = Kid::spawn("stream-reader", &name, &format!("writes={writes},wait=1"));
    kid.expect("ready");
    let mut data = vec![0u8; WORDS * 8];
    for k in 1..=writes {
        fill(k, &mut data);
        writer.write(&data);
        std::thread::sleep(Duration::from_millis(10));
    }
    let (tally, _) = kid.finish("tally");
    println!("canary writer: {tally:?}");
    assert!(
        tally["torn"] > 0,
        "the broken writer went unnoticed: {tally:?}"
    );
    drop(writer);
    unlink(&name);
}

#[test]
fn canary_reading_without_waiting_on_the_event_is_caught() {
    let name = unique("canary-reader");
    let _cleanup = Cleanup(name.clone());
    let backend = HostBackend::delayed(Duration::from_millis(3));
    let mut writer =
        GpuStreamWriter::create(&backend, &name, &spec(), 3, GpuLaneOptions::default()).unwrap();
    let writes = 30;
    let mut kid = Kid::spawn("unwaiting-reader", &name, &format!("writes={writes}"));
    kid.expect("ready");
    write_all(&mut writer, writes, Duration::from_millis(10));
    let (tally, _) = kid.finish("tally");
    println!("canary reader: {tally:?}");
    assert!(
        tally["torn"] > 0,
        "the broken reader went unnoticed: {tally:?}"
    );
    // The same writer and timing with the real reader: nothing torn.
    drop(writer);
    unlink(&name);
}

#[test]
fn a_writer_killed_with_its_copy_in_flight_is_reported_gone() {
    let name = unique("killed");
    let _cleanup = Cleanup(name.clone());
    let mut kid = Kid::spawn("slow-writer", &name, "delay_us=3000000");
    kid.expect("ready");
    let backend = HostBackend::new();
    let mut reader =
        GpuStreamReader::open_with_timeout(&backend, &name, Duration::from_millis(500)).unwrap();
    kid.tell("go");
    kid.expect("written");
    kid.child.kill().unwrap();
    kid.child.wait().unwrap();
    let mut out = vec![0u8; WORDS * 8];
    let started = Instant::now();
    let result = reader.read(&mut out);
    assert!(matches!(result, Err(GpuError::WriterGone)), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    // Opening a lane whose writer is gone: nobody serves the slots.
    let again = GpuStreamReader::open(&backend, &name);
    assert!(matches!(again, Err(GpuError::Handoff(_))), "{again:?}");
    unlink(&name);
}

#[test]
fn errors_are_typed() {
    let backend = HostBackend::new();
    let name = unique("errors");
    let _cleanup = Cleanup(name.clone());
    let mut writer =
        GpuStreamWriter::create(&backend, &name, &spec(), 3, GpuLaneOptions::default()).unwrap();
    // The process that created a lane cannot open it.
    assert!(matches!(
        GpuStreamReader::open(&backend, &name),
        Err(GpuError::SameProcess)
    ));
    assert!(matches!(
        GpuTopicSubscriber::open(&backend, &name, SubscribeOptions::lossless()),
        Err(GpuError::Lane(LaneError::WrongKind { .. }))
    ));
    // Wrong sizes, in and out.
    assert!(matches!(
        writer.write(&[0u8; 8]),
        Err(GpuError::WrongSize {
            expected: 16384,
            found: 8
        })
    ));
    // A second lane of the same name.
    assert!(matches!(
        GpuStreamWriter::create(&backend, &name, &spec(), 3, GpuLaneOptions::default()),
        Err(GpuError::Lane(LaneError::Exists(_))) | Err(GpuError::Handoff(_))
    ));
    // Slot counts out of range.
    for slots in [0, 1, 251] {
        assert!(matches!(
            GpuStreamWriter::create(
                &backend,
                &unique("slots"),
                &spec(),
                slots,
                GpuLaneOptions::default()
            ),
            Err(GpuError::Unsupported(_))
        ));
    }
    drop(writer);
    unlink(&name);
    // An ordinary shm stream is not a GPU lane.
    let plain = unique("plain");
    let _plain_cleanup = Cleanup(plain.clone());
    let _shm = StreamWriter::create(&plain, &spec(), 2).unwrap();
    assert!(matches!(
        GpuStreamReader::open(&backend, &plain),
        Err(GpuError::Lane(LaneError::WrongSpec { .. }))
    ));
    unlink(&plain);
    assert!(matches!(
        GpuStreamReader::open(&backend, &unique("missing")),
        Err(GpuError::Lane(LaneError::NotFound(_)))
    ));
    // Host slots refuse descriptors that do not match the table.
    let (_, export) = backend.create(2, 64).unwrap();
    let fds = export.fds.into_iter().take(2).collect();
    let short = tensorlane_gpu::Export {
        blob: Vec::new(),
        fds,
    };
    assert!(matches!(
        backend.import(BackendKind::Host, backend.device(), 2, 64, short),
        Err(GpuError::Corrupt(_))
    ));
    let (_, export) = backend.create(2, 64).unwrap();
    assert!(matches!(
        backend.import(BackendKind::CudaVmm, backend.device(), 2, 64, export),
        Err(GpuError::WrongBackend { .. })
    ));
    let (_, export) = backend.create(2, 64).unwrap();
    assert!(matches!(
        backend.import(BackendKind::Host, backend.device(), 2, 1 << 20, export),
        Err(GpuError::Corrupt(_))
    ));
}

/// A writer lapping its readers as fast as it can (two slots): a viewer that trusts a
/// view without `release`'s re-check returns torn tensors (canary), the real one
/// reports `Overwritten` instead and never a torn tensor.
#[test]
fn canary_skipping_the_recheck_is_caught() {
    let name = unique("racing");
    let _cleanup = Cleanup(name.clone());
    let backend = HostBackend::new();
    let mut writer =
        GpuStreamWriter::create(&backend, &name, &spec(), 2, GpuLaneOptions::default()).unwrap();
    let mut kids = [
        Kid::spawn("racing-viewer", &name, "check=0,ms=1500"),
        Kid::spawn("racing-viewer", &name, "check=1,ms=1500"),
    ];
    for kid in &mut kids {
        kid.expect("ready");
    }
    let mut data = vec![0u8; WORDS * 8];
    let until = Instant::now() + Duration::from_millis(2000);
    let mut k = 0;
    while Instant::now() < until {
        k += 1;
        fill(k, &mut data);
        writer.write(&data).unwrap();
    }
    let [unchecked, checked] = kids;
    let (unchecked, _) = unchecked.finish("tally");
    let (checked, _) = checked.finish("tally");
    println!("{k} writes; unchecked viewer {unchecked:?}; checked viewer {checked:?}");
    assert!(
        unchecked["torn"] > 0,
        "the viewer without the re-check went unnoticed: {unchecked:?}"
    );
    assert_eq!(checked["torn"], 0, "{checked:?}");
    assert!(
        checked["read"] > 0 && checked["overwritten"] > 0,
        "{checked:?}"
    );
    drop(writer);
    unlink(&name);
}

/// A lossless GPU-topic subscriber killed while it holds the publisher back: the
/// publisher evicts it and carries on.
#[test]
fn a_killed_lossless_subscriber_is_evicted() {
    let name = unique("evict");
    let _cleanup = Cleanup(name.clone());
    let backend = HostBackend::new();
    let mut publisher =
        GpuTopicPublisher::create(&backend, &name, &spec(), 4, 4, GpuLaneOptions::default())
            .unwrap();
    let mut kid = Kid::spawn("idle-subscriber", &name, "");
    kid.expect("ready");
    let mut data = vec![0u8; WORDS * 8];
    for position in 0..4 {
        fill(position, &mut data);
        publisher.try_publish(&data).unwrap();
    }
    // The ring is full and its lossless subscriber alive: the publisher waits.
    assert!(matches!(publisher.try_publish(&data), Err(GpuError::Full)));
    assert!(matches!(
        publisher.publish_timeout(&data, Duration::from_millis(50)),
        Err(GpuError::Timeout)
    ));
    assert!(matches!(
        publisher.publish_deadline(&data, Instant::now() + Duration::from_millis(50)),
        Err(GpuError::Timeout)
    ));
    kid.child.kill().unwrap();
    kid.child.wait().unwrap();
    let started = Instant::now();
    for position in 4..12 {
        fill(position, &mut data);
        publisher
            .publish_timeout(&data, Duration::from_secs(5))
            .unwrap();
    }
    assert_eq!(publisher.evicted(), 1);
    println!("publisher resumed {:?} after the kill", started.elapsed());
    drop(publisher);
    unlink(&name);
}

/// Every read of a GPU stream in the lane shape: `read`, `view` and `try_read_new`
/// give `Empty` before the first write, the timed forms `Timeout`; the first write
/// has seq 1; `read_new` returns only newer writes and counts the ones missed; the
/// writer's death ends a waiting `read_new_timeout` with `WriterGone`.
#[test]
fn stream_reads_are_empty_timed_out_or_new() {
    let name = unique("shape");
    let _cleanup = Cleanup(name.clone());
    let mut kid = Kid::spawn("stepped-writer", &name, "");
    kid.expect("ready");
    let backend = HostBackend::new();
    let mut reader = GpuStreamReader::open(&backend, &name).unwrap();
    let mut out = vec![0u8; WORDS * 8];
    assert!(matches!(reader.read(&mut out), Err(GpuError::Empty)));
    assert!(matches!(reader.view(), Err(GpuError::Empty)));
    assert!(matches!(
        reader.try_read_new(&mut out),
        Err(GpuError::Empty)
    ));
    let started = Instant::now();
    assert!(matches!(
        reader.read_new_timeout(&mut out, Duration::from_millis(50)),
        Err(GpuError::Timeout)
    ));
    assert!(started.elapsed() >= Duration::from_millis(50));
    assert!(matches!(
        reader.read_new_deadline(&mut out, Instant::now() + Duration::from_millis(20)),
        Err(GpuError::Timeout)
    ));
    assert!(matches!(
        reader.read_new_deadline(&mut out, Instant::now() - Duration::from_millis(1)),
        Err(GpuError::Timeout)
    ));

    kid.tell("write");
    assert_eq!(kid.expect("written"), "written 1");
    let frame = reader.read_new(&mut out).unwrap();
    assert_eq!((frame.seq, frame.missed), (1, 0));
    assert!(whole(1, &out));
    assert!(matches!(
        reader.try_read_new(&mut out),
        Err(GpuError::Empty)
    ));
    assert_eq!(reader.read(&mut out).unwrap().seq, 1);
    let view = reader.view().unwrap();
    assert_eq!(view.frame().seq, 1);
    assert_eq!(view.release().unwrap().seq, 1);

    kid.tell("write");
    kid.expect("written");
    kid.tell("write");
    kid.expect("written");
    let frame = reader.try_read_new(&mut out).unwrap();
    assert_eq!((frame.seq, frame.missed), (3, 1));
    assert!(whole(3, &out));

    // A reader blocked in `read_new_deadline` gets the next write.
    let deadline = Instant::now() + Duration::from_secs(10);
    kid.tell("write");
    let frame = reader.read_new_deadline(&mut out, deadline).unwrap();
    assert_eq!((frame.seq, frame.missed), (4, 0));
    assert!(whole(4, &out));

    kid.child.kill().unwrap();
    kid.child.wait().unwrap();
    let started = Instant::now();
    let gone = reader.read_new_timeout(&mut out, Duration::from_secs(10));
    assert!(matches!(gone, Err(GpuError::WriterGone)), "{gone:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    unlink(&name);
}

/// Every receive of a GPU topic in the lane shape (`Empty`, `Timeout`, seq from 1),
/// and end of stream: a publisher killed (SIGKILL) with items still in the ring; the
/// subscriber receives every item in order, whole, then gets `WriterGone` promptly,
/// from a receive of each form that waits.
#[test]
fn a_gpu_topic_whose_publisher_was_killed_is_drained_then_ends() {
    let name = unique("eos");
    let _cleanup = Cleanup(name.clone());
    let mut kid = Kid::spawn("stepped-publisher", &name, "");
    kid.expect("ready");
    let backend = HostBackend::new();
    let mut subscriber =
        GpuTopicSubscriber::open(&backend, &name, SubscribeOptions::lossless()).unwrap();
    let mut out = vec![0u8; WORDS * 8];
    assert!(matches!(
        subscriber.try_recv(&mut out),
        Err(GpuError::Empty)
    ));
    assert!(matches!(subscriber.try_recv_view(), Err(GpuError::Empty)));
    assert!(matches!(
        subscriber.recv_timeout(&mut out, Duration::from_millis(50)),
        Err(GpuError::Timeout)
    ));
    assert!(matches!(
        subscriber.recv_deadline(&mut out, Instant::now() + Duration::from_millis(20)),
        Err(GpuError::Timeout)
    ));

    kid.tell("2");
    assert_eq!(kid.expect("published"), "published 2");
    let frame = subscriber.recv(&mut out).unwrap();
    assert_eq!((frame.seq, frame.missed), (1, 0));
    assert!(whole(0, &out));
    let view = subscriber
        .recv_view_deadline(Instant::now() + Duration::from_secs(5))
        .unwrap();
    assert_eq!(view.frame().seq, 2);
    assert_eq!(view.release().unwrap().seq, 2);
    assert!(matches!(
        subscriber.try_recv(&mut out),
        Err(GpuError::Empty)
    ));

    // A full ring (capacity 8), then SIGKILL.
    const ITEMS: u64 = 8;
    kid.tell(&ITEMS.to_string());
    assert_eq!(kid.expect("published"), format!("published {}", 2 + ITEMS));
    kid.child.kill().unwrap();
    kid.child.wait().unwrap();
    assert!(!subscriber.publisher_alive());
    for seq in 3..3 + ITEMS {
        let frame = subscriber
            .recv_timeout(&mut out, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("item {seq} after the kill: {e}"));
        assert_eq!((frame.seq, frame.missed), (seq, 0));
        assert!(whole(seq - 1, &out), "item {seq} is not whole");
    }
    let started = Instant::now();
    let gone = subscriber.recv_timeout(&mut out, Duration::from_secs(10));
    assert!(matches!(gone, Err(GpuError::WriterGone)), "{gone:?}");
    let gone = subscriber
        .recv_view_timeout(Duration::from_secs(10))
        .map(|v| v.frame());
    assert!(matches!(gone, Err(GpuError::WriterGone)), "{gone:?}");
    let gone = subscriber.recv_deadline(&mut out, Instant::now() + Duration::from_secs(10));
    assert!(matches!(gone, Err(GpuError::WriterGone)), "{gone:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    unlink(&name);
}
