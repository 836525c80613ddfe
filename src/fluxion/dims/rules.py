"""The helpers a shape rule is written with: checks that record constraints, broadcasting,
concatenation, and reading a layer's inputs.

>>> from fluxion import dims
>>> dims.broadcast([dims.Shape(["B", 1]), dims.Shape([1, 8])], "Sum")
(B, 8)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeGuard

from fluxion.dims.engine import constrain
from fluxion.dims.symbols import Dim, Shape, ShapeValue, equal, normal, show
from fluxion.errors import ShapeError


def require_equal(expected: Dim, got: Dim, what: str) -> None:
    """Check that ``got`` equals ``expected``; record a constraint when that depends on the symbols.

    ``what`` says what is expected (``"Linear expects last dim 200"``); the error adds what came.

    >>> from fluxion import dims
    >>> dims.require_equal(8, 8, "LayerNorm expects last dim 8")
    """
    same = equal(expected, got)
    if same is False:
        raise ShapeError(f"{what}, got {show(got)}")
    if same is None:
        constrain(expected, got, what)


def broadcast(shapes: Sequence[Shape], what: str) -> Shape:
    """The shape of an elementwise result of tensors of ``shapes`` (torch's broadcasting rule).

    Sizes that may differ depending on the symbols are recorded as constraints.

    >>> from fluxion import dims
    >>> dims.broadcast([dims.Shape(["B", 1, 8]), dims.Shape([4, 1])], "Sum")
    (B, 4, 8)
    """
    rank = max((len(shape) for shape in shapes), default=0)
    result: list[Dim] = []
    for position in range(-rank, 0):
        size: Dim = 1
        for shape in shapes:
            if -position > len(shape):
                continue
            other = shape[position]
            if other == 1 or other == size:
                continue
            if size == 1:
                size = other
                continue
            reason = f"{what} needs sizes that broadcast at dim {position} (have {show(size)})"
            if equal(size, other) is not False:
                require_equal(size, other, reason)
            elif equal(other, 1) is None:  # sizes that always differ broadcast only when one is 1
                constrain(other, 1, reason)
            elif equal(size, 1) is None:
                constrain(size, 1, reason)
                size = other
            else:
                raise ShapeError(f"{reason}, got {show(other)}")
        result.append(size)
    return Shape(result)


def concatenate(shapes: Sequence[Shape], dim_index: int, what: str) -> Shape:
    """The shape of ``torch.cat`` of tensors of ``shapes`` along ``dim_index``.

    >>> from fluxion import dims
    >>> dims.concatenate([dims.Shape(["B", 2, "T"]), dims.Shape(["B", 3, "T"])], 1, "Concatenate")
    (B, 5, T)
    """
    if not shapes:
        raise ShapeError(f"{what} has nothing to concatenate")
    first = shapes[0]
    axis = dim_index + len(first) if dim_index < 0 else dim_index
    if not 0 <= axis < len(first):
        raise ShapeError(f"{what} concatenates along dim {dim_index}, but its first input has shape {first!r}")
    for shape in shapes[1:]:
        if len(shape) != len(first):
            raise ShapeError(f"{what} needs inputs of the same rank, got {first!r} and {shape!r}")
        for position, (mine, theirs) in enumerate(zip(first, shape, strict=True)):
            if position != axis:
                require_equal(mine, theirs, f"{what} needs equal sizes outside dim {dim_index} (have {show(mine)})")
    total = normal(sum((shape[axis] for shape in shapes[1:]), first[axis]))
    return Shape([*first[:axis], total, *first[axis + 1 :]])


def single(inputs: tuple[ShapeValue, ...], what: str) -> Shape:
    """The one tensor shape a single-input layer received (a ShapeError otherwise).

    >>> from fluxion import dims
    >>> dims.single((dims.Shape([2, 3]),), "ReLU")
    (2, 3)
    """
    if len(inputs) != 1 or not isinstance(inputs[0], Shape):
        got = ", ".join(repr(value) for value in inputs) or "nothing"
        raise ShapeError(f"{what} takes one tensor, got {got}")
    return inputs[0]


def several(value: ShapeValue) -> TypeGuard[tuple[ShapeValue, ...]]:
    """Whether a value is several outputs (a plain tuple), not one tensor's ``Shape``.

    >>> from fluxion import dims
    >>> dims.several(dims.Shape([2])), dims.several((dims.Shape([2]), dims.Shape([3])))
    (False, True)
    """
    return isinstance(value, tuple) and not isinstance(value, Shape)
