"""The cython backend: SIMD kernels compiled from src_cython/ (AVX-512, AVX2+FMA, SSE2, NEON or portable vectors,
picked at import), run on fastsoftmax's own thread pool, the GIL released.

Two extension modules hold the compiled code: fastsoftmax._backends.cython_kernels (the kernels, the thread pool,
the drivers and the compiled fast path of the public functions) and fastsoftmax._backends.cython_training (the
training-loop kernels, on the same pool)."""
import importlib
import os

NAME = "cython"
DTYPES = frozenset({"float32", "float64"})
TEMPERATURE = True
TRAINING = True

_why = None
try:
    from . import cython_kernels as compiled
except ImportError as exc:  # not built (no compiler at install time): the numpy and numba backends remain
    compiled = None
    _note = os.path.join(os.path.dirname(os.path.dirname(__file__)), "_build_failure.txt")   # written by setup.py
    if os.path.exists(_note):
        with open(_note) as _f:
            _why = f"the compiled kernels could not be built at install time: {_f.read().strip()}"
    else:
        _why = f"the compiled kernels are not built ({exc})"


def unavailable():
    return _why


def training():
    """The compiled training kernels (fastsoftmax._backends.cython_training); ImportError when not built."""
    return importlib.import_module("fastsoftmax._backends.cython_training")


if compiled is not None:
    softmax = compiled.softmax
    log_softmax = compiled.log_softmax
    logsumexp = compiled.logsumexp
