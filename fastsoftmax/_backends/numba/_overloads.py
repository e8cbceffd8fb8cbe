"""fastsoftmax.softmax, log_softmax and logsumexp inside users' numba-jitted functions.

    @numba.njit
    def policy(logits):
        return fastsoftmax.softmax(logits, axis=-1)

numba imports this module when it starts, through the entry point `numba_extensions` in pyproject.toml (its `init`
hook): nothing to import by hand, and `import fastsoftmax` alone still never imports numba.

Inside jitted code the functions take float32, float64, integer or bool arrays of any layout (integers and bools
become float64, as in scipy), `axis` an int (a constant or a variable) or None, `temperature`, and `out=` for softmax
and log_softmax; logsumexp takes `keepdims` (not `b` or `return_sign`). They run the numba backend's kernels
(_rows.py, _columns.py) on the calling thread: same results and nan/inf rules as at the Python level, within the
documented ULP bounds. Parallelism is the caller's, e.g. a prange over rows. Bad arguments raise numba's TypingError
at compile time (a type) or ValueError at run time (a value), with the message the Python call gives.
"""
import numpy as np
from numba import types
from numba.core.errors import TypingError
from numba.extending import overload
from numba.np.unsafe.ndarray import to_fixed_tuple

import fastsoftmax

from . import _DEFAULT_SIZES
from ._columns import cols_op
from ._exp import fma, kernel
from ._rows import OP_LOG_SOFTMAX, OP_LOGSUMEXP, OP_SOFTMAX, rows

COLUMN_TILE = _DEFAULT_SIZES["column_tile"]   # columns per tile of the column kernels: the backend's default


def init():
    """numba's entry-point hook: importing this module has registered the overloads."""


def _omitted(ty):
    return ty is None or isinstance(ty, (types.NoneType, types.Omitted))


def _result_dtype(name, x):
    """The result dtype for array type x (integers and bools give float64), or a TypingError."""
    if not isinstance(x, types.Array):
        raise TypingError(f"fastsoftmax.{name} inside numba takes an array, got {x}")
    if x.dtype in (types.float32, types.float64):
        return x.dtype
    if isinstance(x.dtype, (types.Integer, types.Boolean)):
        return types.float64
    raise TypingError(f"fastsoftmax.{name} inside numba supports float32, float64, integer and bool arrays, "
                      f"got {x.dtype}")


def _check_axis(name, axis):
    if not (_omitted(axis) or isinstance(axis, types.Integer)):
        raise TypingError(f"fastsoftmax.{name} inside numba: axis must be an int or None, got {axis}")


@kernel()
def _temperature(temperature):
    """(it, eit) = 1 / temperature as a double-double; ValueError unless 0 < temperature < inf."""
    t = np.float64(temperature)
    if not (t > 0.0 and t < np.inf):
        raise ValueError("temperature must be a positive finite number")
    it = 1.0 / t
    return it, fma(-t, it, 1.0) / t


@kernel()
def _lines(shape, axis):
    """(outer, n, inner) of a reduction over `axis` (an int, negative from the end) of an array of this shape."""
    nd = len(shape)
    a = axis + nd if axis < 0 else axis
    if a < 0 or a >= nd:
        raise ValueError("axis is out of bounds for the array's dimension")
    outer = 1
    inner = 1
    for i in range(nd):
        if i < a:
            outer *= shape[i]
        elif i > a:
            inner *= shape[i]
    return outer, shape[a], inner


# which kernels a call can need: known when axis is None or a constant, both when axis is a variable
ROWS, COLUMNS, EITHER = 0, 1, 2


def _lines_kind(axis, nd):
    value = axis.literal_value if isinstance(axis, types.IntegerLiteral) else None
    if _omitted(axis) or value in (-1, nd - 1):
        return ROWS
    return EITHER if value is None else COLUMNS


@kernel()
def _rows(x3, y3, op, tempered, it, eit):
    outer, n, _ = x3.shape
    rows(x3.reshape((outer, n)), y3.reshape((outer, y3.shape[1])), 0, outer, it, eit, op, tempered)


@kernel()
def _columns(x3, y3, op, tempered, it, eit):
    for o in range(x3.shape[0]):
        for j0 in range(0, x3.shape[2], COLUMN_TILE):
            cols_op(op, x3[o], y3[o], j0, min(j0 + COLUMN_TILE, x3.shape[2]), it, eit, tempered)


@kernel()
def _either(x3, y3, op, tempered, it, eit):
    if x3.shape[2] == 1:
        _rows(x3, y3, op, tempered, it, eit)
    else:
        _columns(x3, y3, op, tempered, it, eit)


def _compute(x3, y3, op, temperature, lines, tempered):  # pragma: no cover - replaced by the overload
    """op over axis 1 of the C-contiguous (outer, n, inner) x3 into y3, on this thread, with the kernels `lines`
    (ROWS, COLUMNS, EITHER) and, if `tempered` (a constant: the call passed a temperature), a temperature."""
    raise NotImplementedError


@overload(_compute, prefer_literal=True)
def _ol_compute(x3, y3, op, temperature, lines, tempered):
    run = (_rows, _columns, _either)[lines.literal_value]
    if not tempered.literal_value:
        def plain(x3, y3, op, temperature, lines, tempered):
            if x3.size > 0:
                run(x3, y3, op, False, 1.0, 0.0)
        return plain

    def impl(x3, y3, op, temperature, lines, tempered):
        it, eit = _temperature(temperature)       # validates it, even where x is empty
        if x3.size == 0:
            return
        if it == 1.0:
            run(x3, y3, op, False, 1.0, 0.0)
        else:
            run(x3, y3, op, True, it, eit)
    return impl


@kernel()
def _store(y, yc):
    """y[...] = yc for an out= that is not C-contiguous (a cached kernel: compiling the assignment's shape checks
    takes seconds, which every user function would pay again)."""
    y[...] = yc


def _softmax_like(name, op):
    def typer(x, axis=None, out=None, backend=None, temperature=1.0):
        dtype = _result_dtype(name, x)
        _check_axis(name, axis)
        if not _omitted(backend):
            raise TypingError(f"fastsoftmax.{name} inside numba: backend= has no meaning there (it always runs the "
                              "numba kernels)")
        if not isinstance(temperature, (types.Number, types.Omitted, int, float)):
            raise TypingError(f"fastsoftmax.{name} inside numba: temperature must be a number, got {temperature}")
        whole = _omitted(axis)
        has_out = not _omitted(out)
        if has_out and not (isinstance(out, types.Array) and out.dtype == dtype and out.ndim == x.ndim):
            raise TypingError(f"fastsoftmax.{name} inside numba: out must be a {x.ndim}-d {dtype} array, got {out}")
        nd = x.ndim
        convert = x.dtype != dtype
        lines = _lines_kind(axis, nd)
        tempered = not isinstance(temperature, (int, float))    # numba passes the default as the value itself
        may_copy = has_out and nd > 0 and out.layout != "C"     # an out= that is not (known) C-contiguous

        def impl(x, axis=None, out=None, backend=None, temperature=1.0):
            if convert:
                xc = np.ascontiguousarray(x).astype(dtype)
            else:
                xc = np.ascontiguousarray(x)            # no copy when x is C-contiguous
            if whole:
                outer, n, inner = 1, xc.size, 1
            else:
                outer, n, inner = _lines(x.shape, axis)
            if has_out:
                if out.shape != x.shape:
                    raise ValueError("out must have the shape of the input")
                y = out
            else:
                y = np.empty(x.shape, dtype)
            if may_copy:                                # computed in C order, then stored into out
                yc = np.empty(x.shape, dtype)
            else:
                yc = y
            _compute(xc.reshape((outer, n, inner)), yc.reshape((outer, n, inner)), op, temperature, lines, tempered)
            if may_copy:
                _store(y, yc)
            return y
        return impl
    return typer


overload(fastsoftmax.softmax, prefer_literal=True)(_softmax_like("softmax", OP_SOFTMAX))
overload(fastsoftmax.log_softmax, prefer_literal=True)(_softmax_like("log_softmax", OP_LOG_SOFTMAX))


@overload(fastsoftmax.logsumexp, prefer_literal=True)
def _ol_logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False, backend=None):
    dtype = _result_dtype("logsumexp", a)
    _check_axis("logsumexp", axis)
    sign = return_sign.value if isinstance(return_sign, types.Omitted) else return_sign
    sign = sign.literal_value if isinstance(sign, types.BooleanLiteral) else sign
    if not _omitted(b) or sign is not False:
        raise TypingError("fastsoftmax.logsumexp inside numba: b= and return_sign= are not supported there")
    if not _omitted(backend):
        raise TypingError("fastsoftmax.logsumexp inside numba: backend= has no meaning there")
    if isinstance(keepdims, bool):                  # the default, as numba passes it
        keep = keepdims
    elif isinstance(keepdims, types.BooleanLiteral):
        keep = keepdims.literal_value
    elif isinstance(keepdims, types.Omitted):
        keep = bool(keepdims.value)
    else:
        raise TypingError("fastsoftmax.logsumexp inside numba: keepdims must be a constant True or False")
    whole = _omitted(axis)
    nd = a.ndim
    scalar = not keep and (whole or nd <= 1)   # the result is a number, as numpy's reductions give
    out_nd = nd if keep else max(nd - 1, 1)      # (unused when scalar)
    convert = a.dtype != dtype
    lines = _lines_kind(axis, nd)

    def impl(a, axis=None, b=None, keepdims=False, return_sign=False, backend=None):
        if convert:
            xc = np.ascontiguousarray(a).astype(dtype)
        else:
            xc = np.ascontiguousarray(a)
        if whole:
            outer, n, inner = 1, xc.size, 1
            ax = 0
        else:
            outer, n, inner = _lines(a.shape, axis)
            ax = axis + nd if axis < 0 else axis
        y = np.empty(outer * inner, dtype)
        if n == 0:
            y[:] = -np.inf                          # the log of an empty sum
        else:
            _compute(xc.reshape((outer, n, inner)), y.reshape((outer, 1, inner)), OP_LOGSUMEXP, 1.0, lines, False)
        if scalar:
            return y[0]
        dims = np.empty(max(out_nd, 1), np.int64)   # the result's shape: the input's without (or with 1 at) axis
        k = 0
        for i in range(nd):
            if whole or i == ax:
                if keep:
                    dims[k] = 1
                    k += 1
            else:
                dims[k] = a.shape[i]
                k += 1
        return y.reshape(to_fixed_tuple(dims, out_nd))
    return impl
