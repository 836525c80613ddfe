"""Resampling leaves: interpolation and pixel shuffling.

>>> import torch
>>> import fluxion.layers as fl
>>> fl.Upsample(scale_factor=2)(torch.zeros(1, 3, 4, 4)).shape
torch.Size([1, 3, 8, 8])
"""

from collections.abc import Sequence
from fractions import Fraction
from typing import TypeVar

import torch
from jaxtyping import Float
from torch import Tensor
from torch.nn import functional

from fluxion import dims
from fluxion.dims import Dim, ShapeValue
from fluxion.errors import LayerError, ShapeError
from fluxion.layers import checks
from fluxion.tree.module import Module


class Upsample(torch.nn.Upsample, Module):
    """``torch.nn.Upsample`` as a tree leaf: resizes to ``size`` or by ``scale_factor``.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Upsample(size=(3, 5), mode="bilinear")(torch.zeros(1, 1, 2, 2)).shape
    torch.Size([1, 1, 3, 5])
    """

    def __init__(
        self,
        size: int | tuple[int, ...] | None = None,
        scale_factor: float | tuple[float, ...] | None = None,
        mode: str = "nearest",
        align_corners: bool | None = None,
        recompute_scale_factor: bool | None = None,
    ) -> None:
        name = type(self).__name__
        if (size is None) == (scale_factor is None):
            raise LayerError(
                f"{name} takes one of size and scale_factor, got {'both' if size is not None else 'neither'}"
            )
        checks.at_least(name, "size", size, 1)
        factors = scale_factor if isinstance(scale_factor, tuple | list) else (scale_factor,)
        for factor in factors:
            if factor is not None:
                checks.positive_number(name, "scale_factor", factor)
        if size is not None and recompute_scale_factor:
            raise LayerError(f"{name} takes no recompute_scale_factor with an explicit size")
        _check_options(name, mode, align_corners)
        super().__init__(size, scale_factor, mode, align_corners, recompute_scale_factor)

    def forward(self, input: Float[Tensor, "batch channels *spatial"]) -> Float[Tensor, "batch channels *out"]:
        return super().forward(input)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """``(N, C, *spatial)`` to ``(N, C, *size)``, or each spatial size times ``scale_factor``, rounded
        down as torch does: ``int(float(size) * scale_factor)``, in floating point.

        For a symbolic size the rule gives ``floor(size * scale_factor)`` when that product is exact in
        floating point (an integer factor, or a fraction over a power of two such as 0.5 or 1.5); for
        another factor (0.7, 1/3...) no formula matches torch's rounding for every size, and the rule
        raises a ShapeError (infer with a number for that dim, or give ``size``).

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.Upsample(scale_factor=2).output_shape(dims.Shape(["B", 3, "H", "W"]))
        (B, 3, 2*H, 2*W)
        >>> fl.Upsample(scale_factor=(1.5, 0.7), mode="bilinear").output_shape(dims.Shape(["B", 3, "H", 10]))
        (B, 3, floor(3*H/2), 7)
        """
        name = type(self).__name__
        shape = dims.single(inputs, name)
        _check_mode(name, shape, self.mode, self.align_corners)
        spatial = len(shape) - 2
        if self.size is not None and self.scale_factor is not None:
            raise ShapeError(f"{name} takes one of size and scale_factor, got both")
        if self.size is not None:
            if self.recompute_scale_factor:
                raise ShapeError(f"{name} takes no recompute_scale_factor with an explicit size")
            sizes: list[Dim] = list(_per_dim(name, "size", self.size, spatial))
        elif self.scale_factor is not None:
            factors = _per_dim(name, "scale_factor", self.scale_factor, spatial)
            sizes = [_scaled(name, size, factor) for size, factor in zip(shape[2:], factors, strict=True)]
        else:
            raise ShapeError(f"{name} needs a size or a scale_factor, got neither")
        _check_sizes(name, shape, sizes, self.mode)
        return dims.Shape([*shape[:2], *sizes])


class Interpolate(Module):
    """Resizes its first input to the spatial size given as its second input (e.g. a skip's shape).

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Interpolate()(torch.zeros(1, 2, 4, 4), (7, 7)).shape
    torch.Size([1, 2, 7, 7])
    """

    def __init__(self, mode: str = "nearest", align_corners: bool | None = None) -> None:
        super().__init__()
        _check_options(type(self).__name__, mode, align_corners)
        self.mode = mode
        self.align_corners = align_corners

    def forward(
        self, input: Float[Tensor, "batch channels *spatial"], size: Sequence[int] | torch.Size
    ) -> Float[Tensor, "batch channels *out"]:
        return functional.interpolate(input, size=tuple(size), mode=self.mode, align_corners=self.align_corners)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """``(N, C, *spatial)`` to ``(N, C, *size)``.

        The size is a value, not a tensor: the rule takes it as a Shape of the sizes (symbols allowed),
        e.g. ``shapes.infer(model, ("B", 2, "H", "W"), ("H2", "W2"))``. A node without a rule that
        returns a ``torch.Size`` gives no Shape to read, and the rule says so.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.Interpolate().output_shape(dims.Shape(["B", 2, "H", "W"]), dims.Shape(["H2", 7]))
        (B, 2, H2, 7)
        """
        name = type(self).__name__
        shape, size = inputs if len(inputs) == 2 else (None, None)
        if not isinstance(shape, dims.Shape):
            got = ", ".join(repr(value) for value in inputs) or "nothing"
            raise ShapeError(f"{name} takes a tensor and a size, got {got}")
        if not isinstance(size, dims.Shape):
            raise ShapeError(
                f"{name} expects its size as a Shape of the target sizes, got {size!r} "
                "(a size that a node without a shape rule returns cannot be read)"
            )
        _check_mode(name, shape, self.mode, self.align_corners)
        if len(size) != len(shape) - 2:
            raise ShapeError(f"{name} expects a size of {len(shape) - 2} entries (one per spatial dim), got {size!r}")
        _check_sizes(name, shape, list(size), self.mode)
        return dims.Shape([*shape[:2], *size])

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}"


class PixelShuffle(torch.nn.PixelShuffle, Module):
    """``torch.nn.PixelShuffle``: trades channels for resolution.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.PixelShuffle(2)(torch.zeros(1, 8, 3, 3)).shape
    torch.Size([1, 2, 6, 6])
    """

    def __init__(self, upscale_factor: int) -> None:
        checks.at_least("PixelShuffle", "upscale_factor", upscale_factor, 1)
        super().__init__(upscale_factor)

    def forward(self, input: Float[Tensor, "batch channels h w"]) -> Float[Tensor, "batch c oh ow"]:
        return functional.pixel_shuffle(input, self.upscale_factor)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """``(*batch, C * r**2, H, W)`` to ``(*batch, C, H * r, W * r)`` for ``r = upscale_factor``.

        The channels are divided by ``r**2`` with a floor, which sympy simplifies away when it can
        prove the division exact (``4*K`` channels give ``K`` for ``r = 2``). Otherwise the rule
        records the constraint that the channels are divisible by ``r**2``: under it, the floor is the
        exact quotient, and the dim stays an integer for any value of the symbols.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.PixelShuffle(2).output_shape(dims.Shape(["B", 8, "H", "W"]))
        (B, 2, 2*H, 2*W)
        >>> fl.PixelShuffle(2).output_shape(dims.Shape(["B", "C", 3, 3]))
        (B, floor(C/4), 6, 6)
        """
        name = type(self).__name__
        shape = dims.single(inputs, name)
        if len(shape) < 3:
            raise ShapeError(f"{name} expects an input of at least 3 dims (*, C, H, W), got {shape!r}")
        factor = self.upscale_factor
        square = factor * factor
        channels = dims.floordiv(shape[-3], square)
        dims.require_equal(
            dims.normal(square * channels),
            shape[-3],
            f"{name} expects channels at dim -3 divisible by {square} (upscale_factor {factor} squared)",
        )
        height, width = (dims.normal(size * factor) for size in shape[-2:])
        return dims.Shape([*shape[:-3], channels, height, width])


# -- shape rules shared by the resizing layers ------------------------------------------------------

_T = TypeVar("_T", int, float)

_RANKS = {
    "nearest": (3, 4, 5),
    "nearest-exact": (3, 4, 5),
    "area": (3, 4, 5),
    "linear": (3,),
    "bilinear": (4,),
    "bicubic": (4,),
    "trilinear": (5,),
}
"""The input ranks ``F.interpolate`` takes in each mode (its ``lanczos`` needs ``antialias``)."""

_EXACT_NUMERATOR = 1 << 16
"""A factor ``m / 2**k`` with ``m`` below this scales sizes below ``2**37`` exactly in a double."""


def _check_options(name: str, mode: str, align_corners: bool | None) -> None:
    """A mode ``F.interpolate`` has, and ``align_corners`` only in the modes that interpolate."""
    checks.one_of(name, "mode", mode, _RANKS)
    if mode in ("nearest", "area", "nearest-exact") and align_corners is not None:
        raise LayerError(f"{name} takes align_corners only in the interpolating modes, got mode {mode!r}")


def _check_mode(name: str, shape: dims.Shape, mode: str, align_corners: bool | None) -> None:
    if mode in ("nearest", "area", "nearest-exact") and align_corners is not None:
        raise ShapeError(f"{name} takes align_corners only in the interpolating modes, got mode {mode!r}")
    ranks = _RANKS.get(mode)
    if ranks is None:
        raise ShapeError(f"{name} expects a mode among {', '.join(_RANKS)}, got {mode!r}")
    if len(shape) not in ranks:
        expected = " or ".join(f"{rank}D" for rank in ranks)
        raise ShapeError(f"{name} with mode {mode!r} expects a {expected} input, got {shape!r}")


def _per_dim(name: str, what: str, value: _T | Sequence[_T], spatial: int) -> tuple[_T, ...]:
    if isinstance(value, int | float):
        return (value,) * spatial
    if len(value) != spatial:
        raise ShapeError(f"{name} expects a {what} of {spatial} entries (one per spatial dim), got {value!r}")
    return tuple(value)


def _scaled(name: str, size: Dim, factor: float) -> Dim:
    """torch's ``int(float(size) * factor)``: in floating point for a number, exactly when it can be."""
    if isinstance(size, int):
        return int(float(size) * factor)
    exact = Fraction(factor)
    if factor <= 0 or exact.numerator >= _EXACT_NUMERATOR:
        raise ShapeError(
            f"{name} cannot scale the symbolic size {dims.show(size)} by {factor}: torch rounds "
            f"float(size) * {factor} in floating point, which no formula matches for every size; "
            "infer with a number for this dim, or use a factor such as 2 or 0.5"
        )
    return dims.floordiv(dims.normal(size * exact.numerator), exact.denominator)


def _check_sizes(name: str, shape: dims.Shape, sizes: list[Dim], mode: str) -> None:
    """torch refuses empty inputs and outputs; ``area`` runs an adaptive average pool, which takes a
    mean for an output of ones and otherwise needs non-empty spatial dims (and channels, in 3d)."""
    if mode == "area":
        if any(isinstance(size, int) and size < 0 for size in sizes):
            raise ShapeError(f"{name} expects output sizes of at least 0, got {sizes!r}")
        if all(isinstance(size, int) and size == 1 for size in sizes):
            return
        needed = shape[1:] if len(shape) == 5 else shape[2:]
        if any(isinstance(size, int) and size == 0 for size in needed):
            raise ShapeError(f"{name} with mode 'area' expects non-empty spatial dims, got {shape!r}")
        return
    if any(isinstance(size, int) and size < 1 for size in sizes):
        raise ShapeError(f"{name} expects output sizes above 0, got {dims.Shape(sizes)!r}")
    if any(isinstance(size, int) and size == 0 for size in shape[1:]):
        raise ShapeError(f"{name} expects non-empty channel and spatial dims, got {shape!r}")
