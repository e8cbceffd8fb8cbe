"""Which backend computes a call. The only module that knows the size thresholds.

A backend is a module with softmax(x, out, n_threads), log_softmax(x, out, n_threads) and
logsumexp(x, out, n_threads) over axis 1 of C-contiguous (outer, n, inner) arrays (see fastsoftmax/reference.py).
"""
import importlib
import importlib.util
import os

import numpy as np

MODULES = {
    "numpy": "fastsoftmax.reference",
    "cython": "fastsoftmax.cython_backend",
    "numba": "fastsoftmax.numba_backend",
}
# What the compiled backends cover; everything else (float16 is computed as float32) goes to the reference.
FAST_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

THRESHOLDS = {}

_loaded = {}
_why_unavailable = {}
FORCED = os.environ.get("FASTSOFTMAX_BACKEND") or None


def _installed(name):
    """Whether backend `name` can be used, without importing heavy modules (numba costs ~0.4 s)."""
    if name in _loaded:
        return True
    if name in _why_unavailable:
        return False
    if name == "numba":
        if importlib.util.find_spec("numba") is None:
            _why_unavailable[name] = "numba is not installed"
        elif importlib.util.find_spec(MODULES[name]) is None:
            _why_unavailable[name] = "this build has no numba backend"
        return name not in _why_unavailable
    try:
        _loaded[name] = importlib.import_module(MODULES[name])
    except ImportError as exc:
        _why_unavailable[name] = f"{MODULES[name]} does not import: {exc}"
    return name in _loaded


def available():
    """Names of the backends usable here, fastest first by default preference."""
    return tuple(name for name in ("numpy", "cython", "numba") if _installed(name))


def why_unavailable():
    available()
    return dict(_why_unavailable)


def backend_module(name):
    """The module of backend `name`, imported on first use; ValueError naming the choices if it cannot be used."""
    module = _loaded.get(name)
    if module is not None:
        return module
    if name not in MODULES:
        raise ValueError(f"unknown backend {name!r}; available backends: {', '.join(available())}")
    if not _installed(name):
        raise ValueError(f"backend {name!r} is not available ({_why_unavailable[name]}); "
                         f"available backends: {', '.join(available())}")
    try:
        _loaded[name] = importlib.import_module(MODULES[name])
    except Exception as exc:
        _why_unavailable[name] = f"{MODULES[name]} failed to import: {exc!r}"
        raise ValueError(f"backend {name!r} failed to import: {exc!r}") from exc
    return _loaded[name]


def choose(dtype, size, backend):
    """The backend module for one call on `size` elements of compute dtype `dtype`.

    `backend` (or FASTSOFTMAX_BACKEND) forces a backend where it covers the dtype; other dtypes always use the
    reference, which is the only backend that covers them."""
    name = backend or FORCED
    if name is not None:
        module = backend_module(name)
        return module if dtype in FAST_DTYPES else _loaded["numpy"]
    if dtype not in FAST_DTYPES:
        return _loaded["numpy"]
    for name in ("cython", "numba"):
        if _installed(name):
            return backend_module(name)
    return _loaded["numpy"]


_installed("numpy")
