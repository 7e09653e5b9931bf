//! Sub-tensor blocks of a stream: a row range, or an N-d box, of the latest tensor,
//! copied without copying the rest.
//!
//! The tensor is C-contiguous (last dimension fastest). A box is one range per
//! dimension; its bytes are a set of runs of the tensor, found with checked arithmetic
//! and coalesced: every dimension after the first one the box does not cover whole
//! makes one run longer instead of making more runs. The runs (and the frame prefix)
//! are copied by the core's [`SeqlockReader::read_ranges`] inside one stamp-checked
//! attempt, so a block is as untorn as a whole read: all of it comes from one write.
//!
//! Writing a block is not offered: each write of the N-slot register goes to a fresh
//! slot (the one a reader may not be copying), which holds an older value, so a block
//! write would have to copy the rest of the tensor anyway. Write the whole tensor.
//!
//! [`SeqlockReader::read_ranges`]: tensorlane_core::SeqlockReader::read_ranges

// One run per range: a Vec of one range is a block of one run.
#![allow(clippy::single_range_in_vec_init)]

use super::StreamReader;
use crate::error::{self, LaneError};
use crate::header::FRAME_BYTES;
use crate::lane::{self, Frame};
use core::ops::Range;
use tensorlane_core::{RangeReadError, ReadError};

/// Why a block read returned no frame.
#[derive(Debug)]
#[non_exhaustive]
pub enum BlockError {
    /// The box has another number of ranges than the tensor has dimensions (row
    /// reads need at least one dimension).
    Rank {
        /// Dimensions of the tensor.
        expected: usize,
        /// Ranges given.
        found: usize,
    },
    /// A range does not lie inside its dimension (or its start is past its end).
    Outside {
        /// The dimension.
        dim: usize,
        /// The range given.
        range: Range<u64>,
        /// The dimension's extent.
        extent: u64,
    },
    /// The lane refused the read (the output's size, a stalled read, corruption).
    Lane(LaneError),
}

impl core::fmt::Display for BlockError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BlockError::Rank { expected, found } => write!(
                f,
                "a box of {found} ranges for a tensor of {expected} dimensions"
            ),
            BlockError::Outside { dim, range, extent } => write!(
                f,
                "range {}..{} of dimension {dim} lies outside its extent {extent}",
                range.start, range.end
            ),
            BlockError::Lane(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for BlockError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BlockError::Lane(e) => Some(e),
            _ => None,
        }
    }
}

impl From<LaneError> for BlockError {
    fn from(e: LaneError) -> Self {
        BlockError::Lane(e)
    }
}

/// The byte runs (offsets into the tensor) of `block` in a C-contiguous tensor of
/// `shape` with elements of `element` bytes, coalesced, and their total length.
pub(crate) fn block_runs(
    shape: &[u64],
    element: usize,
    block: &[Range<u64>],
) -> Result<(Vec<Range<usize>>, usize), BlockError> {
    if block.len() != shape.len() {
        return Err(BlockError::Rank {
            expected: shape.len(),
            found: block.len(),
        });
    }
    for (dim, (range, &extent)) in block.iter().zip(shape).enumerate() {
        if range.start > range.end || range.end > extent {
            return Err(BlockError::Outside {
                dim,
                range: range.clone(),
                extent,
            });
        }
    }
    let too_large = || BlockError::Lane(LaneError::TooLarge);
    let to_usize = |v: u64| usize::try_from(v).map_err(|_| too_large());
    // Byte stride of each dimension (the tensor's size was checked at open, so these
    // fit; checked anyway).
    let mut strides = vec![0usize; shape.len()];
    let mut stride = element;
    for dim in (0..shape.len()).rev() {
        strides[dim] = stride;
        stride = stride
            .checked_mul(to_usize(shape[dim])?)
            .ok_or_else(too_large)?;
    }
    if block.iter().any(|r| r.start == r.end) {
        return Ok((Vec::new(), 0));
    }
    // `k`: the last dimension the box does not cover whole; a run spans dimensions
    // `k..`, and dimensions before `k` enumerate the runs.
    let k = (0..shape.len())
        .rev()
        .find(|&d| block[d].start != 0 || block[d].end != shape[d])
        .unwrap_or(0);
    if shape.is_empty() {
        return Ok((vec![0..element], element));
    }
    let run = to_usize(block[k].end - block[k].start)?
        .checked_mul(strides[k])
        .ok_or_else(too_large)?;
    let mut runs: Vec<Range<usize>> = Vec::new();
    let mut index: Vec<u64> = block[..k].iter().map(|r| r.start).collect();
    loop {
        let mut offset = to_usize(block[k].start)?
            .checked_mul(strides[k])
            .ok_or_else(too_large)?;
        for (d, &i) in index.iter().enumerate() {
            offset = to_usize(i)?
                .checked_mul(strides[d])
                .and_then(|o| o.checked_add(offset))
                .ok_or_else(too_large)?;
        }
        let end = offset.checked_add(run).ok_or_else(too_large)?;
        match runs.last_mut() {
            Some(last) if last.end == offset => last.end = end,
            _ => runs.push(offset..end),
        }
        // Next index of dimensions `..k`, last fastest.
        let mut d = k;
        loop {
            if d == 0 {
                let total = runs.iter().map(|r| r.end - r.start).sum();
                return Ok((runs, total));
            }
            d -= 1;
            index[d] += 1;
            if index[d] < block[d].end {
                break;
            }
            index[d] = block[d].start;
        }
    }
}

impl StreamReader {
    /// Copies rows `rows` (a range of the first dimension) of the latest tensor into
    /// `out`, which must hold exactly those rows; the rest of the tensor is not
    /// copied. `Ok(None)` if nothing was written yet. Never blocks; untorn as
    /// [`read`](Self::read) (the rows come from the write the frame names).
    pub fn read_rows(
        &mut self,
        rows: Range<u64>,
        out: &mut [u8],
    ) -> Result<Option<Frame>, BlockError> {
        let shape = self.spec().shape();
        if shape.is_empty() {
            return Err(BlockError::Rank {
                expected: 0,
                found: 1,
            });
        }
        let mut block: Vec<Range<u64>> = shape.iter().map(|&n| 0..n).collect();
        block[0] = rows;
        self.read_block(&block, out)
    }

    /// Copies the N-d box `block` (one range per dimension) of the latest tensor into
    /// `out`, C-contiguous, which must hold exactly the box. `Ok(None)` if nothing was
    /// written yet. Never blocks; untorn as [`read`](Self::read).
    pub fn read_block(
        &mut self,
        block: &[Range<u64>],
        out: &mut [u8],
    ) -> Result<Option<Frame>, BlockError> {
        self.read_block_inner(block, out, false)
    }

    /// Like [`read_block`](Self::read_block), but `Ok(None)` unless there is a value
    /// newer than the last one this reader returned.
    pub fn read_block_new(
        &mut self,
        block: &[Range<u64>],
        out: &mut [u8],
    ) -> Result<Option<Frame>, BlockError> {
        self.read_block_inner(block, out, true)
    }

    fn read_block_inner(
        &mut self,
        block: &[Range<u64>],
        out: &mut [u8],
        only_new: bool,
    ) -> Result<Option<Frame>, BlockError> {
        let spec = self.spec();
        let (runs, total) = block_runs(spec.shape(), spec.dtype().size(), block)?;
        if out.len() != total {
            return Err(LaneError::WrongSize {
                expected: total,
                found: out.len(),
            }
            .into());
        }
        let expected = FRAME_BYTES + spec.byte_len();
        let mut ranges = Vec::with_capacity(runs.len() + 1);
        ranges.push(0..FRAME_BYTES);
        ranges.extend(
            runs.iter()
                .map(|r| r.start + FRAME_BYTES..r.end + FRAME_BYTES),
        );
        let mut prefix = [0u8; FRAME_BYTES];
        match self
            .reader
            .read_ranges(&ranges, &mut [&mut prefix, out], only_new)
        {
            Ok(info) if info.len != expected => Err(error::wrong_length(info.len, expected).into()),
            Ok(info) => {
                let (frame_id, timestamp_ns) = lane::parse_prefix(&prefix);
                Ok(Some(Frame {
                    seq: info.seq,
                    frame_id,
                    timestamp_ns,
                    missed: info.missed,
                }))
            }
            Err(RangeReadError::Read(ReadError::Empty | ReadError::NotNew)) => Ok(None),
            Err(RangeReadError::Read(ReadError::Stalled { .. })) => {
                if self.writer_alive() {
                    Err(LaneError::Stalled.into())
                } else {
                    Err(LaneError::WriterGone.into())
                }
            }
            Err(e) => Err(error::from_range_read(e, expected).into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_are_coalesced() {
        // 4 x 3 x 2 tensor of 1-byte elements.
        let shape = [4, 3, 2];
        let (runs, total) = block_runs(&shape, 1, &[1..3, 0..3, 0..2]).unwrap();
        assert_eq!((runs, total), (vec![6..18], 12));
        let (runs, total) = block_runs(&shape, 1, &[0..4, 1..2, 0..2]).unwrap();
        assert_eq!(runs, vec![2..4, 8..10, 14..16, 20..22]);
        assert_eq!(total, 8);
        let (runs, _) = block_runs(&shape, 4, &[2..3, 1..3, 1..2]).unwrap();
        assert_eq!(runs, vec![60..64, 68..72]);
        let (runs, total) = block_runs(&shape, 1, &[0..4, 0..3, 0..2]).unwrap();
        assert_eq!((runs, total), (vec![0..24], 24));
        assert_eq!(block_runs(&shape, 1, &[0..4, 2..2, 0..2]).unwrap().1, 0);
        assert_eq!(block_runs(&[], 8, &[]).unwrap(), (vec![0..8], 8));
    }

    #[test]
    fn boxes_outside_the_shape_are_refused() {
        let shape = [4, 3];
        assert!(matches!(
            block_runs(&shape, 1, &[0..4]),
            Err(BlockError::Rank {
                expected: 2,
                found: 1
            })
        ));
        assert!(matches!(
            block_runs(&shape, 1, &[0..4, 2..4]),
            Err(BlockError::Outside { dim: 1, range, extent: 3 }) if range == (2..4)
        ));
        #[allow(clippy::reversed_empty_ranges)]
        let reversed = [3..1, 0..3];
        assert!(matches!(
            block_runs(&shape, 1, &reversed),
            Err(BlockError::Outside { dim: 0, .. })
        ));
    }

    #[test]
    #[cfg_attr(miri, ignore = "shared memory")]
    fn rows_and_boxes_of_a_stream() {
        use crate::{DType, StreamWriter, TensorSpec};
        let name = format!("block-test-{}", std::process::id());
        let spec = TensorSpec::new(DType::U16, &[4, 3, 2]).unwrap();
        let mut writer = StreamWriter::create(&name, &spec, 2).unwrap();
        let mut reader = StreamReader::open(&name).unwrap();
        let mut rows = [0u8; 2 * 12];
        assert!(reader.read_rows(1..3, &mut rows).unwrap().is_none());
        let tensor: Vec<u16> = (0..24).collect();
        writer.write_elements(&tensor).unwrap();
        let frame = reader.read_rows(1..3, &mut rows).unwrap().unwrap();
        assert_eq!(frame.seq, 1);
        let rows: &[u16] = bytemuck::cast_slice(&rows);
        assert_eq!(rows, &tensor[6..18]);
        // Elements [0..4, 1..3, 1..2]: (i, j, 1) for j in 1..3.
        let mut out = [0u16; 8];
        reader
            .read_block(&[0..4, 1..3, 1..2], bytemuck::cast_slice_mut(&mut out))
            .unwrap()
            .unwrap();
        assert_eq!(out, [3, 5, 9, 11, 15, 17, 21, 23]);
        assert!(reader
            .read_block_new(&[0..4, 1..3, 1..2], bytemuck::cast_slice_mut(&mut out))
            .unwrap()
            .is_none());
        assert!(matches!(
            reader.read_rows(3..5, &mut [0u8; 24]),
            Err(BlockError::Outside {
                dim: 0,
                extent: 4,
                ..
            })
        ));
        assert!(matches!(
            reader.read_rows(0..1, &mut [0u8; 5]),
            Err(BlockError::Lane(LaneError::WrongSize {
                expected: 12,
                found: 5
            }))
        ));
        drop(reader);
        drop(writer);
        let _ = crate::segment::unlink(&crate::LaneName::new(&name).unwrap());
    }
}
