//! The report of `compare`: the figures made of the pooled results (percentiles of
//! the latency samples, the median throughput over rounds), their ratios to the
//! floors and the peers, the JSON file, the table on stdout and the verdict on each
//! target line.
//!
//! A figure missing (a task failed, was left out by `--only`, or a peer was not
//! built in) never fails the report: its rows show `-` and its targets say
//! `not measured`, with the reason.

use super::tasks::{Results, Run};
use super::{
    bridge, size_name, Options, CHILD_CPU, JOINED, KIB, LATENCY_SIZES, SUBSCRIBERS,
    THROUGHPUT_SIZES, WAKE_GAP,
};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;
use tensorlane_benches::scan;
use tensorlane_benches::stats::{self, Summary};

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

pub(super) struct Report {
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
    pub(super) fn new(options: &Options, run: &Run, results: Results, elapsed: Duration) -> Self {
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

    pub(super) fn json(&self) -> Value {
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

    pub(super) fn table(&self) -> String {
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
