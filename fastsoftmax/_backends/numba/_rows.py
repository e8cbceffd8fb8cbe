"""The numba backend's row kernels: one contiguous row (or a slice of one), serial; _tasks.py runs them on threads and
_overloads.py inside users' jitted code.

A row is processed in blocks of BLOCK elements: the exp of a block is written (into the output, or a scratch block
for logsumexp), then summed while it is in L1. The two loops are apart on purpose: numba gives LLVM no SLP
vectorizer, and LLVM's loop vectorizer picks its width from the widest type in a loop, so a float32 exp fused with
float64 sums would run 4 lanes wide instead of 8.
- float32 terms are summed in float64 (n * 2^-53 relative error, nothing to compensate).
- float64 terms are split into a part on a 2^-32 grid, whose sums are exact in any order, and a small rest
  (_exp.split_grid): the loop vectorizes as a plain reduction and the block total carries one rounding. Blocks are
  added with TwoSum.
The log paths count the entries equal to the max (their terms are exactly 1) instead of adding them, so that
log1p(count - 1 + others) keeps its digits for peaked rows.

The kernels are generic: `total` and `scale` pick the float32 or float64 version, _exp.erel and shift_by the exp
and shift for the dtype and `tempered` (a literal, see _exp.py), and row_op the row kernel for a literal `op`, all
while numba types the caller; so each (dtype, op, tempered) compiles only its own code, on first use. The row
kernels share one signature: row(x, y, scratch, it, eit, tempered), where y is the output row (length 1 for
logsumexp) and scratch a block for terms nobody keeps (logsumexp).

Loops run over 0..len of a slice, never over range(lo, hi) of the whole array: numba's wraparound check on a possibly
negative index keeps LLVM from vectorizing.
"""
import numpy as np
from numba import types
from numba.core.errors import TypingError
from numba.extending import overload

from ._exp import (FM_REDUCE, UNBIAS_F, erel, fma, kernel, literal_or_none, log1p_rest, maxnum, shift_by, split_grid,
                   two_sum_add)

OP_SOFTMAX = 0
OP_LOG_SOFTMAX = 1
OP_LOGSUMEXP = 2

BLOCK = 2048    # elements per block: exp then sum while in L1 (16 KB of float64)


# ---- passes over a block ---------------------------------------------------------------------------------------

@kernel(FM_REDUCE)
def row_max(x):
    m = x[0]
    for i in range(1, x.shape[0]):
        m = maxnum(m, x[i])
    return m


@kernel()
def exp_block(x, y, m, it, eit, tempered):
    """y = e^((x - m) / T)."""
    negm = -m
    for i in range(x.shape[0]):
        y[i] = erel(x[i], negm, it, eit, False, tempered)


@kernel()
def exp_block_log(x, y, m, it, eit, tempered):
    """The log paths' terms: e * 2^100 for float32, and 0 where x == m (those are counted, not added)."""
    negm = -m
    zero = m - m
    for i in range(x.shape[0]):
        e = erel(x[i], negm, it, eit, True, tempered)
        y[i] = zero if x[i] == m else e


@kernel(FM_REDUCE)
def count_max(x, m):
    """The number of entries equal to m (their terms are exactly 1)."""
    k = 0
    for i in range(x.shape[0]):
        k += np.int64(x[i] == m)
    return np.float64(k)


@kernel(FM_REDUCE)
def total32(y, log):
    """The sum of float32 terms, in float64; log: of the biased terms, unbiased."""
    s = 0.0
    for i in range(y.shape[0]):
        s += np.float64(y[i])
    return s * UNBIAS_F if log else s


@kernel(FM_REDUCE)
def total64(y, log):
    """The sum of float64 terms in [0, 1]: exact grid parts plus small rests, one rounding."""
    hi = 0.0
    lo = 0.0
    for i in range(y.shape[0]):
        h, l = split_grid(y[i])
        hi += h
        lo += l
    return hi + lo


@kernel()
def scale32(y, s):
    """y /= s: times 1/s as a float32 pair, rounded once (FMA)."""
    inv = 1.0 / s
    ih = np.float32(inv)
    il = np.float32(inv - np.float64(ih))
    for i in range(y.shape[0]):
        e = y[i]
        y[i] = fma(e, ih, e * il)


@kernel()
def scale64(y, s):
    """y /= s: times 1/s as a pair (ih + il), rounded once (FMA); a division per element costs 4x more."""
    ih = 1.0 / s
    il = fma(-s, ih, 1.0) / s
    for i in range(y.shape[0]):
        e = y[i]
        y[i] = fma(e, ih, e * il)


def terms(x, y, m, it, eit, tempered, log):  # pragma: no cover - replaced by the overload
    """y = the terms of x (exp_block, or exp_block_log for a true `log`); returns the count of maxima (log)."""
    raise NotImplementedError


@kernel()
def _terms(x, y, m, it, eit, tempered):
    exp_block(x, y, m, it, eit, tempered)
    return 0.0


@kernel()
def _terms_log(x, y, m, it, eit, tempered):
    exp_block_log(x, y, m, it, eit, tempered)
    return count_max(x, m)


@overload(terms, prefer_literal=True, inline="always")
def _ol_terms(x, y, m, it, eit, tempered, log):
    known = literal_or_none(log)
    if known is None:   # a run-time flag (split rows): both compiled
        return lambda x, y, m, it, eit, tempered, log: (_terms_log(x, y, m, it, eit, tempered) if log
                                                        else _terms(x, y, m, it, eit, tempered))
    fn = _terms_log if known else _terms
    return lambda x, y, m, it, eit, tempered, log: fn(x, y, m, it, eit, tempered)


def total(y, log):  # pragma: no cover - replaced by the overload
    """total32 or total64, for the dtype of y."""
    raise NotImplementedError


@overload(total, inline="always")
def _ol_total(y, log):
    fn = total32 if y.dtype == types.float32 else total64
    return lambda y, log: fn(y, log)


def scale(y, s):  # pragma: no cover - replaced by the overload
    """scale32 or scale64, for the dtype of y."""
    raise NotImplementedError


@overload(scale, inline="always")
def _ol_scale(y, s):
    fn = scale32 if y.dtype == types.float32 else scale64
    return lambda y, s: fn(y, s)


@kernel()
def sub_block(x, y, m, L, it, eit, tempered):
    """log_softmax's output y = (x - m) / T - L, in float64 (exact x - m for float32, one final rounding)."""
    for i in range(x.shape[0]):
        y[i] = shift_by(np.float64(x[i]) - m, it, eit, tempered) - L


@kernel()
def expsum(x, y, m, it, eit, tempered, log):
    """(count, sum) of the terms of x against m, block by block; each block's terms are left in y (the output row, or
    a scratch block when y is shorter than x)."""
    n = x.shape[0]
    keep = y.shape[0] >= n
    K = 0.0
    S = 0.0
    C = 0.0
    for b in range(0, n, BLOCK):
        xb = x[b:b + BLOCK]
        yb = y[b:b + xb.shape[0]] if keep else y[:xb.shape[0]]
        K += terms(xb, yb, m, it, eit, tempered, log)
        S, C = two_sum_add(S, C, total(yb, log))
    return K, S + C


# ---- whole rows --------------------------------------------------------------------------------------------------

@kernel()
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


@kernel()
def softmax_row(x, y, scratch, it, eit, tempered):
    m = row_max(x)
    if not m - m == 0:                      # +inf, all -inf, or nan
        special_slice(x, y, OP_SOFTMAX)
        return
    k, s = expsum(x, y, m, it, eit, tempered, False)
    if s != s:
        special_slice(x, y, OP_SOFTMAX)
        return
    scale(y, s)


@kernel()
def log_softmax_row(x, y, scratch, it, eit, tempered):
    m = row_max(x)
    if not m - m == 0:
        special_slice(x, y, OP_LOG_SOFTMAX)
        return
    k, s = expsum(x, y, m, it, eit, tempered, True)
    if s != s:
        special_slice(x, y, OP_LOG_SOFTMAX)
        return
    sub_block(x, y, np.float64(m), log1p_rest(k, s), it, eit, tempered)


@kernel()
def logsumexp_row(x, y, scratch, it, eit, tempered):
    m = row_max(x)
    if not m - m == 0:
        special_slice(x, y, OP_LOGSUMEXP)
        return
    k, s = expsum(x, scratch, m, it, eit, tempered, True)
    if s != s:
        special_slice(x, y, OP_LOGSUMEXP)
        return
    y[0] = np.float64(m) + log1p_rest(k, s)


@kernel()
def rows(x2, y2, r0, r1, it, eit, op, tempered):
    """Rows r0..r1 of the (rows, n) array x2 into y2 ((rows, n), or (rows, 1) for logsumexp): operation op."""
    scratch = np.empty(min(BLOCK, x2.shape[1]), x2.dtype)
    for r in range(r0, r1):
        row_op(op, x2[r], y2[r], scratch, it, eit, tempered)


# ---- slices of long rows, for threads: phase 0 the maxima, 1 the sums against the row's max, 2 the outputs -------

@kernel()
def slice_output(x, y, m, k, s, it, eit, tempered, log):
    """Phase 2 over one slice: softmax y = e / s (the terms recomputed from x) or log_softmax y = (x - m)/T - L."""
    if log:
        sub_block(x, y, np.float64(m), log1p_rest(k, s), it, eit, tempered)
    else:
        exp_block(x, y, m, it, eit, tempered)
        scale(y, s)


def row_op(op, x, y, scratch, it, eit, tempered):  # pragma: no cover - replaced by the overload
    """The row kernel of operation op (a literal): softmax_row, log_softmax_row or logsumexp_row."""
    raise NotImplementedError


def op_kernel(op, kernels):
    """The kernel of `kernels` (softmax, log_softmax, logsumexp) for the literal op; a TypingError otherwise."""
    code = literal_or_none(op)
    if code not in (OP_SOFTMAX, OP_LOG_SOFTMAX, OP_LOGSUMEXP):
        raise TypingError(f"the operation must be a constant, got {op}")
    return kernels[code]


@overload(row_op, prefer_literal=True, inline="always")
def _ol_row_op(op, x, y, scratch, it, eit, tempered):
    fn = op_kernel(op, (softmax_row, log_softmax_row, logsumexp_row))
    return lambda op, x, y, scratch, it, eit, tempered: fn(x, y, scratch, it, eit, tempered)
