//! Errors of the shared-memory layer.

use crate::header::{HeaderError, Kind};
use std::fmt;
use std::io;

/// Why a lane operation failed.
#[derive(Debug)]
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
    /// The writer of a stream is gone and nothing newer will come.
    WriterGone,
    /// A timed operation ran out of time.
    Timeout,
    /// Every read attempt raced a write (a writer lapping this reader without pause).
    Stalled,
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
            LaneError::WriterGone => f.write_str("the writer is gone"),
            LaneError::Timeout => f.write_str("timed out"),
            LaneError::Stalled => f.write_str("every read attempt raced a write"),
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
