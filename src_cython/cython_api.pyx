"""fastsoftmax.cython_api: softmax, log_softmax and logsumexp of one contiguous row for other Cython modules,
callable without the GIL (the pattern of scipy.special.cython_special).

Declared in fastsoftmax/cython_api.pxd, which is the reference for the contract (contiguous, no overlap, nogil,
never raises), the nan/inf rules and the accuracy bounds; this docstring lists the functions:

    int   softmax_f32(const float *x, float *out, Py_ssize_t n)
    int   softmax_f64(const double *x, double *out, Py_ssize_t n)
    int   log_softmax_f32(const float *x, float *out, Py_ssize_t n)
    int   log_softmax_f64(const double *x, double *out, Py_ssize_t n)
    float  logsumexp_f32(const float *x, Py_ssize_t n)
    double logsumexp_f64(const double *x, Py_ssize_t n)
    int   softmax_temperature_f32 / _f64 and log_softmax_temperature_f32 / _f64(x, out, n, double temperature)

All are `noexcept nogil`. The int functions return 0 when done and -1 when they wrote nothing because n < 0 or the
temperature is not positive and finite; n == 0 is an empty row (0, nothing written). logsumexp returns the value:
-inf for an empty row, nan for n < 0. Accuracy against the exact result: softmax float32 <= 2 ULP, float64 <= 4 ULP;
log_softmax <= 4 ULP; logsumexp <= 2 ULP.

Usage, in a .pyx built with fastsoftmax.get_include() on cythonize's include_path:

    cimport fastsoftmax.cython_api as fs

    def log_probs(const double[::1] logits, double[::1] out):
        with nogil:
            fs.log_softmax_f64(&logits[0], &out[0], logits.shape[0])

Each function is one fs_rows call of the SIMD kernels (src_cython/simd/), on the calling thread: fastsoftmax's
thread pool lives in fastsoftmax._backends.cython_kernels and is not linked here. Extensions load RTLD_LOCAL, so
this module holds its own copy of the kernels and picks their SIMD path itself, at import; the cimport in the
calling module imports it before any call. The Python-level simd_path() says which path runs.
"""
from fs_kernels cimport FS_FLOAT32, FS_FLOAT64, FS_LOG_SOFTMAX, FS_LOGSUMEXP, FS_SOFTMAX, fs_init, fs_rows, fs_simd_path
from libc.math cimport INFINITY, NAN

fs_init()


def simd_path():
    """The SIMD path these kernels run ("avx512", "avx2_fma", "sse2", "neon" or "generic")."""
    return fs_simd_path().decode()


cdef inline int one_row(int dtype, int mode, const void *x, void *out, Py_ssize_t n, double temperature) noexcept nogil:
    # the same test as the Python API's check_temperature (0 < t < inf), which also refuses nan
    if n < 0 or not (0 < temperature < INFINITY):
        return -1
    if n > 0:  # the kernels take n >= 1
        fs_rows(dtype, mode, x, out, 1, n, temperature)
    return 0


cdef int softmax_f32(const float *x, float *out, Py_ssize_t n) noexcept nogil:
    return one_row(FS_FLOAT32, FS_SOFTMAX, x, out, n, 1.0)


cdef int softmax_f64(const double *x, double *out, Py_ssize_t n) noexcept nogil:
    return one_row(FS_FLOAT64, FS_SOFTMAX, x, out, n, 1.0)


cdef int log_softmax_f32(const float *x, float *out, Py_ssize_t n) noexcept nogil:
    return one_row(FS_FLOAT32, FS_LOG_SOFTMAX, x, out, n, 1.0)


cdef int log_softmax_f64(const double *x, double *out, Py_ssize_t n) noexcept nogil:
    return one_row(FS_FLOAT64, FS_LOG_SOFTMAX, x, out, n, 1.0)


cdef float logsumexp_f32(const float *x, Py_ssize_t n) noexcept nogil:
    cdef float value = NAN
    if n == 0:
        return -INFINITY  # log of an empty sum, as scipy.special.logsumexp([])
    one_row(FS_FLOAT32, FS_LOGSUMEXP, x, &value, n, 1.0)
    return value


cdef double logsumexp_f64(const double *x, Py_ssize_t n) noexcept nogil:
    cdef double value = NAN
    if n == 0:
        return -INFINITY
    one_row(FS_FLOAT64, FS_LOGSUMEXP, x, &value, n, 1.0)
    return value


cdef int softmax_temperature_f32(const float *x, float *out, Py_ssize_t n, double temperature) noexcept nogil:
    return one_row(FS_FLOAT32, FS_SOFTMAX, x, out, n, temperature)


cdef int softmax_temperature_f64(const double *x, double *out, Py_ssize_t n, double temperature) noexcept nogil:
    return one_row(FS_FLOAT64, FS_SOFTMAX, x, out, n, temperature)


cdef int log_softmax_temperature_f32(const float *x, float *out, Py_ssize_t n, double temperature) noexcept nogil:
    return one_row(FS_FLOAT32, FS_LOG_SOFTMAX, x, out, n, temperature)


cdef int log_softmax_temperature_f64(const double *x, double *out, Py_ssize_t n, double temperature) noexcept nogil:
    return one_row(FS_FLOAT64, FS_LOG_SOFTMAX, x, out, n, temperature)
