"""The bench command (`python -m fastsoftmax bench`): time every case, function and peer, check each result
against the long-double reference, and compare the peers."""
import numpy as np

from fastsoftmax import _dispatch

from .accuracy import Reference, verdict
from .cases import bytes_moved, make_input
from .peers import PeerUnavailable, auto_choice, fastsoftmax_peers, make_call
from .timing import median_seconds, prime_memory


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
            # the reference's long-double arrays were freed while it ran, seconds ago: on a virtual machine the host
            # takes such memory back, and the first peer would pay to have it backed again (measured: the first peer
            # timed on float64 4096x4096 at 36 ms against 20 ms for the same kernel timed second)
            prime_memory([case])
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
    own = {b: t for b, t in timed.items() if b in _dispatch.BACKEND_NAMES}
    for r in rows:
        if r["backend"] == "auto" and "median_s" in r and own:
            best = min(own, key=own.get)
            r["best_backend"] = best
            r["auto_within_10pct"] = r["median_s"] <= 1.1 * own[best]


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
