//! The memory-ordering steps of the GPU lanes' slot protocol, as one small module that
//! builds under the checkers.
//!
//! [`crate::lane`] states the protocol; the lanes ([`crate::lane`]'s `Exporter` and
//! `Importer`) and the host backend ([`crate::host`]) call these functions for every
//! fence, every event-counter access and every staleness comparison, and so does the
//! loom suite of tensorlane-verification (`gpu_slot_reuse_and_recheck`,
//! `gpu_host_event_completion`). The rest of the crate (mappings, sockets, CUDA)
//! compiles to nothing under `--features loom` / `--features shuttle`; this module
//! does not, so what the checkers explore is the code that ships.
//!
//! Invariants (docs/LAYOUT.md section 16):
//! - write `seq` goes to device slot `seq mod D`, and the writer begins overwriting it
//!   only after publishing write `seq + D - 1`: a reader whose copy of write `seq` is
//!   followed (after [`copy_intact`]'s Acquire fence) by a published count below
//!   `seq + D - 1` copied write `seq` whole (G1);
//! - an event's "issued" count is stored (Release) before the record naming its write
//!   is published, and "completed" is stored (Release) only after the copy before it:
//!   a reader that loads completed >= issued (each load followed by an Acquire fence)
//!   sees the copy (G2).

use crate::sync::{fence, Ordering};
use tensorlane_core::{AtomicU64, ReadWords};

/// Writer step 1, before a write's copy into its slot is enqueued (or, on the host
/// backend's stream thread, before the enqueued copy runs).
///
/// Release: pairs with the Acquire fence in [`copy_intact`]. A reader that observes a
/// byte of the coming slot write also observes the publication of the previous write,
/// and so knows its copy may be torn.
#[inline]
pub fn before_slot_write() {
    fence(Ordering::Release);
}

/// Whether the writer may already be overwriting the slot of write `seq`, given the
/// number of writes `published` and the lane's `slots` (`D`, at least 2): the writer
/// starts on that slot again after publishing write `seq + D - 1`.
#[inline]
pub fn overwritten(seq: u64, slots: u64, published: u64) -> bool {
    published >= seq.saturating_add(slots.saturating_sub(1))
}

/// Reader step 4, after the copy of write `seq`: whether it is whole. `published`
/// is read after this call's fence.
///
/// Acquire: pairs with the Release fence of [`before_slot_write`]; orders the slot
/// reads before the load of `published`.
#[inline]
pub fn copy_intact(seq: u64, slots: u64, published: impl FnOnce() -> u64) -> bool {
    fence(Ordering::Acquire);
    !overwritten(seq, slots, published())
}

/// The writer's side of one slot's host-backend event: records issued and records
/// completed (each written by one thread only: the writer's, its stream's).
#[derive(Debug, Clone, Copy)]
pub struct EventCounters<'a> {
    issued: &'a AtomicU64,
    completed: &'a AtomicU64,
}

impl<'a> EventCounters<'a> {
    /// The counters `issued` and `completed`.
    pub fn new(issued: &'a AtomicU64, completed: &'a AtomicU64) -> Self {
        EventCounters { issued, completed }
    }

    /// Issues a record (the writer's thread, the only one that stores `issued`);
    /// returns its count.
    pub fn issue(&self) -> u64 {
        // Release: pairs with the Acquire fence after the reader's relaxed load in
        // `EventView::issued`. Weakening this store alone, or removing that fence
        // alone, was caught by no suite, but both together fail the loom scenario
        // `gpu_host_event_completion` (VERIFICATION.md, "Every ordering needed"): the
        // pair stays.
        let count = self.issued.load(Ordering::Relaxed).wrapping_add(1);
        self.issued.store(count, Ordering::Release);
        count
    }

    /// The stream reached record `count` (the stream thread, the only one that stores
    /// `completed`).
    pub fn complete(&self, count: u64) {
        // Release: the slot bytes the stream stored before this are visible to a
        // reader whose relaxed load in `EventView::completed` reads `count` or more
        // and whose Acquire fence follows it.
        self.completed.store(count, Ordering::Release);
    }
}

/// The stream thread's copy of a write into its slot (the host backend's delayed
/// mode): the fence standing for the writer's step 1, then the relaxed stores.
pub fn stream_copy(slot: &[AtomicU64], src: &[u8]) {
    // The writer's step-1 fence is in its own thread; this one stands for it here,
    // before the stores into the reused slot (pairs with the reader's Acquire fence
    // in `copy_intact`). The writer's publication of the previous write happens
    // before the job reached this thread.
    before_slot_write();
    tensorlane_core::store_bytes(slot, src);
}

/// A reader's view of one slot's event, load-only (readers map the events read-only,
/// where Rust allows only relaxed loads): word `first` issued, word `first + 1`
/// completed.
#[derive(Debug, Clone, Copy)]
pub struct EventView<'a> {
    words: ReadWords<'a>,
    first: usize,
}

impl<'a> EventView<'a> {
    /// The event at word `first` of `words` (words outside them read as 0).
    pub fn new(words: ReadWords<'a>, first: usize) -> Self {
        EventView { words, first }
    }

    /// The records issued. A relaxed load then an Acquire fence, which pairs with the
    /// Release store in [`EventCounters::issue`] exactly as an Acquire load would (a
    /// fence after a load that reads a Release store synchronises with it).
    pub fn issued(&self) -> u64 {
        let issued = self.words.load(self.first).unwrap_or(0);
        fence(Ordering::Acquire);
        issued
    }

    /// The records completed: a relaxed load then an Acquire fence, which pairs with
    /// the Release store in [`EventCounters::complete`] (the slot bytes the stream
    /// stored before are visible to the reader's loads after this).
    pub fn completed(&self) -> u64 {
        let completed = self
            .first
            .checked_add(1)
            .and_then(|i| self.words.load(i))
            .unwrap_or(0);
        fence(Ordering::Acquire);
        completed
    }
}

/// Whether `completed` has reached record `target` (counts wrap after 2^64 records;
/// the wrapping difference keeps the comparison right across the wrap).
#[inline]
pub fn reached(target: u64, completed: u64) -> bool {
    target.wrapping_sub(completed) as i64 <= 0
}

#[cfg(all(test, not(any(feature = "loom", feature = "shuttle"))))]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_overwritten_from_the_write_d_minus_one_later_on() {
        // D = 3: write 5's slot is reused by write 8, begun after write 7 was published.
        assert!(!overwritten(5, 3, 6));
        assert!(overwritten(5, 3, 7));
        assert!(copy_intact(5, 3, || 6));
        assert!(!copy_intact(5, 3, || 7));
        assert!(overwritten(u64::MAX, 3, u64::MAX));
        assert!(!overwritten(u64::MAX, 3, u64::MAX - 1));
    }

    #[test]
    fn events_count_records_across_the_wrap() {
        let words = [AtomicU64::new(u64::MAX), AtomicU64::new(u64::MAX - 1)];
        let counters = EventCounters::new(&words[0], &words[1]);
        let view = EventView::new(ReadWords::new(&words), 0);
        assert!(!reached(view.issued(), view.completed()));
        assert_eq!(counters.issue(), 0);
        counters.complete(u64::MAX);
        assert!(!reached(view.issued(), view.completed()));
        counters.complete(0);
        assert!(reached(view.issued(), view.completed()));
        let slot = [AtomicU64::new(0)];
        stream_copy(&slot, &[7, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(slot[0].load(Ordering::Relaxed), 7);
    }
}
