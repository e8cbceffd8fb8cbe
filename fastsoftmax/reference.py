"""The numpy backend: the readable definition of what every backend computes.

Each function reduces over axis 1 of a canonical (outer, n, inner) array and writes into `out`; the package has
already validated the input (see fastsoftmax/_layout.py). This is also the fallback for what the compiled kernels
do not cover: complex, long double, weighted logsumexp.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from numpy.typing import NDArray


def softmax(x: NDArray[np.inexact[Any]], out: NDArray[np.inexact[Any]], n_threads: int = 1, temperature: float = 1.0,
            out_is_new: bool = True) -> None:
    with np.errstate(all="ignore"):
        np.subtract(x, x.max(axis=1, keepdims=True), out=out)
        if temperature != 1:
            out /= temperature  # softmax(x / T) as exp((x - max) / T): x / T itself may overflow
        np.exp(out, out=out)
        out /= out.sum(axis=1, keepdims=True, dtype=_accumulator(x.dtype))


def log_softmax(x: NDArray[np.inexact[Any]], out: NDArray[np.inexact[Any]], n_threads: int = 1,
                temperature: float = 1.0, out_is_new: bool = True) -> None:
    with np.errstate(all="ignore"):
        m, log_total = _shift_and_log_total(x, temperature)
        np.subtract(x, m, out=out)
        if temperature != 1:
            out /= temperature
        out -= log_total


def logsumexp(x: NDArray[np.inexact[Any]], out: NDArray[np.inexact[Any]], n_threads: int = 1) -> None:
    with np.errstate(all="ignore"):
        m, log_total = _shift_and_log_total(x)
        out[...] = (m + log_total)[:, 0, :]


def _shift_and_log_total(x, temperature=1.0):
    """Per line, m = the max (0 where it is not finite) and log(sum(exp((x - m) / temperature))).

    The max's own term, exactly 1, is kept out of the sum so that log1p resolves totals just above 1 (scipy
    gh-18295). Shifting non-finite lines by 0 is scipy's choice; it makes their results come out as scipy's."""
    m = x.max(axis=1, keepdims=True)
    is_max = x == m
    count = is_max.sum(axis=1, keepdims=True)
    others = np.where(is_max, 0, np.exp((x - m) / temperature)).sum(axis=1, keepdims=True,
                                                                  dtype=_accumulator(x.dtype))
    finite = np.isfinite(m)
    m = np.where(finite, m, 0)
    direct = np.log(np.exp((x - m) / temperature).sum(axis=1, keepdims=True, dtype=_accumulator(x.dtype)))
    return m, np.where(finite, np.log(count) + np.log1p(others / count), direct).astype(x.dtype)


def _accumulator(dtype):
    """Sum float32 terms in float64: a float32 sum of 10^6 terms is off by hundreds of eps."""
    return np.promote_types(dtype, np.float64)


def weighted_logsumexp(a: NDArray[np.inexact[Any]], b: NDArray[np.inexact[Any]] | None, axes: tuple[int, ...],
                       return_sign: bool) -> tuple[NDArray[np.inexact[Any]], NDArray[np.inexact[Any]]]:
    """Return (log|sum(b * exp(a))|, sign) over `axes` of full arrays, keepdims-shaped; `b` may be None.

    scipy's algorithm, for weights and complex input: the largest term is factored out as m and the rest summed
    as s, so that log(m * (1 + s)) = log1p(s) + log(m) stays accurate when s is small. Where that is not finite
    (inf inputs, total cancellation) the direct log(sum(b * exp(a))) is used, as in scipy."""
    with np.errstate(all="ignore"):
        total = np.sum(np.exp(a) if b is None else b * np.exp(a), axis=axes, keepdims=True)
        if b is not None:
            a = np.where(b == 0, -np.inf, a)
        a_max = np.max(a.real, axis=axes, keepdims=True)
        is_max = a.real == a_max
        if np.iscomplexobj(a):  # the last element with the largest real part carries the phase
            index = np.where(is_max, np.arange(a.size).reshape(a.shape), -1)
            is_max = index == index.max(axis=axes, keepdims=True)
            a_max = np.sum(np.where(is_max, a, 0), axis=axes, keepdims=True)
        m = np.sum(is_max if b is None else b * is_max, axis=axes, keepdims=True, dtype=a.dtype)
        terms = np.exp(np.where(is_max, -np.inf, a) - a_max)
        s = np.sum(terms if b is None else b * terms, axis=axes, keepdims=True, dtype=a.dtype)
        s = np.where(s == 0, s, s / m)
        sign = np.sign(s + 1) * np.sign(m)
        if np.iscomplexobj(a):
            sign = sign * np.exp(1j * a_max.imag)
        else:
            s = np.where(s < -1, -s - 2, s)
            m = np.abs(m)
        out = np.log1p(s) + np.log(m) + a_max
        if return_sign:
            out = out.real
        elif not np.iscomplexobj(out):
            out = np.where(sign < 0, np.nan, out)

        finite = np.isfinite(out)
        out = np.where(finite, out, np.log(np.abs(total) if return_sign else total))
        sign = np.where(finite, sign, np.sign(total))
        if np.iscomplexobj(a):
            if return_sign:
                sign = sign.real + 1j * _wrap_radians(sign.imag)
            else:
                out = out.real + 1j * _wrap_radians(out.imag)
    return out, sign


def _wrap_radians(angle):
    """Map angles into (-pi, pi], scipy's convention for the imaginary part of a complex logarithm."""
    return np.where(np.abs(angle) < np.pi, angle, -((-angle + np.pi) % (2 * np.pi) - np.pi))
