"""Cython backend: compiled softmax, log_softmax and logsumexp over the canonical (outer, n, inner) view.

Layers, bottom up:
1. Line kernels (`cdef inline ... noexcept nogil`): one reduction line of n elements at a fixed step, computed
   in double with an error-free x - max (TwoSum), so float32 results are within 1 ULP and float64 within a few.
2. Parallel drivers: a `prange` over the outer * inner lines, `schedule='static'`, with an explicit thread count.
3. The Python front (`softmax`, `log_softmax`, `logsumexp`): takes arrays the package has already validated and
   made contiguous (see fastsoftmax/_layout.py) and picks the float32 or float64 specialization.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport exp, log1p, INFINITY, NAN

cdef extern from "fs_openmp.h":
    int fs_openmp_available() noexcept nogil
    int fs_openmp_max_threads() noexcept nogil


def openmp_available():
    return bool(fs_openmp_available())


def openmp_max_threads():
    return fs_openmp_max_threads()


# ---- 1. line kernels ------------------------------------------------------------------------------------------

cdef struct LineMax:
    double value      # the maximum, -inf for an all -inf line
    Py_ssize_t index  # the first element holding it
    bint has_nan


cdef inline LineMax line_max(const floating* x, Py_ssize_t n, Py_ssize_t step) noexcept nogil:
    cdef LineMax m
    cdef Py_ssize_t i
    cdef double v
    m.value = -INFINITY
    m.index = 0
    m.has_nan = False
    for i in range(n):
        v = x[i * step]
        if v != v:
            m.has_nan = True
        elif v > m.value:
            m.value = v
            m.index = i
    return m


cdef inline double exp_shifted(double v, double m) noexcept nogil:
    """exp(v - m) for a finite m, with the rounding error of v - m folded back in (TwoSum).

    Without the correction the relative error is |v - m| * eps, hundreds of ULP for spread-out float64 rows."""
    cdef double d = v - m
    cdef double b = d - v
    cdef double lo = (v - (d - b)) + (-m - b)
    cdef double e = exp(d)
    if e != 0.0:
        e += e * lo
    return e


cdef inline double sum_exp_others(const floating* x, Py_ssize_t n, Py_ssize_t step, LineMax m) noexcept nogil:
    """Sum of exp(x - max) over all elements but the first maximum (whose term is exactly 1).

    Keeping the 1 out lets log1p resolve outputs near 0 in log_softmax and logsumexp. Neumaier summation keeps
    the sum of a 10^7-long float64 line within a few eps."""
    cdef double s = 0.0, c = 0.0, t, e
    cdef Py_ssize_t i
    for i in range(n):
        if i == m.index:
            continue
        e = exp_shifted(x[i * step], m.value)
        t = s + e
        if s >= e:
            c += (s - t) + e
        else:
            c += (e - t) + s
        s = t
    return s + c


cdef inline bint line_is_undefined(LineMax m) noexcept nogil:
    """scipy's softmax is nan for a line with a nan, a +inf (inf - inf) or only -inf (0 / 0)."""
    return m.has_nan or m.value == INFINITY or m.value == -INFINITY


cdef inline void softmax_line(const floating* x, floating* y, Py_ssize_t n, Py_ssize_t step) noexcept nogil:
    cdef LineMax m = line_max(x, n, step)
    cdef Py_ssize_t i
    cdef double total
    if line_is_undefined(m):
        for i in range(n):
            y[i * step] = NAN
        return
    total = 1.0 + sum_exp_others(x, n, step, m)
    for i in range(n):
        y[i * step] = <floating>(exp_shifted(x[i * step], m.value) / total)


cdef inline void log_softmax_line(const floating* x, floating* y, Py_ssize_t n, Py_ssize_t step) noexcept nogil:
    cdef LineMax m = line_max(x, n, step)
    cdef Py_ssize_t i
    cdef double v, d, b, lo, log_total
    if m.has_nan or m.value == -INFINITY:
        for i in range(n):
            y[i * step] = NAN
        return
    if m.value == INFINITY:
        # scipy: (x - 0) - log(inf) is nan at the +inf entries and -inf elsewhere
        for i in range(n):
            y[i * step] = NAN if x[i * step] == INFINITY else -INFINITY
        return
    log_total = log1p(sum_exp_others(x, n, step, m))
    for i in range(n):
        v = x[i * step]
        d = v - m.value
        b = d - v
        lo = (v - (d - b)) + (-m.value - b)
        y[i * step] = <floating>((d - log_total) + lo) if d != -INFINITY else -INFINITY


cdef inline double logsumexp_line(const floating* x, Py_ssize_t n, Py_ssize_t step) noexcept nogil:
    cdef LineMax m = line_max(x, n, step)
    if m.has_nan:
        return NAN
    if m.value == INFINITY or m.value == -INFINITY:
        return m.value
    return m.value + log1p(sum_exp_others(x, n, step, m))


# ---- 2. parallel drivers ----------------------------------------------------------------------------------------

cdef void softmax_lines(const floating[:, :, ::1] x, floating[:, :, ::1] y, bint log, int n_threads) noexcept nogil:
    cdef Py_ssize_t outer = x.shape[0], n = x.shape[1], inner = x.shape[2]
    cdef Py_ssize_t line, o, j
    cdef const floating* xs = &x[0, 0, 0]
    cdef floating* ys = &y[0, 0, 0]
    for line in prange(outer * inner, schedule="static", num_threads=n_threads):
        o = line // inner
        j = line - o * inner
        if log:
            log_softmax_line(xs + o * n * inner + j, ys + o * n * inner + j, n, inner)
        else:
            softmax_line(xs + o * n * inner + j, ys + o * n * inner + j, n, inner)


cdef void logsumexp_lines(const floating[:, :, ::1] x, floating[:, ::1] y, int n_threads) noexcept nogil:
    cdef Py_ssize_t outer = x.shape[0], n = x.shape[1], inner = x.shape[2]
    cdef Py_ssize_t line, o, j
    cdef const floating* xs = &x[0, 0, 0]
    for line in prange(outer * inner, schedule="static", num_threads=n_threads):
        o = line // inner
        j = line - o * inner
        y[o, j] = <floating>logsumexp_line(xs + o * n * inner + j, n, inner)


# ---- 3. Python front --------------------------------------------------------------------------------------------

def softmax(x, out, int n_threads):
    """softmax over axis 1 of C-contiguous float32/float64 (outer, n, inner) arrays; n >= 1, outer * inner >= 1."""
    if x.itemsize == 4:
        softmax_lines[float](x, out, False, n_threads)
    else:
        softmax_lines[double](x, out, False, n_threads)


def log_softmax(x, out, int n_threads):
    if x.itemsize == 4:
        softmax_lines[float](x, out, True, n_threads)
    else:
        softmax_lines[double](x, out, True, n_threads)


def logsumexp(x, out, int n_threads):
    """logsumexp over axis 1 of (outer, n, inner) into out of shape (outer, inner)."""
    if x.itemsize == 4:
        logsumexp_lines[float](x, out, n_threads)
    else:
        logsumexp_lines[double](x, out, n_threads)


def cpu_info():
    """The SIMD path the kernels run and the CPU features it was chosen from."""
    return {"simd_path": "scalar", "cpu_features": ()}
