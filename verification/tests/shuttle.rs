//! The shuttle suite: `cargo test --features shuttle` from the workspace root.
//!
//! shuttle runs each scenario many times under randomised schedulers (PCT, which
//! finds bugs of small depth with a probabilistic guarantee, and uniform random). It
//! treats every atomic as SeqCst, so it finds logic races (join/leave churn, lag
//! policies, many subscribers), not ordering bugs; loom covers those.
#![cfg(all(feature = "shuttle", not(feature = "loom")))]

use shuttle::thread;

include!("../scenarios/mod.rs");

use tensorlane_verification::canaries;

/// Iterations per scheduler.
const ITERATIONS: usize = 5000;
/// PCT bug depth.
const PCT_DEPTH: usize = 3;

fn check(body: impl Fn() + Sync + Send + 'static) {
    let body = Arc::new(body);
    let pct = body.clone();
    shuttle::check_pct(move || pct(), ITERATIONS, PCT_DEPTH);
    shuttle::check_random(move || body(), ITERATIONS);
}

#[test]
fn register_many_readers() {
    check(|| register_writer_and_readers(20, 4, 10, real_register_writer, real_register_reader));
}

#[test]
fn queue_long_run() {
    check(|| queue_producer_and_consumer(40, real_queue_producer));
}

#[test]
fn broadcast_lossless_and_lossy_subscribers() {
    check(|| broadcast_lossless_and_lossy(20, None));
}

#[test]
fn broadcast_lossless_batches_at_scale() {
    check(|| broadcast_lossless_batches(20));
}

#[test]
fn broadcast_join_races_publish_at_scale() {
    check(|| broadcast_join_races_publish(20, real_lossless_join, real_broadcast_producer));
}

#[test]
fn broadcast_join_leave_churn_at_scale() {
    check(|| broadcast_join_leave_churn(20));
}

#[test]
fn broadcast_eviction_races_read_at_scale() {
    check(|| broadcast_eviction_races_read(20));
}

/// Eight subscribers (lossless with history, lossy with lag 1 and 3) joining,
/// reading and leaving while the producer publishes.
#[test]
fn broadcast_eight_subscribers_churn() {
    check(|| broadcast_many_subscribers(12, 8));
}

// Canary: the join race must be found.

#[test]
#[should_panic(expected = "lost item")]
fn canary_join_without_epoch_is_caught() {
    check(|| {
        broadcast_join_races_publish(
            20,
            canaries::epochless_lossless_join,
            real_broadcast_producer,
        )
    });
}
