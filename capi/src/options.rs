//! The create and open options of the C ABI (`tl_create_options`,
//! `tl_open_options`), their init functions and their conversion to the Rust
//! options.
//!
//! Versioning: each struct starts with `struct_size`, which the caller sets to
//! `sizeof` the struct it was compiled against (the init functions do). The library
//! reads no byte of a struct before it has checked that size, so a later version
//! that appends fields can tell an older caller's shorter struct apart and read only
//! its fields (with defaults for the rest), and a struct from a newer header than
//! the library knows is refused instead of read past its known end. An init function
//! alone could not do this: the library would not know how many bytes the caller's
//! struct has. This version knows one size per struct and accepts only it.
//!
//! Invariants: every field is an integer or a raw pointer, so any bits C passes are a
//! valid value; flags are `uint32_t` checked to be 0 or 1, and codes (`clock`)
//! checked, never trusted; the metadata array is read entry by entry only after its
//! pointer was found non-null and aligned and its length bounded, and each key and
//! value only after it was found non-null, NUL-terminated and UTF-8 (`args::text`).

use crate::args;
use crate::status::{call, tl_status, Failure};
use crate::types::{spec_from_c, tl_spec};
use std::ffi::c_char;
use std::mem::size_of;
use tensorlane_shm::{Clock, CreateOptions, OpenOptions, MAX_METADATA_BYTES};

/// Clocks that stamp a lane's frames: the codes of `tl_create_options::clock` and
/// of `tl_lane_clock` (those of the segment header).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum tl_clock {
    /// `CLOCK_MONOTONIC` (the default): nanoseconds since boot, the same for every
    /// process of the machine; never jumps.
    TL_CLOCK_MONOTONIC = 1,
    /// `CLOCK_REALTIME`: nanoseconds since the Unix epoch; jumps when the system
    /// time is set.
    TL_CLOCK_REALTIME = 2,
    /// No stamping: every frame's `timestamp_ns` is 0.
    TL_CLOCK_NONE = 3,
}

/// One metadata pair: a NUL-terminated UTF-8 key (non-empty, unique in the array)
/// and value.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct tl_metadata_entry {
    /// The key.
    pub key: *const c_char,
    /// The value.
    pub value: *const c_char,
}

/// How a lane is created (`tl_*_create_with`). Fill it with
/// `tl_create_options_init`, then change the fields wanted: the init function sets
/// `struct_size`, which lets later versions of the library append fields without
/// breaking programs built against this header (a size the library does not know
/// is `TL_ERR_INVALID_ARGUMENT`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct tl_create_options {
    /// `sizeof(tl_create_options)`, as set by `tl_create_options_init`.
    pub struct_size: usize,
    /// The clock that stamps the frames, a `tl_clock` code (default
    /// `TL_CLOCK_MONOTONIC`), recorded in the lane for every opener.
    pub clock: u32,
    /// 1: the lane's group may open it too (mode 0660 instead of 0600); every
    /// member of the group is then as trusted as the owner. Default 0.
    pub group_access: u32,
    /// 1: fault in every page of the mapping at create, so that no later access
    /// takes a page fault. Default 0.
    pub prefault: u32,
    /// 1: lock the mapping in memory (`mlock`); over `RLIMIT_MEMLOCK` the create
    /// fails with `TL_ERR_MEMORY_LOCK_REFUSED`. Default 0.
    pub lock_memory: u32,
    /// `metadata_len` key-value pairs stored, immutable, with the lane (NULL when
    /// `metadata_len` is 0). Keys non-empty and unique, at most 64 KiB encoded
    /// (each pair takes 8 bytes plus its key and value), else
    /// `TL_ERR_INVALID_ARGUMENT`. The library copies them during the call.
    pub metadata: *const tl_metadata_entry,
    /// Number of entries at `metadata`.
    pub metadata_len: usize,
}

/// How a lane is opened or taken over (`tl_*_open_with`, `tl_*_take_over_with`).
/// Fill it with `tl_open_options_init` (see `tl_create_options` on `struct_size`).
/// The real-time options apply to this process's mapping only.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct tl_open_options {
    /// `sizeof(tl_open_options)`, as set by `tl_open_options_init`.
    pub struct_size: usize,
    /// If not NULL, the lane must carry this tensor (`TL_ERR_WRONG_SPEC`
    /// otherwise). Default NULL: any tensor.
    pub expect: *const tl_spec,
    /// 1: fault in every page of the mapping before the call returns. Default 0.
    pub prefault: u32,
    /// 1: lock the mapping in memory (`mlock`; `TL_ERR_MEMORY_LOCK_REFUSED` over
    /// `RLIMIT_MEMLOCK`). Default 0.
    pub lock_memory: u32,
}

/// Most metadata entries an array may hold: each takes at least 9 bytes encoded
/// (two length words and a non-empty key).
const MAX_ENTRIES: usize = MAX_METADATA_BYTES / 9;

/// Refuses a struct whose `struct_size` (at `pointer`, checked non-null and aligned
/// for `T`) is not the size this library knows.
///
/// # Safety
/// A non-null, aligned `pointer` points to a live struct starting with a `size_t`.
unsafe fn check_size<T>(pointer: *const T, what: &str) -> Result<(), Failure> {
    args::check_typed(pointer, what)?;
    // SAFETY: non-null and aligned for `T` (checked), whose alignment is that of
    // its first field, a `usize`; live by the caller's promise. Only this word is
    // read before the size is known.
    let size = unsafe { pointer.cast::<usize>().read() };
    if size != size_of::<T>() {
        return Err(Failure::new(
            tl_status::TL_ERR_INVALID_ARGUMENT,
            format!(
                "{what}->struct_size is {size}, this library knows {} (set it with the \
                 struct's init function)",
                size_of::<T>()
            ),
        ));
    }
    Ok(())
}

/// The Rust create options of `*options` (the defaults if NULL).
///
/// # Safety
/// A non-null `options` points to a `tl_create_options` whose `metadata` (when
/// `metadata_len` is not 0) points to `metadata_len` entries, each of whose `key`
/// and `value` is NULL or a NUL-terminated string, all live for the call.
pub(crate) unsafe fn create_from_c(
    options: *const tl_create_options,
) -> Result<CreateOptions, Failure> {
    if options.is_null() {
        return Ok(CreateOptions::new());
    }
    // SAFETY: forwarded promise.
    unsafe { check_size(options, "options")? };
    // SAFETY: forwarded promise; the size was checked.
    let c = unsafe { args::read(options, "options")? };
    let clock = Clock::from_code(u64::from(c.clock)).ok_or_else(|| {
        Failure::new(
            tl_status::TL_ERR_INVALID_ARGUMENT,
            format!("clock code {} is no tl_clock", c.clock),
        )
    })?;
    let mut metadata = Vec::new();
    if c.metadata_len > 0 {
        if c.metadata_len > MAX_ENTRIES {
            return Err(Failure::new(
                tl_status::TL_ERR_INVALID_ARGUMENT,
                format!(
                    "metadata_len is {}: at most {MAX_ENTRIES} entries fit in \
                     {MAX_METADATA_BYTES} bytes",
                    c.metadata_len
                ),
            ));
        }
        args::check_typed(c.metadata, "options->metadata")?;
        metadata.reserve(c.metadata_len);
        for i in 0..c.metadata_len {
            // SAFETY: `metadata` is non-null and aligned (checked) and points to
            // `metadata_len` entries by the caller's promise; `i` is below it, and
            // `metadata_len` is bounded, so the offset stays inside that array.
            let entry = unsafe { c.metadata.add(i).read() };
            // SAFETY: each key and value is NULL or a NUL-terminated string live for
            // the call (the caller's promise); NULL is refused by `text`.
            let key = unsafe { args::text(entry.key, &format!("metadata[{i}].key"))? };
            // SAFETY: as above.
            let value = unsafe { args::text(entry.value, &format!("metadata[{i}].value"))? };
            metadata.push((key.to_owned(), value.to_owned()));
        }
    }
    Ok(CreateOptions::new()
        .clock(clock)
        .group_access(args::flag(c.group_access, "options->group_access")?)
        .prefault(args::flag(c.prefault, "options->prefault")?)
        .lock_memory(args::flag(c.lock_memory, "options->lock_memory")?)
        .metadata(metadata))
}

/// The Rust open options of `*options` (the defaults if NULL).
///
/// # Safety
/// A non-null `options` points to a `tl_open_options` whose `expect` is NULL or
/// points to a `tl_spec`, live for the call.
pub(crate) unsafe fn open_from_c(options: *const tl_open_options) -> Result<OpenOptions, Failure> {
    if options.is_null() {
        return Ok(OpenOptions::new());
    }
    // SAFETY: forwarded promise.
    unsafe { check_size(options, "options")? };
    // SAFETY: forwarded promise; the size was checked.
    let c = unsafe { args::read(options, "options")? };
    let mut open = OpenOptions::new()
        .prefault(args::flag(c.prefault, "options->prefault")?)
        .lock_memory(args::flag(c.lock_memory, "options->lock_memory")?);
    // SAFETY: forwarded promise.
    if let Some(expect) = unsafe { args::read_opt(c.expect, "options->expect")? } {
        open = open.expect(&spec_from_c(&expect)?);
    }
    Ok(open)
}

/// Fills `*options` with the defaults (monotonic clock, private to the owner, no
/// pre-faulting or locking, no metadata) and sets its `struct_size`.
///
/// # Safety
/// `options` is NULL or points to writable memory for a `tl_create_options`.
#[no_mangle]
pub unsafe extern "C" fn tl_create_options_init(options: *mut tl_create_options) -> tl_status {
    call(|| {
        let defaults = tl_create_options {
            struct_size: size_of::<tl_create_options>(),
            clock: tl_clock::TL_CLOCK_MONOTONIC as u32,
            group_access: 0,
            prefault: 0,
            lock_memory: 0,
            metadata: std::ptr::null(),
            metadata_len: 0,
        };
        // SAFETY: the promise of this function's documentation.
        unsafe { args::write(options, defaults, "options") }
    })
}

/// Fills `*options` with the defaults (any tensor, no pre-faulting or locking) and
/// sets its `struct_size`.
///
/// # Safety
/// `options` is NULL or points to writable memory for a `tl_open_options`.
#[no_mangle]
pub unsafe extern "C" fn tl_open_options_init(options: *mut tl_open_options) -> tl_status {
    call(|| {
        let defaults = tl_open_options {
            struct_size: size_of::<tl_open_options>(),
            expect: std::ptr::null(),
            prefault: 0,
            lock_memory: 0,
        };
        // SAFETY: the promise of this function's documentation.
        unsafe { args::write(options, defaults, "options") }
    })
}
