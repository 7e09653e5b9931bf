//! `bridge-compare`: one-way latency and throughput lane -> bridge -> bridge -> lane on
//! loopback, against raw Zenoh put/subscribe of the same payloads in the same run
//! (the pipelines and the method: `tensorlane_bridge::bench`).
//!
//! ```text
//! cargo build --release -p tensorlane-bridge
//! target/release/bridge-compare [--samples 2000] [--sizes 64,1048576] [--spin-us 0,1000]
//!                               [--json FILE]
//! ```
#[cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]
mod compare {
    use std::process::Command;
    use tensorlane_bridge::bench::{self, Sampled, Setup, PIPES};

    struct Args {
        samples: usize,
        sizes: Vec<usize>,
        spins: Vec<u64>,
        json: Option<String>,
    }

    fn args() -> Args {
        let mut args = Args {
            samples: 2000,
            sizes: vec![64, 1 << 20],
            spins: vec![0],
            json: None,
        };
        let mut it = std::env::args().skip(1);
        if std::env::args().nth(1).as_deref() == Some("--raw-sender") {
            let mut rest = std::env::args().skip(2);
            let usage = "--raw-sender PORT KEY SIZE";
            let (port, key, size) = (rest.next(), rest.next(), rest.next());
            bench::raw_sender(
                port.and_then(|p| p.parse().ok()).expect(usage),
                key.expect(usage),
                size.and_then(|s| s.parse().ok()).expect(usage),
            );
            std::process::exit(0);
        }
        while let Some(a) = it.next() {
            let mut value = || it.next().unwrap_or_else(|| panic!("{a} needs a value"));
            match a.as_str() {
                "--samples" => args.samples = value().parse().expect("--samples N"),
                "--sizes" => {
                    args.sizes = value()
                        .split(',')
                        .map(|s| s.parse().expect("--sizes A,B"))
                        .collect()
                }
                "--spin-us" => {
                    args.spins = value()
                        .split(',')
                        .map(|s| s.parse().expect("--spin-us A,B"))
                        .collect()
                }
                "--json" => args.json = Some(value()),
                other => panic!("unknown argument {other}"),
            }
        }
        args
    }

    /// Percentiles of a latency sample, in microseconds.
    #[derive(Debug, Clone, Copy)]
    struct Summary {
        p50: f64,
        p90: f64,
        p99: f64,
        lost: usize,
    }

    fn summarize(sampled: Sampled) -> Summary {
        let (mut ns, lost) = (sampled.ns, sampled.lost);
        ns.sort_unstable();
        let at = |q: f64| {
            if ns.is_empty() {
                f64::NAN
            } else {
                ns[((ns.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0
            }
        };
        Summary {
            p50: at(0.5),
            p90: at(0.9),
            p99: at(0.99),
            lost,
        }
    }

    pub fn main() {
        let args = args();
        let exe = std::env::current_exe().expect("the path of this program");
        let setup = Setup {
            bridge: exe.with_file_name("tensorlane-bridge"),
            raw_sender: Box::new(move |port, key, size| {
                let mut command = Command::new(&exe);
                command.args(["--raw-sender", &port.to_string(), key, &size.to_string()]);
                command
            }),
        };
        assert!(
            args.sizes.iter().all(|&s| s >= 8),
            "sizes of at least 8 bytes"
        );
        let mut rows = Vec::new();
        println!(
            "{:>7} | {:>4} | {:<32} | {:>7} {:>7} {:>8} | {:>7}",
            "bytes", "spin", "one-way latency, us", "p50", "p90", "p99", "p50 +%"
        );
        for &size in &args.sizes {
            for &spin_us in &args.spins {
                let summaries: Vec<Summary> = bench::latency(&setup, size, args.samples, spin_us)
                    .into_iter()
                    .map(summarize)
                    .collect();
                let base = summaries[0].p50;
                let mut latency_rows = Vec::new();
                for (name, s) in PIPES.iter().zip(&summaries) {
                    let added = (s.p50 / base - 1.0) * 100.0;
                    let lost = if s.lost > 0 {
                        format!("  ({} timed out)", s.lost)
                    } else {
                        String::new()
                    };
                    println!(
                        "{size:>7} | {spin_us:>4} | {name:<32} | {:>7.1} {:>7.1} {:>8.1} | {added:>6.1}%{lost}",
                        s.p50, s.p90, s.p99
                    );
                    latency_rows.push(serde_json::json!({
                        "pipeline": name,
                        "p50_us": s.p50, "p90_us": s.p90, "p99_us": s.p99, "lost": s.lost,
                        "added_p50_percent": added,
                    }));
                }
                let burst = ((64 << 20) / size.max(1024)).clamp(64, 20_000);
                let raw_tp = bench::raw_throughput(size, burst);
                let bridged_tp = bench::bridge_throughput(&setup, size, burst, spin_us);
                println!(
                    "{size:>7} | {spin_us:>4} | throughput, items/s: raw zenoh {raw_tp:.0}, bridge (queue) {bridged_tp:.0}"
                );
                rows.push(serde_json::json!({
                    "size": size,
                    "spin_us": spin_us,
                    "latency": latency_rows,
                    "burst": burst,
                    "raw_items_per_s": raw_tp,
                    "bridge_items_per_s": bridged_tp,
                }));
            }
        }
        if let Some(path) = args.json {
            let doc = serde_json::json!({"samples": args.samples, "rows": rows});
            std::fs::write(&path, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
        }
    }
}

#[cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]
fn main() {
    compare::main();
}

/// The checker builds (loom, shuttle) compile the comparison out.
#[cfg(not(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle")))))]
fn main() {}
