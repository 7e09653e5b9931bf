//! The same bad input gives the same `LaneError` on every path: stream, queue and
//! topic; copy and in-place (`push_with`, `pop_with`); bytes and typed elements. The
//! core structures' errors reach `LaneError` through one mapping (shm/src/error.rs);
//! these tests hold every path to it.
#![cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]

use std::os::unix::fs::FileExt;
use tensorlane_shm::*;

/// Tensor bytes of every lane here: slots of 80 bytes (16-byte frame prefix), a
/// stride of 16 words (128 bytes), docs/LAYOUT.md section 7.
const TENSOR: usize = 64;
const FRAME: u64 = TENSOR as u64 + 16;
const STRIDE: u64 = 128;
/// Segment offsets of the bodies (docs/LAYOUT.md section 9): 1024-byte header, then
/// a 256-byte (stream) or 384-byte (queue, topic) control block.
const STREAM_BODY: u64 = 1280;
const RING_BODY: u64 = 1408;
/// Topic subscriber table entries (128 bytes each) before the topic's slots.
const SUBSCRIBERS: u64 = 2;

fn unique(name: &str) -> String {
    format!("test-errmap-{name}-{}", std::process::id())
}

struct Unlink(Vec<String>);
impl Drop for Unlink {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = segment::unlink(&LaneName::new(name).unwrap());
        }
    }
}

/// The three lanes, each with one reader side, all of `TENSOR` bytes of `dtype`.
struct Lanes {
    names: [String; 3],
    writer: StreamWriter,
    reader: StreamReader,
    producer: QueueProducer,
    consumer: QueueConsumer,
    publisher: TopicPublisher,
    subscriber: TopicSubscriber,
    _cleanup: Unlink,
}

fn lanes(tag: &str, dtype: DType) -> Lanes {
    let names = ["stream", "queue", "topic"].map(|kind| unique(&format!("{tag}-{kind}")));
    let cleanup = Unlink(names.to_vec());
    let spec = TensorSpec::new(dtype, &[(TENSOR / dtype.size()) as u64]).unwrap();
    assert_eq!(spec.byte_len(), TENSOR);
    let writer = StreamWriter::create(&names[0], &spec, 2).unwrap();
    let reader = StreamReader::open(&names[0]).unwrap();
    let producer = QueueProducer::create(&names[1], &spec, 4).unwrap();
    let consumer = QueueConsumer::open(&names[1]).unwrap();
    let publisher = TopicPublisher::create(&names[2], &spec, 4, SUBSCRIBERS as usize).unwrap();
    let subscriber = TopicSubscriber::open(&names[2], SubscribeOptions::lossless()).unwrap();
    Lanes {
        names,
        writer,
        reader,
        producer,
        consumer,
        publisher,
        subscriber,
        _cleanup: cleanup,
    }
}

/// Asserts that every path gave the same error, and returns it.
fn alike(results: Vec<(&str, Result<(), LaneError>)>) -> String {
    let shown: Vec<(&str, String)> = results
        .into_iter()
        .map(|(path, r)| (path, format!("{:?}", r.expect_err(path))))
        .collect();
    let first = &shown[0].1;
    for (path, e) in &shown {
        assert_eq!(e, first, "{path} disagrees with {}: {shown:#?}", shown[0].0);
    }
    first.clone()
}

fn ok<T>(r: Result<T, LaneError>) -> Result<(), LaneError> {
    r.map(|_| ())
}

#[test]
fn a_tensor_of_the_wrong_size_is_refused_alike() {
    let mut l = lanes("write-size", DType::U8);
    for len in [TENSOR - 1, TENSOR + 1, 0, TENSOR + 17] {
        let tensor = vec![7u8; len];
        let e = alike(vec![
            ("stream write", ok(l.writer.write(&tensor))),
            ("stream write_frame", ok(l.writer.write_frame(&tensor, 9))),
            ("queue push", ok(l.producer.push(&tensor))),
            ("queue try_push", ok(l.producer.try_push(&tensor))),
            ("queue push_batch", ok(l.producer.push_batch(&[&tensor]))),
            (
                "queue try_push_batch",
                ok(l.producer.try_push_batch(&[&[0; TENSOR], &tensor])),
            ),
            ("topic publish", ok(l.publisher.publish(&tensor))),
            ("topic try_publish", ok(l.publisher.try_publish(&tensor))),
        ]);
        assert_eq!(
            e,
            format!("WrongSize {{ expected: {TENSOR}, found: {len} }}")
        );
    }
    // Nothing was written anywhere.
    assert_eq!(l.writer.next_seq(), 1);
    assert!(matches!(
        l.consumer.try_pop(&mut [0; TENSOR]),
        Err(LaneError::Empty)
    ));
    assert!(matches!(
        l.subscriber.try_recv(&mut [0; TENSOR]),
        Err(LaneError::Empty)
    ));
}

#[test]
fn typed_writes_of_the_wrong_type_or_count_are_refused_alike() {
    let mut l = lanes("write-typed", DType::F32);
    // Eight f64 are the sixteen f32's 64 bytes: only the dtype check catches them.
    let wrong_type = [0f64; TENSOR / 8];
    let e = alike(vec![
        ("stream", ok(l.writer.write_elements(&wrong_type))),
        ("queue", ok(l.producer.push_elements(&wrong_type))),
        ("queue try", ok(l.producer.try_push_elements(&wrong_type))),
        ("topic", ok(l.publisher.publish_elements(&wrong_type))),
        (
            "topic try",
            ok(l.publisher.try_publish_elements(&wrong_type)),
        ),
    ]);
    assert_eq!(e, "WrongDType { expected: F32, found: F64 }");
    for count in [TENSOR / 4 - 1, TENSOR / 4 + 1] {
        let wrong_count = vec![1f32; count];
        let e = alike(vec![
            ("stream", ok(l.writer.write_elements(&wrong_count))),
            ("queue", ok(l.producer.push_elements(&wrong_count))),
            ("queue try", ok(l.producer.try_push_elements(&wrong_count))),
            ("topic", ok(l.publisher.publish_elements(&wrong_count))),
            (
                "topic try",
                ok(l.publisher.try_publish_elements(&wrong_count)),
            ),
        ]);
        assert_eq!(
            e,
            format!("WrongCount {{ expected: {}, found: {count} }}", TENSOR / 4)
        );
    }
}

#[test]
fn an_output_of_the_wrong_size_is_refused_alike_and_takes_nothing() {
    let mut l = lanes("read-size", DType::U8);
    l.writer.write(&[1; TENSOR]).unwrap();
    l.producer.push(&[2; TENSOR]).unwrap();
    l.publisher.publish(&[3; TENSOR]).unwrap();
    for len in [TENSOR - 1, TENSOR + 1, 0] {
        let mut out = vec![0u8; len];
        let e = alike(vec![
            ("stream read", ok(l.reader.read(&mut out))),
            ("stream try_read_new", ok(l.reader.try_read_new(&mut out))),
            ("stream read_new", ok(l.reader.read_new(&mut out))),
            ("queue pop", ok(l.consumer.pop(&mut out))),
            ("queue try_pop", ok(l.consumer.try_pop(&mut out))),
            ("topic recv", ok(l.subscriber.recv(&mut out))),
            ("topic try_recv", ok(l.subscriber.try_recv(&mut out))),
        ]);
        assert_eq!(
            e,
            format!("WrongSize {{ expected: {TENSOR}, found: {len} }}")
        );
    }
    // Each item is still there for a buffer of the right size.
    let mut out = [0u8; TENSOR];
    assert_eq!(l.reader.try_read_new(&mut out).unwrap().seq, 1);
    assert_eq!((l.consumer.try_pop(&mut out).unwrap().seq, out[0]), (1, 2));
    assert_eq!(
        (l.subscriber.try_recv(&mut out).unwrap().seq, out[0]),
        (1, 3)
    );
}

#[test]
fn typed_reads_of_the_wrong_type_or_count_are_refused_alike() {
    let mut l = lanes("read-typed", DType::F32);
    l.writer.write_elements(&[1f32; TENSOR / 4]).unwrap();
    l.producer.push_elements(&[2f32; TENSOR / 4]).unwrap();
    l.publisher.publish_elements(&[3f32; TENSOR / 4]).unwrap();
    let mut wrong_type = [0u32; TENSOR / 4];
    let e = alike(vec![
        ("stream read", ok(l.reader.read_elements(&mut wrong_type))),
        (
            "stream try_read_new",
            ok(l.reader.try_read_new_elements(&mut wrong_type)),
        ),
        ("queue", ok(l.consumer.pop_elements(&mut wrong_type))),
        (
            "queue try",
            ok(l.consumer.try_pop_elements(&mut wrong_type)),
        ),
        ("topic", ok(l.subscriber.recv_elements(&mut wrong_type))),
        (
            "topic try",
            ok(l.subscriber.try_recv_elements(&mut wrong_type)),
        ),
    ]);
    assert_eq!(e, "WrongDType { expected: F32, found: U32 }");
    for count in [TENSOR / 4 - 1, TENSOR / 4 + 1] {
        let mut wrong_count = vec![0f32; count];
        let e = alike(vec![
            ("stream read", ok(l.reader.read_elements(&mut wrong_count))),
            (
                "stream try_read_new",
                ok(l.reader.try_read_new_elements(&mut wrong_count)),
            ),
            ("queue", ok(l.consumer.pop_elements(&mut wrong_count))),
            (
                "queue try",
                ok(l.consumer.try_pop_elements(&mut wrong_count)),
            ),
            ("topic", ok(l.subscriber.recv_elements(&mut wrong_count))),
            (
                "topic try",
                ok(l.subscriber.try_recv_elements(&mut wrong_count)),
            ),
        ]);
        assert_eq!(
            e,
            format!("WrongCount {{ expected: {}, found: {count} }}", TENSOR / 4)
        );
    }
    let mut out = [0f32; TENSOR / 4];
    assert_eq!(l.consumer.try_pop_elements(&mut out).unwrap().seq, 1);
    assert_eq!(out[0], 2.0);
    assert_eq!(l.subscriber.try_recv_elements(&mut out).unwrap().seq, 1);
    assert_eq!(out[0], 3.0);
}

#[test]
fn nothing_to_take_and_no_room_are_reported_alike() {
    let mut l = lanes("empty-full", DType::U8);
    let mut out = [0u8; TENSOR];
    // SAFETY: every process writing these lanes is this test, which follows LAYOUT.md.
    let e = alike(vec![
        ("stream read", ok(l.reader.read(&mut out))),
        ("stream try_read_new", ok(l.reader.try_read_new(&mut out))),
        ("queue try_pop", ok(l.consumer.try_pop(&mut out))),
        (
            "queue try_pop_with",
            ok(unsafe { l.consumer.try_pop_with(|_, _| ()) }),
        ),
        ("topic try_recv", ok(l.subscriber.try_recv(&mut out))),
    ]);
    assert_eq!(e, "Empty");
    for v in 0..4u8 {
        l.producer.try_push(&[v; TENSOR]).unwrap();
        l.publisher.try_publish(&[v; TENSOR]).unwrap();
    }
    // SAFETY: as above.
    let e = alike(vec![
        ("queue try_push", ok(l.producer.try_push(&out))),
        (
            "queue try_push_with",
            ok(unsafe { l.producer.try_push_with(|_| ()) }),
        ),
        ("topic try_publish", ok(l.publisher.try_publish(&out))),
    ]);
    assert_eq!(e, "Full");
}

/// Writes `length` into the length word (slot offset 8) of the slot at `slot_offset`.
fn set_length(name: &str, slot_offset: u64, length: u64) {
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/dev/shm/tensorlane.{name}"))
        .unwrap();
    file.write_at(&length.to_le_bytes(), slot_offset + 8)
        .unwrap();
}

#[test]
fn a_corrupt_length_word_is_reported_alike() {
    // Shorter than a frame, longer than a slot, and one byte over.
    for bad in [40u64, 1 << 40, FRAME + 1] {
        let tag = format!("length-{bad}");
        let mut l = lanes(&tag, DType::U8);
        l.writer.write(&[1; TENSOR]).unwrap();
        for v in 1..=4u8 {
            l.producer.push(&[v; TENSOR]).unwrap();
            l.publisher.publish(&[v; TENSOR]).unwrap();
        }
        // Stream write 1 lives in slot 1 of 2; queue and topic positions 0 to 3 in
        // slots 0 to 3 (the topic's after its subscriber table).
        let topic_slots = RING_BODY + 128 * SUBSCRIBERS;
        set_length(&l.names[0], STREAM_BODY + STRIDE, bad);
        for slot in 0..4 {
            set_length(&l.names[1], RING_BODY + STRIDE * slot, bad);
            set_length(&l.names[2], topic_slots + STRIDE * slot, bad);
        }
        let mut out = [0u8; TENSOR];
        let mut typed = [0u8; TENSOR];
        let mut frames = [Frame::default(); 2];
        let mut outs = [0u8; 2 * TENSOR];
        let e = alike(vec![
            ("stream read", ok(l.reader.read(&mut out))),
            (
                "stream read_elements",
                ok(l.reader.read_elements(&mut typed)),
            ),
            ("queue pop", ok(l.consumer.pop(&mut out))),
            (
                "queue pop_with",
                // SAFETY: every process writing these lanes is this test, which
                // corrupts only length words, and never while a loan is out.
                ok(unsafe { l.consumer.pop_with(|_, _| ()) }),
            ),
            (
                "queue try_pop_batch",
                ok(l.consumer.try_pop_batch(&mut outs, &mut frames)),
            ),
            (
                "queue pop_elements",
                ok(l.consumer.pop_elements(&mut typed)),
            ),
            ("topic recv", ok(l.subscriber.recv(&mut out))),
            (
                "topic recv_elements",
                ok(l.subscriber.recv_elements(&mut typed)),
            ),
            (
                "topic try_recv_batch",
                ok(l.subscriber.try_recv_batch(&mut outs, &mut frames)),
            ),
        ]);
        assert_eq!(
            e,
            format!("Corrupt(Length {{ found: {bad}, max: {FRAME} }})"),
            "length {bad}"
        );
    }
}
