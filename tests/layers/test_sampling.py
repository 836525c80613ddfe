"""Resampling leaves: Upsample, Interpolate and PixelShuffle."""

import re
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn import functional

import fluxion.layers as fl
from fluxion import dims, shapes
from fluxion.errors import LayerError, ShapeError
from tests.layers.helpers import randn


@pytest.mark.parametrize(
    ("mode", "align_corners"), [("nearest", None), ("bilinear", False), ("bilinear", True), ("bicubic", True)]
)
def test_interpolate_matches_torch(mode: str, align_corners: bool | None) -> None:
    x, skip = randn(2, 3, 4, 5), randn(2, 3, 7, 9)
    layer = fl.Interpolate(mode=mode, align_corners=align_corners)
    expected = functional.interpolate(x, size=(7, 9), mode=mode, align_corners=align_corners)
    torch.testing.assert_close(layer(x, skip.shape[-2:]), expected, rtol=0, atol=0)
    torch.testing.assert_close(layer(x, [7, 9]), expected, rtol=0, atol=0)
    # the usual U-Net use: the size comes from a skip connection, through a Chain
    model = fl.Chain(fl.Parallel(fl.Identity(), fl.Lambda(lambda _: skip.shape[-2:])), layer)
    torch.testing.assert_close(model(x), expected, rtol=0, atol=0)


# -- Upsample -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({}, "Upsample takes one of size and scale_factor, got neither"),
        ({"size": 4, "scale_factor": 2}, "Upsample takes one of size and scale_factor, got both"),
        ({"size": 0}, "Upsample: size must be at least 1, got 0"),
        ({"size": (4, -1)}, "Upsample: size must be at least 1"),
        ({"scale_factor": 0}, "Upsample: scale_factor must be a finite number above 0, got 0"),
        ({"scale_factor": (2, float("nan"))}, "Upsample: scale_factor must be a finite number above 0, got nan"),
        ({"scale_factor": float("inf")}, "Upsample: scale_factor must be a finite number above 0, got inf"),
        ({"size": 4, "recompute_scale_factor": True}, "Upsample takes no recompute_scale_factor with an explicit size"),
        ({"size": 4, "mode": "cubic"}, "Upsample: mode must be one of"),
        ({"size": 4, "align_corners": True}, "Upsample takes align_corners only in the interpolating modes"),
    ],
)
def test_upsample_refuses_arguments_no_forward_takes(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(LayerError, match=re.escape(message)):
        fl.Upsample(**arguments)


@pytest.mark.parametrize("factor", [2, 0.5, 1.5, 0.7, 1 / 3])
def test_upsample_rounds_a_number_as_torch_does(factor: float) -> None:
    for size in range(1, 20):
        layer = fl.Upsample(scale_factor=factor)
        x = torch.zeros(1, 2, size)
        try:
            expected = layer(x).shape
        except RuntimeError:  # an output of size 0
            with pytest.raises(ShapeError, match="Upsample expects output sizes above 0"):
                layer.output_shape(dims.Shape(x.shape))
            continue
        assert layer.output_shape(dims.Shape(x.shape)) == dims.Shape(expected), (factor, size)


@pytest.mark.parametrize("factor", [2, 3, 0.5, 1.5, 0.25])
def test_upsample_of_a_symbol_by_an_exact_factor_is_torchs_size_at_every_value(factor: float) -> None:
    rule = shapes.infer(fl.Upsample(scale_factor=factor), ("B", 2, "H")).output
    assert isinstance(rule, dims.Shape)
    for size in range(4, 40):
        real = fl.Upsample(scale_factor=factor)(torch.zeros(1, 2, size)).shape[-1]
        assert dims.substitute(rule[-1], {"H": size}) == real, (factor, size)


@pytest.mark.parametrize("factor", [0.7, 1 / 3, 2.2])
def test_upsample_of_a_symbol_by_an_inexact_factor_asks_for_a_number(factor: float) -> None:
    with pytest.raises(ShapeError, match=f"Upsample cannot scale the symbolic size H by {factor}: torch rounds"):
        shapes.infer(fl.Upsample(scale_factor=factor), ("B", 2, "H"))
    real = fl.Upsample(scale_factor=factor)(torch.zeros(1, 2, 10)).shape
    assert shapes.infer(fl.Upsample(scale_factor=factor), (1, 2, 10)).output == dims.Shape(real)  # a number is fine


def test_upsample_sizes_and_factors_per_dim() -> None:
    layer = fl.Upsample(size=(3, 7))
    assert layer.output_shape(dims.Shape(["B", 2, "H", "W"])) == dims.Shape(["B", 2, 3, 7])
    assert layer(torch.zeros(1, 2, 5, 5)).shape == (1, 2, 3, 7)
    per_dim = fl.Upsample(scale_factor=(2, 0.5), mode="bilinear")
    assert per_dim.output_shape(dims.Shape(["B", 2, "H", 8])) == dims.Shape(["B", 2, 2 * dims.dim("H"), 4])
    with pytest.raises(ShapeError, match=r"Upsample expects a size of 3 entries \(one per spatial dim\), got \(3, 7\)"):
        layer.output_shape(dims.Shape(["B", 2, 4, 4, 4]))


@pytest.mark.parametrize(
    ("mode", "rank"), [("linear", 4), ("bilinear", 3), ("bilinear", 5), ("bicubic", 5), ("trilinear", 4)]
)
def test_upsample_in_a_mode_for_another_rank_is_refused_by_forward_and_rule(mode: str, rank: int) -> None:
    layer = fl.Upsample(scale_factor=2, mode=mode)
    with pytest.raises((NotImplementedError, ValueError, RuntimeError)):
        layer(torch.zeros((1, 2, *(3,) * (rank - 2))))
    with pytest.raises(ShapeError, match=f"Upsample with mode '{mode}' expects a .*D input"):
        layer.output_shape(dims.Shape(["B", 2, *(["H"] * (rank - 2))]))


# -- Interpolate ----------------------------------------------------------------------------------


def test_interpolate_takes_its_size_as_a_second_shape() -> None:
    report = shapes.infer(fl.Interpolate(mode="bilinear"), ("B", 2, "H", "W"), ("H2", 7))
    assert report.output == dims.Shape(["B", 2, "H2", 7])
    assert repr(fl.Interpolate(mode="bilinear")) == "Interpolate(mode='bilinear')"


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ((dims.Shape(["B", 2, "H", "W"]),), r"Interpolate takes a tensor and a size, got \(B, 2, H, W\)"),
        ((), "Interpolate takes a tensor and a size, got nothing"),
        (
            (dims.Shape(["B", 2, "H", "W"]), None),
            "Interpolate expects its size as a Shape of the target sizes, got None",
        ),
        (
            (dims.Shape(["B", 2, "H", "W"]), dims.Shape([4, 4, 4])),
            r"Interpolate expects a size of 2 entries \(one per spatial dim\), got \(4, 4, 4\)",
        ),
        ((dims.Shape(["B", 2, "H", "W"]), dims.Shape([4, 0])), r"Interpolate expects output sizes above 0"),
        ((dims.Shape(["B", 0, "H", "W"]), dims.Shape([4, 4])), r"expects non-empty channel and spatial dims"),
    ],
)
def test_interpolate_rule_refuses_what_it_cannot_read(inputs: tuple[Any, ...], message: str) -> None:
    with pytest.raises(ShapeError, match=message):
        fl.Interpolate().output_shape(*inputs)


def test_interpolate_refuses_its_options_when_built() -> None:
    with pytest.raises(LayerError, match="Interpolate: mode must be one of"):
        fl.Interpolate(mode="lanczos")
    with pytest.raises(LayerError, match="Interpolate takes align_corners only in the interpolating modes"):
        fl.Interpolate(mode="area", align_corners=False)


# -- PixelShuffle ---------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    factor=st.integers(1, 3),
    batch=st.lists(st.integers(1, 2), max_size=2),
    channels=st.integers(1, 3),
    height=st.integers(1, 4),
    width=st.integers(1, 4),
)
def test_pixel_shuffle_rule_gives_the_shape_forward_gives(
    factor: int, batch: list[int], channels: int, height: int, width: int
) -> None:
    x = torch.randn(*batch, channels * factor * factor, height, width)
    out = fl.PixelShuffle(factor)(x)
    assert shapes.infer(fl.PixelShuffle(factor), tuple(x.shape)).output == dims.Shape(out.shape)
    assert out.shape == (*batch, channels, height * factor, width * factor)
    torch.testing.assert_close(fl.PixelShuffle(factor)(x), functional.pixel_shuffle(x, factor), rtol=0, atol=0)


def test_pixel_shuffle_records_that_symbolic_channels_divide_and_refuses_numbers_that_do_not() -> None:
    report = shapes.infer(fl.Chain(fl.PixelShuffle(2)), ("B", "C", "H", "W"))
    assert report.output == dims.Shape(["B", dims.dim("C") / 4, 2 * dims.dim("H"), 2 * dims.dim("W")])
    assert [str(constraint).split(" (")[0] for constraint in report.constraints] == ["C must be divisible by 4"]
    with pytest.raises(ShapeError, match="PixelShuffle expects channels at dim -3 divisible by 9"):
        shapes.infer(fl.PixelShuffle(3), ("B", 12, "H", "W"))
    with pytest.raises(RuntimeError):
        fl.PixelShuffle(3)(torch.zeros(1, 12, 2, 2))
    with pytest.raises(ShapeError, match=r"PixelShuffle expects an input of at least 3 dims \(\*, C, H, W\)"):
        fl.PixelShuffle(2).output_shape(dims.Shape([4, 4]))
    with pytest.raises(LayerError, match="PixelShuffle: upscale_factor must be at least 1, got 0"):
        fl.PixelShuffle(0)
