//! The C ABI used as C uses it: streams, queues (copies and loans) and topics
//! (lossless and lossy), each round trip checked value by value.
// The lanes are compiled out under the checkers' features (see tensorlane-shm).
#![cfg(not(any(feature = "loom", feature = "shuttle")))]

mod common;

use common::*;
use std::ffi::c_void;
use std::ptr::{null, null_mut};
use tensorlane_capi::tl_status::*;
use tensorlane_capi::*;

#[test]
#[cfg_attr(miri, ignore = "shared memory")]
fn stream_round_trip_and_spec() {
    let name = Name::new("stream");
    let spec = f64_2x3();
    let mut writer = null_mut();
    let mut reader = null_mut();
    let mut frame = tl_frame::default();
    let mut out = [0f64; 6];
    let out_len = std::mem::size_of_val(&out);
    // SAFETY: every pointer is to a live local of the right type and length.
    unsafe {
        ok(tl_stream_writer_create(name.ptr(), &spec, 3, &mut writer));
        ok(tl_stream_reader_open(name.ptr(), &spec, &mut reader));
        expect(
            tl_stream_reader_read(reader, out.as_mut_ptr().cast(), out_len, &mut frame),
            TL_ERR_EMPTY,
        );
        let mut seq = 0;
        let data = bytes(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        ok(tl_stream_writer_write(
            writer,
            data.as_ptr().cast(),
            data.len(),
            &mut seq,
        ));
        assert_eq!(seq, 1);
        ok(tl_stream_reader_read_new(
            reader,
            out.as_mut_ptr().cast(),
            out_len,
            1_000_000_000,
            &mut frame,
        ));
        assert_eq!(out, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!((frame.seq, frame.frame_id, frame.missed), (1, 1, 0));
        expect(
            tl_stream_reader_read_new(reader, out.as_mut_ptr().cast(), out_len, 0, null_mut()),
            TL_ERR_EMPTY,
        );
        expect(
            tl_stream_reader_read_new(
                reader,
                out.as_mut_ptr().cast(),
                out_len,
                1_000_000,
                null_mut(),
            ),
            TL_ERR_TIMEOUT,
        );
        ok(tl_stream_reader_read(
            reader,
            out.as_mut_ptr().cast(),
            out_len,
            null_mut(),
        ));
        let mut got = std::mem::zeroed::<tl_spec>();
        ok(tl_stream_reader_spec(reader, &mut got));
        assert_eq!(got, spec);
        ok(tl_stream_writer_spec(writer, &mut got));
        assert_eq!(got, spec);
        let mut alive = false;
        ok(tl_stream_reader_writer_alive(reader, &mut alive));
        assert!(alive);
        ok(tl_stream_writer_close(writer));
        ok(tl_stream_reader_writer_alive(reader, &mut alive));
        assert!(!alive);
        // The last value stays readable once the writer is gone.
        ok(tl_stream_reader_read(
            reader,
            out.as_mut_ptr().cast(),
            out_len,
            null_mut(),
        ));
        let mut again = null_mut();
        ok(tl_stream_writer_take_over(name.ptr(), &mut again));
        ok(tl_stream_writer_write(
            again,
            data.as_ptr().cast(),
            data.len(),
            &mut seq,
        ));
        assert_eq!(seq, 2);
        ok(tl_stream_writer_close(again));
        ok(tl_stream_reader_close(reader));
    }
}

#[test]
#[cfg_attr(miri, ignore = "shared memory")]
fn a_blocked_read_is_woken_from_another_thread() {
    let name = Name::new("wake");
    let spec = spec(tl_dtype::TL_U32, &[4]);
    let mut writer = null_mut();
    let mut reader = null_mut();
    // SAFETY: pointers to live locals.
    unsafe {
        ok(tl_stream_writer_create(name.ptr(), &spec, 3, &mut writer));
        ok(tl_stream_reader_open(name.ptr(), null(), &mut reader));
    }
    // Handles are tokens: they cross threads as integers.
    let reader_token = reader as usize;
    let waiter = std::thread::spawn(move || {
        let mut out = [0u32; 4];
        let mut frame = tl_frame::default();
        // SAFETY: pointers to live locals of the right length.
        let status = unsafe {
            tl_stream_reader_read_new(
                reader_token as *mut tl_stream_reader,
                out.as_mut_ptr().cast(),
                16,
                TL_FOREVER,
                &mut frame,
            )
        };
        (status, out, frame.seq)
    });
    std::thread::sleep(std::time::Duration::from_millis(50));
    let data = [7u32, 8, 9, 10];
    // SAFETY: 16 readable bytes.
    unsafe {
        ok(tl_stream_writer_write(
            writer,
            data.as_ptr().cast(),
            16,
            null_mut(),
        ))
    };
    let (status, out, seq) = waiter.join().unwrap();
    ok(status);
    assert_eq!((out, seq), (data, 1));
    ok(tl_stream_reader_close(reader));
    ok(tl_stream_writer_close(writer));
}

#[test]
#[cfg_attr(miri, ignore = "shared memory")]
fn queue_copies_and_loans_in_order() {
    let name = Name::new("queue");
    let spec = f64_2x3();
    let mut producer = null_mut();
    let mut consumer = null_mut();
    // SAFETY: pointers to live locals; loaned addresses used only while the loan is
    // open, and no other process writes the lane.
    unsafe {
        ok(tl_queue_producer_create(
            name.ptr(),
            &spec,
            4,
            &mut producer,
        ));
        ok(tl_queue_consumer_open(name.ptr(), &spec, &mut consumer));
        for i in 0..6u64 {
            let tensor = [i as f64; 6];
            if i % 2 == 0 {
                ok(tl_queue_producer_push(
                    producer,
                    tensor.as_ptr().cast(),
                    48,
                    0,
                    null_mut(),
                ));
            } else {
                let mut data: *mut c_void = null_mut();
                let mut len = 0;
                ok(tl_queue_producer_loan(
                    producer, TL_FOREVER, &mut data, &mut len,
                ));
                assert_eq!(len, 48);
                assert_eq!(data.addr() % 8, 0, "lent bytes are aligned to 8 bytes");
                // Lending again lends the same slot.
                let mut same: *mut c_void = null_mut();
                ok(tl_queue_producer_loan(producer, 0, &mut same, null_mut()));
                assert_eq!(same, data);
                std::ptr::copy_nonoverlapping(tensor.as_ptr().cast::<u8>(), data.cast(), 48);
                let mut seq = 0;
                ok(tl_queue_producer_commit(producer, &mut seq));
                assert_eq!(seq, i + 1);
            }
            let mut frame = tl_frame::default();
            if i % 3 == 0 {
                let mut out = [0f64; 6];
                ok(tl_queue_consumer_pop(
                    consumer,
                    out.as_mut_ptr().cast(),
                    48,
                    0,
                    &mut frame,
                ));
                assert_eq!(out, tensor);
            } else {
                let mut data: *const c_void = null();
                let mut len = 0;
                ok(tl_queue_consumer_loan(
                    consumer,
                    1_000_000_000,
                    &mut data,
                    &mut len,
                    &mut frame,
                ));
                assert_eq!(len, 48);
                assert_eq!(data.addr() % 8, 0, "lent bytes are aligned to 8 bytes");
                assert_eq!(std::slice::from_raw_parts(data.cast::<f64>(), 6), &tensor);
                if i == 4 {
                    // Cancelling leaves the item at the head.
                    ok(tl_queue_consumer_cancel(consumer));
                    let mut out = [0f64; 6];
                    ok(tl_queue_consumer_pop(
                        consumer,
                        out.as_mut_ptr().cast(),
                        48,
                        0,
                        null_mut(),
                    ));
                    assert_eq!(out, tensor);
                } else {
                    ok(tl_queue_consumer_release(consumer));
                }
            }
            assert_eq!(frame.seq, i + 1);
            assert_eq!(frame.missed, 0);
        }
        // A cancelled producer loan pushes nothing.
        let mut data: *mut c_void = null_mut();
        ok(tl_queue_producer_loan(producer, 0, &mut data, null_mut()));
        ok(tl_queue_producer_cancel(producer));
        let mut out = [0f64; 6];
        expect(
            tl_queue_consumer_pop(consumer, out.as_mut_ptr().cast(), 48, 0, null_mut()),
            TL_ERR_EMPTY,
        );
        // Full at capacity for a try, Timeout for a wait.
        for _ in 0..4 {
            ok(tl_queue_producer_push(
                producer,
                out.as_ptr().cast(),
                48,
                0,
                null_mut(),
            ));
        }
        expect(
            tl_queue_producer_push(producer, out.as_ptr().cast(), 48, 0, null_mut()),
            TL_ERR_FULL,
        );
        expect(
            tl_queue_producer_push(producer, out.as_ptr().cast(), 48, 1_000_000, null_mut()),
            TL_ERR_TIMEOUT,
        );
        expect(
            tl_queue_producer_loan(producer, 0, &mut data, null_mut()),
            TL_ERR_FULL,
        );
        let mut got = std::mem::zeroed::<tl_spec>();
        ok(tl_queue_producer_spec(producer, &mut got));
        assert_eq!(got, spec);
        ok(tl_queue_consumer_spec(consumer, &mut got));
        assert_eq!(got, spec);
        // The producer gone, the consumer drains what it pushed, then WriterGone.
        ok(tl_queue_producer_close(producer));
        for _ in 0..4 {
            ok(tl_queue_consumer_pop(
                consumer,
                out.as_mut_ptr().cast(),
                48,
                0,
                null_mut(),
            ));
        }
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
fn topic_lossless_and_lossy_subscribers() {
    let name = Name::new("topic");
    let spec = spec(tl_dtype::TL_I64, &[2]);
    let mut publisher = null_mut();
    let mut lossless = null_mut();
    let mut lossy = null_mut();
    let lossy_options = tl_subscribe_options {
        mode: tl_mode::TL_LOSSY as u32,
        max_lag: 1,
        history: 0,
    };
    // SAFETY: pointers to live locals of the right types and lengths.
    unsafe {
        ok(tl_topic_publisher_create(
            name.ptr(),
            &spec,
            8,
            4,
            &mut publisher,
        ));
        ok(tl_topic_subscriber_open(
            name.ptr(),
            &spec,
            null(),
            &mut lossless,
        ));
        ok(tl_topic_subscriber_open(
            name.ptr(),
            null(),
            &lossy_options,
            &mut lossy,
        ));
        for i in 0..5i64 {
            let mut seq = 0;
            ok(tl_topic_publisher_publish(
                publisher,
                [i, -i].as_ptr().cast(),
                16,
                0,
                &mut seq,
            ));
            assert_eq!(seq, i as u64 + 1);
        }
        let mut out = [0i64; 2];
        let mut frame = tl_frame::default();
        for i in 0..5i64 {
            ok(tl_topic_subscriber_recv(
                lossless,
                out.as_mut_ptr().cast(),
                16,
                0,
                &mut frame,
            ));
            assert_eq!((out, frame.seq, frame.missed), ([i, -i], i as u64 + 1, 0));
        }
        // The lossy one (lag 1) gets only the newest, and counts what it skipped.
        ok(tl_topic_subscriber_recv(
            lossy,
            out.as_mut_ptr().cast(),
            16,
            0,
            &mut frame,
        ));
        assert_eq!((out, frame.seq, frame.missed), ([4, -4], 5, 4));
        expect(
            tl_topic_subscriber_recv(lossy, out.as_mut_ptr().cast(), 16, 0, null_mut()),
            TL_ERR_EMPTY,
        );
        expect(
            tl_topic_subscriber_recv(lossy, out.as_mut_ptr().cast(), 16, 1_000_000, null_mut()),
            TL_ERR_TIMEOUT,
        );
        // A late subscriber asks for history.
        let history = tl_subscribe_options {
            mode: tl_mode::TL_LOSSLESS as u32,
            max_lag: 0,
            history: 3,
        };
        let mut late = null_mut();
        ok(tl_topic_subscriber_open(
            name.ptr(),
            null(),
            &history,
            &mut late,
        ));
        ok(tl_topic_subscriber_recv(
            late,
            out.as_mut_ptr().cast(),
            16,
            0,
            &mut frame,
        ));
        assert_eq!((out, frame.seq), ([2, -2], 3));
        let mut got = std::mem::zeroed::<tl_spec>();
        ok(tl_topic_subscriber_spec(late, &mut got));
        assert_eq!(got, spec);
        ok(tl_topic_publisher_spec(publisher, &mut got));
        assert_eq!(got, spec);
        ok(tl_topic_publisher_close(publisher));
        ok(tl_topic_subscriber_recv(
            late,
            out.as_mut_ptr().cast(),
            16,
            0,
            null_mut(),
        ));
        ok(tl_topic_subscriber_recv(
            late,
            out.as_mut_ptr().cast(),
            16,
            0,
            null_mut(),
        ));
        expect(
            tl_topic_subscriber_recv(late, out.as_mut_ptr().cast(), 16, TL_FOREVER, null_mut()),
            TL_ERR_WRITER_GONE,
        );
        let mut again = null_mut();
        ok(tl_topic_publisher_take_over(name.ptr(), &mut again));
        ok(tl_topic_publisher_close(again));
        for s in [lossless, lossy, late] {
            ok(tl_topic_subscriber_close(s));
        }
    }
}

#[test]
#[cfg_attr(miri, ignore = "shared memory")]
fn spec_byte_len_and_zero_byte_tensors() {
    let mut bytes = 0;
    // SAFETY: pointers to live locals.
    unsafe {
        ok(tl_spec_byte_len(
            &spec(tl_dtype::TL_COMPLEX128, &[3, 5]),
            &mut bytes,
        ));
        assert_eq!(bytes, 240);
        ok(tl_spec_byte_len(&spec(tl_dtype::TL_F16, &[]), &mut bytes));
        assert_eq!(bytes, 2);
    }
    // A tensor of zero bytes takes a NULL buffer.
    let name = Name::new("empty");
    let mut producer = null_mut();
    let mut consumer = null_mut();
    // SAFETY: pointers to live locals; NULL buffers of zero bytes.
    unsafe {
        ok(tl_queue_producer_create(
            name.ptr(),
            &spec(tl_dtype::TL_U8, &[0]),
            2,
            &mut producer,
        ));
        ok(tl_queue_consumer_open(name.ptr(), null(), &mut consumer));
        ok(tl_queue_producer_push(producer, null(), 0, 0, null_mut()));
        let mut frame = tl_frame::default();
        ok(tl_queue_consumer_pop(
            consumer,
            null_mut(),
            0,
            0,
            &mut frame,
        ));
        assert_eq!(frame.seq, 1);
        ok(tl_queue_producer_close(producer));
        ok(tl_queue_consumer_close(consumer));
    }
}
