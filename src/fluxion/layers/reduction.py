"""Reductions by name: ``torch.<name>(x, dim=dim, keepdim=keepdim)`` as a leaf with an exact shape rule.

>>> import torch
>>> import fluxion.layers as fl
>>> fl.Reduce("sum", dim=[1, 2])(torch.ones(2, 3, 4)).tolist()
[12.0, 12.0]
"""

from collections.abc import Sequence
from typing import Any, cast

import torch
from jaxtyping import Shaped
from torch import Tensor

from fluxion import dims
from fluxion.dims import Dim, Shape, ShapeValue
from fluxion.errors import LayerError, ShapeError
from fluxion.tree.module import Module

MANY_DIMS = ("sum", "mean", "nansum", "nanmean", "amax", "amin", "std", "var", "logsumexp", "all", "any")
"""Reductions over one dim, a list of dims, or (``dim=None``) all of them (but ``logsumexp``)."""
ONE_DIM = ("prod", "argmax", "argmin", "max", "min", "median", "nanmedian")
"""Reductions over exactly one dim."""
WITH_INDICES = ("max", "min", "median", "nanmedian")
"""Reductions that give ``(values, indices)``, as torch does."""
NOT_EMPTY = ("amax", "amin", "argmax", "argmin", "max", "min", "median", "nanmedian")
"""Reductions that torch refuses over a dim without items."""


class Reduce(Module):
    """``torch.<name>(x, dim=dim, keepdim=keepdim)`` for a reduction named by ``name``.

    ``name`` is one of ``sum``, ``mean``, ``nansum``, ``nanmean``, ``amax``, ``amin``, ``std``,
    ``var``, ``logsumexp``, ``all``, ``any`` (``dim`` an int, a list of dims, or None for all of
    them; not None for ``logsumexp``) or ``prod``, ``argmax``, ``argmin``, ``max``, ``min``,
    ``median``, ``nanmedian`` (``dim`` one int). ``max``, ``min``, ``median`` and ``nanmedian``
    give ``(values, indices)`` as torch does (and as TorchArc's ``Reduce`` does, so a ``Get(0)``
    after it keeps the values); ``amax`` and ``amin`` give the values alone. An empty list of dims
    is refused: torch reads it as every dim for some reductions and as none for others.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> x = torch.tensor([[1.0, 5.0], [4.0, 2.0]])
    >>> fl.Reduce("amax", dim=1)(x).tolist(), fl.Reduce("mean", dim=None)(x).item()
    ([5.0, 4.0], 3.0)
    >>> values, indices = fl.Reduce("max", dim=1, keepdim=True)(x)
    >>> values.tolist(), indices.tolist()
    ([[5.0], [4.0]], [[1], [0]])
    """

    def __init__(self, name: str, dim: int | list[int] | None, keepdim: bool = False) -> None:
        super().__init__()
        if name not in MANY_DIMS + ONE_DIM:
            listed = ", ".join(MANY_DIMS + ONE_DIM)
            raise LayerError(f"Reduce: name must be one of {listed}, got {name!r}")
        given = cast(object, dim)
        if isinstance(given, list | tuple):
            items = cast(Sequence[object], given)
            if name in ONE_DIM:
                raise LayerError(f"Reduce: {name} reduces one dim (an int), got {list(items)!r}")
            if not items or any(isinstance(item, bool) or not isinstance(item, int) for item in items):
                raise LayerError(f"Reduce: dim must be an int, a non-empty list of ints or None, got {list(items)!r}")
            dim = [cast(int, item) for item in items]
        elif given is None:
            if name in ONE_DIM or name == "logsumexp":
                raise LayerError(f"Reduce: {name} needs a dim (an int), got None")
        elif isinstance(given, bool) or not isinstance(given, int):
            raise LayerError(f"Reduce: dim must be an int, a list of ints or None, got {dim!r}")
        if not isinstance(cast(object, keepdim), bool):
            raise LayerError(f"Reduce: keepdim must be a bool, got {keepdim!r}")
        self.name = name
        self.dim = dim
        self.keepdim = keepdim
        self.function = getattr(torch, name)
        self._dims: Any = tuple(dim) if isinstance(dim, list) else dim  # what torch takes

    def forward(self, input: Shaped[Tensor, "..."]) -> Any:
        result = self.function(input, dim=self._dims, keepdim=self.keepdim)
        return tuple(result) if self.name in WITH_INDICES else result

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """The input's shape with the reduced dims removed (or 1 with ``keepdim``); twice for
        ``(values, indices)``. ``amax``, ``argmax``, ``max``... need the reduced dims not empty.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.Reduce("sum", dim=[1, -1]).output_shape(dims.Shape(["B", "H", "W"]))
        (B,)
        >>> fl.Reduce("median", dim=1, keepdim=True).output_shape(dims.Shape(["B", "T", 4]))
        ((B, 1, 4), (B, 1, 4))
        """
        what = f"Reduce({self.extra_repr()})"
        shape = dims.single(inputs, what)
        given: list[int] = (
            list(range(len(shape))) if self.dim is None else [self.dim] if isinstance(self.dim, int) else self.dim
        )
        axes = [_axis(index, len(shape), what) for index in given]
        if len(set(axes)) != len(axes):
            raise ShapeError(f"{what} expects each dim once, got {self.dim} for an input of rank {len(shape)}")
        if self.name in NOT_EMPTY and shape:
            reduced = dims.product(shape[axis] for axis in axes)
            _check_not_empty(reduced, what)
        if self.keepdim:
            result = Shape([1 if axis in axes else size for axis, size in enumerate(shape)])
        else:
            result = Shape([size for axis, size in enumerate(shape) if axis not in axes])
        return (result, result) if self.name in WITH_INDICES else result

    def extra_repr(self) -> str:
        keep = ", keepdim=True" if self.keepdim else ""
        return f"{self.name!r}, dim={self.dim}{keep}"


def _axis(index: int, rank: int, what: str) -> int:
    """``index`` wrapped into ``0..rank-1`` as torch wraps a dim (a scalar accepts -1 and 0)."""
    count = max(rank, 1)
    if not -count <= index < count:
        raise ShapeError(f"{what} expects an input with a dim {index}, got rank {rank}")
    return 0 if rank == 0 else index + count if index < 0 else index


def _check_not_empty(size: Dim, what: str) -> None:
    if isinstance(size, int):
        if size == 0:
            raise ShapeError(f"{what} cannot reduce dims without items (torch refuses it), got size 0")
        return
    if dims.nonnegative(size - 1) is not True:
        raise ShapeError(f"{what} cannot tell whether the reduced dims ({dims.show(size)}) have items")
