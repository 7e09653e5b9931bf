//! The Zenoh bridge in the comparison (feature `bridge`): lane -> bridge -> bridge ->
//! lane against raw Zenoh put/subscribe of the same payloads, with the pipelines of
//! `tensorlane_bridge::bench` (their method is described there). Figures:
//! `zenoh/raw/<size>` (the reference: publisher and subscriber in two processes),
//! `zenoh/raw-one-process/<size>`, `bridge/stream/<size>` and
//! `bridge/queue-loans/<size>` (queues used with loans, `--zero-copy` bridges).
//!
//! The bridge's program must be built first (`cargo build --release -p
//! tensorlane-bridge`); it is looked for next to this executable.

/// Figure keys of the pipelines, in the order of `tensorlane_bridge::bench::PIPES`.
pub const KEYS: [&str; 4] = [
    "zenoh/raw",
    "zenoh/raw-one-process",
    "bridge/stream",
    "bridge/queue-loans",
];

/// The reference every figure of this module is compared with.
pub fn reference(size: usize) -> String {
    format!("{}/{size}", KEYS[0])
}

#[cfg(feature = "bridge")]
mod measure {
    use super::KEYS;
    use std::collections::BTreeMap;
    use std::process::Command;
    use tensorlane_bridge::bench::{self, Setup};

    /// One-way times (ns) of every pipeline, keyed as [`KEYS`].
    pub fn latency(size: usize, samples: usize) -> Result<Vec<(String, Vec<f64>)>, String> {
        let exe = std::env::current_exe().map_err(|e| e.to_string())?;
        let bridge = exe.with_file_name("tensorlane-bridge");
        if !bridge.is_file() {
            return Err(format!(
                "{} not found: build it first (cargo build --release -p tensorlane-bridge)",
                bridge.display()
            ));
        }
        let setup = Setup {
            bridge,
            raw_sender: Box::new(move |port, key, size| {
                let mut command = Command::new(&exe);
                command.args(["--role", "zenoh-sender", "--port", &port.to_string()]);
                command.args(["--key", key, "--size", &size.to_string()]);
                command
            }),
        };
        let sampled = bench::latency(&setup, size, samples, 0);
        let mut out = Vec::new();
        for (key, s) in KEYS.iter().zip(sampled) {
            if s.lost > 0 {
                return Err(format!("{key}/{size}: {} items timed out", s.lost));
            }
            out.push((
                format!("{key}/{size}"),
                s.ns.into_iter().map(|ns| ns as f64).collect(),
            ));
        }
        Ok(out)
    }

    /// The raw Zenoh publisher of the two-process pipeline.
    pub fn sender(m: &BTreeMap<String, String>) -> Result<(), String> {
        let get = |k: &str| m.get(k).cloned().ok_or(format!("missing --{k}"));
        let port = get("port")?.parse().map_err(|_| "bad --port")?;
        let size = get("size")?.parse().map_err(|_| "bad --size")?;
        bench::raw_sender(port, get("key")?, size);
        Ok(())
    }
}

#[cfg(not(feature = "bridge"))]
mod measure {
    use std::collections::BTreeMap;

    pub fn latency(_: usize, _: usize) -> Result<Vec<(String, Vec<f64>)>, String> {
        Err("built without feature bridge".into())
    }

    pub fn sender(_: &BTreeMap<String, String>) -> Result<(), String> {
        Err("built without feature bridge".into())
    }
}

pub use measure::{latency, sender};
