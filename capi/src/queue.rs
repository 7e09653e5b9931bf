//! Queues (lossless, one producer, one consumer): create, take over, open (each also
//! with options), close, push and pop with copies, and loans that span calls.
//!
//! Loans: `tl_queue_producer_loan` lends the next free slot's tensor bytes, which the
//! caller writes and then pushes with `tl_queue_producer_commit` (or gives back with
//! `tl_queue_producer_cancel`); `tl_queue_consumer_loan` lends the next item in place,
//! which the caller reads and then removes with `tl_queue_consumer_release` (or
//! leaves at the head with `tl_queue_consumer_cancel`). A handle holds at most one
//! loan; a copy call (push, pop) while one is open is `TL_ERR_LOAN_STATE`, so the
//! position a loan names is never moved under it. Closing a handle gives its loan up.

use crate::args;
use crate::handle::{self, Kind};
use crate::options::{create_from_c, open_from_c, tl_create_options, tl_open_options};
use crate::status::{call, tl_status, Failure};
use crate::types::{frame_to_c, spec_from_c, spec_to_c, tl_frame, tl_spec};
use std::ffi::{c_char, c_void};
use tensorlane_shm::{HeldSlot, OpenOptions, QueueConsumer, QueueProducer, Wait};

/// The producer of a queue (an opaque handle).
pub struct tl_queue_producer {
    _opaque: [u8; 0],
}

/// The consumer of a queue (an opaque handle).
pub struct tl_queue_consumer {
    _opaque: [u8; 0],
}

/// A producer and the slot it lends, if any.
pub(crate) struct Producer {
    pub(crate) lane: QueueProducer,
    loan: Option<HeldSlot>,
}

/// A consumer and the item it lends, if any.
pub(crate) struct Consumer {
    pub(crate) lane: QueueConsumer,
    loan: Option<HeldSlot>,
}

impl Kind for Producer {
    const NAME: &'static str = "queue producer";
}

impl Kind for Consumer {
    const NAME: &'static str = "queue consumer";
}

fn loan_open(what: &str) -> Failure {
    Failure::new(
        tl_status::TL_ERR_LOAN_STATE,
        format!("a loan is open: commit, release or cancel it before {what}"),
    )
}

fn no_loan(what: &str) -> Failure {
    Failure::new(
        tl_status::TL_ERR_LOAN_STATE,
        format!("no loan is open to {what}"),
    )
}

/// Creates queue `name` of `capacity` tensors `*spec` (a power of two) and becomes
/// its producer. `tl_queue_producer_create_with` with default options.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `spec` is NULL or points to a
/// `tl_spec`; `out` is NULL or points to writable memory for a handle.
#[no_mangle]
pub unsafe extern "C" fn tl_queue_producer_create(
    name: *const c_char,
    spec: *const tl_spec,
    capacity: usize,
    out: *mut *mut tl_queue_producer,
) -> tl_status {
    // SAFETY: the promises of this function's documentation, forwarded.
    unsafe { tl_queue_producer_create_with(name, spec, capacity, std::ptr::null(), out) }
}

/// `tl_queue_producer_create` with `*options` (NULL: the defaults): metadata,
/// clock, group access, pre-faulting, locking.
///
/// # Safety
/// As for `tl_queue_producer_create`; `options` is NULL or points to a
/// `tl_create_options` (with its metadata array and strings) live for the call.
#[no_mangle]
pub unsafe extern "C" fn tl_queue_producer_create_with(
    name: *const c_char,
    spec: *const tl_spec,
    capacity: usize,
    options: *const tl_create_options,
    out: *mut *mut tl_queue_producer,
) -> tl_status {
    call(|| {
        // SAFETY: the promises of this function's documentation, forwarded.
        unsafe {
            handle::opened(out, || {
                let spec = spec_from_c(&args::read(spec, "spec")?)?;
                let options = create_from_c(options)?;
                let lane = QueueProducer::create_with(args::name(name)?, &spec, capacity, options)?;
                Ok(Producer { lane, loan: None })
            })
        }
    })
}

/// Becomes the producer of existing queue `name`, whose producer is gone.
/// `tl_queue_producer_take_over_with` with default options.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `out` is NULL or points to writable
/// memory for a handle.
#[no_mangle]
pub unsafe extern "C" fn tl_queue_producer_take_over(
    name: *const c_char,
    out: *mut *mut tl_queue_producer,
) -> tl_status {
    // SAFETY: the promises of this function's documentation, forwarded.
    unsafe { tl_queue_producer_take_over_with(name, std::ptr::null(), out) }
}

/// `tl_queue_producer_take_over` with `*options` (NULL: the defaults): an expected
/// tensor, pre-faulting, locking.
///
/// # Safety
/// As for `tl_queue_producer_take_over`; `options` is NULL or points to a
/// `tl_open_options` live for the call.
#[no_mangle]
pub unsafe extern "C" fn tl_queue_producer_take_over_with(
    name: *const c_char,
    options: *const tl_open_options,
    out: *mut *mut tl_queue_producer,
) -> tl_status {
    call(|| {
        // SAFETY: the promises of this function's documentation, forwarded.
        unsafe {
            handle::opened(out, || {
                let options = open_from_c(options)?;
                let lane = QueueProducer::take_over_with(args::name(name)?, options)?;
                Ok(Producer { lane, loan: None })
            })
        }
    })
}

/// Closes a producer (NULL: nothing to do); an open loan is given up. Items pushed
/// stay in the queue for the consumer.
#[no_mangle]
pub extern "C" fn tl_queue_producer_close(producer: *mut tl_queue_producer) -> tl_status {
    call(|| handle::close::<Producer, _>(producer))
}

/// Pushes a copy of one tensor, waiting (see the timeout convention) for room.
/// `*seq` (if `seq` is not NULL) receives its sequence number.
///
/// # Safety
/// `data` is NULL or points to `len` readable bytes; `seq` is NULL or points to a
/// writable `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn tl_queue_producer_push(
    producer: *mut tl_queue_producer,
    data: *const c_void,
    len: usize,
    timeout_ns: i64,
    seq: *mut u64,
) -> tl_status {
    call(|| {
        let wait = args::wait(timeout_ns)?;
        handle::with(producer, |p: &mut Producer| {
            if p.loan.is_some() {
                return Err(loan_open("pushing"));
            }
            args::check_opt(seq, "seq")?;
            // SAFETY: the promises of this function's documentation.
            let tensor = unsafe { args::input(data, len, p.lane.spec().byte_len())? };
            let pushed = match wait {
                Wait::Never => p.lane.try_push(tensor),
                Wait::Until(None) => p.lane.push(tensor),
                Wait::Until(Some(deadline)) => p.lane.push_deadline(tensor, deadline),
            }?;
            // SAFETY: as above.
            unsafe { args::write_opt(seq, pushed, "seq") }
        })
    })
}

/// Waits (see the timeout convention) for a free slot and lends its tensor bytes:
/// `*data` receives their address, `*len` (if `len` is not NULL) their number. Write
/// the tensor there, then `tl_queue_producer_commit`. The slot is not zeroed.
/// Lending again before committing lends the same slot; a failed call leaves no
/// loan open. The bytes are aligned to 8 bytes.
///
/// # Safety
/// `data` is NULL or points to a writable `void*`; `len` is NULL or points to a
/// writable `size_t`. The bytes lent may be written only until the loan is
/// committed or cancelled or the handle closed, from one thread at a time; and
/// every other process that writes this lane follows docs/LAYOUT.md (a zero-copy
/// loan trusts its peers, as the Rust API's loans do).
#[no_mangle]
pub unsafe extern "C" fn tl_queue_producer_loan(
    producer: *mut tl_queue_producer,
    timeout_ns: i64,
    data: *mut *mut c_void,
    len: *mut usize,
) -> tl_status {
    call(|| {
        let wait = args::wait(timeout_ns)?;
        handle::with(producer, |p: &mut Producer| {
            args::check_typed(data.cast_const(), "data")?;
            args::check_opt(len, "len")?;
            p.loan = None;
            // SAFETY: the caller's promise that its peers follow the layout, and to
            // write through the address only while the loan is open (this
            // function's documentation), is `hold_slot`'s contract.
            let held = unsafe { p.lane.hold_slot(wait)? };
            let (address, bytes) = (held.as_ptr(), held.len());
            p.loan = Some(held);
            // SAFETY: `data` checked non-null and aligned above; writable by the
            // caller's promise.
            unsafe { args::write(data, address.cast::<c_void>(), "data")? };
            // SAFETY: as above, for `len`.
            unsafe { args::write_opt(len, bytes, "len") }
        })
    })
}

/// Pushes the slot lent by `tl_queue_producer_loan`, stamped now; `*seq` (if not
/// NULL) receives its sequence number. `TL_ERR_LOAN_STATE` if no loan is open.
///
/// # Safety
/// `seq` is NULL or points to a writable `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn tl_queue_producer_commit(
    producer: *mut tl_queue_producer,
    seq: *mut u64,
) -> tl_status {
    call(|| {
        handle::with(producer, |p: &mut Producer| {
            args::check_opt(seq, "seq")?;
            let held = p.loan.take().ok_or_else(|| no_loan("commit"))?;
            let pushed = p.lane.commit_held(held)?;
            // SAFETY: the promise of this function's documentation.
            unsafe { args::write_opt(seq, pushed, "seq") }
        })
    })
}

/// Gives the lent slot back unpushed (`TL_ERR_LOAN_STATE` if no loan is open).
#[no_mangle]
pub extern "C" fn tl_queue_producer_cancel(producer: *mut tl_queue_producer) -> tl_status {
    call(|| {
        handle::with(producer, |p: &mut Producer| {
            p.loan.take().map(drop).ok_or_else(|| no_loan("cancel"))
        })
    })
}

/// Writes the queue's tensor spec to `*spec`.
///
/// # Safety
/// `spec` is NULL or points to writable memory for a `tl_spec`.
#[no_mangle]
pub unsafe extern "C" fn tl_queue_producer_spec(
    producer: *mut tl_queue_producer,
    spec: *mut tl_spec,
) -> tl_status {
    call(|| {
        handle::with(producer, |p: &mut Producer| {
            // SAFETY: the promise of this function's documentation.
            unsafe { args::write(spec, spec_to_c(p.lane.spec()), "spec") }
        })
    })
}

/// Opens queue `name` as its consumer; if `expect` is not NULL, the queue must carry
/// that tensor (`TL_ERR_WRONG_SPEC`).
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `expect` is NULL or points to a
/// `tl_spec`; `out` is NULL or points to writable memory for a handle.
#[no_mangle]
pub unsafe extern "C" fn tl_queue_consumer_open(
    name: *const c_char,
    expect: *const tl_spec,
    out: *mut *mut tl_queue_consumer,
) -> tl_status {
    call(|| {
        // SAFETY: the promises of this function's documentation, forwarded.
        unsafe {
            handle::opened(out, || {
                let mut options = OpenOptions::new();
                if let Some(expect) = args::read_opt(expect, "expect")? {
                    options = options.expect(&spec_from_c(&expect)?);
                }
                let lane = QueueConsumer::open_with(args::name(name)?, options)?;
                Ok(Consumer { lane, loan: None })
            })
        }
    })
}

/// Opens queue `name` as its consumer with `*options` (NULL: the defaults): an
/// expected tensor, pre-faulting, locking.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `options` is NULL or points to a
/// `tl_open_options` live for the call; `out` is NULL or points to writable memory
/// for a handle.
#[no_mangle]
pub unsafe extern "C" fn tl_queue_consumer_open_with(
    name: *const c_char,
    options: *const tl_open_options,
    out: *mut *mut tl_queue_consumer,
) -> tl_status {
    call(|| {
        // SAFETY: the promises of this function's documentation, forwarded.
        unsafe {
            handle::opened(out, || {
                let options = open_from_c(options)?;
                let lane = QueueConsumer::open_with(args::name(name)?, options)?;
                Ok(Consumer { lane, loan: None })
            })
        }
    })
}

/// Closes a consumer (NULL: nothing to do); a lent item stays at the head.
#[no_mangle]
pub extern "C" fn tl_queue_consumer_close(consumer: *mut tl_queue_consumer) -> tl_status {
    call(|| handle::close::<Consumer, _>(consumer))
}

/// Pops the next item into `out`, waiting (see the timeout convention) for one.
/// Once the producer is gone and every item it pushed was popped:
/// `TL_ERR_WRITER_GONE`.
///
/// # Safety
/// `out` is NULL or points to `len` writable bytes; `frame` is NULL or points to
/// writable memory for a `tl_frame`.
#[no_mangle]
pub unsafe extern "C" fn tl_queue_consumer_pop(
    consumer: *mut tl_queue_consumer,
    out: *mut c_void,
    len: usize,
    timeout_ns: i64,
    frame: *mut tl_frame,
) -> tl_status {
    call(|| {
        let wait = args::wait(timeout_ns)?;
        handle::with(consumer, |c: &mut Consumer| {
            if c.loan.is_some() {
                return Err(loan_open("popping"));
            }
            args::check_opt(frame, "frame")?;
            // SAFETY: the promises of this function's documentation.
            let buffer = unsafe { args::output(out, len, c.lane.spec().byte_len())? };
            let got = match wait {
                Wait::Never => c.lane.try_pop(buffer),
                Wait::Until(None) => c.lane.pop(buffer),
                Wait::Until(Some(deadline)) => c.lane.pop_deadline(buffer, deadline),
            }?;
            // SAFETY: as above.
            unsafe { args::write_opt(frame, frame_to_c(&got), "frame") }
        })
    })
}

/// Waits (see the timeout convention) for the next item and lends it in place:
/// `*data` receives the address of its tensor bytes, `*len` (if not NULL) their
/// number, `*frame` (if not NULL) its metadata. Read it there, then
/// `tl_queue_consumer_release` removes it. Lending again before releasing lends the
/// same item; a failed call leaves no loan open. The bytes are aligned to 8 bytes.
///
/// # Safety
/// `data` is NULL or points to a writable `const void*`; `len` is NULL or points to
/// a writable `size_t`; `frame` is NULL or points to writable memory for a
/// `tl_frame`. The bytes lent may be read only until the loan is released or
/// cancelled or the handle closed, and never written; every other process that
/// writes this lane follows docs/LAYOUT.md.
#[no_mangle]
pub unsafe extern "C" fn tl_queue_consumer_loan(
    consumer: *mut tl_queue_consumer,
    timeout_ns: i64,
    data: *mut *const c_void,
    len: *mut usize,
    frame: *mut tl_frame,
) -> tl_status {
    call(|| {
        let wait = args::wait(timeout_ns)?;
        handle::with(consumer, |c: &mut Consumer| {
            args::check_typed(data.cast_const(), "data")?;
            args::check_opt(len, "len")?;
            args::check_opt(frame, "frame")?;
            c.loan = None;
            // SAFETY: the caller's promise that its peers follow the layout, and to
            // only read through the address while the loan is open (this
            // function's documentation), is `hold_item`'s contract.
            let (got, held) = unsafe { c.lane.hold_item(wait)? };
            let (address, bytes) = (held.as_ptr().cast_const(), held.len());
            c.loan = Some(held);
            // SAFETY: `data` checked non-null and aligned above; writable by the
            // caller's promise.
            unsafe { args::write(data, address.cast::<c_void>(), "data")? };
            // SAFETY: as above, for `len` and `frame`.
            unsafe { args::write_opt(len, bytes, "len")? };
            // SAFETY: as above.
            unsafe { args::write_opt(frame, frame_to_c(&got), "frame") }
        })
    })
}

/// Removes the item lent by `tl_queue_consumer_loan` (`TL_ERR_LOAN_STATE` if no
/// loan is open). Its bytes may not be read afterwards.
#[no_mangle]
pub extern "C" fn tl_queue_consumer_release(consumer: *mut tl_queue_consumer) -> tl_status {
    call(|| {
        handle::with(consumer, |c: &mut Consumer| {
            let held = c.loan.take().ok_or_else(|| no_loan("release"))?;
            Ok(c.lane.release_held(held)?)
        })
    })
}

/// Ends the loan leaving the item at the head of the queue, for the next pop or
/// loan (`TL_ERR_LOAN_STATE` if no loan is open).
#[no_mangle]
pub extern "C" fn tl_queue_consumer_cancel(consumer: *mut tl_queue_consumer) -> tl_status {
    call(|| {
        handle::with(consumer, |c: &mut Consumer| {
            c.loan.take().map(drop).ok_or_else(|| no_loan("cancel"))
        })
    })
}

/// Writes the queue's tensor spec to `*spec`.
///
/// # Safety
/// `spec` is NULL or points to writable memory for a `tl_spec`.
#[no_mangle]
pub unsafe extern "C" fn tl_queue_consumer_spec(
    consumer: *mut tl_queue_consumer,
    spec: *mut tl_spec,
) -> tl_status {
    call(|| {
        handle::with(consumer, |c: &mut Consumer| {
            // SAFETY: the promise of this function's documentation.
            unsafe { args::write(spec, spec_to_c(c.lane.spec()), "spec") }
        })
    })
}
