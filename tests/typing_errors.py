"""Mistakes mypy must catch in code using fastsoftmax: tests/test_typing.py type-checks this file and expects an
error on exactly the lines marked `# E: <mypy error code>`, and on no other line. Never run."""
import numpy as np
import numpy.typing as npt

import fastsoftmax

x32: npt.NDArray[np.float32] = np.zeros((4, 10), np.float32)
x64: npt.NDArray[np.float64] = np.zeros((4, 10))
classes: npt.NDArray[np.intp] = np.zeros(4, np.intp)

# arguments of the wrong type
fastsoftmax.softmax(x32, axis=1.5)  # E: call-overload
fastsoftmax.softmax(x32, axis="0")  # E: call-overload
fastsoftmax.log_softmax(x64, temperature="hot")  # E: call-overload
fastsoftmax.softmax(x64, backend=1)  # E: call-overload
fastsoftmax.softmax(x64, 1, None)  # E: call-overload
fastsoftmax.logsumexp(x64, keepdims="yes")  # E: call-overload
fastsoftmax.softmax_backward(x32, x32)  # E: call-overload
fastsoftmax.cross_entropy(x32, classes, reduction="avg")  # E: call-overload
fastsoftmax.cross_entropy(x32, classes, axis=(0, 1))  # E: call-overload
fastsoftmax.set_num_threads("2")  # E: arg-type

# results are not what they are taken for: the dtype, scalar or array, tuple or not
wrong_dtype: npt.NDArray[np.float32] = fastsoftmax.softmax(x64)  # E: assignment
int_result: npt.NDArray[np.int64] = fastsoftmax.softmax(classes)  # E: assignment
scalar_taken_for_array: npt.NDArray[np.float64] = fastsoftmax.logsumexp(x64)  # E: assignment
wrong_scalar: np.float64 = fastsoftmax.logsumexp(x32)  # E: assignment
pair_taken_for_value: np.float64 = fastsoftmax.logsumexp(x64, return_sign=True)  # E: assignment
value, sign = fastsoftmax.logsumexp(x64)  # E: misc
grad_not_asked: tuple[np.float32, npt.NDArray[np.float32]] = fastsoftmax.cross_entropy(x32, classes)  # E: assignment
thread_count: str = fastsoftmax.get_num_threads()  # E: assignment
version_number: float = fastsoftmax.__version__  # E: assignment

# names that do not exist (the lazy __version__ must not make every attribute look like a str)
fastsoftmax.sotfmax(x64)  # E: attr-defined
fastsoftmax.logsumexp(x64, out=x64)  # E: call-overload
