//! Ties section 16 of docs/LAYOUT.md (GPU lanes) to the code: the table's magic and
//! word positions, the record, the socket name and the host events layout.
#![cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]

use tensorlane_gpu::handoff;
use tensorlane_gpu::host::EVENT_STRIDE;
use tensorlane_gpu::table::{
    LaneTable, Record, GPU_LAYOUT_VERSION, MAX_BLOB_BYTES, MAX_DEVICE_SLOTS, RECORD_WORDS,
    TABLE_MAGIC, TABLE_WORDS,
};
use tensorlane_gpu::{BackendKind, DeviceId};
use tensorlane_shm::{DType, Kind, TensorSpec};

fn section_16() -> String {
    let doc = include_str!("../../docs/LAYOUT.md");
    let start = doc.find("## 16. GPU lanes").expect("section 16");
    doc[start..].to_string()
}

#[test]
fn documented_constants_match() {
    let doc = section_16();
    assert!(doc.contains(&format!("magic `b\"TLGPUTAB\"` (`{TABLE_MAGIC:#018x}`)")));
    assert!(doc.contains(&format!("GPU layout version, {GPU_LAYOUT_VERSION}")));
    assert!(doc.contains(&format!("{TABLE_WORDS} little-endian u64 words")));
    assert!(doc.contains(&format!("at most {MAX_BLOB_BYTES}")));
    assert!(doc.contains(&format!("2 to {MAX_DEVICE_SLOTS}")));
    assert!(doc.contains(&format!("at most {}", MAX_DEVICE_SLOTS + 1)));
    assert!(doc.contains(&format!("`u64[{RECORD_WORDS}]`")));
    assert!(doc.contains(&format!("`D * {EVENT_STRIDE}` bytes")));
    assert!(doc.contains(&format!("`d * {EVENT_STRIDE}`")));
}

#[test]
fn table_words_are_where_the_document_says() {
    let table = LaneTable {
        kind: Kind::Topic,
        backend: BackendKind::CudaVmm,
        device: DeviceId {
            ordinal: 2,
            uuid: [9; 16],
        },
        spec: TensorSpec::new(DType::F32, &[5, 7]).unwrap(),
        slots: 10,
        slot_bytes: 1 << 21,
        mirror: true,
        blob: vec![1, 2, 3],
        fds: 10,
        writer_pid: 77,
    };
    let bytes = table.encode();
    let word = |i: usize| u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().unwrap());
    let expect = [
        (0, TABLE_MAGIC),
        (1, GPU_LAYOUT_VERSION),
        (2, 3),
        (3, 3),
        (4, 2),
        (5, u64::from_le_bytes([9; 8])),
        (6, u64::from_le_bytes([9; 8])),
        (7, u64::from(DType::F32.code())),
        (8, 2),
        (9, 5),
        (10, 7),
        (11, 0),
        (16, 0),
        (17, 140),
        (18, 10),
        (19, 1 << 21),
        (20, 1),
        (21, 3),
        (22, 10),
        (23, 77),
        (24, table.checksum()),
    ];
    for (i, value) in expect {
        assert_eq!(word(i), value, "word {i}");
    }
    assert_eq!(&bytes[TABLE_WORDS * 8..], &[1, 2, 3]);
    // The checksum: FNV-1a 64 over words 0..=23, continued over the blob.
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for &b in bytes[..24 * 8].iter().chain(&bytes[TABLE_WORDS * 8..]) {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    assert_eq!(hash, word(24));
    // Record of write k = 13 (position 12): slot 13 mod 10.
    let record = Record {
        slot: 3,
        len: 140,
        table: word(24),
    }
    .encode();
    assert_eq!(Record::check(&record, 13, &table, word(24)).unwrap(), 3);
}

#[test]
fn socket_name_is_the_documented_one() {
    use std::os::linux::net::SocketAddrExt;
    let name = "camera";
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for b in name.bytes() {
        hash = (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    let addr = handoff::address(name, 4321).unwrap();
    let expected = format!("tensorlane-gpu.4321.{hash:016x}");
    assert_eq!(addr.as_abstract_name(), Some(expected.as_bytes()));
    assert!(section_16().contains("`@tensorlane-gpu.<pid>.<h>`"));
}
