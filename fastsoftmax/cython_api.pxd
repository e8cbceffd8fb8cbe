# fastsoftmax.cython_api: the compiled kernels for other Cython modules, one contiguous row at a time, without the GIL.
#
#     cimport fastsoftmax.cython_api as fs          # or: from fastsoftmax cimport cython_api
#
#     def softmax_rows(const float[:, ::1] x, float[:, ::1] out):
#         cdef Py_ssize_t i
#         with nogil:
#             for i in range(x.shape[0]):
#                 fs.softmax_f32(&x[i, 0], &out[i, 0], x.shape[1])
#
# Build the calling module with this file on Cython's include path: an installed wheel is found through sys.path;
# an editable install is not, so pass cythonize(..., include_path=[fastsoftmax.get_include()]). At run time the
# cimport imports fastsoftmax.cython_api, which picks the SIMD path (AVX-512, AVX2+FMA, SSE2, NEON or portable
# vectors; FASTSOFTMAX_SIMD=avx2/baseline/generic caps it) once, at that import.
#
# Contract of every function:
# - x and out hold n contiguous elements and do not overlap (in place, out == x, is not supported).
# - No GIL needed, never raises, never touches Python objects or the floating-point environment; reentrant and
#   thread-safe, so it can run inside prange. One row runs on the calling thread (no thread pool).
# - Results are those of fastsoftmax.softmax / log_softmax / logsumexp(x, axis=-1) on the 1-D array, bit for bit
#   at one thread: the same kernels, dispatched the same way. nan and inf follow scipy.special:
#     softmax      a row with any nan, any +inf or only -inf -> all nan; -inf entries -> 0.
#     log_softmax  any nan -> all nan; max +inf -> nan at the +inf entries, -inf elsewhere; only -inf -> all nan;
#                  -inf entries -> -inf.
#     logsumexp    any nan -> nan; any +inf -> +inf; only -inf -> -inf.
# - Accuracy against the exact result, where it is a normal number (smaller results: absolute error below the
#   dtype's smallest normal): softmax float32 <= 2 ULP, float64 <= 4 ULP, row sum within 4 eps of 1;
#   log_softmax <= 4 ULP; logsumexp <= 2 ULP. Sums are double-double, at any n.
# - int results: 0 done; -1 nothing written, because n < 0 (or, for the *_temperature functions, temperature is not
#   positive and finite). n == 0 is an empty row: 0, nothing written (scipy's softmax of an empty row is empty).
# - logsumexp returns the value: -inf for n == 0 (scipy's logsumexp of an empty row), nan for n < 0.

cdef int softmax_f32(const float *x, float *out, Py_ssize_t n) noexcept nogil
cdef int softmax_f64(const double *x, double *out, Py_ssize_t n) noexcept nogil

cdef int log_softmax_f32(const float *x, float *out, Py_ssize_t n) noexcept nogil
cdef int log_softmax_f64(const double *x, double *out, Py_ssize_t n) noexcept nogil

cdef float logsumexp_f32(const float *x, Py_ssize_t n) noexcept nogil
cdef double logsumexp_f64(const double *x, Py_ssize_t n) noexcept nogil

# softmax(x / temperature) and log_softmax(x / temperature), without forming x / temperature (it cannot overflow);
# fastsoftmax.softmax(x, temperature=t). -1 unless 0 < temperature < inf. One limit, as in the Python API: where
# x - max itself overflows the dtype, log_softmax gives -inf even if the temperature would bring it back in range.
cdef int softmax_temperature_f32(const float *x, float *out, Py_ssize_t n, double temperature) noexcept nogil
cdef int softmax_temperature_f64(const double *x, double *out, Py_ssize_t n, double temperature) noexcept nogil
cdef int log_softmax_temperature_f32(const float *x, float *out, Py_ssize_t n, double temperature) noexcept nogil
cdef int log_softmax_temperature_f64(const double *x, double *out, Py_ssize_t n, double temperature) noexcept nogil
