//! `tensorlane conformance`: the reference peer of docs/CONFORMANCE.md.
//!
//! Every verb works on the lanes `NAME.CASE` of the conformance cases it is given
//! (`--case all`, the default, is every case), prints one JSON object per lane on one
//! line of standard output, and exits with 0 when every lane passed, 1 when one failed
//! (a verification found lost, duplicated, misordered or torn items, or an operation
//! failed), 2 on a usage error. A writer or subscriber asked to die prints its line,
//! then kills itself with SIGKILL, as a crash would: no destructor runs, the kernel
//! releases its role locks.
//!
//! Item `i` is the lane's sequence number `i` (from 1) and carries the tensor
//! `tensorlane_shm::conformance::tensor(spec, i)`; a writer that takes over continues
//! the sequence where its predecessor's last complete item left it.

use crate::cli::{Failure, Outcome};
use crate::probe::{Core, Probe};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tensorlane_core::entry;
use tensorlane_shm::conformance::{self, vectors, Case, CASES};
use tensorlane_shm::{
    Clock, CreateOptions, Frame, LaneError, LaneName, QueueConsumer, QueueProducer, Segment,
    StreamReader, StreamWriter, SubscribeOptions, TensorSpec, TopicPublisher, TopicSubscriber,
};

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Verb {
    /// Create (or take over) lanes NAME.CASE and write the conformance sequence.
    Write(WriteArgs),
    /// Read lanes NAME.CASE and check the conformance sequence up to item --items.
    Verify(VerifyArgs),
    /// Join topic NAME.CASE as a subscriber, check what arrives, then leave or die.
    Subscribe(SubscribeArgs),
    /// Write the golden vectors and manifest.json into a directory.
    Vectors {
        /// The directory (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
}

/// A lane kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KindArg {
    /// Latest-value stream.
    Stream,
    /// Lossless queue.
    Queue,
    /// Broadcast topic.
    Topic,
}

impl KindArg {
    fn name(self) -> &'static str {
        match self {
            KindArg::Stream => "stream",
            KindArg::Queue => "queue",
            KindArg::Topic => "topic",
        }
    }
}

/// A subscriber's mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Holds the publisher back.
    Lossless,
    /// Skips to stay within its lag bound.
    Lossy,
}

/// `write`.
#[derive(Debug, Args)]
pub struct WriteArgs {
    /// Lane kind.
    #[arg(long, value_enum)]
    kind: KindArg,
    /// A case name, or "all".
    #[arg(long, default_value = "all")]
    case: String,
    /// Write up to this item (0: only create the lanes).
    #[arg(long, default_value_t = 16)]
    items: u64,
    /// Stream slots, or queue and topic capacity (default 3 for a stream, 32 else).
    #[arg(long)]
    count: Option<usize>,
    /// Topic subscriber entries.
    #[arg(long, default_value_t = 4)]
    subscribers: usize,
    /// Take over existing lanes whose writer is gone, instead of creating them.
    #[arg(long)]
    take_over: bool,
    /// Die (SIGKILL) while writing this item: inside the loan, half filled, on a
    /// queue; before the write begins on a stream or topic. Needs one case.
    #[arg(long)]
    die_at: Option<u64>,
    /// Topics: before writing, wait until this many subscribers are active.
    #[arg(long, default_value_t = 0)]
    wait_subscribers: usize,
    /// Seconds to wait for room in a queue or topic (or for subscribers) before
    /// giving up.
    #[arg(long, default_value_t = 5.0)]
    timeout: f64,
    /// Lane name prefix: the lanes are NAME.CASE.
    name: String,
}

/// `verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Lane kind.
    #[arg(long, value_enum)]
    kind: KindArg,
    /// A case name, or "all".
    #[arg(long, default_value = "all")]
    case: String,
    /// The last item the writer writes (0: nothing).
    #[arg(long, default_value_t = 16)]
    items: u64,
    /// Seconds to wait for item --items in all.
    #[arg(long, default_value_t = 5.0)]
    timeout: f64,
    /// Unlink each lane after verifying it.
    #[arg(long)]
    unlink: bool,
    /// Lane name prefix: the lanes are NAME.CASE.
    name: String,
}

/// `subscribe`.
#[derive(Debug, Args)]
pub struct SubscribeArgs {
    /// The case of the topic.
    #[arg(long, default_value = "float32")]
    case: String,
    /// Subscriber mode.
    #[arg(long, value_enum, default_value = "lossless")]
    mode: ModeArg,
    /// Lag bound of a lossy subscriber.
    #[arg(long, default_value_t = 1)]
    lag: u64,
    /// Items before the current tail to start from.
    #[arg(long, default_value_t = 0)]
    history: u64,
    /// Stop after item --items (default: when the publisher is gone and all is read).
    #[arg(long)]
    items: Option<u64>,
    /// Leave (drop the subscription) after receiving this many items.
    #[arg(long)]
    leave_after: Option<u64>,
    /// Die (SIGKILL) after receiving this many items.
    #[arg(long, conflicts_with = "leave_after")]
    die_after: Option<u64>,
    /// Seconds to wait in all.
    #[arg(long, default_value_t = 10.0)]
    timeout: f64,
    /// Lane name prefix: the topic is NAME.CASE.
    name: String,
}

/// Runs a verb.
pub fn run(verb: Verb) -> Outcome {
    match verb {
        Verb::Write(args) => write(&args),
        Verb::Verify(args) => verify(&args),
        Verb::Subscribe(args) => subscribe(&args),
        Verb::Vectors { out } => write_vectors(&out),
    }
}

fn seconds(secs: f64) -> Result<Duration, Failure> {
    Duration::try_from_secs_f64(secs)
        .map_err(|_| Failure::Message(format!("{secs} is not a number of seconds")))
}

fn cases(name: &str) -> Result<Vec<Case>, Failure> {
    if name == "all" {
        return Ok(CASES.to_vec());
    }
    Case::named(name).map(|c| vec![c]).ok_or_else(|| {
        let known: Vec<&str> = CASES.iter().map(|c| c.name).collect();
        Failure::Message(format!(
            "no case {name:?} (cases: all, {})",
            known.join(", ")
        ))
    })
}

fn lane(prefix: &str, case: &Case) -> Result<String, Failure> {
    let name = format!("{prefix}.{}", case.name);
    LaneName::new(&name).map_err(|e| Failure::Message(format!("{name:?}: {e}")))?;
    Ok(name)
}

fn spec(case: &Case) -> TensorSpec {
    case.spec().expect("conformance cases are valid specs")
}

/// Prints a report line; an object with `"ok": false` makes the verb fail.
fn report(line: Value) -> bool {
    out!("{line}");
    line["ok"] == Value::Bool(true)
}

fn finish(all_ok: bool) -> Outcome {
    if all_ok {
        Ok(())
    } else {
        Err(Failure::Reported)
    }
}

fn die() -> ! {
    // SAFETY: kill has no memory preconditions; the process ends here.
    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    unreachable!("SIGKILL ends the process")
}

// ---------------------------------------------------------------------------------
// write

/// A writer handle of any kind.
enum Writer {
    Stream(StreamWriter),
    Queue(QueueProducer),
    Topic(TopicPublisher),
}

impl Writer {
    fn next_seq(&self) -> u64 {
        match self {
            Writer::Stream(w) => w.next_seq(),
            Writer::Queue(w) => w.next_seq(),
            Writer::Topic(w) => w.next_position().wrapping_add(1),
        }
    }

    fn spec(&self) -> &TensorSpec {
        match self {
            Writer::Stream(w) => w.spec(),
            Writer::Queue(w) => w.spec(),
            Writer::Topic(w) => w.spec(),
        }
    }
}

fn open_writer(args: &WriteArgs, name: &str, spec: &TensorSpec) -> Result<Writer, LaneError> {
    let options = CreateOptions::new().clock(Clock::None);
    Ok(match (args.kind, args.take_over) {
        (KindArg::Stream, false) => Writer::Stream(StreamWriter::create_with(
            name,
            spec,
            args.count.unwrap_or(3),
            options,
        )?),
        (KindArg::Queue, false) => Writer::Queue(QueueProducer::create_with(
            name,
            spec,
            args.count.unwrap_or(32),
            options,
        )?),
        (KindArg::Topic, false) => Writer::Topic(TopicPublisher::create_with(
            name,
            spec,
            args.count.unwrap_or(32),
            args.subscribers,
            options,
        )?),
        (KindArg::Stream, true) => Writer::Stream(StreamWriter::take_over(name)?),
        (KindArg::Queue, true) => Writer::Queue(QueueProducer::take_over(name)?),
        (KindArg::Topic, true) => Writer::Topic(TopicPublisher::take_over(name)?),
    })
}

fn write(args: &WriteArgs) -> Outcome {
    let cases = cases(&args.case)?;
    if args.die_at.is_some() && cases.len() != 1 {
        return Err(Failure::Message("--die-at needs one --case".into()));
    }
    let timeout = seconds(args.timeout)?;
    let mut all_ok = true;
    for case in &cases {
        let name = lane(&args.name, case)?;
        all_ok &= report(write_lane(args, &name, case, timeout));
    }
    finish(all_ok)
}

fn write_lane(args: &WriteArgs, name: &str, case: &Case, timeout: Duration) -> Value {
    let spec = spec(case);
    let mut line = json!({
        "verb": "write", "lane": name, "kind": args.kind.name(), "case": case.name,
    });
    let mut writer = match open_writer(args, name, &spec) {
        Ok(w) => w,
        Err(e) => {
            line["ok"] = false.into();
            line["error"] = e.to_string().into();
            line["code"] = vectors::error_code(&e).into();
            return line;
        }
    };
    if writer.spec() != &spec {
        line["ok"] = false.into();
        line["error"] = "the lane carries another tensor than the case".into();
        return line;
    }
    if let Err(e) = wait_subscribers(name, args.wait_subscribers, timeout) {
        line["ok"] = false.into();
        line["error"] = e.into();
        return line;
    }
    let first = writer.next_seq();
    line["first"] = first.into();
    let mut written = 0u64;
    let mut result = Ok(());
    for item in first..=args.items {
        if args.die_at == Some(item) {
            line["written"] = written.into();
            line["died_at"] = item.into();
            line["ok"] = true.into();
            out!("{line}");
            die_writing(&mut writer, &spec, item);
        }
        let data = conformance::tensor(&spec, item);
        let outcome = match &mut writer {
            Writer::Stream(w) => w.write_frame(&data, item).map(|_| ()),
            Writer::Queue(w) => w.push_timeout(&data, timeout).map(|_| ()),
            Writer::Topic(w) => w.publish_timeout(&data, timeout).map(|_| ()),
        };
        if let Err(e) = outcome {
            result = Err(e);
            break;
        }
        written += 1;
    }
    line["written"] = written.into();
    line["last"] = (first + written).saturating_sub(1).into();
    if let Writer::Topic(w) = &writer {
        line["evicted"] = w.evicted().into();
    }
    match result {
        Ok(()) => line["ok"] = true.into(),
        Err(e) => {
            line["ok"] = false.into();
            line["error"] = e.to_string().into();
        }
    }
    line
}

/// Waits until topic `name` has `wanted` active subscribers (read without taking a
/// role, as `tensorlane list` does).
fn wait_subscribers(name: &str, wanted: usize, timeout: Duration) -> Result<(), String> {
    if wanted == 0 {
        return Ok(());
    }
    let lane = LaneName::new(name).map_err(|e| e.to_string())?;
    let probe = Probe::open(&lane).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + timeout;
    loop {
        let Core::Topic(ring) = probe.core()? else {
            return Err("--wait-subscribers needs a topic".into());
        };
        let active = (0..probe.info().subscribers)
            .filter_map(|i| ring.subscriber(i))
            .filter(|e| e.state == entry::ACTIVE)
            .count();
        if active >= wanted {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!("{active} of {wanted} subscribers joined in time"));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn die_writing(writer: &mut Writer, spec: &TensorSpec, item: u64) -> ! {
    if let Writer::Queue(producer) = writer {
        let data = conformance::tensor(spec, item);
        // SAFETY: every process that writes this lane is a conformance peer, which
        // follows docs/LAYOUT.md; the loan is filled through the slice only.
        let _ = unsafe {
            producer.try_push_with(|slot| -> () {
                let half = data.len() / 2;
                slot[..half].copy_from_slice(&data[..half]);
                die()
            })
        };
    }
    die()
}

// ---------------------------------------------------------------------------------
// verify and subscribe: the tally

/// What a reader saw of the conformance sequence.
#[derive(Debug, Default)]
struct Tally {
    /// Sequence expected next (0: whatever comes first).
    next: u64,
    /// Whether a gap in the sequence is a loss (queue, lossless topic) or normal
    /// (stream, lossy topic: counted as missed).
    gaps_are_loss: bool,
    received: u64,
    first: Option<u64>,
    last: u64,
    lost: u64,
    missed: u64,
    duplicated: u64,
    misordered: u64,
    torn: u64,
    seen: BTreeSet<u64>,
}

impl Tally {
    fn new(first: u64, gaps_are_loss: bool) -> Tally {
        Tally {
            next: first,
            gaps_are_loss,
            ..Tally::default()
        }
    }

    /// Records item `frame` whose tensor is `data` on a lane of `spec`; `frame_id`
    /// is checked where the protocol fixes it (streams: the sequence).
    fn record(
        &mut self,
        frame: &Frame,
        data: &[u8],
        spec: &TensorSpec,
        stream: bool,
        clock: Clock,
    ) {
        let seq = frame.seq;
        self.received += 1;
        self.first.get_or_insert(seq);
        let right = data == conformance::tensor(spec, seq).as_slice()
            && (!stream || frame.frame_id == seq)
            && (clock != Clock::None || frame.timestamp_ns == 0);
        if !right {
            self.torn += 1;
        }
        if self.next == 0 {
            self.next = seq;
        }
        if seq >= self.next {
            let gap = seq - self.next;
            if self.gaps_are_loss {
                self.lost += gap;
            } else {
                self.missed += gap;
            }
            self.next = seq + 1;
        } else if self.seen.contains(&seq) {
            self.duplicated += 1;
        } else {
            self.misordered += 1;
        }
        self.seen.insert(seq);
        self.last = self.last.max(seq);
    }

    /// Items up to `items` that never arrived (only where gaps are losses).
    fn missing_to(&mut self, items: u64) {
        if self.gaps_are_loss && items >= self.next && self.next != 0 {
            self.lost += items + 1 - self.next;
            self.next = items + 1;
        }
    }

    fn ok(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.misordered == 0 && self.torn == 0
    }

    fn fill(&self, line: &mut Value) {
        let map: &mut Map<String, Value> = line.as_object_mut().expect("an object");
        map.insert("received".into(), self.received.into());
        map.insert("first".into(), self.first.unwrap_or(0).into());
        map.insert("last".into(), self.last.into());
        for (key, value) in [
            ("lost", self.lost),
            ("missed", self.missed),
            ("duplicated", self.duplicated),
            ("misordered", self.misordered),
            ("torn", self.torn),
        ] {
            map.insert(key.into(), value.into());
        }
    }
}

/// Ends of a receive loop that are not failures.
fn is_end(error: &LaneError) -> bool {
    matches!(error, LaneError::WriterGone | LaneError::Timeout)
}

fn verify(args: &VerifyArgs) -> Outcome {
    let cases = cases(&args.case)?;
    let timeout = seconds(args.timeout)?;
    let mut all_ok = true;
    for case in &cases {
        let name = lane(&args.name, case)?;
        let mut line = json!({
            "verb": "verify", "lane": name, "kind": args.kind.name(), "case": case.name,
            "items": args.items,
        });
        let deadline = Instant::now() + timeout;
        match verify_lane(args.kind, &name, case, args.items, deadline) {
            Ok((tally, end)) => {
                tally.fill(&mut line);
                line["end"] = end.into();
                line["ok"] = tally.ok().into();
            }
            Err(e) => {
                line["ok"] = false.into();
                line["error"] = e.to_string().into();
                line["code"] = vectors::error_code(&e).into();
            }
        }
        if args.unlink {
            let _ = tensorlane_shm::segment::unlink(&LaneName::new(&name).expect("checked"));
        }
        all_ok &= report(line);
    }
    finish(all_ok)
}

/// Reads lane `name` until item `items`, the writer's end, or `deadline`; returns the
/// tally and how the reading ended.
fn verify_lane(
    kind: KindArg,
    name: &str,
    case: &Case,
    items: u64,
    deadline: Instant,
) -> Result<(Tally, String), LaneError> {
    let spec = spec(case);
    let mut data = vec![0u8; spec.byte_len()];
    match kind {
        KindArg::Stream => {
            let mut reader = StreamReader::open_expect(name, &spec)?;
            let clock = reader.info().clock;
            let mut tally = Tally::new(0, false);
            let mut end = "done".to_string();
            while tally.last < items {
                match reader.read_new_deadline(&mut data, deadline) {
                    Ok(frame) => tally.record(&frame, &data, &spec, true, clock),
                    Err(e) if is_end(&e) => {
                        end = error_end(&e);
                        break;
                    }
                    Err(LaneError::Corrupt(_)) => {
                        tally.misordered += 1;
                        end = "corrupt".into();
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
            // A stream's reader can only miss the last value if it never came.
            if tally.last < items {
                tally.lost += 1;
            }
            Ok((tally, end))
        }
        KindArg::Queue => {
            let mut consumer = QueueConsumer::open_expect(name, &spec)?;
            let clock = consumer.info().clock;
            let mut tally = Tally::new(1, true);
            let end = receive(
                &mut tally,
                items,
                |data| consumer.pop_deadline(data, deadline),
                &spec,
                clock,
                &mut data,
            )?;
            tally.missing_to(items);
            Ok((tally, end))
        }
        KindArg::Topic => {
            // A lossless subscriber starting from the oldest item the ring holds.
            let lane = LaneName::new(name).map_err(LaneError::Name)?;
            let history = Segment::open(&lane)?.info().count as u64;
            let options = SubscribeOptions::lossless().with_history(history);
            let mut subscriber = TopicSubscriber::open_expect(name, &spec, options)?;
            let clock = subscriber.info().clock;
            let mut tally = Tally::new(1, true);
            let end = receive(
                &mut tally,
                items,
                |data| subscriber.recv_deadline(data, deadline),
                &spec,
                clock,
                &mut data,
            )?;
            tally.missing_to(items);
            Ok((tally, end))
        }
    }
}

fn error_end(error: &LaneError) -> String {
    match error {
        LaneError::WriterGone => "writer_gone".into(),
        LaneError::Timeout => "timeout".into(),
        LaneError::Evicted => "evicted".into(),
        _ => "error".into(),
    }
}

/// Receives into the tally until item `items` (or `limit` items), the writer's end
/// or the deadline.
fn receive(
    tally: &mut Tally,
    items: u64,
    mut next: impl FnMut(&mut [u8]) -> Result<Frame, LaneError>,
    spec: &TensorSpec,
    clock: Clock,
    data: &mut [u8],
) -> Result<String, LaneError> {
    while tally.last < items {
        match next(data) {
            Ok(frame) => tally.record(&frame, data, spec, false, clock),
            Err(e) if is_end(&e) => return Ok(error_end(&e)),
            Err(e) => return Err(e),
        }
    }
    Ok("done".into())
}

// ---------------------------------------------------------------------------------
// subscribe

fn subscribe(args: &SubscribeArgs) -> Outcome {
    let case = Case::named(&args.case)
        .ok_or_else(|| Failure::Message(format!("no case {:?}", args.case)))?;
    let name = lane(&args.name, &case)?;
    let spec = spec(&case);
    let deadline = Instant::now() + seconds(args.timeout)?;
    let options = match args.mode {
        ModeArg::Lossless => SubscribeOptions::lossless(),
        ModeArg::Lossy => SubscribeOptions::lossy(args.lag),
    }
    .with_history(args.history);
    let mut line = json!({
        "verb": "subscribe", "lane": name, "case": case.name,
        "mode": if args.mode == ModeArg::Lossless { "lossless" } else { "lossy" },
    });
    let mut subscriber = match TopicSubscriber::open_expect(&name, &spec, options) {
        Ok(s) => s,
        Err(e) => {
            line["event"] = "refused".into();
            line["ok"] = false.into();
            line["error"] = e.to_string().into();
            line["code"] = vectors::error_code(&e).into();
            return finish(report(line));
        }
    };
    let mut joined = line.clone();
    joined["event"] = "joined".into();
    joined["index"] = subscriber.index().into();
    joined["head"] = subscriber.head().into();
    joined["ok"] = true.into();
    out!("{joined}");
    let clock = subscriber.info().clock;
    let lossless = args.mode == ModeArg::Lossless;
    let mut tally = Tally::new(0, lossless);
    let mut data = vec![0u8; spec.byte_len()];
    let stop_after = args.leave_after.or(args.die_after).unwrap_or(u64::MAX);
    let items = args.items.unwrap_or(u64::MAX);
    let mut event = "done".to_string();
    while tally.received < stop_after && tally.last < items {
        match subscriber.recv_deadline(&mut data, deadline) {
            Ok(frame) => tally.record(&frame, &data, &spec, false, clock),
            Err(e) if is_end(&e) || matches!(e, LaneError::Evicted) => {
                event = error_end(&e);
                break;
            }
            Err(e) => {
                line["error"] = e.to_string().into();
                event = "error".into();
                tally.misordered += u64::from(matches!(e, LaneError::Corrupt(_)));
                break;
            }
        }
    }
    if args.items.is_some() {
        tally.missing_to(items);
    }
    tally.fill(&mut line);
    let stopped = tally.received == stop_after;
    line["event"] = match () {
        _ if stopped && args.die_after.is_some() => "died",
        _ if stopped => "left",
        _ => event.as_str(),
    }
    .into();
    line["ok"] = (tally.ok() && line.get("error").is_none()).into();
    if stopped && args.die_after.is_some() {
        out!("{line}");
        die();
    }
    drop(subscriber);
    finish(report(line))
}

// ---------------------------------------------------------------------------------
// vectors

fn write_vectors(out: &std::path::Path) -> Outcome {
    let failed = |e: std::io::Error| Failure::Message(format!("{}: {e}", out.display()));
    std::fs::create_dir_all(out).map_err(failed)?;
    let all = vectors::all();
    for v in &all {
        std::fs::write(out.join(&v.file), &v.bytes).map_err(failed)?;
    }
    std::fs::write(out.join("manifest.json"), vectors::manifest(&all)).map_err(failed)?;
    finish(report(json!({
        "verb": "vectors", "out": out.display().to_string(), "files": all.len(), "ok": true,
    })))
}
