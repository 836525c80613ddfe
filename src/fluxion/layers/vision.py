"""Layers that vision architectures need: a class token, learned positions for a fixed grid of
patches, an image's pixels as tokens, and the sinusoidal embedding of a diffusion timestep.

>>> import torch
>>> import fluxion.layers as fl
>>> embed = fl.Chain(fl.ClassToken(8), fl.PositionEmbedding(5, 8))
>>> embed(torch.zeros(2, 4, 8)).shape
torch.Size([2, 5, 8])
"""

import math
from typing import Any, cast

import torch
from jaxtyping import Float
from torch import Tensor
from torch.nn import functional

from fluxion import dims
from fluxion.dims import Dim, ShapeValue
from fluxion.errors import LayerError, ShapeError
from fluxion.layers import checks
from fluxion.layers.lazy import Inferable
from fluxion.tree.chain import Chain
from fluxion.tree.module import Module, WeightedModule

_INIT_STD = 0.02
"""The standard deviation of the truncated normal that draws learned tokens and positions (ViT's)."""


class _TokenLayout(torch.nn.Module):
    """``ClassToken``'s parameters, as torch would lay them out: one ``(1, 1, dim)`` weight."""

    def __init__(self, dim: int, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__()
        self.dim = dim
        self.weight = torch.nn.Parameter(torch.empty(1, 1, dim, device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _draw(self.weight)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class _PositionLayout(torch.nn.Module):
    """``PositionEmbedding``'s parameters: one ``(1, num_positions, dim)`` weight."""

    def __init__(
        self,
        num_positions: int,
        dim: int,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.num_positions = num_positions
        self.dim = dim
        self.weight = torch.nn.Parameter(torch.empty(1, num_positions, dim, device=device, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        _draw(self.weight)

    def extra_repr(self) -> str:
        return f"num_positions={self.num_positions}, dim={self.dim}"


class ClassToken(Inferable, _TokenLayout, WeightedModule):
    """Prepends a learned token to a sequence: ``(*batch, N, dim)`` to ``(*batch, N + 1, dim)`` (ViT's ``[CLS]``).

    The token is the parameter ``weight``, of shape ``(1, 1, dim)`` as Hugging Face and timm store
    it. ``dim`` may be left out (``ClassToken()``): the layer is lazy until
    ``fluxion.shapes.materialize`` takes it from the input's last dim.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> token = fl.ClassToken(4)
    >>> out = token(torch.zeros(2, 3, 4))
    >>> out.shape, torch.equal(out[:, 0], token.weight[0].expand(2, 4))
    (torch.Size([2, 4, 4]), True)
    >>> fl.ClassToken()
    ClassToken(dim=?)
    """

    dim: int | None  # pyright: ignore[reportIncompatibleVariableOverride]  # None while lazy

    def __init__(
        self, dim: int | None = None, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> None:
        checks.at_least("ClassToken", "dim", dim, 0)
        self.construct(_TokenLayout, {"dim": dim}, {"dim": 1}, device, dtype)

    def forward(self, input: Float[Tensor, "*batch sequence dim"]) -> Float[Tensor, "*batch sequence_1 dim"]:
        token = self.weight[0].expand(*input.shape[:-2], 1, -1)
        return torch.cat((token, input), dim=-2)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """``(*batch, N, dim)`` to ``(*batch, N + 1, dim)``; a lazy token takes any ``dim``.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.ClassToken(8).output_shape(dims.Shape(["B", "N", 8]))
        (B, N + 1, 8)
        """
        name = type(self).__name__
        shape = _sequence(name, inputs)
        if self.dim is not None:
            dims.require_equal(self.dim, shape[-1], f"{name} expects last dim {self.dim}")
        return dims.Shape([*shape[:-2], dims.normal(shape[-2] + 1), shape[-1]])

    def inferred_arguments(self, *inputs: ShapeValue) -> dict[str, Dim]:
        """``dim``: the input's last dim.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.ClassToken().inferred_arguments(dims.Shape(["B", 16, 32]))
        {'dim': 32}
        """
        return {"dim": _sequence(type(self).__name__, inputs)[-1]}


class PositionEmbedding(Inferable, _PositionLayout, WeightedModule):
    """Adds a learned embedding to each position of a sequence of exactly ``num_positions`` tokens.

    The positions of a fixed grid (ViT's patches, and its class token): the sequence must have
    ``num_positions`` tokens, no fewer (``SequencePositionEmbedding`` is the one that takes the first
    positions of a longer table, for text). The embeddings are the parameter ``weight``, of shape
    ``(1, num_positions, dim)`` as Hugging Face and timm store them. Both sizes may be left out:
    ``fluxion.shapes.materialize`` then takes them from the input (a concrete sequence length).

    >>> import torch
    >>> import fluxion.layers as fl
    >>> positions = fl.PositionEmbedding(3, 4)
    >>> torch.equal(positions(torch.zeros(2, 3, 4))[1], positions.weight[0])
    True
    >>> fl.PositionEmbedding(dim=8)
    PositionEmbedding(num_positions=?, dim=8)
    """

    num_positions: int | None  # pyright: ignore[reportIncompatibleVariableOverride]  # None while lazy
    dim: int | None  # pyright: ignore[reportIncompatibleVariableOverride]

    def __init__(
        self,
        num_positions: int | None = None,
        dim: int | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        checks.at_least("PositionEmbedding", "num_positions", num_positions, 0)
        checks.at_least("PositionEmbedding", "dim", dim, 0)
        arguments = {"num_positions": num_positions, "dim": dim}
        self.construct(_PositionLayout, arguments, {"num_positions": 1, "dim": 1}, device, dtype)

    def forward(self, input: Float[Tensor, "*batch positions dim"]) -> Float[Tensor, "*batch positions dim"]:
        if input.shape[-2] != self.num_positions:
            raise LayerError(
                f"{type(self).__name__} expects {self.num_positions} positions at dim -2, got {input.shape[-2]}"
            )
        return input + self.weight[0]

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """The input's shape, ``(*batch, num_positions, dim)``: as many tokens as positions.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.PositionEmbedding(17, 8).output_shape(dims.Shape(["B", 17, 8]))
        (B, 17, 8)
        """
        name = type(self).__name__
        shape = _sequence(name, inputs)
        if self.num_positions is not None:
            expected = f"{name} expects {self.num_positions} positions at dim -2"
            dims.require_equal(self.num_positions, shape[-2], expected)
        if self.dim is not None:
            dims.require_equal(self.dim, shape[-1], f"{name} expects last dim {self.dim}")
        return shape

    def inferred_arguments(self, *inputs: ShapeValue) -> dict[str, Dim]:
        """The sizes left out: ``num_positions`` (the input's dim -2) and ``dim`` (its last dim).

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.PositionEmbedding().inferred_arguments(dims.Shape(["B", 17, 32]))
        {'num_positions': 17, 'dim': 32}
        """
        shape = _sequence(type(self).__name__, inputs)
        found = {"num_positions": shape[-2], "dim": shape[-1]}
        return {name: found[name] for name in self.missing}


class Tokens2d(Chain):
    """Runs its children on an image's pixels as a sequence of tokens, and folds the result back.

    ``(B, C, H, W)`` becomes ``(B, H*W, C)`` (one token per pixel, in row-major order), the children
    run in sequence on it and must give ``(B, H*W, C')``, which becomes ``(B, C', H, W)`` again: the
    self-attention of a U-Net or a diffusion transformer over the pixels of a feature map.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> attention = fl.Tokens2d(fl.MultiHeadAttention(embed_dim=8, num_heads=2))
    >>> attention(torch.randn(2, 8, 4, 5)).shape
    torch.Size([2, 8, 4, 5])
    """

    repr_tag = "TOKENS"

    def forward(self, *args: Any) -> Any:
        image = args[0]
        height, width = image.shape[-2:]
        tokens = image.flatten(-2).transpose(-1, -2)
        output: Any = super().forward(tokens, *args[1:])
        if not isinstance(output, torch.Tensor) or output.shape[:-1] != tokens.shape[:-1]:
            # folding back tokens whose leading dims moved would give an image of the wrong pixels
            got = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
            raise ShapeError(
                f"Tokens2d expects its children to keep {tuple(tokens.shape[:-1])} before the channels, got {got}"
            )
        return cast(
            torch.Tensor, output.transpose(-1, -2).unflatten(-1, (height, width))
        )  # torch types unflatten loosely

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """``(*batch, C, H, W)`` to ``(*batch, C', H, W)``, where the children take ``(*batch, H*W, C)``
        to ``(*batch, H*W, C')``.

        >>> import fluxion.layers as fl
        >>> from fluxion import shapes
        >>> model = fl.Chain(fl.Tokens2d(fl.Linear(8, 4)))
        >>> report = shapes.infer(model, ("B", 8, "H", "W"))
        >>> report.output, report["Tokens2d.Linear"].inputs
        ((B, 4, H, W), ((B, H*W, 8),))
        """
        name = type(self).__name__
        if not inputs or not isinstance(inputs[0], dims.Shape):
            raise ShapeError(f"{name} expects an image (*batch, C, H, W), got {inputs!r}")
        image = inputs[0]
        if len(image) < 3:
            raise ShapeError(f"{name} expects an image (*batch, C, H, W) of 3 dims or more, got {image!r}")
        *batch, channels, height, width = image
        pixels = dims.normal(height * width)
        tokens = dims.Shape([*batch, pixels, channels])
        output = super().output_shape(tokens, *inputs[1:])
        if not isinstance(output, dims.Shape) or len(output) != len(tokens):
            raise ShapeError(f"{name} expects its children to give tokens of rank {len(tokens)}, got {output!r}")
        for position, size in enumerate(batch):
            dims.require_equal(size, output[position], f"{name} expects its children to keep dim {position}")
        dims.require_equal(pixels, output[-2], f"{name} expects its children to keep one token per pixel")
        return dims.Shape([*batch, output[-1], height, width])


class SinusoidalEmbedding(Module):
    """Embeds numbers (diffusion timesteps, positions) as sines and cosines of ``dim // 2`` frequencies.

    For ``t`` and ``half = dim // 2``, frequency ``i`` is
    ``exp(-log(max_period) * i / (half - freq_shift))``; the output is ``[sin(scale * t * f),
    cos(scale * t * f)]`` (cosines first with ``flip_sin_to_cos``), padded with a zero for an odd
    ``dim``: diffusers' ``Timesteps`` (``downscale_freq_shift`` is ``freq_shift``), computed in float32.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.SinusoidalEmbedding(4)(torch.tensor([0.0, 1.0])).shape
    torch.Size([2, 4])
    >>> fl.SinusoidalEmbedding(4, flip_sin_to_cos=True)(torch.tensor([0])).tolist()
    [[1.0, 1.0, 0.0, 0.0]]
    """

    def __init__(
        self,
        dim: int,
        flip_sin_to_cos: bool = False,
        freq_shift: float = 0.0,
        max_period: float = 10000.0,
        scale: float = 1.0,
    ) -> None:
        super().__init__()
        checks.at_least("SinusoidalEmbedding", "dim", dim, 1)
        if not max_period > 0:
            raise LayerError(f"SinusoidalEmbedding: max_period must be above 0, got {max_period!r}")
        self.dim = dim
        self.flip_sin_to_cos = flip_sin_to_cos
        self.freq_shift = freq_shift
        self.max_period = max_period
        self.scale = scale

    def forward(self, input: Float[Tensor, "*batch"]) -> Float[Tensor, "*batch dim"]:
        half = self.dim // 2
        exponent = -math.log(self.max_period) * torch.arange(0, half, dtype=torch.float32, device=input.device)
        frequencies = torch.exp(exponent / (half - self.freq_shift))
        angles = self.scale * (input[..., None].float() * frequencies)
        first, second = torch.sin(angles), torch.cos(angles)
        if self.flip_sin_to_cos:
            first, second = second, first
        embedding = torch.cat((first, second), dim=-1)
        return functional.pad(embedding, (0, 1)) if self.dim % 2 else embedding

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """``(*batch)`` to ``(*batch, dim)``.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.SinusoidalEmbedding(32).output_shape(dims.Shape(["B"]))
        (B, 32)
        """
        return dims.Shape([*dims.single(inputs, type(self).__name__), self.dim])

    def extra_repr(self) -> str:
        return f"dim={self.dim}, flip_sin_to_cos={self.flip_sin_to_cos}, freq_shift={self.freq_shift}"


def _draw(weight: torch.Tensor) -> None:
    """ViT's initialisation of learned tokens: a normal of std 0.02 cut at two deviations; nothing on meta."""
    # torch's initialisers on meta tensors import torch._dynamo (about a second, once per process)
    if not weight.is_meta:
        with torch.no_grad():
            torch.nn.init.trunc_normal_(weight, std=_INIT_STD, a=-2 * _INIT_STD, b=2 * _INIT_STD)


def _sequence(name: str, inputs: tuple[ShapeValue, ...]) -> dims.Shape:
    shape = dims.single(inputs, name)
    if len(shape) < 2:
        raise ShapeError(f"{name} expects a sequence (*batch, N, dim) of 2 dims or more, got {shape!r}")
    return shape
