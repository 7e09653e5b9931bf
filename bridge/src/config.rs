//! Configuration: the Zenoh session (a Zenoh config file, then the usual endpoint
//! flags on top of it) and the lanes to export and import.
//!
//! Invariants: lane patterns are matched against whole lane names (`*` any run of
//! characters, `?` one character; no other special character); an exported lane's key
//! is `<prefix>/<lane>`, and the lane name is always the key's last chunk, so an
//! importer recovers it from any key that matched its key expression.

use crate::BridgeError;
use clap::{Parser, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;
use tensorlane_shm::SubscribeOptions;

/// Zenoh session mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SessionMode {
    /// A peer: talks to other peers directly (and to routers).
    Peer,
    /// A client: talks through one router or peer it connects to.
    Client,
}

/// How the exporter reads a local topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TopicMode {
    /// A lossless subscriber: every item crosses, the local publisher waits for the
    /// bridge (and so for the remote side) when it falls a whole ring behind.
    Lossless,
    /// A lossy subscriber: the bridge skips items it cannot keep up with, counted.
    Lossy,
}

/// Export local lanes to Zenoh and import Zenoh keys into local lanes.
#[derive(Debug, Clone, Parser)]
#[command(name = "tensorlane-bridge", version)]
pub struct Options {
    /// A Zenoh configuration file (JSON5); the flags below are applied on top of it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Session mode.
    #[arg(long, value_enum)]
    pub mode: Option<SessionMode>,
    /// Endpoint to listen on, e.g. `tcp/127.0.0.1:7447` (repeatable).
    #[arg(long, value_name = "ENDPOINT")]
    pub listen: Vec<String>,
    /// Endpoint to connect to, e.g. `tcp/127.0.0.1:7447` (repeatable).
    #[arg(long, value_name = "ENDPOINT")]
    pub connect: Vec<String>,
    /// Turn multicast scouting off (only the explicit endpoints are used).
    #[arg(long)]
    pub no_multicast_scouting: bool,
    /// Export local lanes whose names match PATTERN (`*`, `?`; repeatable). New lanes
    /// that match are picked up while the bridge runs.
    #[arg(long, value_name = "PATTERN")]
    pub export: Vec<String>,
    /// Import the lanes published under a Zenoh key expression, e.g.
    /// `tensorlane/hostA/*` (repeatable).
    #[arg(long, value_name = "KEYEXPR")]
    pub import: Vec<String>,
    /// Key prefix of exported lanes (default `tensorlane/<hostname>`).
    #[arg(long, value_name = "KEY")]
    pub prefix: Option<String>,
    /// Prepended to the name of every imported lane (the key's last chunk).
    #[arg(long, value_name = "STRING", default_value = "")]
    pub local_prefix: String,
    /// How exported topics are read.
    #[arg(long, value_enum, default_value = "lossless")]
    pub topic_mode: TopicMode,
    /// How far a lossy topic export may lag before it skips (items; default: the
    /// topic's capacity).
    #[arg(long)]
    pub max_lag: Option<u64>,
    /// Largest lane an importer creates, in bytes: slots (or capacity) times the
    /// tensor's bytes plus 64 per slot. A sample that describes a larger lane is
    /// refused.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 30)]
    pub max_lane_bytes: u64,
    /// Most lanes the importers of this bridge create or take over, all keys
    /// together: a sample for one more lane is refused.
    #[arg(long, value_name = "N", default_value_t = 256)]
    pub max_lanes: usize,
    /// Queues without copies in between: an exporter hands each item to Zenoh in
    /// place, an importer writes each sample straight into a free slot. This trusts
    /// the local processes of those queues to follow docs/LAYOUT.md; without it the
    /// bridge copies, and nothing a local process does can make it misbehave.
    #[arg(long)]
    pub zero_copy: bool,
    /// After each item, an exporter polls its lane (yielding the CPU between polls)
    /// for this many microseconds before it sleeps: no wake-up from sleep for an item
    /// that follows within that time, at the cost of a busy core while items flow
    /// (default 0: sleep at once).
    #[arg(long, value_name = "MICROSECONDS", default_value_t = 0,
          value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    pub spin_us: u64,
    /// How often the local lane list is scanned for new lanes to export (ms).
    #[arg(long, default_value_t = 200)]
    pub rescan_ms: u64,
    /// Print a statistics line per lane this often (ms; 0: only at exit).
    #[arg(long, default_value_t = 0)]
    pub stats_ms: u64,
}

impl Options {
    /// The Zenoh session configuration: the file if given (else Zenoh's defaults),
    /// then the flags.
    pub fn zenoh_config(&self) -> Result<zenoh::Config, BridgeError> {
        let mut config = match &self.config {
            Some(path) => zenoh::Config::from_file(path)
                .map_err(|e| BridgeError::Config(format!("{}: {e}", path.display())))?,
            None => zenoh::Config::default(),
        };
        let mut set = |key: &str, value: String| {
            config
                .insert_json5(key, &value)
                .map_err(|e| BridgeError::Config(format!("{key} = {value}: {e}")))
        };
        if let Some(mode) = self.mode {
            let mode = match mode {
                SessionMode::Peer => "peer",
                SessionMode::Client => "client",
            };
            set("mode", format!("\"{mode}\""))?;
        }
        if !self.listen.is_empty() {
            set("listen/endpoints", json_list(&self.listen))?;
        }
        if !self.connect.is_empty() {
            set("connect/endpoints", json_list(&self.connect))?;
        }
        if self.no_multicast_scouting {
            set("scouting/multicast/enabled", "false".into())?;
        }
        Ok(config)
    }

    /// The key prefix of exported lanes.
    pub fn export_prefix(&self) -> String {
        match &self.prefix {
            Some(prefix) => prefix.trim_end_matches('/').to_string(),
            None => format!("tensorlane/{}", hostname()),
        }
    }

    /// How exported topics are joined: with all the history the ring still holds,
    /// so that items published before the exporter joined (a bridge started after
    /// the publisher, or restarted) still cross; an importer drops those it already
    /// wrote as stale.
    pub fn subscribe_options(&self) -> SubscribeOptions {
        let options = match self.topic_mode {
            TopicMode::Lossless => SubscribeOptions::lossless(),
            // The core clamps the lag bound to the capacity.
            TopicMode::Lossy => SubscribeOptions::lossy(self.max_lag.unwrap_or(u64::MAX)),
        };
        options.with_history(u64::MAX)
    }

    /// The lane list rescan period.
    pub fn rescan(&self) -> Duration {
        Duration::from_millis(self.rescan_ms.max(1))
    }
}

fn json_list(items: &[String]) -> String {
    let quoted: Vec<String> = items
        .iter()
        .map(|s| serde_json::Value::String(s.clone()).to_string())
        .collect();
    format!("[{}]", quoted.join(","))
}

/// This machine's host name, as a key chunk: characters Zenoh gives a meaning to
/// (`*`, `$`, `?`, `#`, `/`) become `_`; `localhost` if it cannot be read.
pub fn hostname() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name = name.trim();
    if name.is_empty() {
        return "localhost".into();
    }
    name.chars()
        .map(|c| if "*$?#/".contains(c) { '_' } else { c })
        .collect()
}

/// Whether lane `name` matches `pattern` (`*` any run, `?` one character).
pub fn matches(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    // Iterative wildcard matching with one backtrack point (the last `*`).
    let (mut i, mut j) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while j < n.len() {
        if i < p.len() && (p[i] == '?' || p[i] == n[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some((i, j));
            i += 1;
        } else if let Some((si, sj)) = star {
            i = si + 1;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(matches("cam*", "camera"));
        assert!(matches("*", "x"));
        assert!(matches("a?c", "abc"));
        assert!(matches("a*b*c", "axxbyyc"));
        assert!(matches("exact", "exact"));
        assert!(!matches("exact", "exact2"));
        assert!(!matches("a*b", "ac"));
        assert!(!matches("?", ""));
        assert!(matches("*x", "xx"));
    }

    #[test]
    fn flags_reach_the_zenoh_config() {
        let options = Options::parse_from([
            "tensorlane-bridge",
            "--mode",
            "peer",
            "--listen",
            "tcp/127.0.0.1:17447",
            "--connect",
            "tcp/127.0.0.1:17448",
            "--no-multicast-scouting",
        ]);
        let config = options.zenoh_config().unwrap();
        let text = format!("{config}");
        assert!(text.contains("tcp/127.0.0.1:17447"), "{text}");
        assert!(text.contains("tcp/127.0.0.1:17448"), "{text}");
        assert_eq!(
            config.get_json("scouting/multicast/enabled").unwrap(),
            "false"
        );
        assert_eq!(config.get_json("mode").unwrap(), "\"peer\"");
    }
}
