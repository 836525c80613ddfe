"""spec.load, spec.loads, spec.save and spec.schema: the options they take and what they refuse."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import torch

import fluxion.layers as fl
from fluxion import spec, weights
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


LAZY = {"type": "Chain", "children": [{"type": "Linear", "out_features": 3}, {"type": "ReLU"}]}


def test_loads_reads_no_files_even_when_the_text_is_a_file_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "model.json").write_text(json.dumps({"type": "Chain", "children": [{"type": "ReLU"}]}))
    monkeypatch.chdir(tmp_path)
    assert isinstance(spec.load("model.json").ReLU, fl.ReLU)
    for name in ("model.json", "model"):
        with pytest.raises(SpecError, match=f"^'{name}' is not spec text; spec.load reads a spec file$"):
            spec.loads(name)
    assert spec.loads("{type: 'Chain', children: [{type: 'Tanh'}]}").Tanh is not None  # jsonnet text


def test_inputs_fill_in_the_sizes_left_out_by_name_or_in_order() -> None:
    by_name = spec.loads(LAZY, inputs={"x": ["B", 5]})
    in_order = spec.loads(LAZY, inputs=[("B", 5)])
    assert by_name.Linear.in_features == in_order.Linear.in_features == 5
    assert in_order(torch.zeros(2, 5)).shape == (2, 3)


def test_inputs_given_to_loads_replace_the_specs_own() -> None:
    model = spec.loads({**LAZY, "inputs": {"x": ["B", 4]}}, inputs=[["B", 7]])
    assert model.Linear.in_features == 7


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([["B", 2], ["B", 3]], "shapes do not fit"),
        ({"x": ["B", 2**63]}, r"inputs= x: a size is at most 2\*\*63 - 1 \(torch's largest\), got 9223372036854775808"),
        ("B, 2", "inputs= takes shapes by name or a list of shapes, got str"),
    ],
)
def test_inputs_that_do_not_fit_are_a_spec_error(inputs: Any, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        spec.loads(LAZY, inputs=inputs)


def test_a_graph_takes_as_many_shapes_as_it_has_inputs() -> None:
    graph = {
        "type": "Graph",
        "inputs": ["x", "y"],
        "nodes": [{"type": "Add", "id": "add"}],
        "edges": ["x -> add", "y -> add"],
    }
    assert spec.loads(graph, inputs=[["B", 2], ["B", 2]])(torch.ones(1, 2), torch.ones(1, 2)).tolist() == [[2.0, 2.0]]
    with pytest.raises(SpecError, match=r"the model takes 2 inputs \(x, y\), got 3 shapes"):
        spec.loads(graph, inputs=[["B", 2]] * 3)


def test_sizes_left_out_without_inputs_are_named_with_a_way_out() -> None:
    many = {"type": "Chain", "children": [{"type": "Linear", "out_features": 2}] * 4}
    with pytest.raises(SpecError) as caught:
        spec.loads(many)
    message = str(caught.value)
    assert "the spec leaves sizes to be inferred ('Linear_1', 'Linear_2', 'Linear_3'...)" in message
    assert 'add "inputs" to the spec' in message
    assert "or pass inputs=" in message


def test_a_root_that_is_not_a_chain_is_wrapped_in_one() -> None:
    model = spec.loads({"type": "Linear", "in_features": 2, "out_features": 3})
    assert type(model) is fl.Chain
    assert list(model.state_dict()) == ["Linear.weight", "Linear.bias"]


def test_the_root_is_a_node() -> None:
    for document in ([1, 2], "[1, 2]", "3"):
        with pytest.raises(SpecError):
            spec.loads(document)  # pyright: ignore[reportArgumentType]
    with pytest.raises(SpecError, match='a spec is an object: its root node \\(with a "type"\\)'):
        spec.loads("[1, 2]")


def test_a_model_built_on_meta_allocates_nothing_and_takes_weights_later(tmp_path: Path) -> None:
    trained = spec.loads(LAZY, inputs=[["B", 4]])
    path = tmp_path / "model.safetensors"
    weights.save(trained, path)
    on_meta = spec.loads(LAZY, inputs=[["B", 4]], device="meta")
    assert on_meta.Linear.weight.is_meta
    loaded = spec.loads(LAZY, inputs=[["B", 4]], device="meta", weights=path)
    x = torch.randn(2, 4)
    assert torch.equal(loaded(x), trained(x))


def test_weights_go_through_a_mapping_and_strict_applies(tmp_path: Path) -> None:
    trained = spec.loads(LAZY, inputs=[["B", 4]])
    renamed = {key.replace("Linear", "fc"): value for key, value in trained.state_dict().items()}
    model = spec.loads(LAZY, inputs=[["B", 4]], weights=renamed, mapping={"fc.weight": "Linear.weight"}, strict=False)
    assert torch.equal(model.Linear.weight, trained.Linear.weight)
    with pytest.raises(weights.WeightsError, match="1 missing, 1 unexpected"):
        spec.loads(LAZY, inputs=[["B", 4]], weights=renamed, mapping={"fc.weight": "Linear.weight"})


def test_save_writes_input_shapes_that_load_uses(tmp_path: Path) -> None:
    model = spec.loads(LAZY, inputs=[["B", 6]])
    spec.save(model, tmp_path / "model.json", inputs=[["B", 6]])
    written = json.loads((tmp_path / "model.json").read_text())
    assert written["inputs"] == {"input0": ["B", 6]}
    assert written["fluxion"] == 1
    again = spec.load(tmp_path / "model.json")
    assert repr(again) == repr(model)


def test_load_passes_variables_to_jsonnet(tmp_path: Path) -> None:
    (tmp_path / "model.jsonnet").write_text(
        "function(width) {type: 'Chain', inputs: {x: ['B', std.extVar('in')]},"
        " children: [{type: 'Linear', out_features: width}]}"
    )
    model = spec.load(tmp_path / "model.jsonnet", ext_vars={"in": 3}, tla={"width": 5})
    assert (model.Linear.in_features, model.Linear.out_features) == (3, 5)


def test_the_schema_is_a_json_schema_that_dumped_specs_follow() -> None:
    schema = spec.schema()
    assert schema["title"] == "fluxion spec"
    jsonschema.Draft202012Validator.check_schema(schema)
    dumped = spec.dump(spec.loads(LAZY, inputs=[["B", 4]]), inputs={"x": ["B", 4]})
    jsonschema.Draft202012Validator(schema).validate(dumped)
    assert spec.schema() is not schema  # each call a fresh copy: changing one changes nothing
