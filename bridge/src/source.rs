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
//! as long as such a reference does. Whatever ends the exporter meanwhile (a stop
//! that Zenoh outlasts, a panic), the consumer handle is then leaked, not dropped: the
//! item is never released under a live view, and the consumer role stays taken (by
//! this process's lock on the lane) until the process exits.

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
/// How long Zenoh may hold a lent item before the exporter says it waits.
const SLOW_LET_GO: Duration = Duration::from_secs(5);

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

    /// The message of the last `take` was put (`delivered`), or failed to be.
    fn sent(&mut self, _delivered: bool, _stop: &AtomicBool) -> Result<(), LaneError> {
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
        // is released only after the view is gone (`sent`), or never (`abandon`).
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

    /// Waits until Zenoh let go of the lent item, then releases it if it was
    /// delivered; an item whose put failed stays at the head of the queue, and the
    /// next `take` sends it again. If Zenoh still holds it `LET_GO` after `stop`, the
    /// exporter gives up (see [`InPlace::abandon`]).
    fn sent(&mut self, delivered: bool, stop: &AtomicBool) -> Result<(), LaneError> {
        let Some((held, let_go)) = self.lent.take() else {
            return Ok(());
        };
        let since = Instant::now();
        let mut stopped_at: Option<Instant> = None;
        let mut said = false;
        loop {
            match let_go.recv_timeout(POLL) {
                Ok(()) | Err(RecvTimeoutError::Disconnected) => break,
                Err(RecvTimeoutError::Timeout) => {
                    if !said && since.elapsed() >= SLOW_LET_GO {
                        said = true;
                        log(format_args!(
                            "zenoh has held a queue item lent in place for {} s; waiting",
                            SLOW_LET_GO.as_secs()
                        ));
                    }
                    if !stop.load(Ordering::Relaxed) {
                        continue;
                    }
                    if stopped_at.get_or_insert_with(Instant::now).elapsed() >= LET_GO {
                        self.lent = Some((held, let_go));
                        self.abandon();
                        return Ok(());
                    }
                }
            }
        }
        match (delivered, self.consumer.as_mut()) {
            (true, Some(consumer)) => consumer.release_held(held),
            // Dropping `held` leaves the item at the head.
            _ => Ok(()),
        }
    }
}

impl InPlace {
    /// Gives up a lent item that Zenoh may still read: leaks it and the consumer
    /// handle, so that nothing releases the item while a view of it lives.
    fn abandon(&mut self) {
        if let Some((held, _)) = self.lent.take() {
            log(format_args!(
                "zenoh still holds a queue item lent in place; leaving it and the consumer role \
                 to this process's exit"
            ));
            std::mem::forget(held);
            std::mem::forget(self.consumer.take());
        }
    }
}

impl Drop for InPlace {
    /// An exporter ended between a take and its `sent` (a panic): the view may live.
    fn drop(&mut self) {
        self.abandon();
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
        // dropped (`InPlace::sent` waits for `done`) or never (`InPlace::abandon`
        // leaks the consumer), so the ring's protocol keeps the producer from
        // writing it meanwhile, which the `--zero-copy` promise (`InPlace::new`)
        // extends to every process.
        unsafe { std::slice::from_raw_parts(self.address.as_ptr(), self.len) }
    }
}

impl Drop for ItemView {
    fn drop(&mut self) {
        // The exporter may have given up waiting: a full or closed channel is fine.
        let _ = self.done.try_send(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tensorlane_shm::{LaneName, QueueProducer, TensorSpec};
    use zenoh::Wait as _;

    /// Zenoh keeps a local subscriber's sample, and with it the lent item: the item
    /// stays held (its slot not free for the producer) until that sample is dropped.
    #[test]
    fn a_lent_item_is_released_only_after_zenoh_lets_go() {
        let name = format!("bridge-inplace-{}", std::process::id());
        let spec = TensorSpec::bytes(32).unwrap();
        let mut producer = QueueProducer::create(&name, &spec, 1).unwrap();
        producer.push(&[7; 32]).unwrap();
        let consumer = QueueConsumer::open(&name).unwrap();
        let desc = LaneDesc {
            kind: tensorlane_shm::Kind::Queue,
            spec: spec.clone(),
            count: 1,
            subscribers: 0,
            clock: tensorlane_shm::Clock::Monotonic,
            metadata: Default::default(),
            lossless: false,
        };
        // SAFETY: this test's own lane, written only by this process through the
        // lane API.
        let mut source = unsafe { InPlace::new(consumer, &desc) };
        let mut config = zenoh::Config::default();
        config
            .insert_json5("scouting/multicast/enabled", "false")
            .unwrap();
        config.insert_json5("listen/endpoints", "[]").unwrap();
        let session = zenoh::open(config).wait().unwrap();
        let key = format!("test/{name}");
        let subscriber = session.declare_subscriber(key.clone()).wait().unwrap();
        let publisher = session.declare_publisher(key).wait().unwrap();

        let (frame, message) = source.take(true).unwrap();
        assert_eq!(frame.seq, 1);
        publisher.put(message).wait().unwrap();
        let sample = subscriber.recv().unwrap();
        let got = sample.payload().to_bytes();
        assert_eq!(&got[got.len() - 32..], &[7; 32]);
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| {
            let releasing = scope.spawn(|| source.sent(true, &stop));
            std::thread::sleep(Duration::from_millis(300));
            assert!(
                !releasing.is_finished(),
                "released while Zenoh holds the item"
            );
            assert!(
                matches!(producer.try_push(&[8; 32]), Err(LaneError::Full)),
                "the held slot was given back"
            );
            drop(sample);
            releasing.join().unwrap().unwrap();
        });
        producer.try_push(&[8; 32]).unwrap();
        drop((publisher, subscriber));
        let _ = session.close().wait();
        let _ = tensorlane_shm::segment::unlink(&LaneName::new(&name).unwrap());
    }
}
