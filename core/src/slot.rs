//! The slot layout shared by all three structures, and payload copies.
//!
//! A slot is `stride` words, `stride` a multiple of 16 words (one 128-byte line):
//!
//! | word | name    | meaning                                                   |
//! |------|---------|-----------------------------------------------------------|
//! | 0    | stamp   | seqlock stamp (register, broadcast); unused (0) in SPSC    |
//! | 1    | length  | payload length in bytes of the value in the slot           |
//! | 2..  | payload | `ceil(slot_bytes / 8)` words, little-endian bytes          |
//!
//! Payload words are accessed only with relaxed atomic loads and stores, ordered by
//! the fences of the algorithm that owns the slot, so that a reader racing a writer
//! is never a data race in the Rust memory model (Boehm 2012). Bytes are packed
//! little-endian into words, so the layout is the same on every host.

use crate::copy;
use crate::line::LINE_WORDS;
use crate::sync::{AtomicU64, Ordering};

/// Index of the stamp word inside a slot.
pub const STAMP_WORD: usize = 0;
/// Index of the length word inside a slot.
pub const LENGTH_WORD: usize = 1;
/// Index of the first payload word inside a slot.
pub const PAYLOAD_WORD: usize = 2;

/// Largest slot payload the geometry accepts: 1 TiB on 64-bit targets, 256 MiB on
/// 32-bit ones. Keeps every offset far from overflowing `usize` while allowing any
/// tensor the target can address (the geometry still checks every product).
#[cfg(target_pointer_width = "64")]
pub const MAX_SLOT_BYTES: usize = 1 << 40;
/// Largest slot payload the geometry accepts: 1 TiB on 64-bit targets, 256 MiB on
/// 32-bit ones. Keeps every offset far from overflowing `usize` while allowing any
/// tensor the target can address (the geometry still checks every product).
#[cfg(not(target_pointer_width = "64"))]
pub const MAX_SLOT_BYTES: usize = 1 << 28;

/// Words in one slot of `slot_bytes` payload bytes, rounded up to whole lines.
/// `None` if `slot_bytes` exceeds [`MAX_SLOT_BYTES`].
pub(crate) const fn slot_stride(slot_bytes: usize) -> Option<usize> {
    if slot_bytes > MAX_SLOT_BYTES {
        return None;
    }
    let words = PAYLOAD_WORD + slot_bytes.div_ceil(8);
    Some(words.div_ceil(LINE_WORDS) * LINE_WORDS)
}

/// One slot: a window of `stride` words of the body.
#[derive(Clone, Copy)]
pub(crate) struct Slot<'a> {
    words: &'a [AtomicU64],
}

impl<'a> Slot<'a> {
    /// Slot `index` of a slot array starting at word `base`. The caller guarantees,
    /// through geometry validated against the body length, that it is in bounds;
    /// `index` must already be masked or reduced with local geometry.
    #[inline]
    pub(crate) fn at(body: &'a [AtomicU64], base: usize, stride: usize, index: usize) -> Self {
        let start = base + index * stride;
        Slot {
            words: &body[start..start + stride],
        }
    }

    #[inline]
    pub(crate) fn stamp(&self) -> &'a AtomicU64 {
        &self.words[STAMP_WORD]
    }

    #[inline]
    pub(crate) fn length(&self) -> &'a AtomicU64 {
        &self.words[LENGTH_WORD]
    }

    /// The payload words (the whole payload area of the slot).
    #[inline]
    pub(crate) fn payload(&self) -> &'a [AtomicU64] {
        &self.words[PAYLOAD_WORD..]
    }
}

/// Stores `src` into the first `ceil(src.len() / 8)` words (little-endian), as relaxed
/// atomic stores would; the unused bytes of the last word are zero. Bytes beyond
/// `words.len() * 8` are not stored. This is how payload is written to memory other
/// threads or processes may read concurrently (DESIGN §3): never a plain or volatile
/// store. Long copies run at memory speed (see the `copy` module for how, and why that
/// is sound).
#[inline]
pub fn store_bytes(words: &[AtomicU64], src: &[u8]) {
    let whole = (src.len() / 8).min(words.len());
    copy::store_words(&words[..whole], &src[..whole * 8]);
    let rest = &src[whole * 8..];
    if !rest.is_empty() {
        if let Some(word) = words.get(whole) {
            let mut bytes = [0u8; 8];
            let n = rest.len().min(8);
            bytes[..n].copy_from_slice(&rest[..n]);
            word.store(u64::from_le_bytes(bytes), Ordering::Relaxed);
        }
    }
}

/// Loads `dst.len()` bytes from the words (little-endian), as relaxed atomic loads
/// would; bytes of `dst` beyond `words.len() * 8` are left as they are. The reading
/// counterpart of [`store_bytes`].
#[inline]
pub fn load_bytes(words: &[AtomicU64], dst: &mut [u8]) {
    let whole = (dst.len() / 8).min(words.len());
    let (head, rest) = dst.split_at_mut(whole * 8);
    copy::load_words(&words[..whole], head);
    if !rest.is_empty() {
        if let Some(word) = words.get(whole) {
            let bytes = word.load(Ordering::Relaxed).to_le_bytes();
            let n = rest.len().min(8);
            rest[..n].copy_from_slice(&bytes[..n]);
        }
    }
}

/// Loads `dst.len()` bytes starting at byte `offset` of the words (little-endian),
/// relaxed: [`load_bytes`] from any byte offset. Bytes of `dst` beyond the words are
/// left as they are.
#[inline]
pub(crate) fn load_bytes_at(words: &[AtomicU64], offset: usize, dst: &mut [u8]) {
    let Some(words) = words.get(offset / 8..) else {
        return;
    };
    let skip = offset % 8;
    if skip == 0 {
        load_bytes(words, dst);
        return;
    }
    let Some((first, rest)) = words.split_first() else {
        return;
    };
    let n = (8 - skip).min(dst.len());
    let bytes = first.load(Ordering::Relaxed).to_le_bytes();
    dst[..n].copy_from_slice(&bytes[skip..skip + n]);
    load_bytes(rest, &mut dst[n..]);
}

/// Total length of `parts`, checking that every part but the last is a whole number
/// of words, so that each starts on a word boundary.
///
/// # Panics
/// If a part other than the last has a length that is not a multiple of 8 (a caller
/// error, never caused by shared data).
#[inline]
pub(crate) fn parts_len<T: AsRef<[u8]>>(parts: &[T]) -> usize {
    let mut total = 0usize;
    for (i, part) in parts.iter().enumerate() {
        let len = part.as_ref().len();
        assert!(
            i + 1 == parts.len() || len % 8 == 0,
            "every part but the last must be a multiple of 8 bytes long"
        );
        total = total.saturating_add(len);
    }
    total
}

/// Stores `parts` one after the other, each from a word boundary. The caller checked
/// [`parts_len`] against the payload size.
#[inline]
pub(crate) fn store_parts(words: &[AtomicU64], parts: &[&[u8]]) {
    let mut word = 0;
    for part in parts {
        store_bytes(&words[word..], part);
        word += part.len() / 8;
    }
}

/// Loads `len` bytes into `parts`, filling each before the next. The caller checked
/// that `len` fits the parts and the payload.
#[inline]
pub(crate) fn load_parts(words: &[AtomicU64], parts: &mut [&mut [u8]], len: usize) {
    let mut word = 0;
    let mut left = len;
    for part in parts.iter_mut() {
        let n = part.len().min(left);
        load_bytes(&words[word..], &mut part[..n]);
        word += n / 8;
        left -= n;
    }
}

/// Exclusive byte views of payload words, for loans of lossless rings, where the
/// protocol excludes every concurrent access. Under the checkers, whose atomics
/// cannot be viewed as bytes, the word-backed views of `checked_view` stand in.
#[cfg(not(any(feature = "loom", feature = "shuttle")))]
pub(crate) mod bytes_view {
    use crate::sync::AtomicU64;

    /// # Safety
    /// No other thread or process may access `words` while the returned slice lives.
    #[inline]
    #[allow(clippy::mut_from_ref)] // the words are interior-mutable (atomics)
    pub(crate) unsafe fn as_bytes_mut(words: &[AtomicU64], len: usize) -> &mut [u8] {
        debug_assert!(len <= words.len() * 8);
        // SAFETY: `AtomicU64` has interior mutability, so writing through the pointer
        // from `as_ptr` is allowed; `len <= words.len() * 8` keeps the slice inside the
        // words; the caller guarantees exclusive access for the slice's lifetime.
        unsafe { core::slice::from_raw_parts_mut(words.as_ptr().cast::<u8>().cast_mut(), len) }
    }

    /// # Safety
    /// No other thread or process may write `words` while the returned slice lives.
    #[inline]
    pub(crate) unsafe fn as_bytes(words: &[AtomicU64], len: usize) -> &[u8] {
        debug_assert!(len <= words.len() * 8);
        // SAFETY: `len` bytes lie inside the words, and the caller guarantees that no
        // one writes them while the slice lives, so plain reads do not race.
        unsafe { core::slice::from_raw_parts(words.as_ptr().cast::<u8>(), len) }
    }
}

/// The loans' byte views under loom and shuttle: the same shape as the slices the real
/// build lends (they dereference to `[u8]`), backed by the payload words, so that a
/// checker sees every access the loan makes, as relaxed loads and stores.
///
/// A view loads the whole words it covers when it is made (the loan lends the slot as
/// it is) and [`LoanBytesMut`] stores them back, whole, when it is dropped, which is
/// before the loan can be committed (the view borrows the loan). So the checker sees
/// the loan's reads between the peek and its release and its writes between the loan
/// and its commit: the window in which the real build's slice may touch the slot.
#[cfg(any(feature = "loom", feature = "shuttle"))]
pub(crate) mod checked_view {
    use super::{load_bytes, store_bytes};
    use crate::sync::AtomicU64;
    use alloc::vec::Vec;

    /// A loan's bytes to fill (what `SpscLoan::bytes_mut` returns under the checkers).
    #[derive(Debug)]
    pub struct LoanBytesMut<'a> {
        words: &'a [AtomicU64],
        bytes: Vec<u8>,
        len: usize,
    }

    /// A peeked item's bytes (what `SpscPeek::bytes` returns under the checkers).
    #[derive(Debug)]
    pub struct LoanBytes<'a> {
        bytes: Vec<u8>,
        _words: core::marker::PhantomData<&'a [AtomicU64]>,
    }

    /// The whole words holding the first `len` bytes, loaded.
    fn load_words(words: &[AtomicU64], len: usize) -> (&[AtomicU64], Vec<u8>) {
        let words = &words[..len.div_ceil(8).min(words.len())];
        let mut bytes = alloc::vec![0u8; words.len() * 8];
        load_bytes(words, &mut bytes);
        (words, bytes)
    }

    pub(crate) fn as_bytes_mut(words: &[AtomicU64], len: usize) -> LoanBytesMut<'_> {
        let (words, bytes) = load_words(words, len);
        LoanBytesMut { words, bytes, len }
    }

    pub(crate) fn as_bytes(words: &[AtomicU64], len: usize) -> LoanBytes<'_> {
        let (_, mut bytes) = load_words(words, len);
        bytes.truncate(len);
        LoanBytes {
            bytes,
            _words: core::marker::PhantomData,
        }
    }

    impl core::ops::Deref for LoanBytesMut<'_> {
        type Target = [u8];
        fn deref(&self) -> &[u8] {
            &self.bytes[..self.len]
        }
    }

    impl core::ops::DerefMut for LoanBytesMut<'_> {
        fn deref_mut(&mut self) -> &mut [u8] {
            &mut self.bytes[..self.len]
        }
    }

    impl Drop for LoanBytesMut<'_> {
        fn drop(&mut self) {
            // Whole words: the bytes past `len` go back as they were loaded.
            store_bytes(self.words, &self.bytes);
        }
    }

    impl core::ops::Deref for LoanBytes<'_> {
        type Target = [u8];
        fn deref(&self) -> &[u8] {
            &self.bytes
        }
    }
}
