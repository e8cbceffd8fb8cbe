"""The benchmark case table, shared by the pytest-benchmark suite and the command line."""
import numpy as np

# (name, shape, dtype, axis): the shapes people softmax over, from one tiny vector to bandwidth-bound arrays
CASES = [
    ("tiny_3", (3,), np.float64, -1),
    ("vector_1000", (1000,), np.float32, -1),
    ("rows_256x1000", (256, 1000), np.float32, -1),
    ("rows_256x1000", (256, 1000), np.float64, -1),
    ("attention_96x128x128", (96, 128, 128), np.float32, -1),
    ("vocab_8x152064", (8, 152064), np.float32, -1),
    ("rows_4096x4096", (4096, 4096), np.float32, -1),
    ("rows_4096x4096", (4096, 4096), np.float64, -1),
    ("columns_2000x2000", (2000, 2000), np.float32, 0),
    ("whole_1e7", (10**7,), np.float32, None),
]


def case_id(case):
    name, _, dtype, _ = case
    return f"{name}-{np.dtype(dtype).name}"


def make_input(case, seed=0):
    _, shape, dtype, _ = case
    return np.random.default_rng(seed).normal(0, 3, shape).astype(dtype)
