"""Numba backend: softmax, log_softmax and logsumexp compiled by numba on first use (import numba ~0.4 s).

Importing this module is cheap: it declares the backend and imports numba only when a kernel first runs.

Modules: _exp (the scalar exp and log_softmax cores, LLVM intrinsics), _rows (one row or a slice of one), _columns
(a tile of columns), _tasks (those kernels as C-callable tasks for fastsoftmax's thread pool). The array is cut into
tasks exactly as the C drivers cut it (src_cython/parallel/fs_lines.c): blocks of rows, tiles of columns, or slices
of rows that are few and long; cuts depend on the shape only. Without the compiled thread pool (a build without the
Cython extension) the tasks run on the calling thread.
"""
import importlib.util
from fractions import Fraction

import numpy as np

# the kernels' operation codes (_rows.py): softmax, log_softmax, logsumexp
OP_SOFTMAX, OP_LOG_SOFTMAX, OP_LOGSUMEXP = 0, 1, 2

NAME = "numba"
DTYPES = frozenset({"float32", "float64"})
TEMPERATURE = True
TRAINING = False


def unavailable():
    if importlib.util.find_spec("numba") is None:
        return "numba is not installed"
    return None


__all__ = ["softmax", "log_softmax", "logsumexp"]

# The C drivers' sizes (elements): see src_cython/parallel/fs_lines.c for why. _set_task_sizes changes them (tests).
_DEFAULT_SIZES = {"task_min": 4096, "task_max": 16384, "split_row_min": 131072, "slice": 65536, "column_tile": 128}
_sizes = dict(_DEFAULT_SIZES)
_TASKS_PER_THREAD = 8


def _set_task_sizes(task_min=0, task_max=0, split_row_min=0, slice=0, column_tile=0):
    """Tests only: as fastsoftmax._backends.cython_kernels._set_task_sizes (0 restores a default)."""
    given = {"task_min": task_min, "task_max": task_max, "split_row_min": split_row_min, "slice": slice,
             "column_tile": column_tile}
    for key, value in given.items():
        _sizes[key] = value if value > 0 else _DEFAULT_SIZES[key]


def _task_elements(elements, n_threads):
    e = elements // (_TASKS_PER_THREAD * max(1, n_threads))
    return min(max(e, _sizes["task_min"]), _sizes["task_max"])


def _inverse(temperature):
    """1 / temperature as a double-double (it, eit)."""
    if temperature == 1.0:
        return 1.0, 0.0
    it = 1.0 / temperature
    return it, float((1 - Fraction(temperature) * Fraction(it)) / Fraction(temperature))


def _split_rows(x, out, op, tempered, it, eit, n_threads):
    from . import _tasks
    from ._tasks import finish_rows, merge_maxima, merge_sums
    outer, n, _ = x.shape
    per_line = -(-n // _sizes["slice"])
    tasks = outer * per_line
    slices = np.zeros((3, tasks))
    rows = np.zeros((3, outer))
    ctx = _tasks.new_ctx(x, out, op, _sizes["slice"], per_line, it, eit, tasks)
    for slot, array in zip((_tasks.SLICE_MAX, _tasks.SLICE_K, _tasks.SLICE_S), slices):
        ctx[slot] = array.ctypes.data
    for slot, array in zip((_tasks.ROW_MAX, _tasks.ROW_K, _tasks.ROW_S), rows):
        ctx[slot] = array.ctypes.data
    for phase in (0, 1, 2):
        if phase == 2 and op == OP_LOGSUMEXP:
            break
        ctx[_tasks.PHASE] = phase
        _tasks.run(_tasks.SLICES, op, x.itemsize, tempered, ctx, tasks, n_threads)
        if phase == 0:
            merge_maxima(slices[0], per_line, rows[0], rows[2])
        elif phase == 1:
            merge_sums(slices[1], slices[2], per_line, rows[1], rows[2])
            finish_rows(x.reshape(outer, n), out.reshape(outer, -1), op, rows[0], rows[1], rows[2])


def _compute(x, out, n_threads, op, temperature=1.0):
    from . import _tasks
    outer, n, inner = x.shape
    if x.size == 0:
        return
    n_threads = max(1, int(n_threads)) if _tasks.HAVE_POOL else 1
    it, eit = _inverse(temperature)
    tempered = temperature != 1.0
    per_task = _task_elements(x.size, n_threads)
    if inner > 1:
        tile = _sizes["column_tile"]
        width = min(-(-per_task // (n * tile)) * tile, inner)
        per_line = -(-inner // width)
        ctx = _tasks.new_ctx(x, out, op, width, per_line, it, eit, outer * per_line)
        _tasks.run(_tasks.COLUMNS, op, x.itemsize, tempered, ctx, outer * per_line, n_threads)
    elif n_threads > 1 and outer < n_threads and n >= _sizes["split_row_min"]:
        _split_rows(x, out, op, tempered, it, eit, n_threads)
    else:
        rows = -(-per_task // n)
        tasks = -(-outer // rows)
        ctx = _tasks.new_ctx(x, out, op, rows, 0, it, eit, tasks)
        _tasks.run(_tasks.ROWS, op, x.itemsize, tempered, ctx, tasks, n_threads)


def softmax(x, out, n_threads, temperature=1.0, out_is_new=True):
    _compute(x, out, n_threads, OP_SOFTMAX, temperature)


def log_softmax(x, out, n_threads, temperature=1.0, out_is_new=True):
    _compute(x, out, n_threads, OP_LOG_SOFTMAX, temperature)


def logsumexp(x, out, n_threads):
    _compute(x, out, n_threads, OP_LOGSUMEXP)


def threads_available():
    """Whether this backend runs on threads: it needs fastsoftmax's compiled thread pool."""
    from . import _tasks
    return _tasks.HAVE_POOL
