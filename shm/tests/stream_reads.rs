//! Stream reads are bounded: a reader racing a writer that overwrites the value faster
//! than the reader can copy it gets `Stalled` after a bounded number of copies
//! (`read`, `try_read_new`) or within its timeout (`read_new_timeout`), never an
//! unbounded retry
//! loop.
//!
//! The writers run in threads of the test process (a stream works between threads as
//! between processes). Two kinds:
//!
//! - a real [`StreamWriter`] rewriting a one-slot stream without pause: every copy
//!   races a write, but most attempts fail early (the slot is mid-write), so they are
//!   cheap;
//! - a *republisher*: a timer signal on the reading thread whose handler moves the
//!   slot's stamp and `published` on as a writer does, every 200 us, without touching
//!   the payload. That is how a
//!   writer much faster than the reader looks to it (or a reader preempted during each
//!   copy): every attempt is a whole 16 MiB copy that fails at the final stamp check,
//!   the case the bound exists for. Before the bound, a read retried up to 640,000
//!   such copies, and a timed wait for a new value ran them inside its wait, past
//!   its timeout.
//!
//! The tests take a lock so that they do not compete with each other for the two
//! cores of a CI machine.
#![cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]

use std::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tensorlane_core::{SeqlockHeader, STAMP_WORD};
use tensorlane_shm::header::HEADER_BYTES;
use tensorlane_shm::{segment, DType, LaneError, LaneName, StreamReader, StreamWriter, TensorSpec};

/// 16 MiB: one copy takes milliseconds.
const LARGE_WORDS: u64 = 2 << 20;
/// Longest a non-blocking read may take here: 64 copies of 16 MiB take about 0.2 s
/// on the development machine; the rest is room for a loaded 2-core CI machine.
const READ_BOUND: Duration = Duration::from_secs(3);
/// What `read_new_timeout` may take beyond its timeout: one copy, a liveness check, and
/// scheduling on a loaded machine.
const WAIT_MARGIN: Duration = Duration::from_secs(1);

static NEXT_LANE: AtomicU64 = AtomicU64::new(0);
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn spec(words: u64) -> TensorSpec {
    TensorSpec::new(DType::U64, &[words]).expect("valid tensor")
}

/// A lane name of this test, unlinked when dropped.
struct Lane(String);

impl Lane {
    fn new(tag: &str) -> Lane {
        let n = NEXT_LANE.fetch_add(1, Ordering::Relaxed);
        Lane(format!("reads-{tag}-{}-{n}", std::process::id()))
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        if let Ok(name) = LaneName::new(&self.0) {
            let _ = segment::unlink(&name);
        }
    }
}

/// A writer thread that rewrites the stream without pause until dropped.
struct Rewriter {
    stop: Arc<AtomicBool>,
    writes: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Rewriter {
    /// Creates stream `lane` with `slots` slots, writes once, and starts rewriting.
    fn start(lane: &str, words: u64, slots: usize) -> Rewriter {
        let mut writer = StreamWriter::create(lane, &spec(words), slots).unwrap();
        let mut tensor = vec![0u64; words as usize];
        writer.write_elements(&tensor).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let writes = Arc::new(AtomicU64::new(1));
        let thread = {
            let (stop, writes) = (stop.clone(), writes.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    tensor[0] = tensor[0].wrapping_add(1);
                    writer.write_elements(&tensor).unwrap();
                    writes.fetch_add(1, Ordering::Relaxed);
                }
            })
        };
        let rewriter = Rewriter {
            stop,
            writes,
            thread: Some(thread),
        };
        rewriter.wait_for(2);
        rewriter
    }

    /// Waits until the writer has written `n` more values.
    fn wait_for(&self, n: u64) {
        let target = self.writes.load(Ordering::Relaxed) + n;
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.writes.load(Ordering::Relaxed) < target {
            assert!(
                Instant::now() < deadline,
                "the writer thread does not write"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for Rewriter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A one-slot stream of 16 MiB written once by a real writer (kept alive, so the
/// reader sees a live writer), republished by a timer signal on the reading thread:
/// every 200 us, while the reader reads, a `SIGUSR1` handler moves the slot on as a
/// writer does: for `p = published + 1`: odd stamp `2p + 1`, then even stamp `2p`,
/// then `published = p`, with the writer's orderings and no payload stores (the
/// payload stays the real write's, so nothing a reader could return is torn). A copy
/// takes milliseconds, so the timer interrupts every copy with a round, and every
/// attempt fails at its final stamp check, however loaded the machine is: the handler
/// runs on the reader's own thread, not on a thread that may wait for a CPU.
struct Republisher {
    _writer: StreamWriter,
    _map: memmap2::MmapRaw,
}

/// The words the signal handler moves on (null: no republisher).
static REPUBLISH_PUBLISHED: AtomicPtr<AtomicU64> = AtomicPtr::new(std::ptr::null_mut());
static REPUBLISH_STAMP: AtomicPtr<AtomicU64> = AtomicPtr::new(std::ptr::null_mut());

/// The `SIGUSR1` handler: one round, if a republisher is running. Only atomic
/// operations on the mapped words: async-signal-safe.
extern "C" fn republish_round(_signal: libc::c_int) {
    let (published, stamp) = (
        REPUBLISH_PUBLISHED.load(Ordering::Acquire),
        REPUBLISH_STAMP.load(Ordering::Acquire),
    );
    if published.is_null() || stamp.is_null() {
        return;
    }
    // SAFETY: both point into the mapping the `Republisher` owns, which outlives the
    // pointers (its drop nulls them before the mapping goes).
    let (published, stamp) = unsafe { (&*published, &*stamp) };
    let p = published.load(Ordering::Acquire) + 1;
    stamp.store(2 * p + 1, Ordering::Relaxed);
    // As the writer: the odd stamp is visible no later than anything after it (pairs
    // with the reader's Acquire fence before its stamp reload).
    fence(Ordering::Release);
    // Pairs with the reader's Acquire load of the stamp.
    stamp.store(2 * p, Ordering::Release);
    // Pairs with the reader's Acquire load of `published`.
    published.store(p, Ordering::Release);
}

impl Republisher {
    fn start(lane: &str) -> Republisher {
        let mut writer = StreamWriter::create(lane, &spec(LARGE_WORDS), 1).unwrap();
        writer
            .write_elements(&vec![7u64; LARGE_WORDS as usize])
            .unwrap();
        let name = LaneName::new(lane).unwrap();
        let path = format!("/dev/shm{}", name.object_name().to_str().unwrap());
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let map = memmap2::MmapRaw::map_raw(&file).unwrap();
        let word = |offset: usize| {
            assert!(offset % 8 == 0 && offset + 8 <= map.len());
            // SAFETY: the mapping is page-aligned, `offset` is a multiple of 8 inside
            // it; the pointer is used while the mapping lives (see `Drop`).
            unsafe { map.as_mut_ptr().add(offset).cast::<AtomicU64>() }
        };
        REPUBLISH_STAMP.store(
            word(HEADER_BYTES + std::mem::size_of::<SeqlockHeader>() + 8 * STAMP_WORD),
            Ordering::Release,
        );
        REPUBLISH_PUBLISHED.store(word(HEADER_BYTES), Ordering::Release);
        Republisher {
            _writer: writer,
            _map: map,
        }
    }
}

impl Drop for Republisher {
    fn drop(&mut self) {
        REPUBLISH_PUBLISHED.store(std::ptr::null_mut(), Ordering::Release);
        REPUBLISH_STAMP.store(std::ptr::null_mut(), Ordering::Release);
    }
}

/// A timer that sends `SIGUSR1` to the calling thread every 200 us until dropped (the
/// republisher's clock).
struct RoundTimer(libc::timer_t);

/// Installs [`republish_round`] as the `SIGUSR1` handler, once.
fn install_handler() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: a zeroed sigaction with a plain handler, an empty mask and
        // SA_RESTART; the handler only makes atomic accesses.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            let handler: extern "C" fn(libc::c_int) = republish_round;
            action.sa_sigaction = handler as usize;
            action.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut action.sa_mask);
            assert_eq!(
                libc::sigaction(libc::SIGUSR1, &action, std::ptr::null_mut()),
                0
            );
        }
    });
}

impl RoundTimer {
    /// A timer on this thread if a republisher runs; none otherwise.
    fn start() -> Option<RoundTimer> {
        if REPUBLISH_PUBLISHED.load(Ordering::Acquire).is_null() {
            return None;
        }
        install_handler();
        // SAFETY: plain structs filled field by field; timer_create writes the id;
        // SIGEV_THREAD_ID targets this thread (gettid), which outlives the timer
        // (the timer is deleted in `Drop`, on this thread).
        unsafe {
            let mut event: libc::sigevent = std::mem::zeroed();
            event.sigev_notify = libc::SIGEV_THREAD_ID;
            event.sigev_signo = libc::SIGUSR1;
            event.sigev_notify_thread_id = libc::gettid();
            let mut timer: libc::timer_t = std::mem::zeroed();
            assert_eq!(
                libc::timer_create(libc::CLOCK_MONOTONIC, &mut event, &mut timer),
                0
            );
            let period = libc::timespec {
                tv_sec: 0,
                tv_nsec: 200_000,
            };
            let spec = libc::itimerspec {
                it_interval: period,
                it_value: period,
            };
            assert_eq!(
                libc::timer_settime(timer, 0, &spec, std::ptr::null_mut()),
                0
            );
            Some(RoundTimer(timer))
        }
    }
}

impl Drop for RoundTimer {
    fn drop(&mut self) {
        // SAFETY: the timer this value created; deleting it stops its signals.
        unsafe { libc::timer_delete(self.0) };
    }
}

/// Runs `op` on a thread and fails the test if it has not returned within `bound`
/// (an unbounded read would otherwise hang the test).
fn within<T: Send + 'static>(
    bound: Duration,
    what: &str,
    op: impl FnOnce() -> T + Send + 'static,
) -> (T, Duration) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let started = Instant::now();
        let result = op();
        let _ = tx.send((result, started.elapsed()));
    });
    match rx.recv_timeout(bound + Duration::from_secs(5)) {
        Ok((result, took)) => {
            assert!(took <= bound, "{what} took {took:?}, more than {bound:?}");
            (result, took)
        }
        Err(_) => panic!("{what} did not return within {bound:?} (and 5 s more)"),
    }
}

/// `reads` calls of `read` and `try_read_new` in turn, each within [`READ_BOUND`];
/// returns how many stalled and the slowest. A value is allowed (the racing thread
/// may be descheduled for a whole copy on a loaded machine), and then `Empty` from
/// `try_read_new`; other errors are not.
fn bounded_reads(mut reader: StreamReader, reads: u32) -> (u32, Duration) {
    let (outcome, _) = within(READ_BOUND * reads, "the reads", move || {
        let _timer = RoundTimer::start();
        let mut out = vec![0u64; reader.spec().byte_len() / 8];
        let (mut stalls, mut slowest) = (0, Duration::ZERO);
        for i in 0..reads {
            let started = Instant::now();
            let bytes = bytemuck::cast_slice_mut(&mut out);
            let result = if i % 2 == 0 {
                reader.read(bytes)
            } else {
                reader.try_read_new(bytes)
            };
            let took = started.elapsed();
            match result {
                Err(LaneError::Stalled) => stalls += 1,
                // After a copy survived, nothing newer may have come yet.
                Ok(_) | Err(LaneError::Empty) => {}
                Err(e) => panic!("read {i}: {e}"),
            }
            assert!(
                took <= READ_BOUND,
                "read {i} took {took:?}, more than {READ_BOUND:?}"
            );
            slowest = slowest.max(took);
        }
        (stalls, slowest)
    });
    outcome
}

/// `read_new_timeout` with each of `timeouts` in turn, each within its timeout plus
/// [`WAIT_MARGIN`]; returns how many stalled. A `Stalled` must not come before the
/// timeout (no attempt starts after the deadline, and none is cut short before it).
fn bounded_waits(mut reader: StreamReader, timeouts: &[Duration]) -> u32 {
    let mut stalls = 0;
    for &timeout in timeouts {
        let ((result, back), took) = within(
            timeout + WAIT_MARGIN,
            &format!("read_new_timeout({timeout:?})"),
            move || {
                let _timer = RoundTimer::start();
                let mut out = vec![0u64; reader.spec().byte_len() / 8];
                let result = reader.read_new_timeout(bytemuck::cast_slice_mut(&mut out), timeout);
                (result.map(|_| ()), reader)
            },
        );
        reader = back;
        match result {
            Err(LaneError::Stalled) => {
                stalls += 1;
                assert!(
                    took >= timeout,
                    "read_new_timeout({timeout:?}) stalled after {took:?}"
                );
            }
            Err(LaneError::Timeout) | Ok(()) => {}
            Err(e) => panic!("read_new_timeout({timeout:?}): {e}"),
        }
        eprintln!("read_new_timeout({timeout:?}): {result:?} after {took:?}");
    }
    stalls
}

#[test]
fn read_and_read_new_return_within_a_bound_against_a_continuous_rewriter() {
    let _one = one_at_a_time();
    let lane = Lane::new("read");
    let rewriter = Rewriter::start(&lane.0, LARGE_WORDS, 1);
    let reader = StreamReader::open_expect(&lane.0, &spec(LARGE_WORDS)).unwrap();
    let (stalls, slowest) = bounded_reads(reader, 20);
    drop(rewriter);
    // With one slot rewritten without pause nearly every copy races a write.
    assert!(
        stalls > 0,
        "no read stalled: the writer did not race the reader"
    );
    eprintln!("20 reads of 16 MiB against a rewriter: {stalls} stalled, slowest {slowest:?}");
}

#[test]
fn read_gives_up_after_a_bounded_number_of_copies() {
    let _one = one_at_a_time();
    let lane = Lane::new("copies");
    let republisher = Republisher::start(&lane.0);
    let reader = StreamReader::open_expect(&lane.0, &spec(LARGE_WORDS)).unwrap();
    let (stalls, slowest) = bounded_reads(reader, 6);
    drop(republisher);
    assert!(
        stalls > 0,
        "no read stalled: the republisher did not race the reader"
    );
    eprintln!("6 reads of 16 MiB, copies overwritten: {stalls} stalled, slowest {slowest:?}");
}

#[test]
fn read_new_timeout_honours_its_timeout_against_a_continuous_rewriter() {
    let _one = one_at_a_time();
    let lane = Lane::new("wait");
    let rewriter = Rewriter::start(&lane.0, LARGE_WORDS, 1);
    let reader = StreamReader::open_expect(&lane.0, &spec(LARGE_WORDS)).unwrap();
    let timeouts = [50, 300].map(Duration::from_millis);
    let stalls = bounded_waits(reader, &timeouts);
    drop(rewriter);
    assert!(
        stalls > 0,
        "no wait stalled: the writer did not race the reader"
    );
}

#[test]
fn read_new_timeout_honours_its_timeout_when_every_copy_is_overwritten() {
    let _one = one_at_a_time();
    let lane = Lane::new("wait-copies");
    let republisher = Republisher::start(&lane.0);
    let reader = StreamReader::open_expect(&lane.0, &spec(LARGE_WORDS)).unwrap();
    let timeouts = [0, 50, 300, 300].map(Duration::from_millis);
    let stalls = bounded_waits(reader, &timeouts);
    drop(republisher);
    assert!(
        stalls > 0,
        "no wait stalled: the republisher did not race the reader"
    );
}

#[test]
fn read_new_timeout_on_a_quiet_stream_times_out_on_time() {
    let _one = one_at_a_time();
    let lane = Lane::new("quiet");
    let mut writer = StreamWriter::create(&lane.0, &spec(8), 2).unwrap();
    writer.write_elements(&[1u64; 8]).unwrap();
    let mut reader = StreamReader::open_expect(&lane.0, &spec(8)).unwrap();
    let mut out = [0u64; 8];
    reader
        .try_read_new(bytemuck::cast_slice_mut(&mut out))
        .unwrap();
    for timeout in [0, 20, 150].map(Duration::from_millis) {
        let started = Instant::now();
        let result = reader.read_new_timeout(bytemuck::cast_slice_mut(&mut out), timeout);
        let took = started.elapsed();
        assert!(
            matches!(result, Err(LaneError::Timeout)),
            "read_new_timeout({timeout:?}): {result:?}"
        );
        assert!(
            took >= timeout && took <= timeout + WAIT_MARGIN,
            "read_new_timeout({timeout:?}) took {took:?}"
        );
    }
    drop(writer);
}

#[test]
fn reads_with_spare_slots_keep_up_with_a_continuous_rewriter() {
    // The bound must not starve an ordinary reader: with three slots the writer has
    // to write twice before it reuses the slot being copied.
    const WORDS: u64 = 128 << 10; // 1 MiB
    let _one = one_at_a_time();
    let lane = Lane::new("spare");
    let rewriter = Rewriter::start(&lane.0, WORDS, 3);
    let mut reader = StreamReader::open_expect(&lane.0, &spec(WORDS)).unwrap();
    let mut out = vec![0u64; WORDS as usize];
    let (mut values, mut stalls) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while values < 100 && Instant::now() < deadline {
        match reader.try_read_new(bytemuck::cast_slice_mut(&mut out)) {
            Ok(_) => values += 1,
            Err(LaneError::Empty) => {}
            Err(LaneError::Stalled) => stalls += 1,
            Err(e) => panic!("try_read_new: {e}"),
        }
    }
    drop(rewriter);
    assert!(
        values == 100,
        "{values} values read in 20 s ({stalls} stalled)"
    );
    eprintln!("100 values of 1 MiB read with 3 slots against a rewriter: {stalls} reads stalled");
}
