//! tensorlane-gpu: GPU tensor lanes between processes.
//!
//! A GPU lane moves tensors that live in device memory from one writer process to
//! reader processes without host copies: the writer allocates one exportable device
//! allocation per slot and one interprocess event per slot when it creates the lane,
//! and serves them once to each process that opens it; every write is copied into a
//! slot, the slot's event is recorded, and only then is the write's record published
//! through an ordinary shm lane (a [`tensorlane_shm`] stream or topic). Readers wait on
//! the event before touching the slot and re-check the lane's sequence afterwards.
//! See [`lane`] for the protocol and docs/LAYOUT.md for the bytes.
//!
//! Two [`Backend`]s share that protocol:
//! - [`CudaBackend`]: CUDA through cudarc's driver bindings, loaded
//!   at run time ([`gpu_available`] says whether a device can be
//!   used, and never panics);
//! - [`HostBackend`]: memfd slots and completion words, with a delayed-completion mode
//!   that keeps copies in flight, so the protocol is tested on machines without a GPU.
//!
//! Lanes: [`GpuStreamWriter`] / [`GpuStreamReader`] (the latest tensor) and
//! [`GpuTopicPublisher`] / [`GpuTopicSubscriber`] (every tensor, lossless or lossy),
//! with host copies, device copies and zero-copy views, and an optional CPU mirror
//! (`<name>.cpu`, an ordinary shm lane) for processes without a GPU.
//!
//! Under `--features loom` or `--features shuttle` only [`protocol`] (the slot
//! protocol's fences and event counters, which the checkers explore) is compiled; the
//! lanes, backends and hand-off need mappings, sockets and processes.
#![cfg(target_os = "linux")]

pub mod protocol;
mod sync;

/// Declares items that exist only outside the checker builds.
macro_rules! shipped {
    ($($item:item)*) => { $(#[cfg(not(any(feature = "loom", feature = "shuttle")))] $item)* };
}

shipped! {
    pub mod backend;
    pub mod cuda;
    mod error;
    pub mod handoff;
    pub mod host;
    pub mod lane;
    mod stream;
    pub mod table;
    mod topic;
    mod wait;

    pub use backend::{Backend, BackendKind, DeviceId, DevicePtr, Export, SlotReader, SlotWriter};
    pub use cuda::{gpu_available, CudaBackend, CudaBuffer, CudaReader, CudaWriter};
    pub use error::GpuError;
    pub use host::{HostBackend, HostReader, HostWriter};
    pub use lane::{mirror_name, GpuLaneOptions};
    pub use stream::{GpuStreamReader, GpuStreamWriter, StreamView};
    pub use topic::{GpuTopicPublisher, GpuTopicSubscriber, TopicView};
}

/// The README's examples (lanes, the core, GPU lanes), compiled as doc tests.
#[cfg(all(doctest, not(any(feature = "loom", feature = "shuttle"))))]
#[doc = include_str!("../../README.md")]
struct ReadmeExamples;
