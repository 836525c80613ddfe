"""Chains that combine their children in other ways than a plain sequence.

>>> import torch
>>> import fluxion.layers as fl
>>> block = fl.Residual(fl.Linear(4, 4), fl.ReLU())
>>> block(torch.zeros(1, 4)).shape
torch.Size([1, 4])
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from jaxtyping import Float
from torch import Tensor

from fluxion.layers.chain import Chain, ReturnSignal
from fluxion.layers.errors import TreeError
from fluxion.layers.module import Module


class Passthrough(Chain):
    """Runs its children in sequence for their side effects and returns its own input unchanged.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> model = fl.Chain(fl.Passthrough(fl.Lambda(lambda x: x * 0)), fl.Identity())
    >>> model(torch.ones(2)).tolist()
    [1.0, 1.0]
    """

    _tag = "PASS"

    def forward(self, *args: Any) -> Any:
        self._call_children(args)
        return args[0] if len(args) == 1 else args


class Residual(Chain):
    """Adds the result of its children, run in sequence, to its (first) input.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Residual(fl.Lambda(lambda x: 2 * x))(torch.ones(2)).tolist()
    [3.0, 3.0]
    """

    _tag = "RES"

    def forward(self, *args: Any) -> Any:
        return args[0] + self._call_children(args)


class Sum(Chain):
    """Gives its input to every child and sums their outputs.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Sum(fl.Identity(), fl.Lambda(lambda x: 2 * x))(torch.ones(2)).tolist()
    [3.0, 3.0]
    """

    _tag = "SUM"

    def forward(self, *args: Any) -> Any:
        total: Any = None
        for child in self._modules.values():
            output = child(*args)  # pyright: ignore[reportOptionalCall]
            total = output if total is None else total + output
        return total


class Parallel(Chain):
    """Gives its input to every child and returns their outputs as a tuple.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> a, b = fl.Parallel(fl.Identity(), fl.Lambda(lambda x: -x))(torch.ones(1))
    >>> a.item(), b.item()
    (1.0, -1.0)
    """

    _tag = "PAR"

    def forward(self, *args: Any) -> tuple[Any, ...]:
        return tuple(child(*args) for child in self._modules.values())  # pyright: ignore[reportOptionalCall]


class Distribute(Chain):
    """Gives its i-th input to its i-th child and returns their outputs as a tuple.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> a, b = fl.Distribute(fl.Identity(), fl.Lambda(lambda x: -x))(torch.ones(1), torch.ones(1))
    >>> a.item(), b.item()
    (1.0, -1.0)
    """

    _tag = "DISTR"

    def forward(self, *args: Any) -> tuple[Any, ...]:
        if len(args) != len(self._modules):
            raise TreeError(
                f"{self._label()}: got {len(args)} inputs for {len(self._modules)} children; "
                "Distribute needs exactly one input per child"
            )
        return tuple(child(arg) for child, arg in zip(self._modules.values(), args, strict=True))  # pyright: ignore[reportOptionalCall]


class Concatenate(Chain):
    """Gives its input to every child and concatenates their outputs along ``dim``.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Concatenate(fl.Identity(), fl.Identity(), dim=-1)(torch.ones(2, 3)).shape
    torch.Size([2, 6])
    """

    _tag = "CAT"

    def __init__(self, *children: torch.nn.Module | Iterable[torch.nn.Module], dim: int = 0) -> None:
        super().__init__(*children)
        self.dim = dim

    def forward(self, *args: Any) -> Tensor:
        return torch.cat([child(*args) for child in self._modules.values()], dim=self.dim)  # pyright: ignore[reportOptionalCall]

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Matmul(Chain):
    """Gives its input to its two children and returns the matrix product of their outputs.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Matmul(fl.Identity(), fl.Transpose(-1, -2))(torch.ones(1, 2, 3)).shape
    torch.Size([1, 2, 2])
    """

    _tag = "MATMUL"

    def __init__(self, input: torch.nn.Module, other: torch.nn.Module) -> None:
        super().__init__(input, other)

    def forward(self, *args: Any) -> Float[Tensor, "*batch n p"]:
        left, right = self._modules.values()
        return torch.matmul(left(*args), right(*args))  # pyright: ignore[reportOptionalCall]


class Lambda(Module):
    """A leaf that applies a function to its inputs.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Lambda(torch.neg)(torch.ones(1)).tolist()
    [-1.0]
    """

    def __init__(self, func: Callable[..., Any]) -> None:
        super().__init__()
        self.func = func

    def forward(self, *args: Any) -> Any:
        return self.func(*args)

    def extra_repr(self) -> str:
        return getattr(self.func, "__qualname__", None) or type(self.func).__name__


class Return(Module):
    """Ends the Chain that contains it: that Chain returns this layer's input, skipping the rest.

    Only the innermost enclosing Chain ends; its parent goes on with the value as usual.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> model = fl.Chain(fl.Chain(fl.Identity(), fl.Return(), fl.Lambda(torch.neg)), fl.Lambda(lambda x: x + 1))
    >>> model(torch.zeros(1)).tolist()
    [1.0]
    """

    def forward(self, *args: Any) -> Any:
        raise ReturnSignal(args[0] if len(args) == 1 else args)
