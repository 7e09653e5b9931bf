//! Blocking waits on a shared futex word in the segment.
//!
//! Protocol (both sides SeqCst, a store-buffering pair): a notifier makes its event
//! visible, bumps `word`, then loads `waiters` and calls `FUTEX_WAKE` only if it is
//! non-zero. A waiter increments `waiters`, loads `word`, re-checks its condition,
//! and sleeps with `FUTEX_WAIT(word, seen)` only if the condition is still false. Either
//! the notifier sees the waiter (and wakes it) or the waiter's re-check sees the event;
//! a bump between the waiter's load and its sleep makes `FUTEX_WAIT` return at once.
//! The futex is shared (no `FUTEX_PRIVATE_FLAG`): waiters and notifiers are in
//! different processes. A notifier with no waiters makes no system call.

use crate::header::Futex;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Iterations of the spin phase before sleeping.
const SPIN: u32 = 200;

impl Futex {
    /// Signals an event to every waiter. Call after the event is visible.
    pub fn notify(&self) {
        self.word.fetch_add(1, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) != 0 {
            // SAFETY: `word` is a live, aligned 32-bit atomic in a shared mapping;
            // FUTEX_WAKE only reads its address.
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
        mut ready: impl FnMut() -> Option<T>,
    ) -> Option<T> {
        for _ in 0..SPIN {
            if let Some(v) = ready() {
                return Some(v);
            }
            std::hint::spin_loop();
        }
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            self.waiters.fetch_add(1, Ordering::SeqCst);
            let seen = self.word.load(Ordering::SeqCst);
            let result = ready();
            if result.is_none() {
                let left = match deadline {
                    Some(d) => match d.checked_duration_since(Instant::now()) {
                        Some(left) => Some(left),
                        None => {
                            self.waiters.fetch_sub(1, Ordering::SeqCst);
                            return None;
                        }
                    },
                    None => None,
                };
                // Sleep in slices of at most 100 ms so that a peer that died without
                // notifying (or a corrupted word) costs a bounded delay, not a hang.
                let slice = left.map_or(Duration::from_millis(100), |l| {
                    l.min(Duration::from_millis(100))
                });
                let ts = libc::timespec {
                    tv_sec: slice.as_secs() as libc::time_t,
                    tv_nsec: slice.subsec_nanos() as libc::c_long,
                };
                // SAFETY: `word` is a live, aligned 32-bit atomic in a shared mapping;
                // `ts` outlives the call. Spurious returns are handled by the loop.
                unsafe {
                    libc::syscall(
                        libc::SYS_futex,
                        self.word.as_ptr(),
                        libc::FUTEX_WAIT,
                        seen,
                        &ts as *const libc::timespec,
                    );
                }
            }
            self.waiters.fetch_sub(1, Ordering::SeqCst);
            if result.is_some() {
                return result;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return ready();
            }
        }
    }
}
