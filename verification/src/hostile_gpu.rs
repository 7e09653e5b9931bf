//! What another process can hand a GPU-lane opener, as fuzz input: the lane table, the
//! CUDA export blob, host-backend descriptors with hostile sizes, and records.
//!
//! [`run_gpu_handoff`] is the library function behind the `gpu_handoff` fuzz target
//! and its corpus replay. The first byte picks what the rest of the input becomes:
//!
//! - 0: bytes of a lane table, optionally repaired (magic, version, blob length,
//!   checksum: flags in the second byte) so that inputs get past the cheap checks,
//!   through `LaneTable::decode`: no panic; an accepted table re-encodes to exactly
//!   the same bytes and states limits that hold (2 to 250 slots, tensor bytes that
//!   match the shape, allocation at least the tensor);
//! - 1: a CUDA export blob and the lane fields beside it (kind, slots, bytes,
//!   descriptors, device), optionally repaired, through `cuda::blob::validate` (no
//!   driver needed): no panic; an accepted blob re-encodes to the same bytes and has
//!   one entry per slot, each at least the slot size;
//! - 2: a real host lane's descriptors imported with hostile kind, slot count, slot
//!   size and descriptor count, then hostile slot indices and lengths for reads and
//!   waits: every call returns a value or a typed error, never panics, maps nothing
//!   beyond the memfds;
//! - 3: records with hostile words and sequences against a table: typed errors only,
//!   and an accepted record names slot `seq mod D`.
#![cfg(not(any(feature = "loom", feature = "shuttle")))]

use std::time::Duration;
use tensorlane_gpu::backend::{Backend, DeviceId, SlotReader, SlotWriter};
use tensorlane_gpu::cuda::blob::{self, Importer, ProcessTag};
use tensorlane_gpu::table::{LaneTable, Record, TABLE_MAGIC, TABLE_WORDS};
use tensorlane_gpu::{BackendKind, Export, HostBackend};
use tensorlane_model::ByteCursor;
use tensorlane_shm::{DType, Kind, TensorSpec};

/// How the inputs of one run were answered.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HandoffOutcome {
    /// Inputs accepted (tables, blobs, imports, records, reads).
    pub accepted: u64,
    /// Inputs refused with a typed error.
    pub refused: u64,
}

impl HandoffOutcome {
    /// Adds `other`'s counts.
    pub fn absorb(&mut self, other: &HandoffOutcome) {
        self.accepted += other.accepted;
        self.refused += other.refused;
    }

    fn count<T, E>(&mut self, result: &Result<T, E>) {
        match result {
            Ok(_) => self.accepted += 1,
            Err(_) => self.refused += 1,
        }
    }
}

fn fnv1a(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn put(bytes: &mut [u8], word: usize, value: u64) {
    if let Some(w) = bytes.get_mut(word * 8..word * 8 + 8) {
        w.copy_from_slice(&value.to_le_bytes());
    }
}

/// Runs one input (see the module docs); `Err` names a violated guarantee.
pub fn run_gpu_handoff(data: &[u8]) -> Result<HandoffOutcome, String> {
    let mut input = ByteCursor::new(data);
    let mut outcome = HandoffOutcome::default();
    match input.byte() % 4 {
        0 => table(&mut input, &mut outcome)?,
        1 => cuda_blob(&mut input, &mut outcome)?,
        2 => host_import(&mut input, &mut outcome)?,
        _ => records(&mut input, &mut outcome)?,
    }
    Ok(outcome)
}

fn table(input: &mut ByteCursor<'_>, outcome: &mut HandoffOutcome) -> Result<(), String> {
    let flags = input.byte();
    let mut bytes = input.rest().to_vec();
    if flags & 1 != 0 {
        put(&mut bytes, 0, TABLE_MAGIC);
    }
    if flags & 2 != 0 {
        put(&mut bytes, 1, tensorlane_gpu::table::GPU_LAYOUT_VERSION);
    }
    if flags & 4 != 0 && bytes.len() >= TABLE_WORDS * 8 {
        let blob = (bytes.len() - TABLE_WORDS * 8) as u64;
        put(&mut bytes, 21, blob);
    }
    if flags & 8 != 0 && bytes.len() >= TABLE_WORDS * 8 {
        let sum = fnv1a(
            fnv1a(0xcbf2_9ce4_8422_2325, &bytes[..24 * 8]),
            &bytes[TABLE_WORDS * 8..],
        );
        put(&mut bytes, 24, sum);
    }
    let decoded = LaneTable::decode(&bytes);
    outcome.count(&decoded);
    if let Ok(table) = decoded {
        if table.encode() != bytes {
            return Err("an accepted lane table does not re-encode to its bytes".into());
        }
        if !(2..=250).contains(&table.slots)
            || table.slot_bytes < table.spec.byte_len()
            || !matches!(table.kind, Kind::Stream | Kind::Topic)
        {
            return Err(format!("an accepted lane table breaks a limit: {table:?}"));
        }
    }
    Ok(())
}

fn cuda_blob(input: &mut ByteCursor<'_>, outcome: &mut HandoffOutcome) -> Result<(), String> {
    let kind = BackendKind::from_code(u64::from(input.byte() % 4)).unwrap_or(BackendKind::Host);
    let slots = input.below(6);
    let bytes = usize::from(input.u16()) << input.below(24);
    let fds = input.below(8);
    let flags = input.byte();
    let local = DeviceId {
        ordinal: 0,
        uuid: [7; 16],
    };
    let device = if flags & 1 != 0 {
        local
    } else {
        DeviceId {
            ordinal: 0,
            uuid: [input.byte(); 16],
        }
    };
    let granularity = 1u64 << (input.below(4) + 16);
    let importer = Importer {
        kind: BackendKind::CudaVmm,
        device: local,
        vmm_granularity: (flags & 2 != 0).then_some(granularity),
        process: ProcessTag {
            pid: 1,
            nonce: [3; 16],
        },
    };
    let mut raw = input.rest().to_vec();
    if flags & 4 != 0 {
        // Repair the header so that inputs reach the entries.
        let mut header = Vec::with_capacity(blob::HEADER_BYTES);
        header.extend_from_slice(&blob::MAGIC);
        header.extend_from_slice(&blob::VERSION.to_le_bytes());
        header.extend_from_slice(&(kind.code() as u32).to_le_bytes());
        header.extend_from_slice(&(slots as u64).to_le_bytes());
        header.extend_from_slice(&(bytes as u64).to_le_bytes());
        let g = if kind == BackendKind::CudaVmm {
            granularity
        } else {
            0
        };
        header.extend_from_slice(&g.to_le_bytes());
        header.extend_from_slice(&device.uuid);
        // The exporter's pid, the reserved word and the nonce stay as the input has them.
        let n = raw.len().min(header.len());
        raw[..n].copy_from_slice(&header[..n]);
    }
    let validated = blob::validate(&importer, kind, device, slots, bytes, &raw, fds);
    outcome.count(&validated);
    if let Ok(decoded) = validated {
        if decoded.encode() != raw {
            return Err("an accepted CUDA blob does not re-encode to its bytes".into());
        }
        if decoded.entries.len() != slots
            || decoded.entries.iter().any(|e| e.alloc_bytes < bytes as u64)
        {
            return Err(format!("an accepted CUDA blob breaks a limit: {decoded:?}"));
        }
    }
    Ok(())
}

fn host_import(input: &mut ByteCursor<'_>, outcome: &mut HandoffOutcome) -> Result<(), String> {
    let backend = HostBackend::new();
    let real_slots = 2 + input.below(3);
    let real_bytes = 8 + input.below(200);
    let (mut writer, export) = backend
        .create(real_slots, real_bytes)
        .map_err(|e| format!("creating a host lane: {e}"))?;
    let kind = BackendKind::from_code(u64::from(input.byte() % 4)).unwrap_or(BackendKind::Host);
    let slots = match input.byte() % 4 {
        0 => real_slots,
        1 => input.below(8),
        2 => usize::MAX,
        _ => real_slots + 1,
    };
    let bytes = match input.byte() % 4 {
        0 => real_bytes,
        1 => input.u64() as usize,
        2 => real_bytes + 1 + input.below(100_000),
        _ => input.below(real_bytes + 1),
    };
    let keep = input.below(real_slots + 2);
    let fds = export.fds.into_iter().take(keep).collect();
    let imported = backend.import(
        kind,
        backend.device(),
        slots,
        bytes,
        Export {
            blob: Vec::new(),
            fds,
        },
    );
    outcome.count(&imported);
    let Ok(mut reader) = imported else {
        return Ok(());
    };
    let mut buf = vec![0u8; 256];
    while !input.done() {
        let slot = match input.byte() % 3 {
            0 => input.below(real_slots),
            1 => input.u64() as usize,
            _ => usize::MAX,
        };
        let len = input.below(257);
        let result = match input.byte() % 4 {
            0 => reader.copy_to_host(slot, &mut buf[..len]),
            1 => reader.wait(slot, Duration::ZERO, &mut || false),
            2 => writer.copy_from_host(slot, &buf[..len]),
            _ => writer.record(slot),
        };
        outcome.count(&result);
        let ptr = reader.slot_ptr(slot);
        if slot >= real_slots && ptr.len != 0 {
            return Err(format!("slot {slot} of {real_slots} has memory {ptr:?}"));
        }
    }
    Ok(())
}

fn records(input: &mut ByteCursor<'_>, outcome: &mut HandoffOutcome) -> Result<(), String> {
    let slots = 2 + input.below(249);
    let table = LaneTable {
        kind: Kind::Stream,
        backend: BackendKind::Host,
        device: DeviceId {
            ordinal: 0,
            uuid: [0; 16],
        },
        spec: TensorSpec::new(DType::U8, &[64]).expect("a valid spec"),
        slots,
        slot_bytes: 64,
        mirror: false,
        blob: Vec::new(),
        fds: slots + 1,
        writer_pid: 1,
    };
    let checksum = table.checksum();
    while !input.done() {
        let seq = input.u64();
        let mut record = [0u8; 32];
        if input.byte() & 1 == 0 {
            record.copy_from_slice(
                &Record {
                    slot: seq % slots as u64,
                    len: 64,
                    table: checksum,
                }
                .encode(),
            );
        }
        let at = input.below(32);
        record[at] ^= input.byte();
        let checked = Record::check(&record, seq, &table, checksum);
        outcome.count(&checked);
        if let Ok(slot) = checked {
            if slot as u64 != seq % slots as u64 {
                return Err(format!("record of write {seq} accepted for slot {slot}"));
            }
        }
    }
    Ok(())
}
