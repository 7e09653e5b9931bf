//! The orchestration of `compare`: rounds of interleaved measurements, the second
//! processes, the table on stdout and the JSON file.
//!
//! Every measurement is a *task*. Each round runs every task once, with a share of
//! the samples, starting the round at a different task so that slow drift of the
//! machine (other load, frequency, thermal) spreads over all tasks alike. Latency
//! samples of all rounds are pooled before the percentiles are taken; throughput
//! figures are the median over rounds of each round's median batch.

use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tensorlane_benches::lanes::{self, Kind};
use tensorlane_benches::link;
use tensorlane_benches::stats::{self, Summary};
use tensorlane_benches::{floor, pyshmem, scan};

#[path = "bridge.rs"]
mod bridge;

const KIB: usize = 1024;
/// Payload sizes of the latency measurements.
const LATENCY_SIZES: [usize; 2] = [64, 1024 * KIB];
/// Payload sizes of the throughput measurements (64 B, 100x100 f32, 1000x1000 f32).
/// Write+read sizes: 64 B, 40 KB (pyshmem's own headline, a 100x100 float32 tensor),
/// 4 MB, and 64 MiB (beyond the caches).
const THROUGHPUT_SIZES: [usize; 4] = [64, 40_000, 4_000_000, 64 * KIB * KIB];
/// Lossy subscriber counts of the publish-cost measurement.
const SUBSCRIBERS: [usize; 4] = [1, 2, 4, 8];
/// Joined subscribers of the table-scan rows (a table of `scan::TABLE` entries).
const JOINED: [usize; 4] = [1, 64, 1024, 4096];
/// Pause of the wake-up senders before each write (the reader must be asleep).
const WAKE_GAP: Duration = Duration::from_micros(200);

fn size_name(size: usize) -> String {
    match size {
        s if s >= KIB * KIB && s % (KIB * KIB) == 0 => format!("{} MiB", s / (KIB * KIB)),
        s if s >= 1_000_000 && s % 1_000_000 == 0 => format!("{} MB", s / 1_000_000),
        s if s >= 1000 && s % 1000 == 0 => format!("{} KB", s / 1000),
        s => format!("{s} B"),
    }
}

// ---------------------------------------------------------------------------------
// Command line

#[derive(Debug, Clone)]
struct Options {
    rounds: usize,
    /// Divides every sample count (quick runs while developing).
    scale: usize,
    with_pyshmem: bool,
    venv: PathBuf,
    json: PathBuf,
    /// Only the tasks whose name contains one of these.
    only: Vec<String>,
    /// CPUs of the measuring and of the second process, if pinned.
    pin: Option<(usize, usize)>,
}

/// CPU of the measuring process when pinned.
const PARENT_CPU: usize = 0;

/// CPU of the second processes (set once, before any is started).
static CHILD_CPU: std::sync::OnceLock<Option<usize>> = std::sync::OnceLock::new();

fn target_dir() -> PathBuf {
    // .../<target>/release/compare -> .../<target>
    std::env::current_exe()
        .ok()
        .and_then(|p| p.parent()?.parent().map(|p| p.to_path_buf()))
        .unwrap_or_else(|| PathBuf::from("target"))
}

const USAGE: &str =
    "usage: compare [--rounds N] [--quick] [--with-pyshmem] [--venv DIR] [--json FILE]

  --rounds N        interleaved rounds (default 10; the samples are shared out)
  --quick           a tenth of the samples and 2 rounds (for development)
  --with-pyshmem    measure pyshmem: creates DIR (python3 -m venv) and installs
                    pyshmem 1.4.0 and numpy into it if they are missing
  --venv DIR        the virtual environment (default <target>/pyshmem-venv)
  --json FILE       where to write the results (default <target>/tensorlane-compare.json)
  --no-pin          do not pin the two processes to CPUs 0 and 1
  --only A,B        only the tasks whose name contains A or B (e.g. \"spsc\", \"memcpy\")

iceoryx2 is measured when the binary is built with `--features iceoryx2`.";

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut o = Options {
        rounds: 10,
        scale: 1,
        with_pyshmem: false,
        venv: target_dir().join("pyshmem-venv"),
        json: target_dir().join("tensorlane-compare.json"),
        only: Vec::new(),
        pin: (std::thread::available_parallelism().map_or(1, |n| n.get()) >= 2)
            .then_some((PARENT_CPU, 1)),
    };
    let mut rounds = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--rounds" => {
                rounds = Some(
                    value("--rounds")?
                        .parse::<usize>()
                        .map_err(|e| format!("--rounds: {e}"))?
                        .max(1),
                )
            }
            "--quick" => o.scale = 10,
            "--no-pin" => o.pin = None,
            "--with-pyshmem" => o.with_pyshmem = true,
            "--venv" => o.venv = PathBuf::from(value("--venv")?),
            "--json" => o.json = PathBuf::from(value("--json")?),
            "--only" => o
                .only
                .extend(value("--only")?.split(',').map(str::to_string)),
            "-h" | "--help" => return Err(USAGE.to_string()),
            other => return Err(format!("unknown argument {other}\n\n{USAGE}")),
        }
    }
    o.rounds = rounds.unwrap_or(if o.scale > 1 { 2 } else { 10 });
    Ok(o)
}

/// `--key value` pairs of a second process's command line.
fn role_args(args: &[String]) -> BTreeMap<String, String> {
    args.chunks(2)
        .filter_map(|p| match p {
            [k, v] => Some((k.trim_start_matches("--").to_string(), v.clone())),
            _ => None,
        })
        .collect()
}

fn arg<T: std::str::FromStr>(m: &BTreeMap<String, String>, key: &str) -> T {
    m.get(key)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("missing or bad --{key}"))
}

/// Entry point; returns the exit code.
pub fn main() -> i32 {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--role") {
        return run_role(&role_args(&args));
    }
    match parse_options(&args) {
        Ok(options) => run_parent(&options),
        Err(msg) => {
            eprintln!("{msg}");
            2
        }
    }
}

// ---------------------------------------------------------------------------------
// Second processes

fn run_role(m: &BTreeMap<String, String>) -> i32 {
    let role: String = arg(m, "role");
    if let Some(cpu) = m.get("cpu").and_then(|c| c.parse().ok()) {
        tensorlane_benches::cpu::pin(cpu);
    }
    let result: Result<(), String> = match role.as_str() {
        "echo" => (|| {
            let kind = Kind::parse(&arg::<String>(m, "kind")).ok_or("bad --kind")?;
            let size: usize = arg(m, "size");
            let mut rx = lanes::open_rx(kind, &arg::<String>(m, "ping"), size, secs(5))
                .map_err(|e| e.to_string())?;
            let mut tx = lanes::create_tx(kind, &arg::<String>(m, "pong"), size)
                .map_err(|e| e.to_string())?;
            link::echo(&mut *rx, &mut *tx);
            Ok(())
        })(),
        "floor-echo" => (|| {
            let page = lanes::retry(secs(5), || {
                floor::SharedPage::open(&arg::<String>(m, "name"))
            })
            .map_err(|e| e.to_string())?;
            if arg::<u8>(m, "inline") == 1 {
                floor::echo_inline(&page, arg(m, "payload"));
            } else {
                floor::echo(&page, arg(m, "payload"));
            }
            Ok(())
        })(),
        "futex-send" => (|| {
            let page = lanes::retry(secs(5), || {
                floor::SharedPage::open(&arg::<String>(m, "name"))
            })
            .map_err(|e| e.to_string())?;
            floor::futex_sender(&page, arg(m, "count"), WAKE_GAP);
            Ok(())
        })(),
        "wake-send" => lanes::wake_sender(
            &arg::<String>(m, "name"),
            arg(m, "size"),
            arg(m, "count"),
            WAKE_GAP,
        )
        .map_err(|e| e.to_string()),
        "ice-echo" => ice_echo(m),
        "zenoh-sender" => bridge::sender(m),
        other => Err(format!("unknown role {other}")),
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("compare --role {role}: {e}");
            1
        }
    }
}

#[cfg(feature = "iceoryx2")]
fn ice_echo(m: &BTreeMap<String, String>) -> Result<(), String> {
    use tensorlane_benches::ice::{quiet, IceRx, IceTx};
    quiet();
    let size: usize = arg(m, "size");
    let touched = arg::<u8>(m, "touched") != 0;
    let mut rx = IceRx::open(&arg::<String>(m, "ping"), touched, secs(5))?;
    let mut tx = IceTx::create(&arg::<String>(m, "pong"), size, touched)?;
    link::echo(&mut rx, &mut tx);
    Ok(())
}

#[cfg(not(feature = "iceoryx2"))]
fn ice_echo(_: &BTreeMap<String, String>) -> Result<(), String> {
    Err("built without feature iceoryx2".into())
}

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn spawn(args: &[String], pinned: bool) -> Result<Child, String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let mut cmd = Command::new(exe);
    cmd.arg("--role").args(args);
    if let Some(cpu) = CHILD_CPU.get().copied().flatten().filter(|_| pinned) {
        cmd.arg("--cpu").arg(cpu.to_string());
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("spawning the second process: {e}"))
}

/// Waits up to 10 s for `child` to exit (killing it after that, or at once if the
/// measurement failed); reports a failed exit.
fn finish(mut child: Child, measured: bool) -> Result<(), String> {
    let deadline = Instant::now() + secs(10);
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("second process exited with {status}")),
            Ok(None) if measured && Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(1))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err("second process killed".into());
            }
        }
    }
}

fn with_child<T>(
    args: Vec<String>,
    measure: impl FnOnce() -> Result<T, String>,
) -> Result<T, String> {
    with_child_pinned(args, true, measure)
}

/// Like [`with_child`]; unpinned (`pinned == false`), both processes may run on any
/// CPU meanwhile.
fn with_child_pinned<T>(
    args: Vec<String>,
    pinned: bool,
    measure: impl FnOnce() -> Result<T, String>,
) -> Result<T, String> {
    if pinned {
        with_child_inner(args, pinned, measure)
    } else {
        unpinned(|| with_child_inner(args, pinned, measure))
    }
}

/// Runs `f` with this thread unpinned (and so every thread and process it starts),
/// then pins it again if it was.
fn unpinned<T>(f: impl FnOnce() -> T) -> T {
    let parent_cpu = CHILD_CPU.get().copied().flatten().map(|_| PARENT_CPU);
    if parent_cpu.is_some() {
        tensorlane_benches::cpu::unpin();
    }
    let result = f();
    if let Some(cpu) = parent_cpu {
        tensorlane_benches::cpu::pin(cpu);
    }
    result
}

fn with_child_inner<T>(
    args: Vec<String>,
    pinned: bool,
    measure: impl FnOnce() -> Result<T, String>,
) -> Result<T, String> {
    let child = spawn(&args, pinned)?;
    let result = measure();
    let exited = finish(child, result.is_ok());
    let value = result?;
    exited.map(|()| value)
}

fn strings(parts: &[&dyn ToString]) -> Vec<String> {
    parts.iter().map(|p| p.to_string()).collect()
}

// ---------------------------------------------------------------------------------
// Tasks

#[derive(Debug, Clone, Copy, PartialEq)]
enum Task {
    PingPong,
    /// Diagnostic: signal and an 80-byte payload (16-byte prefix + 64 B) in separate lines.
    SplitPingPong,
    /// Diagnostic: per-direction signal word followed by the 80-byte payload.
    InlinePingPong,
    FutexWake,
    AtomicCopy(usize),
    RepMovsbCopy(usize),
    /// Diagnostic: push + pop of a 64 B queue in one thread.
    QueueSameThread,
    Memcpy(usize),
    Lane(Kind, usize),
    Wake(usize),
    StreamRw(usize),
    Publish(usize),
    /// Publish cost with this many joined subscribers (lossless if true), core only.
    Scan(usize, bool),
    Ice(bool, usize),
    /// The Zenoh bridge and raw Zenoh (feature `bridge`).
    Bridge(usize),
    Pyshmem,
}

#[derive(Debug, Clone, Copy)]
struct Budget {
    /// Round trips per round at 64 B (and for the floor).
    small: usize,
    /// Round trips per round at 1 MiB.
    large: usize,
    /// Wake-ups per round and size.
    wake: usize,
    /// Throughput batches per round and size.
    batches: usize,
    batch_time: Duration,
}

impl Budget {
    fn new(o: &Options) -> Self {
        let per_round = |total: usize| (total / o.scale / o.rounds).max(20);
        Budget {
            small: per_round(100_000),
            large: per_round(2_500),
            wake: per_round(1_500),
            batches: 5,
            batch_time: Duration::from_millis(if o.scale > 1 { 5 } else { 20 }),
        }
    }

    fn round_trips(&self, size: usize) -> usize {
        if size <= 4096 {
            self.small
        } else {
            self.large
        }
    }
}

/// Pooled results: latency samples (ns) and per-round throughput medians (ns/op).
#[derive(Default)]
struct Results {
    samples: BTreeMap<String, Vec<f64>>,
    errors: BTreeMap<String, String>,
    pyshmem_version: Option<String>,
}

impl Results {
    fn add(&mut self, key: String, values: impl IntoIterator<Item = f64>) {
        self.samples.entry(key).or_default().extend(values);
    }
}

struct Run {
    options: Options,
    budget: Budget,
    pid: u32,
    counter: usize,
    venv_ok: Option<Result<String, String>>,
}

impl Run {
    fn unique(&mut self, what: &str) -> String {
        self.counter += 1;
        format!("tlb-{}-{}-{}", self.pid, self.counter, what)
    }

    fn run_task(&mut self, task: Task, results: &mut Results) -> Result<(), String> {
        let b = self.budget;
        let warm = 200.min(b.small / 10);
        match task {
            Task::PingPong | Task::SplitPingPong | Task::InlinePingPong => {
                let (payload, key) = match task {
                    Task::PingPong => (0usize, "floor/pingpong/64"),
                    Task::SplitPingPong => (80, "diagnostic/pingpong-split/64"),
                    _ => (80, "diagnostic/pingpong-inline/64"),
                };
                let inline = u8::from(task == Task::InlinePingPong);
                let name = format!("/{}", self.unique("floor"));
                let page = floor::SharedPage::create(&name).map_err(|e| e.to_string())?;
                let args = strings(&[
                    &"floor-echo",
                    &"--name",
                    &name,
                    &"--payload",
                    &payload,
                    &"--inline",
                    &inline,
                ]);
                let v = with_child(args, || {
                    if inline == 1 {
                        floor::ping_pong_inline(&page, payload, warm, b.small)
                    } else {
                        floor::ping_pong(&page, payload, warm, b.small)
                    }
                })?;
                results.add(key.into(), v);
            }
            Task::FutexWake => {
                let name = format!("/{}", self.unique("futex"));
                let page = floor::SharedPage::create(&name).map_err(|e| e.to_string())?;
                let warmup = 5;
                let args = strings(&[
                    &"futex-send",
                    &"--name",
                    &name,
                    &"--count",
                    &(warmup + b.wake),
                ]);
                let v = with_child_pinned(args, false, || {
                    floor::futex_receiver(&page, warmup, b.wake)
                })?;
                results.add("floor/futex-wake/64".into(), v);
            }
            Task::AtomicCopy(size) => {
                let ns = floor::atomic_copy_ns(size, b.batches, b.batch_time);
                results.add(format!("diagnostic/atomic-copy/{size}"), [ns]);
            }
            #[cfg(target_arch = "x86_64")]
            Task::RepMovsbCopy(size) => {
                let ns = floor::rep_movsb_copy_ns(size, b.batches, b.batch_time);
                results.add(format!("diagnostic/rep-movsb-copy/{size}"), [ns]);
            }
            #[cfg(not(target_arch = "x86_64"))]
            Task::RepMovsbCopy(_) => return Err("x86_64 only".into()),
            Task::QueueSameThread => {
                let name = self.unique("pushpop");
                let ns = lanes::queue_push_pop_ns(&name, 64, b.batches, b.batch_time)
                    .map_err(|e| e.to_string())?;
                results.add("diagnostic/queue-push+pop-one-thread/64".into(), [ns]);
            }
            Task::Memcpy(size) => {
                let ns = floor::memcpy_ns(size, b.batches, b.batch_time);
                results.add(format!("floor/memcpy/{size}"), [ns]);
                let ns = floor::two_memcpy_ns(size, b.batches, b.batch_time);
                results.add(format!("floor/2memcpy/{size}"), [ns]);
            }
            Task::Lane(kind, size) => {
                let (ping, pong) = (self.unique("ping"), self.unique("pong"));
                let result = (|| {
                    let mut tx = lanes::create_tx(kind, &ping, size).map_err(|e| e.to_string())?;
                    let args = strings(&[
                        &"echo",
                        &"--kind",
                        &kind.name(),
                        &"--size",
                        &size,
                        &"--ping",
                        &ping,
                        &"--pong",
                        &pong,
                    ]);
                    with_child(args, || {
                        let mut rx = lanes::open_rx(kind, &pong, size, secs(5))
                            .map_err(|e| e.to_string())?;
                        link::ping_pong(&mut *tx, &mut *rx, warm, b.round_trips(size))
                    })
                })();
                lanes::unlink(&ping);
                lanes::unlink(&pong);
                results.add(format!("tensorlane/{}/{size}", kind.name()), result?);
            }
            Task::Wake(size) => {
                let name = self.unique("wake");
                let warmup = 5;
                let args = strings(&[
                    &"wake-send",
                    &"--name",
                    &name,
                    &"--size",
                    &size,
                    &"--count",
                    &(warmup + b.wake),
                ]);
                let result = with_child_pinned(args, false, || {
                    lanes::wake_receiver(&name, size, warmup, b.wake).map_err(|e| e.to_string())
                });
                lanes::unlink(&name);
                results.add(format!("tensorlane/stream-wake/{size}"), result?);
            }
            Task::StreamRw(size) => {
                let name = self.unique("rw");
                let ns = lanes::stream_rw_ns(&name, size, b.batches, b.batch_time)
                    .map_err(|e| e.to_string())?;
                results.add(format!("tensorlane/stream-rw/{size}"), [ns]);
            }
            Task::Publish(k) => {
                let name = self.unique("publish");
                let ns = lanes::publish_ns(&name, 64, k, b.batches, b.batch_time)
                    .map_err(|e| e.to_string())?;
                results.add(format!("tensorlane/publish-lossy-{k}/64"), [ns]);
            }
            Task::Scan(joined, lossless) => {
                let ns = scan::publish_ns(joined, lossless, b.batches, 20);
                let mode = if lossless { "lossless" } else { "lossy" };
                results.add(
                    format!("tensorlane/publish-joined-{mode}-{joined}/64"),
                    [ns],
                );
            }
            Task::Bridge(size) => {
                let samples = self.budget.round_trips(size).clamp(200, 3000);
                // Zenoh's threads and the bridge's processes are scheduled freely, as
                // deployed, not on the measuring thread's CPU.
                for (key, v) in unpinned(|| bridge::latency(size, samples))? {
                    results.add(key, v);
                }
            }
            Task::Ice(touched, size) => {
                let v = self.ice(touched, size, warm)?;
                let mode = if touched { "touched" } else { "untouched" };
                results.add(format!("iceoryx2/{mode}/{size}"), v);
            }
            Task::Pyshmem => {
                let venv = self.options.venv.clone();
                let version = self
                    .venv_ok
                    .get_or_insert_with(|| pyshmem::ensure_venv(&venv))
                    .clone()?;
                results.pyshmem_version = Some(version);
                let plan = pyshmem::Plan {
                    prefix: self.unique("py").replace('-', "_"),
                    sizes: THROUGHPUT_SIZES.to_vec(),
                    latency_sizes: LATENCY_SIZES.to_vec(),
                    samples: (b.large * 2).max(50),
                    wake_samples: b.wake / 2,
                    gap_us: WAKE_GAP.as_micros() as u64,
                    batch_ms: b.batch_time.as_millis() as u64 * 2,
                    batches: b.batches,
                };
                let v = pyshmem::measure(&venv, &plan)?;
                for (kind, unit_is_hz) in [("hz", true), ("pingpong", false), ("wake", false)] {
                    let Some(map) = v.get(kind).and_then(Value::as_object) else {
                        return Err(format!("pyshmem output lacks {kind}"));
                    };
                    for (size, x) in map {
                        let key = match kind {
                            "hz" => format!("pyshmem/write-read/{size}"),
                            other => format!("pyshmem/{other}/{size}"),
                        };
                        if unit_is_hz {
                            let hz = x.as_f64().unwrap_or(f64::NAN);
                            results.add(key, [1e9 / hz]);
                        } else {
                            let xs = x.as_array().cloned().unwrap_or_default();
                            results.add(key, xs.iter().filter_map(Value::as_f64));
                        }
                    }
                }
            }
        }
        Ok(())
    }

    #[cfg(feature = "iceoryx2")]
    fn ice(&mut self, touched: bool, size: usize, warm: usize) -> Result<Vec<f64>, String> {
        use tensorlane_benches::ice::{quiet, IceRx, IceTx};
        quiet();
        let (ping, pong) = (self.unique("ping"), self.unique("pong"));
        let mut tx = IceTx::create(&ping, size, touched)?;
        let args = strings(&[
            &"ice-echo",
            &"--touched",
            &u8::from(touched),
            &"--size",
            &size,
            &"--ping",
            &ping,
            &"--pong",
            &pong,
        ]);
        let rounds = self.budget.round_trips(size);
        with_child(args, || {
            let mut rx = IceRx::open(&pong, touched, secs(5))?;
            link::ping_pong(&mut tx, &mut rx, warm, rounds)
        })
    }

    #[cfg(not(feature = "iceoryx2"))]
    fn ice(&mut self, _: bool, _: usize, _: usize) -> Result<Vec<f64>, String> {
        Err("built without feature iceoryx2".into())
    }
}

fn tasks(options: &Options) -> Vec<Task> {
    let mut t = vec![
        Task::PingPong,
        Task::SplitPingPong,
        Task::InlinePingPong,
        Task::QueueSameThread,
        Task::FutexWake,
    ];
    for size in [64, 40_000, 1024 * KIB, 4_000_000, 64 * KIB * KIB] {
        t.push(Task::Memcpy(size));
    }
    for size in THROUGHPUT_SIZES {
        t.push(Task::AtomicCopy(size));
        if cfg!(target_arch = "x86_64") {
            t.push(Task::RepMovsbCopy(size));
        }
    }
    for kind in Kind::ALL {
        for size in LATENCY_SIZES {
            t.push(Task::Lane(kind, size));
        }
    }
    for size in LATENCY_SIZES {
        t.push(Task::Wake(size));
    }
    for size in THROUGHPUT_SIZES {
        t.push(Task::StreamRw(size));
    }
    for k in SUBSCRIBERS {
        t.push(Task::Publish(k));
    }
    for joined in JOINED {
        for lossless in [false, true] {
            t.push(Task::Scan(joined, lossless));
        }
    }
    if cfg!(feature = "iceoryx2") {
        for touched in [true, false] {
            for size in LATENCY_SIZES {
                t.push(Task::Ice(touched, size));
            }
        }
    }
    if cfg!(feature = "bridge") {
        for size in LATENCY_SIZES {
            t.push(Task::Bridge(size));
        }
    }
    if options.with_pyshmem {
        t.push(Task::Pyshmem);
    }
    if !options.only.is_empty() {
        t.retain(|&task| {
            let name = task_name(task);
            options.only.iter().any(|o| name.contains(o.as_str()))
        });
    }
    t
}

fn task_name(t: Task) -> String {
    match t {
        Task::PingPong => "floor ping-pong".into(),
        Task::SplitPingPong => "split ping-pong (diagnostic)".into(),
        Task::InlinePingPong => "inline ping-pong (diagnostic)".into(),
        Task::FutexWake => "floor futex wake-up".into(),
        Task::AtomicCopy(s) => format!("atomic copy {} (diagnostic)", size_name(s)),
        Task::RepMovsbCopy(s) => format!("rep movsb copy {} (diagnostic)", size_name(s)),
        Task::QueueSameThread => "queue push+pop in one thread (diagnostic)".into(),
        Task::Memcpy(s) => format!("memcpy {}", size_name(s)),
        Task::Lane(k, s) => format!("{} {}", k.name(), size_name(s)),
        Task::Wake(s) => format!("stream wake-up {}", size_name(s)),
        Task::StreamRw(s) => format!("stream write+read {}", size_name(s)),
        Task::Publish(k) => format!("publish, {k} lossy"),
        Task::Scan(k, lossless) => format!(
            "publish, {k} joined {}",
            if lossless { "lossless" } else { "lossy" }
        ),
        Task::Ice(t, s) => format!(
            "iceoryx2 {} {}",
            if t { "touched" } else { "untouched" },
            size_name(s)
        ),
        Task::Bridge(s) => format!("zenoh bridge {}", size_name(s)),
        Task::Pyshmem => "pyshmem".into(),
    }
}

fn run_parent(options: &Options) -> i32 {
    let tasks = tasks(options);
    let pinned = options
        .pin
        .filter(|&(me, _)| tensorlane_benches::cpu::pin(me));
    let _ = CHILD_CPU.set(pinned.map(|(_, child)| child));
    if let Some((me, child)) = pinned {
        std::env::set_var("TLB_PIN_PARENT", me.to_string());
        std::env::set_var("TLB_PIN_CHILD", child.to_string());
    }
    let mut run = Run {
        options: options.clone(),
        budget: Budget::new(options),
        pid: std::process::id(),
        counter: 0,
        venv_ok: None,
    };
    let mut results = Results::default();
    let started = Instant::now();
    for round in 0..options.rounds {
        let offset = round * tasks.len() / options.rounds;
        eprintln!(
            "round {}/{} ({} tasks, {:.0} s so far)",
            round + 1,
            options.rounds,
            tasks.len(),
            started.elapsed().as_secs_f64()
        );
        for i in 0..tasks.len() {
            let task = tasks[(i + offset) % tasks.len()];
            let name = task_name(task);
            if results.errors.contains_key(&name) {
                continue;
            }
            if let Err(e) = run.run_task(task, &mut results) {
                eprintln!("  {name}: {e}");
                results.errors.insert(name, e);
            }
        }
    }
    let report = Report::new(options, &run, results, started.elapsed());
    print!("{}", report.table());
    let json = report.json();
    match std::fs::write(
        &options.json,
        serde_json::to_string_pretty(&json).expect("serialisable") + "\n",
    ) {
        Ok(()) => {
            println!("\nJSON: {}", options.json.display());
            0
        }
        Err(e) => {
            eprintln!("writing {}: {e}", options.json.display());
            1
        }
    }
}

// ---------------------------------------------------------------------------------
// Report

/// One figure of the report.
#[derive(Debug, Clone)]
struct Figure {
    key: String,
    /// "latency" (ns, lower is better) or "throughput" (Hz, higher is better).
    latency: bool,
    size: usize,
    /// Latency percentiles in ns, or the throughput in Hz as p50.
    summary: Summary,
}

struct Report {
    figures: BTreeMap<String, Figure>,
    errors: BTreeMap<String, String>,
    pyshmem: Value,
    iceoryx2: Value,
    meta: Value,
}

fn machine() -> Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    // Online CPUs of the machine (not this process's affinity, which may be pinned).
    // SAFETY: sysconf has no preconditions.
    let cores = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(0);
    let mem_kb = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let load = std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_string();
    json!({
        "cpu_model": model,
        "cores": cores,
        "memory_gib": (mem_kb as f64 / 1048576.0 * 10.0).round() / 10.0,
        "kernel": kernel,
        "load_average_1min_at_end": load,
    })
}

fn command_output(cmd: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(cmd).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// UTC date and time, ISO 8601, from the system clock.
fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

impl Report {
    fn new(options: &Options, run: &Run, results: Results, elapsed: Duration) -> Self {
        let mut figures = BTreeMap::new();
        for (key, mut values) in results.samples {
            let size: usize = key
                .rsplit('/')
                .next()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let throughput = key.starts_with("floor/memcpy")
                || key.starts_with("floor/2memcpy")
                || key.starts_with("diagnostic/atomic-copy")
                || key.starts_with("diagnostic/rep-movsb-copy")
                || key.contains("/stream-rw/")
                || key.contains("/write-read/")
                || key.contains("/publish-")
                || key.contains("one-thread");
            let publish = key.contains("/publish-") || key.contains("one-thread");
            let mut summary = stats::summarize(&mut values);
            if throughput && !publish {
                // Per-round medians of ns/op -> Hz of the median round.
                let hz = 1e9 / summary.p50;
                summary = Summary {
                    n: summary.n,
                    min: hz,
                    p50: hz,
                    p99: hz,
                    p999: hz,
                    mean: hz,
                };
            }
            figures.insert(
                key.clone(),
                Figure {
                    key,
                    latency: !throughput || publish,
                    size,
                    summary,
                },
            );
        }
        let iceoryx2 = if cfg!(feature = "iceoryx2") {
            match results
                .errors
                .iter()
                .find(|(k, _)| k.starts_with("iceoryx2"))
            {
                Some((k, e)) => json!({"status": format!("failed: {k}: {e}"), "version": "0.10.0"}),
                None => json!({"status": "measured", "version": "0.10.0"}),
            }
        } else {
            json!({"status": "skipped: built without feature iceoryx2 (cargo run --release -p tensorlane-benches --features iceoryx2 --bin compare)"})
        };
        let pyshmem = if !options.with_pyshmem {
            json!({"status": "skipped: not asked for (--with-pyshmem)"})
        } else {
            match (&run.venv_ok, results.errors.get("pyshmem")) {
                (Some(Err(e)), _) => json!({"status": format!("skipped: {e}")}),
                (_, Some(e)) => json!({"status": format!("failed: {e}")}),
                _ => json!({"status": "measured", "version": results.pyshmem_version}),
            }
        };
        let b = run.budget;
        let meta = json!({
            "date": utc_now(),
            "git_revision": command_output("git", &["describe", "--always", "--dirty", "--abbrev=12"]),
            "machine": machine(),
            "rustc": command_output("rustc", &["--version"]),
            "command": std::env::args().collect::<Vec<_>>().join(" "),
            "pinned_cpus": CHILD_CPU.get().copied().flatten().map(|c| json!({"measuring": options.pin.map(|p| p.0), "second": c})),
            "rounds": options.rounds,
            "round_trips_per_round": {"64": b.small, "1048576": b.large},
            "wakeups_per_round": b.wake,
            "throughput_batches_per_round": b.batches,
            "batch_ms": b.batch_time.as_millis() as u64,
            "wake_gap_us": WAKE_GAP.as_micros() as u64,
            "payload_copy": THROUGHPUT_SIZES
                .iter()
                .map(|&size| (size.to_string(), json!(tensorlane_core::copy::copy_kind(size))))
                .collect::<serde_json::Map<_, _>>(),
            "elapsed_s": (elapsed.as_secs_f64() * 10.0).round() / 10.0,
            "method": {
                "latency": "one way = half of a round trip (ping-pong between two processes, both polling), pooled over rounds; percentiles nearest-rank",
                "wake": "one way, CLOCK_MONOTONIC timestamp written by the sender just before its write, read by the receiver when read_new_timeout/read_after returns; the sender sleeps 200 us before each write so that the receiver sleeps on the futex",
                "throughput": "one process, one write then one read per operation; median over rounds of the median of 5 timed batches",
                "ratios": "value of this figure divided by the reference figure of the same unit and percentile (latency: lower is better; Hz: higher is better)",
            },
        });
        Report {
            figures,
            errors: results.errors,
            pyshmem,
            iceoryx2,
            meta,
        }
    }

    fn get(&self, key: &str) -> Option<&Figure> {
        self.figures.get(key)
    }

    /// References of a figure: (label, key) of its floor and of each peer.
    fn references(&self, f: &Figure) -> (Option<String>, Vec<(String, String)>) {
        let s = f.size;
        if f.key.contains("/publish-") {
            return (Some("tensorlane/publish-lossy-1/64".into()), vec![]);
        }
        if f.key.starts_with("bridge/") || f.key.starts_with("zenoh/") {
            return (Some(bridge::reference(s)), vec![]);
        }
        if f.key.starts_with("floor/") || f.key.contains("one-thread") {
            return (None, vec![]);
        }
        if f.key.starts_with("diagnostic/") && f.key.contains("-copy/") {
            return (Some(format!("floor/2memcpy/{s}")), vec![]);
        }
        if !f.latency {
            return (
                Some(format!("floor/2memcpy/{s}")),
                vec![
                    ("pyshmem".into(), format!("pyshmem/write-read/{s}")),
                    ("tensorlane".into(), format!("tensorlane/stream-rw/{s}")),
                ],
            );
        }
        let peers = vec![
            ("iceoryx2 touched".into(), format!("iceoryx2/touched/{s}")),
            (
                "iceoryx2 untouched".into(),
                format!("iceoryx2/untouched/{s}"),
            ),
            ("pyshmem ping-pong".into(), format!("pyshmem/pingpong/{s}")),
            ("pyshmem wake".into(), format!("pyshmem/wake/{s}")),
        ];
        let floor = if f.key.contains("wake") {
            "floor/futex-wake/64"
        } else {
            "floor/pingpong/64"
        };
        (Some(floor.into()), peers)
    }

    fn ratio(&self, f: &Figure, reference: &str) -> Option<(f64, f64, f64)> {
        let r = self.get(reference)?;
        if r.key == f.key {
            return None;
        }
        Some((
            f.summary.p50 / r.summary.p50,
            f.summary.p99 / r.summary.p99,
            f.summary.p999 / r.summary.p999,
        ))
    }

    fn json(&self) -> Value {
        let mut figures = Vec::new();
        for f in self.figures.values() {
            let (floor, peers) = self.references(f);
            let mut o = Map::new();
            o.insert("key".into(), json!(f.key));
            o.insert("size_bytes".into(), json!(f.size));
            if f.latency {
                o.insert("unit".into(), json!("ns"));
                o.insert("better".into(), json!("lower"));
                o.insert("samples".into(), json!(f.summary.n));
                o.insert("p50".into(), json!(round2(f.summary.p50)));
                if f.summary.n > 20 {
                    o.insert("p99".into(), json!(round2(f.summary.p99)));
                    o.insert("p99_9".into(), json!(round2(f.summary.p999)));
                    o.insert("min".into(), json!(round2(f.summary.min)));
                    o.insert("mean".into(), json!(round2(f.summary.mean)));
                }
            } else {
                o.insert("unit".into(), json!("Hz"));
                o.insert("better".into(), json!("higher"));
                o.insert("rounds".into(), json!(f.summary.n));
                o.insert("value".into(), json!(round2(f.summary.p50)));
                o.insert(
                    "bytes_per_s".into(),
                    json!(round2(f.summary.p50 * f.size as f64)),
                );
            }
            let ratio_json = |r: (f64, f64, f64)| {
                if f.latency && f.summary.n > 20 {
                    json!({"p50": round3(r.0), "p99": round3(r.1), "p99_9": round3(r.2)})
                } else {
                    json!(round3(r.0))
                }
            };
            if let Some(fl) = floor {
                if let Some(r) = self.ratio(f, &fl) {
                    o.insert("floor".into(), json!(fl));
                    o.insert("ratio_to_floor".into(), ratio_json(r));
                }
            }
            let mut to_peers = Map::new();
            for (label, key) in peers {
                if !key.starts_with(f.key.split('/').next().unwrap_or("")) {
                    if let Some(r) = self.ratio(f, &key) {
                        to_peers.insert(label, json!({"figure": key, "ratio": ratio_json(r)}));
                    }
                }
            }
            if !to_peers.is_empty() {
                o.insert("ratio_to_peers".into(), Value::Object(to_peers));
            }
            figures.push(Value::Object(o));
        }
        json!({
            "meta": self.meta,
            "peers": {"iceoryx2": self.iceoryx2, "pyshmem": self.pyshmem},
            "errors": self.errors,
            "figures": figures,
            "targets": self.targets().into_iter().map(|t| json!({
                "target": t.0, "status": t.1, "measured": t.2,
            })).collect::<Vec<_>>(),
        })
    }

    fn p50(&self, key: &str) -> Option<f64> {
        self.get(key).map(|f| f.summary.p50)
    }

    /// (target, "met" / "gap" / "not measured", what was measured).
    fn targets(&self) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        let verdict = |ok: bool| if ok { "met" } else { "gap" }.to_string();
        let missing = || {
            (
                "not measured".to_string(),
                "a figure is missing".to_string(),
            )
        };
        // 1. SPSC 64 B p50 within 2x of the ping-pong floor (1.3x the goal), below
        //    iceoryx2.
        let t = "SPSC 64 B one-way p50 <= 2.0x the ping-pong floor";
        out.push(
            match (
                self.p50("tensorlane/spsc-copy/64"),
                self.p50("floor/pingpong/64"),
            ) {
                (Some(a), Some(f)) => (
                    t.into(),
                    verdict(a <= 2.0 * f),
                    format!("{a:.0} ns vs floor {f:.0} ns: {:.2}x (goal 1.3x)", a / f),
                ),
                _ => (t.into(), missing().0, missing().1),
            },
        );
        let t = "SPSC 64 B one-way p50 below iceoryx2's p50 (same run)";
        out.push(
            match (
                self.p50("tensorlane/spsc-copy/64"),
                self.p50("iceoryx2/touched/64"),
                self.p50("iceoryx2/untouched/64"),
            ) {
                (Some(a), Some(it), Some(iu)) => (
                    t.into(),
                    verdict(a < it && a < iu),
                    format!(
                        "{a:.0} ns vs iceoryx2 {it:.0} ns touched ({:.2}x), {iu:.0} ns untouched ({:.2}x)",
                        a / it,
                        a / iu
                    ),
                ),
                _ => (
                    t.into(),
                    "not measured".into(),
                    self.iceoryx2["status"].as_str().unwrap_or("").into(),
                ),
            },
        );
        // 2. Zero-copy 1 MiB within 1.5x of 64 B.
        let t = "zero-copy (loan) 1 MiB p50 <= 1.5x the 64 B p50";
        out.push(
            match (
                self.p50("tensorlane/spsc-loan/1048576"),
                self.p50("tensorlane/spsc-loan/64"),
            ) {
                (Some(l), Some(s)) => (
                    t.into(),
                    verdict(l <= 1.5 * s),
                    format!("{l:.0} ns vs {s:.0} ns: {:.2}x", l / s),
                ),
                _ => (t.into(), missing().0, missing().1),
            },
        );
        // 3. Stream write+read throughput.
        for size in [40_000usize, 4_000_000, 64 * KIB * KIB] {
            let t = format!("stream write+read {} >= 0.8x two memcpys", size_name(size));
            out.push(
                match (
                    self.p50(&format!("tensorlane/stream-rw/{size}")),
                    self.p50(&format!("floor/2memcpy/{size}")),
                ) {
                    (Some(a), Some(f)) => (
                        t,
                        verdict(a >= 0.8 * f),
                        format!("{a:.0} Hz vs {f:.0} Hz: {:.2}x", a / f),
                    ),
                    _ => (t, missing().0, missing().1),
                },
            );
        }
        for (size, times) in [(40_000usize, 5.0), (4_000_000, 1.5)] {
            let t = format!(
                "stream write+read {} >= {times}x pyshmem's Hz",
                size_name(size)
            );
            out.push(
                match (
                    self.p50(&format!("tensorlane/stream-rw/{size}")),
                    self.p50(&format!("pyshmem/write-read/{size}")),
                ) {
                    (Some(a), Some(p)) => (
                        t,
                        verdict(a >= times * p),
                        format!("{a:.0} Hz vs pyshmem {p:.0} Hz: {:.1}x", a / p),
                    ),
                    _ => (
                        t,
                        "not measured".into(),
                        self.pyshmem["status"].as_str().unwrap_or("").into(),
                    ),
                },
            );
        }
        // 4. Futex wake-up.
        let t = "blocking wake-up (futex) p50 < 10 us";
        out.push(match self.p50("tensorlane/stream-wake/64") {
            Some(w) => {
                let floor = self.p50("floor/futex-wake/64").map_or(String::new(), |f| {
                    format!("; futex floor {:.1} us ({:.2}x)", f / 1000.0, w / f)
                });
                let peer = self
                    .p50("pyshmem/wake/64")
                    .map_or(String::from("pyshmem not measured"), |p| {
                        format!("pyshmem notify {:.1} us ({:.2}x)", p / 1000.0, w / p)
                    });
                (
                    t.into(),
                    verdict(w < 10_000.0),
                    format!("{:.1} us; {peer}{floor}", w / 1000.0),
                )
            }
            None => (t.into(), missing().0, missing().1),
        });
        let t = "stream wake-up p50 <= 1.1x the futex floor";
        out.push(
            match (
                self.p50("tensorlane/stream-wake/64"),
                self.p50("floor/futex-wake/64"),
            ) {
                (Some(w), Some(f)) => (
                    t.into(),
                    verdict(w <= 1.1 * f),
                    format!("{w:.0} ns vs floor {f:.0} ns: {:.2}x", w / f),
                ),
                _ => (t.into(), missing().0, missing().1),
            },
        );
        // 5. Publish cost flat from 1 to 8 lossy subscribers.
        let t = "publish cost with 8 lossy subscribers <= 1.1x with 1";
        out.push(
            match (
                self.p50("tensorlane/publish-lossy-8/64"),
                self.p50("tensorlane/publish-lossy-1/64"),
            ) {
                (Some(e), Some(o)) => (
                    t.into(),
                    verdict(e <= 1.1 * o),
                    format!("{e:.1} ns vs {o:.1} ns: {:.2}x", e / o),
                ),
                _ => (t.into(), missing().0, missing().1),
            },
        );
        // 7. The Zenoh bridge adds at most 10 % to raw Zenoh's latency (feature bridge).
        for size in LATENCY_SIZES {
            let t = format!(
                "Zenoh bridge {} one-way p50 <= 1.1x raw Zenoh's (same run)",
                size_name(size)
            );
            let raw = self.p50(&bridge::reference(size));
            let stream = self.p50(&format!("bridge/stream/{size}"));
            let loans = self.p50(&format!("bridge/queue-loans/{size}"));
            out.push(match (raw, stream, loans) {
                (Some(r), Some(st), Some(lo)) => (
                    t,
                    verdict(st.min(lo) <= 1.1 * r),
                    format!(
                        "raw {r:.0} ns; stream {st:.0} ns ({:.2}x), queue loans with --zero-copy {lo:.0} ns ({:.2}x)",
                        st / r,
                        lo / r
                    ),
                ),
                _ if !cfg!(feature = "bridge") => (
                    t,
                    "not measured".into(),
                    "skipped: built without feature bridge (cargo run --release -p tensorlane-benches --features bridge --bin compare)".into(),
                ),
                _ => (t, missing().0, missing().1),
            });
        }
        out
    }

    fn table(&self) -> String {
        use std::fmt::Write;
        let mut s = String::new();
        let m = &self.meta;
        let _ = writeln!(
            s,
            "\ntensorlane compare: {} | {} | {} cores | git {} | {} rounds, {} s",
            m["date"].as_str().unwrap_or(""),
            m["machine"]["cpu_model"].as_str().unwrap_or(""),
            m["machine"]["cores"],
            m["git_revision"].as_str().unwrap_or("?"),
            m["rounds"],
            m["elapsed_s"],
        );
        let _ = writeln!(
            s,
            "peers: iceoryx2 {} | pyshmem {}",
            self.iceoryx2["status"].as_str().unwrap_or(""),
            self.pyshmem["status"].as_str().unwrap_or(""),
        );
        let _ = writeln!(
            s,
            "\nOne-way latency, ns (polling: half round trip; wake: one-way timestamps). Ratios of p50;\nx floor: to the ping-pong floor (polling) or to the futex floor (wake)."
        );
        let _ = writeln!(
            s,
            "{:<30} {:>8} {:>9} {:>9} {:>9} {:>8} {:>9} {:>9} {:>8}",
            "case", "size", "p50", "p99", "p99.9", "x floor", "x ice(t)", "x ice(u)", "x py"
        );
        let latency_order = [
            "floor/pingpong",
            "diagnostic/pingpong-split",
            "diagnostic/pingpong-inline",
            "floor/futex-wake",
            "tensorlane/spsc-copy",
            "tensorlane/spsc-loan",
            "tensorlane/spsc-loan-touched",
            "tensorlane/topic-lossless",
            "tensorlane/topic-lossy",
            "tensorlane/stream-wake",
            "iceoryx2/touched",
            "iceoryx2/untouched",
            "pyshmem/pingpong",
            "pyshmem/wake",
        ];
        let cell = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.2}"));
        for prefix in latency_order {
            for size in [64usize, 1024 * KIB] {
                let Some(f) = self.get(&format!("{prefix}/{size}")) else {
                    continue;
                };
                let wake = prefix.ends_with("wake");
                let py = if wake {
                    "pyshmem/wake"
                } else {
                    "pyshmem/pingpong"
                };
                let r = |k: String| {
                    if k.starts_with(prefix) {
                        None
                    } else {
                        self.ratio(f, &k).map(|r| r.0)
                    }
                };
                let _ = writeln!(
                    s,
                    "{:<30} {:>8} {:>9.0} {:>9.0} {:>9.0} {:>8} {:>9} {:>9} {:>8}",
                    prefix,
                    size_name(size),
                    f.summary.p50,
                    f.summary.p99,
                    f.summary.p999,
                    cell(r(if wake {
                        "floor/futex-wake/64".into()
                    } else {
                        "floor/pingpong/64".into()
                    })),
                    cell(r(format!("iceoryx2/touched/{size}"))),
                    cell(r(format!("iceoryx2/untouched/{size}"))),
                    cell(r(format!("{py}/{size}"))),
                );
            }
        }
        if bridge::KEYS
            .iter()
            .any(|k| self.figures.keys().any(|f| f.starts_with(k)))
        {
            let _ = writeln!(
                s,
                "\nOver Zenoh on loopback, one-way latency, ns. x zenoh: p50 / p50 of raw Zenoh (two processes)."
            );
            for prefix in bridge::KEYS {
                for size in LATENCY_SIZES {
                    let Some(f) = self.get(&format!("{prefix}/{size}")) else {
                        continue;
                    };
                    let r = self.ratio(f, &bridge::reference(size)).map(|r| r.0);
                    let _ = writeln!(
                        s,
                        "{:<30} {:>8} {:>9.0} {:>9.0} {:>9.0} {:>8}",
                        prefix,
                        size_name(size),
                        f.summary.p50,
                        f.summary.p99,
                        f.summary.p999,
                        cell(r),
                    );
                }
            }
        }
        let _ = writeln!(
            s,
            "\nThroughput, one process (write then read per operation). x floor: Hz / Hz of two memcpys."
        );
        let _ = writeln!(
            s,
            "{:<30} {:>8} {:>12} {:>10} {:>8} {:>9}",
            "case", "size", "Hz", "GB/s", "x floor", "x py"
        );
        for prefix in [
            "floor/memcpy",
            "floor/2memcpy",
            "diagnostic/atomic-copy",
            "diagnostic/rep-movsb-copy",
            "tensorlane/stream-rw",
            "pyshmem/write-read",
        ] {
            for size in [64usize, 40_000, 1024 * KIB, 4_000_000, 64 * KIB * KIB] {
                let Some(f) = self.get(&format!("{prefix}/{size}")) else {
                    continue;
                };
                let floor = if prefix.starts_with("floor") {
                    None
                } else {
                    self.ratio(f, &format!("floor/2memcpy/{size}")).map(|r| r.0)
                };
                let py = if prefix.starts_with("pyshmem") {
                    None
                } else {
                    self.ratio(f, &format!("pyshmem/write-read/{size}"))
                        .map(|r| r.0)
                };
                let _ = writeln!(
                    s,
                    "{:<30} {:>8} {:>12.0} {:>10.2} {:>8} {:>9}",
                    prefix,
                    size_name(size),
                    f.summary.p50,
                    f.summary.p50 * size as f64 / 1e9,
                    cell(floor),
                    cell(py),
                );
            }
        }
        let _ = writeln!(
            s,
            "\nPublish cost (64 B topic, lossy subscribers that never read), ns per publish"
        );
        for k in SUBSCRIBERS {
            if let Some(f) = self.get(&format!("tensorlane/publish-lossy-{k}/64")) {
                let r = self.ratio(f, "tensorlane/publish-lossy-1/64").map(|r| r.0);
                let _ = writeln!(
                    s,
                    "{:<30} {:>8.1} ns   x 1 subscriber: {}",
                    format!("{k} lossy subscriber(s)"),
                    f.summary.p50,
                    cell(r).replace('-', "1.00")
                );
            }
        }
        let _ = writeln!(
            s,
            "\nPublish cost with joined subscribers (64 B, a table of {} entries, core only), ns per publish",
            scan::TABLE
        );
        for joined in JOINED {
            let cell_of = |mode: &str| {
                self.get(&format!("tensorlane/publish-joined-{mode}-{joined}/64"))
                    .map_or("-".to_string(), |f| format!("{:.1}", f.summary.p50))
            };
            let _ = writeln!(
                s,
                "{:<30} lossy {:>8} ns   lossless {:>8} ns",
                format!("{joined} joined"),
                cell_of("lossy"),
                cell_of("lossless")
            );
        }
        if let Some(f) = self.get("diagnostic/queue-push+pop-one-thread/64") {
            let _ = writeln!(
                s,
                "\nDiagnostic: queue push + pop of 64 B in one thread: {:.1} ns",
                f.summary.p50
            );
        }
        if !self.errors.is_empty() {
            let _ = writeln!(s, "\nFailed measurements:");
            for (k, e) in &self.errors {
                let _ = writeln!(s, "  {k}: {e}");
            }
        }
        let _ = writeln!(s, "\nTargets:");
        for (t, status, measured) in self.targets() {
            let _ = writeln!(s, "  [{status:^12}] {t}: {measured}");
        }
        s
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
