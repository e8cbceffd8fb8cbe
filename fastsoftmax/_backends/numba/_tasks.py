"""The numba backend's tasks: compiled C-callable functions (numba.cfunc) that fastsoftmax's thread pool runs.

The pool (src_cython/parallel/fs_pool.c, in fastsoftmax._backends.cython_kernels) is the same one the Cython kernels
use: the calling thread works and other threads only help when they are running, so a numba call never stalls next
to numpy's BLAS threads and survives fork; numba's own threading layers (OpenMP, workqueue) do neither. Each task
function has the C signature void(int64 *ctx, intptr task): ctx is a small int64 array describing the call (below),
task picks the piece.

One task function per (kind, dtype, operation, temperature or not), compiled on first use and cached on disk: the
common call (float32 softmax rows) compiles only what it runs. The function is a closure over those four plain
values; numba prunes its branches on them before typing, so each compiles one combination of kernels.

Without the compiled pool (a build without the Cython extension) the same functions run on the calling thread,
through ctypes, one call covering every task.
"""
import threading

import numpy as np
from numba import carray, cfunc, types

from ._columns import cols_op
from ._exp import CACHE, address_as_pointer, i64_as_f64, kernel, log1p_rest, two_sum_add
from ._rows import BLOCK, OP_LOGSUMEXP, OP_SOFTMAX, expsum, row_max, rows, slice_output, special_slice

# ---- the ctx array ----------------------------------------------------------------------------------------------
X, OUT, OUTER, N, INNER, WIDTH, PER_TASK, PER_LINE, IT, EIT, GROUP, N_TASKS = range(12)
SLICE_MAX, SLICE_K, SLICE_S, ROW_MAX, ROW_K, ROW_S, PHASE = range(12, 19)
CTX_LEN = 19

ROWS, COLUMNS, SLICES = 0, 1, 2   # task kinds


def new_ctx(x, out, op, per_task, per_line, it, eit, n_tasks):
    """The ctx array of a call of operation op over the (outer, n, inner) array x into out ((outer, n, inner), or
    outer * inner results for logsumexp); it + eit = 1 / temperature."""
    ctx = np.zeros(CTX_LEN, np.int64)
    ctx[X], ctx[OUT] = x.ctypes.data, out.ctypes.data
    ctx[OUTER], ctx[N], ctx[INNER] = x.shape
    ctx[WIDTH] = 1 if op == OP_LOGSUMEXP else x.shape[1]
    ctx[PER_TASK], ctx[PER_LINE] = per_task, per_line
    ctx[IT:EIT + 1] = np.array([it, eit]).view(np.int64)
    ctx[GROUP], ctx[N_TASKS] = 1, n_tasks
    return ctx


# ---- task bodies -------------------------------------------------------------------------------------------------

@kernel()
def _rows_task(ctx, k, dt, op, tempered):
    c = carray(ctx, CTX_LEN)
    outer, n, per = c[OUTER], c[N], c[PER_TASK]
    x2 = carray(address_as_pointer(c[X], dt), (outer, n))
    y2 = carray(address_as_pointer(c[OUT], dt), (outer, c[WIDTH]))
    t0 = k * c[GROUP]                 # tasks t0..t1 (GROUP > 1: all of them, without the pool)
    t1 = min(t0 + c[GROUP], c[N_TASKS])
    rows(x2, y2, t0 * per, min(t1 * per, outer), i64_as_f64(c[IT]), i64_as_f64(c[EIT]), op, tempered)


@kernel()
def _columns_task(ctx, k, dt, op, tempered):
    c = carray(ctx, CTX_LEN)
    outer, n, inner, per, per_line = c[OUTER], c[N], c[INNER], c[PER_TASK], c[PER_LINE]
    x3 = carray(address_as_pointer(c[X], dt), (outer, n, inner))
    y3 = carray(address_as_pointer(c[OUT], dt), (outer, c[WIDTH], inner))
    it, eit = i64_as_f64(c[IT]), i64_as_f64(c[EIT])
    t0 = k * c[GROUP]                 # tasks t0..t1 (GROUP > 1: all of them, without the pool)
    t1 = min(t0 + c[GROUP], c[N_TASKS])
    for t in range(t0, t1):
        o = t // per_line
        j0 = (t - o * per_line) * per
        cols_op(op, x3[o], y3[o], j0, min(j0 + per, inner), it, eit, tempered)


@kernel()
def _slices_task(ctx, k, dt, op, tempered):
    """Split rows, one slice per task. PHASE 0: each slice's max; 1: its count and sum against the row's max (rows
    that are not special); 2: the output (softmax, log_softmax)."""
    c = carray(ctx, CTX_LEN)
    outer, n, per, per_line = c[OUTER], c[N], c[PER_TASK], c[PER_LINE]
    x2 = carray(address_as_pointer(c[X], dt), (outer, n))
    y2 = carray(address_as_pointer(c[OUT], dt), (outer, c[WIDTH]))
    tasks = outer * per_line
    smax = carray(address_as_pointer(c[SLICE_MAX], np.float64), tasks)
    sk = carray(address_as_pointer(c[SLICE_K], np.float64), tasks)
    ss = carray(address_as_pointer(c[SLICE_S], np.float64), tasks)
    rmax = carray(address_as_pointer(c[ROW_MAX], np.float64), outer)
    rk = carray(address_as_pointer(c[ROW_K], np.float64), outer)
    rs = carray(address_as_pointer(c[ROW_S], np.float64), outer)
    it, eit = i64_as_f64(c[IT]), i64_as_f64(c[EIT])
    phase = c[PHASE]
    log = op != OP_SOFTMAX
    scratch = np.empty(min(BLOCK, per), dt)
    t0 = k * c[GROUP]                 # tasks t0..t1 (GROUP > 1: all of them, without the pool)
    t1 = min(t0 + c[GROUP], c[N_TASKS])
    for t in range(t0, t1):
        r = t // per_line
        lo = (t - r * per_line) * per
        xs = x2[r, lo:min(lo + per, n)]
        if phase == 0:
            smax[t] = np.float64(row_max(xs))
        elif rs[r] != rs[r]:   # a special row: finish_rows writes it
            continue
        elif phase == 1:
            sk[t], ss[t] = expsum(xs, scratch, dt(rmax[r]), it, eit, tempered, log)
        else:
            slice_output(xs, y2[r, lo:min(lo + per, n)], dt(rmax[r]), rk[r], rs[r], it, eit, tempered, log)


def _make_task(kind, itemsize, op, tempered):
    """The Python function of one task. Its four closure values are constants to numba: the branches on them are
    pruned before typing, and op and tempered reach the kernels as literals."""
    def task(ctx, k):
        dt = np.float32 if itemsize == 4 else np.float64
        if kind == ROWS:
            _rows_task(ctx, k, dt, op, tempered)
        elif kind == COLUMNS:
            _columns_task(ctx, k, dt, op, tempered)
        else:
            _slices_task(ctx, k, dt, op, tempered)
    return task


# ---- merges between the phases of split rows (serial, in slice order) -----------------------------------------

@kernel()
def merge_maxima(smax, per_line, rmax, rs):
    """After phase 0: each row's max; rs[r] = nan marks a special row (nan or infinite max)."""
    for r in range(rmax.shape[0]):
        M = -np.inf
        for t in range(r * per_line, (r + 1) * per_line):
            M = max(M, smax[t]) if smax[t] == smax[t] else np.nan
            if M != M:
                break
        rmax[r] = M
        rs[r] = 0.0 if M - M == 0 else np.nan


@kernel()
def merge_sums(sk, ss, per_line, rk, rs):
    """After phase 1: each non-special row's count and sum (TwoSum, in slice order); a nan sum marks it special."""
    for r in range(rk.shape[0]):
        if rs[r] != rs[r]:
            continue
        K, S, C = 0.0, 0.0, 0.0
        for t in range(r * per_line, (r + 1) * per_line):
            K += sk[t]
            S, C = two_sum_add(S, C, ss[t])
        rk[r] = K
        rs[r] = S + C


@kernel()
def finish_rows(x2, y2, op, rmax, rk, rs):
    """Special rows (scipy's values) and, for logsumexp, every row's result."""
    for r in range(rmax.shape[0]):
        if rs[r] != rs[r]:
            special_slice(x2[r], y2[r], op)
        elif op == OP_LOGSUMEXP:
            y2[r, 0] = rmax[r] + log1p_rest(rk[r], rs[r])


# ---- the compiled entry points, built on first use ------------------------------------------------------------

_SIGNATURE = types.void(types.CPointer(types.int64), types.intp)
_compiled: dict[tuple[int, int, int, bool], object] = {}  # task()'s key -> the cfunc built for it
_compile_lock = threading.Lock()


def task(kind, itemsize, op, tempered):
    """The cfunc of task `kind` (ROWS, COLUMNS, SLICES) for float32 (itemsize 4) or float64 (8), operation op and
    tempered (a temperature other than 1), compiled once."""
    key = (kind, itemsize, op, bool(tempered))
    compiled = _compiled.get(key)
    if compiled is None:
        with _compile_lock:
            compiled = _compiled.get(key)
            if compiled is None:
                compiled = _compiled[key] = cfunc(_SIGNATURE, cache=CACHE)(_make_task(*key))
    return compiled


from .. import cython as _cython_backend  # noqa: E402 (after the kernels: the pool is optional)

_pool = _cython_backend.compiled   # None when built without the compiled extension: tasks run on the calling thread

HAVE_POOL = _pool is not None


def run(kind, op, itemsize, tempered, ctx, n_tasks, n_threads):
    """Run tasks 0 .. n_tasks - 1 of `kind` over ctx (on the pool when it is there), the GIL released."""
    fn = task(kind, itemsize, op, tempered)
    if _pool is not None:
        _pool._run_tasks(fn.address, ctx.ctypes.data, n_tasks, n_threads)
    else:
        ctx[GROUP] = n_tasks  # one call covers every task
        fn.ctypes(ctx.ctypes.data_as(fn.ctypes.argtypes[0]), 0)
        ctx[GROUP] = 1
