//! The golden vectors of `conformance/vectors/`: regenerated in memory and compared
//! byte for byte with the committed files and manifest (so they never drift from the
//! encoder), then each opened through the real opener, which must give the verdict
//! and the error the manifest states, and whose accepted lanes must yield exactly the
//! manifest's items of the conformance sequence.
#![cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]

use serde_json::Value;
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::time::Instant;
use tensorlane_shm::conformance::{self, vectors, Case};
use tensorlane_shm::*;

fn directory() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../conformance/vectors")
}

/// Unlinks a lane when dropped, so that a failing test leaves nothing behind.
struct Unlink(LaneName);
impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = segment::unlink(&self.0);
    }
}

/// Puts `bytes` in /dev/shm as lane `name`, mode 0600, as a creator would have.
fn plant(name: &str, bytes: &[u8]) -> Unlink {
    let lane = LaneName::new(name).unwrap();
    let path = format!("/dev/shm/tensorlane.{name}");
    std::fs::write(&path, bytes).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    Unlink(lane)
}

#[test]
fn the_committed_vectors_are_what_the_generator_makes() {
    let all = vectors::all();
    let dir = directory();
    let regenerate = "regenerate with: cargo run -p tensorlane-shm --bin tensorlane -- \
                      conformance vectors --out conformance/vectors";
    for v in &all {
        let committed = std::fs::read(dir.join(&v.file))
            .unwrap_or_else(|e| panic!("{}: {e}; {regenerate}", v.file));
        assert!(committed == v.bytes, "{} differs; {regenerate}", v.file);
    }
    let manifest = std::fs::read_to_string(dir.join("manifest.json")).unwrap();
    assert_eq!(
        manifest,
        vectors::manifest(&all),
        "manifest.json differs; {regenerate}"
    );
    let mut expected: BTreeSet<String> = all.iter().map(|v| v.file.clone()).collect();
    expected.insert("manifest.json".into());
    let found: BTreeSet<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(found, expected, "stray or missing files; {regenerate}");
    // Small: tens of files of a few KiB.
    assert!((20..=60).contains(&all.len()));
    assert!(
        all.iter().all(|v| v.bytes.len() <= 4096),
        "a vector over 4 KiB"
    );
}

/// What a reader of an accepted vector gets: (sequence, tensor) pairs.
fn read_items(name: &str, kind: Kind, spec: &TensorSpec) -> Vec<(u64, Vec<u8>)> {
    let mut data = vec![0u8; spec.byte_len()];
    let mut items = Vec::new();
    match kind {
        Kind::Stream => {
            let mut reader = StreamReader::open_expect(name, spec).unwrap();
            match reader.read(&mut data) {
                Ok(frame) => {
                    assert_eq!(frame.frame_id, frame.seq);
                    items.push((frame.seq, data.clone()));
                }
                Err(LaneError::Empty) => {}
                Err(e) => panic!("{name}: {e}"),
            }
        }
        Kind::Queue => {
            let mut consumer = QueueConsumer::open_expect(name, spec).unwrap();
            loop {
                match consumer.try_pop(&mut data) {
                    Ok(frame) => items.push((frame.seq, data.clone())),
                    Err(LaneError::Empty) | Err(LaneError::WriterGone) => break,
                    Err(e) => panic!("{name}: {e}"),
                }
            }
        }
        Kind::Topic => {
            let capacity = Segment::open(&LaneName::new(name).unwrap())
                .unwrap()
                .info()
                .count;
            let options = SubscribeOptions::lossless().with_history(capacity as u64);
            let mut subscriber = TopicSubscriber::open_expect(name, spec, options).unwrap();
            loop {
                match subscriber.try_recv(&mut data) {
                    Ok(frame) => items.push((frame.seq, data.clone())),
                    Err(LaneError::Empty) | Err(LaneError::WriterGone) => break,
                    Err(e) => panic!("{name}: {e}"),
                }
            }
        }
    }
    items
}

#[test]
fn the_real_opener_gives_each_vector_its_verdict() {
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(directory().join("manifest.json")).unwrap())
            .unwrap();
    let entries = manifest.as_array().unwrap();
    let mut rejected_codes = BTreeSet::new();
    for (i, entry) in entries.iter().enumerate() {
        let file = entry["file"].as_str().unwrap();
        let bytes = std::fs::read(directory().join(file)).unwrap();
        let name = format!("cv{}-{i}", std::process::id());
        let _planted = plant(&name, &bytes);
        // A past deadline: the opener does not wait for a ready word.
        let opened = Segment::open_until(&LaneName::new(&name).unwrap(), Instant::now());
        match entry["verdict"].as_str().unwrap() {
            "reject" => {
                let error = opened
                    .err()
                    .unwrap_or_else(|| panic!("{file} was accepted"));
                let code = vectors::error_code(&error);
                assert_eq!(code, entry["error"].as_str().unwrap(), "{file}: {error}");
                rejected_codes.insert(code);
            }
            "accept" => {
                let segment = opened.unwrap_or_else(|e| panic!("{file}: {e}"));
                let info = segment.info().clone();
                drop(segment);
                assert_eq!(info.kind.name(), entry["kind"], "{file}");
                assert_eq!(info.spec.dtype().name(), entry["dtype"], "{file}");
                assert_eq!(
                    serde_json::json!(info.spec.shape()),
                    entry["shape"],
                    "{file}"
                );
                assert_eq!(
                    info.count as u64,
                    entry["count"].as_u64().unwrap(),
                    "{file}"
                );
                assert_eq!(info.segment_bytes, bytes.len(), "{file}");
                let case = Case::named(entry["case"].as_str().unwrap()).unwrap();
                let expected: Vec<u64> = entry["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s.as_u64().unwrap())
                    .collect();
                let got = read_items(&name, info.kind, &info.spec);
                let seqs: Vec<u64> = got.iter().map(|(s, _)| *s).collect();
                assert_eq!(seqs, expected, "{file}");
                for (seq, data) in got {
                    let spec = case.spec().unwrap();
                    assert_eq!(data, conformance::tensor(&spec, seq), "{file} item {seq}");
                }
            }
            other => panic!("{file}: verdict {other}"),
        }
    }
    // Every check of LAYOUT.md section 4 that can fail on a 64-bit host has a vector.
    for code in [
        "too_short",
        "not_ready",
        "bad_magic",
        "version",
        "checksum",
        "field:kind",
        "field:dtype",
        "field:ndim",
        "field:shape",
        "field:tensor_bytes",
        "field:slot_bytes",
        "field:core_offset",
        "field:subscribers",
        "field:geometry",
        "field:metadata_offset",
        "field:metadata_bytes",
        "field:segment_bytes",
        "field:clock",
        "truncated",
        "metadata:checksum",
        "metadata:utf8",
        "metadata:empty_key",
        "metadata:duplicate_key",
        "metadata:truncated",
    ] {
        assert!(rejected_codes.contains(code), "no vector for {code}");
    }
}

#[test]
fn the_worked_example_of_the_document_is_the_sequence() {
    let doc = include_str!("../../docs/CONFORMANCE.md");
    let rows: Vec<Vec<&str>> = doc
        .lines()
        .skip_while(|l| l.trim() != "<!-- conformance:sequence -->")
        .skip(3)
        .take_while(|l| l.starts_with('|'))
        .map(|l| l.trim_matches('|').split('|').map(str::trim).collect())
        .collect();
    assert_eq!(rows.len(), 6, "the worked example has 6 rows");
    let element = |case: &str, item: u64, k: usize| {
        let spec = Case::named(case).unwrap().spec().unwrap();
        let size = spec.dtype().size();
        conformance::tensor(&spec, item)[k * size..(k + 1) * size].to_vec()
    };
    for row in rows {
        let (item, k): (u64, u64) = (row[0].parse().unwrap(), row[1].parse().unwrap());
        let word = u64::from_str_radix(row[2].trim_start_matches("0x"), 16).unwrap();
        assert_eq!(conformance::word(item, k), word, "{row:?}");
        let k = k as usize;
        assert_eq!(
            element("uint8", item, k),
            [row[3].parse::<u8>().unwrap()],
            "{row:?}"
        );
        assert_eq!(
            element("int16", item, k),
            row[4].parse::<i16>().unwrap().to_le_bytes(),
            "{row:?}"
        );
        assert_eq!(
            element("bool", item, k),
            [row[5].parse::<u8>().unwrap()],
            "{row:?}"
        );
        assert_eq!(
            element("float64", item, k),
            row[6].parse::<f64>().unwrap().to_le_bytes(),
            "{row:?}"
        );
        let c = element("complex128", item, k);
        assert_eq!(
            c[..8],
            row[6].parse::<f64>().unwrap().to_le_bytes(),
            "{row:?}"
        );
        assert_eq!(
            c[8..],
            row[7].parse::<f64>().unwrap().to_le_bytes(),
            "{row:?}"
        );
    }
}
