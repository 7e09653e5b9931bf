//! numpy arrays in and out of lanes: the checks that keep a wrong array from being
//! cast or reshaped silently, and the views lent by zero-copy loans.
//!
//! Copies run with the GIL released, so they read or write an array's memory while
//! other Python threads may run: an array given to a call must not be written or
//! resized by another thread during that call (as for any numpy function that
//! releases the GIL), and must not be a loan's view of the same lane (an open loan
//! refuses every other call on its handle, so that cannot happen through tensorlane).

use crate::dtype;
use crate::errors::raise;
use numpy::npyffi::{self, flags, NpyTypes, PY_ARRAY_API};
use numpy::{PyArrayDescr, PyArrayDescrMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};
use tensorlane_shm::{DType, Metadata, TensorSpec};

/// What a Python handle knows of its lane, read once at open: the tensor as numpy
/// describes it, and the metadata.
pub(crate) struct LaneInfo {
    pub(crate) name: String,
    pub(crate) spec: TensorSpec,
    pub(crate) dtype: Py<PyArrayDescr>,
    pub(crate) shape: Vec<usize>,
    pub(crate) metadata: Vec<(String, String)>,
}

impl LaneInfo {
    pub(crate) fn new(
        py: Python<'_>,
        name: &str,
        spec: &TensorSpec,
        metadata: &Metadata,
    ) -> PyResult<Self> {
        Ok(LaneInfo {
            name: name.to_owned(),
            spec: spec.clone(),
            dtype: dtype::to_numpy(py, spec.dtype())?.unbind(),
            shape: spec.shape().iter().map(|&d| d as usize).collect(),
            metadata: metadata
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        })
    }

    pub(crate) fn nbytes(&self) -> usize {
        self.spec.byte_len()
    }

    pub(crate) fn shape_tuple<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        PyTuple::new(py, &self.shape)
    }

    pub(crate) fn metadata_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        for (k, v) in &self.metadata {
            dict.set_item(k, v)?;
        }
        Ok(dict)
    }

    fn describe(&self, py: Python<'_>) -> String {
        let dtype = self.dtype.bind(py).to_string();
        format!("dtype {dtype} and shape {:?}", self.shape)
    }

    /// Checks that `array` is one tensor of this lane (dtype and shape exactly).
    fn check(&self, py: Python<'_>, array: &Bound<'_, PyUntypedArray>, role: &str) -> PyResult<()> {
        let dtype = array.dtype();
        if !dtype.is_equiv_to(self.dtype.bind(py)) || array.shape() != self.shape.as_slice() {
            return Err(raise(
                py,
                "WrongSpec",
                format!(
                    "{role} for lane {:?} must have {}, not dtype {} and shape {:?} \
                     (nothing is cast or reshaped: convert it first)",
                    self.name,
                    self.describe(py),
                    dtype,
                    array.shape()
                ),
            ));
        }
        Ok(())
    }

    /// The tensor to write: `value` as a C-contiguous array of the lane's dtype and
    /// shape (a non-contiguous array is copied to a contiguous one; buffers are
    /// viewed as numpy sees them). Its bytes stay valid while the result lives.
    pub(crate) fn input<'py>(
        &self,
        py: Python<'py>,
        value: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyUntypedArray>> {
        // numpy is imported only off the common path (an ndarray, C-contiguous).
        let array = match value.cast::<PyUntypedArray>() {
            Ok(array) => array.clone(),
            Err(_) => {
                // A buffer (bytes, memoryview, array.array) as its format says; any
                // other object as numpy.asarray reads it.
                let viewed = py
                    .import("builtins")?
                    .getattr("memoryview")?
                    .call1((value,));
                let source = viewed.as_ref().unwrap_or(value);
                py.import("numpy")?
                    .call_method1("asarray", (source,))?
                    .cast_into::<PyUntypedArray>()?
            }
        };
        self.check(py, &array, "the array written")?;
        if array.is_c_contiguous() {
            return Ok(array);
        }
        Ok(py
            .import("numpy")?
            .call_method1("ascontiguousarray", (array,))?
            .cast_into::<PyUntypedArray>()?)
    }

    /// The array a read fills: `out` after checking it (the lane's dtype and shape,
    /// C-contiguous, writeable), or a new one.
    pub(crate) fn output<'py>(
        &self,
        py: Python<'py>,
        out: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyUntypedArray>> {
        let Some(out) = out else {
            return Ok(py
                .import("numpy")?
                .call_method1("empty", (self.shape_tuple(py)?, self.dtype.bind(py)))?
                .cast_into::<PyUntypedArray>()?);
        };
        let array = out.cast::<PyUntypedArray>().map_err(|_| {
            raise(
                py,
                "WrongSpec",
                format!(
                    "out must be a numpy.ndarray with {}, not {}",
                    self.describe(py),
                    out.get_type()
                        .name()
                        .map(|n| n.to_string())
                        .unwrap_or_default()
                ),
            )
        })?;
        self.check(py, array, "out")?;
        if !array.is_c_contiguous() {
            return Err(raise(
                py,
                "WrongSpec",
                "out must be C-contiguous (reads fill it in one copy)".into(),
            ));
        }
        if !is_writeable(array) {
            return Err(raise(py, "WrongSpec", "out is read-only".into()));
        }
        Ok(array.clone())
    }
}

/// Whether numpy lets `array` be written.
fn is_writeable(array: &Bound<'_, PyUntypedArray>) -> bool {
    // SAFETY: `as_array_ptr` is a live array object (we hold a reference), whose
    // `flags` field numpy keeps current.
    unsafe { (*array.as_array_ptr()).fields.flags & flags::NPY_ARRAY_WRITEABLE != 0 }
}

/// An address that may cross into `Python::detach`: the bytes of an array the caller
/// keeps alive (and, by the module's rule, no other thread writes) during the call.
#[derive(Clone, Copy)]
pub(crate) struct Bytes {
    address: usize,
    len: usize,
}

impl Bytes {
    /// The data of a C-contiguous array.
    pub(crate) fn of(array: &Bound<'_, PyUntypedArray>) -> Self {
        let len = array.len() * array.dtype().itemsize();
        // SAFETY: a live array object; `data` is its first element (C-contiguous,
        // checked by the callers, so `len` bytes from it are the whole array).
        let address = unsafe { (*array.as_array_ptr()).fields.data } as usize;
        Bytes { address, len }
    }

    /// The bytes, read-only.
    ///
    /// # Safety
    /// The array these came from is alive, and nothing writes it while the slice
    /// lives.
    pub(crate) unsafe fn get(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: the caller's promise; `len` bytes at `address` are the array's.
        unsafe { std::slice::from_raw_parts(self.address as *const u8, self.len) }
    }

    /// The bytes, to fill.
    ///
    /// # Safety
    /// The array these came from is alive and writeable, and nothing else reads or
    /// writes it while the slice lives.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn get_mut(&self) -> &mut [u8] {
        if self.len == 0 {
            return &mut [];
        }
        // SAFETY: the caller's promise; `len` bytes at `address` are the array's.
        unsafe { std::slice::from_raw_parts_mut(self.address as *mut u8, self.len) }
    }
}

/// An array over `len` bytes at `data` with the lane's dtype and shape, whose base is
/// `owner` (which keeps the memory mapped).
///
/// # Safety
/// `data` points to `info.nbytes()` bytes that stay mapped while `owner` lives, and
/// that nothing else writes while the array may be written (if `writeable`) or read.
pub(crate) unsafe fn view<'py>(
    py: Python<'py>,
    info: &LaneInfo,
    data: *mut u8,
    writeable: bool,
    owner: Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyUntypedArray>> {
    let descr = info.dtype.bind(py).clone();
    let mut dims: Vec<npyffi::npy_intp> =
        info.shape.iter().map(|&d| d as npyffi::npy_intp).collect();
    let flags = if writeable {
        flags::NPY_ARRAY_CARRAY
    } else {
        flags::NPY_ARRAY_CARRAY_RO
    };
    // SAFETY: numpy's C API with the GIL held: `PyArray_NewFromDescr` steals the
    // reference to `descr` (given up with `into_ptr`), copies `dims`, and leaves the
    // data to the caller (the promise above); null strides mean C order.
    let array = unsafe {
        let subtype = npyffi::get_type_object(py, NpyTypes::PyArray_Type);
        let raw = PY_ARRAY_API.PyArray_NewFromDescr(
            py,
            subtype,
            descr.into_ptr().cast(),
            dims.len() as std::os::raw::c_int,
            dims.as_mut_ptr(),
            std::ptr::null_mut(),
            data.cast(),
            flags,
            std::ptr::null_mut(),
        );
        Bound::from_owned_ptr_or_err(py, raw)?.cast_into_unchecked::<PyUntypedArray>()
    };
    // SAFETY: a new array without a base; `PyArray_SetBaseObject` steals the
    // reference to `owner`.
    let status =
        unsafe { PY_ARRAY_API.PyArray_SetBaseObject(py, array.as_array_ptr(), owner.into_ptr()) };
    if status < 0 {
        return Err(PyErr::fetch(py));
    }
    Ok(array)
}

/// Where an emptied array points: never read (its size is 0).
static EMPTY: [u64; 2] = [0; 2];

/// Cuts `array` (made by [`view`], or a view of it) off the memory it viewed: from
/// now on it is empty (every dimension 0) and read-only, so nothing reaches that
/// memory through it. A 0-d array cannot be emptied: it is pointed at a zeroed
/// element of its own (current) size, pushed onto `zeros`, which the caller keeps
/// alive as long as the array (the array's base owns it). Arrays made from it
/// before (slices, other views) are not reached: the caller checks there are none.
pub(crate) fn detach(array: &Bound<'_, PyUntypedArray>, zeros: &mut Vec<Box<[u64]>>) {
    let raw = array.as_array_ptr();
    let itemsize = array.dtype().itemsize();
    // SAFETY: `array` is alive (we hold a reference) and, with the GIL held, used by
    // no other thread now. Its `dimensions` hold `nd` entries. An array of size 0
    // never reads its data; a 0-d array reads one element of `itemsize` bytes, which
    // the zeroed buffer pushed onto `zeros` holds (rounded up to whole words), and
    // in-place changes of its dtype cannot make the element larger than its total
    // size. Clearing `WRITEABLE` keeps numpy from writing there (and, the base
    // exporting no buffer, from setting it again).
    unsafe {
        let fields = &mut (*raw).fields;
        if fields.nd > 0 {
            for i in 0..fields.nd as usize {
                *fields.dimensions.add(i) = 0;
            }
            // Away from the slot too: an empty array's data is never read.
            fields.data = EMPTY.as_ptr().cast_mut().cast();
        } else {
            let element = vec![0u64; itemsize.div_ceil(8).max(1)].into_boxed_slice();
            fields.data = element.as_ptr().cast_mut().cast();
            zeros.push(element);
        }
        fields.flags &= !flags::NPY_ARRAY_WRITEABLE;
    }
}

/// References to `array` (CPython's count).
pub(crate) fn references(array: &Bound<'_, PyUntypedArray>) -> isize {
    // SAFETY: a live object; reading its reference count with the GIL held.
    unsafe { pyo3::ffi::Py_REFCNT(array.as_ptr()) }
}

/// The lane dtype of a `dtype` argument and a shape, as a spec.
pub(crate) fn spec_of(
    py: Python<'_>,
    shape: &Bound<'_, PyAny>,
    dtype: &Bound<'_, PyAny>,
) -> PyResult<TensorSpec> {
    let dtype: DType = dtype::from_numpy(py, dtype)?;
    let shape: Vec<u64> = if let Ok(n) = shape.extract::<u64>() {
        vec![n]
    } else {
        shape.extract()?
    };
    TensorSpec::new(dtype, &shape).map_err(|e| raise(py, "InvalidArgument", e.to_string()))
}
