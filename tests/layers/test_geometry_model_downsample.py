"""Convolutions sized relative to the model's input (``model_downsample=r``, Neurlink's way).

A layer built with ``model_downsample=r`` produces ``1/r`` of the model's input: its stride is the
ratio of where its input stands to ``r`` (a layer at 1/2 asked for 1/4 strides by 2), found by
shape inference from the model's input shapes (``dims.model_inputs``), symbolic ones included, and
its padding is the smallest symmetric one that divides every multiple of the stride (torchvision's
in every ResNet layout). What no whole stride or symmetric padding reaches is refused when the
model is materialized, naming the node and the sizes. The expected strides and paddings here are
worked out by the tests from the ratios, not by the library.
"""

from typing import Any

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fluxion.layers as fl
from fluxion import dims, shapes, spec

EXAMPLES = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
H, W = dims.dim("H"), dims.dim("W")


def conv(channels: int, kernel: int, ratio: int | tuple[int, ...], **options: Any) -> fl.Conv2d:
    return fl.Conv2d(out_channels=channels, kernel_size=kernel, bias=False, model_downsample=ratio, **options)


def stem() -> fl.Chain:
    """ResNet's stem and first strided block, each layer stating its output as a part of the model's input."""
    return fl.Chain(
        conv1=conv(8, 7, 2),
        conv2=conv(8, 3, 4),
        conv3=conv(16, 3, 8),
        projection=conv(16, 1, 8),
        conv4=conv(16, 1, 32),
    )


# -- the stride and padding found -------------------------------------------------------------------------


def test_the_stride_is_where_the_input_stands_over_the_ratio_and_the_padding_torchvisions() -> None:
    model = stem()
    report = shapes.materialize(model, ("B", 3, 224, 224))
    found = {name: (layer.stride, layer.padding) for name, layer in model.named_children()}
    assert found == {
        "conv1": ((2, 2), (3, 3)),  # torchvision's stem: 7x7, stride 2, padding 3
        "conv2": ((2, 2), (1, 1)),  # a 3x3 conv at 1/2 asked for 1/4: stride 2, padding 1
        "conv3": ((2, 2), (1, 1)),
        "projection": ((1, 1), (0, 0)),  # already at 1/8
        "conv4": ((4, 4), (0, 0)),  # a 1x1 conv at 1/8 asked for 1/32: stride 4, padding 0
    }
    assert [report[name].output for name in found] == [
        dims.Shape(["B", channels, size, size]) for channels, size in ((8, 112), (8, 56), (16, 28), (16, 28), (16, 7))
    ]
    assert model(torch.randn(2, 3, 224, 224)).shape == (2, 16, 7, 7)


def test_symbolic_sizes_resolve_to_the_same_strides_and_read_as_parts_of_the_input() -> None:
    symbolic, numeric = stem(), stem()
    report = shapes.infer(symbolic, ("B", 3, "H", "W"))
    assert [report[name].output for name in ("conv1", "conv2", "conv3", "conv4")] == [
        dims.Shape(["B", channels, H / ratio, W / ratio]) for channels, ratio in ((8, 2), (8, 4), (16, 8), (16, 32))
    ]
    assert [str(constraint).split(" (")[0] for constraint in report.constraints] == [
        "H must be divisible by 32",
        "W must be divisible by 32",
    ]
    shapes.materialize(symbolic, ("B", 3, "H", "W"))
    shapes.materialize(numeric, ("B", 3, 64, 96))
    assert repr(symbolic) == repr(numeric)
    assert symbolic(torch.randn(1, 3, 64, 96)).shape == (1, 16, 2, 3)


def test_a_layer_after_an_explicit_stride_reads_its_input_as_a_part_of_the_model_input() -> None:
    model = fl.Chain(fl.Conv2d(3, 4, 3, stride=2, padding=1), conv(4, 3, 8))  # ceil(H/2), then 1/8 of H
    report = shapes.infer(model, ("B", 3, "H", "W"))
    assert report.output == dims.Shape(["B", 4, H / 8, W / 8])
    shapes.materialize(model, ("B", 3, "H", "W"))
    assert model.Conv2d_2.stride == (4, 4)


def test_a_ratio_per_axis_and_other_dimensions() -> None:
    model = fl.Chain(
        fl.Conv2d(out_channels=4, kernel_size=3, model_downsample=(2, 1)),
        fl.Conv2d(out_channels=4, kernel_size=(3, 5), model_downsample=(4, 2)),
    )
    shapes.materialize(model, ("B", 1, 32, 20))
    assert (model.Conv2d_1.stride, model.Conv2d_1.padding) == ((2, 1), (1, 1))
    assert (model.Conv2d_2.stride, model.Conv2d_2.padding) == ((2, 2), (1, 2))
    assert model(torch.randn(1, 1, 32, 20)).shape == (1, 4, 8, 10)
    sequence = fl.Chain(fl.Conv1d(out_channels=2, kernel_size=5, model_downsample=4))
    shapes.materialize(sequence, ("B", 1, "T"))
    assert (sequence.Conv1d.stride, sequence.Conv1d.padding) == ((4,), (1,))  # the smallest: 5 - 4 <= 2p
    volume = fl.Chain(fl.Conv3d(1, 2, kernel_size=3, model_downsample=(1, 2, 2)))
    shapes.materialize(volume, (1, 1, 4, 8, 8))
    assert volume(torch.randn(1, 1, 4, 8, 8)).shape == (1, 2, 4, 4, 4)


def test_a_reflect_padding_is_found_the_same_way() -> None:
    model = fl.Chain(fl.Conv2d(1, 1, 3, padding_mode="reflect", model_downsample=2))
    shapes.materialize(model, (1, 1, 8, 8))
    assert model.Conv2d.padding == (1, 1)
    assert model(torch.randn(1, 1, 8, 8)).shape == (1, 1, 4, 4)


@st.composite
def ladders(draw: st.DrawFn) -> list[tuple[int, int]]:
    """Layers of odd kernels (a whole stride needs no one-sided padding with them), each at a part
    of the input that the one before divides."""
    steps = draw(st.lists(st.sampled_from([1, 2, 3, 4]), min_size=1, max_size=4))
    kernels = draw(st.lists(st.sampled_from([1, 3, 5, 7]), min_size=len(steps), max_size=len(steps)))
    ratios: list[int] = []
    for step in steps:
        ratios.append((ratios[-1] if ratios else 1) * step)
    return list(zip(ratios, kernels, strict=True))


@given(ladder=ladders(), multiple=st.integers(1, 3))
@EXAMPLES
def test_every_layer_strides_from_the_part_before_it_and_gives_its_part_in_a_real_forward(
    ladder: list[tuple[int, int]], multiple: int
) -> None:
    size = ladder[-1][0] * multiple
    model = fl.Chain(*[fl.Conv2d(out_channels=2, kernel_size=k, model_downsample=r) for r, k in ladder])
    shapes.materialize(model, (1, 1, size, size))
    before = 1
    for layer, (ratio, kernel) in zip(model, ladder, strict=True):
        stride = ratio // before
        assert layer.stride == (stride, stride)
        padding = layer.padding[0]
        # the smallest padding with which every multiple of the stride is divided exactly
        assert kernel - stride <= 2 * padding <= kernel - 1
        assert padding == 0 or kernel - stride > 2 * (padding - 1)
        before = ratio
    outputs = shapes.trace(model, torch.randn(1, 1, size, size))
    for address, (ratio, _) in zip([name for name, _ in model.named_children()], ladder, strict=True):
        assert outputs[address].shape[-2:] == (size // ratio, size // ratio)


# -- models with several inputs: the one the layer's input comes from -----------------------------------


def tokens_and_image() -> fl.Graph:
    return fl.Graph(
        {"embed": fl.Embedding(100, 8), "conv": conv(8, 3, 2)},
        edges=["tokens -> embed", "image -> conv"],
        inputs=("tokens", "image"),
        outputs=("embed", "conv"),
    )


@pytest.mark.parametrize("named", [False, True])
def test_a_layer_on_the_second_input_reads_that_input_not_the_first(named: bool) -> None:
    model = tokens_and_image()
    given = {"image": (2, 3, 32, 32), "tokens": (2, 64)}  # by name, in another order than the graph's
    report = shapes.materialize(model, **given) if named else shapes.materialize(model, (2, 64), (2, 3, 32, 32))
    assert (model.conv.stride, model.conv.padding) == ((2, 2), (1, 1))
    assert report["conv"].output == dims.Shape([2, 8, 16, 16])
    symbolic = tokens_and_image()
    report = shapes.materialize(symbolic, ("B", "T"), ("B", 3, "H", "W"))
    assert report["conv"].output == dims.Shape(["B", 8, H / 2, W / 2])
    assert repr(symbolic) == repr(model)
    tokens = torch.randint(0, 100, (2, 64))
    assert model(tokens, torch.randn(2, 3, 32, 32))[1].shape == (2, 8, 16, 16)


def test_two_images_of_different_sizes_each_give_their_own_parts() -> None:
    model = fl.Graph(
        {"big1": conv(4, 3, 2), "big2": conv(4, 3, 4), "small1": conv(4, 3, 2), "small2": conv(4, 3, 4)},
        edges=["big -> big1 -> big2", "small -> small1 -> small2"],
        inputs=("big", "small"),
        outputs=("big2", "small2"),
    )
    report = shapes.materialize(model, (1, 3, 64, 64), (1, 3, 32, 32))
    assert [model[name].stride for name in ("big1", "big2", "small1", "small2")] == [(2, 2)] * 4
    assert (report["big2"].output, report["small2"].output) == (dims.Shape([1, 4, 16, 16]), dims.Shape([1, 4, 8, 8]))


def test_inputs_that_cannot_be_meant_are_left_aside_and_differing_ones_are_refused() -> None:
    conditioned = fl.Graph(
        {"stem": conv(8, 3, 2), "film": fl.FiLM(8, 4), "down": conv(8, 3, 4)},
        edges=["image -> stem -> film -> down", "style -> film"],
        inputs=("image", "style"),
    )
    shapes.materialize(conditioned, (1, 3, 32, 32), (1, 4))  # the style vector has no spatial dims
    assert conditioned.down.stride == (2, 2)
    merged = fl.Graph(
        {"big1": conv(4, 3, 2), "cat": fl.Cat(dim=1), "down": conv(4, 3, 4)},
        edges=["big -> big1 -> cat", "small -> cat -> down"],
        inputs=("big", "small"),
    )
    message = refusal_of(merged, (1, 3, 64, 64), (1, 3, 32, 32))
    assert "Conv2d at 'down'" in message
    assert (
        "its input comes from several of the model's inputs, (1, 3, 64, 64) and (1, 3, 32, 32), whose sizes at "
        "dim -2 differ" in message
    )
    assert merged.down.lazy
    same = fl.Graph(
        {"cat": fl.Cat(dim=1), "down": conv(4, 3, 2)},
        edges=["left -> cat -> down", "right -> cat"],
        inputs=("left", "right"),
    )
    shapes.materialize(same, (1, 3, 32, 32), (1, 1, 32, 32))  # both are 32: either is meant
    assert same.down.stride == (2, 2)


def refusal_of(model: torch.nn.Module, *shapes_given: tuple[Any, ...]) -> str:
    with pytest.raises(dims.ShapeError) as caught:
        shapes.materialize(model, *shapes_given)
    return str(caught.value)


# -- refusals, naming the node and the sizes ---------------------------------------------------------


def refusal(model: torch.nn.Module, *shape: Any) -> str:
    with pytest.raises(dims.ShapeError) as caught:
        shapes.materialize(model, shape)
    return str(caught.value)


def test_a_part_that_no_whole_stride_reaches_is_refused_at_materialize_naming_the_node() -> None:
    model = fl.Chain(conv(4, 3, 4), block=fl.Chain(conv(4, 3, 6)))
    message = refusal(model, "B", 3, 48, 48)
    assert "Conv2d at 'block.Conv2d'" in message
    assert "cannot produce 1/6 of the model's input (8) at dim -2 from its input, 1/4 of it (12 of 48)" in message
    assert "stride 3/2" in message
    assert model.Conv2d.lazy  # nothing changed
    assert model.block.Conv2d.lazy


def test_a_convolution_does_not_upsample() -> None:
    message = refusal(fl.Chain(conv(4, 3, 4), up=conv(4, 3, 2)), "B", 3, 32, 32)
    assert "Conv2d at 'up'" in message
    assert (
        "1/2 of the model's input (16) at dim -2 from its input, 1/4 of it (8 of 32): that takes stride 1/2" in message
    )


def test_a_model_input_that_the_ratio_does_not_divide_is_refused() -> None:
    message = refusal(fl.Chain(stem=conv(4, 7, 2)), "B", 3, 225, 224)
    assert "Conv2d at 'stem'" in message
    assert "expects a model input size divisible by 2 at dim -2, got 225" in message


def test_a_symbolic_input_is_refused_when_it_is_no_fixed_part_of_the_model_input() -> None:
    model = fl.Chain(fl.AdaptiveAvgPool2d(7), late=conv(4, 3, 32))
    message = refusal(model, "B", 3, "H", "W")
    assert "Conv2d at 'late'" in message
    assert "cannot tell what part of the model's input (H) its input size 7 at dim -2 is" in message


def test_an_even_kernel_at_stride_one_needs_a_one_sided_padding_said_how() -> None:
    message = refusal(fl.Chain(same=fl.Conv2d(3, 4, 2, model_downsample=1)), "B", 3, 8, 8)
    assert "Conv2d at 'same'" in message
    assert "no symmetric padding gives size/1 with kernel 2" in message
    assert "fl.Pad" in message
    # the explicit way: pad one side, then a convolution with its stride and padding given
    padded = fl.Chain(fl.Pad((0, 1, 0, 1)), fl.Conv2d(3, 4, 2, stride=1, padding=0))
    assert padded(torch.randn(1, 3, 8, 8)).shape == (1, 4, 8, 8)


def test_outside_inference_the_model_input_is_unknown() -> None:
    layer = conv(4, 3, 2)
    with pytest.raises(dims.ShapeError, match=r"only shape inference knows: call fluxion\.shapes\.materialize"):
        layer.output_shape(dims.Shape(["B", 3, 8, 8]))
    with pytest.raises(fl.LayerError, match=r"model_downsample=.* call fluxion\.shapes\.materialize"):
        layer(torch.randn(1, 3, 8, 8))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"downsample": 2}, "takes one of downsample, model_downsample and output_size, got downsample and model"),
        ({"output_size": 4}, "got model_downsample and output_size"),
        ({"stride": 2}, "takes either model_downsample or stride and padding"),
        ({"padding": 1}, "got model_downsample and padding"),
    ],
)
def test_model_downsample_excludes_the_other_ways_of_stating_stride(options: dict[str, Any], message: str) -> None:
    with pytest.raises(fl.LayerError, match=message):
        fl.Conv2d(3, 4, 3, model_downsample=2, **options)
    with pytest.raises(fl.LayerError, match="model_downsample as a positive int or a tuple of 2"):
        fl.Conv2d(3, 4, 3, model_downsample=(2, 0))


# -- after materialize -------------------------------------------------------------------------------


def test_a_materialized_layer_keeps_its_stride_and_runs_at_other_sizes() -> None:
    model = stem()
    shapes.materialize(model, ("B", 3, 64, 64))
    assert not any(layer.lazy for layer in model)
    report = shapes.infer(model, ("B", 3, "H", "W"))
    assert report.output == dims.Shape(["B", 16, H / 32, W / 32])
    assert model(torch.randn(1, 3, 96, 128)).shape == (1, 16, 3, 4)
    with pytest.raises(dims.ShapeError, match="downsamples by 2 and expects a size divisible by 2"):
        shapes.infer(model, ("B", 3, 65, 64))


def test_an_unmaterialized_spec_states_the_part_alone_and_finds_the_strides_when_loaded() -> None:
    written = spec.dump(stem(), inputs={"x": ["B", 3, "H", "W"]})
    assert written["children"][0] == {
        "id": "conv1",
        "type": "Conv2d",
        "out_channels": 8,
        "kernel_size": 7,
        "bias": False,
        "model_downsample": 2,
    }
    again = spec.loads(written)
    assert not any(layer.lazy for layer in again)
    assert [layer.stride for layer in again] == [(2, 2), (2, 2), (2, 2), (1, 1), (4, 4)]
    with pytest.raises(spec.SpecError, match="leaves sizes to be inferred"):
        spec.loads({key: value for key, value in written.items() if key != "inputs"})


@pytest.mark.parametrize("inputs", [None, {"x": ["B", 3, "H", "W"]}])
def test_a_materialized_spec_states_the_part_with_the_strides_found_and_loads_without_input_shapes(
    inputs: dict[str, list[Any]] | None,
) -> None:
    model = stem()
    shapes.materialize(model, ("B", 3, "H", "W"))
    written = spec.dump(model, inputs=inputs)
    first = written["children"][0]
    assert (first["stride"], first["padding"], first["model_downsample"]) == ([2, 2], [3, 3], 2)
    again = spec.loads(written)  # without input shapes as with them: nothing is left to infer
    assert repr(again) == repr(model)
    assert spec.dump(again, inputs=inputs) == written
    again.load_state_dict(model.state_dict())
    images = torch.randn(1, 3, 64, 64)
    assert torch.equal(again(images), model(images))
    with pytest.raises(dims.ShapeError, match="downsamples by 2 and expects a size divisible by 2"):
        shapes.infer(again, ("B", 3, 65, 64))  # still checked as a downsampling by the stride found


def test_the_materialized_form_takes_both_stride_and_padding() -> None:
    layer = fl.Conv2d(3, 4, 3, stride=2, padding=1, model_downsample=4)
    assert not layer.lazy
    assert repr(layer).endswith("stride=(2, 2), padding=(1, 1), model_downsample=(4, 4))")
    with pytest.raises(fl.LayerError, match="got model_downsample and stride; a layer already materialized takes"):
        fl.Conv2d(3, 4, 3, stride=2, model_downsample=4)
    with pytest.raises(fl.LayerError, match="got model_downsample and padding; a layer already materialized takes"):
        fl.MaxPool2d(3, padding=1, model_downsample=4)


# -- pools ---------------------------------------------------------------------------------------------


def test_a_pool_strides_to_its_part_of_the_model_input_as_torchvisions_stem_does() -> None:
    model = fl.Chain(conv1=conv(8, 7, 2), maxpool=fl.MaxPool2d(3, model_downsample=4))
    report = shapes.infer(model, ("B", 3, "H", "W"))
    assert report.output == dims.Shape(["B", 8, H / 4, W / 4])
    shapes.materialize(model, ("B", 3, 224, 224))
    assert (model.maxpool.stride, model.maxpool.padding) == ((2, 2), (1, 1))  # torchvision's 3x3/2, padding 1
    assert repr(model.maxpool).endswith("model_downsample=(4, 4))")
    assert model(torch.randn(1, 3, 224, 224)).shape == (1, 8, 56, 56)


@pytest.mark.parametrize(
    ("pool", "shape", "expected"),
    [
        (lambda: fl.AvgPool1d(2, model_downsample=4), (1, 2, 16), ((4,), (0,))),
        (lambda: fl.MaxPool3d(3, model_downsample=(1, 2, 2)), (1, 2, 4, 8, 8), ((1, 2, 2), (1, 1, 1))),
        (lambda: fl.AvgPool2d(2, ceil_mode=True, model_downsample=2), (1, 2, 8, 8), ((2, 2), (0, 0))),
    ],
)
def test_every_output_driven_pool_takes_a_part_of_the_model_input(
    pool: Any, shape: tuple[int, ...], expected: tuple[tuple[int, ...], tuple[int, ...]]
) -> None:
    model = fl.Chain(pool())
    shapes.materialize(model, shape)
    layer = model[0]
    assert (layer.stride, layer.padding) == expected
    output = model(torch.randn(*shape))
    ratios = layer.model_downsample
    assert output.shape[2:] == tuple(size // ratio for size, ratio in zip(shape[2:], ratios, strict=True))


def test_a_pool_refuses_what_its_padding_limit_or_the_stride_cannot_reach() -> None:
    even = refusal(fl.Chain(fl.AvgPool2d(2, model_downsample=1)), "B", 3, 8, 8)
    assert "AvgPool2d at 'AvgPool2d'" in even
    assert "no symmetric padding of at most 1 gives size/1 with kernel 2" in even
    odd = refusal(fl.Chain(conv(4, 3, 2), pool=fl.MaxPool2d(3, model_downsample=3)), "B", 3, 12, 12)
    assert "MaxPool2d at 'pool'" in odd
    assert "that takes stride 3/2" in odd
    with pytest.raises(fl.LayerError, match="got downsample and model_downsample"):
        fl.MaxPool2d(3, downsample=2, model_downsample=4)


def test_a_pools_spec_states_its_part_and_builds_the_same_stride_again() -> None:
    model = fl.Chain(conv(4, 7, 2), fl.MaxPool2d(3, model_downsample=4))
    assert spec.dump(model)["children"][1] == {"type": "MaxPool2d", "kernel_size": 3, "model_downsample": 4}
    shapes.materialize(model, ("B", 3, 32, 32))
    written = spec.dump(model)
    assert written["children"][1] == {
        "type": "MaxPool2d",
        "kernel_size": 3,
        "stride": [2, 2],
        "padding": [1, 1],
        "model_downsample": 4,
    }
    again = spec.loads(written)
    assert repr(again) == repr(model)
    assert not again[1].lazy


@pytest.mark.parametrize("ratio", [2.0, 0, -1, True, (2, 2, 2), [2], "2", "ab", b"ab", (2.0, 2), {2}])
@pytest.mark.parametrize(
    "build",
    [
        lambda ratio: fl.Conv2d(3, 4, 3, model_downsample=ratio),
        lambda ratio: fl.Conv2d(out_channels=4, kernel_size=3, model_downsample=ratio),
        lambda ratio: fl.MaxPool2d(3, model_downsample=ratio),
        lambda ratio: fl.AvgPool2d(3, model_downsample=ratio),
    ],
)
def test_a_ratio_that_is_no_positive_int_per_axis_is_a_layer_error_saying_what_it_takes(build: Any, ratio: Any) -> None:
    with pytest.raises(fl.LayerError, match=r"expects model_downsample as a positive int or a tuple of 2, got "):
        build(ratio)
