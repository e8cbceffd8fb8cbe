"""Properties every backend keeps for any finite input: hypothesis looks for a counterexample."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fastsoftmax

from .util import BACKENDS

pytestmark = pytest.mark.parametrize("backend", BACKENDS)


@st.composite
def lines(draw, max_rows=6, max_length=70):
    """A 2-D float32 or float64 array of finite values with a spread from tiny to large, and an axis."""
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    shape = draw(hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=max_length))
    scale = draw(st.sampled_from([1e-3, 1.0, 10.0, 100.0]))
    values = draw(hnp.arrays(dtype, shape, elements=st.floats(-1, 1, width=32)))
    return (values.astype(np.float64) * scale).astype(dtype), draw(st.sampled_from([0, 1, -1, None]))


def eps(x):
    return float(np.finfo(x.dtype).eps)


@settings(max_examples=60, deadline=None)
@given(case=lines())
def test_softmax_sums_to_one_and_lies_in_0_1(backend, case):
    x, axis = case
    y = fastsoftmax.softmax(x, axis=axis, backend=backend)
    assert np.all((y >= 0) & (y <= 1))
    n = x.size if axis is None else x.shape[axis]
    np.testing.assert_allclose(np.sum(y, axis=axis, dtype=np.float64), 1.0, atol=(4 + np.sqrt(n)) * eps(x))


@settings(max_examples=60, deadline=None)
@given(case=lines(), shift=st.sampled_from([-50.0, 3.0, 64.0]))
def test_shift_invariance(backend, case, shift):
    x, axis = case
    # a power-of-two-friendly shift keeps x + shift exact for these magnitudes, so the outputs must agree closely
    shifted = (x.astype(np.float64) + shift).astype(x.dtype)
    if not np.array_equal(shifted.astype(np.float64) - shift, x.astype(np.float64)):
        return
    a = fastsoftmax.softmax(x, axis=axis, backend=backend)
    b = fastsoftmax.softmax(shifted, axis=axis, backend=backend)
    np.testing.assert_allclose(a, b, rtol=64 * eps(x), atol=np.finfo(x.dtype).smallest_normal)


@settings(max_examples=60, deadline=None)
@given(case=lines())
def test_argmax_is_kept(backend, case):
    x, axis = case
    y = fastsoftmax.softmax(x, axis=axis, backend=backend)
    # where the largest input is unique and clearly apart, the largest output is at the same place
    top2 = np.sort(x, axis=axis)
    if axis is None:
        top2 = top2[-2:] if x.size > 1 else None
        if top2 is None or top2[1] - top2[0] > 1e-3:
            assert np.argmax(y) == np.argmax(x)
    else:
        xm = np.moveaxis(x, axis, -1)
        ym = np.moveaxis(y, axis, -1)
        srt = np.sort(xm, axis=-1)
        clear = (srt[..., -1] - srt[..., -2] > 1e-3) if xm.shape[-1] > 1 else np.ones(xm.shape[:-1], bool)
        assert np.array_equal(np.argmax(ym, -1)[clear], np.argmax(xm, -1)[clear])


@settings(max_examples=60, deadline=None)
@given(case=lines())
def test_log_softmax_is_log_of_softmax_and_logsumexp_agrees(backend, case):
    x, axis = case
    y = fastsoftmax.softmax(x, axis=axis, backend=backend).astype(np.float64)
    log_y = fastsoftmax.log_softmax(x, axis=axis, backend=backend).astype(np.float64)
    lse = np.asarray(fastsoftmax.logsumexp(x, axis=axis, keepdims=True, backend=backend), np.float64)
    normal = y > np.finfo(x.dtype).smallest_normal * 16
    span = np.abs(x.astype(np.float64)).max() + 1
    with np.errstate(divide="ignore"):
        np.testing.assert_allclose(np.log(y[normal]), log_y[normal], rtol=0, atol=16 * eps(x) * span)
    np.testing.assert_allclose(log_y, x.astype(np.float64) - lse, rtol=0, atol=16 * eps(x) * span)
