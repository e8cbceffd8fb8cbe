"""The numba backend's column kernels: reductions over axis 1 of an (outer, n, inner) array with inner > 1, vectorized
across a tile of contiguous columns; serial, _tasks.py runs tiles on threads."""
import numpy as np
from numba import njit

from ._exp import CACHE, FM_REDUCE, erel, kahan_add, log1p_rest, lsm_val, maxnum, split_one
from ._rows import OP_LOGSUMEXP, OP_SOFTMAX, special_slice


@njit(error_model="numpy", fastmath=FM_REDUCE, cache=CACHE)
def _col_max(xr, mx):
    for j in range(mx.shape[0]):
        mx[j] = maxnum(mx[j], xr[j])


@njit(error_model="numpy", fastmath=FM_REDUCE, cache=CACHE)
def _col_sum_store(xr, orow, m, it, eit, s, c):
    if xr.itemsize == 8:   # float64: Kahan-compensated column sums
        for j in range(m.shape[0]):
            e = erel(xr[j], m[j], it, eit)
            orow[j] = e
            s[j], c[j] = kahan_add(s[j], c[j], e)
    else:                  # float32: float64 sums are accurate enough
        for j in range(m.shape[0]):
            e = erel(xr[j], m[j], it, eit)
            orow[j] = e
            s[j] += e


@njit(error_model="numpy", fastmath=FM_REDUCE, cache=CACHE)
def _col_stats(xr, m, it, eit, k, s, c):
    if xr.itemsize == 8:
        for j in range(m.shape[0]):
            one, rest = split_one(erel(xr[j], m[j], it, eit))
            k[j] += one
            s[j], c[j] = kahan_add(s[j], c[j], rest)
    else:
        for j in range(m.shape[0]):
            one, rest = split_one(erel(xr[j], m[j], it, eit))
            k[j] += one
            s[j] += rest


@njit(error_model="numpy", fastmath=FM_REDUCE, cache=CACHE)
def _col_scale(orow, f):
    if orow.itemsize == 8:
        for j in range(f.shape[0]):
            orow[j] = orow[j] / f[j]
    else:
        for j in range(f.shape[0]):
            orow[j] = np.float64(orow[j]) * f[j]


@njit(error_model="numpy", fastmath=FM_REDUCE, cache=CACHE)
def _col_lsm(xr, orow, m, f, it, eit):
    for j in range(f.shape[0]):
        orow[j] = lsm_val(xr[j], m[j], f[j], it, eit)


@njit(error_model="numpy", fastmath=FM_REDUCE, cache=CACHE)
def column_tile(x3, out3, o, j0, j1, op, it, eit):
    """Columns j0..j1 of block o: reductions over axis 1 of x3[o], vectorized across the (contiguous) columns.
    out3 is (outer, n, inner), or (outer, 1, inner) for logsumexp."""
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
    if op == OP_SOFTMAX:
        for i in range(n):
            _col_sum_store(xo[i, j0:j1], oo[i, j0:j1], m, it, eit, s, c)
    else:
        for i in range(n):
            _col_stats(xo[i, j0:j1], m, it, eit, k, s, c)
    nspecial = 0
    f = np.empty(W, dtype=np.float64)
    for j in range(W):
        sj = s[j] - c[j]
        if not np.isfinite(m[j]) or sj != sj:
            nspecial += 1
            f[j] = 1.0
        elif op == OP_SOFTMAX:
            f[j] = sj if xo.itemsize == 8 else 1.0 / sj
        else:
            f[j] = log1p_rest(k[j], sj)
    if op == OP_LOGSUMEXP:
        for j in range(W):
            oo[0, j0 + j] = m[j] + f[j]
    elif op == OP_SOFTMAX:
        for i in range(n):
            _col_scale(oo[i, j0:j1], f)
    else:
        for i in range(n):
            _col_lsm(xo[i, j0:j1], oo[i, j0:j1], m, f, it, eit)
    if nspecial:
        for j in range(W):
            sj = s[j] - c[j]
            if not np.isfinite(m[j]) or sj != sj:
                special_slice(xo[:, j0 + j], oo[:, j0 + j], op)
