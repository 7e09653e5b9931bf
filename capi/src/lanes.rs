//! Functions on lanes by name and on specs: removal, tensor sizes.

use crate::args;
use crate::status::{call, tl_status, Failure};
use crate::types::{spec_from_c, tl_spec};
use std::ffi::c_char;
use tensorlane_shm::{segment, LaneName};

/// Removes lane `name` from the machine (`/dev/shm/tensorlane.<name>`):
/// `TL_ERR_NOT_FOUND` if there is none. Processes that have it open keep using it;
/// the next create of the name makes a new lane.
///
/// # Safety
/// `name` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn tl_unlink(name: *const c_char) -> tl_status {
    call(|| {
        // SAFETY: the promise of this function's documentation.
        let name = unsafe { args::name(name)? };
        let name = LaneName::new(name)
            .map_err(|e| Failure::new(tl_status::TL_ERR_INVALID_ARGUMENT, e.to_string()))?;
        Ok(segment::unlink(&name)?)
    })
}

/// Writes to `*bytes` the size of one tensor `*spec` (what every buffer passed
/// for it must hold); `TL_ERR_INVALID_ARGUMENT` for an invalid spec.
///
/// # Safety
/// `spec` is NULL or points to a `tl_spec`; `bytes` is NULL or points to a
/// writable `size_t`.
#[no_mangle]
pub unsafe extern "C" fn tl_spec_byte_len(spec: *const tl_spec, bytes: *mut usize) -> tl_status {
    call(|| {
        // SAFETY: the promises of this function's documentation.
        let spec = spec_from_c(&unsafe { args::read(spec, "spec")? })?;
        // SAFETY: as above.
        unsafe { args::write(bytes, spec.byte_len(), "bytes") }
    })
}
