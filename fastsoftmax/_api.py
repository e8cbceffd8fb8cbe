"""The public functions: validate like scipy.special, map onto the canonical view, hand it to a backend."""
import math
import operator

import numpy as np
from numpy.lib.array_utils import normalize_axis_tuple

from . import _dispatch, reference
from ._layout import Layout
from ._threads import threads_for

_FLOAT16 = np.dtype(np.float16)
_FLOAT32 = np.dtype(np.float32)


def input_dtype(dtype, func):
    """The dtype an input of `dtype` is computed in, as scipy would: integers and bools in float64 (scipy rejects
    bools; we take them as 0 and 1), floats and complex as they are, in native byte order."""
    kind = dtype.kind
    if kind in "biu":
        return np.dtype(np.float64)
    if kind not in "fc":
        raise TypeError(f"{func}: expected a real or complex numeric array, got dtype {dtype}")
    return dtype if dtype.isnative else dtype.newbyteorder("=")


def _as_input(x, func):
    a = np.asarray(x)
    dtype = input_dtype(a.dtype, func)
    return a if dtype == a.dtype else a.astype(dtype)  # dtype equality includes byte order


def _axes(axis, ndim, func):
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (tuple, list)):
        axes = normalize_axis_tuple(tuple(axis), ndim, "axis")
    else:
        try:
            axes = normalize_axis_tuple(operator.index(axis), ndim, "axis")
        except TypeError:
            raise TypeError(f"{func}: axis must be None, an int or a tuple of ints, got {axis!r}") from None
    return tuple(sorted(axes))


def _check_out(out, shape, dtype, func):
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{func}: out must be a numpy array, got {type(out).__name__}")
    if out.shape != shape or out.dtype != dtype:
        raise ValueError(f"{func}: out must have shape {shape} and dtype {dtype}, "
                         f"got shape {out.shape} and dtype {out.dtype}")
    if not out.flags.writeable:
        raise ValueError(f"{func}: out is read-only")


def _check_temperature(temperature, func):
    try:
        t = float(temperature)
    except (TypeError, ValueError):
        raise TypeError(f"{func}: temperature must be a real number, got {temperature!r}") from None
    if not (0 < t < math.inf):
        raise ValueError(f"{func}: temperature must be positive and finite, got {temperature!r}")
    return t


def _is_dask(x):
    """True for a dask collection, recognised without importing dask (an optional extra, imported on first use)."""
    return type(x).__module__.startswith("dask.")


def _softmax_like(func, x, axis, out, backend, temperature):
    if temperature != 1.0:
        temperature = _check_temperature(temperature, func)
    if _is_dask(x):
        from . import _dask
        if temperature != 1.0:
            x = x / temperature  # lazily, chunk by chunk
        return _dask.softmax_like(func, x, axis, out=out, backend=backend)
    a = _as_input(x, func)
    layout = Layout(a, _axes(axis, a.ndim, func))
    if out is not None:
        _check_out(out, a.shape, a.dtype, func)
    result = out if out is not None else layout.new_output(a.dtype)
    if a.size == 0:
        return result

    compute_dtype = _FLOAT32 if a.dtype == _FLOAT16 else a.dtype
    kernel = getattr(_dispatch.choose(func, compute_dtype, a.size, layout.inner > 1, backend,
                                      tempered=temperature != 1.0), func)
    x3 = layout.view3(a if compute_dtype == a.dtype else a.astype(compute_dtype))
    y3 = layout.writable_view3(result) if compute_dtype == a.dtype else None
    if y3 is None or (out is not None and np.may_share_memory(y3, x3)):
        y3 = np.empty(layout.shape3, compute_dtype)
        kernel(x3, y3, threads_for(a.size), temperature, True)
        layout.copy_back(y3, result)
    else:
        kernel(x3, y3, threads_for(a.size), temperature, out is None)
    return result if out is not None or result.ndim else result[()]


def softmax(x, axis=None, *, out=None, backend=None, temperature=1.0):
    """Softmax of `x` along `axis` (None: the whole array), as scipy.special.softmax.

    exp(x) / sum(exp(x)) computed without overflow. float32 and float16 stay in their dtype; integers and bools
    become float64. A line holding nan or +inf, or only -inf, gives nan, as in scipy. `out`, if given, must have
    the result's shape and dtype and receives it. `backend` forces "numpy", "cython" or "numba" (see backends());
    dtypes the compiled backends do not cover (complex, long double) always use the numpy reference.
    `temperature` T > 0 gives softmax(x / T) without forming x / T: small T tends to one-hot, large T to uniform.
    """
    return _softmax_like("softmax", x, axis, out, backend, temperature)


def log_softmax(x, axis=None, *, out=None, backend=None, temperature=1.0):
    """Logarithm of the softmax of `x` (or of x / temperature) along `axis`, as scipy.special.log_softmax,
    accurately near 0."""
    return _softmax_like("log_softmax", x, axis, out, backend, temperature)


def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False, *, backend=None):
    """log(sum(exp(a))) along `axis`, as scipy.special.logsumexp (weights `b`, `keepdims`, `return_sign`)."""
    func = "logsumexp"
    if _is_dask(a) or _is_dask(b):
        from . import _dask
        return _dask.logsumexp(a, axis=axis, b=b, keepdims=keepdims, return_sign=return_sign, backend=backend)
    if b is not None:
        b = _as_input(b, func)
        a = _as_input(a, func)
        dtype = np.result_type(a, b, np.float16)
        a, b = np.broadcast_arrays(a.astype(dtype, copy=False), b.astype(dtype, copy=False))
    a = np.atleast_1d(_as_input(a, func))  # scipy treats a 0-d input as a 1-element vector
    axes = _axes(axis, a.ndim, func)

    if b is not None or a.dtype.kind == "c":
        if a.size:
            out, sign = reference.weighted_logsumexp(a, b, axes, return_sign)
        else:
            out = np.full([1 if i in axes else n for i, n in enumerate(a.shape)], -np.inf, a.dtype)
            sign = np.zeros_like(out)
    else:
        layout = Layout(a, axes)
        out = np.empty((layout.outer, layout.inner), a.dtype)
        if layout.n == 0:
            out.fill(-np.inf)
        elif out.size:
            compute_dtype = _FLOAT32 if a.dtype == _FLOAT16 else a.dtype
            kernel = _dispatch.choose(func, compute_dtype, a.size, layout.inner > 1, backend).logsumexp
            x3 = layout.view3(a if compute_dtype == a.dtype else a.astype(compute_dtype))
            y2 = out if compute_dtype == a.dtype else np.empty(out.shape, compute_dtype)
            kernel(x3, y2, threads_for(a.size))
            if y2 is not out:
                out[...] = y2
        out = np.expand_dims(layout.reduced(out), axes)
        sign = None
        if return_sign:
            sign = np.where(out == -np.inf, 0, np.where(np.isnan(out), np.nan, 1)).astype(a.dtype)

    if not keepdims:
        out = np.squeeze(out, axis=axes)
        sign = None if sign is None else np.squeeze(sign, axis=axes)
    out = out[()] if out.ndim == 0 else out
    if return_sign:
        sign = sign[()] if sign.ndim == 0 else sign
        return out, sign
    return out
