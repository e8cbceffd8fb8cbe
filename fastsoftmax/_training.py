"""Training-loop operations around softmax, fused so that no full-size temporary is made.

    softmax_backward(y, grad, axis)        y * (grad - sum(grad * y, axis))       the vector-Jacobian product of softmax
    log_softmax_backward(y_log, grad, axis)  grad - exp(y_log) * sum(grad, axis)  ... of log_softmax
    cross_entropy(logits, target, ...)     torch.nn.functional.cross_entropy, optionally with d loss / d logits

Layers: the public functions validate like the rest of the package (fastsoftmax/_validate.py) and map every input
onto the canonical (outer, n, inner) view of fastsoftmax/_layout.py; the backend the dispatcher picks
(fastsoftmax/_dispatch.py choose_training: the ones declaring TRAINING) then computes over axis 1 of that view: the
compiled kernels (src_cython/cython_training.pyx, module fastsoftmax._backends.cython_training), or the readable
numpy definitions in the "numpy reference" section below, which are also the fallback for what the kernels do not
cover (cross entropy over columns, i.e. a class axis that is not the last one in memory).

The public functions' overloads are for type checkers only (the last definition is the one that runs): what they
promise is in fastsoftmax/_types.py.
"""
from __future__ import annotations

import math
import numbers
import operator
from typing import TYPE_CHECKING, Any, Literal, SupportsIndex, overload

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

    from ._types import Axis, FloatT

from . import _dispatch
from ._layout import Layout
from ._validate import as_input as _as_input
from ._validate import axes as _axes
from ._validate import check_out as _check_out

_FLOAT16 = np.dtype(np.float16)
_FLOAT32 = np.dtype(np.float32)
_FAST = (np.dtype(np.float32), np.dtype(np.float64))
_REDUCTIONS = ("none", "mean", "sum")


# ---- numpy reference: each over axis 1 of C-contiguous (outer, n, inner) arrays, sums in float64 ----------------------

def softmax_backward_reference(y, g, out):
    """out = y * (g - sum(g * y)) along axis 1."""
    y64, g64 = y.astype(np.float64), g.astype(np.float64)
    s = np.sum(y64 * g64, axis=1, keepdims=True)
    np.copyto(out, y64 * (g64 - s), casting="unsafe")


def log_softmax_backward_reference(y_log, g, out):
    """out = g - exp(y_log) * sum(g) along axis 1."""
    g64 = g.astype(np.float64)
    s = np.sum(g64, axis=1, keepdims=True)
    with np.errstate(over="ignore", invalid="ignore"):
        np.copyto(out, g64 - np.exp(y_log.astype(np.float64)) * s, casting="unsafe")


def _log_softmax64(x):
    """log_softmax along axis 1 in float64 and softmax p; a line with nan, +inf or only -inf gives nan (torch)."""
    x = x.astype(np.float64)
    with np.errstate(all="ignore"):
        m = x.max(axis=1, keepdims=True)
        m = np.where(np.isfinite(m), m, np.nan)
        shifted = x - m
        log_total = np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        log_p = shifted - log_total
    return log_p, np.exp(log_p)


def cross_entropy_class_reference(x, t, w, ls, scale, loss, grad):
    """Per-line losses of class-index targets, torch's formula (nll_loss plus its label-smoothing term).

    x (outer, n, inner) logits; t (outer, inner) int64 classes, -1 where ignored; w (n,) float64 or None;
    loss (outer, inner) float64 receives, per line,
        (1 - ls) * w[t] * -log_p[t] + ls / n * sum_c w[c] * -log_p[c]        (0 where ignored)
    and grad (like x, or None) the gradient of that loss with respect to x, times `scale`:
        p * ((1 - ls) * w[t] + ls / n * sum(w)) - ((1 - ls) * w[t] * onehot(t) + ls / n * w)
    """
    n = x.shape[1]
    w = np.ones(n) if w is None else w
    log_p, p = _log_softmax64(x)
    ignored = t < 0
    t_safe = np.where(ignored, 0, t)
    w_t = w[t_safe]                                                            # (outer, inner)
    onehot = np.arange(n)[None, :, None] == t_safe[:, None, :]                 # (outer, n, inner)
    with np.errstate(invalid="ignore"):
        nll = -np.take_along_axis(log_p, t_safe[:, None, :], axis=1)[:, 0, :]
        line = w_t * nll
        if ls:
            line = (1 - ls) * line + ls / n * -(w[None, :, None] * log_p).sum(axis=1)
        loss[...] = np.where(ignored, 0.0, line)
        if grad is not None:
            g = (p * ((1 - ls) * w_t + ls / n * w.sum())[:, None, :]
                 - ((1 - ls) * w_t[:, None, :] * onehot + ls / n * w[None, :, None]))
            np.copyto(grad, np.where(ignored[:, None, :], 0.0, g * scale), casting="unsafe")


def cross_entropy_prob_reference(x, q, w, ls, scale, loss, grad):
    """Per-line losses of probability targets q (like x): sum_c wq[c] * -log_p[c], wq = w * (q * (1 - ls) + ls / n).

    A class whose wq is 0 contributes 0 even where log_p is -inf (torch gives nan there). grad = (p * sum(wq) - wq)
    times `scale`."""
    n = x.shape[1]
    w = np.ones(n) if w is None else w
    log_p, p = _log_softmax64(x)
    wq = (q.astype(np.float64) * (1 - ls) + ls / n) * w[None, :, None]
    with np.errstate(invalid="ignore"):
        loss[...] = -np.where(wq == 0, 0.0, wq * log_p).sum(axis=1)
        if grad is not None:
            np.copyto(grad, (p * wq.sum(axis=1, keepdims=True) - wq) * scale, casting="unsafe")


# ---- validation helpers -------------------------------------------------------------------------------------------

def _as_real(x, func, name):
    """`x` as a native float array: ints and bools become float64; float16/32/64 and long double stay
    (_validate.as_input's rules, without complex)."""
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{func}: {name} must be a real numeric array, got dtype {a.dtype}")
    return _as_input(a, func)


def _kernels(backend, func):
    """The compiled training kernels this call uses, or None for the numpy definitions below."""
    module = _dispatch.choose_training(func, backend)
    return module.training() if module.NAME == "cython" else None


def _same_memory(a, b):
    """Whether two C-contiguous views are the very same elements (then elementwise in-place work is safe)."""
    return (a.shape == b.shape and a.dtype == b.dtype
            and a.__array_interface__["data"][0] == b.__array_interface__["data"][0])


def backends() -> tuple[str, ...]:
    """Backends of the training operations usable here."""
    return tuple(name for name in _dispatch.available() if _dispatch.backend_module(name).TRAINING)


# ---- softmax_backward / log_softmax_backward ----------------------------------------------------------------------

def _backward(func, y, grad, axis, out, backend):
    y = _as_real(y, func, "y" if func == "softmax_backward" else "y_log")
    grad = _as_real(grad, func, "grad")
    if y.shape != grad.shape:
        raise ValueError(f"{func}: y and grad must have the same shape, got {y.shape} and {grad.shape}")
    dtype = np.result_type(y.dtype, grad.dtype)
    layout = Layout(y, _axes(axis, y.ndim, func))
    if out is not None:
        _check_out(out, y.shape, dtype, func)
    result = out if out is not None else layout.new_output(dtype)
    if y.size == 0:
        return result

    compute = _FLOAT32 if dtype == _FLOAT16 else dtype
    kernels = _kernels(backend, func)
    if compute not in _FAST:
        kernels = None
    y3 = layout.view3(y.astype(compute, copy=False))
    g3 = layout.view3(grad.astype(compute, copy=False))
    o3 = layout.writable_view3(result) if compute == dtype else None
    if o3 is not None and ((np.may_share_memory(o3, y3) and not _same_memory(o3, y3))
                           or (np.may_share_memory(o3, g3) and not _same_memory(o3, g3))):
        o3 = None  # partial overlap with an input: compute aside
    direct = o3 is not None
    if not direct:
        o3 = np.empty(layout.shape3, compute)
    if kernels is not None:
        getattr(kernels, func)(y3, g3, o3, _dispatch.threads_for(y.size))
    else:
        (softmax_backward_reference if func == "softmax_backward" else log_softmax_backward_reference)(y3, g3, o3)
    if not direct:
        layout.copy_back(o3, result)
    return result if out is not None or result.ndim else result[()]


@overload
def softmax_backward(y: NDArray[FloatT], grad: NDArray[FloatT], axis: Axis, *, out: NDArray[FloatT] | None = None,
                     backend: str | None = None) -> NDArray[FloatT]: ...
@overload
def softmax_backward(y: ArrayLike, grad: ArrayLike, axis: Axis, *, out: NDArray[np.floating[Any]] | None = None,
                     backend: str | None = None) -> NDArray[np.floating[Any]]: ...
def softmax_backward(y: ArrayLike, grad: ArrayLike, axis: Axis, *, out: NDArray[np.floating[Any]] | None = None,
                     backend: str | None = None) -> Any:
    """Vector-Jacobian product of softmax: y * (grad - sum(grad * y, axis)), given y = softmax(x, axis).

    That is d/dx of sum(grad * softmax(x)). One pass over memory per line, sums in float64. `axis` is an int, a
    tuple of ints or None (all axes), as for fastsoftmax.softmax. y and grad must have the same shape; the result
    has their common dtype (float16 computed in float32, ints as float64). `out` may be `grad` itself (in place).
    `backend` forces one of the backends with training kernels, "numpy" or "cython" (default: cython when built).
    """
    return _backward("softmax_backward", y, grad, axis, out, backend)


@overload
def log_softmax_backward(y_log: NDArray[FloatT], grad: NDArray[FloatT], axis: Axis, *,
                         out: NDArray[FloatT] | None = None, backend: str | None = None) -> NDArray[FloatT]: ...
@overload
def log_softmax_backward(y_log: ArrayLike, grad: ArrayLike, axis: Axis, *,
                         out: NDArray[np.floating[Any]] | None = None,
                         backend: str | None = None) -> NDArray[np.floating[Any]]: ...
def log_softmax_backward(y_log: ArrayLike, grad: ArrayLike, axis: Axis, *,
                         out: NDArray[np.floating[Any]] | None = None, backend: str | None = None) -> Any:
    """Vector-Jacobian product of log_softmax: grad - exp(y_log) * sum(grad, axis), given y_log = log_softmax(x)."""
    return _backward("log_softmax_backward", y_log, grad, axis, out, backend)


# ---- cross_entropy ------------------------------------------------------------------------------------------------

def _check_label_smoothing(ls, func):
    if isinstance(ls, (bool, np.bool_)) or not isinstance(ls, numbers.Real):
        raise TypeError(f"{func}: label_smoothing must be a real number, got {ls!r}")
    ls = float(ls)
    if not 0.0 <= ls <= 1.0:
        raise ValueError(f"{func}: label_smoothing must be between 0.0 and 1.0, got {ls!r}")
    return ls


def _check_weight(weight, n_classes, func):
    if weight is None:
        return None
    w = np.asarray(weight)
    if w.dtype.kind not in "biuf":
        raise TypeError(f"{func}: weight must be a real numeric array, got dtype {w.dtype}")
    if w.shape != (n_classes,):
        raise ValueError(f"{func}: weight must be a 1-D array of length {n_classes} (the number of classes), "
                         f"got shape {w.shape}")
    return np.ascontiguousarray(w, dtype=np.float64)


def _class_targets(target, batch_shape, n_classes, ignore_index, func):
    """Targets as int64 with -1 where ignored; ValueError for wrong shape or classes out of range."""
    if target.dtype.kind not in "iu":
        raise TypeError(f"{func}: class-index targets must be an integer array (probability targets: a float array "
                        f"shaped like logits), got dtype {target.dtype}")
    if target.shape != batch_shape:
        raise ValueError(f"{func}: class-index target must have the batch shape {batch_shape} (logits' shape without "
                         f"axis), got shape {target.shape}")
    if target.dtype.kind == "u" and target.size and target.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{func}: target {target.max()} is out of range for {n_classes} classes")
    t = target.astype(np.int64)
    ignored = t == ignore_index
    bad = ~ignored & ((t < 0) | (t >= n_classes))
    if bad.any():
        raise ValueError(f"{func}: target {t[bad][0]} is out of range for {n_classes} classes "
                         f"(valid: 0..{n_classes - 1}, or ignore_index={ignore_index})")
    return np.where(ignored, -1, t)


# Float logits fix the dtype of loss and grad; a mean or sum is a scalar, reduction="none" the batch shape (a
# scalar for a single line of logits, hence `| Any`).
@overload
def cross_entropy(logits: NDArray[FloatT], target: ArrayLike, axis: SupportsIndex = -1, *,
                  reduction: Literal["mean", "sum"] = "mean", ignore_index: SupportsIndex = -100,
                  label_smoothing: float = 0.0, weight: ArrayLike | None = None, return_grad: Literal[False] = False,
                  backend: str | None = None) -> FloatT: ...
@overload
def cross_entropy(logits: NDArray[FloatT], target: ArrayLike, axis: SupportsIndex = -1, *, reduction: Literal["none"],
                  ignore_index: SupportsIndex = -100, label_smoothing: float = 0.0, weight: ArrayLike | None = None,
                  return_grad: Literal[False] = False, backend: str | None = None) -> NDArray[FloatT] | Any: ...
@overload
def cross_entropy(logits: NDArray[FloatT], target: ArrayLike, axis: SupportsIndex = -1, *,
                  reduction: Literal["mean", "sum"] = "mean", ignore_index: SupportsIndex = -100,
                  label_smoothing: float = 0.0, weight: ArrayLike | None = None, return_grad: Literal[True],
                  backend: str | None = None) -> tuple[FloatT, NDArray[FloatT]]: ...
@overload
def cross_entropy(logits: NDArray[FloatT], target: ArrayLike, axis: SupportsIndex = -1, *, reduction: Literal["none"],
                  ignore_index: SupportsIndex = -100, label_smoothing: float = 0.0, weight: ArrayLike | None = None,
                  return_grad: Literal[True],
                  backend: str | None = None) -> tuple[NDArray[FloatT] | Any, NDArray[FloatT]]: ...
@overload
def cross_entropy(logits: ArrayLike, target: ArrayLike, axis: SupportsIndex = -1, *,
                  reduction: Literal["none", "mean", "sum"] = "mean", ignore_index: SupportsIndex = -100,
                  label_smoothing: float = 0.0, weight: ArrayLike | None = None, return_grad: bool = False,
                  backend: str | None = None) -> Any: ...
def cross_entropy(logits: ArrayLike, target: ArrayLike, axis: SupportsIndex = -1, *,
                  reduction: Literal["none", "mean", "sum"] = "mean", ignore_index: SupportsIndex = -100,
                  label_smoothing: float = 0.0, weight: ArrayLike | None = None, return_grad: bool = False,
                  backend: str | None = None) -> Any:
    """Cross entropy of softmax(logits, axis) against `target`, as torch.nn.functional.cross_entropy.

    logits: float array, classes along `axis` (default the last). target: either class indices, an integer array
    of the batch shape (logits' shape without `axis`), where `ignore_index` marks lines that contribute 0 and are
    left out of the mean; or class probabilities, a float array shaped like logits. weight: per-class weights
    (length = number of classes). label_smoothing in [0, 1] mixes the target with the uniform distribution, as
    torch does (with weights and mean reduction too: the mean divides by the summed weights of the non-ignored
    targets; for probability targets by the number of lines). reduction: "none" (per-line losses, batch shape),
    "mean" or "sum" (a scalar). Mean over no line (all ignored, empty batch) is nan, like torch.

    return_grad=True returns (loss, grad), grad = d loss / d logits computed in the same pass (softmax - target,
    scaled by weights and reduction; 0 on ignored lines; for reduction="none", the gradient of the summed losses).
    Loss and grad have the logits' dtype (float16 computed in float32, ints as float64); sums are in float64.
    Stable for logits of any magnitude; a -inf logit elsewhere than the target is fine, at the target the loss is
    +inf; a line holding nan, +inf or only -inf gives nan. One deliberate difference from torch: with probability
    targets, a class of target probability 0 contributes 0 even where its logit is -inf (torch gives nan).
    `backend` forces "numpy" or "cython" (default: cython when built).
    """
    func = "cross_entropy"
    x = _as_real(logits, func, "logits")
    if x.ndim == 0:
        raise ValueError(f"{func}: logits must have at least one dimension (the classes)")
    try:
        axis_index = operator.index(axis)
    except TypeError:
        raise TypeError(f"{func}: axis must be an int, got {axis!r}") from None
    (class_axis,) = _axes(axis_index, x.ndim, func)
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        raise ValueError(f"{func}: reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    try:
        ignore_index = operator.index(ignore_index)
    except TypeError:
        raise TypeError(f"{func}: ignore_index must be an int, got {ignore_index!r}") from None
    ls = _check_label_smoothing(label_smoothing, func)
    n_classes = x.shape[class_axis]
    if n_classes == 0:
        raise ValueError(f"{func}: logits have no classes (axis {class_axis} has length 0)")
    w = _check_weight(weight, n_classes, func)

    t = np.asarray(target)
    batch_shape = x.shape[:class_axis] + x.shape[class_axis + 1:]
    if t.dtype.kind == "f" and t.shape == x.shape:
        probabilities = True
    elif t.dtype.kind == "f":
        raise ValueError(f"{func}: probability targets must have the logits' shape {x.shape}, got {t.shape} "
                         f"(class-index targets must be integers of shape {batch_shape})")
    elif t.dtype.kind in "iu":
        probabilities = False
    else:
        raise TypeError(f"{func}: target must be an integer (class indices) or float (probabilities) array, got "
                        f"dtype {t.dtype}")

    dtype = x.dtype
    compute = _FLOAT32 if dtype == _FLOAT16 else dtype
    layout = Layout(x, (class_axis,))
    x3 = layout.view3(x.astype(compute, copy=False))
    if probabilities:
        q3 = layout.view3(t.astype(compute, copy=False))
        lines = t.size // n_classes
        denominator = float(lines)
    else:
        t64 = _class_targets(t, batch_shape, n_classes, ignore_index, func)
        t2 = _targets2(layout, t64)
        valid = t2 >= 0
        denominator = float(w[t2[valid]].sum()) if w is not None else float(valid.sum())
    scale = 1.0
    if reduction == "mean":
        scale = 1.0 / denominator if denominator != 0 else math.inf

    kernels = _kernels(backend, func)
    if compute not in _FAST or layout.inner != 1:
        kernels = None  # the kernels cover float32/float64 lines contiguous in memory
    loss2 = np.empty((layout.outer, layout.inner), np.float64)
    grad3 = result_grad = None
    direct = False
    if return_grad:
        result_grad = layout.new_output(dtype)
        grad3 = layout.writable_view3(result_grad) if compute == dtype else None
        direct = grad3 is not None
        if not direct:
            grad3 = np.empty(layout.shape3, compute)
    if x.size:
        if kernels is not None:
            outer, n = layout.outer, layout.n
            grad2 = None if grad3 is None else grad3.reshape(outer, n)
            n_threads = _dispatch.threads_for(x.size)
            if probabilities:
                kernels.cross_entropy_prob(x3.reshape(outer, n), q3.reshape(outer, n), w, ls, scale,
                                           loss2.reshape(outer), grad2, n_threads)
            else:
                kernels.cross_entropy_class(x3.reshape(outer, n), np.ascontiguousarray(t2.reshape(outer)), w,
                                            ls, scale, loss2.reshape(outer), grad2, n_threads)
        elif probabilities:
            cross_entropy_prob_reference(x3, q3, w, ls, scale, loss2, grad3)
        else:
            cross_entropy_class_reference(x3, t2, w, ls, scale, loss2, grad3)
    if return_grad and not direct and x.size:
        layout.copy_back(grad3, result_grad)

    if reduction == "none":
        loss = layout.reduced(loss2).astype(dtype)
        loss = loss if loss.ndim else loss[()]
    else:
        with np.errstate(invalid="ignore"):
            total = loss2.sum()
            loss = dtype.type(total / denominator if reduction == "mean" and denominator != 0
                              else (np.nan if reduction == "mean" else total))
    return (loss, result_grad) if return_grad else loss


def _targets2(layout, t):
    """Class targets of the batch shape as the (outer, inner) array lining up with layout.view3 of the logits."""
    if layout.order == "F":
        return np.ascontiguousarray(t.T).reshape(layout.outer, layout.inner)
    return np.ascontiguousarray(t).reshape(layout.outer, layout.inner)
