"""fluxion.layers.conv: Conv1d, Conv2d and Conv3d, one base over the number of spatial dims, each a
typed constructor on torch's layer; and ConvTranspose2d.

Whatever the number of dims: torch's state_dict keys and outputs, a rule that matches the forward,
``in_channels`` inferred, ``downsample=`` and ``output_size=`` met, a spec that loads back the same
tree, and each constructor's own signature (a spec checks its arguments against it).
"""

from __future__ import annotations

import inspect
import typing
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import fluxion.layers as fl
from fluxion import dims, shapes, spec
from fluxion.spec.arguments import arguments_in
from tests.layers.helpers import build_pair, randn

CONVOLUTIONS: list[Any] = [
    pytest.param(fl.Conv1d, nn.Conv1d, 1, id="Conv1d"),
    pytest.param(fl.Conv2d, nn.Conv2d, 2, id="Conv2d"),
    pytest.param(fl.Conv3d, nn.Conv3d, 3, id="Conv3d"),
]
SIZE_TYPES = {1: int | tuple[int], 2: int | tuple[int, int], 3: int | tuple[int, int, int]}


@pytest.mark.parametrize(("layer", "reference", "spatial"), CONVOLUTIONS)
def test_each_constructor_keeps_its_signature_with_sizes_typed_by_its_dims(
    layer: type[torch.nn.Module], reference: type[torch.nn.Module], spatial: int
) -> None:
    parameters = inspect.signature(layer).parameters
    assert list(parameters) == [
        *inspect.signature(reference).parameters,  # torch's, in torch's order
        "downsample",
        "output_size",
        "model_downsample",
    ]
    assert parameters["downsample"].kind is inspect.Parameter.KEYWORD_ONLY
    assert parameters["model_downsample"].kind is inspect.Parameter.KEYWORD_ONLY
    hints = typing.get_type_hints(layer.__init__)
    size = SIZE_TYPES[spatial]
    assert hints["kernel_size"] == size | None
    assert hints["dilation"] == size
    assert hints["padding"] == str | size | None
    assert hints["output_size"] == size | None
    assert hints["model_downsample"] == size | None
    given = [3] * spatial
    assert arguments_in(layer, {"out_channels": 2, "kernel_size": given}, []) == {
        "out_channels": 2,
        "kernel_size": tuple(given),
    }
    with pytest.raises(spec.SpecError, match=f"kernel_size: expected an int, a list of {spatial}"):
        arguments_in(layer, {"out_channels": 2, "kernel_size": [3] * (spatial + 1)}, [])


@pytest.mark.parametrize(("layer", "reference", "spatial"), CONVOLUTIONS)
def test_state_dict_keys_and_outputs_are_torchs(
    layer: type[torch.nn.Module], reference: type[torch.nn.Module], spatial: int
) -> None:
    ours, theirs = build_pair(layer, reference, (4, 6, 3), {"stride": 2, "padding": 1, "groups": 2})
    assert list(ours.state_dict()) == list(theirs.state_dict()) == ["weight", "bias"]
    x = randn(2, 4, *[7] * spatial)
    torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(
    spatial=st.integers(1, 3),
    kernel=st.integers(1, 3),
    stride=st.integers(1, 3),
    padding=st.integers(0, 2),
    dilation=st.integers(1, 2),
    groups=st.sampled_from([1, 2]),
    mode=st.sampled_from(["zeros", "reflect", "replicate", "circular"]),
    batched=st.booleans(),
    sizes=st.lists(st.integers(3, 7), min_size=3, max_size=3),
)
def test_the_rule_is_the_forwards_shape_in_every_number_of_dims(
    spatial: int,
    kernel: int,
    stride: int,
    padding: int,
    dilation: int,
    groups: int,
    mode: str,
    batched: bool,
    sizes: list[int],
) -> None:
    layer = {1: fl.Conv1d, 2: fl.Conv2d, 3: fl.Conv3d}[spatial](
        2, 4, kernel, stride=stride, padding=padding, dilation=dilation, groups=groups, padding_mode=mode
    )
    shape = (*([2] if batched else []), 2, *sizes[:spatial])
    try:
        expected = tuple(layer(torch.zeros(shape)).shape)
    except RuntimeError:  # torch refuses it (the window outgrows the padded size, a padding above the size...)
        with pytest.raises(shapes.ShapeError):
            dims.run(layer, dims.Shape(shape))
        return
    assert tuple(dims.run(layer, dims.Shape(shape))) == expected


@pytest.mark.parametrize(("layer", "reference", "spatial"), CONVOLUTIONS)
def test_in_channels_left_out_is_inferred_into_the_eager_layer(
    layer: type[torch.nn.Module], reference: type[torch.nn.Module], spatial: int
) -> None:
    lazy, eager = layer(out_channels=4, kernel_size=3, groups=2), layer(6, 4, 3, groups=2)
    assert lazy.missing == ("in_channels",)
    report = shapes.infer(fl.Chain(lazy), ("B", 6, *["S"] * spatial))
    assert repr(report.output) == f"(B, 4, {', '.join(['S - 2'] * spatial)})"
    shapes.materialize(lazy, (2, 6, *[5] * spatial))
    assert repr(lazy) == repr(eager)
    assert [(name, p.shape) for name, p in lazy.named_parameters()] == [
        (name, p.shape) for name, p in eager.named_parameters()
    ]


@pytest.mark.parametrize(("layer", "reference", "spatial"), CONVOLUTIONS)
def test_downsample_halves_every_even_size_in_every_number_of_dims(
    layer: type[torch.nn.Module], reference: type[torch.nn.Module], spatial: int
) -> None:
    conv = layer(2, 3, kernel_size=3, downsample=2)
    assert (conv.stride, conv.padding, conv.downsample) == ((2,) * spatial, (1,) * spatial, (2,) * spatial)
    for size in (2, 4, 6, 8):
        assert conv(torch.zeros(1, 2, *[size] * spatial)).shape[2:] == (size // 2,) * spatial
    with pytest.raises(shapes.ShapeError, match=f"expects a size divisible by 2 at dim {-spatial}, got 5"):
        dims.run(conv, dims.Shape([1, 2, *[5] * spatial]))


@pytest.mark.parametrize(("layer", "reference", "spatial"), CONVOLUTIONS)
def test_output_size_is_met_once_materialized(
    layer: type[torch.nn.Module], reference: type[torch.nn.Module], spatial: int
) -> None:
    conv = layer(2, 3, kernel_size=3, output_size=4)
    assert conv.missing == ("stride", "padding")
    shapes.materialize(conv, (1, 2, *[8] * spatial))
    assert (conv.stride, conv.padding) == ((2,) * spatial, (1,) * spatial)
    assert conv(torch.zeros(1, 2, *[8] * spatial)).shape[2:] == (4,) * spatial


@pytest.mark.parametrize(("layer", "reference", "spatial"), CONVOLUTIONS)
def test_a_spec_loads_back_into_the_same_tree(
    layer: type[torch.nn.Module], reference: type[torch.nn.Module], spatial: int
) -> None:
    model = fl.Chain(
        layer(out_channels=4, kernel_size=3, padding="same", padding_mode="reflect"),
        layer(4, 8, kernel_size=3, downsample=2, bias=False),
        layer(8, 2, kernel_size=1, output_size=2),
    )
    shapes.materialize(model, (1, 3, *[8] * spatial))
    written = spec.dump(model, inputs={"x": [1, 3, *[8] * spatial]})
    assert [node["type"] for node in written["children"]] == [layer.__name__] * 3
    loaded = spec.loads(written)
    assert repr(loaded) == repr(model)
    assert list(loaded.state_dict()) == list(model.state_dict())
    loaded.load_state_dict(model.state_dict())
    x = randn(1, 3, *[8] * spatial)
    torch.testing.assert_close(loaded(x), model(x), rtol=0, atol=0)


def test_conv_transpose_output_size_matches_torch() -> None:
    ours, reference = build_pair(fl.ConvTranspose2d, nn.ConvTranspose2d, (4, 3, 3), {"stride": 2, "padding": 1})
    x = randn(1, 4, 5, 5)
    for size in ([9, 9], [10, 10], [9, 10]):
        out = ours(x, size)
        assert out.shape[-2:] == tuple(size)
        torch.testing.assert_close(out, reference(x, size), rtol=0, atol=0)
