"""Normalisation layers as tree leaves (torch's layers, torch's state_dict keys).

>>> import fluxion.layers as fl
>>> sorted(fl.LayerNorm(4).state_dict())
['bias', 'weight']
"""

from typing import ClassVar, cast

import torch
from jaxtyping import Float
from torch import Tensor

from fluxion import dims
from fluxion.dims import Dim, ShapeValue
from fluxion.errors import LayerError, ShapeError
from fluxion.layers import checks
from fluxion.layers.lazy import Inferable, required
from fluxion.tree.module import WeightedModule

NormalizedShape = int | list[int] | tuple[int, ...] | torch.Size


class _LastDimsNorm(Inferable):
    """What LayerNorm and RMSNorm share: the rule over the input's last dims (``normalized_shape``)
    and, while lazy, the inference of ``normalized_shape`` from the last dim."""

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """The input's shape, whose last dims must be ``normalized_shape`` (a lazy layer takes any last dim).

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.LayerNorm(8).output_shape(dims.Shape(["B", "T", 8]))
        (B, T, 8)
        >>> fl.RMSNorm((4, 8)).output_shape(dims.Shape(["B", 4, 8]))
        (B, 4, 8)
        """
        return _normalized_shape(type(self).__name__, inputs, cast(LayerNorm | RMSNorm, self).normalized_shape)

    def inferred_arguments(self, *inputs: ShapeValue) -> dict[str, Dim]:
        """``normalized_shape``: the input's last dim.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.LayerNorm().inferred_arguments(dims.Shape(["B", "T", 8]))
        {'normalized_shape': 8}
        """
        name = type(self).__name__
        return {"normalized_shape": dims.single(inputs, name).at(-1, name)}


class LayerNorm(_LastDimsNorm, torch.nn.LayerNorm, WeightedModule):
    """``torch.nn.LayerNorm`` as a tree leaf.

    ``normalized_shape`` may be left out (``LayerNorm()``): the layer is lazy until
    ``fluxion.shapes.materialize`` sets it to the input's last dim.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.LayerNorm(4)(torch.randn(2, 4)).mean().abs().item() < 1e-5
    True
    >>> fl.LayerNorm(eps=1e-6)
    LayerNorm(?, eps=1e-06, elementwise_affine=True, bias=True)
    """

    normalized_shape: tuple[int, ...] | None  # pyright: ignore[reportIncompatibleVariableOverride]  # None while lazy

    def __init__(
        self,
        normalized_shape: NormalizedShape | None = None,
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        _check_normalized_shape("LayerNorm", normalized_shape)
        arguments = {
            "normalized_shape": normalized_shape,
            "eps": eps,
            "elementwise_affine": elementwise_affine,
            "bias": bias,
        }
        self.construct(torch.nn.LayerNorm, arguments, {"normalized_shape": 1}, device, dtype)

    def forward(self, input: Float[Tensor, "*batch features"]) -> Float[Tensor, "*batch features"]:
        return super().forward(input)


class GroupNorm(Inferable, torch.nn.GroupNorm, WeightedModule):
    """``torch.nn.GroupNorm`` as a tree leaf.

    ``num_channels`` may be left out (``GroupNorm(8)``): the layer is lazy until
    ``fluxion.shapes.materialize`` takes it from the input shapes.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.GroupNorm(2, 4)(torch.randn(1, 4, 3, 3)).shape
    torch.Size([1, 4, 3, 3])
    >>> fl.GroupNorm(8)
    GroupNorm(8, ?, eps=1e-05, affine=True, bias=True)
    """

    num_channels: int | None  # pyright: ignore[reportIncompatibleVariableOverride]  # None while lazy

    def __init__(
        self,
        num_groups: int | None = None,
        num_channels: int | None = None,
        eps: float = 1e-5,
        affine: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        bias: bool = True,
    ) -> None:
        num_groups = required(num_groups, "GroupNorm", "num_groups", "GroupNorm(num_groups=8)")
        checks.at_least("GroupNorm", "num_groups", num_groups, 1)
        checks.at_least("GroupNorm", "num_channels", num_channels, 0)
        arguments = {"num_groups": num_groups, "num_channels": num_channels, "eps": eps, "affine": affine}
        arguments.update(_bias(bias))
        self.construct(torch.nn.GroupNorm, arguments, {"num_channels": num_groups}, device, dtype)

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
        if self.affine and self.num_channels is not None:
            dims.require_equal(self.num_channels, shape[1], f"{name} expects {self.num_channels} channels at dim 1")
        else:
            # torch checks only this without weights; a lazy GroupNorm's constructor will check it too
            groups = self.num_groups
            multiple = dims.normal(groups * dims.floordiv(shape[1], groups))
            dims.require_equal(multiple, shape[1], f"{name} expects channels at dim 1 divisible by {groups}")
        # torch refuses groups of a single value, in training and in eval
        per_group = dims.product([dims.floordiv(dims.normal(shape[0] * shape[1]), self.num_groups), *shape[2:]])
        if per_group == 1:
            raise ShapeError(f"{name} expects more than 1 value per group, got {shape!r}")
        return shape

    def inferred_arguments(self, *inputs: ShapeValue) -> dict[str, Dim]:
        """``num_channels``: the input's dim 1.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.GroupNorm(2).inferred_arguments(dims.Shape(["B", 6, "H", "W"]))
        {'num_channels': 6}
        """
        return {"num_channels": _channels(type(self).__name__, inputs, minimum_rank=2)}


class RMSNorm(_LastDimsNorm, torch.nn.RMSNorm, WeightedModule):
    """``torch.nn.RMSNorm`` as a tree leaf.

    ``normalized_shape`` may be left out (``RMSNorm()``): the layer is lazy until
    ``fluxion.shapes.materialize`` sets it to the input's last dim.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.RMSNorm(4)(torch.ones(2, 4)).tolist()[0]
    [1.0, 1.0, 1.0, 1.0]
    """

    normalized_shape: tuple[int, ...] | None  # pyright: ignore[reportIncompatibleVariableOverride]  # None while lazy

    def __init__(
        self,
        normalized_shape: NormalizedShape | None = None,
        eps: float | None = None,
        elementwise_affine: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        _check_normalized_shape("RMSNorm", normalized_shape)
        arguments = {"normalized_shape": normalized_shape, "eps": eps, "elementwise_affine": elementwise_affine}
        self.construct(torch.nn.RMSNorm, arguments, {"normalized_shape": 1}, device, dtype)

    def forward(self, x: Float[Tensor, "*batch features"]) -> Float[Tensor, "*batch features"]:
        return super().forward(x)


class _BatchNorm(Inferable):
    """BatchNorm1d and BatchNorm2d: one constructor, one rule, one inference of ``num_features``;
    each class names torch's layer and the input ranks it takes."""

    _torch_layer: ClassVar[type[torch.nn.Module]]
    """torch's layer, which checks the arguments and lays out the parameters and buffers."""

    _ranks: ClassVar[tuple[int, ...]]
    """The ranks of the inputs the layer takes: ``(N, C, *spatial)``."""

    def __init__(
        self,
        num_features: int | None = None,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        bias: bool = True,
    ) -> None:
        arguments = {
            "num_features": num_features,
            "eps": eps,
            "momentum": momentum,
            "affine": affine,
            "track_running_stats": track_running_stats,
            **_bias(bias),
        }
        checks.at_least(type(self).__name__, "num_features", num_features, 1)
        self.construct(self._torch_layer, arguments, {"num_features": 1}, device, dtype)

    def forward(self, input: Float[Tensor, "batch channels *spatial"]) -> Float[Tensor, "batch channels *spatial"]:
        return super().forward(input)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """The input's shape, ``(N, C, *spatial)`` with ``C = num_features`` and one of the ranks its class takes.

        Without ``affine`` weights or running statistics torch does not check ``C``. When it uses batch
        statistics (training, or no running statistics), a shape of one value per channel is refused.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.BatchNorm1d(3).output_shape(dims.Shape(["B", 3, "L"]))
        (B, 3, L)
        >>> fl.BatchNorm2d(3).output_shape(dims.Shape(["B", 3, "H", "W"]))
        (B, 3, H, W)
        """
        return _batch_norm_shape(cast(BatchNorm1d | BatchNorm2d, self), inputs, self._ranks)

    def inferred_arguments(self, *inputs: ShapeValue) -> dict[str, Dim]:
        """``num_features``: the input's dim 1.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.BatchNorm2d().inferred_arguments(dims.Shape(["B", 16, "H", "W"]))
        {'num_features': 16}
        """
        return {"num_features": _channels(type(self).__name__, inputs, minimum_rank=min(self._ranks))}


class BatchNorm1d(_BatchNorm, torch.nn.BatchNorm1d, WeightedModule):
    """``torch.nn.BatchNorm1d`` as a tree leaf: inputs ``(N, C)`` or ``(N, C, L)``.

    ``num_features`` may be left out (``BatchNorm1d()``): the layer is lazy until
    ``fluxion.shapes.materialize`` takes it from the input shapes.

    >>> import fluxion.layers as fl
    >>> sorted(fl.BatchNorm1d(3).state_dict())
    ['bias', 'num_batches_tracked', 'running_mean', 'running_var', 'weight']
    """

    _torch_layer = torch.nn.BatchNorm1d
    _ranks = (2, 3)
    num_features: int | None  # pyright: ignore[reportIncompatibleVariableOverride]  # None while lazy


class BatchNorm2d(_BatchNorm, torch.nn.BatchNorm2d, WeightedModule):
    """``torch.nn.BatchNorm2d`` as a tree leaf: inputs ``(N, C, H, W)``.

    ``num_features`` may be left out (``BatchNorm2d()``): the layer is lazy until
    ``fluxion.shapes.materialize`` takes it from the input shapes.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.BatchNorm2d(3).eval()(torch.zeros(1, 3, 2, 2)).shape
    torch.Size([1, 3, 2, 2])
    >>> fl.BatchNorm2d(momentum=0.01)
    BatchNorm2d(?, eps=1e-05, momentum=0.01, affine=True, bias=True, track_running_stats=True)
    """

    _torch_layer = torch.nn.BatchNorm2d
    _ranks = (4,)
    num_features: int | None  # pyright: ignore[reportIncompatibleVariableOverride]  # None while lazy


# -- shared by several norms ------------------------------------------------------------------------


def _bias(bias: bool) -> dict[str, bool]:
    """The keyword-only ``bias`` of torch's BatchNorm and GroupNorm (torch 2.13 on), passed only when False."""
    return {} if bias else {"bias": False}


def _check_normalized_shape(name: str, normalized: NormalizedShape | None) -> None:
    """A normalized shape has one dim or more, each at least 0 (None: left to inference)."""
    if normalized is None:
        return
    sizes = (normalized,) if isinstance(normalized, int) else tuple(normalized)
    if not sizes:
        raise LayerError(f"{name}: normalized_shape must have at least one dim, got {normalized!r}")
    checks.at_least(name, "normalized_shape", sizes, 0)


def _normalized_shape(name: str, inputs: tuple[ShapeValue, ...], normalized: tuple[int, ...] | None) -> dims.Shape:
    shape = dims.single(inputs, name)
    if normalized is None:  # lazy: the last dim, whatever it is
        shape.at(-1, name)
        return shape
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


def _channels(name: str, inputs: tuple[ShapeValue, ...], minimum_rank: int) -> Dim:
    """Dim 1 of the one input (the channels), which needs ``minimum_rank`` dims."""
    shape = dims.single(inputs, name)
    if len(shape) < minimum_rank:
        raise ShapeError(f"{name} expects an input of at least {minimum_rank} dims (N, C, ...), got {shape!r}")
    return shape[1]


def _batch_norm_shape(
    layer: BatchNorm1d | BatchNorm2d, inputs: tuple[ShapeValue, ...], ranks: tuple[int, ...]
) -> dims.Shape:
    name = type(layer).__name__
    shape = dims.single(inputs, name)
    if len(shape) not in ranks:
        expected = " or ".join(f"{rank}D" for rank in ranks)
        raise ShapeError(f"{name} expects a {expected} input, got {shape!r}")
    # torch checks the channels against its weights or running statistics; without either, any count goes
    # (a lazy layer takes any count; its running statistics are those it will have)
    if layer.num_features is None:
        running = layer.track_running_stats
        if shape[1] == 0:  # the layer it would become has no features: refused when built
            raise ShapeError(f"{name} expects at least 1 channel at dim 1, got {shape!r}")
    else:
        running = layer.running_mean is not None or layer.running_var is not None
        if layer.affine or layer.running_mean is not None:
            dims.require_equal(layer.num_features, shape[1], f"{name} expects {layer.num_features} channels at dim 1")
    batch_statistics = layer.training or not running
    values = dims.product(size for position, size in enumerate(shape) if position != 1)
    if batch_statistics and values == 1:
        raise ShapeError(f"{name} expects more than 1 value per channel when training, got {shape!r}")
    if batch_statistics and layer.eps <= 0:
        raise ShapeError(f"{name} expects an eps above 0 when it uses batch statistics, got {layer.eps}")
    return shape
