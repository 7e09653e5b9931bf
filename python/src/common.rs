//! Methods every handle class has (name, shape, dtype, metadata, closing, `with`),
//! written once. Each class has fields `info: LaneInfo` and `handle: Handle<_>`.

/// Adds the common methods to a handle class.
macro_rules! lane_common {
    ($class:ident) => {
        #[pyo3::pymethods]
        impl $class {
            /// The lane's name.
            #[getter]
            fn name(&self) -> &str {
                &self.info.name
            }

            /// Shape of the lane's tensor, as numpy gives shapes.
            #[getter]
            fn shape<'py>(
                &self,
                py: pyo3::Python<'py>,
            ) -> pyo3::PyResult<pyo3::Bound<'py, pyo3::types::PyTuple>> {
                self.info.shape_tuple(py)
            }

            /// dtype of the lane's tensor, as a `numpy.dtype`.
            #[getter]
            fn dtype<'py>(&self, py: pyo3::Python<'py>) -> pyo3::Bound<'py, numpy::PyArrayDescr> {
                self.info.dtype.bind(py).clone()
            }

            /// Bytes of one tensor.
            #[getter]
            fn nbytes(&self) -> usize {
                self.info.nbytes()
            }

            /// The lane's metadata (written at create), as a new dict.
            #[getter]
            fn metadata<'py>(
                &self,
                py: pyo3::Python<'py>,
            ) -> pyo3::PyResult<pyo3::Bound<'py, pyo3::types::PyDict>> {
                self.info.metadata_dict(py)
            }

            /// Gives the handle up (its role and mapping); later calls raise
            /// `ValueError`. Closing twice is allowed.
            fn close(&self, py: pyo3::Python<'_>) {
                self.handle.close(py)
            }

            fn __enter__(slf: pyo3::Py<Self>) -> pyo3::Py<Self> {
                slf
            }

            #[pyo3(signature = (*_args))]
            fn __exit__(
                &self,
                py: pyo3::Python<'_>,
                _args: &pyo3::Bound<'_, pyo3::types::PyTuple>,
            ) -> bool {
                self.handle.close(py);
                false
            }

            fn __repr__(&self, py: pyo3::Python<'_>) -> String {
                format!(
                    "{}(name={:?}, shape={}, dtype={})",
                    stringify!($class),
                    self.info.name,
                    self.info
                        .shape_tuple(py)
                        .map(|t| t.to_string())
                        .unwrap_or_default(),
                    self.info.dtype.bind(py)
                )
            }
        }
    };
}

pub(crate) use lane_common;
