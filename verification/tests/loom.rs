//! The loom suite: `cargo test --features loom` from the workspace root.
//!
//! Every scenario runs under loom's exhaustive exploration of interleavings and of
//! the values each relaxed/acquire load may return (C11 memory model), within a
//! preemption bound of 3, or 2 where a test says so (override with
//! `LOOM_MAX_PREEMPTIONS`). Take-over scenarios run once per step at which the dead
//! owner stops. Then the canaries: the same scenarios with one broken peer, which
//! loom must report.
#![cfg(feature = "loom")]

use loom::thread;

include!("../scenarios/mod.rs");
include!("../scenarios/takeover.rs");
include!("../scenarios/loans.rs");
include!("../scenarios/broadcast_races.rs");

use tensorlane_verification::canaries;

/// Preemption bound used unless `LOOM_MAX_PREEMPTIONS` is set.
const PREEMPTION_BOUND: usize = 3;

/// Runs `body` under loom with the default bound.
fn check(body: impl Fn() + Sync + Send + 'static) -> usize {
    check_with_bound(PREEMPTION_BOUND, body)
}

/// Runs `body` under loom (bound `bound` unless `LOOM_MAX_PREEMPTIONS` is set) and
/// prints (and returns) how many executions were explored.
fn check_with_bound(bound: usize, body: impl Fn() + Sync + Send + 'static) -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    let executions = Arc::new(AtomicUsize::new(0));
    let counter = executions.clone();
    let body = move || {
        counter.fetch_add(1, Ordering::Relaxed);
        body()
    };
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(bound);
    }
    // Retry loops (full, empty) yield to loom; allow the long executions they make.
    builder.max_branches = 100_000;
    builder.check(body);
    println!(
        "loom explored {} executions (preemption bound {:?})",
        executions.load(Ordering::Relaxed),
        builder.preemption_bound
    );
    executions.load(Ordering::Relaxed)
}

/// Runs `scenario(k)` under loom with bound `bound` for every stopping step `k` in
/// `0..=steps` of a dying owner, and prints the executions explored in all.
fn check_every_step(
    bound: usize,
    steps: usize,
    scenario: impl Fn(usize) + Sync + Send + Clone + 'static,
) {
    let mut total = 0;
    for k in 0..=steps {
        let scenario = scenario.clone();
        total += check_with_bound(bound, move || scenario(k));
    }
    println!("loom explored {total} executions over stopping steps 0..={steps}");
}

#[test]
fn register_one_writer_two_readers() {
    check(|| register_writer_and_readers(3, 2, 1, real_register_writer, real_register_reader));
}

/// A writer role given back by one thread and claimed by another (the claim word's
/// Release/Acquire pair).
#[test]
fn register_writer_hand_over() {
    check(register_hand_over);
}

/// The GPU lanes' slot protocol (tensorlane-gpu): fence before reusing a device
/// slot, re-check after copying it.
#[test]
fn gpu_slot_reuse_and_recheck() {
    check(|| gpu_slot_protocol(4, 2, real_gpu_writer));
}

/// The host backend's event counters (tensorlane-gpu's delayed mode).
#[test]
fn gpu_host_event_completion() {
    check(|| gpu_host_event(3, RealGpuStreamThread));
}

#[test]
fn queue_wraps_around() {
    check(|| queue_producer_and_consumer(3, real_queue_producer));
}

/// Four threads' worth of spinning (producer, two subscribers, the drain): bound 2
/// keeps it to about a minute.
#[test]
fn broadcast_lossless_and_lossy_subscribers() {
    check_with_bound(2, || broadcast_lossless_and_lossy(3, Some(2)));
}

/// A lossless subscriber receiving in batches (one head store for several items).
#[test]
fn broadcast_lossless_batches_against_a_publishing_producer() {
    check(|| broadcast_lossless_batches(4));
}

#[test]
fn broadcast_join_races_a_publishing_producer() {
    check(|| broadcast_join_races_publish(3, real_lossless_join, real_broadcast_producer));
}

#[test]
fn broadcast_join_and_leave_race_a_publishing_producer() {
    check(|| broadcast_join_leave_churn(3));
}

#[test]
fn broadcast_eviction_races_a_read() {
    check(|| broadcast_eviction_races_read(3));
}

// Canaries: loom must find each seeded bug.

#[test]
#[should_panic(expected = "torn read")]
fn canary_relaxed_publish_is_caught() {
    check(|| {
        register_writer_and_readers(
            1,
            1,
            1,
            canaries::relaxed_publish_writer,
            real_register_reader,
        )
    });
}

#[test]
#[should_panic(expected = "torn read")]
fn canary_missing_reader_fence_is_caught() {
    check(|| register_writer_and_readers(3, 1, 1, real_register_writer, canaries::unfenced_reader));
}

#[test]
#[should_panic(expected = "torn read")]
fn canary_tail_published_before_slot_write_is_caught() {
    check(|| queue_producer_and_consumer(1, canaries::early_tail_producer));
}

#[test]
#[should_panic(expected = "lost item")]
fn canary_join_without_epoch_is_caught() {
    check(|| {
        broadcast_join_races_publish(
            3,
            canaries::epochless_lossless_join,
            real_broadcast_producer,
        )
    });
}

#[test]
#[should_panic(expected = "lost item")]
fn canary_producer_without_seqcst_fence_is_caught() {
    check(|| broadcast_join_races_publish(3, real_lossless_join, canaries::unfenced_producer));
}

#[test]
#[should_panic(expected = "torn read")]
fn canary_gpu_writer_without_fence_is_caught() {
    check(|| gpu_slot_protocol(4, 2, canaries::unfenced_gpu_writer));
}

#[test]
#[should_panic(expected = "torn read")]
fn canary_gpu_relaxed_event_completion_is_caught() {
    check(|| gpu_host_event(3, canaries::RelaxedCompletion));
}

// Batches and range reads.

/// Batches of two through a ring of two: push_batch against pop_batch and drain,
/// across the wrap.
#[test]
fn queue_batches_wrap_around() {
    check(|| queue_batches(6, real_batch_producer));
}

/// Range reads of the register racing the writer.
#[test]
fn register_range_reads_race_the_writer() {
    check(|| register_range_reads(3, 2, real_register_writer));
}

#[test]
#[should_panic(expected = "torn read")]
fn canary_batch_tail_before_last_item_is_caught() {
    check(|| queue_batches(2, canaries::early_batch_tail_producer));
}

#[test]
#[should_panic(expected = "torn read")]
fn canary_relaxed_publish_is_caught_by_range_reads() {
    check(|| register_range_reads(1, 1, canaries::relaxed_publish_writer));
}

// Take-overs: an owner that stops at every step, its successor, and concurrent peers.

/// The writer dies after any of the 14 operations of its two writes (or before the
/// first); the successor takes over while a reader reads.
#[test]
fn register_takeover_after_a_writer_stops_at_every_step() {
    check_every_step(
        PREEMPTION_BOUND,
        2 * takeover_roles::REGISTER_WRITE_STEPS,
        |k| register_takeover(k, 2, takeover_roles::real_register_successor),
    );
}

/// The producer dies anywhere in its two pushes (items in flight); the successor
/// pushes the third item (across the wrap) while the consumer pops and peeks.
#[test]
fn queue_producer_takeover_with_items_in_flight() {
    check_every_step(
        PREEMPTION_BOUND,
        2 * takeover_roles::QUEUE_PUSH_STEPS,
        |k| queue_producer_takeover(k, 3, takeover_roles::real_queue_producer_successor),
    );
}

/// The consumer dies anywhere in its first two pops; the successor takes the rest
/// while the producer pushes. Bound 2: the dying consumer retries on an empty ring
/// and the producer on a full one, and bound 3 takes about 47 s (575,051 executions).
#[test]
fn queue_consumer_takeover_with_items_in_flight() {
    check_every_step(2, 2 * takeover_roles::QUEUE_POP_STEPS, |k| {
        queue_consumer_takeover(k, 3, takeover_roles::real_queue_consumer_successor)
    });
}

#[test]
#[should_panic(expected = "torn read")]
fn canary_register_successor_reusing_the_published_sequence_is_caught() {
    check_every_step(
        PREEMPTION_BOUND,
        2 * takeover_roles::REGISTER_WRITE_STEPS,
        |k| register_takeover(k, 2, canaries::reusing_register_successor),
    );
}

#[test]
#[should_panic(expected = "torn read")]
fn canary_producer_successor_assuming_an_empty_ring_is_caught() {
    check_every_step(
        PREEMPTION_BOUND,
        2 * takeover_roles::QUEUE_PUSH_STEPS,
        |k| queue_producer_takeover(k, 3, canaries::empty_assuming_producer),
    );
}

#[test]
#[should_panic(expected = "torn read")]
fn canary_consumer_successor_assuming_a_full_ring_is_caught() {
    check_every_step(2, 2 * takeover_roles::QUEUE_POP_STEPS, |k| {
        queue_consumer_takeover(k, 3, canaries::full_assuming_consumer)
    });
}

// Loans through byte views (word-backed under loom).

/// The wrap-around scenario with every item written through `SpscLoan::bytes_mut`
/// and read through `SpscPeek::bytes`.
#[test]
fn queue_wraps_around_through_byte_loans() {
    check(|| queue_loans(3, tensorlane_verification::loans::real_loan_producer));
}

#[test]
#[should_panic(expected = "torn read")]
fn canary_tail_published_before_slot_write_is_caught_through_byte_loans() {
    check(|| queue_loans(1, canaries::early_tail_producer));
}

// Broadcast races: history reads, two lossless subscribers, stale supervisors.

/// `history` and `read_at` against a producer publishing 3 items through 2 slots.
#[test]
fn broadcast_history_reads_race_a_publishing_producer() {
    check(|| broadcast_history_reads(3, 2, real_broadcast_producer));
}

/// Two lossless subscribers and the producer's cached minimum head.
#[test]
fn broadcast_two_lossless_subscribers_hold_the_producer_back() {
    check(|| broadcast_two_lossless(3, real_broadcast_producer));
}

/// A stale `evict_generation` / `reclaim_generation` racing a join into the entry.
#[test]
fn broadcast_stale_eviction_and_reclaim_race_a_join() {
    check(|| broadcast_stale_supervisor_races_join(real_generation_supervisor));
}

/// The scan's eviction of an impossible entry loses its compare-exchange to a change
/// of the entry at most once here, and must not give up for it.
#[test]
fn broadcast_entry_changes_under_the_scan_once() {
    check(broadcast_entry_changes_under_the_scan);
}

/// An inspector's two snapshots of the entry a lossy subscriber joins through.
#[test]
fn broadcast_inspection_races_a_join() {
    check(|| broadcast_snapshots_race_join(2, real_lossy_join));
}

#[test]
#[should_panic(expected = "torn read")]
fn canary_producer_without_release_fence_is_caught_by_history_reads() {
    check(|| broadcast_history_reads(3, 2, canaries::unfenced_stamp_producer));
}

#[test]
#[should_panic(expected = "lost item")]
fn canary_producer_caching_the_fastest_head_is_caught() {
    check(|| broadcast_two_lossless(3, canaries::fastest_head_producer));
}

#[test]
#[should_panic(expected = "stale supervisor")]
fn canary_supervisor_ignoring_the_generation_is_caught() {
    check(|| broadcast_stale_supervisor_races_join(canaries::generationless_supervisor));
}

/// The broadcast producer dies after each of the 12 stores of two publishes (or
/// before the first); the successor publishes the third item while a lossless and a
/// lossy subscriber receive. Bound 2: three threads spin (subscribers, successor).
#[test]
fn broadcast_producer_takeover_with_subscribers_reading() {
    check_every_step(2, 2 * takeover_roles::BROADCAST_PUBLISH_STORES, |k| {
        broadcast_producer_takeover(k, 3, takeover_roles::real_broadcast_successor)
    });
}

#[test]
#[should_panic(expected = "torn read")]
fn canary_broadcast_successor_completing_the_unfinished_position_is_caught() {
    check_every_step(2, 2 * takeover_roles::BROADCAST_PUBLISH_STORES, |k| {
        broadcast_producer_takeover(k, 3, canaries::completing_broadcast_successor)
    });
}

#[test]
#[should_panic(expected = "inconsistent snapshot")]
fn canary_join_storing_active_relaxed_is_caught() {
    check(|| broadcast_snapshots_race_join(2, canaries::relaxed_active_lossy_join));
}
