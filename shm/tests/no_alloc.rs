//! No heap allocation in the hot paths: with caller-provided buffers, every form of
//! write, read, read_new, push, pop, the zero-copy loans, publish and receive runs
//! under an allocation guard, from the first call after open and again after the
//! lanes have wrapped around, and on the paths that find nothing to do (`Empty`,
//! `Full`, `Timeout`). Batch calls (`push_batch`, `pop_batch`, `try_recv_batch`)
//! are outside this guarantee: they build a list of parts per call (docs/REALTIME.md).
//!
//! The guard is this test binary's global allocator: it counts, per thread, the
//! allocations made while a guard is active, and [`guarded`] fails with the count.
//! `the_guard_catches_an_allocating_call` shows it catches a library call that does
//! allocate (`TopicSubscriber::last_k`, which returns a `Vec`).
#![cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tensorlane_shm::*;

/// The system allocator, counting what the current thread allocates while guarded.
struct Counting;

thread_local! {
    static GUARDED: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

fn count() {
    // `try_with`: a thread being torn down has no guard.
    let _ = GUARDED.try_with(|g| {
        if g.get() {
            let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
        }
    });
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counting
// touches only const-initialised thread-locals, which never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract is forwarded unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract is forwarded unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: the caller's contract is forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Runs `f` under the guard and fails if it allocated.
fn guarded<T>(what: &str, f: impl FnOnce() -> T) -> T {
    ALLOCATIONS.with(|n| n.set(0));
    GUARDED.with(|g| g.set(true));
    let value = f();
    GUARDED.with(|g| g.set(false));
    let n = ALLOCATIONS.with(Cell::get);
    assert_eq!(n, 0, "{what} allocated {n} times");
    value
}

fn unique(tag: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "rt-alloc-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

struct Cleanup(String);
impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Ok(name) = LaneName::new(&self.0) {
            let _ = segment::unlink(&name);
        }
    }
}

const N: usize = 16;
const SECOND: Duration = Duration::from_secs(1);

fn spec() -> TensorSpec {
    TensorSpec::new(DType::F32, &[N as u64]).unwrap()
}

/// Every stream call, round after round (3 slots: several wrap-arounds).
#[test]
#[cfg_attr(miri, ignore = "shm_open")]
fn stream_calls_allocate_nothing() {
    let name = unique("stream");
    let _cleanup = Cleanup(name.clone());
    let mut writer = StreamWriter::create(&name, &spec(), 3).unwrap();
    let mut reader = StreamReader::open_expect(&name, &spec()).unwrap();
    let input = [1.5f32; N];
    let bytes: Vec<u8> = bytemuck::cast_slice(&input).to_vec();
    let mut out = [0f32; N];
    let mut out_bytes = vec![0u8; N * 4];
    for round in 0..10u64 {
        guarded("StreamReader::try_read_new (Empty)", || {
            assert!(matches!(
                reader.try_read_new(&mut out_bytes),
                Err(LaneError::Empty) | Ok(_)
            ))
        });
        guarded("StreamWriter::write", || writer.write(&bytes).unwrap());
        guarded("StreamReader::read", || {
            reader.read(&mut out_bytes).unwrap()
        });
        guarded("StreamWriter::write_frame", || {
            writer.write_frame(&bytes, round).unwrap()
        });
        guarded("StreamReader::read_new", || {
            reader.read_new(&mut out_bytes).unwrap()
        });
        guarded("StreamWriter::write_elements", || {
            writer.write_elements(&input).unwrap()
        });
        guarded("StreamReader::read_new_elements", || {
            reader.read_new_elements(&mut out).unwrap()
        });
        writer.write(&bytes).unwrap();
        guarded("StreamReader::try_read_new", || {
            reader.try_read_new(&mut out_bytes).unwrap()
        });
        writer.write(&bytes).unwrap();
        guarded("StreamReader::read_new_timeout", || {
            reader.read_new_timeout(&mut out_bytes, SECOND).unwrap()
        });
        writer.write(&bytes).unwrap();
        guarded("StreamReader::read_new_deadline", || {
            reader
                .read_new_deadline(&mut out_bytes, Instant::now() + SECOND)
                .unwrap()
        });
        guarded("StreamReader::read_elements", || {
            reader.read_elements(&mut out).unwrap()
        });
        guarded("StreamReader::read_new_timeout (Timeout)", || {
            let r = reader.read_new_timeout(&mut out_bytes, Duration::from_micros(200));
            assert!(matches!(r, Err(LaneError::Timeout)), "{r:?}")
        });
        assert_eq!(out, input);
    }
}

/// Every queue call, copies and loans, through many wrap-arounds of a 4-item ring.
#[test]
#[cfg_attr(miri, ignore = "shm_open")]
fn queue_calls_allocate_nothing() {
    let name = unique("queue");
    let _cleanup = Cleanup(name.clone());
    let mut producer = QueueProducer::create(&name, &spec(), 4).unwrap();
    let mut consumer = QueueConsumer::open_expect(&name, &spec()).unwrap();
    let input = [2.5f32; N];
    let bytes: Vec<u8> = bytemuck::cast_slice(&input).to_vec();
    let mut out = [0f32; N];
    let mut out_bytes = vec![0u8; N * 4];
    for _ in 0..10 {
        guarded("QueueConsumer::try_pop (Empty)", || {
            let r = consumer.try_pop(&mut out_bytes);
            assert!(matches!(r, Err(LaneError::Empty)), "{r:?}")
        });
        guarded("QueueConsumer::pop_timeout (Timeout)", || {
            let r = consumer.pop_timeout(&mut out_bytes, Duration::from_micros(200));
            assert!(matches!(r, Err(LaneError::Timeout)), "{r:?}")
        });
        guarded("QueueProducer::push", || producer.push(&bytes).unwrap());
        guarded("QueueProducer::try_push", || {
            producer.try_push(&bytes).unwrap()
        });
        guarded("QueueProducer::push_timeout", || {
            producer.push_timeout(&bytes, SECOND).unwrap()
        });
        guarded("QueueProducer::push_elements", || {
            producer.push_elements(&input).unwrap()
        });
        guarded("QueueProducer::try_push (Full)", || {
            let r = producer.try_push(&bytes);
            assert!(matches!(r, Err(LaneError::Full)), "{r:?}")
        });
        guarded("QueueConsumer::pop", || {
            consumer.pop(&mut out_bytes).unwrap()
        });
        guarded("QueueConsumer::try_pop", || {
            consumer.try_pop(&mut out_bytes).unwrap()
        });
        guarded("QueueConsumer::pop_timeout", || {
            consumer.pop_timeout(&mut out_bytes, SECOND).unwrap()
        });
        guarded("QueueConsumer::pop_elements", || {
            consumer.pop_elements(&mut out).unwrap()
        });
        assert_eq!(out, input);
        // SAFETY: only this test's two handles use the lane, and both follow the layout.
        let (_, ()) = guarded("QueueProducer::push_with", || unsafe {
            producer
                .push_with(|slot| slot.copy_from_slice(&bytes))
                .unwrap()
        });
        // SAFETY: as above.
        let sum = guarded("QueueConsumer::pop_with", || unsafe {
            consumer
                .pop_with(|_, tensor| tensor.iter().map(|&b| u64::from(b)).sum::<u64>())
                .unwrap()
        });
        assert_eq!(sum, bytes.iter().map(|&b| u64::from(b)).sum::<u64>());
    }
}

/// Every topic call, for a lossless and a lossy subscriber, through wrap-arounds.
#[test]
#[cfg_attr(miri, ignore = "shm_open")]
fn topic_calls_allocate_nothing() {
    let name = unique("topic");
    let _cleanup = Cleanup(name.clone());
    let mut publisher = TopicPublisher::create(&name, &spec(), 4, 4).unwrap();
    let mut lossless = TopicSubscriber::open(&name, SubscribeOptions::lossless()).unwrap();
    let mut lossy = TopicSubscriber::open(&name, SubscribeOptions::lossy(1)).unwrap();
    let input = [3.5f32; N];
    let bytes: Vec<u8> = bytemuck::cast_slice(&input).to_vec();
    let mut out = [0f32; N];
    let mut out_bytes = vec![0u8; N * 4];
    for _ in 0..10 {
        guarded("TopicSubscriber::try_recv (Empty)", || {
            let r = lossless.try_recv(&mut out_bytes);
            assert!(matches!(r, Err(LaneError::Empty)), "{r:?}")
        });
        guarded("TopicSubscriber::recv_timeout (Timeout)", || {
            let r = lossy.recv_timeout(&mut out_bytes, Duration::from_micros(200));
            assert!(matches!(r, Err(LaneError::Timeout)), "{r:?}")
        });
        guarded("TopicPublisher::publish", || {
            publisher.publish(&bytes).unwrap()
        });
        guarded("TopicPublisher::try_publish", || {
            publisher.try_publish(&bytes).unwrap()
        });
        guarded("TopicPublisher::publish_timeout", || {
            publisher.publish_timeout(&bytes, SECOND).unwrap()
        });
        guarded("TopicPublisher::publish_elements", || {
            publisher.publish_elements(&input).unwrap()
        });
        guarded("TopicPublisher::try_publish (Full)", || {
            let r = publisher.try_publish(&bytes);
            assert!(matches!(r, Err(LaneError::Full)), "{r:?}")
        });
        guarded("TopicSubscriber::recv (lossy)", || {
            lossy.recv(&mut out_bytes).unwrap()
        });
        guarded("TopicSubscriber::recv", || {
            lossless.recv(&mut out_bytes).unwrap()
        });
        guarded("TopicSubscriber::try_recv", || {
            lossless.try_recv(&mut out_bytes).unwrap()
        });
        guarded("TopicSubscriber::recv_timeout", || {
            lossless.recv_timeout(&mut out_bytes, SECOND).unwrap()
        });
        guarded("TopicSubscriber::recv_elements", || {
            lossless.recv_elements(&mut out).unwrap()
        });
        assert_eq!(out, input);
        publisher.publish(&bytes).unwrap();
        lossless.recv(&mut out_bytes).unwrap();
        guarded("TopicSubscriber::recv_elements (lossy)", || {
            lossy.recv_elements(&mut out).unwrap()
        });
    }
}

/// The guard is not blind: a library call that does allocate (`last_k` returns the
/// frames in a `Vec`) is reported.
#[test]
#[should_panic(expected = "TopicSubscriber::last_k allocated")]
#[cfg_attr(miri, ignore = "shm_open")]
fn the_guard_catches_an_allocating_call() {
    let name = unique("canary");
    let _cleanup = Cleanup(name.clone());
    let mut publisher = TopicPublisher::create(&name, &spec(), 4, 4).unwrap();
    let subscriber = TopicSubscriber::open(&name, SubscribeOptions::lossy(1)).unwrap();
    publisher.publish_elements(&[1f32; N]).unwrap();
    let mut out = vec![0u8; N * 4];
    guarded("TopicSubscriber::last_k", || {
        subscriber.last_k(1, &mut out).unwrap()
    });
}
