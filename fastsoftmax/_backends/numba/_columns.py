"""The numba backend's column kernels: reductions over axis 1 of an (outer, n, inner) array with inner > 1, vectorized
across a tile of contiguous columns; serial, _tasks.py runs tiles on threads.

Each pass walks the tile row by row with per-column state in small arrays: the maxima, then the terms (written into
the output rows, or a scratch row for logsumexp) and their column sums, then the outputs. The exp and the sums are
separate loops for the reason given in _rows.py. Column sums: float32 terms in float64, float64 terms with TwoSum
per column (element-wise across columns, so it vectorizes). Columns with a non-finite max or a nan sum get
scipy's values from _rows.special_slice afterwards. The three kernels share one signature:
cols(x, y, j0, j1, it, eit, tempered) for block x = x3[o] ((n, inner)) and its output y ((n, inner), or
(1, inner) for logsumexp); cols_op picks one for a literal op.
"""
import numpy as np
from numba import types
from numba.extending import overload

from ._exp import FM_EXACT, UNBIAS_F, erel, fma, kernel, log1p_rest, maxnum, shift_by, two_sum_add
from ._rows import OP_LOG_SOFTMAX, OP_LOGSUMEXP, OP_SOFTMAX, op_kernel, special_slice


@kernel()
def _col_max(x, j0, j1):
    m = x[0, j0:j1].copy()
    for i in range(1, x.shape[0]):
        xr = x[i, j0:j1]
        for j in range(m.shape[0]):
            m[j] = maxnum(m[j], xr[j])
    return m


@kernel()
def _col_terms(xr, er, m, negm, it, eit, tempered, log, k, s, c):
    """er = the terms of row xr (log: 0 where x == m, counted in k instead); then the column sums (s, c) += er."""
    if log:
        for j in range(m.shape[0]):
            e = erel(xr[j], negm[j], it, eit, True, tempered)
            er[j] = m[j] - m[j] if xr[j] == m[j] else e
        for j in range(m.shape[0]):
            k[j] += np.float64(xr[j] == m[j])
    else:
        for j in range(m.shape[0]):
            er[j] = erel(xr[j], negm[j], it, eit, False, tempered)
    _col_add(er, s, c)


def _col_add(er, s, c):  # pragma: no cover - replaced by the overload
    """(s, c) += er, column by column: float32 terms in float64, float64 terms with TwoSum."""
    raise NotImplementedError


def _col_add32(er, s, c):
    for j in range(er.shape[0]):
        s[j] += np.float64(er[j])


def _col_add64(er, s, c):
    for j in range(er.shape[0]):
        s[j], c[j] = two_sum_add(s[j], c[j], er[j])


@overload(_col_add, jit_options={"error_model": "numpy", "fastmath": FM_EXACT})
def _ol_col_add(er, s, c):
    return _col_add32 if er.dtype == types.float32 else _col_add64


@kernel()
def _col_sums(x, y, j0, j1, it, eit, tempered, log, keep):
    """(m, k, s): per column of the tile its max, the count of entries equal to it (log) and the sum of the other
    terms (float64; the float32 log paths' bias removed). keep: the terms stay in y's rows, else in a scratch row."""
    m = _col_max(x, j0, j1)
    negm = -m
    W = m.shape[0]
    k = np.zeros(W)
    s = np.zeros(W)
    c = np.zeros(W)
    scratch = np.empty(W, x.dtype)
    for i in range(x.shape[0]):
        er = y[i, j0:j1] if keep else scratch
        _col_terms(x[i, j0:j1], er, m, negm, it, eit, tempered, log, k, s, c)
    unbias = UNBIAS_F if x.itemsize == 4 and log else 1.0
    for j in range(W):
        s[j] = (s[j] + c[j]) * unbias
    return m, k, s


@kernel()
def _specials(x, y, j0, m, s, op):
    """scipy's values for the columns of the tile with a non-finite max or a nan sum."""
    for j in range(m.shape[0]):
        if not (m[j] - m[j] == 0 and s[j] == s[j]):
            special_slice(x[:, j0 + j], y[:, j0 + j], op)


@kernel()
def softmax_cols(x, y, j0, j1, it, eit, tempered):
    m, k, s = _col_sums(x, y, j0, j1, it, eit, tempered, False, True)
    ih = 1.0 / s
    il = np.empty_like(s)
    for j in range(s.shape[0]):
        il[j] = fma(-s[j], ih[j], 1.0) / s[j]
    for i in range(x.shape[0]):
        yr = y[i, j0:j1]
        for j in range(s.shape[0]):
            e = np.float64(yr[j])
            yr[j] = fma(e, ih[j], e * il[j])
    _specials(x, y, j0, m, s, OP_SOFTMAX)


@kernel()
def log_softmax_cols(x, y, j0, j1, it, eit, tempered):
    m, k, s = _col_sums(x, y, j0, j1, it, eit, tempered, True, True)
    L = np.empty_like(s)
    m64 = np.empty_like(s)
    for j in range(s.shape[0]):
        L[j] = log1p_rest(k[j], s[j])
        m64[j] = m[j]
    for i in range(x.shape[0]):
        xr = x[i, j0:j1]
        yr = y[i, j0:j1]
        for j in range(s.shape[0]):
            yr[j] = shift_by(np.float64(xr[j]) - m64[j], it, eit, tempered) - L[j]
    _specials(x, y, j0, m, s, OP_LOG_SOFTMAX)


@kernel()
def logsumexp_cols(x, y, j0, j1, it, eit, tempered):
    m, k, s = _col_sums(x, y, j0, j1, it, eit, tempered, True, False)
    yr = y[0, j0:j1]
    for j in range(s.shape[0]):
        yr[j] = np.float64(m[j]) + log1p_rest(k[j], s[j])
    _specials(x, y, j0, m, s, OP_LOGSUMEXP)


def cols_op(op, x, y, j0, j1, it, eit, tempered):  # pragma: no cover - replaced by the overload
    """The column kernel of operation op (a literal)."""
    raise NotImplementedError


@overload(cols_op, prefer_literal=True, inline="always")
def _ol_cols_op(op, x, y, j0, j1, it, eit, tempered):
    fn = op_kernel(op, (softmax_cols, log_softmax_cols, logsumexp_cols))
    return lambda op, x, y, j0, j1, it, eit, tempered: fn(x, y, j0, j1, it, eit, tempered)
