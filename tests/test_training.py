"""softmax_backward, log_softmax_backward and cross_entropy (fastsoftmax/_training.py) on every backend.

Checked against: an independent long-double reference (fastsoftmax/_tools/exact.py, written from torch's
documented formulas), central finite differences in float64 for every gradient, and torch autograd when torch is
installed (skipped otherwise); plus layouts (axis != -1, Fortran order, strided views), out=, edge-case errors,
read-only inputs, and the README training-loop example.
"""
import itertools

import numpy as np
import pytest

import fastsoftmax
from fastsoftmax import _training
from fastsoftmax._tools.accuracy import assert_close
from fastsoftmax._tools.exact import exact, exact_cross_entropy, exact_log_softmax_backward, exact_softmax_backward
from fastsoftmax._training import cross_entropy, log_softmax_backward, softmax_backward

BACKENDS = _training.backends()
REDUCTIONS = ("none", "mean", "sum")


def _frozen(a):
    """A read-only copy: a kernel writing into its input would raise."""
    a = np.array(a)
    a.flags.writeable = False
    return a


def _rtol(dtype):
    return 2e-6 if np.dtype(dtype) == np.float32 else 1e-12


def _logits(rng, shape, dtype, scale=3.0):
    return (rng.normal(size=shape) * scale).astype(dtype)


def _targets(rng, batch_shape, n_classes, ignored_fraction=0.25, ignore_index=-100):
    t = rng.integers(0, n_classes, size=batch_shape)
    t[rng.random(batch_shape) < ignored_fraction] = ignore_index
    return t


def _probabilities(rng, shape, axis):
    q = rng.random(shape) ** 3
    return q / q.sum(axis=axis, keepdims=True)


# ---- cross_entropy against the long-double reference ---------------------------------------------------------------

CE_COMBOS = list(itertools.product(REDUCTIONS, (False, True), (0.0, 0.3)))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("reduction", "weighted", "ls"), CE_COMBOS)
def test_cross_entropy_class_targets(backend, dtype, reduction, weighted, ls):
    rng = np.random.default_rng(1)
    x = _frozen(_logits(rng, (37, 11), dtype))
    t = _frozen(_targets(rng, (37,), 11))
    w = _frozen(rng.uniform(0.2, 3.0, 11)) if weighted else None
    loss, grad = cross_entropy(x, t, reduction=reduction, label_smoothing=ls, weight=w, return_grad=True,
                               backend=backend)
    ref_loss, ref_grad = exact_cross_entropy(x, t, reduction=reduction, label_smoothing=ls, weight=w)
    assert grad.dtype == dtype and grad.shape == x.shape
    assert np.asarray(loss).dtype == dtype and np.shape(loss) == np.shape(ref_loss)
    assert_close(loss, ref_loss, _rtol(dtype), "loss")
    assert_close(grad, ref_grad, _rtol(dtype), "grad")
    assert np.all(grad[t == -100] == 0)
    only_loss = cross_entropy(x, t, reduction=reduction, label_smoothing=ls, weight=w, backend=backend)
    np.testing.assert_array_equal(only_loss, loss)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("reduction", "weighted", "ls"), CE_COMBOS)
def test_cross_entropy_probability_targets(backend, dtype, reduction, weighted, ls):
    rng = np.random.default_rng(2)
    x = _frozen(_logits(rng, (23, 9), dtype))
    q = _frozen(_probabilities(rng, (23, 9), -1).astype(dtype))
    w = _frozen(rng.uniform(0.2, 3.0, 9)) if weighted else None
    loss, grad = cross_entropy(x, q, reduction=reduction, label_smoothing=ls, weight=w, return_grad=True,
                               backend=backend)
    ref_loss, ref_grad = exact_cross_entropy(x, q, reduction=reduction, label_smoothing=ls, weight=w)
    assert_close(loss, ref_loss, _rtol(dtype), "loss")
    assert_close(grad, ref_grad, _rtol(dtype), "grad")


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", ["axis0", "axis1_of_3d", "fortran", "strided", "moved_target", "1d", "float16",
                                  "ints", "prob_axis1"])
def test_cross_entropy_layouts(backend, case):
    rng = np.random.default_rng(3)
    axis, w = -1, rng.uniform(0.5, 2.0, 7)
    if case == "axis0":
        x, axis = _logits(rng, (7, 13), np.float64), 0
        t = _targets(rng, (13,), 7)
    elif case == "axis1_of_3d":  # torch's (N, C, d) convention
        x, axis = _logits(rng, (4, 7, 5), np.float64), 1
        t = _targets(rng, (4, 5), 7)
    elif case == "fortran":
        x = np.asfortranarray(_logits(rng, (6, 3, 7), np.float64))
        t = np.asfortranarray(_targets(rng, (6, 3), 7))
    elif case == "strided":
        x = _logits(rng, (20, 15), np.float64)[::2, 1:15:2]
        t = _targets(rng, (20,), 7)[::2]
    elif case == "moved_target":
        x = _logits(rng, (5, 7), np.float64)
        t = _targets(rng, (10,), 7)[::2]
    elif case == "1d":
        x, t = _logits(rng, (7,), np.float64), np.array(3)
    elif case == "float16":
        x, t = _logits(rng, (9, 7), np.float16), _targets(rng, (9,), 7)
    elif case == "ints":
        x, t = rng.integers(-5, 5, (9, 7)), _targets(rng, (9,), 7)
    else:
        x, axis = _logits(rng, (3, 7, 4), np.float64), 1
        t = _probabilities(rng, (3, 7, 4), 1)
    x, t = _frozen(x) if case not in ("fortran", "strided") else x, t
    x_before, t_before = np.array(x), np.array(t)
    for reduction in REDUCTIONS:
        loss, grad = cross_entropy(x, t, axis, reduction=reduction, weight=w, label_smoothing=0.1, return_grad=True,
                                   backend=backend)
        ref_loss, ref_grad = exact_cross_entropy(x, t, axis, reduction=reduction, weight=w, label_smoothing=0.1)
        dtype = np.result_type(x.dtype, np.float16) if x.dtype.kind == "f" else np.float64
        assert grad.dtype == dtype and np.asarray(loss).dtype == dtype
        rtol = 2e-3 if dtype == np.float16 else 1e-12
        assert_close(loss, ref_loss, rtol, f"{case} {reduction} loss")
        assert_close(grad, ref_grad, rtol, f"{case} {reduction} grad")
    np.testing.assert_array_equal(x, x_before)
    np.testing.assert_array_equal(t, t_before)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_extreme_logits(backend, dtype):
    big = np.finfo(dtype).max / 4
    x = np.array([[0.0, -np.inf, 2.0, 1.0],      # -inf at a non-target class: fine
                  [0.0, -np.inf, 2.0, 1.0],      # -inf at the target: +inf
                  [big, -big, big / 2, 0.0],     # huge magnitudes
                  [-big, -big, -big, -big / 2],
                  [1e-30, 0.0, -1e-30, 0.0],
                  [50.0, -50.0, 0.0, 49.0]], dtype)
    t = np.array([0, 1, 2, 0, 1, 3])
    for ls, reduction in itertools.product((0.0, 0.2), REDUCTIONS):
        loss, grad = cross_entropy(x, t, reduction=reduction, label_smoothing=ls, return_grad=True, backend=backend)
        ref_loss, ref_grad = exact_cross_entropy(x, t, reduction=reduction, label_smoothing=ls)
        if reduction == "none":
            assert loss[1] == np.inf
            assert (loss[0] == np.inf) == (ls > 0)  # smoothing also scores the -inf class, as in torch
            assert_close(loss, ref_loss, _rtol(dtype), f"{ls} {reduction}")
        else:
            assert loss == np.inf
        assert np.isfinite(grad).all()
        assert_close(grad, ref_grad, _rtol(dtype), f"{ls} {reduction} grad")


@pytest.mark.parametrize("backend", BACKENDS)
def test_cross_entropy_nonfinite_lines_give_nan(backend):
    x = np.array([[np.nan, 0.0, 1.0], [np.inf, 0.0, 1.0], [-np.inf] * 3, [0.0, 1.0, 2.0]])
    loss, grad = cross_entropy(x, np.array([1, 1, 0, 2]), reduction="none", return_grad=True, backend=backend)
    assert np.isnan(loss[:3]).all() and np.isnan(grad[:3]).all()
    assert np.isfinite(loss[3]) and np.isfinite(grad[3]).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_probability_target_zero_at_minus_inf_contributes_nothing(backend):
    x = np.array([[1.0, -np.inf, 2.0]])
    loss, grad = cross_entropy(x, np.array([[0.5, 0.0, 0.5]]), return_grad=True, backend=backend)
    ref = -0.5 * (exact("log_softmax", x, -1)[0, 0] + exact("log_softmax", x, -1)[0, 2])
    assert np.isclose(loss, float(ref), rtol=1e-14)
    assert grad[0, 1] == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_cross_entropy_all_ignored_and_empty(backend):
    x = np.arange(12.0).reshape(4, 3)
    t = np.full(4, -100)
    for ls, w in [(0.0, None), (0.2, None), (0.2, [1.0, 2.0, 3.0])]:
        loss, grad = cross_entropy(x, t, label_smoothing=ls, weight=w, return_grad=True, backend=backend)
        assert np.isnan(loss) and np.all(grad == 0)
        assert cross_entropy(x, t, reduction="sum", label_smoothing=ls, weight=w, backend=backend) == 0
    t = np.array([-1, 2, -1, 0])
    loss = cross_entropy(x, t, ignore_index=-1, reduction="none", backend=backend)
    assert loss[0] == 0 and loss[2] == 0 and loss[1] > 0
    empty = np.zeros((0, 3))
    assert np.isnan(cross_entropy(empty, np.zeros(0, int), backend=backend))
    assert cross_entropy(empty, np.zeros(0, int), reduction="sum", backend=backend) == 0
    loss, grad = cross_entropy(empty, np.zeros(0, int), reduction="none", return_grad=True, backend=backend)
    assert loss.shape == (0,) and grad.shape == (0, 3)


# ---- finite differences (float64) ----------------------------------------------------------------------------------

def _central_differences(f, x, h=1e-6):
    g = np.empty_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        xp[i] += h
        xm[i] -= h
        g[i] = (f(xp) - f(xm)) / (2 * h)
    return g


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("reduction", "weighted", "ls"), CE_COMBOS)
@pytest.mark.parametrize("kind", ["class", "prob"])
def test_cross_entropy_gradient_finite_differences(backend, reduction, weighted, ls, kind):
    rng = np.random.default_rng(4)
    x = _logits(rng, (5, 4), np.float64, scale=1.0)
    t = _targets(rng, (5,), 4) if kind == "class" else _probabilities(rng, (5, 4), -1)
    w = rng.uniform(0.5, 2.0, 4) if weighted else None
    kw = dict(reduction=reduction, label_smoothing=ls, weight=w, backend=backend)
    _, grad = cross_entropy(x, t, return_grad=True, **kw)
    numeric = _central_differences(lambda z: np.sum(cross_entropy(z, t, **kw)), x)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("axis", [-1, 0, 1, (0, 2)])
def test_backward_finite_differences(backend, axis):
    rng = np.random.default_rng(5)
    x = rng.normal(size=(3, 4, 5))
    g = rng.normal(size=x.shape)
    y = fastsoftmax.softmax(x, axis=axis, backend="numpy")
    numeric = _central_differences(lambda z: np.sum(g * fastsoftmax.softmax(z, axis=axis, backend="numpy")), x)
    np.testing.assert_allclose(softmax_backward(y, g, axis, backend=backend), numeric, rtol=1e-6, atol=1e-8)
    y_log = fastsoftmax.log_softmax(x, axis=axis, backend="numpy")
    numeric = _central_differences(lambda z: np.sum(g * fastsoftmax.log_softmax(z, axis=axis, backend="numpy")), x)
    np.testing.assert_allclose(log_softmax_backward(y_log, g, axis, backend=backend), numeric, rtol=1e-6, atol=1e-8)


# ---- softmax_backward / log_softmax_backward against the long-double reference -------------------------------------

def _backward_inputs(rng, case, dtype):
    axis = -1
    if case == "rows":
        x = rng.normal(size=(17, 33))
    elif case == "columns":
        x, axis = rng.normal(size=(4, 33, 6)), 1
    elif case == "axis0":
        x, axis = rng.normal(size=(33, 17)), 0
    elif case == "fortran":
        x = np.asfortranarray(rng.normal(size=(5, 6, 33)))
    elif case == "strided":
        x = rng.normal(size=(10, 70))[::3, ::2]
    elif case == "tuple_axes":
        x, axis = rng.normal(size=(3, 4, 5, 2)), (1, 3)
    else:  # whole array
        x, axis = rng.normal(size=(4, 9)), None
    x = (x * 4).astype(dtype)
    y = fastsoftmax.softmax(x, axis=axis, backend="numpy")
    y_log = fastsoftmax.log_softmax(x, axis=axis, backend="numpy")
    g = rng.normal(size=x.shape).astype(dtype)
    if case == "strided":
        g = np.asfortranarray(g)  # a layout different from y's
    return y, y_log, g, axis


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", ["rows", "columns", "axis0", "fortran", "strided", "tuple_axes", "all"])
def test_backward_against_long_double(backend, dtype, case):
    rng = np.random.default_rng(6)
    y, y_log, g, axis = _backward_inputs(rng, case, dtype)
    y, y_log, g = _frozen(y) if case != "strided" else y, _frozen(y_log), _frozen(g)
    reduce_axis = tuple(range(y.ndim)) if axis is None else axis
    out = softmax_backward(y, g, axis, backend=backend)
    assert out.dtype == dtype and out.shape == y.shape
    assert_close(out, exact_softmax_backward(y, g, reduce_axis), 4 * _rtol(dtype), "softmax_backward")
    out = log_softmax_backward(y_log, g, axis, backend=backend)
    assert_close(out, exact_log_softmax_backward(y_log, g, reduce_axis), 4 * _rtol(dtype), "log_softmax_backward")


@pytest.mark.parametrize("backend", BACKENDS)
def test_backward_out_and_dtypes(backend):
    rng = np.random.default_rng(7)
    y = fastsoftmax.softmax(rng.normal(size=(6, 10)), axis=-1)
    g = rng.normal(size=y.shape)
    expected = np.asarray(exact_softmax_backward(y, g, -1), np.float64)

    out = np.empty_like(y)
    assert softmax_backward(y, g, -1, out=out, backend=backend) is out
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-15)
    in_place = g.copy()  # out=grad: in place
    softmax_backward(y, in_place, -1, out=in_place, backend=backend)
    np.testing.assert_allclose(in_place, expected, rtol=1e-12, atol=1e-15)
    overlapping = np.concatenate([g, g[:1]])  # out overlaps grad shifted by a row: computed aside, still right
    softmax_backward(y, overlapping[1:], -1, out=overlapping[:-1], backend=backend)
    np.testing.assert_allclose(overlapping[:-1], np.asarray(exact_softmax_backward(y, g[list(range(1, 6)) + [0]], -1),
                                                            np.float64), rtol=1e-12, atol=1e-15)
    out_f = np.empty(y.shape, order="F")
    log_softmax_backward(np.log(y), g, 1, out=out_f, backend=backend)
    np.testing.assert_allclose(out_f, np.asarray(exact_log_softmax_backward(np.log(y), g, 1), np.float64), rtol=1e-12,
                               atol=1e-15)

    half = softmax_backward(y.astype(np.float16), g.astype(np.float16), -1, backend=backend)
    assert half.dtype == np.float16
    np.testing.assert_allclose(half, expected, rtol=1e-2, atol=2e-3)
    mixed = softmax_backward(y.astype(np.float32), g, -1, backend=backend)
    assert mixed.dtype == np.float64
    ints = softmax_backward([[0, 1, 0]], [[1, 2, 3]], -1, backend=backend)
    assert ints.dtype == np.float64 and np.allclose(ints, [[0, 0, 0]])
    assert softmax_backward(np.zeros((0, 3)), np.zeros((0, 3)), -1, backend=backend).shape == (0, 3)
    with pytest.raises(ValueError, match="same shape"):
        softmax_backward(y, g[:, :5], -1, backend=backend)
    with pytest.raises(ValueError, match="out must have shape"):
        softmax_backward(y, g, -1, out=np.empty((6, 10), np.float32), backend=backend)
    with pytest.raises(TypeError, match="real numeric"):
        softmax_backward(y.astype(complex), g, -1, backend=backend)
    with pytest.raises(TypeError, match="real numeric"):
        log_softmax_backward(y, np.array([["a"] * 10] * 6), -1, backend=backend)
    with pytest.raises(Exception, match="axis"):
        softmax_backward(y, g, 2, backend=backend)


# ---- validation -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "error", "match"), [
    (dict(label_smoothing=-0.1), ValueError, "label_smoothing must be between"),
    (dict(label_smoothing=1.5), ValueError, "label_smoothing must be between"),
    (dict(label_smoothing=float("nan")), ValueError, "label_smoothing must be between"),
    (dict(label_smoothing="0.1"), TypeError, "label_smoothing must be a real number"),
    (dict(weight=np.ones(4)), ValueError, "weight must be a 1-D array of length 5"),
    (dict(weight=np.ones((5, 1))), ValueError, "weight must be a 1-D array of length 5"),
    (dict(weight=np.array(["a"] * 5)), TypeError, "weight must be a real numeric array"),
    (dict(target=np.array([0, 1, 5])), ValueError, "target 5 is out of range for 5 classes"),
    (dict(target=np.array([0, -1, 2])), ValueError, "target -1 is out of range"),
    (dict(target=np.array([0, 1])), ValueError, "batch shape \\(3,\\)"),
    (dict(target=np.array([[0, 1, 2]])), ValueError, "batch shape"),
    (dict(target=np.array([0.0, 1.0, 2.0])), ValueError, "probability targets must have the logits' shape"),
    (dict(target=np.ones((3, 5), int)), ValueError, "batch shape"),
    (dict(target=np.array([True, False, True])), TypeError, "integer"),
    (dict(target=np.array(["a", "b", "c"])), TypeError, "integer"),
    (dict(reduction="avg"), ValueError, "reduction must be 'none', 'mean' or 'sum'"),
    (dict(reduction=None), ValueError, "reduction must be"),
    (dict(ignore_index=1.5), TypeError, "ignore_index must be an int"),
    (dict(axis=2), Exception, "axis"),
    (dict(axis=(0, 1)), TypeError, "axis must be an int"),
    (dict(logits=np.ones((3, 5), complex)), TypeError, "logits must be a real numeric array"),
    (dict(logits=np.float64(1.0), target=np.array(0)), ValueError, "at least one dimension"),
    (dict(logits=np.ones((3, 0)), target=np.zeros(3, int)), ValueError, "no classes"),
    (dict(backend="torch"), ValueError, "backend must be"),
])
def test_cross_entropy_errors(kwargs, error, match):
    args = dict(logits=np.zeros((3, 5)), target=np.array([0, 1, 2]))
    args.update(kwargs)
    with pytest.raises(error, match=match):
        cross_entropy(args.pop("logits"), args.pop("target"), **args)


def test_cross_entropy_accepts():
    x = np.zeros((3, 5))
    for t in ([0, 1, 2], np.array([0, 1, 2], np.uint8), np.array([0, 1, -100], np.int16)):
        assert np.isclose(cross_entropy(x, t), np.log(5))
    assert np.isclose(cross_entropy(x, [0, 1, 4], label_smoothing=1), np.log(5))
    assert np.isclose(cross_entropy(x, [0, 4, 4], ignore_index=4), np.log(5))
    assert np.isclose(cross_entropy(x.astype(np.float32), np.full((3, 5), 0.2)), np.log(5))
    assert np.isclose(cross_entropy(x, [0, 1, 2], weight=[1, 2, 3, 4, 5], reduction="sum"), 6 * np.log(5))


def test_exported_from_package():
    if not hasattr(fastsoftmax, "cross_entropy"):
        pytest.skip("not yet exported from fastsoftmax/__init__.py (see the integration proposal)")
    assert fastsoftmax.cross_entropy is cross_entropy
    assert fastsoftmax.softmax_backward is softmax_backward
    assert fastsoftmax.log_softmax_backward is log_softmax_backward


# ---- torch autograd ----------------------------------------------------------------------------------------------

def _torch():
    torch = pytest.importorskip("torch")
    return torch, torch.nn.functional


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(("reduction", "weighted", "ls"), CE_COMBOS)
@pytest.mark.parametrize("kind", ["class", "prob", "class_dim1"])
def test_cross_entropy_against_torch(backend, reduction, weighted, ls, kind):
    torch, F = _torch()
    rng = np.random.default_rng(8)
    if kind == "class_dim1":
        x, axis = _logits(rng, (6, 10, 3), np.float32), 1
        t = _targets(rng, (6, 3), 10)
    else:
        x, axis = _logits(rng, (64, 10), np.float32), -1
        t = _targets(rng, (64,), 10) if kind == "class" else _probabilities(rng, x.shape, -1).astype(np.float32)
    w = rng.uniform(0.2, 3.0, 10).astype(np.float32) if weighted else None
    loss, grad = cross_entropy(x, t, axis, reduction=reduction, label_smoothing=ls, weight=w, return_grad=True,
                               backend=backend)
    xt = torch.tensor(x, requires_grad=True)
    lt = F.cross_entropy(xt, torch.tensor(t), reduction=reduction, label_smoothing=ls,
                         weight=None if w is None else torch.tensor(w))
    lt.backward(torch.ones_like(lt))
    assert_close(loss, lt.detach().numpy(), 1e-6, "loss")
    assert_close(grad, xt.grad.numpy(), 1e-6, "grad")


@pytest.mark.parametrize("backend", BACKENDS)
def test_cross_entropy_against_torch_special_values(backend):
    torch, F = _torch()
    x = np.array([[1.0, -np.inf, 2.0], [1.0, -np.inf, 2.0], [np.nan, 0, 0], [np.inf, 0, 0], [500.0, -500.0, 0.0]])
    t = np.array([0, 1, 0, 1, 1])
    for ls, reduction in itertools.product((0.0, 0.1), REDUCTIONS):
        loss, grad = cross_entropy(x, t, reduction=reduction, label_smoothing=ls, return_grad=True, backend=backend)
        xt = torch.tensor(x, requires_grad=True)
        lt = F.cross_entropy(xt, torch.tensor(t), reduction=reduction, label_smoothing=ls)
        lt.backward(torch.ones_like(lt))
        np.testing.assert_allclose(loss, lt.detach().numpy(), rtol=1e-12)
        np.testing.assert_allclose(grad, xt.grad.numpy(), rtol=1e-12, atol=1e-300)
    x, t = x[[0, 1, 4]], np.full(3, -100)  # everything ignored (torch's grad is nan on ignored nan lines; ours 0)
    for ls in (0.0, 0.1):
        loss, grad = cross_entropy(x, t, label_smoothing=ls, return_grad=True, backend=backend)
        xt = torch.tensor(x, requires_grad=True)
        lt = F.cross_entropy(xt, torch.tensor(t), label_smoothing=ls)
        lt.backward()
        assert np.isnan(loss) and np.isnan(lt.item())
        np.testing.assert_array_equal(grad, xt.grad.numpy())


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_backward_against_torch(backend, axis):
    torch, _ = _torch()
    rng = np.random.default_rng(9)
    x = _logits(rng, (8, 50, 6), np.float32)
    g = rng.normal(size=x.shape).astype(np.float32)
    xt = torch.tensor(x, requires_grad=True)
    torch.softmax(xt, axis).backward(torch.tensor(g))
    y = fastsoftmax.softmax(x, axis=axis)
    assert_close(softmax_backward(y, g, axis, backend=backend), xt.grad.numpy(), 1e-6, "softmax_backward")
    xt = torch.tensor(x, requires_grad=True)
    torch.log_softmax(xt, axis).backward(torch.tensor(g))
    y_log = fastsoftmax.log_softmax(x, axis=axis)
    assert_close(log_softmax_backward(y_log, g, axis, backend=backend), xt.grad.numpy(), 1e-6, "log_softmax_backward")


# ---- the README example ---------------------------------------------------------------------------------------------

README_EXAMPLE = '''
import numpy as np
import fastsoftmax

rng = np.random.default_rng(0)
X = rng.normal(size=(512, 20)).astype(np.float32)           # 512 samples, 20 features
labels = (X @ rng.normal(size=(20, 4))).argmax(axis=1)        # 4 classes, linearly separable

W = np.zeros((20, 4), np.float32)
b = np.zeros(4, np.float32)
losses = []
for step in range(100):
    logits = X @ W + b
    loss, dlogits = fastsoftmax.cross_entropy(logits, labels, return_grad=True)   # mean loss, d loss / d logits
    W -= 0.5 * (X.T @ dlogits)
    b -= 0.5 * dlogits.sum(axis=0)
    losses.append(float(loss))
print(f"loss {losses[0]:.3f} -> {losses[-1]:.3f}")
'''


def test_readme_training_loop(monkeypatch, capsys):
    if not hasattr(fastsoftmax, "cross_entropy"):  # until the export lands in fastsoftmax/__init__.py
        monkeypatch.setattr(fastsoftmax, "cross_entropy", cross_entropy, raising=False)
    namespace = {}
    exec(README_EXAMPLE, namespace)
    losses = namespace["losses"]
    assert losses[0] == pytest.approx(np.log(4), rel=1e-6)
    assert all(b <= a + 1e-6 for a, b in zip(losses, losses[1:]))
    assert losses[-1] < 0.3 * losses[0]
    assert "loss 1.386 ->" in capsys.readouterr().out


@pytest.mark.skipif("cython" not in BACKENDS, reason="training kernels not built")
@pytest.mark.parametrize("threads", [1, 2])
def test_threaded_sizes_match_reference(threads):
    """Inputs above the serial threshold (fastsoftmax._dispatch.SERIAL_BELOW) run on several threads."""
    rng = np.random.default_rng(10)
    x = _logits(rng, (300, 200), np.float32)
    t = _targets(rng, (300,), 200)
    q = _probabilities(rng, x.shape, -1).astype(np.float32)
    g = rng.normal(size=x.shape).astype(np.float32)
    previous = fastsoftmax.set_num_threads(threads)
    try:
        for target in (t, q):
            loss, grad = cross_entropy(x, target, label_smoothing=0.1, return_grad=True, backend="cython")
            ref_loss, ref_grad = exact_cross_entropy(x, target, label_smoothing=0.1)
            assert_close(loss, ref_loss, 2e-6, "loss")
            assert_close(grad, ref_grad, 2e-6, "grad")
        y = fastsoftmax.softmax(x, axis=-1)
        assert_close(softmax_backward(y, g, -1, backend="cython"), exact_softmax_backward(y, g, -1), 1e-5, "backward")
        y3 = np.ascontiguousarray(y.T)
        assert_close(softmax_backward(y3, g.T, 0, backend="cython"), exact_softmax_backward(y3, g.T, 0), 1e-5, "cols")
    finally:
        fastsoftmax.set_num_threads(previous)


def test_readme_shows_the_example_this_file_runs():
    from pathlib import Path
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert README_EXAMPLE.strip() in readme
