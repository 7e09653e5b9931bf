//! The measurements of the bridge against raw Zenoh, shared by the `bridge-compare`
//! program and the workspace's comparison harness (`compare --features bridge`).
//!
//! Latency: one item at a time; the sender writes its `CLOCK_MONOTONIC` time into the
//! first 8 bytes and the receiver reads the clock when the item arrives: one-way time
//! on one machine's clock. The pipelines ([`PIPES`]):
//! - raw Zenoh: an express publisher with congestion control `Drop` (a stream
//!   export's QoS), received from a FIFO subscriber and joined (`to_bytes`); the
//!   publisher runs in a child process ([`Setup::raw_sender`], as host A's publisher
//!   would), and, for reference, in the measuring process (a second session: Zenoh
//!   then runs both ends on one process's runtime threads);
//! - the stream bridge: a stream written here, two `tensorlane-bridge` processes
//!   (exporter, importer), the imported stream read here with `read_new`;
//! - queue loans through a `--zero-copy` bridge: each item written in place
//!   (`hold_slot`), lent to Zenoh in place by the exporter, written straight into a
//!   held slot by the importer, and read in place (`hold_item`).
//!
//! Each side gets its tensor as one contiguous slice the cheapest way its API offers,
//! and fills its item the same way (`0xa5` bytes, then the stamp). The pipelines stand
//! side by side and take turns in blocks of 50 samples (the order rotating every
//! round), so they all see the same machine: a change of load or clock speed during
//! the run hits each, while each block runs with its own memory in the caches. Between
//! two blocks the run pauses past the bridges' polling window (`--spin-us`), so that
//! a polling exporter has gone back to sleep before another pipeline is measured.
//!
//! Throughput: a burst of items written back to back and the time until the last
//! one is received. Raw Zenoh: congestion control `Block`; bridge: a queue of 64 on
//! both sides, as a queue export uses.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tensorlane_shm::{
    segment, Clock, LaneError, LaneName, QueueConsumer, QueueProducer, StreamReader, StreamWriter,
    TensorSpec, Wait as LaneWait,
};
use zenoh::qos::CongestionControl;
use zenoh::{Session, Wait};

/// How long one item may take before it counts as lost.
const TIMEOUT: Duration = Duration::from_secs(2);

/// Makes the command of a raw sender process: `(port, key, size)`.
pub type RawSenderCommand = Box<dyn Fn(u16, &str, usize) -> Command>;

/// What a measurement starts.
pub struct Setup {
    /// The `tensorlane-bridge` program.
    pub bridge: PathBuf,
    /// A command that runs [`raw_sender`]`(port, key, size)` in a child process.
    pub raw_sender: RawSenderCommand,
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

/// An item of `size` bytes (at least 8): `0xa5` bytes, the stamp `t` first.
fn stamped(size: usize, t: u64) -> Vec<u8> {
    let mut v = vec![0xa5u8; size.max(8)];
    v[..8].copy_from_slice(&t.to_le_bytes());
    v.truncate(size.max(8));
    v
}

fn stamp_of(bytes: &[u8]) -> u64 {
    u64::from_le_bytes(bytes[..8].try_into().unwrap())
}

/// Raw Zenoh: an express publisher with `Drop` and a FIFO subscriber, the
/// publisher either in this process (a second session) or in a child process
/// (`--raw-sender`), which puts one stamped item per byte it reads on stdin.
struct RawPipe {
    session: Session,
    subscriber:
        zenoh::pubsub::Subscriber<zenoh::handlers::FifoChannelHandler<zenoh::sample::Sample>>,
    sender: Sender,
}

enum Sender {
    Here(Session, zenoh::pubsub::Publisher<'static>),
    Child(Child),
}

fn latency_key(size: usize) -> String {
    format!("bench/{}/raw-lat-{size}", std::process::id())
}

/// An express publisher with congestion control `Drop`, once a subscriber matches.
fn express_publisher(session: &Session, key: String) -> zenoh::pubsub::Publisher<'static> {
    let publisher = session
        .declare_publisher(key)
        .congestion_control(CongestionControl::Drop)
        .express(true)
        .wait()
        .unwrap();
    while !publisher.matching_status().wait().unwrap().matching() {
        std::thread::sleep(Duration::from_millis(10));
    }
    publisher
}

impl RawPipe {
    fn new(setup: &Setup, size: usize, two_processes: bool) -> RawPipe {
        let port = free_port();
        let session = session(Some(port), None);
        let key = latency_key(size);
        let subscriber = session.declare_subscriber(key.clone()).wait().unwrap();
        let sender = if two_processes {
            let child = (setup.raw_sender)(port, &key, size)
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .spawn()
                .unwrap();
            Sender::Child(child)
        } else {
            let a = self::session(None, Some(port));
            let publisher = express_publisher(&a, key);
            Sender::Here(a, publisher)
        };
        let mut pipe = RawPipe {
            session,
            subscriber,
            sender,
        };
        // The child is ready once its items arrive.
        while pipe.sample(size).is_none() {}
        pipe
    }
}

impl Drop for RawPipe {
    fn drop(&mut self) {
        match &mut self.sender {
            Sender::Here(a, _) => {
                let _ = a.close().wait();
            }
            Sender::Child(child) => {
                // End of its standard input: the child closes its session and exits.
                drop(child.stdin.take());
                let _ = child.wait();
            }
        }
        let _ = self.session.close().wait();
    }
}

/// The body of a raw sender process ([`Setup::raw_sender`]): puts one stamped item
/// of `size` bytes on `key` per byte read on standard input, until it ends.
pub fn raw_sender(port: u16, key: String, size: usize) {
    use std::io::Read;
    let session = session(None, Some(port));
    let publisher = express_publisher(&session, key);
    let mut stdin = std::io::stdin().lock();
    let mut byte = [0u8; 1];
    while let Ok(1) = stdin.read(&mut byte) {
        let t0 = now();
        publisher.put(stamped(size, t0)).wait().unwrap();
    }
    drop(publisher);
    let _ = session.close().wait();
}

/// Items per second of a burst of `burst` items of `size` bytes through raw Zenoh
/// (congestion control `Block`).
pub fn raw_throughput(size: usize, burst: usize) -> f64 {
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

/// The two bridge processes of one measurement, and the lanes they carry between
/// (unlinked when they are stopped).
struct Bridges {
    children: Vec<Child>,
    lanes: [String; 2],
}

impl Bridges {
    /// Exporter and importer of `lane`, with `extra` flags on both.
    fn start(setup: &Setup, lane: &str, spin_us: u64, extra: &[&str]) -> (Bridges, String) {
        static STARTED: AtomicU64 = AtomicU64::new(0);
        let bridge = &setup.bridge;
        let port = free_port();
        // A prefix of their own: bridges of two pipelines never import each other's.
        let n = STARTED.fetch_add(1, Ordering::Relaxed);
        let prefix = format!("bench/{}/{n}", std::process::id());
        let spawn = |args: Vec<String>| {
            Command::new(bridge)
                .args(args)
                .args(["--no-multicast-scouting", "--rescan-ms", "20"])
                .args(["--spin-us", &spin_us.to_string()])
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("{}: {e} (build the bridge first)", bridge.display()))
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
        let imported = format!("b-{lane}");
        let bridges = Bridges {
            children: vec![exporter, importer],
            lanes: [lane.to_string(), imported.clone()],
        };
        (bridges, imported)
    }
}

impl Drop for Bridges {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for lane in &self.lanes {
            if let Ok(name) = LaneName::new(lane) {
                let _ = segment::unlink(&name);
            }
        }
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

/// The bridge: a stream written here, exported, imported, read here.
struct BridgePipe {
    writer: StreamWriter,
    reader: StreamReader,
    /// Stopped, and the lanes unlinked, when the pipe is dropped.
    _bridges: Bridges,
    buf: Vec<u8>,
}

impl BridgePipe {
    fn new(setup: &Setup, size: usize, spin_us: u64) -> BridgePipe {
        let src = format!("bench{}-lat-{size}", std::process::id());
        let spec = TensorSpec::bytes(size as u64).unwrap();
        let mut writer = StreamWriter::create(&src, &spec, 3).unwrap();
        writer.write(&stamped(size, 1)).unwrap();
        let (bridges, dst) = Bridges::start(setup, &src, spin_us, &[]);
        let reader = wait_open(|| StreamReader::open(&dst));
        BridgePipe {
            writer,
            reader,
            _bridges: bridges,
            buf: vec![0u8; size],
        }
    }
}

/// The bridge between two queues used with loans: each item written in place
/// here, lent to Zenoh in place by the exporter and written straight into a held
/// slot by the importer (`--zero-copy`), and read in place here.
struct LoanPipe {
    producer: QueueProducer,
    consumer: QueueConsumer,
    /// Stopped, and the lanes unlinked, when the pipe is dropped.
    _bridges: Bridges,
}

impl LoanPipe {
    fn new(setup: &Setup, size: usize, spin_us: u64) -> LoanPipe {
        let src = format!("bench{}-loan-{size}", std::process::id());
        let spec = TensorSpec::bytes(size as u64).unwrap();
        let mut producer = QueueProducer::create(&src, &spec, 4).unwrap();
        let (bridges, dst) = Bridges::start(setup, &src, spin_us, &["--zero-copy"]);
        // One item to create the imported queue.
        producer.push(&stamped(size, 0)).unwrap();
        let mut consumer = wait_open(|| QueueConsumer::open(&dst));
        consumer.pop_timeout(&mut vec![0; size], TIMEOUT).unwrap();
        LoanPipe {
            producer,
            consumer,
            _bridges: bridges,
        }
    }
}

/// One of the compared pipelines; dropping it stops what it started.
trait Pipe {
    /// One item's one-way time (ns), or None if it did not arrive in time.
    fn sample(&mut self, size: usize) -> Option<u64>;
}

impl Pipe for RawPipe {
    fn sample(&mut self, size: usize) -> Option<u64> {
        // The item to wait for: the one stamped t0 (sent here), or the first one
        // the child stamped after the request (a late answer to an earlier
        // request that timed out is older, and skipped).
        let t0 = now();
        let exact = match &mut self.sender {
            Sender::Here(_, publisher) => {
                publisher.put(stamped(size, t0)).wait().unwrap();
                true
            }
            Sender::Child(child) => {
                use std::io::Write;
                let stdin = child.stdin.as_mut().unwrap();
                stdin.write_all(b"s").unwrap();
                stdin.flush().unwrap();
                false
            }
        };
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match self.subscriber.recv_deadline(deadline) {
                Ok(Some(s)) => {
                    let stamp = stamp_of(&s.payload().to_bytes());
                    if stamp == t0 || (!exact && stamp > t0) {
                        return Some(now() - stamp);
                    }
                }
                _ => return None,
            }
        }
    }
}

impl Pipe for BridgePipe {
    fn sample(&mut self, size: usize) -> Option<u64> {
        let t0 = now();
        self.writer.write(&stamped(size, t0)).unwrap();
        let deadline = Instant::now() + TIMEOUT;
        loop {
            match self.reader.read_new_deadline(&mut self.buf, deadline) {
                Ok(_) if stamp_of(&self.buf) == t0 => return Some(now() - t0),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }
}

impl Pipe for LoanPipe {
    fn sample(&mut self, _size: usize) -> Option<u64> {
        let t0 = now();
        // SAFETY: the benchmark's own lanes, written only by this process and the
        // bridges, which follow docs/LAYOUT.md. The writes stay inside the held
        // slot (`len` bytes, at least 8) and precede the commit.
        unsafe {
            let held = self.producer.hold_slot(LaneWait::Until(None)).unwrap();
            // The work `stamped` does for raw Zenoh: fill, then the stamp.
            std::ptr::write_bytes(held.as_ptr(), 0xa5, held.len());
            std::ptr::copy_nonoverlapping(t0.to_le_bytes().as_ptr(), held.as_ptr(), 8);
            self.producer.commit_held(held).unwrap();
        }
        let deadline = Instant::now() + TIMEOUT;
        loop {
            // SAFETY: as above; the item is read (8 bytes of at least 8) before
            // its release.
            let stamp = unsafe {
                let (_, held) = self
                    .consumer
                    .hold_item(LaneWait::Until(Some(deadline)))
                    .ok()?;
                let mut stamp = [0u8; 8];
                std::ptr::copy_nonoverlapping(held.as_ptr(), stamp.as_mut_ptr(), 8);
                self.consumer.release_held(held).ok()?;
                u64::from_le_bytes(stamp)
            };
            if stamp == t0 {
                return Some(now() - t0);
            }
        }
    }
}

/// The pipelines [`latency`] compares, by name; the first is the reference.
pub const PIPES: [&str; 4] = [
    "raw zenoh, 2 processes",
    "raw zenoh, 1 process",
    "bridge, stream",
    "bridge, queue loans, --zero-copy",
];

fn open_pipe(setup: &Setup, which: usize, size: usize, spin_us: u64) -> Box<dyn Pipe> {
    match which {
        0 => Box::new(RawPipe::new(setup, size, true)),
        1 => Box::new(RawPipe::new(setup, size, false)),
        2 => Box::new(BridgePipe::new(setup, size, spin_us)),
        _ => Box::new(LoanPipe::new(setup, size, spin_us)),
    }
}

/// Samples taken from one pipeline before the next takes its turn.
const BLOCK: usize = 50;

/// One pipeline's one-way times.
#[derive(Debug, Clone, Default)]
pub struct Sampled {
    /// One-way times (ns) of the items that arrived, warm-up excluded.
    pub ns: Vec<u64>,
    /// Items that did not arrive within 2 s.
    pub lost: usize,
}

/// One-way latency of every pipeline of [`PIPES`] (in that order), `samples` items
/// of `size` bytes each (at least 8), measured in turns: blocks of samples of each,
/// the order rotating every round. `spin_us` is the bridges' `--spin-us`.
pub fn latency(setup: &Setup, size: usize, samples: usize, spin_us: u64) -> Vec<Sampled> {
    assert!(size >= 8, "items of at least 8 bytes (the stamp)");
    let mut pipes: Vec<Box<dyn Pipe>> = (0..PIPES.len())
        .map(|which| open_pipe(setup, which, size, spin_us))
        .collect();
    let mut ns: Vec<Vec<u64>> = vec![Vec::new(); PIPES.len()];
    let mut lost = vec![0usize; PIPES.len()];
    // The first tenth of each pipeline's samples warms up.
    let warm = samples / 10;
    let rounds = (samples + warm).div_ceil(BLOCK);
    for round in 0..rounds {
        for turn in 0..PIPES.len() {
            let which = (round + turn) % PIPES.len();
            for k in 0..BLOCK {
                match pipes[which].sample(size) {
                    Some(t) if round * BLOCK + k >= warm => ns[which].push(t),
                    Some(_) => {}
                    None => lost[which] += 1,
                }
            }
            // Past the exporters' polling window before the next block: a polling
            // exporter keeps a CPU awake, which would speed up its neighbours too.
            std::thread::sleep(Duration::from_micros(spin_us) + Duration::from_millis(1));
        }
    }
    drop(pipes);
    ns.into_iter()
        .zip(lost)
        .map(|(ns, lost)| Sampled { ns, lost })
        .collect()
}

/// Items per second of a burst of `burst` items of `size` bytes, queue -> bridge ->
/// bridge -> queue (capacity 64 on both sides).
pub fn bridge_throughput(setup: &Setup, size: usize, burst: usize, spin_us: u64) -> f64 {
    let src = format!("bench{}-tp-{size}", std::process::id());
    let spec = TensorSpec::bytes(size as u64).unwrap();
    let mut producer = QueueProducer::create(&src, &spec, 64).unwrap();
    let (bridges, dst) = Bridges::start(setup, &src, spin_us, &[]);
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
    burst as f64 / elapsed.as_secs_f64()
}
