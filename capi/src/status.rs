//! Status codes, the mapping of Rust errors to them, panics caught at the boundary,
//! and the thread-local message of the last failure.
//!
//! Invariants: every `extern "C"` function of this crate runs its body through
//! `call`; a failure (an error or a caught panic) stores its message for
//! [`tl_last_error_message`] before the status is returned, and a success leaves the
//! stored message as it is. Storing the message never panics.

use std::any::Any;
use std::cell::RefCell;
use std::ffi::{c_char, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};
use tensorlane_shm::LaneError;

/// The result of every function: `TL_OK` (0) or why it failed. The groups are those
/// users handle differently (the Python package raises one exception class per
/// group); `TL_ERR_NULL_POINTER` and the codes after it are the boundary's own.
#[repr(i32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum tl_status {
    /// Success.
    TL_OK = 0,
    /// An invalid name, tensor spec, dtype code, geometry (slots, capacity,
    /// subscribers), timeout, option or metadata; or a lane too large.
    TL_ERR_INVALID_ARGUMENT = 1,
    /// A lane with this name already exists.
    TL_ERR_ALREADY_EXISTS = 2,
    /// No lane has this name (or, from `tl_metadata_get`, the lane's metadata has
    /// no such key).
    TL_ERR_NOT_FOUND = 3,
    /// The lane may not be opened by this user, or belongs to another user.
    TL_ERR_PERMISSION_DENIED = 4,
    /// Shared memory has no room for the lane.
    TL_ERR_NO_SPACE = 5,
    /// Locking the mapping in memory was refused (`RLIMIT_MEMLOCK`).
    TL_ERR_MEMORY_LOCK_REFUSED = 6,
    /// The lane is of another kind (a queue opened as a stream, ...).
    TL_ERR_WRONG_KIND = 7,
    /// The lane carries another tensor than the one expected.
    TL_ERR_WRONG_SPEC = 8,
    /// A live process holds the role (writer, producer, consumer, publisher).
    TL_ERR_ROLE_TAKEN = 9,
    /// The segment's header or shared state is invalid (corrupt, truncated, not a
    /// regular file).
    TL_ERR_CORRUPT = 10,
    /// Every subscriber entry of the topic is taken.
    TL_ERR_TABLE_FULL = 11,
    /// This subscriber was evicted by the publisher.
    TL_ERR_EVICTED = 12,
    /// The writer side (writer, producer, publisher) is gone and nothing more will
    /// come.
    TL_ERR_WRITER_GONE = 13,
    /// Nothing to read now (a try: timeout 0).
    TL_ERR_EMPTY = 14,
    /// No room now (a try: timeout 0).
    TL_ERR_FULL = 15,
    /// The timeout ran out.
    TL_ERR_TIMEOUT = 16,
    /// Every read attempt raced a write.
    TL_ERR_STALLED = 17,
    /// A system call failed.
    TL_ERR_OS = 18,
    /// An error no other code describes (the message says what).
    TL_ERR_OTHER = 19,
    /// A pointer argument that may not be NULL was NULL.
    TL_ERR_NULL_POINTER = 20,
    /// A typed pointer argument was not aligned for its type.
    TL_ERR_MISALIGNED = 21,
    /// A buffer's length is not the lane's tensor bytes (or, for a string copied
    /// out, too short: the `needed` out-parameter says how long it must be).
    TL_ERR_BUFFER_SIZE = 22,
    /// The handle was closed (or never opened).
    TL_ERR_CLOSED = 23,
    /// The handle is of another kind than the function's (a cast).
    TL_ERR_WRONG_HANDLE = 24,
    /// A loan call out of order: commit or release without an open loan, or a copy
    /// call while a loan is open.
    TL_ERR_LOAN_STATE = 25,
    /// The library panicked (a bug): the message says where. The handle the call
    /// used is unusable afterwards (`TL_ERR_PANIC` again); close it.
    TL_ERR_PANIC = 26,
}

use tl_status::*;

/// A failed call: its status and message.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: tl_status,
    pub(crate) message: String,
}

impl Failure {
    /// A failure of `status` saying `message`.
    pub(crate) fn new(status: tl_status, message: impl Into<String>) -> Self {
        Failure {
            status,
            message: message.into(),
        }
    }
}

/// The status of `error` (the grouping of the Python package's exception classes).
pub(crate) fn status_of(error: &LaneError) -> tl_status {
    match error {
        LaneError::Name(_)
        | LaneError::Spec(_)
        | LaneError::Geometry(_)
        | LaneError::TooLarge
        | LaneError::Metadata(_) => TL_ERR_INVALID_ARGUMENT,
        LaneError::Exists(_) => TL_ERR_ALREADY_EXISTS,
        LaneError::NotFound(_) => TL_ERR_NOT_FOUND,
        LaneError::PermissionDenied(_) | LaneError::ForeignOwner { .. } => TL_ERR_PERMISSION_DENIED,
        LaneError::NoSpace { .. } => TL_ERR_NO_SPACE,
        LaneError::MemoryLock { .. } => TL_ERR_MEMORY_LOCK_REFUSED,
        LaneError::WrongKind { .. } => TL_ERR_WRONG_KIND,
        LaneError::WrongSpec { .. }
        | LaneError::WrongDType { .. }
        | LaneError::WrongCount { .. }
        | LaneError::InvalidBool { .. } => TL_ERR_WRONG_SPEC,
        LaneError::WrongSize { .. } => TL_ERR_BUFFER_SIZE,
        LaneError::RoleTaken { .. } => TL_ERR_ROLE_TAKEN,
        LaneError::Corrupt(_)
        | LaneError::Header { .. }
        | LaneError::Truncated { .. }
        | LaneError::NotRegular(_) => TL_ERR_CORRUPT,
        LaneError::TableFull(_) => TL_ERR_TABLE_FULL,
        LaneError::Evicted => TL_ERR_EVICTED,
        LaneError::WriterGone => TL_ERR_WRITER_GONE,
        LaneError::Empty => TL_ERR_EMPTY,
        LaneError::Full => TL_ERR_FULL,
        LaneError::Timeout => TL_ERR_TIMEOUT,
        LaneError::Stalled => TL_ERR_STALLED,
        LaneError::Io { .. } => TL_ERR_OS,
        _ => TL_ERR_OTHER,
    }
}

impl From<LaneError> for Failure {
    fn from(error: LaneError) -> Self {
        Failure::new(status_of(&error), error.to_string())
    }
}

thread_local! {
    /// The message of the last failure on this thread.
    static LAST_ERROR: RefCell<Option<CString>> = const { RefCell::new(None) };
}

/// Stores `message` as this thread's last error. Never panics: interior NULs are
/// replaced, and a thread being torn down keeps no message.
fn record(message: &str) {
    let text = CString::new(message.replace('\0', "\u{fffd}")).unwrap_or_default();
    let _ = LAST_ERROR.try_with(|last| {
        if let Ok(mut last) = last.try_borrow_mut() {
            *last = Some(text);
        }
    });
}

/// The message of a panic's payload.
fn panic_message(payload: &(dyn Any + Send)) -> String {
    let what = payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned());
    format!("tensorlane panicked (a bug; please report it): {what}")
}

/// Runs the body of an `extern "C"` function: its result as a status, a panic caught
/// and reported as `TL_ERR_PANIC`, and the message of a failure recorded.
pub(crate) fn call(body: impl FnOnce() -> Result<(), Failure>) -> tl_status {
    // AssertUnwindSafe: after a panic nothing of the body's state is used again, but
    // a handle whose lock was held is poisoned, and `handle` refuses it from then on.
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => TL_OK,
        Ok(Err(failure)) => {
            record(&failure.message);
            failure.status
        }
        Err(payload) => {
            // Formatting the payload could itself panic (a `Display` inside): catch
            // that too rather than unwinding into C.
            let message = catch_unwind(AssertUnwindSafe(|| panic_message(&*payload)))
                .unwrap_or_else(|_| "tensorlane panicked".to_owned());
            record(&message);
            // Dropping the payload may panic as well; forget it instead of risking it.
            std::mem::forget(payload);
            TL_ERR_PANIC
        }
    }
}

/// The message of the last failed call on the calling thread (an empty string if
/// none failed yet). The pointer stays valid until the next failing call on this
/// thread; copy the text to keep it.
#[no_mangle]
pub extern "C" fn tl_last_error_message() -> *const c_char {
    let pointer = catch_unwind(|| {
        LAST_ERROR
            .try_with(|last| match last.try_borrow() {
                Ok(last) => last.as_deref().map_or(c"".as_ptr(), |text| text.as_ptr()),
                Err(_) => c"".as_ptr(),
            })
            .unwrap_or(c"".as_ptr())
    });
    pointer.unwrap_or(c"".as_ptr())
}

/// The name of status code `status` (`"TL_ERR_TIMEOUT"`, ...), or `"TL_UNKNOWN"` for a
/// value that is no code. The string is static.
#[no_mangle]
pub extern "C" fn tl_status_name(status: i32) -> *const c_char {
    let name = match status {
        0 => c"TL_OK",
        1 => c"TL_ERR_INVALID_ARGUMENT",
        2 => c"TL_ERR_ALREADY_EXISTS",
        3 => c"TL_ERR_NOT_FOUND",
        4 => c"TL_ERR_PERMISSION_DENIED",
        5 => c"TL_ERR_NO_SPACE",
        6 => c"TL_ERR_MEMORY_LOCK_REFUSED",
        7 => c"TL_ERR_WRONG_KIND",
        8 => c"TL_ERR_WRONG_SPEC",
        9 => c"TL_ERR_ROLE_TAKEN",
        10 => c"TL_ERR_CORRUPT",
        11 => c"TL_ERR_TABLE_FULL",
        12 => c"TL_ERR_EVICTED",
        13 => c"TL_ERR_WRITER_GONE",
        14 => c"TL_ERR_EMPTY",
        15 => c"TL_ERR_FULL",
        16 => c"TL_ERR_TIMEOUT",
        17 => c"TL_ERR_STALLED",
        18 => c"TL_ERR_OS",
        19 => c"TL_ERR_OTHER",
        20 => c"TL_ERR_NULL_POINTER",
        21 => c"TL_ERR_MISALIGNED",
        22 => c"TL_ERR_BUFFER_SIZE",
        23 => c"TL_ERR_CLOSED",
        24 => c"TL_ERR_WRONG_HANDLE",
        25 => c"TL_ERR_LOAN_STATE",
        26 => c"TL_ERR_PANIC",
        _ => c"TL_UNKNOWN",
    };
    name.as_ptr()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;
    use std::io;

    fn last() -> String {
        // SAFETY: a NUL-terminated string valid until the next failure here.
        unsafe { CStr::from_ptr(tl_last_error_message()) }
            .to_string_lossy()
            .into_owned()
    }

    #[test]
    fn a_panic_is_a_status_with_its_message() {
        let status = call(|| panic!("seeded failure {}", 7));
        assert_eq!(status, TL_ERR_PANIC);
        assert!(last().contains("seeded failure 7"), "{}", last());
        let status = call(|| std::panic::panic_any(42u8));
        assert_eq!(status, TL_ERR_PANIC);
        assert!(last().contains("without a message"), "{}", last());
        assert_eq!(call(|| Ok(())), TL_OK);
    }

    #[test]
    fn a_message_with_a_nul_is_kept() {
        assert_eq!(
            call(|| Err(Failure::new(TL_ERR_OTHER, "a\0b"))),
            TL_ERR_OTHER
        );
        assert_eq!(last(), "a\u{fffd}b");
    }

    /// The variants a C test cannot provoke in one process: each has its code.
    #[test]
    fn lane_errors_map_to_their_groups() {
        let os = || io::Error::from_raw_os_error(12);
        let cases = [
            (LaneError::TooLarge, TL_ERR_INVALID_ARGUMENT),
            (
                LaneError::NoSpace {
                    name: "x".into(),
                    needed: 1,
                    available: None,
                },
                TL_ERR_NO_SPACE,
            ),
            (
                LaneError::PermissionDenied("x".into()),
                TL_ERR_PERMISSION_DENIED,
            ),
            (
                LaneError::ForeignOwner {
                    name: "x".into(),
                    owner: 0,
                },
                TL_ERR_PERMISSION_DENIED,
            ),
            (LaneError::NotRegular("x".into()), TL_ERR_CORRUPT),
            (
                LaneError::MemoryLock {
                    name: "x".into(),
                    bytes: 1,
                    limit: None,
                    source: os(),
                },
                TL_ERR_MEMORY_LOCK_REFUSED,
            ),
            (LaneError::Evicted, TL_ERR_EVICTED),
            (LaneError::WriterGone, TL_ERR_WRITER_GONE),
            (LaneError::Stalled, TL_ERR_STALLED),
            (
                LaneError::Io {
                    name: "x".into(),
                    what: "mmap".into(),
                    source: os(),
                },
                TL_ERR_OS,
            ),
            (LaneError::Other("later".into()), TL_ERR_OTHER),
            (
                LaneError::WrongSize {
                    expected: 1,
                    found: 2,
                },
                TL_ERR_BUFFER_SIZE,
            ),
        ];
        for (error, status) in cases {
            assert_eq!(status_of(&error), status, "{error}");
        }
    }
}
