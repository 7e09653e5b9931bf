//! Ties docs/LAYOUT.md to the code.
//!
//! Every table of the document marked `<!-- layout:NAME -->` is parsed here and each
//! offset, size, code, constant and worked example in it is checked against the
//! crates (`offset_of!` on the control blocks, the header's word indices, the dtype
//! and kind codes, the checksum function), and against the bytes of real segments
//! created through the public API. Any disagreement fails a test.
#![cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]

use std::fs::File;
use std::mem::{offset_of, size_of};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tensorlane_core::{
    entry, AtomicU64, BroadcastGeometry, BroadcastHeader, Parts, SeqlockHeader, Spsc, SpscGeometry,
    SpscHeader, DEFAULT_READ_ATTEMPTS, DEFAULT_RECV_ATTEMPTS, ENTRY_WORDS, LENGTH_WORD, LINE_BYTES,
    LINE_WORDS, MAX_REGISTER_SLOTS, MAX_RING_CAPACITY, MAX_SLOT_BYTES, MAX_SUBSCRIBERS,
    PAYLOAD_WORD, STAMP_WORD,
};
use tensorlane_shm::header::{
    self, checksum, field, Futex, Geometry, SegmentHeader, FRAME_BYTES, HEADER_BYTES,
};
use tensorlane_shm::segment::{self, CONSUMER_ROLE, SUBSCRIBER_ROLE_BASE, WRITER_ROLE};
use tensorlane_shm::{
    Clock, CreateOptions, DType, Kind, LaneName, Metadata, QueueConsumer, QueueProducer,
    StreamWriter, SubscribeOptions, TensorSpec, TopicPublisher, TopicSubscriber, MAX_DIMS,
    MAX_METADATA_BYTES, MAX_NAME_LEN,
};

const DOC: &str = include_str!("../../docs/LAYOUT.md");

#[path = "layout_doc/tables.rs"]
mod tables;
use tables::*;

// ---------------------------------------------------------------------------------
// The tables against the code.

#[test]
fn header_table_matches_segment_header() {
    const W: Option<usize> = Some(8);
    const U32: Option<usize> = Some(size_of::<u32>());
    let (data, space) = (
        offset_of!(SegmentHeader, data),
        offset_of!(SegmentHeader, space),
    );
    let word = offset_of!(Futex, word);
    let expected = [
        ("magic", field::MAGIC * 8, W),
        ("version", field::VERSION * 8, W),
        ("kind", field::KIND * 8, W),
        ("dtype", field::DTYPE * 8, W),
        ("ndim", field::NDIM * 8, W),
        ("shape", field::SHAPE * 8, Some(MAX_DIMS * 8)),
        ("tensor_bytes", field::TENSOR_BYTES * 8, W),
        ("slot_bytes", field::SLOT_BYTES * 8, W),
        ("count", field::COUNT * 8, W),
        ("subscribers", field::SUBSCRIBERS * 8, W),
        ("core_offset", field::CORE_OFFSET * 8, W),
        ("segment_bytes", field::SEGMENT_BYTES * 8, W),
        ("creator_pid", field::CREATOR_PID * 8, W),
        ("creator_uid", field::CREATOR_UID * 8, W),
        ("created_ns", field::CREATED_NS * 8, W),
        ("clock", field::CLOCK * 8, W),
        ("metadata_offset", field::METADATA_OFFSET * 8, W),
        ("metadata_bytes", field::METADATA_BYTES * 8, W),
        ("metadata_checksum", field::METADATA_CHECKSUM * 8, W),
        ("checksum", field::CHECKSUM * 8, W),
        ("ready", offset_of!(SegmentHeader, ready), W),
        ("data.word", data + word, U32),
        ("space.word", space + word, U32),
    ];
    let t = table("header");
    check_layout(&t, Some(HEADER_BYTES), &expected);
    assert_eq!(size_of::<SegmentHeader>(), HEADER_BYTES);
    assert_eq!(size_of::<Futex>(), 8);
    // The named words are exactly the immutable words 0..COUNT_OF_FIELDS.
    assert_eq!(field::SHAPE + MAX_DIMS, field::TENSOR_BYTES);
    assert_eq!(field::CHECKSUM + 1, field::COUNT_OF_FIELDS);
    let reserved_after_checksum = t
        .rows
        .iter()
        .find(|r| t.num(r, "offset") == (field::COUNT_OF_FIELDS * 8) as u64)
        .expect("a row right after the checksum");
    assert_eq!(t.text(reserved_after_checksum, "name"), "reserved");
}

#[test]
fn control_block_tables_match_core() {
    const W: Option<usize> = Some(size_of::<AtomicU64>());
    check_layout(
        &table("seqlock-header"),
        Some(size_of::<SeqlockHeader>()),
        &[
            ("published", offset_of!(SeqlockHeader, published), W),
            ("writer", offset_of!(SeqlockHeader, writer), W),
        ],
    );

    // Which owner word is the producer's and which the consumer's: claim both and look.
    let geometry = SpscGeometry::new(2, 8).unwrap();
    let control = SpscHeader::default();
    let body: Vec<AtomicU64> = (0..geometry.body_words())
        .map(|_| AtomicU64::new(0))
        .collect();
    let ring = Spsc::new(Parts::new(&control, &body), geometry).unwrap();
    let (_producer, _consumer) = (ring.producer(5).unwrap(), ring.consumer(7).unwrap());
    let owner_index = |token: u64| {
        control
            .owners
            .iter()
            .position(|w| w.load(std::sync::atomic::Ordering::Relaxed) == token)
            .unwrap()
    };
    let owners = offset_of!(SpscHeader, owners);
    check_layout(
        &table("spsc-header"),
        Some(size_of::<SpscHeader>()),
        &[
            ("tail", offset_of!(SpscHeader, tail), W),
            ("head", offset_of!(SpscHeader, head), W),
            ("producer_owner", owners + 8 * owner_index(5), W),
            ("consumer_owner", owners + 8 * owner_index(7), W),
        ],
    );

    check_layout(
        &table("broadcast-header"),
        Some(size_of::<BroadcastHeader>()),
        &[
            ("tail", offset_of!(BroadcastHeader, tail), W),
            ("epoch", offset_of!(BroadcastHeader, epoch), W),
            ("producer_owner", offset_of!(BroadcastHeader, producer), W),
        ],
    );
}

#[test]
fn slot_entry_and_frame_tables_match_core() {
    check_layout(
        &table("slot"),
        None,
        &[
            ("stamp", STAMP_WORD * 8, Some(8)),
            ("length", LENGTH_WORD * 8, Some(8)),
            ("payload", PAYLOAD_WORD * 8, None),
        ],
    );
    check_layout(
        &table("subscriber-entry"),
        Some(ENTRY_WORDS * 8),
        &[
            ("state", entry::STATE * 8, Some(8)),
            ("head", entry::HEAD * 8, Some(8)),
            ("mode", entry::MODE * 8, Some(8)),
            ("max_lag", entry::MAX_LAG * 8, Some(8)),
            ("missed", entry::MISSED * 8, Some(8)),
            ("owner", entry::OWNER * 8, Some(8)),
        ],
    );
    check_layout(
        &table("frame"),
        None,
        &[
            ("frame_id", 0, Some(8)),
            ("timestamp_ns", 8, Some(8)),
            ("tensor", FRAME_BYTES, None),
        ],
    );
    // The tensor starts on a payload word, as the lanes write it.
    assert_eq!(FRAME_BYTES % 8, 0);
}

#[test]
fn constants_match_code() {
    let expected: Vec<(&str, u64)> = vec![
        ("MAGIC", header::MAGIC),
        ("LAYOUT_VERSION", header::LAYOUT_VERSION),
        ("HEADER_BYTES", HEADER_BYTES as u64),
        ("CORE_OFFSET", HEADER_BYTES as u64),
        ("READY", header::READY),
        ("CHECKSUM_WORDS", field::CHECKSUM as u64),
        ("FNV_OFFSET_BASIS", checksum(&[])),
        ("FRAME_BYTES", FRAME_BYTES as u64),
        ("LINE_BYTES", LINE_BYTES as u64),
        ("LINE_WORDS", LINE_WORDS as u64),
        ("ENTRY_WORDS", ENTRY_WORDS as u64),
        ("KIND_STREAM", Kind::Stream.code()),
        ("KIND_QUEUE", Kind::Queue.code()),
        ("KIND_TOPIC", Kind::Topic.code()),
        ("STATE_FREE", entry::FREE),
        ("STATE_JOINING", entry::JOINING),
        ("STATE_ACTIVE", entry::ACTIVE),
        ("STATE_EVICTED", entry::EVICTED),
        ("STATE_MASK", entry::STATE_MASK),
        ("MODE_LOSSLESS", entry::MODE_LOSSLESS),
        ("MODE_LOSSY", entry::MODE_LOSSY),
        ("ROLE_WRITER", WRITER_ROLE),
        ("ROLE_CONSUMER", CONSUMER_ROLE),
        ("ROLE_SUBSCRIBER_BASE", SUBSCRIBER_ROLE_BASE),
        (
            "READY_TIMEOUT_MS",
            segment::READY_TIMEOUT.as_millis() as u64,
        ),
        ("MAX_DIMS", MAX_DIMS as u64),
        ("MAX_NAME_LEN", MAX_NAME_LEN as u64),
        ("MAX_REGISTER_SLOTS", MAX_REGISTER_SLOTS as u64),
        ("MAX_RING_CAPACITY", MAX_RING_CAPACITY as u64),
        ("MAX_SUBSCRIBERS", MAX_SUBSCRIBERS as u64),
        ("MAX_SLOT_BYTES", MAX_SLOT_BYTES as u64),
        ("MAX_METADATA_BYTES", MAX_METADATA_BYTES as u64),
        ("DEFAULT_READ_ATTEMPTS", u64::from(DEFAULT_READ_ATTEMPTS)),
        ("DEFAULT_RECV_ATTEMPTS", u64::from(DEFAULT_RECV_ATTEMPTS)),
    ];
    // Checked by the tests named: FNV_PRIME (checksum_examples_match_code),
    // FILE_MODE and FILE_MODE_GROUP (real_segments_match_the_document), and
    // MAX_TENSOR_BYTES just below.
    let elsewhere = [
        "FNV_PRIME",
        "FILE_MODE",
        "FILE_MODE_GROUP",
        "MAX_TENSOR_BYTES",
    ];
    let t = table("constants");
    for row in &t.rows {
        let name = t.text(row, "name");
        let value = t.num(row, "value");
        if elsewhere.contains(&name) {
            continue;
        }
        let &(_, want) = expected
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("constants table: unknown constant {name}"));
        assert_eq!(value, want, "constants table: {name}");
    }
    for name in expected.iter().map(|(n, _)| *n).chain(elsewhere) {
        t.row("name", name);
    }

    let max_tensor = constant("MAX_TENSOR_BYTES");
    assert!(TensorSpec::bytes(max_tensor).is_ok());
    assert!(TensorSpec::bytes(max_tensor + 1).is_err());
    let max_name = constant("MAX_NAME_LEN") as usize;
    assert!(LaneName::new(&"n".repeat(max_name)).is_ok());
    assert!(LaneName::new(&"n".repeat(max_name + 1)).is_err());
    assert_eq!(
        LaneName::new("cam.0").unwrap().object_name().to_str(),
        Ok("/tensorlane.cam.0")
    );
}

#[test]
fn kinds_and_dtypes_match_code() {
    let t = table("kinds");
    assert_eq!(t.rows.len(), 3);
    for row in &t.rows {
        let kind = Kind::from_code(t.num(row, "code")).expect("a kind code");
        assert_eq!(kind.name(), t.text(row, "kind"));
        let control = t.num(row, "control_bytes") as usize;
        let block = match t.text(row, "control_block") {
            "SeqlockHeader" => size_of::<SeqlockHeader>(),
            "SpscHeader" => size_of::<SpscHeader>(),
            "BroadcastHeader" => size_of::<BroadcastHeader>(),
            other => panic!("kinds table: unknown control block {other}"),
        };
        assert_eq!(block, control, "kinds table: {kind}");
        // The kind's structure really has that control block.
        let subscribers = usize::from(kind == Kind::Topic);
        let geometry = Geometry::new(kind, 1, 8, subscribers).unwrap();
        let body = match geometry {
            Geometry::Stream(g) => g.body_words(),
            Geometry::Queue(g) => g.body_words(),
            Geometry::Topic(g) => g.body_words(),
        };
        assert_eq!(geometry.core_bytes(), Some(control + 8 * body));
    }

    let t = table("dtype");
    assert_eq!(t.rows.len(), DType::ALL.len(), "one dtype row per dtype");
    for dtype in DType::ALL {
        let row = t.row("code", &dtype.code().to_string());
        assert_eq!(t.text(row, "name"), dtype.name(), "dtype {}", dtype.code());
        assert_eq!(t.num(row, "size"), dtype.size() as u64, "size of {dtype}");
    }
}

#[test]
fn size_examples_match_code() {
    let t = table("sizes");
    let kinds = table("kinds");
    for row in &t.rows {
        let kind = kind_of(t.text(row, "kind"));
        let spec = TensorSpec::new(
            dtype_of(t.text(row, "dtype")),
            &shape_of(t.text(row, "shape")),
        )
        .unwrap();
        let (count, subscribers) = (t.num(row, "count"), t.num(row, "subscribers"));
        let tensor_bytes = t.num(row, "tensor_bytes");
        let slot_bytes = t.num(row, "slot_bytes");
        let stride = t.num(row, "stride_words");
        let segment_bytes = t.num(row, "segment_bytes");
        let what = format!("sizes table: {row:?}");
        assert_eq!(spec.byte_len() as u64, tensor_bytes, "{what}");
        assert_eq!(tensor_bytes + FRAME_BYTES as u64, slot_bytes, "{what}");
        let geometry = Geometry::new(
            kind,
            count as usize,
            slot_bytes as usize,
            subscribers as usize,
        )
        .unwrap();
        let code_stride = match geometry {
            Geometry::Stream(g) => g.slot_stride(),
            Geometry::Queue(g) => g.slot_stride(),
            Geometry::Topic(g) => g.slot_stride(),
        };
        assert_eq!(code_stride as u64, stride, "{what}");
        assert_eq!(doc_stride(slot_bytes), stride, "{what}: the stride formula");
        assert_eq!(
            geometry.segment_bytes(),
            Some(segment_bytes as usize),
            "{what}"
        );
        // The formula of section 7, with the document's control block sizes.
        let control = kinds.num(kinds.row("kind", kind.name()), "control_bytes");
        let body = count * stride + 16 * subscribers;
        assert_eq!(
            constant("HEADER_BYTES") + control + 8 * body,
            segment_bytes,
            "{what}: the size formula"
        );
    }
}

#[test]
fn checksum_examples_match_code() {
    let t = table("checksum-small");
    for row in &t.rows {
        let words: Vec<u64> = match t.text(row, "words") {
            "(none)" => Vec::new(),
            list => list
                .split(',')
                .map(|w| parse_num(w.trim().trim_matches('`')).expect("a word"))
                .collect(),
        };
        let want = t.num(row, "checksum");
        assert_eq!(checksum(&words), want, "checksum of {words:?}");
        assert_eq!(
            doc_fnv(&words),
            want,
            "FNV-1a with the document's constants"
        );
    }
    // The document's FNV constants agree with the code on arbitrary input too.
    let mut x = 0x0123_4567_89ab_cdefu64;
    let words: Vec<u64> = (0..40)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        })
        .collect();
    for n in 0..words.len() {
        assert_eq!(doc_fnv(&words[..n]), checksum(&words[..n]));
    }

    // The whole-header example.
    let t = table("checksum-example");
    let h = table("header");
    assert_eq!(t.rows.len(), field::COUNT_OF_FIELDS);
    let mut words = [0u64; field::COUNT_OF_FIELDS];
    for (i, row) in t.rows.iter().enumerate() {
        assert_eq!(t.num(row, "word"), i as u64, "checksum example: word order");
        assert_eq!(
            t.num(row, "offset"),
            8 * i as u64,
            "checksum example: word {i}"
        );
        let name = t.text(row, "name");
        let header_offset = match name.strip_prefix("shape[") {
            Some(k) => h.offset("shape") + 8 * parse_num(k.trim_end_matches(']')).unwrap(),
            None => h.offset(name),
        };
        assert_eq!(header_offset, 8 * i as u64, "checksum example: {name}");
        words[i] = t.num(row, "value");
    }
    let stored = words[field::CHECKSUM];
    assert_eq!(checksum(&words[..field::CHECKSUM]), stored);
    assert_eq!(doc_fnv(&words[..field::CHECKSUM]), stored);
    assert!(
        DOC.contains(&format!("{stored:#018x}")) && DOC.contains(&stored.to_string()),
        "the prose states the example's checksum"
    );
    let info = header::decode(&words, words[field::SEGMENT_BYTES]).expect("a valid header");
    assert_eq!(
        (info.kind, info.count, info.subscribers),
        (Kind::Topic, 4, 8)
    );
    assert_eq!(
        (info.spec.dtype(), info.spec.shape()),
        (DType::F32, &[2u64, 3][..])
    );
    assert_eq!(
        (info.creator_pid, info.creator_uid, info.created_ns),
        (4242, 1000, 1_700_000_000_000_000_000)
    );
    assert_eq!(
        header::encode(&info),
        Some(words),
        "encode gives the same words"
    );
}

#[test]
fn example_topic_offsets_match_code() {
    // The example's geometry, from the checksum example.
    let spec = TensorSpec::new(DType::F32, &[2, 3]).unwrap();
    let slot_bytes = spec.byte_len() + FRAME_BYTES;
    let g = BroadcastGeometry::new(4, slot_bytes, 8).unwrap();
    let body = HEADER_BYTES + size_of::<BroadcastHeader>();
    let slot = |i: usize| body + 8 * (g.slots_offset() + i * g.slot_stride());
    let entry_at = |i: usize| body + 8 * i * ENTRY_WORDS;
    let t = table("example-topic");
    for row in &t.rows {
        let name = t.text(row, "name");
        let (offset, size) = (t.num(row, "offset") as usize, t.num(row, "size") as usize);
        let indexed = |prefix: &str| -> Option<(usize, &str)> {
            let rest = name.strip_prefix(prefix)?.strip_prefix('[')?;
            let (index, field) = rest.split_once("].")?;
            Some((index.parse().ok()?, field))
        };
        let want = if let Some((i, f)) = indexed("entry") {
            let word = match f {
                "state" => entry::STATE,
                "head" => entry::HEAD,
                "mode" => entry::MODE,
                "max_lag" => entry::MAX_LAG,
                "missed" => entry::MISSED,
                "owner" => entry::OWNER,
                other => panic!("example-topic: unknown entry field {other}"),
            };
            (entry_at(i) + 8 * word, 8)
        } else if let Some((i, f)) = indexed("slot") {
            let payload = slot(i) + 8 * PAYLOAD_WORD;
            match f {
                "stamp" => (slot(i) + 8 * STAMP_WORD, 8),
                "length" => (slot(i) + 8 * LENGTH_WORD, 8),
                "frame_id" => (payload, 8),
                "timestamp_ns" => (payload + 8, 8),
                "tensor" => (payload + FRAME_BYTES, spec.byte_len()),
                other => panic!("example-topic: unknown slot field {other}"),
            }
        } else {
            match name {
                "tail" => (HEADER_BYTES + offset_of!(BroadcastHeader, tail), 8),
                "epoch" => (HEADER_BYTES + offset_of!(BroadcastHeader, epoch), 8),
                "producer_owner" => (HEADER_BYTES + offset_of!(BroadcastHeader, producer), 8),
                "end" => (Geometry::Topic(g).segment_bytes().expect("a size"), 0),
                other => panic!("example-topic: unknown row {other}"),
            }
        };
        assert_eq!((offset, size), want, "example-topic: {name}");
    }
}

// ---------------------------------------------------------------------------------
// Real segments, read byte by byte at the document's offsets.

#[path = "layout_doc/segments.rs"]
mod segments;
use segments::*;
#[test]
fn metadata_example_matches_code() {
    let t = table("metadata-example");
    let mut bytes = Vec::new();
    let mut pairs = Vec::new();
    let mut key = None;
    for row in &t.rows {
        assert_eq!(t.num(row, "offset"), bytes.len() as u64, "{row:?}");
        let size = t.num(row, "size") as usize;
        let value = t.text(row, "value");
        match t.text(row, "name") {
            "key_len" | "value_len" => {
                assert_eq!(size, 4);
                bytes.extend_from_slice(&(t.num(row, "value") as u32).to_le_bytes());
            }
            name @ ("key" | "value") => {
                let text = value.trim_matches('"');
                assert_eq!(text.len(), size, "{row:?}");
                bytes.extend_from_slice(text.as_bytes());
                if name == "key" {
                    key = Some(text.to_string());
                } else {
                    pairs.push((
                        key.take().expect("a key before its value"),
                        text.to_string(),
                    ));
                }
            }
            other => panic!("metadata example: unknown row {other}"),
        }
    }
    let metadata = Metadata::new(pairs.iter().map(|(k, v)| (k, v))).unwrap();
    assert_eq!(metadata.as_bytes(), &bytes[..]);
    let hex: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
    let prose: String = DOC.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(
        prose.contains(&hex.join(" ")),
        "the prose lists the example's bytes"
    );
    assert!(DOC.contains(&format!("{:#018x}", metadata.checksum())));
    assert!(DOC.contains(&format!("`metadata_bytes` is {}", bytes.len())));
    assert_eq!(metadata.checksum(), doc_fnv_bytes(&bytes));
}

/// FNV-1a 64 over bytes, with the document's constants.
fn doc_fnv_bytes(bytes: &[u8]) -> u64 {
    let prime = constant("FNV_PRIME");
    let mut hash = constant("FNV_OFFSET_BASIS");
    for &byte in bytes {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(prime);
    }
    hash
}

/// Code of the clock `name`, from the clock table.
fn clock_code(name: &str) -> u64 {
    let clocks = table("clock");
    clocks.num(clocks.row("name", name), "code")
}

#[test]
fn clock_table_matches_code() {
    let t = table("clock");
    assert_eq!(t.rows.len(), 3);
    for row in &t.rows {
        let clock = Clock::from_code(t.num(row, "code")).expect("a clock code");
        assert_eq!(clock.name(), t.text(row, "name"));
    }
    assert_eq!(Clock::default().name(), "monotonic");
    assert!(Clock::from_code(0).is_none() && Clock::from_code(4).is_none());
}

/// Bytes of the control block of `kind`, from the kinds table.
fn control_bytes(kind: &str) -> u64 {
    let kinds = table("kinds");
    kinds.num(kinds.row("kind", kind), "control_bytes")
}

fn pid_of(token: u64) -> u64 {
    assert_ne!(token, 0, "a claimed role has a non-zero token");
    token >> 32
}

#[test]
fn stream_segment_matches_the_document() {
    let name = unique("stream");
    let _cleanup = Unlink(name.clone());
    let spec = TensorSpec::new(DType::U16, &[3]).unwrap();
    let since = Clock::Monotonic.now_ns();
    let mut writer = StreamWriter::create(&name, &spec, 2).unwrap();
    assert_eq!(writer.write_elements(&[1u16, 2, 3]).unwrap(), 1);
    let image = Image::read(&name);
    image.check_header("stream", &spec, 2, 0);
    assert_eq!(mode_of(&name), constant("FILE_MODE"));

    let block = "seqlock-header";
    assert_eq!(image.control(block, "published"), 1);
    assert_eq!(
        pid_of(image.control(block, "writer")),
        u64::from(std::process::id())
    );
    let body = image.field("core_offset") + control_bytes("stream");
    let stride = 8 * doc_stride(image.field("slot_bytes"));
    // Sequence s lives in slot s mod N; its stamp is 2s once complete.
    image.check_slot(body + stride, 2, 1, &[1, 0, 2, 0, 3, 0], since);
    // Nobody waits, so the notify only loads the word (section 6): the flag (bit 0),
    // the count and the rest of the line stay clear.
    assert_eq!(image.u32_at(image.header.offset("data.word")), 0);
    assert_eq!(image.u32_at(image.header.offset("data.word") + 4), 0);

    writer
        .write_frame(bytemuck::cast_slice(&[7u16, 8, 9]), 40)
        .unwrap();
    let image = Image::read(&name);
    assert_eq!(image.control(block, "published"), 2);
    image.check_slot(body, 4, 40, &[7, 0, 8, 0, 9, 0], since);
    image.check_slot(body + stride, 2, 1, &[1, 0, 2, 0, 3, 0], since);
    assert_eq!(image.u32_at(image.header.offset("data.word")), 0);

    let file = open_object(&name);
    assert!(role_held(&file, constant("ROLE_WRITER")));
    assert!(!role_held(&file, constant("ROLE_CONSUMER")));
    drop(writer);
    assert!(!role_held(&file, constant("ROLE_WRITER")));
    assert_eq!(Image::read(&name).control(block, "writer"), 0);

    let grouped = unique("stream-group");
    let _cleanup = Unlink(grouped.clone());
    let options = CreateOptions::new().group_access(true);
    let _writer = StreamWriter::create_with(&grouped, &spec, 2, options).unwrap();
    assert_eq!(mode_of(&grouped), constant("FILE_MODE_GROUP"));
}

#[test]
fn queue_segment_matches_the_document() {
    let name = unique("queue");
    let _cleanup = Unlink(name.clone());
    let spec = TensorSpec::bytes(5).unwrap();
    let since = Clock::Monotonic.now_ns();
    let mut producer = QueueProducer::create(&name, &spec, 2).unwrap();
    let mut consumer = QueueConsumer::open(&name).unwrap();
    let timeout = Duration::from_secs(1);
    assert_eq!(producer.push_timeout(&[1, 2, 3, 4, 5], timeout).unwrap(), 1);
    assert_eq!(
        producer.push_timeout(&[6, 7, 8, 9, 10], timeout).unwrap(),
        2
    );
    let image = Image::read(&name);
    image.check_header("queue", &spec, 2, 0);

    let block = "spsc-header";
    assert_eq!(image.control(block, "tail"), 2);
    assert_eq!(image.control(block, "head"), 0);
    let me = u64::from(std::process::id());
    assert_eq!(pid_of(image.control(block, "producer_owner")), me);
    assert_eq!(pid_of(image.control(block, "consumer_owner")), me);
    let body = image.field("core_offset") + control_bytes("queue");
    let stride = 8 * doc_stride(image.field("slot_bytes"));
    // Queue slots carry no stamp: it stays 0.
    image.check_slot(body, 0, 1, &[1, 2, 3, 4, 5], since);
    image.check_slot(body + stride, 0, 2, &[6, 7, 8, 9, 10], since);
    // Notifies with nobody waiting leave the futex words alone (section 6).
    assert_eq!(image.u32_at(image.header.offset("data.word")), 0);
    assert_eq!(image.u32_at(image.header.offset("space.word")), 0);

    let mut out = [0u8; 5];
    assert_eq!(consumer.pop_timeout(&mut out, timeout).unwrap().seq, 1);
    let image = Image::read(&name);
    assert_eq!(image.control(block, "head"), 1);
    assert_eq!(image.u32_at(image.header.offset("space.word")), 0);

    // Which owner word is whose: drop the consumer and see which one clears.
    let file = open_object(&name);
    assert!(role_held(&file, constant("ROLE_WRITER")));
    assert!(role_held(&file, constant("ROLE_CONSUMER")));
    drop(consumer);
    assert!(!role_held(&file, constant("ROLE_CONSUMER")));
    let image = Image::read(&name);
    assert_eq!(image.control(block, "consumer_owner"), 0);
    assert_eq!(pid_of(image.control(block, "producer_owner")), me);
    drop(producer);
    assert_eq!(Image::read(&name).control(block, "producer_owner"), 0);
}

#[test]
fn topic_segment_matches_the_document() {
    // The worked example of the document: float32[2, 3], capacity 4, 8 subscribers.
    let name = unique("topic");
    let _cleanup = Unlink(name.clone());
    let spec = TensorSpec::new(DType::F32, &[2, 3]).unwrap();
    let since = Clock::Monotonic.now_ns();
    let mut publisher = TopicPublisher::create(&name, &spec, 4, 8).unwrap();
    let mut logger = TopicSubscriber::open(&name, SubscribeOptions::lossless()).unwrap();
    let mut display = TopicSubscriber::open(&name, SubscribeOptions::lossy(1)).unwrap();
    assert_eq!((logger.index(), display.index()), (0, 1));
    let timeout = Duration::from_secs(1);
    let item: Vec<u8> = [0.5f32; 6].iter().flat_map(|x| x.to_le_bytes()).collect();
    assert_eq!(publisher.publish_timeout(&item, timeout).unwrap(), 1);

    let image = Image::read(&name);
    image.check_header("topic", &spec, 4, 8);
    let ex = table("example-topic");
    let at = |n: &str| ex.offset(n);
    let me = u64::from(std::process::id());
    assert_eq!(image.bytes.len() as u64, at("end"));
    assert_eq!(image.u64_at(at("tail")), 1);
    assert_eq!(image.control("broadcast-header", "tail"), 1);
    // One lossless join bumped the epoch; the lossy one did not.
    assert_eq!(image.u64_at(at("epoch")), 1);
    assert_eq!(pid_of(image.u64_at(at("producer_owner"))), me);
    // Generation 1 in bits 2.., ACTIVE in bits 0..2.
    let active = (1 << 2) | constant("STATE_ACTIVE");
    assert_eq!(image.u64_at(at("entry[0].state")), active);
    assert_eq!(image.u64_at(at("entry[0].mode")), constant("MODE_LOSSLESS"));
    assert_eq!(image.u64_at(at("entry[0].max_lag")), 4);
    assert_eq!(image.u64_at(at("entry[0].head")), 0);
    assert_eq!(image.u64_at(at("entry[0].missed")), 0);
    assert_eq!(pid_of(image.u64_at(at("entry[0].owner"))), me);
    assert_eq!(image.u64_at(at("entry[1].state")), active);
    assert_eq!(image.u64_at(at("entry[1].mode")), constant("MODE_LOSSY"));
    assert_eq!(image.u64_at(at("entry[1].max_lag")), 1);
    assert_eq!(image.u64_at(at("entry[7].state")), constant("STATE_FREE"));
    // Position 0 complete: stamp 2 * 0 + 2.
    image.check_slot(at("slot[0].stamp"), 2, 1, &item, since);
    assert_eq!(
        &image.bytes[at("slot[0].tensor") as usize..][..item.len()],
        &item[..]
    );
    assert_eq!(image.u64_at(at("slot[0].frame_id")), 1);
    assert_eq!(image.u64_at(at("slot[1].stamp")), 0);
    assert_eq!(image.u32_at(image.header.offset("data.word")), 0);

    let mut out = [0f32; 6];
    assert_eq!(
        logger.recv_elements_timeout(&mut out, timeout).unwrap().seq,
        1
    );
    assert_eq!(
        display
            .recv_elements_timeout(&mut out, timeout)
            .unwrap()
            .seq,
        1
    );
    for _ in 1..4 {
        publisher.publish_timeout(&item, timeout).unwrap();
    }
    let image = Image::read(&name);
    assert_eq!(image.u64_at(at("entry[0].head")), 1);
    assert_eq!(image.u64_at(at("entry[1].head")), 1);
    // The joins and the lossless receive notify the space futex, with nobody
    // waiting: the word is left alone.
    assert_eq!(image.u32_at(image.header.offset("space.word")), 0);
    let done = |position: u64| 2 * position + 2;
    assert_eq!(image.u64_at(at("slot[1].stamp")), done(1));
    assert_eq!(image.u64_at(at("slot[3].stamp")), done(3));
    // The lossy subscriber (max lag 1) skips to the newest and records the drop.
    assert_eq!(
        display
            .recv_elements_timeout(&mut out, timeout)
            .unwrap()
            .seq,
        4
    );
    let image = Image::read(&name);
    assert_eq!(image.u64_at(at("entry[1].head")), 4);
    assert_eq!(image.u64_at(at("entry[1].missed")), 2);

    let file = open_object(&name);
    let base = constant("ROLE_SUBSCRIBER_BASE");
    assert!(role_held(&file, constant("ROLE_WRITER")));
    assert!(role_held(&file, base));
    assert!(role_held(&file, base + 1));
    assert!(!role_held(&file, base + 2));
    // Leaving frees the entry, keeps its generation, and releases the lock.
    drop(display);
    assert_eq!(
        Image::read(&name).u64_at(at("entry[1].state")),
        (1 << 2) | constant("STATE_FREE")
    );
    assert!(!role_held(&file, base + 1));
    drop(logger);
    drop(publisher);
    assert_eq!(Image::read(&name).u64_at(at("producer_owner")), 0);
}

#[test]
fn opener_rejects_what_the_document_says() {
    // A segment whose header breaks one check of section 4 does not open; the same
    // bytes with the check satisfied do.
    let name = unique("reject");
    let _cleanup = Unlink(name.clone());
    let spec = TensorSpec::new(DType::U8, &[8]).unwrap();
    let _writer = StreamWriter::create(&name, &spec, 2).unwrap();
    let original = std::fs::read(object_path(&name)).unwrap();
    let h = table("header");
    let write = |bytes: &[u8]| {
        use std::io::{Seek, SeekFrom, Write};
        let mut file = open_object(&name);
        file.seek(SeekFrom::Start(0)).unwrap();
        file.write_all(&bytes[..HEADER_BYTES]).unwrap();
    };
    let set = |bytes: &mut Vec<u8>, field: &str, value: u64| {
        let at = h.offset(field) as usize;
        bytes[at..at + 8].copy_from_slice(&value.to_le_bytes());
    };
    let reseal = |bytes: &mut Vec<u8>| {
        let words: Vec<u64> = (0..constant("CHECKSUM_WORDS") as usize)
            .map(|i| u64::from_le_bytes(bytes[8 * i..8 * i + 8].try_into().unwrap()))
            .collect();
        let sum = doc_fnv(&words);
        let at = h.offset("checksum") as usize;
        bytes[at..at + 8].copy_from_slice(&sum.to_le_bytes());
    };
    let opens = || tensorlane_shm::StreamReader::open(&name).is_ok();
    assert!(opens());
    let mut bad = original.clone();
    set(&mut bad, "count", 3); // the checksum no longer matches
    write(&bad);
    assert!(!opens(), "a checksum mismatch is rejected");
    reseal(&mut bad); // now segment_bytes no longer matches count
    write(&bad);
    assert!(!opens(), "segment_bytes must match the geometry");
    let mut bad = original.clone();
    set(&mut bad, "subscribers", 1);
    reseal(&mut bad);
    write(&bad);
    assert!(!opens(), "a stream has no subscribers");
    let mut bad = original.clone();
    set(&mut bad, "ready", 0);
    write(&bad);
    assert!(!opens(), "a header that is not ready is not read");
    write(&original);
    assert!(opens());
}

/// The column of a system-interface table for the architecture of this build.
fn this_arch() -> &'static str {
    if cfg!(target_arch = "x86_64") {
        "x86_64"
    } else if cfg!(target_arch = "aarch64") {
        "aarch64"
    } else {
        ""
    }
}

#[test]
fn system_call_tables_match_this_architecture() {
    let arch = this_arch();
    if arch.is_empty() {
        return; // The document covers x86_64 and aarch64 only.
    }
    let futex: Vec<(&str, i64)> = vec![
        ("SYS_futex", libc::SYS_futex),
        ("FUTEX_WAIT", libc::FUTEX_WAIT.into()),
        ("FUTEX_WAKE", libc::FUTEX_WAKE.into()),
        ("FUTEX_PRIVATE_FLAG", libc::FUTEX_PRIVATE_FLAG.into()),
    ];
    let fcntl: Vec<(&str, i64)> = vec![
        ("SYS_fcntl", libc::SYS_fcntl),
        ("F_OFD_GETLK", libc::F_OFD_GETLK.into()),
        ("F_OFD_SETLK", libc::F_OFD_SETLK.into()),
        ("F_OFD_SETLKW", libc::F_OFD_SETLKW.into()),
        ("F_RDLCK", libc::F_RDLCK.into()),
        ("F_WRLCK", libc::F_WRLCK.into()),
        ("F_UNLCK", libc::F_UNLCK.into()),
        ("SEEK_SET", libc::SEEK_SET.into()),
        ("EAGAIN", libc::EAGAIN.into()),
        ("EACCES", libc::EACCES.into()),
    ];
    for (name, expected) in [("futex-calls", futex), ("fcntl", fcntl)] {
        let t = table(name);
        assert_eq!(t.rows.len(), expected.len(), "table {name}: rows");
        for (constant, value) in expected {
            let row = t.row("name", constant);
            assert_eq!(
                t.num(row, arch) as i64,
                value,
                "table {name}: {constant} on {arch}"
            );
        }
    }
    check_layout(
        &table("flock"),
        Some(size_of::<libc::flock>()),
        &[
            ("l_type", offset_of!(libc::flock, l_type), Some(2)),
            ("l_whence", offset_of!(libc::flock, l_whence), Some(2)),
            ("l_start", offset_of!(libc::flock, l_start), Some(8)),
            ("l_len", offset_of!(libc::flock, l_len), Some(8)),
            ("l_pid", offset_of!(libc::flock, l_pid), Some(4)),
        ],
    );
}
