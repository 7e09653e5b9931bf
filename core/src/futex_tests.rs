//! The futex protocol's word, single-threaded: what `notify`, `clear_and_bump` and
//! `wait` leave in the word and what they return, with a scripted [`Sleeper`] in place
//! of the kernel. Concurrency is checked by loom (`verification/tests/loom_futex.rs`)
//! and spin; these pin the arithmetic of the word that both rely on.

use crate::futex::{clear_and_bump, notify, wait, Sleeper, EVENT, WAITING};
use crate::sync::{AtomicU32, Ordering};
use std::vec::Vec;

const RELAXED: Ordering = Ordering::Relaxed;

/// A sleeper that follows a script: `time_up` answers come from `clock` (then
/// `false`), `sleep` answers from `wakes` (then `false`); every sleep records the
/// value it was asked to sleep on and the word's value at that moment.
struct Scripted {
    clock: Vec<bool>,
    wakes: Vec<bool>,
    slept: Vec<(u32, u32)>,
}

impl Scripted {
    fn new(clock: &[bool], wakes: &[bool]) -> Self {
        Scripted {
            clock: clock.iter().rev().copied().collect(),
            wakes: wakes.iter().rev().copied().collect(),
            slept: Vec::new(),
        }
    }
}

impl Sleeper for Scripted {
    fn time_up(&mut self) -> bool {
        self.clock.pop().unwrap_or(false)
    }

    fn sleep(&mut self, word: &AtomicU32, seen: u32) -> bool {
        self.slept.push((seen, word.load(RELAXED)));
        self.wakes.pop().unwrap_or(false)
    }
}

#[test]
fn notify_without_a_waiter_leaves_the_word_and_wakes_nobody() {
    for value in [0, EVENT, 5 * EVENT] {
        let word = AtomicU32::new(value);
        assert!(!notify(&word));
        assert_eq!(word.load(RELAXED), value);
    }
}

#[test]
fn notify_after_an_announce_clears_the_flag_bumps_the_count_and_wakes() {
    let word = AtomicU32::new(WAITING);
    assert!(notify(&word));
    assert_eq!(word.load(RELAXED), EVENT);
    // A second notify finds the flag clear: nothing to do.
    assert!(!notify(&word));
    assert_eq!(word.load(RELAXED), EVENT);
    let word = AtomicU32::new((3 * EVENT) | WAITING);
    assert!(notify(&word));
    assert_eq!(word.load(RELAXED), 4 * EVENT);
}

#[test]
fn the_count_wraps_in_its_31_bits() {
    let word = AtomicU32::new(u32::MAX); // count 2^31 - 1, flag set
    assert!(notify(&word));
    assert_eq!(word.load(RELAXED), 0);
}

#[test]
fn clear_and_bump_retries_from_the_value_it_finds() {
    // The caller's value is stale: the word gained a count and the flag since.
    let word = AtomicU32::new((2 * EVENT) | WAITING);
    assert!(clear_and_bump(&word, WAITING));
    assert_eq!(word.load(RELAXED), 3 * EVENT);
    // Another notifier cleared since the caller loaded: nothing left to do.
    let word = AtomicU32::new(EVENT);
    assert!(!clear_and_bump(&word, WAITING));
    assert_eq!(word.load(RELAXED), EVENT);
    // Flag clear in the value given and in the word.
    let word = AtomicU32::new(EVENT);
    assert!(!clear_and_bump(&word, EVENT));
    assert_eq!(word.load(RELAXED), EVENT);
}

#[test]
fn a_ready_wait_returns_at_once_and_leaves_the_flag_it_announced() {
    let word = AtomicU32::new(2 * EVENT);
    let mut sleeper = Scripted::new(&[], &[]);
    assert_eq!(wait(&word, &mut sleeper, || Some(7u32)), Some(7));
    assert!(sleeper.slept.is_empty());
    assert_eq!(word.load(RELAXED), (2 * EVENT) | WAITING);
}

#[test]
fn a_wait_whose_time_is_up_checks_once_and_does_not_announce() {
    let word = AtomicU32::new(EVENT);
    let mut sleeper = Scripted::new(&[true], &[]);
    let mut checks = 0;
    let got = wait(&word, &mut sleeper, || {
        checks += 1;
        None::<u32>
    });
    assert_eq!((got, checks), (None, 1));
    assert_eq!(word.load(RELAXED), EVENT);
    let mut sleeper = Scripted::new(&[true], &[]);
    assert_eq!(wait(&word, &mut sleeper, || Some(3u32)), Some(3));
    assert_eq!(word.load(RELAXED), EVENT);
}

#[test]
fn a_wait_sleeps_on_the_value_it_announced() {
    // The flag is already set (another waiter announced): the value slept on still
    // carries it, and equals the word.
    for start in [0, WAITING, 2 * EVENT, (2 * EVENT) | WAITING] {
        let word = AtomicU32::new(start);
        let mut sleeper = Scripted::new(&[], &[false]);
        assert_eq!(wait(&word, &mut sleeper, || None::<u32>), None);
        assert_eq!(sleeper.slept, [(start | WAITING, start | WAITING)]);
    }
}

#[test]
fn a_wait_checks_after_each_sleep_before_announcing_again() {
    // Woken, and the event is there: returned without a second announce (a notify
    // cleared the flag meanwhile, and it stays clear).
    let word = AtomicU32::new(0);
    let mut sleeper = Scripted::new(&[], &[true]);
    let mut checks = 0;
    let got = wait(&word, &mut sleeper, || {
        checks += 1;
        if checks == 1 {
            assert!(notify(&word), "the waiter announced");
            None
        } else {
            Some(checks)
        }
    });
    assert_eq!(got, Some(2));
    assert_eq!(sleeper.slept, [(WAITING, EVENT)]);
    assert_eq!(word.load(RELAXED), EVENT);
}

#[test]
fn a_wait_ends_when_its_time_is_up_after_a_sleep() {
    // Woken (spuriously), nothing ready, time up: no further announce or sleep.
    let word = AtomicU32::new(0);
    let mut sleeper = Scripted::new(&[false, true], &[true]);
    let mut checks = 0;
    let got = wait(&word, &mut sleeper, || {
        checks += 1;
        None::<u32>
    });
    assert_eq!((got, checks), (None, 2));
    assert_eq!(sleeper.slept.len(), 1);
    // Woken twice with time left: announces and sleeps again each time.
    let word = AtomicU32::new(0);
    let mut sleeper = Scripted::new(&[], &[true, true, false]);
    let mut checks = 0;
    let got = wait(&word, &mut sleeper, || {
        checks += 1;
        None::<u32>
    });
    assert_eq!((got, checks), (None, 5));
    assert_eq!(sleeper.slept.len(), 3);
}
