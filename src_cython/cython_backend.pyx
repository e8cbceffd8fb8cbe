"""Cython backend: compiled softmax, log_softmax and logsumexp over the canonical (outer, n, inner) view.

Layers, bottom up:
1. C kernels (src_cython/simd/fs_kernels.c): one row, one block of columns, or one slice of a huge row, each
   within a few ULP; an AVX2+FMA build and a portable one, picked once at import by CPUID.
2. Fused-type shims (`cdef inline ... noexcept nogil`) that pick the float32 or float64 kernel.
3. Parallel drivers: a static `prange` over rows or column blocks. A row too long to leave the other threads
   idle is cut into one slice per thread; the slices' maxima and sums are merged serially in slice order, so
   results never depend on thread timing.
4. The Python front (`softmax`, `log_softmax`, `logsumexp`): arrays the package has already validated and made
   C-contiguous (fastsoftmax/_layout.py); the input is typed const, so read-only arrays work.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.stdlib cimport free, malloc

cdef extern from "fs_openmp.h":
    int fs_openmp_available() noexcept nogil
    int fs_openmp_max_threads() noexcept nogil

cdef extern from "fs_kernels.h" nogil:
    ctypedef struct fs_dd:
        double hi
        double lo
    void fs_init()
    const char *fs_simd_path()
    void fs_softmax_row_f32(const float *x, float *y, Py_ssize_t n)
    void fs_softmax_row_f64(const double *x, double *y, Py_ssize_t n)
    void fs_log_softmax_row_f32(const float *x, float *y, Py_ssize_t n)
    void fs_log_softmax_row_f64(const double *x, double *y, Py_ssize_t n)
    float fs_logsumexp_row_f32(const float *x, Py_ssize_t n)
    double fs_logsumexp_row_f64(const double *x, Py_ssize_t n)
    void fs_softmax_cols_f32(const float *x, float *y, Py_ssize_t n, Py_ssize_t inner)
    void fs_softmax_cols_f64(const double *x, double *y, Py_ssize_t n, Py_ssize_t inner)
    void fs_log_softmax_cols_f32(const float *x, float *y, Py_ssize_t n, Py_ssize_t inner)
    void fs_log_softmax_cols_f64(const double *x, double *y, Py_ssize_t n, Py_ssize_t inner)
    void fs_logsumexp_cols_f32(const float *x, float *y, Py_ssize_t n, Py_ssize_t inner)
    void fs_logsumexp_cols_f64(const double *x, double *y, Py_ssize_t n, Py_ssize_t inner)
    float fs_slice_max_f32(const float *x, Py_ssize_t n)
    double fs_slice_max_f64(const double *x, Py_ssize_t n)
    float fs_merge_max_f32(float a, float b)
    double fs_merge_max_f64(double a, double b)
    fs_dd fs_slice_sumexp_f32(const float *x, float *y, Py_ssize_t n, float max)
    fs_dd fs_slice_sumexp_f64(const double *x, double *y, Py_ssize_t n, double max)
    fs_dd fs_dd_add(fs_dd a, fs_dd b)
    double fs_log_sum(fs_dd s)
    void fs_slice_scale_f32(float *y, Py_ssize_t n, float max, fs_dd sum)
    void fs_slice_scale_f64(double *y, Py_ssize_t n, double max, fs_dd sum)
    void fs_slice_log_softmax_f32(const float *x, float *y, Py_ssize_t n, float max, double log_sum)
    void fs_slice_log_softmax_f64(const double *x, double *y, Py_ssize_t n, double max, double log_sum)
    float fs_lse_finish_f32(float max, fs_dd sum)
    double fs_lse_finish_f64(double max, fs_dd sum)

fs_init()

# A row is split across threads only when there are fewer rows than threads and each slice stays long enough
# (~64K elements, tens of microseconds) to pay for the extra parallel regions.
cdef Py_ssize_t SPLIT_ROW_MIN = 65536 * 2

cdef enum Kind:
    SOFTMAX = 0
    LOG_SOFTMAX = 1


def openmp_available():
    return bool(fs_openmp_available())


def openmp_max_threads():
    return fs_openmp_max_threads()


def cpu_info():
    """The SIMD path the kernels run (FASTSOFTMAX_SIMD=baseline forces the portable one)."""
    return {"simd_path": fs_simd_path().decode()}


# ---- 2. fused-type shims -------------------------------------------------------------------------------------------

cdef inline void row_kernel(const floating *x, floating *y, Py_ssize_t n, Kind kind) noexcept nogil:
    if floating is float:
        if kind == SOFTMAX:
            fs_softmax_row_f32(x, y, n)
        else:
            fs_log_softmax_row_f32(x, y, n)
    else:
        if kind == SOFTMAX:
            fs_softmax_row_f64(x, y, n)
        else:
            fs_log_softmax_row_f64(x, y, n)


cdef inline void cols_kernel(const floating *x, floating *y, Py_ssize_t n, Py_ssize_t inner,
                             Kind kind) noexcept nogil:
    if floating is float:
        if kind == SOFTMAX:
            fs_softmax_cols_f32(x, y, n, inner)
        else:
            fs_log_softmax_cols_f32(x, y, n, inner)
    else:
        if kind == SOFTMAX:
            fs_softmax_cols_f64(x, y, n, inner)
        else:
            fs_log_softmax_cols_f64(x, y, n, inner)


cdef inline floating slice_max(const floating *x, Py_ssize_t n) noexcept nogil:
    if floating is float:
        return fs_slice_max_f32(x, n)
    else:
        return fs_slice_max_f64(x, n)


cdef inline floating merge_max(floating a, floating b) noexcept nogil:
    if floating is float:
        return fs_merge_max_f32(a, b)
    else:
        return fs_merge_max_f64(a, b)


cdef inline fs_dd slice_sumexp(const floating *x, floating *y, Py_ssize_t n, floating m) noexcept nogil:
    if floating is float:
        return fs_slice_sumexp_f32(x, y, n, m)
    else:
        return fs_slice_sumexp_f64(x, y, n, m)


cdef inline void slice_finish(const floating *x, floating *y, Py_ssize_t n, floating m, fs_dd total,
                              Kind kind) noexcept nogil:
    if floating is float:
        if kind == SOFTMAX:
            fs_slice_scale_f32(y, n, m, total)
        else:
            fs_slice_log_softmax_f32(x, y, n, m, fs_log_sum(total))
    else:
        if kind == SOFTMAX:
            fs_slice_scale_f64(y, n, m, total)
        else:
            fs_slice_log_softmax_f64(x, y, n, m, fs_log_sum(total))


# ---- 3. parallel drivers ---------------------------------------------------------------------------------------------

cdef struct Reduction:
    double max      # the row's maximum, nan if the row holds a nan
    fs_dd total     # sum of exp(x - max)


cdef Reduction split_row(const floating *x, floating *y, Py_ssize_t n, int n_threads, bint store) noexcept nogil:
    """Max and sum of one row cut into n_threads slices; with `store`, y receives exp(x - max)."""
    cdef Py_ssize_t chunk = ((n + n_threads - 1) // n_threads + 15) // 16 * 16  # slices start on cache lines
    cdef Py_ssize_t t, start
    cdef floating *maxima = <floating *>malloc(n_threads * sizeof(floating))
    cdef fs_dd *totals = <fs_dd *>malloc(n_threads * sizeof(fs_dd))
    cdef floating m
    cdef Reduction r
    for t in prange(n_threads, schedule="static", num_threads=n_threads):
        start = t * chunk
        if start < n:
            maxima[t] = slice_max(x + start, min(chunk, n - start))
    m = maxima[0]
    for t in range(1, n_threads):
        if t * chunk < n:
            m = merge_max(m, maxima[t])
    for t in prange(n_threads, schedule="static", num_threads=n_threads):
        start = t * chunk
        if start < n:
            totals[t] = slice_sumexp(x + start, y + start if store else NULL, min(chunk, n - start), m)
    r.max = m
    r.total = totals[0]
    for t in range(1, n_threads):
        if t * chunk < n:
            r.total = fs_dd_add(r.total, totals[t])
    free(maxima)
    free(totals)
    return r


cdef void softmax_split_row(const floating *x, floating *y, Py_ssize_t n, Kind kind, int n_threads) noexcept nogil:
    cdef Reduction r = split_row(x, y, n, n_threads, kind == SOFTMAX)
    cdef Py_ssize_t chunk = ((n + n_threads - 1) // n_threads + 15) // 16 * 16
    cdef Py_ssize_t t, start
    for t in prange(n_threads, schedule="static", num_threads=n_threads):
        start = t * chunk
        if start < n:
            slice_finish(x + start, y + start, min(chunk, n - start), <floating>r.max, r.total, kind)


cdef void softmax_lines(const floating[:, :, ::1] x, floating[:, :, ::1] y, Kind kind, int n_threads) noexcept nogil:
    cdef Py_ssize_t outer = x.shape[0], n = x.shape[1], inner = x.shape[2], o
    cdef const floating *xs = &x[0, 0, 0]
    cdef floating *ys = &y[0, 0, 0]
    if inner > 1:
        for o in prange(outer, schedule="static", num_threads=n_threads):
            cols_kernel(xs + o * n * inner, ys + o * n * inner, n, inner, kind)
    elif outer < n_threads and n >= SPLIT_ROW_MIN:
        for o in range(outer):
            softmax_split_row(xs + o * n, ys + o * n, n, kind, n_threads)
    else:
        for o in prange(outer, schedule="static", num_threads=n_threads):
            row_kernel(xs + o * n, ys + o * n, n, kind)


cdef void logsumexp_lines(const floating[:, :, ::1] x, floating[:, ::1] y, int n_threads) noexcept nogil:
    cdef Py_ssize_t outer = x.shape[0], n = x.shape[1], inner = x.shape[2], o
    cdef const floating *xs = &x[0, 0, 0]
    cdef floating *ys = &y[0, 0]
    cdef Reduction r
    if inner > 1:
        for o in prange(outer, schedule="static", num_threads=n_threads):
            if floating is float:
                fs_logsumexp_cols_f32(xs + o * n * inner, ys + o * inner, n, inner)
            else:
                fs_logsumexp_cols_f64(xs + o * n * inner, ys + o * inner, n, inner)
    elif outer < n_threads and n >= SPLIT_ROW_MIN:
        for o in range(outer):
            r = split_row(xs + o * n, <floating *>NULL, n, n_threads, False)
            if floating is float:
                ys[o] = fs_lse_finish_f32(<float>r.max, r.total)
            else:
                ys[o] = fs_lse_finish_f64(r.max, r.total)
    else:
        for o in prange(outer, schedule="static", num_threads=n_threads):
            if floating is float:
                ys[o] = fs_logsumexp_row_f32(xs + o * n, n)
            else:
                ys[o] = fs_logsumexp_row_f64(xs + o * n, n)


# ---- 4. Python front -------------------------------------------------------------------------------------------------

def softmax(x, out, int n_threads):
    """softmax over axis 1 of C-contiguous float32/float64 (outer, n, inner) arrays; n >= 1, outer * inner >= 1."""
    if x.itemsize == 4:
        softmax_lines[float](x, out, SOFTMAX, n_threads)
    else:
        softmax_lines[double](x, out, SOFTMAX, n_threads)


def log_softmax(x, out, int n_threads):
    if x.itemsize == 4:
        softmax_lines[float](x, out, LOG_SOFTMAX, n_threads)
    else:
        softmax_lines[double](x, out, LOG_SOFTMAX, n_threads)


def logsumexp(x, out, int n_threads):
    """logsumexp over axis 1 of (outer, n, inner) into out of shape (outer, inner)."""
    if x.itemsize == 4:
        logsumexp_lines[float](x, out, n_threads)
    else:
        logsumexp_lines[double](x, out, n_threads)
