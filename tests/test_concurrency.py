"""Eight Python threads calling at once get exactly what one thread gets: no crash, no deadlock, no mix-up."""
import threading

import numpy as np
import pytest

import fastsoftmax

COMPILED = [name for name in ("cython", "numba") if name in fastsoftmax.backends()]
CALLS = [  # (function, shape, dtype, axis): rows, columns and one split row, all above the threading threshold
    ("softmax", (256, 1000), np.float32, -1),
    ("log_softmax", (300, 400), np.float64, 0),
    ("logsumexp", (10**6,), np.float32, None),
    ("softmax", (2 * 10**5,), np.float64, None),
]


@pytest.mark.parametrize("backend", COMPILED)
def test_eight_threads_at_once_match_one(backend):
    rng = np.random.default_rng(9)
    inputs = [rng.normal(0, 3, shape).astype(dtype) for _, shape, dtype, _ in CALLS]

    def run(i):
        func, _, _, axis = CALLS[i % len(CALLS)]
        return getattr(fastsoftmax, func)(inputs[i % len(CALLS)], axis=axis, backend=backend)

    expected = [run(i) for i in range(len(CALLS))]
    results, errors = {}, []
    start = threading.Barrier(8)

    def worker(k):
        try:
            start.wait()
            for repeat in range(3):
                results[k, repeat] = run(k)
        except Exception as exc:  # noqa: BLE001 - collected and reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "deadlock: a thread did not finish"
    assert not errors, errors
    for (k, _), got in results.items():
        np.testing.assert_array_equal(got, expected[k % len(CALLS)])
