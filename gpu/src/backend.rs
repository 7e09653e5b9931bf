//! The backend contract: where slot memory lives and how a write's completion is
//! signalled across processes.
//!
//! A GPU lane has `D` slots of device memory, allocated and exported once by the
//! writer's process when the lane is created, and one interprocess completion event
//! per slot. Every write follows the same order, whatever the backend:
//!
//! 1. enqueue the copy into slot `d` on the writer's stream
//!    ([`SlotWriter::copy_from_host`] / [`SlotWriter::copy_from_device`]);
//! 2. record slot `d`'s event after it ([`SlotWriter::record`]);
//! 3. only then publish the write's record through the shared-memory core.
//!
//! A reader that sees the record waits until slot `d`'s event has fired
//! ([`SlotReader::wait`]), then copies or uses the slot, then re-checks the lane's
//! sequence to learn whether the writer has begun reusing the slot meanwhile.
//!
//! Two implementations: [`crate::host`] (memfd slots, completion words; runs
//! everywhere, with a delayed-completion mode) and [`crate::cuda`] (CUDA IPC through
//! cudarc's driver bindings).

use crate::error::GpuError;
use std::os::fd::OwnedFd;
use std::time::Duration;

/// A raw range of device memory. For the CUDA backend `addr` is a `CUdeviceptr`; for
/// the host backend it is an address in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DevicePtr {
    /// Address of the first byte.
    pub addr: u64,
    /// Length in bytes.
    pub len: usize,
}

/// The backends a lane can be created with (the code is stored in the lane table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// Host memory standing in for device memory ([`crate::host`]).
    Host = 1,
    /// CUDA, slots exported as legacy IPC handles (`cuIpcGetMemHandle`).
    CudaLegacyIpc = 2,
    /// CUDA, slots allocated with `cuMemCreate` and exported as POSIX file descriptors.
    CudaVmm = 3,
}

impl BackendKind {
    /// The lane-table code.
    pub fn code(self) -> u64 {
        self as u64
    }

    /// The kind of a lane-table code.
    pub fn from_code(code: u64) -> Option<Self> {
        [Self::Host, Self::CudaLegacyIpc, Self::CudaVmm]
            .into_iter()
            .find(|k| k.code() == code)
    }

    /// `"host"`, `"cuda-ipc"` or `"cuda-vmm"`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Host => "host",
            Self::CudaLegacyIpc => "cuda-ipc",
            Self::CudaVmm => "cuda-vmm",
        }
    }

    /// Whether lanes of kind `lane` can be opened by a backend of this kind (both CUDA
    /// kinds are opened by the CUDA backend).
    pub fn opens(self, lane: BackendKind) -> bool {
        match self {
            Self::Host => lane == Self::Host,
            Self::CudaLegacyIpc | Self::CudaVmm => lane != Self::Host,
        }
    }
}

/// The device a backend works on, as stored in the lane table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceId {
    /// Ordinal in the writer's process (informative: ordinals differ between processes
    /// with different `CUDA_VISIBLE_DEVICES`).
    pub ordinal: u64,
    /// The device's uuid (all zero for the host backend): what openers match.
    pub uuid: [u8; 16],
}

impl std::fmt::Display for DeviceId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (", self.ordinal)?;
        for b in self.uuid {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

/// What the writer's process hands to each process that opens the lane, once: bytes
/// (for example CUDA IPC handles, `slots` equal parts) and file descriptors (memfd or
/// VMM exports, one per slot and one for the events, or none), sent over the lane's
/// Unix socket.
#[derive(Debug)]
pub struct Export {
    /// Backend-defined bytes, stored in the lane table (validated by the importer).
    pub blob: Vec<u8>,
    /// Descriptors passed with `SCM_RIGHTS`.
    pub fds: Vec<OwnedFd>,
}

/// A backend: allocates, exports and imports slots.
pub trait Backend {
    /// The writer's side of a lane's slots.
    type Writer: SlotWriter + std::fmt::Debug;
    /// A reader's side of a lane's slots.
    type Reader: SlotReader + std::fmt::Debug;

    /// What this backend creates.
    fn kind(&self) -> BackendKind;

    /// The device this backend works on.
    fn device(&self) -> DeviceId;

    /// Allocates `slots` exportable slots of `bytes` each (one allocation per slot,
    /// never stream-ordered memory) and one interprocess event per slot, and exports
    /// them once.
    fn create(&self, slots: usize, bytes: usize) -> Result<(Self::Writer, Export), GpuError>;

    /// Imports slots another process created with [`create`](Self::create). `kind`,
    /// `slots`, `bytes` and `export` come from another process: they are validated
    /// before any driver call, and imported memory is never owned by a type that frees
    /// it.
    fn import(
        &self,
        kind: BackendKind,
        device: DeviceId,
        slots: usize,
        bytes: usize,
        export: Export,
    ) -> Result<Self::Reader, GpuError>;
}

/// The writer's side of a lane's slots. All work is enqueued on one stream of the
/// writer, in call order.
pub trait SlotWriter {
    /// Enqueues a copy of `src` into the first `src.len()` bytes of `slot`. `src` may be
    /// reused when this returns (the backend stages it if the copy is asynchronous).
    fn copy_from_host(&mut self, slot: usize, src: &[u8]) -> Result<(), GpuError>;

    /// Enqueues a device-to-device copy of `src` into `slot`.
    ///
    /// # Safety
    /// `src` must be memory of this backend's device, valid for `src.len` bytes until
    /// [`synchronize`](Self::synchronize) returns, and not written meanwhile. For the
    /// host backend, `src` must be private memory of this process: a slot or view of
    /// another lane is shared memory another process writes, which only atomic accesses
    /// may touch.
    unsafe fn copy_from_device(&mut self, slot: usize, src: DevicePtr) -> Result<(), GpuError>;

    /// Records `slot`'s event after all work enqueued so far.
    fn record(&mut self, slot: usize) -> Result<(), GpuError>;

    /// Blocks until all enqueued work has completed.
    fn synchronize(&mut self) -> Result<(), GpuError>;

    /// Copies the first `dst.len()` bytes of `slot` into `dst`, after all enqueued work
    /// (used for the CPU mirror).
    fn copy_to_host(&mut self, slot: usize, dst: &mut [u8]) -> Result<(), GpuError>;

    /// The device memory of `slot`.
    fn slot_ptr(&self, slot: usize) -> DevicePtr;
}

/// A reader's side of a lane's slots.
pub trait SlotReader {
    /// Returns once the slot's event, as last recorded before this call, has fired
    /// (events carry no value, as CUDA's do), so that everything this reader does with
    /// the slot afterwards follows the write. Gives up with `Timeout` after `timeout`
    /// if it never fires (for example because the writer died with the copy in
    /// flight), and with `Overwritten` as soon as `stale` says the write waited for can
    /// no longer be read whole (the writer has begun reusing the slot).
    fn wait(
        &mut self,
        slot: usize,
        timeout: Duration,
        stale: &mut dyn FnMut() -> bool,
    ) -> Result<(), GpuError>;

    /// Copies the first `dst.len()` bytes of `slot` into `dst` and waits for the copy
    /// to complete.
    fn copy_to_host(&mut self, slot: usize, dst: &mut [u8]) -> Result<(), GpuError>;

    /// Copies `dst.len` bytes of `slot` into device memory `dst` and waits for the copy
    /// to complete.
    ///
    /// # Safety
    /// `dst` must be memory of this backend's device, valid for writes of `dst.len`
    /// bytes and not used by anything else until this returns (for the host backend:
    /// private memory of this process, not another lane's shared slot).
    unsafe fn copy_to_device(&mut self, slot: usize, dst: DevicePtr) -> Result<(), GpuError>;

    /// Blocks until this reader's enqueued work (for example a kernel reading a view)
    /// has completed.
    fn synchronize(&mut self) -> Result<(), GpuError>;

    /// The device memory of `slot` in this process.
    fn slot_ptr(&self, slot: usize) -> DevicePtr;
}
