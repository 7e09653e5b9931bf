//! Tests of the CUDA backend.
//!
//! Always run: detection without a driver, and the export blob's layout and
//! validation (pure functions, no driver). Run only where a CUDA device exists (each
//! says `SKIPPED (no CUDA device): <name>` otherwise): slot writes and read-back,
//! argument checks, writes from device memory, refusal of same-process imports, and
//! imports in a child process (the test binary re-executed with
//! `TENSORLANE_CUDA_CHILD` naming a hand-off file; VMM descriptors are inherited).
#![cfg(all(target_os = "linux", not(any(feature = "loom", feature = "shuttle"))))]

/// Says a test was skipped on the process's real stderr, past libtest's output
/// capture, so that a passing run still shows what did not run.
macro_rules! skipped {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr().lock(), $($arg)*);
    }};
}

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tensorlane_gpu::cuda::blob::{
    self, Blob, Importer, ProcessTag, SlotEntry, ENTRY_BYTES, HEADER_BYTES, MAGIC, VERSION,
};
use tensorlane_gpu::cuda::{
    driver_library_present, gpu_available, CudaBackend, CudaBuffer, CudaReader, CudaWriter,
};
use tensorlane_gpu::{Backend, BackendKind, DeviceId, Export, GpuError, SlotReader, SlotWriter};

/// `true` (after saying so) when the test cannot run here.
fn skip_without_gpu(name: &str) -> bool {
    if gpu_available() {
        false
    } else {
        skipped!("SKIPPED (no CUDA device): {name}");
        true
    }
}

// ---------------------------------------------------------------------------------
// Detection (runs everywhere)
// ---------------------------------------------------------------------------------

#[test]
fn gpu_available_never_panics() {
    let present = driver_library_present();
    let available = gpu_available();
    eprintln!("libcuda present: {present}, CUDA device available: {available}");
    if !present {
        assert!(!available, "no driver library, yet a device is reported");
    }
    // Asking twice gives the same answer (and still does not panic).
    assert_eq!(gpu_available(), available);
}

#[test]
fn new_without_driver_is_no_driver() {
    if driver_library_present() {
        skipped!("SKIPPED (libcuda is present): new_without_driver_is_no_driver");
        return;
    }
    match CudaBackend::new(0) {
        Err(GpuError::NoDriver(why)) => eprintln!("CudaBackend::new(0): NoDriver({why})"),
        other => panic!("expected NoDriver, got {other:?}"),
    }
    assert!(matches!(CudaBackend::legacy(0), Err(GpuError::NoDriver(_))));
}

#[test]
fn handles_can_move_between_threads() {
    fn send<T: Send>() {}
    fn sync<T: Sync>() {}
    send::<CudaBackend>();
    sync::<CudaBackend>();
    send::<CudaWriter>();
    send::<CudaReader>();
    send::<CudaBuffer>();
    sync::<CudaBuffer>();
}

#[test]
fn missing_ordinal_is_no_device() {
    if skip_without_gpu("missing_ordinal_is_no_device") {
        return;
    }
    match CudaBackend::new(1 << 20) {
        Err(GpuError::NoDevice { ordinal, count }) => {
            assert_eq!(ordinal, 1 << 20);
            assert!(count > 0);
        }
        other => panic!("expected NoDevice, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------
// Blob layout and validation (runs everywhere)
// ---------------------------------------------------------------------------------

const UUID: [u8; 16] = [7; 16];
const GRANULARITY: u64 = 2 << 20;

fn device() -> DeviceId {
    DeviceId {
        ordinal: 0,
        uuid: UUID,
    }
}

fn importer(vmm_granularity: Option<u64>) -> Importer {
    Importer {
        kind: BackendKind::CudaVmm,
        device: device(),
        vmm_granularity,
        process: ProcessTag {
            pid: 10,
            nonce: [1; 16],
        },
    }
}

fn exporter() -> ProcessTag {
    ProcessTag {
        pid: 20,
        nonce: [2; 16],
    }
}

/// A valid blob of `slots` slots of `bytes` bytes.
fn sample(kind: BackendKind, slots: usize, bytes: u64) -> Blob {
    let vmm = kind == BackendKind::CudaVmm;
    let entries = (0..slots)
        .map(|i| SlotEntry {
            alloc_bytes: if vmm {
                bytes.div_ceil(GRANULARITY).max(1) * GRANULARITY
            } else {
                bytes + 512
            },
            event: [i as u8 + 1; 64],
            mem: if vmm { [0; 64] } else { [i as u8 + 100; 64] },
        })
        .collect();
    Blob {
        kind,
        bytes,
        granularity: if vmm { GRANULARITY } else { 0 },
        uuid: UUID,
        exporter: exporter(),
        entries,
    }
}

fn fd_count(kind: BackendKind, slots: usize) -> usize {
    if kind == BackendKind::CudaVmm {
        slots
    } else {
        0
    }
}

fn check(kind: BackendKind, slots: usize, bytes: usize, raw: &[u8]) -> Result<Blob, GpuError> {
    blob::validate(
        &importer(Some(GRANULARITY)),
        kind,
        device(),
        slots,
        bytes,
        raw,
        fd_count(kind, slots),
    )
}

fn expect_corrupt(r: Result<Blob, GpuError>, what: &str) {
    match r {
        Err(GpuError::Corrupt(why)) => eprintln!("{what}: Corrupt({why})"),
        other => panic!("{what}: expected Corrupt, got {other:?}"),
    }
}

#[test]
fn blob_round_trips_for_both_kinds() {
    for kind in [BackendKind::CudaVmm, BackendKind::CudaLegacyIpc] {
        for slots in [1usize, 2, 5] {
            let b = sample(kind, slots, 1000);
            let raw = b.encode();
            assert_eq!(raw.len(), HEADER_BYTES + slots * ENTRY_BYTES);
            assert_eq!(Some(raw.len()), blob::blob_len(slots));
            assert_eq!(check(kind, slots, 1000, &raw).unwrap(), b);
        }
    }
}

#[test]
fn blob_layout_matches_the_documented_offsets() {
    let b = sample(BackendKind::CudaLegacyIpc, 2, 4096);
    let raw = b.encode();
    let u32_at = |o: usize| u32::from_le_bytes(raw[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(raw[o..o + 8].try_into().unwrap());
    assert_eq!(raw[0..8], MAGIC);
    assert_eq!(&raw[0..6], b"TLCUDA");
    assert_eq!(u32_at(8), VERSION);
    assert_eq!(u32_at(12), 2);
    assert_eq!(u64_at(16), 2);
    assert_eq!(u64_at(24), 4096);
    assert_eq!(u64_at(32), 0);
    assert_eq!(raw[40..56], UUID);
    assert_eq!(u32_at(56), 20);
    assert_eq!(u32_at(60), 0);
    assert_eq!(raw[64..80], [2; 16]);
    for slot in 0..2 {
        let e = HEADER_BYTES + slot * ENTRY_BYTES;
        assert_eq!(u64_at(e), 4096 + 512);
        assert_eq!(raw[e + 8..e + 72], [slot as u8 + 1; 64]);
        assert_eq!(raw[e + 72..e + 136], [slot as u8 + 100; 64]);
    }
    let v = sample(BackendKind::CudaVmm, 1, 1);
    let raw = v.encode();
    assert_eq!(u32::from_le_bytes(raw[12..16].try_into().unwrap()), 3);
    assert_eq!(
        u64::from_le_bytes(raw[32..40].try_into().unwrap()),
        GRANULARITY
    );
}

#[test]
fn blob_of_wrong_length_is_corrupt() {
    for kind in [BackendKind::CudaVmm, BackendKind::CudaLegacyIpc] {
        let raw = sample(kind, 3, 1000).encode();
        // Every truncation, including the empty blob, is rejected without panicking.
        for len in 0..raw.len() {
            expect_corrupt(
                check(kind, 3, 1000, &raw[..len]),
                &format!("{kind:?} truncated to {len}"),
            );
        }
        let mut longer = raw.clone();
        longer.push(0);
        expect_corrupt(check(kind, 3, 1000, &longer), "one byte too many");
        // The lane says fewer or more slots than the blob holds.
        expect_corrupt(check(kind, 2, 1000, &raw), "lane has fewer slots");
        expect_corrupt(check(kind, 4, 1000, &raw), "lane has more slots");
    }
}

#[test]
fn slot_count_overflow_is_corrupt() {
    let raw = sample(BackendKind::CudaVmm, 1, 1).encode();
    expect_corrupt(
        blob::validate(
            &importer(Some(GRANULARITY)),
            BackendKind::CudaVmm,
            device(),
            usize::MAX,
            1,
            &raw,
            usize::MAX,
        ),
        "usize::MAX slots",
    );
    expect_corrupt(
        check(
            BackendKind::CudaLegacyIpc,
            usize::MAX / ENTRY_BYTES,
            1,
            &raw,
        ),
        "slots * entry bytes near overflow",
    );
}

#[test]
fn short_or_misaligned_allocations_are_corrupt() {
    for kind in [BackendKind::CudaVmm, BackendKind::CudaLegacyIpc] {
        let mut b = sample(kind, 2, 1000);
        b.entries[1].alloc_bytes = 999;
        expect_corrupt(
            check(kind, 2, 1000, &b.encode()),
            "allocation shorter than the slot",
        );
        let mut b = sample(kind, 2, 0);
        b.entries[1].alloc_bytes = 0;
        expect_corrupt(check(kind, 2, 0, &b.encode()), "empty allocation");
    }
    let mut b = sample(BackendKind::CudaVmm, 2, 1000);
    b.entries[0].alloc_bytes = GRANULARITY + 4096;
    expect_corrupt(
        check(BackendKind::CudaVmm, 2, 1000, &b.encode()),
        "allocation not a multiple of the granularity",
    );
    // The lane claims more bytes than the blob's allocations hold.
    let b = sample(BackendKind::CudaLegacyIpc, 1, 1000);
    expect_corrupt(
        check(BackendKind::CudaLegacyIpc, 1, 1001, &b.encode()),
        "lane bytes differ",
    );
    // An exporter with another granularity (another device in disguise).
    let mut b = sample(BackendKind::CudaVmm, 1, 1000);
    b.granularity = GRANULARITY * 2;
    b.entries[0].alloc_bytes = GRANULARITY * 2;
    expect_corrupt(
        check(BackendKind::CudaVmm, 1, 1000, &b.encode()),
        "granularity differs",
    );
    // A VMM entry must not carry a legacy handle.
    let mut b = sample(BackendKind::CudaVmm, 1, 1000);
    b.entries[0].mem = [9; 64];
    expect_corrupt(
        check(BackendKind::CudaVmm, 1, 1000, &b.encode()),
        "VMM entry with a handle",
    );
}

#[test]
fn wrong_descriptor_counts_are_corrupt() {
    let raw = sample(BackendKind::CudaVmm, 3, 1000).encode();
    for fds in [0, 2, 4, 100] {
        expect_corrupt(
            blob::validate(
                &importer(Some(GRANULARITY)),
                BackendKind::CudaVmm,
                device(),
                3,
                1000,
                &raw,
                fds,
            ),
            &format!("VMM lane with {fds} descriptors"),
        );
    }
    let raw = sample(BackendKind::CudaLegacyIpc, 3, 1000).encode();
    for fds in [1, 3] {
        expect_corrupt(
            blob::validate(
                &importer(Some(GRANULARITY)),
                BackendKind::CudaLegacyIpc,
                device(),
                3,
                1000,
                &raw,
                fds,
            ),
            &format!("legacy lane with {fds} descriptors"),
        );
    }
}

#[test]
fn host_lane_is_wrong_backend() {
    let raw = sample(BackendKind::CudaVmm, 1, 8).encode();
    let r = blob::validate(
        &importer(Some(GRANULARITY)),
        BackendKind::Host,
        device(),
        1,
        8,
        &raw,
        1,
    );
    match r {
        Err(GpuError::WrongBackend { lane, local }) => {
            assert_eq!(lane, "host");
            assert_eq!(local, "cuda-vmm");
        }
        other => panic!("expected WrongBackend, got {other:?}"),
    }
}

#[test]
fn other_device_is_wrong_device() {
    let raw = sample(BackendKind::CudaVmm, 1, 8).encode();
    let other = DeviceId {
        ordinal: 0,
        uuid: [8; 16],
    };
    let r = blob::validate(
        &importer(Some(GRANULARITY)),
        BackendKind::CudaVmm,
        other,
        1,
        8,
        &raw,
        1,
    );
    match r {
        Err(GpuError::WrongDevice { lane, local }) => {
            assert!(lane.contains("0808"), "{lane}");
            assert!(local.contains("0707"), "{local}");
        }
        other => panic!("expected WrongDevice, got {other:?}"),
    }
    // Same ordinal, same lane uuid, but the blob names another device: corrupt.
    let mut b = sample(BackendKind::CudaVmm, 1, 8);
    b.uuid = [8; 16];
    expect_corrupt(
        check(BackendKind::CudaVmm, 1, 8, &b.encode()),
        "blob uuid differs",
    );
}

#[test]
fn header_fields_are_checked() {
    let raw = sample(BackendKind::CudaLegacyIpc, 1, 64).encode();
    let mut bad = raw.clone();
    bad[0] ^= 0xff;
    expect_corrupt(check(BackendKind::CudaLegacyIpc, 1, 64, &bad), "bad magic");
    let mut newer = raw.clone();
    newer[8..12].copy_from_slice(&2u32.to_le_bytes());
    match check(BackendKind::CudaLegacyIpc, 1, 64, &newer) {
        Err(GpuError::Version { found, supported }) => {
            assert_eq!((found, supported), (2, u64::from(VERSION)));
        }
        other => panic!("expected Version, got {other:?}"),
    }
    // A newer version is reported as such even when its length differs.
    let mut newer_longer = newer.clone();
    newer_longer.extend_from_slice(&[0; 8]);
    assert!(matches!(
        check(BackendKind::CudaLegacyIpc, 1, 64, &newer_longer),
        Err(GpuError::Version { .. })
    ));
    // The blob's kind disagrees with the lane's.
    let vmm = sample(BackendKind::CudaVmm, 1, 64).encode();
    expect_corrupt(
        check(BackendKind::CudaLegacyIpc, 1, 64, &vmm),
        "kind differs",
    );
}

#[test]
fn vmm_lane_without_vmm_support_is_unsupported() {
    let raw = sample(BackendKind::CudaVmm, 1, 64).encode();
    let r = blob::validate(
        &importer(None),
        BackendKind::CudaVmm,
        device(),
        1,
        64,
        &raw,
        1,
    );
    assert!(matches!(r, Err(GpuError::Unsupported(_))), "{r:?}");
    // Legacy lanes are still fine there.
    let raw = sample(BackendKind::CudaLegacyIpc, 1, 64).encode();
    let r = blob::validate(
        &importer(None),
        BackendKind::CudaLegacyIpc,
        device(),
        1,
        64,
        &raw,
        0,
    );
    assert!(r.is_ok(), "{r:?}");
}

#[test]
fn own_export_is_same_process() {
    let mut b = sample(BackendKind::CudaLegacyIpc, 1, 64);
    b.exporter = importer(None).process;
    let r = check(BackendKind::CudaLegacyIpc, 1, 64, &b.encode());
    assert!(matches!(r, Err(GpuError::SameProcess)), "{r:?}");
    // Same pid, other nonce (another process image): not the same process.
    b.exporter.nonce = [3; 16];
    assert!(check(BackendKind::CudaLegacyIpc, 1, 64, &b.encode()).is_ok());
    // The process tag is stable within a process and carries its pid.
    let t = ProcessTag::current();
    assert_eq!(t, ProcessTag::current());
    assert_eq!(t.pid, std::process::id());
}

#[test]
fn mutated_blobs_never_panic() {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for kind in [BackendKind::CudaVmm, BackendKind::CudaLegacyIpc] {
        let raw = sample(kind, 3, 5000).encode();
        for _ in 0..20_000 {
            let mut m = raw.clone();
            for _ in 0..(next() % 4 + 1) {
                let at = (next() as usize) % m.len();
                m[at] = next() as u8;
            }
            let slots = [3usize, 0, 1, usize::MAX][(next() % 4) as usize];
            let fds = (next() % 5) as usize;
            let _ = blob::validate(
                &importer(Some(GRANULARITY)),
                kind,
                device(),
                slots,
                5000,
                &m,
                fds,
            );
        }
    }
}

// ---------------------------------------------------------------------------------
// On a device
// ---------------------------------------------------------------------------------

/// A deterministic byte pattern.
fn pattern(seed: u64, len: usize) -> Vec<u8> {
    (0..len as u64)
        .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed * 97) >> 3) as u8)
        .collect()
}

/// The backends to test: the default one, and a forced legacy one where the default
/// is VMM.
fn backends() -> Vec<CudaBackend> {
    let main = CudaBackend::new(0).expect("CudaBackend::new(0)");
    let mut out = Vec::new();
    if main.kind() == BackendKind::CudaVmm {
        out.push(CudaBackend::legacy(0).expect("CudaBackend::legacy(0)"));
    } else {
        eprintln!("note: device 0 has no VMM with POSIX descriptors; legacy IPC only");
    }
    out.push(main);
    out
}

#[test]
fn create_write_and_read_back() {
    if skip_without_gpu("create_write_and_read_back") {
        return;
    }
    for be in backends() {
        let (slots, bytes) = (3, 100_003);
        let (mut w, export) = be.create(slots, bytes).unwrap();
        assert_eq!(
            export.fds.len(),
            if be.kind() == BackendKind::CudaVmm {
                slots
            } else {
                0
            }
        );
        assert_eq!(Some(export.blob.len()), blob::blob_len(slots));
        let ptrs: Vec<_> = (0..slots).map(|s| w.slot_ptr(s)).collect();
        for (i, p) in ptrs.iter().enumerate() {
            assert_ne!(p.addr, 0);
            assert_eq!(p.len, bytes);
            assert!(ptrs[..i].iter().all(|q| q.addr != p.addr));
        }
        for s in 0..slots {
            w.copy_from_host(s, &pattern(s as u64, bytes)).unwrap();
            w.record(s).unwrap();
        }
        w.synchronize().unwrap();
        for s in 0..slots {
            let mut back = vec![0u8; bytes];
            w.copy_to_host(s, &mut back).unwrap();
            assert!(back == pattern(s as u64, bytes), "{:?} slot {s}", be.kind());
        }
    }
}

#[test]
fn host_source_can_be_reused_at_once() {
    if skip_without_gpu("host_source_can_be_reused_at_once") {
        return;
    }
    let be = CudaBackend::new(0).unwrap();
    let bytes = 8 << 20;
    let (mut w, _export) = be.create(2, bytes).unwrap();
    let mut src = pattern(1, bytes);
    w.copy_from_host(0, &src).unwrap();
    // Overwrite the caller's buffer at once, then write it to the other slot and again
    // to the first (refilling its staging buffer while the first copy may be in flight).
    src.copy_from_slice(&pattern(2, bytes));
    w.copy_from_host(1, &src).unwrap();
    let mut back = vec![0u8; bytes];
    w.copy_to_host(0, &mut back).unwrap();
    assert!(back == pattern(1, bytes), "slot 0 saw the reused buffer");
    for round in 3..8 {
        w.copy_from_host(0, &pattern(round, bytes)).unwrap();
    }
    w.copy_to_host(0, &mut back).unwrap();
    assert!(back == pattern(7, bytes));
    w.copy_to_host(1, &mut back).unwrap();
    assert!(back == pattern(2, bytes));
}

#[test]
fn slot_and_length_arguments_are_checked() {
    if skip_without_gpu("slot_and_length_arguments_are_checked") {
        return;
    }
    let be = CudaBackend::new(0).unwrap();
    let (mut w, _export) = be.create(2, 64).unwrap();
    assert!(matches!(
        w.copy_from_host(2, &[0; 8]),
        Err(GpuError::Corrupt(_))
    ));
    assert!(matches!(
        w.copy_from_host(0, &[0; 65]),
        Err(GpuError::WrongSize {
            expected: 64,
            found: 65
        })
    ));
    assert!(matches!(w.record(9), Err(GpuError::Corrupt(_))));
    assert!(matches!(
        w.copy_to_host(5, &mut [0; 8]),
        Err(GpuError::Corrupt(_))
    ));
    assert!(matches!(
        w.copy_to_host(0, &mut [0; 100]),
        Err(GpuError::WrongSize { .. })
    ));
    assert_eq!(w.slot_ptr(2).addr, 0);
    let buf = be.alloc(128).unwrap();
    // SAFETY: `buf` is device memory of this backend's device, alive until the end.
    let r = unsafe { w.copy_from_device(0, buf.ptr()) };
    assert!(matches!(r, Err(GpuError::WrongSize { .. })), "{r:?}");
    // A short write is fine.
    w.copy_from_host(1, &[5; 10]).unwrap();
    let mut back = [0u8; 10];
    w.copy_to_host(1, &mut back).unwrap();
    assert_eq!(back, [5; 10]);
}

#[test]
fn write_from_device_memory() {
    if skip_without_gpu("write_from_device_memory") {
        return;
    }
    for be in backends() {
        let bytes = 1 << 20;
        let (mut w, _export) = be.create(2, bytes).unwrap();
        let mut buf = be.alloc(bytes).unwrap();
        assert_eq!(buf.len(), bytes);
        buf.copy_from_host(&pattern(42, bytes)).unwrap();
        // SAFETY: `buf` is device memory of this device, alive and unwritten until
        // after the synchronize below.
        unsafe { w.copy_from_device(1, buf.ptr()).unwrap() };
        w.record(1).unwrap();
        w.synchronize().unwrap();
        let mut back = vec![0u8; bytes];
        w.copy_to_host(1, &mut back).unwrap();
        assert!(back == pattern(42, bytes));
        let mut again = vec![0u8; bytes];
        buf.copy_to_host(&mut again).unwrap();
        assert!(again == back);
    }
}

#[test]
fn import_in_the_exporting_process_is_same_process() {
    if skip_without_gpu("import_in_the_exporting_process_is_same_process") {
        return;
    }
    for be in backends() {
        let (_w, export) = be.create(2, 4096).unwrap();
        let r = be.import(be.kind(), be.device(), 2, 4096, export);
        assert!(
            matches!(r, Err(GpuError::SameProcess)),
            "{:?}: {r:?}",
            be.kind()
        );
    }
    // The driver's own refusal (a legacy handle opened in its exporting process) maps
    // to SameProcess too: forge the blob's process tag so validation lets it through.
    let be = CudaBackend::legacy(0).unwrap();
    let (_w, export) = be.create(1, 4096).unwrap();
    let outsider = Importer {
        process: ProcessTag {
            pid: 0,
            nonce: [0; 16],
        },
        ..be.importer()
    };
    let mut b =
        blob::validate(&outsider, be.kind(), be.device(), 1, 4096, &export.blob, 0).unwrap();
    b.exporter = outsider.process;
    let forged = Export {
        blob: b.encode(),
        fds: Vec::new(),
    };
    let r = be.import(be.kind(), be.device(), 1, 4096, forged);
    assert!(
        matches!(r, Err(GpuError::SameProcess)),
        "driver answer: {r:?}"
    );
}

// ---------------------------------------------------------------------------------
// Across processes
// ---------------------------------------------------------------------------------

const CHILD_ENV: &str = "TENSORLANE_CUDA_CHILD";

/// What the parent tells the child, one `key=value` per line.
struct Handoff {
    kind: BackendKind,
    device: DeviceId,
    slots: usize,
    bytes: usize,
    blob: Vec<u8>,
    fds: Vec<i32>,
    /// Slot to read and the seed of its pattern.
    slot: usize,
    seed: u64,
    /// When set, the child first expects a timeout, then creates this file and waits.
    gated_marker: Option<PathBuf>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

impl Handoff {
    fn write(&self, path: &Path) {
        let fds: Vec<String> = self.fds.iter().map(|f| f.to_string()).collect();
        let text = format!(
            "kind={}\nordinal={}\nuuid={}\nslots={}\nbytes={}\nblob={}\nfds={}\nslot={}\nseed={}\nmarker={}\n",
            self.kind.code(),
            self.device.ordinal,
            hex(&self.device.uuid),
            self.slots,
            self.bytes,
            hex(&self.blob),
            fds.join(","),
            self.slot,
            self.seed,
            self.gated_marker
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
        );
        std::fs::write(path, text).unwrap();
    }

    fn read(path: &Path) -> Handoff {
        let text = std::fs::read_to_string(path).unwrap();
        let get = |key: &str| -> String {
            text.lines()
                .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
                .unwrap_or_else(|| panic!("hand-off lacks {key}"))
                .to_string()
        };
        let fds = get("fds");
        let marker = get("marker");
        Handoff {
            kind: BackendKind::from_code(get("kind").parse().unwrap()).unwrap(),
            device: DeviceId {
                ordinal: get("ordinal").parse().unwrap(),
                uuid: unhex(&get("uuid")).try_into().unwrap(),
            },
            slots: get("slots").parse().unwrap(),
            bytes: get("bytes").parse().unwrap(),
            blob: unhex(&get("blob")),
            fds: fds
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|s| s.parse().unwrap())
                .collect(),
            slot: get("slot").parse().unwrap(),
            seed: get("seed").parse().unwrap(),
            gated_marker: (!marker.is_empty()).then(|| PathBuf::from(marker)),
        }
    }
}

/// Lets `fd` survive `exec` into the child.
fn inheritable(fd: &OwnedFd) {
    let raw = fd.as_raw_fd();
    // SAFETY: `raw` is an open descriptor owned by the caller; F_GETFD/F_SETFD only
    // change its close-on-exec flag.
    unsafe {
        let flags = libc::fcntl(raw, libc::F_GETFD);
        assert!(flags >= 0, "fcntl(F_GETFD)");
        assert!(libc::fcntl(raw, libc::F_SETFD, flags & !libc::FD_CLOEXEC) >= 0);
    }
}

/// Runs this test binary's `child_role` test with the hand-off, and returns whether it
/// passed; `during` runs while the child is alive. Gives the child 120 s.
fn run_child(handoff: &Handoff, name: &str, during: impl FnOnce()) {
    let path = std::env::temp_dir().join(format!(
        "tensorlane-cuda-{}-{name}.handoff",
        std::process::id()
    ));
    handoff.write(&path);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_role", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &path)
        .spawn()
        .unwrap();
    during();
    let deadline = Instant::now() + Duration::from_secs(120);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let _ = std::fs::remove_file(&path);
            panic!("{name}: the child did not finish in 120 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let _ = std::fs::remove_file(&path);
    assert!(
        status.success(),
        "{name}: the child failed ({status}); its output is above"
    );
}

/// The child's side: imports the lane, waits for the slot's event, and checks the
/// slot's bytes read to the host and into device memory. A no-op unless started by
/// [`run_child`].
#[test]
fn child_role() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let h = Handoff::read(Path::new(&path));
    assert!(gpu_available(), "child: no CUDA device");
    let be = CudaBackend::new(h.device.ordinal as usize).unwrap();
    let fds = h
        .fds
        .iter()
        // SAFETY: the parent cleared close-on-exec on these descriptors and passed their
        // numbers; nothing else in this process owns them.
        .map(|&fd| unsafe { OwnedFd::from_raw_fd(fd) })
        .collect();
    let export = Export {
        blob: h.blob.clone(),
        fds,
    };
    let mut r = be
        .import(h.kind, h.device, h.slots, h.bytes, export)
        .unwrap();
    assert_eq!(r.kind(), h.kind);
    if let Some(marker) = &h.gated_marker {
        // The copy is held back in the parent: the event must not complete.
        let t = Instant::now();
        let res = r.wait(h.slot, Duration::from_millis(300), &mut || false);
        assert!(
            matches!(res, Err(GpuError::Timeout)),
            "child: expected Timeout, got {res:?}"
        );
        assert!(t.elapsed() >= Duration::from_millis(300));
        std::fs::write(marker, b"timed out").unwrap();
    }
    r.wait(h.slot, Duration::from_secs(60), &mut || false)
        .unwrap();
    let want = pattern(h.seed, h.bytes);
    let mut back = vec![0u8; h.bytes];
    r.copy_to_host(h.slot, &mut back).unwrap();
    assert!(back == want, "child: slot {} bytes differ", h.slot);
    let buf = be.alloc(h.bytes).unwrap();
    // SAFETY: `buf` is device memory of this device, used by nothing else.
    unsafe { r.copy_to_device(h.slot, buf.ptr()).unwrap() };
    let mut again = vec![0u8; h.bytes];
    buf.copy_to_host(&mut again).unwrap();
    assert!(again == want, "child: the device copy differs");
    let p = r.slot_ptr(h.slot);
    assert_ne!(p.addr, 0);
    assert_eq!(p.len, h.bytes);
    // A slot never written: its event was never recorded, so waiting returns at once.
    let other = (h.slot + 1) % h.slots;
    if other != h.slot {
        r.wait(other, Duration::from_secs(5), &mut || false)
            .unwrap();
    }
    r.synchronize().unwrap();
    eprintln!(
        "child: {} lane read back ({} bytes)",
        h.kind.name(),
        h.bytes
    );
}

fn handoff_for(
    be: &CudaBackend,
    slots: usize,
    bytes: usize,
    export: &Export,
    slot: usize,
    seed: u64,
) -> Handoff {
    for fd in &export.fds {
        inheritable(fd);
    }
    Handoff {
        kind: be.kind(),
        device: be.device(),
        slots,
        bytes,
        blob: export.blob.clone(),
        fds: export.fds.iter().map(|f| f.as_raw_fd()).collect(),
        slot,
        seed,
        gated_marker: None,
    }
}

#[test]
fn child_process_reads_what_was_written() {
    if skip_without_gpu("child_process_reads_what_was_written") {
        return;
    }
    for be in backends() {
        let (slots, bytes) = (2, (4 << 20) + 123);
        let (mut w, export) = be.create(slots, bytes).unwrap();
        // Churn the allocator after the export: were the slots a temporary freed after
        // export, this would reuse and overwrite their memory.
        for i in 0..4 {
            let mut junk = be.alloc(bytes).unwrap();
            junk.copy_from_host(&vec![0xa5 ^ i as u8; bytes]).unwrap();
        }
        w.copy_from_host(1, &pattern(77, bytes)).unwrap();
        w.record(1).unwrap();
        let h = handoff_for(&be, slots, bytes, &export, 1, 77);
        run_child(&h, be.kind().name(), || {});
        // The writer (and so the exported memory) outlives the child.
        drop(w);
    }
}

static GATE_OPEN: AtomicBool = AtomicBool::new(false);

/// Host function holding the writer's stream until the gate opens.
unsafe extern "C" fn hold_stream(_: *mut std::ffi::c_void) {
    while !GATE_OPEN.load(Ordering::Acquire) {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Opens the gate on drop, so a failing test cannot leave the stream held.
struct GateGuard;

impl Drop for GateGuard {
    fn drop(&mut self) {
        GATE_OPEN.store(true, Ordering::Release);
    }
}

#[test]
fn reader_waits_for_a_copy_in_flight() {
    if skip_without_gpu("reader_waits_for_a_copy_in_flight") {
        return;
    }
    let be = CudaBackend::new(0).unwrap();
    let (slots, bytes) = (2, 1 << 20);
    let (mut w, export) = be.create(slots, bytes).unwrap();
    // Allocate the slot's staging buffer now: nothing that might synchronize with the
    // device may run while the stream is held below.
    w.copy_from_host(0, &[0; 16]).unwrap();
    w.synchronize().unwrap();
    GATE_OPEN.store(false, Ordering::Release);
    let _gate = GateGuard;
    // SAFETY: the stream is the writer's, alive; the context is current on this thread
    // (the backend's calls made it so); `hold_stream` ignores its argument.
    let r = unsafe {
        cudarc::driver::sys::cuLaunchHostFunc(
            w.raw_stream(),
            Some(hold_stream),
            std::ptr::null_mut(),
        )
    };
    assert_eq!(r, cudarc::driver::sys::CUresult::CUDA_SUCCESS);
    // Copy and record behind the held host function: the event cannot complete yet.
    w.copy_from_host(0, &pattern(5, bytes)).unwrap();
    w.record(0).unwrap();
    let mut h = handoff_for(&be, slots, bytes, &export, 0, 5);
    let marker = std::env::temp_dir().join(format!("tensorlane-cuda-{}-gate", std::process::id()));
    let _ = std::fs::remove_file(&marker);
    h.gated_marker = Some(marker.clone());
    run_child(&h, "gated", || {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !marker.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        GATE_OPEN.store(true, Ordering::Release);
    });
    let _ = std::fs::remove_file(&marker);
    w.synchronize().unwrap();
}
