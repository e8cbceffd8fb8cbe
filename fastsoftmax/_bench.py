"""Benchmark machinery shared by `benchmarks/` (pytest-benchmark) and `python -m fastsoftmax bench`.

One case table, one way to call each peer (the fastsoftmax backends, the dispatcher "auto", scipy.special, torch,
onnxruntime, jax and a plain copy as the memory-bandwidth floor), one accuracy measure against a long-double
reference. Nothing heavy is imported here at module level: scipy, torch, onnxruntime, jax and matplotlib are
imported by the call that needs them.
"""
import importlib.util
import math
import sys
import time
import timeit
import warnings
from typing import NamedTuple

import numpy as np

import fastsoftmax

from . import _dispatch

FUNCTIONS = ("softmax", "log_softmax", "logsumexp")
DTYPES = ("float32", "float64")


class Case(NamedTuple):
    name: str
    shape: tuple
    dtype: str
    axis: object  # int or None (the whole array)

    @property
    def id(self):
        return f"{self.name}-{self.dtype}"

    @property
    def size(self):
        return math.prod(self.shape)


# The shapes people softmax over, from one tiny vector to bandwidth-bound arrays.
_SHAPES = [  # (name, shape, axis, dtypes)
    ("tiny_3", (3,), -1, ("float64",)),
    ("vector_1000", (1000,), -1, DTYPES),
    ("rows_256x1000", (256, 1000), -1, DTYPES),
    ("attention_96x128x128", (96, 128, 128), -1, DTYPES),
    ("vocab_8x152064", (8, 152064), -1, DTYPES),
    ("rows_4096x4096", (4096, 4096), -1, DTYPES),
    ("columns_2000x2000", (2000, 2000), 0, DTYPES),
    ("whole_1e7", (10**7,), None, DTYPES),
]
CASES = [Case(name, shape, dtype, axis) for name, shape, axis, dtypes in _SHAPES for dtype in dtypes]
# `bench --quick`: small and medium cases, both layouts, a few seconds in all
QUICK_CASES = ("tiny_3", "vector_1000", "rows_256x1000", "columns_2000x2000")

# Peers besides the fastsoftmax backends, in table order; "copy" (np.copy of the input) is the memory floor.
EXTERNAL_PEERS = ("scipy", "torch", "onnxruntime", "jax", "copy")
_PEER_MODULE = {"scipy": "scipy", "torch": "torch", "onnxruntime": "onnxruntime", "jax": "jax"}


class PeerUnavailable(Exception):
    """A peer cannot run here (not installed, or does not cover the dtype); the message says why."""


def case_id(case):
    return case.id


def select_cases(names=None, dtypes=None, cases=CASES):
    """The cases matching `names` (case names, or case ids like "rows_256x1000-float32") and `dtypes`.

    ValueError naming the choices for a name that matches nothing."""
    chosen = list(cases)
    if names:
        known = {c.name for c in cases} | {c.id for c in cases}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ValueError(f"unknown case {', '.join(unknown)}; cases: "
                             f"{', '.join(dict.fromkeys(c.name for c in cases))}")
        chosen = [c for c in chosen if c.name in names or c.id in names]
    if dtypes:
        chosen = [c for c in chosen if c.dtype in dtypes]
    return chosen


def shape_for(case, max_elements=None):
    """The case's shape, or a smaller one of the same layout with at most `max_elements` elements (for test runs).

    The dimensions kept apart (the number of lines) shrink first, the reduced ones only if still needed."""
    shape = list(case.shape)
    if max_elements is None or math.prod(shape) <= max_elements:
        return tuple(shape)
    reduced = set(range(len(shape))) if case.axis is None else {case.axis % len(shape)}
    for group in ([i for i in range(len(shape)) if i not in reduced], sorted(reduced)):
        for i in group:
            rest = math.prod(shape) // shape[i]
            shape[i] = max(1, min(shape[i], max_elements // rest))
            if math.prod(shape) <= max_elements:
                return tuple(shape)
    return tuple(shape)


def make_input(case, seed=0, max_elements=None):
    """The case's input: normal(0, 3) logits (the spread of real logits), C-contiguous, of the case's dtype."""
    shape = shape_for(case, max_elements)
    return np.random.default_rng(seed).normal(0, 3, shape).astype(case.dtype)


def bytes_moved(func, x, axis):
    """Bytes a call must read and write at least: the input, and the output (one value per line for logsumexp)."""
    if func == "logsumexp":
        lines = 1 if axis is None else x.size // max(1, x.shape[axis])
        return x.nbytes + lines * x.itemsize
    return 2 * x.nbytes


# ---- the peers -------------------------------------------------------------------------------------------------

def all_peers():
    """Every peer name in table order: "auto", the fastsoftmax backends, then the external peers."""
    return ["auto", *_dispatch.MODULES, *EXTERNAL_PEERS]


def fastsoftmax_peers():
    return ["auto", *fastsoftmax.backends()]


def peer_missing(peer):
    """Why `peer` cannot run here (None if it can), without importing it."""
    if peer == "auto" or peer == "copy":
        return None
    if peer in _dispatch.MODULES:
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
    module = _dispatch.choose(func, dtype, x.size, bool(columns), None)
    for name, module_name in _dispatch.MODULES.items():
        if module.__name__ == module_name:
            return name
    return module.__name__


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
    if peer == "auto" or peer in _dispatch.MODULES:
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


# ---- accuracy ---------------------------------------------------------------------------------------------------

def _lines(a, axis, picks=None):
    """`a` as (lines, line length): the reduction lines of a C-contiguous array, optionally only some."""
    if axis is None:
        lines = a.reshape(1, -1)
    else:
        axis = axis % a.ndim
        outer, n = math.prod(a.shape[:axis]), a.shape[axis]
        inner = math.prod(a.shape[axis + 1:])
        a3 = a.reshape(outer, n, inner)
        if picks is None:
            return np.moveaxis(a3, 1, 2).reshape(-1, n)
        return a3[picks // inner, :, picks % inner]
    return lines if picks is None else lines[picks]


class Reference:
    """func(x, axis) in long double on a sample of the reduction lines (all of them when few), computed once and
    compared with any number of results."""

    def __init__(self, func, x, axis, max_elements=1 << 18):
        self.func, self.axis, self.dtype = func, axis, x.dtype
        self.line_length = n = x.size if axis is None else x.shape[axis]
        n_lines = x.size // max(n, 1)
        k = max(1, min(n_lines, max_elements // max(n, 1)))
        self.picks = np.unique(np.linspace(0, n_lines - 1, k).astype(np.int64))
        a = _lines(x, axis, self.picks).astype(np.longdouble)
        self.x_lines = a
        m = a.max(axis=1, keepdims=True)
        # log of the line's sum of exp(a - m), with the max's own terms counted apart so that log1p keeps the
        # digits of a peaked line's log_softmax near 0
        is_max = a == m
        count = is_max.sum(axis=1, keepdims=True)
        others = np.where(is_max, 0, np.exp(a - m)).sum(axis=1, keepdims=True)
        self.log_total = np.log(count) + np.log1p(others / count)
        if func == "softmax":
            self.want = np.exp((a - m) - self.log_total)
        elif func == "log_softmax":
            self.want = (a - m) - self.log_total
        else:
            self.want = (m + self.log_total)[:, 0]

    def errors(self, y):
        """{"max_ulp": ..., "row_sum_eps": ...} of result `y` on the sampled lines.

        max_ulp: largest |y - exact| in units of the last place of the exact value rounded to y's dtype (softmax
        where that value is a normal number). row_sum_eps: largest |sum - 1| / eps over the lines, of sum(y) for
        softmax, sum(exp(y)) for log_softmax and sum(exp(x - y)) for logsumexp."""
        y = np.asarray(y)
        finfo = np.finfo(y.dtype)
        if self.func == "logsumexp":
            got = (y.reshape(1) if self.axis is None else y.reshape(-1)[self.picks]).astype(np.longdouble)
        else:
            got = _lines(y, self.axis, self.picks).astype(np.longdouble)
        want = self.want
        mask = np.abs(want) >= finfo.smallest_normal if self.func == "softmax" else np.isfinite(want)
        with np.errstate(all="ignore"):
            ulp = np.spacing(np.abs(want[mask]).astype(y.dtype)).astype(np.longdouble)
            err = np.abs(got[mask] - want[mask]) / ulp
            max_ulp = float(np.max(err)) if err.size else 0.0
            if np.isnan(got[mask]).any():
                max_ulp = math.inf
            # float32 results are summed in float64 (exact enough, and much faster on 10^7 elements)
            acc = np.float64 if finfo.bits < 64 else np.longdouble
            g = got.astype(acc)
            if self.func == "softmax":
                sums = g.sum(axis=1)
            elif self.func == "log_softmax":
                sums = np.exp(g).sum(axis=1)
            else:
                sums = np.exp(self.x_lines.astype(acc) - g[:, None]).sum(axis=1)
            row_sum = float(np.max(np.abs(sums - 1))) / float(finfo.eps)
        if math.isnan(row_sum):
            row_sum = math.inf
        return {"max_ulp": max_ulp, "row_sum_eps": row_sum}


# A result is "right" within MAX_ULP_OK + 10 sqrt(n) ULP and as many eps of row-sum error, n being the line length:
# loose enough for every peer's float32 (scipy is tens of ULP off; torch and onnxruntime sum 10^7 float32 values
# in float32 and land ~6 sqrt(n) eps off), tight enough that a wrong kernel fails (a missing max shift gives
# nan/inf, a wrong axis errors of order 1, float64 computed in float32 ~5e8 ULP).
MAX_ULP_OK = 1000.0


def error_bound(n):
    return MAX_ULP_OK + 10.0 * math.sqrt(n)


# Peers outside fastsoftmax and scipy (torch, onnxruntime, jax) are benchmarked, not tested: they only need to be
# sane (no nan, row sums within 5%); onnxruntime's float32 ReduceLogSumExp over 10^7 elements is ~1.6% off.
SANE_ROW_SUM_REL = 0.05
STRICT_PEERS = ("auto", *_dispatch.MODULES, "scipy", "copy")


def verdict(errors, n, dtype):
    """"ok", "inaccurate" (beyond error_bound(n) but sane) or "wrong" (nan, or row sums more than 5% off)."""
    bound = error_bound(n)
    if errors["max_ulp"] < bound and errors["row_sum_eps"] < bound:
        return "ok"
    rel = errors["row_sum_eps"] * float(np.finfo(dtype).eps)
    return "inaccurate" if math.isfinite(errors["max_ulp"]) and rel < SANE_ROW_SUM_REL else "wrong"


def check_errors(errors, n, where="", dtype=np.float64, strict=True):
    """AssertionError unless the errors are those of a correct implementation on lines of n elements (strict), or
    at least of a sane one (not strict)."""
    v = verdict(errors, n, dtype)
    if v == "wrong" or (strict and v != "ok"):
        raise AssertionError(f"{where}: wrong result: max ULP error {errors['max_ulp']:.3g}, "
                             f"row-sum error {errors['row_sum_eps']:.3g} eps (bound {error_bound(n):.3g})")
    return v


# ---- timing -------------------------------------------------------------------------------------------------------

def median_seconds(call, budget=0.2, min_repeats=3, max_repeats=15):
    """Median time of one call, repeating for about `budget` seconds (each sample lasts at least ~2 ms)."""
    once = timeit.timeit(call, number=1)
    number = max(1, int(0.002 / max(once, 1e-9)))
    repeats = max(min_repeats, min(max_repeats, int(budget / max(once * number, 1e-9))))
    return float(np.median(timeit.repeat(call, number=number, repeat=repeats))) / number


# ---- the bench command ------------------------------------------------------------------------------------------

def prime_memory(cases):
    """Touch, once, as much fresh memory as a few outputs of the largest case take.

    The first process to touch memory pays for the OS (and, in a virtual machine, the host) to back it: measured
    here at ~100 ms for 80 MB, against ~5 ms once backed. Without this the first peer timed on a large case pays
    for everyone."""
    largest = max((case.size * np.dtype(case.dtype).itemsize for case in cases), default=0)
    block = np.empty(4 * largest, np.uint8)
    block.fill(1)
    del block


def run(cases, functions, peers, budget=0.2, progress=None, max_repeats=15):
    """Time every (case, function, peer); return a list of result dicts (see `python -m fastsoftmax bench`)."""
    prime_memory(cases)
    results = []
    total = len(cases) * len(functions)
    done = 0
    for case in cases:
        x = make_input(case)
        for func in functions:
            done += 1
            ref = Reference(func, x, case.axis)
            rows = []
            for peer in peers:
                if progress:
                    progress(f"[{done}/{total}] {func} {case.id}: {peer}")
                base = {"case": case.id, "shape": list(case.shape), "dtype": case.dtype,
                        "axis": case.axis, "size": case.size, "function": func, "backend": peer}
                try:
                    call = make_call(peer, func, x, case.axis)
                    y = call()
                except PeerUnavailable as exc:
                    rows.append({**base, "skipped": str(exc)})
                    continue
                seconds = median_seconds(call, budget, max_repeats=max_repeats)
                row = {**base, "median_s": seconds,
                       "gb_per_s": bytes_moved(func, x, case.axis) / seconds / 1e9,
                       "ns_per_element": seconds / case.size * 1e9}
                if peer != "copy":
                    row.update(ref.errors(y))
                    row["verdict"] = verdict(row, ref.line_length, x.dtype)
                if peer == "auto":
                    row["auto_choice"] = auto_choice(func, x, case.axis)
                rows.append(row)
            _annotate(rows)
            results.extend(rows)
            del ref
        del x
    return results


def _annotate(rows):
    """Add speedup vs scipy, and for "auto" whether it is within 10% of the fastest fastsoftmax backend."""
    timed = {r["backend"]: r["median_s"] for r in rows if "median_s" in r}
    scipy_t = timed.get("scipy")
    for r in rows:
        if "median_s" in r and scipy_t:
            r["speedup_vs_scipy"] = scipy_t / r["median_s"]
    own = {b: t for b, t in timed.items() if b in _dispatch.MODULES}
    for r in rows:
        if r["backend"] == "auto" and "median_s" in r and own:
            best = min(own, key=own.get)
            r["best_backend"] = best
            r["auto_within_10pct"] = r["median_s"] <= 1.1 * own[best]


def _fmt_time(s):
    if s < 1e-3:
        return f"{s * 1e6:8.1f} us"
    if s < 1:
        return f"{s * 1e3:8.2f} ms"
    return f"{s:8.3f} s "


def format_table(results):
    """The results as a fixed-width text table."""
    head = (f"{'case':30s} {'function':11s} {'backend':12s} {'median':>11s} {'GB/s':>7s} {'vs scipy':>9s} "
            f"{'max ULP':>8s} {'sum eps':>8s}  auto")
    lines = [head, "-" * len(head)]
    previous = None
    for r in results:
        key = (r["case"], r["function"])
        if previous is not None and key != previous:
            lines.append("")
        previous = key
        start = f"{r['case']:30s} {r['function']:11s} {r['backend']:12s}"
        if "skipped" in r:
            lines.append(f"{start} skipped: {r['skipped']}")
            continue
        speed = f"{r['speedup_vs_scipy']:8.2f}x" if "speedup_vs_scipy" in r else f"{'':9s}"
        ulp = f"{r['max_ulp']:8.2f}" if "max_ulp" in r else f"{'-':>8s}"
        rsum = f"{r['row_sum_eps']:8.2f}" if "row_sum_eps" in r else f"{'-':>8s}"
        mark = ""
        if r["backend"] == "auto":
            mark = f"-> {r.get('auto_choice', '?')}"
            if "auto_within_10pct" in r:
                mark += f"; best {r['best_backend']}; within 10%: {'yes' if r['auto_within_10pct'] else 'NO'}"
        elif r["backend"] == "copy":
            mark = "(memory floor)"
        if r.get("verdict", "ok") != "ok":
            mark = f"{r['verdict'].upper()} RESULT {mark}"
        lines.append(f"{start} {_fmt_time(r['median_s'])} {r['gb_per_s']:7.2f} {speed} {ulp} {rsum}  {mark}")
    return "\n".join(lines)


def markdown_table(results, function):
    """One markdown table for `function`: a row per case, median time per peer, and what it says about cython.

    README.md's results table is this, generated by `bench --markdown`, never typed by hand."""
    peers = [p for p in ("cython", "numba", "scipy", "torch", "onnxruntime", "jax", "copy")
             if any(r["backend"] == p and "median_s" in r for r in results)]
    by_key = {(r["case"], r["backend"]): r for r in results if r["function"] == function and "median_s" in r}
    cases = list(dict.fromkeys(r["case"] for r in results if r["function"] == function))
    head = ["case"] + peers + ["cython vs scipy", "cython vs fastest peer", "max ULP: cython / worst other"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for case in cases:
        row = [case]
        for p in peers:
            r = by_key.get((case, p))
            row.append(_fmt_time(r["median_s"]).strip() if r else "-")
        ours = by_key.get((case, "cython"))
        others = [by_key[case, p] for p in peers if p not in ("cython", "numba", "copy") and (case, p) in by_key]
        if ours:
            scipy_row = by_key.get((case, "scipy"))
            row.append(f"{scipy_row['median_s'] / ours['median_s']:.2f}x" if scipy_row else "-")
            fastest = min(others, key=lambda r: r["median_s"], default=None)
            row.append(f"{fastest['median_s'] / ours['median_s']:.2f}x ({fastest['backend']})" if fastest else "-")
            worst = max((r.get("max_ulp", 0) for r in others), default=float("nan"))
            row.append(f"{ours.get('max_ulp', float('nan')):.2f} / {worst:.0f}")
        else:
            row += ["-", "-", "-"]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def summary(results):
    """One line: how often auto was within 10% of the best backend, and the median speedup over scipy."""
    autos = [r for r in results if r["backend"] == "auto" and "auto_within_10pct" in r]
    good = sum(r["auto_within_10pct"] for r in autos)
    parts = [f"auto within 10% of the best backend in {good}/{len(autos)} cases"]
    for peer in fastsoftmax_peers():
        sp = [r["speedup_vs_scipy"] for r in results if r["backend"] == peer and "speedup_vs_scipy" in r]
        if sp:
            parts.append(f"{peer} median speedup vs scipy {float(np.median(sp)):.2f}x")
    return "; ".join(parts)


def plot(results, path):
    """Time per element against array size, one panel per function and dtype, a line per backend (log axes).

    Raises ImportError when matplotlib is missing."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timed = [r for r in results if "median_s" in r]
    functions = [f for f in FUNCTIONS if any(r["function"] == f for r in timed)]
    dtypes = [d for d in DTYPES if any(r["dtype"] == d for r in timed)]
    peers = list(dict.fromkeys(r["backend"] for r in timed))
    fig, axes = plt.subplots(len(dtypes), len(functions), figsize=(5.5 * len(functions), 4.2 * len(dtypes)),
                             squeeze=False)
    styles = {"auto": dict(color="black", linestyle="--", marker="o", linewidth=1.5),
              "numpy": dict(color="tab:blue", marker="o", linewidth=1.5),
              "cython": dict(color="tab:orange", marker="o", linewidth=1.5),
              "numba": dict(color="tab:green", marker="o", linewidth=1.5),
              "scipy": dict(color="tab:red", marker="s", linewidth=2),
              "torch": dict(color="tab:pink", marker="^", linewidth=1),
              "onnxruntime": dict(color="tab:purple", marker="v", linewidth=1),
              "jax": dict(color="tab:brown", marker="D", linewidth=1, markersize=4),
              "copy": dict(color="gray", linestyle=":", marker="", linewidth=1.5)}
    for i, dtype in enumerate(dtypes):
        for j, func in enumerate(functions):
            ax = axes[i][j]
            for peer in peers:
                pts = [(r["size"], r["ns_per_element"], r["axis"]) for r in timed
                       if r["backend"] == peer and r["function"] == func and r["dtype"] == dtype]
                if not pts:
                    continue
                # the lines join the cases reduced along the last axis; the others are separate hollow markers
                line = sorted(p for p in pts if p[2] == -1)
                other = [p for p in pts if p[2] != -1]
                style = styles.get(peer, dict(marker="o", linewidth=1.5))
                drawn = ax.plot([p[0] for p in line], [p[1] for p in line], label=peer, **style)
                color = drawn[0].get_color()
                if other:
                    ax.plot([p[0] for p in other], [p[1] for p in other], linestyle="none",
                            marker=style.get("marker") or "o", markerfacecolor="none", color=color)
            # name the points: the cases are the x positions
            for r in timed:
                if r["backend"] == peers[0] and r["function"] == func and r["dtype"] == dtype:
                    ax.annotate(r["case"].rsplit("-", 1)[0], (r["size"], r["ns_per_element"]), fontsize=6,
                                rotation=30, alpha=0.6, textcoords="offset points", xytext=(2, 4))
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_title(f"{func} {dtype}")
            ax.set_xlabel("elements")
            ax.set_ylabel("ns per element")
            ax.grid(True, which="both", alpha=0.3)
    axes[0][-1].legend(fontsize=8)
    fig.suptitle(f"fastsoftmax {fastsoftmax.__version__}: time per element ({fastsoftmax.get_num_threads()} "
                 "threads), lower is faster; lines: reductions along the last axis, hollow markers: axis 0 and "
                 "whole-array cases", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def progress_printer(stream=None):
    """A progress callback writing to stderr: one rewritten line on a terminal, plain lines elsewhere."""
    stream = stream or sys.stderr
    tty = stream.isatty()
    state = {"last": 0.0}

    def show(message):
        if tty:
            stream.write("\r\033[K" + message)
            stream.flush()
        else:
            now = time.monotonic()
            if now - state["last"] > 1.0 or message.startswith("done"):
                stream.write(message + "\n")
                stream.flush()
                state["last"] = now
    show.finish = (lambda: (stream.write("\r\033[K"), stream.flush())) if tty else (lambda: None)
    return show
