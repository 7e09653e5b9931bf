//! Lane metadata: written at create, read by every opener and by `tensorlane
//! inspect`, refused when corrupt.
#![cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]

use std::io::{Seek, SeekFrom, Write};
use std::process::Command;
use tensorlane_shm::header::{checksum, field, HeaderError, HEADER_BYTES};
use tensorlane_shm::segment;
use tensorlane_shm::{
    metadata, CreateOptions, DType, LaneError, LaneName, MetadataError, QueueConsumer,
    QueueProducer, Segment, StreamReader, StreamWriter, SubscribeOptions, TensorSpec,
    TopicPublisher, TopicSubscriber, MAX_METADATA_BYTES,
};

struct Unlink(String);
impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = segment::unlink(&LaneName::new(&self.0).unwrap());
    }
}

fn unique(name: &str) -> String {
    format!("metadata-{name}-{}", std::process::id())
}

const PAIRS: [(&str, &str); 3] = [
    ("channels", "x,y,z"),
    ("units", "m/s"),
    ("schema", "{\"type\": \"imu\"}"),
];

fn options() -> CreateOptions {
    CreateOptions::default().metadata(PAIRS)
}

fn check(metadata: &tensorlane_shm::Metadata) {
    assert_eq!(metadata.iter().collect::<Vec<_>>(), PAIRS.to_vec());
    assert_eq!(metadata.get("units"), Some("m/s"));
    assert_eq!(metadata.get("nope"), None);
    assert!(!metadata.is_empty());
}

#[test]
fn every_lane_kind_round_trips_its_metadata() {
    let spec = TensorSpec::new(DType::F32, &[3]).unwrap();

    let name = unique("stream");
    let _cleanup = Unlink(name.clone());
    let writer = StreamWriter::create_with(&name, &spec, 2, options()).unwrap();
    let reader = StreamReader::open(&name).unwrap();
    check(writer.metadata());
    check(reader.metadata());
    check(&reader.info().metadata);

    let name = unique("queue");
    let _cleanup = Unlink(name.clone());
    let producer = QueueProducer::create_with(&name, &spec, 2, options()).unwrap();
    let consumer = QueueConsumer::open(&name).unwrap();
    check(producer.metadata());
    check(consumer.metadata());

    let name = unique("topic");
    let _cleanup = Unlink(name.clone());
    let publisher = TopicPublisher::create_with(&name, &spec, 2, 2, options()).unwrap();
    let subscriber = TopicSubscriber::open(&name, SubscribeOptions::lossless()).unwrap();
    check(publisher.metadata());
    check(subscriber.metadata());
    let segment = Segment::open(&LaneName::new(&name).unwrap()).unwrap();
    check(&segment.info().metadata);

    // Without metadata: empty, and the segment is no larger than its core.
    let name = unique("none");
    let _cleanup = Unlink(name.clone());
    let writer = StreamWriter::create(&name, &spec, 2).unwrap();
    assert!(writer.metadata().is_empty());
    let info = writer.info();
    assert_eq!(Some(info.segment_bytes), info.geometry.segment_bytes());
}

#[test]
fn invalid_metadata_is_refused_at_create() {
    let spec = TensorSpec::bytes(4).unwrap();
    let name = unique("invalid");
    let _cleanup = Unlink(name.clone());
    let big = "x".repeat(MAX_METADATA_BYTES);
    let cases = [
        (CreateOptions::default().metadata([("", "v")]), "empty key"),
        (
            CreateOptions::default().metadata([("k", "1"), ("k", "2")]),
            "duplicate key",
        ),
        (
            CreateOptions::default().metadata([("k", big.as_str())]),
            "too large",
        ),
    ];
    for (options, what) in cases {
        match StreamWriter::create_with(&name, &spec, 2, options) {
            Err(LaneError::Metadata(_)) => {}
            other => panic!("{what}: {other:?}"),
        }
        assert!(matches!(
            Segment::open(&LaneName::new(&name).unwrap()),
            Err(LaneError::NotFound(_))
        ));
    }
}

fn path(name: &str) -> String {
    format!("/dev/shm/tensorlane.{name}")
}

fn header_words(bytes: &[u8]) -> Vec<u64> {
    bytes[..HEADER_BYTES]
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

/// Writes `bytes` over the object, with the header checksum recomputed (and the
/// metadata checksum too, if `reseal_metadata`).
fn plant(name: &str, mut bytes: Vec<u8>, reseal_metadata: bool) {
    let mut words = header_words(&bytes);
    if reseal_metadata {
        let at = words[field::METADATA_OFFSET] as usize;
        let len = words[field::METADATA_BYTES] as usize;
        words[field::METADATA_CHECKSUM] = metadata::checksum(&bytes[at..at + len]);
    }
    words[field::CHECKSUM] = checksum(&words[..field::CHECKSUM]);
    for (i, w) in words.iter().enumerate().take(field::COUNT_OF_FIELDS) {
        bytes[8 * i..8 * i + 8].copy_from_slice(&w.to_le_bytes());
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(path(name))
        .unwrap();
    file.seek(SeekFrom::Start(0)).unwrap();
    file.write_all(&bytes).unwrap();
}

fn inspect(name: &str, json: bool) -> std::process::Output {
    let mut args = vec!["inspect", name];
    if json {
        args.push("--json");
    }
    Command::new(env!("CARGO_BIN_EXE_tensorlane"))
        .args(&args)
        .output()
        .unwrap()
}

#[test]
fn inspect_shows_metadata() {
    let name = unique("inspect");
    let _cleanup = Unlink(name.clone());
    let spec = TensorSpec::bytes(4).unwrap();
    let _writer = StreamWriter::create_with(
        &name,
        &spec,
        2,
        CreateOptions::default().metadata([("units", "m/s"), ("note", "a\u{1b}[31mred")]),
    )
    .unwrap();
    let out = inspect(&name, false);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("units = m/s"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "control characters are escaped: {text}"
    );
    let out = inspect(&name, true);
    assert!(out.status.success());
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(value["metadata"]["units"], "m/s");
    assert_eq!(value["clock"], "monotonic");
}

#[test]
fn corrupt_metadata_is_refused_by_open_and_inspect() {
    let name = unique("hostile");
    let _cleanup = Unlink(name.clone());
    let spec = TensorSpec::bytes(8).unwrap();
    let _writer = StreamWriter::create_with(
        &name,
        &spec,
        2,
        CreateOptions::default().metadata([("k", "v")]),
    )
    .unwrap();
    let original = std::fs::read(path(&name)).unwrap();
    let words = header_words(&original);
    let at = words[field::METADATA_OFFSET] as usize;
    assert_eq!(words[field::METADATA_BYTES], 10);
    assert_eq!(original.len(), at + 16, "10 bytes padded to 16");

    let expect = |what: &str, ok: &dyn Fn(&LaneError) -> bool| {
        match StreamReader::open(&name) {
            Err(e) if ok(&e) => {}
            other => panic!("{what}: {other:?}"),
        }
        for json in [false, true] {
            let out = inspect(&name, json);
            assert!(!out.status.success(), "{what}: inspect accepted it");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!stderr.contains("panicked"), "{what}: {stderr}");
        }
    };
    let metadata_error = |e: &LaneError| {
        matches!(
            e,
            LaneError::Header {
                source: HeaderError::Metadata(_),
                ..
            }
        )
    };

    // A changed value byte: the checksum no longer matches.
    let mut bad = original.clone();
    bad[at + 9] = b'w';
    plant(&name, bad, false);
    expect("bad checksum", &|e| {
        matches!(
            e,
            LaneError::Header {
                source: HeaderError::Metadata(MetadataError::Checksum { .. }),
                ..
            }
        )
    });

    // A key length past the end of the area, checksums resealed.
    let mut bad = original.clone();
    bad[at..at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
    plant(&name, bad, true);
    expect("length past the end", &metadata_error);

    // Invalid UTF-8, checksums resealed.
    let mut bad = original.clone();
    bad[at + 8] = 0xff;
    plant(&name, bad, true);
    expect("invalid UTF-8", &metadata_error);

    // A huge claimed length: refused from the header words, before any allocation.
    for claimed in [MAX_METADATA_BYTES as u64 + 1, 1 << 40, u64::MAX] {
        let mut bad = original.clone();
        bad[8 * field::METADATA_BYTES..8 * field::METADATA_BYTES + 8]
            .copy_from_slice(&claimed.to_le_bytes());
        plant(&name, bad, false);
        expect("huge length", &|e| {
            matches!(
                e,
                LaneError::Header {
                    source: HeaderError::Field {
                        field: "metadata_bytes",
                        ..
                    },
                    ..
                }
            )
        });
    }

    // A length within the cap but past the object: segment_bytes disagrees.
    let mut bad = original.clone();
    bad[8 * field::METADATA_BYTES..8 * field::METADATA_BYTES + 8]
        .copy_from_slice(&(MAX_METADATA_BYTES as u64).to_le_bytes());
    plant(&name, bad, false);
    expect("length past the object", &|e| {
        matches!(
            e,
            LaneError::Header {
                source: HeaderError::Field {
                    field: "segment_bytes",
                    ..
                },
                ..
            }
        )
    });

    // An offset that is not the end of the core structure.
    let mut bad = original.clone();
    bad[8 * field::METADATA_OFFSET..8 * field::METADATA_OFFSET + 8]
        .copy_from_slice(&(at as u64 + 8).to_le_bytes());
    plant(&name, bad, false);
    expect("moved offset", &|e| {
        matches!(
            e,
            LaneError::Header {
                source: HeaderError::Field {
                    field: "metadata_offset",
                    ..
                },
                ..
            }
        )
    });

    plant(&name, original, false);
    check_ok(&name);
}

fn check_ok(name: &str) {
    let reader = StreamReader::open(name).unwrap();
    assert_eq!(reader.metadata().get("k"), Some("v"));
}
