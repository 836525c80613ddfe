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

from fluxion import dims
from fluxion.dims import ShapeValue
from fluxion.errors import ShapeError, TreeError
from fluxion.tree.chain import Chain, ReturnSignal
from fluxion.tree.module import Module


class Passthrough(Chain):
    """Runs its children in sequence for their side effects and returns its own input unchanged.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> model = fl.Chain(fl.Passthrough(fl.Lambda(lambda x: x * 0)), fl.Identity())
    >>> model(torch.ones(2)).tolist()
    [1.0, 1.0]
    """

    repr_tag = "PASS"

    def forward(self, *args: Any) -> Any:
        self._call_children(args)
        return args[0] if len(args) == 1 else args

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """Its input's shape (its children's shapes are worked out too, for the report).

        >>> import fluxion.layers as fl
        >>> from fluxion import shapes
        >>> shapes.infer(fl.Chain(fl.Passthrough(fl.Linear(4, 2))), ("B", 4)).output
        (B, 4)
        """
        super().output_shape(*inputs)
        return inputs[0] if len(inputs) == 1 else inputs


class Residual(Chain):
    """Adds the result of its children, run in sequence, to its (first) input.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Residual(fl.Lambda(lambda x: 2 * x))(torch.ones(2)).tolist()
    [3.0, 3.0]
    """

    repr_tag = "RES"

    def forward(self, *args: Any) -> Any:
        return args[0] + self._call_children(args)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """The broadcast of its first input's shape and its children's output shape.

        >>> import fluxion.layers as fl
        >>> from fluxion import shapes
        >>> shapes.infer(fl.Chain(fl.Residual(fl.Linear(8, 8))), ("B", "T", 8)).output
        (B, T, 8)
        """
        branch = super().output_shape(*inputs)
        return dims.broadcast([_tensor(inputs[0] if inputs else None, self), _tensor(branch, self)], "Residual")


class Sum(Chain):
    """Gives its input to every child and sums their outputs: a container whose children are the
    branches, ``Sum(a, b)(x) == a(x) + b(x)``. To add values that arrive on their own (the join of
    a ``Graph``, where each comes along an edge), use the leaf ``fluxion.layers.Add``.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Sum(fl.Identity(), fl.Lambda(lambda x: 2 * x))(torch.ones(2)).tolist()
    [3.0, 3.0]
    """

    repr_tag = "SUM"

    def forward(self, *args: Any) -> Any:
        total: Any = None
        for child in self._modules.values():
            output = child(*args)  # pyright: ignore[reportOptionalCall]
            total = output if total is None else total + output
        return total

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """The broadcast of its children's output shapes (a single child's output as it is, as in ``forward``).

        >>> import fluxion.layers as fl
        >>> from fluxion import shapes
        >>> shapes.infer(fl.Chain(fl.Sum(fl.Linear(4, 2), fl.Linear(4, 2))), ("B", 4)).output
        (B, 2)
        """
        results = [dims.run(child, *inputs) for child in self.children_list()]
        if len(results) < 2:  # forward adds nothing: no child gives None, one child its output as it is
            return results[0] if results else None
        return dims.broadcast([_tensor(result, self) for result in results], "Sum")


class Parallel(Chain):
    """Gives its input to every child and returns their outputs as a tuple.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> a, b = fl.Parallel(fl.Identity(), fl.Lambda(lambda x: -x))(torch.ones(1))
    >>> a.item(), b.item()
    (1.0, -1.0)
    """

    repr_tag = "PAR"

    def forward(self, *args: Any) -> tuple[Any, ...]:
        return tuple(child(*args) for child in self._modules.values())  # pyright: ignore[reportOptionalCall]

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """The tuple of its children's output shapes.

        >>> import fluxion.layers as fl
        >>> from fluxion import shapes
        >>> shapes.infer(fl.Chain(fl.Parallel(fl.Linear(4, 2), fl.Linear(4, 3))), ("B", 4)).output
        ((B, 2), (B, 3))
        """
        return tuple(dims.run(child, *inputs) for child in self.children_list())


class Distribute(Chain):
    """Gives its i-th input to its i-th child and returns their outputs as a tuple.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> a, b = fl.Distribute(fl.Identity(), fl.Lambda(lambda x: -x))(torch.ones(1), torch.ones(1))
    >>> a.item(), b.item()
    (1.0, -1.0)
    """

    repr_tag = "DISTR"

    def forward(self, *args: Any) -> tuple[Any, ...]:
        if len(args) != len(self._modules):
            raise TreeError(
                f"{self._label()}: got {len(args)} inputs for {len(self._modules)} children; "
                "Distribute needs exactly one input per child"
            )
        return tuple(child(arg) for child, arg in zip(self._modules.values(), args, strict=True))  # pyright: ignore[reportOptionalCall]

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """The tuple of each child's output shape for its own input.

        >>> import fluxion.layers as fl
        >>> from fluxion import shapes
        >>> model = fl.Chain(fl.Parallel(fl.Identity(), fl.Identity()), fl.Distribute(fl.Linear(4, 2), fl.ReLU()))
        >>> shapes.infer(model, ("B", 4)).output
        ((B, 2), (B, 4))
        """
        if len(inputs) != len(self._modules):
            raise ShapeError(f"Distribute needs one input per child: got {len(inputs)} for {len(self._modules)}")
        return tuple(dims.run(child, value) for child, value in zip(self.children_list(), inputs, strict=True))


class Concatenate(Chain):
    """Gives its input to every child and concatenates their outputs along ``dim``: a container
    whose children are the branches. To concatenate values that arrive on their own (the join of a
    ``Graph``), use the leaf ``fluxion.layers.Cat``.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Concatenate(fl.Identity(), fl.Identity(), dim=-1)(torch.ones(2, 3)).shape
    torch.Size([2, 6])
    """

    repr_tag = "CAT"

    def __init__(self, *children: torch.nn.Module | Iterable[torch.nn.Module], dim: int = 0) -> None:
        super().__init__(*children)
        self.dim = dim

    def forward(self, *args: Any) -> Tensor:
        return torch.cat([child(*args) for child in self._modules.values()], dim=self.dim)  # pyright: ignore[reportOptionalCall]

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """Its children's output shapes, concatenated along ``dim``.

        >>> import fluxion.layers as fl
        >>> from fluxion import shapes
        >>> shapes.infer(fl.Chain(fl.Concatenate(fl.Linear(4, 2), fl.Linear(4, 3), dim=-1)), ("B", 4)).output
        (B, 5)
        """
        outputs = [_tensor(dims.run(child, *inputs), self) for child in self.children_list()]
        return dims.concatenate(outputs, self.dim, "Concatenate")

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Matmul(Chain):
    """Gives its input to its two children and returns the matrix product of their outputs.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Matmul(fl.Identity(), fl.Transpose(-1, -2))(torch.ones(1, 2, 3)).shape
    torch.Size([1, 2, 2])
    """

    repr_tag = "MATMUL"

    def __init__(self, input: torch.nn.Module, other: torch.nn.Module) -> None:
        super().__init__(input, other)

    def forward(self, *args: Any) -> Float[Tensor, "*batch n p"]:
        left, right = self._modules.values()
        return torch.matmul(left(*args), right(*args))  # pyright: ignore[reportOptionalCall]

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """``torch.matmul``'s shape rule on its two children's output shapes.

        >>> import fluxion.layers as fl
        >>> from fluxion import shapes
        >>> shapes.infer(fl.Chain(fl.Matmul(fl.Identity(), fl.Transpose(-1, -2))), ("B", 5, 4)).output
        (B, 5, 5)
        """
        left, right = (_tensor(dims.run(child, *inputs), self) for child in self.children_list())
        if not left or not right:
            raise ShapeError(f"Matmul needs two inputs of rank 1 or more, got {left!r} and {right!r}")
        # as torch.matmul: a vector on the left is a row (1, n), on the right a column (n, 1),
        # and the 1 it gained is dropped from the result
        matrix_left = left if len(left) > 1 else dims.Shape([1, *left])
        matrix_right = right if len(right) > 1 else dims.Shape([*right, 1])
        dims.require_equal(
            matrix_left[-1],
            matrix_right[-2],
            f"Matmul needs the left's last dim to match the right's dim -2 ({dims.show(matrix_left[-1])})",
        )
        batch = dims.broadcast([dims.Shape(matrix_left[:-2]), dims.Shape(matrix_right[:-2])], "Matmul")
        rows = [matrix_left[-2]] if len(left) > 1 else []
        columns = [matrix_right[-1]] if len(right) > 1 else []
        return dims.Shape([*batch, *rows, *columns])


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

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """Ends the enclosing Chain's rule with this input's shape, as ``forward`` ends the Chain.

        >>> import fluxion.layers as fl
        >>> from fluxion import shapes
        >>> shapes.infer(fl.Chain(fl.Return(), fl.Linear(4, 2)), ("B", 4)).output
        (B, 4)
        """
        raise ReturnSignal(inputs[0] if len(inputs) == 1 else inputs)


def _tensor(value: ShapeValue, node: torch.nn.Module) -> dims.Shape:
    if not isinstance(value, dims.Shape):
        raise ShapeError(f"{type(node).__name__} combines tensors, but got {value!r}")
    return value
