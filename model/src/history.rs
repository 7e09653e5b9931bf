//! Checkers for histories observed in concurrent and cross-process runs.
//!
//! Under loom, shuttle or several OS processes there is no single order in which to
//! replay a sequential model. What can be checked is that every observation one
//! reader or subscriber made is explainable: each checker takes what one party saw,
//! in the order it saw it, and returns `Ok(())` or the first observation that no
//! correct implementation could have produced, as a [`HistoryError`]. The checkers
//! never panic.
//!
//! Values are checked by a caller-supplied predicate `value_ok(seq_or_position,
//! &value)`, so that a run can check large payloads without recording them (for
//! example, a payload derived from its sequence number, checked for being untorn).
//! [`exact_values`] builds the predicate for a run that recorded every value written.
//!
//! - [`check_register_reader`]: a register reader's `(seq, value, missed)` reads.
//! - [`check_lossless`], [`check_lossless_complete`]: an SPSC consumer's or a lossless
//!   subscriber's deliveries.
//! - [`check_lossy`]: a lossy subscriber's deliveries.

use core::fmt;
use std::collections::BTreeMap;

/// One value a register reader returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisterObservation<V> {
    /// Its sequence (`ReadInfo::seq`).
    pub seq: u64,
    /// The value.
    pub value: V,
    /// Writes the reader reported it missed (`ReadInfo::missed`).
    pub missed: u64,
}

/// One item a ring consumer or subscriber received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery<V> {
    /// Its position.
    pub position: u64,
    /// The value.
    pub value: V,
    /// Positions reported missed with it (`Received::missed`; 0 for SPSC pops).
    pub missed: u64,
}

/// The first observation of a history that no correct implementation produces.
/// `at` is the index of the observation in the slice given to the checker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryError {
    /// A register read returned sequence 0 (nothing was written under it).
    ZeroSequence {
        /// Observation index.
        at: usize,
    },
    /// The value is not the one written with this sequence or at this position
    /// (torn, stale or misplaced).
    WrongValue {
        /// Observation index.
        at: usize,
        /// The sequence or position it came with.
        seq: u64,
    },
    /// A register reader's sequence went back.
    WentBack {
        /// Observation index.
        at: usize,
        /// The previous sequence.
        previous: u64,
        /// The sequence observed.
        found: u64,
    },
    /// A register read's `missed` count does not match the sequences.
    WrongMissed {
        /// Observation index.
        at: usize,
        /// The sequence observed.
        seq: u64,
        /// The count the sequences imply.
        expected: u64,
        /// The count reported.
        found: u64,
    },
    /// A lossless delivery is not the next position (an item lost, repeated or out of
    /// order).
    WrongPosition {
        /// Observation index.
        at: usize,
        /// The position due.
        expected: u64,
        /// The position delivered.
        found: u64,
    },
    /// A lossy delivery is not after the previous one (or before the join head).
    NotIncreasing {
        /// Observation index.
        at: usize,
        /// The lowest position acceptable.
        lowest: u64,
        /// The position delivered.
        found: u64,
    },
    /// A delivery's `missed` count does not match the gap before it.
    WrongDeliveryMissed {
        /// Observation index.
        at: usize,
        /// The position delivered.
        position: u64,
        /// The count the positions imply.
        expected: u64,
        /// The count reported.
        found: u64,
    },
    /// Fewer (or more) items were delivered than a complete lossless run requires.
    Incomplete {
        /// The position the run should have ended before.
        end: u64,
        /// The position after the last one delivered.
        reached: u64,
    },
}

impl fmt::Display for HistoryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            HistoryError::ZeroSequence { at } => {
                write!(f, "observation {at}: sequence 0 returned as a value")
            }
            HistoryError::WrongValue { at, seq } => write!(
                f,
                "observation {at}: the value for {seq} is not the value written there (torn or misplaced)"
            ),
            HistoryError::WentBack {
                at,
                previous,
                found,
            } => write!(
                f,
                "observation {at}: sequence went back from {previous} to {found}"
            ),
            HistoryError::WrongMissed {
                at,
                seq,
                expected,
                found,
            } => write!(
                f,
                "observation {at}: sequence {seq} reported {found} missed writes, expected {expected}"
            ),
            HistoryError::WrongPosition {
                at,
                expected,
                found,
            } => write!(
                f,
                "observation {at}: position {found} delivered where {expected} was due"
            ),
            HistoryError::NotIncreasing { at, lowest, found } => write!(
                f,
                "observation {at}: position {found} delivered, expected at least {lowest}"
            ),
            HistoryError::WrongDeliveryMissed {
                at,
                position,
                expected,
                found,
            } => write!(
                f,
                "observation {at}: position {position} reported {found} missed, expected {expected}"
            ),
            HistoryError::Incomplete { end, reached } => write!(
                f,
                "delivery ended before position {reached}, expected it to end before {end}"
            ),
        }
    }
}

impl std::error::Error for HistoryError {}

/// A value predicate for the checkers: true when `value` is exactly the value recorded
/// for that sequence or position in `written`.
pub fn exact_values<V: PartialEq>(written: &BTreeMap<u64, V>) -> impl FnMut(u64, &V) -> bool + '_ {
    move |key, value| written.get(&key) == Some(value)
}

/// Checks one register reader's successful reads, in the order it made them.
///
/// - every sequence is at least 1 and `value_ok(seq, &value)` holds (the value is the
///   one written with that sequence, untorn);
/// - sequences never go back;
/// - `missed` is 0 for the first read, `seq - previous - 1` after a newer value, and 0
///   when the same value is returned again (`seq == previous`, a `read` rather than a
///   `read_new`).
pub fn check_register_reader<V>(
    observations: &[RegisterObservation<V>],
    mut value_ok: impl FnMut(u64, &V) -> bool,
) -> Result<(), HistoryError> {
    let mut previous: Option<u64> = None;
    for (at, obs) in observations.iter().enumerate() {
        let seq = obs.seq;
        if seq == 0 {
            return Err(HistoryError::ZeroSequence { at });
        }
        if !value_ok(seq, &obs.value) {
            return Err(HistoryError::WrongValue { at, seq });
        }
        let expected = match previous {
            None => 0,
            Some(prev) if seq < prev => {
                return Err(HistoryError::WentBack {
                    at,
                    previous: prev,
                    found: seq,
                })
            }
            Some(prev) if seq == prev => 0,
            Some(prev) => seq - prev - 1,
        };
        if obs.missed != expected {
            return Err(HistoryError::WrongMissed {
                at,
                seq,
                expected,
                found: obs.missed,
            });
        }
        previous = Some(seq);
    }
    Ok(())
}

/// Checks what an SPSC consumer or a lossless broadcast subscriber received, in order:
/// positions exactly `start, start + 1, ...` (each item once, in order, none
/// missing up to the last one received), `value_ok(position, &value)` for each, and
/// no drops except `lost_at_start` on the first item.
///
/// For an SPSC consumer `start` is the head it started from (0 for a fresh ring) and
/// `lost_at_start` is 0. For a lossless subscriber they are its `head()` and
/// `lost_at_join()` right after joining.
pub fn check_lossless<V>(
    start: u64,
    lost_at_start: u64,
    items: &[Delivery<V>],
    mut value_ok: impl FnMut(u64, &V) -> bool,
) -> Result<(), HistoryError> {
    let mut expected = start;
    for (at, item) in items.iter().enumerate() {
        if item.position != expected {
            return Err(HistoryError::WrongPosition {
                at,
                expected,
                found: item.position,
            });
        }
        let missed = if at == 0 { lost_at_start } else { 0 };
        if item.missed != missed {
            return Err(HistoryError::WrongDeliveryMissed {
                at,
                position: item.position,
                expected: missed,
                found: item.missed,
            });
        }
        if !value_ok(item.position, &item.value) {
            return Err(HistoryError::WrongValue {
                at,
                seq: item.position,
            });
        }
        expected = expected.wrapping_add(1);
    }
    Ok(())
}

/// [`check_lossless`], and the deliveries reach exactly to `end` (the producer's tail
/// at the end of a run in which the consumer drained the ring): nothing was left
/// undelivered.
pub fn check_lossless_complete<V>(
    start: u64,
    lost_at_start: u64,
    end: u64,
    items: &[Delivery<V>],
    value_ok: impl FnMut(u64, &V) -> bool,
) -> Result<(), HistoryError> {
    check_lossless(start, lost_at_start, items, value_ok)?;
    let reached = start.wrapping_add(items.len() as u64);
    if reached != end {
        return Err(HistoryError::Incomplete { end, reached });
    }
    Ok(())
}

/// Checks what a lossy subscriber received, in order: positions strictly increasing
/// and not below `join_head` (its `head()` right after joining),
/// `value_ok(position, &value)` for each, and every skipped position counted: the
/// first item reports `position - join_head` missed, each later one
/// `position - previous - 1`.
pub fn check_lossy<V>(
    join_head: u64,
    items: &[Delivery<V>],
    mut value_ok: impl FnMut(u64, &V) -> bool,
) -> Result<(), HistoryError> {
    let mut lowest = join_head;
    for (at, item) in items.iter().enumerate() {
        let Some(gap) = item.position.checked_sub(lowest) else {
            return Err(HistoryError::NotIncreasing {
                at,
                lowest,
                found: item.position,
            });
        };
        if item.missed != gap {
            return Err(HistoryError::WrongDeliveryMissed {
                at,
                position: item.position,
                expected: gap,
                found: item.missed,
            });
        }
        if !value_ok(item.position, &item.value) {
            return Err(HistoryError::WrongValue {
                at,
                seq: item.position,
            });
        }
        lowest = item.position.saturating_add(1);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reads(list: &[(u64, u64, u64)]) -> Vec<RegisterObservation<u64>> {
        list.iter()
            .map(|&(seq, value, missed)| RegisterObservation { seq, value, missed })
            .collect()
    }

    fn items(list: &[(u64, u64, u64)]) -> Vec<Delivery<u64>> {
        list.iter()
            .map(|&(position, value, missed)| Delivery {
                position,
                value,
                missed,
            })
            .collect()
    }

    /// Value of sequence or position `k` in these tests: `10 * k`.
    fn tens(k: u64, v: &u64) -> bool {
        *v == 10 * k
    }

    #[test]
    fn register_accepts_good_histories() {
        assert_eq!(check_register_reader::<u64>(&[], tens), Ok(()));
        let good = reads(&[(3, 30, 0), (3, 30, 0), (4, 40, 0), (9, 90, 4)]);
        assert_eq!(check_register_reader(&good, tens), Ok(()));
        let written: BTreeMap<u64, &str> = [(1, "a"), (2, "b"), (3, "c")].into();
        let obs = vec![
            RegisterObservation {
                seq: 1,
                value: "a",
                missed: 0,
            },
            RegisterObservation {
                seq: 3,
                value: "c",
                missed: 1,
            },
        ];
        assert_eq!(check_register_reader(&obs, exact_values(&written)), Ok(()));
    }

    #[test]
    fn register_rejects_bad_histories() {
        assert_eq!(
            check_register_reader(&reads(&[(2, 20, 0), (3, 31, 0)]), tens),
            Err(HistoryError::WrongValue { at: 1, seq: 3 })
        );
        assert_eq!(
            check_register_reader(&reads(&[(5, 50, 0), (4, 40, 0)]), tens),
            Err(HistoryError::WentBack {
                at: 1,
                previous: 5,
                found: 4
            })
        );
        assert_eq!(
            check_register_reader(&reads(&[(2, 20, 1)]), tens),
            Err(HistoryError::WrongMissed {
                at: 0,
                seq: 2,
                expected: 0,
                found: 1
            })
        );
        assert_eq!(
            check_register_reader(&reads(&[(2, 20, 0), (5, 50, 3)]), tens),
            Err(HistoryError::WrongMissed {
                at: 1,
                seq: 5,
                expected: 2,
                found: 3
            })
        );
        assert_eq!(
            check_register_reader(&reads(&[(0, 0, 0)]), tens),
            Err(HistoryError::ZeroSequence { at: 0 })
        );
        // A value never written under that sequence.
        let written: BTreeMap<u64, u64> = [(1, 10)].into();
        assert_eq!(
            check_register_reader(&reads(&[(2, 20, 0)]), exact_values(&written)),
            Err(HistoryError::WrongValue { at: 0, seq: 2 })
        );
    }

    #[test]
    fn lossless_accepts_good_histories() {
        let good = items(&[(4, 40, 0), (5, 50, 0), (6, 60, 0)]);
        assert_eq!(check_lossless(4, 0, &good, tens), Ok(()));
        assert_eq!(check_lossless_complete(4, 0, 7, &good, tens), Ok(()));
        let joined = items(&[(3, 30, 1), (4, 40, 0)]);
        assert_eq!(check_lossless(3, 1, &joined, tens), Ok(()));
        assert_eq!(check_lossless_complete::<u64>(9, 0, 9, &[], tens), Ok(()));
    }

    #[test]
    fn lossless_rejects_bad_histories() {
        // Lost item.
        assert_eq!(
            check_lossless(0, 0, &items(&[(0, 0, 0), (2, 20, 0)]), tens),
            Err(HistoryError::WrongPosition {
                at: 1,
                expected: 1,
                found: 2
            })
        );
        // Repeated item.
        assert_eq!(
            check_lossless(0, 0, &items(&[(0, 0, 0), (0, 0, 0)]), tens),
            Err(HistoryError::WrongPosition {
                at: 1,
                expected: 1,
                found: 0
            })
        );
        // Wrong start.
        assert!(matches!(
            check_lossless(1, 0, &items(&[(0, 0, 0)]), tens),
            Err(HistoryError::WrongPosition { at: 0, .. })
        ));
        // Torn value.
        assert_eq!(
            check_lossless(0, 0, &items(&[(0, 0, 0), (1, 11, 0)]), tens),
            Err(HistoryError::WrongValue { at: 1, seq: 1 })
        );
        // A drop reported by a lossless consumer.
        assert!(matches!(
            check_lossless(0, 0, &items(&[(0, 0, 0), (1, 10, 2)]), tens),
            Err(HistoryError::WrongDeliveryMissed { at: 1, .. })
        ));
        // Not drained.
        assert_eq!(
            check_lossless_complete(0, 0, 3, &items(&[(0, 0, 0), (1, 10, 0)]), tens),
            Err(HistoryError::Incomplete { end: 3, reached: 2 })
        );
    }

    #[test]
    fn lossy_accepts_good_histories() {
        let good = items(&[(2, 20, 2), (3, 30, 0), (7, 70, 3)]);
        assert_eq!(check_lossy(0, &good, tens), Ok(()));
        assert_eq!(check_lossy::<u64>(5, &[], tens), Ok(()));
    }

    #[test]
    fn lossy_rejects_bad_histories() {
        // Position repeated.
        assert_eq!(
            check_lossy(0, &items(&[(2, 20, 2), (2, 20, 0)]), tens),
            Err(HistoryError::NotIncreasing {
                at: 1,
                lowest: 3,
                found: 2
            })
        );
        // Before the join head.
        assert!(matches!(
            check_lossy(5, &items(&[(4, 40, 0)]), tens),
            Err(HistoryError::NotIncreasing { at: 0, .. })
        ));
        // Gap not counted.
        assert_eq!(
            check_lossy(0, &items(&[(0, 0, 0), (4, 40, 2)]), tens),
            Err(HistoryError::WrongDeliveryMissed {
                at: 1,
                position: 4,
                expected: 3,
                found: 2
            })
        );
        // First item's drops counted from the join head.
        assert!(matches!(
            check_lossy(3, &items(&[(5, 50, 5)]), tens),
            Err(HistoryError::WrongDeliveryMissed { expected: 2, .. })
        ));
        // Torn value.
        assert_eq!(
            check_lossy(0, &items(&[(1, 12, 1)]), tens),
            Err(HistoryError::WrongValue { at: 0, seq: 1 })
        );
    }

    #[test]
    fn errors_read_well() {
        let e = HistoryError::WrongDeliveryMissed {
            at: 2,
            position: 9,
            expected: 1,
            found: 0,
        };
        assert_eq!(
            e.to_string(),
            "observation 2: position 9 reported 0 missed, expected 1"
        );
    }
}
