//! The segment header: what a segment holds, validated before anything else is trusted.
//!
//! The header is the first 1024 bytes of every segment (docs/LAYOUT.md is the
//! byte-exact specification). Every field is a little-endian 64-bit word, read and
//! written with atomic loads and stores, because the header is memory another process
//! can write at any time. The creator writes every field, then stores `READY` with
//! release; an opener loads `ready` with acquire before reading any field, then
//! validates all of them (magic, version, checksum, kind, dtype, shape, sizes,
//! geometry) with checked arithmetic against the real size of the object.

use crate::clock::Clock;
use crate::dtype::{DType, TensorSpec, MAX_DIMS};
use crate::metadata::{Metadata, MetadataError, MAX_METADATA_BYTES};
use std::fmt;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use tensorlane_core::{
    BroadcastGeometry, BroadcastHeader, Line, SeqlockGeometry, SeqlockHeader, SpscGeometry,
    SpscHeader,
};

/// `b"TNSRLANE"` read as a little-endian u64.
pub const MAGIC: u64 = u64::from_le_bytes(*b"TNSRLANE");
/// Version of this layout. Openers reject other versions.
pub const LAYOUT_VERSION: u64 = 3;
/// Size of the segment header; the core structure starts here.
pub const HEADER_BYTES: usize = 1024;
/// Bytes of per-item framing before the tensor in every slot: frame id, timestamp.
pub const FRAME_BYTES: usize = 16;
/// Value of the ready word once the header is complete.
pub const READY: u64 = 1;

/// Word indices of the immutable fields.
pub mod field {
    /// [`super::MAGIC`].
    pub const MAGIC: usize = 0;
    /// [`super::LAYOUT_VERSION`].
    pub const VERSION: usize = 1;
    /// [`super::Kind`] code.
    pub const KIND: usize = 2;
    /// [`crate::DType`] code.
    pub const DTYPE: usize = 3;
    /// Number of dimensions (0 to 8).
    pub const NDIM: usize = 4;
    /// Eight words of shape; unused dimensions are 0.
    pub const SHAPE: usize = 5;
    /// Bytes of one tensor.
    pub const TENSOR_BYTES: usize = 13;
    /// Bytes of one slot's payload: `FRAME_BYTES + TENSOR_BYTES`.
    pub const SLOT_BYTES: usize = 14;
    /// Register slots, or ring capacity.
    pub const COUNT: usize = 15;
    /// Subscriber table entries (topics), else 0.
    pub const SUBSCRIBERS: usize = 16;
    /// Byte offset of the core structure (`HEADER_BYTES`).
    pub const CORE_OFFSET: usize = 17;
    /// Total bytes of the segment.
    pub const SEGMENT_BYTES: usize = 18;
    /// Process id of the creator.
    pub const CREATOR_PID: usize = 19;
    /// User id of the creator.
    pub const CREATOR_UID: usize = 20;
    /// Creation time, nanoseconds since the Unix epoch.
    pub const CREATED_NS: usize = 21;
    /// [`crate::Clock`] code of the frames' timestamps.
    pub const CLOCK: usize = 22;
    /// Byte offset of the metadata area: the end of the core structure.
    pub const METADATA_OFFSET: usize = 23;
    /// Bytes of the metadata area (0 to `MAX_METADATA_BYTES`).
    pub const METADATA_BYTES: usize = 24;
    /// FNV-1a 64 of the metadata area's bytes.
    pub const METADATA_CHECKSUM: usize = 25;
    /// FNV-1a 64 of the little-endian bytes of words 0..CHECKSUM.
    pub const CHECKSUM: usize = 26;
    /// Number of immutable words.
    pub const COUNT_OF_FIELDS: usize = 27;
}

/// A futex word, on its own line (see `futex.rs` and docs/LAYOUT.md section 6).
#[repr(C)]
#[derive(Debug, Default)]
pub struct Futex {
    /// Bit 0 ([`Futex::WAITING`]): a waiter may be asleep on the current value, so a
    /// notifier must wake; bits 1 to 31: a count, [`Futex::EVENT`] per notify that
    /// cleared the flag. Waiters sleep on it. Changed only by read-modify-writes.
    pub word: AtomicU32,
    /// Reserved (0). Layout version 1 counted waiters here.
    pub reserved: AtomicU32,
}

/// The 1024-byte segment header.
#[repr(C)]
#[derive(Debug)]
pub struct SegmentHeader {
    /// Immutable fields (see [`field`]); the words after them, to 32, are reserved (0).
    pub fields: Line<[AtomicU64; 16]>,
    /// Immutable fields, continued.
    pub fields_hi: Line<[AtomicU64; 16]>,
    /// [`READY`] once the header is complete.
    pub ready: Line<AtomicU64>,
    /// Signalled when data arrives (stream writes, queue pushes, topic publishes).
    pub data: Line<Futex>,
    /// Signalled when space frees (queue pops, lossless topic receives, subscribers
    /// leaving).
    pub space: Line<Futex>,
    /// Reserved (0).
    pub reserved: [Line<[AtomicU64; 16]>; 3],
}

const _: () = {
    assert!(std::mem::size_of::<SegmentHeader>() == HEADER_BYTES);
    assert!(std::mem::offset_of!(SegmentHeader, ready) == 256);
    assert!(std::mem::offset_of!(SegmentHeader, data) == 384);
    assert!(std::mem::offset_of!(SegmentHeader, space) == 512);
};

impl SegmentHeader {
    /// Immutable word `index` (0..32).
    pub fn field(&self, index: usize) -> &AtomicU64 {
        if index < 16 {
            &self.fields[index]
        } else {
            &self.fields_hi[index - 16]
        }
    }
}

/// The three lane kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Latest-value stream (seqlock register).
    Stream = 1,
    /// Lossless single-producer single-consumer queue.
    Queue = 2,
    /// Broadcast topic with lossless and lossy subscribers.
    Topic = 3,
}

impl Kind {
    /// The header code.
    pub fn code(self) -> u64 {
        self as u64
    }

    /// The kind of a header code.
    pub fn from_code(code: u64) -> Option<Kind> {
        [Kind::Stream, Kind::Queue, Kind::Topic]
            .into_iter()
            .find(|k| k.code() == code)
    }

    /// `"stream"`, `"queue"` or `"topic"`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Stream => "stream",
            Kind::Queue => "queue",
            Kind::Topic => "topic",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Geometry of the core structure of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Geometry {
    /// A register.
    Stream(SeqlockGeometry),
    /// An SPSC ring.
    Queue(SpscGeometry),
    /// A broadcast ring.
    Topic(BroadcastGeometry),
}

impl Geometry {
    /// Builds the geometry of `kind` with `count` slots of `slot_bytes`.
    pub fn new(
        kind: Kind,
        count: usize,
        slot_bytes: usize,
        subscribers: usize,
    ) -> Result<Self, tensorlane_core::GeometryError> {
        Ok(match kind {
            Kind::Stream => Geometry::Stream(SeqlockGeometry::new(count, slot_bytes)?),
            Kind::Queue => Geometry::Queue(SpscGeometry::new(count, slot_bytes)?),
            Kind::Topic => Geometry::Topic(BroadcastGeometry::new(count, slot_bytes, subscribers)?),
        })
    }

    /// Bytes of the core structure (its header and body).
    pub fn core_bytes(&self) -> Option<usize> {
        let (header, words) = match self {
            Geometry::Stream(g) => (std::mem::size_of::<SeqlockHeader>(), g.body_words()),
            Geometry::Queue(g) => (std::mem::size_of::<SpscHeader>(), g.body_words()),
            Geometry::Topic(g) => (std::mem::size_of::<BroadcastHeader>(), g.body_words()),
        };
        words.checked_mul(8)?.checked_add(header)
    }

    /// Bytes of a whole segment with this geometry and no metadata: the end of the
    /// core structure, where the metadata area starts.
    pub fn segment_bytes(&self) -> Option<usize> {
        self.core_bytes()?.checked_add(HEADER_BYTES)
    }
}

/// A validated header, copied into process-local memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderInfo {
    /// Lane kind.
    pub kind: Kind,
    /// Tensor of each item.
    pub spec: TensorSpec,
    /// Geometry of the core structure.
    pub geometry: Geometry,
    /// Register slots or ring capacity.
    pub count: usize,
    /// Subscriber table entries (topics), else 0.
    pub subscribers: usize,
    /// Total segment bytes.
    pub segment_bytes: usize,
    /// Creator's process id.
    pub creator_pid: u64,
    /// Creator's user id.
    pub creator_uid: u64,
    /// Creation time, ns since the Unix epoch.
    pub created_ns: u64,
    /// The clock of the frames' timestamps.
    pub clock: Clock,
    /// The lane's metadata. [`decode`] leaves it empty; openers read the area
    /// ([`metadata_area`]) and validate it with [`decode_metadata`].
    pub metadata: Metadata,
}

/// Where a segment's metadata area is, from validated header words.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetadataArea {
    /// Byte offset in the segment (the end of the core structure).
    pub offset: u64,
    /// Bytes of the area (at most `MAX_METADATA_BYTES` once [`decode`] accepted the
    /// words).
    pub bytes: u64,
    /// FNV-1a 64 of the area's bytes.
    pub checksum: u64,
}

/// The metadata area described by header `words` (meaningful once [`decode`] has
/// accepted them).
pub fn metadata_area(words: &[u64; field::COUNT_OF_FIELDS]) -> MetadataArea {
    MetadataArea {
        offset: words[field::METADATA_OFFSET],
        bytes: words[field::METADATA_BYTES],
        checksum: words[field::METADATA_CHECKSUM],
    }
}

/// Validates the bytes read from a segment's metadata `area`.
pub fn decode_metadata(area: &MetadataArea, bytes: &[u8]) -> Result<Metadata, HeaderError> {
    if bytes.len() as u64 != area.bytes {
        return Err(HeaderError::Metadata(MetadataError::Truncated {
            at: bytes.len(),
        }));
    }
    Metadata::decode(bytes, area.checksum).map_err(HeaderError::Metadata)
}

/// Bytes of a segment whose core structure ends at `core_end`, with a metadata area of
/// `metadata_bytes` (padded to a multiple of 8).
pub fn total_bytes(core_end: usize, metadata_bytes: usize) -> Option<usize> {
    core_end.checked_add(metadata_bytes.checked_next_multiple_of(8)?)
}

/// Why a header is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HeaderError {
    /// The object is smaller than a header.
    TooShort {
        /// Bytes found.
        found: u64,
    },
    /// The creator has not finished writing the header (or died before it did).
    NotReady,
    /// Not a tensorlane segment.
    BadMagic {
        /// The word found.
        found: u64,
    },
    /// Created by another layout version.
    Version {
        /// Version found.
        found: u64,
        /// Version this library reads.
        supported: u64,
    },
    /// A field holds an impossible value.
    Field {
        /// Which field.
        field: &'static str,
        /// The value found.
        found: u64,
        /// What it must be.
        expected: String,
    },
    /// The immutable fields do not match their checksum.
    Checksum {
        /// Stored checksum.
        stored: u64,
        /// Computed checksum.
        computed: u64,
    },
    /// The metadata area is corrupt.
    Metadata(MetadataError),
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::TooShort { found } => {
                write!(f, "segment has {found} bytes, less than a header")
            }
            HeaderError::NotReady => f.write_str("segment header is not ready"),
            HeaderError::BadMagic { found } => {
                write!(f, "not a tensorlane segment (magic {found:#018x})")
            }
            HeaderError::Version { found, supported } => write!(
                f,
                "segment has layout version {found}, this library reads version {supported}"
            ),
            HeaderError::Field {
                field,
                found,
                expected,
            } => write!(f, "header field {field} is {found}, expected {expected}"),
            HeaderError::Checksum { stored, computed } => write!(
                f,
                "header checksum mismatch (stored {stored:#x}, computed {computed:#x})"
            ),
            HeaderError::Metadata(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for HeaderError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HeaderError::Metadata(e) => Some(e),
            _ => None,
        }
    }
}

/// FNV-1a 64 over the little-endian bytes of `words`.
pub fn checksum(words: &[u64]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in words.iter().flat_map(|w| w.to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// The immutable words of a new segment described by `info`, checksum included.
pub fn encode(info: &HeaderInfo) -> Option<[u64; field::COUNT_OF_FIELDS]> {
    let mut words = [0u64; field::COUNT_OF_FIELDS];
    words[field::MAGIC] = MAGIC;
    words[field::VERSION] = LAYOUT_VERSION;
    words[field::KIND] = info.kind.code();
    words[field::DTYPE] = u64::from(info.spec.dtype().code());
    words[field::NDIM] = info.spec.shape().len() as u64;
    for (i, &d) in info.spec.shape().iter().enumerate() {
        words[field::SHAPE + i] = d;
    }
    words[field::TENSOR_BYTES] = info.spec.byte_len() as u64;
    words[field::SLOT_BYTES] = (info.spec.byte_len() + FRAME_BYTES) as u64;
    words[field::COUNT] = info.count as u64;
    words[field::SUBSCRIBERS] = info.subscribers as u64;
    words[field::CORE_OFFSET] = HEADER_BYTES as u64;
    let core_end = info.geometry.segment_bytes()?;
    let metadata = info.metadata.as_bytes();
    words[field::SEGMENT_BYTES] = total_bytes(core_end, metadata.len())? as u64;
    words[field::METADATA_OFFSET] = core_end as u64;
    words[field::METADATA_BYTES] = metadata.len() as u64;
    words[field::METADATA_CHECKSUM] = info.metadata.checksum();
    words[field::CREATOR_PID] = info.creator_pid;
    words[field::CREATOR_UID] = info.creator_uid;
    words[field::CREATED_NS] = info.created_ns;
    words[field::CLOCK] = info.clock.code();
    words[field::CHECKSUM] = checksum(&words[..field::CHECKSUM]);
    Some(words)
}

/// Reads the immutable words (relaxed: the caller has acquired `ready`).
pub fn read_words(header: &SegmentHeader) -> [u64; field::COUNT_OF_FIELDS] {
    let mut words = [0u64; field::COUNT_OF_FIELDS];
    for (i, w) in words.iter_mut().enumerate() {
        *w = header.field(i).load(Ordering::Relaxed);
    }
    words
}

fn bad(field: &'static str, found: u64, expected: impl Into<String>) -> HeaderError {
    HeaderError::Field {
        field,
        found,
        expected: expected.into(),
    }
}

fn to_usize(field: &'static str, value: u64) -> Result<usize, HeaderError> {
    usize::try_from(value).map_err(|_| bad(field, value, "a size that fits in memory"))
}

/// Validates immutable words read from a segment of `object_bytes` bytes.
pub fn decode(
    words: &[u64; field::COUNT_OF_FIELDS],
    object_bytes: u64,
) -> Result<HeaderInfo, HeaderError> {
    if words[field::MAGIC] != MAGIC {
        return Err(HeaderError::BadMagic {
            found: words[field::MAGIC],
        });
    }
    if words[field::VERSION] != LAYOUT_VERSION {
        return Err(HeaderError::Version {
            found: words[field::VERSION],
            supported: LAYOUT_VERSION,
        });
    }
    let computed = checksum(&words[..field::CHECKSUM]);
    if computed != words[field::CHECKSUM] {
        return Err(HeaderError::Checksum {
            stored: words[field::CHECKSUM],
            computed,
        });
    }
    let kind = Kind::from_code(words[field::KIND]).ok_or_else(|| {
        bad(
            "kind",
            words[field::KIND],
            "1 (stream), 2 (queue) or 3 (topic)",
        )
    })?;
    let dtype = u32::try_from(words[field::DTYPE])
        .ok()
        .and_then(DType::from_code)
        .ok_or_else(|| bad("dtype", words[field::DTYPE], "a dtype code 1..=15"))?;
    let ndim = words[field::NDIM];
    if ndim > MAX_DIMS as u64 {
        return Err(bad("ndim", ndim, "at most 8"));
    }
    let shape = &words[field::SHAPE..field::SHAPE + ndim as usize];
    let spec = TensorSpec::new(dtype, shape).map_err(|e| {
        let elements = shape.iter().fold(1u64, |acc, &d| acc.saturating_mul(d));
        bad("shape", elements, e.to_string())
    })?;
    if words[field::TENSOR_BYTES] != spec.byte_len() as u64 {
        return Err(bad(
            "tensor_bytes",
            words[field::TENSOR_BYTES],
            format!("{} for {spec}", spec.byte_len()),
        ));
    }
    let slot_bytes = (spec.byte_len() + FRAME_BYTES) as u64;
    if words[field::SLOT_BYTES] != slot_bytes {
        return Err(bad(
            "slot_bytes",
            words[field::SLOT_BYTES],
            slot_bytes.to_string(),
        ));
    }
    if words[field::CORE_OFFSET] != HEADER_BYTES as u64 {
        return Err(bad("core_offset", words[field::CORE_OFFSET], "1024"));
    }
    let count = to_usize("count", words[field::COUNT])?;
    let subscribers = to_usize("subscribers", words[field::SUBSCRIBERS])?;
    if kind != Kind::Topic && subscribers != 0 {
        return Err(bad("subscribers", subscribers as u64, "0 for this kind"));
    }
    let geometry = Geometry::new(kind, count, slot_bytes as usize, subscribers)
        .map_err(|e| bad("geometry", words[field::COUNT], e.to_string()))?;
    let core_end = geometry.segment_bytes().ok_or_else(|| {
        bad(
            "segment_bytes",
            words[field::SEGMENT_BYTES],
            "a size that fits",
        )
    })?;
    if words[field::METADATA_OFFSET] != core_end as u64 {
        return Err(bad(
            "metadata_offset",
            words[field::METADATA_OFFSET],
            format!("{core_end}, the end of the core structure"),
        ));
    }
    let metadata_bytes = words[field::METADATA_BYTES];
    if metadata_bytes > MAX_METADATA_BYTES as u64 {
        return Err(bad(
            "metadata_bytes",
            metadata_bytes,
            format!("at most {MAX_METADATA_BYTES}"),
        ));
    }
    let segment_bytes = total_bytes(core_end, metadata_bytes as usize).ok_or_else(|| {
        bad(
            "segment_bytes",
            words[field::SEGMENT_BYTES],
            "a size that fits",
        )
    })?;
    if words[field::SEGMENT_BYTES] != segment_bytes as u64 {
        return Err(bad(
            "segment_bytes",
            words[field::SEGMENT_BYTES],
            segment_bytes.to_string(),
        ));
    }
    let clock = Clock::from_code(words[field::CLOCK]).ok_or_else(|| {
        bad(
            "clock",
            words[field::CLOCK],
            "1 (monotonic), 2 (realtime) or 3 (none)",
        )
    })?;
    if object_bytes < segment_bytes as u64 {
        return Err(bad(
            "segment_bytes",
            words[field::SEGMENT_BYTES],
            format!("at most the object size {object_bytes}"),
        ));
    }
    Ok(HeaderInfo {
        kind,
        spec,
        geometry,
        count,
        subscribers,
        segment_bytes,
        creator_pid: words[field::CREATOR_PID],
        creator_uid: words[field::CREATOR_UID],
        created_ns: words[field::CREATED_NS],
        clock,
        metadata: Metadata::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> [u64; field::COUNT_OF_FIELDS] {
        let spec = TensorSpec::new(DType::F32, &[2, 3]).unwrap();
        let geometry = Geometry::new(Kind::Topic, 4, 24 + FRAME_BYTES, 8).unwrap();
        encode(&HeaderInfo {
            kind: Kind::Topic,
            spec,
            geometry,
            count: 4,
            subscribers: 8,
            segment_bytes: geometry.segment_bytes().unwrap(),
            creator_pid: 1,
            creator_uid: 2,
            created_ns: 3,
            clock: Clock::Realtime,
            metadata: Metadata::default(),
        })
        .unwrap()
    }

    #[test]
    fn round_trip() {
        let words = sample();
        let info = decode(&words, words[field::SEGMENT_BYTES]).unwrap();
        assert_eq!(
            (info.kind, info.count, info.subscribers),
            (Kind::Topic, 4, 8)
        );
        assert_eq!(info.spec.shape(), &[2, 3]);
    }

    #[test]
    fn overflowing_shape_with_a_valid_checksum_is_an_error() {
        let mut words = sample();
        words[field::NDIM] = 2;
        words[field::SHAPE] = u64::MAX;
        words[field::SHAPE + 1] = 2;
        words[field::CHECKSUM] = checksum(&words[..field::CHECKSUM]);
        assert!(matches!(
            decode(&words, u64::MAX),
            Err(HeaderError::Field { field: "shape", .. })
        ));
    }

    #[test]
    fn every_single_word_change_is_rejected() {
        let words = sample();
        for i in 0..field::COUNT_OF_FIELDS {
            for value in [0, 1, 7, u64::MAX, words[i] ^ 1] {
                if value == words[i] {
                    continue;
                }
                let mut bad = words;
                bad[i] = value;
                assert!(decode(&bad, u64::MAX).is_err(), "word {i} = {value}");
            }
        }
        assert!(decode(&words, words[field::SEGMENT_BYTES] - 1).is_err());
    }
}
