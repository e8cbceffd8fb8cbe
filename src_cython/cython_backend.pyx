"""Cython backend: compiled softmax, log_softmax and logsumexp over the canonical (outer, n, inner) view.

Layers, bottom up:
1. C kernels (src_cython/simd/fs_kernels.c): one row, one block of columns, or one slice of a huge row, each
   within a few ULP; an AVX2+FMA build and a portable one, picked once at import by CPUID.
2. Fused-type shims (`cdef inline ... noexcept nogil`) that pick the float32 or float64 kernel.
3. Parallel drivers: a static `prange` over rows, or over column ranges. A row too long to leave the other
   threads idle is cut into one slice per thread and read twice: a pass that finds each slice's max and sum
   at once, then a writing pass; the slices' maxima and sums merge serially in slice order, so results never
   depend on thread timing.
4. The Python front (`softmax`, `log_softmax`, `logsumexp`): arrays the package has already validated and made
   C-contiguous (fastsoftmax/_layout.py); the input is typed const, so read-only arrays work.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport INFINITY
from libc.stdlib cimport free, malloc

from fs_kernels cimport (
    fs_dd, fs_init, fs_simd_path, fs_cpu_features, fs_softmax_row_f32, fs_softmax_row_f64, fs_log_softmax_row_f32,
    fs_log_softmax_row_f64, fs_logsumexp_row_f32, fs_logsumexp_row_f64, fs_softmax_cols_f32, fs_softmax_cols_f64,
    fs_log_softmax_cols_f32, fs_log_softmax_cols_f64, fs_logsumexp_cols_f32, fs_logsumexp_cols_f64,
    fs_slice_max_sumexp_f32, fs_slice_max_sumexp_f64, fs_merge_slices, fs_log_sum, fs_slice_exp_scale_f32,
    fs_slice_exp_scale_f64, fs_slice_log_softmax_f32, fs_slice_log_softmax_f64, fs_lse_finish_f32,
    fs_lse_finish_f64,
)

cdef extern from "fs_openmp.h":
    int fs_openmp_available() noexcept nogil
    int fs_openmp_max_threads() noexcept nogil


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
    return {"simd_path": fs_simd_path().decode(), "cpu_features": fs_cpu_features().decode().split()}


# ---- 2. fused-type shims -------------------------------------------------------------------------------------------

cdef inline void row_kernel(const floating *x, floating *y, Py_ssize_t n, Kind kind, double t) noexcept nogil:
    if floating is float:
        if kind == SOFTMAX:
            fs_softmax_row_f32(x, y, n, t)
        else:
            fs_log_softmax_row_f32(x, y, n, t)
    else:
        if kind == SOFTMAX:
            fs_softmax_row_f64(x, y, n, t)
        else:
            fs_log_softmax_row_f64(x, y, n, t)


cdef inline void cols_kernel(const floating *x, floating *y, Py_ssize_t n, Py_ssize_t width, Py_ssize_t ld,
                             Kind kind, double t) noexcept nogil:
    if floating is float:
        if kind == SOFTMAX:
            fs_softmax_cols_f32(x, y, n, width, ld, t)
        else:
            fs_log_softmax_cols_f32(x, y, n, width, ld, t)
    else:
        if kind == SOFTMAX:
            fs_softmax_cols_f64(x, y, n, width, ld, t)
        else:
            fs_log_softmax_cols_f64(x, y, n, width, ld, t)


cdef inline floating logsumexp_row(const floating *x, Py_ssize_t n) noexcept nogil:
    if floating is float:
        return fs_logsumexp_row_f32(x, n)
    else:
        return fs_logsumexp_row_f64(x, n)


cdef inline void logsumexp_cols(const floating *x, floating *y, Py_ssize_t n, Py_ssize_t width,
                                Py_ssize_t ld) noexcept nogil:
    if floating is float:
        fs_logsumexp_cols_f32(x, y, n, width, ld)
    else:
        fs_logsumexp_cols_f64(x, y, n, width, ld)


cdef inline fs_dd slice_max_sumexp(const floating *x, Py_ssize_t n, double t, double *max_out) noexcept nogil:
    cdef float m32
    cdef fs_dd s
    if floating is float:
        s = fs_slice_max_sumexp_f32(x, n, t, &m32)
        max_out[0] = m32
        return s
    else:
        return fs_slice_max_sumexp_f64(x, n, t, max_out)


cdef inline void slice_finish(const floating *x, floating *y, Py_ssize_t n, double m, fs_dd total,
                              Kind kind, double t) noexcept nogil:
    cdef double log_total = 0.0 if m == INFINITY else fs_log_sum(total)  # +inf: scipy's x - inf - 0
    if floating is float:
        if kind == SOFTMAX:
            fs_slice_exp_scale_f32(x, y, n, <float>m, total, t)
        else:
            fs_slice_log_softmax_f32(x, y, n, <float>m, log_total, t)
    else:
        if kind == SOFTMAX:
            fs_slice_exp_scale_f64(x, y, n, m, total, t)
        else:
            fs_slice_log_softmax_f64(x, y, n, m, log_total, t)


# ---- 3. parallel drivers ---------------------------------------------------------------------------------------------

cdef inline Py_ssize_t slice_length(Py_ssize_t n, int parts) noexcept nogil:
    """Length of each of `parts` slices of n elements, rounded up to whole 64-byte lines of float32."""
    return ((n + parts - 1) // parts + 15) // 16 * 16


cdef double split_row(const floating *x, Py_ssize_t n, int n_threads, double t, fs_dd *total) noexcept nogil:
    """The max and (into total) the sum of exp(x - max) of one row, one slice per thread, one pass over x."""
    cdef Py_ssize_t chunk = slice_length(n, n_threads)
    cdef Py_ssize_t k, start
    cdef int parts = <int>((n + chunk - 1) // chunk)
    cdef double *maxima = <double *>malloc(parts * sizeof(double))
    cdef fs_dd *totals = <fs_dd *>malloc(parts * sizeof(fs_dd))
    cdef double m
    for k in prange(parts, schedule="static", num_threads=n_threads):
        start = k * chunk
        totals[k] = slice_max_sumexp(x + start, min(chunk, n - start), t, &maxima[k])
    m = fs_merge_slices(maxima, totals, parts, t, total)
    free(maxima)
    free(totals)
    return m


cdef void softmax_split_row(const floating *x, floating *y, Py_ssize_t n, Kind kind, double t,
                            int n_threads) noexcept nogil:
    """A row too long to leave threads idle: a reduction pass and a writing pass, both split into slices."""
    cdef fs_dd total
    cdef double m = split_row(x, n, n_threads, t, &total)
    cdef Py_ssize_t chunk = slice_length(n, n_threads)
    cdef Py_ssize_t k, start
    for k in prange((n + chunk - 1) // chunk, schedule="static", num_threads=n_threads):
        start = k * chunk
        slice_finish(x + start, y + start, min(chunk, n - start), m, total, kind, t)


cdef inline Py_ssize_t column_width(Py_ssize_t outer, Py_ssize_t inner, int n_threads) noexcept nogil:
    """Columns per task: all of a block when blocks keep the threads busy, else a share of each block."""
    return inner if outer >= n_threads else slice_length(inner, n_threads)


cdef void softmax_lines(const floating[:, :, ::1] x, floating[:, :, ::1] y, Kind kind, double t,
                        int n_threads) noexcept nogil:
    cdef Py_ssize_t outer = x.shape[0], n = x.shape[1], inner = x.shape[2], o, task, j0, width, parts
    cdef const floating *xs = &x[0, 0, 0]
    cdef floating *ys = &y[0, 0, 0]
    if inner > 1:
        width = column_width(outer, inner, n_threads)
        parts = (inner + width - 1) // width
        if n_threads == 1:
            for o in range(outer):
                cols_kernel(xs + o * n * inner, ys + o * n * inner, n, inner, inner, kind, t)
        else:
            for task in prange(outer * parts, schedule="static", num_threads=n_threads):
                o = task // parts
                j0 = (task - o * parts) * width
                cols_kernel(xs + o * n * inner + j0, ys + o * n * inner + j0, n, min(width, inner - j0), inner,
                            kind, t)
    elif outer < n_threads and n >= SPLIT_ROW_MIN:
        for o in range(outer):
            softmax_split_row(xs + o * n, ys + o * n, n, kind, t, n_threads)
    elif n_threads == 1:  # small inputs: entering even a one-thread parallel region costs a measurable share
        for o in range(outer):
            row_kernel(xs + o * n, ys + o * n, n, kind, t)
    else:
        for o in prange(outer, schedule="static", num_threads=n_threads):
            row_kernel(xs + o * n, ys + o * n, n, kind, t)


cdef void logsumexp_lines(const floating[:, :, ::1] x, floating[:, ::1] y, int n_threads) noexcept nogil:
    cdef Py_ssize_t outer = x.shape[0], n = x.shape[1], inner = x.shape[2], o, task, j0, width, parts
    cdef const floating *xs = &x[0, 0, 0]
    cdef floating *ys = &y[0, 0]
    cdef fs_dd total
    cdef double m
    if inner > 1:
        width = column_width(outer, inner, n_threads)
        parts = (inner + width - 1) // width
        if n_threads == 1:
            for o in range(outer):
                logsumexp_cols(xs + o * n * inner, ys + o * inner, n, inner, inner)
        else:
            for task in prange(outer * parts, schedule="static", num_threads=n_threads):
                o = task // parts
                j0 = (task - o * parts) * width
                logsumexp_cols(xs + o * n * inner + j0, ys + o * inner + j0, n, min(width, inner - j0), inner)
    elif outer < n_threads and n >= SPLIT_ROW_MIN:
        for o in range(outer):
            m = split_row(xs + o * n, n, n_threads, 1.0, &total)
            if floating is float:
                ys[o] = fs_lse_finish_f32(<float>m, total)
            else:
                ys[o] = fs_lse_finish_f64(m, total)
    elif n_threads == 1:
        for o in range(outer):
            ys[o] = logsumexp_row(xs + o * n, n)
    else:
        for o in prange(outer, schedule="static", num_threads=n_threads):
            ys[o] = logsumexp_row(xs + o * n, n)


# ---- 4. Python front -------------------------------------------------------------------------------------------------

def softmax(x, out, int n_threads, double temperature=1.0):
    """softmax(x / temperature) over axis 1 of C-contiguous float32/float64 (outer, n, inner) arrays; n >= 1,
    outer * inner >= 1. The division happens inside the kernels: no x / temperature array, no overflow."""
    if x.itemsize == 4:
        softmax_lines[float](x, out, SOFTMAX, temperature, n_threads)
    else:
        softmax_lines[double](x, out, SOFTMAX, temperature, n_threads)


def log_softmax(x, out, int n_threads, double temperature=1.0):
    if x.itemsize == 4:
        softmax_lines[float](x, out, LOG_SOFTMAX, temperature, n_threads)
    else:
        softmax_lines[double](x, out, LOG_SOFTMAX, temperature, n_threads)


def logsumexp(x, out, int n_threads):
    """logsumexp over axis 1 of (outer, n, inner) into out of shape (outer, inner)."""
    if x.itemsize == 4:
        logsumexp_lines[float](x, out, n_threads)
    else:
        logsumexp_lines[double](x, out, n_threads)


# ---- 5. pieces for callers that hold a line in several chunks (fastsoftmax/_dask.py) --------------------------------

cdef void rows_stats(const floating[:, :] x, double[::1] maxima, double[::1] log_sums,
                     int n_threads) noexcept nogil:
    cdef Py_ssize_t r, n = x.shape[1]
    cdef fs_dd total
    for r in prange(x.shape[0], schedule="static", num_threads=n_threads):
        total = slice_max_sumexp(&x[r, 0], n, 1.0, &maxima[r])
        log_sums[r] = fs_log_sum(total)


cdef void rows_finish(const floating[:, :] x, floating[:, :] y, const double[::1] maxima,
                      const double[::1] sum_hi, const double[::1] sum_lo, Kind kind, int n_threads) noexcept nogil:
    cdef Py_ssize_t r, n = x.shape[1]
    cdef fs_dd total
    for r in prange(x.shape[0], schedule="static", num_threads=n_threads):
        total.hi = sum_hi[r]
        total.lo = sum_lo[r]
        slice_finish(&x[r, 0], &y[r, 0], n, maxima[r], total, kind, 1.0)


def row_stats(x, maxima, log_sums, int n_threads):
    """Per row of a (rows, n) float32/float64 array whose rows are contiguous (any row stride): the max (nan if
    the row holds one, +inf, or -inf for an all -inf row) into maxima, and log(sum(exp(x - max))) into log_sums,
    both float64 (rows,). One pass over x. n >= 1."""
    _check_rows_contiguous(x)
    if x.itemsize == 4:
        rows_stats[float](x, maxima, log_sums, n_threads)
    else:
        rows_stats[double](x, maxima, log_sums, n_threads)


def row_finish(x, out, maxima, sum_hi, sum_lo, bint log, int n_threads):
    """Rows of a line's chunk, normalised by the whole line's max and sum (sum_hi + sum_lo, the sum of exp(x - max)
    over the line): softmax exp(x - max) / sum, or log_softmax (x - max) - log(sum), with scipy's rules where the
    max is not finite. x and out: (rows, n), rows contiguous; the rest float64 (rows,)."""
    _check_rows_contiguous(x)
    _check_rows_contiguous(out)
    if x.itemsize == 4:
        rows_finish[float](x, out, maxima, sum_hi, sum_lo, LOG_SOFTMAX if log else SOFTMAX, n_threads)
    else:
        rows_finish[double](x, out, maxima, sum_hi, sum_lo, LOG_SOFTMAX if log else SOFTMAX, n_threads)


def _check_rows_contiguous(a):
    if a.ndim != 2 or a.shape[1] < 1 or (a.shape[1] > 1 and a.strides[1] != a.itemsize):
        raise ValueError("expected a (rows, n) array with n >= 1 and contiguous rows")
