"""The public API as a typed user writes it. tests/test_typing.py type-checks this file with `mypy --strict` (no
error allowed) and runs it, checking every annotated name below against the value it really got, so the
annotations can promise neither too little nor something untrue. What the annotations promise:
fastsoftmax/_types.py."""
from typing import Any

import dask.array as da
import numpy as np
import numpy.typing as npt

import fastsoftmax
from fastsoftmax import reference

x32: npt.NDArray[np.float32] = np.linspace(-3, 3, 40, dtype=np.float32).reshape(4, 10)
x64: npt.NDArray[np.float64] = np.linspace(-3, 3, 40).reshape(4, 10)
counts: npt.NDArray[np.int64] = np.arange(40).reshape(4, 10)
z128: npt.NDArray[np.complex128] = np.ones(3, np.complex128)
classes: npt.NDArray[np.intp] = np.array([0, 3, 9, 1], np.intp)

# softmax and log_softmax keep a float or complex dtype; integers become float64; dask arrays stay dask arrays
p32: npt.NDArray[np.float32] = fastsoftmax.softmax(x32, axis=-1)
p64: npt.NDArray[np.float64] = fastsoftmax.softmax(x64, axis=(0, 1), temperature=0.5, backend="numpy")
p_counts: npt.NDArray[np.float64] = fastsoftmax.softmax(counts, axis=np.int64(1))
p_complex: npt.NDArray[np.complex128] = fastsoftmax.softmax(z128)
p_list: npt.NDArray[np.inexact[Any]] = fastsoftmax.softmax([1.0, 2.0, 3.0])
log_p32: npt.NDArray[np.float32] = fastsoftmax.log_softmax(x32, 1, out=np.empty_like(x32))
lazy: da.Array = da.from_array(x64, chunks=2)  # type: ignore[no-untyped-call, unused-ignore]  # untyped in dask
p_lazy: da.Array = fastsoftmax.log_softmax(lazy, axis=1)

# logsumexp: over every axis a scalar of the input's dtype; over some axes an array; with return_sign a pair
total32: np.float32 = fastsoftmax.logsumexp(x32)
total64: np.float64 = fastsoftmax.logsumexp(x64, axis=None)
per_row32: npt.NDArray[np.float32] = fastsoftmax.logsumexp(x32, axis=1)
kept64: npt.NDArray[np.float64] = fastsoftmax.logsumexp(x64, axis=1, keepdims=True)
value, sign = fastsoftmax.logsumexp(x64, return_sign=True)
value64: np.float64 = value
sign64: np.float64 = sign
row_values, row_signs = fastsoftmax.logsumexp(x32, axis=-1, return_sign=True)
row_values32: npt.NDArray[np.float32] = row_values
row_signs32: npt.NDArray[np.float32] = row_signs
weighted: np.float64 = fastsoftmax.logsumexp(x64, b=np.ones(10))   # with weights: numpy's promotion, typed Any
flag = bool(len(x64))
either: Any = fastsoftmax.logsumexp(x64, return_sign=flag)          # a bool that is not a literal: Any

# training operations
dx32: npt.NDArray[np.float32] = fastsoftmax.softmax_backward(p32, x32, -1)
dx64: npt.NDArray[np.float64] = fastsoftmax.log_softmax_backward(p64, x64, axis=None, out=np.empty_like(x64))
loss32: np.float32 = fastsoftmax.cross_entropy(x32, classes)
summed64: np.float64 = fastsoftmax.cross_entropy(x64, classes, reduction="sum", label_smoothing=0.1, weight=np.ones(10))
per_line32: npt.NDArray[np.float32] = fastsoftmax.cross_entropy(x32, classes, reduction="none", ignore_index=3)
loss_and_grad = fastsoftmax.cross_entropy(x32, p32, axis=1, return_grad=True)
mean_loss32: np.float32 = loss_and_grad[0]
grad32: npt.NDArray[np.float32] = loss_and_grad[1]

# the rest of the package
names: tuple[str, ...] = fastsoftmax.backends()
details: dict[str, Any] = fastsoftmax.info()
include_dir: str = fastsoftmax.get_include()
version: str = fastsoftmax.__version__
threads: int = fastsoftmax.get_num_threads()
previous: int = fastsoftmax.set_num_threads(threads)
reference.softmax(x64.reshape(4, 10, 1), np.empty((4, 10, 1)))
