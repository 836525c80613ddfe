"""spec.load, spec.loads, spec.save and spec.schema: the options they take and what they refuse."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

import fluxion.layers as fl
from fluxion import spec
from fluxion.spec import SpecError


def test_a_saved_spec_can_be_a_node_of_another(tmp_path: Path) -> None:
    spec.save(fl.Chain(fl.Linear(2, 3), fl.ReLU()), tmp_path / "block.json")
    assert not list(tmp_path.glob(".*partial"))
    (tmp_path / "model.json").write_text(
        json.dumps({"type": "Chain", "children": [{"spec": "block.json", "id": "block"}]})
    )
    model = spec.load(tmp_path / "model.json")
    assert list(model.state_dict()) == ["block.Linear.weight", "block.Linear.bias"]


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
