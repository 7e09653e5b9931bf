//! Sequential reference of the N-slot seqlock register ([`tensorlane_core::Seqlock`]).
//!
//! # What this model guarantees
//! It is the register as one thread sees it when it performs every write and read
//! itself, answering with the core's own types ([`ReadInfo`], [`ReadError`],
//! [`WriteError`]):
//! - Writes get sequences `1, 2, 3, ...` in order. A value longer than the slot is
//!   refused with [`WriteError::TooLarge`] and consumes no sequence.
//! - A new writer (after the previous one dropped its role, or by takeover) continues
//!   after the last published sequence: the model has a single sequence counter, so a
//!   writer change is invisible to it.
//! - A read returns the latest value and its sequence; [`ReadError::Empty`] before the
//!   first write (for `read` and `read_new` alike). `read_new` returns
//!   [`ReadError::NotNew`] when the latest sequence is the one this reader returned
//!   last.
//! - `missed` counts the writes the reader skipped since the previous value it
//!   returned: `0` on its first value, otherwise `seq - last - 1`, and `0` when `read`
//!   returns the same value again (`seq == last`).
//! - A buffer shorter than the value gives [`ReadError::BufferTooSmall`] with the
//!   length needed, and leaves the reader's state unchanged.
//!
//! The slot count `N` is invisible to a single thread: it only decides how often a
//! racing reader must retry, so the model never reports [`ReadError::Stalled`] (nor
//! [`ReadError::Corrupt`], which no correct writer causes).

use tensorlane_core::{ReadError, ReadInfo, SeqlockGeometry, WriteError};

/// The register: the latest value and its sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterModel {
    slot_bytes: usize,
    published: u64,
    value: Vec<u8>,
}

impl RegisterModel {
    /// An empty register with the slot size of `geometry`.
    pub fn new(geometry: SeqlockGeometry) -> Self {
        RegisterModel {
            slot_bytes: geometry.slot_bytes(),
            published: 0,
            value: Vec::new(),
        }
    }

    /// Payload bytes per slot: the longest value a write accepts.
    pub fn slot_bytes(&self) -> usize {
        self.slot_bytes
    }

    /// Sequence of the last write (0 before the first).
    pub fn published(&self) -> u64 {
        self.published
    }

    /// Sequence the next successful write gets.
    pub fn next_seq(&self) -> u64 {
        self.published + 1
    }

    /// The latest value and its sequence, if anything was written.
    pub fn latest(&self) -> Option<(u64, &[u8])> {
        (self.published > 0).then_some((self.published, self.value.as_slice()))
    }

    /// Writes `value` and returns its sequence.
    pub fn write(&mut self, value: &[u8]) -> Result<u64, WriteError> {
        if value.len() > self.slot_bytes {
            return Err(WriteError::TooLarge {
                len: value.len(),
                max: self.slot_bytes,
            });
        }
        self.published += 1;
        self.value.clear();
        self.value.extend_from_slice(value);
        Ok(self.published)
    }

    /// A reader that has returned nothing yet.
    pub fn reader(&self) -> RegisterReaderModel {
        RegisterReaderModel::default()
    }
}

/// One reader's state: the sequence of the last value it returned.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegisterReaderModel {
    last: u64,
}

impl RegisterReaderModel {
    /// Sequence of the last value returned (0 if none).
    pub fn last_seq(&self) -> u64 {
        self.last
    }

    /// The latest value of `register`, read into a buffer of `buf_len` bytes.
    pub fn read<'a>(
        &mut self,
        register: &'a RegisterModel,
        buf_len: usize,
    ) -> Result<(ReadInfo, &'a [u8]), ReadError> {
        self.read_inner(register, buf_len, false)
    }

    /// Like [`read`](Self::read), but [`ReadError::NotNew`] instead of the value this
    /// reader returned last.
    pub fn read_new<'a>(
        &mut self,
        register: &'a RegisterModel,
        buf_len: usize,
    ) -> Result<(ReadInfo, &'a [u8]), ReadError> {
        self.read_inner(register, buf_len, true)
    }

    fn read_inner<'a>(
        &mut self,
        register: &'a RegisterModel,
        buf_len: usize,
        only_new: bool,
    ) -> Result<(ReadInfo, &'a [u8]), ReadError> {
        let Some((seq, value)) = register.latest() else {
            return Err(ReadError::Empty);
        };
        if only_new && seq == self.last {
            return Err(ReadError::NotNew);
        }
        if value.len() > buf_len {
            return Err(ReadError::BufferTooSmall {
                needed: value.len(),
            });
        }
        let missed = if self.last == 0 || seq == self.last {
            0
        } else {
            seq - self.last - 1
        };
        self.last = seq;
        Ok((
            ReadInfo {
                seq,
                len: value.len(),
                missed,
            },
            value,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(slot_bytes: usize) -> RegisterModel {
        RegisterModel::new(SeqlockGeometry::new(2, slot_bytes).unwrap())
    }

    #[test]
    fn empty_then_latest_with_missed_counts() {
        let mut reg = model(8);
        let mut r = reg.reader();
        assert_eq!(r.read(&reg, 8), Err(ReadError::Empty));
        assert_eq!(r.read_new(&reg, 8), Err(ReadError::Empty));
        assert_eq!(reg.write(b"a"), Ok(1));
        assert_eq!(reg.write(b"bb"), Ok(2));
        let (info, value) = r.read(&reg, 8).unwrap();
        assert_eq!(
            (info.seq, info.len, info.missed, value),
            (2, 2, 0, &b"bb"[..])
        );
        // Same value again: no write missed.
        assert_eq!(r.read(&reg, 8).unwrap().0.missed, 0);
        assert_eq!(r.read_new(&reg, 8), Err(ReadError::NotNew));
        for v in [b"c", b"d", b"e"] {
            reg.write(v).unwrap();
        }
        let (info, _) = r.read_new(&reg, 8).unwrap();
        assert_eq!((info.seq, info.missed), (5, 2));
    }

    #[test]
    fn too_large_and_short_buffer_change_nothing() {
        let mut reg = model(4);
        assert_eq!(
            reg.write(b"12345"),
            Err(WriteError::TooLarge { len: 5, max: 4 })
        );
        assert_eq!(reg.next_seq(), 1);
        reg.write(b"1234").unwrap();
        let mut r = reg.reader();
        assert_eq!(
            r.read(&reg, 3),
            Err(ReadError::BufferTooSmall { needed: 4 })
        );
        assert_eq!(r.last_seq(), 0);
        assert_eq!(r.read(&reg, 4).unwrap().0.seq, 1);
    }
}
