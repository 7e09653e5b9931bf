//! GPU lanes on a real CUDA device, across processes: the same protocol the host
//! backend tests run everywhere (`host_lanes.rs`), here with device slots, IPC events
//! and (where the driver offers it) VMM descriptors.
//!
//! Every test needs a CUDA device; without one each says
//! `SKIPPED (no CUDA device): <name>` on stderr and passes. With one, the tests write
//! self-checking tensors from host and device memory, read them in a child process
//! into host memory, device memory and views, check a CPU mirror with a plain shm
//! reader, and print the hand-over latency (write call to the child's return, p50 and
//! p99 over the run, through CLOCK_REALTIME on one machine).
#![cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]

mod common;

use common::{fill, unlink, whole, Cleanup};

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tensorlane_gpu::{
    gpu_available, mirror_name, CudaBackend, GpuLaneOptions, GpuStreamReader, GpuStreamWriter,
    GpuTopicPublisher, GpuTopicSubscriber,
};
use tensorlane_shm::{DType, StreamReader, SubscribeOptions, TensorSpec};

const ROLE: &str = "TENSORLANE_CUDA_LANE_ROLE";
const LANE: &str = "TENSORLANE_CUDA_LANE";
const WORDS: usize = 1 << 17; // 1 MiB
const WRITES: u64 = 200;

fn spec() -> TensorSpec {
    TensorSpec::new(DType::U64, &[WORDS as u64]).unwrap()
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn skip(name: &str) -> bool {
    if gpu_available() {
        return false;
    }
    let _ = writeln!(std::io::stderr().lock(), "SKIPPED (no CUDA device): {name}");
    true
}

/// Runs a child role when `TENSORLANE_CUDA_LANE_ROLE` is set.
#[test]
fn child_entry() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    // SAFETY: prctl(PR_SET_PDEATHSIG) has no memory-safety preconditions.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) };
    let lane = std::env::var(LANE).unwrap();
    let outcome = match role.as_str() {
        "stream" => stream_child(&lane),
        "topic" => topic_child(&lane),
        "mirror" => mirror_child(&lane),
        other => Err(format!("unknown role {other}")),
    };
    match outcome {
        Ok(summary) => {
            println!("#tl# {summary}");
            std::process::exit(0)
        }
        Err(e) => {
            println!("#tl# error {e}");
            std::process::exit(2)
        }
    }
}

fn stream_child(lane: &str) -> Result<String, String> {
    let backend = CudaBackend::new(0).map_err(|e| e.to_string())?;
    let mut reader = GpuStreamReader::open(&backend, lane).map_err(|e| e.to_string())?;
    println!("#tl# ready");
    let mut host = vec![0u8; WORDS * 8];
    let device = backend.alloc(WORDS * 8).map_err(|e| e.to_string())?;
    let (mut torn, mut read, mut last, mut latencies) = (0u64, 0u64, 0u64, Vec::new());
    let deadline = Instant::now() + Duration::from_secs(60);
    while last < WRITES && Instant::now() < deadline {
        let frame = match reader.read_new_timeout(&mut host, Duration::from_secs(5)) {
            Ok(frame) => frame,
            Err(tensorlane_gpu::GpuError::Overwritten) => continue,
            Err(e) => return Err(e.to_string()),
        };
        latencies.push(now_ns().saturating_sub(frame.timestamp_ns));
        read += 1;
        torn += u64::from(!whole(frame.seq, &host));
        last = frame.seq;
        // The same write again, into device memory.
        // SAFETY: `device` is this backend's allocation of one tensor, used by nothing
        // else meanwhile.
        let again = unsafe { reader.read_into_device(device.ptr()) };
        let again = again.map_err(|e| e.to_string())?;
        device.copy_to_host(&mut host).map_err(|e| e.to_string())?;
        torn += u64::from(!whole(again.seq, &host));
    }
    latencies.sort_unstable();
    let p = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(0)
    };
    Ok(format!(
        "read={read} torn={torn} last={last} p50_ns={} p99_ns={}",
        p(0.5),
        p(0.99)
    ))
}

fn topic_child(lane: &str) -> Result<String, String> {
    let backend = CudaBackend::new(0).map_err(|e| e.to_string())?;
    let mut subscriber = GpuTopicSubscriber::open(&backend, lane, SubscribeOptions::lossless())
        .map_err(|e| e.to_string())?;
    println!("#tl# ready");
    let mut host = vec![0u8; WORDS * 8];
    let (mut torn, mut read, mut gaps, mut next) = (0u64, 0u64, 0u64, 0u64);
    while next < WRITES {
        let frame = subscriber
            .recv_timeout(&mut host, Duration::from_secs(10))
            .map_err(|e| e.to_string())?;
        read += 1;
        torn += u64::from(!whole(frame.seq, &host));
        gaps += u64::from(frame.seq != next);
        next = frame.seq + 1;
    }
    Ok(format!(
        "read={read} torn={torn} gaps={gaps} last={}",
        next - 1
    ))
}

fn mirror_child(lane: &str) -> Result<String, String> {
    // A process that never touches CUDA.
    let mut reader =
        StreamReader::open_expect(&mirror_name(lane), &spec()).map_err(|e| e.to_string())?;
    println!("#tl# ready");
    let mut host = vec![0u8; WORDS * 8];
    let (mut torn, mut read, mut last) = (0u64, 0u64, 0u64);
    let deadline = Instant::now() + Duration::from_secs(60);
    while last < WRITES && Instant::now() < deadline {
        let frame = reader
            .read_new_timeout(&mut host, Duration::from_secs(5))
            .map_err(|e| e.to_string())?;
        read += 1;
        torn += u64::from(!whole(frame.seq, &host));
        last = frame.seq;
    }
    Ok(format!("read={read} torn={torn} last={last} gaps=0"))
}

/// Spawns a child role; returns it once it said `ready`, with its line reader.
/// [`finish`] waits for it; a failing test kills it through `PR_SET_PDEATHSIG`.
#[allow(clippy::zombie_processes)]
fn spawn(
    role: &str,
    lane: &str,
) -> (
    std::process::Child,
    std::io::Lines<BufReader<std::process::ChildStdout>>,
) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_entry", "--nocapture", "--test-threads=1"])
        .env(ROLE, role)
        .env(LANE, lane)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    loop {
        let line = lines.next().expect("child output").unwrap();
        assert!(!line.contains("#tl# error"), "{line}");
        if line.contains("#tl# ready") {
            return (child, lines);
        }
    }
}

fn finish(
    mut child: std::process::Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
) -> String {
    let summary = lines
        .map_while(Result::ok)
        .find_map(|l| l.find("#tl# ").map(|at| l[at + 5..].to_string()))
        .expect("a summary line");
    assert!(child.wait().unwrap().success(), "{summary}");
    assert!(!summary.starts_with("error"), "{summary}");
    summary
}

fn field(summary: &str, key: &str) -> u64 {
    summary
        .split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in {summary}"))
}

fn stream_case(backend: CudaBackend, tag: &str) {
    let name = format!("cuda-lane-{}-{tag}", std::process::id());
    let _cleanup = Cleanup(name.clone());
    let options = GpuLaneOptions::new().mirror(true);
    let mut writer = GpuStreamWriter::create(&backend, &name, &spec(), 3, options).unwrap();
    let (gpu_child, gpu_lines) = spawn("stream", &name);
    let (cpu_child, cpu_lines) = spawn("mirror", &name);
    let mut host = vec![0u8; WORDS * 8];
    let mut device = backend.alloc(WORDS * 8).unwrap();
    for k in 1..=WRITES {
        fill(k, &mut host);
        if k % 2 == 0 {
            device.copy_from_host(&host).unwrap();
            // SAFETY: `device` holds one tensor and is not written again until the
            // writer's stream has copied it (`synchronize` below).
            unsafe { writer.write_from_device(device.ptr()).unwrap() };
            writer.synchronize().unwrap();
        } else {
            writer.write(&host).unwrap();
        }
        host.fill(0xff);
        std::thread::sleep(Duration::from_micros(500));
    }
    let gpu = finish(gpu_child, gpu_lines);
    let cpu = finish(cpu_child, cpu_lines);
    println!("CUDA stream ({tag}): reader {gpu}; CPU mirror {cpu}");
    for summary in [&gpu, &cpu] {
        assert_eq!(field(summary, "torn"), 0, "{summary}");
        assert_eq!(field(summary, "last"), WRITES, "{summary}");
    }
    drop(writer);
    unlink(&name);
}

#[test]
fn cuda_stream_across_processes() {
    if skip("cuda_stream_across_processes") {
        return;
    }
    stream_case(CudaBackend::new(0).unwrap(), "default");
}

#[test]
fn cuda_stream_across_processes_legacy_ipc() {
    if skip("cuda_stream_across_processes_legacy_ipc") {
        return;
    }
    stream_case(CudaBackend::legacy(0).unwrap(), "legacy");
}

#[test]
fn cuda_topic_lossless_across_processes() {
    if skip("cuda_topic_lossless_across_processes") {
        return;
    }
    let backend = CudaBackend::new(0).unwrap();
    let name = format!("cuda-topic-{}", std::process::id());
    let _cleanup = Cleanup(name.clone());
    let mut publisher =
        GpuTopicPublisher::create(&backend, &name, &spec(), 4, 4, GpuLaneOptions::default())
            .unwrap();
    let (child, lines) = spawn("topic", &name);
    let mut host = vec![0u8; WORDS * 8];
    for position in 0..WRITES {
        fill(position, &mut host);
        publisher
            .publish_timeout(&host, Duration::from_secs(10))
            .unwrap();
        host.fill(0xff);
    }
    let summary = finish(child, lines);
    println!("CUDA topic: {summary}");
    assert_eq!(
        (
            field(&summary, "read"),
            field(&summary, "torn"),
            field(&summary, "gaps")
        ),
        (WRITES, 0, 0)
    );
    drop(publisher);
    unlink(&name);
}
