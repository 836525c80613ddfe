"""fluxion.layers.embedding: token ids to vectors (``Embedding``, torch's), learned positions and token
types added to them, and trailing inputs that may be left out."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

import fluxion.layers as fl
from fluxion import dims, shapes, spec
from fluxion.layers import embedding
from fluxion.spec.registry import lookup
from tests.layers.helpers import build_pair


def test_embedding_lives_with_the_other_embeddings_under_its_name() -> None:
    assert fl.Embedding is embedding.Embedding
    assert fl.Embedding.__module__ == "fluxion.layers.embedding"
    assert lookup("Embedding") is fl.Embedding
    model = fl.Chain(fl.Embedding(10, 4, padding_idx=0), fl.SequencePositionEmbedding(8, 4))
    written = spec.dump(model)
    assert [node["type"] for node in written["children"]] == ["Embedding", "SequencePositionEmbedding"]
    assert repr(spec.loads(written)) == repr(model)


def test_embedding_keys_and_lookups_are_torchs() -> None:
    ours, reference = build_pair(fl.Embedding, nn.Embedding, (10, 4), {"padding_idx": 0})
    indices = torch.tensor([[0, 3, 9], [1, 1, 2]])
    assert list(ours.state_dict()) == list(reference.state_dict()) == ["weight"]
    torch.testing.assert_close(ours(indices), reference(indices), rtol=0, atol=0)
    assert tuple(dims.run(ours, dims.Shape(["B", "T"]))) == tuple(dims.Shape(["B", "T", 4]))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"num_embeddings": 4, "embedding_dim": 2, "padding_idx": 4}, "padding_idx must index one of the 4"),
        ({"num_embeddings": -1, "embedding_dim": 2}, "num_embeddings"),
        (
            {"num_embeddings": 4, "embedding_dim": 0, "max_norm": 1.0, "norm_type": -1.0},
            "use a norm_type of at least 0",
        ),
    ],
)
def test_embedding_refuses_what_torch_would_fail_on_later(arguments: dict[str, Any], message: str) -> None:
    with pytest.raises(fl.LayerError, match=message):
        fl.Embedding(**arguments)


def test_an_embedding_without_embeddings_takes_only_an_empty_input() -> None:
    empty = fl.Embedding(0, 3)
    assert tuple(dims.run(empty, dims.Shape([0, 5]))) == (0, 5, 3)
    with pytest.raises(shapes.ShapeError, match="no embeddings"):
        dims.run(empty, dims.Shape([2, 5]))


def test_embedding_padding_row_gets_no_gradient() -> None:
    ours, reference = build_pair(fl.Embedding, nn.Embedding, (6, 3), {"padding_idx": 2})
    indices = torch.tensor([2, 0, 2, 5])
    ours(indices).sum().backward()
    reference(indices).sum().backward()
    assert ours.weight.grad is not None
    assert reference.weight.grad is not None
    torch.testing.assert_close(ours.weight.grad, reference.weight.grad)
    assert ours.weight.grad[2].abs().sum().item() == 0


def test_from_pretrained_keeps_torch_s_meaning_and_dumps_as_the_architecture() -> None:
    weights = torch.randn(5, 3)
    embedding = fl.Embedding.from_pretrained(weights, freeze=True, padding_idx=1)
    assert isinstance(embedding, fl.Embedding)
    assert torch.equal(embedding.weight, weights)
    assert not embedding.weight.requires_grad
    assert embedding.padding_idx == 1
    assert spec.dump(fl.Chain(embedding))["children"] == [
        {"type": "Embedding", "num_embeddings": 5, "embedding_dim": 3, "padding_idx": 1}
    ]
