"""Leaves that pick part of a value: an item of several outputs, a stretch of a dim, chosen indices.

>>> import torch
>>> import fluxion.layers as fl
>>> x = torch.arange(12.0).reshape(3, 4)
>>> fl.Narrow(1, -2, 2)(x).tolist(), fl.IndexSelect(0, [2, 0])(x)[:, 0].tolist()
([[2.0, 3.0], [6.0, 7.0], [10.0, 11.0]], [8.0, 0.0])
"""

from collections.abc import Mapping, Sequence
from typing import Any, cast

import torch
from jaxtyping import Shaped
from torch import Tensor

from fluxion import dims
from fluxion.dims import Dim, Shape, ShapeValue
from fluxion.errors import LayerError, ShapeError
from fluxion.tree.module import Module


class Get(Module):
    """Item ``key`` of its input: of several outputs (a tuple, a list, a dict), or of a tensor along dim 0.

    ``Get(0)`` after an LSTM keeps its output and drops the state. Several values arriving at once
    (a Chain or a Graph gives a tuple's items as separate arguments) are the sequence indexed; one
    value is indexed itself: a list or a dict by ``key``, a tensor as ``x[key]`` (dim 0 dropped).
    So a one-item tuple reaches ``Get`` as its item, and ``Get(0)`` indexes that.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> out, (h, c) = fl.LSTM(4, 3)(torch.zeros(5, 4))
    >>> fl.Chain(fl.LSTM(4, 3), fl.Get(0))(torch.zeros(5, 4)).shape
    torch.Size([5, 3])
    >>> fl.Get("logits")({"logits": torch.ones(2)}).tolist(), fl.Get(-1)(torch.eye(2)).tolist()
    ([1.0, 1.0], [0.0, 1.0])
    """

    def __init__(self, key: int | str = 0) -> None:
        super().__init__()
        if isinstance(key, bool) or not isinstance(cast(object, key), int | str):
            raise LayerError(f"Get: key must be an int or a string, got {key!r}")
        self.key = key

    def forward(self, *inputs: Any) -> Any:
        if len(inputs) != 1:
            return inputs[cast(int, self.key)]
        return inputs[0][self.key]

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """The shape of the item: one of several shapes, a dict's entry, or a tensor's shape without dim 0.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.Get(0).output_shape(dims.Shape(["B", "T", 3]), (dims.Shape([1, "B", 3]),) * 2)
        (B, T, 3)
        >>> fl.Get(1).output_shape(dims.Shape([4, "T"]))
        (T,)
        """
        what = f"Get({self.key!r})"
        if not inputs:
            raise ShapeError(f"{what} takes a value to index, got nothing")
        value: object = inputs if len(inputs) > 1 else next(iter(inputs))
        if isinstance(value, Mapping):
            entries = cast(Mapping[object, ShapeValue], value)
            if self.key not in entries:
                raise ShapeError(f"{what} expects a dict with key {self.key!r}, got keys {list(entries)}")
            return entries[self.key]
        if value is None:
            raise ShapeError(f"{what} expects a value to index, got None")
        if not isinstance(self.key, int):
            raise ShapeError(f"{what} takes a string key only from a dict, got {value!r}")
        if isinstance(value, Shape):
            if not value:
                raise ShapeError(f"{what} cannot index a scalar (a tensor of rank 0)")
            _check_index(self.key, value[0], what, "dim 0")
            return Shape(value[1:])
        items = cast(tuple[ShapeValue, ...], value)
        if not -len(items) <= self.key < len(items):
            raise ShapeError(f"{what} expects at least {_needed(self.key)} values, got {len(items)}")
        return items[self.key]

    def extra_repr(self) -> str:
        return f"key={self.key!r}"


class Narrow(Module):
    """``torch.narrow``: ``length`` items along ``dim`` from ``start`` (a negative ``start`` counts from the end).

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Narrow(dim=1, start=-1, length=1)(torch.arange(6).reshape(2, 3)).tolist()
    [[2], [5]]
    """

    def __init__(self, dim: int, start: int, length: int) -> None:
        super().__init__()
        for name, value in (("dim", dim), ("start", start), ("length", length)):
            if isinstance(value, bool) or not isinstance(cast(object, value), int):
                raise LayerError(f"Narrow: {name} must be an int, got {value!r}")
        if length < 0:
            raise LayerError(f"Narrow: length must be at least 0, got {length}")
        if start < 0 and start + length > 0:
            raise LayerError(
                f"Narrow: from start {start} (counted from the end) at most {-start} items remain, got length {length}"
            )
        self.dim = dim
        self.start = start
        self.length = length

    def forward(self, input: Shaped[Tensor, "..."]) -> Shaped[Tensor, "..."]:
        return input.narrow(self.dim, self.start, self.length)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """The input's shape with dim ``dim`` of size ``length``; the dim must hold ``start + length`` items
        (``-start`` for a negative ``start``).

        A symbolic size is at least 1; when the symbols do not decide that it is large enough, a
        ShapeError says which comparison was left open.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.Narrow(-1, 0, 1).output_shape(dims.Shape(["B", "T"]))
        (B, 1)
        >>> fl.Narrow(1, 2, 3).output_shape(dims.Shape(["B", 4]))
        Traceback (most recent call last):
        ...
        fluxion.errors.ShapeError: Narrow(dim=1, start=2, length=3) needs dim 1 of at least 5 items, got 4
        """
        what = f"Narrow({self.extra_repr()})"
        shape = dims.single(inputs, what)
        if not shape:
            raise ShapeError(f"{what} cannot narrow a scalar (a tensor of rank 0)")
        axis = _axis(self.dim, len(shape), what)
        needed = -self.start if self.start < 0 else self.start + self.length
        _check_at_least(shape[axis], needed, what, f"dim {self.dim}")
        return Shape([*shape[:axis], self.length, *shape[axis + 1 :]])

    def extra_repr(self) -> str:
        return f"dim={self.dim}, start={self.start}, length={self.length}"


class IndexSelect(Module):
    """``torch.index_select`` along ``dim`` with the indices ``index``, kept as an int64 buffer.

    The buffer is persistent (``<name>.index`` in the state_dict, as TorchArc's own layer has it),
    so a checkpoint may carry other indices; the shape rule reads the buffer.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> select = fl.IndexSelect(dim=-1, index=[0, 0, 2])
    >>> select(torch.tensor([[1, 2, 3]])).tolist(), list(select.state_dict())
    ([[1, 1, 3]], ['index'])
    """

    index: Tensor

    def __init__(self, dim: int, index: Sequence[int]) -> None:
        super().__init__()
        given = cast(object, index)
        if isinstance(given, str | bytes) or not isinstance(given, Sequence):
            raise LayerError(f"IndexSelect: index must be a list of ints, got {index!r}")
        items = cast(Sequence[object], given)
        if any(isinstance(item, bool) or not isinstance(item, int) or item < 0 for item in items):
            raise LayerError(f"IndexSelect: index must be a list of ints of at least 0, got {list(items)!r}")
        if isinstance(dim, bool) or not isinstance(cast(object, dim), int):
            raise LayerError(f"IndexSelect: dim must be an int, got {dim!r}")
        self.dim = dim
        self.register_buffer("index", torch.tensor(list(index), dtype=torch.long))

    def forward(self, input: Shaped[Tensor, "..."]) -> Shaped[Tensor, "..."]:
        return torch.index_select(input, self.dim, self.index)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """The input's shape with dim ``dim`` of size ``len(index)``; each index must be inside that dim.

        A scalar takes one index, 0, and stays a scalar (as torch has it).

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.IndexSelect(1, [3, 1]).output_shape(dims.Shape(["B", 4, "T"]))
        (B, 2, T)
        """
        what = f"IndexSelect(dim={self.dim})"
        shape = dims.single(inputs, what)
        count = self.index.numel()
        largest = None if count == 0 or self.index.is_meta else int(self.index.max())
        if not shape:
            _axis(self.dim, 0, what)
            if count != 1 or (largest is not None and largest != 0):
                raise ShapeError(f"{what} selects from a scalar with the one index 0, got {self._shown_index()}")
            return shape
        axis = _axis(self.dim, len(shape), what)
        if largest is not None:
            _check_at_least(shape[axis], largest + 1, what, f"dim {self.dim} (index {largest})")
        return Shape([*shape[:axis], count, *shape[axis + 1 :]])

    def _shown_index(self) -> str:
        return "[...]" if self.index.is_meta else repr([int(item) for item in self.index])

    def extra_repr(self) -> str:
        return f"dim={self.dim}, index={self._shown_index()}"


def _axis(index: int, rank: int, what: str) -> int:
    """``index`` wrapped into ``0..rank-1`` as torch wraps a dim (a scalar accepts -1 and 0)."""
    count = max(rank, 1)
    if not -count <= index < count:
        raise ShapeError(f"{what} expects an input with a dim {index}, got rank {rank}")
    return index + count if index < 0 else index


def _check_at_least(size: Dim, needed: int, what: str, where: str) -> None:
    """``size >= needed``, decided by the symbols (which are at least 1), or a ShapeError."""
    enough = dims.nonnegative(size - needed) if not isinstance(size, int) else size >= needed
    if enough is None:
        raise ShapeError(
            f"{what} cannot tell whether {where} ({dims.show(size)}) holds at least {needed} items; "
            "infer with a number for that dim"
        )
    if not enough:
        raise ShapeError(f"{what} needs {where} of at least {needed} items, got {dims.show(size)}")


def _check_index(key: int, size: Dim, what: str, where: str) -> None:
    """``-size <= key < size``: the index exists along a dim of ``size``."""
    _check_at_least(size, _needed(key), what, where)


def _needed(key: int) -> int:
    """How many items a sequence needs for ``key`` to index one."""
    return -key if key < 0 else key + 1
