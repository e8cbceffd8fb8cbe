# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled training-loop kernels: softmax/log_softmax backward and fused cross entropy (+ gradient).

Called by fastsoftmax/_training.py with arrays it has already validated and laid out (C-contiguous; float32 or
float64; no overlap between inputs and outputs except `out` being exactly `grad`, which the row and column
loops below allow because each output element is written after the sums that read it):

    softmax_backward(y3, g3, out3, n_threads)       (outer, n, inner) arrays; reduce over axis 1
    log_softmax_backward(y3, g3, out3, n_threads)
    cross_entropy_class(x2, t, w, ls, scale, loss, grad2, n_threads)   rows (outer, n); t int64, -1 = ignored
    cross_entropy_prob(x2, q2, w, ls, scale, loss, grad2, n_threads)   rows; q2 the target distributions

Every row (or block of columns) is processed by one thread while it sits in cache: one read of the inputs, one
write of the output; sums are accumulated in double. The exp of cross entropy is the package's SIMD kernel
(fs_slice_max / fs_slice_sumexp of src_cython/simd/fs_kernels.h), which stores exp(x - max) straight into the
gradient buffer and returns the sum as a double-double, so that log(sum) stays accurate for peaked rows.
"""
from cython cimport floating
from cython.parallel cimport parallel, prange
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

fs_init()

# Rows are handed out to the threads a few at a time (dynamic schedule) rather than in one static block each: on a
# machine shared with other processes a thread that loses its core then delays the call by a few rows, not by half
# of them. 8 rows of 1000 floats are ~10 us of work, far above the cost of taking the next task.
DEF ROWS_PER_TASK = 8

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

cdef void backward_lines(const floating[:, :, ::1] y, const floating[:, :, ::1] g, floating[:, :, ::1] o, Kind kind,
                         int n_threads) noexcept nogil:
    cdef Py_ssize_t outer = y.shape[0], n = y.shape[1], inner = y.shape[2], i
    cdef const floating *ys = &y[0, 0, 0]
    cdef const floating *gs = &g[0, 0, 0]
    cdef floating *os = &o[0, 0, 0]
    cdef double *acc
    if inner == 1:
        for i in prange(outer, schedule="dynamic", chunksize=ROWS_PER_TASK, num_threads=n_threads):
            bwd_row(ys + i * n, gs + i * n, os + i * n, n, kind)
    else:
        with parallel(num_threads=n_threads):
            acc = <double *>malloc(inner * sizeof(double))
            for i in prange(outer, schedule="dynamic", chunksize=1):
                bwd_cols(ys + i * n * inner, gs + i * n * inner, os + i * n * inner, n, inner, acc, kind)
            free(acc)



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


cdef void ce_class_rows(const floating[:, ::1] x, const int64_t[::1] t, const double[::1] w, floating[:, ::1] g,
                        double[::1] loss, double ls, double scale, int n_threads):
    cdef Py_ssize_t outer = x.shape[0], n = x.shape[1], i
    cdef const floating *xs = &x[0, 0]
    cdef const int64_t *ts = &t[0]
    cdef const double *wp = NULL if w is None else &w[0]
    cdef floating *gs = NULL if g is None else &g[0, 0]
    cdef double *ls_out = &loss[0]
    cdef double w_total = n
    if wp != NULL:
        w_total = 0.0
        for i in range(n):
            w_total += wp[i]
    with nogil:
        for i in prange(outer, schedule="dynamic", chunksize=ROWS_PER_TASK, num_threads=n_threads):
            ls_out[i] = ce_class_row(xs + i * n, gs + i * n if gs != NULL else NULL, n, ts[i], wp, w_total,
                                     ls, scale)


def cross_entropy_class(x, t, w, double ls, double scale, loss, grad, int n_threads):
    """Per-row losses of C-contiguous (outer, n) logits into loss (outer,) float64; class t[i] (int64, -1 = ignored,
    others in range); w float64 (n,) or None; grad (outer, n) like x, or None, receives the gradient * scale."""
    if x.itemsize == 4:
        ce_class_rows[float](x, t, w, grad, loss, ls, scale, n_threads)
    else:
        ce_class_rows[double](x, t, w, grad, loss, ls, scale, n_threads)


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


cdef void ce_prob_rows(const floating[:, ::1] x, const floating[:, ::1] q, const double[::1] w, floating[:, ::1] g,
                       double[::1] loss, double ls, double scale, int n_threads):
    cdef Py_ssize_t outer = x.shape[0], n = x.shape[1], i
    cdef const floating *xs = &x[0, 0]
    cdef const floating *qs = &q[0, 0]
    cdef const double *wp = NULL if w is None else &w[0]
    cdef floating *gs = NULL if g is None else &g[0, 0]
    cdef double *ls_out = &loss[0]
    with nogil:
        for i in prange(outer, schedule="dynamic", chunksize=ROWS_PER_TASK, num_threads=n_threads):
            ls_out[i] = ce_prob_row(xs + i * n, qs + i * n, gs + i * n if gs != NULL else NULL, n, wp, ls, scale)


def cross_entropy_prob(x, q, w, double ls, double scale, loss, grad, int n_threads):
    """As cross_entropy_class with target distributions q, C-contiguous (outer, n) of x's dtype."""
    if x.itemsize == 4:
        ce_prob_rows[float](x, q, w, grad, loss, ls, scale, n_threads)
    else:
        ce_prob_rows[double](x, q, w, grad, loss, ls, scale, n_threads)
