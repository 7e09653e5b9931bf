//! Two bridge processes on loopback (`tcp/127.0.0.1`, explicit endpoints, multicast
//! scouting off): a writer behind the exporting bridge, readers behind the importing
//! one, each with its own lane names. Histories are checked by the model's checkers.
//!
//! Every payload is a tensor of `WORDS` u64 words, each equal to the item's source
//! frame id: a reader records the frame id if all words agree with it (and with
//! the frame's `frame_id`), `TORN` otherwise.

#![cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]

mod common;

use common::canary::{Bug, CanaryExporter};
use common::*;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tensorlane_bridge::wire::{self, ItemInfo, LaneDesc};
use tensorlane_model::{
    check_lossless_complete, check_lossy, check_register_reader, Delivery, RegisterObservation,
};
use tensorlane_shm::{
    Clock, DType, Kind, LaneError, Metadata, QueueConsumer, QueueProducer, StreamReader,
    StreamWriter, SubscribeOptions, TensorSpec, TopicPublisher, TopicSubscriber,
};
use zenoh::Wait;

/// What stands behind the source lane: the exporting bridge or a canary.
type StartExporter = fn(&Pair, &str) -> Box<dyn std::any::Any>;

fn real_exporter(pair: &Pair, src: &str) -> Box<dyn std::any::Any> {
    Box::new(pair.exporter(src, &[]))
}

#[test]
fn a_stream_crosses_newest_first_never_stale() {
    stream_scenario(real_exporter);
}

#[test]
#[should_panic(expected = "WrongValue")]
fn canary_a_tearing_exporter_fails_the_stream_scenario() {
    stream_scenario(|pair, src| Box::new(CanaryExporter::start(pair, src, Bug::TearHalf)));
}

/// A writer behind the exporter, a reader behind the importer: the register
/// checker, and source frame ids that only go up.
fn stream_scenario(start_exporter: StartExporter) {
    let pair = Pair::new();
    let src = unique("s");
    let dst = format!("b-{src}");
    let _lanes = Lanes(vec![src.clone(), dst.clone()]);
    let mut writer = StreamWriter::create(&src, &spec(), 3).unwrap();
    writer.write(&payload(1)).unwrap();
    let _exporter = start_exporter(&pair, &src);
    let _importer = pair.importer("b-");
    // The exporter sends the latest value when the importer appears.
    let mut reader = wait_open(|| StreamReader::open_expect(&dst, &spec()));
    let mut buf = vec![0u8; spec().byte_len()];
    let first = reader.read_new_timeout(&mut buf, LIMIT).unwrap();
    assert_eq!((first.frame_id, value_of(&first, &buf)), (1, 1));

    const LAST: u64 = 3000;
    let writing = std::thread::spawn(move || {
        for id in 2..=LAST {
            writer.write(&payload(id)).unwrap();
            std::thread::sleep(Duration::from_micros(100));
        }
        writer
    });
    let mut observations = vec![RegisterObservation {
        seq: first.seq,
        value: 1,
        missed: first.missed,
    }];
    let deadline = Instant::now() + LIMIT;
    let mut last_id = 1;
    while last_id != LAST {
        assert!(Instant::now() < deadline, "the last value did not arrive");
        match reader.read_new_timeout(&mut buf, Duration::from_millis(100)) {
            Ok(frame) => {
                last_id = frame.frame_id;
                observations.push(RegisterObservation {
                    seq: frame.seq,
                    value: value_of(&frame, &buf),
                    missed: frame.missed,
                })
            }
            Err(LaneError::Timeout) => {}
            Err(e) => panic!("{e}"),
        }
    }
    let _writer = writing.join().unwrap();
    check_register_reader(&observations, |_, &v| v != TORN).unwrap();
    // Source frame ids only go up (never a stale value after a newer one).
    for pair in observations.windows(2) {
        assert!(pair[1].value > pair[0].value, "{pair:?}");
    }
    eprintln!(
        "stream: {} of {LAST} values seen behind the importer",
        observations.len()
    );
}

#[test]
fn a_queue_crosses_every_item_once_in_order() {
    let (pair, src, importer) = queue_scenario(real_exporter, &[]);
    let import_log = importer.stop();
    let key = format!("import {}/{src}", pair.prefix);
    assert_eq!(stat(&import_log, &key, "forwarded"), QUEUE_ITEMS);
    assert_eq!(stat(&import_log, &key, "lost"), 0);
    assert_eq!(stat(&import_log, &key, "refused"), 0);
}

/// `--zero-copy` on both sides: items lent to Zenoh in place by the exporter and
/// written straight into held slots by the importer, under the same checker.
#[test]
fn a_queue_crosses_in_place_every_item_once_in_order() {
    let in_place: StartExporter = |pair, src| Box::new(pair.exporter(src, &["--zero-copy"]));
    let (pair, src, importer) = queue_scenario(in_place, &["--zero-copy"]);
    let import_log = importer.stop();
    let key = format!("import {}/{src}", pair.prefix);
    assert_eq!(stat(&import_log, &key, "forwarded"), QUEUE_ITEMS);
    assert_eq!(stat(&import_log, &key, "lost"), 0);
}

#[test]
#[should_panic(expected = "WrongValue")]
fn canary_a_renumbering_exporter_fails_the_queue_scenario() {
    queue_scenario(
        |pair, src| Box::new(CanaryExporter::start(pair, src, Bug::RenumberAfterDrop)),
        &[],
    );
}

const QUEUE_ITEMS: u64 = 5000;

/// A producer behind the exporter, the consumer behind the importer: every item
/// once, in order, untorn, complete. Returns the importer, still running.
fn queue_scenario(start_exporter: StartExporter, importer: &[&str]) -> (Pair, String, Bridge) {
    let pair = Pair::new();
    let src = unique("q");
    let dst = format!("b-{src}");
    let _lanes = Lanes(vec![src.clone(), dst.clone()]);
    let mut producer = QueueProducer::create(&src, &spec(), 16).unwrap();
    let _exporter = start_exporter(&pair, &src);
    let importer = pair.importer_with("b-", importer);
    const N: u64 = QUEUE_ITEMS;
    // The producer runs ahead and blocks on a full queue: the bridge's backpressure.
    let writing = std::thread::spawn(move || {
        for id in 1..=N {
            producer.push_timeout(&payload(id), LIMIT).unwrap();
        }
        producer
    });
    let mut consumer = wait_open(|| QueueConsumer::open_expect(&dst, &spec()));
    assert_eq!(
        consumer.info().count,
        16,
        "the importer used the source capacity"
    );
    let mut buf = vec![0u8; spec().byte_len()];
    let mut items = Vec::new();
    // Until N items, or 3 s without one (a run that lost items ends there).
    while (items.len() as u64) < N {
        match consumer.pop_timeout(&mut buf, Duration::from_secs(3)) {
            Ok(frame) => items.push(Delivery {
                position: frame.seq - 1,
                value: value_of(&frame, &buf),
                missed: frame.missed,
            }),
            Err(LaneError::Timeout) => break,
            Err(e) => panic!("{e}"),
        }
    }
    let _producer = writing.join().unwrap();
    // Position p holds the item with source frame id p + 1.
    check_lossless_complete(0, 0, N, &items, |p, &v| v == p + 1).unwrap();
    assert!(matches!(
        consumer.pop_timeout(&mut buf, Duration::from_millis(300)),
        Err(LaneError::Timeout)
    ));
    (pair, src, importer)
}

#[test]
fn a_lossless_topic_crosses_every_item_once_in_order() {
    let pair = Pair::new();
    let src = unique("t");
    let dst = format!("b-{src}");
    let _lanes = Lanes(vec![src.clone(), dst.clone()]);
    let mut publisher = TopicPublisher::create(&src, &spec(), 16, 4).unwrap();
    // Published before any bridge runs: the exporter joins with the ring's history.
    publisher.publish(&payload(1)).unwrap();
    let _exporter = pair.exporter(&src, &[]);
    let _importer = pair.importer("b-");
    // Join the imported topic with its history, so the first item is not missed.
    let options = SubscribeOptions::lossless().with_history(16);
    let mut subscriber = wait_open(|| TopicSubscriber::open_expect(&dst, &spec(), options));
    let (start, lost) = (subscriber.head(), subscriber.lost_at_join());
    const N: u64 = 4000;
    let writing = std::thread::spawn(move || {
        for id in 2..=N {
            publisher.publish_timeout(&payload(id), LIMIT).unwrap();
        }
        publisher
    });
    let mut buf = vec![0u8; spec().byte_len()];
    let mut items = Vec::new();
    while items.len() as u64 + start < N {
        let frame = subscriber.recv_timeout(&mut buf, LIMIT).unwrap();
        items.push(Delivery {
            position: frame.seq - 1,
            value: value_of(&frame, &buf),
            missed: frame.missed,
        });
    }
    let _publisher = writing.join().unwrap();
    assert_eq!((start, lost), (0, 0), "joined before a second item arrived");
    check_lossless_complete(start, lost, N, &items, |p, &v| v == p + 1).unwrap();
}

#[test]
fn a_lossy_topic_skips_forward_and_counts_every_drop() {
    let pair = Pair::new();
    let src = unique("l");
    let dst = format!("b-{src}");
    let _lanes = Lanes(vec![src.clone(), dst.clone()]);
    let mut publisher = TopicPublisher::create(&src, &spec(), 8, 4).unwrap();
    publisher.publish(&payload(1)).unwrap();
    let exporter = pair.exporter(&src, &["--topic-mode", "lossy", "--max-lag", "2"]);
    let importer = pair.importer("b-");
    let options = SubscribeOptions::lossless().with_history(8);
    let mut subscriber = wait_open(|| TopicSubscriber::open_expect(&dst, &spec(), options));
    let mut buf = vec![0u8; spec().byte_len()];
    // The first item, then a burst far faster than the bridge.
    let first = subscriber.recv_timeout(&mut buf, LIMIT).unwrap();
    let mut received = vec![value_of(&first, &buf)];
    const N: u64 = 20_000;
    let writing = std::thread::spawn(move || {
        for id in 2..=N {
            publisher.publish(&payload(id)).unwrap();
        }
        publisher
    });
    let _publisher = writing.join().unwrap();
    // Drain until the bridge has been quiet for a while (the newest item may be lost
    // too; nothing is retransmitted).
    loop {
        match subscriber.recv_timeout(&mut buf, Duration::from_millis(1000)) {
            Ok(frame) => {
                assert_eq!(frame.missed, 0, "the local subscriber is lossless");
                received.push(value_of(&frame, &buf));
            }
            Err(LaneError::Timeout) => break,
            Err(e) => panic!("{e}"),
        }
    }
    // Increasing source positions, untorn; the gaps are what the bridge must count.
    let mut previous = 0u64;
    let items: Vec<Delivery<u64>> = received
        .iter()
        .map(|&id| {
            assert_ne!(id, TORN);
            let d = Delivery {
                position: id - 1,
                value: id,
                missed: (id - 1).saturating_sub(previous),
            };
            previous = id;
            d
        })
        .collect();
    check_lossy(0, &items, |p, &v| v == p + 1).unwrap();
    let skipped: u64 = items.iter().map(|d| d.missed).sum();
    let (export_log, import_log) = (exporter.stop(), importer.stop());
    let key = format!("import {}/{src}", pair.prefix);
    let forwarded = stat(&import_log, &key, "forwarded");
    assert_eq!(forwarded, received.len() as u64);
    // Every item between the first and the last one received is either received or
    // counted, at the source (`missed`) or on the way (`lost`), exactly once.
    let counted = stat(&import_log, &key, "missed") + stat(&import_log, &key, "lost");
    assert_eq!(counted, skipped, "{import_log}");
    // The exporter saw what it forwarded plus what its lossy subscriber skipped.
    let export = format!("export {src}");
    let last = *received.last().unwrap();
    assert!(stat(&export_log, &export, "forwarded") + stat(&export_log, &export, "missed") >= last);
    eprintln!(
        "lossy topic: {} of {N} items crossed, {skipped} skipped and counted",
        received.len()
    );
}

#[test]
fn killed_bridges_resume_without_torn_or_stale_values() {
    let pair = Pair::new();
    let src = unique("k");
    let dst = format!("b-{src}");
    let _lanes = Lanes(vec![src.clone(), dst.clone()]);
    let mut writer = StreamWriter::create(&src, &spec(), 3).unwrap();
    writer.write(&payload(1)).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let exporter = pair.exporter(&src, &[]);
    let importer = pair.importer("b-");
    let mut reader = wait_open(|| StreamReader::open_expect(&dst, &spec()));
    let writing = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut id = 2;
            while !stop.load(Ordering::Relaxed) {
                writer.write(&payload(id)).unwrap();
                id += 1;
                std::thread::sleep(Duration::from_micros(200));
            }
            id - 1
        })
    };
    let mut buf = vec![0u8; spec().byte_len()];
    let mut observations = Vec::new();
    // Reads until the reader has seen a frame id above `above`.
    let mut read_past = |above: u64, observations: &mut Vec<RegisterObservation<u64>>| {
        let deadline = Instant::now() + LIMIT;
        loop {
            assert!(Instant::now() < deadline, "no value above {above}");
            match reader.read_new_timeout(&mut buf, Duration::from_millis(50)) {
                Ok(frame) => {
                    let value = value_of(&frame, &buf);
                    observations.push(RegisterObservation {
                        seq: frame.seq,
                        value,
                        missed: frame.missed,
                    });
                    if value != TORN && value > above {
                        return value;
                    }
                }
                // The importer is down: the last complete value stays readable.
                Err(LaneError::Timeout) | Err(LaneError::WriterGone) => {}
                Err(e) => panic!("{e}"),
            }
        }
    };
    let seen = read_past(100, &mut observations);
    importer.kill();
    std::thread::sleep(Duration::from_millis(300));
    let importer = pair.importer("b-");
    let seen = read_past(seen + 100, &mut observations);
    exporter.kill();
    std::thread::sleep(Duration::from_millis(300));
    let exporter = pair.exporter(&src, &[]);
    read_past(seen + 100, &mut observations);
    stop.store(true, Ordering::Relaxed);
    writing.join().unwrap();
    check_register_reader(&observations, |_, &v| v != TORN).unwrap();
    for pair in observations.windows(2) {
        if pair[1].seq != pair[0].seq {
            assert!(pair[1].value > pair[0].value, "stale: {pair:?}");
        }
    }
    drop((exporter, importer));
}

#[test]
fn hostile_payloads_are_refused_and_logged_never_written() {
    let port = free_port();
    let prefix = format!("tensorlane/{}", unique("evil"));
    let good = unique("good");
    let names: Vec<String> = (0..7).map(|i| unique(&format!("bad{i}"))).collect();
    // A valid sample for a second lane, sent last: above --max-lanes 1.
    let second = unique("second");
    let mut lanes: Vec<String> = names.iter().map(|n| format!("b-{n}")).collect();
    lanes.push(format!("b-{good}"));
    lanes.push(format!("b-{second}"));
    let _lanes = Lanes(lanes);
    let importer = Bridge::spawn(
        "import",
        &[
            "--listen".into(),
            format!("tcp/127.0.0.1:{port}"),
            "--import".into(),
            format!("{prefix}/*"),
            "--local-prefix".into(),
            "b-".into(),
            "--max-lane-bytes".into(),
            (4 * (spec().byte_len() + 64)).to_string(),
            "--max-lanes".into(),
            "1".into(),
        ],
    );
    let mut config = zenoh::Config::default();
    config
        .insert_json5("connect/endpoints", &format!("[\"tcp/127.0.0.1:{port}\"]"))
        .unwrap();
    config
        .insert_json5("scouting/multicast/enabled", "false")
        .unwrap();
    let session = zenoh::open(config).wait().unwrap();
    let desc = LaneDesc {
        kind: Kind::Stream,
        spec: spec(),
        count: 3,
        subscribers: 0,
        clock: Clock::Monotonic,
        metadata: Metadata::default(),
        lossless: false,
    };
    let item = |seq| ItemInfo {
        seq,
        frame_id: seq,
        timestamp_ns: 0,
        missed: 0,
    };
    let valid = wire::encode(&desc, &item(1), &payload(1));
    let mut wrong_size = valid.clone();
    wrong_size.truncate(valid.len() - 8);
    let mut bad_spec = desc.clone();
    bad_spec.spec = TensorSpec::new(DType::U64, &[WORDS as u64 + 1]).unwrap();
    // A valid message for a lane of 5 slots: above the importer's 4 slots' worth.
    let too_many_slots = LaneDesc {
        count: 5,
        ..desc.clone()
    };
    let mut huge = wire::encode(&desc, &item(1), &payload(1));
    huge[64..72].copy_from_slice(&(1u64 << 40).to_le_bytes());
    let bad: Vec<Vec<u8>> = vec![
        b"garbage, not a tensor".to_vec(),
        Vec::new(),
        wrong_size,
        huge,
        {
            let mut v = valid.clone();
            v[8] = 0xee; // unknown dtype
            v
        },
        {
            let mut v = valid.clone();
            v[24] ^= 1; // metadata checksum
            v
        },
        wire::encode(&too_many_slots, &item(1), &payload(1)),
    ];
    let put = |name: &str, bytes: Vec<u8>| {
        session
            .put(format!("{prefix}/{name}"), bytes)
            .wait()
            .unwrap()
    };
    // Wait until the importer's subscription reaches this session, then send.
    let good_key = format!("{prefix}/{good}");
    let publisher = session.declare_publisher(good_key).wait().unwrap();
    let deadline = Instant::now() + LIMIT;
    while !publisher.matching_status().wait().unwrap().matching() {
        assert!(Instant::now() < deadline, "the importer never subscribed");
        std::thread::sleep(Duration::from_millis(20));
    }
    for (name, bytes) in names.iter().zip(bad) {
        put(name, bytes);
    }
    put(&good, valid);
    // The same lane with another tensor, then a stale copy: neither is written.
    let longer: Vec<u8> = (0..=WORDS).flat_map(|_| 2u64.to_le_bytes()).collect();
    put(&good, wire::encode(&bad_spec, &item(2), &longer));
    put(&good, wire::encode(&desc, &item(1), &payload(9)));
    let mut reader = wait_open(|| StreamReader::open_expect(&format!("b-{good}"), &spec()));
    let mut buf = vec![0u8; spec().byte_len()];
    let frame = reader.read(&mut buf).unwrap();
    assert_eq!((frame.frame_id, value_of(&frame, &buf)), (1, 1));
    put(&second, wire::encode(&desc, &item(1), &payload(1)));
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        matches!(
            StreamReader::open(&format!("b-{second}")),
            Err(LaneError::NotFound(_))
        ),
        "a lane beyond --max-lanes was created"
    );
    assert_eq!(reader.published(), 1, "only the valid sample was written");
    for name in &names {
        assert!(
            matches!(
                StreamReader::open(&format!("b-{name}")),
                Err(LaneError::NotFound(_))
            ),
            "a lane was created from a refused sample"
        );
    }
    drop(publisher);
    let _ = session.close().wait();
    let log = importer.stop();
    let refusals = log.matches("refused a sample").count();
    // Each bad sample, the other spec on the good lane, and the second lane.
    assert_eq!(refusals, names.len() + 2, "{log}");
    assert!(log.contains("not a tensorlane bridge message"), "{log}");
    assert!(log.contains("lane description differs"), "{log}");
    assert!(log.contains("above --max-lane-bytes"), "{log}");
    assert!(log.contains("--max-lanes 1"), "{log}");
    let stale: u64 = stat(&log, &format!("import {prefix}/{good}"), "stale");
    assert_eq!(stale, 1);
}

/// Items larger than a Zenoh batch (64 KiB) cross in fragments, which the importer
/// joins: each item's every byte arrives, in order. The bytes differ by position and
/// frame id, so a fragment misplaced or taken from another item shows.
#[test]
fn items_larger_than_a_zenoh_batch_cross_whole() {
    large_items(&[]);
}

/// The same, lent in place and written into held slots (`--zero-copy`).
#[test]
fn items_larger_than_a_zenoh_batch_cross_whole_in_place() {
    large_items(&["--zero-copy"]);
}

fn large_items(extra: &[&str]) {
    const BYTES: usize = 300_000;
    const ITEMS: u64 = 40;
    let item = |id: u64| -> Vec<u8> {
        (0..BYTES)
            .map(|i| (i as u64).wrapping_mul(31).wrapping_add(id * 7) as u8)
            .collect()
    };
    let pair = Pair::new();
    let src = unique("big");
    let dst = format!("b-{src}");
    let _lanes = Lanes(vec![src.clone(), dst.clone()]);
    let big = TensorSpec::bytes(BYTES as u64).unwrap();
    let mut producer = QueueProducer::create(&src, &big, 4).unwrap();
    let _exporter = pair.exporter(&src, extra);
    let importer = pair.importer_with("b-", extra);
    let writing = std::thread::spawn(move || {
        for id in 1..=ITEMS {
            producer.push_timeout(&item(id), LIMIT).unwrap();
        }
        producer
    });
    let mut consumer = wait_open(|| QueueConsumer::open_expect(&dst, &big));
    let mut buf = vec![0u8; BYTES];
    for id in 1..=ITEMS {
        let frame = consumer.pop_timeout(&mut buf, LIMIT).unwrap();
        assert_eq!(frame.frame_id, id);
        assert!(buf == item(id), "item {id} arrived with other bytes");
    }
    let _producer = writing.join().unwrap();
    let log = importer.stop();
    assert_eq!(
        stat(&log, &format!("import {}/{src}", pair.prefix), "forwarded"),
        ITEMS
    );
}
