"""Normalisation layers as tree leaves (torch's layers, torch's state_dict keys).

>>> import fluxion.layers as fl
>>> sorted(fl.LayerNorm(4).state_dict())
['bias', 'weight']
"""

import torch
from jaxtyping import Float
from torch import Tensor

from fluxion import dims
from fluxion.dims import ShapeError, ShapeValue
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

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """The input's shape, whose last dims must be ``normalized_shape``.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.LayerNorm(8).output_shape(dims.Shape(["B", "T", 8]))
        (B, T, 8)
        """
        return _normalized_shape(type(self).__name__, inputs, self.normalized_shape)


class GroupNorm(torch.nn.GroupNorm, WeightedModule):
    """``torch.nn.GroupNorm`` as a tree leaf.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.GroupNorm(2, 4)(torch.randn(1, 4, 3, 3)).shape
    torch.Size([1, 4, 3, 3])
    """

    def forward(self, input: Float[Tensor, "batch channels *spatial"]) -> Float[Tensor, "batch channels *spatial"]:
        return super().forward(input)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """The input's shape, ``(N, num_channels, *)``.

        Without ``affine`` weights torch only needs the channels to divide into ``num_groups``.
        Like torch, the rule refuses groups of a single value (``(1, 2)`` in 2 groups).

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.GroupNorm(2, 4).output_shape(dims.Shape(["B", 4, "H", "W"]))
        (B, 4, H, W)
        """
        name = type(self).__name__
        shape = dims.single(inputs, name)
        if len(shape) < 2:
            raise ShapeError(f"{name} expects an input of at least 2 dims (N, C, *), got {shape!r}")
        if self.affine:
            dims.require_equal(self.num_channels, shape[1], f"{name} expects {self.num_channels} channels at dim 1")
        else:
            groups = self.num_groups
            multiple = dims.normal(groups * dims.floordiv(shape[1], groups))
            dims.require_equal(multiple, shape[1], f"{name} expects channels at dim 1 divisible by {groups}")
        # torch refuses groups of a single value, in training and in eval
        per_group = dims.product([dims.floordiv(dims.normal(shape[0] * shape[1]), self.num_groups), *shape[2:]])
        if per_group == 1:
            raise ShapeError(f"{name} expects more than 1 value per group, got {shape!r}")
        return shape


class RMSNorm(torch.nn.RMSNorm, WeightedModule):
    """``torch.nn.RMSNorm`` as a tree leaf.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.RMSNorm(4)(torch.ones(2, 4)).tolist()[0]
    [1.0, 1.0, 1.0, 1.0]
    """

    def forward(self, x: Float[Tensor, "*batch features"]) -> Float[Tensor, "*batch features"]:
        return super().forward(x)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """The input's shape, whose last dims must be ``normalized_shape``.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.RMSNorm((4, 8)).output_shape(dims.Shape(["B", 4, 8]))
        (B, 4, 8)
        """
        return _normalized_shape(type(self).__name__, inputs, self.normalized_shape)


class BatchNorm1d(torch.nn.BatchNorm1d, WeightedModule):
    """``torch.nn.BatchNorm1d`` as a tree leaf.

    >>> import fluxion.layers as fl
    >>> sorted(fl.BatchNorm1d(3).state_dict())
    ['bias', 'num_batches_tracked', 'running_mean', 'running_var', 'weight']
    """

    def forward(self, input: Float[Tensor, "batch channels *length"]) -> Float[Tensor, "batch channels *length"]:
        return super().forward(input)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """The input's shape, ``(N, C)`` or ``(N, C, L)`` with ``C = num_features``.

        Without ``affine`` weights or running statistics torch does not check ``C``. When it uses batch
        statistics (training, or no running statistics), a shape of one value per channel is refused.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.BatchNorm1d(3).output_shape(dims.Shape(["B", 3, "L"]))
        (B, 3, L)
        """
        return _batch_norm_shape(self, inputs, (2, 3))


class BatchNorm2d(torch.nn.BatchNorm2d, WeightedModule):
    """``torch.nn.BatchNorm2d`` as a tree leaf.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.BatchNorm2d(3).eval()(torch.zeros(1, 3, 2, 2)).shape
    torch.Size([1, 3, 2, 2])
    """

    def forward(self, input: Float[Tensor, "batch channels h w"]) -> Float[Tensor, "batch channels h w"]:
        return super().forward(input)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """The input's shape, ``(N, C, H, W)`` with ``C = num_features`` (checked as ``BatchNorm1d`` does).

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.BatchNorm2d(3).output_shape(dims.Shape(["B", 3, "H", "W"]))
        (B, 3, H, W)
        """
        return _batch_norm_shape(self, inputs, (4,))


# -- shape rules shared by several norms ------------------------------------------------------------


def _normalized_shape(name: str, inputs: tuple[ShapeValue, ...], normalized: tuple[int, ...]) -> dims.Shape:
    shape = dims.single(inputs, name)
    if not normalized:
        raise ShapeError(f"{name} expects a normalized_shape of at least one dim, got ()")
    if len(shape) < len(normalized):
        raise ShapeError(f"{name} expects an input ending in {dims.Shape(normalized)!r}, got {shape!r}")
    for position, size in enumerate(normalized, start=-len(normalized)):
        if len(normalized) == 1:
            expected = f"{name} expects last dim {size}"
        else:
            expected = f"{name} expects size {size} at dim {position} (normalized_shape {dims.Shape(normalized)!r})"
        dims.require_equal(size, shape[position], expected)
    return shape


def _batch_norm_shape(
    layer: torch.nn.BatchNorm1d | torch.nn.BatchNorm2d, inputs: tuple[ShapeValue, ...], ranks: tuple[int, ...]
) -> dims.Shape:
    name = type(layer).__name__
    shape = dims.single(inputs, name)
    if len(shape) not in ranks:
        expected = " or ".join(f"{rank}D" for rank in ranks)
        raise ShapeError(f"{name} expects a {expected} input, got {shape!r}")
    # torch checks the channels against its weights or running statistics; without either, any count goes
    if layer.affine or layer.running_mean is not None:
        dims.require_equal(layer.num_features, shape[1], f"{name} expects {layer.num_features} channels at dim 1")
    batch_statistics = layer.training or (layer.running_mean is None and layer.running_var is None)
    values = dims.product(size for position, size in enumerate(shape) if position != 1)
    if batch_statistics and values == 1:
        raise ShapeError(f"{name} expects more than 1 value per channel when training, got {shape!r}")
    return shape
