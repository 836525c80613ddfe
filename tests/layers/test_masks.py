"""PaddingMask: a tokenizer's attention_mask turned into the boolean mask attention takes."""

from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import fluxion.layers as fl
from fluxion import dims, shapes
from fluxion.errors import ShapeError


def test_padding_mask_accepts_booleans_and_passes_none_on() -> None:
    booleans = torch.tensor([[True, False]])
    assert torch.equal(fl.PaddingMask()(booleans), booleans[:, None, None, :])
    assert fl.PaddingMask()(torch.tensor([[2, 0]])).dtype == torch.bool
    assert fl.PaddingMask()(None) is None


@settings(max_examples=25, deadline=None)
@given(batch=st.lists(st.integers(0, 3), max_size=3), keys=st.integers(0, 5))
def test_the_rule_gives_the_shape_forward_gives(batch: list[int], keys: int) -> None:
    mask = torch.randint(0, 2, (*batch, keys))
    out = fl.PaddingMask()(mask)
    assert out.shape == (*batch, 1, 1, keys)
    assert shapes.infer(fl.PaddingMask(), (*batch, keys)).output == dims.Shape(out.shape)


def test_the_rule_keeps_symbols_and_gives_nothing_for_nothing() -> None:
    assert fl.PaddingMask().output_shape(dims.Shape(["B", "T"])) == dims.Shape(["B", 1, 1, "T"])
    assert fl.PaddingMask().output_shape(dims.Shape(["T"])) == dims.Shape([1, 1, "T"])
    assert fl.PaddingMask().output_shape(None) is None


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ((), r"PaddingMask expects one input \(the padding mask\), got 0"),
        (
            (dims.Shape(["B", "T"]), dims.Shape(["B", "T"])),
            r"PaddingMask expects one input \(the padding mask\), got 2",
        ),
        ((dims.Shape([]),), r"PaddingMask expects a mask of rank 1 or more \(..., keys\), got \(\)"),
        (((dims.Shape(["B"]), dims.Shape(["T"])),), "PaddingMask expects a mask of rank 1 or more"),
    ],
)
def test_the_rule_refuses_anything_but_one_mask(inputs: tuple[Any, ...], message: str) -> None:
    with pytest.raises(ShapeError, match=message):
        fl.PaddingMask().output_shape(*inputs)


def test_any_nonzero_value_is_a_token_and_every_query_sees_the_same_keys() -> None:
    mask = fl.PaddingMask()(torch.tensor([[3, -1, 0, 0], [0, 1, 1, 0]]))
    assert mask.dtype == torch.bool
    assert mask[:, 0, 0].tolist() == [[True, True, False, False], [False, True, True, False]]
    scores = torch.zeros(2, 3, 5, 4)  # (batch, heads, queries, keys): the mask broadcasts to it
    assert torch.equal(mask.expand_as(scores)[:, 2, 4], mask[:, 0, 0])


def test_attention_under_the_mask_ignores_what_the_padding_holds() -> None:
    attention = fl.ScaledDotProductAttention(num_heads=2)
    generator = torch.Generator().manual_seed(0)
    query, key, value = (torch.randn(2, 5, 8, generator=generator) for _ in range(3))
    lengths = torch.tensor([3, 5])
    mask = fl.PaddingMask()(torch.arange(5) < lengths[:, None])
    changed_key, changed_value = key.clone(), value.clone()
    changed_key[0, 3:] = 100.0
    changed_value[0, 3:] = -100.0
    torch.testing.assert_close(attention(query, key, value, mask), attention(query, changed_key, changed_value, mask))
    assert not torch.allclose(attention(query, key, value), attention(query, changed_key, changed_value))
