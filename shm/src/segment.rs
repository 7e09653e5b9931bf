//! POSIX shared-memory segments: create, open, map, unlink, list, and role locks.
//!
//! A segment is created with `shm_open(O_CREAT | O_EXCL)`, mode 0600 (0660 when
//! group access is asked for), sized and reserved with `posix_fallocate` (so that a
//! full `/dev/shm` is a [`LaneError::NoSpace`] at create, never a SIGBUS at the first
//! write), mapped shared, and its header written before the ready word is released.
//!
//! Opening checks, in this order and before touching any memory of the object: that
//! it is a regular file, that it belongs to this user (or, for a group lane, that it
//! is mode 0660 and its group is one of this process's groups), and, reading through
//! the descriptor (`pread`, which never allocates a page of a sparse object), that its
//! header is ready. Only then is the object mapped; its header is validated, and its
//! size checked against the size the header implies, before anything beyond the
//! header is used. A tool opening many lanes gives one deadline for all of them
//! ([`Segment::open_until`]).
//!
//! Roles (writer, consumer, subscriber `i`) are owned through open-file-description
//! locks (`F_OFD_SETLK`) on one byte per role of the segment's descriptor. The
//! kernel releases them when the owner's process dies, however it dies, and they do
//! not suffer from pid reuse; a role whose lock nobody holds has no live owner.
//!
//! Limits: a child created by `fork` (without `exec`) shares its parent's open file
//! descriptions and so its role locks; it must not use the parent's handles, and the
//! roles stay "alive" while it lives. A process that may write the object (its owner,
//! and its group for a group lane) can truncate it while others have it mapped; their
//! accesses beyond the new end then fault (SIGBUS). Nothing can prevent that after a
//! lane is opened (docs/LAYOUT.md, section 1, *Truncation*); a lane truncated before it
//! is opened is refused with [`LaneError::Truncated`].

use crate::clock::Clock;
use crate::error::LaneError;
use crate::header::{self, HeaderInfo, SegmentHeader, HEADER_BYTES, READY};
#[cfg(doc)]
use crate::metadata::Metadata;
use crate::name::LaneName;
use memmap2::MmapRaw;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long `open` waits for a creator to finish the header.
pub const READY_TIMEOUT: Duration = Duration::from_secs(2);

/// Lock byte of the writer / producer role.
pub const WRITER_ROLE: u64 = 0;
/// Lock byte of the queue consumer role.
pub const CONSUMER_ROLE: u64 = 1;
/// Lock byte of topic subscriber `i` is `SUBSCRIBER_ROLE_BASE + i`.
pub const SUBSCRIBER_ROLE_BASE: u64 = 2;

/// Mode of a lane only its owner may open.
pub const PRIVATE_MODE: u32 = 0o600;
/// Mode of a lane its group may open too.
pub const GROUP_MODE: u32 = 0o660;

/// Options for creating a segment: [`CreateOptions::new`] (the defaults), then one
/// builder method per field.
///
/// ```
/// use tensorlane_shm::{Clock, CreateOptions};
/// let options = CreateOptions::new()
///     .group_access(true)
///     .clock(Clock::Realtime)
///     .metadata([("units", "m/s"), ("frame", "base_link")]);
/// assert_eq!(options.clock, Clock::Realtime);
/// assert!(options.group_access);
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CreateOptions {
    /// Let the lane's group open it (mode 0660 instead of 0600). The group is the
    /// creator's effective group id (run the creator with another one, or `chgrp`
    /// the object, to share with another group). Every member of the group is then
    /// as trusted as the owner: it can write any word of the segment, take any role,
    /// and truncate the object (docs/LAYOUT.md, sections 1 and 4).
    pub group_access: bool,
    /// The clock that stamps the lane's frames (default: [`Clock::Monotonic`]),
    /// recorded in the header for every opener.
    pub clock: Clock,
    /// Key-value pairs stored, immutable, with the lane (see [`Metadata`]); checked
    /// at create ([`LaneError::Metadata`]): keys non-empty and unique, at most
    /// `MAX_METADATA_BYTES` encoded.
    pub metadata: Vec<(String, String)>,
    /// Fault in every page of the mapping at create, so that no later access takes a
    /// page fault (see [`OpenOptions::prefault`]).
    pub prefault: bool,
    /// Lock the mapping in memory at create (`mlock`), so that it is never paged out
    /// (see [`OpenOptions::lock_memory`]).
    pub lock_memory: bool,
}

impl CreateOptions {
    /// The defaults: private to the owner, stamped with [`Clock::Monotonic`], no
    /// metadata.
    pub fn new() -> Self {
        Self::default()
    }

    /// Lets the lane's group open it (see the field [`group_access`](Self::group_access)).
    pub fn group_access(mut self, group_access: bool) -> Self {
        self.group_access = group_access;
        self
    }

    /// Stores `entries` with the lane, readable by every opener (`metadata()` on
    /// every handle) and shown by `tensorlane inspect`.
    pub fn metadata<K: Into<String>, V: Into<String>>(
        mut self,
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        self.metadata = entries
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        self
    }

    /// Faults in the whole mapping at create (see [`OpenOptions::prefault`]).
    pub fn prefault(mut self, prefault: bool) -> Self {
        self.prefault = prefault;
        self
    }

    /// Locks the mapping in memory at create (see [`OpenOptions::lock_memory`]).
    pub fn lock_memory(mut self, lock_memory: bool) -> Self {
        self.lock_memory = lock_memory;
        self
    }

    /// Stamps the lane's frames with `clock` ([`Clock::None`]: no stamping).
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }
}

/// Options for opening an existing lane (`open_with`, `take_over_with` on every
/// handle): [`OpenOptions::new`] (the defaults of `open`), then one builder method
/// per field. The real-time options, [`prefault`](Self::prefault) and
/// [`lock_memory`](Self::lock_memory), have the same names and meaning as those of
/// [`CreateOptions`]; they apply to this process's mapping only (every process that
/// needs them asks for them).
///
/// ```
/// use tensorlane_shm::{DType, OpenOptions, TensorSpec};
/// let spec = TensorSpec::new(DType::F32, &[6]).unwrap();
/// let options = OpenOptions::new().expect(&spec).prefault(true).lock_memory(true);
/// assert!(options.prefault && options.lock_memory);
/// assert_eq!(options.expect, Some(spec));
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct OpenOptions {
    /// The tensor the lane must carry (`open_expect`): another one is
    /// [`LaneError::WrongSpec`]. `None`: any tensor.
    pub expect: Option<crate::dtype::TensorSpec>,
    /// Fault in every page of the mapping before the call returns
    /// (`madvise(MADV_POPULATE_WRITE)`, or one load per page on kernels before 5.14),
    /// so that the lane's operations take no page fault afterwards. The segment's
    /// memory is reserved at create, so this allocates nothing new; it costs one pass
    /// over the segment at open.
    pub prefault: bool,
    /// Lock the mapping in memory (`mlock`, which also faults it in) so that it is
    /// never swapped out; the lock ends when the handle's last clone is dropped.
    /// Locked bytes count against `RLIMIT_MEMLOCK` (8 MiB by default on many
    /// distributions) unless the process has `CAP_IPC_LOCK`; over the limit the call
    /// fails with [`LaneError::MemoryLock`], whose message says how to raise it
    /// (`ulimit -l`, `memlock` in `/etc/security/limits.conf`, `LimitMEMLOCK=` for
    /// a systemd service, or `CAP_IPC_LOCK`).
    pub lock_memory: bool,
}

impl OpenOptions {
    /// The defaults: any tensor, no pre-faulting, no locking.
    pub fn new() -> Self {
        Self::default()
    }

    /// Requires the lane to carry `spec` (see the field [`expect`](Self::expect)).
    pub fn expect(mut self, spec: &crate::dtype::TensorSpec) -> Self {
        self.expect = Some(spec.clone());
        self
    }

    /// Faults in the whole mapping at open (see the field [`prefault`](Self::prefault)).
    pub fn prefault(mut self, prefault: bool) -> Self {
        self.prefault = prefault;
        self
    }

    /// Locks the mapping in memory at open (see the field
    /// [`lock_memory`](Self::lock_memory)).
    pub fn lock_memory(mut self, lock_memory: bool) -> Self {
        self.lock_memory = lock_memory;
        self
    }
}

/// A mapped, validated segment. Dropping it unmaps; it never unlinks.
#[derive(Debug)]
pub struct Segment {
    name: LaneName,
    file: File,
    map: MmapRaw,
    info: HeaderInfo,
}

fn errno_error(what: &str, name: &LaneName) -> LaneError {
    LaneError::Io {
        name: name.to_string(),
        what: what.to_string(),
        source: io::Error::last_os_error(),
    }
}

impl Segment {
    /// Creates a new segment for `info`'s geometry. Fails with `Exists` if the name is
    /// taken.
    pub(crate) fn create(
        name: &LaneName,
        info: &HeaderInfo,
        options: &CreateOptions,
    ) -> Result<Segment, LaneError> {
        let object = name.object_name();
        let mode = if options.group_access {
            GROUP_MODE
        } else {
            PRIVATE_MODE
        } as libc::mode_t;
        // SAFETY: `object` is a NUL-terminated C string that outlives the call.
        let fd = unsafe {
            libc::shm_open(
                object.as_ptr(),
                libc::O_CREAT | libc::O_EXCL | libc::O_RDWR | libc::O_CLOEXEC,
                mode,
            )
        };
        if fd < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EEXIST) {
                return Err(LaneError::Exists(name.to_string()));
            }
            return Err(LaneError::Io {
                name: name.to_string(),
                what: "shm_open(O_CREAT|O_EXCL)".into(),
                source: err,
            });
        }
        // SAFETY: `fd` was just returned by shm_open and is owned by nobody else.
        let file = unsafe { File::from_raw_fd(fd) };
        let built = Self::initialise(name, file, info, mode);
        if built.is_err() {
            // SAFETY: as above; we created this object and unlink it on failure.
            unsafe { libc::shm_unlink(object.as_ptr()) };
        }
        built
    }

    fn initialise(
        name: &LaneName,
        file: File,
        info: &HeaderInfo,
        mode: libc::mode_t,
    ) -> Result<Segment, LaneError> {
        // The umask may have narrowed the mode; set it exactly.
        // SAFETY: `file` owns a valid descriptor.
        if unsafe { libc::fchmod(file.as_raw_fd(), mode) } != 0 {
            return Err(errno_error("fchmod", name));
        }
        reserve(&file, name, info.segment_bytes)?;
        let map = MmapRaw::map_raw(&file).map_err(|source| LaneError::Io {
            name: name.to_string(),
            what: "mmap".into(),
            source,
        })?;
        if map.len() < info.segment_bytes {
            return Err(LaneError::Io {
                name: name.to_string(),
                what: "mmap".into(),
                source: io::Error::other("the object was resized while being created"),
            });
        }
        let segment = Segment {
            name: name.clone(),
            file,
            map,
            info: info.clone(),
        };
        let words = header::encode(info).ok_or(LaneError::TooLarge)?;
        // The metadata area, written through the descriptor before the header words
        // (the release store of `ready` below orders it for openers, who read it
        // through their descriptor too).
        let area = header::metadata_area(&words);
        segment
            .file
            .write_all_at(info.metadata.as_bytes(), area.offset)
            .map_err(|source| LaneError::Io {
                name: name.to_string(),
                what: "pwrite".into(),
                source,
            })?;
        let header = segment.header();
        for (i, word) in words.iter().enumerate() {
            header.field(i).store(*word, Ordering::Relaxed);
        }
        // Release: every field above (and the zeroed core structure) is visible to an
        // opener that sees READY. Partner: the Acquire load of `ready` in `open`.
        header.ready.store(READY, Ordering::Release);
        Ok(segment)
    }

    /// Opens and validates an existing segment, waiting up to [`READY_TIMEOUT`] for a
    /// creator to finish its header.
    pub fn open(name: &LaneName) -> Result<Segment, LaneError> {
        Self::open_until(name, Instant::now() + READY_TIMEOUT)
    }

    /// Opens and validates an existing segment, waiting for a creator to finish its
    /// header only until `deadline` (a past deadline: no wait at all).
    ///
    /// Type and owner are checked first, so an object planted by another user or one
    /// that is not a regular file is refused at once; then the header is read through
    /// the descriptor until it is ready, and only then is the object mapped.
    pub fn open_until(name: &LaneName, deadline: Instant) -> Result<Segment, LaneError> {
        let object = name.object_name();
        // SAFETY: `object` is a NUL-terminated C string that outlives the call.
        let fd = unsafe { libc::shm_open(object.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC, 0) };
        if fd < 0 {
            let err = io::Error::last_os_error();
            return Err(match err.raw_os_error() {
                Some(libc::ENOENT) => LaneError::NotFound(name.to_string()),
                Some(libc::EACCES) => LaneError::PermissionDenied(name.to_string()),
                _ => LaneError::Io {
                    name: name.to_string(),
                    what: "shm_open".into(),
                    source: err,
                },
            });
        }
        // SAFETY: `fd` was just returned by shm_open and is owned by nobody else.
        let file = unsafe { File::from_raw_fd(fd) };
        // Neither the type nor the owner changes while a creator finishes: check them
        // before waiting for anything.
        check_access(name, &fstat(&file, name)?)?;
        // A creator reserves the object right after creating it and then writes the
        // header: wait (bounded) until the header is ready. Reading through the
        // descriptor never allocates a page, so a half-made object on a full /dev/shm
        // cannot fault here, as a load through a mapping would.
        let size = wait_ready(&file, name, deadline)?;
        let map = MmapRaw::map_raw(&file).map_err(|source| LaneError::Io {
            name: name.to_string(),
            what: "mmap".into(),
            source,
        })?;
        // The mapping's own length is what counts: the object may have been resized
        // between the fstat above and the mmap (which sizes the mapping itself).
        let mapped = map.len() as u64;
        if mapped < HEADER_BYTES as u64 {
            return Err(LaneError::Header {
                name: name.to_string(),
                source: header::HeaderError::TooShort { found: mapped },
            });
        }
        // SAFETY: the mapping is at least HEADER_BYTES long (checked just above) and
        // page-aligned, and SegmentHeader is made of atomics only, valid for any bytes.
        // Its first page holds the ready word read above, so it is allocated.
        let header = unsafe { &*(map.as_ptr() as *const SegmentHeader) };
        // Acquire pairs with the creator's Release store of READY. The read through
        // the descriptor saw READY already, and the word never changes once set; a
        // writer that changes it anyway has corrupted the header.
        if header.ready.load(Ordering::Acquire) != READY {
            return Err(LaneError::Header {
                name: name.to_string(),
                source: header::HeaderError::NotReady,
            });
        }
        let words = header::read_words(header);
        // The size is checked separately below, to tell a truncated object apart.
        let mut info = header::decode(&words, u64::MAX).map_err(|source| LaneError::Header {
            name: name.to_string(),
            source,
        })?;
        let smallest = size.min(mapped);
        if smallest < info.segment_bytes as u64 {
            return Err(LaneError::Truncated {
                name: name.to_string(),
                size: smallest,
                needed: info.segment_bytes as u64,
            });
        }
        info.metadata = read_metadata(&file, name, &words)?;
        Ok(Segment {
            name: name.clone(),
            file,
            map,
            info,
        })
    }

    /// Whether the object still has at least the size its header says (`fstat`); a
    /// lane truncated since it was opened faults (SIGBUS) on any access beyond its
    /// new end. Long-running tools check this before each round of reads; it narrows
    /// the window but cannot close it.
    pub fn check_size(&self) -> Result<(), LaneError> {
        let size = fstat(&self.file, &self.name)?.len();
        if size < self.info.segment_bytes as u64 {
            return Err(LaneError::Truncated {
                name: self.name.to_string(),
                size,
                needed: self.info.segment_bytes as u64,
            });
        }
        Ok(())
    }

    /// The lane name.
    pub fn name(&self) -> &LaneName {
        &self.name
    }

    /// The validated header.
    pub fn info(&self) -> &HeaderInfo {
        &self.info
    }

    /// The header in the mapping.
    pub fn header(&self) -> &SegmentHeader {
        // SAFETY: the mapping is at least HEADER_BYTES long (checked when it was
        // created or opened), page-aligned, lives as long as `self`, and the header is
        // made of atomics only.
        unsafe { &*(self.map.as_ptr() as *const SegmentHeader) }
    }

    /// The core structure's memory as a region.
    ///
    /// # Safety
    /// `H` must be the core header type of this segment's kind.
    pub(crate) unsafe fn core_parts<H: tensorlane_core::ControlBlock>(
        &self,
    ) -> tensorlane_core::Parts<'_, H> {
        // The core structure only, without the metadata area after it.
        let len = (self.info.geometry.core_bytes()).unwrap_or(0);
        // SAFETY: the mapping holds at least `segment_bytes` bytes (validated against
        // the object size), so `HEADER_BYTES..segment_bytes` is inside it; it lives as
        // long as `self`; other processes access it only atomically (docs/LAYOUT.md),
        // except within the SPSC loans the core hands out.
        let parts =
            unsafe { tensorlane_core::attach::<H>(self.map.as_mut_ptr().add(HEADER_BYTES), len) };
        parts.expect("the core offset is 128-aligned and the size was validated")
    }

    /// Makes this process's mapping of the segment resident: faulted in
    /// (`prefault`) and locked in memory (`lock`); see [`OpenOptions`].
    pub(crate) fn make_resident(&self, prefault: bool, lock: bool) -> Result<(), LaneError> {
        if prefault {
            crate::resident::prefault(&self.map, &self.name)?;
        }
        if lock {
            crate::resident::lock(&self.map, &self.name)?;
        }
        Ok(())
    }

    /// Tries to take the lock of role byte `role`; `false` if another holder has it.
    pub(crate) fn lock_role(&self, role: u64) -> Result<bool, LaneError> {
        try_lock_roles(&self.file, role, 1).map_err(|source| LaneError::Io {
            name: self.name.to_string(),
            what: "fcntl(F_OFD_SETLK)".into(),
            source,
        })
    }

    /// Releases this descriptor's lock of role byte `role`.
    pub(crate) fn unlock_role(&self, role: u64) {
        let mut lock = role_lock(role, 1, libc::F_UNLCK);
        // SAFETY: `lock` is a valid flock for the duration of the call; F_OFD_SETLK
        // does not block.
        unsafe { libc::fcntl(self.file.as_raw_fd(), libc::F_OFD_SETLK, &mut lock) };
    }

    /// Whether some other open file description holds role byte `role`, that is,
    /// whether the role has a live owner (other than this handle).
    pub fn role_alive(&self, role: u64) -> Result<bool, LaneError> {
        let mut lock = role_lock(role, 1, libc::F_WRLCK);
        // SAFETY: `lock` is a valid flock for the duration of the call; F_OFD_GETLK
        // only fills it.
        let rc = unsafe { libc::fcntl(self.file.as_raw_fd(), libc::F_OFD_GETLK, &mut lock) };
        if rc != 0 {
            return Err(errno_error("fcntl(F_OFD_GETLK)", &self.name));
        }
        Ok(lock.l_type != libc::F_UNLCK as libc::c_short)
    }
}

fn role_lock(first_role: u64, roles: u64, kind: libc::c_int) -> libc::flock {
    // SAFETY: flock is a plain C struct for which all-zero is a valid value.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = kind as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = first_role as libc::off_t;
    lock.l_len = roles as libc::off_t;
    lock
}

/// Tries to take, for `file`'s open file description, the role locks of bytes
/// `first_role .. first_role + roles` at once; `Ok(false)` if another open file
/// description holds any of them. Released when the description is closed.
pub fn try_lock_roles(file: &File, first_role: u64, roles: u64) -> io::Result<bool> {
    let mut lock = role_lock(first_role, roles, libc::F_WRLCK);
    // SAFETY: `lock` is a valid flock for the duration of the call and `file` is an
    // open descriptor; F_OFD_SETLK does not block.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_SETLK, &mut lock) };
    if rc == 0 {
        return Ok(true);
    }
    let err = io::Error::last_os_error();
    match err.raw_os_error() {
        Some(libc::EAGAIN) | Some(libc::EACCES) => Ok(false),
        _ => Err(err),
    }
}

/// Sizes a new object to `bytes` and reserves its memory, so that no later access
/// can fault for want of space (a sparse object on a full tmpfs raises SIGBUS at the
/// first touch of an unallocated page, even a read).
fn reserve(file: &File, name: &LaneName, bytes: usize) -> Result<(), LaneError> {
    let len = libc::off_t::try_from(bytes).map_err(|_| LaneError::TooLarge)?;
    // A signal can interrupt a long reservation (the kernel undoes its part); retry
    // a bounded number of times.
    for _ in 0..100 {
        // SAFETY: `file` owns an open descriptor; posix_fallocate touches no memory of
        // this process.
        let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
        match rc {
            0 => return Ok(()),
            libc::EINTR => continue,
            libc::ENOSPC | libc::EDQUOT | libc::ENOMEM => {
                return Err(LaneError::NoSpace {
                    name: name.to_string(),
                    needed: bytes as u64,
                    available: free_bytes(file),
                })
            }
            libc::EFBIG => return Err(LaneError::TooLarge),
            _ => {
                return Err(LaneError::Io {
                    name: name.to_string(),
                    what: "posix_fallocate".into(),
                    source: io::Error::from_raw_os_error(rc),
                })
            }
        }
    }
    Err(LaneError::Io {
        name: name.to_string(),
        what: "posix_fallocate".into(),
        source: io::Error::from_raw_os_error(libc::EINTR),
    })
}

/// Bytes free for unprivileged use on `file`'s file system, if it says.
fn free_bytes(file: &File) -> Option<u64> {
    // SAFETY: statvfs is a plain C struct for which all-zero is a valid value.
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `file` owns an open descriptor and `stat` is valid for writes.
    if unsafe { libc::fstatvfs(file.as_raw_fd(), &mut stat) } != 0 {
        return None;
    }
    #[allow(clippy::useless_conversion)] // the field types differ between targets
    u64::from(stat.f_bavail).checked_mul(u64::from(stat.f_frsize))
}

fn fstat(file: &File, name: &LaneName) -> Result<std::fs::Metadata, LaneError> {
    file.metadata().map_err(|source| LaneError::Io {
        name: name.to_string(),
        what: "fstat".into(),
        source,
    })
}

/// Refuses an object that is not a regular file, or that this process may not use:
/// one owned by another user, unless it is a group lane (mode exactly 0660) of one of
/// this process's groups.
fn check_access(name: &LaneName, meta: &std::fs::Metadata) -> Result<(), LaneError> {
    if !meta.file_type().is_file() {
        return Err(LaneError::NotRegular(name.to_string()));
    }
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if meta.uid() == me || (meta.mode() & 0o7777 == GROUP_MODE && in_group(meta.gid())) {
        return Ok(());
    }
    Err(LaneError::ForeignOwner {
        name: name.to_string(),
        owner: meta.uid(),
    })
}

/// Whether `gid` is this process's effective group or one of its supplementary ones.
fn in_group(gid: u32) -> bool {
    // SAFETY: getegid has no preconditions.
    if unsafe { libc::getegid() } == gid {
        return true;
    }
    // SAFETY: with a size of 0, getgroups writes nothing and returns the count.
    let count = unsafe { libc::getgroups(0, std::ptr::null_mut()) };
    let Ok(len) = usize::try_from(count) else {
        return false;
    };
    let mut groups: Vec<libc::gid_t> = vec![0; len];
    // SAFETY: `groups` has room for `count` entries.
    let got = unsafe { libc::getgroups(count, groups.as_mut_ptr()) };
    // A negative count: the list grew in between (another thread); refuse.
    usize::try_from(got).is_ok_and(|got| groups[..got.min(len)].contains(&gid))
}

/// Waits until `deadline` for the object to hold a ready header, reading through the
/// descriptor; returns the object's size.
fn wait_ready(file: &File, name: &LaneName, deadline: Instant) -> Result<u64, LaneError> {
    let ready_at = std::mem::offset_of!(SegmentHeader, ready) as u64;
    loop {
        let size = fstat(file, name)?.len();
        if size >= HEADER_BYTES as u64 {
            let mut word = [0u8; 8];
            match file.read_exact_at(&mut word, ready_at) {
                Ok(()) if u64::from_le_bytes(word) == READY => return Ok(size),
                Ok(()) => {}
                // Truncated since the fstat: as if not sized yet.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {}
                Err(source) => {
                    return Err(LaneError::Io {
                        name: name.to_string(),
                        what: "pread".into(),
                        source,
                    })
                }
            }
        }
        if Instant::now() >= deadline {
            let source = if size < HEADER_BYTES as u64 {
                header::HeaderError::TooShort { found: size }
            } else {
                header::HeaderError::NotReady
            };
            return Err(LaneError::Header {
                name: name.to_string(),
                source,
            });
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Reads and validates the metadata area of a segment whose header `words` have been
/// validated (so the area is at most `MAX_METADATA_BYTES` and inside the object's
/// validated size), through the descriptor: a concurrent truncation is an error, not
/// a fault.
fn read_metadata(
    file: &File,
    name: &LaneName,
    words: &[u64; header::field::COUNT_OF_FIELDS],
) -> Result<crate::metadata::Metadata, LaneError> {
    let area = header::metadata_area(words);
    let corrupt = |source| LaneError::Header {
        name: name.to_string(),
        source,
    };
    let len = usize::try_from(area.bytes)
        .ok()
        .filter(|&len| len <= crate::metadata::MAX_METADATA_BYTES)
        .ok_or_else(|| {
            corrupt(header::HeaderError::Metadata(
                crate::metadata::MetadataError::TooLarge { bytes: area.bytes },
            ))
        })?;
    let mut bytes = vec![0u8; len];
    file.read_exact_at(&mut bytes, area.offset)
        .map_err(|source| match source.kind() {
            io::ErrorKind::UnexpectedEof => LaneError::Truncated {
                name: name.to_string(),
                size: fstat(file, name).map(|m| m.len()).unwrap_or(0),
                needed: area.offset.saturating_add(area.bytes),
            },
            _ => LaneError::Io {
                name: name.to_string(),
                what: "pread".into(),
                source,
            },
        })?;
    header::decode_metadata(&area, &bytes).map_err(corrupt)
}

/// Removes a lane's name. Processes that have it open keep their mapping.
pub fn unlink(name: &LaneName) -> Result<(), LaneError> {
    let object = name.object_name();
    // SAFETY: `object` is a NUL-terminated C string that outlives the call.
    if unsafe { libc::shm_unlink(object.as_ptr()) } != 0 {
        let err = io::Error::last_os_error();
        return Err(match err.raw_os_error() {
            Some(libc::ENOENT) => LaneError::NotFound(name.to_string()),
            _ => LaneError::Io {
                name: name.to_string(),
                what: "shm_unlink".into(),
                source: err,
            },
        });
    }
    Ok(())
}

/// Names of this library's segments: the regular files of `/dev/shm` with our
/// prefix (directories, FIFOs, sockets, devices and symbolic links are skipped).
pub fn list() -> io::Result<Vec<LaneName>> {
    let mut names: Vec<LaneName> = std::fs::read_dir("/dev/shm")?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| e.file_name().to_str().and_then(LaneName::from_object_file))
        .collect();
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    Ok(names)
}

/// This process's identity for a new header: pid, uid, creation time.
pub(crate) fn identity() -> (u64, u64, u64) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    // SAFETY: geteuid has no preconditions.
    (
        u64::from(std::process::id()),
        u64::from(unsafe { libc::geteuid() }),
        now,
    )
}

/// A fresh non-zero owner token for a role claim: pid in the high half, a per-process
/// counter mixed with the clock in the low half.
pub(crate) fn owner_token() -> u64 {
    use std::sync::atomic::AtomicU64;
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let clock = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    (u64::from(std::process::id()) << 32)
        | ((n.wrapping_mul(0x9e37_79b9) ^ clock) & 0xffff_ffff)
        | 1
}
