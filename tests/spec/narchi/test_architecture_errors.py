"""Errors found once a narchi file is translated (a layer refusing its arguments, shapes that do
not fit, a file a Module names, a share) point at narchi's own JSON path (``blocks[1]``,
``blocks[0].blocks[2]``) in the file that holds the block, never at the translated spec's
(``children[1]``, ``nodes[0]``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fluxion import spec
from fluxion.spec import SpecError
from fluxion.spec.narchi.architecture import translation


def architecture(blocks: list[dict[str, Any]], graph: list[str], shape: list[Any]) -> dict[str, Any]:
    return {
        "blocks": blocks,
        "graph": graph,
        "inputs": [{"_id": "x", "_shape": shape}],
        "outputs": [{"_id": "y", "_shape": ["<<auto>>"]}],
    }


def load_error(tmp_path: Path, data: dict[str, Any], name: str = "model.json") -> SpecError:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    with pytest.raises(SpecError) as caught:
        spec.load(path)
    assert "children" not in str(caught.value)
    assert "nodes[" not in str(caught.value)
    return caught.value


def test_a_bad_argument_value_names_the_block(tmp_path: Path) -> None:
    blocks = [{"_class": "ReLU", "_id": "act"}, {"_class": "Dropout", "_id": "drop", "p": 2.0}]
    error = load_error(tmp_path, architecture(blocks, ["x -> act -> drop -> y"], [3]))
    assert (error.path, error.file) == ("blocks[1]", str(tmp_path / "model.json"))
    assert "Dropout refused its arguments" in error.reason


def test_a_bad_argument_inside_a_sequential_names_the_nested_block(tmp_path: Path) -> None:
    sequential = {
        "_class": "Sequential",
        "_id": "stack",
        "blocks": [{"_class": "ReLU"}, {"_class": "Tanh"}, {"_class": "Dropout", "p": -1.0}],
    }
    error = load_error(tmp_path, architecture([sequential], ["x -> stack -> y"], [3]))
    assert error.path == "blocks[0].blocks[2]"


def test_a_shape_mismatch_found_at_build_names_the_block(tmp_path: Path) -> None:
    blocks = [
        {"_class": "Conv2d", "_id": "conv", "output_feats": 4, "kernel_size": 3},
        {"_class": "Linear", "_id": "fc", "in_features": 3, "output_feats": 2},
    ]
    error = load_error(tmp_path, architecture(blocks, ["x -> conv -> fc -> y"], [3, 8, 8]))
    assert (error.path, error.file) == ("blocks[1]", str(tmp_path / "model.json"))
    assert "shapes do not fit: Linear at 'fc'" in error.reason


def test_a_shape_mismatch_in_a_group_names_narchis_path_not_the_graphs(tmp_path: Path) -> None:
    group = {
        "_class": "Group",
        "_id": "block",
        "blocks": [
            {"_class": "Identity", "_id": "split"},
            {"_class": "Linear", "_id": "left", "output_feats": 4},
            {"_class": "Linear", "_id": "right", "in_features": 7, "output_feats": 4},
            {"_class": "Add", "_id": "add"},
        ],
        "graph": ["split -> left -> add", "split -> right -> add"],
        "input": "split",
        "output": "add",
    }
    error = load_error(
        tmp_path, architecture([{"_class": "ReLU", "_id": "act"}, group], ["x -> act -> block -> y"], [5])
    )
    assert error.path == "blocks[1].blocks[2]"
    assert "Linear at 'block.right'" in error.reason


def test_a_translated_place_reads_back_as_narchis() -> None:
    blocks = [
        {"_class": "Linear", "_id": "fc", "output_feats": 4},
        {"_class": "LSTM", "_id": "rnn", "output_feats": 4, "bidirectional": True},
        {"_class": "Reshape", "_id": "turn", "reshape_spec": [1, 0]},
        {"_class": "Module", "_id": "part", "_path": "part.jsonnet", "_id_share": "tied"},
    ]
    found = translation(architecture(blocks, ["x -> fc -> rnn -> turn -> part -> y"], ["<<variable:T>>", 3]))
    read = found.source_path
    assert read("children[0].out_features") == "blocks[0].output_feats"
    assert read("children[1].hidden_size") == "blocks[1].output_feats"
    assert read("children[1].bidirectional") == "blocks[1].bidirectional"
    assert read("children[1].batch_first") == "blocks[1]"  # fluxion's own: no narchi key behind it
    assert read("children[2].dims[1]") == "blocks[2]"
    assert read("children[3].spec") == "blocks[3]._path"
    assert read("children[3].share") == "blocks[3]._id_share"
    assert read("children[10]") == ""
    assert read("inputs") == "inputs"
    assert read(None) is None


def test_an_unknown_class_names_the_block_and_file(tmp_path: Path) -> None:
    blocks = [{"_class": "ReLU", "_id": "act"}, {"_class": "Conv2D", "_id": "conv", "output_feats": 3}]
    error = load_error(tmp_path, architecture(blocks, ["x -> act -> conv -> y"], [3, 8, 8]))
    assert (error.path, error.file) == ("blocks[1]._class", str(tmp_path / "model.json"))
    assert "unknown narchi class 'Conv2D'" in error.reason


def test_a_missing_module_file_names_the_path_key(tmp_path: Path) -> None:
    blocks = [{"_class": "Module", "_id": "part", "_path": "nowhere.jsonnet"}]
    error = load_error(tmp_path, architecture(blocks, ["x -> part -> y"], [3]))
    assert error.path == "blocks[0]._path"
    assert "nowhere.jsonnet" in str(error)


def test_an_error_in_a_nested_file_names_that_file_and_its_own_path(tmp_path: Path) -> None:
    inner = architecture(
        [{"_class": "ReLU", "_id": "act"}, {"_class": "Dropout", "_id": "drop", "p": 3.0}],
        ["x -> act -> drop -> y"],
        [3],
    )
    (tmp_path / "inner.json").write_text(json.dumps(inner))
    outer = architecture(
        [{"_class": "Tanh", "_id": "squash"}, {"_class": "Module", "_id": "part", "_path": "inner.json"}],
        ["x -> squash -> part -> y"],
        [3],
    )
    error = load_error(tmp_path, outer, "outer.json")
    assert (error.path, error.file) == ("blocks[1]", str(tmp_path / "inner.json"))


def test_a_shape_mismatch_at_a_module_names_the_module_block(tmp_path: Path) -> None:
    inner = architecture(
        [{"_class": "Linear", "_id": "fc", "in_features": 9, "output_feats": 2}], ["x -> fc -> y"], [9]
    )
    (tmp_path / "inner.json").write_text(json.dumps(inner))
    outer = architecture(
        [
            {"_class": "Linear", "_id": "first", "output_feats": 4},
            {"_class": "Module", "_id": "part", "_path": "inner.json"},
        ],
        ["x -> first -> part -> y"],
        [3],
    )
    error = load_error(tmp_path, outer, "outer.json")
    assert "Linear at 'part.fc'" in error.reason
    assert error.file == str(tmp_path / "inner.json")
    assert error.path == "blocks[0]"
