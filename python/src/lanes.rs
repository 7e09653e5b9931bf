//! The lanes of the machine: listing, inspection, removal.

use crate::dtype;
use crate::errors::{raise, IntoPy};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use tensorlane_shm::segment::{self, WRITER_ROLE};
use tensorlane_shm::{LaneName, Segment};

fn lane_name(py: Python<'_>, name: &str) -> PyResult<LaneName> {
    LaneName::new(name).map_err(|e| raise(py, "InvalidArgument", e.to_string()))
}

/// Names of the lanes on this machine (the tensorlane objects of `/dev/shm`).
#[pyfunction]
pub(crate) fn list_lanes(py: Python<'_>) -> PyResult<Vec<String>> {
    let names = py
        .detach(segment::list)
        .map_err(|e| raise(py, "LaneOSError", format!("listing /dev/shm: {e}")))?;
    Ok(names.iter().map(|n| n.as_str().to_owned()).collect())
}

/// What lane `name` is, read from its header: a dict with `name`, `kind`
/// (`"stream"`, `"queue"` or `"topic"`), `dtype` (numpy), `shape`, `nbytes`,
/// `count` (slots or capacity), `subscribers`, `segment_bytes`, `creator_pid`,
/// `creator_uid`, `created_ns`, `clock`, `metadata` and `writer_alive`.
#[pyfunction]
pub(crate) fn inspect<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyDict>> {
    let lane = lane_name(py, name)?;
    let segment = py.detach(|| Segment::open(&lane)).py(py)?;
    let alive = py.detach(|| segment.role_alive(WRITER_ROLE)).py(py)?;
    let info = segment.info();
    let dict = PyDict::new(py);
    dict.set_item("name", name)?;
    dict.set_item("kind", info.kind.name())?;
    match dtype::to_numpy(py, info.spec.dtype()) {
        Ok(d) => dict.set_item("dtype", d)?,
        // A bfloat16 lane without ml_dtypes: its name still says what it is.
        Err(_) => dict.set_item("dtype", info.spec.dtype().name())?,
    }
    dict.set_item("shape", pyo3::types::PyTuple::new(py, info.spec.shape())?)?;
    dict.set_item("nbytes", info.spec.byte_len())?;
    dict.set_item("count", info.count)?;
    dict.set_item("subscribers", info.subscribers)?;
    dict.set_item("segment_bytes", info.segment_bytes)?;
    dict.set_item("creator_pid", info.creator_pid)?;
    dict.set_item("creator_uid", info.creator_uid)?;
    dict.set_item("created_ns", info.created_ns)?;
    dict.set_item("clock", info.clock.name())?;
    let metadata = PyDict::new(py);
    for (k, v) in info.metadata.iter() {
        metadata.set_item(k, v)?;
    }
    dict.set_item("metadata", metadata)?;
    dict.set_item("writer_alive", alive)?;
    Ok(dict)
}

/// Removes lane `name` from `/dev/shm` (processes that have it open keep their
/// mapping); `NotFound` if there is none.
#[pyfunction]
pub(crate) fn unlink(py: Python<'_>, name: &str) -> PyResult<()> {
    let lane = lane_name(py, name)?;
    py.detach(|| segment::unlink(&lane)).py(py)
}
