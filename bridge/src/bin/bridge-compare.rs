//! `bridge-compare`: one-way latency and throughput lane -> bridge -> bridge -> lane on
//! loopback, against raw Zenoh put/subscribe of the same payloads in the same run.
//!
//! ```text
//! cargo build --release -p tensorlane-bridge
//! target/release/bridge-compare [--samples 2000] [--sizes 64,1048576] [--json FILE]
//! ```
//!
//! Latency: one item at a time; the sender writes its `CLOCK_MONOTONIC` time into the
//! first 8 bytes and the receiver (the same thread, after the send returned) reads
//! the clock when the item arrives: one-way time on one machine's clock. Raw Zenoh:
//! two sessions in this process (tcp/127.0.0.1, multicast scouting off), an express
//! publisher with congestion control `Drop`, as a stream export uses. Bridge: a
//! stream written here, two `tensorlane-bridge` processes (exporter, importer), the
//! imported stream read here with `read_new`.
//!
//! Throughput: `--burst` items written back to back and the time until the last one
//! is received. Raw Zenoh: congestion control `Block`; bridge: a queue of 64 items
//! on both sides, as a queue export uses.
#[cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]
mod compare {
    use std::net::TcpListener;
    use std::process::{Child, Command, Stdio};
    use std::time::{Duration, Instant};
    use tensorlane_shm::{
        segment, Clock, LaneError, LaneName, QueueConsumer, QueueProducer, StreamReader,
        StreamWriter, TensorSpec,
    };
    use zenoh::qos::CongestionControl;
    use zenoh::{Session, Wait};

    const TIMEOUT: Duration = Duration::from_secs(2);

    struct Args {
        samples: usize,
        sizes: Vec<usize>,
        json: Option<String>,
    }

    fn args() -> Args {
        let mut args = Args {
            samples: 2000,
            sizes: vec![64, 1 << 20],
            json: None,
        };
        let mut it = std::env::args().skip(1);
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
                "--json" => args.json = Some(value()),
                other => panic!("unknown argument {other}"),
            }
        }
        args
    }

    fn now() -> u64 {
        Clock::Monotonic.now_ns()
    }

    fn free_port() -> u16 {
        TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    fn session(listen: Option<u16>, connect: Option<u16>) -> Session {
        let mut config = zenoh::Config::default();
        config
            .insert_json5("scouting/multicast/enabled", "false")
            .unwrap();
        if let Some(p) = listen {
            config
                .insert_json5("listen/endpoints", &format!("[\"tcp/127.0.0.1:{p}\"]"))
                .unwrap();
        }
        if let Some(p) = connect {
            config
                .insert_json5("connect/endpoints", &format!("[\"tcp/127.0.0.1:{p}\"]"))
                .unwrap();
        }
        zenoh::open(config).wait().unwrap()
    }

    /// Percentiles of a latency sample, in microseconds.
    #[derive(Debug, Clone, Copy)]
    struct Summary {
        p50: f64,
        p90: f64,
        p99: f64,
        lost: usize,
    }

    fn summarize(mut ns: Vec<u64>, lost: usize) -> Summary {
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

    fn stamped(size: usize, t: u64) -> Vec<u8> {
        let mut v = vec![0xa5u8; size.max(8)];
        v[..8].copy_from_slice(&t.to_le_bytes());
        v.truncate(size.max(8));
        v
    }

    fn stamp_of(bytes: &[u8]) -> u64 {
        u64::from_le_bytes(bytes[..8].try_into().unwrap())
    }

    fn raw_latency(size: usize, samples: usize) -> Summary {
        let port = free_port();
        let a = session(Some(port), None);
        let b = session(None, Some(port));
        let key = format!("bench/{}/raw-lat-{size}", std::process::id());
        let sub = b.declare_subscriber(key.clone()).wait().unwrap();
        let publisher = a
            .declare_publisher(key)
            .congestion_control(CongestionControl::Drop)
            .express(true)
            .wait()
            .unwrap();
        while !publisher.matching_status().wait().unwrap().matching() {
            std::thread::sleep(Duration::from_millis(10));
        }
        let (mut lat, mut lost) = (Vec::with_capacity(samples), 0);
        for i in 0..samples + samples / 10 {
            let t0 = now();
            publisher.put(stamped(size, t0)).wait().unwrap();
            let deadline = Instant::now() + TIMEOUT;
            loop {
                match sub.recv_deadline(deadline) {
                    Ok(Some(s)) if stamp_of(&s.payload().to_bytes()) == t0 => {
                        // The first tenth warms up.
                        if i >= samples / 10 {
                            lat.push(now() - t0);
                        }
                        break;
                    }
                    Ok(Some(_)) => {}
                    _ => {
                        lost += 1;
                        break;
                    }
                }
            }
        }
        let _ = (a.close().wait(), b.close().wait());
        summarize(lat, lost)
    }

    fn raw_throughput(size: usize, burst: usize) -> f64 {
        let port = free_port();
        let a = session(Some(port), None);
        let b = session(None, Some(port));
        let key = format!("bench/{}/raw-tp-{size}", std::process::id());
        let sub = b.declare_subscriber(key.clone()).wait().unwrap();
        let publisher = a
            .declare_publisher(key)
            .congestion_control(CongestionControl::Block)
            .wait()
            .unwrap();
        while !publisher.matching_status().wait().unwrap().matching() {
            std::thread::sleep(Duration::from_millis(10));
        }
        let start = Instant::now();
        let sender = std::thread::spawn(move || {
            for _ in 0..burst {
                publisher.put(stamped(size, 0)).wait().unwrap();
            }
            publisher
        });
        for _ in 0..burst {
            sub.recv_timeout(TIMEOUT * 10)
                .unwrap()
                .expect("raw burst stalled");
        }
        let elapsed = start.elapsed();
        drop(sender.join().unwrap());
        let _ = (a.close().wait(), b.close().wait());
        burst as f64 / elapsed.as_secs_f64()
    }

    /// The two bridge processes of one measurement.
    struct Bridges(Vec<Child>);

    impl Bridges {
        fn start(lane: &str) -> (Bridges, String) {
            let exe = std::env::current_exe().unwrap();
            let bridge = exe.with_file_name("tensorlane-bridge");
            let port = free_port();
            let prefix = format!("bench/{}", std::process::id());
            let spawn = |args: Vec<String>| {
                Command::new(&bridge)
                    .args(args)
                    .args(["--no-multicast-scouting", "--rescan-ms", "20"])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .unwrap_or_else(|e| {
                        panic!("{}: {e} (build the bridge first)", bridge.display())
                    })
            };
            let exporter = spawn(vec![
                "--listen".into(),
                format!("tcp/127.0.0.1:{port}"),
                "--export".into(),
                lane.into(),
                "--prefix".into(),
                prefix.clone(),
            ]);
            let importer = spawn(vec![
                "--connect".into(),
                format!("tcp/127.0.0.1:{port}"),
                "--import".into(),
                format!("{prefix}/*"),
                "--local-prefix".into(),
                "b-".into(),
            ]);
            (Bridges(vec![exporter, importer]), format!("b-{lane}"))
        }
    }

    impl Drop for Bridges {
        fn drop(&mut self) {
            for child in &mut self.0 {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }

    fn unlink(names: &[&str]) {
        for n in names {
            let _ = segment::unlink(&LaneName::new(n).unwrap());
        }
    }

    fn wait_open<T>(mut open: impl FnMut() -> Result<T, LaneError>) -> T {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match open() {
                Ok(v) => return v,
                Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => panic!("{e}"),
            }
        }
    }

    fn bridge_latency(size: usize, samples: usize) -> Summary {
        let src = format!("bench{}-lat-{size}", std::process::id());
        let spec = TensorSpec::bytes(size as u64).unwrap();
        let mut writer = StreamWriter::create(&src, &spec, 3).unwrap();
        writer.write(&stamped(size, 1)).unwrap();
        let (bridges, dst) = Bridges::start(&src);
        let mut reader = wait_open(|| StreamReader::open(&dst));
        let mut buf = vec![0u8; size];
        let (mut lat, mut lost) = (Vec::with_capacity(samples), 0);
        for i in 0..samples + samples / 10 {
            let t0 = now();
            writer.write(&stamped(size, t0)).unwrap();
            let deadline = Instant::now() + TIMEOUT;
            loop {
                match reader.read_new_deadline(&mut buf, deadline) {
                    Ok(_) if stamp_of(&buf) == t0 => {
                        if i >= samples / 10 {
                            lat.push(now() - t0);
                        }
                        break;
                    }
                    Ok(_) => {}
                    Err(_) => {
                        lost += 1;
                        break;
                    }
                }
            }
        }
        drop(bridges);
        unlink(&[&src, &dst]);
        summarize(lat, lost)
    }

    fn bridge_throughput(size: usize, burst: usize) -> f64 {
        let src = format!("bench{}-tp-{size}", std::process::id());
        let spec = TensorSpec::bytes(size as u64).unwrap();
        let mut producer = QueueProducer::create(&src, &spec, 64).unwrap();
        let (bridges, dst) = Bridges::start(&src);
        // One item to create the imported queue, then the burst.
        producer.push(&stamped(size, 0)).unwrap();
        let mut consumer = wait_open(|| QueueConsumer::open(&dst));
        let mut buf = vec![0u8; size];
        consumer.pop_timeout(&mut buf, TIMEOUT * 10).unwrap();
        let start = Instant::now();
        let sender = std::thread::spawn(move || {
            let payload = stamped(size, 0);
            for _ in 0..burst {
                producer.push(&payload).unwrap();
            }
            producer
        });
        for _ in 0..burst {
            consumer.pop_timeout(&mut buf, TIMEOUT * 10).unwrap();
        }
        let elapsed = start.elapsed();
        drop(sender.join().unwrap());
        drop(bridges);
        unlink(&[&src, &dst]);
        burst as f64 / elapsed.as_secs_f64()
    }

    pub fn main() {
        let args = args();
        let mut rows = Vec::new();
        println!(
            "{:>9} | {:>28} | {:>28} | {:>7} | {:>22}",
            "size",
            "raw zenoh p50/p90/p99 us",
            "bridge p50/p90/p99 us",
            "p50 +%",
            "items/s raw / bridge"
        );
        for &size in &args.sizes {
            let burst = (64 << 20) / size.max(1024);
            let burst = burst.clamp(64, 20_000);
            let raw = raw_latency(size, args.samples);
            let bridged = bridge_latency(size, args.samples);
            let raw_tp = raw_throughput(size, burst);
            let bridged_tp = bridge_throughput(size, burst);
            let added = (bridged.p50 / raw.p50 - 1.0) * 100.0;
            println!(
                "{size:>9} | {:>8.1} {:>8.1} {:>9.1} | {:>8.1} {:>8.1} {:>9.1} | {added:>6.1}% | {raw_tp:>10.0} / {bridged_tp:>9.0}",
                raw.p50, raw.p90, raw.p99, bridged.p50, bridged.p90, bridged.p99
            );
            if raw.lost + bridged.lost > 0 {
                println!(
                    "          (timed out: raw {}, bridge {})",
                    raw.lost, bridged.lost
                );
            }
            rows.push(serde_json::json!({
                "size": size,
                "raw_us": {"p50": raw.p50, "p90": raw.p90, "p99": raw.p99, "lost": raw.lost},
                "bridge_us": {"p50": bridged.p50, "p90": bridged.p90, "p99": bridged.p99, "lost": bridged.lost},
                "added_p50_percent": added,
                "burst": burst,
                "raw_items_per_s": raw_tp,
                "bridge_items_per_s": bridged_tp,
            }));
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
