//! `ndarray` views of lane tensors (feature `ndarray`).
//!
//! A lane's tensor is C-contiguous with the shape of its [`TensorSpec`]. These
//! functions view a buffer holding one tensor (a caller buffer filled by a read, or
//! the bytes lent by [`crate::QueueConsumer::pop_with`]) as an n-dimensional array,
//! without copying. The element type must have the dtype's size.
//!
//! ```
//! use tensorlane_shm::{array, DType, TensorSpec};
//! let spec = TensorSpec::new(DType::F32, &[2, 3]).unwrap();
//! let data = [0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0];
//! let view = array::view(&spec, &data).unwrap();
//! assert_eq!(view[[1, 2]], 5.0);
//! ```

use crate::dtype::TensorSpec;
use crate::error::LaneError;
use bytemuck::Pod;
use ndarray::{ArrayViewD, ArrayViewMutD, IxDyn};

fn dims<T>(spec: &TensorSpec, len: usize) -> Result<IxDyn, LaneError> {
    if std::mem::size_of::<T>() != spec.dtype().size() || len != spec.elements() {
        return Err(LaneError::WrongSize {
            expected: spec.byte_len(),
            found: len * std::mem::size_of::<T>(),
        });
    }
    let shape: Vec<usize> = spec.shape().iter().map(|&d| d as usize).collect();
    Ok(IxDyn(&shape))
}

/// Views `data` (one tensor of `spec`) as an array of `spec`'s shape.
pub fn view<'a, T: Pod>(spec: &TensorSpec, data: &'a [T]) -> Result<ArrayViewD<'a, T>, LaneError> {
    let dims = dims::<T>(spec, data.len())?;
    Ok(ArrayViewD::from_shape(dims, data).expect("length matches the shape"))
}

/// Views `data` mutably, to fill a tensor in place before writing it.
pub fn view_mut<'a, T: Pod>(
    spec: &TensorSpec,
    data: &'a mut [T],
) -> Result<ArrayViewMutD<'a, T>, LaneError> {
    let dims = dims::<T>(spec, data.len())?;
    Ok(ArrayViewMutD::from_shape(dims, data).expect("length matches the shape"))
}

/// Views raw tensor bytes as an array of `T`; fails if they are not aligned for `T`.
pub fn view_bytes<'a, T: Pod>(
    spec: &TensorSpec,
    bytes: &'a [u8],
) -> Result<ArrayViewD<'a, T>, LaneError> {
    let data: &[T] = bytemuck::try_cast_slice(bytes).map_err(|_| LaneError::WrongSize {
        expected: spec.byte_len(),
        found: bytes.len(),
    })?;
    view(spec, data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::DType;

    #[test]
    fn shapes_and_sizes_are_checked() {
        let spec = TensorSpec::new(DType::U16, &[2, 2, 2]).unwrap();
        let data = [0u16, 1, 2, 3, 4, 5, 6, 7];
        assert_eq!(view(&spec, &data).unwrap()[[1, 0, 1]], 5);
        assert!(view(&spec, &data[..7]).is_err());
        assert!(view(&spec, &[0u32; 8]).is_err());
        let mut out = [0u16; 8];
        view_mut(&spec, &mut out).unwrap()[[0, 1, 1]] = 9;
        assert_eq!(out[3], 9);
        let bytes = [0u64; 2];
        let v = view_bytes::<u16>(&spec, bytemuck::cast_slice(&bytes)).unwrap();
        assert_eq!(v.shape(), &[2, 2, 2]);
    }
}
