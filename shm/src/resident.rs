//! Keeping a lane's mapping resident for real-time loops: pre-faulting every page and
//! locking the mapping in memory ([`crate::OpenOptions`], [`crate::CreateOptions`]).
//!
//! Invariants:
//! - Both operations act on this process's mapping only: page tables and locks are
//!   per process, so each process of a real-time loop asks for them when it creates or
//!   opens its handle. The lock lasts as long as the mapping (unmapping unlocks).
//! - Neither writes a byte of the segment: pre-faulting uses
//!   `madvise(MADV_POPULATE_WRITE)`, which makes the page-table entries writable
//!   without storing anything, and falls back to one atomic load per page where the
//!   kernel lacks it (before 5.14). A peer's data is never touched, so pre-faulting a
//!   lane that is in use is safe.
//! - The segment's memory was reserved at create (`posix_fallocate`), so neither
//!   operation allocates shared memory; a segment truncated meanwhile is reported
//!   (`EFAULT`), not a fault.
//! - A lock refused by the limit (`RLIMIT_MEMLOCK`, without `CAP_IPC_LOCK`) is the
//!   typed [`LaneError::MemoryLock`], never a panic.

use crate::error::LaneError;
use crate::name::LaneName;
use memmap2::MmapRaw;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

/// Retries of a `madvise` or `mlock` interrupted by a signal.
const RETRIES: usize = 100;

fn io_error(name: &LaneName, what: &str, source: io::Error) -> LaneError {
    LaneError::Io {
        name: name.to_string(),
        what: what.to_string(),
        source,
    }
}

/// The system's page size.
fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size)
        .ok()
        .filter(|&s| s >= 8)
        .unwrap_or(4096)
}

/// Faults in every page of `map` as if written, without writing.
pub(crate) fn prefault(map: &MmapRaw, name: &LaneName) -> Result<(), LaneError> {
    for _ in 0..RETRIES {
        // SAFETY: the range is exactly the mapping `map` owns, which lives for the
        // call; MADV_POPULATE_WRITE only fills page tables and changes no byte.
        let rc = unsafe {
            libc::madvise(
                map.as_mut_ptr().cast(),
                map.len(),
                libc::MADV_POPULATE_WRITE,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            // A kernel before 5.14 does not know the advice: touch every page.
            Some(libc::EINVAL) => return touch_pages(map),
            _ => return Err(io_error(name, "madvise(MADV_POPULATE_WRITE)", err)),
        }
    }
    Err(io_error(
        name,
        "madvise(MADV_POPULATE_WRITE)",
        io::Error::from_raw_os_error(libc::EINTR),
    ))
}

/// Loads one word of every page of `map` (the fallback of [`prefault`]).
fn touch_pages(map: &MmapRaw) -> Result<(), LaneError> {
    let page = page_size();
    let mut offset = 0;
    while offset < map.len() {
        // SAFETY: `offset` is a multiple of the page size below the mapping's length,
        // so the word lies inside the page-aligned mapping and is 8-aligned; every
        // process accesses the segment's words atomically (docs/LAYOUT.md), so an
        // atomic load races with nothing, and a load changes no byte.
        let word = unsafe { &*(map.as_ptr().add(offset) as *const AtomicU64) };
        std::hint::black_box(word.load(Ordering::Relaxed));
        offset += page;
    }
    Ok(())
}

/// This process's `RLIMIT_MEMLOCK` (the soft limit) in bytes; `None` if unlimited or
/// unknown.
pub(crate) fn memlock_limit() -> Option<u64> {
    // SAFETY: rlimit is a plain C struct for which all-zero is a valid value.
    let mut limit: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: `limit` is valid for writes for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut limit) } != 0 {
        return None;
    }
    (limit.rlim_cur != libc::RLIM_INFINITY).then_some(limit.rlim_cur)
}

/// Locks `map` in memory (which also faults it in).
pub(crate) fn lock(map: &MmapRaw, name: &LaneName) -> Result<(), LaneError> {
    for _ in 0..RETRIES {
        // SAFETY: the range is exactly the mapping `map` owns, which lives for the
        // call; mlock changes no byte, and the lock ends with the mapping.
        let rc = unsafe { libc::mlock(map.as_ptr().cast(), map.len()) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EINTR) => continue,
            // ENOMEM: over RLIMIT_MEMLOCK; EPERM: a limit of 0 without
            // CAP_IPC_LOCK; EAGAIN: some pages could not be locked.
            Some(libc::ENOMEM) | Some(libc::EPERM) | Some(libc::EAGAIN) => {
                return Err(LaneError::MemoryLock {
                    name: name.to_string(),
                    bytes: map.len() as u64,
                    limit: memlock_limit(),
                    source: err,
                })
            }
            _ => return Err(io_error(name, "mlock", err)),
        }
    }
    Err(io_error(
        name,
        "mlock",
        io::Error::from_raw_os_error(libc::EINTR),
    ))
}
