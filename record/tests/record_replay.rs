//! Record and replay across processes: the recorder and the replayer run as the
//! `tensorlane-record` binary; this process publishes the original frames, reads
//! them back from the replayed lane, and compares.
#![cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};
use tensorlane_record::replay::Recording;
use tensorlane_shm::{
    segment, DType, Frame, LaneName, StreamWriter, SubscribeOptions, TensorSpec, TopicPublisher,
    TopicSubscriber,
};

const BIN: &str = env!("CARGO_BIN_EXE_tensorlane-record");

/// The tests of this file run one at a time: each starts processes, and the timing
/// test must not compete with the others for the CPUs.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn unique(what: &str) -> String {
    format!("rec-{}-{what}", std::process::id())
}

/// A file path in a fresh directory, removed when the value is dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(what: &str) -> Self {
        let dir = std::env::temp_dir().join(unique(what));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn file(&self) -> PathBuf {
        self.0.join("run.mcap")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn unlink(name: &str) {
    let _ = segment::unlink(&LaneName::new(name).unwrap());
}

/// Starts `tensorlane-record ARGS` and waits for its first stdout line.
fn start(args: &[&str]) -> (Child, String) {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line)
}

fn signal(child: &Child, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(child.id()).unwrap();
    // SAFETY: kill(2) on the pid of a child this test spawned and has not yet reaped.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
}

/// Waits for `child`, checks it succeeded, returns the rest of its stdout.
fn finish(mut child: Child) -> String {
    let mut rest = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut rest)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}: {rest}");
    rest
}

/// The tensor of frame `i`: distinct bytes in every frame, NaN payloads included.
fn tensor(i: u32) -> Vec<u8> {
    (0..12u32)
        .flat_map(|k| (i.wrapping_mul(0x9E37_79B9) ^ k.wrapping_mul(0x7FC0_0001)).to_le_bytes())
        .collect()
}

/// The largest difference between an original inter-arrival time (gap between two
/// write timestamps) and the replayed one.
fn gap_error(original: &[(Frame, Vec<u8>)], replayed: &[(Frame, Vec<u8>)]) -> Duration {
    let gaps = |frames: &[(Frame, Vec<u8>)]| -> Vec<u64> {
        frames
            .windows(2)
            .map(|w| w[1].0.timestamp_ns.abs_diff(w[0].0.timestamp_ns))
            .collect()
    };
    gaps(original)
        .iter()
        .zip(gaps(replayed))
        .map(|(o, r)| Duration::from_nanos(o.abs_diff(r)))
        .max()
        .unwrap_or(Duration::ZERO)
}

/// Every replayed frame is the original bit for bit, with the same frame id, in
/// order, and the inter-arrival times differ by at most `tolerance`.
fn check_replay(original: &[(Frame, Vec<u8>)], replayed: &[(Frame, Vec<u8>)], tolerance: Duration) {
    assert_eq!(replayed.len(), original.len(), "frame count");
    for (k, ((o, ot), (r, rt))) in original.iter().zip(replayed).enumerate() {
        assert_eq!(rt, ot, "tensor of frame {k}");
        assert_eq!(r.frame_id, o.frame_id, "frame id of frame {k}");
    }
    let worst = gap_error(original, replayed);
    assert!(
        worst <= tolerance,
        "an inter-arrival time is {worst:?} off the original's"
    );
}

#[test]
fn record_then_replay_reproduces_every_frame_and_its_timing() {
    let _serial = serial();
    let lane = unique("topic");
    let scratch = Scratch::new("topic");
    let file = scratch.file();
    let spec = TensorSpec::new(DType::F32, &[3, 4]).unwrap();
    let options = tensorlane_shm::CreateOptions::new().metadata([("units", "m")]);
    let mut publisher = TopicPublisher::create_with(&lane, &spec, 64, 4, options).unwrap();
    let mut witness = TopicSubscriber::open(&lane, SubscribeOptions::lossless()).unwrap();
    let (recorder, line) = start(&["record", &lane, "-o", file.to_str().unwrap(), "--lossless"]);
    assert!(line.starts_with("recording 1 lane(s)"), "{line}");

    // Gaps of 1 to 9 ms in an irregular pattern; frame ids from 100.
    publisher.set_next_frame(100);
    let frames = 60u32;
    let mut original = Vec::new();
    let mut out = vec![0u8; spec.byte_len()];
    for i in 0..frames {
        publisher.publish(&tensor(i)).unwrap();
        let frame = witness.recv(&mut out).unwrap();
        original.push((frame, out.clone()));
        thread::sleep(Duration::from_millis(u64::from(1 + (i * 7) % 9)));
    }
    thread::sleep(Duration::from_millis(100));
    signal(&recorder, libc::SIGINT);
    let summary = finish(recorder);
    assert!(
        summary.contains(&format!("{lane}: {frames} frames, 0 missed")),
        "{summary}"
    );
    drop((publisher, witness));
    unlink(&lane);

    // The file: every frame, in order, with the lane's description.
    let recording = Recording::parse(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(recording.truncated, None);
    assert_eq!(recording.lanes.len(), 1);
    assert_eq!(recording.lanes[0].spec, spec);
    assert_eq!(
        recording.lanes[0].metadata,
        vec![("units".into(), "m".into())]
    );
    let in_file: Vec<(Frame, Vec<u8>)> = recording
        .frames
        .iter()
        .map(|f| (f.frame, f.tensor.clone()))
        .collect();
    assert_eq!(in_file, original);

    // Bits, ids and order must hold on every replay. The timing bound must hold on
    // one of a few replays of the same file: on a loaded machine one preemption of
    // the replayer between its wake-up and its write spoils a run (see
    // VERIFICATION.md).
    let mut worsts = Vec::new();
    for attempt in 0..5 {
        let prefix = format!("re{attempt}-");
        let replayed = replay_once(&file, &prefix, &lane, frames, &spec);
        check_replay(&original, &replayed, Duration::MAX);
        let worst = gap_error(&original, &replayed);
        worsts.push(worst);
        // TENSORLANE_REPLAY_GAPS=1 prints each gap (original, replayed, difference, ns).
        if std::env::var_os("TENSORLANE_REPLAY_GAPS").is_some() {
            for k in 1..original.len() {
                let o = original[k].0.timestamp_ns - original[k - 1].0.timestamp_ns;
                let r = replayed[k].0.timestamp_ns - replayed[k - 1].0.timestamp_ns;
                eprintln!("{k}: {o} {r} {}", o as i64 - r as i64);
            }
        }
        if worst <= Duration::from_millis(1) {
            break;
        }
    }
    eprintln!("worst inter-arrival difference per replay: {worsts:?}");
    let last = *worsts.last().unwrap();
    assert!(
        last <= Duration::from_millis(1),
        "no replay kept every inter-arrival time within 1 ms: {worsts:?}"
    );
}

/// Replays `file` with `prefix` as a separate process and reads its `frames` frames
/// of `lane` back with a lossless subscriber.
fn replay_once(
    file: &std::path::Path,
    prefix: &str,
    lane: &str,
    frames: u32,
    spec: &TensorSpec,
) -> Vec<(Frame, Vec<u8>)> {
    let replayed_lane = format!("{prefix}{lane}");
    let (replayer, line) = start(&[
        "replay",
        file.to_str().unwrap(),
        "--prefix",
        prefix,
        "--wait-subscribers",
        "1",
        "--fifo",
        "10",
    ]);
    // The replayer prints its line once the lanes exist; it waits for us.
    assert!(line.starts_with("created 1 lane(s)"), "{line}");
    let mut subscriber =
        TopicSubscriber::open(&replayed_lane, SubscribeOptions::lossless()).unwrap();
    assert_eq!(subscriber.metadata().get("units"), Some("m"));
    let mut out = vec![0u8; spec.byte_len()];
    let mut replayed = Vec::new();
    for _ in 0..frames {
        let frame = subscriber
            .recv_timeout(&mut out, Duration::from_secs(10))
            .unwrap();
        replayed.push((frame, out.clone()));
    }
    let rest = finish(replayer);
    assert!(
        rest.contains(&format!("replayed {frames} frames")),
        "{rest}"
    );
    drop(subscriber);
    unlink(&replayed_lane);
    replayed
}

/// The comparison above fails on a replay that lost a frame, changed a bit, or
/// moved a write by more than the tolerance.
#[test]
fn the_replay_check_catches_a_wrong_replay() {
    let frame = |id: u64, ms: u64| Frame {
        seq: id,
        frame_id: id,
        timestamp_ns: ms * 1_000_000,
        missed: 0,
    };
    let original = vec![
        (frame(1, 0), vec![1]),
        (frame(2, 5), vec![2]),
        (frame(3, 7), vec![3]),
    ];
    let tolerance = Duration::from_millis(1);
    check_replay(&original, &original, tolerance);
    for broken in [
        original[..2].to_vec(),
        vec![
            original[0].clone(),
            (frame(2, 5), vec![3]),
            original[2].clone(),
        ],
        vec![
            original[0].clone(),
            original[2].clone(),
            original[1].clone(),
        ],
        vec![
            original[0].clone(),
            (frame(2, 7), vec![2]),
            (frame(3, 9), vec![3]),
        ],
    ] {
        let caught = std::panic::catch_unwind(|| check_replay(&original, &broken, tolerance));
        assert!(caught.is_err(), "{broken:?} passed");
    }
}

#[test]
fn a_killed_recorder_leaves_every_complete_chunk_readable() {
    let _serial = serial();
    let lane = unique("killed");
    let scratch = Scratch::new("killed");
    let file = scratch.file();
    let spec = TensorSpec::new(DType::F32, &[3, 4]).unwrap();
    let mut publisher = TopicPublisher::create(&lane, &spec, 64, 4).unwrap();
    let (recorder, _) = start(&[
        "record",
        &lane,
        "-o",
        file.to_str().unwrap(),
        "--lossless",
        "--chunk-interval",
        "0.02",
    ]);
    for i in 0..40 {
        publisher.publish(&tensor(i)).unwrap();
        thread::sleep(Duration::from_millis(2));
    }
    // Long enough for the recorder to cut a chunk after the 40th frame; then more
    // frames, and a kill in their midst.
    thread::sleep(Duration::from_millis(300));
    for i in 40..50 {
        publisher.publish(&tensor(i)).unwrap();
    }
    signal(&recorder, libc::SIGKILL);
    let mut recorder = recorder;
    recorder.wait().unwrap();
    drop(publisher);
    unlink(&lane);

    let recording = Recording::parse(&std::fs::read(&file).unwrap()).unwrap();
    assert!(recording.truncated.is_some(), "the file has no end");
    assert!(
        recording.frames.len() >= 40,
        "{} frames",
        recording.frames.len()
    );
    for (i, f) in recording.frames.iter().enumerate() {
        assert_eq!(f.tensor, tensor(i as u32), "frame {i}");
        assert_eq!(f.frame.seq, i as u64 + 1);
    }
}

#[test]
fn a_lossy_recorder_never_holds_the_publisher_back() {
    let _serial = serial();
    let lane = unique("lossy");
    let scratch = Scratch::new("lossy");
    let file = scratch.file();
    let spec = TensorSpec::bytes(1024).unwrap();
    let mut publisher = TopicPublisher::create(&lane, &spec, 4, 2).unwrap();
    let (recorder, _) = start(&["record", &lane, "-o", file.to_str().unwrap()]);
    let payload = vec![7u8; 1024];
    // A lossless reader this far behind a 4-slot ring would make try_publish Full.
    for _ in 0..20_000 {
        publisher.try_publish(&payload).unwrap();
    }
    thread::sleep(Duration::from_millis(100));
    signal(&recorder, libc::SIGTERM);
    finish(recorder);
    drop(publisher);
    unlink(&lane);
    let recording = Recording::parse(&std::fs::read(&file).unwrap()).unwrap();
    let frames = &recording.frames;
    assert!(!frames.is_empty());
    let mut previous = 0;
    for f in frames {
        assert!(f.frame.seq > previous, "in order");
        assert_eq!(
            f.frame.seq - previous - 1,
            f.frame.missed,
            "skips are counted"
        );
        previous = f.frame.seq;
    }
}

#[test]
fn a_stream_is_recorded_by_read_new_and_replayed_with_its_ids() {
    let _serial = serial();
    let lane = unique("stream");
    let scratch = Scratch::new("stream");
    let file = scratch.file();
    let spec = TensorSpec::new(DType::U8, &[2, 3, 3]).unwrap();
    let mut writer = StreamWriter::create(&lane, &spec, 2).unwrap();
    let (recorder, _) = start(&["record", &lane, "-o", file.to_str().unwrap(), "--images"]);
    for i in 0..20u8 {
        writer.write_frame(&[i; 18], 1000 + u64::from(i)).unwrap();
        thread::sleep(Duration::from_millis(5));
    }
    thread::sleep(Duration::from_millis(50));
    signal(&recorder, libc::SIGINT);
    finish(recorder);
    drop(writer);
    unlink(&lane);
    let recording = Recording::parse(&std::fs::read(&file).unwrap()).unwrap();
    // A stream reader's first read counts nothing missed (writes before it are not
    // skips): the count starts at the first recorded frame.
    let mut previous = recording.frames[0].frame.seq - 1;
    for f in &recording.frames {
        assert_eq!(f.frame.seq - previous - 1, f.frame.missed);
        assert_eq!(f.frame.frame_id, 999 + f.frame.seq);
        assert_eq!(f.tensor, vec![(f.frame.seq - 1) as u8; 18]);
        previous = f.frame.seq;
    }
    assert_eq!(previous, 20, "the last value is recorded");

    // Replayed at once; the stream then holds the last recorded value and id.
    let started = Instant::now();
    let (replayer, _) = start(&[
        "replay",
        file.to_str().unwrap(),
        "--prefix",
        "re-",
        "--as-fast-as-possible",
    ]);
    finish(replayer);
    assert!(started.elapsed() < Duration::from_secs(5));
    let replayed_lane = format!("re-{lane}");
    let mut reader = tensorlane_shm::StreamReader::open(&replayed_lane).unwrap();
    let mut out = [0u8; 18];
    let frame = reader.read(&mut out).unwrap();
    assert_eq!((frame.frame_id, out), (1019, [19u8; 18]));
    drop(reader);
    unlink(&replayed_lane);
}

#[test]
fn a_queue_is_consumed_by_the_recorder_and_replayed_losslessly() {
    let _serial = serial();
    let lane = unique("queue");
    let scratch = Scratch::new("queue");
    let file = scratch.file();
    let spec = TensorSpec::new(DType::U16, &[5]).unwrap();
    let mut producer = tensorlane_shm::QueueProducer::create(&lane, &spec, 8).unwrap();
    let (recorder, _) = start(&[
        "record",
        &lane,
        "-o",
        file.to_str().unwrap(),
        "--duration",
        "0.5",
    ]);
    // Four times the capacity: the producer waits for the recorder (a queue is lossless).
    for i in 0..32u16 {
        producer
            .push_elements_timeout(&[i; 5], Duration::from_secs(5))
            .unwrap();
    }
    let summary = finish(recorder);
    assert!(
        summary.contains(&format!("{lane}: 32 frames, 0 missed")),
        "{summary}"
    );
    drop(producer);
    unlink(&lane);

    let (replayer, line) = start(&[
        "replay",
        file.to_str().unwrap(),
        "--prefix",
        "re-",
        "--as-fast-as-possible",
    ]);
    assert!(line.starts_with("created 1 lane(s)"), "{line}");
    let replayed_lane = format!("re-{lane}");
    let mut consumer = tensorlane_shm::QueueConsumer::open(&replayed_lane).unwrap();
    let mut out = [0u16; 5];
    for i in 0..32u16 {
        let frame = consumer
            .pop_elements_timeout(&mut out, Duration::from_secs(5))
            .unwrap();
        assert_eq!((frame.frame_id, out), (u64::from(i) + 1, [i; 5]));
    }
    finish(replayer);
    drop(consumer);
    unlink(&replayed_lane);
}

#[test]
fn a_looped_replay_goes_on_until_stopped() {
    let _serial = serial();
    let lane = unique("loop");
    let scratch = Scratch::new("loop");
    let file = scratch.file();
    let spec = TensorSpec::new(DType::U8, &[4]).unwrap();
    let mut writer = StreamWriter::create(&lane, &spec, 2).unwrap();
    let (recorder, _) = start(&["record", &lane, "-o", file.to_str().unwrap()]);
    for i in 0..3u8 {
        writer.write(&[i; 4]).unwrap();
        thread::sleep(Duration::from_millis(20));
    }
    signal(&recorder, libc::SIGINT);
    finish(recorder);
    drop(writer);
    unlink(&lane);

    // Three frames 20 ms apart, at 4x: one pass takes about 10 ms.
    let (replayer, _) = start(&[
        "replay",
        file.to_str().unwrap(),
        "--prefix",
        "re-",
        "--loop",
        "--rate",
        "4",
    ]);
    thread::sleep(Duration::from_millis(300));
    signal(&replayer, libc::SIGINT);
    let rest = finish(replayer);
    let written: u64 = rest
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{rest}"));
    assert!(written > 3 * 5, "{written} frames in 300 ms");
    unlink(&format!("re-{lane}"));
}
