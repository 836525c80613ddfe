"""Leaves that change the shape of a tensor without touching its values.

>>> import torch
>>> import fluxion.layers as fl
>>> fl.Chain(fl.Flatten(), fl.Unflatten(1, (3, 4)))(torch.zeros(2, 12)).shape
torch.Size([2, 3, 4])
"""

from collections.abc import Sequence
from typing import Any, cast

import torch
from jaxtyping import Shaped
from torch import Tensor

from fluxion import dims
from fluxion.dims import Dim, Shape, ShapeValue
from fluxion.errors import LayerError, ShapeError
from fluxion.layers import checks
from fluxion.tree.module import Module


class Flatten(torch.nn.Flatten, Module):
    """Flattens dimensions ``start_dim..end_dim`` (all but the batch dimension by default).

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Flatten()(torch.zeros(2, 3, 4)).shape
    torch.Size([2, 12])
    """

    def forward(self, input: Shaped[Tensor, "..."]) -> Shaped[Tensor, "..."]:
        return input.flatten(self.start_dim, self.end_dim)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """Dims ``start_dim..end_dim`` merged into one, their product; a scalar becomes ``(1,)``.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.Flatten().output_shape(dims.Shape(["B", 3, "H", "W"]))
        (B, 3*H*W)
        """
        what = type(self).__name__
        shape = dims.single(inputs, what)
        start = _axis(self.start_dim, len(shape), what)
        end = _axis(self.end_dim, len(shape), what)
        if not shape:
            return Shape([1])
        if start > end:
            raise ShapeError(
                f"{what} expects start_dim ({self.start_dim}) not to come after end_dim ({self.end_dim}), "
                f"got an input of rank {len(shape)}"
            )
        return Shape([*shape[:start], dims.product(shape[start : end + 1]), *shape[end + 1 :]])


class Unflatten(torch.nn.Unflatten, Module):
    """Splits dimension ``dim`` into ``unflattened_size``.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Unflatten(1, (2, 3))(torch.zeros(4, 6)).shape
    torch.Size([4, 2, 3])
    """

    def __init__(self, dim: int, unflattened_size: torch.Size | list[int] | tuple[int, ...]) -> None:
        if not unflattened_size:
            raise LayerError("Unflatten: unflattened_size must have at least one size, got ()")
        _check_target_sizes("Unflatten", "unflattened_size", unflattened_size)
        super().__init__(dim, unflattened_size)

    def forward(self, input: Shaped[Tensor, "..."]) -> Shaped[Tensor, "..."]:
        return torch.unflatten(input, self.dim, self.unflattened_size)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """Dim ``dim`` replaced by ``unflattened_size``, whose one ``-1`` (if any) is inferred.

        The sizes must multiply to that dim's size; with a ``-1``, the others must divide it (a
        constraint when that depends on the symbols, and the inferred size is the exact quotient).

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.Unflatten(1, (4, -1)).output_shape(dims.Shape(["B", 12]))
        (B, 4, 3)
        >>> fl.Unflatten(-1, (2, -1)).output_shape(dims.Shape(["B", "T"]))
        (B, 2, T/2)
        """
        what = type(self).__name__
        shape = dims.single(inputs, what)
        if not shape:
            raise ShapeError(f"{what} expects an input of rank at least 1, got a scalar")
        axis = _axis(self.dim, len(shape), what)
        sizes = tuple(int(size) for size in self.unflattened_size)
        if not sizes:
            raise ShapeError(f"{what} expects at least one size to unflatten into, got ()")
        unflattened = _infer_sizes(shape[axis], sizes, what, f"the size of dim {self.dim}", f"sizes {sizes}")
        return Shape([*shape[:axis], *unflattened, *shape[axis + 1 :]])


class Reshape(Module):
    """Reshapes every dimension but the first (the batch) to ``shape``.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Reshape(3, -1)(torch.zeros(2, 12)).shape
    torch.Size([2, 3, 4])
    """

    def __init__(self, *shape: int) -> None:
        super().__init__()
        _check_target_sizes("Reshape", "shape", shape)
        self.shape = shape

    def forward(self, input: Shaped[Tensor, "batch ..."]) -> Shaped[Tensor, "batch ..."]:
        return input.reshape(input.shape[0], *self.shape)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """``(batch, *shape)``, the one ``-1`` of ``shape`` (if any) inferred.

        Without ``-1``, ``shape`` must hold as many elements per batch item as the input (a
        constraint when that depends on the symbols). With ``-1``, its size is the exact quotient
        of the input's elements per batch item by the product of the other sizes: a constraint
        records that this divides evenly when the symbols do not decide it, and the size is then
        written as a fraction (``H*W/2``), so that multiplying it back gives ``H*W`` again.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims, shapes
        >>> fl.Reshape(3, -1).output_shape(dims.Shape(["B", 3, "H", "W"]))
        (B, 3, H*W)
        >>> report = shapes.infer(fl.Chain(fl.Reshape(2, -1)), ("B", "H", "W"))
        >>> report.output, str(report.constraints[0]).split(" (")[0]
        ((B, 2, H*W/2), 'H*W must be divisible by 2')
        """
        what = type(self).__name__
        shape = dims.single(inputs, what)
        batch = shape.at(0, what)
        sizes = tuple(self.shape)
        _check_sizes(sizes, what)
        if batch == 0:  # no elements: any shape without -1 fits, and -1 is ambiguous
            if -1 in sizes:
                raise ShapeError(f"{what} cannot infer the -1 in {sizes} for a batch of 0 (any size would fit)")
            return Shape([0, *sizes])
        # batch * rest elements into batch * product(sizes): the batch (not 0) cancels out
        rest = dims.product(shape[1:])
        return Shape(
            [batch, *_infer_sizes(rest, sizes, what, "the number of elements per batch item", f"shape {sizes}")]
        )

    def extra_repr(self) -> str:
        return ", ".join(map(str, self.shape))


class Permute(Module):
    """Reorders dimensions as ``torch.permute`` does.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Permute(0, 2, 1)(torch.zeros(1, 2, 3)).shape
    torch.Size([1, 3, 2])
    """

    def __init__(self, *dims: int) -> None:
        super().__init__()
        self.dims = dims

    def forward(self, input: Shaped[Tensor, "..."]) -> Shaped[Tensor, "..."]:
        return input.permute(*self.dims)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """The input's dims in the order ``dims`` (one per input dim, each once).

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.Permute(0, 2, 3, 1).output_shape(dims.Shape(["B", 3, "H", "W"]))
        (B, H, W, 3)
        """
        what = type(self).__name__
        shape = dims.single(inputs, what)
        if not self.dims:
            raise ShapeError(f"{what} expects at least one dim (torch's permute() fails without), got ()")
        if len(self.dims) != len(shape):
            raise ShapeError(
                f"{what} expects an input of rank {len(self.dims)} (dims {self.dims}), got rank {len(shape)}"
            )
        axes = [_axis(index, len(shape), what) for index in self.dims]
        if len(set(axes)) != len(axes):
            raise ShapeError(f"{what} expects each dim once, got {self.dims}")
        return Shape([shape[axis] for axis in axes])

    def extra_repr(self) -> str:
        return ", ".join(map(str, self.dims))


class Transpose(Module):
    """Swaps two dimensions.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Transpose(1, 2)(torch.zeros(1, 2, 3)).shape
    torch.Size([1, 3, 2])
    """

    def __init__(self, dim0: int, dim1: int) -> None:
        super().__init__()
        self.dim0 = dim0
        self.dim1 = dim1

    def forward(self, input: Shaped[Tensor, "..."]) -> Shaped[Tensor, "..."]:
        return input.transpose(self.dim0, self.dim1)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """The input's shape with dims ``dim0`` and ``dim1`` swapped.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.Transpose(-1, -2).output_shape(dims.Shape(["B", "T", 8]))
        (B, 8, T)
        """
        what = type(self).__name__
        shape = dims.single(inputs, what)
        first = _axis(self.dim0, len(shape), what)
        second = _axis(self.dim1, len(shape), what)
        if not shape:
            return shape
        swapped = list(shape)
        swapped[first], swapped[second] = shape[second], shape[first]
        return Shape(swapped)

    def extra_repr(self) -> str:
        return f"{self.dim0}, {self.dim1}"


class Squeeze(Module):
    """Removes dimension ``dim`` when its size is 1.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Squeeze(1)(torch.zeros(2, 1, 3)).shape
    torch.Size([2, 3])
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input: Shaped[Tensor, "..."]) -> Shaped[Tensor, "..."]:
        return input.squeeze(self.dim)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """The input's shape without dim ``dim`` when its size is 1, unchanged otherwise (as torch).

        A symbolic size that may or may not be 1 (a plain ``H``) cannot be decided: a ShapeError.
        One that never is (``2*H``, ``H + 1``) stays, as torch leaves such dims alone.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.Squeeze(1).output_shape(dims.Shape(["B", 1, "T"])), fl.Squeeze(1).output_shape(dims.Shape(["B", 4]))
        ((B, T), (B, 4))
        """
        what = type(self).__name__
        shape = dims.single(inputs, what)
        axis = _axis(self.dim, len(shape), what)
        if not shape:
            return shape
        one = _is_one(shape[axis])
        if one is None:
            raise ShapeError(
                f"{what} cannot tell whether dim {self.dim} ({dims.show(shape[axis])}) is 1: torch removes it only "
                "when it is; infer with a number for that dim"
            )
        return Shape([*shape[:axis], *shape[axis + 1 :]]) if one else shape

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Unsqueeze(Module):
    """Inserts a dimension of size 1 at ``dim``.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Unsqueeze(0)(torch.zeros(2, 3)).shape
    torch.Size([1, 2, 3])
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input: Shaped[Tensor, "..."]) -> Shaped[Tensor, "..."]:
        return input.unsqueeze(self.dim)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """The input's shape with a 1 inserted at ``dim`` (``-1`` appends it).

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.Unsqueeze(-1).output_shape(dims.Shape(["B", "T"]))
        (B, T, 1)
        """
        what = type(self).__name__
        shape = dims.single(inputs, what)
        count = len(shape) + 1
        if not -count <= self.dim < count:
            need = self.dim if self.dim >= 0 else -self.dim - 1
            raise ShapeError(
                f"{what} expects an input of rank at least {need} to insert dim {self.dim}, got rank {len(shape)}"
            )
        axis = self.dim + count if self.dim < 0 else self.dim
        return Shape([*shape[:axis], 1, *shape[axis:]])

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Slicing(Module):
    """``x[start:end:step]`` along dimension ``dim``, with Python's slice rules.

    ``end=None`` runs to the end, ``end=0`` gives an empty slice, negative ``start`` and ``end``
    count from the end, and out-of-range bounds are clipped, exactly as for a Python list.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> x = torch.arange(6).reshape(1, 6)
    >>> fl.Slicing(dim=1, start=-4, end=-1, step=2)(x).tolist()
    [[2, 4]]
    >>> fl.Slicing(dim=1, end=0)(x).shape
    torch.Size([1, 0])
    """

    def __init__(self, dim: int = 0, start: int | None = None, end: int | None = None, step: int = 1) -> None:
        super().__init__()
        if step < 1:
            raise LayerError(f"Slicing: step must be at least 1, got {step}")
        self.dim = dim
        self.start = start
        self.end = end
        self.step = step
        cut = slice(start, end, step)
        self._index: tuple[Any, ...] = (
            (*(slice(None),) * dim, cut) if dim >= 0 else (..., cut, *(slice(None),) * (-dim - 1))
        )

    def forward(self, input: Shaped[Tensor, "..."]) -> Shaped[Tensor, "..."]:
        return input[self._index]

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """The input's shape with dim ``dim`` cut to the slice's length (Python's slice rules).

        Bounds are clipped to the size, so a symbolic size needs the symbols to decide on which side
        of each bound it falls (``T >= 1`` always holds, ``T >= 2`` may not): when they do not, a
        ShapeError says which comparison was left open.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.Slicing(dim=1, start=1).output_shape(dims.Shape(["B", "T"]))
        (B, T - 1)
        >>> fl.Slicing(dim=-1, step=2).output_shape(dims.Shape(["B", "T", 7]))
        (B, T, 4)
        """
        what = type(self).__name__
        shape = dims.single(inputs, what)
        axis = self.dim if self.dim >= 0 else len(shape) + self.dim
        if not 0 <= axis < len(shape):
            raise ShapeError(f"{what} expects an input with a dim {self.dim}, got rank {len(shape)}")
        length = _slice_length(shape[axis], self.start, self.end, self.step, f"{what} (dim={self.dim})")
        return Shape([*shape[:axis], length, *shape[axis + 1 :]])

    def extra_repr(self) -> str:
        return f"dim={self.dim}, start={self.start}, end={self.end}, step={self.step}"


class Chunk(Module):
    """Splits a tensor into ``chunks`` pieces along ``dim`` and returns them as a tuple.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> [t.shape[0] for t in fl.Chunk(3)(torch.zeros(6))]
    [2, 2, 2]
    """

    def __init__(self, chunks: int, dim: int = 0) -> None:
        super().__init__()
        checks.at_least("Chunk", "chunks", chunks, 1)
        self.chunks = chunks
        self.dim = dim

    def forward(self, input: Shaped[Tensor, "..."]) -> tuple[Tensor, ...]:
        return input.chunk(self.chunks, self.dim)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """A tuple of the chunks' shapes, as ``torch.chunk`` cuts them.

        With a number along ``dim``, chunks have ``ceil(size / chunks)`` items, the last fewer, and
        there may be fewer chunks than asked for (``torch.chunk`` of 5 into 4 gives 3). With a
        symbolic size only the even split is described: ``chunks`` chunks of ``size / chunks``,
        with the constraint that ``chunks`` divides the size.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.Chunk(3, dim=1).output_shape(dims.Shape(["B", 7]))
        ((B, 3), (B, 3), (B, 1))
        >>> fl.Chunk(2, dim=-1).output_shape(dims.Shape(["B", "T", 8]))
        ((B, T, 4), (B, T, 4))
        """
        what = type(self).__name__
        shape = dims.single(inputs, what)
        if not shape:
            raise ShapeError(f"{what} expects an input of rank at least 1, got a scalar")
        if self.chunks < 1:
            raise ShapeError(f"{what} expects chunks of at least 1, got {self.chunks}")
        axis = _axis(self.dim, len(shape), what)
        size = shape[axis]
        if isinstance(size, int):
            pieces: list[Dim] = list(_chunk_sizes(size, self.chunks))
        else:
            piece = exact_divide(
                size,
                self.chunks,
                f"{what} needs a number for dim {self.dim} unless it is divisible by {self.chunks}, "
                "as the rule only describes even chunks of a symbolic size",
            )
            pieces = [piece] * self.chunks
        return tuple(Shape([*shape[:axis], piece, *shape[axis + 1 :]]) for piece in pieces)

    def extra_repr(self) -> str:
        return f"chunks={self.chunks}, dim={self.dim}"


class Split(Module):
    """``torch.split``: pieces of ``split_size_or_sections`` items along ``dim``, as a tuple.

    An int gives pieces of that size, the last one smaller when the size is not a multiple of it
    (7 split by 3 gives 3, 3, 1); a list gives pieces of those sizes, which must add up to the
    size of ``dim``.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> [t.shape[1] for t in fl.Split(3)(torch.zeros(2, 7))], [t.shape[1] for t in fl.Split([1, 4])(torch.zeros(2, 5))]
    ([3, 3, 1], [1, 4])
    """

    def __init__(self, split_size_or_sections: int | list[int], dim: int = 1) -> None:
        super().__init__()
        given = cast(object, split_size_or_sections)
        if isinstance(given, list | tuple):
            sections = cast(Sequence[object], given)
            if not sections or any(isinstance(item, bool) or not isinstance(item, int) for item in sections):
                raise LayerError(f"Split: sections must be a non-empty list of ints, got {list(sections)!r}")
            checks.at_least("Split", "sections", cast(Sequence[int], tuple(sections)), 0)
            split_size_or_sections = [cast(int, item) for item in sections]
        else:
            checks.at_least("Split", "split_size", cast(int, given), 1)
        if isinstance(dim, bool) or not isinstance(cast(object, dim), int):
            raise LayerError(f"Split: dim must be an int, got {dim!r}")
        self.split_size_or_sections = split_size_or_sections
        self.dim = dim

    def forward(self, input: Shaped[Tensor, "..."]) -> tuple[Tensor, ...]:
        return torch.split(input, self.split_size_or_sections, self.dim)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """A tuple of the pieces' shapes.

        With sections, their sum must be the size of ``dim`` (a constraint when it is symbolic).
        With a split size, the number of pieces depends on the size, which must then be a number.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.Split(3, dim=-1).output_shape(dims.Shape(["B", 7]))
        ((B, 3), (B, 3), (B, 1))
        >>> fl.Split([2, 6], dim=1).output_shape(dims.Shape(["B", 8, "T"]))
        ((B, 2, T), (B, 6, T))
        """
        what = f"Split({self.split_size_or_sections}, dim={self.dim})"
        shape = dims.single(inputs, what)
        if not shape:
            raise ShapeError(f"{what} expects an input of rank at least 1, got a scalar")
        axis = _axis(self.dim, len(shape), what)
        size = shape[axis]
        if isinstance(self.split_size_or_sections, list):
            sections = self.split_size_or_sections
            dims.require_equal(sum(sections), size, f"{what} expects dim {self.dim} to be {sum(sections)}")
            pieces: list[Dim] = [*sections]
        elif isinstance(size, int):
            piece = self.split_size_or_sections
            count = max(-(-size // piece), 1)
            pieces = [*[piece] * (count - 1), size - piece * (count - 1)]
        else:
            raise ShapeError(
                f"{what} needs a number for dim {self.dim} ({dims.show(size)}): the number of pieces depends on it"
            )
        return tuple(Shape([*shape[:axis], piece, *shape[axis + 1 :]]) for piece in pieces)

    def extra_repr(self) -> str:
        return f"{self.split_size_or_sections}, dim={self.dim}"


class Unbind(Module):
    """Removes dimension ``dim`` and returns the slices along it as a tuple.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> len(fl.Unbind(1)(torch.zeros(2, 3)))
    3
    """

    def __init__(self, dim: int = 0) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input: Shaped[Tensor, "..."]) -> tuple[Tensor, ...]:
        return input.unbind(self.dim)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """A tuple of as many shapes as dim ``dim`` has items, each the input's shape without it.

        That number decides how many outputs there are, so it must be a number, not a symbol.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.Unbind(1).output_shape(dims.Shape(["B", 2, "T"]))
        ((B, T), (B, T))
        """
        what = type(self).__name__
        shape = dims.single(inputs, what)
        if not shape:
            raise ShapeError(f"{what} expects an input of rank at least 1, got a scalar")
        axis = _axis(self.dim, len(shape), what)
        size = shape[axis]
        if not isinstance(size, int):
            raise ShapeError(
                f"{what} needs a number for dim {self.dim} (it gives one output per item), got {dims.show(size)}"
            )
        rest = Shape([*shape[:axis], *shape[axis + 1 :]])
        return tuple(rest for _ in range(size))

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


def exact_divide(size: Dim, divisor: int, what: str) -> Dim:
    """``size / divisor`` for a size that ``divisor`` must divide (``divisor`` at least 1).

    A number that it does not divide is a ShapeError (``what`` says what was expected). For a
    symbolic size the quotient is exact, ``H*W/2`` rather than ``floor(H*W/2)``, and when the
    symbols do not decide whether it is a whole number, the constraint
    ``divisor * floor(size / divisor) = size`` is recorded (inside ``fluxion.shapes.infer``).

    >>> from fluxion import dims
    >>> h = dims.dim("H")
    >>> exact_divide(12, 4, "Unflatten expects 12 to be divisible by 4"), exact_divide(6 * h, 4, "")
    (3, 3*H/2)
    >>> exact_divide(2 * h + 1, 2, "Reshape expects a size divisible by 2")
    Traceback (most recent call last):
    ...
    fluxion.errors.ShapeError: Reshape expects a size divisible by 2, got 2*H + 1
    """
    if isinstance(size, int):
        if size % divisor:
            raise ShapeError(f"{what}, got {size}")
        return size // divisor
    if divisor == 1:
        return size
    quotient = dims.normal(size / divisor)
    if not dims.whole(quotient):
        dims.require_equal(divisor * dims.floordiv(size, divisor), size, what)
    return quotient


# -- helpers of the rules above -------------------------------------------------------------------


def _axis(index: int, rank: int, what: str) -> int:
    """``index`` wrapped into ``0..rank-1`` as torch wraps a dim (a scalar accepts -1 and 0)."""
    count = max(rank, 1)
    if not -count <= index < count:
        raise ShapeError(f"{what} expects an input with a dim {index}, got rank {rank}")
    return index + count if index < 0 else index


def _check_target_sizes(layer: str, name: str, sizes: Sequence[int]) -> None:
    """The sizes to reshape into, at construction: each at least -1, at most one -1."""
    if any(size < -1 for size in sizes) or list(sizes).count(-1) > 1:
        raise LayerError(f"{layer}: {name} takes sizes of at least -1, with at most one -1, got {tuple(sizes)}")


def _check_sizes(sizes: Sequence[int], what: str) -> None:
    """The sizes ``reshape`` and ``unflatten`` accept: at least -1, and at most one -1."""
    if any(size < -1 for size in sizes):
        raise ShapeError(f"{what} expects sizes of at least -1, got {tuple(sizes)}")
    if list(sizes).count(-1) > 1:
        raise ShapeError(f"{what} expects at most one -1 to infer, got {tuple(sizes)}")


def _infer_sizes(total: Dim, sizes: Sequence[int], what: str, subject: str, detail: str) -> list[Dim]:
    """``sizes`` with its -1 inferred so that they multiply to ``total`` (torch's ``infer_size``)."""
    _check_sizes(sizes, what)
    known = dims.product(size for size in sizes if size != -1)
    assert isinstance(known, int)
    if -1 not in sizes:
        dims.require_equal(known, total, f"{what} expects {subject} to be {known} ({detail})")
        return list(sizes)
    if known == 0:
        raise ShapeError(f"{what} cannot infer the -1 in {tuple(sizes)}: the other sizes multiply to 0")
    inferred = exact_divide(total, known, f"{what} expects {subject} to be divisible by {known} ({detail})")
    return [inferred if size == -1 else size for size in sizes]


def _is_one(size: Dim) -> bool | None:
    """Whether a size is 1: for all values of the symbols (True), for none (False), or it depends (None)."""
    if isinstance(size, int):
        return size == 1
    if dims.equal(size, 1):
        return True
    if dims.nonnegative(size - 2) or dims.nonnegative(-size):  # at least 2, or at most 0
        return False
    return None


def _slice_length(size: Dim, start: int | None, end: int | None, step: int, what: str) -> Dim:
    """The length of ``range(size)[start:end:step]`` (``step`` at least 1), as Python and torch compute it."""

    def undecided(condition: str) -> ShapeError:
        return ShapeError(
            f"{what} cannot tell whether {condition}: the slice's length depends on it; "
            "infer with a number for that dim"
        )

    def bound(index: int | None, default: Dim) -> Dim:
        if index is None:
            return default
        if index >= 0:  # min(index, size)
            inside = dims.nonnegative(size - index)
            if inside is None:
                raise undecided(f"{dims.show(size)} >= {index}")
            return index if inside else size
        inside = dims.nonnegative(size + index)  # max(size + index, 0)
        if inside is None:
            raise undecided(f"{dims.show(size)} >= {-index}")
        return dims.normal(size + index) if inside else 0

    first = bound(start, 0)
    last = bound(end, size)
    span = dims.normal(last - first)
    ahead = dims.nonnegative(span)
    if ahead is None:
        raise undecided(f"{dims.show(last)} >= {dims.show(first)}")
    return dims.floordiv(span + step - 1, step) if ahead else 0


def _chunk_sizes(size: int, chunks: int) -> list[int]:
    """The sizes of ``torch.chunk``'s pieces of ``size`` items (``chunks`` at least 1)."""
    piece = -(-size // chunks)
    if piece == 0:  # nothing to cut: torch still gives ``chunks`` empty pieces
        return [0] * chunks
    count = -(-size // piece)
    return [piece] * (count - 1) + [size - piece * (count - 1)]
