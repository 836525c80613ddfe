"""Attention: a scaled dot-product leaf and multi-head attention built as a Chain.

>>> import torch
>>> import fluxion.layers as fl
>>> attention = fl.MultiHeadAttention(embed_dim=8, num_heads=2)
>>> attention(torch.randn(1, 5, 8)).shape
torch.Size([1, 5, 8])
>>> sorted(name for name, _ in attention.named_modules() if name)
['attention', 'output', 'projections', 'projections.key', 'projections.query', 'projections.value']
"""

import torch
from jaxtyping import Bool, Float
from torch import Tensor
from torch.nn import functional

from fluxion.layers.chain import Chain
from fluxion.layers.combinators import Distribute
from fluxion.layers.errors import LayerError
from fluxion.layers.linear import Linear
from fluxion.layers.module import Module


class ScaledDotProductAttention(Module):
    """Attention over already projected queries, keys and values, split into ``num_heads`` heads.

    Inputs are ``(..., sequence, features)``; features are split evenly between the heads and
    merged back afterwards. ``mask`` (boolean, True where attention is allowed, or additive) is
    broadcast to ``(..., heads, queries, keys)``. Runs on
    ``torch.nn.functional.scaled_dot_product_attention``.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> q = torch.randn(2, 4, 6)
    >>> fl.ScaledDotProductAttention(num_heads=3, is_causal=True)(q, q, q).shape
    torch.Size([2, 4, 6])
    """

    def __init__(
        self, num_heads: int = 1, is_causal: bool = False, dropout: float = 0.0, scale: float | None = None
    ) -> None:
        super().__init__()
        if num_heads < 1:
            raise LayerError(f"ScaledDotProductAttention: num_heads must be at least 1, got {num_heads}")
        self.num_heads = num_heads
        self.is_causal = is_causal
        self.dropout = dropout
        self.scale = scale

    def forward(
        self,
        query: Float[Tensor, "*batch queries dim"],
        key: Float[Tensor, "*batch keys dim"],
        value: Float[Tensor, "*batch keys value_dim"],
        mask: Bool[Tensor, "..."] | Float[Tensor, "..."] | None = None,
    ) -> Float[Tensor, "*batch queries value_dim"]:
        attended = functional.scaled_dot_product_attention(
            self._split_heads(query),
            self._split_heads(key),
            self._split_heads(value),
            attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=self.is_causal,
            scale=self.scale,
        )
        return attended.transpose(-3, -2).flatten(-2)

    def _split_heads(
        self, input: Float[Tensor, "*batch sequence dim"]
    ) -> Float[Tensor, "*batch heads sequence head_dim"]:
        return torch.unflatten(input, -1, (self.num_heads, -1)).transpose(-3, -2)

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}, is_causal={self.is_causal}"


class MultiHeadAttention(Chain):
    """Multi-head attention whose projections are ordinary, reachable leaves.

    Children: ``projections`` (a Distribute of the ``query``, ``key`` and ``value`` Linears),
    ``attention`` (ScaledDotProductAttention) and ``output`` (a Linear). Called with one input it
    is self-attention; ``key`` defaults to ``query`` and ``value`` to ``key``. Replace children to
    change it (their names are fixed); the forward call runs these three by name.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> attention = fl.MultiHeadAttention(embed_dim=4, num_heads=2, key_dim=6)
    >>> attention(torch.randn(1, 3, 4), torch.randn(1, 7, 6)).shape
    torch.Size([1, 3, 4])
    >>> attention["projections.key"].in_features
    6
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int = 1,
        key_dim: int | None = None,
        value_dim: int | None = None,
        bias: bool = True,
        is_causal: bool = False,
        dropout: float = 0.0,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        if embed_dim % num_heads:
            raise LayerError(
                f"MultiHeadAttention: embed_dim ({embed_dim}) must be divisible by num_heads ({num_heads})"
            )
        key_dim = embed_dim if key_dim is None else key_dim
        value_dim = key_dim if value_dim is None else value_dim
        super().__init__(
            projections=Distribute(
                query=Linear(embed_dim, embed_dim, bias=bias, device=device, dtype=dtype),
                key=Linear(key_dim, embed_dim, bias=bias, device=device, dtype=dtype),
                value=Linear(value_dim, embed_dim, bias=bias, device=device, dtype=dtype),
            ),
            attention=ScaledDotProductAttention(num_heads=num_heads, is_causal=is_causal, dropout=dropout),
            output=Linear(embed_dim, embed_dim, bias=bias, device=device, dtype=dtype),
        )
        self.embed_dim = embed_dim
        self.num_heads = num_heads

    # Chain.forward is declared as ``forward(self, *args: Any)``, so any Chain subclass with a fixed
    # signature is reported as an incompatible override; torch.nn.Module itself avoids this by
    # declaring ``forward: Callable[..., Any]``.
    def forward(  # pyright: ignore[reportIncompatibleMethodOverride]
        self,
        query: Float[Tensor, "*batch queries embed_dim"],
        key: Float[Tensor, "*batch keys key_dim"] | None = None,
        value: Float[Tensor, "*batch keys value_dim"] | None = None,
        mask: Bool[Tensor, "..."] | Float[Tensor, "..."] | None = None,
    ) -> Float[Tensor, "*batch queries embed_dim"]:
        key = query if key is None else key
        value = key if value is None else value
        projected = self["projections"](query, key, value)
        return self["output"](self["attention"](*projected, mask))

    def extra_repr(self) -> str:
        return f"embed_dim={self.embed_dim}, num_heads={self.num_heads}"
