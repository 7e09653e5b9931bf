// Broadcast races no other scenario covers, shared by the suites that include them
// after `mod.rs`: reads of the history against a publishing producer, two lossless
// subscribers holding the producer back, a supervisor's stale eviction racing a
// join into the same table entry, and an inspector's snapshot racing a join.

/// A reader takes the history (`history(2)`) and reads each position of it with
/// `read_at`, `reads` times, while `producer` publishes `items` items through a ring
/// of capacity 2 with no subscriber. Every item read is exactly the item at its
/// position; an overwritten one is reported as such.
#[allow(dead_code)]
pub fn broadcast_history_reads<P: BroadcastProducerRole>(
    items: u64,
    reads: usize,
    producer: fn(&BroadcastFixture) -> P,
) {
    let fixture = BroadcastFixture::new(2, 16, 1);
    let ring = fixture.ring();
    let producer = producer(&fixture);
    let producer = thread::spawn(move || publish_all(producer, items));
    let mut buf = [0u8; 16];
    for _ in 0..reads {
        for position in ring.history(2) {
            match ring.read_at(position, &mut buf) {
                Ok(len) => {
                    if len != 16 {
                        panic!("torn read: position {position} has length {len}");
                    }
                    check_words(&buf, position, "position");
                }
                Err(tensorlane_core::ReadAtError::Overwritten) => {}
                Err(e) => panic!("unexpected read_at error: {e}"),
            }
        }
    }
    producer.join().unwrap();
}

/// Two lossless subscribers (joined before the first publish) receive in one thread
/// at different paces, the first up to twice as fast as the second, while `producer`
/// publishes `items` items through a ring of capacity 2: the producer's cached
/// minimum head must follow the slower one, so each receives every item in order.
/// (One thread for both keeps loom's spinning threads at two.)
#[allow(dead_code)]
pub fn broadcast_two_lossless<P: BroadcastProducerRole>(
    items: u64,
    producer: fn(&BroadcastFixture) -> P,
) {
    let fixture = BroadcastFixture::new(2, 16, 2);
    let ring = fixture.ring();
    let mut fast = CheckedSubscriber::new(ring.subscribe(SubscribeOptions::lossless(), 2).unwrap(), true);
    let mut slow = CheckedSubscriber::new(ring.subscribe(SubscribeOptions::lossless(), 3).unwrap(), true);
    let producer = producer(&fixture);
    let producer = thread::spawn(move || publish_all(producer, items));
    while !(fast.finished(items) && slow.finished(items)) {
        let mut progressed = false;
        for turn in [true, true, false] {
            let sub = if turn { &mut fast } else { &mut slow };
            if !sub.finished(items) {
                match sub.step() {
                    Step::Item => progressed = true,
                    Step::Nothing => {}
                    Step::Evicted => panic!("lost item: a lossless subscriber was evicted"),
                }
            }
        }
        if !progressed {
            thread::yield_now();
        }
    }
    producer.join().unwrap();
}

/// The real supervisor's stale retry: a decision made on generation `generation` of
/// entry `index` (evict, then reclaim), carried out again, each step only if the
/// entry still holds that generation.
#[allow(dead_code)]
pub fn real_generation_supervisor(fixture: &BroadcastFixture, index: usize, generation: u64) {
    let ring = fixture.ring();
    for result in [
        ring.evict_generation(index, generation),
        ring.reclaim_generation(index, generation),
    ] {
        match result {
            Ok(()) | Err(tensorlane_core::EntryError::WrongState { .. }) => {}
            Err(e) => panic!("unexpected entry error: {e}"),
        }
    }
}

/// A lossless subscriber dies holding the only table entry (its handle is
/// forgotten); a supervisor judges that generation dead and evicts and reclaims it.
/// Then, concurrently, the supervisor retries its decision (`supervisor`) while a
/// new lossless subscriber joins through the freed entry, the producer publishes one
/// item and the newcomer receives it. The retry must leave the newcomer alone: it
/// joins, receives the item, and keeps the entry.
#[allow(dead_code)]
pub fn broadcast_stale_supervisor_races_join(supervisor: fn(&BroadcastFixture, usize, u64)) {
    let fixture = BroadcastFixture::new(2, 16, 1);
    let ring = fixture.ring();
    let dead = ring.subscribe(SubscribeOptions::lossless(), 2).unwrap();
    let index = dead.index();
    let generation = ring.subscriber(index).expect("entry in range").generation;
    core::mem::forget(dead);
    ring.evict_generation(index, generation).expect("the dead subscriber is active");
    ring.reclaim_generation(index, generation).expect("the dead subscriber is evicted");
    let supervisor_fixture = fixture.clone();
    let supervisor =
        thread::spawn(move || supervisor(&supervisor_fixture, index, generation));
    let mut producer = real_broadcast_producer(&fixture);
    let mut joiner = match ring.subscribe(SubscribeOptions::lossless(), 3) {
        Ok(sub) => sub,
        Err(e) => panic!("stale supervisor: the join failed ({e})"),
    };
    assert_eq!(joiner.index(), index, "one entry");
    let joined = joiner.head();
    assert_eq!(producer.publish(&stamped_value::<2>(joined)), Ok(joined));
    let mut buf = [0u8; 16];
    match joiner.recv(&mut buf) {
        Ok(got) => check_words(&buf, got.position, "position"),
        Err(e) => panic!("stale supervisor: the new subscriber's receive failed ({e})"),
    }
    supervisor.join().unwrap();
    let entry = ring.subscriber(index).expect("entry in range");
    if entry.state != tensorlane_core::entry::ACTIVE || entry.generation == generation {
        panic!("stale supervisor: the new subscriber's entry is {entry:?}");
    }
    drop(joiner);
}

/// A lossy subscriber joins through the one table entry (`join`, owner `token`, lag
/// bound `INSPECTED_MAX_LAG`) and leaves, while an inspector takes `snapshots`
/// snapshots of the entry (`Broadcast::subscriber`, as the command-line tool does): a
/// snapshot that shows the entry ACTIVE shows that join's mode, lag bound and owner.
#[allow(dead_code)]
pub fn broadcast_snapshots_race_join(snapshots: usize, join: fn(&BroadcastFixture, u64)) {
    use tensorlane_core::entry;
    let token = 7;
    let fixture = BroadcastFixture::new(2, 16, 1);
    let ring = fixture.ring();
    let joiner_fixture = fixture.clone();
    let joiner = thread::spawn(move || join(&joiner_fixture, token));
    for _ in 0..snapshots {
        let info = ring.subscriber(0).expect("entry in range");
        if info.state == entry::ACTIVE
            && (info.mode != entry::MODE_LOSSY
                || info.max_lag != INSPECTED_MAX_LAG
                || info.owner != token)
        {
            panic!("inconsistent snapshot: an ACTIVE entry shows {info:?}");
        }
    }
    joiner.join().unwrap();
}

/// A lossless entry whose head is impossible (ahead of the tail) is evicted by the
/// producer's scan, while a peer changes its state word once (a new generation, as a
/// re-join through the damaged entry would). The scan's compare-exchange against the
/// state it saw may lose to that change once; the scan then examines the new state
/// and evicts it. The publish succeeds and counts one eviction: it gives up
/// (`Corrupt`) only after `SCAN_ENTRY_ATTEMPTS` (4) lost compare-exchanges in a row,
/// which one change cannot cause.
#[allow(dead_code)]
pub fn broadcast_entry_changes_under_the_scan() {
    use std::sync::atomic::Ordering::Relaxed;
    use tensorlane_core::{entry, Region, ENTRY_WORDS};
    let fixture = BroadcastFixture::new(2, 8, 1);
    let e = &fixture.region.body()[..ENTRY_WORDS];
    e[entry::MODE].store(entry::MODE_LOSSLESS, Relaxed);
    e[entry::HEAD].store(1 << 40, Relaxed);
    e[entry::STATE].store((1 << 2) | entry::ACTIVE, Relaxed);
    let ring = fixture.ring();
    let mut producer = ring.producer(1).unwrap();
    let region = fixture.region.clone();
    let peer = thread::spawn(move || {
        region.body()[entry::STATE].store((2 << 2) | entry::ACTIVE, Relaxed);
    });
    let published = producer.publish(&[0u8; 8]);
    peer.join().unwrap();
    assert_eq!(
        published,
        Ok(0),
        "one change under the scan made the publish fail"
    );
    assert_eq!(producer.evicted_corrupt(), 1, "the impossible entry was not evicted once");
}
