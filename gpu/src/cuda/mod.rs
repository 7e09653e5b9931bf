//! The CUDA backend (cudarc driver bindings, loaded at run time).
//!
//! [`CudaBackend`] allocates a lane's slots on one device, exports them once, and
//! imports the slots another process exported. Two kinds of lane:
//!
//! - [`BackendKind::CudaVmm`], where the device supports virtual memory management
//!   and POSIX file descriptor handles: each slot is a `cuMemCreate` allocation
//!   (rounded up to the allocation granularity), mapped read/write in a reserved range
//!   and exported as a file descriptor, passed beside the blob over the lane's Unix
//!   socket (which checks the peer's uid);
//! - [`BackendKind::CudaLegacyIpc`] otherwise (or when asked, [`CudaBackend::legacy`]):
//!   each slot is a `cuMemAlloc_v2` allocation exported with `cuIpcGetMemHandle`.
//!
//! Either way each slot has an interprocess event (`CU_EVENT_INTERPROCESS |
//! CU_EVENT_DISABLE_TIMING`) exported with `cuIpcGetEventHandle`. The handles and sizes
//! travel in a blob whose byte layout is documented in [`blob`].
//!
//! # Protocol and the pitfalls it avoids
//!
//! - *Export of a temporary.* Slot memory is allocated by [`Backend::create`] and owned
//!   by the returned [`CudaWriter`] until it is dropped; it is exported once, at
//!   creation. Nothing exported can be freed while the writer lives.
//! - *Stream-ordered memory.* Slots never come from the stream-ordered allocator
//!   (`cuMemAllocAsync`, cudarc's `CudaStream::alloc`), whose memory cannot be exported
//!   with these handles; they come from `cuMemAlloc_v2` or `cuMemCreate`.
//! - *Notify before the copy completes.* A write is: copy on the writer's stream, then
//!   [`SlotWriter::record`] of the slot's event, and only then the lane layer publishes
//!   the sequence. A reader polls the event until it has fired
//!   ([`SlotReader::wait`](crate::backend::SlotReader::wait)) before enqueueing
//!   anything on the slot, so it never reads a copy still in flight.
//! - *Base-allocation offset.* A legacy handle names the whole base allocation, and
//!   the importer gets the base address. Each slot is its own allocation, and
//!   [`Backend::create`] checks with `cuMemGetAddressRange_v2` that the slot pointer is
//!   the base (offset 0); the importer checks the opened range holds the slot bytes.
//! - *Opening in the exporting process.* CUDA refuses to open a process's own legacy
//!   handles (`CUDA_ERROR_INVALID_CONTEXT`). The blob carries the exporter's process tag
//!   and [`Backend::import`] answers [`GpuError::SameProcess`] before any driver call
//!   (and maps that driver error to the same answer as a second line).
//! - *Imported memory freed by its importer.* Imported memory is held by types that
//!   close or unmap it, never by one that frees it (no `CudaSlice` over it).
//! - *Untrusted input.* `kind`, `device`, `slots`, `bytes` and the export come from
//!   another process: [`blob::validate`] checks all of them, with checked arithmetic,
//!   before any driver call.
//!
//! # Threads and contexts
//!
//! Everything works on the device's primary context, retained while any object of the
//! backend lives, and made current on the calling thread at the start of every call
//! (lanes are used from any thread). [`CudaBackend`], [`CudaBuffer`] are `Send + Sync`;
//! [`CudaWriter`] and [`CudaReader`] are `Send`.
//!
//! # Without a driver
//!
//! cudarc panics when libcuda cannot be loaded, so [`gpu_available`] and
//! [`CudaBackend::new`] first check [`driver_library_present`]; without it they answer
//! `false` and [`GpuError::NoDriver`].

pub mod blob;
mod buffer;
mod driver;
mod slots;

pub use buffer::CudaBuffer;
pub use driver::{driver_library_present, gpu_available};
pub use slots::{CudaReader, CudaWriter};

use crate::backend::{Backend, BackendKind, DeviceId, Export, SlotWriter};
use crate::error::GpuError;
use blob::{Blob, Importer, ProcessTag, SlotEntry};
use cudarc::driver::sys;
use driver::{Device, Event, IpcMapping, LinearAlloc, Stream, VmmAlloc};
use slots::{ImportedMem, OwnedMem, ReaderSlot, WriterSlot};
use std::os::fd::AsRawFd;
use std::sync::Arc;

/// The CUDA backend on one device (see the module docs). `Send + Sync`.
#[derive(Debug)]
pub struct CudaBackend {
    stream: Arc<Stream>,
    dev: Arc<Device>,
    kind: BackendKind,
    vmm_granularity: Option<u64>,
}

impl CudaBackend {
    /// Opens device `ordinal` and creates lanes of kind [`BackendKind::CudaVmm`] where
    /// the device supports VMM with POSIX descriptors, [`BackendKind::CudaLegacyIpc`]
    /// otherwise.
    ///
    /// [`GpuError::NoDriver`] without a usable driver, [`GpuError::NoDevice`] for an
    /// ordinal the driver does not have.
    pub fn new(ordinal: usize) -> Result<CudaBackend, GpuError> {
        CudaBackend::open(ordinal, false)
    }

    /// Like [`new`](Self::new), but creates legacy IPC lanes even where VMM is
    /// supported (it still imports VMM lanes where the device supports them).
    pub fn legacy(ordinal: usize) -> Result<CudaBackend, GpuError> {
        CudaBackend::open(ordinal, true)
    }

    fn open(ordinal: usize, force_legacy: bool) -> Result<CudaBackend, GpuError> {
        if !driver_library_present() {
            return Err(GpuError::NoDriver(
                "the CUDA driver library (libcuda.so) is not installed".into(),
            ));
        }
        let dev = Device::open(ordinal)?;
        let vmm = dev.attribute(
            sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_VIRTUAL_ADDRESS_MANAGEMENT_SUPPORTED,
        )? != 0
            && dev.attribute(
                sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED,
            )? != 0;
        let vmm_granularity = if vmm {
            Some(driver::vmm_granularity(&dev)?)
        } else {
            None
        };
        let kind = if vmm_granularity.is_some() && !force_legacy {
            BackendKind::CudaVmm
        } else {
            BackendKind::CudaLegacyIpc
        };
        let stream = Arc::new(Stream::new(&dev)?);
        Ok(CudaBackend {
            stream,
            dev,
            kind,
            vmm_granularity,
        })
    }

    /// Whether the device supports VMM with POSIX file descriptors.
    pub fn vmm_supported(&self) -> bool {
        self.vmm_granularity.is_some()
    }

    /// The device's VMM allocation granularity (`None` without VMM support).
    pub fn vmm_granularity(&self) -> Option<u64> {
        self.vmm_granularity
    }

    /// What [`blob::validate`] checks imports against.
    pub fn importer(&self) -> Importer {
        Importer {
            kind: self.kind,
            device: self.device(),
            vmm_granularity: self.vmm_granularity,
            process: ProcessTag::current(),
        }
    }

    /// Allocates `bytes` of device memory owned by the caller.
    pub fn alloc(&self, bytes: usize) -> Result<CudaBuffer, GpuError> {
        Ok(CudaBuffer::new(
            LinearAlloc::new(&self.dev, bytes)?,
            self.stream.clone(),
        ))
    }

    /// Blocks until the backend's own stream (used by [`CudaBuffer`] copies) is idle.
    pub fn synchronize(&self) -> Result<(), GpuError> {
        self.stream.synchronize()
    }

    /// One legacy slot: its own allocation (checked to be a base allocation) and
    /// handle.
    fn legacy_slot(&self, bytes: usize) -> Result<(OwnedMem, u64, [u8; 64]), GpuError> {
        let alloc = LinearAlloc::new(&self.dev, bytes)?;
        let (base, size) = alloc.address_range()?;
        if base != alloc.ptr() || size < bytes {
            return Err(GpuError::Unsupported(format!(
                "cuMemAlloc_v2 returned {:#x} inside allocation {base:#x} of {size} bytes: \
                 a legacy IPC handle would name the base",
                alloc.ptr()
            )));
        }
        let handle = alloc.ipc_handle()?;
        Ok((OwnedMem::Legacy(alloc), size as u64, handle))
    }
}

impl Backend for CudaBackend {
    type Writer = CudaWriter;
    type Reader = CudaReader;

    fn kind(&self) -> BackendKind {
        self.kind
    }

    fn device(&self) -> DeviceId {
        DeviceId {
            ordinal: self.dev.ordinal() as u64,
            uuid: self.dev.uuid(),
        }
    }

    fn create(&self, slots: usize, bytes: usize) -> Result<(CudaWriter, Export), GpuError> {
        if blob::blob_len(slots).is_none() {
            return Err(GpuError::Unsupported(format!("{slots} slots")));
        }
        let stream = Stream::new(&self.dev)?;
        let mut out = Vec::with_capacity(slots);
        let mut entries = Vec::with_capacity(slots);
        let mut fds = Vec::new();
        let granularity = match self.kind {
            BackendKind::CudaVmm => self.vmm_granularity.unwrap_or(0),
            _ => 0,
        };
        for _ in 0..slots {
            let (mem, alloc_bytes, mem_handle) = if self.kind == BackendKind::CudaVmm {
                let size = round_up(bytes.max(1), granularity)
                    .ok_or_else(|| GpuError::Unsupported(format!("{bytes}-byte slots overflow")))?;
                let alloc = VmmAlloc::create(&self.dev, size)?;
                fds.push(alloc.export_fd()?);
                (OwnedMem::Vmm(alloc), size as u64, [0u8; 64])
            } else {
                self.legacy_slot(bytes)?
            };
            let event = Event::interprocess(&self.dev)?;
            let event_handle = event.ipc_handle()?;
            entries.push(SlotEntry {
                alloc_bytes,
                event: event_handle,
                mem: mem_handle,
            });
            out.push(WriterSlot { mem, event });
        }
        let blob = Blob {
            kind: self.kind,
            bytes: bytes as u64,
            granularity,
            uuid: self.dev.uuid(),
            exporter: ProcessTag::current(),
            entries,
        }
        .encode();
        let mut writer = CudaWriter::new(self.dev.clone(), stream, self.kind, bytes, out);
        // Nothing was enqueued yet; this only surfaces a broken stream early.
        writer.synchronize()?;
        Ok((writer, Export { blob, fds }))
    }

    fn import(
        &self,
        kind: BackendKind,
        device: DeviceId,
        slots: usize,
        bytes: usize,
        export: Export,
    ) -> Result<CudaReader, GpuError> {
        let parsed = blob::validate(
            &self.importer(),
            kind,
            device,
            slots,
            bytes,
            &export.blob,
            export.fds.len(),
        )?;
        let stream = Stream::new(&self.dev)?;
        let mut out = Vec::with_capacity(slots);
        // Descriptors are closed when `export.fds` drops, after the import (the imported
        // handle keeps the memory).
        for (i, entry) in parsed.entries.iter().enumerate() {
            // `validate` checked the size fits a usize.
            let size = usize::try_from(entry.alloc_bytes)
                .map_err(|_| GpuError::Corrupt("allocation size".into()))?;
            let mem = if kind == BackendKind::CudaVmm {
                let fd = export
                    .fds
                    .get(i)
                    .ok_or_else(|| GpuError::Corrupt(format!("no descriptor for slot {i}")))?;
                ImportedMem::Vmm(VmmAlloc::import(&self.dev, fd.as_raw_fd(), size)?)
            } else {
                let m = IpcMapping::open(&self.dev, entry.mem)?;
                // The handle names a whole base allocation and opens at its base: check
                // that it holds the lane's bytes. Where the driver cannot describe the
                // range of an opened mapping, the blob's size (validated) stands.
                if let Ok((base, range)) = driver::address_range(&self.dev, m.ptr()) {
                    if base != m.ptr() || range < bytes {
                        return Err(GpuError::Corrupt(format!(
                            "slot {i}: the opened allocation holds {range} bytes at offset {}, \
                             the lane carries {bytes}",
                            m.ptr().wrapping_sub(base)
                        )));
                    }
                }
                ImportedMem::Legacy(m)
            };
            let event = Event::open_ipc(&self.dev, entry.event)?;
            out.push(ReaderSlot { mem, event });
        }
        drop(export);
        Ok(CudaReader::new(stream, kind, bytes, out))
    }
}

/// `n` rounded up to a multiple of `to` (> 0), or `None` on overflow.
fn round_up(n: usize, to: u64) -> Option<usize> {
    let to = usize::try_from(to).ok().filter(|&t| t > 0)?;
    n.checked_add(to - 1).map(|m| m / to * to)
}
