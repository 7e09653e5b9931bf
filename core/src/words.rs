//! Load-only views of shared words.
//!
//! A `&[AtomicU64]` lets its holder store, and a store is not always allowed: while a
//! byte view of the same words is alive (an SPSC peek), a store would be undefined
//! behaviour for the holder of the bytes, and on pages mapped read-only (a GPU lane's
//! events, read by another process) it is a `SIGSEGV`. [`ReadWords`] is the view the
//! crates hand out in those places: it can only load.
//!
//! # Invariant
//! Every access made through a [`ReadWords`] is a `Relaxed` load of one aligned 8-byte
//! word. The Rust reference allows exactly those on read-only memory (the `core::sync::
//! atomic` module docs, "Atomic accesses to read-only memory"), and they are never a
//! data race with a concurrent atomic store. Ordering them against a writer is the
//! caller's business: an `Acquire` fence after the loads, paired with the writer's
//! Release.

use crate::slot::load_bytes;
use crate::sync::{AtomicU64, Ordering};

/// Words that can be loaded, never stored: relaxed 8-byte loads only.
///
/// ```
/// # #[cfg(not(any(feature = "loom", feature = "shuttle")))] {
/// use tensorlane_core::{AtomicU64, ReadWords};
/// let words = [AtomicU64::new(0x0201), AtomicU64::new(3)];
/// let view = ReadWords::new(&words);
/// assert_eq!(view.len(), 2);
/// assert_eq!(view.load(1), Some(3));
/// let mut bytes = [0u8; 3];
/// view.load_bytes(&mut bytes);
/// assert_eq!(bytes, [1, 2, 0]);
/// # }
/// ```
///
/// It does not lend its atomics out, so there is no way to store through it:
/// ```compile_fail,E0608
/// use tensorlane_core::{AtomicU64, ReadWords};
/// let words = [AtomicU64::new(0)];
/// let view = ReadWords::new(&words);
/// view[0].store(1, core::sync::atomic::Ordering::Relaxed);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct ReadWords<'a> {
    words: &'a [AtomicU64],
}

impl<'a> ReadWords<'a> {
    /// A load-only view of `words`.
    #[inline]
    pub fn new(words: &'a [AtomicU64]) -> Self {
        ReadWords { words }
    }

    /// Number of words.
    #[inline]
    pub fn len(&self) -> usize {
        self.words.len()
    }

    /// Whether there are no words.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.words.is_empty()
    }

    /// Word `index` (relaxed), or `None` past the end.
    #[inline]
    pub fn load(&self, index: usize) -> Option<u64> {
        self.words.get(index).map(|w| w.load(Ordering::Relaxed))
    }

    /// Loads `dst.len()` bytes from the words (little-endian), relaxed; bytes of `dst`
    /// beyond `len() * 8` are left as they are (see [`load_bytes`]).
    #[inline]
    pub fn load_bytes(&self, dst: &mut [u8]) {
        load_bytes(self.words, dst);
    }

    /// Words `range` of this view, or `None` if it does not lie inside it.
    #[inline]
    pub fn slice(&self, range: core::ops::Range<usize>) -> Option<ReadWords<'a>> {
        self.words.get(range).map(ReadWords::new)
    }

    /// Every word, loaded in order (relaxed).
    pub fn iter(&self) -> impl Iterator<Item = u64> + 'a {
        self.words.iter().map(|w| w.load(Ordering::Relaxed))
    }
}
