"""pytest-benchmark: every backend, the dispatcher and scipy on the same cases, grouped per case.

    pytest benchmarks/ --benchmark-only                       # time everything
    pytest benchmarks/ --benchmark-only -k rows_256x1000      # one case
Each benchmark also records its max ULP error and row-sum error in extra_info, and fails if the result is wrong."""
import numpy as np
import pytest

import fastsoftmax

from .cases import CASES, case_id, make_input

PEERS = ["auto"] + list(fastsoftmax.backends()) + ["scipy"]


def max_ulp_and_row_sum_error(y, x, axis):
    a = x.astype(np.longdouble)
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    want = e / e.sum(axis=axis, keepdims=True)
    finfo = np.finfo(y.dtype)
    normal = want >= finfo.smallest_normal
    ulp = np.spacing(want[normal].astype(y.dtype)).astype(np.longdouble)
    max_ulp = float(np.max(np.abs(y[normal].astype(np.longdouble) - want[normal]) / ulp))
    row_sum = float(np.max(np.abs(y.astype(np.longdouble).sum(axis=axis) - 1)) / finfo.eps)
    return max_ulp, row_sum


def softmax_call(peer, x, axis):
    if peer == "scipy":
        special = pytest.importorskip("scipy.special")
        return lambda: special.softmax(x, axis=axis)
    backend = None if peer == "auto" else peer
    return lambda: fastsoftmax.softmax(x, axis=axis, backend=backend)


@pytest.mark.parametrize("peer", PEERS)
@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_softmax(benchmark, case, peer):
    x = make_input(case)
    axis = case[3]
    benchmark.group = f"softmax {case_id(case)}"
    y = benchmark(softmax_call(peer, x, axis))
    max_ulp, row_sum = max_ulp_and_row_sum_error(y, x, axis)
    benchmark.extra_info.update(max_ulp=max_ulp, row_sum_eps=row_sum)
    # a fast wrong kernel must fail, not win: loose enough for scipy's float32 (tens of ULP), tight for nonsense
    assert max_ulp < 1000 and row_sum < 1000
