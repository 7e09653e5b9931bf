//! Zero-copy loans through byte views: an SPSC ring over an [`Exclusive`] region and a
//! producer that fills each item through [`SpscLoan::bytes_mut`].
//!
//! The real build lends plain byte slices; under loom and shuttle the same calls
//! return views backed by the slot's words (core's `LoanBytesMut` / `LoanBytes`), so
//! one scenario body drives the loan, commit, peek and release path of the real
//! `SpscProducer` / `SpscConsumer` under every checker.
//!
//! # Invariant
//! The `Exclusive` promise holds in every scenario that uses these rings with the real
//! roles: every accessor of the fixture's region is one of this ring's handles. A
//! broken peer that writes the region outside the protocol breaks it; such canaries
//! run only under the checkers, whose byte views are atomic words.
//!
//! [`SpscLoan::bytes_mut`]: tensorlane_core::SpscLoan::bytes_mut

use crate::roles::{QueueFixture, QueueProducerRole};
use std::sync::Arc;
use tensorlane_core::{Exclusive, HeapRegion, PushError, Spsc, SpscHeader, SpscProducer};

/// An SPSC ring whose loans lend bytes.
pub type LoanRing = Spsc<Exclusive<Arc<HeapRegion<SpscHeader>>>>;

/// The fixture's ring over an [`Exclusive`] region.
pub fn loan_ring(fixture: &QueueFixture) -> LoanRing {
    // SAFETY: the scenarios access the fixture's region only through this ring's
    // handles (one producer, one consumer), which follow the protocol (module docs).
    let region = unsafe { Exclusive::new(fixture.region.clone()) };
    Spsc::new(region, fixture.geometry).expect("body matches geometry")
}

/// The real producer, filling every item in place through its loan's bytes.
pub struct LoanProducer {
    producer: SpscProducer<Exclusive<Arc<HeapRegion<SpscHeader>>>>,
}

impl QueueProducerRole for LoanProducer {
    fn push(&mut self, item: &[u8]) -> Result<(), PushError> {
        let mut loan = self.producer.loan()?;
        loan.bytes_mut()[..item.len()].copy_from_slice(item);
        loan.commit(item.len())?;
        Ok(())
    }
}

/// Makes a [`LoanProducer`].
pub fn real_loan_producer(fixture: &QueueFixture) -> LoanProducer {
    LoanProducer {
        producer: loan_ring(fixture)
            .producer(1)
            .expect("producer role is free"),
    }
}
