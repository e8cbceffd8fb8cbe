"""The public surface: out=, errors, backend choice, threads, info, and what `import fastsoftmax` costs."""
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import fastsoftmax

from .util import BACKENDS, exact


def run_python(code, **env):
    """Run `code` in a fresh interpreter; return its stdout."""
    full_env = {**os.environ, **env}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            env=full_env, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_compiled_backend_is_built():
    """A build that silently lost its compiled kernels would still pass on the numpy backend alone."""
    if os.environ.get("FASTSOFTMAX_ALLOW_NO_CYTHON"):
        pytest.skip("FASTSOFTMAX_ALLOW_NO_CYTHON is set")
    assert "cython" in fastsoftmax.backends(), fastsoftmax.info()["unavailable"]


def test_import_loads_neither_numba_nor_scipy():
    out = run_python("""
        import sys, fastsoftmax
        fastsoftmax.softmax([1.0, 2.0]); fastsoftmax.logsumexp([1.0, 2.0]); fastsoftmax.info()
        print(sorted(m for m in ("numba", "scipy") if m in sys.modules))
    """)
    assert out.strip() == "[]"


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("func", ["softmax", "log_softmax"])
@pytest.mark.parametrize("layout", ["C", "F", "strided"])
def test_out_receives_the_result(func, backend, layout):
    x = np.random.default_rng(0).normal(size=(6, 50)).astype(np.float32)
    base = np.full((12, 50), 7.0, np.float32)
    out = {"C": np.empty((6, 50), np.float32), "F": np.empty((6, 50), np.float32, order="F"),
           "strided": base[::2]}[layout]
    got = getattr(fastsoftmax, func)(x, axis=1, out=out, backend=backend)
    assert got is out
    np.testing.assert_allclose(out, exact(func, x, 1).astype(np.float64), rtol=1e-5, atol=1e-6)
    if layout == "strided":
        assert np.all(base[1::2] == 7.0), "wrote outside the out view"


@pytest.mark.parametrize("backend", BACKENDS)
def test_out_may_be_the_input(backend):
    x = np.random.default_rng(1).normal(size=(4, 9))
    want = exact("softmax", x, -1).astype(np.float64)
    got = fastsoftmax.softmax(x, axis=-1, out=x, backend=backend)
    assert got is x
    np.testing.assert_allclose(x, want, rtol=1e-14)


@pytest.mark.parametrize("out, error, words", [
    (np.empty((3, 4)), ValueError, "shape"),
    (np.empty((4, 3), np.float32), ValueError, "dtype"),
    ([0.0] * 12, TypeError, "numpy array"),
])
def test_bad_out_is_refused(out, error, words):
    with pytest.raises(error, match=words):
        fastsoftmax.softmax(np.ones((4, 3)), axis=0, out=out)


def test_read_only_out_is_refused():
    out = np.empty(3)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        fastsoftmax.log_softmax(np.ones(3), out=out)


@pytest.mark.parametrize("func", ["softmax", "log_softmax", "logsumexp"])
@pytest.mark.parametrize("bad", [np.array(["a", "b"]), np.array([object(), 1], dtype=object),
                                 np.array(["2020-01-01"], dtype="datetime64[D]"), "text"])
def test_non_numeric_input_is_a_type_error_naming_the_dtype(func, bad):
    with pytest.raises(TypeError, match="dtype"):
        getattr(fastsoftmax, func)(bad)


@pytest.mark.parametrize("axis, error", [(2, np.exceptions.AxisError), (-3, np.exceptions.AxisError),
                                         ((0, 0), ValueError), (1.5, TypeError), ("0", TypeError)])
def test_bad_axis(axis, error):
    with pytest.raises(error):
        fastsoftmax.softmax(np.ones((2, 3)), axis=axis)


def test_unknown_backend_lists_the_available_ones():
    with pytest.raises(ValueError, match="available backends: numpy"):
        fastsoftmax.softmax([1.0], backend="cuda")


def test_backends_lists_numpy_first_and_only_known_names():
    names = fastsoftmax.backends()
    assert names[0] == "numpy"
    assert set(names) <= {"numpy", "cython", "numba"}


def test_environment_variable_forces_a_backend():
    code = """
        import fastsoftmax
        from fastsoftmax import _dispatch
        import numpy as np
        print(_dispatch.choose("softmax", np.dtype(np.float64), 10**6, False, None).NAME)
    """
    assert run_python(code, FASTSOFTMAX_BACKEND="numpy").strip() == "numpy"
    out = subprocess.run([sys.executable, "-c", "import fastsoftmax; fastsoftmax.softmax([1.0])"],
                         capture_output=True, text=True, env={**os.environ, "FASTSOFTMAX_BACKEND": "bogus"},
                         timeout=300)
    assert out.returncode != 0 and "unknown backend 'bogus'" in out.stderr


@pytest.mark.parametrize("backend", BACKENDS)
def test_forced_backend_still_computes_complex_and_long_double(backend):
    x = np.array([1 + 2j, 3 - 1j, 0.5j])
    want = np.exp(x - x.max()) / np.exp(x - x.max()).sum()
    np.testing.assert_allclose(fastsoftmax.softmax(x, backend=backend), want, rtol=1e-14)
    xl = np.array([1, 2, 3], dtype=np.longdouble)
    got = fastsoftmax.softmax(xl, backend=backend)
    assert got.dtype == np.longdouble
    np.testing.assert_allclose(got.astype(float), exact("softmax", xl).astype(float), rtol=1e-15)


def test_set_num_threads_returns_the_previous_value():
    previous = fastsoftmax.set_num_threads(1)
    try:
        assert fastsoftmax.get_num_threads() == 1
        assert fastsoftmax.set_num_threads(2) == 1
        assert fastsoftmax.info()["threads_from"] == "fastsoftmax.set_num_threads"
    finally:
        fastsoftmax.set_num_threads(None)
    assert fastsoftmax.get_num_threads() == previous
    with pytest.raises(ValueError):
        fastsoftmax.set_num_threads(0)


def test_omp_num_threads_is_honoured():
    out = run_python("import fastsoftmax; print(fastsoftmax.get_num_threads(), fastsoftmax.info()['threads_from'])",
                     OMP_NUM_THREADS="1")
    assert out.split() == ["1", "OMP_NUM_THREADS"]


def test_info_describes_the_installation():
    details = fastsoftmax.info()
    assert details["version"] == fastsoftmax.__version__
    assert details["backends"] == fastsoftmax.backends()
    for key in ("threads", "threads_from", "dispatch_rules", "dispatch_rules_from", "unavailable"):
        assert key in details
    if "cython" in details["backends"]:
        assert details["simd_path"] in ("baseline", "avx2_fma", "avx512")


@pytest.mark.parametrize("backend", BACKENDS)
def test_memory_does_not_grow_over_many_calls(backend):
    import tracemalloc
    x = np.random.default_rng(2).normal(size=(64, 100))
    for _ in range(5):
        fastsoftmax.softmax(x, axis=1, backend=backend)
        fastsoftmax.logsumexp(x, axis=0, backend=backend)
    tracemalloc.start()
    try:
        first = tracemalloc.get_traced_memory()[0]
        for _ in range(200):
            fastsoftmax.softmax(x, axis=1, backend=backend)
            fastsoftmax.logsumexp(x, axis=0, backend=backend)
        grown = tracemalloc.get_traced_memory()[0] - first
    finally:
        tracemalloc.stop()
    assert grown < 100_000, f"{grown} bytes still held after 200 calls"


def test_empty_reduction_axis_gives_an_empty_result_and_logsumexp_minus_inf():
    x = np.zeros((2, 0))
    assert fastsoftmax.softmax(x, axis=1).shape == (2, 0)
    assert fastsoftmax.log_softmax(x, axis=None).shape == (2, 0)
    np.testing.assert_array_equal(fastsoftmax.logsumexp(x, axis=1), [-np.inf, -np.inf])
    assert fastsoftmax.logsumexp(np.zeros((0, 3))) == -np.inf
    assert fastsoftmax.logsumexp(x, axis=0).shape == (0,)


def test_calibration_file_overrides_the_shipped_rules(tmp_path):
    compiled = "cython" if "cython" in fastsoftmax.backends() else "numba"   # an install without the kernels
    config = tmp_path / "dispatch.json"
    config.write_text(f'{{"rules": {{"softmax/rows/float64": [[1000, "numpy"], [null, "{compiled}"]]}}}}')
    code = """
        import numpy as np
        from fastsoftmax import _dispatch
        f64 = np.dtype(np.float64)
        print(_dispatch.choose("softmax", f64, 999, False, None).NAME,
              _dispatch.choose("softmax", f64, 1000, False, None).NAME,
              _dispatch.choose("log_softmax", f64, 10, False, None).NAME, _dispatch.RULES_SOURCE)
        # the public function follows the rules too (its compiled shortcut hands the calls it does not own over)
        import fastsoftmax
        from fastsoftmax._backends import numpy as reference_backend
        calls, original = [], reference_backend.softmax
        reference_backend.softmax = lambda *args: (calls.append(args[0].size), original(*args))[1]
        fastsoftmax.softmax(np.ones(999)), fastsoftmax.softmax(np.ones(1000))
        print(calls == [999])
    """
    out = run_python(code, FASTSOFTMAX_CONFIG=str(config)).split()
    # log_softmax keeps the shipped rules (cython), or without the kernels the fallback for 10 elements: numpy
    assert out[:3] == ["numpy", compiled, "cython" if compiled == "cython" else "numpy"]
    assert out[3] == "calibration"
    assert out[-1] == "True"


def test_a_broken_calibration_file_is_ignored_with_a_warning(tmp_path):
    config = tmp_path / "dispatch.json"
    config.write_text('{"rules": {"softmax/diagonal/float64": [[null, "cython"]]}}')
    out = subprocess.run([sys.executable, "-W", "always", "-c", "import fastsoftmax; print(fastsoftmax.softmax([1.0]))"],
                         capture_output=True, text=True, env={**os.environ, "FASTSOFTMAX_CONFIG": str(config)},
                         timeout=300)
    assert out.returncode == 0 and "[1.]" in out.stdout
    assert "ignoring dispatch calibration" in out.stderr and "softmax/diagonal/float64" in out.stderr


def test_shipped_rules_are_valid_and_cover_every_case():
    from fastsoftmax import _dispatch
    import json
    rules = json.loads(_dispatch.DEFAULTS_FILE.read_text())
    _dispatch.validate_rules(rules)
    assert len(rules) == 3 * 2 * 2


THREADPOOLCTL_SCRIPT = """
import os
{first}
{second}
import numpy as np
fastsoftmax.softmax(np.ones(100_000))  # the compiled module is loaded: threadpoolctl sees it
before = fastsoftmax.get_num_threads()
info = [lib for lib in threadpoolctl.threadpool_info() if lib["user_api"] == "fastsoftmax"]
assert len(info) == 1 and info[0]["num_threads"] == before, threadpoolctl.threadpool_info()
with threadpoolctl.threadpool_limits(1):
    assert fastsoftmax.get_num_threads() == 1
    assert fastsoftmax.info()["threads_from"] == "threadpoolctl limit"
assert fastsoftmax.get_num_threads() == before
with threadpoolctl.threadpool_limits(limits=1, user_api="fastsoftmax"):
    assert fastsoftmax.get_num_threads() == 1
with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
    assert fastsoftmax.get_num_threads() == before
print("ok", before)
"""


@pytest.mark.parametrize("order", ["threadpoolctl first", "fastsoftmax first"])
def test_threadpoolctl_limits_the_threads(order):
    """The kernels' own thread pool registers with threadpoolctl whichever of the two is imported first."""
    pytest.importorskip("threadpoolctl")
    if "cython" not in fastsoftmax.backends():
        pytest.skip("no compiled thread pool")
    imports = ["import threadpoolctl", "import fastsoftmax"]
    if order == "fastsoftmax first":
        imports.reverse()
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    out = subprocess.run([sys.executable, "-c", THREADPOOLCTL_SCRIPT.format(first=imports[0], second=imports[1])],
                         capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("ok")


@pytest.mark.parametrize("steps", [[[1000, "numpy"], [100, "cython"], [None, "cython"]],
                                   [[1000, "numpy"]], [[True, "numpy"], [None, "cython"]],
                                   [[None, "numpy"], [None, "cython"]]])
def test_rules_with_unordered_or_open_ended_limits_are_refused(steps):
    from fastsoftmax import _dispatch
    with pytest.raises(ValueError):
        _dispatch.validate_rules({"softmax/rows/float32": steps})


def test_single_threaded_block_holds_only_in_its_thread():
    """Both the dispatcher and the compiled shortcut (which keeps the state per thread in C) see it."""
    from fastsoftmax import _dispatch, _threads
    counts = [_dispatch.threads_for]
    if "cython" in BACKENDS:
        from fastsoftmax._backends import cython_kernels
        counts.append(cython_kernels._threads_for)
    previous = fastsoftmax.set_num_threads(2)
    try:
        for threads_for in counts:
            seen = []
            with _threads.single_threaded():
                assert threads_for(10**7) == 1
                other = threading.Thread(target=lambda: seen.append(threads_for(10**7)))
                other.start()
                other.join()
            assert seen == [2]
            assert threads_for(10**7) == 2
            assert threads_for(100) == 1
    finally:
        fastsoftmax.set_num_threads(previous)


def test_version_comes_from_the_metadata_only_when_asked():
    """Reading the metadata costs ~15 ms (fastsoftmax/_version.py), so `import fastsoftmax` leaves it until
    __version__ is read."""
    import importlib.metadata
    out = run_python("""
        import sys, fastsoftmax
        loaded = "importlib.metadata" in sys.modules
        print(loaded, fastsoftmax.__version__, fastsoftmax.info()["version"])
    """)
    loaded, version, info_version = out.split()
    assert loaded == "False"
    assert version == info_version == importlib.metadata.version("fastsoftmax")


def test_version_without_metadata_is_below_every_release(monkeypatch):
    """A source tree that pip never installed has no metadata: "0+unknown", valid under PEP 440."""
    import importlib.metadata

    from fastsoftmax import _version

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert _version.version.__wrapped__() == _version.UNKNOWN == "0+unknown"
