/*
 * broadcast.pml -- broadcast ring: one producer, a table of NSUB subscriber
 * entries (lossless or lossy), joins that race the producer, leave, eviction.
 *
 * Protocol (sequentially consistent abstraction; memory ordering is loom's job):
 *
 *   shared   tail                 next position to publish (positions 0, 1, 2, ...)
 *            epoch                join counter
 *            stamp[CAP]           2p+1 while position p is written, 2p+2 when done
 *            pay[CAP]             payload word = p
 *   entry i  st[i]                FREE, JOINING, ACTIVE, EVICTED
 *            md[i]                LOSSLESS or LOSSY
 *            hd[i]                subscriber head (next position it reads)
 *
 *   publish P = tail (producer):
 *     [1] e = epoch;
 *         if e != last_epoch || (cached_min != NONE && P - cached_min >= CAP):
 *             last_epoch = e; cached_min = min hd[i] over ACTIVE LOSSLESS entries
 *         if cached_min != NONE && P - cached_min >= CAP: Full, retry later
 *     [2] stamp[P%CAP] = 2P+1; pay[P%CAP] = P; stamp[P%CAP] = 2P+2; tail = P+1
 *
 *   join (subscriber, entry i): CAS st[i] FREE -> JOINING;
 *         h0 = max(tail - history, 0); hd[i] = h0; md[i] = m; st[i] = ACTIVE;
 *         epoch++; (fence) t = tail; if t - h0 >= CAP: hd[i] = t - CAP + 1
 *   lossless receive: if st[i] != ACTIVE -> evicted; if head == tail -> empty;
 *         s1 = stamp[head%CAP] (must be 2head+2 unless evicted); read payload;
 *         s2 = stamp (must equal s1); head++
 *   lossy receive: t = tail; if head == t -> empty;
 *         if t - head > MAXLAG: missed += t - MAXLAG - head; head = t - MAXLAG
 *         s1 = stamp[head%CAP]; if s1 == 2head+2: read payload, s2 = stamp,
 *         deliver when s2 == s1.  Otherwise (s1 or s2 differs): odd = a newer
 *         position is being written there: wait for the stamp to change and
 *         retry; even and newer = overwritten: reload tail, missed +=
 *         tail-1-head, head = tail-1, retry.
 *   leave: st[i] = FREE.   evict (supervisor): CAS st[i] ACTIVE -> EVICTED.
 *
 * Modelling choices:
 *   - A retry loop that would re-read unchanged shared state is modelled as a
 *     blocking wait for that state to change (the retry then re-runs the real
 *     code).  This is exact: re-running on unchanged state gives the same
 *     answer.  Full: wait until epoch or an entry's (st, md, hd) differs from
 *     what the scan read.  Empty: wait until tail changes (or the entry is no
 *     longer ACTIVE).  Lossy odd stamp: wait until the stamp changes.
 *   - Subscriber i always uses entry i; it joins up to JOINSi times (rejoining
 *     after a leave, after the end of the stream or after being evicted),
 *     choosing the mode (unless MODEi fixes it) and the history (0 or 1)
 *     nondeterministically at each join.  After each delivery a lossless
 *     subscriber may die (stop forever with its entry left ACTIVE: the slow or
 *     crashed subscriber), leave, or go on; a lossy one may leave or go on.
 *   - The supervisor evicts any ACTIVE entry at any time, at most EVICTIONS
 *     times in all.
 *   - epoch++ is an atomic read-modify-write (fetch_add).
 *   - Positions do not wrap (NPUB is small); stamps are plain bytes.
 *   - The end-of-stream checks read the ghost `pdone` together with tail; the
 *     real code has no such flag.
 *
 * Properties:
 *   (a) lossless, not evicted: every stamp/payload check passes (no
 *       overwritten or torn slot), delivered positions are join head, join
 *       head + 1, ... with payload == position, and a subscriber that reaches
 *       the end of the stream (producer done, head == tail) has received every
 *       position from its join head on, exactly once.  The join head is within
 *       the ring when the join completes (t - CAP < head <= t).  A failed check
 *       is allowed only if the entry was evicted during this join session.
 *   (b) lossy: delivered positions strictly increase, payload == position,
 *       and delivered + missed == head - join head at all times (every
 *       position covered is either delivered or counted as missed).
 *   (c) progress: when the system is stuck (spin `timeout`) and the producer
 *       waits on Full, some ACTIVE LOSSLESS entry really lags by CAP (the
 *       watchdog asserts this).  A producer held back by a live, non-evicted
 *       lossless subscriber that stopped consuming is a valid end state: that
 *       is lossless backpressure, and eviction is the remedy (the model lets
 *       the supervisor evict it, after which the producer must make progress).
 *       A producer stuck behind an evicted, lossy, left or caught-up entry is
 *       an error.  Every other blocked state is an invalid end state (pan's
 *       default check): only the labelled waits below may end a run.
 *
 * Build-time knobs: CAP (2), NPUB (positions published, 4), JOINS0/JOINS1
 * (joins per subscriber, 1), MODE0/MODE1 (LOSSLESS, LOSSY or ANYMODE),
 * EVICTIONS (1), MAXLAG (lossy lag bound, CAP), STEADY (no die/leave).
 *
 * PUBLISHER_EVICTS: the topic lane's eviction of dead subscribers (LAYOUT.md
 * section 13).  Each entry has a role lock (lock[i]) and a generation (gen[i],
 * part of the state word: every CAS and load of the state covers both).  A
 * subscriber takes its entry's lock, reclaims the entry (holding the lock, any
 * occupant is dead: load, then CAS to FREE), joins with the next generation,
 * and leaves with a generation-guarded CAS before releasing the lock.  Dying
 * (after a lossless delivery) releases the lock, as the kernel does; the dead
 * subscriber's slot may then be taken by a new process (the next join of Sub
 * i: JOINSi counts processes too).  The producer, on Full(b), checks b's lock:
 * held -> wait until something changes (the lock included); free -> evict the
 * state word its scan saw for entry b (CAS ACTIVE(g) -> EVICTED(g), g the
 * scanned generation), free it (CAS EVICTED(g) -> FREE(g)) and publish again.
 * Property (d): every eviction or reclaim the producer performs hits a session
 * whose owner is dead (live[b], the generation of the entry's live session,
 * differs); the watchdog asserts the producer never ends blocked on Full (a
 * dead lossless subscriber is always evicted; a live one always consumes).
 *   CANARY_EVICT_REREAD      the producer evicts and reclaims by re-reading the
 *                            state (load, then CAS against what it loaded), as
 *                            LAYOUT.md section 13 said before: a subscriber that
 *                            took the lock, reclaimed and joined between the
 *                            liveness check and the eviction is evicted live
 * Canaries (each must make the check FAIL):
 *   CANARY_NO_EPOCH_BUMP     join does not increment epoch
 *   CANARY_NO_EPOCH_CHECK    producer does not compare epoch (rescans only on lag)
 *   CANARY_NO_RECHECK        join skips the post-epoch tail re-check
 *   CANARY_STALE_MIN         producer rescans only on epoch change, so an evicted
 *                            or departed subscriber keeps it Full forever
 *   CANARY_EPOCH_LOAD_STORE  epoch bumped with a plain load + store instead of
 *                            fetch_add (needs rejoins: JOINS0=JOINS1=2)
 * Witnesses (must FAIL, they show that a case is reachable):
 *   WITNESS_BACKPRESSURE     the watchdog asserts the producer is never stuck on
 *                            Full: fails, because a dead lossless subscriber
 *                            that is not evicted does hold it back
 *   PRODUCER_CRASH           the producer may stop forever before any step of
 *                            [2].  Fails with an invalid end state: a lossy
 *                            subscriber whose slot holds an odd stamp (a newer
 *                            position, half written) waits for that stamp to
 *                            change, forever, although tail-1 is complete
 * Variant:
 *   LOSSY_ODD_JUMP           lossy receive treats an odd stamp newer than
 *                            2head+2 like an overwrite (jump to tail-1) instead
 *                            of waiting; with PRODUCER_CRASH this passes
 */

#ifndef CAP
#define CAP 2
#endif
#ifndef NPUB
#define NPUB 4
#endif
#ifndef JOINS0
#define JOINS0 1
#endif
#ifndef JOINS1
#define JOINS1 1
#endif
#ifndef EVICTIONS
#define EVICTIONS 1
#endif
#ifndef MAXLAG
#define MAXLAG CAP
#endif
/* mode of subscriber i: LOSSLESS, LOSSY, or ANYMODE (chosen at each join) */
#ifndef MODE0
#define MODE0 ANYMODE
#endif
#ifndef MODE1
#define MODE1 ANYMODE
#endif
#define NSUB 2

#define FREE     0
#define JOINING  1
#define ACTIVE   2
#define EVICTED  3
#define LOSSLESS 0
#define LOSSY    1
#define ANYMODE  2
#define NONE     255

byte tail, epoch;
byte stamp[CAP];
byte pay[CAP];
byte st[NSUB];
byte md[NSUB];
byte hd[NSUB];

#ifdef PUBLISHER_EVICTS
byte gen[NSUB];          /* generation bits of the state word */
bool lock[NSUB];         /* role lock of entry i held by a live process */
/* ghost: generation of entry i's session whose owner is alive (0: none) */
byte live[NSUB];
#define GEN_IS(i, g)  (gen[i] == g)
#else
#define GEN_IS(i, g)  true
#endif

/* ghost state */
bool pdone;              /* producer has published all NPUB positions */
bool pfull;              /* producer is waiting on Full */
bool evicted[NSUB];      /* entry i was evicted during its current join session */

/* ---------------------------------------------------------------- producer */

/* scan one entry, recording what was read (s, m, h) for the Full wait;
 * mn is the running minimum over ACTIVE LOSSLESS heads */
#define SCAN(i, s, g, m, h, done) \
	atomic { \
		s = st[i]; \
		g = GEN_OF(i); \
		if \
		:: s == ACTIVE \
		:: else -> m = 0; h = 0; goto done \
		fi \
	}; \
	atomic { \
		m = md[i]; \
		if \
		:: m == LOSSLESS \
		:: else -> h = 0; goto done \
		fi \
	}; \
	d_step { \
		h = hd[i]; \
		if :: mn == NONE || h < mn -> mn = h; SET_BI(i) :: else fi \
	}; \
done:

#ifdef PUBLISHER_EVICTS
#define GEN_OF(i) gen[i]
#define SET_BI(i) bi = i
#else
#define GEN_OF(i) 0
#define SET_BI(i) skip
#endif

/* something the scan read has changed (or the epoch has) */
#define CHANGED(i, s, g, m, h) \
	(st[i] != s || GEN_OF(i) != g || \
	 (s == ACTIVE && (md[i] != m || (m == LOSSLESS && hd[i] != h))))

/* PRODUCER_CRASH: the producer may stop forever before any step of [2] */
#ifdef PRODUCER_CRASH
#define PSTEP(stmt) if :: goto crashed :: stmt fi
#else
#define PSTEP(stmt) stmt
#endif

active proctype Producer()
{
	byte P, e, last_e = NONE, cmin = NONE, mn, bi;
	byte s0, g0, m0, h0, s1, g1, m1, h1;   /* what the last scan read */
#ifdef PUBLISHER_EVICTS
	byte bg, es, eg;   /* scanned generation of the blocker; what evict loaded */
#endif

	do
	:: P == NPUB -> break
	:: else ->
again:
		/* [1] */
		e = epoch;
		if
#if defined(CANARY_NO_EPOCH_CHECK)
		:: cmin != NONE && P - cmin >= CAP ->
#elif defined(CANARY_STALE_MIN)
		:: e != last_e ->
#else
		:: e != last_e || (cmin != NONE && P - cmin >= CAP) ->
#endif
			last_e = e;
			mn = NONE;
			SCAN(0, s0, g0, m0, h0, scanned0)
			SCAN(1, s1, g1, m1, h1, scanned1)
			atomic { cmin = mn; mn = 0 }
		:: else
		fi;
		if
		:: atomic { cmin != NONE && P - cmin >= CAP -> pfull = true } ->
#ifdef PUBLISHER_EVICTS
			/* Full(bi): is the blocker's owner alive (F_OFD_GETLK on its lock)? */
			if
			:: atomic {
				!lock[bi] ->
				if :: bi == 0 -> bg = g0 :: else -> bg = g1 fi
			   } ->
				/* no live holder: evict and free the entry */
#ifdef CANARY_EVICT_REREAD
				/* evict(bi): load the state, CAS against what was loaded */
				atomic { es = st[bi]; eg = gen[bi] };
				atomic {
					if
					:: es == ACTIVE && st[bi] == es && gen[bi] == eg ->
						assert(live[bi] != eg);   /* (d) */
						st[bi] = EVICTED; evicted[bi] = true
					:: else
					fi
				};
				/* reclaim(bi): the same, from JOINING, ACTIVE or EVICTED */
				atomic { es = st[bi]; eg = gen[bi] };
				atomic {
					if
					:: es != FREE && st[bi] == es && gen[bi] == eg ->
						assert(live[bi] != eg);   /* (d) */
						st[bi] = FREE
					:: else
					fi
				};
#else
				/* evict_blocker: CAS against the state word the scan saw */
				atomic {
					eg = bg;
					if
					:: st[bi] == ACTIVE && gen[bi] == eg ->
						assert(live[bi] != eg);   /* (d) */
						st[bi] = EVICTED; evicted[bi] = true
					:: else
					fi
				};
				atomic {
					if
					:: st[bi] == EVICTED && gen[bi] == eg ->
						assert(live[bi] != eg);   /* (d) */
						st[bi] = FREE
					:: else
					fi
				};
#endif
				/* publish again at once, with a fresh scan */
				atomic { pfull = false; last_e = NONE; es = 0; eg = 0; bg = 0 };
				goto again
			:: else ->
				/* a live holder: wait until something the scan read (or the
				 * lock) has changed */
end_full_live:
				atomic {
					epoch != e || CHANGED(0, s0, g0, m0, h0) ||
					CHANGED(1, s1, g1, m1, h1) || !lock[bi] ->
					pfull = false
				};
				goto again
			fi
#else
			/* Full: retry once something the scan read has changed */
end_full:
			atomic {
				epoch != e || CHANGED(0, s0, g0, m0, h0) || CHANGED(1, s1, g1, m1, h1) ->
				pfull = false
			};
			goto again
#endif
		:: else
		fi;
		/* [2] */
		PSTEP(stamp[P % CAP] = 2*P + 1);
		PSTEP(pay[P % CAP] = P);
		PSTEP(stamp[P % CAP] = 2*P + 2);
		PSTEP(atomic { tail = P + 1; P++; s0 = 0; g0 = 0; m0 = 0; h0 = 0; s1 = 0; g1 = 0; m1 = 0; h1 = 0; bi = 0 })
	od;
	pdone = true
#ifdef PRODUCER_CRASH
	;
crashed:
	skip
#endif
}

/* -------------------------------------------------------------- subscriber */

/* After each delivery a lossless subscriber goes on, dies (stops forever with
 * its entry left ACTIVE: the slow or crashed subscriber) or leaves; a lossy one
 * goes on or leaves (a dead lossy subscriber constrains nobody). */
#ifdef STEADY
#define AFTER_LOSSLESS  skip
#define AFTER_LOSSY     skip
#else
#ifdef PUBLISHER_EVICTS
#define AFTER_LOSSLESS  if :: true :: goto died :: goto leave fi
#else
#define AFTER_LOSSLESS  if :: true :: goto out :: goto leave fi
#endif
#define AFTER_LOSSY     if :: true :: goto leave fi
#endif

#define MAY_LOSSLESS  (i == 0 && MODE0 != LOSSY || i == 1 && MODE1 != LOSSY)
#define MAY_LOSSY     (i == 0 && MODE0 != LOSSLESS || i == 1 && MODE1 != LOSSLESS)

/* the subscriber's own session is ACTIVE (state and generation) */
#define MINE  (st[i] == ACTIVE && GEN_IS(i, mygen))

proctype Sub(byte i)
{
	byte joins, t, h, jh, m, s1, v, lastp, delivered, missed, mygen;

join:
#ifdef PUBLISHER_EVICTS
	/* take the entry's role lock; holding it, any occupant is dead: reclaim */
	atomic { !lock[i] -> lock[i] = true };
reclaim:
	atomic { s1 = st[i]; t = gen[i] };
	if
	:: s1 == FREE -> skip
	:: else ->
		atomic {
			if
			:: st[i] == s1 && gen[i] == t -> st[i] = FREE
			:: else -> goto reclaim
			fi
		}
	fi;
	atomic { s1 = 0; t = 0 };
#endif
	/* CAS FREE -> JOINING, a fresh join session; choose the mode */
	atomic {
		st[i] == FREE -> st[i] = JOINING; evicted[i] = false; joins++;
#ifdef PUBLISHER_EVICTS
		gen[i]++; mygen = gen[i]; live[i] = mygen;
#endif
		if
		:: MAY_LOSSLESS -> m = LOSSLESS
		:: MAY_LOSSY -> m = LOSSY
		fi
	};
	/* h0 = tail - history, clamped at 0 (history 0 or 1) */
	atomic {
		h = tail;
		if
		:: h > 0 -> h--
		:: true
		fi
	};
	hd[i] = h;
	md[i] = m;
	st[i] = ACTIVE;
#if defined(CANARY_NO_EPOCH_BUMP)
	skip;
#elif defined(CANARY_EPOCH_LOAD_STORE)
	/* epoch bumped with a plain load and store instead of fetch_add */
	t = epoch;
	atomic { epoch = t + 1; t = 0 };
#else
	epoch++;     /* fetch_add */
#endif
#ifndef CANARY_NO_RECHECK
	/* (fence) t = tail: the producer may already be writing over h0 */
	atomic {
		t = tail;
		if
		:: t - h >= CAP -> h = t - CAP + 1; jh = 1   /* jh: "store hd" */
		:: else -> jh = 0
		fi
	};
	if
	:: atomic { jh == 1 -> hd[i] = h }   /* lost history */
	:: else
	fi;
#endif
	atomic {
#ifndef CANARY_NO_RECHECK
		assert(h <= t && t - h < CAP);   /* join head inside the ring */
#endif
		jh = h; lastp = NONE; delivered = 0; missed = 0; t = 0;
		if
		:: m == LOSSLESS -> goto lossless
		:: else -> goto lossy
		fi
	};

	/* ------------------------------------------------------------ lossless */
lossless:
	do
	:: !MINE -> goto gone                           /* evicted */
	:: else ->
		if
		:: atomic { h == tail && pdone } ->
			/* (a) end of stream: every position from the join head on */
			assert(evicted[i] || delivered == NPUB - jh);
			goto leave
		:: h == tail && !pdone ->                 /* empty: retry later */
end_empty_ll:
			(h != tail || pdone || !MINE)
		:: h != tail ->
			atomic {
				s1 = stamp[h % CAP];
				if
				:: s1 != 2*h + 2 ->
					assert(evicted[i]);           /* (a) not overwritten */
					goto gone
				:: else
				fi
			};
			v = pay[h % CAP];
			atomic {
				if
				:: stamp[h % CAP] != s1 ->
					assert(evicted[i]);           /* (a) not overwritten while read */
					goto gone
				:: else
				fi;
				assert(v == h);                   /* (a) the value of this position */
				delivered++;
				h++;
				s1 = 0; v = 0
			};
			hd[i] = h;
			AFTER_LOSSLESS
		fi
	od;

	/* --------------------------------------------------------------- lossy */
lossy:
	do
	:: !MINE -> goto gone
	:: else ->
		atomic {
			t = tail;
			if
			:: h == t && pdone -> t = 0; goto lossy_end
			:: h == t && !pdone -> t = 0; goto lossy_empty
			:: t - h > MAXLAG ->
				missed = missed + t - MAXLAG - h;
				h = t - MAXLAG;
				t = 1     /* t: "store hd" */
			:: else -> t = 0
			fi
		};
		if
		:: atomic { t == 1 -> hd[i] = h; t = 0 }
		:: else
		fi;
		atomic {
			s1 = stamp[h % CAP];
			if
			:: s1 != 2*h + 2 -> goto lossy_miss
			:: else
			fi
		};
		v = pay[h % CAP];
		atomic {
			if
			:: stamp[h % CAP] != s1 -> s1 = stamp[h % CAP]; v = 0; goto lossy_miss
			:: else
			fi;
			/* deliver */
			assert(v == h);                       /* (b) the value of this position */
			assert(lastp == NONE || h > lastp);   /* (b) strictly increasing */
			lastp = h;
			delivered++;
			h++;
			assert(delivered + missed == h - jh);   /* (b) accounting */
			s1 = 0; v = 0
		};
		hd[i] = h;
		AFTER_LOSSY
	od;
lossy_miss:
	/* the slot no longer holds position h (SC: its stamp can only be newer) */
	assert(s1 > 2*h + 2);
	if
#ifndef LOSSY_ODD_JUMP
	:: s1 % 2 == 1 ->
		/* a newer position is being written there: retry when it lands */
		stamp[h % CAP] != s1;
		s1 = 0
#endif
	:: else ->
		/* overwritten by a newer position (LOSSY_ODD_JUMP: or being
		 * overwritten): jump to the newest */
		atomic {
			t = tail;
			assert(t - 1 > h);
			missed = missed + (t - 1 - h);
			h = t - 1;
			assert(delivered + missed == h - jh);   /* (b) accounting */
			t = 0; s1 = 0
		};
		hd[i] = h
	fi;
	goto lossy;
lossy_empty:
	/* empty: retry later */
end_empty_ly:
	(h != tail || pdone || !MINE);
	goto lossy;
lossy_end:
	/* (b) the whole stream is covered */
	assert(evicted[i] || h == NPUB);
	goto leave;

gone:
	/* evicted (or overwritten): only legal if the supervisor evicted us */
	assert(evicted[i]);
leave:
#ifdef PUBLISHER_EVICTS
	/* CAS ACTIVE(mygen) -> FREE(mygen), else EVICTED(mygen) -> FREE(mygen) (two
	 * CASes on one word; no other outcome arises between them), then release
	 * the role lock */
	atomic {
		if
		:: gen[i] == mygen && (st[i] == ACTIVE || st[i] == EVICTED) -> st[i] = FREE
		:: else
		fi
	};
died:
	/* the role lock is released (by the kernel, if the process died) */
	atomic {
		lock[i] = false; live[i] = 0; mygen = 0;
#else
	atomic {
		st[i] = FREE;
#endif
		h = 0; jh = 0; m = 0; t = 0; s1 = 0; v = 0; lastp = 0; delivered = 0; missed = 0;
		if
		:: i == 0 && joins < JOINS0 || i == 1 && joins < JOINS1 -> goto join
		:: else
		fi
	};
out:
	skip
}

init {
	atomic { run Sub(0); run Sub(1) }
}

/* -------------------------------------------------------------- supervisor */

active proctype Supervisor()
{
	byte n;
end_sup:
	do
	:: atomic { n < EVICTIONS && st[0] == ACTIVE -> st[0] = EVICTED; evicted[0] = true; n++ }
	:: atomic { n < EVICTIONS && st[1] == ACTIVE -> st[1] = EVICTED; evicted[1] = true; n++ }
	od
}

/* (c): when nothing can move, a producer waiting on Full must be held back by
 * a non-evicted lossless subscriber that really lags by CAP */
active proctype Watchdog()
{
end_watch:
	timeout ->
#if defined(WITNESS_BACKPRESSURE) || defined(PUBLISHER_EVICTS)
	/* PUBLISHER_EVICTS: a dead lossless subscriber is evicted, a live one
	 * consumes: the producer never ends blocked on Full */
	assert(!pfull)
#else
	assert(!pfull ||
	       (st[0] == ACTIVE && md[0] == LOSSLESS && tail - hd[0] >= CAP) ||
	       (st[1] == ACTIVE && md[1] == LOSSLESS && tail - hd[1] >= CAP))
#endif
}
