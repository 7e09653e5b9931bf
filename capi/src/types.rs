//! The C structs: tensor spec, frame, subscribe options, and the dtype and mode
//! codes, with their conversions to and from the Rust types.
//!
//! Every struct is `#[repr(C)]` with integer fields only, so any bit pattern C
//! passes is a valid value; codes (dtype, mode) and lengths (`ndim`) are checked
//! when converted, never trusted.

use crate::status::{tl_status, Failure};
use tensorlane_shm::{DType, Frame, Mode, SubscribeOptions, TensorSpec, MAX_DIMS};

/// Most dimensions a tensor may have.
pub const TL_MAX_DIMS: usize = 8;
const _: () = assert!(TL_MAX_DIMS == MAX_DIMS);

/// A timeout that waits without limit.
pub const TL_FOREVER: i64 = -1;

/// Element types: the codes of `tl_spec::dtype` (those of the segment header).
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum tl_dtype {
    /// `bool`, one byte (0 or 1).
    TL_BOOL = 1,
    /// `uint8_t`.
    TL_U8 = 2,
    /// `uint16_t`.
    TL_U16 = 3,
    /// `uint32_t`.
    TL_U32 = 4,
    /// `uint64_t`.
    TL_U64 = 5,
    /// `int8_t`.
    TL_I8 = 6,
    /// `int16_t`.
    TL_I16 = 7,
    /// `int32_t`.
    TL_I32 = 8,
    /// `int64_t`.
    TL_I64 = 9,
    /// IEEE 754 binary16.
    TL_F16 = 10,
    /// bfloat16.
    TL_BF16 = 11,
    /// `float`.
    TL_F32 = 12,
    /// `double`.
    TL_F64 = 13,
    /// Two `float` (real, imaginary).
    TL_COMPLEX64 = 14,
    /// Two `double` (real, imaginary).
    TL_COMPLEX128 = 15,
}

/// A tensor: element type and C-contiguous (row-major) shape.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct tl_spec {
    /// Element type, a `tl_dtype` code.
    pub dtype: u32,
    /// Number of dimensions, at most `TL_MAX_DIMS` (0: a scalar).
    pub ndim: u32,
    /// The dimensions; entries from `ndim` on are ignored (and written as 0).
    pub shape: [u64; TL_MAX_DIMS],
}

/// Metadata of one item received.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct tl_frame {
    /// Sequence number: the n-th item written to the lane has `seq == n` (from 1).
    pub seq: u64,
    /// Frame id given by the writer (counting from 1).
    pub frame_id: u64,
    /// Write time in nanoseconds in the lane's clock (`CLOCK_MONOTONIC` by default),
    /// 0 for a lane that does not stamp.
    pub timestamp_ns: u64,
    /// Items this reader missed before this one (overwritten stream values, a lossy
    /// subscriber's skips); always 0 on a queue.
    pub missed: u64,
}

/// Subscriber modes: the codes of `tl_subscribe_options::mode`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum tl_mode {
    /// Every item; a slow subscriber holds the publisher back (until evicted).
    TL_LOSSLESS = 0,
    /// Never holds the publisher back; stays at most `max_lag` items behind,
    /// skipping and counting older ones (`tl_frame::missed`).
    TL_LOSSY = 1,
}

/// How a subscriber joins a topic.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct tl_subscribe_options {
    /// `TL_LOSSLESS` or `TL_LOSSY`.
    pub mode: u32,
    /// For `TL_LOSSY`: the lag bound, clamped to 1..capacity (1: only the newest).
    pub max_lag: u64,
    /// Start this many items before the newest (clamped to the capacity and to
    /// what was published); 0 starts with the next item published.
    pub history: u64,
}

/// The Rust spec of a C spec.
pub(crate) fn spec_from_c(spec: &tl_spec) -> Result<TensorSpec, Failure> {
    let dtype = DType::from_code(spec.dtype).ok_or_else(|| {
        Failure::new(
            tl_status::TL_ERR_INVALID_ARGUMENT,
            format!("dtype code {} is no tl_dtype", spec.dtype),
        )
    })?;
    let ndim = usize::try_from(spec.ndim)
        .ok()
        .filter(|&n| n <= TL_MAX_DIMS)
        .ok_or_else(|| {
            Failure::new(
                tl_status::TL_ERR_INVALID_ARGUMENT,
                format!("{} dimensions (at most {TL_MAX_DIMS})", spec.ndim),
            )
        })?;
    TensorSpec::new(dtype, &spec.shape[..ndim])
        .map_err(|e| Failure::new(tl_status::TL_ERR_INVALID_ARGUMENT, e.to_string()))
}

/// The C spec of a Rust spec.
pub(crate) fn spec_to_c(spec: &TensorSpec) -> tl_spec {
    let mut shape = [0u64; TL_MAX_DIMS];
    // A valid spec has at most MAX_DIMS dimensions; `zip` stops at the shorter anyway.
    for (to, from) in shape.iter_mut().zip(spec.shape()) {
        *to = *from;
    }
    tl_spec {
        dtype: spec.dtype().code(),
        ndim: spec.shape().len().min(TL_MAX_DIMS) as u32,
        shape,
    }
}

/// The C frame of a Rust frame.
pub(crate) fn frame_to_c(frame: &Frame) -> tl_frame {
    tl_frame {
        seq: frame.seq,
        frame_id: frame.frame_id,
        timestamp_ns: frame.timestamp_ns,
        missed: frame.missed,
    }
}

/// The Rust options of C subscribe options (lossless from the tail if NULL).
pub(crate) fn subscribe_from_c(
    options: Option<&tl_subscribe_options>,
) -> Result<SubscribeOptions, Failure> {
    let Some(options) = options else {
        return Ok(SubscribeOptions::lossless());
    };
    let mode = match options.mode {
        0 => Mode::Lossless,
        1 => Mode::Lossy {
            max_lag: options.max_lag,
        },
        other => {
            return Err(Failure::new(
                tl_status::TL_ERR_INVALID_ARGUMENT,
                format!("subscriber mode {other} is no tl_mode"),
            ))
        }
    };
    Ok(SubscribeOptions::new(mode).with_history(options.history))
}
