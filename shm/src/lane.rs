//! What the three lane kinds share: the mapped core region, framing, open/create.

use crate::clock::Clock;
use crate::dtype::TensorSpec;
use crate::error::LaneError;
use crate::header::{Geometry, HeaderInfo, Kind, FRAME_BYTES};
use crate::metadata::Metadata;
use crate::name::LaneName;
use crate::segment::{self, CreateOptions, OpenOptions, Segment};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tensorlane_core::{ControlBlock, Parts, Region};

/// The core structure of a mapped segment, usable as a core [`Region`]. Clones share
/// the mapping, which lives until the last clone is dropped.
#[derive(Debug)]
pub struct ShmRegion<H: 'static> {
    parts: Parts<'static, H>,
    // Declared after `parts`: the mapping outlives every use of the borrowed parts.
    segment: Arc<Segment>,
}

impl<H> Clone for ShmRegion<H> {
    fn clone(&self) -> Self {
        ShmRegion {
            parts: self.parts,
            segment: self.segment.clone(),
        }
    }
}

impl<H: ControlBlock> ShmRegion<H> {
    /// # Safety
    /// `H` must be the core header type of the segment's kind.
    pub(crate) unsafe fn new(segment: Arc<Segment>) -> Self {
        // SAFETY: the caller guarantees `H` matches the kind.
        let parts: Parts<'_, H> = unsafe { segment.core_parts::<H>() };
        // SAFETY: the parts borrow the mapping owned by `*segment`; the mapping's address
        // does not change while the Segment lives, and this region keeps the Segment
        // alive (through the Arc) for as long as the extended borrow is used.
        let parts: Parts<'static, H> = unsafe { std::mem::transmute(parts) };
        ShmRegion { parts, segment }
    }

    /// The segment.
    pub fn segment(&self) -> &Arc<Segment> {
        &self.segment
    }
}

impl<H> Region for ShmRegion<H> {
    type Header = H;
    fn header(&self) -> &H {
        self.parts.header()
    }
    fn body(&self) -> &[tensorlane_core::AtomicU64] {
        self.parts.body()
    }
}

/// Metadata of one item: its sequence number, the frame id and timestamp written with
/// it, and how many items this reader missed before it.
///
/// # Numbering
/// `seq` counts from 1 on every lane kind, CPU and GPU: the n-th item written to a
/// lane (stream write, queue push, topic publish) has `seq == n`. For a stream it is
/// the register's sequence; for a queue or topic it is the core ring position plus
/// one. See the [Vocabulary](https://github.com/tensorlane/tensorlane#vocabulary)
/// table and docs/LAYOUT.md section 1.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Frame {
    /// Sequence number of the item: the n-th item written to the lane has `seq == n`
    /// (from 1, on every lane kind).
    pub seq: u64,
    /// Frame id given by the writer (by default, counting from 1).
    pub frame_id: u64,
    /// Write time in nanoseconds, read from the lane's [`Clock`] just before the
    /// write (the lane's `info().clock`, chosen at create with
    /// [`CreateOptions::clock`]): `CLOCK_MONOTONIC` by default (comparable with
    /// [`Clock::now_ns`] in any process of the machine), `CLOCK_REALTIME` (since the
    /// Unix epoch) if asked, or 0 when the lane does not stamp ([`Clock::None`]).
    pub timestamp_ns: u64,
    /// Items this reader did not get between the previous item it returned and this
    /// one: a stream's overwritten values, a topic subscriber's lossy skips and the
    /// history lost at join; always 0 on a queue (lossless).
    pub missed: u64,
}

/// The timestamp of a frame written now on a lane stamped by `clock`.
#[inline]
pub(crate) fn now_ns(clock: Clock) -> u64 {
    clock.now_ns()
}

/// The 16-byte frame prefix of a slot.
pub(crate) fn frame_prefix(frame_id: u64, timestamp_ns: u64) -> [u8; FRAME_BYTES] {
    let mut prefix = [0u8; FRAME_BYTES];
    prefix[..8].copy_from_slice(&frame_id.to_le_bytes());
    prefix[8..].copy_from_slice(&timestamp_ns.to_le_bytes());
    prefix
}

/// Splits a frame prefix into frame id and timestamp.
pub(crate) fn parse_prefix(prefix: &[u8; FRAME_BYTES]) -> (u64, u64) {
    let id = u64::from_le_bytes(prefix[..8].try_into().expect("8 bytes"));
    let ts = u64::from_le_bytes(prefix[8..].try_into().expect("8 bytes"));
    (id, ts)
}

/// Checks that `data` is exactly one tensor of the lane.
pub(crate) fn check_size(spec: &TensorSpec, len: usize) -> Result<(), LaneError> {
    if len != spec.byte_len() {
        return Err(LaneError::WrongSize {
            expected: spec.byte_len(),
            found: len,
        });
    }
    Ok(())
}

/// Checks that `out` holds `count` tensors of `spec` back to back (a batch's buffer).
pub(crate) fn check_batch_size(
    spec: &TensorSpec,
    count: usize,
    len: usize,
) -> Result<(), LaneError> {
    let expected = spec.byte_len().saturating_mul(count);
    if len != expected {
        return Err(LaneError::WrongSize {
            expected,
            found: len,
        });
    }
    Ok(())
}

/// Creates a segment of `kind`.
pub(crate) fn create_segment(
    name: &str,
    kind: Kind,
    spec: &TensorSpec,
    count: usize,
    subscribers: usize,
    options: CreateOptions,
) -> Result<Arc<Segment>, LaneError> {
    let name = LaneName::new(name)?;
    let slot_bytes = spec
        .byte_len()
        .checked_add(FRAME_BYTES)
        .ok_or(LaneError::TooLarge)?;
    let geometry = Geometry::new(kind, count, slot_bytes, subscribers)?;
    let metadata =
        Metadata::new(options.metadata.iter().map(|(k, v)| (k, v))).map_err(LaneError::Metadata)?;
    let core_end = geometry.segment_bytes().ok_or(LaneError::TooLarge)?;
    let segment_bytes = crate::header::total_bytes(core_end, metadata.as_bytes().len())
        .ok_or(LaneError::TooLarge)?;
    let (pid, uid, created_ns) = segment::identity();
    let info = HeaderInfo {
        kind,
        spec: spec.clone(),
        geometry,
        count,
        subscribers,
        segment_bytes,
        creator_pid: pid,
        creator_uid: uid,
        created_ns,
        clock: options.clock,
        metadata,
    };
    let segment = Segment::create(&name, &info, &options)?;
    if let Err(e) = segment.make_resident(options.prefault, options.lock_memory) {
        // Nobody can hold the new lane yet but its creator: leave nothing behind.
        let _ = segment::unlink(&name);
        return Err(e);
    }
    Ok(Arc::new(segment))
}

/// Opens a segment and checks its kind (and its tensor, if the options expect one),
/// then makes the mapping resident as the options ask.
pub(crate) fn open_segment(
    name: &str,
    kind: Kind,
    options: &OpenOptions,
) -> Result<Arc<Segment>, LaneError> {
    let expected = options.expect.as_ref();
    let name = LaneName::new(name)?;
    let segment = Segment::open(&name)?;
    let info = segment.info();
    if info.kind != kind {
        return Err(LaneError::WrongKind {
            name: name.to_string(),
            expected: kind,
            found: info.kind,
        });
    }
    if let Some(expected) = expected {
        if *expected != info.spec {
            return Err(LaneError::WrongSpec {
                name: name.to_string(),
                expected: expected.to_string(),
                found: info.spec.to_string(),
            });
        }
    }
    segment.make_resident(options.prefault, options.lock_memory)?;
    Ok(Arc::new(segment))
}

/// Takes role byte `role` of `segment`, or says it has a live owner.
pub(crate) fn lock_role(
    segment: &Segment,
    role: u64,
    role_name: &'static str,
) -> Result<(), LaneError> {
    if segment.lock_role(role)? {
        Ok(())
    } else {
        Err(LaneError::RoleTaken {
            name: segment.name().to_string(),
            role: role_name,
        })
    }
}

/// How long a lane operation may wait: the one parameter behind each family of
/// public calls (`x`, `try_x`, `x_timeout`, `x_deadline`). Layers built on the lanes
/// (the GPU lanes) use it to write their own families the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    /// One attempt, no waiting (`try_x`): nothing ready is `Empty` or `Full`.
    Never,
    /// Wait until the instant (`x_timeout`, `x_deadline`), or without limit (`x`,
    /// `None`); running out of time is `Timeout`.
    Until(Option<Instant>),
}

impl Wait {
    /// Waiting for at most `timeout`; a timeout beyond the clock's range is no limit.
    pub fn timeout(timeout: Duration) -> Self {
        Wait::Until(Instant::now().checked_add(timeout))
    }
}

/// Attempts polled before a wait checks the liveness of the lane's writer side (a
/// system call): the futex's spin phase.
pub(crate) const POLLS_BEFORE_LIVENESS: u32 = 200;

/// Runs `attempt` until it gives a result: once for [`Wait::Never`] (`None` is then
/// `nothing`: `Empty` or `Full`), or sleeping on `futex` until the deadline
/// (`Timeout`).
pub(crate) fn wait<T>(
    futex: &crate::header::Futex,
    wait: Wait,
    nothing: LaneError,
    mut attempt: impl FnMut() -> Option<Result<T, LaneError>>,
) -> Result<T, LaneError> {
    match wait {
        Wait::Never => attempt().unwrap_or(Err(nothing)),
        Wait::Until(deadline) => futex
            .wait_deadline(deadline, attempt)
            .unwrap_or(Err(LaneError::Timeout)),
    }
}
