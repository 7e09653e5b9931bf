// Take-over scenarios, shared by the suites that include them after `mod.rs` (which
// brings `thread`, `Arc` and the roles into scope). The dead owner and the successor
// roles are in `tensorlane_verification::takeover`; see its module docs for the model
// (a dead owner stops after a chosen number of shared-memory operations; its thread is
// joined, standing for the kernel-released role lock, before the successor takes over;
// readers and the ring's other end run throughout).

#[allow(unused_imports)]
use tensorlane_verification::takeover::{self as takeover_roles, tagged, tagged_value};

/// Register: the writer [`takeover_roles::DEAD`] makes two writes and stops after its
/// `steps`-th operation; a reader reads `reads` times throughout; once the dead
/// writer is gone, `successor` takes the role over and writes once. Every read value
/// is one write, untorn, and one sequence is never read as two values.
#[allow(dead_code)]
pub fn register_takeover<S: takeover_roles::RegisterSuccessorRole>(
    steps: usize,
    reads: usize,
    successor: fn(&RegisterFixture) -> S,
) {
    let fixture = RegisterFixture::new(2, 16);
    takeover_roles::claim_register(&fixture);
    let mut r = fixture.lane().reader();
    r.set_max_attempts(2);
    let reader = thread::spawn(move || {
        let mut seen: Option<(u64, u64)> = None;
        let mut buf = [0u8; 16];
        for _ in 0..reads {
            match r.read(&mut buf) {
                Ok(info) => {
                    let first = u64::from_le_bytes(buf[..8].try_into().unwrap());
                    let second = u64::from_le_bytes(buf[8..].try_into().unwrap());
                    if info.len != 16 || first != second || first & 0xffff_ffff != info.seq {
                        panic!(
                            "torn read: write {} holds words {first:#x} and {second:#x}",
                            info.seq
                        );
                    }
                    if let Some((seq, word)) = seen {
                        assert!(info.seq >= seq, "read went backwards");
                        if info.seq == seq && word != first {
                            panic!("torn read: write {seq} read as {word:#x} and as {first:#x}");
                        }
                    }
                    seen = Some((info.seq, first));
                }
                Err(ReadError::Empty) | Err(ReadError::Stalled { .. }) => {}
                Err(e) => panic!("unexpected read error: {e}"),
            }
        }
    });
    let dead_fixture = fixture.clone();
    thread::spawn(move || takeover_roles::dying_register_writer(&dead_fixture, 2, steps))
        .join()
        .unwrap();
    let mut w = successor(&fixture);
    let seq = w.next_seq();
    w.write(&tagged_value(seq, takeover_roles::SUCCESSOR));
    reader.join().unwrap();
}

/// SPSC producer: the producer [`takeover_roles::DEAD`] pushes two items into a ring
/// of capacity 2 and stops after its `steps`-th operation; the consumer takes
/// `items` items throughout (pops and peeks); once the dead producer is gone,
/// `successor` takes the role over and pushes the rest. Every position arrives once,
/// in order, untorn.
#[allow(dead_code)]
pub fn queue_producer_takeover<S: takeover_roles::QueueProducerSuccessorRole>(
    steps: usize,
    items: u64,
    successor: fn(&QueueFixture) -> S,
) {
    let fixture = QueueFixture::new(2, 16);
    takeover_roles::claim_queue_role(&fixture, 0);
    let ring = fixture.ring();
    let consumer = thread::spawn(move || {
        let mut c = ring.consumer(3).expect("consumer role is free");
        let mut next = 0;
        let mut buf = [0u8; 16];
        while next < items {
            let got = if next % 2 == 0 {
                c.pop(&mut buf).map(|popped| (popped.position, popped.len))
            } else {
                c.peek().map(|peek| {
                    let got = (peek.position(), peek.copy_to(&mut buf).expect("item fits"));
                    peek.release();
                    got
                })
            };
            match got {
                Ok((position, len)) => {
                    if position != next {
                        panic!("lost item: expected {next}, got {position}");
                    }
                    takeover_roles::check_queue_item(position, len, &buf);
                    buf = [0u8; 16];
                    next += 1;
                }
                Err(tensorlane_core::PopError::Empty) => thread::yield_now(),
                Err(e) => panic!("unexpected pop error: {e}"),
            }
        }
    });
    let dead_fixture = fixture.clone();
    thread::spawn(move || takeover_roles::dying_queue_producer(&dead_fixture, 2, steps))
        .join()
        .unwrap();
    let mut p = successor(&fixture);
    while p.tail() < items {
        let position = p.tail();
        match p.push(&tagged_value(position + 1, takeover_roles::SUCCESSOR)) {
            Ok(pushed) => assert_eq!(pushed, position, "push at the tail"),
            Err(tensorlane_core::PushError::Full) => thread::yield_now(),
            Err(e) => panic!("unexpected push error: {e}"),
        }
    }
    consumer.join().unwrap();
}

/// SPSC consumer: the producer pushes `items` items through a ring of capacity 2
/// throughout; the consumer [`takeover_roles::DEAD`] takes up to two and stops after
/// its `steps`-th operation; once it is gone, `successor` takes the role over and
/// takes the rest. The successor starts where the dead consumer last released (an
/// item it read but did not release comes again), and every item is untorn.
#[allow(dead_code)]
pub fn queue_consumer_takeover<S: takeover_roles::QueueConsumerSuccessorRole>(
    steps: usize,
    items: u64,
    successor: fn(&QueueFixture) -> S,
) {
    let fixture = QueueFixture::new(2, 16);
    takeover_roles::claim_queue_role(&fixture, 1);
    let mut p = fixture.ring().producer(3).expect("producer role is free");
    let producer = thread::spawn(move || {
        let mut position = 0;
        while position < items {
            match p.push(&tagged_value(position + 1, 3)) {
                Ok(_) => position += 1,
                Err(tensorlane_core::PushError::Full) => thread::yield_now(),
                Err(e) => panic!("unexpected push error: {e}"),
            }
        }
    });
    let dead_fixture = fixture.clone();
    let released =
        thread::spawn(move || takeover_roles::dying_queue_consumer(&dead_fixture, 2, steps))
            .join()
            .unwrap();
    let mut c = successor(&fixture);
    if c.head() != released {
        panic!(
            "lost item: the successor starts at {}, the dead consumer released {released}",
            c.head()
        );
    }
    let mut buf = [0u8; 16];
    let mut next = released;
    while next < items {
        match c.pop(&mut buf) {
            Ok(popped) => {
                if popped.position != next {
                    panic!("lost item: expected {next}, got {}", popped.position);
                }
                takeover_roles::check_queue_item(popped.position, popped.len, &buf);
                buf = [0u8; 16];
                next += 1;
            }
            Err(tensorlane_core::PopError::Empty) => thread::yield_now(),
            Err(e) => panic!("unexpected pop error: {e}"),
        }
    }
    producer.join().unwrap();
}

/// Broadcast producer: a lossless and a lossy subscriber (joined first, read in one
/// thread) receive throughout; the producer [`takeover_roles::DEAD`] publishes two
/// items into a ring of capacity 2 and stops after its `stores`-th store; once it is
/// gone, `successor` takes the role over and publishes up to `items`. The lossless
/// subscriber gets every position in order and the lossy one increasing positions,
/// all untorn.
#[allow(dead_code)]
pub fn broadcast_producer_takeover<S: takeover_roles::BroadcastSuccessorRole>(
    stores: usize,
    items: u64,
    successor: fn(&BroadcastFixture) -> S,
) {
    let fixture = BroadcastFixture::new(2, 16, 2);
    takeover_roles::claim_broadcast_producer(&fixture);
    let ring = fixture.ring();
    let lossless = ring.subscribe(SubscribeOptions::lossless(), 3).unwrap();
    let lossy = ring.subscribe(SubscribeOptions::lossy(2), 4).unwrap();
    let readers = thread::spawn(move || {
        let mut subs = [
            CheckedSubscriber::new(lossless, true),
            CheckedSubscriber::new(lossy, false),
        ];
        while subs.iter().any(|sub| !sub.finished(items)) {
            let mut progressed = false;
            for sub in subs.iter_mut().filter(|sub| !sub.finished(items)) {
                match sub.step() {
                    Step::Item => progressed = true,
                    Step::Nothing => {}
                    Step::Evicted => panic!("lost item: a subscriber was evicted"),
                }
            }
            if !progressed {
                thread::yield_now();
            }
        }
    });
    let dead_fixture = fixture.clone();
    thread::spawn(move || takeover_roles::dying_broadcast_producer(&dead_fixture, 2, stores))
        .join()
        .unwrap();
    let mut p = successor(&fixture);
    while p.tail() < items {
        let position = p.tail();
        match p.publish(&stamped_value::<2>(position)) {
            Ok(published) => assert_eq!(published, position, "publish at the tail"),
            Err(PublishError::Full { .. }) => thread::yield_now(),
            Err(e) => panic!("unexpected publish error: {e}"),
        }
    }
    readers.join().unwrap();
}
