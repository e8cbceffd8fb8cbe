"""How many threads the compiled kernels use.

In order: fastsoftmax.set_num_threads(n); else OMP_NUM_THREADS; else the OpenMP runtime's own limit (which is
what threadpoolctl.threadpool_limits lowers), capped by the cores this process may use (affinity and cgroup quota).
"""
import contextlib
import math
import os
import threading

_setting = None
_this_thread = threading.local()  # .serial: the caller parallelises already (dask tasks); use one thread

# Starting threads costs a few microseconds, while a thread handles ~3 float32 elements per nanosecond; below
# this many elements one thread finishes before a second would have started.
SERIAL_BELOW = 32768


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


_USABLE_CORES = usable_cores()


def _openmp_limit():
    try:
        from . import cython_backend
    except ImportError:
        return None
    return cython_backend.openmp_max_threads() if cython_backend.openmp_available() else None


def _from_environment():
    value = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if value.isdigit() and int(value) > 0:
        return int(value), "OMP_NUM_THREADS"
    limit = _openmp_limit()
    if limit is not None and limit < _USABLE_CORES:
        return limit, "OpenMP runtime limit (e.g. threadpoolctl)"
    return _USABLE_CORES, "usable cores"


def get_num_threads():
    """The number of threads the kernels use for large inputs."""
    return _setting if _setting is not None else _from_environment()[0]


def thread_source():
    return "fastsoftmax.set_num_threads" if _setting is not None else _from_environment()[1]


def set_num_threads(n):
    """Use n threads for large inputs (None: back to the environment's choice); return the previous setting."""
    global _setting
    if n is not None:
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise ValueError(f"set_num_threads: n must be a positive int or None, got {n!r}")
    previous = get_num_threads()
    _setting = n
    return previous


@contextlib.contextmanager
def single_threaded():
    """Within this block, calls made by this Python thread use one kernel thread each."""
    previous = getattr(_this_thread, "serial", False)
    _this_thread.serial = True
    try:
        yield
    finally:
        _this_thread.serial = previous


def threads_for(size):
    if size < SERIAL_BELOW or getattr(_this_thread, "serial", False):
        return 1
    return get_num_threads()
