"""The operations of DARTS's search space (and Archai's few more) as fluxion layers.

Each composite operation is a ``Chain`` that builds its children from its arguments, so its shape
rule is its children's and its parameter names are the children's automatic names
(``SepConv.Conv2d_1.weight``). Parameter counts equal those of DARTS's reference modules: every
convolution has no bias, and a BatchNorm is affine unless built with ``affine=False``.
``operation(name, channels, stride)`` is DARTS's table from a primitive's name to its layer.

>>> import torch
>>> from fluxion.nas import operations as ops
>>> ops.PRIMITIVES[:4]
('none', 'max_pool_3x3', 'avg_pool_3x3', 'skip_connect')
>>> reduce = ops.operation("sep_conv_3x3", channels=8, stride=2)
>>> reduce(torch.randn(2, 8, 16, 16)).shape
torch.Size([2, 8, 8, 8])
"""

import difflib
from collections.abc import Callable
from typing import Literal

import torch
from jaxtyping import Float
from torch import Tensor

import fluxion.layers as fl
from fluxion import dims
from fluxion.dims import Shape, ShapeValue
from fluxion.errors import LayerError, NasError, ShapeError
from fluxion.layers import checks
from fluxion.layers.activations import Elementwise

__all__ = [
    "OPERATIONS",
    "PRIMITIVES",
    "AuxiliaryHeadCIFAR",
    "CifarStem",
    "ConvBNReLU",
    "DilConv",
    "DropPath",
    "FacConv",
    "FactorizedReduce",
    "PoolBN",
    "ReLUConvBN",
    "SepConv",
    "StemS4",
    "StemS4S2",
    "Zero",
    "operation",
]


class ReLUConvBN(fl.Chain):
    """ReLU, a convolution without bias, then a BatchNorm: DARTS's preprocessing of a cell's inputs.

    >>> import torch
    >>> from fluxion.nas.operations import ReLUConvBN
    >>> ReLUConvBN(16, 8, kernel_size=1)(torch.randn(2, 16, 5, 5)).shape
    torch.Size([2, 8, 5, 5])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        affine: bool = True,
    ) -> None:
        super().__init__(
            fl.ReLU(),
            fl.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False),
            fl.BatchNorm2d(out_channels, affine=affine),
        )


class DilConv(fl.Chain):
    """ReLU, a depthwise (dilated) convolution, a 1x1 convolution, then a BatchNorm (DARTS's ``dil_conv``).

    Only the depthwise convolution has the stride, padding and dilation.

    >>> import torch
    >>> from fluxion.nas.operations import DilConv
    >>> layer = DilConv(8, 8, kernel_size=3, stride=2, padding=2, dilation=2)
    >>> layer(torch.randn(1, 8, 16, 16)).shape, sum(p.numel() for p in layer.parameters())
    (torch.Size([1, 8, 8, 8]), 152)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        padding: int,
        dilation: int,
        affine: bool = True,
    ) -> None:
        super().__init__(
            fl.ReLU(),
            _depthwise(in_channels, kernel_size, stride, padding, dilation),
            fl.Conv2d(in_channels, out_channels, 1, bias=False),
            fl.BatchNorm2d(out_channels, affine=affine),
        )


class SepConv(fl.Chain):
    """Two separable convolutions in a row, as one flat Chain of eight layers (DARTS's ``sep_conv``).

    ReLU, depthwise convolution (with the stride), 1x1 convolution, BatchNorm, then ReLU, depthwise
    convolution (stride 1), 1x1 convolution to ``out_channels``, BatchNorm. Both depthwise
    convolutions take ``padding``; the first 1x1 keeps ``in_channels``.

    >>> import torch
    >>> from fluxion.nas.operations import SepConv
    >>> layer = SepConv(4, 4, kernel_size=3, stride=1, padding=1)
    >>> layer(torch.randn(1, 4, 6, 6)).shape
    torch.Size([1, 4, 6, 6])
    >>> [name for name, _ in layer.named_parameters()][:3]
    ['Conv2d_1.weight', 'Conv2d_2.weight', 'BatchNorm2d_1.weight']
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        padding: int,
        affine: bool = True,
    ) -> None:
        super().__init__(
            fl.ReLU(),
            _depthwise(in_channels, kernel_size, stride, padding),
            fl.Conv2d(in_channels, in_channels, 1, bias=False),
            fl.BatchNorm2d(in_channels, affine=affine),
            fl.ReLU(),
            _depthwise(in_channels, kernel_size, 1, padding),
            fl.Conv2d(in_channels, out_channels, 1, bias=False),
            fl.BatchNorm2d(out_channels, affine=affine),
        )


class FactorizedReduce(fl.Chain):
    """Halves the height and width with two 1x1 stride-2 convolutions, the second shifted by one pixel.

    ReLU, then the concatenation along the channels of a convolution of the input and one of the
    input without its first row and column (``x[:, :, 1:, 1:]``), each to ``out_channels // 2``,
    then a BatchNorm. ``out_channels`` must be even. The two halves have the same size only when
    the height and width are even: shape inference requires that (a constraint for symbolic sizes,
    a ShapeError for odd ones), as ``torch.cat`` would fail.

    >>> import torch
    >>> from fluxion import shapes
    >>> from fluxion.nas.operations import FactorizedReduce
    >>> layer = FactorizedReduce(6, 8)
    >>> layer(torch.randn(2, 6, 10, 12)).shape
    torch.Size([2, 8, 5, 6])
    >>> shapes.infer(layer, ("B", 6, "H", "W")).output
    (B, 8, H/2, W/2)
    """

    def __init__(self, in_channels: int, out_channels: int, affine: bool = True) -> None:
        checks.at_least("FactorizedReduce", "out_channels", out_channels, 2)
        if out_channels % 2:
            raise LayerError(
                f"FactorizedReduce: out_channels must be even (two halves of out_channels // 2), got {out_channels}"
            )
        half = out_channels // 2
        super().__init__(
            fl.ReLU(),
            fl.Concatenate(
                fl.Conv2d(in_channels, half, 1, stride=2, bias=False),
                fl.Chain(
                    fl.Slicing(dim=-2, start=1),
                    fl.Slicing(dim=-1, start=1),
                    fl.Conv2d(in_channels, half, 1, stride=2, bias=False),
                ),
                dim=1,
            ),
            fl.BatchNorm2d(out_channels, affine=affine),
        )

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """``(N, C, H, W)`` to ``(N, out_channels, H/2, W/2)``, for an even height and width.

        >>> from fluxion import dims
        >>> from fluxion.nas.operations import FactorizedReduce
        >>> FactorizedReduce(4, 4).output_shape(dims.Shape(["B", 4, 7, 8]))
        Traceback (most recent call last):
        ...
        fluxion.errors.ShapeError: FactorizedReduce needs an even height (its two halves differ otherwise), got 7
        """
        shape = dims.single(inputs, "FactorizedReduce")
        if len(shape) != 4:
            raise ShapeError(f"FactorizedReduce expects (N, C, H, W), got {shape!r}")
        for size, name in ((shape[2], "height"), (shape[3], "width")):
            # said as "a multiple of 2" so that inference reads later sizes as H/2, not ceil(H/2)
            reason = f"FactorizedReduce needs an even {name} (its two halves differ otherwise)"
            dims.require_equal(2 * dims.floordiv(size, 2), size, reason)
        return super().output_shape(*inputs)


class PoolBN(fl.Chain):
    """A 2d max or average pooling, then a BatchNorm (non-affine by default): the pools of DARTS's supernet.

    DARTS's search network puts a BatchNorm without affine parameters after each pooling candidate;
    its evaluation network has the pooling alone. The average pooling leaves the padding out of
    its averages (``count_include_pad=False``).

    >>> import torch
    >>> from fluxion.nas.operations import PoolBN
    >>> layer = PoolBN("avg", 8, stride=2)
    >>> layer(torch.randn(2, 8, 6, 6)).shape, sum(p.numel() for p in layer.parameters())
    (torch.Size([2, 8, 3, 3]), 0)
    """

    def __init__(
        self,
        kind: Literal["max", "avg"],
        channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int = 1,
        affine: bool = False,
    ) -> None:
        pool: torch.nn.Module
        if kind == "max":
            pool = fl.MaxPool2d(kernel_size, stride=stride, padding=padding)
        elif kind == "avg":
            pool = fl.AvgPool2d(kernel_size, stride=stride, padding=padding, count_include_pad=False)
        else:
            raise LayerError(f"PoolBN: kind must be 'max' or 'avg', got {kind!r}")
        super().__init__(pool, fl.BatchNorm2d(channels, affine=affine))


class Zero(Elementwise):
    """Zeros in place of its input, every ``stride``-th pixel of the last two dims (DARTS's ``none``).

    Computed as ``x * 0`` (on ``x[..., ::stride, ::stride]`` for a stride above 1), as DARTS does:
    the output stays in the autograd graph, and a nan or inf of the input stays a nan.

    >>> import torch
    >>> from fluxion.nas.operations import Zero
    >>> Zero(stride=2)(torch.ones(1, 2, 5, 4)).shape, Zero()(torch.ones(3)).tolist()
    (torch.Size([1, 2, 3, 2]), [0.0, 0.0, 0.0])
    """

    def __init__(self, stride: int = 1) -> None:
        super().__init__()
        checks.at_least("Zero", "stride", stride, 1)
        self.stride = stride

    def forward(self, input: Float[Tensor, "..."]) -> Float[Tensor, "..."]:
        if self.stride == 1:
            return input.mul(0.0)
        return input[..., :: self.stride, :: self.stride].mul(0.0)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """The input's shape; with a stride above 1, the last two sizes ``S`` become ``ceil(S / stride)``.

        >>> from fluxion import dims
        >>> from fluxion.nas.operations import Zero
        >>> Zero(2).output_shape(dims.Shape(["B", 8, "H", 7]))
        (B, 8, ceil(H/2), 4)
        """
        shape = dims.single(inputs, "Zero")
        if self.stride == 1:
            return shape
        if len(shape) < 2:
            raise ShapeError(f"Zero(stride={self.stride}) expects a tensor of rank 2 or more, got {shape!r}")
        # the size of a 1x1 window at this stride: ceil(S / stride), the expression the strided convolutions give
        strided = [dims.conv_output(size, kernel=1, stride=self.stride) for size in shape[-2:]]
        return Shape([*shape[:-2], *strided])

    def extra_repr(self) -> str:
        return f"stride={self.stride}"


class DropPath(Elementwise):
    """Drops whole samples in training: each one is zeroed with probability ``p``, the rest scaled by ``1 / (1 - p)``.

    The mask has one entry per sample (shape ``(N, 1, 1, ...)``), drawn anew at every call, so the
    expected output is the input. The identity in eval mode or with ``p == 0``. ``p`` is meant to be
    changed by a training loop (DARTS raises it linearly over the epochs); it stays below 1.

    >>> import torch
    >>> from fluxion.nas.operations import DropPath
    >>> drop = DropPath(0.5)
    >>> out = drop(torch.ones(1000, 2))
    >>> sorted(set(out[:, 0].tolist())), bool(torch.equal(out[:, 0], out[:, 1]))
    ([0.0, 2.0], True)
    >>> drop.eval()(torch.ones(2)).tolist()
    [1.0, 1.0]
    """

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    @property
    def p(self) -> float:
        """The probability to drop a sample, from 0 up to (not including) 1.

        >>> from fluxion.nas.operations import DropPath
        >>> drop = DropPath()
        >>> drop.p = 0.2
        >>> drop
        DropPath(p=0.2)
        """
        return self._p

    @p.setter
    def p(self, value: float) -> None:
        checks.probability("DropPath", "p", value)
        if value == 1:
            raise LayerError("DropPath: p must be below 1 (the kept samples are divided by 1 - p), got 1")
        self._p = float(value)

    def forward(self, input: Float[Tensor, "batch ..."]) -> Float[Tensor, "batch ..."]:
        if not self.training or self._p == 0:
            return input
        keep = 1.0 - self._p
        mask = torch.empty((input.shape[0],) + (1,) * (input.dim() - 1), dtype=input.dtype, device=input.device)
        return input / keep * mask.bernoulli_(keep)

    def extra_repr(self) -> str:
        return f"p={self._p}"


class CifarStem(fl.Chain):
    """A 3x3 convolution (padding 1, no bias) and a BatchNorm: DARTS's stem for CIFAR images.

    >>> import torch
    >>> from fluxion.nas.operations import CifarStem
    >>> stem = CifarStem(48)
    >>> stem(torch.randn(2, 3, 32, 32)).shape, sum(p.numel() for p in stem.parameters())
    (torch.Size([2, 48, 32, 32]), 1392)
    """

    def __init__(self, out_channels: int, in_channels: int = 3, affine: bool = True) -> None:
        super().__init__(
            fl.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            fl.BatchNorm2d(out_channels, affine=affine),
        )


class AuxiliaryHeadCIFAR(fl.Chain):
    """DARTS's auxiliary classifier for CIFAR, on 8x8 feature maps: ``(N, in_channels, 8, 8)`` to ``(N, classes)``.

    ReLU, a 5x5 average pooling of stride 3 (to 2x2, padding left out), a 1x1 convolution to 128
    channels, BatchNorm, ReLU, a 2x2 convolution to 768 channels (to 1x1), BatchNorm, ReLU, then a
    linear classifier. The convolutions have no bias; the linear layer has one.

    >>> import torch
    >>> from fluxion.nas.operations import AuxiliaryHeadCIFAR
    >>> head = AuxiliaryHeadCIFAR(576, classes=10)
    >>> head(torch.randn(2, 576, 8, 8)).shape, sum(p.numel() for p in head.parameters())
    (torch.Size([2, 10]), 476426)
    """

    def __init__(self, in_channels: int, classes: int) -> None:
        super().__init__(
            fl.ReLU(),
            fl.AvgPool2d(5, stride=3, padding=0, count_include_pad=False),
            fl.Conv2d(in_channels, 128, 1, bias=False),
            fl.BatchNorm2d(128),
            fl.ReLU(),
            fl.Conv2d(128, 768, 2, bias=False),
            fl.BatchNorm2d(768),
            fl.ReLU(),
            fl.Flatten(),
            fl.Linear(768, classes),
        )


class FacConv(fl.Chain):
    """A factorized ``kernel_size`` x ``kernel_size`` convolution: ReLU, a 1xk then a kx1 convolution, BatchNorm.

    DARTS's ``conv_7x1_1x7``: the 1xk convolution (``in_channels`` to ``in_channels``) strides and
    pads the width only, the kx1 one (to ``out_channels``) the height only, so
    ``padding = kernel_size // 2`` keeps the size at stride 1 and halves it at stride 2. Archai's
    ``FacConv`` applies the stride and the padding to both dims of both convolutions (kx1 first),
    which changes the size (32x32 becomes 38x38 at stride 1); fluxion keeps DARTS's shape.

    >>> import torch
    >>> from fluxion.nas.operations import FacConv
    >>> layer = FacConv(8, 8, kernel_size=7, stride=2, padding=3)
    >>> layer(torch.randn(1, 8, 16, 16)).shape, sum(p.numel() for p in layer.parameters())
    (torch.Size([1, 8, 8, 8]), 912)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int,
        padding: int,
        affine: bool = True,
    ) -> None:
        super().__init__(
            fl.ReLU(),
            fl.Conv2d(
                in_channels,
                in_channels,
                (1, kernel_size),
                stride=(1, stride),
                padding=(0, padding),
                bias=False,
            ),
            fl.Conv2d(
                in_channels,
                out_channels,
                (kernel_size, 1),
                stride=(stride, 1),
                padding=(padding, 0),
                bias=False,
            ),
            fl.BatchNorm2d(out_channels, affine=affine),
        )


class ConvBNReLU(fl.Chain):
    """A convolution without bias, a BatchNorm, then ReLU (Archai's ``convbnrelu``, from NAS-Bench-101).

    >>> import torch
    >>> from fluxion.nas.operations import ConvBNReLU
    >>> bool(ConvBNReLU(3, 8, kernel_size=3, padding=1)(torch.randn(1, 3, 4, 4)).min() >= 0)
    True
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        affine: bool = True,
    ) -> None:
        super().__init__(
            fl.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding, bias=False),
            fl.BatchNorm2d(out_channels, affine=affine),
            fl.ReLU(),
        )


class StemS4(fl.Chain):
    """A stem that divides the height and width by 4 (Archai's ``stem_conv3x3_s4``).

    A 3x3 convolution of stride 2 to ``out_channels // 2``, BatchNorm, ReLU, a 3x3 convolution of
    stride 2 to ``out_channels``, BatchNorm (padding 1, no bias).

    >>> import torch
    >>> from fluxion.nas.operations import StemS4
    >>> StemS4(48)(torch.randn(1, 3, 64, 64)).shape
    torch.Size([1, 48, 16, 16])
    """

    def __init__(self, out_channels: int, in_channels: int = 3, affine: bool = True) -> None:
        super().__init__(*_stem_s4(out_channels, in_channels, affine, "StemS4"))


class StemS4S2(fl.Chain):
    """A stem that divides the height and width by 8 (Archai's ``stem_conv3x3_s4s2``).

    ``StemS4``'s layers, then ReLU, a 3x3 convolution of stride 2 (``out_channels`` to
    ``out_channels``) and a BatchNorm.

    >>> import torch
    >>> from fluxion.nas.operations import StemS4S2
    >>> StemS4S2(16)(torch.randn(1, 3, 64, 64)).shape
    torch.Size([1, 16, 8, 8])
    """

    def __init__(self, out_channels: int, in_channels: int = 3, affine: bool = True) -> None:
        super().__init__(
            *_stem_s4(out_channels, in_channels, affine, "StemS4S2"),
            fl.ReLU(),
            fl.Conv2d(out_channels, out_channels, 3, stride=2, padding=1, bias=False),
            fl.BatchNorm2d(out_channels, affine=affine),
        )


PRIMITIVES: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
"""DARTS's search space: the names of its eight candidate operations, in DARTS's order (``none`` first)."""


def _pool(kind: Literal["max", "avg"]) -> Callable[[int, int, bool, bool], torch.nn.Module]:
    def build(channels: int, stride: int, affine: bool, search: bool) -> torch.nn.Module:
        if search:  # DARTS's supernet: a BatchNorm without parameters after the pool, whatever affine says
            return PoolBN(kind, channels, 3, stride, 1, affine=False)
        if kind == "max":
            return fl.MaxPool2d(3, stride=stride, padding=1)
        return fl.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)

    return build


def _skip(channels: int, stride: int, affine: bool, search: bool) -> torch.nn.Module:
    if stride == 1:
        return fl.Identity()
    if stride != 2:
        raise NasError(f"skip_connect takes stride 1 (identity) or 2 (FactorizedReduce), got {stride}")
    return FactorizedReduce(channels, channels, affine=affine)


_TABLE: dict[str, Callable[[int, int, bool, bool], torch.nn.Module]] = {
    "none": lambda c, s, a, search: Zero(s),
    "max_pool_3x3": _pool("max"),
    "avg_pool_3x3": _pool("avg"),
    "skip_connect": _skip,
    "sep_conv_3x3": lambda c, s, a, search: SepConv(c, c, 3, s, 1, affine=a),
    "sep_conv_5x5": lambda c, s, a, search: SepConv(c, c, 5, s, 2, affine=a),
    "dil_conv_3x3": lambda c, s, a, search: DilConv(c, c, 3, s, 2, 2, affine=a),
    "dil_conv_5x5": lambda c, s, a, search: DilConv(c, c, 5, s, 4, 2, affine=a),
    "sep_conv_7x7": lambda c, s, a, search: SepConv(c, c, 7, s, 3, affine=a),
    "conv_7x1_1x7": lambda c, s, a, search: FacConv(c, c, 7, s, 3, affine=a),
    "convbnrelu_3x3": lambda c, s, a, search: ConvBNReLU(c, c, 3, s, 1, affine=a),
    "convbnrelu_1x1": lambda c, s, a, search: ConvBNReLU(c, c, 1, s, 0, affine=a),
}

OPERATIONS: tuple[str, ...] = tuple(_TABLE)
"""Every name ``operation`` builds: DARTS's ``PRIMITIVES``, then ``sep_conv_7x7``, ``conv_7x1_1x7`` and
Archai's ``convbnrelu_3x3`` and ``convbnrelu_1x1``."""


def operation(name: str, channels: int, stride: int, affine: bool = True, search: bool = False) -> torch.nn.Module:
    """The layer DARTS builds for the primitive ``name``, on ``channels`` channels, with ``stride``.

    Every operation keeps the channels and divides the height and width by ``stride`` (even sizes
    at stride 2): ``none`` is ``Zero``, the pools are 3x3 with padding 1, ``skip_connect`` is the
    identity at stride 1 and a ``FactorizedReduce`` at stride 2, the convolutions are ``SepConv``,
    ``DilConv``, ``FacConv`` and ``ConvBNReLU`` (Archai's ``convbnrelu`` take the stride too).
    ``affine`` is for their BatchNorms (DARTS's supernet has ``affine=False``). With ``search=True``
    a pool is a ``PoolBN`` with a BatchNorm without parameters, as in DARTS's supernet; otherwise it
    is the pooling layer alone, as in DARTS's evaluation network.

    >>> from fluxion.nas.operations import operation
    >>> operation("skip_connect", 8, stride=2).__class__.__name__
    'FactorizedReduce'
    >>> operation("max_pool_3x3", 8, stride=1, search=True).__class__.__name__
    'PoolBN'
    >>> operation("sep_conv_3x", 8, 1)
    Traceback (most recent call last):
    ...
    fluxion.errors.NasError: unknown primitive 'sep_conv_3x' (closest: sep_conv_3x3); primitives: none, ...
    """
    build = _TABLE.get(name)
    if build is None:
        close = difflib.get_close_matches(name, OPERATIONS, n=1)
        hint = f" (closest: {close[0]})" if close else ""
        raise NasError(f"unknown primitive {name!r}{hint}; primitives: {', '.join(OPERATIONS)}")
    checks.at_least(name, "channels", channels, 1)
    checks.at_least(name, "stride", stride, 1)
    return build(channels, stride, affine, search)


def _depthwise(channels: int, kernel_size: int, stride: int, padding: int, dilation: int = 1) -> fl.Conv2d:
    return fl.Conv2d(
        channels,
        channels,
        kernel_size,
        stride=stride,
        padding=padding,
        dilation=dilation,
        groups=channels,
        bias=False,
    )


def _stem_s4(out_channels: int, in_channels: int, affine: bool, layer: str) -> list[torch.nn.Module]:
    checks.at_least(layer, "out_channels", out_channels, 2)
    half = out_channels // 2
    return [
        fl.Conv2d(in_channels, half, 3, stride=2, padding=1, bias=False),
        fl.BatchNorm2d(half, affine=affine),
        fl.ReLU(),
        fl.Conv2d(half, out_channels, 3, stride=2, padding=1, bias=False),
        fl.BatchNorm2d(out_channels, affine=affine),
    ]
