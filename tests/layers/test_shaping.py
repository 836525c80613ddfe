"""Leaves that change a tensor's shape and not its values: what they compute, and their shape rules."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor

import fluxion.layers as fl
from tests.layers.helpers import randn

BOUNDS = [None, 0, 1, 3, 5, 6, 7, 100, -1, -3, -6, -7, -100]


def slice_reference(x: Tensor, dim: int, start: int | None, end: int | None, step: int) -> Tensor:
    """Python's own slice semantics, computed by slicing a list of indices."""
    size = x.shape[dim]
    kept = list(range(size))[start:end:step]
    return torch.index_select(x, dim, torch.tensor(kept, dtype=torch.long))


@pytest.mark.parametrize("step", [1, 2, 3, 7])
@pytest.mark.parametrize("start", BOUNDS)
def test_slicing_matches_python_slicing(start: int | None, step: int) -> None:
    x = torch.arange(2 * 6 * 3).reshape(2, 6, 3)
    for end in BOUNDS:
        layer = fl.Slicing(dim=1, start=start, end=end, step=step)
        out = layer(x)
        expected = x[:, start:end:step]
        assert out.shape == expected.shape, (start, end, step)
        assert torch.equal(out, expected), (start, end, step)
        assert torch.equal(out, slice_reference(x, 1, start, end, step)), (start, end, step)


@settings(derandomize=True, max_examples=300, deadline=None, database=None)
@given(
    shape=st.lists(st.integers(0, 6), min_size=1, max_size=4),
    data=st.data(),
    start=st.none() | st.integers(-10, 10),
    end=st.none() | st.integers(-10, 10),
    step=st.integers(1, 8),
)
def test_slicing_matches_python_slicing_property(
    shape: list[int], data: st.DataObject, start: int | None, end: int | None, step: int
) -> None:
    rank = len(shape)
    dim = data.draw(st.integers(-rank, rank - 1), label="dim")
    x = torch.arange(math.prod(shape)).reshape(shape)
    out = fl.Slicing(dim=dim, start=start, end=end, step=step)(x)
    positive = dim % rank
    expected = x[(slice(None),) * positive + (slice(start, end, step),)]
    assert out.shape == expected.shape
    assert torch.equal(out, expected)
    assert torch.equal(out, slice_reference(x, dim, start, end, step))


def test_slicing_defaults_take_everything_along_dim_0() -> None:
    x = randn(4, 3)
    assert torch.equal(fl.Slicing()(x), x)
    assert torch.equal(fl.Slicing(start=1)(x), x[1:])


@pytest.mark.parametrize("step", [0, -1])
def test_slicing_rejects_non_positive_steps(step: int) -> None:
    with pytest.raises(fl.LayerError, match="step"):
        fl.Slicing(dim=0, step=step)
