"""spec.dump: a tree written as a spec that loads back into the same tree, or a SpecError saying
why it cannot be written."""

from __future__ import annotations

import pytest
import torch

import fluxion.layers as fl
from fluxion import spec
from fluxion.adapters import lora
from fluxion.spec import SpecError


def test_a_chain_that_builds_its_children_is_refused_when_they_changed() -> None:
    with_lora = fl.Chain(fl.MultiHeadAttention(8, num_heads=2))
    lora.inject(with_lora, rank=2, targets="MultiHeadAttention.projections.*")
    with pytest.raises(SpecError, match="children changed since it was built"):
        spec.dump(with_lora)
    replaced = fl.Chain(fl.MultiHeadAttention(8, num_heads=2))
    replaced.MultiHeadAttention.replace(replaced.MultiHeadAttention.output, fl.Identity())
    with pytest.raises(SpecError, match="children changed since it was built"):
        spec.dump(replaced)
    plain = fl.Chain(fl.MultiHeadAttention(8, num_heads=2))
    assert spec.dump(plain)["children"] == [{"type": "MultiHeadAttention", "embed_dim": 8, "num_heads": 2}]


def test_a_tie_inside_a_chain_that_builds_its_children_is_refused() -> None:
    model = spec.loads(
        {
            "type": "Chain",
            "children": [
                {"type": "MultiHeadAttention", "id": "a", "embed_dim": 4},
                {"type": "MultiHeadAttention", "id": "b", "embed_dim": 4, "share": "a"},
            ],
        }
    )
    assert model.b["projections.query"].weight is model.a["projections.query"].weight
    with pytest.raises(SpecError, match=r"tied to 'a\.projections\.query\.weight'"):
        spec.dump(model)


def test_embedding_takes_its_dtype_by_name_and_round_trips() -> None:
    model = fl.Chain(fl.Embedding(4, 3, dtype=torch.float16))
    again = spec.loads(spec.dump(model))
    assert again.Embedding.weight.dtype == torch.float16


def test_a_module_given_by_position_does_not_shift_the_other_arguments() -> None:
    @spec.register(name="ReviewWrap")
    class Wrap(fl.Chain):
        def __init__(self, inner: torch.nn.Module, scale: int = 1) -> None:
            super().__init__(inner)
            self.scale = scale

    written = spec.dump(fl.Chain(Wrap(fl.Linear(2, 2), 3)))
    assert written["children"][0]["scale"] == 3
    assert "inner" not in written["children"][0]


def test_dumping_a_graph_keeps_its_input_order() -> None:
    graph = fl.Graph({"add": fl.Add()}, edges=["x -> add", "y -> add"], inputs=("x", "y"))
    written = spec.dump(graph, inputs={"y": ["B", 2], "x": ["B", 2]})
    assert list(written["inputs"]) == ["x", "y"]
    with pytest.raises(SpecError, match="the graph's inputs are x, y"):
        spec.dump(graph, inputs={"z": ["B", 2]})
