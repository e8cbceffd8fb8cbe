"""The long-double reference (a 64-bit mantissa on x86-64) that the tests, the benchmarks and `bench` compare with.

softmax, log_softmax and logsumexp with scipy.special's results on nan and inf; the training-loop operations
(softmax_backward, log_softmax_backward, cross_entropy) with torch's definitions; and the error of a result in
units in the last place of the exact value.
"""
import numpy as np

LD = np.longdouble


def exact(func, x, axis=None, temperature=1):
    """func(x / temperature, axis) in long double, with scipy's results on nan and inf; also for tuple axes and
    0-d input. x / temperature is never formed: (x - max) / temperature cannot overflow where it would."""
    a = np.asarray(x).astype(LD)
    t = LD(temperature)
    if func == "logsumexp":
        a = np.atleast_1d(a)
    with np.errstate(all="ignore"):
        m = np.max(a, axis=axis, keepdims=True) if a.size else np.zeros((1,) * a.ndim, a.dtype)
        if func == "softmax":
            e = np.exp((a - m) / t)
            return e / np.sum(e, axis=axis, keepdims=True)
        finite_m = np.where(np.isfinite(m), m, 0)
        log_total = np.log(np.sum(np.exp((a - finite_m) / t), axis=axis, keepdims=True))
        # near 0 (a peaked line) log(1 + tiny) would cost even long double its digits: count the max's own terms
        # apart and take log1p of the rest
        is_max = a == m
        count = np.sum(is_max, axis=axis, keepdims=True, dtype=LD)  # log of an integer count would be float64
        others = np.sum(np.where(is_max, 0, np.exp((a - m) / t)), axis=axis, keepdims=True)
        log_total = np.where(np.isfinite(m) & (count > 0), np.log(count) + np.log1p(others / count), log_total)
        if func == "log_softmax":
            return (a - finite_m) / t - log_total
        return np.squeeze(log_total + finite_m, axis=axis)


def line_length(shape, axis):
    """How many elements each reduction line has."""
    if axis is None:
        return max(1, int(np.prod(shape)))
    axes = axis if isinstance(axis, tuple) else (axis,)
    return max(1, int(np.prod([shape[a] for a in axes])))


# ---- the training-loop operations (torch's documented formulas) ----------------------------------------------------

def exact_softmax_backward(y, g, axis):
    """The gradient with respect to softmax's input, given its output y and the gradient g at y."""
    y, g = np.asarray(y).astype(LD), np.asarray(g).astype(LD)
    return y * (g - (g * y).sum(axis=axis, keepdims=True))


def exact_log_softmax_backward(y_log, g, axis):
    """The gradient with respect to log_softmax's input, given its output y_log and the gradient g at y_log."""
    y_log, g = np.asarray(y_log).astype(LD), np.asarray(g).astype(LD)
    return g - np.exp(y_log) * g.sum(axis=axis, keepdims=True)


def exact_cross_entropy(x, target, axis=-1, reduction="mean", ignore_index=-100, label_smoothing=0.0, weight=None):
    """(loss, grad) in long double, torch's definition; grad is that of the reduced loss (of the summed losses
    for reduction="none"). Classes are moved to the last axis and lines flattened."""
    x = np.moveaxis(np.asarray(x).astype(LD), axis, -1)
    shape, n = x.shape, x.shape[-1]
    x = x.reshape(-1, n)
    ls = LD(label_smoothing)
    w = np.ones(n, LD) if weight is None else np.asarray(weight).astype(LD)
    log_p = exact("log_softmax", x, -1)
    # torch: a line holding +inf is nan throughout (scipy's log_softmax keeps -inf at its finite entries)
    log_p[np.isposinf(x).any(axis=-1)] = np.nan
    p = np.exp(log_p)
    target = np.asarray(target)
    if target.dtype.kind == "f":  # probabilities
        q = np.moveaxis(target.astype(LD), axis, -1).reshape(-1, n) * (1 - ls) + ls / n
        wq = w * q
        with np.errstate(invalid="ignore"):
            lines = -np.where(wq == 0, 0, wq * log_p).sum(axis=-1)
        grad = p * wq.sum(axis=-1, keepdims=True) - wq
        denominator = LD(x.shape[0])
    else:
        t = target.reshape(-1)
        ignored = t == ignore_index
        ts = np.where(ignored, 0, t)
        rows = np.arange(len(t))
        w_t = np.where(ignored, 0, w[ts])
        with np.errstate(invalid="ignore"):
            lines = -(1 - ls) * w_t * log_p[rows, ts]
            if label_smoothing:
                lines = lines - ls / n * (w * log_p).sum(axis=-1)
        lines = np.where(ignored, 0, lines)
        onehot = np.zeros_like(x)
        onehot[rows, ts] = 1
        grad = p * ((1 - ls) * w_t + ls / n * w.sum())[:, None] - ((1 - ls) * w_t[:, None] * onehot + ls / n * w)
        grad[ignored] = 0
        denominator = w_t.sum()
    if reduction == "none":
        loss = lines.reshape(shape[:-1])
    elif reduction == "sum":
        loss = lines.sum()
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            loss = lines.sum() / denominator
            grad = grad / denominator
    grad = np.moveaxis(grad.reshape(shape), -1, axis)
    return loss, grad


# ---- errors in units in the last place -----------------------------------------------------------------------------

def ulp_errors(got, want, dtype):
    """|got - want| per element, in units of the last place of `want` rounded to `dtype` (in long double)."""
    want = np.asarray(want)
    with np.errstate(over="ignore"):  # beyond the dtype's range the spacing is nan: no ULP measure there
        spacing = np.spacing(np.abs(want).astype(dtype)).astype(LD)
    return np.abs(np.asarray(got).astype(LD) - want) / spacing


def max_ulp(got, want, dtype=None):
    """The largest ulp_errors over the elements whose exact value `want` is a normal number of `dtype` (got's
    dtype by default); 0.0 where there are none."""
    got, want = np.asarray(got), np.asarray(want)
    dtype = got.dtype if dtype is None else np.dtype(dtype)
    normal = np.abs(want) >= np.finfo(dtype).smallest_normal
    errors = ulp_errors(got[normal], want[normal], dtype)
    return float(errors.max()) if errors.size else 0.0
