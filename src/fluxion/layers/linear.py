"""Weighted leaves built on torch's own layers, so parameter names and state_dict keys are torch's.

>>> import fluxion.layers as fl
>>> sorted(fl.Linear(2, 3).state_dict())
['bias', 'weight']
"""

import math

import torch
from jaxtyping import Float, Int
from torch import Tensor
from torch.nn import functional

from fluxion import dims
from fluxion.dims import Dim, ShapeValue
from fluxion.errors import LayerError, ShapeError
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


class Embedding(torch.nn.Embedding, WeightedModule):
    """``torch.nn.Embedding`` as a tree leaf.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Embedding(10, 4)(torch.tensor([[1, 2]])).shape
    torch.Size([1, 2, 4])
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: int | None = None,
        max_norm: float | None = None,
        norm_type: float = 2.0,
        scale_grad_by_freq: bool = False,
        sparse: bool = False,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        checks.at_least("Embedding", "num_embeddings", num_embeddings, 0)
        checks.at_least("Embedding", "embedding_dim", embedding_dim, 0)
        if padding_idx is not None and not -num_embeddings <= padding_idx < num_embeddings:
            raise LayerError(
                f"Embedding: padding_idx must index one of the {num_embeddings} embeddings, got {padding_idx}"
            )
        if max_norm is not None and embedding_dim == 0 and (norm_type < 0 or math.isinf(norm_type)):
            raise LayerError(
                f"Embedding: with max_norm, embeddings of 0 values (embedding_dim=0) have no {norm_type}-norm "
                "to renormalise by; use a norm_type of at least 0"
            )
        torch.nn.Embedding.__init__(  # pyright: ignore[reportUnknownMemberType]  # torch leaves device untyped
            self,
            num_embeddings,
            embedding_dim,
            padding_idx,
            max_norm,
            norm_type,
            scale_grad_by_freq,
            sparse,
            device=device,
            dtype=dtype,
        )

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

        Without embeddings (``num_embeddings=0``) no index is valid: only an empty input passes.
        """
        shape = dims.single(inputs, "Embedding")
        if self.num_embeddings == 0 and 0 not in shape:  # symbolic sizes are positive
            raise ShapeError(f"Embedding has no embeddings (num_embeddings=0) to look up for indices {shape!r}")
        return dims.Shape([*shape, self.embedding_dim])
