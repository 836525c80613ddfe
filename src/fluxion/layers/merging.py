"""Leaves that merge several tensors into one: the joins of a :class:`~fluxion.layers.Graph`.

Each takes two inputs or more (fewer is almost always a missing edge, so it is refused);
``VecDot`` and ``BatchMatmul`` take exactly two. They are leaves: their inputs come from outside,
and they hold nothing. The containers ``Sum`` and ``Concatenate`` are the other way round: they
run their children (the branches) on one input and merge the outputs, so the branches and their
weights live inside them. A Graph joins its edges with these leaves; a Chain that splits and
merges again uses the containers.

``Add``, ``Multiply`` and ``Mean`` broadcast their inputs as torch's operators do. TorchArc's
``MergeSum``, ``MergeProd`` and ``MergeMean`` stack their inputs first, so they take equal shapes
only: for those they give the same values, and they accept more (shapes that broadcast).

>>> import torch
>>> import fluxion.layers as fl
>>> x, y = torch.ones(2, 3), torch.full((2, 3), 2.0)
>>> fl.Add()(x, y)[0].tolist(), fl.Multiply()(x, y)[0].tolist(), fl.Cat(dim=-1)(x, y).shape
([3.0, 3.0, 3.0], [2.0, 2.0, 2.0], torch.Size([2, 6]))
"""

from typing import Any, cast

import torch
from jaxtyping import Shaped
from torch import Tensor

from fluxion import dims
from fluxion.dims import ShapeValue
from fluxion.errors import LayerError, ShapeError
from fluxion.tree.module import Module


class Add(Module):
    """The sum of its inputs, with torch's broadcasting: ``Add()(x, y) == x + y``.

    A leaf, for values that arrive on their own (a Graph's join); to run branches on one input and
    sum their outputs, use the container :class:`~fluxion.layers.Sum`.

    With ``inplace=True`` the sum is written into the first input (which must have the result's
    shape), as a residual ``x += shortcut`` does: no new tensor, as with ``ReLU(inplace=True)``.
    Use it only where nothing else reads that input afterwards.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Add()(torch.ones(2, 1), torch.ones(3), torch.ones(1)).tolist()
    [[3.0, 3.0, 3.0], [3.0, 3.0, 3.0]]
    >>> x = torch.ones(2)
    >>> fl.Add(inplace=True)(x, torch.ones(2)) is x, x.tolist()
    (True, [2.0, 2.0])
    """

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def forward(self, *inputs: Shaped[Tensor, "..."]) -> Shaped[Tensor, "..."]:
        _require_several(self, len(inputs))
        total = inputs[0]
        if self.inplace:
            for other in inputs[1:]:
                total = total.add_(other)
            return total
        for other in inputs[1:]:
            total = total + other
        return total

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """The broadcast of its input shapes; in place, the first input's shape, which must be that.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.Add().output_shape(dims.Shape(["B", 1, 8]), dims.Shape(["T", 1]))
        (B, T, 8)
        >>> fl.Add(inplace=True).output_shape(dims.Shape([2, 1, 8]), dims.Shape([3, 1]))
        Traceback (most recent call last):
        ...
        fluxion.errors.ShapeError: Add(inplace=True) adds into its first input, which must have the sum's shape \
(2, 3, 8), got (2, 1, 8)
        """
        name = type(self).__name__
        shapes = _shapes(self, inputs)
        result = dims.broadcast(shapes, name)
        if self.inplace:
            first = shapes[0]
            expected = f"{name}(inplace=True) adds into its first input, which must have the sum's shape {result!r}"
            if len(first) != len(result) or any(dims.equal(a, b) is False for a, b in zip(first, result, strict=True)):
                raise ShapeError(f"{expected}, got {first!r}")
            for mine, theirs in zip(first, result, strict=True):
                dims.require_equal(theirs, mine, expected)
            return first
        return result


class Multiply(Module):
    """The element-wise product of its inputs, with torch's broadcasting.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Multiply()(torch.tensor([2.0, 3.0]), torch.tensor(4.0)).tolist()
    [8.0, 12.0]
    """

    def forward(self, *inputs: Shaped[Tensor, "..."]) -> Shaped[Tensor, "..."]:
        _require_several(self, len(inputs))
        product = inputs[0]
        for other in inputs[1:]:
            product = product * other
        return product

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """The broadcast of its input shapes.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.Multiply().output_shape(dims.Shape(["B", 4]), dims.Shape([4]))
        (B, 4)
        """
        return dims.broadcast(_shapes(self, inputs), type(self).__name__)


class Cat(Module):
    """Its inputs concatenated along ``dim`` (``torch.cat``).

    A leaf, for values that arrive on their own (a Graph's join); to run branches on one input and
    concatenate their outputs, use the container :class:`~fluxion.layers.Concatenate` (which is why
    this one is named ``Cat``).

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Cat(dim=1)(torch.ones(2, 3), torch.ones(2, 5)).shape
    torch.Size([2, 8])
    """

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, *inputs: Shaped[Tensor, "..."]) -> Shaped[Tensor, "..."]:
        _require_several(self, len(inputs))
        return torch.cat(inputs, dim=self.dim)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """Its input shapes concatenated along ``dim``.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.Cat(dim=1).output_shape(dims.Shape(["B", 2, "T"]), dims.Shape(["B", "C", "T"]))
        (B, C + 2, T)
        """
        return dims.concatenate(_shapes(self, inputs), self.dim, type(self).__name__)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Mean(Module):
    """The element-wise mean of its inputs, with torch's broadcasting (as :class:`Add` broadcasts).

    TorchArc's ``MergeMean`` (a stack, then a mean over the stacked dim) gives the same values for
    inputs of equal shapes; this one also takes shapes that broadcast.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Mean()(torch.tensor([1.0, 2.0]), torch.tensor([3.0, 6.0])).tolist()
    [2.0, 4.0]
    """

    def forward(self, *inputs: Shaped[Tensor, "..."]) -> Shaped[Tensor, "..."]:
        _require_several(self, len(inputs))
        broadcast = cast(list[Tensor], torch.broadcast_tensors(*inputs))  # pyright: ignore[reportUnknownMemberType]
        return torch.stack(broadcast).mean(dim=0)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """The broadcast of its input shapes.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.Mean().output_shape(dims.Shape(["B", 1]), dims.Shape(["B", 4]))
        (B, 4)
        """
        return dims.broadcast(_shapes(self, inputs), type(self).__name__)


class Pack(Module):
    """Its inputs as one tuple. As a Graph's output node it returns a tuple of one value where the
    Graph would return the value itself (TorchArc's ``output: [y]`` gives ``(y,)``).

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Pack()(torch.ones(2))
    (tensor([1., 1.]),)
    """

    def forward(self, *inputs: Any) -> tuple[Any, ...]:
        return inputs

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """The tuple of its input shapes.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.Pack().output_shape(dims.Shape(["B", 4]))
        ((B, 4),)
        """
        return tuple(inputs)


class Stack(Module):
    """Its inputs stacked along a new dim ``dim`` (``torch.stack``): all must have the same shape.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Stack(dim=1)(torch.zeros(2, 5), torch.ones(2, 5), torch.ones(2, 5)).shape
    torch.Size([2, 3, 5])
    """

    def __init__(self, dim: int = 1) -> None:
        super().__init__()
        if isinstance(dim, bool) or not isinstance(cast(object, dim), int):
            raise LayerError(f"Stack: dim must be an int, got {dim!r}")
        self.dim = dim

    def forward(self, *inputs: Shaped[Tensor, "..."]) -> Shaped[Tensor, "..."]:
        _require_several(self, len(inputs))
        return torch.stack(inputs, dim=self.dim)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """The common shape of its inputs with their count inserted at ``dim``.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.Stack(dim=-1).output_shape(dims.Shape(["B", "T"]), dims.Shape(["B", "T"]))
        (B, T, 2)
        """
        what = type(self).__name__
        shapes = _shapes(self, inputs)
        first = _same_shapes(shapes, what)
        count = len(first) + 1
        if not -count <= self.dim < count:
            raise ShapeError(f"{what} inserts dim {self.dim}, which inputs of rank {len(first)} cannot have")
        axis = self.dim + count if self.dim < 0 else self.dim
        return dims.Shape([*first[:axis], len(shapes), *first[axis:]])

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class VecDot(Module):
    """The dot product of two inputs over their last dim (``torch.linalg.vecdot``), the other dims broadcast.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.VecDot()(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), torch.tensor([1.0, 1.0])).tolist()
    [3.0, 7.0]
    """

    def forward(self, x: Shaped[Tensor, "*batch n"], y: Shaped[Tensor, "*batch n"]) -> Shaped[Tensor, "*batch"]:
        return cast(Tensor, torch.linalg.vecdot(x, y))  # pyright: ignore[reportUnknownMemberType]

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """The broadcast of the two shapes without its last dim (the sizes there broadcast too, but
        for two vectors, which torch multiplies as they are).

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.VecDot().output_shape(dims.Shape([2, "T", 5]), dims.Shape(["T", 5]))
        (2, T)
        """
        what = type(self).__name__
        first, second = _two(self, inputs)
        if len(first) == 1 and len(second) == 1:  # torch's dot product of two vectors: no broadcasting
            dims.require_equal(first[0], second[0], f"{what} of two vectors expects equal sizes ({first!r})")
        result = dims.broadcast([first, second], what)
        return dims.Shape(result[:-1])  # two scalars give a scalar


class BatchMatmul(Module):
    """The batched matrix product of two 3-D inputs (``torch.bmm``): ``(B, n, m) @ (B, m, p)`` is ``(B, n, p)``.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.BatchMatmul()(torch.ones(2, 3, 4), torch.ones(2, 4, 5)).shape
    torch.Size([2, 3, 5])
    """

    def forward(self, input: Shaped[Tensor, "b n m"], mat2: Shaped[Tensor, "b m p"]) -> Shaped[Tensor, "b n p"]:
        return torch.bmm(input, mat2)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """``(B, n, p)``; the batch sizes and the inner sizes must be equal (no broadcasting).

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.BatchMatmul().output_shape(dims.Shape(["B", "T", 8]), dims.Shape(["B", 8, "S"]))
        (B, T, S)
        """
        what = type(self).__name__
        first, second = _two(self, inputs)
        if len(first) != 3 or len(second) != 3:
            raise ShapeError(f"{what} expects two inputs of rank 3, got {first!r} and {second!r}")
        dims.require_equal(first[0], second[0], f"{what} expects equal batch sizes (first input {first!r})")
        dims.require_equal(first[2], second[1], f"{what} expects the second input's dim 1 to be {dims.show(first[2])}")
        return dims.Shape([first[0], first[1], second[2]])


def _require_several(layer: Module, count: int) -> None:
    if count < 2:
        raise LayerError(f"{type(layer).__name__} merges two inputs or more, got {count}")


def _shapes(layer: Module, inputs: tuple[ShapeValue, ...]) -> list[dims.Shape]:
    """The tensor shapes a merging rule received: two or more, each one tensor's."""
    what = type(layer).__name__
    if len(inputs) < 2:
        got = ", ".join(repr(value) for value in inputs) or "nothing"
        raise ShapeError(f"{what} merges two tensors or more, got {got}")
    shapes: list[dims.Shape] = []
    for value in inputs:
        if not isinstance(value, dims.Shape):
            raise ShapeError(f"{what} merges tensors, but one of its inputs is {value!r}")
        shapes.append(value)
    return shapes


def _two(layer: Module, inputs: tuple[ShapeValue, ...]) -> tuple[dims.Shape, dims.Shape]:
    """The two tensor shapes a rule of two inputs received."""
    what = type(layer).__name__
    if len(inputs) != 2 or not all(isinstance(value, dims.Shape) for value in inputs):
        got = ", ".join(repr(value) for value in inputs) or "nothing"
        raise ShapeError(f"{what} takes two tensors, got {got}")
    return cast(dims.Shape, inputs[0]), cast(dims.Shape, inputs[1])


def _same_shapes(shapes: list[dims.Shape], what: str) -> dims.Shape:
    """The one shape all of ``shapes`` have (equal ranks, sizes equal or constrained to be)."""
    first = shapes[0]
    for shape in shapes[1:]:
        if len(shape) != len(first):
            raise ShapeError(f"{what} expects inputs of the same shape, got {first!r} and {shape!r}")
        for position, (mine, theirs) in enumerate(zip(first, shape, strict=True)):
            dims.require_equal(mine, theirs, f"{what} expects inputs of the same shape (dim {position} of {first!r})")
    return first
