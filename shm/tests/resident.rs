//! Real-time residency of a lane's mapping (`prefault`, `lock_memory`):
//! - after a create and an open with `prefault(true)`, a loop of writes and reads on
//!   every lane kind takes no minor or major page fault (`getrusage(RUSAGE_THREAD)`
//!   before and after); the same loop on lanes opened without it does take faults,
//!   which shows the measurement sees them;
//! - `lock_memory(true)` locks the mapping (checked in `/proc/self/status`'s
//!   `VmLck`) where the limit allows, and where `RLIMIT_MEMLOCK` refuses it (a child
//!   process lowers its limit and drops `CAP_IPC_LOCK`) create and open fail with the
//!   typed `LaneError::MemoryLock`, whose message says how to raise the limit.
//!
//! The child process is this test binary re-executed (`--exact child_entry`) with
//! `TENSORLANE_RESIDENT_ROLE` set.
#![cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use tensorlane_shm::*;

const ROLE_VAR: &str = "TENSORLANE_RESIDENT_ROLE";

fn unique(tag: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "rt-res-{tag}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Unlinks a lane when dropped.
struct Cleanup(String);
impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Ok(name) = LaneName::new(&self.0) {
            let _ = segment::unlink(&name);
        }
    }
}

/// Minor and major page faults of the calling thread so far.
fn thread_faults() -> (i64, i64) {
    // SAFETY: rusage is a plain C struct for which all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is valid for writes for the duration of the call.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    assert_eq!(rc, 0, "getrusage: {}", std::io::Error::last_os_error());
    (usage.ru_minflt, usage.ru_majflt)
}

/// Touches 256 KiB of stack below this frame, so that the loop's calls find their
/// stack pages mapped.
#[inline(never)]
fn touch_stack() {
    let mut pad = [0u8; 256 * 1024];
    std::hint::black_box(&mut pad);
}

/// Every lane kind, created and opened with `options`, with buffers already touched.
struct Lanes {
    _cleanup: Vec<Cleanup>,
    writer: StreamWriter,
    reader: StreamReader,
    producer: QueueProducer,
    consumer: QueueConsumer,
    publisher: TopicPublisher,
    lossless: TopicSubscriber,
    lossy: TopicSubscriber,
    input: Vec<u8>,
    output: Vec<u8>,
}

const TENSOR_BYTES: usize = 64 * 1024;

impl Lanes {
    fn new(prefault: bool) -> Lanes {
        let spec = TensorSpec::bytes(TENSOR_BYTES as u64).unwrap();
        let create = CreateOptions::new().prefault(prefault);
        let open = OpenOptions::new().expect(&spec).prefault(prefault);
        let (s, q, t) = (unique("s"), unique("q"), unique("t"));
        let cleanup = vec![Cleanup(s.clone()), Cleanup(q.clone()), Cleanup(t.clone())];
        let writer = StreamWriter::create_with(&s, &spec, 3, create.clone()).unwrap();
        let reader = StreamReader::open_with(&s, open.clone()).unwrap();
        let producer = QueueProducer::create_with(&q, &spec, 8, create.clone()).unwrap();
        let consumer = QueueConsumer::open_with(&q, open.clone()).unwrap();
        let publisher = TopicPublisher::create_with(&t, &spec, 8, 4, create).unwrap();
        let lossless =
            TopicSubscriber::open_with(&t, SubscribeOptions::lossless(), open.clone()).unwrap();
        let lossy = TopicSubscriber::open_with(&t, SubscribeOptions::lossy(1), open).unwrap();
        Lanes {
            _cleanup: cleanup,
            writer,
            reader,
            producer,
            consumer,
            publisher,
            lossless,
            lossy,
            input: vec![1u8; TENSOR_BYTES],
            output: vec![0u8; TENSOR_BYTES],
        }
    }

    /// Writes and reads every lane `rounds` times, through every slot.
    fn run(&mut self, rounds: usize) {
        for i in 0..rounds {
            self.input[0] = i as u8;
            self.writer.write(&self.input).unwrap();
            self.reader.read(&mut self.output).unwrap();
            self.producer.try_push(&self.input).unwrap();
            self.consumer.try_pop(&mut self.output).unwrap();
            self.publisher.try_publish(&self.input).unwrap();
            self.lossless.try_recv(&mut self.output).unwrap();
            self.lossy.try_recv(&mut self.output).unwrap();
            assert_eq!(self.output[0], i as u8);
        }
    }
}

/// Page faults taken by a loop of 64 rounds on fresh lanes created and opened with
/// `prefault`, after the same loop warmed up the code and the stack on other lanes.
fn faults_of_the_loop(prefault: bool) -> (i64, i64) {
    Lanes::new(prefault).run(64);
    touch_stack();
    let mut lanes = Lanes::new(prefault);
    let before = thread_faults();
    lanes.run(64);
    let after = thread_faults();
    (after.0 - before.0, after.1 - before.1)
}

#[test]
#[cfg_attr(miri, ignore = "shm_open")]
fn a_prefaulted_loop_takes_no_page_fault() {
    let (minor, major) = faults_of_the_loop(true);
    assert_eq!(
        (minor, major),
        (0, 0),
        "the loop took {minor} minor and {major} major page faults on pre-faulted lanes"
    );
}

/// The measurement sees the faults the option removes: the same loop on lanes opened
/// without it faults in their pages (7 mappings of at least 256 KiB each; the kernel
/// maps up to 16 neighbouring pages per fault, so about 350 faults here).
#[test]
#[cfg_attr(miri, ignore = "shm_open")]
fn without_prefault_the_same_loop_faults() {
    let (minor, major) = faults_of_the_loop(false);
    eprintln!("without prefault: {minor} minor, {major} major page faults");
    assert!(
        minor + major >= 64,
        "only {minor} minor and {major} major faults: the measurement does not see them"
    );
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

fn memlock_limit() -> Option<u64> {
    // SAFETY: rlimit is a plain C struct for which all-zero is a valid value.
    let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: `limit` is valid for writes for the duration of the call.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) };
    assert_eq!(rc, 0);
    (limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

/// Where the limit allows, a locked lane is locked; where it refuses, the error is
/// typed. Runs in a child process: locks are counted per process.
#[test]
#[cfg_attr(miri, ignore = "shm_open")]
fn lock_memory_locks_or_says_why_not() {
    let out = child("lock-within-limit");
    if out.contains("SKIPPED") {
        eprintln!("{out}");
    }
    assert!(out.contains("locked"), "child said: {out}");
}

/// Over `RLIMIT_MEMLOCK` and without `CAP_IPC_LOCK`, create and open fail with
/// `MemoryLock`, and nothing is left behind.
#[test]
#[cfg_attr(miri, ignore = "shm_open")]
fn a_lock_over_the_limit_is_a_typed_error() {
    let out = child("lock-over-limit");
    assert!(out.contains("refused create and open"), "child said: {out}");
}

fn child(role: &str) -> String {
    let exe = std::env::current_exe().unwrap();
    let output = Command::new(exe)
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env(ROLE_VAR, role)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "child {role} failed: {text}");
    text
}

/// The child's entry point: without the role variable, an empty test.
#[test]
fn child_entry() {
    let Ok(role) = std::env::var(ROLE_VAR) else {
        return;
    };
    match role.as_str() {
        "lock-within-limit" => lock_within_limit(),
        "lock-over-limit" => lock_over_limit(),
        other => panic!("unknown role {other:?}"),
    }
}

fn lock_within_limit() {
    let spec = TensorSpec::bytes(16 * 1024).unwrap();
    let name = unique("lock");
    let _cleanup = Cleanup(name.clone());
    let before = locked_kib();
    let created =
        StreamWriter::create_with(&name, &spec, 2, CreateOptions::new().lock_memory(true));
    match created {
        Ok(_writer) => {
            let _reader =
                StreamReader::open_with(&name, OpenOptions::new().lock_memory(true)).unwrap();
            let locked = locked_kib() - before;
            // Two mappings of the lane (at least 32 KiB of slots each).
            assert!(locked >= 64, "VmLck grew by {locked} KiB only");
            println!("locked {locked} KiB");
        }
        Err(e @ LaneError::MemoryLock { .. }) => {
            // The typed refusal is the tested path here; the success path could not be.
            println!("locked: SKIPPED the locked path, the limit refused it: {e}");
            eprintln!(
                "SKIPPED: mlock within RLIMIT_MEMLOCK ({:?}) was refused: {e}",
                memlock_limit()
            );
        }
        Err(e) => panic!("create failed: {e}"),
    }
}

/// Drops `CAP_IPC_LOCK` from this thread's effective set (no-op without it).
fn drop_ipc_lock() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    const CAP_IPC_LOCK: u32 = 14;
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: header and two data entries, as version 3 of capget expects.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    assert_eq!(rc, 0, "capget: {}", std::io::Error::last_os_error());
    data[0].effective &= !(1 << CAP_IPC_LOCK);
    data[0].permitted &= !(1 << CAP_IPC_LOCK);
    // SAFETY: as above; capset only lowers this thread's capabilities.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    assert_eq!(rc, 0, "capset: {}", std::io::Error::last_os_error());
}

fn lock_over_limit() {
    const LIMIT: u64 = 64 * 1024;
    let limit = libc::rlimit {
        rlim_cur: LIMIT,
        rlim_max: LIMIT,
    };
    // SAFETY: `limit` is a valid rlimit; lowering a limit needs no privilege.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &limit) }, 0);
    drop_ipc_lock();
    let spec = TensorSpec::bytes(256 * 1024).unwrap();
    let name = unique("over");
    let _cleanup = Cleanup(name.clone());
    let err = StreamWriter::create_with(&name, &spec, 2, CreateOptions::new().lock_memory(true))
        .expect_err("a 512 KiB lock under a 64 KiB limit without CAP_IPC_LOCK");
    let LaneError::MemoryLock { bytes, limit, .. } = &err else {
        panic!("not MemoryLock: {err:?}");
    };
    assert!(*bytes >= 512 * 1024 && *limit == Some(LIMIT), "{err:?}");
    let message = err.to_string();
    for advice in ["ulimit -l", "limits.conf", "CAP_IPC_LOCK"] {
        assert!(message.contains(advice), "{message:?} lacks {advice:?}");
    }
    // Nothing left behind: the name is free again.
    let _writer = StreamWriter::create(&name, &spec, 2).expect("the refused create unlinked");
    let err = StreamReader::open_with(&name, OpenOptions::new().lock_memory(true))
        .expect_err("the open's lock is refused too");
    assert!(matches!(err, LaneError::MemoryLock { .. }), "{err:?}");
    // Without the lock, the same open works.
    StreamReader::open_with(&name, OpenOptions::new().prefault(true)).unwrap();
    println!("refused create and open: {message}");
}
