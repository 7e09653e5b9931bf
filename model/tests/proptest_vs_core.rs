//! Property tests: random operation sequences run against the core and the models
//! side by side (see `tensorlane_model::harness`), deterministic regression cases, and
//! canaries showing that the same machinery rejects a wrong specification.

#![cfg(not(any(feature = "loom", feature = "shuttle")))]

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};
use tensorlane_core::{
    BroadcastGeometry, PopError, Popped, PushError, SeqlockGeometry, SpscGeometry,
};
use tensorlane_model::ops::{BufLen, LoanAccess, PeekAccess};
use tensorlane_model::{
    decode_broadcast_ops, decode_register_ops, decode_spsc_ops, run_broadcast_bytes,
    run_broadcast_ops, run_register_bytes, run_register_ops, run_spsc_bytes, run_spsc_ops,
    run_spsc_ops_against, BroadcastOp, RegisterOp, SpscModel, SpscOp, SpscSpec,
};

/// Bytes of one case: about 200 operations at most (an operation takes 1 to 4 bytes).
const MAX_CASE_BYTES: usize = 480;

fn config() -> Config {
    Config {
        cases: 256,
        failure_persistence: None,
        ..Config::default()
    }
}

fn op_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..MAX_CASE_BYTES)
}

fn register_case() -> impl Strategy<Value = (SeqlockGeometry, Vec<RegisterOp>)> {
    (1usize..=4, 0usize..=40, op_bytes()).prop_map(|(slots, slot_bytes, bytes)| {
        let geometry = SeqlockGeometry::new(slots, slot_bytes).expect("valid geometry");
        (geometry, decode_register_ops(&bytes))
    })
}

fn spsc_case() -> impl Strategy<Value = (SpscGeometry, Vec<SpscOp>)> {
    (0u32..=3, 0usize..=40, op_bytes()).prop_map(|(log_capacity, slot_bytes, bytes)| {
        let geometry = SpscGeometry::new(1 << log_capacity, slot_bytes).expect("valid geometry");
        (geometry, decode_spsc_ops(&bytes))
    })
}

fn broadcast_case() -> impl Strategy<Value = (BroadcastGeometry, Vec<BroadcastOp>)> {
    (0u32..=3, 0usize..=24, 1usize..=5, op_bytes()).prop_map(
        |(log_capacity, slot_bytes, subscribers, bytes)| {
            let geometry = BroadcastGeometry::new(1 << log_capacity, slot_bytes, subscribers)
                .expect("valid geometry");
            (geometry, decode_broadcast_ops(&bytes))
        },
    )
}

fn fail(m: tensorlane_model::Mismatch) -> TestCaseError {
    TestCaseError::fail(m.to_string())
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn register_matches_model((geometry, ops) in register_case()) {
        run_register_ops(geometry, &ops).map_err(fail)?;
    }

    #[test]
    fn spsc_matches_model((geometry, ops) in spsc_case()) {
        run_spsc_ops(geometry, &ops).map_err(fail)?;
    }

    #[test]
    fn broadcast_matches_model((geometry, ops) in broadcast_case()) {
        run_broadcast_ops(geometry, &ops).map_err(fail)?;
    }

    #[test]
    fn fuzz_entry_points_accept_any_bytes(bytes in op_bytes()) {
        run_register_bytes(&bytes).map_err(fail)?;
        run_spsc_bytes(&bytes).map_err(fail)?;
        run_broadcast_bytes(&bytes).map_err(fail)?;
    }
}

// ---------------------------------------------------------------------------------
// Deterministic regression cases

fn register(slots: usize, slot_bytes: usize) -> SeqlockGeometry {
    SeqlockGeometry::new(slots, slot_bytes).unwrap()
}

fn spsc(capacity: usize, slot_bytes: usize) -> SpscGeometry {
    SpscGeometry::new(capacity, slot_bytes).unwrap()
}

fn broadcast(capacity: usize, slot_bytes: usize, subscribers: usize) -> BroadcastGeometry {
    BroadcastGeometry::new(capacity, slot_bytes, subscribers).unwrap()
}

#[test]
fn register_regressions() {
    use RegisterOp::*;
    let read = |reader, only_new| Read {
        reader,
        buf: BufLen::Slot,
        only_new,
    };
    let cases: Vec<(SeqlockGeometry, Vec<RegisterOp>)> = vec![
        // Empty, then missed counts, NotNew, a repeated read.
        (
            register(2, 16),
            vec![
                read(0, false),
                read(0, true),
                Write { len: 3 },
                Write { len: 4 },
                read(0, true),
                read(0, true),
                read(0, false),
                Write { len: 0 },
                Write { len: 16 },
                Write { len: 5 },
                read(0, true),
                read(1, true),
            ],
        ),
        // TooLarge (16 + 1 and 16 + 2) consumes no sequence; a short buffer changes
        // nothing; a new writer continues the sequence; a new reader starts afresh.
        (
            register(1, 16),
            vec![
                Write { len: 17 },
                Write { len: 18 },
                Write { len: 9 },
                Read {
                    reader: 2,
                    buf: BufLen::Bytes(8),
                    only_new: false,
                },
                read(2, true),
                NewWriter,
                Write { len: 1 },
                NewReader { reader: 2 },
                read(2, false),
            ],
        ),
        // Zero-byte slots.
        (
            register(3, 0),
            vec![
                Write { len: 0 },
                Write { len: 1 },
                read(3, true),
                read(3, true),
            ],
        ),
    ];
    for (geometry, ops) in cases {
        if let Err(m) = run_register_ops(geometry, &ops) {
            panic!("{m}");
        }
    }
}

#[test]
fn spsc_regressions() {
    use SpscOp::*;
    let pop = Pop { buf: BufLen::Slot };
    let peek = |access, release| Peek { access, release };
    let loan = |len, access, commit| Loan {
        len,
        access,
        commit,
    };
    let cases: Vec<(SpscGeometry, Vec<SpscOp>)> = vec![
        // Fill to Full through push and loan, drain through pop and peek.
        (
            spsc(4, 24),
            vec![
                pop,
                Push { len: 5 },
                loan(24, LoanAccess::Bytes, true),
                loan(9, LoanAccess::Words, true),
                Push { len: 0 },
                Push { len: 1 },
                loan(1, LoanAccess::Bytes, true),
                Free,
                Available,
                peek(PeekAccess::Bytes, false),
                peek(PeekAccess::Words, true),
                peek(PeekAccess::CopyTo(BufLen::Bytes(3)), false),
                peek(PeekAccess::CopyTo(BufLen::Slot), true),
                Pop {
                    buf: BufLen::Bytes(8),
                },
                pop,
                pop,
                pop,
            ],
        ),
        // TooLarge push and commit; a dropped loan pushes nothing; TooLarge is checked
        // before Full.
        (
            spsc(1, 8),
            vec![
                Push { len: 9 },
                loan(10, LoanAccess::Words, true),
                loan(3, LoanAccess::Bytes, false),
                Push { len: 8 },
                Push { len: 10 },
                loan(2, LoanAccess::Bytes, true),
                Available,
                pop,
                pop,
            ],
        ),
        // A peeked item survives a consumer change; positions survive a producer change.
        (
            spsc(2, 8),
            vec![
                Push { len: 4 },
                peek(PeekAccess::Bytes, false),
                NewConsumer,
                NewProducer,
                Push { len: 2 },
                peek(PeekAccess::Bytes, true),
                pop,
                Push { len: 3 },
                Push { len: 3 },
                Push { len: 3 },
                Free,
            ],
        ),
    ];
    for (geometry, ops) in cases {
        if let Err(m) = run_spsc_ops(geometry, &ops) {
            panic!("{m}");
        }
    }
}

#[test]
fn broadcast_regressions() {
    use BroadcastOp::*;
    let recv = |slot| Recv {
        slot,
        buf: BufLen::Slot,
    };
    let lossless = |slot, history| Join {
        slot,
        lossless: true,
        history,
        max_lag: 0,
    };
    let lossy = |slot, history, max_lag| Join {
        slot,
        lossless: false,
        history,
        max_lag,
    };
    let publish = Publish { len: 8 };
    let cases: Vec<(BroadcastGeometry, Vec<BroadcastOp>)> = vec![
        // The core's doc example: lossy with lag 1 skips, lossless holds the producer.
        (
            broadcast(4, 8, 16),
            vec![
                lossless(0, 0),
                lossy(1, 0, 1),
                publish,
                publish,
                publish,
                recv(1),
                recv(0),
                publish,
                publish,
                publish,
                recv(1),
                recv(1),
            ],
        ),
        // Full names the lossless subscriber with the largest lag, the lowest index
        // among equals; eviction releases the producer; the evicted one is told.
        (
            broadcast(2, 8, 4),
            vec![
                lossless(0, 0),
                lossless(1, 0),
                lossless(2, 0),
                publish,
                publish,
                publish,
                recv(0),
                publish,
                Evict { index: 1 },
                publish,
                recv(1),
                Evict { index: 2 },
                publish,
                Leave { slot: 1 },
                publish,
                Reclaim { index: 2 },
                recv(2),
            ],
        ),
        // Table full; reclaim and reuse bump the generation; the stale handle leaves
        // without freeing the reused entry; out-of-range and wrong-state supervision.
        (
            broadcast(2, 8, 2),
            vec![
                lossy(0, 0, 1),
                lossy(1, 0, 1),
                lossy(2, 0, 1),
                Reclaim { index: 0 },
                Reclaim { index: 0 },
                lossless(2, 0),
                Leave { slot: 0 },
                Evict { index: 2 },
                Evict { index: 0 },
                Evict { index: 0 },
                recv(2),
                Leave { slot: 2 },
                Reclaim { index: 1 },
                Leave { slot: 1 },
            ],
        ),
        // History: clamped to the capacity and to what exists; a lossless join asking
        // for the whole ring loses its oldest slot; lossy lag bounds clamp to 1..=C;
        // read_at and history around the ring's edges.
        (
            broadcast(4, 8, 4),
            vec![
                lossy(0, u64::MAX, u64::MAX),
                lossless(1, 3),
                publish,
                publish,
                publish,
                publish,
                publish,
                publish,
                History { k: u64::MAX },
                ReadAt {
                    offset: -5,
                    buf: BufLen::Slot,
                },
                ReadAt {
                    offset: 0,
                    buf: BufLen::Slot,
                },
                ReadAt {
                    offset: -1,
                    buf: BufLen::Bytes(2),
                },
                lossless(2, 4),
                lossless(3, u64::MAX),
                lossy(4, 2, 0),
                recv(0),
                recv(2),
                recv(3),
                recv(4),
                recv(4),
                recv(1),
            ],
        ),
        // Short buffers: a lossy skip made before BufferTooSmall stays made.
        (
            broadcast(8, 16, 2),
            vec![
                lossy(0, 0, 2),
                Publish { len: 3 },
                Publish { len: 4 },
                Publish { len: 16 },
                Publish { len: 16 },
                Recv {
                    slot: 0,
                    buf: BufLen::Bytes(4),
                },
                Recv {
                    slot: 0,
                    buf: BufLen::Bytes(16),
                },
                recv(0),
            ],
        ),
        // A new producer rescans the table.
        (
            broadcast(1, 0, 1),
            vec![
                lossless(0, 0),
                Publish { len: 0 },
                Publish { len: 0 },
                NewProducer,
                Publish { len: 0 },
                recv(0),
                Publish { len: 0 },
                Publish { len: 1 },
            ],
        ),
    ];
    for (geometry, ops) in cases {
        if let Err(m) = run_broadcast_ops(geometry, &ops) {
            panic!("{m}");
        }
    }
}

/// Deterministic byte strings through the fuzz entry points (a stand-in corpus).
#[test]
fn fuzz_entry_points_on_fixed_inputs() {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for case in 0..200 {
        let len = case * 3 % MAX_CASE_BYTES;
        let bytes: Vec<u8> = (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                (state >> 24) as u8
            })
            .collect();
        for run in [run_register_bytes, run_spsc_bytes, run_broadcast_bytes] {
            if let Err(m) = run(&bytes) {
                panic!("case {case}: {m}");
            }
        }
    }
}

// ---------------------------------------------------------------------------------
// Canaries: a wrong specification must be caught by the same strategy and config.

/// The reference model, except for one seeded bug.
struct Broken {
    model: SpscModel,
    bug: Bug,
}

#[derive(Clone, Copy)]
enum Bug {
    /// Reports `Full` one item early.
    FullEarly,
    /// Refuses an item that exactly fills the slot.
    TooLargeAtSlotSize,
    /// Pops an item into a buffer too short for it.
    PopIgnoresBuffer,
}

impl SpscSpec for Broken {
    fn push(&mut self, item: &[u8]) -> Result<u64, PushError> {
        match self.bug {
            Bug::FullEarly if self.model.free() == 1 && item.len() <= self.model.slot_bytes() => {
                Err(PushError::Full)
            }
            Bug::TooLargeAtSlotSize if item.len() == self.model.slot_bytes() => {
                Err(PushError::TooLarge {
                    len: item.len(),
                    max: self.model.slot_bytes(),
                })
            }
            _ => self.model.push(item),
        }
    }
    fn loan(&self) -> Result<u64, PushError> {
        match self.bug {
            Bug::FullEarly if self.model.free() == 1 => Err(PushError::Full),
            _ => self.model.loan(),
        }
    }
    fn commit(&mut self, item: &[u8]) -> Result<u64, PushError> {
        self.model.commit(item)
    }
    fn pop(&mut self, buf_len: usize) -> Result<(Popped, Vec<u8>), PopError> {
        match self.bug {
            Bug::PopIgnoresBuffer => self.model.pop(usize::MAX),
            _ => self.model.pop(buf_len),
        }
    }
    fn peek(&self) -> Result<(u64, &[u8]), PopError> {
        self.model.peek()
    }
    fn release(&mut self) -> Result<Popped, PopError> {
        self.model.release()
    }
    fn head(&self) -> u64 {
        self.model.head()
    }
    fn tail(&self) -> u64 {
        self.model.tail()
    }
    fn waiting(&self) -> usize {
        self.model.len()
    }
    fn free(&self) -> usize {
        self.model.free()
    }
}

fn canary_is_caught(bug: Bug) {
    // A fixed seed: the canary's verdict (caught, and shrunk small) is the same on
    // every run, on every machine.
    let mut runner =
        TestRunner::new_with_rng(config(), TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    let result = runner.run(&spsc_case(), |(geometry, ops)| {
        let model = Broken {
            model: SpscModel::new(geometry),
            bug,
        };
        run_spsc_ops_against(geometry, &ops, model).map_err(fail)
    });
    match result {
        Err(TestError::Fail(reason, (geometry, ops))) => {
            // The shrunk counterexample is small and names the difference.
            assert!(ops.len() <= 12, "shrunk to {} ops: {ops:?}", ops.len());
            eprintln!("canary caught on {geometry:?} {ops:?}: {reason}");
        }
        other => panic!("the seeded bug was not caught: {other:?}"),
    }
}

#[test]
fn canary_full_one_item_early_is_caught() {
    canary_is_caught(Bug::FullEarly);
}

#[test]
fn canary_too_large_at_slot_size_is_caught() {
    canary_is_caught(Bug::TooLargeAtSlotSize);
}

#[test]
fn canary_pop_ignoring_the_buffer_is_caught() {
    canary_is_caught(Bug::PopIgnoresBuffer);
}

// ---------------------------------------------------------------------------------
// Regressions.

/// `Broadcast::read_at(u64::MAX)` once compared the position with the tail in
/// wrapping order, so "position -1" counted as published, and `done_stamp(u64::MAX)`
/// wraps to 0, the stamp of a never-written slot: it returned `Ok(0)` for an item
/// that never existed. Positions are absolute: it must be `NotPublished`.
#[test]
fn read_at_before_position_zero_is_not_published() {
    use tensorlane_core::{Broadcast, BroadcastHeader, HeapRegion, ReadAtError};
    use tensorlane_model::BroadcastModel;
    let geometry = broadcast(4, 8, 1);
    let region = HeapRegion::<BroadcastHeader>::new(geometry.body_words());
    let ring = Broadcast::new(&region, geometry).unwrap();
    let mut model = BroadcastModel::new(geometry);
    let mut producer = ring.producer(1).unwrap();
    let mut buf = [0u8; 8];
    for publish_first in [false, true] {
        if publish_first {
            producer.publish(b"abc").unwrap();
            model.publish(b"abc").unwrap();
        }
        assert_eq!(model.read_at(u64::MAX, 8), Err(ReadAtError::NotPublished));
        assert_eq!(
            ring.read_at(u64::MAX, &mut buf),
            Err(ReadAtError::NotPublished),
            "tail {}",
            ring.tail()
        );
    }
}
