//! The N-slot seqlock register: the latest value of a stream.
//!
//! One writer, any number of readers, no reader ever writes shared memory.
//!
//! # Protocol
//! Write number `s` (`s = 1, 2, ...`) goes to slot `s mod N`:
//! 1. `stamp := 2s + 1` (odd: being written), relaxed, then a release fence;
//! 2. length and payload words, relaxed;
//! 3. `stamp := 2s` (even: complete), release;
//! 4. `published := s`, release.
//!
//! A reader loads `published = p` (acquire); `p = 0` means nothing was written. It
//! loads the stamp of slot `p mod N` (acquire) and proceeds only if it is `2p`; it
//! copies length and payload (relaxed), issues an acquire fence, and reloads the stamp
//! (relaxed): an unchanged stamp proves the copy is write `p`, untorn. Otherwise it
//! retries, at most `max_attempts` times, then reports [`ReadError::Stalled`].
//! [`SeqlockReader::read_ranges`] copies only some byte ranges of the value between the
//! two stamp loads, all in the same attempt, so they come from one write, untorn.
//!
//! # Invariants
//! - The value returned for sequence `p` is exactly the bytes of write `p`.
//! - A reader never returns a sequence lower than one it returned before (a register
//!   whose `published` moves back reports [`Corruption::SequenceWentBack`]).
//! - With `N >= 2`, a writer that stops anywhere inside write `s` leaves write `s - 1`
//!   readable: `published` still names it and its slot is not the one being written.
//! - Writes are wait-free. A reader's work is bounded by `max_attempts` copies.
//!
//! # Example
//! ```
//! # #[cfg(not(any(feature = "loom", feature = "shuttle")))] {
//! use tensorlane_core::{HeapRegion, Seqlock, SeqlockGeometry, SeqlockHeader};
//! let geometry = SeqlockGeometry::new(3, 16).unwrap();
//! let region = HeapRegion::<SeqlockHeader>::new(geometry.body_words());
//! let lane = Seqlock::new(&region, geometry).unwrap();
//!
//! let mut writer = lane.writer(1).unwrap();
//! let mut reader = lane.reader();
//! writer.write(b"frame 1").unwrap();
//! writer.write(b"frame 2").unwrap();
//!
//! let mut buf = [0u8; 16];
//! let got = reader.read(&mut buf).unwrap();
//! assert_eq!((got.seq, &buf[..got.len]), (2, &b"frame 2"[..]));
//! assert!(lane.writer(2).is_err()); // one writer at a time
//! # }
//! ```

use crate::claim::{self, ClaimError};
use crate::error::{check_body, check_count, Corruption, GeometryError};
use crate::line::Line;
use crate::region::{sealed, ControlBlock, Region};
use crate::slot::{load_bytes_at, load_parts, parts_len, slot_stride, store_parts, Slot};
use crate::sync::{fence, spin_hint, AtomicU64, Ordering};

/// Most slots a register may have.
pub const MAX_REGISTER_SLOTS: usize = 1 << 16;

/// Copies a reader attempts before it reports [`ReadError::Stalled`], by default.
pub const DEFAULT_READ_ATTEMPTS: u32 = 64;

/// The register's control block: 256 bytes, zero when fresh.
#[repr(C)]
#[derive(Debug, Default)]
pub struct SeqlockHeader {
    /// Sequence of the last complete write; 0 before the first.
    pub published: Line<AtomicU64>,
    /// Owner token of the writer; 0 when no writer holds the register.
    pub writer: Line<AtomicU64>,
}

impl sealed::Sealed for SeqlockHeader {}
impl ControlBlock for SeqlockHeader {}

#[cfg(not(any(feature = "loom", feature = "shuttle")))]
const _: () = {
    assert!(core::mem::size_of::<SeqlockHeader>() == 256);
    assert!(core::mem::align_of::<SeqlockHeader>() == 128);
    assert!(core::mem::offset_of!(SeqlockHeader, published) == 0);
    assert!(core::mem::offset_of!(SeqlockHeader, writer) == 128);
};

/// Slot count and slot size of a register, validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqlockGeometry {
    slots: usize,
    slot_bytes: usize,
    stride: usize,
    body_words: usize,
}

impl SeqlockGeometry {
    /// `slots` slots (1 to [`MAX_REGISTER_SLOTS`]; 2 or 3 is usual) of `slot_bytes`
    /// payload bytes each.
    pub fn new(slots: usize, slot_bytes: usize) -> Result<Self, GeometryError> {
        check_count("register slots", slots, MAX_REGISTER_SLOTS)?;
        let stride = slot_stride(slot_bytes).ok_or(GeometryError::SlotTooLarge {
            found: slot_bytes as u64,
        })?;
        let body_words = stride.checked_mul(slots).ok_or(GeometryError::Overflow)?;
        body_words.checked_mul(8).ok_or(GeometryError::Overflow)?;
        Ok(SeqlockGeometry {
            slots,
            slot_bytes,
            stride,
            body_words,
        })
    }

    /// Number of slots.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Payload bytes per slot.
    pub fn slot_bytes(&self) -> usize {
        self.slot_bytes
    }

    /// Words per slot, including the stamp and length words.
    pub fn slot_stride(&self) -> usize {
        self.stride
    }

    /// Words the body must hold.
    pub fn body_words(&self) -> usize {
        self.body_words
    }

    fn slot<'a>(&self, body: &'a [AtomicU64], seq: u64) -> Slot<'a> {
        // `seq % slots < slots`, so the index is in bounds whatever `seq` is.
        Slot::at(body, 0, self.stride, (seq % self.slots as u64) as usize)
    }
}

/// A register over a region whose body length was checked against the geometry.
#[derive(Debug, Clone)]
pub struct Seqlock<R> {
    region: R,
    geometry: SeqlockGeometry,
}

impl<R: Region<Header = SeqlockHeader>> Seqlock<R> {
    /// Validates the region's body against `geometry`.
    pub fn new(region: R, geometry: SeqlockGeometry) -> Result<Self, GeometryError> {
        check_body(geometry.body_words, region.body().len())?;
        Ok(Seqlock { region, geometry })
    }

    /// The geometry.
    pub fn geometry(&self) -> SeqlockGeometry {
        self.geometry
    }

    /// Sequence of the last complete write (0 if none).
    pub fn published(&self) -> u64 {
        // Relaxed: a count, not a hand-over. Nothing is read on its strength without
        // its own synchronisation: a read validates every value by the slot's stamps
        // (Acquire), and the GPU lanes' re-check issues its Acquire fence before this
        // load (`tensorlane_gpu::protocol::copy_intact`). Weakening it was caught by no
        // suite (VERIFICATION.md, "Every ordering needed").
        self.region.header().published.load(Ordering::Relaxed)
    }

    /// Token of the current writer, 0 if none.
    pub fn writer_owner(&self) -> u64 {
        // Relaxed: a token for inspection and for a take-over's compare-exchange,
        // which fails if the token changed; the take-over's ordering comes from the
        // claim and the caller's lock (crate::claim), not from this load.
        self.region.header().writer.load(Ordering::Relaxed)
    }

    /// A reader that has seen nothing yet.
    pub fn reader(&self) -> SeqlockReader<R>
    where
        R: Clone,
    {
        SeqlockReader {
            lane: self.clone(),
            last: 0,
            max_attempts: DEFAULT_READ_ATTEMPTS,
        }
    }

    /// Claims the writer role for the non-zero `token`.
    pub fn writer(&self, token: u64) -> Result<SeqlockWriter<R>, ClaimError>
    where
        R: Clone,
    {
        self.takeover(0, token)
    }

    /// Takes the writer role over from `previous`, which the caller knows is gone
    /// (for example: its process died). Writes continue after the last published
    /// sequence; a write `previous` left unfinished is never published.
    ///
    /// The caller must know that `previous`'s last store happens-before this call:
    /// the claim word cannot order it, because a dead owner never released it (see
    /// the shm layer, which takes over only while holding the role's kernel-released
    /// lock). The writer touches payload only through atomic words, so breaking this
    /// is no undefined behaviour, but a previous writer still writing makes readers'
    /// values torn; hence the requirement.
    pub fn takeover(&self, previous: u64, token: u64) -> Result<SeqlockWriter<R>, ClaimError>
    where
        R: Clone,
    {
        claim::takeover(&self.region.header().writer, previous, token)?;
        // The caller's contract already orders every store of the previous writer
        // before this load, so it reads the last `published` and Relaxed would do
        // (the loom take-over scenarios pass with it). Acquire is kept as defence:
        // should the contract's edge be missing, it still pairs with the previous
        // writer's Release store of `published` and orders the writes it names.
        let last = self.region.header().published.load(Ordering::Acquire);
        Ok(SeqlockWriter {
            lane: self.clone(),
            token,
            next: last.wrapping_add(1),
        })
    }
}

/// Why a write was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteError {
    /// The value is larger than a slot.
    TooLarge {
        /// Bytes given.
        len: usize,
        /// Slot size.
        max: usize,
    },
}

impl core::fmt::Display for WriteError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            WriteError::TooLarge { len, max } => {
                write!(
                    f,
                    "value of {len} bytes exceeds the slot size of {max} bytes"
                )
            }
        }
    }
}

impl core::error::Error for WriteError {}

/// The register's only writer. Dropping it gives the role back.
#[derive(Debug)]
pub struct SeqlockWriter<R: Region<Header = SeqlockHeader>> {
    lane: Seqlock<R>,
    token: u64,
    next: u64,
}

impl<R: Region<Header = SeqlockHeader>> SeqlockWriter<R> {
    /// Publishes `value` as the register's latest value and returns its sequence.
    /// Wait-free: a fixed number of stores, whatever readers do.
    pub fn write(&mut self, value: &[u8]) -> Result<u64, WriteError> {
        self.write_parts(&[value])
    }

    /// Publishes the concatenation of `parts` (for example a frame header and a
    /// tensor) without first copying them together.
    ///
    /// # Panics
    /// If a part other than the last is not a multiple of 8 bytes long.
    pub fn write_parts(&mut self, parts: &[&[u8]]) -> Result<u64, WriteError> {
        let max = self.lane.geometry.slot_bytes;
        let len = parts_len(parts);
        if len > max {
            return Err(WriteError::TooLarge { len, max });
        }
        let seq = self.next;
        let header = self.lane.region.header();
        let slot = self.lane.geometry.slot(self.lane.region.body(), seq);
        slot.stamp()
            .store(seq.wrapping_mul(2).wrapping_add(1), Ordering::Relaxed);
        // Release fence: the odd stamp above becomes visible no later than any payload
        // store below. Partner: the reader's Acquire fence before its second stamp load;
        // a reader that saw any of these payload stores then sees the odd (or a later)
        // stamp and discards its copy.
        fence(Ordering::Release);
        slot.length().store(len as u64, Ordering::Relaxed);
        store_parts(slot.payload(), parts);
        // Release: the payload above is visible to whoever sees the even stamp.
        // Partner: the reader's Acquire load of the stamp (first check).
        slot.stamp().store(seq.wrapping_mul(2), Ordering::Release);
        // Release: a reader that sees `published = seq` also sees the even stamp.
        // Partner: the reader's Acquire load of `published`.
        header.published.store(seq, Ordering::Release);
        self.next = seq.wrapping_add(1);
        Ok(seq)
    }

    /// Sequence the next write will get.
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// The owner token this writer holds.
    pub fn token(&self) -> u64 {
        self.token
    }
}

impl<R: Region<Header = SeqlockHeader>> Drop for SeqlockWriter<R> {
    fn drop(&mut self) {
        claim::release(&self.lane.region.header().writer, self.token);
    }
}

/// A successful read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadInfo {
    /// Sequence of the value read (1 for the first write).
    pub seq: u64,
    /// Length of the value in bytes; the value is `buf[..len]`.
    pub len: usize,
    /// Writes this reader skipped since the previous value it returned (0 on the
    /// first read).
    pub missed: u64,
}

/// Why a read returned no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadError {
    /// Nothing has been written yet.
    Empty,
    /// `read_new`: the latest value is the one this reader already returned.
    NotNew,
    /// The buffer is shorter than the value.
    BufferTooSmall {
        /// Bytes needed.
        needed: usize,
    },
    /// Every attempt raced a write to the slot being read (a writer lapping a slow
    /// reader, or, with one slot, a writer stopped mid-write). Retry, or use more slots.
    Stalled {
        /// Attempts made.
        attempts: u32,
    },
    /// Shared state no correct writer produces.
    Corrupt(Corruption),
}

impl core::fmt::Display for ReadError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ReadError::Empty => f.write_str("nothing written yet"),
            ReadError::NotNew => f.write_str("no value newer than the last one read"),
            ReadError::BufferTooSmall { needed } => {
                write!(f, "buffer too small: the value has {needed} bytes")
            }
            ReadError::Stalled { attempts } => {
                write!(f, "every one of {attempts} attempts raced a write")
            }
            ReadError::Corrupt(c) => c.fmt(f),
        }
    }
}

impl core::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            ReadError::Corrupt(e) => Some(e),
            _ => None,
        }
    }
}

/// A reader of the register. It writes nothing to shared memory.
#[derive(Debug, Clone)]
pub struct SeqlockReader<R> {
    lane: Seqlock<R>,
    last: u64,
    max_attempts: u32,
}

/// The outcome of one copy attempt. `F` is a refusal the copy decided on, reported
/// only once the stamp proved the attempt untorn.
enum Attempt<F> {
    Done(ReadInfo),
    Retry,
    Fail(ReadError),
    Refused(F),
}

impl<R: Region<Header = SeqlockHeader>> SeqlockReader<R> {
    /// Sets the number of copies tried before [`ReadError::Stalled`] (at least 1).
    pub fn set_max_attempts(&mut self, attempts: u32) {
        self.max_attempts = attempts.max(1);
    }

    /// Sequence of the last value returned (0 if none).
    pub fn last_seq(&self) -> u64 {
        self.last
    }

    /// Copies the latest value into `buf`. On error the contents of `buf` are
    /// unspecified.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<ReadInfo, ReadError> {
        self.read_parts(&mut [buf], false)
    }

    /// Like [`read`](Self::read), but returns [`ReadError::NotNew`] instead of the value
    /// this reader returned last.
    pub fn read_new(&mut self, buf: &mut [u8]) -> Result<ReadInfo, ReadError> {
        self.read_parts(&mut [buf], true)
    }

    /// Copies the latest value into `parts`, filling each before the next (for
    /// example a frame header and a tensor buffer); with `only_new`, as
    /// [`read_new`](Self::read_new).
    ///
    /// # Panics
    /// If a part other than the last is not a multiple of 8 bytes long.
    pub fn read_parts(
        &mut self,
        parts: &mut [&mut [u8]],
        only_new: bool,
    ) -> Result<ReadInfo, ReadError> {
        let capacity = parts_len(parts);
        let mut copy = |payload: &[AtomicU64], len: usize| {
            if len > capacity {
                return Err(len);
            }
            load_parts(payload, parts, len);
            Ok(())
        };
        self.read_with(only_new, &mut copy)
            .map_err(|error| match error {
                Ok(e) => e,
                Err(needed) => ReadError::BufferTooSmall { needed },
            })
    }

    /// Attempts until one is untorn, at most `max_attempts`. `copy` copies from the
    /// payload words of a value of the given length (at most the slot size) or refuses
    /// it; a refusal is returned as `Err(Err(_))` once the attempt proved untorn.
    fn read_with<F>(
        &mut self,
        only_new: bool,
        copy: &mut impl FnMut(&[AtomicU64], usize) -> Result<(), F>,
    ) -> Result<ReadInfo, Result<ReadError, F>> {
        for attempt in 0..self.max_attempts {
            if attempt > 0 {
                spin_hint();
            }
            match self.attempt(only_new, copy) {
                Attempt::Done(info) => {
                    self.last = info.seq;
                    return Ok(info);
                }
                Attempt::Retry => continue,
                Attempt::Fail(e) => return Err(Ok(e)),
                Attempt::Refused(f) => return Err(Err(f)),
            }
        }
        Err(Ok(ReadError::Stalled {
            attempts: self.max_attempts,
        }))
    }

    fn attempt<F>(
        &self,
        only_new: bool,
        copy: &mut impl FnMut(&[AtomicU64], usize) -> Result<(), F>,
    ) -> Attempt<F> {
        let lane = &self.lane;
        // Acquire pairs with the writer's Release store of `published`.
        let seq = lane.region.header().published.load(Ordering::Acquire);
        if seq == 0 {
            return Attempt::Fail(ReadError::Empty);
        }
        if seq < self.last {
            return Attempt::Fail(ReadError::Corrupt(Corruption::SequenceWentBack {
                last: self.last,
                found: seq,
            }));
        }
        if only_new && seq == self.last {
            return Attempt::Fail(ReadError::NotNew);
        }
        let slot = lane.geometry.slot(lane.region.body(), seq);
        let expected = seq.wrapping_mul(2);
        if expected == 0 {
            // Sequence 2^63 would match a never-written slot; no writer gets there.
            return Attempt::Fail(ReadError::Corrupt(Corruption::Stamp {
                expected: seq,
                found: 0,
            }));
        }
        // Acquire pairs with the writer's Release store of the even stamp: the copy
        // below sees write `seq` or a later one.
        let before = slot.stamp().load(Ordering::Acquire);
        if before != expected {
            // The writer has lapped this slot since `published` was read.
            return Attempt::Retry;
        }
        let len = slot.length().load(Ordering::Relaxed);
        let copied = if len <= lane.geometry.slot_bytes as u64 {
            Some(copy(slot.payload(), len as usize))
        } else {
            None
        };
        // Acquire fence: the payload loads above are ordered before the stamp load
        // below. Partner: the writer's Release fence after its odd stamp; if any load
        // above saw a later write's data, the load below sees that write's odd stamp.
        fence(Ordering::Acquire);
        if slot.stamp().load(Ordering::Relaxed) != before {
            return Attempt::Retry;
        }
        // The copy (and `len`) is write `seq`, untorn.
        match copied {
            None => {
                return Attempt::Fail(ReadError::Corrupt(Corruption::Length {
                    found: len,
                    max: lane.geometry.slot_bytes as u64,
                }))
            }
            Some(Err(refusal)) => return Attempt::Refused(refusal),
            Some(Ok(())) => {}
        }
        let missed = if self.last == 0 {
            0
        } else {
            seq - self.last - u64::from(seq > self.last)
        };
        Attempt::Done(ReadInfo {
            seq,
            len: len as usize,
            missed,
        })
    }
}

// Range reads: parts of one value, copied inside one stamp-checked attempt.

/// Why [`SeqlockReader::read_ranges`] returned no value.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RangeReadError {
    /// The read itself failed, as [`SeqlockReader::read`] would
    /// ([`ReadError::BufferTooSmall`]: the output parts are shorter than the ranges).
    Read(ReadError),
    /// A range does not lie inside the value (or its start is past its end).
    Outside {
        /// The range.
        range: core::ops::Range<usize>,
        /// The value's length.
        len: usize,
    },
}

impl core::fmt::Display for RangeReadError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            RangeReadError::Read(e) => e.fmt(f),
            RangeReadError::Outside { range, len } => write!(
                f,
                "byte range {}..{} does not lie inside the value of {len} bytes",
                range.start, range.end
            ),
        }
    }
}

impl core::error::Error for RangeReadError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            RangeReadError::Read(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ReadError> for RangeReadError {
    fn from(e: ReadError) -> Self {
        RangeReadError::Read(e)
    }
}

impl<R: Region<Header = SeqlockHeader>> SeqlockReader<R> {
    /// Copies byte ranges of the latest value, one after the other, into `out`
    /// (filling each part before the next; parts may have any length), inside one
    /// stamp-checked attempt: all ranges come from the same write, untorn, as a whole
    /// [`read`](Self::read) would. Only the ranges are copied, not the whole value.
    /// With `only_new`, as [`read_new`](Self::read_new).
    ///
    /// The [`ReadInfo`] describes the value: `len` is its whole length, not the bytes
    /// copied (which are the ranges' total). Every range is checked against that
    /// length once the attempt proved it untorn: [`RangeReadError::Outside`] if one
    /// does not lie inside. Attempts are bounded as for `read`
    /// ([`ReadError::Stalled`]). On error the contents of `out` are unspecified.
    pub fn read_ranges(
        &mut self,
        ranges: &[core::ops::Range<usize>],
        out: &mut [&mut [u8]],
        only_new: bool,
    ) -> Result<ReadInfo, RangeReadError> {
        let mut total = 0usize;
        for range in ranges {
            let Some(sum) = total.checked_add(range.end.saturating_sub(range.start)) else {
                return Err(RangeReadError::Outside {
                    range: range.clone(),
                    len: self.lane.geometry.slot_bytes,
                });
            };
            total = sum;
        }
        let capacity = out
            .iter()
            .fold(0usize, |n, part| n.saturating_add(part.len()));
        if total > capacity {
            return Err(RangeReadError::Read(ReadError::BufferTooSmall {
                needed: total,
            }));
        }
        let mut copy = |payload: &[AtomicU64], len: usize| {
            // Every range inside the value (and so inside the payload words) before
            // anything is copied.
            if let Some(bad) = ranges.iter().find(|r| r.start > r.end || r.end > len) {
                return Err((bad.clone(), len));
            }
            let mut part = 0;
            let mut at = 0;
            for range in ranges {
                let mut offset = range.start;
                while offset < range.end {
                    // `total <= capacity`, so a part with room remains.
                    while out[part].len() == at {
                        part += 1;
                        at = 0;
                    }
                    let n = (range.end - offset).min(out[part].len() - at);
                    load_bytes_at(payload, offset, &mut out[part][at..at + n]);
                    offset += n;
                    at += n;
                }
            }
            Ok(())
        };
        self.read_with(only_new, &mut copy)
            .map_err(|error| match error {
                Ok(e) => RangeReadError::Read(e),
                Err((range, len)) => RangeReadError::Outside { range, len },
            })
    }
}
