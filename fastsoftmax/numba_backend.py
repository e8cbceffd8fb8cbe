"""Numba backend of fastsoftmax.

Contract (see package docs): ``softmax(x, out, n_threads)``,
``log_softmax(x, out, n_threads)`` and ``logsumexp(x, out, n_threads)`` where
``x`` is a C-contiguous float32/float64 array of shape (outer, n, inner) and the
reduction runs over axis 1.  The caller validates shapes and dtypes.

Design
------
* exp is our own branch-free, LLVM-vectorizable implementation (no SVML with
  the registry llvmlite): n = round(d*log2 e), reduction r = d - n*ln2, a
  minimax polynomial for e^r, and 2^n built by writing exponent bits.
  float32 input is evaluated in float64 (x - max is then exact, one ln2
  constant and a degree-6 polynomial suffice, one final rounding).  float64
  uses a two-part ln2, a degree-11 polynomial and an error-free TwoSum of
  (x, -max) folded into r, plus a two-factor 2^n for subnormal results.
* Fast-math flags come from the single constant FASTMATH (no nnan/ninf, so
  -inf logits stay exact).  'reassoc' is given only to reduction/streaming
  loops; exp, TwoSum, Kahan and the (k - 1) + s helpers are compiled without
  it (it would delete them) and keep their own instruction flags after LLVM
  inlines them into the vectorized loops.
* Sums accumulate in float64: float32 in vectorized blocks; float64 in 16
  Kahan-compensated lanes.  Terms equal to 1 (x == max) are counted apart
  from the others, so log_softmax/logsumexp use log1p(others).
* Layouts: rows (inner == 1) one row per task (max, exp+sum stored into out,
  scale); long float32 rows use a single-pass blocked online max/sum; few
  long rows are split into per-thread chunks merged with the running-max
  formula; columns (inner > 1) are vectorized across the inner dimension.
* Non-finite slices are detected cheaply (non-finite max or NaN sum) and then
  rewritten by a scalar path implementing scipy.special's semantics.
"""
import importlib
import math
import os
import threading

import numpy as np
import numba
from numba import njit, prange, types
from numba.extending import intrinsic, overload
from llvmlite import ir

__all__ = ["softmax", "log_softmax", "logsumexp", "FASTMATH"]

# ---------------------------------------------------------------------------
# Threading layer: numba's default may pick 'workqueue', which aborts the
# process when parallel code is entered from several Python threads at once.
# ---------------------------------------------------------------------------


def _layer_is_launched():
    try:
        numba.threading_layer()
        return True
    except ValueError:
        return False


def _select_threading_layer():
    """Pick a thread-safe layer unless the user chose one explicitly."""
    if os.environ.get("NUMBA_THREADING_LAYER"):
        return
    if str(numba.config.THREADING_LAYER).lower() != "default":
        return
    if _layer_is_launched():
        return
    for name, mod in (("omp", "omppool"), ("tbb", "tbbpool")):
        try:
            importlib.import_module("numba.np.ufunc." + mod)
        except Exception:  # pragma: no cover - depends on the install
            continue
        numba.config.THREADING_LAYER = name
        return


_select_threading_layer()

_PAR_LOCK = threading.Lock()
_PAR_SAFE = None  # None: unknown yet; True: layer is thread-safe


def _run_parallel(fn, args, n_threads):
    """Call a parallel kernel with n_threads threads, serializing entry if
    the active threading layer is not thread-safe (workqueue)."""
    global _PAR_SAFE
    nt = max(1, min(int(n_threads), numba.config.NUMBA_NUM_THREADS))
    safe = _PAR_SAFE
    if safe:
        prev = numba.get_num_threads()
        numba.set_num_threads(nt)
        try:
            return fn(*args)
        finally:
            numba.set_num_threads(prev)
    with _PAR_LOCK:
        prev = numba.get_num_threads()
        numba.set_num_threads(nt)
        try:
            return fn(*args)
        finally:
            numba.set_num_threads(prev)
            if _PAR_SAFE is None:
                try:
                    _PAR_SAFE = numba.threading_layer() in ("omp", "tbb")
                except ValueError:  # pragma: no cover
                    _PAR_SAFE = False


# ---------------------------------------------------------------------------
# Fast-math flags
# ---------------------------------------------------------------------------
FASTMATH = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})
_FM_RED = set(FASTMATH)                     # reduction / streaming loops
_FM_EXACT = set(FASTMATH - {"reassoc"})     # exp, TwoSum, Kahan


def _cache_probe():  # pragma: no cover - only decorated, never called
    return 0


def _cache_usable():
    """numba raises at decoration time (cache=True) when no cache locator is
    usable (e.g. unwritable NUMBA_CACHE_DIR *and* source tree); fall back to
    in-memory compilation then.  Save failures later are only warnings."""
    try:
        njit(cache=True)(_cache_probe)
        return True
    except Exception:
        return False


# All kernels (serial and parallel) are cached on disk when possible: with
# numba 0.68 cached parallel kernels load and run correctly (tested,
# including concurrent entry), and it cuts the first call from seconds to
# ~0.1 s per kernel.
_CACHE = _cache_usable()

# ---------------------------------------------------------------------------
# Intrinsics
# ---------------------------------------------------------------------------


@intrinsic
def _i64_as_f64(typingctx, v):
    if v != types.int64:
        return None
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


@intrinsic
def _f64_as_i64(typingctx, v):
    if v != types.float64:
        return None
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))

    return sig, codegen


@intrinsic
def _maxnum(typingctx, a, b):
    """llvm.maxnum with 'nnan' on this one call: vectorizes as a reduction
    and lowers to a bare vmaxps/vmaxpd (2.5x faster than NaN-exact maxnum).
    With a NaN input the result may be NaN or ignore it; callers never rely
    on either: a NaN anywhere in a slice also makes its exp-sum NaN, which
    routes the slice to the scalar special-value path."""
    if not isinstance(a, types.Float) or a != b:
        return None
    sig = a(a, b)

    def codegen(context, builder, signature, args):
        lt = context.get_value_type(signature.return_type)
        fn = builder.module.declare_intrinsic(
            "llvm.maxnum", [lt], ir.FunctionType(lt, [lt, lt]))
        return builder.call(fn, args, fastmath=("nnan",))

    return sig, codegen


# ---------------------------------------------------------------------------
# exp(x - m)
# ---------------------------------------------------------------------------
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01   # 32 trailing zero bits
_LN2_LO = 1.90821492927058770002e-10
_LN2 = 0.6931471805599453
_MAGIC = 6755399441055744.0             # 1.5 * 2**52

# (e^r - 1)/r on [-ln2/2, ln2/2], near-minimax (Chebyshev fit, mpmath).
# degree 10 -> |rel err of e^r| < 2^-56.5
_Q64 = (1.0, 0.5000000000000006, 0.1666666666666667, 0.04166666666657314,
        0.008333333333326141, 0.0013888888932488599, 0.00019841269874800493,
        2.4801504346997686e-05, 2.7557255425746435e-06,
        2.7626357241447223e-07, 2.510520637395701e-08)
# degree 5 -> |rel err of e^r| < 2^-27.5 (float32 results)
_Q32 = (1.00000001077157, 0.5000000013457727, 0.16666505260408124,
        0.04166646500604005, 0.008369148490856347, 0.0013933641031986701)

(_A0, _A1, _A2, _A3, _A4, _A5, _A6, _A7, _A8, _A9, _A10) = _Q64
(_B0, _B1, _B2, _B3, _B4, _B5) = _Q32


@njit(error_model="numpy", fastmath=_FM_EXACT, cache=_CACHE)
def _exp_rel64(x, m):
    """e^(x - m) in float64, x <= m, m finite. NaN x -> NaN, -inf x -> 0."""
    d = x - m
    bb = d - x                               # TwoSum(x, -m): d + lo == x - m
    lo = (x - (d - bb)) + (-m - bb)
    n = np.rint(d * _LOG2E)
    n = n if n > -1100.0 else -1100.0       # also maps NaN to a finite value
    r = ((d - n * _LN2_HI) - n * _LN2_LO) + lo
    q = _A10
    q = q * r + _A9
    q = q * r + _A8
    q = q * r + _A7
    q = q * r + _A6
    q = q * r + _A5
    q = q * r + _A4
    q = q * r + _A3
    q = q * r + _A2
    q = q * r + _A1
    q = q * r + _A0
    p = 1.0 + r * q
    ni = np.int32(n)
    n1 = ni >> np.int32(1)                   # two factors: subnormal results
    n2 = ni - n1
    s1 = _i64_as_f64((np.int64(n1) + 1023) << 52)
    s2 = _i64_as_f64((np.int64(n2) + 1023) << 52)
    e = (p * s1) * s2
    return 0.0 if d < -746.0 else e


@njit(error_model="numpy", fastmath=_FM_EXACT, cache=_CACHE)
def _exp_rel32(x, m):
    """e^(x - m) evaluated in float64 for float32 x (m: max of the slice).

    d = x - m is exact (or nearly) in float64, so a single-constant ln2
    reduction and a degree-6 polynomial give ~2^-27 relative accuracy, far
    below float32 resolution.  -inf maps to e^-200 (0 once scaled and
    rounded to float32; negligible in any float64 sum); NaN propagates.
    The magic-number rounding is safe here: this function is compiled
    without 'reassoc' (its instructions keep their flags when inlined)."""
    d = np.float64(x) - np.float64(m)
    d = -200.0 if d < -200.0 else d          # one vmaxpd; keeps NaN
    t = d * _LOG2E + _MAGIC                  # rint(d*log2 e) in the low bits
    n = t - _MAGIC
    r = d - n * _LN2
    q = _B5
    q = q * r + _B4
    q = q * r + _B3
    q = q * r + _B2
    q = q * r + _B1
    q = q * r + _B0
    p = 1.0 + r * q
    return p * _i64_as_f64((_f64_as_i64(t) + 1023) << 52)


@njit(error_model="numpy", fastmath=_FM_EXACT, cache=_CACHE)
def _lsm_val64(x, m, L):
    """(x - m) - L with x - m kept exactly (TwoSum)."""
    d = x - m
    bb = d - x
    lo = (x - (d - bb)) + (-m - bb)
    v = (d - L) + lo
    return d if d == -np.inf else v


@njit(error_model="numpy", fastmath=_FM_EXACT, cache=_CACHE)
def _lsm_val32(x, m, L):
    return (np.float64(x) - m) - L


@njit(error_model="numpy", fastmath=_FM_EXACT, cache=_CACHE)
def _kahan_add(s, c, v):
    y = v - c
    t = s + y
    c = (t - s) - y
    return t, c


@njit(error_model="numpy", fastmath=_FM_EXACT, cache=_CACHE)
def _log1p_rest(k, s):
    """log(k + s) = log1p((k - 1) + s) for k >= 1 exact maxima and the sum s
    of the other terms.  Must not be reassociated into (k + s) - 1."""
    return math.log1p((k - 1.0) + s)


@njit(error_model="numpy", fastmath=_FM_EXACT, cache=_CACHE)
def _split_one(e):
    """(1.0, 0.0) if e == 1 else (0.0, e): exact, no selects (vectorizes).
    Compiled without 'reassoc' so that sum += e - one is not rewritten as
    (sum + e) - one, which would lose the small terms."""
    one = np.float64(e == 1.0)
    return one, e - one


def _erel(x, m):  # pragma: no cover - replaced by the overload
    raise NotImplementedError


@overload(_erel)
def _ov_erel(x, m):
    if x == types.float32:
        return lambda x, m: _exp_rel32(x, m)
    return lambda x, m: _exp_rel64(x, m)


def _lsm_val(x, m, L):  # pragma: no cover
    raise NotImplementedError


@overload(_lsm_val)
def _ov_lsm_val(x, m, L):
    if x == types.float32:
        return lambda x, m, L: _lsm_val32(x, m, L)
    return lambda x, m, L: _lsm_val64(x, m, L)


# ---------------------------------------------------------------------------
# 1-D range kernels (rows)
# ---------------------------------------------------------------------------
# float32: block of the vectorized float64 partial sums (combined with Kahan)
_BLK32 = 1024
_ROW_CACHE_BYTES = 256 * 1024   # rows up to this size: store exp, then scale

_OP_SOFTMAX = 0
_OP_LOGSOFTMAX = 1
_OP_LSE = 2


# Note: loops run over 0..len of a slice, never over range(lo, hi) on the
# full array: numba's negative-index wraparound check on a possibly negative
# index prevents LLVM from vectorizing.

@njit(error_model="numpy", fastmath=_FM_RED, cache=_CACHE)
def _max_range(x, lo, hi):
    xs = x[lo:hi]
    m = xs[0]
    for i in range(1, xs.shape[0]):
        m = _maxnum(m, xs[i])
    return m


_LANES = 16


@njit(error_model="numpy", fastmath=_FM_RED, cache=_CACHE)
def _lanes_finish(s, c, S, C):
    for j in range(_LANES):
        S, C = _kahan_add(S, C, s[j])
        S, C = _kahan_add(S, C, -c[j])
    return S - C


@njit(error_model="numpy", fastmath=_FM_RED, cache=_CACHE)
def _stats_lanes(x, lo, hi, m):
    """float64 version of _stats_range: Kahan-compensated in 16 lanes (the
    lane loop is element-wise, so it vectorizes without 'reassoc')."""
    xs = x[lo:hi]
    n = xs.shape[0]
    nf = n - n % _LANES
    k = np.zeros(_LANES)
    s = np.zeros(_LANES)
    c = np.zeros(_LANES)
    for b in range(0, nf, _LANES):
        xb = xs[b:b + _LANES]
        for j in range(_LANES):
            one, rest = _split_one(_erel(xb[j], m))
            k[j] += one
            s[j], c[j] = _kahan_add(s[j], c[j], rest)
    S = 0.0
    C = 0.0
    K = 0.0
    for i in range(nf, n):
        one, rest = _split_one(_erel(xs[i], m))
        K += one
        S, C = _kahan_add(S, C, rest)
    for j in range(_LANES):
        K += k[j]
    return K, _lanes_finish(s, c, S, C)


@njit(error_model="numpy", fastmath=_FM_RED, cache=_CACHE)
def _sum_lanes(x, lo, hi, m):
    xs = x[lo:hi]
    n = xs.shape[0]
    nf = n - n % _LANES
    s = np.zeros(_LANES)
    c = np.zeros(_LANES)
    for b in range(0, nf, _LANES):
        xb = xs[b:b + _LANES]
        for j in range(_LANES):
            s[j], c[j] = _kahan_add(s[j], c[j], _erel(xb[j], m))
    S = 0.0
    C = 0.0
    for i in range(nf, n):
        S, C = _kahan_add(S, C, _erel(xs[i], m))
    return _lanes_finish(s, c, S, C)


@njit(error_model="numpy", fastmath=_FM_RED, cache=_CACHE)
def _sum_store_lanes(x, lo, hi, m, out):
    xs = x[lo:hi]
    os_ = out[lo:hi]
    n = xs.shape[0]
    nf = n - n % _LANES
    s = np.zeros(_LANES)
    c = np.zeros(_LANES)
    for b in range(0, nf, _LANES):
        xb = xs[b:b + _LANES]
        ob = os_[b:b + _LANES]
        for j in range(_LANES):
            e = _erel(xb[j], m)
            ob[j] = e
            s[j], c[j] = _kahan_add(s[j], c[j], e)
    S = 0.0
    C = 0.0
    for i in range(nf, n):
        e = _erel(xs[i], m)
        os_[i] = e
        S, C = _kahan_add(S, C, e)
    return _lanes_finish(s, c, S, C)


# float32 loops: LLVM vectorizes by 16 (4 lanes x 4) and leaves up to 15
# scalar remainder iterations, which cost a lot on short rows.  The main loops
# therefore run over a multiple of _VT elements and the remainder is done as
# one overlapping window of the last _VT elements, weighted 0/1 (vectorized).
_VT = 16


@njit(error_model="numpy", fastmath=_FM_RED, cache=_CACHE)
def _stats_range(x, lo, hi, m):
    """(k, s): k = #terms equal to 1 (x == max), s = sum of the others.

    Written without selects (e - [e == 1]) so that LLVM vectorizes it."""
    if x.itemsize == 8:
        return _stats_lanes(x, lo, hi, m)
    xs = x[lo:hi]
    n = xs.shape[0]
    nf = n - n % _VT if n >= _VT else n
    k = 0.0
    s = 0.0
    c = 0.0
    for b in range(0, nf, _BLK32):
        xb = xs[b:min(b + _BLK32, nf)]
        kb = 0.0
        sb = 0.0
        for i in range(xb.shape[0]):
            one, rest = _split_one(_erel(xb[i], m))
            kb += one
            sb += rest
        k += kb
        s, c = _kahan_add(s, c, sb)
    if nf < n:
        first = nf - (n - _VT)
        xt = xs[n - _VT:n]
        kb = 0.0
        sb = 0.0
        for j in range(_VT):
            w = np.float64(j >= first)
            one, rest = _split_one(_erel(xt[j], m))
            kb += one * w
            sb += rest * w
        k += kb
        s, c = _kahan_add(s, c, sb)
    return k, s - c


@njit(error_model="numpy", fastmath=_FM_RED, cache=_CACHE)
def _sum_range(x, lo, hi, m):
    """sum of e^(x - m) (blocked, Kahan across blocks)."""
    if x.itemsize == 8:
        return _sum_lanes(x, lo, hi, m)
    xs = x[lo:hi]
    n = xs.shape[0]
    nf = n - n % _VT if n >= _VT else n
    s = 0.0
    c = 0.0
    for b in range(0, nf, _BLK32):
        xb = xs[b:min(b + _BLK32, nf)]
        sb = 0.0
        for i in range(xb.shape[0]):
            sb += _erel(xb[i], m)
        s, c = _kahan_add(s, c, sb)
    if nf < n:
        first = nf - (n - _VT)
        xt = xs[n - _VT:n]
        sb = 0.0
        for j in range(_VT):
            sb += _erel(xt[j], m) * np.float64(j >= first)
        s, c = _kahan_add(s, c, sb)
    return s - c


@njit(error_model="numpy", fastmath=_FM_RED, cache=_CACHE)
def _sum_store_range(x, lo, hi, m, out):
    """Like _sum_range but also stores e^(x - m) into out."""
    if x.itemsize == 8:
        return _sum_store_lanes(x, lo, hi, m, out)
    xs = x[lo:hi]
    os_ = out[lo:hi]
    n = xs.shape[0]
    nf = n - n % _VT if n >= _VT else n
    s = 0.0
    c = 0.0
    for b in range(0, nf, _BLK32):
        be = min(b + _BLK32, nf)
        xb = xs[b:be]
        ob = os_[b:be]
        sb = 0.0
        for i in range(xb.shape[0]):
            e = _erel(xb[i], m)
            ob[i] = e
            sb += e
        s, c = _kahan_add(s, c, sb)
    if nf < n:
        # overlapping window: re-stores identical values before nf
        first = nf - (n - _VT)
        xt = xs[n - _VT:n]
        ot = os_[n - _VT:n]
        sb = 0.0
        for j in range(_VT):
            e = _erel(xt[j], m)
            ot[j] = e
            sb += e * np.float64(j >= first)
        s, c = _kahan_add(s, c, sb)
    return s - c


@njit(error_model="numpy", fastmath=_FM_RED, cache=_CACHE)
def _scale_range(out, lo, hi, s):
    """out /= s.  float32: multiply by 1/s in float64 (exact enough);
    float64: true division (saves the rounding of 1/s)."""
    o = out[lo:hi]
    if o.itemsize == 8:
        for i in range(o.shape[0]):
            o[i] = o[i] / s
    else:
        inv = 1.0 / s
        for i in range(o.shape[0]):
            o[i] = np.float64(o[i]) * inv


@njit(error_model="numpy", fastmath=_FM_RED, cache=_CACHE)
def _softmax_out_range(x, lo, hi, m, s, out):
    xs = x[lo:hi]
    o = out[lo:hi]
    if o.itemsize == 8:
        for i in range(xs.shape[0]):
            o[i] = _erel(xs[i], m) / s
    else:
        inv = 1.0 / s
        n = xs.shape[0]
        nf = n - n % _VT if n >= _VT else n
        for i in range(nf):
            o[i] = _erel(xs[i], m) * inv
        if nf < n:   # overlapping window (idempotent stores)
            xt = xs[n - _VT:n]
            ot = o[n - _VT:n]
            for j in range(_VT):
                ot[j] = _erel(xt[j], m) * inv


@njit(error_model="numpy", fastmath=_FM_RED, cache=_CACHE)
def _lsm_out_range(x, lo, hi, m, L, out):
    xs = x[lo:hi]
    o = out[lo:hi]
    for i in range(xs.shape[0]):
        o[i] = _lsm_val(xs[i], m, L)


@njit(error_model="numpy", cache=_CACHE)
def _special_slice(x, out, op):
    """Scalar path for a slice with a non-finite max or a NaN sum.

    x: 1-D (possibly strided) view of the slice; out: its output view
    (length 1 for logsumexp).  Implements scipy.special semantics."""
    n = x.shape[0]
    has_nan = False
    has_pinf = False
    all_ninf = True
    for i in range(n):
        v = x[i]
        if v != v:
            has_nan = True
        elif v == np.inf:
            has_pinf = True
            all_ninf = False
        elif v != -np.inf:
            all_ninf = False
    if op == _OP_LSE:
        if has_nan:
            out[0] = np.nan
        elif has_pinf:
            out[0] = np.inf
        elif all_ninf:
            out[0] = -np.inf
        else:  # pragma: no cover - not reached (finite slices)
            m = np.float64(x[0])
            for i in range(n):
                m = max(m, np.float64(x[i]))
            s = 0.0
            for i in range(n):
                s += math.exp(np.float64(x[i]) - m)
            out[0] = m + math.log(s)
        return
    if op == _OP_SOFTMAX:
        if has_nan or has_pinf or all_ninf:
            for i in range(n):
                out[i] = np.nan
            return
    else:
        if has_nan or all_ninf:
            for i in range(n):
                out[i] = np.nan
            return
        if has_pinf:
            for i in range(n):
                out[i] = np.nan if x[i] == np.inf else -np.inf
            return
    # pragma: no cover - finite slice reaching here; plain scalar fallback
    m = np.float64(x[0])
    for i in range(n):
        m = max(m, np.float64(x[i]))
    s = 0.0
    for i in range(n):
        s += math.exp(np.float64(x[i]) - m)
    for i in range(n):
        if op == _OP_SOFTMAX:
            out[i] = math.exp(np.float64(x[i]) - m) / s
        else:
            out[i] = (np.float64(x[i]) - m) - math.log(s)


@njit(error_model="numpy", fastmath=_FM_RED, cache=_CACHE)
def _row(x, out, op):
    """One full row x (1-D contiguous); out is the row output (length 1 for
    logsumexp)."""
    n = x.shape[0]
    small = n * x.itemsize <= _ROW_CACHE_BYTES
    if x.itemsize == 4 and not small:
        # long float32 row: single pass for the statistics
        m, k, s, bad = _online_stats(x, 0, n, op != _OP_SOFTMAX)
        if bad or not np.isfinite(m) or s != s:
            _special_slice(x, out, op)
            return
        if op == _OP_SOFTMAX:
            s = k + s
    else:
        mx = _max_range(x, 0, n)
        m = np.float64(mx)
        if not np.isfinite(m):
            _special_slice(x, out, op)
            return
        k = 0.0
        if op == _OP_SOFTMAX:
            if small:
                s = _sum_store_range(x, 0, n, m, out)
            else:
                s = _sum_range(x, 0, n, m)
        else:
            k, s = _stats_range(x, 0, n, m)
        if s != s:
            _special_slice(x, out, op)
            return
    if op == _OP_SOFTMAX:
        if small:
            _scale_range(out, 0, n, s)
        else:
            _softmax_out_range(x, 0, n, m, s, out)
    else:
        L = _log1p_rest(k, s)
        if op == _OP_LSE:
            out[0] = m + L
        else:
            _lsm_out_range(x, 0, n, m, L, out)


@njit(error_model="numpy", cache=_CACHE)
def _rows_serial(x2, out2, op):
    for r in range(x2.shape[0]):
        _row(x2[r], out2[r], op)


@njit(error_model="numpy", parallel=True, cache=_CACHE)
def _rows_parallel(x2, out2, op):
    for r in prange(x2.shape[0]):
        _row(x2[r], out2[r], op)


# ---------------------------------------------------------------------------
# Few long rows: split every row into chunks across threads.
# ---------------------------------------------------------------------------
_OBLK = 4096   # block of the single-pass (online) statistics


@njit(error_model="numpy", fastmath=_FM_RED, cache=_CACHE)
def _nan_count(x, lo, hi):
    xs = x[lo:hi]
    c = 0
    for i in range(xs.shape[0]):
        c += xs[i] != xs[i]
    return c


@njit(error_model="numpy", fastmath=_FM_EXACT, cache=_CACHE)
def _merge(M, K, S, mb, kb, sb):
    """Merge partial statistics (max, #terms == 1, sum of the others) with
    the running-max formula."""
    if mb > M:
        return mb, kb, (S + K) * math.exp(M - mb) + sb
    if mb == M:
        return M, K + kb, S + sb
    return M, K, S + (kb + sb) * math.exp(mb - M)


@njit(error_model="numpy", fastmath=_FM_RED, cache=_CACHE)
def _online_stats(x, lo, hi, split):
    """Single pass over x[lo:hi] (block max, then exp-sum from L1 relative to
    it, merged).  Returns (M, K, S, bad); bad means the slice needs the
    special path (NaN or +inf seen).  Used for float32: the rescaling
    roundings are float64 ones, far below float32 resolution."""
    M = -np.inf
    K = 0.0
    S = 0.0
    for b in range(lo, hi, _OBLK):
        be = min(b + _OBLK, hi)
        mx = _max_range(x, b, be)
        mb = np.float64(mx)
        if mb == np.inf:
            return M, K, S, True
        if not (mb > -np.inf):          # all -inf (or all NaN) block
            if _nan_count(x, b, be) > 0:
                return M, K, S, True
            continue
        if split:
            kb, sb = _stats_range(x, b, be, mx)
        else:   # softmax needs only the total: cheaper plain sum
            kb = 0.0
            sb = _sum_range(x, b, be, mx)
        if sb != sb:
            return M, K, S, True
        M, K, S = _merge(M, K, S, mb, kb, sb)
    return M, K, S, False


@njit(error_model="numpy", parallel=True, cache=_CACHE)
def _bigrows_parallel(x2, out2, op, nchunks):
    """Few long rows: every row is split into nchunks chunks."""
    R = x2.shape[0]
    n = x2.shape[1]
    csize = (n + nchunks - 1) // nchunks
    items = R * nchunks
    online = x2.itemsize == 4
    cmax = np.full(items, -np.inf)
    ck = np.zeros(items, dtype=np.float64)
    cs = np.zeros(items, dtype=np.float64)
    cbad = np.zeros(items, dtype=np.bool_)
    for it in prange(items):
        r = it // nchunks
        lo = (it % nchunks) * csize
        hi = min(lo + csize, n)
        if lo < hi:
            if online:
                M, K, S, bad = _online_stats(x2[r], lo, hi,
                                              op != _OP_SOFTMAX)
                cmax[it] = M
                ck[it] = K
                cs[it] = S
                cbad[it] = bad
            else:
                cmax[it] = np.float64(_max_range(x2[r], lo, hi))
    rm = np.full(R, -np.inf)
    rk = np.zeros(R, dtype=np.float64)
    rs = np.zeros(R, dtype=np.float64)
    special = np.zeros(R, dtype=np.bool_)
    for r in range(R):
        for c in range(nchunks):
            it = r * nchunks + c
            v = cmax[it]
            if v != v or cbad[it]:
                special[r] = True
            elif online:
                if v > -np.inf:
                    rm[r], rk[r], rs[r] = _merge(rm[r], rk[r], rs[r],
                                                 v, ck[it], cs[it])
            else:
                rm[r] = v if v > rm[r] else rm[r]
    if not online:
        for it in prange(items):
            r = it // nchunks
            m = rm[r]
            lo = (it % nchunks) * csize
            hi = min(lo + csize, n)
            if lo < hi and np.isfinite(m) and not special[r]:
                k, s = _stats_range(x2[r], lo, hi, m)
                ck[it] = k
                cs[it] = s
        for r in range(R):
            k = 0.0
            s = 0.0
            c = 0.0
            for j in range(nchunks):
                k += ck[r * nchunks + j]
                s, c = _kahan_add(s, c, cs[r * nchunks + j])
            rk[r] = k
            rs[r] = s - c
    for r in range(R):
        if not np.isfinite(rm[r]) or rs[r] != rs[r]:
            special[r] = True
        if special[r]:
            _special_slice(x2[r], out2[r], op)
        elif op == _OP_LSE:
            out2[r, 0] = rm[r] + _log1p_rest(rk[r], rs[r])
    if op == _OP_LSE:
        return
    for it in prange(items):
        r = it // nchunks
        lo = (it % nchunks) * csize
        hi = min(lo + csize, n)
        if lo < hi and not special[r]:
            if op == _OP_SOFTMAX:
                _softmax_out_range(x2[r], lo, hi, rm[r], rk[r] + rs[r],
                                   out2[r])
            else:
                L = _log1p_rest(rk[r], rs[r])
                _lsm_out_range(x2[r], lo, hi, rm[r], L, out2[r])


# ---------------------------------------------------------------------------
# Columns (inner > 1): vectorize across the inner dimension.
# ---------------------------------------------------------------------------
@njit(error_model="numpy", fastmath=_FM_RED, cache=_CACHE)
def _col_max(xr, mx):
    for j in range(mx.shape[0]):
        mx[j] = _maxnum(mx[j], xr[j])


@njit(error_model="numpy", fastmath=_FM_RED, cache=_CACHE)
def _col_sum_store(xr, orow, m, s, c):
    if xr.itemsize == 8:   # float64: Kahan-compensated column sums
        for j in range(m.shape[0]):
            e = _erel(xr[j], m[j])
            orow[j] = e
            s[j], c[j] = _kahan_add(s[j], c[j], e)
    else:                  # float32: float64 sums are accurate enough
        for j in range(m.shape[0]):
            e = _erel(xr[j], m[j])
            orow[j] = e
            s[j] += e


@njit(error_model="numpy", fastmath=_FM_RED, cache=_CACHE)
def _col_stats(xr, m, k, s, c):
    if xr.itemsize == 8:
        for j in range(m.shape[0]):
            one, rest = _split_one(_erel(xr[j], m[j]))
            k[j] += one
            s[j], c[j] = _kahan_add(s[j], c[j], rest)
    else:
        for j in range(m.shape[0]):
            one, rest = _split_one(_erel(xr[j], m[j]))
            k[j] += one
            s[j] += rest


@njit(error_model="numpy", fastmath=_FM_RED, cache=_CACHE)
def _col_scale(orow, f):
    if orow.itemsize == 8:
        for j in range(f.shape[0]):
            orow[j] = orow[j] / f[j]
    else:
        for j in range(f.shape[0]):
            orow[j] = np.float64(orow[j]) * f[j]


@njit(error_model="numpy", fastmath=_FM_RED, cache=_CACHE)
def _col_lsm(xr, orow, m, f):
    for j in range(f.shape[0]):
        orow[j] = _lsm_val(xr[j], m[j], f[j])


@njit(error_model="numpy", fastmath=_FM_RED, cache=_CACHE)
def _col_tile(x3, out3, o, j0, j1, op):
    """Columns j0..j1 of x3[o]: reductions over axis 0 of x3[o], vectorized
    across the columns (contiguous)."""
    n = x3.shape[1]
    W = j1 - j0
    xo = x3[o]
    oo = out3[o]
    mx = xo[0, j0:j1].copy()
    for i in range(1, n):
        _col_max(xo[i, j0:j1], mx)
    m = np.empty(W, dtype=np.float64)
    for j in range(W):
        m[j] = np.float64(mx[j])
    k = np.zeros(W, dtype=np.float64)
    s = np.zeros(W, dtype=np.float64)
    c = np.zeros(W, dtype=np.float64)
    if op == _OP_SOFTMAX:
        for i in range(n):
            _col_sum_store(xo[i, j0:j1], oo[i, j0:j1], m, s, c)
    else:
        for i in range(n):
            _col_stats(xo[i, j0:j1], m, k, s, c)
    nspecial = 0
    f = np.empty(W, dtype=np.float64)
    for j in range(W):
        sj = s[j] - c[j]
        if not np.isfinite(m[j]) or sj != sj:
            nspecial += 1
            f[j] = 1.0
        elif op == _OP_SOFTMAX:
            f[j] = sj if xo.itemsize == 8 else 1.0 / sj
        else:
            f[j] = _log1p_rest(k[j], sj)
    if op == _OP_LSE:
        for j in range(W):
            oo[0, j0 + j] = m[j] + f[j]
    elif op == _OP_SOFTMAX:
        for i in range(n):
            _col_scale(oo[i, j0:j1], f)
    else:
        for i in range(n):
            _col_lsm(xo[i, j0:j1], oo[i, j0:j1], m, f)
    if nspecial:
        for j in range(W):
            sj = s[j] - c[j]
            if not np.isfinite(m[j]) or sj != sj:
                _special_slice(xo[:, j0 + j], oo[:, j0 + j], op)


@njit(error_model="numpy", cache=_CACHE)
def _cols_serial(x3, out3, op, W):
    inner = x3.shape[2]
    nt = (inner + W - 1) // W
    for it in range(x3.shape[0] * nt):
        o = it // nt
        j0 = (it % nt) * W
        _col_tile(x3, out3, o, j0, min(j0 + W, inner), op)


@njit(error_model="numpy", parallel=True, cache=_CACHE)
def _cols_parallel(x3, out3, op, W):
    inner = x3.shape[2]
    nt = (inner + W - 1) // W
    for it in prange(x3.shape[0] * nt):
        o = it // nt
        j0 = (it % nt) * W
        _col_tile(x3, out3, o, j0, min(j0 + W, inner), op)


# ---------------------------------------------------------------------------
# Dispatch
# ---------------------------------------------------------------------------
_SERIAL_BELOW = 32768   # elements: below this, threads cost more than they save


def _col_width(n, inner, nthreads, outer):
    """Column tile width.  Per-row-slice overhead dominates narrow tiles, so
    tiles are wide (whole width when serial); with few outer slices the
    width is split so every thread gets work."""
    if nthreads <= 1 or outer >= 2 * nthreads:
        return inner
    per = -(-inner // nthreads)
    per = -(-per // 16) * 16
    return max(1, min(inner, max(per, 256)))


def _compute(x, out, n_threads, op):
    outer, n, inner = x.shape
    if x.size == 0:
        return
    nt = max(1, min(int(n_threads), numba.config.NUMBA_NUM_THREADS))
    if x.size < _SERIAL_BELOW:
        nt = 1
    if inner == 1:
        x2 = x.reshape(outer, n)
        out2 = out.reshape(outer, -1)
        if nt == 1:
            _rows_serial(x2, out2, op)
        elif outer >= 4 * nt:
            _run_parallel(_rows_parallel, (x2, out2, op), nt)
        else:
            _run_parallel(_bigrows_parallel, (x2, out2, op, nt), nt)
    else:
        out3 = out.reshape(outer, -1, inner)
        W = _col_width(n, inner, nt, outer)
        if nt == 1:
            _cols_serial(x, out3, op, W)
        else:
            _run_parallel(_cols_parallel, (x, out3, op, W), nt)


def softmax(x, out, n_threads):
    _compute(x, out, n_threads, _OP_SOFTMAX)


def log_softmax(x, out, n_threads):
    _compute(x, out, n_threads, _OP_LOGSOFTMAX)


def logsumexp(x, out, n_threads):
    _compute(x, out, n_threads, _OP_LSE)
