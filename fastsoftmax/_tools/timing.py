"""How long a call takes: the median over repeats, after the memory the calls will use has been backed once."""
import timeit

import numpy as np


def median_seconds(call, budget=0.2, min_repeats=3, max_repeats=15):
    """Median time of one call, repeating for about `budget` seconds (each sample lasts at least ~2 ms)."""
    once = timeit.timeit(call, number=1)
    number = max(1, int(0.002 / max(once, 1e-9)))
    repeats = max(min_repeats, min(max_repeats, int(budget / max(once * number, 1e-9))))
    return float(np.median(timeit.repeat(call, number=number, repeat=repeats))) / number


def prime_memory(cases):
    """Touch, once, as much fresh memory as a few outputs of the largest case take.

    The first process to touch memory pays for the OS (and, in a virtual machine, the host) to back it: measured
    here at ~100 ms for 80 MB, against ~5 ms once backed. Without this the first peer timed on a large case pays
    for everyone."""
    largest = max((case.size * np.dtype(case.dtype).itemsize for case in cases), default=0)
    block = np.empty(4 * largest, np.uint8)
    block.fill(1)
    del block
