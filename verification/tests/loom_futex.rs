//! The futex protocol under loom: `tensorlane_core::futex` (the code
//! `tensorlane-shm` runs) against a model of the kernel's futex, with waiters that
//! sleep without time limits: a waiter still asleep once every notifier has finished is
//! a lost wake-up, which the scenario reports.
//!
//! The kernel model keeps the guarantee the protocol relies on: `FUTEX_WAIT(word,
//! seen)` compares and queues under the futex's lock, `FUTEX_WAKE` takes the same lock
//! and wakes every waiter queued, so a wait either finds the word changed or is queued
//! before a later wake. The lock also orders the waker's clear before the compare of
//! a wait that comes after it, as the kernel's barriers do.
//!
//! loom treats `SeqCst` loads, stores and read-modify-writes as `AcqRel`, but models
//! `SeqCst` fences, which are the protocol's only `SeqCst` operations. The canaries
//! leave one fence out and loom must find the lost wake-up.
#![cfg(feature = "loom")]

use loom::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use loom::sync::{Arc, Mutex};
use loom::thread;
use tensorlane_core::futex::{self, Sleeper};
use tensorlane_verification::futex_canaries;

/// Preemption bound used unless `LOOM_MAX_PREEMPTIONS` is set.
const PREEMPTION_BOUND: usize = 3;

/// The kernel's side of one futex: a lock, the threads queued under it, and how many
/// wakes it has done (a queued waiter leaves once a wake comes after it queued).
struct Kernel {
    state: Mutex<KernelState>,
}

struct KernelState {
    /// `FUTEX_WAKE`s done so far.
    wakes: u64,
    /// Threads queued in `FUTEX_WAIT`, not woken yet.
    queued: Vec<thread::Thread>,
    /// Waiters whose wait returned.
    returned: usize,
}

impl Kernel {
    fn new() -> Self {
        Kernel {
            state: Mutex::new(KernelState {
                wakes: 0,
                queued: Vec::new(),
                returned: 0,
            }),
        }
    }

    /// `FUTEX_WAIT(word, seen)` without timeout: compares and queues under the lock,
    /// then sleeps until a later wake.
    fn wait(&self, word: &AtomicU32, seen: u32) {
        let queued_at = {
            let mut state = self.state.lock().unwrap();
            if word.load(Ordering::Relaxed) != seen {
                return;
            }
            state.queued.push(thread::current());
            state.wakes
        };
        loop {
            thread::park();
            if self.state.lock().unwrap().wakes != queued_at {
                return;
            }
        }
    }

    /// Once no wake can come any more (every notifier finished): waits until every
    /// one of `waiters` has returned, and fails if one is left queued, asleep for good.
    fn expect_no_sleeper(&self, waiters: usize) {
        loop {
            let state = self.state.lock().unwrap();
            let (returned, asleep) = (state.returned, state.queued.len());
            drop(state);
            assert!(
                asleep == 0,
                "lost wake-up: a waiter sleeps after every notify"
            );
            if returned == waiters {
                return;
            }
            thread::yield_now();
        }
    }

    /// `FUTEX_WAKE(word, all)`.
    fn wake(&self) {
        let mut state = self.state.lock().unwrap();
        state.wakes += 1;
        for queued in state.queued.drain(..) {
            queued.unpark();
        }
    }
}

/// A wait without deadline: sleeps in the kernel model until woken.
struct Forever<'a>(&'a Kernel);

impl Sleeper for Forever<'_> {
    fn time_up(&mut self) -> bool {
        false
    }

    fn sleep(&mut self, word: &AtomicU32, seen: u32) -> bool {
        self.0.wait(word, seen);
        true
    }
}

/// How a notifier signals: the real `futex::notify` or a broken one.
type Notify = fn(&AtomicU32) -> bool;

/// How a waiter waits for `events >= target`: the real `futex::wait` or a broken one.
type Wait = fn(&AtomicU32, &Kernel, &AtomicU64, u64);

fn real_wait(word: &AtomicU32, kernel: &Kernel, events: &AtomicU64, target: u64) {
    let seen = futex::wait(word, &mut Forever(kernel), || {
        (events.load(Ordering::Acquire) >= target).then_some(())
    });
    assert!(seen.is_some(), "a wait without deadline returned empty");
    kernel.state.lock().unwrap().returned += 1;
}

fn unfenced_wait(word: &AtomicU32, kernel: &Kernel, events: &AtomicU64, target: u64) {
    let seen = futex_canaries::unfenced_wait(word, &mut Forever(kernel), || {
        (events.load(Ordering::Acquire) >= target).then_some(())
    });
    assert!(seen.is_some(), "a wait without deadline returned empty");
    kernel.state.lock().unwrap().returned += 1;
}

/// `notifiers` threads each publish one event (a Release increment of `events`) and
/// notify; `waiters` threads each wait until every event is visible. Ends only if no
/// waiter's wake-up is lost; then the flag is clear or a waiter left it set without
/// sleeping, and a last notify with nobody waiting clears it for good.
fn scenario(notifiers: usize, waiters: usize, notify: Notify, wait: Wait) {
    let word = Arc::new(AtomicU32::new(0));
    let events = Arc::new(AtomicU64::new(0));
    let kernel = Arc::new(Kernel::new());
    let total = notifiers as u64;
    let mut notifying = Vec::new();
    for _ in 0..notifiers {
        let (word, events, kernel) = (word.clone(), events.clone(), kernel.clone());
        notifying.push(thread::spawn(move || {
            events.fetch_add(1, Ordering::Release);
            if notify(&word) {
                kernel.wake();
            }
        }));
    }
    let mut waiting = Vec::new();
    for _ in 0..waiters {
        let (word, events, kernel) = (word.clone(), events.clone(), kernel.clone());
        waiting.push(thread::spawn(move || wait(&word, &kernel, &events, total)));
    }
    for handle in notifying {
        handle.join().unwrap();
    }
    // No wake can come any more: a waiter still queued is lost. (loom's own deadlock
    // report would see it too, but aborts the test process instead of failing it.)
    kernel.expect_no_sleeper(waiters);
    for handle in waiting {
        handle.join().unwrap();
    }
    // Everyone left: one notify clears whatever flag a waiter left, and then the word
    // is quiet (a notify with nobody waiting makes no wake).
    futex::notify(&word);
    assert!(
        !futex::notify(&word),
        "a notify with nobody waiting would wake"
    );
}

/// Runs `body` under loom and prints how many executions it explored.
fn check(bound: usize, body: impl Fn() + Sync + Send + 'static) {
    let executions = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = executions.clone();
    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(bound);
    }
    builder.check(move || {
        counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        body()
    });
    println!(
        "loom explored {} executions (preemption bound {:?})",
        executions.load(std::sync::atomic::Ordering::Relaxed),
        builder.preemption_bound
    );
}

/// One notifier, one waiter: the store-buffering pair of the two fences.
#[test]
fn futex_one_notifier_one_waiter() {
    check(PREEMPTION_BOUND, || {
        scenario(1, 1, futex::notify, real_wait)
    });
}

/// Two notifiers and one waiter: a notifier can find the flag already cleared by the
/// other, and must rely on that one's wake.
#[test]
fn futex_two_notifiers_one_waiter() {
    check(PREEMPTION_BOUND, || {
        scenario(2, 1, futex::notify, real_wait)
    });
}

/// One notifier and two waiters: one clear and one wake serve both, and a waiter can
/// announce again on a flag the other set.
#[test]
fn futex_one_notifier_two_waiters() {
    check(PREEMPTION_BOUND, || {
        scenario(1, 2, futex::notify, real_wait)
    });
}

/// Canary: a notifier without the fence between its event and its load of the word.
#[test]
#[should_panic(expected = "lost wake-up")]
fn canary_futex_unfenced_notify() {
    check(PREEMPTION_BOUND, || {
        scenario(1, 1, futex_canaries::unfenced_notify, real_wait)
    });
}

/// Canary: a waiter without the fence between its announce and its check.
#[test]
#[should_panic(expected = "lost wake-up")]
fn canary_futex_unfenced_wait() {
    check(PREEMPTION_BOUND, || {
        scenario(1, 1, futex::notify, unfenced_wait)
    });
}
