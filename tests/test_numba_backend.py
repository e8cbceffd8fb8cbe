"""Tests of the numba backend (fastsoftmax._backends.numba) through its module contract.

The module is called directly with 3-D (outer, n, inner) C-contiguous arrays;
the reduction is over axis 1.
"""
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("numba")

from fastsoftmax._backends import numba as nb  # noqa: E402
from fastsoftmax._tools.exact import exact, max_ulp  # noqa: E402

REPO = Path(nb.__file__).resolve().parents[3]
DTYPES = [np.float32, np.float64]
OPS = ["softmax", "log_softmax", "logsumexp"]

# max error in ULP (of the correctly rounded result), results that are normal
ULP_BOUND = {
    ("softmax", np.float32): 2.0, ("softmax", np.float64): 4.0,
    ("log_softmax", np.float32): 4.0, ("log_softmax", np.float64): 4.0,
    ("logsumexp", np.float32): 2.0, ("logsumexp", np.float64): 2.0,
}


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
def run(op, x, n_threads=1):
    outer, n, inner = x.shape
    if op == "logsumexp":
        out = np.full((outer, inner), 12345.0, dtype=x.dtype)
    else:
        out = np.full(x.shape, 12345.0, dtype=x.dtype)
    getattr(nb, op)(x, out, n_threads)
    return out


def reference(op, x):
    """op over axis 1 in long double, with scipy.special's results on nan and inf."""
    return exact(op, x, axis=1)


def check_close(op, x, got, dtype):
    ref = reference(op, x)
    got_l = got.astype(np.longdouble)
    nan_ref = np.isnan(ref)
    np.testing.assert_array_equal(np.isnan(got), nan_ref)
    with np.errstate(over="ignore"):
        ref_r = ref.astype(dtype)       # overflow to +-inf in this dtype
    inf_ref = np.isinf(ref_r)
    np.testing.assert_array_equal(got[inf_ref], ref_r[inf_ref])
    fin = ~(nan_ref | inf_ref)
    if op == "softmax":  # -inf inputs give exactly 0
        zero = fin & (np.broadcast_to(x, ref.shape) == -np.inf)
        assert (got[zero] == 0).all()
    if fin.any():
        assert max_ulp(got_l[fin], ref[fin], dtype) <= ULP_BOUND[(op, dtype)]


def make(shape, dtype, scale, seed):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) * scale).astype(dtype)


# ---------------------------------------------------------------------------
# accuracy on finite input
# ---------------------------------------------------------------------------
SHAPES = {
    "rows": (37, 1000, 1),
    "short_rows": (300, 17, 1),
    "cols": (3, 200, 70),
    "cols_2d": (1, 300, 257),
    "tiny": (2, 1, 3),
}


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("layout", list(SHAPES))
@pytest.mark.parametrize("n_threads", [1, 2])
def test_accuracy(dtype, layout, n_threads):
    shape = SHAPES[layout]
    for k, scale in enumerate((1.0, 6.0, 40.0)):
        x = make(shape, dtype, scale, seed=k + 10 * n_threads)
        for op in OPS:
            got = run(op, x, n_threads)
            ulp = max_ulp(got, reference(op, x), dtype)
            assert ulp <= ULP_BOUND[(op, dtype)], (op, scale, ulp)
        sm = run("softmax", x, n_threads)
        sums = sm.astype(np.longdouble).sum(axis=1)
        assert np.abs(sums - 1).max() <= 4 * np.finfo(dtype).eps


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("n_threads", [1, 2])
def test_huge_row(dtype, n_threads):
    x = make((1, 10**6, 1), dtype, 3.0, seed=3)
    for op in OPS:
        got = run(op, x, n_threads)
        ulp = max_ulp(got, reference(op, x), dtype)
        assert ulp <= ULP_BOUND[(op, dtype)], (op, ulp)
    sums = run("softmax", x, n_threads).astype(np.longdouble).sum(axis=1)
    assert np.abs(sums - 1).max() <= 4 * np.finfo(dtype).eps


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_few_long_rows_parallel(dtype):
    # 3 rows of 2e5: rows are split across threads (chunked path)
    x = make((3, 200_000, 1), dtype, 5.0, seed=4)
    for op in OPS:
        a = run(op, x, 2)
        b = run(op, x, 1)
        ref = reference(op, x)
        assert max_ulp(a, ref, dtype) <= ULP_BOUND[(op, dtype)]
        assert max_ulp(b, ref, dtype) <= ULP_BOUND[(op, dtype)]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_peaked_rows_log_softmax_near_zero(dtype):
    # log_softmax of the max of a peaked row is -sum(others): tiny, must
    # still be accurate to a few ULP (needs log1p of the rest).
    x = np.array([[0.0, -20.0, -25.0, -30.0, -60.0],
                  [5.0, -15.0, -16.0, -90.0, -3e3],
                  [1.0, 1.0, -30.0, -31.0, -32.0]], dtype=dtype)
    x = np.ascontiguousarray(x[:, :, None])
    for op in OPS:
        got = run(op, x)
        ref = reference(op, x)
        assert max_ulp(got, ref, dtype) <= ULP_BOUND[(op, dtype)], op
        # same thing as columns
        xc = np.ascontiguousarray(x[:, :, 0].T[None])
        gotc = run(op, xc)
        assert max_ulp(gotc, reference(op, xc), dtype) <= ULP_BOUND[(op, dtype)]


def test_float32_extremes():
    f32 = np.float32
    big = np.finfo(f32).max
    sub = np.finfo(f32).smallest_subnormal
    x = np.array([[3e38, -3e38, 0.0, 1.0],
                  [big, big, -big, 1e-45],
                  [sub, -sub, 0.0, 2 * sub],
                  [-3e38, -3e38, -3e38, -3e38]], dtype=f32)[:, :, None]
    x = np.ascontiguousarray(x)
    for op in OPS:
        got = run(op, x)
        assert np.isfinite(got).all() or op == "log_softmax"
        check_close(op, x, got, f32)
        xc = np.ascontiguousarray(x[:, :, 0].T[None])
        check_close(op, xc, run(op, xc), f32)
    sm = run("softmax", x)
    assert sm[0, 1, 0] == 0 and sm[0, 0, 0] == 1


# ---------------------------------------------------------------------------
# non-finite semantics (scipy.special)
# ---------------------------------------------------------------------------
NONFINITE = [
    [np.nan, 1.0, 2.0],
    [np.inf, 1.0, 2.0],
    [np.inf, np.inf, 1.0],
    [np.inf, -np.inf, -np.inf],
    [-np.inf, -np.inf, -np.inf],
    [-np.inf, 1.0, 2.0],
    [-np.inf, -np.inf, 0.0],
    [np.nan, np.inf, -np.inf],
    [np.nan, -np.inf, -np.inf],
    [np.nan, np.nan, np.nan],
    [1.0, 2.0, 3.0],
    [-1e300, 0.0, -np.inf],
]


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
@pytest.mark.parametrize("op", OPS)
def test_nonfinite_semantics(dtype, op):
    with np.errstate(over="ignore"):
        rows = np.array(NONFINITE, dtype=dtype)
    x = np.ascontiguousarray(rows[:, :, None])            # rows
    check_close(op, x, run(op, x), dtype)
    xc = np.ascontiguousarray(rows.T[None])               # columns
    check_close(op, xc, run(op, xc), dtype)
    # long slices (blocked/parallel paths) with a single special value
    n = 50_000
    for v in (np.nan, np.inf, -np.inf):
        base = make((1, n, 1), dtype, 2.0, seed=5)
        for pos in (0, n // 2 + 7, n - 1):
            xx = base.copy()
            xx[0, pos, 0] = v
            for nt in (1, 2):
                check_close(op, xx, run(op, xx, nt), dtype)
    allninf = np.full((1, n, 1), -np.inf, dtype=dtype)
    for nt in (1, 2):
        check_close(op, allninf, run(op, allninf, nt), dtype)
    # one whole parallel chunk of -inf (masked) in an otherwise finite row
    masked = make((1, n, 1), dtype, 2.0, seed=6)
    masked[0, : n // 2 + 100] = -np.inf
    for nt in (1, 2):
        check_close(op, masked, run(op, masked, nt), dtype)


def test_scipy_agreement_nonfinite():
    sp = pytest.importorskip("scipy.special")
    rows = np.array(NONFINITE)
    for op in OPS:
        with np.errstate(all="ignore"):
            ref = getattr(sp, op)(rows, axis=1)
        got = run(op, np.ascontiguousarray(rows[:, :, None]))
        got = got[:, 0] if op == "logsumexp" else got[:, :, 0]
        np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
        fin = ~np.isnan(ref)
        np.testing.assert_allclose(got[fin], ref[fin], rtol=1e-13, atol=0)


# ---------------------------------------------------------------------------
# threads
# ---------------------------------------------------------------------------
def test_parallel_kernels_run_on_the_shared_pool_not_a_numba_threading_layer():
    """numba's threading layers (OpenMP, workqueue) stall next to other pools and break fork; the backend's tasks run
    on fastsoftmax's own pool, so numba never launches one."""
    import numba
    if not nb.threads_available():
        pytest.skip("built without the compiled thread pool")
    x = make((64, 1024, 1), np.float64, 1.0, seed=7)
    run("softmax", x, 2)
    with pytest.raises(ValueError):
        numba.threading_layer()  # "Threading layer is not initialized."


@pytest.mark.parametrize("dtype", DTYPES, ids=["f32", "f64"])
def test_concurrent_python_threads(dtype):
    inputs = [
        make((256, 1000, 1), dtype, 3.0, seed=20),
        make((1, 200_000, 1), dtype, 3.0, seed=21),
        make((1, 300, 400), dtype, 3.0, seed=22),
    ]
    jobs = [(op, i) for op in OPS for i in range(len(inputs))]
    expected = {job: run(job[0], inputs[job[1]], 2) for job in jobs}
    results = {}
    errors = []
    barrier = threading.Barrier(8)

    def worker(t):
        try:
            barrier.wait()
            for rep in range(3):
                for k, job in enumerate(jobs):
                    if (k + t) % 2 == 0:
                        results[(t, rep, job)] = run(job[0], inputs[job[1]], 2)
        except BaseException as e:  # pragma: no cover
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors
    assert results
    for (t, rep, job), got in results.items():
        np.testing.assert_array_equal(got, expected[job])


# ---------------------------------------------------------------------------
# fresh process, unwritable numba cache dir
# ---------------------------------------------------------------------------
SUBPROCESS_SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {repo!r})
    import numpy as np
    t0 = time.perf_counter()
    from fastsoftmax._backends import numba as nb
    for dt in (np.float32, np.float64):
        for shape, nt in (((4, 10, 1), 1), ((64, 1000, 1), 2), ((1, 100000, 1), 2),
                          ((2, 30, 5), 1)):
            x = np.random.default_rng(0).standard_normal(shape).astype(dt)
            out = np.empty_like(x)
            nb.softmax(x, out, nt)
            assert np.allclose(out.sum(axis=1), 1, rtol=1e-4)
            nb.log_softmax(x, out, nt)
            lse = np.empty((shape[0], shape[2]), dt)
            nb.logsumexp(x, lse, nt)
            assert np.allclose(np.exp(out).sum(axis=1), 1, rtol=1e-4)
    print("OK %.2f" % (time.perf_counter() - t0))
""")


def test_fresh_process_unwritable_cache_dir(tmp_path):
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        # root ignores permission bits: use a path below a regular file
        blocker = tmp_path / "not_a_dir"
        blocker.write_text("x")
        cache_dir = blocker / "numba_cache"
    else:
        cache_dir = tmp_path / "ro_cache"
        cache_dir.mkdir()
        cache_dir.chmod(0o555)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    script = SUBPROCESS_SCRIPT.format(repo=str(REPO))
    try:
        proc = subprocess.run([sys.executable, "-c", script], env=env,
                              capture_output=True, text=True, timeout=300)
    finally:
        if cache_dir.exists():
            cache_dir.chmod(0o755)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "OK" in proc.stdout
