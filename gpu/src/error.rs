//! Errors of GPU lanes and their backends.

use std::fmt;
use std::io;
use tensorlane_shm::LaneError;

/// Why a GPU lane or backend operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum GpuError {
    /// No CUDA driver library could be loaded in this process.
    NoDriver(String),
    /// The driver has no device with this ordinal.
    NoDevice {
        /// Ordinal asked for.
        ordinal: usize,
        /// Devices the driver reports.
        count: usize,
    },
    /// The lane's memory lives on a device this process did not open.
    WrongDevice {
        /// Device of the lane (ordinal in the writer's process, and uuid).
        lane: String,
        /// Device of this process's backend.
        local: String,
    },
    /// The lane was created by another backend (host or CUDA) than the one opening it.
    WrongBackend {
        /// Backend of the lane.
        lane: &'static str,
        /// Backend opening it.
        local: &'static str,
    },
    /// The process opening the lane is the one that created it: CUDA refuses to import
    /// its own handles, and the writer already holds the memory.
    SameProcess,
    /// The lane was created by a newer (or older) GPU layout version.
    Version {
        /// Version of the lane.
        found: u64,
        /// Version this library reads.
        supported: u64,
    },
    /// The lane's element type is not one this library knows.
    UnsupportedDtype(u64),
    /// A CUDA driver call failed.
    Driver {
        /// The driver function.
        call: &'static str,
        /// The `CUresult` it returned, as text.
        result: String,
    },
    /// The feature needs something the driver or device does not offer.
    Unsupported(String),
    /// The lane's handshake (socket, descriptors, table) failed or was refused.
    Handoff(String),
    /// The lane table or a record from another process is invalid.
    Corrupt(String),
    /// The data given does not have the lane's tensor size.
    WrongSize {
        /// Bytes expected.
        expected: usize,
        /// Bytes given.
        found: usize,
    },
    /// The writer overwrote the slot while it was being read (lossy readers only: read
    /// again).
    Overwritten,
    /// The writer process is gone.
    WriterGone,
    /// A timed operation ran out of time (for a read: the write's completion event never
    /// fired).
    Timeout,
    /// A non-blocking read or receive (`read`, `try_*`, `view`) found nothing: no write
    /// yet, or none newer than the last one returned.
    Empty,
    /// A non-blocking publish (`try_publish*`) found a live lossless subscriber a full
    /// ring behind.
    Full,
    /// The item was published as `seq`, but its CPU mirror was not (for example
    /// a lossless mirror subscriber held the mirror back past the timeout). Publishing
    /// again would publish a second item.
    Mirror {
        /// Seq of the published item (from 1, as `Frame.seq`).
        seq: u64,
        /// Why the mirror failed.
        source: Box<GpuError>,
    },
    /// An operating-system call failed.
    Io(io::Error),
    /// The shared-memory lane carrying the records failed.
    Lane(LaneError),
}

impl fmt::Display for GpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpuError::NoDriver(why) => write!(f, "no CUDA driver: {why}"),
            GpuError::NoDevice { ordinal, count } => {
                write!(f, "no CUDA device {ordinal} (the driver reports {count})")
            }
            GpuError::WrongDevice { lane, local } => {
                write!(
                    f,
                    "lane memory is on device {lane}, this process opened {local}"
                )
            }
            GpuError::WrongBackend { lane, local } => {
                write!(
                    f,
                    "lane uses the {lane} backend, opened with the {local} backend"
                )
            }
            GpuError::SameProcess => {
                f.write_str("a GPU lane cannot be opened by the process that created it")
            }
            GpuError::Version { found, supported } => write!(
                f,
                "GPU lane has layout version {found}, this library reads version {supported}"
            ),
            GpuError::UnsupportedDtype(code) => write!(f, "unsupported dtype code {code}"),
            GpuError::Driver { call, result } => write!(f, "{call} failed: {result}"),
            GpuError::Unsupported(what) => write!(f, "unsupported: {what}"),
            GpuError::Handoff(why) => write!(f, "GPU lane handshake failed: {why}"),
            GpuError::Corrupt(why) => write!(f, "corrupt GPU lane: {why}"),
            GpuError::WrongSize { expected, found } => {
                write!(f, "tensor of {found} bytes, the lane carries {expected}")
            }
            GpuError::Overwritten => f.write_str("the slot was overwritten while it was read"),
            GpuError::WriterGone => f.write_str("the writer is gone"),
            GpuError::Timeout => f.write_str("timed out"),
            GpuError::Empty => f.write_str("nothing to read"),
            GpuError::Full => f.write_str("no room: a lossless subscriber is a full ring behind"),
            GpuError::Mirror { seq, source } => write!(
                f,
                "item {seq} was published, but not to the CPU mirror: {source}"
            ),
            GpuError::Io(e) => write!(f, "{e}"),
            GpuError::Lane(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for GpuError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            GpuError::Io(e) => Some(e),
            GpuError::Lane(e) => Some(e),
            GpuError::Mirror { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

impl From<io::Error> for GpuError {
    fn from(e: io::Error) -> Self {
        GpuError::Io(e)
    }
}

impl From<LaneError> for GpuError {
    fn from(e: LaneError) -> Self {
        match e {
            LaneError::WriterGone => GpuError::WriterGone,
            LaneError::Timeout => GpuError::Timeout,
            LaneError::Empty => GpuError::Empty,
            LaneError::Full => GpuError::Full,
            other => GpuError::Lane(other),
        }
    }
}
