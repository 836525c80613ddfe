"""Pooling leaves, on torch's own layers.

>>> import torch
>>> import fluxion.layers as fl
>>> fl.MaxPool2d(2)(torch.zeros(1, 3, 8, 8)).shape
torch.Size([1, 3, 4, 4])
"""

import torch
from jaxtyping import Float, Int
from torch import Tensor

from fluxion.layers.module import Module


class MaxPool2d(torch.nn.MaxPool2d, Module):
    """``torch.nn.MaxPool2d`` as a tree leaf.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.MaxPool2d(2)(torch.arange(4.0).reshape(1, 1, 2, 2)).tolist()
    [[[[3.0]]]]

    With ``return_indices=True`` it returns ``(values, indices)``, as torch's layer does:

    >>> values, indices = fl.MaxPool2d(2, return_indices=True)(torch.arange(4.0).reshape(1, 1, 2, 2))
    >>> indices.tolist()
    [[[[3]]]]
    """

    def forward(
        self, input: Float[Tensor, "*batch channels h w"]
    ) -> (
        Float[Tensor, "*batch channels oh ow"]
        | tuple[Float[Tensor, "*batch channels oh ow"], Int[Tensor, "*batch channels oh ow"]]
    ):
        return super().forward(input)


class AvgPool2d(torch.nn.AvgPool2d, Module):
    """``torch.nn.AvgPool2d`` as a tree leaf.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.AvgPool2d(2)(torch.arange(4.0).reshape(1, 1, 2, 2)).tolist()
    [[[[1.5]]]]
    """

    def forward(self, input: Float[Tensor, "*batch channels h w"]) -> Float[Tensor, "*batch channels oh ow"]:
        return super().forward(input)


class AdaptiveAvgPool2d(torch.nn.AdaptiveAvgPool2d, Module):
    """``torch.nn.AdaptiveAvgPool2d`` as a tree leaf.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.AdaptiveAvgPool2d(1)(torch.zeros(2, 3, 7, 5)).shape
    torch.Size([2, 3, 1, 1])
    """

    def forward(self, input: Float[Tensor, "*batch channels h w"]) -> Float[Tensor, "*batch channels oh ow"]:
        return super().forward(input)
