//! A cache line of shared control state.
//!
//! `Line<T>` is `#[repr(C, align(128))]` on every target: 128 bytes covers the
//! adjacent-line prefetcher of x86_64 and the 128-byte lines of some aarch64 cores.
//! Unlike `crossbeam_utils::CachePadded`, whose alignment varies per target, the
//! alignment here is part of the binary layout (docs/LAYOUT.md) and must not change.

use core::ops::Deref;

/// Size and alignment of one line of a control block, in bytes.
pub const LINE_BYTES: usize = 128;

/// Number of 64-bit words in one line.
pub const LINE_WORDS: usize = LINE_BYTES / 8;

/// A value alone on its own 128-byte line.
#[repr(C, align(128))]
#[derive(Debug, Default)]
pub struct Line<T>(pub T);

impl<T> Deref for Line<T> {
    type Target = T;
    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}

const _: () = assert!(core::mem::align_of::<Line<u64>>() == LINE_BYTES);
const _: () = assert!(core::mem::size_of::<Line<u64>>() == LINE_BYTES);
