"""The public functions. Each tries the compiled shortcut for the common call first (a float32/float64 ndarray in
C order, an int axis or None, no backend forced: validation, layout, dispatch and threads decided in C, about a
microsecond), hands dask arrays to fastsoftmax/_dask.py, and everything else to the general path
(fastsoftmax/_compute.py), which gives the same results."""
from . import _compute
from ._validate import check_temperature, is_dask

try:  # the shortcut lives beside the kernels; without the compiled extension every call takes the general path
    from ._backends.cython_kernels import fast_logsumexp as _fast_logsumexp
    from ._backends.cython_kernels import fast_softmax as _fast_softmax
except ImportError:
    _fast_softmax = _fast_logsumexp = None

_SOFTMAX, _LOG_SOFTMAX = 0, 1   # the shortcut's codes (src_cython/cython_kernels.pyx)


def _softmax_like(func, code, x, axis, out, backend, temperature):
    if backend is None and _fast_softmax is not None:
        result = _fast_softmax(code, x, axis, out, temperature)
        if result is not NotImplemented:
            return result
    if is_dask(x):
        from . import _dask
        if temperature != 1.0:
            x = x / check_temperature(temperature, func)  # lazily, chunk by chunk
        return _dask.softmax_like(func, x, axis, out=out, backend=backend)
    return _compute.softmax_like(func, x, axis, out, backend, temperature)


def softmax(x, axis=None, *, out=None, backend=None, temperature=1.0):
    """Softmax of `x` along `axis` (None: the whole array), as scipy.special.softmax.

    exp(x) / sum(exp(x)) computed without overflow. float32 and float16 stay in their dtype; integers and bools
    become float64. A line holding nan or +inf, or only -inf, gives nan, as in scipy. `out`, if given, must have
    the result's shape and dtype and receives it. `backend` forces "numpy", "cython" or "numba" (see backends());
    dtypes the compiled backends do not cover (complex, long double) always use the numpy reference.
    `temperature` T > 0 gives softmax(x / T) without forming x / T: small T tends to one-hot, large T to uniform.
    """
    return _softmax_like("softmax", _SOFTMAX, x, axis, out, backend, temperature)


def log_softmax(x, axis=None, *, out=None, backend=None, temperature=1.0):
    """Logarithm of the softmax of `x` (or of x / temperature) along `axis`, as scipy.special.log_softmax,
    accurately near 0."""
    return _softmax_like("log_softmax", _LOG_SOFTMAX, x, axis, out, backend, temperature)


def logsumexp(a, axis=None, b=None, keepdims=False, return_sign=False, *, backend=None):
    """log(sum(exp(a))) along `axis`, as scipy.special.logsumexp (weights `b`, `keepdims`, `return_sign`)."""
    if backend is None and b is None and not return_sign and _fast_logsumexp is not None:
        result = _fast_logsumexp(a, axis, keepdims)
        if result is not NotImplemented:
            return result
    if is_dask(a) or is_dask(b):
        from . import _dask
        return _dask.logsumexp(a, axis=axis, b=b, keepdims=keepdims, return_sign=return_sign, backend=backend)
    return _compute.logsumexp(a, axis, b, keepdims, return_sign, backend)


