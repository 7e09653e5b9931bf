//! `tensorlane demo`: one publisher process, several subscriber processes, every item
//! checked.
//!
//! The parent creates a topic (and a stream), then starts each subscriber as a
//! separate OS process running `tensorlane demo-role ...`. Once every child has said
//! (on its standard output) that it joined, and the topic's subscriber table confirms
//! it, the parent publishes N items with a blocking publish and a last *sentinel* item
//! (index `u64::MAX`) that tells the children to stop. Each item carries its index in
//! its first 8 bytes and a pattern derived from the index in the rest, so a receiver
//! can tell a torn item (bytes of two items) from a whole one.
//!
//! Each child prints one JSON summary line: items received, first and last index,
//! missing and missed items, torn items, ordering errors, and the latency from the
//! frame's timestamp (taken by the publisher) to the receive. The parent prints a
//! table and a verdict, and fails unless every lossless subscriber received every item
//! in order, untorn, and every other reader saw only whole items in order with
//! consistent drop counts. The lanes are unlinked however the demo ends, and every
//! wait is bounded by `--timeout`.

use crate::cli::{Failure, Outcome};
use crate::probe::{Core, Probe};
use crate::text;
use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};
use tensorlane_core::entry;
use tensorlane_shm::segment;
use tensorlane_shm::Clock;
use tensorlane_shm::{
    DType, LaneError, LaneName, StreamReader, StreamWriter, SubscribeOptions, TensorSpec,
    TopicPublisher, TopicSubscriber,
};

/// Index of the last item, which tells readers that the publisher is done.
const SENTINEL: u64 = u64::MAX;

/// Options of `tensorlane demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Items to publish.
    #[arg(long, default_value_t = 1000)]
    items: u64,
    /// Subscriber processes; with two or more, the last one is lossy (max_lag 1).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..=64))]
    consumers: u64,
    /// Bytes per item, at least 8 (the default, 1 MiB, is a 512x512 float32 image).
    #[arg(long, default_value_t = 1 << 20,
          value_parser = clap::value_parser!(u64).range(8..=(1 << 30)))]
    size: u64,
    /// Slots of the topic's ring (a power of two).
    #[arg(long, default_value_t = 16)]
    capacity: usize,
    /// Items per second to publish; 0: as fast as the slowest lossless subscriber
    /// allows (the ring then stays full, and latencies include the time items wait
    /// in it).
    #[arg(long, default_value_t = 0.0, value_parser = parse_rate)]
    rate: f64,
    /// Leave out the stream (latest value) and its reader process.
    #[arg(long)]
    no_stream: bool,
    /// Give up, and fail, after this many seconds.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,
}

fn parse_rate(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(rate) if (0.0..=1e9).contains(&rate) => Ok(rate),
        _ => Err(format!(
            "{text:?} is not a rate between 0 and 1e9 items per second"
        )),
    }
}

/// The processes of the demo.
#[derive(Debug, Subcommand)]
pub enum Role {
    /// Subscribes to a topic and checks every item received.
    Subscriber {
        /// Topic name.
        #[arg(long)]
        name: String,
        /// Subscribe lossy with this lag bound (default: lossless).
        #[arg(long)]
        lossy: Option<u64>,
        /// Items the publisher sends before its sentinel.
        #[arg(long)]
        items: u64,
        /// Give up after this many milliseconds.
        #[arg(long)]
        timeout_ms: u64,
    },
    /// Reads a stream's latest values and checks each one.
    StreamReader {
        /// Stream name.
        #[arg(long)]
        name: String,
        /// Items the writer writes before its sentinel.
        #[arg(long)]
        items: u64,
        /// Give up after this many milliseconds.
        #[arg(long)]
        timeout_ms: u64,
    },
    /// Creates a topic, publishes one item to a lossless subscriber, and exits without
    /// releasing the publisher or the subscriber, as a crashed pipeline would.
    Abandon {
        /// Topic name.
        #[arg(long)]
        name: String,
    },
}

/// A line a child prints on its standard output.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum Message {
    /// The child has joined its lane.
    Joined {
        /// Its process id.
        pid: u32,
    },
    /// What the child saw; its last line.
    Summary(Box<Summary>),
}

/// What one reader saw.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Summary {
    /// `"subscriber"` or `"stream"`.
    role: String,
    /// `"lossless"`, `"lossy(1)"` or `"latest"`.
    mode: String,
    pid: u32,
    /// Subscriber table entry.
    entry: Option<usize>,
    /// Items received (the sentinel not included).
    received: u64,
    /// Index of the first item received.
    first: Option<u64>,
    /// Index of the last item received.
    last: Option<u64>,
    /// Items never received.
    missing: u64,
    /// Items the lane reported as missed (lossy skips, stream overwrites).
    missed: u64,
    /// Items whose payload did not match their index's pattern.
    torn: u64,
    /// Items out of order, or whose skip count or sequence disagrees with their index.
    misordered: u64,
    /// Whether the sentinel arrived.
    finished: bool,
    p50_us: Option<f64>,
    p99_us: Option<f64>,
    max_us: Option<f64>,
    error: Option<String>,
}

/// The payload of item `index`: the index, then words derived from it.
fn fill(buf: &mut [u8], index: u64) {
    buf[..8].copy_from_slice(&index.to_le_bytes());
    let seed = splitmix64(index);
    let mut words = buf[8..].chunks_exact_mut(8);
    let mut k = 0;
    for word in &mut words {
        word.copy_from_slice(&pattern_word(seed, k).to_le_bytes());
        k += 1;
    }
    let rest = words.into_remainder();
    let n = rest.len();
    rest.copy_from_slice(&pattern_word(seed, k).to_le_bytes()[..n]);
}

/// Whether `buf` is exactly the payload of the index in its first 8 bytes.
fn intact(buf: &[u8]) -> bool {
    let seed = splitmix64(item_index(buf));
    let words = buf[8..].chunks_exact(8);
    let rest = words.remainder();
    // Accumulate differences rather than stop early: the loop vectorises.
    let mut diff = 0u64;
    let mut k = 0;
    for word in words {
        diff |= u64::from_le_bytes(word.try_into().expect("8 bytes")) ^ pattern_word(seed, k);
        k += 1;
    }
    diff == 0 && rest == &pattern_word(seed, k).to_le_bytes()[..rest.len()]
}

fn item_index(buf: &[u8]) -> u64 {
    u64::from_le_bytes(buf[..8].try_into().expect("items have at least 8 bytes"))
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn pattern_word(seed: u64, k: usize) -> u64 {
    seed ^ (k as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
}

/// The tensor of `size` bytes: a square float32 image where possible.
fn demo_spec(size: u64) -> Result<TensorSpec, Failure> {
    let spec = if size % 4 == 0 {
        let n = size / 4;
        let side = n.isqrt();
        if side >= 2 && side * side == n {
            TensorSpec::new(DType::F32, &[side, side])
        } else {
            TensorSpec::new(DType::F32, &[n])
        }
    } else {
        TensorSpec::bytes(size)
    };
    spec.map_err(|e| Failure::Message(format!("invalid --size: {e}")))
}

/// Checks a reader's items one by one.
struct Tally {
    items: u64,
    /// Index expected next if nothing is skipped.
    next: u64,
    /// Whether the first item's skip count is meaningful (false for a stream reader
    /// that may start late: the stream does not count what came before its first read).
    check_first_skip: bool,
    /// Whether an item was recorded yet.
    seen: bool,
    latencies: Vec<u64>,
    summary: Summary,
}

impl Tally {
    fn new(summary: Summary, items: u64, check_first_skip: bool) -> Self {
        Tally {
            items,
            next: 0,
            check_first_skip,
            seen: false,
            latencies: Vec::with_capacity(items.min(1 << 20) as usize),
            summary,
        }
    }

    /// Records one item; returns true for the sentinel.
    fn record(&mut self, payload: &[u8], seq: u64, missed: u64, timestamp_ns: u64) -> bool {
        // The demo's lanes are stamped by the default clock.
        let latency = Clock::default().now_ns().saturating_sub(timestamp_ns);
        let index = item_index(payload);
        let sentinel = index == SENTINEL;
        let s = &mut self.summary;
        if !intact(payload) {
            s.torn += 1;
        }
        // The sentinel stands at position `items`.
        let position = if sentinel { self.items } else { index };
        let skip_ok = (!self.seen && !self.check_first_skip)
            || position.checked_sub(self.next) == Some(missed);
        if position < self.next
            || (!sentinel && index >= self.items)
            || !skip_ok
            // Every lane numbers items from 1: item `i` has sequence `i + 1`.
            || seq != position.wrapping_add(1)
        {
            s.misordered += 1;
        }
        self.next = position.wrapping_add(1);
        self.seen = true;
        s.missed += missed;
        if sentinel {
            s.finished = true;
            return true;
        }
        s.received += 1;
        s.first.get_or_insert(index);
        s.last = Some(index);
        self.latencies.push(latency);
        false
    }

    fn finish(mut self, error: Option<String>) -> Summary {
        let s = &mut self.summary;
        s.missing = self.items.saturating_sub(s.received);
        s.error = error;
        self.latencies.sort_unstable();
        let at = |q: f64| {
            let n = self.latencies.len();
            (n > 0).then(|| {
                let i = ((n as f64 * q).ceil() as usize).clamp(1, n) - 1;
                self.latencies[i] as f64 / 1e3
            })
        };
        s.p50_us = at(0.5);
        s.p99_us = at(0.99);
        s.max_us = at(1.0);
        self.summary
    }
}

fn emit(message: &Message) {
    // One line per message; stdout is line-buffered, so the parent sees it at once.
    out!(
        "{}",
        serde_json::to_string(message).expect("messages serialise")
    );
}

/// Runs a hidden `demo-role` subcommand.
pub fn run_role(role: Role) -> Outcome {
    match role {
        Role::Subscriber {
            name,
            lossy,
            items,
            timeout_ms,
        } => subscriber(&name, lossy, items, Duration::from_millis(timeout_ms)),
        Role::StreamReader {
            name,
            items,
            timeout_ms,
        } => stream_reader(&name, items, Duration::from_millis(timeout_ms)),
        Role::Abandon { name } => abandon(&name),
    }
}

fn subscriber(name: &str, lossy: Option<u64>, items: u64, timeout: Duration) -> Outcome {
    let deadline = Instant::now() + timeout;
    let (options, mode) = match lossy {
        Some(lag) => (SubscribeOptions::lossy(lag), format!("lossy({lag})")),
        None => (SubscribeOptions::lossless(), "lossless".to_string()),
    };
    let mut sub = TopicSubscriber::open(name, options)
        .map_err(|e| format!("cannot subscribe to '{name}': {e}"))?;
    let pid = std::process::id();
    emit(&Message::Joined { pid });
    let summary = Summary {
        role: "subscriber".into(),
        mode,
        pid,
        entry: Some(sub.index()),
        ..Summary::default()
    };
    let mut tally = Tally::new(summary, items, true);
    let mut buf = vec![0u8; sub.spec().byte_len()];
    let error = loop {
        if Instant::now() >= deadline {
            break Some("timed out before the last item".to_string());
        }
        match sub.recv_timeout(&mut buf, Duration::from_millis(100)) {
            Ok(frame) => {
                if tally.record(&buf, frame.seq, frame.missed, frame.timestamp_ns) {
                    break None;
                }
            }
            Err(LaneError::Timeout) => {
                if !sub.publisher_alive() {
                    break Some("the publisher is gone before the last item".into());
                }
            }
            Err(e) => break Some(e.to_string()),
        }
    };
    report(tally.finish(error))
}

fn stream_reader(name: &str, items: u64, timeout: Duration) -> Outcome {
    let deadline = Instant::now() + timeout;
    let mut reader =
        StreamReader::open(name).map_err(|e| format!("cannot open stream '{name}': {e}"))?;
    let pid = std::process::id();
    emit(&Message::Joined { pid });
    let summary = Summary {
        role: "stream".into(),
        mode: "latest".into(),
        pid,
        ..Summary::default()
    };
    let mut tally = Tally::new(summary, items, false);
    let mut buf = vec![0u8; reader.spec().byte_len()];
    let error = loop {
        if Instant::now() >= deadline {
            break Some("timed out before the last item".to_string());
        }
        match reader.read_new_timeout(&mut buf, Duration::from_millis(100)) {
            Ok(frame) => {
                if tally.record(&buf, frame.seq, frame.missed, frame.timestamp_ns) {
                    break None;
                }
            }
            Err(LaneError::Timeout) => {}
            Err(LaneError::WriterGone) => {
                break Some("the writer is gone before the last item".into());
            }
            Err(e) => break Some(e.to_string()),
        }
    };
    report(tally.finish(error))
}

fn report(summary: Summary) -> Outcome {
    let failed = summary.error.is_some();
    emit(&Message::Summary(Box::new(summary)));
    if failed {
        Err(Failure::Reported)
    } else {
        Ok(())
    }
}

fn abandon(name: &str) -> Outcome {
    let spec = TensorSpec::new(DType::F32, &[4]).expect("a small tensor");
    let fail = |e: LaneError| Failure::Message(format!("cannot build lane '{name}': {e}"));
    let mut publisher = TopicPublisher::create(name, &spec, 4, 2).map_err(fail)?;
    let subscriber = TopicSubscriber::open(name, SubscribeOptions::lossless()).map_err(fail)?;
    publisher
        .publish_elements_timeout(&[1.0f32; 4], Duration::from_secs(1))
        .map_err(fail)?;
    out!("{name}");
    // Exit without running destructors: the kernel drops the role locks, the claim
    // words and the subscriber entry stay, as after a crash.
    std::mem::forget((publisher, subscriber));
    std::process::exit(0)
}

/// Unlinks the demo's lanes when dropped, however the demo ends.
struct Lanes(Vec<String>);

impl Drop for Lanes {
    fn drop(&mut self) {
        for name in &self.0 {
            if let Ok(lane) = LaneName::new(name) {
                let _ = segment::unlink(&lane);
            }
        }
    }
}

/// A child process of the demo.
struct Kid {
    child: Child,
    role: &'static str,
    mode: String,
    joined: bool,
    closed: bool,
    summary: Option<Summary>,
    status: Option<ExitStatus>,
}

/// Kills (and reaps) the children still running when dropped.
#[derive(Default)]
struct Kids(Vec<Kid>);

impl Drop for Kids {
    fn drop(&mut self) {
        for kid in &mut self.0 {
            if let Ok(None) = kid.child.try_wait() {
                let _ = kid.child.kill();
                let _ = kid.child.wait();
            }
        }
    }
}

/// A line from child `.0`'s standard output; `None` once it closed.
type Line = (usize, Option<String>);

fn spawn(
    kids: &mut Kids,
    lines: &mpsc::Sender<Line>,
    role: &'static str,
    mode: String,
    args: &[String],
) -> Result<(), Failure> {
    let exe = std::env::current_exe()
        .map_err(|e| Failure::Message(format!("cannot find this executable: {e}")))?;
    let mut child = Command::new(&exe)
        .arg("demo-role")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| Failure::Message(format!("cannot start {}: {e}", exe.display())))?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let index = kids.0.len();
    kids.0.push(Kid {
        child,
        role,
        mode,
        joined: false,
        closed: false,
        summary: None,
        status: None,
    });
    let lines = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines.send((index, Some(line))).is_err() {
                return;
            }
        }
        let _ = lines.send((index, None));
    });
    Ok(())
}

fn left(deadline: Instant) -> Duration {
    deadline.saturating_duration_since(Instant::now())
}

/// Handles one line from a child.
fn take_line(kids: &mut Kids, (index, line): Line) {
    let kid = &mut kids.0[index];
    match line {
        None => kid.closed = true,
        Some(line) => match serde_json::from_str::<Message>(&line) {
            Ok(Message::Joined { .. }) => kid.joined = true,
            Ok(Message::Summary(summary)) => kid.summary = Some(*summary),
            // Not ours: pass it on.
            Err(_) => out!("{line}"),
        },
    }
}

fn describe(kid: &Kid) -> String {
    format!("{} {} (pid {})", kid.role, kid.mode, kid.child.id())
}

/// Waits until every child has joined its lane.
fn wait_joined(kids: &mut Kids, lines: &Receiver<Line>, deadline: Instant) -> Outcome {
    while let Some(kid) = kids.0.iter().find(|k| !k.joined) {
        if kid.closed {
            return Err(Failure::Message(format!(
                "{} exited before joining",
                describe(kid)
            )));
        }
        match lines.recv_timeout(left(deadline)) {
            Ok(line) => take_line(kids, line),
            Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                return Err(Failure::Message(format!(
                    "{} did not join in time",
                    describe(kid)
                )));
            }
        }
    }
    Ok(())
}

/// Reads the children's last lines and reaps them, killing those still running at
/// the deadline.
fn collect(kids: &mut Kids, lines: &Receiver<Line>, deadline: Instant) {
    while kids.0.iter().any(|k| !k.closed) {
        match lines.recv_timeout(left(deadline)) {
            Ok(line) => take_line(kids, line),
            Err(_) => break,
        }
    }
    for kid in &mut kids.0 {
        kid.status = loop {
            match kid.child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                _ => {
                    let _ = kid.child.kill();
                    let _ = kid.child.wait();
                    break None;
                }
            }
        };
    }
}

/// What is wrong with what a child reported (empty: nothing).
fn problems(kid: &Kid, items: u64) -> Vec<String> {
    let mut out = Vec::new();
    let who = describe(kid);
    match kid.status {
        None => out.push(format!("{who} did not finish in time and was killed")),
        Some(status) if !status.success() => out.push(format!("{who} exited with {status}")),
        Some(_) => {}
    }
    let Some(s) = &kid.summary else {
        out.push(format!("{who} reported nothing"));
        return out;
    };
    if let Some(error) = &s.error {
        out.push(format!("{who}: {error}"));
    }
    if !s.finished {
        out.push(format!("{who} never received the final item"));
    }
    if s.torn > 0 {
        out.push(format!("{who} received {} torn items", s.torn));
    }
    if s.misordered > 0 {
        out.push(format!(
            "{who} received {} items out of order or with a wrong skip count",
            s.misordered
        ));
    }
    if kid.mode == "lossless" {
        let complete = s.received == items
            && s.missed == 0
            && (items == 0 || (s.first == Some(0) && s.last == Some(items - 1)));
        if !complete {
            out.push(format!(
                "{who} received {} of {items} items ({} missing, {} missed)",
                s.received, s.missing, s.missed
            ));
        }
    } else if kid.role == "subscriber" && s.received + s.missed != items {
        out.push(format!(
            "{who} accounts for {} received + {} missed items, not {items}",
            s.received, s.missed
        ));
    }
    out
}

fn latency(us: Option<f64>) -> String {
    us.map_or("-".into(), |us| text::duration((us * 1e3) as i128))
}

fn opt(value: Option<impl ToString>) -> String {
    value.map_or("-".into(), |v| v.to_string())
}

fn exit_text(status: Option<ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status {
        None => "killed (timeout)".into(),
        Some(s) if s.success() => "ok".into(),
        Some(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exit {code}"),
            (None, Some(signal)) => format!("signal {signal}"),
            _ => s.to_string(),
        },
    }
}

fn print_results(kids: &Kids) {
    let rows: Vec<Vec<String>> = kids
        .0
        .iter()
        .map(|kid| {
            let mut row = vec![
                kid.role.to_string(),
                kid.child.id().to_string(),
                kid.mode.clone(),
            ];
            match &kid.summary {
                None => row.extend((0..11).map(|_| "-".to_string())),
                Some(s) => row.extend([
                    opt(s.entry),
                    s.received.to_string(),
                    opt(s.first),
                    opt(s.last),
                    s.missing.to_string(),
                    s.missed.to_string(),
                    s.torn.to_string(),
                    s.misordered.to_string(),
                    latency(s.p50_us),
                    latency(s.p99_us),
                    latency(s.max_us),
                ]),
            }
            row.push(exit_text(kid.status));
            row
        })
        .collect();
    text::print_table(
        &[
            "ROLE",
            "PID",
            "MODE",
            "ENTRY",
            "RECEIVED",
            "FIRST",
            "LAST",
            "MISSING",
            "MISSED",
            "TORN",
            "MISORDERED",
            "P50",
            "P99",
            "MAX",
            "EXIT",
        ],
        &rows,
    );
}

/// Counts the active entries of topic `name`'s subscriber table.
fn active_subscribers(name: &str) -> Result<usize, Failure> {
    let lane = LaneName::new(name).map_err(|e| Failure::Message(e.to_string()))?;
    let probe = Probe::open(&lane).map_err(|e| Failure::Message(e.to_string()))?;
    let Core::Topic(ring) = probe.core()? else {
        return Err(Failure::Message(format!("lane '{name}' is not a topic")));
    };
    Ok((0..probe.info().subscribers)
        .filter_map(|i| ring.subscriber(i))
        .filter(|e| e.state == entry::ACTIVE)
        .count())
}

/// `tensorlane demo`.
pub fn run(args: &DemoArgs) -> Outcome {
    let deadline = Instant::now() + Duration::from_secs(args.timeout);
    let pid = std::process::id();
    let topic = format!("demo-{pid}");
    let stream = format!("demo-{pid}-latest");
    let spec = demo_spec(args.size)?;
    let k = args.consumers as usize;
    let lossy = if k >= 2 { 1 } else { 0 };
    let timeout_ms = args.timeout * 1000;

    let mut lanes = Lanes(Vec::new());
    let lane_error = |name: &str, e: LaneError| Failure::Message(format!("lane '{name}': {e}"));
    let mut publisher = TopicPublisher::create(&topic, &spec, args.capacity, k)
        .map_err(|e| lane_error(&topic, e))?;
    lanes.0.push(topic.clone());
    let mut writer = if args.no_stream {
        None
    } else {
        let writer = StreamWriter::create(&stream, &spec, 3).map_err(|e| lane_error(&stream, e))?;
        lanes.0.push(stream.clone());
        Some(writer)
    };

    let (sender, lines) = mpsc::channel();
    let mut kids = Kids::default();
    let common = |name: &str| {
        vec![
            format!("--name={name}"),
            format!("--items={}", args.items),
            format!("--timeout-ms={timeout_ms}"),
        ]
    };
    for i in 0..k {
        let mut role_args = vec!["subscriber".to_string()];
        role_args.extend(common(&topic));
        let mode = if i >= k - lossy {
            role_args.push("--lossy=1".into());
            "lossy(1)".to_string()
        } else {
            "lossless".to_string()
        };
        spawn(&mut kids, &sender, "subscriber", mode, &role_args)?;
    }
    if writer.is_some() {
        let mut role_args = vec!["stream-reader".to_string()];
        role_args.extend(common(&stream));
        spawn(&mut kids, &sender, "stream", "latest".into(), &role_args)?;
    }
    drop(sender);
    wait_joined(&mut kids, &lines, deadline)?;
    let active = active_subscribers(&topic)?;
    if active != k {
        return Err(Failure::Message(format!(
            "{k} subscribers joined, but the topic's table has {active} active entries"
        )));
    }

    out!(
        "topic '{topic}': {} ({} bytes per item), {} slots; {} lossless + {lossy} lossy \
         subscriber processes{}",
        spec,
        spec.byte_len(),
        args.capacity,
        k - lossy,
        if writer.is_some() {
            format!("; stream '{stream}' with 1 reader process")
        } else {
            String::new()
        }
    );
    if args.rate == 0.0 {
        out!(
            "publishing {} items as fast as the slowest lossless subscriber allows \
             (latencies include the wait in the full ring; --rate paces the publisher)",
            args.items
        );
    } else {
        out!("publishing {} items at {} items/s", args.items, args.rate);
    }
    let mut item = vec![0u8; spec.byte_len()];
    let started = Instant::now();
    for (n, index) in (0..args.items).chain([SENTINEL]).enumerate() {
        if args.rate > 0.0 {
            let due = started + Duration::from_secs_f64(n as f64 / args.rate);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        fill(&mut item, index);
        publisher
            .publish_timeout(&item, left(deadline))
            .map_err(|e| match e {
                LaneError::Timeout => Failure::Message(format!(
                    "publishing item {index} timed out: a lossless subscriber stopped receiving"
                )),
                e => Failure::Message(format!("publishing item {index}: {e}")),
            })?;
        if let Some(writer) = &mut writer {
            writer
                .write(&item)
                .map_err(|e| Failure::Message(format!("writing item {index}: {e}")))?;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    out!(
        "published {} items in {:.3} s: {:.0} items/s, {:.2} GB/s per subscriber; {} evicted",
        args.items,
        elapsed,
        args.items as f64 / elapsed,
        (args.items * spec.byte_len() as u64) as f64 / elapsed / 1e9,
        publisher.evicted()
    );

    collect(&mut kids, &lines, deadline);
    out!();
    print_results(&kids);
    out!();
    let failures: Vec<String> = kids
        .0
        .iter()
        .flat_map(|kid| problems(kid, args.items))
        .collect();
    drop(publisher);
    drop(writer);
    drop(lanes);
    if failures.is_empty() {
        out!(
            "OK: every lossless subscriber received all {} items in order, no torn data",
            args.items
        );
        Ok(())
    } else {
        out!("FAILED: {} problem(s)", failures.len());
        for failure in failures {
            eprintln!("tensorlane: demo: {failure}");
        }
        Err(Failure::Reported)
    }
}
