//! Message buffers an exporter reuses.
//!
//! Zenoh takes each message it is given and drops it once it has been written to
//! the link. A buffer from [`Pool::take`] goes to Zenoh through [`Pool::wrap`] and
//! comes back to the pool when Zenoh drops it, so an exporter in its steady state
//! neither allocates nor zero-fills a message: it reads the lane straight into a
//! buffer whose header is already written, and rewrites only the per-item fields.
//!
//! Invariant: every buffer in the pool is a whole message of the pool's lane
//! description ([`wire::encode_empty`]'s length and header), or for a pool of
//! [`Pool::headers`] its bytes before the payload; only the per-item fields
//! ([`wire::set_item`]) and the payload differ between them.

use crate::wire::{self, ItemInfo, LaneDesc};
use std::sync::{Arc, Mutex, Weak};
use zenoh::bytes::ZBytes;

/// Buffers kept for reuse; a burst that needs more allocates the others.
const KEPT: usize = 4;

type Free = Mutex<Vec<Vec<u8>>>;

/// The buffers of one exporter.
pub(crate) struct Pool {
    desc: LaneDesc,
    /// Whether buffers hold the payload too, or end with the header.
    whole: bool,
    free: Arc<Free>,
}

impl Pool {
    /// Buffers of whole messages.
    pub(crate) fn new(desc: &LaneDesc) -> Pool {
        Pool {
            desc: desc.clone(),
            whole: true,
            free: Arc::default(),
        }
    }

    /// Buffers of a message's bytes before the payload ([`wire::prefix_len`]).
    pub(crate) fn headers(desc: &LaneDesc) -> Pool {
        Pool {
            whole: false,
            ..Pool::new(desc)
        }
    }

    /// A message buffer for the lane: the payload (after [`wire::prefix_len`]) and
    /// the per-item fields are the caller's to write.
    pub(crate) fn take(&self) -> Vec<u8> {
        let reused = self.free.lock().unwrap_or_else(|e| e.into_inner()).pop();
        reused.unwrap_or_else(|| {
            let blank = ItemInfo {
                seq: 1,
                frame_id: 0,
                timestamp_ns: 0,
                missed: 0,
            };
            if self.whole {
                wire::encode_empty(&self.desc, &blank)
            } else {
                wire::encode_prefix(&self.desc, &blank, 0)
            }
        })
    }

    /// Returns a buffer that was not sent.
    pub(crate) fn keep(&self, buf: Vec<u8>) {
        give_back(&self.free, buf);
    }

    /// `buf` as a Zenoh payload (no copy) that returns to this pool when dropped.
    pub(crate) fn wrap(&self, buf: Vec<u8>) -> ZBytes {
        bytes::Bytes::from_owner(Returning {
            buf,
            home: Arc::downgrade(&self.free),
        })
        .into()
    }
}

/// Puts `buf` back among the free buffers, unless `KEPT` are there already.
fn give_back(free: &Free, buf: Vec<u8>) {
    let mut free = free.lock().unwrap_or_else(|e| e.into_inner());
    if free.len() < KEPT {
        free.push(buf);
    }
}

/// A buffer on its way through Zenoh.
struct Returning {
    buf: Vec<u8>,
    /// The pool, if its exporter still runs.
    home: Weak<Free>,
}

impl AsRef<[u8]> for Returning {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for Returning {
    fn drop(&mut self) {
        if let Some(home) = self.home.upgrade() {
            give_back(&home, std::mem::take(&mut self.buf));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tensorlane_shm::{Clock, Kind, Metadata, TensorSpec};

    fn desc() -> LaneDesc {
        LaneDesc {
            kind: Kind::Stream,
            spec: TensorSpec::bytes(16).unwrap(),
            count: 2,
            subscribers: 0,
            clock: Clock::Monotonic,
            metadata: Metadata::default(),
            lossless: false,
        }
    }

    #[test]
    fn a_buffer_comes_back_when_zenoh_drops_it_and_keeps_its_header() {
        let pool = Pool::new(&desc());
        let mut buf = pool.take();
        let at = wire::prefix_len(&desc());
        buf[at..].copy_from_slice(&[7; 16]);
        let address = buf.as_ptr();
        let payload = pool.wrap(buf);
        assert!(pool.free.lock().unwrap().is_empty());
        drop(payload);
        let again = pool.take();
        assert_eq!(again.as_ptr(), address, "the same allocation is reused");
        let message = wire::decode(&again).expect("still a whole message");
        assert_eq!(message.desc, desc());
        assert_eq!(message.payload, &[7; 16]);
    }

    #[test]
    fn the_pool_keeps_a_bounded_number_and_outlives_nothing() {
        let pool = Pool::new(&desc());
        let payloads: Vec<ZBytes> = (0..KEPT + 3).map(|_| pool.wrap(pool.take())).collect();
        drop(payloads);
        assert_eq!(pool.free.lock().unwrap().len(), KEPT);
        let late = pool.wrap(pool.take());
        drop(pool);
        // The pool is gone: the payload stays whole, and dropping it after its pool
        // (which frees the buffer) is harmless.
        assert_eq!(late.to_bytes().len(), wire::prefix_len(&desc()) + 16);
        drop(late);
    }
}
