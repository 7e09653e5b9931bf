//! Typed elements: the Rust types a lane's tensor can be read and written as.
//!
//! [`Element`] is sealed: it is implemented for exactly one Rust type per [`DType`],
//! so a typed call can check the element type against the lane's dtype
//! ([`LaneError::WrongDType`]) and the slice length against the tensor's element
//! count ([`LaneError::WrongCount`]) before any byte moves.
//!
//! | dtype | Rust type |
//! |---|---|
//! | bool | `bool` |
//! | u8, u16, u32, u64 | `u8`, `u16`, `u32`, `u64` |
//! | i8, i16, i32, i64 | `i8`, `i16`, `i32`, `i64` |
//! | f16, bf16 | `half::f16`, `half::bf16` |
//! | f32, f64 | `f32`, `f64` |
//! | complex64, complex128 | `num_complex::Complex<f32>`, `num_complex::Complex<f64>` |
//!
//! `bool` has invalid bit patterns: a typed read of a `bool` lane copies the tensor
//! into a byte buffer first, checks every byte is 0 or 1 ([`LaneError::InvalidBool`]
//! otherwise) and only then converts; no invalid `bool` is ever formed.

use crate::dtype::{DType, TensorSpec};
use crate::error::LaneError;

/// A Rust type that is the element of one [`DType`]. Sealed: implemented for the
/// types of the table in the module docs only.
pub trait Element: sealed::Sealed + Copy + Send + Sync + 'static {
    /// The dtype whose elements this type represents.
    const DTYPE: DType;
}

mod sealed {
    use crate::error::LaneError;

    /// The byte views a typed call needs, private to this crate.
    pub trait Sealed: Sized {
        /// The elements' bytes, as the lane stores them (little-endian hosts).
        fn bytes(elements: &[Self]) -> &[u8];
        /// Lets `read` fill a byte view of `out`, then turns the bytes into elements.
        fn read_into<R>(
            out: &mut [Self],
            read: impl FnOnce(&mut [u8]) -> Result<R, LaneError>,
        ) -> Result<R, LaneError>;
    }
}

macro_rules! plain {
    ($($t:ty => $d:ident),* $(,)?) => {$(
        impl sealed::Sealed for $t {
            fn bytes(elements: &[Self]) -> &[u8] {
                bytemuck::cast_slice(elements)
            }
            fn read_into<R>(
                out: &mut [Self],
                read: impl FnOnce(&mut [u8]) -> Result<R, LaneError>,
            ) -> Result<R, LaneError> {
                // Every bit pattern is a valid element: the view is written directly.
                read(bytemuck::cast_slice_mut(out))
            }
        }
        impl Element for $t {
            const DTYPE: DType = DType::$d;
        }
    )*};
}

plain! {
    u8 => U8, u16 => U16, u32 => U32, u64 => U64,
    i8 => I8, i16 => I16, i32 => I32, i64 => I64,
    half::f16 => F16, half::bf16 => BF16, f32 => F32, f64 => F64,
    num_complex::Complex<f32> => Complex64, num_complex::Complex<f64> => Complex128,
}

impl sealed::Sealed for bool {
    fn bytes(elements: &[Self]) -> &[u8] {
        // `bool` is one byte, 0 or 1, without padding: its bytes are plain `u8`s.
        bytemuck::cast_slice(elements)
    }
    fn read_into<R>(
        out: &mut [Self],
        read: impl FnOnce(&mut [u8]) -> Result<R, LaneError>,
    ) -> Result<R, LaneError> {
        // Never a byte view of `out`: the bytes land in a buffer of `u8` and become
        // `bool`s only once each one is checked.
        let mut bytes = vec![0u8; out.len()];
        let result = read(&mut bytes)?;
        if let Some(index) = bytes.iter().position(|&b| b > 1) {
            return Err(LaneError::InvalidBool {
                index,
                byte: bytes[index],
            });
        }
        for (o, b) in out.iter_mut().zip(&bytes) {
            *o = *b == 1;
        }
        Ok(result)
    }
}

impl Element for bool {
    const DTYPE: DType = DType::Bool;
}

/// Checks that `T` is the lane's dtype and that `len` elements are `count` of its
/// tensors.
fn check<T: Element>(spec: &TensorSpec, count: usize, len: usize) -> Result<(), LaneError> {
    if T::DTYPE != spec.dtype() {
        return Err(LaneError::WrongDType {
            expected: spec.dtype(),
            found: T::DTYPE,
        });
    }
    let expected = spec.elements().saturating_mul(count);
    if len != expected {
        return Err(LaneError::WrongCount {
            expected,
            found: len,
        });
    }
    Ok(())
}

/// The bytes of `elements`, checked to be one tensor of `spec`.
pub(crate) fn as_bytes<'a, T: Element>(
    spec: &TensorSpec,
    elements: &'a [T],
) -> Result<&'a [u8], LaneError> {
    check::<T>(spec, 1, elements.len())?;
    Ok(T::bytes(elements))
}

/// The bytes of each of `tensors`, each checked to be one tensor of `spec`.
pub(crate) fn batch_as_bytes<'a, T: Element>(
    spec: &TensorSpec,
    tensors: &[&'a [T]],
) -> Result<Vec<&'a [u8]>, LaneError> {
    tensors.iter().map(|t| as_bytes(spec, t)).collect()
}

/// Runs `read` on a byte view of `out`, checked to be `count` tensors of `spec` back
/// to back.
pub(crate) fn read_batch_into<T: Element, R>(
    spec: &TensorSpec,
    count: usize,
    out: &mut [T],
    read: impl FnOnce(&mut [u8]) -> Result<R, LaneError>,
) -> Result<R, LaneError> {
    check::<T>(spec, count, out.len())?;
    T::read_into(out, read)
}

/// Runs `read` on a byte view of `out`, checked to be one tensor of `spec`.
pub(crate) fn read_into<T: Element, R>(
    spec: &TensorSpec,
    out: &mut [T],
    read: impl FnOnce(&mut [u8]) -> Result<R, LaneError>,
) -> Result<R, LaneError> {
    check::<T>(spec, 1, out.len())?;
    T::read_into(out, read)
}
