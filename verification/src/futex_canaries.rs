//! Broken futex peers: the protocol of `tensorlane_core::futex` with one `SeqCst`
//! fence left out. Without either fence the notifier's load of the word and the
//! waiter's check of the condition form a store-buffering pair: both may read the
//! values from before the other's store, so the notifier skips the wake and the waiter
//! sleeps through the event. `verification/tests/loom_futex.rs` requires loom to find
//! that lost wake-up (a deadlock) with each of them in place of the real side.

use crate::sync::Ordering;
use tensorlane_core::futex::{clear_and_bump, Sleeper, WAITING};
use tensorlane_core::AtomicU32;

/// `futex::notify` without its fence: loads the word right after the event's store.
pub fn unfenced_notify(word: &AtomicU32) -> bool {
    clear_and_bump(word, word.load(Ordering::Relaxed))
}

/// `futex::wait` without the fence after the announce: checks the condition right
/// after setting the flag.
pub fn unfenced_wait<T>(
    word: &AtomicU32,
    sleeper: &mut impl Sleeper,
    mut ready: impl FnMut() -> Option<T>,
) -> Option<T> {
    loop {
        if sleeper.time_up() {
            return ready();
        }
        let seen = word.fetch_or(WAITING, Ordering::Relaxed) | WAITING;
        if let Some(v) = ready() {
            return Some(v);
        }
        if !sleeper.sleep(word, seen) {
            return None;
        }
        if let Some(v) = ready() {
            return Some(v);
        }
    }
}
