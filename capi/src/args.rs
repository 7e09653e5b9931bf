//! Checks of the pointers C passes, before any is used.
//!
//! Invariants: a typed pointer is dereferenced only after it was found non-null and
//! aligned for its type; a buffer is turned into a slice only after its pointer was
//! found non-null (or its length zero) and its length equal to the lane's tensor
//! bytes. What the checks cannot see (that the memory is live, of that length, and
//! not written by another thread during the call) is the C caller's promise, stated
//! in the header.

use crate::status::{tl_status, Failure};
use std::ffi::{c_char, c_void, CStr};
use std::time::Duration;
use tensorlane_shm::Wait;

/// Refuses a null or misaligned `pointer` (the argument `what`).
pub(crate) fn check_typed<T>(pointer: *const T, what: &str) -> Result<(), Failure> {
    if pointer.is_null() {
        return Err(Failure::new(
            tl_status::TL_ERR_NULL_POINTER,
            format!("{what} is NULL"),
        ));
    }
    if !pointer.is_aligned() {
        return Err(Failure::new(
            tl_status::TL_ERR_MISALIGNED,
            format!(
                "{what} ({pointer:p}) is not aligned to {} bytes",
                std::mem::align_of::<T>()
            ),
        ));
    }
    Ok(())
}

/// Reads the struct at `pointer` (the argument `what`), checked.
///
/// # Safety
/// A non-null, aligned `pointer` points to a live `T` (the caller's promise).
pub(crate) unsafe fn read<T: Copy>(pointer: *const T, what: &str) -> Result<T, Failure> {
    check_typed(pointer, what)?;
    // SAFETY: non-null and aligned (checked above); live and initialised by the
    // caller's promise. Every `T` read here has integer and raw-pointer fields only,
    // so any bits are a valid value.
    Ok(unsafe { pointer.read() })
}

/// Reads the struct at `pointer` if it is not NULL.
///
/// # Safety
/// As for [`read`].
pub(crate) unsafe fn read_opt<T: Copy>(
    pointer: *const T,
    what: &str,
) -> Result<Option<T>, Failure> {
    if pointer.is_null() {
        return Ok(None);
    }
    // SAFETY: forwarded promise.
    unsafe { read(pointer, what) }.map(Some)
}

/// Writes `value` to `pointer` (the argument `what`), checked.
///
/// # Safety
/// A non-null, aligned `pointer` points to writable memory for a `T`.
pub(crate) unsafe fn write<T>(pointer: *mut T, value: T, what: &str) -> Result<(), Failure> {
    check_typed(pointer.cast_const(), what)?;
    // SAFETY: non-null and aligned (checked); writable by the caller's promise.
    // `write` does not drop the old contents, which may be uninitialised.
    unsafe { pointer.write(value) };
    Ok(())
}

/// Writes `value` to `pointer` unless it is NULL (a nullable out-parameter).
///
/// # Safety
/// As for [`write`].
pub(crate) unsafe fn write_opt<T>(pointer: *mut T, value: T, what: &str) -> Result<(), Failure> {
    if pointer.is_null() {
        return Ok(());
    }
    // SAFETY: forwarded promise.
    unsafe { write(pointer, value, what) }
}

/// The lane name at `name`, a NUL-terminated UTF-8 string.
///
/// # Safety
/// A non-null `name` points to a NUL-terminated string live for the call.
pub(crate) unsafe fn name<'a>(name: *const c_char) -> Result<&'a str, Failure> {
    // SAFETY: forwarded promise.
    unsafe { text(name, "name") }
}

/// The string at `pointer` (the argument `what`), NUL-terminated and UTF-8.
///
/// # Safety
/// A non-null `pointer` points to a NUL-terminated string live for the call.
pub(crate) unsafe fn text<'a>(pointer: *const c_char, what: &str) -> Result<&'a str, Failure> {
    if pointer.is_null() {
        return Err(Failure::new(
            tl_status::TL_ERR_NULL_POINTER,
            format!("{what} is NULL"),
        ));
    }
    // SAFETY: non-null (checked); NUL-terminated and live by the caller's promise.
    let text = unsafe { CStr::from_ptr(pointer) };
    text.to_str().map_err(|_| {
        Failure::new(
            tl_status::TL_ERR_INVALID_ARGUMENT,
            format!("{what} {text:?} is not UTF-8"),
        )
    })
}

/// A C flag (`uint32_t`): 0 is false, 1 true; any other value (an uninitialised
/// field) is refused.
pub(crate) fn flag(value: u32, what: &str) -> Result<bool, Failure> {
    match value {
        0 => Ok(false),
        1 => Ok(true),
        other => Err(Failure::new(
            tl_status::TL_ERR_INVALID_ARGUMENT,
            format!("{what} is {other}: use 0 or 1"),
        )),
    }
}

/// Refuses a buffer of `len` bytes at `data` unless it is one tensor of
/// `expected` bytes with a non-null pointer (or zero bytes).
fn check_buffer(data: *const c_void, len: usize, expected: usize) -> Result<(), Failure> {
    if len != expected {
        return Err(Failure::new(
            tl_status::TL_ERR_BUFFER_SIZE,
            format!("the buffer has {len} bytes, the lane's tensor {expected}"),
        ));
    }
    if data.is_null() && len != 0 {
        return Err(Failure::new(
            tl_status::TL_ERR_NULL_POINTER,
            "the buffer is NULL",
        ));
    }
    Ok(())
}

/// The `len` bytes at `data` to write, checked to be one tensor of `expected` bytes.
///
/// # Safety
/// A non-null `data` points to `len` readable bytes that nothing writes during the
/// call.
pub(crate) unsafe fn input<'a>(
    data: *const c_void,
    len: usize,
    expected: usize,
) -> Result<&'a [u8], Failure> {
    check_buffer(data, len, expected)?;
    if len == 0 {
        return Ok(&[]);
    }
    // SAFETY: non-null (checked); `len` readable bytes unwritten during the call by
    // the caller's promise; `len` equals a tensor's size, which the spec bounds far
    // below `isize::MAX`.
    Ok(unsafe { std::slice::from_raw_parts(data.cast::<u8>(), len) })
}

/// The `len` bytes at `data` to read into, checked as by [`input`].
///
/// # Safety
/// A non-null `data` points to `len` writable bytes that nothing else accesses
/// during the call.
pub(crate) unsafe fn output<'a>(
    data: *mut c_void,
    len: usize,
    expected: usize,
) -> Result<&'a mut [u8], Failure> {
    check_buffer(data.cast_const(), len, expected)?;
    if len == 0 {
        return Ok(&mut []);
    }
    // SAFETY: as in `input`, with exclusive access by the caller's promise.
    Ok(unsafe { std::slice::from_raw_parts_mut(data.cast::<u8>(), len) })
}

/// The wait a C timeout asks for: `TL_FOREVER` (-1) without limit, 0 one try, more
/// that many nanoseconds.
pub(crate) fn wait(timeout_ns: i64) -> Result<Wait, Failure> {
    match timeout_ns {
        -1 => Ok(Wait::Until(None)),
        0 => Ok(Wait::Never),
        t if t > 0 => Ok(Wait::timeout(Duration::from_nanos(t as u64))),
        t => Err(Failure::new(
            tl_status::TL_ERR_INVALID_ARGUMENT,
            format!("timeout {t} ns: use TL_FOREVER (-1), 0 (try once) or a positive value"),
        )),
    }
}

/// Refuses a misaligned nullable out-pointer before anything is done (so a call
/// does not consume an item and then fail to report it).
///
pub(crate) fn check_opt<T>(pointer: *mut T, what: &str) -> Result<(), Failure> {
    if pointer.is_null() {
        return Ok(());
    }
    check_typed(pointer.cast_const(), what)
}
