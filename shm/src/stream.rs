//! Latest-value streams: one writer, any number of readers, over the core's N-slot
//! seqlock register.
//!
//! ```no_run
//! use tensorlane_shm::{DType, StreamReader, StreamWriter, TensorSpec};
//! let spec = TensorSpec::new(DType::F32, &[100, 100]).unwrap();
//! let mut writer = StreamWriter::create("camera", &spec, 3).unwrap();
//! writer.write_elements(&vec![1.0f32; 10_000]).unwrap();
//!
//! // In another process:
//! let mut reader = StreamReader::open("camera").unwrap();
//! let mut image = vec![0f32; 10_000];
//! let frame = reader.read_elements(&mut image).unwrap(); // the latest value
//! println!("frame {} written at {} ns", frame.frame_id, frame.timestamp_ns);
//! // Wait up to 1 s for a newer one:
//! let frame = reader
//!     .read_new_elements_timeout(&mut image, std::time::Duration::from_secs(1))
//!     .unwrap();
//! assert!(frame.seq >= 2);
//! ```

use crate::dtype::TensorSpec;
use crate::element::{self, Element};
use crate::error::{self, LaneError};
use crate::header::{Kind, FRAME_BYTES};
use crate::lane::{self, Frame, ShmRegion, Wait, POLLS_BEFORE_LIVENESS};
use crate::segment::{CreateOptions, OpenOptions, Segment, WRITER_ROLE};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tensorlane_core::{
    ReadError, Seqlock, SeqlockHeader, SeqlockReader, SeqlockWriter, DEFAULT_READ_ATTEMPTS,
};

pub(crate) mod block;

type Region = ShmRegion<SeqlockHeader>;

/// How long a read keeps retrying a value that a writer keeps overwriting before it
/// gives up with [`LaneError::Stalled`]. Every attempt may copy the whole tensor.
#[derive(Debug, Clone, Copy)]
enum Budget {
    /// At most this many attempts (non-blocking reads: `DEFAULT_READ_ATTEMPTS`).
    Attempts(u32),
    /// No attempt starts after this instant (reads inside a timed `read_new`); at
    /// least one attempt is made.
    Until(Instant),
}

fn register(segment: &Arc<Segment>) -> Seqlock<Region> {
    let crate::header::Geometry::Stream(geometry) = segment.info().geometry else {
        unreachable!("kind checked when the segment was opened")
    };
    // SAFETY: the segment's kind is Stream, whose core header is SeqlockHeader.
    let region = unsafe { ShmRegion::new(segment.clone()) };
    Seqlock::new(region, geometry).expect("segment size validated")
}

/// The writer of a stream. Dropping it leaves the last value readable.
#[derive(Debug)]
pub struct StreamWriter {
    writer: SeqlockWriter<Region>,
    segment: Arc<Segment>,
    next_frame: u64,
}

impl StreamWriter {
    /// Creates stream `name` of tensors `spec` with `slots` slots (2 or 3 is usual:
    /// with 2 or more, a writer dying mid-write leaves the previous value readable).
    pub fn create(name: &str, spec: &TensorSpec, slots: usize) -> Result<Self, LaneError> {
        Self::create_with(name, spec, slots, CreateOptions::default())
    }

    /// [`create`](Self::create) with options (group access).
    pub fn create_with(
        name: &str,
        spec: &TensorSpec,
        slots: usize,
        options: CreateOptions,
    ) -> Result<Self, LaneError> {
        let segment = lane::create_segment(name, Kind::Stream, spec, slots, 0, options)?;
        lane::lock_role(&segment, WRITER_ROLE, "writer")?;
        let writer = register(&segment)
            .writer(crate::segment::owner_token())
            .map_err(|_| LaneError::RoleTaken {
                name: name.to_string(),
                role: "writer",
            })?;
        Ok(StreamWriter {
            writer,
            segment,
            next_frame: 1,
        })
    }

    /// Becomes the writer of existing stream `name`, whose previous writer is gone
    /// (its process exited or died). Fails with `RoleTaken` if it is alive.
    pub fn take_over(name: &str) -> Result<Self, LaneError> {
        Self::take_over_with(name, OpenOptions::new())
    }

    /// [`take_over`](Self::take_over) with options (an expected tensor; pre-faulting
    /// and locking the mapping for a real-time loop).
    pub fn take_over_with(name: &str, options: OpenOptions) -> Result<Self, LaneError> {
        let segment = lane::open_segment(name, Kind::Stream, &options)?;
        lane::lock_role(&segment, WRITER_ROLE, "writer")?;
        // We hold the writer lock, so whoever the claim word names is gone.
        let register = register(&segment);
        let previous = register.writer_owner();
        let writer = register
            .takeover(previous, crate::segment::owner_token())
            .map_err(|_| LaneError::RoleTaken {
                name: name.to_string(),
                role: "writer",
            })?;
        // Continue the frame ids of the last complete write. Only its frame prefix is
        // read: a buffer for the whole tensor would be an allocation sized by shared
        // memory. Nobody writes any more (this process holds the writer role), so the
        // attempts only guard against a hostile peer.
        // SAFETY: the segment's kind is Stream, whose core header is SeqlockHeader.
        let region: Region = unsafe { ShmRegion::new(segment.clone()) };
        let next_frame = match crate::peek::stream_latest(&region, &register.geometry(), 64) {
            Ok(Some(prefix)) => prefix.frame_id.wrapping_add(1),
            Ok(None) | Err(_) => 1,
        };
        Ok(StreamWriter {
            writer,
            segment,
            next_frame,
        })
    }

    /// The tensor each write carries.
    pub fn spec(&self) -> &TensorSpec {
        &self.segment.info().spec
    }

    /// The lane's validated header (creator, geometry, tensor, clock, metadata).
    pub fn info(&self) -> &crate::header::HeaderInfo {
        self.segment.info()
    }

    /// The lane's metadata, written at create (empty if none was given).
    pub fn metadata(&self) -> &crate::metadata::Metadata {
        &self.segment.info().metadata
    }

    /// Sequence number the next write will have.
    pub fn next_seq(&self) -> u64 {
        self.writer.next_seq()
    }

    /// Publishes `tensor` (exactly one tensor's bytes) with the next frame id; returns
    /// the write's sequence number. Wait-free; wakes blocked readers only if there
    /// are any.
    pub fn write(&mut self, tensor: &[u8]) -> Result<u64, LaneError> {
        self.write_frame(tensor, self.next_frame)
    }

    /// Publishes `tensor` with a frame id of the caller's choice; later writes count
    /// on from it.
    pub fn write_frame(&mut self, tensor: &[u8], frame_id: u64) -> Result<u64, LaneError> {
        lane::check_size(self.spec(), tensor.len())?;
        let prefix = lane::frame_prefix(frame_id, lane::now_ns(self.segment.info().clock));
        let seq = self
            .writer
            .write_parts(&[&prefix, tensor])
            .map_err(error::from_write)?;
        self.next_frame = frame_id.wrapping_add(1);
        self.segment.header().data.notify();
        Ok(seq)
    }

    /// [`write`](Self::write) from a slice of elements of the lane's dtype (`f32`,
    /// `u16`, ...), as many as the tensor has (`WrongDType`, `WrongCount`).
    pub fn write_elements<T: Element>(&mut self, tensor: &[T]) -> Result<u64, LaneError> {
        self.write(element::as_bytes(self.spec(), tensor)?)
    }
}

/// A reader of a stream. It writes nothing to shared memory, except the futex word's
/// waiting flag while it sleeps in [`read_new`](Self::read_new).
#[derive(Debug)]
pub struct StreamReader {
    reader: SeqlockReader<Region>,
    segment: Arc<Segment>,
}

impl StreamReader {
    /// Reads through `read` into `out`, elements of the lane's dtype. The spec is
    /// borrowed through a clone of the segment's `Arc`: cloning the spec would allocate
    /// (its shape), and typed reads allocate nothing.
    fn read_elements_with<T: Element>(
        &mut self,
        out: &mut [T],
        read: impl FnOnce(&mut Self, &mut [u8]) -> Result<Frame, LaneError>,
    ) -> Result<Frame, LaneError> {
        let segment = self.segment.clone();
        element::read_into(&segment.info().spec, out, |bytes| read(self, bytes))
    }

    /// Opens stream `name`, whatever tensor it carries.
    pub fn open(name: &str) -> Result<Self, LaneError> {
        Self::open_with(name, OpenOptions::new())
    }

    /// Opens stream `name`, checking that it carries `spec`.
    pub fn open_expect(name: &str, spec: &TensorSpec) -> Result<Self, LaneError> {
        Self::open_with(name, OpenOptions::new().expect(spec))
    }

    /// Opens stream `name` with options (an expected tensor; pre-faulting and locking
    /// the mapping for a real-time loop).
    pub fn open_with(name: &str, options: OpenOptions) -> Result<Self, LaneError> {
        let segment = lane::open_segment(name, Kind::Stream, &options)?;
        let mut reader = register(&segment).reader();
        // One copy per core call: `read_inner` counts the attempts and watches the
        // clock between them.
        reader.set_max_attempts(1);
        Ok(StreamReader { reader, segment })
    }

    /// The tensor each write carries.
    pub fn spec(&self) -> &TensorSpec {
        &self.segment.info().spec
    }

    /// The lane's metadata, written at create (empty if none was given).
    pub fn metadata(&self) -> &crate::metadata::Metadata {
        &self.segment.info().metadata
    }

    /// The lane's validated header (creator, geometry, tensor).
    pub fn info(&self) -> &crate::header::HeaderInfo {
        self.segment.info()
    }

    /// Sequence of the last complete write (0 if none).
    pub fn published(&self) -> u64 {
        register(&self.segment).published()
    }

    /// Whether a live process holds the writer role.
    pub fn writer_alive(&self) -> bool {
        self.segment.role_alive(WRITER_ROLE).unwrap_or(false)
    }

    /// Copies the latest value into `out` (exactly one tensor's bytes); `Empty` if
    /// nothing was written yet. Never blocks: if a writer overwrites the value during
    /// each of `DEFAULT_READ_ATTEMPTS` (64) copies, returns [`LaneError::Stalled`]
    /// (or [`LaneError::WriterGone`] if the writer died mid-write with one slot). On
    /// any error the contents of `out` are unspecified (a copy the writer overtook).
    pub fn read(&mut self, out: &mut [u8]) -> Result<Frame, LaneError> {
        self.read_inner(out, false, Budget::Attempts(DEFAULT_READ_ATTEMPTS))?
            .ok_or(LaneError::Empty)
    }

    /// Waits without limit for a value newer than the last one this reader returned
    /// and copies it into `out`. `WriterGone` if the writer dies meanwhile (the last
    /// value stays readable with [`read`](Self::read)).
    pub fn read_new(&mut self, out: &mut [u8]) -> Result<Frame, LaneError> {
        self.read_new_inner(out, Wait::Until(None))
    }

    /// [`read_new`](Self::read_new) without waiting: `Empty` unless there is a value
    /// newer than the last one this reader returned.
    pub fn try_read_new(&mut self, out: &mut [u8]) -> Result<Frame, LaneError> {
        self.read_new_inner(out, Wait::Never)
    }

    /// [`read_new`](Self::read_new), waiting at most `timeout`: `Timeout` when time
    /// runs out, and `Stalled` when new values came but a writer overwrote each one
    /// while it was being copied until the time ran out. Returns within `timeout`
    /// plus at most one copy of the tensor.
    pub fn read_new_timeout(
        &mut self,
        out: &mut [u8],
        timeout: Duration,
    ) -> Result<Frame, LaneError> {
        self.read_new_inner(out, Wait::timeout(timeout))
    }

    /// [`read_new`](Self::read_new), waiting until `deadline` (as
    /// [`read_new_timeout`](Self::read_new_timeout)); one attempt is made even if the
    /// deadline has passed.
    pub fn read_new_deadline(
        &mut self,
        out: &mut [u8],
        deadline: Instant,
    ) -> Result<Frame, LaneError> {
        self.read_new_inner(out, Wait::Until(Some(deadline)))
    }

    /// [`read`](Self::read) into a slice of elements of the lane's dtype, as many as
    /// the tensor has (`WrongDType`, `WrongCount`, and `InvalidBool` for a `bool`
    /// lane holding a byte other than 0 or 1).
    pub fn read_elements<T: Element>(&mut self, out: &mut [T]) -> Result<Frame, LaneError> {
        self.read_elements_with(out, |lane, bytes| lane.read(bytes))
    }

    /// [`read_new`](Self::read_new) into a slice of elements of the lane's dtype.
    pub fn read_new_elements<T: Element>(&mut self, out: &mut [T]) -> Result<Frame, LaneError> {
        self.read_elements_with(out, |lane, bytes| lane.read_new(bytes))
    }

    /// [`try_read_new`](Self::try_read_new) into a slice of elements of the lane's
    /// dtype.
    pub fn try_read_new_elements<T: Element>(&mut self, out: &mut [T]) -> Result<Frame, LaneError> {
        self.read_elements_with(out, |lane, bytes| lane.try_read_new(bytes))
    }

    /// [`read_new_timeout`](Self::read_new_timeout) into a slice of elements of the
    /// lane's dtype.
    pub fn read_new_elements_timeout<T: Element>(
        &mut self,
        out: &mut [T],
        timeout: Duration,
    ) -> Result<Frame, LaneError> {
        self.read_elements_with(out, |lane, bytes| lane.read_new_timeout(bytes, timeout))
    }

    fn read_new_inner(&mut self, out: &mut [u8], wait_for: Wait) -> Result<Frame, LaneError> {
        let deadline = match wait_for {
            Wait::Never => {
                return self
                    .read_inner(out, true, Budget::Attempts(DEFAULT_READ_ATTEMPTS))?
                    .ok_or(LaneError::Empty)
            }
            Wait::Until(deadline) => deadline,
        };
        let segment = self.segment.clone();
        let mut polls = 0u32;
        // No attempt starts after the deadline; without one, the attempts are
        // unbounded in time, like the wait.
        let budget = deadline.map_or(Budget::Attempts(u32::MAX), Budget::Until);
        segment
            .header()
            .data
            .wait_deadline(deadline, || {
                match self.read_inner(out, true, budget) {
                    Ok(Some(frame)) => return Some(Ok(frame)),
                    Ok(None) => {}
                    Err(e) => return Some(Err(e)),
                }
                // Liveness costs a system call: check it only after the spin phase.
                polls += 1;
                if polls > POLLS_BEFORE_LIVENESS && !segment.role_alive(WRITER_ROLE).unwrap_or(true)
                {
                    return Some(Err(LaneError::WriterGone));
                }
                None
            })
            .unwrap_or(Err(LaneError::Timeout))
    }

    /// One read: attempts (each one copy, `reader` makes one attempt per call) until
    /// a copy is untorn or `budget` runs out.
    fn read_inner(
        &mut self,
        out: &mut [u8],
        only_new: bool,
        budget: Budget,
    ) -> Result<Option<Frame>, LaneError> {
        lane::check_size(self.spec(), out.len())?;
        let mut prefix = [0u8; FRAME_BYTES];
        let mut failed = 0u32;
        loop {
            match self.reader.read_parts(&mut [&mut prefix, out], only_new) {
                Ok(info) => {
                    if info.len != FRAME_BYTES + out.len() {
                        return Err(error::wrong_length(info.len, FRAME_BYTES + out.len()));
                    }
                    let (frame_id, timestamp_ns) = lane::parse_prefix(&prefix);
                    return Ok(Some(Frame {
                        seq: info.seq,
                        frame_id,
                        timestamp_ns,
                        missed: info.missed,
                    }));
                }
                Err(ReadError::Empty) | Err(ReadError::NotNew) => return Ok(None),
                // A writer lapping us (or, with one slot, stopped mid-write).
                Err(ReadError::Stalled { .. }) => {
                    failed = failed.saturating_add(1);
                    let spent = match budget {
                        Budget::Attempts(n) => failed >= n,
                        Budget::Until(deadline) => Instant::now() >= deadline,
                    };
                    // Liveness costs a system call: check it every round of
                    // attempts, and before giving up.
                    let round = failed % DEFAULT_READ_ATTEMPTS == 0;
                    if (spent || round) && !self.writer_alive() {
                        return Err(LaneError::WriterGone);
                    }
                    if spent {
                        return Err(LaneError::Stalled);
                    }
                    if round {
                        std::thread::yield_now();
                    } else {
                        std::hint::spin_loop();
                    }
                }
                Err(e) => return Err(error::from_read(e, FRAME_BYTES + out.len())),
            }
        }
    }
}
