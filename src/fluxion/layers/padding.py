"""Padding as ``torch.nn.functional.pad`` does it: the ``Pad`` layer, and the shape rule that it and the
convolutions that pad by themselves (``padding_mode`` other than zeros) share.

>>> import torch
>>> import fluxion.layers as fl
>>> fl.Pad((1, 1), mode="reflect")(torch.tensor([[[1.0, 2.0, 3.0]]])).tolist()
[[[2.0, 1.0, 2.0, 3.0, 2.0]]]
"""

from collections.abc import Sequence
from typing import Literal

from jaxtyping import Shaped
from torch import Tensor
from torch.nn import functional

from fluxion import dims
from fluxion.dims import Dim, Shape, ShapeValue
from fluxion.errors import LayerError, ShapeError
from fluxion.layers import checks
from fluxion.tree.module import Module


class Pad(Module):
    """Pads the last dims of a tensor as ``torch.nn.functional.pad`` does: ``pad`` is (before, after)
    for the last dim, then for the one before it... ``(0, 1, 0, 1)`` adds a row below and a column on
    the right of an image, as diffusers pads before a convolution with ``downsample_padding=0``.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.Pad((0, 1, 0, 1))(torch.ones(1, 1, 2, 2))[0, 0].tolist()
    [[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    """

    def __init__(
        self,
        pad: tuple[int, ...],
        mode: Literal["constant", "reflect", "replicate", "circular"] = "constant",
        value: float = 0.0,
    ) -> None:
        super().__init__()
        if not pad or len(pad) % 2:
            raise LayerError(f"Pad expects an even number of paddings (before, after) per dim, got {pad!r}")
        checks.one_of("Pad", "mode", mode, ("constant", "reflect", "replicate", "circular"))
        if mode != "constant":
            checks.at_least("Pad", f"pad in mode {mode!r}", pad, 0)
            if len(pad) > 6:
                raise LayerError(f"Pad in mode {mode!r} pads at most 3 dims (6 paddings), got {pad!r}")
        self.pad = tuple(pad)
        self.mode = mode
        self.value = value

    def forward(self, input: Shaped[Tensor, "..."]) -> Shaped[Tensor, "..."]:
        if self.mode == "constant":
            return functional.pad(input, self.pad, mode="constant", value=self.value)
        return functional.pad(input, self.pad, mode=self.mode)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """The input's shape with each padded dim grown by its paddings (shrunk by negative ones).

        In modes other than ``"constant"`` torch pads 1 to 3 dims of an input with one or two dims
        more, by less than the size (``"reflect"``) or at most the size (``"circular"``): see
        ``padded_shape``.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.Pad((0, 1, 0, 1)).output_shape(dims.Shape(["B", 3, "H", "W"]))
        (B, 3, H + 1, W + 1)
        >>> fl.Pad((1, 1), mode="reflect").output_shape(dims.Shape(["B", 3, 1]))
        Traceback (most recent call last):
        ...
        fluxion.errors.ShapeError: Pad in mode 'reflect' expects a size above its padding (1, 1) at dim -1, got 1
        """
        name = type(self).__name__
        return padded_shape(name, dims.single(inputs, name), self.pad, self.mode)

    def extra_repr(self) -> str:
        value = f", value={self.value}" if self.mode == "constant" and self.value else ""
        return f"pad={self.pad}, mode={self.mode!r}{value}"


def padded_shape(layer: str, shape: Shape, pad: Sequence[int], mode: str) -> Shape:
    """The shape ``torch.nn.functional.pad(x, pad, mode)`` gives for ``x`` of ``shape``, or a ShapeError
    where torch refuses it (``layer`` names who pads: ``Pad``, or a convolution's ``padding_mode``).

    ``pad`` is (before, after) for the last dim, then for the one before it... In ``"constant"`` mode
    any number of dims may be padded, and negative paddings crop (not beyond the size). The other
    modes pad 1 to 3 dims of an input with one or two dims more (channels, and a batch), by paddings
    of at least 0: ``"reflect"`` less than the size, ``"circular"`` at most the size, and
    ``"reflect"`` and ``"replicate"`` need a size and channels above 0. Where the symbols do not
    decide a comparison, it is left to the forward call.

    >>> from fluxion import dims
    >>> padded_shape("Pad", dims.Shape(["B", 3, "H", "W"]), (1, 1, 0, 2), "reflect")
    (B, 3, H + 2, W + 2)
    >>> padded_shape("Pad", dims.Shape([2, 3, 2]), (2, 2), "reflect")
    Traceback (most recent call last):
    ...
    fluxion.errors.ShapeError: Pad in mode 'reflect' expects a size above its padding (2, 2) at dim -1, got 2
    """
    padded = len(pad) // 2
    if mode == "constant":
        if padded > len(shape):
            raise ShapeError(f"{layer} pads {padded} dims, got an input of rank {len(shape)}: {shape!r}")
    else:
        if any(size < 0 for size in pad):
            raise ShapeError(f"{layer} in mode {mode!r} expects paddings of at least 0, got {tuple(pad)}")
        if not 1 <= padded <= 3 or len(shape) not in (padded + 1, padded + 2):
            raise ShapeError(
                f"{layer} in mode {mode!r} pads the last {padded} dim{'s' if padded > 1 else ''} of a {padded + 1}D "
                f"or {padded + 2}D input "
                f"(at most 3 dims), got {shape!r}"
            )
        if mode in ("reflect", "replicate") and shape[-padded - 1] == 0:
            raise ShapeError(f"{layer} in mode {mode!r} expects channels (dim {-padded - 1}) above 0, got {shape!r}")
    sizes = list(shape)
    for index in range(padded):
        axis = len(sizes) - 1 - index
        before, after = pad[2 * index], pad[2 * index + 1]
        _check_padding(layer, sizes[axis], before, after, mode, axis - len(sizes))
        sizes[axis] = dims.normal(sizes[axis] + before + after)
    return Shape(sizes)


def _check_padding(layer: str, size: Dim, before: int, after: int, mode: str, where: int) -> None:
    """torch's conditions on one padded dim; each is checked unless the symbols leave it open."""
    most = max(before, after)
    if mode == "constant":
        needed = [
            (size + min(before, 0) + min(after, 0), "a size its negative paddings can crop"),
            (size + before + after, "a size that its paddings leave at least 0"),
        ]
    elif mode == "reflect":
        needed = [(size - most - 1, "a size above its padding")]
    elif mode == "replicate":
        needed = [(size - 1, "a size above 0")]
    else:
        needed = [(size - most, "a size of at least its padding")]
    for difference, what in needed:
        if dims.nonnegative(dims.normal(difference)) is False:
            raise ShapeError(
                f"{layer} in mode {mode!r} expects {what} ({before}, {after}) at dim {where}, got {dims.show(size)}"
            )
