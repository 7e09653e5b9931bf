//! GPU streams: the latest tensor, in device memory, from one writer process to any
//! number of reader processes.
//!
//! ```no_run
//! use std::time::Duration;
//! use tensorlane_gpu::{GpuLaneOptions, GpuStreamReader, GpuStreamWriter, HostBackend};
//! use tensorlane_shm::{DType, TensorSpec};
//!
//! // Writer process (the CUDA backend is used the same way).
//! let spec = TensorSpec::new(DType::F32, &[256, 256]).unwrap();
//! let backend = HostBackend::new();
//! let mut writer =
//!     GpuStreamWriter::create(&backend, "features", &spec, 3, GpuLaneOptions::default()).unwrap();
//! writer.write(&vec![0u8; spec.byte_len()]).unwrap();
//!
//! // Reader process.
//! let mut reader = GpuStreamReader::open(&backend, "features").unwrap();
//! let mut out = vec![0u8; spec.byte_len()];
//! let frame = reader.read_new_timeout(&mut out, Duration::from_secs(1)).unwrap();
//! println!("frame {} (seq {}, the first write is 1)", frame.frame_id, frame.seq);
//! ```
//!
//! Readers are lossy by nature (a stream holds the latest value): a read that raced the
//! writer reusing its slot is retried on the latest write; a zero-copy
//! [`StreamView`] tells at [`StreamView::release`] whether it stayed whole.
//!
//! Choose the slot count above the number of writes the writer keeps in flight: a
//! writer whose device copies lag `D - 1` writes behind its `write` calls has begun
//! reusing every slot whose copy has completed, so readers find every write already
//! overwritten and report `Overwritten`. [`GpuStreamWriter::synchronize`] bounds the
//! lag.

use crate::backend::{Backend, DevicePtr, SlotReader, SlotWriter};
use crate::error::GpuError;
use crate::lane::{
    mirror_name, record_lane, record_spec, Exporter, GpuLaneOptions, Importer,
    DEFAULT_EVENT_TIMEOUT,
};
use crate::table::RECORD_WORDS;
use crate::wait::{Wait, WaitOn};
use std::time::{Duration, Instant};
use tensorlane_shm::{Frame, Kind, StreamReader, StreamWriter, TensorSpec};

/// Rounds of read, check and retry before a reader lapped by the writer gives up.
const READ_ATTEMPTS: u32 = 1000;

/// Record-lane register slots (records are small; more slots make stalls rarer).
const RECORD_SLOTS: usize = 4;

/// The writer of a GPU stream. It owns the device slots and serves them to readers
/// until dropped; dropping it frees them (readers then get `WriterGone`).
#[derive(Debug)]
pub struct GpuStreamWriter<B: Backend> {
    // Dropped first: no reader can fetch the slots while they are freed.
    lane: StreamWriter,
    mirror: Option<StreamWriter>,
    exporter: Exporter<B>,
    staging: Vec<u8>,
}

impl<B: Backend> GpuStreamWriter<B> {
    /// Creates GPU stream `name` of tensors `spec` with `slots` device slots (2 to 250;
    /// 3 lets a reader copy one write while the next is written).
    pub fn create(
        backend: &B,
        name: &str,
        spec: &TensorSpec,
        slots: usize,
        options: GpuLaneOptions,
    ) -> Result<Self, GpuError> {
        let exporter = Exporter::create(backend, name, Kind::Stream, spec, slots, options)?;
        let mirror = if options.mirror {
            Some(StreamWriter::create_with(
                &mirror_name(name),
                spec,
                2,
                options.shm(),
            )?)
        } else {
            None
        };
        let lane = record_lane(name, mirror.is_some(), || {
            StreamWriter::create_with(name, &record_spec(), RECORD_SLOTS, options.shm())
        })?;
        Ok(GpuStreamWriter {
            lane,
            mirror,
            exporter,
            staging: Vec::new(),
        })
    }

    /// The tensor each write carries.
    pub fn spec(&self) -> &TensorSpec {
        &self.exporter.table.spec
    }

    /// Waits until every copy this writer enqueued has completed (for example before
    /// reusing device memory given to a `*_from_device` call).
    pub fn synchronize(&mut self) -> Result<(), GpuError> {
        self.exporter.slots.synchronize()
    }

    /// The backend's side of the slots (for example to get at its stream).
    pub fn slots(&self) -> &B::Writer {
        &self.exporter.slots
    }

    /// Publishes `tensor` (host memory, one tensor's bytes); returns the write's
    /// sequence. The copy may still be running when this returns: readers wait for it
    /// on its event.
    pub fn write(&mut self, tensor: &[u8]) -> Result<u64, GpuError> {
        self.exporter.check_size(tensor.len())?;
        let seq = self.lane.next_seq();
        let slot = (seq % self.exporter.table.slots as u64) as usize;
        self.exporter.before_slot_write();
        self.exporter.slots.copy_from_host(slot, tensor)?;
        self.exporter.slots.record(slot)?;
        if let Some(mirror) = &mut self.mirror {
            mirror.write(tensor)?;
        }
        self.publish(seq)
    }

    /// Publishes the tensor at `src` (device memory of the backend's device); returns
    /// the write's sequence.
    ///
    /// # Safety
    /// `src` must be valid device memory of this backend for `src.len` bytes, not
    /// written until the write's event fires (for the CUDA backend: order such writes
    /// after it, or synchronize).
    pub unsafe fn write_from_device(&mut self, src: DevicePtr) -> Result<u64, GpuError> {
        self.exporter.check_size(src.len)?;
        let seq = self.lane.next_seq();
        let slot = (seq % self.exporter.table.slots as u64) as usize;
        self.exporter.before_slot_write();
        // SAFETY: the caller's guarantee on `src`.
        unsafe { self.exporter.slots.copy_from_device(slot, src)? };
        self.exporter.slots.record(slot)?;
        if let Some(mirror) = &mut self.mirror {
            self.staging.resize(src.len, 0);
            self.exporter.slots.copy_to_host(slot, &mut self.staging)?;
            mirror.write(&self.staging)?;
        }
        self.publish(seq)
    }

    fn publish(&mut self, seq: u64) -> Result<u64, GpuError> {
        let published = self.lane.write(&self.exporter.record(seq))?;
        if published != seq {
            return Err(GpuError::Corrupt(format!(
                "write {seq} was published as {published}"
            )));
        }
        Ok(seq)
    }
}

/// A reader of a GPU stream, in another process than the writer.
#[derive(Debug)]
pub struct GpuStreamReader<B: Backend> {
    lane: StreamReader,
    importer: Importer<B>,
    record: [u8; RECORD_WORDS * 8],
    /// Sequence of the last write returned (0: none yet).
    last: u64,
}

impl<B: Backend> GpuStreamReader<B> {
    /// Opens GPU stream `name`: maps the record lane, fetches the table and the slots
    /// from the writer's process, and imports them with `backend`.
    pub fn open(backend: &B, name: &str) -> Result<Self, GpuError> {
        Self::open_with_timeout(backend, name, DEFAULT_EVENT_TIMEOUT)
    }

    /// [`open`](Self::open), waiting at most `timeout` for the writer's hand-off and,
    /// later, for each write's completion event.
    pub fn open_with_timeout(backend: &B, name: &str, timeout: Duration) -> Result<Self, GpuError> {
        let lane = StreamReader::open_expect(name, &record_spec())?;
        let importer = Importer::open(
            backend,
            name,
            Kind::Stream,
            lane.info().creator_pid,
            timeout,
        )?;
        Ok(GpuStreamReader {
            lane,
            importer,
            record: [0; RECORD_WORDS * 8],
            last: 0,
        })
    }

    /// The tensor each write carries.
    pub fn spec(&self) -> &TensorSpec {
        &self.importer.table.spec
    }

    /// The backend's side of the slots (for example to read a host view's words).
    pub fn slots(&self) -> &B::Reader {
        &self.importer.slots
    }

    /// Whether the writer's process is alive.
    pub fn writer_alive(&self) -> bool {
        self.lane.writer_alive()
    }

    /// Sequence of the last write published (0 if none).
    pub fn published(&self) -> u64 {
        self.lane.published()
    }

    /// Copies the latest tensor into `out` (host memory); `Empty` if nothing was written
    /// yet. Does not wait for a write (only for the latest write's completion event, up
    /// to the timeout given at open).
    pub fn read(&mut self, out: &mut [u8]) -> Result<Frame, GpuError> {
        self.read_into(out.len(), false, |slots, slot| {
            slots.copy_to_host(slot, out)
        })?
        .ok_or(GpuError::Empty)
    }

    /// Waits without limit for a write newer than the last one this reader returned
    /// and copies it into `out`. `WriterGone` if the writer dies meanwhile.
    pub fn read_new(&mut self, out: &mut [u8]) -> Result<Frame, GpuError> {
        self.read_new_inner(out, Wait::Until(None))
    }

    /// [`read_new`](Self::read_new) without waiting for a write: `Empty` unless there
    /// is a write newer than the last one this reader returned.
    pub fn try_read_new(&mut self, out: &mut [u8]) -> Result<Frame, GpuError> {
        self.read_new_inner(out, Wait::Never)
    }

    /// [`read_new`](Self::read_new), waiting at most `timeout` (`Timeout`).
    pub fn read_new_timeout(
        &mut self,
        out: &mut [u8],
        timeout: Duration,
    ) -> Result<Frame, GpuError> {
        self.read_new_inner(out, Wait::timeout(timeout))
    }

    /// [`read_new`](Self::read_new), waiting until `deadline` (`Timeout`); one attempt
    /// is made even if the deadline has passed.
    pub fn read_new_deadline(
        &mut self,
        out: &mut [u8],
        deadline: Instant,
    ) -> Result<Frame, GpuError> {
        self.read_new_inner(out, Wait::Until(Some(deadline)))
    }

    /// Copies the latest tensor into device memory `dst`; `Empty` if nothing was
    /// written yet.
    ///
    /// # Safety
    /// `dst` must be valid device memory of this backend for writes of `dst.len`
    /// bytes, unused by anything else until this returns.
    pub unsafe fn read_into_device(&mut self, dst: DevicePtr) -> Result<Frame, GpuError> {
        self.read_into(dst.len, false, |slots, slot| {
            // SAFETY: the caller's guarantee on `dst`.
            unsafe { slots.copy_to_device(slot, dst) }
        })?
        .ok_or(GpuError::Empty)
    }

    /// The `read_new` family: reads a write newer than the last one returned, else
    /// sleeps on the record lane's futex (as `wait` says) until a newer record
    /// arrives and reads again.
    fn read_new_inner(&mut self, out: &mut [u8], wait: Wait) -> Result<Frame, GpuError> {
        loop {
            let read =
                self.read_into(out.len(), true, |slots, slot| slots.copy_to_host(slot, out))?;
            if let Some(frame) = read {
                return Ok(frame);
            }
            // The record lane returned every record this reader read, so this waits
            // for one newer than the last write returned (`Empty` / `Timeout` /
            // `WriterGone` end the call).
            wait.read_new(&mut self.lane, &mut self.record)?;
        }
    }

    /// A zero-copy view of the latest write's slot, ready once this returns (the
    /// write's event has fired: work enqueued on the reader's stream from now on
    /// follows it). The writer does not wait for views: check
    /// [`StreamView::release`] to learn whether it stayed whole. `Empty` if nothing
    /// was written yet.
    pub fn view(&mut self) -> Result<StreamView<'_, B>, GpuError> {
        for _ in 0..READ_ATTEMPTS {
            let Some((frame, slot)) = self.next_record(false)? else {
                return Err(GpuError::Empty);
            };
            let lane = &self.lane;
            match self
                .importer
                .wait(slot, frame.seq, || lane.writer_alive(), || lane.published())
            {
                Ok(()) => {
                    return Ok(StreamView {
                        ptr: self.importer.slots.slot_ptr(slot),
                        slot,
                        frame,
                        reader: self,
                    })
                }
                // Already being overwritten: take the latest.
                Err(GpuError::Overwritten) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(GpuError::Overwritten)
    }

    /// Counts the writes missed since the last one returned (reads retried after an
    /// overwrite miss more than the record lane knows of).
    fn returned(&mut self, mut frame: Frame) -> Frame {
        frame.missed = match self.last {
            0 => 0,
            last => frame.seq.saturating_sub(last).saturating_sub(1),
        };
        self.last = self.last.max(frame.seq);
        frame
    }

    /// Reads the latest record and its slot (`only_new`: `None` unless it is newer than
    /// the last write this reader returned; a write whose device part failed is
    /// returned by the next call).
    fn next_record(&mut self, only_new: bool) -> Result<Option<(Frame, usize)>, GpuError> {
        let frame = match self.lane.read(&mut self.record) {
            Ok(frame) => frame,
            Err(tensorlane_shm::LaneError::Empty) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if only_new && frame.seq <= self.last {
            return Ok(None);
        }
        let slot = self.importer.slot_of(&self.record, frame.seq)?;
        Ok(Some((frame, slot)))
    }

    fn read_into(
        &mut self,
        len: usize,
        only_new: bool,
        mut copy: impl FnMut(&mut B::Reader, usize) -> Result<(), GpuError>,
    ) -> Result<Option<Frame>, GpuError> {
        if len != self.spec().byte_len() {
            return Err(GpuError::WrongSize {
                expected: self.spec().byte_len(),
                found: len,
            });
        }
        let mut only_new = only_new;
        for _ in 0..READ_ATTEMPTS {
            let Some((frame, slot)) = self.next_record(only_new)? else {
                return Ok(None);
            };
            let lane = &self.lane;
            match self
                .importer
                .wait(slot, frame.seq, || lane.writer_alive(), || lane.published())
            {
                Ok(()) => {}
                Err(GpuError::Overwritten) => {
                    only_new = false;
                    continue;
                }
                Err(e) => return Err(e),
            }
            copy(&mut self.importer.slots, slot)?;
            if self.importer.intact(frame.seq, || lane.published()) {
                return Ok(Some(self.returned(frame)));
            }
            // Torn by the writer reusing the slot: newer writes exist, take the latest.
            only_new = false;
        }
        Err(GpuError::Overwritten)
    }
}

/// A zero-copy view of one write's device slot.
///
/// Dropping the view without [`release`](Self::release) leaves the reader as it was
/// (the write does not count as returned: a later `read_new` may return it) and
/// never learns whether the slot stayed whole while it was read.
#[derive(Debug)]
#[must_use = "only `release` says whether the slot stayed whole while it was read"]
pub struct StreamView<'a, B: Backend> {
    reader: &'a mut GpuStreamReader<B>,
    ptr: DevicePtr,
    slot: usize,
    frame: Frame,
}

impl<B: Backend> StreamView<'_, B> {
    /// The slot's device memory (one tensor's bytes are valid).
    pub fn ptr(&self) -> DevicePtr {
        DevicePtr {
            addr: self.ptr.addr,
            len: self.reader.spec().byte_len(),
        }
    }

    /// The device slot.
    pub fn slot(&self) -> usize {
        self.slot
    }

    /// The write's frame.
    pub fn frame(&self) -> Frame {
        self.frame
    }

    /// The reader's backend side (for the host backend, `slot_words` reads the view).
    pub fn slots(&self) -> &B::Reader {
        &self.reader.importer.slots
    }

    /// Ends the view after the reader's work on it has completed: the frame if the
    /// slot stayed whole all along, `Overwritten` if the writer began reusing it
    /// (anything read from the view may then be torn).
    pub fn release(self) -> Result<Frame, GpuError> {
        self.reader.importer.slots.synchronize()?;
        let lane = &self.reader.lane;
        if self
            .reader
            .importer
            .intact(self.frame.seq, || lane.published())
        {
            Ok(self.reader.returned(self.frame))
        } else {
            Err(GpuError::Overwritten)
        }
    }
}
