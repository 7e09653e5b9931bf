//! Lane dtypes as numpy dtypes, both ways. Every dtype a lane carries has a numpy
//! dtype: `bfloat16` through the `ml_dtypes` package when it is installed (numpy has
//! none of its own). Byte order is the machine's (little-endian): a big-endian numpy
//! dtype is a different dtype, refused, never swapped.

use crate::errors::raise;
use numpy::PyArrayDescr;
use pyo3::prelude::*;
use tensorlane_shm::DType;

/// The numpy dtype of a lane dtype.
pub(crate) fn to_numpy<'py>(py: Python<'py>, dtype: DType) -> PyResult<Bound<'py, PyArrayDescr>> {
    let numpy = py.import("numpy")?;
    let descr = if dtype == DType::BF16 {
        let bfloat16 = py.import("ml_dtypes").map_err(|_| {
            raise(
                py,
                "WrongSpec",
                "this lane carries bfloat16, which numpy has only through the ml_dtypes \
                 package: pip install ml_dtypes"
                    .into(),
            )
        })?;
        numpy.call_method1("dtype", (bfloat16.getattr("bfloat16")?,))?
    } else {
        // The lanes' names are numpy's (`DType::name`).
        numpy.call_method1("dtype", (dtype.name(),))?
    };
    Ok(descr.cast_into::<PyArrayDescr>()?)
}

/// The lane dtype of anything `numpy.dtype` accepts (a dtype, a type, a name).
pub(crate) fn from_numpy(py: Python<'_>, dtype: &Bound<'_, PyAny>) -> PyResult<DType> {
    let descr = py.import("numpy")?.call_method1("dtype", (dtype,))?;
    let name: String = descr.getattr("name")?.extract()?;
    let order: String = descr.getattr("byteorder")?.extract()?;
    let found = DType::from_name(&name);
    match found {
        Some(d) if order != ">" => Ok(d),
        _ => Err(raise(
            py,
            "WrongSpec",
            format!(
                "a lane cannot carry numpy dtype {}: lanes carry {} (native byte order)",
                descr.repr()?,
                DType::ALL.map(DType::name).join(", ")
            ),
        )),
    }
}
