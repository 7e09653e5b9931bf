//! Read-only views of lanes, for inspection.
//!
//! A [`Probe`] opens a lane with [`Segment::open`] (which validates the header, checks
//! the owner and answers role-liveness questions) and maps the same object a second
//! time to read the core structure's counters through the core's own inspection
//! methods (`Seqlock::published`, `Spsc::positions`, `Broadcast::tail`,
//! `Broadcast::subscriber`, `Broadcast::read_at`, `SeqlockReader::read`). None of
//! these store to shared memory, and a probe takes no role: inspecting a lane never
//! changes what its writers and readers see.
//!
//! The second mapping is checked to be the object `Segment::open` validated: its
//! header must decode to the same fields (creator pid, creation time, geometry), so a
//! lane unlinked and re-created in between is reported, not misread. Both mappings
//! are made only once the object is known to be a ready lane of this user (or of a
//! group of this user) at least as large as its header says; nothing allocates in
//! proportion to a size read from the segment (the newest item is shown from its
//! 16-byte frame prefix, [`tensorlane_shm::peek`]).

use memmap2::MmapRaw;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::sync::atomic::Ordering;
use std::time::Instant;
use tensorlane_core::{
    Broadcast, BroadcastHeader, ControlBlock, Parts, Seqlock, SeqlockHeader, Spsc, SpscHeader,
};
use tensorlane_shm::header::{self, field, Geometry, HeaderInfo, SegmentHeader, HEADER_BYTES};
use tensorlane_shm::peek::{self, FramePrefix};
use tensorlane_shm::segment::{
    self, Segment, CONSUMER_ROLE, READY_TIMEOUT, SUBSCRIBER_ROLE_BASE, WRITER_ROLE,
};
use tensorlane_shm::{LaneError, LaneName};

/// Who holds a role, as far as the lock and the claim word tell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleState {
    /// A live process holds the role's lock.
    Alive,
    /// Nobody holds the lock, but the claim word still names an owner: its process
    /// exited without releasing the role (it crashed or was killed).
    Dead,
    /// Nobody holds the role.
    None,
}

impl RoleState {
    /// `"alive"`, `"dead"` or `"none"`.
    pub fn name(self) -> &'static str {
        match self {
            RoleState::Alive => "alive",
            RoleState::Dead => "dead",
            RoleState::None => "none",
        }
    }

    fn of(alive: bool, token: u64) -> Self {
        match (alive, token) {
            (true, _) => RoleState::Alive,
            (false, 0) => RoleState::None,
            (false, _) => RoleState::Dead,
        }
    }
}

/// The core structure of a probed lane.
pub enum Core<'a> {
    /// A stream's register.
    Stream(Seqlock<Parts<'a, SeqlockHeader>>),
    /// A queue's ring.
    Queue(Spsc<Parts<'a, SpscHeader>>),
    /// A topic's ring.
    Topic(Broadcast<Parts<'a, BroadcastHeader>>),
}

/// A validated lane, mapped for reading its counters.
pub struct Probe {
    segment: Segment,
    file: File,
    map: MmapRaw,
}

/// `/dev/shm/tensorlane.<name>`.
pub fn object_path(name: &LaneName) -> String {
    format!("/dev/shm{}", name.object_name().to_string_lossy())
}

/// Why a lane could not be probed.
#[derive(Debug)]
pub enum ProbeError {
    /// The library refused the lane (missing, foreign, corrupt header, ...).
    Lane(LaneError),
    /// The name was unlinked and re-created while it was being opened.
    Replaced(String),
}

impl ProbeError {
    /// Whether the lane does not exist (any more).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ProbeError::Lane(LaneError::NotFound(_)))
    }
}

impl std::fmt::Display for ProbeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProbeError::Lane(e) => e.fmt(f),
            ProbeError::Replaced(name) => {
                write!(f, "lane {name:?} was replaced while it was being opened")
            }
        }
    }
}

impl From<LaneError> for ProbeError {
    fn from(e: LaneError) -> Self {
        ProbeError::Lane(e)
    }
}

fn io_error(name: &LaneName, what: &str, source: io::Error) -> ProbeError {
    if source.kind() == io::ErrorKind::NotFound {
        return LaneError::NotFound(name.to_string()).into();
    }
    LaneError::Io {
        name: name.to_string(),
        what: what.to_string(),
        source,
    }
    .into()
}

impl Probe {
    /// Opens and validates lane `name`, waiting up to [`READY_TIMEOUT`] for its
    /// creator to finish the header.
    pub fn open(name: &LaneName) -> Result<Probe, ProbeError> {
        Self::open_until(name, Instant::now() + READY_TIMEOUT)
    }

    /// Opens and validates lane `name`, waiting for its creator only until
    /// `deadline` (a command that opens many lanes gives them one deadline).
    pub fn open_until(name: &LaneName, deadline: Instant) -> Result<Probe, ProbeError> {
        let segment = Segment::open_until(name, deadline)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(object_path(name))
            .map_err(|e| io_error(name, "open", e))?;
        let meta = file.metadata().map_err(|e| io_error(name, "fstat", e))?;
        let replaced = || ProbeError::Replaced(name.to_string());
        if !meta.file_type().is_file() || meta.len() < segment.info().segment_bytes as u64 {
            return Err(replaced());
        }
        let size = meta.len();
        let map = MmapRaw::map_raw(&file).map_err(|e| io_error(name, "mmap", e))?;
        let probe = Probe { segment, file, map };
        // The object behind the name may have been replaced since `Segment::open`:
        // trust this mapping only if it holds the very header that was validated.
        let words = header::read_words(probe.mapped_header());
        // Its metadata area too: the same length and checksum (the area itself was
        // read and validated by `Segment::open`).
        let validated = probe.segment.info();
        let area = header::metadata_area(&words);
        match header::decode(&words, size) {
            Ok(mut info)
                if area.bytes == validated.metadata.as_bytes().len() as u64
                    && area.checksum == validated.metadata.checksum() =>
            {
                info.metadata = validated.metadata.clone();
                if info == *validated {
                    Ok(probe)
                } else {
                    Err(replaced())
                }
            }
            _ => Err(replaced()),
        }
    }

    fn mapped_header(&self) -> &SegmentHeader {
        // SAFETY: the mapping is at least `segment_bytes >= HEADER_BYTES` long (checked
        // in `open`), page-aligned and alive as long as `self`; `SegmentHeader` is made
        // of atomics only, valid for any bytes, and every process accesses it atomically.
        unsafe { &*(self.map.as_ptr() as *const SegmentHeader) }
    }

    /// The validated header.
    pub fn info(&self) -> &HeaderInfo {
        self.segment.info()
    }

    /// The lane name.
    pub fn name(&self) -> &LaneName {
        self.segment.name()
    }

    /// The layout version word of the header.
    pub fn layout_version(&self) -> u64 {
        self.segment
            .header()
            .field(field::VERSION)
            .load(Ordering::Relaxed)
    }

    fn parts<H: ControlBlock>(&self) -> Result<Parts<'_, H>, String> {
        // The core structure only, without the metadata area after it.
        let len = self.info().geometry.core_bytes().unwrap_or(0);
        // SAFETY: `HEADER_BYTES..HEADER_BYTES + core_bytes` (within `segment_bytes`)
        // lies inside the mapping (its length was
        // checked against the validated `segment_bytes` in `open`), which lives as long
        // as the returned borrow of `self`. Every process accesses the core structure
        // atomically (docs/LAYOUT.md); this process creates no other reference into it
        // and only loads from it. `H` matches the lane's kind (callers match on it).
        let parts =
            unsafe { tensorlane_core::attach::<H>(self.map.as_mut_ptr().add(HEADER_BYTES), len) };
        parts.map_err(|e| format!("cannot view the core structure: {e}"))
    }

    /// Whether the object still has the size its header says: a lane truncated
    /// since it was opened would fault (SIGBUS) on the next read beyond its new end.
    pub fn check_size(&self) -> Result<(), LaneError> {
        self.segment.check_size()
    }

    /// The frame prefix of the newest item of a stream or topic; `None` for a queue,
    /// before the first item, or when the newest item cannot be read (raced or
    /// corrupt).
    pub fn latest_frame(&self) -> Option<FramePrefix> {
        const ATTEMPTS: u32 = 100;
        match self.info().geometry {
            Geometry::Stream(g) => {
                peek::stream_latest(&self.parts::<SeqlockHeader>().ok()?, &g, ATTEMPTS)
                    .ok()
                    .flatten()
            }
            Geometry::Topic(g) => {
                peek::topic_latest(&self.parts::<BroadcastHeader>().ok()?, &g, ATTEMPTS)
                    .ok()
                    .flatten()
            }
            Geometry::Queue(_) => None,
        }
    }

    /// The core structure, for reading its counters.
    pub fn core(&self) -> Result<Core<'_>, String> {
        let mismatch = |e: tensorlane_core::GeometryError| format!("core structure: {e}");
        Ok(match self.info().geometry {
            Geometry::Stream(g) => Core::Stream(Seqlock::new(self.parts()?, g).map_err(mismatch)?),
            Geometry::Queue(g) => Core::Queue(Spsc::new(self.parts()?, g).map_err(mismatch)?),
            Geometry::Topic(g) => Core::Topic(Broadcast::new(self.parts()?, g).map_err(mismatch)?),
        })
    }

    /// Whether a live process holds role byte `role`.
    pub fn role_alive(&self, role: u64) -> Result<bool, LaneError> {
        self.segment.role_alive(role)
    }

    /// The writer (stream), producer (queue) or publisher (topic).
    pub fn writer(&self) -> Result<RoleState, String> {
        let token = match self.core()? {
            Core::Stream(s) => s.writer_owner(),
            Core::Queue(q) => q.owners().0,
            Core::Topic(t) => t.producer_owner(),
        };
        let alive = self.role_alive(WRITER_ROLE).map_err(|e| e.to_string())?;
        Ok(RoleState::of(alive, token))
    }

    /// The consumer of a queue (`None` for other kinds).
    pub fn consumer(&self) -> Result<Option<RoleState>, String> {
        let Core::Queue(q) = self.core()? else {
            return Ok(None);
        };
        let alive = self.role_alive(CONSUMER_ROLE).map_err(|e| e.to_string())?;
        Ok(Some(RoleState::of(alive, q.owners().1)))
    }

    /// The role bytes this lane uses: writer, consumer, one per subscriber entry.
    pub fn role_count(&self) -> u64 {
        SUBSCRIBER_ROLE_BASE + self.info().subscribers as u64
    }

    /// Whether any role of the lane has a live owner.
    pub fn any_role_alive(&self) -> Result<bool, LaneError> {
        for role in 0..self.role_count() {
            if self.role_alive(role)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Takes the lock of every role byte at once, so that no process can claim a role
    /// while the caller removes the lane; `false` if some role has a live owner. The
    /// locks are released when the probe is dropped.
    pub fn lock_all_roles(&self) -> io::Result<bool> {
        segment::try_lock_roles(&self.file, 0, self.role_count())
    }

    /// Whether the lane's name still refers to the object this probe mapped.
    pub fn name_refers_here(&self) -> bool {
        let (Ok(ours), Ok(named)) = (
            self.file.metadata(),
            std::fs::metadata(object_path(self.name())),
        ) else {
            return false;
        };
        (ours.dev(), ours.ino()) == (named.dev(), named.ino())
    }
}
