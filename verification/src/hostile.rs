//! Hostile shared memory: the core and the segment header driven over memory that
//! another process may have overwritten with anything.
//!
//! Every structure in `tensorlane-core` promises that nothing a peer stores in the
//! region (counters, claim words, stamps, length words, subscriber entries, payload)
//! can make an operation panic, touch memory outside the region or loop without
//! bound: impossible values come back as typed errors. The functions here check that
//! promise on inputs chosen by a fuzzer, and are what the `fuzz/` targets call, so
//! that the committed corpora replay in `cargo test` (`tests/corpus_replay.rs`).
//!
//! - [`run_hostile`]: builds a valid register, SPSC ring or broadcast ring on the heap
//!   and interleaves real operations with overwrites of any word of its control block
//!   or body, with any value.
//! - [`run_header`]: feeds arbitrary words to the segment header decoder (which must
//!   accept or reject, and whose accepted headers must re-encode to the same words),
//!   or views arbitrary bytes as a whole region through [`tensorlane_core::attach`]
//!   and runs operations on it.
//!
//! # Oracle
//! A panic anywhere is a finding (nothing here catches unwinds). Beyond that, a run
//! returns a [`Violation`] when:
//! - a result breaks a guarantee the core gives whatever the shared memory holds: a
//!   returned length above the slot size or the buffer, a register reader going back
//!   in sequence, a ring handing out a position other than its own head, a
//!   subscriber moving backwards, a table index out of range;
//! - while no overwrite has changed any word yet (the memory is *clean*), a value
//!   differs from the one written at that position, an answer contradicts the
//!   sequential state (`Empty` with items waiting, `Full` with free slots), a
//!   subscriber's or consumer's head passes the tail, or an operation reports
//!   corruption.
//!
//! After the first overwrite, returned payloads may be garbage: only the first group
//! of checks applies. Each run counts its outcomes: successful operations, and typed
//! errors per operation and variant ([`HostileOutcome`]).
//!
//! # Reported, then restored
//! An overwrite tag from [`TRANSIENT_TAG`] on is *transient*: the word keeps the new
//! value for the next operation only, then gets its old value back. If the memory was
//! clean before and that operation reported corruption (a `Corrupt` error and nothing
//! that succeeded), the memory counts as clean again: every handle was told, so none
//! may have acted on the bad value or kept it. From then on the clean checks apply
//! again, except that reporting corruption is allowed (a structure resumes correctly
//! or keeps reporting): it must never deliver an item that was not written at that
//! position, and positions must not pass each other. An operation under a transient
//! overwrite that answers anything else leaves the memory counted as corrupt, as a
//! plain overwrite does (it may have acted on a plausible bad value).
//!
//! Roles follow their contracts: a takeover or a reclaim happens only after the
//! previous owner's handle is gone (forgotten without releasing, as if its process
//! died), never under a live handle.
//!
//! Not built with the `loom` or `shuttle` features: checker atomics panic outside the
//! checker's runtime, and the model's harness and the shm crate do not exist there.
#![cfg(not(any(feature = "loom", feature = "shuttle")))]

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::sync::atomic::Ordering;
use tensorlane_core::{
    attach, entry, AtomicU64, AttachError, Broadcast, BroadcastGeometry, BroadcastHeader,
    BroadcastProducer, BroadcastSubscriber, ClaimError, ControlBlock, Exclusive, GeometryError,
    HeapRegion, Mode, PopError, PublishError, PushError, ReadAtError, ReadError, RecvError, Region,
    Seqlock, SeqlockGeometry, SeqlockHeader, SeqlockReader, SeqlockWriter, Spsc, SpscConsumer,
    SpscGeometry, SpscHeader, SpscProducer, SubscribeError, SubscribeOptions, ENTRY_WORDS,
    LENGTH_WORD, STAMP_WORD,
};
use tensorlane_model::harness::payload;
use tensorlane_shm::header::{self, field, Geometry, SegmentHeader};
use tensorlane_shm::{DType, Kind, TensorSpec};

/// What a run exercised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Structure {
    /// The seqlock register.
    Register,
    /// The SPSC ring.
    Spsc,
    /// The broadcast ring.
    Broadcast,
    /// The segment header decoder.
    HeaderWords,
}

/// What one run did and what its operations answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostileOutcome {
    /// The structure the run built.
    pub structure: Structure,
    /// Whether the region came from [`tensorlane_core::attach`] over arbitrary bytes
    /// (otherwise from a fresh [`HeapRegion`]).
    pub attached: bool,
    /// Operations performed (overwrites not included).
    pub operations: u64,
    /// Overwrites that changed a word.
    pub overwrites: u64,
    /// Transient overwrites that an operation reported as corruption and that were
    /// restored, after which the memory counted as clean again.
    pub restores: u64,
    /// Whether the memory was corrupt (arbitrary contents, or an overwrite) at the end.
    pub corrupted: bool,
    /// Returned values compared with what was written, while the memory was clean.
    pub values_checked: u64,
    /// Operations that succeeded.
    pub ok: u64,
    /// Typed errors, keyed `"operation: Variant"` (nested for corruption, e.g.
    /// `"pop: Corrupt(Indices)"`).
    pub errors: BTreeMap<String, u64>,
}

impl HostileOutcome {
    fn new(structure: Structure) -> Self {
        HostileOutcome {
            structure,
            attached: false,
            operations: 0,
            overwrites: 0,
            restores: 0,
            corrupted: false,
            values_checked: 0,
            ok: 0,
            errors: BTreeMap::new(),
        }
    }

    /// Adds `other`'s counts to these (the structure and flags of `self` are kept).
    pub fn absorb(&mut self, other: &HostileOutcome) {
        self.operations += other.operations;
        self.overwrites += other.overwrites;
        self.restores += other.restores;
        self.values_checked += other.values_checked;
        self.ok += other.ok;
        for (key, n) in &other.errors {
            *self.errors.entry(key.clone()).or_default() += n;
        }
    }
}

/// A broken guarantee: the operation, where it happened, and what went wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The structure.
    pub structure: Structure,
    /// Index of the operation in the run (overwrites included).
    pub step: usize,
    /// The operation.
    pub op: &'static str,
    /// What was wrong.
    pub what: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:?}, step {} ({}): {}",
            self.structure, self.step, self.op, self.what
        )
    }
}

impl std::error::Error for Violation {}

// ---------------------------------------------------------------------------------
// Input decoding

use tensorlane_model::words::{load_view, store_le};
use tensorlane_model::ByteCursor as Cursor;

/// Values that make good corruptions.
const SPECIAL: [u64; 12] = [
    0,
    1,
    2,
    3,
    u64::MAX,
    u64::MAX - 1,
    1 << 63,
    (1 << 63) - 1,
    1 << 62,
    1 << 32,
    u32::MAX as u64,
    1 << 40,
];

/// The variant name of an error's `Debug` form, nested variants included:
/// `Corrupt(Indices { head: 1, tail: 9 })` gives `Corrupt(Indices)`.
fn variant(debug: &str) -> String {
    let mut name = String::new();
    let mut open = 0;
    for ch in debug.chars() {
        if ch.is_alphanumeric() || ch == '_' {
            name.push(ch);
        } else if ch == '(' {
            name.push(ch);
            open += 1;
        } else {
            break;
        }
    }
    for _ in 0..open {
        name.push(')');
    }
    name
}

// ---------------------------------------------------------------------------------
// Run state

struct Run {
    outcome: HostileOutcome,
    step: usize,
    op: &'static str,
    next_token: u64,
    /// A reported corruption was restored since the memory was last corrupted for
    /// good: reporting corruption is allowed, every other clean check applies.
    restored: bool,
    /// `Corrupt` errors noted so far.
    corrupt_reports: u64,
}

impl Run {
    fn new(structure: Structure, attached: bool, clean: bool) -> Self {
        let mut outcome = HostileOutcome::new(structure);
        outcome.attached = attached;
        outcome.corrupted = !clean;
        Run {
            outcome,
            step: 0,
            op: "setup",
            next_token: 1,
            restored: false,
            corrupt_reports: 0,
        }
    }

    fn clean(&self) -> bool {
        !self.outcome.corrupted
    }

    fn begin(&mut self, op: &'static str) {
        self.op = op;
        self.outcome.operations += 1;
    }

    fn violation(&self, what: String) -> Violation {
        Violation {
            structure: self.outcome.structure,
            step: self.step,
            op: self.op,
            what,
        }
    }

    /// A guarantee that holds whatever the memory holds.
    fn ensure(&self, cond: bool, what: impl FnOnce() -> String) -> Result<(), Violation> {
        if cond {
            Ok(())
        } else {
            Err(self.violation(what()))
        }
    }

    /// A guarantee that holds while the memory is clean (`cond` is evaluated in
    /// every case: it must not depend on state that is only kept while clean).
    fn ensure_clean(&self, cond: bool, what: impl FnOnce() -> String) -> Result<(), Violation> {
        if self.clean() {
            self.ensure(cond, what)
        } else {
            Ok(())
        }
    }

    /// A reported corruption: a violation while the memory is clean, unless a
    /// reported corruption was restored since (a structure may keep reporting).
    fn corruption_reported(&self, what: impl FnOnce() -> String) -> Result<(), Violation> {
        self.ensure_clean(self.restored, what)
    }

    /// Compares a returned value with the one written, while the memory is clean.
    fn check_value(&mut self, got: &[u8], want: Option<&[u8]>) -> Result<(), Violation> {
        if !self.clean() {
            return Ok(());
        }
        self.outcome.values_checked += 1;
        self.ensure(Some(got) == want, || {
            format!("returned {got:?}, the value written there is {want:?}")
        })
    }

    fn note<T, E: fmt::Debug>(&mut self, result: &Result<T, E>) {
        match result {
            Ok(_) => self.outcome.ok += 1,
            Err(e) => self.note_error(e),
        }
    }

    fn note_error(&mut self, e: &dyn fmt::Debug) {
        let name = variant(&format!("{e:?}"));
        if name.starts_with("Corrupt(") {
            self.corrupt_reports += 1;
        }
        let key = format!("{}: {name}", self.op);
        *self.outcome.errors.entry(key).or_default() += 1;
    }

    /// A fresh owner token, or 0 (refused) when the argument asks for it.
    fn token(&mut self, arg: u8) -> u64 {
        if arg.is_multiple_of(16) {
            return 0;
        }
        self.next_token += 1;
        self.next_token
    }
}

/// The words of a region an overwrite may hit.
struct Words<'a> {
    /// The control block's atomic fields.
    fields: Vec<&'a AtomicU64>,
    body: &'a [AtomicU64],
    slots_base: usize,
    stride: usize,
    slots: usize,
    entries: usize,
}

impl<'a> Words<'a> {
    fn body_word(&self, index: usize) -> &'a AtomicU64 {
        self.body.get(index).unwrap_or(self.fields[0])
    }

    fn pick(&self, c: &mut Cursor<'_>) -> &'a AtomicU64 {
        match c.byte() % 4 {
            0 => self.fields[c.below(self.fields.len())],
            1 => {
                let slot = c.below(self.slots);
                // Mostly the stamp and length words, sometimes the first payload words.
                let word = match c.byte() % 4 {
                    0 | 1 => STAMP_WORD,
                    2 => LENGTH_WORD,
                    _ => LENGTH_WORD + 1 + c.below(self.stride - LENGTH_WORD - 1),
                };
                self.body_word(self.slots_base + slot * self.stride + word)
            }
            2 if self.entries > 0 => {
                let e = c.below(self.entries);
                self.body_word(e * ENTRY_WORDS + c.below(6))
            }
            _ if self.body.is_empty() => self.fields[0],
            _ => &self.body[usize::from(c.u16()) % self.body.len()],
        }
    }

    /// Overwrites one word with a value the input chooses; with a `tag` from
    /// [`TRANSIENT_TAG`] on, only for the next operation (see [`Transient`]). A
    /// transient overwrite still pending is settled first.
    fn overwrite(
        &self,
        run: &mut Run,
        c: &mut Cursor<'_>,
        tag: u8,
        transient: &mut Option<Transient<'a>>,
    ) {
        // An overwrite is not an operation that reports anything: the word it
        // follows is restored, the memory stays corrupt.
        settle(run, transient, true);
        let clean = run.clean();
        let (ok, corrupt) = (run.outcome.ok, run.corrupt_reports);
        let word = self.pick(c);
        let old = word.load(Ordering::Relaxed);
        let value = match c.byte() % 6 {
            0 => c.u64(),
            1 => old.wrapping_add(c.byte() as i8 as i64 as u64),
            2 => old ^ (1u64 << (c.byte() % 64)),
            3 => SPECIAL[c.below(SPECIAL.len())],
            // Another word plus a small offset: a head near the tail, a tail near a
            // stamp, and so on.
            4 => {
                let other = self.pick(c).load(Ordering::Relaxed);
                other.wrapping_add(c.byte() as i8 as i64 as u64)
            }
            // A stamp for a position near another word's value.
            _ => {
                let other = self.pick(c).load(Ordering::Relaxed);
                let position = other.wrapping_add(c.byte() as i8 as i64 as u64);
                position
                    .wrapping_mul(2)
                    .wrapping_add(u64::from(c.byte() % 3))
            }
        };
        word.store(value, Ordering::Relaxed);
        if value != old {
            run.outcome.overwrites += 1;
            run.outcome.corrupted = true;
            if tag >= TRANSIENT_TAG {
                *transient = Some(Transient {
                    word,
                    old,
                    clean,
                    ok,
                    corrupt,
                    ran: false,
                });
            }
        }
    }
}

/// A transient overwrite: the word, its value before, and the state of the run when
/// it was made (to tell what the one operation under it answered).
struct Transient<'a> {
    word: &'a AtomicU64,
    old: u64,
    /// The memory was clean before the overwrite.
    clean: bool,
    /// `outcome.ok` and `corrupt_reports` before the operation.
    ok: u64,
    corrupt: u64,
    /// The operation under it has run.
    ran: bool,
}

/// Settles a transient overwrite left at the end of a run.
fn settle_last(run: &mut Run, transient: &mut Option<Transient<'_>>) {
    let ran = transient.as_ref().is_some_and(|t| t.ran);
    settle(run, transient, !ran);
}

/// Called before each step of a run and at its end: restores a transient overwrite
/// once the operation under it has run (or at once with `now`), and counts the
/// memory clean again if it was clean before and that operation reported corruption
/// and nothing else.
fn settle(run: &mut Run, transient: &mut Option<Transient<'_>>, now: bool) {
    let Some(t) = transient.as_mut() else {
        return;
    };
    if !t.ran && !now {
        t.ran = true;
        return;
    }
    t.word.store(t.old, Ordering::Relaxed);
    let reported = t.ran && run.corrupt_reports > t.corrupt && run.outcome.ok == t.ok;
    if t.clean && reported && !now {
        run.outcome.corrupted = false;
        run.outcome.restores += 1;
        run.restored = true;
    }
    *transient = None;
}

/// Tag bytes from this value on are overwrites; the others are operations.
const OVERWRITE_TAG: u8 = 0xc0;

/// Overwrite tags from this value on are transient: the word is restored after the
/// next operation (see the module docs).
pub const TRANSIENT_TAG: u8 = 0xf0;

/// A receive buffer size: the slot size, or a short one.
fn buffer(c: &mut Cursor<'_>, slot_bytes: usize) -> usize {
    let b = c.byte();
    if b & 3 == 0 {
        usize::from(b >> 2) % (slot_bytes + 2)
    } else {
        slot_bytes
    }
}

/// A payload length argument: up to two bytes above the slot size.
fn length(c: &mut Cursor<'_>, slot_bytes: usize) -> usize {
    c.below(slot_bytes + 3)
}

// ---------------------------------------------------------------------------------
// Entry points

/// Builds a register, an SPSC ring or a broadcast ring (first byte) on the heap with a
/// geometry from the next bytes, then runs the rest of `data` as operations
/// interleaved with overwrites of control and body words. See the module docs for
/// what is checked.
pub fn run_hostile(data: &[u8]) -> Result<HostileOutcome, Violation> {
    let mut c = Cursor::new(data);
    match c.byte() % 3 {
        0 => {
            let geometry = register_geometry(&mut c);
            let region = HeapRegion::<SeqlockHeader>::new(geometry.body_words());
            let mut run = Run::new(Structure::Register, false, true);
            drive_register(&region, geometry, &mut c, &mut run)?;
            Ok(run.outcome)
        }
        1 => {
            let geometry = spsc_geometry(&mut c);
            let region = HeapRegion::<SpscHeader>::new(geometry.body_words());
            let mut run = Run::new(Structure::Spsc, false, true);
            drive_spsc(&region, geometry, &mut c, &mut run)?;
            Ok(run.outcome)
        }
        _ => {
            let geometry = broadcast_geometry(&mut c);
            let region = HeapRegion::<BroadcastHeader>::new(geometry.body_words());
            let mut run = Run::new(Structure::Broadcast, false, true);
            drive_broadcast(&region, geometry, &mut c, &mut run)?;
            Ok(run.outcome)
        }
    }
}

/// With an even first byte: decodes segment header words built from the input (see
/// [`run_header_words`]). With an odd one: views the input as a whole region (see
/// [`run_attached`]).
pub fn run_header(data: &[u8]) -> Result<HostileOutcome, Violation> {
    match data.first() {
        Some(b) if b & 1 == 1 => run_attached(&data[1..]),
        Some(_) => run_header_words(&data[1..]),
        None => run_header_words(&[]),
    }
}

fn register_geometry(c: &mut Cursor<'_>) -> SeqlockGeometry {
    let slots = 1 + c.below(4);
    let slot_bytes = c.below(41);
    SeqlockGeometry::new(slots, slot_bytes).expect("small register geometries are valid")
}

fn spsc_geometry(c: &mut Cursor<'_>) -> SpscGeometry {
    let capacity = 1 << c.below(4);
    let slot_bytes = c.below(41);
    SpscGeometry::new(capacity, slot_bytes).expect("small ring geometries are valid")
}

fn broadcast_geometry(c: &mut Cursor<'_>) -> BroadcastGeometry {
    let capacity = 1 << c.below(4);
    let slot_bytes = c.below(25);
    let subscribers = 1 + c.below(4);
    BroadcastGeometry::new(capacity, slot_bytes, subscribers)
        .expect("small broadcast geometries are valid")
}

// ---------------------------------------------------------------------------------
// Register

fn drive_register<R>(
    region: R,
    geometry: SeqlockGeometry,
    c: &mut Cursor<'_>,
    run: &mut Run,
) -> Result<(), Violation>
where
    R: Region<Header = SeqlockHeader> + Clone,
{
    let lane = Seqlock::new(region.clone(), geometry)
        .map_err(|e| run.violation(format!("building the register: {e}")))?;
    let header = region.header();
    let words = Words {
        fields: vec![&header.published, &header.writer],
        body: region.body(),
        slots_base: 0,
        stride: geometry.slot_stride(),
        slots: geometry.slots(),
        entries: 0,
    };
    let slot_bytes = geometry.slot_bytes();
    run.op = "claim writer";
    let token = run.token(1);
    let first = lane.writer(token);
    run.note(&first);
    let mut writer: Option<SeqlockWriter<R>> = first.ok();
    let mut readers: Vec<SeqlockReader<R>> = (0..3).map(|_| lane.reader()).collect();
    // The last value written, while the memory is clean.
    let mut last: Option<(u64, Vec<u8>)> = None;
    let mut item = 0u64;

    let mut transient = None;
    while !c.done() {
        run.step += 1;
        settle(run, &mut transient, false);
        let published = lane.published();
        for r in &readers {
            run.ensure_clean(r.last_seq() <= published, || {
                format!("a reader returned {}, published {published}", r.last_seq())
            })?;
        }
        let tag = c.byte();
        if tag >= OVERWRITE_TAG {
            words.overwrite(run, c, tag, &mut transient);
            continue;
        }
        match tag % 6 {
            0 | 1 => {
                run.begin("write");
                let len = length(c, slot_bytes);
                let value = payload(item, len);
                item += 1;
                let Some(w) = writer.as_mut() else { continue };
                let next = w.next_seq();
                let result = w.write(&value);
                run.note(&result);
                match result {
                    Ok(seq) => {
                        run.ensure(seq == next && len <= slot_bytes, || {
                            format!("wrote {len} bytes as sequence {seq}, expected {next}")
                        })?;
                        last = Some((seq, value));
                    }
                    Err(e) => run.ensure(len > slot_bytes, || format!("{e:?}"))?,
                }
            }
            2 | 3 => {
                let only_new = tag & 0x20 != 0;
                run.begin(if only_new { "read_new" } else { "read" });
                let reader = &mut readers[c.below(3)];
                reader.set_max_attempts(1 + u32::from(c.byte() % 3));
                let mut buf = vec![0xa5u8; buffer(c, slot_bytes)];
                let before = reader.last_seq();
                let result = if only_new {
                    reader.read_new(&mut buf)
                } else {
                    reader.read(&mut buf)
                };
                run.note(&result);
                match result {
                    Ok(info) => {
                        run.ensure(
                            info.len <= slot_bytes
                                && info.len <= buf.len()
                                && info.seq != 0
                                && info.seq >= before
                                && !(only_new && info.seq == before)
                                && reader.last_seq() == info.seq,
                            || format!("{info:?} after sequence {before}, buffer {}", buf.len()),
                        )?;
                        let want = last.as_ref().map(|(seq, v)| (*seq, v.as_slice()));
                        let got = &buf[..info.len];
                        run.ensure_clean(want.map(|w| w.0) == Some(info.seq), || {
                            format!("read sequence {}, last written {want:?}", info.seq)
                        })?;
                        run.check_value(got, want.map(|w| w.1))?;
                    }
                    Err(ReadError::BufferTooSmall { needed }) => {
                        run.ensure(needed > buf.len() && needed <= slot_bytes, || {
                            format!("BufferTooSmall({needed}) with buffer {}", buf.len())
                        })?;
                        run.ensure_clean(
                            last.as_ref().map(|(_, v)| v.len()) == Some(needed),
                            || format!("BufferTooSmall({needed}), last written {last:?}"),
                        )?;
                    }
                    Err(ReadError::Empty) => {
                        run.ensure_clean(last.is_none(), || format!("Empty, written {last:?}"))?
                    }
                    Err(ReadError::NotNew) => run
                        .ensure_clean(last.as_ref().map(|(s, _)| *s) == Some(before), || {
                            format!("NotNew after {before}, last written {last:?}")
                        })?,
                    Err(e @ ReadError::Stalled { .. }) => {
                        run.ensure_clean(false, || format!("{e:?} on a clean register"))?
                    }
                    Err(e @ ReadError::Corrupt(_)) => {
                        run.corruption_reported(|| format!("{e:?} on a clean register"))?
                    }
                    Err(e) => run.ensure(false, || format!("unknown error {e:?}"))?,
                }
            }
            4 => {
                run.begin("new reader");
                readers[c.below(3)] = lane.reader();
            }
            _ => {
                let arg = c.byte();
                match arg % 3 {
                    0 => {
                        run.begin("drop writer");
                        writer = None;
                    }
                    1 => {
                        run.begin("claim writer");
                        let token = run.token(c.byte());
                        let result = lane.writer(token);
                        run.note(&result);
                        claimed(run, &result, token)?;
                        if let Ok(w) = result {
                            writer = Some(w);
                        }
                    }
                    _ => {
                        run.begin("take over writer");
                        // The writer's process dies: its handle is never dropped.
                        if let Some(w) = writer.take() {
                            std::mem::forget(w);
                        }
                        let token = run.token(c.byte());
                        let result = lane.takeover(lane.writer_owner(), token);
                        run.note(&result);
                        claimed(run, &result, token)?;
                        if let Ok(w) = result {
                            writer = Some(w);
                        }
                    }
                }
            }
        }
        // Inspection must never fail either.
        let _ = (lane.published(), lane.writer_owner());
    }
    settle_last(run, &mut transient);
    Ok(())
}

/// A claim with token 0 must be refused; a refused non-zero token must name the
/// current holder as non-zero.
fn claimed<T>(run: &Run, result: &Result<T, ClaimError>, token: u64) -> Result<(), Violation> {
    match result {
        Ok(_) => run.ensure(token != 0, || "claimed with token 0".to_string()),
        Err(ClaimError::ZeroToken) => run.ensure(token == 0, || "ZeroToken".to_string()),
        Err(ClaimError::Held { owner }) => run.ensure(token != 0 && *owner != 0, || {
            format!("Held by {owner} for token {token}")
        }),
        Err(e @ ClaimError::Corrupt(_)) => {
            run.ensure_clean(false, || format!("{e:?} on a clean ring"))
        }
        Err(e) => run.ensure(false, || format!("unknown error {e:?}")),
    }
}

// ---------------------------------------------------------------------------------
// SPSC

fn drive_spsc<R>(
    region: R,
    geometry: SpscGeometry,
    c: &mut Cursor<'_>,
    run: &mut Run,
) -> Result<(), Violation>
where
    R: Region<Header = SpscHeader> + Clone,
{
    // SAFETY: one ring is built over this memory; the run's hostile stores
    // (`words.overwrite`) are made between operations, never while a loan's or a
    // peek's byte view is alive, and no other thread or process touches it.
    let ring = Spsc::new(unsafe { Exclusive::new(region.clone()) }, geometry)
        .map_err(|e| run.violation(format!("building the ring: {e}")))?;
    let header = region.header();
    let words = Words {
        fields: vec![
            &header.tail,
            &header.head,
            &header.owners.0[0],
            &header.owners.0[1],
        ],
        body: region.body(),
        slots_base: 0,
        stride: geometry.slot_stride(),
        slots: geometry.capacity(),
        entries: 0,
    };
    let slot_bytes = geometry.slot_bytes();
    let capacity = geometry.capacity();
    run.op = "claim producer";
    let token = run.token(1);
    let first = ring.producer(token);
    run.note(&first);
    let mut producer: Option<SpscProducer<Exclusive<R>>> = first.ok();
    run.op = "claim consumer";
    let token = run.token(1);
    let first = ring.consumer(token);
    run.note(&first);
    let mut consumer: Option<SpscConsumer<Exclusive<R>>> = first.ok();
    // The items waiting, while the memory is clean.
    let mut waiting: VecDeque<Vec<u8>> = VecDeque::new();
    let mut item = 0u64;
    // Corruption reports before the last step.
    let mut corrupt_before = 0;

    let mut transient = None;
    while !c.done() {
        run.step += 1;
        settle(run, &mut transient, false);
        if let Some(q) = consumer.as_ref().filter(|_| run.clean()) {
            // A pop or peek that reported an impossible length lets the item go (it is
            // reported, not delivered): the model's head follows. While the memory is
            // clean the shared tail is the model's.
            let consumed = ring.positions().1.wrapping_sub(waiting.len() as u64);
            if run.corrupt_reports > corrupt_before && q.head() == consumed.wrapping_add(1) {
                waiting.pop_front();
            }
        }
        corrupt_before = run.corrupt_reports;
        if let (Some(p), Some(q)) = (producer.as_ref(), consumer.as_ref()) {
            let (tail, head) = (p.tail(), q.head());
            run.ensure_clean(tail.wrapping_sub(head) <= capacity as u64, || {
                format!("consumer head {head}, producer tail {tail}")
            })?;
        }
        let tag = c.byte();
        if tag >= OVERWRITE_TAG {
            words.overwrite(run, c, tag, &mut transient);
            continue;
        }
        match tag % 8 {
            0 | 1 => {
                run.begin("push");
                let len = length(c, slot_bytes);
                let value = payload(item, len);
                item += 1;
                let Some(p) = producer.as_mut() else { continue };
                let tail = p.tail();
                let result = p.push(&value);
                run.note(&result);
                pushed(run, result, tail, len, slot_bytes, capacity, &waiting)?;
                if result.is_ok() && run.clean() {
                    waiting.push_back(value);
                }
            }
            2 | 3 => {
                run.begin("pop");
                let mut buf = vec![0xa5u8; buffer(c, slot_bytes)];
                let Some(q) = consumer.as_mut() else { continue };
                let head = q.head();
                let result = q.pop(&mut buf);
                run.note(&result);
                match result {
                    Ok(popped) => {
                        run.ensure(
                            popped.position == head
                                && q.head() == head.wrapping_add(1)
                                && popped.len <= slot_bytes
                                && popped.len <= buf.len(),
                            || format!("{popped:?} at head {head}, buffer {}", buf.len()),
                        )?;
                        let want = waiting.pop_front();
                        run.check_value(&buf[..popped.len], want.as_deref())?;
                    }
                    Err(e) => popped_error(run, e, buf.len(), slot_bytes, &waiting)?,
                }
            }
            4 => {
                run.begin("loan");
                let len = length(c, slot_bytes);
                let words_access = tag & 0x20 != 0;
                let commit = tag & 0x10 == 0 || c.byte() & 1 == 0;
                let value = payload(item, slot_bytes);
                item += 1;
                let Some(p) = producer.as_mut() else { continue };
                let tail = p.tail();
                match p.loan() {
                    Err(e) => {
                        run.note_error(&e);
                        pushed(run, Err(e), tail, len, slot_bytes, capacity, &waiting)?;
                    }
                    Ok(mut loan) => {
                        run.outcome.ok += 1;
                        run.ensure(loan.slot_bytes() == slot_bytes, || {
                            format!("loan of {} bytes", loan.slot_bytes())
                        })?;
                        if words_access {
                            store_le(loan.words(), &value);
                        } else {
                            loan.bytes_mut().copy_from_slice(&value);
                        }
                        if commit {
                            run.op = "commit";
                            let result = loan.commit(len);
                            run.note(&result);
                            run.ensure(
                                result.is_ok() == (len <= slot_bytes)
                                    && result
                                        .is_err_and(|e| matches!(e, PushError::TooLarge { .. }))
                                        == (len > slot_bytes),
                                || format!("commit({len}): {result:?}"),
                            )?;
                            if let Ok(position) = result {
                                run.ensure(position == tail, || {
                                    format!("committed at {position}, tail {tail}")
                                })?;
                                if run.clean() {
                                    waiting.push_back(value[..len].to_vec());
                                }
                            }
                        }
                    }
                }
            }
            5 => {
                run.begin("peek");
                let access = c.byte() % 3;
                let release = !c.byte().is_multiple_of(4);
                let mut buf = vec![0xa5u8; buffer(c, slot_bytes)];
                let Some(q) = consumer.as_mut() else { continue };
                let head = q.head();
                match q.peek() {
                    Err(e) => {
                        run.note_error(&e);
                        popped_error(run, e, slot_bytes, slot_bytes, &waiting)?;
                    }
                    Ok(peek) => {
                        run.outcome.ok += 1;
                        let len = peek.len();
                        run.ensure(
                            peek.position() == head
                                && len <= slot_bytes
                                && peek.is_empty() == (len == 0),
                            || format!("peeked {len} bytes at {}, head {head}", peek.position()),
                        )?;
                        let got = match access {
                            0 => Some(peek.bytes().to_vec()),
                            1 => Some(load_view(peek.words(), len)),
                            _ => {
                                let result = peek.copy_to(&mut buf);
                                run.ensure(
                                    match result {
                                        Ok(n) => n == len,
                                        Err(PopError::BufferTooSmall { needed }) => {
                                            needed == len && buf.len() < len
                                        }
                                        Err(_) => false,
                                    },
                                    || format!("copy_to of {len} bytes: {result:?}"),
                                )?;
                                result.ok().map(|n| buf[..n].to_vec())
                            }
                        };
                        if let Some(got) = got {
                            run.check_value(&got, waiting.front().map(Vec::as_slice))?;
                        }
                        if release {
                            peek.release();
                            waiting.pop_front();
                            run.ensure(q.head() == head.wrapping_add(1), || {
                                format!("head {} after releasing {head}", q.head())
                            })?;
                        }
                    }
                }
            }
            6 => {
                if tag & 0x20 == 0 {
                    run.begin("free");
                    let Some(p) = producer.as_mut() else { continue };
                    let result = p.free();
                    run.note(&result);
                    if let Ok(n) = result {
                        run.ensure(n <= capacity, || format!("{n} free slots"))?;
                        run.ensure_clean(n + waiting.len() == capacity, || {
                            format!("{n} free slots, {} items waiting", waiting.len())
                        })?;
                    } else {
                        run.corruption_reported(|| format!("{result:?} on a clean ring"))?;
                    }
                } else {
                    run.begin("available");
                    let Some(q) = consumer.as_mut() else { continue };
                    let result = q.available();
                    run.note(&result);
                    if let Ok(n) = result {
                        run.ensure(n <= capacity, || format!("{n} items available"))?;
                        run.ensure_clean(n == waiting.len(), || {
                            format!("{n} items available, {} waiting", waiting.len())
                        })?;
                    } else {
                        run.corruption_reported(|| format!("{result:?} on a clean ring"))?;
                    }
                }
                let _ = (ring.positions(), ring.owners());
            }
            _ => {
                let arg = c.byte();
                let token = run.token(c.byte());
                match arg % 6 {
                    0 => {
                        run.begin("drop producer");
                        producer = None;
                    }
                    1 => {
                        run.begin("claim producer");
                        let result = ring.producer(token);
                        run.note(&result);
                        claimed(run, &result, token)?;
                        producer = result.ok().or(producer);
                    }
                    2 => {
                        run.begin("take over producer");
                        if let Some(p) = producer.take() {
                            std::mem::forget(p);
                        }
                        // SAFETY: the only producer handle of this run was forgotten just
                        // above and is never used again; no other thread or process
                        // touches the ring.
                        let result = unsafe { ring.producer_takeover(ring.owners().0, token) };
                        run.note(&result);
                        claimed(run, &result, token)?;
                        producer = result.ok();
                    }
                    3 => {
                        run.begin("drop consumer");
                        consumer = None;
                    }
                    4 => {
                        run.begin("claim consumer");
                        let result = ring.consumer(token);
                        run.note(&result);
                        claimed(run, &result, token)?;
                        consumer = result.ok().or(consumer);
                    }
                    _ => {
                        run.begin("take over consumer");
                        if let Some(q) = consumer.take() {
                            std::mem::forget(q);
                        }
                        // SAFETY: the only consumer handle of this run was forgotten just
                        // above and is never used again; no other thread or process
                        // touches the ring.
                        let result = unsafe { ring.consumer_takeover(ring.owners().1, token) };
                        run.note(&result);
                        claimed(run, &result, token)?;
                        consumer = result.ok();
                    }
                }
            }
        }
    }
    settle_last(run, &mut transient);
    Ok(())
}

/// Checks a push or loan result against the sequential state.
fn pushed(
    run: &Run,
    result: Result<u64, PushError>,
    tail: u64,
    len: usize,
    slot_bytes: usize,
    capacity: usize,
    waiting: &VecDeque<Vec<u8>>,
) -> Result<(), Violation> {
    let loan = run.op == "loan";
    match result {
        Ok(position) => run.ensure(position == tail && (loan || len <= slot_bytes), || {
            format!("pushed {len} bytes at {position}, tail {tail}")
        }),
        Err(PushError::TooLarge { len: l, max }) => run.ensure(
            !loan && l == len && max == slot_bytes && len > slot_bytes,
            || format!("TooLarge({l}, {max}) for {len}"),
        ),
        Err(PushError::Full) => {
            run.ensure(loan || len <= slot_bytes, || {
                format!("Full for {len} bytes")
            })?;
            run.ensure_clean(waiting.len() == capacity, || {
                format!("Full with {} of {capacity} slots used", waiting.len())
            })
        }
        Err(e @ PushError::Corrupt(_)) => {
            run.corruption_reported(|| format!("{e:?} on a clean ring"))
        }
        Err(e) => run.ensure(false, || format!("unknown error {e:?}")),
    }
}

/// Checks a pop or peek error against the sequential state.
fn popped_error(
    run: &Run,
    e: PopError,
    buf: usize,
    slot_bytes: usize,
    waiting: &VecDeque<Vec<u8>>,
) -> Result<(), Violation> {
    match e {
        PopError::Empty => run.ensure_clean(waiting.is_empty(), || {
            format!("Empty with {} items waiting", waiting.len())
        }),
        PopError::BufferTooSmall { needed } => {
            run.ensure(needed > buf && needed <= slot_bytes, || {
                format!("BufferTooSmall({needed}) with buffer {buf}")
            })?;
            run.ensure_clean(waiting.front().map(Vec::len) == Some(needed), || {
                format!("BufferTooSmall({needed}), next item {:?}", waiting.front())
            })
        }
        PopError::Corrupt(_) => run.corruption_reported(|| format!("{e:?} on a clean ring")),
        _ => run.ensure(false, || format!("unknown error {e:?}")),
    }
}

// ---------------------------------------------------------------------------------
// Broadcast

/// Subscriber handles a broadcast run keeps (one more than the largest table).
const HANDLES: usize = 5;

fn drive_broadcast<R>(
    region: R,
    geometry: BroadcastGeometry,
    c: &mut Cursor<'_>,
    run: &mut Run,
) -> Result<(), Violation>
where
    R: Region<Header = BroadcastHeader> + Clone,
{
    let ring = Broadcast::new(region.clone(), geometry)
        .map_err(|e| run.violation(format!("building the ring: {e}")))?;
    let header = region.header();
    let words = Words {
        fields: vec![&header.tail, &header.epoch, &header.producer],
        body: region.body(),
        slots_base: geometry.slots_offset(),
        stride: geometry.slot_stride(),
        slots: geometry.capacity(),
        entries: geometry.max_subscribers(),
    };
    let slot_bytes = geometry.slot_bytes();
    let capacity = geometry.capacity() as u64;
    let table = geometry.max_subscribers();
    run.op = "claim producer";
    let token = run.token(1);
    let first = ring.producer(token);
    run.note(&first);
    let mut producer: Option<BroadcastProducer<R>> = first.ok();
    let mut handles: Vec<Option<BroadcastSubscriber<R>>> = (0..HANDLES).map(|_| None).collect();
    // Every value published, by position, while the memory is clean.
    let mut published: Vec<Vec<u8>> = Vec::new();
    let mut item = 0u64;

    let mut transient = None;
    while !c.done() {
        run.step += 1;
        settle(run, &mut transient, false);
        let tag = c.byte();
        if tag >= OVERWRITE_TAG {
            words.overwrite(run, c, tag, &mut transient);
            continue;
        }
        match tag % 10 {
            0..=2 => {
                run.begin("publish");
                let len = length(c, slot_bytes);
                let value = payload(item, len);
                item += 1;
                let Some(p) = producer.as_mut() else { continue };
                let tail = p.tail();
                let result = p.publish(&value);
                run.note(&result);
                match result {
                    Ok(position) => {
                        run.ensure(position == tail && len <= slot_bytes, || {
                            format!("published {len} bytes at {position}, tail {tail}")
                        })?;
                        run.ensure_clean(position == published.len() as u64, || {
                            format!("published at {position} after {}", published.len())
                        })?;
                        if run.clean() {
                            published.push(value);
                        }
                    }
                    Err(PublishError::TooLarge { len: l, max }) => run
                        .ensure(l == len && max == slot_bytes && len > slot_bytes, || {
                            format!("TooLarge({l}, {max}) for {len}")
                        })?,
                    Err(PublishError::Full { subscriber }) => run
                        .ensure(subscriber < table && len <= slot_bytes, || {
                            format!("Full naming entry {subscriber} of {table}")
                        })?,
                    Err(e @ PublishError::Corrupt(_)) => {
                        run.corruption_reported(|| format!("{e:?} on a clean ring"))?
                    }
                    Err(e) => run.ensure(false, || format!("unknown error {e:?}"))?,
                }
            }
            3 => {
                let slot = c.below(HANDLES);
                let lossless = tag & 0x20 != 0;
                let history = small_count(c);
                let max_lag = small_count(c);
                let at = c.byte();
                let token = run.token(c.byte());
                // A subscriber already in the handle leaves first.
                handles[slot] = None;
                let mode = if lossless {
                    Mode::Lossless
                } else {
                    Mode::Lossy { max_lag }
                };
                let options = SubscribeOptions::new(mode).with_history(history);
                let result = if at & 1 == 0 {
                    run.begin("subscribe");
                    ring.subscribe(options, token)
                } else {
                    run.begin("subscribe_at");
                    ring.subscribe_at(usize::from(at >> 1) % (table + 1), options, token)
                };
                run.note(&result);
                match &result {
                    Ok(s) => {
                        let at_index = usize::from(at >> 1) % (table + 1);
                        run.ensure(
                            s.index() < table
                                && token != 0
                                && s.is_lossless() == lossless
                                && (at & 1 == 0 || s.index() == at_index),
                            || format!("joined entry {} of {table}", s.index()),
                        )?;
                    }
                    Err(e) => run.ensure(
                        match e {
                            SubscribeError::ZeroToken => token == 0,
                            SubscribeError::OutOfRange { index } => *index >= table,
                            SubscribeError::EntryTaken { index } => *index < table,
                            SubscribeError::TableFull => at & 1 == 0,
                            SubscribeError::Corrupt(_) => !run.clean(),
                            _ => false,
                        },
                        || format!("{e:?} for token {token}"),
                    )?,
                }
                handles[slot] = result.ok();
            }
            4 => {
                run.begin("leave");
                handles[c.below(HANDLES)] = None;
            }
            5 | 6 => {
                run.begin("recv");
                let slot = c.below(HANDLES);
                let attempts = 1 + u32::from(c.byte() % 3);
                let mut buf = vec![0xa5u8; buffer(c, slot_bytes)];
                let Some(s) = handles[slot].as_mut() else {
                    continue;
                };
                s.set_max_attempts(attempts);
                let head = s.head();
                let result = s.recv(&mut buf);
                run.note(&result);
                let tail = ring.tail();
                run.ensure_clean((s.head().wrapping_sub(tail) as i64) <= 0, || {
                    format!("{result:?}: the head {} passed the tail {tail}", s.head())
                })?;
                match result {
                    Ok(r) => {
                        // Forward in wrapping order (a corrupt tail may be anywhere).
                        let forward = (r.position.wrapping_sub(head) as i64) >= 0;
                        run.ensure(
                            r.len <= slot_bytes
                                && r.len <= buf.len()
                                && forward
                                && (!s.is_lossless() || r.position == head)
                                && s.head() == r.position.wrapping_add(1),
                            || format!("{r:?} at head {head}, buffer {}", buf.len()),
                        )?;
                        let want = usize::try_from(r.position)
                            .ok()
                            .and_then(|p| published.get(p));
                        run.check_value(&buf[..r.len], want.map(Vec::as_slice))?;
                    }
                    Err(RecvError::BufferTooSmall { needed }) => run
                        .ensure(needed > buf.len() && needed <= slot_bytes, || {
                            format!("BufferTooSmall({needed}) with buffer {}", buf.len())
                        })?,
                    Err(e @ RecvError::Corrupt(_)) => {
                        run.corruption_reported(|| format!("{e:?} on a clean ring"))?
                    }
                    Err(_) => {}
                }
            }
            7 => {
                let arg = c.byte();
                let index = c.below(table + 1);
                let info = ring.subscriber(index);
                run.ensure(info.is_some() == (index < table), || {
                    format!("entry {index} of {table}: {info:?}")
                })?;
                if let Some(info) = info {
                    run.ensure(info.state <= entry::STATE_MASK, || format!("{info:?}"))?;
                }
                let generation = info.map_or(0, |i| i.generation);
                let result = match arg % 4 {
                    0 => {
                        run.begin("evict");
                        ring.evict(index)
                    }
                    1 => {
                        run.begin("evict_generation");
                        ring.evict_generation(index, generation)
                    }
                    _ => {
                        run.begin(if arg % 4 == 2 {
                            "reclaim"
                        } else {
                            "reclaim_generation"
                        });
                        // Reclaiming is for dead owners: our subscriber there dies first.
                        for handle in &mut handles {
                            if handle.as_ref().is_some_and(|s| s.index() == index) {
                                if let Some(s) = handle.take() {
                                    std::mem::forget(s);
                                }
                            }
                        }
                        if arg % 4 == 2 {
                            ring.reclaim(index)
                        } else {
                            ring.reclaim_generation(index, generation)
                        }
                    }
                };
                run.note(&result);
            }
            8 => {
                if tag & 0x20 == 0 {
                    run.begin("read_at");
                    let offset = i64::from(c.byte() as i8) % 24;
                    let tail = ring.tail();
                    let position = if c.byte() & 0x80 != 0 {
                        c.u64()
                    } else {
                        tail.saturating_add_signed(offset.min(3))
                    };
                    let mut buf = vec![0xa5u8; buffer(c, slot_bytes)];
                    let result = ring.read_at(position, &mut buf);
                    run.note(&result);
                    read_at_checked(run, result, position, tail, &buf, slot_bytes, &published)?;
                } else {
                    run.begin("history");
                    let k = small_count(c);
                    let tail = ring.tail();
                    let range = ring.history(k);
                    run.ensure(
                        range.end == tail
                            && range.start <= range.end
                            && range.end - range.start <= k.min(capacity),
                        || format!("history({k}) = {range:?} with tail {tail}"),
                    )?;
                    for position in range {
                        let mut buf = vec![0xa5u8; slot_bytes];
                        let result = ring.read_at(position, &mut buf);
                        run.note(&result);
                        read_at_checked(run, result, position, tail, &buf, slot_bytes, &published)?;
                    }
                }
            }
            _ => {
                let arg = c.byte();
                let token = run.token(c.byte());
                match arg % 3 {
                    0 => {
                        run.begin("drop producer");
                        producer = None;
                    }
                    1 => {
                        run.begin("claim producer");
                        let result = ring.producer(token);
                        run.note(&result);
                        claimed(run, &result, token)?;
                        producer = result.ok().or(producer);
                    }
                    _ => {
                        run.begin("take over producer");
                        if let Some(p) = producer.take() {
                            std::mem::forget(p);
                        }
                        let result = ring.producer_takeover(ring.producer_owner(), token);
                        run.note(&result);
                        claimed(run, &result, token)?;
                        producer = result.ok();
                    }
                }
            }
        }
    }
    settle_last(run, &mut transient);
    Ok(())
}

/// A history or lag argument: small, or `u64::MAX`.
fn small_count(c: &mut Cursor<'_>) -> u64 {
    match c.byte() % 20 {
        19 => u64::MAX,
        n => u64::from(n),
    }
}

fn read_at_checked(
    run: &mut Run,
    result: Result<usize, ReadAtError>,
    position: u64,
    tail: u64,
    buf: &[u8],
    slot_bytes: usize,
    published: &[Vec<u8>],
) -> Result<(), Violation> {
    match result {
        Ok(len) => {
            run.ensure(
                position < tail && len <= slot_bytes && len <= buf.len(),
                || format!("read {len} bytes at {position}, tail {tail}"),
            )?;
            let want = usize::try_from(position)
                .ok()
                .and_then(|p| published.get(p));
            run.check_value(&buf[..len], want.map(Vec::as_slice))
        }
        Err(ReadAtError::NotPublished) => run.ensure(position >= tail, || {
            format!("NotPublished for {position} below tail {tail}")
        }),
        Err(ReadAtError::BufferTooSmall { needed }) => run
            .ensure(needed > buf.len() && needed <= slot_bytes, || {
                format!("BufferTooSmall({needed}) with buffer {}", buf.len())
            }),
        Err(ReadAtError::Overwritten) => Ok(()),
        Err(e @ ReadAtError::Corrupt(_)) => {
            run.corruption_reported(|| format!("{e:?} on a clean ring"))
        }
        Err(e) => run.ensure(false, || format!("unknown error {e:?}")),
    }
}

// ---------------------------------------------------------------------------------
// Attached regions

/// Views arbitrary bytes as a whole region through [`tensorlane_core::attach`], then
/// runs a few operations on it.
///
/// Input: a structure byte, geometry bytes, a length byte, a script length and the
/// script (operations and overwrites, as in [`run_hostile`]), then the region's
/// contents (zero past the end of the input). The region starts 128-byte aligned,
/// or 8 bytes past that when the length byte asks for a misaligned start; its length
/// is the structure's exact size, a few words more or less, or a short length that
/// may not even hold the control block. `attach` must refuse exactly the misaligned
/// and short regions, the structure's constructor exactly the short bodies, and the
/// operations on the rest must hold to the module's oracle. A region whose contents
/// are all zero is a fresh one and is held to the clean-memory checks too.
pub fn run_attached(data: &[u8]) -> Result<HostileOutcome, Violation> {
    let mut c = Cursor::new(data);
    match c.byte() % 3 {
        0 => {
            let geometry = register_geometry(&mut c);
            attached::<SeqlockHeader>(&mut c, Structure::Register, geometry.body_words(), {
                move |parts, c, run| {
                    Seqlock::new(parts, geometry).map(|_| drive_register(parts, geometry, c, run))
                }
            })
        }
        1 => {
            let geometry = spsc_geometry(&mut c);
            attached::<SpscHeader>(&mut c, Structure::Spsc, geometry.body_words(), {
                move |parts, c, run| {
                    Spsc::new(parts, geometry).map(|_| drive_spsc(parts, geometry, c, run))
                }
            })
        }
        _ => {
            let geometry = broadcast_geometry(&mut c);
            attached::<BroadcastHeader>(&mut c, Structure::Broadcast, geometry.body_words(), {
                move |parts, c, run| {
                    Broadcast::new(parts, geometry)
                        .map(|_| drive_broadcast(parts, geometry, c, run))
                }
            })
        }
    }
}

/// Builds the region for [`run_attached`] and hands it to `drive`, which returns
/// `Err(GeometryError)` when the structure's constructor refuses the body.
fn attached<H: ControlBlock>(
    c: &mut Cursor<'_>,
    structure: Structure,
    body_words: usize,
    drive: impl FnOnce(
        tensorlane_core::Parts<'_, H>,
        &mut Cursor<'_>,
        &mut Run,
    ) -> Result<Result<(), Violation>, GeometryError>,
) -> Result<HostileOutcome, Violation> {
    let header_bytes = std::mem::size_of::<H>();
    let exact = header_bytes + 8 * body_words;
    let shape = c.byte();
    let misaligned = shape & 0x80 != 0;
    let len = match shape % 8 {
        // Short: possibly not even a control block.
        0 => usize::from(c.byte()) * 4,
        // A few words short of the body.
        1 => exact.saturating_sub(8 * (1 + c.below(4))),
        // A few spare words and bytes.
        2 => exact + c.below(40),
        _ => exact,
    };
    let script_len = c.below(64);
    let script = c.take(script_len);
    let contents = c.rest();

    // Over-allocate so that a 128-aligned start with `len` bytes after it exists.
    let words = len.div_ceil(8) + 2 + 128 / 8;
    let mut buffer: Vec<AtomicU64> = (0..words).map(|_| AtomicU64::new(0)).collect();
    let skip = (128 - buffer.as_ptr() as usize % 128) % 128 / 8 + usize::from(misaligned);
    let region_words = buffer[skip..].iter().take(len.div_ceil(8));
    for (word, chunk) in region_words.zip(contents.chunks(8)) {
        let mut le = [0u8; 8];
        le[..chunk.len()].copy_from_slice(chunk);
        word.store(u64::from_le_bytes(le), Ordering::Relaxed);
    }
    let clean = buffer.iter().all(|w| w.load(Ordering::Relaxed) == 0);
    let mut run = Run::new(structure, true, clean);
    run.op = "attach";
    // SAFETY: `skip + len.div_ceil(8) <= buffer.len()` (allocated above), so the
    // `len` bytes from the start lie inside the buffer, which is live and not moved
    // until the end of this function, after the last use of the parts; it is only
    // ever accessed through `AtomicU64` (the stores above, the core's atomics and the
    // overwrites), except for the core's own loans, which the SPSC protocol makes
    // exclusive; no reference of another type into it exists.
    let parts = unsafe { attach::<H>(buffer.as_mut_ptr().add(skip).cast::<u8>(), len) };
    match parts {
        Err(e) => {
            run.note_error(&e);
            let expected = match e {
                AttachError::Misaligned { required } => misaligned && required == 128,
                AttachError::TooShort { needed, found } => {
                    !misaligned && needed == header_bytes && found == len && len < header_bytes
                }
                _ => false,
            };
            run.ensure(expected, || {
                format!("{e:?} for {len} bytes (misaligned: {misaligned})")
            })?;
        }
        Ok(parts) => {
            run.outcome.ok += 1;
            let body = parts.body().len();
            run.ensure(
                !misaligned && len >= header_bytes && body == (len - header_bytes) / 8,
                || format!("attached {len} bytes as a body of {body} words"),
            )?;
            let mut script = Cursor::new(script);
            match drive(parts, &mut script, &mut run) {
                Ok(result) => result?,
                Err(e) => {
                    run.op = "new";
                    run.note_error(&e);
                    run.ensure(
                        e == GeometryError::BodyTooShort {
                            needed: body_words,
                            found: body,
                        } && body < body_words,
                        || format!("{e:?} for a body of {body} words"),
                    )?;
                }
            }
        }
    }
    drop(buffer);
    Ok(run.outcome)
}

// ---------------------------------------------------------------------------------
// Header words

/// Decodes segment header words built from the input with
/// [`tensorlane_shm::header::decode`], which must accept or reject them and never
/// panic.
///
/// Input: a flags byte, then 27 words (8 bytes each, or 1 byte each in compact
/// mode, short input padded with 0), then the object size (8 bytes, or a signed
/// offset from the `segment_bytes` word). Flags can set the magic and the version,
/// derive the size words (`tensor_bytes`, `slot_bytes`, `core_offset`,
/// `metadata_offset`, `metadata_bytes` below the cap, `segment_bytes`) from the kind, dtype, shape and counts, and recompute the
/// checksum, so that inputs reach the checks behind the checksum.
///
/// An accepted header must describe its words (kind, counts, sizes, creator fields,
/// clock) and re-encode ([`tensorlane_shm::header::encode`]) to the same words. The one
/// exception is the unused shape words (`shape[ndim..8]`), which docs/LAYOUT.md
/// leaves unchecked (the checksum covers them): encoding writes them as 0, with a
/// checksum to match; the re-encoded words must then decode to the same header. The
/// words must also survive a store into a [`SegmentHeader`] and
/// [`tensorlane_shm::header::read_words`].
pub fn run_header_words(data: &[u8]) -> Result<HostileOutcome, Violation> {
    let mut c = Cursor::new(data);
    let mut run = Run::new(Structure::HeaderWords, false, false);
    let flags = c.byte();
    let compact = flags & 0x01 != 0;
    let mut words = [0u64; field::COUNT_OF_FIELDS];
    for w in &mut words {
        *w = if compact {
            u64::from(c.byte())
        } else {
            c.u64()
        };
    }
    if flags & 0x02 != 0 {
        words[field::MAGIC] = header::MAGIC;
    }
    if flags & 0x04 != 0 {
        words[field::VERSION] = header::LAYOUT_VERSION;
    }
    if flags & 0x08 != 0 {
        derive_sizes(&mut words);
    }
    if flags & 0x10 != 0 {
        words[field::CHECKSUM] = header::checksum(&words[..field::CHECKSUM]);
    }
    let object_bytes = if flags & 0x20 != 0 {
        words[field::SEGMENT_BYTES].wrapping_add(c.byte() as i8 as i64 as u64)
    } else {
        c.u64()
    };

    run.begin("read_words");
    // SAFETY: `SegmentHeader` is `#[repr(C)]` and made only of `AtomicU64`,
    // `AtomicU32` and arrays and lines of them, for which all-zero bytes are valid.
    let segment: Box<SegmentHeader> = Box::new(unsafe { std::mem::zeroed() });
    for (i, w) in words.iter().enumerate() {
        segment.field(i).store(*w, Ordering::Relaxed);
    }
    let read = header::read_words(&segment);
    run.ensure(read == words, || format!("stored {words:?}, read {read:?}"))?;

    run.begin("decode");
    let result = header::decode(&words, object_bytes);
    run.note(&result);
    let Ok(info) = result else {
        return Ok(run.outcome);
    };
    let ndim = info.spec.shape().len();
    run.ensure(
        info.kind.code() == words[field::KIND]
            && u64::from(info.spec.dtype().code()) == words[field::DTYPE]
            && ndim as u64 == words[field::NDIM]
            && info.spec.shape() == &words[field::SHAPE..field::SHAPE + ndim]
            && info.count as u64 == words[field::COUNT]
            && info.subscribers as u64 == words[field::SUBSCRIBERS]
            && info.segment_bytes as u64 == words[field::SEGMENT_BYTES]
            && info.segment_bytes as u64 <= object_bytes
            && Some(info.segment_bytes) == info.geometry.segment_bytes()
            && info.creator_pid == words[field::CREATOR_PID]
            && info.creator_uid == words[field::CREATOR_UID]
            && info.created_ns == words[field::CREATED_NS]
            && info.clock.code() == words[field::CLOCK],
        || format!("{info:?} from {words:?}, object of {object_bytes} bytes"),
    )?;

    let area = header::metadata_area(&words);
    run.ensure(
        area.offset == info.geometry.segment_bytes().unwrap_or(0) as u64
            && area.bytes <= tensorlane_shm::MAX_METADATA_BYTES as u64
            && header::total_bytes(area.offset as usize, area.bytes as usize)
                == Some(info.segment_bytes),
        || format!("metadata area {area:?} of {info:?}"),
    )?;
    if area.bytes != 0 || area.checksum != tensorlane_shm::metadata::checksum(&[]) {
        // The area's bytes are not part of the input: the header words cannot be
        // re-encoded without them.
        return Ok(run.outcome);
    }

    run.begin("encode");
    let encoded = header::encode(&info);
    let mut canonical = words;
    canonical[field::SHAPE + ndim..field::SHAPE + 8].fill(0);
    canonical[field::CHECKSUM] = header::checksum(&canonical[..field::CHECKSUM]);
    run.ensure(encoded == Some(canonical), || {
        format!("{info:?} from {words:?} encodes as {encoded:?}")
    })?;
    let unused_zero = words[field::SHAPE + ndim..field::SHAPE + 8]
        .iter()
        .all(|&w| w == 0);
    run.ensure(!unused_zero || encoded == Some(words), || {
        format!("{words:?} encodes as {encoded:?}")
    })?;
    if let Some(encoded) = encoded {
        run.begin("decode again");
        let again = header::decode(&encoded, object_bytes);
        run.ensure(again.as_ref() == Ok(&info), || {
            format!("{encoded:?} decodes as {again:?}, first as {info:?}")
        })?;
    }
    Ok(run.outcome)
}

/// Sets the size words that follow from the kind, dtype, shape and counts, where
/// those describe a valid segment.
fn derive_sizes(words: &mut [u64; field::COUNT_OF_FIELDS]) {
    let ndim = (words[field::NDIM] % 9) as usize;
    words[field::NDIM] = ndim as u64;
    words[field::CORE_OFFSET] = header::HEADER_BYTES as u64;
    let Some(dtype) = u32::try_from(words[field::DTYPE])
        .ok()
        .and_then(DType::from_code)
    else {
        return;
    };
    let Ok(spec) = TensorSpec::new(dtype, &words[field::SHAPE..field::SHAPE + ndim]) else {
        return;
    };
    let slot_bytes = spec.byte_len() + header::FRAME_BYTES;
    words[field::TENSOR_BYTES] = spec.byte_len() as u64;
    words[field::SLOT_BYTES] = slot_bytes as u64;
    let Some(kind) = Kind::from_code(words[field::KIND]) else {
        return;
    };
    let (Ok(count), Ok(subscribers)) = (
        usize::try_from(words[field::COUNT]),
        usize::try_from(words[field::SUBSCRIBERS]),
    ) else {
        return;
    };
    if let Some(bytes) = Geometry::new(kind, count, slot_bytes, subscribers)
        .ok()
        .and_then(|g| g.segment_bytes())
    {
        words[field::METADATA_OFFSET] = bytes as u64;
        let metadata =
            words[field::METADATA_BYTES] % (tensorlane_shm::MAX_METADATA_BYTES as u64 + 1);
        words[field::METADATA_BYTES] = metadata;
        words[field::SEGMENT_BYTES] =
            header::total_bytes(bytes, metadata as usize).unwrap_or(bytes) as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_names() {
        assert_eq!(
            variant("Corrupt(Indices { head: 1, tail: 9 })"),
            "Corrupt(Indices)"
        );
        assert_eq!(variant("Stalled { attempts: 2 }"), "Stalled");
        assert_eq!(variant("Empty"), "Empty");
        assert_eq!(variant("Field { field: \"kind\", found: 0 }"), "Field");
    }

    #[test]
    fn empty_and_short_inputs_run() {
        for data in [&[][..], &[0], &[1], &[2], &[1, 0xc0], &[2, 0, 0, 0, 0xff]] {
            run_hostile(data).unwrap();
            run_header(data).unwrap();
        }
    }

    #[test]
    fn a_valid_header_round_trips() {
        // Flags: magic, version, derived sizes, checksum, object size from the header.
        let mut words = [0u64; field::COUNT_OF_FIELDS];
        words[field::KIND] = 3;
        words[field::DTYPE] = 1;
        words[field::NDIM] = 2;
        words[field::SHAPE] = 2;
        words[field::SHAPE + 1] = 3;
        words[field::COUNT] = 4;
        words[field::SUBSCRIBERS] = 2;
        words[field::CLOCK] = 1;
        words[field::METADATA_CHECKSUM] = tensorlane_shm::metadata::checksum(&[]);
        let mut data = vec![0x02 | 0x04 | 0x08 | 0x10 | 0x20];
        for w in words {
            data.extend_from_slice(&w.to_le_bytes());
        }
        data.push(0);
        let outcome = run_header_words(&data).unwrap();
        assert_eq!(outcome.ok, 1, "{outcome:?}");
    }

    #[test]
    fn clean_runs_check_values() {
        // A ring (kind 1), capacity 4, 8-byte slots; push, push, pop, pop.
        let outcome = run_hostile(&[1, 2, 8, 0, 5, 0, 6, 2, 1, 2, 1]).unwrap();
        assert_eq!(outcome.values_checked, 2, "{outcome:?}");
        assert!(!outcome.corrupted);
    }

    /// SPSC: a tail reported corrupt by `available` and then restored must not make
    /// the next `pop` deliver an item that was never pushed, nor move the consumer's
    /// head past the producer's tail.
    #[test]
    fn spsc_resumes_after_a_reported_and_restored_tail() {
        let data = [
            1, 2, 8, // ring, capacity 4, 8-byte slots
            0, 3, // push 3 bytes
            0xf0, 0, 0, 3, 11,   // tail := 1 << 40 for the next operation only
            0x26, // available: Corrupt(Indices); then the tail is restored
            2, 1, // pop: the item pushed
            2, 1, // pop: Empty, not an item never pushed
            0, 3, 2, 1, // push, pop
        ];
        let outcome = run_hostile(&data).unwrap();
        assert_eq!(outcome.restores, 1, "{outcome:?}");
        assert!(!outcome.corrupted, "{outcome:?}");
        assert_eq!(outcome.values_checked, 2, "{outcome:?}");
        assert_eq!(outcome.errors.get("pop: Empty"), Some(&1), "{outcome:?}");
    }

    /// SPSC: an item whose length word is impossible is reported and let go; once the
    /// word is restored, the ring goes on with the next item.
    #[test]
    fn spsc_lets_an_item_of_impossible_length_go() {
        let data = [
            1, 2, 8, // ring, capacity 4, 8-byte slots
            0, 3, 0, 4, // push two items
            0xf1, 1, 0, 2, 3, 4, // slot 0's length := u64::MAX, for one operation
            2, 1, // pop: Corrupt(Length), the item is gone
            2, 1, // pop: the second item
            2, 1, // pop: Empty
        ];
        let outcome = run_hostile(&data).unwrap();
        assert_eq!(outcome.restores, 1, "{outcome:?}");
        assert_eq!(outcome.values_checked, 1, "{outcome:?}");
        assert_eq!(outcome.errors.get("pop: Empty"), Some(&1), "{outcome:?}");
    }

    /// Broadcast: a lossy subscriber facing a tail 10 positions ahead (reported, since
    /// the slot's stamp refutes it) must not keep a head past the restored tail.
    #[test]
    fn broadcast_resumes_after_a_reported_and_restored_tail() {
        let data = [
            2, 2, 8, 1, // broadcast, capacity 4, 8-byte slots, 2 entries
            3, 0, 0, 4, 0, 1, // lossy subscriber (lag 4) in handle 0
            0xf0, 0, 0, 1, 10, // tail := 0 + 10 for the next operation only
            5, 0, 0, 1, // recv: Corrupt(Stamp); then the tail is restored
            5, 0, 0, 1, // recv: Empty, and the head is still 0
            0, 8, // publish position 0
            5, 0, 0, 1, // recv: position 0
        ];
        let outcome = run_hostile(&data).unwrap();
        assert_eq!(outcome.restores, 1, "{outcome:?}");
        assert!(!outcome.corrupted, "{outcome:?}");
        assert_eq!(outcome.values_checked, 1, "{outcome:?}");
        assert_eq!(outcome.errors.get("recv: Empty"), Some(&1), "{outcome:?}");
    }

    /// Register: a `published` that goes back (reported) or names a sequence no writer
    /// reaches (reported) is restored, and the readers go on with the latest value.
    #[test]
    fn register_resumes_after_reported_and_restored_sequences() {
        let data = [
            0, 1, 8, // register, 2 slots, 8-byte values
            0, 8, 0, 8, 0, 8, // three writes
            2, 0, 0, 1, // read: sequence 3
            0xf0, 0, 0, 3, 1, // published := 1 for the next operation only
            2, 0, 0, 1, // read: Corrupt(SequenceWentBack); restored
            0xf0, 0, 0, 3, 6, // published := 1 << 63 for the next operation only
            2, 0, 0, 1, // read: Corrupt(Stamp); restored
            2, 0, 0, 1, // read: sequence 3 again
            0, 8, 0x26, 0, 0, 1, // write, read_new: sequence 4
        ];
        let outcome = run_hostile(&data).unwrap();
        assert_eq!(outcome.restores, 2, "{outcome:?}");
        assert!(!outcome.corrupted, "{outcome:?}");
        assert_eq!(outcome.values_checked, 3, "{outcome:?}");
    }

    /// An operation under a transient overwrite that does not report corruption
    /// leaves the memory counted as corrupt.
    #[test]
    fn an_unreported_transient_overwrite_keeps_the_memory_corrupt() {
        // Register; published := 0 for a read, which answers Empty.
        let data = [0, 1, 8, 0, 8, 0xf0, 0, 0, 3, 0, 2, 0, 0, 1, 2, 0, 0, 1];
        let outcome = run_hostile(&data).unwrap();
        assert_eq!(outcome.restores, 0, "{outcome:?}");
        assert!(outcome.corrupted, "{outcome:?}");
    }

    #[test]
    fn overwrites_are_reported_as_typed_errors() {
        // A ring, then the head word set to u64::MAX (header field 1), then a pop.
        let outcome = run_hostile(&[1, 2, 8, 0, 5, 0xc0, 0, 1, 3, 4, 2, 1]).unwrap();
        assert!(outcome.corrupted, "{outcome:?}");
    }
}
