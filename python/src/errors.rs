//! Rust errors as Python exceptions: one class per error users handle differently,
//! all under `tensorlane.LaneError` (defined in `tensorlane/_errors.py`, where each
//! class also derives from the built-in exception Python code already catches:
//! `Timeout` is a `TimeoutError`, `NotFound` a `FileNotFoundError`, ...).

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyModule;
use tensorlane_shm::LaneError;

static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// The exception class `name` of `tensorlane._errors`, raised with `message`.
pub(crate) fn raise(py: Python<'_>, class: &str, message: String) -> PyErr {
    let module = ERRORS.get_or_try_init(py, || {
        PyModule::import(py, "tensorlane._errors").map(Bound::unbind)
    });
    match module.and_then(|m| m.bind(py).getattr(class)) {
        Ok(class) => PyErr::from_value(match class.call1((message,)) {
            Ok(instance) => instance,
            Err(e) => return e,
        }),
        Err(e) => e,
    }
}

/// The class of `tensorlane._errors` that stands for `error`.
pub(crate) fn class_of(error: &LaneError) -> &'static str {
    match error {
        LaneError::Name(_)
        | LaneError::Spec(_)
        | LaneError::Geometry(_)
        | LaneError::TooLarge
        | LaneError::Metadata(_) => "InvalidArgument",
        LaneError::Exists(_) => "AlreadyExists",
        LaneError::NotFound(_) => "NotFound",
        LaneError::PermissionDenied(_) | LaneError::ForeignOwner { .. } => "PermissionDenied",
        LaneError::NoSpace { .. } => "NoSpace",
        LaneError::MemoryLock { .. } => "MemoryLockRefused",
        LaneError::WrongKind { .. } => "WrongKind",
        LaneError::WrongSpec { .. }
        | LaneError::WrongDType { .. }
        | LaneError::WrongCount { .. }
        | LaneError::WrongSize { .. }
        | LaneError::InvalidBool { .. } => "WrongSpec",
        LaneError::RoleTaken { .. } => "RoleTaken",
        LaneError::Corrupt(_)
        | LaneError::Header { .. }
        | LaneError::Truncated { .. }
        | LaneError::NotRegular(_) => "Corrupt",
        LaneError::TableFull(_) => "TableFull",
        LaneError::Evicted => "Evicted",
        LaneError::WriterGone => "WriterGone",
        LaneError::Empty => "Empty",
        LaneError::Full => "Full",
        LaneError::Timeout => "Timeout",
        LaneError::Stalled => "Stalled",
        LaneError::Io { .. } => "LaneOSError",
        LaneError::Other(e) if e.is::<LoanOpen>() => "LoanOpen",
        _ => "LaneError",
    }
}

/// `error` as the Python exception of its class, with the Rust message.
pub(crate) fn lane_error(py: Python<'_>, error: LaneError) -> PyErr {
    raise(py, class_of(&error), error.to_string())
}

/// Maps a lane result into a Python one.
pub(crate) trait IntoPy<T> {
    /// The result, its error raised as its Python class.
    fn py(self, py: Python<'_>) -> PyResult<T>;
}

impl<T> IntoPy<T> for Result<T, LaneError> {
    fn py(self, py: Python<'_>) -> PyResult<T> {
        self.map_err(|e| lane_error(py, e))
    }
}

/// Whether `error` is an instance of class `class` of `tensorlane._errors`.
pub(crate) fn is_class(py: Python<'_>, error: &PyErr, class: &str) -> bool {
    ERRORS
        .get(py)
        .and_then(|m| m.bind(py).getattr(class).ok())
        .is_some_and(|class| error.matches(py, class).unwrap_or(false))
}

/// A call on a handle whose loan is open (or escaped).
#[derive(Debug)]
pub(crate) struct LoanOpen;

impl std::fmt::Display for LoanOpen {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "a loan of this handle is open: finish its with block before another call on \
             the handle",
        )
    }
}

impl std::error::Error for LoanOpen {}

/// The error of a call made while a loan of its handle is open.
pub(crate) fn loan_open() -> LaneError {
    LaneError::Other(Box::new(LoanOpen))
}
