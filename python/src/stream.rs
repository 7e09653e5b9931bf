//! Streams: the latest value, one writer, any number of readers.

use crate::arrays::{spec_of, Bytes, LaneInfo};
use crate::common::lane_common;
use crate::errors::IntoPy;
use crate::frame::Frame;
use crate::handle::{Deadline, Handle};
use crate::options;
use crate::reader::{self, Reader, Receive};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use tensorlane_shm::{self as shm, Frame as LaneFrame, LaneError, Wait};

impl Receive for shm::StreamReader {
    fn receive(&mut self, out: &mut [u8], wait: Wait) -> Result<LaneFrame, LaneError> {
        match wait {
            Wait::Never => self.try_read_new(out),
            Wait::Until(None) => self.read_new(out),
            Wait::Until(Some(deadline)) => self.read_new_deadline(out, deadline),
        }
    }

    const LATEST_WINS: bool = true;
}

/// The writer of a stream: `StreamWriter.create(name, shape, dtype)`, then
/// `write(array)`. Readers always get the latest value.
///
/// ```python
/// import numpy as np, tensorlane
/// with tensorlane.StreamWriter.create("camera", (480, 640), np.float32) as camera:
///     camera.write(np.zeros((480, 640), np.float32))
/// ```
#[pyclass(frozen, module = "tensorlane")]
pub(crate) struct StreamWriter {
    info: LaneInfo,
    handle: Handle<shm::StreamWriter>,
}

impl StreamWriter {
    fn wrap(py: Python<'_>, writer: shm::StreamWriter, name: &str) -> PyResult<Self> {
        Ok(StreamWriter {
            info: LaneInfo::new(py, name, writer.spec(), writer.metadata())?,
            handle: Handle::new(writer, "StreamWriter"),
        })
    }
}

lane_common!(StreamWriter);

#[pymethods]
impl StreamWriter {
    /// Creates stream `name` of tensors of `shape` and `dtype`, with `slots` slots
    /// (2 or more keep the previous value readable if the writer dies mid-write).
    #[staticmethod]
    #[pyo3(signature = (name, shape, dtype, slots=3, *, metadata=None, clock="monotonic",
                        group_access=false, prefault=false, lock_memory=false))]
    #[allow(clippy::too_many_arguments)]
    fn create(
        py: Python<'_>,
        name: &str,
        shape: &Bound<'_, PyAny>,
        dtype: &Bound<'_, PyAny>,
        slots: usize,
        metadata: Option<&Bound<'_, PyDict>>,
        clock: &str,
        group_access: bool,
        prefault: bool,
        lock_memory: bool,
    ) -> PyResult<Self> {
        let spec = spec_of(py, shape, dtype)?;
        let options = options::create(py, metadata, clock, group_access, prefault, lock_memory)?;
        let writer = py
            .detach(|| shm::StreamWriter::create_with(name, &spec, slots, options))
            .py(py)?;
        Self::wrap(py, writer, name)
    }

    /// Becomes the writer of existing stream `name`, whose writer is gone
    /// (`RoleTaken` if it is alive).
    #[staticmethod]
    #[pyo3(signature = (name, *, prefault=false, lock_memory=false))]
    fn take_over(py: Python<'_>, name: &str, prefault: bool, lock_memory: bool) -> PyResult<Self> {
        let options = options::open(py, None, None, prefault, lock_memory)?;
        let writer = py
            .detach(|| shm::StreamWriter::take_over_with(name, options))
            .py(py)?;
        Self::wrap(py, writer, name)
    }

    /// Writes one tensor (an array or buffer of the lane's dtype and shape); returns
    /// its sequence number. Never blocks. `frame_id` defaults to counting from 1.
    #[pyo3(signature = (array, *, frame_id=None))]
    fn write(
        &self,
        py: Python<'_>,
        array: &Bound<'_, PyAny>,
        frame_id: Option<u64>,
    ) -> PyResult<u64> {
        let array = self.info.input(py, array)?;
        let bytes = Bytes::of(&array);
        self.handle.run(py, move |writer| {
            // SAFETY: `array` is alive for the call (held above); the module's rule
            // keeps other threads from writing it meanwhile.
            let tensor = unsafe { bytes.get() };
            match frame_id {
                Some(id) => writer.write_frame(tensor, id),
                None => writer.write(tensor),
            }
        })
    }

    /// Sequence number the next write will get.
    #[getter]
    fn next_seq(&self, py: Python<'_>) -> PyResult<u64> {
        self.handle.run(py, |writer| Ok(writer.next_seq()))
    }
}

/// A reader of a stream: `StreamReader.open(name)`, then `read()` for the latest
/// value or `read_new()` to wait for a newer one.
///
/// ```python
/// import tensorlane
/// with tensorlane.StreamReader.open("camera") as viewer:
///     frame = viewer.read_new(timeout=1.0)
///     print(frame.seq, frame.array.shape)
/// ```
#[pyclass(frozen, module = "tensorlane")]
pub(crate) struct StreamReader {
    info: LaneInfo,
    handle: Handle<Reader<shm::StreamReader>>,
}

lane_common!(StreamReader);

#[pymethods]
impl StreamReader {
    /// Opens stream `name` for reading; with `shape` and `dtype`, fails
    /// (`WrongSpec`) if the lane carries another tensor.
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
        let reader = py
            .detach(|| shm::StreamReader::open_with(name, options))
            .py(py)?;
        Ok(StreamReader {
            info: LaneInfo::new(py, name, reader.spec(), reader.metadata())?,
            handle: Handle::new(Reader::new(reader), "StreamReader"),
        })
    }

    /// The latest value, into `out` (an array of the lane's dtype and shape, filled
    /// and returned as `frame.array`) or a new array. `Empty` if nothing was written
    /// yet; `WriterGone` never (the last value stays readable).
    #[pyo3(signature = (out=None))]
    fn read(&self, py: Python<'_>, out: Option<&Bound<'_, PyAny>>) -> PyResult<Frame> {
        let array = self.info.output(py, out)?;
        let bytes = Bytes::of(&array);
        let frame = self.handle.run(py, move |reader| {
            reader.drop_pending();
            // SAFETY: `array` is alive and writeable (checked); see the module rule.
            reader.lane.read(unsafe { bytes.get_mut() })
        })?;
        Ok(Frame::new(frame, array.into_any().unbind()))
    }

    /// The next value newer than the last one this reader returned, waiting for it
    /// (`timeout` seconds, or until `deadline`, a `time.monotonic()` reading, or
    /// without limit): `Timeout`, or `WriterGone` once the writer is gone.
    #[pyo3(signature = (out=None, *, timeout=None, deadline=None))]
    fn read_new(
        &self,
        py: Python<'_>,
        out: Option<&Bound<'_, PyAny>>,
        timeout: Option<f64>,
        deadline: Option<f64>,
    ) -> PyResult<Frame> {
        let deadline = Deadline::from_args(timeout, deadline)?;
        reader::receive(py, &self.handle, &self.info, out, deadline)
    }

    /// `read_new` without waiting: `Empty` if there is nothing new.
    #[pyo3(signature = (out=None))]
    fn try_read_new(&self, py: Python<'_>, out: Option<&Bound<'_, PyAny>>) -> PyResult<Frame> {
        reader::receive(py, &self.handle, &self.info, out, Deadline::Now)
    }

    /// `await reader.read_new_async(timeout=...)`: `read_new` as an awaitable that
    /// never blocks the event loop and can be cancelled without losing a value.
    #[pyo3(signature = (out=None, *, timeout=None))]
    fn read_new_async<'py>(
        slf: &Bound<'py, Self>,
        out: Option<Bound<'py, PyAny>>,
        timeout: Option<f64>,
    ) -> PyResult<Bound<'py, PyAny>> {
        crate::aio::receive(slf.as_any(), out, timeout)
    }

    /// Sequence number of the latest value written (0 if none).
    #[getter]
    fn published(&self, py: Python<'_>) -> PyResult<u64> {
        self.handle.run(py, |reader| Ok(reader.lane.published()))
    }

    /// Whether the writer's process is alive.
    #[getter]
    fn writer_alive(&self, py: Python<'_>) -> PyResult<bool> {
        self.handle.run(py, |reader| Ok(reader.lane.writer_alive()))
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
