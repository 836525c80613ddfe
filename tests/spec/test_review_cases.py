"""Cases found in review: what dump refuses rather than writes wrongly, nested files, shares, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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


def test_an_included_file_reads_from_the_main_specs_folder_tree(tmp_path: Path) -> None:
    (tmp_path / "blocks" / "sub").mkdir(parents=True)
    (tmp_path / "common.libsonnet").write_text("{width: 4}")
    (tmp_path / "blocks" / "sub" / "head.jsonnet").write_text(
        "local common = import '../../common.libsonnet';"
        " {type: 'Linear', in_features: common.width, out_features: common.width}"
    )
    (tmp_path / "model.json").write_text(
        json.dumps({"type": "Chain", "children": [{"spec": "blocks/sub/head.jsonnet"}]})
    )
    assert spec.load(tmp_path / "model.json").Linear.in_features == 4


def test_a_saved_spec_can_be_a_node_of_another(tmp_path: Path) -> None:
    spec.save(fl.Chain(fl.Linear(2, 3), fl.ReLU()), tmp_path / "block.json")
    assert not list(tmp_path.glob(".*partial"))
    (tmp_path / "model.json").write_text(
        json.dumps({"type": "Chain", "children": [{"spec": "block.json", "id": "block"}]})
    )
    model = spec.load(tmp_path / "model.json")
    assert list(model.state_dict()) == ["block.Linear.weight", "block.Linear.bias"]


def test_shares_of_shares_end_at_the_first_tensor() -> None:
    model = spec.loads(
        {
            "type": "Chain",
            "children": [
                {"type": "Linear", "id": "a", "in_features": 3, "out_features": 3},
                {"type": "Linear", "id": "b", "in_features": 3, "out_features": 3, "share": "a"},
                {"type": "Linear", "id": "c", "in_features": 3, "out_features": 3, "share": {"weight": "b.weight"}},
            ],
        }
    )
    assert model.c.weight is model.b.weight is model.a.weight


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


@pytest.mark.parametrize(
    ("document", "options", "message"),
    [
        ({"type": "Chain", "children": [{"type": "ReLU"}]}, {"device": "bogus"}, "is not a device"),
        ({"type": "Chain", "children": [{"type": "ReLU"}]}, {"inputs": 5}, "inputs= takes"),
        ({"type": "Linear", "in_features": 2, "out_features": 2, 1: 2}, {}, "keys are strings"),
        (
            {
                "type": "Chain",
                "children": [
                    {"type": "Linear", "id": "a", "in_features": 2, "out_features": 2},
                    {"type": "Linear", "in_features": 2, "out_features": 2, "share": {"weight": "a"}},
                ],
            },
            {},
            "no parameter at address 'a'",
        ),
        ({"type": "Linear", "in_features": 2, "out_features": 2, "dtype": torch.float16}, {}, "dtype"),
    ],
)
def test_bad_input_is_a_spec_error(document: dict[Any, Any], options: dict[str, Any], message: str) -> None:
    with pytest.raises(SpecError, match=message):
        spec.loads(document, **options)


def test_deep_nesting_is_a_spec_error() -> None:
    node: dict[str, Any] = {"type": "ReLU"}
    for _ in range(2000):
        node = {"type": "Chain", "children": [node]}
    with pytest.raises(SpecError, match="too deeply"):
        spec.loads(node)


def test_dumping_a_graph_keeps_its_input_order() -> None:
    graph = fl.Graph({"add": fl.Add()}, edges=["x -> add", "y -> add"], inputs=("x", "y"))
    written = spec.dump(graph, inputs={"y": ["B", 2], "x": ["B", 2]})
    assert list(written["inputs"]) == ["x", "y"]
    with pytest.raises(SpecError, match="the graph's inputs are x, y"):
        spec.dump(graph, inputs={"z": ["B", 2]})
