//! tensorlane-bridge: local lanes over Zenoh.
//!
//! An exporter reads local lanes (streams, queues, topics) and puts each item on the
//! Zenoh key `<prefix>/<lane>` (by default `tensorlane/<hostname>/<lane>`); an
//! importer subscribes to key expressions and writes what arrives into local lanes,
//! created from the spec, geometry, clock and metadata each message carries, so a
//! process on another host reads an ordinary local lane. docs/BRIDGE.md describes the
//! keys, the encoding ([`wire`]), the semantics per kind and the configuration.
//!
//! Invariants:
//! - a Zenoh payload is untrusted: it reaches a local lane only after [`wire::decode`]
//!   accepted it and its lane description equals the local lane's; anything else is
//!   refused with a log line on standard error and counted;
//! - a stream import never writes an item whose source sequence is not newer than the
//!   last one it wrote (no stale value after a newer one);
//! - queue and lossless topic imports write items in source order, each at most once;
//!   a gap in the source sequence is counted as lost, never filled;
//! - a lane this bridge imports is never exported by it (no loop through one bridge).
#![cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]

pub mod bench;
pub mod config;
mod export;
mod import;
mod pool;
mod source;
mod stats;
pub mod wire;

pub use config::Options;
pub use stats::Counters;

use std::collections::BTreeSet;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use zenoh::Wait;

/// How long a blocking step waits before it looks at the stop flag again.
pub(crate) const POLL: Duration = Duration::from_millis(100);

/// Why the bridge could not run.
#[derive(Debug)]
#[non_exhaustive]
pub enum BridgeError {
    /// The configuration is invalid.
    Config(String),
    /// Zenoh refused an operation.
    Zenoh(String),
    /// A local lane operation failed.
    Lane(tensorlane_shm::LaneError),
}

impl fmt::Display for BridgeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BridgeError::Config(e) => write!(f, "configuration: {e}"),
            BridgeError::Zenoh(e) => write!(f, "zenoh: {e}"),
            BridgeError::Lane(e) => write!(f, "lane: {e}"),
        }
    }
}

impl std::error::Error for BridgeError {}

impl From<tensorlane_shm::LaneError> for BridgeError {
    fn from(e: tensorlane_shm::LaneError) -> Self {
        BridgeError::Lane(e)
    }
}

pub(crate) fn zenoh_error(e: impl fmt::Display) -> BridgeError {
    BridgeError::Zenoh(e.to_string())
}

/// Writes one log line on standard error.
pub(crate) fn log(line: fmt::Arguments<'_>) {
    eprintln!("tensorlane-bridge: {line}");
}

/// Names of the local lanes this bridge imports (never exported back).
pub(crate) type Imported = Arc<Mutex<BTreeSet<String>>>;

/// Runs the bridge described by `options` until `stop` is set, then prints the
/// statistics of every lane and returns them.
pub fn run(options: &Options, stop: Arc<AtomicBool>) -> Result<Counters, BridgeError> {
    let config = options.zenoh_config()?;
    let session = zenoh::open(config).wait().map_err(zenoh_error)?;
    let counters = Counters::default();
    let imported: Imported = Arc::default();
    // Kept until the end: dropping a subscriber undeclares it.
    let mut subscribers = Vec::new();
    for key in &options.import {
        let mut importer =
            import::Importer::new(options, stop.clone(), counters.clone(), imported.clone());
        let subscriber = session
            .declare_subscriber(key.clone())
            .callback_mut(move |sample| importer.receive(&sample))
            .wait()
            .map_err(zenoh_error)?;
        log(format_args!("importing {key}"));
        subscribers.push(subscriber);
    }
    let exporters = (!options.export.is_empty()).then(|| {
        let (stop, counters, imported) = (stop.clone(), counters.clone(), imported.clone());
        let (session, options) = (session.clone(), options.clone());
        std::thread::spawn(move || export::scan(&session, &options, &stop, &counters, &imported))
    });
    let mut next_stats = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(20));
        if options.stats_ms > 0 && Instant::now() >= next_stats {
            counters.print();
            next_stats = Instant::now() + Duration::from_millis(options.stats_ms);
        }
    }
    if let Some(thread) = exporters {
        let _ = thread.join();
    }
    // An importer waiting for room in a local lane sees `stop` within `POLL`.
    for subscriber in subscribers {
        let _ = subscriber.undeclare().wait();
    }
    counters.print();
    let _ = session.close().wait();
    Ok(counters)
}
