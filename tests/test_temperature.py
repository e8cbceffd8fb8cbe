"""softmax(x / T) and log_softmax(x / T) computed inside the kernels: accurate, no overflow, scipy's nan rules."""
import warnings

import numpy as np
import pytest

import fastsoftmax

from .test_accuracy import COMPILED, LOG_SOFTMAX_ULP, SOFTMAX_ULP, ulp_error
from fastsoftmax import _dispatch

from .util import BACKENDS, array_cases, exact, tiny_tasks

TEMPERED = [name for name in BACKENDS if _dispatch.backend_module(name).TEMPERATURE]

TEMPERATURES = [0.01, 0.37, 1 / 3, 2.0, 25.0]


@pytest.fixture(params=["serial", "threaded"])
def threading(request):
    """As in test_contract.py: threaded cuts every array into tiny tasks and splits rows, on two threads."""
    threaded = request.param == "threaded"
    with tiny_tasks(threaded):
        previous = fastsoftmax.set_num_threads(2 if threaded else 1)
        yield request.param
        fastsoftmax.set_num_threads(previous)


@pytest.mark.parametrize("backend", TEMPERED)
@pytest.mark.parametrize("func", ["softmax", "log_softmax"])
@pytest.mark.parametrize("temperature", [0.5, 3.0])
def test_every_layout_and_special_value(backend, func, temperature, threading):
    """The contract inputs (all shapes, axes, layouts, nan/inf/huge/tiny values) with a temperature."""
    failures = []
    for dtype in (np.float32, np.float64):
        for label, x, axis in array_cases(dtype, seed=4):
            got = getattr(fastsoftmax, func)(x, axis=axis, backend=backend, temperature=temperature)
            # tolerance_violations compares with T = 1: compare scaled copies instead, in long double
            want = exact(func, x, axis, temperature)
            if np.asarray(got).shape != want.shape or not np.array_equal(np.isnan(np.asarray(got, np.longdouble)),
                                                                        np.isnan(want)):
                failures.append(f"{label}: nan pattern or shape")
                continue
            got_l = np.asarray(got, np.longdouble)
            with np.errstate(over="ignore", invalid="ignore"):
                rounded = want.astype(dtype)  # beyond the dtype's range, -inf is the right answer
                if func == "log_softmax":
                    # documented limit: where x - max itself overflows the dtype (|x - max| > 3.4e38 in float32),
                    # log_softmax(x / T) may be -inf even when T > 1 would bring the exact value back into range
                    # (the numba backend computes float32 in float64 and gets the exact value)
                    shift = np.asarray(x) - np.max(x, axis=axis, keepdims=True) if np.size(x) else np.asarray(x)
                    limit = np.isneginf(shift) & np.isfinite(np.asarray(x)) & np.isneginf(got_l)
                    rounded = np.where(limit, -np.inf, rounded)
            infinite = np.isinf(rounded)
            if not np.array_equal(got_l[infinite], rounded[infinite].astype(np.longdouble)):
                failures.append(f"{label}: infinities differ")
                continue
            finite = np.isfinite(rounded)
            err = np.abs(got_l[finite] - want[finite])
            eps = float(np.finfo(dtype).eps)
            if func == "softmax":
                bound = eps * 64 * (1 + np.abs(want[finite]) * 1000) + 2 * float(np.finfo(dtype).smallest_normal)
            else:
                bound = eps * 64 * (1 + np.abs(want[finite]))
            if np.any(err > bound):
                failures.append(f"{label}: error {float(err.max()):.3g}")
    assert not failures, f"{func} backend={backend} T={temperature}: " + "; ".join(failures[:5])


@pytest.mark.parametrize("backend", [b for b in COMPILED if b in TEMPERED])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("temperature", TEMPERATURES)
@pytest.mark.parametrize("shape, axis", [((64, 1000), -1), ((300, 200), 0), ((10**6,), None)])
def test_ulp_bounds_hold_with_a_temperature(backend, dtype, temperature, shape, axis):
    x = np.random.default_rng(5).normal(0, 30, shape).astype(dtype)
    y = fastsoftmax.softmax(x, axis=axis, backend=backend, temperature=temperature)
    assert ulp_error(y, exact("softmax", x, axis, temperature)) <= SOFTMAX_ULP[dtype]
    log_y = fastsoftmax.log_softmax(x, axis=axis, backend=backend, temperature=temperature)
    assert ulp_error(log_y, exact("log_softmax", x, axis, temperature)) <= LOG_SOFTMAX_ULP


@pytest.mark.parametrize("backend", TEMPERED)
def test_small_temperature_is_one_hot_without_overflow_or_warnings(backend):
    x = np.array([[1.0, 0.95, 0.0], [3e38, -3e38, 1.0]], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = fastsoftmax.softmax(x, axis=1, backend=backend, temperature=1e-4)
        log_y = fastsoftmax.log_softmax(x, axis=1, backend=backend, temperature=1e-4)
    np.testing.assert_array_equal(y, [[1, 0, 0], [1, 0, 0]])  # exp(-500) is 0 in float32
    assert log_y[0, 0] == 0 and log_y[1, 0] == 0
    np.testing.assert_allclose(log_y[0, 1], -500.0, rtol=1e-5)
    assert log_y[1, 1] == -np.inf  # -6e41 is beyond float32


@pytest.mark.parametrize("backend", TEMPERED)
def test_large_temperature_tends_to_uniform(backend):
    x = np.random.default_rng(0).normal(0, 3, 1000)
    y = fastsoftmax.softmax(x, backend=backend, temperature=1e12)
    np.testing.assert_allclose(y, 1 / 1000, rtol=1e-9)


@pytest.mark.parametrize("backend", TEMPERED)
def test_temperature_one_is_plain_softmax(backend):
    x = np.random.default_rng(1).normal(0, 3, (5, 7))
    np.testing.assert_array_equal(fastsoftmax.softmax(x, axis=1, backend=backend, temperature=1),
                                  fastsoftmax.softmax(x, axis=1, backend=backend))


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-1.0, ValueError), (np.inf, ValueError),
                                        (np.nan, ValueError), ("hot", TypeError), (None, TypeError)])
@pytest.mark.parametrize("func", ["softmax", "log_softmax"])
def test_bad_temperature_is_refused(func, bad, error):
    with pytest.raises(error, match="temperature"):
        getattr(fastsoftmax, func)([1.0, 2.0], temperature=bad)
