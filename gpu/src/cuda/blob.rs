//! The export blob of a CUDA lane: its byte layout, encoding, and the validation an
//! importer runs on it before any driver call.
//!
//! # Layout (version 1)
//!
//! All integers little-endian, no padding beyond what is listed. A blob is one header
//! of [`HEADER_BYTES`] followed by `slots` entries of [`ENTRY_BYTES`], in slot order;
//! its length is exactly `HEADER_BYTES + slots * ENTRY_BYTES`.
//!
//! Header:
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0  | 8  | magic, the ASCII bytes `TLCUDA` followed by two zero bytes ([`MAGIC`]) |
//! | 8  | 4  | u32 layout version ([`VERSION`]) |
//! | 12 | 4  | u32 backend kind code: 2 legacy IPC, 3 VMM ([`BackendKind::code`]) |
//! | 16 | 8  | u64 slot count |
//! | 24 | 8  | u64 bytes per slot the lane carries |
//! | 32 | 8  | u64 VMM allocation granularity of the exporter (0 for legacy IPC) |
//! | 40 | 16 | device uuid (`cuDeviceGetUuid_v2`) |
//! | 56 | 4  | u32 exporter process id |
//! | 60 | 4  | u32 reserved, zero |
//! | 64 | 16 | exporter process nonce (random, drawn once per process) |
//!
//! Entry (one per slot):
//!
//! | offset | size | field |
//! |-------:|-----:|-------|
//! | 0  | 8  | u64 allocation bytes (what the importer maps; at least the slot bytes) |
//! | 8  | 64 | `CUipcEventHandle` of the slot's interprocess event |
//! | 72 | 64 | `CUipcMemHandle` of the slot's allocation (legacy IPC), zeros for VMM |
//!
//! For VMM the slots' memory travels as file descriptors beside the blob
//! ([`Export::fds`](crate::backend::Export)), one per slot, in slot order; legacy IPC
//! passes none.
//!
//! # Validation
//!
//! [`validate`] is pure (no driver call) and rejects, in this order: a lane of a
//! non-CUDA kind ([`GpuError::WrongBackend`]); a lane on another device
//! ([`GpuError::WrongDevice`], matched by uuid, not ordinal); a VMM lane on a device
//! without VMM ([`GpuError::Unsupported`]); a blob whose length, magic, fields or
//! allocation sizes disagree with the lane ([`GpuError::Corrupt`]), or of another
//! version ([`GpuError::Version`]); a descriptor count other than `slots` (VMM) or 0
//! (legacy) ([`GpuError::Corrupt`]); and a blob exported by the calling process
//! ([`GpuError::SameProcess`]): CUDA refuses to open a process's own legacy handles,
//! and the writer already holds the memory. All arithmetic on sizes from the blob is
//! checked.

use crate::backend::{BackendKind, DeviceId};
use crate::error::GpuError;
use std::sync::OnceLock;

/// The blob's first 8 bytes.
pub const MAGIC: [u8; 8] = *b"TLCUDA\0\0";
/// The layout version this library writes and reads.
pub const VERSION: u32 = 1;
/// Bytes of the header.
pub const HEADER_BYTES: usize = 80;
/// Bytes of one slot entry.
pub const ENTRY_BYTES: usize = 136;

/// Identifies a process for the same-process check: its id and a random nonce drawn
/// once per process image (a forked child has another id; an unrelated process with
/// the same id, say in another pid namespace, has another nonce).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProcessTag {
    /// `getpid()`.
    pub pid: u32,
    /// Random bytes drawn once per process image.
    pub nonce: [u8; 16],
}

impl ProcessTag {
    /// The calling process's tag.
    pub fn current() -> ProcessTag {
        static NONCE: OnceLock<[u8; 16]> = OnceLock::new();
        let nonce = *NONCE.get_or_init(draw_nonce);
        // SAFETY: `getpid` has no preconditions and cannot fail.
        let pid = unsafe { libc::getpid() } as u32;
        ProcessTag { pid, nonce }
    }
}

/// 16 random bytes from the kernel; if that fails, a mix of the time, the pid and an
/// address (unique enough to tell processes apart, which is all it is for).
fn draw_nonce() -> [u8; 16] {
    let mut buf = [0u8; 16];
    // SAFETY: `buf` is valid for writes of 16 bytes; flags 0 (blocking, urandom pool).
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n == 16 {
        return buf;
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    // SAFETY: `getpid` has no preconditions.
    let pid = u128::from(unsafe { libc::getpid() } as u32);
    let addr = &buf as *const _ as usize as u128;
    (t ^ (pid << 96) ^ (addr << 32)).to_le_bytes()
}

/// One slot's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotEntry {
    /// Bytes of the slot's allocation (mapped whole by the importer).
    pub alloc_bytes: u64,
    /// The slot event's `CUipcEventHandle`.
    pub event: [u8; 64],
    /// The slot allocation's `CUipcMemHandle` (legacy IPC), zeros for VMM.
    pub mem: [u8; 64],
}

/// A decoded (or to-be-encoded) blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    /// [`BackendKind::CudaLegacyIpc`] or [`BackendKind::CudaVmm`].
    pub kind: BackendKind,
    /// Bytes per slot the lane carries.
    pub bytes: u64,
    /// The exporter's VMM granularity (0 for legacy IPC).
    pub granularity: u64,
    /// The device uuid.
    pub uuid: [u8; 16],
    /// The exporting process.
    pub exporter: ProcessTag,
    /// One entry per slot, in slot order.
    pub entries: Vec<SlotEntry>,
}

/// Bytes of a blob for `slots` slots, or `None` on overflow.
pub fn blob_len(slots: usize) -> Option<usize> {
    slots.checked_mul(ENTRY_BYTES)?.checked_add(HEADER_BYTES)
}

impl Blob {
    /// The blob's bytes (layout in the module docs).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(HEADER_BYTES + self.entries.len() * ENTRY_BYTES);
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.extend_from_slice(&(self.kind.code() as u32).to_le_bytes());
        out.extend_from_slice(&(self.entries.len() as u64).to_le_bytes());
        out.extend_from_slice(&self.bytes.to_le_bytes());
        out.extend_from_slice(&self.granularity.to_le_bytes());
        out.extend_from_slice(&self.uuid);
        out.extend_from_slice(&self.exporter.pid.to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&self.exporter.nonce);
        debug_assert_eq!(out.len(), HEADER_BYTES);
        for e in &self.entries {
            out.extend_from_slice(&e.alloc_bytes.to_le_bytes());
            out.extend_from_slice(&e.event);
            out.extend_from_slice(&e.mem);
        }
        out
    }
}

/// What the importing backend is, for [`validate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Importer {
    /// The importing backend's kind (named in [`GpuError::WrongBackend`]).
    pub kind: BackendKind,
    /// The importing backend's device.
    pub device: DeviceId,
    /// The device's VMM granularity, `None` where VMM with POSIX descriptors is not
    /// supported (VMM lanes are then refused).
    pub vmm_granularity: Option<u64>,
    /// The importing process.
    pub process: ProcessTag,
}

fn corrupt(why: impl Into<String>) -> GpuError {
    GpuError::Corrupt(why.into())
}

/// A little-endian reader over a slice whose length was checked beforehand.
struct Cursor<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N], GpuError> {
        let end = self
            .at
            .checked_add(N)
            .filter(|&e| e <= self.buf.len())
            .ok_or_else(|| corrupt("CUDA export blob truncated"))?;
        let mut out = [0u8; N];
        out.copy_from_slice(&self.buf[self.at..end]);
        self.at = end;
        Ok(out)
    }

    fn u32(&mut self) -> Result<u32, GpuError> {
        Ok(u32::from_le_bytes(self.take()?))
    }

    fn u64(&mut self) -> Result<u64, GpuError> {
        Ok(u64::from_le_bytes(self.take()?))
    }
}

/// Checks a lane's `kind`, `device`, `slots`, `bytes`, blob and descriptor count
/// against each other and against the importer (see the module docs for what is
/// rejected, in order), and decodes the blob. Pure: no driver call, no panic on any
/// input.
pub fn validate(
    importer: &Importer,
    kind: BackendKind,
    device: DeviceId,
    slots: usize,
    bytes: usize,
    blob: &[u8],
    fds: usize,
) -> Result<Blob, GpuError> {
    if !matches!(kind, BackendKind::CudaLegacyIpc | BackendKind::CudaVmm) {
        return Err(GpuError::WrongBackend {
            lane: kind.name(),
            local: importer.kind.name(),
        });
    }
    if device.uuid != importer.device.uuid {
        return Err(GpuError::WrongDevice {
            lane: device.to_string(),
            local: importer.device.to_string(),
        });
    }
    let granularity = match (kind, importer.vmm_granularity) {
        (BackendKind::CudaVmm, None) => {
            return Err(GpuError::Unsupported(format!(
                "the lane uses CUDA VMM, which device {} does not support with POSIX descriptors",
                importer.device
            )))
        }
        (BackendKind::CudaVmm, Some(0)) => return Err(corrupt("VMM granularity of 0")),
        (BackendKind::CudaVmm, Some(g)) => g,
        _ => 0,
    };
    let expected = blob_len(slots)
        .ok_or_else(|| corrupt(format!("{slots} slots overflow the CUDA export blob")))?;
    if blob.len() < HEADER_BYTES {
        return Err(corrupt(format!(
            "CUDA export blob of {} bytes, shorter than its {HEADER_BYTES}-byte header",
            blob.len()
        )));
    }
    let mut c = Cursor { buf: blob, at: 0 };
    let magic: [u8; 8] = c.take()?;
    if magic != MAGIC {
        return Err(corrupt("CUDA export blob has a wrong magic"));
    }
    let version = c.u32()?;
    if version != VERSION {
        return Err(GpuError::Version {
            found: u64::from(version),
            supported: u64::from(VERSION),
        });
    }
    if blob.len() != expected {
        return Err(corrupt(format!(
            "CUDA export blob of {} bytes, expected {expected} for {slots} slots",
            blob.len()
        )));
    }
    let blob_kind = c.u32()?;
    if u64::from(blob_kind) != kind.code() {
        return Err(corrupt(format!(
            "CUDA export blob of kind code {blob_kind}, the lane says {}",
            kind.name()
        )));
    }
    let blob_slots = c.u64()?;
    if blob_slots != slots as u64 {
        return Err(corrupt(format!(
            "CUDA export blob has {blob_slots} slots, the lane {slots}"
        )));
    }
    let blob_bytes = c.u64()?;
    if blob_bytes != bytes as u64 {
        return Err(corrupt(format!(
            "CUDA export blob has {blob_bytes}-byte slots, the lane {bytes}"
        )));
    }
    let blob_granularity = c.u64()?;
    if blob_granularity != granularity {
        return Err(corrupt(format!(
            "CUDA export blob granularity {blob_granularity}, this device {granularity}"
        )));
    }
    let uuid: [u8; 16] = c.take()?;
    if uuid != device.uuid {
        return Err(corrupt(
            "CUDA export blob names another device than the lane",
        ));
    }
    let pid = c.u32()?;
    let reserved = c.u32()?;
    if reserved != 0 {
        return Err(corrupt(format!(
            "CUDA export blob has {reserved:#x} in its reserved word"
        )));
    }
    let nonce: [u8; 16] = c.take()?;
    let exporter = ProcessTag { pid, nonce };
    let mut entries = Vec::with_capacity(slots);
    for slot in 0..slots {
        let alloc_bytes = c.u64()?;
        let event: [u8; 64] = c.take()?;
        let mem: [u8; 64] = c.take()?;
        if alloc_bytes < bytes as u64 || alloc_bytes == 0 {
            return Err(corrupt(format!(
                "slot {slot} allocation of {alloc_bytes} bytes, the lane carries {bytes}"
            )));
        }
        if usize::try_from(alloc_bytes).is_err() {
            return Err(corrupt(format!(
                "slot {slot} allocation of {alloc_bytes} bytes does not fit an address"
            )));
        }
        if kind == BackendKind::CudaVmm {
            if alloc_bytes % granularity != 0 {
                return Err(corrupt(format!(
                    "slot {slot} allocation of {alloc_bytes} bytes is not a multiple of the \
                     granularity {granularity}"
                )));
            }
            if mem != [0; 64] {
                return Err(corrupt(format!(
                    "slot {slot} of a VMM lane carries a legacy memory handle"
                )));
            }
        }
        entries.push(SlotEntry {
            alloc_bytes,
            event,
            mem,
        });
    }
    let want_fds = if kind == BackendKind::CudaVmm {
        slots
    } else {
        0
    };
    if fds != want_fds {
        return Err(corrupt(format!(
            "{fds} descriptors with a {} lane of {slots} slots, expected {want_fds}",
            kind.name()
        )));
    }
    if exporter == importer.process {
        return Err(GpuError::SameProcess);
    }
    Ok(Blob {
        kind,
        bytes: blob_bytes,
        granularity,
        uuid,
        exporter,
        entries,
    })
}
