//! Queues: lossless, one producer, one consumer; copies or zero-copy loans.

use crate::arrays::{spec_of, Bytes, LaneInfo};
use crate::common::lane_common;
use crate::errors::loan_open;
use crate::errors::IntoPy;
use crate::frame::Frame;
use crate::handle::{Deadline, Handle};
use crate::loan::{settle, ConsumerLoan, Escaped, ProducerLoan};
use crate::options;
use crate::reader::{self, Reader, Receive};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use std::sync::Mutex;
use tensorlane_shm::{self as shm, Frame as LaneFrame, HeldSlot, LaneError, Wait};

/// The producer's Rust state: the lane and the slot an open loan holds.
pub(crate) struct Producer {
    pub(crate) lane: shm::QueueProducer,
    /// The slot of the open (or escaped) loan: while it is held, every other call
    /// refuses to run (`LoanOpen`), under the same lock as the call.
    pub(crate) held: Option<HeldSlot>,
}

impl Receive for shm::QueueConsumer {
    fn receive(&mut self, out: &mut [u8], wait: Wait) -> Result<LaneFrame, LaneError> {
        match wait {
            Wait::Never => self.try_pop(out),
            Wait::Until(None) => self.pop(out),
            Wait::Until(Some(deadline)) => self.pop_deadline(out, deadline),
        }
    }
}

/// The producer of a queue: `QueueProducer.create(name, shape, dtype, capacity)`,
/// then `push(array)` (waits while the queue is full) or, between processes that
/// trust each other, `with producer.loan(trust_peers=True) as slot: slot[...] = ...`.
///
/// ```python
/// import numpy as np, tensorlane
/// jobs = tensorlane.QueueProducer.create("jobs", (1024,), np.uint8, capacity=8)
/// jobs.push(np.full(1024, 7, np.uint8), timeout=1.0)
/// ```
#[pyclass(frozen, module = "tensorlane")]
pub(crate) struct QueueProducer {
    pub(crate) info: LaneInfo,
    pub(crate) handle: Handle<Producer>,
    pub(crate) escaped: Escaped,
}

impl QueueProducer {
    fn wrap(py: Python<'_>, producer: shm::QueueProducer, name: &str) -> PyResult<Self> {
        Ok(QueueProducer {
            info: LaneInfo::new(py, name, producer.spec(), producer.metadata())?,
            handle: Handle::new(
                Producer {
                    lane: producer,
                    held: None,
                },
                "QueueProducer",
            ),
            escaped: Mutex::new(None),
        })
    }

    /// Gives up the hold of an escaped loan once its views are gone (else
    /// `LoanEscaped`).
    fn settle(&self, py: Python<'_>) -> PyResult<()> {
        settle(py, &self.escaped, &self.handle, |p| p.held = None)
    }

    fn push_until(
        &self,
        py: Python<'_>,
        array: &Bound<'_, PyAny>,
        deadline: Deadline,
    ) -> PyResult<u64> {
        self.settle(py)?;
        let array = self.info.input(py, array)?;
        let bytes = Bytes::of(&array);
        self.handle.wait(py, deadline, move |p, wait| {
            if p.held.is_some() {
                return Err(loan_open());
            }
            let producer = &mut p.lane;
            // SAFETY: `array` is alive for the call (held above) and is no loan's
            // view of this lane (a loan would be open: refused above); see the
            // module rule of `arrays`.
            let tensor = unsafe { bytes.get() };
            match wait {
                Wait::Never => producer.try_push(tensor),
                Wait::Until(None) => producer.push(tensor),
                Wait::Until(Some(deadline)) => producer.push_deadline(tensor, deadline),
            }
        })
    }
}

lane_common!(QueueProducer);

#[pymethods]
impl QueueProducer {
    /// Creates queue `name` of tensors of `shape` and `dtype` holding up to
    /// `capacity` items.
    #[staticmethod]
    #[pyo3(signature = (name, shape, dtype, capacity=8, *, metadata=None, clock="monotonic",
                        group_access=false, prefault=false, lock_memory=false))]
    #[allow(clippy::too_many_arguments)]
    fn create(
        py: Python<'_>,
        name: &str,
        shape: &Bound<'_, PyAny>,
        dtype: &Bound<'_, PyAny>,
        capacity: usize,
        metadata: Option<&Bound<'_, PyDict>>,
        clock: &str,
        group_access: bool,
        prefault: bool,
        lock_memory: bool,
    ) -> PyResult<Self> {
        let spec = spec_of(py, shape, dtype)?;
        let options = options::create(py, metadata, clock, group_access, prefault, lock_memory)?;
        let producer = py
            .detach(|| shm::QueueProducer::create_with(name, &spec, capacity, options))
            .py(py)?;
        Self::wrap(py, producer, name)
    }

    /// Becomes the producer of existing queue `name`, whose producer is gone.
    #[staticmethod]
    #[pyo3(signature = (name, *, prefault=false, lock_memory=false))]
    fn take_over(py: Python<'_>, name: &str, prefault: bool, lock_memory: bool) -> PyResult<Self> {
        let options = options::open(py, None, None, prefault, lock_memory)?;
        let producer = py
            .detach(|| shm::QueueProducer::take_over_with(name, options))
            .py(py)?;
        Self::wrap(py, producer, name)
    }

    /// Pushes one tensor, waiting for space (`timeout` seconds, until `deadline`, a
    /// `time.monotonic()` reading, or without limit); returns its sequence number.
    #[pyo3(signature = (array, *, timeout=None, deadline=None))]
    fn push(
        &self,
        py: Python<'_>,
        array: &Bound<'_, PyAny>,
        timeout: Option<f64>,
        deadline: Option<f64>,
    ) -> PyResult<u64> {
        self.push_until(py, array, Deadline::from_args(timeout, deadline)?)
    }

    /// `push` without waiting: `Full` if there is no space now.
    fn try_push(&self, py: Python<'_>, array: &Bound<'_, PyAny>) -> PyResult<u64> {
        self.push_until(py, array, Deadline::Now)
    }

    /// A zero-copy push: `with producer.loan(trust_peers=True) as slot:` lends the
    /// next free slot as a writeable numpy array for the block and pushes it when
    /// the block ends (nothing is pushed if it raises). The slot is not zeroed.
    ///
    /// `trust_peers=True` is required: the array is the shared memory itself, so
    /// every process that can write this lane must follow docs/LAYOUT.md (see the
    /// threat model); otherwise use `push`, which copies. The array is emptied when
    /// the block ends; a view of it that outlives the block raises `LoanEscaped`
    /// and the item is not pushed.
    #[pyo3(signature = (*, trust_peers=false, timeout=None, deadline=None))]
    fn loan(
        slf: &Bound<'_, Self>,
        trust_peers: bool,
        timeout: Option<f64>,
        deadline: Option<f64>,
    ) -> PyResult<ProducerLoan> {
        crate::loan::require_trust(trust_peers)?;
        Ok(ProducerLoan::new(
            slf.clone().unbind(),
            Deadline::from_args(timeout, deadline)?,
        ))
    }

    /// Whether the consumer's process is alive.
    #[getter]
    fn consumer_alive(&self, py: Python<'_>) -> PyResult<bool> {
        self.handle.run(py, |p| Ok(p.lane.consumer_alive()))
    }
}

/// The consumer of a queue: `QueueConsumer.open(name)`, then `pop()`, or between
/// processes that trust each other `with consumer.loan(trust_peers=True) as frame:`.
///
/// ```python
/// import tensorlane
/// worker = tensorlane.QueueConsumer.open("jobs")
/// frame = worker.pop(timeout=1.0)
/// print(frame.seq, frame.array[:4])
/// ```
#[pyclass(frozen, module = "tensorlane")]
pub(crate) struct QueueConsumer {
    pub(crate) info: LaneInfo,
    pub(crate) handle: Handle<Reader<shm::QueueConsumer>>,
    pub(crate) escaped: Escaped,
}

impl QueueConsumer {
    /// Gives up the hold of an escaped loan once its views are gone (else
    /// `LoanEscaped`).
    fn settle(&self, py: Python<'_>) -> PyResult<()> {
        settle(py, &self.escaped, &self.handle, |c| c.held = None)
    }
}

lane_common!(QueueConsumer);

#[pymethods]
impl QueueConsumer {
    /// Opens queue `name` as its consumer (`RoleTaken` if a live process consumes
    /// it; takes over from a dead one). With `shape` and `dtype`, checks the tensor.
    #[staticmethod]
    #[pyo3(signature = (name, *, shape=None, dtype=None, prefault=false, lock_memory=false))]
    fn open(
        py: Python<'_>,
        name: &str,
        shape: Option<&Bound<'_, PyAny>>,
        dtype: Option<&Bound<'_, PyAny>>,
        prefault: bool,
        lock_memory: bool,
    ) -> PyResult<Self> {
        let options = options::open(py, shape, dtype, prefault, lock_memory)?;
        let consumer = py
            .detach(|| shm::QueueConsumer::open_with(name, options))
            .py(py)?;
        Ok(QueueConsumer {
            info: LaneInfo::new(py, name, consumer.spec(), consumer.metadata())?,
            handle: Handle::new(Reader::new(consumer), "QueueConsumer"),
            escaped: Mutex::new(None),
        })
    }

    /// Removes the next item into `out` or a new array, waiting for one (`timeout`,
    /// `deadline` or without limit): `Timeout`, or `WriterGone` once the producer is
    /// gone and the queue drained.
    #[pyo3(signature = (out=None, *, timeout=None, deadline=None))]
    fn pop(
        &self,
        py: Python<'_>,
        out: Option<&Bound<'_, PyAny>>,
        timeout: Option<f64>,
        deadline: Option<f64>,
    ) -> PyResult<Frame> {
        self.settle(py)?;
        let deadline = Deadline::from_args(timeout, deadline)?;
        reader::receive(py, &self.handle, &self.info, out, deadline)
    }

    /// `pop` without waiting: `Empty` if no item is waiting.
    #[pyo3(signature = (out=None))]
    fn try_pop(&self, py: Python<'_>, out: Option<&Bound<'_, PyAny>>) -> PyResult<Frame> {
        self.settle(py)?;
        reader::receive(py, &self.handle, &self.info, out, Deadline::Now)
    }

    /// `await consumer.pop_async(timeout=...)`: `pop` as an awaitable; cancelling
    /// it loses no item.
    #[pyo3(signature = (out=None, *, timeout=None))]
    fn pop_async<'py>(
        slf: &Bound<'py, Self>,
        out: Option<Bound<'py, PyAny>>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        crate::aio::receive(slf.as_any(), out, timeout)
    }

    /// A zero-copy pop: `with consumer.loan(trust_peers=True) as frame:` lends the
    /// next item in place (`frame.array` is a read-only numpy array over the shared
    /// slot) and removes it when the block ends. If the block raises, or a view of
    /// the array outlives it (`LoanEscaped`), the item stays at the head.
    #[pyo3(signature = (*, trust_peers=false, timeout=None, deadline=None))]
    fn loan(
        slf: &Bound<'_, Self>,
        trust_peers: bool,
        timeout: Option<f64>,
        deadline: Option<f64>,
    ) -> PyResult<ConsumerLoan> {
        crate::loan::require_trust(trust_peers)?;
        Ok(ConsumerLoan::new(
            slf.clone().unbind(),
            Deadline::from_args(timeout, deadline)?,
        ))
    }

    /// Whether the producer's process is alive.
    #[getter]
    fn producer_alive(&self, py: Python<'_>) -> PyResult<bool> {
        self.handle
            .run(py, |reader| Ok(reader.lane.producer_alive()))
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// The next item, waiting without limit; the iteration ends once the producer
    /// is gone and the queue drained.
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Frame>> {
        self.settle(py)?;
        crate::reader::next_or_end(py, &self.handle, &self.info)
    }

    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __anext__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        crate::aio::next_item(slf.as_any())
    }

    fn _fill(&self, py: Python<'_>, timeout: f64) -> PyResult<bool> {
        self.settle(py)?;
        reader::fill(py, &self.handle, &self.info, timeout)
    }

    fn _poll(&self, py: Python<'_>) -> PyResult<bool> {
        self.settle(py)?;
        reader::poll(py, &self.handle, &self.info)
    }

    #[pyo3(signature = (out=None))]
    fn _take(&self, py: Python<'_>, out: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Frame>> {
        self.settle(py)?;
        reader::take(py, &self.handle, &self.info, out)
    }
}
