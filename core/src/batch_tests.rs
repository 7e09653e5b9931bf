//! Batches (SPSC push, pop and drain) and range reads of the register, single-threaded.

// Arrays of one range are what `read_ranges` takes; a reversed range is a case tested.
#![allow(clippy::single_range_in_vec_init, clippy::reversed_empty_ranges)]

use crate::*;
use std::vec::Vec;

const RELAXED: core::sync::atomic::Ordering = core::sync::atomic::Ordering::Relaxed;

fn spsc(capacity: usize, bytes: usize) -> (HeapRegion<SpscHeader>, SpscGeometry) {
    let geometry = SpscGeometry::new(capacity, bytes).unwrap();
    (HeapRegion::new(geometry.body_words()), geometry)
}

#[test]
fn push_batch_pushes_what_fits_with_one_tail_store() {
    let (region, geometry) = spsc(4, 8);
    let ring = Spsc::new(&region, geometry).unwrap();
    let mut producer = ring.producer(1).unwrap();
    let mut consumer = ring.consumer(2).unwrap();
    let items: Vec<[u8; 8]> = (0u64..6).map(|i| i.to_le_bytes()).collect();
    assert_eq!(producer.push_batch::<&[u8]>(&[]), Ok(0));
    assert_eq!(producer.push_batch(&items[..3]), Ok(3));
    assert_eq!(ring.positions(), (0, 3));
    // One free slot left: a batch of three pushes one.
    assert_eq!(producer.push_batch(&items[3..]), Ok(1));
    assert_eq!(producer.push_batch(&items[4..]), Err(PushError::Full));
    let mut buf = [0u8; 8];
    for i in 0..4u64 {
        let got = consumer.pop(&mut buf).unwrap();
        assert_eq!((got.position, u64::from_le_bytes(buf)), (i, i));
    }
    // Across the wrap: positions 4..8 live in slots 0..4.
    assert_eq!(producer.push_batch(&items[2..]), Ok(4));
    for i in 2..6u64 {
        assert_eq!(consumer.pop(&mut buf).unwrap().position, i + 2);
        assert_eq!(u64::from_le_bytes(buf), i);
    }
}

#[test]
fn push_batch_stops_before_an_item_too_large() {
    let (region, geometry) = spsc(8, 4);
    let ring = Spsc::new(&region, geometry).unwrap();
    let mut producer = ring.producer(1).unwrap();
    let items: [&[u8]; 3] = [b"ab", b"toolong", b"c"];
    assert_eq!(producer.push_batch(&items), Ok(1));
    assert_eq!(
        producer.push_batch(&items[1..]),
        Err(PushError::TooLarge { len: 7, max: 4 })
    );
    assert_eq!(ring.positions(), (0, 1));
}

#[test]
fn pop_batch_copies_and_releases_with_one_head_store() {
    let (region, geometry) = spsc(4, 8);
    let ring = Spsc::new(&region, geometry).unwrap();
    let mut producer = ring.producer(1).unwrap();
    let mut consumer = ring.consumer(2).unwrap();
    let mut bufs = [[0u8; 8]; 3];
    let mut popped = [Popped {
        position: 0,
        len: 0,
    }; 3];
    assert_eq!(
        consumer.pop_batch(&mut bufs, &mut popped),
        Err(PopError::Empty)
    );
    for item in [&b"a"[..], b"bb", b"ccc", b"dddd"] {
        producer.push(item).unwrap();
    }
    assert_eq!(consumer.pop_batch(&mut bufs, &mut popped), Ok(3));
    assert_eq!(ring.positions(), (3, 4));
    assert_eq!(&bufs[2][..popped[2].len], b"ccc");
    assert_eq!(
        popped[1],
        Popped {
            position: 1,
            len: 2
        }
    );
    // The next item does not fit a 2-byte buffer: reported, and left in the ring.
    let mut small = [[0u8; 2]; 2];
    assert_eq!(
        consumer.pop_batch(&mut small, &mut popped),
        Err(PopError::BufferTooSmall { needed: 4 })
    );
    assert_eq!(consumer.pop_batch(&mut bufs, &mut popped), Ok(1));
    assert_eq!(&bufs[0][..4], b"dddd");
}

#[test]
fn pop_batch_and_drain_report_an_impossible_length_once() {
    let (region, geometry) = spsc(4, 8);
    let stride = geometry.slot_stride();
    let ring = Spsc::new(&region, geometry).unwrap();
    let mut producer = ring.producer(1).unwrap();
    let mut consumer = ring.consumer(2).unwrap();
    producer.push_batch(&[b"a", b"b", b"c"]).unwrap();
    region.body()[stride + LENGTH_WORD].store(9, RELAXED);
    let mut bufs = [[0u8; 8]; 4];
    let mut popped = [Popped {
        position: 0,
        len: 0,
    }; 4];
    // Stops before the corrupt item ...
    assert_eq!(consumer.pop_batch(&mut bufs, &mut popped), Ok(1));
    // ... which the next call removes and reports.
    assert_eq!(
        consumer.pop_batch(&mut bufs, &mut popped),
        Err(PopError::Corrupt(Corruption::Length { found: 9, max: 8 }))
    );
    assert_eq!(consumer.pop_batch(&mut bufs, &mut popped), Ok(1));
    assert_eq!((popped[0].position, &bufs[0][..1]), (2, &b"c"[..]));

    producer.push_batch(&[b"d", b"e"]).unwrap();
    region.body()[3 * stride + LENGTH_WORD].store(100, RELAXED);
    let mut drain = consumer.drain().unwrap();
    assert!(matches!(
        drain.next(),
        Some(Err(Corruption::Length { found: 100, .. }))
    ));
    let item = drain.next().unwrap().unwrap();
    assert_eq!(item.position(), 4);
    drop(drain);
    assert_eq!(ring.positions(), (5, 5));
}

#[test]
fn drain_releases_only_what_it_handed_out() {
    let (region, geometry) = spsc(4, 16);
    let ring = Spsc::new(&region, geometry).unwrap();
    let mut producer = ring.producer(1).unwrap();
    let mut consumer = ring.consumer(2).unwrap();
    assert!(matches!(consumer.drain(), Err(PopError::Empty)));
    producer.push_batch(&[b"one", b"two", b"six"]).unwrap();
    {
        let mut drain = consumer.drain().unwrap();
        assert_eq!(drain.remaining(), 3);
        let item = drain.next().unwrap().unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(item.copy_to(&mut buf), Ok(3));
        assert_eq!(&buf[..3], b"one");
        assert_eq!(
            item.copy_to(&mut buf[..2]),
            Err(PopError::BufferTooSmall { needed: 3 })
        );
        let item = drain.next().unwrap().unwrap();
        let mut two = [0u8; 3];
        item.words().load_bytes(&mut two);
        assert_eq!((item.position(), item.len(), &two), (1, 3, b"two"));
        // Not released yet: the producer sees only one free slot.
        assert_eq!(ring.positions(), (0, 3));
    }
    assert_eq!(ring.positions(), (2, 3));
    // An item pushed after the drain was made is not in it.
    let mut drain = consumer.drain().unwrap();
    producer.push(b"late").unwrap();
    let mut seen = Vec::new();
    while let Some(item) = drain.next() {
        seen.push(item.unwrap().position());
    }
    drop(drain);
    assert_eq!(seen, [2]);
    let mut buf = [0u8; 16];
    assert_eq!(consumer.pop(&mut buf).unwrap().position, 3);
}

fn register(slots: usize, bytes: usize) -> (HeapRegion<SeqlockHeader>, SeqlockGeometry) {
    let geometry = SeqlockGeometry::new(slots, bytes).unwrap();
    (HeapRegion::new(geometry.body_words()), geometry)
}

#[test]
fn load_bytes_at_any_offset() {
    let words: Vec<AtomicU64> = (0..4u64)
        .map(|w| {
            AtomicU64::new(u64::from_le_bytes(core::array::from_fn(|b| {
                (w * 8) as u8 + b as u8
            })))
        })
        .collect();
    for offset in 0..32 {
        for len in 0..=(32 - offset) {
            let mut dst = std::vec![0xEEu8; len];
            crate::slot::load_bytes_at(&words, offset, &mut dst);
            let expect: Vec<u8> = (offset..offset + len).map(|b| b as u8).collect();
            assert_eq!(dst, expect, "offset {offset} len {len}");
        }
    }
}

#[test]
fn read_ranges_copies_only_the_ranges_of_one_write() {
    let (region, geometry) = register(2, 40);
    let lane = Seqlock::new(&region, geometry).unwrap();
    let mut reader = lane.reader();
    let mut a = [0u8; 3];
    let mut b = [0u8; 10];
    assert_eq!(
        reader.read_ranges(&[0..1], &mut [&mut a], false),
        Err(RangeReadError::Read(ReadError::Empty))
    );
    let mut writer = lane.writer(1).unwrap();
    let value: Vec<u8> = (0..37u8).collect();
    writer.write(&value).unwrap();
    // Ranges at odd offsets, spread over two output parts of odd lengths.
    let got = reader
        .read_ranges(&[1..3, 9..18, 36..37, 5..5], &mut [&mut a, &mut b], false)
        .unwrap();
    assert_eq!((got.seq, got.len, got.missed), (1, 37, 0));
    assert_eq!(a, [1, 2, 9]);
    assert_eq!(&b[..9], &[10, 11, 12, 13, 14, 15, 16, 17, 36]);
    assert_eq!(
        reader.read_ranges(&[0..1], &mut [&mut a], true),
        Err(RangeReadError::Read(ReadError::NotNew))
    );
    // A range past the value, or reversed, is refused after the attempt.
    assert_eq!(
        reader.read_ranges(&[0..1, 30..38], &mut [&mut b], false),
        Err(RangeReadError::Outside {
            range: 30..38,
            len: 37
        })
    );
    let reversed = [4..2];
    assert_eq!(
        reader.read_ranges(&reversed, &mut [&mut b], false),
        Err(RangeReadError::Outside {
            range: 4..2,
            len: 37
        })
    );
    // Output shorter than the ranges: refused before any attempt.
    assert_eq!(
        reader.read_ranges(&[0..4], &mut [&mut a], false),
        Err(RangeReadError::Read(ReadError::BufferTooSmall {
            needed: 4
        }))
    );
    assert!(matches!(
        reader.read_ranges(&[0..usize::MAX, 1..usize::MAX], &mut [&mut a], false),
        Err(RangeReadError::Outside { .. })
    ));
}

#[test]
fn read_ranges_reports_a_corrupt_length_and_a_stalled_writer() {
    let (region, geometry) = register(1, 16);
    let lane = Seqlock::new(&region, geometry).unwrap();
    let mut writer = lane.writer(1).unwrap();
    writer.write(&[7; 16]).unwrap();
    let mut reader = lane.reader();
    let mut out = [0u8; 4];
    region.body()[LENGTH_WORD].store(17, RELAXED);
    assert_eq!(
        reader.read_ranges(&[0..4], &mut [&mut out], false),
        Err(RangeReadError::Read(ReadError::Corrupt(
            Corruption::Length { found: 17, max: 16 }
        )))
    );
    region.body()[LENGTH_WORD].store(16, RELAXED);
    // A writer stopped mid-write (odd stamp) with one slot: every attempt fails.
    region.body()[STAMP_WORD].store(3, RELAXED);
    reader.set_max_attempts(3);
    assert_eq!(
        reader.read_ranges(&[0..4], &mut [&mut out], false),
        Err(RangeReadError::Read(ReadError::Stalled { attempts: 3 }))
    );
}

#[test]
fn push_batch_parts_joins_each_items_parts() {
    let (region, geometry) = spsc(4, 16);
    let ring = Spsc::new(&region, geometry).unwrap();
    let mut producer = ring.producer(1).unwrap();
    let mut consumer = ring.consumer(2).unwrap();
    let items: [[&[u8]; 2]; 3] = [
        [b"prefix01", b"a"],
        [b"prefix02", b"bb"],
        [b"prefix03", b"toolong-toolong"],
    ];
    assert_eq!(producer.push_batch_parts::<[&[u8]; 2]>(&[]), Ok(0));
    // The third item (23 bytes) does not fit a 16-byte slot: the batch stops there.
    assert_eq!(producer.push_batch_parts(&items), Ok(2));
    assert_eq!(
        producer.push_batch_parts(&items[2..]),
        Err(PushError::TooLarge { len: 23, max: 16 })
    );
    let mut buf = [0u8; 16];
    let got = consumer.pop(&mut buf).unwrap();
    assert_eq!(&buf[..got.len], b"prefix01a");
    let got = consumer.pop(&mut buf).unwrap();
    assert_eq!(&buf[..got.len], b"prefix02bb");
    // Four free slots: two batches of two fill them.
    producer.push_batch_parts(&items[..2]).unwrap();
    producer.push_batch_parts(&items[..2]).unwrap();
    assert_eq!(producer.push_batch_parts(&items[..2]), Err(PushError::Full));
}

#[test]
fn drain_peek_leaves_the_item_next() {
    let (region, geometry) = spsc(4, 8);
    let ring = Spsc::new(&region, geometry).unwrap();
    let mut producer = ring.producer(1).unwrap();
    let mut consumer = ring.consumer(2).unwrap();
    producer.push_batch(&[b"a", b"b"]).unwrap();
    {
        let mut drain = consumer.drain().unwrap();
        assert_eq!(drain.peek().unwrap().unwrap().position(), 0);
        assert_eq!(drain.peek().unwrap().unwrap().position(), 0);
        assert_eq!(drain.next().unwrap().unwrap().position(), 0);
        assert_eq!(drain.peek().unwrap().unwrap().position(), 1);
    }
    // Only the item taken with `next` was removed.
    assert_eq!(ring.positions(), (1, 2));
}

fn broadcast(capacity: usize) -> (HeapRegion<BroadcastHeader>, BroadcastGeometry) {
    let geometry = BroadcastGeometry::new(capacity, 8, 2).unwrap();
    (HeapRegion::new(geometry.body_words()), geometry)
}

fn head_word(region: &HeapRegion<BroadcastHeader>, index: usize) -> u64 {
    region.body()[index * ENTRY_WORDS + entry::HEAD].load(RELAXED)
}

const NO_ITEM: Received = Received {
    position: 0,
    len: 0,
    missed: 0,
};

#[test]
fn recv_batch_copies_in_order_and_stores_the_head_once() {
    let (region, geometry) = broadcast(4);
    let ring = Broadcast::new(&region, geometry).unwrap();
    let mut producer = ring.producer(1).unwrap();
    let mut sub = ring.subscribe(SubscribeOptions::lossless(), 2).unwrap();
    let mut bufs = [[0u8; 8]; 3];
    let mut got = [NO_ITEM; 3];
    assert_eq!(sub.recv_batch(&mut bufs, &mut got), Err(RecvError::Empty));
    assert_eq!(sub.recv_batch(&mut bufs[..0], &mut got), Ok(0));
    for v in 10..14u64 {
        producer.publish(&v.to_le_bytes()).unwrap();
    }
    // The ring is full for this subscriber: the producer waits for it.
    assert!(matches!(
        producer.publish(&[0; 8]),
        Err(PublishError::Full { .. })
    ));
    assert_eq!(sub.recv_batch(&mut bufs, &mut got), Ok(3));
    for (k, (buf, item)) in bufs.iter().zip(&got).enumerate() {
        let k = k as u64;
        assert_eq!((item.position, item.len, item.missed), (k, 8, 0));
        assert_eq!(u64::from_le_bytes(*buf), 10 + k);
    }
    assert_eq!((sub.head(), head_word(&region, sub.index())), (3, 3));
    // The stored head frees three slots.
    for v in 14..17u64 {
        producer.publish(&v.to_le_bytes()).unwrap();
    }
    let mut more = [[0u8; 8]; 8];
    let mut got = [NO_ITEM; 8];
    assert_eq!(sub.recv_batch(&mut more, &mut got), Ok(4));
    let values: Vec<u64> = more[..4].iter().map(|b| u64::from_le_bytes(*b)).collect();
    assert_eq!(values, [13, 14, 15, 16]);
    assert_eq!(head_word(&region, sub.index()), 7);
}

#[test]
fn recv_batch_stops_before_an_item_it_cannot_deliver() {
    let (region, geometry) = broadcast(4);
    let slots = geometry.slots_offset();
    let ring = Broadcast::new(&region, geometry).unwrap();
    let mut producer = ring.producer(1).unwrap();
    let mut sub = ring.subscribe(SubscribeOptions::lossless(), 2).unwrap();
    producer.publish(b"a").unwrap();
    producer.publish(b"bbbbbb").unwrap();
    producer.publish(b"c").unwrap();
    // The second item does not fit a 4-byte buffer: the batch stops before it ...
    let mut small = [[0u8; 4]; 3];
    let mut got = [NO_ITEM; 3];
    assert_eq!(sub.recv_batch(&mut small, &mut got), Ok(1));
    assert_eq!(&small[0][..1], b"a");
    // ... and reports it when it comes first, leaving it in the ring.
    assert_eq!(
        sub.recv_batch(&mut small, &mut got),
        Err(RecvError::BufferTooSmall { needed: 6 })
    );
    let mut bufs = [[0u8; 8]; 3];
    assert_eq!(sub.recv_batch(&mut bufs, &mut got), Ok(2));
    assert_eq!((&bufs[0][..6], &bufs[1][..1]), (&b"bbbbbb"[..], &b"c"[..]));

    // A corrupt stamp in the middle: the items before it are delivered, the next
    // call reports it, and nothing refuted is kept.
    producer.publish(b"d").unwrap();
    producer.publish(b"e").unwrap();
    // Position 4 lives in slot 0 of 4.
    let target = &region.body()[slots + STAMP_WORD];
    let good = target.load(RELAXED);
    target.store(1, RELAXED);
    assert_eq!(sub.recv_batch(&mut bufs, &mut got), Ok(1));
    assert_eq!((got[0].position, &bufs[0][..1]), (3, &b"d"[..]));
    assert!(matches!(
        sub.recv_batch(&mut bufs, &mut got),
        Err(RecvError::Corrupt(_))
    ));
    target.store(good, RELAXED);
    assert_eq!(sub.recv_batch(&mut bufs, &mut got), Ok(1));
    assert_eq!((got[0].position, &bufs[0][..1]), (4, &b"e"[..]));
}

#[test]
fn recv_batch_on_a_lossy_subscriber_reports_skips() {
    let (region, geometry) = broadcast(4);
    let ring = Broadcast::new(&region, geometry).unwrap();
    let mut producer = ring.producer(1).unwrap();
    let mut sub = ring.subscribe(SubscribeOptions::lossy(2), 2).unwrap();
    for v in 0..5u64 {
        producer.publish(&v.to_le_bytes()).unwrap();
    }
    let mut bufs = [[0u8; 8]; 4];
    let mut got = [NO_ITEM; 4];
    // Lag bound 2: positions 0..3 were skipped.
    assert_eq!(sub.recv_batch(&mut bufs, &mut got), Ok(2));
    assert_eq!((got[0].position, got[0].missed), (3, 3));
    assert_eq!((got[1].position, got[1].missed), (4, 0));
    assert_eq!(head_word(&region, sub.index()), 5);
}

#[test]
fn recv_batch_parts_takes_whole_items_and_stops_before_a_short_one() {
    let (region, geometry) = broadcast(4);
    let ring = Broadcast::new(&region, geometry).unwrap();
    let mut producer = ring.producer(1).unwrap();
    let mut sub = ring.subscribe(SubscribeOptions::lossless(), 2).unwrap();
    producer.publish(&1u64.to_le_bytes()).unwrap();
    producer.publish(&2u64.to_le_bytes()).unwrap();
    producer.publish(&[3]).unwrap();
    let (mut a, mut b, mut c) = ([0u8; 8], [0u8; 8], [0u8; 8]);
    let mut items = [[&mut a[..]], [&mut b[..]], [&mut c[..]]];
    let mut got = [NO_ITEM; 3];
    // Two items that fill their parts exactly, then a short one, which ends the batch.
    assert_eq!(sub.recv_batch_parts(&mut items, &mut got), Ok(2));
    assert_eq!((got[0].len, got[1].len), (8, 8));
    assert_eq!((u64::from_le_bytes(a), u64::from_le_bytes(b)), (1, 2));
    // First in the next batch, the short item is received alone.
    let mut d = [0u8; 8];
    let mut items = [[&mut d[..]]];
    assert_eq!(sub.recv_batch_parts(&mut items, &mut got), Ok(1));
    assert_eq!((got[0].len, d[0]), (1, 3));
}

/// A batch that fits in the slots the producer already knows to be free does not load
/// the consumer's head (no shared load, no cache miss): a corrupt head goes unseen
/// until a batch needs more room than the cached head shows.
#[test]
fn push_batch_loads_the_head_only_when_the_cached_room_is_short() {
    let (region, geometry) = spsc(4, 8);
    let ring = Spsc::new(&region, geometry).unwrap();
    let mut producer = ring.producer(1).unwrap();
    let items: Vec<[u8; 8]> = (0u64..5).map(|i| i.to_le_bytes()).collect();
    let head = &region.header().head;
    // A new producer knows of no free slot: its first push loads the head (0), after
    // which it knows of three.
    assert_eq!(producer.push(&items[0]), Ok(0));
    head.store(9, RELAXED); // ahead of the tail: impossible
    assert_eq!(producer.push_batch(&items[1..4]), Ok(3));
    head.store(0, RELAXED);
    // The ring is full now: a further batch loads the head (and finds no room).
    assert_eq!(producer.push_batch(&items[4..]), Err(PushError::Full));
    head.store(9, RELAXED);
    assert!(matches!(
        producer.push_batch(&items[4..]),
        Err(PushError::Corrupt(_))
    ));
}
