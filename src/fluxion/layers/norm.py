"""Normalisation layers as tree leaves (torch's layers, torch's state_dict keys).

>>> import fluxion.layers as fl
>>> sorted(fl.LayerNorm(4).state_dict())
['bias', 'weight']
"""

import torch
from jaxtyping import Float
from torch import Tensor

from fluxion.layers.module import WeightedModule


class LayerNorm(torch.nn.LayerNorm, WeightedModule):
    """``torch.nn.LayerNorm`` as a tree leaf.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.LayerNorm(4)(torch.randn(2, 4)).mean().abs().item() < 1e-5
    True
    """

    def forward(self, input: Float[Tensor, "*batch features"]) -> Float[Tensor, "*batch features"]:
        return super().forward(input)


class GroupNorm(torch.nn.GroupNorm, WeightedModule):
    """``torch.nn.GroupNorm`` as a tree leaf.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.GroupNorm(2, 4)(torch.randn(1, 4, 3, 3)).shape
    torch.Size([1, 4, 3, 3])
    """

    def forward(self, input: Float[Tensor, "batch channels *spatial"]) -> Float[Tensor, "batch channels *spatial"]:
        return super().forward(input)


class RMSNorm(torch.nn.RMSNorm, WeightedModule):
    """``torch.nn.RMSNorm`` as a tree leaf.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.RMSNorm(4)(torch.ones(2, 4)).tolist()[0]
    [1.0, 1.0, 1.0, 1.0]
    """

    def forward(self, x: Float[Tensor, "*batch features"]) -> Float[Tensor, "*batch features"]:
        return super().forward(x)


class BatchNorm1d(torch.nn.BatchNorm1d, WeightedModule):
    """``torch.nn.BatchNorm1d`` as a tree leaf.

    >>> import fluxion.layers as fl
    >>> sorted(fl.BatchNorm1d(3).state_dict())
    ['bias', 'num_batches_tracked', 'running_mean', 'running_var', 'weight']
    """

    def forward(self, input: Float[Tensor, "batch channels *length"]) -> Float[Tensor, "batch channels *length"]:
        return super().forward(input)


class BatchNorm2d(torch.nn.BatchNorm2d, WeightedModule):
    """``torch.nn.BatchNorm2d`` as a tree leaf.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.BatchNorm2d(3).eval()(torch.zeros(1, 3, 2, 2)).shape
    torch.Size([1, 3, 2, 2])
    """

    def forward(self, input: Float[Tensor, "batch channels h w"]) -> Float[Tensor, "batch channels h w"]:
        return super().forward(input)
