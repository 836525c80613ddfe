"""Leaves that change the shape of a tensor without touching its values.

>>> import torch
>>> import fluxion.layers as fl
>>> fl.Chain(fl.Flatten(), fl.Unflatten(1, (3, 4)))(torch.zeros(2, 12)).shape
torch.Size([2, 3, 4])
"""

from typing import Any

import torch
from jaxtyping import Shaped
from torch import Tensor

from fluxion.layers.errors import LayerError
from fluxion.layers.module import Module


class Flatten(torch.nn.Flatten, Module):
    """Flattens dimensions ``start_dim..end_dim`` (all but the batch dimension by default).

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Flatten()(torch.zeros(2, 3, 4)).shape
    torch.Size([2, 12])
    """

    def forward(self, input: Shaped[Tensor, "..."]) -> Shaped[Tensor, "..."]:
        return input.flatten(self.start_dim, self.end_dim)


class Unflatten(torch.nn.Unflatten, Module):
    """Splits dimension ``dim`` into ``unflattened_size``.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Unflatten(1, (2, 3))(torch.zeros(4, 6)).shape
    torch.Size([4, 2, 3])
    """

    def forward(self, input: Shaped[Tensor, "..."]) -> Shaped[Tensor, "..."]:
        return torch.unflatten(input, self.dim, self.unflattened_size)


class Reshape(Module):
    """Reshapes every dimension but the first (the batch) to ``shape``.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Reshape(3, -1)(torch.zeros(2, 12)).shape
    torch.Size([2, 3, 4])
    """

    def __init__(self, *shape: int) -> None:
        super().__init__()
        self.shape = shape

    def forward(self, input: Shaped[Tensor, "batch ..."]) -> Shaped[Tensor, "batch ..."]:
        return input.reshape(input.shape[0], *self.shape)

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
        self.chunks = chunks
        self.dim = dim

    def forward(self, input: Shaped[Tensor, "..."]) -> tuple[Tensor, ...]:
        return input.chunk(self.chunks, self.dim)

    def extra_repr(self) -> str:
        return f"chunks={self.chunks}, dim={self.dim}"


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

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
