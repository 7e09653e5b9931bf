//! The scenarios on real threads, at sizes that also suit Miri
//! (`cargo +nightly miri test -p tensorlane-verification --test threads`).
#![cfg(not(any(feature = "loom", feature = "shuttle")))]

use std::thread;

include!("../scenarios/mod.rs");
include!("../scenarios/loans.rs");

use tensorlane_verification::canaries;

/// Repetitions: fewer under Miri, whose every step is interpreted.
const REPEAT: usize = if cfg!(miri) { 4 } else { 200 };
const ITEMS: u64 = if cfg!(miri) { 10 } else { 200 };

#[test]
fn register() {
    for _ in 0..REPEAT {
        register_writer_and_readers(
            ITEMS,
            2,
            ITEMS as usize,
            real_register_writer,
            real_register_reader,
        );
    }
}

#[test]
fn gpu_slot_protocol_threads() {
    gpu_slot_protocol(
        if cfg!(miri) { 20 } else { 20_000 },
        if cfg!(miri) { 20 } else { 20_000 },
        real_gpu_writer,
    );
}

#[test]
fn gpu_host_event_threads() {
    for _ in 0..if cfg!(miri) { 5 } else { 200 } {
        gpu_host_event(50, RealGpuStreamThread);
    }
}

#[test]
fn queue() {
    for _ in 0..REPEAT {
        queue_producer_and_consumer(ITEMS, real_queue_producer);
    }
}

#[test]
fn broadcast() {
    for _ in 0..REPEAT {
        broadcast_lossless_and_lossy(ITEMS, None);
        broadcast_join_races_publish(ITEMS, real_lossless_join, real_broadcast_producer);
        broadcast_join_leave_churn(ITEMS);
        broadcast_eviction_races_read(ITEMS);
    }
}

#[test]
fn broadcast_many() {
    broadcast_many_subscribers(ITEMS, if cfg!(miri) { 4 } else { 16 });
}

/// Zero-copy loans as byte slices across threads (Miri checks the exclusion).
#[test]
fn queue_byte_loans() {
    let fixture = QueueFixture::new(2, 8);
    // SAFETY: this ring is the only structure over the fixture's region, which nothing
    // else writes.
    let region = unsafe { tensorlane_core::Exclusive::new(fixture.region.clone()) };
    let ring = tensorlane_core::Spsc::new(region, fixture.geometry).unwrap();
    let consumer = {
        let ring = ring.clone();
        thread::spawn(move || {
            let mut c = ring.consumer(2).unwrap();
            let mut next = 0u64;
            while next < ITEMS {
                match c.peek() {
                    Ok(peek) => {
                        assert_eq!(peek.bytes(), next.to_le_bytes());
                        peek.release();
                        next += 1;
                    }
                    Err(_) => thread::yield_now(),
                }
            }
        })
    };
    let mut p = ring.producer(1).unwrap();
    let mut next = 0u64;
    while next < ITEMS {
        match p.loan() {
            Ok(mut loan) => {
                loan.bytes_mut().copy_from_slice(&next.to_le_bytes());
                loan.commit(8).unwrap();
                next += 1;
            }
            Err(_) => thread::yield_now(),
        }
    }
    consumer.join().unwrap();
}

/// The loom loan scenario (byte views of an `Exclusive` ring) on real threads.
#[test]
fn queue_loans_threads() {
    for _ in 0..REPEAT {
        queue_loans(ITEMS, tensorlane_verification::loans::real_loan_producer);
    }
}

/// Misuse that compiles without `unsafe`, across threads: two rings over one body
/// (each with its own header, so two producers write the same slots) while a
/// consumer peeks, and a thread storing into the body directly. Over a region that is
/// not `Exclusive` the loans offer atomic words only, so Miri finds no data race and
/// no undefined behaviour: the misuse makes garbage, nothing worse.
#[test]
fn queue_misuse_without_exclusive_is_no_ub() {
    use std::sync::atomic::Ordering::Relaxed;
    use tensorlane_core::{store_bytes, Parts, Region, Spsc, SpscHeader};
    let fixture = QueueFixture::new(2, 8);
    let body = fixture.region.body();
    let headers = [SpscHeader::default(), SpscHeader::default()];
    thread::scope(|s| {
        for (i, header) in headers.iter().enumerate() {
            s.spawn(move || {
                let ring = Spsc::new(Parts::new(header, body), fixture.geometry).unwrap();
                let mut p = ring.producer(1).unwrap();
                let mut c = ring.consumer(2).unwrap();
                for k in 0..ITEMS {
                    if let Ok(loan) = p.loan() {
                        store_bytes(loan.words(), &(k * 2 + i as u64).to_le_bytes());
                        loan.commit(8).unwrap();
                    }
                    if let Ok(peek) = c.peek() {
                        let mut got = [0u8; 8];
                        peek.words().load_bytes(&mut got);
                        peek.release();
                    }
                }
            });
        }
        s.spawn(move || {
            for k in 0..ITEMS {
                body[(k as usize) % body.len()].store(k, Relaxed);
            }
        });
    });
}

/// Miri canary: a reader copying the payload with plain loads races the writer.
/// Ignored in ordinary runs (on hardware the race is silent); `.ci/miri-canary` runs
/// it under Miri and requires Miri to report a data race.
#[test]
#[ignore = "canary: must fail under Miri (run by .ci/miri-canary)"]
fn miri_canary_plain_payload_read() {
    register_writer_and_readers(
        4,
        1,
        8,
        real_register_writer,
        canaries::plain_payload_reader,
    );
}

/// Miri canary: the misuse the `Exclusive` promise rules out. A store into a slot
/// through the region while the consumer holds the item as bytes is undefined
/// behaviour (Stacked Borrows: the store invalidates the shared byte view), which is
/// why byte views exist only behind that `unsafe` promise. Ignored in ordinary runs;
/// `.ci/miri-canary` runs it under Miri and requires Miri to report it.
#[test]
#[ignore = "canary: must fail under Miri (run by .ci/miri-canary)"]
fn miri_canary_store_under_peeked_bytes() {
    use std::sync::atomic::Ordering::Relaxed;
    use tensorlane_core::{Exclusive, Region, Spsc, PAYLOAD_WORD};
    let fixture = QueueFixture::new(2, 8);
    // SAFETY: deliberately broken below: this is the canary.
    let region = unsafe { Exclusive::new(fixture.region.clone()) };
    let ring = Spsc::new(region, fixture.geometry).unwrap();
    let mut p = ring.producer(1).unwrap();
    let mut c = ring.consumer(2).unwrap();
    p.push(&7u64.to_le_bytes()).unwrap();
    let peek = c.peek().unwrap();
    let bytes = peek.bytes();
    fixture.region.body()[PAYLOAD_WORD].store(9, Relaxed);
    assert_eq!(bytes[0], 9);
}

#[test]
fn queue_batches_threads() {
    for _ in 0..REPEAT {
        queue_batches(ITEMS, real_batch_producer);
    }
}

#[test]
fn broadcast_lossless_batches_threads() {
    for _ in 0..REPEAT {
        broadcast_lossless_batches(ITEMS);
    }
}

#[test]
fn register_range_reads_threads() {
    for _ in 0..REPEAT {
        register_range_reads(ITEMS.min(200), 50, real_register_writer);
    }
}

// A race that no single-threaded test can set up: what a reader sees while the
// producer is between two stores. It runs until the race it needs has happened
// (bounded by `RACE_DEADLINE`), so that it cannot pass without exercising it. Not
// under Miri: it needs many real interleavings.

/// How long a race test waits for the interleaving it needs before failing.
const RACE_DEADLINE: std::time::Duration = std::time::Duration::from_secs(20);

/// A slot being written carries stamp `2p + 1` (docs/LAYOUT.md): a thread watching
/// the stamp word of the only slot of a ring of capacity 1 sees it move forward
/// only, through `2p + 1` and `2p + 2` for each position `p`. The items are large,
/// so that the copy between the two stamps is a wide window; the producer publishes
/// until the watcher has seen a write in progress.
#[test]
#[cfg_attr(miri, ignore = "needs many real interleavings")]
fn a_slot_being_written_carries_the_odd_stamp() {
    use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
    use tensorlane_core::{Region, STAMP_WORD};
    const BYTES: usize = 1 << 20;
    let fixture = BroadcastFixture::new(1, BYTES, 1);
    let ring = fixture.ring();
    let mut producer = ring.producer(1).unwrap();
    let stamp = &fixture.region.body()[fixture.geometry.slots_offset() + STAMP_WORD];
    let seen_writing = AtomicBool::new(false);
    let done = AtomicBool::new(false);
    let item = vec![7u8; BYTES];
    thread::scope(|s| {
        let watcher = s.spawn(|| {
            let mut last = stamp.load(Relaxed);
            let mut writes_seen = 0u64;
            while !done.load(Relaxed) {
                let now = stamp.load(Relaxed);
                if now == last {
                    continue;
                }
                // The writing stamp 2p + 1 of position p is above the done stamp
                // 2p of position p - 1, and below its own done stamp 2p + 2: seen
                // at any moments, the stamp only moves up.
                assert!(
                    now > last,
                    "stamp went from {last:#x} to {now:#x}: not 2p + 1 while writing p"
                );
                if now % 2 == 1 {
                    writes_seen += 1;
                    seen_writing.store(true, Relaxed);
                }
                last = now;
            }
            writes_seen
        });
        let start = std::time::Instant::now();
        while !seen_writing.load(Relaxed)
            && !watcher.is_finished()
            && start.elapsed() < RACE_DEADLINE
        {
            producer.publish(&item).unwrap();
        }
        done.store(true, Relaxed);
        let writes_seen = watcher.join().unwrap();
        assert!(
            writes_seen > 0,
            "the watcher never saw a write in progress in {RACE_DEADLINE:?}"
        );
    });
}
