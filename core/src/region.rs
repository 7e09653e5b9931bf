//! Where a control block and its body live.
//!
//! Every structure in this crate is a fixed `#[repr(C)]` *header* (atomics only, so
//! every bit pattern is a valid value) followed by a *body* of 64-bit atomic words
//! whose partition (slots, subscriber table) is computed from process-local geometry.
//! A [`Region`] hands out both. Nothing in a region is trusted: any value another
//! process stores there is just data, checked before it is used as an index.
//!
//! Three sources of regions:
//! - [`Parts`]: two borrowed references, for memory the caller already owns;
//! - [`HeapRegion`] (feature `alloc`, implied by the checkers): a fresh zeroed header
//!   and body on the heap, the path used under loom and shuttle;
//! - [`attach`]: the one unsafe cast from mapped bytes to a header and a body,
//!   compiled only without the checkers (their atomics have another layout).
//!
//! Any of them may be wrapped in [`Exclusive`], the caller's unsafe promise that one
//! structure alone uses the memory, which is what byte views (SPSC loans as `&mut
//! [u8]` / `&[u8]`) rest on. Without it a structure offers atomic words only, and no
//! store by anyone into any word is undefined behaviour.
//!
//! An all-zero region is a freshly initialised one for every structure here.

use crate::sync::AtomicU64;

/// Memory holding one structure's header and body.
///
/// Implementations must return the same header and the same body (same address,
/// same length) on every call: the algorithms validate the body length once, when a
/// handle is built, and rely on it afterwards.
pub trait Region {
    /// The structure's `#[repr(C)]` control block.
    type Header;
    /// The control block.
    fn header(&self) -> &Self::Header;
    /// The words after the control block (slots, subscriber table).
    fn body(&self) -> &[AtomicU64];
}

impl<R: Region + ?Sized> Region for &R {
    type Header = R::Header;
    #[inline]
    fn header(&self) -> &R::Header {
        (**self).header()
    }
    #[inline]
    fn body(&self) -> &[AtomicU64] {
        (**self).body()
    }
}

#[cfg(feature = "alloc")]
impl<R: Region + ?Sized> Region for alloc::sync::Arc<R> {
    type Header = R::Header;
    #[inline]
    fn header(&self) -> &R::Header {
        (**self).header()
    }
    #[inline]
    fn body(&self) -> &[AtomicU64] {
        (**self).body()
    }
}

/// A region whose memory only one structure touches: the unsafe promise that unlocks
/// byte views.
///
/// Every structure works over any [`Region`] through atomic words, and nothing any
/// code stores into those words (through [`Region::body`], a second structure over
/// the same body, another process) can make it misbehave beyond reporting
/// [`Corruption`](crate::Corruption). Byte views are different: the SPSC ring's
/// [`bytes_mut`](crate::SpscLoan::bytes_mut) and [`bytes`](crate::SpscPeek::bytes)
/// are plain `&mut [u8]` / `&[u8]` over slot memory, and a store into a slot while
/// such a slice lives is undefined behaviour. The ring's protocol excludes that store
/// for every access made through its handles; `Exclusive` is the caller's promise
/// that no other access exists. Only structures built on an `Exclusive` region offer
/// byte views.
///
/// Without the promise, byte views do not compile:
/// ```compile_fail,E0599
/// use tensorlane_core::{HeapRegion, Spsc, SpscGeometry, SpscHeader};
/// let geometry = SpscGeometry::new(2, 8).unwrap();
/// let region = HeapRegion::<SpscHeader>::new(geometry.body_words());
/// let ring = Spsc::new(&region, geometry).unwrap();
/// let mut producer = ring.producer(1).unwrap();
/// let mut loan = producer.loan().unwrap();
/// loan.bytes_mut()[0] = 1;
/// ```
///
/// With it:
/// ```
/// # #[cfg(not(any(feature = "loom", feature = "shuttle")))] {
/// use tensorlane_core::{Exclusive, HeapRegion, Spsc, SpscGeometry, SpscHeader};
/// let geometry = SpscGeometry::new(2, 8).unwrap();
/// let region = HeapRegion::<SpscHeader>::new(geometry.body_words());
/// // SAFETY: `region` is used by this ring only, and only through its handles.
/// let ring = Spsc::new(unsafe { Exclusive::new(&region) }, geometry).unwrap();
/// let mut producer = ring.producer(1).unwrap();
/// let mut loan = producer.loan().unwrap();
/// loan.bytes_mut()[0] = 1;
/// loan.commit(1).unwrap();
/// # }
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Exclusive<R> {
    region: R,
}

impl<R: Region> Exclusive<R> {
    /// Promises that byte views of `region` are never accessed by anyone else.
    ///
    /// # Safety
    /// While any byte view handed out by a structure built on the returned value (or
    /// a clone of it) is alive:
    /// - nothing else accesses the memory a `&mut [u8]` loan views (no read and no
    ///   write, atomic or not, except through the loan itself), and nothing writes the
    ///   memory a `&[u8]` peek views;
    /// - no other byte view of the same memory exists.
    ///
    /// The structure's handles guarantee both among themselves, provided that:
    /// - every structure built over this memory (through this value, its clones, or
    ///   any other region over the same header or body) is of the same kind with the
    ///   same geometry over the same header: several handles' rings over one header
    ///   and body are one structure, a second ring over the same body with another
    ///   header or another geometry is not allowed;
    /// - every take-over keeps the `# Safety` contract of the take-over call;
    /// - every other accessor of the header or the body (code in this process using
    ///   [`Region::header`] / [`Region::body`], other threads, other processes) either
    ///   follows the structure's protocol (docs/LAYOUT.md: it never touches a slot it
    ///   does not own, nor writes a counter it does not own) or accesses the memory
    ///   only while no byte view is alive.
    pub unsafe fn new(region: R) -> Self {
        Exclusive { region }
    }

    /// The region this wraps.
    pub fn into_inner(self) -> R {
        self.region
    }
}

impl<R: Region> Region for Exclusive<R> {
    type Header = R::Header;
    #[inline]
    fn header(&self) -> &R::Header {
        self.region.header()
    }
    #[inline]
    fn body(&self) -> &[AtomicU64] {
        self.region.body()
    }
}

/// A header and a body borrowed from memory the caller owns.
#[derive(Debug)]
pub struct Parts<'a, H> {
    header: &'a H,
    body: &'a [AtomicU64],
}

impl<H> Clone for Parts<'_, H> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<H> Copy for Parts<'_, H> {}

impl<'a, H> Parts<'a, H> {
    /// Pairs a header with its body.
    pub fn new(header: &'a H, body: &'a [AtomicU64]) -> Self {
        Parts { header, body }
    }
}

impl<H> Region for Parts<'_, H> {
    type Header = H;
    #[inline]
    fn header(&self) -> &H {
        self.header
    }
    #[inline]
    fn body(&self) -> &[AtomicU64] {
        self.body
    }
}

/// A control block type: `#[repr(C)]`, made only of atomics, valid when zeroed.
///
/// Sealed: only this crate's headers implement it.
pub trait ControlBlock: sealed::Sealed + Default {}

pub(crate) mod sealed {
    pub trait Sealed {}
}

#[cfg(feature = "alloc")]
pub use heap::HeapRegion;

#[cfg(feature = "alloc")]
mod heap {
    use super::{ControlBlock, Region};
    use crate::sync::AtomicU64;
    use alloc::boxed::Box;
    use alloc::vec::Vec;

    /// A zeroed header and body on the heap: a fresh region for tests and checkers.
    ///
    /// ```
    /// # #[cfg(not(any(feature = "loom", feature = "shuttle")))] {
    /// use tensorlane_core::{HeapRegion, SeqlockGeometry, SeqlockHeader, Seqlock};
    /// let geometry = SeqlockGeometry::new(2, 64).unwrap();
    /// let region = HeapRegion::<SeqlockHeader>::new(geometry.body_words());
    /// let lane = Seqlock::new(&region, geometry).unwrap();
    /// # let _ = lane;
    /// # }
    /// ```
    #[derive(Debug)]
    pub struct HeapRegion<H> {
        header: Box<H>,
        body: Box<[AtomicU64]>,
    }

    impl<H: ControlBlock> HeapRegion<H> {
        /// A zeroed header followed by `body_words` zeroed words.
        pub fn new(body_words: usize) -> Self {
            let body: Vec<AtomicU64> = (0..body_words).map(|_| AtomicU64::new(0)).collect();
            HeapRegion {
                header: Box::new(H::default()),
                body: body.into_boxed_slice(),
            }
        }
    }

    impl<H> Region for HeapRegion<H> {
        type Header = H;
        #[inline]
        fn header(&self) -> &H {
            &self.header
        }
        #[inline]
        fn body(&self) -> &[AtomicU64] {
            &self.body
        }
    }
}

/// Why mapped bytes cannot be viewed as a control block and body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttachError {
    /// The start address is not aligned to the header's alignment.
    Misaligned {
        /// Required alignment in bytes.
        required: usize,
    },
    /// The mapping is shorter than the header.
    TooShort {
        /// Bytes needed for the header.
        needed: usize,
        /// Bytes available.
        found: usize,
    },
}

impl core::fmt::Display for AttachError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            AttachError::Misaligned { required } => {
                write!(f, "region is not aligned to {required} bytes")
            }
            AttachError::TooShort { needed, found } => {
                write!(f, "region has {found} bytes, the header needs {needed}")
            }
        }
    }
}

impl core::error::Error for AttachError {}

/// Views `len` mapped bytes at `ptr` as a header followed by a body of whole words
/// (trailing bytes that do not fill a word are ignored).
///
/// This is the only cast from raw memory to control blocks in the crate. It checks
/// alignment and size; the algorithms then validate the body length against their
/// local geometry when a handle is built.
///
/// # Safety
/// - `ptr..ptr+len` must be readable and writable memory that stays mapped for `'a`;
/// - every access to it, by this process or any other, must be through atomics
///   (other processes following docs/LAYOUT.md do this), except where a protocol
///   hands out exclusive loans;
/// - nothing may hold a Rust reference of another type into it for `'a`.
///
/// Zeroed memory is a valid fresh header; any other content is tolerated as data.
#[cfg(not(any(feature = "loom", feature = "shuttle")))]
pub unsafe fn attach<'a, H: ControlBlock>(
    ptr: *mut u8,
    len: usize,
) -> Result<Parts<'a, H>, AttachError> {
    let align = core::mem::align_of::<H>();
    if (ptr as usize) % align != 0 {
        return Err(AttachError::Misaligned { required: align });
    }
    let needed = core::mem::size_of::<H>();
    if len < needed {
        return Err(AttachError::TooShort { needed, found: len });
    }
    let words = (len - needed) / 8;
    // SAFETY: `ptr` is aligned for `H` and `len >= size_of::<H>()` (checked above); the
    // caller guarantees the memory is live and accessed only atomically for `'a`. `H`
    // is a `ControlBlock`: `#[repr(C)]` and made only of `AtomicU64`, which has the
    // same size and bit validity as `u64`, so any bytes are a valid `H`.
    let header = unsafe { &*(ptr as *const H) };
    // SAFETY: the body starts at `ptr + size_of::<H>()`, which is 8-aligned because
    // `H`'s alignment (128) is a multiple of 8 and its size a multiple of its
    // alignment; `words * 8 <= len - needed` bytes lie inside the mapping. Any bit
    // pattern is a valid `AtomicU64`, and the caller guarantees atomic-only access.
    let body = unsafe { core::slice::from_raw_parts(ptr.add(needed) as *const AtomicU64, words) };
    Ok(Parts::new(header, body))
}
