//! asyncio awaitables, written in Python (`tensorlane/_aio.py`) over the handles'
//! `_poll` (one attempt on the event loop), `_fill` (a bounded wait on a worker
//! thread) and `_take` steps.

use pyo3::prelude::*;

/// The coroutine `tensorlane._aio.receive(handle, out, timeout)`.
pub(crate) fn receive<'py>(
    handle: &Bound<'py, PyAny>,
    out: Option<Bound<'py, PyAny>>,
    timeout: Option<f64>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = handle.py();
    py.import("tensorlane._aio")?
        .getattr("receive")?
        .call1((handle, out, timeout))
}

/// The coroutine `tensorlane._aio.next_item(handle)`: the next item, or
/// `StopAsyncIteration` once the writer side is gone and everything was read.
pub(crate) fn next_item<'py>(handle: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let py = handle.py();
    py.import("tensorlane._aio")?
        .getattr("next_item")?
        .call1((handle,))
}
