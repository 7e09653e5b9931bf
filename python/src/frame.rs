//! What every read returns: the tensor as a numpy array and the frame's numbering.

use pyo3::prelude::*;
use pyo3::types::PyDict;

/// One item read from a lane: `array` (numpy) with its sequence number, the frame id
/// its writer gave it, its timestamp and how many items this reader missed before
/// it. `numpy.asarray(frame)` and `torch.from_dlpack(frame)` give the array without
/// a copy.
#[pyclass(frozen, module = "tensorlane")]
pub(crate) struct Frame {
    /// The tensor (the caller's `out` array when one was given).
    #[pyo3(get)]
    array: Py<PyAny>,
    /// Sequence number: the n-th item written to the lane has `seq == n`.
    #[pyo3(get)]
    seq: u64,
    /// Frame id given by the writer (by default counting from 1).
    #[pyo3(get)]
    frame_id: u64,
    /// Write time in nanoseconds on the lane's clock (0 on an unstamped lane).
    #[pyo3(get)]
    timestamp_ns: u64,
    /// Items this reader did not get between its previous item and this one.
    #[pyo3(get)]
    missed: u64,
}

impl Frame {
    pub(crate) fn new(frame: tensorlane_shm::Frame, array: Py<PyAny>) -> Self {
        Frame {
            array,
            seq: frame.seq,
            frame_id: frame.frame_id,
            timestamp_ns: frame.timestamp_ns,
            missed: frame.missed,
        }
    }
}

#[pymethods]
impl Frame {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let array = self.array.bind(py);
        Ok(format!(
            "Frame(seq={}, frame_id={}, timestamp_ns={}, missed={}, shape={}, dtype={})",
            self.seq,
            self.frame_id,
            self.timestamp_ns,
            self.missed,
            array.getattr("shape")?.repr()?,
            array.getattr("dtype")?
        ))
    }

    /// The array (numpy's `__array__` protocol); `copy=True` or another `dtype`
    /// converts as `numpy.asarray` does.
    #[pyo3(signature = (dtype=None, copy=None))]
    fn __array__<'py>(
        &self,
        py: Python<'py>,
        dtype: Option<Bound<'py, PyAny>>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let array = self.array.bind(py);
        if dtype.is_none() && copy != Some(true) {
            return Ok(array.clone());
        }
        let kwargs = PyDict::new(py);
        kwargs.set_item("dtype", dtype)?;
        kwargs.set_item("copy", copy)?;
        py.import("numpy")?
            .getattr("array")?
            .call((array,), Some(&kwargs))
    }

    /// The array's DLPack capsule (for `torch.from_dlpack(frame)`, no copy).
    #[pyo3(signature = (**kwargs))]
    fn __dlpack__<'py>(
        &self,
        py: Python<'py>,
        kwargs: Option<&Bound<'py, PyDict>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        self.array.bind(py).call_method("__dlpack__", (), kwargs)
    }

    /// The array's DLPack device (the CPU).
    fn __dlpack_device__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        self.array.bind(py).call_method0("__dlpack_device__")
    }
}
