/*
 * seqlock.pml -- N-slot seqlock register: one writer, two readers, writer crash
 * at any step, and takeover of the register by a second writer.
 *
 * Protocol (sequentially consistent abstraction; memory ordering is loom's job):
 *
 *   shared  published          sequence of the last complete write (0 = none)
 *           stamp[N]           2s+1 while write s is in progress, 2s when it is done
 *           w0[N], w1[N]       the payload, two words, each written separately
 *           owner              claim word: id of the process that owns the writer role
 *
 *   write s (s = 1, 2, ...) into slot s % N:
 *       stamp[slot] = 2s+1; w0[slot] = s; w1[slot] = s; stamp[slot] = 2s; published = s
 *
 *   read (at most ATTEMPTS attempts, then "stalled"):
 *       p = published; if p == 0 -> empty
 *       slot = p % N; s1 = stamp[slot]; if s1 != 2p -> retry
 *       v0 = w0[slot]; v1 = w1[slot]; s2 = stamp[slot]; if s2 != s1 -> retry
 *       return (p, v0, v1)
 *
 *   takeover: once the owner is dead, CAS owner: 1 -> 2, then continue writing
 *   from s = published + 1.  Both writers may stop forever (crash) before any
 *   of their steps.
 *
 * Properties (assertions; pan also checks that every run ends in a valid end
 * state: readers finish, writers finish or crash, the takeover may wait):
 *   (a) no torn read: a returned read has v0 == v1 == p;
 *   (b) per reader, results never go backwards (p non-decreasing; no "empty"
 *       after a value);
 *   (c) N >= 2: a "quiet" read -- it started while no writer was live (the
 *       owner has crashed or finished and no takeover writer runs), no writer
 *       became live since, and published > 0 -- never needs a retry: asserted at
 *       every failed attempt.  With N == 1 a quiet read can fail every attempt
 *       (the crash left the only slot odd); the reader then gives up after
 *       ATTEMPTS attempts and reports "stalled" (no torn value, no endless
 *       loop).  check.sh shows the stall is reachable with -DN=1
 *       -DCHECK_QUIET_READS, which must FAIL.
 *
 * Build-time knobs (spin -DNAME=value -a seqlock.pml):
 *   N         slots (default 2)
 *   MAXW      last sequence number written, by both writers together (default 4)
 *   READS     reads per reader (default 2)
 *   ATTEMPTS  attempts per read before "stalled" (default 3)
 *   NO_TAKEOVER          leave out the takeover writer
 *   CHECK_QUIET_READS    assert that a quiet read never ends "stalled" (with
 *                        N == 1 this FAILS: the stall is reachable)
 *   ZOMBIE               the takeover writer claims the register while the first
 *                        owner is only suspended, not dead (shows that takeover
 *                        needs a real death; expected to FAIL)
 * Canaries (each must make the check FAIL):
 *   CANARY_NO_SECOND_CHECK   reader returns without re-reading the stamp
 *   CANARY_EARLY_PUBLISH     writer stores `published` before the even stamp
 *   CANARY_TAKEOVER_REWRITE  takeover writer restarts at s = published (rewrites
 *                            the slot readers are reading) instead of published+1
 */

#ifndef N
#define N 2
#endif
#ifndef MAXW
#define MAXW 4
#endif
#ifndef READS
#define READS 2
#endif
#ifndef ATTEMPTS
#define ATTEMPTS 3
#endif

byte published;
byte stamp[N];
byte w0[N];
byte w1[N];
byte owner = 1;

/* ghost state, used only by assertions and by the takeover's failure detector */
bool live1 = true;   /* writer 1 is running */
bool live2;          /* the takeover writer is running */
bool dead1;          /* writer 1 crashed (stopped forever, mid-protocol or between writes) */
byte wgen;           /* bumped whenever a writer becomes live (takeover claim) */

/* A writer may stop forever (crash) before any of its steps. */
#define CRASH  if :: atomic { live = false; crashed = true }; goto stop :: true fi

inline write_loop(s, slot, live, crashed)
{
	do
	:: s > MAXW -> break
	:: else ->
		slot = s % N;
		CRASH;
		stamp[slot] = 2*s + 1;
		CRASH;
		w0[slot] = s;
		CRASH;
		w1[slot] = s;
#ifdef CANARY_EARLY_PUBLISH
		CRASH;
		published = s;
		CRASH;
		stamp[slot] = 2*s;
#else
		CRASH;
		stamp[slot] = 2*s;
		CRASH;
		published = s;
#endif
		s++
	od;
	live = false
}

active proctype Writer()
{
	byte s = 1, slot;
	bool crashed;
	write_loop(s, slot, live1, crashed);
stop:
	/* dead1 is what the takeover's failure detector sees */
	dead1 = crashed
}

#ifndef NO_TAKEOVER
active proctype Takeover()
{
	byte s, slot;
	bool crashed;
	/* Failure detection is abstracted: the claim is attempted once the owner is
	 * known dead.  The claim itself is a CAS on the claim word. */
end_wait:
	atomic {
#ifdef ZOMBIE
		owner == 1 ->
#else
		dead1 && owner == 1 ->
#endif
		owner = 2; live2 = true; wgen++
	};
	atomic {
#ifdef CANARY_TAKEOVER_REWRITE
		s = published;
		if :: s == 0 -> s = 1 :: else fi
#else
		s = published + 1
#endif
	};
	write_loop(s, slot, live2, crashed);
stop:
	skip
}
#endif

/* (c): the read started while no writer was live, none became live since,
 * and something is published */
#define QUIET (quiet && !live1 && !live2 && g == wgen && published > 0)
#if N >= 2
/* (c) with N >= 2 a quiet read never even needs a retry */
#define RETRY_CHECK assert(!QUIET)
#else
#define RETRY_CHECK skip
#endif

active [2] proctype Reader()
{
	byte n, att, p, v0, v1, last;
	bool quiet;   /* ghost: no writer was live when this read started */
	byte g;       /* ghost: wgen when this read started */

	do
	:: n == READS -> break
	:: else ->
		do
		:: att == ATTEMPTS ->
			/* stalled: give up this read */
#ifdef CHECK_QUIET_READS
			/* with N == 1 this fails: a quiet read can stall */
			assert(!QUIET);
#endif
			break
		:: else ->
			atomic {
				if
				:: att == 0 -> quiet = !live1 && !live2; g = wgen  /* ghost snapshot */
				:: else
				fi;
				p = published;
				if
				:: p == 0 ->
					/* empty: only legal before any value was returned (b) */
					assert(last == 0);
					break
				:: else
				fi
			};
			/* s1 = stamp[slot]; retry unless s1 == 2p */
			atomic {
				if
				:: stamp[p % N] != 2*p -> RETRY_CHECK; att++; goto next
				:: else
				fi
			};
			v0 = w0[p % N];
			v1 = w1[p % N];
#ifndef CANARY_NO_SECOND_CHECK
			/* s2 = stamp[slot]; retry unless s2 == s1 (== 2p) */
			atomic {
				if
				:: stamp[p % N] != 2*p -> RETRY_CHECK; att++; v0 = 0; v1 = 0; goto next
				:: else
				fi
			};
#endif
			d_step {
				assert(v0 == p && v1 == p);   /* (a) not torn */
				assert(p >= last);            /* (b) never backwards */
				last = p;
				v0 = 0; v1 = 0
			};
			break;
next:
			skip
		od;
		atomic { n++; p = 0; att = 0; quiet = false; g = 0 }
	od
}
