//! Reading a lane's metadata and clock from any handle: `tl_metadata_count`,
//! `tl_metadata_key`, `tl_metadata_get`, `tl_lane_clock`.
//!
//! These functions take the handle as `const void*`, so that one function serves
//! the six handle kinds; the registry still checks it (NULL, closed, a token of no
//! lane). The metadata is the validated copy each handle read at open, so nothing
//! here reads shared memory.
//!
//! Strings are copied out C-style: the caller passes a buffer and its length, and
//! `*needed` receives the bytes the string takes with its terminating NUL; a shorter
//! buffer is `TL_ERR_BUFFER_SIZE` with `*needed` still written, so a first call with
//! `buf_len` 0 asks for the size. Invariant: nothing is written to the buffer unless
//! the whole string and its NUL fit.

use crate::args;
use crate::handle;
use crate::queue::{Consumer, Producer};
use crate::status::{call, tl_status, Failure};
use std::any::Any;
use std::ffi::{c_char, c_void};
use tensorlane_shm::{HeaderInfo, StreamReader, StreamWriter, TopicPublisher, TopicSubscriber};

/// The header of a lane of any kind a handle holds.
fn info_of(lane: &(dyn Any + Send)) -> Result<&HeaderInfo, Failure> {
    if let Some(lane) = lane.downcast_ref::<StreamWriter>() {
        return Ok(lane.info());
    }
    if let Some(lane) = lane.downcast_ref::<StreamReader>() {
        return Ok(lane.info());
    }
    if let Some(p) = lane.downcast_ref::<Producer>() {
        return Ok(p.lane.info());
    }
    if let Some(c) = lane.downcast_ref::<Consumer>() {
        return Ok(c.lane.info());
    }
    if let Some(lane) = lane.downcast_ref::<TopicPublisher>() {
        return Ok(lane.info());
    }
    if let Some(lane) = lane.downcast_ref::<TopicSubscriber>() {
        return Ok(lane.info());
    }
    Err(Failure::new(
        tl_status::TL_ERR_WRONG_HANDLE,
        "the handle is no lane handle",
    ))
}

/// Runs `body` on the header of the lane of `handle`.
fn with_info<R>(
    handle: *const c_void,
    body: impl FnOnce(&HeaderInfo) -> Result<R, Failure>,
) -> Result<R, Failure> {
    handle::with_any(handle, |lane| body(info_of(lane)?))
}

/// Copies `text` and a NUL into the `buf_len` bytes at `buf`, writing the bytes
/// this takes to `*needed` (if not NULL) first.
///
/// # Safety
/// A non-null `buf` points to `buf_len` writable bytes; a non-null `needed` to a
/// writable `size_t`.
unsafe fn copy_out(
    text: &str,
    buf: *mut c_char,
    buf_len: usize,
    needed: *mut usize,
) -> Result<(), Failure> {
    let bytes = text
        .len()
        .checked_add(1)
        .ok_or_else(|| Failure::new(tl_status::TL_ERR_OTHER, "a string of usize::MAX bytes"))?;
    // SAFETY: the caller's promise.
    unsafe { args::write_opt(needed, bytes, "needed")? };
    if buf_len < bytes {
        return Err(Failure::new(
            tl_status::TL_ERR_BUFFER_SIZE,
            format!("the buffer has {buf_len} bytes, the string needs {bytes} (with its NUL)"),
        ));
    }
    if buf.is_null() {
        return Err(Failure::new(
            tl_status::TL_ERR_NULL_POINTER,
            "the buffer is NULL",
        ));
    }
    // SAFETY: `buf` is non-null (checked) and has `buf_len >= bytes` writable bytes
    // (the caller's promise); `text` is Rust memory, which cannot overlap a buffer
    // the caller lends for writing.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), text.len());
        buf.add(text.len()).write(0);
    }
    Ok(())
}

/// Writes to `*count` the number of metadata pairs of the lane of `lane` (any lane
/// handle: `tl_stream_writer*`, `tl_queue_consumer*`, ...).
///
/// # Safety
/// `count` is NULL or points to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn tl_metadata_count(lane: *const c_void, count: *mut usize) -> tl_status {
    call(|| {
        args::check_typed(count.cast_const(), "count")?;
        let n = with_info(lane, |info| Ok(info.metadata.len()))?;
        // SAFETY: the promise of this function's documentation.
        unsafe { args::write(count, n, "count") }
    })
}

/// Copies the key of metadata pair `index` (from 0, in the order written) of the
/// lane of `lane` into `buf` with its NUL; `*needed` (if not NULL) receives the
/// bytes that takes. `TL_ERR_BUFFER_SIZE` if `buf_len` is shorter (`*needed` is
/// written then too; `buf` may be NULL with `buf_len` 0 to ask for the size);
/// `TL_ERR_INVALID_ARGUMENT` if `index` is not below the count.
///
/// # Safety
/// `buf` is NULL or points to `buf_len` writable bytes; `needed` is NULL or points
/// to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn tl_metadata_key(
    lane: *const c_void,
    index: usize,
    buf: *mut c_char,
    buf_len: usize,
    needed: *mut usize,
) -> tl_status {
    call(|| {
        args::check_opt(needed, "needed")?;
        with_info(lane, |info| {
            let count = info.metadata.len();
            let (key, _) = info.metadata.iter().nth(index).ok_or_else(|| {
                Failure::new(
                    tl_status::TL_ERR_INVALID_ARGUMENT,
                    format!("metadata index {index}: the lane has {count} pairs"),
                )
            })?;
            // SAFETY: the promises of this function's documentation.
            unsafe { copy_out(key, buf, buf_len, needed) }
        })
    })
}

/// Copies the value of metadata key `key` of the lane of `lane` into `buf` with
/// its NUL; `*needed` (if not NULL) receives the bytes that takes.
/// `TL_ERR_NOT_FOUND` if the lane has no such key; `TL_ERR_BUFFER_SIZE` if
/// `buf_len` is shorter (`*needed` is written then too; `buf` may be NULL with
/// `buf_len` 0 to ask for the size). A value written by another language may hold
/// a NUL byte: C sees it cut there, and `*needed - 1` is its full length.
///
/// # Safety
/// `key` is NULL or a NUL-terminated string; `buf` is NULL or points to `buf_len`
/// writable bytes; `needed` is NULL or points to a writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn tl_metadata_get(
    lane: *const c_void,
    key: *const c_char,
    buf: *mut c_char,
    buf_len: usize,
    needed: *mut usize,
) -> tl_status {
    call(|| {
        args::check_opt(needed, "needed")?;
        // SAFETY: the promise of this function's documentation.
        let key = unsafe { args::text(key, "key")? };
        with_info(lane, |info| {
            let value = info.metadata.get(key).ok_or_else(|| {
                Failure::new(
                    tl_status::TL_ERR_NOT_FOUND,
                    format!("the lane's metadata has no key {key:?}"),
                )
            })?;
            // SAFETY: the promises of this function's documentation.
            unsafe { copy_out(value, buf, buf_len, needed) }
        })
    })
}

/// Writes to `*clock` the `tl_clock` code of the clock that stamps the frames of
/// the lane of `lane` (chosen at create): what `tl_frame::timestamp_ns` means.
///
/// # Safety
/// `clock` is NULL or points to a writable `uint32_t`.
#[no_mangle]
pub unsafe extern "C" fn tl_lane_clock(lane: *const c_void, clock: *mut u32) -> tl_status {
    call(|| {
        args::check_typed(clock.cast_const(), "clock")?;
        // Header clock codes are 1..=3, the `tl_clock` codes.
        let code = with_info(lane, |info| Ok(info.clock.code() as u32))?;
        // SAFETY: the promise of this function's documentation.
        unsafe { args::write(clock, code, "clock") }
    })
}
