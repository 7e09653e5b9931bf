//! How an exporter turns a lane's items into Zenoh messages.
//!
//! - [`Copier`]: the lane's own read copies each item into a pooled message buffer
//!   behind its header, so Zenoh owns bytes that no other process can change. Every
//!   exporter reads this way unless `--zero-copy` is given.
//! - [`InPlace`] (`--zero-copy`, queues only): the item is held in the ring
//!   ([`QueueConsumer::hold_item`]) and lent to Zenoh where it lies, after a pooled
//!   header; the only copy is Zenoh's own into its batches. The item is released
//!   once Zenoh has dropped the message. This trusts the queue's producer not to
//!   write a slot it has pushed (docs/LAYOUT.md), which a Rust reader of shared
//!   bytes must.
//!
//! Invariant: an [`InPlace`] item is released (its slot given back to the producer)
//! only after Zenoh has dropped every reference to its bytes, and the mapping lives
//! as long as such a reference does.

use crate::pool::Pool;
use crate::wire::{self, ItemInfo, LaneDesc};
use crate::{log, POLL};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tensorlane_shm::{
    Frame, HeldSlot, LaneError, QueueConsumer, Segment, StreamReader, TopicSubscriber, Wait,
};
use zenoh::bytes::ZBytes;

/// How long a stopping exporter still waits for Zenoh to let go of a lent item.
const LET_GO: Duration = Duration::from_secs(1);

/// The per-item fields of a lane frame.
pub(crate) fn item(frame: &Frame) -> ItemInfo {
    ItemInfo {
        seq: frame.seq,
        frame_id: frame.frame_id,
        timestamp_ns: frame.timestamp_ns,
        missed: frame.missed,
    }
}

/// A lane read item by item.
pub(crate) trait Source {
    /// The next item as a whole message: waits up to `POLL` for it if `wait`, else
    /// `Empty` at once.
    fn take(&mut self, wait: bool) -> Result<(Frame, ZBytes), LaneError>;

    /// The message of the last `take` was put, or failed to be.
    fn sent(&mut self, _stop: &AtomicBool) -> Result<(), LaneError> {
        Ok(())
    }
}

/// Reads items into pooled message buffers.
pub(crate) struct Copier {
    pool: Pool,
    at: usize,
}

impl Copier {
    pub(crate) fn new(desc: &LaneDesc) -> Copier {
        Copier {
            pool: Pool::new(desc),
            at: wire::prefix_len(desc),
        }
    }

    /// The message of the item `read` copies into the payload it is given.
    pub(crate) fn take(
        &self,
        read: impl FnOnce(&mut [u8]) -> Result<Frame, LaneError>,
    ) -> Result<(Frame, ZBytes), LaneError> {
        let mut buf = self.pool.take();
        match read(&mut buf[self.at..]) {
            Ok(frame) => {
                wire::set_item(&mut buf, &item(&frame));
                Ok((frame, self.pool.wrap(buf)))
            }
            Err(e) => {
                self.pool.keep(buf);
                Err(e)
            }
        }
    }

    /// A stream's newest value or a newer one (`read_new`), or `Empty` at once.
    pub(crate) fn read_new(
        &self,
        reader: &mut StreamReader,
        wait: bool,
    ) -> Result<(Frame, ZBytes), LaneError> {
        self.take(|buf| {
            if wait {
                reader.read_new_timeout(buf, POLL)
            } else {
                reader.try_read_new(buf)
            }
        })
    }
}

/// A queue's items, copied.
pub(crate) struct CopiedQueue(pub(crate) QueueConsumer, pub(crate) Copier);

impl Source for CopiedQueue {
    fn take(&mut self, wait: bool) -> Result<(Frame, ZBytes), LaneError> {
        let consumer = &mut self.0;
        self.1.take(|buf| {
            if wait {
                consumer.pop_timeout(buf, POLL)
            } else {
                consumer.try_pop(buf)
            }
        })
    }
}

/// A topic's items, copied.
pub(crate) struct CopiedTopic(pub(crate) TopicSubscriber, pub(crate) Copier);

impl Source for CopiedTopic {
    fn take(&mut self, wait: bool) -> Result<(Frame, ZBytes), LaneError> {
        let subscriber = &mut self.0;
        self.1.take(|buf| {
            if wait {
                subscriber.recv_timeout(buf, POLL)
            } else {
                subscriber.try_recv(buf)
            }
        })
    }
}

/// A queue's items, lent to Zenoh in place.
pub(crate) struct InPlace {
    /// `None` once given up (see [`InPlace::sent`]).
    consumer: Option<QueueConsumer>,
    headers: Pool,
    /// The item lent to Zenoh, and the signal that Zenoh let go of it.
    lent: Option<(HeldSlot, Receiver<()>)>,
}

impl InPlace {
    /// # Safety
    /// Every process that can write the queue follows docs/LAYOUT.md: in particular
    /// its producer never writes a slot between the consumer's head and its tail (the
    /// promise [`QueueConsumer::hold_item`] asks for).
    pub(crate) unsafe fn new(consumer: QueueConsumer, desc: &LaneDesc) -> InPlace {
        InPlace {
            consumer: Some(consumer),
            headers: Pool::headers(desc),
            lent: None,
        }
    }
}

impl Source for InPlace {
    fn take(&mut self, wait: bool) -> Result<(Frame, ZBytes), LaneError> {
        let consumer = self.consumer.as_mut().ok_or(LaneError::WriterGone)?;
        let wait_for = if wait {
            Wait::timeout(POLL)
        } else {
            Wait::Never
        };
        // SAFETY: the promise made to `InPlace::new` is the one `hold_item` asks for;
        // nothing writes through the address (the view only reads it), and the item
        // is released only after the view is gone (`sent`).
        let (frame, held) = unsafe { consumer.hold_item(wait_for) }?;
        let mut head = self.headers.take();
        wire::set_item(&mut head, &item(&frame));
        let (done, let_go) = mpsc::sync_channel(1);
        let view = ItemView {
            address: NonNull::new(held.as_ptr()).ok_or(LaneError::Empty)?,
            len: held.len(),
            _segment: held.segment().clone(),
            done,
        };
        let mut message = ZBytes::writer();
        message.append(self.headers.wrap(head));
        message.append(bytes::Bytes::from_owner(view).into());
        self.lent = Some((held, let_go));
        Ok((frame, message.finish()))
    }

    /// Waits until Zenoh let go of the lent item, then releases it. If Zenoh still
    /// holds it `LET_GO` after `stop`, the item and the consumer role are given up
    /// without a release (the item stays in the ring, the role is freed at exit),
    /// so that the slot is never reused under a live view.
    fn sent(&mut self, stop: &AtomicBool) -> Result<(), LaneError> {
        let Some((held, let_go)) = self.lent.take() else {
            return Ok(());
        };
        let mut stopped_at: Option<Instant> = None;
        loop {
            match let_go.recv_timeout(POLL) {
                Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    if !stop.load(Ordering::Relaxed) {
                        continue;
                    }
                    let since = *stopped_at.get_or_insert_with(Instant::now);
                    if since.elapsed() >= LET_GO {
                        log(format_args!(
                            "zenoh still holds a queue item lent in place; leaving it unreleased"
                        ));
                        std::mem::forget(held);
                        std::mem::forget(self.consumer.take());
                        return Ok(());
                    }
                }
            }
        }
        match self.consumer.as_mut() {
            Some(consumer) => consumer.release_held(held),
            None => Ok(()),
        }
    }
}

/// A held queue item's bytes, lent to Zenoh; says when Zenoh dropped it.
struct ItemView {
    address: NonNull<u8>,
    len: usize,
    /// Keeps the mapping alive while Zenoh holds the view.
    _segment: Arc<Segment>,
    done: SyncSender<()>,
}

// SAFETY: the view is an address into a shared mapping that it keeps alive, read
// only, from whichever thread Zenoh drops or reads it on; no thread-bound state.
unsafe impl Send for ItemView {}

impl AsRef<[u8]> for ItemView {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `address` is a held item of `len` bytes inside the mapping that
        // `_segment` keeps alive. The item is released only after this view is
        // dropped (`InPlace::sent` waits for `done`), so the ring's protocol keeps
        // the producer from writing it meanwhile, which the `--zero-copy` promise
        // (`InPlace::new`) extends to every process.
        unsafe { std::slice::from_raw_parts(self.address.as_ptr(), self.len) }
    }
}

impl Drop for ItemView {
    fn drop(&mut self) {
        // The exporter may have given up waiting: a full or closed channel is fine.
        let _ = self.done.try_send(());
    }
}
