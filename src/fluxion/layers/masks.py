"""Masks: a padding mask turned into the boolean mask attention takes.

>>> import torch
>>> import fluxion.layers as fl
>>> fl.PaddingMask()(torch.tensor([[1, 1, 0]])).shape
torch.Size([1, 1, 1, 3])
"""

from __future__ import annotations

from jaxtyping import Bool, Int
from torch import Tensor

from fluxion.dims import Shape, ShapeValue
from fluxion.errors import ShapeError
from fluxion.tree.module import Module


class PaddingMask(Module):
    """``(*batch, keys)`` of 1 for tokens and 0 for padding, as tokenizers give ``attention_mask``,
    to the ``(*batch, 1, 1, keys)`` boolean mask that attention takes (True: attend).

    Every query (and head) may attend to the tokens and not to the padding. ``None`` (no mask
    given, as ``OptionalInputs`` passes on) stays ``None``: every token attends to every token.
    A sequence that is all padding leaves its queries nothing to attend to: torch's attention then
    gives them no value at all (the output projection's bias), where Hugging Face's models attend
    to every position alike; either way the outputs for such a sequence mean nothing.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> mask = fl.PaddingMask()(torch.tensor([[1, 1, 0], [1, 1, 1]]))
    >>> mask[0].flatten().tolist()
    [True, True, False]
    >>> fl.PaddingMask()(None) is None
    True
    """

    def forward(
        self, attention_mask: Int[Tensor, "*batch keys"] | Bool[Tensor, "*batch keys"] | None
    ) -> Bool[Tensor, "*batch 1 1 keys"] | None:
        if attention_mask is None:
            return None
        return (attention_mask != 0)[..., None, None, :]

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """``(*batch, 1, 1, keys)`` for ``(*batch, keys)``; nothing for nothing.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.PaddingMask().output_shape(dims.Shape(["B", "T"]))
        (B, 1, 1, T)
        """
        if len(inputs) != 1:
            raise ShapeError(f"{type(self).__name__} expects one input (the padding mask), got {len(inputs)}")
        mask = inputs[0]
        if mask is None:
            return None
        if not isinstance(mask, Shape) or len(mask) < 1:
            raise ShapeError(f"{type(self).__name__} expects a mask of rank 1 or more (..., keys), got {mask!r}")
        return Shape([*mask[:-1], 1, 1, mask[-1]])
