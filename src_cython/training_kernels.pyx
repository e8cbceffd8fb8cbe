# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled training-loop kernels: softmax/log_softmax backward and fused cross entropy (+ gradient).

Called by fastsoftmax/_training.py with arrays it has already validated and laid out (C-contiguous; float32 or
float64; no overlap between inputs and outputs except `out` being exactly `grad`, which the row and column
loops below allow because each output element is written after the sums that read it):

    softmax_backward(y3, g3, out3, n_threads)       (outer, n, inner) arrays; reduce over axis 1
    log_softmax_backward(y3, g3, out3, n_threads)
    cross_entropy_class(x2, t, w, ls, scale, loss, grad2, n_threads)   rows (outer, n); t int64, -1 = ignored
    cross_entropy_prob(x2, q2, w, ls, scale, loss, grad2, n_threads)   rows; q2 the target distributions

Work is cut into tasks (blocks of rows, or one (n, inner) block of columns each) for fastsoftmax's thread pool
(src_cython/parallel/fs_pool.h: the calling thread works, helpers only join when they run). Every row (or block of
columns) is processed by one thread while it sits in cache: one read of the inputs, one
write of the output; sums are accumulated in double. The exp of cross entropy is the package's SIMD kernel
(fs_slice_max / fs_slice_sumexp of src_cython/simd/fs_kernels.h), which stores exp(x - max) straight into the
gradient buffer and returns the sum as a double-double, so that log(sum) stays accurate for peaked rows.
"""
from cython cimport floating
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memset

from fs_kernels cimport (
    fs_dd, fs_init, fs_log_sum, fs_slice_max_f32, fs_slice_max_f64, fs_slice_sumexp_f32,
    fs_slice_sumexp_f64,
)

# Small loops in C so that `#pragma omp simd` lets gcc vectorize the double reductions (without -ffast-math).
# Without OpenMP the pragma is ignored and the loops stay correct, only scalar.
cdef extern from *:
    """
    #include <math.h>
    #include <stddef.h>

    /* The row loops are compiled three times, and the loader picks one by CPUID
       (gcc target_clones, an ifunc picking AVX-512, AVX2 or baseline; Linux/glibc only, elsewhere the baseline). */
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
    #define TK_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
    #else
    #define TK_CLONES
    #endif

    #define TK_LOOPS(T, SFX, EXP)                                                                              \\
    static inline double tk_dot_##SFX(const T *a, const T *b, ptrdiff_t n) {                                   \\
        double s = 0.0;                                                                                        \\
        _Pragma("omp simd reduction(+:s)")                                                                     \\
        for (ptrdiff_t i = 0; i < n; i++) s += (double)a[i] * (double)b[i];                                    \\
        return s;                                                                                              \\
    }                                                                                                          \\
    static inline double tk_sum_##SFX(const T *a, ptrdiff_t n) {                                               \\
        double s = 0.0;                                                                                        \\
        _Pragma("omp simd reduction(+:s)")                                                                     \\
        for (ptrdiff_t i = 0; i < n; i++) s += (double)a[i];                                                   \\
        return s;                                                                                              \\
    }                                                                                                          \\
    /* o = y * (g - sum(g * y)) over one contiguous row; the sum in double, the rest in T (as torch) */       \\
    TK_CLONES static void tk_sm_bwd_row_##SFX(const T *y, const T *g, T *o, ptrdiff_t n) {                     \\
        T s = (T)tk_dot_##SFX(y, g, n);                                                                        \\
        _Pragma("omp simd")                                                                                    \\
        for (ptrdiff_t i = 0; i < n; i++) o[i] = y[i] * (g[i] - s);                                            \\
    }                                                                                                          \\
    /* o = g - exp(y_log) * sum(g) over one contiguous row */                                                  \\
    TK_CLONES static void tk_lsm_bwd_row_##SFX(const T *yl, const T *g, T *o, ptrdiff_t n) {                   \\
        T s = (T)tk_sum_##SFX(g, n);                                                                           \\
        for (ptrdiff_t i = 0; i < n; i++) o[i] = g[i] - EXP(yl[i]) * s;                                        \\
    }                                                                                                          \\
    /* the same over the columns of an (n, inner) block; acc is scratch of `inner` doubles */                  \\
    TK_CLONES static void tk_sm_bwd_cols_##SFX(const T *y, const T *g, T *o, ptrdiff_t n, ptrdiff_t inner,    \\
                                               double *acc) {                                                  \\
        for (ptrdiff_t j = 0; j < inner; j++) acc[j] = 0.0;                                                    \\
        for (ptrdiff_t k = 0; k < n; k++) {                                                                    \\
            const T *yk = y + k * inner, *gk = g + k * inner;                                                  \\
            _Pragma("omp simd")                                                                                \\
            for (ptrdiff_t j = 0; j < inner; j++) acc[j] += (double)yk[j] * (double)gk[j];                     \\
        }                                                                                                      \\
        for (ptrdiff_t k = 0; k < n; k++) {                                                                    \\
            const T *yk = y + k * inner, *gk = g + k * inner;                                                  \\
            T *ok = o + k * inner;                                                                             \\
            _Pragma("omp simd")                                                                                \\
            for (ptrdiff_t j = 0; j < inner; j++) ok[j] = yk[j] * (gk[j] - (T)acc[j]);                         \\
        }                                                                                                      \\
    }                                                                                                          \\
    TK_CLONES static void tk_lsm_bwd_cols_##SFX(const T *yl, const T *g, T *o, ptrdiff_t n, ptrdiff_t inner,  \\
                                                double *acc) {                                                 \\
        for (ptrdiff_t j = 0; j < inner; j++) acc[j] = 0.0;                                                    \\
        for (ptrdiff_t k = 0; k < n; k++) {                                                                    \\
            const T *gk = g + k * inner;                                                                       \\
            _Pragma("omp simd")                                                                                \\
            for (ptrdiff_t j = 0; j < inner; j++) acc[j] += (double)gk[j];                                     \\
        }                                                                                                      \\
        for (ptrdiff_t k = 0; k < n; k++) {                                                                    \\
            const T *yk = yl + k * inner, *gk = g + k * inner;                                                 \\
            T *ok = o + k * inner;                                                                             \\
            for (ptrdiff_t j = 0; j < inner; j++) ok[j] = gk[j] - EXP(yk[j]) * (T)acc[j];                      \\
        }                                                                                                      \\
    }                                                                                                          \\
    /* sum over c of w[c] * (m - x[c]) (w == NULL: weights 1); every term >= 0 for w >= 0, no cancellation */ \\
    TK_CLONES static double tk_wdist_##SFX(const T *x, ptrdiff_t n, double m, const double *w) {               \\
        double s = 0.0;                                                                                        \\
        if (w) {                                                                                               \\
            _Pragma("omp simd reduction(+:s)")                                                                 \\
            for (ptrdiff_t i = 0; i < n; i++) s += w[i] * (m - (double)x[i]);                                  \\
        } else {                                                                                               \\
            _Pragma("omp simd reduction(+:s)")                                                                 \\
            for (ptrdiff_t i = 0; i < n; i++) s += m - (double)x[i];                                           \\
        }                                                                                                      \\
        return s;                                                                                              \\
    }                                                                                                          \\
    /* g holds exp(x - m): g = g * a - b * w (w == NULL: weights 1) */                                         \\
    TK_CLONES static void tk_scale_sub_##SFX(T *g, ptrdiff_t n, double a, double b, const double *w) {         \\
        T at = (T)a, bt = (T)b;                                                                                \\
        if (w) {                                                                                               \\
            _Pragma("omp simd")                                                                                \\
            for (ptrdiff_t i = 0; i < n; i++) g[i] = (T)((double)g[i] * a - b * w[i]);                         \\
        } else if (b != 0.0) {                                                                                 \\
            _Pragma("omp simd")                                                                                \\
            for (ptrdiff_t i = 0; i < n; i++) g[i] = g[i] * at - bt;                                           \\
        } else {                                                                                               \\
            _Pragma("omp simd")                                                                                \\
            for (ptrdiff_t i = 0; i < n; i++) g[i] = g[i] * at;                                                \\
        }                                                                                                      \\
    }                                                                                                          \\
    /* probability targets: with wq[c] = w[c] * (q[c] * (1 - ls) + ls / n), A = sum(wq) and                   \\
       B = sum(wq * (m - x)) over the classes with wq != 0 (a zero target at a -inf logit contributes 0) */   \\
    TK_CLONES static void tk_prob_sums_##SFX(const T *x, const T *q, ptrdiff_t n, double m, const double *w,  \\
                                             double ls, double *A, double *B) {                                \\
        double a = 0.0, b = 0.0, keep = 1.0 - ls, add = ls / (double)n;                                        \\
        _Pragma("omp simd reduction(+:a, b)")                                                                  \\
        for (ptrdiff_t i = 0; i < n; i++) {                                                                    \\
            double wq = ((double)q[i] * keep + add) * (w ? w[i] : 1.0);                                        \\
            a += wq;                                                                                           \\
            b += wq != 0.0 ? wq * (m - (double)x[i]) : 0.0;                                                    \\
        }                                                                                                      \\
        *A = a; *B = b;                                                                                        \\
    }                                                                                                          \\
    /* g holds exp(x - m): g = g * a - scale * wq */                                                           \\
    TK_CLONES static void tk_prob_grad_##SFX(T *g, const T *q, ptrdiff_t n, double a, double scale,           \\
                                             const double *w, double ls) {                                     \\
        double keep = scale * (1.0 - ls), add = scale * ls / (double)n;                                        \\
        if (w) {                                                                                               \\
            _Pragma("omp simd")                                                                                \\
            for (ptrdiff_t i = 0; i < n; i++)                                                                  \\
                g[i] = (T)((double)g[i] * a - ((double)q[i] * keep + add) * w[i]);                             \\
        } else {                                                                                               \\
            _Pragma("omp simd")                                                                                \\
            for (ptrdiff_t i = 0; i < n; i++) g[i] = (T)((double)g[i] * a - ((double)q[i] * keep + add));      \\
        }                                                                                                      \\
    }

    TK_LOOPS(float, f32, expf)
    TK_LOOPS(double, f64, exp)
    """
    double tk_dot_f32(const float *a, const float *b, Py_ssize_t n) noexcept nogil
    double tk_dot_f64(const double *a, const double *b, Py_ssize_t n) noexcept nogil
    void tk_sm_bwd_row_f32(const float *y, const float *g, float *o, Py_ssize_t n) noexcept nogil
    void tk_sm_bwd_row_f64(const double *y, const double *g, double *o, Py_ssize_t n) noexcept nogil
    void tk_lsm_bwd_row_f32(const float *y, const float *g, float *o, Py_ssize_t n) noexcept nogil
    void tk_lsm_bwd_row_f64(const double *y, const double *g, double *o, Py_ssize_t n) noexcept nogil
    void tk_sm_bwd_cols_f32(const float *y, const float *g, float *o, Py_ssize_t n, Py_ssize_t inner,
                            double *acc) noexcept nogil
    void tk_sm_bwd_cols_f64(const double *y, const double *g, double *o, Py_ssize_t n, Py_ssize_t inner,
                            double *acc) noexcept nogil
    void tk_lsm_bwd_cols_f32(const float *y, const float *g, float *o, Py_ssize_t n, Py_ssize_t inner,
                             double *acc) noexcept nogil
    void tk_lsm_bwd_cols_f64(const double *y, const double *g, double *o, Py_ssize_t n, Py_ssize_t inner,
                             double *acc) noexcept nogil
    double tk_wdist_f32(const float *x, Py_ssize_t n, double m, const double *w) noexcept nogil
    double tk_wdist_f64(const double *x, Py_ssize_t n, double m, const double *w) noexcept nogil
    void tk_scale_sub_f32(float *g, Py_ssize_t n, double a, double b, const double *w) noexcept nogil
    void tk_scale_sub_f64(double *g, Py_ssize_t n, double a, double b, const double *w) noexcept nogil
    void tk_prob_sums_f32(const float *x, const float *q, Py_ssize_t n, double m, const double *w, double ls,
                          double *A, double *B) noexcept nogil
    void tk_prob_sums_f64(const double *x, const double *q, Py_ssize_t n, double m, const double *w, double ls,
                          double *A, double *B) noexcept nogil
    void tk_prob_grad_f32(float *g, const float *q, Py_ssize_t n, double a, double scale, const double *w,
                          double ls) noexcept nogil
    void tk_prob_grad_f64(double *g, const double *q, Py_ssize_t n, double a, double scale, const double *w,
                          double ls) noexcept nogil

from cpython.pycapsule cimport PyCapsule_GetPointer

ctypedef void (*fs_task_fn)(void *ctx, Py_ssize_t task) noexcept nogil
ctypedef void (*pool_run_fn)(fs_task_fn fn, void *ctx, Py_ssize_t n_tasks, int n_threads) noexcept nogil

fs_init()

# The one thread pool of the process lives in fastsoftmax.cython_backend (two pools would keep two sets of helper
# threads competing for the same cores); its fs_pool_run comes from there.
from fastsoftmax import cython_backend as _backend
cdef pool_run_fn fs_pool_run = <pool_run_fn>PyCapsule_GetPointer(_backend._pool_run_capsule(), "fs_pool_run")

# Elements per task, as in src_cython/parallel/fs_lines.c: a few microseconds of work, so that the caller can pick up
# the share of a helper that never came.
DEF TASK_ELEMENTS = 16384


cdef inline Py_ssize_t rows_per_task(Py_ssize_t n) noexcept nogil:
    return (TASK_ELEMENTS + n - 1) // n


cdef double NAN = float("nan")
cdef double INF = float("inf")

cdef enum Kind:
    SOFTMAX = 0
    LOG_SOFTMAX = 1


# ---- fused-type shims ------------------------------------------------------------------------------------------------

cdef inline void bwd_row(const floating *y, const floating *g, floating *o, Py_ssize_t n, Kind kind) noexcept nogil:
    if floating is float:
        if kind == SOFTMAX:
            tk_sm_bwd_row_f32(y, g, o, n)
        else:
            tk_lsm_bwd_row_f32(y, g, o, n)
    else:
        if kind == SOFTMAX:
            tk_sm_bwd_row_f64(y, g, o, n)
        else:
            tk_lsm_bwd_row_f64(y, g, o, n)


cdef inline void bwd_cols(const floating *y, const floating *g, floating *o, Py_ssize_t n, Py_ssize_t inner,
                          double *acc, Kind kind) noexcept nogil:
    if floating is float:
        if kind == SOFTMAX:
            tk_sm_bwd_cols_f32(y, g, o, n, inner, acc)
        else:
            tk_lsm_bwd_cols_f32(y, g, o, n, inner, acc)
    else:
        if kind == SOFTMAX:
            tk_sm_bwd_cols_f64(y, g, o, n, inner, acc)
        else:
            tk_lsm_bwd_cols_f64(y, g, o, n, inner, acc)


cdef inline double row_max(const floating *x, Py_ssize_t n) noexcept nogil:
    if floating is float:
        return fs_slice_max_f32(x, n)
    else:
        return fs_slice_max_f64(x, n)


cdef inline fs_dd row_sumexp(const floating *x, floating *e, Py_ssize_t n, double m) noexcept nogil:
    if floating is float:
        return fs_slice_sumexp_f32(x, e, n, <float>m)
    else:
        return fs_slice_sumexp_f64(x, e, n, m)


cdef inline double wdist(const floating *x, Py_ssize_t n, double m, const double *w) noexcept nogil:
    if floating is float:
        return tk_wdist_f32(x, n, m, w)
    else:
        return tk_wdist_f64(x, n, m, w)


cdef inline void scale_sub(floating *g, Py_ssize_t n, double a, double b, const double *w) noexcept nogil:
    if floating is float:
        tk_scale_sub_f32(g, n, a, b, w)
    else:
        tk_scale_sub_f64(g, n, a, b, w)


cdef inline void fill(floating *g, Py_ssize_t n, double value) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        g[i] = <floating>value


# ---- softmax / log_softmax backward ---------------------------------------------------------------------------------

ctypedef struct backward_job:
    const void *y
    const void *g
    void *o
    Py_ssize_t outer, n, inner, per_task
    Kind kind


cdef void backward_task(floating dtype_tag, const backward_job *j, Py_ssize_t k) noexcept nogil:
    cdef const floating *ys = <const floating *>j.y
    cdef const floating *gs = <const floating *>j.g
    cdef floating *os = <floating *>j.o
    cdef Py_ssize_t n = j.n, inner = j.inner, i, i1
    cdef double *acc
    if inner == 1:
        i1 = min((k + 1) * j.per_task, j.outer)
        for i in range(k * j.per_task, i1):
            bwd_row(ys + i * n, gs + i * n, os + i * n, n, j.kind)
    else:
        acc = <double *>malloc(inner * sizeof(double))
        if acc == NULL:  # no memory for the column sums: leave nan rather than garbage
            for i in range(n * inner):
                os[k * n * inner + i] = <floating>NAN
            return
        bwd_cols(ys + k * n * inner, gs + k * n * inner, os + k * n * inner, n, inner, acc, j.kind)
        free(acc)


cdef void backward_task_f32(void *ctx, Py_ssize_t k) noexcept nogil:
    backward_task(<float>0, <const backward_job *>ctx, k)


cdef void backward_task_f64(void *ctx, Py_ssize_t k) noexcept nogil:
    backward_task(<double>0, <const backward_job *>ctx, k)


cdef void backward_lines(const floating[:, :, ::1] y, const floating[:, :, ::1] g, floating[:, :, ::1] o, Kind kind,
                         int n_threads) noexcept:
    cdef backward_job j
    cdef Py_ssize_t tasks
    j.y = &y[0, 0, 0]
    j.g = &g[0, 0, 0]
    j.o = &o[0, 0, 0]
    j.outer, j.n, j.inner, j.kind = y.shape[0], y.shape[1], y.shape[2], kind
    j.per_task = rows_per_task(j.n) if j.inner == 1 else 1  # columns: one (n, inner) block per task
    tasks = (j.outer + j.per_task - 1) // j.per_task
    with nogil:
        fs_pool_run(backward_task_f32 if floating is float else backward_task_f64, &j, tasks, n_threads)


def softmax_backward(y, g, out, int n_threads):
    """out = y * (g - sum(g * y, axis=1)) over C-contiguous (outer, n, inner) float32/float64 arrays, n >= 1."""
    if y.itemsize == 4:
        backward_lines[float](y, g, out, SOFTMAX, n_threads)
    else:
        backward_lines[double](y, g, out, SOFTMAX, n_threads)


def log_softmax_backward(y_log, g, out, int n_threads):
    """out = g - exp(y_log) * sum(g, axis=1) over C-contiguous (outer, n, inner) arrays."""
    if y_log.itemsize == 4:
        backward_lines[float](y_log, g, out, LOG_SOFTMAX, n_threads)
    else:
        backward_lines[double](y_log, g, out, LOG_SOFTMAX, n_threads)


# ---- cross entropy, class-index targets -----------------------------------------------------------------------------

cdef double ce_class_row(const floating *x, floating *g, Py_ssize_t n, int64_t t, const double *w, double w_total,
                         double ls, double scale) noexcept nogil:
    """Loss of one row (weighted, smoothed as torch does); with g != NULL also its gradient times `scale`.

    loss = (1 - ls) * w[t] * (lse - x[t]) + ls / n * sum_c w[c] * (lse - x[c]),  lse = m + log(sum(exp(x - m)))
    grad = p * ((1 - ls) * w[t] + ls / n * sum(w)) - ((1 - ls) * w[t] * onehot(t) + ls / n * w),  p = softmax(x)
    """
    cdef double m, log_total, inv_total, w_t, loss, smooth
    cdef fs_dd total
    if t < 0:  # ignored: contributes nothing
        if g != NULL:
            memset(g, 0, n * sizeof(floating))
        return 0.0
    m = row_max(x, n)
    if not (m - m == 0.0):  # nan in the row, +inf in the row, or only -inf: nan, as torch
        if g != NULL:
            fill(g, n, NAN)
        return NAN
    total = row_sumexp(x, g, n, m)  # g (if any) now holds exp(x - m)
    log_total = fs_log_sum(total)
    w_t = w[t] if w != NULL else 1.0
    loss = w_t * ((m - x[t]) + log_total)
    if ls != 0.0:
        smooth = wdist(x, n, m, w) + w_total * log_total
        loss = (1.0 - ls) * loss + ls / n * smooth
    if g != NULL:
        inv_total = 1.0 / (total.hi + total.lo)
        scale_sub(g, n, scale * ((1.0 - ls) * w_t + ls / n * w_total) * inv_total, scale * ls / n, w)
        g[t] = <floating>(<double>g[t] - scale * (1.0 - ls) * w_t)
    return loss


ctypedef struct ce_job:
    const void *x
    const void *q          # probability targets, or NULL
    const int64_t *t       # class targets, or NULL
    const double *w
    void *g
    double *loss
    Py_ssize_t outer, n, per_task
    double w_total, ls, scale


cdef void ce_task(floating dtype_tag, const ce_job *j, Py_ssize_t k) noexcept nogil:
    cdef const floating *xs = <const floating *>j.x
    cdef const floating *qs = <const floating *>j.q
    cdef floating *gs = <floating *>j.g
    cdef Py_ssize_t n = j.n, i, i1 = min((k + 1) * j.per_task, j.outer)
    for i in range(k * j.per_task, i1):
        if j.t != NULL:
            j.loss[i] = ce_class_row(xs + i * n, gs + i * n if gs != NULL else NULL, n, j.t[i], j.w, j.w_total,
                                     j.ls, j.scale)
        else:
            j.loss[i] = ce_prob_row(xs + i * n, qs + i * n, gs + i * n if gs != NULL else NULL, n, j.w, j.ls,
                                    j.scale)


cdef void ce_task_f32(void *ctx, Py_ssize_t k) noexcept nogil:
    ce_task(<float>0, <const ce_job *>ctx, k)


cdef void ce_task_f64(void *ctx, Py_ssize_t k) noexcept nogil:
    ce_task(<double>0, <const ce_job *>ctx, k)


cdef void ce_rows(const floating[:, ::1] x, const floating[:, ::1] q, const int64_t[::1] t, const double[::1] w,
                  floating[:, ::1] g, double[::1] loss, double ls, double scale, int n_threads):
    cdef ce_job j
    cdef Py_ssize_t i
    j.x = &x[0, 0]
    j.q = NULL if q is None else &q[0, 0]
    j.t = NULL if t is None else &t[0]
    j.w = NULL if w is None else &w[0]
    j.g = NULL if g is None else &g[0, 0]
    j.loss = &loss[0]
    j.outer, j.n = x.shape[0], x.shape[1]
    j.per_task = rows_per_task(j.n)
    j.ls, j.scale = ls, scale
    j.w_total = j.n
    if j.w != NULL:
        j.w_total = 0.0
        for i in range(j.n):
            j.w_total += j.w[i]
    with nogil:
        fs_pool_run(ce_task_f32 if floating is float else ce_task_f64, &j, (j.outer + j.per_task - 1) // j.per_task,
                    n_threads)


def cross_entropy_class(x, t, w, double ls, double scale, loss, grad, int n_threads):
    """Per-row losses of C-contiguous (outer, n) logits into loss (outer,) float64; class t[i] (int64, -1 = ignored,
    others in range); w float64 (n,) or None; grad (outer, n) like x, or None, receives the gradient * scale."""
    if x.itemsize == 4:
        ce_rows[float](x, None, t, w, grad, loss, ls, scale, n_threads)
    else:
        ce_rows[double](x, None, t, w, grad, loss, ls, scale, n_threads)


# ---- cross entropy, probability targets -----------------------------------------------------------------------------

cdef double ce_prob_row(const floating *x, const floating *q, floating *g, Py_ssize_t n, const double *w, double ls,
                        double scale) noexcept nogil:
    """loss = sum_c wq[c] * (lse - x[c]), wq = w * (q * (1 - ls) + ls / n); grad = p * sum(wq) - wq, times scale."""
    cdef double m, log_total, a, b
    cdef fs_dd total
    m = row_max(x, n)
    if not (m - m == 0.0):
        if g != NULL:
            fill(g, n, NAN)
        return NAN
    total = row_sumexp(x, g, n, m)
    log_total = fs_log_sum(total)
    if floating is float:
        tk_prob_sums_f32(x, q, n, m, w, ls, &a, &b)
    else:
        tk_prob_sums_f64(x, q, n, m, w, ls, &a, &b)
    if g != NULL:
        if floating is float:
            tk_prob_grad_f32(g, q, n, scale * a / (total.hi + total.lo), scale, w, ls)
        else:
            tk_prob_grad_f64(g, q, n, scale * a / (total.hi + total.lo), scale, w, ls)
    return b + a * log_total


def cross_entropy_prob(x, q, w, double ls, double scale, loss, grad, int n_threads):
    """As cross_entropy_class with target distributions q, C-contiguous (outer, n) of x's dtype."""
    if x.itemsize == 4:
        ce_rows[float](x, q, None, w, grad, loss, ls, scale, n_threads)
    else:
        ce_rows[double](x, q, None, w, grad, loss, ls, scale, n_threads)
