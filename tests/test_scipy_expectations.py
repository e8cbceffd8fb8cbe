"""scipy.special's own expectations for softmax, log_softmax and logsumexp, and the worked examples people know.

Values marked mpmath were computed by scipy's authors with mpmath at 200 digits; we hold every backend to them."""
import math
import warnings

import numpy as np
import pytest

import fastsoftmax

from .util import BACKENDS

pytestmark = pytest.mark.parametrize("backend", BACKENDS)
close = np.testing.assert_allclose
equal = np.testing.assert_array_equal


def sm(x, axis=None, **kw):
    return fastsoftmax.softmax(x, axis=axis, **kw)


# ---- worked examples ---------------------------------------------------------------------------------------------

def test_ice_cream_example(backend):
    # [0.8438, 0.1142, 0.0420] and 70/25/5 % circulate in tutorials; the arithmetic says otherwise
    close(sm([8, 5, 2], backend=backend).round(4), [0.9503, 0.0473, 0.0024], atol=0)


def test_three_one_half_example(backend):
    close(sm([3.0, 1.0, 0.5], backend=backend).round(4), [0.8214, 0.1112, 0.0674], atol=0)


def test_large_inverse_temperature_gives_one_hot_without_warnings(backend):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = sm(500 * np.array([1.0, 0.95, 0.0]), backend=backend)
    equal(y.round(10), [1.0, 0.0, 0.0])
    total = 1 + math.exp(-25.0) + math.exp(-500.0)
    close(y, [1 / total, math.exp(-25.0) / total, math.exp(-500.0) / total], rtol=1e-14, atol=0)


def test_negative_log_softmax_at_target_is_cross_entropy(backend):
    logits = np.array([[2.0, 1.0, 0.1], [0.5, 2.5, -1.0]])
    target = np.array([0, 1])
    by_hand = [-math.log(math.exp(row[t]) / sum(math.exp(v) for v in row)) for row, t in zip(logits, target)]
    got = -fastsoftmax.log_softmax(logits, axis=1, backend=backend)[np.arange(2), target]
    close(got, by_hand, rtol=1e-14)


# ---- scipy's softmax tests ---------------------------------------------------------------------------------------

def test_softmax_fixtures(backend):
    close(sm(np.array([1000., 0., 0., 0.]), backend=backend), [1., 0., 0., 0.], rtol=1e-13)
    close(sm(np.array([1., 1.]), backend=backend), [.5, .5], rtol=1e-13)
    close(sm(np.array([0., 1.]), backend=backend), np.array([1., np.e]) / (1 + np.e), rtol=1e-13)
    x = np.arange(4.0)
    expected = [0.03205860328008499, 0.08714431874203256, 0.23688281808991013, 0.6439142598879722]  # mpmath
    close(sm(x, backend=backend), expected, rtol=1e-13)
    close(sm(x + 100, backend=backend), expected, rtol=1e-13)
    close(sm(x.reshape(2, 2), backend=backend), np.reshape(expected, (2, 2)), rtol=1e-13)


def test_softmax_multi_axes(backend):
    x2 = np.array([[1000., 0.], [1000., 0.]])
    close(sm(x2, axis=0, backend=backend), [[.5, .5], [.5, .5]], rtol=1e-13)
    close(sm(x2, axis=1, backend=backend), [[1., 0.], [1., 0.]], rtol=1e-13)
    x = np.array([[-25., 0., 25., 50.], [1., 325., 749., 750.]])
    expected = np.array([[2.678636961770877e-33, 1.9287498479371314e-22, 1.3887943864771144e-11,
                          0.999999999986112],
                         [0.0, 1.9444526359919372e-185, 0.2689414213699951, 0.7310585786300048]])  # mpmath
    close(sm(x, axis=1, backend=backend), expected, rtol=1e-13)
    close(sm(x.T, axis=0, backend=backend), expected.T, rtol=1e-13)
    close(sm(x.reshape(2, 2, 2), axis=(1, 2), backend=backend), expected.reshape(2, 2, 2), rtol=1e-13)


def test_softmax_int_scalar_and_array_like(backend):
    close(sm(np.array([1000, 0, 0, 0]), backend=backend), [1., 0., 0., 0.], rtol=1e-13)
    assert sm(1000, backend=backend) == 1.0
    close(sm([1000, 0, 0, 0], backend=backend), [1., 0., 0., 0.], rtol=1e-13)


# ---- scipy's log_softmax tests -----------------------------------------------------------------------------------

LOG_SOFTMAX_ARANGE4 = [-3.4401896985611953, -2.4401896985611953, -1.4401896985611953, -0.44018969856119533]  # mpmath


def test_log_softmax_basic_int_scalar_array_like(backend):
    close(fastsoftmax.log_softmax(np.array([1000., 1.]), backend=backend), [0., -999.], rtol=1e-13)
    close(fastsoftmax.log_softmax(np.array([1000, 1]), backend=backend), [0., -999.], rtol=1e-13)
    assert fastsoftmax.log_softmax(1.0, backend=backend) == 0.0
    close(fastsoftmax.log_softmax([1000, 1], backend=backend), [0., -999.], rtol=1e-13)


@pytest.mark.parametrize("offset", [0, 100])
def test_log_softmax_translation(backend, offset):
    close(fastsoftmax.log_softmax(np.arange(4.0) + offset, backend=backend), LOG_SOFTMAX_ARANGE4, rtol=1e-13)


def test_log_softmax_axes(backend):
    expect = np.array([LOG_SOFTMAX_ARANGE4, LOG_SOFTMAX_ARANGE4])
    x = np.arange(8.0).reshape(2, 4)
    ls = fastsoftmax.log_softmax
    close(ls(np.arange(4.0).reshape(2, 2), backend=backend), np.reshape(LOG_SOFTMAX_ARANGE4, (2, 2)), rtol=1e-13)
    close(ls(x, axis=1, backend=backend), expect, rtol=1e-13)
    close(ls(x.T, axis=0, backend=backend), expect.T, rtol=1e-13)
    close(ls(x.reshape(2, 2, 2), axis=(1, 2), backend=backend), expect.reshape(2, 2, 2), rtol=1e-13)
    x = np.array([[1000., 1.], [1000., 1.]])
    close(ls(x, axis=0, backend=backend), np.log(0.5) * np.ones((2, 2)), rtol=1e-13)
    close(ls(x, axis=1, backend=backend), [[0., -999.], [0., -999.]], rtol=1e-13)


# ---- scipy's logsumexp tests -------------------------------------------------------------------------------------

def lse(*args, **kw):
    return fastsoftmax.logsumexp(*args, **kw)


def test_logsumexp(backend):
    assert lse(np.array([]), backend=backend) == -np.inf
    a = np.arange(200.)
    close(lse(a, backend=backend), np.log(np.sum(np.exp(a))), rtol=1e-15)
    close(lse(np.array([1000., 1000.]), backend=backend), 1000.0 + math.log(2.0), rtol=1e-15)
    close(lse(np.full(1000, 10000), backend=backend), 10000.0 + math.log(1000), rtol=1e-15)
    x = np.full(1_000_000, 1e-40)
    log_x = np.stack([np.log(x), np.log(x)])
    close(np.exp(lse(log_x, backend=backend)), 2 * x.sum(), rtol=1e-13)
    close(np.exp(lse(log_x, axis=0, backend=backend)), 2 * x, rtol=1e-13)
    close(np.exp(lse(log_x, axis=1, backend=backend)), [x.sum()] * 2, rtol=1e-13)
    assert lse(np.array([np.inf]), backend=backend) == np.inf
    assert lse(np.array([-np.inf]), backend=backend) == -np.inf
    assert np.isnan(lse(np.array([np.nan]), backend=backend))
    assert lse(np.array([-np.inf, -np.inf]), backend=backend) == -np.inf
    a = np.array([[1e10, 1e-10], [-1e10, -np.inf]])
    close(lse(a, axis=-1, backend=backend), [1e10, -1e10], rtol=1e-15)
    close(lse(a, axis=-1, keepdims=True, backend=backend), [[1e10], [-1e10]], rtol=1e-15)
    close(lse(a, axis=(-1, -2), backend=backend), 1e10, rtol=1e-15)


def test_logsumexp_b(backend):
    a = np.arange(200.)
    b = np.arange(200., 0., -1.)
    close(lse(a, b=b, backend=backend), np.log(np.sum(b * np.exp(a))), rtol=1e-13)
    close(lse(np.array([1000, 1000]), b=np.array([1.2, 1.2]), backend=backend), 1000 + math.log(2 * 1.2))
    x = np.full(100_000, 1e-40)
    b = np.linspace(1, 1000, 100_000)
    log_x, big_b = np.stack([np.log(x)] * 2), np.stack([b, b])
    close(np.exp(lse(log_x, b=big_b, backend=backend)), np.sum(big_b * x), rtol=1e-13)
    close(np.exp(lse(log_x, b=big_b, axis=0, backend=backend)), 2 * b * x, rtol=1e-13)
    close(lse(np.array([1, 10000]), b=np.array([1, 0]), backend=backend), 1.0)


def test_logsumexp_sign(backend):
    r, s = lse(np.array([1, 1, 1]), b=np.array([1, -1, -1]), return_sign=True, backend=backend)
    close(r, 1.0)
    assert s == -1.0
    r, s = lse(np.array([1, 1]), b=np.array([1, -1]), return_sign=True, backend=backend)
    assert r == -np.inf and s == 0
    r, s = lse(np.ones((1, 2, 3, 4)), axis=2, b=np.ones((1, 2, 3, 4)), return_sign=True, backend=backend)
    assert r.shape == s.shape == (1, 2, 4)
    r, s = lse(np.ones((1, 2, 3, 4)), axis=(1, 3), b=np.ones((1, 2, 3, 4)), return_sign=True, backend=backend)
    assert r.shape == s.shape == (1, 3)
    assert lse(np.ones((1, 2, 3, 4)), axis=2, backend=backend).shape == (1, 2, 4)
    assert lse(np.zeros((4, 1, 2, 1)), b=np.ones((3, 1, 5)), backend=backend) == pytest.approx(math.log(120))


def test_logsumexp_sign_without_weights(backend):
    a = np.array([[1.0, 2.0], [-np.inf, -np.inf], [np.inf, 0.0], [np.nan, 1.0]])
    r, s = lse(a, axis=1, return_sign=True, backend=backend)
    equal(s, [1.0, 0.0, 1.0, np.nan])
    equal(r[1:3], [-np.inf, np.inf])


def test_logsumexp_complex(backend):
    a = np.array([1 + 1j, 2 - 1j, -2 + 3j])
    r, s = lse(a, return_sign=True, backend=backend)
    total = np.sum(np.exp(a))
    close(s, total / abs(total))
    close(s * np.exp(r), total)
    rng = np.random.default_rng(324984329582349862)
    x = rng.uniform(1, 40, (10, 100)) + 1j * rng.uniform(1, 40, (10, 100))
    res = lse(x, axis=1, backend=backend)
    assert np.all(np.abs(res.imag) < np.pi)
    close(res, np.log(np.sum(np.exp(x), axis=1)))
    res = lse(np.array([0, 2.2204460492503132e-17j]), backend=backend)  # gh-21709, mpmath reference
    close(res.real, 0.6931471805599453)
    close(res.imag, 1.1102230246251566e-17, rtol=1e-15, atol=0)


def test_logsumexp_precision_and_weight_sign_issues(backend):
    close(lse(np.array([0.0, -40.0]), backend=backend), np.logaddexp(0.0, -40.0), rtol=1e-15)  # gh-18295
    a = np.array([3.06409428, 0.37251854, 3.87471931])
    b = np.array([1.88190708, 2.84174795, -0.85016884])
    close(lse(a, b=b, backend=backend), lse(a, b=b, return_sign=True, backend=backend)[0])  # gh-22903
    assert np.isnan(lse(a, b=np.array([1.88190708, 2.84174795, -3.85016884]), backend=backend))
    val, sign = lse(np.array([np.inf]), return_sign=True, backend=backend)  # gh-23548
    assert val == np.inf and sign == 1.0
    val, sign = lse(np.array([np.inf]), b=np.array([-1.0]), return_sign=True, backend=backend)
    assert val == np.inf and sign == -1.0


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_logsumexp_dtypes(backend, dtype):
    a = np.array([1.0, 2.0], dtype=dtype)
    assert lse(a, backend=backend).dtype == dtype
    assert lse(a, b=np.array([1.0, -1.0], dtype=dtype), backend=backend).dtype == dtype
    close(lse(a, b=np.array([-1.0, 1.0], dtype=dtype), backend=backend), math.log(math.exp(2) - math.exp(1)),
          rtol=float(np.finfo(dtype).eps) * 8)
    assert lse(np.array([1, 2]), b=np.array([1, 1], dtype=np.float32), backend=backend).dtype == np.float64


def test_logsumexp_does_not_write_back(backend):
    a, b = np.array([5., 4.]), np.array([3., 2.])
    lse(a, backend=backend)
    lse(a, b=b, backend=backend)
    equal(a, [5., 4.])
    equal(b, [3., 2.])
