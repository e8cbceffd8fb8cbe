"""Measure where the backends cross over on this machine and write dispatch rules (see fastsoftmax/_dispatch.py).

For every function/rows|columns/dtype, each backend is timed over a geometric grid of array sizes; the backends are
timed in interleaved rounds (a, b, c, a, b, c, ...) so that the load of a shared machine falls on all of them alike,
and each size's winner is the lowest minimum over the rounds. Winners are then smoothed into
[[size_limit, backend], ...] steps: another backend takes over only where it is at least HYSTERESIS faster than the
current one, and a takeover lasting a single grid point is treated as noise.
"""
import datetime
import json
import math
import os
import tempfile
import timeit
from pathlib import Path

import numpy as np

import fastsoftmax
from fastsoftmax import _dispatch

HYSTERESIS = 0.05


def grid(quick=False, max_size=None):
    """The sizes measured: powers of 2 from 16 to 2**24 (quick: powers of 4 up to 2**20)."""
    top = 20 if quick else 24
    sizes = [2**k for k in range(4, top + 1, 2 if quick else 1)]
    if max_size:
        sizes = [s for s in sizes if s <= max_size] or [sizes[0]]
    return sizes


def shape_of(size, kind):
    """A square-ish array of `size` elements (a power of 2) and the axis reduced: the lines are the last axis for
    "rows", the first for "columns"."""
    k = int(round(math.log2(size)))
    n_lines, n = 2 ** (k // 2), 2 ** (k - k // 2)
    return ((n_lines, n), -1) if kind == "rows" else ((n, n_lines), 0)


def _timings(calls, rounds, target):
    """Seconds per call of each callable: the fastest of interleaved rounds of about `target` seconds each."""
    numbers = {}
    for name, call in calls.items():
        call()  # warm up (numba compiles on first use)
        once = timeit.timeit(call, number=1)
        numbers[name] = max(1, int(target / max(once, 1e-9)))
    samples = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            samples[name].append(timeit.timeit(call, number=numbers[name]) / numbers[name])
    # the minimum, not the median: on a shared machine the other samples measure the neighbours' load, and a
    # parallel kernel suffers from it more than a serial one; the rules should reflect what the hardware can do
    return {name: float(np.min(s)) for name, s in samples.items()}


def steps_from(sizes, timings):
    """[[size_limit, backend], ..., [None, backend]] from per-size timings {backend: [seconds per size]}."""
    names = list(timings)
    winners = []
    current = None
    for i in range(len(sizes)):
        t = {name: timings[name][i] for name in names}
        best = min(t, key=t.get)
        if current is None or t[best] < (1 - HYSTERESIS) * t[current]:
            current = best
        winners.append(current)
    # a takeover lasting a single grid point is noise: it goes to its smaller neighbour's winner
    changed = len(winners) > 2
    while changed:
        changed = False
        for i in range(len(winners)):
            left = winners[i - 1] if i > 0 else None
            right = winners[i + 1] if i + 1 < len(winners) else None
            if winners[i] != left and winners[i] != right:
                winners[i] = left if left is not None else right
                changed = True
    steps = []
    for i, name in enumerate(winners):
        if steps and steps[-1][1] == name:
            continue
        if steps:
            # the switch lies between the previous grid point and this one: take the geometric midpoint
            steps[-1][0] = int(math.sqrt(sizes[i - 1] * sizes[i]))
        steps.append([None, name])
    return steps


def measure(functions, kinds, dtypes, backends, sizes, rounds, target, progress=None):
    """{key: {"sizes": sizes, backend: [seconds per size]}} for every function/kind/dtype key."""
    keys = [(f, k, d) for f in functions for k in kinds for d in dtypes]
    rng = np.random.default_rng(0)
    out = {}
    for n, (func, kind, dtype) in enumerate(keys, 1):
        key = f"{func}/{kind}/{dtype}"
        per_backend = {b: [] for b in backends}
        f = getattr(fastsoftmax, func)
        for size in sizes:
            if progress:
                progress(f"[{n}/{len(keys)}] {key}: {size} elements")
            shape, axis = shape_of(size, kind)
            x = rng.normal(0, 3, shape).astype(dtype)
            calls = {b: (lambda b=b: f(x, axis=axis, backend=b)) for b in backends}
            for b, seconds in _timings(calls, rounds, target).items():
                per_backend[b].append(seconds)
        out[key] = {"sizes": list(sizes), **per_backend}
    return out


def rules_from(measured):
    rules = {}
    for key, m in measured.items():
        sizes = m["sizes"]
        rules[key] = steps_from(sizes, {b: t for b, t in m.items() if b != "sizes"})
    _dispatch.validate_rules(rules)
    return rules


def describe(steps):
    """[[4096, "numpy"], [None, "cython"]] as "numpy below 4096, then cython"."""
    parts = []
    for limit, name in steps:
        parts.append(name if limit is None else f"{name} below {limit}")
    return ", then ".join(parts)


def _write_json(path, data):
    """Write `data` to `path` atomically, creating its directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def calibration_file(rules, measured, quick):
    info = fastsoftmax.info()
    return {
        "rules": rules,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "fastsoftmax_version": fastsoftmax.__version__,
        "threads": fastsoftmax.get_num_threads(),
        "simd_path": info.get("simd_path"),
        "cpu_features": info.get("cpu_features"),
        "quick": quick,
        "timings_seconds": measured,
    }


def write_calibration(path, data):
    _write_json(path, data)


def write_defaults(path, rules):
    """The shipped defaults file: the bare rules object, one key per line group, as dispatch_defaults.json."""
    _write_json(path, rules)
