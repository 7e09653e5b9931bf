//! How a subscriber asks to join: its [`Mode`] (lossless or lossy) and its
//! [`SubscribeOptions`] (mode and history).
//!
//! Plain values in process memory, never shared. Nothing here is trusted as given: the
//! join clamps a lossy lag bound to `1..=capacity` and the history to the capacity and
//! to the positions that exist before anything reaches the subscriber table.

/// How a subscriber treats a producer that runs ahead of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Receives everything; the producer waits for it (`Full`) instead of
    /// overwriting what it has not received.
    Lossless,
    /// Never holds the producer back; stays at most `max_lag` positions behind the
    /// tail (1 = only the newest), dropping and counting older ones.
    Lossy {
        /// Lag bound, clamped to `1..=capacity`.
        max_lag: u64,
    },
}

/// Options for [`Broadcast::subscribe`](super::Broadcast::subscribe): built with
/// [`lossless`](Self::lossless), [`lossy`](Self::lossy) or [`new`](Self::new), then
/// [`with_history`](Self::with_history).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscribeOptions {
    /// Lossless or lossy.
    pub mode: Mode,
    /// Ask to start this many positions before the current tail (clamped to the
    /// capacity and to what exists).
    pub history: u64,
}

impl SubscribeOptions {
    /// A subscriber in `mode`, starting at the tail.
    pub fn new(mode: Mode) -> Self {
        SubscribeOptions { mode, history: 0 }
    }

    /// A lossless subscriber starting at the tail.
    pub fn lossless() -> Self {
        SubscribeOptions {
            mode: Mode::Lossless,
            history: 0,
        }
    }

    /// A lossy subscriber with lag bound `max_lag`, starting at the tail.
    pub fn lossy(max_lag: u64) -> Self {
        SubscribeOptions {
            mode: Mode::Lossy { max_lag },
            history: 0,
        }
    }

    /// Starts `history` positions back.
    pub fn with_history(mut self, history: u64) -> Self {
        self.history = history;
        self
    }
}
