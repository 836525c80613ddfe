"""PaddingMask: a tokenizer's attention_mask turned into the boolean mask attention takes."""

import torch

import fluxion.layers as fl


def test_padding_mask_accepts_booleans_and_passes_none_on() -> None:
    booleans = torch.tensor([[True, False]])
    assert torch.equal(fl.PaddingMask()(booleans), booleans[:, None, None, :])
    assert fl.PaddingMask()(torch.tensor([[2, 0]])).dtype == torch.bool
    assert fl.PaddingMask()(None) is None
