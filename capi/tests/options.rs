//! The create and open options from the C side: metadata and clock written at
//! create and read back from every handle kind (creator, opener, take-over), group
//! access and memory locking reaching the segment, the expected tensor at open and
//! take-over, and every bad input (struct sizes, codes, flags, NULL, misaligned and
//! non-UTF-8 pointers, invalid metadata, short buffers) refused with its status
//! before anything is created.
// The lanes are compiled out under the checkers' features (see tensorlane-shm).
#![cfg(not(any(feature = "loom", feature = "shuttle")))]

mod common;

use common::*;
use std::ffi::{c_char, c_void, CStr, CString};
use std::os::unix::fs::PermissionsExt;
use std::ptr::{null, null_mut};
use std::time::{SystemTime, UNIX_EPOCH};
use tensorlane_capi::tl_status::*;
use tensorlane_capi::*;

/// Default create options, from the init function.
fn create_options() -> tl_create_options {
    let mut options = std::mem::MaybeUninit::<tl_create_options>::uninit();
    // SAFETY: a pointer to writable memory for a `tl_create_options`.
    unsafe {
        ok(tl_create_options_init(options.as_mut_ptr()));
        options.assume_init()
    }
}

/// Default open options, from the init function.
/// Create options carrying `list` as metadata and `clock`.
fn options_with(list: &[tl_metadata_entry], clock: tl_clock) -> tl_create_options {
    let mut options = create_options();
    options.clock = clock as u32;
    options.metadata = list.as_ptr();
    options.metadata_len = list.len();
    options
}

/// The metadata the round-trip tests write (see `expected_pairs`).
fn round_trip_pairs() -> Vec<(CString, CString)> {
    pairs(&[("units", "m/s"), ("frame", "base_link"), ("schema", "")])
}

fn open_options() -> tl_open_options {
    let mut options = std::mem::MaybeUninit::<tl_open_options>::uninit();
    // SAFETY: as above.
    unsafe {
        ok(tl_open_options_init(options.as_mut_ptr()));
        options.assume_init()
    }
}

/// Metadata entries pointing into `pairs` (which must outlive them).
fn entries(pairs: &[(CString, CString)]) -> Vec<tl_metadata_entry> {
    pairs
        .iter()
        .map(|(k, v)| tl_metadata_entry {
            key: k.as_ptr(),
            value: v.as_ptr(),
        })
        .collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(CString, CString)> {
    list.iter()
        .map(|(k, v)| (CString::new(*k).unwrap(), CString::new(*v).unwrap()))
        .collect()
}

/// The lane's metadata read through the ABI from `lane`, any handle: every pair in
/// order, via `tl_metadata_key` then `tl_metadata_get`, each sized by a first call
/// with an empty buffer.
fn metadata_of<H>(lane: *mut H) -> Vec<(String, String)> {
    let lane = lane.cast_const().cast::<c_void>();
    let mut count = 0usize;
    // SAFETY: `count` is a live local; every buffer is a live Vec of the length given.
    unsafe {
        ok(tl_metadata_count(lane, &mut count));
        let mut out = Vec::new();
        for i in 0..count {
            let mut needed = 0usize;
            expect(
                tl_metadata_key(lane, i, null_mut(), 0, &mut needed),
                TL_ERR_BUFFER_SIZE,
            );
            let mut key = vec![0 as c_char; needed];
            ok(tl_metadata_key(
                lane,
                i,
                key.as_mut_ptr(),
                key.len(),
                null_mut(),
            ));
            let key_text = CStr::from_ptr(key.as_ptr());
            expect(
                tl_metadata_get(lane, key.as_ptr(), null_mut(), 0, &mut needed),
                TL_ERR_BUFFER_SIZE,
            );
            let mut value = vec![0 as c_char; needed];
            ok(tl_metadata_get(
                lane,
                key.as_ptr(),
                value.as_mut_ptr(),
                value.len(),
                &mut needed,
            ));
            assert_eq!(needed, value.len());
            out.push((
                key_text.to_str().unwrap().to_owned(),
                CStr::from_ptr(value.as_ptr()).to_str().unwrap().to_owned(),
            ));
        }
        out
    }
}

fn clock_of<H>(lane: *mut H) -> u32 {
    let mut clock = 0u32;
    // SAFETY: `clock` is a live local.
    unsafe { ok(tl_lane_clock(lane.cast_const().cast(), &mut clock)) };
    clock
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

/// A realtime timestamp within a minute of now (a monotonic one counts from boot).
#[track_caller]
fn assert_realtime(timestamp_ns: u64) {
    let now = now_ns();
    assert!(
        timestamp_ns <= now && now - timestamp_ns < 60_000_000_000,
        "timestamp {timestamp_ns} is not within a minute before now ({now})"
    );
}

fn expected_pairs() -> Vec<(String, String)> {
    vec![
        ("units".into(), "m/s".into()),
        ("frame".into(), "base_link".into()),
        ("schema".into(), "".into()),
    ]
}

#[test]
#[cfg_attr(miri, ignore = "shared memory")]
fn the_init_functions_fill_the_defaults() {
    let c = create_options();
    assert_eq!(c.struct_size, std::mem::size_of::<tl_create_options>());
    assert_eq!(c.clock, tl_clock::TL_CLOCK_MONOTONIC as u32);
    assert_eq!((c.group_access, c.prefault, c.lock_memory), (0, 0, 0));
    assert!(c.metadata.is_null());
    assert_eq!(c.metadata_len, 0);
    let o = open_options();
    assert_eq!(o.struct_size, std::mem::size_of::<tl_open_options>());
    assert!(o.expect.is_null());
    assert_eq!((o.prefault, o.lock_memory), (0, 0));
    #[repr(align(8))]
    struct Raw([u8; 128]);
    let mut raw = Raw([0; 128]);
    // SAFETY: NULL and a misaligned pointer are refused before any write.
    unsafe {
        expect(tl_create_options_init(null_mut()), TL_ERR_NULL_POINTER);
        expect(tl_open_options_init(null_mut()), TL_ERR_NULL_POINTER);
        let misaligned = raw.0.as_mut_ptr().add(1);
        expect(tl_create_options_init(misaligned.cast()), TL_ERR_MISALIGNED);
        expect(tl_open_options_init(misaligned.cast()), TL_ERR_MISALIGNED);
    }
    assert!(raw.0.iter().all(|&b| b == 0), "a refused init wrote");
}

#[test]
#[cfg_attr(miri, ignore = "shared memory")]
fn stream_metadata_and_realtime_clock_reach_every_handle() {
    let name = Name::new("opt-stream");
    let spec = f64_2x3();
    let strings = round_trip_pairs();
    let list = entries(&strings);
    let options = options_with(&list, tl_clock::TL_CLOCK_REALTIME);
    let mut open = open_options();
    open.expect = &spec;
    open.prefault = 1;
    let (mut writer, mut reader) = (null_mut(), null_mut());
    let data = bytes(&[1.0; 6]);
    let mut out = [0f64; 6];
    let mut frame = tl_frame::default();
    // SAFETY: every pointer is to a live local of the right type and length.
    unsafe {
        ok(tl_stream_writer_create_with(
            name.ptr(),
            &spec,
            3,
            &options,
            &mut writer,
        ));
        ok(tl_stream_reader_open_with(name.ptr(), &open, &mut reader));
        for handle in [writer.cast::<c_void>(), reader.cast()] {
            assert_eq!(metadata_of(handle), expected_pairs());
            assert_eq!(clock_of(handle), tl_clock::TL_CLOCK_REALTIME as u32);
        }
        ok(tl_stream_writer_write(
            writer,
            data.as_ptr().cast(),
            data.len(),
            null_mut(),
        ));
        ok(tl_stream_reader_read(
            reader,
            out.as_mut_ptr().cast(),
            48,
            &mut frame,
        ));
        assert_realtime(frame.timestamp_ns);
        // A writer taking over with options reads the same metadata.
        ok(tl_stream_writer_close(writer));
        ok(tl_stream_writer_take_over_with(
            name.ptr(),
            &open,
            &mut writer,
        ));
        assert_eq!(metadata_of(writer), expected_pairs());
        ok(tl_stream_writer_close(writer));
        ok(tl_stream_reader_close(reader));
    }
}

#[test]
#[cfg_attr(miri, ignore = "shared memory")]
fn queue_metadata_clock_none_and_take_over() {
    let name = Name::new("opt-queue");
    let spec = f64_2x3();
    let strings = round_trip_pairs();
    let list = entries(&strings);
    let options = options_with(&list, tl_clock::TL_CLOCK_NONE);
    let mut open = open_options();
    open.expect = &spec;
    let (mut producer, mut consumer) = (null_mut(), null_mut());
    let data = bytes(&[2.0; 6]);
    let mut out = [0f64; 6];
    let mut frame = tl_frame::default();
    // SAFETY: every pointer is to a live local of the right type and length.
    unsafe {
        ok(tl_queue_producer_create_with(
            name.ptr(),
            &spec,
            4,
            &options,
            &mut producer,
        ));
        ok(tl_queue_consumer_open_with(
            name.ptr(),
            &open,
            &mut consumer,
        ));
        ok(tl_queue_producer_close(producer));
        ok(tl_queue_producer_take_over_with(
            name.ptr(),
            &open,
            &mut producer,
        ));
        for handle in [producer.cast::<c_void>(), consumer.cast()] {
            assert_eq!(metadata_of(handle), expected_pairs());
            assert_eq!(clock_of(handle), tl_clock::TL_CLOCK_NONE as u32);
        }
        ok(tl_queue_producer_push(
            producer,
            data.as_ptr().cast(),
            48,
            0,
            null_mut(),
        ));
        ok(tl_queue_consumer_pop(
            consumer,
            out.as_mut_ptr().cast(),
            48,
            0,
            &mut frame,
        ));
        assert_eq!((out[0], frame.timestamp_ns), (2.0, 0));
        ok(tl_queue_producer_close(producer));
        ok(tl_queue_consumer_close(consumer));
    }
}

#[test]
#[cfg_attr(miri, ignore = "shared memory")]
fn topic_metadata_and_clock_through_subscriber_and_take_over() {
    let name = Name::new("opt-topic");
    let spec = f64_2x3();
    let strings = round_trip_pairs();
    let list = entries(&strings);
    let options = options_with(&list, tl_clock::TL_CLOCK_REALTIME);
    let mut open = open_options();
    open.expect = &spec;
    let (mut publisher, mut subscriber) = (null_mut(), null_mut());
    let data = bytes(&[3.0; 6]);
    let mut out = [0f64; 6];
    let mut frame = tl_frame::default();
    // SAFETY: every pointer is to a live local of the right type and length.
    unsafe {
        ok(tl_topic_publisher_create_with(
            name.ptr(),
            &spec,
            4,
            2,
            &options,
            &mut publisher,
        ));
        ok(tl_topic_subscriber_open_with(
            name.ptr(),
            null(),
            &open,
            &mut subscriber,
        ));
        ok(tl_topic_publisher_close(publisher));
        ok(tl_topic_publisher_take_over_with(
            name.ptr(),
            &open,
            &mut publisher,
        ));
        for handle in [publisher.cast::<c_void>(), subscriber.cast()] {
            assert_eq!(metadata_of(handle), expected_pairs());
            assert_eq!(clock_of(handle), tl_clock::TL_CLOCK_REALTIME as u32);
        }
        ok(tl_topic_publisher_publish(
            publisher,
            data.as_ptr().cast(),
            48,
            0,
            null_mut(),
        ));
        ok(tl_topic_subscriber_recv(
            subscriber,
            out.as_mut_ptr().cast(),
            48,
            0,
            &mut frame,
        ));
        assert_eq!(out[0], 3.0);
        assert_realtime(frame.timestamp_ns);
        ok(tl_topic_subscriber_close(subscriber));
        ok(tl_topic_publisher_close(publisher));
    }
}

/// The old functions are the new ones with NULL options: no metadata, monotonic.
#[test]
#[cfg_attr(miri, ignore = "shared memory")]
fn no_options_is_the_defaults() {
    let name = Name::new("opt-none");
    let spec = f64_2x3();
    let (mut writer, mut reader, mut taken) = (null_mut(), null_mut(), null_mut());
    // SAFETY: every pointer is to a live local.
    unsafe {
        ok(tl_stream_writer_create_with(
            name.ptr(),
            &spec,
            2,
            null(),
            &mut writer,
        ));
        ok(tl_stream_reader_open_with(name.ptr(), null(), &mut reader));
        assert_eq!(metadata_of(writer), vec![]);
        assert_eq!(metadata_of(reader), vec![]);
        assert_eq!(clock_of(reader), tl_clock::TL_CLOCK_MONOTONIC as u32);
        ok(tl_stream_writer_close(writer));
        ok(tl_stream_writer_take_over_with(
            name.ptr(),
            null(),
            &mut taken,
        ));
        ok(tl_stream_writer_close(taken));
        ok(tl_stream_reader_close(reader));
    }
    let file = format!("/dev/shm/tensorlane.{}", name.0.to_str().unwrap());
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
#[cfg_attr(miri, ignore = "shared memory")]
fn group_access_makes_the_lane_group_readable() {
    let name = Name::new("opt-group");
    let spec = f64_2x3();
    let mut options = create_options();
    options.group_access = 1;
    let mut producer = null_mut();
    // SAFETY: every pointer is to a live local.
    unsafe {
        ok(tl_queue_producer_create_with(
            name.ptr(),
            &spec,
            4,
            &options,
            &mut producer,
        ));
        ok(tl_queue_producer_close(producer));
    }
    let file = format!("/dev/shm/tensorlane.{}", name.0.to_str().unwrap());
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
}

/// Kilobytes this process has locked (`VmLck` of /proc/self/status).
fn locked_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmLck:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmLck line")
}

/// `lock_memory` reaches `mlock` at create and at open (the only test of this file
/// that locks, so `VmLck` grows by this test's lanes alone); where the limit refuses
/// it, the status says so.
#[test]
#[cfg_attr(miri, ignore = "shared memory")]
fn lock_memory_and_prefault_reach_the_mapping() {
    let name = Name::new("opt-lock");
    let spec = common::spec(tl_dtype::TL_U8, &[128 * 1024]);
    let mut options = create_options();
    options.lock_memory = 1;
    options.prefault = 1;
    let mut open = open_options();
    open.lock_memory = 1;
    open.prefault = 1;
    let (mut writer, mut reader) = (null_mut(), null_mut());
    let before = locked_kib();
    // SAFETY: every pointer is to a live local.
    unsafe {
        let status = tl_stream_writer_create_with(name.ptr(), &spec, 2, &options, &mut writer);
        if status == TL_ERR_MEMORY_LOCK_REFUSED {
            eprintln!("SKIPPED: the memory lock was refused: {}", last_error());
            return;
        }
        ok(status);
        let created = locked_kib() - before;
        assert!(created >= 256, "VmLck grew by {created} KiB at create");
        ok(tl_stream_reader_open_with(name.ptr(), &open, &mut reader));
        let opened = locked_kib() - before - created;
        assert!(opened >= 256, "VmLck grew by {opened} KiB at open");
        ok(tl_stream_reader_close(reader));
        ok(tl_stream_writer_close(writer));
    }
}

#[test]
#[cfg_attr(miri, ignore = "shared memory")]
fn open_options_check_the_tensor() {
    let name = Name::new("opt-expect");
    let spec = f64_2x3();
    let other = common::spec(tl_dtype::TL_F32, &[2, 3]);
    let mut open = open_options();
    open.expect = &other;
    let (mut producer, mut consumer, mut taken) = (null_mut(), null_mut(), null_mut());
    // SAFETY: every pointer is to a live local.
    unsafe {
        ok(tl_queue_producer_create(
            name.ptr(),
            &spec,
            4,
            &mut producer,
        ));
        expect(
            tl_queue_consumer_open_with(name.ptr(), &open, &mut consumer),
            TL_ERR_WRONG_SPEC,
        );
        assert!(consumer.is_null());
        ok(tl_queue_producer_close(producer));
        expect(
            tl_queue_producer_take_over_with(name.ptr(), &open, &mut taken),
            TL_ERR_WRONG_SPEC,
        );
        assert!(taken.is_null());
    }
}

/// Creates stream `name` with `options` expecting `status`, and checks that nothing
/// was created.
#[track_caller]
fn refused(name: &Name, options: *const tl_create_options, status: tl_status, says: &str) {
    let spec = f64_2x3();
    let mut writer = null_mut::<tl_stream_writer>();
    let mut reader = null_mut();
    // SAFETY: `options` is NULL, misaligned, or points to live options whose
    // metadata points to live entries and strings.
    unsafe {
        expect(
            tl_stream_writer_create_with(name.ptr(), &spec, 2, options, &mut writer),
            status,
        );
        assert!(writer.is_null());
        assert!(
            last_error().contains(says),
            "{:?} lacks {says:?}",
            last_error()
        );
        expect(
            tl_stream_reader_open(name.ptr(), null(), &mut reader),
            TL_ERR_NOT_FOUND,
        );
    }
}

#[test]
#[cfg_attr(miri, ignore = "shared memory")]
fn bad_create_options_are_refused_before_anything_is_created() {
    let name = Name::new("opt-bad");
    let good = create_options();
    let with = |change: &dyn Fn(&mut tl_create_options)| {
        let mut options = good;
        change(&mut options);
        options
    };
    let size = std::mem::size_of::<tl_create_options>();
    refused(
        &name,
        &with(&|o| o.struct_size = 0),
        TL_ERR_INVALID_ARGUMENT,
        "struct_size is 0",
    );
    refused(
        &name,
        &with(&|o| o.struct_size = size + 8),
        TL_ERR_INVALID_ARGUMENT,
        "struct_size",
    );
    for clock in [0, 4, u32::MAX] {
        refused(
            &name,
            &with(&|o| o.clock = clock),
            TL_ERR_INVALID_ARGUMENT,
            "no tl_clock",
        );
    }
    refused(
        &name,
        &with(&|o| o.group_access = 2),
        TL_ERR_INVALID_ARGUMENT,
        "group_access is 2",
    );
    refused(
        &name,
        &with(&|o| o.prefault = 7),
        TL_ERR_INVALID_ARGUMENT,
        "prefault is 7",
    );
    refused(
        &name,
        &with(&|o| o.lock_memory = u32::MAX),
        TL_ERR_INVALID_ARGUMENT,
        "lock_memory",
    );
    // Misaligned options.
    #[repr(C, align(8))]
    struct Raw([u8; 128]);
    let mut raw = Raw([0; 128]);
    // SAFETY: the copy stays inside `raw`; the pointer made is only checked.
    let misaligned = unsafe {
        let at = raw.0.as_mut_ptr().add(4);
        std::ptr::copy_nonoverlapping((&good as *const tl_create_options).cast(), at, size);
        at.cast::<tl_create_options>()
    };
    refused(&name, misaligned, TL_ERR_MISALIGNED, "not aligned");

    // The metadata array.
    refused(
        &name,
        &with(&|o| o.metadata_len = 2),
        TL_ERR_NULL_POINTER,
        "options->metadata is NULL",
    );
    let strings = pairs(&[("a", "1"), ("b", "2")]);
    let list = entries(&strings);
    let huge = with(&|o| {
        o.metadata = list.as_ptr();
        o.metadata_len = usize::MAX;
    });
    refused(&name, &huge, TL_ERR_INVALID_ARGUMENT, "metadata_len");
    let misaligned_list = with(&|o| {
        // SAFETY: one byte into the array: only checked, never read.
        o.metadata = unsafe { list.as_ptr().cast::<u8>().add(1).cast() };
        o.metadata_len = 1;
    });
    refused(&name, &misaligned_list, TL_ERR_MISALIGNED, "metadata");
    let bad_entry = |entry: tl_metadata_entry| {
        let one = [entries(&strings)[0], entry];
        let options = with(&|o| {
            o.metadata = one.as_ptr();
            o.metadata_len = 2;
        });
        (one, options)
    };
    let (_keep, options) = bad_entry(tl_metadata_entry {
        key: null(),
        value: strings[1].1.as_ptr(),
    });
    refused(
        &name,
        &options,
        TL_ERR_NULL_POINTER,
        "metadata[1].key is NULL",
    );
    let (_keep, options) = bad_entry(tl_metadata_entry {
        key: strings[1].0.as_ptr(),
        value: null(),
    });
    refused(
        &name,
        &options,
        TL_ERR_NULL_POINTER,
        "metadata[1].value is NULL",
    );
    let latin1 = CString::new(vec![b'k', 0xe9]).unwrap();
    let (_keep, options) = bad_entry(tl_metadata_entry {
        key: latin1.as_ptr(),
        value: strings[1].1.as_ptr(),
    });
    refused(&name, &options, TL_ERR_INVALID_ARGUMENT, "not UTF-8");
    let (_keep, options) = bad_entry(tl_metadata_entry {
        key: strings[1].0.as_ptr(),
        value: latin1.as_ptr(),
    });
    refused(
        &name,
        &options,
        TL_ERR_INVALID_ARGUMENT,
        "metadata[1].value",
    );
    let empty = CString::new("").unwrap();
    let (_keep, options) = bad_entry(tl_metadata_entry {
        key: empty.as_ptr(),
        value: strings[1].1.as_ptr(),
    });
    refused(&name, &options, TL_ERR_INVALID_ARGUMENT, "empty");
    let (_keep, options) = bad_entry(tl_metadata_entry {
        key: strings[0].0.as_ptr(),
        value: strings[1].1.as_ptr(),
    });
    refused(&name, &options, TL_ERR_INVALID_ARGUMENT, "twice");
    let big = CString::new(vec![b'x'; 70_000]).unwrap();
    let (_keep, options) = bad_entry(tl_metadata_entry {
        key: strings[1].0.as_ptr(),
        value: big.as_ptr(),
    });
    refused(&name, &options, TL_ERR_INVALID_ARGUMENT, "65536");
    // After all of that, the good options create the lane.
    let list = entries(&strings);
    let options = with(&|o| {
        o.metadata = list.as_ptr();
        o.metadata_len = list.len();
    });
    let mut writer = null_mut();
    // SAFETY: every pointer is to a live local.
    unsafe {
        ok(tl_stream_writer_create_with(
            name.ptr(),
            &f64_2x3(),
            2,
            &options,
            &mut writer,
        ));
        assert_eq!(metadata_of(writer).len(), 2);
        ok(tl_stream_writer_close(writer));
    }
}

#[test]
#[cfg_attr(miri, ignore = "shared memory")]
fn bad_open_options_are_refused() {
    let name = Name::new("opt-bad-open");
    let spec = f64_2x3();
    let good = open_options();
    let (mut writer, mut reader) = (null_mut(), null_mut::<tl_stream_reader>());
    #[repr(C, align(8))]
    struct Raw([u8; 128]);
    let mut raw = Raw([0; 128]);
    // SAFETY: every pointer is to a live local, or misaligned and only checked.
    unsafe {
        ok(tl_stream_writer_create(name.ptr(), &spec, 2, &mut writer));
        let cases: [(tl_open_options, tl_status, &str); 5] = [
            (
                tl_open_options {
                    struct_size: 8,
                    ..good
                },
                TL_ERR_INVALID_ARGUMENT,
                "struct_size is 8",
            ),
            (
                tl_open_options {
                    prefault: 3,
                    ..good
                },
                TL_ERR_INVALID_ARGUMENT,
                "prefault is 3",
            ),
            (
                tl_open_options {
                    lock_memory: 9,
                    ..good
                },
                TL_ERR_INVALID_ARGUMENT,
                "lock_memory is 9",
            ),
            (
                tl_open_options {
                    expect: raw.0.as_ptr().add(4).cast(),
                    ..good
                },
                TL_ERR_MISALIGNED,
                "options->expect",
            ),
            (
                tl_open_options {
                    expect: &common::spec(tl_dtype::TL_F64, &[3, 2]),
                    ..good
                },
                TL_ERR_WRONG_SPEC,
                "",
            ),
        ];
        for (options, status, says) in cases {
            expect(
                tl_stream_reader_open_with(name.ptr(), &options, &mut reader),
                status,
            );
            assert!(reader.is_null());
            assert!(last_error().contains(says), "{}", last_error());
        }
        let at = raw.0.as_mut_ptr().add(4);
        std::ptr::copy_nonoverlapping(
            (&good as *const tl_open_options).cast(),
            at,
            std::mem::size_of::<tl_open_options>(),
        );
        expect(
            tl_stream_reader_open_with(name.ptr(), at.cast(), &mut reader),
            TL_ERR_MISALIGNED,
        );
        let bad_expect = tl_spec { dtype: 99, ..spec };
        let options = tl_open_options {
            expect: &bad_expect,
            ..good
        };
        expect(
            tl_stream_reader_open_with(name.ptr(), &options, &mut reader),
            TL_ERR_INVALID_ARGUMENT,
        );
        expect(
            tl_topic_subscriber_open_with(name.ptr(), null(), &options, &mut null_mut()),
            TL_ERR_INVALID_ARGUMENT,
        );
        expect(
            tl_stream_reader_open_with(null(), &good, &mut reader),
            TL_ERR_NULL_POINTER,
        );
        expect(
            tl_stream_reader_open_with(name.ptr(), &good, null_mut()),
            TL_ERR_NULL_POINTER,
        );
        ok(tl_stream_writer_close(writer));
    }
}

#[test]
#[cfg_attr(miri, ignore = "shared memory")]
fn bad_metadata_reads_are_refused() {
    let name = Name::new("opt-read");
    let spec = f64_2x3();
    let strings = pairs(&[("units", "m/s")]);
    let list = entries(&strings);
    let mut options = create_options();
    options.metadata = list.as_ptr();
    options.metadata_len = 1;
    let mut producer = null_mut();
    let units = c"units".as_ptr();
    #[repr(C, align(8))]
    struct Raw([u8; 64]);
    let mut raw = Raw([0; 64]);
    // SAFETY: every pointer is to a live local of the length given, or misaligned
    // and only checked.
    unsafe {
        ok(tl_queue_producer_create_with(
            name.ptr(),
            &spec,
            4,
            &options,
            &mut producer,
        ));
        let lane = producer.cast_const().cast::<c_void>();
        let mut count = 0usize;
        let mut needed = 0usize;
        let mut buf = [b'#' as c_char; 8];
        // The handle: NULL, never issued, of no lane.
        expect(tl_metadata_count(null(), &mut count), TL_ERR_NULL_POINTER);
        assert!(
            last_error().contains("lane handle is NULL"),
            "{}",
            last_error()
        );
        expect(
            tl_metadata_count(std::ptr::without_provenance(usize::MAX >> 1), &mut count),
            TL_ERR_CLOSED,
        );
        expect(tl_lane_clock(null(), &mut 0), TL_ERR_NULL_POINTER);
        // Out-pointers.
        expect(tl_metadata_count(lane, null_mut()), TL_ERR_NULL_POINTER);
        expect(
            tl_metadata_count(lane, raw.0.as_mut_ptr().add(1).cast()),
            TL_ERR_MISALIGNED,
        );
        expect(tl_lane_clock(lane, null_mut()), TL_ERR_NULL_POINTER);
        expect(
            tl_lane_clock(lane, raw.0.as_mut_ptr().add(1).cast()),
            TL_ERR_MISALIGNED,
        );
        expect(
            tl_metadata_get(
                lane,
                units,
                buf.as_mut_ptr(),
                8,
                raw.0.as_mut_ptr().add(3).cast(),
            ),
            TL_ERR_MISALIGNED,
        );
        expect(
            tl_metadata_key(
                lane,
                0,
                buf.as_mut_ptr(),
                8,
                raw.0.as_mut_ptr().add(3).cast(),
            ),
            TL_ERR_MISALIGNED,
        );
        // Keys: NULL, not UTF-8, absent; an index past the count.
        expect(
            tl_metadata_get(lane, null(), buf.as_mut_ptr(), 8, &mut needed),
            TL_ERR_NULL_POINTER,
        );
        expect(
            tl_metadata_get(lane, c"k\xe9".as_ptr(), buf.as_mut_ptr(), 8, &mut needed),
            TL_ERR_INVALID_ARGUMENT,
        );
        expect(
            tl_metadata_get(lane, c"frame".as_ptr(), buf.as_mut_ptr(), 8, &mut needed),
            TL_ERR_NOT_FOUND,
        );
        assert!(
            last_error().contains("no key \"frame\""),
            "{}",
            last_error()
        );
        expect(
            tl_metadata_key(lane, 1, buf.as_mut_ptr(), 8, &mut needed),
            TL_ERR_INVALID_ARGUMENT,
        );
        expect(
            tl_metadata_key(lane, usize::MAX, buf.as_mut_ptr(), 8, &mut needed),
            TL_ERR_INVALID_ARGUMENT,
        );
        // A short buffer: the size needed, nothing written.
        expect(
            tl_metadata_get(lane, units, buf.as_mut_ptr(), 3, &mut needed),
            TL_ERR_BUFFER_SIZE,
        );
        assert_eq!(needed, 4);
        assert!(buf.iter().all(|&b| b == b'#' as c_char));
        expect(
            tl_metadata_key(lane, 0, buf.as_mut_ptr(), 5, &mut needed),
            TL_ERR_BUFFER_SIZE,
        );
        assert_eq!(needed, 6);
        assert!(buf.iter().all(|&b| b == b'#' as c_char));
        // A NULL buffer claimed long enough.
        expect(
            tl_metadata_get(lane, units, null_mut(), 8, &mut needed),
            TL_ERR_NULL_POINTER,
        );
        // Exactly long enough, with `needed` left out.
        ok(tl_metadata_get(
            lane,
            units,
            buf.as_mut_ptr(),
            4,
            null_mut(),
        ));
        assert_eq!(CStr::from_ptr(buf.as_ptr()), c"m/s");
        assert_eq!(buf[4], b'#' as c_char);
        ok(tl_metadata_key(lane, 0, buf.as_mut_ptr(), 6, null_mut()));
        assert_eq!(CStr::from_ptr(buf.as_ptr()), c"units");
        // A closed handle.
        ok(tl_queue_producer_close(producer));
        expect(tl_metadata_count(lane, &mut count), TL_ERR_CLOSED);
        expect(
            tl_metadata_get(lane, units, buf.as_mut_ptr(), 8, &mut needed),
            TL_ERR_CLOSED,
        );
        expect(
            tl_metadata_key(lane, 0, buf.as_mut_ptr(), 8, &mut needed),
            TL_ERR_CLOSED,
        );
        expect(tl_lane_clock(lane, &mut 0), TL_ERR_CLOSED);
    }
}
