//! How long a GPU lane operation may wait: the one parameter behind each family of
//! public calls (`x` without limit, `try_x` never, `x_timeout(Duration)`,
//! `x_deadline(Instant)`), and the record lane's calls under it.
//!
//! Each family is written once, as a private function taking a [`Wait`]; a timeout
//! becomes a deadline when the call starts, so that retries inside one call (an item
//! lost to an overwrite, a read raced by the writer) share its time instead of each
//! getting the whole timeout again.

use std::time::{Duration, Instant};
use tensorlane_shm::{Frame, LaneError, StreamReader, TopicPublisher, TopicSubscriber};

/// How long a call may wait.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Wait {
    /// One attempt, no waiting (`try_x`): nothing ready is `Empty` or `Full`.
    Never,
    /// Wait until the instant (`x_timeout`, `x_deadline`), or without limit (`x`,
    /// `None`); running out of time is `Timeout`.
    Until(Option<Instant>),
}

impl Wait {
    /// Waiting for at most `timeout`; a timeout beyond the clock's range is no limit.
    pub(crate) fn timeout(timeout: Duration) -> Self {
        Wait::Until(Instant::now().checked_add(timeout))
    }

    /// Publishes `record` on `lane` waiting as `self` says.
    pub(crate) fn publish(
        self,
        lane: &mut TopicPublisher,
        record: &[u8],
    ) -> Result<u64, LaneError> {
        match self {
            Wait::Never => lane.try_publish(record),
            Wait::Until(None) => lane.publish(record),
            Wait::Until(Some(deadline)) => lane.publish_deadline(record, deadline),
        }
    }

    /// Receives the next item of `lane` into `out`, waiting as `self` says.
    pub(crate) fn recv(
        self,
        lane: &mut TopicSubscriber,
        out: &mut [u8],
    ) -> Result<Frame, LaneError> {
        match self {
            Wait::Never => lane.try_recv(out),
            Wait::Until(None) => lane.recv(out),
            Wait::Until(Some(deadline)) => lane.recv_deadline(out, deadline),
        }
    }

    /// Reads a value of `lane` newer than the last one it returned into `out`, waiting
    /// as `self` says.
    pub(crate) fn read_new(
        self,
        lane: &mut StreamReader,
        out: &mut [u8],
    ) -> Result<Frame, LaneError> {
        match self {
            Wait::Never => lane.try_read_new(out),
            Wait::Until(None) => lane.read_new(out),
            Wait::Until(Some(deadline)) => lane.read_new_deadline(out, deadline),
        }
    }
}
