//! Tensor metadata: element types and shapes (C-contiguous).

use std::fmt;

/// Most dimensions a lane's tensor may have.
pub const MAX_DIMS: usize = 8;

/// Element type of a tensor, with its code in the segment header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum DType {
    /// `bool`, one byte (0 or 1).
    Bool = 1,
    /// `u8`.
    U8 = 2,
    /// `u16`.
    U16 = 3,
    /// `u32`.
    U32 = 4,
    /// `u64`.
    U64 = 5,
    /// `i8`.
    I8 = 6,
    /// `i16`.
    I16 = 7,
    /// `i32`.
    I32 = 8,
    /// `i64`.
    I64 = 9,
    /// IEEE 754 binary16.
    F16 = 10,
    /// bfloat16.
    BF16 = 11,
    /// `f32`.
    F32 = 12,
    /// `f64`.
    F64 = 13,
    /// Two `f32` (real, imaginary).
    Complex64 = 14,
    /// Two `f64` (real, imaginary).
    Complex128 = 15,
}

impl DType {
    /// Every dtype, in code order.
    pub const ALL: [DType; 15] = [
        DType::Bool,
        DType::U8,
        DType::U16,
        DType::U32,
        DType::U64,
        DType::I8,
        DType::I16,
        DType::I32,
        DType::I64,
        DType::F16,
        DType::BF16,
        DType::F32,
        DType::F64,
        DType::Complex64,
        DType::Complex128,
    ];

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            DType::Bool | DType::U8 | DType::I8 => 1,
            DType::U16 | DType::I16 | DType::F16 | DType::BF16 => 2,
            DType::U32 | DType::I32 | DType::F32 => 4,
            DType::U64 | DType::I64 | DType::F64 | DType::Complex64 => 8,
            DType::Complex128 => 16,
        }
    }

    /// The header code.
    pub fn code(self) -> u32 {
        self as u32
    }

    /// The dtype of a header code.
    pub fn from_code(code: u32) -> Option<DType> {
        DType::ALL.iter().copied().find(|d| d.code() == code)
    }

    /// The numpy-style name (`"float32"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DType::Bool => "bool",
            DType::U8 => "uint8",
            DType::U16 => "uint16",
            DType::U32 => "uint32",
            DType::U64 => "uint64",
            DType::I8 => "int8",
            DType::I16 => "int16",
            DType::I32 => "int32",
            DType::I64 => "int64",
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::Complex64 => "complex64",
            DType::Complex128 => "complex128",
        }
    }

    /// Parses a numpy-style name.
    pub fn from_name(name: &str) -> Option<DType> {
        DType::ALL.iter().copied().find(|d| d.name() == name)
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A tensor's element type and C-contiguous shape.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TensorSpec {
    dtype: DType,
    shape: Vec<u64>,
    bytes: usize,
}

/// Why a tensor spec was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpecError {
    /// More than [`MAX_DIMS`] dimensions.
    TooManyDims(usize),
    /// The byte size overflows.
    TooLarge,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SpecError::TooManyDims(n) => write!(f, "{n} dimensions (at most {MAX_DIMS})"),
            SpecError::TooLarge => f.write_str("tensor size overflows"),
        }
    }
}

impl std::error::Error for SpecError {}

impl TensorSpec {
    /// A tensor of `dtype` with `shape` (empty shape: a scalar).
    pub fn new(dtype: DType, shape: &[u64]) -> Result<Self, SpecError> {
        if shape.len() > MAX_DIMS {
            return Err(SpecError::TooManyDims(shape.len()));
        }
        let elements = shape
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .ok_or(SpecError::TooLarge)?;
        let bytes = elements
            .checked_mul(dtype.size() as u64)
            .filter(|&b| b <= tensorlane_core::MAX_SLOT_BYTES as u64 - 64)
            .ok_or(SpecError::TooLarge)? as usize;
        Ok(TensorSpec {
            dtype,
            shape: shape.to_vec(),
            bytes,
        })
    }

    /// A flat tensor of `bytes` bytes (`uint8`, one dimension).
    pub fn bytes(bytes: u64) -> Result<Self, SpecError> {
        TensorSpec::new(DType::U8, &[bytes])
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Shape.
    pub fn shape(&self) -> &[u64] {
        &self.shape
    }

    /// Number of elements.
    pub fn elements(&self) -> usize {
        self.bytes / self.dtype.size()
    }

    /// Size of one tensor in bytes.
    pub fn byte_len(&self) -> usize {
        self.bytes
    }
}

impl fmt::Display for TensorSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{:?}", self.dtype, self.shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_sizes() {
        for d in DType::ALL {
            assert_eq!(DType::from_code(d.code()), Some(d));
            assert_eq!(DType::from_name(d.name()), Some(d));
        }
        assert_eq!(DType::from_code(0), None);
        let spec = TensorSpec::new(DType::F32, &[100, 100]).unwrap();
        assert_eq!((spec.byte_len(), spec.elements()), (40_000, 10_000));
        assert!(TensorSpec::new(DType::F64, &[u64::MAX, 2]).is_err());
        assert!(TensorSpec::new(DType::U8, &[1; 9]).is_err());
        assert_eq!(TensorSpec::new(DType::F16, &[]).unwrap().byte_len(), 2);
    }
}
