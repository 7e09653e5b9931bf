//! Topics (broadcast: one publisher, lossless and lossy subscribers): create, take
//! over, join (each also with options), close, publish, receive.

use crate::args;
use crate::handle::{self, Kind};
use crate::options::{create_from_c, open_from_c, tl_create_options, tl_open_options};
use crate::status::{call, tl_status};
use crate::types::{
    frame_to_c, spec_from_c, spec_to_c, subscribe_from_c, tl_frame, tl_spec, tl_subscribe_options,
};
use std::ffi::{c_char, c_void};
use tensorlane_shm::{OpenOptions, TopicPublisher, TopicSubscriber, Wait};

/// The publisher of a topic (an opaque handle).
pub struct tl_topic_publisher {
    _opaque: [u8; 0],
}

/// A subscriber of a topic (an opaque handle).
pub struct tl_topic_subscriber {
    _opaque: [u8; 0],
}

impl Kind for TopicPublisher {
    const NAME: &'static str = "topic publisher";
}

impl Kind for TopicSubscriber {
    const NAME: &'static str = "topic subscriber";
}

/// Creates topic `name` of `capacity` tensors `*spec` (a power of two: the history
/// kept) with a table of `max_subscribers` entries, and becomes its publisher.
/// `tl_topic_publisher_create_with` with default options.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `spec` is NULL or points to a
/// `tl_spec`; `out` is NULL or points to writable memory for a handle.
#[no_mangle]
pub unsafe extern "C" fn tl_topic_publisher_create(
    name: *const c_char,
    spec: *const tl_spec,
    capacity: usize,
    max_subscribers: usize,
    out: *mut *mut tl_topic_publisher,
) -> tl_status {
    // SAFETY: the promises of this function's documentation, forwarded.
    unsafe {
        tl_topic_publisher_create_with(name, spec, capacity, max_subscribers, std::ptr::null(), out)
    }
}

/// `tl_topic_publisher_create` with `*options` (NULL: the defaults): metadata,
/// clock, group access, pre-faulting, locking.
///
/// # Safety
/// As for `tl_topic_publisher_create`; `options` is NULL or points to a
/// `tl_create_options` (with its metadata array and strings) live for the call.
#[no_mangle]
pub unsafe extern "C" fn tl_topic_publisher_create_with(
    name: *const c_char,
    spec: *const tl_spec,
    capacity: usize,
    max_subscribers: usize,
    options: *const tl_create_options,
    out: *mut *mut tl_topic_publisher,
) -> tl_status {
    call(|| {
        // SAFETY: the promises of this function's documentation, forwarded.
        unsafe {
            handle::opened(out, || {
                let spec = spec_from_c(&args::read(spec, "spec")?)?;
                let options = create_from_c(options)?;
                let name = args::name(name)?;
                Ok(TopicPublisher::create_with(
                    name,
                    &spec,
                    capacity,
                    max_subscribers,
                    options,
                )?)
            })
        }
    })
}

/// Becomes the publisher of existing topic `name`, whose publisher is gone.
/// `tl_topic_publisher_take_over_with` with default options.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `out` is NULL or points to writable
/// memory for a handle.
#[no_mangle]
pub unsafe extern "C" fn tl_topic_publisher_take_over(
    name: *const c_char,
    out: *mut *mut tl_topic_publisher,
) -> tl_status {
    // SAFETY: the promises of this function's documentation, forwarded.
    unsafe { tl_topic_publisher_take_over_with(name, std::ptr::null(), out) }
}

/// `tl_topic_publisher_take_over` with `*options` (NULL: the defaults): an
/// expected tensor, pre-faulting, locking.
///
/// # Safety
/// As for `tl_topic_publisher_take_over`; `options` is NULL or points to a
/// `tl_open_options` live for the call.
#[no_mangle]
pub unsafe extern "C" fn tl_topic_publisher_take_over_with(
    name: *const c_char,
    options: *const tl_open_options,
    out: *mut *mut tl_topic_publisher,
) -> tl_status {
    call(|| {
        // SAFETY: the promises of this function's documentation, forwarded.
        unsafe {
            handle::opened(out, || {
                let options = open_from_c(options)?;
                Ok(TopicPublisher::take_over_with(args::name(name)?, options)?)
            })
        }
    })
}

/// Closes a publisher (NULL: nothing to do). Subscribers receive what was
/// published, then `TL_ERR_WRITER_GONE`.
#[no_mangle]
pub extern "C" fn tl_topic_publisher_close(publisher: *mut tl_topic_publisher) -> tl_status {
    call(|| handle::close::<TopicPublisher, _>(publisher))
}

/// Publishes a copy of one tensor, waiting (see the timeout convention) while a
/// lossless subscriber holds the publisher back (one that died is evicted). `*seq`
/// (if not NULL) receives its sequence number.
///
/// # Safety
/// `data` is NULL or points to `len` readable bytes; `seq` is NULL or points to a
/// writable `uint64_t`.
#[no_mangle]
pub unsafe extern "C" fn tl_topic_publisher_publish(
    publisher: *mut tl_topic_publisher,
    data: *const c_void,
    len: usize,
    timeout_ns: i64,
    seq: *mut u64,
) -> tl_status {
    call(|| {
        let wait = args::wait(timeout_ns)?;
        handle::with(publisher, |lane: &mut TopicPublisher| {
            args::check_opt(seq, "seq")?;
            // SAFETY: the promises of this function's documentation.
            let tensor = unsafe { args::input(data, len, lane.spec().byte_len())? };
            let published = match wait {
                Wait::Never => lane.try_publish(tensor),
                Wait::Until(None) => lane.publish(tensor),
                Wait::Until(Some(deadline)) => lane.publish_deadline(tensor, deadline),
            }?;
            // SAFETY: as above.
            unsafe { args::write_opt(seq, published, "seq") }
        })
    })
}

/// Writes the topic's tensor spec to `*spec`.
///
/// # Safety
/// `spec` is NULL or points to writable memory for a `tl_spec`.
#[no_mangle]
pub unsafe extern "C" fn tl_topic_publisher_spec(
    publisher: *mut tl_topic_publisher,
    spec: *mut tl_spec,
) -> tl_status {
    call(|| {
        handle::with(publisher, |lane: &mut TopicPublisher| {
            // SAFETY: the promise of this function's documentation.
            unsafe { args::write(spec, spec_to_c(lane.spec()), "spec") }
        })
    })
}

/// Joins topic `name` as a subscriber: `options` NULL is lossless from the next
/// item published; if `expect` is not NULL the topic must carry that tensor
/// (`TL_ERR_WRONG_SPEC`). `TL_ERR_TABLE_FULL` if every entry is taken.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `expect` is NULL or points to a
/// `tl_spec`; `options` is NULL or points to a `tl_subscribe_options`; `out` is
/// NULL or points to writable memory for a handle.
#[no_mangle]
pub unsafe extern "C" fn tl_topic_subscriber_open(
    name: *const c_char,
    expect: *const tl_spec,
    options: *const tl_subscribe_options,
    out: *mut *mut tl_topic_subscriber,
) -> tl_status {
    call(|| {
        // SAFETY: the promises of this function's documentation, forwarded.
        unsafe {
            handle::opened(out, || {
                let subscribe = subscribe_from_c(args::read_opt(options, "options")?.as_ref())?;
                let mut open = OpenOptions::new();
                if let Some(expect) = args::read_opt(expect, "expect")? {
                    open = open.expect(&spec_from_c(&expect)?);
                }
                Ok(TopicSubscriber::open_with(
                    args::name(name)?,
                    subscribe,
                    open,
                )?)
            })
        }
    })
}

/// Joins topic `name` as a subscriber as `tl_topic_subscriber_open` does, with
/// `*open` (NULL: the defaults) for an expected tensor, pre-faulting and locking.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string; `options` is NULL or points to a
/// `tl_subscribe_options`; `open` is NULL or points to a `tl_open_options` live for
/// the call; `out` is NULL or points to writable memory for a handle.
#[no_mangle]
pub unsafe extern "C" fn tl_topic_subscriber_open_with(
    name: *const c_char,
    options: *const tl_subscribe_options,
    open: *const tl_open_options,
    out: *mut *mut tl_topic_subscriber,
) -> tl_status {
    call(|| {
        // SAFETY: the promises of this function's documentation, forwarded.
        unsafe {
            handle::opened(out, || {
                let subscribe = subscribe_from_c(args::read_opt(options, "options")?.as_ref())?;
                let open = open_from_c(open)?;
                Ok(TopicSubscriber::open_with(
                    args::name(name)?,
                    subscribe,
                    open,
                )?)
            })
        }
    })
}

/// Leaves the topic (NULL: nothing to do), waking a publisher it held back.
#[no_mangle]
pub extern "C" fn tl_topic_subscriber_close(subscriber: *mut tl_topic_subscriber) -> tl_status {
    call(|| handle::close::<TopicSubscriber, _>(subscriber))
}

/// Receives the next item into `out`, waiting (see the timeout convention) for one.
/// `tl_frame::missed` counts the items a lossy subscriber skipped before it;
/// `TL_ERR_EVICTED` once the publisher evicted this subscriber; `TL_ERR_WRITER_GONE`
/// once the publisher is gone and everything was received.
///
/// # Safety
/// `out` is NULL or points to `len` writable bytes; `frame` is NULL or points to
/// writable memory for a `tl_frame`.
#[no_mangle]
pub unsafe extern "C" fn tl_topic_subscriber_recv(
    subscriber: *mut tl_topic_subscriber,
    out: *mut c_void,
    len: usize,
    timeout_ns: i64,
    frame: *mut tl_frame,
) -> tl_status {
    call(|| {
        let wait = args::wait(timeout_ns)?;
        handle::with(subscriber, |lane: &mut TopicSubscriber| {
            args::check_opt(frame, "frame")?;
            // SAFETY: the promises of this function's documentation.
            let buffer = unsafe { args::output(out, len, lane.spec().byte_len())? };
            let got = match wait {
                Wait::Never => lane.try_recv(buffer),
                Wait::Until(None) => lane.recv(buffer),
                Wait::Until(Some(deadline)) => lane.recv_deadline(buffer, deadline),
            }?;
            // SAFETY: as above.
            unsafe { args::write_opt(frame, frame_to_c(&got), "frame") }
        })
    })
}

/// Writes the topic's tensor spec to `*spec`.
///
/// # Safety
/// `spec` is NULL or points to writable memory for a `tl_spec`.
#[no_mangle]
pub unsafe extern "C" fn tl_topic_subscriber_spec(
    subscriber: *mut tl_topic_subscriber,
    spec: *mut tl_spec,
) -> tl_status {
    call(|| {
        handle::with(subscriber, |lane: &mut TopicSubscriber| {
            // SAFETY: the promise of this function's documentation.
            unsafe { args::write(spec, spec_to_c(lane.spec()), "spec") }
        })
    })
}
