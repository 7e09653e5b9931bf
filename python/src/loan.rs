//! Zero-copy loans as context managers: a queue slot lent as a numpy array for the
//! duration of a `with` block.
//!
//! # Invariants
//! - The array's memory is the shared slot itself, kept mapped by the array's base
//!   (a [`SlotMemory`] owning the segment), so no array ever dangles, even if the
//!   handle is closed meanwhile.
//! - When the block ends, the array is detached (emptied and made read-only):
//!   nothing reaches the slot through it after the block.
//! - A view made from it during the block (a slice, `memoryview`, a torch tensor)
//!   would still reach the slot: such views are counted (each holds a reference to
//!   the array) and, if any outlives the block, the loan is not finished (nothing is
//!   pushed, the item is not removed) and `LoanEscaped` is raised. The slot stays
//!   this process's own, then: a producer's next loan reuses it, a consumer's next
//!   read returns the same item.

use crate::arrays::{self, detach, references, view};
use crate::errors::raise;
use crate::frame::Frame;
use crate::handle::Deadline;
use crate::queue::{QueueConsumer, QueueProducer};
use numpy::PyUntypedArray;
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::PyTuple;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tensorlane_shm::{HeldSlot, Segment, Wait};

/// References to a lent array that are the loan's own: the loan's, and the name the
/// `with` statement bound (`as slot`; for a consumer, the frame's).
const OWN_REFERENCES: isize = 2;

/// The base of a lent array: keeps the segment mapped while the array lives.
#[pyclass(frozen, module = "tensorlane")]
pub(crate) struct SlotMemory {
    _segment: Arc<Segment>,
}

/// Refuses a loan unless the caller said it trusts the lane's other processes.
pub(crate) fn require_trust(py: Python<'_>, trust_peers: bool) -> PyResult<()> {
    if trust_peers {
        return Ok(());
    }
    let _ = py;
    Err(PyValueError::new_err(
        "a loan lends the shared memory itself: pass trust_peers=True to promise that \
         every process writing this lane follows docs/LAYOUT.md (see the threat model), \
         or use push/pop, which copy and need no trust",
    ))
}

/// What a loan holds between `__enter__` and `__exit__`.
struct Lent {
    held: HeldSlot,
    array: Py<PyUntypedArray>,
}

fn lend<'py>(
    py: Python<'py>,
    info: &arrays::LaneInfo,
    held: HeldSlot,
    writeable: bool,
) -> PyResult<(Lent, Bound<'py, PyUntypedArray>)> {
    let owner = Bound::new(
        py,
        SlotMemory {
            _segment: held.segment().clone(),
        },
    )?;
    // SAFETY: the held slot's `len()` bytes (the lane's tensor size, `info.nbytes()`)
    // stay mapped while `owner` (the array's base) lives; the trust promise of the
    // loan makes this process their only user until the loan is finished, and at
    // `__exit__` the array is detached before the slot is handed on.
    let array = unsafe { view(py, info, held.as_ptr(), writeable, owner.into_any())? };
    Ok((
        Lent {
            held,
            array: array.clone().unbind(),
        },
        array,
    ))
}

/// Ends the array's access to the slot; whether views of it escaped the block.
fn end(py: Python<'_>, array: &Py<PyUntypedArray>) -> bool {
    let array = array.bind(py);
    let escaped = references(array) > OWN_REFERENCES;
    detach(array);
    escaped
}

fn escaped(py: Python<'_>, what: &str) -> PyErr {
    raise(
        py,
        "LoanEscaped",
        format!(
            "a view of the loaned slot (a slice, memoryview or tensor made from it) \
             outlived the with block; {what}. Copy what you keep (array.copy())"
        ),
    )
}

fn taken(py: Python<'_>) -> PyErr {
    let _ = py;
    PyValueError::new_err("a loan is entered once")
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
}

#[pymethods]
impl ProducerLoan {
    fn __enter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyUntypedArray>> {
        // Relaxed: the flag orders nothing; the GIL serialises the Python calls.
        if self.entered.swap(true, Ordering::Relaxed) {
            return Err(taken(py));
        }
        let mut lent = self.lent.lock().unwrap_or_else(|e| e.into_inner());
        let producer = self.producer.get();
        let held = producer.handle.wait(py, self.deadline, |p, wait: Wait| {
            // SAFETY: the caller of `loan` passed `trust_peers=True`, the promise
            // `hold_slot` asks for; the address is used only by the array made
            // below, which `__exit__` detaches before the slot is committed.
            unsafe { p.hold_slot(wait) }
        })?;
        let (state, array) = lend(py, &producer.info, held, true)?;
        *lent = Some(state);
        Ok(array)
    }

    #[pyo3(signature = (*args))]
    fn __exit__(&self, py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        let Some(Lent { held, array }) = self.lent.lock().unwrap_or_else(|e| e.into_inner()).take()
        else {
            return Ok(false);
        };
        let escaped_views = end(py, &array);
        drop(array);
        let raised = args.get_item(0).is_ok_and(|t| !t.is_none());
        if raised {
            return Ok(false); // nothing pushed; the block's exception goes on
        }
        if escaped_views {
            return Err(escaped(py, "the item was not pushed"));
        }
        let producer = self.producer.get();
        let seq = producer.handle.run(py, move |p| p.commit_held(held))?;
        *self.seq.lock().unwrap_or_else(|e| e.into_inner()) = Some(seq);
        Ok(false)
    }

    /// Sequence number of the pushed item (`None` before the block ends, or if
    /// nothing was pushed).
    #[getter]
    fn seq(&self) -> Option<u64> {
        *self.seq.lock().unwrap_or_else(|e| e.into_inner())
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
}

#[pymethods]
impl ConsumerLoan {
    fn __enter__(&self, py: Python<'_>) -> PyResult<Frame> {
        // Relaxed: as in `ProducerLoan::__enter__`.
        if self.entered.swap(true, Ordering::Relaxed) {
            return Err(taken(py));
        }
        let mut lent = self.lent.lock().unwrap_or_else(|e| e.into_inner());
        let consumer = self.consumer.get();
        let (frame, held) = consumer.handle.wait(py, self.deadline, |c, wait: Wait| {
            if c.has_pending() {
                return Err(tensorlane_shm::LaneError::Other(
                    "an item received by a cancelled awaitable comes first: pop it before \
                     the next loan"
                        .into(),
                ));
            }
            // SAFETY: the caller of `loan` passed `trust_peers=True`, the promise
            // `hold_item` asks for; the address is used only by the read-only array
            // made below, which `__exit__` detaches before the item is released.
            unsafe { c.lane.hold_item(wait) }
        })?;
        let (state, array) = lend(py, &consumer.info, held, false)?;
        *lent = Some(state);
        Ok(Frame::new(frame, array.into_any().unbind()))
    }

    #[pyo3(signature = (*args))]
    fn __exit__(&self, py: Python<'_>, args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        let Some(Lent { held, array }) = self.lent.lock().unwrap_or_else(|e| e.into_inner()).take()
        else {
            return Ok(false);
        };
        let escaped_views = end(py, &array);
        drop(array);
        let raised = args.get_item(0).is_ok_and(|t| !t.is_none());
        if raised {
            return Ok(false); // the item stays at the head; the exception goes on
        }
        if escaped_views {
            return Err(escaped(py, "the item was not removed"));
        }
        let consumer = self.consumer.get();
        consumer
            .handle
            .run(py, move |c| c.lane.release_held(held))?;
        Ok(false)
    }
}
