"""Turn any (array, axes) into the canonical (outer, n, inner) view the kernels reduce over axis 1.

For a C-contiguous array and a run of adjacent reduction axes this is a reshape, no copy: rows when inner == 1,
columns when inner > 1. A Fortran-ordered array is the C-ordered transpose, so it gets the same treatment.
Any other layout is copied once; reduction axes that are not adjacent are moved to the end first.
"""
import math

import numpy as np


class Layout:
    """How an input of `shape` reduced over `axes` maps onto (outer, n, inner), and back."""

    __slots__ = ("shape", "axes", "order", "outer", "n", "inner", "kept_shape")

    def __init__(self, array, axes):
        shape = array.shape
        ndim = len(shape)
        self.shape = shape
        self.axes = axes
        adjacent = not axes or axes[-1] - axes[0] == len(axes) - 1
        flags = array.flags
        if adjacent and flags.c_contiguous:
            self.order = "C"
        elif adjacent and flags.f_contiguous:
            self.order = "F"
        else:
            self.order = "C" if adjacent else "moved"
        if len(axes) == ndim:  # the whole array: the most common call, kept cheap
            self.kept_shape = ()
            self.outer, self.n, self.inner = 1, array.size, 1
            return
        self.kept_shape = tuple(length for i, length in enumerate(shape) if i not in axes)
        self.n = math.prod([shape[i] for i in axes])
        if self.order == "moved":
            self.outer, self.inner = math.prod(self.kept_shape), 1
        else:
            first = axes[0] if axes else ndim
            last = axes[-1] + 1 if axes else ndim
            before, after = math.prod(shape[:first]), math.prod(shape[last:])
            self.outer, self.inner = (before, after) if self.order == "C" else (after, before)

    @property
    def shape3(self):
        return (self.outer, self.n, self.inner)

    def view3(self, array):
        """The (outer, n, inner) C-contiguous view of `array` (shaped like the input), copying only if needed."""
        if self.order == "moved":
            end = range(len(self.shape) - len(self.axes), len(self.shape))
            return np.ascontiguousarray(np.moveaxis(array, self.axes, end)).reshape(self.shape3)
        if self.order == "F":
            array = array.T
        return np.ascontiguousarray(array).reshape(self.shape3)

    def writable_view3(self, array):
        """A no-copy (outer, n, inner) view of output `array`, or None when its memory is not laid out for it."""
        if self.order == "C" and array.flags.c_contiguous:
            return array.reshape(self.shape3)
        if self.order == "F" and array.flags.f_contiguous:
            return array.T.reshape(self.shape3)
        return None

    def new_output(self, dtype):
        """A fresh result array in the input's memory order, so that writable_view3 needs no copy."""
        return np.empty(self.shape, dtype, order="F" if self.order == "F" else "C")

    def copy_back(self, y3, array):
        """Write the computed (outer, n, inner) y3 into `array`, shaped like the input."""
        with np.errstate(over="ignore"):  # float16 results beyond its range round to inf
            self._copy_back(y3, array)

    def _copy_back(self, y3, array):
        if self.order == "moved":
            end = range(len(self.shape) - len(self.axes), len(self.shape))
            moved_shape = self.kept_shape + tuple(self.shape[i] for i in self.axes)
            np.copyto(np.moveaxis(array, self.axes, end), y3.reshape(moved_shape), casting="unsafe")
        elif self.order == "F":
            np.copyto(array, y3.reshape(self.shape[::-1]).T, casting="unsafe")
        else:
            np.copyto(array, y3.reshape(self.shape), casting="unsafe")

    def reduced(self, y2):
        """Map the computed (outer, inner) reduction back to the shape of the input without its reduction axes."""
        if self.order == "F":
            return y2.reshape(self.kept_shape[::-1]).T
        return y2.reshape(self.kept_shape)
