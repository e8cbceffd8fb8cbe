"""fastsoftmax: fast, accurate softmax, log_softmax and logsumexp for numpy arrays; a drop-in for scipy.special.

    >>> import fastsoftmax
    >>> fastsoftmax.softmax([8.0, 5.0, 2.0]).round(4)
    array([0.9503, 0.0473, 0.0024])
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import _dispatch, _threads, reference
from ._api import log_softmax, logsumexp, softmax
from ._threads import get_num_threads, set_num_threads
from ._training import cross_entropy, log_softmax_backward, softmax_backward

__version__: str  # from the package metadata, read on first use by __getattr__ below (fastsoftmax/_version.py)
__all__ = ["softmax", "log_softmax", "logsumexp", "softmax_backward", "log_softmax_backward", "cross_entropy",
           "backends", "info", "set_num_threads", "get_num_threads", "reference", "get_include"]


def get_include() -> str:
    """The directory to put on Cython's include path to `cimport fastsoftmax.cython_api` (the one holding the
    fastsoftmax package): cythonize(..., include_path=[fastsoftmax.get_include()]). Cython searches sys.path by
    itself, which finds an installed wheel but not an editable install."""
    import os
    return os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def backends() -> tuple[str, ...]:
    """Names of the backends usable on this machine, e.g. ("numpy", "cython", "numba")."""
    return _dispatch.available()


def info() -> dict[str, Any]:
    """What this installation runs: version, backends (and why one is missing), threads, dispatch, SIMD path."""
    from ._version import version
    details = {
        "version": version(),
        "backends": backends(),
        "unavailable": _dispatch.why_unavailable(),
        "forced_backend": _dispatch.FORCED,
        "threads": get_num_threads(),
        "threads_from": _threads.thread_source(),
        "serial_below_elements": _dispatch.SERIAL_BELOW,
        "dispatch_rules": dict(_dispatch.RULES),
        "dispatch_rules_from": _dispatch.RULES_SOURCE,
    }
    from . import _training
    details["training_backends"] = _training.backends()
    if "cython" in details["backends"]:
        compiled = _dispatch.backend_module("cython").compiled
        details.update(compiled.cpu_info())
        details["thread_pool"] = compiled.pool_info()
    else:
        details["thread_pool"] = ("none: the compiled extension is not built, so the numba backend runs on the calling "
                                  "thread")
    details["fork"] = _FORK_BEHAVIOUR
    return details


if not TYPE_CHECKING:  # hidden from type checkers, which would take every misspelt attribute for a str
    def __getattr__(name):
        if name == "__version__":
            from ._version import version
            return version()
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# What a child process forked after the parent used the kernels gets (os.fork, multiprocessing's "fork" start
# method, PyTorch DataLoader workers, gunicorn --preload): tests/test_fork.py checks it for every backend.
_FORK_BEHAVIOUR = ("safe: a forked child starts its own helper threads on its first parallel call "
                   "(cython and numba backends)")
