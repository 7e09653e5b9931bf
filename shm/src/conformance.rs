//! The conformance sequence: the tensors a conformance writer puts on a lane, so that
//! a reader in any language can check every item it receives without the writer.
//!
//! docs/CONFORMANCE.md is the specification; this module is its reference
//! implementation, used by `tensorlane conformance` and by the golden vectors
//! ([`vectors`]).
//!
//! Invariants:
//! - item `i` (the lane's sequence number, from 1) carries [`tensor`]`(case, i)`,
//!   whatever process wrote it (a writer that takes over continues the sequence);
//! - element `k` of item `i` depends only on the dtype, `i` and `k`, through the
//!   64-bit word [`word`]`(i, k)`; every value is exact in its dtype (floats are
//!   multiples of 1/4 between -31.75 and 31.75), so ports compare bytes, never
//!   approximately;
//! - the case table ([`CASES`]) is fixed: a case's name, dtype and shape never change
//!   meaning (new cases get new names).

use crate::dtype::{DType, SpecError, TensorSpec};

pub mod vectors;

/// Multiplier of the item index in [`word`].
pub const ITEM_MULTIPLIER: u64 = 0x9e37_79b9_7f4a_7c15;
/// Multiplier of the element index in [`word`].
pub const ELEMENT_MULTIPLIER: u64 = 0xc2b2_ae3d_27d4_eb4f;
/// Constant term of [`word`].
pub const WORD_OFFSET: u64 = 0x1656_67b1_9e37_79f9;

/// One conformance case: a named tensor (dtype and shape).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Case {
    /// The case's name; a lane of case `c` for the name `NAME` is `NAME.c`.
    pub name: &'static str,
    /// Element type.
    pub dtype: DType,
    /// Shape (empty: a scalar).
    pub shape: &'static [u64],
}

impl Case {
    /// The tensor spec of the case.
    pub fn spec(&self) -> Result<TensorSpec, SpecError> {
        TensorSpec::new(self.dtype, self.shape)
    }

    /// The case called `name`.
    pub fn named(name: &str) -> Option<Case> {
        CASES.iter().copied().find(|c| c.name == name)
    }
}

/// Every case: one per dtype with an odd shape, a scalar, and two zero-size tensors.
pub const CASES: [Case; 18] = [
    Case {
        name: "bool",
        dtype: DType::Bool,
        shape: &[3, 5],
    },
    Case {
        name: "uint8",
        dtype: DType::U8,
        shape: &[131],
    },
    Case {
        name: "uint16",
        dtype: DType::U16,
        shape: &[3, 3],
    },
    Case {
        name: "uint32",
        dtype: DType::U32,
        shape: &[5],
    },
    Case {
        name: "uint64",
        dtype: DType::U64,
        shape: &[2, 3],
    },
    Case {
        name: "int8",
        dtype: DType::I8,
        shape: &[13],
    },
    Case {
        name: "int16",
        dtype: DType::I16,
        shape: &[1, 7],
    },
    Case {
        name: "int32",
        dtype: DType::I32,
        shape: &[3],
    },
    Case {
        name: "int64",
        dtype: DType::I64,
        shape: &[2, 1, 3],
    },
    Case {
        name: "float16",
        dtype: DType::F16,
        shape: &[5],
    },
    Case {
        name: "bfloat16",
        dtype: DType::BF16,
        shape: &[2, 5],
    },
    Case {
        name: "float32",
        dtype: DType::F32,
        shape: &[3, 7],
    },
    Case {
        name: "float64",
        dtype: DType::F64,
        shape: &[3],
    },
    Case {
        name: "complex64",
        dtype: DType::Complex64,
        shape: &[2],
    },
    Case {
        name: "complex128",
        dtype: DType::Complex128,
        shape: &[1, 3],
    },
    Case {
        name: "scalar",
        dtype: DType::F64,
        shape: &[],
    },
    Case {
        name: "empty",
        dtype: DType::F32,
        shape: &[0],
    },
    Case {
        name: "empty3d",
        dtype: DType::U8,
        shape: &[4, 0, 3],
    },
];

/// The 64-bit word behind element `element` of item `item`:
/// `item * ITEM_MULTIPLIER + element * ELEMENT_MULTIPLIER + WORD_OFFSET`, modulo 2^64.
pub fn word(item: u64, element: u64) -> u64 {
    item.wrapping_mul(ITEM_MULTIPLIER)
        .wrapping_add(element.wrapping_mul(ELEMENT_MULTIPLIER))
        .wrapping_add(WORD_OFFSET)
}

/// The float value of a word: `(((w >> shift) mod 255) - 127) / 4`.
fn quarter(w: u64, shift: u32) -> f64 {
    (((w >> shift) % 255) as f64 - 127.0) / 4.0
}

/// Appends the bytes of element `element` of item `item` of `dtype`.
pub fn push_element(dtype: DType, item: u64, element: u64, out: &mut Vec<u8>) {
    let w = word(item, element);
    let re = quarter(w, 32);
    let im = quarter(w, 48);
    match dtype {
        DType::Bool => out.push(((w >> 32) & 1) as u8),
        DType::U8 | DType::I8 | DType::U16 | DType::I16 | DType::U32 | DType::I32 => {
            out.extend_from_slice(&w.to_le_bytes()[..dtype.size()])
        }
        DType::U64 | DType::I64 => out.extend_from_slice(&w.to_le_bytes()),
        DType::F16 => out.extend_from_slice(&half::f16::from_f64(re).to_le_bytes()),
        DType::BF16 => out.extend_from_slice(&half::bf16::from_f64(re).to_le_bytes()),
        DType::F32 => out.extend_from_slice(&(re as f32).to_le_bytes()),
        DType::F64 => out.extend_from_slice(&re.to_le_bytes()),
        DType::Complex64 => {
            out.extend_from_slice(&(re as f32).to_le_bytes());
            out.extend_from_slice(&(im as f32).to_le_bytes());
        }
        DType::Complex128 => {
            out.extend_from_slice(&re.to_le_bytes());
            out.extend_from_slice(&im.to_le_bytes());
        }
    }
}

/// The tensor of item `item` (from 1) of a lane carrying `spec`.
pub fn tensor(spec: &TensorSpec, item: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(spec.byte_len());
    for element in 0..spec.elements() as u64 {
        push_element(spec.dtype(), item, element, &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_is_a_valid_spec_and_every_float_is_exact() {
        for case in CASES {
            let spec = case.spec().unwrap();
            assert_eq!(tensor(&spec, 1).len(), spec.byte_len(), "{}", case.name);
        }
        for w in [0u64, 1 << 32, u64::MAX, 0x00fe_0000_0000_0000] {
            let v = quarter(w, 32);
            assert_eq!(f64::from(half::bf16::from_f64(v).to_f32()), v);
            assert_eq!(half::f16::from_f64(v).to_f64(), v);
            assert!((-31.75..=31.75).contains(&v));
        }
    }

    #[test]
    fn the_first_words_are_the_documented_ones() {
        // docs/CONFORMANCE.md quotes these.
        assert_eq!(word(1, 0), 0xb48d_e16b_1d81_f60e);
        assert_eq!(word(1, 1), 0x7740_8fa8_4556_e15d);
        assert_eq!(quarter(word(1, 0), 32), 4.0);
        assert_eq!(quarter(word(1, 0), 48), -15.25);
        assert_eq!(
            tensor(&Case::named("int16").unwrap().spec().unwrap(), 1)[..2],
            [0x0e, 0xf6]
        );
    }
}
