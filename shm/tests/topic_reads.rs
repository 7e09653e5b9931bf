//! A lossy topic receive is bounded: a lossy subscriber whose every copy is
//! overwritten before it finishes gives up after at most 64 attempts
//! (`DEFAULT_RECV_ATTEMPTS`), each one copy, never an unbounded retry loop
//! (docs/REALTIME.md, the bounds table). The core reports `Stalled`; the lane treats
//! it as nothing received yet, so `try_recv` returns `Empty` although the ring holds
//! items (the republisher keeps the tail ahead of the subscriber's head).
//!
//! A *republisher* thread moves the ring on as a publisher does, round after round
//! (yielding the CPU between rounds), without touching the payloads: for `p = tail, ...`: odd stamp `2p + 1` on slot
//! `p mod C`, then the done stamp `2p + 2`, then `tail = p + 1`, with the publisher's
//! orderings. The payloads stay those of two real publishes, so nothing a reader
//! could return is torn. Every attempt starts a 16 MiB copy of the newest position,
//! a round lands in it, and the attempt fails at the final stamp check.
//!
//! The twin without the republisher receives at once, so the give-up comes from the
//! racing rounds, not from the lane.
#![cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]

use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tensorlane_core::{BroadcastGeometry, BroadcastHeader, STAMP_WORD};
use tensorlane_shm::header::HEADER_BYTES;
use tensorlane_shm::{
    segment, DType, LaneError, LaneName, SubscribeOptions, TensorSpec, TopicPublisher,
    TopicSubscriber,
};

/// 16 MiB: one copy takes milliseconds.
const WORDS: u64 = 2 << 20;
/// Longest a lossy receive may take here: 64 copies of 16 MiB take a fraction of a
/// second; the rest is room for a loaded 2-core CI machine.
const RECV_BOUND: Duration = Duration::from_secs(3);
const CAPACITY: usize = 2;

fn spec() -> TensorSpec {
    TensorSpec::new(DType::U64, &[WORDS]).unwrap()
}

/// A lane name of this test, unlinked when dropped.
struct Lane(String);

impl Drop for Lane {
    fn drop(&mut self) {
        if let Ok(name) = LaneName::new(&self.0) {
            let _ = segment::unlink(&name);
        }
    }
}

/// The publisher (alive, after two real publishes) and the republisher thread.
struct Republisher {
    _publisher: TopicPublisher,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Republisher {
    fn start(lane: &str, publisher: TopicPublisher) -> Republisher {
        let name = LaneName::new(lane).unwrap();
        let path = format!("/dev/shm{}", name.object_name().to_str().unwrap());
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let map = memmap2::MmapRaw::map_raw(&file).unwrap();
        // The same geometry as the lane's: frames of the 16-byte prefix and the tensor.
        let geometry = BroadcastGeometry::new(CAPACITY, 16 + spec().byte_len(), 4).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let rounds = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, rounds) = (stop.clone(), rounds.clone());
            std::thread::spawn(move || {
                let word = |offset: usize| {
                    assert!(offset % 8 == 0 && offset + 8 <= map.len());
                    // SAFETY: the mapping is page-aligned, `offset` is a multiple of 8
                    // inside it, and it lives as long as `map`, which this closure
                    // owns; every access to shared words is atomic, here and in the
                    // lane's code.
                    unsafe { &*(map.as_ptr().add(offset) as *const AtomicU64) }
                };
                let body = HEADER_BYTES + std::mem::size_of::<BroadcastHeader>();
                let tail = word(HEADER_BYTES);
                let stamp = |p: u64| {
                    let slot =
                        geometry.slots_offset() + (p as usize % CAPACITY) * geometry.slot_stride();
                    word(body + 8 * (slot + STAMP_WORD))
                };
                let mut p = tail.load(Ordering::Acquire);
                while !stop.load(Ordering::Relaxed) {
                    stamp(p).store(2 * p + 1, Ordering::Relaxed);
                    // As the publisher: the odd stamp is visible no later than anything
                    // after it (pairs with the reader's Acquire fence before its stamp
                    // reload).
                    fence(Ordering::Release);
                    // Pairs with the reader's Acquire load of the stamp.
                    stamp(p).store(2 * p + 2, Ordering::Release);
                    // Pairs with the reader's Acquire load of `tail`.
                    tail.store(p + 1, Ordering::Release);
                    p += 1;
                    rounds.fetch_add(1, Ordering::Relaxed);
                    // No sleep: a sleeping republisher may not wake within a copy on
                    // a loaded machine, and a copy that survives ends the receive.
                    std::thread::yield_now();
                }
            })
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while rounds.load(Ordering::Relaxed) < 10 {
            assert!(Instant::now() < deadline, "the republisher does not run");
            std::thread::sleep(Duration::from_millis(1));
        }
        Republisher {
            _publisher: publisher,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Republisher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A topic with two real publishes (both slots hold a whole frame) and a lossy
/// subscriber.
fn topic(tag: &str) -> (Lane, TopicPublisher, TopicSubscriber) {
    let lane = Lane(format!("rt-topic-reads-{tag}-{}", std::process::id()));
    let mut publisher = TopicPublisher::create(&lane.0, &spec(), CAPACITY, 4).unwrap();
    let subscriber = TopicSubscriber::open(&lane.0, SubscribeOptions::lossy(1)).unwrap();
    let tensor = vec![7u64; WORDS as usize];
    publisher.publish_elements(&tensor).unwrap();
    publisher.publish_elements(&tensor).unwrap();
    (lane, publisher, subscriber)
}

#[test]
#[cfg_attr(miri, ignore = "shm_open")]
fn a_lossy_receive_gives_up_after_a_bounded_number_of_copies() {
    let (lane, publisher, mut subscriber) = topic("race");
    let republisher = Republisher::start(&lane.0, publisher);
    let mut out = vec![0u64; WORDS as usize];
    let (mut stalls, mut slowest) = (0, Duration::ZERO);
    for i in 0..6 {
        let started = Instant::now();
        let result = subscriber.try_recv_elements(&mut out);
        let took = started.elapsed();
        match result {
            // The ring is never empty here: `Empty` is the 64 overwritten copies.
            Err(LaneError::Empty) => stalls += 1,
            // A copy may survive when the republisher is descheduled for a whole copy.
            Ok(_) => assert!(out.iter().all(|&w| w == 7), "a torn value"),
            Err(e) => panic!("receive {i}: {e}"),
        }
        assert!(
            took <= RECV_BOUND,
            "receive {i} took {took:?}, more than {RECV_BOUND:?}"
        );
        slowest = slowest.max(took);
    }
    drop(republisher);
    assert!(
        stalls > 0,
        "no receive stalled: the republisher did not race the reader"
    );
    eprintln!(
        "6 lossy receives of 16 MiB, copies overwritten: {stalls} stalled, slowest {slowest:?}"
    );
}

#[test]
#[cfg_attr(miri, ignore = "shm_open")]
fn without_the_republisher_the_same_receive_succeeds() {
    let (_lane, _publisher, mut subscriber) = topic("quiet");
    let mut out = vec![0u64; WORDS as usize];
    subscriber.try_recv_elements(&mut out).unwrap();
    assert!(out.iter().all(|&w| w == 7));
}
