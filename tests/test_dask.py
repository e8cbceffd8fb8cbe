"""fastsoftmax on dask arrays: lazy results equal to the in-memory ones, on every scheduler, chunk by chunk."""
import subprocess
import sys

import numpy as np
import pytest

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import fastsoftmax  # noqa: E402

from .util import _values, tolerance_violations  # noqa: E402

FUNCS = ("softmax", "log_softmax", "logsumexp")


def call(func, x, axis, **kwargs):
    return getattr(fastsoftmax, func)(x, axis=axis, **kwargs)


def assert_matches(func, x, axis, got, chunked=None):
    """`got` (computed) has the in-memory result's dtype, shape and nan/inf pattern, and is within tolerance."""
    want = np.asarray(call(func, x, axis))
    got = np.asarray(got)
    label = f"{func} dtype={x.dtype} shape={x.shape} chunks={chunked} axis={axis}"
    assert got.dtype == want.dtype, label
    assert got.shape == want.shape, label
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=label)
    np.testing.assert_array_equal(np.where(np.isinf(got), got, 0), np.where(np.isinf(want), want, 0), err_msg=label)
    if x.dtype in (np.float32, np.float64):
        problem = tolerance_violations(func, x, axis, got)
        assert problem is None, f"{label}: {problem}"


def ulps(got, want):
    """|got - want| in units of want's last place (0 where both are equal, nan or inf)."""
    got, want = np.asarray(got), np.asarray(want)
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    spacing = np.spacing(np.abs(want)).astype(np.float64)
    with np.errstate(all="ignore"):
        d = np.abs(got.astype(np.float64) - want.astype(np.float64)) / spacing
    return np.where(same, 0, d)


# ---- against the in-memory functions and the long-double reference --------------------------------------------

@st.composite
def chunked_cases(draw):
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(1, 9), min_size=ndim, max_size=ndim)))
    chunks = tuple(draw(st.integers(1, n)) for n in shape)
    axis = draw(st.sampled_from([None] + list(range(-ndim, ndim)) + ([(0, ndim - 1)] if ndim > 1 else [])))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    family = draw(st.sampled_from(["std3", "std30", "offset1e4", "nonfinite", "all_neg_inf", "huge", "tiny"]))
    seed = draw(st.integers(0, 2**16))
    x = _values(np.random.default_rng(seed), shape, family, dtype).astype(dtype)
    return x, chunks, axis


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=chunked_cases(), func=st.sampled_from(FUNCS))
def test_random_shapes_and_chunkings(case, func):
    x, chunks, axis = case
    got = call(func, da.from_array(x, chunks=chunks), axis)
    assert isinstance(got, da.Array)
    assert_matches(func, x, axis, got.compute(scheduler="sync"), chunks)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("func", FUNCS)
def test_every_axis_and_family_chunks_of_two(func, dtype):
    """Every family of util's generator on (3, 5) and (2, 3, 4), each axis split into chunks of 2."""
    rng = np.random.default_rng(3)
    for shape in ((7,), (3, 5), (2, 3, 4)):
        axes = [None] + list(range(-len(shape), len(shape))) + ([(0, 1), (-1, 0)] if len(shape) > 1 else [])
        for family in ("std3", "std30", "offset1e4", "nonfinite", "all_neg_inf", "huge", "tiny"):
            x = _values(rng, shape, family, dtype).astype(dtype)
            for axis in axes:
                got = call(func, da.from_array(x, chunks=2), axis).compute(scheduler="sync")
                assert_matches(func, x, axis, got, 2)


def test_nonfinite_lines_follow_scipy():
    """A line with nan, with +inf, all -inf, and a finite line with a chunk of only -inf, split in 3 chunks."""
    x = np.array([[0.0, 1.0, np.nan, 2.0, 3.0, 4.0],
                  [0.0, 1.0, np.inf, 2.0, -np.inf, 4.0],
                  [-np.inf] * 6,
                  [-np.inf, -np.inf, 1.0, 2.0, 3.0, -np.inf],
                  [1.0, np.inf, np.inf, -np.inf, 0.0, np.nan]])
    d = da.from_array(x, chunks=(2, 2))
    for func in FUNCS:
        got = call(func, d, 1).compute(scheduler="sync")
        want = call(func, x, 1)
        np.testing.assert_allclose(got, want, rtol=1e-15, err_msg=func)  # nan == nan and inf == inf here
        assert_matches(func, x, 1, got)
    assert np.isnan(fastsoftmax.softmax(d, axis=1).compute()[:3]).all()
    np.testing.assert_array_equal(fastsoftmax.softmax(d, axis=1).compute()[3, [0, 1, 5]], 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_long_chunked_lines_within_a_few_ulp_of_in_memory(dtype):
    rng = np.random.default_rng(7)
    x = rng.normal(0, 3, (3, 120_000)).astype(dtype)
    x[1] += 1e4  # the per-chunk partial (max, log-sum) is kept apart: a large offset costs no accuracy
    x[2] *= 10
    d = da.from_array(x, chunks=(3, 10_000))
    for func in FUNCS:
        got = call(func, d, -1).compute(scheduler="threads")
        want = call(func, x, -1)
        assert got.dtype == want.dtype
        tiny = np.finfo(dtype).smallest_normal
        normal = np.abs(want) >= tiny
        assert ulps(got[normal], want[normal]).max() <= 8, func
        if dtype == np.float64:
            assert_matches(func, x, -1, got)


def test_dtypes_like_in_memory():
    rng = np.random.default_rng(1)
    for x in (rng.normal(0, 3, (4, 9)).astype(np.float16), np.arange(36, dtype=np.int64).reshape(4, 9) % 7,
              rng.random((4, 9)) < 0.5, rng.normal(0, 3, (4, 9)).astype(np.float32).astype(">f4"),
              rng.normal(0, 3, (4, 9)).astype(np.longdouble)):
        d = da.from_array(x, chunks=(2, 4))
        for func in FUNCS:
            for axis in (None, 1, 0):
                got, want = call(func, d, axis).compute(scheduler="sync"), call(func, x, axis)
                assert got.dtype == want.dtype, (func, x.dtype)
                eps = np.finfo(want.dtype).eps
                np.testing.assert_allclose(got, want, rtol=8 * eps, atol=8 * eps,
                                           err_msg=f"{func} {x.dtype} {axis}")


def test_complex_input_is_computed_per_whole_line():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 6)) + 1j * rng.normal(size=(4, 6))
    d = da.from_array(x, chunks=(2, 3))
    for func in FUNCS:
        np.testing.assert_allclose(call(func, d, 1).compute(scheduler="sync"), call(func, x, 1), rtol=1e-12)
    out, sign = fastsoftmax.logsumexp(d, axis=1, return_sign=True)
    want_out, want_sign = fastsoftmax.logsumexp(x, axis=1, return_sign=True)
    np.testing.assert_allclose(out.compute(), want_out, rtol=1e-12)
    np.testing.assert_allclose(sign.compute(), want_sign, rtol=1e-12)


def test_zero_d_and_empty():
    for func in FUNCS:
        for x, axis in ((np.float64(1.5), None), (np.empty((0, 3)), 0), (np.empty((0, 3)), 1),
                        (np.empty((2, 0)), None)):
            got = call(func, da.from_array(np.asarray(x)), axis).compute(scheduler="sync")
            want = call(func, x, axis)
            np.testing.assert_array_equal(got, want)
            assert np.asarray(got).shape == np.asarray(want).shape and got.dtype == want.dtype


# ---- logsumexp: b=, keepdims, return_sign ---------------------------------------------------------------------

@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("return_sign", [False, True])
def test_logsumexp_options(keepdims, return_sign):
    rng = np.random.default_rng(4)
    a = rng.normal(0, 3, (5, 12))
    a[0, 3], a[1, 2], a[2] = np.nan, np.inf, -np.inf
    b = rng.normal(size=(5, 12))
    b[3, 5:] = 0  # zero weights drop their terms
    b[4] = np.where(np.arange(12) < 6, 1.0, -1.0)
    a[4, 6:] = a[4, :6] - 1  # a line whose negative terms (in other chunks) cancel part of the positive ones
    d = da.from_array(a, chunks=(2, 5))
    for weights, b_in in ((None, None), (b, b), (b, da.from_array(b, chunks=(3, 4))), (b[0], b[0]),
                          (b[0], da.from_array(b[0], chunks=7))):
        for axis in (None, 1, 0, -1, (0, 1)):
            got = fastsoftmax.logsumexp(d, axis=axis, b=b_in, keepdims=keepdims, return_sign=return_sign)
            want = fastsoftmax.logsumexp(a, axis=axis, b=weights, keepdims=keepdims, return_sign=return_sign)
            got, want = (got, want) if return_sign else ((got,), (want,))
            for g, w in zip(got, want):
                g = g.compute(scheduler="sync")
                assert g.shape == np.shape(w) and g.dtype == np.asarray(w).dtype
                np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-13,
                                           err_msg=f"axis={axis} weighted={weights is not None}")


def test_logsumexp_exact_cancellation_across_chunks():
    a = da.from_array(np.array([[1.0, 2.0, 1.0, 2.0], [0.0, 0.0, -np.inf, -np.inf]]), chunks=(1, 2))
    b = np.array([[1.0, 1.0, -1.0, -1.0], [0.0, 0.0, 1.0, 1.0]])
    out, sign = fastsoftmax.logsumexp(a, axis=1, b=b, return_sign=True)
    np.testing.assert_array_equal(out.compute(), [-np.inf, -np.inf])
    np.testing.assert_array_equal(sign.compute(), [0, 0])
    np.testing.assert_array_equal(fastsoftmax.logsumexp(a, axis=1, b=b).compute(), [-np.inf, -np.inf])


def test_logsumexp_float32_keeps_its_dtype_and_numpy_a_with_dask_b():
    rng = np.random.default_rng(5)
    a = rng.normal(0, 3, (3, 50)).astype(np.float32)
    d = da.from_array(a, chunks=(3, 8))
    got = fastsoftmax.logsumexp(d, axis=1).compute()
    assert got.dtype == np.float32
    assert tolerance_violations("logsumexp", a, 1, got) is None
    w = rng.random(50).astype(np.float32)
    got = fastsoftmax.logsumexp(a, axis=1, b=da.from_array(w, chunks=9)).compute()
    np.testing.assert_allclose(got, fastsoftmax.logsumexp(a, axis=1, b=w), rtol=1e-6)
    assert got.dtype == np.float32


# ---- API --------------------------------------------------------------------------------------------------------

def test_out_is_rejected():
    d = da.ones((4, 4), chunks=2)
    for func in ("softmax", "log_softmax"):
        with pytest.raises(TypeError, match="out="):
            getattr(fastsoftmax, func)(d, axis=1, out=np.empty((4, 4)))


def test_bad_input():
    with pytest.raises(TypeError, match="dtype"):
        fastsoftmax.softmax(da.from_array(np.array(["a", "b"])))
    with pytest.raises(np.exceptions.AxisError):
        fastsoftmax.softmax(da.ones((2, 2)), axis=2)


def test_import_does_not_import_dask():
    code = ("import sys, fastsoftmax, numpy as np; fastsoftmax.softmax(np.ones(3)); "
            "bad = [m for m in sys.modules if m == 'dask' or m.startswith('dask.') or m == 'distributed']; "
            "assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=300)


# ---- the graph: one task per chunk per pass, never a whole line in one chunk ---------------------------------

def task_count(array):
    return len(dict(array.__dask_graph__()))


def test_single_chunk_axis_is_one_map_blocks_call():
    x = np.random.default_rng(0).normal(size=(40, 30))
    d = da.from_array(x, chunks=(10, 30))
    for func in ("softmax", "log_softmax"):
        y = call(func, d, 1)
        assert task_count(y) - task_count(d) == d.npartitions
        assert_matches(func, x, 1, y.compute(scheduler="sync"))


def test_chunked_axis_never_builds_a_whole_line():
    from dask.callbacks import Callback

    chunk = 250
    d = da.random.default_rng(0).normal(0, 3, (6, 4000), chunks=(3, chunk))  # made chunk by chunk
    x = d.compute()
    seen = []

    class Shapes(Callback):
        def _posttask(self, key, result, dsk, state, worker_id):
            if not isinstance(key, tuple):  # compute's final concatenation of the output chunks
                return
            for r in (result if isinstance(result, (tuple, list)) else (result,)):
                if isinstance(r, np.ndarray):
                    seen.append(r.shape)

    for func in FUNCS:
        y = call(func, d, 1)
        # chunk tasks for the input, the partials and the normalization, and a small reduction tree
        assert task_count(y) <= task_count(d) + 4 * d.npartitions
        seen.clear()
        with Shapes():
            got = y.compute(scheduler="threads")
        assert seen and max(shape[1] for shape in seen if len(shape) > 1) <= chunk
        assert_matches(func, x, 1, got)


def test_threaded_scheduler():
    x = np.random.default_rng(9).normal(0, 3, (20, 3000)).astype(np.float32)
    d = da.from_array(x, chunks=(5, 400))
    with dask.config.set(scheduler="threads"):
        for func in FUNCS:
            for axis in (1, 0, None):
                assert_matches(func, x, axis, call(func, d, axis).compute())


# ---- a real distributed cluster --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None,
                                  host="127.0.0.1") as cluster, distributed.Client(cluster) as c:
        yield c


def test_distributed_cluster(client):
    rng = np.random.default_rng(11)
    x = rng.normal(0, 3, (8, 2000)).astype(np.float32)
    x[1, 5] = np.nan
    x[2, 1500:] = -np.inf
    d = da.from_array(x, chunks=(4, 300))
    for func in FUNCS:
        for axis in (1, 0, None, (0, 1)):
            y = call(func, d, axis)
            got = client.compute(y).result()
            assert_matches(func, x, axis, got)
    b = rng.random((8, 2000))
    got = client.compute(fastsoftmax.logsumexp(d, axis=1, b=da.from_array(b, chunks=(8, 500)))).result()
    np.testing.assert_allclose(got, fastsoftmax.logsumexp(x, axis=1, b=b), rtol=1e-6)


def test_temperature_on_a_chunked_axis():
    x = np.random.default_rng(11).normal(0, 3, (6, 400)).astype(np.float32)
    dx = da.from_array(x, chunks=(3, 100))
    for func in ("softmax", "log_softmax"):
        got = getattr(fastsoftmax, func)(dx, axis=1, temperature=0.5).compute(scheduler="synchronous")
        want = getattr(fastsoftmax, func)(x, axis=1, temperature=0.5)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
