//! The jitter harness's body: arguments, the stress-ng load, the phases, the report.

use std::fmt::Write as _;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tensorlane_benches::histogram;
use tensorlane_benches::jitter::{self, LoopResult, Series};

struct Args {
    seconds: u64,
    phase: u64,
    period_us: u64,
    stress: Option<String>,
    out: String,
}

fn parse_args() -> Args {
    let cpus = cpus();
    let mut args = Args {
        seconds: 60,
        phase: 10,
        period_us: 1000,
        stress: Some(format!(
            "--cpu {cpus} --cache 1 --stream 1 --vm 1 --vm-bytes 512M"
        )),
        out: "benches/results".to_string(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--seconds" => args.seconds = value().parse().expect("--seconds N"),
            "--phase" => args.phase = value().parse().expect("--phase N"),
            "--period-us" => args.period_us = value().parse().expect("--period-us N"),
            "--stress" => args.stress = Some(value()),
            "--no-stress" => args.stress = None,
            "--out" => args.out = value(),
            other => panic!("unknown argument {other:?} (see the module docs)"),
        }
    }
    args
}

fn cpus() -> usize {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }).max(1) as usize
}

/// Today's date (UTC) as YYYY-MM-DD.
fn today() -> String {
    let days = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() / 86_400)
        .unwrap_or(0) as i64;
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

fn start_stress(args: &str, seconds: u64) -> Option<Child> {
    let mut command = Command::new("stress-ng");
    command
        .args(args.split_whitespace())
        .args(["--timeout", &format!("{seconds}s")])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    match command.spawn() {
        Ok(child) => Some(child),
        Err(e) => {
            eprintln!(
                "jitter: cannot run stress-ng ({e}); install it: apt-get install -y stress-ng"
            );
            std::process::exit(2);
        }
    }
}

fn stop_stress(mut child: Child) {
    // SIGTERM to stress-ng itself: it stops its workers and exits.
    // SAFETY: kill with a valid pid of our own child and a valid signal number.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let _ = child.wait();
}

struct Stats {
    n: usize,
    p50: f64,
    p99: f64,
    p999: f64,
    p9999: f64,
    max: f64,
}

fn stats(latencies_ns: &[u64]) -> Stats {
    let mut sorted: Vec<f64> = latencies_ns.iter().map(|&ns| ns as f64 / 1000.0).collect();
    sorted.sort_by(f64::total_cmp);
    let q = |q| tensorlane_benches::stats::quantile(&sorted, q);
    Stats {
        n: sorted.len(),
        p50: q(0.5),
        p99: q(0.99),
        p999: q(0.999),
        p9999: q(0.9999),
        max: sorted.last().copied().unwrap_or(f64::NAN),
    }
}

/// Runs the harness (see the binary's docs).
pub fn main() {
    let args = parse_args();
    let cpus = cpus();
    let period = Duration::from_micros(args.period_us);
    let phase = Duration::from_secs(args.phase.max(1));
    let phases = args.seconds.div_ceil(args.phase.max(1));
    let transports: Vec<&str> = if cfg!(feature = "iceoryx2") {
        vec!["tensorlane", "iceoryx2"]
    } else {
        eprintln!("jitter: iceoryx2 not built (run with --features iceoryx2); tensorlane only");
        vec!["tensorlane"]
    };
    // Lock everything this process maps, now and later, where permitted.
    // SAFETY: mlockall takes flags only.
    let locked = unsafe { libc::mlockall(libc::MCL_CURRENT | libc::MCL_FUTURE) } == 0;
    let total = phases * args.phase * transports.len() as u64;
    let stress = args
        .stress
        .as_deref()
        .and_then(|a| start_stress(a, total + 30));
    if stress.is_some() {
        // Let the load ramp up.
        std::thread::sleep(Duration::from_secs(2));
    }
    let mut results: Vec<LoopResult> = transports.iter().map(|_| LoopResult::default()).collect();
    let pid = std::process::id();
    for p in 0..phases {
        for (t, name) in transports.iter().enumerate() {
            eprintln!("jitter: phase {}/{phases}: {name}, {} s", p + 1, args.phase);
            let lane = format!("jitter-{pid}-{p}-{t}");
            let result = match *name {
                "tensorlane" => jitter::run(
                    Arc::new(jitter::Tensorlane::new(&lane)),
                    period,
                    phase,
                    cpus,
                ),
                #[cfg(feature = "iceoryx2")]
                "iceoryx2" => jitter::run(
                    Arc::new(tensorlane_benches::jitter_ice::IceJitter::new(&lane)),
                    period,
                    phase,
                    cpus,
                ),
                _ => unreachable!(),
            };
            results[t].merge(result);
        }
    }
    if let Some(child) = stress {
        stop_stress(child);
    }

    // Report.
    let date = today();
    let setup = &results[0].writer.setup;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "jitter {date}: {} us period, {} s per transport in {phases} alternating phases of {} s, {cpus} CPUs",
        args.period_us,
        phases * args.phase,
        args.phase
    );
    let _ = writeln!(
        text,
        "load: {}",
        args.stress
            .as_deref()
            .map(|a| format!("stress-ng {a}"))
            .unwrap_or_else(|| "none".into())
    );
    let _ = writeln!(
        text,
        "threads: SCHED_FIFO {}, pinned {}, mlockall {}",
        if setup.fifo {
            "yes"
        } else {
            "no (not permitted)"
        },
        if setup.pinned { "yes" } else { "no" },
        if locked { "yes" } else { "no" }
    );
    let _ = writeln!(
        text,
        "{:<11} {:<15} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>7}",
        "transport",
        "role",
        "samples",
        "p50 us",
        "p99 us",
        "p99.9 us",
        "p99.99 us",
        "max us",
        "missed"
    );
    let mut json_rows = Vec::new();
    let mut svg_series: Vec<(String, &'static str, &[u64])> = Vec::new();
    let colours = [["#1f77b4", "#6baed6"], ["#d62728", "#ff9896"]];
    for (t, name) in transports.iter().enumerate() {
        let r = &results[t];
        let roles: [(&str, &Series); 3] = [
            ("writer wake-up", &r.writer),
            ("blocked reader", &r.blocked),
            ("polling reader", &r.polling),
        ];
        for (role, series) in roles {
            let s = stats(&series.latencies_ns);
            let _ = writeln!(
                text,
                "{:<11} {:<15} {:>7} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>7}",
                name, role, s.n, s.p50, s.p99, s.p999, s.p9999, s.max, series.missed
            );
            json_rows.push(serde_json::json!({
                "transport": name, "role": role, "samples": s.n,
                "p50_us": s.p50, "p99_us": s.p99, "p999_us": s.p999, "p9999_us": s.p9999,
                "max_us": s.max, "missed": series.missed, "sent": series.sent,
                "fifo": series.setup.fifo, "pinned": series.setup.pinned,
                "histogram": histogram::bin(&series.latencies_ns),
            }));
        }
        svg_series.push((
            format!("{name} blocked"),
            colours[t][0],
            &r.blocked.latencies_ns,
        ));
        svg_series.push((
            format!("{name} polling"),
            colours[t][1],
            &r.polling.latencies_ns,
        ));
    }
    svg_series.push((
        "timer (tensorlane phases)".into(),
        "#2ca02c",
        &results[0].writer.latencies_ns,
    ));
    let _ = writeln!(
        text,
        "writer wake-up: deadline to wake-up; readers: send to received; missed: deadlines \
         the writer overslept / samples a reader did not get"
    );
    print!("{text}");

    std::fs::create_dir_all(&args.out).expect("output directory");
    let base = format!("{}/jitter-{date}", args.out);
    std::fs::write(format!("{base}.txt"), &text).expect("write txt");
    let json = serde_json::json!({
        "date": date, "period_us": args.period_us, "seconds_per_transport": phases * args.phase,
        "phase_seconds": args.phase, "cpus": cpus, "stress": args.stress,
        "mlockall": locked, "histogram_edges_ns": histogram::edges_ns(), "rows": json_rows,
    });
    std::fs::write(
        format!("{base}.json"),
        serde_json::to_string_pretty(&json).expect("json"),
    )
    .expect("write json");
    let series: Vec<(&str, &str, &[u64])> = svg_series
        .iter()
        .map(|(l, c, s)| (l.as_str(), *c, *s))
        .collect();
    let title = format!(
        "1 kHz loop under stress-ng, {date}: wake-up latency, {} s per transport",
        phases * args.phase
    );
    std::fs::write(format!("{base}.svg"), histogram::svg(&title, &series)).expect("write svg");
    eprintln!("jitter: wrote {base}.txt, .json, .svg");
}
