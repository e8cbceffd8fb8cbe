"""Every function on every backend against the long-double reference, over the shared input generator."""
import numpy as np
import pytest

import fastsoftmax

from .util import (BACKENDS, FLOAT_DTYPES, FUNCTIONS, array_cases, exact, integer_cases, long_line_cases,
                   tiny_tasks, tolerance_violations)


# None: the automatic choice, which takes the compiled shortcut of fastsoftmax/_api.py for the common calls
CONTRACT_BACKENDS = [None, *BACKENDS]


def _id(backend):
    return "auto" if backend is None else backend


def _run(func, backend, x, axis):
    return getattr(fastsoftmax, func)(x, axis=axis, backend=backend)


def _expected_dtype(x):
    dtype = np.asarray(x).dtype
    return np.dtype(np.float64) if dtype.kind in "biu" else dtype.newbyteorder("=")


def check_case(func, backend, label, x, axis):
    """Return a failure message naming the case, or None."""
    before = np.array(x, copy=True)
    flags_before = np.asarray(x).flags.writeable
    try:
        got = _run(func, backend, x, axis)
    except Exception as exc:  # noqa: BLE001 - reported with the case
        try:
            exact(func, x, axis)
        except Exception:
            return None  # both raise (e.g. an axis out of range)
        return f"{func} backend={backend} {label}: raised {exc!r}"
    if not np.array_equal(np.asarray(x), before, equal_nan=True) or np.asarray(x).flags.writeable != flags_before:
        return f"{func} backend={backend} {label}: modified its input"
    got_array = np.asarray(got)
    if got_array.dtype != _expected_dtype(x):
        return f"{func} backend={backend} {label}: dtype {got_array.dtype}, expected {_expected_dtype(x)}"
    if np.ndim(x) == 0 and func != "logsumexp" and isinstance(got, np.ndarray):
        return f"{func} backend={backend} {label}: a 0-d input must give a numpy scalar, as scipy"
    problem = tolerance_violations(func, x, axis, got_array)
    return f"{func} backend={backend} {label}: {problem}" if problem else None


def _check_all(func, backend, cases):
    failures = [msg for label, x, axis in cases if (msg := check_case(func, backend, label, x, axis))]
    assert not failures, f"{len(failures)} failing cases, first ones:\n" + "\n".join(failures[:10])


@pytest.fixture(params=["serial", "threaded"])
def threading(request):
    """serial: one thread; threaded: two threads even for tiny inputs, each array cut into tasks of a few elements
    and rows of 8 or more split into slices of 16, so the parallel paths of every compiled backend see every shape."""
    threaded = request.param == "threaded"
    with tiny_tasks(threaded):
        previous = fastsoftmax.set_num_threads(2 if threaded else 1)
        yield request.param
        fastsoftmax.set_num_threads(previous)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("backend", CONTRACT_BACKENDS, ids=_id)
@pytest.mark.parametrize("func", FUNCTIONS)
def test_float_inputs(func, backend, dtype, threading):
    _check_all(func, backend, array_cases(dtype))


@pytest.mark.parametrize("backend", CONTRACT_BACKENDS, ids=_id)
@pytest.mark.parametrize("func", FUNCTIONS)
def test_integer_bool_list_and_scalar_inputs(func, backend):
    _check_all(func, backend, integer_cases())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("func", FUNCTIONS)
def test_lines_of_a_million(func, backend):
    _check_all(func, backend, long_line_cases())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("func", FUNCTIONS)
def test_generator_covers_what_the_contract_names(func, backend):
    """Guard against a generator that silently shrinks: the contract cases must be there and all be checked."""
    labels = [label for label, _, _ in array_cases(np.float32)]
    for needle in ("order=F", "order=negative_stride", "order=strided", "order=read_only", "order=byte_swapped",
                   "shape=()", "shape=(2, 0, 3)", "axis=None", "axis=-1", "axis=(0, 2)", "values=nonfinite",
                   "values=all_neg_inf", "values=huge", "values=tiny"):
        assert any(needle in label for label in labels), needle
    assert len(labels) > 500


@pytest.mark.parametrize("backend", CONTRACT_BACKENDS, ids=_id)
@pytest.mark.parametrize("func", ["softmax", "log_softmax"])
def test_out_argument_on_every_path(func, backend, threading):
    """The same inputs written into a caller's out= (C order, which the kernels fill directly and, past a size, with
    non-temporal stores: the threaded mode streams every output)."""
    failures = []
    for dtype in (np.float32, np.float64):
        for label, x, axis in array_cases(dtype):
            try:
                want = exact(func, x, axis)
            except Exception:  # noqa: BLE001 - an axis the reference refuses too
                continue
            out = np.full(np.shape(x), 12345.0, dtype=dtype)
            got = getattr(fastsoftmax, func)(x, axis=axis, out=out, backend=backend)
            if got is not out:
                failures.append(f"{label}: the result is not out")
                continue
            problem = tolerance_violations(func, x, axis, out)
            if problem:
                failures.append(f"{label}: {problem}")
    assert not failures, f"{func} backend={backend} out=: {len(failures)} failing, first ones:\n" + "\n".join(failures[:10])


@pytest.mark.parametrize("func", FUNCTIONS)
def test_the_compiled_shortcut_gives_the_general_paths_bits(func, threading):
    """fastsoftmax.softmax(x) without backend= takes the compiled shortcut for plain C-ordered float32/float64 arrays;
    the general path (fastsoftmax/_compute.py) must give exactly the same bits, dtype and shape, out= included."""
    from fastsoftmax import _compute
    if "cython" not in BACKENDS:
        pytest.skip("no compiled backend")
    checked = 0
    for dtype in (np.float32, np.float64):
        for label, x, axis in array_cases(dtype):
            if not (isinstance(x, np.ndarray) and x.flags.c_contiguous and x.ndim and x.size and x.dtype.isnative):
                continue
            if not (axis is None or isinstance(axis, int)):
                continue
            if func == "logsumexp":
                for keepdims in (False, True):
                    got = fastsoftmax.logsumexp(x, axis=axis, keepdims=keepdims)
                    want = _compute.logsumexp(x, axis, None, keepdims, False, None)
                    assert type(got) is type(want) and np.shape(got) == np.shape(want), label
                    assert np.array_equal(got, want, equal_nan=True), label
            else:
                out = np.empty_like(x)
                for kwargs in ({}, {"out": out}, {"temperature": 0.7}):
                    got = getattr(fastsoftmax, func)(x, axis=axis, **kwargs)
                    want = _compute.softmax_like(func, x, axis, None, None, kwargs.get("temperature", 1.0))
                    assert got.dtype == want.dtype and got.shape == want.shape, label
                    assert np.array_equal(got, want, equal_nan=True), (label, kwargs)
            checked += 1
    assert checked > 100
