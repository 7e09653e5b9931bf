//! What GPU streams and topics share: exporting the slots when a lane is created,
//! importing them when it is opened, and the read protocol.
//!
//! # A GPU lane
//! Lane `name` is an ordinary shm lane of the same kind (stream or topic) whose items
//! are [`Record`]s (`u64[4]`: device slot, bytes, table checksum), plus `D` device
//! slots served by the writer's process (see [`crate::handoff`]), plus, on request, a
//! CPU mirror: the ordinary shm lane `<name>.cpu` carrying the tensor itself, which a
//! process without a GPU (or without this crate) reads like any other lane.
//!
//! # The slot protocol
//! Write `k` (a stream's sequence, or a topic's position plus one) goes to device slot
//! `k mod D`. The writer
//! 1. issues a release fence, so that a reader that observes any byte of this write
//!    also observes that write `k - 1` was published (pairs with the reader's acquire
//!    fence in step 4 below);
//! 2. enqueues the copy into the slot, then records the slot's event;
//! 3. publishes the record through the shm lane (never before step 2: a reader may
//!    act on it at once).
//!
//! A reader that received the record of write `k`
//! 1. checks it against the table (slot `k mod D`, the tensor's bytes, the table's
//!    checksum): anything else is [`GpuError::Corrupt`];
//! 2. waits until the slot's event has fired (bounded: a writer that died with the
//!    copy in flight never fires it), giving up early once the writer has begun
//!    reusing the slot (the read is lost);
//! 3. copies the slot (or hands out a view);
//! 4. issues an acquire fence and reads how many writes the lane has published. The
//!    writer starts overwriting slot `k mod D` only after publishing write `k + D - 1`,
//!    so if fewer have been published, the copy is write `k`, whole. Otherwise the copy
//!    may be torn: a lossy reader reads again, and a lossless topic subscriber reports
//!    corruption, because a topic has `D = capacity + 2` slots and the writer cannot
//!    get that far ahead of a lossless subscriber that is still copying.

use crate::backend::{Backend, BackendKind, Export, SlotReader};
use crate::error::GpuError;
use crate::handoff::{self, Server};
use crate::table::{LaneTable, Record, MAX_DEVICE_SLOTS, RECORD_WORDS};
use std::time::Duration;
use tensorlane_shm::{Clock, CreateOptions, DType, Kind, LaneName, TensorSpec};

/// How long a reader waits, by default, for a write's completion event, and for the
/// writer's hand-off when it opens a lane.
pub const DEFAULT_EVENT_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a writer of a legacy CUDA IPC lane waits, once it has given up its role,
/// before freeing its slots (readers check the role before touching them).
pub const LEGACY_GRACE: Duration = Duration::from_millis(100);

/// The tensor of a lane's records: `u64[RECORD_WORDS]`.
pub fn record_spec() -> TensorSpec {
    TensorSpec::new(DType::U64, &[RECORD_WORDS as u64]).expect("a valid spec")
}

/// The name of lane `name`'s CPU mirror.
pub fn mirror_name(name: &str) -> String {
    format!("{name}.cpu")
}

/// Creates a lane's record lane with `create`; if that fails, the mirror (created
/// before it, if `mirrored`) is unlinked again.
pub(crate) fn record_lane<L>(
    name: &str,
    mirrored: bool,
    create: impl FnOnce() -> Result<L, tensorlane_shm::LaneError>,
) -> Result<L, GpuError> {
    create().map_err(|e| {
        if mirrored {
            if let Ok(mirror) = LaneName::new(&mirror_name(name)) {
                let _ = tensorlane_shm::segment::unlink(&mirror);
            }
        }
        e.into()
    })
}

/// Options of a GPU lane at creation.
///
/// ```
/// use tensorlane_gpu::GpuLaneOptions;
/// use tensorlane_shm::Clock;
/// let options = GpuLaneOptions::new().mirror(true).clock(Clock::Realtime);
/// assert!(options.mirror);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GpuLaneOptions {
    /// Also publish every write to `<name>.cpu`, an ordinary shm lane of the tensor,
    /// for processes without a GPU (a device-to-host copy per write).
    pub mirror: bool,
    /// The clock that stamps the lane's records (and its mirror's frames), so the
    /// `timestamp_ns` of the frames readers get: [`Clock::Monotonic`] by default,
    /// [`Clock::Realtime`], or [`Clock::None`] (0, no clock read per write).
    pub clock: Clock,
}

impl GpuLaneOptions {
    /// The defaults: no mirror, stamped with [`Clock::Monotonic`].
    pub fn new() -> Self {
        Self::default()
    }

    /// Also publishes every write to the CPU mirror `<name>.cpu` (see the field
    /// [`mirror`](Self::mirror)).
    pub fn mirror(mut self, mirror: bool) -> Self {
        self.mirror = mirror;
        self
    }

    /// Stamps the lane with `clock`.
    pub fn clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The options of the shm lanes behind a GPU lane (record lane and mirror).
    pub(crate) fn shm(self) -> CreateOptions {
        CreateOptions::default().clock(self.clock)
    }
}

/// The writer's side of the slots: the backend's writer, the table, the server.
#[derive(Debug)]
pub(crate) struct Exporter<B: Backend> {
    // Declared first, so dropped first: nobody is handed the slots while they are
    // freed.
    _server: Server,
    pub slots: B::Writer,
    pub table: LaneTable,
    pub checksum: u64,
}

impl<B: Backend> Drop for Exporter<B> {
    fn drop(&mut self) {
        // The record lane (and with it the writer role) is dropped before the exporter:
        // readers that checked the role before it went may still be copying.
        if self.table.backend == BackendKind::CudaLegacyIpc {
            std::thread::sleep(LEGACY_GRACE);
        }
    }
}

impl<B: Backend> Exporter<B> {
    /// Allocates and exports `slots` slots for lane `name` and starts serving them.
    pub fn create(
        backend: &B,
        name: &str,
        kind: Kind,
        spec: &TensorSpec,
        slots: usize,
        options: GpuLaneOptions,
    ) -> Result<Self, GpuError> {
        LaneName::new(name).map_err(|e| GpuError::Lane(e.into()))?;
        if options.mirror {
            LaneName::new(&mirror_name(name)).map_err(|e| GpuError::Lane(e.into()))?;
        }
        if !(2..=MAX_DEVICE_SLOTS).contains(&slots) {
            return Err(GpuError::Unsupported(format!(
                "{slots} device slots (a GPU lane has 2 to {MAX_DEVICE_SLOTS})"
            )));
        }
        let (writer, export) = backend.create(slots, spec.byte_len())?;
        let table = LaneTable {
            kind,
            backend: backend.kind(),
            device: backend.device(),
            spec: spec.clone(),
            slots,
            slot_bytes: spec.byte_len(),
            mirror: options.mirror,
            blob: export.blob,
            fds: export.fds.len(),
            writer_pid: std::process::id(),
        };
        let checksum = table.checksum();
        let server = Server::start(name, table.encode(), export.fds)?;
        Ok(Exporter {
            _server: server,
            slots: writer,
            table,
            checksum,
        })
    }

    /// The record of write `seq`.
    pub fn record(&self, seq: u64) -> [u8; RECORD_WORDS * 8] {
        Record {
            slot: seq % self.table.slots as u64,
            len: self.table.spec.byte_len() as u64,
            table: self.checksum,
        }
        .encode()
    }

    /// Step 1 of the write protocol (see the module docs).
    pub fn before_slot_write(&self) {
        // The Release fence that pairs with the Acquire fence in `Importer::intact`.
        crate::protocol::before_slot_write();
    }

    /// Checks that `len` is one tensor.
    pub fn check_size(&self, len: usize) -> Result<(), GpuError> {
        if len != self.table.spec.byte_len() {
            return Err(GpuError::WrongSize {
                expected: self.table.spec.byte_len(),
                found: len,
            });
        }
        Ok(())
    }
}

/// A reader's side of the slots.
#[derive(Debug)]
pub(crate) struct Importer<B: Backend> {
    pub slots: B::Reader,
    pub table: LaneTable,
    pub checksum: u64,
    pub timeout: Duration,
}

impl<B: Backend> Importer<B> {
    /// Fetches lane `name`'s table and slots from its writer, process `creator_pid`
    /// (from the shm header of the record lane), and imports them.
    pub fn open(
        backend: &B,
        name: &str,
        kind: Kind,
        creator_pid: u64,
        timeout: Duration,
    ) -> Result<Self, GpuError> {
        if creator_pid == u64::from(std::process::id()) {
            return Err(GpuError::SameProcess);
        }
        let pid = u32::try_from(creator_pid)
            .map_err(|_| GpuError::Corrupt(format!("creator pid {creator_pid}")))?;
        let (bytes, fds) = handoff::fetch(name, pid, timeout)?;
        let table = LaneTable::decode(&bytes)?;
        if table.kind != kind {
            return Err(GpuError::Corrupt(format!(
                "lane {name} is a GPU {}, its table says {}",
                kind, table.kind
            )));
        }
        if table.writer_pid != pid || table.fds != fds.len() {
            return Err(GpuError::Corrupt(format!(
                "table of pid {} with {} descriptors, from pid {pid} with {}",
                table.writer_pid,
                table.fds,
                fds.len()
            )));
        }
        if !backend.kind().opens(table.backend) {
            return Err(GpuError::WrongBackend {
                lane: table.backend.name(),
                local: backend.kind().name(),
            });
        }
        let slots = backend.import(
            table.backend,
            table.device,
            table.slots,
            table.spec.byte_len(),
            Export {
                blob: table.blob.clone(),
                fds,
            },
        )?;
        Ok(Importer {
            slots,
            checksum: table.checksum(),
            table,
            timeout,
        })
    }

    /// Step 1 of the read protocol: the slot of write `seq`'s record.
    pub fn slot_of(&self, record: &[u8; RECORD_WORDS * 8], seq: u64) -> Result<usize, GpuError> {
        Record::check(record, seq, &self.table, self.checksum)
    }

    /// Step 2: waits for `slot`'s event (recorded before write `seq`'s record was
    /// published). A missing event is the writer's death (`WriterGone`) or a timeout;
    /// a write the writer has already begun to overwrite is `Overwritten` at once (its
    /// read is lost: waiting for it would only starve the reader).
    ///
    /// CUDA lanes' events, and legacy IPC lanes' memory, belong to the writer's
    /// process: once it is gone they may be destroyed under the importer, so for CUDA
    /// lanes the writer's liveness is checked before the wait and again before the slot
    /// is touched. (A writer dying between that check and the copy remains a window the
    /// driver does not let us close; a writer dropped in a live process first gives up
    /// its role, then waits [`LEGACY_GRACE`] before freeing legacy slots.) Memfd and
    /// VMM memory is reference-counted and stays valid.
    pub fn wait(
        &mut self,
        slot: usize,
        seq: u64,
        writer_alive: impl Fn() -> bool,
        published: impl Fn() -> u64,
    ) -> Result<(), GpuError> {
        let foreign = self.table.backend != BackendKind::Host;
        if foreign && !writer_alive() {
            return Err(GpuError::WriterGone);
        }
        let slots = self.table.slots as u64;
        let mut stale = || crate::protocol::overwritten(seq, slots, published());
        match self.slots.wait(slot, self.timeout, &mut stale) {
            Err(GpuError::Timeout) if !writer_alive() => Err(GpuError::WriterGone),
            Ok(()) if foreign && !writer_alive() => Err(GpuError::WriterGone),
            other => other,
        }
    }

    /// Step 4: whether write `seq` is still whole after it was read, given the number
    /// of writes `published` read after this call's fence.
    pub fn intact(&self, seq: u64, published: impl FnOnce() -> u64) -> bool {
        // The Acquire fence that pairs with the Release fence in
        // `Exporter::before_slot_write`, then the comparison.
        crate::protocol::copy_intact(seq, self.table.slots as u64, published)
    }
}
