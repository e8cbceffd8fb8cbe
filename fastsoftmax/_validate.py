"""Input checks shared by the public functions (_api, _compute), the training operations (_training) and dask
(_dask): what an input is computed in, which axes, whether out= fits, whether a temperature is valid. Imports
none of those modules, so nothing imports anything back."""
import math
import operator

import numpy as np
from numpy.lib.array_utils import normalize_axis_tuple


def input_dtype(dtype, func):
    """The dtype an input of `dtype` is computed in, as scipy would: integers and bools in float64 (scipy rejects
    bools; we take them as 0 and 1), floats and complex as they are, in native byte order."""
    kind = dtype.kind
    if kind in "biu":
        return np.dtype(np.float64)
    if kind not in "fc":
        raise TypeError(f"{func}: expected a real or complex numeric array, got dtype {dtype}")
    return dtype if dtype.isnative else dtype.newbyteorder("=")


def as_input(x, func):
    """x as an array of its compute dtype (a copy only when the dtype or byte order changes)."""
    a = np.asarray(x)
    dtype = input_dtype(a.dtype, func)
    return a if dtype == a.dtype else a.astype(dtype)  # dtype equality includes byte order


def axes(axis, ndim, func):
    """The reduction axes, sorted and non-negative: None (all), an int or a tuple/list of ints, as numpy reads them
    (AxisError out of range, ValueError repeated, TypeError otherwise)."""
    if axis is None:
        return tuple(range(ndim))
    if isinstance(axis, (tuple, list)):
        found = normalize_axis_tuple(tuple(axis), ndim, "axis")
    else:
        try:
            found = normalize_axis_tuple(operator.index(axis), ndim, "axis")
        except TypeError:
            raise TypeError(f"{func}: axis must be None, an int or a tuple of ints, got {axis!r}") from None
    return tuple(sorted(found))


def check_out(out, shape, dtype, func):
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{func}: out must be a numpy array, got {type(out).__name__}")
    if out.shape != shape or out.dtype != dtype:
        raise ValueError(f"{func}: out must have shape {shape} and dtype {dtype}, "
                         f"got shape {out.shape} and dtype {out.dtype}")
    if not out.flags.writeable:
        raise ValueError(f"{func}: out is read-only")


def check_temperature(temperature, func):
    """The temperature as a float; TypeError for a non-number, ValueError unless positive and finite."""
    try:
        t = float(temperature)
    except (TypeError, ValueError):
        raise TypeError(f"{func}: temperature must be a real number, got {temperature!r}") from None
    if not (0 < t < math.inf):
        raise ValueError(f"{func}: temperature must be positive and finite, got {temperature!r}")
    return t


def is_dask(x):
    """True for a dask collection, recognised without importing dask (an optional extra, imported on first use)."""
    return type(x).__module__.startswith("dask.")
