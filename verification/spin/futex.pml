/*
 * futex.pml -- the shared futex of docs/LAYOUT.md section 6 (shm/src/futex.rs):
 * waiters announce themselves with a flag in the futex word, notifiers clear it and
 * wake; a waiter may be killed at any step.
 *
 * Protocol (sequentially consistent abstraction; every access below is one atomic
 * read-modify-write of the word, or a load of the lane's state):
 *
 *   shared  word       bit 0: a waiter may be asleep on the current value (the flag);
 *                      bits 1..7: a count, +2 per clear (no wrap within the bounds)
 *           events     the lane's state: how many events are visible
 *   kernel  queued[i]  waiter i sleeps in FUTEX_WAIT on the word
 *
 *   notify (after its event is visible: events++; layout version 3):
 *       old = word; if old & 1: clear-and-bump (one CAS, only while the flag is set:
 *       word = (word & ~1) + 2), then, if this notifier cleared, FUTEX_WAKE
 *   (the SeqCst fences that order "events++" before the load and the waiter's
 *   announce before its check are implicit in sequentially consistent interleavings;
 *   verification/tests/loom_futex.rs checks that they are needed and enough)
 *   wait until events >= target:
 *       check once (the spin phase); loop:
 *         seen = fetch_or(word, 1) | 1; check; FUTEX_WAIT(word, seen); check
 *
 *   FUTEX_WAIT(word, seen) compares and queues in one step (the kernel's guarantee:
 *   under the hash-bucket lock); FUTEX_WAKE dequeues every sleeper. There are no
 *   timeouts: the 100 ms sleep slices of the implementation are left out, so a lost
 *   wake-up leaves a live waiter asleep forever, which pan reports as an invalid end
 *   state.
 *
 * Processes: NOTIFIERS notifiers with EVENTS events each; WAITERS live waiters, each
 * waiting in turn for events 1, 2, ..., TOTAL (so they also sleep through notifies
 * meant for others); one mortal waiter that waits for event 1 and may be killed
 * right after it announces itself or while it sleeps (the kernel then forgets it).
 * Those are the only places where a killed waiter leaves anything behind: killed
 * elsewhere, it is a waiter that never came or one that already left. Once everyone
 * has finished or died, a last notify runs with nobody waiting.
 *
 * Properties:
 *   (a) no live waiter is lost: every live waiter sees every event (invalid end
 *       state otherwise);
 *   (b) dead waiters cost at most one system call: after the last notify the flag
 *       is clear, so every later notify with nobody waiting makes no system call.
 *
 * Build-time knobs (spin -DNAME=value -a futex.pml):
 *   NOTIFIERS (2), EVENTS (1 per notifier), WAITERS (2 live; plus one mortal)
 *   WITNESS_SLEEP   asserts that no waiter ever sleeps: must FAIL (waiters do sleep)
 *   WITNESS_STALE   asserts that the flag is clear before the last notify: must FAIL
 *                   (a killed or departed waiter does leave it set)
 * Canaries (each must make the check FAIL):
 *   CANARY_NO_CLEAR      notify wakes but never clears the flag: (b) fails, every
 *                        notify makes a system call forever
 *   CANARY_WAKE_FIRST    notify wakes, then clears: a waiter announcing between the
 *                        two sleeps on a value the clear changes, and is lost (a)
 *   CANARY_NO_BUMP       notify clears without bumping the count: a waiter on its way
 *                        into FUTEX_WAIT sleeps on the value a later announce set
 *                        again (the same value it saw), with nobody to wake it (a)
 *   CANARY_NO_RECHECK    the waiter checks, announces and sleeps without checking
 *                        again: an event between the check and the announce is lost
 * The protocol of layout version 1 (a count of waiters, -DCOUNT), for comparison:
 *   COUNT               waiters increment a count before loading the word, decrement
 *                       it after; notify wakes if the count is non-zero. With the
 *                       mortal waiter the count stays above zero: (b) fails (witness)
 *   COUNT -DRESET       as COUNT, and a notify whose FUTEX_WAKE woke nobody resets
 *                       the count (CAS from the value it read to 0; decrements stop
 *                       at 0): a live waiter is lost (a) (witness: why the flag)
 */

#ifndef NOTIFIERS
#define NOTIFIERS 2
#endif
#ifndef EVENTS
#define EVENTS 1
#endif
#ifndef WAITERS
#define WAITERS 2
#endif
#define TOTAL (NOTIFIERS * EVENTS)
#define MORTAL WAITERS /* index of the mortal waiter */

byte word = 0;
byte events = 0;
bool queued[WAITERS + 1];
#ifdef COUNT
byte count = 0;
#endif

/* ghosts */
byte finished = 0;  /* processes that ended normally */
byte dead = 0;      /* waiters killed */

/* FUTEX_WAKE(word, INT_MAX): wakes every sleeper; n = how many. */
inline futex_wake(n) {
	d_step {
		n = 0;
		i = 0;
		do
		:: i <= WAITERS ->
			if
			:: queued[i] -> n++; queued[i] = false
			:: else
			fi;
			i++
		:: else -> break
		od
	}
}

/* notify, after the event is visible */
inline notify() {
#ifdef COUNT
	word = word + 2;
	c = count;
	if
	:: c != 0 ->
		futex_wake(n);
#ifdef RESET
		/* woke nobody: the count is presumed stale; reset it if unchanged */
		atomic { if :: n == 0 && count == c -> count = 0 :: else fi }
#endif
	:: else
	fi
#else
	/* version 3: load (after a SeqCst fence, which SC interleavings give for free);
	 * only with the flag: clear-and-bump in one compare-and-swap, then wake */
	old = word;
	if
	:: old & 1 ->
#if defined(CANARY_NO_CLEAR)
		futex_wake(n)
#elif defined(CANARY_WAKE_FIRST)
		futex_wake(n);
		d_step { if :: word & 1 -> word = (word & 254) + 2 :: else fi }
#elif defined(CANARY_NO_BUMP)
		atomic { if :: word & 1 -> word = word & 254; cleared = true :: else -> cleared = false fi };
		if :: cleared -> futex_wake(n) :: else fi
#else
		atomic { if :: word & 1 -> word = (word & 254) + 2; cleared = true :: else -> cleared = false fi };
		if :: cleared -> futex_wake(n) :: else fi
#endif
	:: else
	fi
#endif
}

proctype Notifier() {
	byte k = 0, old, n, i, c;
	bool cleared;
	do
	:: k < EVENTS ->
		events++;
		notify();
		k++
	:: else -> break
	od;
	finished++
}

/* A waiter may be killed here (the mortal one only). */
#define MAYBE_DIE if :: mortal -> goto killed :: true fi

proctype Waiter(byte me; bool mortal; byte last) {
	byte target = 1, seen;
	do
	:: target > last -> break
	:: else ->
		/* the spin phase: one check (more on unchanged state change nothing) */
		if
		:: events >= target -> goto got
		:: else
		fi;
again:
		skip; /* (a label may not start a d_step) */
#ifdef COUNT
		count++;
		MAYBE_DIE;
		seen = word;
#else
#ifdef CANARY_NO_RECHECK
		/* check first, then announce and sleep without another check */
		if
		:: events >= target -> goto got
		:: else
		fi;
#endif
		d_step { seen = word | 1; word = word | 1 };
		MAYBE_DIE;
#endif
#ifndef CANARY_NO_RECHECK
		if
		:: events >= target ->
#ifdef COUNT
			atomic { if :: count > 0 -> count-- :: else fi };
#endif
			goto got
		:: else
		fi;
#endif
		/* FUTEX_WAIT(word, seen): compare and queue in one step */
		atomic {
			if
			:: word == seen -> queued[me] = true
			:: else
			fi
		};
#ifdef WITNESS_SLEEP
		assert(!queued[me]);
#endif
		/* asleep until a FUTEX_WAKE (or killed while asleep) */
		if
		:: !queued[me]
		:: mortal -> queued[me] = false; goto killed
		fi;
#ifdef COUNT
		atomic { if :: count > 0 -> count-- :: else fi };
#endif
		if
		:: events >= target -> goto got
		:: else -> goto again
		fi;
got:
		target++
	od;
	finished++;
	goto end;
killed:
	dead++;
end:
	skip
}

init {
	byte k, old, n, i, c;
	bool cleared;
	atomic {
		k = 0;
		do
		:: k < NOTIFIERS -> run Notifier(); k++
		:: else -> break
		od;
		k = 0;
		do
		:: k < WAITERS -> run Waiter(k, false, TOTAL); k++
		:: else -> break
		od;
		run Waiter(MORTAL, true, 1)
	};
	/* everyone finished or died (a lost waiter never finishes: invalid end state) */
	(finished + dead == NOTIFIERS + WAITERS + 1);
#ifdef WITNESS_STALE
#ifdef COUNT
	assert(count == 0);
#else
	assert((word & 1) == 0);
#endif
#endif
	/* the last notify, with nobody waiting */
	events++;
	notify();
#ifdef COUNT
#ifndef RESET
	/* version 1: a killed waiter's increment stays, every notify wakes */
	assert(count == 0);
#endif
#else
	/* (b): nothing left for a later notify to do */
	assert((word & 1) == 0);
#endif
}
