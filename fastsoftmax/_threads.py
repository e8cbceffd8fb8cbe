"""How many threads the compiled kernels use: the library setting, else OMP_NUM_THREADS, else the usable cores."""
import os

_setting = None

# Starting threads costs a few microseconds, while a thread handles ~3 float32 elements per nanosecond; below
# this many elements one thread finishes before a second would have started.
SERIAL_BELOW = 32768


def usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _from_environment():
    value = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if value.isdigit() and int(value) > 0:
        return int(value), "OMP_NUM_THREADS"
    return usable_cores(), "usable cores"


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


def threads_for(size):
    return 1 if size < SERIAL_BELOW else get_num_threads()
