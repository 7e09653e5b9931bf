//! The futex protocol: blocking waits on a 32-bit word shared between processes
//! (docs/LAYOUT.md section 6).
//!
//! The kernel's part (`FUTEX_WAIT`, `FUTEX_WAKE`) stays with the caller: [`notify`]
//! says whether a wake is due, and [`wait`] sleeps through a [`Sleeper`]. So the same
//! code runs in `tensorlane-shm` over the Linux futex and under loom over a model of
//! the kernel (`verification/tests/loom_futex.rs`).
//!
//! # The word
//!
//! Bit 0 ([`WAITING`]) says "a waiter may be asleep on the current value"; bits 1 to
//! 31 count the notifies that found the flag ([`EVENT`] each, modulo 2^31). Every
//! change of the word is an atomic read-modify-write; nobody stores it. There are two:
//! a waiter's announce sets the flag, and a notifier's *clear-and-bump* clears it and
//! adds [`EVENT`] in one compare-and-swap. So the count changes exactly when the flag
//! is cleared.
//!
//! - **Notify**, after the event is visible: a `SeqCst` fence, then a relaxed load of
//!   the word. With the flag clear that is all: no read-modify-write, no system call.
//!   With the flag set: clear-and-bump (compare-and-swap from a value with the flag to
//!   that value without it plus [`EVENT`], retried while the flag is set), then, if it
//!   was this notifier that cleared, `FUTEX_WAKE(word, all)`.
//! - **Wait**: loop: announce with `seen = fetch_or(word, WAITING) | WAITING`, a
//!   `SeqCst` fence, check the condition, and sleep with `FUTEX_WAIT(word, seen)`;
//!   after it returns, check the condition again before announcing again.
//!
//! # Why no live waiter is lost
//!
//! After a waiter W's announce `a`, the word holds `seen` (the count at `a`, with the
//! flag) until the first clear-and-bump after `a`; that one and every later value
//! carry another count, so from then on `word != seen` (up to 2^31 clears later).
//! Whoever does that first clear-and-bump calls `FUTEX_WAKE` after it. The kernel
//! guarantees that `FUTEX_WAIT(word, seen)` either finds `word != seen` and returns,
//! or is queued before a later `FUTEX_WAKE` and woken by it. So once any notifier
//! clears after `a`, W's sleep on `seen` ends.
//!
//! Now take a notifier N whose event W has not seen: N makes its event visible (a
//! store `E`), then runs its fence `Y` and loads the word (`L`); W runs its fence `X`
//! after `a` and then checks. Both fences are `SeqCst`, so they are ordered in the
//! single total order `S` of `SeqCst` operations, and the fence rules of the memory
//! model (C++20 [atomics.order], which Rust adopts) give:
//!
//! 1. `Y` before `X` in `S`: W's check, after `X`, observes `E` or a later store. W
//!    sees the event and does not need N.
//! 2. `X` before `Y` in `S`: `L`, after `Y`, reads `a` or a later value of the word.
//!    If `L` finds the flag, N clears-and-bumps unless someone cleared after `L`; if
//!    `L` finds the flag clear, someone cleared after `a`. Either way a clear-and-bump
//!    after `a` exists, so W's sleep ends. W then checks again; if the event is still
//!    not visible it announces again at `a'`. The clear that ended the sleep happens
//!    before `a'` (through the kernel's wake, or W's `FUTEX_WAIT` having read the
//!    cleared word), and `L` read a value no later than that clear, so `L` cannot
//!    observe `a'`: the fence after `a'` is therefore after `Y` in `S` (else case 2's
//!    rule would make `L` observe `a'` or later), which is case 1.
//!
//! Every access to the word can therefore be `Relaxed`: the fences order the event
//! against the flag, and the kernel orders a wake against the sleep. The bump is what
//! makes "the word changed" permanent: a clear alone would return the word to a value
//! a later announce sets again, and a waiter still on its way into
//! `FUTEX_WAIT(word, seen)` would sleep on that repeated value with nobody to wake it
//! (spin canary `futex-no-bump`). The order "clear, then wake" matters too: a waiter
//! announcing between a wake and a later clear would sleep on a value the clear
//! changes, with nobody to wake it (`futex-wake-first`). Both fences are needed:
//! without either, the notifier's load and the waiter's check form a store-buffering
//! pair that may both read the old values, and the waiter sleeps through the event
//! (the loom canaries in `verification/src/futex_canaries.rs`).
//!
//! # Dead waiters
//!
//! A waiter keeps no count: the only trace it leaves is the flag, and the next notify
//! clears it (one `FUTEX_WAKE` that wakes nobody). A process killed inside a wait
//! costs one system call, not one per notify forever. [`wait`] checks the condition
//! again after every sleep before it announces again, and does not announce once its
//! time is up, so the common paths leave the flag clear.

use crate::sync::{fence, AtomicU32, Ordering};

/// Bit 0 of the word: a waiter may be asleep on the current value.
pub const WAITING: u32 = 1;

/// What a notify's clear-and-bump adds to the word (the count lives in bits 1 to 31).
pub const EVENT: u32 = 2;

/// Signals an event, made visible before the call, to every waiter on `word`. Returns
/// whether the caller must now wake the waiters (`FUTEX_WAKE(word, all)`): only when a
/// waiter announced itself since the word was last cleared, and this notify cleared it.
#[inline]
pub fn notify(word: &AtomicU32) -> bool {
    // SeqCst fence, paired with the waiter's SeqCst fence after its announce (`wait`):
    // either this load reads the announce (or a later change), or the waiter's check
    // reads the event this notify follows (module doc, cases 1 and 2).
    fence(Ordering::SeqCst);
    clear_and_bump(word, word.load(Ordering::Relaxed))
}

/// The slow half of [`notify`]: if the word (last seen as `current`) has the flag,
/// clears it and adds [`EVENT`] in one compare-and-swap, retried while the flag is
/// set. Returns whether this call cleared it, and so must wake the waiters.
#[inline]
pub fn clear_and_bump(word: &AtomicU32, mut current: u32) -> bool {
    // Clear-and-bump, then (the caller) wake: clearing first means a waiter that
    // announces after the clear sets the flag again for the next notify, and one that
    // announced before it sleeps on a value the bump changed for good. Relaxed: the
    // fences order the event; the clear publishes nothing.
    while current & WAITING != 0 {
        let cleared = (current & !WAITING).wrapping_add(EVENT);
        match word.compare_exchange_weak(current, cleared, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return true,
            Err(now) => current = now,
        }
    }
    // The flag is clear: nobody announced since the last clear, or another notifier
    // cleared after `current` was loaded, and that notifier wakes.
    false
}

/// The sleeping half of a wait, and its clock.
pub trait Sleeper {
    /// Whether the wait's time is up (always `false` for a wait without deadline).
    fn time_up(&mut self) -> bool;

    /// Sleeps while `word` holds `seen`, until woken, for at most the time left (and
    /// any slice the caller keeps). May return early, spuriously or on a change of the
    /// word. Returns `false`, without sleeping, when no time is left.
    fn sleep(&mut self, word: &AtomicU32, seen: u32) -> bool;
}

/// Waits on `word` until `ready()` returns `Some`, or until `sleeper`'s time is up
/// (then `None`). `ready` is called at least once, even when the time is already up;
/// a wait whose time is up before it would announce does not announce.
pub fn wait<T>(
    word: &AtomicU32,
    sleeper: &mut impl Sleeper,
    mut ready: impl FnMut() -> Option<T>,
) -> Option<T> {
    loop {
        // Time already up: one last check without announcing, so that a wait that
        // cannot sleep leaves no flag for the next notifier to pay a wake for.
        if sleeper.time_up() {
            return ready();
        }
        // Announce, then the SeqCst fence that pairs with the notifier's (`notify`).
        // Relaxed: the fences order the flag against the event (module doc).
        let seen = word.fetch_or(WAITING, Ordering::Relaxed) | WAITING;
        fence(Ordering::SeqCst);
        if let Some(v) = ready() {
            return Some(v);
        }
        if !sleeper.sleep(word, seen) {
            return None;
        }
        // Check before announcing again: a waiter woken by a notify (which cleared
        // the flag) then leaves the flag clear.
        if let Some(v) = ready() {
            return Some(v);
        }
        if sleeper.time_up() {
            return None;
        }
    }
}
