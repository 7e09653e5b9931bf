//! Real segments for the checks of `layout_doc.rs`: created through the public API,
//! read byte by byte at the document's offsets (`Image`), and their role locks and
//! permissions as the kernel reports them.

use super::tables::*;
use super::*;

pub(crate) struct Unlink(pub(crate) String);
impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = segment::unlink(&LaneName::new(&self.0).unwrap());
    }
}

pub(crate) fn unique(name: &str) -> String {
    format!("layout-doc-{name}-{}", std::process::id())
}

pub(crate) fn object_path(name: &str) -> String {
    format!("/dev/shm/tensorlane.{name}")
}

pub(crate) fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

pub(crate) fn euid() -> u64 {
    // SAFETY: geteuid has no preconditions.
    u64::from(unsafe { libc::geteuid() })
}

/// The bytes of a segment, with lookups at the document's offsets.
pub(crate) struct Image {
    pub(crate) bytes: Vec<u8>,
    pub(crate) header: Table,
}

impl Image {
    pub(crate) fn read(name: &str) -> Image {
        Image {
            bytes: std::fs::read(object_path(name)).unwrap(),
            header: table("header"),
        }
    }

    pub(crate) fn u64_at(&self, offset: u64) -> u64 {
        let at = offset as usize;
        u64::from_le_bytes(self.bytes[at..at + 8].try_into().unwrap())
    }

    pub(crate) fn u32_at(&self, offset: u64) -> u32 {
        let at = offset as usize;
        u32::from_le_bytes(self.bytes[at..at + 4].try_into().unwrap())
    }

    /// Header field `name` (a word).
    pub(crate) fn field(&self, name: &str) -> u64 {
        self.u64_at(self.header.offset(name))
    }

    /// Control-block field `name` of table `block`.
    pub(crate) fn control(&self, block: &'static str, name: &str) -> u64 {
        self.u64_at(self.field("core_offset") + table(block).offset(name))
    }

    /// Checks the header against the document for a lane of `kind` carrying `spec`.
    pub(crate) fn check_header(&self, kind: &str, spec: &TensorSpec, count: u64, subscribers: u64) {
        let kinds = table("kinds");
        let dtypes = table("dtype");
        assert_eq!(self.field("magic"), constant("MAGIC"));
        assert_eq!(self.field("version"), constant("LAYOUT_VERSION"));
        assert_eq!(
            self.field("kind"),
            kinds.num(kinds.row("kind", kind), "code")
        );
        assert_eq!(
            self.field("dtype"),
            dtypes.num(dtypes.row("name", spec.dtype().name()), "code")
        );
        assert_eq!(self.field("ndim"), spec.shape().len() as u64);
        for k in 0..8u64 {
            let dim = spec.shape().get(k as usize).copied().unwrap_or(0);
            assert_eq!(self.u64_at(self.header.offset("shape") + 8 * k), dim);
        }
        let tensor_bytes = spec.byte_len() as u64;
        let slot_bytes = tensor_bytes + constant("FRAME_BYTES");
        assert_eq!(self.field("tensor_bytes"), tensor_bytes);
        assert_eq!(self.field("slot_bytes"), slot_bytes);
        assert_eq!(self.field("count"), count);
        assert_eq!(self.field("subscribers"), subscribers);
        assert_eq!(self.field("core_offset"), constant("CORE_OFFSET"));
        let segment_bytes = constant("HEADER_BYTES")
            + control_bytes(kind)
            + 8 * (count * doc_stride(slot_bytes) + 16 * subscribers);
        assert_eq!(self.field("segment_bytes"), segment_bytes);
        assert_eq!(self.bytes.len() as u64, segment_bytes);
        assert_eq!(self.field("creator_pid"), u64::from(std::process::id()));
        assert_eq!(self.field("creator_uid"), euid());
        let created = self.field("created_ns");
        assert!(created > 0 && created <= now_ns());
        let words: Vec<u64> = (0..constant("CHECKSUM_WORDS"))
            .map(|i| self.u64_at(8 * i))
            .collect();
        assert_eq!(self.field("checksum"), doc_fnv(&words));
        assert_eq!(self.field("ready"), constant("READY"));
        for row in &self.header.rows {
            if self.header.text(row, "name") == "reserved" {
                let (at, size) = (
                    self.header.num(row, "offset") as usize,
                    self.header.num(row, "size") as usize,
                );
                assert!(self.bytes[at..at + size].iter().all(|&b| b == 0));
            }
        }
    }

    /// Checks slot `at` (its segment offset): stamp, length, frame prefix, tensor.
    /// `since_ns` is a reading of the monotonic clock (the default) before the write.
    pub(crate) fn check_slot(
        &self,
        at: u64,
        stamp: u64,
        frame_id: u64,
        tensor: &[u8],
        since_ns: u64,
    ) {
        let slot = table("slot");
        let frame = table("frame");
        let payload = at + slot.offset("payload");
        assert_eq!(self.u64_at(at + slot.offset("stamp")), stamp, "stamp");
        let len = self.u64_at(at + slot.offset("length"));
        assert_eq!(len, self.field("slot_bytes"), "length");
        assert_eq!(
            self.u64_at(payload + frame.offset("frame_id")),
            frame_id,
            "frame id"
        );
        let ts = self.u64_at(payload + frame.offset("timestamp_ns"));
        assert_eq!(
            self.field("clock"),
            clock_code("monotonic"),
            "default clock"
        );
        let until = Clock::Monotonic.now_ns();
        assert!((since_ns..=until).contains(&ts), "timestamp {ts}");
        let start = (payload + frame.offset("tensor")) as usize;
        assert_eq!(&self.bytes[start..start + tensor.len()], tensor, "tensor");
        // The last payload word is zero-padded after the value.
        let end = payload as usize + len as usize;
        let padded = payload as usize + 8 * (len as usize).div_ceil(8);
        assert!(self.bytes[end..padded].iter().all(|&b| b == 0), "padding");
    }
}

/// Whether an open file description other than `file`'s holds a write lock on `byte`.
pub(crate) fn role_held(file: &File, byte: u64) -> bool {
    // SAFETY: flock is a plain C struct for which all-zero is a valid value.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = libc::F_WRLCK as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    lock.l_start = byte as libc::off_t;
    lock.l_len = 1;
    // SAFETY: `file` owns a valid descriptor and `lock` is a valid flock for the
    // duration of the call; F_OFD_GETLK only fills it in.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_OFD_GETLK, &mut lock) };
    assert_eq!(rc, 0, "F_OFD_GETLK: {}", std::io::Error::last_os_error());
    lock.l_type != libc::F_UNLCK as libc::c_short
}

pub(crate) fn open_object(name: &str) -> File {
    File::options()
        .read(true)
        .write(true)
        .open(object_path(name))
        .unwrap()
}

pub(crate) fn mode_of(name: &str) -> u64 {
    u64::from(
        std::fs::metadata(object_path(name))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
    )
}
