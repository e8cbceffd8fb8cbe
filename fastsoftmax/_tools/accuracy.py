"""How right a result is: its errors against the long-double reference (exact.py) on a sample of the reduction
lines, the bounds a correct implementation keeps, and the verdicts and checks built on them."""
import math

import numpy as np

from fastsoftmax import _dispatch

from .exact import exact, line_length, ulp_errors


def _lines(a, axis, picks=None):
    """`a` as (lines, line length): the reduction lines of a C-contiguous array, optionally only some."""
    if axis is None:
        lines = a.reshape(1, -1)
    else:
        axis = axis % a.ndim
        outer, n = math.prod(a.shape[:axis]), a.shape[axis]
        inner = math.prod(a.shape[axis + 1:])
        a3 = a.reshape(outer, n, inner)
        if picks is None:
            return np.moveaxis(a3, 1, 2).reshape(-1, n)
        return a3[picks // inner, :, picks % inner]
    return lines if picks is None else lines[picks]


class Reference:
    """func(x, axis) in long double on a sample of the reduction lines (all of them when few), computed once and
    compared with any number of results."""

    def __init__(self, func, x, axis, max_elements=1 << 18):
        self.func, self.axis = func, axis
        self.line_length = n = line_length(x.shape, axis)
        n_lines = x.size // n
        k = max(1, min(n_lines, max_elements // n))
        self.picks = np.unique(np.linspace(0, n_lines - 1, k).astype(np.int64))
        self.x_lines = _lines(x, axis, self.picks)
        self.want = exact(func, self.x_lines, axis=1)

    def errors(self, y):
        """{"max_ulp": ..., "row_sum_eps": ...} of result `y` on the sampled lines.

        max_ulp: largest |y - exact| in units of the last place of the exact value rounded to y's dtype (softmax
        where that value is a normal number). row_sum_eps: largest |sum - 1| / eps over the lines, of sum(y) for
        softmax, sum(exp(y)) for log_softmax and sum(exp(x - y)) for logsumexp."""
        y = np.asarray(y)
        finfo = np.finfo(y.dtype)
        if self.func == "logsumexp":
            got = (y.reshape(1) if self.axis is None else y.reshape(-1)[self.picks]).astype(np.longdouble)
        else:
            got = _lines(y, self.axis, self.picks).astype(np.longdouble)
        want = self.want
        mask = np.abs(want) >= finfo.smallest_normal if self.func == "softmax" else np.isfinite(want)
        with np.errstate(all="ignore"):
            err = ulp_errors(got[mask], want[mask], y.dtype)
            max_ulp = float(np.max(err)) if err.size else 0.0
            if np.isnan(got[mask]).any():
                max_ulp = math.inf
            # float32 results are summed in float64 (exact enough, and much faster on 10^7 elements)
            acc = np.float64 if finfo.bits < 64 else np.longdouble
            g = got.astype(acc)
            if self.func == "softmax":
                sums = g.sum(axis=1)
            elif self.func == "log_softmax":
                sums = np.exp(g).sum(axis=1)
            else:
                sums = np.exp(self.x_lines.astype(acc) - g[:, None]).sum(axis=1)
            row_sum = float(np.max(np.abs(sums - 1))) / float(finfo.eps)
        if math.isnan(row_sum):
            row_sum = math.inf
        return {"max_ulp": max_ulp, "row_sum_eps": row_sum}


# A result is "right" within MAX_ULP_OK + 10 sqrt(n) ULP and as many eps of row-sum error, n being the line length:
# loose enough for every peer's float32 (scipy is tens of ULP off; torch and onnxruntime sum 10^7 float32 values
# in float32 and land ~6 sqrt(n) eps off), tight enough that a wrong kernel fails (a missing max shift gives
# nan/inf, a wrong axis errors of order 1, float64 computed in float32 ~5e8 ULP).
MAX_ULP_OK = 1000.0


def error_bound(n):
    return MAX_ULP_OK + 10.0 * math.sqrt(n)


# Peers outside fastsoftmax and scipy (torch, onnxruntime, jax) are benchmarked, not tested: they only need to be
# sane (no nan, row sums within 5%); onnxruntime's float32 ReduceLogSumExp over 10^7 elements is ~1.6% off.
SANE_ROW_SUM_REL = 0.05
STRICT_PEERS = ("auto", *_dispatch.BACKEND_NAMES, "scipy", "copy")


def verdict(errors, n, dtype):
    """"ok", "inaccurate" (beyond error_bound(n) but sane) or "wrong" (nan, or row sums more than 5% off)."""
    bound = error_bound(n)
    if errors["max_ulp"] < bound and errors["row_sum_eps"] < bound:
        return "ok"
    rel = errors["row_sum_eps"] * float(np.finfo(dtype).eps)
    return "inaccurate" if math.isfinite(errors["max_ulp"]) and rel < SANE_ROW_SUM_REL else "wrong"


def check_errors(errors, n, where="", dtype=np.float64, strict=True):
    """AssertionError unless the errors are those of a correct implementation on lines of n elements (strict), or
    at least of a sane one (not strict)."""
    v = verdict(errors, n, dtype)
    if v == "wrong" or (strict and v != "ok"):
        raise AssertionError(f"{where}: wrong result: max ULP error {errors['max_ulp']:.3g}, "
                             f"row-sum error {errors['row_sum_eps']:.3g} eps (bound {error_bound(n):.3g})")
    return v


def assert_close(actual, expected, rtol, what=""):
    """Elementwise relative error, with an absolute floor of rtol * max|expected| (for entries near 0)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, what
    finite = np.isfinite(expected)
    np.testing.assert_array_equal(np.isfinite(actual), finite, err_msg=what)
    np.testing.assert_array_equal(actual[~finite], expected[~finite].astype(np.float64), err_msg=what)
    if finite.any():
        e = expected[finite].astype(np.float64)
        scale = max(np.abs(e).max(), np.finfo(np.float64).tiny)
        np.testing.assert_allclose(actual[finite].astype(np.float64), e, rtol=rtol, atol=rtol * scale, err_msg=what)
