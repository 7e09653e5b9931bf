//! What the ABI tests share: unique lane names removed at the end, specs, and a
//! status check that prints the last error message.

#![allow(dead_code)]

use std::ffi::{CStr, CString};
use std::sync::atomic::{AtomicU32, Ordering};
use tensorlane_capi::*;

/// A lane name unique to this process and test, unlinked when dropped.
pub struct Name(pub CString);

static NEXT: AtomicU32 = AtomicU32::new(0);

impl Name {
    pub fn new(what: &str) -> Self {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        Name(CString::new(format!("capi-{what}-{}-{n}", std::process::id())).unwrap())
    }

    pub fn ptr(&self) -> *const std::ffi::c_char {
        self.0.as_ptr()
    }
}

impl Drop for Name {
    fn drop(&mut self) {
        // SAFETY: a NUL-terminated string.
        unsafe { tl_unlink(self.0.as_ptr()) };
    }
}

/// A `tl_spec` of `dtype` and `shape`.
pub fn spec(dtype: tl_dtype, shape: &[u64]) -> tl_spec {
    let mut s = tl_spec {
        dtype: dtype as u32,
        ndim: shape.len() as u32,
        shape: [0; TL_MAX_DIMS],
    };
    s.shape[..shape.len()].copy_from_slice(shape);
    s
}

/// float64 [2, 3]: the peer's tensor.
pub fn f64_2x3() -> tl_spec {
    spec(tl_dtype::TL_F64, &[2, 3])
}

/// The last error message of this thread.
pub fn last_error() -> String {
    // SAFETY: the library returns a NUL-terminated string valid until the next
    // failing call on this thread.
    unsafe { CStr::from_ptr(tl_last_error_message()) }
        .to_string_lossy()
        .into_owned()
}

/// Asserts `status` is `expected`, saying the message if not.
#[track_caller]
pub fn expect(status: tl_status, expected: tl_status) {
    assert_eq!(status, expected, "last error: {}", last_error());
}

/// Asserts success.
#[track_caller]
pub fn ok(status: tl_status) {
    expect(status, tl_status::TL_OK);
}

/// Bytes of `values`.
pub fn bytes(values: &[f64]) -> Vec<u8> {
    values.iter().flat_map(|v| v.to_le_bytes()).collect()
}
