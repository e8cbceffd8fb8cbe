"""Command line: `python -m fastsoftmax info` and `python -m fastsoftmax compare` (backends against scipy)."""
import argparse
import json
import sys
import timeit

import numpy as np

import fastsoftmax

COMPARE_CASES = [  # (label, shape, dtype, axis)
    ("3 numbers f64", (3,), np.float64, -1),
    ("256x1000 f32 rows", (256, 1000), np.float32, -1),
    ("256x1000 f64 rows", (256, 1000), np.float64, -1),
    ("2000x2000 f32 axis 0", (2000, 2000), np.float32, 0),
    ("10^6 f32 axis None", (10**6,), np.float32, None),
]


def median_seconds(call, budget=0.2):
    """Median time of one call, repeating for about `budget` seconds."""
    once = timeit.timeit(call, number=1)
    number = max(1, int(0.02 / max(once, 1e-9)))
    repeats = max(3, min(15, int(budget / max(once * number, 1e-9))))
    return float(np.median(timeit.repeat(call, number=number, repeat=repeats))) / number


def max_ulp_error(got, x, axis):
    """Largest error of a softmax result in units of the last place, against a long-double computation."""
    a = x.astype(np.longdouble)
    e = np.exp(a - a.max(axis=axis, keepdims=True))
    want = e / e.sum(axis=axis, keepdims=True)
    finfo = np.finfo(got.dtype)
    normal = want >= finfo.smallest_normal
    ulp = np.spacing(want[normal].astype(got.dtype)).astype(np.longdouble)
    return float(np.max(np.abs(got[normal].astype(np.longdouble) - want[normal]) / ulp))


def compare(args):
    try:
        import scipy.special
    except ImportError:
        print("compare needs scipy: pip install scipy", file=sys.stderr)
        return 2
    print("softmax([8, 5, 2]) =", np.round(fastsoftmax.softmax([8.0, 5.0, 2.0]), 4))
    print(f"{'case':22s} {'backend':8s} {'median':>10s} {'vs scipy':>9s} {'max ULP':>8s}")
    rng = np.random.default_rng(0)
    for label, shape, dtype, axis in COMPARE_CASES:
        x = rng.normal(0, 3, shape).astype(dtype)
        t_scipy = median_seconds(lambda: scipy.special.softmax(x, axis=axis))
        rows = [("scipy", t_scipy, scipy.special.softmax(x, axis=axis))]
        for backend in fastsoftmax.backends():
            t = median_seconds(lambda: fastsoftmax.softmax(x, axis=axis, backend=backend))
            rows.append((backend, t, fastsoftmax.softmax(x, axis=axis, backend=backend)))
        for backend, t, y in rows:
            print(f"{label:22s} {backend:8s} {t * 1e6:8.1f}us {t_scipy / t:8.2f}x {max_ulp_error(y, x, axis):8.2f}")
    return 0


def info(args):
    print(json.dumps(fastsoftmax.info(), indent=2, default=str))
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m fastsoftmax", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("info", help="version, backends, threads, SIMD path").set_defaults(run=info)
    commands.add_parser("compare", help="time softmax on every backend against scipy").set_defaults(run=compare)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
