"""Convolutions as tree leaves (torch's layers, torch's state_dict keys).

>>> import torch
>>> import fluxion.layers as fl
>>> fl.Conv2d(3, 8, kernel_size=3, padding=1)(torch.zeros(1, 3, 16, 16)).shape
torch.Size([1, 8, 16, 16])
"""

import torch
from jaxtyping import Float
from torch import Tensor

from fluxion.layers.module import WeightedModule


class Conv1d(torch.nn.Conv1d, WeightedModule):
    """``torch.nn.Conv1d`` as a tree leaf.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Conv1d(2, 4, kernel_size=3)(torch.zeros(1, 2, 10)).shape
    torch.Size([1, 4, 8])
    """

    def forward(
        self, input: Float[Tensor, "*batch in_channels length"]
    ) -> Float[Tensor, "*batch out_channels out_length"]:
        return self._conv_forward(input, self.weight, self.bias)


class Conv2d(torch.nn.Conv2d, WeightedModule):
    """``torch.nn.Conv2d`` as a tree leaf.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Conv2d(2, 4, kernel_size=3, stride=2)(torch.zeros(1, 2, 9, 9)).shape
    torch.Size([1, 4, 4, 4])
    """

    def forward(
        self, input: Float[Tensor, "*batch in_channels height width"]
    ) -> Float[Tensor, "*batch out_channels h w"]:
        return self._conv_forward(input, self.weight, self.bias)


class Conv3d(torch.nn.Conv3d, WeightedModule):
    """``torch.nn.Conv3d`` as a tree leaf.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Conv3d(1, 2, kernel_size=1)(torch.zeros(1, 1, 2, 3, 4)).shape
    torch.Size([1, 2, 2, 3, 4])
    """

    def forward(
        self, input: Float[Tensor, "*batch in_channels d h w"]
    ) -> Float[Tensor, "*batch out_channels od oh ow"]:
        return self._conv_forward(input, self.weight, self.bias)


class ConvTranspose2d(torch.nn.ConvTranspose2d, WeightedModule):
    """``torch.nn.ConvTranspose2d`` as a tree leaf.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.ConvTranspose2d(4, 2, kernel_size=2, stride=2)(torch.zeros(1, 4, 5, 5)).shape
    torch.Size([1, 2, 10, 10])
    """

    def forward(
        self, input: Float[Tensor, "*batch in_channels height width"], output_size: list[int] | None = None
    ) -> Float[Tensor, "*batch out_channels h w"]:
        return super().forward(input, output_size)
