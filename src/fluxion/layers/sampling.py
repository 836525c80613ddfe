"""Resampling leaves: interpolation and pixel shuffling.

>>> import torch
>>> import fluxion.layers as fl
>>> fl.Upsample(scale_factor=2)(torch.zeros(1, 3, 4, 4)).shape
torch.Size([1, 3, 8, 8])
"""

from collections.abc import Sequence

import torch
from jaxtyping import Float
from torch import Tensor
from torch.nn import functional

from fluxion.layers.module import Module


class Upsample(torch.nn.Upsample, Module):
    """``torch.nn.Upsample`` as a tree leaf: resizes to ``size`` or by ``scale_factor``.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Upsample(size=(3, 5), mode="bilinear")(torch.zeros(1, 1, 2, 2)).shape
    torch.Size([1, 1, 3, 5])
    """

    def forward(self, input: Float[Tensor, "batch channels *spatial"]) -> Float[Tensor, "batch channels *out"]:
        return super().forward(input)


class Interpolate(Module):
    """Resizes its first input to the spatial size given as its second input (e.g. a skip's shape).

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Interpolate()(torch.zeros(1, 2, 4, 4), (7, 7)).shape
    torch.Size([1, 2, 7, 7])
    """

    def __init__(self, mode: str = "nearest", align_corners: bool | None = None) -> None:
        super().__init__()
        self.mode = mode
        self.align_corners = align_corners

    def forward(
        self, input: Float[Tensor, "batch channels *spatial"], size: Sequence[int] | torch.Size
    ) -> Float[Tensor, "batch channels *out"]:
        return functional.interpolate(input, size=tuple(size), mode=self.mode, align_corners=self.align_corners)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"


class PixelShuffle(torch.nn.PixelShuffle, Module):
    """``torch.nn.PixelShuffle``: trades channels for resolution.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.PixelShuffle(2)(torch.zeros(1, 8, 3, 3)).shape
    torch.Size([1, 2, 6, 6])
    """

    def forward(self, input: Float[Tensor, "batch channels h w"]) -> Float[Tensor, "batch c oh ow"]:
        return functional.pixel_shuffle(input, self.upscale_factor)
