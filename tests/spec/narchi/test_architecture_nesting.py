"""narchi's ``Module`` blocks nested in each other: external variables flow down, and ``_path`` is
relative to the file holding the block.

A nested file sees the external variables of the file naming it, updated with the block's own
``_ext_vars`` (the block wins), at every depth; ``top.jsonnet`` -> ``parts/deeper/middle.jsonnet``
-> ``parts/bottom.jsonnet`` (named ``../bottom.jsonnet`` from ``middle``), where ``bottom`` needs a
variable only ``top`` was given.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from fluxion import dims, shapes, spec
from fluxion.spec import SpecError

NESTED = Path(__file__).parent / "nested"
TOP = NESTED / "top.jsonnet"


def test_a_file_three_levels_down_sees_a_variable_only_the_top_was_given() -> None:
    model = spec.load(TOP, ext_vars={"hidden": 12, "classes": 4})
    assert model.middle.widen.out_features == 24  # middle's block gives width 24
    assert model.middle.bottom.hidden.out_features == 12  # bottom's block gives width = hidden, over middle's 24
    assert model.middle.bottom.out.out_features == 4  # classes: given to top only
    report = shapes.infer(model, ("B", 16))
    assert report.output == dims.Shape(["B", 4])
    assert model(torch.randn(3, 16)).shape == (3, 4)


def test_variables_given_as_code_flow_down_too() -> None:
    model = spec.load(TOP, ext_vars={"hidden": 6}, ext_code={"classes": "2 + 5"})
    assert model.middle.bottom.out.out_features == 7


def test_a_missing_variable_names_the_file_that_needs_it() -> None:
    with pytest.raises(SpecError, match="classes") as caught:
        spec.load(TOP, ext_vars={"hidden": 12})
    assert caught.value.file is not None
    assert caught.value.file.endswith("bottom.jsonnet")


def test_the_blocks_variable_wins_over_its_parents(tmp_path: Path) -> None:
    child = {
        "inputs": [{"_id": "x", "_shape": [3]}],
        "outputs": [{"_id": "y", "_shape": ["<<auto>>"]}],
        "blocks": [{"_class": "Linear", "_id": "fc", "output_feats": "%s"}],
        "graph": ["x -> fc -> y"],
    }
    (tmp_path / "child.jsonnet").write_text(json.dumps(child).replace('"%s"', "std.extVar('size')"))
    parent: dict[str, Any] = {
        "inputs": [{"_id": "x", "_shape": [3]}],
        "outputs": [{"_id": "y", "_shape": ["<<auto>>"]}, {"_id": "z", "_shape": ["<<auto>>"]}],
        "blocks": [
            {"_class": "Module", "_id": "own", "_path": "child.jsonnet", "_ext_vars": {"size": 5}},
            {"_class": "Module", "_id": "inherited", "_path": "child.jsonnet"},
        ],
        "graph": ["x -> own -> y", "x -> inherited -> z"],
    }
    (tmp_path / "parent.jsonnet").write_text(json.dumps(parent))
    model = spec.load(tmp_path / "parent.jsonnet", ext_vars={"size": 2})
    assert model.own.fc.out_features == 5  # the block's _ext_vars
    assert model.inherited.fc.out_features == 2  # the parent's, passed down


def test_fluxions_own_spec_nodes_pass_only_the_variables_they_give(tmp_path: Path) -> None:
    # inheriting is narchi's rule for its Module blocks; a fluxion "spec" node stays explicit
    (tmp_path / "part.jsonnet").write_text("{type: 'Linear', in_features: 2, out_features: std.extVar('size')}")
    (tmp_path / "main.jsonnet").write_text(json.dumps({"type": "Chain", "children": [{"spec": "part.jsonnet"}]}))
    with pytest.raises(SpecError, match="size"):
        spec.load(tmp_path / "main.jsonnet", ext_vars={"size": 3})
