//! Checked wrappers around the raw driver calls, driver detection, and the RAII owners
//! of driver objects (context, stream, event, pinned host memory, device memory).
//!
//! Invariants:
//! - No function of `cudarc::driver::sys` is called before [`driver_library_present`]
//!   has returned `true` (cudarc panics when it cannot load libcuda) and `cuInit`
//!   has succeeded ([`init`]); every object below is created after both.
//! - Every call that needs a context first makes the device's primary context current
//!   on the calling thread ([`Device::bind`]): lanes are used from any thread, and the
//!   driver keeps the current context per thread.
//! - Each owner frees exactly what it created, once, in `Drop`, after binding the
//!   context; errors in `Drop` are ignored (there is no one to report them to), and
//!   nothing in `Drop` panics.
//! - The primary context is retained by [`Device`] and released when the last owner
//!   (held through an `Arc<Device>`) is gone, so no object outlives its context.

use crate::error::GpuError;
use cudarc::driver::sys;
use std::ffi::c_void;
use std::sync::{Arc, OnceLock};

/// The oldest driver (as `cuDriverGetVersion` reports it) whose entry points this
/// backend calls: `cuDeviceGetUuid_v2` and the virtual memory management calls exist
/// from 11.4 on. Checked before any of them is looked up (cudarc panics on a missing
/// symbol).
pub(crate) const MIN_DRIVER_VERSION: i32 = 11040;

/// Turns a `CUresult` into `Ok` or [`GpuError::Driver`] naming the call.
pub(crate) fn check(call: &'static str, result: sys::CUresult) -> Result<(), GpuError> {
    if result == sys::CUresult::CUDA_SUCCESS {
        Ok(())
    } else {
        Err(driver_error(call, result))
    }
}

/// [`GpuError::Driver`] for a failed call (the result's name, e.g.
/// `CUDA_ERROR_INVALID_VALUE`, with no further driver call).
pub(crate) fn driver_error(call: &'static str, result: sys::CUresult) -> GpuError {
    GpuError::Driver {
        call,
        result: format!("{result:?}"),
    }
}

/// Whether a CUDA driver library (`libcuda.so`) can be loaded in this process. Loads
/// nothing else and never panics; the answer is computed once.
pub fn driver_library_present() -> bool {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    *PRESENT.get_or_init(|| {
        // SAFETY: `is_culib_present` only tries `dlopen` on the candidate library names
        // and drops what it opened; it calls no driver function.
        unsafe { sys::is_culib_present() }
    })
}

/// Loads the driver and runs `cuInit` (once per process; later calls return the first
/// answer). `GpuError::NoDriver` when the library is absent, `cuInit` fails, or the
/// driver is older than [`MIN_DRIVER_VERSION`].
pub(crate) fn init() -> Result<(), GpuError> {
    static INIT: OnceLock<Result<(), String>> = OnceLock::new();
    INIT.get_or_init(|| {
        if !driver_library_present() {
            return Err("the CUDA driver library (libcuda.so) is not installed".into());
        }
        // SAFETY: the library is present (checked above), so cudarc can resolve
        // `cuInit`; flags must be 0.
        let r = unsafe { sys::cuInit(0) };
        if r != sys::CUresult::CUDA_SUCCESS {
            return Err(format!("cuInit failed: {r:?}"));
        }
        let mut version = 0;
        // SAFETY: `cuInit` succeeded; `version` is a valid out-pointer.
        let r = unsafe { sys::cuDriverGetVersion(&mut version) };
        if r != sys::CUresult::CUDA_SUCCESS {
            return Err(format!("cuDriverGetVersion failed: {r:?}"));
        }
        if version < MIN_DRIVER_VERSION {
            return Err(format!(
                "CUDA driver version {version} is older than {MIN_DRIVER_VERSION}"
            ));
        }
        Ok(())
    })
    .clone()
    .map_err(GpuError::NoDriver)
}

/// Devices the driver reports (after [`init`]).
pub(crate) fn device_count() -> Result<usize, GpuError> {
    init()?;
    let mut count = 0;
    // SAFETY: `init` succeeded; `count` is a valid out-pointer.
    check("cuDeviceGetCount", unsafe {
        sys::cuDeviceGetCount(&mut count)
    })?;
    Ok(usize::try_from(count).unwrap_or(0))
}

/// Whether this process can use a CUDA device: the driver library loads, `cuInit`
/// succeeds and at least one device is present. Never panics (also not when libcuda
/// is absent, the case cudarc itself would panic on).
pub fn gpu_available() -> bool {
    if !driver_library_present() {
        return false;
    }
    // A driver that loads but lacks an entry point makes cudarc panic; contain it.
    std::panic::catch_unwind(|| device_count().map(|n| n > 0).unwrap_or(false)).unwrap_or(false)
}

/// One device and its retained primary context. Shared (through `Arc`) by everything
/// made on the device, so the context is released only after all of it is freed.
#[derive(Debug)]
pub(crate) struct Device {
    ctx: sys::CUcontext,
    dev: sys::CUdevice,
    ordinal: usize,
    uuid: [u8; 16],
}

// SAFETY: a `CUcontext` may be made current on, and used from, any thread (the driver
// API is thread-safe); `Device` only reads its fields after construction.
unsafe impl Send for Device {}
// SAFETY: as above: every use goes through the thread-safe driver API.
unsafe impl Sync for Device {}

impl Device {
    /// Opens device `ordinal`: checks it exists, retains its primary context and reads
    /// its uuid.
    pub(crate) fn open(ordinal: usize) -> Result<Arc<Device>, GpuError> {
        let count = device_count()?;
        if ordinal >= count {
            return Err(GpuError::NoDevice { ordinal, count });
        }
        let ord = i32::try_from(ordinal).map_err(|_| GpuError::NoDevice { ordinal, count })?;
        let mut dev: sys::CUdevice = 0;
        // SAFETY: the driver is initialized; `ord` is below the device count.
        check("cuDeviceGet", unsafe { sys::cuDeviceGet(&mut dev, ord) })?;
        let mut uuid = sys::CUuuid { bytes: [0; 16] };
        // SAFETY: `dev` is a valid device; `uuid` is a valid out-pointer (the driver is at
        // least `MIN_DRIVER_VERSION`, which has this entry point).
        check("cuDeviceGetUuid_v2", unsafe {
            sys::cuDeviceGetUuid_v2(&mut uuid, dev)
        })?;
        let mut ctx: sys::CUcontext = std::ptr::null_mut();
        // SAFETY: `dev` is a valid device; `ctx` is a valid out-pointer. The retain is
        // balanced by the release in `Drop`.
        check("cuDevicePrimaryCtxRetain", unsafe {
            sys::cuDevicePrimaryCtxRetain(&mut ctx, dev)
        })?;
        let device = Arc::new(Device {
            ctx,
            dev,
            ordinal,
            uuid: uuid.bytes.map(|b| b as u8),
        });
        device.bind()?;
        Ok(device)
    }

    /// Makes the primary context current on the calling thread.
    pub(crate) fn bind(&self) -> Result<(), GpuError> {
        // SAFETY: `ctx` is a primary context retained by `self` (alive until drop).
        check("cuCtxSetCurrent", unsafe { sys::cuCtxSetCurrent(self.ctx) })
    }

    /// The driver's device handle.
    pub(crate) fn raw(&self) -> sys::CUdevice {
        self.dev
    }

    /// The ordinal this process opened.
    pub(crate) fn ordinal(&self) -> usize {
        self.ordinal
    }

    /// The device uuid (`cuDeviceGetUuid_v2`: distinct per MIG instance).
    pub(crate) fn uuid(&self) -> [u8; 16] {
        self.uuid
    }

    /// An integer device attribute.
    pub(crate) fn attribute(&self, attr: sys::CUdevice_attribute) -> Result<i32, GpuError> {
        let mut v = 0;
        // SAFETY: `dev` is a valid device; `v` is a valid out-pointer.
        check("cuDeviceGetAttribute", unsafe {
            sys::cuDeviceGetAttribute(&mut v, attr, self.dev)
        })?;
        Ok(v)
    }
}

impl Drop for Device {
    fn drop(&mut self) {
        // SAFETY: balances the retain in `open`; every object made on the context holds
        // an `Arc<Device>`, so none is left.
        let _ = unsafe { sys::cuDevicePrimaryCtxRelease_v2(self.dev) };
    }
}

/// An owned non-blocking stream (it does not synchronize with the legacy default
/// stream). Dropping it waits for its work first.
#[derive(Debug)]
pub(crate) struct Stream {
    dev: Arc<Device>,
    raw: sys::CUstream,
}

// SAFETY: streams may be used from any thread; the handle is only passed to the
// thread-safe driver API.
unsafe impl Send for Stream {}
// SAFETY: as above.
unsafe impl Sync for Stream {}

impl Stream {
    /// Creates a non-blocking stream on `dev`.
    pub(crate) fn new(dev: &Arc<Device>) -> Result<Stream, GpuError> {
        dev.bind()?;
        let mut raw: sys::CUstream = std::ptr::null_mut();
        let flags = sys::CUstream_flags::CU_STREAM_NON_BLOCKING as u32;
        // SAFETY: the context is current; `raw` is a valid out-pointer.
        check("cuStreamCreate", unsafe {
            sys::cuStreamCreate(&mut raw, flags)
        })?;
        Ok(Stream {
            dev: dev.clone(),
            raw,
        })
    }

    /// The driver handle.
    pub(crate) fn raw(&self) -> sys::CUstream {
        self.raw
    }

    /// Blocks until all work enqueued on the stream has completed.
    pub(crate) fn synchronize(&self) -> Result<(), GpuError> {
        self.dev.bind()?;
        // SAFETY: `raw` is a live stream of the current context.
        check("cuStreamSynchronize", unsafe {
            sys::cuStreamSynchronize(self.raw)
        })
    }

    /// Enqueues a host-to-device copy.
    ///
    /// # Safety
    /// `dst` must be device memory valid for `len` bytes, and `src` host memory valid
    /// for `len` bytes until the copy completes (pinned memory makes the copy truly
    /// asynchronous; pageable memory is copied before the call returns).
    pub(crate) unsafe fn copy_htod(
        &self,
        dst: u64,
        src: *const u8,
        len: usize,
    ) -> Result<(), GpuError> {
        if len == 0 {
            return Ok(());
        }
        self.dev.bind()?;
        // SAFETY: the caller guarantees both ranges; the stream is live.
        check("cuMemcpyHtoDAsync_v2", unsafe {
            sys::cuMemcpyHtoDAsync_v2(dst, src.cast::<c_void>(), len, self.raw)
        })
    }

    /// Enqueues a device-to-host copy.
    ///
    /// # Safety
    /// `src` must be device memory valid for `len` bytes, and `dst` host memory valid
    /// for writes of `len` bytes and not otherwise accessed until the stream is
    /// synchronized.
    pub(crate) unsafe fn copy_dtoh(
        &self,
        dst: *mut u8,
        src: u64,
        len: usize,
    ) -> Result<(), GpuError> {
        if len == 0 {
            return Ok(());
        }
        self.dev.bind()?;
        // SAFETY: the caller guarantees both ranges; the stream is live.
        check("cuMemcpyDtoHAsync_v2", unsafe {
            sys::cuMemcpyDtoHAsync_v2(dst.cast::<c_void>(), src, len, self.raw)
        })
    }

    /// Enqueues a device-to-device copy.
    ///
    /// # Safety
    /// Both ranges must be device memory valid for `len` bytes until the copy completes.
    pub(crate) unsafe fn copy_dtod(&self, dst: u64, src: u64, len: usize) -> Result<(), GpuError> {
        if len == 0 {
            return Ok(());
        }
        self.dev.bind()?;
        // SAFETY: the caller guarantees both ranges; the stream is live.
        check("cuMemcpyDtoDAsync_v2", unsafe {
            sys::cuMemcpyDtoDAsync_v2(dst, src, len, self.raw)
        })
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if self.dev.bind().is_ok() {
            // SAFETY: `raw` is a live stream created by `new`; it is synchronized first so
            // no enqueued work outlives the memory its owner frees next, then destroyed
            // once.
            unsafe {
                let _ = sys::cuStreamSynchronize(self.raw);
                let _ = sys::cuStreamDestroy_v2(self.raw);
            }
        }
    }
}

/// An owned event: created here (`cuEventCreate`) or opened from another process's
/// handle (`cuIpcOpenEventHandle`); destroyed on drop either way (destroying an
/// imported event releases only this process's reference).
#[derive(Debug)]
pub(crate) struct Event {
    dev: Arc<Device>,
    raw: sys::CUevent,
}

// SAFETY: events may be used from any thread through the thread-safe driver API.
unsafe impl Send for Event {}
// SAFETY: as above.
unsafe impl Sync for Event {}

/// What [`Event::query`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventState {
    /// The most recent record has completed (or the event was never recorded).
    Done,
    /// Work before the most recent record is still pending.
    Pending,
}

impl Event {
    /// An interprocess event (`CU_EVENT_INTERPROCESS | CU_EVENT_DISABLE_TIMING`: the
    /// driver requires timing disabled for interprocess events).
    pub(crate) fn interprocess(dev: &Arc<Device>) -> Result<Event, GpuError> {
        let flags = sys::CUevent_flags::CU_EVENT_INTERPROCESS as u32
            | sys::CUevent_flags::CU_EVENT_DISABLE_TIMING as u32;
        Event::create(dev, flags)
    }

    /// A process-local event without timing.
    pub(crate) fn local(dev: &Arc<Device>) -> Result<Event, GpuError> {
        Event::create(dev, sys::CUevent_flags::CU_EVENT_DISABLE_TIMING as u32)
    }

    fn create(dev: &Arc<Device>, flags: u32) -> Result<Event, GpuError> {
        dev.bind()?;
        let mut raw: sys::CUevent = std::ptr::null_mut();
        // SAFETY: the context is current; `raw` is a valid out-pointer.
        check("cuEventCreate", unsafe {
            sys::cuEventCreate(&mut raw, flags)
        })?;
        Ok(Event {
            dev: dev.clone(),
            raw,
        })
    }

    /// Opens an event another process exported.
    pub(crate) fn open_ipc(dev: &Arc<Device>, handle: [u8; 64]) -> Result<Event, GpuError> {
        dev.bind()?;
        let handle = sys::CUipcEventHandle {
            reserved: handle.map(|b| b as std::ffi::c_char),
        };
        let mut raw: sys::CUevent = std::ptr::null_mut();
        // SAFETY: the context is current; `raw` is a valid out-pointer; the handle is
        // plain bytes (a forged one makes the driver fail, not misbehave).
        check("cuIpcOpenEventHandle", unsafe {
            sys::cuIpcOpenEventHandle(&mut raw, handle)
        })?;
        Ok(Event {
            dev: dev.clone(),
            raw,
        })
    }

    /// The interprocess handle of an event made by [`interprocess`](Self::interprocess).
    pub(crate) fn ipc_handle(&self) -> Result<[u8; 64], GpuError> {
        self.dev.bind()?;
        let mut handle = sys::CUipcEventHandle { reserved: [0; 64] };
        // SAFETY: `raw` is a live interprocess event; `handle` is a valid out-pointer.
        check("cuIpcGetEventHandle", unsafe {
            sys::cuIpcGetEventHandle(&mut handle, self.raw)
        })?;
        Ok(handle.reserved.map(|b| b as u8))
    }

    /// Records the event after all work enqueued on `stream` so far.
    pub(crate) fn record(&self, stream: &Stream) -> Result<(), GpuError> {
        self.dev.bind()?;
        // SAFETY: both handles are live objects of the current context.
        check("cuEventRecord", unsafe {
            sys::cuEventRecord(self.raw, stream.raw)
        })
    }

    /// Blocks until the most recent record has completed (at once if never recorded).
    pub(crate) fn synchronize(&self) -> Result<(), GpuError> {
        self.dev.bind()?;
        // SAFETY: `raw` is a live event of the current context.
        check("cuEventSynchronize", unsafe {
            sys::cuEventSynchronize(self.raw)
        })
    }

    /// Whether the most recent record has completed, without blocking.
    pub(crate) fn query(&self) -> Result<EventState, GpuError> {
        self.dev.bind()?;
        // SAFETY: `raw` is a live event of the current context.
        match unsafe { sys::cuEventQuery(self.raw) } {
            sys::CUresult::CUDA_SUCCESS => Ok(EventState::Done),
            sys::CUresult::CUDA_ERROR_NOT_READY => Ok(EventState::Pending),
            other => Err(driver_error("cuEventQuery", other)),
        }
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        if self.dev.bind().is_ok() {
            // SAFETY: `raw` is a live event owned by `self`, destroyed once. Destroying an
            // event with a pending record is allowed (resources go when it completes).
            let _ = unsafe { sys::cuEventDestroy_v2(self.raw) };
        }
    }
}

/// Page-locked host memory (`cuMemAllocHost_v2`), so asynchronous copies out of it are
/// truly asynchronous (and must not see it refilled before they complete).
#[derive(Debug)]
pub(crate) struct Pinned {
    dev: Arc<Device>,
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the memory is plain host memory owned by `self`; access goes through `&mut`.
unsafe impl Send for Pinned {}

impl Pinned {
    /// Allocates `len` (at least 1) bytes of pinned memory.
    pub(crate) fn new(dev: &Arc<Device>, len: usize) -> Result<Pinned, GpuError> {
        dev.bind()?;
        let mut p: *mut c_void = std::ptr::null_mut();
        // SAFETY: the context is current; `p` is a valid out-pointer.
        check("cuMemAllocHost_v2", unsafe {
            sys::cuMemAllocHost_v2(&mut p, len.max(1))
        })?;
        Ok(Pinned {
            dev: dev.clone(),
            ptr: p.cast::<u8>(),
            len,
        })
    }

    /// The start of the buffer.
    pub(crate) fn as_ptr(&self) -> *const u8 {
        self.ptr
    }

    /// The buffer as a mutable slice.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` is a live allocation of at least `len` bytes owned by `self`, and
        // `&mut self` excludes other accesses from this process; callers make sure no
        // copy out of it is in flight (see `slots`).
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for Pinned {
    fn drop(&mut self) {
        if self.dev.bind().is_ok() {
            // SAFETY: `ptr` came from `cuMemAllocHost_v2` and is freed once; owners
            // synchronize their stream before dropping it.
            let _ = unsafe { sys::cuMemFreeHost(self.ptr.cast::<c_void>()) };
        }
    }
}

/// Device memory from `cuMemAlloc_v2` (never the stream-ordered allocator, whose memory
/// cannot be exported), freed on drop.
#[derive(Debug)]
pub(crate) struct LinearAlloc {
    dev: Arc<Device>,
    ptr: u64,
    len: usize,
}

impl LinearAlloc {
    /// Allocates `len` (at least 1) bytes.
    pub(crate) fn new(dev: &Arc<Device>, len: usize) -> Result<LinearAlloc, GpuError> {
        dev.bind()?;
        let mut ptr: sys::CUdeviceptr = 0;
        // SAFETY: the context is current; `ptr` is a valid out-pointer.
        check("cuMemAlloc_v2", unsafe {
            sys::cuMemAlloc_v2(&mut ptr, len.max(1))
        })?;
        Ok(LinearAlloc {
            dev: dev.clone(),
            ptr,
            len,
        })
    }

    /// The device address.
    pub(crate) fn ptr(&self) -> u64 {
        self.ptr
    }

    /// Bytes asked for.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The base and size of the driver allocation containing `ptr`.
    pub(crate) fn address_range(&self) -> Result<(u64, usize), GpuError> {
        address_range(&self.dev, self.ptr)
    }

    /// The legacy interprocess handle of the allocation.
    pub(crate) fn ipc_handle(&self) -> Result<[u8; 64], GpuError> {
        self.dev.bind()?;
        let mut handle = sys::CUipcMemHandle { reserved: [0; 64] };
        // SAFETY: `ptr` is a live `cuMemAlloc_v2` allocation; `handle` is a valid
        // out-pointer.
        check("cuIpcGetMemHandle", unsafe {
            sys::cuIpcGetMemHandle(&mut handle, self.ptr)
        })?;
        Ok(handle.reserved.map(|b| b as u8))
    }
}

impl Drop for LinearAlloc {
    fn drop(&mut self) {
        if self.dev.bind().is_ok() {
            // SAFETY: `ptr` came from `cuMemAlloc_v2` and is freed once; owners
            // synchronize the streams that use it first.
            let _ = unsafe { sys::cuMemFree_v2(self.ptr) };
        }
    }
}

/// The base and size of the allocation containing `ptr` (`cuMemGetAddressRange_v2`).
pub(crate) fn address_range(dev: &Device, ptr: u64) -> Result<(u64, usize), GpuError> {
    dev.bind()?;
    let mut base: sys::CUdeviceptr = 0;
    let mut size = 0usize;
    // SAFETY: the context is current; the out-pointers are valid; an address the driver
    // does not know makes it return an error.
    check("cuMemGetAddressRange_v2", unsafe {
        sys::cuMemGetAddressRange_v2(&mut base, &mut size, ptr)
    })?;
    Ok((base, size))
}

/// Memory opened from a legacy interprocess handle (`cuIpcOpenMemHandle_v2`); closed
/// (never freed) on drop.
#[derive(Debug)]
pub(crate) struct IpcMapping {
    dev: Arc<Device>,
    ptr: u64,
}

impl IpcMapping {
    /// Opens `handle` with lazy peer access. `CUDA_ERROR_INVALID_CONTEXT` (what the
    /// driver answers for a handle exported by this very process) becomes
    /// [`GpuError::SameProcess`]; the blob check catches that case before any driver
    /// call, so this is a second line.
    pub(crate) fn open(dev: &Arc<Device>, handle: [u8; 64]) -> Result<IpcMapping, GpuError> {
        dev.bind()?;
        let handle = sys::CUipcMemHandle {
            reserved: handle.map(|b| b as std::ffi::c_char),
        };
        let mut ptr: sys::CUdeviceptr = 0;
        let flags = sys::CUipcMem_flags::CU_IPC_MEM_LAZY_ENABLE_PEER_ACCESS as u32;
        // SAFETY: the context is current (so INVALID_CONTEXT can only mean the handle's
        // own process); `ptr` is a valid out-pointer; a forged handle makes the driver
        // fail, not misbehave.
        match unsafe { sys::cuIpcOpenMemHandle_v2(&mut ptr, handle, flags) } {
            sys::CUresult::CUDA_SUCCESS => Ok(IpcMapping {
                dev: dev.clone(),
                ptr,
            }),
            sys::CUresult::CUDA_ERROR_INVALID_CONTEXT => Err(GpuError::SameProcess),
            other => Err(driver_error("cuIpcOpenMemHandle_v2", other)),
        }
    }

    /// The device address in this process.
    pub(crate) fn ptr(&self) -> u64 {
        self.ptr
    }
}

impl Drop for IpcMapping {
    fn drop(&mut self) {
        if self.dev.bind().is_ok() {
            // SAFETY: `ptr` came from `cuIpcOpenMemHandle_v2` and is closed once; owners
            // synchronize the streams that use it first.
            let _ = unsafe { sys::cuIpcCloseMemHandle(self.ptr) };
        }
    }
}

/// The allocation properties of every VMM slot: pinned device memory on `dev`,
/// exportable as a POSIX file descriptor.
fn vmm_prop(dev: &Device) -> sys::CUmemAllocationProp {
    sys::CUmemAllocationProp {
        type_: sys::CUmemAllocationType::CU_MEM_ALLOCATION_TYPE_PINNED,
        requestedHandleTypes:
            sys::CUmemAllocationHandleType::CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR,
        location: sys::CUmemLocation {
            type_: sys::CUmemLocationType::CU_MEM_LOCATION_TYPE_DEVICE,
            id: dev.raw(),
        },
        win32HandleMetaData: std::ptr::null_mut(),
        allocFlags: sys::CUmemAllocationProp_st__bindgen_ty_1 {
            compressionType: 0,
            gpuDirectRDMACapable: 0,
            usage: 0,
            reserved: [0; 4],
        },
    }
}

/// The minimum VMM allocation granularity of `dev` for [`vmm_prop`] allocations.
pub(crate) fn vmm_granularity(dev: &Device) -> Result<u64, GpuError> {
    dev.bind()?;
    let prop = vmm_prop(dev);
    let mut g = 0usize;
    // SAFETY: the context is current; `prop` and `g` are valid pointers.
    check("cuMemGetAllocationGranularity", unsafe {
        sys::cuMemGetAllocationGranularity(
            &mut g,
            &prop,
            sys::CUmemAllocationGranularity_flags::CU_MEM_ALLOC_GRANULARITY_MINIMUM,
        )
    })?;
    if g == 0 {
        return Err(GpuError::Unsupported(
            "the driver reports a VMM granularity of 0".into(),
        ));
    }
    Ok(g as u64)
}

/// A VMM allocation handle (`cuMemCreate` or `cuMemImportFromShareableHandle`),
/// released on drop (the physical memory goes when the last process releases it and
/// no mapping remains).
#[derive(Debug)]
struct VmmHandle {
    dev: Arc<Device>,
    raw: sys::CUmemGenericAllocationHandle,
}

impl Drop for VmmHandle {
    fn drop(&mut self) {
        if self.dev.bind().is_ok() {
            // SAFETY: `raw` is a live handle owned by `self`, released once.
            let _ = unsafe { sys::cuMemRelease(self.raw) };
        }
    }
}

/// A reserved virtual address range, freed on drop.
#[derive(Debug)]
struct Reservation {
    dev: Arc<Device>,
    ptr: u64,
    size: usize,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.dev.bind().is_ok() {
            // SAFETY: the range was reserved by `cuMemAddressReserve` with this size and is
            // freed once, after its mapping (if any) was unmapped (`VmmAlloc::drop`).
            let _ = unsafe { sys::cuMemAddressFree(self.ptr, self.size) };
        }
    }
}

/// A VMM allocation mapped read/write for this device: handle + reserved range +
/// mapping. Drop order: unmap (in `Drop`), then free the range, then release the handle
/// (field order).
#[derive(Debug)]
pub(crate) struct VmmAlloc {
    mapped: bool,
    range: Reservation,
    handle: VmmHandle,
}

impl VmmAlloc {
    /// Creates `size` bytes (a multiple of [`vmm_granularity`]) exportable as a POSIX
    /// file descriptor, and maps them.
    pub(crate) fn create(dev: &Arc<Device>, size: usize) -> Result<VmmAlloc, GpuError> {
        dev.bind()?;
        let prop = vmm_prop(dev);
        let mut raw: sys::CUmemGenericAllocationHandle = 0;
        // SAFETY: the context is current; `prop` is valid; `size` is a multiple of the
        // granularity (callers round it); flags must be 0.
        check("cuMemCreate", unsafe {
            sys::cuMemCreate(&mut raw, size, &prop, 0)
        })?;
        VmmAlloc::map(
            dev,
            VmmHandle {
                dev: dev.clone(),
                raw,
            },
            size,
        )
    }

    /// Imports the allocation behind `fd` (exported by another process) and maps `size`
    /// bytes of it. The descriptor is only read; the caller closes it.
    pub(crate) fn import(
        dev: &Arc<Device>,
        fd: std::os::fd::RawFd,
        size: usize,
    ) -> Result<VmmAlloc, GpuError> {
        dev.bind()?;
        let mut raw: sys::CUmemGenericAllocationHandle = 0;
        // The driver takes a POSIX descriptor as the pointer-sized integer value of the
        // `osHandle` argument (`(void *)(uintptr_t)fd`), not as a pointer to it.
        let os_handle = fd as isize as usize as *mut c_void;
        // SAFETY: the context is current; `raw` is a valid out-pointer; `os_handle` is a
        // descriptor value the driver reads (an fd that is not an export makes it fail).
        check("cuMemImportFromShareableHandle", unsafe {
            sys::cuMemImportFromShareableHandle(
                &mut raw,
                os_handle,
                sys::CUmemAllocationHandleType::CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR,
            )
        })?;
        VmmAlloc::map(
            dev,
            VmmHandle {
                dev: dev.clone(),
                raw,
            },
            size,
        )
    }

    fn map(dev: &Arc<Device>, handle: VmmHandle, size: usize) -> Result<VmmAlloc, GpuError> {
        let mut ptr: sys::CUdeviceptr = 0;
        // SAFETY: the context is current; `ptr` is a valid out-pointer; alignment 0 and
        // address 0 let the driver choose; flags must be 0.
        check("cuMemAddressReserve", unsafe {
            sys::cuMemAddressReserve(&mut ptr, size, 0, 0, 0)
        })?;
        let mut alloc = VmmAlloc {
            mapped: false,
            range: Reservation {
                dev: dev.clone(),
                ptr,
                size,
            },
            handle,
        };
        // SAFETY: the range was just reserved with `size` bytes; the handle is live and
        // at least `size` bytes (a smaller one makes the driver fail); offset and flags 0.
        check("cuMemMap", unsafe {
            sys::cuMemMap(ptr, size, 0, alloc.handle.raw, 0)
        })?;
        alloc.mapped = true;
        let desc = sys::CUmemAccessDesc {
            location: sys::CUmemLocation {
                type_: sys::CUmemLocationType::CU_MEM_LOCATION_TYPE_DEVICE,
                id: dev.raw(),
            },
            flags: sys::CUmemAccess_flags::CU_MEM_ACCESS_FLAGS_PROT_READWRITE,
        };
        // SAFETY: `[ptr, ptr + size)` is mapped (above); `desc` is one valid descriptor.
        check("cuMemSetAccess", unsafe {
            sys::cuMemSetAccess(ptr, size, &desc, 1)
        })?;
        Ok(alloc)
    }

    /// The mapped address.
    pub(crate) fn ptr(&self) -> u64 {
        self.range.ptr
    }

    /// Exports the allocation as a POSIX file descriptor (a new descriptor per call,
    /// owned by the caller).
    pub(crate) fn export_fd(&self) -> Result<std::os::fd::OwnedFd, GpuError> {
        use std::os::fd::FromRawFd;
        self.handle.dev.bind()?;
        let mut fd: std::ffi::c_int = -1;
        // SAFETY: the handle is live and was created with the POSIX descriptor handle
        // type; for that type the driver writes an `int` through the pointer.
        check("cuMemExportToShareableHandle", unsafe {
            sys::cuMemExportToShareableHandle(
                (&mut fd as *mut std::ffi::c_int).cast::<c_void>(),
                self.handle.raw,
                sys::CUmemAllocationHandleType::CU_MEM_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR,
                0,
            )
        })?;
        if fd < 0 {
            return Err(GpuError::Driver {
                call: "cuMemExportToShareableHandle",
                result: format!("returned descriptor {fd}"),
            });
        }
        // SAFETY: the driver just opened `fd` for the caller; nothing else owns it.
        Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) })
    }
}

impl Drop for VmmAlloc {
    fn drop(&mut self) {
        if self.mapped && self.range.dev.bind().is_ok() {
            // SAFETY: the range is mapped (by `map`) and unmapped once; owners synchronize
            // the streams that use it first.
            let _ = unsafe { sys::cuMemUnmap(self.range.ptr, self.range.size) };
        }
        // Then `range` (address free) and `handle` (release) drop, in field order.
    }
}
