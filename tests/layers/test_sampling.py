"""Resampling leaves: Upsample, Interpolate and PixelShuffle."""

import pytest
import torch
from torch.nn import functional

import fluxion.layers as fl
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
