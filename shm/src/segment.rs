//! POSIX shared-memory segments: create, open, map, unlink, list, and role locks.
//!
//! A segment is created with `shm_open(O_CREAT | O_EXCL)`, mode 0600 (0660 when
//! group access is asked for), sized with `ftruncate`, mapped shared, and its header
//! written before the ready word is released. Opening checks that the object belongs
//! to this user, that it is at least as large as its header says, and validates the
//! header before anything else in it is used.
//!
//! Roles (writer, consumer, subscriber `i`) are owned through open-file-description
//! locks (`F_OFD_SETLK`) on one byte per role of the segment's descriptor. The
//! kernel releases them when the owner's process dies, however it dies, and they do
//! not suffer from pid reuse; a role whose lock nobody holds has no live owner.
//!
//! Limits: a child created by `fork` (without `exec`) shares its parent's open file
//! descriptions and so its role locks; it must not use the parent's handles, and the
//! roles stay "alive" while it lives. A process that truncates a segment others have
//! mapped makes their accesses beyond the new end fault (SIGBUS); only processes of
//! the owning user can open segments (mode 0600 by default).

use crate::error::LaneError;
use crate::header::{self, HeaderInfo, SegmentHeader, HEADER_BYTES, READY};
use crate::name::LaneName;
use memmap2::MmapRaw;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
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

/// Options for creating a segment.
#[derive(Debug, Clone, Copy, Default)]
pub struct CreateOptions {
    /// Let the owner's group open the lane (mode 0660 instead of 0600).
    pub group_access: bool,
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
        options: CreateOptions,
    ) -> Result<Segment, LaneError> {
        let object = name.object_name();
        let mode: libc::mode_t = if options.group_access { 0o660 } else { 0o600 };
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
        file.set_len(info.segment_bytes as u64)
            .map_err(|source| LaneError::Io {
                name: name.to_string(),
                what: "ftruncate".into(),
                source,
            })?;
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
        let header = segment.header();
        for (i, word) in words.iter().enumerate() {
            header.field(i).store(*word, Ordering::Relaxed);
        }
        // Release: every field above (and the zeroed core structure) is visible to an
        // opener that sees READY. Partner: the Acquire load of `ready` in `open`.
        header.ready.store(READY, Ordering::Release);
        Ok(segment)
    }

    /// Opens and validates an existing segment.
    pub fn open(name: &LaneName) -> Result<Segment, LaneError> {
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
        let deadline = Instant::now() + READY_TIMEOUT;
        // A creator sizes the object right after creating it: wait (bounded) for that.
        let meta = loop {
            let meta = file.metadata().map_err(|source| LaneError::Io {
                name: name.to_string(),
                what: "fstat".into(),
                source,
            })?;
            if meta.len() >= HEADER_BYTES as u64 || Instant::now() >= deadline {
                break meta;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        use std::os::unix::fs::MetadataExt;
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        if meta.uid() != me {
            return Err(LaneError::ForeignOwner {
                name: name.to_string(),
                owner: meta.uid(),
            });
        }
        let size = meta.len();
        if size < HEADER_BYTES as u64 {
            return Err(LaneError::Header {
                name: name.to_string(),
                source: header::HeaderError::TooShort { found: size },
            });
        }
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
        let header = unsafe { &*(map.as_ptr() as *const SegmentHeader) };
        // Acquire pairs with the creator's Release store of READY.
        while header.ready.load(Ordering::Acquire) != READY {
            if Instant::now() >= deadline {
                return Err(LaneError::Header {
                    name: name.to_string(),
                    source: header::HeaderError::NotReady,
                });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        let words = header::read_words(header);
        let info = header::decode(&words, mapped).map_err(|source| LaneError::Header {
            name: name.to_string(),
            source,
        })?;
        Ok(Segment {
            name: name.clone(),
            file,
            map,
            info,
        })
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
        let len = self.info.segment_bytes - HEADER_BYTES;
        // SAFETY: the mapping holds at least `segment_bytes` bytes (validated against
        // the object size), so `HEADER_BYTES..segment_bytes` is inside it; it lives as
        // long as `self`; other processes access it only atomically (docs/LAYOUT.md),
        // except within the SPSC loans the core hands out.
        let parts =
            unsafe { tensorlane_core::attach::<H>(self.map.as_mut_ptr().add(HEADER_BYTES), len) };
        parts.expect("the core offset is 128-aligned and the size was validated")
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

/// Names of this library's segments (entries of `/dev/shm` with our prefix).
pub fn list() -> io::Result<Vec<LaneName>> {
    let mut names: Vec<LaneName> = std::fs::read_dir("/dev/shm")?
        .filter_map(|e| e.ok())
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
