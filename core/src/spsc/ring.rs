//! The [`Spsc`] view of a region: inspection (positions and owners) and the claims
//! and take-overs of the producer and consumer roles.
//!
//! Invariants kept here:
//! - a view exists only over a body whose length was checked against the geometry;
//! - a new handle starts from its own role's counter and caches the other side's
//!   counter as full (producer) or empty (consumer), so its first operation loads and
//!   validates that counter before using it.

use super::{SpscConsumer, SpscGeometry, SpscHeader, SpscProducer, CONSUMER, PRODUCER};
use crate::claim::{self, ClaimError};
use crate::error::{check_body, GeometryError};
use crate::region::Region;
use crate::sync::Ordering;

/// A ring over a region whose body length was checked against the geometry.
#[derive(Debug, Clone)]
pub struct Spsc<R> {
    pub(super) region: R,
    pub(super) geometry: SpscGeometry,
}

impl<R: Region<Header = SpscHeader>> Spsc<R> {
    /// Validates the region's body against `geometry`.
    pub fn new(region: R, geometry: SpscGeometry) -> Result<Self, GeometryError> {
        check_body(geometry.body_words, region.body().len())?;
        Ok(Spsc { region, geometry })
    }

    /// The geometry.
    pub fn geometry(&self) -> SpscGeometry {
        self.geometry
    }

    /// Current `(head, tail)`, for inspection.
    pub fn positions(&self) -> (u64, u64) {
        // Relaxed: numbers to show, not a hand-over; no slot is read on their
        // strength (producer and consumer load the other side's counter Acquire).
        let header = self.region.header();
        (
            header.head.load(Ordering::Relaxed),
            header.tail.load(Ordering::Relaxed),
        )
    }

    /// Owner tokens of the producer and the consumer (0 when free).
    pub fn owners(&self) -> (u64, u64) {
        // Relaxed: tokens for inspection and for a take-over's compare-exchange,
        // which fails if the token changed; the take-over's ordering comes from the
        // claim and the caller's lock (crate::claim), not from these loads.
        let owners = &self.region.header().owners;
        (
            owners[PRODUCER].load(Ordering::Relaxed),
            owners[CONSUMER].load(Ordering::Relaxed),
        )
    }

    /// Claims the producer role for the non-zero `token`.
    pub fn producer(&self, token: u64) -> Result<SpscProducer<R>, ClaimError>
    where
        R: Clone,
    {
        // SAFETY: `previous == 0` only claims a free role; no producer is displaced.
        unsafe { self.producer_takeover(0, token) }
    }

    /// Takes the producer role over from `previous`. An item it was writing but had
    /// not pushed is discarded.
    ///
    /// # Safety
    /// The previous producer must be gone (its process exited, or its handle was
    /// dropped or forgotten and will never be used again) and its last access must
    /// happen-before this call: a live one could still be writing through a loan's
    /// byte slice while the new one writes the same slot, which is a data race. The
    /// claim word does not order a dead owner's stores (it never released the role);
    /// the shm layer gets the order from the kernel, by taking the role's lock, which
    /// the kernel releases only once the previous holder's process has stopped.
    pub unsafe fn producer_takeover(
        &self,
        previous: u64,
        token: u64,
    ) -> Result<SpscProducer<R>, ClaimError>
    where
        R: Clone,
    {
        let header = self.region.header();
        claim::takeover(&header.owners[PRODUCER], previous, token)?;
        // Own counter: the previous producer's last store of `tail`. Relaxed: the
        // claim's Acquire (a role given back) or the caller's contract (a dead owner)
        // orders that store before this load; an Acquire here would pair with nothing
        // more (weakening it was caught by no suite).
        let tail = header.tail.load(Ordering::Relaxed);
        Ok(SpscProducer {
            ring: self.clone(),
            token,
            tail,
            // Looks full, so the first push loads and validates the consumer's head.
            cached_head: tail.wrapping_sub(self.geometry.capacity as u64),
        })
    }

    /// Claims the consumer role for the non-zero `token`.
    pub fn consumer(&self, token: u64) -> Result<SpscConsumer<R>, ClaimError>
    where
        R: Clone,
    {
        // SAFETY: `previous == 0` only claims a free role; no consumer is displaced.
        unsafe { self.consumer_takeover(0, token) }
    }

    /// Takes the consumer role over from `previous`. An item it had peeked but not
    /// released is delivered again.
    ///
    /// # Safety
    /// The previous consumer must be gone and its last access must happen-before this
    /// call, as for [`producer_takeover`](Self::producer_takeover): a live one could
    /// still be reading a peeked slot's byte slice while the producer rewrites it.
    pub unsafe fn consumer_takeover(
        &self,
        previous: u64,
        token: u64,
    ) -> Result<SpscConsumer<R>, ClaimError>
    where
        R: Clone,
    {
        let header = self.region.header();
        claim::takeover(&header.owners[CONSUMER], previous, token)?;
        // Own counter; Relaxed for the reason given in `producer_takeover`.
        let head = header.head.load(Ordering::Relaxed);
        Ok(SpscConsumer {
            ring: self.clone(),
            token,
            head,
            // Looks empty, so the first pop loads and validates the producer's tail.
            cached_tail: head,
        })
    }
}
