//! Errors of the shared-memory layer.

use crate::dtype::DType;
use crate::header::{HeaderError, Kind};
use std::fmt;
use std::io;
use tensorlane_core::{
    Corruption, PopError, PublishError, PushError, RangeReadError, ReadError, RecvError, WriteError,
};

/// Why a lane operation failed.
///
/// The same bad input gives the same variant on every path (copy and loan; stream,
/// queue and topic): the errors of the core structures are mapped to it in one
/// place, this module.
#[derive(Debug)]
#[non_exhaustive]
pub enum LaneError {
    /// The lane name is invalid.
    Name(crate::name::NameError),
    /// The tensor spec is invalid.
    Spec(crate::dtype::SpecError),
    /// The geometry (slots, capacity, subscribers) is invalid.
    Geometry(tensorlane_core::GeometryError),
    /// The lane would not fit in memory.
    TooLarge,
    /// A lane with this name already exists.
    Exists(String),
    /// Shared memory (the `/dev/shm` file system, or the memory limit behind it) has
    /// no room for the lane; nothing was left behind.
    NoSpace {
        /// Lane name.
        name: String,
        /// Bytes the lane needs.
        needed: u64,
        /// Bytes the file system reported free, if it could tell.
        available: Option<u64>,
    },
    /// No lane has this name.
    NotFound(String),
    /// The lane's object may not be opened by this user.
    PermissionDenied(String),
    /// The lane belongs to another user.
    ForeignOwner {
        /// Lane name.
        name: String,
        /// Owner's uid.
        owner: u32,
    },
    /// The lane's object is not a regular file (a directory, FIFO, socket or device
    /// planted under a lane's name).
    NotRegular(String),
    /// The lane's object is smaller than its header says (it was truncated).
    Truncated {
        /// Lane name.
        name: String,
        /// Bytes the object has.
        size: u64,
        /// Bytes the header says the segment has.
        needed: u64,
    },
    /// The lane's header is invalid (corrupt, truncated, another version).
    Header {
        /// Lane name.
        name: String,
        /// What is wrong.
        source: HeaderError,
    },
    /// The metadata given at create is invalid (empty or duplicate key, too large).
    Metadata(crate::metadata::MetadataError),
    /// The lane is of another kind than asked for.
    WrongKind {
        /// Lane name.
        name: String,
        /// Kind asked for.
        expected: Kind,
        /// Kind found.
        found: Kind,
    },
    /// The lane's tensor differs from the expected one.
    WrongSpec {
        /// Lane name.
        name: String,
        /// Expected tensor.
        expected: String,
        /// Tensor found.
        found: String,
    },
    /// A typed call's element type is not the lane's dtype.
    WrongDType {
        /// The lane's dtype.
        expected: DType,
        /// The element type's dtype.
        found: DType,
    },
    /// A typed call's slice does not hold the lane's number of elements.
    WrongCount {
        /// Elements the lane's tensor has.
        expected: usize,
        /// Elements given.
        found: usize,
    },
    /// A typed read of a `bool` lane found a byte that is neither 0 nor 1 (the value
    /// is not a tensor of `bool`; nothing invalid was handed out).
    InvalidBool {
        /// Index of the first offending element.
        index: usize,
        /// Its byte.
        byte: u8,
    },
    /// The data given does not have the lane's tensor size.
    WrongSize {
        /// Bytes expected.
        expected: usize,
        /// Bytes given.
        found: usize,
    },
    /// A live process holds the role.
    RoleTaken {
        /// Lane name.
        name: String,
        /// The role.
        role: &'static str,
    },
    /// The lane's shared state is corrupt.
    Corrupt(tensorlane_core::Corruption),
    /// The subscriber table is full.
    TableFull(String),
    /// This subscriber was evicted (its process was presumed dead).
    Evicted,
    /// The lane's writer side (a stream's writer, a queue's producer or a topic's
    /// publisher) is gone and everything it wrote was read: nothing newer will come.
    /// A stream's last value stays readable.
    WriterGone,
    /// A non-blocking call (`try_pop`, `try_recv`, `try_read_new`, `read`) found
    /// nothing to return now.
    Empty,
    /// A non-blocking call (`try_push`, `try_publish`) found no room now.
    Full,
    /// A timed operation (`*_timeout`, `*_deadline`) ran out of time.
    Timeout,
    /// Every read attempt raced a write (a writer lapping this reader without pause).
    Stalled,
    /// An error of a core structure that no other variant describes (a variant the
    /// core added after this mapping was written); it is the [`source`] of this one.
    ///
    /// [`source`]: std::error::Error::source
    Other(Box<dyn std::error::Error + Send + Sync>),
    /// Locking the lane's mapping in memory (`lock_memory`) was refused: the bytes
    /// locked by this process would exceed its `RLIMIT_MEMLOCK`, and it lacks
    /// `CAP_IPC_LOCK`. Raise the limit with `ulimit -l <KiB>` (or `unlimited`) in the
    /// shell that starts the process, a `memlock` line in
    /// `/etc/security/limits.conf`, `LimitMEMLOCK=` in a systemd unit, or grant the
    /// process `CAP_IPC_LOCK`.
    MemoryLock {
        /// Lane name.
        name: String,
        /// Bytes of the mapping that were to be locked.
        bytes: u64,
        /// The process's `RLIMIT_MEMLOCK` in bytes (`None`: unlimited or unknown).
        limit: Option<u64>,
        /// The error `mlock` returned.
        source: io::Error,
    },
    /// A system call failed.
    Io {
        /// Lane name.
        name: String,
        /// Which call.
        what: String,
        /// The OS error.
        source: io::Error,
    },
}

impl fmt::Display for LaneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LaneError::Name(e) => e.fmt(f),
            LaneError::Spec(e) => write!(f, "invalid tensor: {e}"),
            LaneError::Geometry(e) => write!(f, "invalid lane geometry: {e}"),
            LaneError::TooLarge => f.write_str("lane too large"),
            LaneError::Exists(n) => write!(f, "lane {n:?} already exists"),
            LaneError::NoSpace {
                name,
                needed,
                available,
            } => {
                write!(f, "lane {name:?}: no room in shared memory for {needed} bytes")?;
                match available {
                    Some(free) => write!(f, " ({free} bytes free)"),
                    None => Ok(()),
                }
            }
            LaneError::NotFound(n) => write!(f, "no lane named {n:?}"),
            LaneError::PermissionDenied(n) => write!(f, "lane {n:?}: permission denied"),
            LaneError::ForeignOwner { name, owner } => {
                write!(f, "lane {name:?} belongs to uid {owner}, not to this user")
            }
            LaneError::NotRegular(n) => write!(f, "lane {n:?}: not a regular file"),
            LaneError::Truncated { name, size, needed } => write!(
                f,
                "lane {name:?}: the object has {size} bytes, its header says {needed} (it was truncated)"
            ),
            LaneError::Header { name, source } => write!(f, "lane {name:?}: {source}"),
            LaneError::Metadata(e) => write!(f, "invalid metadata: {e}"),
            LaneError::WrongKind {
                name,
                expected,
                found,
            } => write!(f, "lane {name:?} is a {found}, not a {expected}"),
            LaneError::WrongSpec {
                name,
                expected,
                found,
            } => write!(f, "lane {name:?} carries {found}, expected {expected}"),
            LaneError::WrongDType { expected, found } => {
                write!(f, "elements are {found}, the lane carries {expected}")
            }
            LaneError::WrongCount { expected, found } => {
                write!(f, "{found} elements given, the lane's tensor has {expected}")
            }
            LaneError::InvalidBool { index, byte } => {
                write!(f, "element {index} of a bool tensor is the byte {byte}, not 0 or 1")
            }
            LaneError::WrongSize { expected, found } => {
                write!(f, "tensor has {found} bytes, the lane carries {expected}")
            }
            LaneError::RoleTaken { name, role } => {
                write!(
                    f,
                    "lane {name:?}: the {role} role is held by a live process"
                )
            }
            LaneError::Corrupt(c) => write!(f, "lane state is corrupt: {c}"),
            LaneError::TableFull(n) => write!(f, "lane {n:?}: subscriber table is full"),
            LaneError::Evicted => f.write_str("this subscriber was evicted"),
            LaneError::WriterGone => f.write_str("the lane's writer side is gone"),
            LaneError::Empty => f.write_str("nothing to receive now"),
            LaneError::Full => f.write_str("no room now"),
            LaneError::Timeout => f.write_str("timed out"),
            LaneError::Stalled => f.write_str("every read attempt raced a write"),
            LaneError::Other(e) => e.fmt(f),
            LaneError::MemoryLock {
                name,
                bytes,
                limit,
                source,
            } => {
                write!(f, "lane {name:?}: cannot lock {bytes} bytes in memory ({source}")?;
                match limit {
                    Some(limit) => write!(f, "; RLIMIT_MEMLOCK is {limit} bytes")?,
                    None => f.write_str("; RLIMIT_MEMLOCK is unlimited")?,
                }
                f.write_str(
                    "): raise the limit with `ulimit -l`, a `memlock` line in \
                     /etc/security/limits.conf or `LimitMEMLOCK=` for a systemd \
                     service, or give the process CAP_IPC_LOCK",
                )
            }
            LaneError::Io { name, what, source } => write!(f, "lane {name:?}: {what}: {source}"),
        }
    }
}

impl std::error::Error for LaneError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LaneError::Name(e) => Some(e),
            LaneError::Spec(e) => Some(e),
            LaneError::Header { source, .. } => Some(source),
            LaneError::Metadata(e) => Some(e),
            LaneError::Geometry(e) => Some(e),
            LaneError::Corrupt(e) => Some(e),
            LaneError::Other(e) => Some(&**e),
            LaneError::MemoryLock { source, .. } => Some(source),
            LaneError::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<crate::name::NameError> for LaneError {
    fn from(e: crate::name::NameError) -> Self {
        LaneError::Name(e)
    }
}

impl From<crate::dtype::SpecError> for LaneError {
    fn from(e: crate::dtype::SpecError) -> Self {
        LaneError::Spec(e)
    }
}

impl From<tensorlane_core::GeometryError> for LaneError {
    fn from(e: tensorlane_core::GeometryError) -> Self {
        LaneError::Geometry(e)
    }
}

// The one mapping from the core structures' errors to `LaneError`. `expected` is the
// frame size (prefix and tensor) the lane's items have.

/// An item of `found` bytes where the lane's frames have `expected`.
pub(crate) fn wrong_length(found: usize, expected: usize) -> LaneError {
    LaneError::Corrupt(Corruption::Length {
        found: found as u64,
        max: expected as u64,
    })
}

/// A failed register write.
pub(crate) fn from_write(e: WriteError) -> LaneError {
    match e {
        WriteError::TooLarge { len, max } => LaneError::WrongSize {
            expected: max,
            found: len,
        },
        other => other_error(other),
    }
}

/// A failed SPSC push (copy or loan).
pub(crate) fn from_push(e: PushError) -> LaneError {
    match e {
        PushError::Full => LaneError::Full,
        PushError::TooLarge { len, max } => LaneError::WrongSize {
            expected: max,
            found: len,
        },
        PushError::Corrupt(c) => LaneError::Corrupt(c),
        other => other_error(other),
    }
}

/// A failed SPSC pop or peek, for frames of `expected` bytes.
pub(crate) fn from_pop(e: PopError, expected: usize) -> LaneError {
    match e {
        PopError::Empty => LaneError::Empty,
        // Only an item longer than a frame can fail to fit a frame's buffer.
        PopError::BufferTooSmall { needed } => wrong_length(needed, expected),
        PopError::Corrupt(c) => LaneError::Corrupt(c),
        other => other_error(other),
    }
}

/// A failed register read, for frames of `expected` bytes.
pub(crate) fn from_read(e: ReadError, expected: usize) -> LaneError {
    match e {
        ReadError::Empty | ReadError::NotNew => LaneError::Empty,
        ReadError::BufferTooSmall { needed } => wrong_length(needed, expected),
        ReadError::Stalled { .. } => LaneError::Stalled,
        ReadError::Corrupt(c) => LaneError::Corrupt(c),
        other => other_error(other),
    }
}

/// A failed broadcast publish.
pub(crate) fn from_publish(e: PublishError) -> LaneError {
    match e {
        PublishError::Full { .. } => LaneError::Full,
        PublishError::TooLarge { len, max } => LaneError::WrongSize {
            expected: max,
            found: len,
        },
        PublishError::Corrupt(c) => LaneError::Corrupt(c),
        other => other_error(other),
    }
}

/// A failed broadcast receive, for frames of `expected` bytes.
pub(crate) fn from_recv(e: RecvError, expected: usize) -> LaneError {
    match e {
        RecvError::Empty => LaneError::Empty,
        RecvError::Stalled { .. } => LaneError::Stalled,
        RecvError::Evicted => LaneError::Evicted,
        RecvError::BufferTooSmall { needed } => wrong_length(needed, expected),
        RecvError::Corrupt(c) => LaneError::Corrupt(c),
        other => other_error(other),
    }
}

/// A failed register range read, for frames of `expected` bytes.
pub(crate) fn from_range_read(e: RangeReadError, expected: usize) -> LaneError {
    match e {
        RangeReadError::Read(e) => from_read(e, expected),
        // The value is shorter than a frame of the lane's tensor.
        RangeReadError::Outside { len, .. } => wrong_length(len, expected),
        other => other_error(other),
    }
}

/// A core error no other variant describes.
fn other_error(e: impl std::error::Error + Send + Sync + 'static) -> LaneError {
    LaneError::Other(Box::new(e))
}
