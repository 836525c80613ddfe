"""Embeddings as transformers use them: token ids to vectors, then learned positions and token types.

``Embedding`` (torch's) turns token ids into vectors; ``SequencePositionEmbedding`` and
``TokenTypeEmbedding`` add to those vectors, each holding one ``weight`` table, so a checkpoint's
``...position_embeddings.weight`` loads by name. ``OptionalInputs`` lets a model take trailing inputs
that may be left out (BERT's ``token_type_ids``).

>>> import torch
>>> import fluxion.layers as fl
>>> embed = fl.Chain(fl.Embedding(100, 8), fl.SequencePositionEmbedding(num_positions=16, embedding_dim=8))
>>> embed(torch.tensor([[1, 2, 3]])).shape
torch.Size([1, 3, 8])
"""

import math
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor
from torch.nn import functional

from fluxion import dims
from fluxion.dims import ShapeValue
from fluxion.errors import LayerError, ShapeError
from fluxion.layers import checks
from fluxion.tree.module import Module, WeightedModule


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
        _weight: torch.Tensor | None = None,  # torch's own, for Embedding.from_pretrained
        _freeze: bool = False,
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
            _weight,
            _freeze,
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


class SequencePositionEmbedding(WeightedModule):
    """Adds a learned vector per position: ``x + weight[:T]`` for ``x`` of shape ``(..., T, embedding_dim)``.

    ``weight`` has shape ``(num_positions, embedding_dim)`` (GPT-2's ``wpe``, BERT's
    ``position_embeddings``): sequences of any length up to ``num_positions`` take its first rows,
    longer ones are refused. Positions start at 0 for every sequence (no offset, no padding-aware
    positions). The weights are drawn from N(0, 1), as ``torch.nn.Embedding`` draws them. (ViT's
    ``PositionEmbedding`` instead holds exactly one ``(1, N, dim)`` table for sequences of ``N``.)

    >>> import torch
    >>> import fluxion.layers as fl
    >>> positions = fl.SequencePositionEmbedding(num_positions=4, embedding_dim=2)
    >>> with torch.no_grad():
    ...     _ = positions.weight.copy_(torch.arange(8.0).reshape(4, 2))
    >>> positions(torch.zeros(1, 3, 2)).tolist()
    [[[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]]
    """

    def __init__(
        self,
        num_positions: int,
        embedding_dim: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if num_positions < 1 or embedding_dim < 1:
            raise LayerError(
                f"SequencePositionEmbedding: num_positions and embedding_dim must be at least 1, "
                f"got {num_positions} and {embedding_dim}"
            )
        self.num_positions = num_positions
        self.embedding_dim = embedding_dim
        self.weight = torch.nn.Parameter(torch.empty(num_positions, embedding_dim, device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw the weights from N(0, 1); nothing to draw on ``meta``.

        >>> import fluxion.layers as fl
        >>> positions = fl.SequencePositionEmbedding(1024, 8)
        >>> positions.reset_parameters()
        >>> 0.8 < positions.weight.std().item() < 1.2
        True
        """
        # torch's normal_ for meta tensors imports torch._dynamo (about a second, once per process)
        if not self.weight.is_meta:
            torch.nn.init.normal_(self.weight)

    def forward(self, input: Float[Tensor, "*batch sequence dim"]) -> Float[Tensor, "*batch sequence dim"]:
        length = input.shape[-2]
        if length > self.num_positions:
            raise LayerError(
                f"SequencePositionEmbedding has {self.num_positions} positions, got a sequence of {length} (dim -2)"
            )
        return input + self.weight[:length]

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """The input's shape ``(*batch, T, embedding_dim)``.

        ``T`` may be at most ``num_positions``: a number is checked, a symbol is taken as it is
        (the rules record equalities only).

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.SequencePositionEmbedding(1024, 8).output_shape(dims.Shape(["B", "T", 8]))
        (B, T, 8)
        >>> fl.SequencePositionEmbedding(4, 8).output_shape(dims.Shape(["B", 5, 8]))
        Traceback (most recent call last):
        ...
        fluxion.errors.ShapeError: SequencePositionEmbedding has 4 positions, got a sequence of 5 (dim -2)
        """
        what = type(self).__name__
        shape = dims.single(inputs, what)
        if len(shape) < 2:
            raise ShapeError(f"{what} expects an input of rank 2 or more (..., sequence, features), got {shape!r}")
        dims.require_equal(self.embedding_dim, shape[-1], f"{what} expects last dim {self.embedding_dim}")
        length = shape[-2]
        if isinstance(length, int) and length > self.num_positions:
            raise ShapeError(f"{what} has {self.num_positions} positions, got a sequence of {length} (dim -2)")
        return shape

    def extra_repr(self) -> str:
        return f"{self.num_positions}, {self.embedding_dim}"


class TokenTypeEmbedding(WeightedModule):
    """Adds a learned vector per token type: ``x + weight[token_type_ids]`` (type 0 everywhere when not given).

    ``weight`` has shape ``(num_types, embedding_dim)`` (BERT's ``token_type_embeddings``, the
    segment embeddings). Called with ``x`` of shape ``(..., T, embedding_dim)`` and optionally
    ``token_type_ids`` of shape ``(..., T)``; without them ``weight[0]`` is added to every
    position, as Hugging Face's BERT does for missing ``token_type_ids``. The weights are drawn
    from N(0, 1), as ``torch.nn.Embedding`` draws them.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> types = fl.TokenTypeEmbedding(num_types=2, embedding_dim=2)
    >>> with torch.no_grad():
    ...     _ = types.weight.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    >>> types(torch.zeros(1, 3, 2), torch.tensor([[0, 1, 1]])).tolist()
    [[[0.0, 0.0], [1.0, 1.0], [1.0, 1.0]]]
    >>> types(torch.ones(1, 1, 2)).tolist()
    [[[1.0, 1.0]]]
    """

    def __init__(
        self,
        num_types: int,
        embedding_dim: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if num_types < 1 or embedding_dim < 1:
            raise LayerError(
                "TokenTypeEmbedding: num_types and embedding_dim must be at least 1, "
                f"got {num_types} and {embedding_dim}"
            )
        self.num_types = num_types
        self.embedding_dim = embedding_dim
        self.weight = torch.nn.Parameter(torch.empty(num_types, embedding_dim, device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Draw the weights from N(0, 1); nothing to draw on ``meta``.

        >>> import fluxion.layers as fl
        >>> types = fl.TokenTypeEmbedding(2, 4, device="meta")
        >>> types.reset_parameters()
        >>> types.weight.is_meta
        True
        """
        if not self.weight.is_meta:
            torch.nn.init.normal_(self.weight)

    def forward(
        self,
        input: Float[Tensor, "*batch sequence dim"],
        token_type_ids: Int[Tensor, "*batch sequence"] | None = None,
    ) -> Float[Tensor, "*batch sequence dim"]:
        if token_type_ids is None:
            return input + self.weight[0]
        return input + functional.embedding(token_type_ids, self.weight)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """The broadcast of the input's shape ``(*batch, T, embedding_dim)`` and the token types' ``(*batch, T)``.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> types = fl.TokenTypeEmbedding(2, 8)
        >>> types.output_shape(dims.Shape(["B", "T", 8]), dims.Shape(["B", "T"]))
        (B, T, 8)
        >>> types.output_shape(dims.Shape(["B", "T", 8]), None)
        (B, T, 8)
        """
        what = type(self).__name__
        if not 1 <= len(inputs) <= 2:
            raise ShapeError(f"{what} takes an input and optional token_type_ids, got {len(inputs)} values")
        shape = inputs[0]
        if not isinstance(shape, dims.Shape) or len(shape) < 1:
            raise ShapeError(f"{what} expects an input of rank 1 or more (..., features), got {shape!r}")
        dims.require_equal(self.embedding_dim, shape[-1], f"{what} expects last dim {self.embedding_dim}")
        types = inputs[1] if len(inputs) == 2 else None
        if types is None:
            return shape
        if not isinstance(types, dims.Shape):
            raise ShapeError(f"{what} expects token_type_ids of one tensor or None, got {types!r}")
        return dims.broadcast([shape, dims.Shape([*types, self.embedding_dim])], what)

    def extra_repr(self) -> str:
        return f"{self.num_types}, {self.embedding_dim}"


class OptionalInputs(Module):
    """Passes on its inputs as a tuple of ``count``, with ``None`` for the trailing ones not given.

    Put first in a Chain whose next node takes inputs that may be left out: a ``Graph`` needs a
    value for each of its inputs, and gets ``None`` for those the caller did not give (BERT's
    ``token_type_ids``). At least ``required`` inputs must be given.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> inputs = fl.OptionalInputs(count=2)
    >>> inputs(torch.ones(1))
    (tensor([1.]), None)
    >>> len(inputs(torch.ones(1), torch.zeros(1)))
    2
    """

    def __init__(self, count: int, required: int = 1) -> None:
        super().__init__()
        if not 0 <= required <= count or count < 1:
            raise LayerError(
                f"OptionalInputs expects count >= 1 and 0 <= required <= count, got count={count}, required={required}"
            )
        self.count = count
        self.required = required

    def forward(self, *inputs: Any) -> tuple[Any, ...]:
        given = len(inputs)
        if not self.required <= given <= self.count:
            raise LayerError(f"{type(self).__name__} takes {self.required} to {self.count} inputs, got {given}")
        return (*inputs, *(None,) * (self.count - given))

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """The input shapes, then ``None`` for each input not given.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.OptionalInputs(count=3).output_shape(dims.Shape(["B", "T"]))
        ((B, T), None, None)
        """
        given = len(inputs)
        if not self.required <= given <= self.count:
            raise ShapeError(f"{type(self).__name__} takes {self.required} to {self.count} inputs, got {given}")
        return (*inputs, *(None,) * (self.count - given))

    def extra_repr(self) -> str:
        return f"count={self.count}, required={self.required}"
