//! The floors every figure is compared with.
//!
//! - Ping-pong: two processes map one page of a POSIX shared-memory object and pass
//!   a counter back and forth through one 64-bit word (one cache line): the
//!   measuring process stores `2i + 1` and spins until it reads `2i + 2`, which the
//!   echoing process stores after spinning on `2i + 1`. Half of the round trip is
//!   the cost of moving one cache line from one core to another and noticing it,
//!   the least any shared-memory transport can take one way.
//! - Split ping-pong (a diagnostic, not a floor): the same, but each side first
//!   writes a payload into cache lines of its own after the signal's line, and the
//!   other side reads it after seeing the signal: the least a transport that
//!   signals through a counter separate from its slot can take.
//! - Inline ping-pong (a diagnostic): one signal word per direction, each followed
//!   in the same cache line by the payload, so that the line that carries the signal
//!   also carries the first bytes of the payload: the least a transport that
//!   publishes through a per-slot stamp can take.
//! - Futex wake-up: the receiving process sleeps in `FUTEX_WAIT` on a shared word;
//!   the sending process pauses, stores its `CLOCK_MONOTONIC` time, bumps the word
//!   and calls `FUTEX_WAKE`; the receiver subtracts the time from its own when it
//!   wakes. The least a blocking wake-up between two processes costs here (system
//!   calls, scheduler, and on a virtual machine the wake-up of an idle virtual CPU).
//! - `memcpy`: `copy_from_slice` between two buffers of the payload size, warm; and
//!   two `memcpy`s, source to a middle buffer to a destination (what a write and a
//!   read through shared memory must at least do).
//! - Atomic copy (a diagnostic): the payload stored into relaxed `AtomicU64` words
//!   and loaded back, word by word, as the core's seqlock copies it.
//! - `rep movsb` copy (a diagnostic, x86_64): the same two copies done by one
//!   inline-assembly `rep movsb` each, which the compiler treats as opaque code (no
//!   Rust-level data race), and which the CPU runs at `memcpy` speed (ERMS).

use std::ffi::CString;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const PAGE: usize = 4096;

/// One shared page, mapped from a named POSIX shared-memory object.
#[derive(Debug)]
pub struct SharedPage {
    name: CString,
    ptr: *mut libc::c_void,
    owner: bool,
}

impl SharedPage {
    /// Creates object `name` (`/...`), one zeroed page, and maps it.
    pub fn create(name: &str) -> std::io::Result<Self> {
        Self::map(name, true)
    }

    /// Maps existing object `name`.
    pub fn open(name: &str) -> std::io::Result<Self> {
        Self::map(name, false)
    }

    fn map(name: &str, create: bool) -> std::io::Result<Self> {
        let cname = CString::new(name).map_err(std::io::Error::other)?;
        let flags = if create {
            libc::O_CREAT | libc::O_EXCL | libc::O_RDWR
        } else {
            libc::O_RDWR
        };
        // SAFETY: `cname` is a NUL-terminated string that outlives the call.
        let fd = unsafe { libc::shm_open(cname.as_ptr(), flags, 0o600) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: `fd` is an open descriptor owned by this function.
        if create && unsafe { libc::ftruncate(fd, PAGE as libc::off_t) } != 0 {
            let err = std::io::Error::last_os_error();
            // SAFETY: as above; the object was created here.
            unsafe {
                libc::close(fd);
                libc::shm_unlink(cname.as_ptr());
            }
            return Err(err);
        }
        // SAFETY: mapping one page of an object at least one page long (the creator
        // sized it before any opener is started); the result is checked below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        // SAFETY: `fd` is ours; the mapping stays valid after the descriptor closes.
        unsafe { libc::close(fd) };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(SharedPage {
            name: cname,
            ptr,
            owner: create,
        })
    }

    /// The first word of the page.
    pub fn word(&self) -> &AtomicU64 {
        // SAFETY: the mapping is page-aligned, one page long and lives as long as
        // `self`; AtomicU64 is valid for any bits, and every process accesses the
        // word only atomically.
        unsafe { &*(self.ptr as *const AtomicU64) }
    }
}

impl Drop for SharedPage {
    fn drop(&mut self) {
        // SAFETY: `ptr` is a live mapping of PAGE bytes made by `map`, not used after.
        unsafe { libc::munmap(self.ptr, PAGE) };
        if self.owner {
            // SAFETY: `name` is a NUL-terminated string.
            unsafe { libc::shm_unlink(self.name.as_ptr()) };
        }
    }
}

/// Offset of the measuring side's payload in the page (split ping-pong).
const PING_PAYLOAD: usize = 64;
/// Offset of the echoing side's payload in the page.
const PONG_PAYLOAD: usize = 2048;

fn payload_words(page: &SharedPage, offset: usize, bytes: usize) -> &[AtomicU64] {
    let words = bytes.div_ceil(8).min((PAGE - offset) / 8);
    // SAFETY: `offset` is a multiple of 8 and `offset + words * 8 <= PAGE`, so the
    // words lie inside the page mapping, which lives as long as `page`; every process
    // accesses them only atomically.
    unsafe {
        std::slice::from_raw_parts(
            (page.ptr as *const u8).add(offset) as *const AtomicU64,
            words,
        )
    }
}

fn write_words(words: &[AtomicU64], value: u64) {
    for w in words {
        w.store(value, Ordering::Relaxed);
    }
}

fn read_words(words: &[AtomicU64]) -> u64 {
    words
        .iter()
        .fold(0u64, |a, w| a.wrapping_add(w.load(Ordering::Relaxed)))
}

/// The measuring side of the cache-line ping-pong: one-way latencies in ns (half
/// round trips) of `samples` round trips after `warmup`. With `payload > 0` bytes,
/// the split variant: a payload in separate lines is written before each signal
/// and read after it.
pub fn ping_pong(
    page: &SharedPage,
    payload: usize,
    warmup: usize,
    samples: usize,
) -> Result<Vec<f64>, String> {
    let word = page.word();
    let (ping, pong) = (
        payload_words(page, PING_PAYLOAD, payload),
        payload_words(page, PONG_PAYLOAD, payload),
    );
    let mut out = Vec::with_capacity(samples);
    let deadline = Duration::from_secs(10);
    for i in 0..(warmup + samples) as u64 {
        let start = Instant::now();
        write_words(ping, i);
        word.store(2 * i + 1, Ordering::Release);
        let mut spins = 0u32;
        while word.load(Ordering::Acquire) != 2 * i + 2 {
            spins = spins.wrapping_add(1);
            if spins & 4095 == 0 && start.elapsed() > deadline {
                return Err(format!("no answer to ping {i}"));
            }
            std::hint::spin_loop();
        }
        black_box(read_words(pong));
        let rtt = start.elapsed();
        if i as usize >= warmup {
            out.push(rtt.as_nanos() as f64 / 2.0);
        }
    }
    word.store(u64::MAX, Ordering::Release);
    Ok(out)
}

/// The echoing side of the (split) ping-pong, until the measuring side stores
/// `u64::MAX`.
pub fn echo(page: &SharedPage, payload: usize) {
    let word = page.word();
    let (ping, pong) = (
        payload_words(page, PING_PAYLOAD, payload),
        payload_words(page, PONG_PAYLOAD, payload),
    );
    loop {
        let v = word.load(Ordering::Acquire);
        if v == u64::MAX {
            return;
        }
        if v & 1 == 1 {
            let got = read_words(ping);
            write_words(pong, got);
            word.store(v + 1, Ordering::Release);
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Offset of the futex word (32 bits) and of the timestamp of the futex floor.
const FUTEX_WORD: usize = 64;
const FUTEX_TIME: usize = 128;

fn futex_word(page: &SharedPage) -> &std::sync::atomic::AtomicU32 {
    // SAFETY: offset 64 is 4-aligned and inside the page mapping, which lives as long
    // as `page`; every process accesses the word only atomically.
    unsafe { &*((page.ptr as *const u8).add(FUTEX_WORD) as *const std::sync::atomic::AtomicU32) }
}

fn futex(word: &std::sync::atomic::AtomicU32, op: libc::c_int, value: u32, timeout_ms: i64) {
    let ts = libc::timespec {
        tv_sec: (timeout_ms / 1000) as libc::time_t,
        tv_nsec: ((timeout_ms % 1000) * 1_000_000) as libc::c_long,
    };
    // SAFETY: `word` is a live, aligned 32-bit atomic in a shared mapping and `ts`
    // outlives the call; FUTEX_WAIT only compares and sleeps, FUTEX_WAKE only wakes.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            op,
            value,
            &ts as *const libc::timespec,
        );
    }
}

/// The sending side of the futex floor: `count` wake-ups, pausing `gap` before each.
pub fn futex_sender(page: &SharedPage, count: usize, gap: Duration) {
    let word = futex_word(page);
    let time = &payload_words(page, FUTEX_TIME, 8)[0];
    std::thread::sleep(Duration::from_millis(20));
    for _ in 0..count {
        std::thread::sleep(gap);
        time.store(crate::clock::monotonic_ns(), Ordering::Relaxed);
        word.fetch_add(1, Ordering::SeqCst);
        futex(word, libc::FUTEX_WAKE, i32::MAX as u32, 0);
    }
}

/// The receiving side of the futex floor: one-way wake-up latencies in ns of the
/// wake-ups after the first `warmup`, until the sender's `warmup + count`-th (a
/// wake-up that found more than one bump, which only a late start or a descheduled
/// receiver causes, is not counted).
pub fn futex_receiver(page: &SharedPage, warmup: usize, count: usize) -> Result<Vec<f64>, String> {
    let word = futex_word(page);
    let time = &payload_words(page, FUTEX_TIME, 8)[0];
    let total = (warmup + count) as u32;
    let mut seen = word.load(Ordering::SeqCst);
    let mut out = Vec::with_capacity(count);
    while seen < total {
        let start = Instant::now();
        while word.load(Ordering::SeqCst) == seen {
            if start.elapsed() > Duration::from_secs(5) {
                return Err(format!("no wake-up after {seen} within 5 s"));
            }
            futex(word, libc::FUTEX_WAIT, seen, 100);
        }
        let now = crate::clock::monotonic_ns();
        let next = word.load(Ordering::SeqCst);
        if next == seen + 1 && next as usize > warmup {
            out.push(now.saturating_sub(time.load(Ordering::Relaxed)) as f64);
        }
        seen = next;
    }
    Ok(out)
}

/// Offsets of the two signal words of the inline ping-pong (measuring side, echoing
/// side); each direction's payload follows its signal word.
const INLINE: [usize; 2] = [0, 2048];

/// The measuring side of the inline ping-pong (see the module documentation), with a
/// `payload`-byte payload after each signal word.
pub fn ping_pong_inline(
    page: &SharedPage,
    payload: usize,
    warmup: usize,
    samples: usize,
) -> Result<Vec<f64>, String> {
    let (ping_sig, pong_sig) = (
        &payload_words(page, INLINE[0], 8)[0],
        &payload_words(page, INLINE[1], 8)[0],
    );
    let (ping, pong) = (
        payload_words(page, INLINE[0] + 8, payload),
        payload_words(page, INLINE[1] + 8, payload),
    );
    let mut out = Vec::with_capacity(samples);
    let deadline = Duration::from_secs(10);
    for i in 1..=(warmup + samples) as u64 {
        let start = Instant::now();
        write_words(ping, i);
        ping_sig.store(i, Ordering::Release);
        let mut spins = 0u32;
        while pong_sig.load(Ordering::Acquire) != i {
            spins = spins.wrapping_add(1);
            if spins & 4095 == 0 && start.elapsed() > deadline {
                return Err(format!("no answer to ping {i}"));
            }
            std::hint::spin_loop();
        }
        black_box(read_words(pong));
        let rtt = start.elapsed();
        if i as usize > warmup {
            out.push(rtt.as_nanos() as f64 / 2.0);
        }
    }
    ping_sig.store(u64::MAX, Ordering::Release);
    Ok(out)
}

/// The echoing side of the inline ping-pong, until the measuring side signals
/// `u64::MAX`.
pub fn echo_inline(page: &SharedPage, payload: usize) {
    let (ping_sig, pong_sig) = (
        &payload_words(page, INLINE[0], 8)[0],
        &payload_words(page, INLINE[1], 8)[0],
    );
    let (ping, pong) = (
        payload_words(page, INLINE[0] + 8, payload),
        payload_words(page, INLINE[1] + 8, payload),
    );
    let mut last = 0;
    loop {
        let v = ping_sig.load(Ordering::Acquire);
        if v == u64::MAX {
            return;
        }
        if v != last {
            last = v;
            write_words(pong, read_words(ping));
            pong_sig.store(v, Ordering::Release);
        } else {
            std::hint::spin_loop();
        }
    }
}

/// Nanoseconds per store of `size` bytes into relaxed atomic words plus a load of
/// them back (the seqlock's way of copying, without its stamps).
pub fn atomic_copy_ns(size: usize, batches: usize, batch_time: Duration) -> f64 {
    let src: Vec<u8> = (0..size).map(|i| i as u8).collect();
    let mut dst = vec![0u8; size];
    let words: Vec<AtomicU64> = (0..size.div_ceil(8)).map(|_| AtomicU64::new(0)).collect();
    time_op(batches, batch_time, || {
        for (chunk, w) in black_box(&src).chunks_exact(8).zip(&words) {
            w.store(
                u64::from_le_bytes(chunk.try_into().expect("8")),
                Ordering::Relaxed,
            );
        }
        for (chunk, w) in dst.chunks_exact_mut(8).zip(&words) {
            chunk.copy_from_slice(&w.load(Ordering::Relaxed).to_le_bytes());
        }
        black_box(&mut dst);
    })
}

/// Nanoseconds per `memcpy` of `size` bytes: the median of `batches` batches, each
/// timed over enough copies to last about `batch_time`.
pub fn memcpy_ns(size: usize, batches: usize, batch_time: Duration) -> f64 {
    let src: Vec<u8> = (0..size).map(|i| i as u8).collect();
    let mut dst = vec![0u8; size];
    time_op(batches, batch_time, || {
        dst.copy_from_slice(black_box(&src));
        black_box(&mut dst);
    })
}

/// Nanoseconds per pair of `memcpy`s of `size` bytes, source to middle to
/// destination (three buffers), measured like [`memcpy_ns`].
pub fn two_memcpy_ns(size: usize, batches: usize, batch_time: Duration) -> f64 {
    let src: Vec<u8> = (0..size).map(|i| i as u8).collect();
    let mut mid = vec![0u8; size];
    let mut dst = vec![0u8; size];
    time_op(batches, batch_time, || {
        mid.copy_from_slice(black_box(&src));
        dst.copy_from_slice(black_box(&mid));
        black_box(&mut dst);
    })
}

/// Median nanoseconds per call of `op` over `batches` batches of about
/// `batch_time` each (the batch length is calibrated once, after a warm-up).
pub fn time_op(batches: usize, batch_time: Duration, mut op: impl FnMut()) -> f64 {
    // Warm-up and calibration.
    let mut per_batch = 1u64;
    loop {
        let start = Instant::now();
        for _ in 0..per_batch {
            op();
        }
        let took = start.elapsed();
        if took >= batch_time / 4 || per_batch >= 1 << 30 {
            let ns = took.as_nanos().max(1) as f64 / per_batch as f64;
            per_batch = ((batch_time.as_nanos() as f64 / ns) as u64).max(1);
            break;
        }
        per_batch *= 2;
    }
    let mut results: Vec<f64> = (0..batches.max(1))
        .map(|_| {
            let start = Instant::now();
            for _ in 0..per_batch {
                op();
            }
            start.elapsed().as_nanos() as f64 / per_batch as f64
        })
        .collect();
    crate::stats::median(&mut results)
}

/// Copies `len` bytes from `src` to `dst` with one `rep movsb`.
///
/// # Safety
/// `src` must be valid for reads and `dst` for writes of `len` bytes.
#[cfg(target_arch = "x86_64")]
unsafe fn rep_movsb(dst: *mut u8, src: *const u8, len: usize) {
    // SAFETY: the caller guarantees both ranges; `rep movsb` touches exactly `len`
    // bytes from `rsi` to `rdi` (the direction flag is clear, as the ABI requires),
    // uses no stack and leaves the flags alone.
    unsafe {
        std::arch::asm!(
            "rep movsb",
            inout("rcx") len => _,
            inout("rdi") dst => _,
            inout("rsi") src => _,
            options(nostack, preserves_flags)
        );
    }
}

/// Nanoseconds per store of `size` bytes into atomic words plus a load back, each
/// done by one `rep movsb` (see the module documentation).
#[cfg(target_arch = "x86_64")]
pub fn rep_movsb_copy_ns(size: usize, batches: usize, batch_time: Duration) -> f64 {
    let src: Vec<u8> = (0..size).map(|i| i as u8).collect();
    let mut dst = vec![0u8; size];
    let words: Vec<AtomicU64> = (0..size.div_ceil(8)).map(|_| AtomicU64::new(0)).collect();
    time_op(batches, batch_time, || {
        let shared = words.as_ptr() as *mut u8;
        // SAFETY: `src` and `dst` hold `size` bytes, the words at least `size` bytes;
        // the atomics are interior-mutable and nothing else accesses them meanwhile.
        unsafe {
            rep_movsb(shared, black_box(&src).as_ptr(), size);
            rep_movsb(dst.as_mut_ptr(), shared, size);
        }
        black_box(&mut dst);
    })
}
