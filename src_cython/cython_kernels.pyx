"""Cython backend: compiled softmax, log_softmax and logsumexp over the canonical (outer, n, inner) view.

Layers, bottom up:
1. SIMD kernels (src_cython/simd/): one row, one block of columns, or one slice of a huge row, each within a few
   ULP; AVX-512, AVX2+FMA and SSE2 builds, one picked at import by CPUID.
2. Drivers (src_cython/parallel/fs_lines.c): a whole array cut into tasks by its shape, run on fastsoftmax's own
   thread pool (src_cython/parallel/fs_pool.c), where the calling thread does the work and other threads only help
   when they are running; results never depend on which thread ran what.
3. This module: arrays the package has already validated and made C-contiguous (fastsoftmax/_layout.py) handed to
   the drivers with the GIL released; the input is typed const, so read-only arrays work.
4. The shortcut of the public functions (fast_softmax, fast_logsumexp): the common call (a float32/float64 ndarray
   in C order, an int axis or None) checked, laid out and dispatched here in C; anything else returns
   NotImplemented and takes the general path (fastsoftmax/_compute.py), which computes the same bits.
"""
from cpython.pycapsule cimport PyCapsule_New
from cython cimport floating
cimport numpy as cnp

import numpy as np

from fs_kernels cimport fs_init, fs_simd_path, fs_cpu_features

cdef extern from "fs_lines.h" nogil:
    enum:
        FS_SOFTMAX
        FS_LOG_SOFTMAX
        FS_LOGSUMEXP
        FS_FLOAT32
        FS_FLOAT64
    void fs_lines(int func, int dtype, const void *x, void *y, Py_ssize_t outer, Py_ssize_t n, Py_ssize_t inner,
                  double temperature, int n_threads, int out_is_new)
    void fs_rows_stats(int dtype, const void *x, Py_ssize_t rows, Py_ssize_t n, Py_ssize_t ld, double *maxima,
                       double *log_sums, int n_threads)
    void fs_rows_finish(int func, int dtype, const void *x, Py_ssize_t ldx, void *y, Py_ssize_t ldy,
                        Py_ssize_t rows, Py_ssize_t n, const double *maxima, const double *sum_hi,
                        const double *sum_lo, int n_threads)
    void fs_lines_set_sizes(Py_ssize_t task_min, Py_ssize_t task_max, Py_ssize_t split_row_min, Py_ssize_t slice,
                            Py_ssize_t column_tile, Py_ssize_t stream_bytes)

cdef extern from "fs_pool.h" nogil:
    ctypedef void (*fs_task_fn)(void *ctx, Py_ssize_t task) noexcept nogil
    void fs_pool_run(fs_task_fn fn, void *ctx, Py_ssize_t n_tasks, int n_threads)
    int fs_pool_helpers()
    long long fs_pool_solo_runs()
    long long fs_pool_helped_runs()
    int fs_pool_spin_us()
    void fs_pool_set_spin_us(int us)


fs_init()


def cpu_info():
    """The SIMD path the kernels run (FASTSOFTMAX_SIMD=avx2 or =baseline caps it) and the CPU features seen."""
    return {"simd_path": fs_simd_path().decode(), "cpu_features": fs_cpu_features().decode().split()}


def pool_info():
    """The thread pool: helper threads started in this process (0 in a fresh fork child until its first parallel
    call), parallel runs the caller finished alone and runs where helpers did some tasks, and the helpers' idle
    spin."""
    return {"helpers": fs_pool_helpers(), "solo_runs": fs_pool_solo_runs(), "helped_runs": fs_pool_helped_runs(),
            "spin_us": fs_pool_spin_us()}


def _set_task_sizes(task_min=0, task_max=0, split_row_min=0, slice=0, column_tile=0, stream_bytes=0):
    """Tests only: cut arrays into tiny tasks, split short rows and stream small outputs, so that small inputs reach
    every parallel path of the drivers (0 restores a default)."""
    fs_lines_set_sizes(task_min, task_max, split_row_min, slice, column_tile, stream_bytes)


def _run_tasks(Py_ssize_t fn_address, Py_ssize_t ctx_address, Py_ssize_t n_tasks, int n_threads):
    """Run fn(ctx, 0) ... fn(ctx, n_tasks - 1) on the pool, the GIL released; fn is the address of a C function
    void(void *ctx, ptrdiff_t task) that never touches Python (the numba backend's compiled tasks)."""
    with nogil:
        fs_pool_run(<fs_task_fn>fn_address, <void *>ctx_address, n_tasks, n_threads)


def set_spin_us(int us):
    """How long idle helpers poll for the next call before sleeping (microseconds); returns the previous value."""
    previous = fs_pool_spin_us()
    fs_pool_set_spin_us(us)
    return previous


def _pool_run_capsule():
    """fs_pool_run for the other compiled modules of the package (fastsoftmax._backends.cython_training): one pool per
    process."""
    return PyCapsule_New(<void *>fs_pool_run, "fs_pool_run", NULL)


cdef void lines(int func, const floating[:, :, ::1] x, floating[:, :, ::1] y, double t, int n_threads,
                bint out_is_new) noexcept:
    cdef int dtype = FS_FLOAT32 if floating is float else FS_FLOAT64
    with nogil:
        fs_lines(func, dtype, &x[0, 0, 0], &y[0, 0, 0], x.shape[0], x.shape[1], x.shape[2], t, n_threads,
                 out_is_new)


cdef void lse_lines(const floating[:, :, ::1] x, floating[:, ::1] y, int n_threads) noexcept:
    cdef int dtype = FS_FLOAT32 if floating is float else FS_FLOAT64
    with nogil:
        fs_lines(FS_LOGSUMEXP, dtype, &x[0, 0, 0], &y[0, 0], x.shape[0], x.shape[1], x.shape[2], 1.0, n_threads, 1)


def softmax(x, out, int n_threads, double temperature=1.0, bint out_is_new=True):
    """softmax(x / temperature) over axis 1 of C-contiguous float32/float64 (outer, n, inner) arrays; n >= 1,
    outer * inner >= 1. The division happens inside the kernels: no x / temperature array, no overflow.
    out_is_new=False (the caller's out=): large outputs are streamed past the caches."""
    if x.itemsize == 4:
        lines[float](FS_SOFTMAX, x, out, temperature, n_threads, out_is_new)
    else:
        lines[double](FS_SOFTMAX, x, out, temperature, n_threads, out_is_new)


def log_softmax(x, out, int n_threads, double temperature=1.0, bint out_is_new=True):
    if x.itemsize == 4:
        lines[float](FS_LOG_SOFTMAX, x, out, temperature, n_threads, out_is_new)
    else:
        lines[double](FS_LOG_SOFTMAX, x, out, temperature, n_threads, out_is_new)


def logsumexp(x, out, int n_threads):
    """logsumexp over axis 1 of (outer, n, inner) into out of shape (outer, inner)."""
    if x.itemsize == 4:
        lse_lines[float](x, out, n_threads)
    else:
        lse_lines[double](x, out, n_threads)


# ---- pieces for callers that hold a line in several chunks (fastsoftmax/_dask.py) --------------------------------

cdef void stats_rows(const floating[:, :] x, double[::1] maxima, double[::1] log_sums, int n_threads) noexcept:
    cdef int dtype = FS_FLOAT32 if floating is float else FS_FLOAT64
    cdef Py_ssize_t ld = x.strides[0] // sizeof(floating)
    with nogil:
        fs_rows_stats(dtype, &x[0, 0], x.shape[0], x.shape[1], ld, &maxima[0], &log_sums[0], n_threads)


cdef void finish_rows(const floating[:, :] x, floating[:, :] y, const double[::1] maxima, const double[::1] sum_hi,
                      const double[::1] sum_lo, int func, int n_threads) noexcept:
    cdef int dtype = FS_FLOAT32 if floating is float else FS_FLOAT64
    cdef Py_ssize_t ldx = x.strides[0] // sizeof(floating), ldy = y.strides[0] // sizeof(floating)
    with nogil:
        fs_rows_finish(func, dtype, &x[0, 0], ldx, &y[0, 0], ldy, x.shape[0], x.shape[1], &maxima[0], &sum_hi[0],
                       &sum_lo[0], n_threads)


def row_stats(x, maxima, log_sums, int n_threads):
    """Per row of a (rows, n) float32/float64 array whose rows are contiguous (any row stride): the max (nan if
    the row holds one, +inf, or -inf for an all -inf row) into maxima, and log(sum(exp(x - max))) into log_sums,
    both float64 (rows,). One pass over x. n >= 1."""
    _check_rows(x)
    if x.shape[0] == 0:
        return
    if x.itemsize == 4:
        stats_rows[float](x, maxima, log_sums, n_threads)
    else:
        stats_rows[double](x, maxima, log_sums, n_threads)


def row_finish(x, out, maxima, sum_hi, sum_lo, bint log, int n_threads):
    """Rows of a line's chunk, normalised by the whole line's max and sum (sum_hi + sum_lo, the sum of exp(x - max)
    over the line): softmax exp(x - max) / sum, or log_softmax (x - max) - log(sum), with scipy's rules where the
    max is not finite. x and out: (rows, n), rows contiguous; the rest float64 (rows,)."""
    _check_rows(x)
    _check_rows(out)
    if x.shape[0] == 0:
        return
    func = FS_LOG_SOFTMAX if log else FS_SOFTMAX
    if x.itemsize == 4:
        finish_rows[float](x, out, maxima, sum_hi, sum_lo, func, n_threads)
    else:
        finish_rows[double](x, out, maxima, sum_hi, sum_lo, func, n_threads)


def _check_rows(a):
    if (a.ndim != 2 or a.shape[1] < 1 or (a.shape[1] > 1 and a.strides[1] != a.itemsize)
            or (a.shape[0] > 1 and a.strides[0] % a.itemsize)):
        raise ValueError("expected a (rows, n) array with n >= 1 and contiguous rows")


# ---- 4. the shortcut of the public functions ---------------------------------------------------------------------

cnp.import_array()

cdef extern from *:
    """
    /* The calling thread is inside fastsoftmax._threads.single_threaded() (a dask task: its caller parallelises). */
    static _Thread_local int fs_serial_here = 0;
    """
    int fs_serial_here

# Set by configure_shortcut() (fastsoftmax/_dispatch.py reads its rules and the thread count and pushes them here).
cdef bint shortcut_on = False
cdef Py_ssize_t serial_below = 32768
cdef int n_threads_now = 1
# per (function, columns?, dtype): the sizes [from, below) the rules send to this backend
cdef Py_ssize_t cython_from[3][2][2]
cdef Py_ssize_t cython_below[3][2][2]


def configure_shortcut(bint enabled, Py_ssize_t serial, int n_threads, ranges):
    """enabled: no backend is forced by FASTSOFTMAX_BACKEND (or it is cython); serial: fastsoftmax._dispatch's
    SERIAL_BELOW; n_threads: the thread count in force; ranges: {(func code, columns, dtype code): (from, below)}
    of the sizes the dispatch rules give to cython (absent: none)."""
    global shortcut_on, serial_below, n_threads_now
    cdef int f, k, d
    for f in range(3):
        for k in range(2):
            for d in range(2):
                cython_from[f][k][d], cython_below[f][k][d] = ranges.get((f, k, d), (0, 0))
    serial_below, n_threads_now, shortcut_on = serial, max(1, n_threads), enabled


def set_threads(int n_threads):
    """The thread count in force changed (set_num_threads, threadpoolctl)."""
    global n_threads_now
    n_threads_now = max(1, n_threads)


def set_serial_here(bint serial):
    """This thread enters (True) or leaves (False) fastsoftmax._threads.single_threaded()."""
    global fs_serial_here
    fs_serial_here = serial


cdef inline int threads_for(Py_ssize_t size) noexcept:
    return 1 if size < serial_below or fs_serial_here else n_threads_now


def _threads_for(Py_ssize_t size):
    """Tests only: the threads the shortcut gives a call of `size` elements on this Python thread."""
    return threads_for(size)


cdef inline bint routed_here(int func, bint columns, int dtype, Py_ssize_t size) noexcept:
    return cython_from[func][columns][dtype] <= size < cython_below[func][columns][dtype]


cdef int plain_c_input(object x, int *dtype) except -2:
    """1 when x is a native float32/float64 ndarray (not a subclass) in C order with at least one dimension and one
    element, its dtype code in *dtype; else 0."""
    cdef cnp.ndarray a
    if type(x) is not np.ndarray:
        return 0
    a = <cnp.ndarray>x
    if cnp.PyArray_NDIM(a) == 0 or cnp.PyArray_SIZE(a) == 0 or not cnp.PyArray_ISCARRAY_RO(a):
        return 0
    if cnp.PyArray_ISBYTESWAPPED(a):
        return 0
    if cnp.PyArray_TYPE(a) == cnp.NPY_FLOAT32:
        dtype[0] = FS_FLOAT32
    elif cnp.PyArray_TYPE(a) == cnp.NPY_FLOAT64:
        dtype[0] = FS_FLOAT64
    else:
        return 0
    return 1


cdef int split_axis(cnp.ndarray a, object axis, Py_ssize_t *outer, Py_ssize_t *n, Py_ssize_t *inner,
                    int *axis_out) except -2:
    """The (outer, n, inner) view of C-ordered a reduced over axis (None or an int in range); 0 when axis is anything
    else (the general path raises or handles it)."""
    cdef int ndim = cnp.PyArray_NDIM(a), k, i
    cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(a)
    if axis is None:
        outer[0], n[0], inner[0], axis_out[0] = 1, cnp.PyArray_SIZE(a), 1, -1
        return 1
    if type(axis) is not int:
        return 0
    k = axis
    if k < 0:
        k += ndim
    if k < 0 or k >= ndim:
        return 0
    outer[0], n[0], inner[0], axis_out[0] = 1, dims[k], 1, k
    for i in range(k):
        outer[0] *= dims[i]
    for i in range(k + 1, ndim):
        inner[0] *= dims[i]
    return 1


def fast_softmax(int func, x, axis, out, temperature):
    """softmax (func 0) or log_softmax (1) of the common call, or NotImplemented (see layer 4 above)."""
    cdef int dtype, axis_k, threads
    cdef Py_ssize_t outer, n, inner, size
    cdef double t
    cdef cnp.ndarray a, y
    cdef char *x0
    cdef char *y0
    cdef char *x1
    cdef char *y1
    if not shortcut_on or not plain_c_input(x, &dtype):
        return NotImplemented
    a = <cnp.ndarray>x
    if not split_axis(a, axis, &outer, &n, &inner, &axis_k):
        return NotImplemented
    size = cnp.PyArray_SIZE(a)
    if not routed_here(func, inner > 1, dtype, size):
        return NotImplemented
    if type(temperature) is float or type(temperature) is int:
        t = temperature
        if not (0.0 < t < float("inf")):
            return NotImplemented       # the general path names the problem
    else:
        return NotImplemented
    if out is None:
        y = cnp.PyArray_EMPTY(cnp.PyArray_NDIM(a), cnp.PyArray_DIMS(a), cnp.PyArray_TYPE(a), 0)
    else:
        if type(out) is not np.ndarray:
            return NotImplemented
        y = <cnp.ndarray>out
        if (cnp.PyArray_TYPE(y) != cnp.PyArray_TYPE(a) or not cnp.PyArray_ISCARRAY(y) or cnp.PyArray_ISBYTESWAPPED(y)
                or not cnp.PyArray_SAMESHAPE(a, y)):
            return NotImplemented
        x0, y0 = <char *>cnp.PyArray_DATA(a), <char *>cnp.PyArray_DATA(y)
        x1, y1 = x0 + cnp.PyArray_NBYTES(a), y0 + cnp.PyArray_NBYTES(y)
        if x0 < y1 and y0 < x1:         # overlapping memory: computed aside by the general path
            return NotImplemented
    threads = threads_for(size)
    if size < 4096:                     # releasing the GIL costs more than it frees for a call this short
        fs_lines(func, dtype, cnp.PyArray_DATA(a), cnp.PyArray_DATA(y), outer, n, inner, t, threads, out is None)
    else:
        x0, y0 = <char *>cnp.PyArray_DATA(a), <char *>cnp.PyArray_DATA(y)
        with nogil:
            fs_lines(func, dtype, x0, y0, outer, n, inner, t, threads, out is None)
    return y


def fast_logsumexp(x, axis, bint keepdims):
    """logsumexp of the common call (no weights, no sign), or NotImplemented."""
    cdef int dtype, axis_k, ndim, i, j, threads
    cdef Py_ssize_t outer, n, inner, size
    cdef cnp.npy_intp dims[32]
    cdef cnp.ndarray a, y
    cdef char *x0
    cdef char *y0
    if not shortcut_on or not plain_c_input(x, &dtype):
        return NotImplemented
    a = <cnp.ndarray>x
    ndim = cnp.PyArray_NDIM(a)
    if ndim > 32 or not split_axis(a, axis, &outer, &n, &inner, &axis_k):
        return NotImplemented
    size = cnp.PyArray_SIZE(a)
    if not routed_here(FS_LOGSUMEXP, inner > 1, dtype, size):
        return NotImplemented
    j = 0
    for i in range(ndim):
        if axis_k == -1 or i == axis_k:
            if keepdims:
                dims[j] = 1
                j += 1
        else:
            dims[j] = cnp.PyArray_DIMS(a)[i]
            j += 1
    y = cnp.PyArray_EMPTY(j, dims, cnp.PyArray_TYPE(a), 0)
    threads = threads_for(size)
    x0, y0 = <char *>cnp.PyArray_DATA(a), <char *>cnp.PyArray_DATA(y)
    if size < 4096:
        fs_lines(FS_LOGSUMEXP, dtype, x0, y0, outer, n, inner, 1.0, threads, 1)
    else:
        with nogil:
            fs_lines(FS_LOGSUMEXP, dtype, x0, y0, outer, n, inner, 1.0, threads, 1)
    return y if j else y[()]     # a numpy scalar for a 0-d result, as scipy (PyArray_Return would steal y)
