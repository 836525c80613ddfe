"""Convolutions and pools that state the output they must produce (``downsample=``, ``output_size=``).

``downsample=r`` derives stride and padding at construction: every size that ``r`` divides must come
out ``size / r`` in a real forward, and the shape rule must agree (recording that the size must be
divisible by ``r``). ``output_size=O`` leaves stride and padding to the input size: once they are
filled in from a concrete shape a real forward gives ``O``, or the rule says that no integer stride
and padding do. The checks of impossibility work the windows out independently of the library.
"""

import math
from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fluxion.layers as fl
from fluxion import dims, shapes, spec
from fluxion.dims import Shape
from tests.shapes.helpers import evaluate

EXAMPLES = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])

CONVOLUTIONS: dict[int, Any] = {1: fl.Conv1d, 2: fl.Conv2d, 3: fl.Conv3d}
POOLS: list[Any] = [fl.MaxPool2d, fl.AvgPool2d]


def windows(size: int, kernel: int, stride: int, padding: int, dilation: int = 1, *, ceil_mode: bool = False) -> int:
    """torch's count of windows along one dim, written out again (ceil_mode as torch documents it)."""
    span = dilation * (kernel - 1)
    if not ceil_mode:
        return math.floor((size + 2 * padding - span - 1) / stride) + 1
    count = math.ceil((size + 2 * padding - span - 1) / stride) + 1
    return count - 1 if (count - 1) * stride >= size + padding else count


def spatial(output: torch.Tensor, axes: int) -> tuple[int, ...]:
    return tuple(output.shape[-axes:])


def materialize_layer(layer: Any, *input_shape: Any) -> None:
    """What ``fluxion.shapes.materialize`` does for one lazy layer: infer its arguments, build the twin, adopt it."""
    layer.adopt(layer.materialized(**layer.inferred_arguments(Shape(input_shape))))


# -- downsample: stride and padding at construction ------------------------------------------------


@st.composite
def conv_downsamples(draw: st.DrawFn) -> tuple[int, tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    axes = draw(st.integers(1, 3))
    per_axis = st.lists(st.integers(1, 7), min_size=axes, max_size=axes).map(tuple)
    kernels = draw(per_axis)
    dilations = draw(st.lists(st.integers(1, 3), min_size=axes, max_size=axes).map(tuple))
    ratios = draw(st.lists(st.integers(1, 4), min_size=axes, max_size=axes).map(tuple))
    return axes, kernels, dilations, ratios


@given(case=conv_downsamples(), data=st.data())
@EXAMPLES
def test_a_downsampling_convolution_divides_every_multiple_of_its_ratio(case: Any, data: st.DataObject) -> None:
    axes, kernels, dilations, ratios = case
    spans = [dilation * (kernel - 1) for kernel, dilation in zip(kernels, dilations, strict=True)]
    # a padding p with span + 1 - r <= 2p <= span exists unless r is 1 and the span odd
    possible = all(not (ratio == 1 and span % 2) for ratio, span in zip(ratios, spans, strict=True))
    build = CONVOLUTIONS[axes]
    if not possible:
        with pytest.raises(fl.LayerError, match="no integer padding gives output size/1"):
            build(2, 3, kernels, dilation=dilations, downsample=ratios)
        return
    layer = build(2, 3, kernels, dilation=dilations, downsample=ratios)
    assert layer.stride == ratios
    assert layer.downsample == ratios
    assert f"downsample={ratios}" in repr(layer)
    for padding, span, ratio in zip(layer.padding, spans, ratios, strict=True):
        assert span + 1 - ratio <= 2 * padding <= span
        assert padding == 0 or span + 1 - ratio > 2 * (padding - 1)  # the smallest such padding
    multiples = data.draw(st.lists(st.integers(1, 5), min_size=axes, max_size=axes))
    sizes = tuple(ratio * multiple for ratio, multiple in zip(ratios, multiples, strict=True))
    with torch.no_grad():
        output = layer(torch.zeros(1, 2, *sizes))
    assert spatial(output, axes) == tuple(multiples)
    assert layer.output_shape(Shape([1, 2, *sizes])) == Shape([1, 3, *multiples])
    check_symbolic(layer, 2, (1, 3, *multiples), sizes, ratios)


def check_symbolic(
    layer: Any, channels: int, expected: tuple[int, ...], sizes: tuple[int, ...], ratios: tuple[int, ...]
) -> None:
    """The rule on symbolic sizes: read at ``sizes`` it gives ``expected``; each ratio above 1 is a constraint."""
    names = ["D", "H", "W"][-len(sizes) :]
    report = shapes.infer(fl.Chain(layer), (1, channels, *names))
    assert evaluate(report.output, dict(zip(names, sizes, strict=True))) == expected
    described = sorted(str(constraint).split(" (")[0] for constraint in report.constraints)
    wanted = [f"{name} must be divisible by {ratio}" for name, ratio in zip(names, ratios, strict=True) if ratio > 1]
    assert described == sorted(wanted)


@st.composite
def pool_downsamples(draw: st.DrawFn) -> tuple[Any, int, int, int, bool]:
    pool = draw(st.sampled_from(POOLS))
    dilation = draw(st.integers(1, 2)) if pool is fl.MaxPool2d else 1
    return pool, draw(st.integers(1, 5)), dilation, draw(st.integers(1, 4)), draw(st.booleans())


@given(case=pool_downsamples(), multiples=st.tuples(st.integers(1, 5), st.integers(1, 5)))
@EXAMPLES
def test_a_downsampling_pool_divides_every_multiple_of_its_ratio(case: Any, multiples: tuple[int, int]) -> None:
    pool, kernel, dilation, ratio, ceil_mode = case
    options: dict[str, Any] = {"dilation": dilation} if pool is fl.MaxPool2d else {}
    # torch pads a pool by at most half its kernel; the three smallest multiples stand for all of them
    paddings = [
        padding
        for padding in range(kernel // 2 + 1)
        if all(windows(ratio * m, kernel, ratio, padding, dilation, ceil_mode=ceil_mode) == m for m in (1, 2, 3))
    ]
    if not paddings:
        with pytest.raises(fl.LayerError, match=f"cannot downsample by {ratio} at dim -2"):
            pool(kernel, ceil_mode=ceil_mode, downsample=ratio, **options)
        return
    layer = pool(kernel, ceil_mode=ceil_mode, downsample=ratio, **options)
    assert layer.stride == (ratio, ratio)
    assert layer.padding == (paddings[0], paddings[0])
    sizes = tuple(ratio * multiple for multiple in multiples)
    output = layer(torch.zeros(1, 2, *sizes))
    assert spatial(output, 2) == multiples
    assert layer.output_shape(Shape([1, 2, *sizes])) == Shape([1, 2, *multiples])
    check_symbolic(layer, 2, (1, 2, *multiples), sizes, (ratio, ratio))


def test_a_symbolic_size_records_that_it_must_be_divisible() -> None:
    model = fl.Chain(fl.Conv2d(3, 8, 3, downsample=2))
    report = shapes.infer(model, ("B", 3, "H", "W"))
    described = [str(constraint) for constraint in report.constraints]
    assert [text.split(" (")[0] for text in described] == ["H must be divisible by 2", "W must be divisible by 2"]
    assert "Conv2d downsamples by 2 and expects a size divisible by 2 at dim -2" in described[0]
    assert evaluate(report.output, {"B": 2, "H": 14, "W": 8}) == (2, 8, 7, 4)


def test_a_concrete_size_that_the_ratio_does_not_divide_is_refused() -> None:
    with pytest.raises(shapes.ShapeError, match="downsamples by 2 and expects a size divisible by 2 at dim -1, got 7"):
        shapes.infer(fl.Chain(fl.Conv2d(3, 8, 3, downsample=2)), ("B", 3, 8, 7))
    with pytest.raises(shapes.ShapeError, match=r"MaxPool2d downsamples by 3 .* at dim -2, got 10"):
        shapes.infer(fl.Chain(fl.MaxPool2d(3, downsample=3)), (1, 3, 10, 9))


def test_a_ratio_per_axis() -> None:
    layer = fl.Conv2d(1, 1, kernel_size=(3, 5), downsample=(2, 1))
    assert (layer.stride, layer.padding) == ((2, 1), (1, 2))
    assert spatial(layer(torch.zeros(1, 1, 8, 9)), 2) == (4, 9)


def test_a_resnet_stem_built_from_ratios_runs_as_torch_would() -> None:
    stem = fl.Chain(
        fl.Conv2d(3, 16, kernel_size=7, bias=False, downsample=2),
        fl.BatchNorm2d(16),
        fl.ReLU(),
        fl.MaxPool2d(kernel_size=3, downsample=2),
    )
    assert (stem.Conv2d.stride, stem.Conv2d.padding) == ((2, 2), (3, 3))  # torchvision's resnet stem
    assert (stem.MaxPool2d.stride, stem.MaxPool2d.padding) == ((2, 2), (1, 1))
    torch_stem = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, kernel_size=7, stride=2, padding=3, bias=False),
        torch.nn.BatchNorm2d(16),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
    )
    torch_stem.load_state_dict(dict(zip(torch_stem.state_dict(), stem.state_dict().values(), strict=True)))
    image = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        output = stem(image)
        torch.testing.assert_close(output, torch_stem(image))
    assert output.shape == (2, 16, 16, 24)
    assert shapes.infer(stem, (2, 3, 64, 96)).output == Shape([2, 16, 16, 24])
    report = shapes.infer(stem, ("B", 3, "H", "W"))
    assert evaluate(report.output, {"B": 2, "H": 64, "W": 96}) == (2, 16, 16, 24)


def test_a_downsampling_convolution_with_reflect_padding() -> None:
    layer = fl.Conv1d(1, 1, kernel_size=5, padding_mode="reflect", downsample=2)
    assert layer.padding == (2,)
    assert layer(torch.randn(1, 1, 12)).shape == (1, 1, 6)


# -- output_size: stride and padding from the input size --------------------------------------------


@given(
    axes=st.integers(1, 3),
    kernel=st.integers(1, 5),
    dilation=st.integers(1, 2),
    size=st.integers(1, 20),
    output=st.integers(1, 12),
)
@EXAMPLES
def test_an_absolute_output_size_is_met_or_said_to_be_impossible(
    axes: int, kernel: int, dilation: int, size: int, output: int
) -> None:
    span = dilation * (kernel - 1)
    layer = CONVOLUTIONS[axes](out_channels=2, kernel_size=kernel, dilation=dilation, output_size=output)
    shape = (1, 3, *(size,) * axes)
    found = [
        (stride, padding)
        for stride in range(1, size + 1)
        for padding in range(span + 1)
        if windows(size, kernel, stride, padding, dilation) == output
    ]
    if not found:
        with pytest.raises(
            shapes.ShapeError,
            match=rf"cannot produce output size {output} at dim -{axes} from {size} with kernel {kernel}",
        ):
            layer.output_shape(Shape(shape))
        return
    assert layer.output_shape(Shape(shape)) == Shape([1, 2, *(output,) * axes])
    assert layer.inferred_arguments(Shape(shape)) == {
        "in_channels": 3,
        "stride": (found[0][0],) * axes,
        "padding": (found[0][1],) * axes,
    }
    materialize_layer(layer, *shape)
    assert not layer.lazy
    with torch.no_grad():
        assert spatial(layer(torch.zeros(shape)), axes) == (output,) * axes


@given(
    pool=st.sampled_from(POOLS),
    kernel=st.integers(1, 5),
    ceil_mode=st.booleans(),
    sizes=st.tuples(st.integers(1, 20), st.integers(1, 20)),
    output=st.integers(1, 12),
)
@EXAMPLES
def test_a_pool_meets_an_absolute_output_size_or_says_it_cannot(
    pool: Any, kernel: int, ceil_mode: bool, sizes: tuple[int, int], output: int
) -> None:
    layer = pool(kernel, ceil_mode=ceil_mode, output_size=output)
    shape = (1, 2, *sizes)
    possible = [
        any(
            windows(size, kernel, stride, padding, ceil_mode=ceil_mode) == output
            for stride in range(1, size + 1)
            for padding in range(kernel // 2 + 1)
        )
        for size in sizes
    ]
    if not all(possible):
        where = -2 if not possible[0] else -1
        with pytest.raises(shapes.ShapeError, match=f"cannot produce output size {output} at dim {where}"):
            shapes.infer(fl.Chain(layer), shape)
        return
    assert shapes.infer(fl.Chain(layer), shape).output == Shape([1, 2, output, output])
    materialize_layer(layer, *shape)
    assert spatial(layer(torch.zeros(shape)), 2) == (output, output)


def test_the_search_takes_the_smallest_stride_then_padding() -> None:
    layer = fl.Conv2d(3, 4, kernel_size=3, output_size=(16, 8))
    assert layer.inferred_arguments(Shape(["B", 3, 32, 32])) == {"stride": (2, 4), "padding": (1, 0)}


def test_no_integer_stride_and_padding() -> None:
    with pytest.raises(
        shapes.ShapeError,
        match=r"Conv2d cannot produce output size 10 at dim -1 from 4 with kernel 3 \(no integer stride/padding",
    ):
        shapes.infer(fl.Chain(fl.Conv2d(3, 4, kernel_size=3, output_size=(2, 10))), ("B", 3, 4, 4))
    with pytest.raises(shapes.ShapeError, match="MaxPool2d cannot produce output size 6 at dim -2 from 4"):
        shapes.infer(fl.Chain(fl.MaxPool2d(2, output_size=6)), ("B", 3, 4, 4))


def test_an_absolute_output_size_needs_a_concrete_input_size() -> None:
    with pytest.raises(
        shapes.ShapeError, match="needs a concrete input size at dim -2 for output_size 16, got H"
    ) as caught:
        shapes.infer(fl.Chain(fl.Conv2d(3, 8, 3, output_size=16)), ("B", 3, "H", 32))
    assert "use downsample= for a size relative to the input" in str(caught.value)
    with pytest.raises(shapes.ShapeError, match="at dim -1 for output_size 7, got W"):
        shapes.infer(fl.Chain(fl.AvgPool2d(2, output_size=7)), ("B", 3, 14, "W"))


def test_a_layer_waiting_for_its_stride_and_padding_refuses_to_run() -> None:
    conv = fl.Conv2d(3, 8, 3, output_size=16)
    assert conv.lazy
    assert conv.missing == ("stride", "padding")
    assert repr(conv) == "Conv2d(3, 8, kernel_size=(3, 3), stride=?, padding=?, output_size=(16, 16))"
    with pytest.raises(fl.LayerError, match=r"Conv2d\(3, 8, .*\) has no stride, padding yet: call fluxion.shapes"):
        conv(torch.zeros(1, 3, 32, 32))
    lazy_channels = fl.Conv1d(out_channels=8, kernel_size=3, output_size=4)
    assert lazy_channels.missing == ("in_channels", "stride", "padding")
    pool = fl.MaxPool2d(3, output_size=7)
    assert pool.lazy
    assert pool.missing == ("stride", "padding")
    with pytest.raises(fl.LayerError, match="has no stride, padding yet"):
        pool(torch.zeros(1, 3, 14, 14))


def test_a_materialized_layer_still_states_its_output_size() -> None:
    conv = fl.Conv2d(3, 8, 3, output_size=16)
    materialize_layer(conv, "B", 3, 32, 32)
    assert repr(conv) == "Conv2d(3, 8, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), output_size=(16, 16))"
    assert conv.output_shape(Shape(["B", 3, 31, 32])) == Shape(["B", 8, 16, 16])
    with pytest.raises(shapes.ShapeError, match="Conv2d was built to produce output size 16 at dim -1, got 17"):
        conv.output_shape(Shape(["B", 3, 32, 34]))


def test_a_derived_padding_reaches_the_padding_torch_applies_itself() -> None:
    conv = fl.Conv1d(1, 1, kernel_size=3, bias=False, padding_mode="circular", output_size=4)
    materialize_layer(conv, 1, 1, 8)
    reference = torch.nn.Conv1d(1, 1, kernel_size=3, stride=2, padding=1, bias=False, padding_mode="circular")
    reference.load_state_dict(conv.state_dict())
    signal = torch.randn(1, 1, 8)
    with torch.no_grad():
        torch.testing.assert_close(conv(signal), reference(signal))


def test_a_reflect_padding_stays_below_the_size() -> None:
    # padding 2 would give 2 from 3 with stride 2, but torch's reflect padding must be smaller than the size
    conv = fl.Conv1d(1, 1, kernel_size=5, padding_mode="reflect", output_size=1)
    assert conv.inferred_arguments(Shape([1, 1, 3])) == {"stride": (1,), "padding": (1,)}
    materialize_layer(conv, 1, 1, 3)
    assert conv(torch.randn(1, 1, 3)).shape == (1, 1, 1)


def test_materialize_fills_in_stride_and_padding() -> None:
    model = fl.Chain(fl.Conv2d(out_channels=8, kernel_size=3, output_size=(16, 8)), fl.MaxPool2d(2, output_size=4))
    shapes.materialize(model, ("B", 3, 32, 32))
    assert (model.Conv2d.in_channels, model.Conv2d.stride, model.Conv2d.padding) == (3, (2, 4), (1, 0))
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 8, 4, 4)
    written = spec.dump(model)  # the target is what a spec states; stride and padding follow from it again
    assert written["children"][0] == {
        "type": "Conv2d",
        "in_channels": 3,
        "out_channels": 8,
        "kernel_size": 3,
        "output_size": [16, 8],
    }
    again = spec.loads(written, inputs=[["B", 3, 32, 32]])
    assert repr(again) == repr(model)


# -- arguments that conflict ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: fl.Conv2d(3, 8, 3, stride=2, downsample=2), "takes either downsample or stride and padding"),
        (lambda: fl.Conv2d(3, 8, 3, padding=1, downsample=2), "got downsample and padding"),
        (lambda: fl.Conv1d(3, 8, 3, padding="same", output_size=4), "takes either output_size or stride"),
        (lambda: fl.Conv2d(3, 8, 3, downsample=2, output_size=4), "got downsample and output_size"),
        (lambda: fl.Conv2d(3, 8, 3, downsample=0), r"expects downsample as a positive int or a tuple of 2, got 0"),
        (lambda: fl.Conv3d(3, 8, 3, downsample=(2, 2)), r"tuple of 3, got \(2, 2\)"),
        (lambda: fl.Conv2d(3, 8, 3, output_size=(4, -1)), "expects output_size as a positive int"),
        (lambda: fl.Conv2d(3, 8, 3, downsample=True), "expects downsample as a positive int"),
        (lambda: fl.Conv2d(3, 8, 2, downsample=1), "Conv2d cannot downsample by 1 at dim -2: no integer padding"),
        (lambda: fl.MaxPool2d(2, stride=1, downsample=2), "MaxPool2d takes either downsample or stride"),
        (lambda: fl.AvgPool2d(3, padding=1, output_size=4), "AvgPool2d takes either output_size or stride"),
        (lambda: fl.AvgPool2d(3, downsample=(2, 0)), "AvgPool2d expects downsample as a positive int"),
        (lambda: fl.MaxPool2d(3, dilation=2, downsample=2), r"no integer padding \(a pool pads at most 1\)"),
    ],
)
def test_conflicting_or_impossible_arguments_are_refused(build: Any, message: str) -> None:
    with pytest.raises(fl.LayerError, match=message):
        build()


def test_given_stride_and_padding_keep_torchs_defaults() -> None:
    assert (fl.Conv2d(3, 8, 3).stride, fl.Conv2d(3, 8, 3).padding) == ((1, 1), (0, 0))
    assert (fl.MaxPool2d(3).stride, fl.MaxPool2d(3).padding) == (3, 0)
    assert (fl.AvgPool2d(2, stride=1).stride, fl.AvgPool2d(2, stride=1).padding) == (1, 0)
    assert fl.Conv2d(3, 8, 3).downsample is None
    assert fl.MaxPool2d(3).output_size is None
    assert not fl.MaxPool2d(3).lazy
    assert fl.MaxPool2d(3).missing == ()


def test_a_symbolic_multiple_of_the_ratio_is_divided_exactly() -> None:
    h = dims.dim("H")
    layer = fl.Conv2d(3, 8, 5, downsample=4)
    assert layer.output_shape(Shape(["B", 3, 4 * h, 8])) == Shape(["B", 8, h, 2])


def test_a_downsampling_convolution_may_leave_its_channels_to_materialize() -> None:
    model = fl.Chain(fl.Conv2d(out_channels=8, kernel_size=3, downsample=2), fl.AvgPool2d(2, downsample=2))
    assert shapes.materialize(model, ("B", 3, 32, 24)).output == Shape(["B", 8, 8, 6])
    assert model.Conv2d.in_channels == 3
    assert model(torch.zeros(2, 3, 32, 24)).shape == (2, 8, 8, 6)
