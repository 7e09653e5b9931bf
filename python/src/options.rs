//! Python keyword arguments as the lanes' create and open options.

use crate::errors::raise;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use tensorlane_shm::{Clock, CreateOptions, OpenOptions, TensorSpec};

/// `CreateOptions` of `create(..., metadata=, clock=, group_access=, prefault=,
/// lock_memory=)`.
pub(crate) fn create(
    py: Python<'_>,
    metadata: Option<&Bound<'_, PyDict>>,
    clock: &str,
    group_access: bool,
    prefault: bool,
    lock_memory: bool,
) -> PyResult<CreateOptions> {
    let clock = match clock {
        "monotonic" => Clock::Monotonic,
        "realtime" => Clock::Realtime,
        "none" => Clock::None,
        other => {
            return Err(raise(
                py,
                "InvalidArgument",
                format!("clock must be 'monotonic', 'realtime' or 'none', not {other:?}"),
            ))
        }
    };
    let mut options = CreateOptions::new()
        .clock(clock)
        .group_access(group_access)
        .prefault(prefault)
        .lock_memory(lock_memory);
    if let Some(metadata) = metadata {
        let mut pairs = Vec::with_capacity(metadata.len());
        for (key, value) in metadata.iter() {
            let key: String = key
                .extract()
                .map_err(|_| raise(py, "InvalidArgument", "metadata keys must be str".into()))?;
            let value: String = value.extract().map_err(|_| {
                raise(
                    py,
                    "InvalidArgument",
                    format!("metadata[{key:?}] must be a str"),
                )
            })?;
            pairs.push((key, value));
        }
        options = options.metadata(pairs);
    }
    Ok(options)
}

/// `OpenOptions` of `open(..., shape=, dtype=, prefault=, lock_memory=)`: with a
/// shape and dtype, opening a lane of another tensor fails (`WrongSpec`).
pub(crate) fn open(
    py: Python<'_>,
    shape: Option<&Bound<'_, PyAny>>,
    dtype: Option<&Bound<'_, PyAny>>,
    prefault: bool,
    lock_memory: bool,
) -> PyResult<OpenOptions> {
    let mut options = OpenOptions::new()
        .prefault(prefault)
        .lock_memory(lock_memory);
    if let Some(spec) = expected(py, shape, dtype)? {
        options = options.expect(&spec);
    }
    Ok(options)
}

fn expected(
    py: Python<'_>,
    shape: Option<&Bound<'_, PyAny>>,
    dtype: Option<&Bound<'_, PyAny>>,
) -> PyResult<Option<TensorSpec>> {
    match (shape, dtype) {
        (None, None) => Ok(None),
        (Some(shape), Some(dtype)) => crate::arrays::spec_of(py, shape, dtype).map(Some),
        _ => Err(raise(
            py,
            "InvalidArgument",
            "give both shape and dtype to check the lane's tensor, or neither".into(),
        )),
    }
}
