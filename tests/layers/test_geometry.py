"""fluxion.layers.geometry: the stride and padding a window layer needs for the output it must produce,
checked against what torch's layers really give."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn import functional

from fluxion import dims
from fluxion.errors import LayerError, ShapeError
from fluxion.layers import geometry

EXAMPLES = settings(max_examples=150, deadline=None, derandomize=True, database=None)


@EXAMPLES
@given(
    size=st.integers(1, 12),
    kernel=st.integers(1, 4),
    stride=st.integers(1, 3),
    dilation=st.integers(1, 2),
    ceil_mode=st.booleans(),
    data=st.data(),
)
def test_window_count_is_what_torchs_pool_gives(
    size: int, kernel: int, stride: int, dilation: int, ceil_mode: bool, data: st.DataObject
) -> None:
    padding = data.draw(st.integers(0, kernel // 2))
    if dilation * (kernel - 1) + 1 > size + 2 * padding:
        return  # no window fits: torch refuses
    pooled = functional.max_pool1d(torch.zeros(1, 1, size), kernel, stride, padding, dilation, ceil_mode=ceil_mode)
    assert geometry.window_count(size, kernel, stride, padding, dilation, ceil_mode=ceil_mode) == pooled.shape[-1]


@EXAMPLES
@given(ratio=st.integers(1, 4), kernel=st.integers(1, 7), dilation=st.integers(1, 2), multiple=st.integers(1, 5))
def test_the_downsample_padding_divides_every_multiple_of_the_ratio(
    ratio: int, kernel: int, dilation: int, multiple: int
) -> None:
    padding = geometry.downsample_padding(ratio, kernel, dilation)
    if padding is None:
        # no padding up to the window's span gives size / ratio: then not even the ratio itself does
        assert all(
            geometry.window_count(ratio, kernel, ratio, p, dilation) != 1 for p in range(dilation * (kernel - 1) + 1)
        )
        return
    size = ratio * multiple
    convolved = functional.conv1d(torch.zeros(1, 1, size), torch.zeros(1, 1, kernel), None, ratio, padding, dilation)
    assert convolved.shape[-1] == multiple


@EXAMPLES
@given(size=st.integers(1, 16), output=st.integers(1, 16), kernel=st.integers(1, 4))
def test_stride_and_padding_give_the_output_or_none_do(size: int, output: int, kernel: int) -> None:
    found = geometry.stride_and_padding(size, output, kernel)
    if found is None:
        assert all(
            geometry.window_count(size, kernel, stride, padding) != output
            for stride in range(1, size + 1)
            for padding in range(kernel)
        )
        return
    stride, padding = found
    convolved = functional.conv1d(torch.zeros(1, 1, size), torch.zeros(1, 1, kernel), None, stride, padding)
    assert convolved.shape[-1] == output


def test_targets_take_a_ratio_or_an_output_never_both_nor_with_stride() -> None:
    assert geometry.targets("Conv1d", 1, None, 4, given=()) == (None, (4,))
    with pytest.raises(
        LayerError, match="one of downsample, model_downsample and output_size, got downsample and output_size"
    ):
        geometry.targets("Conv1d", 1, 2, 4, given=())
    with pytest.raises(LayerError, match="output_size or stride and padding"):
        geometry.targets("Conv1d", 1, None, 4, given=("padding",))
    with pytest.raises(ShapeError, match="needs a concrete input size"):
        geometry.output_geometry("Conv1d", dims.dim("T"), 4, kernel=3, dilation=1, where=-1)
