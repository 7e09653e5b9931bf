//! The orchestration of `compare`: rounds of interleaved measurements, the second
//! processes, the table on stdout and the JSON file.
//!
//! Every measurement is a *task*. Each round runs every task once, with a share of
//! the samples, starting the round at a different task so that slow drift of the
//! machine (other load, frequency, thermal) spreads over all tasks alike. Latency
//! samples of all rounds are pooled before the percentiles are taken; throughput
//! figures are the median over rounds of each round's median batch.
//!
//! This file holds the command line, the second processes (`--role`) and the run
//! loop; `tasks.rs` the task list and what each task measures; `report.rs` the
//! figures made of the pooled results, their table, JSON and target verdicts.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tensorlane_benches::lanes::{self, Kind};
use tensorlane_benches::{floor, link};

#[path = "bridge.rs"]
mod bridge;

#[path = "report.rs"]
mod report;
#[path = "tasks.rs"]
mod tasks;

use report::Report;
use tasks::{task_name, tasks, Budget, Results, Run};

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
// The run loop

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
