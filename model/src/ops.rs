//! Operation alphabets of the three structures, and byte decoders for them.
//!
//! An operation names what one thread does next: write or read the register, push,
//! pop, loan or peek on the SPSC ring, publish, join, leave, receive or supervise on
//! the broadcast ring. Arguments are small: lengths, buffer sizes, handle slots and
//! table indices are reduced modulo small bounds here, and interpreted against the
//! geometry by whoever runs the operations (the `harness` module):
//! - a payload length `len` is taken modulo `slot_bytes + 3`, so that about two
//!   lengths in `slot_bytes + 3` exceed the slot and exercise `TooLarge`;
//! - a table index is taken modulo `max_subscribers + 1`, so that one index in
//!   `max_subscribers + 1` is out of range.
//!
//! # Decoders
//! `decode_*_ops` turn any byte string into an operation sequence: every byte string
//! decodes, and decoding never panics. Each operation consumes its tag byte and up
//! to three argument bytes (missing bytes at the end read as 0), so a string of `n`
//! bytes yields at most `n` operations. `decode_*_case` first take a few bytes for
//! the geometry, then decode the rest: this is the entry point for fuzz targets.

use tensorlane_core::{BroadcastGeometry, SeqlockGeometry, SpscGeometry};

/// Reader handles a register sequence uses (reader arguments are below this).
pub const REGISTER_READERS: u8 = 4;
/// Subscriber handle slots a broadcast sequence uses (slot arguments are below this).
/// Larger than the largest table [`decode_broadcast_case`] builds, so that joins can
/// find the table full.
pub const SUBSCRIBER_SLOTS: u8 = 6;
/// Payload length arguments are below this (then reduced against the slot size).
pub const LEN_LIMIT: u8 = 64;
/// Short-buffer arguments are below this.
pub const BUF_LIMIT: u8 = 48;
/// History and lag arguments are below this, except for the value `u64::MAX`.
pub const SMALL_COUNT_LIMIT: u64 = 19;
/// Read-at offsets lie in `-READ_AT_BACK..=READ_AT_AHEAD` around the tail.
pub const READ_AT_BACK: i8 = 20;
/// See [`READ_AT_BACK`].
pub const READ_AT_AHEAD: i8 = 3;

/// The size of a receive buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BufLen {
    /// As large as a slot: every value fits.
    Slot,
    /// This many bytes (below [`BUF_LIMIT`]); values longer than that do not fit.
    Bytes(u8),
}

impl BufLen {
    /// The buffer length for slots of `slot_bytes` bytes.
    pub fn resolve(self, slot_bytes: usize) -> usize {
        match self {
            BufLen::Slot => slot_bytes,
            BufLen::Bytes(n) => usize::from(n),
        }
    }
}

/// Reduces a payload length argument against the slot size: `len mod (slot_bytes + 3)`.
pub fn resolve_len(len: u8, slot_bytes: usize) -> usize {
    usize::from(len) % (slot_bytes + 3)
}

/// One operation on a seqlock register with one writer and [`REGISTER_READERS`]
/// readers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterOp {
    /// The writer writes a value of length [`resolve_len`]`(len)`.
    Write {
        /// Length argument.
        len: u8,
    },
    /// A reader reads (`read`, or `read_new` when `only_new`).
    Read {
        /// Which reader.
        reader: u8,
        /// Its buffer.
        buf: BufLen,
        /// `read_new` instead of `read`.
        only_new: bool,
    },
    /// A reader is replaced by a fresh one (which has returned nothing yet).
    NewReader {
        /// Which reader.
        reader: u8,
    },
    /// The writer drops its role and a new writer claims it.
    NewWriter,
}

/// How a loan's slot is filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoanAccess {
    /// Through the byte slice.
    Bytes,
    /// Through the payload words.
    Words,
}

/// How a peeked item is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeekAccess {
    /// Through the byte slice.
    Bytes,
    /// Through the payload words.
    Words,
    /// Copied into a buffer.
    CopyTo(BufLen),
}

/// One operation on an SPSC ring with one producer and one consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpscOp {
    /// The producer pushes an item of length [`resolve_len`]`(len)`.
    Push {
        /// Length argument.
        len: u8,
    },
    /// The consumer pops into a buffer.
    Pop {
        /// Its buffer.
        buf: BufLen,
    },
    /// The producer loans the next slot, fills it, and commits [`resolve_len`]`(len)`
    /// bytes or drops the loan.
    Loan {
        /// Length argument of the commit.
        len: u8,
        /// How the slot is filled.
        access: LoanAccess,
        /// Commit (otherwise the loan is dropped).
        commit: bool,
    },
    /// The consumer peeks at the next item, reads it, and releases it or drops the
    /// guard.
    Peek {
        /// How the item is read.
        access: PeekAccess,
        /// Release (otherwise the guard is dropped and the item stays).
        release: bool,
    },
    /// The producer asks how many slots are free.
    Free,
    /// The consumer asks how many items wait.
    Available,
    /// The producer drops its role and a new producer claims it.
    NewProducer,
    /// The consumer drops its role and a new consumer claims it.
    NewConsumer,
}

/// One operation on a broadcast ring with one producer, up to [`SUBSCRIBER_SLOTS`]
/// subscriber handles and a supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BroadcastOp {
    /// The producer publishes an item of length [`resolve_len`]`(len)`.
    Publish {
        /// Length argument.
        len: u8,
    },
    /// A subscriber joins into handle `slot` (a subscriber already there leaves
    /// first).
    Join {
        /// Handle slot.
        slot: u8,
        /// Lossless (otherwise lossy).
        lossless: bool,
        /// Positions of history asked for.
        history: u64,
        /// Lossy lag bound (ignored for lossless).
        max_lag: u64,
    },
    /// The subscriber in handle `slot`, if any, leaves (drops its handle).
    Leave {
        /// Handle slot.
        slot: u8,
    },
    /// The subscriber in handle `slot`, if any, receives into a buffer.
    Recv {
        /// Handle slot.
        slot: u8,
        /// Its buffer.
        buf: BufLen,
    },
    /// The supervisor evicts table entry `index mod (max_subscribers + 1)`.
    Evict {
        /// Table index argument.
        index: u8,
    },
    /// The supervisor reclaims table entry `index mod (max_subscribers + 1)`.
    Reclaim {
        /// Table index argument.
        index: u8,
    },
    /// Anyone reads position `tail + offset` (not below 0).
    ReadAt {
        /// Offset from the tail.
        offset: i8,
        /// The buffer.
        buf: BufLen,
    },
    /// Anyone asks for the positions of the last `k` items, and reads each.
    History {
        /// How many.
        k: u64,
    },
    /// The producer drops its role and a new producer claims it.
    NewProducer,
}

use crate::cursor::ByteCursor as Cursor;

/// The op alphabets' argument readers.
impl Cursor<'_> {
    fn len(&mut self) -> u8 {
        self.byte() % LEN_LIMIT
    }

    fn buf(&mut self) -> BufLen {
        let b = self.byte();
        if b & 3 == 0 {
            BufLen::Bytes((b >> 2) % BUF_LIMIT)
        } else {
            BufLen::Slot
        }
    }

    fn small_count(&mut self) -> u64 {
        let b = u64::from(self.byte()) % (SMALL_COUNT_LIMIT + 1);
        if b == SMALL_COUNT_LIMIT {
            u64::MAX
        } else {
            b
        }
    }
}

fn decode_all<T>(data: &[u8], mut one: impl FnMut(&mut Cursor<'_>) -> T) -> Vec<T> {
    let mut cursor = Cursor::new(data);
    let mut ops = Vec::new();
    while !cursor.done() {
        ops.push(one(&mut cursor));
    }
    ops
}

/// Decodes any byte string into register operations (never panics).
pub fn decode_register_ops(data: &[u8]) -> Vec<RegisterOp> {
    decode_all(data, |c| {
        let tag = c.byte();
        match tag % 16 {
            0..=5 => RegisterOp::Write { len: c.len() },
            6..=12 => RegisterOp::Read {
                reader: c.byte() % REGISTER_READERS,
                buf: c.buf(),
                only_new: tag & 0x10 != 0,
            },
            13 | 14 => RegisterOp::NewReader {
                reader: c.byte() % REGISTER_READERS,
            },
            _ => RegisterOp::NewWriter,
        }
    })
}

/// Decodes any byte string into SPSC operations (never panics).
pub fn decode_spsc_ops(data: &[u8]) -> Vec<SpscOp> {
    decode_all(data, |c| {
        let tag = c.byte();
        match tag % 32 {
            0..=9 => SpscOp::Push { len: c.len() },
            10..=17 => SpscOp::Pop { buf: c.buf() },
            18..=22 => SpscOp::Loan {
                len: c.len(),
                access: if tag & 0x20 != 0 {
                    LoanAccess::Words
                } else {
                    LoanAccess::Bytes
                },
                // Three loans in four are committed.
                commit: tag & 0xc0 != 0,
            },
            23..=27 => SpscOp::Peek {
                access: match (tag >> 5) % 3 {
                    0 => PeekAccess::Bytes,
                    1 => PeekAccess::Words,
                    _ => PeekAccess::CopyTo(c.buf()),
                },
                release: c.byte() % 4 != 0,
            },
            28 => SpscOp::Free,
            29 => SpscOp::Available,
            30 => SpscOp::NewProducer,
            _ => SpscOp::NewConsumer,
        }
    })
}

/// Decodes any byte string into broadcast operations (never panics).
pub fn decode_broadcast_ops(data: &[u8]) -> Vec<BroadcastOp> {
    decode_all(data, |c| {
        let tag = c.byte();
        match tag % 32 {
            0..=8 => BroadcastOp::Publish { len: c.len() },
            9..=12 => BroadcastOp::Join {
                slot: c.byte() % SUBSCRIBER_SLOTS,
                lossless: tag & 0x20 != 0,
                history: c.small_count(),
                max_lag: c.small_count(),
            },
            13 | 14 => BroadcastOp::Leave {
                slot: c.byte() % SUBSCRIBER_SLOTS,
            },
            15..=22 => BroadcastOp::Recv {
                slot: c.byte() % SUBSCRIBER_SLOTS,
                buf: c.buf(),
            },
            23 => BroadcastOp::Evict { index: c.byte() },
            24 => BroadcastOp::Reclaim { index: c.byte() },
            25..=28 => {
                let span = (READ_AT_BACK as i16 + READ_AT_AHEAD as i16 + 1) as u8;
                let offset = (c.byte() % span) as i8 - READ_AT_BACK;
                BroadcastOp::ReadAt {
                    offset,
                    buf: c.buf(),
                }
            }
            29 | 30 => BroadcastOp::History { k: c.small_count() },
            _ => BroadcastOp::NewProducer,
        }
    })
}

/// A register geometry from the first two bytes (1 to 4 slots of 0 to 32 bytes), and
/// operations from the rest. Never panics.
pub fn decode_register_case(data: &[u8]) -> (SeqlockGeometry, Vec<RegisterOp>) {
    let mut c = Cursor::new(data);
    let slots = 1 + usize::from(c.byte() % 4);
    let slot_bytes = usize::from(c.byte() % 33);
    let geometry =
        SeqlockGeometry::new(slots, slot_bytes).expect("small register geometries are valid");
    (geometry, decode_register_ops(data.get(2..).unwrap_or(&[])))
}

/// An SPSC geometry from the first two bytes (capacity 1 to 8, slots of 0 to 32
/// bytes), and operations from the rest. Never panics.
pub fn decode_spsc_case(data: &[u8]) -> (SpscGeometry, Vec<SpscOp>) {
    let mut c = Cursor::new(data);
    let capacity = 1usize << (c.byte() % 4);
    let slot_bytes = usize::from(c.byte() % 33);
    let geometry =
        SpscGeometry::new(capacity, slot_bytes).expect("small ring geometries are valid");
    (geometry, decode_spsc_ops(data.get(2..).unwrap_or(&[])))
}

/// A broadcast geometry from the first three bytes (capacity 1 to 8, slots of 0 to 24
/// bytes, 1 to 5 table entries), and operations from the rest. Never panics.
pub fn decode_broadcast_case(data: &[u8]) -> (BroadcastGeometry, Vec<BroadcastOp>) {
    let mut c = Cursor::new(data);
    let capacity = 1usize << (c.byte() % 4);
    let slot_bytes = usize::from(c.byte() % 25);
    let subscribers = 1 + usize::from(c.byte() % 5);
    let geometry = BroadcastGeometry::new(capacity, slot_bytes, subscribers)
        .expect("small broadcast geometries are valid");
    (geometry, decode_broadcast_ops(data.get(3..).unwrap_or(&[])))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_string_decodes() {
        // Every tag byte, followed by every argument byte pattern we care about.
        for tag in 0..=255u8 {
            for arg in [0u8, 1, 3, 4, 0x7f, 0x80, 0xfe, 0xff] {
                for len in 1..=4 {
                    let data = [tag, arg, arg, arg][..len].to_vec();
                    assert!(!decode_register_ops(&data).is_empty());
                    assert!(!decode_spsc_ops(&data).is_empty());
                    assert!(!decode_broadcast_ops(&data).is_empty());
                    let _ = decode_register_case(&data);
                    let _ = decode_spsc_case(&data);
                    let _ = decode_broadcast_case(&data);
                }
            }
        }
        assert!(decode_register_ops(&[]).is_empty());
        assert!(decode_broadcast_case(&[]).1.is_empty());
    }

    #[test]
    fn arguments_stay_in_bounds() {
        let data: Vec<u8> = (0..4096u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        for op in decode_broadcast_ops(&data) {
            match op {
                BroadcastOp::Join {
                    slot,
                    history,
                    max_lag,
                    ..
                } => {
                    assert!(slot < SUBSCRIBER_SLOTS);
                    assert!(history < SMALL_COUNT_LIMIT || history == u64::MAX);
                    assert!(max_lag < SMALL_COUNT_LIMIT || max_lag == u64::MAX);
                }
                BroadcastOp::Leave { slot } | BroadcastOp::Recv { slot, .. } => {
                    assert!(slot < SUBSCRIBER_SLOTS)
                }
                BroadcastOp::ReadAt { offset, .. } => {
                    assert!((-READ_AT_BACK..=READ_AT_AHEAD).contains(&offset))
                }
                BroadcastOp::Publish { len } => assert!(len < LEN_LIMIT),
                _ => {}
            }
        }
        for op in decode_register_ops(&data) {
            if let RegisterOp::Read { reader, .. } | RegisterOp::NewReader { reader } = op {
                assert!(reader < REGISTER_READERS);
            }
        }
    }
}
