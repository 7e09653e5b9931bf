//! Draining receives on topics: a lossless subscriber takes several items and shows
//! its new head to the publisher once (a head shown late only holds the publisher
//! back). There is no batch publish: a lossless joiner relies on the publisher
//! storing the ring's tail once per item.

use super::TopicSubscriber;
use crate::error::{self, LaneError};
use crate::header::FRAME_BYTES;
use crate::lane::{self, Frame};
use tensorlane_core::{Received, RecvError};

impl TopicSubscriber {
    /// Receives up to `frames.len()` items waiting now, without waiting: item `k`'s
    /// tensor goes to `out[k * t .. (k + 1) * t]` (`t` the tensor's byte size; `out`
    /// holds `frames.len()` tensors back to back, else `WrongSize`) and its frame to
    /// `frames[k]`. Returns how many; `Empty` if none is waiting. A lossless
    /// subscriber stores its head once for the batch and wakes the publisher once; a
    /// lossy one receives item by item.
    ///
    /// An item that is not a lane frame ends the batch before it. A lossless
    /// subscriber leaves it for the next call, which reports it (`Corrupt`), as
    /// [`try_recv`](Self::try_recv) does; a lossy subscriber cannot receive without
    /// consuming, so it keeps the error and the next receive reports it first.
    pub fn try_recv_batch(
        &mut self,
        out: &mut [u8],
        frames: &mut [Frame],
    ) -> Result<usize, LaneError> {
        let tensor = self.spec().byte_len();
        lane::check_batch_size(self.spec(), frames.len(), out.len())?;
        if frames.is_empty() {
            return Ok(0);
        }
        if !self.subscriber.is_lossless() {
            return self.try_recv_batch_lossy(out, frames);
        }
        let expected = FRAME_BYTES + tensor;
        let mut prefixes = vec![[0u8; FRAME_BYTES]; frames.len()];
        let mut items: Vec<[&mut [u8]; 2]> = if tensor == 0 {
            prefixes.iter_mut().map(|p| [&mut p[..], &mut []]).collect()
        } else {
            prefixes
                .iter_mut()
                .zip(out.chunks_exact_mut(tensor))
                .map(|(p, t)| [&mut p[..], t])
                .collect()
        };
        let none = Received {
            position: 0,
            len: 0,
            missed: 0,
        };
        let mut received = vec![none; frames.len()];
        let result = self.subscriber.recv_batch_parts(&mut items, &mut received);
        drop(items);
        let count = match result {
            Ok(count) => count,
            // Overwritten under every attempt (a lossy subscriber lapped): nothing now.
            Err(RecvError::Stalled { .. }) => return Err(LaneError::Empty),
            Err(e) => return Err(error::from_recv(e, expected)),
        };
        if self.subscriber.is_lossless() {
            self.segment.header().space.notify();
        }
        // A lossless batch ends before a short item unless it is the first.
        let good = received[..count]
            .iter()
            .position(|r| r.len != expected)
            .unwrap_or(count);
        if good == 0 {
            return Err(error::wrong_length(received[0].len, expected));
        }
        for (k, r) in received[..good].iter().enumerate() {
            let (frame_id, timestamp_ns) = lane::parse_prefix(&prefixes[k]);
            frames[k] = Frame {
                seq: r.position.wrapping_add(1),
                frame_id,
                timestamp_ns,
                missed: r.missed,
            };
        }
        Ok(good)
    }

    /// A lossy batch: item by item (each receive of a lossy subscriber moves its head
    /// as it goes), keeping an error met after the first item for the next receive.
    fn try_recv_batch_lossy(
        &mut self,
        out: &mut [u8],
        frames: &mut [Frame],
    ) -> Result<usize, LaneError> {
        let tensor = self.spec().byte_len();
        let mut received = 0;
        for k in 0..frames.len() {
            let chunk = &mut out[k * tensor..(k + 1) * tensor];
            match self.try_recv(chunk) {
                Ok(frame) => {
                    frames[k] = frame;
                    received += 1;
                }
                Err(LaneError::Empty) => break,
                Err(e) if received == 0 => return Err(e),
                Err(e) => {
                    self.pending = Some(e);
                    break;
                }
            }
        }
        if received == 0 {
            return Err(LaneError::Empty);
        }
        Ok(received)
    }
}
