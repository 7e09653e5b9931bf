// Scenario bodies shared by every suite. The including file brings a `thread` module
// (std, loom or shuttle) into scope; everything else is imported here.
//
// Each body panics with a message naming the broken invariant ("torn read", "lost
// item", ...); canary tests match on these messages.

#[allow(unused_imports)]
use std::sync::Arc;
#[allow(unused_imports)]
use tensorlane_core::{
    Mode, PublishError, ReadError, RecvError, SubscribeOptions, MAX_SUBSCRIBERS,
};
#[allow(unused_imports)]
use tensorlane_verification::roles::*;

/// Register value of write `seq`: `WORDS` little-endian copies of `seq`.
fn stamped_value<const WORDS: usize>(seq: u64) -> [u8; 16] {
    let mut value = [0u8; 16];
    for chunk in value.chunks_mut(8).take(WORDS) {
        chunk.copy_from_slice(&seq.to_le_bytes());
    }
    value
}

/// Checks that every word of `value` equals `expected`.
fn check_words(value: &[u8], expected: u64, what: &str) {
    for chunk in value.chunks(8) {
        let word = u64::from_le_bytes(chunk.try_into().expect("8-byte words"));
        if word != expected {
            panic!("torn read: {what} {expected} holds word {word}");
        }
    }
}

/// One writer publishes `writes` values to a 2-slot register; `readers` readers
/// read `reads` times each. Every value returned must be exactly write `seq`, and a
/// reader's sequences never go backwards.
#[allow(dead_code)]
pub fn register_writer_and_readers<W, R>(
    writes: u64,
    readers: usize,
    reads: usize,
    writer: fn(&RegisterFixture) -> W,
    reader: fn(&RegisterFixture) -> R,
) where
    W: RegisterWriterRole,
    R: RegisterReaderRole,
{
    let fixture = RegisterFixture::new(2, 16);
    let mut w = writer(&fixture);
    let handles: Vec<_> = (0..readers)
        .map(|_| {
            let mut r = reader(&fixture);
            thread::spawn(move || {
                let mut last = 0;
                let mut buf = [0u8; 16];
                for _ in 0..reads {
                    match r.read(&mut buf) {
                        Ok(info) => {
                            if info.len != 16 {
                                panic!("torn read: write {} has length {}", info.seq, info.len);
                            }
                            check_words(&buf, info.seq, "write");
                            assert!(info.seq >= last, "read went backwards");
                            last = info.seq;
                        }
                        Err(ReadError::Empty) | Err(ReadError::Stalled { .. }) => {}
                        Err(e) => panic!("unexpected read error: {e}"),
                    }
                }
            })
        })
        .collect();
    for seq in 1..=writes {
        w.write(&stamped_value::<2>(seq));
    }
    for h in handles {
        h.join().unwrap();
    }
}

/// A producer pushes `items` items (item `i` holds `i + 1`, so that a slot read
/// before it was written never passes for an item) through a ring of capacity 2 (so it wraps), the
/// consumer takes them with copies and with peeks. Every item must arrive once, in
/// order, untorn.
#[allow(dead_code)]
pub fn queue_producer_and_consumer<P: QueueProducerRole>(
    items: u64,
    producer: fn(&QueueFixture) -> P,
) {
    let fixture = QueueFixture::new(2, 16);
    let mut p = producer(&fixture);
    let ring = fixture.ring();
    let consumer = thread::spawn(move || {
        let mut c = ring.consumer(2).expect("consumer role is free");
        let mut next = 0;
        let mut buf = [0u8; 16];
        while next < items {
            let got = if next % 2 == 0 {
                c.pop(&mut buf).map(|popped| (popped.position, popped.len))
            } else {
                c.peek().map(|peek| {
                    let position = peek.position();
                    let len = peek.copy_to(&mut buf).expect("item fits");
                    peek.release();
                    (position, len)
                })
            };
            match got {
                Ok((position, len)) => {
                    if position != next {
                        panic!("lost item: expected {next}, got {position}");
                    }
                    if len != 16 {
                        panic!("torn read: item {next} has length {len}");
                    }
                    check_words(&buf, next + 1, "item");
                    buf = [0u8; 16];
                    next += 1;
                }
                Err(tensorlane_core::PopError::Empty) => thread::yield_now(),
                Err(e) => panic!("unexpected pop error: {e}"),
            }
        }
    });
    let mut seq = 0;
    while seq < items {
        match p.push(&stamped_value::<2>(seq + 1)) {
            Ok(()) => seq += 1,
            Err(tensorlane_core::PushError::Full) => thread::yield_now(),
            Err(e) => panic!("unexpected push error: {e}"),
        }
    }
    consumer.join().unwrap();
}

/// Publishes `items` items (each the position, twice) with `producer`, yielding while
/// full.
fn publish_all(mut producer: impl BroadcastProducerRole, items: u64) {
    let mut position = 0;
    while position < items {
        match producer.publish(&stamped_value::<2>(position)) {
            Ok(p) => {
                assert_eq!(p, position);
                position += 1;
            }
            Err(PublishError::Full { .. }) => thread::yield_now(),
            Err(e) => panic!("unexpected publish error: {e}"),
        }
    }
}

/// A subscriber whose every delivery is checked: positions contiguous from its head
/// at join (lossless) or increasing with missed counts equal to the gaps (lossy), and
/// every value untorn.
struct CheckedSubscriber {
    sub: Subscriber,
    lossless: bool,
    expected: u64,
    unreported_loss: u64,
    delivered_and_missed: u64,
}

enum Step {
    Item,
    Nothing,
    Evicted,
}

impl CheckedSubscriber {
    fn new(mut sub: Subscriber, lossless: bool) -> Self {
        // Checkers explore every retry; a stalled receive yields and tries again anyway.
        sub.set_max_attempts(2);
        CheckedSubscriber {
            lossless,
            expected: sub.head(),
            // History lost at join is reported with the first item, before the head.
            unreported_loss: sub.lost_at_join(),
            delivered_and_missed: sub.head(),
            sub,
        }
    }

    fn finished(&self, items: u64) -> bool {
        self.sub.head() >= items
    }

    fn step(&mut self) -> Step {
        let mut buf = [0u8; 16];
        match self.sub.recv(&mut buf) {
            Ok(got) => {
                check_words(&buf, got.position, "position");
                let gap = got.missed - core::mem::take(&mut self.unreported_loss);
                if self.lossless && (got.position != self.expected || gap != 0) {
                    panic!(
                        "lost item: lossless subscriber expected {}, got {} ({gap} missed)",
                        self.expected, got.position
                    );
                }
                assert!(got.position >= self.expected, "lossy subscriber went backwards");
                self.delivered_and_missed += 1 + gap;
                self.expected = got.position + 1;
                assert_eq!(
                    self.delivered_and_missed,
                    self.sub.head(),
                    "drop counter does not match the gaps"
                );
                Step::Item
            }
            Err(RecvError::Empty) | Err(RecvError::Stalled { .. }) => Step::Nothing,
            Err(RecvError::Evicted) => Step::Evicted,
            Err(RecvError::Corrupt(tensorlane_core::Corruption::Stamp { expected, found }))
                if self.lossless =>
            {
                panic!("lost item: position {expected} was overwritten (stamp {found:#x}) before this lossless subscriber read it")
            }
            Err(e) => panic!("unexpected receive error: {e}"),
        }
    }

    /// Receives until the head reaches `items`, yielding when there is nothing.
    /// Returns `false` if the subscriber was evicted.
    fn drain(&mut self, items: u64) -> bool {
        while !self.finished(items) {
            match self.step() {
                Step::Item => {}
                Step::Nothing => thread::yield_now(),
                Step::Evicted => return false,
            }
        }
        true
    }
}

fn receive_all(sub: Subscriber, items: u64, lossless: bool) -> bool {
    CheckedSubscriber::new(sub, lossless).drain(items)
}

/// One producer, one lossless and one lossy subscriber (both joined before the first
/// publish), capacity 2. With `budget`, the lossy subscriber's thread makes at most
/// that many receive calls and the rest is drained after the producer finishes
/// (fewer spinning threads for loom).
#[allow(dead_code)]
pub fn broadcast_lossless_and_lossy(items: u64, budget: Option<usize>) {
    let fixture = BroadcastFixture::new(2, 16, 2);
    let ring = fixture.ring();
    let lossless = ring.subscribe(SubscribeOptions::lossless(), 2).unwrap();
    let lossy = ring.subscribe(SubscribeOptions::lossy(2), 3).unwrap();
    let producer = real_broadcast_producer(&fixture);
    let producer = thread::spawn(move || publish_all(producer, items));
    let lossy = thread::spawn(move || {
        let mut sub = CheckedSubscriber::new(lossy, false);
        match budget {
            Some(calls) => (0..calls).for_each(|_| {
                sub.step();
            }),
            None => assert!(sub.drain(items)),
        }
        sub
    });
    assert!(CheckedSubscriber::new(lossless, true).drain(items));
    producer.join().unwrap();
    assert!(lossy.join().unwrap().drain(items));
}

/// A lossless subscriber receives in batches of up to two (`recv_batch`: one head
/// store per batch) while the producer publishes `items` items through a ring of
/// capacity 2. Every item must arrive once, in order, untorn.
#[allow(dead_code)]
pub fn broadcast_lossless_batches(items: u64) {
    let fixture = BroadcastFixture::new(2, 16, 1);
    let ring = fixture.ring();
    let mut sub = ring.subscribe(SubscribeOptions::lossless(), 2).unwrap();
    let producer = real_broadcast_producer(&fixture);
    let producer = thread::spawn(move || publish_all(producer, items));
    let mut expected = 0;
    let mut bufs = [[0u8; 16]; 2];
    let none = tensorlane_core::Received {
        position: 0,
        len: 0,
        missed: 0,
    };
    let mut got = [none; 2];
    while expected < items {
        match sub.recv_batch(&mut bufs, &mut got) {
            Ok(n) => {
                assert!(n > 0, "an empty batch reported as received");
                for (buf, item) in bufs.iter().zip(&got).take(n) {
                    if item.position != expected || item.missed != 0 {
                        panic!(
                            "lost item: batch expected {expected}, got {} ({} missed)",
                            item.position, item.missed
                        );
                    }
                    check_words(buf, expected, "position");
                    expected += 1;
                }
                assert_eq!(sub.head(), expected, "head does not follow the batch");
            }
            Err(RecvError::Empty) => thread::yield_now(),
            Err(e) => panic!("unexpected receive error: {e}"),
        }
    }
    producer.join().unwrap();
}

/// A lossless subscriber joins (with one item of history) while the producer
/// publishes. From its head at join on it must receive every item, in order.
#[allow(dead_code)]
pub fn broadcast_join_races_publish<P: BroadcastProducerRole>(
    items: u64,
    join: fn(&BroadcastFixture, u64) -> Subscriber,
    producer: fn(&BroadcastFixture) -> P,
) {
    let fixture = BroadcastFixture::new(2, 16, 2);
    let producer = producer(&fixture);
    let producer = thread::spawn(move || publish_all(producer, items));
    let sub = join(&fixture, 2);
    assert!(receive_all(sub, items, true));
    producer.join().unwrap();
}

/// A lossless subscriber joins and leaves while the producer publishes; a second one
/// joins after it. The producer must finish (leaving releases it), and the second
/// subscriber must receive everything from its join head.
#[allow(dead_code)]
pub fn broadcast_join_leave_churn(items: u64) {
    let fixture = BroadcastFixture::new(2, 16, 1);
    let producer = real_broadcast_producer(&fixture);
    let producer = thread::spawn(move || publish_all(producer, items));
    let first = real_lossless_join(&fixture, 2);
    drop(first);
    let second = real_lossless_join(&fixture, 3);
    assert!(receive_all(second, items, true));
    producer.join().unwrap();
}

/// A supervisor evicts a lossless subscriber while it reads. The subscriber sees items
/// in order until it learns of the eviction, never a torn or corrupt one, and the
/// producer finishes.
#[allow(dead_code)]
pub fn broadcast_eviction_races_read(items: u64) {
    let fixture = BroadcastFixture::new(2, 16, 1);
    let ring = fixture.ring();
    let sub = ring.subscribe(SubscribeOptions::lossless(), 2).unwrap();
    let index = sub.index();
    let producer = real_broadcast_producer(&fixture);
    let producer = thread::spawn(move || publish_all(producer, items));
    let reader = thread::spawn(move || receive_all(sub, items, true));
    // The subscriber may already have read everything and left.
    match ring.evict(index) {
        Ok(()) | Err(tensorlane_core::EntryError::WrongState { .. }) => {}
        Err(e) => panic!("unexpected eviction error: {e}"),
    }
    producer.join().unwrap();
    reader.join().unwrap();
}

/// Many subscribers (lossless and lossy with various lag bounds) join, read and leave
/// while the producer publishes; used at scale by shuttle.
#[allow(dead_code)]
pub fn broadcast_many_subscribers(items: u64, subscribers: usize) {
    assert!(subscribers <= MAX_SUBSCRIBERS);
    let fixture = BroadcastFixture::new(4, 16, subscribers);
    let ring = fixture.ring();
    let producer = real_broadcast_producer(&fixture);
    let producer = thread::spawn(move || publish_all(producer, items));
    let handles: Vec<_> = (0..subscribers)
        .map(|i| {
            let ring = ring.clone();
            thread::spawn(move || {
                let options = match i % 3 {
                    0 => SubscribeOptions::lossless().with_history(i as u64 % 3),
                    1 => SubscribeOptions::lossy(1),
                    _ => SubscribeOptions::lossy(3).with_history(2),
                };
                let lossless = options.mode == Mode::Lossless;
                let sub = ring.subscribe(options, 10 + i as u64).expect("table has room");
                // Every fourth subscriber leaves early (churn); the rest read to the end.
                if i % 4 == 3 {
                    thread::yield_now();
                    drop(sub);
                } else {
                    assert!(receive_all(sub, items, lossless));
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    producer.join().unwrap();
}

/// A GPU lane (the slot protocol of tensorlane-gpu over the real register): the writer
/// makes `writes` writes into 2 device slots; a reader reads the latest record `reads`
/// times, copies its slot, then re-checks as the GPU reader does (Acquire fence, then
/// the number of published writes). A copy the re-check calls whole must be exactly
/// write `k`.
#[allow(dead_code)]
pub fn gpu_slot_protocol<W: GpuWriterRole>(writes: u64, reads: usize, writer: fn(&GpuFixture) -> W) {
    use tensorlane_verification::sync::Ordering;
    let fixture = GpuFixture::new();
    let mut w = writer(&fixture);
    let reader_fixture = fixture.clone();
    let reader = thread::spawn(move || {
        let records = reader_fixture.records.lane();
        let mut r = real_register_reader(&reader_fixture.records);
        let mut record = [0u8; 8];
        for _ in 0..reads {
            let k = match r.read(&mut record) {
                Ok(info) => info.seq,
                Err(ReadError::Empty) | Err(ReadError::Stalled { .. }) => continue,
                Err(e) => panic!("unexpected read error: {e}"),
            };
            assert_eq!(u64::from_le_bytes(record), k % GPU_SLOTS, "record of write {k}");
            let copy: Vec<u64> = reader_fixture
                .slot(k)
                .iter()
                .map(|word| word.load(Ordering::Relaxed))
                .collect();
            // `Importer::intact`: the Acquire fence, then the published count.
            if tensorlane_gpu::protocol::copy_intact(k, GPU_SLOTS, || records.published()) {
                for word in copy {
                    if word != k {
                        panic!("torn read: device slot of write {k} holds word {word}");
                    }
                }
            }
        }
    });
    for k in 1..=writes {
        w.write(k);
    }
    reader.join().unwrap();
}

/// The host backend's event (tensorlane-gpu, delayed mode): the writer enqueues the
/// copy of write 1, issues a record of the slot's event (Release) and publishes the
/// record; its stream thread, concurrently, copies and completes the record. A reader
/// that read the record and finds the event completed up to the count issued must
/// find the copy in the slot.
#[allow(dead_code)]
pub fn gpu_host_event<S: GpuStreamThreadRole>(reads: usize, stream: S) {
    use tensorlane_verification::sync::Ordering;
    let fixture = GpuFixture::new();
    let mut records = fixture.records.lane().writer(1).expect("writer role is free");
    let stream_fixture = fixture.clone();
    // The copy job was enqueued first: the stream thread may run it at any time.
    let stream_thread = thread::spawn(move || stream.copy_and_complete(&stream_fixture, 1, 1));
    let reader_fixture = fixture.clone();
    let reader = thread::spawn(move || {
        let mut r = real_register_reader(&reader_fixture.records);
        let mut record = [0u8; 8];
        for _ in 0..reads {
            let k = match r.read(&mut record) {
                Ok(info) => info.seq,
                Err(ReadError::Empty) | Err(ReadError::Stalled { .. }) => continue,
                Err(e) => panic!("unexpected read error: {e}"),
            };
            // `HostReader::wait`, one poll, through the shipped `EventView`.
            let event = reader_fixture.event_view();
            let target = event.issued();
            assert!(target >= 1, "record of write {k} published before its event was issued");
            if tensorlane_gpu::protocol::reached(target, event.completed()) {
                for word in reader_fixture.slot(k) {
                    let word = word.load(Ordering::Relaxed);
                    if word != k {
                        panic!("torn read: completed event, slot of write {k} holds {word}");
                    }
                }
            }
        }
    });
    // `Slots::issue`, then the record.
    assert_eq!(fixture.event_counters().issue(), 1);
    records.write(&(1 % GPU_SLOTS).to_le_bytes()).expect("record fits");
    stream_thread.join().unwrap();
    reader.join().unwrap();
}

/// A producer pushes `items` items in batches of up to 2 (one tail store each) through
/// a ring of capacity 2, so batches wrap around; the consumer alternates `pop_batch`
/// and `drain` (one head store each). Every item must arrive once, in order, untorn.
#[allow(dead_code)]
pub fn queue_batches<P: QueueBatchProducerRole>(items: u64, producer: fn(&QueueFixture) -> P) {
    let fixture = QueueFixture::new(2, 16);
    let mut p = producer(&fixture);
    let ring = fixture.ring();
    let consumer = thread::spawn(move || {
        let mut c = ring.consumer(2).expect("consumer role is free");
        let mut next = 0;
        let mut round = 0u64;
        let check = |position: u64, len: usize, buf: &[u8], next: u64| {
            if position != next {
                panic!("lost item: expected {next}, got {position}");
            }
            if len != 16 {
                panic!("torn read: item {next} has length {len}");
            }
            check_words(buf, next + 1, "item");
        };
        while next < items {
            round += 1;
            let result = if round % 2 == 1 {
                let mut bufs = [[0u8; 16]; 2];
                let mut popped = [tensorlane_core::Popped { position: 0, len: 0 }; 2];
                c.pop_batch(&mut bufs, &mut popped).map(|n| {
                    for k in 0..n {
                        check(popped[k].position, popped[k].len, &bufs[k], next);
                        next += 1;
                    }
                })
            } else {
                c.drain().map(|mut drain| {
                    while let Some(item) = drain.next() {
                        let item = item.expect("no corrupt length");
                        let mut buf = [0u8; 16];
                        let len = item.copy_to(&mut buf).expect("item fits");
                        check(item.position(), len, &buf, next);
                        next += 1;
                    }
                })
            };
            match result {
                Ok(()) => {}
                Err(tensorlane_core::PopError::Empty) => thread::yield_now(),
                Err(e) => panic!("unexpected pop error: {e}"),
            }
        }
    });
    let values: Vec<[u8; 16]> = (0..items).map(|i| stamped_value::<2>(i + 1)).collect();
    let mut sent = 0;
    while sent < values.len() {
        let end = (sent + 2).min(values.len());
        match p.push_batch(&values[sent..end]) {
            Ok(n) => sent += n,
            Err(tensorlane_core::PushError::Full) => thread::yield_now(),
            Err(e) => panic!("unexpected push error: {e}"),
        }
    }
    consumer.join().unwrap();
}

/// One writer makes `writes` writes to a 2-slot register while a reader reads byte
/// ranges of it `reads` times (ranges that cross a word boundary and start inside a
/// word). Every range must come from the write the read reports.
#[allow(dead_code)]
pub fn register_range_reads<W: RegisterWriterRole>(
    writes: u64,
    reads: usize,
    writer: fn(&RegisterFixture) -> W,
) {
    let fixture = RegisterFixture::new(2, 16);
    let mut w = writer(&fixture);
    let mut r = fixture.lane().reader();
    r.set_max_attempts(2);
    let reader = thread::spawn(move || {
        let mut last = 0;
        for _ in 0..reads {
            let mut head = [0u8; 3];
            let mut tail = [0u8; 3];
            match r.read_ranges(&[7..9, 0..1, 15..16], &mut [&mut head, &mut tail], false) {
                Ok(info) => {
                    // Bytes 7, 8, 0, 15 of two little-endian words holding `seq < 256`.
                    let expected = [0, info.seq as u8, info.seq as u8, 0];
                    let got = [head[0], head[1], head[2], tail[0]];
                    if info.len != 16 || got != expected {
                        panic!("torn read: ranges of write {} hold {got:?}", info.seq);
                    }
                    assert!(info.seq >= last, "read went backwards");
                    last = info.seq;
                }
                Err(tensorlane_core::RangeReadError::Read(
                    ReadError::Empty | ReadError::Stalled { .. },
                )) => {}
                // Every write is 16 bytes long: a length that refuses the ranges is torn.
                Err(tensorlane_core::RangeReadError::Outside { len, .. }) => {
                    panic!("torn read: a value of {len} bytes")
                }
                Err(e) => panic!("unexpected read error: {e}"),
            }
        }
    });
    for seq in 1..=writes {
        w.write(&stamped_value::<2>(seq));
    }
    reader.join().unwrap();
}

/// A writer role handed over between threads (R6): the first writer writes once and
/// drops its handle, which gives the role back; a second thread claims the role as
/// soon as it is free and writes. Its write must continue the sequence: the claim's
/// Acquire reads the give-back's Release, so the published count it starts from is
/// the first writer's.
#[allow(dead_code)]
pub fn register_hand_over() {
    let fixture = RegisterFixture::new(2, 8);
    let mut first = fixture.lane().writer(1).expect("writer role is free");
    let second_fixture = fixture.clone();
    let second = thread::spawn(move || {
        let lane = second_fixture.lane();
        let mut writer = loop {
            match lane.writer(2) {
                Ok(writer) => break writer,
                Err(tensorlane_core::ClaimError::Held { .. }) => thread::yield_now(),
                Err(e) => panic!("unexpected claim error: {e}"),
            }
        };
        let seq = writer.write(&[2; 8]).expect("value fits");
        assert_eq!(seq, 2, "lost hand-over: the new writer did not continue the sequence");
    });
    first.write(&[1; 8]).expect("value fits");
    drop(first);
    second.join().unwrap();
}
