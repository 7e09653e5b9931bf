/*
 * spsc.pml -- single-producer single-consumer ring, with the producer killed at
 * any step and a new producer taking over from the shared tail.
 *
 * Protocol (sequentially consistent abstraction; memory ordering is loom's job):
 *
 *   shared  head   consumer position (owned by the consumer)
 *           tail   producer position (owned by the producer)
 *           slot[CAP] items, two words each, written one word at a time
 *
 *   Positions are free-running counters.  The model keeps them modulo POSMOD
 *   (a multiple of CAP, larger than CAP), so the wrap-around of the counters
 *   and the wrapping subtraction `tail - head` are exercised within a few items.
 *
 *   push(x):  t = tail; if (t - head) mod POSMOD == CAP -> full, retry later
 *             slot[t % CAP] = x (word by word); tail = t + 1
 *   pop():    h = head; if h == tail -> empty, retry later
 *             x = slot[h % CAP] (word by word); head = h + 1
 *
 *   takeover: producer generation g (g < GENS) may be killed before any of its
 *   steps.  Once it is dead, the next producer (generation g+1) claims the
 *   producer role (CAS on the claim word g -> g+1), loads the shared tail and
 *   pushes its own items, numbered from 1.  The last generation is never killed,
 *   so every run ends with a producer that finishes.
 *
 * Items are encoded as gen*16 + seq (both words carry the same value).
 *
 * Properties (assertions):
 *   (a) no torn or stale item: both words of a popped item are equal and they
 *       encode a real item (a generation 1..GENS, seq >= 1);
 *   (b) order and exactly-once: the items of each generation arrive with
 *       seq = 1, 2, 3, ... (no gap, no duplicate, no reordering), and
 *       generations arrive in order (no item of generation g after an item of a
 *       later generation);
 *   (c) completeness: when the consumer stops (a producer has finished and the
 *       ring is empty) it has received exactly the items whose push completed
 *       (the tail store), per generation.  An item whose push was interrupted by
 *       the kill is never delivered, not even partly: it is the new producer's
 *       job to push it again (under its own numbering);
 *   (d) the producer never writes a slot the consumer is still reading (between
 *       the consumer's empty check and its head store).
 *   Without a kill the consumer receives generation-1 items 1..K in order,
 *   exactly once.
 *
 * Build-time knobs: CAP (2), POSMOD (2*CAP), GENS (producer generations, 4),
 * K (items each producer means to push, 8; at most 15), NO_KILL (producer 1
 * never dies).
 * Witnesses (must FAIL, they show a requirement):
 *   ZOMBIE            the next producer takes over while the owner is only
 *                     suspended (it goes on pushing): takeover needs a real death
 *   -DCAP=3 -DPOSMOD=4  the position modulus is not a multiple of CAP: slot
 *                     = position % CAP jumps at the wrap
 * Canaries (each must make the check FAIL):
 *   CANARY_TAIL_FIRST     producer stores tail before writing the slot
 *   CANARY_HEAD_FIRST     consumer stores head before reading the slot
 *   CANARY_FULL_OFF_BY_1  producer tests `used > CAP` instead of `used == CAP`
 */

#ifndef CAP
#define CAP 2
#endif
#ifndef POSMOD
#define POSMOD (2*CAP)
#endif
#ifndef GENS
#define GENS 4
#endif
#ifndef K
#define K 8
#endif

#define USED(t, h)  (((t) + POSMOD - (h)) % POSMOD)
#define ITEM(g, q)  ((g)*16 + (q))

byte head, tail;
byte w0[CAP];
byte w1[CAP];
byte owner = 1;

/* ghost state */
byte dead;           /* generation of the last producer that was killed */
bool done;           /* the producer that owns the ring has pushed all its items */
byte pushed[GENS+1]; /* completed pushes per generation (index 1..GENS) */
byte reading;        /* 1 + slot the consumer is reading, 0 when none */

#if defined(NO_KILL) || defined(ZOMBIE)
#define KILL skip
#else
#define KILL if :: gen < GENS -> goto killed :: true fi
#endif

proctype Producer(byte gen)
{
	byte t, q = 1;

	t = tail;
	do
	:: q > K -> break
	:: else ->
		KILL;
#ifdef CANARY_FULL_OFF_BY_1
		USED(t, head) <= CAP ->      /* blocks while full; retry later */
#else
		USED(t, head) < CAP ->       /* blocks while full; retry later */
#endif
#ifdef CANARY_TAIL_FIRST
		KILL;
		atomic { tail = (t + 1) % POSMOD; pushed[gen]++ };
#endif
		KILL;
		d_step { assert(reading != t % CAP + 1); w0[t % CAP] = ITEM(gen, q) };
		KILL;
		d_step { assert(reading != t % CAP + 1); w1[t % CAP] = ITEM(gen, q) };
#ifndef CANARY_TAIL_FIRST
		KILL;
		atomic { tail = (t + 1) % POSMOD; pushed[gen]++ };
#endif
		d_step { t = (t + 1) % POSMOD; q++ }
	od;
	done = true;
	goto out;
killed:
	dead = gen;
out:
	skip
}

init {
	byte g = 1;
	run Producer(1);
	/* takeover: the claim is attempted once the owner is known dead */
end_wait:
	do
#ifdef ZOMBIE
	/* the owner is only suspected dead: it goes on pushing */
	:: atomic { g < GENS && owner == g -> owner = g + 1; g++; run Producer(g) }
#else
	:: atomic { dead == g && owner == g -> owner = g + 1; g++; run Producer(g) }
#endif
	od
}

active proctype Consumer()
{
	byte h, v0, v1, g, q;
	byte gen = 1;        /* generation of the last item received */
	byte last;           /* last seq received from generation `gen` */
	byte got[GENS+1];    /* items received per generation */

	/* no end label: a consumer left waiting for data is a deadlock */
	do
	:: atomic { h == tail && done -> break }
	:: atomic { h != tail -> reading = h % CAP + 1 }   /* not empty; ghost */
#ifdef CANARY_HEAD_FIRST
		head = (h + 1) % POSMOD;
#endif
		v0 = w0[h % CAP];
		v1 = w1[h % CAP];
#ifdef CANARY_HEAD_FIRST
		reading = 0;
#else
		atomic { head = (h + 1) % POSMOD; reading = 0 };
#endif
		d_step {
			h = (h + 1) % POSMOD;
			assert(v0 == v1);                     /* (a) not torn */
			g = v0 / 16;
			q = v0 % 16;
			assert(g >= 1 && g <= GENS && q >= 1);   /* (a) a real item */
			if
			:: g == gen ->
				assert(q == last + 1)            /* (b) in order, exactly once */
			:: else ->
				assert(g > gen && q == 1);       /* (b) generations in order */
				gen = g
			fi;
			last = q;
			got[g]++;
			v0 = 0; v1 = 0; g = 0; q = 0
		}
	od;
	/* (c) everything pushed was received, nothing else (with ZOMBIE, `done`
	 * no longer means the ring is quiescent, so only (a), (b), (d) apply) */
#ifndef ZOMBIE
	atomic {
		g = 1;
		do
		:: g <= GENS -> assert(got[g] == pushed[g]); g++
		:: else -> break
		od
	}
#endif
}
