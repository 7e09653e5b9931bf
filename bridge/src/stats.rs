//! Per-lane counters of the bridge, printed as `stats` lines.
//!
//! Invariant: every item an exporter read and every sample an importer received is
//! counted exactly once, in `forwarded`, `stale` or `refused`; `missed` and `lost`
//! count items that never arrived (skipped at the source, or missing from the
//! source sequence at the importer).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// The counters of one exported or imported lane.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LaneCounters {
    /// Items written to Zenoh (export) or to the local lane (import).
    pub forwarded: u64,
    /// Items skipped before the bridge saw them: a stream's overwritten values, a
    /// lossy topic's skips (the source's `Frame::missed`, summed).
    pub missed: u64,
    /// Import: items missing from the source sequence beyond those the source
    /// reported missed (dropped on the way: lossy congestion control, a restart).
    pub lost: u64,
    /// Import: items dropped because they were not newer than the last one written.
    pub stale: u64,
    /// Import: samples refused (malformed, wrong spec, no usable local lane).
    pub refused: u64,
}

/// The counters of every lane a bridge handles, by direction and name
/// (`export <lane>`, `import <key>`). Clones share the counters.
#[derive(Debug, Clone, Default)]
pub struct Counters(Arc<Mutex<BTreeMap<String, LaneCounters>>>);

impl Counters {
    /// Applies `update` to the counters of `name`.
    pub(crate) fn update(&self, name: &str, update: impl FnOnce(&mut LaneCounters)) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = map.get_mut(name) {
            update(entry);
        } else {
            let mut entry = LaneCounters::default();
            update(&mut entry);
            map.insert(name.to_string(), entry);
        }
    }

    /// The counters of `name`, if it was seen.
    pub fn get(&self, name: &str) -> Option<LaneCounters> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(name).copied()
    }

    /// Prints one `stats` line per lane on standard error.
    pub fn print(&self) {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        for (name, c) in map.iter() {
            crate::log(format_args!(
                "stats {name}: forwarded={} missed={} lost={} stale={} refused={}",
                c.forwarded, c.missed, c.lost, c.stale, c.refused
            ));
        }
    }
}
