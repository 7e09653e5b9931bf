//! Errors shared by the three structures.

use core::fmt;

/// Geometry that cannot describe a structure, or a body of the wrong size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum GeometryError {
    /// A count (slots, capacity, subscribers) is zero or above its limit.
    Count {
        /// Which count.
        what: &'static str,
        /// The value given.
        found: u64,
        /// The largest accepted value.
        max: u64,
    },
    /// A ring capacity is not a power of two.
    NotPowerOfTwo {
        /// The capacity given.
        found: u64,
    },
    /// The slot size exceeds [`crate::MAX_SLOT_BYTES`].
    SlotTooLarge {
        /// The slot size given.
        found: u64,
    },
    /// The body size does not fit in `usize`.
    Overflow,
    /// The region's body is shorter than the geometry requires.
    BodyTooShort {
        /// Words required.
        needed: usize,
        /// Words present.
        found: usize,
    },
}

impl fmt::Display for GeometryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GeometryError::Count { what, found, max } => {
                write!(f, "{what} must be between 1 and {max}, found {found}")
            }
            GeometryError::NotPowerOfTwo { found } => {
                write!(f, "capacity must be a power of two, found {found}")
            }
            GeometryError::SlotTooLarge { found } => write!(
                f,
                "slot size {found} exceeds the maximum of {} bytes",
                crate::MAX_SLOT_BYTES
            ),
            GeometryError::Overflow => f.write_str("structure size overflows usize"),
            GeometryError::BodyTooShort { needed, found } => {
                write!(f, "body has {found} words, geometry needs {needed}")
            }
        }
    }
}

impl core::error::Error for GeometryError {}

/// Shared state that no correct peer can have produced. Reported, never indexed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Corruption {
    /// A ring's `tail - head` lies outside `0..=capacity`.
    Indices {
        /// The head (consumer position) seen.
        head: u64,
        /// The tail (producer position) seen.
        tail: u64,
    },
    /// A slot's length word exceeds the slot size.
    Length {
        /// The length found.
        found: u64,
        /// The slot size.
        max: u64,
    },
    /// A slot's stamp names a position or sequence it cannot hold.
    Stamp {
        /// The position or sequence expected.
        expected: u64,
        /// The stamp found.
        found: u64,
    },
    /// The published sequence of a register went backwards.
    SequenceWentBack {
        /// The last sequence this reader returned.
        last: u64,
        /// The sequence found.
        found: u64,
    },
    /// A broadcast subscriber entry holds a head no correct subscriber can have.
    SubscriberHead {
        /// The entry's index in the subscriber table.
        subscriber: usize,
        /// The head found.
        head: u64,
        /// The producer's tail.
        tail: u64,
    },
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Corruption::Indices { head, tail } => {
                write!(f, "corrupt ring indices: head {head}, tail {tail}")
            }
            Corruption::Length { found, max } => {
                write!(f, "corrupt slot length {found} (slot holds {max} bytes)")
            }
            Corruption::Stamp { expected, found } => {
                write!(f, "corrupt slot stamp {found:#x} (expected {expected})")
            }
            Corruption::SequenceWentBack { last, found } => {
                write!(f, "published sequence went back from {last} to {found}")
            }
            Corruption::SubscriberHead {
                subscriber,
                head,
                tail,
            } => write!(
                f,
                "subscriber {subscriber} has head {head}, impossible with tail {tail}"
            ),
        }
    }
}

impl core::error::Error for Corruption {}

pub(crate) fn check_count(
    what: &'static str,
    found: usize,
    max: usize,
) -> Result<(), GeometryError> {
    if found == 0 || found > max {
        return Err(GeometryError::Count {
            what,
            found: found as u64,
            max: max as u64,
        });
    }
    Ok(())
}

pub(crate) fn check_body(needed: usize, found: usize) -> Result<(), GeometryError> {
    if found < needed {
        return Err(GeometryError::BodyTooShort { needed, found });
    }
    Ok(())
}
