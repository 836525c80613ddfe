"""Pooling leaves, on torch's own layers.

>>> import torch
>>> import fluxion.layers as fl
>>> fl.MaxPool2d(2)(torch.zeros(1, 3, 8, 8)).shape
torch.Size([1, 3, 4, 4])
"""

from collections.abc import Sequence

import torch
from jaxtyping import Float, Int
from torch import Tensor

from fluxion import dims
from fluxion.dims import Dim, ShapeError, ShapeValue
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

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """``(*batch, C, H, W)`` to ``(*batch, C, H_out, W_out)`` by torch's formula (``ceil_mode`` and
        ``dilation`` included); with ``return_indices``, the same shape twice.

        In ``ceil_mode`` a last window that would start in the right padding is dropped, as torch does:
        for symbolic sizes that can make the size a ``Min`` of two expressions.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.MaxPool2d(2).output_shape(dims.Shape(["B", 3, "H", 9]))
        (B, 3, floor(H/2), 4)
        >>> fl.MaxPool2d(2, ceil_mode=True, return_indices=True).output_shape(dims.Shape([3, 5, 5]))
        ((3, 3, 3), (3, 3, 3))
        """
        name = type(self).__name__
        shape = _pool_shape(
            name, inputs, self.kernel_size, self.stride, self.padding, self.dilation, ceil_mode=self.ceil_mode
        )
        return (shape, shape) if self.return_indices else shape


class AvgPool2d(torch.nn.AvgPool2d, Module):
    """``torch.nn.AvgPool2d`` as a tree leaf.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.AvgPool2d(2)(torch.arange(4.0).reshape(1, 1, 2, 2)).tolist()
    [[[[1.5]]]]
    """

    def forward(self, input: Float[Tensor, "*batch channels h w"]) -> Float[Tensor, "*batch channels oh ow"]:
        return super().forward(input)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """``(*batch, C, H, W)`` to ``(*batch, C, H_out, W_out)`` by torch's formula (``ceil_mode`` included).

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.AvgPool2d(3, stride=2, padding=1).output_shape(dims.Shape(["B", 3, "H", 8]))
        (B, 3, floor((H - 1)/2) + 1, 4)
        """
        name = type(self).__name__
        return _pool_shape(name, inputs, self.kernel_size, self.stride, self.padding, 1, ceil_mode=self.ceil_mode)


class AdaptiveAvgPool2d(torch.nn.AdaptiveAvgPool2d, Module):
    """``torch.nn.AdaptiveAvgPool2d`` as a tree leaf.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.AdaptiveAvgPool2d(1)(torch.zeros(2, 3, 7, 5)).shape
    torch.Size([2, 3, 1, 1])
    """

    def forward(self, input: Float[Tensor, "*batch channels h w"]) -> Float[Tensor, "*batch channels oh ow"]:
        return super().forward(input)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """``(*batch, C, H, W)`` to ``(*batch, C, *output_size)``; a ``None`` in ``output_size`` keeps that size.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.AdaptiveAvgPool2d((None, 7)).output_shape(dims.Shape(["B", 3, "H", "W"]))
        (B, 3, H, 7)
        """
        name = type(self).__name__
        shape = dims.single(inputs, name)
        if len(shape) not in (3, 4):
            raise ShapeError(f"{name} expects a 3D (unbatched) or 4D (batched) input, got {shape!r}")
        wanted = self.output_size if isinstance(self.output_size, Sequence) else (self.output_size,) * 2
        if len(wanted) != 2:
            raise ShapeError(f"{name} expects an output_size of 2 entries, got {self.output_size!r}")
        sizes = [size if target is None else target for size, target in zip(shape[-2:], wanted, strict=True)]
        # torch takes a mean for a 1x1 output; otherwise the spatial dims may not be empty
        if sizes != [1, 1] and any(isinstance(size, int) and size == 0 for size in shape[-2:]):
            raise ShapeError(f"{name} expects non-empty spatial dims, got {shape!r}")
        return dims.Shape([*shape[:-2], *sizes])


# -- the shape rule shared by the pools ---------------------------------------------------------------


def _pair(value: int | Sequence[int], name: str, what: str) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    if len(value) == 1:
        return value[0], value[0]
    if len(value) != 2:
        raise ShapeError(f"{name} expects a {what} of one int or two, got {value!r}")
    return value[0], value[1]


def _check_pool_input(name: str, shape: dims.Shape) -> None:
    if len(shape) not in (3, 4):
        raise ShapeError(f"{name} expects a 3D (unbatched) or 4D (batched) input, got {shape!r}")
    if any(isinstance(size, int) and size == 0 for size in shape[-3:]):
        raise ShapeError(f"{name} expects non-empty channel and spatial dims, got {shape!r}")


def _pool_shape(
    name: str,
    inputs: tuple[ShapeValue, ...],
    kernel_size: int | Sequence[int],
    stride: int | Sequence[int],
    padding: int | Sequence[int],
    dilation: int | Sequence[int],
    *,
    ceil_mode: bool,
) -> dims.Shape:
    shape = dims.single(inputs, name)
    _check_pool_input(name, shape)
    kernels, paddings, dilations = (
        _pair(kernel_size, name, "kernel_size"),
        _pair(padding, name, "padding"),
        _pair(dilation, name, "dilation"),
    )
    # torch takes an empty stride as "the kernel size"
    strides = kernels if not isinstance(stride, int) and len(stride) == 0 else _pair(stride, name, "stride")
    sizes: list[Dim] = []
    for axis, size in enumerate(shape[-2:]):
        kernel, step, pad, spread = kernels[axis], strides[axis], paddings[axis], dilations[axis]
        if pad > kernel // 2:
            raise ShapeError(f"{name} expects a padding of at most half its kernel size ({kernel // 2}), got {pad}")
        out = _pool_output(size, kernel, step, pad, spread, ceil_mode=ceil_mode)
        if isinstance(out, int) and out < 1:
            raise ShapeError(
                f"{name} expects an input size with an output at dim {axis - 2}, got {size} (output {out})"
            )
        sizes.append(out)
    return dims.Shape([*shape[:-2], *sizes])


def _pool_output(size: Dim, kernel: int, stride: int, padding: int, dilation: int, *, ceil_mode: bool) -> Dim:
    """torch's ``pooling_output_shape``: in ``ceil_mode`` windows are rounded up, less one that would
    start in the right padding (``(out - 1) * stride >= size + padding``)."""
    span = dilation * (kernel - 1)
    if isinstance(size, int):
        out = (size + 2 * padding - span - 1 + (stride - 1 if ceil_mode else 0)) // stride + 1
        if ceil_mode and (out - 1) * stride >= size + padding:
            out -= 1
        return out
    if not ceil_mode:
        return dims.conv_output(size, kernel, stride=stride, padding=padding, dilation=dilation)
    rounded_up = dims.normal(dims.floordiv(size + 2 * padding - span - 1 + stride - 1, stride) + 1)
    # The last window starts inside (size + padding) unless the stride outgrows the window: with
    # padding <= kernel // 2, dropping it is possible only when stride + padding >= span + 2, and
    # then the count is also ceil((size + padding) / stride); torch drops at most one window.
    if stride + padding < span + 2:
        return rounded_up
    starts = dims.floordiv(size + padding + stride - 1, stride)
    return dims.normal(dims.sympy_module().Min(rounded_up, starts))
