//! Blocking waits on a shared futex word in the segment.
//!
//! # The word
//!
//! One 32-bit word per futex. Bit 0 ([`Futex::WAITING`]) says "a waiter may be asleep
//! on the current value"; bits 1 to 31 count events (modulo 2^31). Nothing else in
//! the futex's line is used.
//!
//! - **Notify**, after the event is visible: `old = fetch_add(word, 2)` (release); if
//!   `old` has the flag: `fetch_and(word, !WAITING)`, then `FUTEX_WAKE(word, all)`.
//!   With the flag clear a notifier makes no system call.
//! - **Wait**: spin on the condition briefly; then loop: announce with
//!   `seen = fetch_or(word, WAITING) | WAITING` (acquire), check the condition, and
//!   sleep with `FUTEX_WAIT(word, seen)` for at most a slice (100 ms) and the time
//!   left; after it returns, check the condition again before announcing again.
//!
//! The futex is shared (no `FUTEX_PRIVATE_FLAG`): waiters and notifiers are in
//! different processes. Every change of the word is an atomic read-modify-write;
//! nobody ever stores it.
//!
//! # Why no live waiter is lost
//!
//! All the reasoning is about one location, whose read-modify-writes are totally
//! ordered (its modification order), plus the kernel's futex guarantee: a
//! `FUTEX_WAIT(word, seen)` either finds `word != seen` and returns, or is queued
//! before a later `FUTEX_WAKE` on the word and is woken by it.
//!
//! Take a waiter W that announces (its `fetch_or`, at point `a` of the modification
//! order) and a notifier N whose bump is at point `b`.
//!
//! 1. If `b` is before `a`: W's acquire `fetch_or` reads N's bump or a later
//!    read-modify-write, which are all in the release sequence of N's release bump, so
//!    W's check of the condition sees N's event. W does not need N.
//! 2. If `a` is before `b`: W sleeps (if at all) on `seen`, the value at `a`, which has
//!    the flag. The word changes between `a` and `b` (every bump changes it). The
//!    first change after `a` is a bump, which reads `seen` and so finds the flag, or a
//!    flag clear, which only a notifier that found the flag does; either way that
//!    notifier calls `FUTEX_WAKE` after the change. By the kernel's guarantee W's
//!    `FUTEX_WAIT` either sees the changed word and returns, or is woken. W then
//!    checks the condition again; if N's event is still not visible, W announces
//!    again at some `a' > a`, and the same two cases apply. There are finitely many
//!    read-modify-writes before `b`, so W ends in case 1 and sees N's event.
//!
//! A waiter's own `fetch_or` that sets the flag changes the word too, but away from a
//! value without the flag, on which nobody sleeps (a waiter sleeps only on a value
//! it announced, which has the flag). The order "clear, then wake" matters: a waiter
//! announcing between a wake and a later clear would sleep on a value that the clear
//! changes with nobody to wake it. `verification/spin/futex.pml` checks this
//! protocol with notifiers and waiters that die at any step, and its canaries show
//! that each rule (re-check after announcing, clear before waking, clearing at all)
//! is needed.
//!
//! # Dead waiters
//!
//! A waiter keeps no count: the only trace it leaves is the flag, and the next notify
//! clears it (one `FUTEX_WAKE` that wakes nobody). So a process killed inside a wait
//! costs one system call, not one per notify forever. A waiter that announces and then
//! returns without sleeping (its condition held, or its time ran out while it was
//! announced) leaves the flag the same way. A wait whose time is up before it would
//! announce (a zero timeout, a polling loop) does not announce at all, and a waiter
//! woken by a notify re-checks before announcing, so the common paths leave the flag
//! clear.
//!
//! The count of waiters this replaces (layout version 1) could not recover: a
//! notifier cannot tell a dead waiter's increment from a live waiter that has
//! incremented but not yet slept, and resetting the count after a `FUTEX_WAKE` that
//! woke nobody loses a live waiter whose increment lands between the notifier's load
//! and its reset (the spin model's `futex-count-reset` run shows the interleaving).
//!
//! # Slices
//!
//! Sleeps last at most a slice (100 ms), so that an event nobody notifies (a peer
//! that died, a subscriber that left, an eviction) costs a bounded delay. The
//! protocol above never needs the slice; tests set a longer slice on their own thread
//! with [`Futex::set_thread_sleep_slice`] so that a lost wake-up shows as a stall.

use crate::header::Futex;
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

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
    pub const WAITING: u32 = 1;

    /// What one event adds to the word (the event count lives in bits 1 to 31).
    pub const EVENT: u32 = 2;

    /// Signals an event to every waiter. Call after the event is visible. Makes a
    /// system call only if a waiter announced itself since the last notify.
    pub fn notify(&self) {
        // Release pairs with the Acquire `fetch_or` of a waiter's announce: a waiter
        // whose announce reads this bump (or any later read-modify-write of the word,
        // all in this bump's release sequence) sees the event in its re-check.
        let old = self.word.fetch_add(Self::EVENT, Ordering::Release);
        if old & Self::WAITING != 0 {
            // Clear before waking: a waiter that announces after the clear reads
            // this bump (case 1 of the module doc); one that announced before it is
            // asleep on a value the bump or the clear changed, and the wake below
            // reaches it. Relaxed: the clear publishes nothing; the bump above did.
            self.word.fetch_and(!Self::WAITING, Ordering::Relaxed);
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
        let slice = THREAD_SLICE.with(Cell::get);
        loop {
            // Time already up (a zero timeout, or the spin phase used it): one last
            // check without announcing, so that a wait that cannot sleep leaves no
            // flag for the next notifier to pay a `FUTEX_WAKE` for.
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return ready();
            }
            // Announce. Acquire pairs with the Release bump of every notifier: if this
            // read-modify-write comes after a notifier's bump, `ready` sees its event;
            // if it comes before, that notifier finds the flag (or one before it did)
            // and wakes us.
            let seen = self.word.fetch_or(Self::WAITING, Ordering::Acquire) | Self::WAITING;
            if let Some(v) = ready() {
                return Some(v);
            }
            let sleep = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => left.min(slice),
                    _ => return None,
                },
                None => slice,
            };
            futex_wait(self, seen, sleep);
            // Check before announcing again: a waiter woken by a notify (which
            // cleared the flag) then leaves the flag clear.
            if let Some(v) = ready() {
                return Some(v);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return None;
            }
        }
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

/// Sleeps on `futex.word` while it equals `seen`, for at most `sleep`. Returns on a
/// wake, a change of the word, the timeout or a signal; the caller re-checks.
fn futex_wait(futex: &Futex, seen: u32, sleep: Duration) {
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
            futex.word.as_ptr(),
            libc::FUTEX_WAIT,
            seen,
            &ts as *const libc::timespec,
        );
    }
}
