//! A lane handle shared with Python: the Rust handle behind a mutex, used only with
//! the GIL released, and the waits cut into slices so Ctrl-C and asyncio get in.
//!
//! # Invariants
//! - The mutex is locked only inside `Python::detach` (the GIL released), and the
//!   closures run under it touch no Python object: a thread holding the lock never
//!   waits for the GIL, so a thread holding the GIL and waiting for the lock cannot
//!   deadlock with it.
//! - A blocking call waits in slices of at most [`SLICE`]; between two slices it
//!   takes the GIL back and runs Python's signal handlers, so Ctrl-C raises
//!   `KeyboardInterrupt` within a slice. A slice that ends without a result
//!   (`Timeout` before the caller's deadline) consumed nothing.
//! - `None` inside the mutex is a closed handle: every call on it raises `ValueError`
//!   (as on a closed file), and closing twice is allowed.

use crate::errors::lane_error;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use tensorlane_shm::{Clock, LaneError, Wait};

/// Longest uninterrupted wait: Ctrl-C is seen within this (plus one copy).
pub(crate) const SLICE: Duration = Duration::from_millis(50);

/// A Rust lane handle owned by a Python object.
pub(crate) struct Handle<T> {
    inner: Mutex<Option<T>>,
    what: &'static str,
}

impl<T: Send> Handle<T> {
    pub(crate) fn new(inner: T, what: &'static str) -> Self {
        Handle {
            inner: Mutex::new(Some(inner)),
            what,
        }
    }

    /// Runs `f` on the handle with the GIL released.
    pub(crate) fn run<R: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut T) -> Result<R, LaneError> + Send,
    ) -> PyResult<R> {
        let result = py.detach(|| {
            // A panic under the lock (none is expected: lane calls report errors)
            // leaves the handle usable; its state is the lane's, in shared memory.
            let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            guard.as_mut().map(f)
        });
        match result {
            Some(result) => result.map_err(|e| lane_error(py, e)),
            None => Err(self.closed()),
        }
    }

    /// Runs `f` on the handle with the GIL released if no other thread holds the
    /// handle now (`None` if one does): for callers that must not wait, such as an
    /// event loop.
    pub(crate) fn try_run<R: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut T) -> Result<R, LaneError> + Send,
    ) -> PyResult<Option<R>> {
        let result = py.detach(|| {
            let mut guard = match self.inner.try_lock() {
                Ok(guard) => guard,
                Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) => return Some(Ok(None)),
            };
            guard.as_mut().map(|t| f(t).map(Some))
        });
        match result {
            Some(result) => result.map_err(|e| lane_error(py, e)),
            None => Err(self.closed()),
        }
    }

    fn closed(&self) -> PyErr {
        PyValueError::new_err(format!("I/O operation on a closed {}", self.what))
    }

    /// Runs `attempt` until it gives a result or `deadline` passes (`Timeout`),
    /// in slices, checking for signals between them. `Deadline::Now` tries once
    /// (`Empty` or `Full` when nothing is ready); a deadline already past (such as
    /// `timeout=0`) also tries once, then gives `Timeout`.
    pub(crate) fn wait<R: Send>(
        &self,
        py: Python<'_>,
        deadline: Deadline,
        attempt: impl Fn(&mut T, Wait) -> Result<R, LaneError> + Send + Sync,
    ) -> PyResult<R> {
        let until = match deadline {
            Deadline::Now => return self.run(py, |t| attempt(t, Wait::Never)),
            Deadline::Never => None,
            Deadline::At(at) => Some(at),
        };
        loop {
            let now = Instant::now();
            let slice_end = now + SLICE;
            let (end, last) = match until {
                Some(at) if at <= slice_end => (at, true),
                _ => (slice_end, false),
            };
            // A slice that ends without a result before the caller's deadline goes on:
            // `Timeout`, or `Stalled` (every attempt in the slice raced a write).
            match self.run(py, |t| match attempt(t, Wait::Until(Some(end))) {
                Err(LaneError::Timeout) | Err(LaneError::Stalled) if !last => Ok(None),
                other => other.map(Some),
            }) {
                Ok(Some(r)) => return Ok(r),
                Ok(None) => py.check_signals()?,
                Err(e) => return Err(e),
            }
        }
    }

    /// Drops the Rust handle (releasing its role and mapping once nothing else
    /// holds it).
    pub(crate) fn close(&self, py: Python<'_>) {
        let handle = py.detach(|| {
            let mut guard = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            guard.take()
        });
        drop(handle);
    }
}

/// When a blocking call gives up.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Deadline {
    /// One attempt (`try_` calls).
    Now,
    /// Never (`timeout=None` and no `deadline`).
    Never,
    /// At this instant.
    At(Instant),
}

impl Deadline {
    /// From Python's `timeout` (seconds from now) and `deadline` (a
    /// `time.monotonic()` reading): the earlier of the two, `Never` without either.
    pub(crate) fn from_args(timeout: Option<f64>, deadline: Option<f64>) -> PyResult<Self> {
        // A limit beyond the clock's range is no limit.
        let mut at: Option<Instant> = None;
        let now = Instant::now();
        if let Some(timeout) = timeout {
            at = now.checked_add(seconds(timeout, "timeout")?);
        }
        if let Some(deadline) = deadline {
            if deadline.is_nan() {
                return Err(PyValueError::new_err(
                    "deadline must be a time.monotonic() reading, not nan",
                ));
            }
            // Python's time.monotonic() and Rust's Instant read CLOCK_MONOTONIC.
            let now_s = Clock::Monotonic.now_ns() as f64 / 1e9;
            if let Some(until) = now.checked_add(seconds((deadline - now_s).max(0.0), "deadline")?)
            {
                at = Some(at.map_or(until, |t| t.min(until)));
            }
        }
        // A limit already past still makes one attempt, and then `Timeout`.
        Ok(at.map_or(Deadline::Never, Deadline::At))
    }
}

fn seconds(value: f64, what: &str) -> PyResult<Duration> {
    if value.is_nan() || value < 0.0 {
        return Err(PyValueError::new_err(format!(
            "{what} must be a non-negative number of seconds, not {value}"
        )));
    }
    // Beyond `Duration`'s range: the largest, which no `Instant` can add.
    Ok(Duration::try_from_secs_f64(value).unwrap_or(Duration::MAX))
}
