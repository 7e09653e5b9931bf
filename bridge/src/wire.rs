//! The message one Zenoh sample carries: one lane item with everything an importer
//! needs to create the lane it goes into.
//!
//! Every field is little-endian. The fixed header is [`HEADER_BYTES`] bytes:
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0  | 4 | magic `TLZB` |
//! | 4  | 1 | version, [`VERSION`] |
//! | 5  | 1 | lane kind: 1 stream, 2 queue, 3 topic |
//! | 6  | 1 | flags: bit 0 set when a topic was read by a lossless subscriber; other bits 0 |
//! | 7  | 1 | number of dimensions `d` (at most `MAX_DIMS`) |
//! | 8  | 4 | dtype code (docs/LAYOUT.md) |
//! | 12 | 4 | slots (stream) or capacity (queue, topic) of the source lane |
//! | 16 | 4 | subscriber table size of a topic (0 otherwise) |
//! | 20 | 4 | metadata length `m` (at most `MAX_METADATA_BYTES`) |
//! | 24 | 8 | metadata checksum (FNV-1a 64, as in the segment header) |
//! | 32 | 8 | sequence number of the item on the source lane (from 1) |
//! | 40 | 8 | frame id |
//! | 48 | 8 | timestamp, nanoseconds of the source lane's clock |
//! | 56 | 8 | items the exporter missed just before this one (stream, lossy topic) |
//! | 64 | 8 | payload length `p` |
//! | 72 | 1 | clock code of the source lane (1 monotonic, 2 realtime, 3 none) |
//! | 73 | 7 | reserved, zero |
//!
//! then `d` dimensions (8 bytes each), `m` metadata bytes (the segment's metadata
//! area encoding), and the `p` payload bytes. The message is exactly that long.
//!
//! Invariant of [`decode`]: a message it accepts has a valid tensor spec whose byte
//! length is the payload's, valid metadata whose checksum matches, a known kind and
//! clock, a sequence number of at least 1, and no byte beyond its stated fields.
//! Everything else is a [`DecodeError`]; no input panics (all arithmetic is checked).

use std::fmt;
use tensorlane_shm::{Clock, DType, Kind, Metadata, MetadataError, SpecError, TensorSpec};

/// The first four bytes of every message.
pub const MAGIC: [u8; 4] = *b"TLZB";
/// The encoding version this crate writes and reads.
pub const VERSION: u8 = 1;
/// Bytes of the fixed header.
pub const HEADER_BYTES: usize = 80;
/// Largest slot count or capacity an importer accepts for a lane it creates.
pub const MAX_COUNT: u32 = 1 << 16;
/// Largest subscriber table an importer accepts for a topic it creates.
pub const MAX_SUBSCRIBERS: u32 = 1024;
/// Longest prefix (bytes before the payload) of a valid message.
pub const MAX_PREFIX: usize =
    HEADER_BYTES + 8 * tensorlane_shm::MAX_DIMS + tensorlane_shm::MAX_METADATA_BYTES;

const FLAG_LOSSLESS: u8 = 1;

/// What the importer needs to create the local lane: the source lane's kind, tensor,
/// geometry, clock and metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneDesc {
    /// Lane kind.
    pub kind: Kind,
    /// Tensor of every item.
    pub spec: TensorSpec,
    /// Slots of a stream, capacity of a queue or topic.
    pub count: u32,
    /// Subscriber table size of a topic (0 for the other kinds).
    pub subscribers: u32,
    /// The source lane's clock.
    pub clock: Clock,
    /// The source lane's metadata.
    pub metadata: Metadata,
    /// A topic read by a lossless subscriber (its items are never skipped).
    pub lossless: bool,
}

/// The per-item fields of a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemInfo {
    /// Sequence number on the source lane (from 1).
    pub seq: u64,
    /// Frame id written with the item.
    pub frame_id: u64,
    /// Timestamp written with the item (the source lane's clock).
    pub timestamp_ns: u64,
    /// Items the exporter missed just before this one.
    pub missed: u64,
}

/// A decoded message; the payload borrows the received bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    /// The source lane.
    pub desc: LaneDesc,
    /// The item.
    pub item: ItemInfo,
    /// Exactly `desc.spec.byte_len()` bytes.
    pub payload: &'a [u8],
}

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// Shorter than its fixed header or than its stated fields.
    Truncated {
        /// Bytes needed.
        needed: u64,
        /// Bytes received.
        found: u64,
    },
    /// Longer than its stated fields.
    TrailingBytes {
        /// Bytes stated.
        expected: u64,
        /// Bytes received.
        found: u64,
    },
    /// Not a tensorlane bridge message.
    BadMagic,
    /// An encoding version this crate does not read.
    Version(u8),
    /// An unknown lane kind.
    Kind(u8),
    /// Unknown flag bits, or the lossless flag on a kind other than a topic.
    Flags(u8),
    /// Reserved bytes that are not zero.
    Reserved,
    /// An unknown dtype code.
    DType(u32),
    /// An unknown clock code.
    Clock(u8),
    /// The shape is invalid (too many dimensions, size overflow).
    Spec(SpecError),
    /// The payload length is not the tensor's byte length.
    PayloadSize {
        /// The tensor's byte length.
        expected: u64,
        /// The payload length stated.
        found: u64,
    },
    /// The metadata is invalid or its checksum does not match.
    Metadata(MetadataError),
    /// Slot count, capacity or subscriber table out of range for the kind.
    Geometry {
        /// Slots or capacity stated.
        count: u32,
        /// Subscriber table stated.
        subscribers: u32,
    },
    /// Sequence number 0 (items count from 1).
    ZeroSequence,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated { needed, found } => {
                write!(f, "truncated: {found} bytes, {needed} needed")
            }
            DecodeError::TrailingBytes { expected, found } => {
                write!(f, "{found} bytes, {expected} expected")
            }
            DecodeError::BadMagic => f.write_str("not a tensorlane bridge message (magic)"),
            DecodeError::Version(v) => write!(f, "unknown encoding version {v}"),
            DecodeError::Kind(k) => write!(f, "unknown lane kind {k}"),
            DecodeError::Flags(x) => write!(f, "invalid flags {x:#x}"),
            DecodeError::Reserved => f.write_str("reserved bytes are not zero"),
            DecodeError::DType(d) => write!(f, "unknown dtype code {d}"),
            DecodeError::Clock(c) => write!(f, "unknown clock code {c}"),
            DecodeError::Spec(e) => write!(f, "invalid tensor: {e}"),
            DecodeError::PayloadSize { expected, found } => {
                write!(f, "payload of {found} bytes, the tensor has {expected}")
            }
            DecodeError::Metadata(e) => write!(f, "invalid metadata: {e}"),
            DecodeError::Geometry { count, subscribers } => {
                write!(
                    f,
                    "invalid geometry: count {count}, subscribers {subscribers}"
                )
            }
            DecodeError::ZeroSequence => f.write_str("sequence number 0"),
        }
    }
}

impl std::error::Error for DecodeError {}

fn kind_code(kind: Kind) -> u8 {
    match kind {
        Kind::Stream => 1,
        Kind::Queue => 2,
        Kind::Topic => 3,
    }
}

/// Bytes of the message before the payload for `desc`.
pub fn prefix_len(desc: &LaneDesc) -> usize {
    HEADER_BYTES + 8 * desc.spec.shape().len() + desc.metadata.as_bytes().len()
}

/// A message for `desc` and `item` with the payload left zeroed: the caller fills
/// `buf[prefix_len(desc)..]` (for example by reading the lane straight into it).
pub fn encode_empty(desc: &LaneDesc, item: &ItemInfo) -> Vec<u8> {
    let payload = desc.spec.byte_len();
    let mut buf = encode_prefix(desc, item, payload);
    buf.resize(prefix_len(desc) + payload, 0);
    buf
}

/// The bytes of a message before its payload ([`prefix_len`] of them), in a buffer
/// with room for `room` more.
pub fn encode_prefix(desc: &LaneDesc, item: &ItemInfo, room: usize) -> Vec<u8> {
    let payload = desc.spec.byte_len();
    let prefix = prefix_len(desc);
    let mut buf = Vec::with_capacity(prefix.saturating_add(room));
    buf.extend_from_slice(&MAGIC);
    buf.push(VERSION);
    buf.push(kind_code(desc.kind));
    buf.push(if desc.lossless { FLAG_LOSSLESS } else { 0 });
    // A TensorSpec has at most MAX_DIMS (8) dimensions.
    buf.push(desc.spec.shape().len() as u8);
    buf.extend_from_slice(&desc.spec.dtype().code().to_le_bytes());
    buf.extend_from_slice(&desc.count.to_le_bytes());
    buf.extend_from_slice(&desc.subscribers.to_le_bytes());
    // Metadata is at most MAX_METADATA_BYTES, far below u32::MAX.
    buf.extend_from_slice(&(desc.metadata.as_bytes().len() as u32).to_le_bytes());
    buf.extend_from_slice(&desc.metadata.checksum().to_le_bytes());
    for word in [item.seq, item.frame_id, item.timestamp_ns, item.missed] {
        buf.extend_from_slice(&word.to_le_bytes());
    }
    buf.extend_from_slice(&(payload as u64).to_le_bytes());
    // Clock codes are 1 to 3.
    buf.push(desc.clock.code() as u8);
    buf.extend_from_slice(&[0u8; 7]);
    debug_assert_eq!(buf.len(), HEADER_BYTES);
    for &dim in desc.spec.shape() {
        buf.extend_from_slice(&dim.to_le_bytes());
    }
    buf.extend_from_slice(desc.metadata.as_bytes());
    debug_assert_eq!(buf.len(), prefix);
    buf
}

/// The whole message for `desc`, `item` and `payload` (one tensor's bytes).
pub fn encode(desc: &LaneDesc, item: &ItemInfo, payload: &[u8]) -> Vec<u8> {
    let mut buf = encode_empty(desc, item);
    let prefix = prefix_len(desc);
    buf.truncate(prefix);
    buf.extend_from_slice(payload);
    buf
}

/// Writes the per-item fields of `item` into an encoded message (reuse of a buffer).
pub fn set_item(buf: &mut [u8], item: &ItemInfo) {
    for (i, word) in [item.seq, item.frame_id, item.timestamp_ns, item.missed]
        .into_iter()
        .enumerate()
    {
        buf[32 + 8 * i..40 + 8 * i].copy_from_slice(&word.to_le_bytes());
    }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// Parses and validates a received message (see the module docs for what is checked).
pub fn decode(bytes: &[u8]) -> Result<Message<'_>, DecodeError> {
    let head = decode_head(bytes, bytes.len() as u64)?;
    Ok(Message {
        desc: head.desc,
        item: head.item,
        payload: &bytes[head.prefix..],
    })
}

/// A message's fields before its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// The source lane.
    pub desc: LaneDesc,
    /// The item.
    pub item: ItemInfo,
    /// Bytes before the payload ([`prefix_len`] of `desc`); the payload is the
    /// message's remaining `desc.spec.byte_len()` bytes.
    pub prefix: usize,
}

/// [`decode`] of a message that arrived in pieces: `bytes` is its first piece,
/// `total` its whole length. Checks everything [`decode`] checks; the payload (after
/// [`Head::prefix`]) is the caller's to take from the pieces. `Truncated` with
/// `found` = `bytes.len()` if the first piece ends before the payload begins.
pub fn decode_head(bytes: &[u8], total: u64) -> Result<Head, DecodeError> {
    let found = total;
    if bytes.len() < HEADER_BYTES {
        if bytes.len() >= 4 && bytes[..4] != MAGIC {
            return Err(DecodeError::BadMagic);
        }
        return Err(DecodeError::Truncated {
            needed: HEADER_BYTES as u64,
            found: bytes.len() as u64,
        });
    }
    if bytes[..4] != MAGIC {
        return Err(DecodeError::BadMagic);
    }
    if bytes[4] != VERSION {
        return Err(DecodeError::Version(bytes[4]));
    }
    let kind = match bytes[5] {
        1 => Kind::Stream,
        2 => Kind::Queue,
        3 => Kind::Topic,
        k => return Err(DecodeError::Kind(k)),
    };
    let flags = bytes[6];
    if flags & !FLAG_LOSSLESS != 0 || (flags != 0 && kind != Kind::Topic) {
        return Err(DecodeError::Flags(flags));
    }
    if bytes[73..HEADER_BYTES].iter().any(|&b| b != 0) {
        return Err(DecodeError::Reserved);
    }
    let ndims = usize::from(bytes[7]);
    let dtype_code = u32_at(bytes, 8);
    let dtype = DType::from_code(dtype_code).ok_or(DecodeError::DType(dtype_code))?;
    let count = u32_at(bytes, 12);
    let subscribers = u32_at(bytes, 16);
    let metadata_len = u64::from(u32_at(bytes, 20));
    let metadata_sum = u64_at(bytes, 24);
    let item = ItemInfo {
        seq: u64_at(bytes, 32),
        frame_id: u64_at(bytes, 40),
        timestamp_ns: u64_at(bytes, 48),
        missed: u64_at(bytes, 56),
    };
    let payload_len = u64_at(bytes, 64);
    let clock = Clock::from_code(u64::from(bytes[72])).ok_or(DecodeError::Clock(bytes[72]))?;
    if item.seq == 0 {
        return Err(DecodeError::ZeroSequence);
    }
    let geometry_ok = match kind {
        Kind::Stream | Kind::Queue => (1..=MAX_COUNT).contains(&count) && subscribers == 0,
        Kind::Topic => {
            (1..=MAX_COUNT).contains(&count) && (1..=MAX_SUBSCRIBERS).contains(&subscribers)
        }
    };
    if !geometry_ok {
        return Err(DecodeError::Geometry { count, subscribers });
    }
    // Lengths of the variable parts, each checked against what arrived before use.
    let dims_end = (HEADER_BYTES as u64).saturating_add(8 * ndims as u64);
    let metadata_end = dims_end.saturating_add(metadata_len);
    let total = metadata_end.saturating_add(payload_len);
    if total > found {
        return Err(DecodeError::Truncated {
            needed: total,
            found,
        });
    }
    if total < found {
        return Err(DecodeError::TrailingBytes {
            expected: total,
            found,
        });
    }
    // The prefix must be in the first piece (all of it, for a whole message).
    if metadata_end > bytes.len() as u64 {
        return Err(DecodeError::Truncated {
            needed: metadata_end,
            found: bytes.len() as u64,
        });
    }
    // metadata_end <= bytes.len(), so both ends fit in usize.
    let (dims_end, metadata_end) = (dims_end as usize, metadata_end as usize);
    let shape: Vec<u64> = bytes[HEADER_BYTES..dims_end]
        .chunks_exact(8)
        .map(|c| u64_at(c, 0))
        .collect();
    let spec = TensorSpec::new(dtype, &shape).map_err(DecodeError::Spec)?;
    if spec.byte_len() as u64 != payload_len {
        return Err(DecodeError::PayloadSize {
            expected: spec.byte_len() as u64,
            found: payload_len,
        });
    }
    let metadata = Metadata::decode(&bytes[dims_end..metadata_end], metadata_sum)
        .map_err(DecodeError::Metadata)?;
    Ok(Head {
        desc: LaneDesc {
            kind,
            spec,
            count,
            subscribers,
            clock,
            metadata,
            lossless: flags & FLAG_LOSSLESS != 0,
        },
        item,
        prefix: metadata_end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desc() -> LaneDesc {
        LaneDesc {
            kind: Kind::Topic,
            spec: TensorSpec::new(DType::F32, &[2, 3]).unwrap(),
            count: 8,
            subscribers: 4,
            clock: Clock::Realtime,
            metadata: Metadata::new([("unit", "m/s"), ("robot", "a")]).unwrap(),
            lossless: true,
        }
    }

    const ITEM: ItemInfo = ItemInfo {
        seq: 7,
        frame_id: 70,
        timestamp_ns: 123_456,
        missed: 2,
    };

    #[test]
    fn round_trip() {
        let payload: Vec<u8> = (0..24).collect();
        let bytes = encode(&desc(), &ITEM, &payload);
        assert_eq!(bytes.len(), prefix_len(&desc()) + 24);
        let message = decode(&bytes).unwrap();
        assert_eq!(message.desc, desc());
        assert_eq!(message.item, ITEM);
        assert_eq!(message.payload, &payload[..]);
        let mut again = encode_empty(&desc(), &ItemInfo { seq: 1, ..ITEM });
        set_item(&mut again, &ITEM);
        let at = prefix_len(&desc());
        again[at..].copy_from_slice(&payload);
        assert_eq!(again, bytes);
    }

    #[test]
    fn a_message_in_pieces_decodes_once_its_first_piece_holds_the_prefix() {
        let bytes = encode(&desc(), &ITEM, &[5u8; 24]);
        let total = bytes.len() as u64;
        let prefix = prefix_len(&desc());
        for k in 0..=bytes.len() {
            match decode_head(&bytes[..k], total) {
                Ok(head) => {
                    assert!(k >= prefix, "piece of {k}");
                    assert_eq!((head.desc, head.item, head.prefix), (desc(), ITEM, prefix));
                }
                Err(DecodeError::Truncated { found, .. }) => {
                    assert!(k < prefix, "piece of {k} refused");
                    assert_eq!(found, k as u64);
                }
                Err(e) => panic!("piece of {k}: {e}"),
            }
        }
        // The whole length is checked as decode checks it.
        assert!(matches!(
            decode_head(&bytes, total + 1),
            Err(DecodeError::TrailingBytes { .. })
        ));
        assert!(matches!(
            decode_head(&bytes, total - 1),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn every_truncation_and_extension_is_refused() {
        let bytes = encode(&desc(), &ITEM, &[5u8; 24]);
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "length {len}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(
            decode(&longer),
            Err(DecodeError::TrailingBytes { .. })
        ));
    }

    #[test]
    fn each_field_is_checked() {
        let good = encode(&desc(), &ITEM, &[5u8; 24]);
        let with = |at: usize, value: &[u8]| {
            let mut bytes = good.clone();
            bytes[at..at + value.len()].copy_from_slice(value);
            decode(&bytes).map(|_| ())
        };
        assert_eq!(with(0, b"XLZB"), Err(DecodeError::BadMagic));
        assert_eq!(with(4, &[2]), Err(DecodeError::Version(2)));
        assert_eq!(with(5, &[9]), Err(DecodeError::Kind(9)));
        assert_eq!(with(6, &[2]), Err(DecodeError::Flags(2)));
        assert!(matches!(with(7, &[3]), Err(DecodeError::Truncated { .. })));
        assert_eq!(with(8, &[0, 0, 0, 0]), Err(DecodeError::DType(0)));
        assert!(matches!(
            with(12, &[0, 0, 0, 0]),
            Err(DecodeError::Geometry { .. })
        ));
        assert!(matches!(
            with(16, &0u32.to_le_bytes()),
            Err(DecodeError::Geometry { .. })
        ));
        assert!(matches!(
            with(24, &[0xff]),
            Err(DecodeError::Metadata(MetadataError::Checksum { .. }))
        ));
        assert_eq!(
            with(32, &0u64.to_le_bytes()),
            Err(DecodeError::ZeroSequence)
        );
        assert_eq!(with(72, &[0]), Err(DecodeError::Clock(0)));
        assert_eq!(with(79, &[1]), Err(DecodeError::Reserved));
        // A shape that disagrees with the payload: [2, 4] f32 is 32 bytes, 24 sent.
        assert_eq!(
            with(HEADER_BYTES + 8, &4u64.to_le_bytes()),
            Err(DecodeError::PayloadSize {
                expected: 32,
                found: 24
            })
        );
        // A shape that overflows.
        assert!(matches!(
            with(HEADER_BYTES, &u64::MAX.to_le_bytes()),
            Err(DecodeError::Spec(_))
        ));
        // A payload length near u64::MAX does not overflow the length arithmetic.
        assert!(matches!(
            with(64, &u64::MAX.to_le_bytes()),
            Err(DecodeError::Truncated { .. })
        ));
    }

    #[test]
    fn the_lossless_flag_belongs_to_topics() {
        let mut stream = desc();
        stream.kind = Kind::Stream;
        stream.subscribers = 0;
        let mut bytes = encode(&stream, &ITEM, &[0u8; 24]);
        bytes[6] = FLAG_LOSSLESS;
        assert_eq!(decode(&bytes), Err(DecodeError::Flags(1)));
    }

    #[test]
    fn garbage_never_panics() {
        // A small deterministic generator: random bytes, and random bytes behind a
        // valid magic and version.
        let mut state = 0x1234_5678_9abc_def0u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..20_000 {
            let len = (next() % 300) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if round % 2 == 0 && len >= 5 {
                bytes[..4].copy_from_slice(&MAGIC);
                bytes[4] = VERSION;
            }
            let _ = decode(&bytes);
        }
    }
}
