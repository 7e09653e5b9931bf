//! Blocking waits on a shared futex word in the segment.
//!
//! The protocol (the word's flag and count, notify's fast path, the wait loop, and why
//! no live waiter is lost) is `tensorlane_core::futex`, shared with its loom model;
//! docs/LAYOUT.md section 6 states it for other implementations. This module adds the
//! Linux side: `FUTEX_WAIT` and `FUTEX_WAKE` on the shared (not private) futex, a spin
//! phase before the first announce, deadlines on `Instant`, and sleep slices.
//!
//! The futex is shared (no `FUTEX_PRIVATE_FLAG`): waiters and notifiers are in
//! different processes. `verification/spin/futex.pml` checks the protocol's logic
//! with notifiers and waiters that die at any step, and its canaries show that each
//! rule (re-check after announcing, bump with the clear, clear before waking, clearing
//! at all) is needed; `verification/tests/loom_futex.rs` checks its memory orders,
//! and its canaries show that both `SeqCst` fences are needed.
//!
//! # Dead waiters
//!
//! A waiter keeps no count: the only trace it leaves is the flag, and the next notify
//! clears it (one `FUTEX_WAKE` that wakes nobody). So a process killed inside a wait
//! costs one system call, not one per notify forever.
//!
//! The count of waiters of layout version 1 could not recover: a notifier cannot tell
//! a dead waiter's increment from a live waiter that has incremented but not yet
//! slept, and resetting the count after a `FUTEX_WAKE` that woke nobody loses a live
//! waiter whose increment lands between the notifier's load and its reset (the spin
//! model's `futex-count-reset` run shows the interleaving).
//!
//! # Slices
//!
//! Sleeps last at most a slice (100 ms), so that an event nobody notifies (a peer
//! that died, a subscriber that left, an eviction) costs a bounded delay. The
//! protocol never needs the slice; tests set a longer slice on their own thread
//! with [`Futex::set_thread_sleep_slice`] so that a lost wake-up shows as a stall.

use crate::header::Futex;
use std::cell::Cell;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tensorlane_core::futex;

/// Iterations of the spin phase before sleeping.
const SPIN: u32 = 200;

/// Longest single sleep, unless a thread sets its own.
const SLICE: Duration = Duration::from_millis(100);

/// `FUTEX_WAKE` system calls made by [`Futex::notify`] in this process.
static WAKE_CALLS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// This thread's longest single sleep.
    static THREAD_SLICE: Cell<Duration> = const { Cell::new(SLICE) };
}

impl Futex {
    /// Bit 0 of the word: a waiter may be asleep on the current value.
    pub const WAITING: u32 = futex::WAITING;

    /// What a notify's clear-and-bump adds to the word (the count lives in bits 1 to 31).
    pub const EVENT: u32 = futex::EVENT;

    /// Signals an event to every waiter. Call after the event is visible. Makes a
    /// system call only if a waiter announced itself since the last notify; with
    /// nobody waiting it is a fence and a load.
    pub fn notify(&self) {
        if futex::notify(&self.word) {
            WAKE_CALLS.fetch_add(1, Ordering::Relaxed);
            // SAFETY: `word` is a live, aligned 32-bit atomic in a shared mapping;
            // FUTEX_WAKE only uses its address. The result (how many woke) is not
            // needed: waking nobody is normal (a waiter that left, or died).
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    self.word.as_ptr(),
                    libc::FUTEX_WAKE,
                    i32::MAX,
                    std::ptr::null::<libc::timespec>(),
                );
            }
        }
    }

    /// Waits until `ready()` returns `Some`, or until `timeout` (None: forever).
    /// Spins briefly, then sleeps on the futex.
    pub fn wait_until<T>(
        &self,
        timeout: Option<Duration>,
        ready: impl FnMut() -> Option<T>,
    ) -> Option<T> {
        // A timeout too large for the clock is no timeout.
        self.wait_deadline(timeout.and_then(|t| Instant::now().checked_add(t)), ready)
    }

    /// Waits until `ready()` returns `Some`, or until `deadline` (None: forever).
    /// Spins briefly, then sleeps on the futex; `ready` is called at least once, even
    /// with a deadline already past.
    pub fn wait_deadline<T>(
        &self,
        deadline: Option<Instant>,
        mut ready: impl FnMut() -> Option<T>,
    ) -> Option<T> {
        for _ in 0..SPIN {
            if let Some(v) = ready() {
                return Some(v);
            }
            std::hint::spin_loop();
        }
        let mut sleeper = Deadline {
            deadline,
            slice: THREAD_SLICE.with(Cell::get),
        };
        futex::wait(&self.word, &mut sleeper, ready)
    }

    /// `FUTEX_WAKE` system calls made by [`notify`](Self::notify) in this process so
    /// far (for tests: a notify with nobody waiting must not add to it).
    pub fn wake_calls() -> u64 {
        WAKE_CALLS.load(Ordering::Relaxed)
    }

    /// Sets the longest single sleep of this thread's waits (default 100 ms) and
    /// returns the previous value. The slice bounds the delay of events nobody
    /// notifies (a peer that died); a test sets it long so that a lost wake-up
    /// shows as a stall instead of being rescued after 100 ms.
    pub fn set_thread_sleep_slice(slice: Duration) -> Duration {
        THREAD_SLICE.with(|s| s.replace(slice.max(Duration::from_millis(1))))
    }
}

/// A wait's clock: an optional deadline, and the longest single sleep.
struct Deadline {
    deadline: Option<Instant>,
    slice: Duration,
}

impl futex::Sleeper for Deadline {
    fn time_up(&mut self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    fn sleep(&mut self, word: &AtomicU32, seen: u32) -> bool {
        let sleep = match self.deadline {
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => left.min(self.slice),
                _ => return false,
            },
            None => self.slice,
        };
        futex_wait(word, seen, sleep);
        true
    }
}

/// Sleeps on `word` while it equals `seen`, for at most `sleep`. Returns on a wake, a
/// change of the word, the timeout or a signal; the caller re-checks.
fn futex_wait(word: &AtomicU32, seen: u32, sleep: Duration) {
    let ts = libc::timespec {
        // Saturates: a slice longer than `time_t` seconds is no practical difference.
        tv_sec: libc::time_t::try_from(sleep.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: sleep.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a live, aligned 32-bit atomic in a shared mapping; `ts`
    // outlives the call. FUTEX_WAIT only compares the word with `seen` and sleeps.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            seen,
            &ts as *const libc::timespec,
        );
    }
}
