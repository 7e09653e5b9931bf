//! Lanes within one process (each handle has its own descriptor, so role locks
//! behave as between processes). Cross-process behaviour: tests/processes.rs.
#![cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]

use std::time::Duration;
use tensorlane_shm::*;

fn unique(name: &str) -> String {
    format!("test-{name}-{}", std::process::id())
}

struct Unlink(String);
impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = segment::unlink(&LaneName::new(&self.0).unwrap());
    }
}

#[test]
fn stream_round_trip_and_takeover() {
    let name = unique("stream");
    let _cleanup = Unlink(name.clone());
    let spec = TensorSpec::new(DType::F32, &[4]).unwrap();
    let mut writer = StreamWriter::create(&name, &spec, 2).unwrap();
    assert!(matches!(
        StreamWriter::create(&name, &spec, 2),
        Err(LaneError::Exists(_))
    ));
    let mut reader = StreamReader::open_expect(&name, &spec).unwrap();
    let mut out = [0f32; 4];
    assert!(matches!(
        reader.read(bytemuck::cast_slice_mut(&mut out)),
        Err(LaneError::Empty)
    ));
    writer.write_elements(&[1.0f32, 2.0, 3.0, 4.0]).unwrap();
    let frame = reader.read_elements(&mut out).unwrap();
    assert_eq!(
        (frame.seq, frame.frame_id, out),
        (1, 1, [1.0, 2.0, 3.0, 4.0])
    );
    assert!(reader.writer_alive());
    assert!(matches!(
        StreamWriter::take_over(&name),
        Err(LaneError::RoleTaken { .. })
    ));
    drop(writer);
    assert!(!reader.writer_alive());
    assert!(matches!(
        reader.read_new_timeout(bytemuck::cast_slice_mut(&mut out), Duration::from_secs(2)),
        Err(LaneError::WriterGone)
    ));
    let mut writer = StreamWriter::take_over(&name).unwrap();
    assert_eq!(writer.write_elements(&[5.0f32; 4]).unwrap(), 2);
    let frame = reader
        .read_new_timeout(bytemuck::cast_slice_mut(&mut out), Duration::from_secs(1))
        .unwrap();
    assert_eq!((frame.seq, frame.frame_id, out[0]), (2, 2, 5.0));
    let wrong = TensorSpec::new(DType::F64, &[4]).unwrap();
    assert!(matches!(
        StreamReader::open_expect(&name, &wrong),
        Err(LaneError::WrongSpec { .. })
    ));
    assert!(matches!(
        QueueConsumer::open(&name),
        Err(LaneError::WrongKind { .. })
    ));
}

#[test]
fn queue_blocking_and_zero_copy() {
    let name = unique("queue");
    let _cleanup = Unlink(name.clone());
    let spec = TensorSpec::bytes(64).unwrap();
    let mut producer = QueueProducer::create(&name, &spec, 2).unwrap();
    let mut consumer = QueueConsumer::open(&name).unwrap();
    assert!(matches!(
        QueueConsumer::open(&name),
        Err(LaneError::RoleTaken { .. })
    ));
    producer.try_push(&[1; 64]).unwrap();
    // SAFETY: both ends of the queue are this test, which follows docs/LAYOUT.md.
    unsafe { producer.try_push_with(|bytes| bytes.fill(2)) }.unwrap();
    assert!(matches!(
        producer.push_timeout(&[3; 64], Duration::from_millis(20)),
        Err(LaneError::Timeout)
    ));
    let mut out = [0u8; 64];
    let frame = consumer.try_pop(&mut out).unwrap();
    assert_eq!((frame.seq, frame.frame_id, out[0]), (1, 1, 1));
    // SAFETY: as for `push_with` above.
    let (seq, first) =
        unsafe { consumer.try_pop_with(|frame, bytes| (frame.seq, bytes[0])) }.unwrap();
    assert_eq!((seq, first), (2, 2));
    let waiter = std::thread::spawn(move || {
        let mut out = [0u8; 64];
        consumer
            .pop_timeout(&mut out, Duration::from_secs(5))
            .map(|_| out[0])
    });
    std::thread::sleep(Duration::from_millis(50));
    producer.push(&[9; 64]).unwrap();
    assert_eq!(waiter.join().unwrap().unwrap(), 9);
}

#[test]
fn topic_lossless_backpressure_and_lossy_skips() {
    let name = unique("topic");
    let _cleanup = Unlink(name.clone());
    let spec = TensorSpec::new(DType::U64, &[1]).unwrap();
    let mut publisher = TopicPublisher::create(&name, &spec, 2, 4).unwrap();
    let mut slow = TopicSubscriber::open(&name, SubscribeOptions::lossless()).unwrap();
    let mut lossy = TopicSubscriber::open(&name, SubscribeOptions::lossy(1)).unwrap();
    publisher.try_publish_elements(&[0u64]).unwrap();
    publisher.try_publish_elements(&[1u64]).unwrap();
    // The live lossless subscriber holds the publisher back: no eviction.
    assert!(matches!(
        publisher.publish_elements_timeout(&[2u64], Duration::from_millis(20)),
        Err(LaneError::Timeout)
    ));
    assert_eq!(publisher.evicted(), 0);
    let mut out = [0u64; 1];
    let frame = lossy.try_recv_elements(&mut out).unwrap();
    assert_eq!((frame.seq, frame.missed, out[0]), (2, 1, 1));
    assert_eq!(slow.try_recv_elements(&mut out).unwrap().seq, 1);
    publisher.try_publish_elements(&[2u64]).unwrap();
    let mut history = [0u64; 2];
    let frames = lossy
        .last_k(2, bytemuck::cast_slice_mut(&mut history))
        .unwrap();
    assert_eq!((frames.len(), history), (2, [1, 2]));
}

#[test]
fn pop_and_pop_with_remove_an_item_of_impossible_length_alike() {
    use std::os::unix::fs::FileExt;
    let name = unique("badlen");
    let _cleanup = Unlink(name.clone());
    let spec = TensorSpec::bytes(64).unwrap();
    let mut producer = QueueProducer::create(&name, &spec, 4).unwrap();
    let mut consumer = QueueConsumer::open(&name).unwrap();
    for v in 1..=3u8 {
        producer.try_push(&[v; 64]).unwrap();
    }
    // Items 0 and 1 get a length word the lane cannot carry (LAYOUT.md: the ring's
    // control block after the 1024-byte segment header, then 128-byte slots whose
    // word 1 is the length).
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm/tensorlane.{name}"))
        .unwrap();
    for (slot, bad) in [(0u64, 40u64), (1, 1 << 40)] {
        file.write_at(&bad.to_le_bytes(), 1024 + 384 + slot * 128 + 8)
            .unwrap();
    }
    let mut out = [0u8; 64];
    assert!(matches!(
        consumer.try_pop(&mut out),
        Err(LaneError::Corrupt(_))
    ));
    // SAFETY: every process writing the lane is this test, which corrupts only a
    // length word, and never while a loan is out.
    let second = unsafe { consumer.try_pop_with(|_, bytes| bytes[0]) };
    assert!(matches!(second, Err(LaneError::Corrupt(_))), "{second:?}");
    // Both removed the item they reported: the ring moves on.
    let frame = consumer.try_pop(&mut out).unwrap();
    assert_eq!((frame.seq, out[0]), (3, 3));
}

#[test]
fn typed_calls_check_dtype_and_count() {
    let name = unique("typed");
    let _cleanup = Unlink(name.clone());
    let spec = TensorSpec::new(DType::F32, &[4]).unwrap();
    let mut writer = StreamWriter::create(&name, &spec, 2).unwrap();
    // Four f32 are sixteen bytes, as are two f64: the byte size alone would pass.
    assert!(matches!(
        writer.write_elements(&[0f64; 2]),
        Err(LaneError::WrongDType {
            expected: DType::F32,
            found: DType::F64
        })
    ));
    assert!(matches!(
        writer.write_elements(&[0f32; 3]),
        Err(LaneError::WrongCount {
            expected: 4,
            found: 3
        })
    ));
    writer.write_elements(&[1f32; 4]).unwrap();
    let mut reader = StreamReader::open(&name).unwrap();
    assert!(matches!(
        reader.read_elements(&mut [0u32; 4]),
        Err(LaneError::WrongDType { .. })
    ));
    let mut out = [0f32; 4];
    assert_eq!(reader.read_elements(&mut out).unwrap().seq, 1);
    assert_eq!(out, [1.0; 4]);
}

#[test]
fn a_bool_lane_refuses_bytes_other_than_0_and_1() {
    let name = unique("bools");
    let _cleanup = Unlink(name.clone());
    let spec = TensorSpec::new(DType::Bool, &[3]).unwrap();
    let mut writer = StreamWriter::create(&name, &spec, 2).unwrap();
    let mut reader = StreamReader::open(&name).unwrap();
    writer.write_elements(&[true, false, true]).unwrap();
    let mut out = [false; 3];
    reader.read_elements(&mut out).unwrap();
    assert_eq!(out, [true, false, true]);
    // The untyped path can write any byte.
    writer.write(&[1, 2, 0]).unwrap();
    assert!(matches!(
        reader.read_elements(&mut out),
        Err(LaneError::InvalidBool { index: 1, byte: 2 })
    ));
    assert_eq!(out, [true, false, true]);
}

#[test]
fn a_drained_queue_or_topic_without_its_writer_side_ends() {
    let name = unique("eos-queue");
    let _cleanup = Unlink(name.clone());
    let spec = TensorSpec::bytes(8).unwrap();
    let mut producer = QueueProducer::create(&name, &spec, 4).unwrap();
    let mut consumer = QueueConsumer::open(&name).unwrap();
    producer.push(&[5; 8]).unwrap();
    // Dropped in another thread: its role lock goes with it.
    std::thread::spawn(move || drop(producer)).join().unwrap();
    let mut out = [0u8; 8];
    // The item pushed before the producer went is delivered first.
    assert_eq!(
        consumer
            .pop_timeout(&mut out, Duration::from_secs(5))
            .unwrap()
            .seq,
        1
    );
    assert!(matches!(consumer.try_pop(&mut out), Err(LaneError::Empty)));
    assert!(matches!(
        consumer.pop_timeout(&mut out, Duration::from_secs(5)),
        Err(LaneError::WriterGone)
    ));
    assert!(matches!(consumer.pop(&mut out), Err(LaneError::WriterGone)));

    let name = unique("eos-topic");
    let _cleanup = Unlink(name.clone());
    let mut publisher = TopicPublisher::create(&name, &spec, 4, 2).unwrap();
    let mut subscriber = TopicSubscriber::open(&name, SubscribeOptions::lossless()).unwrap();
    publisher.publish(&[6; 8]).unwrap();
    std::thread::spawn(move || drop(publisher)).join().unwrap();
    assert_eq!(subscriber.recv(&mut out).unwrap().seq, 1);
    assert!(matches!(
        subscriber.recv(&mut out),
        Err(LaneError::WriterGone)
    ));
}

#[test]
fn queue_slots_held_across_calls() {
    let name = unique("held");
    let _cleanup = Unlink(name.clone());
    let spec = TensorSpec::bytes(16).unwrap();
    let mut producer = QueueProducer::create(&name, &spec, 2).unwrap();
    let mut consumer = QueueConsumer::open(&name).unwrap();
    // SAFETY: both ends of the queue are this test, which follows docs/LAYOUT.md, and
    // each address is used only while its `HeldSlot` lives, unfinished.
    unsafe {
        let held = producer.hold_slot(Wait::Never).unwrap();
        assert_eq!((held.len(), held.seq()), (16, 1));
        // Given up: nothing is pushed, and the next hold gets the same slot.
        drop(held);
        assert!(matches!(
            consumer.try_pop(&mut [0; 16]),
            Err(LaneError::Empty)
        ));
        let held = producer.hold_slot(Wait::Never).unwrap();
        std::ptr::write_bytes(held.as_ptr(), 5, held.len());
        let stale = producer.hold_slot(Wait::Never).unwrap();
        assert_eq!(producer.commit_held(held).unwrap(), 1);
        // A second commit of the same position is refused: it is no longer the tail.
        assert!(matches!(
            producer.commit_held(stale),
            Err(LaneError::Other(_))
        ));
        producer.try_push(&[6; 16]).unwrap();
        assert!(matches!(
            producer.hold_slot(Wait::Never),
            Err(LaneError::Full)
        ));

        let (frame, item) = consumer.hold_item(Wait::Never).unwrap();
        assert_eq!((frame.seq, frame.frame_id, item.seq()), (1, 1, 1));
        assert_eq!(
            std::slice::from_raw_parts(item.as_ptr(), item.len()),
            &[5; 16]
        );
        // Held, not removed: the producer is still full, a second hold sees it again.
        assert!(matches!(producer.try_push(&[7; 16]), Err(LaneError::Full)));
        let (again, stale) = consumer.hold_item(Wait::Never).unwrap();
        assert_eq!(again.seq, 1);
        consumer.release_held(item).unwrap();
        assert!(matches!(
            consumer.release_held(stale),
            Err(LaneError::Other(_))
        ));
        let mut out = [0; 16];
        assert_eq!(consumer.try_pop(&mut out).unwrap().seq, 2);
        assert_eq!(out, [6; 16]);
        assert!(matches!(
            consumer.hold_item(Wait::Never),
            Err(LaneError::Empty)
        ));
    }
}

#[test]
fn removing_an_item_of_impossible_length_wakes_a_waiting_producer() {
    use std::os::unix::fs::FileExt;
    use tensorlane_shm::header::Futex;
    let name = unique("badlen-wake");
    let _cleanup = Unlink(name.clone());
    let spec = TensorSpec::bytes(64).unwrap();
    let mut producer = QueueProducer::create(&name, &spec, 2).unwrap();
    let mut consumer = QueueConsumer::open(&name).unwrap();
    producer.try_push(&[1; 64]).unwrap();
    producer.try_push(&[2; 64]).unwrap();
    // Item 0 gets a length the lane cannot carry (as in the test above).
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm/tensorlane.{name}"))
        .unwrap();
    file.write_at(&40u64.to_le_bytes(), 1024 + 384 + 8).unwrap();
    let waiter =
        std::thread::spawn(move || producer.push_timeout(&[3; 64], Duration::from_secs(10)));
    std::thread::sleep(Duration::from_millis(300)); // asleep on the space futex by now
    let before = Futex::wake_calls();
    assert!(matches!(
        consumer.try_pop(&mut [0; 64]),
        Err(LaneError::Corrupt(_))
    ));
    // The removal freed a slot and woke the producer (a FUTEX_WAKE), rather than
    // leaving it to its next timed check.
    assert!(Futex::wake_calls() > before, "the removal woke nobody");
    assert_eq!(waiter.join().unwrap().unwrap(), 3);
}
