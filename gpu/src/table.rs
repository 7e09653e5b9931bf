//! The lane table: what a GPU lane's writer tells each process that opens it, once.
//!
//! It travels over the lane's Unix socket (see [`crate::handoff`]) together with the
//! backend's file descriptors. It is input from another process: [`LaneTable::decode`]
//! validates every field with checked arithmetic and returns a typed error; nothing
//! in it is trusted before that. The byte layout (docs/LAYOUT.md, "GPU lanes") is
//! [`TABLE_WORDS`] little-endian u64 words followed by the backend's blob:
//!
//! | word | field |
//! |---|---|
//! | 0 | magic `b"TLGPUTAB"` |
//! | 1 | GPU layout version ([`GPU_LAYOUT_VERSION`]) |
//! | 2 | lane kind: 1 stream, 3 topic (the shm kind codes) |
//! | 3 | backend ([`BackendKind`] code) |
//! | 4 | device ordinal in the writer's process |
//! | 5, 6 | device uuid (16 bytes) |
//! | 7 | dtype code |
//! | 8 | ndim (0 to 8) |
//! | 9..17 | shape (unused dimensions 0) |
//! | 17 | tensor bytes |
//! | 18 | device slots `D` (2 to [`MAX_DEVICE_SLOTS`]) |
//! | 19 | bytes of each slot (the tensor bytes; a backend may allocate more) |
//! | 20 | 1 if the lane has a CPU mirror `<name>.cpu`, else 0 |
//! | 21 | blob bytes (at most [`MAX_BLOB_BYTES`]) |
//! | 22 | file descriptors sent with the table |
//! | 23 | writer's process id |
//! | 24 | FNV-1a 64 of the bytes of words 0..24, then of the blob |

use crate::backend::{BackendKind, DeviceId};
use crate::error::GpuError;
use tensorlane_shm::{DType, Kind, TensorSpec, MAX_DIMS};

/// `b"TLGPUTAB"` as a little-endian u64.
pub const TABLE_MAGIC: u64 = u64::from_le_bytes(*b"TLGPUTAB");
/// Version of the GPU lane layout (table and records). Openers reject others.
pub const GPU_LAYOUT_VERSION: u64 = 1;
/// Words before the blob.
pub const TABLE_WORDS: usize = 25;
/// Most device slots a lane may have.
pub const MAX_DEVICE_SLOTS: usize = 250;
/// Largest backend blob accepted.
pub const MAX_BLOB_BYTES: usize = 64 * 1024;

/// A validated lane table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaneTable {
    /// Stream or topic.
    pub kind: Kind,
    /// The backend that created the slots.
    pub backend: BackendKind,
    /// The device holding them.
    pub device: DeviceId,
    /// The tensor of every write.
    pub spec: TensorSpec,
    /// Device slots.
    pub slots: usize,
    /// Bytes of each slot (the tensor bytes; a backend may allocate more, as its blob
    /// says).
    pub slot_bytes: usize,
    /// Whether `<name>.cpu` mirrors every write in host memory.
    pub mirror: bool,
    /// Backend-defined bytes (for CUDA: the IPC handles).
    pub blob: Vec<u8>,
    /// Descriptors that come with the table.
    pub fds: usize,
    /// The writer's process id.
    pub writer_pid: u32,
}

fn fnv1a(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn corrupt(field: &str, value: u64, expected: &str) -> GpuError {
    GpuError::Corrupt(format!(
        "lane table field {field} is {value}, expected {expected}"
    ))
}

impl LaneTable {
    /// The table's bytes: the words, then the blob.
    pub fn encode(&self) -> Vec<u8> {
        let mut words = [0u64; TABLE_WORDS];
        words[0] = TABLE_MAGIC;
        words[1] = GPU_LAYOUT_VERSION;
        words[2] = self.kind.code();
        words[3] = self.backend.code();
        words[4] = self.device.ordinal;
        words[5] = u64::from_le_bytes(self.device.uuid[..8].try_into().expect("8 bytes"));
        words[6] = u64::from_le_bytes(self.device.uuid[8..].try_into().expect("8 bytes"));
        words[7] = u64::from(self.spec.dtype().code());
        words[8] = self.spec.shape().len() as u64;
        for (i, &d) in self.spec.shape().iter().enumerate() {
            words[9 + i] = d;
        }
        words[17] = self.spec.byte_len() as u64;
        words[18] = self.slots as u64;
        words[19] = self.slot_bytes as u64;
        words[20] = u64::from(self.mirror);
        words[21] = self.blob.len() as u64;
        words[22] = self.fds as u64;
        words[23] = u64::from(self.writer_pid);
        let mut bytes: Vec<u8> = words[..24].iter().flat_map(|w| w.to_le_bytes()).collect();
        let checksum = fnv1a(fnv1a(0xcbf2_9ce4_8422_2325, &bytes), &self.blob);
        bytes.extend_from_slice(&checksum.to_le_bytes());
        bytes.extend_from_slice(&self.blob);
        bytes
    }

    /// The table's checksum (word 24), which every record of the lane repeats.
    pub fn checksum(&self) -> u64 {
        let bytes = self.encode();
        u64::from_le_bytes(bytes[24 * 8..25 * 8].try_into().expect("8 bytes"))
    }

    /// Validates `bytes` (received from another process) as a table.
    pub fn decode(bytes: &[u8]) -> Result<LaneTable, GpuError> {
        if bytes.len() < TABLE_WORDS * 8 {
            return Err(GpuError::Corrupt(format!(
                "lane table of {} bytes, shorter than {}",
                bytes.len(),
                TABLE_WORDS * 8
            )));
        }
        let word = |i: usize| u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8"));
        if word(0) != TABLE_MAGIC {
            return Err(corrupt("magic", word(0), "TLGPUTAB"));
        }
        if word(1) != GPU_LAYOUT_VERSION {
            return Err(GpuError::Version {
                found: word(1),
                supported: GPU_LAYOUT_VERSION,
            });
        }
        let blob_len = word(21);
        if blob_len > MAX_BLOB_BYTES as u64
            || bytes.len() as u64 != TABLE_WORDS as u64 * 8 + blob_len
        {
            return Err(corrupt(
                "blob bytes",
                blob_len,
                &format!(
                    "{} (the bytes received after the words)",
                    bytes.len().saturating_sub(TABLE_WORDS * 8)
                ),
            ));
        }
        let (head, blob) = bytes.split_at(TABLE_WORDS * 8);
        let computed = fnv1a(fnv1a(0xcbf2_9ce4_8422_2325, &head[..24 * 8]), blob);
        if computed != word(24) {
            return Err(corrupt("checksum", word(24), &format!("{computed}")));
        }
        let kind = match Kind::from_code(word(2)) {
            Some(kind @ (Kind::Stream | Kind::Topic)) => kind,
            _ => return Err(corrupt("kind", word(2), "1 (stream) or 3 (topic)")),
        };
        let backend = BackendKind::from_code(word(3))
            .ok_or_else(|| corrupt("backend", word(3), "1, 2 or 3"))?;
        let mut uuid = [0u8; 16];
        uuid[..8].copy_from_slice(&word(5).to_le_bytes());
        uuid[8..].copy_from_slice(&word(6).to_le_bytes());
        let dtype = u32::try_from(word(7))
            .ok()
            .and_then(DType::from_code)
            .ok_or(GpuError::UnsupportedDtype(word(7)))?;
        let ndim = word(8);
        if ndim > MAX_DIMS as u64 {
            return Err(corrupt("ndim", ndim, "at most 8"));
        }
        let shape: Vec<u64> = (0..ndim as usize).map(|i| word(9 + i)).collect();
        if let Some(i) = (ndim as usize..MAX_DIMS).find(|&i| word(9 + i) != 0) {
            return Err(corrupt("unused shape word", word(9 + i), "0"));
        }
        let spec = TensorSpec::new(dtype, &shape)
            .map_err(|e| GpuError::Corrupt(format!("lane table shape: {e}")))?;
        if word(17) != spec.byte_len() as u64 {
            return Err(corrupt(
                "tensor bytes",
                word(17),
                &spec.byte_len().to_string(),
            ));
        }
        let slots = word(18);
        if !(2..=MAX_DEVICE_SLOTS as u64).contains(&slots) {
            return Err(corrupt("slots", slots, "2 to 250"));
        }
        let slot_bytes = usize::try_from(word(19))
            .ok()
            .filter(|&b| b >= spec.byte_len())
            .ok_or_else(|| corrupt("slot bytes", word(19), "at least the tensor bytes"))?;
        let mirror = match word(20) {
            0 => false,
            1 => true,
            other => return Err(corrupt("mirror", other, "0 or 1")),
        };
        let fds = word(22);
        if fds > MAX_DEVICE_SLOTS as u64 + 1 {
            return Err(corrupt("descriptors", fds, "at most 251"));
        }
        let writer_pid =
            u32::try_from(word(23)).map_err(|_| corrupt("writer pid", word(23), "a pid"))?;
        Ok(LaneTable {
            kind,
            backend,
            device: DeviceId {
                ordinal: word(4),
                uuid,
            },
            spec,
            slots: slots as usize,
            slot_bytes,
            mirror,
            blob: blob.to_vec(),
            fds: fds as usize,
            writer_pid,
        })
    }
}

/// Words of each record the writer publishes through the shm lane, per write.
pub const RECORD_WORDS: usize = 4;

/// One write's record: which slot holds it and which table it belongs to.
///
/// | word | field |
/// |---|---|
/// | 0 | device slot (the write's sequence modulo `D`) |
/// | 1 | bytes written (the tensor bytes) |
/// | 2 | the lane table's checksum |
/// | 3 | 0 (reserved) |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// Device slot.
    pub slot: u64,
    /// Bytes written.
    pub len: u64,
    /// Checksum of the lane table.
    pub table: u64,
}

impl Record {
    /// The record's bytes.
    pub fn encode(&self) -> [u8; RECORD_WORDS * 8] {
        let mut out = [0u8; RECORD_WORDS * 8];
        out[..8].copy_from_slice(&self.slot.to_le_bytes());
        out[8..16].copy_from_slice(&self.len.to_le_bytes());
        out[16..24].copy_from_slice(&self.table.to_le_bytes());
        out
    }

    /// Checks record `bytes` of write `seq` (from another process) against the table:
    /// returns the slot.
    pub fn check(
        bytes: &[u8; RECORD_WORDS * 8],
        seq: u64,
        table: &LaneTable,
        checksum: u64,
    ) -> Result<usize, GpuError> {
        let word = |i: usize| u64::from_le_bytes(bytes[i * 8..i * 8 + 8].try_into().expect("8"));
        let expected_slot = seq % table.slots as u64;
        if word(0) != expected_slot
            || word(1) != table.spec.byte_len() as u64
            || word(2) != checksum
            || word(3) != 0
        {
            return Err(GpuError::Corrupt(format!(
                "record of write {seq}: slot {}, {} bytes, table {:#x} (expected slot {expected_slot}, {} bytes, table {checksum:#x})",
                word(0),
                word(1),
                word(2),
                table.spec.byte_len()
            )));
        }
        Ok(expected_slot as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> LaneTable {
        LaneTable {
            kind: Kind::Topic,
            backend: BackendKind::CudaLegacyIpc,
            device: DeviceId {
                ordinal: 1,
                uuid: *b"0123456789abcdef",
            },
            spec: TensorSpec::new(DType::F16, &[3, 4]).unwrap(),
            slots: 6,
            slot_bytes: 2 << 20,
            mirror: true,
            blob: vec![7; 6 * 136],
            fds: 0,
            writer_pid: 4242,
        }
    }

    #[test]
    fn round_trip() {
        let table = sample();
        assert_eq!(LaneTable::decode(&table.encode()).unwrap(), table);
    }

    #[test]
    fn every_changed_byte_is_rejected() {
        let bytes = sample().encode();
        for i in 0..bytes.len() {
            for flip in [1u8, 0x80, 0xff] {
                let mut bad = bytes.clone();
                bad[i] ^= flip;
                assert!(LaneTable::decode(&bad).is_err(), "byte {i} ^ {flip:#x}");
            }
        }
        for len in [0, 8, TABLE_WORDS * 8 - 1, bytes.len() - 1] {
            assert!(LaneTable::decode(&bytes[..len]).is_err(), "length {len}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(LaneTable::decode(&longer).is_err());
    }

    /// Rewrites word `i` and the checksum, so that only the field's own check can
    /// reject it.
    fn with_word(i: usize, value: u64) -> Vec<u8> {
        let mut bytes = sample().encode();
        bytes[i * 8..i * 8 + 8].copy_from_slice(&value.to_le_bytes());
        let (head, blob) = bytes.split_at(TABLE_WORDS * 8);
        let sum = fnv1a(fnv1a(0xcbf2_9ce4_8422_2325, &head[..24 * 8]), blob);
        bytes[24 * 8..25 * 8].copy_from_slice(&sum.to_le_bytes());
        bytes
    }

    #[test]
    fn fields_with_a_valid_checksum_are_still_validated() {
        assert!(matches!(
            LaneTable::decode(&with_word(1, 2)),
            Err(GpuError::Version {
                found: 2,
                supported: 1
            })
        ));
        assert!(matches!(
            LaneTable::decode(&with_word(7, 99)),
            Err(GpuError::UnsupportedDtype(99))
        ));
        for (i, value) in [
            (2, 2),
            (3, 0),
            (8, 9),
            (9, u64::MAX),
            (17, 1),
            (18, 1),
            (18, 251),
            (19, 3),
            (16, 1),
            (20, 2),
            (21, 1 << 40),
            (22, 1000),
            (23, u64::MAX),
        ] {
            assert!(
                matches!(
                    LaneTable::decode(&with_word(i, value)),
                    Err(GpuError::Corrupt(_))
                ),
                "word {i} = {value}"
            );
        }
    }

    #[test]
    fn records_are_checked_against_the_table() {
        let table = sample();
        let sum = table.checksum();
        let record = Record {
            slot: 3,
            len: 24,
            table: sum,
        };
        assert_eq!(Record::check(&record.encode(), 9, &table, sum).unwrap(), 3);
        assert!(Record::check(&record.encode(), 10, &table, sum).is_err());
        assert!(Record::check(&Record { len: 23, ..record }.encode(), 9, &table, sum).is_err());
        assert!(Record::check(&Record { table: 1, ..record }.encode(), 9, &table, sum).is_err());
        let mut reserved = record.encode();
        reserved[31] = 1;
        assert!(Record::check(&reserved, 9, &table, sum).is_err());
    }
}
