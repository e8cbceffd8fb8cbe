"""Behaviour at the edges that must stay as it is: memory exhaustion, outputs overlapping inputs, and lines longer
than 2**31 elements (opt-in: FASTSOFTMAX_TEST_BIGMEM=1, ~18 GB)."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastsoftmax

from .util import BACKENDS, exact

MEMORY_SCRIPT = textwrap.dedent("""
    import resource, sys
    import numpy as np
    import fastsoftmax
    backend = sys.argv[1]
    x = np.ones(256 * 1024 * 1024 // 4, np.float32)           # 256 MB
    fastsoftmax.softmax(x[:100_000], backend=backend)         # imports and compiles before the limit
    fastsoftmax.softmax(np.ones((8, 10_000), np.float32), axis=-1, backend=backend)
    with open("/proc/self/statm") as f:
        used = int(f.read().split()[0]) * resource.getpagesize()
    limit = used + 128 * 1024 * 1024                          # room for small things, not for a 256 MB output
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        fastsoftmax.softmax(x, backend=backend)
    except MemoryError:
        print("MemoryError")
    y = fastsoftmax.softmax(np.arange(5.0, dtype=np.float32), backend=backend)
    print("next call", float(y.sum()))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="RLIMIT_AS and /proc are Linux's")
@pytest.mark.parametrize("backend", BACKENDS)
def test_an_output_beyond_the_memory_limit_is_a_memory_error_and_the_next_call_works(backend):
    proc = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, backend], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.split("\n")
    assert lines[0] == "MemoryError"
    assert lines[1].startswith("next call") and abs(float(lines[1].split()[-1]) - 1) < 1e-6


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("func", ["softmax", "log_softmax"])
@pytest.mark.parametrize("shift", [1, -1, 7])
def test_out_overlapping_the_input_gives_the_right_result(backend, func, shift):
    """out= that shares memory with the input, shifted by a few elements: computed aside, never read half-written."""
    rng = np.random.default_rng(3)
    base = rng.normal(0, 3, 4000 + 2 * abs(shift)).astype(np.float32)
    start = abs(shift)
    x = base[start:start + 4000].reshape(40, 100)
    out = base[start + shift:start + shift + 4000].reshape(40, 100)
    want = exact(func, x.copy(), -1)
    got = getattr(fastsoftmax, func)(x, axis=-1, out=out, backend=backend)
    assert got is out
    np.testing.assert_allclose(out.astype(np.longdouble), want, rtol=1e-5, atol=1e-30)


def test_unknown_backend_in_the_environment_names_the_valid_ones():
    proc = subprocess.run([sys.executable, "-c", "import fastsoftmax; fastsoftmax.softmax([1.0])"],
                          capture_output=True, text=True, env={**os.environ, "FASTSOFTMAX_BACKEND": "bogus"},
                          timeout=300)
    assert proc.returncode != 0
    assert "ValueError" in proc.stderr and "unknown backend 'bogus'" in proc.stderr
    assert "available backends: numpy" in proc.stderr


BIGMEM = os.environ.get("FASTSOFTMAX_TEST_BIGMEM") == "1"


@pytest.mark.bigmem
@pytest.mark.skipif(not BIGMEM, reason="needs ~18 GB of memory; run with FASTSOFTMAX_TEST_BIGMEM=1")
@pytest.mark.parametrize("backend", [name for name in ("cython", "numba") if name in BACKENDS])
def test_a_row_longer_than_2_to_the_31(backend):
    """2**31 + 64 float32 elements as one row: no 32-bit index anywhere (the peaks sit past 2**31)."""
    n = 2**31 + 64
    x = np.zeros(n, np.float32)
    x[-1] = 5.0
    x[-2] = -np.inf
    y = fastsoftmax.softmax(x, backend=backend)
    total = (n - 2) + np.exp(np.longdouble(5))
    assert y[-2] == 0
    np.testing.assert_allclose(np.longdouble(y[-1]), np.exp(np.longdouble(5)) / total, rtol=4e-7)
    np.testing.assert_allclose(np.longdouble(y[0]), 1 / total, rtol=4e-7)
    np.testing.assert_allclose(np.longdouble(y[2**31 + 3]), 1 / total, rtol=4e-7)
    del y
    lse = fastsoftmax.logsumexp(x, backend=backend)
    np.testing.assert_allclose(np.longdouble(lse), np.log(total), rtol=4e-7)
