"""Compiled training-loop kernels: softmax/log_softmax backward and fused cross entropy (+ gradient).

Called by fastsoftmax/_training.py with arrays it has already validated and laid out (C-contiguous; float32 or
float64; no overlap between inputs and outputs except `out` being exactly `grad`, which the kernels allow because
each output element is written after the sums that read it):

    softmax_backward(y3, g3, out3, n_threads)       (outer, n, inner) arrays; reduce over axis 1
    log_softmax_backward(y3, g3, out3, n_threads)
    cross_entropy_class(x2, t, w, ls, scale, loss, grad2, n_threads)   rows (outer, n); t int64, -1 = ignored
    cross_entropy_prob(x2, q2, w, ls, scale, loss, grad2, n_threads)   rows; q2 the target distributions

The kernels are C, in the same SIMD template as the softmax kernels (src_cython/simd/fs_kernels_impl.h, section 4:
one source for every SIMD path and dtype, chosen at import by CPUID). Work is cut into tasks (blocks of rows, or
one (n, inner) block of columns each) for fastsoftmax's thread pool (src_cython/parallel/fs_pool.h: the calling
thread works, helpers only join when they run); every row is processed by one thread while it sits in cache, sums in
double. Cross entropy stores exp(x - max) straight into the gradient buffer and keeps the sum as a double-double,
so that log(sum) stays accurate for peaked rows.
"""
from cpython.pycapsule cimport PyCapsule_GetPointer
from libc.math cimport NAN
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc

from fs_kernels cimport (FS_FLOAT32, FS_FLOAT64, fs_backward_cols, fs_backward_rows, fs_cross_entropy_row,
                        fs_init)

ctypedef void (*fs_task_fn)(void *ctx, Py_ssize_t task) noexcept nogil
ctypedef void (*pool_run_fn)(fs_task_fn fn, void *ctx, Py_ssize_t n_tasks, int n_threads) noexcept nogil

fs_init()

# The one thread pool of the process lives in fastsoftmax._backends.cython_kernels (two pools would keep two sets of
# helper threads competing for the same cores); its fs_pool_run comes from there.
from fastsoftmax._backends import cython_kernels as _backend
cdef pool_run_fn fs_pool_run = <pool_run_fn>PyCapsule_GetPointer(_backend._pool_run_capsule(), "fs_pool_run")

# Elements per task, as in src_cython/parallel/fs_lines.c: a few microseconds of work, so that the caller can pick up
# the share of a helper that never came.
DEF TASK_ELEMENTS = 16384


cdef inline Py_ssize_t rows_per_task(Py_ssize_t n) noexcept nogil:
    return (TASK_ELEMENTS + n - 1) // n


cdef int dtype_of(a) except -1:
    return FS_FLOAT32 if a.itemsize == 4 else FS_FLOAT64


# ---- softmax / log_softmax backward ---------------------------------------------------------------------------------

ctypedef struct backward_job:
    int dtype, log
    const char *y
    const char *g
    char *o
    Py_ssize_t outer, n, inner, per_task, item


cdef void backward_task(void *ctx, Py_ssize_t k) noexcept nogil:
    cdef const backward_job *j = <const backward_job *>ctx
    cdef Py_ssize_t r0, r1, block, i
    cdef double *scratch
    if j.inner == 1:
        r0 = k * j.per_task
        r1 = min(r0 + j.per_task, j.outer)
        fs_backward_rows(j.dtype, j.log, j.y + r0 * j.n * j.item, j.g + r0 * j.n * j.item, j.o + r0 * j.n * j.item,
                         r1 - r0, j.n)
        return
    block = k * j.n * j.inner * j.item
    scratch = <double *>malloc(j.inner * sizeof(double))
    if scratch == NULL:  # no memory for the column sums: nan rather than garbage
        for i in range(j.n * j.inner):
            if j.dtype == FS_FLOAT32:
                (<float *>(j.o + block))[i] = NAN
            else:
                (<double *>(j.o + block))[i] = NAN
        return
    fs_backward_cols(j.dtype, j.log, j.y + block, j.g + block, j.o + block, j.n, j.inner, scratch)
    free(scratch)


cdef void backward_lines(y, g, out, int log, int n_threads):
    cdef backward_job j
    cdef const unsigned char[:, :, ::1] yv = y.view("u1").reshape(y.shape[0], y.shape[1], -1)
    cdef const unsigned char[:, :, ::1] gv = g.view("u1").reshape(g.shape[0], g.shape[1], -1)
    cdef unsigned char[:, :, ::1] ov = out.view("u1").reshape(out.shape[0], out.shape[1], -1)
    j.dtype, j.log, j.item = dtype_of(y), log, y.itemsize
    j.y, j.g, j.o = <const char *>&yv[0, 0, 0], <const char *>&gv[0, 0, 0], <char *>&ov[0, 0, 0]
    j.outer, j.n, j.inner = y.shape[0], y.shape[1], y.shape[2]
    j.per_task = rows_per_task(j.n) if j.inner == 1 else 1  # columns: one (n, inner) block per task
    with nogil:
        fs_pool_run(backward_task, &j, (j.outer + j.per_task - 1) // j.per_task, n_threads)


def softmax_backward(y, g, out, int n_threads):
    """out = y * (g - sum(g * y, axis=1)) over C-contiguous (outer, n, inner) float32/float64 arrays, n >= 1."""
    backward_lines(y, g, out, 0, n_threads)


def log_softmax_backward(y_log, g, out, int n_threads):
    """out = g - exp(y_log) * sum(g, axis=1) over C-contiguous (outer, n, inner) arrays."""
    backward_lines(y_log, g, out, 1, n_threads)


# ---- cross entropy ---------------------------------------------------------------------------------------------------

ctypedef struct ce_job:
    int dtype
    const char *x
    const char *q          # probability targets, or NULL
    const int64_t *t       # class targets, or NULL
    const double *w
    char *g
    double *loss
    Py_ssize_t outer, n, per_task, item
    double w_total, ls, scale


cdef void ce_task(void *ctx, Py_ssize_t k) noexcept nogil:
    cdef const ce_job *j = <const ce_job *>ctx
    cdef Py_ssize_t i, row
    for i in range(k * j.per_task, min((k + 1) * j.per_task, j.outer)):
        row = i * j.n * j.item
        j.loss[i] = fs_cross_entropy_row(j.dtype, j.x + row, j.q + row if j.q != NULL else NULL,
                                         j.t[i] if j.t != NULL else 0, j.g + row if j.g != NULL else NULL, j.n,
                                         j.w, j.w_total, j.ls, j.scale)


cdef void ce_rows(x, q, t, w, g, loss, double ls, double scale, int n_threads):
    cdef ce_job j
    cdef Py_ssize_t i
    cdef const unsigned char[:, ::1] xv = x.view("u1")
    cdef const unsigned char[:, ::1] qv
    cdef const int64_t[::1] tv
    cdef const double[::1] wv
    cdef unsigned char[:, ::1] gv
    cdef double[::1] lv = loss
    j.dtype, j.item = dtype_of(x), x.itemsize
    j.x = <const char *>&xv[0, 0]
    j.q, j.t, j.w, j.g = NULL, NULL, NULL, NULL
    if q is not None:
        qv = q.view("u1")
        j.q = <const char *>&qv[0, 0]
    if t is not None:
        tv = t
        j.t = &tv[0]
    if w is not None:
        wv = w
        j.w = &wv[0]
    if g is not None:
        gv = g.view("u1")
        j.g = <char *>&gv[0, 0]
    j.loss = &lv[0]
    j.outer, j.n = x.shape[0], x.shape[1]
    j.per_task = rows_per_task(j.n)
    j.ls, j.scale = ls, scale
    j.w_total = j.n
    if j.w != NULL:
        j.w_total = 0.0
        for i in range(j.n):
            j.w_total += j.w[i]
    with nogil:
        fs_pool_run(ce_task, &j, (j.outer + j.per_task - 1) // j.per_task, n_threads)


def cross_entropy_class(x, t, w, double ls, double scale, loss, grad, int n_threads):
    """Per-row losses of C-contiguous (outer, n) logits into loss (outer,) float64; class t[i] (int64, -1 = ignored,
    others in range); w float64 (n,) or None; grad (outer, n) like x, or None, receives the gradient * scale."""
    ce_rows(x, None, t, w, grad, loss, ls, scale, n_threads)


def cross_entropy_prob(x, q, w, double ls, double scale, loss, grad, int n_threads):
    """As cross_entropy_class with target distributions q, C-contiguous (outer, n) of x's dtype."""
    ce_rows(x, q, None, w, grad, loss, ls, scale, n_threads)
