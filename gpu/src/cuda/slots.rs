//! The writer's and the readers' sides of a CUDA lane's slots.
//!
//! Invariants:
//! - The writer owns its slots' memory and events for its whole life: they are
//!   allocated and exported once, by [`CudaBackend::create`](super::CudaBackend), and
//!   freed only by [`CudaWriter`]'s `Drop`, after its stream is synchronized. (A lane
//!   exported from a temporary that is freed right after the export leaves readers
//!   with dangling handles; here the export cannot outlive the writer's allocation.)
//!   Legacy IPC memory must not be freed while another process has it open: the lane
//!   layer keeps the writer alive while readers are attached, or readers learn that
//!   the writer is gone before touching the slots.
//! - A reader never owns imported memory through a type that frees it: its `Drop`
//!   closes (`cuIpcCloseMemHandle`) or unmaps and releases its own references
//!   (`cuMemUnmap`, `cuMemAddressFree`, `cuMemRelease`), and destroys its opened
//!   events, after synchronizing its stream.
//! - Each writer and each reader owns one non-blocking stream; all its copies go on it
//!   in call order, so `record` after a copy covers that copy.
//! - Slot indices and lengths are checked on every call, with typed errors.
//!
//! Staging: [`CudaWriter::copy_from_host`] must let the caller reuse `src` at once, so
//! it copies `src` into a pinned staging buffer and enqueues the asynchronous
//! host-to-device copy from there. The writer has [`STAGING_BUFFERS`] such buffers,
//! used in turn (not one per slot: page-locked memory is scarce), each with a private
//! event recorded right after every copy out of it; before a buffer is refilled, the
//! writer synchronizes on that event. (The slots' interprocess events are not used for
//! this: the caller may copy twice before recording one, and they cover everything on
//! the stream rather than just the staging copy.) Buffers are allocated on first use.
//!
//! Readers wait for a slot's event on the host: [`SlotReader::wait`] polls
//! `cuEventQuery` until the event's most recent record has completed (bounded by its
//! timeout), and only then does the reader enqueue anything touching the slot, so
//! everything it enqueues later is ordered after the write. The reader's stream is
//! never made to wait on the writer's event (`cuStreamWaitEvent`): that would tie it to
//! whatever the writer records on the event next, and a writer that died with such a
//! record in flight would leave the reader's stream (and its `cuStreamSynchronize`,
//! and its `Drop`) blocked forever. The reader's stream only ever holds its own work.

use super::driver::{Device, Event, EventState, IpcMapping, LinearAlloc, Pinned, Stream, VmmAlloc};
use crate::backend::{BackendKind, DevicePtr, SlotReader, SlotWriter};
use crate::error::GpuError;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Pinned staging buffers of a writer, used in turn.
pub const STAGING_BUFFERS: usize = 2;

/// A slot's device memory on the writer's side.
#[derive(Debug)]
pub(crate) enum OwnedMem {
    /// `cuMemAlloc_v2`, exported with `cuIpcGetMemHandle`.
    Legacy(LinearAlloc),
    /// `cuMemCreate`, exported as a POSIX file descriptor.
    Vmm(VmmAlloc),
}

impl OwnedMem {
    fn addr(&self) -> u64 {
        match self {
            OwnedMem::Legacy(a) => a.ptr(),
            OwnedMem::Vmm(a) => a.ptr(),
        }
    }
}

/// One slot of the writer.
#[derive(Debug)]
pub(crate) struct WriterSlot {
    /// The slot's memory.
    pub(crate) mem: OwnedMem,
    /// The interprocess event readers wait on.
    pub(crate) event: Event,
}

/// A pinned staging buffer and the event recorded after each copy out of it.
#[derive(Debug)]
struct Staging {
    buffer: Pinned,
    copied: Event,
}

/// Error for a slot index out of range.
fn bad_slot(slot: usize, slots: usize) -> GpuError {
    GpuError::Corrupt(format!(
        "slot {slot} out of range (the lane has {slots} slots)"
    ))
}

/// Error for a length over the slot's bytes.
fn too_long(len: usize, bytes: usize) -> GpuError {
    GpuError::WrongSize {
        expected: bytes,
        found: len,
    }
}

/// The writer's side of a CUDA lane's slots (see the module docs). `Send`: it can move
/// to, and be used from, any thread.
#[derive(Debug)]
pub struct CudaWriter {
    // Field order is drop order: the stream (synchronized again on drop) goes after
    // the slots only because `Drop` synchronizes it first.
    slots: Vec<WriterSlot>,
    staging: Vec<Staging>,
    next_staging: usize,
    stream: Stream,
    dev: Arc<Device>,
    kind: BackendKind,
    bytes: usize,
}

impl CudaWriter {
    pub(crate) fn new(
        dev: Arc<Device>,
        stream: Stream,
        kind: BackendKind,
        bytes: usize,
        slots: Vec<WriterSlot>,
    ) -> CudaWriter {
        CudaWriter {
            slots,
            staging: Vec::with_capacity(STAGING_BUFFERS),
            next_staging: 0,
            stream,
            dev,
            kind,
            bytes,
        }
    }

    /// The kind of lane this writer exported.
    pub fn kind(&self) -> BackendKind {
        self.kind
    }

    /// Slots of the lane.
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Bytes per slot.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The writer's stream, for enqueueing work of the caller's own (for example a
    /// kernel producing a tensor straight into [`slot_ptr`](SlotWriter::slot_ptr))
    /// before [`record`](SlotWriter::record). Valid while the writer lives; the
    /// writer destroys it.
    pub fn raw_stream(&self) -> cudarc::driver::sys::CUstream {
        self.stream.raw()
    }

    fn slot(&self, slot: usize) -> Result<&WriterSlot, GpuError> {
        self.slots
            .get(slot)
            .ok_or_else(|| bad_slot(slot, self.slots.len()))
    }
}

impl SlotWriter for CudaWriter {
    fn copy_from_host(&mut self, slot: usize, src: &[u8]) -> Result<(), GpuError> {
        let dst = self.slot(slot)?.mem.addr();
        if src.len() > self.bytes {
            return Err(too_long(src.len(), self.bytes));
        }
        if src.is_empty() {
            return Ok(());
        }
        let turn = self.next_staging;
        if turn == self.staging.len() {
            self.staging.push(Staging {
                buffer: Pinned::new(&self.dev, self.bytes)?,
                copied: Event::local(&self.dev)?,
            });
        }
        self.next_staging = (turn + 1) % STAGING_BUFFERS;
        let staging = &mut self.staging[turn];
        // The previous copy out of this buffer must be done before it is refilled;
        // `copied` was recorded right after that copy.
        staging.copied.synchronize()?;
        staging.buffer.as_mut_slice()[..src.len()].copy_from_slice(src);
        // SAFETY: the slot's memory holds at least `bytes >= src.len()` bytes and lives
        // as long as `self`; the staging buffer is pinned, holds `src.len()` bytes, and
        // is not written again before `copied` (recorded next) has completed.
        unsafe {
            self.stream
                .copy_htod(dst, staging.buffer.as_ptr(), src.len())?;
        }
        staging.copied.record(&self.stream)
    }

    /// # Safety
    /// The contract of [`SlotWriter::copy_from_device`]: `src` is valid for `src.len`
    /// bytes and not written until the copy completes.
    unsafe fn copy_from_device(&mut self, slot: usize, src: DevicePtr) -> Result<(), GpuError> {
        let dst = self.slot(slot)?.mem.addr();
        if src.len > self.bytes {
            return Err(too_long(src.len, self.bytes));
        }
        // SAFETY: the slot holds at least `bytes >= src.len` bytes and lives as long as
        // `self`; the caller guarantees `src` per this function's contract.
        unsafe { self.stream.copy_dtod(dst, src.addr, src.len) }
    }

    fn record(&mut self, slot: usize) -> Result<(), GpuError> {
        // CUDA events carry no value: the lane layer publishes the sequence after this.
        self.slot(slot)?.event.record(&self.stream)
    }

    fn synchronize(&mut self) -> Result<(), GpuError> {
        self.stream.synchronize()
    }

    fn copy_to_host(&mut self, slot: usize, dst: &mut [u8]) -> Result<(), GpuError> {
        let src = self.slot(slot)?.mem.addr();
        if dst.len() > self.bytes {
            return Err(too_long(dst.len(), self.bytes));
        }
        // SAFETY: the slot holds at least `dst.len()` bytes; `dst` is borrowed mutably
        // until the stream is synchronized below, before this returns.
        unsafe { self.stream.copy_dtoh(dst.as_mut_ptr(), src, dst.len())? };
        self.stream.synchronize()
    }

    /// The slot's memory; a null, empty range for a slot out of range (the trait
    /// offers no error here).
    fn slot_ptr(&self, slot: usize) -> DevicePtr {
        match self.slots.get(slot) {
            Some(s) => DevicePtr {
                addr: s.mem.addr(),
                len: self.bytes,
            },
            None => DevicePtr { addr: 0, len: 0 },
        }
    }
}

impl Drop for CudaWriter {
    fn drop(&mut self) {
        // Nothing enqueued may outlive the memory, events and staging freed next.
        let _ = self.stream.synchronize();
    }
}

/// A slot's device memory on a reader's side: mapped, never owned.
#[derive(Debug)]
pub(crate) enum ImportedMem {
    /// Opened with `cuIpcOpenMemHandle_v2`; closed on drop.
    Legacy(IpcMapping),
    /// Imported from a POSIX descriptor and mapped; unmapped and released on drop.
    Vmm(VmmAlloc),
}

impl ImportedMem {
    fn addr(&self) -> u64 {
        match self {
            ImportedMem::Legacy(m) => m.ptr(),
            ImportedMem::Vmm(m) => m.ptr(),
        }
    }
}

/// One slot of a reader.
#[derive(Debug)]
pub(crate) struct ReaderSlot {
    /// The slot's memory in this process.
    pub(crate) mem: ImportedMem,
    /// The slot's interprocess event, opened here.
    pub(crate) event: Event,
}

/// A reader's side of a CUDA lane's slots (see the module docs). `Send`.
#[derive(Debug)]
pub struct CudaReader {
    slots: Vec<ReaderSlot>,
    stream: Stream,
    kind: BackendKind,
    bytes: usize,
}

impl CudaReader {
    pub(crate) fn new(
        stream: Stream,
        kind: BackendKind,
        bytes: usize,
        slots: Vec<ReaderSlot>,
    ) -> CudaReader {
        CudaReader {
            slots,
            stream,
            kind,
            bytes,
        }
    }

    /// The kind of lane this reader imported.
    pub fn kind(&self) -> BackendKind {
        self.kind
    }

    /// Slots of the lane.
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Bytes per slot.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The reader's stream, for enqueueing the caller's own work on a slot (for example
    /// a kernel reading [`slot_ptr`](SlotReader::slot_ptr)) after
    /// [`wait`](SlotReader::wait). Valid while the reader lives.
    pub fn raw_stream(&self) -> cudarc::driver::sys::CUstream {
        self.stream.raw()
    }

    fn slot(&self, slot: usize) -> Result<&ReaderSlot, GpuError> {
        self.slots
            .get(slot)
            .ok_or_else(|| bad_slot(slot, self.slots.len()))
    }
}

/// Polls spin this many times (yielding) before sleeping between polls.
const SPIN_POLLS: u32 = 64;
/// Sleep between polls after the spinning phase.
const POLL_SLEEP: Duration = Duration::from_micros(50);

/// Yields for the first polls, then sleeps between them.
fn pause(polls: &mut u32) {
    if *polls < SPIN_POLLS {
        *polls += 1;
        std::thread::yield_now();
    } else {
        std::thread::sleep(POLL_SLEEP);
    }
}

impl SlotReader for CudaReader {
    /// Polls the slot's event until its most recent record has completed (see the
    /// module docs for why the reader's stream is not made to wait on it). CUDA events
    /// carry no value: an event says only that the slot's most recent record completed,
    /// so the lane layer re-checks the sequence after reading. An event never recorded
    /// counts as completed.
    fn wait(
        &mut self,
        slot: usize,
        timeout: Duration,
        stale: &mut dyn FnMut() -> bool,
    ) -> Result<(), GpuError> {
        let s = self.slot(slot)?;
        let start = Instant::now();
        let mut polls = 0u32;
        while let EventState::Pending = s.event.query()? {
            // A write later than the one waited for is being recorded on the event:
            // the read is lost anyway, stop waiting for it.
            if stale() {
                return Err(GpuError::Overwritten);
            }
            if start.elapsed() >= timeout {
                return Err(GpuError::Timeout);
            }
            pause(&mut polls);
        }
        // Complete: work enqueued on the reader's stream from now on follows the write.
        Ok(())
    }

    fn copy_to_host(&mut self, slot: usize, dst: &mut [u8]) -> Result<(), GpuError> {
        let src = self.slot(slot)?.mem.addr();
        if dst.len() > self.bytes {
            return Err(too_long(dst.len(), self.bytes));
        }
        // SAFETY: the mapping holds at least `bytes >= dst.len()` bytes (checked at
        // import); `dst` is borrowed mutably until the stream, which holds only this
        // reader's own work, is synchronized below.
        unsafe { self.stream.copy_dtoh(dst.as_mut_ptr(), src, dst.len())? };
        self.stream.synchronize()
    }

    /// # Safety
    /// The contract of [`SlotReader::copy_to_device`]: `dst` is valid for writes of
    /// `dst.len` bytes and used by nothing else until this returns.
    unsafe fn copy_to_device(&mut self, slot: usize, dst: DevicePtr) -> Result<(), GpuError> {
        let src = self.slot(slot)?.mem.addr();
        if dst.len > self.bytes {
            return Err(too_long(dst.len, self.bytes));
        }
        // SAFETY: the mapping holds at least `dst.len` bytes; the caller guarantees `dst`
        // until this returns, after the synchronize below.
        unsafe { self.stream.copy_dtod(dst.addr, src, dst.len)? };
        self.stream.synchronize()
    }

    fn synchronize(&mut self) -> Result<(), GpuError> {
        self.stream.synchronize()
    }

    /// The slot's memory in this process; a null, empty range for a slot out of range
    /// (the trait offers no error here).
    fn slot_ptr(&self, slot: usize) -> DevicePtr {
        match self.slots.get(slot) {
            Some(s) => DevicePtr {
                addr: s.mem.addr(),
                len: self.bytes,
            },
            None => DevicePtr { addr: 0, len: 0 },
        }
    }
}

impl Drop for CudaReader {
    fn drop(&mut self) {
        // Nothing enqueued may still read the mappings closed next (the stream holds
        // only this reader's own work, so this returns).
        let _ = self.stream.synchronize();
    }
}
