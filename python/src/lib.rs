//! tensorlane for Python: the extension module `tensorlane._native`, which the
//! `tensorlane` package re-exports. Every call goes to the Rust lanes of
//! `tensorlane-shm`; nothing of the protocol is implemented twice.
//!
//! The module rules (each stated where it is kept):
//! - the GIL is released for every copy and wait (`handle`), and waits are cut into
//!   slices that let Ctrl-C and asyncio in;
//! - arrays are checked, never cast or reshaped (`arrays`);
//! - loans lend the shared slot as a numpy array only inside a `with` block, and an
//!   array that escapes it is reported (`loan`);
//! - every Rust error is a Python exception of its own class under
//!   `tensorlane.LaneError` (`errors`).
//!
//! Under the checkers' features (`loom`, `shuttle`) the lanes are compiled out, and
//! so is this module.

#[cfg(not(any(feature = "loom", feature = "shuttle")))]
mod aio;
#[cfg(not(any(feature = "loom", feature = "shuttle")))]
mod arrays;
#[cfg(not(any(feature = "loom", feature = "shuttle")))]
mod common;
#[cfg(not(any(feature = "loom", feature = "shuttle")))]
mod dtype;
#[cfg(not(any(feature = "loom", feature = "shuttle")))]
mod errors;
#[cfg(not(any(feature = "loom", feature = "shuttle")))]
mod frame;
#[cfg(not(any(feature = "loom", feature = "shuttle")))]
mod handle;
#[cfg(not(any(feature = "loom", feature = "shuttle")))]
mod lanes;
#[cfg(not(any(feature = "loom", feature = "shuttle")))]
mod loan;
#[cfg(not(any(feature = "loom", feature = "shuttle")))]
mod options;
#[cfg(not(any(feature = "loom", feature = "shuttle")))]
mod queue;
#[cfg(not(any(feature = "loom", feature = "shuttle")))]
mod reader;
#[cfg(not(any(feature = "loom", feature = "shuttle")))]
mod stream;
#[cfg(not(any(feature = "loom", feature = "shuttle")))]
mod topic;

#[cfg(not(any(feature = "loom", feature = "shuttle")))]
use pyo3::prelude::*;

#[cfg(not(any(feature = "loom", feature = "shuttle")))]
#[pymodule]
fn _native(module: &Bound<'_, PyModule>) -> PyResult<()> {
    module.add_class::<frame::Frame>()?;
    module.add_class::<stream::StreamWriter>()?;
    module.add_class::<stream::StreamReader>()?;
    module.add_class::<queue::QueueProducer>()?;
    module.add_class::<queue::QueueConsumer>()?;
    module.add_class::<topic::TopicPublisher>()?;
    module.add_class::<topic::TopicSubscriber>()?;
    module.add_class::<loan::ProducerLoan>()?;
    module.add_class::<loan::ConsumerLoan>()?;
    module.add_class::<loan::SlotMemory>()?;
    module.add_function(wrap_pyfunction!(lanes::list_lanes, module)?)?;
    module.add_function(wrap_pyfunction!(lanes::inspect, module)?)?;
    module.add_function(wrap_pyfunction!(lanes::unlink, module)?)?;
    module.add("SLICE_SECONDS", handle::SLICE.as_secs_f64())?;
    Ok(())
}
