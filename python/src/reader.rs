//! The receiving side of every lane kind, one way: reads into the caller's array or a
//! new one, waits in slices, and keeps what an awaitable received after its task was
//! cancelled.
//!
//! # Invariants
//! - An item is received once: `fill` (the step an awaitable runs on a worker thread)
//!   receives into the handle's own buffer and keeps the frame as `pending`; every
//!   later read returns the pending item before receiving anything new. An awaitable
//!   cancelled while its worker still waits therefore loses nothing: what the worker
//!   got is the next read's.

use crate::arrays::{Bytes, LaneInfo};
use crate::errors::loan_open;
use crate::frame::Frame;
use crate::handle::{Deadline, Handle};
use pyo3::prelude::*;
use tensorlane_shm::{Frame as LaneFrame, HeldSlot, LaneError, Wait};

/// A lane handle that receives items (stream reader, queue consumer, topic
/// subscriber).
pub(crate) trait Receive: Send {
    /// Receives the next item into `out` (exactly one tensor), waiting as `wait` says.
    fn receive(&mut self, out: &mut [u8], wait: Wait) -> Result<LaneFrame, LaneError>;

    /// Whether a newer item supersedes a pending one (a stream's latest value): a
    /// read then returns the newer one, counting the pending one as missed.
    const LATEST_WINS: bool = false;
}

/// A receiving handle and what it received for an awaitable.
pub(crate) struct Reader<L> {
    pub(crate) lane: L,
    pending: Option<LaneFrame>,
    staging: Vec<u8>,
    /// The item an open (or escaped) loan holds in place (queues): while it is
    /// held, every other read refuses to run (`LoanOpen`), under the same lock.
    pub(crate) held: Option<HeldSlot>,
}

impl<L: Receive> Reader<L> {
    pub(crate) fn new(lane: L) -> Self {
        Reader {
            lane,
            pending: None,
            staging: Vec::new(),
            held: None,
        }
    }

    /// The pending item if any, else the next one from the lane.
    fn receive_into(&mut self, out: &mut [u8], wait: Wait) -> Result<LaneFrame, LaneError> {
        if self.held.is_some() {
            return Err(loan_open());
        }
        if let Some(frame) = self.pending.take() {
            if L::LATEST_WINS {
                match self.lane.receive(out, Wait::Never) {
                    Ok(newer) => {
                        return Ok(LaneFrame {
                            missed: newer.missed.saturating_add(1),
                            ..newer
                        })
                    }
                    Err(LaneError::Empty) => {}
                    Err(e) => return Err(e),
                }
            }
            out.copy_from_slice(&self.staging);
            return Ok(frame);
        }
        self.lane.receive(out, wait)
    }

    /// Receives into the handle's buffer and keeps the item pending; `false` if
    /// nothing came in time.
    fn fill(&mut self, bytes: usize, wait: Wait) -> Result<bool, LaneError> {
        if self.held.is_some() {
            return Err(loan_open());
        }
        if self.pending.is_some() {
            return Ok(true);
        }
        self.staging.resize(bytes, 0);
        match self.lane.receive(&mut self.staging, wait) {
            Ok(frame) => {
                self.pending = Some(frame);
                Ok(true)
            }
            Err(LaneError::Timeout) | Err(LaneError::Empty) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Whether an item received for an awaitable waits to be returned.
    pub(crate) fn has_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Forgets the pending item (a stream's latest value supersedes it).
    pub(crate) fn drop_pending(&mut self) {
        self.pending = None;
    }
}

/// A read: into `out` (checked) or a new array, waiting until `deadline`.
pub(crate) fn receive<L: Receive>(
    py: Python<'_>,
    handle: &Handle<Reader<L>>,
    info: &LaneInfo,
    out: Option<&Bound<'_, PyAny>>,
    deadline: Deadline,
) -> PyResult<Frame> {
    let array = info.output(py, out)?;
    let bytes = Bytes::of(&array);
    let frame = handle.wait(py, deadline, move |reader, wait| {
        // SAFETY: `array` outlives the call (held above) and was checked writeable
        // and of one tensor's size; the module rule of `arrays` keeps other threads
        // off it, and it is no loan's view of this lane (an open loan refuses the
        // call in `receive_into`, before any copy).
        reader.receive_into(unsafe { bytes.get_mut() }, wait)
    })?;
    Ok(Frame::new(frame, array.into_any().unbind()))
}

/// An awaitable's worker step: waits up to `timeout` seconds for an item and keeps
/// it pending; `False` if none came.
pub(crate) fn fill<L: Receive>(
    py: Python<'_>,
    handle: &Handle<Reader<L>>,
    info: &LaneInfo,
    timeout: f64,
) -> PyResult<bool> {
    let bytes = info.nbytes();
    let deadline = Deadline::from_args(Some(timeout), None)?;
    handle
        .wait(py, deadline, move |reader, wait| {
            match reader.fill(bytes, wait) {
                // `wait` retries on `Timeout` only; a slice without an item says so.
                Ok(false) if matches!(wait, Wait::Until(_)) => Err(LaneError::Timeout),
                other => other,
            }
        })
        .or_else(|e| {
            if e.is_instance_of::<pyo3::exceptions::PyTimeoutError>(py) {
                Ok(false)
            } else {
                Err(e)
            }
        })
}

/// An awaitable's first step, on the event loop: one attempt to receive an item and
/// keep it pending, without waiting for anything (not even for another thread using
/// the handle); `False` if none is ready.
pub(crate) fn poll<L: Receive>(
    py: Python<'_>,
    handle: &Handle<Reader<L>>,
    info: &LaneInfo,
) -> PyResult<bool> {
    let bytes = info.nbytes();
    Ok(handle
        .try_run(py, move |reader| reader.fill(bytes, Wait::Never))?
        .unwrap_or(false))
}

/// An awaitable's last step: the pending item into `out` or a new array (`None` if
/// no item is pending).
pub(crate) fn take<L: Receive>(
    py: Python<'_>,
    handle: &Handle<Reader<L>>,
    info: &LaneInfo,
    out: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<Frame>> {
    let array = info.output(py, out)?;
    let bytes = Bytes::of(&array);
    let frame = handle.run(py, move |reader| {
        if reader.pending.is_none() {
            return Ok(None);
        }
        // SAFETY: as in `receive`.
        reader
            .receive_into(unsafe { bytes.get_mut() }, Wait::Never)
            .map(Some)
    })?;
    Ok(frame.map(|f| Frame::new(f, array.into_any().unbind())))
}

/// The next item for `__next__`, waiting without limit: `None` (the end of the
/// iteration) once the writer side is gone and everything was read.
pub(crate) fn next_or_end<L: Receive>(
    py: Python<'_>,
    handle: &Handle<Reader<L>>,
    info: &LaneInfo,
) -> PyResult<Option<Frame>> {
    match receive(py, handle, info, None, Deadline::Never) {
        Ok(frame) => Ok(Some(frame)),
        Err(e) if crate::errors::is_class(py, &e, "WriterGone") => Ok(None),
        Err(e) => Err(e),
    }
}
