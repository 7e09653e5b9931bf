//! The host backend: the GPU-lane protocol over host memory, for machines without a
//! GPU and for testing the protocol itself.
//!
//! It mirrors the CUDA backend step for step:
//!
//! | CUDA | host |
//! |---|---|
//! | one device allocation per slot, exported once | one memfd per slot, mapped shared, passed by `SCM_RIGHTS` |
//! | one interprocess event per slot | two counters per slot (on their own 128-byte line) in an events memfd, passed the same way: records issued, records completed |
//! | `cuMemcpyHtoDAsync` on the writer's stream | a copy run by the writer's stream thread (delayed mode) or inline |
//! | `cuEventRecord` after the copy | the writer bumps "issued" at once; the stream thread sets "completed" to that count once the work before it is done |
//! | `cuEventQuery` polled until the last record completed | the reader reads "issued", then waits (bounded) until "completed" reaches it |
//!
//! Like a CUDA event, the counters carry no write sequence: a reader waits for the
//! most recent record issued before its wait, whatever write that was. A writer that
//! published a write before recording its event would therefore let readers through
//! to a slot whose copy is still in flight, exactly as on a GPU; the tests use this to
//! show that the lanes do not.
//!
//! [`HostBackend::delayed`] gives the writer a stream thread that runs each copy after
//! a delay, so that a write is still in flight when its record is published, as an
//! asynchronous GPU copy is. A protocol that published before recording, or readers
//! that did not wait for the event, read stale slots in that mode: the tests use it to
//! show that the lane protocol does neither.
//!
//! Slot memory is shared with other processes, so every access to it is a relaxed
//! atomic word access ([`tensorlane_core::store_bytes`] / [`load_bytes`]); readers find
//! out whether the writer raced them from the lane's sequence, never from the bytes.
//!
//! [`load_bytes`]: tensorlane_core::load_bytes

use crate::backend::{Backend, BackendKind, DeviceId, DevicePtr, Export, SlotReader, SlotWriter};
use crate::error::GpuError;
use memmap2::MmapRaw;
use nix::fcntl::{fcntl, FcntlArg, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};
use std::fs::File;
use std::os::fd::OwnedFd;
use crate::protocol::{self, EventCounters, EventView};
use std::sync::atomic::AtomicU64;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tensorlane_core::ReadWords;

/// Bytes between two slots' event counters in the events memfd (word 0: records
/// issued, word 1: records completed).
pub const EVENT_STRIDE: usize = 128;

/// Largest slot the host backend maps (1 TiB): a bound on sizes read from other
/// processes, checked before mapping.
pub const MAX_HOST_SLOT_BYTES: usize = 1 << 40;

/// The host backend. Cheap to create; holds only its options.
#[derive(Debug, Clone, Default)]
pub struct HostBackend {
    delay: Option<Duration>,
}

impl HostBackend {
    /// A backend whose copies complete before `copy_from_*` returns.
    pub fn new() -> Self {
        Self::default()
    }

    /// A backend whose writers run every copy and record on a stream thread, each
    /// copy after `delay`: writes are still in flight when `write` returns, as
    /// asynchronous GPU copies are.
    pub fn delayed(delay: Duration) -> Self {
        HostBackend { delay: Some(delay) }
    }
}

/// A shared mapping of a memfd, viewed as atomic words.
#[derive(Debug)]
struct Mapping {
    map: MmapRaw,
    words: usize,
    writable: bool,
}

/// Seals of every memfd of a lane: its size can never change, so no process can make
/// another's mapping fault by truncating it.
const SEALS: SealFlag = SealFlag::F_SEAL_SHRINK
    .union(SealFlag::F_SEAL_GROW)
    .union(SealFlag::F_SEAL_SEAL);

impl Mapping {
    /// Maps `file` (at least `bytes` long, checked) shared: read-write for the
    /// writer, read-only for readers (who only load).
    fn map(file: &File, bytes: usize, writable: bool) -> Result<Self, GpuError> {
        let len = file.metadata()?.len();
        let words = bytes.div_ceil(8).max(1);
        if len < words as u64 * 8 {
            return Err(GpuError::Corrupt(format!(
                "memfd of {len} bytes, expected at least {}",
                words * 8
            )));
        }
        let mut options = memmap2::MmapOptions::new();
        options.len(words * 8);
        let map = if writable {
            options.map_raw(file)?
        } else {
            options.map_raw_read_only(file)?
        };
        Ok(Mapping {
            map,
            words,
            writable,
        })
    }

    /// The words, to store into: the writer's (writable) mappings only.
    fn words(&self) -> &[AtomicU64] {
        assert!(self.writable, "stores into a read-only mapping");
        self.atomics()
    }

    /// The words, load-only: relaxed 8-byte loads, the only atomic access Rust allows
    /// on read-only memory. Readers order them with an Acquire fence.
    fn read(&self) -> ReadWords<'_> {
        ReadWords::new(self.atomics())
    }

    fn atomics(&self) -> &[AtomicU64] {
        // SAFETY: the mapping is page-aligned, `words * 8` bytes long (mapped with that
        // length from a file checked, and sealed, to be at least that long), shared,
        // and lives as long as `self`. AtomicU64 has no invalid bit patterns, and all
        // access to the memory, here and in other processes, is atomic. A read-only
        // mapping (readers) is reached only through `read`, whose view can only do
        // relaxed loads, which are allowed on read-only memory.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().cast::<AtomicU64>(), self.words) }
    }

    fn ptr(&self) -> DevicePtr {
        DevicePtr {
            addr: self.map.as_ptr() as u64,
            len: self.words * 8,
        }
    }
}

/// Creates a sealed memfd of `bytes` (rounded up to whole words).
fn new_memfd(name: &str, bytes: usize) -> Result<File, GpuError> {
    let flags = MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING;
    let fd: OwnedFd = memfd_create(name, flags).map_err(std::io::Error::from)?;
    let file = File::from(fd);
    file.set_len((bytes.div_ceil(8).max(1) * 8) as u64)?;
    fcntl(&file, FcntlArg::F_ADD_SEALS(SEALS)).map_err(std::io::Error::from)?;
    Ok(file)
}

/// Checks that a received memfd can neither shrink nor grow.
fn check_sealed(file: &File) -> Result<(), GpuError> {
    let seals = fcntl(file, FcntlArg::F_GET_SEALS).map_err(std::io::Error::from)?;
    if SealFlag::from_bits_truncate(seals).contains(SealFlag::F_SEAL_SHRINK | SealFlag::F_SEAL_GROW)
    {
        Ok(())
    } else {
        Err(GpuError::Corrupt(format!(
            "a slot descriptor without size seals ({seals:#x})"
        )))
    }
}

/// The slots and events of one lane, mapped in one process.
#[derive(Debug)]
struct Slots {
    memory: Vec<Mapping>,
    events: Mapping,
    bytes: usize,
}

impl Slots {
    fn check(&self, slot: usize, len: usize) -> Result<(), GpuError> {
        if slot >= self.memory.len() {
            return Err(GpuError::Corrupt(format!(
                "slot {slot} of a lane with {} slots",
                self.memory.len()
            )));
        }
        if len > self.bytes {
            return Err(GpuError::WrongSize {
                expected: self.bytes,
                found: len,
            });
        }
        Ok(())
    }

    /// The memory of `slot`; an empty range for a slot out of range.
    fn ptr(&self, slot: usize) -> DevicePtr {
        self.memory
            .get(slot)
            .map_or(DevicePtr { addr: 0, len: 0 }, Mapping::ptr)
    }

    /// The slot's event, to store into (the writer and its stream).
    fn event(&self, slot: usize) -> EventCounters<'_> {
        let words = &self.events.words()[slot * EVENT_STRIDE / 8..];
        EventCounters::new(&words[0], &words[1])
    }

    /// The slot's event, load-only (readers map it read-only); missing words read
    /// as 0.
    fn event_view(&self, slot: usize) -> EventView<'_> {
        EventView::new(self.events.read(), slot * EVENT_STRIDE / 8)
    }

    fn store(&self, slot: usize, src: &[u8]) {
        tensorlane_core::store_bytes(self.memory[slot].words(), src);
    }

    fn load(&self, slot: usize, dst: &mut [u8]) {
        self.memory[slot].read().load_bytes(dst);
    }

    /// Issues a record of the slot's event (only the writer's thread does);
    /// returns its count. Ordering: [`EventCounters::issue`].
    fn issue(&self, slot: usize) -> u64 {
        self.event(slot).issue()
    }

    /// The stream reached record `count` of the slot's event. Ordering:
    /// [`EventCounters::complete`].
    fn complete(&self, slot: usize, count: u64) {
        self.event(slot).complete(count);
    }
}

/// Work on a writer's stream thread, run in order.
enum Job {
    Copy { slot: usize, data: Vec<u8> },
    Record { slot: usize, count: u64 },
    Flush(mpsc::Sender<()>),
}

/// The writer's stream: inline, or a thread that runs each copy after a delay.
#[derive(Debug)]
enum Stream {
    Inline,
    Thread {
        jobs: Option<mpsc::Sender<Job>>,
        worker: Option<JoinHandle<()>>,
    },
}

/// The writer's side of a host lane.
#[derive(Debug)]
pub struct HostWriter {
    slots: Arc<Slots>,
    stream: Stream,
}

impl Backend for HostBackend {
    type Writer = HostWriter;
    type Reader = HostReader;

    fn kind(&self) -> BackendKind {
        BackendKind::Host
    }

    fn device(&self) -> DeviceId {
        DeviceId {
            ordinal: 0,
            uuid: [0; 16],
        }
    }

    fn create(&self, slots: usize, bytes: usize) -> Result<(HostWriter, Export), GpuError> {
        if bytes > MAX_HOST_SLOT_BYTES {
            return Err(GpuError::Unsupported(format!(
                "host slots of {bytes} bytes"
            )));
        }
        let events_bytes = slots
            .checked_mul(EVENT_STRIDE)
            .ok_or_else(|| GpuError::Unsupported(format!("{slots} slots")))?;
        let mut fds = Vec::with_capacity(slots + 1);
        let mut memory = Vec::with_capacity(slots);
        for _ in 0..slots {
            let file = new_memfd("tensorlane-slot", bytes)?;
            memory.push(Mapping::map(&file, bytes, true)?);
            fds.push(OwnedFd::from(file));
        }
        let file = new_memfd("tensorlane-events", events_bytes)?;
        let events = Mapping::map(&file, events_bytes, true)?;
        fds.push(OwnedFd::from(file));
        let slots = Arc::new(Slots {
            memory,
            events,
            bytes,
        });
        let stream = match self.delay {
            None => Stream::Inline,
            Some(delay) => {
                let (jobs, queue) = mpsc::channel::<Job>();
                let shared = slots.clone();
                let worker = std::thread::Builder::new()
                    .name("tensorlane-host-stream".into())
                    .spawn(move || run_stream(&shared, &queue, delay))?;
                Stream::Thread {
                    jobs: Some(jobs),
                    worker: Some(worker),
                }
            }
        };
        let export = Export {
            blob: Vec::new(),
            fds,
        };
        Ok((HostWriter { slots, stream }, export))
    }

    fn import(
        &self,
        kind: BackendKind,
        _device: DeviceId,
        slots: usize,
        bytes: usize,
        export: Export,
    ) -> Result<HostReader, GpuError> {
        if kind != BackendKind::Host {
            return Err(GpuError::WrongBackend {
                lane: kind.name(),
                local: BackendKind::Host.name(),
            });
        }
        if bytes > MAX_HOST_SLOT_BYTES {
            return Err(GpuError::Corrupt(format!("host slots of {bytes} bytes")));
        }
        if !export.blob.is_empty() || export.fds.len() != slots.saturating_add(1) {
            return Err(GpuError::Corrupt(format!(
                "host lane of {slots} slots sent {} descriptors and {} blob bytes",
                export.fds.len(),
                export.blob.len()
            )));
        }
        let events_bytes = slots
            .checked_mul(EVENT_STRIDE)
            .ok_or_else(|| GpuError::Corrupt(format!("{slots} slots")))?;
        let mut files: Vec<File> = export.fds.into_iter().map(File::from).collect();
        let events_file = files.pop().expect("slots + 1 descriptors");
        let memory = files
            .iter()
            .map(|file| {
                check_sealed(file)?;
                Mapping::map(file, bytes, false)
            })
            .collect::<Result<Vec<_>, _>>()?;
        check_sealed(&events_file)?;
        let events = Mapping::map(&events_file, events_bytes, false)?;
        Ok(HostReader {
            slots: Slots {
                memory,
                events,
                bytes,
            },
        })
    }
}

fn run_stream(slots: &Slots, queue: &mpsc::Receiver<Job>, delay: Duration) {
    for job in queue {
        match job {
            Job::Copy { slot, data } => {
                std::thread::sleep(delay);
                // The Release fence standing for the writer's step 1, then the stores.
                protocol::stream_copy(slots.memory[slot].words(), &data);
            }
            Job::Record { slot, count } => slots.complete(slot, count),
            Job::Flush(done) => {
                let _ = done.send(());
            }
        }
    }
}

impl HostWriter {
    fn submit(&mut self, job: Job) -> Result<(), GpuError> {
        match &mut self.stream {
            Stream::Inline => {
                match job {
                    Job::Copy { slot, data } => self.slots.store(slot, &data),
                    Job::Record { slot, count } => self.slots.complete(slot, count),
                    Job::Flush(done) => {
                        let _ = done.send(());
                    }
                }
                Ok(())
            }
            Stream::Thread { jobs, .. } => jobs
                .as_ref()
                .and_then(|jobs| jobs.send(job).ok())
                .ok_or_else(|| GpuError::Unsupported("the host stream thread stopped".into())),
        }
    }
}

impl SlotWriter for HostWriter {
    fn copy_from_host(&mut self, slot: usize, src: &[u8]) -> Result<(), GpuError> {
        self.slots.check(slot, src.len())?;
        if let Stream::Inline = self.stream {
            self.slots.store(slot, src);
            return Ok(());
        }
        // Staged, as a pageable-memory copy is: the caller may reuse `src`.
        self.submit(Job::Copy {
            slot,
            data: src.to_vec(),
        })
    }

    /// # Safety
    /// The contract of [`SlotWriter::copy_from_device`]: `src` is valid for `src.len`
    /// bytes and not written until the copy completes.
    unsafe fn copy_from_device(&mut self, slot: usize, src: DevicePtr) -> Result<(), GpuError> {
        if src.len == 0 {
            return self.copy_from_host(slot, &[]);
        }
        // SAFETY: for the host backend device memory is memory of this process; the
        // caller guarantees `src` is valid for `src.len` bytes and not written until
        // the copy is done (it is staged right here).
        let bytes = unsafe { std::slice::from_raw_parts(src.addr as *const u8, src.len) };
        self.copy_from_host(slot, bytes)
    }

    fn record(&mut self, slot: usize) -> Result<(), GpuError> {
        self.slots.check(slot, 0)?;
        let count = self.slots.issue(slot);
        self.submit(Job::Record { slot, count })
    }

    fn synchronize(&mut self) -> Result<(), GpuError> {
        let (done, wait) = mpsc::channel();
        self.submit(Job::Flush(done))?;
        wait.recv()
            .map_err(|_| GpuError::Unsupported("the host stream thread stopped".into()))
    }

    fn copy_to_host(&mut self, slot: usize, dst: &mut [u8]) -> Result<(), GpuError> {
        self.slots.check(slot, dst.len())?;
        self.synchronize()?;
        self.slots.load(slot, dst);
        Ok(())
    }

    fn slot_ptr(&self, slot: usize) -> DevicePtr {
        self.slots.ptr(slot)
    }
}

impl Drop for HostWriter {
    fn drop(&mut self) {
        if let Stream::Thread { jobs, worker } = &mut self.stream {
            // Closing the queue ends the thread once it has run what was enqueued.
            drop(jobs.take());
            if let Some(worker) = worker.take() {
                let _ = worker.join();
            }
        }
    }
}

/// A reader's side of a host lane.
#[derive(Debug)]
pub struct HostReader {
    slots: Slots,
}

impl HostReader {
    /// The words of `slot`, load-only (the mapping is read-only), to read a zero-copy
    /// view with relaxed loads (the writer may be writing them: check the view with
    /// its `release`).
    pub fn slot_words(&self, slot: usize) -> Option<ReadWords<'_>> {
        self.slots.memory.get(slot).map(Mapping::read)
    }
}

impl SlotReader for HostReader {
    fn wait(
        &mut self,
        slot: usize,
        timeout: Duration,
        stale: &mut dyn FnMut() -> bool,
    ) -> Result<(), GpuError> {
        self.slots.check(slot, 0)?;
        // The events are mapped read-only here: `EventView` loads each counter relaxed
        // and follows each load with an Acquire fence (pairs with the Release stores
        // of `EventCounters::issue` and `EventCounters::complete`).
        let event = self.slots.event_view(slot);
        let target = event.issued();
        let deadline = Instant::now() + timeout;
        let mut spins = 0u32;
        while !protocol::reached(target, event.completed()) {
            if stale() {
                return Err(GpuError::Overwritten);
            }
            if Instant::now() >= deadline {
                return Err(GpuError::Timeout);
            }
            spins += 1;
            if spins < 100 {
                std::hint::spin_loop();
            } else {
                std::thread::sleep(Duration::from_micros(50));
            }
        }
        Ok(())
    }

    fn copy_to_host(&mut self, slot: usize, dst: &mut [u8]) -> Result<(), GpuError> {
        self.slots.check(slot, dst.len())?;
        self.slots.load(slot, dst);
        Ok(())
    }

    /// # Safety
    /// The contract of [`SlotReader::copy_to_device`]: `dst` is valid for writes of
    /// `dst.len` bytes and used by nothing else until this returns.
    unsafe fn copy_to_device(&mut self, slot: usize, dst: DevicePtr) -> Result<(), GpuError> {
        self.slots.check(slot, dst.len)?;
        if dst.len == 0 {
            return Ok(());
        }
        // SAFETY: for the host backend device memory is memory of this process; the
        // caller guarantees `dst` is valid for writes of `dst.len` bytes and unused by
        // anything else until this returns.
        let out = unsafe { std::slice::from_raw_parts_mut(dst.addr as *mut u8, dst.len) };
        self.slots.load(slot, out);
        Ok(())
    }

    fn synchronize(&mut self) -> Result<(), GpuError> {
        Ok(())
    }

    fn slot_ptr(&self, slot: usize) -> DevicePtr {
        self.slots.ptr(slot)
    }
}
