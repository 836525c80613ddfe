"""Stride and padding worked out from the output a window layer must produce.

Along one dim, a window of ``kernel`` taps ``dilation`` apart, moved by ``stride`` over a size
padded by ``padding`` on both sides, fits ``floor((size + 2 * padding - dilation * (kernel - 1) - 1)
/ stride) + 1`` times (torch's formula; a pool in ``ceil_mode`` rounds up). Convolutions and pools
built with ``downsample=r`` (every size that ``r`` divides becomes ``size / r``), ``output_size=O``
or ``model_downsample=r`` (the output is ``1/r`` of the model's input, as Neurlink declares layers)
take their stride and padding from here.

>>> from fluxion.layers import geometry
>>> geometry.downsample_padding(2, kernel=7), geometry.downsample_padding(1, kernel=2)
(3, None)
>>> geometry.stride_and_padding(32, 16, kernel=3)
(2, 1)
"""

from collections.abc import Sequence
from fractions import Fraction
from typing import cast

from fluxion import dims
from fluxion.dims import Dim
from fluxion.errors import LayerError, ShapeError


def window_count(
    size: int, kernel: int, stride: int, padding: int, dilation: int = 1, *, ceil_mode: bool = False
) -> int:
    """How many windows fit along a dim of ``size`` (torch's formula, pools' ``ceil_mode`` included).

    In ``ceil_mode`` a last window that would start in the right padding is dropped, as torch does.

    >>> from fluxion.layers import geometry
    >>> geometry.window_count(224, 7, stride=2, padding=3), geometry.window_count(5, 2, 2, 0, ceil_mode=True)
    (112, 3)
    """
    span = dilation * (kernel - 1)
    count = (size + 2 * padding - span - 1 + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (count - 1) * stride >= size + padding:
        count -= 1
    return count


def downsample_padding(
    ratio: int, kernel: int, dilation: int = 1, *, most: int | None = None, ceil_mode: bool = False
) -> int | None:
    """The smallest padding with which stride ``ratio`` turns every size that ``ratio`` divides into
    ``size / ratio``; None when no padding up to ``most`` (default ``dilation * (kernel - 1)``) does.

    Without ``ceil_mode`` that is the smallest ``p >= 0`` with ``d(k-1) + 1 - r <= 2p <= d(k-1)``:
    an even window span with ``ratio`` 1 has none.

    >>> from fluxion.layers import geometry
    >>> geometry.downsample_padding(2, kernel=3), geometry.downsample_padding(4, kernel=3, dilation=2)
    (1, 1)
    >>> geometry.downsample_padding(2, kernel=3, dilation=2, most=1) is None
    True
    """
    span = dilation * (kernel - 1)
    for padding in range(min(span, span if most is None else most) + 1):
        # each ``ratio`` added to the size adds one window, so the size ``ratio`` stands for all its multiples
        if window_count(ratio, kernel, ratio, padding, dilation, ceil_mode=ceil_mode) == 1:
            return padding
    return None


def stride_and_padding(
    size: int, output: int, kernel: int, dilation: int = 1, *, most: int | None = None, ceil_mode: bool = False
) -> tuple[int, int] | None:
    """The smallest stride (``1..size``), then the smallest padding (up to ``most``, by default
    ``dilation * (kernel - 1)``), with which ``size`` gives ``output`` windows; None when none do.

    >>> from fluxion.layers import geometry
    >>> geometry.stride_and_padding(224, 56, kernel=7), geometry.stride_and_padding(4, 10, kernel=3)
    ((4, 2), None)
    """
    span = dilation * (kernel - 1)
    most = span if most is None else min(span, most)
    for stride in range(1, size + 1):
        for padding in range(most + 1):
            if window_count(size, kernel, stride, padding, dilation, ceil_mode=ceil_mode) == output:
                return stride, padding
    return None


def per_axis(value: int | Sequence[int] | None, axes: int, layer: str, name: str) -> tuple[int, ...] | None:
    """``value`` once for each of ``axes`` spatial dims (an int stands for all), each a positive int;
    None stays None; anything else is a LayerError.

    >>> from fluxion.layers import geometry
    >>> geometry.per_axis(2, 2, "Conv2d", "downsample"), geometry.per_axis((16, 8), 2, "Conv2d", "output_size")
    ((2, 2), (16, 8))
    >>> geometry.per_axis((2, 0), 2, "Conv2d", "downsample")
    Traceback (most recent call last):
    ...
    fluxion.errors.LayerError: Conv2d expects downsample as a positive int or a tuple of 2, got (2, 0)
    >>> geometry.per_axis(2.0, 2, "Conv2d", "model_downsample")
    Traceback (most recent call last):
    ...
    fluxion.errors.LayerError: Conv2d expects model_downsample as a positive int or a tuple of 2, got 2.0
    """
    if value is None:
        return None
    given = cast(object, value)
    values: tuple[object, ...] = ()  # a float, a str or bytes (which iterate) is refused below
    if isinstance(given, int):
        values = (given,) * axes
    elif isinstance(given, list | tuple):
        values = tuple(cast(Sequence[object], given))
    if len(values) != axes or any(type(item) is not int or item < 1 for item in values):
        raise LayerError(f"{layer} expects {name} as a positive int or a tuple of {axes}, got {value!r}")
    return cast(tuple[int, ...], values)


def targets(
    layer: str,
    axes: int,
    downsample: int | Sequence[int] | None,
    output_size: int | Sequence[int] | None,
    given: Sequence[str],
    model_downsample: int | Sequence[int] | None = None,
) -> tuple[tuple[int, ...] | None, tuple[int, ...] | None]:
    """``downsample`` and ``output_size`` checked and made per axis; a LayerError when more than one
    of them and ``model_downsample`` (checked by ``per_axis`` on its own) is given, or one with an
    argument they derive (``given`` names those the caller gave). ``model_downsample`` with both
    stride and padding is a layer already materialized (as ``spec.dump`` writes one): taken.

    >>> from fluxion.layers import geometry
    >>> geometry.targets("Conv2d", 2, 2, None, given=())
    ((2, 2), None)
    >>> geometry.targets("Conv2d", 2, 2, None, given=("stride",))
    Traceback (most recent call last):
    ...
    fluxion.errors.LayerError: Conv2d takes either downsample or stride and padding \
(downsample derives them), got downsample and stride
    >>> geometry.targets("Conv2d", 2, None, 7, given=(), model_downsample=4)
    Traceback (most recent call last):
    ...
    fluxion.errors.LayerError: Conv2d takes one of downsample, model_downsample and output_size, got \
model_downsample and output_size
    >>> geometry.targets("Conv2d", 2, None, None, given=("stride", "padding"), model_downsample=4)
    (None, None)
    """
    ratios = per_axis(downsample, axes, layer, "downsample")
    outputs = per_axis(output_size, axes, layer, "output_size")
    aims = {"downsample": downsample, "model_downsample": model_downsample, "output_size": output_size}
    stated = [name for name, value in aims.items() if value is not None]
    if len(stated) > 1:
        raise LayerError(
            f"{layer} takes one of downsample, model_downsample and output_size, got {' and '.join(stated)}"
        )
    wanted = stated[0] if stated else None
    resolved = wanted == "model_downsample" and set(given) == {"stride", "padding"}
    if wanted is not None and given and not resolved:
        # with both, model_downsample is the form a materialized layer is written in (spec.dump)
        both = "; a layer already materialized takes it with both" if wanted == "model_downsample" else ""
        raise LayerError(
            f"{layer} takes either {wanted} or stride and padding ({wanted} derives them), "
            f"got {wanted} and {' and '.join(given)}{both}"
        )
    return ratios, outputs


def downsample_geometry(
    layer: str,
    ratios: Sequence[int],
    kernels: Sequence[int],
    dilations: Sequence[int],
    *,
    pool: bool = False,
    ceil_mode: bool = False,
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The stride and padding per axis that make ``layer`` downsample by ``ratios``, or a LayerError.

    A pool pads at most half its kernel (torch's rule) and may round up (``ceil_mode``).

    >>> from fluxion.layers import geometry
    >>> geometry.downsample_geometry("Conv2d", (2, 1), kernels=(7, 3), dilations=(1, 1))
    ((2, 1), (3, 1))
    >>> geometry.downsample_geometry("Conv1d", (1,), kernels=(2,), dilations=(1,))
    Traceback (most recent call last):
    ...
    fluxion.errors.LayerError: Conv1d cannot downsample by 1 at dim -1: no integer padding gives \
output size/1 with kernel 2, dilation 1; use an odd kernel or give stride/padding
    """
    paddings: list[int] = []
    for axis, (ratio, kernel, dilation) in enumerate(zip(ratios, kernels, dilations, strict=True)):
        padding = downsample_padding(ratio, kernel, dilation, most=kernel // 2 if pool else None, ceil_mode=ceil_mode)
        if padding is None:
            limit = f" (a pool pads at most {kernel // 2})" if pool else ""
            raise LayerError(
                f"{layer} cannot downsample by {ratio} at dim {axis - len(ratios)}: no integer padding{limit} gives "
                f"output size/{ratio} with kernel {kernel}, dilation {dilation}; "
                "use an odd kernel or give stride/padding"
            )
        paddings.append(padding)
    return tuple(ratios), tuple(paddings)


def require_divisible(size: Dim, ratio: int, layer: str, where: int) -> None:
    """Check that ``size`` is a multiple of ``ratio`` (a constraint when that depends on the symbols).

    >>> from fluxion.layers import geometry
    >>> geometry.require_divisible(64, 2, "Conv2d", -1)
    >>> geometry.require_divisible(7, 2, "Conv2d", -1)
    Traceback (most recent call last):
    ...
    fluxion.errors.ShapeError: Conv2d downsamples by 2 and expects a size divisible by 2 at dim -1, got 7
    """
    what = f"{layer} downsamples by {ratio} and expects a size divisible by {ratio} at dim {where}"
    dims.require_equal(dims.normal(ratio * dims.floordiv(size, ratio)), size, what)


def output_geometry(
    layer: str,
    size: Dim,
    output: int,
    kernel: int,
    dilation: int,
    where: int,
    *,
    most: int | None = None,
    ceil_mode: bool = False,
) -> tuple[int, int]:
    """The stride and padding with which ``layer`` turns ``size`` into ``output`` at dim ``where``
    (``stride_and_padding``), or a ShapeError saying that none do or that ``size`` is not a number.

    >>> from fluxion import dims
    >>> from fluxion.layers import geometry
    >>> geometry.output_geometry("Conv2d", 32, 16, kernel=3, dilation=1, where=-1)
    (2, 1)
    >>> geometry.output_geometry("Conv2d", dims.dim("W"), 16, kernel=3, dilation=1, where=-1)
    Traceback (most recent call last):
    ...
    fluxion.errors.ShapeError: Conv2d needs a concrete input size at dim -1 for output_size 16, got W: give it as \
a number, or use downsample= for a size relative to the input
    """
    if not isinstance(size, int):
        raise ShapeError(
            f"{layer} needs a concrete input size at dim {where} for output_size {output}, got {dims.show(size)}: "
            "give it as a number, or use downsample= for a size relative to the input"
        )
    found = stride_and_padding(size, output, kernel, dilation, most=most, ceil_mode=ceil_mode)
    if found is None:
        raise ShapeError(
            f"{layer} cannot produce output size {output} at dim {where} from {size} with kernel {kernel}"
            f"{f', dilation {dilation}' if dilation != 1 else ''} (no integer stride/padding gives it)"
        )
    return found


# -- sizes relative to the model's input (Neurlink's way) ----------------------------------------------


def model_size(layer: str, ratio: int, where: int, spatial: int) -> Dim:
    """The size at dim ``where`` of the model's input that the layer's input comes from, as the running
    inference gives it (``dims.model_inputs``), for a layer of ``spatial`` spatial dims; a ShapeError
    when only inference knows it, or when the input comes from several of the model's inputs (a
    ``Cat``, a FiLM) whose sizes there could be meant and differ.

    Of several, those without ``spatial`` dims after a channel dim are not meant (tokens that
    modulate an image's features).

    >>> from fluxion import dims
    >>> from fluxion.layers import geometry
    >>> with dims.running(inputs=(dims.Shape(["B", 3, "H", 224]),)):
    ...     geometry.model_size("Conv2d", 4, -2, spatial=2), geometry.model_size("Conv2d", 4, -1, spatial=2)
    (H, 224)
    >>> with dims.running(inputs=(dims.Shape(["B", 64]), dims.Shape(["B", 3, 32, 32]))):
    ...     geometry.model_size("Conv2d", 4, -1, spatial=2)
    32
    >>> with dims.running(inputs=(dims.Shape(["B", 3, 64, 64]), dims.Shape(["B", 3, 32, 32]))):
    ...     geometry.model_size("Conv2d", 4, -1, spatial=2)
    Traceback (most recent call last):
    ...
    fluxion.errors.ShapeError: Conv2d is sized relative to the model's input (model_downsample=4), and its input \
comes from several of the model's inputs, (B, 3, 64, 64) and (B, 3, 32, 32), whose sizes at dim -1 differ: \
which one it is relative to is unclear; give it stride and padding, or downsample= (relative to its own input)
    """
    inputs = dims.model_inputs()
    what = f"{layer} is sized relative to the model's input (model_downsample={ratio})"
    if not inputs:
        raise ShapeError(
            f"{what}, which only shape inference knows: call fluxion.shapes.materialize(model, *input_shapes)"
        )
    if len(inputs) == 1:
        first = inputs[0]
        if not isinstance(first, dims.Shape) or len(first) < -where:
            raise ShapeError(f"{what}, whose input {first!r} has no dim {where}")
        return first[where]
    shown = f"{', '.join(repr(value) for value in inputs[:-1])} and {inputs[-1]!r}"
    meant = [value for value in inputs if isinstance(value, dims.Shape) and len(value) > spatial]
    if not meant:
        raise ShapeError(
            f"{what}, and its input comes from the model's inputs {shown}, none of which has {spatial} spatial "
            "dims after a channel dim"
        )
    sizes = [shape[where] for shape in meant]
    if any(dims.equal(size, sizes[0]) is not True for size in sizes[1:]):
        raise ShapeError(
            f"{what}, and its input comes from several of the model's inputs, {shown}, whose sizes at dim {where} "
            "differ: which one it is relative to is unclear; give it stride and padding, or downsample= "
            "(relative to its own input)"
        )
    return sizes[0]


def model_stride(layer: str, ratio: int, base: Dim, size: Dim, where: int) -> int:
    """The whole stride that turns ``size``, the layer's input at dim ``where``, into ``base / ratio``
    (``base`` the model's input), or a ShapeError naming the sizes.

    The layer's input must be a fixed part of the model's input (``H/2`` of ``H``; ``ceil(H/2)``
    counts as ``H/2`` since ``base`` must be a multiple of ``ratio``).

    >>> from fluxion import dims
    >>> from fluxion.layers import geometry
    >>> H = dims.dim("H")
    >>> geometry.model_stride("Conv2d", 4, 224, 112, -1), geometry.model_stride("Conv2d", 8, H, H / 2, -1)
    (2, 4)
    >>> geometry.model_stride("Conv2d", 4, H, dims.conv_output(H, 3, stride=2, padding=1), -1)
    2
    >>> geometry.model_stride("Conv2d", 6, 48, 12, -1)
    Traceback (most recent call last):
    ...
    fluxion.errors.ShapeError: Conv2d cannot produce 1/6 of the model's input (8) at dim -1 from its input, \
1/4 of it (12 of 48): that takes stride 3/2, and a stride is a whole number of at least 1
    """
    if isinstance(base, int) and base % ratio:
        raise ShapeError(
            f"{layer} cannot produce 1/{ratio} of the model's input at dim {where}: "
            f"the model's input size {base} is not a multiple of {ratio}"
        )
    part = _part_of(base, size, ratio)
    if part is None:
        raise ShapeError(
            f"{layer} cannot tell what part of the model's input ({dims.show(base)}) its input size "
            f"{dims.show(size)} at dim {where} is, so no stride gives 1/{ratio} of it: give the input sizes "
            "as numbers, or size the layers before it relative to the model's input too"
        )
    stride = ratio / part
    if stride.denominator != 1 or stride < 1:
        numbers = isinstance(base, int) and isinstance(size, int)
        wanted = f" ({base // ratio})" if isinstance(base, int) else ""
        share = "as large as it" if part == 1 else f"{1 / part} of it"
        raise ShapeError(
            f"{layer} cannot produce 1/{ratio} of the model's input{wanted} at dim {where} from its input, "
            f"{share}{f' ({size} of {base})' if numbers else ''}: that takes stride {stride}, "
            "and a stride is a whole number of at least 1"
        )
    return stride.numerator


def model_geometry(
    layer: str,
    ratio: int,
    size: Dim,
    kernel: int,
    dilation: int,
    where: int,
    *,
    spatial: int,
    most: int | None = None,
    ceil_mode: bool = False,
) -> tuple[int, int]:
    """The stride and padding with which ``layer`` (of ``spatial`` spatial dims) turns ``size`` at dim
    ``where`` into ``1/ratio`` of the model's input (``model_size``): the stride from the two sizes
    (``model_stride``), then the smallest symmetric
    padding (up to ``most``) that divides every multiple of the stride (``downsample_padding``),
    which is torchvision's wherever its layouts use one. Records that the model's input must be a
    multiple of ``ratio``; a ShapeError when no stride or no symmetric padding does it.

    >>> from fluxion import dims
    >>> from fluxion.layers import geometry
    >>> with dims.running(inputs=(dims.Shape(["B", 3, 224, 224]),)):
    ...     geometry.model_geometry("Conv2d", 2, 224, kernel=7, dilation=1, where=-1, spatial=2)
    ...     geometry.model_geometry("MaxPool2d", 4, 112, kernel=3, dilation=1, where=-1, spatial=2, most=1)
    (2, 3)
    (2, 1)
    """
    base = model_size(layer, ratio, where, spatial)
    dims.require_equal(
        dims.normal(ratio * dims.floordiv(base, ratio)),
        base,
        f"{layer} produces 1/{ratio} of the model's input and expects a model input size divisible by {ratio} "
        f"at dim {where}",
    )
    stride = model_stride(layer, ratio, base, size, where)
    padding = downsample_padding(stride, kernel, dilation, most=most, ceil_mode=ceil_mode)
    if padding is None:
        limit = "" if most is None else f" of at most {most}"
        raise ShapeError(
            f"{layer} takes stride {stride} at dim {where} to produce 1/{ratio} of the model's input, and no "
            f"symmetric padding{limit} gives size/{stride} with kernel {kernel}"
            f"{f', dilation {dilation}' if dilation != 1 else ''}: use an odd kernel, or pad on one side with "
            "fl.Pad before it and give stride and padding"
        )
    return stride, padding


def _part_of(base: Dim, size: Dim, ratio: int) -> Fraction | None:
    """``base / size`` as a number when it is one, for a ``base`` that is a multiple of ``ratio``."""
    if isinstance(base, int) and isinstance(size, int):
        return Fraction(base, size) if size > 0 else None
    sympy = dims.sympy_module()
    quotient = sympy.sympify(base) / sympy.sympify(size)
    if not quotient.is_Rational:
        # ceil(H/2) is H/2 for every H that ratio divides, which the model's input must be
        symbols = sympy.sympify(base).free_symbols
        quotient = quotient.subs({symbol: ratio * symbol for symbol in symbols}, simultaneous=True)
    if quotient.is_Rational and quotient > 0:
        return Fraction(int(quotient.p), int(quotient.q))
    return None
