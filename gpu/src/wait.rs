//! How long a GPU lane operation may wait: [`Wait`], the shm lanes' own parameter
//! behind each family of public calls (`x` without limit, `try_x` never,
//! `x_timeout(Duration)`, `x_deadline(Instant)`), and the record lane's calls under it.
//!
//! Each family is written once, as a private function taking a [`Wait`]; a timeout
//! becomes a deadline when the call starts, so that retries inside one call (an item
//! lost to an overwrite, a read raced by the writer) share its time instead of each
//! getting the whole timeout again.

pub(crate) use tensorlane_shm::Wait;
use tensorlane_shm::{Frame, LaneError, StreamReader, TopicPublisher, TopicSubscriber};

/// The record lane's calls, waiting as a [`Wait`] says.
pub(crate) trait WaitOn {
    /// Publishes `record` on `lane`.
    fn publish(self, lane: &mut TopicPublisher, record: &[u8]) -> Result<u64, LaneError>;

    /// Receives the next item of `lane` into `out`.
    fn recv(self, lane: &mut TopicSubscriber, out: &mut [u8]) -> Result<Frame, LaneError>;

    /// Reads a value of `lane` newer than the last one it returned into `out`.
    fn read_new(self, lane: &mut StreamReader, out: &mut [u8]) -> Result<Frame, LaneError>;
}

impl WaitOn for Wait {
    fn publish(self, lane: &mut TopicPublisher, record: &[u8]) -> Result<u64, LaneError> {
        match self {
            Wait::Never => lane.try_publish(record),
            Wait::Until(None) => lane.publish(record),
            Wait::Until(Some(deadline)) => lane.publish_deadline(record, deadline),
        }
    }

    fn recv(self, lane: &mut TopicSubscriber, out: &mut [u8]) -> Result<Frame, LaneError> {
        match self {
            Wait::Never => lane.try_recv(out),
            Wait::Until(None) => lane.recv(out),
            Wait::Until(Some(deadline)) => lane.recv_deadline(out, deadline),
        }
    }

    fn read_new(self, lane: &mut StreamReader, out: &mut [u8]) -> Result<Frame, LaneError> {
        match self {
            Wait::Never => lane.try_read_new(out),
            Wait::Until(None) => lane.read_new(out),
            Wait::Until(Some(deadline)) => lane.read_new_deadline(out, deadline),
        }
    }
}
