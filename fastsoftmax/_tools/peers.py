"""One way to call each peer: the fastsoftmax backends, the dispatcher ("auto"), scipy.special, torch, onnxruntime,
jax, and a plain copy of the input as the memory-bandwidth floor.

A peer is imported by the call that needs it, never at module level."""
import importlib.util
import math
import warnings

import numpy as np

import fastsoftmax
from fastsoftmax import _dispatch

# Peers besides the fastsoftmax backends, in table order; "copy" (np.copy of the input) is the memory floor.
EXTERNAL_PEERS = ("scipy", "torch", "onnxruntime", "jax", "copy")
_PEER_MODULE = {"scipy": "scipy", "torch": "torch", "onnxruntime": "onnxruntime", "jax": "jax"}


class PeerUnavailable(Exception):
    """A peer cannot run here (not installed, or does not cover the dtype); the message says why."""


def all_peers():
    """Every peer name in table order: "auto", the fastsoftmax backends, then the external peers."""
    return ["auto", *_dispatch.BACKEND_NAMES, *EXTERNAL_PEERS]


def fastsoftmax_peers():
    return ["auto", *fastsoftmax.backends()]


def peer_missing(peer):
    """Why `peer` cannot run here (None if it can), without importing it."""
    if peer == "auto" or peer == "copy":
        return None
    if peer in _dispatch.BACKEND_NAMES:
        if peer in fastsoftmax.backends():
            return None
        return _dispatch.why_unavailable().get(peer, f"backend {peer} is not available")
    if peer in _PEER_MODULE:
        if peer == "onnxruntime" and importlib.util.find_spec("onnx") is None:
            return "onnx is not installed (pip install onnx onnxruntime)"
        if importlib.util.find_spec(_PEER_MODULE[peer]) is None:
            return f"{peer} is not installed"
        return None
    return f"unknown peer {peer!r}"


def available_peers():
    return [p for p in all_peers() if peer_missing(p) is None]


def auto_choice(func, x, axis):
    """The backend the dispatcher picks for func(x, axis) with backend=None."""
    columns = axis is not None and x.ndim and math.prod(x.shape[axis % x.ndim + 1:]) > 1
    dtype = np.dtype(np.float32) if x.dtype == np.float16 else x.dtype
    return _dispatch.choose(func, dtype, x.size, bool(columns), None).NAME


def _threads():
    return fastsoftmax.get_num_threads()


def _torch_call(func, x, axis):
    import torch
    torch.set_num_threads(_threads())
    with warnings.catch_warnings():  # a read-only input: torch warns, though these ops never write to it
        warnings.simplefilter("ignore", UserWarning)
        t = torch.from_numpy(x)
    if axis is None:
        flat = t.reshape(-1)
        if func == "logsumexp":
            return lambda: torch.logsumexp(flat, 0).numpy()
        op = torch.softmax if func == "softmax" else torch.log_softmax
        return lambda: op(flat, 0).reshape(t.shape).numpy()
    if func == "logsumexp":
        return lambda: torch.logsumexp(t, axis).numpy()
    op = torch.softmax if func == "softmax" else torch.log_softmax
    return lambda: op(t, axis).numpy()


_ORT_OPS = {"softmax": "Softmax", "log_softmax": "LogSoftmax", "logsumexp": "ReduceLogSumExp"}


def _onnxruntime_call(func, x, axis):
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper

    elem = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}.get(x.dtype)
    if elem is None:
        raise PeerUnavailable(f"onnxruntime peer covers float32 and float64, not {x.dtype}")
    shape = list(x.shape) if axis is not None else [x.size]
    ax = axis if axis is not None else 0
    if func == "logsumexp":
        out_shape = [d for i, d in enumerate(shape) if i != ax % len(shape)]
        node = helper.make_node("ReduceLogSumExp", ["x"], ["y"], axes=[ax], keepdims=0)
    else:
        out_shape = shape
        node = helper.make_node(_ORT_OPS[func], ["x"], ["y"], axis=ax)
    graph = helper.make_graph([node], func, [helper.make_tensor_value_info("x", elem, shape)],
                              [helper.make_tensor_value_info("y", elem, out_shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = _threads()
    options.inter_op_num_threads = 1
    # no busy-waiting threads left behind to slow down the peers timed after this one
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    try:
        session = onnxruntime.InferenceSession(model.SerializeToString(), options,
                                               providers=["CPUExecutionProvider"])
    except Exception as exc:  # e.g. a kernel missing for this dtype in this onnxruntime build
        raise PeerUnavailable(f"onnxruntime cannot run {func} on {x.dtype}: {exc}".splitlines()[0]) from exc
    feed = {"x": x if axis is not None else x.reshape(-1)}
    if func == "logsumexp" or axis is not None:
        return lambda: session.run(None, feed)[0]
    return lambda: session.run(None, feed)[0].reshape(x.shape)


def _jax_call(func, x, axis):
    import jax
    if x.dtype == np.float64:
        jax.config.update("jax_enable_x64", True)
    import jax.numpy as jnp
    from jax.scipy.special import logsumexp

    axes = tuple(range(x.ndim)) if axis is None else axis
    op = {"softmax": jax.nn.softmax, "log_softmax": jax.nn.log_softmax, "logsumexp": logsumexp}[func]
    compiled = jax.jit(lambda a: op(a, axis=axes))
    xj = jax.device_put(jnp.asarray(x))
    if xj.dtype != x.dtype:
        raise PeerUnavailable(f"jax computes {x.dtype} as {xj.dtype} (jax_enable_x64 is off)")
    compiled(xj).block_until_ready()  # compile outside the timing
    return lambda: np.asarray(compiled(xj).block_until_ready())


def make_call(peer, func, x, axis):
    """A zero-argument callable computing func(x, axis) with `peer` and returning a numpy array.

    PeerUnavailable (with the reason) when the peer cannot run here."""
    missing = peer_missing(peer)
    if missing:
        raise PeerUnavailable(missing)
    try:
        return _make_call(peer, func, x, axis)
    except ImportError as exc:
        raise PeerUnavailable(f"{peer} does not import: {exc}") from exc


def _make_call(peer, func, x, axis):
    if peer == "copy":
        return lambda: np.copy(x)
    if peer == "scipy":
        import scipy.special
        f = getattr(scipy.special, func)
        return lambda: f(x, axis=axis)
    if peer == "auto" or peer in _dispatch.BACKEND_NAMES:
        f = getattr(fastsoftmax, func)
        backend = None if peer == "auto" else peer
        return lambda: f(x, axis=axis, backend=backend)
    if peer == "torch":
        return _torch_call(func, x, axis)
    if peer == "onnxruntime":
        return _onnxruntime_call(func, x, axis)
    if peer == "jax":
        return _jax_call(func, x, axis)
    raise PeerUnavailable(f"unknown peer {peer!r}")
