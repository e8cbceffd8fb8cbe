"""The public functions. Each tries the compiled shortcut for the common call first (a float32/float64 ndarray in
C order, an int axis or None, no backend forced: validation, layout, dispatch and threads decided in C, about a
microsecond), hands dask arrays to fastsoftmax/_dask.py, and everything else to the general path
(fastsoftmax/_compute.py), which gives the same results.

The signatures are overloaded for type checkers only (the last definition of each function is the one that runs):
what each overload promises is in fastsoftmax/_types.py."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, overload

from . import _compute
from ._validate import check_temperature, is_dask

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import ArrayLike, NDArray

    from ._types import Axis, DaskArray, DaskArrayT, FloatT, InexactT

try:  # the shortcut lives beside the kernels; without the compiled extension every call takes the general path
    from ._backends.cython_kernels import fast_logsumexp as _fast_logsumexp
    from ._backends.cython_kernels import fast_softmax as _fast_softmax
except ImportError:
    _fast_softmax = _fast_logsumexp = None

_SOFTMAX, _LOG_SOFTMAX = 0, 1   # the shortcut's codes (src_cython/cython_kernels.pyx)


def _softmax_like(func: str, code: int, x: Any, axis: Axis, out: Any, backend: str | None,
                  temperature: float) -> Any:
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


@overload
def softmax(x: NDArray[InexactT], axis: Axis = None, *, out: NDArray[InexactT] | None = None,
            backend: str | None = None, temperature: float = 1.0) -> NDArray[InexactT]: ...
@overload
def softmax(x: NDArray[np.integer[Any] | np.bool], axis: Axis = None, *, out: NDArray[np.float64] | None = None,
            backend: str | None = None, temperature: float = 1.0) -> NDArray[np.float64]: ...
@overload
def softmax(x: DaskArrayT, axis: Axis = None, *, out: None = None, backend: str | None = None,
            temperature: float = 1.0) -> DaskArrayT: ...
@overload
def softmax(x: ArrayLike, axis: Axis = None, *, out: NDArray[np.inexact[Any]] | None = None,
            backend: str | None = None, temperature: float = 1.0) -> NDArray[np.inexact[Any]]: ...
def softmax(x: ArrayLike | DaskArray, axis: Axis = None, *, out: NDArray[np.inexact[Any]] | None = None,
            backend: str | None = None, temperature: float = 1.0) -> Any:
    """Softmax of `x` along `axis` (None: the whole array), as scipy.special.softmax.

    exp(x) / sum(exp(x)) computed without overflow. float32 and float16 stay in their dtype; integers and bools
    become float64. A line holding nan or +inf, or only -inf, gives nan, as in scipy. `out`, if given, must have
    the result's shape and dtype and receives it. `backend` forces "numpy", "cython" or "numba" (see backends());
    dtypes the compiled backends do not cover (complex, long double) always use the numpy reference.
    `temperature` T > 0 gives softmax(x / T) without forming x / T: small T tends to one-hot, large T to uniform.
    """
    return _softmax_like("softmax", _SOFTMAX, x, axis, out, backend, temperature)


@overload
def log_softmax(x: NDArray[InexactT], axis: Axis = None, *, out: NDArray[InexactT] | None = None,
                backend: str | None = None, temperature: float = 1.0) -> NDArray[InexactT]: ...
@overload
def log_softmax(x: NDArray[np.integer[Any] | np.bool], axis: Axis = None, *,
                out: NDArray[np.float64] | None = None, backend: str | None = None,
                temperature: float = 1.0) -> NDArray[np.float64]: ...
@overload
def log_softmax(x: DaskArrayT, axis: Axis = None, *, out: None = None, backend: str | None = None,
                temperature: float = 1.0) -> DaskArrayT: ...
@overload
def log_softmax(x: ArrayLike, axis: Axis = None, *, out: NDArray[np.inexact[Any]] | None = None,
                backend: str | None = None, temperature: float = 1.0) -> NDArray[np.inexact[Any]]: ...
def log_softmax(x: ArrayLike | DaskArray, axis: Axis = None, *, out: NDArray[np.inexact[Any]] | None = None,
                backend: str | None = None, temperature: float = 1.0) -> Any:
    """Logarithm of the softmax of `x` (or of x / temperature) along `axis`, as scipy.special.log_softmax,
    accurately near 0."""
    return _softmax_like("log_softmax", _LOG_SOFTMAX, x, axis, out, backend, temperature)


# A real ndarray without weights keeps its dtype: a scalar when every axis is reduced (axis=None), else an array
# (or a scalar, when the reduced axes were all there were); return_sign=True gives (value, sign) alike.
@overload
def logsumexp(a: NDArray[FloatT], axis: None = None, b: None = None, keepdims: Literal[False] = False,
              return_sign: Literal[False] = False, *, backend: str | None = None) -> FloatT: ...
@overload
def logsumexp(a: NDArray[FloatT], axis: Axis = None, b: None = None, keepdims: bool = False,
              return_sign: Literal[False] = False, *, backend: str | None = None) -> NDArray[FloatT] | Any: ...
@overload
def logsumexp(a: NDArray[FloatT], axis: None = None, b: None = None, keepdims: Literal[False] = False, *,
              return_sign: Literal[True], backend: str | None = None) -> tuple[FloatT, FloatT]: ...
@overload
def logsumexp(a: NDArray[FloatT], axis: Axis = None, b: None = None, keepdims: bool = False, *,
              return_sign: Literal[True],
              backend: str | None = None) -> tuple[NDArray[FloatT] | Any, NDArray[FloatT] | Any]: ...
# Everything else (integers, complex, weights, lists, dask arrays): the dtype follows numpy's promotion of a and b,
# and the value of a complex input is complex without return_sign, real with it.
@overload
def logsumexp(a: ArrayLike, axis: Axis = None, b: ArrayLike | None = None, keepdims: bool = False,
              return_sign: Literal[False] = False, *, backend: str | None = None) -> Any: ...
@overload
def logsumexp(a: ArrayLike, axis: Axis = None, b: ArrayLike | None = None, keepdims: bool = False, *,
              return_sign: Literal[True], backend: str | None = None) -> tuple[Any, Any]: ...
@overload
def logsumexp(a: ArrayLike, axis: Axis = None, b: ArrayLike | None = None, keepdims: bool = False,
              return_sign: bool = False, *, backend: str | None = None) -> Any: ...
def logsumexp(a: ArrayLike, axis: Axis = None, b: ArrayLike | None = None, keepdims: bool = False,
              return_sign: bool = False, *, backend: str | None = None) -> Any:
    """log(sum(exp(a))) along `axis`, as scipy.special.logsumexp (weights `b`, `keepdims`, `return_sign`)."""
    if backend is None and b is None and not return_sign and _fast_logsumexp is not None:
        result = _fast_logsumexp(a, axis, keepdims)
        if result is not NotImplemented:
            return result
    if is_dask(a) or is_dask(b):
        from . import _dask
        return _dask.logsumexp(a, axis=axis, b=b, keepdims=keepdims, return_sign=return_sign, backend=backend)
    return _compute.logsumexp(a, axis, b, keepdims, return_sign, backend)


