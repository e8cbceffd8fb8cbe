"""The numba backend's tasks: compiled C-callable functions (numba.cfunc) that fastsoftmax's thread pool runs.

The pool (src_cython/parallel/fs_pool.c, in fastsoftmax._backends.cython_kernels) is the same one the Cython kernels use: the
calling thread works and other threads only help when they are running, so a numba call never stalls next to
numpy's BLAS threads and survives fork; numba's own threading layers (OpenMP, workqueue) do neither. Each task
function has the C signature void(int64 *ctx, intptr task): ctx is a small int64 array describing the call (below),
task picks the piece. The functions are compiled on first use, per kind and dtype, and cached on disk.

Without the compiled pool (a build without the Cython extension) the same functions run on the calling thread,
through ctypes, one call covering every task.
"""
import threading

import numpy as np
from numba import carray, cfunc, njit, types

from ._columns import column_tile
from ._exp import CACHE, FM_EXACT, address_as_pointer, i64_as_f64, log1p_rest
from ._rows import (OP_LOGSUMEXP, OP_SOFTMAX, max_range, merge, online_stats, row, softmax_out_range,
                    special_slice, stats_range, lsm_out_range)

# ---- the ctx array ----------------------------------------------------------------------------------------------
X, OUT, OUTER, N, INNER, OP, PER_TASK, PER_LINE, IT, EIT, GROUP, N_TASKS = range(12)
SLICE_MAX, SLICE_K, SLICE_S, SLICE_BAD, ROW_MAX, ROW_K, ROW_S, PHASE, ITEMSIZE = range(12, 21)
CTX_LEN = 21


def new_ctx(x, out, op, per_task, per_line, it, eit, n_tasks):
    """The ctx array of a call over the (outer, n, inner) array x into out; it + eit = 1 / temperature."""
    ctx = np.zeros(CTX_LEN, np.int64)
    ctx[X], ctx[OUT] = x.ctypes.data, out.ctypes.data
    ctx[OUTER], ctx[N], ctx[INNER] = x.shape
    ctx[OP], ctx[PER_TASK], ctx[PER_LINE] = op, per_task, per_line
    ctx[IT:EIT + 1] = np.array([it, eit]).view(np.int64)
    ctx[GROUP], ctx[N_TASKS], ctx[ITEMSIZE] = 1, n_tasks, x.itemsize
    return ctx


# ---- task bodies, generic in the dtype (passed as a compile-time argument) ----------------------------------

@njit(error_model="numpy", cache=CACHE)
def _rows_body(ctx, k, dt):
    c = carray(ctx, CTX_LEN)
    outer, n, op, per = c[OUTER], c[N], c[OP], c[PER_TASK]
    x2 = carray(address_as_pointer(c[X], dt), (outer, n))
    out2 = carray(address_as_pointer(c[OUT], dt), (outer, 1 if op == OP_LOGSUMEXP else n))
    it, eit = i64_as_f64(c[IT]), i64_as_f64(c[EIT])
    for t in range(k * c[GROUP], min((k + 1) * c[GROUP], c[N_TASKS])):
        for r in range(t * per, min((t + 1) * per, outer)):
            row(x2[r], out2[r], op, it, eit)


@njit(error_model="numpy", cache=CACHE)
def _columns_body(ctx, k, dt):
    c = carray(ctx, CTX_LEN)
    outer, n, inner, op, per, per_line = c[OUTER], c[N], c[INNER], c[OP], c[PER_TASK], c[PER_LINE]
    x3 = carray(address_as_pointer(c[X], dt), (outer, n, inner))
    out3 = carray(address_as_pointer(c[OUT], dt), (outer, 1 if op == OP_LOGSUMEXP else n, inner))
    it, eit = i64_as_f64(c[IT]), i64_as_f64(c[EIT])
    for t in range(k * c[GROUP], min((k + 1) * c[GROUP], c[N_TASKS])):
        o = t // per_line
        j0 = (t - o * per_line) * per
        column_tile(x3, out3, o, j0, min(j0 + per, inner), op, it, eit)


@njit(error_model="numpy", cache=CACHE)
def _slices_body(ctx, k, dt):
    """Split rows. PHASE 0: each slice's statistics (float32: max, count of maxima and sum in one online pass;
    float64: the max only); PHASE 1 (float64): the count and sum against the row's max; PHASE 2: the output."""
    c = carray(ctx, CTX_LEN)
    outer, n, op, per, per_line = c[OUTER], c[N], c[OP], c[PER_TASK], c[PER_LINE]
    x2 = carray(address_as_pointer(c[X], dt), (outer, n))
    out2 = carray(address_as_pointer(c[OUT], dt), (outer, 1 if op == OP_LOGSUMEXP else n))
    tasks = outer * per_line
    smax = carray(address_as_pointer(c[SLICE_MAX], np.float64), tasks)
    sk = carray(address_as_pointer(c[SLICE_K], np.float64), tasks)
    ss = carray(address_as_pointer(c[SLICE_S], np.float64), tasks)
    sbad = carray(address_as_pointer(c[SLICE_BAD], np.float64), tasks)
    rmax = carray(address_as_pointer(c[ROW_MAX], np.float64), outer)
    rk = carray(address_as_pointer(c[ROW_K], np.float64), outer)
    rs = carray(address_as_pointer(c[ROW_S], np.float64), outer)
    it, eit = i64_as_f64(c[IT]), i64_as_f64(c[EIT])
    phase = c[PHASE]
    for t in range(k * c[GROUP], min((k + 1) * c[GROUP], c[N_TASKS])):
        r = t // per_line
        lo = (t - r * per_line) * per
        hi = min(lo + per, n)
        if phase == 0:
            if x2.itemsize == 4:
                m, kk, s, bad = online_stats(x2[r], lo, hi, op != OP_SOFTMAX, it, eit)
                smax[t], sk[t], ss[t], sbad[t] = m, kk, s, np.float64(bad)
            else:
                smax[t] = np.float64(max_range(x2[r], lo, hi))
        elif phase == 1:
            if rs[r] == rs[r]:  # the row is not special
                sk[t], ss[t] = stats_range(x2[r], lo, hi, rmax[r], it, eit)
        elif rs[r] == rs[r]:
            if op == OP_SOFTMAX:
                softmax_out_range(x2[r], lo, hi, rmax[r], rk[r] + rs[r], it, eit, out2[r])
            else:
                lsm_out_range(x2[r], lo, hi, rmax[r], log1p_rest(rk[r], rs[r]), it, eit, out2[r])


# ---- merges between the phases of split rows (serial, in slice order) -----------------------------------------

@njit(error_model="numpy", fastmath=FM_EXACT, cache=CACHE)
def merge_online(smax, sk, ss, sbad, per_line, it, rmax, rk, rs):
    """float32 rows: each row's (max, count, sum) from its slices'; rs[r] = nan marks a special row."""
    for r in range(rmax.shape[0]):
        M, K, S, bad = -np.inf, 0.0, 0.0, False
        for t in range(r * per_line, (r + 1) * per_line):
            if sbad[t] != 0.0 or smax[t] != smax[t]:
                bad = True
            elif smax[t] > -np.inf:
                M, K, S = merge(M, K, S, smax[t], sk[t], ss[t], it)
        rmax[r], rk[r], rs[r] = M, K, S
        if bad or not np.isfinite(M) or S != S:
            rs[r] = np.nan


@njit(error_model="numpy", cache=CACHE)
def merge_maxima(smax, per_line, rmax, rs):
    """float64 rows, after phase 0: each row's max; rs[r] = nan marks a special row (nan or infinite max)."""
    for r in range(rmax.shape[0]):
        M, bad = -np.inf, False
        for t in range(r * per_line, (r + 1) * per_line):
            v = smax[t]
            if v != v:
                bad = True
            elif v > M:
                M = v
        rmax[r] = M
        rs[r] = np.nan if bad or not np.isfinite(M) else 0.0


@njit(error_model="numpy", fastmath=FM_EXACT, cache=CACHE)
def merge_sums(sk, ss, per_line, rk, rs):
    """float64 rows, after phase 1: each non-special row's count and (Kahan) sum, in slice order."""
    for r in range(rk.shape[0]):
        if rs[r] != rs[r]:
            continue
        k, s, c = 0.0, 0.0, 0.0
        for t in range(r * per_line, (r + 1) * per_line):
            k += sk[t]
            y = ss[t] - c
            u = s + y
            c = (u - s) - y
            s = u
        rk[r] = k
        rs[r] = s - c
        if rs[r] != rs[r]:
            rs[r] = np.nan


@njit(error_model="numpy", cache=CACHE)
def finish_rows(x2, out2, op, rmax, rk, rs):
    """Special rows (scipy's values) and, for logsumexp, every row's result."""
    for r in range(rmax.shape[0]):
        if rs[r] != rs[r]:
            special_slice(x2[r], out2[r], op)
        elif op == OP_LOGSUMEXP:
            out2[r, 0] = rmax[r] + log1p_rest(rk[r], rs[r])


# ---- the compiled entry points, built on first use ------------------------------------------------------------

def _rows_f32(ctx, k):
    _rows_body(ctx, k, np.float32)


def _rows_f64(ctx, k):
    _rows_body(ctx, k, np.float64)


def _columns_f32(ctx, k):
    _columns_body(ctx, k, np.float32)


def _columns_f64(ctx, k):
    _columns_body(ctx, k, np.float64)


def _slices_f32(ctx, k):
    _slices_body(ctx, k, np.float32)


def _slices_f64(ctx, k):
    _slices_body(ctx, k, np.float64)


_PY_TASKS = {("rows", 4): _rows_f32, ("rows", 8): _rows_f64, ("columns", 4): _columns_f32,
             ("columns", 8): _columns_f64, ("slices", 4): _slices_f32, ("slices", 8): _slices_f64}
_SIGNATURE = types.void(types.CPointer(types.int64), types.intp)
_compiled = {}
_compile_lock = threading.Lock()


def task(kind, itemsize):
    """The cfunc of task `kind` ("rows", "columns", "slices") for float32 (4) or float64 (8), compiled once."""
    key = (kind, itemsize)
    compiled = _compiled.get(key)
    if compiled is None:
        with _compile_lock:
            compiled = _compiled.get(key)
            if compiled is None:
                compiled = _compiled[key] = cfunc(_SIGNATURE, cache=CACHE)(_PY_TASKS[key])
    return compiled


from .. import cython as _cython_backend

_pool = _cython_backend.compiled   # None when built without the compiled extension: tasks run on the calling thread

HAVE_POOL = _pool is not None


def run(kind, ctx, n_tasks, n_threads):
    """Run tasks 0 .. n_tasks - 1 of `kind` over ctx (on the pool when it is there), the GIL released."""
    fn = task(kind, int(ctx[ITEMSIZE]))
    if _pool is not None:
        _pool._run_tasks(fn.address, ctx.ctypes.data, n_tasks, n_threads)
    else:
        ctx[GROUP] = n_tasks  # one call covers every task
        fn.ctypes(ctx.ctypes.data_as(fn.ctypes.argtypes[0]), 0)
        ctx[GROUP] = 1

