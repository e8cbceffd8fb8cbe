"""The benchmark case table, shared by `benchmarks/` (pytest-benchmark) and `python -m fastsoftmax bench`.

It lives in the package so that the installed command line has it too."""
import math
from typing import NamedTuple

import numpy as np

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
    ("vocab_64x32000", (64, 32000), -1, DTYPES),  # 32000 words (LLaMA 2): rows within L2, see fs_rows_per_call
    ("rows_4096x4096", (4096, 4096), -1, DTYPES),
    ("columns_2000x2000", (2000, 2000), 0, DTYPES),
    ("whole_1e7", (10**7,), None, DTYPES),
]
CASES = [Case(name, shape, dtype, axis) for name, shape, axis, dtypes in _SHAPES for dtype in dtypes]
# `bench --quick`: small and medium cases, both layouts, a few seconds in all
QUICK_CASES = ("tiny_3", "vector_1000", "rows_256x1000", "columns_2000x2000")


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
