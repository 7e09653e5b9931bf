//! Every error code the boundary gives, from the C side: bad pointers (NULL,
//! misaligned), short buffers, closed and mistyped handles, loans out of order,
//! invalid arguments, and the lane errors a C program meets (exists, not found,
//! wrong kind or tensor, role taken, table full, corrupt segment). Each failure also
//! leaves a message for `tl_last_error_message`, and a failed call consumes
//! nothing.
// The lanes are compiled out under the checkers' features (see tensorlane-shm).
#![cfg(not(any(feature = "loom", feature = "shuttle")))]

mod common;

use common::*;
use std::ffi::{c_void, CStr};
use std::ptr::{null, null_mut};
use tensorlane_capi::tl_status::*;
use tensorlane_capi::*;

/// An 8-byte-aligned buffer, to make misaligned typed pointers from.
#[repr(align(8))]
struct Aligned([u8; 128]);

#[test]
fn status_names_are_distinct_and_unknown_codes_named() {
    let mut names = std::collections::HashSet::new();
    for code in 0..=26 {
        // SAFETY: the library returns static NUL-terminated strings.
        let name = unsafe { CStr::from_ptr(tl_status_name(code)) }
            .to_str()
            .unwrap();
        assert!(name.starts_with("TL_"), "{code}: {name}");
        assert_ne!(name, "TL_UNKNOWN", "{code}");
        assert!(names.insert(name), "{name} twice");
    }
    // SAFETY: as above.
    let unknown = unsafe { CStr::from_ptr(tl_status_name(27)) };
    assert_eq!(unknown.to_str().unwrap(), "TL_UNKNOWN");
    // SAFETY: as above.
    let timeout = unsafe { CStr::from_ptr(tl_status_name(TL_ERR_TIMEOUT as i32)) };
    assert_eq!(timeout.to_str().unwrap(), "TL_ERR_TIMEOUT");
}

#[test]
#[cfg_attr(miri, ignore = "shared memory")]
fn null_pointers_are_refused() {
    let name = Name::new("null");
    let spec = f64_2x3();
    let mut writer = null_mut();
    let mut data = [0u8; 48];
    // SAFETY: every non-null pointer is to a live local.
    unsafe {
        expect(
            tl_stream_writer_create(null(), &spec, 3, &mut writer),
            TL_ERR_NULL_POINTER,
        );
        assert!(last_error().contains("name is NULL"), "{}", last_error());
        expect(
            tl_stream_writer_create(name.ptr(), null(), 3, &mut writer),
            TL_ERR_NULL_POINTER,
        );
        expect(
            tl_stream_writer_create(name.ptr(), &spec, 3, null_mut()),
            TL_ERR_NULL_POINTER,
        );
        // Nothing was created by the refused calls.
        let mut reader = null_mut();
        expect(
            tl_stream_reader_open(name.ptr(), null(), &mut reader),
            TL_ERR_NOT_FOUND,
        );
        assert!(reader.is_null());
        ok(tl_stream_writer_create(name.ptr(), &spec, 3, &mut writer));
        expect(
            tl_stream_writer_write(null_mut(), data.as_ptr().cast(), 48, null_mut()),
            TL_ERR_NULL_POINTER,
        );
        expect(
            tl_stream_writer_write(writer, null(), 48, null_mut()),
            TL_ERR_NULL_POINTER,
        );
        expect(
            tl_stream_writer_spec(writer, null_mut()),
            TL_ERR_NULL_POINTER,
        );
        ok(tl_stream_reader_open(name.ptr(), null(), &mut reader));
        expect(
            tl_stream_reader_read(reader, null_mut(), 48, null_mut()),
            TL_ERR_NULL_POINTER,
        );
        ok(tl_stream_writer_write(
            writer,
            data.as_ptr().cast(),
            48,
            null_mut(),
        ));
        expect(
            tl_stream_reader_read_new(reader, null_mut(), 48, 0, null_mut()),
            TL_ERR_NULL_POINTER,
        );
        ok(tl_stream_reader_read_new(
            reader,
            data.as_mut_ptr().cast(),
            48,
            0,
            null_mut(),
        ));
        // Closing NULL is nothing to do.
        ok(tl_stream_writer_close(null_mut()));
        ok(tl_stream_writer_close(writer));
        ok(tl_stream_reader_close(reader));
    }
}

#[test]
#[cfg_attr(miri, ignore = "shared memory")]
fn misaligned_typed_pointers_are_refused_before_anything_is_consumed() {
    let name = Name::new("align");
    let spec = f64_2x3();
    let mut buffer = Aligned([0; 128]);
    let base = buffer.0.as_mut_ptr();
    let mut producer = null_mut();
    let mut consumer = null_mut();
    // SAFETY: the misaligned pointers point into `buffer`, with room for their type;
    // the library refuses them before any use.
    unsafe {
        let odd = base.add(1);
        expect(
            tl_queue_producer_create(name.ptr(), odd.cast(), 4, &mut producer),
            TL_ERR_MISALIGNED,
        );
        expect(
            tl_queue_producer_create(name.ptr(), &spec, 4, odd.cast()),
            TL_ERR_MISALIGNED,
        );
        ok(tl_queue_producer_create(
            name.ptr(),
            &spec,
            4,
            &mut producer,
        ));
        ok(tl_queue_consumer_open(name.ptr(), null(), &mut consumer));
        let tensor = [3.0f64; 6];
        expect(
            tl_queue_producer_push(producer, tensor.as_ptr().cast(), 48, 0, odd.cast()),
            TL_ERR_MISALIGNED,
        );
        ok(tl_queue_producer_push(
            producer,
            tensor.as_ptr().cast(),
            48,
            0,
            null_mut(),
        ));
        let mut out = [0f64; 6];
        expect(
            tl_queue_consumer_pop(consumer, out.as_mut_ptr().cast(), 48, 0, odd.cast()),
            TL_ERR_MISALIGNED,
        );
        let mut data: *const c_void = null();
        expect(
            tl_queue_consumer_loan(consumer, 0, &mut data, odd.add(8).cast(), null_mut()),
            TL_ERR_MISALIGNED,
        );
        expect(
            tl_queue_consumer_loan(consumer, 0, odd.cast(), null_mut(), null_mut()),
            TL_ERR_MISALIGNED,
        );
        // The refused calls consumed nothing: the item is still there.
        let mut frame = tl_frame::default();
        ok(tl_queue_consumer_pop(
            consumer,
            out.as_mut_ptr().cast(),
            48,
            0,
            &mut frame,
        ));
        assert_eq!((out, frame.seq), (tensor, 1));
        // Byte buffers need no alignment.
        ok(tl_queue_producer_push(
            producer,
            odd.cast_const().cast(),
            48,
            0,
            null_mut(),
        ));
        ok(tl_queue_consumer_pop(
            consumer,
            odd.cast(),
            48,
            0,
            null_mut(),
        ));
        ok(tl_queue_producer_close(producer));
        ok(tl_queue_consumer_close(consumer));
    }
}

#[test]
#[cfg_attr(miri, ignore = "shared memory")]
fn buffers_of_another_length_are_refused() {
    let name = Name::new("short");
    let spec = f64_2x3();
    let mut publisher = null_mut();
    let mut subscriber = null_mut();
    let tensor = [1.0f64; 6];
    let mut out = [0f64; 6];
    // SAFETY: every buffer is at least as long as the length passed.
    unsafe {
        ok(tl_topic_publisher_create(
            name.ptr(),
            &spec,
            4,
            2,
            &mut publisher,
        ));
        ok(tl_topic_subscriber_open(
            name.ptr(),
            null(),
            null(),
            &mut subscriber,
        ));
        for len in [0, 40, 47] {
            expect(
                tl_topic_publisher_publish(publisher, tensor.as_ptr().cast(), len, 0, null_mut()),
                TL_ERR_BUFFER_SIZE,
            );
        }
        assert!(last_error().contains("47 bytes"), "{}", last_error());
        ok(tl_topic_publisher_publish(
            publisher,
            tensor.as_ptr().cast(),
            48,
            0,
            null_mut(),
        ));
        expect(
            tl_topic_subscriber_recv(subscriber, out.as_mut_ptr().cast(), 40, 0, null_mut()),
            TL_ERR_BUFFER_SIZE,
        );
        // Refused before the receive: the item is still there.
        ok(tl_topic_subscriber_recv(
            subscriber,
            out.as_mut_ptr().cast(),
            48,
            0,
            null_mut(),
        ));
        assert_eq!(out, tensor);
        ok(tl_topic_subscriber_close(subscriber));
        ok(tl_topic_publisher_close(publisher));
    }
}

#[test]
#[cfg_attr(miri, ignore = "shared memory")]
fn closed_and_mistyped_handles_are_refused() {
    let name = Name::new("closed");
    let spec = f64_2x3();
    let mut writer = null_mut();
    let tensor = [1.0f64; 6];
    // SAFETY: pointers to live locals; handles are tokens the library checks.
    unsafe {
        ok(tl_stream_writer_create(name.ptr(), &spec, 3, &mut writer));
        // A writer handle passed as a reader (a C cast).
        let cast = writer.cast::<tl_stream_reader>();
        let mut out = [0f64; 6];
        expect(
            tl_stream_reader_read(cast, out.as_mut_ptr().cast(), 48, null_mut()),
            TL_ERR_WRONG_HANDLE,
        );
        assert!(last_error().contains("stream writer"), "{}", last_error());
        expect(tl_stream_reader_close(cast), TL_ERR_WRONG_HANDLE);
        // The refused close closed nothing.
        ok(tl_stream_writer_write(
            writer,
            tensor.as_ptr().cast(),
            48,
            null_mut(),
        ));
        ok(tl_stream_writer_close(writer));
        expect(
            tl_stream_writer_write(writer, tensor.as_ptr().cast(), 48, null_mut()),
            TL_ERR_CLOSED,
        );
        expect(tl_stream_writer_close(writer), TL_ERR_CLOSED);
        // A handle never issued.
        let forged = std::ptr::without_provenance_mut::<tl_queue_producer>(usize::MAX / 2);
        expect(tl_queue_producer_cancel(forged), TL_ERR_CLOSED);
        // A new handle never reuses a closed one.
        let mut next = null_mut();
        ok(tl_stream_writer_take_over(name.ptr(), &mut next));
        assert_ne!(next, writer);
        expect(
            tl_stream_writer_write(writer, tensor.as_ptr().cast(), 48, null_mut()),
            TL_ERR_CLOSED,
        );
        ok(tl_stream_writer_close(next));
    }
}

#[test]
#[cfg_attr(miri, ignore = "shared memory")]
fn loans_out_of_order_are_refused() {
    let name = Name::new("loans");
    let spec = f64_2x3();
    let mut producer = null_mut();
    let mut consumer = null_mut();
    let tensor = [2.0f64; 6];
    let mut out = [0f64; 6];
    // SAFETY: pointers to live locals; loaned bytes are not touched.
    unsafe {
        ok(tl_queue_producer_create(
            name.ptr(),
            &spec,
            4,
            &mut producer,
        ));
        ok(tl_queue_consumer_open(name.ptr(), null(), &mut consumer));
        expect(
            tl_queue_producer_commit(producer, null_mut()),
            TL_ERR_LOAN_STATE,
        );
        expect(tl_queue_producer_cancel(producer), TL_ERR_LOAN_STATE);
        expect(tl_queue_consumer_release(consumer), TL_ERR_LOAN_STATE);
        expect(tl_queue_consumer_cancel(consumer), TL_ERR_LOAN_STATE);
        let mut data: *mut c_void = null_mut();
        ok(tl_queue_producer_loan(producer, 0, &mut data, null_mut()));
        expect(
            tl_queue_producer_push(producer, tensor.as_ptr().cast(), 48, 0, null_mut()),
            TL_ERR_LOAN_STATE,
        );
        ok(tl_queue_producer_cancel(producer));
        ok(tl_queue_producer_push(
            producer,
            tensor.as_ptr().cast(),
            48,
            0,
            null_mut(),
        ));
        let mut item: *const c_void = null();
        ok(tl_queue_consumer_loan(
            consumer,
            0,
            &mut item,
            null_mut(),
            null_mut(),
        ));
        expect(
            tl_queue_consumer_pop(consumer, out.as_mut_ptr().cast(), 48, 0, null_mut()),
            TL_ERR_LOAN_STATE,
        );
        ok(tl_queue_consumer_release(consumer));
        expect(tl_queue_consumer_release(consumer), TL_ERR_LOAN_STATE);
        // An empty queue: a try is Empty, and no loan is left open.
        expect(
            tl_queue_consumer_loan(consumer, 0, &mut item, null_mut(), null_mut()),
            TL_ERR_EMPTY,
        );
        expect(tl_queue_consumer_release(consumer), TL_ERR_LOAN_STATE);
        // Closing with a loan open gives it up.
        ok(tl_queue_producer_loan(producer, 0, &mut data, null_mut()));
        ok(tl_queue_producer_close(producer));
        expect(
            tl_queue_consumer_pop(
                consumer,
                out.as_mut_ptr().cast(),
                48,
                TL_FOREVER,
                null_mut(),
            ),
            TL_ERR_WRITER_GONE,
        );
        ok(tl_queue_consumer_close(consumer));
    }
}

#[test]
#[cfg_attr(miri, ignore = "shared memory")]
fn invalid_arguments_are_refused() {
    let name = Name::new("invalid");
    let mut writer = null_mut();
    let mut subscriber = null_mut();
    let mut bytes = 0usize;
    // SAFETY: pointers to live locals.
    unsafe {
        let mut bad = f64_2x3();
        bad.dtype = 99;
        expect(tl_spec_byte_len(&bad, &mut bytes), TL_ERR_INVALID_ARGUMENT);
        assert!(last_error().contains("99"), "{}", last_error());
        let mut bad = f64_2x3();
        bad.ndim = 9;
        expect(tl_spec_byte_len(&bad, &mut bytes), TL_ERR_INVALID_ARGUMENT);
        let huge = spec(tl_dtype::TL_F64, &[u64::MAX, 2]);
        expect(tl_spec_byte_len(&huge, &mut bytes), TL_ERR_INVALID_ARGUMENT);
        let spec = f64_2x3();
        let bad_name = c"-starts-with-a-dash";
        expect(
            tl_stream_writer_create(bad_name.as_ptr(), &spec, 3, &mut writer),
            TL_ERR_INVALID_ARGUMENT,
        );
        let not_utf8 = [0xffu8, 0xfe, 0];
        expect(
            tl_stream_writer_create(not_utf8.as_ptr().cast(), &spec, 3, &mut writer),
            TL_ERR_INVALID_ARGUMENT,
        );
        expect(
            tl_stream_writer_create(name.ptr(), &spec, 0, &mut writer),
            TL_ERR_INVALID_ARGUMENT,
        );
        ok(tl_stream_writer_create(name.ptr(), &spec, 3, &mut writer));
        let mut reader = null_mut();
        ok(tl_stream_reader_open(name.ptr(), null(), &mut reader));
        let mut out = [0f64; 6];
        for timeout in [-2, i64::MIN] {
            expect(
                tl_stream_reader_read_new(reader, out.as_mut_ptr().cast(), 48, timeout, null_mut()),
                TL_ERR_INVALID_ARGUMENT,
            );
        }
        let topic = Name::new("invalid-topic");
        let mut publisher = null_mut();
        expect(
            tl_topic_publisher_create(topic.ptr(), &spec, 3, 2, &mut publisher),
            TL_ERR_INVALID_ARGUMENT,
        );
        ok(tl_topic_publisher_create(
            topic.ptr(),
            &spec,
            4,
            2,
            &mut publisher,
        ));
        let options = tl_subscribe_options {
            mode: 7,
            max_lag: 1,
            history: 0,
        };
        expect(
            tl_topic_subscriber_open(topic.ptr(), null(), &options, &mut subscriber),
            TL_ERR_INVALID_ARGUMENT,
        );
        assert!(subscriber.is_null());
        ok(tl_topic_publisher_close(publisher));
        ok(tl_stream_reader_close(reader));
        ok(tl_stream_writer_close(writer));
    }
}

#[test]
#[cfg_attr(miri, ignore = "shared memory")]
fn lane_errors_have_their_codes() {
    let name = Name::new("lane-errors");
    let spec = f64_2x3();
    let mut writer = null_mut();
    let mut other = null_mut();
    // SAFETY: pointers to live locals.
    unsafe {
        let missing = Name::new("missing");
        let mut reader = null_mut();
        expect(
            tl_stream_reader_open(missing.ptr(), null(), &mut reader),
            TL_ERR_NOT_FOUND,
        );
        expect(tl_unlink(missing.ptr()), TL_ERR_NOT_FOUND);
        ok(tl_stream_writer_create(name.ptr(), &spec, 3, &mut writer));
        expect(
            tl_stream_writer_create(name.ptr(), &spec, 3, &mut other),
            TL_ERR_ALREADY_EXISTS,
        );
        expect(
            tl_stream_writer_take_over(name.ptr(), &mut other),
            TL_ERR_ROLE_TAKEN,
        );
        let mut consumer = null_mut();
        expect(
            tl_queue_consumer_open(name.ptr(), null(), &mut consumer),
            TL_ERR_WRONG_KIND,
        );
        let other_spec = spec_of_f32();
        expect(
            tl_stream_reader_open(name.ptr(), &other_spec, &mut reader),
            TL_ERR_WRONG_SPEC,
        );
        ok(tl_stream_writer_close(writer));

        let topic = Name::new("full-table");
        let mut publisher = null_mut();
        let mut first = null_mut();
        let mut second = null_mut();
        ok(tl_topic_publisher_create(
            topic.ptr(),
            &spec,
            4,
            1,
            &mut publisher,
        ));
        ok(tl_topic_subscriber_open(
            topic.ptr(),
            null(),
            null(),
            &mut first,
        ));
        expect(
            tl_topic_subscriber_open(topic.ptr(), null(), null(), &mut second),
            TL_ERR_TABLE_FULL,
        );
        ok(tl_topic_subscriber_close(first));
        ok(tl_topic_subscriber_open(
            topic.ptr(),
            null(),
            null(),
            &mut second,
        ));
        ok(tl_topic_subscriber_close(second));
        ok(tl_topic_publisher_close(publisher));
    }
}

fn spec_of_f32() -> tl_spec {
    spec(tl_dtype::TL_F32, &[2, 3])
}

#[test]
#[cfg_attr(miri, ignore = "shared memory")]
fn a_corrupt_segment_is_reported() {
    let name = Name::new("corrupt");
    let spec = f64_2x3();
    let mut writer = null_mut();
    // SAFETY: pointers to live locals.
    unsafe { ok(tl_stream_writer_create(name.ptr(), &spec, 3, &mut writer)) };
    ok(tl_stream_writer_close(writer));
    // Scribble over the header (its checksum no longer matches).
    let path = format!("/dev/shm/tensorlane.{}", name.0.to_str().unwrap());
    let mut contents = std::fs::read(&path).unwrap();
    for byte in &mut contents[16..64] {
        *byte ^= 0x5a;
    }
    std::fs::write(&path, &contents).unwrap();
    let mut reader = null_mut();
    // SAFETY: pointers to live locals.
    unsafe {
        expect(
            tl_stream_reader_open(name.ptr(), null(), &mut reader),
            TL_ERR_CORRUPT,
        )
    };
    assert!(reader.is_null());
}

#[test]
fn messages_are_per_thread_and_kept_across_successes() {
    let mut bytes = 0usize;
    let mut bad = f64_2x3();
    bad.dtype = 42;
    // SAFETY: pointers to live locals.
    unsafe {
        expect(tl_spec_byte_len(&bad, &mut bytes), TL_ERR_INVALID_ARGUMENT);
        let message = last_error();
        assert!(message.contains("42"), "{message}");
        ok(tl_spec_byte_len(&f64_2x3(), &mut bytes));
        assert_eq!(last_error(), message);
    }
    let other = std::thread::spawn(last_error).join().unwrap();
    assert_eq!(other, "");
}
