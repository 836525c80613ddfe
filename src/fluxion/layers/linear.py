"""Weighted leaves built on torch's own layers, so parameter names and state_dict keys are torch's.

>>> import fluxion.layers as fl
>>> sorted(fl.Linear(2, 3).state_dict())
['bias', 'weight']
"""

import torch
from jaxtyping import Float, Int
from torch import Tensor
from torch.nn import functional

from fluxion import dims
from fluxion.dims import Dim, ShapeValue
from fluxion.layers.lazy import Inferable, required
from fluxion.layers.module import WeightedModule


class Linear(Inferable, torch.nn.Linear, WeightedModule):
    """``torch.nn.Linear`` as a tree leaf.

    ``in_features`` may be left out (``Linear(out_features=10)``): the layer is lazy until
    ``fluxion.shapes.materialize`` takes it from the input shapes (see ``fluxion.layers.lazy``).

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Linear(4, 2)(torch.zeros(3, 4)).shape
    torch.Size([3, 2])
    >>> fl.Linear(out_features=2)
    Linear(in_features=?, out_features=2, bias=True)
    """

    in_features: int | None  # pyright: ignore[reportIncompatibleVariableOverride]  # None while lazy

    def __init__(
        self,
        in_features: int | None = None,
        out_features: int | None = None,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        out_features = required(out_features, "Linear", "out_features", "Linear(out_features=10)")
        arguments = {"in_features": in_features, "out_features": out_features, "bias": bias}
        self.construct(torch.nn.Linear, arguments, {"in_features": 1}, device, dtype)

    def forward(self, input: Float[Tensor, "*batch in_features"]) -> Float[Tensor, "*batch out_features"]:
        if self.deferred is not None:
            raise self.not_materialized()
        return functional.linear(input, self.weight, self.bias)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """``(*batch, in_features)`` to ``(*batch, out_features)``; a lazy Linear takes any ``in_features``.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.Linear(8, 2).output_shape(dims.Shape(["B", "T", 8]))
        (B, T, 2)
        """
        shape = dims.single(inputs, "Linear")
        features = shape.at(-1, "Linear")
        if self.in_features is not None:
            dims.require_equal(self.in_features, features, f"Linear expects last dim {self.in_features}")
        return dims.Shape([*shape[:-1], self.out_features])

    def inferred_arguments(self, *inputs: ShapeValue) -> dict[str, Dim]:
        """``in_features``: the input's last dim.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.Linear(out_features=2).inferred_arguments(dims.Shape(["B", 8]))
        {'in_features': 8}
        """
        return {"in_features": dims.single(inputs, "Linear").at(-1, "Linear")}


class Embedding(torch.nn.Embedding, WeightedModule):
    """``torch.nn.Embedding`` as a tree leaf.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Embedding(10, 4)(torch.tensor([[1, 2]])).shape
    torch.Size([1, 2, 4])
    """

    def reset_parameters(self) -> None:
        """Draw the weights from N(0, 1) (zeros at ``padding_idx``); nothing to draw on ``meta``.

        >>> import torch
        >>> import fluxion.layers as fl
        >>> fl.Embedding(4, 2, padding_idx=0).weight[0].tolist()
        [0.0, 0.0]
        """
        # On the meta device there are no values to draw, and torch's normal_ for meta tensors
        # imports torch._dynamo (about a second and 70 MiB, once per process): skip it.
        if not self.weight.is_meta:
            super().reset_parameters()

    def forward(self, input: Int[Tensor, "*batch"]) -> Float[Tensor, "*batch embedding_dim"]:
        return super().forward(input)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """Indices of any shape to ``(*shape, embedding_dim)``.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.Embedding(100, 16).output_shape(dims.Shape(["B", "T"]))
        (B, T, 16)
        """
        return dims.Shape([*dims.single(inputs, "Embedding"), self.embedding_dim])
