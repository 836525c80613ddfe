"""fluxion.layers.pooling: torch's pools as tree leaves; MaxPool2d and AvgPool2d may state the output
they must produce (``downsample=``, ``output_size=``) instead of their stride and padding."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import fluxion.layers as fl
from fluxion import dims, shapes, spec

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
