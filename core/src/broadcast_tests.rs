//! The broadcast ring facing a table or counters that another process damaged: what
//! a handle keeps from shared memory is validated first, a corrupt entry does not halt
//! the producer, and the eviction of a dead subscriber acts only on the state the
//! producer's scan saw.

use crate::*;

const RELAXED: core::sync::atomic::Ordering = core::sync::atomic::Ordering::Relaxed;

fn ring(capacity: usize, subscribers: usize) -> (HeapRegion<BroadcastHeader>, BroadcastGeometry) {
    let geometry = BroadcastGeometry::new(capacity, 8, subscribers).unwrap();
    (HeapRegion::new(geometry.body_words()), geometry)
}

fn entry_word(region: &HeapRegion<BroadcastHeader>, index: usize, field: usize) -> &AtomicU64 {
    &region.body()[index * ENTRY_WORDS + field]
}

/// A corrupt tail that a lossy subscriber found impossible leaves no trace: once the
/// word is restored, its head is still at or below the tail and it receives exactly
/// what was published.
#[test]
fn a_lossy_head_never_passes_the_tail_after_a_corrupt_tail() {
    let (region, geometry) = ring(4, 2);
    let ring = Broadcast::new(&region, geometry).unwrap();
    let mut producer = ring.producer(1).unwrap();
    let mut lossy = ring.subscribe(SubscribeOptions::lossy(4), 2).unwrap();
    let tail = &region.header().tail;
    let mut buf = [0u8; 8];

    // Nothing published; a peer scribbles a tail 10 positions ahead. The lag bound
    // would make the subscriber skip to position 6, which the slot's stamp refutes.
    tail.store(10, RELAXED);
    assert!(matches!(
        lossy.recv(&mut buf),
        Err(RecvError::Corrupt(Corruption::Stamp { .. }))
    ));
    tail.store(0, RELAXED);
    assert_eq!(lossy.head(), 0, "the head moved on a refuted tail");
    assert_eq!(lossy.recv(&mut buf), Err(RecvError::Empty));

    producer.publish(&7u64.to_le_bytes()).unwrap();
    let got = lossy.recv(&mut buf).unwrap();
    assert_eq!(
        (got.position, got.missed, u64::from_le_bytes(buf)),
        (0, 0, 7)
    );
    assert_eq!(lossy.missed(), 0);
}

/// A lossless subscriber does not keep a tail it found impossible (or one that the
/// slot stamps refuted): once the word is restored it reports `Empty`, then receives
/// every item in order.
#[test]
fn a_lossless_subscriber_keeps_no_refuted_tail() {
    let (region, geometry) = ring(4, 2);
    let ring = Broadcast::new(&region, geometry).unwrap();
    let mut producer = ring.producer(1).unwrap();
    let mut sub = ring.subscribe(SubscribeOptions::lossless(), 2).unwrap();
    let tail = &region.header().tail;
    let mut buf = [0u8; 8];

    // Impossible: 100 positions ahead of a lossless head in a ring of 4.
    tail.store(100, RELAXED);
    assert!(matches!(
        sub.recv(&mut buf),
        Err(RecvError::Corrupt(Corruption::Indices { .. }))
    ));
    tail.store(0, RELAXED);
    assert_eq!(sub.recv(&mut buf), Err(RecvError::Empty));

    // Plausible (2 ahead), but the stamp of the head's slot refutes it.
    tail.store(2, RELAXED);
    assert!(matches!(
        sub.recv(&mut buf),
        Err(RecvError::Corrupt(Corruption::Stamp { .. }))
    ));
    tail.store(0, RELAXED);
    assert_eq!(sub.recv(&mut buf), Err(RecvError::Empty));

    for i in 0..3u64 {
        producer.publish(&i.to_le_bytes()).unwrap();
    }
    for i in 0..3u64 {
        let got = sub.recv(&mut buf).unwrap();
        assert_eq!((got.position, u64::from_le_bytes(buf)), (i, i));
    }
    assert_eq!(sub.recv(&mut buf), Err(RecvError::Empty));
}

/// One subscriber entry with an impossible head (ahead of the tail) does not halt the
/// producer: the scan evicts exactly the state it saw, counts it, and publishing goes
/// on, still held back by the healthy lossless subscriber.
#[test]
fn a_corrupt_entry_is_evicted_and_publishing_goes_on() {
    let (region, geometry) = ring(2, 2);
    let ring = Broadcast::new(&region, geometry).unwrap();
    let mut producer = ring.producer(1).unwrap();
    producer.publish(b"0").unwrap();
    let mut buggy = ring.subscribe(SubscribeOptions::lossless(), 2).unwrap();
    let mut healthy = ring.subscribe(SubscribeOptions::lossless(), 3).unwrap();
    entry_word(&region, buggy.index(), entry::HEAD).store(100, RELAXED);

    assert_eq!(producer.publish(b"1"), Ok(1));
    assert_eq!(producer.evicted_corrupt(), 1);
    assert_eq!(
        producer.last_corrupt_entry(),
        Some(Corruption::SubscriberHead {
            subscriber: 0,
            head: 100,
            tail: 1
        })
    );
    let info = ring.subscriber(0).unwrap();
    assert_eq!((info.state, info.generation), (entry::EVICTED, 1));
    assert_eq!(buggy.recv(&mut [0u8; 8]), Err(RecvError::Evicted));

    // The healthy subscriber (head 1) still holds the producer back, and nothing
    // else is counted.
    assert_eq!(producer.publish(b"2"), Ok(2));
    assert_eq!(
        producer.publish(b"3"),
        Err(PublishError::Full { subscriber: 1 })
    );
    assert_eq!(healthy.recv(&mut [0u8; 8]).unwrap().position, 1);
    assert_eq!(producer.publish(b"3"), Ok(3));
    assert_eq!(producer.evicted_corrupt(), 1);

    // The evicted subscriber leaves; its entry is free for the next joiner.
    drop(buggy);
    assert_eq!(ring.subscriber(0).unwrap().state, entry::FREE);
}

/// A corrupt lossy entry is not the producer's business (lossy subscribers never hold
/// it back), and a corrupt entry that its owner frees before the producer's
/// compare-exchange is simply skipped.
#[test]
fn only_active_lossless_entries_are_evicted_as_corrupt() {
    let (region, geometry) = ring(2, 2);
    let ring = Broadcast::new(&region, geometry).unwrap();
    let mut producer = ring.producer(1).unwrap();
    let lossy = ring.subscribe(SubscribeOptions::lossy(1), 2).unwrap();
    entry_word(&region, lossy.index(), entry::HEAD).store(100, RELAXED);
    for i in 0..4u64 {
        assert_eq!(producer.publish(b"x"), Ok(i));
    }
    assert_eq!(producer.evicted_corrupt(), 0);
    assert_eq!(ring.subscriber(0).unwrap().state, entry::ACTIVE);
}

/// The race of LAYOUT.md section 13: the producer's scan saw a dead lossless
/// subscriber's entry (generation 1) holding it back; before the publisher evicts it,
/// a new subscriber takes the entry's role lock, reclaims it and joins (generation 2).
/// Evicting by the state the scan saw leaves the new subscriber alone; evicting by a
/// re-read of the state (`Broadcast::evict`) would evict a live subscriber.
#[test]
fn eviction_acts_only_on_the_state_the_scan_saw() {
    let (region, geometry) = ring(2, 1);
    let ring = Broadcast::new(&region, geometry).unwrap();
    let mut producer = ring.producer(1).unwrap();
    let dead = ring.subscribe(SubscribeOptions::lossless(), 2).unwrap();
    core::mem::forget(dead); // its process died: the handle is never dropped
    producer.publish(b"0").unwrap();
    producer.publish(b"1").unwrap();
    assert_eq!(
        producer.publish(b"2"),
        Err(PublishError::Full { subscriber: 0 })
    );

    // The publisher found the role lock free. Meanwhile a new subscriber takes the
    // lock, reclaims the entry and joins through it.
    ring.reclaim(0).unwrap();
    let mut live = ring
        .subscribe_at(0, SubscribeOptions::lossless(), 3)
        .unwrap();
    assert_eq!(ring.subscriber(0).unwrap().generation, 2);

    assert!(producer.evict_blocker(0).is_err());
    assert_eq!(ring.subscriber(0).unwrap().state, entry::ACTIVE);
    assert_eq!(producer.publish(b"2"), Ok(2));
    assert_eq!(live.recv(&mut [0u8; 8]).unwrap().position, 2);

    // The racy procedure: a re-read of the state evicts the live subscriber.
    ring.evict(0).unwrap();
    assert_eq!(live.recv(&mut [0u8; 8]), Err(RecvError::Evicted));
}

/// The dead subscriber's entry, still in the state the scan saw, is evicted and freed;
/// the producer goes on at once.
#[test]
fn a_dead_blocker_is_evicted_and_freed() {
    let (region, geometry) = ring(2, 2);
    let ring = Broadcast::new(&region, geometry).unwrap();
    let mut producer = ring.producer(1).unwrap();
    let _lossy = ring.subscribe(SubscribeOptions::lossy(2), 2).unwrap();
    let dead = ring.subscribe(SubscribeOptions::lossless(), 3).unwrap();
    core::mem::forget(dead);
    producer.publish(b"0").unwrap();
    producer.publish(b"1").unwrap();
    assert_eq!(
        producer.publish(b"2"),
        Err(PublishError::Full { subscriber: 1 })
    );
    // Only the entry the last `Full` named.
    assert!(producer.evict_blocker(0).is_err());
    assert_eq!(ring.subscriber(0).unwrap().state, entry::ACTIVE);
    producer.evict_blocker(1).unwrap();
    let info = ring.subscriber(1).unwrap();
    assert_eq!((info.state, info.generation), (entry::FREE, 1));
    assert_eq!(producer.publish(b"2"), Ok(2));
    // A second call has nothing to act on.
    assert!(producer.evict_blocker(1).is_err());
}

/// A head far ahead of the tail (2^63 or more, which wrapping order would call
/// "behind") is corrupt too: evicted, counted, and publishing goes on.
#[test]
fn a_head_far_ahead_is_evicted_as_corrupt() {
    let (region, geometry) = ring(2, 2);
    let ring = Broadcast::new(&region, geometry).unwrap();
    let mut producer = ring.producer(1).unwrap();
    let _subscriber = ring.subscribe(SubscribeOptions::lossless(), 2).unwrap();
    entry_word(&region, 0, entry::HEAD).store(u64::MAX, RELAXED);
    for k in 0..4u64 {
        producer.publish(&k.to_le_bytes()).unwrap();
    }
    assert_eq!(producer.evicted_corrupt(), 1);
}

/// A join keeps the tail as its head only once the slot before it confirms it: a tail
/// scribbled ahead during the join (and restored after) is refused, the entry is given
/// back, and no live subscriber is later evicted as corrupt because of it.
#[test]
fn a_join_refuses_a_tail_its_slot_does_not_confirm() {
    let (region, geometry) = ring(2, 2);
    let ring = Broadcast::new(&region, geometry).unwrap();
    let mut producer = ring.producer(1).unwrap();
    producer.publish(&1u64.to_le_bytes()).unwrap();
    let tail = &region.header().tail;
    tail.store(3, RELAXED); // ahead of what was published
    assert!(matches!(
        ring.subscribe(SubscribeOptions::lossless(), 2),
        Err(SubscribeError::Corrupt(Corruption::Stamp {
            expected: 2,
            ..
        }))
    ));
    tail.store(1, RELAXED);
    assert_eq!(ring.subscriber(0).unwrap().state, entry::FREE);
    let mut subscriber = ring.subscribe(SubscribeOptions::lossless(), 2).unwrap();
    for k in 2..6u64 {
        producer.publish(&k.to_le_bytes()).unwrap();
        let mut buf = [0u8; 8];
        let got = subscriber.recv(&mut buf).unwrap();
        assert_eq!((got.position, u64::from_le_bytes(buf)), (k - 1, k));
    }
    assert_eq!(producer.evicted_corrupt(), 0);
}

/// A producer take-over keeps its own tail only once the slot before it confirms it.
#[test]
fn a_takeover_refuses_a_tail_ahead_of_what_was_published() {
    let (region, geometry) = ring(2, 2);
    let ring = Broadcast::new(&region, geometry).unwrap();
    let mut producer = ring.producer(1).unwrap();
    producer.publish(&1u64.to_le_bytes()).unwrap();
    core::mem::forget(producer);
    region.header().tail.store(5, RELAXED);
    assert!(matches!(
        ring.producer_takeover(1, 7),
        Err(ClaimError::Corrupt(Corruption::Stamp { expected: 4, .. }))
    ));
    assert_eq!(ring.producer_owner(), 1, "the role was given back");
    region.header().tail.store(1, RELAXED);
    let mut producer = ring.producer_takeover(1, 7).unwrap();
    assert_eq!(ring.producer_owner(), 7, "the successor holds the role");
    assert_eq!(producer.publish(&2u64.to_le_bytes()).unwrap(), 1);
    drop(producer);
    assert_eq!(ring.producer_owner(), 0, "the role is free after the drop");
}

/// A rescan for a stale minimum head looks only at the entries up to the last lossless
/// one the previous scan found; a join's epoch bump makes the next publish look at the
/// whole table. Shown with an entry planted past that bound without a join: the
/// rescans do not see it, the next epoch change does.
#[test]
fn a_rescan_without_a_join_stops_at_the_last_lossless_entry() {
    let (region, geometry) = ring(2, 64);
    let ring = Broadcast::new(&region, geometry).unwrap();
    let mut producer = ring.producer(1).unwrap();
    let mut sub = ring.subscribe(SubscribeOptions::lossless(), 2).unwrap();
    assert_eq!(sub.index(), 0);
    let mut buf = [0u8; 8];
    assert_eq!(producer.publish(b"0"), Ok(0)); // the join's scan: the whole table

    // Entry 40 looks like a lossless subscriber stuck at head 0, with no join behind
    // it (no epoch bump): nothing a correct peer does.
    entry_word(&region, 40, entry::MODE).store(entry::MODE_LOSSLESS, RELAXED);
    entry_word(&region, 40, entry::HEAD).store(0, RELAXED);
    entry_word(&region, 40, entry::STATE).store((1 << 2) | entry::ACTIVE, RELAXED);

    // The subscriber keeps up; every near-full rescan looks at entry 0 only.
    for position in 1..20u64 {
        assert_eq!(producer.publish(&position.to_le_bytes()), Ok(position));
        assert_eq!(sub.recv(&mut buf).unwrap().position, position - 1);
    }

    // A join anywhere bumps the epoch: the next publish scans the whole table and
    // finds entry 40 holding the producer back.
    let _late = ring.subscribe(SubscribeOptions::lossless(), 3).unwrap();
    assert_eq!(
        producer.publish(b"x"),
        Err(PublishError::Full { subscriber: 40 })
    );
}

/// A lossy receive makes at most the attempts set (at least one), each finding its
/// slot overwritten, and then reports `Stalled` without moving the head: here the
/// stamp of position 0 reads as that of position 4 (as if the producer had lapped the
/// ring during the copy) for as long as the subscriber looks.
#[test]
fn a_lossy_receive_stalls_after_the_attempts_set() {
    let (region, geometry) = ring(4, 1);
    let ring = Broadcast::new(&region, geometry).unwrap();
    let mut producer = ring.producer(1).unwrap();
    let mut lossy = ring.subscribe(SubscribeOptions::lossy(4), 2).unwrap();
    for i in 0u64..2 {
        producer.publish(&i.to_le_bytes()).unwrap();
    }
    let stamp = &region.body()[geometry.slots_offset() + STAMP_WORD];
    let done = stamp.load(RELAXED);
    let mut buf = [0u8; 8];
    stamp.store(done + 8, RELAXED); // the done stamp of position 4
    for set in [0, 1] {
        lossy.set_max_attempts(set);
        assert_eq!(
            lossy.recv(&mut buf),
            Err(RecvError::Stalled { attempts: 1 }),
            "attempts set to {set}"
        );
        assert_eq!((lossy.head(), lossy.missed()), (0, 0));
    }
    // A second attempt skips the overwritten position and takes the next one.
    lossy.set_max_attempts(2);
    let got = lossy.recv(&mut buf).unwrap();
    assert_eq!((got.position, got.missed), (1, 1));
    // With the stamp back, nothing is left.
    stamp.store(done, RELAXED);
    assert_eq!(lossy.recv(&mut buf), Err(RecvError::Empty));
}
