"""Cython backend: compiled softmax, log_softmax and logsumexp over the canonical (outer, n, inner) view.

Layers, bottom up:
1. SIMD kernels (src_cython/simd/): one row, one block of columns, or one slice of a huge row, each within a few
   ULP; AVX-512, AVX2+FMA and SSE2 builds, one picked at import by CPUID.
2. Drivers (src_cython/parallel/fs_lines.c): a whole array cut into tasks by its shape, run on fastsoftmax's own
   thread pool (src_cython/parallel/fs_pool.c), where the calling thread does the work and other threads only help
   when they are running; results never depend on which thread ran what.
3. This module: arrays the package has already validated and made C-contiguous (fastsoftmax/_layout.py) handed to
   the drivers with the GIL released; the input is typed const, so read-only arrays work.
"""
from cpython.pycapsule cimport PyCapsule_New
from cython cimport floating

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
    """fs_pool_run for the other compiled modules of the package (fastsoftmax.training_kernels): one pool per
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
