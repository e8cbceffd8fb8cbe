"""How many threads the compiled kernels use.

In order: fastsoftmax.set_num_threads(n); else OMP_NUM_THREADS (read at import, as OpenMP runtimes read it at
start-up); else the cores this process may use (affinity and cgroup quota). A limit set with
threadpoolctl.threadpool_limits caps the result while it is in force: the compiled kernels run on fastsoftmax's own
thread pool (no OpenMP runtime), which registers itself with threadpoolctl as user_api "fastsoftmax" (when
threadpoolctl is imported, before or after fastsoftmax).

The compiled shortcut of the public functions keeps its own copy of the count and of the single_threaded() state:
whoever needs to know registers with on_change().
"""
from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import math
import os
import sys
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

_setting: int | None = None
_threadpoolctl_limit: int | None = None
_this_thread = threading.local()  # .serial: the caller parallelises already (dask tasks); use one thread

# The compiled module holding the thread pool; threadpoolctl finds it among the loaded libraries by its file name.
POOL_MODULE = "fastsoftmax._backends.cython_kernels"


def _cgroup_cpu_limit():
    """The CPU quota of this container (cgroup v2 cpu.max), or None when there is none."""
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
    except (OSError, ValueError):
        return None
    return None if quota == "max" else max(1, math.ceil(int(quota) / int(period)))


def usable_cores():
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    quota = _cgroup_cpu_limit()
    return min(cores, quota) if quota else cores


def _from_environment():
    value = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if value.isdigit() and int(value) > 0:
        return int(value), "OMP_NUM_THREADS"
    return usable_cores(), "usable cores"


_ENVIRONMENT = _from_environment()
# Called with the new thread count, and with True / False as this thread enters or leaves single_threaded()
_count_listeners: list[Callable[[int], object]] = []
_serial_listeners: list[Callable[[bool], object]] = []


def on_change(count=None, serial=None):
    """Register callbacks: count(n) whenever the thread count in force changes (called once now), serial(flag) when
    the calling thread enters or leaves single_threaded()."""
    if count is not None:
        _count_listeners.append(count)
        count(get_num_threads())
    if serial is not None:
        _serial_listeners.append(serial)


def _changed():
    n = get_num_threads()
    for listener in _count_listeners:
        listener(n)


def _uncapped():
    """(threads, where the number comes from) before any threadpoolctl limit."""
    if _setting is not None:
        return _setting, "fastsoftmax.set_num_threads"
    return _ENVIRONMENT


def get_num_threads() -> int:
    """The number of threads the kernels use for large inputs."""
    n = _uncapped()[0]
    return min(n, _threadpoolctl_limit) if _threadpoolctl_limit else n


def thread_source():
    n, source = _uncapped()
    if _threadpoolctl_limit and _threadpoolctl_limit < n:
        return "threadpoolctl limit"
    return source


def set_num_threads(n: int | None) -> int:
    """Use n threads for large inputs (None: back to the environment's choice); return the previous setting."""
    global _setting
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"set_num_threads: n must be a positive int or None, got {n!r}")
    previous = get_num_threads()
    _setting = n
    _changed()
    return previous


@contextlib.contextmanager
def single_threaded():
    """Within this block, calls made by this Python thread use one kernel thread each."""
    previous = getattr(_this_thread, "serial", False)
    _this_thread.serial = True
    for listener in _serial_listeners:
        listener(True)
    try:
        yield
    finally:
        _this_thread.serial = previous
        for listener in _serial_listeners:
            listener(previous)


def serial_here():
    """Whether this Python thread is inside single_threaded()."""
    return getattr(_this_thread, "serial", False)


# ---- threadpoolctl ------------------------------------------------------------------------------------------------

def _set_threadpoolctl_limit(n):
    """threadpoolctl's set_num_threads: a cap, lifted when it restores the count it found (threadpool_limits
    restores on exit what get_num_threads returned on entry)."""
    global _threadpoolctl_limit
    _threadpoolctl_limit = None if n is None or n >= _uncapped()[0] else max(1, int(n))
    _changed()


def _register_with_threadpoolctl(threadpoolctl):
    spec = importlib.util.find_spec(POOL_MODULE)
    if spec is None or not spec.origin or not hasattr(threadpoolctl, "register"):
        return
    prefix = os.path.basename(spec.origin).split(".")[0].lower()

    class FastsoftmaxController(threadpoolctl.LibController):
        user_api = "fastsoftmax"
        internal_api = "fastsoftmax"
        filename_prefixes = (prefix,)
        check_symbols = ("fs_pool_run",)

        def get_num_threads(self):
            return get_num_threads()

        def set_num_threads(self, num_threads):
            _set_threadpoolctl_limit(num_threads)

        def get_version(self):
            from ._version import version
            return version()

    threadpoolctl.register(FastsoftmaxController)


class _RegisterWhenImported(importlib.abc.MetaPathFinder):
    """Registers the controller the moment threadpoolctl is imported (if it was not already): threadpoolctl is an
    optional companion, never imported by fastsoftmax itself."""

    def find_spec(self, name, path=None, target=None):
        if name != "threadpoolctl":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_register(module):
            exec_module(module)
            _register_with_threadpoolctl(module)

        spec.loader.exec_module = exec_and_register
        return spec


if "threadpoolctl" in sys.modules:
    _register_with_threadpoolctl(sys.modules["threadpoolctl"])
else:
    sys.meta_path.insert(0, _RegisterWhenImported())
