//! The shared futex (docs/LAYOUT.md section 6): a waiter announces itself with a flag
//! in the futex word, and the next notify clears it.
//!
//! - A process killed while it sleeps in a wait leaves only the flag: one notify
//!   clears it with one `FUTEX_WAKE`, and every later notify with nobody waiting
//!   makes no system call. (With the count of waiters of layout version 1, the dead
//!   waiter's increment stayed forever and every notify made a system call.)
//! - No live waiter is lost: waiter threads with sleep slices long enough that a lost
//!   wake-up would stall them until their timeout must see every event (notifiers
//!   racing them, with and without pauses).
//! - A notify with nobody waiting makes no system call; a woken waiter leaves the flag
//!   clear; a waiter that gives up leaves one wake for the next notify.
//!
//! [`Futex::wake_calls`] counts this process's `FUTEX_WAKE` calls; the tests that
//! count take a lock so that they do not count each other's.
#![cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tensorlane_shm::header::Futex;
use tensorlane_shm::{
    segment, DType, LaneError, LaneName, Segment, StreamReader, StreamWriter, TensorSpec,
};

const CHILD_VAR: &str = "TENSORLANE_FUTEX_CHILD";
/// Timeout of the waits that must be woken.
const LOST: Duration = Duration::from_secs(10);
/// Longest a wait that a notify ends may take, on a loaded 2-core machine. Waits here
/// take under a millisecond; a lost wake-up takes the whole timeout.
const SLOW: Duration = Duration::from_secs(2);

static NEXT_LANE: AtomicU64 = AtomicU64::new(0);
static COUNTING: Mutex<()> = Mutex::new(());

/// Serialises the tests that count `FUTEX_WAKE` calls.
fn counting() -> MutexGuard<'static, ()> {
    COUNTING.lock().unwrap_or_else(|e| e.into_inner())
}

fn spec() -> TensorSpec {
    TensorSpec::new(DType::U64, &[4]).expect("valid tensor")
}

/// A lane name of this test, unlinked when dropped.
struct Lane(String);

impl Lane {
    fn new(tag: &str) -> Lane {
        let n = NEXT_LANE.fetch_add(1, Ordering::Relaxed);
        Lane(format!("futex-{tag}-{}-{n}", std::process::id()))
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        if let Ok(name) = LaneName::new(&self.0) {
            let _ = segment::unlink(&name);
        }
    }
}

/// The child process: opens the stream named by `TENSORLANE_FUTEX_CHILD`, takes the
/// current value, says `W`, and waits for a new one (it is killed while it sleeps).
#[test]
fn child_entry() {
    let Ok(lane) = std::env::var(CHILD_VAR) else {
        return;
    };
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes plain integers and only sets the signal
    // this process receives when the thread that spawned it exits.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
    let mut reader = StreamReader::open_expect(&lane, &spec()).unwrap();
    let mut out = [0u64; 4];
    reader
        .try_read_new(bytemuck::cast_slice_mut(&mut out))
        .expect("the parent wrote a value");
    println!("\nW");
    let result =
        reader.read_new_timeout(bytemuck::cast_slice_mut(&mut out), Duration::from_secs(60));
    println!("\nread_new_timeout returned {result:?}");
    std::process::exit(0);
}

/// Kills and reaps the child when dropped (also when the test fails).
struct Reaped(Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Whether some thread of `pid` sleeps in a futex wait, from `/proc`. `None` if the
/// kernel does not show wait channels to this process.
fn sleeps_in_futex(pid: u32) -> Option<bool> {
    let mut shown = false;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let Ok(wchan) = std::fs::read_to_string(task.path().join("wchan")) else {
            continue;
        };
        if wchan.contains("futex") {
            return Some(true);
        }
        shown |= !wchan.is_empty() && wchan != "0";
    }
    shown.then_some(false)
}

fn waiting(futex: &Futex) -> bool {
    futex.word.load(Ordering::Relaxed) & Futex::WAITING != 0
}

#[test]
fn a_waiter_killed_in_its_wait_costs_one_system_call() {
    let _counting = counting();
    let lane = Lane::new("killed");
    let mut writer = StreamWriter::create(&lane.0, &spec(), 2).unwrap();
    writer.write_elements(&[1u64; 4]).unwrap();
    let segment = Segment::open(&LaneName::new(&lane.0).unwrap()).unwrap();
    let futex = &segment.header().data;
    assert!(!waiting(futex), "nobody has waited yet");

    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env(CHILD_VAR, &lane.0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let pid = child.id();
    let child = Reaped(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.trim() == "W" {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(20))
        .expect("the child reports that it is about to wait");

    // The child announces itself (the flag) after its spin phase, then sleeps.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(
            Instant::now() < deadline,
            "the child did not go to sleep in its wait (flag {}, in futex {:?})",
            waiting(futex),
            sleeps_in_futex(pid)
        );
        if waiting(futex) {
            match sleeps_in_futex(pid) {
                Some(true) => break,
                Some(false) => {}
                // Wait channels hidden: the flag is up, give the sleep a moment.
                None => {
                    std::thread::sleep(Duration::from_millis(50));
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(child); // SIGKILL inside the wait, then reap.

    // The dead waiter's only trace: the flag.
    assert!(waiting(futex), "the flag of the killed waiter");
    let before = Futex::wake_calls();
    writer.write_elements(&[2u64; 4]).unwrap();
    assert_eq!(
        Futex::wake_calls(),
        before + 1,
        "the first notify after the kill wakes (nobody)"
    );
    assert!(!waiting(futex), "the first notify clears the flag");
    let cleared = futex.word.load(Ordering::Relaxed);
    for k in 3..1003u64 {
        writer.write_elements(&[k; 4]).unwrap();
    }
    assert_eq!(
        Futex::wake_calls(),
        before + 1,
        "1000 notifies with nobody waiting made system calls"
    );
    // A notify with nobody waiting is a fence and a load: the word is left alone.
    assert_eq!(
        futex.word.load(Ordering::Relaxed),
        cleared,
        "notifies with nobody waiting changed the word"
    );
}

#[test]
fn notify_with_nobody_waiting_makes_no_system_call() {
    let _counting = counting();
    let futex = Futex::default();
    let before = Futex::wake_calls();
    for _ in 0..1000 {
        futex.notify();
    }
    assert_eq!(Futex::wake_calls(), before);
    assert_eq!(
        futex.word.load(Ordering::Relaxed),
        0,
        "a notify with nobody waiting writes nothing"
    );
}

#[test]
fn a_waiter_that_gives_up_leaves_one_wake_for_the_next_notify() {
    let _counting = counting();
    let futex = Futex::default();
    let started = Instant::now();
    assert_eq!(
        futex.wait_until(Some(Duration::from_millis(20)), || None::<()>),
        None
    );
    assert!(started.elapsed() >= Duration::from_millis(20));
    assert!(waiting(&futex), "the waiter announced itself");
    let before = Futex::wake_calls();
    futex.notify();
    futex.notify();
    assert_eq!(Futex::wake_calls(), before + 1);
    assert!(!waiting(&futex));
}

#[test]
fn an_expired_wait_does_not_announce() {
    let _counting = counting();
    let futex = Futex::default();
    for timeout in [Duration::ZERO, Duration::from_nanos(1)] {
        assert_eq!(futex.wait_until(Some(timeout), || None::<()>), None);
        assert!(!waiting(&futex), "a wait of {timeout:?} announced itself");
    }
    // A reader polling with a zero timeout costs the writer no system call.
    let lane = Lane::new("poll");
    let mut writer = StreamWriter::create(&lane.0, &spec(), 2).unwrap();
    let mut reader = StreamReader::open(&lane.0).unwrap();
    let mut out = [0u8; 32];
    let before = Futex::wake_calls();
    for k in 0..100u64 {
        assert!(matches!(
            reader.read_new_timeout(&mut out, Duration::ZERO),
            Err(LaneError::Timeout)
        ));
        writer.write(&[k as u8; 32]).unwrap();
        reader.read_new_timeout(&mut out, Duration::ZERO).unwrap();
    }
    assert_eq!(Futex::wake_calls(), before);
}

#[test]
fn a_woken_waiter_leaves_the_flag_clear() {
    let _counting = counting();
    let futex = Arc::new(Futex::default());
    let event = Arc::new(AtomicBool::new(false));
    let waiter = {
        let (futex, event) = (futex.clone(), event.clone());
        std::thread::spawn(move || {
            futex.wait_until(Some(LOST), || event.load(Ordering::Acquire).then_some(()))
        })
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !waiting(&futex) {
        assert!(
            Instant::now() < deadline,
            "the waiter did not announce itself"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(20));
    let before = Futex::wake_calls();
    event.store(true, Ordering::Release);
    futex.notify();
    let t = Instant::now();
    assert_eq!(waiter.join().unwrap(), Some(()));
    assert!(t.elapsed() <= SLOW, "woken after {:?}", t.elapsed());
    assert_eq!(Futex::wake_calls(), before + 1);
    // The waiter re-checked before announcing again: nothing left for the next notify.
    assert!(!waiting(&futex));
    futex.notify();
    assert_eq!(Futex::wake_calls(), before + 1);
}

/// Splitmix64, to pick pauses.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[test]
fn every_notify_wakes_the_waiters_it_must() {
    // Rounds: the notifier of round k (two notifier threads take turns) pauses, makes
    // event k visible and notifies, then waits (without the futex under test) until
    // every waiter has seen event k. No other notify comes until then, so a waiter
    // that this notify fails to wake stalls until its timeout: a wait over `SLOW`
    // fails the test. The waiters sleep in slices of a minute, so the 100 ms slice
    // rescues nothing.
    const WAITERS: u64 = 3;
    const ROUNDS: u64 = 2000;
    let _counting = counting();
    let futex = Arc::new(Futex::default());
    let events = Arc::new(AtomicU64::new(0));
    let acks = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicBool::new(false));
    let before = Futex::wake_calls();
    let started = Instant::now();
    let waiters: Vec<_> = (0..WAITERS)
        .map(|w| {
            let (futex, events, acks, failed) =
                (futex.clone(), events.clone(), acks.clone(), failed.clone());
            std::thread::spawn(move || {
                Futex::set_thread_sleep_slice(Duration::from_secs(60));
                let mut slowest = Duration::ZERO;
                for k in 1..=ROUNDS {
                    let t = Instant::now();
                    let got = futex.wait_until(Some(LOST), || {
                        (events.load(Ordering::Acquire) >= k).then_some(())
                    });
                    let took = t.elapsed();
                    if got.is_none() || took > SLOW {
                        failed.store(true, Ordering::Relaxed);
                        panic!("waiter {w} waited {took:?} for event {k}: a lost wake-up");
                    }
                    slowest = slowest.max(took);
                    acks.fetch_add(1, Ordering::Release);
                }
                slowest
            })
        })
        .collect();
    let notifiers: Vec<_> = (0..2u64)
        .map(|n| {
            let (futex, events, acks, failed) =
                (futex.clone(), events.clone(), acks.clone(), failed.clone());
            std::thread::spawn(move || {
                let mut rng = 0x5eed ^ n;
                for k in (1..=ROUNDS).filter(|k| k % 2 == n) {
                    // Round k - 1 is acknowledged by everyone (the other notifier's).
                    while acks.load(Ordering::Acquire) < WAITERS * (k - 1) {
                        if failed.load(Ordering::Relaxed) {
                            return;
                        }
                        std::thread::yield_now();
                    }
                    // Let the waiters go to sleep, mostly.
                    match next(&mut rng) % 4 {
                        0 => {}
                        _ => std::thread::sleep(Duration::from_micros(next(&mut rng) % 300)),
                    }
                    // Release pairs with the waiters' Acquire load in their condition.
                    events.store(k, Ordering::Release);
                    futex.notify();
                }
            })
        })
        .collect();
    let slowest = waiters
        .into_iter()
        .map(|w| w.join())
        .collect::<Result<Vec<_>, _>>();
    for notifier in notifiers {
        notifier.join().unwrap();
    }
    let slowest = slowest
        .unwrap_or_else(|_| panic!("a waiter failed"))
        .into_iter()
        .max()
        .unwrap();
    let wakes = Futex::wake_calls() - before;
    assert!(wakes > 0, "no notify found a waiter");
    eprintln!(
        "{ROUNDS} rounds to {WAITERS} waiters in {:?}: {wakes} wake calls, slowest wait \
         {slowest:?}",
        started.elapsed()
    );
}

#[test]
fn no_live_waiter_is_lost_in_a_stream_of_events() {
    // Three waiters, two notifiers. Waiter `w` waits in turn for the event counts
    // w + 1, w + 1 + 3, ... so that it also sleeps through notifies that are not for
    // it. Each waiter thread sleeps in slices of a minute: a lost wake-up is not
    // rescued by the 100 ms slice, it stalls the waiter until its timeout, and a wait
    // over `SLOW` fails the test.
    const WAITERS: u64 = 3;
    const NOTIFIERS: u64 = 2;
    const EVENTS: u64 = 3000; // per notifier
    let _counting = counting();
    let futex = Arc::new(Futex::default());
    let events = Arc::new(AtomicU64::new(0));
    let before = Futex::wake_calls();
    let started = Instant::now();
    let waiters: Vec<_> = (0..WAITERS)
        .map(|w| {
            let (futex, events) = (futex.clone(), events.clone());
            std::thread::spawn(move || {
                Futex::set_thread_sleep_slice(Duration::from_secs(60));
                let mut slowest = Duration::ZERO;
                let mut target = w + 1;
                while target <= NOTIFIERS * EVENTS {
                    let t = Instant::now();
                    let got = futex.wait_until(Some(LOST), || {
                        (events.load(Ordering::Acquire) >= target).then_some(())
                    });
                    let took = t.elapsed();
                    assert!(
                        got.is_some() && took <= SLOW,
                        "waiter {w} waited {took:?} for event {target} ({} events): a lost \
                         wake-up",
                        events.load(Ordering::Acquire)
                    );
                    slowest = slowest.max(took);
                    target += WAITERS;
                }
                slowest
            })
        })
        .collect();
    let notifiers: Vec<_> = (0..NOTIFIERS)
        .map(|n| {
            let (futex, events) = (futex.clone(), events.clone());
            std::thread::spawn(move || {
                let mut rng = 0x5eed ^ n;
                for _ in 0..EVENTS {
                    match next(&mut rng) % 8 {
                        // Mostly a pause long enough for the waiters to sleep.
                        0..=3 => std::thread::sleep(Duration::from_micros(next(&mut rng) % 200)),
                        4 => std::thread::yield_now(),
                        _ => {}
                    }
                    // Release pairs with the waiters' Acquire load in their condition.
                    events.fetch_add(1, Ordering::Release);
                    futex.notify();
                }
            })
        })
        .collect();
    for notifier in notifiers {
        notifier.join().unwrap();
    }
    let slowest = waiters
        .into_iter()
        .map(|w| w.join().unwrap())
        .max()
        .unwrap();
    let wakes = Futex::wake_calls() - before;
    // The waiters slept (the test exercised the futex, not only the spin phase).
    assert!(wakes > 0, "no notify found a waiter");
    // Nobody waits any more: at most one stale flag, then no system calls.
    futex.notify();
    let after = Futex::wake_calls();
    for _ in 0..100 {
        futex.notify();
    }
    assert_eq!(Futex::wake_calls(), after);
    eprintln!(
        "{} events to {WAITERS} waiters in {:?}: {wakes} wake calls, slowest wait {slowest:?}",
        NOTIFIERS * EVENTS,
        started.elapsed()
    );
}

#[test]
fn a_lane_wait_still_reports_the_writer_gone() {
    // The 100 ms slice still rescues events nobody notifies: a writer that dies does
    // not notify, and `read_new_timeout` sees it gone within its timeout.
    let lane = Lane::new("gone");
    let mut writer = StreamWriter::create(&lane.0, &spec(), 2).unwrap();
    writer.write_elements(&[1u64; 4]).unwrap();
    let mut reader = StreamReader::open_expect(&lane.0, &spec()).unwrap();
    let mut out = [0u64; 4];
    reader
        .try_read_new(bytemuck::cast_slice_mut(&mut out))
        .unwrap();
    let waiter = std::thread::spawn(move || {
        let t = Instant::now();
        let result = reader.read_new_timeout(bytemuck::cast_slice_mut(&mut out), LOST);
        (result.map(|_| ()), t.elapsed())
    });
    std::thread::sleep(Duration::from_millis(50));
    drop(writer);
    let (result, took) = waiter.join().unwrap();
    assert!(matches!(result, Err(LaneError::WriterGone)), "{result:?}");
    assert!(took < Duration::from_secs(5), "noticed after {took:?}");
}
