"""The benchmarks' accuracy check itself: right results pass, wrong kernels fail (cheap; runs in CI)."""
import numpy as np
import pytest

from fastsoftmax._tools.accuracy import Reference, check_errors, verdict
from fastsoftmax._tools.cases import CASES, shape_for
from fastsoftmax._tools.exact import exact
from fastsoftmax._tools.peers import make_call


def _errors(func, x, axis, y):
    ref = Reference(func, x, axis)
    return ref.errors(y), ref.line_length


def _check(func, x, axis, y):
    errors, n = _errors(func, x, axis, y)
    check_errors(errors, n, "test")
    return errors


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("axis", [-1, 0, None])
def test_right_results_pass(dtype, axis):
    x = np.random.default_rng(1).normal(0, 3, (64, 300)).astype(dtype)
    for func in ("softmax", "log_softmax", "logsumexp"):
        assert _check(func, x, axis, exact(func, x, axis).astype(dtype))["max_ulp"] < 4


def test_wrong_kernels_fail():
    x = np.random.default_rng(2).normal(0, 3, (32, 500))
    x[0, 0] = 800.0  # exp overflows without the max shift
    with np.errstate(all="ignore"):
        no_shift = np.exp(x) / np.exp(x).sum(axis=-1, keepdims=True)
    wrong_axis = np.exp(x - x.max(0)) / np.exp(x - x.max(0)).sum(axis=0)
    in_float32 = make_call("numpy", "softmax", x.astype(np.float32), -1)().astype(np.float64)
    for y in (no_shift, wrong_axis, in_float32):
        with pytest.raises(AssertionError, match="wrong result"):
            _check("softmax", x, -1, y)
    with pytest.raises(AssertionError, match="wrong result"), np.errstate(all="ignore"):
        _check("logsumexp", x, -1, np.log(np.exp(x - 1).sum(axis=-1)) + 1)


def test_every_case_shrinks_for_test_runs():
    for case in CASES:
        shape = shape_for(case, 1 << 16)
        assert len(shape) == len(case.shape) and np.prod(shape) <= max(1 << 16, 1)
        if case.axis is not None:
            # the lines keep their length where they fit
            assert shape[case.axis] == min(case.shape[case.axis], 1 << 16)


def test_verdicts():
    n = 10**7
    assert verdict({"max_ulp": 2.0, "row_sum_eps": 1.0}, n, np.float32) == "ok"
    # onnxruntime's float32 logsumexp over 10^7 elements: 1.6% off, sane but not accurate
    assert verdict({"max_ulp": 8402.0, "row_sum_eps": 135515.0}, n, np.float32) == "inaccurate"
    assert verdict({"max_ulp": float("inf"), "row_sum_eps": float("inf")}, n, np.float32) == "wrong"
    assert verdict({"max_ulp": 1e6, "row_sum_eps": 1e6}, n, np.float32) == "wrong"
    with pytest.raises(AssertionError):
        check_errors({"max_ulp": 8402.0, "row_sum_eps": 135515.0}, n, dtype=np.float32)
    assert check_errors({"max_ulp": 8402.0, "row_sum_eps": 135515.0}, n, dtype=np.float32,
                        strict=False) == "inaccurate"
