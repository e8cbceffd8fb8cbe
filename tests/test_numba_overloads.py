"""fastsoftmax's functions inside users' numba-jitted code (fastsoftmax/_backends/numba/_overloads.py).

Results are checked against the long-double reference with the numba backend's ULP bounds, and against the
Python-level call for nan/inf rows. numba finds the overloads through the `numba_extensions` entry point: nothing
here imports _overloads by hand, so every test also checks the registration."""
import os
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest

numba = pytest.importorskip("numba")

import fastsoftmax as fs  # noqa: E402
from fastsoftmax._tools.exact import exact, max_ulp  # noqa: E402

from .test_numba_backend import ULP_BOUND  # noqa: E402

SHAPES = [(7,), (5, 33), (3, 4, 130), (2, 1, 5)]


@numba.njit
def softmax_axis(x, axis):
    return fs.softmax(x, axis=axis)


@numba.njit
def log_softmax_axis(x, axis):
    return fs.log_softmax(x, axis=axis)


@numba.njit
def logsumexp_axis(x, axis):
    return fs.logsumexp(x, axis=axis)


@numba.njit
def last_axis_constants(x):
    """axis as constants: the overloads then compile only the kernels they need"""
    return fs.softmax(x, axis=-1), fs.log_softmax(x, axis=-1), fs.logsumexp(x, axis=-1)


@numba.njit
def whole(x):
    return fs.softmax(x), fs.log_softmax(x), fs.logsumexp(x)


@numba.njit
def with_temperature(x, t):
    return fs.softmax(x, axis=-1, temperature=t), fs.log_softmax(x, axis=-1, temperature=t)


@numba.njit
def into(x, out):
    fs.softmax(x, axis=0, out=out)
    return out


@numba.njit
def keepdims(x):
    return fs.logsumexp(x, axis=1, keepdims=True)


@numba.njit(parallel=True)
def rows_in_prange(x):
    out = np.empty_like(x)
    for i in numba.prange(x.shape[0]):
        out[i] = fs.softmax(x[i])
    return out


def check(op, x, got, axis):
    """got: a result of the jitted call (numba returns scalars as Python floats: the value of the float32). It must
    equal the Python-level call on the numba backend within 1 ULP (the same kernels, cut into other tasks) and, for
    softmax and log_softmax, be within the backend's bound of the exact result. logsumexp of float32 results near 0
    (a negative max cancelling the log of the sum) can be a few ULP off on both compiled backends: see
    test_accuracy.py::test_logsumexp_float32_near_zero."""
    dtype = x.dtype if x.dtype.kind == "f" else np.dtype(np.float64)
    got = np.asarray(got, dtype=dtype)
    python_level = np.asarray(getattr(fs, op)(x, axis=axis, backend="numba"))
    assert got.shape == python_level.shape
    assert max_ulp(got, python_level.astype(np.longdouble), dtype) <= 1.0, (op, x.dtype, x.shape, axis)
    if op != "logsumexp":
        assert max_ulp(got, exact(op, x, axis=axis)) <= ULP_BOUND[(op, dtype.type)], (op, x.dtype, x.shape, axis)


def test_entry_point_registers_the_overloads():
    names = [ep.value for ep in entry_points(group="numba_extensions")]
    assert "fastsoftmax._backends.numba._overloads:init" in names


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_every_axis(dtype, shape):
    x = (np.random.default_rng(len(shape)).standard_normal(shape) * 4).astype(dtype)
    for axis in range(-len(shape), len(shape)):
        check("softmax", x, softmax_axis(x, axis), axis)
        check("log_softmax", x, log_softmax_axis(x, axis), axis)
        check("logsumexp", x, logsumexp_axis(x, axis), axis)
    for op, got in zip(("softmax", "log_softmax", "logsumexp"), whole(x)):
        check(op, x, got, None)
    for op, got in zip(("softmax", "log_softmax", "logsumexp"), last_axis_constants(x)):
        check(op, x, got, -1)


def test_layouts_and_dtypes_match_the_python_call():
    x = np.random.default_rng(1).standard_normal((6, 40)) * 5
    for view in (x.T, x[:, ::-2], x[::-1], np.asfortranarray(x)):
        for axis in (0, 1):
            np.testing.assert_allclose(softmax_axis(view, axis), fs.softmax(view, axis=axis, backend="numba"),
                                       rtol=4e-16, atol=0)
    ints = np.arange(12).reshape(3, 4)
    got = softmax_axis(ints, 1)
    assert got.dtype == np.float64
    check("softmax", ints, got, 1)
    assert softmax_axis(np.array([8.0, 5.0, 2.0]), 0).round(4).tolist() == [0.9503, 0.0473, 0.0024]


def test_scalar_and_keepdims_results():
    x = np.random.default_rng(2).standard_normal((3, 5))
    total = whole(x)[2]
    assert isinstance(total, float) and total == pytest.approx(fs.logsumexp(x), rel=1e-15)
    assert keepdims(x).shape == (3, 1)
    np.testing.assert_allclose(keepdims(x), fs.logsumexp(x, axis=1, keepdims=True), rtol=1e-15)
    assert isinstance(logsumexp_axis(x[0], 0), float)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_nonfinite_rows_follow_scipy(dtype):
    x = np.array([[np.nan, 1, 2], [np.inf, 1, 2], [np.inf, np.inf, 1], [-np.inf] * 3, [-np.inf, 1, 2],
                  [np.nan, -np.inf, -np.inf], [1, 2, 3]], dtype=dtype)
    for op, fn in (("softmax", softmax_axis), ("log_softmax", log_softmax_axis), ("logsumexp", logsumexp_axis)):
        # the same nan and inf as scipy's semantics; finite values within 2 ULP
        np.testing.assert_allclose(fn(x, 1), getattr(fs, op)(x, axis=1, backend="numpy"), err_msg=op, atol=0,
                                   rtol=2 * np.finfo(dtype).eps)


def test_temperature():
    x = np.random.default_rng(3).standard_normal((4, 50)).astype(np.float32) * 3
    for t in (1.0, 0.25, 7.0):
        s, ls = with_temperature(x, t)
        assert max_ulp(s, exact("softmax", x / np.longdouble(t), axis=-1)) <= ULP_BOUND[("softmax", np.float32)]
        for got, op in ((s, "softmax"), (ls, "log_softmax")):
            want = getattr(fs, op)(x, axis=-1, temperature=t, backend="numba")
            assert max_ulp(got, want.astype(np.longdouble)) <= 1.0
    for bad in (0.0, -1.0, np.inf, np.nan):
        with pytest.raises(ValueError, match="temperature"):
            with_temperature(x, bad)


def test_out():
    x = np.random.default_rng(4).standard_normal((30, 4))
    out = np.empty_like(x)
    assert into(x, out) is out
    check("softmax", x, out, 0)
    strided = np.empty((30, 8))[:, ::2]
    into(x, strided)
    np.testing.assert_array_equal(strided, out)
    with pytest.raises(ValueError, match="shape"):
        into(x, np.empty((4, 30)))


def test_prange_rows():
    x = np.random.default_rng(5).standard_normal((64, 300)).astype(np.float32)
    check("softmax", x, rows_in_prange(x), -1)


def test_empty_and_zero_d():
    np.testing.assert_array_equal(softmax_axis(np.empty((0, 3)), 1), np.empty((0, 3)))
    assert softmax_axis(np.empty((3, 0)), 1).shape == (3, 0)
    assert np.all(logsumexp_axis(np.empty((3, 0)), 1) == -np.inf)
    np.testing.assert_array_equal(whole(np.array(2.5))[0], 1.0)


def test_errors():
    with pytest.raises(ValueError, match="axis"):
        softmax_axis(np.ones((2, 3)), 2)

    @numba.njit
    def axis_tuple(x):
        return fs.softmax(x, axis=(0, 1))

    @numba.njit
    def weights(x):
        return fs.logsumexp(x, b=x)

    @numba.njit
    def strings(x):
        return fs.softmax(x)

    for fn, arg, message in ((axis_tuple, np.ones((2, 2)), "axis must be an int or None"),
                             (weights, np.ones(3), "b= and return_sign="),
                             (strings, "abc", "takes an array")):
        with pytest.raises(numba.core.errors.TypingError, match=message):
            fn(arg)


README_EXAMPLE = '''
import numba, numpy as np, fastsoftmax

@numba.njit(parallel=True)
def sample_actions(logits, temperature, u):    # a policy: one row of action logits per state
    actions = np.empty(logits.shape[0], np.int64)
    for i in numba.prange(logits.shape[0]):
        p = fastsoftmax.softmax(logits[i], temperature=temperature)
        actions[i] = min(np.searchsorted(np.cumsum(p), u[i]), p.size - 1)
    return actions

rng = np.random.default_rng(0)
logits = rng.standard_normal((1000, 18)).astype(np.float32)
print(sample_actions(logits, 0.5, rng.random(1000)).shape)
'''


def test_readme_shows_this_example():
    readme = Path(__file__).resolve().parents[1] / "README.md"
    if not readme.exists():
        pytest.skip("README.md is not beside the tests (tests copied out of the source tree)")
    assert README_EXAMPLE.strip() in readme.read_text()


def test_readme_example_in_a_fresh_process():
    """The README's example, as a user runs it: numba finds the overloads by itself."""
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(README_EXAMPLE)], capture_output=True, text=True,
                            timeout=600, env=os.environ)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "(1000,)"
