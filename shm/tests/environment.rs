//! The environment must not crash a process: a small or full `/dev/shm`, huge valid
//! lanes, objects planted under lane names by other users, group lanes.
//!
//! - `small_shm_reports_no_space_and_never_faults` (root, in a private mount
//!   namespace with a 1 MiB tmpfs on `/dev/shm`; skipped loudly elsewhere): a lane
//!   larger than the file system, and one larger than what is left of it, are refused
//!   with `NoSpace` and leave nothing behind; a lane that fits keeps working after the
//!   file system is full; `tensorlane list` and `inspect` of a half-made lane (sized
//!   but never written, as a creator killed by SIGBUS leaves it) on the full file
//!   system exit normally.
//! - `huge_sparse_lane_is_inspected_without_allocating`: a valid stream of two
//!   32 GiB slots, written directly into a sparse object (it costs three pages), is
//!   listed, inspected, watched and taken over by processes whose data segment is
//!   limited to 256 MiB: nothing allocates a slot.
//! - `list_and_purge_skip_planted_objects_without_waiting`: empty objects planted
//!   under lane names (by another user where the test runs as root, and by this
//!   user), a FIFO and a directory cost `list` and `purge` one bounded wait in all.
//! - `last_k_clamps_to_the_ring`: `last_k(usize::MAX, &mut [])` on a topic of
//!   zero-size tensors.
//! - `group_members_use_group_lanes` (root; skipped loudly elsewhere): a process of
//!   another user in the lane's group opens a group lane (mode 0660), reads it and
//!   takes its writer role over; one outside the group, or facing a lane of another
//!   mode, is refused.
//!
//! Children: the test binary re-executes itself (`current_exe() --exact child_entry
//! --nocapture --test-threads=1`) with `TENSORLANE_ENV_ROLE` naming the role and
//! `TENSORLANE_ENV_LANE` the lane; what must happen before it runs (a mount
//! namespace, a resource limit, another uid) is done between fork and exec. A child
//! panics on failure and ends with `std::process::exit(0)` on success.
#![cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]

use std::ffi::CString;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use tensorlane_shm::header::{self, Geometry, HeaderInfo, FRAME_BYTES, HEADER_BYTES};
use tensorlane_shm::{
    segment, CreateOptions, DType, Kind, LaneError, LaneName, QueueProducer, StreamReader,
    StreamWriter, SubscribeOptions, TensorSpec, TopicPublisher, TopicSubscriber,
};

const ROLE_VAR: &str = "TENSORLANE_ENV_ROLE";
const LANE_VAR: &str = "TENSORLANE_ENV_LANE";
/// Size of the private tmpfs of the small-shm test.
const SMALL_SHM: usize = 1 << 20;
/// Data-segment limit of the processes that look at the huge lane.
const DATA_LIMIT: u64 = 256 << 20;
/// Tensor bytes of the huge lane.
const HUGE_TENSOR: u64 = 32 << 30;
/// Group and users of the group-lane test.
const GROUP: u32 = 47_101;
const OTHER_GROUP: u32 = 47_102;
const OTHER_USER: u32 = 47_101;

fn object_path(name: &str) -> String {
    format!("/dev/shm/tensorlane.{name}")
}

/// Removes the named objects when dropped (files, FIFOs and directories alike).
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for name in &self.0 {
            let path = object_path(name);
            if std::fs::remove_file(&path).is_err() {
                let _ = std::fs::remove_dir(&path);
            }
        }
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn skipped(test: &str, why: &str) {
    eprintln!("\n***** SKIPPED {test}: {why} *****\n");
}

/// A command running this test binary's `child_entry` as `role` on `lane`.
fn child(role: &str, lane: &str) -> Command {
    let mut command = Command::new(std::env::current_exe().expect("path of the test binary"));
    command
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env(ROLE_VAR, role)
        .env(LANE_VAR, lane)
        .stdin(Stdio::null());
    command
}

/// Runs `command` and checks that it exited 0 (not by a signal).
fn succeeds(what: &str, command: &mut Command) -> Output {
    checked(what, command.output())
}

/// Checks that a child exited 0 (not by a signal).
fn checked(what: &str, result: io::Result<Output>) -> Output {
    let output = result.unwrap_or_else(|e| panic!("{what}: {e}"));
    let text = format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if let Some(signal) = output.status.signal() {
        panic!("{what} was killed by signal {signal}\n{text}");
    }
    assert!(output.status.success(), "{what}: {}\n{text}", output.status);
    output
}

/// Runs `tensorlane` with `args`; it must exit 0 or 1, never panic or die by a
/// signal. Returns the exit code and what it printed.
fn tensorlane(
    args: &[&str],
    setup: impl FnMut() -> io::Result<()> + Send + Sync + 'static,
) -> (i32, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tensorlane"));
    command.args(args).stdin(Stdio::null());
    // SAFETY: `setup` makes only async-signal-safe system calls (it runs between fork
    // and exec).
    unsafe { command.pre_exec(setup) };
    let output = command.output().expect("run tensorlane");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let code = output.status.code().unwrap_or_else(|| {
        panic!(
            "tensorlane {args:?} was killed by signal {:?}:\n{stderr}",
            output.status.signal()
        )
    });
    assert!(
        (code == 0 || code == 1) && !stderr.contains("panicked"),
        "tensorlane {args:?} exited {code}:\n{stderr}"
    );
    (
        code,
        format!("{}{stderr}", String::from_utf8_lossy(&output.stdout)),
    )
}

fn no_setup() -> io::Result<()> {
    Ok(())
}

/// Limits the data segment (heap and private mappings, not shared mappings).
fn limit_data() -> io::Result<()> {
    let limit = libc::rlimit {
        rlim_cur: DATA_LIMIT,
        rlim_max: DATA_LIMIT,
    };
    // SAFETY: `limit` is a valid rlimit for the duration of the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_DATA, &limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The child process's entry point: without `TENSORLANE_ENV_ROLE`, an empty test.
#[test]
fn child_entry() {
    let Ok(role) = std::env::var(ROLE_VAR) else {
        return;
    };
    // SAFETY: prctl(PR_SET_PDEATHSIG) takes plain integers and only sets the signal
    // this process receives when the thread that spawned it exits.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong) };
    let lane = std::env::var(LANE_VAR).expect("lane name");
    // Ends libtest's "test child_entry ... " line.
    println!();
    match role.as_str() {
        "small-shm" => small_shm_child(&lane),
        "take-over" => {
            let writer = StreamWriter::take_over(&lane).expect("take over the huge stream");
            assert_eq!(writer.next_seq(), 2);
            let reader = StreamReader::open(&lane).expect("open the huge stream");
            assert_eq!(reader.published(), 1);
        }
        "group-member" => {
            let mut reader = StreamReader::open(&lane).expect("a group member opens the lane");
            let mut value = [0u8; 8];
            let frame = reader.read(&mut value).unwrap();
            assert_eq!((value, frame.frame_id), ([1, 2, 3, 4, 5, 6, 7, 8], 1));
            let mut writer = StreamWriter::take_over(&lane).expect("take the writer role over");
            writer.write(&[9; 8]).unwrap();
            println!("group member wrote as uid {}", {
                // SAFETY: geteuid has no preconditions.
                unsafe { libc::geteuid() }
            });
        }
        "outsider" => match StreamReader::open(&lane) {
            Err(LaneError::PermissionDenied(_) | LaneError::ForeignOwner { .. }) => {}
            other => panic!("a process outside the group opened the lane: {other:?}"),
        },
        "wrong-mode" => match StreamReader::open(&lane) {
            Err(LaneError::ForeignOwner { .. }) => {}
            other => panic!("a lane of mode 0666 was opened by a non-owner: {other:?}"),
        },
        other => panic!("unknown role {other}"),
    }
    io::stdout().flush().unwrap();
    std::process::exit(0);
}

// ---------------------------------------------------------------------------------
// A small, then full, /dev/shm.

/// Runs in a private mount namespace whose /dev/shm is a tmpfs of `SMALL_SHM` bytes.
fn small_shm_child(base: &str) {
    let u8s = |bytes: u64| TensorSpec::new(DType::U8, &[bytes]).unwrap();
    let gone = |name: &str| !std::path::Path::new(&object_path(name)).exists();

    // Larger than the whole file system, for each kind.
    let big = format!("{base}-big");
    let stream = StreamWriter::create(&big, &u8s(4 << 20), 2).map(|mut w| {
        // Without a reservation, the process dies here (SIGBUS).
        w.write(&vec![1u8; 4 << 20]).unwrap();
    });
    let results = [
        stream,
        QueueProducer::create(&big, &u8s(4 << 20), 2).map(drop),
        TopicPublisher::create(&big, &u8s(4 << 20), 2, 1).map(drop),
    ];
    for result in results {
        match result {
            Err(LaneError::NoSpace {
                needed, available, ..
            }) => {
                assert!(needed > 8 << 20, "needed {needed}");
                assert!(
                    available.is_some_and(|a| a <= SMALL_SHM as u64),
                    "{available:?}"
                );
            }
            other => panic!("a lane larger than /dev/shm: {other:?}"),
        }
        assert!(gone(&big), "a refused lane was left behind");
    }

    // A lane that fits works, and keeps working once /dev/shm is full.
    let fits = format!("{base}-fits");
    let mut writer = StreamWriter::create(&fits, &u8s(256 << 10), 2).expect("a lane that fits");
    let mut reader = StreamReader::open(&fits).unwrap();
    let mut out = vec![0u8; 256 << 10];
    writer.write(&vec![1u8; 256 << 10]).unwrap();
    assert_eq!(reader.read(&mut out).unwrap().frame_id, 1);

    // Larger than what is left: the case of a full /dev/shm, where a creator used to
    // die while writing its header or its first value.
    let rest = format!("{base}-rest");
    match StreamWriter::create(&rest, &u8s(300 << 10), 2) {
        Err(LaneError::NoSpace { .. }) => {}
        Ok(mut w) => {
            // Without a reservation this is where the process dies (SIGBUS).
            w.write(&vec![2u8; 300 << 10]).unwrap();
            panic!("a lane larger than the free space was created");
        }
        Err(e) => panic!("a lane larger than the free space: {e:?}"),
    }
    assert!(gone(&rest), "a refused lane was left behind");

    // Fill the file system to the last page.
    let filler = format!("{base}-filler");
    let mut file = std::fs::File::create(object_path(&filler)).unwrap();
    let chunk = vec![0xa5u8; 4096];
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => break,
            Err(e) => panic!("filling /dev/shm: {e}"),
        }
    }
    for round in 2..5u8 {
        writer.write(&vec![round; 256 << 10]).unwrap();
        let frame = reader.read(&mut out).unwrap();
        assert_eq!(
            (frame.frame_id, out[0], out[(256 << 10) - 1]),
            (u64::from(round), round, round)
        );
    }
    match TopicPublisher::create(&rest, &u8s(64), 2, 1) {
        Err(LaneError::NoSpace { .. }) => {}
        other => panic!("a lane on a full /dev/shm: {:?}", other.map(drop)),
    }
    assert!(gone(&rest));

    // A half-made lane: sized, never written (what a creator that died of SIGBUS, or
    // one killed before writing its header, leaves). On a full tmpfs, the first load
    // through a mapping of it raises SIGBUS.
    let half = format!("{base}-half");
    let object = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(object_path(&half))
        .unwrap();
    object.set_len(1 << 20).unwrap();
    let started = Instant::now();
    let (code, text) = tensorlane(&["list"], no_setup);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains(&half) && text.contains("not ready"), "{text}");
    assert!(text.contains(&fits), "{text}");
    let (code, text) = tensorlane(&["inspect", &half], no_setup);
    assert_eq!(code, 1, "{text}");
    let (code, text) = tensorlane(&["inspect", &fits], no_setup);
    assert_eq!(code, 0, "{text}");
    let (code, text) = tensorlane(&["purge", "--dry-run", "--min-age", "0"], no_setup);
    assert_eq!(code, 0, "{text}");
    assert!(started.elapsed() < Duration::from_secs(10));
    // The library refuses it too (without waiting: the creator is long gone).
    match segment::Segment::open_until(&LaneName::new(&half).unwrap(), Instant::now()) {
        Err(LaneError::Header { .. }) => {}
        other => panic!("a half-made lane: {:?}", other.map(drop)),
    }
}

#[test]
fn small_shm_reports_no_space_and_never_faults() {
    const TEST: &str = "small_shm_reports_no_space_and_never_faults";
    if !is_root() {
        return skipped(TEST, "needs root to mount a private tmpfs on /dev/shm");
    }
    let root = CString::new("/").unwrap();
    let shm = CString::new("/dev/shm").unwrap();
    let tmpfs = CString::new("tmpfs").unwrap();
    let options = CString::new(format!("size={SMALL_SHM},mode=1777")).unwrap();
    let mut command = child("small-shm", &format!("env-{}", std::process::id()));
    // SAFETY: the closure makes only system calls (async-signal-safe) on C strings
    // allocated before the fork; it runs in the child, between fork and exec.
    unsafe {
        command.pre_exec(move || {
            check(libc::unshare(libc::CLONE_NEWNS))?;
            // Keep the mounts below out of the parent's namespace.
            check(libc::mount(
                std::ptr::null(),
                root.as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            ))?;
            check(libc::mount(
                tmpfs.as_ptr(),
                shm.as_ptr(),
                tmpfs.as_ptr(),
                0,
                options.as_ptr().cast(),
            ))
        })
    };
    match command.output() {
        Err(e) => skipped(TEST, &format!("cannot make a private mount namespace: {e}")),
        Ok(output) => {
            let text = format!(
                "stdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
            if let Some(signal) = output.status.signal() {
                panic!("the child was killed by signal {signal}\n{text}");
            }
            assert!(output.status.success(), "{}\n{text}", output.status);
        }
    }
}

// ---------------------------------------------------------------------------------
// A huge, valid, sparse lane.

/// Writes a valid stream of two `HUGE_TENSOR`-byte slots with one published value
/// (frame id 41) into a new sparse object; returns its segment size.
fn plant_huge_stream(name: &str) -> usize {
    let spec = TensorSpec::new(DType::U8, &[HUGE_TENSOR]).unwrap();
    let slot_bytes = spec.byte_len() + FRAME_BYTES;
    let geometry = Geometry::new(Kind::Stream, 2, slot_bytes, 0).unwrap();
    let segment_bytes = geometry.segment_bytes().unwrap();
    let info = HeaderInfo {
        kind: Kind::Stream,
        spec,
        geometry,
        count: 2,
        subscribers: 0,
        segment_bytes,
        creator_pid: u64::from(std::process::id()),
        // SAFETY: geteuid has no preconditions.
        creator_uid: u64::from(unsafe { libc::geteuid() }),
        created_ns: 1,
        clock: tensorlane_shm::Clock::Monotonic,
        metadata: tensorlane_shm::Metadata::default(),
    };
    let words = header::encode(&info).unwrap();
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(object_path(name))
        .unwrap();
    // Sparse: the pages below are the only ones allocated.
    file.set_len(segment_bytes as u64).unwrap();
    let put = |offset: usize, word: u64| {
        file.write_all_at(&word.to_le_bytes(), offset as u64)
            .unwrap()
    };
    for (i, word) in words.iter().enumerate() {
        put(8 * i, *word);
    }
    // Sequence 1 lives in slot 1 (docs/LAYOUT.md, sections 9 and 11).
    let Geometry::Stream(g) = geometry else {
        unreachable!()
    };
    let control = HEADER_BYTES;
    let slot = control + 256 + 8 * g.slot_stride();
    put(control, 1); // published
    put(slot, 2); // stamp of sequence 1
    put(slot + 8, slot_bytes as u64); // length
    put(slot + 16, 41); // frame id
    put(slot + 24, 1_700_000_000_000_000_000); // timestamp
    put(256, header::READY);
    segment_bytes
}

#[test]
fn huge_sparse_lane_is_inspected_without_allocating() {
    let name = format!("env-{}-huge", std::process::id());
    let _cleanup = Cleanup(vec![name.clone()]);
    let segment_bytes = plant_huge_stream(&name);
    assert!(segment_bytes as u64 > 2 * HUGE_TENSOR);

    let (code, text) = tensorlane(&["inspect", &name, "--json"], limit_data);
    assert_eq!(code, 0, "{text}");
    let value: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(value["tensor_bytes"], HUGE_TENSOR);
    assert_eq!(value["latest"]["frame_id"], 41, "{value}");
    let (code, text) = tensorlane(&["inspect", &name], limit_data);
    assert_eq!(code, 0, "{text}");
    let (code, text) = tensorlane(
        &["watch", &name, "--count", "1", "--interval", "0.01"],
        limit_data,
    );
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("seq 1"), "{text}");
    let (code, text) = tensorlane(&["list"], limit_data);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains(&name), "{text}");
    let mut take_over = child("take-over", &name);
    // SAFETY: `limit_data` makes one system call (async-signal-safe) between fork and
    // exec.
    unsafe { take_over.pre_exec(limit_data) };
    succeeds("the take-over child", &mut take_over);
}

// ---------------------------------------------------------------------------------
// Objects planted under lane names.

#[test]
fn list_and_purge_skip_planted_objects_without_waiting() {
    let base = format!("env-{}-planted", std::process::id());
    let mut names = Vec::new();
    let plant = |name: &str| {
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o666)
            .open(object_path(name))
            .unwrap()
    };
    // Empty files of this user: not-ready lanes, as if their creators had just
    // started (or died before sizing them).
    for i in 0..5 {
        let name = format!("{base}-own-{i}");
        plant(&name);
        names.push(name);
    }
    // Empty world-writable files of another user.
    let foreign = is_root();
    if foreign {
        for i in 0..5 {
            let name = format!("{base}-foreign-{i}");
            let file = plant(&name);
            names.push(name);
            // SAFETY: fchown takes a descriptor and plain integers.
            check(unsafe { libc::fchown(file.as_raw_fd(), OTHER_USER, OTHER_USER) }).unwrap();
            file.set_permissions(PermissionsExt::from_mode(0o666))
                .unwrap();
        }
    } else {
        skipped(
            "list_and_purge_skip_planted_objects_without_waiting (foreign files)",
            "needs root to chown",
        );
    }
    // A FIFO and a directory.
    let fifo = format!("{base}-fifo");
    let path = CString::new(object_path(&fifo)).unwrap();
    // SAFETY: `path` is a NUL-terminated C string that outlives the call.
    check(unsafe { libc::mkfifo(path.as_ptr(), 0o666) }).unwrap();
    names.push(fifo.clone());
    let dir = format!("{base}-dir");
    std::fs::create_dir(object_path(&dir)).unwrap();
    names.push(dir.clone());
    let _cleanup = Cleanup(names.clone());

    // Before: up to 2 s for each of them (20 s), and a FIFO opened read-only blocks.
    let bound = Duration::from_secs(3);
    for args in [
        &["list"][..],
        &["list", "--json"],
        &["purge", "--dry-run", "--min-age", "0"],
    ] {
        let started = Instant::now();
        let (code, text) = tensorlane(args, no_setup);
        let took = started.elapsed();
        assert_eq!(code, 0, "{text}");
        assert!(took < bound, "tensorlane {args:?} took {took:?}:\n{text}");
        eprintln!("tensorlane {args:?}: {took:?}");
        if args[0] == "list" {
            for name in &names {
                let shown = text.contains(name.as_str());
                let expected = !(name == &fifo || name == &dir);
                assert_eq!(shown, expected, "{name}:\n{text}");
            }
            if foreign {
                assert!(
                    text.contains(&format!("belongs to uid {OTHER_USER}")),
                    "{text}"
                );
            }
        }
    }
    // Each verb refuses them by name, at once for the foreign ones.
    let started = Instant::now();
    for name in &names {
        if name.contains("-own-") {
            continue;
        }
        let (code, text) = tensorlane(&["inspect", name], no_setup);
        assert_eq!(code, 1, "{name}: {text}");
    }
    assert!(started.elapsed() < bound, "{:?}", started.elapsed());
    match StreamReader::open(&fifo) {
        Err(LaneError::NotRegular(_)) => {}
        other => panic!("a FIFO: {:?}", other.map(drop)),
    }
    if foreign {
        let started = Instant::now();
        match StreamReader::open(&format!("{base}-foreign-0")) {
            Err(LaneError::ForeignOwner { owner, .. }) => assert_eq!(owner, OTHER_USER),
            other => panic!("a foreign file: {:?}", other.map(drop)),
        }
        assert!(started.elapsed() < Duration::from_millis(500));
    }
    // The wait for one's own not-ready lane is bounded by the caller's deadline.
    let own = LaneName::new(&format!("{base}-own-0")).unwrap();
    let started = Instant::now();
    match segment::Segment::open_until(&own, Instant::now()) {
        Err(LaneError::Header { .. }) => {}
        other => panic!("an empty file: {:?}", other.map(drop)),
    }
    assert!(started.elapsed() < Duration::from_millis(500));
}

// ---------------------------------------------------------------------------------
// last_k and zero-size tensors.

#[test]
fn last_k_clamps_to_the_ring() {
    let name = format!("env-{}-empty-tensors", std::process::id());
    let _cleanup = Cleanup(vec![name.clone()]);
    let spec = TensorSpec::new(DType::F32, &[0, 3]).unwrap();
    assert_eq!(spec.byte_len(), 0);
    let mut publisher = TopicPublisher::create(&name, &spec, 4, 1).unwrap();
    let subscriber = TopicSubscriber::open(&name, SubscribeOptions::lossy(8)).unwrap();
    assert!(subscriber.last_k(usize::MAX, &mut []).unwrap().is_empty());
    for _ in 0..6 {
        publisher.publish(&[]).unwrap();
    }
    let frames = subscriber.last_k(usize::MAX, &mut []).unwrap();
    let seqs: Vec<u64> = frames.iter().map(|f| f.seq).collect();
    assert_eq!(seqs, [3, 4, 5, 6]);
    assert_eq!(subscriber.last_k(2, &mut []).unwrap().len(), 2);
}

// ---------------------------------------------------------------------------------
// Group lanes.

#[test]
fn group_members_use_group_lanes() {
    const TEST: &str = "group_members_use_group_lanes";
    if !is_root() {
        return skipped(TEST, "needs root to run processes of other users");
    }
    let name = format!("env-{}-group", std::process::id());
    let _cleanup = Cleanup(vec![name.clone()]);
    let spec = TensorSpec::bytes(8).unwrap();
    let options = CreateOptions::new().group_access(true);
    let mut writer = StreamWriter::create_with(&name, &spec, 2, options).unwrap();
    writer.write(&[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
    drop(writer);
    // The lane's group: the creator's effective group, changed here as `chgrp` would.
    let path = CString::new(object_path(&name)).unwrap();
    // SAFETY: `path` is a NUL-terminated C string that outlives the call.
    check(unsafe { libc::chown(path.as_ptr(), u32::MAX, GROUP) }).unwrap();

    let as_user = |role: &str, gid: u32| {
        let mut command = child(role, &name);
        command.uid(OTHER_USER).gid(gid);
        command
    };
    let output = match as_user("group-member", GROUP).output() {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            return skipped(TEST, &format!("cannot run a process as another user: {e}"));
        }
        result => checked("a group member", result),
    };
    assert!(
        String::from_utf8_lossy(&output.stdout).contains(&format!("wrote as uid {OTHER_USER}")),
        "{output:?}"
    );
    let mut reader = StreamReader::open(&name).unwrap();
    let mut value = [0u8; 8];
    let frame = reader.read(&mut value).unwrap();
    assert_eq!((value, frame.frame_id), ([9; 8], 2));

    succeeds(
        "a process outside the group",
        &mut as_user("outsider", OTHER_GROUP),
    );

    // A lane of another user whose mode is not 0660 is refused even to its group
    // (here mode 0666: anyone may open the object, but it is not a group lane).
    std::fs::set_permissions(object_path(&name), PermissionsExt::from_mode(0o666)).unwrap();
    succeeds(
        "a group member facing mode 0666",
        &mut as_user("wrong-mode", GROUP),
    );
}
