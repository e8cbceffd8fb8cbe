"""The vocabulary of the public signatures (fastsoftmax/_api.py, _training.py, _threads.py, reference.py).

Only type checkers import this module (under `if TYPE_CHECKING:`, the annotations being strings by
`from __future__ import annotations`): `import fastsoftmax` never loads numpy.typing (~1 ms) and the functions carry
no runtime checks. A consequence: typing.get_type_hints() on a public function raises NameError at runtime;
inspect.signature shows the annotations as strings.

What the annotations promise, and where they stop (checked by tests/test_typing.py):
- A float or complex ndarray in gives that dtype out (float16, float32, float64, long double); bool and integer
  arrays give float64. Anything else array-like (lists, scalars, other array types) gives a less precise type.
- A 0-d array in gives a numpy scalar out (scipy does the same), which the annotations call an array, as numpy's
  own annotations do for 0-d arithmetic; numpy scalars have the array's methods and attributes.
- Where the result is an array or a scalar depending on the input's ndim (logsumexp with an axis, cross_entropy
  with reduction="none"), the type is `NDArray[...] | Any`: usable as an array without narrowing, honest that it
  may be a scalar (typeshed's "Any trick").
- A dask array in gives a dask array out for softmax and log_softmax, recognised by the protocol below without
  importing dask; logsumexp of a dask array falls to its untyped (Any) overload.
"""
from __future__ import annotations

from typing import Any, Protocol, SupportsIndex, TypeAlias, TypeVar

import numpy as np

# What numpy accepts as an axis (numpy integers too, through __index__); None means every axis.
Axis: TypeAlias = SupportsIndex | tuple[SupportsIndex, ...] | None

# The float dtypes that come back as they went in; Inexact adds complex, which softmax keeps too.
FloatT = TypeVar("FloatT", bound=np.floating[Any])
InexactT = TypeVar("InexactT", bound=np.inexact[Any])


class DaskArray(Protocol):
    """What a dask array has and a numpy array lacks: dask's collection protocol, and chunks (which dask's other
    collections, dataframes and bags, do not have)."""

    def __dask_graph__(self) -> Any: ...

    @property
    def chunks(self) -> Any: ...


DaskArrayT = TypeVar("DaskArrayT", bound=DaskArray)
