"""Pooling leaves, on torch's own layers: max and average pools over 1, 2 or 3 spatial dims, and
adaptive pools over 1 or 2.

>>> import torch
>>> import fluxion.layers as fl
>>> fl.MaxPool2d(2)(torch.zeros(1, 3, 8, 8)).shape
torch.Size([1, 3, 4, 4])
>>> fl.AvgPool1d(3, stride=2)(torch.zeros(1, 3, 9)).shape, fl.AdaptiveMaxPool1d(4)(torch.zeros(3, 10)).shape
(torch.Size([1, 3, 4]), torch.Size([3, 4]))
"""

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Self, cast

import torch
from jaxtyping import Float
from torch import Tensor

from fluxion import dims
from fluxion.dims import Dim, ShapeValue
from fluxion.errors import LayerError, ShapeError
from fluxion.layers import checks, geometry
from fluxion.layers.lazy import allow_calls, refuse_calls
from fluxion.tree.module import Module, clone_shell

_Size = int | tuple[int, ...]
Size1 = int | tuple[int]
Size2 = int | tuple[int, int]
Size3 = int | tuple[int, int, int]


class _OutputDriven(torch.nn.Module):
    """What the max and average pools share beyond torch, over any number of spatial dims: checked
    arguments, the shape rule, and stride and padding derived from the output they must produce.
    ``downsample=r`` derives them at construction; ``output_size=O`` needs the input size, and
    ``model_downsample=r`` (``1/r`` of the model's input) the sizes of the pool's input and of the
    model's, so until ``fluxion.shapes.materialize`` the pool is lazy (stride and padding None) and
    refuses to run (``lazy.refuse_calls``). Each class adds only its typed constructor and torch's layer."""

    spatial: ClassVar[int]
    """How many spatial dims the pool slides over (the 1, 2 or 3 of its name)."""

    downsample: tuple[int, ...] | None = None
    """The ratio per spatial dim that the pool was built to downsample by, or None."""

    output_size: tuple[int, ...] | None = None
    """The spatial output size that the pool was built to produce, or None."""

    model_downsample: tuple[int, ...] | None = None
    """The ratio per spatial dim of the model's input to the pool's output it was built for, or None."""

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
        >>> fl.AvgPool1d(2, output_size=4).inferred_arguments(dims.Shape(["B", 8, 16]))
        {'stride': (4,), 'padding': (0,)}
        """
        if not self.lazy:
            return {}
        pool = cast(_Pool, self)
        name = type(pool).__name__
        shape = dims.single(inputs, name)
        _check_pool_input(name, shape, self.spatial)
        solved = [_derived(pool, axis, size) for axis, size in enumerate(shape[-self.spatial :])]
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
        if pool.model_downsample is not None:  # found from where the pool sits: a spec states them (see conv)
            self.__dict__["_fluxion_inferred"] = {"stride": done.stride, "padding": done.padding}
        allow_calls(self)

    def extra_repr(self) -> str:
        text = super().extra_repr()
        if self.lazy:  # torch shows the missing values as None
            text = text.replace("stride=None", "stride=?").replace("padding=None", "padding=?")
        if self.downsample is not None:
            return f"{text}, downsample={self.downsample}"
        if self.output_size is not None:
            return f"{text}, output_size={self.output_size}"
        if self.model_downsample is not None:
            return f"{text}, model_downsample={self.model_downsample}"
        return text


class _MaxPooling(_OutputDriven):
    """MaxPool1d, MaxPool2d and MaxPool3d: construction and the shape rule, over ``spatial`` dims."""

    return_indices: bool

    def _build(self, layout: type[torch.nn.Module], given: Mapping[str, Any]) -> None:
        """Construct as torch's ``layout`` from the arguments of a typed constructor, ``given`` as its ``locals()``."""
        name = type(self).__name__
        ratios, outputs, of_model, stride, padding = _geometry(
            name,
            self.spatial,
            given["kernel_size"],
            given["dilation"],
            given["stride"],
            given["padding"],
            given["ceil_mode"],
            given["downsample"],
            given["output_size"],
            given["model_downsample"],
        )
        layout.__init__(
            self, given["kernel_size"], stride, padding, given["dilation"], given["return_indices"], given["ceil_mode"]
        )
        _aim(cast(_Pool, self), ratios, outputs, of_model, given["stride"] is not None)

    def forward(self, input: Float[Tensor, "..."]) -> Any:  # (*batch, channels, *spatial); with indices a pair
        return super().forward(input)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """``(*batch, C, *spatial)`` to ``(*batch, C, *out)`` by torch's formula (``ceil_mode`` and
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
        >>> fl.MaxPool1d(3, stride=2, padding=1).output_shape(dims.Shape(["B", 3, "T"]))
        (B, 3, ceil(T/2))
        """
        shape = _pool_shape(cast(_Pool, self), inputs)
        return (shape, shape) if self.return_indices else shape


class _AvgPooling(_OutputDriven):
    """AvgPool1d, AvgPool2d and AvgPool3d: construction and the shape rule, over ``spatial`` dims."""

    def _build(self, layout: type[torch.nn.Module], given: Mapping[str, Any]) -> None:
        """Construct as torch's ``layout`` from the arguments of a typed constructor, ``given`` as its ``locals()``
        (``AvgPool1d`` has no ``divisor_override``, as torch's has none)."""
        name = type(self).__name__
        divisor = given.get("divisor_override")
        if divisor == 0:
            raise LayerError(f"{name}: divisor_override must not be 0 (None divides by the window's size)")
        ratios, outputs, of_model, stride, padding = _geometry(
            name,
            self.spatial,
            given["kernel_size"],
            1,
            given["stride"],
            given["padding"],
            given["ceil_mode"],
            given["downsample"],
            given["output_size"],
            given["model_downsample"],
        )
        extra = (divisor,) if "divisor_override" in given else ()
        layout.__init__(
            self, given["kernel_size"], stride, padding, given["ceil_mode"], given["count_include_pad"], *extra
        )
        _aim(cast(_Pool, self), ratios, outputs, of_model, given["stride"] is not None)

    def forward(self, input: Float[Tensor, "..."]) -> Float[Tensor, "..."]:  # (*batch, channels, *spatial)
        return super().forward(input)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """``(*batch, C, *spatial)`` to ``(*batch, C, *out)`` by torch's formula (``ceil_mode`` included).

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.AvgPool2d(3, stride=2, padding=1).output_shape(dims.Shape(["B", 3, "H", 8]))
        (B, 3, ceil(H/2), 4)
        >>> fl.AvgPool3d(2).output_shape(dims.Shape(["B", 3, "D", 8, 9]))
        (B, 3, floor(D/2), 4, 4)
        """
        return _pool_shape(cast(_Pool, self), inputs)


class MaxPool1d(_MaxPooling, torch.nn.MaxPool1d, Module):
    """``torch.nn.MaxPool1d`` as a tree leaf, over ``(*batch, channels, length)``.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.MaxPool1d(2)(torch.arange(4.0).reshape(1, 1, 4)).tolist()
    [[[1.0, 3.0]]]

    ``downsample=r`` or ``output_size=O`` may stand for stride and padding, as for ``MaxPool2d``:

    >>> fl.MaxPool1d(3, downsample=2)(torch.zeros(2, 4, 16)).shape
    torch.Size([2, 4, 8])
    """

    spatial = 1
    stride: _Size | None  # pyright: ignore[reportIncompatibleVariableOverride]  # None until output_size is met
    padding: _Size | None  # pyright: ignore[reportIncompatibleVariableOverride]

    def __init__(
        self,
        kernel_size: Size1,
        stride: Size1 | None = None,
        padding: Size1 | None = None,
        dilation: Size1 = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
        *,
        downsample: Size1 | None = None,
        output_size: Size1 | None = None,
        model_downsample: Size1 | None = None,
    ) -> None:
        self._build(torch.nn.MaxPool1d, locals())


class MaxPool2d(_MaxPooling, torch.nn.MaxPool2d, Module):
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

    ``model_downsample=r`` makes it ``1/r`` of the model's input, its stride found where it sits, as
    for the convolutions (see ``fluxion.layers.Conv2d``).
    """

    spatial = 2
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
        model_downsample: Size2 | None = None,
    ) -> None:
        self._build(torch.nn.MaxPool2d, locals())


class MaxPool3d(_MaxPooling, torch.nn.MaxPool3d, Module):
    """``torch.nn.MaxPool3d`` as a tree leaf, over ``(*batch, channels, depth, height, width)``.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.MaxPool3d(2)(torch.zeros(1, 3, 4, 6, 8)).shape
    torch.Size([1, 3, 2, 3, 4])
    """

    spatial = 3
    stride: _Size | None  # pyright: ignore[reportIncompatibleVariableOverride]  # None until output_size is met
    padding: _Size | None  # pyright: ignore[reportIncompatibleVariableOverride]

    def __init__(
        self,
        kernel_size: Size3,
        stride: Size3 | None = None,
        padding: Size3 | None = None,
        dilation: Size3 = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
        *,
        downsample: Size3 | None = None,
        output_size: Size3 | None = None,
        model_downsample: Size3 | None = None,
    ) -> None:
        self._build(torch.nn.MaxPool3d, locals())


class AvgPool1d(_AvgPooling, torch.nn.AvgPool1d, Module):
    """``torch.nn.AvgPool1d`` as a tree leaf, over ``(*batch, channels, length)``; torch keeps its sizes
    as tuples of one.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.AvgPool1d(2)(torch.arange(4.0).reshape(1, 1, 4)).tolist()
    [[[0.5, 2.5]]]
    >>> fl.AvgPool1d(3, downsample=2)
    AvgPool1d(kernel_size=(3,), stride=(2,), padding=(1,), downsample=(2,))
    """

    spatial = 1
    stride: _Size | None  # pyright: ignore[reportIncompatibleVariableOverride]  # None until output_size is met
    padding: _Size | None  # pyright: ignore[reportIncompatibleVariableOverride]

    def __init__(
        self,
        kernel_size: Size1,
        stride: Size1 | None = None,
        padding: Size1 | None = None,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        *,
        downsample: Size1 | None = None,
        output_size: Size1 | None = None,
        model_downsample: Size1 | None = None,
    ) -> None:
        self._build(torch.nn.AvgPool1d, locals())


class AvgPool2d(_AvgPooling, torch.nn.AvgPool2d, Module):
    """``torch.nn.AvgPool2d`` as a tree leaf.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.AvgPool2d(2)(torch.arange(4.0).reshape(1, 1, 2, 2)).tolist()
    [[[[1.5]]]]

    ``downsample=r`` or ``output_size=O`` may stand for stride and padding, as for ``MaxPool2d``:

    >>> fl.AvgPool2d(2, downsample=2)(torch.zeros(1, 3, 8, 6)).shape
    torch.Size([1, 3, 4, 3])
    """

    spatial = 2
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
        model_downsample: Size2 | None = None,
    ) -> None:
        self._build(torch.nn.AvgPool2d, locals())


class AvgPool3d(_AvgPooling, torch.nn.AvgPool3d, Module):
    """``torch.nn.AvgPool3d`` as a tree leaf, over ``(*batch, channels, depth, height, width)``.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.AvgPool3d(2, stride=1)(torch.ones(1, 1, 3, 3, 3)).shape
    torch.Size([1, 1, 2, 2, 2])
    """

    spatial = 3
    stride: _Size | None  # pyright: ignore[reportIncompatibleVariableOverride]  # None until output_size is met
    padding: _Size | None  # pyright: ignore[reportIncompatibleVariableOverride]

    def __init__(
        self,
        kernel_size: Size3,
        stride: Size3 | None = None,
        padding: Size3 | None = None,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
        *,
        downsample: Size3 | None = None,
        output_size: Size3 | None = None,
        model_downsample: Size3 | None = None,
    ) -> None:
        self._build(torch.nn.AvgPool3d, locals())


# -- adaptive pools -----------------------------------------------------------------------------------


class _Adaptive(torch.nn.Module):
    """The adaptive pools over ``spatial`` dims: ``output_size`` checked, and the shape rule (the output's
    spatial sizes are ``output_size``; a ``None`` keeps the input's size)."""

    spatial: ClassVar[int]
    """How many spatial dims the pool reduces (the 1 or 2 of its name)."""

    def _check_output_size(self, output_size: object) -> None:
        """A LayerError unless ``output_size`` is an int or a tuple of ``spatial``, each at least 0 (or None,
        in a tuple, for a pool over more than one dim: torch's 1d pools take no None)."""
        name, spatial = type(self).__name__, self.spatial
        listed = isinstance(output_size, tuple | list)
        sizes = tuple(cast(Sequence[object], output_size)) if listed else (output_size,)
        valid = (not listed or len(sizes) == spatial) and all(
            (size is None and listed and spatial > 1)
            or (isinstance(size, int) and not isinstance(size, bool) and size >= 0)
            for size in sizes
        )
        if not valid:
            each = "each at least 0 or None (the input's size)" if spatial > 1 else "at least 0"
            raise LayerError(f"{name}: output_size must be an int or a tuple of {spatial}, {each}, got {output_size!r}")

    def _wanted(self) -> tuple[int | None, ...]:
        size = cast(int | Sequence[int | None], cast(Any, self).output_size)
        return tuple(size) if isinstance(size, Sequence) else (size,) * self.spatial

    def _pooled_shape(self, inputs: tuple[ShapeValue, ...], *, mean_when_one: bool) -> dims.Shape:
        """The output shape; the spatial dims may not be empty, nor, for a max pool of a batched input,
        the channels. An average pool to all ones is a mean, which takes empty dims; over 2 dims torch
        takes the mean over the last two dims of any input that has them (a tuple ``output_size``
        needs one dim more)."""
        name, spatial = type(self).__name__, self.spatial
        shape = dims.single(inputs, name)
        given: object = cast(Any, self).output_size
        least = spatial + 1 if isinstance(given, tuple | list) else spatial
        ones = len(shape) >= spatial and all(
            isinstance(size, int) and size == 1 for size in self._sizes(shape[-spatial:])
        )
        mean = mean_when_one and ones
        if len(shape) not in (spatial + 1, spatial + 2) and not (mean and spatial == 2 and len(shape) >= least):
            raise ShapeError(
                f"{name} expects a {spatial + 1}D (unbatched) or {spatial + 2}D (batched) input, got {shape!r}"
            )
        checked = list(shape[-spatial:])
        if not mean_when_one and len(shape) == spatial + 2:
            checked.append(shape[-spatial - 1])
        if not mean and any(isinstance(size, int) and size == 0 for size in checked):
            what = "unless its output_size is all 1 (a mean)" if mean_when_one else "(and channels, when batched)"
            raise ShapeError(f"{name} expects non-empty spatial dims {what}, got {shape!r}")
        return dims.Shape([*shape[:-spatial], *self._sizes(shape[-spatial:])])

    def _sizes(self, spatial: Sequence[Dim]) -> list[Dim]:
        """The output's spatial sizes: ``output_size``, a None in it keeping the input's size."""
        return [size if target is None else target for size, target in zip(spatial, self._wanted(), strict=True)]


class _AdaptiveAvg(_Adaptive):
    def forward(self, input: Float[Tensor, "..."]) -> Float[Tensor, "..."]:  # (*batch, channels, *spatial)
        return super().forward(input)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """``(*batch, C, *spatial)`` to ``(*batch, C, *output_size)``; a ``None`` in ``output_size`` keeps that size.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.AdaptiveAvgPool2d((None, 7)).output_shape(dims.Shape(["B", 3, "H", "W"]))
        (B, 3, H, 7)
        >>> fl.AdaptiveAvgPool1d(1).output_shape(dims.Shape(["B", 3, 0]))  # a mean, of nothing
        (B, 3, 1)
        """
        return self._pooled_shape(inputs, mean_when_one=True)


class _AdaptiveMax(_Adaptive):
    return_indices: bool

    def forward(self, input: Float[Tensor, "..."]) -> Any:  # (*batch, channels, *spatial); with indices a pair
        return super().forward(input)

    def output_shape(self, *inputs: ShapeValue) -> ShapeValue:
        """``(*batch, C, *spatial)`` to ``(*batch, C, *output_size)``, twice with ``return_indices``;
        a ``None`` in ``output_size`` keeps that size.

        >>> import fluxion.layers as fl
        >>> from fluxion import dims
        >>> fl.AdaptiveMaxPool2d((None, 7)).output_shape(dims.Shape(["B", 3, "H", "W"]))
        (B, 3, H, 7)
        >>> fl.AdaptiveMaxPool1d(4, return_indices=True).output_shape(dims.Shape(["B", 3, "T"]))
        ((B, 3, 4), (B, 3, 4))
        """
        shape = self._pooled_shape(inputs, mean_when_one=False)
        return (shape, shape) if self.return_indices else shape


class AdaptiveAvgPool1d(_AdaptiveAvg, torch.nn.AdaptiveAvgPool1d, Module):
    """``torch.nn.AdaptiveAvgPool1d`` as a tree leaf: ``(*batch, C, L)`` to ``(*batch, C, output_size)``.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.AdaptiveAvgPool1d(2)(torch.arange(4.0).reshape(1, 1, 4)).tolist()
    [[[0.5, 2.5]]]
    """

    spatial = 1

    def __init__(self, output_size: Size1) -> None:
        self._check_output_size(output_size)
        torch.nn.AdaptiveAvgPool1d.__init__(self, output_size)


class AdaptiveAvgPool2d(_AdaptiveAvg, torch.nn.AdaptiveAvgPool2d, Module):
    """``torch.nn.AdaptiveAvgPool2d`` as a tree leaf.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.AdaptiveAvgPool2d(1)(torch.zeros(2, 3, 7, 5)).shape
    torch.Size([2, 3, 1, 1])
    """

    spatial = 2

    def __init__(self, output_size: int | tuple[int | None, int | None]) -> None:
        self._check_output_size(output_size)
        torch.nn.AdaptiveAvgPool2d.__init__(self, output_size)


class AdaptiveMaxPool1d(_AdaptiveMax, torch.nn.AdaptiveMaxPool1d, Module):
    """``torch.nn.AdaptiveMaxPool1d`` as a tree leaf: ``(*batch, C, L)`` to ``(*batch, C, output_size)``.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> fl.AdaptiveMaxPool1d(2)(torch.arange(4.0).reshape(1, 1, 4)).tolist()
    [[[1.0, 3.0]]]
    """

    spatial = 1

    def __init__(self, output_size: Size1, return_indices: bool = False) -> None:
        self._check_output_size(output_size)
        torch.nn.AdaptiveMaxPool1d.__init__(self, output_size, return_indices)


class AdaptiveMaxPool2d(_AdaptiveMax, torch.nn.AdaptiveMaxPool2d, Module):
    """``torch.nn.AdaptiveMaxPool2d`` as a tree leaf; with ``return_indices=True`` it returns ``(values, indices)``.

    >>> import torch
    >>> import fluxion.layers as fl
    >>> values, indices = fl.AdaptiveMaxPool2d(1, return_indices=True)(torch.arange(4.0).reshape(1, 1, 2, 2))
    >>> values.tolist(), indices.tolist()
    ([[[[3.0]]]], [[[[3]]]])
    """

    spatial = 2

    def __init__(self, output_size: int | tuple[int | None, int | None], return_indices: bool = False) -> None:
        self._check_output_size(output_size)
        torch.nn.AdaptiveMaxPool2d.__init__(self, output_size, return_indices)


# -- the shape rule shared by the pools ---------------------------------------------------------------


def _per_axis(value: int | Sequence[int], axes: int, name: str, what: str) -> tuple[int, ...]:
    """``value`` once per spatial dim: an int or a tuple of one stands for all of them (as torch reads it)."""
    if isinstance(value, int):
        return (value,) * axes
    if len(value) == 1:
        return (value[0],) * axes
    if len(value) != axes:
        raise ShapeError(f"{name} expects a {what} of one int or {axes}, got {value!r}")
    return tuple(value)


def _check_pool_input(name: str, shape: dims.Shape, spatial: int) -> None:
    if len(shape) not in (spatial + 1, spatial + 2):
        raise ShapeError(
            f"{name} expects a {spatial + 1}D (unbatched) or {spatial + 2}D (batched) input, got {shape!r}"
        )
    if any(isinstance(size, int) and size == 0 for size in shape[-spatial - 1 :]):
        raise ShapeError(f"{name} expects non-empty channel and spatial dims, got {shape!r}")


_Pool = MaxPool1d | MaxPool2d | MaxPool3d | AvgPool1d | AvgPool2d | AvgPool3d


def _geometry(
    name: str,
    spatial: int,
    kernel_size: _Size,
    dilation: _Size,
    stride: _Size | None,
    padding: _Size | None,
    ceil_mode: bool,
    downsample: _Size | None,
    output_size: _Size | None,
    model_downsample: _Size | None,
) -> tuple[tuple[int, ...] | None, tuple[int, ...] | None, tuple[int, ...] | None, _Size | None, _Size]:
    """``downsample``, ``output_size`` and ``model_downsample`` per axis, then the stride and padding for
    torch's constructor: derived from ``downsample``, else as given (``None``: torch's default, also
    while ``output_size`` or ``model_downsample`` waits for the input)."""
    _check_window(name, spatial, kernel_size, stride, padding, dilation)
    given = [key for key, value in (("stride", stride), ("padding", padding)) if value is not None]
    ratios, outputs = geometry.targets(name, spatial, downsample, output_size, given, model_downsample)
    of_model = geometry.per_axis(model_downsample, spatial, name, "model_downsample")
    if ratios is not None:
        kernels = _per_axis(kernel_size, spatial, name, "kernel_size")
        dilations = _per_axis(dilation, spatial, name, "dilation")
        strides, paddings = geometry.downsample_geometry(
            name, ratios, kernels, dilations, pool=True, ceil_mode=ceil_mode
        )
        return ratios, outputs, of_model, strides, paddings
    return ratios, outputs, of_model, stride, 0 if padding is None else padding


def _check_window(
    name: str, spatial: int, kernel_size: _Size, stride: _Size | None, padding: _Size | None, dilation: _Size
) -> None:
    """What torch's pools refuse at the first call: sizes below their least value (a stride of ``()``
    is the kernel size), tuples of other than 1 or ``spatial`` ints, padding above half the kernel."""
    lengths = sorted({1, spatial})
    counts = " or ".join(str(length) for length in lengths)
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
            not isinstance(given, list | tuple) or len(cast(tuple[object, ...], given)) not in lengths
        ):
            raise LayerError(f"{name}: {key} must be an int or a tuple of {counts}, got {value!r}")
        checks.at_least(name, key, value, least)
    if padding is not None:
        kernels = _per_axis(kernel_size, spatial, name, "kernel_size")
        paddings = _per_axis(padding, spatial, name, "padding")
        if any(pad > kernel // 2 for pad, kernel in zip(paddings, kernels, strict=True)):
            raise LayerError(f"{name}: padding must be at most half the kernel size {kernel_size!r}, got {padding!r}")


def _aim(
    layer: _Pool,
    ratios: tuple[int, ...] | None,
    outputs: tuple[int, ...] | None,
    of_model: tuple[int, ...] | None,
    resolved: bool,
) -> None:
    """Record what the pool must produce; with ``output_size`` or ``model_downsample``, stride and
    padding wait for the input, unless ``model_downsample`` came with them (``resolved``: a pool
    already materialized)."""
    if ratios is not None or outputs is not None or of_model is not None:
        layer.downsample, layer.output_size, layer.model_downsample = ratios, outputs, of_model
    if outputs is not None or (of_model is not None and not resolved):
        layer.stride = layer.padding = None
        refuse_calls(layer)


def _derived(layer: _Pool, axis: int, size: Dim) -> tuple[int, int]:
    """The stride and padding with which a pool built with ``output_size`` or ``model_downsample``
    meets it at ``axis``."""
    name, spatial = type(layer).__name__, layer.spatial
    kernel = _per_axis(layer.kernel_size, spatial, name, "kernel_size")[axis]
    if layer.model_downsample is not None:
        dilation = _per_axis(_dilation(layer), spatial, name, "dilation")[axis]
        ratio, where = layer.model_downsample[axis], axis - spatial
        return geometry.model_geometry(
            name, ratio, size, kernel, dilation, where, spatial=spatial, most=kernel // 2, ceil_mode=layer.ceil_mode
        )
    return geometry.output_geometry(
        name,
        size,
        cast(tuple[int, ...], layer.output_size)[axis],
        kernel,
        _per_axis(_dilation(layer), spatial, name, "dilation")[axis],
        axis - spatial,
        most=kernel // 2,
        ceil_mode=layer.ceil_mode,
    )


def _dilation(layer: _Pool) -> _Size:
    return layer.dilation if isinstance(layer, MaxPool1d | MaxPool2d | MaxPool3d) else 1


def _pool_shape(layer: _Pool, inputs: tuple[ShapeValue, ...]) -> dims.Shape:
    """torch's rule; with ``downsample`` each size must be a multiple of the ratio, with ``output_size``
    the output is it (stride and padding derived from the input while the pool is lazy)."""
    name, spatial = type(layer).__name__, layer.spatial
    shape = dims.single(inputs, name)
    _check_pool_input(name, shape, spatial)
    kernels = _per_axis(layer.kernel_size, spatial, name, "kernel_size")
    dilations = _per_axis(_dilation(layer), spatial, name, "dilation")
    sizes: list[Dim] = []
    for axis, size in enumerate(shape[-spatial:]):
        kernel, spread, where = kernels[axis], dilations[axis], axis - spatial
        if layer.downsample is not None:
            geometry.require_divisible(size, layer.downsample[axis], name, where)
        if layer.stride is None or layer.padding is None:
            step, pad = _derived(layer, axis, size)
        else:
            # torch takes an empty stride as "the kernel size"
            stride = layer.stride
            empty = not isinstance(stride, int) and len(stride) == 0
            step = kernel if empty else _per_axis(stride, spatial, name, "stride")[axis]
            pad = _per_axis(layer.padding, spatial, name, "padding")[axis]
            if layer.model_downsample is not None:  # materialized: a downsampling by the stride found
                geometry.require_divisible(size, step, name, where)
        if pad > kernel // 2:
            raise ShapeError(f"{name} expects a padding of at most half its kernel size ({kernel // 2}), got {pad}")
        if isinstance(layer, AvgPool3d) and dims.nonnegative(size - kernel) is False:
            # torch's avg_pool3d alone wants each size, padding left out, to hold a whole window
            raise ShapeError(
                f"{name} expects an input size of at least its kernel size {kernel} at dim {where}, got {size}"
            )
        out = _pool_output(size, kernel, step, pad, spread, ceil_mode=layer.ceil_mode)
        if isinstance(out, int) and out < 1:
            raise ShapeError(f"{name} expects an input size with an output at dim {where}, got {size} (output {out})")
        if layer.output_size is not None:
            target = layer.output_size[axis]
            dims.require_equal(target, out, f"{name} was built to produce output size {target} at dim {where}")
        sizes.append(out)
    return dims.Shape([*shape[:-spatial], *sizes])


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
