//! The string copy against the word loop: the same bytes for every length, alignment
//! and offset (on targets without the string copy both sides are the word loop).

use crate::copy::{
    copy_kind, load_word_loop, store_word_loop, FAST_COPY, FAST_COPY_MIN_BYTES,
    STRING_COPY_MIN_BYTES,
};
use crate::slot::{load_bytes, store_bytes};
use crate::sync::{AtomicU64, Ordering};
use proptest::prelude::*;
use std::vec::Vec;

fn words(n: usize, fill: u64) -> Vec<AtomicU64> {
    (0..n).map(|_| AtomicU64::new(fill)).collect()
}

fn snapshot(words: &[AtomicU64]) -> Vec<u64> {
    words.iter().map(|w| w.load(Ordering::Relaxed)).collect()
}

/// The reference: `store_bytes` as the word loop alone does it.
fn store_reference(words: &[AtomicU64], src: &[u8]) {
    let whole = (src.len() / 8).min(words.len());
    store_word_loop(&words[..whole], &src[..whole * 8]);
    let rest = &src[whole * 8..];
    if let (false, Some(word)) = (rest.is_empty(), words.get(whole)) {
        let mut bytes = [0u8; 8];
        let n = rest.len().min(8);
        bytes[..n].copy_from_slice(&rest[..n]);
        word.store(u64::from_le_bytes(bytes), Ordering::Relaxed);
    }
}

/// The reference: `load_bytes` as the word loop alone does it.
fn load_reference(words: &[AtomicU64], dst: &mut [u8]) {
    let whole = (dst.len() / 8).min(words.len());
    let (head, rest) = dst.split_at_mut(whole * 8);
    load_word_loop(&words[..whole], head);
    if let (false, Some(word)) = (rest.is_empty(), words.get(whole)) {
        let bytes = word.load(Ordering::Relaxed).to_le_bytes();
        let n = rest.len().min(8);
        rest[..n].copy_from_slice(&bytes[..n]);
    }
}

/// Lengths around each switch of copy, and others.
fn length() -> impl Strategy<Value = usize> {
    prop_oneof![
        0usize..64,
        (FAST_COPY_MIN_BYTES - 16)..(FAST_COPY_MIN_BYTES + 300),
        0usize..5000,
        (STRING_COPY_MIN_BYTES - 40)..(STRING_COPY_MIN_BYTES + 40),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Stores: the words after `store_bytes` equal the word loop's, for a source at any
    /// alignment (`skew`), any length, into a slot with spare words or too few.
    #[test]
    fn stores_match_the_word_loop(len in length(), skew in 0usize..16, spare in 0usize..3,
                                  short in any::<bool>(), seed in any::<u64>()) {
        let backing: Vec<u8> = (0..len + skew)
            .map(|i| (seed.wrapping_mul(31).wrapping_add(i as u64 * 7919) >> 3) as u8)
            .collect();
        let src = &backing[skew..];
        let n = if short { len / 8 / 2 } else { len.div_ceil(8) + spare };
        let (fast, reference) = (words(n, u64::MAX), words(n, u64::MAX));
        store_bytes(&fast, src);
        store_reference(&reference, src);
        prop_assert_eq!(snapshot(&fast), snapshot(&reference));
    }

    /// Loads: the bytes `load_bytes` writes equal the word loop's, into a destination at
    /// any alignment, from words with spare room or too few (bytes past them untouched).
    #[test]
    fn loads_match_the_word_loop(len in length(), skew in 0usize..16, spare in 0usize..3,
                                 short in any::<bool>(), seed in any::<u64>()) {
        let n = if short { len / 8 / 2 } else { len.div_ceil(8) + spare };
        let shared: Vec<AtomicU64> = (0..n)
            .map(|i| AtomicU64::new(seed.rotate_left(i as u32).wrapping_mul(0x9e37_79b9_7f4a_7c15)))
            .collect();
        let mut fast = std::vec![0xa5u8; len + skew];
        let mut reference = fast.clone();
        load_bytes(&shared, &mut fast[skew..]);
        load_reference(&shared, &mut reference[skew..]);
        prop_assert_eq!(fast, reference);
    }
}

/// The copies the module doc describes are the ones compiled here; says loudly when
/// this machine leaves the AVX loop untested.
#[test]
fn the_fast_copy_is_compiled_where_claimed() {
    assert_eq!(
        FAST_COPY,
        cfg!(any(
            target_arch = "x86_64",
            all(target_arch = "aarch64", target_feature = "neon")
        ))
    );
    assert_eq!(copy_kind(FAST_COPY_MIN_BYTES - 8), "word loop");
    if FAST_COPY {
        if cfg!(target_arch = "aarch64") {
            assert_eq!(copy_kind(STRING_COPY_MIN_BYTES), "neon");
        } else if copy_kind(FAST_COPY_MIN_BYTES) != "avx" {
            std::eprintln!("SKIPPED: no AVX on this machine; the AVX loop is not tested here");
        } else {
            assert_eq!(copy_kind(STRING_COPY_MIN_BYTES), "rep movsb");
        }
    }
}

/// The AVX loop is chosen exactly where the CPU and the OS support AVX, as the
/// standard library's own detection (CPUID and XGETBV) says, on the first call and on
/// the cached ones; `rep movsb` takes the long copies either way.
#[cfg(target_arch = "x86_64")]
#[test]
fn the_avx_loop_is_chosen_exactly_where_avx_is_usable() {
    let avx = std::is_x86_feature_detected!("avx");
    for _ in 0..3 {
        let expected = if avx { "avx" } else { "word loop" };
        assert_eq!(copy_kind(FAST_COPY_MIN_BYTES), expected);
        assert_eq!(copy_kind(STRING_COPY_MIN_BYTES - 8), expected);
        assert_eq!(copy_kind(STRING_COPY_MIN_BYTES), "rep movsb");
    }
}
