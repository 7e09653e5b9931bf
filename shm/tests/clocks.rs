//! Frame timestamps follow the clock chosen at create, and openers see that clock.
#![cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]

use std::time::Duration;
use tensorlane_shm::header::{checksum, field, HeaderError, HEADER_BYTES};
use tensorlane_shm::segment;
use tensorlane_shm::{
    Clock, CreateOptions, DType, LaneError, LaneName, QueueConsumer, QueueProducer, Segment,
    StreamReader, StreamWriter, SubscribeOptions, TensorSpec, TopicPublisher, TopicSubscriber,
};

struct Unlink(String);
impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = segment::unlink(&LaneName::new(&self.0).unwrap());
    }
}

fn unique(name: &str) -> String {
    format!("clocks-{name}-{}", std::process::id())
}

/// A reading of `id` straight from the kernel, independent of the library.
fn gettime(id: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call.
    assert_eq!(unsafe { libc::clock_gettime(id, &mut ts) }, 0);
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The reading the test expects `clock` to give, taken with `clock_gettime`.
fn reading(clock: Clock) -> Option<u64> {
    match clock {
        Clock::Monotonic => Some(gettime(libc::CLOCK_MONOTONIC)),
        Clock::Realtime => Some(gettime(libc::CLOCK_REALTIME)),
        Clock::None => None,
    }
}

/// Checks that a timestamp taken between `before` and `after` is in the right clock.
fn check(clock: Clock, before: Option<u64>, ts: u64, after: Option<u64>) {
    match (before, after) {
        (Some(before), Some(after)) => {
            assert!(
                (before..=after).contains(&ts),
                "{clock}: {before} <= {ts} <= {after}"
            )
        }
        _ => assert_eq!(ts, 0, "{clock}: a lane that does not stamp writes 0"),
    }
}

const CLOCKS: [Clock; 3] = [Clock::Monotonic, Clock::Realtime, Clock::None];

#[test]
fn the_default_clock_is_monotonic() {
    assert_eq!(CreateOptions::default().clock, Clock::Monotonic);
    let name = unique("default");
    let _cleanup = Unlink(name.clone());
    let spec = TensorSpec::new(DType::U32, &[2]).unwrap();
    let mut writer = StreamWriter::create(&name, &spec, 2).unwrap();
    let before = reading(Clock::Monotonic);
    writer.write_elements(&[1u32, 2]).unwrap();
    let after = reading(Clock::Monotonic);
    let mut reader = StreamReader::open(&name).unwrap();
    assert_eq!(reader.info().clock, Clock::Monotonic);
    let frame = reader.read_elements(&mut [0u32; 2]).unwrap();
    check(Clock::Monotonic, before, frame.timestamp_ns, after);
}

#[test]
fn streams_stamp_with_their_clock() {
    let spec = TensorSpec::new(DType::F32, &[3]).unwrap();
    for clock in CLOCKS {
        let name = unique(&format!("stream-{clock}"));
        let _cleanup = Unlink(name.clone());
        let options = CreateOptions::default().clock(clock);
        let mut writer = StreamWriter::create_with(&name, &spec, 2, options).unwrap();
        let mut reader = StreamReader::open(&name).unwrap();
        assert_eq!(reader.info().clock, clock, "the opener sees the clock");
        for _ in 0..3 {
            let before = reading(clock);
            writer.write_elements(&[1.0f32, 2.0, 3.0]).unwrap();
            let after = reading(clock);
            let frame = reader.read_elements(&mut [0f32; 3]).unwrap();
            check(clock, before, frame.timestamp_ns, after);
        }
    }
}

#[test]
fn queues_and_topics_stamp_with_their_clock() {
    let spec = TensorSpec::bytes(4).unwrap();
    let timeout = Duration::from_secs(1);
    for clock in CLOCKS {
        let options = CreateOptions::default().clock(clock);

        let name = unique(&format!("queue-{clock}"));
        let _cleanup = Unlink(name.clone());
        let mut producer = QueueProducer::create_with(&name, &spec, 2, options.clone()).unwrap();
        let mut consumer = QueueConsumer::open(&name).unwrap();
        let before = reading(clock);
        producer.push_timeout(&[1, 2, 3, 4], timeout).unwrap();
        let after = reading(clock);
        let frame = consumer.pop_timeout(&mut [0u8; 4], timeout).unwrap();
        check(clock, before, frame.timestamp_ns, after);
        let opened = Segment::open(&LaneName::new(&name).unwrap()).unwrap();
        assert_eq!(opened.info().clock, clock);

        let name = unique(&format!("topic-{clock}"));
        let _cleanup = Unlink(name.clone());
        let mut publisher = TopicPublisher::create_with(&name, &spec, 2, 1, options).unwrap();
        let mut subscriber = TopicSubscriber::open(&name, SubscribeOptions::lossless()).unwrap();
        assert_eq!(subscriber.info().clock, clock);
        let before = reading(clock);
        publisher.publish_timeout(&[5, 6, 7, 8], timeout).unwrap();
        let after = reading(clock);
        let frame = subscriber.recv_timeout(&mut [0u8; 4], timeout).unwrap();
        check(clock, before, frame.timestamp_ns, after);
    }
}

#[test]
fn clock_readings_match_the_kernel() {
    for clock in CLOCKS {
        let before = reading(clock);
        let now = clock.now_ns();
        let after = reading(clock);
        check(clock, before, now, after);
    }
}

#[test]
fn an_unknown_clock_code_is_refused_as_corrupt() {
    use std::io::{Seek, SeekFrom, Write};
    let name = unique("unknown");
    let _cleanup = Unlink(name.clone());
    let spec = TensorSpec::bytes(8).unwrap();
    let _writer = StreamWriter::create(&name, &spec, 2).unwrap();
    let path = format!("/dev/shm/tensorlane.{name}");
    let original = std::fs::read(&path).unwrap();
    for code in [0u64, 4, 0x100, u64::MAX] {
        let mut words: Vec<u64> = original[..HEADER_BYTES]
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
            .collect();
        words[field::CLOCK] = code;
        // A consistent header in every other respect: the checksum matches.
        words[field::CHECKSUM] = checksum(&words[..field::CHECKSUM]);
        let bytes: Vec<u8> = words[..field::COUNT_OF_FIELDS]
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.seek(SeekFrom::Start(0)).unwrap();
        file.write_all(&bytes).unwrap();
        match StreamReader::open(&name) {
            Err(LaneError::Header {
                source:
                    HeaderError::Field {
                        field: "clock",
                        found,
                        ..
                    },
                ..
            }) => assert_eq!(found, code),
            other => panic!("clock code {code}: {other:?}"),
        }
    }
    let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.write_all(&original[..HEADER_BYTES]).unwrap();
    assert!(StreamReader::open(&name).is_ok());
}
