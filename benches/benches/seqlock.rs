//! Criterion micro-benchmarks of the core's seqlock register in one process (no
//! shared memory, no second thread): `write`, `read` and `write` + `read` of
//! 64 B, 40 KB (100x100 f32), 4 MB (1000x1000 f32) and 400 MB (10000x10000 f32,
//! a few flat samples; skipped when `TENSORLANE_BENCH_NO_400MB` is set), on a
//! two-slot register over a heap region.
//!
//! `cargo bench -p tensorlane-benches --bench seqlock`
#[cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]
mod bench {
    use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
    use std::hint::black_box;
    use std::time::Duration;
    use tensorlane_core::{HeapRegion, Seqlock, SeqlockGeometry, SeqlockHeader};

    const SIZES: [(usize, &str); 4] = [
        (64, "64B"),
        (40_000, "40KB"),
        (4_000_000, "4MB"),
        (400_000_000, "400MB"),
    ];

    fn seqlock(c: &mut Criterion) {
        let mut group = c.benchmark_group("seqlock");
        for (size, label) in SIZES {
            let huge = size >= 100_000_000;
            if huge && std::env::var_os("TENSORLANE_BENCH_NO_400MB").is_some() {
                continue;
            }
            if huge {
                group
                    .sampling_mode(SamplingMode::Flat)
                    .sample_size(10)
                    .warm_up_time(Duration::from_millis(100))
                    .measurement_time(Duration::from_secs(8));
            } else {
                group
                    .sampling_mode(SamplingMode::Auto)
                    .sample_size(50)
                    .warm_up_time(Duration::from_millis(500))
                    .measurement_time(Duration::from_secs(2));
            }
            group.throughput(Throughput::Bytes(size as u64));
            let geometry = SeqlockGeometry::new(2, size).expect("geometry");
            let region = HeapRegion::<SeqlockHeader>::new(geometry.body_words());
            let lane = Seqlock::new(&region, geometry).expect("lane");
            let mut writer = lane.writer(1).expect("writer");
            let mut reader = lane.reader();
            let src: Vec<u8> = (0..size).map(|i| i as u8).collect();
            let mut dst = vec![0u8; size];
            group.bench_function(BenchmarkId::new("write", label), |b| {
                b.iter(|| writer.write(black_box(&src)).expect("write"))
            });
            group.bench_function(BenchmarkId::new("read", label), |b| {
                b.iter(|| reader.read(black_box(&mut dst)).expect("read"))
            });
            group.bench_function(BenchmarkId::new("write+read", label), |b| {
                b.iter(|| {
                    writer.write(black_box(&src)).expect("write");
                    reader.read(black_box(&mut dst)).expect("read")
                })
            });
        }
        group.finish();
    }

    /// Runs the group with criterion's command-line configuration.
    pub fn main() {
        let mut c = Criterion::default().configure_from_args();
        seqlock(&mut c);
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
