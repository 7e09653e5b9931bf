//! Zero-copy loans as context managers: a queue slot lent as a numpy array for the
//! duration of a `with` block.
//!
//! # How a loan is laid out
//! The slot is viewed by a private array `B` (base: a [`SlotMemory`] that keeps the
//! segment mapped) and handed to the user as `A = B.view()`. numpy attaches every
//! view made from `A` (a slice, a reshape, `.view()`) to `B`, so `B`'s reference
//! count counts those views; `A`'s counts what holds `A` itself (a `memoryview`, a
//! DLPack capsule, a torch tensor, another name).
//!
//! # Invariants
//! - While a loan is open, its handle's Rust state holds the [`HeldSlot`]
//!   (`held`), and every other call on the handle (push, pop, another loan, an
//!   awaitable's worker) refuses to run (`LoanOpen`): nothing can finish the slot
//!   while an array shows it. The check is made under the handle's mutex, with the
//!   operation it guards.
//! - When the block ends (by `__exit__`, or when the loan object is dropped without
//!   it), `A` and `B` are detached (emptied, read-only): nothing reaches the slot
//!   through them after the block.
//! - If a view of the slot outlives the block (more references to `A` or `B` than
//!   the loan's own: [`OWN_REFERENCES`]), the loan is not finished: the handle keeps
//!   holding the slot (nothing is pushed, the item stays at the head), so no other
//!   process ever writes what the view shows (the producer never publishes the
//!   slot, the consumer never releases the item); `LoanEscaped` is raised, and every
//!   later call on the handle raises it again until those views are gone, when the
//!   hold is given up. The escaped arrays keep the segment mapped ([`SlotMemory`]),
//!   so no view ever dangles.
//! - A cleanly finished loan drops its [`SlotMemory`]'s segment: detached arrays the
//!   user still holds do not keep the lane's role (its lock lives on the segment's
//!   file) from a process that takes it over.
//! - The loan's own state (`lent`) is locked only with the GIL held and never across
//!   a wait; the handle's mutex only inside `Python::detach` (see `handle`).

use crate::arrays::{self, detach, references, view};
use crate::errors::{loan_open, raise};
use crate::frame::Frame;
use crate::handle::{Deadline, Handle};
use crate::queue::{Producer, QueueConsumer, QueueProducer};
use crate::reader::Reader;
use numpy::PyUntypedArray;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tensorlane_shm::{Frame as LaneFrame, QueueConsumer as ShmConsumer, Segment, Wait};

/// References to each of a loan's arrays that are the loan's own. `A`: the loan's,
/// and the name the `with` statement bound (`as slot`) or, for a consumer, the
/// frame's. `B`: the loan's, and `A`'s base.
const OWN_REFERENCES: isize = 2;

/// The base of a lent array: keeps the segment mapped while the loan is open or its
/// views escaped; a zeroed element for a detached 0-d array.
#[pyclass(frozen, module = "tensorlane")]
pub(crate) struct SlotMemory {
    segment: Mutex<Option<Arc<Segment>>>,
    zeros: Mutex<Vec<Box<[u64]>>>,
}

impl SlotMemory {
    /// Stops keeping the segment mapped (the arrays over it are detached).
    fn release(&self) {
        *self.segment.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

/// Refuses a loan unless the caller said it trusts the lane's other processes.
pub(crate) fn require_trust(trust_peers: bool) -> PyResult<()> {
    if trust_peers {
        return Ok(());
    }
    Err(PyValueError::new_err(
        "a loan lends the shared memory itself: pass trust_peers=True to promise that \
         every process writing this lane follows docs/LAYOUT.md (see the threat model), \
         or use push/pop, which copy and need no trust",
    ))
}

/// The arrays of an open loan (or of an escaped one).
pub(crate) struct Lent {
    user: Py<PyUntypedArray>,
    base: Py<PyUntypedArray>,
    memory: Py<SlotMemory>,
}

impl Lent {
    /// Lends `len` bytes at `address` (a held slot of `segment`) as `A` over `B`.
    ///
    /// # Safety
    /// `address` is a held slot of `segment` of the lane's tensor size, which no other
    /// call or process touches until the hold is given up; the hold outlives every
    /// access through the arrays (the module's invariants).
    unsafe fn new(
        py: Python<'_>,
        info: &arrays::LaneInfo,
        address: usize,
        segment: Arc<Segment>,
        writeable: bool,
    ) -> PyResult<Self> {
        let memory = Py::new(
            py,
            SlotMemory {
                segment: Mutex::new(Some(segment)),
                zeros: Mutex::new(Vec::new()),
            },
        )?;
        // SAFETY: the caller's promise; `memory` keeps the mapping while `B` lives.
        let base = unsafe {
            view(
                py,
                info,
                address as *mut u8,
                writeable,
                memory.bind(py).clone().into_any(),
            )?
        };
        let user = base
            .call_method0("view")?
            .cast_into::<PyUntypedArray>()?
            .unbind();
        Ok(Lent {
            user,
            base: base.unbind(),
            memory,
        })
    }

    /// Whether a view of the slot exists beyond the loan's own references.
    fn escaped(&self, py: Python<'_>) -> bool {
        references(self.user.bind(py)) > OWN_REFERENCES
            || references(self.base.bind(py)) > OWN_REFERENCES
    }

    /// Cuts both arrays off the slot.
    fn detach(&self, py: Python<'_>) {
        let memory = self.memory.get();
        let mut zeros = memory.zeros.lock().unwrap_or_else(|e| e.into_inner());
        detach(self.user.bind(py), &mut zeros);
        detach(self.base.bind(py), &mut zeros);
    }
}

/// What a lane handle class with loans keeps of an escaped loan.
pub(crate) type Escaped = Mutex<Option<Lent>>;

/// Before any call on a handle with loans: if views of an escaped loan still exist,
/// `LoanEscaped`; once they are gone, the hold is given up and the call goes on.
pub(crate) fn settle<T: Send>(
    py: Python<'_>,
    escaped: &Escaped,
    handle: &Handle<T>,
    give_up: impl FnOnce(&mut T) + Send,
) -> PyResult<()> {
    let mut slot = escaped.lock().unwrap_or_else(|e| e.into_inner());
    let Some(lent) = slot.as_ref() else {
        return Ok(());
    };
    if lent.escaped(py) {
        return Err(escaped_error(py, "earlier; drop those views first"));
    }
    let lent = slot.take().expect("checked above");
    drop(slot);
    lent.detach(py);
    lent.memory.get().release();
    handle.run(py, move |state| {
        give_up(state);
        Ok(())
    })
}

fn escaped_error(py: Python<'_>, when: &str) -> PyErr {
    raise(
        py,
        "LoanEscaped",
        format!(
            "a view of a loaned slot (a slice, reshape, memoryview or tensor made from \
             it) outlived its with block {when}; the loan was not finished (nothing \
             pushed, the item not removed) and the handle keeps the slot until those \
             views are gone. Copy what you keep (array.copy())"
        ),
    )
}

fn taken() -> PyErr {
    PyValueError::new_err("a loan is entered once")
}

/// Ends a loan: detaches its arrays; finishes it with `finish` unless the block
/// raised or views escaped (then the hold is given up, or kept, as the module says).
fn end<T: Send>(
    py: Python<'_>,
    lent: Lent,
    raised: bool,
    escaped: &Escaped,
    handle: &Handle<T>,
    give_up: impl FnOnce(&mut T) + Send,
    finish: impl FnOnce(&mut T) -> Result<Option<u64>, tensorlane_shm::LaneError> + Send,
) -> PyResult<Option<u64>> {
    let views = lent.escaped(py);
    lent.detach(py);
    if views {
        // The hold stays: the slot is still this handle's, and what the views show
        // is never handed to another process.
        *escaped.lock().unwrap_or_else(|e| e.into_inner()) = Some(lent);
        return if raised {
            Ok(None) // the block's exception goes on; later calls report the escape
        } else {
            Err(escaped_error(py, "just now"))
        };
    }
    lent.memory.get().release();
    drop(lent);
    if raised {
        handle.run(py, move |state| {
            give_up(state);
            Ok(None)
        })
    } else {
        handle.run(py, finish)
    }
}

fn raised(args: &Bound<'_, PyTuple>) -> bool {
    args.get_item(0).is_ok_and(|t| !t.is_none())
}

/// `with producer.loan(trust_peers=True) as slot:` (see `QueueProducer.loan`).
#[pyclass(frozen, module = "tensorlane")]
pub(crate) struct ProducerLoan {
    producer: Py<QueueProducer>,
    deadline: Deadline,
    entered: AtomicBool,
    lent: Mutex<Option<Lent>>,
    seq: Mutex<Option<u64>>,
}

impl ProducerLoan {
    pub(crate) fn new(producer: Py<QueueProducer>, deadline: Deadline) -> Self {
        ProducerLoan {
            producer,
            deadline,
            entered: AtomicBool::new(false),
            lent: Mutex::new(None),
            seq: Mutex::new(None),
        }
    }

    fn finish(&self, py: Python<'_>, raised: bool) -> PyResult<()> {
        let Some(lent) = self.lent.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return Ok(());
        };
        let producer = self.producer.get();
        let seq = end(
            py,
            lent,
            raised,
            &producer.escaped,
            &producer.handle,
            |p: &mut Producer| p.held = None,
            |p: &mut Producer| {
                let held = p.held.take().expect("an open loan holds its slot");
                p.lane.commit_held(held).map(Some)
            },
        )?;
        *self.seq.lock().unwrap_or_else(|e| e.into_inner()) = seq;
        Ok(())
    }
}

#[pymethods]
impl ProducerLoan {
    fn __enter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyUntypedArray>> {
        // Relaxed: the flag orders nothing; the GIL serialises the Python calls.
        if self.entered.swap(true, Ordering::Relaxed) {
            return Err(taken());
        }
        let producer = self.producer.get();
        settle(py, &producer.escaped, &producer.handle, |p| p.held = None)?;
        let (address, segment) = producer.handle.wait(py, self.deadline, |p, wait: Wait| {
            if p.held.is_some() {
                return Err(loan_open());
            }
            // SAFETY: the caller of `loan` passed `trust_peers=True`, the promise
            // `hold_slot` asks for; the handle's mutex makes this the only thread
            // using the handle, and the hold is kept in the handle (`held`), which
            // refuses every other call until the loan ends (module invariants).
            let held = unsafe { p.lane.hold_slot(wait)? };
            let out = (held.as_ptr() as usize, held.segment().clone());
            p.held = Some(held);
            Ok(out)
        })?;
        // SAFETY: `address` is the slot just held, of the lane's tensor size; the
        // handle keeps it held until `finish` has detached the arrays.
        let lent = unsafe { Lent::new(py, &producer.info, address, segment, true) };
        let lent = match lent {
            Ok(lent) => lent,
            Err(e) => {
                producer.handle.run(py, |p| {
                    p.held = None;
                    Ok(())
                })?;
                return Err(e);
            }
        };
        let user = lent.user.bind(py).clone();
        *self.lent.lock().unwrap_or_else(|e| e.into_inner()) = Some(lent);
        Ok(user)
    }

    #[pyo3(signature = (*args))]
    fn __exit__(&self, py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.finish(py, raised(args))?;
        Ok(false)
    }

    /// Sequence number of the pushed item (`None` before the block ends, or if
    /// nothing was pushed).
    #[getter]
    fn seq(&self) -> Option<u64> {
        *self.seq.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for ProducerLoan {
    fn drop(&mut self) {
        // Entered and never exited (a generator left inside its block, a bare
        // `__enter__`): end it as a block that raised.
        if self.lent.get_mut().map(|l| l.is_some()).unwrap_or(true) {
            Python::attach(|py| {
                let _ = self.finish(py, true);
            });
        }
    }
}

/// `with consumer.loan(trust_peers=True) as frame:` (see `QueueConsumer.loan`).
#[pyclass(frozen, module = "tensorlane")]
pub(crate) struct ConsumerLoan {
    consumer: Py<QueueConsumer>,
    deadline: Deadline,
    entered: AtomicBool,
    lent: Mutex<Option<Lent>>,
}

impl ConsumerLoan {
    pub(crate) fn new(consumer: Py<QueueConsumer>, deadline: Deadline) -> Self {
        ConsumerLoan {
            consumer,
            deadline,
            entered: AtomicBool::new(false),
            lent: Mutex::new(None),
        }
    }

    fn finish(&self, py: Python<'_>, raised: bool) -> PyResult<()> {
        let Some(lent) = self.lent.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return Ok(());
        };
        let consumer = self.consumer.get();
        end(
            py,
            lent,
            raised,
            &consumer.escaped,
            &consumer.handle,
            |c: &mut Reader<ShmConsumer>| c.held = None,
            |c: &mut Reader<ShmConsumer>| {
                let held = c.held.take().expect("an open loan holds its item");
                c.lane.release_held(held).map(|()| None)
            },
        )?;
        Ok(())
    }
}

/// What a consumer loan's first step found.
enum Next {
    /// An item an awaitable received before: it comes first, as a copy.
    Pending,
    /// The next item, held in place.
    Held(LaneFrame, usize, Arc<Segment>),
}

#[pymethods]
impl ConsumerLoan {
    fn __enter__(&self, py: Python<'_>) -> PyResult<Frame> {
        // Relaxed: as in `ProducerLoan::__enter__`.
        if self.entered.swap(true, Ordering::Relaxed) {
            return Err(taken());
        }
        let consumer = self.consumer.get();
        settle(py, &consumer.escaped, &consumer.handle, |c| c.held = None)?;
        loop {
            let next = consumer.handle.wait(py, self.deadline, |c, wait: Wait| {
                if c.held.is_some() {
                    return Err(loan_open());
                }
                if c.has_pending() {
                    return Ok(Next::Pending);
                }
                // SAFETY: the caller of `loan` passed `trust_peers=True`, the promise
                // `hold_item` asks for; the handle's mutex makes this the only thread
                // using the handle, and the hold is kept in the handle (`held`),
                // which refuses every other call until the loan ends.
                let (frame, held) = unsafe { c.lane.hold_item(wait)? };
                let out = Next::Held(frame, held.as_ptr() as usize, held.segment().clone());
                c.held = Some(held);
                Ok(out)
            })?;
            let (frame, address, segment) = match next {
                Next::Held(frame, address, segment) => (frame, address, segment),
                // Received already (copied): handed out as a copy, no hold.
                Next::Pending => {
                    match crate::reader::take(py, &consumer.handle, &consumer.info, None)? {
                        Some(frame) => return Ok(frame),
                        None => continue, // another thread took it first
                    }
                }
            };
            // SAFETY: `address` is the item just held, of the lane's tensor size; the
            // handle keeps it held until `finish` has detached the arrays.
            let lent = unsafe { Lent::new(py, &consumer.info, address, segment, false) };
            let lent = match lent {
                Ok(lent) => lent,
                Err(e) => {
                    consumer.handle.run(py, |c| {
                        c.held = None;
                        Ok(())
                    })?;
                    return Err(e);
                }
            };
            let frame = Frame::new(frame, lent.user.clone_ref(py).into_any());
            *self.lent.lock().unwrap_or_else(|e| e.into_inner()) = Some(lent);
            return Ok(frame);
        }
    }

    #[pyo3(signature = (*args))]
    fn __exit__(&self, py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.finish(py, raised(args))?;
        Ok(false)
    }
}

impl Drop for ConsumerLoan {
    fn drop(&mut self) {
        // As for `ProducerLoan`: an entered loan never exited ends as a raised block.
        if self.lent.get_mut().map(|l| l.is_some()).unwrap_or(true) {
            Python::attach(|py| {
                let _ = self.finish(py, true);
            });
        }
    }
}
