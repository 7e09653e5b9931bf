//! Streams (the latest value; one writer, any number of readers): create, take over,
//! open (each also with options), close, write, read, read_new.

use crate::args;
use crate::handle::{self, Kind};
use crate::options::{create_from_c, open_from_c, tl_create_options, tl_open_options};
use crate::status::{call, tl_status};
use crate::types::{frame_to_c, spec_from_c, spec_to_c, tl_frame, tl_spec};
use std::ffi::{c_char, c_void};
use tensorlane_shm::{OpenOptions, StreamReader, StreamWriter, Wait};

/// The writer of a stream (an opaque handle).
pub struct tl_stream_writer {
    _opaque: [u8; 0],
}

/// A reader of a stream (an opaque handle).
pub struct tl_stream_reader {
    _opaque: [u8; 0],
}

impl Kind for StreamWriter {
    const NAME: &'static str = "stream writer";
}

impl Kind for StreamReader {
    const NAME: &'static str = "stream reader";
}

/// Creates stream `name` carrying tensors `*spec`, with `slots` slots (1 or more;
/// 3 lets readers copy while the writer writes), and becomes its writer.
/// `tl_stream_writer_create_with` with default options.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `spec` is NULL or points to a
/// `tl_spec`; `out` is NULL or points to writable memory for a handle.
#[no_mangle]
pub unsafe extern "C" fn tl_stream_writer_create(
    name: *const c_char,
    spec: *const tl_spec,
    slots: usize,
    out: *mut *mut tl_stream_writer,
) -> tl_status {
    // SAFETY: the promises of this function's documentation, forwarded.
    unsafe { tl_stream_writer_create_with(name, spec, slots, std::ptr::null(), out) }
}

/// `tl_stream_writer_create` with `*options` (NULL: the defaults): metadata, clock,
/// group access, pre-faulting, locking.
///
/// # Safety
/// As for `tl_stream_writer_create`; `options` is NULL or points to a
/// `tl_create_options` (with its metadata array and strings) live for the call.
#[no_mangle]
pub unsafe extern "C" fn tl_stream_writer_create_with(
    name: *const c_char,
    spec: *const tl_spec,
    slots: usize,
    options: *const tl_create_options,
    out: *mut *mut tl_stream_writer,
) -> tl_status {
    call(|| {
        // SAFETY: the promises of this function's documentation, forwarded.
        unsafe {
            handle::opened(out, || {
                let spec = spec_from_c(&args::read(spec, "spec")?)?;
                let options = create_from_c(options)?;
                Ok(StreamWriter::create_with(
                    args::name(name)?,
                    &spec,
                    slots,
                    options,
                )?)
            })
        }
    })
}

/// Becomes the writer of existing stream `name`, whose writer is gone
/// (`TL_ERR_ROLE_TAKEN` while it lives). `tl_stream_writer_take_over_with` with
/// default options.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `out` is NULL or points to writable
/// memory for a handle.
#[no_mangle]
pub unsafe extern "C" fn tl_stream_writer_take_over(
    name: *const c_char,
    out: *mut *mut tl_stream_writer,
) -> tl_status {
    // SAFETY: the promises of this function's documentation, forwarded.
    unsafe { tl_stream_writer_take_over_with(name, std::ptr::null(), out) }
}

/// `tl_stream_writer_take_over` with `*options` (NULL: the defaults): an expected
/// tensor, pre-faulting, locking.
///
/// # Safety
/// As for `tl_stream_writer_take_over`; `options` is NULL or points to a
/// `tl_open_options` live for the call.
#[no_mangle]
pub unsafe extern "C" fn tl_stream_writer_take_over_with(
    name: *const c_char,
    options: *const tl_open_options,
    out: *mut *mut tl_stream_writer,
) -> tl_status {
    call(|| {
        // SAFETY: the promises of this function's documentation, forwarded.
        unsafe {
            handle::opened(out, || {
                let options = open_from_c(options)?;
                Ok(StreamWriter::take_over_with(args::name(name)?, options)?)
            })
        }
    })
}

/// Closes a writer (NULL: nothing to do). The lane stays for readers; its last
/// value stays readable.
#[no_mangle]
pub extern "C" fn tl_stream_writer_close(writer: *mut tl_stream_writer) -> tl_status {
    call(|| handle::close::<StreamWriter, _>(writer))
}

/// Writes one tensor (`len` must be its byte size); never blocks. `*seq` (if `seq`
/// is not NULL) receives its sequence number.
///
/// # Safety
/// `data` is NULL or points to `len` readable bytes; `seq` is NULL or points to a
/// writable `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn tl_stream_writer_write(
    writer: *mut tl_stream_writer,
    data: *const c_void,
    len: usize,
    seq: *mut u64,
) -> tl_status {
    call(|| {
        handle::with(writer, |lane: &mut StreamWriter| {
            // SAFETY: the promises of this function's documentation.
            let tensor = unsafe { args::input(data, len, lane.spec().byte_len())? };
            let written = lane.write(tensor)?;
            // SAFETY: as above.
            unsafe { args::write_opt(seq, written, "seq") }
        })
    })
}

/// Writes the stream's tensor spec to `*spec`.
///
/// # Safety
/// `spec` is NULL or points to writable memory for a `tl_spec`.
#[no_mangle]
pub unsafe extern "C" fn tl_stream_writer_spec(
    writer: *mut tl_stream_writer,
    spec: *mut tl_spec,
) -> tl_status {
    call(|| {
        handle::with(writer, |lane: &mut StreamWriter| {
            // SAFETY: the promise of this function's documentation.
            unsafe { args::write(spec, spec_to_c(lane.spec()), "spec") }
        })
    })
}

/// Opens stream `name` as a reader; if `expect` is not NULL, the stream must carry
/// that tensor (`TL_ERR_WRONG_SPEC`).
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `expect` is NULL or points to a
/// `tl_spec`; `out` is NULL or points to writable memory for a handle.
#[no_mangle]
pub unsafe extern "C" fn tl_stream_reader_open(
    name: *const c_char,
    expect: *const tl_spec,
    out: *mut *mut tl_stream_reader,
) -> tl_status {
    call(|| {
        // SAFETY: the promises of this function's documentation, forwarded.
        unsafe {
            handle::opened(out, || {
                let mut options = OpenOptions::new();
                if let Some(expect) = args::read_opt(expect, "expect")? {
                    options = options.expect(&spec_from_c(&expect)?);
                }
                Ok(StreamReader::open_with(args::name(name)?, options)?)
            })
        }
    })
}

/// Opens stream `name` as a reader with `*options` (NULL: the defaults): an
/// expected tensor, pre-faulting, locking.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `options` is NULL or points to a
/// `tl_open_options` live for the call; `out` is NULL or points to writable memory
/// for a handle.
#[no_mangle]
pub unsafe extern "C" fn tl_stream_reader_open_with(
    name: *const c_char,
    options: *const tl_open_options,
    out: *mut *mut tl_stream_reader,
) -> tl_status {
    call(|| {
        // SAFETY: the promises of this function's documentation, forwarded.
        unsafe {
            handle::opened(out, || {
                let options = open_from_c(options)?;
                Ok(StreamReader::open_with(args::name(name)?, options)?)
            })
        }
    })
}

/// Closes a reader (NULL: nothing to do).
#[no_mangle]
pub extern "C" fn tl_stream_reader_close(reader: *mut tl_stream_reader) -> tl_status {
    call(|| handle::close::<StreamReader, _>(reader))
}

/// Copies the latest value into `out` (`len` must be the tensor's byte size);
/// never blocks: `TL_ERR_EMPTY` if nothing was written yet. `*frame` (if not NULL)
/// receives its metadata.
///
/// # Safety
/// `out` is NULL or points to `len` writable bytes; `frame` is NULL or points to
/// writable memory for a `tl_frame`.
#[no_mangle]
pub unsafe extern "C" fn tl_stream_reader_read(
    reader: *mut tl_stream_reader,
    out: *mut c_void,
    len: usize,
    frame: *mut tl_frame,
) -> tl_status {
    call(|| {
        handle::with(reader, |lane: &mut StreamReader| {
            args::check_opt(frame, "frame")?;
            // SAFETY: the promises of this function's documentation.
            let buffer = unsafe { args::output(out, len, lane.spec().byte_len())? };
            let got = lane.read(buffer)?;
            // SAFETY: as above.
            unsafe { args::write_opt(frame, frame_to_c(&got), "frame") }
        })
    })
}

/// Waits (see the timeout convention) for a value newer than the last one this
/// reader returned and copies it into `out`. `TL_ERR_WRITER_GONE` if the writer
/// died meanwhile (its last value stays readable with `tl_stream_reader_read`).
///
/// # Safety
/// As for `tl_stream_reader_read`.
#[no_mangle]
pub unsafe extern "C" fn tl_stream_reader_read_new(
    reader: *mut tl_stream_reader,
    out: *mut c_void,
    len: usize,
    timeout_ns: i64,
    frame: *mut tl_frame,
) -> tl_status {
    call(|| {
        let wait = args::wait(timeout_ns)?;
        handle::with(reader, |lane: &mut StreamReader| {
            args::check_opt(frame, "frame")?;
            // SAFETY: the promises of this function's documentation.
            let buffer = unsafe { args::output(out, len, lane.spec().byte_len())? };
            let got = match wait {
                Wait::Never => lane.try_read_new(buffer),
                Wait::Until(None) => lane.read_new(buffer),
                Wait::Until(Some(deadline)) => lane.read_new_deadline(buffer, deadline),
            }?;
            // SAFETY: as above.
            unsafe { args::write_opt(frame, frame_to_c(&got), "frame") }
        })
    })
}

/// Writes the stream's tensor spec to `*spec`.
///
/// # Safety
/// `spec` is NULL or points to writable memory for a `tl_spec`.
#[no_mangle]
pub unsafe extern "C" fn tl_stream_reader_spec(
    reader: *mut tl_stream_reader,
    spec: *mut tl_spec,
) -> tl_status {
    call(|| {
        handle::with(reader, |lane: &mut StreamReader| {
            // SAFETY: the promise of this function's documentation.
            unsafe { args::write(spec, spec_to_c(lane.spec()), "spec") }
        })
    })
}

/// Writes to `*alive` whether a live process holds the stream's writer role.
///
/// # Safety
/// `alive` is NULL or points to a writable `bool`.
#[no_mangle]
pub unsafe extern "C" fn tl_stream_reader_writer_alive(
    reader: *mut tl_stream_reader,
    alive: *mut bool,
) -> tl_status {
    call(|| {
        handle::with(reader, |lane: &mut StreamReader| {
            // SAFETY: the promise of this function's documentation.
            unsafe { args::write(alive, lane.writer_alive(), "alive") }
        })
    })
}
