//! Handles: tokens C holds, looked up in a process-wide registry.
//!
//! A handle is a number (1, 2, ...) presented as an opaque pointer, never an
//! address, and never reused: a call on a closed handle finds nothing and is
//! `TL_ERR_CLOSED` instead of a use after free, and a handle of another kind (a
//! C cast) is `TL_ERR_WRONG_HANDLE`.
//!
//! Invariants:
//! - each entry holds its lane behind its own mutex, so calls on one handle run one
//!   at a time from any thread, and calls on different handles in parallel (the
//!   registry's lock is held only to look an entry up, insert or remove it);
//! - a call clones the entry's `Arc` before locking it, so closing a handle while a
//!   call on it runs (from another thread) ends that call normally and drops the lane
//!   when it returns;
//! - an entry whose mutex was poisoned (a panic during a call on it) is refused with
//!   `TL_ERR_PANIC`: its lane may be half-updated.

use crate::status::{tl_status, Failure};
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex, RwLock};

/// A lane type that a handle can hold, with the name messages give it.
pub(crate) trait Kind: Any + Send {
    /// `"stream writer"`, ...
    const NAME: &'static str;
}

type Lane = Arc<Mutex<Box<dyn Any + Send>>>;

struct Entry {
    lane: Lane,
    kind: TypeId,
    name: &'static str,
}

static REGISTRY: LazyLock<RwLock<HashMap<u64, Entry>>> =
    LazyLock::new(|| RwLock::new(HashMap::new()));

/// The next handle number. Relaxed: the number only has to be unique; the entry is
/// published to other threads through the registry's lock.
static NEXT: AtomicU64 = AtomicU64::new(1);

/// Registers `lane` and returns its handle.
pub(crate) fn insert<T: Kind, H>(lane: T) -> Result<*mut H, Failure> {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let address = usize::try_from(id)
        .map_err(|_| Failure::new(tl_status::TL_ERR_OTHER, "handle numbers exhausted"))?;
    let entry = Entry {
        lane: Arc::new(Mutex::new(Box::new(lane))),
        kind: TypeId::of::<T>(),
        name: T::NAME,
    };
    REGISTRY
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id, entry);
    Ok(std::ptr::without_provenance_mut(address))
}

/// The registry's number of `handle`.
fn id_of<H>(handle: *const H, kind: &str) -> Result<u64, Failure> {
    if handle.is_null() {
        return Err(Failure::new(
            tl_status::TL_ERR_NULL_POINTER,
            format!("the {kind} handle is NULL"),
        ));
    }
    Ok(handle.addr() as u64)
}

fn closed(kind: &str) -> Failure {
    Failure::new(
        tl_status::TL_ERR_CLOSED,
        format!("the {kind} handle is closed (or was never opened)"),
    )
}

fn wrong(kind: &str, found: &str) -> Failure {
    Failure::new(
        tl_status::TL_ERR_WRONG_HANDLE,
        format!("the handle is a {found}, not a {kind}"),
    )
}

/// Runs `body` on the lane of `handle`, which must be a `T`.
pub(crate) fn with<T: Kind, H, R>(
    handle: *const H,
    body: impl FnOnce(&mut T) -> Result<R, Failure>,
) -> Result<R, Failure> {
    let id = id_of(handle, T::NAME)?;
    let lane = {
        let registry = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
        let entry = registry.get(&id).ok_or_else(|| closed(T::NAME))?;
        if entry.kind != TypeId::of::<T>() {
            return Err(wrong(T::NAME, entry.name));
        }
        entry.lane.clone()
    };
    let mut guard = lane.lock().map_err(|_| {
        Failure::new(
            tl_status::TL_ERR_PANIC,
            format!("an earlier call on this {} panicked: close it", T::NAME),
        )
    })?;
    let lane = guard
        .downcast_mut::<T>()
        .ok_or_else(|| wrong(T::NAME, "lane of another kind"))?;
    body(lane)
}

/// Runs `body` on the lane of `handle`, of any kind (the functions that every
/// handle answers, such as the metadata's).
pub(crate) fn with_any<H, R>(
    handle: *const H,
    body: impl FnOnce(&mut (dyn Any + Send)) -> Result<R, Failure>,
) -> Result<R, Failure> {
    let id = id_of(handle, "lane")?;
    let lane = {
        let registry = REGISTRY.read().unwrap_or_else(|e| e.into_inner());
        registry
            .get(&id)
            .ok_or_else(|| closed("lane"))?
            .lane
            .clone()
    };
    let mut guard = lane.lock().map_err(|_| {
        Failure::new(
            tl_status::TL_ERR_PANIC,
            "an earlier call on this handle panicked: close it",
        )
    })?;
    body(&mut **guard)
}

/// Closes `handle` (a `T`); NULL is nothing to close. The lane is dropped now, or
/// when a call on it that another thread is running returns.
pub(crate) fn close<T: Kind, H>(handle: *const H) -> Result<(), Failure> {
    if handle.is_null() {
        return Ok(());
    }
    let id = id_of(handle, T::NAME)?;
    let entry = {
        let mut registry = REGISTRY.write().unwrap_or_else(|e| e.into_inner());
        let entry = registry.get(&id).ok_or_else(|| closed(T::NAME))?;
        if entry.kind != TypeId::of::<T>() {
            return Err(wrong(T::NAME, entry.name));
        }
        registry.remove(&id)
    };
    // Dropped outside the registry's lock: dropping a lane unmaps a segment.
    drop(entry);
    Ok(())
}

/// Sets `*out` to NULL, runs `open`, and sets `*out` to the handle of the lane it
/// opened: a failed open leaves NULL, and a bad `out` is refused before anything is
/// created.
///
/// # Safety
/// A non-null, aligned `out` points to writable memory for a pointer.
pub(crate) unsafe fn opened<T: Kind, H>(
    out: *mut *mut H,
    open: impl FnOnce() -> Result<T, Failure>,
) -> Result<(), Failure> {
    // SAFETY: forwarded promise.
    unsafe { crate::args::write(out, std::ptr::null_mut(), "out")? };
    let handle = insert(open()?)?;
    // SAFETY: forwarded promise (`out` was checked by the write above).
    unsafe { crate::args::write(out, handle, "out") }
}
