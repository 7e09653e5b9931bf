//! The tasks of `compare`: the list for a command line (`--only`, the features built
//! in, `--with-pyshmem`), their names, the sample budget of a round, and what each
//! task measures and adds to the pooled results.
//!
//! A task that fails is reported once under its name and not run again in later
//! rounds (the run loop in `harness.rs` sees to that). Every shared-memory name a
//! task makes is unique to this process and run (`Run::unique`).

use super::{
    bridge, secs, size_name, strings, unpinned, with_child, with_child_pinned, Options, JOINED,
    KIB, LATENCY_SIZES, SUBSCRIBERS, THROUGHPUT_SIZES, WAKE_GAP,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::time::Duration;
use tensorlane_benches::lanes::{self, Kind};
use tensorlane_benches::link;
use tensorlane_benches::{floor, pyshmem, scan};

#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Task {
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
pub(super) struct Budget {
    /// Round trips per round at 64 B (and for the floor).
    pub(super) small: usize,
    /// Round trips per round at 1 MiB.
    pub(super) large: usize,
    /// Wake-ups per round and size.
    pub(super) wake: usize,
    /// Throughput batches per round and size.
    pub(super) batches: usize,
    pub(super) batch_time: Duration,
}

impl Budget {
    pub(super) fn new(o: &Options) -> Self {
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
pub(super) struct Results {
    pub(super) samples: BTreeMap<String, Vec<f64>>,
    pub(super) errors: BTreeMap<String, String>,
    pub(super) pyshmem_version: Option<String>,
}

impl Results {
    fn add(&mut self, key: String, values: impl IntoIterator<Item = f64>) {
        self.samples.entry(key).or_default().extend(values);
    }
}

pub(super) struct Run {
    pub(super) options: Options,
    pub(super) budget: Budget,
    pub(super) pid: u32,
    pub(super) counter: usize,
    pub(super) venv_ok: Option<Result<String, String>>,
}

impl Run {
    fn unique(&mut self, what: &str) -> String {
        self.counter += 1;
        format!("tlb-{}-{}-{}", self.pid, self.counter, what)
    }

    pub(super) fn run_task(&mut self, task: Task, results: &mut Results) -> Result<(), String> {
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

pub(super) fn tasks(options: &Options) -> Vec<Task> {
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

pub(super) fn task_name(t: Task) -> String {
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
