"""Pooling leaves, on torch's own layers.

>>> import torch
>>> import fluxion.layers as fl
>>> fl.MaxPool2d(2)(torch.zeros(1, 3, 8, 8)).shape
torch.Size([1, 3, 4, 4])
"""

from collections.abc import Sequence
from typing import Any, Self, cast

import torch
from jaxtyping import Float, Int
from torch import Tensor

from fluxion import dims
from fluxion.dims import Dim, ShapeValue
from fluxion.errors import LayerError, ShapeError
from fluxion.layers import checks, geometry
from fluxion.layers.lazy import allow_calls, refuse_calls
from fluxion.tree.module import Module, clone_shell

_Size = int | tuple[int, ...]
Size2 = int | tuple[int, int]


class _OutputDriven(torch.nn.Module):
    """What MaxPool2d and AvgPool2d share beyond torch: stride and padding derived from the output
    they must produce. ``downsample=r`` derives them at construction; ``output_size=O`` needs the
    input size, so until ``fluxion.shapes.materialize`` the pool is lazy (stride and padding None)
    and refuses to run (``lazy.refuse_calls``)."""

    downsample: tuple[int, ...] | None = None
    """The ratio per spatial dim that the pool was built to downsample by, or None."""

    output_size: tuple[int, ...] | None = None
    """The spatial output size that the pool was built to produce, or None."""

    @property
    def lazy(self) -> bool:
        """Whether stride and padding still wait for the input size (``output_size``).

        >>> import fluxion.layers as fl
        >>> fl.MaxPool2d(3, output_size=7).lazy, fl.MaxPool2d(3, downsample=2).lazy
        (True, False)
        """
        pool = cast(_Pool, self)
        return pool.stride is None or pool.padding is None

    @property
    def missing(self) -> tuple[str, ...]:
        """The arguments still to be inferred: ``stride`` and ``padding`` while lazy.

        >>> import fluxion.layers as fl
        >>> fl.AvgPool2d(2, output_size=4).missing, fl.AvgPool2d(2).missing
        (('stride', 'padding'), ())
        """
        return ("stride", "padding") if self.lazy else ()

    def inferred_arguments(self, *inputs: ShapeValue) -> dict[str, Any]:
        """The ``stride`` and ``padding`` (one per spatial dim) that give ``output_size`` from the input;
        nothing for a pool that is not lazy.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.MaxPool2d(3, output_size=7).inferred_arguments(dims.Shape(["B", 64, 14, 28]))
        {'stride': (2, 4), 'padding': (1, 0)}
        """
        if not self.lazy:
            return {}
        pool = cast(_Pool, self)
        name = type(pool).__name__
        shape = dims.single(inputs, name)
        _check_pool_input(name, shape)
        solved = [_derived(pool, axis, size) for axis, size in enumerate(shape[-2:])]
        return {"stride": tuple(stride for stride, _ in solved), "padding": tuple(padding for _, padding in solved)}

    def materialized(self, **arguments: int | tuple[int, ...]) -> Self:
        """A detached twin of this lazy pool with ``stride`` and ``padding`` filled in (the pool is unchanged).

        >>> import fluxion.layers as fl
        >>> fl.MaxPool2d(3, output_size=7).materialized(stride=(2, 2), padding=(1, 1))
        MaxPool2d(kernel_size=3, stride=(2, 2), padding=(1, 1), dilation=1, ceil_mode=False, output_size=(7, 7))
        """
        name = type(self).__name__
        if not self.lazy:
            raise LayerError(f"{name} is not lazy: it has all its arguments")
        if set(arguments) != set(self.missing):
            raise LayerError(f"{name} expects exactly stride, padding, got {', '.join(arguments) or 'none'}")
        twin = clone_shell(self)
        pool = cast(_Pool, twin)
        pool.stride, pool.padding = arguments["stride"], arguments["padding"]
        allow_calls(twin)
        return twin

    def adopt(self, twin: Self) -> None:
        """Become ``twin``, a ``materialized`` copy of this lazy pool: its stride and padding.

        >>> import torch
        >>> import fluxion.layers as fl
        >>> pool = fl.AvgPool2d(2, output_size=4)
        >>> pool.adopt(pool.materialized(stride=(2, 2), padding=(0, 0)))
        >>> pool.lazy, pool(torch.zeros(1, 3, 8, 8)).shape
        (False, torch.Size([1, 3, 4, 4]))
        """
        if not self.lazy or twin.lazy or type(twin) is not type(self):
            raise LayerError(f"{type(self).__name__}.adopt expects a materialized twin of a lazy pool")
        pool, done = cast(_Pool, self), cast(_Pool, twin)
        pool.stride, pool.padding = done.stride, done.padding
        allow_calls(self)

    def extra_repr(self) -> str:
        text = super().extra_repr()
        if self.lazy:  # torch shows the missing values as None
            text = text.replace("stride=None", "stride=?").replace("padding=None", "padding=?")
        if self.downsample is not None:
            return f"{text}, downsample={self.downsample}"
        if self.output_size is not None:
            return f"{text}, output_size={self.output_size}"
        return text


class MaxPool2d(_OutputDriven, torch.nn.MaxPool2d, Module):
    """``torch.nn.MaxPool2d`` as a tree leaf.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.MaxPool2d(2)(torch.arange(4.0).reshape(1, 1, 2, 2)).tolist()
    [[[[3.0]]]]

    With ``return_indices=True`` it returns ``(values, indices)``, as torch's layer does:

    >>> values, indices = fl.MaxPool2d(2, return_indices=True)(torch.arange(4.0).reshape(1, 1, 2, 2))
    >>> indices.tolist()
    [[[[3]]]]

    Instead of stride and padding it may take the output it must produce: ``downsample=r`` derives
    them at once (every size that ``r`` divides becomes ``size / r``), ``output_size=O`` from the input
    size, which leaves the layer lazy until ``fluxion.shapes.materialize``:

    >>> fl.MaxPool2d(3, downsample=2)
    MaxPool2d(kernel_size=3, stride=(2, 2), padding=(1, 1), dilation=1, ceil_mode=False, downsample=(2, 2))
    >>> fl.MaxPool2d(3, output_size=7)
    MaxPool2d(kernel_size=3, stride=?, padding=?, dilation=1, ceil_mode=False, output_size=(7, 7))
    """

    stride: _Size | None  # pyright: ignore[reportIncompatibleVariableOverride]  # None until output_size is met
    padding: _Size | None  # pyright: ignore[reportIncompatibleVariableOverride]

    def __init__(
        self,
        kernel_size: Size2,
        stride: Size2 | None = None,
        padding: Size2 | None = None,
        dilation: Size2 = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
        *,
        downsample: Size2 | None = None,
        output_size: Size2 | None = None,
    ) -> None:
        name = type(self).__name__
        ratios, outputs, stride, padding = _geometry(
            name, kernel_size, dilation, stride, padding, ceil_mode, downsample, output_size
        )
        torch.nn.MaxPool2d.__init__(self, kernel_size, stride, padding, dilation, return_indices, ceil_mode)
        _aim(self, ratios, outputs)

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
        >>> fl.MaxPool2d(3, output_size=(7, 4)).output_shape(dims.Shape(["B", 3, 14, 12]))
        (B, 3, 7, 4)
        """
        shape = _pool_shape(self, inputs)
        return (shape, shape) if self.return_indices else shape


class AvgPool2d(_OutputDriven, torch.nn.AvgPool2d, Module):
    """``torch.nn.AvgPool2d`` as a tree leaf.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.AvgPool2d(2)(torch.arange(4.0).reshape(1, 1, 2, 2)).tolist()
    [[[[1.5]]]]

    ``downsample=r`` or ``output_size=O`` may stand for stride and padding, as for ``MaxPool2d``:

    >>> fl.AvgPool2d(2, downsample=2)(torch.zeros(1, 3, 8, 6)).shape
    torch.Size([1, 3, 4, 3])
    """

    stride: _Size | None  # pyright: ignore[reportIncompatibleVariableOverride]  # None until output_size is met
    padding: _Size | None  # pyright: ignore[reportIncompatibleVariableOverride]

    def __init__(
        self,
        kernel_size: Size2,
        stride: Size2 | None = None,
        padding: Size2 | None = None,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
        *,
        downsample: Size2 | None = None,
        output_size: Size2 | None = None,
    ) -> None:
        name = type(self).__name__
        if divisor_override == 0:
            raise LayerError(f"{name}: divisor_override must not be 0 (None divides by the window's size)")
        ratios, outputs, stride, padding = _geometry(
            name, kernel_size, 1, stride, padding, ceil_mode, downsample, output_size
        )
        torch.nn.AvgPool2d.__init__(self, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
        _aim(self, ratios, outputs)

    def forward(self, input: Float[Tensor, "*batch channels h w"]) -> Float[Tensor, "*batch channels oh ow"]:
        return super().forward(input)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """``(*batch, C, H, W)`` to ``(*batch, C, H_out, W_out)`` by torch's formula (``ceil_mode`` included).

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.AvgPool2d(3, stride=2, padding=1).output_shape(dims.Shape(["B", 3, "H", 8]))
        (B, 3, ceil(H/2), 4)
        """
        return _pool_shape(self, inputs)


class AdaptiveAvgPool2d(torch.nn.AdaptiveAvgPool2d, Module):
    """``torch.nn.AdaptiveAvgPool2d`` as a tree leaf.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.AdaptiveAvgPool2d(1)(torch.zeros(2, 3, 7, 5)).shape
    torch.Size([2, 3, 1, 1])
    """

    def __init__(self, output_size: int | tuple[int | None, int | None]) -> None:
        sizes = tuple(output_size) if isinstance(output_size, tuple | list) else (output_size, output_size)
        if cast(object, output_size) is None or len(sizes) != 2 or any(size is not None and size < 0 for size in sizes):
            raise LayerError(
                "AdaptiveAvgPool2d: output_size must be an int or a tuple of 2, each at least 0 or None "
                f"(the input's size), got {output_size!r}"
            )
        super().__init__(output_size)

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


_Pool = MaxPool2d | AvgPool2d


def _geometry(
    name: str,
    kernel_size: Size2,
    dilation: Size2,
    stride: Size2 | None,
    padding: Size2 | None,
    ceil_mode: bool,
    downsample: Size2 | None,
    output_size: Size2 | None,
) -> tuple[tuple[int, ...] | None, tuple[int, ...] | None, Size2 | None, Size2]:
    """``downsample`` and ``output_size`` per axis, then the stride and padding for torch's constructor:
    derived from ``downsample``, else as given (``None``: torch's default, also while ``output_size``
    waits for the input)."""
    _check_window(name, kernel_size, stride, padding, dilation)
    given = [key for key, value in (("stride", stride), ("padding", padding)) if value is not None]
    ratios, outputs = geometry.targets(name, 2, downsample, output_size, given)
    if ratios is not None:
        kernels = cast(tuple[int, ...], geometry.per_axis(kernel_size, 2, name, "kernel_size"))
        dilations = cast(tuple[int, ...], geometry.per_axis(dilation, 2, name, "dilation"))
        strides, paddings = geometry.downsample_geometry(
            name, ratios, kernels, dilations, pool=True, ceil_mode=ceil_mode
        )
        return ratios, outputs, cast(Size2, strides), cast(Size2, paddings)
    return ratios, outputs, stride, 0 if padding is None else padding


def _check_window(name: str, kernel_size: Size2, stride: _Size | None, padding: Size2 | None, dilation: Size2) -> None:
    """What torch's pools refuse at the first call: sizes below their least value (a stride of ``()``
    is the kernel size), tuples of other than 1 or 2 ints, padding above half the kernel."""
    for key, value, least in (
        ("kernel_size", kernel_size, 1),
        ("stride", stride, 1),
        ("padding", padding, 0),
        ("dilation", dilation, 1),
    ):
        if value is None or (key == "stride" and value == ()):
            continue
        given = cast(object, value)
        if not isinstance(given, int) and (
            not isinstance(given, list | tuple) or len(cast(tuple[object, ...], given)) not in (1, 2)
        ):
            raise LayerError(f"{name}: {key} must be an int or a tuple of 1 or 2, got {value!r}")
        checks.at_least(name, key, value, least)
    if padding is not None:
        kernels, paddings = _pair(kernel_size, name, "kernel_size"), _pair(padding, name, "padding")
        if any(pad > kernel // 2 for pad, kernel in zip(paddings, kernels, strict=True)):
            raise LayerError(f"{name}: padding must be at most half the kernel size {kernel_size!r}, got {padding!r}")


def _aim(layer: _Pool, ratios: tuple[int, ...] | None, outputs: tuple[int, ...] | None) -> None:
    """Record what the pool must produce; with ``output_size``, stride and padding wait for the input."""
    if ratios is not None or outputs is not None:
        layer.downsample, layer.output_size = ratios, outputs
    if outputs is not None:
        layer.stride = layer.padding = None
        refuse_calls(layer)


def _derived(layer: _Pool, axis: int, size: Dim) -> tuple[int, int]:
    """The stride and padding with which a pool built with ``output_size`` meets it at ``axis``."""
    name = type(layer).__name__
    kernel = _pair(layer.kernel_size, name, "kernel_size")[axis]
    return geometry.output_geometry(
        name,
        size,
        cast(tuple[int, ...], layer.output_size)[axis],
        kernel,
        _pair(_dilation(layer), name, "dilation")[axis],
        axis - 2,
        most=kernel // 2,
        ceil_mode=layer.ceil_mode,
    )


def _dilation(layer: _Pool) -> _Size:
    return layer.dilation if isinstance(layer, MaxPool2d) else 1


def _pool_shape(layer: _Pool, inputs: tuple[ShapeValue, ...]) -> dims.Shape:
    """torch's rule; with ``downsample`` each size must be a multiple of the ratio, with ``output_size``
    the output is it (stride and padding derived from the input while the pool is lazy)."""
    name = type(layer).__name__
    shape = dims.single(inputs, name)
    _check_pool_input(name, shape)
    kernels, dilations = _pair(layer.kernel_size, name, "kernel_size"), _pair(_dilation(layer), name, "dilation")
    sizes: list[Dim] = []
    for axis, size in enumerate(shape[-2:]):
        kernel, spread, where = kernels[axis], dilations[axis], axis - 2
        if layer.downsample is not None:
            geometry.require_divisible(size, layer.downsample[axis], name, where)
        if layer.stride is None or layer.padding is None:
            step, pad = _derived(layer, axis, size)
        else:
            # torch takes an empty stride as "the kernel size"
            stride = layer.stride
            step = kernel if not isinstance(stride, int) and len(stride) == 0 else _pair(stride, name, "stride")[axis]
            pad = _pair(layer.padding, name, "padding")[axis]
        if pad > kernel // 2:
            raise ShapeError(f"{name} expects a padding of at most half its kernel size ({kernel // 2}), got {pad}")
        out = _pool_output(size, kernel, step, pad, spread, ceil_mode=layer.ceil_mode)
        if isinstance(out, int) and out < 1:
            raise ShapeError(f"{name} expects an input size with an output at dim {where}, got {size} (output {out})")
        if layer.output_size is not None:
            target = layer.output_size[axis]
            dims.require_equal(target, out, f"{name} was built to produce output size {target} at dim {where}")
        sizes.append(out)
    return dims.Shape([*shape[:-2], *sizes])


def _pool_output(size: Dim, kernel: int, stride: int, padding: int, dilation: int, *, ceil_mode: bool) -> Dim:
    """torch's ``pooling_output_shape``: in ``ceil_mode`` windows are rounded up, less one that would
    start in the right padding (``(out - 1) * stride >= size + padding``)."""
    span = dilation * (kernel - 1)
    if isinstance(size, int):
        return geometry.window_count(size, kernel, stride, padding, dilation, ceil_mode=ceil_mode)
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
