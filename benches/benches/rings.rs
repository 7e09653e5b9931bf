//! Criterion micro-benchmarks of the core's rings in one process, over heap regions:
//!
//! - SPSC: `push` + `pop` (a copy in, a copy out) and `loan` + `commit` then
//!   `peek` + `release` (in place, touching only 8 bytes), for 64 B and 40 KB items;
//! - broadcast: the cost of one `publish` of 64 B with 1, 2, 4 and 8 lossy
//!   subscribers (which never read, and never hold the publisher back), and with 1,
//!   2, 4 and 8 lossless subscribers: batches of 32 publishes are timed, then every
//!   subscriber drains them, untimed.
//!
//! `cargo bench -p tensorlane-benches --bench rings`
#[cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]
mod bench {
    use criterion::{BenchmarkId, Criterion, Throughput};
    use std::hint::black_box;
    use std::time::{Duration, Instant};
    use tensorlane_core::{
        Broadcast, BroadcastGeometry, BroadcastHeader, Exclusive, HeapRegion, Spsc, SpscGeometry,
        SpscHeader, SubscribeOptions,
    };

    fn spsc(c: &mut Criterion) {
        let mut group = c.benchmark_group("spsc");
        group
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
        for (size, label) in [(64usize, "64B"), (40_000, "40KB")] {
            group.throughput(Throughput::Bytes(size as u64));
            let geometry = SpscGeometry::new(8, size).expect("geometry");
            let region = HeapRegion::<SpscHeader>::new(geometry.body_words());
            // SAFETY: this ring is the only user of `region`, through its handles.
            let ring = Spsc::new(unsafe { Exclusive::new(&region) }, geometry).expect("ring");
            let mut producer = ring.producer(1).expect("producer");
            let mut consumer = ring.consumer(2).expect("consumer");
            let src = vec![7u8; size];
            let mut dst = vec![0u8; size];
            group.bench_function(BenchmarkId::new("push+pop", label), |b| {
                b.iter(|| {
                    producer.push(black_box(&src)).expect("push");
                    consumer.pop(black_box(&mut dst)).expect("pop")
                })
            });
            group.bench_function(BenchmarkId::new("loan+commit+peek+release", label), |b| {
                b.iter(|| {
                    let mut loan = producer.loan().expect("loan");
                    loan.bytes_mut()[..8].copy_from_slice(&7u64.to_le_bytes());
                    loan.commit(size).expect("commit");
                    let peek = consumer.peek().expect("peek");
                    let first = u64::from_le_bytes(peek.bytes()[..8].try_into().expect("8"));
                    peek.release();
                    black_box(first)
                })
            });
        }
        group.finish();
    }

    const BATCH: u64 = 32;

    fn broadcast(c: &mut Criterion) {
        let mut group = c.benchmark_group("broadcast-publish-64B");
        group
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2));
        let item = [7u8; 64];
        for lossless in [false, true] {
            for k in [1usize, 2, 4, 8] {
                let geometry = BroadcastGeometry::new(64, 64, 8).expect("geometry");
                let region = HeapRegion::<BroadcastHeader>::new(geometry.body_words());
                let ring = Broadcast::new(&region, geometry).expect("ring");
                let mut producer = ring.producer(1).expect("producer");
                let options = if lossless {
                    SubscribeOptions::lossless()
                } else {
                    SubscribeOptions::lossy(2)
                };
                let mut subscribers: Vec<_> = (0..k)
                    .map(|i| ring.subscribe(options, 10 + i as u64).expect("subscribe"))
                    .collect();
                let mode = if lossless { "lossless" } else { "lossy" };
                let mut buf = [0u8; 64];
                group.bench_function(BenchmarkId::new(mode, k), |b| {
                    b.iter_custom(|iters| {
                        let mut total = Duration::ZERO;
                        let mut done = 0;
                        while done < iters {
                            let n = BATCH.min(iters - done);
                            let start = Instant::now();
                            for _ in 0..n {
                                producer.publish(black_box(&item)).expect("publish");
                            }
                            total += start.elapsed();
                            done += n;
                            if lossless {
                                for s in subscribers.iter_mut() {
                                    for _ in 0..n {
                                        s.recv(&mut buf).expect("recv");
                                    }
                                }
                            }
                        }
                        total
                    })
                });
            }
        }
        group.finish();
    }

    /// Runs both groups with criterion's command-line configuration.
    pub fn main() {
        let mut c = Criterion::default().configure_from_args();
        spsc(&mut c);
        broadcast(&mut c);
        c.final_summary();
    }
}

#[cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]
fn main() {
    bench::main();
}

/// The checker builds (loom, shuttle) have nothing to measure.
#[cfg(not(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle")))))]
fn main() {}
