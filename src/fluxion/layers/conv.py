"""Convolutions as tree leaves (torch's layers, torch's state_dict keys).

>>> import torch
>>> import fluxion.layers as fl
>>> fl.Conv2d(3, 8, kernel_size=3, padding=1)(torch.zeros(1, 3, 16, 16)).shape
torch.Size([1, 8, 16, 16])
"""

from collections.abc import Mapping
from typing import Any, Literal, Self, cast

import torch
from jaxtyping import Float
from torch import Tensor

from fluxion import dims
from fluxion.dims import Dim, ShapeValue
from fluxion.errors import LayerError, ShapeError
from fluxion.layers import checks, geometry
from fluxion.layers.lazy import Inferable, required
from fluxion.layers.padding import padded_shape
from fluxion.layers.shaping import exact_divide
from fluxion.tree.module import WeightedModule

PaddingMode = Literal["zeros", "reflect", "replicate", "circular"]
Size1 = int | tuple[int]
Size2 = int | tuple[int, int]
Size3 = int | tuple[int, int, int]


class _Convolution(Inferable):
    """Conv1d, Conv2d and Conv3d over any number of spatial dims: construction, the shape rule, the
    inference of ``in_channels`` and the output they must produce. Each class adds only its typed
    constructor (the size types of its dims) and torch's layer for that many dims.

    ``downsample=r`` derives the stride (``r``) and padding at construction, so that every size that
    ``r`` divides becomes ``size / r``; ``output_size=O`` needs the input size, and
    ``model_downsample=r`` (the output is ``1/r`` of the model's input, Neurlink's way) the sizes of
    the layer's input and of the model's, so stride and padding stay missing (a lazy layer) until
    ``fluxion.shapes.materialize`` finds them.
    """

    downsample: tuple[int, ...] | None = None
    """The ratio per spatial dim that the layer was built to downsample by, or None."""

    model_downsample: tuple[int, ...] | None = None
    """The ratio per spatial dim of the model's input to the layer's output it was built for, or None."""

    output_size: tuple[int, ...] | None = None
    """The spatial output size that the layer was built to produce, or None."""

    def _build(self, layout: type[torch.nn.Module], given: Mapping[str, Any]) -> None:
        """Construct as torch's ``layout`` (``torch.nn.Conv2d``...) from the arguments of a typed
        constructor, ``given`` as its ``locals()``: the constructors differ only in the types of their sizes."""
        arguments = {name: given[name] for name in _TORCH_ARGUMENTS}
        aims = (given["downsample"], given["output_size"], given["model_downsample"])
        _construct(self, layout, arguments, given["device"], given["dtype"], *aims)

    def forward(self, input: Float[Tensor, "..."]) -> Float[Tensor, "..."]:  # (*batch, in_channels, *spatial)
        return super().forward(input)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """``(*batch, in_channels, *spatial)`` to ``(*batch, out_channels, *out)``, torch's formula
        (floors for strides); padding may be ints, ``"same"`` or ``"valid"``, the batch dim optional.

        With ``downsample=r`` each spatial size must be a multiple of ``r`` (a constraint when it is
        symbolic); with ``output_size`` the output is that size, from a concrete input size; with
        ``model_downsample=r`` it is ``1/r`` of the model's input (inside ``fluxion.shapes.infer``),
        and once materialized each size must be a multiple of the stride found.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.Conv2d(3, 8, 3, stride=2, padding=1).output_shape(dims.Shape(["B", 3, "H", 64]))
        (B, 8, ceil(H/2), 32)
        >>> fl.Conv1d(2, 4, kernel_size=3, stride=2).output_shape(dims.Shape(["B", 2, "T"]))
        (B, 4, ceil(T/2) - 1)
        >>> fl.Conv2d(3, 8, 3, output_size=(16, 10)).output_shape(dims.Shape(["B", 3, 32, 20]))
        (B, 8, 16, 10)
        """
        return _conv_shape(cast(_Conv, self), inputs)

    def inferred_arguments(self, *inputs: ShapeValue) -> dict[str, Any]:
        """What the layer left out, from its input: ``in_channels`` (the dim before the spatial ones),
        and with ``output_size`` or ``model_downsample`` the ``stride`` and ``padding`` (one per
        spatial dim) that produce it.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.Conv2d(out_channels=4, kernel_size=3).inferred_arguments(dims.Shape(["B", 3, "H", "W"]))
        {'in_channels': 3}
        >>> fl.Conv2d(3, 4, kernel_size=3, output_size=16).inferred_arguments(dims.Shape(["B", 3, 32, 64]))
        {'stride': (2, 4), 'padding': (1, 0)}
        """
        layer = cast(_Conv, self)
        found: dict[str, Any] = {}
        if layer.in_channels is None:
            found["in_channels"] = _input_channels(layer, inputs)
        if layer.stride is None or layer.padding is None:
            shape = dims.single(inputs, type(layer).__name__)
            _check_rank(shape, type(layer).__name__, len(layer.kernel_size))
            solved = [_derived(layer, axis, size) for axis, size in enumerate(shape[-len(layer.kernel_size) :])]
            found["stride"] = tuple(stride for stride, _ in solved)
            found["padding"] = tuple(padding for _, padding in solved)
        return found

    def materialized(self, **arguments: int | tuple[int, ...]) -> Self:
        """A detached twin with ``arguments`` filled in and its parameters created (see ``Inferable``);
        a derived padding reaches the padding that torch applies itself (``padding_mode`` other than zeros).

        >>> import torch
        >>> import fluxion.layers as fl
        >>> conv = fl.Conv1d(1, 1, kernel_size=3, padding_mode="reflect", output_size=4)
        >>> twin = conv.materialized(stride=(2,), padding=(1,))
        >>> twin
        Conv1d(1, 1, kernel_size=(3,), stride=(2,), padding=(1,), padding_mode=reflect, output_size=(4,))
        >>> twin(torch.arange(8.0).reshape(1, 1, 8)).shape
        torch.Size([1, 1, 4])
        """
        twin = super().materialized(**cast(dict[str, int], arguments))
        _repeat_padding(cast(_Conv, twin))
        return twin

    def adopt(self, twin: Self) -> None:  # pyright: ignore[reportIncompatibleMethodOverride]  # reads Self as Inferable
        """Become ``twin``, a ``materialized`` copy of this layer (see ``Inferable``).

        >>> import torch
        >>> import fluxion.layers as fl
        >>> conv = fl.Conv2d(out_channels=2, kernel_size=3, output_size=4)
        >>> conv.adopt(conv.materialized(in_channels=1, stride=(2, 2), padding=(1, 1)))
        >>> conv(torch.zeros(1, 1, 8, 8)).shape
        torch.Size([1, 2, 4, 4])
        """
        super().adopt(twin)
        _repeat_padding(cast(_Conv, self))
        if self.output_size is not None:
            # stride and padding follow from output_size and the layer's input: a spec states only that.
            # With model_downsample they follow from where the layer sits, which a spec without input
            # shapes does not say: it states them beside model_downsample (a materialized layer).
            inferred = self.__dict__["_fluxion_inferred"]
            derived = ("stride", "padding")
            self.__dict__["_fluxion_inferred"] = {key: value for key, value in inferred.items() if key not in derived}

    def extra_repr(self) -> str:
        text = super().extra_repr()
        if self.downsample is not None:
            return f"{text}, downsample={self.downsample}"
        if self.output_size is not None:
            return f"{text}, output_size={self.output_size}"
        if self.model_downsample is not None:
            return f"{text}, model_downsample={self.model_downsample}"
        return text


class Conv1d(_Convolution, torch.nn.Conv1d, WeightedModule):
    """``torch.nn.Conv1d`` as a tree leaf.

    ``in_channels`` may be left out (``Conv1d(out_channels=8, kernel_size=3)``): the layer is lazy
    until ``fluxion.shapes.materialize`` takes it from the input shapes.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Conv1d(2, 4, kernel_size=3)(torch.zeros(1, 2, 10)).shape
    torch.Size([1, 4, 8])
    """

    in_channels: int | None  # pyright: ignore[reportIncompatibleVariableOverride]  # None while lazy
    stride: tuple[int, ...] | None  # pyright: ignore[reportIncompatibleVariableOverride]  # None until output_size is met
    padding: str | tuple[int, ...] | None  # pyright: ignore[reportIncompatibleVariableOverride]

    def __init__(
        self,
        in_channels: int | None = None,
        out_channels: int | None = None,
        kernel_size: Size1 | None = None,
        stride: Size1 | None = None,
        padding: str | Size1 | None = None,
        dilation: Size1 = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: PaddingMode = "zeros",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        downsample: Size1 | None = None,
        output_size: Size1 | None = None,
        model_downsample: Size1 | None = None,
    ) -> None:
        self._build(torch.nn.Conv1d, locals())


class Conv2d(_Convolution, torch.nn.Conv2d, WeightedModule):
    """``torch.nn.Conv2d`` as a tree leaf.

    ``in_channels`` may be left out (``Conv2d(out_channels=64, kernel_size=3)``): the layer is lazy
    until ``fluxion.shapes.materialize`` takes it from the input shapes.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Conv2d(2, 4, kernel_size=3, stride=2)(torch.zeros(1, 2, 9, 9)).shape
    torch.Size([1, 4, 4, 4])
    >>> fl.Conv2d(out_channels=64, kernel_size=3, padding=1)
    Conv2d(?, 64, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1))

    Instead of ``stride`` and ``padding`` it may take the output it must produce: ``downsample=r``
    derives them at once (every size that ``r`` divides becomes ``size / r``), ``output_size=O``
    from the input size, which leaves them missing until ``fluxion.shapes.materialize``:

    >>> fl.Conv2d(3, 64, kernel_size=7, downsample=2)
    Conv2d(3, 64, kernel_size=(7, 7), stride=(2, 2), padding=(3, 3), downsample=(2, 2))
    >>> fl.Conv2d(3, 64, kernel_size=3, output_size=(16, 16)).missing
    ('stride', 'padding')

    ``model_downsample=r`` states the output as ``1/r`` of the model's input (Neurlink's way): the
    stride is the ratio of where the layer's input stands to ``r``, found by ``materialize``, and the
    padding the symmetric one torchvision uses:

    >>> from fluxion import shapes
    >>> stem = fl.Chain(fl.Conv2d(3, 64, 7, model_downsample=2), fl.Conv2d(64, 64, 3, model_downsample=4))
    >>> shapes.materialize(stem, ("B", 3, 224, 224)).output
    (B, 64, 56, 56)
    >>> stem.Conv2d_2
    Conv2d(64, 64, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), model_downsample=(4, 4))
    """

    in_channels: int | None  # pyright: ignore[reportIncompatibleVariableOverride]  # None while lazy
    stride: tuple[int, ...] | None  # pyright: ignore[reportIncompatibleVariableOverride]  # None until output_size is met
    padding: str | tuple[int, ...] | None  # pyright: ignore[reportIncompatibleVariableOverride]

    def __init__(
        self,
        in_channels: int | None = None,
        out_channels: int | None = None,
        kernel_size: Size2 | None = None,
        stride: Size2 | None = None,
        padding: str | Size2 | None = None,
        dilation: Size2 = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: PaddingMode = "zeros",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        downsample: Size2 | None = None,
        output_size: Size2 | None = None,
        model_downsample: Size2 | None = None,
    ) -> None:
        self._build(torch.nn.Conv2d, locals())


class Conv3d(_Convolution, torch.nn.Conv3d, WeightedModule):
    """``torch.nn.Conv3d`` as a tree leaf.

    ``in_channels`` may be left out (``Conv3d(out_channels=8, kernel_size=3)``): the layer is lazy
    until ``fluxion.shapes.materialize`` takes it from the input shapes.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Conv3d(1, 2, kernel_size=1)(torch.zeros(1, 1, 2, 3, 4)).shape
    torch.Size([1, 2, 2, 3, 4])
    """

    in_channels: int | None  # pyright: ignore[reportIncompatibleVariableOverride]  # None while lazy
    stride: tuple[int, ...] | None  # pyright: ignore[reportIncompatibleVariableOverride]  # None until output_size is met
    padding: str | tuple[int, ...] | None  # pyright: ignore[reportIncompatibleVariableOverride]

    def __init__(
        self,
        in_channels: int | None = None,
        out_channels: int | None = None,
        kernel_size: Size3 | None = None,
        stride: Size3 | None = None,
        padding: str | Size3 | None = None,
        dilation: Size3 = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: PaddingMode = "zeros",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
        *,
        downsample: Size3 | None = None,
        output_size: Size3 | None = None,
        model_downsample: Size3 | None = None,
    ) -> None:
        self._build(torch.nn.Conv3d, locals())


class ConvTranspose2d(Inferable, torch.nn.ConvTranspose2d, WeightedModule):
    """``torch.nn.ConvTranspose2d`` as a tree leaf.

    ``in_channels`` may be left out (``ConvTranspose2d(out_channels=8, kernel_size=2)``): the layer
    is lazy until ``fluxion.shapes.materialize`` takes it from the input shapes.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.ConvTranspose2d(4, 2, kernel_size=2, stride=2)(torch.zeros(1, 4, 5, 5)).shape
    torch.Size([1, 2, 10, 10])
    """

    in_channels: int | None  # pyright: ignore[reportIncompatibleVariableOverride]  # None while lazy

    def __init__(
        self,
        in_channels: int | None = None,
        out_channels: int | None = None,
        kernel_size: Size2 | None = None,
        stride: Size2 = 1,
        padding: Size2 = 0,
        output_padding: Size2 = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: Size2 = 1,
        padding_mode: PaddingMode = "zeros",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        arguments = {
            "in_channels": in_channels,
            "out_channels": out_channels,
            "kernel_size": kernel_size,
            "stride": stride,
            "padding": padding,
            "output_padding": output_padding,
            "groups": groups,
            "bias": bias,
            "dilation": dilation,
            "padding_mode": padding_mode,
        }
        _construct(self, torch.nn.ConvTranspose2d, arguments, device, dtype)

    def forward(
        self, input: Float[Tensor, "*batch in_channels height width"], output_size: list[int] | None = None
    ) -> Float[Tensor, "*batch out_channels h w"]:
        return super().forward(input, output_size)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """``(*batch, in_channels, H, W)`` to ``(*batch, out_channels, H_out, W_out)`` with
        ``H_out = (H - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1``.

        The ``output_size`` argument of ``forward`` is not part of the rule (the rule takes one tensor).

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.ConvTranspose2d(4, 2, kernel_size=2, stride=2).output_shape(dims.Shape(["B", 4, "H", 5]))
        (B, 2, 2*H, 10)
        """
        name = type(self).__name__
        shape = dims.single(inputs, name)
        _check_rank(shape, name, 2)
        _check_channels(self, shape[-3])
        if isinstance(self.padding, str):
            raise ShapeError(f"{name} expects padding as ints, got {self.padding!r}")
        if 0 in shape[-2:] and not (len(shape) == 4 and shape[0] == 0):
            raise ShapeError(f"{name} expects non-empty spatial dims unless the batch is empty, got {shape!r}")
        sizes: list[Dim] = []
        for axis, size in enumerate(shape[-2:]):
            kernel, stride, dilation = self.kernel_size[axis], self.stride[axis], self.dilation[axis]
            padding, extra = self.padding[axis], self.output_padding[axis]
            if extra >= stride and extra >= dilation:
                raise ShapeError(
                    f"{name} expects an output_padding smaller than its stride ({stride}) or dilation ({dilation}), "
                    f"got {extra}"
                )
            out = dims.normal((size - 1) * stride - 2 * padding + dilation * (kernel - 1) + extra + 1)
            if isinstance(out, int) and out < 1:
                raise ShapeError(
                    f"{name} expects an input size with an output at dim {axis - 2}, got {size} (output {out})"
                )
            sizes.append(out)
        return dims.Shape([*shape[:-3], self.out_channels, *sizes])

    def inferred_arguments(self, *inputs: ShapeValue) -> dict[str, Dim]:
        """``in_channels``: the input's channels (dim -3).

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.ConvTranspose2d(out_channels=4, kernel_size=2).inferred_arguments(dims.Shape(["B", 8, "H", "W"]))
        {'in_channels': 8}
        """
        return {"in_channels": _input_channels(self, inputs)}


# -- construction and the shape rule shared by the convolutions -------------------------------------

_Conv = Conv1d | Conv2d | Conv3d


def _construct(
    layer: Inferable,
    layout: type[torch.nn.Module],
    arguments: dict[str, Any],
    device: torch.device | str | None,
    dtype: torch.dtype | None,
    downsample: int | tuple[int, ...] | None = None,
    output_size: int | tuple[int, ...] | None = None,
    model_downsample: int | tuple[int, ...] | None = None,
) -> None:
    """torch's constructor, or a lazy layer when ``in_channels`` is None or ``output_size`` or
    ``model_downsample`` leaves stride and padding to the input (torch checks the rest with stand-ins:
    ``groups`` channels, stride 1, padding 0). ``downsample`` sets stride and padding here; ``None``
    means torch's default."""
    name = layout.__name__
    example = f"{name}(out_channels=64, kernel_size=3)"
    required(arguments["out_channels"], name, "out_channels", example)
    required(arguments["kernel_size"], name, "kernel_size", example)
    axes = _AXES.get(layout, 2)
    _check_arguments(name, axes, arguments)
    given = [key for key in ("stride", "padding") if arguments[key] is not None]
    ratios, outputs = geometry.targets(name, axes, downsample, output_size, given, model_downsample)
    of_model = geometry.per_axis(model_downsample, axes, name, "model_downsample")
    if ratios is not None:
        kernels = cast(tuple[int, ...], geometry.per_axis(arguments["kernel_size"], axes, name, "kernel_size"))
        dilations = cast(tuple[int, ...], geometry.per_axis(arguments["dilation"], axes, name, "dilation"))
        arguments["stride"], arguments["padding"] = geometry.downsample_geometry(name, ratios, kernels, dilations)
    elif outputs is None and of_model is None:
        arguments["stride"] = 1 if arguments["stride"] is None else arguments["stride"]
        arguments["padding"] = 0 if arguments["padding"] is None else arguments["padding"]
    stand_ins = {"in_channels": arguments["groups"], "stride": 1, "padding": 0}
    layer.construct(layout, arguments, stand_ins, device, dtype)
    if isinstance(layer, _Convolution) and (ratios is not None or outputs is not None or of_model is not None):
        layer.downsample, layer.output_size, layer.model_downsample = ratios, outputs, of_model


_AXES: dict[type[torch.nn.Module], int] = {torch.nn.Conv1d: 1, torch.nn.Conv2d: 2, torch.nn.Conv3d: 3}

_TORCH_ARGUMENTS = (
    "in_channels",
    "out_channels",
    "kernel_size",
    "stride",
    "padding",
    "dilation",
    "groups",
    "bias",
    "padding_mode",
)
"""The arguments of torch's ConvNd constructors (besides device and dtype), in torch's order."""

_LEAST = {"kernel_size": 1, "stride": 1, "padding": 0, "output_padding": 0, "dilation": 1}
"""The smallest value of each geometry argument (per spatial dim) that torch's forward takes."""


def _check_arguments(name: str, axes: int, arguments: dict[str, Any]) -> None:
    """What torch's constructor lets through but its forward refuses: channels (a transposed
    convolution needs input channels, a convolution without any gives an empty output), sizes
    below their least value, tuples of the wrong length."""
    transposed = "output_padding" in arguments
    checks.at_least(name, "in_channels", arguments["in_channels"], 1 if transposed else 0)
    checks.at_least(name, "out_channels", arguments["out_channels"], 1)
    checks.at_least(name, "groups", arguments["groups"], 1)
    for key, least in _LEAST.items():
        value = arguments.get(key)
        if value is None or (key == "padding" and isinstance(value, str)):  # "same", "valid"
            continue
        given = cast(object, value)
        if not isinstance(given, int) and (
            not isinstance(given, list | tuple) or len(cast(tuple[object, ...], given)) != axes
        ):
            raise LayerError(f"{name}: {key} must be an int or a tuple of {axes}, got {value!r}")
        checks.at_least(name, key, value, least)


def _repeat_padding(layer: _Conv) -> None:
    """torch pads by itself for a ``padding_mode`` other than zeros, from a copy of ``padding`` (reversed,
    each twice) that its constructor made: a padding filled in later must reach it too."""
    if layer.padding is not None and not isinstance(layer.padding, str):
        repeated = [size for size in reversed(layer.padding) for _ in range(2)]
        layer._reversed_padding_repeated_twice = repeated  # pyright: ignore[reportPrivateUsage]


def _derived(layer: _Conv, axis: int, size: Dim) -> tuple[int, int]:
    """The stride and padding with which a layer built with ``output_size`` or ``model_downsample``
    meets it at ``axis``."""
    spatial = len(layer.kernel_size)
    most = None
    if isinstance(size, int) and layer.padding_mode in ("reflect", "circular"):
        most = size - (layer.padding_mode == "reflect")  # torch's F.pad: reflect pads less than the size
    if layer.model_downsample is not None:
        return geometry.model_geometry(
            type(layer).__name__,
            layer.model_downsample[axis],
            size,
            layer.kernel_size[axis],
            layer.dilation[axis],
            axis - spatial,
            spatial=spatial,
            most=most,
        )
    return geometry.output_geometry(
        type(layer).__name__,
        size,
        cast(tuple[int, ...], layer.output_size)[axis],
        layer.kernel_size[axis],
        layer.dilation[axis],
        axis - spatial,
        most=most,
    )


def _input_channels(layer: _Conv | ConvTranspose2d, inputs: tuple[ShapeValue, ...]) -> Dim:
    name = type(layer).__name__
    shape = dims.single(inputs, name)
    spatial = len(layer.kernel_size)
    _check_rank(shape, name, spatial)
    return shape[-spatial - 1]


def _check_channels(layer: _Conv | ConvTranspose2d, channels: Dim) -> None:
    """The input has ``in_channels`` channels; a lazy layer takes any count that ``groups`` divides."""
    name = type(layer).__name__
    if layer.in_channels is None and channels == 0 and isinstance(layer, ConvTranspose2d):
        raise ShapeError(f"{name} expects at least 1 input channel, got 0")  # what it would become is refused
    if layer.in_channels is not None:
        dims.require_equal(layer.in_channels, channels, f"{name} expects {layer.in_channels} input channels")
    elif layer.groups > 1:
        exact_divide(channels, layer.groups, f"{name} expects input channels divisible by groups={layer.groups}")


def _check_rank(shape: dims.Shape, name: str, spatial: int) -> None:
    if len(shape) not in (spatial + 1, spatial + 2):
        raise ShapeError(
            f"{name} expects a {spatial + 1}D (unbatched) or {spatial + 2}D (batched) input, got {shape!r}"
        )


def _conv_shape(layer: _Conv, inputs: tuple[ShapeValue, ...]) -> dims.Shape:
    """torch's rule: the input is padded (both sides, or as ``"same"`` needs), then windows are counted;
    with ``downsample`` each size must be a multiple of the ratio, with ``output_size`` the output is it,
    with ``model_downsample`` stride and padding come from the model's input until materialized, and
    each size must be a multiple of the stride.

    A ``padding_mode`` other than zeros pads with ``F.pad`` first (``fluxion.layers.padding.padded_shape``). Zeros
    are padded by the convolution itself, which refuses an empty spatial dim unless the batch or the
    channels are empty too. An input without channels gives an output without channels, as torch's does.
    """
    name = type(layer).__name__
    shape = dims.single(inputs, name)
    spatial = len(layer.kernel_size)
    _check_rank(shape, name, spatial)
    channels = shape[-spatial - 1]
    _check_channels(layer, channels)
    strides: list[int] = []
    sides: list[tuple[int, int]] = []
    for axis, size in enumerate(shape[-spatial:]):
        if layer.downsample is not None:
            geometry.require_divisible(size, layer.downsample[axis], name, axis - spatial)
        if layer.stride is None or layer.padding is None:
            stride, padding = _derived(layer, axis, size)
            strides.append(stride)
            sides.append((padding, padding))
        else:
            strides.append(layer.stride[axis])
            sides.append(_conv_padding(layer.padding, axis, layer.kernel_size[axis], layer.dilation[axis]))
            if layer.model_downsample is not None:  # materialized: a downsampling by the stride found
                geometry.require_divisible(size, strides[-1], name, axis - spatial)
    if layer.padding_mode == "zeros":
        empty = _zero(channels) or (len(shape) == spatial + 2 and _zero(shape[0]))
        if not empty and any(
            _zero(size) and side != (0, 0) for size, side in zip(shape[-spatial:], sides, strict=True)
        ):
            raise ShapeError(
                f"{name} expects non-empty spatial dims unless the batch or the channels are empty, got {shape!r}"
            )
        padded = [dims.normal(size + left + right) for size, (left, right) in zip(shape[-spatial:], sides, strict=True)]
    else:
        pads = [side for left, right in reversed(sides) for side in (left, right)]
        padded = list(padded_shape(f"{name} padding", shape, pads, layer.padding_mode)[-spatial:])
    sizes: list[Dim] = []
    for axis, size in enumerate(padded):
        kernel, dilation, where = layer.kernel_size[axis], layer.dilation[axis], axis - spatial
        out = dims.conv_output(size, kernel, stride=strides[axis], dilation=dilation)
        if isinstance(out, int) and out < 1:
            extent = dilation * (kernel - 1) + 1
            raise ShapeError(f"{name} expects a padded size of at least {extent} at dim {where}, got {size}")
        if layer.output_size is not None:
            target = layer.output_size[axis]
            dims.require_equal(target, out, f"{name} was built to produce output size {target} at dim {where}")
        sizes.append(out)
    out_channels = 0 if _zero(channels) else layer.out_channels
    return dims.Shape([*shape[: -spatial - 1], out_channels, *sizes])


def _zero(size: Dim) -> bool:
    return isinstance(size, int) and size == 0


def _conv_padding(padding: str | tuple[int, ...], axis: int, kernel: int, dilation: int) -> tuple[int, int]:
    """The padding before and after ``axis``: ``"same"`` pads ``dilation * (kernel - 1)`` in all, less before."""
    if padding == "valid":
        return 0, 0
    if padding == "same":
        total = dilation * (kernel - 1)
        return total // 2, total - total // 2
    if isinstance(padding, str):
        raise ShapeError(f"padding is an int, a tuple, 'same' or 'valid', got {padding!r}")
    return padding[axis], padding[axis]
