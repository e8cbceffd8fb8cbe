"""pytest-benchmark: the training-loop operations (fastsoftmax/_training.py) against torch and plain numpy.

    pytest benchmarks/test_bench_training.py --benchmark-only        # time (256x1000 float32, torch on 2 threads)
    pytest benchmarks/test_bench_training.py --benchmark-disable     # CI: each peer once on a small array, checked

Groups (compare the rows of one group, within one run):
  cross_entropy+grad 256x1000 float32  mean loss of class targets and d loss / d logits:
      fastsoftmax (compiled kernels), fastsoftmax-numpy (its numpy reference), numpy (the obvious composition:
      max, exp, sum, log, gather, divide, scatter), torch (F.cross_entropy on a requires_grad tensor, .backward()).
  softmax_backward 256x1000 float32    y * (g - sum(g * y)):
      fastsoftmax, numpy composition, torch (autograd: softmax output .backward(g)),
      torch-kernel (torch._softmax_backward_data, the bare kernel without autograd).
Every peer's result is checked against the long-double reference (fastsoftmax/_tools/exact.py), so a fast wrong
peer fails. torch is skipped when not installed; fastsoftmax when its training kernels are not built.
"""
import functools

import numpy as np
import pytest

from fastsoftmax import _training
from fastsoftmax._tools.accuracy import assert_close
from fastsoftmax._tools.exact import exact_cross_entropy, exact_softmax_backward

SHAPE = (256, 1000)
SMALL_SHAPE = (32, 100)
CE_PEERS = ["fastsoftmax", "fastsoftmax-numpy", "numpy", "torch"]
BACKWARD_PEERS = ["fastsoftmax", "numpy", "torch", "torch-kernel"]


@functools.lru_cache(maxsize=2)
def _inputs(shape):
    rng = np.random.default_rng(0)
    x = (rng.normal(size=shape) * 3).astype(np.float32)
    t = rng.integers(0, shape[1], shape[0])
    g = rng.normal(size=shape).astype(np.float32)
    y = np.exp(x - x.max(axis=1, keepdims=True))
    y = (y / y.sum(axis=1, keepdims=True)).astype(np.float32)
    for a in (x, t, g, y):
        a.flags.writeable = False  # shared by every peer: none may modify them
    return x, t, g, y


def _torch():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(2)
    return torch


def _need_compiled(peer):
    if peer.startswith("fastsoftmax") and peer != "fastsoftmax-numpy" and "cython" not in _training.backends():
        pytest.skip("fastsoftmax.training_kernels is not built")


def numpy_cross_entropy(x, t):
    """The obvious numpy composition: mean cross entropy of class targets and its gradient."""
    rows = np.arange(len(t))
    m = x.max(axis=1, keepdims=True)
    e = np.exp(x - m)
    s = e.sum(axis=1, keepdims=True)
    loss = np.mean(np.log(s[:, 0]) + m[:, 0] - x[rows, t])
    grad = e / s
    grad[rows, t] -= 1
    grad /= len(t)
    return loss, grad


def _ce_call(peer, x, t):
    if peer == "fastsoftmax":
        return lambda: _training.cross_entropy(x, t, return_grad=True, backend="cython")
    if peer == "fastsoftmax-numpy":
        return lambda: _training.cross_entropy(x, t, return_grad=True, backend="numpy")
    if peer == "numpy":
        return lambda: numpy_cross_entropy(x, t)
    torch = _torch()
    F = torch.nn.functional
    xt = torch.from_numpy(x.copy()).requires_grad_()
    tt = torch.from_numpy(t.copy())

    def call():
        xt.grad = None
        loss = F.cross_entropy(xt, tt)
        loss.backward()
        return loss.detach().numpy(), xt.grad.numpy()
    return call


def _backward_call(peer, y, g):
    if peer == "fastsoftmax":
        return lambda: _training.softmax_backward(y, g, -1, backend="cython")
    if peer == "numpy":
        return lambda: y * (g - (g * y).sum(axis=1, keepdims=True))
    torch = _torch()
    if peer == "torch-kernel":
        yt, gt = torch.from_numpy(y.copy()), torch.from_numpy(g.copy())
        return lambda: torch._softmax_backward_data(gt, yt, 1, torch.float32).numpy()
    x = np.log(np.maximum(y, np.finfo(np.float32).tiny))
    xt = torch.from_numpy(x).requires_grad_()
    yt = torch.softmax(xt, 1)
    gt = torch.from_numpy(g.copy())
    return lambda: torch.autograd.grad(yt, xt, gt, retain_graph=True)[0].numpy()


def _shape(benchmark):
    return SMALL_SHAPE if benchmark.disabled else SHAPE


@pytest.mark.parametrize("peer", CE_PEERS)
def test_bench_cross_entropy_grad(benchmark, peer):
    _need_compiled(peer)
    shape = _shape(benchmark)
    x, t, _, _ = _inputs(shape)
    call = _ce_call(peer, x, t)
    benchmark.group = f"cross_entropy+grad {shape[0]}x{shape[1]} float32"
    benchmark.extra_info.update(peer=peer, shape=list(shape))
    loss, grad = benchmark(call)
    ref_loss, ref_grad = exact_cross_entropy(x, t)
    assert_close(loss, ref_loss, 1e-5, f"{peer} loss")
    assert_close(grad, ref_grad, 1e-5, f"{peer} grad")


@pytest.mark.parametrize("peer", BACKWARD_PEERS)
def test_bench_softmax_backward(benchmark, peer):
    _need_compiled(peer)
    shape = _shape(benchmark)
    _, _, g, y = _inputs(shape)
    call = _backward_call(peer, y, g)
    benchmark.group = f"softmax_backward {shape[0]}x{shape[1]} float32"
    benchmark.extra_info.update(peer=peer, shape=list(shape))
    out = benchmark(call)
    assert_close(out, exact_softmax_backward(y, g, -1), 1e-5, peer)
