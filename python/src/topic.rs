//! Topics: broadcast to lossless subscribers (which hold the publisher back) and
//! lossy ones (which skip), with history.

use crate::arrays::{spec_of, Bytes, LaneInfo};
use crate::common::lane_common;
use crate::errors::IntoPy;
use crate::frame::Frame;
use crate::handle::{Deadline, Handle};
use crate::options;
use crate::reader::{self, Reader, Receive};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use tensorlane_shm::{self as shm, Frame as LaneFrame, LaneError, Mode, SubscribeOptions, Wait};

impl Receive for shm::TopicSubscriber {
    fn receive(&mut self, out: &mut [u8], wait: Wait) -> Result<LaneFrame, LaneError> {
        match wait {
            Wait::Never => self.try_recv(out),
            Wait::Until(None) => self.recv(out),
            Wait::Until(Some(deadline)) => self.recv_deadline(out, deadline),
        }
    }
}

/// The publisher of a topic: `TopicPublisher.create(name, shape, dtype, capacity,
/// max_subscribers)`, then `publish(array)` (waits while a lossless subscriber is a
/// full ring behind).
///
/// ```python
/// import numpy as np, tensorlane
/// pose = tensorlane.TopicPublisher.create("pose", (6,), np.float64, capacity=64)
/// pose.publish(np.zeros(6), timeout=0.01)
/// ```
#[pyclass(frozen, module = "tensorlane")]
pub(crate) struct TopicPublisher {
    info: LaneInfo,
    handle: Handle<shm::TopicPublisher>,
}

impl TopicPublisher {
    fn wrap(py: Python<'_>, publisher: shm::TopicPublisher, name: &str) -> PyResult<Self> {
        Ok(TopicPublisher {
            info: LaneInfo::new(py, name, publisher.spec(), publisher.metadata())?,
            handle: Handle::new(publisher, "TopicPublisher"),
        })
    }

    fn publish_until(
        &self,
        py: Python<'_>,
        array: &Bound<'_, PyAny>,
        deadline: Deadline,
    ) -> PyResult<u64> {
        let array = self.info.input(py, array)?;
        let bytes = Bytes::of(&array);
        self.handle.wait(py, deadline, move |publisher, wait| {
            // SAFETY: `array` is alive for the call (held above); see the module
            // rule of `arrays`.
            let tensor = unsafe { bytes.get() };
            match wait {
                Wait::Never => publisher.try_publish(tensor),
                Wait::Until(None) => publisher.publish(tensor),
                Wait::Until(Some(deadline)) => publisher.publish_deadline(tensor, deadline),
            }
        })
    }
}

lane_common!(TopicPublisher);

#[pymethods]
impl TopicPublisher {
    /// Creates topic `name` of tensors of `shape` and `dtype`: a ring of `capacity`
    /// items (the history) and room for `max_subscribers` subscribers.
    #[staticmethod]
    #[pyo3(signature = (name, shape, dtype, capacity=16, max_subscribers=8, *, metadata=None,
                        clock="monotonic", group_access=false, prefault=false, lock_memory=false))]
    #[allow(clippy::too_many_arguments)]
    fn create(
        py: Python<'_>,
        name: &str,
        shape: &Bound<'_, PyAny>,
        dtype: &Bound<'_, PyAny>,
        capacity: usize,
        max_subscribers: usize,
        metadata: Option<&Bound<'_, PyDict>>,
        clock: &str,
        group_access: bool,
        prefault: bool,
        lock_memory: bool,
    ) -> PyResult<Self> {
        let spec = spec_of(py, shape, dtype)?;
        let options = options::create(py, metadata, clock, group_access, prefault, lock_memory)?;
        let publisher = py
            .detach(|| {
                shm::TopicPublisher::create_with(name, &spec, capacity, max_subscribers, options)
            })
            .py(py)?;
        Self::wrap(py, publisher, name)
    }

    /// Becomes the publisher of existing topic `name`, whose publisher is gone.
    #[staticmethod]
    #[pyo3(signature = (name, *, prefault=false, lock_memory=false))]
    fn take_over(py: Python<'_>, name: &str, prefault: bool, lock_memory: bool) -> PyResult<Self> {
        let options = options::open(py, None, None, prefault, lock_memory)?;
        let publisher = py
            .detach(|| shm::TopicPublisher::take_over_with(name, options))
            .py(py)?;
        Self::wrap(py, publisher, name)
    }

    /// Publishes one tensor, waiting while a lossless subscriber is a full ring
    /// behind (`timeout`, `deadline` or without limit; a dead one is evicted);
    /// returns its sequence number.
    #[pyo3(signature = (array, *, timeout=None, deadline=None))]
    fn publish(
        &self,
        py: Python<'_>,
        array: &Bound<'_, PyAny>,
        timeout: Option<f64>,
        deadline: Option<f64>,
    ) -> PyResult<u64> {
        self.publish_until(py, array, Deadline::from_args(timeout, deadline)?)
    }

    /// `publish` without waiting: `Full` if a lossless subscriber holds it back.
    fn try_publish(&self, py: Python<'_>, array: &Bound<'_, PyAny>) -> PyResult<u64> {
        self.publish_until(py, array, Deadline::Now)
    }

    /// Lossless subscribers this publisher evicted (presumed dead) so far.
    #[getter]
    fn evicted(&self, py: Python<'_>) -> PyResult<u64> {
        self.handle.run(py, |publisher| Ok(publisher.evicted()))
    }
}

/// A subscriber of a topic: `TopicSubscriber.open(name)` (lossless) or
/// `open(name, lossy=True, max_lag=1)`, then `recv()`, `for frame in subscriber`
/// or `async for frame in subscriber`.
///
/// ```python
/// import tensorlane
/// with tensorlane.TopicSubscriber.open("pose", lossy=True) as display:
///     frame = display.recv(timeout=1.0)
/// ```
#[pyclass(frozen, module = "tensorlane")]
pub(crate) struct TopicSubscriber {
    info: LaneInfo,
    handle: Handle<Reader<shm::TopicSubscriber>>,
}

lane_common!(TopicSubscriber);

#[pymethods]
impl TopicSubscriber {
    /// Joins topic `name`: lossless (the publisher waits for it) unless `lossy`
    /// (stays at most `max_lag` items behind the newest, skipping and counting
    /// older ones); `history` asks to start that many items back. With `shape` and
    /// `dtype`, checks the tensor.
    #[staticmethod]
    #[pyo3(signature = (name, *, lossy=false, max_lag=1, history=0, shape=None, dtype=None,
                        prefault=false, lock_memory=false))]
    #[allow(clippy::too_many_arguments)]
    fn open(
        py: Python<'_>,
        name: &str,
        lossy: bool,
        max_lag: u64,
        history: u64,
        shape: Option<&Bound<'_, PyAny>>,
        dtype: Option<&Bound<'_, PyAny>>,
        prefault: bool,
        lock_memory: bool,
    ) -> PyResult<Self> {
        let options = options::open(py, shape, dtype, prefault, lock_memory)?;
        let mode = if lossy {
            Mode::Lossy { max_lag }
        } else {
            Mode::Lossless
        };
        let subscribe = SubscribeOptions::new(mode).with_history(history);
        let subscriber = py
            .detach(|| shm::TopicSubscriber::open_with(name, subscribe, options))
            .py(py)?;
        Ok(TopicSubscriber {
            info: LaneInfo::new(py, name, subscriber.spec(), subscriber.metadata())?,
            handle: Handle::new(Reader::new(subscriber), "TopicSubscriber"),
        })
    }

    /// The next item into `out` or a new array, waiting for one (`timeout`,
    /// `deadline` or without limit): `Timeout`, `Evicted`, or `WriterGone` once the
    /// publisher is gone and everything was received.
    #[pyo3(signature = (out=None, *, timeout=None, deadline=None))]
    fn recv(
        &self,
        py: Python<'_>,
        out: Option<&Bound<'_, PyAny>>,
        timeout: Option<f64>,
        deadline: Option<f64>,
    ) -> PyResult<Frame> {
        let deadline = Deadline::from_args(timeout, deadline)?;
        reader::receive(py, &self.handle, &self.info, out, deadline)
    }

    /// `recv` without waiting: `Empty` if nothing new is there.
    #[pyo3(signature = (out=None))]
    fn try_recv(&self, py: Python<'_>, out: Option<&Bound<'_, PyAny>>) -> PyResult<Frame> {
        reader::receive(py, &self.handle, &self.info, out, Deadline::Now)
    }

    /// `await subscriber.recv_async(timeout=...)`: `recv` as an awaitable;
    /// cancelling it loses no item.
    #[pyo3(signature = (out=None, *, timeout=None))]
    fn recv_async<'py>(
        slf: &Bound<'py, Self>,
        out: Option<Bound<'py, PyAny>>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        crate::aio::receive(slf.as_any(), out, timeout)
    }

    /// The last `k` items still in the ring, oldest first, as frames whose arrays
    /// are rows of one new array of shape `(k, *shape)` (fewer if fewer exist).
    /// Does not move this subscriber.
    fn last_k(&self, py: Python<'_>, k: usize) -> PyResult<Vec<Frame>> {
        if k == 0 {
            return Ok(Vec::new());
        }
        let mut shape = vec![k];
        shape.extend_from_slice(&self.info.shape);
        let numpy = py.import("numpy")?;
        let rows = numpy
            .call_method1("empty", (shape, self.info.dtype.bind(py)))?
            .cast_into::<numpy::PyUntypedArray>()?;
        let bytes = Bytes::of(&rows);
        let frames = self.handle.run(py, move |reader| {
            // SAFETY: `rows` is a new array this call holds, of `k` tensors.
            reader.lane.last_k(k, unsafe { bytes.get_mut() })
        })?;
        frames
            .into_iter()
            .enumerate()
            .map(|(i, frame)| Ok(Frame::new(frame, rows.get_item(i)?.unbind())))
            .collect()
    }

    /// Items this subscriber missed so far (lossy skips and history lost at join).
    #[getter]
    fn missed(&self, py: Python<'_>) -> PyResult<u64> {
        self.handle.run(py, |reader| Ok(reader.lane.missed()))
    }

    /// Whether the publisher waits for this subscriber.
    #[getter]
    fn is_lossless(&self, py: Python<'_>) -> PyResult<bool> {
        self.handle.run(py, |reader| Ok(reader.lane.is_lossless()))
    }

    /// History asked for at join that was already overwritten.
    #[getter]
    fn lost_at_join(&self, py: Python<'_>) -> PyResult<u64> {
        self.handle.run(py, |reader| Ok(reader.lane.lost_at_join()))
    }

    /// Sequence number of the newest item published (0 if none).
    #[getter]
    fn published(&self, py: Python<'_>) -> PyResult<u64> {
        self.handle.run(py, |reader| Ok(reader.lane.published()))
    }

    /// Whether the publisher's process is alive.
    #[getter]
    fn publisher_alive(&self, py: Python<'_>) -> PyResult<bool> {
        self.handle
            .run(py, |reader| Ok(reader.lane.publisher_alive()))
    }

    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// The next item, waiting without limit; the iteration ends once the publisher
    /// is gone and everything was received.
    fn __next__(&self, py: Python<'_>) -> PyResult<Option<Frame>> {
        reader::next_or_end(py, &self.handle, &self.info)
    }

    fn __aiter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __anext__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        crate::aio::next_item(slf.as_any())
    }

    fn _fill(&self, py: Python<'_>, timeout: f64) -> PyResult<bool> {
        reader::fill(py, &self.handle, &self.info, timeout)
    }

    fn _poll(&self, py: Python<'_>) -> PyResult<bool> {
        reader::poll(py, &self.handle, &self.info)
    }

    #[pyo3(signature = (out=None))]
    fn _take(&self, py: Python<'_>, out: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Frame>> {
        reader::take(py, &self.handle, &self.info, out)
    }
}
