//! Golden vectors: whole small segments, valid ones and one per validation rule of
//! docs/LAYOUT.md (section 4, step 6 and the checks before it), each with the verdict
//! and the error a conforming opener gives.
//!
//! The vectors are built here from the real header encoder ([`header::encode`]) and
//! written to `conformance/vectors/` by `tensorlane conformance vectors --out DIR`;
//! `shm/tests/conformance_vectors.rs` regenerates them in memory, compares them byte
//! for byte with the committed files, and opens each through the real opener.
//!
//! Invariants: every vector is deterministic (fixed creator pid, uid and time, clock
//! `none`, so timestamps are 0); an invalid vector differs from a valid one in exactly
//! the words its rule is about (plus the checksum words, recomputed unless the rule is
//! the checksum), so the first failing check is the one named.

use super::{tensor, Case};
use crate::clock::Clock;
use crate::dtype::{DType, TensorSpec};
use crate::error::LaneError;
use crate::header::{self, field, Geometry, HeaderError, HeaderInfo, Kind, FRAME_BYTES};
use crate::metadata::{self, Metadata, MetadataError};
use serde_json::{json, Value};

/// Creator pid written in every vector's header.
pub const VECTOR_PID: u64 = 4242;
/// Creator uid written in every vector's header (openers do not check it).
pub const VECTOR_UID: u64 = 1000;
/// Creation time written in every vector's header.
pub const VECTOR_CREATED_NS: u64 = 1_700_000_000_000_000_000;

const READY_AT: usize = 256;
const CORE: usize = header::HEADER_BYTES;

/// What a conforming opener does with a vector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Opens it; a reader then gets exactly `items` (sequence numbers, in order) of
    /// the conformance sequence of `case`.
    Accept {
        /// The conformance case of the lane's tensor.
        case: &'static str,
        /// What a reader gets: a stream's reader its latest value; the queue's
        /// consumer every item left; a lossless topic subscriber joining with a
        /// history of the whole ring (capacity C), the items of the last C - 1
        /// positions (LAYOUT.md section 13, join step 8.4: position `tail` may be
        /// written without regard to the joiner, overwriting `tail - C`).
        items: Vec<u64>,
    },
    /// Refuses it with the error of [`error_code`].
    Reject {
        /// The error's code.
        error: String,
    },
}

/// One golden vector.
#[derive(Debug, Clone)]
pub struct Vector {
    /// File name under `conformance/vectors/`.
    pub file: String,
    /// The whole object.
    pub bytes: Vec<u8>,
    /// What a conforming opener does with it.
    pub verdict: Verdict,
    /// The rule it exercises (LAYOUT.md section and check).
    pub rule: &'static str,
}

/// The code of an opener's error, as the manifest states it: `too_short`,
/// `not_ready`, `bad_magic`, `version`, `checksum`, `field:NAME`, `truncated`,
/// `metadata:KIND`, and a few codes for errors outside validation.
pub fn error_code(error: &LaneError) -> String {
    match error {
        LaneError::Header { source, .. } => header_code(source),
        LaneError::Truncated { .. } => "truncated".into(),
        LaneError::NotFound(_) => "not_found".into(),
        LaneError::NotRegular(_) => "not_regular".into(),
        LaneError::ForeignOwner { .. } => "foreign_owner".into(),
        LaneError::PermissionDenied(_) => "permission_denied".into(),
        LaneError::WrongKind { .. } => "wrong_kind".into(),
        LaneError::WrongSpec { .. } => "wrong_spec".into(),
        _ => "other".into(),
    }
}

fn header_code(error: &HeaderError) -> String {
    match error {
        HeaderError::TooShort { .. } => "too_short".into(),
        HeaderError::NotReady => "not_ready".into(),
        HeaderError::BadMagic { .. } => "bad_magic".into(),
        HeaderError::Version { .. } => "version".into(),
        HeaderError::Checksum { .. } => "checksum".into(),
        HeaderError::Field { field, .. } => format!("field:{field}"),
        HeaderError::Metadata(m) => format!(
            "metadata:{}",
            match m {
                MetadataError::Checksum { .. } => "checksum",
                MetadataError::Truncated { .. } => "truncated",
                MetadataError::Utf8 { .. } => "utf8",
                MetadataError::EmptyKey => "empty_key",
                MetadataError::DuplicateKey(_) => "duplicate_key",
                MetadataError::TooLarge { .. } => "too_large",
                #[allow(unreachable_patterns)]
                _ => "other",
            }
        ),
        #[allow(unreachable_patterns)]
        _ => "other".into(),
    }
}

/// A segment under construction: its header words and its bytes.
#[derive(Clone)]
struct Image {
    words: [u64; field::COUNT_OF_FIELDS],
    bytes: Vec<u8>,
    stride: usize,
    spec: TensorSpec,
    count: usize,
    subscribers: usize,
}

fn stride_bytes(slot_bytes: usize) -> usize {
    (2 + slot_bytes.div_ceil(8)).next_multiple_of(16) * 8
}

impl Image {
    fn new(kind: Kind, case: &Case, count: usize, subscribers: usize, meta: &Metadata) -> Image {
        let spec = case.spec().expect("conformance cases are valid");
        let slot_bytes = spec.byte_len() + FRAME_BYTES;
        let geometry = Geometry::new(kind, count, slot_bytes, subscribers).expect("geometry");
        let core_end = geometry.segment_bytes().expect("size");
        let info = HeaderInfo {
            kind,
            spec: spec.clone(),
            geometry,
            count,
            subscribers,
            segment_bytes: header::total_bytes(core_end, meta.as_bytes().len()).expect("size"),
            creator_pid: VECTOR_PID,
            creator_uid: VECTOR_UID,
            created_ns: VECTOR_CREATED_NS,
            clock: Clock::None,
            metadata: meta.clone(),
        };
        let words = header::encode(&info).expect("encodable");
        let mut image = Image {
            words,
            bytes: vec![0; info.segment_bytes],
            stride: stride_bytes(slot_bytes),
            spec,
            count,
            subscribers,
        };
        let at = core_end;
        image.bytes[at..at + meta.as_bytes().len()].copy_from_slice(meta.as_bytes());
        image.put(READY_AT, header::READY);
        image.store_words();
        image
    }

    fn put(&mut self, offset: usize, value: u64) {
        self.bytes[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
    }

    fn store_words(&mut self) {
        for i in 0..field::COUNT_OF_FIELDS {
            self.put(8 * i, self.words[i]);
        }
    }

    /// Sets header word `index`; the checksum is recomputed when `fix` is true.
    fn word(mut self, index: usize, value: u64, fix: bool) -> Image {
        self.words[index] = value;
        if fix {
            self.words[field::CHECKSUM] = header::checksum(&self.words[..field::CHECKSUM]);
        }
        self.store_words();
        self
    }

    fn words(mut self, changes: &[(usize, u64)]) -> Image {
        for &(index, value) in changes {
            self.words[index] = value;
        }
        self.fix()
    }

    fn fix(mut self) -> Image {
        self.words[field::CHECKSUM] = header::checksum(&self.words[..field::CHECKSUM]);
        self.store_words();
        self
    }

    /// Writes item `seq`'s frame (frame id `frame_id`, timestamp 0) into the slot at
    /// byte `slot` with stamp `stamp`.
    fn slot(&mut self, slot: usize, stamp: u64, seq: u64, frame_id: u64) {
        let data = tensor(&self.spec, seq);
        self.put(slot, stamp);
        self.put(slot + 8, (FRAME_BYTES + data.len()) as u64);
        self.put(slot + 16, frame_id);
        self.put(slot + 24, 0);
        self.bytes[slot + 32..slot + 32 + data.len()].copy_from_slice(&data);
    }

    /// A stream whose writer wrote items `1..=last` (frame id = sequence).
    fn stream_writes(mut self, last: u64) -> Image {
        let body = CORE + 256;
        for seq in 1..=last {
            let slot = body + self.stride * (seq % self.count as u64) as usize;
            self.slot(slot, 2 * seq, seq, seq);
        }
        self.put(CORE, last);
        self
    }

    /// A queue whose producer pushed `pushed` items and whose consumer popped `popped`.
    fn queue_items(mut self, pushed: u64, popped: u64) -> Image {
        let body = CORE + 384;
        for p in 0..pushed {
            let slot = body + self.stride * (p & (self.count as u64 - 1)) as usize;
            self.slot(slot, 0, p + 1, p + 1);
        }
        self.put(CORE, pushed);
        self.put(CORE + 128, popped);
        self
    }

    /// A topic whose publisher published `published` items.
    fn topic_items(mut self, published: u64) -> Image {
        let slots = CORE + 384 + 128 * self.subscribers;
        for p in 0..published {
            let slot = slots + self.stride * (p & (self.count as u64 - 1)) as usize;
            self.slot(slot, 2 * p + 2, p + 1, p + 1);
        }
        self.put(CORE, published);
        self
    }

    /// Replaces the metadata area by `raw` (with a correct area checksum unless
    /// `area_checksum` is given), resizing the object, with a correct header checksum.
    fn raw_metadata(mut self, raw: &[u8], area_checksum: Option<u64>) -> Image {
        let offset = self.words[field::METADATA_OFFSET] as usize;
        let total = offset + raw.len().next_multiple_of(8);
        self.bytes.resize(offset, 0);
        self.bytes.extend_from_slice(raw);
        self.bytes.resize(total, 0);
        self.words(&[
            (field::METADATA_BYTES, raw.len() as u64),
            (
                field::METADATA_CHECKSUM,
                area_checksum.unwrap_or_else(|| metadata::checksum(raw)),
            ),
            (field::SEGMENT_BYTES, total as u64),
        ])
    }
}

fn case(name: &str) -> Case {
    Case::named(name).expect("a conformance case")
}

fn entry(key: &str, value: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(key.len() as u32).to_le_bytes());
    out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(value);
    out
}

/// The stream every rejected header vector starts from: `float32[3, 7]`, 2 slots,
/// items 1 to 3 written.
fn base() -> Image {
    Image::new(Kind::Stream, &case("float32"), 2, 0, &Metadata::default()).stream_writes(3)
}

fn accept(
    file: &str,
    image: Image,
    case: &'static str,
    items: Vec<u64>,
    rule: &'static str,
) -> Vector {
    Vector {
        file: file.into(),
        bytes: image.bytes,
        verdict: Verdict::Accept { case, items },
        rule,
    }
}

fn reject(file: &str, bytes: Vec<u8>, error: &str, rule: &'static str) -> Vector {
    Vector {
        file: file.into(),
        bytes,
        verdict: Verdict::Reject {
            error: error.into(),
        },
        rule,
    }
}

/// A metadata vector: file, area bytes, area checksum (None: the right one), error
/// code, rule.
type MetadataRule = (
    &'static str,
    Vec<u8>,
    Option<u64>,
    &'static str,
    &'static str,
);

/// Every golden vector, in manifest order.
pub fn all() -> Vec<Vector> {
    use field::*;
    let none = Metadata::default();
    let units = Metadata::new([("units", "m/s"), ("frame", "base")]).expect("metadata");
    let mut v = vec![
        accept(
            "valid-stream.seg",
            base(),
            "float32",
            vec![3],
            "a stream of 2 slots after 3 writes: the latest is item 3",
        ),
        accept(
            "valid-queue.seg",
            Image::new(Kind::Queue, &case("int16"), 4, 0, &none).queue_items(5, 3),
            "int16",
            vec![4, 5],
            "a queue of capacity 4, 5 pushed, 3 popped: items 4 and 5 remain",
        ),
        accept(
            "valid-topic.seg",
            dead_subscriber(Image::new(Kind::Topic, &case("float64"), 4, 2, &none).topic_items(6)),
            "float64",
            vec![4, 5, 6],
            "a topic of capacity 4, 2 entries, 6 published; entry 0 is an active lossless \
             subscriber whose process is gone (its role lock is free)",
        ),
        accept(
            "valid-metadata.seg",
            Image::new(Kind::Stream, &case("uint8"), 1, 0, &units),
            "uint8",
            vec![],
            "a stream with metadata (units = m/s, frame = base), nothing written",
        ),
        accept(
            "valid-scalar.seg",
            Image::new(Kind::Stream, &case("scalar"), 1, 0, &none).stream_writes(1),
            "scalar",
            vec![1],
            "a scalar (ndim 0: one element), one slot",
        ),
        accept(
            "valid-empty3d.seg",
            Image::new(Kind::Queue, &case("empty3d"), 1, 0, &none).queue_items(1, 0),
            "empty3d",
            vec![1],
            "a zero-size tensor uint8[4, 0, 3]: items are frame prefixes only",
        ),
        accept(
            "valid-zero-first.seg",
            Image::new(Kind::Stream, &case("empty"), 1, 0, &none).words(&[
                (NDIM, 3),
                (SHAPE, 0),
                (SHAPE + 1, 1 << 63),
                (SHAPE + 2, 4),
            ]),
            "empty",
            vec![],
            "check 7: shape [0, 2^63, 4]: the product, taken outermost first, is 0 at once \
             and never overflows",
        ),
    ];
    let valid = base().bytes;
    v.push(reject(
        "too-short.seg",
        valid[..512].to_vec(),
        "too_short",
        "section 4 step 3: object under 1024 bytes",
    ));
    let mut not_ready = valid.clone();
    not_ready[READY_AT] = 0;
    v.push(reject(
        "not-ready.seg",
        not_ready,
        "not_ready",
        "section 4 step 3: ready is not 1",
    ));
    let rules: Vec<(&str, Image, &str, &'static str)> = vec![
        (
            "bad-magic.seg",
            base().word(MAGIC, u64::from_le_bytes(*b"TNSRLANF"), true),
            "bad_magic",
            "check 1: magic",
        ),
        (
            "version-2.seg",
            base().word(VERSION, 2, true),
            "version",
            "check 2: version",
        ),
        (
            "checksum.seg",
            base().word(CREATED_NS, VECTOR_CREATED_NS + 1, false),
            "checksum",
            "check 3: checksum of words 0 to 25",
        ),
        (
            "kind-4.seg",
            base().word(KIND, 4, true),
            "field:kind",
            "check 4: kind",
        ),
        (
            "dtype-0.seg",
            base().word(DTYPE, 0, true),
            "field:dtype",
            "check 5: dtype code 0",
        ),
        (
            "dtype-16.seg",
            base().word(DTYPE, 16, true),
            "field:dtype",
            "check 5: dtype code 16",
        ),
        (
            "ndim-9.seg",
            base().word(NDIM, 9, true),
            "field:ndim",
            "check 6: ndim",
        ),
        (
            "shape-overflow.seg",
            base().words(&[
                (NDIM, 3),
                (SHAPE, 1 << 63),
                (SHAPE + 1, 4),
                (SHAPE + 2, 0),
                (TENSOR_BYTES, 0),
                (SLOT_BYTES, 16),
            ]),
            "field:shape",
            "check 7: shape [2^63, 4, 0]: the partial product overflows before the 0",
        ),
        (
            "shape-too-large.seg",
            base().words(&[(NDIM, 1), (SHAPE, 1 << 38), (SHAPE + 1, 0)]),
            "field:shape",
            "check 7: float32[2^38] is 2^40 bytes, over MAX_TENSOR_BYTES",
        ),
        (
            "shape-dtype-overflow.seg",
            base().words(&[
                (DTYPE, DType::Complex128.code().into()),
                (NDIM, 1),
                (SHAPE, 1 << 61),
                (SHAPE + 1, 0),
            ]),
            "field:shape",
            "check 7: complex128[2^61]: the element count fits, times the dtype size it overflows",
        ),
        (
            "tensor-bytes.seg",
            base().word(TENSOR_BYTES, 85, true),
            "field:tensor_bytes",
            "check 8: tensor_bytes",
        ),
        (
            "slot-bytes.seg",
            base().word(SLOT_BYTES, 84, true),
            "field:slot_bytes",
            "check 9: slot_bytes",
        ),
        (
            "core-offset.seg",
            base().word(CORE_OFFSET, 2048, true),
            "field:core_offset",
            "check 10: core_offset",
        ),
        (
            "subscribers-stream.seg",
            base().word(SUBSCRIBERS, 1, true),
            "field:subscribers",
            "check 12: subscribers on a stream",
        ),
        (
            "geometry-stream-0.seg",
            base().word(COUNT, 0, true),
            "field:geometry",
            "check 13: a stream of 0 slots",
        ),
        (
            "geometry-stream-65537.seg",
            base().word(COUNT, 65_537, true),
            "field:geometry",
            "check 13: a stream of 65537 slots",
        ),
        (
            "geometry-queue-3.seg",
            base().words(&[(KIND, 2), (COUNT, 3)]),
            "field:geometry",
            "check 13: a queue capacity that is not a power of two",
        ),
        (
            "geometry-topic-0.seg",
            base().words(&[(KIND, 3), (COUNT, 4), (SUBSCRIBERS, 0)]),
            "field:geometry",
            "check 13: a topic without subscriber entries",
        ),
        (
            "geometry-overflow.seg",
            base().words(&[
                (KIND, 2),
                (DTYPE, DType::U8.code().into()),
                (NDIM, 1),
                (SHAPE, (1 << 40) - 64),
                (SHAPE + 1, 0),
                (TENSOR_BYTES, (1 << 40) - 64),
                (SLOT_BYTES, (1 << 40) - 48),
                (COUNT, 1 << 24),
            ]),
            "field:geometry",
            "check 13: 2^24 slots of 2^40 - 48 bytes: the body size overflows 64 bits",
        ),
        (
            "metadata-offset.seg",
            base().word(METADATA_OFFSET, 1528, true),
            "field:metadata_offset",
            "check 14: metadata_offset",
        ),
        (
            "metadata-bytes.seg",
            base().word(METADATA_BYTES, 65_537, true),
            "field:metadata_bytes",
            "check 15: metadata_bytes",
        ),
        (
            "segment-bytes.seg",
            base().word(SEGMENT_BYTES, 1544, true),
            "field:segment_bytes",
            "check 16: segment_bytes",
        ),
        (
            "clock-0.seg",
            base().word(CLOCK, 0, true),
            "field:clock",
            "check 17: clock",
        ),
    ];
    for (file, image, error, rule) in rules {
        v.push(reject(file, image.bytes, error, rule));
    }
    v.push(reject(
        "truncated.seg",
        valid[..valid.len() - 128].to_vec(),
        "truncated",
        "check 18: the object is smaller than segment_bytes",
    ));
    let pairs = [entry("units", b"m/s"), entry("frame", b"base")].concat();
    let metadata_rules: Vec<MetadataRule> = vec![
        (
            "metadata-checksum.seg",
            pairs.clone(),
            Some(metadata::checksum(&pairs) ^ 1),
            "metadata:checksum",
            "check 19: metadata_checksum",
        ),
        (
            "metadata-utf8.seg",
            [entry("units", b"m/\xff")].concat(),
            None,
            "metadata:utf8",
            "check 19: a value that is not UTF-8",
        ),
        (
            "metadata-empty-key.seg",
            entry("", b"x"),
            None,
            "metadata:empty_key",
            "check 19: an empty key",
        ),
        (
            "metadata-duplicate-key.seg",
            [entry("units", b"m/s"), entry("units", b"km/h")].concat(),
            None,
            "metadata:duplicate_key",
            "check 19: a repeated key",
        ),
        (
            "metadata-overrun.seg",
            [&[200u8, 0, 0, 0, 0, 0, 0, 0][..], b"units"].concat(),
            None,
            "metadata:truncated",
            "check 19: an entry's key runs past the end of the area",
        ),
    ];
    for (file, raw, area_checksum, error, rule) in metadata_rules {
        v.push(reject(
            file,
            base().raw_metadata(&raw, area_checksum).bytes,
            error,
            rule,
        ));
    }
    v
}

/// Entry 0 of a topic image: an active lossless subscriber (generation 1) at head 4,
/// whose process is gone.
fn dead_subscriber(mut image: Image) -> Image {
    let entry = CORE + 384;
    image.put(entry, (1 << 2) | 2);
    image.put(entry + 8, 4);
    image.put(entry + 16, 1);
    image.put(entry + 24, image.count as u64);
    image.put(entry + 40, (VECTOR_PID << 32) | 1);
    image
}

/// The header of an accepted vector, decoded.
fn decode(bytes: &[u8]) -> HeaderInfo {
    let mut words = [0u64; field::COUNT_OF_FIELDS];
    for (i, w) in words.iter_mut().enumerate() {
        *w = u64::from_le_bytes(bytes[8 * i..8 * i + 8].try_into().expect("8 bytes"));
    }
    header::decode(&words, bytes.len() as u64).expect("an accepted vector decodes")
}

/// The manifest (`manifest.json`): one object per vector, in order.
pub fn manifest(vectors: &[Vector]) -> String {
    let entries: Vec<Value> = vectors
        .iter()
        .map(|v| match &v.verdict {
            Verdict::Accept { case, items } => {
                let info = decode(&v.bytes);
                json!({
                    "file": v.file,
                    "bytes": v.bytes.len(),
                    "verdict": "accept",
                    "kind": info.kind.name(),
                    "dtype": info.spec.dtype().name(),
                    "shape": info.spec.shape(),
                    "count": info.count,
                    "subscribers": info.subscribers,
                    "segment_bytes": info.segment_bytes,
                    "case": case,
                    "items": items,
                    "rule": v.rule,
                })
            }
            Verdict::Reject { error } => json!({
                "file": v.file,
                "bytes": v.bytes.len(),
                "verdict": "reject",
                "error": error,
                "rule": v.rule,
            }),
        })
        .collect();
    let mut text = serde_json::to_string_pretty(&Value::Array(entries)).expect("JSON");
    text.push('\n');
    text
}
