"""The compiled backends' threads cooperate with other thread pools: a call never waits for a core that another
library's threads hold (numpy's OpenBLAS workers spin after every matmul), and the threaded test mode really runs
the helper threads. Timings here use generous bounds: the failure they guard against is 100x, not 10%."""
import os
import time

import numpy as np
import pytest

import fastsoftmax

from .util import tiny_tasks

COMPILED = [name for name in ("cython", "numba") if name in fastsoftmax.backends()]
MULTICORE = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1) >= 2


def _per_call(func, inputs):
    times = []
    for make in inputs:
        x = make()
        start = time.perf_counter()
        func(x)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


@pytest.mark.parametrize("backend", COMPILED)
def test_a_call_right_after_a_matmul_does_not_wait_for_busy_cores(backend):
    """The loop every numpy transformer runs: s = q @ k.T, then softmax(s). Before the pool, each call waited ~7 ms
    at an OpenMP barrier for a thread whose core OpenBLAS's spinning worker held, 100-200x its quiet time."""
    rng = np.random.default_rng(0)
    q = rng.standard_normal((256, 64)).astype(np.float32)
    k = rng.standard_normal((256, 64)).astype(np.float32)
    s = q @ k.T
    softmax = lambda x: fastsoftmax.softmax(x, axis=-1, backend=backend)  # noqa: E731
    softmax(s)  # numba compiles, helpers start
    previous = fastsoftmax.set_num_threads(1)
    try:
        quiet_single = _per_call(softmax, [lambda: s] * 100)
    finally:
        fastsoftmax.set_num_threads(previous)
    fastsoftmax.set_num_threads(2)
    try:
        after_matmul = _per_call(softmax, [lambda: q @ k.T] * 144)
    finally:
        fastsoftmax.set_num_threads(previous)
    assert after_matmul < 5 * quiet_single, (after_matmul, quiet_single)


@pytest.mark.skipif(not MULTICORE, reason="one core: no helper can run beside the caller")
@pytest.mark.parametrize("backend", COMPILED)
def test_threaded_mode_runs_tasks_on_helper_threads(backend):
    """tests/util.py's tiny_tasks (used by the contract suite's threaded mode) cuts small arrays into many tasks; the
    helpers must really take some, not leave the caller to do everything alone."""
    from fastsoftmax._backends import cython_kernels as cython_backend
    x = np.random.default_rng(1).standard_normal((64, 300)).astype(np.float32)
    want = fastsoftmax.softmax(x, axis=-1, backend="numpy")
    previous = fastsoftmax.set_num_threads(2)
    try:
        with tiny_tasks():
            before = cython_backend.pool_info()["helped_runs"]
            deadline = time.monotonic() + 10  # a sleeping helper may take milliseconds to wake (an idle VM core)
            while cython_backend.pool_info()["helped_runs"] == before and time.monotonic() < deadline:
                got = fastsoftmax.softmax(x, axis=-1, backend=backend)
                np.testing.assert_allclose(got, want, rtol=1e-6)
    finally:
        fastsoftmax.set_num_threads(previous)
    assert cython_backend.pool_info()["helped_runs"] > before


def test_pool_runs_each_task_exactly_once_from_python():
    """The pool's entry for compiled tasks (_run_tasks), driven by a ctypes callback: every task once, whichever
    thread ran it."""
    import ctypes
    if "cython" not in fastsoftmax.backends():
        pytest.skip("no compiled thread pool")
    from fastsoftmax._backends import cython_kernels as cython_backend
    counts = np.zeros(500, np.int64)

    @ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_ssize_t)
    def task(ctx, k):
        counts[k] += 1  # under the GIL: ctypes takes it for the call

    for n_threads in (1, 2, 4):
        counts[:] = 0
        cython_backend._run_tasks(ctypes.cast(task, ctypes.c_void_p).value, 0, counts.size, n_threads)
        assert (counts == 1).all()


def test_info_reports_the_pool_and_fork_behaviour():
    details = fastsoftmax.info()
    assert "forked child" in details["fork"]
    if "cython" in details["backends"]:
        assert set(details["thread_pool"]) >= {"helpers", "solo_runs", "helped_runs", "spin_us"}
