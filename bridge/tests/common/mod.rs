//! What the loopback tests share: payloads, unique names, bridge processes, and a
//! broken exporter (the canaries).

#![allow(dead_code)]

pub mod canary;

use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tensorlane_shm::{segment, DType, Frame, LaneError, LaneName, TensorSpec};

pub const WORDS: usize = 16;
pub const TORN: u64 = u64::MAX;
/// Longest any wait in these tests may take.
pub const LIMIT: Duration = Duration::from_secs(30);

pub fn spec() -> TensorSpec {
    TensorSpec::new(DType::U64, &[WORDS as u64]).unwrap()
}

pub fn payload(frame_id: u64) -> Vec<u8> {
    (0..WORDS).flat_map(|_| frame_id.to_le_bytes()).collect()
}

/// The frame id a payload carries, or `TORN`.
pub fn value_of(frame: &Frame, bytes: &[u8]) -> u64 {
    let words: Vec<u64> = bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    if words.iter().all(|&w| w == frame.frame_id) {
        frame.frame_id
    } else {
        TORN
    }
}

/// A name no other test (or earlier run) uses.
pub fn unique(what: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "br{}-{}-{what}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Removes the lanes a test made, whatever happens.
pub struct Lanes(pub Vec<String>);

impl Drop for Lanes {
    fn drop(&mut self) {
        for name in &self.0 {
            let _ = segment::unlink(&LaneName::new(name).unwrap());
        }
    }
}

/// A bridge process whose standard error goes to a file.
pub struct Bridge {
    pub child: Child,
    pub log: PathBuf,
}

impl Bridge {
    pub fn spawn(tag: &str, args: &[String]) -> Bridge {
        let log = std::env::temp_dir().join(format!("{}.log", unique(tag)));
        let file = std::fs::File::create(&log).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_tensorlane-bridge"))
            .args(args)
            .arg("--no-multicast-scouting")
            .arg("--rescan-ms")
            .arg("50")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap();
        Bridge { child, log }
    }

    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = std::fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill has no memory preconditions; the pid is our live child's.
        unsafe { libc::kill(self.child.id() as libc::pid_t, signal) };
    }

    /// SIGTERM, wait, and the log with its `stats` lines.
    pub fn stop(mut self) -> String {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + LIMIT;
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "bridge did not stop:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = self.log();
        let _ = std::fs::remove_file(&self.log);
        std::mem::forget(self);
        log
    }

    /// SIGKILL, as a crash.
    pub fn kill(mut self) -> String {
        self.signal(libc::SIGKILL);
        let _ = self.child.wait();
        let log = self.log();
        let _ = std::fs::remove_file(&self.log);
        std::mem::forget(self);
        log
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("bridge log:\n{}", self.log());
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// One exporting and one importing bridge for `prefix`, on fresh ports.
pub struct Pair {
    pub port: u16,
    pub prefix: String,
}

impl Pair {
    pub fn new() -> Pair {
        Pair {
            port: free_port(),
            prefix: format!("tensorlane/{}", unique("host")),
        }
    }

    pub fn exporter(&self, pattern: &str, extra: &[&str]) -> Bridge {
        let mut args = vec![
            "--listen".to_string(),
            format!("tcp/127.0.0.1:{}", self.port),
            "--export".into(),
            pattern.into(),
            "--prefix".into(),
            self.prefix.clone(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Bridge::spawn("export", &args)
    }

    pub fn importer(&self, local_prefix: &str) -> Bridge {
        self.importer_with(local_prefix, &[])
    }

    pub fn importer_with(&self, local_prefix: &str, extra: &[&str]) -> Bridge {
        let mut args = vec![
            "--connect".to_string(),
            format!("tcp/127.0.0.1:{}", self.port),
            "--import".into(),
            format!("{}/*", self.prefix),
            "--local-prefix".into(),
            local_prefix.into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        Bridge::spawn("import", &args)
    }
}

/// Retries `open` until the lane exists.
pub fn wait_open<T>(mut open: impl FnMut() -> Result<T, LaneError>) -> T {
    let deadline = Instant::now() + LIMIT;
    loop {
        match open() {
            Ok(lane) => return lane,
            Err(LaneError::NotFound(_)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            Err(e) => panic!("open: {e}"),
        }
    }
}

/// The value of `key=` in the last `stats <name>:` line of a log.
pub fn stat(log: &str, name: &str, key: &str) -> u64 {
    let line = log
        .lines()
        .rfind(|l| l.contains(&format!("stats {name}:")))
        .unwrap_or_else(|| panic!("no stats for {name} in\n{log}"));
    let field = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .unwrap();
    field.parse().unwrap()
}
