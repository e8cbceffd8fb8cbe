"""The compiled backends' accuracy bounds, against a long-double reference (accuracy is deterministic).

softmax <= 2 ULP in float32 and <= 4 ULP in float64 where the exact result is a normal number, absolute error
below the smallest normal elsewhere; row sums within 4 eps of 1 at any length; log_softmax <= 4 ULP (the outputs
near 0 of a peaked row included); logsumexp <= 2 ULP."""
import numpy as np
import pytest

import fastsoftmax
from fastsoftmax._tools.exact import exact, max_ulp

COMPILED = [name for name in ("cython", "numba") if name in fastsoftmax.backends()]
SOFTMAX_ULP = {np.float32: 2.0, np.float64: 4.0}
LOG_SOFTMAX_ULP = 4.0
LOGSUMEXP_ULP = 2.0


def ulp_error(got, want):
    """The largest error in ULP where the exact result is a normal number (max_ulp), after checking that the error
    stays below the smallest normal everywhere else."""
    finfo = np.finfo(got.dtype)
    want = np.asarray(want)
    normal = np.abs(want) >= finfo.smallest_normal
    below = np.abs(got[~normal].astype(np.longdouble) - want[~normal])
    assert np.all(below < finfo.smallest_normal), "error beyond the smallest normal among tiny results"
    return max_ulp(got, want)


def accuracy_inputs(dtype):
    """(label, x, axis): the rows the bounds are promised on."""
    rng = np.random.default_rng(7)
    yield "std 3 rows", rng.normal(0, 3, (64, 1000)).astype(dtype), -1
    yield "std 30 rows", rng.normal(0, 30, (64, 1000)).astype(dtype), -1
    yield "offset 1e4", (1e4 + rng.normal(0, 3, (16, 1000))).astype(dtype), -1
    yield "152064-long rows", rng.normal(0, 3, (2, 152064)).astype(dtype), -1
    # 96 KB rows: past L1 and within L2, where softmax overlaps each row's scale pass with the next row's exp
    yield "96 KB rows", rng.normal(0, 3, (6, 24013 if dtype == np.float32 else 12013)).astype(dtype), -1
    yield "axis 0 std 30", rng.normal(0, 30, (500, 300)).astype(dtype), 0
    # columns tall enough (tiles of 3 MB and more) for float32's blocks of rows; every other column's max grows
    # from block to block, so that the sums are rescaled as they merge
    tall = rng.normal(0, 3, (13000, 150)) + np.linspace(0, 60, 13000)[:, None] * (np.arange(150) % 2)
    yield "tall columns", tall.astype(dtype), 0
    yield "10^6 row", rng.normal(0, 3, 10**6).astype(dtype), None
    rising = np.sort(rng.normal(0, 30, 10**6))  # the running max grows all along: many rescaled partial sums
    yield "10^6 rising row", rising.astype(dtype), None
    yield "short rows and tails", rng.normal(0, 10, (40, 37)).astype(dtype), -1
    peaked = rng.normal(0, 1, (8, 200))
    peaked[:, 3] = 60.0 if dtype == np.float64 else 25.0  # the top class of a confident row: y ~ 1, log y ~ -1e-9
    yield "peaked rows", peaked.astype(dtype), -1


def cases():
    for dtype in (np.float32, np.float64):
        for label, x, axis in accuracy_inputs(dtype):
            yield pytest.param(x, axis, id=f"{np.dtype(dtype).name}-{label}")


@pytest.fixture(params=[1, 2], ids=["1thread", "2threads"])
def threads(request):
    previous = fastsoftmax.set_num_threads(request.param)
    yield request.param
    fastsoftmax.set_num_threads(previous)


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("x, axis", list(cases()))
def test_softmax_ulp_and_row_sums(backend, x, axis, threads):
    got = fastsoftmax.softmax(x, axis=axis, backend=backend)
    want = exact("softmax", x, axis)
    err = ulp_error(got, want)
    assert err <= SOFTMAX_ULP[x.dtype.type], f"{err:.2f} ULP"
    row_sums = np.sum(got.astype(np.longdouble), axis=axis)
    assert np.max(np.abs(row_sums - 1)) <= 4 * np.finfo(x.dtype).eps


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("x, axis", list(cases()))
def test_log_softmax_ulp(backend, x, axis, threads):
    got = fastsoftmax.log_softmax(x, axis=axis, backend=backend)
    err = ulp_error(got, exact("log_softmax", x, axis))
    assert err <= LOG_SOFTMAX_ULP, f"{err:.2f} ULP"


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("x, axis", list(cases()))
def test_logsumexp_ulp(backend, x, axis, threads):
    got = np.asarray(fastsoftmax.logsumexp(x, axis=axis, backend=backend))
    err = ulp_error(got, exact("logsumexp", x, axis))
    assert err <= LOGSUMEXP_ULP, f"{err:.2f} ULP"


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_row_sum_of_ten_million(backend, dtype):
    x = np.random.default_rng(3).normal(0, 3, 10**7).astype(dtype)
    got = fastsoftmax.softmax(x, backend=backend)
    total = np.sum(got.astype(np.float64)) if dtype == np.float32 else float(np.sum(got.astype(np.longdouble)))
    assert abs(total - 1) <= 4 * np.finfo(dtype).eps


@pytest.mark.parametrize("path", ["baseline", "avx2", "generic"])
def test_narrower_simd_paths_are_selectable_and_accurate(path):
    """FASTSOFTMAX_SIMD=baseline (SSE2 on x86-64, portable vectors elsewhere), avx2 or generic (portable vectors)
    caps the kernels' width; every path keeps the same bounds."""
    if "cython" not in COMPILED:
        pytest.skip("no compiled backend")
    expected = {"baseline": ("sse2", "generic"), "avx2": ("avx2_fma", "sse2", "neon", "generic"),
                "generic": ("generic",)}  # avx2 falls back where absent
    import os
    import subprocess
    import sys
    code = (
        "import numpy as np, fastsoftmax\n"
        "from tests.test_accuracy import ulp_error, accuracy_inputs\n"
        "from fastsoftmax._tools.exact import exact\n"
        f"assert fastsoftmax.info()['simd_path'] in {expected[path]!r}, fastsoftmax.info()['simd_path']\n"
        "for dtype, bound in ((np.float32, 2.0), (np.float64, 4.0)):\n"
        "    for label, x, axis in accuracy_inputs(dtype):\n"
        "        err = ulp_error(fastsoftmax.softmax(x, axis=axis, backend='cython'), exact('softmax', x, axis))\n"
        "        assert err <= bound, (label, err)\n"
        "print('ok')\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root,
                            env={**os.environ, "FASTSOFTMAX_SIMD": path}, timeout=600)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-3000:]
