//! Payload copies between the shared words and a caller's bytes, at memory speed.
//!
//! [`crate::store_bytes`] and [`crate::load_bytes`] copy whole words through
//! `store_words` and `load_words`, and the last, partial word with a relaxed atomic
//! store or load. The whole-word copy has three forms:
//!
//! - **the word loop**: one relaxed `AtomicU64` store or load per word. It is what the
//!   Rust memory model describes exactly (DESIGN section 3): a reader racing a writer is
//!   never a data race, and the stamps' fences order the words. Miri, loom and shuttle
//!   run it, and every target without the fast copy uses it.
//! - **the fast copy** (x86_64 outside the checkers): inline assembly that moves whole
//!   vectors. From [`FAST_COPY_MIN_BYTES`] to [`STRING_COPY_MIN_BYTES`], a loop of
//!   32-byte AVX loads and stores (where the CPU and the OS support AVX; elsewhere the
//!   word loop); from [`STRING_COPY_MIN_BYTES`] on, one `rep movsb` between fences,
//!   which beats any loop on copies beyond the caches. Relaxed atomic word loops are
//!   never vectorised, so the word loop moves 8 bytes per instruction where these move
//!   32 or whole lines: on 40 KB to 4 MiB tensors that is the difference between half
//!   and all of `memcpy`'s speed (benches/README.md).
//! - **the NEON loop** (aarch64 with NEON, outside the checkers, from
//!   [`FAST_COPY_MIN_BYTES`]): `ldp`/`stp` of 128-bit registers, 64 bytes an
//!   iteration.
//!
//! # Why the fast copy is sound
//!
//! The Rust reference's rules for inline assembly make the block a black box
//! (`asm.rules.black-box`: the compiler may assume nothing about the instructions,
//! only the interface) that may read and write exactly the memory an FFI function
//! could (`asm.rules.mem-same-as-ffi`): here the payload words, reached through
//! `AtomicU64::as_ptr` (interior mutability: writing through a shared reference to an
//! atomic is allowed), and the caller's buffer, borrowed shared (source) or unique
//! (destination) for the call. The block's contract with the rest of the program is
//! the word loop's: it writes the words (or reads them) while other threads or
//! processes may load (or store) them with atomic operations, and the algorithm
//! orders it with the fences it already has around the loop.
//!
//! The compiler cannot see the block's accesses, so it can neither reorder them
//! across the atomic operations and fences around the block (a block without `nomem`
//! may access any memory it can reach, so it is ordered like an opaque function call)
//! nor derive anything from a race. What a racing access does is then defined by the
//! hardware: on x86_64 a load racing a store returns, byte by byte, either the old or
//! the new value. That is the one difference from the word loop: a copy racing a
//! writer can be torn *inside* a word, a value no relaxed 8-byte load returns. The
//! algorithms never use a copy their re-check calls torn (seqlock and broadcast
//! stamps) and never race a copy at all on a lossless hand-over (SPSC, lossless
//! broadcast): the only place such bytes can show is the caller's buffer after a read
//! that failed, whose contents the readers already document as unspecified.
//!
//! Ordering at the instruction level: x86_64 orders ordinary loads with loads, stores
//! with stores and loads with later stores (TSO), which is what the fences around the
//! word loop compile to (Acquire and Release fences emit no instruction there). The
//! AVX loop is made of ordinary loads and stores (`vmovdqu`), so the same order holds
//! for it. Fast-string operations are allowed weaker orders (Intel SDM vol. 3,
//! "Fast-String Operation and Out-of-Order Stores": the stores of one string operation
//! may be performed out of order among themselves). So the block brackets `rep movsb`
//! with fences that restore the order the fences around it promise: `sfence` before
//! and after a store (the payload's stores complete after the writer's earlier stores,
//! such as an odd stamp, and before its later ones, such as the even stamp or a tail),
//! and `lfence` before and after a load (the payload's loads are performed after the
//! reader's earlier loads, such as a stamp or a tail, and before its later loads and
//! stores, such as the stamp re-check or a head). `rep movsb` and the fences cost tens
//! of cycles to start, which is why it only takes the long copies.
//!
//! On aarch64 the relaxed word loop compiles to plain `ldr`/`str`, ordered against the
//! stamps by the instructions the algorithms' orderings emit: `ldar` for an Acquire
//! load and `stlr` for a Release store (which order every later, or earlier, access
//! of the thread), `dmb ishld` for an Acquire fence (earlier loads before later
//! accesses) and `dmb ish` for a Release fence. The NEON loop's `ldp`/`stp` are
//! ordinary loads and stores too, so the same instructions order them; byte for byte a
//! racing load returns the old or the new value, as on x86_64.
//!
//! Tests: `copy_tests` checks that the fast copies and the word loop give the same
//! bytes for every length and alignment (proptest; on aarch64 under `qemu-aarch64`,
//! see VERIFICATION.md), and `shm/tests/processes.rs` races
//! fast-copy writers (4 KiB to 1 MiB tensors) against readers in other processes and
//! requires every accepted value to be whole.

use crate::sync::{AtomicU64, Ordering};

/// Copies of at least this many bytes use the AVX loop where it exists; shorter ones use
/// the word loop.
pub const FAST_COPY_MIN_BYTES: usize = 256;

/// Copies of at least this many bytes use `rep movsb`.
pub const STRING_COPY_MIN_BYTES: usize = 1 << 20;

/// Whether a fast copy is compiled in (x86_64, or aarch64 with NEON; outside Miri, loom
/// and shuttle). On x86_64 the AVX loop also needs the CPU and the OS to support AVX
/// ([`copy_kind`] says which copy a size gets).
pub const FAST_COPY: bool = cfg!(any(
    all(
        target_arch = "x86_64",
        not(miri),
        not(any(feature = "loom", feature = "shuttle"))
    ),
    all(
        target_arch = "aarch64",
        target_feature = "neon",
        not(miri),
        not(any(feature = "loom", feature = "shuttle"))
    )
));

/// Which copy a payload of `bytes` bytes gets on this machine: `"word loop"`, `"avx"`,
/// `"rep movsb"` or `"neon"` (for benchmarks and reports).
pub fn copy_kind(bytes: usize) -> &'static str {
    #[cfg(all(
        target_arch = "x86_64",
        not(miri),
        not(any(feature = "loom", feature = "shuttle"))
    ))]
    {
        if bytes >= STRING_COPY_MIN_BYTES {
            return "rep movsb";
        }
        if bytes >= FAST_COPY_MIN_BYTES && x86::has_avx() {
            return "avx";
        }
    }
    #[cfg(all(
        target_arch = "aarch64",
        target_feature = "neon",
        not(miri),
        not(any(feature = "loom", feature = "shuttle"))
    ))]
    if bytes >= FAST_COPY_MIN_BYTES {
        return "neon";
    }
    let _ = bytes;
    "word loop"
}

/// Stores `src` (a whole number of words, `src.len() == 8 * words.len()`) into
/// `words`, little-endian.
#[inline]
pub(crate) fn store_words(words: &[AtomicU64], src: &[u8]) {
    debug_assert_eq!(src.len(), words.len() * 8);
    #[cfg(all(
        target_arch = "x86_64",
        not(miri),
        not(any(feature = "loom", feature = "shuttle"))
    ))]
    let src = {
        let dst = words.as_ptr().cast::<u8>().cast_mut();
        // SAFETY: `dst` and `src` are valid for `src.len()` bytes (the slices' own
        // bounds and the length relation above); they do not overlap (`src` is bytes
        // the caller borrows, the words are atomics elsewhere); writing the words
        // through `as_ptr` is allowed (interior mutability). The memory-model
        // argument is the module doc's.
        let done = unsafe { x86::copy(src.as_ptr(), dst, src.len(), x86::Direction::Store) };
        &src[done..]
    };
    #[cfg(all(
        target_arch = "aarch64",
        target_feature = "neon",
        not(miri),
        not(any(feature = "loom", feature = "shuttle"))
    ))]
    let src = {
        let dst = words.as_ptr().cast::<u8>().cast_mut();
        // SAFETY: as in the x86_64 block above.
        let done = unsafe { arm::copy(src.as_ptr(), dst, src.len()) };
        &src[done..]
    };
    let words = &words[words.len() - src.len() / 8..];
    store_word_loop(words, src);
}

/// Loads `dst.len()` bytes (a whole number of words, `dst.len() == 8 * words.len()`)
/// from `words`, little-endian.
#[inline]
pub(crate) fn load_words(words: &[AtomicU64], dst: &mut [u8]) {
    debug_assert_eq!(dst.len(), words.len() * 8);
    #[cfg(all(
        target_arch = "x86_64",
        not(miri),
        not(any(feature = "loom", feature = "shuttle"))
    ))]
    let dst = {
        let src = words.as_ptr().cast::<u8>();
        // SAFETY: as in `store_words`, reading the words instead of writing them
        // (allowed on read-only mappings too); `dst` is borrowed unique for the call.
        let done = unsafe { x86::copy(src, dst.as_mut_ptr(), dst.len(), x86::Direction::Load) };
        &mut dst[done..]
    };
    #[cfg(all(
        target_arch = "aarch64",
        target_feature = "neon",
        not(miri),
        not(any(feature = "loom", feature = "shuttle"))
    ))]
    let dst = {
        let src = words.as_ptr().cast::<u8>();
        // SAFETY: as in the x86_64 block above.
        let done = unsafe { arm::copy(src, dst.as_mut_ptr(), dst.len()) };
        &mut dst[done..]
    };
    let words = &words[words.len() - dst.len() / 8..];
    load_word_loop(words, dst);
}

/// The word loop: one relaxed store per word.
#[inline]
pub(crate) fn store_word_loop(words: &[AtomicU64], src: &[u8]) {
    for (chunk, word) in src.chunks_exact(8).zip(words) {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        word.store(u64::from_le_bytes(bytes), Ordering::Relaxed);
    }
}

/// The word loop: one relaxed load per word.
#[inline]
pub(crate) fn load_word_loop(words: &[AtomicU64], dst: &mut [u8]) {
    for (chunk, word) in dst.chunks_exact_mut(8).zip(words) {
        chunk.copy_from_slice(&word.load(Ordering::Relaxed).to_le_bytes());
    }
}

/// The fast copies (x86_64): the AVX loop and `rep movsb` between fences.
#[cfg(all(
    target_arch = "x86_64",
    not(miri),
    not(any(feature = "loom", feature = "shuttle"))
))]
mod x86 {
    use super::{FAST_COPY_MIN_BYTES, STRING_COPY_MIN_BYTES};
    use core::arch::asm;
    use core::arch::x86_64::{__cpuid, _xgetbv, CpuidResult};
    use core::sync::atomic::{AtomicU8, Ordering};

    /// Which side of the copy the shared words are on: it picks the fences of
    /// `rep movsb` (the AVX loop needs none).
    #[derive(Clone, Copy, PartialEq, Eq)]
    pub(super) enum Direction {
        /// Bytes into the shared words (a writer).
        Store,
        /// Shared words into bytes (a reader).
        Load,
    }

    /// AVX support: 0 not checked yet, 1 absent, 2 present.
    static AVX: AtomicU8 = AtomicU8::new(0);

    /// Whether the CPU has AVX and the OS saves its registers (CPUID and XGETBV).
    pub(super) fn has_avx() -> bool {
        match AVX.load(Ordering::Relaxed) {
            0 => {
                let present = detect_avx();
                AVX.store(if present { 2 } else { 1 }, Ordering::Relaxed);
                present
            }
            known => known == 2,
        }
    }

    fn detect_avx() -> bool {
        // SAFETY: CPUID leaf 1 exists on every x86_64 CPU. (The intrinsic is safe on
        // newer compilers; the block keeps the minimum supported one building.)
        #[allow(unused_unsafe)]
        let CpuidResult { ecx, .. } = unsafe { __cpuid(1) };
        let (osxsave, avx) = (ecx & (1 << 27) != 0, ecx & (1 << 28) != 0);
        if !(osxsave && avx) {
            return false;
        }
        // SAFETY: OSXSAVE is set, so XGETBV is enabled; XCR0 bits 1 and 2 say the OS
        // saves the SSE and AVX registers.
        let xcr0 = unsafe { xgetbv0() };
        xcr0 & 0b110 == 0b110
    }

    /// # Safety
    /// The CPU supports XGETBV and the OS enabled it (CPUID.1:ECX.OSXSAVE).
    #[target_feature(enable = "xsave")]
    unsafe fn xgetbv0() -> u64 {
        // SAFETY: the caller's contract.
        unsafe { _xgetbv(0) }
    }

    /// Copies the longest prefix of `len` bytes from `src` to `dst` that a fast copy
    /// takes, and returns its length (a multiple of 8; 0 when the word loop should do
    /// all of it).
    ///
    /// # Safety
    /// `src` is valid for reads and `dst` for writes of `len` bytes, and they do not
    /// overlap.
    #[inline]
    pub(super) unsafe fn copy(src: *const u8, dst: *mut u8, len: usize, side: Direction) -> usize {
        if len >= STRING_COPY_MIN_BYTES {
            // SAFETY: the caller's contract.
            unsafe { string(src, dst, len, side) };
            return len;
        }
        if len < FAST_COPY_MIN_BYTES || !has_avx() {
            return 0;
        }
        let vectors = len / 32;
        // SAFETY: the caller's contract covers `vectors * 32 <= len` bytes; AVX is
        // present (checked above).
        unsafe { avx_loop(src, dst, vectors) };
        vectors * 32
    }

    /// `rep movsb` of `len` bytes, between `sfence`s (a store into the words) or
    /// `lfence`s (a load from them).
    ///
    /// # Safety
    /// As [`copy`].
    #[inline]
    unsafe fn string(src: *const u8, dst: *mut u8, len: usize, side: Direction) {
        // SAFETY: the caller's contract; `rep movsb` copies exactly `rcx` bytes from
        // `rsi` to `rdi` upwards (the direction flag is clear on entry,
        // `asm.rules.x86-df`, and the block leaves it so).
        unsafe {
            match side {
                Direction::Store => asm!(
                    "sfence",
                    "rep movsb",
                    "sfence",
                    inout("rcx") len => _,
                    inout("rsi") src => _,
                    inout("rdi") dst => _,
                    options(nostack, preserves_flags),
                ),
                Direction::Load => asm!(
                    "lfence",
                    "rep movsb",
                    "lfence",
                    inout("rcx") len => _,
                    inout("rsi") src => _,
                    inout("rdi") dst => _,
                    options(nostack, preserves_flags),
                ),
            }
        }
    }

    /// Copies `vectors` 32-byte vectors with unaligned AVX loads and stores, four at a
    /// time, then one at a time.
    ///
    /// # Safety
    /// As [`copy`] for `32 * vectors` bytes; the CPU and the OS support AVX.
    #[target_feature(enable = "avx")]
    unsafe fn avx_loop(src: *const u8, dst: *mut u8, vectors: usize) {
        // SAFETY: the caller's contract; the loop reads `[src, src + 32 * vectors)`
        // and writes `[dst, dst + 32 * vectors)`, nothing else, and clears the upper
        // halves of the vector registers it used before returning (`vzeroupper`).
        unsafe {
            asm!(
                "test {blocks}, {blocks}",
                "jz 3f",
                "2:",
                "vmovdqu ymm0, [{src}]",
                "vmovdqu ymm1, [{src} + 32]",
                "vmovdqu ymm2, [{src} + 64]",
                "vmovdqu ymm3, [{src} + 96]",
                "vmovdqu [{dst}], ymm0",
                "vmovdqu [{dst} + 32], ymm1",
                "vmovdqu [{dst} + 64], ymm2",
                "vmovdqu [{dst} + 96], ymm3",
                "add {src}, 128",
                "add {dst}, 128",
                "dec {blocks}",
                "jnz 2b",
                "3:",
                "test {rest}, {rest}",
                "jz 5f",
                "4:",
                "vmovdqu ymm0, [{src}]",
                "vmovdqu [{dst}], ymm0",
                "add {src}, 32",
                "add {dst}, 32",
                "dec {rest}",
                "jnz 4b",
                "5:",
                "vzeroupper",
                blocks = inout(reg) vectors / 4 => _,
                rest = inout(reg) vectors % 4 => _,
                src = inout(reg) src => _,
                dst = inout(reg) dst => _,
                out("ymm0") _,
                out("ymm1") _,
                out("ymm2") _,
                out("ymm3") _,
                options(nostack),
            );
        }
    }
}

/// The fast copy (aarch64 with NEON): a loop of 128-bit load and store pairs.
#[cfg(all(
    target_arch = "aarch64",
    target_feature = "neon",
    not(miri),
    not(any(feature = "loom", feature = "shuttle"))
))]
mod arm {
    use super::FAST_COPY_MIN_BYTES;
    use core::arch::asm;

    /// Copies the longest prefix of `len` bytes from `src` to `dst` made of whole
    /// 64-byte blocks, if `len` is at least [`FAST_COPY_MIN_BYTES`], and returns its
    /// length (0 when the word loop should do all of it).
    ///
    /// # Safety
    /// `src` is valid for reads and `dst` for writes of `len` bytes, and they do not
    /// overlap.
    #[inline]
    pub(super) unsafe fn copy(src: *const u8, dst: *mut u8, len: usize) -> usize {
        if len < FAST_COPY_MIN_BYTES {
            return 0;
        }
        let blocks = len / 64;
        // SAFETY: the caller's contract covers `64 * blocks <= len` bytes, and
        // `blocks >= 1`; the loop reads `[src, src + 64 * blocks)` and writes
        // `[dst, dst + 64 * blocks)` with ordinary loads and stores (`ldp`/`stp` of
        // q registers), nothing else. NEON is enabled for this target (the cfg).
        unsafe {
            asm!(
                "2:",
                "ldp q0, q1, [{src}], #32",
                "ldp q2, q3, [{src}], #32",
                "stp q0, q1, [{dst}], #32",
                "stp q2, q3, [{dst}], #32",
                "subs {blocks}, {blocks}, #1",
                "b.ne 2b",
                src = inout(reg) src => _,
                dst = inout(reg) dst => _,
                blocks = inout(reg) blocks => _,
                out("v0") _,
                out("v1") _,
                out("v2") _,
                out("v3") _,
                options(nostack),
            );
        }
        blocks * 64
    }
}
