"""The linear layer as a tree leaf, on torch's own (torch's parameter names and state_dict keys).

>>> import fluxion.layers as fl
>>> sorted(fl.Linear(2, 3).state_dict())
['bias', 'weight']
"""

import torch
from jaxtyping import Float
from torch import Tensor
from torch.nn import functional

from fluxion import dims
from fluxion.dims import Dim, ShapeValue
from fluxion.layers import checks
from fluxion.layers.lazy import Inferable, required
from fluxion.tree.module import WeightedModule


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
        checks.at_least("Linear", "in_features", in_features, 0)
        checks.at_least("Linear", "out_features", out_features, 0)
        arguments = {"in_features": in_features, "out_features": out_features, "bias": bias}
        self.construct(torch.nn.Linear, arguments, {"in_features": 1}, device, dtype)

    def forward(self, input: Float[Tensor, "*batch in_features"]) -> Float[Tensor, "*batch out_features"]:
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
