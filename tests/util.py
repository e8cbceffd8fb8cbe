"""What every test shares: the backends under test, one input generator, and the long-double reference."""
import contextlib
import itertools

import numpy as np

import fastsoftmax
from fastsoftmax._tools.exact import exact, line_length

FUNCTIONS = ("softmax", "log_softmax", "logsumexp")
BACKENDS = fastsoftmax.backends()
FLOAT_DTYPES = (np.float16, np.float32, np.float64)


@contextlib.contextmanager
def tiny_tasks(enabled=True):
    """Within this block every input uses the threads (no serial threshold) and the compiled backends cut every array
    into tasks of 1 to 4 elements, split rows of 8 or more (when there are fewer rows than threads) into slices of
    16, give column tasks 16 columns and stream every out= output: small test arrays then take every parallel path
    of the drivers (several tasks, split rows, column tiles, non-temporal stores)."""
    from fastsoftmax import _dispatch
    serial_below = _dispatch.SERIAL_BELOW
    modules = []
    if enabled and "cython" in BACKENDS:
        from fastsoftmax._backends import cython_kernels
        modules.append(cython_kernels)
    if enabled and "numba" in BACKENDS:
        from fastsoftmax._backends import numba as numba_backend
        modules.append(numba_backend)
    for module in modules:
        sizes = dict(task_min=1, task_max=4, split_row_min=8, slice=16, column_tile=16)
        if module.__name__.endswith("cython_kernels"):
            sizes["stream_bytes"] = 1
        module._set_task_sizes(**sizes)
    if enabled:
        _dispatch.set_serial_below(0)
    try:
        yield
    finally:
        _dispatch.set_serial_below(serial_below)
        for module in modules:
            module._set_task_sizes()


# ---- the reference (fastsoftmax/_tools/exact.py) and the numpy backend's tolerance -----------------------------

def shift_magnitude(func, x, axis=None):
    """|x - max| per element (0 where not finite): the rounding of x - max costs up to that many eps."""
    a = np.asarray(x, dtype=np.float64)
    if a.size == 0:
        return np.zeros(a.shape)
    with np.errstate(all="ignore"):
        d = np.abs(a - np.max(a, axis=axis, keepdims=True))
    return np.where(np.isfinite(d), d, 0)


def tolerance_violations(func, x, axis, got, backend=None):
    """Return a description of how `got` misses the reference, or None when it is within tolerance.

    The bounds are those of a straightforward float implementation in the input's dtype (the numpy backend: x - max
    rounded, sums whose error grows like sqrt(n) eps);
    the compiled backends are held to their tighter ULP bounds in test_accuracy.py."""
    want = exact(func, x, axis)
    got = np.asarray(got)
    if got.shape != want.shape:
        return f"shape {got.shape}, expected {want.shape}"
    got_l = got.astype(np.longdouble)
    nan_got, nan_want = np.isnan(got_l), np.isnan(want)
    if not np.array_equal(nan_got, nan_want):
        return f"nan at {np.argwhere(nan_got != nan_want)[:3].tolist()}: got {got_l[nan_got != nan_want][:3]}, " \
               f"expected {want[nan_got != nan_want][:3]}"
    finfo = np.finfo(got.dtype if got.dtype.kind == "f" else np.float64)
    eps, tiny = float(finfo.eps), float(finfo.smallest_normal)
    with np.errstate(all="ignore"):
        want_c = np.where(nan_want, 0, want)
        got_c = np.where(nan_got, 0, got_l)
        inf_mismatch = np.isinf(want_c) | np.isinf(got_c)
        if np.any(inf_mismatch & (want_c != got_c)):
            bad = inf_mismatch & (want_c != got_c)
            # float32/float16 results may overflow where the long-double value is just beyond the dtype's range
            if not np.all(np.abs(want_c[bad]) > float(finfo.max) * (1 - 2 * eps)):
                return f"inf mismatch: got {got_c[bad][:3]}, expected {want_c[bad][:3]}"
        finite = ~inf_mismatch
        err = np.abs(got_c - want_c)[finite]
        scale = np.abs(want_c)[finite]
        n = line_length(np.shape(x), axis)
        if func == "softmax":
            d = shift_magnitude(func, x, axis)
            d = np.broadcast_to(d, got.shape)[finite]
            bound = eps * (4 + d + 2 * np.sqrt(n)) * scale + 2 * tiny
        elif func == "log_softmax":
            d = np.broadcast_to(shift_magnitude(func, x, axis), got.shape)[finite]
            bound = eps * (4 * scale + d + 2 * np.sqrt(n) + 4)
        else:
            bound = eps * (4 * scale + 2 * np.sqrt(n) + 4)
        if np.any(err > bound):
            i = int(np.argmax(err - bound))
            return f"error {float(err[i]):.3g} > bound {float(bound[i]):.3g} (got {float(got_c[finite][i])!r}, " \
                   f"expected {float(want_c[finite][i])!r})"
    return None


# ---- the input generator --------------------------------------------------------------------------------------

def _values(rng, shape, family, dtype):
    """Arrays of `shape` whose lines stress one thing each."""
    size = int(np.prod(shape))
    info = np.finfo(dtype) if np.dtype(dtype).kind == "f" else np.finfo(np.float64)
    big = float(info.max) * 0.9
    if family == "std3":
        v = rng.normal(0, 3, size)
    elif family == "std30":
        v = rng.normal(0, 30, size)
    elif family == "offset1e4":
        v = 1e4 + rng.normal(0, 3, size)
    elif family == "nonfinite":
        v = rng.normal(0, 3, size)
        v[rng.random(size) < 0.25] = -np.inf
        v[rng.random(size) < 0.1] = np.inf
        v[rng.random(size) < 0.1] = np.nan
    elif family == "all_neg_inf":
        v = np.full(size, -np.inf)
    elif family == "huge":
        v = rng.choice([big, -big, 0.0, 1.0], size)
    elif family == "tiny":
        v = rng.choice([float(info.smallest_subnormal), -float(info.smallest_subnormal), 0.0,
                        float(info.smallest_normal)], size)
    else:
        raise ValueError(family)
    return v.reshape(shape)


FAMILIES = ("std3", "std30", "offset1e4", "nonfinite", "all_neg_inf", "huge", "tiny")
SHAPES = ((), (1,), (7,), (33,), (3, 5), (4, 1), (1, 4), (2, 3, 4), (3, 1, 17), (2, 0, 3), (0,))
ORDERS = ("C", "F", "negative_stride", "strided", "transposed", "read_only", "byte_swapped")


def _axes_for(ndim):
    axes = [None] + list(range(-ndim, ndim))
    if ndim >= 2:
        axes += [(0, 1), (-1, 0)]
    if ndim >= 3:
        axes += [(0, 2), (1, 2), (0, 1, 2)]
    return axes


def _in_order(v, order):
    """`v` with the same values laid out in memory as `order` says."""
    if order == "C":
        return np.ascontiguousarray(v)
    if order == "F":
        return np.asfortranarray(v)
    if order == "negative_stride":
        return np.ascontiguousarray(v[(slice(None, None, -1),) * v.ndim])[(slice(None, None, -1),) * v.ndim]
    if order == "strided":
        wide = np.zeros(tuple(2 * s for s in v.shape), v.dtype)
        wide[(slice(None, None, 2),) * v.ndim] = v
        return wide[(slice(None, None, 2),) * v.ndim]
    if order == "transposed":
        return np.ascontiguousarray(v.T).T
    if order == "read_only":
        v = v.copy()
        v.flags.writeable = False
        return v
    if order == "byte_swapped":
        return v.astype(v.dtype.newbyteorder("S"))
    raise ValueError(order)


def array_cases(dtype, seed=0):
    """Yield (label, array, axis) over shapes, axes, memory orders and value families for one dtype."""
    rng = np.random.default_rng(seed)
    for shape, family in itertools.product(SHAPES, FAMILIES):
        values = _values(rng, shape, family, dtype).astype(dtype)
        for axis in _axes_for(len(shape)):
            # every memory order once per shape (on a rotating axis), all axes in C order
            orders = ("C",) if axis != _axes_for(len(shape))[-1] else ORDERS
            for order in orders:
                x = _in_order(values, order)
                label = f"dtype={np.dtype(dtype).name} shape={shape} axis={axis} order={order} values={family}"
                yield label, x, axis


def integer_cases():
    """Python lists, scalars, ints and bools: computed as float64."""
    yield "python list of floats", [8.0, 5.0, 2.0], None
    yield "python list of ints", [[1, 2, 3], [4, 5, 6]], 1
    yield "python int", 3, None
    yield "python float", -2.5, None
    yield "numpy int64", np.arange(12, dtype=np.int64).reshape(3, 4), 0
    yield "numpy int8", np.array([-128, 0, 127], dtype=np.int8), None
    yield "numpy uint16", np.array([[0, 65535], [7, 8]], dtype=np.uint16), -1
    yield "bools", np.array([True, False, True]), None


def long_line_cases():
    """Lines of 10^6 elements: rows, axis None, and a column of a (10^6, 2) array."""
    rng = np.random.default_rng(1)
    for dtype in (np.float32, np.float64):
        x = rng.normal(0, 3, 10**6).astype(dtype)
        yield f"dtype={np.dtype(dtype).name} shape=(10**6,) axis=None", x, None
        yield f"dtype={np.dtype(dtype).name} shape=(2, 5*10**5) axis=-1", x.reshape(2, -1), -1
        yield f"dtype={np.dtype(dtype).name} shape=(5*10**5, 2) axis=0", x.reshape(-1, 2), 0
        # a row split across threads, with the special value in the last slice only
        for label, where, value in (("+inf", -3, np.inf), ("nan", -5, np.nan), ("-inf", 7, -np.inf)):
            special = x.copy()
            special[where] = value
            yield f"dtype={np.dtype(dtype).name} shape=(10**6,) axis=None with {label}", special, None
        peak = x.copy()
        peak[-1] = 60  # the max sits in the last block: every earlier partial sum is rescaled
        yield f"dtype={np.dtype(dtype).name} shape=(10**6,) axis=None peak at the end", peak, None
        yield f"dtype={np.dtype(dtype).name} shape=(10**6,) axis=None all -inf", np.full_like(x, -np.inf), None
        # 96 KB rows (softmax overlaps each row's scale pass with the next row's exp there), special rows among them
        n = 24013 if dtype == np.float32 else 12013
        rows = x[:7 * n].reshape(7, n).copy()
        rows[1, n // 2], rows[3, -1], rows[4] = np.inf, np.nan, -np.inf
        yield f"dtype={np.dtype(dtype).name} shape=(7, {n}) axis=-1 with +inf, nan and all -inf rows", rows, -1
