//! A recording is untrusted input: cut or damaged files give typed errors or the
//! frames before the damage, never a panic.
#![cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]

use mcap::records::MessageHeader;
use std::io::Cursor;
use tensorlane_record::encoding::{self, LaneDescription, HEADER_BYTES, MESSAGE_ENCODING};
use tensorlane_record::replay::Recording;
use tensorlane_shm::{Clock, DType, Frame, Kind, TensorSpec};

/// A small recording made with the encoding functions: `frames` frames of 6 bytes,
/// in chunks of 3 frames.
fn recording(frames: u64) -> Vec<u8> {
    let lane = LaneDescription {
        name: "cam".into(),
        kind: Kind::Topic,
        spec: TensorSpec::new(DType::U8, &[2, 3]).unwrap(),
        count: 8,
        subscribers: 2,
        clock: Clock::Monotonic,
        metadata: vec![("k".into(), "v".into())],
    };
    let mut writer = mcap::WriteOptions::new()
        .compression(None)
        .create(Cursor::new(Vec::new()))
        .unwrap();
    let schema = writer
        .add_schema(
            encoding::SCHEMA_NAME,
            encoding::SCHEMA_ENCODING,
            encoding::SCHEMA_TEXT.as_bytes(),
        )
        .unwrap();
    let channel = writer
        .add_channel(schema, "cam", MESSAGE_ENCODING, &lane.channel_metadata())
        .unwrap();
    for seq in 1..=frames {
        let frame = Frame {
            seq,
            frame_id: seq + 10,
            timestamp_ns: seq * 1000,
            missed: 0,
        };
        let mut message = vec![seq as u8; HEADER_BYTES + 6];
        encoding::encode_header(&frame, &mut message);
        let header = MessageHeader {
            channel_id: channel,
            sequence: seq as u32,
            log_time: seq,
            publish_time: seq * 1000,
        };
        writer.write_to_known_channel(&header, &message).unwrap();
        if seq % 3 == 0 {
            writer.flush().unwrap();
        }
    }
    writer.finish().unwrap();
    writer.into_inner().into_inner()
}

#[test]
fn a_whole_file_reads_back() {
    let parsed = Recording::parse(&recording(10)).unwrap();
    assert_eq!(parsed.truncated, None);
    assert_eq!(parsed.lanes[0].metadata, vec![("k".into(), "v".into())]);
    assert_eq!(parsed.frames.len(), 10);
    for (i, f) in parsed.frames.iter().enumerate() {
        assert_eq!(f.frame.frame_id, i as u64 + 11);
        assert_eq!(f.tensor, vec![i as u8 + 1; 6]);
    }
}

#[test]
fn every_cut_gives_a_prefix_of_the_frames_or_an_error() {
    let whole = recording(10);
    let mut complete_prefixes = 0;
    for len in 0..whole.len() {
        match Recording::parse(&whole[..len]) {
            Ok(parsed) => {
                assert!(parsed.truncated.is_some(), "a cut at {len} is reported");
                for (i, f) in parsed.frames.iter().enumerate() {
                    assert_eq!(f.frame.seq, i as u64 + 1, "cut at {len}");
                    assert_eq!(f.tensor, vec![i as u8 + 1; 6], "cut at {len}");
                }
                if parsed.frames.len() == 9 {
                    complete_prefixes += 1;
                }
            }
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    }
    assert!(
        complete_prefixes > 0,
        "a cut after the third chunk keeps 9 frames"
    );
}

#[test]
fn damaged_bytes_never_panic() {
    let whole = recording(6);
    // Every byte, set to three values: a deterministic sweep over the file.
    for at in 0..whole.len() {
        for value in [0x00, 0xff, whole[at] ^ 0x55] {
            let mut damaged = whole.clone();
            damaged[at] = value;
            if let Ok(parsed) = Recording::parse(&damaged) {
                for f in &parsed.frames {
                    assert_eq!(f.tensor.len(), 6);
                }
            }
        }
    }
}
