"""The general path of the public functions: any array-like numpy accepts, any dtype, any axis form, any memory
layout. Inputs are validated like scipy.special (fastsoftmax/_validate.py), mapped onto the canonical (outer, n,
inner) view (fastsoftmax/_layout.py) and computed by the backend the dispatcher picks (fastsoftmax/_dispatch.py).

The common call (a float32/float64 ndarray in C order, an int axis or None) takes a compiled shortcut instead
(fastsoftmax/_api.py); this path gives the same results, bit for bit."""
import numpy as np

from . import _dispatch, reference
from ._layout import Layout
from ._validate import as_input, axes, check_out, check_temperature

_FLOAT16 = np.dtype(np.float16)
_FLOAT32 = np.dtype(np.float32)


def softmax_like(func, x, axis, out, backend, temperature):
    """softmax or log_softmax of an in-memory input."""
    if temperature != 1.0:
        temperature = check_temperature(temperature, func)
    a = as_input(x, func)
    layout = Layout(a, axes(axis, a.ndim, func))
    if out is not None:
        check_out(out, a.shape, a.dtype, func)
    result = out if out is not None else layout.new_output(a.dtype)
    if a.size == 0:
        return result

    compute_dtype = _FLOAT32 if a.dtype == _FLOAT16 else a.dtype
    kernel = getattr(_dispatch.choose(func, compute_dtype, a.size, layout.inner > 1, backend,
                                      tempered=temperature != 1.0), func)
    x3 = layout.view3(a if compute_dtype == a.dtype else a.astype(compute_dtype))
    y3 = layout.writable_view3(result) if compute_dtype == a.dtype else None
    n_threads = _dispatch.threads_for(a.size)
    if y3 is None or (out is not None and np.may_share_memory(y3, x3)):
        y3 = np.empty(layout.shape3, compute_dtype)
        kernel(x3, y3, n_threads, temperature, True)
        layout.copy_back(y3, result)
    else:
        kernel(x3, y3, n_threads, temperature, out is None)
    return result if out is not None or result.ndim else result[()]


def logsumexp(a, axis, b, keepdims, return_sign, backend):
    """logsumexp of an in-memory input, scipy's signature and results."""
    func = "logsumexp"
    if b is not None:
        b = as_input(b, func)
        a = as_input(a, func)
        dtype = np.result_type(a, b, np.float16)
        a, b = np.broadcast_arrays(a.astype(dtype, copy=False), b.astype(dtype, copy=False))
    a = np.atleast_1d(as_input(a, func))  # scipy treats a 0-d input as a 1-element vector
    reduced = axes(axis, a.ndim, func)

    if b is not None or a.dtype.kind == "c":
        if a.size:
            out, sign = reference.weighted_logsumexp(a, b, reduced, return_sign)
        else:
            out = np.full([1 if i in reduced else n for i, n in enumerate(a.shape)], -np.inf, a.dtype)
            sign = np.zeros_like(out)
    else:
        layout = Layout(a, reduced)
        out = np.empty((layout.outer, layout.inner), a.dtype)
        if layout.n == 0:
            out.fill(-np.inf)
        elif out.size:
            compute_dtype = _FLOAT32 if a.dtype == _FLOAT16 else a.dtype
            kernel = _dispatch.choose(func, compute_dtype, a.size, layout.inner > 1, backend).logsumexp
            x3 = layout.view3(a if compute_dtype == a.dtype else a.astype(compute_dtype))
            y2 = out if compute_dtype == a.dtype else np.empty(out.shape, compute_dtype)
            kernel(x3, y2, _dispatch.threads_for(a.size))
            if y2 is not out:
                out[...] = y2
        out = np.expand_dims(layout.reduced(out), reduced)
        sign = None
        if return_sign:
            sign = np.where(out == -np.inf, 0, np.where(np.isnan(out), np.nan, 1)).astype(a.dtype)

    if not keepdims:
        out = np.squeeze(out, axis=reduced)
        sign = None if sign is None else np.squeeze(sign, axis=reduced)
    out = out[()] if out.ndim == 0 else out
    if return_sign:
        sign = sign[()] if sign.ndim == 0 else sign
        return out, sign
    return out
