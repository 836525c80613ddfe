"""fluxion.layers.pooling: torch's pools as tree leaves, over 1, 2 or 3 spatial dims (adaptive ones over 1
or 2); the max and average pools may state the output they must produce (``downsample=``,
``output_size=``) instead of their stride and padding."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import fluxion.layers as fl
from fluxion import dims, shapes, spec
from tests.shapes.helpers import evaluate

POOLS: list[Any] = [
    pytest.param(fl.MaxPool2d, nn.MaxPool2d, id="MaxPool2d"),
    pytest.param(fl.AvgPool2d, nn.AvgPool2d, id="AvgPool2d"),
]


@pytest.mark.parametrize(("pool", "reference"), POOLS)
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_a_pool_gives_what_torchs_gives(pool: Any, reference: Any, ceil_mode: bool) -> None:
    x = torch.randn(2, 3, 9, 7)
    ours, theirs = pool(3, stride=2, padding=1, ceil_mode=ceil_mode), reference(3, 2, 1, ceil_mode=ceil_mode)
    assert torch.equal(ours(x), theirs(x))
    assert tuple(dims.run(ours, dims.Shape(x.shape))) == tuple(theirs(x).shape)


@pytest.mark.parametrize(("pool", "reference"), POOLS)
def test_an_output_size_leaves_the_pool_lazy_until_materialized_and_a_spec_states_only_that(
    pool: Any, reference: Any
) -> None:
    model = fl.Chain(pool(3, output_size=(7, 4)))
    layer = model[0]
    assert layer.lazy
    assert layer.missing == ("stride", "padding")
    shapes.materialize(model, (1, 2, 14, 16))
    assert not layer.lazy
    assert model(torch.zeros(1, 2, 14, 16)).shape == (1, 2, 7, 4)
    written = spec.dump(model, inputs={"x": [1, 2, 14, 16]})
    assert "stride" not in written["children"][0]
    assert written["children"][0]["output_size"] == [7, 4]
    assert repr(spec.loads(written)) == repr(model)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: fl.AvgPool2d(2, divisor_override=0), "divisor_override must not be 0"),
        (lambda: fl.MaxPool2d(2, padding=2), "padding must be at most half the kernel size"),
        (lambda: fl.MaxPool2d(3, stride=2, downsample=2), "either downsample or stride and padding"),
        (lambda: fl.AdaptiveAvgPool2d((1, 2, 3)), "output_size must be an int or a tuple of 2"),
    ],
)
def test_bad_arguments_are_refused_when_built(build: Any, message: str) -> None:
    with pytest.raises(fl.LayerError, match=message):
        build()


def test_adaptive_pool_keeps_the_sizes_it_is_given_none_for() -> None:
    pool = fl.AdaptiveAvgPool2d((None, 3))
    assert pool(torch.zeros(1, 2, 5, 9)).shape == (1, 2, 5, 3)
    assert dims.run(pool, dims.Shape(["B", 2, "H", "W"])) == dims.Shape(["B", 2, "H", 3])


# -- every pool over its dims ---------------------------------------------------------------------------

WINDOWED: list[Any] = [
    pytest.param(fl.MaxPool1d, nn.MaxPool1d, 1, id="MaxPool1d"),
    pytest.param(fl.MaxPool2d, nn.MaxPool2d, 2, id="MaxPool2d"),
    pytest.param(fl.MaxPool3d, nn.MaxPool3d, 3, id="MaxPool3d"),
    pytest.param(fl.AvgPool1d, nn.AvgPool1d, 1, id="AvgPool1d"),
    pytest.param(fl.AvgPool2d, nn.AvgPool2d, 2, id="AvgPool2d"),
    pytest.param(fl.AvgPool3d, nn.AvgPool3d, 3, id="AvgPool3d"),
]


def torch_shape(layer: nn.Module, shape: tuple[int, ...]) -> Any:
    """The forward's output shape (a pair of them with indices), or None when torch refuses the input."""
    try:
        out = layer(torch.randn(shape))
    except (RuntimeError, ValueError, IndexError):
        return None
    return (tuple(out[0].shape), tuple(out[1].shape)) if isinstance(out, tuple) else tuple(out.shape)


def rule_shape(layer: nn.Module, shape: tuple[Any, ...], at: dict[str, int]) -> Any:
    """The rule's output shape for ``shape`` (sizes may be symbols) evaluated ``at``, or None when it refuses."""
    try:
        return evaluate(shapes.infer(fl.Chain(copy.deepcopy(layer)), shape).output, at)
    except shapes.ShapeError:
        return None


@pytest.mark.parametrize(("pool", "reference", "spatial"), WINDOWED)
@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_a_pools_rule_is_torchs_for_numbers_and_for_a_symbol_at_any_value(
    pool: Any, reference: Any, spatial: int, data: st.DataObject
) -> None:
    """Values and shapes equal torch's; a size written as a symbol evaluates to torch's size at every value
    where torch runs (ceil_mode, padding, dilation and strides included)."""
    kernel = data.draw(st.integers(1, 4), label="kernel")
    options: dict[str, Any] = {
        "stride": data.draw(st.integers(1, 4), label="stride"),
        "padding": data.draw(st.integers(0, kernel // 2), label="padding"),
        "ceil_mode": data.draw(st.booleans(), label="ceil_mode"),
    }
    if pool in (fl.MaxPool1d, fl.MaxPool2d, fl.MaxPool3d):
        options["dilation"] = data.draw(st.integers(1, 2), label="dilation")
        options["return_indices"] = data.draw(st.booleans(), label="return_indices")
    ours, theirs = pool(kernel, **options), reference(kernel, **options)
    batch = data.draw(st.sampled_from([(), (2,)]), label="batch")
    sizes = data.draw(st.lists(st.integers(1, 9), min_size=spatial, max_size=spatial), label="sizes")
    shape = (*batch, 2, *sizes)
    expected = torch_shape(theirs, shape)
    assert rule_shape(ours, shape, {}) == expected
    if expected is not None:
        x = torch.randn(shape)
        assert all(
            torch.equal(a, b)
            for a, b in zip(*[(y if isinstance(y, tuple) else (y,)) for y in (ours(x), theirs(x))], strict=True)
        )
    try:
        symbolic: Any = shapes.infer(fl.Chain(copy.deepcopy(ours)), (*batch, 2, "S", *sizes[1:])).output
    except shapes.ShapeError:
        symbolic = None  # refused for every value of S
    for value in range(1, 13):
        at_value = torch_shape(theirs, (*batch, 2, value, *sizes[1:]))
        if at_value is not None:
            assert symbolic is not None, f"refused for S, torch runs S={value}"
            assert evaluate(symbolic, {"S": value}) == at_value, f"S={value}"


@pytest.mark.parametrize(("pool", "reference", "spatial"), WINDOWED)
@pytest.mark.parametrize("ratio", [1, 2, 4])
def test_every_pool_downsamples_by_a_ratio_or_meets_an_output_size_over_its_dims(
    pool: Any, reference: Any, spatial: int, ratio: int
) -> None:
    halving = pool(3, downsample=ratio)
    shape = (2, 3, *(8 * ratio,) * spatial)
    assert halving(torch.zeros(shape)).shape == (2, 3, *(8,) * spatial)
    symbolic = dims.run(halving, dims.Shape(["B", 3, *("S",) * spatial]))
    for multiple in (1, 2, 5):  # every size the ratio divides becomes size / ratio
        assert evaluate(symbolic, {"B": 2, "S": ratio * multiple}) == (2, 3, *(multiple,) * spatial)
    model = fl.Chain(pool(3, output_size=4))
    shapes.materialize(model, shape)
    assert model(torch.zeros(shape)).shape == (2, 3, *(4,) * spatial)
    assert repr(spec.loads(spec.dump(model, inputs={"x": list(shape)}))) == repr(model)


def test_avg_pool_3d_wants_a_whole_window_without_padding_as_torch_does() -> None:
    pool = fl.AvgPool3d(3, stride=1, padding=1)
    with pytest.raises(RuntimeError, match="smaller than kernel size"):
        nn.AvgPool3d(3, stride=1, padding=1)(torch.zeros(1, 1, 2, 4, 4))
    with pytest.raises(shapes.ShapeError, match="expects an input size of at least its kernel size 3 at dim -3, got 2"):
        shapes.infer(pool, (1, 1, 2, 4, 4))
    assert shapes.infer(pool, ("B", 1, "D", 4, 4)).output == dims.Shape(["B", 1, "D", 4, 4])
    assert fl.MaxPool3d(3, stride=1, padding=1)(torch.zeros(1, 1, 2, 4, 4)).shape == (1, 1, 2, 4, 4)  # max does not


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: fl.MaxPool1d((2, 2)), r"MaxPool1d: kernel_size must be an int or a tuple of 1, got \(2, 2\)"),
        (lambda: fl.MaxPool3d((2, 2)), r"MaxPool3d: kernel_size must be an int or a tuple of 1 or 3, got \(2, 2\)"),
        (lambda: fl.AvgPool3d(2, stride=(1, 0, 1)), "AvgPool3d: stride must be at least 1"),
        (lambda: fl.AvgPool1d(3, padding=2), "AvgPool1d: padding must be at most half the kernel size"),
        (lambda: fl.MaxPool3d(2, dilation=0), "MaxPool3d: dilation must be at least 1"),
        (lambda: fl.AvgPool3d(2, divisor_override=0), "divisor_override must not be 0"),
        (lambda: fl.MaxPool1d(3, downsample=(2, 2)), "MaxPool1d expects downsample as a positive int or a tuple of 1"),
        (lambda: fl.AdaptiveAvgPool1d(-1), "AdaptiveAvgPool1d: output_size must be an int or a tuple of 1, at least 0"),
        (lambda: fl.AdaptiveAvgPool1d((None,)), "AdaptiveAvgPool1d: output_size must be an int or a tuple of 1"),
        (lambda: fl.AdaptiveMaxPool1d((2, 2)), "AdaptiveMaxPool1d: output_size must be an int or a tuple of 1"),
        (lambda: fl.AdaptiveMaxPool2d((2,)), "AdaptiveMaxPool2d: output_size must be an int or a tuple of 2"),
        (lambda: fl.AdaptiveMaxPool2d((1, -1)), "AdaptiveMaxPool2d: output_size must be an int or a tuple of 2"),
        (lambda: fl.AdaptiveMaxPool2d(True), "AdaptiveMaxPool2d: output_size must be an int or a tuple of 2"),
    ],
)
def test_arguments_no_forward_takes_are_refused_when_built(build: Any, message: str) -> None:
    with pytest.raises(fl.LayerError, match=message):
        build()


# -- adaptive pools -------------------------------------------------------------------------------------

ADAPTIVE: list[Any] = [
    pytest.param(fl.AdaptiveAvgPool1d, nn.AdaptiveAvgPool1d, 1, id="AdaptiveAvgPool1d"),
    pytest.param(fl.AdaptiveAvgPool2d, nn.AdaptiveAvgPool2d, 2, id="AdaptiveAvgPool2d"),
    pytest.param(fl.AdaptiveMaxPool1d, nn.AdaptiveMaxPool1d, 1, id="AdaptiveMaxPool1d"),
    pytest.param(fl.AdaptiveMaxPool2d, nn.AdaptiveMaxPool2d, 2, id="AdaptiveMaxPool2d"),
]


@pytest.mark.parametrize(("pool", "reference", "spatial"), ADAPTIVE)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_an_adaptive_pools_rule_is_torchs_including_empty_dims(
    pool: Any, reference: Any, spatial: int, data: st.DataObject
) -> None:
    """Any output size from 0, None keeping a size (2d), inputs of any rank with empty dims among them:
    the rule refuses exactly what torch refuses (an average to all ones is a mean, which takes empty
    dims, and over 2 dims any rank that has them; a max pool refuses empty channels only when
    batched), and otherwise gives torch's shape."""
    target = st.integers(0, 4) | (st.none() if spatial > 1 else st.nothing())
    output_size = data.draw(st.integers(0, 4) | st.lists(target, min_size=spatial, max_size=spatial).map(tuple))
    options = {"return_indices": data.draw(st.booleans())} if "Max" in pool.__name__ else {}
    ours, theirs = pool(output_size, **options), reference(output_size, **options)
    rank = data.draw(st.sampled_from([spatial + 1, spatial + 2, spatial, spatial + 3, 1]))
    shape = tuple(data.draw(st.lists(st.sampled_from([3, 1, 5, 0]), min_size=rank, max_size=rank)))
    expected = torch_shape(theirs, shape)
    assert rule_shape(ours, shape, {}) == expected, shape
    if expected is not None and 0 not in shape:
        x = torch.randn(shape)
        ours_out, theirs_out = ours(x), theirs(x)
        pairs = zip(ours_out, theirs_out, strict=True) if isinstance(ours_out, tuple) else [(ours_out, theirs_out)]
        assert all(torch.equal(a, b) for a, b in pairs)
    symbolic = (*shape[:-1], "S")
    if rank in (spatial + 1, spatial + 2) and 0 not in shape:
        for value in (1, 4, 7):
            at_value = torch_shape(theirs, (*shape[:-1], value))
            assert rule_shape(ours, symbolic, {"S": value}) == at_value
