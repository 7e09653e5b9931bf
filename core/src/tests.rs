//! Single-threaded behaviour of the three structures, including hostile shared state.
//! Concurrency is checked by the verification crate (threads, loom, shuttle, Miri).

use crate::*;
use std::vec::Vec;

fn word(region: &impl Region, index: usize) -> &AtomicU64 {
    &region.body()[index]
}

const RELAXED: core::sync::atomic::Ordering = core::sync::atomic::Ordering::Relaxed;

mod seqlock {
    use super::*;

    fn lane(slots: usize, bytes: usize) -> (HeapRegion<SeqlockHeader>, SeqlockGeometry) {
        let geometry = SeqlockGeometry::new(slots, bytes).unwrap();
        (HeapRegion::new(geometry.body_words()), geometry)
    }

    #[test]
    fn latest_value_and_missed_counts() {
        let (region, geometry) = lane(3, 24);
        let lane = Seqlock::new(&region, geometry).unwrap();
        let mut reader = lane.reader();
        let mut buf = [0u8; 24];
        assert_eq!(reader.read(&mut buf), Err(ReadError::Empty));
        let mut writer = lane.writer(7).unwrap();
        assert_eq!(writer.write(b"a").unwrap(), 1);
        let got = reader.read(&mut buf).unwrap();
        assert_eq!((got.seq, got.len, got.missed), (1, 1, 0));
        assert_eq!(reader.read_new(&mut buf), Err(ReadError::NotNew));
        for i in 0..5u8 {
            writer.write(&[i; 20]).unwrap();
        }
        let got = reader.read_new(&mut buf).unwrap();
        assert_eq!((got.seq, got.missed), (6, 4));
        assert_eq!(&buf[..got.len], &[4u8; 20]);
        assert_eq!(lane.published(), 6);
    }

    #[test]
    fn size_errors() {
        let (region, geometry) = lane(2, 8);
        let lane = Seqlock::new(&region, geometry).unwrap();
        let mut writer = lane.writer(1).unwrap();
        assert_eq!(
            writer.write(&[0; 9]),
            Err(WriteError::TooLarge { len: 9, max: 8 })
        );
        writer.write(&[1; 8]).unwrap();
        let mut small = [0u8; 4];
        assert_eq!(
            lane.reader().read(&mut small),
            Err(ReadError::BufferTooSmall { needed: 8 })
        );
    }

    #[test]
    fn one_writer_at_a_time_and_takeover() {
        let (region, geometry) = lane(2, 8);
        let lane = Seqlock::new(&region, geometry).unwrap();
        assert_eq!(lane.writer(0).unwrap_err(), ClaimError::ZeroToken);
        let mut first = lane.writer(1).unwrap();
        assert_eq!(lane.writer_owner(), 1);
        first.write(b"one").unwrap();
        assert_eq!(lane.writer(2).unwrap_err(), ClaimError::Held { owner: 1 });
        // The first writer "dies" (is forgotten, so it never releases its claim).
        core::mem::forget(first);
        assert!(lane.takeover(3, 2).is_err());
        let mut second = lane.takeover(1, 2).unwrap();
        assert_eq!(lane.writer_owner(), 2);
        assert_eq!(second.write(b"two").unwrap(), 2);
        drop(second);
        assert_eq!(lane.writer_owner(), 0);
    }

    #[test]
    fn writer_stopped_mid_write_leaves_previous_value() {
        let (region, geometry) = lane(2, 8);
        let lane = Seqlock::new(&region, geometry).unwrap();
        let mut writer = lane.writer(1).unwrap();
        writer.write(b"good").unwrap();
        // Write 2 began (odd stamp in slot 2 % 2 = 0, payload half written), then stopped.
        word(&region, 0).store(2 * 2 + 1, RELAXED);
        word(&region, PAYLOAD_WORD).store(u64::MAX, RELAXED);
        let mut buf = [0u8; 8];
        let got = lane.reader().read(&mut buf).unwrap();
        assert_eq!((got.seq, &buf[..got.len]), (1, &b"good"[..]));
    }

    #[test]
    fn single_slot_writer_stopped_mid_write_stalls_instead_of_spinning() {
        let (region, geometry) = lane(1, 8);
        let lane = Seqlock::new(&region, geometry).unwrap();
        lane.writer(1).unwrap().write(b"x").unwrap();
        word(&region, 0).store(5, RELAXED);
        let mut reader = lane.reader();
        reader.set_max_attempts(3);
        assert_eq!(
            reader.read(&mut [0u8; 8]),
            Err(ReadError::Stalled { attempts: 3 })
        );
    }

    #[test]
    fn hostile_state_is_reported() {
        let (region, geometry) = lane(2, 8);
        let lane = Seqlock::new(&region, geometry).unwrap();
        lane.writer(1).unwrap().write(b"x").unwrap();
        let slot = geometry.slot_stride();
        // A consistent stamp with an impossible length.
        word(&region, slot + LENGTH_WORD).store(1 << 40, RELAXED);
        let mut reader = lane.reader();
        assert!(matches!(
            reader.read(&mut [0u8; 8]),
            Err(ReadError::Corrupt(Corruption::Length { .. }))
        ));
        // `published` moving backwards.
        word(&region, slot + LENGTH_WORD).store(1, RELAXED);
        reader.read(&mut [0u8; 8]).unwrap();
        region.header().published.store(0, RELAXED);
        assert_eq!(reader.read(&mut [0u8; 8]), Err(ReadError::Empty));
        region.header().published.store(u64::MAX, RELAXED);
        assert!(matches!(
            reader.read(&mut [0u8; 8]),
            Err(ReadError::Stalled { .. })
        ));
    }

    #[test]
    fn geometry_is_validated() {
        assert!(SeqlockGeometry::new(0, 8).is_err());
        assert!(SeqlockGeometry::new(MAX_REGISTER_SLOTS + 1, 8).is_err());
        assert!(SeqlockGeometry::new(2, MAX_SLOT_BYTES + 1).is_err());
        let geometry = SeqlockGeometry::new(2, 8).unwrap();
        let short = HeapRegion::<SeqlockHeader>::new(geometry.body_words() - 1);
        assert!(matches!(
            Seqlock::new(&short, geometry),
            Err(GeometryError::BodyTooShort { .. })
        ));
    }
}

mod spsc {
    use super::*;

    fn ring(capacity: usize, bytes: usize) -> (HeapRegion<SpscHeader>, SpscGeometry) {
        let geometry = SpscGeometry::new(capacity, bytes).unwrap();
        (HeapRegion::new(geometry.body_words()), geometry)
    }

    #[test]
    fn fifo_with_wraparound_full_and_empty() {
        let (region, geometry) = ring(4, 8);
        let ring = Spsc::new(&region, geometry).unwrap();
        let mut producer = ring.producer(1).unwrap();
        let mut consumer = ring.consumer(2).unwrap();
        let mut buf = [0u8; 8];
        let mut next_out = 0u64;
        for round in 0..5u64 {
            for i in 0..4u64 {
                producer.push(&(round * 4 + i).to_le_bytes()).unwrap();
            }
            assert_eq!(producer.push(b"x"), Err(PushError::Full));
            for _ in 0..4 {
                let got = consumer.pop(&mut buf).unwrap();
                assert_eq!(got.position, next_out);
                assert_eq!(u64::from_le_bytes(buf), next_out);
                next_out += 1;
            }
            assert_eq!(consumer.pop(&mut buf), Err(PopError::Empty));
        }
    }

    #[test]
    fn loans_and_peeks() {
        let (region, geometry) = ring(2, 16);
        // SAFETY: this ring is the only user of `region`, through its handles.
        let ring = Spsc::new(unsafe { Exclusive::new(&region) }, geometry).unwrap();
        let mut producer = ring.producer(1).unwrap();
        let mut consumer = ring.consumer(2).unwrap();
        {
            let mut loan = producer.loan().unwrap();
            loan.bytes_mut()[..3].copy_from_slice(b"abc");
            assert_eq!(loan.commit(3).unwrap(), 0);
        }
        let _abandoned = producer.loan().unwrap(); // an abandoned loan pushes nothing
        let loan = producer.loan().unwrap();
        assert_eq!(
            loan.commit(17),
            Err(PushError::TooLarge { len: 17, max: 16 })
        );
        assert_eq!(consumer.available().unwrap(), 1);
        {
            let peek = consumer.peek().unwrap();
            assert_eq!(peek.bytes(), b"abc");
        } // dropped without release: stays
        let peek = consumer.peek().unwrap();
        assert_eq!((peek.position(), peek.len()), (0, 3));
        peek.release();
        assert!(matches!(consumer.peek(), Err(PopError::Empty)));
    }

    #[test]
    fn small_buffer_keeps_the_item() {
        let (region, geometry) = ring(2, 16);
        let ring = Spsc::new(&region, geometry).unwrap();
        let mut producer = ring.producer(1).unwrap();
        let mut consumer = ring.consumer(2).unwrap();
        producer.push(&[9; 12]).unwrap();
        assert_eq!(
            consumer.pop(&mut [0u8; 4]),
            Err(PopError::BufferTooSmall { needed: 12 })
        );
        assert_eq!(consumer.pop(&mut [0u8; 12]).unwrap().len, 12);
    }

    #[test]
    fn roles_are_exclusive() {
        let (region, geometry) = ring(2, 8);
        let ring = Spsc::new(&region, geometry).unwrap();
        let producer = ring.producer(1).unwrap();
        assert!(ring.producer(2).is_err());
        let consumer = ring.consumer(3).unwrap();
        assert!(ring.consumer(4).is_err());
        assert_eq!(ring.owners(), (1, 3));
        drop((producer, consumer));
        assert_eq!(ring.owners(), (0, 0));
    }

    #[test]
    fn corrupt_indices_and_lengths_are_reported() {
        let (region, geometry) = ring(4, 8);
        let ring = Spsc::new(&region, geometry).unwrap();
        let mut producer = ring.producer(1).unwrap();
        let mut consumer = ring.consumer(2).unwrap();
        producer.push(b"a").unwrap();
        region.header().tail.store(100, RELAXED);
        assert!(matches!(
            consumer.pop(&mut [0u8; 8]),
            Err(PopError::Corrupt(Corruption::Indices {
                head: 0,
                tail: 100
            }))
        ));
        region.header().tail.store(1, RELAXED);
        word(&region, LENGTH_WORD).store(u64::MAX, RELAXED);
        assert!(matches!(
            consumer.pop(&mut [0u8; 8]),
            Err(PopError::Corrupt(Corruption::Length { .. }))
        ));
        assert_eq!(consumer.head(), 1, "the impossible item was removed");
        region.header().head.store(u64::MAX - 5, RELAXED);
        for _ in 0..3 {
            producer.push(b"b").unwrap_or(0);
        }
        assert!(matches!(
            producer.push(b"c"),
            Err(PushError::Corrupt(Corruption::Indices { .. }))
        ));
    }

    #[test]
    fn a_counter_found_impossible_is_not_cached() {
        // The consumer: a corrupt tail reported once, then restored, must not make the
        // next pop deliver an item that was never pushed.
        let (region, geometry) = ring(4, 8);
        let ring = Spsc::new(&region, geometry).unwrap();
        let mut producer = ring.producer(1).unwrap();
        let mut consumer = ring.consumer(2).unwrap();
        let mut buf = [0u8; 8];
        producer.push(b"a").unwrap();
        consumer.pop(&mut buf).unwrap();
        region.header().tail.store(100, RELAXED);
        assert!(matches!(
            consumer.available(),
            Err(PopError::Corrupt(Corruption::Indices { .. }))
        ));
        region.header().tail.store(1, RELAXED);
        assert_eq!(consumer.pop(&mut buf), Err(PopError::Empty));
        assert_eq!(consumer.available(), Ok(0));
        assert_eq!(consumer.head(), 1);

        // The producer: a corrupt head reported once, then restored, must not make
        // the producer overwrite items the consumer has not taken.
        for item in [b"b", b"c", b"d", b"e"] {
            producer.push(item).unwrap();
        }
        region.header().head.store(6, RELAXED); // past the tail: impossible
        assert!(matches!(
            producer.free(),
            Err(PushError::Corrupt(Corruption::Indices { .. }))
        ));
        region.header().head.store(1, RELAXED);
        assert_eq!(producer.push(b"f"), Err(PushError::Full));
        for want in [b"b", b"c", b"d", b"e"] {
            consumer.pop(&mut buf).unwrap();
            assert_eq!(&buf[..1], want);
        }
    }

    #[test]
    fn pop_and_peek_remove_an_item_of_impossible_length_alike() {
        let (region, geometry) = ring(4, 8);
        let stride = geometry.slot_stride();
        let ring = Spsc::new(&region, geometry).unwrap();
        let mut producer = ring.producer(1).unwrap();
        let mut consumer = ring.consumer(2).unwrap();
        for item in [b"a", b"b", b"c"] {
            producer.push(item).unwrap();
        }
        word(&region, LENGTH_WORD).store(9, RELAXED);
        word(&region, stride + LENGTH_WORD).store(9, RELAXED);
        assert!(matches!(
            consumer.peek(),
            Err(PopError::Corrupt(Corruption::Length { found: 9, max: 8 }))
        ));
        assert!(matches!(
            consumer.pop(&mut [0u8; 8]),
            Err(PopError::Corrupt(Corruption::Length { found: 9, max: 8 }))
        ));
        let peek = consumer.peek().unwrap();
        assert_eq!((peek.position(), peek.len()), (2, 1));
        let mut c = [0u8; 1];
        peek.words().load_bytes(&mut c);
        assert_eq!(&c, b"c");
    }

    /// Misuse that compiles without `unsafe`: two rings over one body (each with its own
    /// header, so both claim a producer and loan the same slot), stores through the
    /// region while an item is peeked. Over a region that is not `Exclusive` every
    /// access is an atomic word, so this gives garbage, never undefined behaviour;
    /// Miri runs this test (and the threaded variant in the verification crate).
    #[test]
    fn misuse_without_exclusive_is_only_garbage() {
        let geometry = SpscGeometry::new(2, 16).unwrap();
        let body: Vec<AtomicU64> = (0..geometry.body_words())
            .map(|_| AtomicU64::new(0))
            .collect();
        let (first, second) = (SpscHeader::default(), SpscHeader::default());
        let one = Spsc::new(Parts::new(&first, &body), geometry).unwrap();
        let two = Spsc::new(Parts::new(&second, &body), geometry).unwrap();
        let mut p1 = one.producer(1).unwrap();
        let mut p2 = two.producer(1).unwrap();
        let mut c1 = one.consumer(2).unwrap();
        let l1 = p1.loan().unwrap();
        let l2 = p2.loan().unwrap();
        store_bytes(l1.words(), b"first");
        store_bytes(l2.words(), b"second");
        l1.commit(5).unwrap();
        l2.commit(6).unwrap();
        let peek = c1.peek().unwrap();
        let seen = peek.words();
        body[PAYLOAD_WORD].store(u64::from_le_bytes(*b"garbage!"), RELAXED);
        let mut got = [0u8; 5];
        seen.load_bytes(&mut got);
        assert_eq!(&got, b"garba");
        peek.release();
        assert_eq!(c1.available(), Ok(0));
    }

    #[test]
    fn takeover_after_a_producer_dies_mid_push() {
        let (region, geometry) = ring(4, 8);
        // SAFETY: this ring is the only user of `region`, through its handles.
        let ring = Spsc::new(unsafe { Exclusive::new(&region) }, geometry).unwrap();
        let mut producer = ring.producer(1).unwrap();
        producer.push(b"1").unwrap();
        // A loan filled but never committed, then the process died.
        producer.loan().unwrap().bytes_mut()[0] = b'X';
        core::mem::forget(producer);
        // SAFETY: the previous producer was forgotten and is never used again.
        let mut producer = unsafe { ring.producer_takeover(1, 5) }.unwrap();
        producer.push(b"2").unwrap();
        let mut consumer = ring.consumer(2).unwrap();
        let mut buf = [0u8; 8];
        let items: Vec<u8> = (0..2)
            .map(|_| {
                consumer.pop(&mut buf).unwrap();
                buf[0]
            })
            .collect();
        assert_eq!(items, b"12");
    }
}

mod broadcast {
    use super::*;

    fn ring(
        capacity: usize,
        subscribers: usize,
    ) -> (HeapRegion<BroadcastHeader>, BroadcastGeometry) {
        let geometry = BroadcastGeometry::new(capacity, 8, subscribers).unwrap();
        (HeapRegion::new(geometry.body_words()), geometry)
    }

    #[test]
    fn read_prefix_at_copies_only_the_prefix_and_names_the_length() {
        let (region, geometry) = ring(2, 1);
        let ring = Broadcast::new(&region, geometry).unwrap();
        let mut producer = ring.producer(1).unwrap();
        producer.publish(b"abcdefg").unwrap();
        let mut prefix = [0u8; 3];
        assert_eq!(ring.read_prefix_at(0, &mut prefix), Ok(7));
        assert_eq!(&prefix, b"abc");
        // A whole read refuses the short buffer; a prefix read of a short item fills
        // what it has.
        assert_eq!(
            ring.read_at(0, &mut prefix),
            Err(ReadAtError::BufferTooSmall { needed: 7 })
        );
        let mut long = [0u8; 8];
        assert_eq!(ring.read_prefix_at(0, &mut long), Ok(7));
        assert_eq!(&long[..7], b"abcdefg");
        assert_eq!(
            ring.read_prefix_at(1, &mut prefix),
            Err(ReadAtError::NotPublished)
        );
    }

    fn entry_word(region: &HeapRegion<BroadcastHeader>, index: usize, field: usize) -> &AtomicU64 {
        word(region, index * ENTRY_WORDS + field)
    }

    #[test]
    fn lossless_subscriber_sees_everything_and_holds_the_producer() {
        let (region, geometry) = ring(4, 4);
        let ring = Broadcast::new(&region, geometry).unwrap();
        let mut producer = ring.producer(1).unwrap();
        let mut sub = ring.subscribe(SubscribeOptions::lossless(), 2).unwrap();
        let mut buf = [0u8; 8];
        for expected in 0..10u64 {
            loop {
                match producer.publish(&producer.tail().to_le_bytes()) {
                    Ok(_) => {}
                    Err(PublishError::Full { subscriber }) => {
                        assert_eq!(subscriber, sub.index());
                        break;
                    }
                    Err(e) => panic!("{e}"),
                }
            }
            let got = sub.recv(&mut buf).unwrap();
            assert_eq!(
                (got.position, u64::from_le_bytes(buf)),
                (expected, expected)
            );
        }
    }

    #[test]
    fn lossy_subscribers_skip_and_count() {
        let (region, geometry) = ring(8, 4);
        let ring = Broadcast::new(&region, geometry).unwrap();
        let mut producer = ring.producer(1).unwrap();
        let mut newest = ring.subscribe(SubscribeOptions::lossy(1), 2).unwrap();
        let mut lag3 = ring.subscribe(SubscribeOptions::lossy(3), 3).unwrap();
        for i in 0..20u64 {
            producer.publish(&i.to_le_bytes()).unwrap();
        }
        let mut buf = [0u8; 8];
        let got = newest.recv(&mut buf).unwrap();
        assert_eq!((got.position, got.missed), (19, 19));
        let got = lag3.recv(&mut buf).unwrap();
        assert_eq!((got.position, got.missed), (17, 17));
        assert_eq!(lag3.recv(&mut buf).unwrap().missed, 0);
        assert_eq!(lag3.missed(), 17);
        assert_eq!(ring.subscriber(lag3.index()).unwrap().missed, 17);
    }

    #[test]
    fn join_with_history_and_read_at() {
        let (region, geometry) = ring(4, 4);
        let ring = Broadcast::new(&region, geometry).unwrap();
        let mut producer = ring.producer(1).unwrap();
        for i in 0..6u64 {
            producer.publish(&i.to_le_bytes()).unwrap();
        }
        assert_eq!(ring.history(10), 2..6);
        let mut buf = [0u8; 8];
        assert_eq!(ring.read_at(1, &mut buf), Err(ReadAtError::Overwritten));
        assert_eq!(ring.read_at(6, &mut buf), Err(ReadAtError::NotPublished));
        assert_eq!(ring.read_at(2, &mut buf), Ok(8));
        let mut sub = ring
            .subscribe(SubscribeOptions::lossless().with_history(3), 2)
            .unwrap();
        assert_eq!((sub.head(), sub.lost_at_join()), (3, 0));
        assert_eq!(sub.recv(&mut buf).unwrap().position, 3);
    }

    #[test]
    fn table_full_leave_and_reuse() {
        let (region, geometry) = ring(4, 2);
        let ring = Broadcast::new(&region, geometry).unwrap();
        let a = ring.subscribe(SubscribeOptions::lossless(), 1).unwrap();
        let _b = ring.subscribe(SubscribeOptions::lossy(1), 2).unwrap();
        assert!(matches!(
            ring.subscribe(SubscribeOptions::lossless(), 3),
            Err(SubscribeError::TableFull)
        ));
        assert!(matches!(
            ring.subscribe(SubscribeOptions::lossless(), 0),
            Err(SubscribeError::ZeroToken)
        ));
        let index = a.index();
        drop(a);
        let c = ring.subscribe(SubscribeOptions::lossless(), 3).unwrap();
        assert_eq!(c.index(), index);
        assert_eq!(ring.subscriber(index).unwrap().generation, 2);
    }

    #[test]
    fn eviction_frees_the_producer_and_tells_the_subscriber() {
        let (region, geometry) = ring(2, 2);
        let ring = Broadcast::new(&region, geometry).unwrap();
        let mut producer = ring.producer(1).unwrap();
        let mut slow = ring.subscribe(SubscribeOptions::lossless(), 2).unwrap();
        producer.publish(b"0").unwrap();
        producer.publish(b"1").unwrap();
        assert_eq!(
            producer.publish(b"2"),
            Err(PublishError::Full { subscriber: 0 })
        );
        assert!(ring.reclaim(5).is_err());
        ring.evict(0).unwrap();
        assert!(ring.evict(0).is_err());
        producer.publish(b"2").unwrap();
        assert_eq!(slow.recv(&mut [0u8; 8]), Err(RecvError::Evicted));
        // A reclaimed and reused entry is not freed by the stale subscriber's drop.
        ring.reclaim(0).unwrap();
        let fresh = ring.subscribe(SubscribeOptions::lossless(), 3).unwrap();
        assert_eq!(fresh.index(), 0);
        drop(slow);
        assert_eq!(ring.subscriber(0).unwrap().state, entry::ACTIVE);
        drop(fresh);
        assert_eq!(ring.subscriber(0).unwrap().state, entry::FREE);
    }

    #[test]
    fn hostile_entries_and_stamps_are_reported() {
        let (region, geometry) = ring(4, 2);
        let ring = Broadcast::new(&region, geometry).unwrap();
        let mut producer = ring.producer(1).unwrap();
        let sub = ring.subscribe(SubscribeOptions::lossless(), 2).unwrap();
        // A lossless head ahead of the tail: evicted, and the publish goes on.
        entry_word(&region, sub.index(), entry::HEAD).store(1000, RELAXED);
        producer.publish(b"x").unwrap();
        assert!(matches!(
            producer.last_corrupt_entry(),
            Some(Corruption::SubscriberHead { head: 1000, .. })
        ));
        assert_eq!(ring.subscriber(sub.index()).unwrap().state, entry::EVICTED);
        drop(sub);
        // A lossy subscriber facing a stamp older than the position it reads.
        let mut lossy = ring.subscribe(SubscribeOptions::lossy(4), 3).unwrap();
        producer.publish(b"y").unwrap();
        let slot = geometry.slots_offset() + geometry.slot_stride();
        word(&region, slot + STAMP_WORD).store(0, RELAXED);
        assert!(matches!(
            lossy.recv(&mut [0u8; 8]),
            Err(RecvError::Corrupt(Corruption::Stamp { .. }))
        ));
        // A tail far behind the subscriber's head.
        word(&region, slot + STAMP_WORD).store(4, RELAXED);
        region.header().tail.store(0, RELAXED);
        assert!(matches!(
            lossy.recv(&mut [0u8; 8]),
            Err(RecvError::Corrupt(Corruption::Indices { .. }))
        ));
    }

    #[test]
    fn producer_takeover_continues_at_the_tail() {
        let (region, geometry) = ring(4, 2);
        let ring = Broadcast::new(&region, geometry).unwrap();
        let mut sub = ring.subscribe(SubscribeOptions::lossless(), 9).unwrap();
        let mut producer = ring.producer(1).unwrap();
        producer.publish(b"a").unwrap();
        core::mem::forget(producer);
        assert!(ring.producer(2).is_err());
        let mut producer = ring.producer_takeover(1, 2).unwrap();
        assert_eq!(producer.publish(b"b").unwrap(), 1);
        let mut buf = [0u8; 8];
        assert_eq!(sub.recv(&mut buf).unwrap().position, 0);
        assert_eq!(sub.recv(&mut buf).unwrap().position, 1);
    }
}

#[test]
fn attach_checks_alignment_and_size() {
    let mut words = [0u64; 64];
    let base = words.as_mut_ptr().cast::<u8>();
    let aligned = base.wrapping_add(base.align_offset(128));
    // SAFETY: the pointers lie inside `words`, which outlives the views and is only
    // accessed through them (atomics).
    unsafe {
        assert!(matches!(
            attach::<SeqlockHeader>(aligned.wrapping_add(8), 300),
            Err(AttachError::Misaligned { required: 128 })
        ));
        assert!(matches!(
            attach::<SeqlockHeader>(aligned, 255),
            Err(AttachError::TooShort { needed: 256, .. })
        ));
        let parts = attach::<SeqlockHeader>(aligned, 256 + 20).unwrap();
        assert_eq!(parts.body().len(), 2);
    }
}

#[test]
fn parts_are_gathered_and_scattered_on_word_boundaries() {
    let geometry = SeqlockGeometry::new(2, 24).unwrap();
    let region = HeapRegion::<SeqlockHeader>::new(geometry.body_words());
    let lane = Seqlock::new(&region, geometry).unwrap();
    let mut writer = lane.writer(1).unwrap();
    writer
        .write_parts(&[&7u64.to_le_bytes(), b"tensor"])
        .unwrap();
    let (mut head, mut tail) = ([0u8; 8], [0u8; 16]);
    let got = lane
        .reader()
        .read_parts(&mut [&mut head, &mut tail], false)
        .unwrap();
    assert_eq!(
        (got.len, u64::from_le_bytes(head), &tail[..6]),
        (14, 7, &b"tensor"[..])
    );
    assert_eq!(
        writer.write_parts(&[&[0; 16], &[0; 9]]),
        Err(WriteError::TooLarge { len: 25, max: 24 })
    );
}

#[test]
#[should_panic(expected = "multiple of 8")]
fn unaligned_leading_part_is_a_caller_error() {
    let geometry = SpscGeometry::new(2, 24).unwrap();
    let region = HeapRegion::<SpscHeader>::new(geometry.body_words());
    let ring = Spsc::new(&region, geometry).unwrap();
    let _ = ring.producer(1).unwrap().push_parts(&[b"abc", b"def"]);
}

#[test]
fn generation_guarded_eviction_spares_a_new_occupant() {
    let geometry = BroadcastGeometry::new(2, 8, 1).unwrap();
    let region = HeapRegion::<BroadcastHeader>::new(geometry.body_words());
    let ring = Broadcast::new(&region, geometry).unwrap();
    let dead = ring.subscribe(SubscribeOptions::lossless(), 1).unwrap();
    let seen = ring.subscriber(0).unwrap().generation;
    core::mem::forget(dead);
    // Before the supervisor acts, the entry is reclaimed and joined again.
    ring.reclaim(0).unwrap();
    let _live = ring.subscribe(SubscribeOptions::lossless(), 2).unwrap();
    assert!(ring.evict_generation(0, seen).is_err());
    assert!(ring.reclaim_generation(0, seen).is_err());
    assert_eq!(ring.subscriber(0).unwrap().state, entry::ACTIVE);
    ring.evict_generation(0, seen + 1).unwrap();
}

#[test]
fn a_corrupt_entry_does_not_switch_the_table_scan_off() {
    let geometry = BroadcastGeometry::new(2, 8, 2).unwrap();
    let region = HeapRegion::<BroadcastHeader>::new(geometry.body_words());
    let ring = Broadcast::new(&region, geometry).unwrap();
    let mut producer = ring.producer(1).unwrap();
    producer.publish(b"0").unwrap();
    let _a = ring.subscribe(SubscribeOptions::lossless(), 2).unwrap();
    let mut b = ring.subscribe(SubscribeOptions::lossless(), 3).unwrap();
    // Entry 0 (a) is corrupt. The scan evicts it and goes on: b still holds the
    // producer back.
    word(&region, entry::HEAD).store(100, RELAXED);
    producer.publish(b"1").unwrap();
    assert_eq!(producer.evicted_corrupt(), 1);
    producer.publish(b"2").unwrap();
    assert_eq!(
        producer.publish(b"3"),
        Err(PublishError::Full { subscriber: 1 })
    );
    assert_eq!(b.recv(&mut [0u8; 8]).unwrap().position, 1);
}

#[test]
fn crafted_positions_never_panic() {
    let geometry = BroadcastGeometry::new(2, 8, 1).unwrap();
    let region = HeapRegion::<BroadcastHeader>::new(geometry.body_words());
    let ring = Broadcast::new(&region, geometry).unwrap();
    let mut lossy = ring.subscribe(SubscribeOptions::lossy(2), 1).unwrap();
    for _ in 0..3 {
        let head = lossy.head();
        region
            .header()
            .tail
            .store(head.wrapping_add(1 << 63), RELAXED);
        let _ = lossy.recv(&mut [0u8; 8]);
    }
    for tail in [u64::MAX, u64::MAX - 1, 0, 1 << 63] {
        region.header().tail.store(tail, RELAXED);
        let _ = ring.subscribe(SubscribeOptions::lossless().with_history(2), 2);
        let _ = ring.read_at(tail.wrapping_sub(1), &mut [0u8; 8]);
    }
}

#[test]
fn geometry_errors_say_what_is_wrong() {
    use std::string::ToString;
    assert_eq!(
        SpscGeometry::new(3, 8).unwrap_err().to_string(),
        "capacity must be a power of two, found 3"
    );
    let register = SeqlockGeometry::new(0, 8).unwrap_err().to_string();
    assert!(register.contains("between 1 and"), "{register}");
}

#[test]
fn read_words_load_what_was_stored_and_nothing_outside() {
    let words = [AtomicU64::new(7), AtomicU64::new(9)];
    let view = ReadWords::new(&words);
    assert_eq!(
        (view.load(0), view.load(1), view.load(2)),
        (Some(7), Some(9), None)
    );
    assert_eq!(view.iter().collect::<Vec<u64>>(), [7, 9]);
    assert_eq!((view.len(), view.is_empty()), (2, false));
    let none = view
        .slice(2..2)
        .expect("an empty range at the end is inside");
    assert_eq!((none.len(), none.is_empty()), (0, true));
    assert!(view.slice(1..3).is_none());
}

/// Every error that can carry a `Corruption` names it as its source (and its message
/// says it), and no other variant has a source.
#[test]
fn corrupt_errors_name_the_corruption_as_their_source() {
    use core::error::Error;
    use std::string::ToString;
    let c = Corruption::Stamp {
        expected: 3,
        found: 5,
    };
    let check = |corrupt: &dyn Error, other: &dyn Error| {
        let source = corrupt.source().expect("a corrupt error has a source");
        assert_eq!(source.downcast_ref::<Corruption>(), Some(&c));
        assert!(corrupt.to_string().ends_with(&c.to_string()), "{corrupt}");
        assert!(other.source().is_none(), "{other} has a source");
    };
    check(
        &PublishError::Corrupt(c),
        &PublishError::Full { subscriber: 0 },
    );
    check(&SubscribeError::Corrupt(c), &SubscribeError::TableFull);
    check(&RecvError::Corrupt(c), &RecvError::Empty);
    check(&ReadAtError::Corrupt(c), &ReadAtError::NotPublished);
    check(&ClaimError::Corrupt(c), &ClaimError::ZeroToken);
    check(&ReadError::Corrupt(c), &ReadError::Empty);
    check(&PushError::Corrupt(c), &PushError::Full);
    check(&PopError::Corrupt(c), &PopError::Empty);
    // A failed range read wraps the read's error, whose source is the corruption.
    let range = RangeReadError::Read(ReadError::Corrupt(c));
    let inner = range.source().expect("a failed read is the source");
    assert_eq!(
        inner.downcast_ref::<ReadError>(),
        Some(&ReadError::Corrupt(c))
    );
    let outside = RangeReadError::Outside {
        range: 0..9,
        len: 8,
    };
    assert!(outside.source().is_none());
}

#[test]
fn corruptions_say_what_is_wrong() {
    use std::string::ToString;
    let said = |c: Corruption| c.to_string();
    assert_eq!(
        said(Corruption::Indices { head: 4, tail: 2 }),
        "corrupt ring indices: head 4, tail 2"
    );
    assert_eq!(
        said(Corruption::Length { found: 99, max: 8 }),
        "corrupt slot length 99 (slot holds 8 bytes)"
    );
    assert_eq!(
        said(Corruption::Stamp {
            expected: 3,
            found: 0x11
        }),
        "corrupt slot stamp 0x11 (expected 3)"
    );
    assert_eq!(
        said(Corruption::SequenceWentBack { last: 7, found: 5 }),
        "published sequence went back from 7 to 5"
    );
    assert_eq!(
        said(Corruption::SubscriberHead {
            subscriber: 1,
            head: 9,
            tail: 4
        }),
        "subscriber 1 has head 9, impossible with tail 4"
    );
}
