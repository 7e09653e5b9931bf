//! The publish cost against the number of joined subscribers, in a table of
//! [`TABLE`] entries: the broadcast core over a heap region, in one thread (the table
//! scan is the core's work; a heap region spares the harness thousands of mappings and
//! role locks).
//!
//! Lossy subscribers never read and never hold the producer back: a publish reads no
//! entry. Lossless subscribers are drained (untimed) after every [`BURST`] publishes,
//! so that the producer's cached minimum head goes stale and its publishes rescan the
//! table, as they do behind subscribers that keep up.

use std::time::Instant;
use tensorlane_core::{Broadcast, BroadcastGeometry, HeapRegion, SubscribeOptions};

/// Entries in the subscriber table of every measured ring.
pub const TABLE: usize = 4096;
/// Slots of the measured ring.
pub const CAPACITY: usize = 64;
/// Publishes between two drains of the lossless subscribers.
pub const BURST: usize = CAPACITY / 2;
/// Item size.
pub const ITEM: usize = 64;

/// Median ns of one `publish` of 64 B with `joined` subscribers (`lossless` or lossy)
/// in a table of [`TABLE`] entries, over `batches` batches of `bursts` bursts.
pub fn publish_ns(joined: usize, lossless: bool, batches: usize, bursts: usize) -> f64 {
    let geometry = BroadcastGeometry::new(CAPACITY, ITEM, TABLE).expect("geometry");
    let region = HeapRegion::new(geometry.body_words());
    let ring = Broadcast::new(&region, geometry).expect("ring");
    let mut producer = ring.producer(1).expect("producer");
    let options = if lossless {
        SubscribeOptions::lossless()
    } else {
        SubscribeOptions::lossy(2)
    };
    let mut subscribers: Vec<_> = (0..joined.min(TABLE))
        .map(|k| ring.subscribe(options, k as u64 + 2).expect("subscribe"))
        .collect();
    let item = [7u8; ITEM];
    let mut buf = [0u8; ITEM];
    let mut batch_ns = Vec::with_capacity(batches);
    for _ in 0..batches.max(1) {
        let mut timed = 0u128;
        for _ in 0..bursts.max(1) {
            let start = Instant::now();
            for _ in 0..BURST {
                producer
                    .publish(std::hint::black_box(&item))
                    .expect("a drained ring has room");
            }
            timed += start.elapsed().as_nanos();
            if lossless {
                for subscriber in &mut subscribers {
                    while subscriber.recv(&mut buf).is_ok() {}
                }
            }
        }
        batch_ns.push(timed as f64 / (bursts.max(1) * BURST) as f64);
    }
    crate::stats::median(&mut batch_ns)
}
