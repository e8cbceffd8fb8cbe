"""The cimport API (fastsoftmax/cython_api.pxd): a Cython module built here, at test time, cimports it the way a
user's extension would, calls every function inside `with nogil:`, and its results are checked against the
long-double reference and against fastsoftmax's own Python functions."""
import importlib.util
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import textwrap

import numpy as np
import pytest

import fastsoftmax
from fastsoftmax._tools.exact import exact, max_ulp

from .test_accuracy import LOG_SOFTMAX_ULP, LOGSUMEXP_ULP, SOFTMAX_ULP, ulp_error

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# A user's module: both spellings of the cimport, one wrapper per function, and the row loop of the .pxd's example
WRAPPER_PYX = '''
# cython: language_level=3, boundscheck=False, wraparound=False
cimport fastsoftmax.cython_api as fs
from fastsoftmax cimport cython_api


def softmax_f32(const float[::1] x, float[::1] out, Py_ssize_t n):
    cdef int status
    with nogil:
        status = cython_api.softmax_f32(&x[0], &out[0], n)
    return status


def softmax_f64(const double[::1] x, double[::1] out, Py_ssize_t n):
    cdef int status
    with nogil:
        status = fs.softmax_f64(&x[0], &out[0], n)
    return status


def log_softmax_f32(const float[::1] x, float[::1] out, Py_ssize_t n):
    cdef int status
    with nogil:
        status = fs.log_softmax_f32(&x[0], &out[0], n)
    return status


def log_softmax_f64(const double[::1] x, double[::1] out, Py_ssize_t n):
    cdef int status
    with nogil:
        status = fs.log_softmax_f64(&x[0], &out[0], n)
    return status


def logsumexp_f32(const float[::1] x, Py_ssize_t n):
    cdef float value
    with nogil:
        value = fs.logsumexp_f32(&x[0], n)
    return value


def logsumexp_f64(const double[::1] x, Py_ssize_t n):
    cdef double value
    with nogil:
        value = fs.logsumexp_f64(&x[0], n)
    return value


def softmax_temperature_f32(const float[::1] x, float[::1] out, Py_ssize_t n, double t):
    cdef int status
    with nogil:
        status = fs.softmax_temperature_f32(&x[0], &out[0], n, t)
    return status


def softmax_temperature_f64(const double[::1] x, double[::1] out, Py_ssize_t n, double t):
    cdef int status
    with nogil:
        status = fs.softmax_temperature_f64(&x[0], &out[0], n, t)
    return status


def log_softmax_temperature_f32(const float[::1] x, float[::1] out, Py_ssize_t n, double t):
    cdef int status
    with nogil:
        status = fs.log_softmax_temperature_f32(&x[0], &out[0], n, t)
    return status


def log_softmax_temperature_f64(const double[::1] x, double[::1] out, Py_ssize_t n, double t):
    cdef int status
    with nogil:
        status = fs.log_softmax_temperature_f64(&x[0], &out[0], n, t)
    return status


def softmax_rows(const float[:, ::1] x, float[:, ::1] out):
    cdef Py_ssize_t i
    with nogil:
        for i in range(x.shape[0]):
            fs.softmax_f32(&x[i, 0], &out[i, 0], x.shape[1])
'''

WRAPPER_SETUP = '''
import fastsoftmax
from Cython.Build import cythonize
from setuptools import setup

setup(ext_modules=cythonize(["fs_wrapper.pyx"], include_path=[fastsoftmax.get_include()], quiet=True))
'''


def _missing(reason):
    """Skip for a missing build tool; in CI (CI=true) fail, so that the test never disappears there unnoticed."""
    if IN_CI:
        pytest.fail(f"{reason}, and CI is set: the cimport API must be tested there")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def wrapper(tmp_path_factory):
    """The user's module above, built once for this file with `python setup.py build_ext --inplace`."""
    try:
        import Cython  # noqa: F401
    except ImportError:
        _missing("needs Cython to build a module that cimports fastsoftmax.cython_api")
    cc = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    if not cc or shutil.which(cc[0]) is None:
        _missing(f"needs a C compiler ({' '.join(cc) or 'CC'} not found)")
    try:
        import fastsoftmax.cython_api  # noqa: F401
    except ImportError as e:
        _missing(f"fastsoftmax.cython_api is not built ({e})")
    build = tmp_path_factory.mktemp("cimport")
    (build / "fs_wrapper.pyx").write_text(WRAPPER_PYX)
    (build / "setup.py").write_text(textwrap.dedent(WRAPPER_SETUP))
    result = subprocess.run([sys.executable, "setup.py", "build_ext", "--inplace"], cwd=build, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (path,) = build.glob("fs_wrapper*" + sysconfig.get_config_var("EXT_SUFFIX"))
    spec = importlib.util.spec_from_file_location("fs_wrapper", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def one_thread():
    previous = fastsoftmax.set_num_threads(1)
    yield
    fastsoftmax.set_num_threads(previous)


SUFFIX = {np.float32: "f32", np.float64: "f64"}
LENGTHS = [1, 3, 17, 1000, 100003]


def call(wrapper, func, x, temperature=None):
    """func(x) through the cimport API: (status, result) for softmax/log_softmax, the value for logsumexp."""
    x = np.ascontiguousarray(x)
    name = f"{func}_{SUFFIX[x.dtype.type]}"
    if func == "logsumexp":
        return getattr(wrapper, name)(x, len(x))
    out = np.empty_like(x)
    if temperature is None:
        status = getattr(wrapper, name)(x, out, len(x))
    else:
        status = getattr(wrapper, name.replace("_f", "_temperature_f"))(x, out, len(x), temperature)
    return status, out


def public(func, x, temperature=None):
    """The same through fastsoftmax's Python functions."""
    if temperature is None:
        return getattr(fastsoftmax, func)(x, axis=-1)
    return getattr(fastsoftmax, func)(x, axis=-1, temperature=temperature)


def ulp_bound(func, dtype):
    return {"softmax": SOFTMAX_ULP[dtype], "log_softmax": LOG_SOFTMAX_ULP, "logsumexp": LOGSUMEXP_ULP}[func]


def check_bounds(func, x, got, label, temperature=1):
    """The ULP bounds of tests/test_accuracy.py, and softmax's row sum within 4 eps of 1."""
    label = f"{func} {x.dtype} n={len(x)} {label} T={temperature}"
    want = exact(func, x, -1 if func != "logsumexp" else None, temperature)
    err = ulp_error(np.atleast_1d(got), np.atleast_1d(want))
    assert err <= ulp_bound(func, x.dtype.type), f"{label}: {err:.2f} ULP"
    if func == "softmax":
        row_sum = np.sum(got.astype(np.longdouble))
        assert abs(row_sum - 1) <= 4 * np.finfo(x.dtype).eps, f"{label}: row sum 1 + {float(row_sum - 1):.3g}"


def rows(dtype, n):
    rng = np.random.default_rng(n)
    yield "std 3", rng.normal(0, 3, n).astype(dtype)
    yield "std 30", rng.normal(0, 30, n).astype(dtype)
    peaked = rng.normal(0, 1, n)
    peaked[n // 2] = 60.0 if dtype == np.float64 else 25.0  # y ~ 1 and log y ~ -1e-9 at the peak
    yield "peaked", peaked.astype(dtype)


@pytest.mark.parametrize("n", LENGTHS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("func", ["softmax", "log_softmax", "logsumexp"])
def test_accurate_and_the_same_as_the_python_function(wrapper, func, dtype, n):
    for label, x in rows(dtype, n):
        got = call(wrapper, func, x)
        if func != "logsumexp":
            status, got = got
            assert status == 0, label
            assert got.dtype == x.dtype
        else:
            assert type(got) is float  # a C float or double, returned to Python as a float
            got = np.asarray(got, dtype)  # exact for float32: the C float widened to double
        check_bounds(func, x, got, label)
        # the Python function may split a long row over threads (another summation order): within the bounds
        check_bounds(func, x, public(func, x), f"{label}, fastsoftmax.{func}")


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("func", ["softmax", "log_softmax", "logsumexp"])
def test_bit_for_bit_the_python_function_on_one_thread(wrapper, func, dtype, one_thread):
    """On one thread fastsoftmax.softmax runs the same kernel on the same SIMD path for one row."""
    for n in LENGTHS:
        x = np.random.default_rng(n).normal(0, 5, n).astype(dtype)
        got = call(wrapper, func, x)
        got = np.asarray(got if func == "logsumexp" else got[1], dtype)
        np.testing.assert_array_equal(got, public(func, x), err_msg=f"n={n}")


def nonfinite_rows(dtype):
    nan, inf = np.nan, np.inf
    for row in ([nan, 1, 2], [1, 2, nan], [inf, 1, 2], [inf, inf], [inf, -inf, 3], [-inf, -inf, -inf], [-inf],
                [-inf, 0, 1], [0, -inf, -inf, 5], [nan, inf, -inf], [inf], [nan]):
        yield np.array(row, dtype)
    rng = np.random.default_rng(3)
    for n in (17, 1000):  # long enough for the vector loops and their tails
        x = rng.normal(0, 3, n)
        x[rng.random(n) < 0.25] = -inf
        yield x.astype(dtype)
        for special in (inf, nan):
            y = x.copy()
            y[n - 2] = special
            yield y.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("func", ["softmax", "log_softmax", "logsumexp"])
def test_nan_and_inf_follow_scipy(wrapper, func, dtype, one_thread):
    for x in nonfinite_rows(dtype):
        got = call(wrapper, func, x)
        if func != "logsumexp":
            assert got[0] == 0
            got = got[1]
        got = np.atleast_1d(np.asarray(got, dtype))
        want = np.atleast_1d(exact(func, x, -1 if func != "logsumexp" else None))
        label = f"{func}({x.tolist()[:6]}...)"
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=label)
        infinite = np.isinf(want)
        np.testing.assert_array_equal(got[infinite], want[infinite].astype(dtype), err_msg=label)
        finite = np.isfinite(want)
        assert ulp_error(got[finite], want[finite]) <= ulp_bound(func, dtype), label
        np.testing.assert_array_equal(got, np.atleast_1d(public(func, x)), err_msg=label)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
def test_empty_row_and_negative_length(wrapper, dtype):
    """n == 0: softmax and log_softmax return 0 and write nothing, logsumexp is -inf (scipy's results for an empty
    row); n < 0: -1 and nothing written, logsumexp nan."""
    suffix = SUFFIX[dtype]
    x = np.ones(4, dtype)
    for n, status in ((0, 0), (-1, -1), (-5, -1)):
        for func in ("softmax", "log_softmax", "softmax_temperature", "log_softmax_temperature"):
            out = np.full(4, 7.0, dtype)
            args = (x, out, n, 2.0) if func.endswith("temperature") else (x, out, n)
            assert getattr(wrapper, f"{func}_{suffix}")(*args) == status, (func, n)
            assert np.all(out == 7.0), f"{func} wrote into out with n={n}"
        lse = getattr(wrapper, f"logsumexp_{suffix}")(x, n)
        assert (lse == -np.inf) if n == 0 else np.isnan(lse)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("func", ["softmax", "log_softmax"])
def test_temperature(wrapper, func, dtype):
    for n in (1, 17, 1000):
        x = np.random.default_rng(n).normal(0, 30, n).astype(dtype)
        for t in (0.01, 1 / 3, 25.0):
            status, got = call(wrapper, func, x, temperature=t)
            assert status == 0
            check_bounds(func, x, got, "std 30", temperature=t)
            assert max_ulp(got, public(func, x, temperature=t)) <= ulp_bound(func, dtype), f"n={n} T={t}"
        for bad in (0.0, -1.0, np.inf, np.nan):
            out = np.full(n, 7.0, dtype)
            name = f"{func}_temperature_{SUFFIX[dtype]}"
            assert getattr(wrapper, name)(x, out, n, bad) == -1, bad
            assert np.all(out == 7.0)


def test_read_only_input_and_the_row_loop_of_the_pxd_example(wrapper):
    x = np.random.default_rng(0).normal(0, 3, (5, 300)).astype(np.float32)
    x.setflags(write=False)
    out = np.empty_like(x)
    wrapper.softmax_rows(x, out)
    np.testing.assert_array_equal(out, np.stack([call(wrapper, "softmax", row)[1] for row in x]))
    check_bounds("softmax", x[2], out[2], "row 2 of 5")


def test_same_simd_path_as_the_python_functions(wrapper):
    """This module picks its own copy of the kernels' SIMD path at import (extensions load RTLD_LOCAL)."""
    from fastsoftmax import cython_api
    from fastsoftmax._backends import cython_kernels
    assert cython_api.simd_path() == cython_kernels.cpu_info()["simd_path"]
