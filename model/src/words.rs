//! Bytes in payload words, little-endian, as the core lays them out: the one copy of
//! this conversion that harnesses, canaries and fuzz targets share.

use core::sync::atomic::Ordering;
use tensorlane_core::{AtomicU64, ReadWords};

/// Stores `bytes` into the first `ceil(len / 8)` words (relaxed; the last word's
/// unused bytes are zero). Bytes beyond the words are ignored.
pub fn store_le(words: &[AtomicU64], bytes: &[u8]) {
    for (word, chunk) in words.iter().zip(bytes.chunks(8)) {
        let mut le = [0u8; 8];
        le[..chunk.len()].copy_from_slice(chunk);
        word.store(u64::from_le_bytes(le), Ordering::Relaxed);
    }
}

/// Loads `buf.len()` bytes (or as many as the words hold) into `buf` (relaxed).
pub fn load_le_into(words: &[AtomicU64], buf: &mut [u8]) {
    for (word, chunk) in words.iter().zip(buf.chunks_mut(8)) {
        let n = chunk.len();
        chunk.copy_from_slice(&word.load(Ordering::Relaxed).to_le_bytes()[..n]);
    }
}

/// The first `len` bytes of a load-only view (fewer if its words hold fewer).
pub fn load_view(words: ReadWords<'_>, len: usize) -> Vec<u8> {
    let mut bytes = vec![0u8; len.min(words.len() * 8)];
    words.load_bytes(&mut bytes);
    bytes
}

#[cfg(all(test, not(any(feature = "loom", feature = "shuttle"))))]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_short_reads() {
        let words: Vec<AtomicU64> = (0..3).map(|_| AtomicU64::new(0)).collect();
        let bytes: Vec<u8> = (1..=19).collect();
        store_le(&words, &bytes);
        assert_eq!(load_view(ReadWords::new(&words), 19), bytes);
        assert_eq!(load_view(ReadWords::new(&words), 30).len(), 24);
        assert_eq!(words[2].load(Ordering::Relaxed) >> 24, 0);
    }
}
