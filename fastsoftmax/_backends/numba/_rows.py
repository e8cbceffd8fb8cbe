"""The numba backend's row kernels: one contiguous row (or a slice of one), serial; _tasks.py runs them on threads.

Sums accumulate in float64: float32 terms in vectorized blocks combined with Kahan, float64 terms in 16
Kahan-compensated lanes. The log paths count the terms equal to 1 (x == max) apart from the others, so that
log_softmax and logsumexp take log1p(others) and keep their digits for peaked rows. A row whose max is not finite or
whose sum is nan goes to a scalar path with scipy's special values.

Loops run over 0..len of a slice, never over range(lo, hi) of the whole array: numba's wraparound check on a possibly
negative index keeps LLVM from vectorizing.
"""
import math

import numpy as np
from numba import njit

from ._exp import CACHE, FM_EXACT, FM_REDUCE, erel, kahan_add, log1p_rest, lsm_val, maxnum, split_one

OP_SOFTMAX = 0
OP_LOG_SOFTMAX = 1
OP_LOGSUMEXP = 2

_BLK32 = 1024                  # float32: block of the vectorized float64 partial sums (combined with Kahan)
_ROW_CACHE_BYTES = 256 * 1024  # rows up to this size: store exp, then scale; longer ones are read twice instead
_LANES = 16
# float32 loops: LLVM vectorizes by 16 (4 lanes x 4) and leaves up to 15 scalar remainder iterations, which cost a lot
# on short rows. The main loops run over a multiple of _VT elements and the remainder as one overlapping window of
# the last _VT elements, weighted 0/1 (vectorized).
_VT = 16
ONLINE_BLOCK = 4096            # block of the single-pass (online) statistics


@njit(error_model="numpy", fastmath=FM_REDUCE, cache=CACHE)
def max_range(x, lo, hi):
    xs = x[lo:hi]
    m = xs[0]
    for i in range(1, xs.shape[0]):
        m = maxnum(m, xs[i])
    return m


@njit(error_model="numpy", fastmath=FM_REDUCE, cache=CACHE)
def _lanes_finish(s, c, S, C):
    for j in range(_LANES):
        S, C = kahan_add(S, C, s[j])
        S, C = kahan_add(S, C, -c[j])
    return S - C


@njit(error_model="numpy", fastmath=FM_REDUCE, cache=CACHE)
def _stats_lanes(x, lo, hi, m, it, eit):
    """float64 _stats_range: Kahan-compensated in 16 lanes (the lane loop is element-wise, so it vectorizes
    without 'reassoc')."""
    xs = x[lo:hi]
    n = xs.shape[0]
    nf = n - n % _LANES
    k = np.zeros(_LANES)
    s = np.zeros(_LANES)
    c = np.zeros(_LANES)
    for b in range(0, nf, _LANES):
        xb = xs[b:b + _LANES]
        for j in range(_LANES):
            one, rest = split_one(erel(xb[j], m, it, eit))
            k[j] += one
            s[j], c[j] = kahan_add(s[j], c[j], rest)
    S = 0.0
    C = 0.0
    K = 0.0
    for i in range(nf, n):
        one, rest = split_one(erel(xs[i], m, it, eit))
        K += one
        S, C = kahan_add(S, C, rest)
    for j in range(_LANES):
        K += k[j]
    return K, _lanes_finish(s, c, S, C)


@njit(error_model="numpy", fastmath=FM_REDUCE, cache=CACHE)
def _sum_lanes(x, lo, hi, m, it, eit, out, store):
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
            e = erel(xb[j], m, it, eit)
            if store:
                ob[j] = e
            s[j], c[j] = kahan_add(s[j], c[j], e)
    S = 0.0
    C = 0.0
    for i in range(nf, n):
        e = erel(xs[i], m, it, eit)
        if store:
            os_[i] = e
        S, C = kahan_add(S, C, e)
    return _lanes_finish(s, c, S, C)


@njit(error_model="numpy", fastmath=FM_REDUCE, cache=CACHE)
def stats_range(x, lo, hi, m, it, eit):
    """(k, s): k = the number of terms equal to 1 (x == max), s = the sum of the others.
    Written without selects (e - [e == 1]) so that LLVM vectorizes it."""
    if x.itemsize == 8:
        return _stats_lanes(x, lo, hi, m, it, eit)
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
            one, rest = split_one(erel(xb[i], m, it, eit))
            kb += one
            sb += rest
        k += kb
        s, c = kahan_add(s, c, sb)
    if nf < n:
        first = nf - (n - _VT)
        xt = xs[n - _VT:n]
        kb = 0.0
        sb = 0.0
        for j in range(_VT):
            w = np.float64(j >= first)
            one, rest = split_one(erel(xt[j], m, it, eit))
            kb += one * w
            sb += rest * w
        k += kb
        s, c = kahan_add(s, c, sb)
    return k, s - c


@njit(error_model="numpy", fastmath=FM_REDUCE, cache=CACHE)
def sum_range(x, lo, hi, m, it, eit, out, store):
    """The sum of e^((x - m) / T) over x[lo:hi] (blocked, Kahan across blocks); store: also write each term into
    out[lo:hi]."""
    if x.itemsize == 8:
        return _sum_lanes(x, lo, hi, m, it, eit, out, store)
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
            e = erel(xb[i], m, it, eit)
            if store:
                ob[i] = e
            sb += e
        s, c = kahan_add(s, c, sb)
    if nf < n:  # the overlapping window re-stores identical values before nf
        first = nf - (n - _VT)
        xt = xs[n - _VT:n]
        ot = os_[n - _VT:n]
        sb = 0.0
        for j in range(_VT):
            e = erel(xt[j], m, it, eit)
            if store:
                ot[j] = e
            sb += e * np.float64(j >= first)
        s, c = kahan_add(s, c, sb)
    return s - c


@njit(error_model="numpy", fastmath=FM_REDUCE, cache=CACHE)
def scale_range(out, lo, hi, s):
    """out /= s. float32: multiply by 1/s in float64 (exact enough); float64: true division (saves the rounding of
    1/s)."""
    o = out[lo:hi]
    if o.itemsize == 8:
        for i in range(o.shape[0]):
            o[i] = o[i] / s
    else:
        inv = 1.0 / s
        for i in range(o.shape[0]):
            o[i] = np.float64(o[i]) * inv


@njit(error_model="numpy", fastmath=FM_REDUCE, cache=CACHE)
def softmax_out_range(x, lo, hi, m, s, it, eit, out):
    xs = x[lo:hi]
    o = out[lo:hi]
    if o.itemsize == 8:
        for i in range(xs.shape[0]):
            o[i] = erel(xs[i], m, it, eit) / s
    else:
        inv = 1.0 / s
        n = xs.shape[0]
        nf = n - n % _VT if n >= _VT else n
        for i in range(nf):
            o[i] = erel(xs[i], m, it, eit) * inv
        if nf < n:  # overlapping window (idempotent stores)
            xt = xs[n - _VT:n]
            ot = o[n - _VT:n]
            for j in range(_VT):
                ot[j] = erel(xt[j], m, it, eit) * inv


@njit(error_model="numpy", fastmath=FM_REDUCE, cache=CACHE)
def lsm_out_range(x, lo, hi, m, L, it, eit, out):
    xs = x[lo:hi]
    o = out[lo:hi]
    for i in range(xs.shape[0]):
        o[i] = lsm_val(xs[i], m, L, it, eit)


@njit(error_model="numpy", cache=CACHE)
def special_slice(x, out, op):
    """Scalar path for a line with a non-finite max or a nan sum: scipy.special's values.

    x: the line (possibly strided); out: its output (length 1 for logsumexp). A temperature changes none of them."""
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
    if op == OP_LOGSUMEXP:
        out[0] = np.nan if has_nan else np.inf if has_pinf else -np.inf if all_ninf else np.nan
    elif has_nan or all_ninf or (op == OP_SOFTMAX and has_pinf):
        for i in range(n):
            out[i] = np.nan
    elif has_pinf:  # log_softmax: (x - inf) - 0
        for i in range(n):
            out[i] = np.nan if x[i] == np.inf else -np.inf
    else:  # a finite line whose sum overflowed: cannot happen (every term is at most 1); keep the output defined
        for i in range(n):
            out[i] = np.nan


@njit(error_model="numpy", fastmath=FM_REDUCE, cache=CACHE)
def row(x, out, op, it, eit):
    """One whole row x (1-D contiguous) into out (its output row; length 1 for logsumexp)."""
    n = x.shape[0]
    small = n * x.itemsize <= _ROW_CACHE_BYTES
    if x.itemsize == 4 and not small:
        # long float32 row: a single pass for the statistics
        m, k, s, bad = online_stats(x, 0, n, op != OP_SOFTMAX, it, eit)
        if bad or not np.isfinite(m) or s != s:
            special_slice(x, out, op)
            return
        if op == OP_SOFTMAX:
            s = k + s
    else:
        m = np.float64(max_range(x, 0, n))
        if not np.isfinite(m):
            special_slice(x, out, op)
            return
        k = 0.0
        if op == OP_SOFTMAX:
            s = sum_range(x, 0, n, m, it, eit, out, small)
        else:
            k, s = stats_range(x, 0, n, m, it, eit)
        if s != s:
            special_slice(x, out, op)
            return
    if op == OP_SOFTMAX:
        if small:
            scale_range(out, 0, n, s)
        else:
            softmax_out_range(x, 0, n, m, s, it, eit, out)
    else:
        L = log1p_rest(k, s)
        if op == OP_LOGSUMEXP:
            out[0] = m + L
        else:
            lsm_out_range(x, 0, n, m, L, it, eit, out)


# ---- slices of long rows: per-slice statistics merged with the running-max formula ----------------------------

@njit(error_model="numpy", fastmath=FM_REDUCE, cache=CACHE)
def _nan_count(x, lo, hi):
    xs = x[lo:hi]
    c = 0
    for i in range(xs.shape[0]):
        c += xs[i] != xs[i]
    return c


@njit(error_model="numpy", fastmath=FM_EXACT, cache=CACHE)
def merge(M, K, S, mb, kb, sb, it):
    """Merge partial statistics (max, number of terms == 1, sum of the others) with the running-max formula."""
    if mb > M:
        return mb, kb, (S + K) * math.exp((M - mb) * it) + sb
    if mb == M:
        return M, K + kb, S + sb
    return M, K, S + (kb + sb) * math.exp((mb - M) * it)


@njit(error_model="numpy", fastmath=FM_REDUCE, cache=CACHE)
def online_stats(x, lo, hi, split, it, eit):
    """One pass over x[lo:hi] (block max, then the exp-sum from L1 relative to it, merged): (M, K, S, bad); bad
    means the slice needs the special path (nan or +inf seen). For float32, whose rescaling roundings are float64
    ones, far below float32 resolution. split: count the terms equal to 1 apart (log paths)."""
    M = -np.inf
    K = 0.0
    S = 0.0
    for b in range(lo, hi, ONLINE_BLOCK):
        be = min(b + ONLINE_BLOCK, hi)
        mx = max_range(x, b, be)
        mb = np.float64(mx)
        if mb == np.inf:
            return M, K, S, True
        if not (mb > -np.inf):          # an all -inf (or all nan) block
            if _nan_count(x, b, be) > 0:
                return M, K, S, True
            continue
        if split:
            kb, sb = stats_range(x, b, be, mb, it, eit)
        else:   # softmax needs only the total: the cheaper plain sum
            kb = 0.0
            sb = sum_range(x, b, be, mb, it, eit, x, False)
        if sb != sb:
            return M, K, S, True
        M, K, S = merge(M, K, S, mb, kb, sb, it)
    return M, K, S, False
