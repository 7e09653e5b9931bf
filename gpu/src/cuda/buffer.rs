//! [`CudaBuffer`]: an owned device allocation, for writing a lane from device memory
//! and reading a lane into device memory.

use super::driver::{LinearAlloc, Stream};
use crate::backend::DevicePtr;
use crate::error::GpuError;
use std::sync::Arc;

/// Device memory owned by this process (`cuMemAlloc_v2`), freed on drop. Copies go on
/// the stream of the [`CudaBackend`](super::CudaBackend) that allocated it and wait for
/// completion before returning, so the buffer is safe to hand to a lane's
/// `copy_from_device` / `copy_to_device` right after. `Send` and `Sync`.
#[derive(Debug)]
pub struct CudaBuffer {
    // Field order is drop order: nothing is left in flight (every copy synchronizes),
    // so the memory can go first.
    alloc: LinearAlloc,
    stream: Arc<Stream>,
}

impl CudaBuffer {
    pub(crate) fn new(alloc: LinearAlloc, stream: Arc<Stream>) -> CudaBuffer {
        CudaBuffer { alloc, stream }
    }

    /// The buffer's device memory.
    pub fn ptr(&self) -> DevicePtr {
        DevicePtr {
            addr: self.alloc.ptr(),
            len: self.alloc.len(),
        }
    }

    /// Bytes of the buffer.
    pub fn len(&self) -> usize {
        self.alloc.len()
    }

    /// Whether the buffer has no bytes.
    pub fn is_empty(&self) -> bool {
        self.alloc.len() == 0
    }

    /// Copies `src` into the first `src.len()` bytes and waits for the copy.
    pub fn copy_from_host(&mut self, src: &[u8]) -> Result<(), GpuError> {
        if src.len() > self.len() {
            return Err(GpuError::WrongSize {
                expected: self.len(),
                found: src.len(),
            });
        }
        // SAFETY: the allocation holds at least `src.len()` bytes and is borrowed
        // mutably; `src` outlives the synchronize below.
        unsafe {
            self.stream
                .copy_htod(self.alloc.ptr(), src.as_ptr(), src.len())?;
        }
        self.stream.synchronize()
    }

    /// Copies the first `dst.len()` bytes into `dst` and waits for the copy.
    pub fn copy_to_host(&self, dst: &mut [u8]) -> Result<(), GpuError> {
        if dst.len() > self.len() {
            return Err(GpuError::WrongSize {
                expected: self.len(),
                found: dst.len(),
            });
        }
        // SAFETY: the allocation holds at least `dst.len()` bytes; `dst` is borrowed
        // mutably until the synchronize below.
        unsafe {
            self.stream
                .copy_dtoh(dst.as_mut_ptr(), self.alloc.ptr(), dst.len())?;
        }
        self.stream.synchronize()
    }
}
